//! `fjord dev`: a local cluster of `fjord` broker processes on loopback, for development.
//!
//! The plan (ports, voters, data dirs, replication defaults) is pure and unit-tested; the
//! supervisor spawns one child per broker, prefixes their log lines with the node id,
//! waits for every `/ready`, and on Ctrl-C or SIGTERM stops them with SIGTERM.
//!
//! Even this local cluster is authenticated inside: each start makes a fresh CA and a
//! certificate per broker (naming its node id, see `quorum::internal_tls`) under
//! `<data-dir>/internal-tls/`, and the brokers talk to each other over mutual TLS. The
//! CA's key is never written, so no other certificate can join.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::mpsc;

/// The most brokers `fjord dev` starts; keeps the three port ranges apart.
const MAX_BROKERS: u16 = 100;
/// The quorum stays small however many brokers run, as in the operator's StatefulSet.
const MAX_VOTERS: u16 = 3;
/// HTTP ports start this far above the base port (9092 + 552 = 9644, the broker default).
const HTTP_PORT_OFFSET: u16 = 552;
/// Internal ports start this far above the base port, clear of the Kafka range, which
/// with the default base runs over 9093, the broker's default internal port.
const INTERNAL_PORT_OFFSET: u16 = 1000;
/// How long every broker may take to answer `/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the brokers may take to stop after SIGTERM before they are killed; above
/// the broker's own default shutdown grace (10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Run a local cluster of N broker processes on loopback, for development.
///
/// Broker i (node id i, from 1) serves Kafka on 127.0.0.1:(P+i-1), its internal listener
/// on P+1000+i-1 and HTTP on P+552+i-1. The first three brokers are the metadata quorum's
/// voters. Flags after `--` go to every broker and win over the ones planned here, e.g.
/// `fjord dev --brokers 3 -- --log-retention-ms 60000`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Number of brokers (node ids 1..N).
    #[arg(long, default_value_t = 3)]
    pub brokers: u16,

    /// Directory holding one data directory per broker (`node-<id>`); kept across runs.
    #[arg(long, default_value = "./fjord-dev")]
    pub data_dir: PathBuf,

    /// Kafka port of broker 1; broker i listens on P+i-1.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,

    /// Flags passed to every broker.
    #[arg(last = true)]
    pub broker_args: Vec<String>,
}

/// One broker of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPlan {
    pub node_id: u16,
    pub kafka_port: u16,
    pub internal_port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
}

/// Every broker of a local cluster and the settings they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    pub brokers: Vec<BrokerPlan>,
    /// The `--voters` value: the first min(N, 3) brokers' internal listeners.
    pub voters: String,
    /// default.replication.factor: min(N, 3).
    pub replication_factor: u16,
    /// min.insync.replicas: 2 from three brokers up (one replica may fail without
    /// refusing acks=all writes), else 1.
    pub min_insync_replicas: u16,
    /// Where the internal plane's CA and node certificates go.
    pub tls_dir: PathBuf,
}

const HOST: &str = "127.0.0.1";

/// Plans `brokers` brokers from `base_port` with their data under `data_dir`.
pub fn plan(brokers: u16, base_port: u16, data_dir: &Path) -> Result<ClusterPlan, String> {
    if !(1..=MAX_BROKERS).contains(&brokers) {
        return Err(format!(
            "--brokers {brokers}: between 1 and {MAX_BROKERS} brokers"
        ));
    }
    if base_port == 0 {
        return Err("--base-port 0: choose a fixed port, clients need to know it".into());
    }
    let highest = u32::from(base_port) + u32::from(INTERNAL_PORT_OFFSET) + u32::from(brokers) - 1;
    if highest > u32::from(u16::MAX) {
        return Err(format!(
            "--base-port {base_port}: internal ports would run to {highest}, past 65535"
        ));
    }
    let brokers: Vec<BrokerPlan> = (0..brokers)
        .map(|i| BrokerPlan {
            node_id: i + 1,
            kafka_port: base_port + i,
            internal_port: base_port + INTERNAL_PORT_OFFSET + i,
            http_port: base_port + HTTP_PORT_OFFSET + i,
            data_dir: data_dir.join(format!("node-{}", i + 1)),
        })
        .collect();
    let voters = brokers
        .iter()
        .take(usize::from(MAX_VOTERS))
        .map(|b| format!("{}@{HOST}:{}", b.node_id, b.internal_port))
        .collect::<Vec<_>>()
        .join(",");
    let n = brokers.len() as u16;
    Ok(ClusterPlan {
        brokers,
        voters,
        replication_factor: n.min(3),
        min_insync_replicas: if n >= 3 { 2 } else { 1 },
        tls_dir: data_dir.join("internal-tls"),
    })
}

