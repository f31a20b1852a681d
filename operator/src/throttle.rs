//! The replication throttle of a rebalance batch (Kafka's KIP-73 quotas, set as
//! kafka-reassign-partitions.sh `--throttle` sets them): before a batch is sent, each
//! moving partition's topic lists its current replicas as leader-throttled and its new
//! replicas as follower-throttled, and the brokers involved get
//! `leader/follower.replication.throttled.rate`; when the batch is over, all of it is
//! removed. What was set is recorded in `status.rebalance.throttle` before it is set,
//! so an operator restarted mid-batch still removes it.

use std::collections::{BTreeMap, BTreeSet};

use fjord_client::{AlterConfigOp, ConfigResource};

use crate::scale::PartitionReplicas;
use crate::types::ThrottleStatus;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// The topic configs a rebalance sets and removes: the Topic reconciler leaves them
/// alone unless its spec names them.
pub const REBALANCE_OWNED_TOPIC_CONFIGS: [&str; 2] = [LEADER_REPLICAS, FOLLOWER_REPLICAS];

/// The throttle of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub rate_bytes_per_second: u64,
    /// Every broker a moving partition is on, before or after.
    pub brokers: BTreeSet<i32>,
    /// Per topic: the leader-side list (current replicas) and the follower-side list
    /// (replicas being added), as `partition:broker` pairs.
    pub topics: BTreeMap<String, (String, String)>,
}

/// The throttle for moving `batch` from the replicas in `current`; None when the
/// rate is off (0) or nothing moves data.
pub fn plan(
    rate_bytes_per_second: u64,
    current: &[PartitionReplicas],
    batch: &[PartitionReplicas],
) -> Option<Throttle> {
    if rate_bytes_per_second == 0 {
        return None;
    }
    let mut brokers = BTreeSet::new();
    let mut lists: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in batch {
        let Some(now) = current
            .iter()
            .find(|p| p.topic == m.topic && p.partition == m.partition)
        else {
            continue;
        };
        let added: Vec<i32> = m
            .replicas
            .iter()
            .copied()
            .filter(|b| !now.replicas.contains(b))
            .collect();
        if added.is_empty() {
            // Only the order changes: no data moves.
            continue;
        }
        let (leader, follower) = lists.entry(m.topic.clone()).or_default();
        leader.extend(now.replicas.iter().map(|b| format!("{}:{b}", m.partition)));
        follower.extend(added.iter().map(|b| format!("{}:{b}", m.partition)));
        brokers.extend(now.replicas.iter().chain(&added));
    }
    if lists.is_empty() {
        return None;
    }
    Some(Throttle {
        rate_bytes_per_second,
        brokers,
        topics: lists
            .into_iter()
            .map(|(t, (l, f))| (t, (l.join(","), f.join(","))))
            .collect(),
    })
}

impl Throttle {
    /// What status records (before anything is set).
    pub fn status(&self) -> ThrottleStatus {
        ThrottleStatus {
            rate_bytes_per_second: i64::try_from(self.rate_bytes_per_second).unwrap_or(i64::MAX),
            brokers: self.brokers.iter().copied().collect(),
            topics: self.topics.keys().cloned().collect(),
        }
    }

    /// The config changes that put it in force.
    pub fn set_ops(&self) -> Vec<(ConfigResource, Vec<AlterConfigOp>)> {
        let rate = self.rate_bytes_per_second.to_string();
        let mut ops: Vec<(ConfigResource, Vec<AlterConfigOp>)> = self
            .topics
            .iter()
            .map(|(topic, (leader, follower))| {
                (
                    ConfigResource::Topic(topic.clone()),
                    vec![
                        AlterConfigOp::Set(LEADER_REPLICAS.into(), leader.clone()),
                        AlterConfigOp::Set(FOLLOWER_REPLICAS.into(), follower.clone()),
                    ],
                )
            })
            .collect();
        ops.extend(self.brokers.iter().map(|&b| {
            (
                ConfigResource::Broker(b),
                vec![
                    AlterConfigOp::Set(LEADER_RATE.into(), rate.clone()),
                    AlterConfigOp::Set(FOLLOWER_RATE.into(), rate.clone()),
                ],
            )
        }));
        ops
    }
}

