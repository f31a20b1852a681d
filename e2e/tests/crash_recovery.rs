//! Kill -9 under load: an idempotent acks=all producer (librdkafka) keeps sending while the
//! broker is SIGKILLed and restarted on the same data dir. Every acknowledged message must
//! be in the log at its acknowledged offset, the offsets must run from 0 without gaps, and
//! no message may be stored twice. Prints the recovery time (process start → ready).
//!
//! Needs a broker it may kill, so it ignores `FJORD_E2E_BOOTSTRAP`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOTAL: u64 = 20_000;
const CHUNK: u64 = 500;
const KILL_AFTER_ACKS: usize = 5_000;
const DEADLINE: Duration = Duration::from_secs(180);

/// Acknowledged (offset, seq) pairs and failed deliveries, in send order.
#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<(i64, u64)>,
    failed: Vec<(u64, String)>,
}

async fn produce(
    producer: FutureProducer,
    topic: String,
    acked_count: Arc<AtomicUsize>,
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for chunk_start in (0..TOTAL).step_by(CHUNK as usize) {
        let mut pending = Vec::new();
        for seq in chunk_start..(chunk_start + CHUNK).min(TOTAL) {
            let value = seq.to_string();
            let record = FutureRecord::to(&topic).key("k").payload(&value);
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("enqueueing seq {seq}: {e}"))?;
            pending.push((seq, delivery));
        }
        for (seq, delivery) in pending {
            match delivery.await.context("delivery future dropped")? {
                Ok(d) => {
                    outcome.acked.push((d.offset, seq));
                    acked_count.fetch_add(1, Ordering::Relaxed);
                }
                Err((e, _)) => outcome.failed.push((seq, e.to_string())),
            }
        }
    }
    Ok(outcome)
}

fn read_all(bootstrap: &str, topic: &str) -> Result<Vec<(i64, u64)>> {
    // A group.id is required by librdkafka even for assign(); nothing joins or commits.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("e2e-crash-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
    ensure!(low == 0, "log start offset {low} after recovery");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + DEADLINE;
    let mut records = Vec::with_capacity(high as usize);
    while (records.len() as i64) < high {
        ensure!(
            Instant::now() < deadline,
            "read {} of {high} records within {DEADLINE:?}",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let seq: u64 = std::str::from_utf8(message.payload().context("no value")?)?.parse()?;
        records.push((message.offset(), seq));
    }
    Ok(records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9() -> Result<()> {
    let mut broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("crash");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    for result in admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        // Long enough to ride out the restart: a message that times out is not acked, and
        // the test then fails on the failed delivery, not on a missing record.
        .set("message.timeout.ms", "120000")
        .create()?;
    let acked_count = Arc::new(AtomicUsize::new(0));
    let producing = tokio::spawn(produce(producer, topic.clone(), acked_count.clone()));

    let deadline = Instant::now() + DEADLINE;
    while acked_count.load(Ordering::Relaxed) < KILL_AFTER_ACKS {
        ensure!(
            !producing.is_finished() && Instant::now() < deadline,
            "producer stopped or stalled at {} acks before the kill",
            acked_count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before_kill = acked_count.load(Ordering::Relaxed);
    broker.kill9().await?;
    let recovery = broker.restart().await?;
    println!(
        "kill -9 after {acked_before_kill} acks; recovery (process start -> ready): {recovery:?}"
    );

    let outcome = tokio::time::timeout(DEADLINE, producing)
        .await
        .context("producer did not finish")???;
    ensure!(
        outcome.failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        outcome.failed.len(),
        outcome.failed.first()
    );
    ensure!(
        outcome.acked.len() as u64 == TOTAL && outcome.acked.len() > acked_before_kill,
        "acked {} of {TOTAL}",
        outcome.acked.len()
    );

    let (bootstrap_c, topic_c) = (bootstrap.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || read_all(&bootstrap_c, &topic_c)).await??;
    // Offsets run 0, 1, 2, ... with nothing skipped or repeated.
    for (i, (offset, _)) in records.iter().enumerate() {
        ensure!(*offset == i as i64, "record {i} is at offset {offset}");
    }
    // No message stored twice, and in send order: one producer, one partition, idempotent.
    for pair in records.windows(2) {
        ensure!(
            pair[1].1 > pair[0].1,
            "seq {} stored after seq {}",
            pair[1].1,
            pair[0].1
        );
    }
    // Every acknowledged message is at its acknowledged offset.
    let by_offset: HashMap<i64, u64> = records.iter().copied().collect();
    for (offset, seq) in &outcome.acked {
        ensure!(
            by_offset.get(offset) == Some(seq),
            "seq {seq} acked at offset {offset}, log holds {:?}",
            by_offset.get(offset)
        );
    }
    ensure!(
        records.len() as u64 == TOTAL,
        "log holds {} records, sent {TOTAL}",
        records.len()
    );
    Ok(())
}
