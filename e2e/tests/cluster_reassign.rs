//! Partition reassignment on a real 3-broker cluster: a replica moves to another
//! broker while the data stays readable, the old copy is deleted, and a broker that
//! still holds replicas (or still runs) cannot be unregistered until it is drained; a
//! metadata quorum voter cannot be unregistered at all.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{
    Client, ClientConfig, FetchOptions, NewTopic, ProduceOptions, ProduceRecord, ResponseError,
};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

const RECORDS: usize = 500;
const DEADLINE: Duration = Duration::from_secs(60);

async fn client(cluster: &Cluster) -> Result<Client> {
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    Ok(Client::connect(&bootstrap, ClientConfig::default()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_moves_to_another_broker_and_the_old_copy_goes() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let client = client(&cluster).await?;
    let topic = unique_topic("moves");
    client.create_topic(NewTopic::new(&topic, 1, 2)).await?;
    for i in 0..RECORDS {
        let record = ProduceRecord::new(Some(format!("k{i}")), format!("v{i}"));
        client
            .produce(&topic, 0, &[record], &ProduceOptions::default())
            .await
            .with_context(|| format!("producing record {i}"))?;
    }
    let before = partition(&client, &topic).await?;
    let newcomer = *cluster
        .node_ids()
        .iter()
        .find(|b| !before.replicas.contains(b))
        .context("a broker without a replica")?;
    let (kept, dropped) = (before.replicas[0], before.replicas[1]);
    let target = vec![newcomer, kept];
    println!("moving {topic}/0 from {:?} to {target:?}", before.replicas);
    client
        .alter_partition_reassignment(&topic, 0, Some(target.clone()))
        .await?;

    // Done when no reassignment is listed and the partition has exactly the target,
    // in sync, led by the preferred (first) replica.
    let started = Instant::now();
    loop {
        let pending = client.list_partition_reassignments().await?;
        let p = partition(&client, &topic).await?;
        let mut isr = p.isr.clone();
        isr.sort_unstable();
        let mut want = target.clone();
        want.sort_unstable();
        if pending.is_empty() && p.replicas == target && isr == want && p.leader_id == newcomer {
            break;
        }
        if started.elapsed() > DEADLINE {
            bail!("reassignment not done within {DEADLINE:?}: {p:?}, in progress {pending:?}");
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("reassignment done in {:?}", started.elapsed());

    // Every record is still there, served by the new leader.
    let fetched = client.fetch(&topic, 0, 0, &FetchOptions::default()).await?;
    let mut values = Vec::new();
    let mut offset = 0;
    let mut batch = fetched;
    loop {
        let from = offset;
        for r in batch.records.iter().filter(|r| r.offset >= from) {
            values
                .push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
            offset = r.offset + 1;
        }
        if offset >= batch.high_watermark {
            break;
        }
        batch = client
            .fetch(&topic, 0, offset, &FetchOptions::default())
            .await?;
    }
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("v{i}")).collect();
    ensure!(
        values == expected,
        "read back {} records, not the {RECORDS} written",
        values.len()
    );

    // The dropped replica's copy is deleted from its broker.
    let dir = cluster
        .broker(dropped)
        .data_dir()
        .join(format!("{topic}-0"));
    let started = Instant::now();
    while dir.exists() {
        ensure!(
            started.elapsed() < DEADLINE,
            "{} still exists on the broker that lost its replica",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copy = cluster
        .broker(newcomer)
        .data_dir()
        .join(format!("{topic}-0"));
    ensure!(
        copy.exists(),
        "{} missing on the new replica",
        copy.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_is_unregistered_only_once_stopped_and_drained() -> Result<()> {
    // Three voters and broker 4, a learner of the metadata quorum: voters cannot leave.
    let mut cluster = Cluster::start(ClusterOptions {
        brokers: 4,
        ..ClusterOptions::default()
    })
    .await?;
    let client = client(&cluster).await?;
    let topic = unique_topic("pinned");
    client.create_topic(NewTopic::new(&topic, 3, 4)).await?;

    let voter = client.unregister_broker(3).await;
    ensure!(
        voter
            .as_ref()
            .is_err_and(|e| e.to_string().contains("metadata quorum voter")),
        "unregistering a voter: {voter:?}"
    );

    let running = client.unregister_broker(4).await;
    let code = running.as_ref().err().and_then(|e| e.kafka());
    ensure!(
        code == Some(ResponseError::InvalidRequest),
        "unregistering a running broker: {running:?}"
    );

    cluster.sigterm(4, Duration::from_secs(30)).await?;
    // Wait until the controller has fenced it (it stopped heartbeating).
    let started = Instant::now();
    let holding = loop {
        match client.unregister_broker(4).await {
            Err(e) if e.to_string().contains("still holds replicas") => break e,
            other if started.elapsed() > DEADLINE => {
                bail!("unregistering a stopped broker that holds replicas: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    println!("refused as expected: {holding}");
    let meta = client.metadata(Some(&[topic.as_str()])).await?;
    let t = meta.topic(&topic).context("topic")?;
    ensure!(
        t.partitions.iter().all(|p| p.replicas.contains(&4)),
        "the refused unregistration changed the replicas: {t:?}"
    );

    // Drain it: every partition moves to the other three brokers. Then it can go.
    for p in &t.partitions {
        let target: Vec<i32> = p.replicas.iter().copied().filter(|&b| b != 4).collect();
        client
            .alter_partition_reassignment(&topic, p.partition, Some(target))
            .await?;
    }
    let started = Instant::now();
    loop {
        let meta = client.metadata(Some(&[topic.as_str()])).await?;
        let t = meta.topic(&topic).context("topic")?;
        if t.partitions.iter().all(|p| !p.replicas.contains(&4)) {
            break;
        }
        ensure!(started.elapsed() < DEADLINE, "broker 4 not drained: {t:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.unregister_broker(4).await?;
    let again = client.unregister_broker(4).await;
    ensure!(
        again.as_ref().err().and_then(|e| e.kafka()) == Some(ResponseError::BrokerIdNotRegistered),
        "broker 4 still registered: {again:?}"
    );
    println!("broker 4 drained and unregistered");
    Ok(())
}

async fn partition(client: &Client, topic: &str) -> Result<fjord_client::PartitionMetadata> {
    let meta = client.metadata(Some(&[topic])).await?;
    let t = meta.topic(topic).context("topic in metadata")?;
    t.partitions
        .iter()
        .find(|p| p.partition == 0)
        .cloned()
        .context("partition 0")
}
