//! A replicated cluster of `fjord` processes on loopback, for fault-injection suites.
//!
//! Every broker binds all its listeners to its own loopback address, 127.0.B.(10+id)
//! (B is leased through a lock file, so parallel tests and test processes never share
//! one), so
//! that an iptables rule can name one broker: [`Cluster::isolate`] drops every packet
//! between that broker's address and the others', both ways, while the test process
//! (whose connections come from 127.0.0.1) still reaches every broker.
//!
//! That only cuts broker-to-broker traffic if each broker's outgoing internal connections
//! leave from its own address; Linux would otherwise pick 127.0.0.1 as their source.
//! [`Cluster::isolate`] checks this on the live sockets and fails loudly when it does
//! not hold, rather than run a partition test that partitions nothing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fjord_client::{Client, ClientConfig};

use crate::{BrokerOptions, BrokerProcess, READY_TIMEOUT};

/// Settings of a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of brokers, node ids 1..=N.
    pub brokers: u32,
    /// How many of the first brokers are metadata quorum voters (the rest are learners).
    pub voters: u32,
    /// default.replication.factor of the brokers.
    pub replication_factor: u32,
    /// min.insync.replicas of the brokers.
    pub min_insync_replicas: u32,
    /// Extra command-line arguments of every broker, after the harness's own.
    pub args: Vec<String>,
    /// Extra command-line arguments of one broker (by node id), after `args`: each
    /// broker's own certificate, for instance.
    pub broker_args: std::collections::BTreeMap<u32, Vec<String>>,
    /// Extra environment of every broker.
    pub env: Vec<(String, String)>,
    /// Install and check the iptables chain at start, so a test that will isolate a
    /// broker fails before it does any work on a machine where it cannot.
    pub firewall: bool,
    /// Bound on each broker's spawn → ready.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            brokers: 3,
            voters: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
            args: Vec::new(),
            broker_args: Default::default(),
            env: Vec::new(),
            firewall: false,
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// The leader of a partition as the cluster's metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeader {
    pub node_id: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// N `fjord` brokers wired as one cluster.
pub struct Cluster {
    // Dropped first (field order): the rules go before the processes, so nothing is left
    // behind even when a broker's drop panics.
    firewall: Option<Firewall>,
    brokers: Vec<BrokerProcess>,
    block: u8,
    // After the brokers: the block is free again only once they are gone.
    _lease: BlockLease,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("brokers", &self.brokers)
            .finish()
    }
}

