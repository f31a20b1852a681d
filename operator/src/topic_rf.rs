//! Replication-factor changes of a Topic, as pure functions of the topic's partitions
//! (replicas, in-sync replicas, leader), the brokers that may take replicas and the
//! replicas each already holds.
//!
//! Growing a partition adds the least-loaded brokers that do not hold it; shrinking
//! drops replicas on brokers that are down first, then out-of-sync ones, then those on
//! the most-loaded brokers, and never the current leader (a leader change would stall
//! its clients). Where every broker has a rack, an added replica goes to the rack with
//! the fewest replicas of the partition and a dropped one leaves the rack with the
//! most, so replicas spread over racks as evenly as they can (racks are ignored unless
//! every broker reports one, as for a rebalance).
//!
//! The change runs as partition reassignments, at most [`BATCH_PARTITIONS`] in flight;
//! a partition is done once its replicas are the target and all in sync. The batch in
//! flight is written to status before it is sent, so a restarted operator waits for
//! it and counts each partition once.
//!
//! Refused, with nothing changed: more replicas than brokers (Kafka refuses it with
//! INVALID_REPLICATION_FACTOR), and a shrink below the topic's min.insync.replicas.
//! Kafka itself accepts the latter and then fails every acks=all write with
//! NOT_ENOUGH_REPLICAS; Fjord refuses it so a spec edit cannot stop a topic's writers.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::rebalance::Broker;
use crate::scale::PartitionReplicas;
use crate::types::{PartitionMove, TopicReassignmentStatus};

/// Partitions of one topic reassigned at once: bounds the data copied at a time and
/// the size of `status.reassignment.batch`.
pub const BATCH_PARTITIONS: usize = 8;

/// One partition of the topic, as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Partition index.
    pub partition: i32,
    /// Replicas, preferred leader first (during a reassignment: old and new).
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Current leader, when there is one.
    pub leader: Option<i32>,
}

/// Why a replication factor cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// More replicas than brokers to hold them.
    #[error("replication factor {want} is more than the {brokers} brokers that are up")]
    TooFewBrokers {
        /// The wanted replication factor.
        want: i32,
        /// Brokers up that may hold replicas.
        brokers: usize,
    },
    /// A shrink below min.insync.replicas: acks=all writes would all fail.
    #[error(
        "replication factor {want} is below the topic's min.insync.replicas={min_insync}: \
         every acks=all write would fail; lower min.insync.replicas first"
    )]
    BelowMinInsync {
        /// The wanted replication factor.
        want: i32,
        /// The topic's min.insync.replicas.
        min_insync: i32,
    },
}

impl Refusal {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooFewBrokers { .. } => "TooFewBrokers",
            Refusal::BelowMinInsync { .. } => "BelowMinInsyncReplicas",
        }
    }
}

