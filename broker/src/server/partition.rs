//! A partition hosted by this broker: its log behind a lock, its leader epoch, its
//! replication role (the pure [`PartitionLeader`] or [`PartitionFollower`] of
//! `crate::replication`, driven here), and watch channels that wake fetches waiting
//! for data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use super::partition_map::PartitionMap;

mod following;
mod housekeeping;
mod leading;
mod start;
use super::timers::{PartitionTimer, TimerKind};
use crate::clock::SharedClock;
use crate::log::batch::BatchHeader;
use crate::log::compaction::run::CompactionStats;
use crate::log::producer_state::MarkerRefusal;
use crate::log::{
    AppendError, AppendInfo, DroppedData, FileSlice, Log, LogConfig, LogStorage, ReadError,
    ReadInfo,
};
use crate::replication::follower::PartitionFollower;
use crate::replication::leader::{
    AlterPartitionRequest, FollowerFetchAnswer, LeaderAction, PartitionLeader, ProduceId,
    ProduceWaiter,
};
pub use housekeeping::Housekept;
pub use start::FollowerStarts;

pub struct Partition {
    pub topic: String,
    /// Monotonic time for the replication state machines, wall time for the log.
    clock: SharedClock,
    pub topic_id: Uuid,
    pub index: i32,
    leader_epoch: AtomicI32,
    log: RwLock<Log>,
    /// The high watermark: what consumers may read. Fetches waiting for data subscribe
    /// to it. A leader moves it with its followers; a follower takes its leader's.
    high_watermark: watch::Sender<i64>,
    /// The log end offset, announced after every append and truncation; follower
    /// fetches waiting at the leader subscribe to it.
    log_end: watch::Sender<i64>,
    /// Leader or follower state; taken before the log lock when both are needed.
    role: Mutex<Role>,
    /// Bumped on every leadership change seen here: a follower's fetch in flight to
    /// a former leader is abandoned (that leader may be dead or cut off).
    role_version: watch::Sender<u64>,
    /// acks=all produce requests waiting for the ISR, by waiter id.
    waiters: Mutex<HashMap<u64, oneshot::Sender<Option<ResponseError>>>>,
    next_waiter: AtomicU64,
    /// Held while a produce-driven sync runs (see [`Partition::flush_through`]).
    flush_turn: tokio::sync::Mutex<()>,
    flushes: AtomicU64,
    /// This partition's entries in the broker's timers.
    pub timer: PartitionTimer,
    /// Leader: the followers' log starts (DeleteRecords waits on them; see `start`).
    follower_starts: FollowerStarts,
}

/// How a leader's append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0 and acks=1: once the batch is in the leader's log.
    Leader,
    /// acks=all: once the ISR, at least `min.insync.replicas` strong, holds the batch;
    /// an error at `deadline_ms` at the latest.
    All { deadline_ms: i64 },
}

/// A produce request's batch appended by the leader.
pub struct Appended {
    pub info: AppendInfo,
    /// With acks=all: completes once the ISR holds the batch.
    pub replicated: Option<oneshot::Receiver<Option<ResponseError>>>,
    /// ISR changes to propose to the controller.
    pub proposals: Vec<AlterPartitionRequest>,
    /// `flush.messages` calls for a sync before the batch is acknowledged.
    pub flush_due: bool,
}

/// What this broker does for a partition it hosts.
pub enum Role {
    /// No leader is known, or the partition is being removed from this broker.
    Offline,
    Leader(Box<PartitionLeader>),
    Follower {
        state: PartitionFollower,
        /// Stops the fetch loop of this follower.
        stop: CancellationToken,
    },
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Offline => "offline",
            Role::Leader(_) => "leader",
            Role::Follower { .. } => "follower",
        }
    }
}

/// The answer to a follower's fetch, with the records to send.
pub struct FollowerFetchResult {
    pub answer: FollowerFetchAnswer,
    pub records: Option<FileSlice>,
    pub log_start_offset: i64,
    /// ISR changes to propose to the controller.
    pub proposals: Vec<AlterPartitionRequest>,
}

