//! One simulated broker: a real [`Partition`] on a data directory that outlives the
//! process, driven through the calls the broker's runtime makes. Leadership comes from
//! the metadata the broker applied, as `Broker::follow_image` takes it up; follower
//! fetches go through `next_fetch`, the leader's `follower_fetch` and the replica
//! fetcher's own answer handling
//! ([`crate::server::replica_wire::on_fetch_answer`]); acks=all produce and offset
//! commits are answered when the partition's waiters complete. A crash drops
//! the process and everything it held in memory; a restart reopens the partition,
//! which runs the log's recovery. The log's files go through the storage seam, whose
//! fault plan can tear the process's next write and kill it there.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use uuid::Uuid;

use super::log_view::{check_recovered, LogRead, LogView};
use super::net::{Msg, Node, CLIENT, CONTROLLER};
use crate::clock::{Clock, ManualClock};
use crate::group::{CommitRequest, GroupConfig, OffsetValue, OFFSETS_TOPIC};
use crate::log::batch::testing::TestBatch;
use crate::log::txn::EndTxnMarker;
use crate::log::{AppendError, CleanupPolicy, LogConfig, LogStorage};
use crate::replication::cluster_state::{ClusterState, ControllerRecord};
use crate::replication::controller::Heartbeat;
use crate::replication::follower::FollowerConfig;
use crate::replication::leader::{AlterPartitionRequest, LeaderConfig};
use crate::replication::BrokerEpoch;
use crate::replication::{BrokerId, LeaderEpoch, PartitionRegistration, TopicPartition};
use crate::server::coordinator::GroupRuntime;
use crate::server::fetcher::{to_proto, FetcherState};
use crate::server::partition::{append_error_code, Acks, Appended, Partition};
use crate::server::replica_session::{self, Budget, Sessions};
use crate::storage::{Disk, Fault, FaultPlan, FaultRule, FileKind, Op};

pub(super) const TP: TopicPartition = TopicPartition {
    topic_id: Uuid::from_u128(0xf70d),
    partition: 0,
};
/// The topic whose offsets the committing client commits.
pub(super) const COMMITTED_TOPIC: &str = "orders";
pub(super) const SESSION_TIMEOUT_MS: i64 = 1_500;
pub(super) const REQUEST_TIMEOUT_MS: i64 = 3_000;
const HEARTBEAT_MS: i64 = 300;
const REGISTER_RETRY_MS: i64 = 1_000;
/// About eight one-record batches per follower fetch.
const FETCH_MAX_BYTES: usize = 600;
/// Segment files kept open beyond the active segment's: small, so reads reopen
/// files the bound closed.
const MAX_OPEN_FILES: usize = 4;
/// How often a broker runs log housekeeping (retention), as `Broker::housekeeping`.
const HOUSEKEEPING_MS: i64 = 500;

/// The topic's `min.insync.replicas`.
pub(super) const MIN_INSYNC_REPLICAS: usize = 2;
const LEADER_CONFIG: LeaderConfig = LeaderConfig {
    replica_lag_time_max_ms: 1_000,
    min_insync_replicas: MIN_INSYNC_REPLICAS,
    alter_partition_retry_ms: 300,
};
const FOLLOWER_CONFIG: FollowerConfig = FollowerConfig {
    fetch_backoff_ms: 100,
    fetch_timeout_ms: 500,
};

/// What the client does with the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Workload {
    /// acks=all records with unique ids to topic "sim".
    Produce,
    /// Offset commits; the partition is `__consumer_offsets` partition 0 and its
    /// leader runs the group coordinator.
    Commit,
    /// Transactions of a few producers to topic "sim", with their markers.
    Transactions,
}

