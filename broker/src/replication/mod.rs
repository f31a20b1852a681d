//! Replication decisions as pure state machines: events in, actions out, no I/O.
//!
//! - [`leader`]: one partition's leader: follower fetch state, high watermark, ISR
//!   change proposals (AlterPartition, KIP-497), acks=all waiters.
//! - [`follower`]: one partition's follower: what to fetch next, truncation on a
//!   diverging epoch (KIP-101/279/320), leader changes.
//! - [`controller`]: the cluster controller: broker registration, heartbeats and
//!   fencing (KIP-841), leader election, AlterPartition, controlled shutdown,
//!   preferred-leader election, reassignment. Its output is
//!   [`cluster_state::ControllerRecord`]s for the metadata Raft log.
//! - [`cluster_state`]: those records and the [`cluster_state::ClusterState`] they
//!   build, the same on the controller and on every broker.
//! - [`placement`]: rack-aware replica placement for new partitions.
//! - [`throttle`]: replication quotas (KIP-73): which replicas are throttled and the
//!   token bucket that limits their bytes.
//!
//! The crate's `sim` drives these state machines through the runtime around them
//! (partitions, logs, the replica fetcher) under faults.
//!
//! Time is always passed in (`now_ms`, milliseconds on a monotonic clock); nothing here
//! reads a clock, sleeps, or touches the network or disk. The runtime performs the
//! actions and feeds the results back as events.

pub mod cluster_state;
pub mod controller;
pub mod fetch_session;
pub mod follower;
pub mod leader;
pub mod placement;
pub mod throttle;

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker's node id (Kafka's `broker.id` / `node.id`).
pub type BrokerId = i32;

/// Kafka's "no leader" broker id.
pub const NO_LEADER: BrokerId = -1;

/// Changes with each registration of a broker process (Kafka uses the offset of the
/// registration record). Requests carrying an older one come from a previous process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BrokerEpoch(pub i64);

/// Bumped by the controller every time a partition's leader changes (KIP-101). Batches
/// carry the epoch of the leader that wrote them (`partitionLeaderEpoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaderEpoch(pub i32);

/// Bumped by the controller on every change to a partition (leader, ISR, replicas):
/// an AlterPartition built on an older one is refused (KIP-497's partition epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionEpoch(pub i32);

/// The offset below which every record is committed: held by the whole ISR, and the
/// limit of what consumers see. For a leader it never decreases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HighWatermark(pub i64);

/// Identifies a partition in requests between brokers and the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic_id: Uuid,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic_id, self.partition)
    }
}

/// The in-sync replica set: replicas that hold every committed record. Kept in the
/// order of the replica list so that elections and records are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Isr(Vec<BrokerId>);

impl Isr {
    pub fn new(mut members: Vec<BrokerId>) -> Isr {
        members.sort_unstable();
        members.dedup();
        Isr(members)
    }

    pub fn contains(&self, broker: BrokerId) -> bool {
        self.0.contains(&broker)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn members(&self) -> &[BrokerId] {
        &self.0
    }

    pub fn with(&self, broker: BrokerId) -> Isr {
        let mut members = self.0.clone();
        members.push(broker);
        Isr::new(members)
    }

    pub fn without(&self, broker: BrokerId) -> Isr {
        Isr(self.0.iter().copied().filter(|&b| b != broker).collect())
    }

    pub fn is_subset_of(&self, other: &Isr) -> bool {
        self.0.iter().all(|&b| other.contains(b))
    }

    /// Members of either.
    pub fn union(&self, other: &Isr) -> Isr {
        Isr::new(self.0.iter().chain(other.0.iter()).copied().collect())
    }
}

impl fmt::Display for Isr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A partition as the controller last committed it; what leaders and followers act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    /// Preferred order: the first replica is the preferred leader.
    pub replicas: Vec<BrokerId>,
    pub isr: Isr,
    /// [`NO_LEADER`] when the partition is offline.
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// Reassignment in progress: replicas being added (not yet in sync) ...
    pub adding_replicas: Vec<BrokerId>,
    /// ... and replicas to drop once every adding replica is in the ISR.
    pub removing_replicas: Vec<BrokerId>,
    /// Replicas whose broker reported its copy unusable (storage): not elected, not
    /// added to the ISR, until the broker reports it back. Sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// A registration with no reassignment and no offline replica (tests).
    #[cfg(test)]
    pub(crate) fn of(
        replicas: &[BrokerId],
        isr: &[BrokerId],
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: Isr::new(isr.to_vec()),
            leader,
            leader_epoch: LeaderEpoch(leader_epoch),
            partition_epoch: PartitionEpoch(partition_epoch),
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        }
    }
}

/// What the leader's log answers for the follower fetch protocol. Implemented for the
/// storage engine's [`crate::log::Log`]; the simulator has an in-memory one.
pub trait EpochLog {
    fn log_end_offset(&self) -> i64;
    /// The first offset the log holds (retention and DeleteRecords move it).
    fn log_start_offset(&self) -> i64;
    /// The epoch of the last batch in the log, -1 when empty.
    fn latest_epoch(&self) -> i32;
    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and where it ends (the log end
    /// offset for the latest epoch); `None` when the log knows no such epoch.
    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)>;
}

impl EpochLog for crate::log::Log {
    fn log_end_offset(&self) -> i64 {
        crate::log::Log::log_end_offset(self)
    }

    fn log_start_offset(&self) -> i64 {
        crate::log::Log::log_start_offset(self)
    }

    fn latest_epoch(&self) -> i32 {
        crate::log::Log::latest_epoch(self)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        crate::log::Log::end_offset_for_epoch(self, epoch)
    }
}

/// An in-memory log for tests and the simulator: one record per offset, each with the
/// epoch of the leader that wrote it and a unique id, and the storage engine's own epoch
/// cache to answer divergence questions.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemLog {
    pub records: Vec<MemRecord>,
    epochs: crate::log::epoch_cache::LeaderEpochCache,
    /// Records below it count as deleted (retention).
    start: i64,
}

#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemRecord {
    pub epoch: i32,
    pub id: u64,
}

#[cfg(test)]
impl MemLog {
    pub fn with_epochs(epochs: &[i32]) -> MemLog {
        let mut log = MemLog::default();
        for (i, &epoch) in epochs.iter().enumerate() {
            log.append(MemRecord {
                epoch,
                id: i as u64,
            });
        }
        log
    }

    pub fn append(&mut self, record: MemRecord) {
        self.epochs.assign(record.epoch, self.records.len() as i64);
        self.records.push(record);
    }

    /// Retention deleted everything below `offset`, and the epochs with it (as a
    /// log whose epoch checkpoint was lost rebuilds them from the batches it holds).
    pub fn delete_below_forgetting_epochs(&mut self, offset: i64) {
        self.start = offset;
        self.epochs = Default::default();
    }

    pub fn truncate_to(&mut self, offset: i64) {
        let offset = offset.max(0) as usize;
        if offset < self.records.len() {
            self.records.truncate(offset);
            self.epochs.truncate_from_end(offset as i64);
        }
    }
}

#[cfg(test)]
impl EpochLog for MemLog {
    fn log_end_offset(&self) -> i64 {
        self.records.len() as i64
    }

    fn log_start_offset(&self) -> i64 {
        self.start
    }

    fn latest_epoch(&self) -> i32 {
        self.epochs.latest_epoch().unwrap_or(-1)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }
}
