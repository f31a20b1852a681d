//! The partition as leader: the pure [`PartitionLeader`] driven under the role lock,
//! its actions carried out (high watermark, completed produce requests), and its ISR
//! proposals handed back for the controller.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use kafka_protocol::error::ResponseError;

use super::{FollowerFetchResult, Partition, Role};
use crate::log::ReadError;
use crate::replication::leader::{
    AlterPartitionRequest, FollowerFetch, FollowerFetchAnswer, LeaderAction, PartitionLeader,
};
use crate::replication::{BrokerEpoch, HighWatermark, PartitionRegistration};
use crate::server::timers::TimerKind;

impl Partition {
    /// Become (or stay) leader of `registration`'s leader epoch. A new epoch starts a
    /// fresh leader from the log; the same epoch updates the ISR and replicas. Returns
    /// ISR proposals to send.
    pub fn make_leader(
        &self,
        local: i32,
        config: crate::replication::leader::LeaderConfig,
        registration: PartitionRegistration,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        if let Role::Leader(leader) = &mut *role {
            if leader.leader_epoch() == registration.leader_epoch {
                leader.reconfigure(config);
                let actions = leader.on_partition_update(now_ms, registration);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                drop(role);
                return self.perform(actions);
            }
        }
        let previous = std::mem::replace(&mut *role, Role::Offline);
        let mut actions = self.step_down(previous);
        self.follower_starts.forget();
        self.leader_epoch
            .store(registration.leader_epoch.0, Ordering::Release);
        let leo = self.log.read().log_end_offset();
        let mut leader = PartitionLeader::new(
            self.topic_partition(),
            local,
            config,
            registration,
            leo,
            HighWatermark(self.high_watermark()),
            now_ms,
        );
        // With no other replica in the ISR, everything in the log is committed now.
        actions.extend(leader.on_appended(now_ms, leo, None));
        self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
        *role = Role::Leader(Box::new(leader));
        drop(role);
        self.perform(actions)
    }

    /// Lead alone, as the only replica (tests that drive a partition directly).
    #[cfg(test)]
    pub fn lead_alone(&self, local: i32) {
        let registration = PartitionRegistration {
            replicas: vec![local],
            isr: crate::replication::Isr::new(vec![local]),
            leader: local,
            leader_epoch: crate::replication::LeaderEpoch(self.leader_epoch()),
            partition_epoch: crate::replication::PartitionEpoch(0),
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        };
        let config = crate::replication::leader::LeaderConfig::default();
        self.make_leader(local, config, registration);
    }

    /// Carry out a leader's actions that stay in this partition (high watermark,
    /// completed produce requests); return the ISR proposals for the controller.
    pub(super) fn perform(&self, actions: Vec<LeaderAction>) -> Vec<AlterPartitionRequest> {
        let mut proposals = Vec::new();
        for action in actions {
            match action {
                LeaderAction::HighWatermarkAdvanced(hw) => {
                    self.high_watermark.send_if_modified(|cur| {
                        let advanced = hw.0 > *cur;
                        if advanced {
                            *cur = hw.0;
                        }
                        advanced
                    });
                }
                LeaderAction::CompleteProduce { id, error } => {
                    if let Some(tx) = self.waiters.lock().remove(&id.0) {
                        let _ = tx.send(error);
                    }
                }
                LeaderAction::AlterPartition(request) => proposals.push(request),
            }
        }
        proposals
    }

    /// Time passed: ISR shrinks and timed-out acks=all waiters (leader), or what the
    /// follower should fetch next.
    pub fn tick(&self) -> Vec<AlterPartitionRequest> {
        // Before the state is read: a deadline armed from here on is either seen below
        // or armed anew.
        self.timer.fired(TimerKind::Leader);
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) => {
                let actions = leader.on_tick(now_ms);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// The metadata changed what it says of `broker` (see
    /// [`PartitionLeader::on_broker_state`]); nothing when not leading.
    pub fn on_broker_state(
        &self,
        broker: i32,
        eligible_epoch: Option<BrokerEpoch>,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) => {
                let actions = leader.on_broker_state(now_ms, broker, eligible_epoch);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// The controller's answer to an ISR proposal of this partition's leader.
    pub fn on_alter_partition_response(
        &self,
        request: &AlterPartitionRequest,
        response: Result<PartitionRegistration, ResponseError>,
    ) -> Vec<AlterPartitionRequest> {
        let now_ms = self.clock.now_ms();
        let actions = match &mut *self.role.lock() {
            Role::Leader(leader) if leader.leader_epoch() == request.leader_epoch => {
                let actions = leader.on_alter_partition_response(now_ms, response);
                self.timer.arm(TimerKind::Leader, leader.next_deadline_ms());
                actions
            }
            _ => return vec![],
        };
        self.perform(actions)
    }

    /// A follower's fetch, at the leader: check its epoch, note its position, and
    /// hand out the records after `fetch_offset` (up to the log end, not the high
    /// watermark: followers copy uncommitted records too).
    pub fn follower_fetch(&self, fetch: &FollowerFetch, max_bytes: usize) -> FollowerFetchResult {
        let now_ms = self.clock.now_ms();
        let mut role = self.role.lock();
        let Role::Leader(leader) = &mut *role else {
            return FollowerFetchResult {
                answer: FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower),
                records: None,
                log_start_offset: -1,
                proposals: vec![],
            };
        };
        let log = self.log.read();
        let (answer, actions) = leader.on_follower_fetch(now_ms, fetch, &*log);
        // A proposal sent here is resent at its retry deadline.
        self.timer.arm(TimerKind::Leader, leader.isr_deadline_ms());
        let mut records = None;
        let mut answer = answer;
        if let FollowerFetchAnswer::Records { fetch_offset, .. } = answer {
            match log.read(fetch_offset, max_bytes, log.log_end_offset(), true) {
                Ok(info) => records = info.slice,
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    answer = FollowerFetchAnswer::Error(ResponseError::OffsetOutOfRange)
                }
                Err(e) => {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "reading for a follower failed");
                    answer = FollowerFetchAnswer::Error(ResponseError::KafkaStorageError)
                }
            }
        }
        let log_start_offset = log.log_start_offset();
        drop(log);
        drop(role);
        FollowerFetchResult {
            answer,
            records,
            log_start_offset,
            proposals: self.perform(actions),
        }
    }

    /// Followers' positions as seen by this leader: (broker, log end offset).
    pub fn follower_positions(&self) -> BTreeMap<i32, Option<i64>> {
        match &*self.role.lock() {
            Role::Leader(l) => l
                .registration()
                .replicas
                .iter()
                .filter_map(|&b| l.follower(b).map(|f| (b, f.log_end_offset)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}
