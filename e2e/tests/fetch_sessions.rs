//! Client fetch sessions (KIP-227) on the raw protocol: a full fetch of 1,000 partitions
//! opens a session; incremental fetches then carry and answer only what changed, wait
//! for data while every partition is idle, and are refused with Kafka's codes when the
//! session or epoch is wrong.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{encode_batch, produce_raw, BatchRecord, DEADLINE};
use fjord_client::{Connection, NewTopic};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const PARTITIONS: i32 = 1_000;

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn partition(p: i32, offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(p)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
}

/// A fetch of `partitions` of `topic` with the given session fields, waiting up to
/// `max_wait_ms` for one byte.
fn fetch(
    topic: &str,
    session_id: i32,
    epoch: i32,
    partitions: Vec<FetchPartition>,
    max_wait_ms: i32,
) -> FetchRequest {
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// (partition, records bytes, high watermark) of every partition answered.
fn answered(resp: &FetchResponse) -> Vec<(i32, usize, i64)> {
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            (
                p.partition_index,
                p.records.as_ref().map_or(0, |r| r.len()),
                p.high_watermark,
            )
        })
        .collect()
}

async fn append(conn: &Connection, topic: &str, p: i32, value: &'static [u8]) -> Result<i64> {
    let batch = encode_batch(
        &[BatchRecord::new(
            Bytes::from_static(value),
            1_700_000_000_000,
        )],
        None,
    )?;
    let answer = produce_raw(conn, topic, p, -1, batch).await?;
    ensure!(answer.error_code == 0, "{answer:?}");
    Ok(answer.base_offset)
}

/// Creates `topic` with PARTITIONS partitions and waits until each answers a fetch.
async fn create_topic(broker: &BrokerProcess, topic: &str) -> Result<()> {
    let created = common::client(&broker.bootstrap())
        .await?
        .create_topic(NewTopic::new(topic, PARTITIONS, 1))
        .await;
    // A slow creation (a loaded machine) may outlast the client's request timeout, or its
    // retry find the topic made: either way, wait below until the partitions serve.
    if let Err(e) = created {
        let e = format!("{e}");
        ensure!(
            e.contains("TopicAlreadyExists") || e.contains("timed out"),
            "creating {topic}: {e}"
        );
    }
    let all: Vec<FetchPartition> = (0..PARTITIONS).map(|p| partition(p, 0)).collect();
    let bootstrap = broker.bootstrap();
    common::wait_for("every partition served", 4 * DEADLINE, || {
        let req = fetch(topic, 0, -1, all.clone(), 0);
        let bootstrap = bootstrap.clone();
        async move {
            // A broker out of touch with the controller (a loaded machine) closes its
            // connections until it catches up: a fresh connection per attempt.
            let answer = async {
                let conn = common::connection(&bootstrap).await?;
                conn.send(&req).await.map_err(anyhow::Error::from)
            };
            Ok(match answer.await {
                Err(e) => Err(format!("{e:#}")),
                Ok(resp) => {
                    let failing = resp
                        .responses
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .filter(|p| p.error_code != 0)
                        .count();
                    if failing == 0 {
                        Ok(())
                    } else {
                        Err(format!("{failing} partitions failing"))
                    }
                }
            })
        }
    })
    .await
}

#[tokio::test]
async fn incremental_fetches_answer_only_what_changed() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let result = session_round_trip(&broker).await;
    if let Err(e) = &result {
        eprintln!("failed: {e:#}\n{}", broker.logs());
    }
    result
}

