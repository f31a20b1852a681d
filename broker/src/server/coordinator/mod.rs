//! The group coordinator runtime. The coordinator of group G is the leader of
//! partition `partition_for(G, N)` of `__consumer_offsets`, so the runtime keeps one
//! shard per partition this broker leads: [`GroupRuntime::become_leader`] reads the
//! partition back into a fresh pure [`GroupCoordinator`], [`GroupRuntime::resign`]
//! drops it, and a request for a group whose shard is not loaded here is answered
//! NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while it loads) so that the client
//! looks the coordinator up again. Each loaded shard sits behind its own lock
//! together with the JoinGroup and SyncGroup requests parked on it. Records the state
//! machine asks to persist are appended to that partition (one RecordBatch v2 per
//! event, uncompressed, no producer id) before the answers that depend on them are
//! sent; a TxnOffsetCommit's offsets go as the producer's transactional batch and stay
//! pending until its transaction's marker (`txn`). A timer task ticks the loaded state
//! machines (session, rebalance and sync deadlines), expires offsets and drops the
//! offsets of deleted topics.
//!
//! - `load`: the records' batches, and reading a partition back (records, transactional
//!   records and markers, in log order).
//! - `txn`: TxnOffsetCommit and [`GroupRuntime::complete_txn`].
//! - `lifecycle`: `__consumer_offsets` creation and the timer task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::partition::Partition;
use super::shards::{Load, Shards};
use crate::group::{
    Action, CommitRequest, GroupConfig, GroupCoordinator, GroupRecord, JoinRequest, JoinResult,
    RequestId, SyncRequest, SyncResult,
};
use crate::log::AppendError;
use load::{append_with, read_partition, LoadEvent};

pub mod lifecycle;
mod load;
mod txn;
/// Added to a parked request's own bound before the runtime gives up on it; the
/// state machine answers every parked request by its deadline, so this only guards
/// against a bug leaving a client hanging.
const PARKED_SLACK: Duration = Duration::from_secs(5);

/// The coordinator of the groups of one `__consumer_offsets` partition that this
/// broker leads, at one leader epoch.
pub struct Shard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    write_timeout_ms: i64,
    next_request: AtomicU64,
    state: Mutex<ShardState>,
}

struct ShardState {
    /// False once the shard is resigned or replaced by a newer epoch's: a request
    /// that found the shard just before then must not act on it.
    active: bool,
    coordinator: GroupCoordinator,
    /// Parked requests. Dropping a sender (on resign) answers NOT_COORDINATOR.
    joins: HashMap<RequestId, oneshot::Sender<JoinResult>>,
    syncs: HashMap<RequestId, oneshot::Sender<SyncResult>>,
}

/// Transaction markers written while a shard loads ([`GroupRuntime::complete_txn`]),
/// applied once it is done: the load may have read the log before them. One seen by
/// the load as well is a no-op the second time (nothing pending). By producer, the
/// first marker only: nothing can become pending while the shard loads, so a later
/// one (a retry, or the end of a transaction that committed no offsets here) has
/// nothing to complete; this bounds the map by the producers, not by the markers.
type MarkersWhileLoading = std::collections::BTreeMap<i64, bool>;

impl super::shards::Shard for Shard {
    fn topic_id(&self) -> Uuid {
        self.partition.topic_id
    }
    fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
}

pub struct GroupRuntime {
    config: GroupConfig,
    /// How long a group write may wait for the ISR (request.timeout.ms).
    write_timeout_ms: i64,
    /// By `__consumer_offsets` partition index.
    shards: Shards<Shard, MarkersWhileLoading>,
    /// Rebalances counted by shards that have since been dropped.
    rebalances_dropped: AtomicU64,
    /// For the rebalance counter: total already added to the metric.
    rebalances_reported: AtomicU64,
}

impl GroupRuntime {
    pub fn new(config: GroupConfig) -> GroupRuntime {
        GroupRuntime {
            config,
            write_timeout_ms: 30_000,
            shards: Shards::default(),
            rebalances_dropped: AtomicU64::new(0),
            rebalances_reported: AtomicU64::new(0),
        }
    }

