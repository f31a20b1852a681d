//! `scaling-workload`: the live traffic of the Kubernetes suite's `scaling` scenario
//! (e2e/k8s.sh), run while the cluster scales out, rebalances, drains and scales in.
//!
//!     scaling-workload --bootstrap B --topic T --partitions N --group G --stop-file F
//!
//! Waits until topic T has its N partitions, each with a leader; then an acks=all
//! idempotent producer writes records whose values carry sequence numbers
//! (`scaling-<id>`, keyed by the id so they spread over the partitions) at `--rate`,
//! and `--consumers` members of group G (each its own librdkafka consumer, committing
//! offsets) read T. Prints `scaling-workload: ready` on stdout once the producer has
//! an acknowledgement and every member an assignment.
//!
//! When F appears, holding the suite's figures (`moved_partitions=P` and
//! `balance_max_over_min=B`, one a line), the producer stops and waits for its records
//! in flight, the group reads on until it has delivered every acknowledged id (or
//! `--drain-timeout-s` passes), and T is read back in full from the beginning by a
//! fresh consumer outside the group. The last line on stdout is the summary
//! (`scaling: acked=...`, see fjord_e2e::scaling); the exit status is 0 only when it
//! passes. Every wait has a deadline, and the workload stops if the process that
//! started it exits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use fjord_e2e::bench::due;
use fjord_e2e::rdkafka_context::Diagnostics;
use fjord_e2e::scaling::{id_of, value_for, StallTracker, SuiteFigures, Summary};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser)]
#[command(
    name = "scaling-workload",
    about = "Producer and consumer group run while the cluster scales (e2e/k8s.sh)"
)]
struct Cli {
    /// Comma-separated bootstrap addresses.
    #[arg(long)]
    bootstrap: String,
    /// Topic to write and read (created by the suite).
    #[arg(long)]
    topic: String,
    /// Partitions the topic has: the workload starts once each has a leader.
    #[arg(long)]
    partitions: usize,
    /// Consumer group id.
    #[arg(long)]
    group: String,
    /// Members of the consumer group.
    #[arg(long, default_value_t = 3)]
    consumers: usize,
    /// Records per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// The stop signal: the file whose appearance ends the run, with the suite's
    /// figures.
    #[arg(long)]
    stop_file: PathBuf,
    /// Deadline of the whole run, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_s: u64,
    /// Bound on each wait after the stop: records in flight, the group's catch-up and
    /// the read-back, in seconds.
    #[arg(long, default_value_t = 120)]
    drain_timeout_s: u64,
}

/// How often the producer looks for the stop file and the consumers for their stop.
const POLL: Duration = Duration::from_millis(100);

/// Acknowledged ids and the gaps between acknowledgements, from the producer's polling
/// thread. The delivery opaque of each record is its id.
struct Acks {
    epoch: Instant,
    acked: Mutex<(HashSet<u64>, StallTracker)>,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Acks {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl ClientContext for Acks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        Diagnostics.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Diagnostics.error(error, reason);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(_) => {
                let now = self.now_ms();
                let mut acked = self.acked.lock().unwrap();
                acked.0.insert(id as u64);
                acked.1.ack(now);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("record {id} not delivered: {e}"));
            }
        }
    }
}

