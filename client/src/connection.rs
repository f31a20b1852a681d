//! One TCP connection to one broker, plaintext or TLS, with pipelined requests.
//!
//! A writer task owns the write half and a reader task the read half. Callers register a
//! oneshot sender under a fresh correlation id, hand the encoded frame to the writer and
//! wait for the reader to route the matching response back. A semaphore bounds requests in
//! flight; every wait (for a slot, for the answer) is bounded by the request timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::messages::{
    ApiVersionsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::frame;
use crate::versions::{self, ApiVersions, Handshake};

type Pending = Arc<Mutex<PendingState>>;

#[derive(Default)]
struct PendingState {
    waiting: HashMap<i32, oneshot::Sender<Result<Bytes>>>,
    /// Set once the reader or writer fails; later requests fail fast with it.
    closed: Option<String>,
}

/// A connection to one broker, with its negotiated API versions. Cheap to share behind an
/// `Arc`; dropping the last reference stops its tasks and closes the socket.
pub struct Connection {
    addr: String,
    config: ClientConfig,
    versions: ApiVersions,
    next_correlation_id: AtomicI32,
    in_flight: Semaphore,
    pending: Pending,
    writer: mpsc::Sender<Bytes>,
    reader_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer task ends when its channel closes with us; the reader would otherwise
        // wait on the socket forever.
        self.reader_task.abort();
    }
}

impl Connection {
    /// Connects to `addr` (host:port) and negotiates API versions.
    pub async fn connect(addr: &str, config: &ClientConfig) -> Result<Connection> {
        let io_err = |source| Error::Io {
            addr: addr.to_string(),
            source,
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {:?}", config.connect_timeout),
                ))
            })?
            .map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let pending: Pending = Arc::default();
        let (writer, frames) = mpsc::channel(config.max_in_flight.max(1));
        let reader_task = match &config.tls {
            None => {
                let (read, write) = stream.into_split();
                spawn_loops(addr, config, read, write, frames, &pending)
            }
            Some(tls) => {
                // The handshake shares the connect bound: a listener that never answers
                // the ClientHello (a plaintext one, say) fails like a dead address.
                let stream =
                    tokio::time::timeout(config.connect_timeout, tls.connect(addr, stream))
                        .await
                        .map_err(|_| {
                            io_err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!(
                                    "TLS handshake timed out after {:?}",
                                    config.connect_timeout
                                ),
                            ))
                        })?
                        .map_err(io_err)?;
                let (read, write) = tokio::io::split(stream);
                spawn_loops(addr, config, read, write, frames, &pending)
            }
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            config: config.clone(),
            versions: ApiVersions::default(),
            next_correlation_id: AtomicI32::new(1),
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            pending,
            writer,
            reader_task,
        };
        conn.versions = conn.handshake().await?;
        Ok(conn)
    }

    /// ApiVersions at the highest version this client knows, stepping down once if the
    /// broker answers UNSUPPORTED_VERSION (its answer names the versions it does speak).
    async fn handshake(&self) -> Result<ApiVersions> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fjord-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = versions::client_range(ApiKey::ApiVersions).max;
        for _ in 0..2 {
            let frame = self
                .round_trip(ApiKey::ApiVersions, version, &request)
                .await?;
            match versions::read_handshake(version, frame)? {
                Handshake::Done(response) => return Ok(ApiVersions::negotiate(&response)),
                Handshake::RetryAt(lower) => version = lower,
            }
        }
        Err(Error::Protocol(format!(
            "{}: ApiVersions negotiation did not settle",
            self.addr
        )))
    }

    /// The broker address this connection was made to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The versions negotiated with this broker.
    pub fn versions(&self) -> &ApiVersions {
        &self.versions
    }

    /// The negotiated version of `api`, or [`Error::UnsupportedApi`].
    pub fn version(&self, api: ApiKey) -> Result<i16> {
        self.versions.version(api).ok_or(Error::UnsupportedApi {
            addr: self.addr.clone(),
            api,
        })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn send<R: ApiRequest>(&self, request: &R) -> Result<R::Response> {
        let version = self.version(R::API)?;
        self.send_at(request, version).await
    }

    /// Sends `request` at an explicit `version` (which must be one both sides speak).
    pub async fn send_at<R: ApiRequest>(&self, request: &R, version: i16) -> Result<R::Response> {
        let api = R::API;
        let frame = self.round_trip(api, version, request).await?;
        frame::decode_response(api, version, frame)
    }

    /// Sends `request` without waiting for an answer: for Produce with acks=0, which the
    /// broker never answers.
    pub async fn send_no_response<R: ApiRequest>(&self, request: &R) -> Result<()> {
        let api = R::API;
        let version = self.version(api)?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = frame::encode_request(
            api,
            version,
            correlation_id,
            &self.config.client_id,
            request,
        )?;
        self.enqueue(api, frame).await
    }

    async fn enqueue(&self, api: ApiKey, frame: Bytes) -> Result<()> {
        match tokio::time::timeout(self.config.request_timeout, self.writer.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(self.timeout(api)),
        }
    }

    async fn round_trip<B: Encodable>(&self, api: ApiKey, version: i16, body: &B) -> Result<Bytes> {
        let timeout = self.config.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let _permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .map_err(|_| self.timeout(api))?
            .map_err(|_| self.closed_error())?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame =
            frame::encode_request(api, version, correlation_id, &self.config.client_id, body)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap();
            if let Some(reason) = &pending.closed {
                return Err(Error::ConnectionClosed {
                    addr: self.addr.clone(),
                    reason: reason.clone(),
                });
            }
            pending.waiting.insert(correlation_id, tx);
        }
        // Whatever happens next, the entry must not outlive this call: a late answer to a
        // timed-out request is then dropped by the reader instead of leaking.
        let _guard = RemoveOnDrop {
            pending: &self.pending,
            correlation_id,
        };
        self.enqueue(api, frame).await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(self.timeout(api)),
        }
    }

    fn timeout(&self, api: ApiKey) -> Error {
        Error::Timeout {
            addr: self.addr.clone(),
            api,
            timeout: self.config.request_timeout,
        }
    }

    fn closed_error(&self) -> Error {
        let reason = self.pending.lock().unwrap().closed.clone();
        Error::ConnectionClosed {
            addr: self.addr.clone(),
            reason: reason.unwrap_or_else(|| "connection tasks stopped".into()),
        }
    }

    /// Whether the connection has failed; a client then reconnects.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().unwrap().closed.is_some() || self.writer.is_closed()
    }
}

