//! Replication quotas (KIP-73) on a real 3-broker cluster: a partition of several MB
//! moved with `leader/follower.replication.throttled.rate` set on its moving replicas
//! takes at least the time the rate implies, while a producer to another partition on
//! the same brokers keeps its ack latency; removing the rates lets the move finish at
//! full speed.
//!
//! The figures (move times, ack latencies) are printed; the assertions are loose
//! bounds on conditions, not benchmarks.
//!
//! A throttle also holds a restarted broker out of the ISR for as long as a test needs:
//! `/ready/in-sync` (a broker pod's readiness) stays 503 meanwhile, while `/ready`
//! answers 200, and turns 200 once the broker is back in the ISR.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{
    AlterConfigOp, Client, ClientConfig, ConfigResource, NewTopic, ProduceOptions, ProduceRecord,
};
use fjord_e2e::{http_get, unique_topic, Cluster, ClusterOptions};

const RATE: u64 = 1_000_000;
const RECORD_BYTES: usize = 100_000;
/// 8 MB: at 1 MB/s, at least six seconds once the one-second burst and one fetch
/// beyond the quota are spent.
const RECORDS: usize = 80;
const DEADLINE: Duration = Duration::from_secs(120);

async fn client(cluster: &Cluster) -> Result<Client> {
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    Ok(Client::connect(&bootstrap, ClientConfig::default()).await?)
}

async fn fill(client: &Client, topic: &str) -> Result<u64> {
    let value = "x".repeat(RECORD_BYTES);
    for i in 0..RECORDS {
        let record = ProduceRecord::new(Some(format!("k{i}")), value.clone());
        client
            .produce(topic, 0, &[record], &ProduceOptions::default())
            .await
            .with_context(|| format!("producing record {i}"))?;
    }
    Ok((RECORDS * RECORD_BYTES) as u64)
}

async fn set_rates(client: &Client, brokers: &[i32], rate: Option<u64>) -> Result<()> {
    for &b in brokers {
        let ops: Vec<AlterConfigOp> = [
            "leader.replication.throttled.rate",
            "follower.replication.throttled.rate",
        ]
        .iter()
        .map(|name| match rate {
            Some(r) => AlterConfigOp::Set(name.to_string(), r.to_string()),
            None => AlterConfigOp::Delete(name.to_string()),
        })
        .collect();
        client
            .incremental_alter_configs(&ConfigResource::Broker(b), &ops, false)
            .await
            .with_context(|| format!("rates on broker {b}"))?;
    }
    Ok(())
}

/// Kafka's tool's lists for a move of partition 0 from `from` to `to`: the leader
/// side throttles the current replicas, the follower side the new ones.
async fn throttle_move(client: &Client, topic: &str, from: i32, to: i32) -> Result<()> {
    client
        .incremental_alter_configs(
            &ConfigResource::Topic(topic.to_string()),
            &[
                AlterConfigOp::Set(
                    "leader.replication.throttled.replicas".into(),
                    format!("0:{from}"),
                ),
                AlterConfigOp::Set(
                    "follower.replication.throttled.replicas".into(),
                    format!("0:{to}"),
                ),
            ],
            false,
        )
        .await?;
    Ok(())
}

async fn moved(client: &Client, topic: &str, target: i32) -> Result<bool> {
    let pending = client.list_partition_reassignments().await?;
    let meta = client.metadata(Some(&[topic])).await?;
    let p = meta
        .topic(topic)
        .and_then(|t| t.partitions.iter().find(|p| p.partition == 0))
        .context("partition in metadata")?;
    Ok(pending.is_empty() && p.replicas == vec![target] && p.isr == vec![target])
}

