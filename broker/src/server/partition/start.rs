//! A partition's log start offset moved on request: DeleteRecords at the leader, the
//! followers taking their leader's start from its fetch answers and reporting their
//! own, and the low watermark (the smallest start among the replicas on live brokers)
//! that a DeleteRecords request waits for, as Kafka's delayed DeleteRecords does.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Partition, Role};
use crate::log::StartOffsetError;
use crate::replication::BrokerId;

/// The log start offsets followers last reported to this leader, and a watch bumped
/// on every change (DeleteRecords requests wait on it).
pub struct FollowerStarts {
    reported: Mutex<BTreeMap<BrokerId, i64>>,
    changed: watch::Sender<u64>,
}

impl Default for FollowerStarts {
    fn default() -> Self {
        FollowerStarts {
            reported: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl FollowerStarts {
    /// A new leadership: followers report again in their new sessions.
    pub(super) fn forget(&self) {
        self.reported.lock().clear();
    }
}

/// Kafka's low watermark: the smallest log start among the leader and the followers on
/// live brokers (in the ISR or not: any of them may lead after an unclean election or
/// catch up and join it). A follower that has not reported a start yet holds it at 0:
/// it may still serve everything.
pub fn low_watermark(
    leader_start: i64,
    leader: BrokerId,
    replicas: &[BrokerId],
    live: impl Fn(BrokerId) -> bool,
    reported: &BTreeMap<BrokerId, i64>,
) -> i64 {
    replicas
        .iter()
        .filter(|&&b| b != leader && live(b))
        .map(|b| reported.get(b).copied().unwrap_or(0))
        .fold(leader_start, i64::min)
}

/// DeleteRecords' offset -1: up to the high watermark.
pub const HIGH_WATERMARK: i64 = -1;

impl Partition {
    /// DeleteRecords at the leader: move the log start to `offset` (or the high
    /// watermark for -1), never past the high watermark (OFFSET_OUT_OF_RANGE), only
    /// on a topic whose cleanup.policy deletes (POLICY_VIOLATION, as Kafka). Returns
    /// the offset the low watermark must reach.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, ResponseError> {
        let role = self.role.lock();
        let Role::Leader(leader) = &*role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        let high_watermark = leader.client_high_watermark()?.0;
        let target = if offset == HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        let mut log = self.log.write();
        if !log.config().cleanup_policy.delete {
            return Err(ResponseError::PolicyViolation);
        }
        match log.advance_log_start(target, high_watermark) {
            Ok(_) => {}
            Err(StartOffsetError::OutOfRange { .. }) => {
                return Err(ResponseError::OffsetOutOfRange)
            }
            Err(StartOffsetError::Io(e)) => {
                drop(log);
                drop(role);
                return Err(self.storage_error("moving the log start", &e));
            }
        }
        drop(log);
        drop(role);
        // Follower sessions waiting here look again and send the new start.
        self.log_end.send_modify(|_| {});
        self.follower_starts.changed.send_modify(|v| *v += 1);
        Ok(target)
    }

    /// The low watermark while leading, counting the followers on `live` brokers (see
    /// [`low_watermark`]).
    pub fn low_watermark(&self, live: &[BrokerId]) -> Result<i64, ResponseError> {
        let role = self.role.lock();
        let Role::Leader(leader) = &*role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        let leader_start = self.log.read().log_start_offset();
        let reported = self.follower_starts.reported.lock();
        let registration = leader.registration();
        Ok(low_watermark(
            leader_start,
            registration.leader,
            &registration.replicas,
            |b| live.contains(&b),
            &reported,
        ))
    }

    /// A receiver that sees every change that may move the low watermark.
    pub fn watch_follower_starts(&self) -> watch::Receiver<u64> {
        self.follower_starts.changed.subscribe()
    }

    /// Leader: `replica` says its log starts at `offset`.
    pub fn on_follower_log_start(&self, replica: BrokerId, offset: i64) {
        let previous = self.follower_starts.reported.lock().insert(replica, offset);
        if previous != Some(offset) {
            self.follower_starts.changed.send_modify(|v| *v += 1);
        }
    }

    /// Follower: the leader's log starts at `leader_start`; ours follows it, up to our
    /// log end (a follower below the leader's start starts over there instead, see
    /// `replica_wire::on_fetch_answer`). Kafka's followers do the same on every fetch.
    pub fn follow_log_start(&self, leader_start: i64) -> Result<(), String> {
        if !matches!(*self.role.lock(), Role::Follower { .. }) {
            return Ok(());
        }
        let mut log = self.log.write();
        let target = leader_start.min(log.log_end_offset());
        if target <= log.log_start_offset() {
            return Ok(());
        }
        let end = log.log_end_offset();
        log.advance_log_start(target, end)
            .map_err(|e| format!("moving the log start to {target}: {e}"))?;
        drop(log);
        self.log_end.send_modify(|_| {});
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use uuid::Uuid;

    use super::*;
    use crate::log::batch::testing::TestBatch;
    use crate::log::{CleanupPolicy, LogConfig};
    use crate::replication::PartitionRegistration;
    use crate::server::partition::Acks;
    use crate::server::replica_wire::{on_fetch_answer, proto};

    /// Broker 1 leading alone a partition of 10 records, one batch each.
    fn leader_with_ten(dir: &Path, config: LogConfig) -> Partition {
        let clock = crate::clock::ManualClock::new(0);
        let p = Partition::open(dir, "t", Uuid::new_v4(), 0, 0, config, clock).unwrap();
        p.lead_alone(1);
        for i in 0..10 {
            p.append_produce(TestBatch::new(&["v"], i).encode().into(), Acks::Leader)
                .unwrap();
        }
        assert_eq!(p.client_high_watermark(), Ok(10));
        p
    }

    fn start(p: &Partition) -> i64 {
        p.with_log(|l| l.log_start_offset())
    }

    #[test]
    fn delete_records_follows_kafkas_rules_at_the_leader() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_ten(dir.path(), LogConfig::default());
        assert_eq!(p.delete_records_before(4), Ok(4));
        assert_eq!(start(&p), 4);
        // Alone in the ISR, the low watermark is its own start.
        assert_eq!(p.low_watermark(&[1, 2, 3]), Ok(4));
        // Below the start: nothing moves, the answer is the current low watermark.
        assert_eq!(p.delete_records_before(2), Ok(2));
        assert_eq!(start(&p), 4);
        // Past the high watermark, or a negative offset other than -1: refused.
        assert_eq!(
            p.delete_records_before(11),
            Err(ResponseError::OffsetOutOfRange)
        );
        assert_eq!(
            p.delete_records_before(-2),
            Err(ResponseError::OffsetOutOfRange)
        );
        // -1 is the high watermark.
        assert_eq!(p.delete_records_before(HIGH_WATERMARK), Ok(10));
        assert_eq!(start(&p), 10);
        // Not the leader: NOT_LEADER_OR_FOLLOWER, nothing read.
        p.make_offline();
        assert_eq!(
            p.delete_records_before(10),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            p.low_watermark(&[1, 2, 3]),
            Err(ResponseError::NotLeaderOrFollower)
        );
    }

    #[test]
    fn a_compacted_topic_refuses_delete_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_ten(dir.path(), LogConfig::default());
        // Compacted once written (its keyless records would be refused by then).
        p.with_log_mut(|l| {
            l.set_config(LogConfig {
                cleanup_policy: CleanupPolicy::COMPACT,
                ..l.config().clone()
            })
        });
        assert_eq!(
            p.delete_records_before(4),
            Err(ResponseError::PolicyViolation)
        );
        assert_eq!(start(&p), 0);
    }

    #[test]
    fn the_low_watermark_waits_for_the_followers_reports() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_ten(dir.path(), LogConfig::default());
        let registration = PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 1, 1);
        p.make_leader(1, Default::default(), registration);
        let mut changes = p.watch_follower_starts();
        // The leader's own start moves at once; the followers have not said.
        p.delete_records_before(6).unwrap();
        assert_eq!(p.low_watermark(&[1, 2, 3]), Ok(0));
        p.on_follower_log_start(2, 6);
        assert_eq!(p.low_watermark(&[1, 2, 3]), Ok(0));
        p.on_follower_log_start(3, 6);
        assert_eq!(p.low_watermark(&[1, 2, 3]), Ok(6));
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        // The same report again is no change.
        p.on_follower_log_start(3, 6);
        assert!(!changes.has_changed().unwrap());
    }

    #[test]
    fn a_follower_takes_its_leaders_start_from_the_fetch_answer() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_with_ten(dir.path(), LogConfig::default());
        let registration = PartitionRegistration::of(&[1, 2], &[1, 2], 2, 1, 1);
        assert!(p
            .make_follower(1, Default::default(), &registration)
            .is_some());
        let request = p.next_fetch().expect("a new follower fetches");
        let answer = proto::FetchResponse {
            high_watermark: 10,
            log_start_offset: 7,
            ..Default::default()
        };
        on_fetch_answer(&p, &request, Ok(answer)).unwrap();
        assert_eq!(start(&p), 7);
        // Never past its own log end, never back.
        p.follow_log_start(50).unwrap();
        assert_eq!(start(&p), 10);
        p.follow_log_start(3).unwrap();
        assert_eq!(start(&p), 10);
    }

    #[test]
    fn the_low_watermark_is_the_smallest_start_on_live_brokers() {
        let reported = BTreeMap::from([(2, 40), (3, 10), (4, 0)]);
        let all = |_| true;
        assert_eq!(low_watermark(50, 1, &[1, 2, 3], all, &reported), 10);
        // Broker 4 is not live: it does not hold the watermark back.
        assert_eq!(low_watermark(50, 1, &[1, 2, 4], |b| b != 4, &reported), 40);
        assert_eq!(low_watermark(50, 1, &[1], all, &reported), 50);
        // A live follower that never reported may still serve from 0.
        assert_eq!(low_watermark(50, 1, &[1, 5], all, &reported), 0);
        // The leader's own entry, if any, is not used: its log says.
        let with_self = BTreeMap::from([(1, 0), (2, 60)]);
        assert_eq!(low_watermark(50, 1, &[1, 2], all, &with_self), 50);
    }
}
