//! Damage found on disk after a clean stop, with a real broker process: a rolled
//! segment cut in half must cost no intact segment and no offset may be handed out
//! twice; a flipped bit in a rolled segment is found by the background scrub and
//! counted in the metrics.
//!
//! Needs brokers it stops and whose files it damages, so it ignores
//! `FJORD_E2E_BOOTSTRAP`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::{metric, scrape, wait_for, DEADLINE};
use fjord_client::ResponseError;
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const RECORDS: usize = 5_000;
const SEGMENT_BYTES: &str = "65536";
const GRACE: Duration = Duration::from_secs(30);

async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new =
        NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("segment.bytes", SEGMENT_BYTES);
    for result in admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

fn producer(bootstrap: &str, timeout_ms: u32) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        // Many batches, so that the log spans several segments of SEGMENT_BYTES.
        .set("batch.size", "16384")
        .set("message.timeout.ms", timeout_ms.to_string())
        .create()?)
}

/// Sends `count` records and returns the offset each was acknowledged at.
async fn produce(producer: &FutureProducer, topic: &str, count: usize) -> Result<Vec<i64>> {
    let mut pending = Vec::with_capacity(count);
    for i in 0..count {
        let value = format!("{i:05}-{}", "x".repeat(100));
        let record = FutureRecord::to(topic).key("k").payload(&value);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("enqueueing record {i}: {e}"))?;
        pending.push(delivery);
    }
    let mut offsets = Vec::with_capacity(count);
    for (i, delivery) in pending.into_iter().enumerate() {
        let delivered = delivery
            .await
            .context("delivery future dropped")?
            .map_err(|(e, _)| anyhow::anyhow!("record {i} not delivered: {e}"))?;
        offsets.push(delivered.offset);
    }
    Ok(offsets)
}

fn segments(partition_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
    logs.sort();
    Ok(logs)
}

/// A broker holding `RECORDS` acknowledged records of `topic`, stopped cleanly; returns
/// the partition's directory.
async fn stopped_broker_with_records(
    args: &[&str],
    topic: &str,
) -> Result<(BrokerProcess, PathBuf)> {
    let mut broker = BrokerProcess::start(BrokerOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..BrokerOptions::default()
    })
    .await?;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic).await?;
    let offsets = produce(&producer(&bootstrap, 60_000)?, topic, RECORDS).await?;
    ensure!(
        offsets == (0..RECORDS as i64).collect::<Vec<_>>(),
        "records acknowledged out of order or with gaps"
    );
    broker.sigterm(GRACE).await?;
    let dir = broker.data_dir().join(format!("{topic}-0"));
    ensure!(
        dir.join(".clean-shutdown").exists(),
        "no clean shutdown recorded in {}",
        dir.display()
    );
    Ok((broker, dir))
}

/// `topic`'s only partition is offline on `broker`: produce answers
/// KAFKA_STORAGE_ERROR (never a timeout, never an offset), Metadata shows no leader and
/// the replica offline, and the offline replicas gauge counts it.
async fn expect_offline(broker: &BrokerProcess, topic: &str) -> Result<()> {
    let conn = common::connection(&broker.bootstrap()).await?;
    let batch = common::encode_batch(&[common::BatchRecord::new("after the damage", 0)], None)?;
    let answer = common::produce_raw(&conn, topic, 0, -1, batch).await?;
    ensure!(
        answer.error_code == ResponseError::KafkaStorageError.code(),
        "produce to the damaged partition: {answer:?}"
    );
    let node = broker.node_id() as i32;
    let client = common::client(&broker.bootstrap()).await?;
    wait_for("Metadata to show the replica offline", DEADLINE, || async {
        let metadata = client.metadata(Some(&[topic])).await?;
        let p = metadata
            .topic(topic)
            .and_then(|t| t.partitions.first())
            .map(|p| (p.leader_id, p.offline_replicas.clone()));
        Ok(match p {
            Some((-1, offline)) if offline == [node] => Ok(()),
            other => Err(format!("leader and offline replicas: {other:?}")),
        })
    })
    .await?;
    let text = scrape(&broker.http_addr()).await?;
    let offline = metric(&text, "fjord_offline_replicas", &[]);
    ensure!(offline == Some(1.0), "fjord_offline_replicas {offline:?}");
    Ok(())
}