async fn session_round_trip(broker: &BrokerProcess) -> Result<()> {
    let topic = unique_topic("sessions");
    create_topic(broker, &topic).await?;
    let consumer = common::connection(&broker.bootstrap()).await?;
    let producer = common::connection(&broker.bootstrap()).await?;

    // Epoch 0: a full fetch that asks for a session.
    let all: Vec<FetchPartition> = (0..PARTITIONS).map(|p| partition(p, 0)).collect();
    let full = consumer.send(&fetch(&topic, 0, 0, all.clone(), 0)).await?;
    ensure!(full.error_code == 0, "{full:?}");
    ensure!(
        full.session_id != 0,
        "a full fetch at epoch 0 is given a session"
    );
    ensure!(
        answered(&full).len() == PARTITIONS as usize,
        "a full fetch answers every partition"
    );
    let session = full.session_id;

    // Epoch 1, nothing changed: no partition in the answer, after waiting for data.
    let started = Instant::now();
    let idle = consumer
        .send(&fetch(&topic, session, 1, vec![], 300))
        .await?;
    ensure!(
        idle.error_code == 0 && idle.session_id == session,
        "{idle:?}"
    );
    ensure!(
        answered(&idle).is_empty(),
        "idle partitions answered: {:?}",
        answered(&idle)
    );
    ensure!(
        started.elapsed() >= Duration::from_millis(300),
        "an idle incremental fetch answered after {:?}, before its max wait",
        started.elapsed()
    );

    // Epoch 2 waits long; a record on one partition answers it with that one alone,
    // whether it lands before or while the fetch waits.
    let waiting = {
        let consumer = common::connection(&broker.bootstrap()).await?;
        let req = fetch(&topic, session, 2, vec![], 20_000);
        tokio::spawn(async move { consumer.send(&req).await })
    };
    ensure!(append(&producer, &topic, 417, b"hello").await? == 0);
    let woken = waiting.await??;
    ensure!(woken.error_code == 0, "{woken:?}");
    let got = answered(&woken);
    ensure!(
        got.len() == 1 && got[0].0 == 417 && got[0].1 > 0 && got[0].2 == 1,
        "expected partition 417 with its record, got {got:?}"
    );

    // A stale epoch is refused, and so is a session that does not exist.
    let stale = consumer.send(&fetch(&topic, session, 2, vec![], 0)).await?;
    ensure!(
        stale.error_code == ResponseError::InvalidFetchSessionEpoch.code(),
        "stale epoch answered {stale:?}"
    );
    ensure!(answered(&stale).is_empty());
    let unknown = consumer
        .send(&fetch(&topic, session.wrapping_add(1).max(1), 1, vec![], 0))
        .await?;
    ensure!(
        unknown.error_code == ResponseError::FetchSessionIdNotFound.code(),
        "unknown session answered {unknown:?}"
    );

    // Epoch 3 moves partition 417 past its record: nothing new anywhere.
    let moved = consumer
        .send(&fetch(&topic, session, 3, vec![partition(417, 1)], 0))
        .await?;
    ensure!(moved.error_code == 0, "{moved:?}");
    ensure!(answered(&moved).is_empty(), "{:?}", answered(&moved));

    // Epoch 4 forgets partition 9; a record there is then not answered, while one on a
    // partition still in the session is.
    let mut forget = fetch(&topic, session, 4, vec![], 0);
    forget.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(topic_name(&topic))
        .with_partitions(vec![9])];
    let forgot = consumer.send(&forget).await?;
    ensure!(
        forgot.error_code == 0 && answered(&forgot).is_empty(),
        "{forgot:?}"
    );
    append(&producer, &topic, 9, b"unseen").await?;
    append(&producer, &topic, 10, b"seen").await?;
    let after = consumer
        .send(&fetch(&topic, session, 5, vec![], 5_000))
        .await?;
    let got = answered(&after);
    ensure!(
        got.len() == 1 && got[0].0 == 10,
        "expected partition 10 only, got {got:?}"
    );

    // Epoch -1 closes the session: the answer is sessionless and the id is gone.
    let closing = consumer
        .send(&fetch(&topic, session, -1, vec![partition(0, 0)], 0))
        .await?;
    ensure!(
        closing.error_code == 0 && closing.session_id == 0,
        "{closing:?}"
    );
    ensure!(answered(&closing).len() == 1);
    let closed = consumer.send(&fetch(&topic, session, 6, vec![], 0)).await?;
    ensure!(
        closed.error_code == ResponseError::FetchSessionIdNotFound.code(),
        "closed session answered {closed:?}"
    );

    // Epoch -1 without an id never opens a session.
    let sessionless = consumer.send(&fetch(&topic, 0, -1, all, 0)).await?;
    ensure!(
        sessionless.error_code == 0 && sessionless.session_id == 0,
        "{sessionless:?}"
    );
    ensure!(answered(&sessionless).len() == PARTITIONS as usize);
    Ok(())
}

