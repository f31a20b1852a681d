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
//! sent. A timer task ticks the loaded state machines (session, rebalance and sync
//! deadlines), expires offsets and drops the offsets of deleted topics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::broker::Broker;
use super::partition::Partition;
use crate::group::{
    Action, CommitRequest, GroupConfig, GroupCoordinator, GroupRecord, JoinRequest, JoinResult,
    RequestId, SyncRequest, SyncResult, OFFSETS_TOPIC,
};
use crate::log::batch::BatchHeader;
use crate::log::AppendError;
use crate::metadata::admin::{plan_create_topic, AdminError, NewTopic};

/// How often the state machines are ticked. Deadlines are seconds apart in
/// practice (session timeouts are at least group.min.session.timeout.ms).
const TICK: Duration = Duration::from_millis(100);
/// Bytes of records per appended batch, well under the default max.message.bytes.
const BATCH_BYTES: usize = 512 * 1024;
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

/// What this broker holds for one `__consumer_offsets` partition; no entry means
/// it does not coordinate that partition's groups.
enum Slot {
    Loading {
        topic_id: Uuid,
        leader_epoch: i32,
        /// Tells this load from a later one for the same partition.
        load: u64,
    },
    Loaded(Arc<Shard>),
}

impl Slot {
    fn leads(&self, topic_id: Uuid, epoch: i32) -> bool {
        match self {
            Slot::Loading {
                topic_id: t,
                leader_epoch,
                ..
            } => *t == topic_id && *leader_epoch >= epoch,
            Slot::Loaded(s) => s.partition.topic_id == topic_id && s.leader_epoch >= epoch,
        }
    }
}

pub struct GroupRuntime {
    config: GroupConfig,
    /// How long a group write may wait for the ISR (request.timeout.ms).
    write_timeout_ms: i64,
    /// By `__consumer_offsets` partition index.
    slots: Mutex<HashMap<i32, Slot>>,
    next_load: AtomicU64,
    /// Rebalances counted by shards that have since been dropped.
    rebalances_dropped: AtomicU64,
    /// For the rebalance counter: total already added to the metric.
    rebalances_reported: AtomicU64,
}

/// The `__consumer_offsets` topic configs, as Kafka sets them: compacted, so the
/// partition keeps the latest record per group and per committed partition, and
/// tombstones (deleted groups, expired offsets) eventually leave it. Time retention
/// is off as well, so a live commit is never deleted with an old segment.
fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    let mut c = std::collections::BTreeMap::new();
    c.insert("cleanup.policy".to_string(), "compact".to_string());
    c.insert("retention.ms".to_string(), "-1".to_string());
    // offsets.topic.segment.bytes
    c.insert("segment.bytes".to_string(), "104857600".to_string());
    c
}

/// Build the runtime with no shard loaded: shards come with [`GroupRuntime::become_leader`].
pub async fn start(broker: &Arc<Broker>) -> Result<Arc<GroupRuntime>, String> {
    let config = GroupConfig {
        min_session_timeout_ms: broker.config.group_min_session_timeout_ms,
        max_session_timeout_ms: broker.config.group_max_session_timeout_ms,
        initial_rebalance_delay_ms: broker.config.group_initial_rebalance_delay_ms,
        offsets_retention_ms: broker
            .config
            .offsets_retention_minutes
            .saturating_mul(60_000),
    };
    let mut runtime = GroupRuntime::new(config);
    runtime.write_timeout_ms = i64::try_from(broker.config.request_timeout_ms).unwrap_or(i64::MAX);
    Ok(Arc::new(runtime))
}

/// The replication factor `__consumer_offsets` is created with:
/// offsets.topic.replication.factor, capped at the number of metadata quorum voters.
/// Kafka does not cap it (its single-broker example configs set it to 1 instead); the
/// cap lets one broker, its own only voter, serve groups with no flags while a cluster
/// of three or more voters gets Kafka's three replicas. Voters, not live or registered
/// brokers, set the cap: every broker reads the same --voters, so the answer does not
/// depend on how many brokers happen to be up at the first FindCoordinator.
pub fn offsets_topic_replication_factor(configured: i16, voters: usize) -> i16 {
    configured.min(i16::try_from(voters).unwrap_or(i16::MAX))
}

