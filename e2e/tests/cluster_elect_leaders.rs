//! Preferred leader election with Kafka's own `kafka-leader-election.sh` on a 3-broker
//! cluster, as an operator runs it after a restart.
//!
//! The brokers run without automatic leader rebalancing (auto.leader.rebalance.enable
//! false), so leadership that moved away while a broker was down stays away after it is
//! back in sync. `kafka-leader-election --election-type preferred
//! --all-topic-partitions` must then move every partition back to its first replica,
//! and a second run must find nothing to do.
//!
//! Needs Java and Kafka's classpath (see e2e/apache-kafka.sh), like the Java suites.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use fjord_client::{Client, ClientConfig, NewTopic};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};

/// Bound on every failover, catch-up and election wait.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a controlled shutdown (SIGTERM → exit).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka's `kafka-leader-election.sh` against `bootstrap`; its stdout.
fn kafka_leader_election(bootstrap: &str, args: &[&str]) -> Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-kafka.sh");
    let out = std::process::Command::new("bash")
        .args([
            script,
            "tool",
            "kafka-leader-election",
            "--bootstrap-server",
            bootstrap,
        ])
        .args(args)
        .output()
        .context("running kafka-leader-election")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "kafka-leader-election {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_election_moves_leadership_back_after_a_restart() -> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions {
        args: [
            "--auto-leader-rebalance-enable=false",
            "--broker-heartbeat-interval-ms=200",
            "--broker-session-timeout-ms=2000",
            "--replica-lag-time-max-ms=2000",
        ]
        .map(String::from)
        .into(),
        ..ClusterOptions::default()
    })
    .await?;
    let bootstrap = cluster.bootstrap();
    let addresses: Vec<String> = bootstrap.split(',').map(String::from).collect();
    let client = Client::connect(&addresses, ClientConfig::default()).await?;
    // Partition p prefers broker p + 1.
    let topic = unique_topic("elect");
    let assignments = vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]];
    client
        .create_topic(NewTopic::with_assignments(&topic, assignments.clone()))
        .await
        .with_context(|| format!("creating {topic}"))?;
    let preferred = |p: usize| assignments[p][0];
    for p in 0..3 {
        cluster
            .wait_for_leader(
                &topic,
                p as i32,
                TIMEOUT,
                "on its preferred replica, all in sync",
                |l| l.node_id == preferred(p) && l.isr.len() == 3,
            )
            .await?;
    }

    // Broker 1 goes away: partition 0's leadership moves to broker 2. Once broker 1 is
    // back and in sync, nothing moves it back by itself.
    cluster.sigterm(1, SHUTDOWN_TIMEOUT).await?;
    cluster
        .wait_for_leader(&topic, 0, TIMEOUT, "off broker 1", |l| l.node_id != 1)
        .await?;
    cluster.restart(1).await?;
    let moved = cluster
        .wait_for_leader(&topic, 0, TIMEOUT, "with broker 1 back in the ISR", |l| {
            l.isr.contains(&1)
        })
        .await?;
    ensure!(
        moved.node_id != 1,
        "partition 0 went back to broker 1 without an election: {moved:?}"
    );

    let out = kafka_leader_election(
        &bootstrap,
        &["--election-type", "preferred", "--all-topic-partitions"],
    )?;
    ensure!(
        out.contains(&format!("{topic}-0")),
        "the tool does not report electing {topic}-0:\n{out}"
    );
    for p in 0..3 {
        cluster
            .wait_for_leader(
                &topic,
                p as i32,
                TIMEOUT,
                "back on its preferred replica",
                |l| l.node_id == preferred(p),
            )
            .await?;
    }

    // Nothing left to do: Kafka's tool reports no election and succeeds.
    let out = kafka_leader_election(
        &bootstrap,
        &["--election-type", "preferred", "--all-topic-partitions"],
    )?;
    ensure!(
        !out.contains(&format!("{topic}-")),
        "a second election acted on {topic} again:\n{out}"
    );
    Ok(())
}
