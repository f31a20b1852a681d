//! Deterministic simulation of a replicated partition on the broker's runtime glue:
//! three brokers, each holding a real [`crate::server::partition::Partition`] (its log
//! on disk) driven through the calls the runtime makes, one controller (the pure
//! [`Controller`]), a client, and a network that delays, drops and reorders messages
//! and can cut a broker off. Brokers crash (their files stay, everything in memory is
//! lost), die in a torn write (the storage seam lands only the start of their last
//! write), shut down in a controlled way, and restart, reopening and recovering their
//! logs. One seed fixes every choice; time is one [`ManualClock`] the simulator moves,
//! so a failing run replays exactly:
//! `FJORD_SIM_SEED=<n> cargo test -p fjord-broker --lib sim::`; a longer soak:
//! `FJORD_SIM_SEEDS=<count>`.
//!
//! - `net`: the random source, the messages, the faulty network.
//! - `broker`: one simulated broker process around its `Partition`.
//! - `invariants`: the checks, on records read back from the real logs.
//!
//! The client either produces acks=all records with unique ids, or (the group
//! coordinator's run) commits offsets to the `GroupRuntime` on the partition's leader,
//! the partition being `__consumer_offsets`, or runs transactions (`txn_client`). One test per invariant, each over many
//! seeds (see [`invariants::Invariant`]).

mod broker;
mod invariants;
mod log_view;
mod net;
mod tests;
mod txn_client;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::clock::ManualClock;
use crate::replication::cluster_state::{ClusterState, ControllerRecord};
use crate::replication::controller::{Controller, ControllerConfig, Heartbeat};
use crate::replication::BrokerId;
use crate::storage::FileKind;

use broker::{Outbox, SimBroker, Workload, REQUEST_TIMEOUT_MS, SESSION_TIMEOUT_MS, TP};
use invariants::{Checked, Invariant};
use net::{Fault, Msg, Network, Node, Rng, CLIENT, CONTROLLER};
use txn_client::TxnClient;

pub(super) const BROKERS: i32 = 3;
const STEP_MS: i64 = 10;
/// Faults and traffic run this long, then the network heals and the cluster settles.
const FAULTY_MS: i64 = 15_000;
const SETTLE_MS: i64 = 5_000;
/// Groups the committing client commits for, one commit in flight each.
const GROUPS: usize = 4;
const TRACE_TAIL: usize = 60;

#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Acknowledged writes or commits.
    pub acked: usize,
    /// Leader epochs led, truncations done, ...: how much the run exercised.
    pub leader_epochs: usize,
    pub truncations: usize,
    /// Followers that started over at their leader's log start (retention).
    pub resets: usize,
    pub segments_deleted: usize,
    pub controlled_shutdowns: usize,
    pub torn_writes: usize,
    /// Writes refused or failed for too small an ISR (NOT_ENOUGH_REPLICAS and
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub not_enough_replicas: usize,
    pub coordinator_loads: usize,
    /// A hash of every traced event: equal for two runs of a seed.
    pub fingerprint: u64,
}

/// The committing client's state for one group.
#[derive(Default)]
struct GroupClient {
    next_offset: i64,
    /// The commit in flight and when it was sent; a later one waits for its answer
    /// (or its timeout) so commits reach the coordinator in order.
    in_flight: Option<(u64, i64)>,
}

struct Sim {
    rng: Rng,
    clock: Arc<ManualClock>,
    now: i64,
    network: Network,
    fault_until: i64,
    next_fault_ms: i64,
    controller: Controller,
    controller_log: Vec<ControllerRecord>,
    brokers: Vec<SimBroker>,
    workload: Workload,
    next_request_id: u64,
    /// Acknowledged record id -> offset.
    acked_writes: BTreeMap<u64, i64>,
    /// Highest acknowledged committed offset, by group.
    acked_commits: BTreeMap<usize, i64>,
    group_clients: Vec<GroupClient>,
    txn: TxnClient,
    /// What the invariant checks remember between steps.
    checked: Checked,
    trace: VecDeque<String>,
    fingerprint: std::hash::DefaultHasher,
    outcome: Outcome,
    check: Invariant,
}