/// Create `__consumer_offsets` unless it exists, as Kafka does on the first
/// FindCoordinator for a group, with [`offsets_topic_replication_factor`] replicas.
/// With fewer live brokers than that the topic is not created smaller:
/// COORDINATOR_NOT_AVAILABLE until enough brokers are up.
pub async fn create_offsets_topic(broker: &Broker) -> Result<(), ResponseError> {
    if broker.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let voters = broker.config.quorum_voters().len();
    let rf =
        offsets_topic_replication_factor(broker.config.offsets_topic_replication_factor, voters);
    let new = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: broker.config.offsets_topic_num_partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: offsets_topic_configs(),
    };
    // Planning runs under the metadata writer's lock, so of two concurrent
    // FindCoordinators the second plans against the created topic.
    match broker
        .change_metadata(true, |image| {
            let brokers = broker.live_brokers(image);
            if brokers.len() < usize::try_from(rf).unwrap_or(usize::MAX) {
                return Err(AdminError {
                    code: ResponseError::CoordinatorNotAvailable,
                    message: format!(
                        "not created: {} live brokers, fewer than its replication factor {rf} \
                         (offsets.topic.replication.factor {}, {voters} quorum voters)",
                        brokers.len(),
                        broker.config.offsets_topic_replication_factor
                    ),
                });
            }
            plan_create_topic(image, &brokers, &new, 1, rf)
        })
        .await
    {
        Ok(_) => {
            tracing::info!(
                partitions = new.num_partitions,
                replication_factor = rf,
                "created {OFFSETS_TOPIC}"
            );
            Ok(())
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not create {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

impl GroupRuntime {
    pub fn new(config: GroupConfig) -> GroupRuntime {
        GroupRuntime {
            config,
            write_timeout_ms: 30_000,
            slots: Mutex::new(HashMap::new()),
            next_load: AtomicU64::new(1),
            rebalances_dropped: AtomicU64::new(0),
            rebalances_reported: AtomicU64::new(0),
        }
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
        match read_partition(&partition, |r| coordinator.replay(r, now)) {
            Ok(records) => {
                let groups = coordinator.groups().count();
                if self.finish_load(partition.clone(), load, coordinator) {
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
                let mut slots = self.slots.lock();
                if matches!(slots.get(&partition.index), Some(Slot::Loading { load: l, .. }) if *l == load)
                {
                    slots.remove(&partition.index);
                }
            }
        }
    }

    /// Mark the partition's shard as loading at `epoch`, unless it is already loaded
    /// or loading at that leader epoch (or a newer one). Returns the load's token.
    fn begin_load(&self, partition: &Partition, epoch: i32) -> Option<u64> {
        let load = self.next_load.fetch_add(1, Ordering::Relaxed);
        let replaced = {
            let mut slots = self.slots.lock();
            if slots
                .get(&partition.index)
                .is_some_and(|s| s.leads(partition.topic_id, epoch))
            {
                return None;
            }
            slots.insert(
                partition.index,
                Slot::Loading {
                    topic_id: partition.topic_id,
                    leader_epoch: epoch,
                    load,
                },
            )
        };
        if let Some(Slot::Loaded(old)) = replaced {
            self.retire(&old);
        }
        Some(load)
    }

    /// Install a loaded coordinator unless the load was superseded meanwhile (by a
    /// resign or a newer epoch's load).
    fn finish_load(
        &self,
        partition: Arc<Partition>,
        load: u64,
        coordinator: GroupCoordinator,
    ) -> bool {
        let mut slots = self.slots.lock();
        // The epoch the load began at: if the partition's epoch moved on meanwhile,
        // the call for the newer epoch loads again.
        let leader_epoch = match slots.get(&partition.index) {
            Some(Slot::Loading {
                load: l,
                leader_epoch,
                ..
            }) if *l == load => *leader_epoch,
            _ => return false,
        };
        let shard = Shard {
            leader_epoch,
            write_timeout_ms: self.write_timeout_ms,
            partition: partition.clone(),
            next_request: AtomicU64::new(1),
            state: Mutex::new(ShardState {
                active: true,
                coordinator,
                joins: HashMap::new(),
                syncs: HashMap::new(),
            }),
        };
        slots.insert(partition.index, Slot::Loaded(Arc::new(shard)));
        true
    }

    /// Stop coordinating the groups of partition `index`: its state is dropped and
    /// requests parked on it are answered NOT_COORDINATOR.
    pub fn resign(&self, index: i32) {
        let removed = self.slots.lock().remove(&index);
        if let Some(Slot::Loaded(old)) = removed {
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
        match self.slots.lock().get(&index) {
            None => Err(ResponseError::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress),
            Some(Slot::Loaded(s)) => Ok(s.clone()),
        }
    }

    fn loaded(&self) -> Vec<Arc<Shard>> {
        self.slots
            .lock()
            .values()
            .filter_map(|s| match s {
                Slot::Loaded(s) => Some(s.clone()),
                Slot::Loading { .. } => None,
            })
            .collect()
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

    fn each_shard(&self, f: impl Fn(&mut GroupCoordinator) -> Vec<Action>) {
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
    /// and lag per group and partition, rebalances.
    pub fn refresh_metrics(&self, broker: &Broker) {
        let m = &broker.metrics;
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
                    if let Some(hosted) = broker.partitions.get(topic, *partition) {
                        let lag = (hosted.high_watermark() - v.offset).max(0);
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
    append_with(records, wall_ms, |batch| {
        let appended = partition.append_replicated(batch, deadline_ms)?;
        acks.extend(appended.replicated);
        Ok(())
    })?;
    Ok(acks)
}

/// Encode `records` as batches of at most [`BATCH_BYTES`] and hand each to `write`.
fn append_with(
    records: &[GroupRecord],
    now: i64,
    mut write: impl FnMut(BytesMut) -> Result<(), AppendError>,
) -> Result<(), AppendError> {
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut flush = |batch: &mut Vec<Record>| -> Result<(), AppendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            batch.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| AppendError::Corrupt(format!("encoding group records: {e}")))?;
        batch.clear();
        write(buf)
    };
    for r in records {
        let (key, value) = r.encode();
        let size = key.len() + value.as_ref().map_or(0, Bytes::len) + 32;
        if pending_bytes + size > BATCH_BYTES {
            flush(&mut pending)?;
            pending_bytes = 0;
        }
        pending_bytes += size;
        let offset = i64::try_from(pending.len()).unwrap_or(i64::MAX);
        pending.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder keeps records in one batch only while offset - sequence is
            // constant; the batch's base sequence is the first record's, -1 (no
            // producer), which the log requires of a batch without producer id.
            sequence: i32::try_from(offset).unwrap_or(i32::MAX) - 1,
            timestamp: now,
            key: Some(key),
            value,
            headers: Default::default(),
        });
    }
    flush(&mut pending)
}

/// Replay every record of `partition` up to its log end offset into `apply`;
/// returns how many were read. Reads past the high watermark on purpose: when a
/// broker becomes leader, its whole log is committed.
fn read_partition(
    partition: &Partition,
    mut apply: impl FnMut(GroupRecord),
) -> Result<usize, String> {
    let what = |e: &dyn std::fmt::Display| {
        format!(
            "reading {} partition {}: {e}",
            partition.topic, partition.index
        )
    };
    let mut offset = partition.with_log(|l| l.log_start_offset());
    let end = partition.with_log(|l| l.log_end_offset());
    let mut count = 0;
    while offset < end {
        let info = partition
            .with_log(|l| l.read(offset, 1 << 20, end, true))
            .map_err(|e| what(&e))?;
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_bytes().map_err(|e| what(&e))?;
        // Advance by the batch headers, so a batch emptied by compaction still moves on.
        let mut next = offset;
        let mut rest = &bytes[..];
        while let Some(h) = BatchHeader::parse_prefix(rest) {
            next = next.max(h.last_offset() + 1);
            let size = usize::try_from(h.size_bytes()).unwrap_or(usize::MAX);
            if size > rest.len() {
                break;
            }
            rest = &rest[size..];
        }
        let mut buf = bytes.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| what(&e))?;
        for set in sets {
            for r in set.records {
                if r.offset < offset || r.control {
                    continue;
                }
                let Some(key) = r.key else { continue };
                match GroupRecord::decode(&key, r.value.as_deref()) {
                    Ok(record) => {
                        apply(record);
                        count += 1;
                    }
                    // Kafka skips records it does not understand rather than refuse
                    // to load the partition.
                    Err(e) => tracing::warn!(
                        partition = partition.index,
                        offset = r.offset,
                        error = %e,
                        "skipping unreadable group record"
                    ),
                }
            }
        }
        if next <= offset {
            return Err(what(&"no progress"));
        }
        offset = next;
    }
    Ok(count)
}

/// Tick the loaded state machines; expire offsets every
/// `offsets.retention.check.interval.ms`; on every metadata change drop offsets of
/// deleted topics.
pub async fn run_timer(
    broker: Arc<Broker>,
    runtime: Arc<GroupRuntime>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry_every = broker.config.offsets_retention_check_interval_ms.max(100);
    let clock = broker.clock.clone();
    let mut last_expiry = clock.now_ms();
    let mut last_image = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let image = broker.image();
        let image_changed = last_image
            .as_ref()
            .is_none_or(|last| !Arc::ptr_eq(&image, last));
        let now = clock.now_ms();
        runtime.each_shard(|c| c.tick(now));
        if now - last_expiry >= i64::try_from(expiry_every).unwrap_or(i64::MAX) {
            last_expiry = now;
            // Offsets expire by their commit time, a wall-clock timestamp.
            let wall = clock.wall_ms();
            runtime.each_shard(|c| c.expire_offsets(wall));
        }
        if image_changed {
            let topics: std::collections::HashSet<String> =
                image.topics().map(|t| t.name.clone()).collect();
            runtime.each_shard(|c| c.remove_offsets_of_deleted_topics(|t| topics.contains(t)));
            last_image = Some(image);
        }
    }
}

/// Kafka reports the client's address as "/ip".
pub fn client_host(peer: std::net::SocketAddr) -> String {
    format!("/{}", peer.ip())
}

pub fn to_str(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::OffsetValue;
    use crate::log::LogConfig;
    use crate::replication::controller::BrokerEpoch;

    fn offset_record(partition: i32, offset: i64) -> GroupRecord {
        GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition,
            value: Some(OffsetValue {
                offset,
                leader_epoch: 1,
                metadata: "m".into(),
                commit_timestamp_ms: 5,
            }),
        }
    }

    fn open(dir: &std::path::Path, topic_id: Uuid, index: i32, epoch: i32) -> Arc<Partition> {
        Arc::new(
            Partition::open(
                dir,
                OFFSETS_TOPIC,
                topic_id,
                index,
                epoch,
                LogConfig::default(),
                crate::clock::SystemClock::shared(),
            )
            .inspect(|p| p.lead_alone(1))
            .unwrap(),
        )
    }

    fn commit(group: &str, partition: i32, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group.into(),
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            offsets: vec![(
                "t".into(),
                partition,
                OffsetValue {
                    offset,
                    leader_epoch: 1,
                    metadata: "m".into(),
                    commit_timestamp_ms: 5,
                },
            )],
        }
    }

    /// (partition, offset) of every offset group "g" committed.
    fn committed(shard: &Shard) -> Vec<(i32, i64)> {
        let mut got: Vec<(i32, i64)> = shard
            .fetch_offsets("g", None)
            .unwrap()
            .into_iter()
            .filter_map(|(_, p, v)| Some((p, v?.offset)))
            .collect();
        got.sort_unstable();
        got
    }

    #[test]
    fn offsets_topic_replication_factor_is_capped_at_the_quorum_voters() {
        // (offsets.topic.replication.factor, voters) -> replicas of the topic.
        for (configured, voters, rf) in [
            (3, 1, 1), // one broker, no flags
            (3, 2, 2),
            (3, 3, 3), // fjord dev --brokers 3, a 3+ broker StatefulSet
            (3, 5, 3),
            (1, 3, 1), // asked for fewer than the voters: as asked
            (5, 3, 3),
            (i16::MAX, 100_000, i16::MAX),
        ] {
            assert_eq!(
                offsets_topic_replication_factor(configured, voters),
                rf,
                "offsets.topic.replication.factor {configured} with {voters} voters"
            );
        }
    }

    #[tokio::test]
    async fn become_leader_loads_the_whole_log_including_past_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), Uuid::new_v4(), 0, 3);
        append(
            &p,
            &[offset_record(0, 10), offset_record(1, 11)],
            0,
            i64::MAX,
        )
        .unwrap();
        // Written by the previous leader but not yet known committed here: a new
        // leader's whole log is committed, so the load must see it.
        append_with(&[offset_record(1, 12)], 0, |batch| {
            p.with_log_mut(|l| l.append_as_leader(batch, 3, 0))
                .map(|_| ())
        })
        .unwrap();
        assert!(p.high_watermark() < p.with_log(|l| l.log_end_offset()));

        let rt = GroupRuntime::new(GroupConfig::default());
        rt.become_leader(p.clone());
        let shard = rt.shard(0).unwrap();
        assert_eq!(committed(&shard), vec![(0, 10), (1, 12)]);
        assert_eq!(rt.list().len(), 1);

        // A new commit is appended to the partition and survives a reload.
        shard.commit(commit("g", 2, 20)).await.unwrap();
        let again = GroupRuntime::new(GroupConfig::default());
        again.become_leader(p);
        assert_eq!(
            committed(&again.shard(0).unwrap()),
            vec![(0, 10), (1, 12), (2, 20)]
        );
    }

    #[tokio::test]
    async fn requests_for_shards_not_loaded_here_get_not_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), Uuid::new_v4(), 4, 0);
        let rt = GroupRuntime::new(GroupConfig::default());
        assert_eq!(rt.shard(4).err(), Some(ResponseError::NotCoordinator));

        let load = rt.begin_load(&p, 0).unwrap();
        assert_eq!(
            rt.shard(4).err(),
            Some(ResponseError::CoordinatorLoadInProgress)
        );
        // A second leadership call at the same epoch while loading does nothing.
        assert_eq!(rt.begin_load(&p, 0), None);
        assert!(rt.finish_load(
            p.clone(),
            load,
            GroupCoordinator::new(GroupConfig::default())
        ));
        let shard = rt.shard(4).unwrap();
        shard.commit(commit("g", 0, 7)).await.unwrap();
        assert_eq!(rt.shard(3).err(), Some(ResponseError::NotCoordinator));

        rt.resign(4);
        assert_eq!(rt.shard(4).err(), Some(ResponseError::NotCoordinator));
        assert!(rt.list().is_empty());
        // A request that found the shard just before the resign acts on nothing.
        assert_eq!(
            shard.heartbeat("g", "m", None, 1),
            Some(ResponseError::NotCoordinator)
        );
        assert_eq!(
            shard.commit(commit("g", 0, 8)).await,
            Err(ResponseError::NotCoordinator)
        );
        assert_eq!(
            shard.fetch_offsets("g", None).err(),
            Some(ResponseError::NotCoordinator)
        );
        assert_eq!(p.with_log(|l| l.log_end_offset()), 1);
    }

    #[test]
    fn a_load_overtaken_by_a_resign_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), Uuid::new_v4(), 0, 0);
        let rt = GroupRuntime::new(GroupConfig::default());
        let load = rt.begin_load(&p, 0).unwrap();
        rt.resign(0);
        assert!(!rt.finish_load(p, load, GroupCoordinator::new(GroupConfig::default())));
        assert_eq!(rt.shard(0).err(), Some(ResponseError::NotCoordinator));
    }

    #[tokio::test]
    async fn resign_answers_parked_joins_not_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), Uuid::new_v4(), 0, 0);
        let rt = GroupRuntime::new(GroupConfig::default());
        rt.become_leader(p);
        let shard = rt.shard(0).unwrap();
        let join = tokio::spawn({
            let shard = shard.clone();
            async move {
                shard
                    .join(JoinRequest {
                        group_id: "g".into(),
                        member_id: String::new(),
                        group_instance_id: None,
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        session_timeout_ms: 10_000,
                        rebalance_timeout_ms: 60_000,
                        protocol_type: "consumer".into(),
                        protocols: vec![("range".into(), Bytes::new())],
                        require_known_member_id: false,
                        new_member_id: "c-1".into(),
                    })
                    .await
            }
        });
        // The first member of an empty group waits out group.initial.rebalance.delay.ms.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while shard.state.lock().joins.is_empty() {
            assert!(std::time::Instant::now() < deadline, "join never parked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!join.is_finished());
        rt.resign(0);
        let result = tokio::time::timeout(Duration::from_secs(10), join)
            .await
            .expect("resign answers the parked join")
            .unwrap();
        assert_eq!(result.error, Some(ResponseError::NotCoordinator));
    }

    /// A `__consumer_offsets` partition led by broker 1 with followers 2 and 3 in the
    /// ISR and min.insync.replicas 2, coordinating its groups.
    fn replicated_shard(dir: &std::path::Path) -> (Arc<Partition>, Arc<Shard>) {
        use crate::replication::leader::LeaderConfig;
        use crate::replication::PartitionRegistration;
        let p = Arc::new(
            Partition::open(
                dir,
                OFFSETS_TOPIC,
                Uuid::new_v4(),
                0,
                0,
                LogConfig::default(),
                crate::clock::SystemClock::shared(),
            )
            .unwrap(),
        );
        let registration = PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 0, 0);
        let config = LeaderConfig {
            min_insync_replicas: 2,
            ..LeaderConfig::default()
        };
        p.make_leader(1, config, registration);
        let rt = GroupRuntime::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        });
        rt.become_leader(p.clone());
        let shard = rt.shard(0).unwrap();
        (p, shard)
    }

    fn join_request(group: &str) -> JoinRequest {
        JoinRequest {
            group_id: group.into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: false,
            new_member_id: "c-1".into(),
        }
    }

    /// The leader's SyncGroup of a one-member group, in a task: its assignment is
    /// written to the partition and the answer waits for the ISR.
    async fn sync_alone(
        shard: &Arc<Shard>,
        p: &Partition,
        group: &str,
    ) -> tokio::task::JoinHandle<SyncResult> {
        let joined = shard.join(join_request(group)).await;
        assert_eq!(joined.error, None);
        let before = p.log_end_offset();
        let sync = tokio::spawn({
            let shard = shard.clone();
            let member = joined.member_id.clone();
            let group = group.to_string();
            async move {
                shard
                    .sync(
                        SyncRequest {
                            group_id: group,
                            member_id: member.clone(),
                            group_instance_id: None,
                            generation_id: joined.generation_id,
                            protocol_type: None,
                            protocol_name: None,
                            assignments: vec![(member, Bytes::from_static(b"all of it"))],
                        },
                        Duration::from_secs(10),
                    )
                    .await
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.log_end_offset() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "assignment never written"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sync
    }

    #[tokio::test]
    async fn a_sync_is_answered_once_the_isr_holds_the_assignment() {
        use crate::replication::leader::FollowerFetch;
        use crate::replication::LeaderEpoch;
        let dir = tempfile::tempdir().unwrap();
        let (p, shard) = replicated_shard(dir.path());
        let sync = sync_alone(&shard, &p, "g").await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !sync.is_finished(),
            "answered before the followers had the assignment"
        );
        for replica in [2, 3] {
            let fetch = FollowerFetch {
                replica,
                current_leader_epoch: LeaderEpoch(0),
                fetch_offset: p.log_end_offset(),
                last_fetched_epoch: 0,
                broker_epoch: Some(BrokerEpoch(0)),
            };
            p.follower_fetch(&fetch, 1 << 20);
        }
        let result = tokio::time::timeout(Duration::from_secs(10), sync)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result.error, None);
        assert_eq!(&result.assignment[..], b"all of it");
    }

    #[tokio::test]
    async fn a_sync_whose_assignment_fell_below_min_insync_replicas_is_refused_and_the_group_rebalances(
    ) {
        use crate::replication::leader::LeaderConfig;
        use crate::replication::PartitionRegistration;
        let dir = tempfile::tempdir().unwrap();
        let (p, shard) = replicated_shard(dir.path());
        let sync = sync_alone(&shard, &p, "g").await;
        // The controller takes the silent followers out of the ISR.
        let shrunk = PartitionRegistration::of(&[1, 2, 3], &[1], 1, 0, 1);
        let config = LeaderConfig {
            min_insync_replicas: 2,
            ..LeaderConfig::default()
        };
        p.make_leader(1, config, shrunk);
        let result = tokio::time::timeout(Duration::from_secs(10), sync)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result.error, Some(ResponseError::CoordinatorNotAvailable));
        assert!(result.assignment.is_empty());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let state = shard.describe("g").unwrap().state;
            if state == crate::group::GroupState::PreparingRebalance {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "group stayed {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A commit now is refused before anything is written.
        let end = p.log_end_offset();
        assert_eq!(
            shard.commit(commit("h", 0, 1)).await,
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(p.log_end_offset(), end);
    }

    #[tokio::test]
    async fn a_newer_leader_epoch_reloads_and_the_same_epoch_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let topic_id = Uuid::new_v4();
        let p0 = open(dir.path(), topic_id, 0, 0);
        let rt = GroupRuntime::new(GroupConfig::default());
        rt.become_leader(p0.clone());
        let first = rt.shard(0).unwrap();
        first.commit(commit("g", 0, 5)).await.unwrap();
        rt.become_leader(p0.clone());
        assert!(Arc::ptr_eq(&first, &rt.shard(0).unwrap()));

        // The same log at a newer leader epoch (another Partition over a copy, as
        // the partition's epoch only changes through the replication runtime).
        let copy = tempfile::tempdir().unwrap();
        let name = format!("{OFFSETS_TOPIC}-0");
        std::fs::create_dir(copy.path().join(&name)).unwrap();
        for f in std::fs::read_dir(dir.path().join(&name)).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), copy.path().join(&name).join(f.file_name())).unwrap();
        }
        let p1 = open(copy.path(), topic_id, 0, 1);
        rt.become_leader(p1);
        let second = rt.shard(0).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.leader_epoch, 1);
        assert_eq!(committed(&second), vec![(0, 5)]);
        assert_eq!(
            first.commit(commit("g", 0, 6)).await,
            Err(ResponseError::NotCoordinator)
        );
        // A late call for the older epoch does not take the shard back.
        rt.become_leader(p0);
        assert!(Arc::ptr_eq(&second, &rt.shard(0).unwrap()));
    }

    #[test]
    fn records_are_appended_as_one_batch_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(
            dir.path(),
            OFFSETS_TOPIC,
            uuid::Uuid::new_v4(),
            0,
            0,
            LogConfig::default(),
            crate::clock::SystemClock::shared(),
        )
        .unwrap();
        p.lead_alone(1);
        let first: Vec<GroupRecord> = (0..5)
            .map(|i| offset_record(i, 10 + i64::from(i)))
            .collect();
        // The log takes exactly one batch per append: five records must be one batch.
        append(&p, &first, 0, i64::MAX).unwrap();
        let tombstone = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        };
        append(&p, std::slice::from_ref(&tombstone), 0, i64::MAX).unwrap();
        assert_eq!(p.high_watermark(), 6);
        let mut got = Vec::new();
        assert_eq!(read_partition(&p, |r| got.push(r)).unwrap(), 6);
        let mut expected = first;
        expected.push(tombstone);
        assert_eq!(got, expected);
    }
}
