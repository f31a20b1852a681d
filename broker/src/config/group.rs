//! Group configs: the per-group configs Kafka 4.4 describes (KIP-848 consumer groups,
//! KIP-932 share groups, KIP-1071 streams groups, dead-letter queues; its internal ones are
//! left out), with Kafka's names, types, defaults, bounds and synonyms, so
//! `kafka-configs.sh --entity-type groups` works. They are described and stored like topic
//! configs, in the same [`TopicConfigDef`] shape.
//!
//! Fjord's coordinator runs the classic group protocol, which none of these govern (a
//! classic member sends its own session timeout in JoinGroup): every one is accepted,
//! validated, stored and described, and documented as without effect.

use super::topic::{boolean, int_range, ConfigType, TopicConfigDef};

/// A Kafka INT group config bounded by the broker's min/max settings of that group
/// type (GroupConfig.validateValues), at those settings' defaults.
macro_rules! bounded_int {
    ($name:literal, $doc:literal, $default:literal, $min:literal, $max:literal, $broker:literal) => {
        TopicConfigDef {
            name: $name,
            config_type: ConfigType::Int,
            doc: $doc,
            default: |_| $default.into(),
            validate: |v| int_range(v, $min, $max),
            broker_property: Some($broker),
            applied: false,
        }
    };
}

macro_rules! flag {
    ($name:literal, $doc:literal, $default:literal, $broker:expr) => {
        TopicConfigDef {
            name: $name,
            config_type: ConfigType::Boolean,
            doc: $doc,
            default: |_| $default.into(),
            validate: boolean,
            broker_property: $broker,
            applied: false,
        }
    };
}

fn share_auto_offset_reset(v: &str) -> Result<(), String> {
    match v.trim() {
        "earliest" | "latest" => Ok(()),
        other => match other.strip_prefix("by_duration:") {
            // An ISO-8601 duration (PnDTnHnMn.nS), never negative.
            Some(d) if d.starts_with('P') && d.len() > 1 => Ok(()),
            _ => Err(format!(
                "{other:?} is not earliest, latest or by_duration:<ISO-8601 duration>"
            )),
        },
    }
}

fn isolation_level(v: &str) -> Result<(), String> {
    match v.trim() {
        "read_committed" | "read_uncommitted" => Ok(()),
        other => Err(format!(
            "{other:?} is not read_committed or read_uncommitted"
        )),
    }
}

fn dead_letter_topic(v: &str) -> Result<(), String> {
    if v.trim().starts_with("__") {
        return Err(format!("{v:?}: the topic name must not start with '__'"));
    }
    Ok(())
}

/// Kafka's broker default of group.streams.assignors has one assignor.
fn streams_assignor(v: &str) -> Result<(), String> {
    match v.trim() {
        "sticky" => Ok(()),
        other => Err(format!(
            "{other:?} is not an assignor of group.streams.assignors (sticky)"
        )),
    }
}

fn rack_tags(v: &str) -> Result<(), String> {
    let mut tags: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let n = tags.len();
    tags.sort_unstable();
    tags.dedup();
    if tags.len() != n {
        return Err(format!("{v:?} lists a tag more than once"));
    }
    Ok(())
}

