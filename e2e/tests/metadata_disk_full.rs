//! A full data disk during metadata writes: the broker's data dir lives on a small tmpfs
//! that the test fills. Metadata changes (CreateTopics, the first consumer group, which
//! creates `__consumer_offsets`) then fail with an error code rather than a dropped
//! connection, `/ready` is not 200 and a metric says why, produce answers
//! KAFKA_STORAGE_ERROR while reads go on; once the space is freed the broker comes back
//! by itself: ready, CreateTopics, produce and fetch succeed, without a restart.
//!
//! Needs root (it mounts and unmounts a tmpfs), so it ignores `FJORD_E2E_BOOTSTRAP`.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::{metric, scrape, DEADLINE};
use fjord_client::{
    Client, ClientConfig, Error as ClientError, FetchOptions, NewTopic, ProduceOptions,
    ProduceRecord,
};
use fjord_e2e::{http_get, BrokerOptions, BrokerProcess};
use kafka_protocol::ResponseError;

/// Size of the broker's data disk.
const DISK_BYTES: u64 = 64 << 20;

/// A tmpfs mounted on a directory for the duration of a test, unmounted on drop however
/// the test ends.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size_bytes: u64) -> Result<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(path)
            .status()
            .context("running mount (the test needs root)")?;
        ensure!(
            status.success(),
            "mount -t tmpfs on {}: {status}",
            path.display()
        );
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a broker not yet reaped): detach it now, freed once unused.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the file system holding `dir` to its last byte with one file, and returns it.
fn fill(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("filler");
    let mut file = File::create(&path)?;
    let chunk = vec![0xa5u8; 1 << 20];
    for size in [1 << 20, 4096, 1] {
        loop {
            match file.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e).context("filling the disk"),
            }
        }
    }
    Ok(path)
}

/// Available bytes of the file system holding `dir` (`stat -f`).
fn available_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    let blocks = parts.next().context("no block count")??;
    let block = parts.next().context("no block size")??;
    Ok(blocks * block)
}

/// A client whose calls give up at once: each failure is seen as the broker answered.
async fn impatient_client(bootstrap: &str) -> Result<Client> {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(40),
        leader_retries: 0,
        ..ClientConfig::default()
    };
    Ok(Client::connect(&[bootstrap], config).await?)
}

fn kafka_error(result: &Result<impl std::fmt::Debug, ClientError>) -> Option<ResponseError> {
    match result {
        Err(ClientError::Kafka { error, .. }) => Some(*error),
        _ => None,
    }
}

async fn ready_status(broker: &BrokerProcess) -> Result<(u16, String)> {
    http_get(&broker.http_addr(), "/ready", DEADLINE).await
}

async fn write_failing(broker: &BrokerProcess) -> Result<f64> {
    let text = scrape(&broker.http_addr()).await?;
    metric(&text, "fjord_metadata_write_failing", &[]).context("no fjord_metadata_write_failing")
}