struct RemoveOnDrop<'a> {
    pending: &'a Pending,
    correlation_id: i32,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap()
            .waiting
            .remove(&self.correlation_id);
    }
}

/// A request this client can send, tied to its API key and response type. (The
/// `kafka-protocol` crate's own `Request` trait needs its broker-side decoders too.)
pub trait ApiRequest: Encodable {
    /// The request's API key.
    const API: ApiKey;
    /// The response message.
    type Response: Decodable;
}

macro_rules! api_requests {
    ($($api:ident: $req:ty => $resp:ty),* $(,)?) => {
        $(impl ApiRequest for $req {
            const API: ApiKey = ApiKey::$api;
            type Response = $resp;
        })*
    };
}

api_requests! {
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse,
    Metadata: MetadataRequest => MetadataResponse,
    Produce: ProduceRequest => ProduceResponse,
    Fetch: FetchRequest => FetchResponse,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse,
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse,
    DescribeLogDirs: DescribeLogDirsRequest => DescribeLogDirsResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse,
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse,
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse,
    UnregisterBroker: UnregisterBrokerRequest => UnregisterBrokerResponse,
    ElectLeaders: ElectLeadersRequest => ElectLeadersResponse,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse,
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse,
    ListGroups: ListGroupsRequest => ListGroupsResponse,
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse,
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse,
    CreateAcls: CreateAclsRequest => CreateAclsResponse,
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse,
    // Membership calls, for tests that act as a group member.
    JoinGroup: JoinGroupRequest => JoinGroupResponse,
    SyncGroup: SyncGroupRequest => SyncGroupResponse,
    Heartbeat: HeartbeatRequest => HeartbeatResponse,
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse,
}

/// Marks the connection closed and fails every waiting request with `reason`.
fn close(pending: &Pending, addr: &str, reason: String) {
    let mut state = pending.lock().unwrap();
    state.closed.get_or_insert(reason.clone());
    for (_, tx) in state.waiting.drain() {
        let _ = tx.send(Err(Error::ConnectionClosed {
            addr: addr.to_string(),
            reason: reason.clone(),
        }));
    }
}

/// Starts the writer and reader tasks of a connection over `read`/`write` (a TCP
/// stream's halves, or a TLS stream's); returns the reader task.
fn spawn_loops<R, W>(
    addr: &str,
    config: &ClientConfig,
    read: R,
    write: W,
    frames: mpsc::Receiver<Bytes>,
    pending: &Pending,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(write_loop(addr.to_string(), write, frames, pending.clone()));
    tokio::spawn(read_loop(
        addr.to_string(),
        read,
        config.max_response_bytes,
        pending.clone(),
    ))
}

