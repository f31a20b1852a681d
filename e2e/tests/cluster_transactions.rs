//! Transactions (KIP-98) with librdkafka's transactional producer against real broker
//! processes:
//!
//! - on a 3-broker cluster, the transaction coordinator is killed with SIGKILL in the
//!   middle of a transaction: the commit goes through the coordinator that takes over
//!   (it reads the transaction back from `__transaction_state`), and a read_committed
//!   consumer reads every committed record once and nothing of an aborted transaction;
//! - a transaction left open past its transaction.timeout.ms is aborted by the
//!   coordinator: read_committed consumers move past it without its records, and the
//!   producer that left it open can no longer commit (its epoch was bumped);
//! - a second producer with the same transactional id fences the first: the first's
//!   open transaction is aborted and its commit fails.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::{wait_for, DEADLINE};
use fjord_client::{Client, ClientConfig as FjordConfig, NewTopic};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess, Cluster, ClusterOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Bound on a failover and on the coordinator's takeover.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Partitions of `__transaction_state` here: few, so the cluster creates it quickly.
const TXN_PARTITIONS: i32 = 3;
/// What makes a cluster fence a silent broker in about two seconds.
const CLUSTER_ARGS: [&str; 4] = [
    "--broker-heartbeat-interval-ms=200",
    "--broker-session-timeout-ms=2000",
    "--replica-lag-time-max-ms=2000",
    "--transaction-state-log-num-partitions=3",
];

/// Kafka's coordinator partition of a transactional id: abs(String.hashCode) % n.
fn coordinator_partition(transactional_id: &str, n: i32) -> i32 {
    let h = transactional_id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % n
}

fn transactional_producer(bootstrap: &str, id: &str, timeout_ms: u32) -> Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        // librdkafka requires it no longer than the transaction's timeout.
        .set("message.timeout.ms", timeout_ms.min(60_000).to_string())
        .create()?;
    producer.init_transactions(DEADLINE)?;
    Ok(producer)
}