/// An address block 127.0.B.0/24 held by this process: an exclusive lock on a file named
/// after B, released when dropped or when the process dies. Test binaries run in
/// parallel, and two clusters on one block would share addresses, and the firewall
/// rules of one would cut off the other.
struct BlockLease {
    block: u8,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl BlockLease {
    /// Blocks 1..=250, tried from a random one on, so processes rarely contend.
    fn take() -> Result<BlockLease> {
        let dir = std::env::temp_dir().join("fjord-e2e-address-blocks");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let start = (crate::random_u64() % 250) as u8;
        for i in 0..250u8 {
            let block = 1 + (start + i) % 250;
            let path = dir.join(block.to_string());
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(BlockLease { block, _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
        }
        bail!("all 250 loopback address blocks are held by other test clusters")
    }
}

/// Loopback address of broker `node_id` in address block `block`.
pub fn broker_host(block: u8, node_id: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, block, 10 + node_id as u8)
}

impl Cluster {
    /// Starts every broker, then waits until each answers `/ready`. (All are spawned
    /// before any is waited for: a voter is not ready before the quorum has a majority.)
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        let ready_timeout = options.ready_timeout;
        let (mut cluster, started) = Cluster::spawn(options).await?;
        for (broker, started) in cluster.brokers.iter_mut().zip(started) {
            broker.wait_ready(started).await?;
        }
        cluster.wait_for_brokers(ready_timeout).await?;
        Ok(cluster)
    }

    /// Spawns every broker and returns at once, with each one's spawn time: for tests of
    /// what clients meet while a cluster starts.
    pub async fn spawn(options: ClusterOptions) -> Result<(Cluster, Vec<Instant>)> {
        if options.brokers == 0 || options.brokers > 200 {
            bail!("a cluster of {} brokers", options.brokers);
        }
        let lease = BlockLease::take()?;
        let block = lease.block;
        let firewall = if options.firewall {
            Some(Firewall::install(block).await?)
        } else {
            None
        };
        let mut brokers = Vec::new();
        for node_id in 1..=options.brokers {
            brokers.push(BrokerProcess::prepare(BrokerOptions {
                node_id,
                host: broker_host(block, node_id),
                args: Vec::new(),
                env: options.env.clone(),
                ready_timeout: options.ready_timeout,
                ..BrokerOptions::default()
            })?);
        }
        let voters = brokers
            .iter()
            .take(options.voters.max(1) as usize)
            .map(|b| format!("{}@{}", b.node_id(), b.internal_addr()))
            .collect::<Vec<_>>()
            .join(",");
        for broker in &mut brokers {
            broker.push_args(
                [
                    format!("--voters={voters}"),
                    format!(
                        "--default-replication-factor={}",
                        options.replication_factor
                    ),
                    format!("--min-insync-replicas={}", options.min_insync_replicas),
                ]
                .into_iter()
                .chain(options.args.iter().cloned())
                .chain(
                    options
                        .broker_args
                        .get(&broker.node_id())
                        .into_iter()
                        .flatten()
                        .cloned(),
                ),
            );
        }
        let mut cluster = Cluster {
            firewall,
            brokers,
            block,
            _lease: lease,
        };
        let mut started = Vec::new();
        for broker in &mut cluster.brokers {
            started.push(broker.spawn()?);
        }
        Ok((cluster, started))
    }

    /// Waits until every running broker's Metadata lists every broker of the cluster, so a
    /// test creating a topic with replication factor N finds N brokers to place it on.
    pub async fn wait_for_brokers(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let everyone: Vec<i32> = self.node_ids();
        for broker in self
            .brokers
            .iter()
            .filter(|b| b.is_running() && !b.is_paused())
        {
            loop {
                let listed = listed_brokers(&broker.bootstrap()).await;
                if listed.as_deref() == Some(everyone.as_slice()) {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "broker {}'s Metadata lists brokers {listed:?}, not {everyone:?}, after {timeout:?}",
                        broker.node_id()
                    );
                }
                // Poll interval of a condition wait.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Every broker's Kafka address, comma separated.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node ids, 1..=N.
    pub fn node_ids(&self) -> Vec<i32> {
        (1..=self.brokers.len() as i32).collect()
    }

    /// Broker `node_id` (1-based, as in Metadata).
    pub fn broker(&self, node_id: i32) -> &BrokerProcess {
        &self.brokers[Self::index(node_id)]
    }

    /// Broker `node_id`, mutably.
    pub fn broker_mut(&mut self, node_id: i32) -> &mut BrokerProcess {
        &mut self.brokers[Self::index(node_id)]
    }

    fn index(node_id: i32) -> usize {
        assert!(node_id >= 1, "node ids start at 1, not {node_id}");
        (node_id - 1) as usize
    }

    /// SIGKILL broker `node_id` and reap it.
    pub async fn kill9(&mut self, node_id: i32) -> Result<ExitStatus> {
        self.broker_mut(node_id).kill9().await
    }

    /// SIGTERM broker `node_id` and wait up to `grace` for it to exit.
    pub async fn sigterm(&mut self, node_id: i32, grace: Duration) -> Result<ExitStatus> {
        self.broker_mut(node_id).sigterm(grace).await
    }

    /// Starts broker `node_id` again on its data dir and addresses; returns spawn → ready.
    pub async fn restart(&mut self, node_id: i32) -> Result<Duration> {
        self.broker_mut(node_id).restart().await
    }

    /// Pauses broker `node_id` (SIGSTOP).
    pub fn sigstop(&mut self, node_id: i32) -> Result<()> {
        self.broker_mut(node_id).sigstop()
    }

    /// Resumes broker `node_id` (SIGCONT).
    pub fn sigcont(&mut self, node_id: i32) -> Result<()> {
        self.broker_mut(node_id).sigcont()
    }

    /// Drops all traffic between broker `node_id`'s address and every other broker's,
    /// both ways, until [`Self::heal`]. Fails when iptables is unusable here, or when the
    /// brokers' internal connections do not leave from their own addresses (the rules
    /// would then cut nothing).
    pub async fn isolate(&mut self, node_id: i32) -> Result<()> {
        self.check_internal_sources()?;
        if self.firewall.is_none() {
            self.firewall = Some(Firewall::install(self.block).await?);
        }
        let isolated = self.broker(node_id).host();
        let others: Vec<Ipv4Addr> = self
            .brokers
            .iter()
            .filter(|b| b.node_id() as i32 != node_id)
            .map(BrokerProcess::host)
            .collect();
        let firewall = self.firewall.as_ref().context("firewall installed above")?;
        for other in others {
            firewall.drop_between(isolated, other)?;
        }
        Ok(())
    }

    /// Removes every rule [`Self::isolate`] added.
    pub fn heal(&mut self) -> Result<()> {
        match &self.firewall {
            Some(firewall) => firewall.clear(),
            None => Ok(()),
        }
    }

    /// Fails when an established connection to some broker's internal listener comes
    /// from an address that is not a broker's: iptables rules on broker addresses would
    /// not see that traffic.
    pub fn check_internal_sources(&self) -> Result<()> {
        let hosts: Vec<Ipv4Addr> = self.brokers.iter().map(BrokerProcess::host).collect();
        let internal: Vec<SocketAddrV4> = self
            .brokers
            .iter()
            .map(|b| SocketAddrV4::new(b.host(), b.internal_port()))
            .collect();
        let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
        for (local, remote) in established_ipv4(&table) {
            if internal.contains(&remote) && !hosts.contains(local.ip()) {
                bail!(
                    "a connection to the internal listener {remote} comes from {local}, not from \
                     a broker's address: the broker must bind its outgoing internal connections \
                     to the --internal-listen address (e.g. tonic Endpoint::local_address), or \
                     iptables rules on broker addresses cannot isolate it"
                );
            }
        }
        Ok(())
    }

    /// The leader of `topic`/`partition` according to the running, unpaused brokers:
    /// the answer with the highest leader epoch, so a broker that is cut off and still
    /// believes in an old leadership does not win. `None` while no broker names one.
    pub async fn leader(&self, topic: &str, partition: i32) -> Option<PartitionLeader> {
        let mut best: Option<PartitionLeader> = None;
        for broker in self
            .brokers
            .iter()
            .filter(|b| b.is_running() && !b.is_paused())
        {
            let Some(answer) = partition_leader(&broker.bootstrap(), topic, partition).await else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|b| answer.leader_epoch > b.leader_epoch)
            {
                best = Some(answer);
            }
        }
        best
    }

    /// Waits until the leader of `topic`/`partition` satisfies `accept`, up to `timeout`.
    pub async fn wait_for_leader(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&PartitionLeader) -> bool,
    ) -> Result<PartitionLeader> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.leader(topic, partition).await;
            if let Some(leader) = leader.as_ref().filter(|l| accept(l)) {
                return Ok(leader.clone());
            }
            if Instant::now() >= deadline {
                bail!("{topic}/{partition}: no leader {what} within {timeout:?}; last seen {leader:?}");
            }
            // Poll interval of a condition wait.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Client settings of the harness's lookups: a silent broker must not hold a wait up.
fn lookup_config() -> ClientConfig {
    ClientConfig {
        client_id: "fjord-e2e-cluster".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        leader_retries: 0,
        ..ClientConfig::default()
    }
}

/// The node ids, sorted, of the brokers one broker's Metadata lists.
async fn listed_brokers(addr: &str) -> Option<Vec<i32>> {
    let lookup = async {
        let client = Client::connect(&[addr], lookup_config()).await.ok()?;
        let metadata = client.metadata(Some(&[])).await.ok()?;
        let mut ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
        ids.sort_unstable();
        Some(ids)
    };
    tokio::time::timeout(Duration::from_secs(5), lookup)
        .await
        .ok()
        .flatten()
}

/// What one broker's Metadata says of the partition, within a few seconds.
async fn partition_leader(addr: &str, topic: &str, partition: i32) -> Option<PartitionLeader> {
    let lookup = async {
        let client = Client::connect(&[addr], lookup_config()).await.ok()?;
        let metadata = client.metadata(Some(&[topic])).await.ok()?;
        let p = metadata
            .topic(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?;
        (p.leader_id >= 0).then(|| PartitionLeader {
            node_id: p.leader_id,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), lookup)
        .await
        .ok()
        .flatten()
}

/// (local, remote) of every established IPv4 TCP connection in `/proc/net/tcp` text.
fn established_ipv4(table: &str) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    const ESTABLISHED: &str = "01";
    // "ADDR:PORT" in hex; the address is the in-memory (network order) u32 printed as a
    // host-order number, hence the native-endian bytes.
    let parse = |s: &str| -> Option<SocketAddrV4> {
        let (ip, port) = s.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = parse(fields.next()?)?;
            let remote = parse(fields.next()?)?;
            (fields.next()? == ESTABLISHED).then_some((local, remote))
        })
        .collect()
}

/// An iptables chain of this test process, jumped to from OUTPUT (on loopback every
/// packet passes OUTPUT, so one hook drops both directions' packets). Removed on drop,
/// also when a test panics.
#[derive(Debug)]
pub struct Firewall {
    chain: String,
}

impl Firewall {
    /// Creates the chain and checks that its rules drop loopback traffic on this machine.
    pub async fn install(block: u8) -> Result<Firewall> {
        remove_abandoned_chains();
        // iptables limits chain names to 28 characters.
        let chain = format!("{CHAIN_PREFIX}{}-{block}", std::process::id());
        iptables(&["-N", &chain]).map_err(|e| {
            e.context(
                "this test needs root and iptables to cut a broker off the others \
                 (apt-get install iptables; run as root or with CAP_NET_ADMIN)",
            )
        })?;
        let firewall = Firewall { chain };
        iptables(&["-I", "OUTPUT", "-j", &firewall.chain])?;
        firewall.check_drops_loopback(block).await?;
        Ok(firewall)
    }

    /// A TCP connect between two loopback addresses of the block must fail while a rule
    /// drops their traffic, and succeed without it.
    async fn check_drops_loopback(&self, block: u8) -> Result<()> {
        let from = Ipv4Addr::new(127, 0, block, 250);
        let to = Ipv4Addr::new(127, 0, block, 251);
        let listener = tokio::net::TcpListener::bind((to, 0)).await?;
        let target = listener.local_addr()?;
        if !connects(from, target).await {
            bail!("the firewall self-check cannot connect {from} → {target} even without rules");
        }
        self.drop_between(from, to)?;
        let cut = !connects(from, target).await;
        self.clear()?;
        if !cut {
            bail!(
                "iptables rules do not drop loopback traffic on this machine ({from} → {target} \
                 still connects): brokers cannot be isolated here"
            );
        }
        Ok(())
    }

    /// Drops every packet from `a` to `b` and from `b` to `a`.
    pub fn drop_between(&self, a: Ipv4Addr, b: Ipv4Addr) -> Result<()> {
        for (src, dst) in [(a, b), (b, a)] {
            iptables(&[
                "-A",
                &self.chain,
                "-s",
                &src.to_string(),
                "-d",
                &dst.to_string(),
                "-j",
                "DROP",
            ])?;
        }
        Ok(())
    }

    /// Removes every rule of the chain.
    pub fn clear(&self) -> Result<()> {
        iptables(&["-F", &self.chain])
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let results = [
            iptables(&["-D", "OUTPUT", "-j", &self.chain]),
            iptables(&["-F", &self.chain]),
            iptables(&["-X", &self.chain]),
        ];
        for r in results {
            if let Err(e) = r {
                eprintln!("removing iptables chain {}: {e:#}", self.chain);
            }
        }
    }
}

/// Whether a TCP connection from `from` to `target` is established within half a second.
async fn connects(from: Ipv4Addr, target: std::net::SocketAddr) -> bool {
    let attempt = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((from, 0).into())?;
        socket.connect(target).await
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Ok(_))
    )
}

