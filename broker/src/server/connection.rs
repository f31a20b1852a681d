//! One client connection: read size-prefixed frames, guard, decode, dispatch, and
//! write responses in request order.
//!
//! Requests on a connection take effect in the order they arrive and are answered in
//! that order. Produce requests are pipelined: each one's batches are appended as soon
//! as it is read, and while its answer waits (the ISR for acks=all, a sync for
//! `flush.messages`) the next requests are read and appended too, up to
//! [`MAX_PRODUCE_IN_FLIGHT`] waiting answers. Any other request starts once every
//! request before it is answered, as in Kafka, where a connection has one request in
//! progress. Every bound is explicit: frame size (`socket.request.max.bytes`), idle
//! time (`connections.max.idle.ms`, between requests and between the bytes of one),
//! the time to read a request once its size arrived (`--request-read-timeout-ms`),
//! the bytes of requests being read over all connections (`queued.max.request.bytes`,
//! see [`super::request_budget`]), answers waiting per connection, and a frame buffer
//! of at most [`READ_UPFRONT_BYTES`] before the bytes arrive: past that it grows only
//! as bytes actually arrive.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use kafka_protocol::messages::{ApiKey, ProduceResponse, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api;
use super::broker::Broker;
use super::request_budget::RequestBudget;
use super::stream::{ClientStream, StreamReader, StreamWriter};
use crate::auth::sasl::{Gate, SaslConnection};
use crate::auth::Principal;
use crate::config::listeners::Listener;
use crate::protocol::fetch_response::Part;
use crate::protocol::guard::{self, GuardError};
use crate::protocol::supported_versions;

/// The most array elements one request may carry. The guard ensures each element was
/// sent on the wire, but a decoded element can be tens of times its wire size (a
/// 2-byte topic entry becomes a ~70-byte struct); this bounds the decoded size of any
/// request to around 100 MB whatever the frame size limit.
const MAX_REQUEST_ARRAY_ELEMENTS: usize = 1_000_000;

/// Read granularity for request frames larger than [`READ_UPFRONT_BYTES`]: a client that
/// declares a large frame but sends little costs us only what it sent.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Frames up to this size are read into one buffer of their declared size, allocated
/// before the bytes arrive. Produce requests are up to about 1 MB with the clients'
/// defaults (librdkafka `message.max.bytes`, Java `max.request.size`); growing their
/// buffer chunk by chunk would copy each one again at every doubling. A client that
/// declares a frame and sends nothing costs at most this much.
const READ_UPFRONT_BYTES: usize = 2 * 1024 * 1024;

/// Produce requests whose answers may wait at once on one connection; the next
/// request is read once one of them is answered. Clients keep fewer in flight
/// (5 with idempotence in the Java client and librdkafka).
const MAX_PRODUCE_IN_FLIGHT: usize = 16;

/// How long a connection whose authentication failed is held before it is closed
/// (Kafka's `connection.failed.authentication.delay.ms` default).
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("client closed the connection")]
    Eof,
    #[error("idle for {0} ms")]
    Idle(u64),
    #[error(
        "request of {size} bytes stalled after {received} bytes: none for \
         connections.max.idle.ms {idle_ms}"
    )]
    IdleMidFrame {
        size: usize,
        received: usize,
        idle_ms: u64,
    },
    #[error(
        "request of {size} bytes not complete within --request-read-timeout-ms {timeout_ms} \
         ({received} bytes received)"
    )]
    FrameDeadline {
        size: usize,
        received: usize,
        timeout_ms: u64,
    },
    #[error(
        "no room for a request of {size} bytes in queued.max.request.bytes {budget} within \
         --request-read-timeout-ms {timeout_ms}"
    )]
    NoRoom {
        size: usize,
        budget: u64,
        timeout_ms: u64,
    },
    #[error("broker shutting down")]
    Shutdown,
    /// Cut off from the controller: this broker's metadata may be stale, so clients
    /// are sent to the other brokers they know.
    #[error("cut off from the controller")]
    CutOff,
    #[error("request of {size} bytes exceeds socket.request.max.bytes {max}")]
    FrameTooLarge { size: i64, max: u32 },
    #[error("{0}")]
    Refused(String),
    #[error("SASL: {0}")]
    Sasl(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Close {
    /// The `reason` label of `fjord_connections_closed_total`, for a close caused by a
    /// client too slow or silent.
    fn slow_client_reason(&self) -> Option<&'static str> {
        match self {
            Close::Idle(_) => Some("idle"),
            Close::IdleMidFrame { .. } => Some("idle_mid_frame"),
            Close::FrameDeadline { .. } => Some("frame_deadline"),
            Close::NoRoom { .. } => Some("no_room"),
            _ => None,
        }
    }
}