impl Sim {
    fn new(seed: u64, check: Invariant, data_dir: &Path) -> Result<Sim, String> {
        let workload = check.workload();
        let mut controller = Controller::new(
            ControllerConfig {
                session_timeout_ms: SESSION_TIMEOUT_MS,
                auto_leader_rebalance: true,
            },
            ClusterState::default(),
            0,
        );
        // The cluster starts formed: brokers registered and unfenced, the topic created.
        let mut controller_log = Vec::new();
        for b in 1..=BROKERS {
            let (epoch, records) = controller.register_broker(0, b, Some(format!("rack-{b}")));
            controller_log.extend(records);
            let hb = Heartbeat {
                broker: b,
                broker_epoch: epoch,
                want_fence: false,
                want_shut_down: false,
            };
            controller_log.extend(controller.heartbeat(0, hb).1);
        }
        controller_log.extend(
            controller
                .create_topic(
                    workload.topic(),
                    TP.topic_id,
                    1,
                    3,
                    BTreeMap::new(),
                    seed as usize,
                )
                .expect("three brokers hold three replicas"),
        );
        let clock = ManualClock::new(0);
        let mut brokers = Vec::new();
        for b in 1..=BROKERS {
            let dir = data_dir.join(format!("broker-{b}"));
            let mut broker = SimBroker::new(b, dir, clock.clone(), workload);
            broker.start(0)?;
            broker.set_registered(controller.state().broker(b).map(|r| r.epoch));
            brokers.push(broker);
        }
        let mut rng = Rng(seed);
        let drop_percent = rng.below(6);
        Ok(Sim {
            rng,
            clock,
            now: 0,
            network: Network::new(drop_percent),
            fault_until: 0,
            next_fault_ms: 1_000,
            controller,
            controller_log,
            brokers,
            workload,
            next_request_id: 1,
            acked_writes: BTreeMap::new(),
            acked_commits: BTreeMap::new(),
            group_clients: (0..GROUPS).map(|_| GroupClient::default()).collect(),
            txn: TxnClient::new(),
            checked: Checked::default(),
            trace: VecDeque::new(),
            fingerprint: std::hash::DefaultHasher::new(),
            outcome: Outcome::default(),
            check,
        })
    }

    fn trace(&mut self, event: String) {
        if self.trace.len() == TRACE_TAIL {
            self.trace.pop_front();
        }
        let line = format!("t={} {event}", self.now);
        line.hash(&mut self.fingerprint);
        self.trace.push_back(line);
    }

    fn broker(&mut self, id: BrokerId) -> &mut SimBroker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn reachable(&self, from: Node, to: Node) -> bool {
        self.network
            .reachable(from, to, |b| self.brokers[(b - 1) as usize].is_up())
    }

    fn send(&mut self, from: Node, to: Node, msg: Msg) {
        if self.reachable(from, to) {
            self.network.send(&mut self.rng, self.now, from, to, msg);
        }
    }

    fn run(&mut self) -> Result<Outcome, String> {
        while self.now < FAULTY_MS + SETTLE_MS {
            self.now += STEP_MS;
            self.clock.advance(STEP_MS);
            let faulty = self.now < FAULTY_MS;
            if faulty {
                self.inject_faults()?;
            } else {
                if self.network.fault != Fault::None {
                    self.heal()?;
                }
                self.network.drop_percent = 0;
            }
            self.deliver()?;
            let records = self.controller.tick(self.now);
            self.commit(records);
            for b in 1..=BROKERS {
                let now = self.now;
                self.on_broker(b, |broker, out| broker.tick(now, out))?;
            }
            // The transactional client also ends its open transactions after faults.
            if faulty || self.workload == Workload::Transactions {
                self.client();
            }
            self.check_invariants(false)?;
        }
        self.check_invariants(true)?;
        self.outcome.acked += self.acked_writes.len() + self.txn.acked;
        self.outcome.leader_epochs = self.checked.leaders_by_epoch.len();
        self.outcome.fingerprint = self.fingerprint.finish();
        Ok(std::mem::take(&mut self.outcome))
    }