const CHAIN_PREFIX: &str = "FJORD-E2E-";

/// Removes the chains of test processes that are gone without dropping their firewall
/// (killed, aborted): their rules would otherwise cut brokers of later runs off.
fn remove_abandoned_chains() {
    let Ok(output) = Command::new("iptables").args(["-w", "-S"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(chain) = line.strip_prefix("-N ") else {
            continue;
        };
        let Some(pid) = chain
            .strip_prefix(CHAIN_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if std::path::Path::new("/proc").join(pid).exists() {
            continue;
        }
        let _ = iptables(&["-D", "OUTPUT", "-j", chain]);
        let _ = iptables(&["-F", chain]);
        let _ = iptables(&["-X", chain]);
    }
}

/// Runs `iptables -w ARGS`, failing with its stderr.
fn iptables(args: &[&str]) -> Result<()> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .with_context(|| format!("running iptables {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "iptables {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_give_established_ipv4_pairs() {
        // 127.0.0.11:40000 → 127.0.0.12:9093 established; a listener; 127.0.0.1 peer.
        let addr = |ip: Ipv4Addr| format!("{:08X}", u32::from_ne_bytes(ip.octets()));
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue\n   \
             0: {}:9C40 {}:2385 01 00000000:00000000\n   \
             1: {}:2385 00000000:0000 0A 00000000:00000000\n   \
             2: {}:9C41 {}:2385 01 00000000:00000000\n",
            addr(Ipv4Addr::new(127, 0, 0, 11)),
            addr(Ipv4Addr::new(127, 0, 0, 12)),
            addr(Ipv4Addr::new(127, 0, 0, 12)),
            addr(Ipv4Addr::LOCALHOST),
            addr(Ipv4Addr::new(127, 0, 0, 12)),
        );
        let pairs = established_ipv4(&table);
        let internal = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 12), 9093);
        assert_eq!(
            pairs,
            [
                (
                    SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 40000),
                    internal
                ),
                (SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40001), internal),
            ]
        );
    }

    /// Needs root and iptables, like the isolation suite it serves.
    #[tokio::test]
    async fn firewall_cuts_two_addresses_apart_and_leaves_127_0_0_1_through() {
        // A block no cluster of this process uses (they count up from 0).
        let block = 255;
        let firewall = Firewall::install(block).await.unwrap();
        let chain = firewall.chain.clone();
        let (a, b) = (broker_host(block, 1), broker_host(block, 2));
        let listener = tokio::net::TcpListener::bind((b, 0)).await.unwrap();
        let target = listener.local_addr().unwrap();
        firewall.drop_between(a, b).unwrap();
        assert!(!connects(a, target).await, "{a} still reaches {target}");
        assert!(connects(Ipv4Addr::LOCALHOST, target).await);
        firewall.clear().unwrap();
        assert!(connects(a, target).await, "{a} cut off after clear");
        drop(firewall);
        let rules = Command::new("iptables")
            .args(["-w", "-S"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&rules.stdout).contains(&chain));
    }

    #[test]
    fn brokers_get_their_own_loopback_address() {
        assert_eq!(broker_host(0, 1), Ipv4Addr::new(127, 0, 0, 11));
        assert_eq!(broker_host(4, 3), Ipv4Addr::new(127, 0, 4, 13));
    }
}
