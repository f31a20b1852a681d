//! Produced batches that would stop consumers are refused with Kafka's error code, and
//! the log after them stays readable from offset 0: hand-made batches over the raw
//! protocol, then librdkafka (the `rdkafka` crate) as the consumer.
//!
//! Needs its own broker (compacted topics, memory figures), so it ignores
//! `FJORD_E2E_BOOTSTRAP`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use common::{encode_batch, produce_raw, produce_request, BatchRecord, DEADLINE};
use fjord_client::{NewTopic, OffsetSpec};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const TS: i64 = 1_700_000_000_000;

/// A one-record batch flagged with `codec` whose records section is `section` as given
/// (the encoder's own records are dropped), with a valid CRC over it.
fn batch_with_section(codec: Compression, section: &[u8]) -> Result<Bytes> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: NO_SEQUENCE,
        timestamp: TS,
        key: None,
        value: Some(Bytes::from_static(b"x")),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
        Some(|_: &mut BytesMut, out: &mut BytesMut, _: Compression| {
            out.put_slice(section);
            Ok(())
        }),
    )
    .context("encoding a hand-made batch")?;
    Ok(buf.freeze())
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The start of one record through its value's length: the length prefix counts the
/// fields, `value_bytes` of value and a one-byte header count, which the caller appends.
fn record_head(key: Option<&[u8]>, value_len: i64, value_bytes: usize) -> Vec<u8> {
    let mut fields = vec![0, 0, 0]; // attributes, timestamp delta 0, offset delta 0
    match key {
        None => put_varint(&mut fields, -1),
        Some(k) => {
            put_varint(&mut fields, k.len() as i64);
            fields.extend_from_slice(k);
        }
    }
    put_varint(&mut fields, value_len);
    let mut r = Vec::new();
    put_varint(&mut r, (fields.len() + value_bytes + 1) as i64);
    r.extend_from_slice(&fields);
    r
}

/// What the broker said to one produce, with its message.
fn described(p: &PartitionProduceResponse) -> String {
    format!(
        "error {} ({:?}), base offset {}, message {:?}",
        p.error_code,
        ResponseError::try_from_code(p.error_code),
        p.base_offset,
        p.error_message.as_ref().map(|m| m.to_string())
    )
}

fn expect_refused(
    answer: &PartitionProduceResponse,
    code: ResponseError,
    says: &[&str],
) -> Result<()> {
    ensure!(
        answer.error_code == code.code(),
        "expected {code:?}, got {}",
        described(answer)
    );
    let message = answer
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    for s in says {
        ensure!(
            message.contains(s),
            "message {message:?} does not say {s:?}"
        );
    }
    Ok(())
}

/// librdkafka reads the partition from offset 0 until it has `want` records, failing on
/// any consumer error (a bad batch shows as one, or as no progress at all).
fn consume_from_start(bootstrap: &str, topic: &str, want: usize) -> Result<Vec<(i64, Vec<u8>)>> {
    // assign() needs a group.id, but with commits off and no subscribe() it joins none.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("poison-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the consumer")?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + DEADLINE;
    let mut read = Vec::new();
    while read.len() < want {
        if Instant::now() > deadline {
            bail!(
                "read {} of {want} records within {DEADLINE:?}: {read:?}",
                read.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => bail!("consumer error after {} records: {e}", read.len()),
            Some(Ok(m)) => read.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
        }
    }
    Ok(read)
}

#[tokio::test]
async fn poison_batches_are_refused_and_the_log_stays_readable() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let result = async {
        let topic = unique_topic("poison");
        let client = common::client(&broker.bootstrap()).await?;
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let conn = common::connection(&broker.bootstrap()).await?;

        // Flagged gzip, the payload not gzip: damaged bytes, CORRUPT_MESSAGE.
        let not_gzip = batch_with_section(Compression::Gzip, b"\x0cthis is not gzip")?;
        let answer = produce_raw(&conn, &topic, 0, -1, not_gzip).await?;
        expect_refused(
            &answer,
            ResponseError::CorruptMessage,
            &[&format!("topic {topic:?} partition 0"), "gzip"],
        )?;

        // Uncompressed, a valid CRC, a record claiming a value of 2^31-1 bytes:
        // INVALID_RECORD, as Kafka answers a record that does not parse.
        let mut section = record_head(None, i64::from(i32::MAX), 5);
        section.extend_from_slice(b"short");
        section.push(0); // no headers
        let huge_value = batch_with_section(Compression::None, &section)?;
        let answer = produce_raw(&conn, &topic, 0, -1, huge_value).await?;
        expect_refused(
            &answer,
            ResponseError::InvalidRecord,
            &[
                &format!("topic {topic:?} partition 0"),
                "value length 2147483647",
            ],
        )?;

        let end = client.list_offsets(&topic, 0, OffsetSpec::Latest).await?;
        ensure!(end.offset == 0, "refused batches were stored: {end:?}");

        let good = encode_batch(&[BatchRecord::new("good", TS)], None)?;
        let answer = produce_raw(&conn, &topic, 0, -1, good).await?;
        ensure!(
            answer.error_code == 0 && answer.base_offset == 0,
            "{}",
            described(&answer)
        );
        let bootstrap = broker.bootstrap();
        let read = tokio::task::spawn_blocking(move || consume_from_start(&bootstrap, &topic, 1))
            .await??;
        ensure!(read == [(0, b"good".to_vec())], "read {read:?}");
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", broker.logs());
    }
    result
}