async fn write_loop(
    addr: String,
    mut write: impl AsyncWrite + Unpin,
    mut frames: mpsc::Receiver<Bytes>,
    pending: Pending,
) {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = write.write_all(&frame).await {
            close(&pending, &addr, format!("write failed: {e}"));
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_loop(addr: String, mut read: impl AsyncRead + Unpin, max: usize, pending: Pending) {
    let reason = loop {
        let mut prefix = [0u8; 4];
        if let Err(e) = read.read_exact(&mut prefix).await {
            break format!("read failed: {e}");
        }
        let len = match frame::frame_len(prefix, max) {
            Ok(len) => len,
            Err(size) => {
                let err = Error::FrameTooLarge {
                    addr: addr.clone(),
                    size,
                    max,
                };
                break err.to_string();
            }
        };
        let mut body = BytesMut::zeroed(len);
        if let Err(e) = read.read_exact(&mut body).await {
            break format!("read failed: {e}");
        }
        let body = body.freeze();
        let Some(correlation_id) = frame::correlation_id(&body) else {
            break "response without correlation id".into();
        };
        let waiter = pending.lock().unwrap().waiting.remove(&correlation_id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(Ok(body));
            }
            // The caller gave up (timeout or cancellation); its answer is dropped.
            None => tracing::debug!(%addr, correlation_id, "response for no waiting request"),
        }
    };
    tracing::debug!(%addr, %reason, "connection closed");
    close(&pending, &addr, reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use std::time::Duration;
    use tokio::net::TcpListener;

    /// Reads one request frame; returns (api key, version, correlation id).
    async fn read_request(s: &mut TcpStream) -> (i16, i16, i32) {
        let len = s.read_i32().await.unwrap() as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let mut b = Bytes::from(body);
        let key = i16::from_be_bytes([b[0], b[1]]);
        let version = i16::from_be_bytes([b[2], b[3]]);
        let api = ApiKey::try_from(key).unwrap();
        let header = RequestHeader::decode(&mut b, api.request_header_version(version)).unwrap();
        (key, version, header.correlation_id)
    }

    async fn respond<R: Encodable>(s: &mut TcpStream, api: ApiKey, v: i16, id: i32, body: &R) {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(id)
            .encode(&mut buf, api.response_header_version(v))
            .unwrap();
        body.encode(&mut buf, v).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        s.write_all(&buf).await.unwrap();
    }

    #[tokio::test]
    async fn pipelined_answers_out_of_order_timeout_and_frame_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (_, v, id) = read_request(&mut s).await;
            let versions =
                ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
                    .with_api_key(ApiKey::Metadata as i16)
                    .with_min_version(0)
                    .with_max_version(12)]);
            respond(&mut s, ApiKey::ApiVersions, v, id, &versions).await;
            // Two requests in flight; answer the second first.
            let (_, v1, id1) = read_request(&mut s).await;
            let (_, v2, id2) = read_request(&mut s).await;
            for (v, id, controller) in [(v2, id2, 2), (v1, id1, 1)] {
                let answer = MetadataResponse::default().with_controller_id(controller.into());
                respond(&mut s, ApiKey::Metadata, v, id, &answer).await;
            }
            // Never answered: the client times out.
            read_request(&mut s).await;
            // Then a frame over the client's bound: the connection closes.
            read_request(&mut s).await;
            s.write_all(&(1i32 << 30).to_be_bytes()).await.unwrap();
            s
        });
        let config = ClientConfig {
            request_timeout: Duration::from_millis(300),
            max_response_bytes: 1 << 20,
            ..ClientConfig::default()
        };
        let conn = Connection::connect(&addr, &config).await.unwrap();
        assert_eq!(conn.version(ApiKey::Metadata).unwrap(), 12);
        assert!(matches!(
            conn.version(ApiKey::Produce),
            Err(Error::UnsupportedApi { .. })
        ));
        let request = MetadataRequest::default();
        let (a, b) = tokio::join!(conn.send(&request), conn.send(&request));
        assert_eq!(a.unwrap().controller_id, 1);
        assert_eq!(b.unwrap().controller_id, 2);
        assert!(matches!(
            conn.send(&request).await,
            Err(Error::Timeout { .. })
        ));
        let err = conn.send(&request).await.unwrap_err();
        assert!(
            matches!(&err, Error::ConnectionClosed { reason, .. } if reason.contains("exceeds max_response_bytes")),
            "{err}"
        );
        assert!(conn.is_closed());
        drop(server.await.unwrap());
    }
}