/// Kafka's `partition.metadata` file: binds a partition directory to its topic id, so
/// a directory left by a deleted topic is never served for a new topic of that name.
fn write_partition_metadata(dir: &Path, topic_id: &Uuid) -> std::io::Result<()> {
    let body = format!(
        "version: 0\ntopic_id: {}\n",
        crate::metadata::base64_uuid(topic_id)
    );
    let tmp = dir.join("partition.metadata.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, dir.join("partition.metadata"))
}

fn read_partition_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: ").map(|s| s.trim().to_string()))
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The partition's directory, bound to `topic_id`; one left by a deleted topic of the
/// same name is removed first.
fn prepare_dir(
    data_dir: &Path,
    topic: &str,
    topic_id: Uuid,
    index: i32,
) -> std::io::Result<PathBuf> {
    let dir = partition_dir(data_dir, topic, index);
    let expected = crate::metadata::base64_uuid(&topic_id);
    match read_partition_topic_id(&dir) {
        Some(found) if found != expected => {
            tracing::warn!(dir = %dir.display(), found, expected, "removing partition directory of an older topic");
            std::fs::remove_dir_all(&dir)?;
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir)?;
    write_partition_metadata(&dir, &topic_id)?;
    Ok(dir)
}

impl Partition {
    /// [`Partition::open_in`] with a bound on open files of its own.
    pub fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        clock: SharedClock,
    ) -> std::io::Result<Partition> {
        let storage = LogStorage::default();
        Self::open_in(
            &storage,
            data_dir,
            topic,
            topic_id,
            index,
            leader_epoch,
            config,
            clock,
        )
    }

    /// Open (recovering) or create the partition's log, on the broker's `storage`. A
    /// damaged log is refused (`OpenError::Corrupt` inside the `io::Error`).
    #[allow(clippy::too_many_arguments)]
    pub fn open_in(
        storage: &LogStorage,
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        clock: SharedClock,
    ) -> std::io::Result<Partition> {
        let dir = prepare_dir(data_dir, topic, topic_id, index)?;
        let log = Log::open_in(storage, &dir, config, clock.wall_ms())?;
        Ok(Partition::from_log(
            topic,
            topic_id,
            index,
            leader_epoch,
            log,
            clock,
        ))
    }

    /// [`Partition::open_in`] for a replica whose data the rest of the ISR holds: a
    /// damaged log is cut at the last whole batch before the damage, and the rest is
    /// fetched again from the leader (see `Log::open_truncating_damage`).
    #[allow(clippy::too_many_arguments)]
    pub fn open_repairing(
        storage: &LogStorage,
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        clock: SharedClock,
    ) -> std::io::Result<(Partition, Option<DroppedData>)> {
        let dir = prepare_dir(data_dir, topic, topic_id, index)?;
        let (log, dropped) = Log::open_truncating_damage(storage, &dir, config, clock.wall_ms())?;
        let partition = Partition::from_log(topic, topic_id, index, leader_epoch, log, clock);
        Ok((partition, dropped))
    }

    fn from_log(
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        log: Log,
        clock: SharedClock,
    ) -> Partition {
        // The high watermark is not known until the partition's leader says (or, as
        // leader, until the ISR has fetched); 0 never shows uncommitted records.
        let (high_watermark, _) = watch::channel(0);
        let (log_end, _) = watch::channel(log.log_end_offset());
        Partition {
            clock,
            topic: topic.to_string(),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(leader_epoch),
            log: RwLock::new(log),
            high_watermark,
            log_end,
            role: Mutex::new(Role::Offline),
            role_version: watch::channel(0).0,
            waiters: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(1),
            flush_turn: tokio::sync::Mutex::new(()),
            flushes: AtomicU64::new(0),
            timer: PartitionTimer::default(),
            follower_starts: FollowerStarts::default(),
        }
    }

    /// The broker's clock, which this partition's state machines run on.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn topic_partition(&self) -> crate::replication::TopicPartition {
        crate::replication::TopicPartition {
            topic_id: self.topic_id,
            partition: self.index,
        }
    }

    /// "leader", "follower" or "offline".
    pub fn role_name(&self) -> &'static str {
        self.role.lock().name()
    }

    pub fn is_leader(&self) -> bool {
        matches!(*self.role.lock(), Role::Leader(_))
    }

    /// The high watermark as clients may be told it: OFFSET_NOT_AVAILABLE while a new
    /// leader's high watermark is still below the start of its epoch (its followers
    /// have not fetched yet; KIP-207), NOT_LEADER_OR_FOLLOWER off the leader.
    pub fn client_high_watermark(&self) -> Result<i64, ResponseError> {
        match &*self.role.lock() {
            Role::Leader(l) => l.client_high_watermark().map(|hw| hw.0),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    /// The committed ISR size when leading.
    pub fn isr_len(&self) -> Option<usize> {
        match &*self.role.lock() {
            Role::Leader(l) => Some(l.isr().len()),
            _ => None,
        }
    }

    /// Is `replica` in the ISR of this partition led here? False when not leading.
    pub fn isr_contains(&self, replica: i32) -> bool {
        match &*self.role.lock() {
            Role::Leader(l) => l.isr().contains(replica),
            _ => false,
        }
    }

    /// Stop leading or following (partition offline, moved away, or shutting down).
    pub fn make_offline(&self) {
        let previous = std::mem::replace(&mut *self.role.lock(), Role::Offline);
        let actions = self.step_down(previous);
        self.perform(actions);
    }

    /// Fetches waiting here for data (followers long-polling this leader) look again
    /// and learn the new state; follower loops abandon fetches in flight.
    fn announce_role_change(&self) {
        self.role_version.send_modify(|v| *v += 1);
        self.log_end.send_modify(|_| {});
    }

    /// A receiver that sees every later leadership change of this partition.
    pub fn watch_role(&self) -> watch::Receiver<u64> {
        self.role_version.subscribe()
    }

    fn step_down(&self, previous: Role) -> Vec<LeaderAction> {
        self.announce_role_change();
        match previous {
            Role::Leader(leader) => leader.resign(),
            Role::Follower { stop, .. } => {
                stop.cancel();
                vec![]
            }
            Role::Offline => vec![],
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Append the group coordinator's records as leader, acknowledged like an acks=all
    /// produce (see [`Appended::replicated`]); syncs in line when `flush.messages`
    /// calls for it.
    pub fn append_replicated(
        &self,
        records: impl Into<Bytes>,
        deadline_ms: i64,
    ) -> Result<Appended, AppendError> {
        let appended = self.append_produce(records.into(), Acks::All { deadline_ms })?;
        if appended.flush_due {
            self.log.write().flush(self.clock.wall_ms())?;
        }
        Ok(appended)
    }

    /// Append a produce request's batch as leader. With [`Acks::All`] the leader state
    /// machine decides: the append is refused with NotEnoughReplicas when the ISR is
    /// below the topic's `min.insync.replicas`, and [`Appended::replicated`] completes
    /// once the ISR holds the batch, or with an error (NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// when the ISR shrank below the minimum meanwhile, a timeout at the deadline,
    /// leadership lost). The batch is not synced here: see [`Appended::flush_due`] and
    /// [`Partition::flush_through`].
    pub fn append_produce(&self, records: Bytes, acks: Acks) -> Result<Appended, AppendError> {
        self.append_as_leader(acks, |log, epoch, now_ms, _| {
            log.append_as_leader(records, epoch, now_ms)
        })
    }

    /// The leader's append: `append` writes to the log (given the leader epoch, the
    /// wall time and the high watermark); the leader state machine decides the rest.
    fn append_as_leader(
        &self,
        acks: Acks,
        append: impl FnOnce(&mut Log, i32, i64, i64) -> Result<AppendInfo, AppendError>,
    ) -> Result<Appended, AppendError> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(leader) = &mut *role else {
            return Err(AppendError::NotLeader);
        };
        let deadline_ms = match acks {
            Acks::Leader => None,
            Acks::All { deadline_ms } => Some(deadline_ms),
        };
        if leader.check_produce(deadline_ms.is_some()).is_err() {
            return Err(AppendError::NotEnoughReplicas {
                isr: leader.isr().len(),
                min: leader.effective_min_isr(),
            });
        }
        let (info, leo, flush_due) = {
            let mut log = self.log.write();
            let info = append(
                &mut log,
                self.leader_epoch(),
                self.clock.wall_ms(),
                self.high_watermark(),
            )?;
            (info, log.log_end_offset(), log.flush_due())
        };
        self.log_end.send_replace(leo);
        let mut replicated = None;
        let waiter = deadline_ms.map(|deadline_ms| {
            let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.waiters.lock().insert(id, tx);
            replicated = Some(rx);
            ProduceWaiter {
                id: ProduceId(id),
                last_offset: info.last_offset,
                deadline_ms,
            }
        });
        let actions = leader.on_appended(now_ms, leo, waiter);
        // The append may leave a silent follower behind (its lag deadline), and an
        // acks=all waiter times out at its deadline.
        let isr_due = leader.isr_deadline_ms();
        let due = match waiter {
            Some(w) => Some(isr_due.map_or(w.deadline_ms, |d| d.min(w.deadline_ms))),
            None => isr_due,
        };
        self.timer.arm(TimerKind::Leader, due);
        drop(role);
        self.timer.log_appended(now_ms);
        Ok(Appended {
            info,
            replicated,
            proposals: self.perform(actions),
            flush_due,
        })
    }

    /// Wait until the log is synced through `last_offset` (group commit). One sync
    /// runs at a time; requests that append while it runs wait their turn, and the
    /// next sync covers all of them, so concurrent producers share each fdatasync
    /// instead of queueing one sync each behind the log's lock. The sync runs on the
    /// blocking pool with no lock held: appends and fetches go on meanwhile.
    pub async fn flush_through(&self, last_offset: i64) -> Result<(), ResponseError> {
        if self.log.read().recovery_point() > last_offset {
            return Ok(());
        }
        let _turn = self.flush_turn.lock().await;
        let job = {
            let mut log = self.log.write();
            if log.recovery_point() > last_offset {
                return Ok(());
            }
            log.prepare_flush(self.clock.wall_ms())
                .map_err(|e| self.storage_error("preparing a sync", &e))?
        };
        let job = tokio::task::spawn_blocking(move || job.run().map(|()| job))
            .await
            .map_err(|e| self.storage_error("syncing", &std::io::Error::other(e)))?
            .map_err(|e| self.storage_error("syncing", &e))?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let moved = self
            .log
            .write()
            .complete_flush(&job, self.clock.wall_ms())
            .map_err(|e| self.storage_error("writing the recovery point", &e))?;
        // Truncated during the sync: the offsets were given up with the leadership.
        if moved && job.end_offset() > last_offset {
            Ok(())
        } else {
            Err(ResponseError::NotLeaderOrFollower)
        }
    }

    /// Syncs run by [`Partition::flush_through`] so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    fn storage_error(&self, what: &str, e: &std::io::Error) -> ResponseError {
        tracing::error!(topic = %self.topic, partition = self.index, error = %e, "{what} the log failed");
        ResponseError::KafkaStorageError
    }

    /// Whole batches from `offset`, never past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ReadError> {
        let hw = self.high_watermark();
        self.log.read().read(offset, max_bytes, hw, min_one_batch)
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.read())
    }

    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.log.write())
    }

    /// Compact the log if it is due: plan under the read lock, clean with no lock
    /// (appends and fetches go on), install under the write lock. `None` when nothing
    /// was due or the log changed meanwhile.
    pub fn compact(&self) -> std::io::Result<Option<CompactionStats>> {
        let now_ms = self.clock.wall_ms();
        let hw = self.high_watermark();
        let Some(plan) = self.with_log(|log| log.plan_compaction(now_ms, hw)) else {
            return Ok(None);
        };
        let result = plan.run()?;
        let stats = result.stats.clone();
        let installed = self.with_log_mut(|log| log.install_compaction(result))?;
        Ok(installed.then_some(stats))
    }
}