impl ClusterPlan {
    /// Every broker's Kafka address, comma separated: what clients bootstrap from.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| format!("{HOST}:{}", b.kafka_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of `broker`. A flag the user passes in `extra` replaces the
    /// planned one, since a broker refuses a flag given twice.
    pub fn broker_args(&self, broker: &BrokerPlan, extra: &[String]) -> Vec<String> {
        let planned = [
            ("--node-id", broker.node_id.to_string()),
            ("--data-dir", broker.data_dir.display().to_string()),
            ("--kafka-listen", format!("{HOST}:{}", broker.kafka_port)),
            (
                "--internal-listen",
                format!("{HOST}:{}", broker.internal_port),
            ),
            ("--http-listen", format!("{HOST}:{}", broker.http_port)),
            ("--voters", self.voters.clone()),
            (
                "--default-replication-factor",
                self.replication_factor.to_string(),
            ),
            (
                "--min-insync-replicas",
                self.min_insync_replicas.to_string(),
            ),
            (
                "--internal-ssl-certificate",
                self.node_certificate(broker.node_id).display().to_string(),
            ),
            (
                "--internal-ssl-key",
                self.node_key(broker.node_id).display().to_string(),
            ),
            ("--internal-ssl-ca", self.ca().display().to_string()),
        ];
        let user_gives = |flag: &str| {
            extra
                .iter()
                .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
        };
        planned
            .into_iter()
            .filter(|(flag, _)| !user_gives(flag))
            .map(|(flag, value)| format!("{flag}={value}"))
            .chain(extra.iter().cloned())
            .collect()
    }
}

impl ClusterPlan {
    fn ca(&self) -> PathBuf {
        self.tls_dir.join("ca.pem")
    }

    fn node_certificate(&self, node: u16) -> PathBuf {
        self.tls_dir.join(format!("node-{node}.pem"))
    }

    fn node_key(&self, node: u16) -> PathBuf {
        self.tls_dir.join(format!("node-{node}.key"))
    }

