//! librdkafka consumer groups (through the `rdkafka` crate) against a spawned broker,
//! once per assignment strategy (range, roundrobin: eager; cooperative-sticky):
//!
//! 1. three members on a 6-partition topic hold two partitions each;
//! 2. a fourth joins and the partitions are spread over four;
//! 3. one member is killed (SIGKILL, so it never leaves) and its partitions move to the
//!    others once its session times out;
//! 4. every produced record was processed at least once (none skipped);
//! 5. after the members stop, the committed offsets equal the log end offsets, and read
//!    back the same after a broker restart;
//! 6. a second group on the same topic sees every record too.
//!
//! Each member is a child process (this test binary re-run with `FJORD_GROUP_CHILD_*`),
//! so that killing one is a real crash. Members report on stdout: `@@A p,p` (current
//! assignment), `@@R partition offset value` (record processed), `@@C` (committed and
//! leaving). Every wait is a condition with a deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const PARTITIONS: i32 = 6;
const PER_BATCH: usize = 300;
const DEADLINE: Duration = Duration::from_secs(90);
/// Short, so that a killed member's partitions move quickly; the broker's minimum is
/// lowered to allow it.
const SESSION_TIMEOUT_MS: &str = "4000";

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() >= deadline {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        // Poll interval of a condition wait, not a synchronisation sleep.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[derive(Default)]
struct Reported {
    assignment: Vec<i32>,
    /// value → times processed.
    records: Vec<(i32, i64, String)>,
    committed: bool,
}

struct Member {
    child: Child,
    reported: Arc<Mutex<Reported>>,
}

impl Member {
    async fn spawn(bootstrap: &str, group: &str, topic: &str, strategy: &str) -> Result<Member> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "group_member_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("FJORD_GROUP_CHILD_BOOTSTRAP", bootstrap)
            .env("FJORD_GROUP_CHILD_GROUP", group)
            .env("FJORD_GROUP_CHILD_TOPIC", topic)
            .env("FJORD_GROUP_CHILD_STRATEGY", strategy)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a group member")?;
        let reported = Arc::new(Mutex::new(Reported::default()));
        let stdout = child.stdout.take().context("member stdout")?;
        let r = reported.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut r = r.lock().unwrap();
                if let Some(a) = line.strip_prefix("@@A ") {
                    r.assignment = a.split(',').filter_map(|p| p.parse().ok()).collect();
                } else if let Some(rec) = line.strip_prefix("@@R ") {
                    let mut parts = rec.splitn(3, ' ');
                    let p = parts.next().and_then(|p| p.parse().ok()).unwrap_or(-1);
                    let o = parts.next().and_then(|o| o.parse().ok()).unwrap_or(-1);
                    let v = parts.next().unwrap_or("").to_string();
                    r.records.push((p, o, v));
                } else if line == "@@C" {
                    r.committed = true;
                }
            }
        });
        Ok(Member { child, reported })
    }

    fn assignment(&self) -> Vec<i32> {
        self.reported.lock().unwrap().assignment.clone()
    }

    /// Commit and leave the group cleanly.
    async fn stop(&mut self) -> Result<()> {
        let mut stdin = self.child.stdin.take().context("member stdin")?;
        stdin.write_all(b"stop\n").await?;
        stdin.flush().await?;
        let reported = self.reported.clone();
        wait_for("a member to commit and leave", || {
            reported.lock().unwrap().committed
        })
        .await?;
        tokio::time::timeout(DEADLINE, self.child.wait()).await??;
        Ok(())
    }
}

/// True when the members' assignments are disjoint, cover every partition, and have
/// the given sizes (in any order).
fn spread(members: &[&Member], sizes: &[usize]) -> bool {
    let assignments: Vec<Vec<i32>> = members.iter().map(|m| m.assignment()).collect();
    let all: Vec<i32> = assignments.iter().flatten().copied().collect();
    let unique: BTreeSet<i32> = all.iter().copied().collect();
    let mut got: Vec<usize> = assignments.iter().map(Vec::len).collect();
    got.sort_unstable();
    let mut want = sizes.to_vec();
    want.sort_unstable();
    all.len() == unique.len() && unique.len() == PARTITIONS as usize && got == want
}

async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for result in admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// Produce one batch of uniquely valued records; returns the values.
async fn produce(bootstrap: &str, topic: &str, batch: usize) -> Result<Vec<String>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()?;
    let mut values = Vec::with_capacity(PER_BATCH);
    let mut pending = Vec::with_capacity(PER_BATCH);
    for i in 0..PER_BATCH {
        let value = format!("b{batch}-{i}");
        let key = i.to_string();
        pending.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                .map_err(|(e, _)| anyhow::anyhow!("enqueueing {value}: {e}"))?,
        );
        values.push(value);
    }
    for d in pending {
        d.await?
            .map_err(|(e, _)| anyhow::anyhow!("not delivered: {e}"))?;
    }
    Ok(values)
}

fn processed(members: &[Member]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in members {
        for (_, _, v) in &m.reported.lock().unwrap().records {
            *seen.entry(v.clone()).or_insert(0) += 1;
        }
    }
    seen
}

/// Committed offsets of `group` for every partition of `topic` (-1: none).
fn committed(bootstrap: &str, group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), o)
        })
        .collect())
}

