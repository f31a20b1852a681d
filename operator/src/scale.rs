//! Scaling decisions, as pure functions of the wanted replicas, the StatefulSet's
//! current replicas and what the brokers report. Scale-out is always allowed. A
//! scale-in first drains the brokers to be removed: their replicas move to the brokers
//! that stay (partition reassignment, least-loaded first), and the StatefulSet shrinks
//! only once they hold nothing, so editing replicas can never drop data. A scale-in
//! that cannot be carried out (quorum voters, replication factors above the brokers
//! left, brokers down) is refused with a reason and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use fjord_client::{ClusterMetadata, Reassignment};

use crate::desired::MAX_VOTERS;

/// One partition's replicas, as Metadata lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Replica node ids, preferred leader first.
    pub replicas: Vec<i32>,
}

/// What the brokers report, reduced to what scaling and status need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerState {
    /// Registered brokers that are up: node id → advertised `host:port`.
    pub registered: BTreeMap<i32, String>,
    /// Partition replicas per node id (every node that appears in a replica list).
    pub replicas_per_broker: BTreeMap<i32, i32>,
    /// Partitions whose in-sync replicas are fewer than their replicas.
    pub under_replicated_partitions: i32,
    /// Partitions without a leader.
    pub offline_partitions: i32,
    /// Controller node id, when known.
    pub controller_id: Option<i32>,
    /// Every partition's replicas.
    pub partitions: Vec<PartitionReplicas>,
    /// Partitions with a reassignment in progress (their replica lists hold the old
    /// and the new replicas until it completes).
    pub reassigning: BTreeSet<(String, i32)>,
    /// Rack of each registered broker that reports one.
    pub racks: BTreeMap<i32, String>,
    /// Leader of each partition that has one.
    pub leaders: BTreeMap<(String, i32), i32>,
    /// In-sync replicas of each partition.
    pub isr: BTreeMap<(String, i32), Vec<i32>>,
}

impl BrokerState {
    /// Reduces a Metadata answer for all topics and the reassignments in progress.
    pub fn from_metadata(metadata: &ClusterMetadata, reassignments: &[Reassignment]) -> Self {
        let mut state = BrokerState {
            registered: metadata
                .brokers
                .iter()
                .map(|b| (b.node_id, b.addr()))
                .collect(),
            racks: metadata
                .brokers
                .iter()
                .filter_map(|b| Some((b.node_id, b.rack.clone()?)))
                .collect(),
            controller_id: (metadata.controller_id >= 0).then_some(metadata.controller_id),
            reassigning: reassignments
                .iter()
                .map(|r| (r.topic.clone(), r.partition))
                .collect(),
            ..BrokerState::default()
        };
        for t in &metadata.topics {
            for p in &t.partitions {
                for r in &p.replicas {
                    *state.replicas_per_broker.entry(*r).or_default() += 1;
                }
                if p.isr.len() < p.replicas.len() {
                    state.under_replicated_partitions += 1;
                }
                if p.leader_id < 0 {
                    state.offline_partitions += 1;
                } else {
                    state
                        .leaders
                        .insert((t.name.clone(), p.partition), p.leader_id);
                }
                state
                    .isr
                    .insert((t.name.clone(), p.partition), p.isr.clone());
                state.partitions.push(PartitionReplicas {
                    topic: t.name.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                });
            }
        }
        state
    }
}

/// Why a scale-in is refused, as the ScaleDownBlocked condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedReason {
    /// The brokers could not be asked.
    BrokerStateUnknown,
    /// The scale-in would remove voters of the metadata quorum.
    QuorumVoters,
    /// A partition has more replicas than the brokers that would remain.
    ReplicationFactor,
    /// Too few of the remaining brokers are up to take the replicas.
    BrokersDown,
}

impl BlockedReason {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedReason::BrokerStateUnknown => "BrokerStateUnknown",
            BlockedReason::QuorumVoters => "QuorumVoters",
            BlockedReason::ReplicationFactor => "ReplicationFactor",
            BlockedReason::BrokersDown => "BrokersDown",
        }
    }
}

