//! Faults on a 3-broker cluster (replication factor 3, min.insync.replicas 2) while an
//! idempotent librdkafka producer writes keyed records with acks=all:
//!
//! - the partition leader is killed with SIGKILL, then restarted on its data;
//! - the partition leader is paused with SIGSTOP (peers see silence, not a closed
//!   socket), then resumed and finds itself a follower;
//! - the partition leader is cut off from the other brokers with iptables, then healed;
//!   while cut off it must not acknowledge any acks=all write;
//! - the partition leader is stopped with SIGTERM (controlled shutdown: it hands its
//!   leadership over and exits 0 within the grace period), then started again; once
//!   more when it is also the active controller.
//!
//! After each, a checker reads the partition from the beginning and compares it with what
//! the producer was told was acknowledged: nothing acknowledged may be missing, nothing
//! may be there twice, and each key's sequence numbers must appear in increasing order.
//!
//! Each scenario owns its cluster on its own loopback addresses, so they may run in
//! parallel. The isolation scenario needs root and iptables and fails, not skips,
//! without them.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{Client, ClientConfig, FetchOptions, NewTopic};
use fjord_e2e::cluster::PartitionLeader;
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use kafka_protocol::ResponseError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

/// Bound on every failover, recovery and progress wait.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a controlled shutdown (SIGTERM → exit).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Keys the producer cycles through; each has its own sequence.
const KEYS: u32 = 8;
/// Acknowledged records the producer must add in each phase to count as progress.
const PROGRESS: usize = 300;
/// Sends awaited at most at once by the producer task.
const MAX_PENDING: usize = 200;
const PARTITION: i32 = 0;
/// What makes a new broker fence a silent one in about two seconds.
const CLUSTER_ARGS: [&str; 3] = [
    "--broker-heartbeat-interval-ms=200",
    "--broker-session-timeout-ms=2000",
    "--replica-lag-time-max-ms=2000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_and_restarted_loses_nothing_acknowledged() -> Result<()> {
    let (mut cluster, topic) = cluster_with_topic(3, false).await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload.wait_for_acks(PROGRESS, "before the kill").await?;

    let old = in_sync_leader(&cluster, &topic).await?;
    cluster.kill9(old.node_id).await?;
    new_leader_after(&cluster, &topic, &old).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "through the new leader")
        .await?;

    cluster.restart(old.node_id).await?;
    in_sync_leader(&cluster, &topic).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "after the restart")
        .await?;

    let outcome = workload.finish().await?;
    check(&cluster, &topic, &outcome).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_paused_and_resumed_loses_nothing_acknowledged() -> Result<()> {
    let (mut cluster, topic) = cluster_with_topic(3, false).await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload.wait_for_acks(PROGRESS, "before the pause").await?;

    let old = in_sync_leader(&cluster, &topic).await?;
    cluster.sigstop(old.node_id)?;
    new_leader_after(&cluster, &topic, &old).await?;
    workload
        .wait_for_acks(
            workload.acked() + PROGRESS,
            "while the old leader is paused",
        )
        .await?;

    // The old leader wakes up believing it leads; it must learn otherwise and catch up.
    cluster.sigcont(old.node_id)?;
    in_sync_leader(&cluster, &topic).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "after the resume")
        .await?;

    let outcome = workload.finish().await?;
    check(&cluster, &topic, &outcome).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_stopped_with_sigterm_hands_over_and_loses_nothing() -> Result<()> {
    let (mut cluster, topic) = cluster_with_topic(3, false).await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload.wait_for_acks(PROGRESS, "before the stop").await?;

    let old = in_sync_leader(&cluster, &topic).await?;
    stop_and_restart(&mut cluster, &topic, workload, &old).await
}

