//! The active controller: runs on the Raft leader, owns the pure
//! [`Controller`](crate::replication::controller::Controller), and commits each decision
//! as one Raft entry. One task handles every request and tick in turn, so decisions are
//! serialized and each sees the committed result of the previous one (a commit returns
//! only after the leader applied it).
//!
//! The `Controller` gRPC service answers brokers; on a node that is not the active
//! controller it answers NOT_CONTROLLER with the Raft leader as a hint.
//!
//! While this node's metadata log cannot be written (a write is retried below openraft,
//! see `write_retry`), nothing can be committed: admin changes are refused with
//! KAFKA_STORAGE_ERROR. The only voter of a cluster stays the controller meanwhile and
//! answers what needs no write (heartbeats of unchanged brokers), so its broker keeps
//! serving; with other voters it steps back, since its Raft node, blocked on the write,
//! may already have been replaced by a leader it cannot hear of, and its brokers must
//! then be fenced rather than answered by a stale controller.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use openraft::{BasicNode, ChangeMembers, Raft, ServerState};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::authz::{self, InternalCall};
use super::state_machine::Shared;
use super::{pb, ControllerReply, ControllerRequest, MetadataBatch, NodeId, TypeConfig};
use crate::backoff::Backoff;
use crate::metadata::admin::AdminError;
use crate::metadata::image::{BrokerEndpoint, ListenerEndpoint, MetadataImage, MetadataRecord};
use crate::replication::cluster_state::{ClusterState, ControllerRecord};
use crate::replication::controller::{Controller, ControllerConfig, Heartbeat};
use crate::replication::BrokerEpoch;

#[path = "controller_membership.rs"]
mod membership;
#[path = "controller_submit.rs"]
mod submit;

/// Requests waiting for the controller task.
const QUEUE_BOUND: usize = 256;
/// Heartbeats waiting for the controller task: they have their own queue, served
/// first, so that they never wait behind a run of requests, each a commit (admin
/// changes, ISR changes from every broker after one came back). A heartbeat that
/// waited there past its deadline would go unanswered, and its broker would fence
/// itself; one left waiting while the tick ran would have its broker fenced.
const HEARTBEAT_QUEUE_BOUND: usize = 64;
/// The most partitions one AlterPartition may change (brokers send at most
/// `server::isr_proposals::MAX_BATCH`).
pub(crate) const MAX_ALTER_PARTITIONS: usize = 10_000;
/// Longest wait for one commit before the controller gives up its term's state.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest effort to add a broker to the Raft membership (a learner catching up).
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Settings {
    pub node_id: i32,
    pub session_timeout_ms: i64,
    pub auto_leader_rebalance: bool,
    pub tick: Duration,
    /// Whether this node's metadata log writes land.
    pub write_health: Arc<super::WriteHealth>,
}

/// Shared between the controller task and the gRPC service: where to send requests
/// while this node is the active controller.
pub(crate) struct Handle {
    settings: Settings,
    active: Mutex<Option<Queues>>,
    /// Brokers being promoted from learner to voter.
    promoting: Mutex<BTreeSet<NodeId>>,
    /// Monotonic time origin for the controller's millisecond clock.
    epoch: Instant,
}

impl Handle {
    pub fn new(settings: Settings) -> Handle {
        Handle {
            settings,
            active: Mutex::new(None),
            promoting: Mutex::new(BTreeSet::new()),
            epoch: Instant::now(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.lock().is_some()
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }
}

/// A request to the controller, as it travels over gRPC.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    Register(pb::RegisterBrokerRequest),
    Heartbeat(pb::BrokerHeartbeatRequest),
    Submit(pb::SubmitRequest),
}

#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Register(pb::RegisterBrokerResponse),
    Heartbeat(pb::BrokerHeartbeatResponse),
    Submit(pb::SubmitResponse),
}

impl Answer {
    /// `Some(hint)` when the answering node is not the controller.
    pub fn not_controller(&self) -> Option<Option<(i32, String)>> {
        let (code, leader) = match self {
            Answer::Register(a) => (a.error_code, &a.leader),
            Answer::Heartbeat(a) => (a.error_code, &a.leader),
            Answer::Submit(a) => (a.error_code, &a.leader),
        };
        (code == i32::from(ResponseError::NotController.code())).then(|| {
            leader
                .as_ref()
                .filter(|l| l.leader_id >= 0 && !l.leader_address.is_empty())
                .map(|l| (l.leader_id, l.leader_address.clone()))
        })
    }
}

