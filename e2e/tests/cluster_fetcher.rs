//! Replica fetching per pair of brokers on a real 3-broker cluster with many
//! partitions: each broker runs one fetcher per leader broker it follows, so while
//! idle the replica fetch calls per second are bounded by broker pairs, not by
//! partitions; under acks=all load over every partition a leader is killed
//! (SIGKILL), the followers re-point to the new leaders, and nothing acknowledged is
//! lost.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use fjord_client::{Client, ClientConfig, FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

use common::{metric, scrape, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 200;
/// `replica.fetch.wait.max.ms` of the cluster: an idle session's round.
const WAIT_MAX_MS: u64 = 500;
const PRODUCERS: i32 = 8;

async fn metric_of(cluster: &Cluster, node: i32, name: &str) -> Result<f64> {
    let text = scrape(&cluster.broker(node).http_addr()).await?;
    metric(&text, name, &[]).with_context(|| format!("broker {node} exports no {name}"))
}

/// Every partition of `topic` has a leader and `isr_len` in-sync replicas among `live`.
async fn wait_for_isr(client: &Client, topic: &str, live: &[i32], isr_len: usize) -> Result<()> {
    wait_for("every partition in sync", DEADLINE, || async {
        // A connection lost to a busy or killed broker: asked again.
        let meta = match client.metadata(Some(&[topic])).await {
            Ok(meta) => meta,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let Some(t) = meta.topics.first() else {
            return Ok(Err("no topic in metadata".into()));
        };
        let lagging = t
            .partitions
            .iter()
            .filter(|p| {
                !live.contains(&p.leader_id)
                    || p.isr.iter().filter(|b| live.contains(b)).count() < isr_len
            })
            .count();
        Ok(
            if t.partitions.len() == PARTITIONS as usize && lagging == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{lagging} of {} partitions without {isr_len} live in-sync replicas",
                    t.partitions.len()
                ))
            },
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetchers_per_broker_pair_survive_a_killed_leader_under_acks_all_load() -> Result<()> {
    let wait_max = format!("--replica-fetch-wait-max-ms={WAIT_MAX_MS}");
    let mut cluster = Cluster::start(ClusterOptions {
        args: vec![
            "--broker-heartbeat-interval-ms=200".into(),
            "--broker-session-timeout-ms=2000".into(),
            wait_max,
        ],
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Arc::new(Client::connect(&bootstrap, ClientConfig::default()).await?);
    let topic = unique_topic("fetcher");
    let created = client
        .create_topic(NewTopic::new(&topic, PARTITIONS, 3).with_config("min.insync.replicas", "2"))
        .await;
    // A retry of a creation whose answer was lost finds the topic there.
    let created = match created {
        Err(e) if e.kafka() == Some(fjord_client::ResponseError::TopicAlreadyExists) => Ok(()),
        other => other.map(|_| ()),
    };
    if created.is_err() {
        for n in cluster.node_ids() {
            let logs = cluster.broker(n).logs();
            println!("{}", &logs[logs.len().saturating_sub(6000)..]);
        }
    }
    created?;
    let nodes = cluster.node_ids();
    wait_for_isr(&client, &topic, &nodes, 3).await?;

    // Idle: one fetcher per (follower, leader) pair, and calls bounded by the pairs.
    for &node in &nodes {
        wait_for("two fetchers on each broker", DEADLINE, || async {
            let n = metric_of(&cluster, node, "fjord_replica_fetchers").await?;
            Ok(if n == 2.0 {
                Ok(())
            } else {
                Err(format!("broker {node}: {n}"))
            })
        })
        .await?;
    }
    let total_calls = || async {
        let mut sum = 0.0;
        for &node in &nodes {
            sum += metric_of(&cluster, node, "fjord_replica_fetch_requests_total").await?;
        }
        anyhow::Ok(sum)
    };
    let window = Duration::from_secs(3);
    let (before, started) = (total_calls().await?, Instant::now());
    tokio::time::sleep(window).await;
    let calls = total_calls().await? - before;
    let elapsed_ms = started.elapsed().as_millis() as f64;
    // Six pairs, each one long poll per WAIT_MAX_MS while idle (twice that as slack):
    // per-partition fetching would make hundreds of calls a second.
    let pairs = (nodes.len() * (nodes.len() - 1)) as f64;
    let bound = 2.0 * pairs * (elapsed_ms / WAIT_MAX_MS as f64 + 1.0);
    println!("idle: {calls} replica fetch calls in {elapsed_ms} ms (bound {bound})");
    ensure!(
        calls <= bound,
        "{calls} replica fetch calls in {elapsed_ms} ms while idle: more than {bound} for {pairs} broker pairs"
    );

    // One acks=all write at a time: each waits for the followers' fetch sessions.
    let probe = Instant::now();
    for i in 0..20 {
        let record = [ProduceRecord::new(None::<String>, format!("probe-{i}"))];
        client
            .produce(&topic, i % PARTITIONS, &record, &ProduceOptions::default())
            .await?;
    }
    println!("20 sequential acks=all writes took {:?}", probe.elapsed());

    // acks=all over every partition; a leader dies mid-run.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let mut producers = Vec::new();
    for w in 0..PRODUCERS {
        let (client, topic, stop) = (client.clone(), topic.clone(), stop.clone());
        let count = count.clone();
        producers.push(tokio::spawn(async move {
            let mut acked: Vec<(i32, i64, String)> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for p in (w..PARTITIONS).step_by(PRODUCERS as usize) {
                    let value = format!("{p}-{w}-{i}");
                    let record = [ProduceRecord::new(None::<String>, value.clone())];
                    // Refused or failed writes are not acknowledged: not checked.
                    if let Ok(r) = client
                        .produce(&topic, p, &record, &ProduceOptions::default())
                        .await
                    {
                        acked.push((p, r.base_offset, value));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            acked
        }));
    }
    let acked_at_least = |n: usize| {
        let count = count.clone();
        async move {
            let now = count.load(Ordering::Relaxed);
            Ok(if now >= n {
                Ok(())
            } else {
                Err(format!("{now} acknowledged"))
            })
        }
    };
    let first = wait_for(
        "two writes to each partition acknowledged",
        DEADLINE,
        || acked_at_least(2 * PARTITIONS as usize),
    )
    .await;
    if first.is_err() {
        for n in cluster.node_ids() {
            let logs = cluster.broker(n).logs();
            println!("{}", &logs[logs.len().saturating_sub(5000)..]);
        }
    }
    first?;
    let leader = cluster
        .leader(&topic, 0)
        .await
        .context("partition 0 has a leader")?
        .node_id;
    cluster.kill9(leader).await?;
    let live: Vec<i32> = nodes.iter().copied().filter(|&b| b != leader).collect();
    wait_for_isr(&client, &topic, &live, 2).await?;
    // And writes go on to every partition under its new leader.
    let after = count.load(Ordering::Relaxed);
    wait_for(
        "two more writes to each partition acknowledged",
        DEADLINE,
        || acked_at_least(after + 2 * PARTITIONS as usize),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for p in producers {
        acked.extend(p.await?);
    }
    let per_partition: BTreeMap<i32, usize> = acked.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.0).or_default() += 1;
        m
    });
    ensure!(
        per_partition.len() == PARTITIONS as usize,
        "acknowledged writes on {} of {PARTITIONS} partitions",
        per_partition.len()
    );
    println!(
        "{} writes acknowledged; broker {leader} killed",
        acked.len()
    );

    // The survivors re-pointed: one fetcher each, to the other.
    for &node in &live {
        wait_for("one fetcher per survivor", DEADLINE, || async {
            let n = metric_of(&cluster, node, "fjord_replica_fetchers").await?;
            Ok(if n == 1.0 {
                Ok(())
            } else {
                Err(format!("broker {node}: {n}"))
            })
        })
        .await?;
    }
    wait_for_isr(&client, &topic, &live, 2).await?;

    // Nothing acknowledged is lost: each is at its offset, read from the new leaders.
    let mut by_partition: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (p, offset, value) in acked {
        by_partition.entry(p).or_default().push((offset, value));
    }
    for (p, mut writes) in by_partition {
        writes.sort();
        let mut stored = BTreeMap::new();
        let mut next = 0;
        let last = writes.last().map_or(0, |w| w.0);
        while next <= last {
            let fetched = client
                .fetch(&topic, p, next, &FetchOptions::default())
                .await?;
            ensure!(
                !fetched.records.is_empty(),
                "partition {p}: nothing at {next} below the last acknowledged write {last} (high watermark {})",
                fetched.high_watermark
            );
            for r in fetched.records {
                next = r.offset + 1;
                stored.insert(r.offset, r.value.unwrap_or_default());
            }
        }
        for (offset, value) in writes {
            ensure!(
                stored.get(&offset).map(|v| v.as_ref()) == Some(value.as_bytes()),
                "partition {p}: acknowledged {value} at {offset} is not there ({:?})",
                stored.get(&offset)
            );
        }
    }
    cluster.check_internal_sources()?;
    Ok(())
}

/// utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The figures of the issue, for whichever broker binary `FJORD_BIN` names: idle CPU
/// of 3 brokers holding 300 topics x 10 partitions RF 3 over 30 s after settling, then
/// ISR shrinks under 1 KB acks=all writes spread over every partition. A measurement,
/// not a check: `cargo test -p fjord-e2e --test cluster_fetcher -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_idle_cpu_and_isr_changes_at_3000_partitions() -> Result<()> {
    const TOPICS: usize = 300;
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Arc::new(Client::connect(&bootstrap, ClientConfig::default()).await?);
    let prefix = unique_topic("scale");
    let names: Vec<String> = (0..TOPICS).map(|i| format!("{prefix}-{i}")).collect();
    let started = Instant::now();
    for chunk in names.chunks(50) {
        let topics: Vec<NewTopic> = chunk.iter().map(|n| NewTopic::new(n, 10, 3)).collect();
        // A request that timed out may still have created its topics: ask again,
        // taking "already exists" as done.
        wait_for("topics created", DEADLINE * 10, || async {
            let results = match client.create_topics(&topics, false).await {
                Ok(results) => results,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let failed: Vec<String> = results
                .into_iter()
                .filter_map(|(name, r)| match r {
                    Err(e)
                        if e.kafka() != Some(fjord_client::ResponseError::TopicAlreadyExists) =>
                    {
                        Some(format!("{name}: {e}"))
                    }
                    _ => None,
                })
                .collect();
            Ok(if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join(", "))
            })
        })
        .await?;
    }
    println!(
        "created {} partitions in {:?}",
        TOPICS * 10,
        started.elapsed()
    );
    wait_for("every partition with 3 in sync", DEADLINE * 5, || async {
        let meta = client.metadata(None).await?;
        let short = meta
            .topics
            .iter()
            .filter(|t| t.name.starts_with(&prefix))
            .flat_map(|t| &t.partitions)
            .filter(|p| p.isr.len() < 3)
            .count();
        Ok(if short == 0 {
            Ok(())
        } else {
            Err(format!("{short} short"))
        })
    })
    .await?;
    println!("in sync after {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pids: Vec<u32> = cluster
        .node_ids()
        .iter()
        .filter_map(|&n| cluster.broker(n).pid())
        .collect();
    let ticks = |pids: &[u32]| pids.iter().map(|&p| cpu_ticks(p)).sum::<Result<u64>>();
    let (t0, w0) = (ticks(&pids)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (t1, w1) = (ticks(&pids)?, Instant::now());
    // Clock ticks are 1/100 s on Linux.
    let cpu = (t1 - t0) as f64 / 100.0 / (w1 - w0).as_secs_f64();
    println!("idle CPU of the 3 brokers: {:.1}% of a core", cpu * 100.0);

    let shrinks = || async {
        let mut sum = 0.0;
        for n in cluster.node_ids() {
            let text = scrape(&cluster.broker(n).http_addr()).await?;
            sum += metric(&text, "fjord_isr_shrinks_total", &[]).unwrap_or(0.0)
                + metric(&text, "fjord_isr_expands_total", &[]).unwrap_or(0.0);
        }
        anyhow::Ok(sum)
    };
    let before = shrinks().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let value = "x".repeat(1024);
    let mut workers = Vec::new();
    for w in 0..32usize {
        let (client, names, stop, count, value) = (
            client.clone(),
            names.clone(),
            stop.clone(),
            count.clone(),
            value.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let (topic, p) = (&names[(i / 10) % names.len()], (i % 10) as i32);
                let record = [ProduceRecord::new(None::<String>, value.clone())];
                if client
                    .produce(topic, p, &record, &ProduceOptions::default())
                    .await
                    .is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                i += 32;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    let changes = shrinks().await? - before;
    println!(
        "20 s of 1 KB acks=all over every partition: {} writes, {changes} ISR changes",
        count.load(Ordering::Relaxed)
    );
    Ok(())
}
