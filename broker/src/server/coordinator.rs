//! The group coordinator runtime: one pure [`GroupCoordinator`] per partition of
//! `__consumer_offsets`, each behind its own lock together with the JoinGroup and
//! SyncGroup requests parked on it. Records the state machine asks to persist are
//! appended to that partition (one RecordBatch v2 per event, uncompressed, no
//! producer id) before the answers that depend on them are sent; on start every
//! partition is read back to rebuild groups and offsets. A timer task ticks the state
//! machines (session, rebalance and sync deadlines), expires offsets and drops the
//! offsets of deleted topics.

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

use super::broker::{now_ms, Broker};
use super::partition::Partition;
use crate::group::{
    partition_for, Action, CommitRequest, GroupConfig, GroupCoordinator, GroupRecord, JoinRequest,
    JoinResult, RequestId, SyncRequest, SyncResult, OFFSETS_TOPIC,
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

struct Shard {
    partition: Arc<Partition>,
    state: Mutex<ShardState>,
}

struct ShardState {
    coordinator: GroupCoordinator,
    joins: HashMap<RequestId, oneshot::Sender<JoinResult>>,
    syncs: HashMap<RequestId, oneshot::Sender<SyncResult>>,
}

pub struct GroupRuntime {
    shards: Vec<Shard>,
    next_request: AtomicU64,
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

/// Create `__consumer_offsets` if absent, then load every group from it.
pub async fn start(broker: &Arc<Broker>) -> Result<Arc<GroupRuntime>, String> {
    if broker.image().topic(OFFSETS_TOPIC).is_none() {
        let brokers = broker.live_brokers();
        let rf = broker
            .config
            .default_replication_factor
            .min(i16::try_from(brokers.len()).unwrap_or(i16::MAX));
        let new = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: broker.config.offsets_topic_num_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: offsets_topic_configs(),
        };
        broker
            .change_metadata(true, |image| {
                plan_create_topic(image, &brokers, &new, 1, rf)
            })
            .await
            .map_err(|e| format!("creating {OFFSETS_TOPIC}: {}", e.message))?;
        tracing::info!(
            partitions = broker.config.offsets_topic_num_partitions,
            "created {OFFSETS_TOPIC}"
        );
    }
    let b = broker.clone();
    let runtime = tokio::task::spawn_blocking(move || GroupRuntime::load(&b))
        .await
        .map_err(|e| format!("loading groups: {e}"))??;
    Ok(Arc::new(runtime))
}

impl GroupRuntime {
    fn load(broker: &Broker) -> Result<GroupRuntime, String> {
        // An existing topic keeps its partition count, as in Kafka; group placement
        // follows the topic, not the flag.
        let partitions = broker.partitions.topic(OFFSETS_TOPIC);
        if partitions.is_empty() {
            return Err(format!("{OFFSETS_TOPIC} has no hosted partitions"));
        }
        let config = GroupConfig {
            min_session_timeout_ms: broker.config.group_min_session_timeout_ms,
            max_session_timeout_ms: broker.config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: broker.config.group_initial_rebalance_delay_ms,
            offsets_retention_ms: broker
                .config
                .offsets_retention_minutes
                .saturating_mul(60_000),
        };
        let started = std::time::Instant::now();
        let now = now_ms();
        let mut shards = Vec::with_capacity(partitions.len());
        let mut records_read = 0usize;
        for p in partitions {
            let mut coordinator = GroupCoordinator::new(config.clone());
            records_read += read_partition(&p, |r| coordinator.replay(r, now))?;
            shards.push(Shard {
                partition: p,
                state: Mutex::new(ShardState {
                    coordinator,
                    joins: HashMap::new(),
                    syncs: HashMap::new(),
                }),
            });
        }
        let groups: usize = shards
            .iter()
            .map(|s| s.state.lock().coordinator.groups().count())
            .sum();
        tracing::info!(
            groups,
            records = records_read,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator loaded"
        );
        Ok(GroupRuntime {
            shards,
            next_request: AtomicU64::new(1),
            rebalances_reported: AtomicU64::new(0),
        })
    }

    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.shards.len()).unwrap_or(i32::MAX)
    }

    fn shard(&self, group_id: &str) -> &Shard {
        let i = partition_for(group_id, self.partition_count());
        &self.shards[usize::try_from(i).unwrap_or(0)]
    }

    /// The `__consumer_offsets` partition coordinating `group_id`.
    pub fn partition_of(&self, group_id: &str) -> &Arc<Partition> {
        &self.shard(group_id).partition
    }

    pub async fn join(&self, req: JoinRequest) -> JoinResult {
        let shard = self.shard(&req.group_id);
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let bound = Duration::from_millis(
            u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms)).unwrap_or(0),
        ) + PARKED_SLACK;
        let member_id = req.member_id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = shard.state.lock();
            state.joins.insert(id, tx);
            let actions = state.coordinator.join(req, id, now_ms());
            let _ = execute(&shard.partition, &mut state, actions);
        }
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(result)) => result,
            _ => {
                shard.state.lock().joins.remove(&id);
                tracing::warn!(member_id, "JoinGroup was not answered in time");
                JoinResult::error(ResponseError::RebalanceInProgress, &member_id)
            }
        }
    }

    pub async fn sync(&self, req: SyncRequest, rebalance_timeout: Duration) -> SyncResult {
        let shard = self.shard(&req.group_id);
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = shard.state.lock();
            state.syncs.insert(id, tx);
            let actions = state.coordinator.sync(req, id, now_ms());
            if execute(&shard.partition, &mut state, actions).is_err() {
                // The assignment is not durable; members will rejoin.
                if let Some(tx) = state.syncs.remove(&id) {
                    let _ = tx.send(SyncResult::error(ResponseError::CoordinatorNotAvailable));
                }
            }
        }
        match tokio::time::timeout(rebalance_timeout + PARKED_SLACK, rx).await {
            Ok(Ok(result)) => result,
            _ => {
                shard.state.lock().syncs.remove(&id);
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
        self.shard(group_id).state.lock().coordinator.heartbeat(
            group_id,
            member_id,
            group_instance_id,
            generation_id,
            now_ms(),
        )
    }

    pub fn leave(
        &self,
        group_id: &str,
        members: &[crate::group::MemberRef],
    ) -> Vec<Option<ResponseError>> {
        let shard = self.shard(group_id);
        let mut state = shard.state.lock();
        let (errors, actions) = state.coordinator.leave(group_id, members, now_ms());
        let _ = execute(&shard.partition, &mut state, actions);
        errors
    }

    pub fn commit(&self, req: CommitRequest) -> Result<(), ResponseError> {
        let shard = self.shard(&req.group_id);
        let mut state = shard.state.lock();
        let actions = state.coordinator.commit(req, now_ms())?;
        execute(&shard.partition, &mut state, actions)
    }

    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<crate::group::OffsetValue>)> {
        self.shard(group_id)
            .state
            .lock()
            .coordinator
            .fetch_offsets(group_id, partitions)
    }

    pub fn describe(&self, group_id: &str) -> crate::group::GroupDescription {
        self.shard(group_id)
            .state
            .lock()
            .coordinator
            .describe(group_id)
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, crate::group::GroupState)> {
        let mut out = Vec::new();
        for s in &self.shards {
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

    pub fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let shard = self.shard(group_id);
        let mut state = shard.state.lock();
        let actions = state.coordinator.delete_group(group_id)?;
        execute(&shard.partition, &mut state, actions)
    }

    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let shard = self.shard(group_id);
        let mut state = shard.state.lock();
        let (errors, actions) = state.coordinator.delete_offsets(group_id, partitions)?;
        execute(&shard.partition, &mut state, actions)?;
        Ok(errors)
    }

    fn each_shard(&self, f: impl Fn(&mut GroupCoordinator) -> Vec<Action>) {
        for shard in &self.shards {
            let mut state = shard.state.lock();
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
        let mut rebalances = 0u64;
        for shard in &self.shards {
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
        _ => ResponseError::CoordinatorNotAvailable,
    })
}