/// zstd came with Produce v7: an older request carrying it is refused as Kafka does.
#[tokio::test]
async fn zstd_in_a_produce_older_than_v7_is_unsupported() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let topic = unique_topic("poison-v6");
    let client = common::client(&broker.bootstrap()).await?;
    client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
    let conn = common::connection(&broker.bootstrap()).await?;
    let zstd = batch_with_section(Compression::Zstd, b"unread")?;
    let response = conn
        .send_at(&produce_request(&topic, 0, -1, zstd), 6)
        .await?;
    let code = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| p.error_code)
        .next();
    ensure!(
        code == Some(ResponseError::UnsupportedCompressionType.code()),
        "{response:?}"
    );
    Ok(())
}

/// A zstd frame (RFC 8878) with a window of 2^`window_log` bytes holding `head` stored
/// raw, then `zeros` zero bytes as RLE blocks of 128 KiB: about 4 bytes on the wire per
/// 128 KiB decompressed.
fn zstd_bomb(window_log: u8, head: &[u8], zeros: usize) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header descriptor: no content size, not single-segment, no checksum, no
    // dictionary; then the window descriptor.
    f.extend_from_slice(&[0x00, (window_log - 10) << 3]);
    let block_header = |f: &mut Vec<u8>, last: bool, kind: u32, size: usize| {
        let h = (size as u32) << 3 | kind << 1 | u32::from(last);
        f.extend_from_slice(&h.to_le_bytes()[..3]);
    };
    block_header(&mut f, false, 0, head.len());
    f.extend_from_slice(head);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        block_header(&mut f, left == 0, 1, n);
        f.push(0);
    }
    f
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")
}

