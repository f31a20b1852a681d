//! Deterministic simulation of a replicated partition: three brokers (each an in-memory
//! log plus the leader and follower state machines), one controller, a client producing
//! acks=all records with unique ids, and a network that delays, drops and reorders
//! messages and can cut a broker off. Brokers crash (their log stays, everything else
//! is lost) and restart. One seed fixes every choice, so a failing run replays exactly:
//! `FJORD_SIM_SEED=<n> cargo test -p fjord-broker --lib replication::sim`; a longer soak:
//! `FJORD_SIM_SEEDS=<count>`.
//!
//! One test per invariant, each over many seeds:
//! - no acknowledged acks=all write is lost (RF 3, min.insync.replicas 2, at most one
//!   broker crashed, cut off or shutting down at a time);
//! - the high watermark clients read from the current leader never goes back;
//! - at most one broker leads a partition in a given leader epoch;
//! - a follower's log up to its high watermark is a prefix of the leader's.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::{
    BrokerEpoch, ClusterState, Controller, ControllerConfig, ControllerRecord, Heartbeat,
    HeartbeatReply,
};
use super::follower::{FetchRequest, FollowerAction, FollowerConfig, PartitionFollower};
use super::leader::{
    AlterPartitionRequest, FollowerFetchAnswer, LeaderAction, LeaderConfig, PartitionLeader,
    ProduceId, ProduceWaiter,
};
use super::{
    BrokerId, EpochLog, HighWatermark, LeaderEpoch, MemLog, MemRecord, PartitionRegistration,
    TopicPartition,
};

const TP: TopicPartition = TopicPartition {
    topic_id: Uuid::from_u128(0xf70d),
    partition: 0,
};
const BROKERS: i32 = 3;
const CONTROLLER: Node = 0;
const CLIENT: Node = 100;
const STEP_MS: i64 = 10;
/// Faults and traffic run this long, then the network heals and the cluster settles.
const FAULTY_MS: i64 = 15_000;
const SETTLE_MS: i64 = 5_000;
const HEARTBEAT_MS: i64 = 300;
const REGISTER_RETRY_MS: i64 = 1_000;
const REQUEST_TIMEOUT_MS: i64 = 3_000;
const FETCH_MAX_RECORDS: usize = 8;
const TRACE_TAIL: usize = 60;

type Node = i32;

/// SplitMix64: small, fast, and the same on every platform and crate version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Register {
        nonce: u64,
    },
    Registered {
        nonce: u64,
        broker_epoch: BrokerEpoch,
    },
    Heartbeat {
        heartbeat: Heartbeat,
        metadata_offset: usize,
    },
    HeartbeatReply {
        reply: Result<HeartbeatReply, ResponseError>,
        from_offset: usize,
        records: Vec<ControllerRecord>,
    },
    AlterPartition {
        broker_epoch: BrokerEpoch,
        request: AlterPartitionRequest,
    },
    AlterPartitionReply {
        request: AlterPartitionRequest,
        result: Result<PartitionRegistration, ResponseError>,
    },
    Fetch(FetchRequest),
    FetchReply {
        request: FetchRequest,
        answer: FollowerFetchAnswer,
        records: Vec<MemRecord>,
    },
    Produce {
        id: u64,
    },
    ProduceReply {
        id: u64,
        result: Result<i64, ResponseError>,
    },
}

struct Envelope {
    deliver_at: i64,
    seq: u64,
    from: Node,
    to: Node,
    msg: Msg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Crashed(BrokerId),
    /// Cut off from every other node.
    Isolated(BrokerId),
    /// Cut off from the controller only: still fetched from and fetching.
    CutFromController(BrokerId),
    /// SIGTERM: controlled shutdown, then the process exits (restarted on heal).
    ControlledShutdown(BrokerId),
}

/// What a broker process holds; only `log` survives a crash.
struct Broker {
    id: BrokerId,
    alive: bool,
    log: MemLog,
    broker_epoch: Option<BrokerEpoch>,
    register_nonce: u64,
    shutting_down: bool,
    next_register_ms: i64,
    next_heartbeat_ms: i64,
    metadata: ClusterState,
    metadata_offset: usize,
    leader: Option<PartitionLeader>,
    follower: Option<PartitionFollower>,
    /// Produce id -> offset of the record, for the answer.
    produce_offsets: BTreeMap<u64, i64>,
}