impl Workload {
    pub fn topic(self) -> &'static str {
        match self {
            Workload::Produce | Workload::Transactions => "sim",
            Workload::Commit => OFFSETS_TOPIC,
        }
    }

    /// Small segments and dense indexes, so that runs roll segments, truncate across
    /// them and recover several. The produced topic keeps about a second of records
    /// (`retention.bytes`): a follower away longer finds its log end below its
    /// leader's log start and starts over there.
    fn log_config(self) -> LogConfig {
        let config = LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        match self {
            Workload::Produce => LogConfig {
                retention_bytes: 4096,
                ..config
            },
            Workload::Commit => LogConfig {
                cleanup_policy: CleanupPolicy::COMPACT,
                ..config
            },
            // No retention: a follower starting over at its leader's log start would
            // not know a transaction open before it (as in Kafka).
            Workload::Transactions => config,
        }
    }
}

/// What a broker asks of the simulator after handling an event.
#[derive(Default)]
pub(super) struct Outbox {
    pub sends: Vec<(Node, Msg)>,
    pub trace: Vec<String>,
    /// Leader epochs this broker started leading.
    pub led: Vec<LeaderEpoch>,
    /// The group coordinator was loaded here (a failover of the coordinator).
    pub coordinator_loaded: bool,
    pub truncations: usize,
    /// Followers that started over at their leader's log start.
    pub resets: usize,
    /// Segments deleted by retention.
    pub segments_deleted: usize,
    pub controlled_shutdown_done: bool,
    /// acks=all produce requests answered with success: (record id, offset).
    pub acknowledged: Vec<(u64, i64)>,
}

impl Outbox {
    fn send(&mut self, to: Node, msg: Msg) {
        self.sends.push((to, msg));
    }
}

pub(super) struct SimBroker {
    pub id: BrokerId,
    data_dir: PathBuf,
    clock: Arc<ManualClock>,
    workload: Workload,
    /// `None` while the process is down.
    pub process: Option<Process>,
    /// The log as read back just before the process last stopped (unless it died in a
    /// torn write, after which nothing can be read), to compare with what the next
    /// process recovers.
    held_at_stop: Option<LogRead>,
}

/// What the broker process holds; all of it is lost in a crash.
pub(super) struct Process {
    pub partition: Arc<Partition>,
    /// The faults of this process's disk.
    faults: Arc<FaultPlan>,
    /// The group coordinator runtime (commit workload only).
    pub groups: Option<GroupRuntime>,
    pub broker_epoch: Option<BrokerEpoch>,
    register_nonce: u64,
    pub shutting_down: bool,
    next_register_ms: i64,
    next_heartbeat_ms: i64,
    heartbeat_answered_ms: i64,
    /// No heartbeat answered for longer than the broker tolerates: it leads nothing
    /// (`Broker::check_contact`).
    cut_off: bool,
    metadata: ClusterState,
    metadata_offset: usize,
    /// A failed replication write: the fetcher backs off until then.
    fetch_paused_until_ms: i64,
    /// The fetcher of the partition's leader, while following.
    fetcher: Option<FetcherState>,
    /// The fetcher's call in flight: its id and when it was sent.
    fetch_call: Option<(u64, i64)>,
    calls: u64,
    /// The leader's fetch sessions, one per follower broker.
    sessions: parking_lot::Mutex<Sessions>,
    next_housekeeping_ms: i64,
    produces: Vec<PendingProduce>,
    commits: Vec<PendingCommit>,
    pub view: LogView,
}

struct PendingProduce {
    id: u64,
    offset: i64,
    replicated: oneshot::Receiver<Option<ResponseError>>,
    /// A transaction marker (it holds no record of the client's).
    marker: bool,
}

type CommitFuture = Pin<Box<dyn Future<Output = Result<(), ResponseError>>>>;

struct PendingCommit {
    id: u64,
    group: usize,
    offset: i64,
    future: CommitFuture,
}

impl Process {
    /// This broker's log as read back.
    pub(super) fn read_log(&mut self) -> Result<LogRead, String> {
        self.view.read(&self.partition)
    }
}

pub(super) fn group_id(group: usize) -> String {
    format!("group-{group}")
}

