//! Many topics at once, as Kafka's tools create them: 300 topics of 10 partitions with
//! replication factor 3 on 3 brokers (3,000 partitions), 50 topics per CreateTopics
//! request. Every topic is created, and every partition ends up led (each broker's
//! leaders add up to 3,000) with its whole ISR. The creation time is printed for the
//! reader, not asserted: timing belongs in the benchmark.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use fjord_client::{Client, ClientConfig, NewTopic};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

mod common;
use common::{metric, scrape, wait_for};

const TOPICS: usize = 300;
const PARTITIONS: i32 = 10;
const PER_REQUEST: usize = 50;
/// Bound on the cluster settling after the creation (a debug build on a loaded
/// machine opens 9,000 logs).
const SETTLE: Duration = Duration::from_secs(180);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_partitions_are_created_led_and_in_sync() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        // The partition gauges this test reads are refreshed at this period.
        args: [
            "--log-retention-check-interval-ms",
            "500",
            // A debug build on a loaded machine may take longer than the default 30 s
            // to install 500 partitions; the time is what this test reports.
            "--request-timeout-ms",
            "120000",
        ]
        .map(String::from)
        .to_vec(),
        ..ClusterOptions::default()
    })
    .await?;
    let admin = Client::connect(
        &[cluster.broker(1).bootstrap().as_str()],
        ClientConfig {
            request_timeout: REQUEST_TIMEOUT,
            ..ClientConfig::default()
        },
    )
    .await?;
    let prefix = unique_topic("many");
    let names: Vec<String> = (0..TOPICS).map(|i| format!("{prefix}-{i:03}")).collect();

    let started = Instant::now();
    for chunk in names.chunks(PER_REQUEST) {
        let topics: Vec<NewTopic> = chunk
            .iter()
            .map(|n| NewTopic::new(n, PARTITIONS, 3))
            .collect();
        for (name, result) in admin.create_topics(&topics, false).await? {
            ensure!(result.is_ok(), "creating {name}: {result:?}");
        }
    }
    let created = started.elapsed();
    println!(
        "created {TOPICS} topics x {PARTITIONS} partitions (RF 3) in {} requests: {created:?}",
        TOPICS / PER_REQUEST
    );

    let total = TOPICS as f64 * f64::from(PARTITIONS);
    let settled = wait_for("every partition led, with its whole ISR", SETTLE, || {
        let (cluster, names, admin) = (&cluster, &names, &admin);
        async move {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            // A broker that misses its heartbeats on a loaded machine counts itself cut
            // off from the controller and closes its client connections: the client
            // reconnects at the next look, as Kafka's clients do.
            let metadata = match admin.metadata(Some(&refs)).await {
                Ok(metadata) => metadata,
                Err(e) => return Ok(Err(format!("metadata: {e}"))),
            };
            let partitions: Vec<_> = names
                .iter()
                .filter_map(|n| metadata.topic(n))
                .flat_map(|t| &t.partitions)
                .collect();
            let whole = partitions
                .iter()
                .filter(|p| p.leader_id >= 0 && p.isr.len() == 3)
                .count();
            let (mut leading, mut under) = (0.0, 0.0);
            for id in cluster.node_ids() {
                let text = match scrape(&cluster.broker(id).http_addr()).await {
                    Ok(text) => text,
                    Err(e) => return Ok(Err(format!("broker {id} metrics: {e:#}"))),
                };
                leading += metric(&text, "fjord_leader_partitions", &[]).unwrap_or(0.0);
                under += metric(&text, "fjord_under_replicated_partitions", &[]).unwrap_or(0.0);
            }
            Ok(
                if whole as f64 == total && leading == total && under == 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{whole} of {total} partitions led with 3 in sync in Metadata; \
                         brokers lead {leading}, {under} under-replicated"
                    ))
                },
            )
        }
    })
    .await;
    println!(
        "settled (every partition led and in sync) {:?} after the first request",
        started.elapsed()
    );
    settled
}