impl Broker {
    fn new(id: BrokerId, log: MemLog) -> Broker {
        Broker {
            id,
            alive: true,
            log,
            broker_epoch: None,
            register_nonce: 0,
            shutting_down: false,
            next_register_ms: 0,
            next_heartbeat_ms: 0,
            metadata: ClusterState::default(),
            metadata_offset: 0,
            leader: None,
            follower: None,
            produce_offsets: BTreeMap::new(),
        }
    }

    fn high_watermark(&self) -> HighWatermark {
        match (&self.leader, &self.follower) {
            (Some(l), _) => l.high_watermark(),
            (None, Some(f)) => f.high_watermark(),
            (None, None) => HighWatermark(0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invariant {
    NoAckedWriteLost,
    HighWatermarkNeverGoesBack,
    OneLeaderPerEpoch,
    FollowerPrefixOfLeader,
}

pub(super) struct Outcome {
    pub acked: usize,
    /// Leader epochs led, truncations done: how much the run exercised.
    pub leader_epochs: usize,
    pub truncations: usize,
    pub controlled_shutdowns: usize,
}

struct Sim {
    rng: Rng,
    now: i64,
    seq: u64,
    network: Vec<Envelope>,
    /// Percent of messages dropped.
    drop_percent: u64,
    fault: Fault,
    fault_until: i64,
    next_fault_ms: i64,
    controller: Controller,
    controller_log: Vec<ControllerRecord>,
    brokers: Vec<Broker>,
    next_produce_id: u64,
    /// Acknowledged id -> offset.
    acked: BTreeMap<u64, i64>,
    highest_client_hw: i64,
    leaders_by_epoch: BTreeMap<LeaderEpoch, BrokerId>,
    trace: VecDeque<String>,
    truncations: usize,
    controlled_shutdowns: usize,
    check: Invariant,
}

impl Sim {
    fn new(seed: u64, check: Invariant) -> Sim {
        let mut controller = Controller::new(
            ControllerConfig {
                session_timeout_ms: 1_500,
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
                .create_topic("sim", TP.topic_id, 1, 3, BTreeMap::new(), seed as usize)
                .expect("three brokers hold three replicas"),
        );
        let brokers = (1..=BROKERS)
            .map(|b| {
                let mut broker = Broker::new(b, MemLog::default());
                broker.broker_epoch = controller.state().broker(b).map(|r| r.epoch);
                broker
            })
            .collect();
        let mut rng = Rng(seed);
        let drop_percent = rng.below(6);
        Sim {
            rng,
            now: 0,
            seq: 0,
            network: Vec::new(),
            drop_percent,
            fault: Fault::None,
            fault_until: 0,
            next_fault_ms: 1_000,
            controller,
            controller_log,
            brokers,
            next_produce_id: 1,
            acked: BTreeMap::new(),
            highest_client_hw: 0,
            leaders_by_epoch: BTreeMap::new(),
            trace: VecDeque::new(),
            truncations: 0,
            controlled_shutdowns: 0,
            check,
        }
    }

    fn trace(&mut self, event: String) {
        if self.trace.len() == TRACE_TAIL {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {event}", self.now));
    }

    fn broker(&mut self, id: BrokerId) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    fn reachable(&self, from: Node, to: Node) -> bool {
        let node_alive =
            |n: Node| n == CONTROLLER || n == CLIENT || self.brokers[(n - 1) as usize].alive;
        if !node_alive(from) || !node_alive(to) {
            return false;
        }
        match self.fault {
            Fault::Isolated(b) => from != b && to != b,
            Fault::CutFromController(b) => {
                !((from == b && to == CONTROLLER) || (from == CONTROLLER && to == b))
            }
            Fault::None | Fault::Crashed(_) | Fault::ControlledShutdown(_) => true,
        }
    }

    fn send(&mut self, from: Node, to: Node, msg: Msg) {
        if !self.reachable(from, to) || self.rng.chance(self.drop_percent) {
            return;
        }
        // Independent delays reorder messages.
        let delay = self.rng.range(1, 40);
        self.seq += 1;
        self.network.push(Envelope {
            deliver_at: self.now + delay,
            seq: self.seq,
            from,
            to,
            msg,
        });
    }

    fn run(&mut self) -> Result<Outcome, String> {
        while self.now < FAULTY_MS + SETTLE_MS {
            self.now += STEP_MS;
            let faulty = self.now < FAULTY_MS;
            if faulty {
                self.inject_faults();
            } else if self.fault != Fault::None {
                self.heal();
                self.drop_percent = 0;
            }
            self.deliver()?;
            let records = self.controller.tick(self.now);
            self.commit(records);
            for b in 1..=BROKERS {
                self.tick_broker(b)?;
            }
            if faulty && self.rng.chance(15) {
                self.produce();
            }
            self.check_invariants(false)?;
        }
        self.check_invariants(true)?;
        Ok(Outcome {
            acked: self.acked.len(),
            leader_epochs: self.leaders_by_epoch.len(),
            truncations: self.truncations,
            controlled_shutdowns: self.controlled_shutdowns,
        })
    }

    fn inject_faults(&mut self) {
        if self.fault != Fault::None && self.now >= self.fault_until {
            self.heal();
        }
        if self.fault == Fault::None && self.now >= self.next_fault_ms {
            let b = self.rng.range(1, BROKERS as i64) as BrokerId;
            self.fault = match self.rng.below(4) {
                0 => {
                    self.crash(b);
                    Fault::Crashed(b)
                }
                1 => Fault::Isolated(b),
                2 => {
                    self.broker(b).shutting_down = true;
                    Fault::ControlledShutdown(b)
                }
                _ => Fault::CutFromController(b),
            };
            self.fault_until = self.now + self.rng.range(500, 4_000);
            self.trace(format!("fault {:?} until {}", self.fault, self.fault_until));
        }
    }

    fn heal(&mut self) {
        self.trace(format!("heal {:?}", self.fault));
        if let Fault::Crashed(b) | Fault::ControlledShutdown(b) = self.fault {
            self.restart(b);
        }
        self.fault = Fault::None;
        self.next_fault_ms = self.now + self.rng.range(500, 3_000);
    }

    fn crash(&mut self, b: BrokerId) {
        let broker = self.broker(b);
        broker.alive = false;
        broker.leader = None;
        broker.follower = None;
    }

    fn restart(&mut self, b: BrokerId) {
        let now = self.now;
        let broker = self.broker(b);
        let log = std::mem::take(&mut broker.log);
        *broker = Broker::new(b, log);
        broker.next_register_ms = now;
    }

    fn deliver(&mut self) -> Result<(), String> {
        let now = self.now;
        let mut due: Vec<Envelope> = Vec::new();
        let mut i = 0;
        while i < self.network.len() {
            if self.network[i].deliver_at <= now {
                due.push(self.network.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|e| (e.deliver_at, e.seq));
        for e in due {
            // A link cut or a crash while in flight loses the message.
            if !self.reachable(e.from, e.to) {
                continue;
            }
            match e.to {
                CONTROLLER => self.on_controller_message(e.from, e.msg),
                CLIENT => self.on_client_message(e.msg),
                b => self.on_broker_message(b, e.from, e.msg)?,
            }
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
                self.send(
                    CONTROLLER,
                    from,
                    Msg::Registered {
                        nonce,
                        broker_epoch,
                    },
                );
            }
            Msg::Heartbeat {
                heartbeat,
                metadata_offset,
            } => {
                let (reply, records) = self.controller.heartbeat(now, heartbeat);
                self.commit(records);
                let from_offset = metadata_offset.min(self.controller_log.len());
                let records = self.controller_log[from_offset..].to_vec();
                self.send(
                    CONTROLLER,
                    from,
                    Msg::HeartbeatReply {
                        reply,
                        from_offset,
                        records,
                    },
                );
            }
            Msg::AlterPartition {
                broker_epoch,
                request,
            } => {
                let (result, records) =
                    self.controller
                        .alter_partition(from, broker_epoch, &request);
                self.commit(records);
                self.send(
                    CONTROLLER,
                    from,
                    Msg::AlterPartitionReply { request, result },
                );
            }
            other => unreachable!("controller got {other:?}"),
        }
    }

    fn on_client_message(&mut self, msg: Msg) {
        if let Msg::ProduceReply { id, result } = msg {
            match result {
                Ok(offset) => {
                    self.trace(format!("client: {id} acked at {offset}"));
                    self.acked.insert(id, offset);
                }
                Err(code) => self.trace(format!("client: {id} failed {code:?}")),
            }
        }
    }

    fn produce(&mut self) {
        let id = self.next_produce_id;
        self.next_produce_id += 1;
        // Clients route by the metadata they last fetched; the controller's is the
        // freshest there is.
        let leader = self
            .controller
            .state()
            .partition(&TP)
            .map(|p| p.leader)
            .unwrap_or(-1);
        if leader > 0 {
            self.send(CLIENT, leader, Msg::Produce { id });
        }
    }

    fn on_broker_message(&mut self, b: BrokerId, from: Node, msg: Msg) -> Result<(), String> {
        let now = self.now;
        match msg {
            Msg::Registered {
                nonce,
                broker_epoch,
            } => {
                let broker = self.broker(b);
                if broker.broker_epoch.is_none() && nonce == broker.register_nonce {
                    broker.broker_epoch = Some(broker_epoch);
                    broker.next_heartbeat_ms = now;
                }
            }
            Msg::HeartbeatReply {
                reply,
                from_offset,
                records,
            } => {
                let broker = self.broker(b);
                if matches!(
                    reply,
                    Err(ResponseError::StaleBrokerEpoch | ResponseError::BrokerIdNotRegistered)
                ) {
                    broker.broker_epoch = None;
                }
                if broker.shutting_down && reply.is_ok_and(|r| r.should_shut_down) {
                    // Leaderships moved away: the process exits.
                    self.trace(format!("broker {b}: controlled shutdown done"));
                    self.controlled_shutdowns += 1;
                    self.crash(b);
                    return Ok(());
                }
                if from_offset != broker.metadata_offset {
                    return Ok(());
                }
                for r in &records {
                    broker
                        .metadata
                        .apply(r)
                        .map_err(|e| format!("broker {b}: metadata record does not apply: {e}"))?;
                }
                broker.metadata_offset += records.len();
                self.reconcile(b)?;
            }
            Msg::AlterPartitionReply { request, result } => {
                let broker = self.broker(b);
                let mut actions = Vec::new();
                if let Some(l) = &mut broker.leader {
                    if l.leader_epoch() == request.leader_epoch {
                        actions = l.on_alter_partition_response(now, result);
                    }
                }
                self.leader_actions(b, actions);
            }
            Msg::Fetch(request) => {
                let broker = self.broker(b);
                let (answer, actions, records) = match &mut broker.leader {
                    Some(l) => {
                        let (answer, actions) =
                            l.on_follower_fetch(now, &request.fetch, &broker.log);
                        let records = match answer {
                            FollowerFetchAnswer::Records { fetch_offset, .. } => broker
                                .log
                                .records
                                .iter()
                                .skip(fetch_offset as usize)
                                .take(FETCH_MAX_RECORDS)
                                .copied()
                                .collect(),
                            _ => vec![],
                        };
                        (answer, actions, records)
                    }
                    None => (
                        FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower),
                        vec![],
                        vec![],
                    ),
                };
                self.leader_actions(b, actions);
                self.send(
                    b,
                    from,
                    Msg::FetchReply {
                        request,
                        answer,
                        records,
                    },
                );
            }
            Msg::FetchReply {
                request,
                answer,
                records,
            } => {
                let broker = self.broker(b);
                let Some(f) = &mut broker.follower else {
                    return Ok(());
                };
                let records_end = request.fetch.fetch_offset + records.len() as i64;
                let actions = f.on_fetch_response(now, &request, answer, records_end, &broker.log);
                for action in actions {
                    match action {
                        FollowerAction::TruncateTo(offset) => {
                            self.broker(b).log.truncate_to(offset);
                            self.truncations += 1;
                            self.trace(format!("broker {b}: truncate to {offset}"));
                        }
                        FollowerAction::AppendRecords => {
                            let broker = self.broker(b);
                            if broker.log.log_end_offset() != request.fetch.fetch_offset {
                                return Err(format!(
                                    "broker {b}: records for {} appended at log end {}",
                                    request.fetch.fetch_offset,
                                    broker.log.log_end_offset()
                                ));
                            }
                            for r in &records {
                                broker.log.append(*r);
                            }
                        }
                        FollowerAction::SetHighWatermark(_) | FollowerAction::Fetch(_) => {}
                    }
                }
            }
            Msg::Produce { id } => {
                let broker = self.broker(b);
                let Some(l) = &mut broker.leader else {
                    self.send(
                        b,
                        CLIENT,
                        Msg::ProduceReply {
                            id,
                            result: Err(ResponseError::NotLeaderOrFollower),
                        },
                    );
                    return Ok(());
                };
                if let Err(code) = l.check_produce(true) {
                    self.send(
                        b,
                        CLIENT,
                        Msg::ProduceReply {
                            id,
                            result: Err(code),
                        },
                    );
                    return Ok(());
                }
                let offset = broker.log.log_end_offset();
                broker.log.append(MemRecord {
                    epoch: l.leader_epoch().0,
                    id,
                });
                broker.produce_offsets.insert(id, offset);
                let waiter = ProduceWaiter {
                    id: ProduceId(id),
                    last_offset: offset,
                    deadline_ms: now + REQUEST_TIMEOUT_MS,
                };
                let actions = l.on_appended(now, offset + 1, Some(waiter));
                self.leader_actions(b, actions);
            }
            other => unreachable!("broker got {other:?}"),
        }
        Ok(())
    }

    fn leader_actions(&mut self, b: BrokerId, actions: Vec<LeaderAction>) {
        for action in actions {
            match action {
                LeaderAction::CompleteProduce { id, error } => {
                    let offset = self.broker(b).produce_offsets.remove(&id.0);
                    let result = match (error, offset) {
                        (None, Some(offset)) => Ok(offset),
                        (Some(code), _) => Err(code),
                        (None, None) => Err(ResponseError::UnknownServerError),
                    };
                    self.send(b, CLIENT, Msg::ProduceReply { id: id.0, result });
                }
                LeaderAction::AlterPartition(request) => {
                    self.trace(format!("broker {b}: propose ISR {}", request.new_isr));
                    if let Some(broker_epoch) = self.broker(b).broker_epoch {
                        self.send(
                            b,
                            CONTROLLER,
                            Msg::AlterPartition {
                                broker_epoch,
                                request,
                            },
                        );
                    }
                }
                LeaderAction::HighWatermarkAdvanced(_) => {}
            }
        }
    }

    /// Act on the broker's metadata: lead, follow, or neither.
    fn reconcile(&mut self, b: BrokerId) -> Result<(), String> {
        let now = self.now;
        let broker = self.broker(b);
        let Some(reg) = broker.metadata.partition(&TP).cloned() else {
            return Ok(());
        };
        let is_replica = reg.replicas.contains(&b) || reg.adding_replicas.contains(&b);
        let mut resigned = Vec::new();
        if reg.leader == b {
            match &mut broker.leader {
                Some(l) if l.leader_epoch() == reg.leader_epoch => {
                    let actions = l.on_partition_update(now, reg);
                    self.leader_actions(b, actions);
                    return Ok(());
                }
                _ => {
                    let hw = broker.high_watermark();
                    if let Some(old) = broker.leader.take() {
                        resigned = old.resign();
                    }
                    broker.follower = None;
                    let epoch = reg.leader_epoch;
                    broker.leader = Some(PartitionLeader::new(
                        TP,
                        b,
                        LeaderConfig {
                            replica_lag_time_max_ms: 1_000,
                            min_insync_replicas: 2,
                            alter_partition_retry_ms: 300,
                        },
                        reg,
                        broker.log.log_end_offset(),
                        hw,
                        now,
                    ));
                    let leo = broker.log.log_end_offset();
                    self.trace(format!("broker {b}: leader of epoch {} at {leo}", epoch.0));
                    if let Some(&other) = self.leaders_by_epoch.get(&epoch) {
                        if other != b && self.check == Invariant::OneLeaderPerEpoch {
                            return Err(format!(
                                "brokers {other} and {b} both led leader epoch {}",
                                epoch.0
                            ));
                        }
                    }
                    self.leaders_by_epoch.insert(epoch, b);
                }
            }
        } else if is_replica {
            let hw = broker.high_watermark();
            if let Some(old) = broker.leader.take() {
                resigned = old.resign();
            }
            match &mut broker.follower {
                Some(f) => f.on_leader_change(now, reg.leader, reg.leader_epoch),
                None => {
                    broker.follower = Some(PartitionFollower::new(
                        TP,
                        b,
                        FollowerConfig {
                            fetch_backoff_ms: 100,
                            fetch_timeout_ms: 500,
                        },
                        reg.leader,
                        reg.leader_epoch,
                        hw,
                        now,
                    ))
                }
            }
        } else {
            if let Some(old) = broker.leader.take() {
                resigned = old.resign();
            }
            broker.follower = None;
        }
        self.leader_actions(b, resigned);
        Ok(())
    }

    fn tick_broker(&mut self, b: BrokerId) -> Result<(), String> {
        let now = self.now;
        let broker = self.broker(b);
        if !broker.alive {
            return Ok(());
        }
        match broker.broker_epoch {
            None if now >= broker.next_register_ms => {
                broker.register_nonce += 1;
                broker.next_register_ms = now + REGISTER_RETRY_MS;
                let nonce = broker.register_nonce;
                self.send(b, CONTROLLER, Msg::Register { nonce });
            }
            Some(broker_epoch) if now >= broker.next_heartbeat_ms => {
                broker.next_heartbeat_ms = now + HEARTBEAT_MS;
                let msg = Msg::Heartbeat {
                    heartbeat: Heartbeat {
                        broker: b,
                        broker_epoch,
                        want_fence: false,
                        want_shut_down: broker.shutting_down,
                    },
                    metadata_offset: broker.metadata_offset,
                };
                self.send(b, CONTROLLER, msg);
            }
            _ => {}
        }
        let broker = self.broker(b);
        let leader_actions = broker
            .leader
            .as_mut()
            .map(|l| l.on_tick(now))
            .unwrap_or_default();
        let follower_actions = match &mut broker.follower {
            Some(f) => f.on_tick(now, &broker.log),
            None => vec![],
        };
        self.leader_actions(b, leader_actions);
        for action in follower_actions {
            if let FollowerAction::Fetch(request) = action {
                self.send(b, request.leader, Msg::Fetch(request));
            }
        }
        Ok(())
    }

    /// The broker the controller names leader, if it is up and acting as leader of
    /// that epoch.
    fn current_leader(&self) -> Option<&Broker> {
        let reg = self.controller.state().partition(&TP)?;
        if reg.leader <= 0 {
            return None;
        }
        let broker = &self.brokers[(reg.leader - 1) as usize];
        let acting = broker
            .leader
            .as_ref()
            .is_some_and(|l| l.leader_epoch() == reg.leader_epoch);
        (broker.alive && acting).then_some(broker)
    }

    fn check_invariants(&mut self, at_end: bool) -> Result<(), String> {
        let Some(leader) = self.current_leader() else {
            return if at_end {
                Err("no acting leader after the cluster settled".into())
            } else {
                Ok(())
            };
        };
        match self.check {
            Invariant::NoAckedWriteLost => {
                for (&id, &offset) in &self.acked {
                    let found = leader.log.records.get(offset as usize).map(|r| r.id);
                    if found != Some(id) {
                        return Err(format!(
                            "acknowledged record {id} at offset {offset} is lost: leader {} holds {found:?} there (log end {})",
                            leader.id,
                            leader.log.log_end_offset()
                        ));
                    }
                }
                if at_end {
                    let hw = leader.high_watermark().0;
                    if let Some((&id, &offset)) = self.acked.iter().find(|(_, &o)| o >= hw) {
                        return Err(format!(
                            "acknowledged record {id} at offset {offset} is above the settled high watermark {hw}"
                        ));
                    }
                }
            }
            Invariant::HighWatermarkNeverGoesBack => {
                if let Ok(hw) = leader
                    .leader
                    .as_ref()
                    .expect("acting")
                    .client_high_watermark()
                {
                    if hw.0 < self.highest_client_hw {
                        return Err(format!(
                            "leader {} shows clients high watermark {} after {}",
                            leader.id, hw.0, self.highest_client_hw
                        ));
                    }
                    self.highest_client_hw = hw.0;
                }
            }
            Invariant::OneLeaderPerEpoch => {} // checked as leaders are made
            Invariant::FollowerPrefixOfLeader => {
                for f in &self.brokers {
                    let Some(follower) = f.follower.as_ref().filter(|_| f.alive) else {
                        continue;
                    };
                    let hw = follower.high_watermark().0 as usize;
                    let prefix = leader.log.records.get(..hw);
                    if prefix != f.log.records.get(..hw) {
                        return Err(format!(
                            "follower {} (high watermark {hw}, log end {}) is not a prefix of leader {} (log end {})",
                            f.id,
                            f.log.log_end_offset(),
                            leader.id,
                            leader.log.log_end_offset()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn report(seed: u64, error: &str, trace: &VecDeque<String>) -> String {
    let mut out = format!("seed={seed}: {error}\nlast events:\n");
    for line in trace {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "replay: FJORD_SIM_SEED={seed} cargo test -p fjord-broker --lib replication::sim"
    );
    out
}

/// Run one seed; `Err` carries the report (seed, error, trace tail).
pub(super) fn run_seed(seed: u64, check: Invariant) -> Result<Outcome, String> {
    let mut sim = Sim::new(seed, check);
    sim.run().map_err(|e| report(seed, &e, &sim.trace))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: u64 = 200;

    /// Every seed (or only `FJORD_SIM_SEED`), failing with the first bad seed's report.
    fn check_seeds(invariant: Invariant) {
        let count = std::env::var("FJORD_SIM_SEEDS")
            .map(|s| s.parse().expect("FJORD_SIM_SEEDS is a number"))
            .unwrap_or(SEEDS);
        let seeds: Vec<u64> = match std::env::var("FJORD_SIM_SEED") {
            Ok(s) => vec![s.parse().expect("FJORD_SIM_SEED is a number")],
            Err(_) => (0..count).collect(),
        };
        let (mut acked, mut epochs, mut truncations, mut shutdowns) = (0, 0, 0, 0);
        for &seed in &seeds {
            match run_seed(seed, invariant) {
                Ok(outcome) => {
                    acked += outcome.acked;
                    epochs += outcome.leader_epochs;
                    truncations += outcome.truncations;
                    shutdowns += outcome.controlled_shutdowns;
                }
                Err(report) => panic!("{invariant:?} broken\n{report}"),
            }
        }
        println!(
            "{} seeds: {acked} acknowledged writes, {epochs} leader epochs, {truncations} truncations, {shutdowns} controlled shutdowns",
            seeds.len()
        );
        // A run that acknowledges nothing proves nothing.
        assert!(
            acked >= seeds.len() * 50,
            "only {acked} acknowledged writes over {} seeds",
            seeds.len()
        );
    }

    fn replay(seed: u64, invariant: Invariant) {
        if let Err(report) = run_seed(seed, invariant) {
            panic!("{invariant:?} broken\n{report}");
        }
    }

    // Regression seeds. Each failed when the named rule was taken out of the state
    // machines (checked by hand while building them), so it stays covered whatever
    // the seed range or the simulator's future changes to random choices.

    /// Without OFFSET_NOT_AVAILABLE below the epoch start, a new leader shows clients
    /// its own (older) high watermark: 9 after its predecessor showed 10.
    #[test]
    fn seed_0_a_new_leader_hides_its_high_watermark_below_its_epoch_start() {
        replay(0, Invariant::HighWatermarkNeverGoesBack);
    }

    /// With the high watermark over the committed ISR instead of committed ∪ pending,
    /// a write acknowledged while an expansion was in flight was not on the next leader.
    #[test]
    fn seed_25_the_high_watermark_waits_for_replicas_being_added() {
        replay(25, Invariant::NoAckedWriteLost);
        replay(25, Invariant::FollowerPrefixOfLeader);
        replay(36, Invariant::HighWatermarkNeverGoesBack);
    }

    /// Without the leader's last-fetched-epoch check, a follower holding another
    /// epoch's tail was counted in sync and an acknowledged record was overwritten.
    #[test]
    fn seed_2_a_diverged_follower_does_not_count_for_the_high_watermark() {
        replay(2, Invariant::NoAckedWriteLost);
        replay(2, Invariant::FollowerPrefixOfLeader);
    }

    /// Electing any live replica (not only ISR members) lost acknowledged records.
    #[test]
    fn seed_8_clean_election_only_picks_isr_members() {
        replay(8, Invariant::NoAckedWriteLost);
        replay(8, Invariant::HighWatermarkNeverGoesBack);
    }

    /// Emptying the ISR when its last member is fenced left the partition without a
    /// leader for good.
    #[test]
    fn seed_68_the_last_isr_member_is_kept() {
        replay(68, Invariant::OneLeaderPerEpoch);
    }

    #[test]
    fn no_acknowledged_write_is_lost() {
        check_seeds(Invariant::NoAckedWriteLost);
    }

    #[test]
    fn the_high_watermark_never_goes_back() {
        check_seeds(Invariant::HighWatermarkNeverGoesBack);
    }

    #[test]
    fn at_most_one_leader_per_leader_epoch() {
        check_seeds(Invariant::OneLeaderPerEpoch);
    }

    #[test]
    fn a_followers_committed_log_is_a_prefix_of_the_leaders() {
        check_seeds(Invariant::FollowerPrefixOfLeader);
    }
}
