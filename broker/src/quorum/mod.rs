//! The metadata quorum: the cluster metadata as a Raft log (openraft over the internal
//! gRPC listener), the active controller on the Raft leader, and this broker's
//! registration and heartbeats.
//!
//! # Layout
//!
//! - `log_store`: the Raft log on disk (CRC-framed segments, vote, purge point).
//! - `write_retry`: every metadata write retried until it lands, and the health the
//!   broker's readiness and metrics report.
//! - `state_machine`: the [`MetadataImage`] as Raft state machine, with snapshots.
//! - `network`: openraft's `RaftNetwork` over tonic, the `Raft` gRPC service, channels.
//! - `internal_tls`: mutual TLS on the internal listener; a node's id bound to its
//!   certificate (SAN URI `fjord://node/<id>`), reloaded when the files change.
//! - `authz`: who may make which internal call (the pure rules, by role).
//! - `internal_ca`: a CA made on the spot and node certificates (`fjord dev`, tests).
//! - `controller`: the controller loop on the Raft leader (drives the pure
//!   [`Controller`](crate::replication::controller::Controller)) and the `Controller`
//!   gRPC service brokers call.
//!
//! # Using it
//!
//! [`Quorum::start`] opens `<data_dir>/__cluster_metadata/`, replays it into the
//! [`MetadataApplier`], starts Raft and the loops. It binds no socket: the runtime serves
//! [`Quorum::routes`] (a `tonic::service::Routes` holding the `fjord.metadata.Raft` and
//! `fjord.metadata.Controller` services) on the internal listener, e.g.
//! `Server::builder().add_routes(quorum.routes()).add_service(replica).serve(addr)`.
//! Admin changes go through [`Quorum::submit`], which returns once the committed change
//! is applied locally.
//!
//! # Raft entries and membership
//!
//! An entry is a [`MetadataBatch`]: the records of one decision, applied all or none.
//! Voters come from `--voters`; a fresh voter initializes the cluster with that list
//! (every voter may do so with the same list). Every other registering broker is added
//! as a learner, and a broker whose `--voters` names it but which the committed
//! membership does not hold as a voter is promoted once it has caught up, so a cluster
//! grows from one voter to three by restarting with the longer list. Removing voters is
//! not supported yet: a voter dropped from `--voters` stays a voter of the committed
//! membership. A fresh voter first asks the other voters whether a quorum runs and joins
//! it if so; grow the voter set while the cluster is up (a fresh voter that finds no
//! other voter reachable initializes with its --voters list).
//!
//! [`QuorumStatus`] has no commit index (openraft 0.9 does not report one); it reports
//! the last log index and the applied index.

pub mod authz;
mod controller;
pub mod internal_ca;
pub mod internal_tls;
mod log_store;
mod network;
mod state_machine;
#[cfg(test)]
mod tests;
mod write_retry;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::acl::{AclBinding, AclBindingFilter};
use crate::backoff::Backoff;
use crate::config::{BrokerConfig, Voter};
use crate::metadata::admin::AdminError;
use crate::metadata::image::{MetadataImage, MetadataRecord};
use crate::replication::leader::AlterPartitionRequest;
use crate::replication::{PartitionRegistration, TopicPartition};
use crate::storage::Disk;

pub use log_store::LogStore;
pub use network::Channels;
pub use write_retry::WriteHealth;

/// The `fjord.metadata` gRPC messages and stubs (public so that tests can play a peer).
pub mod pb {
    tonic::include_proto!("fjord.metadata");
}

pub type NodeId = u64;

/// One Raft entry: the records of one controller decision, applied as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch(pub Vec<MetadataRecord>);

/// What applying an entry gave: `error` when the batch did not fit the image (it is then
/// skipped, identically on every node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub error: Option<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = MetadataBatch,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Receives the image after each applied step.
pub trait MetadataApplier: Send + Sync + 'static {
    /// Called after committed metadata records were applied (or a snapshot installed),
    /// in log order, with the new image; an image superseded before it was taken is
    /// skipped. Runs on the publisher task (blocking pool), outside openraft's apply:
    /// it may open logs, but must not wait on the quorum.
    fn apply(&self, image: Arc<MetadataImage>);
}