    /// A fresh CA and a certificate and key per broker, written to `tls_dir` (keys
    /// readable by the owner only).
    pub fn write_internal_certificates(&self) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = &self.tls_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let ca = fjord_broker::quorum::internal_ca::LocalCa::new("fjord dev internal CA")
            .map_err(|e| format!("making the internal CA: {e}"))?;
        let write = |path: PathBuf, text: &str, mode: u32| {
            // Written aside and renamed, so a broker never reads half a file.
            let tmp = path.with_extension("new");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)
                .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("writing {}: {e}", path.display()))
        };
        for broker in &self.brokers {
            let cert = ca
                .issue_node(i32::from(broker.node_id))
                .map_err(|e| format!("certificate of broker {}: {e}", broker.node_id))?;
            write(
                self.node_certificate(broker.node_id),
                &cert.certificate_pem,
                0o644,
            )?;
            write(self.node_key(broker.node_id), &cert.key_pem, 0o600)?;
        }
        write(self.ca(), ca.certificate_pem(), 0o644)
    }
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> ExitCode {
    let plan = match plan(args.brokers, args.base_port, &args.data_dir) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("fjord dev: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("fjord dev: cannot find the fjord binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Before any child exists: a signal from now on stops the brokers instead of leaving
    // them running without their supervisor.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fjord dev: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = plan.write_internal_certificates() {
        eprintln!("fjord dev: {e}");
        return ExitCode::FAILURE;
    }
    let mut supervisor = Supervisor::new();
    for broker in &plan.brokers {
        if let Err(e) = std::fs::create_dir_all(&broker.data_dir) {
            eprintln!("fjord dev: creating {}: {e}", broker.data_dir.display());
            supervisor.stop_all().await;
            return ExitCode::FAILURE;
        }
        let argv = plan.broker_args(broker, &args.broker_args);
        if let Err(e) = supervisor.spawn(&exe, broker.node_id, &argv) {
            eprintln!("fjord dev: starting broker {}: {e}", broker.node_id);
            supervisor.stop_all().await;
            return ExitCode::FAILURE;
        }
    }

    let started = Instant::now();
    tokio::select! {
        ready = wait_all_ready(&plan) => {
            if let Err(e) = ready {
                eprintln!("fjord dev: {e}");
                supervisor.stop_all().await;
                return ExitCode::FAILURE;
            }
        }
        Some((node_id, status)) = supervisor.exits.recv() => {
            supervisor.running.remove(&node_id);
            eprintln!("fjord dev: broker {node_id} exited before it was ready ({status})");
            supervisor.stop_all().await;
            return ExitCode::FAILURE;
        }
        _ = signals.recv() => {
            eprintln!("fjord dev: stopping before every broker was ready");
            return supervisor.stop_all().await;
        }
    }
    let bootstrap = plan.bootstrap();
    println!(
        "fjord dev: {} brokers ready in {:.1}s, data in {}, replication factor {}, min.insync.replicas {}",
        plan.brokers.len(),
        started.elapsed().as_secs_f64(),
        args.data_dir.display(),
        plan.replication_factor,
        plan.min_insync_replicas,
    );
    println!("bootstrap: {bootstrap}");
    println!("try: kcat -L -b {bootstrap}");

    loop {
        tokio::select! {
            _ = signals.recv() => {
                eprintln!("fjord dev: stopping the brokers ({} running)", supervisor.running.len());
                return supervisor.stop_all().await;
            }
            Some((node_id, status)) = supervisor.exits.recv() => {
                supervisor.running.remove(&node_id);
                eprintln!(
                    "fjord dev: broker {node_id} exited unexpectedly ({status}); {} still running",
                    supervisor.running.len()
                );
                if supervisor.running.is_empty() {
                    return ExitCode::FAILURE;
                }
            }
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The broker processes: their pids, and a channel that reports each exit.
struct Supervisor {
    pids: Vec<(u16, u32)>,
    running: BTreeSet<u16>,
    exits_tx: mpsc::UnboundedSender<(u16, ExitStatus)>,
    exits: mpsc::UnboundedReceiver<(u16, ExitStatus)>,
}

impl Supervisor {
    fn new() -> Supervisor {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Supervisor {
            pids: Vec::new(),
            running: BTreeSet::new(),
            exits_tx,
            exits,
        }
    }

    fn spawn(&mut self, exe: &Path, node_id: u16, argv: &[String]) -> std::io::Result<()> {
        let mut child = Command::new(exe)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If this process dies without stopping them, the brokers go too.
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other("no pid"))?;
        let mut forwards = Vec::new();
        if let Some(out) = child.stdout.take() {
            forwards.push(tokio::spawn(forward_lines(node_id, out, false)));
        }
        if let Some(err) = child.stderr.take() {
            forwards.push(tokio::spawn(forward_lines(node_id, err, true)));
        }
        let exits = self.exits_tx.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            // The broker's last lines (why it stopped) come before the report of its exit.
            for forward in forwards {
                let _ = forward.await;
            }
            // The child is reaped; an error here only leaves its status unknown.
            if let Ok(status) = status {
                let _ = exits.send((node_id, status));
            }
        });
        self.pids.push((node_id, pid));
        self.running.insert(node_id);
        Ok(())
    }

    /// SIGTERM to every running broker, then wait for them up to [`STOP_TIMEOUT`];
    /// brokers still running then are killed. Success when all stopped in time.
    async fn stop_all(&mut self) -> ExitCode {
        for (node_id, pid) in &self.pids {
            if self.running.contains(node_id) {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                Ok(Some((node_id, status))) => {
                    self.running.remove(&node_id);
                    if !status.success() {
                        eprintln!("fjord dev: broker {node_id} stopped with {status}");
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    for (node_id, pid) in &self.pids {
                        if self.running.contains(node_id) {
                            eprintln!(
                                "fjord dev: broker {node_id} still running {STOP_TIMEOUT:?} after SIGTERM; killing it"
                            );
                            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
                        }
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
        eprintln!("fjord dev: all brokers stopped");
        ExitCode::SUCCESS
    }
}

/// Copies a child's output line by line, each line prefixed with the broker's node id.
async fn forward_lines(node_id: u16, stream: impl tokio::io::AsyncRead + Unpin, stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if stderr {
            eprintln!("[broker {node_id}] {line}");
        } else {
            println!("[broker {node_id}] {line}");
        }
    }
}

async fn wait_all_ready(plan: &ClusterPlan) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut waiting: Vec<&BrokerPlan> = plan.brokers.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for broker in waiting {
            if ready_status(broker.http_port).await != Some(200) {
                still.push(broker);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let ids: Vec<String> = waiting.iter().map(|b| b.node_id.to_string()).collect();
            return Err(format!(
                "brokers {} not ready within {READY_TIMEOUT:?}",
                ids.join(", ")
            ));
        }
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The status code of `GET /ready` on the broker's HTTP port, `None` without an answer.
async fn ready_status(port: u16) -> Option<u16> {
    let probe = async {
        let mut stream = TcpStream::connect((HOST, port)).await.ok()?;
        let request =
            format!("GET /ready HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut len = 0;
        while len < head.len() {
            let n = stream.read(&mut head[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let line = String::from_utf8_lossy(&head[..len]);
        let mut parts = line.split_whitespace();
        parts.next()?.starts_with("HTTP/1.").then_some(())?;
        parts.next()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_brokers_are_all_voters_with_min_isr_two() {
        let p = plan(3, 9092, Path::new("/tmp/dev")).unwrap();
        let ports: Vec<(u16, u16, u16, u16)> = p
            .brokers
            .iter()
            .map(|b| (b.node_id, b.kafka_port, b.internal_port, b.http_port))
            .collect();
        assert_eq!(
            ports,
            [
                (1, 9092, 10092, 9644),
                (2, 9093, 10093, 9645),
                (3, 9094, 10094, 9646)
            ]
        );
        assert_eq!(
            p.voters,
            "1@127.0.0.1:10092,2@127.0.0.1:10093,3@127.0.0.1:10094"
        );
        assert_eq!((p.replication_factor, p.min_insync_replicas), (3, 2));
        assert_eq!(
            p.bootstrap(),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
        assert_eq!(p.brokers[2].data_dir, Path::new("/tmp/dev/node-3"));
    }

    #[test]
    fn small_clusters_replicate_to_every_broker_and_need_one_in_sync() {
        let one = plan(1, 9092, Path::new("d")).unwrap();
        assert_eq!(one.voters, "1@127.0.0.1:10092");
        assert_eq!((one.replication_factor, one.min_insync_replicas), (1, 1));
        let two = plan(2, 9092, Path::new("d")).unwrap();
        assert_eq!(two.voters, "1@127.0.0.1:10092,2@127.0.0.1:10093");
        assert_eq!((two.replication_factor, two.min_insync_replicas), (2, 1));
    }

    #[test]
    fn brokers_past_the_third_are_learners() {
        let p = plan(5, 20000, Path::new("d")).unwrap();
        assert_eq!(
            p.voters,
            "1@127.0.0.1:21000,2@127.0.0.1:21001,3@127.0.0.1:21002"
        );
        assert_eq!((p.replication_factor, p.min_insync_replicas), (3, 2));
        assert_eq!(p.brokers[4].kafka_port, 20004);
    }

    #[test]
    fn port_ranges_never_overlap() {
        for n in [1, 3, 7, MAX_BROKERS] {
            let p = plan(n, 9092, Path::new("d")).unwrap();
            let mut all: Vec<u16> = p
                .brokers
                .iter()
                .flat_map(|b| [b.kafka_port, b.internal_port, b.http_port])
                .collect();
            let count = all.len();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), count, "{n} brokers reuse a port");
        }
    }

    #[test]
    fn impossible_plans_are_refused_with_the_reason() {
        assert!(plan(0, 9092, Path::new("d"))
            .unwrap_err()
            .contains("--brokers 0"));
        assert!(plan(MAX_BROKERS + 1, 9092, Path::new("d")).is_err());
        assert!(plan(3, 0, Path::new("d")).is_err());
        let e = plan(3, 65000, Path::new("d")).unwrap_err();
        assert!(e.contains("past 65535"), "{e}");
    }

    #[test]
    fn broker_args_carry_the_plan_and_user_flags_win() {
        let p = plan(3, 9092, Path::new("/d")).unwrap();
        let args = p.broker_args(&p.brokers[1], &[]);
        assert_eq!(
            args,
            [
                "--node-id=2",
                "--data-dir=/d/node-2",
                "--kafka-listen=127.0.0.1:9093",
                "--internal-listen=127.0.0.1:10093",
                "--http-listen=127.0.0.1:9645",
                "--voters=1@127.0.0.1:10092,2@127.0.0.1:10093,3@127.0.0.1:10094",
                "--default-replication-factor=3",
                "--min-insync-replicas=2",
                "--internal-ssl-certificate=/d/internal-tls/node-2.pem",
                "--internal-ssl-key=/d/internal-tls/node-2.key",
                "--internal-ssl-ca=/d/internal-tls/ca.pem",
            ]
        );
        let extra: Vec<String> = ["--min-insync-replicas", "1", "--log-retention-ms=1000"]
            .map(String::from)
            .into();
        let args = p.broker_args(&p.brokers[0], &extra);
        assert!(!args.iter().any(|a| a.starts_with("--min-insync-replicas=")));
        assert!(args.ends_with(&extra));
        let extra = vec!["--default-replication-factor=1".to_string()];
        let args = p.broker_args(&p.brokers[0], &extra);
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--default-replication-factor"))
                .count(),
            1
        );
        // A flag that merely starts like a planned one is not taken for it.
        let extra = vec!["--node-idx=1".to_string()];
        assert!(p
            .broker_args(&p.brokers[0], &extra)
            .contains(&"--node-id=1".to_string()));
    }

    #[test]
    fn every_broker_gets_a_certificate_naming_it_from_one_fresh_ca() {
        use fjord_broker::quorum::internal_tls::{InternalTls, InternalTlsArgs};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = plan(4, 9092, dir.path()).unwrap();
        p.write_internal_certificates().unwrap();
        let ca_before = std::fs::read(p.ca()).unwrap();
        for b in &p.brokers {
            let args = p.broker_args(b, &[]);
            let flag = |name: &str| {
                args.iter()
                    .find_map(|a| a.strip_prefix(&format!("{name}=")))
                    .map(PathBuf::from)
            };
            let tls = InternalTlsArgs {
                certificate: flag("--internal-ssl-certificate"),
                key: flag("--internal-ssl-key"),
                ca: flag("--internal-ssl-ca"),
            };
            // Loading checks that the certificate names this broker's node id.
            assert!(InternalTls::from_args(i32::from(b.node_id), &tls)
                .unwrap()
                .is_some());
            assert!(InternalTls::from_args(i32::from(b.node_id) + 1, &tls).is_err());
            let mode = std::fs::metadata(p.node_key(b.node_id))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        p.write_internal_certificates().unwrap();
        assert_ne!(std::fs::read(p.ca()).unwrap(), ca_before);
    }
}
