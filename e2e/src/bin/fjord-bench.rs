//! `fjord-bench`: the librdkafka load generator e2e/bench.sh drives Fjord and Apache Kafka
//! with, so that both are measured by the same client.
//!
//!     fjord-bench create-topic --bootstrap B --topic T [--replication-factor 3] [--config k=v]
//!     fjord-bench produce      --bootstrap B --topic T --count N --size S --acks 1|all
//!                              [--payload repeated|text]
//!     fjord-bench latency      --bootstrap B --topic T --rate R --count N --size S --acks 1
//!     fjord-bench end-to-end   --bootstrap B --topic T --rate R --count N --size S --acks 1
//!     fjord-bench consume      --bootstrap B --topic T --count N
//!
//! Every run prints one JSON object on stdout. A run that sees any delivery failure,
//! consumer error or offset gap prints the object with its error count and first error,
//! then exits 1: no error is dropped, and no figure is reported from a failed run. Every
//! run has a deadline (`--timeout-s`). Producer settings not set by a flag are
//! librdkafka's defaults; `-X key=value` sets any librdkafka property.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use fjord_e2e::bench::{
    check_record_size, due, latency_histogram, latency_summary, parse_acks, parse_property,
    read_stamp, record_latency, stamp, throughput,
};
use fjord_e2e::rdkafka_context::Diagnostics;
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "fjord-bench",
    about = "librdkafka load generator for e2e/bench.sh"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates a topic and waits until every partition has a leader and a full ISR.
    CreateTopic(CreateTopicArgs),
    /// Sends COUNT records as fast as the producer's queue takes them; throughput from the
    /// first send to the last acknowledgement.
    Produce(ProduceArgs),
    /// Sends COUNT records at a fixed RATE; latency from send to acknowledgement.
    Latency(RateArgs),
    /// As `latency`, with a consumer in this process reading the partition from its end:
    /// latency from send to receipt, by the send time carried in each record.
    EndToEnd(RateArgs),
    /// Reads COUNT records from the start of the partition (assigned, no group join).
    Consume(ConsumeArgs),
}

#[derive(Args)]
struct Common {
    /// Comma-separated bootstrap addresses.
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    /// Partition to produce to and read from.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Deadline of the whole run, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Any librdkafka property, KEY=VALUE (repeatable); applied after the flags.
    #[arg(short = 'X', value_parser = parse_property)]
    property: Vec<(String, String)>,
}

#[derive(Args)]
struct CreateTopicArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Topic config, KEY=VALUE (repeatable).
    #[arg(long = "config", value_parser = parse_property)]
    configs: Vec<(String, String)>,
}

#[derive(Args)]
struct ProducerArgs {
    /// Records to send.
    #[arg(long)]
    count: u64,
    /// Value bytes per record (no key).
    #[arg(long)]
    size: usize,
    /// 0, 1 or all.
    #[arg(long, value_parser = parse_acks, default_value = "1")]
    acks: String,
    /// librdkafka `linger.ms` (its default is 5).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// librdkafka `batch.size` in bytes (its default is 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: u64,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerArgs,
    /// Record values: one value of repeated bytes, or 1,024 different values of
    /// JSON-like text that compress about as event data does (librdkafka's batches:
    /// lz4 2.6:1, snappy 2.8:1, zstd 4.5:1, gzip 5:1), for runs with
    /// `-X compression.type=...`.
    #[arg(long, value_enum, default_value_t = Payload::Repeated)]
    payload: Payload,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Payload {
    Repeated,
    Text,
}

/// Distinct values of this many per [`text_values`] pool: a 1 MB batch of 1 KB records
/// holds each once, so a codec finds no more repetition than within one event stream.
const TEXT_VALUES: usize = 1024;

/// `count` values of exactly `size` bytes of JSON-like events: a few field names and
/// words from a small vocabulary, with numbers that vary (xorshift, fixed seed).
fn text_values(size: usize, count: usize) -> Vec<Vec<u8>> {
    const WORDS: [&str; 16] = [
        "click", "view", "purchase", "search", "login", "logout", "checkout", "cart", "home",
        "items", "account", "settings", "mobile", "desktop", "tablet", "api",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let mut v = Vec::with_capacity(size + 128);
            while v.len() < size {
                let r = next();
                let word = |shift: u32| WORDS[(r >> shift) as usize % WORDS.len()];
                let event = format!(
                    "{{\"ts\":{},\"user\":\"u{}\",\"event\":\"{}\",\"path\":\"/{}/{}\",\
                     \"device\":\"{}\",\"ms\":{}}}\n",
                    1_700_000_000_000 + (r % 100_000_000),
                    (r >> 20) % 100_000,
                    word(40),
                    word(44),
                    (r >> 48) % 10_000,
                    word(52),
                    (r >> 56) % 250,
                );
                v.extend_from_slice(event.as_bytes());
            }
            v.truncate(size);
            v
        })
        .collect()
}