/// Every group config of Kafka 4.4, by name. Anything else is refused with
/// INVALID_CONFIG.
pub static GROUP_CONFIGS: &[TopicConfigDef] = &[
    bounded_int!(
        "consumer.assignment.interval.ms",
        "The least time between two assignments of a consumer group.",
        "1000",
        0,
        15000,
        "group.consumer.assignment.interval.ms"
    ),
    bounded_int!(
        "consumer.heartbeat.interval.ms",
        "The heartbeat interval given to the members of a consumer group.",
        "5000",
        5000,
        15000,
        "group.consumer.heartbeat.interval.ms"
    ),
    bounded_int!(
        "consumer.session.timeout.ms",
        "The timeout to detect client failures in a consumer group.",
        "45000",
        45000,
        60000,
        "group.consumer.session.timeout.ms"
    ),
    flag!(
        "errors.deadletterqueue.copy.record.enable",
        "Copy the record's key and value into the dead-letter queue.",
        "false",
        Some("errors.deadletterqueue.copy.record.enable")
    ),
    TopicConfigDef {
        name: "errors.deadletterqueue.topic.name",
        config_type: ConfigType::String,
        doc: "The topic a share group writes undeliverable records to; empty for none.",
        default: |_| String::new(),
        validate: dead_letter_topic,
        broker_property: Some("errors.deadletterqueue.topic.name"),
        applied: false,
    },
    bounded_int!(
        "share.assignment.interval.ms",
        "The least time between two assignments of a share group.",
        "1000",
        0,
        15000,
        "group.share.assignment.interval.ms"
    ),
    TopicConfigDef {
        name: "share.auto.offset.reset",
        config_type: ConfigType::String,
        doc: "Where a share partition starts: earliest, latest, or by_duration:<duration>.",
        default: |_| "latest".into(),
        validate: share_auto_offset_reset,
        broker_property: Some("share.auto.offset.reset"),
        applied: false,
    },
    bounded_int!(
        "share.delivery.count.limit",
        "How many times a share group delivers a record before giving up on it.",
        "5",
        2,
        10,
        "group.share.delivery.count.limit"
    ),
    bounded_int!(
        "share.heartbeat.interval.ms",
        "The heartbeat interval given to the members of a share group.",
        "5000",
        5000,
        15000,
        "group.share.heartbeat.interval.ms"
    ),
    TopicConfigDef {
        name: "share.isolation.level",
        config_type: ConfigType::String,
        doc: "Whether a share group delivers transactional records before they commit: \
              read_committed or read_uncommitted.",
        default: |_| "read_uncommitted".into(),
        validate: isolation_level,
        broker_property: Some("share.isolation.level"),
        applied: false,
    },
    bounded_int!(
        "share.partition.max.record.locks",
        "The most records a share partition holds acquired at once.",
        "2000",
        100,
        4000,
        "group.share.partition.max.record.locks"
    ),
    bounded_int!(
        "share.record.lock.duration.ms",
        "How long a share group member holds an acquired record.",
        "30000",
        15000,
        60000,
        "group.share.record.lock.duration.ms"
    ),
    flag!(
        "share.renew.acknowledge.enable",
        "Whether the renew acknowledge type is enabled for the share group.",
        "true",
        Some("share.renew.acknowledge.enable")
    ),
    bounded_int!(
        "share.session.timeout.ms",
        "The timeout to detect client failures in a share group.",
        "45000",
        45000,
        60000,
        "group.share.session.timeout.ms"
    ),
    bounded_int!(
        "streams.assignment.interval.ms",
        "The least time between two assignments of a streams group.",
        "1000",
        0,
        15000,
        "group.streams.assignment.interval.ms"
    ),
    TopicConfigDef {
        name: "streams.assignor.name",
        config_type: ConfigType::String,
        doc: "The task assignor of the streams group, by short name, one of the broker's \
              group.streams.assignors.",
        default: |_| "sticky".into(),
        validate: streams_assignor,
        broker_property: Some("group.streams.assignors"),
        applied: false,
    },
    bounded_int!(
        "streams.heartbeat.interval.ms",
        "The heartbeat interval given to the members of a streams group.",
        "5000",
        5000,
        15000,
        "group.streams.heartbeat.interval.ms"
    ),
    TopicConfigDef {
        name: "streams.initial.rebalance.delay.ms",
        config_type: ConfigType::Int,
        doc: "How long a new streams group waits for more members before its first \
              assignment.",
        default: |_| "3000".into(),
        validate: |v| int_range(v, 0, i64::from(i32::MAX)),
        broker_property: Some("group.streams.initial.rebalance.delay.ms"),
        applied: false,
    },
    bounded_int!(
        "streams.num.standby.replicas",
        "The standby replicas of each task of a streams group.",
        "0",
        0,
        2,
        "group.streams.num.standby.replicas"
    ),
    TopicConfigDef {
        name: "streams.rack.aware.assignment.tags",
        config_type: ConfigType::List,
        doc: "The client tags a streams group spreads standby replicas across.",
        default: |_| String::new(),
        validate: rack_tags,
        broker_property: Some("group.streams.rack.aware.assignment.tags"),
        applied: false,
    },
    bounded_int!(
        "streams.session.timeout.ms",
        "The timeout to detect client failures in a streams group.",
        "45000",
        45000,
        60000,
        "group.streams.session.timeout.ms"
    ),
];