/// The broker stopped is the active controller and the partition's leader: its
/// leadership moves in its controlled shutdown while a new controller is elected. The
/// new leader must not propose the stopping broker back into the ISR (KIP-841): with
/// no controller to refuse it, acks=all writes would wait for the election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_controller_stopped_with_sigterm_hands_over_and_loses_nothing() -> Result<()> {
    let (mut cluster, _) = cluster_with_topic(3, false).await?;
    let controller = active_controller(&cluster).await?;
    let topic = unique_topic("faults-controller");
    let mut replicas = vec![controller];
    replicas.extend(cluster.node_ids().into_iter().filter(|&n| n != controller));
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    Client::connect(&bootstrap, ClientConfig::default())
        .await?
        .create_topic(NewTopic {
            assignments: vec![replicas],
            ..NewTopic::new(&topic, -1, -1).with_config("min.insync.replicas", "2")
        })
        .await
        .with_context(|| format!("creating {topic}"))?;
    let old = cluster
        .wait_for_leader(
            &topic,
            PARTITION,
            FAILOVER_TIMEOUT,
            &format!("broker {controller}, the controller, leading with all 3 in sync"),
            |l| l.node_id == controller && l.isr.len() == 3,
        )
        .await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload.wait_for_acks(PROGRESS, "before the stop").await?;
    stop_and_restart(&mut cluster, &topic, workload, &old).await
}

/// Stops the leader `old` with SIGTERM, has the producer go on through the new leader,
/// restarts `old`, and checks what was acknowledged; prints the longest wait between
/// two acknowledgements before the stop and through it.
async fn stop_and_restart(
    cluster: &mut Cluster,
    topic: &str,
    workload: Workload,
    old: &PartitionLeader,
) -> Result<()> {
    let before = workload.longest_gap();
    // The broker's own grace is 10 s (--shutdown-grace-ms); a controlled shutdown that
    // does not finish well inside what Kubernetes or docker allow is a failure.
    let status = cluster.sigterm(old.node_id, SHUTDOWN_TIMEOUT).await?;
    ensure!(
        status.success(),
        "broker {} stopped with {status}",
        old.node_id
    );
    new_leader_after(cluster, topic, old).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "after the controlled shutdown")
        .await?;
    println!(
        "longest wait between two acknowledgements: {before:?} before the stop, {:?} \
         through the controlled shutdown of broker {}",
        workload.longest_gap(),
        old.node_id
    );

    cluster.restart(old.node_id).await?;
    in_sync_leader(cluster, topic).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "after the restart")
        .await?;
    let outcome = workload.finish().await?;
    check(cluster, topic, &outcome).await
}