/// The recorded throttle to remove now: once no reassignment is in progress, the
/// batch it was set for is over (whether or not this operator sent it).
pub fn due_for_removal(
    recorded: Option<&ThrottleStatus>,
    reassignments_in_progress: usize,
) -> Option<&ThrottleStatus> {
    recorded.filter(|_| reassignments_in_progress == 0)
}

/// The config changes that remove a recorded throttle.
pub fn remove_ops(recorded: &ThrottleStatus) -> Vec<(ConfigResource, Vec<AlterConfigOp>)> {
    let topics = recorded.topics.iter().map(|t| {
        (
            ConfigResource::Topic(t.clone()),
            REBALANCE_OWNED_TOPIC_CONFIGS
                .iter()
                .map(|k| AlterConfigOp::Delete(k.to_string()))
                .collect(),
        )
    });
    let brokers = recorded.brokers.iter().map(|&b| {
        (
            ConfigResource::Broker(b),
            vec![
                AlterConfigOp::Delete(LEADER_RATE.into()),
                AlterConfigOp::Delete(FOLLOWER_RATE.into()),
            ],
        )
    });
    topics.chain(brokers).collect()
}

/// Carries out config changes; a topic deleted meanwhile has nothing left to remove.
pub async fn apply(
    client: &fjord_client::Client,
    changes: &[(ConfigResource, Vec<AlterConfigOp>)],
) -> Result<(), fjord_client::Error> {
    for (resource, ops) in changes {
        match client.incremental_alter_configs(resource, ops, false).await {
            Err(e)
                if matches!(resource, ConfigResource::Topic(_))
                    && e.kafka() == Some(fjord_client::ResponseError::UnknownTopicOrPartition) => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32, replicas: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    #[test]
    fn current_replicas_are_leader_throttled_and_new_ones_follower_throttled() {
        let current = [p("a", 0, &[0, 1]), p("a", 1, &[1, 2]), p("b", 0, &[2, 0])];
        let batch = [p("a", 0, &[3, 1]), p("a", 1, &[2, 1]), p("b", 0, &[4, 0])];
        let t = plan(50 << 20, &current, &batch).unwrap();
        assert_eq!(
            t.topics,
            BTreeMap::from([
                ("a".to_string(), ("0:0,0:1".to_string(), "0:3".to_string())),
                ("b".to_string(), ("0:2,0:0".to_string(), "0:4".to_string())),
            ])
        );
        // a-1 only changes order: no data moves, no throttle.
        assert_eq!(t.brokers, BTreeSet::from([0, 1, 2, 3, 4]));
        let status = t.status();
        assert_eq!(status.rate_bytes_per_second, 50 << 20);
        assert_eq!(status.topics, vec!["a", "b"]);
        let set = t.set_ops();
        assert_eq!(set.len(), 2 + 5);
        assert_eq!(
            set[0].1,
            vec![
                AlterConfigOp::Set(LEADER_REPLICAS.into(), "0:0,0:1".into()),
                AlterConfigOp::Set(FOLLOWER_REPLICAS.into(), "0:3".into()),
            ]
        );
        assert_eq!(
            set[2],
            (
                ConfigResource::Broker(0),
                vec![
                    AlterConfigOp::Set(LEADER_RATE.into(), "52428800".into()),
                    AlterConfigOp::Set(FOLLOWER_RATE.into(), "52428800".into()),
                ]
            )
        );
        // Removal undoes exactly what was recorded.
        let removed = remove_ops(&status);
        assert_eq!(removed.len(), 7);
        assert!(removed
            .iter()
            .all(|(_, ops)| ops.iter().all(|op| matches!(op, AlterConfigOp::Delete(_)))));
    }

    #[test]
    fn a_recorded_throttle_is_removed_once_nothing_moves() {
        let recorded = ThrottleStatus {
            rate_bytes_per_second: 1,
            brokers: vec![1],
            topics: vec!["a".into()],
        };
        assert_eq!(due_for_removal(Some(&recorded), 3), None);
        assert_eq!(due_for_removal(Some(&recorded), 0), Some(&recorded));
        assert_eq!(due_for_removal(None, 0), None);
    }

    #[test]
    fn no_throttle_when_off_or_when_nothing_moves_data() {
        let current = [p("a", 0, &[0, 1])];
        assert_eq!(plan(0, &current, &[p("a", 0, &[2, 1])]), None);
        assert_eq!(plan(1, &current, &[p("a", 0, &[1, 0])]), None);
        assert_eq!(plan(1, &current, &[p("gone", 0, &[1])]), None);
    }
}