impl SimBroker {
    pub fn new(
        id: BrokerId,
        data_dir: PathBuf,
        clock: Arc<ManualClock>,
        workload: Workload,
    ) -> SimBroker {
        SimBroker {
            id,
            data_dir,
            clock,
            workload,
            process: None,
            held_at_stop: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// What a stopped broker's log holds, when known (not after a torn write).
    pub fn held_while_down(&self) -> Option<&LogRead> {
        match self.process {
            None => self.held_at_stop.as_ref(),
            Some(_) => None,
        }
    }

    /// Start the process: open the partition (recovering its log) on a disk of its
    /// own.
    pub fn start(&mut self, now: i64) -> Result<(), String> {
        let faults = FaultPlan::new();
        let storage = LogStorage::new(Disk::with_faults(faults.clone()), MAX_OPEN_FILES);
        let partition = Partition::open_in(
            &storage,
            &self.data_dir,
            self.workload.topic(),
            TP.topic_id,
            TP.partition,
            0,
            self.workload.log_config(),
            self.clock.clone(),
        )
        .map_err(|e| format!("broker {}: reopening the partition failed: {e}", self.id))?;
        let partition = Arc::new(partition);
        let mut process = Process {
            view: LogView::new(&partition),
            partition,
            faults,
            groups: (self.workload == Workload::Commit)
                .then(|| GroupRuntime::new(GroupConfig::default())),
            broker_epoch: None,
            register_nonce: 0,
            shutting_down: false,
            next_register_ms: now,
            next_heartbeat_ms: now,
            heartbeat_answered_ms: now,
            cut_off: false,
            metadata: ClusterState::default(),
            metadata_offset: 0,
            fetch_paused_until_ms: now,
            fetcher: None,
            fetch_call: None,
            calls: 0,
            sessions: Default::default(),
            next_housekeeping_ms: now + HOUSEKEEPING_MS,
            produces: Vec::new(),
            commits: Vec::new(),
        };
        if let Some(held) = self.held_at_stop.take() {
            let recovered = process.read_log()?;
            check_recovered(self.id, &held, &recovered)?;
        }
        self.process = Some(process);
        Ok(())
    }

    /// The process dies: nothing in memory survives, the files stay as written.
    pub fn crash(&mut self) -> Result<(), String> {
        if let Some(mut p) = self.process.take() {
            self.held_at_stop = match p.faults.has_crashed() {
                false => Some(p.read_log()?),
                true => None,
            };
        }
        Ok(())
    }

    /// The process's next write to a file of `kind` lands only its first `bytes` and
    /// the process dies in it.
    pub fn tear_next_write(&mut self, kind: FileKind, bytes: usize) {
        if let Some(p) = &self.process {
            p.faults
                .add(FaultRule::new(Op::Write, Fault::Torn(bytes)).kind(kind));
        }
    }

    /// The torn write has not come: the disk behaves again.
    pub fn clear_disk_faults(&mut self) {
        if let Some(p) = &self.process {
            p.faults.clear();
        }
    }

    /// The process died in a torn write (every file operation fails from then on).
    pub fn died_in_torn_write(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| p.faults.has_crashed())
    }

    /// The end of a controlled shutdown: logs closed cleanly, then the process exits.
    pub fn exit(&mut self) -> Result<(), String> {
        if let Some(p) = &mut self.process {
            p.partition.make_offline();
            p.partition
                .with_log_mut(|l| l.close())
                .map_err(|e| format!("broker {}: closing the log failed: {e}", self.id))?;
        }
        self.crash()
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(p) = &mut self.process {
            p.shutting_down = true;
        }
    }

    /// The cluster starts formed: registered with this broker epoch.
    pub fn set_registered(&mut self, epoch: Option<BrokerEpoch>) {
        if let Some(p) = &mut self.process {
            p.broker_epoch = epoch;
        }
    }

    /// Lead, follow or neither as the applied metadata says (`Broker::follow_image`),
    /// and coordinate the partition's groups while leading it
    /// (`Broker::follow_coordination`).
    fn follow_metadata(&mut self, out: &mut Outbox) {
        let me = self.id;
        let Some(p) = &mut self.process else { return };
        let Some(reg) = p.metadata.partition(&TP).cloned() else {
            return;
        };
        let partition = &p.partition;
        let was = (partition.is_leader(), partition.leader_epoch());
        let leads = reg.leader == me;
        if leads && p.cut_off {
            partition.make_offline();
        } else if leads {
            let epoch = reg.leader_epoch;
            let proposals = partition.make_leader(me, LEADER_CONFIG, reg);
            if was != (true, epoch.0) {
                let leo = partition.log_end_offset();
                out.trace
                    .push(format!("broker {me}: leader of epoch {} at {leo}", epoch.0));
                out.led.push(epoch);
            }
            propose(me, p.broker_epoch, proposals, out);
        } else if is_replica(&reg, me) {
            // As `Fetchers::follow`: the partition goes to its leader's fetcher.
            let stop = partition.make_follower(me, FOLLOWER_CONFIG, &reg);
            match &mut p.fetcher {
                Some(f) if f.leader() == reg.leader && stop.is_none() => f.touch(TP),
                _ => {
                    p.fetcher = None;
                    p.fetch_call = None;
                    if let Some(stop) = stop.or_else(|| partition.follower_stop()) {
                        let mut f = FetcherState::new(reg.leader);
                        f.add(partition.clone(), stop);
                        p.fetcher = Some(f);
                    }
                }
            }
        } else {
            partition.make_offline();
        }
        if !p.partition.role_name().eq("follower") {
            // Its fetcher is left with no partition and ends.
            p.fetcher = None;
            p.fetch_call = None;
        }
        if let Some(groups) = &p.groups {
            if !leads {
                groups.resign(TP.partition);
            } else if partition.is_leader() {
                let before = groups.shard(TP.partition).ok().map(|s| Arc::as_ptr(&s));
                groups.become_leader(partition.clone());
                let after = groups.shard(TP.partition).ok().map(|s| Arc::as_ptr(&s));
                if after.is_some() && after != before {
                    out.trace.push(format!(
                        "broker {me}: coordinator loaded at epoch {}",
                        partition.leader_epoch()
                    ));
                    out.coordinator_loaded = true;
                }
            }
        }
    }

    pub fn on_message(
        &mut self,
        now: i64,
        from: Node,
        msg: Msg,
        out: &mut Outbox,
    ) -> Result<(), String> {
        let b = self.id;
        let Some(p) = &mut self.process else {
            return Ok(());
        };
        match msg {
            Msg::Registered {
                nonce,
                broker_epoch,
            } => {
                if p.broker_epoch.is_none() && nonce == p.register_nonce {
                    p.broker_epoch = Some(broker_epoch);
                    p.next_heartbeat_ms = now;
                    p.heartbeat_answered_ms = now;
                }
            }
            Msg::HeartbeatReply {
                reply,
                from_offset,
                records,
            } => {
                match &reply {
                    Ok(_) => p.heartbeat_answered_ms = now,
                    Err(ResponseError::StaleBrokerEpoch | ResponseError::BrokerIdNotRegistered) => {
                        p.broker_epoch = None
                    }
                    Err(_) => {}
                }
                if p.shutting_down && reply.is_ok_and(|r| r.should_shut_down) {
                    // Leaderships moved away: the process exits.
                    out.trace
                        .push(format!("broker {b}: controlled shutdown done"));
                    out.controlled_shutdown_done = true;
                    return Ok(());
                }
                if from_offset != p.metadata_offset {
                    return Ok(());
                }
                let before: Vec<_> = (1..=super::BROKERS)
                    .map(|id| p.metadata.eligible_epoch(id))
                    .collect();
                apply_metadata(b, &mut p.metadata, &records)?;
                p.metadata_offset += records.len();
                // As `Broker::install_image`: leaders hear of brokers that became
                // eligible (or stopped being).
                for (id, was) in (1..=super::BROKERS).zip(before) {
                    let now = p.metadata.eligible_epoch(id);
                    if now != was {
                        let proposals = p.partition.on_broker_state(id, now);
                        propose(b, p.broker_epoch, proposals, out);
                    }
                }
                self.follow_metadata(out);
            }
            Msg::AlterPartitionReply { request, result } => {
                let proposals = p.partition.on_alter_partition_response(&request, result);
                propose(b, p.broker_epoch, proposals, out);
            }
            Msg::Fetch { call, request } => {
                let (session, refused) = replica_session::session_request(&request, |_| true);
                let budget = Budget {
                    total: FETCH_MAX_BYTES * 2,
                    per_partition: FETCH_MAX_BYTES,
                };
                p.calls += 1;
                let partition = p.partition.clone();
                let begun = Sessions::begin(
                    &p.sessions,
                    now,
                    request.replica_id,
                    request.replica_epoch.map(BrokerEpoch),
                    &session,
                    u32::try_from(p.calls).unwrap_or(1),
                    budget,
                    refused,
                    |tp| (*tp == TP).then(|| partition.clone()),
                );
                let outcome = match begun {
                    Err(e) => Ok(replica_session::refused(e)),
                    Ok(mut round) => {
                        let isr_eligible = p.metadata.isr_eligible(
                            request.replica_id,
                            request.replica_epoch.map(BrokerEpoch),
                        );
                        for (_, proposals) in round.answer_due(
                            &p.sessions,
                            &crate::server::throttle::Unthrottled,
                            isr_eligible,
                        ) {
                            propose(b, p.broker_epoch, proposals, out);
                        }
                        let id = round.session_id();
                        let (answers, slices) = round.finish(&p.sessions);
                        slices
                            .into_iter()
                            .map(|(i, s)| s.read_to_bytes().map(|r| (i, r)))
                            .collect::<std::io::Result<Vec<_>>>()
                            .map(|read| replica_session::response(id, answers, read))
                            .map_err(|e| format!("reading records: {e}"))
                    }
                };
                out.send(from, Msg::FetchReply { call, outcome });
            }
            Msg::FetchReply { call, outcome } => {
                // Only the answer to the call in flight: gRPC pairs them.
                if p.fetch_call.map(|(c, _)| c) != Some(call) {
                    return Ok(());
                }
                p.fetch_call = None;
                let Some(fetcher) = &mut p.fetcher else {
                    return Ok(());
                };
                let bounds =
                    |p: &Partition| p.with_log(|l| (l.log_start_offset(), l.log_end_offset()));
                let (start, end) = bounds(&p.partition);
                match outcome {
                    Ok(response) => {
                        if let Some(e) = fetcher
                            .on_response(response, &crate::server::throttle::Unthrottled)
                            .into_iter()
                            .next()
                        {
                            return Err(format!("broker {b}: replicating failed: {e}"));
                        }
                    }
                    Err(e) => fetcher.on_failure(&e),
                }
                let (now_start, now_end) = bounds(&p.partition);
                if now_start > start {
                    out.resets += 1;
                    out.trace.push(format!(
                        "broker {b}: started over at the leader's log start {now_start}"
                    ));
                } else if now_end < end {
                    p.view.truncated();
                    out.truncations += 1;
                    out.trace
                        .push(format!("broker {b}: truncated to {now_end}"));
                }
            }
            Msg::Produce { id } => {
                let batch = TestBatch::new(&[&id.to_string()], self.clock.wall_ms()).encode();
                let acks = Acks::All {
                    deadline_ms: now + REQUEST_TIMEOUT_MS,
                };
                let appended = p.partition.append_produce(batch.freeze(), acks);
                wait_for_isr(b, p, id, false, appended, out)?;
            }
            Msg::TxnProduce {
                id,
                producer_id,
                epoch,
                seq,
            } => {
                let batch = TestBatch::new(&[&id.to_string()], self.clock.wall_ms())
                    .transactional(producer_id, epoch, seq)
                    .encode();
                let acks = Acks::All {
                    deadline_ms: now + REQUEST_TIMEOUT_MS,
                };
                let appended = p.partition.append_transactional(batch.freeze(), acks);
                wait_for_isr(b, p, id, false, appended, out)?;
            }
            Msg::TxnMarker {
                id,
                producer_id,
                epoch,
                commit,
            } => {
                let marker = EndTxnMarker {
                    producer_id,
                    producer_epoch: epoch,
                    coordinator_epoch: 0,
                    commit,
                };
                let appended = p
                    .partition
                    .append_txn_marker(&marker, now + REQUEST_TIMEOUT_MS);
                wait_for_isr(b, p, id, true, appended, out)?;
            }
            Msg::Commit { id, group, offset } => {
                let groups = p.groups.as_ref().expect("commits go to a coordinator");
                let shard = match groups.shard(TP.partition) {
                    Ok(shard) => shard,
                    Err(code) => {
                        let result = Err(code);
                        out.send(
                            CLIENT,
                            Msg::CommitReply {
                                id,
                                group,
                                offset,
                                result,
                            },
                        );
                        return Ok(());
                    }
                };
                let request = CommitRequest {
                    group_id: group_id(group),
                    member_id: String::new(),
                    group_instance_id: None,
                    generation_id: -1,
                    offsets: vec![(
                        COMMITTED_TOPIC.to_string(),
                        0,
                        OffsetValue {
                            offset,
                            leader_epoch: -1,
                            metadata: String::new(),
                            commit_timestamp_ms: self.clock.wall_ms(),
                        },
                    )],
                };
                // The append happens at the first poll, as when the connection task
                // awaits the commit at once.
                p.commits.push(PendingCommit {
                    id,
                    group,
                    offset,
                    future: Box::pin(async move { shard.commit(request).await }),
                });
                poll_commits(p, out);
            }
            other => unreachable!("broker {b} got {other:?}"),
        }
        Ok(())
    }

    /// One step of the broker's timers and loops: registration and heartbeats, the
    /// controller contact check, the leader tick, the follower's next fetch, and the
    /// answers of produce requests and commits whose wait ended.
    pub fn tick(&mut self, now: i64, out: &mut Outbox) -> Result<(), String> {
        let b = self.id;
        let Some(p) = &mut self.process else {
            return Ok(());
        };
        match p.broker_epoch {
            None if now >= p.next_register_ms => {
                p.register_nonce += 1;
                p.next_register_ms = now + REGISTER_RETRY_MS;
                out.send(
                    CONTROLLER,
                    Msg::Register {
                        nonce: p.register_nonce,
                    },
                );
            }
            Some(broker_epoch) if now >= p.next_heartbeat_ms => {
                p.next_heartbeat_ms = now + HEARTBEAT_MS;
                let msg = Msg::Heartbeat {
                    heartbeat: Heartbeat {
                        broker: b,
                        broker_epoch,
                        want_fence: false,
                        want_shut_down: p.shutting_down,
                    },
                    metadata_offset: p.metadata_offset,
                };
                out.send(CONTROLLER, msg);
            }
            _ => {}
        }
        // `QuorumClient::in_touch`: an unregistered broker is not serving yet.
        let in_touch =
            p.broker_epoch.is_none() || now - p.heartbeat_answered_ms < SESSION_TIMEOUT_MS * 3 / 2;
        if p.cut_off == in_touch {
            p.cut_off = !in_touch;
            out.trace.push(format!(
                "broker {b}: {}",
                if in_touch {
                    "in touch with the controller again"
                } else {
                    "cut off from the controller: leading nothing"
                }
            ));
            self.follow_metadata(out);
        }
        let Some(p) = &mut self.process else {
            return Ok(());
        };
        let proposals = p.partition.tick();
        propose(b, p.broker_epoch, proposals, out);
        if now >= p.next_housekeeping_ms {
            p.next_housekeeping_ms = now + HOUSEKEEPING_MS;
            let hw = p.partition.high_watermark();
            let wall = self.clock.wall_ms();
            out.segments_deleted += p
                .partition
                .with_log_mut(|log| log.housekeeping(wall, hw))
                .map_err(|e| format!("broker {b}: log housekeeping failed: {e}"))?;
        }
        if now >= p.fetch_paused_until_ms {
            if let Some(f) = &mut p.fetcher {
                // An unanswered call is given up (the request's deadline).
                if p.fetch_call
                    .is_some_and(|(_, sent)| now - sent >= FOLLOWER_CONFIG.fetch_timeout_ms)
                {
                    p.fetch_call = None;
                    f.on_failure("deadline exceeded");
                }
                if p.fetch_call.is_none() {
                    if let Some(request) = f.next_request(
                        now,
                        FOLLOWER_CONFIG.fetch_backoff_ms,
                        &crate::server::throttle::Unthrottled,
                    ) {
                        p.calls += 1;
                        p.fetch_call = Some((p.calls, now));
                        let request = to_proto(&request, b, p.broker_epoch.map(|e| e.0), 0, 0, 0);
                        out.send(
                            f.leader(),
                            Msg::Fetch {
                                call: p.calls,
                                request,
                            },
                        );
                    }
                }
            }
        }
        p.produces.retain_mut(|w| {
            let result = match w.replicated.try_recv() {
                Err(TryRecvError::Empty) => return true,
                Ok(None) => {
                    if !w.marker {
                        out.acknowledged.push((w.id, w.offset));
                    }
                    Ok(w.offset)
                }
                Ok(Some(code)) => Err(code),
                // The partition dropped its waiters: no longer its leader.
                Err(TryRecvError::Closed) => Err(ResponseError::NotLeaderOrFollower),
            };
            out.send(CLIENT, Msg::ProduceReply { id: w.id, result });
            false
        });
        poll_commits(p, out);
        Ok(())
    }
}

/// An acks=all append of request `id`: answered when the ISR holds it (see `tick`),
/// or now with the error that refused it.
fn wait_for_isr(
    b: BrokerId,
    p: &mut Process,
    id: u64,
    marker: bool,
    appended: Result<Appended, AppendError>,
    out: &mut Outbox,
) -> Result<(), String> {
    match appended {
        Ok(appended) => {
            propose(b, p.broker_epoch, appended.proposals, out);
            p.produces.push(PendingProduce {
                id,
                offset: appended.info.base_offset,
                replicated: appended.replicated.expect("acks=all waits"),
                marker,
            });
        }
        Err(e @ AppendError::Io(_)) => {
            return Err(format!("broker {b}: appending record {id} failed: {e}"))
        }
        Err(e) => {
            let result = Err(append_error_code(&e));
            out.send(CLIENT, Msg::ProduceReply { id, result });
        }
    }
    Ok(())
}

fn is_replica(reg: &PartitionRegistration, b: BrokerId) -> bool {
    reg.replicas.contains(&b) || reg.adding_replicas.contains(&b)
}

fn apply_metadata(
    b: BrokerId,
    metadata: &mut ClusterState,
    records: &[ControllerRecord],
) -> Result<(), String> {
    for r in records {
        metadata
            .apply(r)
            .map_err(|e| format!("broker {b}: metadata record does not apply: {e}"))?;
    }
    Ok(())
}

/// ISR proposals go to the controller with this broker's epoch (none before it is
/// registered: the leader proposes again after its retry interval).
fn propose(
    b: BrokerId,
    broker_epoch: Option<BrokerEpoch>,
    proposals: Vec<AlterPartitionRequest>,
    out: &mut Outbox,
) {
    for request in proposals {
        out.trace
            .push(format!("broker {b}: propose ISR {}", request.new_isr));
        if let Some(broker_epoch) = broker_epoch {
            out.send(
                CONTROLLER,
                Msg::AlterPartition {
                    broker_epoch,
                    request,
                },
            );
        }
    }
}

/// Poll each waiting commit once; commits spawn no task, so nothing else wakes them.
fn poll_commits(p: &mut Process, out: &mut Outbox) {
    let mut cx = Context::from_waker(Waker::noop());
    p.commits
        .retain_mut(|c| match c.future.as_mut().poll(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                out.send(
                    CLIENT,
                    Msg::CommitReply {
                        id: c.id,
                        group: c.group,
                        offset: c.offset,
                        result,
                    },
                );
                false
            }
        });
}