/// The broker whose `fjord_active_controller` gauge is 1.
async fn active_controller(cluster: &Cluster) -> Result<i32> {
    common::wait_for("an active controller", FAILOVER_TIMEOUT, || async {
        for id in cluster.node_ids() {
            let text = common::scrape(&cluster.broker(id).http_addr()).await?;
            if common::metric(&text, "fjord_active_controller", &[]) == Some(1.0) {
                return Ok(Ok(id));
            }
        }
        Ok(Err(
            "no broker reports fjord_active_controller 1".to_string()
        ))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_stops_acknowledging_and_loses_nothing() -> Result<()> {
    let (mut cluster, topic) = cluster_with_topic(3, true).await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload
        .wait_for_acks(PROGRESS, "before the isolation")
        .await?;

    let old = in_sync_leader(&cluster, &topic).await?;
    cluster.isolate(old.node_id).await?;
    // The test process still reaches the isolated broker (its connections come from
    // 127.0.0.1): ask it directly to take acks=all writes while the others move on.
    let probes = Probes::start(cluster.broker(old.node_id).bootstrap(), topic.clone());
    let elected = new_leader_after(&cluster, &topic, &old).await;
    let progressed = match &elected {
        Ok(_) => {
            workload
                .wait_for_acks(
                    workload.acked() + PROGRESS,
                    "while the old leader is isolated",
                )
                .await
        }
        Err(_) => Ok(()),
    };
    let probes = probes.finish().await?;
    println!("acks=all writes sent to the isolated leader: {probes:?}");
    elected?;
    progressed?;
    ensure!(
        probes.attempts > 0,
        "no write reached the isolated leader to probe it"
    );
    ensure!(
        probes.acknowledged == 0,
        "the isolated leader acknowledged {} of {} acks=all writes it could not replicate",
        probes.acknowledged,
        probes.attempts
    );

    cluster.heal()?;
    in_sync_leader(&cluster, &topic).await?;
    workload
        .wait_for_acks(workload.acked() + PROGRESS, "after the heal")
        .await?;

    let outcome = workload.finish().await?;
    check(&cluster, &topic, &outcome).await
}

/// The baseline of the scenarios: without faults, on a single broker, the checker finds
/// exactly what the producer was told. When this fails, the workload or the checker is
/// wrong, not replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_the_checker_agrees_with_the_producer() -> Result<()> {
    let (cluster, topic) = cluster_with_topic(1, false).await?;
    let workload = Workload::start(&cluster.bootstrap(), &topic)?;
    workload.wait_for_acks(PROGRESS, "on one broker").await?;
    let outcome = workload.finish().await?;
    ensure!(
        outcome.failed == 0,
        "sends failed: {:?}",
        outcome.first_errors
    );
    check(&cluster, &topic, &outcome).await
}

/// A cluster of `brokers` and a fresh topic of one partition replicated on min(N, 3) of
/// them, min.insync.replicas 2 from three brokers up (else 1), its replicas all in sync.
async fn cluster_with_topic(brokers: u32, firewall: bool) -> Result<(Cluster, String)> {
    let replication_factor = brokers.min(3);
    let min_insync_replicas = if brokers >= 3 { 2 } else { 1 };
    let cluster = Cluster::start(ClusterOptions {
        brokers,
        voters: replication_factor,
        replication_factor,
        min_insync_replicas,
        args: CLUSTER_ARGS.map(String::from).into(),
        firewall,
        ..ClusterOptions::default()
    })
    .await?;
    let topic = unique_topic("faults");
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    client
        .create_topic(
            NewTopic::new(&topic, 1, replication_factor as i16)
                .with_config("min.insync.replicas", min_insync_replicas.to_string()),
        )
        .await
        .with_context(|| format!("creating {topic}"))?;
    in_sync_leader(&cluster, &topic).await?;
    Ok((cluster, topic))
}

/// Waits until the partition has a leader and every broker's replica is in sync (the
/// topics here are replicated on every broker).
async fn in_sync_leader(cluster: &Cluster, topic: &str) -> Result<PartitionLeader> {
    let replicas = cluster.node_ids().len();
    cluster
        .wait_for_leader(
            topic,
            PARTITION,
            FAILOVER_TIMEOUT,
            &format!("with all {replicas} replicas in sync"),
            |l| l.isr.len() == replicas,
        )
        .await
}

/// Waits until another broker leads the partition in a later leader epoch.
async fn new_leader_after(
    cluster: &Cluster,
    topic: &str,
    old: &PartitionLeader,
) -> Result<PartitionLeader> {
    let leader = cluster
        .wait_for_leader(
            topic,
            PARTITION,
            FAILOVER_TIMEOUT,
            &format!(
                "other than broker {} after epoch {}",
                old.node_id, old.leader_epoch
            ),
            |l| l.node_id != old.node_id && l.leader_epoch > old.leader_epoch,
        )
        .await?;
    println!(
        "leader of {topic}/{PARTITION}: broker {} (epoch {}) → broker {} (epoch {})",
        old.node_id, old.leader_epoch, leader.node_id, leader.leader_epoch
    );
    Ok(leader)
}

/// An idempotent acks=all producer writing `k<key>` → `k<key>:<seq>` in the background,
/// recording what each record's delivery report said.
struct Workload {
    stop: Arc<AtomicBool>,
    progress: Arc<Mutex<Outcome>>,
    task: JoinHandle<Result<Outcome>>,
}

/// What the producer was told.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// (key, seq) of every acknowledged record.
    acked: Vec<(u32, u64)>,
    /// The highest offset an acknowledgement named: the read-back goes at least
    /// that far (right after a leader change the new leader's high watermark can
    /// trail the old one's until its followers fetch).
    last_acked_offset: i64,
    /// Records whose delivery failed for good (not acknowledged; they may or may not be
    /// in the log).
    failed: u64,
    first_errors: Vec<String>,
    /// When the latest acknowledgement arrived, and the longest wait between two: a
    /// figure for the reader (how long a failover held acks=all writes), not asserted.
    last_ack_at: Option<Instant>,
    longest_gap: Duration,
}

impl Outcome {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(what);
        }
    }
}

