//! acks=all against min.insync.replicas on a real 3-broker cluster: with fewer in-sync
//! replicas than the topic asks for, acks=all writes are refused with
//! NOT_ENOUGH_REPLICAS (nothing half-acknowledged) while acks=1 writes go on; once the
//! replica is back in sync, acks=all works again. And group coordination moves with
//! the leadership of `__consumer_offsets`, committed offsets included, and that topic
//! is replicated on offsets.topic.replication.factor brokers whatever
//! default.replication.factor says.

mod common;

use std::pin::pin;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{
    Client, ClientConfig, ConfigResource, NewTopic, ProduceOptions, ProduceRecord, ResponseError,
};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

use bytes::BytesMut;
use common::{
    encode_batch, metric, produce_raw, produce_request, raw_frame, read_answer, scrape, wait_for,
    Answer, BatchRecord,
};
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;

const DEADLINE: Duration = Duration::from_secs(60);

/// Three brokers with short heartbeat and session timeouts (plus `extra` flags), and a
/// client bootstrapped from all of them.
async fn cluster(extra: &[&str]) -> Result<(Cluster, Client)> {
    cluster_with(ClusterOptions::default(), extra).await
}

/// [`cluster`] from `options` rather than the harness's defaults.
async fn cluster_with(options: ClusterOptions, extra: &[&str]) -> Result<(Cluster, Client)> {
    let mut args = vec![
        "--broker-heartbeat-interval-ms=200",
        "--broker-session-timeout-ms=2000",
    ];
    args.extend_from_slice(extra);
    let cluster = Cluster::start(ClusterOptions {
        args: args.into_iter().map(String::from).collect(),
        ..options
    })
    .await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    Ok((cluster, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_needs_min_insync_replicas_and_acks_1_does_not() -> Result<()> {
    let (mut cluster, client) = cluster(&["--replica-lag-time-max-ms=2000"]).await?;
    let topic = unique_topic("acks");
    client
        .create_topic(NewTopic::new(&topic, 1, 3).with_config("min.insync.replicas", "3"))
        .await?;
    let all = ProduceOptions::default();
    let one = ProduceOptions {
        acks: 1,
        ..ProduceOptions::default()
    };
    let record = |v: &str| [ProduceRecord::new(None::<String>, v.to_string())];
    client.produce(&topic, 0, &record("all-1"), &all).await?;

    let leader = cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync", |l| l.isr.len() == 3)
        .await?;
    let follower = other_broker(&cluster, leader.node_id)?;
    cluster.kill9(follower).await?;
    cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 2 in sync", |l| l.isr.len() == 2)
        .await?;

    // Below min.insync.replicas: refused, every time, with the retriable code.
    let started = Instant::now();
    loop {
        match client.produce(&topic, 0, &record("all-2"), &all).await {
            Err(e) if e.kafka() == Some(ResponseError::NotEnoughReplicas) => break,
            other if started.elapsed() > DEADLINE => {
                bail!("acks=all with 2 of 3 required replicas in sync: {other:?}")
            }
            // A leader change in between (the killed broker may have led) is retried.
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let kept = client.produce(&topic, 0, &record("one-1"), &one).await?;
    println!(
        "acks=1 appended at {} while acks=all is refused",
        kept.base_offset
    );

    cluster.restart(follower).await?;
    cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync again", |l| {
            l.isr.len() == 3
        })
        .await?;
    let again = client.produce(&topic, 0, &record("all-3"), &all).await?;
    ensure!(
        again.base_offset > kept.base_offset,
        "acks=all after recovery at {} (acks=1 write at {})",
        again.base_offset,
        kept.base_offset
    );
    Ok(())
}

/// The group coordinator is the leader of the group's `__consumer_offsets` partition:
/// when its broker dies, the new leader rebuilds the group's committed offsets from
/// the replicated partition and answers for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_coordinator_serves_the_committed_offsets() -> Result<()> {
    let (mut cluster, client) = cluster(&["--offsets-topic-num-partitions=3"]).await?;
    let topic = unique_topic("committed");
    client.create_topic(NewTopic::new(&topic, 2, 3)).await?;
    let group = unique_topic("group");
    let offsets = vec![(topic.clone(), 0, 17), (topic.clone(), 1, 42)];
    client.commit_offsets(&group, &offsets).await?;
    ensure!(
        client.fetch_offsets(&group).await? == offsets,
        "committed offsets read back"
    );

    let old = client.find_coordinator(&group).await?;
    cluster.kill9(old.node_id).await?;
    let started = Instant::now();
    let new = loop {
        match client.find_coordinator(&group).await {
            Ok(c) if c.node_id != old.node_id => break c,
            other if started.elapsed() > DEADLINE => {
                bail!(
                    "no new coordinator for {group} after broker {} died: {other:?}",
                    old.node_id
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let read = client.fetch_offsets(&group).await?;
    println!(
        "coordinator of {group}: broker {} -> {} in {:?}, offsets {read:?}",
        old.node_id,
        new.node_id,
        started.elapsed()
    );
    ensure!(
        read == offsets,
        "the new coordinator answers {read:?}, not {offsets:?}"
    );
    Ok(())
}

/// A broker of `cluster` other than `leader`: with RF 3 on 3 brokers, a follower.
fn other_broker(cluster: &Cluster, leader: i32) -> Result<i32> {
    cluster
        .node_ids()
        .into_iter()
        .find(|&b| b != leader)
        .context("a follower")
}

/// A 3-broker cluster with an RF-3 topic whose partition 0 has a follower stopped
/// (SIGSTOP): it stays in the ISR (replica.lag.time.max.ms is 30 s), so acks=all
/// writes wait for it. Returns the cluster, the topic, its leader and that follower.
async fn follower_stopped(prefix: &str) -> Result<(Cluster, String, i32, i32)> {
    let (mut cluster, client) = cluster(&[]).await?;
    let topic = unique_topic(prefix);
    client.create_topic(NewTopic::new(&topic, 1, 3)).await?;
    let leader = cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync", |l| l.isr.len() == 3)
        .await?;
    let follower = other_broker(&cluster, leader.node_id)?;
    cluster.sigstop(follower)?;
    Ok((cluster, topic, leader.node_id, follower))
}

/// Waits until the broker serving metrics at `http` has appended `count` records to
/// `topic` (its messages-in counter).
async fn messages_in(http: &str, topic: &str, count: u32, timeout: Duration) -> Result<()> {
    wait_for("records in the leader's log", timeout, || async {
        let text = scrape(http).await?;
        let messages = metric(&text, "fjord_messages_in_total", &[("topic", topic)]);
        Ok(if messages == Some(f64::from(count)) {
            Ok(())
        } else {
            Err(format!("messages in: {messages:?}, expected {count}"))
        })
    })
    .await
}

/// Produce requests are pipelined on a connection: while an acks=all request waits for
/// a follower that has stopped, the next request on the same connection is appended at
/// once instead of waiting behind it; both are answered, in order, once the follower
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_requests_on_one_connection_are_appended_while_earlier_ones_wait() -> Result<()> {
    let (mut cluster, topic, leader, follower) = follower_stopped("pipeline").await?;
    let broker = cluster.broker(leader);
    let conn = common::connection(&broker.bootstrap()).await?;
    let http = broker.http_addr();
    let batch =
        |value: &'static str| encode_batch(&[BatchRecord::new(value, 1_700_000_000_000)], None);
    let mut first = pin!(produce_raw(&conn, &topic, 0, -1, batch("first")?));
    let mut second = pin!(produce_raw(&conn, &topic, 0, -1, batch("second")?));
    let appended = messages_in(&http, &topic, 2, Duration::from_secs(20));
    // Polled in this order, the requests go out first, then second.
    tokio::select! {
        biased;
        answer = &mut first => bail!("answered with a follower stopped: {answer:?}"),
        answer = &mut second => bail!("answered with a follower stopped: {answer:?}"),
        appended = appended => appended?,
    }
    cluster.sigcont(follower)?;
    let (first, second) = tokio::join!(first, second);
    let (first, second) = (first?, second?);
    ensure!(
        (
            first.error_code,
            first.base_offset,
            second.error_code,
            second.base_offset
        ) == (0, 0, 0, 1),
        "answers: {first:?} {second:?}"
    );
    Ok(())
}

/// Brokers started as the operator starts them, three voters and no replication flags
/// (default.replication.factor 1): `__consumer_offsets` still gets
/// offsets.topic.replication.factor (3) replicas. While a broker is down the topic is
/// not created with fewer: FindCoordinator answers COORDINATOR_NOT_AVAILABLE until the
/// broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_replicate_the_offsets_topic_three_times() -> Result<()> {
    let options = ClusterOptions {
        replication_factor: 1,
        min_insync_replicas: 1,
        ..ClusterOptions::default()
    };
    let (mut cluster, client) =
        cluster_with(options, &["--offsets-topic-num-partitions=3"]).await?;
    let offsets_rf = client
        .describe_configs(&ConfigResource::Broker(1))
        .await?
        .into_iter()
        .find(|c| c.name == "offsets.topic.replication.factor")
        .and_then(|c| c.value);
    ensure!(
        offsets_rf.as_deref() == Some("3"),
        "DescribeConfigs of broker 1: offsets.topic.replication.factor {offsets_rf:?}"
    );
    let group = unique_topic("group");

    let down = 3;
    cluster.kill9(down).await?;
    // Bootstrapped from the survivors only, and answering the first refusal rather than
    // retrying it.
    let survivors: Vec<String> = cluster
        .node_ids()
        .into_iter()
        .filter(|&id| id != down)
        .map(|id| cluster.broker(id).bootstrap())
        .collect();
    let once = Client::connect(
        &survivors,
        ClientConfig {
            leader_retries: 0,
            ..ClientConfig::default()
        },
    )
    .await?;
    let started = Instant::now();
    loop {
        let listed: Vec<i32> = once
            .metadata(Some(&[]))
            .await?
            .brokers
            .iter()
            .map(|b| b.node_id)
            .collect();
        if !listed.contains(&down) {
            break;
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "broker {down} still listed {listed:?} after being killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = once.find_coordinator(&group).await;
    ensure!(
        refused.as_ref().err().and_then(|e| e.kafka())
            == Some(ResponseError::CoordinatorNotAvailable),
        "FindCoordinator with 2 of 3 brokers up: {refused:?}"
    );
    let metadata = once.metadata(Some(&["__consumer_offsets"])).await?;
    let topic = metadata.topic("__consumer_offsets");
    ensure!(
        topic.is_none_or(|t| t.error == Some(ResponseError::UnknownTopicOrPartition)),
        "__consumer_offsets created with a broker down: {topic:?}"
    );

    cluster.restart(down).await?;
    cluster.wait_for_brokers(DEADLINE).await?;
    let coordinator = client.find_coordinator(&group).await?;
    let metadata = client.metadata(Some(&["__consumer_offsets"])).await?;
    let topic = metadata
        .topic("__consumer_offsets")
        .context("__consumer_offsets after FindCoordinator")?;
    ensure!(
        topic.partitions.len() == 3,
        "__consumer_offsets has {} partitions",
        topic.partitions.len()
    );
    for p in &topic.partitions {
        let mut replicas = p.replicas.clone();
        replicas.sort_unstable();
        ensure!(
            replicas == cluster.node_ids(),
            "__consumer_offsets partition {} on brokers {:?}, not on all three",
            p.partition,
            p.replicas
        );
    }
    println!(
        "coordinator of {group}: broker {}; __consumer_offsets replicas {:?}",
        coordinator.node_id,
        topic
            .partitions
            .iter()
            .map(|p| p.replicas.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// A client that sends an acks=all request and then closes its sending side still gets
/// the answer, once the ISR has the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_still_gets_its_produce_answer() -> Result<()> {
    let (mut cluster, topic, leader, follower) = follower_stopped("halfclose").await?;
    let broker = cluster.broker(leader);
    let http = broker.http_addr();
    let batch = encode_batch(&[BatchRecord::new("last words", 1_700_000_000_000)], None)?;
    let mut body = BytesMut::new();
    produce_request(&topic, 0, -1, batch).encode(&mut body, 9)?;
    let mut stream = tokio::net::TcpStream::connect(broker.bootstrap()).await?;
    stream
        .write_all(&raw_frame(ApiKey::Produce as i16, 9, 42, true, &body))
        .await?;
    stream.shutdown().await?;
    // Appended, so the broker has read the request; the end of the stream comes next.
    messages_in(&http, &topic, 1, DEADLINE).await?;
    cluster.sigcont(follower)?;
    let Answer::Response(frame) = read_answer(&mut stream, DEADLINE).await? else {
        bail!("the connection closed without the produce answer");
    };
    let mut frame = bytes::Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9))?;
    let response = ProduceResponse::decode(&mut frame, 9)?;
    let partition = &response.responses[0].partition_responses[0];
    ensure!(
        (
            header.correlation_id,
            partition.error_code,
            partition.base_offset
        ) == (42, 0, 0),
        "answer: {header:?} {partition:?}"
    );
    Ok(())
}
