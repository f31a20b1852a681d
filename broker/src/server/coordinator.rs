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

use super::broker::{now_ms, Broker};
use super::partition::Partition;
use crate::group::{
    Action, CommitRequest, GroupConfig, GroupCoordinator, GroupRecord, JoinRequest, JoinResult,
    RequestId, SyncRequest, SyncResult, OFFSETS_TOPIC,
};
use crate::log::batch::BatchHeader;
use crate::log::AppendError;
use crate::metadata::admin::{plan_create_topic, NewTopic};

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
    Ok(Arc::new(GroupRuntime::new(config)))
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
    let brokers = broker.live_brokers();
    let voters = broker.config.quorum_voters().len();
    let rf =
        offsets_topic_replication_factor(broker.config.offsets_topic_replication_factor, voters);
    if brokers.len() < usize::try_from(rf).unwrap_or(usize::MAX) {
        tracing::warn!(
            live_brokers = brokers.len(),
            replication_factor = rf,
            offsets_topic_replication_factor = broker.config.offsets_topic_replication_factor,
            quorum_voters = voters,
            "not creating {OFFSETS_TOPIC}: fewer live brokers than its replication factor"
        );
        return Err(ResponseError::CoordinatorNotAvailable);
    }
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
        let now = now_ms();
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
            let _ = execute(&shard.partition, &mut state, actions);
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

    /// Lock the state of a shard still in service.
    fn active(&self) -> Result<parking_lot::MutexGuard<'_, ShardState>, ResponseError> {
        let state = self.state.lock();
        if state.active {
            Ok(state)
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    pub async fn join(&self, req: JoinRequest) -> JoinResult {
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
            let actions = state.coordinator.join(req, id, now_ms());
            let _ = execute(&self.partition, &mut state, actions);
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

    pub async fn sync(&self, req: SyncRequest, rebalance_timeout: Duration) -> SyncResult {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = match self.active() {
                Ok(s) => s,
                Err(e) => return SyncResult::error(e),
            };
            state.syncs.insert(id, tx);
            let actions = state.coordinator.sync(req, id, now_ms());
            if let Err(e) = execute(&self.partition, &mut state, actions) {
                // The assignment is not durable; members will rejoin (after looking
                // the coordinator up again if this broker no longer leads).
                if let Some(tx) = state.syncs.remove(&id) {
                    let _ = tx.send(SyncResult::error(match e {
                        ResponseError::NotCoordinator => e,
                        _ => ResponseError::CoordinatorNotAvailable,
                    }));
                }
            }
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
                now_ms(),
            ),
            Err(e) => Some(e),
        }
    }

    pub fn leave(
        &self,
        group_id: &str,
        members: &[crate::group::MemberRef],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let mut state = self.active()?;
        let (errors, actions) = state.coordinator.leave(group_id, members, now_ms());
        let _ = execute(&self.partition, &mut state, actions);
        Ok(errors)
    }

    pub fn commit(&self, req: CommitRequest) -> Result<(), ResponseError> {
        let mut state = self.active()?;
        let actions = state.coordinator.commit(req, now_ms())?;
        execute(&self.partition, &mut state, actions)
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

    pub fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut state = self.active()?;
        let actions = state.coordinator.delete_group(group_id)?;
        execute(&self.partition, &mut state, actions)
    }

    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let mut state = self.active()?;
        let (errors, actions) = state.coordinator.delete_offsets(group_id, partitions)?;
        execute(&self.partition, &mut state, actions)?;
        Ok(errors)
    }
}

/// Carry out the actions of one event: append the records (in order, before any
/// answer), then answer parked requests. A failed append is returned so that the
/// caller answers its own request with an error.
fn execute(
    partition: &Partition,
    state: &mut ShardState,
    actions: Vec<Action>,
) -> Result<(), ResponseError> {
    let mut records = Vec::new();
    let mut answers = Vec::new();
    for a in actions {
        match a {
            Action::Persist(r) => records.push(r),
            other => answers.push(other),
        }
    }
    let persisted = append(partition, &records);
    if let Err(e) = &persisted {
        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "could not persist group records");
    }
    for a in answers {
        match a {
            Action::Join { request, result } => {
                if let Some(tx) = state.joins.remove(&request) {
                    let _ = tx.send(result);
                }
            }
            Action::Sync { request, result } => {
                if let Some(tx) = state.syncs.remove(&request) {
                    let _ = tx.send(result);
                }
            }
            Action::Persist(_) => unreachable!("split above"),
        }
    }
    persisted.map_err(|e| match e {
        AppendError::MessageTooLarge { .. } => ResponseError::InvalidCommitOffsetSize,
        AppendError::Corrupt(_)
        | AppendError::Unsupported(_)
        | AppendError::InvalidRecord(_)
        | AppendError::OutOfOrderSequence { .. }
        | AppendError::InvalidProducerEpoch { .. } => ResponseError::CoordinatorNotAvailable,
        // The partition refused as a non-leader, or its storage failed: as in Kafka,
        // NOT_COORDINATOR sends the client to look the coordinator up again.
        _ => ResponseError::NotCoordinator,
    })
}

/// Append `records` as uncompressed RecordBatch v2 batches without a producer id.
fn append(partition: &Partition, records: &[GroupRecord]) -> Result<(), AppendError> {
    let now = now_ms();
    append_with(records, now, |batch| {
        partition.append(batch, now).map(|_| ())
    })
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
    let mut last_expiry = now_ms();
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
        let now = now_ms();
        runtime.each_shard(|c| c.tick(now));
        if now - last_expiry >= i64::try_from(expiry_every).unwrap_or(i64::MAX) {
            last_expiry = now;
            runtime.each_shard(|c| c.expire_offsets(now));
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
                0,
            )
            .inspect(|p| p.lead_alone(1, 0))
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

    #[test]
    fn become_leader_loads_the_whole_log_including_past_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), Uuid::new_v4(), 0, 3);
        append(&p, &[offset_record(0, 10), offset_record(1, 11)]).unwrap();
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
        shard.commit(commit("g", 2, 20)).unwrap();
        let again = GroupRuntime::new(GroupConfig::default());
        again.become_leader(p);
        assert_eq!(
            committed(&again.shard(0).unwrap()),
            vec![(0, 10), (1, 12), (2, 20)]
        );
    }

    #[test]
    fn requests_for_shards_not_loaded_here_get_not_coordinator() {
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
        shard.commit(commit("g", 0, 7)).unwrap();
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
            shard.commit(commit("g", 0, 8)),
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

    #[test]
    fn a_newer_leader_epoch_reloads_and_the_same_epoch_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let topic_id = Uuid::new_v4();
        let p0 = open(dir.path(), topic_id, 0, 0);
        let rt = GroupRuntime::new(GroupConfig::default());
        rt.become_leader(p0.clone());
        let first = rt.shard(0).unwrap();
        first.commit(commit("g", 0, 5)).unwrap();
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
            first.commit(commit("g", 0, 6)),
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
            0,
        )
        .unwrap();
        p.lead_alone(1, 0);
        let first: Vec<GroupRecord> = (0..5)
            .map(|i| offset_record(i, 10 + i64::from(i)))
            .collect();
        // The log takes exactly one batch per append: five records must be one batch.
        append(&p, &first).unwrap();
        let tombstone = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        };
        append(&p, std::slice::from_ref(&tombstone)).unwrap();
        assert_eq!(p.high_watermark(), 6);
        let mut got = Vec::new();
        assert_eq!(read_partition(&p, |r| got.push(r)).unwrap(), 6);
        let mut expected = first;
        expected.push(tombstone);
        assert_eq!(got, expected);
    }
}