async fn wait_moved(client: &Client, topic: &str, target: i32) -> Result<Duration> {
    let started = Instant::now();
    while !moved(client, topic, target).await? {
        if started.elapsed() > DEADLINE {
            bail!("{topic}/0 not moved to {target} within {DEADLINE:?}");
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// Ack latencies of acks=all produces to `topic`/0, one at a time, until `stop`.
async fn produce_latencies(
    client: Client,
    topic: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let mut i = 0;
    while !*stop.borrow() {
        let record = ProduceRecord::new(Some(format!("p{i}")), "small".to_string());
        let started = Instant::now();
        client
            .produce(&topic, 0, &[record], &ProduceOptions::default())
            .await?;
        latencies.push(started.elapsed());
        i += 1;
        // Paced like a steady client, not a flood.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn summary(mut latencies: Vec<Duration>) -> (usize, Duration, Duration) {
    latencies.sort_unstable();
    (
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_move_keeps_to_the_rate_and_spares_other_partitions() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let admin = client(&cluster).await?;
    let (a, b, c) = (1, 2, 3);
    let moving = unique_topic("throttled");
    let busy = unique_topic("busy");
    admin
        .create_topic(NewTopic::with_assignments(&moving, vec![vec![a]]))
        .await?;
    // Led on the moving partition's leader, followed on its destination, and listed
    // as throttled on both sides: its follower is in sync, so KIP-73 never throttles
    // it (acks=all would otherwise wait on the quota).
    admin
        .create_topic(
            NewTopic::with_assignments(&busy, vec![vec![a, b]])
                .with_config("leader.replication.throttled.replicas", "*")
                .with_config("follower.replication.throttled.replicas", "*"),
        )
        .await?;
    let bytes = fill(&admin, &moving).await?;

    // Ack latency of the busy partition with nothing moving.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let producer = tokio::spawn(produce_latencies(
        client(&cluster).await?,
        busy.clone(),
        stopped,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true)?;
    let (n, idle_p50, idle_p99) = summary(producer.await??);
    println!("busy partition, idle cluster: {n} acks, p50 {idle_p50:?}, p99 {idle_p99:?}");

    // The throttled move, with the producer running.
    throttle_move(&admin, &moving, a, b).await?;
    set_rates(&admin, &[a, b], Some(RATE)).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let producer = tokio::spawn(produce_latencies(
        client(&cluster).await?,
        busy.clone(),
        stopped,
    ));
    admin
        .alter_partition_reassignment(&moving, 0, Some(vec![b]))
        .await?;
    let took = wait_moved(&admin, &moving, b).await?;
    stop.send(true)?;
    let (n, moving_p50, moving_p99) = summary(producer.await??);
    println!(
        "throttled move of {bytes} bytes at {RATE} B/s took {took:?} ({:.2} MB/s); \
         busy partition meanwhile: {n} acks, p50 {moving_p50:?}, p99 {moving_p99:?}",
        bytes as f64 / took.as_secs_f64() / 1e6
    );
    // A one-second burst and one fetch of up to 1 MB may pass before the quota bites.
    let floor = Duration::from_secs_f64((bytes - 2 * RATE) as f64 / RATE as f64);
    ensure!(
        took >= floor,
        "the throttled move took {took:?}, less than the {floor:?} the rate implies"
    );
    // The in-sync follower of the busy partition is never throttled, listed or not:
    // its acks=all latency stays in the same range as on the idle cluster.
    let bound = idle_p50 * 10 + Duration::from_millis(100);
    ensure!(
        moving_p50 <= bound,
        "busy partition's p50 ack latency {moving_p50:?} during the move, above {bound:?}"
    );
    // Paced at one produce per 20 ms, it keeps well above 10 acks a second; an
    // in-sync follower held by the quota makes each ack wait for the bucket.
    let acks_per_s = n as f64 / took.as_secs_f64();
    ensure!(
        acks_per_s >= 10.0,
        "busy partition: {acks_per_s:.1} acks/s during the move (p99 {moving_p99:?})"
    );
    let (_, metrics) = fjord_e2e::http_get(
        &cluster.broker(b).http_addr(),
        "/metrics",
        Duration::from_secs(10),
    )
    .await?;
    let throttled = metric(
        &metrics,
        "fjord_replication_throttled_bytes_total",
        "follower",
    );
    println!("broker {b} follower throttled bytes: {throttled}");
    ensure!(
        throttled >= (bytes - 2 * RATE) as f64,
        "fjord_replication_throttled_bytes_total{{direction=\"follower\"}} is {throttled}"
    );

    // A second throttled move, then the rates removed: it finishes at full speed.
    throttle_move(&admin, &moving, b, c).await?;
    set_rates(&admin, &[b, c], Some(RATE)).await?;
    admin
        .alter_partition_reassignment(&moving, 0, Some(vec![c]))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        !moved(&admin, &moving, c).await?,
        "the second throttled move was done within 2 s"
    );
    let removed = Instant::now();
    set_rates(&admin, &[b, c], None).await?;
    let rest = wait_moved(&admin, &moving, c).await?;
    let after_removal = removed.elapsed();
    println!("rates removed after 2 s: the move finished {after_removal:?} later ({rest:?})");
    // Throttled, the rest (at least 4 MB) would take at least 3 s more.
    ensure!(
        after_removal < Duration::from_secs(3),
        "the move took {after_removal:?} after the rates were removed"
    );
    Ok(())
}

/// The value of `name{direction="<direction>"}` in Prometheus text, 0 when absent.
fn metric(text: &str, name: &str, direction: &str) -> f64 {
    let key = format!("{name}{{direction=\"{direction}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_is_in_sync_ready_only_once_back_in_the_isr() -> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::default()).await?;
    let admin = client(&cluster).await?;
    let (leader, restarted) = (1, 3);
    let topic = unique_topic("in-sync-ready");
    // Every replica listed: KIP-73 throttles only the one out of the ISR.
    admin
        .create_topic(
            NewTopic::with_assignments(&topic, vec![vec![leader, 2, restarted]])
                .with_config("leader.replication.throttled.replicas", "*"),
        )
        .await?;
    cluster.kill9(restarted).await?;
    cluster
        .wait_for_leader(&topic, 0, DEADLINE, "without the killed broker", |l| {
            l.node_id == leader && !l.isr.contains(&restarted)
        })
        .await?;
    // 8 MB to catch up at 100 kB/s: over a minute behind the throttle.
    let bytes = fill(&admin, &topic).await?;
    set_rates(&admin, &[leader], Some(RATE / 10)).await?;
    cluster.restart(restarted).await?;

    let http = cluster.broker(restarted).http_addr();
    let status = |path: &'static str| {
        let http = http.clone();
        async move { http_get(&http, path, Duration::from_secs(10)).await }
    };
    let started = Instant::now();
    loop {
        let (code, body) = status("/ready/in-sync").await?;
        if code == 503 && body.contains("catching up: 1 partitions not back in their ISR") {
            break;
        }
        ensure!(
            code == 503,
            "/ready/in-sync {code} {body:?} while {bytes} bytes are held back by the throttle"
        );
        if started.elapsed() > DEADLINE {
            bail!("/ready/in-sync never named the throttled partition: last {code} {body:?}");
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = status("/ready").await?;
    ensure!(code == 200, "/ready {code} {body:?}: the broker serves");
    println!("while held back: /ready {code}, /ready/in-sync 503");

    set_rates(&admin, &[leader], None).await?;
    let started = Instant::now();
    loop {
        let (code, body) = status("/ready/in-sync").await?;
        if code == 200 {
            break;
        }
        if started.elapsed() > DEADLINE {
            bail!("/ready/in-sync not 200 within {DEADLINE:?} of the throttle's removal: {code} {body:?}");
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "/ready/in-sync 200 {:?} after the throttle's removal",
        started.elapsed()
    );
    // The metadata of every broker says so too, a moment later at most.
    cluster
        .wait_for_leader(
            &topic,
            0,
            DEADLINE,
            "with the restarted broker in the ISR",
            |l| l.isr.contains(&restarted),
        )
        .await?;
    Ok(())
}