    /// The runtime a broker with `config` starts with, no shard loaded: shards come
    /// with [`GroupRuntime::become_leader`].
    pub fn from_config(config: &crate::config::BrokerConfig) -> GroupRuntime {
        let mut runtime = GroupRuntime::new(GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        });
        runtime.write_timeout_ms = i64::try_from(config.request_timeout_ms).unwrap_or(i64::MAX);
        runtime
    }

    /// Coordinate the groups of `partition`, which this broker now leads: read it
    /// from its log start to its log end offset (a new leader's whole log is
    /// committed) into a fresh coordinator. Idempotent for the same leader epoch; a
    /// newer epoch reloads, and requests parked on the replaced shard are answered
    /// NOT_COORDINATOR. Does file I/O: call from a blocking context.
    pub fn become_leader(&self, partition: Arc<Partition>) {
        let load_epoch = partition.leader_epoch();
        let Some(load) = self.begin_load(&partition, load_epoch) else {
            return;
        };
        let started = std::time::Instant::now();
        let mut coordinator = GroupCoordinator::new(self.config.clone());
        let now = partition.clock().now_ms();
        let replay = |event| match event {
            LoadEvent::Record(r) => coordinator.replay(r, now),
            LoadEvent::Txn {
                producer_id,
                record,
            } => coordinator.replay_txn_offset(producer_id, record, now),
            LoadEvent::Marker {
                producer_id,
                commit,
            } => coordinator.complete_txn(producer_id, commit, now),
        };
        match read_partition(&partition, replay) {
            Ok(records) => {
                let groups = coordinator.groups().count();
                let installed = self.finish_load(partition.clone(), load, coordinator);
                if installed {
                    tracing::info!(
                        partition = partition.index,
                        leader_epoch = load_epoch,
                        groups,
                        records,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "loaded group coordinator shard"
                    );
                }
            }
            Err(e) => {
                // Clients hear NOT_COORDINATOR and retry; the next leadership change
                // or restart loads again.
                tracing::error!(error = %e, "could not load group coordinator shard");
                self.shards.abandon_load(partition.index, &load);
            }
        }
    }

    /// Mark the partition's shard as loading at `epoch`, unless it is already loaded
    /// or loading at that leader epoch (or a newer one); a replaced shard is retired.
    fn begin_load(&self, partition: &Partition, epoch: i32) -> Option<Load> {
        let (load, replaced) = self.shards.begin_load(partition, epoch)?;
        if let Some(old) = replaced {
            self.retire(&old);
        }
        Some(load)
    }

    /// Install a loaded coordinator, with the markers that arrived while it loaded,
    /// unless the load was superseded meanwhile (by a resign or a newer epoch's load).
    fn finish_load(
        &self,
        partition: Arc<Partition>,
        load: Load,
        mut coordinator: GroupCoordinator,
    ) -> bool {
        self.shards
            .finish_load(partition.index, &load, |markers| {
                let now = partition.clock().now_ms();
                for (producer_id, commit) in markers {
                    coordinator.complete_txn(producer_id, commit, now);
                }
                Shard {
                    leader_epoch: load.leader_epoch,
                    write_timeout_ms: self.write_timeout_ms,
                    partition: partition.clone(),
                    next_request: AtomicU64::new(1),
                    state: Mutex::new(ShardState {
                        active: true,
                        coordinator,
                        joins: HashMap::new(),
                        syncs: HashMap::new(),
                    }),
                }
            })
            .is_some()
    }

    /// Stop coordinating the groups of partition `index`: its state is dropped and
    /// requests parked on it are answered NOT_COORDINATOR.
    pub fn resign(&self, index: i32) {
        if let Some(old) = self.shards.remove(index) {
            tracing::info!(partition = index, "resigned group coordinator shard");
            self.retire(&old);
        }
    }

    fn retire(&self, shard: &Shard) {
        let mut state = shard.state.lock();
        state.active = false;
        // The waiting requests see their sender dropped: NOT_COORDINATOR.
        state.joins.clear();
        state.syncs.clear();
        self.rebalances_dropped
            .fetch_add(state.coordinator.rebalances_total(), Ordering::Relaxed);
    }

    /// The shard coordinating the groups of `__consumer_offsets` partition `index`:
    /// NOT_COORDINATOR when not led here, COORDINATOR_LOAD_IN_PROGRESS while loading.
    pub fn shard(&self, index: i32) -> Result<Arc<Shard>, ResponseError> {
        self.shards.get(index)
    }

    fn loaded(&self) -> Vec<Arc<Shard>> {
        self.shards.loaded()
    }

    /// (group id, protocol type, state) of every group coordinated here.
    pub fn list(&self) -> Vec<(String, String, crate::group::GroupState)> {
        let mut out = Vec::new();
        for s in self.loaded() {
            let state = s.state.lock();
            out.extend(
                state
                    .coordinator
                    .groups()
                    .map(|g| (g.id().to_string(), g.protocol_type().to_string(), g.state())),
            );
        }
        out
    }

    pub fn each_shard(&self, f: impl Fn(&mut GroupCoordinator) -> Vec<Action>) {
        for shard in self.loaded() {
            let mut state = shard.state.lock();
            if !state.active {
                continue;
            }
            let actions = f(&mut state.coordinator);
            let _ = shard.execute(&mut state, actions);
        }
    }

    /// Refresh the group gauges: groups by state, members per group, committed offset
    /// and lag per group and partition (from `high_watermark` of the partitions hosted
    /// here), rebalances.
    pub fn refresh_metrics(
        &self,
        m: &crate::metrics::Metrics,
        high_watermark: impl Fn(&str, i32) -> Option<i64>,
    ) {
        m.group_members.reset();
        m.group_committed_offset.reset();
        m.group_lag.reset();
        let mut by_state: HashMap<&'static str, i64> = crate::group::GroupState::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
        let mut rebalances = self.rebalances_dropped.load(Ordering::Relaxed);
        for shard in self.loaded() {
            let state = shard.state.lock();
            rebalances += state.coordinator.rebalances_total();
            for g in state.coordinator.groups() {
                *by_state.entry(g.state().as_str()).or_default() += 1;
                m.group_members
                    .with_label_values(&[g.id()])
                    .set(i64::try_from(g.member_count()).unwrap_or(i64::MAX));
                for ((topic, partition), v) in g.offsets() {
                    let p = partition.to_string();
                    let labels = [g.id(), topic.as_str(), p.as_str()];
                    m.group_committed_offset
                        .with_label_values(&labels)
                        .set(v.offset);
                    // Not hosted here when this broker is no replica of the partition.
                    if let Some(hw) = high_watermark(topic, *partition) {
                        let lag = (hw - v.offset).max(0);
                        m.group_lag.with_label_values(&labels).set(lag);
                    }
                }
            }
        }
        for (state, n) in by_state {
            m.groups.with_label_values(&[state]).set(n);
        }
        let before = self.rebalances_reported.swap(rebalances, Ordering::Relaxed);
        m.group_rebalances.inc_by(rebalances.saturating_sub(before));
    }
}

