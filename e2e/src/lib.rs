//! End-to-end harness: real `fjord` broker processes on loopback.
//!
//! # Layout
//!
//! - [`BrokerProcess`]: one `fjord` process with its own temp data dir and free ports
//!   (Kafka, internal, HTTP) on one loopback address; start, wait for `/ready`, SIGKILL,
//!   SIGTERM, SIGSTOP/SIGCONT, restart on the same data dir. Killed on drop; its logs are
//!   printed when the test panics.
//! - [`cluster`]: [`Cluster`], N brokers wired as one replicated cluster, each on its own
//!   loopback address so that iptables rules can cut one off ([`cluster::Firewall`]);
//!   partition leader lookup.
//! - [`Target`]: what a suite runs against: a spawned broker, or an existing one named by
//!   `FJORD_E2E_BOOTSTRAP` (to prove a suite against another Kafka-compatible broker).
//! - [`unique_topic`]: topic names that do not collide across runs on a shared broker.
//! - [`http_get`]: status and body of one HTTP GET (`/metrics`, `/health`, `/ready`).
//! - [`bench`]: the I/O-free parts of the benchmark client `fjord-bench`
//!   (src/bin/fjord-bench.rs, driven by e2e/bench.sh): fixed-rate schedule, send times
//!   carried in records, latency and throughput figures.
//! - [`scaling`]: the I/O-free parts of the Kubernetes suite's live-traffic workload
//!   `scaling-workload` (src/bin/scaling-workload.rs, driven by e2e/k8s.sh): record ids,
//!   the longest gap between acknowledgements, the summary line and its verdict.
//!
//! The binary is `FJORD_BIN`, else `fjord` in the target directory of the running test
//! executable (build it first: `cargo build -p fjord-broker --bin fjord`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub mod bench;
pub mod cluster;
pub mod rdkafka_context;
pub mod scaling;

pub use cluster::{Cluster, ClusterOptions};

/// How long a broker may take from spawn to `/ready` before the harness gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of one broker process.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// `--node-id`.
    pub node_id: u32,
    /// Loopback address every listener of the broker binds (any of 127.0.0.0/8).
    pub host: Ipv4Addr,
    /// Extra command-line arguments, after the harness's own.
    pub args: Vec<String>,
    /// Extra environment (`FJORD_*` settings).
    pub env: Vec<(String, String)>,
    /// Bound on spawn → ready.
    pub ready_timeout: Duration,
    /// Security protocol of the Kafka listener (named after it, as Kafka's default
    /// protocol map does).
    pub security_protocol: &'static str,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            node_id: 1,
            host: Ipv4Addr::LOCALHOST,
            args: Vec::new(),
            env: Vec::new(),
            ready_timeout: READY_TIMEOUT,
            security_protocol: "PLAINTEXT",
        }
    }
}

/// One `fjord` broker process on loopback.
pub struct BrokerProcess {
    options: BrokerOptions,
    binary: PathBuf,
    // Dropped after `child` is killed (field order), so the process never outlives it.
    dir: tempfile::TempDir,
    kafka_port: u16,
    internal_port: u16,
    http_port: u16,
    child: Option<Child>,
    starts: u32,
    /// Whether the process was paused with SIGSTOP and not yet resumed.
    paused: bool,
}

impl std::fmt::Debug for BrokerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProcess")
            .field("node_id", &self.options.node_id)
            .field("host", &self.options.host)
            .field("kafka_port", &self.kafka_port)
            .field("internal_port", &self.internal_port)
            .field("http_port", &self.http_port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The `fjord` binary: `FJORD_BIN`, else next to the running test executable's target
/// directory (`target/<profile>/deps/test-… → target/<profile>/fjord`).
pub fn fjord_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FJORD_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("fjord");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "no fjord binary near {}: set FJORD_BIN or run `cargo build -p fjord-broker --bin fjord` \
         with the same target dir and profile",
        exe.display()
    )
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A port of `host` that was free a moment ago.
pub fn free_port_on(host: Ipv4Addr) -> Result<u16> {
    Ok(free_ports_on(host, 1)?[0])
}

