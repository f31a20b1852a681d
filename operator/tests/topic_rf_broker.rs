//! A Topic's replication-factor change against a real 3-broker `fjord` cluster (spawned
//! by the e2e harness): the steps of [`fjord_operator::topic_rf`] driven by what the
//! brokers report, their batches sent as partition reassignments, as the Topic
//! controller combines them. A topic with data goes from 1 to 3 replicas, then to 2;
//! each change ends with every partition's replicas in sync and every record readable.
//!
//! Needs the broker binary: `cargo build -p fjord-broker --bin fjord`, then
//! `FJORD_BIN=$CARGO_TARGET_DIR/debug/fjord cargo test -p fjord-operator --test topic_rf_broker`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use fjord_client::{Client, ClientConfig, FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::cluster::{Cluster, ClusterOptions};
use fjord_operator::rebalance::Broker;
use fjord_operator::scale::BrokerState;
use fjord_operator::topic_rf::{step, Action, Observed, PartitionState};
use fjord_operator::types::TopicReassignmentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

const TOPIC: &str = "rf";
const PARTITIONS: i32 = 12;
const RECORDS_PER_PARTITION: usize = 20;

/// Runs steps until the change to `want` finishes; returns the final status and the
/// number of batches sent.
async fn change(
    client: &Client,
    want: i32,
    mut status: Option<TopicReassignmentStatus>,
) -> Result<(TopicReassignmentStatus, usize)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut batches = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "change to {want} replicas: {status:?}"
        );
        let md = client.metadata(None).await?;
        let state = BrokerState::from_metadata(&md, &client.list_partition_reassignments().await?);
        let topic = md.topic(TOPIC).expect("topic listed");
        let partitions: Vec<PartitionState> = topic
            .partitions
            .iter()
            .map(|p| PartitionState {
                partition: p.partition,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: (p.leader_id >= 0).then_some(p.leader_id),
            })
            .collect();
        let brokers: Vec<Broker> = state
            .registered
            .keys()
            .map(|&id| Broker { id, rack: None })
            .collect();
        let load: BTreeMap<i32, usize> = state
            .replicas_per_broker
            .iter()
            .map(|(&b, &n)| (b, n as usize))
            .collect();
        let reassigning: BTreeSet<i32> = state
            .reassigning
            .iter()
            .filter(|(t, _)| t == TOPIC)
            .map(|(_, p)| *p)
            .collect();
        let observed = Observed {
            topic: TOPIC,
            want,
            min_insync: 1,
            brokers: &brokers,
            load: &load,
            partitions: &partitions,
            reassigning: &reassigning,
        };
        let (next, action) = step(status.as_ref(), observed, &Time(Timestamp::now()));
        status = next;
        match action {
            Action::Submit(moves) => {
                batches += 1;
                for m in moves {
                    client
                        .alter_partition_reassignment(&m.topic, m.partition, Some(m.replicas))
                        .await?;
                }
            }
            Action::Finished => return Ok((status.expect("a finished run"), batches)),
            Action::Wait => {}
            other => bail!("change to {want} replicas: unexpected {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every partition has `rf` replicas, all in sync, and its records read back.
async fn check(client: &Client, rf: usize) -> Result<()> {
    let md = client.metadata(Some(&[TOPIC])).await?;
    for p in &md.topic(TOPIC).expect("topic listed").partitions {
        ensure!(
            p.replicas.len() == rf && p.isr.len() == rf,
            "partition {}: replicas {:?}, isr {:?}, want {rf} in sync",
            p.partition,
            p.replicas,
            p.isr
        );
        let got = client
            .fetch(TOPIC, p.partition, 0, &FetchOptions::default())
            .await?
            .records
            .len();
        ensure!(
            got == RECORDS_PER_PARTITION,
            "partition {} read {got} records",
            p.partition
        );
    }
    Ok(())
}

#[tokio::test]
async fn replication_factor_grows_and_shrinks_with_data() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        replication_factor: 1,
        min_insync_replicas: 1,
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap = cluster.bootstrap();
    let seeds: Vec<&str> = bootstrap.split(',').collect();
    let client = Client::connect(&seeds, ClientConfig::default()).await?;
    client
        .create_topic(NewTopic::new(TOPIC, PARTITIONS, 1))
        .await?;
    for p in 0..PARTITIONS {
        let records: Vec<ProduceRecord> = (0..RECORDS_PER_PARTITION)
            .map(|i| ProduceRecord::new(Some("k"), format!("{p}-{i}")))
            .collect();
        client
            .produce(TOPIC, p, &records, &ProduceOptions::default())
            .await?;
    }
    check(&client, 1).await?;

    let (done, batches) = change(&client, 3, None).await?;
    assert_eq!(done.state, "Done");
    assert_eq!(done.partitions_moved, PARTITIONS);
    assert_eq!(done.partitions_to_move, PARTITIONS);
    assert!(
        batches >= 2,
        "{PARTITIONS} partitions in one batch: {batches}"
    );
    check(&client, 3).await?;

    let (done, _) = change(&client, 2, Some(done)).await?;
    assert_eq!(
        (done.replication_factor, done.partitions_moved),
        (2, PARTITIONS)
    );
    check(&client, 2).await?;
    Ok(())
}