#[derive(Args)]
struct RateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerArgs,
    /// Records per second (at most 1,000,000).
    #[arg(long)]
    rate: u64,
    /// Seconds at the start whose records are sent but left out of the percentiles
    /// (connection set-up, first metadata round trips).
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Records to read.
    #[arg(long)]
    count: u64,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::CreateTopic(a) => create_topic(&a),
        Cmd::Produce(a) => produce(&a),
        Cmd::Latency(a) => at_rate(&a, false),
        Cmd::EndToEnd(a) => at_rate(&a, true),
        Cmd::Consume(a) => consume(&a),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            if report["errors"].as_u64().unwrap_or(0) > 0 {
                eprintln!(
                    "fjord-bench: {} error(s), first: {}",
                    report["errors"], report["first_error"]
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("fjord-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Delivery reports, counted from the producer's polling thread. The delivery opaque of
/// each record is its send time in nanoseconds since `epoch`, so no per-record state is
/// allocated.
struct Deliveries {
    epoch: Instant,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Send to acknowledgement, for records sent at or after `record_from_ns`; `None` in
    /// throughput runs.
    acks: Option<Mutex<Histogram<u64>>>,
    record_from_ns: u64,
}

impl Deliveries {
    fn new(epoch: Instant, latencies: bool, record_from_ns: u64) -> Self {
        Deliveries {
            epoch,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            acks: latencies.then(|| Mutex::new(latency_histogram())),
            record_from_ns,
        }
    }

    fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap().clone()
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        Diagnostics.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Diagnostics.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(acks) = &self.acks {
                    let sent_ns = sent_ns as u64;
                    if sent_ns >= self.record_from_ns {
                        let now = self.epoch.elapsed();
                        let latency = now.saturating_sub(Duration::from_nanos(sent_ns));
                        record_latency(&mut acks.lock().unwrap(), latency);
                    }
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| format!("delivery failed: {e}"));
            }
        }
    }
}

fn client_config(common: &Common) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &common.bootstrap);
    cfg
}

fn apply_properties(cfg: &mut ClientConfig, common: &Common) {
    for (k, v) in &common.property {
        cfg.set(k, v);
    }
}

fn producer(
    common: &Common,
    p: &ProducerArgs,
    deliveries: Deliveries,
) -> Result<ThreadedProducer<Deliveries>> {
    check_record_size(p.size)?;
    let mut cfg = client_config(common);
    cfg.set("acks", &p.acks)
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_bytes.to_string())
        // A record that cannot be delivered within the run's deadline is a failure.
        .set("message.timeout.ms", (common.timeout_s * 1000).to_string());
    apply_properties(&mut cfg, common);
    cfg.create_with_context(deliveries)
        .context("creating the producer")
}

fn producer_settings(common: &Common, p: &ProducerArgs) -> Value {
    let props: serde_json::Map<String, Value> = common
        .property
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({"topic": common.topic, "partition": common.partition, "size": p.size,
           "acks": p.acks, "linger_ms": p.linger_ms, "batch_bytes": p.batch_bytes,
           "properties": props})
}

/// Hands one record to the producer, waiting while its queue is full (librdkafka's
/// `queue.buffering.max.messages` and `.kbytes` bound what is in flight).
fn send(
    producer: &ThreadedProducer<Deliveries>,
    common: &Common,
    value: &[u8],
    sent_ns: u64,
    deadline: Instant,
) -> Result<()> {
    let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&common.topic, sent_ns as usize)
        .partition(common.partition)
        .payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                if Instant::now() > deadline {
                    bail!("producer queue still full at the deadline");
                }
                record = r;
                // The queue drains at the broker's pace; one millisecond is a few dozen
                // records at most against a queue of 100,000.
                thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("send to {} failed: {e}", common.topic),
        }
    }
}

/// Waits until every record handed to the producer has been acknowledged or failed.
fn flush(producer: &ThreadedProducer<Deliveries>, deadline: Instant) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    producer
        .flush(left)
        .context("records still unacknowledged at the deadline")
}