/// A request for the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Admin changes the broker planned against its own image (CreateTopics,
    /// DeleteTopics, CreatePartitions, config changes). The controller checks they apply
    /// to its image (all or none: TopicAlreadyExists for a duplicate name,
    /// UnknownTopicOrPartition for a missing topic, else InvalidRequest) and commits
    /// them as one entry.
    Records(Vec<MetadataRecord>),
    /// From a partition leader, the ISR changes of the partitions it leads:
    /// `Controller::alter_partition` for each with this broker's epoch, committed as
    /// one entry; answered with `Partitions`.
    AlterPartitions(Vec<AlterPartitionRequest>),
    /// `Controller::alter_reassignment` (None cancels).
    AlterReassignment {
        partition: TopicPartition,
        target: Option<Vec<i32>>,
    },
    /// Reserve a block of producer ids (KIP-730): commits ProducerIdsReserved.
    AllocateProducerIds { count: i64 },
    /// `Controller::unregister_broker`.
    UnregisterBroker { broker: i32 },
    /// `Controller::replica_storage`: this broker's copy of `partition` cannot be
    /// served (`offline`) or can be again.
    ReplicaStorage {
        partition: TopicPartition,
        offline: bool,
    },
    /// CreateAcls: the controller validates the bindings and commits one ACL-created
    /// record, with a fresh id, for each one its image does not hold yet.
    CreateAcls(Vec<AclBinding>),
    /// DeleteAcls: commits an ACL-removed record for every ACL of the controller's
    /// image that a filter matches; answered with `AclsDeleted`.
    DeleteAcls(Vec<AclBindingFilter>),
    /// ElectLeaders: `Controller::elect_leaders`, answered with `Elected`.
    ElectLeaders(crate::replication::controller::ElectLeaders),
    /// Nothing to commit: answered with the controller's last applied entry, so that
    /// the caller's image, once caught up with it, holds everything the controller had
    /// decided when it answered (a barrier before planning an admin change).
    Sync,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    Done,
    /// Per request of an AlterPartitions: the partition after the change, or the
    /// Kafka error code of its refusal.
    Partitions(Vec<Result<PartitionRegistration, i16>>),
    /// Producer ids `first..first + count` are this broker's to hand out.
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// Per DeleteAcls filter, the ACLs it removed.
    AclsDeleted(Vec<Vec<AclBinding>>),
    /// Per partition of an ElectLeaders: topic, partition, error code (0 when elected)
    /// and message.
    Elected(Vec<(String, i32, i16, Option<String>)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: i32,
    /// This node is the Raft leader and runs the active controller.
    pub is_controller: bool,
    /// The Raft leader as far as this node knows, -1 when unknown.
    pub controller_id: i32,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub voters: Vec<i32>,
    pub learners: Vec<i32>,
}

/// This broker's standing with the controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BrokerStatus {
    epoch: Option<i64>,
    fenced: bool,
    /// Registered, unfenced, and the local image holds what the controller had applied.
    ready: bool,
    should_shut_down: bool,
}

/// Raft timing. Elections on a LAN settle in about a second.
const RAFT_HEARTBEAT_MS: u64 = 100;
const RAFT_ELECTION_MIN_MS: u64 = 500;
const RAFT_ELECTION_MAX_MS: u64 = 1000;
/// Bound of one controller RPC; `submit` retries within its own timeout.
const CONTROLLER_RPC_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub struct Quorum {
    node_id: i32,
    raft: Raft<TypeConfig>,
    sm: Arc<state_machine::Shared>,
    log: LogStore,
    channels: network::Channels,
    voters: Vec<Voter>,
    controller: Arc<controller::Handle>,
    broker: watch::Sender<BrokerStatus>,
    want_shut_down: AtomicBool,
    heartbeat_now: Notify,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    registration: pb::RegisterBrokerRequest,
    heartbeat_interval: Duration,
    /// broker.session.timeout.ms: without an answered heartbeat this long, this
    /// broker must assume the controller has fenced it.
    session_timeout: Duration,
    /// When the controller last answered a heartbeat.
    last_heartbeat_answered: parking_lot::Mutex<Option<Instant>>,
    /// Whether this node's metadata writes land.
    write_health: Arc<WriteHealth>,
}

