//! Helpers shared by the loopback suites: raw frames, hand-made record batches, batch
//! headers of fetched data, Prometheus text, and condition waits with deadlines.
//!
//! Each suite uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use fjord_client::{Client, ClientConfig, Connection};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every condition wait and network exchange of these suites.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it yields `Some`, failing after `timeout` with `what` and the last
/// observation. The pause between polls is a poll interval, not a synchronisation sleep.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fjord-client connection to `bootstrap` (ApiVersions negotiated).
pub async fn connection(bootstrap: &str) -> Result<Connection> {
    Ok(Connection::connect(bootstrap, &ClientConfig::default()).await?)
}

/// A fresh client on its own connections.
pub async fn client(bootstrap: &str) -> Result<Client> {
    Ok(Client::connect(&[bootstrap], ClientConfig::default()).await?)
}

/// Request header v1 (api key, version, correlation id, null client id) followed by
/// `body`, with the 4-byte size prefix. Flexible versions get header v2's empty tagged
/// fields when `flexible_header`.
pub fn raw_frame(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    flexible_header: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + body.len() + 1);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&api_version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    if flexible_header {
        frame.push(0);
    }
    frame.extend_from_slice(body);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame
}

/// What the broker did after a frame: answered with a response frame, or closed.
#[derive(Debug)]
pub enum Answer {
    /// One response frame (without its size prefix).
    Response(Vec<u8>),
    /// EOF or reset before a complete response arrived; `partial` bytes had come.
    Closed { partial: usize },
}

/// Reads one response frame or the close of the connection, within `timeout`.
pub async fn read_answer(stream: &mut TcpStream, timeout: Duration) -> Result<Answer> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if buf.len() >= 4 {
                let size = i32::from_be_bytes(buf[..4].try_into().unwrap());
                ensure!(
                    (0..=64 << 20).contains(&size),
                    "response size prefix {size}"
                );
                if buf.len() >= 4 + size as usize {
                    return Ok(Answer::Response(buf[4..4 + size as usize].to_vec()));
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Ok(Answer::Closed { partial: buf.len() }),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Ok(Answer::Closed { partial: buf.len() })
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .context("neither a response nor a close")?
}

/// Asserts that the broker closes `stream` without sending a single byte.
pub async fn expect_closed_silently(stream: &mut TcpStream, what: &str) -> Result<()> {
    match read_answer(stream, DEADLINE)
        .await
        .with_context(|| format!("{what}: waiting for the broker to close"))?
    {
        Answer::Closed { partial: 0 } => Ok(()),
        other => bail!("{what}: expected the connection closed with no response, got {other:?}"),
    }
}

/// Writes `bytes`, tolerating a reset by a broker that already closed the connection.
pub async fn write_tolerant(stream: &mut TcpStream, bytes: &[u8]) -> Result<()> {
    match stream.write_all(bytes).await {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// One record of a hand-made batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub value: Bytes,
    pub timestamp_ms: i64,
}

impl BatchRecord {
    pub fn new(value: impl Into<Bytes>, timestamp_ms: i64) -> Self {
        BatchRecord {
            value: value.into(),
            timestamp_ms,
        }
    }
}

/// Producer fields of a hand-made batch; `None` is a plain (non-idempotent) batch.
#[derive(Debug, Clone, Copy)]
pub struct Idempotence {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Encodes `records` as exactly one RecordBatch v2 (uncompressed), idempotent when
/// `producer` says so. Base offset 0; the broker assigns the real one.
pub fn encode_batch(records: &[BatchRecord], producer: Option<Idempotence>) -> Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = match producer {
        Some(p) => (p.producer_id, p.producer_epoch, p.base_sequence),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch where `offset - sequence` changes: a constant
            // difference keeps one batch, whose base sequence is the first record's.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp_ms,
            key: None,
            value: Some(r.value.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encoding a record batch")?;
    let spans = batch_spans(&buf);
    ensure!(
        spans.len() == 1 && spans[0].complete,
        "expected one batch, got {spans:?}"
    );
    Ok(buf.freeze())
}

/// A Produce request holding `batch` for `topic`/`partition` (timeout 30 s).
pub fn produce_request(topic: &str, partition: i32, acks: i16, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

/// Sends one Produce request holding `batch` for `topic`/`partition` and returns that
/// partition's answer.
pub async fn produce_raw(
    conn: &Connection,
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> Result<PartitionProduceResponse> {
    let response = conn
        .send(&produce_request(topic, partition, acks, batch))
        .await?;
    response
        .responses
        .into_iter()
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == partition)
        .with_context(|| format!("no produce answer for {topic}/{partition}"))
}

/// The header facts of one record batch in fetched bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    pub records_count: i32,
    /// Bytes of the batch, log overhead included, as its header declares.
    pub size_bytes: usize,
    /// Whether all of those bytes are present.
    pub complete: bool,
}

/// Walks the v2 batch headers of fetched record data (a last batch may be cut short).
pub fn batch_spans(mut data: &[u8]) -> Vec<BatchSpan> {
    let mut spans = Vec::new();
    while data.len() >= 61 {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().unwrap());
        let batch_length = i32::from_be_bytes(data[8..12].try_into().unwrap());
        let last_offset_delta = i32::from_be_bytes(data[23..27].try_into().unwrap());
        let records_count = i32::from_be_bytes(data[57..61].try_into().unwrap());
        let size_bytes = 12 + batch_length.max(0) as usize;
        let complete = data.len() >= size_bytes;
        spans.push(BatchSpan {
            base_offset,
            last_offset: base_offset + i64::from(last_offset_delta),
            records_count,
            size_bytes,
            complete,
        });
        if !complete {
            break;
        }
        data = &data[size_bytes..];
    }
    spans
}

/// The sum of the samples of `name` whose labels include every pair of `labels`, or
/// `None` when no sample matches. Parses the Prometheus text format.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let pairs: Vec<(&str, &str)> = series_labels
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        if labels.iter().all(|l| pairs.contains(l)) {
            if let Ok(v) = value.parse::<f64>() {
                *total.get_or_insert(0.0) += v;
            }
        }
    }
    total
}

/// The broker's `/metrics` text.
pub async fn scrape(http_addr: &str) -> Result<String> {
    let (status, body) = fjord_e2e::http_get(http_addr, "/metrics", DEADLINE).await?;
    ensure!(status == 200, "/metrics answered {status}: {body}");
    Ok(body)
}