pub fn group_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Check one group config override, with a message that names the config.
pub fn validate_group_config(name: &str, value: &str) -> Result<(), String> {
    let def = group_config_def(name).ok_or_else(|| format!("unknown group config {name:?}"))?;
    (def.validate)(value).map_err(|e| format!("invalid value for {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicDefaults;

    /// Kafka 4.4's group configs (GroupConfig): name, type and default.
    const KAFKA_GROUP_CONFIGS: &[(&str, ConfigType, &str)] = &[
        ("consumer.assignment.interval.ms", ConfigType::Int, "1000"),
        ("consumer.heartbeat.interval.ms", ConfigType::Int, "5000"),
        ("consumer.session.timeout.ms", ConfigType::Int, "45000"),
        (
            "errors.deadletterqueue.copy.record.enable",
            ConfigType::Boolean,
            "false",
        ),
        ("errors.deadletterqueue.topic.name", ConfigType::String, ""),
        ("share.assignment.interval.ms", ConfigType::Int, "1000"),
        ("share.auto.offset.reset", ConfigType::String, "latest"),
        ("share.delivery.count.limit", ConfigType::Int, "5"),
        ("share.heartbeat.interval.ms", ConfigType::Int, "5000"),
        (
            "share.isolation.level",
            ConfigType::String,
            "read_uncommitted",
        ),
        ("share.partition.max.record.locks", ConfigType::Int, "2000"),
        ("share.record.lock.duration.ms", ConfigType::Int, "30000"),
        (
            "share.renew.acknowledge.enable",
            ConfigType::Boolean,
            "true",
        ),
        ("share.session.timeout.ms", ConfigType::Int, "45000"),
        ("streams.assignment.interval.ms", ConfigType::Int, "1000"),
        ("streams.assignor.name", ConfigType::String, "sticky"),
        ("streams.heartbeat.interval.ms", ConfigType::Int, "5000"),
        (
            "streams.initial.rebalance.delay.ms",
            ConfigType::Int,
            "3000",
        ),
        ("streams.num.standby.replicas", ConfigType::Int, "0"),
        ("streams.rack.aware.assignment.tags", ConfigType::List, ""),
        ("streams.session.timeout.ms", ConfigType::Int, "45000"),
    ];

    fn defaults() -> TopicDefaults {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            broker: crate::config::BrokerConfig,
        }
        TopicDefaults::from_broker(&Cli::parse_from(["fjord"]).broker)
    }

    #[test]
    fn every_kafka_group_config_is_known_with_kafkas_type_and_default() {
        let d = defaults();
        for (name, config_type, default) in KAFKA_GROUP_CONFIGS {
            let def = group_config_def(name).unwrap_or_else(|| panic!("{name} is not known"));
            assert_eq!(def.config_type, *config_type, "{name}");
            assert_eq!(&(def.default)(&d), default, "{name}");
            validate_group_config(name, default).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(def.documentation().contains("does not act on it"), "{name}");
        }
        assert_eq!(GROUP_CONFIGS.len(), KAFKA_GROUP_CONFIGS.len());
        let names: Vec<&str> = GROUP_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "GROUP_CONFIGS is kept in name order");
    }

    #[test]
    fn group_configs_are_held_to_kafkas_bounds_at_their_limits() {
        for (name, good, bad) in [
            (
                "consumer.session.timeout.ms",
                ["45000", "60000"],
                ["44999", "60001"],
            ),
            (
                "consumer.heartbeat.interval.ms",
                ["5000", "15000"],
                ["4999", "15001"],
            ),
            ("share.delivery.count.limit", ["2", "10"], ["1", "11"]),
            (
                "share.partition.max.record.locks",
                ["100", "4000"],
                ["99", "4001"],
            ),
            (
                "share.record.lock.duration.ms",
                ["15000", "60000"],
                ["14999", "60001"],
            ),
            ("streams.num.standby.replicas", ["0", "2"], ["-1", "3"]),
            (
                "share.auto.offset.reset",
                ["earliest", "by_duration:PT1H"],
                ["middle", "by_duration:"],
            ),
            (
                "share.isolation.level",
                ["read_committed", "read_uncommitted"],
                ["none", ""],
            ),
            (
                "errors.deadletterqueue.topic.name",
                ["dlq", ""],
                ["__dlq", "__"],
            ),
            (
                "streams.rack.aware.assignment.tags",
                ["zone,rack", ""],
                ["zone,zone", "a, a"],
            ),
            (
                "share.renew.acknowledge.enable",
                ["true", "false"],
                ["yes", "1"],
            ),
        ] {
            for v in good {
                validate_group_config(name, v).unwrap_or_else(|e| panic!("{name}={v}: {e}"));
            }
            for v in bad {
                let Err(e) = validate_group_config(name, v) else {
                    panic!("{name}={v} is accepted")
                };
                assert!(e.contains(name), "the message names the config: {e}");
            }
        }
        assert!(validate_group_config("retention.ms", "1").is_err());
    }
}