fn config(cli: &Cli) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &cli.bootstrap);
    cfg
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let deadline = Instant::now() + Duration::from_secs(cli.timeout_s);
    wait_for_topic(&cli, deadline)?;

    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let assigned = Arc::new(AtomicU64::new(0));
    let members: Vec<_> = (0..cli.consumers)
        .map(|member| {
            let consumer = group_member(&cli)?;
            let (delivered, stop, assigned) =
                (delivered.clone(), stop_consumers.clone(), assigned.clone());
            Ok(thread::Builder::new()
                .name(format!("member-{member}"))
                .spawn(move || run_member(consumer, &delivered, &stop, &assigned))?)
        })
        .collect::<Result<_>>()?;

    let acks = Acks {
        epoch: Instant::now(),
        acked: Mutex::new((HashSet::new(), StallTracker::default())),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let mut cfg = config(&cli);
    cfg.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // A record is retried until the run's deadline rather than given up on.
        .set("message.timeout.ms", (cli.timeout_s * 1000).to_string());
    let producer: ThreadedProducer<Acks> = cfg
        .create_with_context(acks)
        .context("creating the producer")?;

    let figures = produce(&cli, &producer, &assigned, deadline)?;
    let flushed = producer.flush(Duration::from_secs(cli.drain_timeout_s));
    let acks = producer.context();
    let (acked, max_stall_ms) = {
        let mut guard = acks.acked.lock().unwrap();
        let now = acks.now_ms();
        guard.1.close(now);
        // On stderr with the wall-clock time it ended, to line it up with the suite's
        // and the operator's logs.
        let ended = SystemTime::now() - Duration::from_millis(now - guard.1.max_ended_ms());
        eprintln!(
            "scaling-workload: longest gap between acknowledgements {} ms, ended at {} ms \
             since the Unix epoch",
            guard.1.max_ms(),
            ended
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        (guard.0.clone(), guard.1.max_ms())
    };
    if let Err(e) = flushed {
        eprintln!("scaling-workload: records still in flight after the drain timeout: {e}");
    }
    let failed = acks.failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!(
            "scaling-workload: {failed} records not delivered; first: {}",
            acks.first_error.lock().unwrap().clone().unwrap_or_default()
        );
    }
    eprintln!(
        "scaling-workload: stopped producing after {} acknowledgements; group draining",
        acked.len()
    );

    let drain_deadline = Instant::now() + Duration::from_secs(cli.drain_timeout_s);
    while Instant::now() < drain_deadline {
        let missing = {
            let seen = delivered.lock().unwrap();
            acked.iter().filter(|id| !seen.contains(id)).count()
        };
        if missing == 0 {
            break;
        }
        thread::sleep(POLL);
    }
    stop_consumers.store(true, Ordering::Relaxed);
    for m in members {
        m.join().expect("a group member panicked")?;
    }
    let group_delivered = std::mem::take(&mut *delivered.lock().unwrap());

    let read_back = read_back(&cli)?;
    let summary = Summary::compute(&acked, &read_back, &group_delivered, figures, max_stall_ms);
    println!("{}", summary.line());
    if !summary.passed() {
        bail!("the scaling run failed: {}", summary.line());
    }
    Ok(())
}

/// Waits until the topic has its partitions, each with a leader.
fn wait_for_topic(cli: &Cli, deadline: Instant) -> Result<()> {
    let probe: BaseConsumer<Diagnostics> = config(cli)
        .create_with_context(Diagnostics)
        .context("creating the metadata probe")?;
    loop {
        let ready = probe
            .fetch_metadata(Some(&cli.topic), Duration::from_secs(5))
            .map(|md| {
                md.topics().iter().any(|t| {
                    t.error().is_none()
                        && t.partitions().len() == cli.partitions
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
        if matches!(ready, Ok(true)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "topic {:?} has no {} partitions with leaders by the deadline ({ready:?})",
                cli.topic,
                cli.partitions
            );
        }
        thread::sleep(POLL);
    }
}

/// Sends records at the rate until the stop file holds the suite's figures.
fn produce(
    cli: &Cli,
    producer: &ThreadedProducer<Acks>,
    assigned: &AtomicU64,
    deadline: Instant,
) -> Result<SuiteFigures> {
    let start = Instant::now();
    let mut next_check = start;
    let mut ready = false;
    let parent = std::os::unix::process::parent_id();
    for id in 1u64.. {
        let now = Instant::now();
        if now >= next_check {
            next_check = now + POLL;
            if let Some(figures) = stop_figures(&cli.stop_file)? {
                return Ok(figures);
            }
            if now > deadline {
                bail!("no stop file {} by the deadline", cli.stop_file.display());
            }
            // A suite killed without its cleanup must not leave the workload running
            // (it would hold what the suite held, such as the suite's lock file).
            if std::os::unix::process::parent_id() != parent {
                bail!("the process that started the workload has exited");
            }
            if !ready
                && assigned.load(Ordering::Relaxed) == cli.consumers as u64
                && !producer.context().acked.lock().unwrap().0.is_empty()
            {
                ready = true;
                println!("scaling-workload: ready");
            }
        }
        if let Some(wait) = (start + due(id, cli.rate)).checked_duration_since(now) {
            thread::sleep(wait);
        }
        let (key, value) = (id.to_string(), value_for(id));
        let mut record = BaseRecord::with_opaque_to(&cli.topic, id as usize)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    thread::sleep(Duration::from_millis(10)); // queue drains as acks come
                }
                Err((e, _)) => bail!("sending record {id}: {e}"),
            }
        }
    }
    unreachable!("ids run out")
}