    fn inject_faults(&mut self) -> Result<(), String> {
        if self.network.fault != Fault::None && self.now >= self.fault_until {
            self.heal()?;
        }
        if self.network.fault == Fault::None && self.now >= self.next_fault_ms {
            let b = self.rng.range(1, BROKERS as i64) as BrokerId;
            let fault = match self.rng.below(5) {
                0 => {
                    self.broker(b).crash()?;
                    Fault::Crashed(b)
                }
                1 => Fault::Isolated(b),
                2 => {
                    self.broker(b).begin_shutdown();
                    Fault::ControlledShutdown(b)
                }
                3 => {
                    // Mostly record batches; sometimes an index entry or a checkpoint.
                    let kind = match self.rng.below(4) {
                        0 => FileKind::Index,
                        1 => FileKind::Checkpoint,
                        _ => FileKind::Segment,
                    };
                    let bytes = self.rng.below(200) as usize;
                    self.broker(b).tear_next_write(kind, bytes);
                    Fault::TornWrite(b, kind)
                }
                _ => Fault::CutFromController(b),
            };
            self.network.fault = fault;
            self.fault_until = self.now + self.rng.range(500, 4_000);
            self.trace(format!("fault {fault:?} until {}", self.fault_until));
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        let fault = self.network.fault;
        self.trace(format!("heal {fault:?}"));
        let now = self.now;
        match fault {
            Fault::Crashed(b) | Fault::ControlledShutdown(b) | Fault::TornWrite(b, _) => {
                let broker = self.broker(b);
                broker.clear_disk_faults();
                if !broker.is_up() || matches!(fault, Fault::ControlledShutdown(_)) {
                    // A broker whose controlled shutdown has not finished is killed.
                    broker.crash()?;
                    broker.start(now)?;
                }
            }
            Fault::None | Fault::Isolated(_) | Fault::CutFromController(_) => {}
        }
        self.network.fault = Fault::None;
        self.next_fault_ms = self.now + self.rng.range(500, 3_000);
        Ok(())
    }

    fn deliver(&mut self) -> Result<(), String> {
        for e in self.network.due(self.now) {
            // A link cut or a crash while in flight loses the message.
            if !self.reachable(e.from, e.to) {
                continue;
            }
            match e.to {
                CONTROLLER => self.on_controller_message(e.from, e.msg),
                CLIENT => self.on_client_message(e.msg),
                b => {
                    let now = self.now;
                    self.on_broker(b, |broker, out| broker.on_message(now, e.from, e.msg, out))?;
                }
            }
        }
        Ok(())
    }

    /// Let broker `b` handle an event, then carry out what it asked for and check what
    /// it did. A process that died in a torn write meanwhile is gone: what failed in it
    /// is the crash, not an error.
    fn on_broker(
        &mut self,
        b: BrokerId,
        event: impl FnOnce(&mut SimBroker, &mut Outbox) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut out = Outbox::default();
        let result = event(self.broker(b), &mut out);
        if self.broker(b).died_in_torn_write() {
            self.broker(b).crash()?;
            self.outcome.torn_writes += 1;
            self.trace(format!("broker {b}: died in a torn write"));
            return Ok(());
        }
        self.flush(b, out)?;
        result
    }

    /// Carry out what broker `b` asked for, and check what it did.
    fn flush(&mut self, b: BrokerId, out: Outbox) -> Result<(), String> {
        for line in out.trace {
            self.trace(line);
        }
        for (to, msg) in out.sends {
            self.send(b, to, msg);
        }
        self.outcome.truncations += out.truncations;
        self.outcome.resets += out.resets;
        self.outcome.segments_deleted += out.segments_deleted;
        if self.check == Invariant::NoAckedWriteLost {
            for (id, offset) in out.acknowledged {
                self.check_acknowledged(b, id, offset)?;
            }
        }
        for epoch in out.led {
            self.check_led(b, epoch)?;
        }
        if out.coordinator_loaded {
            self.outcome.coordinator_loads += 1;
            if self.check == Invariant::AckedCommitSurvivesFailover {
                self.check_acked_commits(b, false)?;
            }
        }
        if out.controlled_shutdown_done {
            self.outcome.controlled_shutdowns += 1;
            self.broker(b).exit()?;
        }
        Ok(())
    }

    fn commit(&mut self, records: Vec<ControllerRecord>) {
        for r in &records {
            let line = format!("controller {r:?}");
            self.trace(line);
        }
        self.controller_log.extend(records);
    }

    fn on_controller_message(&mut self, from: Node, msg: Msg) {
        let now = self.now;
        match msg {
            Msg::Register { nonce } => {
                let (broker_epoch, records) =
                    self.controller
                        .register_broker(now, from, Some(format!("rack-{from}")));
                self.commit(records);
                let reply = Msg::Registered {
                    nonce,
                    broker_epoch,
                };
                self.send(CONTROLLER, from, reply);
            }
            Msg::Heartbeat {
                heartbeat,
                metadata_offset,
            } => {
                let (reply, records) = self.controller.heartbeat(now, heartbeat);
                self.commit(records);
                let from_offset = metadata_offset.min(self.controller_log.len());
                let records = self.controller_log[from_offset..].to_vec();
                let reply = Msg::HeartbeatReply {
                    reply,
                    from_offset,
                    records,
                };
                self.send(CONTROLLER, from, reply);
            }
            Msg::AlterPartition {
                broker_epoch,
                request,
            } => {
                let (result, records) =
                    self.controller
                        .alter_partition(from, broker_epoch, &request);
                self.commit(records);
                let reply = Msg::AlterPartitionReply { request, result };
                self.send(CONTROLLER, from, reply);
            }
            other => unreachable!("controller got {other:?}"),
        }
    }

    /// Clients route by the metadata they last fetched; the controller's is the
    /// freshest there is (for commits: FindCoordinator names the partition's leader).
    fn routed_leader(&self) -> Option<BrokerId> {
        let leader = self.controller.state().partition(&TP)?.leader;
        (leader > 0).then_some(leader)
    }

    fn client(&mut self) {
        match self.workload {
            Workload::Produce => {
                if self.rng.chance(15) {
                    let id = self.next_request_id;
                    self.next_request_id += 1;
                    if let Some(leader) = self.routed_leader() {
                        self.send(CLIENT, leader, Msg::Produce { id });
                    }
                }
            }
            Workload::Transactions => {
                let start_new = self.now < FAULTY_MS;
                let sends = self.txn.step(
                    &mut self.rng,
                    self.now,
                    &mut self.next_request_id,
                    start_new,
                );
                if let Some(leader) = self.routed_leader() {
                    for msg in sends {
                        self.send(CLIENT, leader, msg);
                    }
                }
            }
            Workload::Commit => {
                for group in 0..GROUPS {
                    let now = self.now;
                    let c = &self.group_clients[group];
                    let waiting = c
                        .in_flight
                        .is_some_and(|(_, sent)| now - sent < REQUEST_TIMEOUT_MS);
                    if waiting || !self.rng.chance(15) {
                        continue;
                    }
                    let id = self.next_request_id;
                    self.next_request_id += 1;
                    let c = &mut self.group_clients[group];
                    let offset = c.next_offset;
                    c.next_offset += 1;
                    c.in_flight = Some((id, now));
                    if let Some(leader) = self.routed_leader() {
                        self.send(CLIENT, leader, Msg::Commit { id, group, offset });
                    }
                }
            }
        }
    }

    fn on_client_message(&mut self, msg: Msg) {
        match msg {
            Msg::ProduceReply { id, result } if self.workload == Workload::Transactions => {
                if let Some(line) = self.txn.on_reply(id, result) {
                    self.trace(line);
                }
            }
            Msg::ProduceReply { id, result } => match result {
                Ok(offset) => {
                    self.trace(format!("client: {id} acked at {offset}"));
                    self.acked_writes.insert(id, offset);
                }
                Err(code) => {
                    if matches!(
                        code,
                        ResponseError::NotEnoughReplicas
                            | ResponseError::NotEnoughReplicasAfterAppend
                    ) {
                        self.outcome.not_enough_replicas += 1;
                    }
                    self.trace(format!("client: {id} failed {code:?}"))
                }
            },
            Msg::CommitReply {
                id,
                group,
                offset,
                result,
            } => {
                let c = &mut self.group_clients[group];
                if c.in_flight.is_some_and(|(i, _)| i == id) {
                    c.in_flight = None;
                }
                match result {
                    Ok(()) => {
                        self.trace(format!("client: group {group} commit of {offset} acked"));
                        self.outcome.acked += 1;
                        let acked = self.acked_commits.entry(group).or_insert(offset);
                        *acked = (*acked).max(offset);
                    }
                    Err(code) => self.trace(format!(
                        "client: group {group} commit of {offset} failed {code:?}"
                    )),
                }
            }
            other => unreachable!("client got {other:?}"),
        }
    }
}

fn report(seed: u64, error: &str, trace: &VecDeque<String>) -> String {
    let mut out = format!("seed={seed}: {error}\nlast events:\n");
    for line in trace {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "replay: FJORD_SIM_SEED={seed} cargo test -p fjord-broker --lib sim::"
    );
    out
}

/// Where the brokers' data directories go: tmpfs when the machine has one (the logs
/// fsync their checkpoints; on tmpfs that costs nothing), else the temp dir.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("fjord-sim-");
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder
        .tempdir()
        .expect("a temp dir for the simulated brokers")
}

/// Run one seed; `Err` carries the report (seed, error, trace tail).
fn run_seed(seed: u64, check: Invariant) -> Result<Outcome, String> {
    let dir = scratch_dir();
    let mut sim =
        Sim::new(seed, check, dir.path()).map_err(|e| report(seed, &e, &VecDeque::new()))?;
    sim.run().map_err(|e| report(seed, &e, &sim.trace))
}
