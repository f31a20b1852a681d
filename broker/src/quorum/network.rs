//! Raft messages over the internal gRPC listener: openraft's `RaftNetwork` on the
//! sending side, the `fjord.metadata.Raft` service on the receiving side, and the pool
//! of lazily connected channels (shared with the controller client).

use std::collections::HashMap;
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

use super::pb;
use super::{NodeId, TypeConfig};

/// How long a TCP connect to another node may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One lazily connected channel per peer address. A channel reconnects by itself after
/// a failure. Outgoing connections bind `local_ip` when set, so that rules on source
/// addresses (tests cutting loopback brokers apart) see this node's address.
#[derive(Clone)]
pub struct Channels {
    local_ip: Option<IpAddr>,
    map: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    pub fn new(local_ip: Option<IpAddr>) -> Channels {
        Channels {
            local_ip,
            map: Arc::default(),
        }
    }

    /// Channels whose connections leave from the internal listener's address when it
    /// is a specific loopback address (brokers sharing one machine).
    pub fn for_listener(internal_listen: std::net::SocketAddr) -> Channels {
        let ip = internal_listen.ip();
        Channels::new((ip.is_loopback() && !ip.is_unspecified()).then_some(ip))
    }

    pub fn get(&self, address: &str) -> Result<Channel, String> {
        let mut map = self.map.lock();
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("peer address {address:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .local_address(self.local_ip);
        let channel = endpoint.connect_lazy();
        map.insert(address.to_string(), channel.clone());
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
        let channel = self.channels.get(&self.address).map_err(net)?;
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

/// The receiving side: hands each message to the local Raft node.
pub(crate) struct RaftService {
    pub raft: openraft::Raft<TypeConfig>,
}

fn decode<T: DeserializeOwned>(req: tonic::Request<pb::RaftMessage>) -> Result<T, tonic::Status> {
    serde_json::from_slice(&req.into_inner().json)
        .map_err(|e| tonic::Status::invalid_argument(format!("raft message: {e}")))
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
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let rpc: VoteRequest<NodeId> = decode(req)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