/// Test ports come from below the kernel's ephemeral range, so an outgoing connection
/// of any process cannot take one between the choice and the broker's bind (ports the
/// system hands out for port 0 are in that range, and were seen taken). Chosen at
/// random, never twice in one process, and checked free by binding.
const TEST_PORTS: std::ops::Range<u16> = 20_000..29_000;

/// `n` distinct ports of `host` that were free a moment ago (held together while chosen).
pub fn free_ports_on(host: Ipv4Addr, n: usize) -> Result<Vec<u16>> {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    anyhow::ensure!(
        TEST_PORTS.end <= ephemeral_start,
        "test ports {TEST_PORTS:?} overlap the ephemeral range starting at {ephemeral_start}"
    );
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut listeners = Vec::with_capacity(n);
    let mut tries = 0;
    while listeners.len() < n {
        tries += 1;
        anyhow::ensure!(tries < 10_000, "no free port of {host} in {TEST_PORTS:?}");
        let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
        let port = TEST_PORTS.start + (random_u64() % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind((host, port)) {
            handed_out.push(port);
            listeners.push(l);
        }
    }
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A random number from the standard library's randomly keyed hasher.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

impl BrokerProcess {
    /// Spawns a broker with a fresh data dir and free ports, and waits until it is ready.
    pub async fn start(options: BrokerOptions) -> Result<BrokerProcess> {
        let mut broker = BrokerProcess::prepare(options)?;
        broker.spawn_and_wait_ready().await?;
        Ok(broker)
    }

    /// A broker with its temp dir and ports chosen, not started yet: a cluster needs
    /// every broker's internal address for `--voters` before it starts any.
    pub fn prepare(options: BrokerOptions) -> Result<BrokerProcess> {
        let dir = tempfile::Builder::new()
            .prefix("fjord-e2e-")
            .tempdir()
            .context("creating the broker's temp dir")?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        // The internal port too, always: the broker's default (9093) is fixed, and two
        // brokers on one machine would collide on it.
        let ports = free_ports_on(options.host, 3)?;
        Ok(BrokerProcess {
            options,
            binary: fjord_binary()?,
            dir,
            kafka_port: ports[0],
            internal_port: ports[1],
            http_port: ports[2],
            child: None,
            starts: 0,
            paused: false,
        })
    }

    /// Adds command-line arguments for every later start (e.g. `--voters`, which names
    /// the other brokers' addresses).
    pub fn push_args(&mut self, args: impl IntoIterator<Item = String>) {
        self.options.args.extend(args);
    }

    /// Replaces the extra command-line arguments for every later start (a restart with
    /// other settings on the same data dir).
    pub fn set_args(&mut self, args: Vec<String>) {
        self.options.args = args;
    }

    /// Spawns the process on this broker's data dir and ports; returns spawn → ready.
    async fn spawn_and_wait_ready(&mut self) -> Result<Duration> {
        let started = self.spawn()?;
        self.wait_ready(started).await
    }

    /// Spawns the process on this broker's data dir and ports, without waiting.
    pub fn spawn(&mut self) -> Result<Instant> {
        if self.child.is_some() {
            bail!("broker {} is already running", self.options.node_id);
        }
        self.starts += 1;
        let stdout = self.log_file("stdout")?;
        let stderr = self.log_file("stderr")?;
        let mut command = Command::new(&self.binary);
        command.arg("--data-dir").arg(self.data_dir());
        // A test that names its listeners binds the harness's Kafka port itself.
        if !self
            .options
            .args
            .iter()
            .any(|a| a.starts_with("--listeners"))
        {
            match self.options.security_protocol {
                "PLAINTEXT" => command.arg("--kafka-listen").arg(self.bootstrap()),
                other => command
                    .arg("--listeners")
                    .arg(format!("{other}://{}", self.bootstrap())),
            };
        }
        command
            .arg("--internal-listen")
            .arg(self.internal_addr())
            .arg("--http-listen")
            .arg(self.http_addr())
            .arg("--node-id")
            .arg(self.options.node_id.to_string())
            .args(&self.options.args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // The backstop: a test that panics or forgets still takes the process down.
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(started)
    }

    /// Waits until the process spawned at `started` answers `/ready` with 200; fails
    /// when it exits first or at its ready timeout. Returns spawn → ready.
    pub async fn wait_ready(&mut self, started: Instant) -> Result<Duration> {
        let deadline = started + self.options.ready_timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "broker {} exited before ready ({status})\n{}",
                    self.options.node_id,
                    self.logs()
                );
            }
            if http_status_at(&self.http_addr(), "/ready").await == Some(200) {
                return Ok(started.elapsed());
            }
            if Instant::now() >= deadline {
                bail!(
                    "broker {} not ready within {:?}\n{}",
                    self.options.node_id,
                    self.options.ready_timeout,
                    self.logs()
                );
            }
            // Poll interval of a condition wait, not a synchronisation sleep.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log_file(&self, stream: &str) -> Result<File> {
        let path = self.dir.path().join(format!("{stream}.log"));
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(file, "==== fjord start #{} ====", self.starts)?;
        Ok(file)
    }

    /// The broker's data directory (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `<host>:<kafka port>`.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.options.host, self.kafka_port)
    }

    /// `<host>:<http port>`.
    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.options.host, self.http_port)
    }

    /// `<host>:<internal port>`: the internal listener (quorum, replication).
    pub fn internal_addr(&self) -> String {
        format!("{}:{}", self.options.host, self.internal_port)
    }

    /// The loopback address every listener of this broker binds.
    pub fn host(&self) -> Ipv4Addr {
        self.options.host
    }

    /// The internal listener's port.
    pub fn internal_port(&self) -> u16 {
        self.internal_port
    }

    /// `--node-id`.
    pub fn node_id(&self) -> u32 {
        self.options.node_id
    }

    /// Whether the process is running (spawned and not reaped; paused counts).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is paused by [`Self::sigstop`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGSTOP: the process freezes with its sockets open, as in a long GC pause or a
    /// stalled VM; peers see silence, not a closed connection.
    pub fn sigstop(&mut self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT: resumes a process paused by [`Self::sigstop`].
    pub fn sigcont(&mut self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("broker {} is not running", self.options.node_id))?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("sending {signal} to broker {}", self.options.node_id))
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL, then reap the process.
    pub async fn kill9(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("broker is not running")?;
        child.start_kill().context("sending SIGKILL")?;
        self.paused = false;
        Ok(child.wait().await?)
    }

    /// SIGTERM, then wait up to `grace` for the process to exit; past it, SIGKILL and fail.
    pub async fn sigterm(&mut self, grace: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("broker is not running")?;
        let pid = child.id().context("broker already reaped")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).context("sending SIGTERM")?;
        if self.paused {
            // A stopped process holds SIGTERM until it runs again.
            kill(Pid::from_raw(pid as i32), Signal::SIGCONT).context("sending SIGCONT")?;
            self.paused = false;
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.start_kill()?;
                child.wait().await?;
                bail!(
                    "broker {} still running {grace:?} after SIGTERM\n{}",
                    self.options.node_id,
                    self.logs()
                )
            }
        }
    }

    /// Starts the broker again on the same data dir and ports (after [`Self::kill9`] or
    /// [`Self::sigterm`]); returns the recovery time, spawn → ready.
    pub async fn restart(&mut self) -> Result<Duration> {
        self.spawn_and_wait_ready().await
    }

    /// The stdout and stderr logs of every start so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for stream in ["stdout", "stderr"] {
            let path = self.dir.path().join(format!("{stream}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push_str(&format!("---- {} ----\n{text}\n", path.display()));
        }
        out
    }

    /// Path of the temp dir holding data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // A broker that exited before the end of its test, unasked, has its logs shown
        // whatever the test's outcome: a test failing through an error (not a panic)
        // would lose them otherwise.
        let mut why = std::thread::panicking().then(|| "test failed".to_string());
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                why = Some(format!("exited unasked: {status}"));
            }
            let _ = child.start_kill();
            // Reap where possible so no zombie lingers for the rest of the test binary.
            let _ = child.try_wait();
        }
        if let Some(why) = why {
            eprintln!(
                "fjord broker {} logs ({why}):\n{}",
                self.options.node_id,
                self.logs()
            );
        }
    }
}