/// The offset after the last batch in `records` (whole batches), if any.
fn records_end_offset(records: &[u8]) -> Option<i64> {
    let mut rest = records;
    let mut end = None;
    while let Some(h) = BatchHeader::parse_prefix(rest) {
        end = Some(h.last_offset() + 1);
        let size = usize::try_from(h.size_bytes()).ok()?;
        if size == 0 || size > rest.len() {
            break;
        }
        rest = &rest[size..];
    }
    end
}

/// The Kafka error code of a refused append.
pub fn append_error_code(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Corrupt(_) => ResponseError::CorruptMessage,
        AppendError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::MarkerRefused(MarkerRefusal::ProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::MarkerRefused(MarkerRefusal::CoordinatorEpoch { .. }) => {
            ResponseError::TransactionCoordinatorFenced
        }
        AppendError::Unsupported(_) => ResponseError::UnsupportedForMessageFormat,
        AppendError::InvalidRecord(_) => ResponseError::InvalidRecord,
        AppendError::RecordsRefused(r) if r.timestamp => ResponseError::InvalidTimestamp,
        AppendError::RecordsRefused(_) => ResponseError::InvalidRecord,
        AppendError::Io(_) => ResponseError::KafkaStorageError,
        AppendError::NotLeader => ResponseError::NotLeaderOrFollower,
        AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
    }
}

#[path = "partition_txn.rs"]
mod txn;
pub use txn::IsolatedRead;

#[cfg(test)]
#[path = "partition_txn_tests.rs"]
mod txn_tests;

#[cfg(test)]
mod tests;