impl Quorum {
    /// Opens the Raft storage under `<data_dir>/__cluster_metadata/`, replays it
    /// (calling the applier), starts Raft; a voter whose storage is fresh initializes
    /// the cluster with `config.quorum_voters()`. Starts this broker's registration and
    /// heartbeat loop and the controller loop (active while this node is the Raft
    /// leader). Binds no socket: serve [`Quorum::routes`].
    pub async fn start(
        config: &BrokerConfig,
        channels: Channels,
        applier: Arc<dyn MetadataApplier>,
    ) -> Result<Arc<Quorum>, String> {
        let dir = config.data_dir.join("__cluster_metadata");
        let interval = config.metadata_snapshot_interval_entries.max(1);
        let segment_entries = interval.clamp(16, 4096);
        let disk = Disk::real();
        let cancel = CancellationToken::new();
        let write_health = Arc::new(WriteHealth::default());
        let retry = write_retry::Retry::new(write_health.clone(), cancel.clone());
        let log = LogStore::open(disk.clone(), &dir, segment_entries, retry.clone())
            .map_err(|e| format!("metadata log in {}: {e}", dir.display()))?;
        let sm = state_machine::StateMachine::open(disk, &dir, applier, retry)
            .map_err(|e| format!("metadata snapshot in {}: {e}", dir.display()))?;
        let shared = sm.shared();
        let raft_config = openraft::Config {
            cluster_name: "fjord-metadata".into(),
            heartbeat_interval: RAFT_HEARTBEAT_MS,
            election_timeout_min: RAFT_ELECTION_MIN_MS,
            election_timeout_max: RAFT_ELECTION_MAX_MS,
            install_snapshot_timeout: 2_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(interval),
            // Keep some entries after a snapshot so a briefly lagging follower catches
            // up from the log rather than by a snapshot.
            max_in_snapshot_log_to_keep: interval.min(1000),
            max_payload_entries: 500,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("raft config: {e}"))?;
        let network = network::Network {
            channels: channels.clone(),
        };
        let node_id = config.node_id;
        let raft = Raft::new(
            node_id as NodeId,
            Arc::new(raft_config),
            network,
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| format!("metadata raft: {e}"))?;

        let voters = config.quorum_voters();
        if config.is_voter() {
            let fresh = !raft
                .is_initialized()
                .await
                .map_err(|e| format!("metadata raft: {e}"))?;
            if fresh && quorum_exists(&channels, &voters, node_id).await {
                tracing::info!(
                    "metadata quorum found running: joining it rather than initializing"
                );
            } else if fresh {
                let members: BTreeMap<NodeId, BasicNode> = voters
                    .iter()
                    .map(|v| (v.id as NodeId, BasicNode::new(&v.address)))
                    .collect();
                match raft.initialize(members).await {
                    Ok(()) => tracing::info!(?voters, "metadata quorum initialized"),
                    // Another voter's initialization got here first.
                    Err(e) => tracing::info!("metadata quorum already initialized: {e}"),
                }
            }
        }
        let (host, port) = config.advertised();
        let quorum = Arc::new(Quorum {
            node_id,
            raft,
            sm: shared,
            log,
            channels,
            voters,
            controller: Arc::new(controller::Handle::new(controller::Settings {
                node_id,
                session_timeout_ms: config.broker_session_timeout_ms as i64,
                auto_leader_rebalance: config.auto_leader_rebalance_enable,
                tick: Duration::from_millis(config.broker_heartbeat_interval_ms.min(250)),
                write_health: write_health.clone(),
            })),
            broker: watch::channel(BrokerStatus::default()).0,
            want_shut_down: AtomicBool::new(false),
            heartbeat_now: Notify::new(),
            cancel,
            tasks: Mutex::new(Vec::new()),
            registration: pb::RegisterBrokerRequest {
                broker_id: node_id,
                rack: config.rack.clone().unwrap_or_default(),
                has_rack: config.rack.is_some(),
                host,
                port,
                internal_address: config.internal_address(),
                wants_voter: config.is_voter(),
                listeners: config
                    .listeners()
                    .expect("validated at startup")
                    .iter()
                    .map(|l| pb::ListenerEndpoint {
                        name: l.name.to_string(),
                        host: l.advertised_host.clone(),
                        port: i32::from(l.advertised_port),
                    })
                    .collect(),
            },
            heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
            session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
            last_heartbeat_answered: parking_lot::Mutex::new(None),
            write_health,
        });
        let ctl = tokio::spawn(controller::run(
            quorum.controller.clone(),
            quorum.raft.clone(),
            quorum.sm.clone(),
            quorum.cancel.clone(),
        ));
        let q = Arc::downgrade(&quorum);
        let cancel = quorum.cancel.clone();
        let broker = tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = broker_loop(q) => {}
            }
        });
        quorum.tasks.lock().extend([ctl, broker]);
        Ok(quorum)
    }

    /// The `fjord.metadata.Raft` and `fjord.metadata.Controller` services, for the
    /// runtime to serve on the internal listener (`Server::add_routes`, or merge into
    /// its own `RoutesBuilder` with `RoutesBuilder::from(routes)`).
    pub fn routes(self: &Arc<Self>) -> tonic::service::Routes {
        let raft = pb::raft_server::RaftServer::new(network::RaftService {
            raft: self.raft.clone(),
            configured_voters: self.voters.iter().map(|v| v.id).collect(),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
        let controller = pb::controller_server::ControllerServer::new(controller::Service::new(
            self.controller.clone(),
            self.raft.clone(),
            self.sm.clone(),
        ));
        tonic::service::Routes::new(raft).add_service(controller)
    }

    /// The last applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.sm.image()
    }

    /// Send `req` to the active controller (over gRPC unless this node is it), retrying
    /// while there is none, up to `timeout`. Returns once the committed records are
    /// applied on this node, so `image()` shows them.
    pub async fn submit(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, AdminError> {
        let deadline = Instant::now() + timeout;
        let json = serde_json::to_vec(&req).map_err(|e| AdminError {
            code: ResponseError::InvalidRequest,
            message: format!("controller request: {e}"),
        })?;
        let call = controller::Call::Submit(pb::SubmitRequest {
            broker_id: self.node_id,
            broker_epoch: self.broker_epoch().unwrap_or(-1),
            request_json: json.into(),
        });
        let controller::Answer::Submit(answer) = self.call_controller(call, deadline).await? else {
            unreachable!("a submit is answered by a submit response");
        };
        if let Some(code) = controller::error_of(answer.error_code) {
            return Err(AdminError {
                code,
                message: answer.error_message,
            });
        }
        let reply: ControllerReply =
            serde_json::from_slice(&answer.reply_json).map_err(|e| AdminError {
                code: ResponseError::UnknownServerError,
                message: format!("controller reply: {e}"),
            })?;
        self.wait_applied(answer.log_index, deadline).await?;
        Ok(reply)
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), AdminError> {
        let mut applied = self.sm.applied();
        let caught_up = async { applied.wait_for(|&i| i >= index).await.is_ok() };
        match tokio::time::timeout_at(deadline, caught_up).await {
            Ok(true) => Ok(()),
            _ => Err(AdminError {
                code: ResponseError::RequestTimedOut,
                message: format!(
                    "metadata log entry {index} committed but not yet applied on broker {}",
                    self.node_id
                ),
            }),
        }
    }

    /// Has the controller answered a heartbeat lately? A broker cut off from the
    /// controller for longer than the session timeout has been fenced by now: it must
    /// stop acting as a partition leader. The margin of half a session keeps a
    /// controller election (which gives every broker a fresh session) from making
    /// connected brokers step back.
    pub fn in_touch(&self) -> bool {
        self.last_heartbeat_answered
            .lock()
            .is_some_and(|t| t.elapsed() < self.session_timeout.mul_f32(1.5))
    }

    /// This broker's epoch, once registered.
    pub fn broker_epoch(&self) -> Option<i64> {
        self.broker.borrow().epoch
    }

    /// Resolves once this broker is registered, unfenced and caught up with the log.
    pub async fn wait_ready(&self) {
        let mut rx = self.broker.subscribe();
        let _ = rx.wait_for(|s| s.ready).await;
    }

    /// Controlled shutdown: heartbeat with want_shut_down until the controller says
    /// should_shut_down (its leaderships moved away) or `timeout` passes. True when the
    /// controller agreed.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        self.want_shut_down.store(true, Ordering::SeqCst);
        self.heartbeat_now.notify_one();
        let mut rx = self.broker.subscribe();
        let agreed = async { rx.wait_for(|s| s.should_shut_down).await.is_ok() };
        tokio::time::timeout(timeout, agreed).await == Ok(true)
    }

    /// Stop the loops and Raft.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("metadata raft shutdown: {e}");
        }
    }

    pub fn status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        QuorumStatus {
            node_id: self.node_id,
            is_controller: m.state == ServerState::Leader && self.controller.is_active(),
            controller_id: m.current_leader.map_or(-1, |l| l as i32),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: self.sm.applied_index(),
            voters: membership.voter_ids().map(|v| v as i32).collect(),
            learners: membership.learner_ids().map(|v| v as i32).collect(),
        }
    }

    /// Whether this node's metadata log, vote and snapshot writes land; while one is
    /// failing it is retried, and this broker is not ready.
    pub fn write_health(&self) -> &Arc<WriteHealth> {
        &self.write_health
    }

    /// Segment files of the metadata log (bounded by snapshots).
    pub fn log_segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// Ask the active controller, following leader hints and retrying with backoff
    /// until `deadline`.
    async fn call_controller(
        &self,
        call: controller::Call,
        deadline: Instant,
    ) -> Result<controller::Answer, AdminError> {
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let mut hint: Option<(i32, String)> = None;
        let mut next_voter = 0usize;
        let mut last_error = String::from("no controller known");
        loop {
            if Instant::now() >= deadline {
                return Err(AdminError {
                    code: ResponseError::RequestTimedOut,
                    message: format!("no active controller answered in time ({last_error})"),
                });
            }
            let failing = match call {
                controller::Call::Submit(_) => self.write_health.failing(),
                // A sole voter answers heartbeats while its log fails (see controller).
                _ => None,
            };
            if let Some(why) = failing {
                // This node could not apply the change in time, and blocked on the
                // write its Raft may still name itself leader while the other voters
                // have moved on: no answer would come in time.
                return Err(AdminError {
                    code: ResponseError::KafkaStorageError,
                    message: format!(
                        "broker {} cannot write its metadata log ({why}); retrying",
                        self.node_id
                    ),
                });
            }
            let target = hint
                .take()
                .or_else(|| self.known_leader())
                .unwrap_or_else(|| {
                    let v = &self.voters[next_voter % self.voters.len()];
                    next_voter += 1;
                    (v.id, v.address.clone())
                });
            let answer = if target.0 == self.node_id {
                Ok(self.controller_service().handle(call.clone()).await)
            } else {
                let remaining = deadline.saturating_duration_since(Instant::now());
                controller::remote(
                    &self.channels,
                    target.0,
                    &target.1,
                    call.clone(),
                    remaining.min(CONTROLLER_RPC_TIMEOUT),
                )
                .await
            };
            match answer {
                Ok(a) => match a.not_controller() {
                    None => return Ok(a),
                    Some(h) => {
                        last_error = format!("broker {} is not the controller", target.0);
                        if let Some(h) = h.filter(|h| h.0 != target.0) {
                            // Follow a fresh hint at once.
                            hint = Some(h);
                            continue;
                        }
                    }
                },
                Err(e) => last_error = e,
            }
            let wake = (Instant::now() + backoff.next_delay()).min(deadline);
            tokio::time::sleep_until(wake).await;
        }
    }

    fn controller_service(&self) -> controller::Service {
        controller::Service::new(self.controller.clone(), self.raft.clone(), self.sm.clone())
    }

    fn known_leader(&self) -> Option<(i32, String)> {
        controller::leader_hint(&self.raft)
    }
}