pub async fn serve(
    broker: Arc<Broker>,
    budget: Arc<RequestBudget>,
    listener: Arc<Listener>,
    stream: ClientStream,
    principal: Principal,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    broker.metrics.connections.inc();
    let conn = Conn {
        broker: &broker,
        budget: &budget,
        listener: &listener,
        peer,
    };
    match serve_inner(conn, stream, principal, &shutdown).await {
        Ok(()) | Err(Close::Eof) | Err(Close::Shutdown) | Err(Close::CutOff) => {}
        Err(Close::Io(e)) => tracing::debug!(%peer, error = %e, "connection closed"),
        Err(e) => {
            if let Some(reason) = e.slow_client_reason() {
                broker
                    .metrics
                    .connections_closed
                    .with_label_values(&[reason])
                    .inc();
            }
            tracing::warn!(%peer, "closing connection: {e}")
        }
    }
    broker.metrics.connections.dec();
}

/// What a connection's tasks share.
#[derive(Clone, Copy)]
struct Conn<'a> {
    broker: &'a Broker,
    budget: &'a RequestBudget,
    /// The listener the connection arrived on: its name and security protocol.
    listener: &'a Arc<Listener>,
    peer: SocketAddr,
}

/// A produce request's answer still being worked out, in request order; encoded when
/// its turn to be written comes.
type Pending<'a> = Pin<Box<dyn Future<Output = (Request, Option<ProduceResponse>)> + Send + 'a>>;

async fn serve_inner(
    conn: Conn<'_>,
    stream: ClientStream,
    principal: Principal,
    shutdown: &CancellationToken,
) -> Result<(), Close> {
    let Conn {
        broker,
        peer,
        listener,
        ..
    } = conn;
    // SASL listeners authenticate each connection (auth::sasl decides, this loop
    // carries it out); on others the principal is the listener's (TLS certificate or
    // User:ANONYMOUS).
    let mut sasl = listener
        .protocol
        .is_sasl()
        .then(|| SaslConnection::new(broker.sasl.clone()));
    let mut principal = principal;
    let (reader, mut writer) = stream.into_split();
    // Frames as a stream: a read in progress survives the select below answering a
    // produce request meanwhile. Its timers start when it is first polled, and it is
    // polled until it completes (the in-flight bound is checked between frames), so
    // the broker's own waits never count against the client.
    let frames = futures::stream::unfold(reader, move |mut reader| async move {
        let frame = read_request(conn, &mut reader).await;
        Some((frame, reader))
    });
    tokio::pin!(frames);
    let mut pending: VecDeque<Pending<'_>> = VecDeque::new();
    // Responses are encoded into this buffer's storage (see `encode_response`).
    let mut out = BytesMut::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(Close::Shutdown),
            (request, answer) = async { (&mut pending[0]).await }, if !pending.is_empty() => {
                pending.pop_front();
                write_produce_answer(broker, &mut writer, &mut out, request, answer).await?;
            }
            frame = frames.next(), if pending.len() < MAX_PRODUCE_IN_FLIGHT => {
                let frame = match frame.expect("the frame stream never ends") {
                    Ok(frame) => frame,
                    // A client that stops sending still gets the answers it waits for.
                    Err(Close::Eof) => {
                        drain(broker, &mut pending, &mut writer, &mut out).await?;
                        return Err(Close::Eof);
                    }
                    Err(e) => return Err(e),
                };
                if broker.is_cut_off() {
                    return Err(Close::CutOff);
                }
                if let Some(sasl) = sasl.as_mut().filter(|s| s.expects_raw_token()) {
                    let Some(answer) =
                        cpu_bound(|| api::scram::answer_raw_token(broker, sasl, &frame))
                    else {
                        return Err(Close::Sasl("SASL authentication (raw tokens) failed".into()));
                    };
                    write_response(&mut writer, api::Response::Frame(answer)).await?;
                    if let Some(p) = sasl.principal() {
                        principal = p.clone();
                    }
                    continue;
                }
                let mut request = match parse_frame(broker, frame, peer, listener, &principal)? {
                    Parsed::Answer(response) => {
                        drain(broker, &mut pending, &mut writer, &mut out).await?;
                        write_response(&mut writer, response).await?;
                        continue;
                    }
                    Parsed::Request(request) => request,
                };
                if let Some(sasl) = sasl.as_mut() {
                    match sasl.gate(request.ctx.api_key, broker.clock.now_ms()) {
                        Gate::Serve => {}
                        Gate::Close(reason) => return Err(Close::Sasl(reason)),
                        Gate::Sasl => {
                            drain(broker, &mut pending, &mut writer, &mut out).await?;
                            let (frame, close) =
                                cpu_bound(|| request.answer_sasl(broker, sasl, &mut out))?;
                            write_response(&mut writer, api::Response::Frame(frame)).await?;
                            if close {
                                // Half-close, then hold the connection a moment
                                // (Kafka's connection.failed.authentication.delay.ms):
                                // the refusal reaches the client before the close, and
                                // password guessing slows down.
                                let _ = writer.shutdown().await;
                                tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
                                return Err(Close::Sasl("SASL authentication failed".into()));
                            }
                            if let Some(p) = sasl.principal() {
                                principal = p.clone();
                            }
                            continue;
                        }
                    }
                }
                if request.ctx.api_key == ApiKey::Produce {
                    let timer = request.timer(broker);
                    let body = std::mem::take(&mut request.body);
                    let produced = api::start_produce(broker, &request.ctx, body)
                        .map_err(|e| request.refused(broker, e))?;
                    pending.push_back(Box::pin(async move {
                        let answer = produced.finish(broker).await;
                        timer.observe_duration();
                        (request, answer)
                    }));
                } else {
                    drain(broker, &mut pending, &mut writer, &mut out).await?;
                    if let Some(response) = request.dispatch(broker, &mut out).await? {
                        write_response(&mut writer, response).await?;
                    }
                }
            }
        }
    }
}

