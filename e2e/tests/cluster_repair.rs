//! A replica whose log is damaged is repaired from the others, on a real 3-broker
//! cluster: broker 2 holds a partition (replicas [2, 1, 3], so it is the preferred
//! leader) whose log is damaged while it is stopped — a rolled segment cut in half, or
//! a flipped bit the background scrub finds. It takes the replica offline, the
//! controller moves the leadership and takes it out of the ISR, broker 2 cuts its log
//! at the damage and fetches the rest from the new leader, rejoins the ISR and leads
//! again; every acknowledged record then reads back from it, in order.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::{wait_for, DEADLINE};
use fjord_client::{Client, ClientConfig, NewTopic};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const RECORDS: usize = 3_000;
const DAMAGED: i32 = 2;
const GRACE: Duration = Duration::from_secs(30);

fn value(i: usize) -> String {
    format!("{i:05}-{}", "x".repeat(100))
}

/// A cluster and a topic on [2, 1, 3] holding `RECORDS` acknowledged records in several
/// segments, all three replicas in sync; broker 2 stopped cleanly. Returns broker 2's
/// segment files.
async fn cluster_with_a_stopped_replica(
    scrub: bool,
) -> Result<(Cluster, Client, String, Vec<PathBuf>)> {
    let mut args = vec![
        "--broker-heartbeat-interval-ms=200",
        "--broker-session-timeout-ms=2000",
        "--replica-lag-time-max-ms=2000",
    ];
    if scrub {
        args.push("--log-scrub-io-max-bytes-per-second=4194304");
    }
    let cluster = Cluster::start(ClusterOptions {
        args: args.into_iter().map(String::from).collect(),
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap = cluster.bootstrap();
    let client = Client::connect(
        &bootstrap.split(',').collect::<Vec<_>>(),
        ClientConfig::default(),
    )
    .await?;
    let topic = unique_topic("repair");
    client
        .create_topic(
            NewTopic::with_assignments(&topic, vec![vec![DAMAGED, 1, 3]])
                .with_config("segment.bytes", "65536"),
        )
        .await?;
    let producer: FutureProducer = RdConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .create()?;
    // Sent at once (in order, so they land in order), answered as they come.
    let sends: Vec<_> = (0..RECORDS)
        .map(|i| {
            let v = value(i);
            let delivery = producer.send_result(FutureRecord::<(), _>::to(&topic).payload(&v));
            delivery.map_err(|(e, _)| e)
        })
        .collect::<Result<_, _>>()?;
    let mut offsets = Vec::with_capacity(RECORDS);
    for delivery in sends {
        let delivered = delivery.await?.map_err(|(e, _)| e)?;
        offsets.push(delivered.offset);
    }
    ensure!(
        offsets == (0..RECORDS as i64).collect::<Vec<_>>(),
        "acknowledged out of order"
    );
    let mut cluster = cluster;
    cluster
        .wait_for_leader(&topic, 0, DEADLINE, "broker 2 with 3 in sync", |l| {
            l.node_id == DAMAGED && l.isr.len() == 3
        })
        .await?;
    cluster.sigterm(DAMAGED, GRACE).await?;
    let dir = cluster
        .broker(DAMAGED)
        .data_dir()
        .join(format!("{topic}-0"));
    let segments = segment_files(&dir)?;
    ensure!(segments.len() >= 4, "only {} segments", segments.len());
    Ok((cluster, client, topic, segments))
}

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "log"));
    files.sort();
    Ok(files)
}

/// After the restart: broker 2 names the damage, is repaired and leads again with
/// every record.
async fn expect_repaired(cluster: &mut Cluster, client: &Client, topic: &str) -> Result<()> {
    // The damage may be found after broker 2 leads again (a caught-up replica rejoins
    // the ISR at once and takes back its preferred leadership): the scrub then takes the
    // partition offline here, leadership moves, and the cut log is fetched back.
    wait_for("broker 2 saying it cut its log", DEADLINE, || {
        let said = cluster
            .broker(DAMAGED)
            .logs()
            .contains("fetching the rest from the leader");
        std::future::ready(Ok(if said {
            Ok(())
        } else {
            Err("not yet".to_string())
        }))
    })
    .await?;
    cluster
        .wait_for_leader(topic, 0, DEADLINE, "broker 2 again, 3 in sync", |l| {
            l.node_id == DAMAGED && l.isr.len() == 3
        })
        .await?;
    let metadata = client.metadata(Some(&[topic])).await?;
    let offline = metadata
        .topic(topic)
        .and_then(|t| t.partitions.first())
        .map(|p| p.offline_replicas.clone());
    ensure!(offline == Some(vec![]), "offline replicas: {offline:?}");

    // Read everything back from broker 2, the leader.
    let consumer: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", cluster.broker(DAMAGED).bootstrap())
        .set("group.id", unique_topic("check"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut read = Vec::with_capacity(RECORDS);
    wait_for("every record read back", DEADLINE, || {
        while let Some(message) = consumer.poll(Duration::from_millis(100)) {
            match message {
                Ok(m) => read.push((
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                )),
                Err(e) => return std::future::ready(Err(e.into())),
            }
        }
        let done = read.len() >= RECORDS;
        std::future::ready(Ok(if done {
            Ok(())
        } else {
            Err(format!("{} of {RECORDS}", read.len()))
        }))
    })
    .await?;
    for (i, (offset, v)) in read.iter().enumerate() {
        ensure!(
            (*offset, v.as_str()) == (i as i64, value(i).as_str()),
            "record {i} read back as {offset}: {v:.20}"
        );
    }
    Ok(())
}

fn with_logs(cluster: &Cluster, result: Result<()>) -> Result<()> {
    if result.is_err() {
        eprintln!("{}", cluster.broker(DAMAGED).logs());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_in_half_is_repaired_from_the_leader() -> Result<()> {
    let (mut cluster, client, topic, segments) = cluster_with_a_stopped_replica(false).await?;
    let result = async {
        let first = &segments[0];
        let len = std::fs::metadata(first)?.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(first)?
            .set_len(len / 2 + 17)?;
        cluster.restart(DAMAGED).await?;
        expect_repaired(&mut cluster, &client, &topic).await
    }
    .await;
    with_logs(&cluster, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_flipped_bit_is_found_by_the_scrub_and_repaired() -> Result<()> {
    let (mut cluster, client, topic, segments) = cluster_with_a_stopped_replica(true).await?;
    let result = async {
        // Inside a record of a middle segment: a clean restart trusts it unread.
        let middle = &segments[segments.len() / 2];
        let mut bytes = std::fs::read(middle)?;
        bytes[61 + 20] ^= 0x01;
        std::fs::write(middle, bytes)?;
        cluster.restart(DAMAGED).await?;
        expect_repaired(&mut cluster, &client, &topic).await
    }
    .await;
    with_logs(&cluster, result)
}