/// Append `records` as uncompressed RecordBatch v2 batches without a producer id.
fn append(partition: &Partition, records: &[GroupRecord]) -> Result<(), AppendError> {
    let now = now_ms();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let flush = |batch: &mut Vec<Record>| -> Result<(), AppendError> {
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
        partition.append(buf, now).map(|_| ())
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

/// Replay every record of `partition` into `apply`; returns how many were read.
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
    let end = partition.high_watermark();
    let mut count = 0;
    while offset < end {
        let info = partition
            .read(offset, 1 << 20, true)
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

/// Tick the state machines; expire offsets every `offsets.retention.check.interval.ms`;
/// drop offsets of deleted topics whenever the topic set changes.
pub async fn run_timer(
    broker: Arc<Broker>,
    runtime: Arc<GroupRuntime>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry_every = broker.config.offsets_retention_check_interval_ms.max(100);
    let mut last_expiry = now_ms();
    let mut last_image = broker.image();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        runtime.each_shard(|c| c.tick(now));
        if now - last_expiry >= i64::try_from(expiry_every).unwrap_or(i64::MAX) {
            last_expiry = now;
            runtime.each_shard(|c| c.expire_offsets(now));
        }
        let image = broker.image();
        if !Arc::ptr_eq(&image, &last_image) {
            let topics: std::collections::HashSet<String> =
                image.topics().map(|t| t.name.clone()).collect();
            runtime.each_shard(|c| c.remove_offsets_of_deleted_topics(|t| topics.contains(t)));
            last_image = image;
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
