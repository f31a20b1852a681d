//! What a client meets while a cluster starts. A broker opens its Kafka port only once
//! it has joined the cluster and caught up with the metadata log, and an admin request
//! is planned against everything the controller has decided: so the moment every
//! broker's port accepts connections, a topic with replication factor 3 can be
//! created, and Metadata lists all three brokers with a controller id among them.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{Client, ClientConfig, NewTopic};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

const DEADLINE: Duration = Duration::from_secs(60);
/// Fresh clusters started one after another: the race this guards against lost about
/// one try in three.
const ROUNDS: usize = 4;

/// Waits until `addr` accepts a TCP connection.
async fn wait_accepting(addr: &str, since: Instant) -> Result<Duration> {
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > DEADLINE {
            bail!("{addr} did not accept connections within {DEADLINE:?}");
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_3_topic_can_be_created_once_every_port_accepts() -> Result<()> {
    for round in 0..ROUNDS {
        let (cluster, started) = Cluster::spawn(ClusterOptions::default()).await?;
        let mut opened = Vec::new();
        for (id, since) in cluster.node_ids().into_iter().zip(started) {
            opened.push(wait_accepting(&cluster.broker(id).bootstrap(), since).await?);
        }
        let opened_at = Instant::now();
        // No retries of its own: the first answer counts.
        let first = cluster.broker(1).bootstrap();
        let client = Client::connect(
            &[first.as_str()],
            ClientConfig {
                leader_retries: 0,
                ..ClientConfig::default()
            },
        )
        .await?;
        let topic = unique_topic("early");
        let created = client.create_topic(NewTopic::new(&topic, 3, 3)).await;
        ensure!(
            created.is_ok(),
            "round {round}: ports open after {opened:?}; creating an RF=3 topic: {created:?}"
        );
        // Created through the controller; broker 1 learns of it from the metadata log.
        let metadata = loop {
            let metadata = client.metadata(Some(&[topic.as_str()])).await?;
            if metadata
                .topic(&topic)
                .is_some_and(|t| !t.partitions.is_empty())
            {
                break metadata;
            }
            ensure!(
                opened_at.elapsed() < DEADLINE,
                "round {round}: broker 1 never listed {topic}"
            );
            // Poll interval of a condition wait.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut listed: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
        listed.sort_unstable();
        ensure!(
            listed == [1, 2, 3],
            "round {round}: Metadata lists brokers {listed:?}"
        );
        ensure!(
            listed.contains(&metadata.controller_id),
            "round {round}: controller id {} is not a listed broker {listed:?}",
            metadata.controller_id
        );
        let partitions = &metadata
            .topic(&topic)
            .context("the new topic in Metadata")?
            .partitions;
        ensure!(
            partitions.len() == 3 && partitions.iter().all(|p| p.replicas.len() == 3),
            "round {round}: {partitions:?}"
        );
        println!("round {round}: ports open after {opened:?}, RF=3 topic created");
    }
    Ok(())
}