/// Prints the broker's logs when the test failed, then hands the result on.
fn with_logs(broker: &BrokerProcess, result: Result<()>) -> Result<()> {
    if result.is_err() {
        eprintln!("{}", broker.logs());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_segment_cut_in_half_costs_no_intact_segment_and_no_offset() -> Result<()> {
    let topic = unique_topic("damaged");
    let (mut broker, dir) = stopped_broker_with_records(&[], &topic).await?;
    let result = async {
        let logs = segments(&dir)?;
        ensure!(logs.len() >= 4, "only {} segments", logs.len());
        let first = &logs[0];
        let len = std::fs::metadata(first)?.len();
        // In the middle of a batch (batches are all alike here, so exactly half would be
        // a batch boundary).
        std::fs::OpenOptions::new()
            .write(true)
            .open(first)?
            .set_len(len / 2 + 17)?;
        let before: BTreeMap<PathBuf, Vec<u8>> = logs
            .iter()
            .map(|p| Ok((p.clone(), std::fs::read(p)?)))
            .collect::<Result<_>>()?;

        broker.restart().await?;
        let name = first.file_name().unwrap().to_string_lossy().into_owned();
        wait_for(
            "a log line naming the damaged file and position",
            DEADLINE,
            || {
                let found = broker
                    .logs()
                    .lines()
                    .find(|l| l.contains(&name) && l.contains("damaged at byte"))
                    .map(str::to_string)
                    .ok_or_else(|| "no such line yet".to_string());
                async move { Ok(found) }
            },
        )
        .await?;

        // The partition is offline here and nothing else holds its data: it is not
        // served (a new record could only reuse an offset), and says why.
        expect_offline(&broker, &topic).await?;
        // The broker's other partitions are served.
        let other = unique_topic("healthy");
        create_topic(&broker.bootstrap(), &other).await?;
        let fine = produce(&producer(&broker.bootstrap(), 30_000)?, &other, 1).await?;
        ensure!(fine == [0], "another topic on the same broker: {fine:?}");

        // No segment was deleted or lost a byte (the damaged one included: it is left
        // as found for the operator or the leader to repair).
        for (path, bytes) in &before {
            let now = std::fs::read(path)
                .with_context(|| format!("{} is gone after the restart", path.display()))?;
            ensure!(
                now.starts_with(bytes),
                "{} lost data after the restart: {} of {} bytes left",
                path.display(),
                now.len(),
                bytes.len()
            );
        }
        Ok(())
    }
    .await;
    with_logs(&broker, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_a_flipped_bit_in_a_rolled_segment() -> Result<()> {
    let topic = unique_topic("scrubbed");
    let (mut broker, dir) =
        stopped_broker_with_records(&["--log-scrub-io-max-bytes-per-second", "4194304"], &topic)
            .await?;
    let result = async {
        let logs = segments(&dir)?;
        ensure!(logs.len() >= 4, "only {} segments", logs.len());
        // Inside the first batch's records of a middle segment: the headers still tile
        // the file, so the clean restart trusts it without reading it.
        let middle = &logs[logs.len() / 2];
        let mut bytes = std::fs::read(middle)?;
        bytes[61 + 20] ^= 0x01;
        std::fs::write(middle, bytes)?;

        broker.restart().await?;
        let http = broker.http_addr();
        let partition = [("topic", topic.as_str()), ("partition", "0")];
        wait_for("the scrub to count the damage", DEADLINE, || {
            let http = http.clone();
            async move {
                let text = scrape(&http).await?;
                let damage = metric(&text, "fjord_log_damage_found_total", &partition);
                let verified = metric(&text, "fjord_log_scrub_verified_bytes_total", &[]);
                Ok(match (damage, verified) {
                    (Some(d), Some(v)) if d >= 1.0 && v > 0.0 => Ok(()),
                    other => Err(format!("damage, verified bytes: {other:?}")),
                })
            }
        })
        .await?;
        let name = middle.file_name().unwrap().to_string_lossy().into_owned();
        let logs = broker.logs();
        ensure!(
            logs.lines()
                .any(|l| l.contains("scrub found damaged log data")
                    && l.contains(&name)
                    && l.contains("position=0")),
            "no log line names {name} at position 0"
        );
        // Serving it would hand consumers a corrupt batch.
        expect_offline(&broker, &topic).await
    }
    .await;
    with_logs(&broker, result)
}
