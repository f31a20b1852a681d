//! DeleteRecords on a real 3-broker cluster: the leader trims the partition and answers
//! once every replica on a live broker has the new start (a stopped follower makes it
//! time out, the start moved all the same); after the leader is killed, the new leader serves
//! nothing below the new start either.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{
    Client, ClientConfig, Connection, FetchOptions, NewTopic, OffsetSpec, ProduceOptions,
    ProduceRecord, ResponseError,
};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use common::wait_for;

const DEADLINE: Duration = Duration::from_secs(60);

/// Three brokers (short heartbeats, so a killed leader is replaced quickly), an RF-3
/// topic of one partition holding 100 records in batches of 10, all in sync; returns the
/// cluster, a client, the topic and its leader.
async fn cluster_with_records(prefix: &str) -> Result<(Cluster, Client, String, i32)> {
    let cluster = Cluster::start(ClusterOptions {
        args: vec![
            "--broker-heartbeat-interval-ms=200".into(),
            "--broker-session-timeout-ms=2000".into(),
        ],
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    let topic = unique_topic(prefix);
    client.create_topic(NewTopic::new(&topic, 1, 3)).await?;
    for batch in 0..10 {
        let records: Vec<ProduceRecord> = (0..10)
            .map(|i| ProduceRecord::new(None::<String>, format!("v{}", batch * 10 + i)))
            .collect();
        client
            .produce(&topic, 0, &records, &ProduceOptions::default())
            .await?;
    }
    let leader = cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync", |l| l.isr.len() == 3)
        .await?;
    Ok((cluster, client, topic, leader.node_id))
}

/// DeleteRecords of partition 0 before `offset`, sent to broker `node_id`: (error code,
/// low watermark).
async fn delete_records(
    cluster: &Cluster,
    node_id: i32,
    topic: &str,
    offset: i64,
    timeout_ms: i32,
) -> Result<(i16, i64)> {
    let conn = Connection::connect(
        &cluster.broker(node_id).bootstrap(),
        &ClientConfig::default(),
    )
    .await?;
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let response = conn.send(&request).await?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("DeleteRecords answered no partition")?;
    Ok((p.error_code, p.low_watermark))
}

/// The earliest offset and what a fetch below and at it answer, as a consumer of the
/// current leader sees them (retrying while leadership moves).
async fn expect_trimmed_at(client: &Client, topic: &str, start: i64) -> Result<()> {
    wait_for("the earliest offset", DEADLINE, || async {
        Ok(
            match client.list_offsets(topic, 0, OffsetSpec::Earliest).await {
                Ok(o) if o.offset == start => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
    })
    .await?;
    match client
        .fetch(topic, 0, start - 1, &FetchOptions::default())
        .await
    {
        Err(e) if e.kafka() == Some(ResponseError::OffsetOutOfRange) => {}
        other => bail!("a fetch below the log start {start} answered {other:?}"),
    }
    let fetched = client
        .fetch(topic, 0, start, &FetchOptions::default())
        .await?;
    ensure!(
        fetched.log_start_offset == start,
        "log start {} in the fetch answer, not {start}",
        fetched.log_start_offset
    );
    let first = fetched
        .records
        .first()
        .context("no records at the log start")?;
    ensure!(
        first.offset == start && first.value.as_deref() == Some(format!("v{start}").as_bytes()),
        "first record at the log start: {first:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_nothing_below_the_deleted_records() -> Result<()> {
    let (mut cluster, client, topic, leader) = cluster_with_records("delete-records").await?;
    // Offset 55 is inside the batch of 50-59: the start may fall inside a batch.
    let (code, low_watermark) = delete_records(&cluster, leader, &topic, 55, 30_000).await?;
    ensure!(
        (code, low_watermark) == (0, 55),
        "DeleteRecords answered code {code}, low watermark {low_watermark}"
    );
    expect_trimmed_at(&client, &topic, 55).await?;

    // The answer came once every replica had the new start: whichever of them leads
    // next serves nothing below it.
    cluster.kill9(leader).await?;
    let next = cluster
        .wait_for_leader(&topic, 0, DEADLINE, "on another broker", |l| {
            l.node_id != leader
        })
        .await?;
    println!("leader {leader} killed, broker {} leads", next.node_id);
    expect_trimmed_at(&client, &topic, 55).await?;

    // The old leader restarts with its start where it was (it is on disk) and catches up.
    // Asked again, the leader answers once every replica, the restarted one included,
    // reports a start of at least 55.
    cluster.restart(leader).await?;
    // Leadership may move again while the restarted broker rejoins (back to the
    // preferred leader): a broker that no longer leads answers NOT_LEADER_OR_FOLLOWER,
    // and the request goes to the leader of the moment, as a client's retry would.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let now = cluster
            .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync again", |l| {
                l.isr.len() == 3
            })
            .await?;
        let (code, low_watermark) =
            delete_records(&cluster, now.node_id, &topic, 55, 30_000).await?;
        if code == ResponseError::NotLeaderOrFollower.code() && std::time::Instant::now() < deadline
        {
            continue;
        }
        ensure!(
            (code, low_watermark) == (0, 55),
            "after the restart: code {code}, low watermark {low_watermark}"
        );
        return Ok(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_waits_for_the_live_replicas() -> Result<()> {
    let (mut cluster, client, topic, leader) = cluster_with_records("delete-wait").await?;
    let follower = cluster
        .node_ids()
        .into_iter()
        .find(|&b| b != leader)
        .context("a follower")?;
    // Stopped, it is a live broker until its session times out (2 s) and never learns
    // the new start: the request (1 s) times out, but the leader's start has moved.
    cluster.sigstop(follower)?;
    let (code, low_watermark) = delete_records(&cluster, leader, &topic, 30, 1_000).await?;
    ensure!(
        code == ResponseError::RequestTimedOut.code() && low_watermark < 30,
        "with a follower stopped: code {code}, low watermark {low_watermark}"
    );
    expect_trimmed_at(&client, &topic, 30).await?;

    // Resumed, it takes the start from its next fetch answer; asked again, the leader
    // answers as soon as it has.
    cluster.sigcont(follower)?;
    let (code, low_watermark) = delete_records(&cluster, leader, &topic, 30, 30_000).await?;
    ensure!(
        (code, low_watermark) == (0, 30),
        "after the follower resumed: code {code}, low watermark {low_watermark}"
    );
    // Past the high watermark is refused, -1 means the high watermark itself.
    let (code, _) = delete_records(&cluster, leader, &topic, 101, 30_000).await?;
    ensure!(
        code == ResponseError::OffsetOutOfRange.code(),
        "offset 101 of 100: code {code}"
    );
    let (code, low_watermark) = delete_records(&cluster, leader, &topic, -1, 30_000).await?;
    ensure!(
        (code, low_watermark) == (0, 100),
        "offset -1: code {code}, low watermark {low_watermark}"
    );
    // A broker that does not lead the partition says so.
    let (code, _) = delete_records(&cluster, follower, &topic, 100, 30_000).await?;
    ensure!(
        code == ResponseError::NotLeaderOrFollower.code(),
        "at a follower: code {code}"
    );
    Ok(())
}