/// The target replicas of `p` with `want` replicas; `load` (replicas per broker) is
/// updated with the change, so that successive partitions spread over the brokers.
pub fn target(
    p: &PartitionState,
    want: usize,
    brokers: &[Broker],
    load: &mut BTreeMap<i32, usize>,
) -> Vec<i32> {
    let racks = racks(brokers);
    let rack_of = |b: i32| racks.as_ref().and_then(|r| r.get(&b).copied());
    // Replicas of the partition in broker `b`'s rack (0 without racks).
    let crowding = |replicas: &[i32], b: i32| match rack_of(b) {
        None => 0,
        Some(rack) => replicas
            .iter()
            .filter(|&&r| rack_of(r) == Some(rack))
            .count(),
    };
    let load_of = |load: &BTreeMap<i32, usize>, b: i32| load.get(&b).copied().unwrap_or(0);
    let mut replicas = p.replicas.clone();
    // Ties go round the brokers from the preferred leader's place, as Kafka's
    // placement goes round them, so equal loads do not all fall on the lowest ids.
    let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
    ids.sort_unstable();
    let n = ids.len().max(1);
    let anchor = p
        .replicas
        .first()
        .and_then(|f| ids.iter().position(|b| b == f))
        .unwrap_or(p.partition.unsigned_abs() as usize % n);
    let turn = |b: i32| (ids.iter().position(|&x| x == b).unwrap_or(0) + n - anchor) % n;
    while replicas.len() < want {
        let Some(pick) = ids
            .iter()
            .copied()
            .filter(|b| !replicas.contains(b))
            .min_by_key(|&b| (crowding(&replicas, b), load_of(load, b), turn(b)))
        else {
            break;
        };
        replicas.push(pick);
        *load.entry(pick).or_default() += 1;
    }
    while replicas.len() > want.max(1) {
        let up = |b: i32| brokers.iter().any(|x| x.id == b);
        let Some(drop) = replicas
            .iter()
            .copied()
            .filter(|&b| Some(b) != p.leader)
            .max_by_key(|&b| {
                (
                    !up(b),
                    !p.isr.contains(&b),
                    crowding(&replicas, b),
                    load_of(load, b),
                    b,
                )
            })
        else {
            break;
        };
        replicas.retain(|&b| b != drop);
        if let Some(n) = load.get_mut(&drop) {
            *n = n.saturating_sub(1);
        }
    }
    replicas
}

/// Each broker's rack, when every broker has one (else racks are ignored).
fn racks(brokers: &[Broker]) -> Option<BTreeMap<i32, &str>> {
    if brokers.is_empty() {
        return None;
    }
    brokers
        .iter()
        .map(|b| b.rack.as_deref().map(|r| (b.id, r)))
        .collect()
}

/// Whether `p` has exactly the `target` replicas (in any order), all in sync, and no
/// reassignment of its own in progress.
fn reached(p: &PartitionState, target: &[i32], reassigning: bool) -> bool {
    !reassigning
        && p.replicas.len() == target.len()
        && target
            .iter()
            .all(|r| p.replicas.contains(r) && p.isr.contains(r))
}

/// What the controller does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: every partition has the wanted replication factor and no run is open.
    None,
    /// Reassignments are in flight; look again later.
    Wait,
    /// Start these reassignments (write the status first).
    Submit(Vec<PartitionReplicas>),
    /// The run has just finished: every partition has the wanted replicas, in sync.
    Finished,
    /// The wanted replication factor cannot be reached; nothing is started.
    Refused(Refusal),
}

/// What the controller observed, for [`step`].
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// `spec.replicationFactor`.
    pub want: i32,
    /// The topic's min.insync.replicas (its own or the broker default).
    pub min_insync: i32,
    /// Brokers that are up and may hold replicas (not being drained).
    pub brokers: &'a [Broker],
    /// Replicas each broker holds, over every topic.
    pub load: &'a BTreeMap<i32, usize>,
    /// The topic's partitions.
    pub partitions: &'a [PartitionState],
    /// The topic's partitions with a reassignment in progress.
    pub reassigning: &'a BTreeSet<i32>,
}