/// The figures in the stop file, once it exists and holds both. The suite writes it
/// whole (a rename), so a file that fails to parse is an error, not a partial write.
fn stop_figures(path: &Path) -> Result<Option<SuiteFigures>> {
    match std::fs::read_to_string(path) {
        Ok(text) => SuiteFigures::parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the stop file {}", path.display())),
    }
}

fn group_member(cli: &Cli) -> Result<BaseConsumer<Diagnostics>> {
    let consumer: BaseConsumer<Diagnostics> = config(cli)
        .set("group.id", &cli.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.partition.eof", "false")
        .create_with_context(Diagnostics)
        .context("creating a group member")?;
    consumer.subscribe(&[&cli.topic])?;
    Ok(consumer)
}

/// One member's loop: records every id it is given until told to stop, then commits.
/// `assigned` counts the members that have had an assignment.
fn run_member(
    consumer: BaseConsumer<Diagnostics>,
    delivered: &Mutex<HashSet<u64>>,
    stop: &AtomicBool,
    assigned: &AtomicU64,
) -> Result<()> {
    let mut counted = false;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(m)) => {
                if let Some(id) = m.payload().and_then(id_of) {
                    delivered.lock().unwrap().insert(id);
                }
            }
            // Brokers leave and partitions move: the member carries on, as a client
            // application would.
            Some(Err(e)) => eprintln!("scaling-workload: group member: {e}"),
        }
        if !counted && consumer.assignment().is_ok_and(|a| a.count() > 0) {
            counted = true;
            assigned.fetch_add(1, Ordering::Relaxed);
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing read since the last automatic commit.
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => eprintln!("scaling-workload: final commit: {e}"),
    }
    Ok(())
}

/// Every id in the topic, read from the beginning of each partition to its high
/// watermark by a consumer outside the group.
fn read_back(cli: &Cli) -> Result<Vec<u64>> {
    let consumer: BaseConsumer<Diagnostics> = config(cli)
        // Offsets are assigned, never committed: the group id only satisfies librdkafka.
        .set("group.id", format!("{}-read-back", cli.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(Diagnostics)
        .context("creating the read-back consumer")?;
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = Vec::with_capacity(cli.partitions);
    for p in 0..cli.partitions as i32 {
        let (_, high) = consumer
            .fetch_watermarks(&cli.topic, p, timeout)
            .with_context(|| format!("high watermark of partition {p}"))?;
        tpl.add_partition_offset(&cli.topic, p, Offset::Beginning)?;
        if high > 0 {
            remaining += 1;
        }
        ends.push(high);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(cli.drain_timeout_s);
    let mut ids = Vec::new();
    while remaining > 0 {
        if Instant::now() > deadline {
            bail!("read-back: {remaining} partitions not read to their end by the deadline");
        }
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(m)) => {
                if let Some(id) = m.payload().and_then(id_of) {
                    ids.push(id);
                }
                if m.offset() + 1 == ends[m.partition() as usize] {
                    remaining -= 1;
                }
            }
            Some(Err(e)) => eprintln!("scaling-workload: read-back: {e}"),
        }
    }
    Ok(ids)
}
