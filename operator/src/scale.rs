//! Scaling decisions, as pure functions of the wanted replicas, the StatefulSet's
//! current replicas and what the brokers report. Scale-out is always allowed; scale-in
//! only when the brokers to be removed hold no partition replicas, so editing replicas
//! can never drop data. (Draining them first is a later step.)

use std::collections::BTreeMap;

use fjord_client::ClusterMetadata;

/// What the brokers report, reduced to what scaling and status need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerState {
    /// Registered brokers: node id → advertised `host:port`.
    pub registered: BTreeMap<i32, String>,
    /// Partition replicas per node id (every node that appears in a replica list).
    pub replicas_per_broker: BTreeMap<i32, i32>,
    /// Partitions whose in-sync replicas are fewer than their replicas.
    pub under_replicated_partitions: i32,
    /// Partitions without a leader.
    pub offline_partitions: i32,
    /// Controller node id, when known.
    pub controller_id: Option<i32>,
}

impl BrokerState {
    /// Reduces a Metadata answer for all topics.
    pub fn from_metadata(metadata: &ClusterMetadata) -> BrokerState {
        let mut state = BrokerState {
            registered: metadata
                .brokers
                .iter()
                .map(|b| (b.node_id, b.addr()))
                .collect(),
            controller_id: (metadata.controller_id >= 0).then_some(metadata.controller_id),
            ..BrokerState::default()
        };
        for p in metadata.topics.iter().flat_map(|t| &t.partitions) {
            for r in &p.replicas {
                *state.replicas_per_broker.entry(*r).or_default() += 1;
            }
            if p.isr.len() < p.replicas.len() {
                state.under_replicated_partitions += 1;
            }
            if p.leader_id < 0 {
                state.offline_partitions += 1;
            }
        }
        state
    }
}

/// The replicas to give the StatefulSet, and why not the wanted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Apply this many replicas (the wanted count).
    Apply(i32),
    /// Keep `keep` replicas: the scale-in to `wanted` is refused for `reason`.
    Blocked {
        /// The replicas the StatefulSet keeps.
        keep: i32,
        /// The replicas the spec asks for.
        wanted: i32,
        /// Human-readable reason, for the ScaleDownBlocked condition.
        reason: String,
    },
}

impl ScaleDecision {
    /// The replicas to apply either way.
    pub fn replicas(&self) -> i32 {
        match self {
            ScaleDecision::Apply(n) => *n,
            ScaleDecision::Blocked { keep, .. } => *keep,
        }
    }
}

/// Decides the StatefulSet's replicas. `current` is the StatefulSet's replicas (`None`
/// before it exists); `brokers` is the observed broker state (`None` when the brokers
/// could not be asked). Brokers `wanted..current` are the ones a scale-in removes.
pub fn decide(wanted: i32, current: Option<i32>, brokers: Option<&BrokerState>) -> ScaleDecision {
    let current = match current {
        Some(c) if wanted < c => c,
        _ => return ScaleDecision::Apply(wanted),
    };
    let Some(brokers) = brokers else {
        return ScaleDecision::Blocked {
            keep: current,
            wanted,
            reason: format!(
                "scale-in from {current} to {wanted} brokers waits: broker state is unknown, \
                 so it cannot be shown that brokers {wanted}..{} hold no replicas",
                current - 1
            ),
        };
    };
    let holding: Vec<String> = (wanted..current)
        .filter_map(|id| {
            let n = brokers.replicas_per_broker.get(&id).copied().unwrap_or(0);
            (n > 0).then(|| format!("broker {id} holds {n} replicas"))
        })
        .collect();
    if holding.is_empty() {
        ScaleDecision::Apply(wanted)
    } else {
        ScaleDecision::Blocked {
            keep: current,
            wanted,
            reason: format!(
                "scale-in from {current} to {wanted} brokers refused: {}; move their \
                 replicas away first",
                holding.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_client::{BrokerMetadata, PartitionMetadata, TopicMetadata};

    fn state(replicas: &[(i32, i32)]) -> BrokerState {
        BrokerState {
            replicas_per_broker: replicas.iter().copied().collect(),
            ..BrokerState::default()
        }
    }

    #[test]
    fn scale_out_and_first_creation_apply_the_spec() {
        assert_eq!(decide(3, None, None), ScaleDecision::Apply(3));
        assert_eq!(decide(5, Some(3), None), ScaleDecision::Apply(5));
        assert_eq!(decide(3, Some(3), None), ScaleDecision::Apply(3));
    }

    #[test]
    fn scale_in_blocked_while_removed_brokers_hold_replicas() {
        let s = state(&[(0, 4), (1, 4), (2, 2), (3, 0), (4, 1)]);
        let d = decide(2, Some(5), Some(&s));
        let ScaleDecision::Blocked {
            keep,
            wanted,
            reason,
        } = &d
        else {
            panic!("{d:?}")
        };
        assert_eq!((*keep, *wanted, d.replicas()), (5, 2, 5));
        assert!(reason.contains("broker 2 holds 2 replicas"), "{reason}");
        assert!(reason.contains("broker 4 holds 1 replicas"), "{reason}");
        assert!(!reason.contains("broker 3"), "{reason}");
    }

    #[test]
    fn scale_in_allowed_when_removed_brokers_are_empty() {
        let s = state(&[(0, 4), (1, 4), (2, 0)]);
        assert_eq!(decide(2, Some(3), Some(&s)), ScaleDecision::Apply(2));
        // A broker absent from every replica list holds nothing.
        assert_eq!(
            decide(2, Some(4), Some(&state(&[(0, 1)]))),
            ScaleDecision::Apply(2)
        );
    }

    #[test]
    fn scale_in_waits_when_broker_state_is_unknown() {
        let d = decide(1, Some(3), None);
        assert_eq!(d.replicas(), 3);
        assert!(matches!(d, ScaleDecision::Blocked { .. }));
    }

    #[test]
    fn broker_state_counts_replicas_and_unhealthy_partitions() {
        let p = |partition, leader_id, replicas: Vec<i32>, isr: Vec<i32>| PartitionMetadata {
            partition,
            leader_id,
            leader_epoch: 0,
            replicas,
            isr,
            offline_replicas: vec![],
            error: None,
        };
        let md = ClusterMetadata {
            cluster_id: None,
            controller_id: 1,
            brokers: vec![BrokerMetadata {
                node_id: 0,
                host: "h0".into(),
                port: 9092,
                rack: None,
            }],
            topics: vec![TopicMetadata {
                name: "t".into(),
                topic_id: Default::default(),
                is_internal: false,
                partitions: vec![
                    p(0, 0, vec![0, 1], vec![0, 1]),
                    p(1, 1, vec![1, 2], vec![1]),
                    p(2, -1, vec![2], vec![]),
                ],
                error: None,
            }],
        };
        let s = BrokerState::from_metadata(&md);
        assert_eq!(s.registered[&0], "h0:9092");
        assert_eq!(
            s.replicas_per_broker,
            BTreeMap::from([(0, 1), (1, 2), (2, 2)])
        );
        assert_eq!(s.under_replicated_partitions, 2);
        assert_eq!(s.offline_partitions, 1);
        assert_eq!(s.controller_id, Some(1));
    }
}