impl Shard {
    /// The `__consumer_offsets` partition this shard coordinates.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// The coordinator's time: the broker's monotonic clock.
    fn now_ms(&self) -> i64 {
        self.partition.clock().now_ms()
    }

    /// Lock the state of a shard still in service.
    fn active(&self) -> Result<parking_lot::MutexGuard<'_, ShardState>, ResponseError> {
        let state = self.state.lock();
        if state.active {
            Ok(state)
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> JoinResult {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let bound = Duration::from_millis(
            u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms)).unwrap_or(0),
        ) + PARKED_SLACK;
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = match self.active() {
                Ok(s) => s,
                Err(e) => return JoinResult::error(e, &member_id),
            };
            state.joins.insert(id, tx);
            let actions = state.coordinator.join(req, id, self.now_ms());
            let _ = self.execute(&mut state, actions);
        }
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(result)) => result,
            // Resigned while parked.
            Ok(Err(_)) => JoinResult::error(ResponseError::NotCoordinator, &member_id),
            Err(_) => {
                self.state.lock().joins.remove(&id);
                tracing::warn!(member_id, "JoinGroup was not answered in time");
                JoinResult::error(ResponseError::RebalanceInProgress, &member_id)
            }
        }
    }

    /// SyncGroup. The leader's assignment is answered to the members only once the
    /// ISR, at least `min.insync.replicas` strong, holds it (see [`Shard::execute`]).
    pub async fn sync(
        self: &Arc<Self>,
        req: SyncRequest,
        rebalance_timeout: Duration,
    ) -> SyncResult {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = match self.active() {
                Ok(s) => s,
                Err(e) => return SyncResult::error(e),
            };
            state.syncs.insert(id, tx);
            let actions = state.coordinator.sync(req, id, self.now_ms());
            let _ = self.execute(&mut state, actions);
        }
        match tokio::time::timeout(rebalance_timeout + PARKED_SLACK, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => SyncResult::error(ResponseError::NotCoordinator),
            Err(_) => {
                self.state.lock().syncs.remove(&id);
                SyncResult::error(ResponseError::RebalanceInProgress)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        match self.active() {
            Ok(mut state) => state.coordinator.heartbeat(
                group_id,
                member_id,
                group_instance_id,
                generation_id,
                self.now_ms(),
            ),
            Err(e) => Some(e),
        }
    }

    pub fn leave(
        self: &Arc<Self>,
        group_id: &str,
        members: &[crate::group::MemberRef],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let mut state = self.active()?;
        let (errors, actions) = state.coordinator.leave(group_id, members, self.now_ms());
        let _ = self.execute(&mut state, actions);
        Ok(errors)
    }

    /// OffsetCommit: answered once the ISR, at least `min.insync.replicas` strong,
    /// holds the offsets, as an acks=all produce.
    pub async fn commit(self: &Arc<Self>, req: CommitRequest) -> Result<(), ResponseError> {
        let written = {
            let mut state = self.active()?;
            let actions = state.coordinator.commit(req, self.now_ms())?;
            self.execute(&mut state, actions)?
        };
        await_written(written, WriteKind::Offsets).await
    }

    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<(String, i32, Option<crate::group::OffsetValue>)>, ResponseError> {
        Ok(self
            .active()?
            .coordinator
            .fetch_offsets(group_id, partitions))
    }

    pub fn describe(
        &self,
        group_id: &str,
    ) -> Result<crate::group::GroupDescription, ResponseError> {
        Ok(self.active()?.coordinator.describe(group_id))
    }

    pub async fn delete_group(self: &Arc<Self>, group_id: &str) -> Result<(), ResponseError> {
        let written = {
            let mut state = self.active()?;
            let actions = state.coordinator.delete_group(group_id)?;
            self.execute(&mut state, actions)?
        };
        await_written(written, WriteKind::Group).await
    }

    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let (errors, written) = {
            let mut state = self.active()?;
            let (errors, actions) = state.coordinator.delete_offsets(group_id, partitions)?;
            (errors, self.execute(&mut state, actions)?)
        };
        await_written(written, WriteKind::Offsets).await?;
        Ok(errors)
    }

    /// Carry out the actions of one event: append its records (in order), then answer
    /// the parked requests. Records count as written only once the partition's leader
    /// state machine says the ISR, at least `min.insync.replicas` strong, holds them,
    /// so answers that come with records are held back until then (in a task of their
    /// own); if the write fails, they carry its error instead, and the coordinator
    /// hears of each group record that failed. Returns the write for a caller that
    /// answers its own request from it; a local append failure is returned at once.
    fn execute(
        self: &Arc<Self>,
        state: &mut ShardState,
        actions: Vec<Action>,
    ) -> Result<Option<Write>, ResponseError> {
        let (records, answers): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Persist(_)));
        let records: Vec<GroupRecord> = records
            .into_iter()
            .filter_map(|a| match a {
                Action::Persist(r) => Some(r),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            deliver(state, answers, None);
            return Ok(None);
        }
        let clock = self.partition.clock();
        let deadline_ms = clock.now_ms() + self.write_timeout_ms;
        let written = match append(&self.partition, &records, clock.wall_ms(), deadline_ms) {
            Ok(acks) => Write::new(acks),
            Err(e) => {
                tracing::error!(topic = %self.partition.topic, partition = self.partition.index, error = %e, "could not persist group records");
                let code = super::partition::append_error_code(&e);
                self.write_failed(state, &records, answers, code);
                return Err(write_error(code, WriteKind::Offsets));
            }
        };
        let groups_written = records
            .iter()
            .any(|r| matches!(r, GroupRecord::Group { .. }));
        if !answers.is_empty() || groups_written {
            let (shard, write) = (self.clone(), written.clone());
            tokio::spawn(async move {
                let outcome = write.await;
                let mut state = shard.state.lock();
                if !state.active {
                    return;
                }
                match outcome {
                    Ok(()) => deliver(&mut state, answers, None),
                    Err(code) => shard.write_failed(&mut state, &records, answers, code),
                }
            });
        }
        Ok(Some(written))
    }

    /// `records` were not written (`code` is the append's or the ISR wait's error):
    /// the answers that came with them get the error, and the coordinator decides what
    /// becomes of the groups they described.
    fn write_failed(
        self: &Arc<Self>,
        state: &mut ShardState,
        records: &[GroupRecord],
        answers: Vec<Action>,
        code: ResponseError,
    ) {
        tracing::warn!(topic = %self.partition.topic, partition = self.partition.index, error = %code, "group records not written");
        deliver(state, answers, Some(write_error(code, WriteKind::Group)));
        let now = self.now_ms();
        for record in records {
            let actions = state.coordinator.group_write_failed(record, now);
            // A rebalance being prepared writes nothing; its answers go out now.
            let _ = self.execute(state, actions);
        }
    }
}

