//! A step of the wall clock changes nothing that depends on durations: three brokers
//! run under libfaketime (wall clock only; the monotonic clock is left alone) and the
//! time is set an hour ahead, then an hour back. Through both steps the ISR of a
//! replicated partition keeps all three replicas, acks=all writes succeed, and a
//! consumer group keeps its member; record timestamps (LogAppendTime) do follow the
//! wall clock, which is how the test knows every broker saw the step.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use fjord_client::{Client, ClientConfig, NewTopic};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};

use common::{encode_batch, metric, produce_raw, scrape, wait_for, BatchRecord};

const DEADLINE: Duration = Duration::from_secs(60);
/// Debian's libfaketime (package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const LAG_MAX_MS: u64 = 2_000;
/// How long each step is watched: many leader ticks (100 ms) and group timer ticks,
/// more than the replica lag bound and the group's session timeout would allow.
const WATCH: Duration = Duration::from_secs(8);
const HOUR_MS: i64 = 3_600_000;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sets the brokers' wall clock offset (libfaketime re-reads the file every second).
fn set_offset(file: &Path, offset: &str) -> Result<()> {
    std::fs::write(file, format!("{offset}\n")).context("writing the faketime file")
}

/// Waits until every broker stamps LogAppendTime records about `offset_ms` away from
/// the real wall clock: each leads one partition of `probe`.
async fn wait_seen(cluster: &Cluster, probe: &str, offset_ms: i64) -> Result<()> {
    for id in cluster.node_ids() {
        let conn = common::connection(&cluster.broker(id).bootstrap()).await?;
        wait_for(
            &format!("broker {id} to see the wall clock {offset_ms} ms off"),
            DEADLINE,
            || async {
                let batch = encode_batch(&[BatchRecord::new("probe", 0)], None)?;
                let answer = produce_raw(&conn, probe, id - 1, 1, batch).await?;
                let off = answer.log_append_time_ms - wall_ms();
                Ok(if (off - offset_ms).abs() < 10 * 60_000 {
                    Ok(())
                } else {
                    Err(format!("{answer:?}, {off} ms off"))
                })
            },
        )
        .await?;
    }
    Ok(())
}

/// For [`WATCH`]: the topic keeps three in-sync replicas, acks=all writes succeed, no
/// broker counted an ISR shrink, and the group keeps `member`.
async fn watch_nothing_changes(
    cluster: &Cluster,
    client: &Client,
    topic: &str,
    group: &str,
    member: &str,
) -> Result<()> {
    let until = Instant::now() + WATCH;
    let leader_conn = {
        let leader = cluster
            .leader(topic, 0)
            .await
            .context("the topic's leader")?;
        common::connection(&cluster.broker(leader.node_id).bootstrap()).await?
    };
    while Instant::now() < until {
        let batch = encode_batch(&[BatchRecord::new("v", wall_ms())], None)?;
        let written = produce_raw(&leader_conn, topic, 0, -1, batch).await?;
        ensure!(
            written.error_code == 0,
            "acks=all after the step: {written:?}"
        );
        let leader = cluster.leader(topic, 0).await.context("a leader")?;
        ensure!(leader.isr.len() == 3, "ISR after the step: {leader:?}");
        for id in cluster.node_ids() {
            let text = scrape(&cluster.broker(id).http_addr()).await?;
            let shrinks = metric(&text, "fjord_isr_shrinks_total", &[]).unwrap_or(0.0);
            ensure!(shrinks == 0.0, "broker {id} shrank an ISR {shrinks} times");
        }
        let described = client.describe_group(group).await?;
        let members: Vec<&str> = described
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        ensure!(
            members == [member],
            "group members after the step: {members:?} (state {}), was {member}",
            described.state
        );
        // Poll interval of the watch.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_step_shrinks_no_isr_and_expires_no_group_member() -> Result<()> {
    ensure!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (make test does)"
    );
    let dir = tempfile::tempdir()?;
    let offset_file = dir.path().join("faketime");
    set_offset(&offset_file, "+0")?;
    let env = [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset_file.display().to_string()),
        ("FAKETIME_CACHE_DURATION", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    let cluster = Cluster::start(ClusterOptions {
        args: vec![
            "--broker-heartbeat-interval-ms=200".into(),
            "--broker-session-timeout-ms=2000".into(),
            format!("--replica-lag-time-max-ms={LAG_MAX_MS}"),
            "--group-min-session-timeout-ms=3000".into(),
            "--offsets-topic-num-partitions=1".into(),
        ],
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..ClusterOptions::default()
    })
    .await?;
    cluster.wait_for_brokers(DEADLINE).await?;
    let bootstrap = cluster.bootstrap();
    let client = Client::connect(
        &bootstrap.split(',').collect::<Vec<_>>(),
        ClientConfig::default(),
    )
    .await?;
    let topic = unique_topic("steady");
    client.create_topic(NewTopic::new(&topic, 1, 3)).await?;
    let probe = unique_topic("probe");
    client
        .create_topic(
            NewTopic::with_assignments(&probe, vec![vec![1], vec![2], vec![3]])
                .with_config("message.timestamp.type", "LogAppendTime"),
        )
        .await?;
    cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync", |l| l.isr.len() == 3)
        .await?;

    // One consumer in a group, polling in a thread of its own.
    let group = unique_topic("group");
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        .create()?;
    consumer.subscribe(&[topic.as_str()])?;
    let stop = Arc::new(AtomicBool::new(false));
    let poller = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
        }
    });
    let member = wait_for("the consumer to join", DEADLINE, || async {
        let described = client.describe_group(&group).await?;
        Ok(match described.members.as_slice() {
            [m] if described.state == "Stable" && !m.assignment.is_empty() => {
                Ok(m.member_id.clone())
            }
            _ => Err(format!("{described:?}")),
        })
    })
    .await?;

    let result = async {
        for (offset, offset_ms) in [("+1h", HOUR_MS), ("-1h", -HOUR_MS)] {
            set_offset(&offset_file, offset)?;
            wait_seen(&cluster, &probe, offset_ms).await?;
            watch_nothing_changes(&cluster, &client, &topic, &group, &member)
                .await
                .with_context(|| format!("wall clock set {offset}"))?;
            println!("wall clock {offset}: ISR of 3 kept, member {member} kept");
        }
        anyhow::Ok(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    result
}
