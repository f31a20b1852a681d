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
//! time (`connections.max.idle.ms`), answers waiting per connection, and a frame buffer
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
use kafka_protocol::messages::{ApiKey, ProduceResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use nix::sys::sendfile::sendfile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::api;
use super::broker::Broker;
use crate::log::FileSlice;
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

/// Room reserved before encoding a response; larger ones grow the buffer, which
/// keeps the larger storage for the next.
const RESPONSE_BUFFER_BYTES: usize = 1024;

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("client closed the connection")]
    Eof,
    #[error("idle for {0} ms")]
    Idle(u64),
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
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    broker.metrics.connections.inc();
    match serve_inner(&broker, stream, peer, &shutdown).await {
        Ok(()) | Err(Close::Eof) | Err(Close::Shutdown) | Err(Close::CutOff) => {}
        Err(Close::Io(e)) => tracing::debug!(%peer, error = %e, "connection closed"),
        Err(e) => tracing::warn!(%peer, "closing connection: {e}"),
    }
    broker.metrics.connections.dec();
}

/// A produce request's answer still being worked out, in request order; encoded when
/// its turn to be written comes.
type Pending<'a> = Pin<Box<dyn Future<Output = (Request, Option<ProduceResponse>)> + Send + 'a>>;

async fn serve_inner(
    broker: &Broker,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Result<(), Close> {
    let (reader, mut writer) = stream.split();
    // Frames as a stream: a read in progress survives the select below answering a
    // produce request meanwhile.
    let frames = futures::stream::unfold(reader, |mut reader| async move {
        let frame = read_request(broker, &mut reader).await;
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
                let mut request = match parse_frame(broker, frame, peer)? {
                    Parsed::Answer(response) => {
                        drain(broker, &mut pending, &mut writer, &mut out).await?;
                        write_response(&mut writer, response).await?;
                        continue;
                    }
                    Parsed::Request(request) => request,
                };
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

/// Encode and write a produce request's answer (nothing for acks=0).
async fn write_produce_answer(
    broker: &Broker,
    writer: &mut WriteHalf<'_>,
    out: &mut BytesMut,
    request: Request,
    answer: Option<ProduceResponse>,
) -> Result<(), Close> {
    let Some(answer) = answer else {
        return Ok(());
    };
    let ctx = &request.ctx;
    let frame = encode_response(ctx.api_key, ctx.version, ctx.correlation_id, &answer, out)
        .map_err(|e| request.refused(broker, e))?;
    write_response(writer, api::Response::Frame(frame)).await?;
    Ok(())
}

/// Answer every request waiting, in order: a request other than produce starts only
/// then (see the module doc).
async fn drain(
    broker: &Broker,
    pending: &mut VecDeque<Pending<'_>>,
    writer: &mut WriteHalf<'_>,
    out: &mut BytesMut,
) -> Result<(), Close> {
    while let Some(earlier) = pending.pop_front() {
        let (request, answer) = earlier.await;
        write_produce_answer(broker, writer, out, request, answer).await?;
    }
    Ok(())
}

/// The next request frame, within the idle and size bounds.
async fn read_request(broker: &Broker, reader: &mut ReadHalf<'_>) -> Result<Bytes, Close> {
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
    read_frame(reader, size as usize).await
}

async fn write_response(
    stream: &mut WriteHalf<'_>,
    response: api::Response,
) -> std::io::Result<()> {
    match response {
        api::Response::Frame(frame) => stream.write_all(&frame).await,
        api::Response::Parts(parts) => {
            for part in parts {
                match part {
                    Part::Bytes(b) => stream.write_all(&b).await?,
                    Part::File(slice, len) => send_file(stream.as_ref(), &slice, len).await?,
                }
            }
            Ok(())
        }
    }
}

/// Send `len` bytes of a segment file straight from the page cache to the socket.
async fn send_file(stream: &TcpStream, slice: &FileSlice, len: usize) -> std::io::Result<()> {
    let mut offset = i64::try_from(slice.position).map_err(std::io::Error::other)?;
    let end = offset + len as i64;
    while offset < end {
        stream.writable().await?;
        let count = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            sendfile(stream, &*slice.file, Some(&mut offset), count).map_err(std::io::Error::from)
        });
        match sent {
            // The frame's size is already on the wire: a file that shrank under us
            // (truncated or deleted segment) leaves no way but closing the connection.
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before the fetched range",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The capacity of the buffer a frame of `size` bytes is first read into.
fn initial_frame_capacity(size: usize) -> usize {
    if size <= READ_UPFRONT_BYTES {
        size
    } else {
        READ_CHUNK_BYTES
    }
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, size: usize) -> Result<Bytes, Close> {
    let mut buf = BytesMut::with_capacity(initial_frame_capacity(size));
    while buf.len() < size {
        let missing = size - buf.len();
        buf.reserve(missing.min(READ_CHUNK_BYTES));
        let mut limited = (&mut buf).limit(missing);
        if stream.read_buf(&mut limited).await? == 0 {
            return Err(Close::Refused(format!(
                "connection closed after {} of {size} declared request bytes",
                buf.len()
            )));
        }
    }
    Ok(buf.freeze())
}

/// Encode a response frame (size, header, body) into `buf`'s storage and split it
/// off: once the frame is written and dropped, the next encoding into `buf` reuses
/// the same memory, so a connection does not allocate per response.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    buf: &mut BytesMut,
) -> anyhow::Result<BytesMut> {
    buf.clear();
    buf.reserve(RESPONSE_BUFFER_BYTES);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, api_key.response_header_version(version))?;
    body.encode(buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.split())
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

fn parse_frame(broker: &Broker, frame: Bytes, peer: SocketAddr) -> Result<Parsed, Close> {
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

    /// Writes `frame` in small pieces, as TCP may deliver it, then closes.
    async fn read_in_pieces(frame: Vec<u8>, declared: usize) -> Result<Bytes, Close> {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            for piece in frame.chunks(1000) {
                client.write_all(piece).await.unwrap();
            }
        });
        let read = read_frame(&mut server, declared).await;
        writer.await.unwrap();
        read
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