/// Records appended for one event: done once the ISR holds every batch, or the leader
/// state machine's error (NOT_ENOUGH_REPLICAS_AFTER_APPEND, a timeout, leadership
/// lost). Shared between the request that caused the write and the answers held back
/// for it.
type Write =
    futures::future::Shared<futures::future::BoxFuture<'static, Result<(), ResponseError>>>;

trait WriteExt {
    fn new(acks: Vec<AckWait>) -> Self;
}

impl WriteExt for Write {
    fn new(acks: Vec<AckWait>) -> Write {
        use futures::FutureExt;
        async move {
            for ack in acks {
                match ack.await {
                    Ok(None) => {}
                    Ok(Some(code)) => return Err(code),
                    // The partition dropped its waiters: no longer its leader.
                    Err(_) => return Err(ResponseError::NotLeaderOrFollower),
                }
            }
            Ok(())
        }
        .boxed()
        .shared()
    }
}

type AckWait = oneshot::Receiver<Option<ResponseError>>;

/// What a group write was for, which decides the error its requests get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Offsets,
    Group,
}

async fn await_written(written: Option<Write>, kind: WriteKind) -> Result<(), ResponseError> {
    match written {
        None => Ok(()),
        Some(w) => w.await.map_err(|code| write_error(code, kind)),
    }
}