/// Broker CPU (user + system) in seconds, from /proc.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    ensure!(fields.len() > 13, "short /proc/{pid}/stat: {stat}");
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let getconf = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    let hz: f64 = String::from_utf8_lossy(&getconf.stdout).trim().parse()?;
    Ok(ticks / hz)
}

/// Not a pass/fail test: the broker CPU an idle consumer of 1,000 partitions costs,
/// polling with full sessionless fetches and then with an incremental session, each for
/// FETCH_SESSION_CPU_SECS (default 30) at max wait FETCH_SESSION_CPU_WAIT_MS (default 500,
/// the Java consumer's fetch.max.wait.ms). Against a broker that grants no sessions both
/// runs are full fetches.
///
///     cargo test -p fjord-e2e --test fetch_sessions -- --ignored --nocapture
#[tokio::test]
#[ignore]
async fn measure_idle_consumer_cpu() -> Result<()> {
    let secs: u64 = std::env::var("FETCH_SESSION_CPU_SECS").map_or(Ok(30), |s| s.parse())?;
    let wait_ms: i32 = std::env::var("FETCH_SESSION_CPU_WAIT_MS").map_or(Ok(500), |s| s.parse())?;
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let result = measure(&broker, secs, wait_ms).await;
    if let Err(e) = &result {
        eprintln!("failed: {e:#}\n{}", broker.logs());
    }
    result
}

async fn measure(broker: &BrokerProcess, secs: u64, wait_ms: i32) -> Result<()> {
    let pid = broker.pid().context("broker pid")?;
    let topic = unique_topic("sessions-cpu");
    create_topic(broker, &topic).await?;
    let mut conn = common::connection(&broker.bootstrap()).await?;
    let all: Vec<FetchPartition> = (0..PARTITIONS).map(|p| partition(p, 0)).collect();
    // The broker's own idle cost with these partitions, no consumer polling.
    let cpu_before = cpu_seconds(pid)?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = cpu_seconds(pid)? - cpu_before;
    println!(
        "no consumer: broker CPU {cpu:.2} s in {:.1} s = {:.1}% of a core",
        started.elapsed().as_secs_f64(),
        100.0 * cpu / started.elapsed().as_secs_f64()
    );
    for sessions in [false, true] {
        let (mut session, mut epoch) = (0, if sessions { 0 } else { -1 });
        let cpu_before = cpu_seconds(pid)?;
        let started = Instant::now();
        let mut polls = 0u64;
        let mut answered_partitions = 0usize;
        while started.elapsed() < Duration::from_secs(secs) {
            let parts = if epoch > 0 { vec![] } else { all.clone() };
            let resp = match conn
                .send(&fetch(&topic, session, epoch, parts, wait_ms))
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    // A broker cut off from the controller closes connections: start over.
                    println!("reconnecting after: {e}");
                    conn = common::connection(&broker.bootstrap()).await?;
                    (session, epoch) = (0, if sessions { 0 } else { -1 });
                    continue;
                }
            };
            ensure!(resp.error_code == 0, "{resp:?}");
            answered_partitions += answered(&resp).len();
            polls += 1;
            if sessions && resp.session_id != 0 {
                session = resp.session_id;
                epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
            }
        }
        let cpu = cpu_seconds(pid)? - cpu_before;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{}: {polls} polls in {elapsed:.1} s, broker CPU {cpu:.2} s = {:.1}% of a core, {:.0} us per poll, {:.1} partitions answered per poll",
            if sessions { "incremental session" } else { "sessionless full fetches" },
            100.0 * cpu / elapsed,
            1e6 * cpu / polls as f64,
            answered_partitions as f64 / polls as f64,
        );
    }
    Ok(())
}