/// Run `f`, which may hold the CPU for milliseconds (a PLAIN login runs PBKDF2 over
/// the stored credential's iterations), without stalling the other tasks of this
/// worker thread.
fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Encode and write a produce request's answer (nothing for acks=0).
async fn write_produce_answer(
    broker: &Broker,
    writer: &mut StreamWriter,
    out: &mut BytesMut,
    request: Request,
    answer: Option<ProduceResponse>,
) -> Result<(), Close> {
    let Some(answer) = answer else {
        return Ok(());
    };
    let ctx = &request.ctx;
    let frame = api::encode_response(ctx.api_key, ctx.version, ctx.correlation_id, &answer, out)
        .map_err(|e| request.refused(broker, e))?;
    write_response(writer, api::Response::Frame(frame)).await?;
    Ok(())
}

/// Answer every request waiting, in order: a request other than produce starts only
/// then (see the module doc).
async fn drain(
    broker: &Broker,
    pending: &mut VecDeque<Pending<'_>>,
    writer: &mut StreamWriter,
    out: &mut BytesMut,
) -> Result<(), Close> {
    while let Some(earlier) = pending.pop_front() {
        let (request, answer) = earlier.await;
        write_produce_answer(broker, writer, out, request, answer).await?;
    }
    Ok(())
}

/// The next request frame, within the idle, size, time and memory bounds.
async fn read_request(conn: Conn<'_>, reader: &mut StreamReader) -> Result<Bytes, Close> {
    let broker = conn.broker;
    let idle_ms = broker.config.connections_max_idle_ms;
    let max = broker.config.socket_request_max_bytes;
    let size = match tokio::time::timeout(Duration::from_millis(idle_ms), reader.read_i32()).await {
        Err(_) => return Err(Close::Idle(idle_ms)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Close::Eof),
        Ok(r) => r?,
    };
    if size < 0 || size as u32 > max {
        broker
            .metrics
            .requests_rejected
            .with_label_values(&["too_large"])
            .inc();
        return Err(Close::FrameTooLarge {
            size: i64::from(size),
            max,
        });
    }
    let timer = FrameTimer::start(
        Instant::now(),
        broker.config.request_read_timeout_ms,
        idle_ms,
    );
    let Ok(_reservation) =
        tokio::time::timeout_at(timer.deadline, conn.budget.reserve(size as u32)).await
    else {
        return Err(Close::NoRoom {
            size: size as usize,
            budget: conn.budget.budget_bytes(),
            timeout_ms: timer.timeout_ms,
        });
    };
    read_frame(reader, size as usize, &timer).await
}

