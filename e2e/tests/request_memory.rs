//! Half-sent requests: connections that declare a frame, send part of it and go quiet
//! hold at most the broker's request budget (`--queued-max-request-bytes`), are closed
//! once the request read timeout passes or they are idle mid-frame, and never stop a
//! well-behaved client on other connections from producing and fetching.
//!
//! The new settings are passed as `FJORD_*` environment variables, so that the same test
//! run against an older broker binary (`FJORD_BIN`) measures it instead of failing to
//! start it.
//!
//! Needs brokers with particular limits, so it ignores `FJORD_E2E_BOOTSTRAP`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{expect_closed_silently, metric, raw_frame, scrape, write_tolerant, DEADLINE};
use fjord_client::{FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::ApiKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: u64 = 1 << 20;

/// `--queued-max-request-bytes` of these brokers.
const BUDGET_BYTES: u64 = 64 * MIB;

/// `--request-read-timeout-ms` of these brokers: long enough for the attack to be in
/// place and the well-behaved client to make many round trips meanwhile.
const READ_TIMEOUT_MS: u64 = 10_000;

/// RSS the broker may gain during an attack beyond the bound on request memory:
/// allocator slack and the task and socket state of a few hundred connections.
const ALLOWANCE_BYTES: u64 = 48 * MIB;

/// Bound on one produce-and-fetch round trip of the well-behaved client: far below the
/// read timeout, so a client stuck behind the stalled frames fails the test.
const ROUND_TRIP_BOUND: Duration = Duration::from_secs(3);

/// Resident set size of a process, from /proc.
fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

async fn start_broker(args: &[&str], env: &[(&str, String)]) -> Result<BrokerProcess> {
    BrokerProcess::start(BrokerOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..BrokerOptions::default()
    })
    .await
}

/// Opens a connection, declares a frame of `declared` bytes (a plausible request header
/// first), sends `sent` bytes of the frame in all, size prefix included, then goes quiet
/// until the broker closes the connection. Writes block while the broker does not read;
/// a close ends them.
async fn half_send(bootstrap: String, declared: u32, sent: usize) -> Result<()> {
    let mut stream = TcpStream::connect(&bootstrap).await?;
    let mut head = declared.to_be_bytes().to_vec();
    head.extend_from_slice(&raw_frame(ApiKey::Metadata as i16, 0, 1, false, &[])[4..]);
    write_tolerant(&mut stream, &head).await?;
    let chunk = vec![0u8; 64 * 1024];
    let mut written = head.len();
    while written < sent {
        let n = chunk.len().min(sent - written);
        if stream.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        written += n;
    }
    // Closed by the broker at its read timeout at the latest, whether the frame was
    // being read or waiting for room.
    expect_closed_silently(&mut stream, "half-sent frame").await
}

/// The peak RSS of a process, sampled until [`RssPeak::stop`].
struct RssPeak {
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<Result<u64>>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_bytes(pid)?);
                // Sampling interval of a measurement, not a synchronisation sleep.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(peak.max(rss_bytes(pid)?))
        });
        RssPeak { stop, sampler }
    }

    async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.await?
    }
}

/// Produces one record and reads it back, once and then until `until` is set; each
/// round trip within [`ROUND_TRIP_BOUND`]. Returns the round trips made.
async fn keep_serving(bootstrap: String, topic: String, until: Arc<AtomicBool>) -> Result<u64> {
    let client = common::client(&bootstrap).await?;
    let mut rounds = 0u64;
    loop {
        let value = format!("good-{rounds}");
        let round = async {
            let produced = client
                .produce(
                    &topic,
                    0,
                    &[ProduceRecord::new(None::<Bytes>, value.clone())],
                    &ProduceOptions::default(),
                )
                .await?;
            let fetched = client
                .fetch(&topic, 0, produced.base_offset, &FetchOptions::default())
                .await?;
            let first = fetched.records.first().context("no record fetched")?;
            ensure!(
                first.offset == produced.base_offset
                    && first.value.as_deref() == Some(value.as_bytes()),
                "fetched {first:?} for {value:?} at {}",
                produced.base_offset
            );
            Ok(())
        };
        tokio::time::timeout(ROUND_TRIP_BOUND, round)
            .await
            .with_context(|| format!("round trip {rounds} not done within {ROUND_TRIP_BOUND:?}"))?
            .with_context(|| format!("round trip {rounds}"))?;
        rounds += 1;
        if until.load(Ordering::Relaxed) {
            return Ok(rounds);
        }
    }
}

/// Waits until the sum of `fjord_connections_closed_total` over `reasons` is `expected`.
/// The broker counts a close just after the socket is closed, so a client that saw its
/// connection end may scrape a moment before the count.
async fn wait_closed_count(http: &str, reasons: &[&str], expected: usize) -> Result<()> {
    let what = format!("fjord_connections_closed_total over {reasons:?} at {expected}");
    common::wait_for(&what, DEADLINE, || async {
        let text = scrape(http).await?;
        let counted: f64 = reasons
            .iter()
            .map(|r| {
                metric(&text, "fjord_connections_closed_total", &[("reason", r)]).unwrap_or(0.0)
            })
            .sum();
        Ok(if counted == expected as f64 {
            Ok(())
        } else {
            Err(format!("{counted}"))
        })
    })
    .await
}