/// The status code of `GET path` on `127.0.0.1:port`, or `None` if there is no valid
/// answer within a second. A tiny HTTP/1.1 client: the readiness probe needs nothing more.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    http_status_at(&format!("127.0.0.1:{port}"), path).await
}

/// The status code of `GET path` on `addr` (host:port), or `None` if there is no valid
/// answer within a second.
pub async fn http_status_at(addr: &str, path: &str) -> Option<u16> {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let mut parts = line.split_whitespace();
        if !parts.next()?.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
}

/// `GET path` on `addr` (host:port): the status code and the body, read until the server
/// closes (the request asks it to). Bounded by `timeout`; bodies over 16 MiB are refused.
pub async fn http_get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, String)> {
    const MAX_RESPONSE_BYTES: u64 = 16 << 20;
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut raw)
            .await?;
        if raw.len() as u64 > MAX_RESPONSE_BYTES {
            bail!("GET {path} on {addr}: response over {MAX_RESPONSE_BYTES} bytes");
        }
        let text = String::from_utf8(raw).context("response is not UTF-8")?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("GET {path} on {addr}: no end of headers in {text:?}"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("GET {path} on {addr}: bad status line in {head:?}"))?;
        let chunked = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_string()
        };
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

/// Decodes an HTTP/1.1 chunked body (chunk extensions and trailers ignored).
fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::with_capacity(rest.len());
    loop {
        let (size_line, after) = rest.split_once("\r\n").context("chunk size line")?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("chunk size {size_hex:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after.get(..size).context("chunk shorter than its size")?;
        out.push_str(chunk);
        rest = after
            .get(size..)
            .and_then(|r| r.strip_prefix("\r\n"))
            .context("chunk not followed by CRLF")?;
    }
}