/// The replicas to give the StatefulSet, and why not the wanted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleDecision {
    /// Apply this many replicas (the wanted count).
    Apply(i32),
    /// Keep `keep` replicas: the scale-in to `wanted` is refused.
    Blocked {
        /// The replicas the StatefulSet keeps.
        keep: i32,
        /// The replicas the spec asks for.
        wanted: i32,
        /// Why, for the condition's reason.
        reason: BlockedReason,
        /// Human-readable explanation, for the condition's message and the Event.
        message: String,
    },
    /// Keep `keep` replicas while the brokers `wanted..keep` are drained.
    Drain {
        /// The replicas the StatefulSet keeps for now.
        keep: i32,
        /// The replicas the spec asks for.
        wanted: i32,
        /// Reassignments to start now.
        moves: Vec<PartitionReplicas>,
        /// Partitions on the removed brokers whose reassignment is already running.
        in_progress: usize,
    },
}

impl ScaleDecision {
    /// The replicas to apply either way.
    pub fn replicas(&self) -> i32 {
        match self {
            ScaleDecision::Apply(n) => *n,
            ScaleDecision::Blocked { keep, .. } | ScaleDecision::Drain { keep, .. } => *keep,
        }
    }
}

fn span(ids: &Range<i32>) -> String {
    if ids.len() == 1 {
        format!("broker {}", ids.start)
    } else {
        format!("brokers {}..={}", ids.start, ids.end - 1)
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
    let removed = wanted..current;
    let blocked = |reason, message: String| ScaleDecision::Blocked {
        keep: current,
        wanted,
        reason,
        message: format!("scale-in from {current} to {wanted} brokers refused: {message}"),
    };
    let voters = current.min(MAX_VOTERS);
    if wanted < voters {
        return blocked(
            BlockedReason::QuorumVoters,
            format!(
                "{} of the metadata quorum's {voters} voters would go, and the quorum does \
                 not shrink; this cluster keeps at least {voters} brokers",
                span(&(wanted..voters))
            ),
        );
    }
    let Some(brokers) = brokers else {
        return blocked(
            BlockedReason::BrokerStateUnknown,
            format!(
                "the brokers cannot be asked, so {} cannot be drained",
                span(&removed)
            ),
        );
    };
    let on_removed = |p: &&PartitionReplicas| p.replicas.iter().any(|r| removed.contains(r));
    let (in_progress, to_move): (Vec<&PartitionReplicas>, Vec<&PartitionReplicas>) =
        brokers.partitions.iter().filter(on_removed).partition(|p| {
            brokers
                .reassigning
                .contains(&(p.topic.clone(), p.partition))
        });
    if in_progress.is_empty() && to_move.is_empty() {
        return ScaleDecision::Apply(wanted);
    }
    if let Some(p) = to_move.iter().find(|p| p.replicas.len() > wanted as usize) {
        return blocked(
            BlockedReason::ReplicationFactor,
            format!(
                "topic {:?} partition {} has {} replicas, more than {wanted} brokers can hold",
                p.topic,
                p.partition,
                p.replicas.len()
            ),
        );
    }
    let remaining: Vec<i32> = (0..wanted)
        .filter(|id| brokers.registered.contains_key(id))
        .collect();
    let mut load: BTreeMap<i32, i32> = remaining
        .iter()
        .map(|&id| {
            (
                id,
                brokers.replicas_per_broker.get(&id).copied().unwrap_or(0),
            )
        })
        .collect();
    let mut moves = Vec::with_capacity(to_move.len());
    for p in to_move {
        let mut target = p.replicas.clone();
        for slot in 0..target.len() {
            if !removed.contains(&target[slot]) {
                continue;
            }
            let pick = remaining
                .iter()
                .copied()
                .filter(|id| !target.contains(id))
                .min_by_key(|id| (load[id], *id));
            let Some(pick) = pick else {
                return blocked(
                    BlockedReason::BrokersDown,
                    format!(
                        "topic {:?} partition {} needs {} replicas but only {} of brokers \
                         0..={} are up",
                        p.topic,
                        p.partition,
                        p.replicas.len(),
                        remaining.len(),
                        wanted - 1
                    ),
                );
            };
            target[slot] = pick;
            *load.get_mut(&pick).expect("picked from remaining") += 1;
        }
        moves.push(PartitionReplicas {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: target,
        });
    }
    ScaleDecision::Drain {
        keep: current,
        wanted,
        moves,
        in_progress: in_progress.len(),
    }
}

/// Describes a drain for the Reconciling condition and the Event.
pub fn drain_message(wanted: i32, keep: i32, moves: usize, in_progress: usize) -> String {
    format!(
        "scaling in from {keep} to {wanted} brokers: draining {} ({moves} replica moves \
         started, {in_progress} in progress)",
        span(&(wanted..keep))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_client::{BrokerMetadata, PartitionMetadata, TopicMetadata};

    /// Brokers `up` registered; partitions of topic "t" with these replica lists.
    fn state(up: &[i32], partitions: &[&[i32]]) -> BrokerState {
        let mut s = BrokerState {
            registered: up.iter().map(|&id| (id, format!("b{id}:9092"))).collect(),
            ..BrokerState::default()
        };
        for (i, replicas) in partitions.iter().enumerate() {
            for r in *replicas {
                *s.replicas_per_broker.entry(*r).or_default() += 1;
            }
            s.partitions.push(PartitionReplicas {
                topic: "t".into(),
                partition: i as i32,
                replicas: replicas.to_vec(),
            });
        }
        s
    }

    fn blocked_reason(d: &ScaleDecision) -> (BlockedReason, String) {
        match d {
            ScaleDecision::Blocked {
                reason, message, ..
            } => (*reason, message.clone()),
            other => panic!("not blocked: {other:?}"),
        }
    }

    #[test]
    fn scale_out_and_first_creation_apply_the_spec() {
        assert_eq!(decide(3, None, None), ScaleDecision::Apply(3));
        assert_eq!(decide(5, Some(3), None), ScaleDecision::Apply(5));
        assert_eq!(decide(3, Some(3), None), ScaleDecision::Apply(3));
    }

    #[test]
    fn scale_in_drains_removed_brokers_to_the_least_loaded() {
        // Brokers 3 and 4 go. Loads before: 0:2, 1:3, 2:1.
        let s = state(
            &[0, 1, 2, 3, 4],
            &[&[0, 1], &[1, 3], &[3, 4], &[1, 0], &[2, 4]],
        );
        let d = decide(3, Some(5), Some(&s));
        let ScaleDecision::Drain {
            keep,
            wanted,
            moves,
            in_progress,
        } = &d
        else {
            panic!("{d:?}")
        };
        assert_eq!((*keep, *wanted, d.replicas(), *in_progress), (5, 3, 5, 0));
        let targets: Vec<(i32, &[i32])> = moves
            .iter()
            .map(|m| (m.partition, m.replicas.as_slice()))
            .collect();
        // Each removed replica goes in its slot (a preferred leader's replacement leads)
        // to the least-loaded remaining broker not already a replica, lowest id on a
        // tie: p1's 3 -> 2; p2's 3 -> 0 (0 and 2 at 2) and 4 -> 2; p4's 4 -> 0 (0 and 1
        // at 3).
        assert_eq!(
            targets,
            vec![(1, &[1, 2][..]), (2, &[0, 2][..]), (4, &[2, 0][..])]
        );
        for m in moves {
            assert!(m.replicas.iter().all(|r| (0..3).contains(r)), "{m:?}");
        }
    }

    #[test]
    fn a_drain_waits_for_reassignments_in_progress() {
        let mut s = state(&[0, 1, 2, 3], &[&[0, 3], &[1, 2]]);
        s.reassigning.insert(("t".into(), 0));
        assert_eq!(
            decide(3, Some(4), Some(&s)),
            ScaleDecision::Drain {
                keep: 4,
                wanted: 3,
                moves: vec![],
                in_progress: 1
            }
        );
    }

    #[test]
    fn a_drain_resumed_after_a_restart_starts_only_the_moves_not_yet_made() {
        // The drain keeps no progress of its own: each reconcile derives it from the
        // brokers, so an operator killed mid-drain continues where the brokers are.
        let before = state(&[0, 1, 2, 3, 4], &[&[0, 3], &[1, 4], &[3, 4], &[2, 0]]);
        let ScaleDecision::Drain { moves, .. } = decide(3, Some(5), Some(&before)) else {
            panic!("not a drain")
        };
        assert_eq!(
            moves.iter().map(|m| m.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Killed after sending p0 and p1: p0 has completed, p1 is still being
        // reassigned (its list holds the old and the new replicas), p2 was never sent.
        let mut after = state(
            &[0, 1, 2, 3, 4],
            &[&moves[0].replicas, &[1, 4, 2], &[3, 4], &[2, 0]],
        );
        after.reassigning.insert(("t".into(), 1));
        let d = decide(3, Some(5), Some(&after));
        let ScaleDecision::Drain {
            moves: resumed,
            in_progress,
            ..
        } = &d
        else {
            panic!("{d:?}")
        };
        assert_eq!(*in_progress, 1, "p1 is waited for, not sent again");
        assert_eq!(resumed.len(), 1, "{resumed:?}");
        assert_eq!(resumed[0].partition, 2, "only p2 is left to start");
        assert!(resumed[0].replicas.iter().all(|r| (0..3).contains(r)));
        // Once p1 and p2 complete, nothing is left on brokers 3 and 4: the StatefulSet
        // shrinks.
        let done = state(
            &[0, 1, 2, 3, 4],
            &[
                &moves[0].replicas,
                &moves[1].replicas,
                &resumed[0].replicas,
                &[2, 0],
            ],
        );
        assert_eq!(decide(3, Some(5), Some(&done)), ScaleDecision::Apply(3));
    }

    #[test]
    fn scale_in_applies_once_removed_brokers_are_empty() {
        let s = state(&[0, 1, 2, 3], &[&[0, 1], &[2, 1]]);
        assert_eq!(decide(3, Some(4), Some(&s)), ScaleDecision::Apply(3));
        // Stopped brokers absent from every replica list hold nothing either.
        assert_eq!(
            decide(3, Some(5), Some(&state(&[0, 1, 2], &[&[0]]))),
            ScaleDecision::Apply(3)
        );
    }

    #[test]
    fn scale_in_never_removes_quorum_voters() {
        // Voters are brokers 0..3 (0..2 when the cluster has two brokers), even when
        // they hold nothing.
        let empty = state(&[0, 1, 2], &[]);
        let d = decide(2, Some(3), Some(&empty));
        let (reason, message) = blocked_reason(&d);
        assert_eq!(reason, BlockedReason::QuorumVoters);
        assert!(
            message.contains("broker 2 of the metadata quorum's 3 voters"),
            "{message}"
        );
        assert_eq!(d.replicas(), 3);
        let (reason, _) = blocked_reason(&decide(1, Some(5), None));
        assert_eq!(reason, BlockedReason::QuorumVoters);
        let (reason, _) = blocked_reason(&decide(1, Some(2), Some(&empty)));
        assert_eq!(reason, BlockedReason::QuorumVoters);
    }

    #[test]
    fn impossible_scale_ins_are_refused_with_the_cause() {
        // Replication factor 4 does not fit on 3 brokers.
        let s = state(&[0, 1, 2, 3], &[&[0, 1, 2, 3]]);
        let (reason, message) = blocked_reason(&decide(3, Some(4), Some(&s)));
        assert_eq!(reason, BlockedReason::ReplicationFactor);
        assert!(
            message.contains("has 4 replicas, more than 3 brokers"),
            "{message}"
        );
        // Broker 1 is down: the RF-3 partition on 3 has nowhere to go.
        let s = state(&[0, 2, 3], &[&[0, 2, 3]]);
        let (reason, message) = blocked_reason(&decide(3, Some(4), Some(&s)));
        assert_eq!(reason, BlockedReason::BrokersDown);
        assert!(
            message.contains("only 2 of brokers 0..=2 are up"),
            "{message}"
        );
        // Unknown broker state.
        let (reason, _) = blocked_reason(&decide(3, Some(4), None));
        assert_eq!(reason, BlockedReason::BrokerStateUnknown);
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
                rack: Some("zone-a".into()),
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
        let reassigning = [Reassignment {
            topic: "t".into(),
            partition: 1,
            replicas: vec![1, 2, 0],
            adding: vec![0],
            removing: vec![2],
        }];
        let s = BrokerState::from_metadata(&md, &reassigning);
        assert_eq!(s.registered[&0], "h0:9092");
        assert_eq!(
            s.replicas_per_broker,
            BTreeMap::from([(0, 1), (1, 2), (2, 2)])
        );
        assert_eq!(s.under_replicated_partitions, 2);
        assert_eq!(s.offline_partitions, 1);
        assert_eq!(s.controller_id, Some(1));
        assert_eq!(s.partitions.len(), 3);
        assert_eq!(s.partitions[1].replicas, vec![1, 2]);
        assert_eq!(s.reassigning, BTreeSet::from([("t".to_string(), 1)]));
        assert_eq!(s.racks, BTreeMap::from([(0, "zone-a".to_string())]));
        assert_eq!(
            s.leaders,
            BTreeMap::from([(("t".to_string(), 0), 0), (("t".to_string(), 1), 1)])
        );
    }
}
