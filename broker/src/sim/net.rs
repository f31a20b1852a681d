//! The simulated network and its faults: a seeded random source, the messages nodes
//! exchange, and a network that delays (and so reorders) and drops them and can cut a
//! broker off.

use kafka_protocol::error::ResponseError;

use crate::replication::cluster_state::ControllerRecord;
use crate::replication::controller::{Heartbeat, HeartbeatReply};
use crate::replication::leader::AlterPartitionRequest;
use crate::replication::BrokerEpoch;
use crate::replication::{BrokerId, PartitionRegistration};
use crate::server::replica_wire::proto;
use crate::storage::FileKind;

/// A broker id, or one of the two other nodes.
pub(super) type Node = i32;
pub(super) const CONTROLLER: Node = 0;
pub(super) const CLIENT: Node = 100;

/// SplitMix64: small, fast, and the same on every platform and crate version.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

#[derive(Debug, Clone)]
pub(super) enum Msg {
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
    /// A follower broker's fetch session call; `call` pairs it with its reply, as a
    /// gRPC call is paired with its answer.
    Fetch {
        call: u64,
        request: proto::SessionFetchRequest,
    },
    /// The leader's answer as the replica service sends it; `Err` is a failed call.
    FetchReply {
        call: u64,
        outcome: Result<proto::SessionFetchResponse, String>,
    },
    Produce {
        id: u64,
    },
    ProduceReply {
        id: u64,
        result: Result<i64, ResponseError>,
    },
    /// A transactional batch (one record, the id) of producer `producer_id`; answered
    /// with `ProduceReply`.
    TxnProduce {
        id: u64,
        producer_id: i64,
        epoch: i16,
        seq: i32,
    },
    /// The marker ending the producer's transaction, as WriteTxnMarkers asks the
    /// leader; answered with `ProduceReply` once the ISR holds it.
    TxnMarker {
        id: u64,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    /// OffsetCommit of `offset` for partition 0 of the client's topic, by group index.
    Commit {
        id: u64,
        group: usize,
        offset: i64,
    },
    CommitReply {
        id: u64,
        group: usize,
        offset: i64,
        result: Result<(), ResponseError>,
    },
}

pub(super) struct Envelope {
    deliver_at: i64,
    seq: u64,
    pub from: Node,
    pub to: Node,
    pub msg: Msg,
}

/// At most one fault at a time, on one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    Crashed(BrokerId),
    /// The broker's next write to a file of this kind lands only its first bytes and
    /// the process dies there (the storage seam's torn write).
    TornWrite(BrokerId, FileKind),
    /// Cut off from every other node.
    Isolated(BrokerId),
    /// Cut off from the controller only: still fetched from and fetching.
    CutFromController(BrokerId),
    /// SIGTERM: controlled shutdown, then the process exits (restarted on heal).
    ControlledShutdown(BrokerId),
}

pub(super) struct Network {
    in_flight: Vec<Envelope>,
    seq: u64,
    /// Percent of messages dropped.
    pub drop_percent: u64,
    pub fault: Fault,
}

impl Network {
    pub fn new(drop_percent: u64) -> Network {
        Network {
            in_flight: Vec::new(),
            seq: 0,
            drop_percent,
            fault: Fault::None,
        }
    }

    /// Can `from` reach `to` now? `up(b)` says whether broker b's process runs.
    pub fn reachable(&self, from: Node, to: Node, up: impl Fn(BrokerId) -> bool) -> bool {
        let node_up = |n: Node| n == CONTROLLER || n == CLIENT || up(n);
        if !node_up(from) || !node_up(to) {
            return false;
        }
        match self.fault {
            Fault::Isolated(b) => from != b && to != b,
            Fault::CutFromController(b) => {
                !((from == b && to == CONTROLLER) || (from == CONTROLLER && to == b))
            }
            Fault::None
            | Fault::Crashed(_)
            | Fault::TornWrite(..)
            | Fault::ControlledShutdown(_) => true,
        }
    }

    /// Send unless the link is down or the message is dropped; independent delays
    /// reorder messages.
    pub fn send(&mut self, rng: &mut Rng, now: i64, from: Node, to: Node, msg: Msg) {
        if rng.chance(self.drop_percent) {
            return;
        }
        let delay = rng.range(1, 40);
        self.seq += 1;
        self.in_flight.push(Envelope {
            deliver_at: now + delay,
            seq: self.seq,
            from,
            to,
            msg,
        });
    }

    /// The messages due by `now`, in delivery order.
    pub fn due(&mut self, now: i64) -> Vec<Envelope> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].deliver_at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|e| (e.deliver_at, e.seq));
        due
    }
}
