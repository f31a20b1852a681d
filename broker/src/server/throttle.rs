//! The replication quotas at work (KIP-73; the rules are `replication::throttle`):
//! one token bucket per direction for this broker. The leader's session rounds
//! (`replica_session`) and the follower's fetcher (`fetcher`) ask a [`ThrottleGate`]
//! before moving a partition's records; on a running broker that is
//! `throttle_gate::BrokerGate`.

use parking_lot::Mutex;

use super::partition::Partition;
use crate::replication::throttle::{Direction, Quota};
use crate::replication::BrokerId;

/// What replication asks before moving a partition's records to or from `follower`.
pub trait ThrottleGate {
    /// Does a quota limit this partition's traffic to or from `follower` (None: this
    /// broker, the follower side) now: the topic lists the replica, the follower is
    /// out of the ISR, a rate is set?
    fn throttled(&self, partition: &Partition, follower: Option<BrokerId>) -> bool;
    /// While the quota is spent: when throttled traffic may pass again.
    fn held_until_ms(&self) -> Option<i64>;
    /// `bytes` of throttled traffic passed.
    fn passed(&self, bytes: u64);
}

/// No quota (the simulator's replication).
pub struct Unthrottled;

impl ThrottleGate for Unthrottled {
    fn throttled(&self, _: &Partition, _: Option<BrokerId>) -> bool {
        false
    }
    fn held_until_ms(&self) -> Option<i64> {
        None
    }
    fn passed(&self, _: u64) {}
}

pub(super) struct DirectionQuota {
    pub(super) quota: Quota,
    /// Up to when spent time was already counted in the metric.
    pub(super) counted_until_ms: i64,
}

/// This broker's two replication quotas.
pub struct ReplicationQuotas {
    leader: Mutex<DirectionQuota>,
    follower: Mutex<DirectionQuota>,
}

impl Default for ReplicationQuotas {
    fn default() -> Self {
        let new = || {
            Mutex::new(DirectionQuota {
                quota: Quota::new(),
                counted_until_ms: i64::MIN,
            })
        };
        ReplicationQuotas {
            leader: new(),
            follower: new(),
        }
    }
}

impl ReplicationQuotas {
    pub(super) fn of(&self, direction: Direction) -> &Mutex<DirectionQuota> {
        match direction {
            Direction::Leader => &self.leader,
            Direction::Follower => &self.follower,
        }
    }
}
