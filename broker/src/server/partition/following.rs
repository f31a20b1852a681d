//! The partition as follower: the pure [`PartitionFollower`] driven under the role
//! lock, and the leader's answers applied to the log as it decides.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{records_end_offset, Partition, Role};
use crate::replication::follower::{FetchRequest, FollowerAction, PartitionFollower};
use crate::replication::leader::FollowerFetchAnswer;
use crate::replication::{HighWatermark, PartitionRegistration};

impl Partition {
    /// Follow `registration`'s leader. Returns `Some(token)` when a fetch loop must be
    /// started for this partition (it was not following before), `None` when the
    /// running loop carries on with the new leader.
    pub fn make_follower(
        &self,
        local: i32,
        config: crate::replication::follower::FollowerConfig,
        registration: &PartitionRegistration,
    ) -> Option<CancellationToken> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        self.leader_epoch
            .store(registration.leader_epoch.0, Ordering::Release);
        if let Role::Follower { state, .. } = &mut *role {
            if registration.leader_epoch > state.leader_epoch() {
                self.role_version.send_modify(|v| *v += 1);
            }
            state.on_leader_change(now_ms, registration.leader, registration.leader_epoch);
            return None;
        }
        let previous = std::mem::replace(&mut *role, Role::Offline);
        let actions = self.step_down(previous);
        let stop = CancellationToken::new();
        *role = Role::Follower {
            state: PartitionFollower::new(
                self.topic_partition(),
                local,
                config,
                registration.leader,
                registration.leader_epoch,
                HighWatermark(self.high_watermark()),
                now_ms,
            ),
            stop: stop.clone(),
        };
        drop(role);
        self.perform(actions);
        Some(stop)
    }

    /// The token that ends this partition's follower role, while it is a follower.
    pub fn follower_stop(&self) -> Option<CancellationToken> {
        match &*self.role.lock() {
            Role::Follower { stop, .. } => Some(stop.clone()),
            _ => None,
        }
    }

    /// The follower's next fetch, if it is time for one.
    pub fn next_fetch(&self) -> Option<FetchRequest> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Follower { state, .. } = &mut *role else {
            return None;
        };
        let log = self.log.read();
        state
            .on_tick(now_ms, &*log)
            .into_iter()
            .find_map(|a| match a {
                FollowerAction::Fetch(r) => Some(r),
                _ => None,
            })
    }

    /// The leader's answer to this follower's fetch `request`: truncate, append and
    /// take the high watermark as the follower state machine decides. A follower
    /// below the leader's log start (retention moved it) restarts from there.
    pub fn on_fetch_response(
        &self,
        request: &FetchRequest,
        answer: FollowerFetchAnswer,
        records: Bytes,
    ) -> Result<(), String> {
        let mut role = self.role.lock();
        let Role::Follower { state, .. } = &mut *role else {
            return Ok(());
        };
        let now_ms = self.clock.now_ms();
        let mut log = self.log.write();
        let records_end = records_end_offset(&records).unwrap_or(request.fetch.fetch_offset);
        let actions = state.on_fetch_response(now_ms, request, answer, records_end, &*log);
        for action in actions {
            match action {
                FollowerAction::TruncateTo(offset) => {
                    tracing::info!(topic = %self.topic, partition = self.index, offset, "truncating a diverged log");
                    log.truncate_to(offset)
                        .map_err(|e| format!("truncating to {offset}: {e}"))?;
                    self.log_end.send_replace(log.log_end_offset());
                }
                FollowerAction::AppendRecords => {
                    log.append_as_follower(records.clone())
                        .map_err(|e| format!("appending replicated records: {e}"))?;
                    self.timer.log_appended(now_ms);
                    self.log_end.send_replace(log.log_end_offset());
                }
                FollowerAction::SetHighWatermark(hw) => {
                    log.on_high_watermark(hw.0);
                    self.high_watermark.send_replace(hw.0);
                }
                FollowerAction::Fetch(_) => {}
            }
        }
        Ok(())
    }

    /// Follower: our log starts after the leader's log end or before its log start;
    /// start over from `offset` with an empty log (Kafka's behaviour for a follower
    /// out of range of its leader).
    pub fn reset_to(&self, offset: i64) -> Result<(), String> {
        let mut log = self.log.write();
        log.truncate_fully_and_start_at(offset)
            .map_err(|e| format!("resetting log to {offset}: {e}"))?;
        self.log_end.send_replace(log.log_end_offset());
        Ok(())
    }
}