fn log_end_offsets(bootstrap: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
            Ok((p, high))
        })
        .collect()
}

async fn group_life_cycle(strategy: &str) -> Result<()> {
    let mut broker = BrokerProcess::start(BrokerOptions {
        args: vec![
            "--group-min-session-timeout-ms".into(),
            "1000".into(),
            "--group-initial-rebalance-delay-ms".into(),
            "500".into(),
        ],
        ..BrokerOptions::default()
    })
    .await?;
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("groups");
    let group = unique_topic("group");
    create_topic(&bootstrap, &topic).await?;
    let mut values = produce(&bootstrap, &topic, 1).await?;

    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(Member::spawn(&bootstrap, &group, &topic, strategy).await?);
    }
    wait_for("three members holding two partitions each", || {
        spread(&members.iter().collect::<Vec<_>>(), &[2, 2, 2])
    })
    .await?;

    values.extend(produce(&bootstrap, &topic, 2).await?);
    members.push(Member::spawn(&bootstrap, &group, &topic, strategy).await?);
    wait_for("four members sharing the six partitions", || {
        spread(&members.iter().collect::<Vec<_>>(), &[2, 2, 1, 1])
    })
    .await?;

    // Crash a member that holds partitions: it never sends LeaveGroup.
    let victim = members
        .iter()
        .position(|m| !m.assignment().is_empty())
        .context("a member with partitions")?;
    let mut killed = members.remove(victim);
    killed.child.start_kill()?;
    killed.child.wait().await?;
    values.extend(produce(&bootstrap, &topic, 3).await?);
    wait_for(
        "the killed member's partitions to move to the others",
        || spread(&members.iter().collect::<Vec<_>>(), &[2, 2, 2]),
    )
    .await?;

    let mut everyone = members;
    everyone.push(killed);
    wait_for("every record processed", || {
        let seen = processed(&everyone);
        values.iter().all(|v| seen.contains_key(v))
    })
    .await?;
    let seen = processed(&everyone);
    ensure!(
        seen.len() == values.len(),
        "processed values that were never produced: {}",
        seen.len() - values.len()
    );
    for m in everyone.iter_mut().filter(|m| m.child.id().is_some()) {
        m.stop().await?;
    }

    let end = log_end_offsets(&bootstrap, &topic)?;
    let before = committed(&bootstrap, &group, &topic)?;
    ensure!(
        before == end,
        "committed offsets {before:?} differ from the log end offsets {end:?}"
    );
    broker.sigterm(Duration::from_secs(30)).await?;
    broker.restart().await?;
    let after = committed(&bootstrap, &group, &topic)?;
    ensure!(
        after == before,
        "committed offsets after restart {after:?}, before {before:?}\n{}",
        broker.logs()
    );

    // A second group reads the same topic independently, from the beginning.
    let other = unique_topic("other-group");
    let reader = Member::spawn(&bootstrap, &other, &topic, strategy).await?;
    let readers = [reader];
    wait_for("the second group to see every record", || {
        let seen = processed(&readers);
        values.iter().all(|v| seen.contains_key(v))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_group() -> Result<()> {
    group_life_cycle("range").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundrobin_group() -> Result<()> {
    group_life_cycle("roundrobin").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group() -> Result<()> {
    group_life_cycle("cooperative-sticky").await
}

/// Not a test on its own: the body of one group member, run in a child process by
/// the tests above. Without `FJORD_GROUP_CHILD_BOOTSTRAP` it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_member_child() -> Result<()> {
    let Ok(bootstrap) = std::env::var("FJORD_GROUP_CHILD_BOOTSTRAP") else {
        return Ok(());
    };
    let env = |k: &str| std::env::var(k).with_context(|| format!("{k} not set"));
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", env("FJORD_GROUP_CHILD_GROUP")?)
        .set(
            "partition.assignment.strategy",
            env("FJORD_GROUP_CHILD_STRATEGY")?,
        )
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        // At least once: an offset is stored only after its record is processed, and
        // stored offsets are committed in the background.
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("enable.auto.offset.store", "false")
        .create()?;
    consumer.subscribe(&[&env("FJORD_GROUP_CHILD_TOPIC")?])?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "stop" {
                break;
            }
        }
        let _ = stop_tx.send(());
    });
    let mut reported: Option<Vec<i32>> = None;
    loop {
        let current: Vec<i32> = consumer
            .assignment()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if reported.as_ref() != Some(&current) {
            let list: Vec<String> = current.iter().map(i32::to_string).collect();
            println!("@@A {}", list.join(","));
            reported = Some(current);
        }
        tokio::select! {
            _ = &mut stop_rx => break,
            m = tokio::time::timeout(Duration::from_millis(100), consumer.recv()) => {
                if let Ok(m) = m {
                    let m = m?;
                    let value = m
                        .payload_view::<str>()
                        .transpose()?
                        .unwrap_or("")
                        .to_string();
                    println!("@@R {} {} {}", m.partition(), m.offset(), value);
                    consumer.store_offset_from_message(&m)?;
                }
            }
        }
    }
    // "No offset stored" when the background commit already took everything: fine.
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        eprintln!("final commit: {e}");
    }
    println!("@@C");
    Ok(())
}