/// Does another voter know of an initialized quorum? A fresh voter then joins it (it is
/// promoted after registering) instead of initializing a second cluster. Each voter is
/// asked once, briefly: on a cluster's first start nobody knows one, and all initialize
/// with the same voters, which openraft allows.
async fn quorum_exists(channels: &network::Channels, voters: &[Voter], me: i32) -> bool {
    let probe = pb::BrokerHeartbeatRequest {
        broker_id: -1,
        broker_epoch: -1,
        want_fence: true,
        want_shut_down: false,
    };
    for v in voters.iter().filter(|v| v.id != me) {
        let call = controller::Call::Heartbeat(probe);
        let answer =
            controller::remote(channels, v.id, &v.address, call, Duration::from_millis(500)).await;
        match answer {
            // An answer other than "not the controller, and no leader known".
            Ok(a) if a.not_controller() != Some(None) => return true,
            _ => {}
        }
    }
    false
}

/// Register with the controller, then heartbeat; register again when the controller
/// no longer knows this process (StaleBrokerEpoch, BrokerIdNotRegistered).
async fn broker_loop(quorum: std::sync::Weak<Quorum>) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        let Some(q) = quorum.upgrade() else { return };
        let interval = q.heartbeat_interval;
        let deadline = Instant::now() + CONTROLLER_RPC_TIMEOUT;
        let registered = match q
            .call_controller(controller::Call::Register(q.registration.clone()), deadline)
            .await
        {
            Ok(controller::Answer::Register(a)) if a.error_code == 0 => {
                Some((a.broker_epoch, a.applied_index))
            }
            Ok(other) => {
                tracing::warn!(answer = ?other, "broker registration refused");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e.message, "broker registration failed");
                None
            }
        };
        let Some((epoch, mut controller_index)) = registered else {
            drop(q);
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        };
        backoff.reset();
        tracing::info!(broker = q.node_id, epoch, "broker registered");
        q.broker.send_replace(BrokerStatus {
            epoch: Some(epoch),
            fenced: true,
            ready: false,
            should_shut_down: false,
        });
        let mut applied = q.sm.applied();
        drop(q);
        loop {
            // Let the local image catch up with what the controller had applied, for
            // at most one interval, so the heartbeat can ask to be unfenced.
            let _ =
                tokio::time::timeout(interval, applied.wait_for(|&i| i >= controller_index)).await;
            let Some(q) = quorum.upgrade() else { return };
            let caught_up = q.sm.applied_index() >= controller_index;
            let call = controller::Call::Heartbeat(pb::BrokerHeartbeatRequest {
                broker_id: q.node_id,
                broker_epoch: epoch,
                want_fence: !caught_up,
                want_shut_down: q.want_shut_down.load(Ordering::SeqCst),
            });
            // A late answer is still contact: wait up to half the session, which
            // leaves time for another attempt before the session would expire.
            let deadline = Instant::now() + (q.session_timeout / 2).max(interval);
            match q.call_controller(call, deadline).await {
                Ok(controller::Answer::Heartbeat(a)) => match controller::error_of(a.error_code) {
                    Some(
                        ResponseError::StaleBrokerEpoch | ResponseError::BrokerIdNotRegistered,
                    ) => {
                        tracing::info!(broker = q.node_id, "registering again");
                        break;
                    }
                    Some(code) => tracing::warn!(?code, "broker heartbeat refused"),
                    None => {
                        *q.last_heartbeat_answered.lock() = Some(Instant::now());
                        controller_index = a.applied_index;
                        if !a.is_fenced {
                            let _ = tokio::time::timeout(
                                interval,
                                applied.wait_for(|&i| i >= controller_index),
                            )
                            .await;
                        }
                        let caught_up = q.sm.applied_index() >= controller_index;
                        q.broker.send_modify(|s| {
                            s.fenced = a.is_fenced;
                            s.ready = !a.is_fenced && caught_up;
                            s.should_shut_down = a.should_shut_down;
                        });
                    }
                },
                Ok(other) => tracing::warn!(answer = ?other, "unexpected heartbeat answer"),
                Err(e) => tracing::debug!(error = %e.message, "broker heartbeat failed"),
            }
            let wait = tokio::time::sleep(interval);
            tokio::select! {
                () = wait => {}
                () = q.heartbeat_now.notified() => {}
            }
        }
    }
}
