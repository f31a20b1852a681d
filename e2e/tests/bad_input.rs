//! Hostile and broken input on the Kafka port: each case sends raw bytes, checks what the
//! broker answers (an error code, a v0 ApiVersions answer, or a silent close), and then
//! proves that the broker still serves a fresh client and that the data stored before is
//! intact.
//!
//! Needs brokers with particular limits, so it ignores `FJORD_E2E_BOOTSTRAP`.

mod common;

use anyhow::{ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use common::{
    batch_spans, encode_batch, expect_closed_silently, metric, produce_raw, raw_frame, read_answer,
    scrape, write_tolerant, Answer, BatchRecord, DEADLINE,
};
use fjord_client::{FetchOptions, NewTopic, OffsetSpec, ProduceOptions, ProduceRecord};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A broker holding a topic with known records.
struct Seeded {
    broker: BrokerProcess,
    topic: String,
    /// Every value in the topic's partition 0, in offset order.
    values: Vec<String>,
}

impl Seeded {
    async fn start(args: &[&str]) -> Result<Seeded> {
        let broker = BrokerProcess::start(BrokerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..BrokerOptions::default()
        })
        .await?;
        let topic = unique_topic("bad-input");
        let client = common::client(&broker.bootstrap()).await?;
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let values: Vec<String> = (0..5).map(|i| format!("seed-{i}")).collect();
        let records: Vec<_> = values
            .iter()
            .map(|v| ProduceRecord::new(None::<Bytes>, v.clone()))
            .collect();
        let produced = client
            .produce(&topic, 0, &records, &ProduceOptions::default())
            .await?;
        ensure!(produced.base_offset == 0, "{produced:?}");
        Ok(Seeded {
            broker,
            topic,
            values,
        })
    }

    /// Prints the broker's logs when the case failed, then hands its result on.
    fn finish(&self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            eprintln!("case failed: {e:#}\n{}", self.broker.logs());
        }
        result
    }

    async fn raw(&self) -> Result<TcpStream> {
        let stream = TcpStream::connect(self.broker.bootstrap()).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn rejected_total(&self) -> Result<f64> {
        let text = scrape(&self.broker.http_addr()).await?;
        Ok(metric(&text, "fjord_requests_rejected_total", &[]).unwrap_or(0.0))
    }

    /// A fresh client produces and reads back, and every earlier record is where it was.
    async fn assert_serving(&mut self, case: &str) -> Result<()> {
        let client = common::client(&self.broker.bootstrap())
            .await
            .with_context(|| format!("after {case}: connecting a fresh client"))?;
        let value = format!("after-{case}");
        let produced = client
            .produce(
                &self.topic,
                0,
                &[ProduceRecord::new(None::<Bytes>, value.clone())],
                &ProduceOptions::default(),
            )
            .await
            .with_context(|| format!("after {case}: produce"))?;
        ensure!(
            produced.base_offset == self.values.len() as i64,
            "after {case}: produced at {}, expected {}",
            produced.base_offset,
            self.values.len()
        );
        self.values.push(value);
        let mut read = Vec::new();
        while read.len() < self.values.len() {
            let fetched = client
                .fetch(&self.topic, 0, read.len() as i64, &FetchOptions::default())
                .await
                .with_context(|| format!("after {case}: fetch from {}", read.len()))?;
            ensure!(
                !fetched.records.is_empty(),
                "after {case}: no records at {} (high watermark {})",
                read.len(),
                fetched.high_watermark
            );
            for r in fetched.records {
                ensure!(r.offset == read.len() as i64, "after {case}: {r:?}");
                read.push(String::from_utf8(r.value.unwrap_or_default().to_vec())?);
            }
        }
        ensure!(
            read == self.values,
            "after {case}: log holds {read:?}, expected {:?}",
            self.values
        );
        Ok(())
    }
}

/// Frames of a valid Metadata v0 request with this body (header v1, null client id).
fn metadata_v0(body: &[u8]) -> Vec<u8> {
    raw_frame(ApiKey::Metadata as i16, 0, 7, false, body)
}