/// A 2 KiB zstd batch whose one record's value inflates past the 64 MiB cap is refused
/// while it streams through the validator: the broker's peak memory barely moves.
#[tokio::test]
async fn a_decompression_bomb_costs_no_memory() -> Result<()> {
    const VALUE: usize = 65 << 20;
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let result = async {
        // Compacted: the topic whose keys Fjord has always looked at.
        let topic = unique_topic("poison-bomb");
        let client = common::client(&broker.bootstrap()).await?;
        client
            .create_topic(NewTopic::new(&topic, 1, 1).with_config("cleanup.policy", "compact"))
            .await?;
        let conn = common::connection(&broker.bootstrap()).await?;
        let head = record_head(Some(b"k"), VALUE as i64, VALUE);
        let pid = broker.pid().context("broker pid")?;
        // A window of 128 KiB, the records streaming past the cap; and one of 128 MiB
        // (zstd's own limit), which a decoder would fill with the records it holds.
        for (window_log, says) in [
            (17, "decompress to more than 67108864 bytes"),
            (27, "needs a window of 134217728 bytes"),
        ] {
            // The value's zeros, then a zero byte for the header count.
            let frame = zstd_bomb(window_log, &head, VALUE + 1);
            let bomb = batch_with_section(Compression::Zstd, &frame)?;
            ensure!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
            let before = peak_rss_kib(pid)?;
            let answer = produce_raw(&conn, &topic, 0, -1, bomb).await?;
            let after = peak_rss_kib(pid)?;
            ensure!(
                after - before < 16 * 1024,
                "window 2^{window_log}: peak RSS grew from {before} KiB to {after} KiB ({})",
                described(&answer)
            );
            expect_refused(&answer, ResponseError::InvalidRecord, &[says])?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", broker.logs());
    }
    result
}

/// Writes the batches librdkafka and Kafka's Java producer send for each codec (three
/// keyed records with headers, one batch) to `$FJORD_FIXTURES`, for the broker's unit
/// tests (broker/src/log/validate/fixtures). Each is the first batch of a topic as the
/// log stored it, baseOffset 0 and partitionLeaderEpoch reset to -1 (both outside the
/// CRC); the rest are the client's bytes. The Java ones need Kafka's classpath (see
/// e2e/apache-kafka.sh).
///
///     FJORD_FIXTURES=$PWD/broker/src/log/validate/fixtures \
///       cargo test -p fjord-e2e --test poison_batches -- --ignored write_client_batch_fixtures
#[tokio::test]
#[ignore = "writes test fixtures"]
async fn write_client_batch_fixtures() -> Result<()> {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let out = std::path::PathBuf::from(std::env::var("FJORD_FIXTURES").context("FJORD_FIXTURES")?);
    std::fs::create_dir_all(&out)?;
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let client = common::client(&broker.bootstrap()).await?;
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let topic = format!("librdkafka-{codec}");
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("compression.type", codec)
            .set("linger.ms", "500")
            .create()?;
        let sends: Vec<_> = (0..3)
            .map(|i| {
                let (key, value) = (format!("k{i}"), format!("value {i} ").repeat(20));
                let headers = OwnedHeaders::new().insert(Header {
                    key: "h",
                    value: Some(&format!("{i}")),
                });
                let record = FutureRecord::to(&topic)
                    .partition(0)
                    .key(&key)
                    .payload(&value)
                    .headers(headers);
                producer.send_result(record).map_err(|(e, _)| e)
            })
            .collect::<Result<_, _>>()?;
        for send in sends {
            send.await?.map_err(|(e, _)| e)?;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-kafka.sh");
    for codec in codecs {
        let topic = format!("java-{codec}");
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let mut child = std::process::Command::new("bash")
            .args([
                script,
                "tool",
                "kafka-console-producer",
                "--bootstrap-server",
            ])
            .arg(broker.bootstrap())
            .args(["--topic", &topic, "--compression-codec", codec])
            .args([
                "--property",
                "parse.key=true",
                "--property",
                "parse.headers=true",
            ])
            .args(["--producer-property", "linger.ms=500"])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("stdin")?;
            for i in 0..3 {
                writeln!(stdin, "h:{i}\tk{i}\t{}", format!("value {i} ").repeat(20))?;
            }
        }
        ensure!(child.wait()?.success(), "console producer for {codec}");
    }
    for prefix in ["librdkafka", "java"] {
        for codec in codecs {
            let log = broker
                .data_dir()
                .join(format!("{prefix}-{codec}-0"))
                .join("00000000000000000000.log");
            let bytes = std::fs::read(&log).with_context(|| log.display().to_string())?;
            let spans = common::batch_spans(&bytes);
            let first = spans.first().context("no batch")?;
            ensure!(first.records_count == 3, "{prefix} {codec}: {spans:?}");
            let mut batch = bytes[..first.size_bytes].to_vec();
            batch[..8].copy_from_slice(&0i64.to_be_bytes());
            batch[12..16].copy_from_slice(&(-1i32).to_be_bytes());
            std::fs::write(out.join(format!("{prefix}-{codec}.bin")), batch)?;
        }
    }
    Ok(())
}