/// The time bounds of one frame being read, from the moment its size arrived.
#[derive(Debug, Clone, Copy)]
struct FrameTimer {
    /// When the whole frame must have arrived.
    deadline: Instant,
    timeout_ms: u64,
    idle_ms: u64,
}

impl FrameTimer {
    fn start(size_read_at: Instant, timeout_ms: u64, idle_ms: u64) -> FrameTimer {
        FrameTimer {
            deadline: size_read_at + Duration::from_millis(timeout_ms),
            timeout_ms,
            idle_ms,
        }
    }

    /// By when more bytes must arrive, given when bytes last arrived, and why the
    /// connection is closed if they do not: whichever of the frame deadline and the
    /// idle timeout comes first.
    fn next_wait(&self, last_bytes_at: Instant) -> (Instant, Stall) {
        let idle_until = last_bytes_at + Duration::from_millis(self.idle_ms);
        if idle_until < self.deadline {
            (idle_until, Stall::Idle)
        } else {
            (self.deadline, Stall::Deadline)
        }
    }

    fn close(&self, stall: Stall, size: usize, received: usize) -> Close {
        match stall {
            Stall::Idle => Close::IdleMidFrame {
                size,
                received,
                idle_ms: self.idle_ms,
            },
            Stall::Deadline => Close::FrameDeadline {
                size,
                received,
                timeout_ms: self.timeout_ms,
            },
        }
    }
}

/// Which bound a frame's read ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    Idle,
    Deadline,
}

async fn write_response(stream: &mut StreamWriter, response: api::Response) -> std::io::Result<()> {
    match response {
        api::Response::Frame(frame) => stream.write_all(&frame).await?,
        api::Response::Parts(parts) => {
            for part in parts {
                match part {
                    Part::Bytes(b) => stream.write_all(&b).await?,
                    Part::File(slice, len) => stream.write_file_range(&slice, len).await?,
                }
            }
        }
    }
    // TLS holds encrypted records until flushed; plain TCP has nothing to flush.
    stream.flush().await
}

