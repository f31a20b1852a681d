//! A partition hosted by this broker: its log behind a lock, its leader epoch, its
//! replication role (the pure [`PartitionLeader`] or [`PartitionFollower`] of
//! `crate::replication`, driven here), and watch channels that wake fetches waiting
//! for data.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use super::partition_map::PartitionMap;

mod housekeeping;
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
use crate::replication::follower::{FetchRequest, FollowerAction, PartitionFollower};
use crate::replication::leader::{
    AlterPartitionRequest, FollowerFetch, FollowerFetchAnswer, LeaderAction, PartitionLeader,
    ProduceId, ProduceWaiter,
};
use crate::replication::{BrokerEpoch, HighWatermark, PartitionRegistration};
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

    /// Become (or stay) leader of `registration`'s leader epoch. A new epoch starts a
    /// fresh leader from the log; the same epoch updates the ISR and replicas. Returns
    /// ISR proposals to send.
    pub fn make_leader(
        &self,
        local: i32,
        config: crate::replication::leader::LeaderConfig,
        registration: PartitionRegistration,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        if let Role::Leader(leader) = &mut *role {
            if leader.leader_epoch() == registration.leader_epoch {
                leader.reconfigure(config);
                let actions = leader.on_partition_update(now_ms, registration);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                drop(role);
                return self.perform(actions);
            }
        }
        let previous = std::mem::replace(&mut *role, Role::Offline);
        let mut actions = self.step_down(previous);
        self.follower_starts.forget();
        self.leader_epoch
            .store(registration.leader_epoch.0, Ordering::Release);
        let leo = self.log.read().log_end_offset();
        let mut leader = PartitionLeader::new(
            self.topic_partition(),
            local,
            config,
            registration,
            leo,
            HighWatermark(self.high_watermark()),
            now_ms,
        );
        // With no other replica in the ISR, everything in the log is committed now.
        actions.extend(leader.on_appended(now_ms, leo, None));
        self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
        *role = Role::Leader(Box::new(leader));
        drop(role);
        self.perform(actions)
    }

    /// Follow `registration`'s leader. Returns `Some(token)` when a fetch loop must be
    /// started for this partition (it was not following before), `None` when the
    /// running loop carries on with the new leader.
    pub fn make_follower(
        &self,
        local: i32,
        config: crate::replication::follower::FollowerConfig,
        registration: &PartitionRegistration,
    ) -> Option<CancellationToken> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        self.leader_epoch
            .store(registration.leader_epoch.0, Ordering::Release);
        if let Role::Follower { state, .. } = &mut *role {
            if registration.leader_epoch > state.leader_epoch() {
                self.role_version.send_modify(|v| *v += 1);
            }
            state.on_leader_change(now_ms, registration.leader, registration.leader_epoch);
            return None;
        }
        let previous = std::mem::replace(&mut *role, Role::Offline);
        let actions = self.step_down(previous);
        let stop = CancellationToken::new();
        *role = Role::Follower {
            state: PartitionFollower::new(
                self.topic_partition(),
                local,
                config,
                registration.leader,
                registration.leader_epoch,
                HighWatermark(self.high_watermark()),
                now_ms,
            ),
            stop: stop.clone(),
        };
        drop(role);
        self.perform(actions);
        Some(stop)
    }

    /// The token that ends this partition's follower role, while it is a follower.
    pub fn follower_stop(&self) -> Option<CancellationToken> {
        match &*self.role.lock() {
            Role::Follower { stop, .. } => Some(stop.clone()),
            _ => None,
        }
    }

    /// Lead alone, as the only replica (tests that drive a partition directly).
    #[cfg(test)]
    pub fn lead_alone(&self, local: i32) {
        let registration = PartitionRegistration {
            replicas: vec![local],
            isr: crate::replication::Isr::new(vec![local]),
            leader: local,
            leader_epoch: crate::replication::LeaderEpoch(self.leader_epoch()),
            partition_epoch: crate::replication::PartitionEpoch(0),
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        };
        let config = crate::replication::leader::LeaderConfig::default();
        self.make_leader(local, config, registration);
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

    /// Carry out a leader's actions that stay in this partition (high watermark,
    /// completed produce requests); return the ISR proposals for the controller.
    fn perform(&self, actions: Vec<LeaderAction>) -> Vec<AlterPartitionRequest> {
        let mut proposals = Vec::new();
        for action in actions {
            match action {
                LeaderAction::HighWatermarkAdvanced(hw) => {
                    self.high_watermark.send_if_modified(|cur| {
                        let advanced = hw.0 > *cur;
                        if advanced {
                            *cur = hw.0;
                        }
                        advanced
                    });
                }
                LeaderAction::CompleteProduce { id, error } => {
                    if let Some(tx) = self.waiters.lock().remove(&id.0) {
                        let _ = tx.send(error);
                    }
                }
                LeaderAction::AlterPartition(request) => proposals.push(request),
            }
        }
        proposals
    }

    /// Time passed: ISR shrinks and timed-out acks=all waiters (leader), or what the
    /// follower should fetch next.
    pub fn tick(&self) -> Vec<AlterPartitionRequest> {
        // Before the state is read: a deadline armed from here on is either seen below
        // or armed anew.
        self.timer.fired(TimerKind::Leader);
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) => {
                let actions = leader.on_tick(now_ms);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// The metadata changed what it says of `broker` (see
    /// [`PartitionLeader::on_broker_state`]); nothing when not leading.
    pub fn on_broker_state(
        &self,
        broker: i32,
        eligible_epoch: Option<BrokerEpoch>,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) => {
                let actions = leader.on_broker_state(now_ms, broker, eligible_epoch);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// The controller's answer to an ISR proposal of this partition's leader.
    pub fn on_alter_partition_response(
        &self,
        request: &AlterPartitionRequest,
        response: Result<PartitionRegistration, ResponseError>,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) if leader.leader_epoch() == request.leader_epoch => {
                let actions = leader.on_alter_partition_response(now_ms, response);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// A follower's fetch, at the leader: check its epoch, note its position, and
    /// hand out the records after `fetch_offset` (up to the log end, not the high
    /// watermark: followers copy uncommitted records too).
    pub fn follower_fetch(&self, fetch: &FollowerFetch, max_bytes: usize) -> FollowerFetchResult {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(leader) = &mut *role else {
            return FollowerFetchResult {
                answer: FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower),
                records: None,
                log_start_offset: -1,
                proposals: vec![],
            };
        };
        let log = self.log.read();
        let (answer, actions) = leader.on_follower_fetch(now_ms, fetch, &*log);
        // A proposal sent here is resent at its retry deadline.
        self.timer.arm(TimerKind::Leader, leader.isr_deadline_ms());
        let mut records = None;
        let mut answer = answer;
        if let FollowerFetchAnswer::Records { fetch_offset, .. } = answer {
            match log.read(fetch_offset, max_bytes, log.log_end_offset(), true) {
                Ok(info) => records = info.slice,
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    answer = FollowerFetchAnswer::Error(ResponseError::OffsetOutOfRange)
                }
                Err(e) => {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "reading for a follower failed");
                    answer = FollowerFetchAnswer::Error(ResponseError::KafkaStorageError)
                }
            }
        }
        let log_start_offset = log.log_start_offset();
        drop(log);
        drop(role);
        FollowerFetchResult {
            answer,
            records,
            log_start_offset,
            proposals: self.perform(actions),
        }
    }

    /// The follower's next fetch, if it is time for one.
    pub fn next_fetch(&self) -> Option<FetchRequest> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Follower { state, .. } = &mut *role else {
            return None;
        };
        let log = self.log.read();
        state
            .on_tick(now_ms, &*log)
            .into_iter()
            .find_map(|a| match a {
                FollowerAction::Fetch(r) => Some(r),
                _ => None,
            })
    }

    /// The leader's answer to this follower's fetch `request`: truncate, append and
    /// take the high watermark as the follower state machine decides. A follower
    /// below the leader's log start (retention moved it) restarts from there.
    pub fn on_fetch_response(
        &self,
        request: &FetchRequest,
        answer: FollowerFetchAnswer,
        records: Bytes,
    ) -> Result<(), String> {
        let mut role = self.role.lock();
        let Role::Follower { state, .. } = &mut *role else {
            return Ok(());
        };
        let now_ms = self.clock.now_ms();
        let mut log = self.log.write();
        let records_end = records_end_offset(&records).unwrap_or(request.fetch.fetch_offset);
        let actions = state.on_fetch_response(now_ms, request, answer, records_end, &*log);
        for action in actions {
            match action {
                FollowerAction::TruncateTo(offset) => {
                    tracing::info!(topic = %self.topic, partition = self.index, offset, "truncating a diverged log");
                    log.truncate_to(offset)
                        .map_err(|e| format!("truncating to {offset}: {e}"))?;
                    self.log_end.send_replace(log.log_end_offset());
                }
                FollowerAction::AppendRecords => {
                    log.append_as_follower(records.clone())
                        .map_err(|e| format!("appending replicated records: {e}"))?;
                    self.timer.log_appended(now_ms);
                    self.log_end.send_replace(log.log_end_offset());
                }
                FollowerAction::SetHighWatermark(hw) => {
                    log.on_high_watermark(hw.0);
                    self.high_watermark.send_replace(hw.0);
                }
                FollowerAction::Fetch(_) => {}
            }
        }
        Ok(())
    }

    /// Follower: our log starts after the leader's log end or before its log start;
    /// start over from `offset` with an empty log (Kafka's behaviour for a follower
    /// out of range of its leader).
    pub fn reset_to(&self, offset: i64) -> Result<(), String> {
        let mut log = self.log.write();
        log.truncate_fully_and_start_at(offset)
            .map_err(|e| format!("resetting log to {offset}: {e}"))?;
        self.log_end.send_replace(log.log_end_offset());
        Ok(())
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Followers' positions as seen by this leader: (broker, log end offset).
    pub fn follower_positions(&self) -> BTreeMap<i32, Option<i64>> {
        match &*self.role.lock() {
            Role::Leader(l) => l
                .registration()
                .replicas
                .iter()
                .filter_map(|&b| l.follower(b).map(|f| (b, f.log_end_offset)))
                .collect(),
            _ => BTreeMap::new(),
        }
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
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::log::batch::testing::TestBatch;
    use crate::replication::BrokerEpoch;

    fn leader(dir: &Path, config: LogConfig) -> Partition {
        let p = Partition::open(
            dir,
            "t",
            Uuid::new_v4(),
            0,
            0,
            config,
            crate::clock::ManualClock::new(0),
        )
        .unwrap();
        p.lead_alone(1);
        p
    }

    /// Leader (broker 1) of replicas [1,2,3], all in sync, on `clock`, with followers
    /// 2 and 3 caught up.
    pub(super) fn replicated_leader(dir: &Path, clock: SharedClock) -> Partition {
        use crate::replication::leader::{FollowerFetch, LeaderConfig};
        use crate::replication::LeaderEpoch;
        let p =
            Partition::open(dir, "t", Uuid::new_v4(), 0, 0, LogConfig::default(), clock).unwrap();
        let registration = PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 0, 0);
        let config = LeaderConfig {
            replica_lag_time_max_ms: 10_000,
            min_insync_replicas: 2,
            alter_partition_retry_ms: 1_000,
        };
        p.make_leader(1, config, registration);
        for replica in [2, 3] {
            let fetch = FollowerFetch {
                replica,
                current_leader_epoch: LeaderEpoch(0),
                fetch_offset: 0,
                last_fetched_epoch: -1,
                broker_epoch: Some(BrokerEpoch(0)),
                isr_eligible: true,
            };
            p.follower_fetch(&fetch, 1 << 20);
        }
        p
    }

    #[test]
    fn a_wall_clock_step_neither_shrinks_the_isr_nor_times_out_acks_all() {
        let clock = crate::clock::ManualClock::new(1_700_000_000_000);
        let dir = tempfile::tempdir().unwrap();
        let p = replicated_leader(dir.path(), clock.clone());
        let appended = p
            .append_produce(
                TestBatch::new(&["v"], 1).encode().into(),
                Acks::All {
                    deadline_ms: clock.now_ms() + 5_000,
                },
            )
            .unwrap();
        let mut replicated = appended.replicated.unwrap();
        // Someone sets the time an hour ahead, then an hour back.
        for wall in [clock.wall_ms() + 3_600_000, clock.wall_ms() - 3_600_000] {
            clock.set_wall(wall);
            clock.advance(100);
            assert_eq!(
                p.tick(),
                vec![],
                "ISR change proposed after a wall clock step"
            );
            assert!(
                replicated.try_recv().is_err(),
                "acks=all answered after a wall clock step"
            );
        }
        // Durations still pass: the deadline, then the followers' lag.
        clock.advance(5_000);
        assert_eq!(p.tick(), vec![]);
        assert_eq!(
            replicated.try_recv(),
            Ok(Some(ResponseError::RequestTimedOut))
        );
        clock.advance(5_000);
        let shrink = p.tick();
        assert_eq!(shrink.len(), 1, "the silent followers leave the ISR");
        assert_eq!(shrink[0].new_isr.members(), &[1]);
    }

    #[tokio::test]
    async fn produce_requests_waiting_for_a_sync_share_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush_messages: 1,
            ..LogConfig::default()
        };
        let p = leader(dir.path(), config);
        let mut last_offsets = Vec::new();
        for i in 0..8 {
            let appended = p
                .append_produce(TestBatch::new(&["v"], i).encode().into(), Acks::Leader)
                .unwrap();
            assert!(appended.flush_due);
            last_offsets.push(appended.info.last_offset);
        }
        let waits = last_offsets.iter().map(|&o| p.flush_through(o));
        for result in futures::future::join_all(waits).await {
            assert_eq!(result, Ok(()));
        }
        // The first sync covered all eight batches; the others found them durable.
        assert_eq!(p.flushes(), 1);
        assert_eq!(p.with_log(|log| log.recovery_point()), 8);
        // A batch appended after it needs a sync of its own.
        let appended = p
            .append_produce(TestBatch::new(&["w"], 9).encode().into(), Acks::Leader)
            .unwrap();
        assert_eq!(p.flush_through(appended.info.last_offset).await, Ok(()));
        assert_eq!(p.flushes(), 2);
        assert_eq!(p.flush_through(0).await, Ok(()));
        assert_eq!(p.flushes(), 2);
    }
}