#[tokio::test]
async fn truncated_request_then_close() -> Result<()> {
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let frame = metadata_v0(&[0, 0, 0, 0]);
        let mut stream = s.raw().await?;
        // The full size prefix, then only part of the body.
        stream.write_all(&frame[..frame.len() - 3]).await?;
        drop(stream);
        // And the same cut short inside the header.
        let mut stream = s.raw().await?;
        stream.write_all(&frame[..7]).await?;
        stream.shutdown().await?;
        expect_closed_silently(&mut stream, "header cut short").await?;
        s.assert_serving("truncated request").await
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn frame_over_socket_request_max_bytes_is_closed_without_answer() -> Result<()> {
    let mut s = Seeded::start(&["--socket-request-max-bytes", "1048576"]).await?;
    let result = async {
        let before = s.rejected_total().await?;
        let mut stream = s.raw().await?;
        let declared: i32 = 2 << 20;
        let mut start = declared.to_be_bytes().to_vec();
        // A plausible request header after the prefix: the size alone must decide.
        start.extend_from_slice(&raw_frame(ApiKey::Metadata as i16, 0, 1, false, &[0; 4])[4..]);
        write_tolerant(&mut stream, &start).await?;
        expect_closed_silently(&mut stream, "2 MiB frame with a 1 MiB limit").await?;
        let after = s.rejected_total().await?;
        ensure!(
            after > before,
            "fjord_requests_rejected_total {before} -> {after}"
        );
        // A small request on a new connection is still answered.
        let ok = metadata_v0(&[0, 0, 0, 0]);
        let mut stream = s.raw().await?;
        stream.write_all(&ok).await?;
        match read_answer(&mut stream, DEADLINE).await? {
            Answer::Response(_) => {}
            other => anyhow::bail!("small Metadata request after the refusal: {other:?}"),
        }
        s.assert_serving("oversized frame").await
    }
    .await;
    s.finish(result)
}

/// `VmSize` of a process in bytes, from /proc.
fn vm_size_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .context("no VmSize")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

#[tokio::test]
async fn declared_size_larger_than_sent_allocates_only_what_arrives() -> Result<()> {
    const DECLARED: i32 = 100 << 20;
    const CONNECTIONS: usize = 8;
    let mut s = Seeded::start(&["--socket-request-max-bytes", "209715200"]).await?;
    let result = async {
        let pid = s.broker.pid().context("broker pid")?;
        let before = vm_size_bytes(pid)?;
        let mut streams = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut stream = s.raw().await?;
            let mut start = DECLARED.to_be_bytes().to_vec();
            start.extend_from_slice(&[0u8, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
            stream.write_all(&start).await?;
            streams.push(stream);
        }
        // The broker counts a connection in the same step in which it reads what is already
        // buffered (prefix and 10 bytes), so once all are counted every frame buffer exists.
        common::wait_for("all connections counted", DEADLINE, || async {
            let text = scrape(&s.broker.http_addr()).await?;
            let open = metric(&text, "fjord_connections", &[]).unwrap_or(0.0);
            Ok(if open >= CONNECTIONS as f64 {
                Ok(())
            } else {
                Err(format!("fjord_connections {open}"))
            })
        })
        .await?;
        // One more round trip on another connection, so those reads are certainly done.
        let mut probe = s.raw().await?;
        probe.write_all(&metadata_v0(&[0, 0, 0, 0])).await?;
        ensure!(matches!(
            read_answer(&mut probe, DEADLINE).await?,
            Answer::Response(_)
        ));
        let during = vm_size_bytes(pid)?;
        let grown = during.saturating_sub(before);
        println!(
        "VmSize {before} -> {during} bytes with {CONNECTIONS} frames declaring {DECLARED} bytes"
    );
        // Allocating the declared size would add CONNECTIONS * 100 MiB of address space.
        ensure!(
            grown < (CONNECTIONS as u64 * DECLARED as u64) / 2,
            "broker address space grew by {grown} bytes for {CONNECTIONS} frames of 10 bytes"
        );
        drop(streams);
        s.assert_serving("declared size larger than sent").await
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn unknown_api_key_is_closed() -> Result<()> {
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let before = s.rejected_total().await?;
        let mut stream = s.raw().await?;
        stream
            .write_all(&raw_frame(999, 0, 3, false, &[0; 8]))
            .await?;
        expect_closed_silently(&mut stream, "API key 999").await?;
        let after = s.rejected_total().await?;
        ensure!(
            after > before,
            "fjord_requests_rejected_total {before} -> {after}"
        );
        s.assert_serving("unknown API key").await
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn unknown_api_key_is_counted_as_unknown_api() -> Result<()> {
    let s = Seeded::start(&[]).await?;
    let result = async {
        let reason = |text: &str| {
            metric(
                text,
                "fjord_requests_rejected_total",
                &[("reason", "unknown_api")],
            )
            .unwrap_or(0.0)
        };
        let before = reason(&scrape(&s.broker.http_addr()).await?);
        let mut stream = s.raw().await?;
        stream
            .write_all(&raw_frame(999, 0, 3, false, &[0; 8]))
            .await?;
        expect_closed_silently(&mut stream, "API key 999").await?;
        let text = scrape(&s.broker.http_addr()).await?;
        ensure!(
            reason(&text) == before + 1.0,
            "reason=\"unknown_api\" {before} -> {}; rejected series: {:?}",
            reason(&text),
            text.lines()
                .filter(|l| l.starts_with("fjord_requests_rejected_total"))
                .collect::<Vec<_>>()
        );
        Ok(())
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn api_versions_unsupported_version_answers_v0() -> Result<()> {
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let mut stream = s.raw().await?;
        let correlation_id = 4242;
        // Header v2 (as for any flexible ApiVersions) and a v3-style body; the broker must
        // not need to understand either to answer.
        stream
            .write_all(&raw_frame(
                ApiKey::ApiVersions as i16,
                99,
                correlation_id,
                true,
                &[0, 0, 0],
            ))
            .await?;
        let Answer::Response(frame) = read_answer(&mut stream, DEADLINE).await? else {
            anyhow::bail!("ApiVersions v99: connection closed without an answer");
        };
        let mut buf = Bytes::from(frame);
        // The response header of ApiVersions is always v0 (correlation id only).
        let header = ResponseHeader::decode(&mut buf, 0)?;
        ensure!(header.correlation_id == correlation_id, "{header:?}");
        let response = ApiVersionsResponse::decode(&mut buf, 0)?;
        ensure!(
            buf.is_empty(),
            "{} bytes after a v0 ApiVersions body",
            buf.len()
        );
        ensure!(
            response.error_code == ResponseError::UnsupportedVersion.code(),
            "error code {}",
            response.error_code
        );
        let range = |key: ApiKey| {
            response
                .api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .map(|k| (k.min_version, k.max_version))
        };
        let api_versions = range(ApiKey::ApiVersions).context("ApiVersions not listed")?;
        ensure!(
            api_versions.0 == 0 && api_versions.1 >= 3,
            "{api_versions:?}"
        );
        for key in [ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata] {
            ensure!(range(key).is_some(), "{key:?} missing from {response:?}");
        }
        // The client retries at a version from the list, on the same connection.
        stream
            .write_all(&raw_frame(
                ApiKey::ApiVersions as i16,
                api_versions.1,
                correlation_id + 1,
                true,
                // client_software_name "e2e", client_software_version "1", no tagged fields.
                &[4, b'e', b'2', b'e', 2, b'1', 0],
            ))
            .await?;
        let Answer::Response(frame) = read_answer(&mut stream, DEADLINE).await? else {
            anyhow::bail!("ApiVersions v{}: no answer", api_versions.1);
        };
        ensure!(frame[..4] == (correlation_id + 1).to_be_bytes());
        s.assert_serving("ApiVersions v99").await
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn metadata_claiming_two_billion_topics_is_closed() -> Result<()> {
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let before = s.rejected_total().await?;
        let mut stream = s.raw().await?;
        stream
            .write_all(&metadata_v0(&[0x7f, 0xff, 0xff, 0xf0]))
            .await?;
        expect_closed_silently(&mut stream, "Metadata v0 with 0x7ffffff0 topics").await?;
        let after = s.rejected_total().await?;
        ensure!(
            after > before,
            "fjord_requests_rejected_total {before} -> {after}"
        );
        s.assert_serving("Metadata count trap").await
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn produce_errors_are_per_partition_codes() -> Result<()> {
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let conn = common::connection(&s.broker.bootstrap()).await?;
        let client = common::client(&s.broker.bootstrap()).await?;
        let latest = || client.list_offsets(&s.topic, 0, OffsetSpec::Latest);
        let end = latest().await?.offset;
        ensure!(end == s.values.len() as i64, "log end {end}");

        // (g) one flipped byte inside the CRC-covered part.
        let batch = encode_batch(
            &vec![BatchRecord::new("flipped", 1_700_000_000_000); 3],
            None,
        )?;
        let mut corrupt = BytesMut::from(&batch[..]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        let answer = produce_raw(&conn, &s.topic, 0, -1, corrupt.freeze()).await?;
        ensure!(
            answer.error_code == ResponseError::CorruptMessage.code(),
            "bad CRC: {answer:?}"
        );
        ensure!(
            latest().await?.offset == end,
            "a corrupt batch was appended"
        );
        let text = scrape(&s.broker.http_addr()).await?;
        let counted = metric(
            &text,
            "fjord_request_errors_total",
            &[("api", "Produce"), ("error", "CorruptMessage")],
        );
        ensure!(counted >= Some(1.0), "CorruptMessage counted {counted:?}");

        // The same batch intact is accepted: the code above was about the flipped byte.
        let answer = produce_raw(&conn, &s.topic, 0, -1, batch).await?;
        ensure!(
            answer.error_code == 0 && answer.base_offset == end,
            "{answer:?}"
        );
        s.values
            .extend(std::iter::repeat_n("flipped".to_string(), 3));
        let end = end + 3;

        // (h) a batch over the topic's max.message.bytes.
        let small = unique_topic("bad-input-small");
        client
            .create_topic(NewTopic::new(&small, 1, 1).with_config("max.message.bytes", "1024"))
            .await?;
        let big = ProduceRecord::new(None::<Bytes>, vec![b'x'; 2048]);
        let err = client
            .produce(&small, 0, &[big], &ProduceOptions::default())
            .await
            .expect_err("2 KiB batch accepted with max.message.bytes=1024");
        ensure!(err.kafka() == Some(ResponseError::MessageTooLarge), "{err}");
        let small_end = client.list_offsets(&small, 0, OffsetSpec::Latest).await?;
        ensure!(small_end.offset == 0, "{small_end:?}");
        let fits = ProduceRecord::new(None::<Bytes>, vec![b'x'; 100]);
        client
            .produce(&small, 0, &[fits], &ProduceOptions::default())
            .await?;

        // (i) acks=5.
        let batch = encode_batch(&[BatchRecord::new("acks", 1_700_000_000_000)], None)?;
        let answer = produce_raw(&conn, &s.topic, 0, 5, batch).await?;
        ensure!(
            answer.error_code == ResponseError::InvalidRequiredAcks.code(),
            "acks=5: {answer:?}"
        );
        ensure!(latest().await?.offset == end, "acks=5 batch was appended");

        s.assert_serving("produce errors").await
    }
    .await;
    s.finish(result)
}

/// Served (api key, min, max) versions at the time of writing; junk frames use them so
/// that most reach a body decoder instead of stopping at the API key.
const SERVED: &[(i16, i16, i16)] = &[
    (0, 3, 11),
    (1, 4, 12),
    (2, 1, 7),
    (3, 0, 12),
    (18, 0, 4),
    (19, 2, 7),
    (20, 1, 6),
    (22, 0, 4),
    (23, 2, 4),
    (32, 1, 4),
    (37, 0, 3),
    (44, 0, 1),
    (60, 0, 1),
];

#[tokio::test]
async fn garbage_frames_leave_the_broker_serving() -> Result<()> {
    const FRAMES: usize = 200;
    let seed: u64 = std::env::var("FJORD_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("garbage frames: seed {seed} (rerun with FJORD_E2E_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut s = Seeded::start(&[]).await?;
    let result = async {
        let before = s.rejected_total().await?;
        let (mut answered, mut closed) = (0, 0);
        let mut previous = String::from("no frame yet");
        for i in 0..FRAMES {
            let (api_key, api_version) = if rng.random_bool(0.75) {
                let (key, min, max) = SERVED[rng.random_range(0..SERVED.len())];
                (key, rng.random_range(min..=max))
            } else {
                (rng.random(), rng.random())
            };
            let body_len = rng.random_range(0..512);
            let mut body = vec![0u8; body_len];
            rng.fill(&mut body[..]);
            let flexible = rng.random_bool(0.5);
            let frame = if rng.random_bool(0.8) {
                raw_frame(api_key, api_version, i as i32, flexible, &body)
            } else {
                // Header bytes random too.
                let mut f = ((body.len() + 8) as i32).to_be_bytes().to_vec();
                f.extend_from_slice(&api_key.to_be_bytes());
                f.extend_from_slice(&api_version.to_be_bytes());
                f.extend_from_slice(&(i as i32).to_be_bytes());
                f.extend_from_slice(&body);
                f
            };
            let what = format!(
                "frame {i} (api {api_key} v{api_version}, {body_len} body bytes, seed {seed})"
            );
            let mut stream = s
                .raw()
                .await
                .with_context(|| format!("connecting for {what}, after {previous}"))?;
            write_tolerant(&mut stream, &frame).await?;
            // Half-close: whatever the broker makes of the frame, it then sees EOF and closes.
            let _ = stream.shutdown().await;
            let mut responses = 0;
            while let Answer::Response(_) = read_answer(&mut stream, DEADLINE)
                .await
                .with_context(|| what.clone())?
            {
                responses += 1;
            }
            if responses > 0 {
                answered += 1;
            } else {
                closed += 1;
            }
            previous = what;
        }
        println!("garbage frames: {answered} answered, {closed} closed without an answer");
        let after = s.rejected_total().await?;
        ensure!(
            after > before,
            "fjord_requests_rejected_total {before} -> {after} after {FRAMES} garbage frames"
        );
        s.assert_serving(&format!("garbage frames (seed {seed})"))
            .await
    }
    .await;
    s.finish(result)
}

#[test]
fn batch_spans_of_a_hand_made_batch() {
    let batch = encode_batch(&[BatchRecord::new("a", 1), BatchRecord::new("b", 2)], None).unwrap();
    let spans = batch_spans(&batch);
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].base_offset, spans[0].last_offset), (0, 1));
    assert!(spans[0].complete && spans[0].size_bytes == batch.len());
}