/// What a suite runs against.
#[derive(Debug)]
pub enum Target {
    /// An existing broker from `FJORD_E2E_BOOTSTRAP`; left alone by the harness.
    External(String),
    /// A broker spawned for this test.
    Spawned(Box<BrokerProcess>),
}

impl Target {
    /// `FJORD_E2E_BOOTSTRAP` if set, else a freshly spawned broker.
    pub async fn from_env() -> Result<Target> {
        match std::env::var("FJORD_E2E_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.is_empty() => Ok(Target::External(bootstrap)),
            _ => Ok(Target::Spawned(Box::new(
                BrokerProcess::start(BrokerOptions::default()).await?,
            ))),
        }
    }

    /// The bootstrap address clients connect to.
    pub fn bootstrap(&self) -> String {
        match self {
            Target::External(bootstrap) => bootstrap.clone(),
            Target::Spawned(broker) => broker.bootstrap(),
        }
    }
}

/// `prefix-<pid>-<ms>-<n>`: unique per call, across processes and runs, so suites can share
/// one long-lived broker.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{ms}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_topics_differ() {
        assert_ne!(unique_topic("t"), unique_topic("t"));
    }

    #[tokio::test]
    async fn http_status_reads_the_status_line() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http_status(port, "/ready").await, Some(200));
        assert_eq!(http_status(port, "/ready").await, Some(503));
        server.await.unwrap();
        // Nothing listens any more.
        assert_eq!(http_status(port, "/ready").await, None);
    }

    #[tokio::test]
    async fn http_get_reads_plain_and_chunked_bodies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nplain\n",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let timeout = Duration::from_secs(5);
        let plain = http_get(&addr, "/a", timeout).await.unwrap();
        assert_eq!(plain, (200, "plain\n".to_string()));
        let chunked = http_get(&addr, "/b", timeout).await.unwrap();
        assert_eq!(chunked, (200, "abcde".to_string()));
        server.await.unwrap();
    }
}
