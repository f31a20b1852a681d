//! Raft messages over the internal gRPC listener: openraft's `RaftNetwork` on the
//! sending side, the `fjord.metadata.Raft` service on the receiving side, and the pool
//! of lazily connected channels (shared with the controller client and replication),
//! over mutual TLS when the internal plane has it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::authz::{self, InternalCall, Roles};
use super::internal_tls::{self, InternalTls};
use super::pb;
use super::{NodeId, TypeConfig};

/// How long a TCP connect to another node may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One lazily connected channel per peer (node id and address). A channel reconnects
/// by itself after a failure. Outgoing connections bind `local_ip` when set, so that
/// rules on source addresses (tests cutting loopback brokers apart) see this node's
/// address. With internal TLS every connection presents this broker's certificate and
/// accepts only the node it dials (see `internal_tls`).
#[derive(Clone)]
pub struct Channels {
    local_ip: Option<IpAddr>,
    tls: Option<Arc<InternalTls>>,
    map: Arc<Mutex<HashMap<(i32, String), Channel>>>,
}

impl Channels {
    pub fn new(local_ip: Option<IpAddr>, tls: Option<Arc<InternalTls>>) -> Channels {
        Channels {
            local_ip,
            tls,
            map: Arc::default(),
        }
    }

    /// Channels whose connections leave from the internal listener's address when it
    /// is a specific loopback address (brokers sharing one machine).
    pub fn for_listener(
        internal_listen: std::net::SocketAddr,
        tls: Option<Arc<InternalTls>>,
    ) -> Channels {
        let ip = internal_listen.ip();
        Channels::new(
            (ip.is_loopback() && !ip.is_unspecified()).then_some(ip),
            tls,
        )
    }

    /// The channels of a broker with `config`: its internal TLS files loaded (and the
    /// certificate checked to name its node id) when configured.
    pub fn for_config(config: &crate::config::BrokerConfig) -> Result<Channels, String> {
        let tls = InternalTls::from_args(config.node_id, &config.internal_tls)
            .map_err(|e| e.to_string())?;
        Ok(Channels::for_listener(config.internal_listen, tls))
    }

    /// This broker's internal TLS, None on a plaintext internal plane.
    pub fn internal_tls(&self) -> Option<&Arc<InternalTls>> {
        self.tls.as_ref()
    }

    /// The channel to `node` at `address`.
    pub fn get(&self, node: i32, address: &str) -> Result<Channel, String> {
        let mut map = self.map.lock();
        let key = (node, address.to_string());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("peer address {address:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .local_address(self.local_ip);
        let channel = match &self.tls {
            None => endpoint.connect_lazy(),
            Some(tls) => endpoint.connect_with_connector_lazy(internal_tls::TlsConnector {
                tls: tls.clone(),
                expected: node,
                address: address.to_string(),
                local_ip: self.local_ip,
            }),
        };
        map.insert(key, channel.clone());
        Ok(channel)
    }
}

/// openraft's factory of per-peer clients.
pub(crate) struct Network {
    pub channels: Channels,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            address: node.addr.clone(),
            channels: self.channels.clone(),
        }
    }
}

pub(crate) struct Peer {
    target: NodeId,
    address: String,
    channels: Channels,
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let net = |e: String| RPCError::Network(NetworkError::new(&std::io::Error::other(e)));
        let json = serde_json::to_vec(req).map_err(|e| net(e.to_string()))?;
        let target = i32::try_from(self.target).map_err(|e| net(e.to_string()))?;
        let channel = self.channels.get(target, &self.address).map_err(net)?;
        let mut client = pb::raft_client::RaftClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let ttl = option.hard_ttl();
        let mut request = tonic::Request::new(pb::RaftMessage { json: json.into() });
        request.set_timeout(ttl);
        let call = async {
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, call).await {
            Err(_) => return Err(net(format!("no answer from {} in {ttl:?}", self.address))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Err(status)) => return Err(net(format!("{}: {status}", self.address))),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.json).map_err(|e| net(e.to_string()))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

/// The receiving side: hands each message from a voter to the local Raft node.
pub(crate) struct RaftService {
    pub raft: openraft::Raft<TypeConfig>,
    /// The configured voters (`--voters`): a fresh node knows no membership yet.
    pub configured_voters: BTreeSet<i32>,
}

impl RaftService {
    /// Decode a message the caller may send: a voter's, in its own name (the node
    /// whose vote the message carries).
    fn authorized<T: DeserializeOwned>(
        &self,
        req: tonic::Request<pb::RaftMessage>,
        sender: impl FnOnce(&T) -> Option<NodeId>,
    ) -> Result<T, tonic::Status> {
        let caller = internal_tls::caller_of(&req);
        let mut voters = self.configured_voters.clone();
        voters.extend(
            self.raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .filter_map(|v| i32::try_from(v).ok()),
        );
        let roles = Roles { voters: &voters };
        // Nothing is decoded for a caller that may send no Raft message at all.
        authz::check(caller, &InternalCall::Raft { sender: None }, &roles)?;
        let message: T = serde_json::from_slice(&req.into_inner().json)
            .map_err(|e| tonic::Status::invalid_argument(format!("raft message: {e}")))?;
        let sender = sender(&message).map(|s| i32::try_from(s).unwrap_or(-1));
        authz::check(caller, &InternalCall::Raft { sender }, &roles)?;
        Ok(message)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
    serde_json::to_vec(value)
        .map(|json| tonic::Response::new(pb::RaftMessage { json: json.into() }))
        .map_err(|e| tonic::Status::internal(format!("raft reply: {e}")))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = self
            .authorized(req, |r: &AppendEntriesRequest<TypeConfig>| {
                r.vote.leader_id().voted_for()
            })?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let rpc: VoteRequest<NodeId> = self.authorized(req, |r: &VoteRequest<NodeId>| {
            r.vote.leader_id().voted_for()
        })?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = self
            .authorized(req, |r: &InstallSnapshotRequest<TypeConfig>| {
                r.vote.leader_id().voted_for()
            })?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