/// Runs `connections` half-sent frames against a broker with the test budget while a
/// well-behaved client produces and fetches, and checks: the RSS peak stays within
/// `bound_bytes` plus the allowance over the RSS before, every half-sent connection is
/// closed, and no reserved bytes remain.
async fn attack(
    extra_args: &[&str],
    connections: usize,
    declared: u32,
    sent: usize,
    bound_bytes: u64,
) -> Result<()> {
    let broker = start_broker(
        extra_args,
        &[
            ("FJORD_QUEUED_MAX_REQUEST_BYTES", BUDGET_BYTES.to_string()),
            ("FJORD_REQUEST_READ_TIMEOUT_MS", READ_TIMEOUT_MS.to_string()),
        ],
    )
    .await?;
    let result = async {
        let bootstrap = broker.bootstrap();
        let topic = unique_topic("half-sent");
        common::client(&bootstrap)
            .await?
            .create_topic(NewTopic::new(&topic, 1, 1))
            .await?;
        let pid = broker.pid().context("broker pid")?;
        // Warm the well-behaved path once, so its allocations are in the baseline.
        let warm = Arc::new(AtomicBool::new(true));
        keep_serving(bootstrap.clone(), topic.clone(), warm).await?;
        let before = rss_bytes(pid)?;
        let peak = RssPeak::start(pid);
        let done = Arc::new(AtomicBool::new(false));
        let good = tokio::spawn(keep_serving(bootstrap.clone(), topic.clone(), done.clone()));
        let started = Instant::now();
        let senders: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(half_send(bootstrap.clone(), declared, sent)))
            .collect();
        let mut not_closed = 0;
        for sender in senders {
            if let Err(e) = sender.await? {
                not_closed += 1;
                eprintln!("{e:#}");
            }
        }
        let senders_done_after = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let rounds = good.await?;
        let peak = peak.stop().await?;
        println!(
            "{connections} connections x {sent} of {declared} declared bytes: RSS {} MiB before, \
             peak {} MiB (budget {} MiB); {not_closed} not closed by the broker, senders done \
             after {senders_done_after:?}; well-behaved client: {rounds:?}",
            before / MIB,
            peak / MIB,
            BUDGET_BYTES / MIB
        );
        ensure!(
            not_closed == 0,
            "{not_closed} half-sent connections not closed"
        );
        let rounds = rounds?;
        ensure!(
            rounds > 1,
            "the well-behaved client made {rounds} round trips"
        );
        ensure!(
            peak <= before + bound_bytes + ALLOWANCE_BYTES,
            "RSS peak {peak} exceeds {before} before + bound {bound_bytes} + allowance \
             {ALLOWANCE_BYTES}"
        );
        wait_closed_count(
            &broker.http_addr(),
            &["frame_deadline", "no_room"],
            connections,
        )
        .await?;
        common::wait_for("no request bytes reserved", DEADLINE, || async {
            let text = scrape(&broker.http_addr()).await?;
            let reserved = metric(&text, "fjord_request_read_bytes", &[]);
            Ok(match reserved {
                Some(0.0) => Ok(()),
                other => Err(format!("fjord_request_read_bytes {other:?}")),
            })
        })
        .await
    }
    .await;
    if result.is_err() {
        eprintln!("{}", broker.logs());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_half_sent_frames_stay_within_the_budget() -> Result<()> {
    // Each declares 2 MiB and sends 2,000,000 bytes: 600 MB if all were read at once.
    attack(&[], 300, 2 << 20, 2_000_000, BUDGET_BYTES).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_the_budget_are_read_one_at_a_time() -> Result<()> {
    // Each declares 100 MiB (allowed by socket.request.max.bytes) and sends 60 MiB: a
    // frame larger than the budget is read alone, so the bound is that one frame.
    let declared = 100 << 20;
    attack(
        &["--socket-request-max-bytes", "209715200"],
        10,
        declared,
        60 << 20,
        u64::from(declared),
    )
    .await
}

#[tokio::test]
async fn a_connection_stalled_mid_frame_is_closed_once_idle() -> Result<()> {
    // The read timeout is far away: only the idle timeout can close this connection.
    let broker = start_broker(
        &["--connections-max-idle-ms", "2000"],
        &[("FJORD_REQUEST_READ_TIMEOUT_MS", "600000".to_string())],
    )
    .await?;
    let result = async {
        let mut stream = TcpStream::connect(broker.bootstrap()).await?;
        let mut head = (100_000i32).to_be_bytes().to_vec();
        head.extend_from_slice(&raw_frame(ApiKey::Metadata as i16, 0, 1, false, &[])[4..]);
        head.resize(50_000, 0);
        stream.write_all(&head).await?;
        expect_closed_silently(&mut stream, "frame stalled after 50,000 of 100,000 bytes").await?;
        wait_closed_count(&broker.http_addr(), &["idle_mid_frame"], 1).await
    }
    .await;
    if result.is_err() {
        eprintln!("{}", broker.logs());
    }
    result
}