impl Workload {
    fn start(bootstrap: &str, topic: &str) -> Result<Workload> {
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Failovers take seconds; a record is retried until it is acknowledged.
            .set("message.timeout.ms", "120000")
            // A paused leader answers nothing: give up on a request in time to fail over.
            // request.timeout.ms bounds produce requests; every other request (the
            // metadata request that finds the new leader among them) waits up to
            // socket.timeout.ms, 60 s by default, when it went to the paused broker.
            .set("request.timeout.ms", "5000")
            .set("socket.timeout.ms", "5000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("retry.backoff.ms", "100")
            .create()
            .context("creating the rdkafka producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Mutex::new(Outcome::default()));
        let task = tokio::spawn(produce(
            producer,
            topic.to_string(),
            stop.clone(),
            progress.clone(),
        ));
        Ok(Workload {
            stop,
            progress,
            task,
        })
    }

    fn acked(&self) -> usize {
        self.progress.lock().unwrap().acked.len()
    }

    fn longest_gap(&self) -> Duration {
        self.progress.lock().unwrap().longest_gap
    }

    async fn wait_for_acks(&self, at_least: usize, what: &str) -> Result<()> {
        let progress = self.progress.clone();
        common::wait_for(
            &format!("{at_least} acknowledged records {what}"),
            FAILOVER_TIMEOUT,
            || {
                let p = progress.lock().unwrap();
                let seen = if p.acked.len() >= at_least {
                    Ok(())
                } else {
                    Err(format!(
                        "{} acknowledged, {} failed {:?}",
                        p.acked.len(),
                        p.failed,
                        p.first_errors
                    ))
                };
                async move { Ok(seen) }
            },
        )
        .await
    }

    /// Stops sending, waits for every pending record's answer.
    async fn finish(self) -> Result<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("producer task")?
    }
}

async fn produce(
    producer: FutureProducer,
    topic: String,
    stop: Arc<AtomicBool>,
    progress: Arc<Mutex<Outcome>>,
) -> Result<Outcome> {
    let mut pending: VecDeque<(u32, u64, DeliveryFuture)> = VecDeque::new();
    let mut sequences = [0u64; KEYS as usize];
    let mut next_key = 0u32;
    let settle = async |pending: &mut VecDeque<(u32, u64, DeliveryFuture)>| {
        let Some((key, seq, delivery)) = pending.pop_front() else {
            return;
        };
        let answer = delivery.await;
        let mut p = progress.lock().unwrap();
        match answer {
            Ok(Ok(delivery)) => {
                let now = Instant::now();
                if let Some(last) = p.last_ack_at.replace(now) {
                    p.longest_gap = p.longest_gap.max(now - last);
                }
                p.acked.push((key, seq));
                p.last_acked_offset = p.last_acked_offset.max(delivery.offset);
            }
            Ok(Err((e, _))) => p.fail(format!("k{key}:{seq}: {e}")),
            Err(_) => p.fail(format!("k{key}:{seq}: delivery canceled")),
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let key = next_key;
        next_key = (next_key + 1) % KEYS;
        sequences[key as usize] += 1;
        let seq = sequences[key as usize];
        let (k, v) = (format!("k{key}"), format!("k{key}:{seq}"));
        let mut record = FutureRecord::to(&topic)
            .partition(PARTITION)
            .key(&k)
            .payload(&v);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back((key, seq, delivery));
                    break;
                }
                // The local queue is full: wait for an answer, then send again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if pending.is_empty() {
                        // Poll interval while librdkafka drains its queue.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    settle(&mut pending).await;
                }
                Err((e, _)) => {
                    progress
                        .lock()
                        .unwrap()
                        .fail(format!("k{key}:{seq}: not sent: {e}"));
                    break;
                }
            }
        }
        if pending.len() >= MAX_PENDING {
            settle(&mut pending).await;
        }
    }
    while !pending.is_empty() {
        settle(&mut pending).await;
    }
    let outcome = progress.lock().unwrap().clone();
    Ok(outcome)
}

/// acks=all writes sent straight to one broker, one at a time, until stopped.
struct Probes {
    stop: Arc<AtomicBool>,
    task: JoinHandle<ProbeResults>,
}

#[derive(Debug, Default)]
struct ProbeResults {
    attempts: u32,
    acknowledged: u32,
    /// Answers by kind: an error code's name, "timeout", "connection: ...".
    answers: BTreeMap<String, u32>,
}