/// The error a client gets when a group write fails with `code` (Kafka's mapping):
/// too few in-sync replicas make the coordinator unavailable for now, a lost
/// leadership or a storage failure sends the client to look the coordinator up again.
fn write_error(code: ResponseError, kind: WriteKind) -> ResponseError {
    match code {
        ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::UnknownTopicOrPartition => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge => match kind {
            WriteKind::Offsets => ResponseError::InvalidCommitOffsetSize,
            WriteKind::Group => ResponseError::UnknownServerError,
        },
        ResponseError::RequestTimedOut if kind == WriteKind::Group => {
            ResponseError::RebalanceInProgress
        }
        ResponseError::CorruptMessage
        | ResponseError::InvalidRecord
        | ResponseError::OutOfOrderSequenceNumber
        | ResponseError::InvalidProducerEpoch
        | ResponseError::UnsupportedForMessageFormat => ResponseError::CoordinatorNotAvailable,
        other => other,
    }
}

/// Answer parked requests; with `error`, every JoinGroup and SyncGroup answer carries
/// it instead of its result (the write it depended on failed).
fn deliver(state: &mut ShardState, answers: Vec<Action>, error: Option<ResponseError>) {
    for a in answers {
        match a {
            Action::Join { request, result } => {
                if let Some(tx) = state.joins.remove(&request) {
                    let result = match error {
                        Some(code) => JoinResult::error(code, &result.member_id),
                        None => result,
                    };
                    let _ = tx.send(result);
                }
            }
            Action::Sync { request, result } => {
                if let Some(tx) = state.syncs.remove(&request) {
                    let _ = tx.send(error.map_or(result, SyncResult::error));
                }
            }
            Action::Persist(_) => unreachable!("records are split off before"),
        }
    }
}

/// Append `records` as uncompressed RecordBatch v2 batches without a producer id,
/// stamped `wall_ms`, each acknowledged like an acks=all produce by `deadline_ms`.
fn append(
    partition: &Partition,
    records: &[GroupRecord],
    wall_ms: i64,
    deadline_ms: i64,
) -> Result<Vec<AckWait>, AppendError> {
    let mut acks = Vec::new();
    append_with(records, wall_ms, None, |batch, _| {
        let appended = partition.append_replicated(batch, deadline_ms)?;
        acks.extend(appended.replicated);
        Ok(())
    })?;
    Ok(acks)
}

/// Kafka reports the client's address as "/ip".
pub fn client_host(peer: std::net::SocketAddr) -> String {
    format!("/{}", peer.ip())
}

pub fn to_str(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