fn produce(a: &ProduceArgs) -> Result<Value> {
    let (common, p) = (&a.common, &a.producer);
    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs(common.timeout_s);
    let producer = producer(common, p, Deliveries::new(epoch, false, 0))?;
    let values = match a.payload {
        Payload::Repeated => vec![vec![b'x'; p.size]],
        Payload::Text => text_values(p.size, TEXT_VALUES),
    };
    let start = Instant::now();
    for i in 0..p.count {
        let value = &values[i as usize % values.len()];
        send(&producer, common, value, 0, deadline)?;
        // Stop early on a failure rather than queue the rest behind it.
        if i % 4096 == 0 && producer.context().failed.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    flush(&producer, deadline)?;
    let elapsed = start.elapsed();
    let d = producer.context();
    let delivered = d.delivered.load(Ordering::Relaxed);
    let failed = d.failed.load(Ordering::Relaxed);
    Ok(json!({
        "mode": "produce",
        "settings": producer_settings(common, p),
        "payload": format!("{:?}", a.payload).to_lowercase(),
        "produce": throughput(delivered, delivered * p.size as u64, elapsed),
        "errors": failed + p.count.saturating_sub(delivered + failed),
        "first_error": d.first_error(),
    }))
}

/// What the consumer of an end-to-end run saw.
struct Receipts {
    received: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Histogram<u64>,
}

fn at_rate(a: &RateArgs, end_to_end: bool) -> Result<Value> {
    let (common, p) = (&a.common, &a.producer);
    if !(1..=1_000_000).contains(&a.rate) {
        bail!("rate {} is outside 1..=1000000 records/s", a.rate);
    }
    if !(0.0..=3600.0).contains(&a.warmup_s) {
        bail!("warm-up {} s is outside 0..=3600", a.warmup_s);
    }
    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs(common.timeout_s);
    let run = due(p.count, a.rate);
    if run > Duration::from_secs(common.timeout_s) {
        bail!(
            "{} records at {}/s take {run:?}, beyond --timeout-s {}",
            p.count,
            a.rate,
            common.timeout_s
        );
    }

    // The consumer is placed at the partition's end before the first send, so it reads
    // exactly the records of this run.
    let receiver = if end_to_end {
        let consumer = consumer(common)?;
        let (_, high) = consumer
            .fetch_watermarks(&common.topic, common.partition, Duration::from_secs(30))
            .context("reading the partition's end offset")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&common.topic, common.partition, Offset::Offset(high))?;
        consumer.assign(&tpl)?;
        Some((consumer, high))
    } else {
        None
    };

    let start = Instant::now();
    // Records sent before this are left out of both histograms.
    let warmup_ns = start.duration_since(epoch).as_nanos() as u64 + (a.warmup_s * 1e9) as u64;
    let consumer_thread = receiver.map(|(consumer, high)| {
        let count = p.count;
        thread::spawn(move || receive(&consumer, epoch, count, high, warmup_ns, deadline))
    });
    let producer = producer(common, p, Deliveries::new(epoch, true, warmup_ns))?;
    let mut value = vec![b'x'; p.size];
    let mut behind_max = Duration::ZERO;
    for i in 0..p.count {
        let at = start + due(i, a.rate);
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        } else {
            behind_max = behind_max.max(now - at);
        }
        let sent_ns = epoch.elapsed().as_nanos() as u64;
        stamp(&mut value, sent_ns);
        send(&producer, common, &value, sent_ns, deadline)?;
        if producer.context().failed.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    let sending = start.elapsed();
    flush(&producer, deadline)?;
    let d = producer.context();
    let delivered = d.delivered.load(Ordering::Relaxed);
    let failed = d.failed.load(Ordering::Relaxed);
    let mut errors = failed + p.count.saturating_sub(delivered + failed);
    let mut first_error = d.first_error();
    let acks = latency_summary(&d.acks.as_ref().expect("latency run").lock().unwrap());

    let mut report = json!({
        "mode": if end_to_end { "end-to-end" } else { "latency" },
        "settings": producer_settings(common, p),
        "rate": a.rate,
        "warmup_s": a.warmup_s,
        "produce": throughput(delivered, delivered * p.size as u64, sending),
        // How far the sender fell behind its schedule at worst: large values mean the
        // client, not the broker, could not keep the rate.
        "sender_behind_max_ms": behind_max.as_secs_f64() * 1000.0,
        "ack_latency": acks,
    });
    if let Some(t) = consumer_thread {
        let r = t.join().expect("consumer thread panicked")?;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        report["received"] = json!(r.received);
        report["e2e_latency"] = latency_summary(&r.latencies);
    }
    report["errors"] = json!(errors);
    report["first_error"] = json!(first_error);
    Ok(report)
}

