//! min.insync.replicas is judged by the partition leader's state machine, for produce
//! and for the group coordinator's writes alike, on a real 5-broker cluster (voters
//! 1-3, so two brokers can die without the metadata quorum).
//!
//! A partition on brokers [1,4,5] with min.insync.replicas 2 loses brokers 4 and 5.
//! Requests that were waiting for them when the ISR shrank below the minimum are
//! answered NOT_ENOUGH_REPLICAS_AFTER_APPEND (the records are in the leader's log, but
//! not as safely as asked); requests that arrive after are refused with
//! NOT_ENOUGH_REPLICAS. Offset commits to a coordinator whose `__consumer_offsets`
//! partition is in the same state are not acknowledged either (Kafka's
//! COORDINATOR_NOT_AVAILABLE for both).

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use fjord_client::{Client, ClientConfig, Connection, NewTopic, ResponseError};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use common::{encode_batch, produce_raw, wait_for, BatchRecord};

const DEADLINE: Duration = Duration::from_secs(60);
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The replicas both partitions are moved to: the leader is a voter, the two
/// followers are not.
const REPLICAS: [i32; 3] = [1, 4, 5];

/// One OffsetCommit of `offset` for `topic`/0 by `group` (no group membership, as an
/// admin tool commits), answered by the coordinator on `conn`: its error code.
async fn commit(conn: &Connection, group: &str, topic: &str, offset: i64) -> Result<i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response = conn.send(&request).await?;
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("an OffsetCommit answer without the partition")
}

/// Waits until `topic`/0 has `REPLICAS` as replicas and ISR, led by the first.
async fn wait_placed(client: &Client, topic: &str) -> Result<()> {
    wait_for(
        &format!("{topic}/0 on {REPLICAS:?}, all in sync"),
        DEADLINE,
        || async {
            let metadata = client.metadata(Some(&[topic])).await?;
            let seen = metadata
                .topic(topic)
                .and_then(|t| t.partitions.first())
                .map(|p| (p.leader_id, p.replicas.clone(), p.isr.clone()));
            Ok(match seen {
                Some((leader, replicas, mut isr)) => {
                    isr.sort_unstable();
                    if leader == REPLICAS[0] && replicas == REPLICAS && isr == REPLICAS {
                        Ok(())
                    } else {
                        Err(format!(
                            "leader {leader}, replicas {replicas:?}, isr {isr:?}"
                        ))
                    }
                }
                None => Err("no partition 0".to_string()),
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_and_offset_commits_are_not_acknowledged_below_min_insync_replicas() -> Result<()>
{
    let mut cluster = Cluster::start(ClusterOptions {
        brokers: 5,
        voters: 3,
        replication_factor: 3,
        min_insync_replicas: 2,
        args: [
            "--broker-heartbeat-interval-ms=200",
            "--broker-session-timeout-ms=2000",
            "--replica-lag-time-max-ms=2000",
            "--offsets-topic-num-partitions=1",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        ..ClusterOptions::default()
    })
    .await?;
    cluster.wait_for_brokers(DEADLINE).await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;

    let topic = unique_topic("minisr");
    client
        .create_topic(
            NewTopic::with_assignments(&topic, vec![REPLICAS.to_vec()])
                .with_config("min.insync.replicas", "2"),
        )
        .await?;
    // The group's coordinator partition, moved onto the same three brokers.
    let group = unique_topic("group");
    client.find_coordinator(&group).await?;
    client
        .alter_partition_reassignment(OFFSETS_TOPIC, 0, Some(REPLICAS.to_vec()))
        .await?;
    wait_placed(&client, &topic).await?;
    wait_placed(&client, OFFSETS_TOPIC).await?;
    wait_for("the reassignment to finish", DEADLINE, || async {
        let moving = client.list_partition_reassignments().await?;
        Ok(if moving.is_empty() {
            Ok(())
        } else {
            Err(format!("{moving:?}"))
        })
    })
    .await?;
    let leader = cluster.broker(REPLICAS[0]).bootstrap();
    let conn = common::connection(&leader).await?;
    // Its own connection: a commit behind produce requests on one connection would
    // only be read once they are answered.
    let coordinator = common::connection(&leader).await?;
    ensure!(
        commit(&coordinator, &group, &topic, 1).await? == 0,
        "a commit with every replica in sync"
    );

    for follower in &REPLICAS[1..] {
        cluster.kill9(*follower).await?;
    }
    // Sent at once: the ISR is still [1,4,5] when these arrive, so they are appended
    // and wait for brokers that will never fetch again.
    let batch = |v: &'static str| encode_batch(&[BatchRecord::new(v, 1_700_000_000_000)], None);
    let (a, b, c, committed) = tokio::join!(
        produce_raw(&conn, &topic, 0, -1, batch("a")?),
        produce_raw(&conn, &topic, 0, -1, batch("b")?),
        produce_raw(&conn, &topic, 0, -1, batch("c")?),
        commit(&coordinator, &group, &topic, 2),
    );
    let waited: Vec<i16> = [a?, b?, c?].iter().map(|p| p.error_code).collect();
    println!("acks=all requests waiting while the ISR shrank: {waited:?}");
    ensure!(
        waited == vec![ResponseError::NotEnoughReplicasAfterAppend.code(); 3],
        "acks=all requests that waited while the ISR fell below 2 got {waited:?}"
    );
    let committed = committed?;
    ensure!(
        committed == ResponseError::CoordinatorNotAvailable.code(),
        "an offset commit that waited while the ISR fell below 2 got {committed}"
    );

    // Now below the minimum from the start: refused before anything is written.
    let arriving = produce_raw(&conn, &topic, 0, -1, batch("d")?).await?;
    ensure!(
        arriving.error_code == ResponseError::NotEnoughReplicas.code(),
        "acks=all with the ISR at 1: {arriving:?}"
    );
    let committed = commit(&coordinator, &group, &topic, 3).await?;
    ensure!(
        committed == ResponseError::CoordinatorNotAvailable.code(),
        "an offset commit with the ISR at 1 got {committed}"
    );
    // acks=1 asks only the leader.
    let one = produce_raw(&conn, &topic, 0, 1, batch("e")?).await?;
    ensure!(
        (one.error_code, one.base_offset) == (0, 3),
        "acks=1 with the ISR at 1: {one:?}"
    );
    Ok(())
}