fn values(n: usize, prefix: &str) -> Vec<ProduceRecord> {
    (0..n)
        .map(|i| ProduceRecord::new(None::<Bytes>, format!("{prefix}-{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_disk_fills_during_a_metadata_write_comes_back_by_itself() -> Result<()> {
    let mut broker = BrokerProcess::prepare(BrokerOptions {
        args: [
            "--offsets-topic-num-partitions",
            "2",
            // A cut-off broker closes its connections after 1.5 sessions: short sessions
            // show within this test that connections stay served.
            "--broker-session-timeout-ms",
            "3000",
            "--broker-heartbeat-interval-ms",
            "500",
        ]
        .map(String::from)
        .to_vec(),
        ..BrokerOptions::default()
    })?;
    let disk = Tmpfs::mount(&broker.data_dir(), DISK_BYTES)?;
    let result = run(&mut broker, &disk.path).await;
    if let Err(e) = &result {
        eprintln!("{e:#}\n{}", broker.logs());
    }
    // The broker goes before the disk under it.
    if broker.is_running() {
        broker.kill9().await?;
    }
    drop(disk);
    result
}

async fn run(broker: &mut BrokerProcess, disk: &Path) -> Result<()> {
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    let bootstrap = broker.bootstrap();
    let client = impatient_client(&bootstrap).await?;
    client.create_topic(NewTopic::new("before", 1, 1)).await?;
    let options = ProduceOptions::default();
    client
        .produce("before", 0, &values(5, "before"), &options)
        .await?;

    let filler = fill(disk)?;
    println!("disk filled: {} bytes available", available_bytes(disk)?);
    let full_at = Instant::now();

    // A metadata change that needs new pages of the metadata log: refused, answered.
    let many = client
        .create_topics(&[NewTopic::new("during", 64, 1)], false)
        .await
        .context("CreateTopics while the disk is full must be answered")?;
    let refused = kafka_error(&many[0].1);
    println!(
        "CreateTopics while full: {:?} after {:?}",
        many[0].1,
        full_at.elapsed()
    );
    ensure!(
        matches!(
            refused,
            Some(ResponseError::KafkaStorageError | ResponseError::RequestTimedOut)
        ),
        "CreateTopics on a full disk: {:?}",
        many[0].1
    );
    let (status, body) = ready_status(broker).await?;
    ensure!(
        status != 200,
        "/ready answered {status} {body:?} on a full disk"
    );
    ensure!(
        write_failing(broker).await? == 1.0,
        "fjord_metadata_write_failing is not 1"
    );
    let failures = metric(
        &scrape(&broker.http_addr()).await?,
        "fjord_metadata_write_failures_total",
        &[("error", "ENOSPC")],
    );
    println!("/ready {status} {body:?}; metadata write failures (ENOSPC): {failures:?}");

    // Another change and the first consumer group are refused at once, with a code.
    let again = client
        .create_topics(&[NewTopic::new("during-2", 1, 1)], false)
        .await?;
    ensure!(
        kafka_error(&again[0].1) == Some(ResponseError::KafkaStorageError),
        "second CreateTopics: {:?}",
        again[0].1
    );
    let group = client.find_coordinator("first-group").await;
    ensure!(
        kafka_error(&group).is_some(),
        "FindCoordinator of the first group on a full disk: {group:?}"
    );
    // The data path: a produce needing new pages is refused, the data is still read,
    // on the connections opened before.
    let big = vec![ProduceRecord::new(None::<Bytes>, vec![7u8; 256 * 1024])];
    let produced = client.produce("before", 0, &big, &options).await;
    ensure!(
        kafka_error(&produced) == Some(ResponseError::KafkaStorageError),
        "produce on a full disk: {produced:?}"
    );
    // Past 1.5 broker sessions of failed metadata writes (the retries back off up to
    // 1 s: twelve attempts take over 6 s), the broker still serves its connections.
    common::wait_for("twelve failed metadata writes", DEADLINE, || async {
        let text = scrape(&broker.http_addr()).await?;
        let failures = metric(
            &text,
            "fjord_metadata_write_failures_total",
            &[("error", "ENOSPC")],
        )
        .unwrap_or(0.0);
        Ok(if failures >= 12.0 {
            Ok(())
        } else {
            Err(format!("{failures} failures"))
        })
    })
    .await?;
    let fetched = client
        .fetch("before", 0, 0, &FetchOptions::default())
        .await?;
    ensure!(fetched.records.len() == 5, "{fetched:?}");
    ensure!(
        !broker.logs().contains("leading nothing"),
        "the broker lost touch with its own controller"
    );
    println!(
        "full for {:?}; reads served on the connections opened before",
        full_at.elapsed()
    );

    std::fs::remove_file(&filler)?;
    let freed_at = Instant::now();
    common::wait_for("/ready 200 after space returned", DEADLINE, || async {
        let (status, body) = ready_status(broker).await?;
        Ok(if status == 200 {
            Ok(())
        } else {
            Err(format!("{status} {body:?}"))
        })
    })
    .await?;
    let ready_after = freed_at.elapsed();
    ensure!(write_failing(broker).await? == 0.0);
    let client = common::client(&bootstrap).await?;
    client.create_topic(NewTopic::new("after", 1, 1)).await?;
    let produced = client
        .produce("after", 0, &values(3, "after"), &options)
        .await?;
    let fetched = client
        .fetch("after", 0, produced.base_offset, &FetchOptions::default())
        .await?;
    ensure!(fetched.records.len() == 3, "{fetched:?}");
    let produced = client
        .produce("before", 0, &values(1, "again"), &options)
        .await?;
    ensure!(produced.base_offset == 5, "{produced:?}");
    let coordinator = client.find_coordinator("first-group").await?;
    println!(
        "space freed: ready after {ready_after:?}, CreateTopics, produce, fetch and \
         FindCoordinator ({coordinator:?}) done after {:?}",
        freed_at.elapsed()
    );
    if broker.pid().is_none() {
        bail!("the broker exited");
    }
    Ok(())
}

/// The `/ready` status of `broker`, or 0 when it does not answer.
async fn ready_code(broker: &BrokerProcess) -> u16 {
    ready_status(broker).await.map_or(0, |(status, _)| status)
}

/// Node ids of the live brokers `broker`'s Metadata lists.
async fn listed_brokers(broker: &BrokerProcess) -> Result<Vec<i32>> {
    let metadata = common::client(&broker.bootstrap())
        .await?
        .metadata(Some(&[]))
        .await?;
    let mut ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
    ids.sort_unstable();
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_whose_disk_fills_steps_back_and_rejoins_by_itself() -> Result<()> {
    let mut brokers = Vec::new();
    for node_id in 1..=3 {
        brokers.push(BrokerProcess::prepare(BrokerOptions {
            node_id,
            args: ["--offsets-topic-num-partitions", "2"]
                .map(String::from)
                .to_vec(),
            ..BrokerOptions::default()
        })?);
    }
    let voters = brokers
        .iter()
        .map(|b| format!("{}@{}", b.node_id(), b.internal_addr()))
        .collect::<Vec<_>>()
        .join(",");
    let mut disks = Vec::new();
    for broker in &mut brokers {
        broker.push_args([format!("--voters={voters}")]);
        disks.push(Tmpfs::mount(&broker.data_dir(), DISK_BYTES)?);
    }
    let result = run_cluster(&mut brokers, &disks).await;
    if let Err(e) = &result {
        eprintln!("{e:#}");
        for broker in &brokers {
            eprintln!("{}", broker.logs());
        }
    }
    for broker in &mut brokers {
        if broker.is_running() {
            broker.kill9().await?;
        }
    }
    drop(disks);
    result
}

async fn run_cluster(brokers: &mut [BrokerProcess], disks: &[Tmpfs]) -> Result<()> {
    let mut started = Vec::new();
    for broker in brokers.iter_mut() {
        started.push(broker.spawn()?);
    }
    for (broker, started) in brokers.iter_mut().zip(started) {
        broker.wait_ready(started).await?;
    }
    let bootstrap: Vec<String> = brokers.iter().map(BrokerProcess::bootstrap).collect();
    for broker in brokers.iter() {
        common::wait_for("every broker listed", DEADLINE, || async {
            let listed = listed_brokers(broker).await?;
            Ok(if listed == [1, 2, 3] {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            })
        })
        .await?;
    }
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    let controller = client.metadata(Some(&[])).await?.controller_id;
    ensure!((1..=3).contains(&controller), "controller {controller}");
    let full = &brokers[controller as usize - 1];
    let filler = fill(&disks[controller as usize - 1].path)?;
    let full_at = Instant::now();
    println!("disk of broker {controller} (the controller) filled");

    // Metadata changes go on: the first one blocks the full voter's log, and the
    // others elect a controller among themselves.
    let mut changes = 0;
    common::wait_for(
        "the full voter's metadata log failing",
        DEADLINE * 2,
        || {
            changes += 1;
            let (client, full) = (&client, full);
            let topic = format!("during-{changes}");
            async move {
                let created = client
                    .create_topics(&[NewTopic::new(&topic, 8, 1)], false)
                    .await;
                let status = ready_code(full).await;
                Ok(if status == 503 {
                    Ok(())
                } else {
                    Err(format!("/ready {status} after CreateTopics {created:?}"))
                })
            }
        },
    )
    .await?;
    ensure!(write_failing(full).await? == 1.0);
    let failing_after = full_at.elapsed();
    let others: Vec<&BrokerProcess> = brokers
        .iter()
        .filter(|b| b.node_id() as i32 != controller)
        .collect();
    // The full voter is fenced; the others keep the cluster's metadata moving.
    common::wait_for(
        "the full broker fenced by a new controller",
        DEADLINE,
        || async {
            let listed = listed_brokers(others[0]).await?;
            Ok(if listed.len() == 2 && !listed.contains(&controller) {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            })
        },
    )
    .await?;
    let fenced_after = full_at.elapsed();
    let healthy = common::client(&others[0].bootstrap()).await?;
    let topic = healthy
        .create_topic(NewTopic::new("while-full", 1, 2))
        .await?;
    println!(
        "disk full: broker {controller} not ready after {failing_after:?} ({changes} \
         CreateTopics), fenced after {fenced_after:?}; {topic:?} created by controller {}",
        healthy.metadata(Some(&[])).await?.controller_id
    );

    std::fs::remove_file(&filler)?;
    let freed_at = Instant::now();
    common::wait_for("/ready 200 after space returned", DEADLINE * 2, || async {
        let status = ready_code(full).await;
        Ok(if status == 200 {
            Ok(())
        } else {
            Err(format!("/ready {status}"))
        })
    })
    .await?;
    ensure!(write_failing(full).await? == 0.0);
    let ready_after = freed_at.elapsed();
    common::wait_for("the full broker listed again", DEADLINE, || async {
        let listed = listed_brokers(others[0]).await?;
        Ok(if listed == [1, 2, 3] {
            Ok(())
        } else {
            Err(format!("{listed:?}"))
        })
    })
    .await?;
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    client.create_topic(NewTopic::new("after", 1, 3)).await?;
    let options = ProduceOptions::default();
    let produced = client
        .produce("after", 0, &values(3, "after"), &options)
        .await?;
    let fetched = client
        .fetch("after", 0, produced.base_offset, &FetchOptions::default())
        .await?;
    ensure!(fetched.records.len() == 3, "{fetched:?}");
    println!(
        "space freed: broker {controller} ready after {ready_after:?}, back in the cluster \
         and an RF=3 topic produced and fetched after {:?}",
        freed_at.elapsed()
    );
    Ok(())
}