/// The capacity of the buffer a frame of `size` bytes is first read into.
fn initial_frame_capacity(size: usize) -> usize {
    if size <= READ_UPFRONT_BYTES {
        size
    } else {
        READ_CHUNK_BYTES
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    size: usize,
    timer: &FrameTimer,
) -> Result<Bytes, Close> {
    let mut buf = BytesMut::with_capacity(initial_frame_capacity(size));
    let mut last_bytes_at = Instant::now();
    while buf.len() < size {
        let missing = size - buf.len();
        buf.reserve(missing.min(READ_CHUNK_BYTES));
        let mut limited = (&mut buf).limit(missing);
        let (until, stall) = timer.next_wait(last_bytes_at);
        let read = match tokio::time::timeout_at(until, stream.read_buf(&mut limited)).await {
            Ok(read) => read?,
            Err(_) => return Err(timer.close(stall, size, buf.len())),
        };
        if read == 0 {
            return Err(Close::Refused(format!(
                "connection closed after {} of {size} declared request bytes",
                buf.len()
            )));
        }
        last_bytes_at = Instant::now();
    }
    Ok(buf.freeze())
}

/// A request frame checked and its header decoded.
enum Parsed {
    /// Answered without a handler (an ApiVersions request of a version not served).
    Answer(api::Response),
    Request(Request),
}

struct Request {
    ctx: api::RequestContext,
    body: Bytes,
}

impl Request {
    /// Counts the request and starts its duration timer.
    fn timer(&self, broker: &Broker) -> prometheus::HistogramTimer {
        let name = api::api_name(self.ctx.api_key);
        broker.metrics.requests.with_label_values(&[name]).inc();
        broker
            .metrics
            .request_duration
            .with_label_values(&[name])
            .start_timer()
    }

    /// A request that could not be decoded or answered closes the connection.
    fn refused(&self, broker: &Broker, e: anyhow::Error) -> Close {
        broker
            .metrics
            .requests_rejected
            .with_label_values(&["malformed"])
            .inc();
        Close::Refused(format!(
            "{} v{} from client {:?}: {e}",
            api::api_name(self.ctx.api_key),
            self.ctx.version,
            self.ctx.client_id
        ))
    }

    /// Answer a SaslHandshake or SaslAuthenticate from the connection's SASL state.
    fn answer_sasl(
        &mut self,
        broker: &Broker,
        sasl: &mut SaslConnection,
        out: &mut BytesMut,
    ) -> Result<(BytesMut, bool), Close> {
        let timer = self.timer(broker);
        let body = std::mem::take(&mut self.body);
        let answer = api::scram::answer_sasl(broker, sasl, &self.ctx, body, out)
            .map_err(|e| self.refused(broker, e))?;
        timer.observe_duration();
        Ok(answer)
    }

    async fn dispatch(
        mut self,
        broker: &Broker,
        out: &mut BytesMut,
    ) -> Result<Option<api::Response>, Close> {
        let timer = self.timer(broker);
        let body = std::mem::take(&mut self.body);
        let answer = api::dispatch(broker, &self.ctx, body, out).await;
        let answer = answer.map_err(|e| self.refused(broker, e))?;
        timer.observe_duration();
        Ok(answer)
    }
}

fn parse_frame(
    broker: &Broker,
    frame: Bytes,
    peer: SocketAddr,
    listener: &Arc<Listener>,
    principal: &Principal,
) -> Result<Parsed, Close> {
    let head = match guard::check_request(&frame) {
        Ok(head) => head,
        Err(GuardError::UnsupportedVersion {
            api_key: 18,
            api_version,
            correlation_id,
        }) => {
            broker
                .metrics
                .requests_rejected
                .with_label_values(&["unsupported_version"])
                .inc();
            return Ok(Parsed::Answer(api::Response::Frame(
                api::api_versions::unsupported(correlation_id, api_version),
            )));
        }
        Err(e) => {
            let reason = match e {
                GuardError::UnknownApi { .. } => "unknown_api",
                GuardError::UnsupportedVersion { .. } => "unsupported_version",
                _ => "malformed",
            };
            broker
                .metrics
                .requests_rejected
                .with_label_values(&[reason])
                .inc();
            return Err(Close::Refused(e.to_string()));
        }
    };
    let refuse = |reason: &str, what: &str| {
        broker
            .metrics
            .requests_rejected
            .with_label_values(&[reason])
            .inc();
        Close::Refused(format!(
            "{what} (API key {} version {})",
            head.api_key, head.api_version
        ))
    };
    let unsupported = |what: &str| refuse("unsupported_version", what);
    let api_key =
        ApiKey::try_from(head.api_key).map_err(|_| refuse("unknown_api", "unknown API"))?;
    let Some((lo, hi)) = supported_versions(api_key) else {
        return Err(refuse("unknown_api", &format!("{api_key:?} is not served")));
    };
    if head.api_version < lo || head.api_version > hi {
        if api_key == ApiKey::ApiVersions {
            return Ok(Parsed::Answer(api::Response::Frame(
                api::api_versions::unsupported(head.correlation_id, head.api_version),
            )));
        }
        return Err(unsupported(&format!(
            "{api_key:?} version outside {lo}-{hi}"
        )));
    }
    if api_key == ApiKey::Produce && head.api_version < 3 {
        // Advertised only so that librdkafka keeps compression on (KAFKA-18659);
        // message formats v0/v1 are not stored.
        return Err(unsupported(
            "Produce v0-2 (message format v0/v1) is not supported",
        ));
    }
    if head.array_elements > MAX_REQUEST_ARRAY_ELEMENTS {
        return Err(refuse(
            "too_large",
            &format!(
                "{} array elements exceed the limit of {MAX_REQUEST_ARRAY_ELEMENTS} per request",
                head.array_elements
            ),
        ));
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, head.header_version)
        .map_err(|e| Close::Refused(format!("request header: {e}")))?;
    let ctx = api::RequestContext {
        api_key,
        version: head.api_version,
        correlation_id: header.correlation_id,
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        peer,
        listener: listener.clone(),
        principal: principal.clone(),
    };
    Ok(Parsed::Request(Request { ctx, body: buf }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_up_to_the_upfront_limit_get_their_whole_buffer_at_once() {
        assert_eq!(initial_frame_capacity(0), 0);
        assert_eq!(initial_frame_capacity(1_048_576), 1_048_576);
        assert_eq!(
            initial_frame_capacity(READ_UPFRONT_BYTES),
            READ_UPFRONT_BYTES
        );
        assert_eq!(
            initial_frame_capacity(READ_UPFRONT_BYTES + 1),
            READ_CHUNK_BYTES
        );
        assert_eq!(initial_frame_capacity(100 << 20), READ_CHUNK_BYTES);
    }

    /// Limits that a test frame never reaches.
    fn patient() -> FrameTimer {
        FrameTimer::start(Instant::now(), 600_000, 600_000)
    }

    /// Writes `frame` in small pieces, as TCP may deliver it, then closes.
    async fn read_in_pieces(frame: Vec<u8>, declared: usize) -> Result<Bytes, Close> {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            for piece in frame.chunks(1000) {
                client.write_all(piece).await.unwrap();
            }
        });
        let read = read_frame(&mut server, declared, &patient()).await;
        writer.await.unwrap();
        read
    }

    #[test]
    fn a_frame_waits_for_whichever_of_idle_and_deadline_comes_first() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let timer = FrameTimer::start(t0, 30_000, 10_000);
        assert_eq!(timer.next_wait(t0), (t0 + ms(10_000), Stall::Idle));
        assert_eq!(
            timer.next_wait(t0 + ms(19_999)),
            (t0 + ms(29_999), Stall::Idle)
        );
        // At the limit the deadline decides: the frame as a whole is late.
        assert_eq!(
            timer.next_wait(t0 + ms(20_000)),
            (t0 + ms(30_000), Stall::Deadline)
        );
        assert_eq!(
            timer.next_wait(t0 + ms(29_000)),
            (t0 + ms(30_000), Stall::Deadline)
        );
        // An idle timeout longer than the deadline never applies mid-frame.
        let timer = FrameTimer::start(t0, 30_000, 600_000);
        assert_eq!(timer.next_wait(t0), (t0 + ms(30_000), Stall::Deadline));
    }

    /// Sends `sent` bytes of a `declared`-byte frame, then keeps the stream open and
    /// silent (or trickles a byte per `trickle`), and reads it with `timer`.
    async fn read_stalled(
        declared: usize,
        sent: usize,
        trickle: Option<Duration>,
        timer: FrameTimer,
    ) -> Close {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            client.write_all(&vec![1; sent]).await.unwrap();
            loop {
                match trickle {
                    // The pause paces a client that is slow on purpose.
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
                if client.write_all(&[2]).await.is_err() {
                    return;
                }
            }
        });
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            read_frame(&mut server, declared, &timer),
        )
        .await
        .expect("the frame's own bounds end the read");
        writer.abort();
        read.unwrap_err()
    }

    #[tokio::test]
    async fn a_frame_stalled_mid_way_is_closed_at_its_deadline() {
        let timer = FrameTimer::start(Instant::now(), 200, 600_000);
        let err = read_stalled(10_000, 3000, None, timer).await;
        assert!(
            matches!(
                err,
                Close::FrameDeadline {
                    size: 10_000,
                    received: 3000,
                    timeout_ms: 200
                }
            ),
            "{err}"
        );
        assert_eq!(err.slow_client_reason(), Some("frame_deadline"));
    }

    #[tokio::test]
    async fn a_frame_trickling_in_is_closed_at_its_deadline() {
        let timer = FrameTimer::start(Instant::now(), 300, 600_000);
        let err = read_stalled(10_000, 10, Some(Duration::from_millis(5)), timer).await;
        match err {
            Close::FrameDeadline { received, .. } => assert!(received > 10, "{received}"),
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_frame_with_no_bytes_for_the_idle_time_is_closed_as_idle() {
        let timer = FrameTimer::start(Instant::now(), 600_000, 200);
        let err = read_stalled(10_000, 3000, None, timer).await;
        assert!(
            matches!(
                err,
                Close::IdleMidFrame {
                    size: 10_000,
                    received: 3000,
                    idle_ms: 200
                }
            ),
            "{err}"
        );
        assert_eq!(err.slow_client_reason(), Some("idle_mid_frame"));
    }

    #[tokio::test]
    async fn a_frame_read_in_pieces_comes_back_whole() {
        for size in [1, 70_000, 1_000_000, READ_UPFRONT_BYTES + 100_000] {
            let frame: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let read = read_in_pieces(frame.clone(), size).await.unwrap();
            assert_eq!(read.len(), size);
            assert!(
                read[..] == frame[..],
                "frame of {size} bytes read back changed"
            );
        }
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_refused() {
        let err = read_in_pieces(vec![7; 5000], 10_000).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("connection closed after 5000 of 10000 declared request bytes"),
            "{err}"
        );
    }
}