impl Probes {
    fn start(addr: String, topic: String) -> Probes {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut results = ProbeResults::default();
            let config = ClientConfig {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::default()
            };
            while !flag.load(Ordering::Relaxed) {
                results.attempts += 1;
                let value = format!("probe-{}", results.attempts);
                let answer = tokio::time::timeout(Duration::from_secs(6), async {
                    let conn = fjord_client::Connection::connect(&addr, &config).await?;
                    let batch =
                        common::encode_batch(&[common::BatchRecord::new(value, now_ms())], None)?;
                    common::produce_raw(&conn, &topic, PARTITION, -1, batch).await
                })
                .await;
                let kind = match answer {
                    Ok(Ok(p)) if p.error_code == 0 => {
                        results.acknowledged += 1;
                        "acknowledged".to_string()
                    }
                    Ok(Ok(p)) => ResponseError::try_from_code(p.error_code)
                        .map(|e| format!("{e:?}"))
                        .unwrap_or_else(|| format!("error code {}", p.error_code)),
                    Ok(Err(e)) => format!("no answer: {e:#}"),
                    Err(_) => "timeout".to_string(),
                };
                *results.answers.entry(kind).or_default() += 1;
                // Between probes: a poll interval, not a synchronisation.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            results
        });
        Probes { stop, task }
    }

    async fn finish(self) -> Result<ProbeResults> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.context("probe task")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads the whole partition back and compares it with what was acknowledged.
async fn check(cluster: &Cluster, topic: &str, outcome: &Outcome) -> Result<()> {
    let records = read_all(cluster, topic, outcome.last_acked_offset).await?;
    let acked: HashSet<(u32, u64)> = outcome.acked.iter().copied().collect();
    let mut seen: HashMap<(u32, u64), u32> = HashMap::new();
    let mut highest: HashMap<u32, u64> = HashMap::new();
    let mut out_of_order = 0u64;
    let mut probes_kept = 0u64;
    for value in &records {
        if value.starts_with("probe-") {
            probes_kept += 1;
            continue;
        }
        let (key, seq) = parse_value(value).with_context(|| format!("record {value:?}"))?;
        let count = seen.entry((key, seq)).or_default();
        *count += 1;
        if *count > 1 {
            continue;
        }
        let top = highest.entry(key).or_default();
        if seq < *top {
            out_of_order += 1;
        }
        *top = (*top).max(seq);
    }
    let lost = acked.iter().filter(|r| !seen.contains_key(r)).count();

    let duplicated: u64 = seen.values().map(|&n| u64::from(n) - 1).sum();
    println!(
        "acknowledged {}, lost {lost}, duplicated {duplicated}, out-of-order-per-key {out_of_order} \
         (read {} records; {} sends failed{})",
        acked.len(),
        records.len(),
        outcome.failed,
        if outcome.first_errors.is_empty() {
            String::new()
        } else {
            format!(", first: {:?}", outcome.first_errors)
        }
    );
    ensure!(!acked.is_empty(), "nothing was acknowledged");
    ensure!(
        lost == 0 && duplicated == 0 && out_of_order == 0,
        "lost {lost}, duplicated {duplicated}, out of order {out_of_order}"
    );
    // A write only the cut-off leader took was never acknowledged; the log it ends up in
    // must be the new leader's, without it.
    ensure!(
        probes_kept == 0,
        "{probes_kept} writes taken only by the isolated leader are in the log"
    );
    Ok(())
}

fn parse_value(value: &str) -> Result<(u32, u64)> {
    let (key, seq) = value
        .strip_prefix('k')
        .and_then(|v| v.split_once(':'))
        .context("not k<key>:<seq>")?;
    Ok((key.parse()?, seq.parse()?))
}

/// Every record value of the partition up to its high watermark, in offset order,
/// reading at least past `at_least` (the high watermark must get there).
async fn read_all(cluster: &Cluster, topic: &str, at_least: i64) -> Result<Vec<String>> {
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = match client
            .fetch(topic, PARTITION, offset, &FetchOptions::default())
            .await
        {
            Ok(f) => f,
            Err(e) if Instant::now() < deadline => {
                println!("fetch at offset {offset}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => bail!("reading {topic} at offset {offset}: {e}"),
        };
        let from = offset;
        for record in fetched.records.iter().filter(|r| r.offset >= from) {
            let value = record.value.as_deref().unwrap_or_default();
            values.push(String::from_utf8_lossy(value).into_owned());
            offset = record.offset + 1;
        }
        if offset >= fetched.high_watermark && offset > at_least {
            return Ok(values);
        }
        if offset >= fetched.high_watermark {
            // Not there yet: wait for the high watermark to move.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ensure!(
            Instant::now() < deadline,
            "read {topic} only to offset {offset} of {} within {FAILOVER_TIMEOUT:?}",
            fetched.high_watermark
        );
    }
}