fn consumer(common: &Common) -> Result<BaseConsumer<Diagnostics>> {
    let mut cfg = client_config(common);
    // Offsets are assigned, never committed: the group id only satisfies librdkafka.
    cfg.set("group.id", "fjord-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    apply_properties(&mut cfg, common);
    cfg.create_with_context(Diagnostics)
        .context("creating the consumer")
}

/// Checks a record's offset against the one expected next: a gap or a repeat is an error
/// (the bench topics are neither compacted nor transactional, so offsets are dense).
fn check_offset(
    expected: &mut i64,
    offset: i64,
    errors: &mut u64,
    first_error: &mut Option<String>,
) {
    if offset != *expected {
        *errors += 1;
        first_error.get_or_insert_with(|| format!("expected offset {expected}, got {offset}"));
    }
    *expected = offset + 1;
}

fn receive(
    consumer: &BaseConsumer<Diagnostics>,
    epoch: Instant,
    count: u64,
    from: i64,
    warmup_ns: u64,
    deadline: Instant,
) -> Result<Receipts> {
    let mut r = Receipts {
        received: 0,
        errors: 0,
        first_error: None,
        latencies: latency_histogram(),
    };
    let mut expected = from;
    while r.received < count {
        if Instant::now() > deadline {
            r.errors += count - r.received;
            r.first_error.get_or_insert_with(|| {
                format!(
                    "{} of {count} records not received by the deadline",
                    count - r.received
                )
            });
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let now_ns = epoch.elapsed().as_nanos() as u64;
                r.received += 1;
                check_offset(&mut expected, m.offset(), &mut r.errors, &mut r.first_error);
                match m.payload().and_then(read_stamp) {
                    Some(sent_ns) if sent_ns >= warmup_ns => record_latency(
                        &mut r.latencies,
                        Duration::from_nanos(now_ns.saturating_sub(sent_ns)),
                    ),
                    Some(_) => {}
                    None => {
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| {
                            format!("record at offset {} carries no send time", m.offset())
                        });
                    }
                }
            }
            Some(Err(e)) => {
                r.errors += 1;
                r.first_error
                    .get_or_insert_with(|| format!("consume failed: {e}"));
            }
        }
    }
    Ok(r)
}

fn consume(a: &ConsumeArgs) -> Result<Value> {
    let common = &a.common;
    let deadline = Instant::now() + Duration::from_secs(common.timeout_s);
    let consumer = consumer(common)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&common.topic, common.partition, Offset::Beginning)?;
    let (mut received, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut expected = None;
    let start = Instant::now();
    consumer.assign(&tpl)?;
    let mut first_at = None;
    while received < a.count {
        if Instant::now() > deadline {
            errors += a.count - received;
            first_error.get_or_insert_with(|| {
                format!(
                    "{} of {} records not read by the deadline",
                    a.count - received,
                    a.count
                )
            });
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                first_at.get_or_insert_with(Instant::now);
                received += 1;
                bytes += m.payload_len() as u64;
                let next = expected.get_or_insert(m.offset());
                check_offset(next, m.offset(), &mut errors, &mut first_error);
            }
            Some(Err(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("consume failed: {e}"));
            }
        }
    }
    let end = Instant::now();
    let first_at = first_at.unwrap_or(end);
    Ok(json!({
        "mode": "consume",
        "topic": common.topic,
        "partition": common.partition,
        // From the first record received to the last: the rate at which the broker
        // streams the partition, without the client's start-up (metadata, offset lookup,
        // first fetch), which `from_assign` includes.
        "consume": throughput(received, bytes, end - first_at),
        "from_assign": throughput(received, bytes, end - start),
        "first_record_ms": first_at.duration_since(start).as_secs_f64() * 1000.0,
        "errors": errors,
        "first_error": first_error,
    }))
}

fn create_topic(a: &CreateTopicArgs) -> Result<Value> {
    let common = &a.common;
    let deadline = Instant::now() + Duration::from_secs(common.timeout_s);
    let mut cfg = client_config(common);
    apply_properties(&mut cfg, common);
    let admin: AdminClient<DefaultClientContext> =
        cfg.create().context("creating the admin client")?;
    let mut topic = NewTopic::new(
        &common.topic,
        a.partitions,
        TopicReplication::Fixed(a.replication_factor),
    );
    for (k, v) in &a.configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .context("CreateTopics")?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("creating topic {name:?}: {code}");
        }
    }
    // Ready when every partition has a leader and, for acks=all runs, a full ISR.
    let probe = consumer(common)?;
    loop {
        let md = probe
            .fetch_metadata(Some(&common.topic), Duration::from_secs(5))
            .context("reading metadata")?;
        let ready = md.topics().iter().any(|t| {
            t.error().is_none()
                && t.partitions().len() == a.partitions as usize
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.isr().len() >= a.replication_factor as usize)
        });
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "topic {:?} has no leader or full ISR by the deadline",
                common.topic
            );
        }
        thread::sleep(Duration::from_millis(100)); // metadata poll interval
    }
    Ok(
        json!({"mode": "create-topic", "topic": common.topic, "partitions": a.partitions,
              "replication_factor": a.replication_factor, "errors": 0, "first_error": null}),
    )
}
