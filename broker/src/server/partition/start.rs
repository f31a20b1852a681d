//! A partition's log start offset moved on request: DeleteRecords at the leader, the
//! followers taking their leader's start from its fetch answers and reporting their
//! own, and the low watermark (the smallest start among the replicas in sync) that a
//! DeleteRecords request waits for, as Kafka's delayed DeleteRecords does.

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

/// Kafka's low watermark: the smallest log start among the leader and the followers in
/// the ISR. A follower that has not reported a start yet holds it at 0: it may still
/// serve everything.
pub fn low_watermark(
    leader_start: i64,
    leader: BrokerId,
    isr: &[BrokerId],
    reported: &BTreeMap<BrokerId, i64>,
) -> i64 {
    isr.iter()
        .filter(|&&b| b != leader)
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

    /// The low watermark while leading (see [`low_watermark`]).
    pub fn low_watermark(&self) -> Result<i64, ResponseError> {
        let role = self.role.lock();
        let Role::Leader(leader) = &*role else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        let leader_start = self.log.read().log_start_offset();
        let reported = self.follower_starts.reported.lock();
        Ok(low_watermark(
            leader_start,
            leader.registration().leader,
            leader.isr().members(),
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
    /// `replica::on_fetch_answer`). Kafka's followers do the same on every fetch.
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
    use super::*;

    #[test]
    fn the_low_watermark_is_the_smallest_start_in_the_isr() {
        let reported = BTreeMap::from([(2, 40), (3, 10), (4, 0)]);
        // Broker 4 is out of the ISR: it does not hold the watermark back.
        assert_eq!(low_watermark(50, 1, &[1, 2, 3], &reported), 10);
        assert_eq!(low_watermark(50, 1, &[1, 2], &reported), 40);
        assert_eq!(low_watermark(50, 1, &[1], &reported), 50);
        // A follower in the ISR that never reported may still serve from 0.
        assert_eq!(low_watermark(50, 1, &[1, 5], &reported), 0);
        // The leader's own entry, if any, is not used: its log says.
        let with_self = BTreeMap::from([(1, 0), (2, 60)]);
        assert_eq!(low_watermark(50, 1, &[1, 2], &with_self), 50);
    }
}
