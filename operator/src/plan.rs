//! Broker-side plans for a Topic, as pure functions of the spec and what the broker
//! reports: the controller carries out the steps through fjord-client.

use std::collections::BTreeMap;

use fjord_client::AlterConfigOp;

use crate::types::TopicSpec;

/// The topic as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTopic {
    /// Partition count.
    pub partitions: i32,
    /// Configs set on the topic itself (DescribeConfigs source 1, DYNAMIC_TOPIC_CONFIG);
    /// broker defaults are not listed.
    pub topic_configs: BTreeMap<String, String>,
}

/// One step towards the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStep {
    /// Create the topic with the spec's partitions, replication factor and configs.
    Create,
    /// Grow to this many partitions.
    GrowPartitions(i32),
    /// Set and delete topic configs (drift made by other tools included).
    AlterConfigs(Vec<AlterConfigOp>),
}

/// Why the spec cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The spec asks for fewer partitions than the topic has (Kafka cannot remove
    /// partitions); nothing is changed.
    PartitionDecrease {
        /// Partitions on the broker.
        have: i32,
        /// Partitions in the spec.
        want: i32,
    },
}

/// Steps that bring the broker's topic to `spec`; `observed` is `None` when the topic
/// does not exist.
pub fn plan_topic(
    spec: &TopicSpec,
    observed: Option<&ObservedTopic>,
) -> Result<Vec<TopicStep>, PlanError> {
    let Some(observed) = observed else {
        return Ok(vec![TopicStep::Create]);
    };
    if spec.partitions < observed.partitions {
        return Err(PlanError::PartitionDecrease {
            have: observed.partitions,
            want: spec.partitions,
        });
    }
    let mut steps = Vec::new();
    if spec.partitions > observed.partitions {
        steps.push(TopicStep::GrowPartitions(spec.partitions));
    }
    let mut ops: Vec<AlterConfigOp> = spec
        .config
        .iter()
        .filter(|(k, v)| observed.topic_configs.get(*k) != Some(v))
        .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
        .collect();
    ops.extend(
        observed
            .topic_configs
            .keys()
            .filter(|k| !spec.config.contains_key(*k))
            // A rebalance's throttle lists come and go with its batches.
            .filter(|k| !crate::throttle::REBALANCE_OWNED_TOPIC_CONFIGS.contains(&k.as_str()))
            .map(|k| AlterConfigOp::Delete(k.clone())),
    );
    if !ops.is_empty() {
        steps.push(TopicStep::AlterConfigs(ops));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DeletionPolicy;

    fn spec(partitions: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster_ref: "demo".into(),
            topic_name: None,
            partitions,
            replication_factor: 1,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn observed(partitions: i32, config: &[(&str, &str)]) -> ObservedTopic {
        ObservedTopic {
            partitions,
            topic_configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn missing_topic_is_created() {
        assert_eq!(plan_topic(&spec(3, &[]), None), Ok(vec![TopicStep::Create]));
    }

    #[test]
    fn in_sync_topic_needs_nothing() {
        let s = spec(3, &[("retention.ms", "1000")]);
        assert_eq!(
            plan_topic(&s, Some(&observed(3, &[("retention.ms", "1000")]))),
            Ok(vec![])
        );
    }

    #[test]
    fn partitions_grow_and_config_drift_is_reverted() {
        let s = spec(
            6,
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        );
        let o = observed(3, &[("retention.ms", "5"), ("segment.bytes", "1024")]);
        assert_eq!(
            plan_topic(&s, Some(&o)),
            Ok(vec![
                TopicStep::GrowPartitions(6),
                TopicStep::AlterConfigs(vec![
                    AlterConfigOp::Set("cleanup.policy".into(), "compact".into()),
                    AlterConfigOp::Set("retention.ms".into(), "1000".into()),
                    AlterConfigOp::Delete("segment.bytes".into()),
                ]),
            ])
        );
    }

    #[test]
    fn a_rebalances_throttle_lists_are_not_drift() {
        let s = spec(1, &[]);
        let o = observed(
            1,
            &[
                ("leader.replication.throttled.replicas", "0:1"),
                ("follower.replication.throttled.replicas", "0:2"),
            ],
        );
        assert_eq!(plan_topic(&s, Some(&o)), Ok(vec![]));
    }

    #[test]
    fn partition_decrease_changes_nothing() {
        let s = spec(2, &[("retention.ms", "1")]);
        assert_eq!(
            plan_topic(&s, Some(&observed(4, &[]))),
            Err(PlanError::PartitionDecrease { have: 4, want: 2 })
        );
    }
}
