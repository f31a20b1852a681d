//! librdkafka (through the `rdkafka` crate) against the broker, one test per compression
//! codec: an idempotent acks=all producer sends keyed messages, a consumer without a group
//! reads them back, and every delivery report must match exactly one consumed message.
//!
//! Runs against a spawned `fjord`, or against `FJORD_E2E_BOOTSTRAP` when set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_e2e::{unique_topic, Target};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const MESSAGES: usize = 100_000;
const KEYS: usize = 16;
const PARTITIONS: i32 = 3;
const DEADLINE: Duration = Duration::from_secs(180);

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// (partition, offset) → (key index, per-key sequence), from delivery reports.
type Delivered = HashMap<(i32, i64), (usize, u64)>;

async fn produce(bootstrap: &str, topic: &str, codec: &str) -> Result<Delivered> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", (MESSAGES * 2).to_string())
        .set("message.timeout.ms", "120000")
        .create()
        .context("creating producer")?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(MESSAGES);
    let mut next_seq = [0u64; KEYS];
    for i in 0..MESSAGES {
        let key_index = i % KEYS;
        let seq = next_seq[key_index];
        next_seq[key_index] += 1;
        let key = format!("key-{key_index}");
        let value = seq.to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("enqueueing message {i}: {e}"))?;
        pending.push((key_index, seq, delivery));
    }
    let mut delivered = Delivered::with_capacity(MESSAGES);
    for (key_index, seq, delivery) in pending {
        let delivery = delivery
            .await
            .context("delivery future dropped")?
            .map_err(|(e, _)| anyhow::anyhow!("key {key_index} seq {seq} not delivered: {e}"))?;
        let previous = delivered.insert((delivery.partition, delivery.offset), (key_index, seq));
        ensure!(
            previous.is_none(),
            "two messages reported at partition {} offset {}",
            delivery.partition,
            delivery.offset
        );
    }
    println!(
        "codec {codec}: produced {MESSAGES} messages in {:?}",
        started.elapsed()
    );
    Ok(delivered)
}

fn consume_and_check(bootstrap: &str, topic: &str, delivered: &Delivered) -> Result<()> {
    // librdkafka's consumer needs a group.id even for assign(); without subscribe() and
    // with commits off it never joins the group: partitions are assigned explicitly.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("e2e-assign-only"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let deadline = Instant::now() + DEADLINE;
    let mut seen: HashMap<(i32, i64), ()> = HashMap::with_capacity(MESSAGES);
    let mut last_seq: HashMap<usize, u64> = HashMap::new();
    while seen.len() < delivered.len() {
        ensure!(
            Instant::now() < deadline,
            "read {} of {} messages within {DEADLINE:?}",
            seen.len(),
            delivered.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let at = (message.partition(), message.offset());
        let Some(&(key_index, seq)) = delivered.get(&at) else {
            bail!(
                "message at partition {} offset {} was never acknowledged",
                at.0,
                at.1
            );
        };
        ensure!(seen.insert(at, ()).is_none(), "offset {at:?} read twice");
        let key = std::str::from_utf8(message.key().context("message without key")?)?;
        let value: u64 =
            std::str::from_utf8(message.payload().context("message without value")?)?.parse()?;
        ensure!(
            key == format!("key-{key_index}") && value == seq,
            "offset {at:?}: read {key}={value}, delivery report said key-{key_index}={seq}"
        );
        // Per key, sequences arrive in order: a key maps to one partition, read in order.
        if let Some(prev) = last_seq.insert(key_index, seq) {
            ensure!(seq == prev + 1, "key-{key_index}: {seq} after {prev}");
        } else {
            ensure!(seq == 0, "key-{key_index}: first value read is {seq}");
        }
    }
    // Nothing beyond what was acknowledged: the partitions hold exactly MESSAGES records
    // (a duplicate from a retried batch would sit at an extra offset).
    let mut total = 0;
    for p in 0..PARTITIONS {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high - low;
    }
    ensure!(
        total == MESSAGES as i64,
        "partitions hold {total} records, expected {MESSAGES}"
    );
    Ok(())
}

async fn round_trip(codec: &str) -> Result<()> {
    let target = Target::from_env().await?;
    let bootstrap = target.bootstrap();
    let topic = unique_topic(&format!("rdkafka-{codec}"));
    create_topic(&bootstrap, &topic, PARTITIONS).await?;
    let delivered = produce(&bootstrap, &topic, codec).await?;
    ensure!(delivered.len() == MESSAGES);
    let started = Instant::now();
    let (bootstrap_c, topic_c) = (bootstrap.clone(), topic.clone());
    tokio::task::spawn_blocking(move || consume_and_check(&bootstrap_c, &topic_c, &delivered))
        .await??;
    println!(
        "codec {codec}: consumed and checked in {:?}",
        started.elapsed()
    );
    drop(target);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_none() -> Result<()> {
    round_trip("none").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_gzip() -> Result<()> {
    round_trip("gzip").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_snappy() -> Result<()> {
    round_trip("snappy").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_lz4() -> Result<()> {
    round_trip("lz4").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_zstd() -> Result<()> {
    round_trip("zstd").await
}
