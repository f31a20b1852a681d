//! Dynamic broker configs: set at run time with IncrementalAlterConfigs on a BROKER
//! resource (one broker's id, or the empty name for the cluster default) and kept in
//! the cluster metadata, so every broker sees every broker's values. Only the
//! replication quota rates (KIP-73) are dynamic; every other broker config is static.

use super::{ConfigType, TopicConfigDef};
use crate::replication::throttle::{parse_rate, FOLLOWER_RATE, LEADER_RATE};

/// Kafka's default of both rates: Long.MAX_VALUE, no limit in practice.
fn unlimited(_: &super::TopicDefaults) -> String {
    i64::MAX.to_string()
}

fn rate(v: &str) -> Result<(), String> {
    parse_rate(v).map(|_| ())
}

/// The broker configs that may be changed at run time.
pub static BROKER_DYNAMIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: FOLLOWER_RATE,
        config_type: ConfigType::Long,
        doc: "Bytes per second this broker fetches, as a follower, for the replicas listed \
              in their topic's follower.replication.throttled.replicas while they are out \
              of the ISR. Unset: unthrottled.",
        default: unlimited,
        validate: rate,
        broker_property: None,
        applied: true,
    },
    TopicConfigDef {
        name: LEADER_RATE,
        config_type: ConfigType::Long,
        doc: "Bytes per second this broker sends, as a leader, to the followers listed in \
              their topic's leader.replication.throttled.replicas while they are out of \
              the ISR. Unset: unthrottled.",
        default: unlimited,
        validate: rate,
        broker_property: None,
        applied: true,
    },
];

pub fn broker_dynamic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    BROKER_DYNAMIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Validates a dynamic broker config; a static one is refused with how to set it.
pub fn validate_broker_dynamic_config(name: &str, value: &str) -> Result<(), String> {
    let def = broker_dynamic_config_def(name).ok_or_else(|| {
        format!(
            "broker config {name:?} cannot be changed at run time (the dynamic ones are {}); \
             static configs are set with flags or FJORD_* variables",
            BROKER_DYNAMIC_CONFIGS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    (def.validate)(value).map_err(|e| format!("invalid value for {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rates_are_dynamic_and_they_are_non_negative_longs() {
        assert!(validate_broker_dynamic_config(LEADER_RATE, "0").is_ok());
        assert!(validate_broker_dynamic_config(FOLLOWER_RATE, &i64::MAX.to_string()).is_ok());
        let e = validate_broker_dynamic_config(LEADER_RATE, "-1").unwrap_err();
        assert!(e.contains(LEADER_RATE) && e.contains("minimum 0"), "{e}");
        assert!(validate_broker_dynamic_config(FOLLOWER_RATE, "1e6").is_err());
        let e = validate_broker_dynamic_config("log.retention.ms", "1").unwrap_err();
        assert!(e.contains("cannot be changed at run time"), "{e}");
    }
}