/// Send `values` to `topic` (round robin over `partitions`) and wait for each delivery.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    values: &[String],
) -> Result<()> {
    for (i, v) in values.iter().enumerate() {
        let partition = i32::try_from(i)? % partitions;
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(v.as_str()),
                DEADLINE,
            )
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("sending {v}"))?;
    }
    Ok(())
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Everything a consumer at `isolation` reads from the start of `topic` until `done`
/// holds for what it has read (values with their counts).
async fn read_until(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    what: &str,
    done: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> Result<BTreeMap<String, usize>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("txn-check"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut read: BTreeMap<String, usize> = BTreeMap::new();
    wait_for(what, FAILOVER_TIMEOUT, || {
        while let Some(message) = consumer.poll(Duration::from_millis(100)) {
            match message {
                Ok(m) => {
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    *read.entry(v).or_default() += 1;
                }
                Err(e) => return std::future::ready(Err(e.into())),
            }
        }
        let result = if done(&read) {
            Ok(read.clone())
        } else {
            Err(format!("{} distinct values read", read.len()))
        };
        std::future::ready(Ok(result))
    })
    .await
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, rf: i16) -> Result<()> {
    let brokers: Vec<String> = bootstrap.split(',').map(String::from).collect();
    let client = Client::connect(&brokers, FjordConfig::default()).await?;
    client
        .create_topic(NewTopic::new(topic, partitions, rf))
        .await
        .with_context(|| format!("creating {topic}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_survives_the_coordinator_killed_mid_transaction() -> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions {
        args: CLUSTER_ARGS.map(String::from).into(),
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("txn-failover");
    create_topic(&bootstrap, &topic, 3, 3).await?;
    let id = unique_topic("txn-id");
    let producer = transactional_producer(&bootstrap, &id, 60_000)?;

    // A first transaction commits and a second aborts, with every broker up.
    producer.begin_transaction()?;
    send_all(&producer, &topic, 3, &values("first", 30)).await?;
    producer.commit_transaction(DEADLINE)?;
    producer.begin_transaction()?;
    let aborted = values("aborted", 30);
    send_all(&producer, &topic, 3, &aborted).await?;
    producer.abort_transaction(DEADLINE)?;

    // The third is open when its coordinator dies.
    producer.begin_transaction()?;
    send_all(&producer, &topic, 3, &values("across", 30)).await?;
    let state_partition = coordinator_partition(&id, TXN_PARTITIONS);
    let coordinator = cluster
        .wait_for_leader(
            "__transaction_state",
            state_partition,
            FAILOVER_TIMEOUT,
            "of the transaction's coordinator partition",
            |_| true,
        )
        .await?;
    cluster.kill9(coordinator.node_id).await?;
    producer
        .commit_transaction(FAILOVER_TIMEOUT)
        .context("committing through the coordinator that took over")?;
    producer.begin_transaction()?;
    send_all(&producer, &topic, 3, &values("after", 30)).await?;
    producer.commit_transaction(DEADLINE)?;

    let expected: Vec<String> = ["first", "across", "after"]
        .iter()
        .flat_map(|p| values(p, 30))
        .collect();
    let survivors = cluster
        .node_ids()
        .into_iter()
        .filter(|n| *n != coordinator.node_id)
        .map(|n| cluster.broker(n).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let read = read_until(
        &survivors,
        &topic,
        3,
        "read_committed",
        "every committed record",
        |r| expected.iter().all(|v| r.contains_key(v)),
    )
    .await?;
    for (v, n) in &read {
        ensure!(*n == 1, "{v} read {n} times");
        ensure!(
            !v.starts_with("aborted"),
            "{v}, of an aborted transaction, was read"
        );
    }
    ensure!(
        read.len() == expected.len(),
        "read {} values, expected {}",
        read.len(),
        expected.len()
    );
    // The aborted records are in the log: a read_uncommitted consumer sees them.
    read_until(
        &survivors,
        &topic,
        3,
        "read_uncommitted",
        "the aborted records",
        |r| aborted.iter().all(|v| r.contains_key(v)),
    )
    .await?;
    cluster.restart(coordinator.node_id).await?;
    Ok(())
}

async fn one_broker() -> Result<BrokerProcess> {
    BrokerProcess::start(BrokerOptions {
        args: vec!["--transaction-state-log-num-partitions=3".into()],
        ..BrokerOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() -> Result<()> {
    let broker = one_broker().await?;
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("txn-timeout");
    create_topic(&bootstrap, &topic, 1, 1).await?;
    let zombie = transactional_producer(&bootstrap, &unique_topic("txn-id"), 2_000)?;
    zombie.begin_transaction()?;
    let left_open = values("left-open", 5);
    send_all(&zombie, &topic, 1, &left_open).await?;

    // A record written after the open transaction becomes readable at read_committed
    // only once the transaction ends: the coordinator's abort ends it.
    let plain: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    send_all(&plain, &topic, 1, &["later".to_string()]).await?;
    let read = read_until(
        &bootstrap,
        &topic,
        1,
        "read_committed",
        "the record after the timed-out transaction",
        |r| r.contains_key("later"),
    )
    .await?;
    for v in &left_open {
        ensure!(
            !read.contains_key(v),
            "{v}, of the timed-out transaction, was read"
        );
    }
    ensure!(
        zombie.commit_transaction(DEADLINE).is_err(),
        "the producer of the timed-out transaction committed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() -> Result<()> {
    let broker = one_broker().await?;
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("txn-fence");
    create_topic(&bootstrap, &topic, 1, 1).await?;
    let id = unique_topic("txn-id");
    let first = transactional_producer(&bootstrap, &id, 60_000)?;
    first.begin_transaction()?;
    let fenced = values("fenced", 5);
    send_all(&first, &topic, 1, &fenced).await?;

    let second = transactional_producer(&bootstrap, &id, 60_000)?;
    second.begin_transaction()?;
    let kept = values("kept", 5);
    send_all(&second, &topic, 1, &kept).await?;
    second.commit_transaction(DEADLINE)?;
    ensure!(
        first.commit_transaction(DEADLINE).is_err(),
        "the fenced producer committed"
    );

    let read = read_until(
        &bootstrap,
        &topic,
        1,
        "read_committed",
        "the second producer's records",
        |r| kept.iter().all(|v| r.contains_key(v)),
    )
    .await?;
    for v in &fenced {
        ensure!(
            !read.contains_key(v),
            "{v}, of the fenced producer, was read"
        );
    }
    Ok(())
}