/// One step of a replication-factor change, from the last status and what the
/// brokers report now. Returns the next status (`None`: there is no run to show) and
/// what to do.
pub fn step(
    previous: Option<&TopicReassignmentStatus>,
    observed: Observed<'_>,
    now: &Time,
) -> (Option<TopicReassignmentStatus>, Action) {
    let want = observed.want.max(1);
    let running = previous.filter(|s| s.state == "Running");
    let find = |partition: i32| {
        observed
            .partitions
            .iter()
            .find(|p| p.partition == partition)
    };
    // The last batch: each partition is done (target reached, in sync), still in
    // flight, or lost (never sent by an operator that died, or cancelled), and then
    // planned again below.
    let mut done = 0;
    let mut in_flight: Vec<PartitionMove> = Vec::new();
    for m in running.map(|s| s.batch.as_slice()).unwrap_or_default() {
        let Some(p) = find(m.partition) else { continue };
        let reassigning = observed.reassigning.contains(&m.partition);
        if reached(p, &m.replicas, reassigning) {
            done += 1;
        } else if reassigning || sorted(&p.replicas) == sorted(&m.replicas) {
            in_flight.push(m.clone());
        }
    }
    let off_target: Vec<&PartitionState> = observed
        .partitions
        .iter()
        .filter(|p| p.replicas.len() != want as usize)
        .filter(|p| !in_flight.iter().any(|m| m.partition == p.partition))
        .collect();
    // A partition another reassignment moves (a rebalance, a drain) lists its old and
    // new replicas until that finishes: it is planned, and judged, only afterwards.
    let startable: Vec<&PartitionState> = off_target
        .iter()
        .copied()
        .filter(|p| !observed.reassigning.contains(&p.partition))
        .collect();
    if running.is_none() && startable.is_empty() {
        let kept = previous.filter(|s| s.state != "Refused").cloned();
        return (kept, Action::None);
    }

    let mut status = match running {
        Some(s) if s.replication_factor == want => s.clone(),
        _ => TopicReassignmentStatus {
            state: "Running".into(),
            replication_factor: want,
            started_at: Some(now.clone()),
            ..TopicReassignmentStatus::default()
        },
    };
    status.partitions_moved += done;
    status.batch = in_flight;

    if !startable.is_empty() {
        let refusal = if want as usize > observed.brokers.len() {
            Some(Refusal::TooFewBrokers {
                want,
                brokers: observed.brokers.len(),
            })
        } else if want < observed.min_insync
            && startable.iter().any(|p| p.replicas.len() > want as usize)
        {
            Some(Refusal::BelowMinInsync {
                want,
                min_insync: observed.min_insync,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            // Reassignments already sent finish on the brokers; nothing new starts.
            let status = TopicReassignmentStatus {
                state: "Refused".into(),
                replication_factor: want,
                message: format!("topic {:?}: {refusal}", observed.topic),
                ..TopicReassignmentStatus::default()
            };
            return (Some(status), Action::Refused(refusal));
        }
    }

    let room = BATCH_PARTITIONS.saturating_sub(status.batch.len());
    let mut load = observed.load.clone();
    let start: Vec<PartitionReplicas> = startable
        .iter()
        .take(room)
        .map(|p| PartitionReplicas {
            topic: observed.topic.to_string(),
            partition: p.partition,
            replicas: target(p, want as usize, observed.brokers, &mut load),
        })
        .collect();
    status.batch.extend(start.iter().map(|m| PartitionMove {
        topic: m.topic.clone(),
        partition: m.partition,
        replicas: m.replicas.clone(),
    }));
    status.batch.sort();
    let waiting = off_target.len() - start.len();
    status.partitions_to_move =
        status.partitions_moved + status.batch.len() as i32 + waiting as i32;

    if status.batch.is_empty() && waiting == 0 {
        status.state = "Done".into();
        status.finished_at = Some(now.clone());
        status.message = format!(
            "every partition of topic {:?} has {want} replicas in sync ({} moved)",
            observed.topic, status.partitions_moved
        );
        return (Some(status), Action::Finished);
    }
    status.message = format!(
        "replication factor {want}: {} of {} partitions moved, {} in flight{}",
        status.partitions_moved,
        status.partitions_to_move,
        status.batch.len(),
        if waiting > 0 {
            format!(", {waiting} waiting")
        } else {
            String::new()
        }
    );
    let action = if start.is_empty() {
        Action::Wait
    } else {
        Action::Submit(start)
    };
    (Some(status), action)
}

fn sorted(replicas: &[i32]) -> Vec<i32> {
    let mut v = replicas.to_vec();
    v.sort_unstable();
    v
}

#[cfg(test)]
#[path = "topic_rf_tests.rs"]
mod tests;
