//! A broker that runs out of file descriptors never shows a partition as led that it
//! cannot serve. With its soft `nofile` lowered to 1024 while it runs (`prlimit` on the
//! process), it gets 500 single-partition topics: every one is either served (a
//! produce is acknowledged) or offline (Metadata shows no leader and the replica
//! offline, and a produce answers KAFKA_STORAGE_ERROR at once, never a timeout). Once
//! the limit is back up, the offline ones are retried and served.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{Client, ClientConfig, NewTopic, ResponseError};
use fjord_e2e::{BrokerOptions, BrokerProcess};

use common::{encode_batch, metric, produce_raw, scrape, BatchRecord};

const TOPICS: usize = 500;
const NOFILE: u64 = 1024;
const DEADLINE: Duration = Duration::from_secs(180);

/// What one topic's partition looks like to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Served,
    Offline,
    /// Opened again, waiting for the controller to make it leader again: produce
    /// answers NOT_LEADER_OR_FOLLOWER and clients retry.
    BackSoon,
}

async fn look(conn: &fjord_client::Connection, client: &Client, topic: &str) -> Result<Seen> {
    let metadata = client.metadata(Some(&[topic])).await?;
    let p = metadata
        .topic(topic)
        .and_then(|t| t.partitions.first())
        .with_context(|| format!("{topic} has no partition in Metadata"))?;
    let batch = encode_batch(&[BatchRecord::new("x", 0)], None)?;
    let started = Instant::now();
    let answer = produce_raw(conn, topic, 0, 1, batch).await?;
    let took = started.elapsed();
    match (p.leader_id, answer.error_code) {
        (1, 0) => Ok(Seen::Served),
        (-1, code) if code == ResponseError::KafkaStorageError.code() && p.offline_replicas == [1] => {
            ensure!(
                took < Duration::from_secs(5),
                "{topic}: KAFKA_STORAGE_ERROR only after {took:?}"
            );
            Ok(Seen::Offline)
        }
        (-1, code) if code == ResponseError::NotLeaderOrFollower.code() => Ok(Seen::BackSoon),
        (leader, code) => bail!(
            "{topic}: leader {leader}, offline replicas {:?}, produce answered {code} after {took:?}",
            p.offline_replicas
        ),
    }
}

/// The hard "Max open files" of process `pid`, from /proc.
fn open_files_hard_limit(pid: &str) -> Result<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no \"Max open files\" in /proc/<pid>/limits")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no hard limit")?
        .parse()?)
}

async fn census(
    broker: &BrokerProcess,
    client: &Client,
    topics: &[String],
) -> Result<BTreeMap<Seen, usize>> {
    let conn = common::connection(&broker.bootstrap()).await?;
    let mut seen = BTreeMap::new();
    for topic in topics {
        *seen.entry(look(&conn, client, topic).await?).or_default() += 1;
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_out_of_file_descriptors_never_shows_a_partition_as_led_it_cannot_serve(
) -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let pid = broker.pid().context("broker pid")?.to_string();
    let set_soft_limit = |soft: &str| -> Result<()> {
        let status = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={soft}:")])
            .status()?;
        ensure!(status.success(), "prlimit --nofile={soft}: {status}");
        Ok(())
    };
    set_soft_limit(&NOFILE.to_string())?;
    let result = async {
        let client = Client::connect(&[broker.bootstrap()], ClientConfig::default()).await?;
        let topics: Vec<String> = (0..TOPICS).map(|i| format!("fd-{i:03}")).collect();
        for chunk in topics.chunks(50) {
            let new: Vec<NewTopic> = chunk.iter().map(|t| NewTopic::new(t, 1, 1)).collect();
            for (name, created) in client.create_topics(&new, false).await? {
                created.with_context(|| format!("creating {name}"))?;
            }
        }
        let before = census(&broker, &client, &topics).await?;
        ensure!(
            !before.contains_key(&Seen::BackSoon),
            "with the limit still low: {before:?}"
        );
        let text = scrape(&broker.http_addr()).await?;
        let gauge = metric(&text, "fjord_offline_replicas", &[]).unwrap_or(0.0);
        println!("with nofile {NOFILE}: {before:?}, fjord_offline_replicas {gauge}");
        ensure!(
            before.get(&Seen::Offline).copied().unwrap_or(0) as f64 == gauge,
            "offline partitions {before:?}, gauge {gauge}"
        );

        // Back to the hard limit the broker raised it to at start.
        set_soft_limit(&open_files_hard_limit(&pid)?.to_string())?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = census(&broker, &client, &topics).await?;
            if now.get(&Seen::Served) == Some(&TOPICS) {
                println!("after raising the limit: all {TOPICS} served");
                break;
            }
            if Instant::now() >= deadline {
                bail!("after raising the limit: {now:?}");
            }
            // Poll interval of a condition wait: offline replicas are retried with backoff.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!(
            "{}",
            broker
                .logs()
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    result
}