pub(crate) fn error_of(code: i32) -> Option<ResponseError> {
    if code == 0 {
        return None;
    }
    Some(
        i16::try_from(code)
            .ok()
            .and_then(ResponseError::try_from_code)
            .unwrap_or(ResponseError::UnknownServerError),
    )
}

fn code_of(e: ResponseError) -> i32 {
    i32::from(e.code())
}

/// The Raft leader this node knows of, with its address from the membership.
pub(crate) fn leader_hint(raft: &Raft<TypeConfig>) -> Option<(i32, String)> {
    let m = raft.metrics().borrow().clone();
    let leader = m.current_leader?;
    let node = m.membership_config.membership().get_node(&leader)?.clone();
    Some((leader as i32, node.addr))
}

/// Send `call` to the node at `address`.
pub(crate) async fn remote(
    channels: &super::network::Channels,
    node: i32,
    address: &str,
    call: Call,
    timeout: Duration,
) -> Result<Answer, String> {
    let channel = channels.get(node, address)?;
    let mut client = pb::controller_client::ControllerClient::new(channel);
    let fut = async {
        match call {
            Call::Register(r) => {
                let mut req = tonic::Request::new(r);
                req.set_timeout(timeout);
                client
                    .register_broker(req)
                    .await
                    .map(|r| Answer::Register(r.into_inner()))
            }
            Call::Heartbeat(r) => {
                let mut req = tonic::Request::new(r);
                req.set_timeout(timeout);
                client
                    .broker_heartbeat(req)
                    .await
                    .map(|r| Answer::Heartbeat(r.into_inner()))
            }
            Call::Submit(r) => {
                let mut req = tonic::Request::new(r);
                req.set_timeout(timeout);
                client
                    .submit(req)
                    .await
                    .map(|r| Answer::Submit(r.into_inner()))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(status)) => Err(format!("controller at {address}: {status}")),
        Err(_) => Err(format!("controller at {address}: no answer in {timeout:?}")),
    }
}

/// The active controller task's queues.
#[derive(Clone)]
struct Queues {
    heartbeats: mpsc::Sender<Cmd>,
    requests: mpsc::Sender<Cmd>,
}

/// Work for the controller task; each carries where its answer goes.
enum Cmd {
    Register(
        pb::RegisterBrokerRequest,
        oneshot::Sender<pb::RegisterBrokerResponse>,
    ),
    Heartbeat(
        pb::BrokerHeartbeatRequest,
        oneshot::Sender<pb::BrokerHeartbeatResponse>,
    ),
    Submit(pb::SubmitRequest, oneshot::Sender<pb::SubmitResponse>),
}

/// The gRPC `Controller` service (also called directly when this node is the leader).
/// Calls over gRPC are authorized first (`authz`), by the caller's proved identity.
pub(crate) struct Service {
    handle: Arc<Handle>,
    raft: Raft<TypeConfig>,
}

impl Service {
    pub fn new(handle: Arc<Handle>, raft: Raft<TypeConfig>, _sm: Arc<Shared>) -> Service {
        Service { handle, raft }
    }

    fn authorize<T>(
        &self,
        req: &tonic::Request<T>,
        call: &InternalCall<'_>,
    ) -> Result<(), tonic::Status> {
        // No controller rule looks at the voters.
        let roles = authz::Roles {
            voters: &BTreeSet::new(),
        };
        authz::check(super::internal_tls::caller_of(req), call, &roles)
    }

    fn hint(&self) -> Option<pb::LeaderHint> {
        let (id, address) = leader_hint(&self.raft).unwrap_or((-1, String::new()));
        Some(pb::LeaderHint {
            leader_id: id,
            leader_address: address,
        })
    }

    pub async fn handle(&self, call: Call) -> Answer {
        let not_controller = code_of(ResponseError::NotController);
        let queues = self.handle.active.lock().clone();
        macro_rules! forward {
            ($variant:ident, $req:expr, $resp:ident, $queue:ident) => {{
                let (tx, rx) = oneshot::channel();
                let sent = match &queues {
                    Some(q) => q.$queue.try_send(Cmd::$variant($req, tx)).is_ok(),
                    None => false,
                };
                let answer = if sent { rx.await.ok() } else { None };
                Answer::$variant(answer.unwrap_or_else(|| pb::$resp {
                    error_code: not_controller,
                    error_message: "not the active controller".into(),
                    leader: self.hint(),
                    ..Default::default()
                }))
            }};
        }
        match call {
            Call::Register(r) => forward!(Register, r, RegisterBrokerResponse, requests),
            Call::Heartbeat(r) => forward!(Heartbeat, r, BrokerHeartbeatResponse, heartbeats),
            Call::Submit(r) => forward!(Submit, r, SubmitResponse, requests),
        }
    }
}

#[tonic::async_trait]
impl pb::controller_server::Controller for Service {
    async fn register_broker(
        &self,
        req: tonic::Request<pb::RegisterBrokerRequest>,
    ) -> Result<tonic::Response<pb::RegisterBrokerResponse>, tonic::Status> {
        let broker = req.get_ref().broker_id;
        self.authorize(&req, &InternalCall::RegisterBroker { broker })?;
        match self.handle(Call::Register(req.into_inner())).await {
            Answer::Register(a) => Ok(tonic::Response::new(a)),
            _ => Err(tonic::Status::internal("mismatched answer")),
        }
    }

    async fn broker_heartbeat(
        &self,
        req: tonic::Request<pb::BrokerHeartbeatRequest>,
    ) -> Result<tonic::Response<pb::BrokerHeartbeatResponse>, tonic::Status> {
        let broker = req.get_ref().broker_id;
        self.authorize(&req, &InternalCall::BrokerHeartbeat { broker })?;
        match self.handle(Call::Heartbeat(req.into_inner())).await {
            Answer::Heartbeat(a) => Ok(tonic::Response::new(a)),
            _ => Err(tonic::Status::internal("mismatched answer")),
        }
    }

    async fn submit(
        &self,
        req: tonic::Request<pb::SubmitRequest>,
    ) -> Result<tonic::Response<pb::SubmitResponse>, tonic::Status> {
        // Undecodable requests are refused by the controller (INVALID_REQUEST) once
        // the caller is known to speak in its own name.
        let request = serde_json::from_slice::<ControllerRequest>(&req.get_ref().request_json).ok();
        let call = InternalCall::Submit {
            broker: req.get_ref().broker_id,
            request: request.as_ref(),
        };
        self.authorize(&req, &call)?;
        match self.handle(Call::Submit(req.into_inner())).await {
            Answer::Submit(a) => Ok(tonic::Response::new(a)),
            _ => Err(tonic::Status::internal("mismatched answer")),
        }
    }
}

/// Watches Raft leadership; while this node leads, runs the active controller.
pub(crate) async fn run(
    handle: Arc<Handle>,
    raft: Raft<TypeConfig>,
    sm: Arc<Shared>,
    cancel: CancellationToken,
) {
    let me = handle.settings.node_id as NodeId;
    let mut metrics = raft.metrics();
    loop {
        // Wait until this node leads and has applied an entry of its own term (the
        // blank entry every new leader commits): its image then holds everything
        // committed before it took over. Everything appended must be applied too, so
        // that a decision written late, once a failing log recovered, is in the image
        // the controller starts from; and with other voters, the log must be writable.
        let health = &handle.settings.write_health;
        let mut health_changed = health.subscribe();
        let term = loop {
            let ready = {
                let m = metrics.borrow_and_update();
                let applied = m.last_applied.map(|l| l.index);
                (m.state == ServerState::Leader
                    && m.current_leader == Some(me)
                    && m.last_applied
                        .is_some_and(|l| l.leader_id.term == m.current_term)
                    && applied >= m.last_log_index
                    && (health.failing().is_none() || is_sole_voter(&m, me)))
                .then_some(m.current_term)
            };
            if let Some(term) = ready {
                break term;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
                _ = health_changed.changed() => {}
            }
        };
        let (heartbeats, heartbeat_rx) = mpsc::channel(HEARTBEAT_QUEUE_BOUND);
        let (requests, request_rx) = mpsc::channel(QUEUE_BOUND);
        *handle.active.lock() = Some(Queues {
            heartbeats,
            requests,
        });
        tracing::info!(node = me, term, "active controller");
        let mut active = Active {
            handle: handle.clone(),
            raft: raft.clone(),
            sm: sm.clone(),
            controller: Controller::new(
                ControllerConfig {
                    session_timeout_ms: handle.settings.session_timeout_ms,
                    auto_leader_rebalance: handle.settings.auto_leader_rebalance,
                },
                ClusterState::from_image(&sm.image()),
                handle.now_ms(),
            ),
        };
        active
            .serve(heartbeat_rx, request_rx, term, &mut metrics, &cancel)
            .await;
        *handle.active.lock() = None;
        tracing::info!(node = me, term, "no longer the active controller");
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// Is `me` the only voter of the committed membership?
fn is_sole_voter(m: &openraft::RaftMetrics<NodeId, BasicNode>, me: NodeId) -> bool {
    let mut voters = m.membership_config.membership().voter_ids();
    voters.next() == Some(me) && voters.next().is_none()
}

/// Why a decision was not committed.
enum NotCommitted {
    /// Lost the controller's footing (leadership, or a commit that failed or did not
    /// apply): drop the controller and rebuild it from the image.
    Resign,
    /// This node's metadata log cannot be written now: the decision is dropped (see
    /// the module doc).
    LogFailing,
}

struct Active {
    handle: Arc<Handle>,
    raft: Raft<TypeConfig>,
    sm: Arc<Shared>,
    controller: Controller,
}

impl Active {
    async fn serve(
        &mut self,
        mut heartbeats: mpsc::Receiver<Cmd>,
        mut requests: mpsc::Receiver<Cmd>,
        term: u64,
        metrics: &mut tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>,
        cancel: &CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.handle.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let me = self.handle.settings.node_id as NodeId;
        let mut degraded = false;
        loop {
            // In this order: heartbeats before the tick, so that a broker whose
            // heartbeat is queued is not fenced for the controller's own delay; the
            // tick before requests, so that a stream of requests does not hold back
            // fencing and elections.
            let result = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let m = metrics.borrow_and_update();
                    if m.state != ServerState::Leader || m.current_term != term || m.current_leader != Some(me) {
                        return;
                    }
                    Ok(())
                }
                cmd = heartbeats.recv() => match cmd {
                    None => return,
                    Some(cmd) => self.on_cmd(cmd).await,
                },
                _ = tick.tick() => {
                    let records = self.controller.tick(self.handle.now_ms());
                    self.commit_decided(records, None).await.map(|_| ())
                }
                cmd = requests.recv() => match cmd {
                    None => return,
                    Some(cmd) => self.on_cmd(cmd).await,
                }
            };
            match result {
                Ok(()) => {}
                Err(NotCommitted::Resign) => return,
                Err(NotCommitted::LogFailing) => {
                    let m = metrics.borrow().clone();
                    if !is_sole_voter(&m, me) {
                        return;
                    }
                    // The pure controller counted the dropped decision as made.
                    self.controller.set_state(
                        ClusterState::from_image(&self.sm.image()),
                        self.handle.now_ms(),
                    );
                    degraded = true;
                }
            }
            if degraded && self.handle.settings.write_health.failing().is_none() {
                // The blocked write landed: start again from the image once applied.
                return;
            }
        }
    }

    /// Commit records as one entry; the index it got (0: nothing to write).
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<u64, NotCommitted> {
        if records.is_empty() {
            return Ok(0);
        }
        let health = &self.handle.settings.write_health;
        if health.failing().is_some() {
            return Err(NotCommitted::LogFailing);
        }
        let write = self.raft.client_write(MetadataBatch(records));
        let written = tokio::select! {
            written = tokio::time::timeout(COMMIT_TIMEOUT, write) => written,
            // The write waits below openraft until the disk takes it; not answering
            // meanwhile would starve every broker's heartbeat.
            () = health.wait_failing() => {
                tracing::warn!("metadata log cannot be written: controller decisions wait");
                return Err(NotCommitted::LogFailing);
            }
        };
        match written {
            Ok(Ok(resp)) => {
                if let Some(e) = resp.data.error {
                    // The controller's own state said it fits; the image disagrees.
                    tracing::error!(error = %e, "controller decision did not apply; resyncing");
                    return Err(NotCommitted::Resign);
                }
                Ok(resp.log_id.index)
            }
            Ok(Err(e)) => {
                tracing::info!("controller commit failed: {e}");
                Err(NotCommitted::Resign)
            }
            Err(_) => {
                tracing::warn!("controller commit took over {COMMIT_TIMEOUT:?}");
                Err(NotCommitted::Resign)
            }
        }
    }

    /// Commit the controller's own decision, with endpoints from `registering` or the image.
    async fn commit_decided(
        &self,
        records: Vec<ControllerRecord>,
        registering: Option<(i32, BrokerEndpoint)>,
    ) -> Result<u64, NotCommitted> {
        let image = self.sm.image();
        let endpoint = |b: i32| match &registering {
            Some((id, e)) if *id == b => e.clone(),
            _ => image
                .broker(b)
                .map(|s| s.endpoint.clone())
                .unwrap_or(BrokerEndpoint {
                    host: String::new(),
                    port: -1,
                    internal: String::new(),
                    listeners: Vec::new(),
                }),
        };
        let records = records
            .into_iter()
            .map(|r| r.into_metadata(endpoint))
            .collect();
        self.commit(records).await
    }

    /// The controller's image index: a broker has caught up once it installed this.
    fn applied(&self) -> u64 {
        self.sm.image_index()
    }

    async fn on_cmd(&mut self, cmd: Cmd) -> Result<(), NotCommitted> {
        match cmd {
            Cmd::Register(req, reply) => {
                let listeners = req.listeners.iter().map(|l| ListenerEndpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                });
                let listeners = match ListenerEndpoint::check_registered(listeners.collect()) {
                    Ok(listeners) => listeners,
                    Err(e) => {
                        let _ = reply.send(pb::RegisterBrokerResponse {
                            error_code: code_of(ResponseError::InvalidRequest),
                            error_message: format!("broker {}: {e}", req.broker_id),
                            applied_index: self.applied(),
                            ..Default::default()
                        });
                        return Ok(());
                    }
                };
                let endpoint = BrokerEndpoint {
                    host: req.host.clone(),
                    port: req.port,
                    internal: req.internal_address.clone(),
                    listeners,
                };
                let rack = req.has_rack.then(|| req.rack.clone());
                let (epoch, records) =
                    self.controller
                        .register_broker(self.handle.now_ms(), req.broker_id, rack);
                self.commit_decided(records, Some((req.broker_id, endpoint)))
                    .await?;
                self.ensure_member(&req).await?;
                let _ = reply.send(pb::RegisterBrokerResponse {
                    broker_epoch: epoch.0,
                    applied_index: self.applied(),
                    ..Default::default()
                });
            }
            Cmd::Heartbeat(req, reply) => {
                let (result, records) = self.controller.heartbeat(
                    self.handle.now_ms(),
                    Heartbeat {
                        broker: req.broker_id,
                        broker_epoch: BrokerEpoch(req.broker_epoch),
                        want_fence: req.want_fence,
                        want_shut_down: req.want_shut_down,
                    },
                );
                self.commit_decided(records, None).await?;
                let answer = match result {
                    Ok(r) => pb::BrokerHeartbeatResponse {
                        is_fenced: r.is_fenced,
                        should_shut_down: r.should_shut_down,
                        applied_index: self.applied(),
                        ..Default::default()
                    },
                    Err(code) => pb::BrokerHeartbeatResponse {
                        error_code: code_of(code),
                        error_message: format!("broker {}: {code:?}", req.broker_id),
                        applied_index: self.applied(),
                        ..Default::default()
                    },
                };
                let _ = reply.send(answer);
            }
            Cmd::Submit(req, reply) => {
                let failing = self.handle.settings.write_health.failing();
                let answer = match serde_json::from_slice::<ControllerRequest>(&req.request_json) {
                    // A write is blocked on this node's log: a change would queue behind
                    // it and time out, then apply unseen once the disk recovers.
                    _ if failing.is_some() => Err(AdminError {
                        code: ResponseError::KafkaStorageError,
                        message: format!(
                            "the metadata log of controller {} cannot be written ({}); retrying",
                            self.handle.settings.node_id,
                            failing.unwrap_or_default()
                        ),
                    }),
                    Err(e) => Err(AdminError {
                        code: ResponseError::InvalidRequest,
                        message: format!("controller request: {e}"),
                    }),
                    Ok(r) => self.submit(req.broker_id, req.broker_epoch, r).await?,
                };
                let _ = reply.send(match answer {
                    Ok((r, index)) => pb::SubmitResponse {
                        reply_json: serde_json::to_vec(&r).unwrap_or_default().into(),
                        log_index: index,
                        ..Default::default()
                    },
                    Err(e) => pb::SubmitResponse {
                        error_code: code_of(e.code),
                        error_message: e.message,
                        ..Default::default()
                    },
                });
            }
        }
        Ok(())
    }
}
