//! A partition follower's fetch loop decisions.
//!
//! A follower fetches from its leader's log end with the epoch of its last batch
//! (Fetch v12, KIP-320 `last_fetched_epoch`); the leader checks that epoch against its
//! own epoch cache and either sends records or names the point where the follower's log
//! diverged (KIP-101/279), where the follower truncates before fetching again. On a
//! leader change it simply fetches from its log end under the new epoch: divergence is
//! found by that first fetch. One fetch is in flight at a time; answers to older
//! requests (reordered, or from a previous epoch) are dropped.

use super::leader::{FollowerFetch, FollowerFetchAnswer};
use super::{BrokerId, EpochLog, HighWatermark, LeaderEpoch, TopicPartition, NO_LEADER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerConfig {
    /// `replica.fetch.backoff.ms`: wait after an error before fetching again.
    pub fetch_backoff_ms: i64,
    /// A fetch unanswered this long is given up and sent again
    /// (`replica.socket.timeout.ms`).
    pub fetch_timeout_ms: i64,
}

impl Default for FollowerConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        FollowerConfig {
            fetch_backoff_ms: 1_000,
            fetch_timeout_ms: 30_000,
        }
    }
}

/// A fetch to send to `leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub leader: BrokerId,
    pub fetch: FollowerFetch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerAction {
    /// Send this fetch; answer with [`PartitionFollower::on_fetch_response`].
    Fetch(FetchRequest),
    /// Append the records of the response (they start at our log end offset).
    AppendRecords,
    /// Drop everything at and after `offset` (`Log::truncate_to`), before any append.
    TruncateTo(i64),
    /// Our high watermark is now this (checkpoint it; consumers of a follower, if any,
    /// read below it).
    SetHighWatermark(HighWatermark),
}

/// One partition's follower. Built when the broker becomes a follower; fed metadata
/// with [`PartitionFollower::on_leader_change`].
#[derive(Debug, Clone)]
pub struct PartitionFollower {
    partition: TopicPartition,
    local: BrokerId,
    config: FollowerConfig,
    leader: BrokerId,
    leader_epoch: LeaderEpoch,
    high_watermark: HighWatermark,
    in_flight: Option<(FetchRequest, i64)>,
    next_fetch_ms: i64,
}

impl PartitionFollower {
    pub fn new(
        partition: TopicPartition,
        local: BrokerId,
        config: FollowerConfig,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        high_watermark: HighWatermark,
        now_ms: i64,
    ) -> PartitionFollower {
        PartitionFollower {
            partition,
            local,
            config,
            leader,
            leader_epoch,
            high_watermark,
            in_flight: None,
            next_fetch_ms: now_ms,
        }
    }

    pub fn partition(&self) -> TopicPartition {
        self.partition
    }

    pub fn leader(&self) -> BrokerId {
        self.leader
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> HighWatermark {
        self.high_watermark
    }

    /// Metadata named a leader. A newer epoch restarts the loop from our log end (any
    /// in-flight fetch belongs to the old epoch and its answer will be dropped); an older
    /// one is stale metadata and ignored.
    pub fn on_leader_change(&mut self, now_ms: i64, leader: BrokerId, leader_epoch: LeaderEpoch) {
        if leader_epoch <= self.leader_epoch {
            return;
        }
        self.leader = leader;
        self.leader_epoch = leader_epoch;
        self.in_flight = None;
        self.next_fetch_ms = now_ms;
    }

    /// Time to fetch? At most one fetch in flight; a timed-out one is replaced.
    pub fn on_tick(&mut self, now_ms: i64, log: &impl EpochLog) -> Vec<FollowerAction> {
        if self.leader == NO_LEADER || self.leader == self.local || now_ms < self.next_fetch_ms {
            return vec![];
        }
        if let Some((_, sent_ms)) = self.in_flight {
            if now_ms - sent_ms < self.config.fetch_timeout_ms {
                return vec![];
            }
        }
        let request = FetchRequest {
            leader: self.leader,
            fetch: FollowerFetch {
                replica: self.local,
                current_leader_epoch: self.leader_epoch,
                fetch_offset: log.log_end_offset(),
                last_fetched_epoch: log.latest_epoch(),
                // The runtime sends its broker epoch with the fetch; the leader's
                // runtime sets what its metadata says of that epoch.
                broker_epoch: None,
                isr_eligible: false,
            },
        };
        self.in_flight = Some((request, now_ms));
        vec![FollowerAction::Fetch(request)]
    }

    /// The answer to `request`. `records_end_offset` is the offset after the last
    /// record the response carries (the fetch offset when it carries none). `log` is
    /// our log before any of the returned actions are applied.
    pub fn on_fetch_response(
        &mut self,
        now_ms: i64,
        request: &FetchRequest,
        answer: FollowerFetchAnswer,
        records_end_offset: i64,
        log: &impl EpochLog,
    ) -> Vec<FollowerAction> {
        match self.in_flight {
            Some((sent, _)) if sent == *request => self.in_flight = None,
            // Reordered, duplicated or from a previous epoch: our log may have moved on.
            _ => return vec![],
        }
        if request.fetch.fetch_offset != log.log_end_offset() {
            return vec![];
        }
        let mut actions = Vec::new();
        match answer {
            FollowerFetchAnswer::Records { high_watermark, .. } => {
                let mut log_end = request.fetch.fetch_offset;
                if records_end_offset > log_end {
                    actions.push(FollowerAction::AppendRecords);
                    log_end = records_end_offset;
                }
                // Our high watermark: the leader's, but never past what we hold.
                let hw = HighWatermark(high_watermark.0.min(log_end));
                if hw > self.high_watermark {
                    self.high_watermark = hw;
                    actions.push(FollowerAction::SetHighWatermark(hw));
                }
                self.next_fetch_ms = now_ms;
            }
            FollowerFetchAnswer::Diverging {
                epoch, end_offset, ..
            } => {
                let target = self.truncation_offset(epoch, end_offset, log);
                if target < log.log_end_offset() {
                    actions.push(FollowerAction::TruncateTo(target));
                }
                if self.high_watermark.0 > target {
                    // Only after an unclean election can committed records diverge.
                    self.high_watermark = HighWatermark(target);
                    actions.push(FollowerAction::SetHighWatermark(self.high_watermark));
                }
                self.next_fetch_ms = now_ms;
            }
            FollowerFetchAnswer::Error(_) => {
                // FENCED_LEADER_EPOCH: our metadata is behind; UNKNOWN_LEADER_EPOCH and
                // NOT_LEADER_OR_FOLLOWER: the leader's is. Either way wait for metadata
                // to move and try again after the backoff.
                self.next_fetch_ms = now_ms + self.config.fetch_backoff_ms;
            }
        }
        actions
    }

    /// Where to truncate on a diverging-epoch answer (Kafka's follower rule):
    /// - we know the leader's epoch: truncate to where it ends in the shorter log;
    /// - we only know an older epoch: truncate to where *that* ends (or the leader's
    ///   end, if smaller); the next fetch carries that older epoch and narrows further;
    /// - we know no epoch that old: only the high watermark is known to match.
    fn truncation_offset(&self, leader_epoch: i32, leader_end: i64, log: &impl EpochLog) -> i64 {
        let log_end = log.log_end_offset();
        if leader_epoch < 0 {
            return leader_end.min(log_end);
        }
        match log.end_offset_for_epoch(leader_epoch) {
            Some((_, our_end)) => our_end.min(leader_end).min(log_end),
            None => self.high_watermark.0.min(log_end),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use kafka_protocol::error::ResponseError;

    use super::*;
    use crate::replication::{MemLog, MemRecord};

    const TP: TopicPartition = TopicPartition {
        topic_id: Uuid::nil(),
        partition: 0,
    };

    fn follower() -> PartitionFollower {
        PartitionFollower::new(
            TP,
            2,
            FollowerConfig::default(),
            1,
            LeaderEpoch(5),
            HighWatermark(0),
            0,
        )
    }

    fn request(fetch_offset: i64, last_fetched_epoch: i32) -> FetchRequest {
        FetchRequest {
            leader: 1,
            fetch: FollowerFetch {
                replica: 2,
                current_leader_epoch: LeaderEpoch(5),
                fetch_offset,
                last_fetched_epoch,
                broker_epoch: None,
                isr_eligible: false,
            },
        }
    }

    fn records(hw: i64) -> FollowerFetchAnswer {
        FollowerFetchAnswer::Records {
            fetch_offset: 0,
            high_watermark: HighWatermark(hw),
        }
    }

    fn diverging(epoch: i32, end_offset: i64) -> FollowerFetchAnswer {
        FollowerFetchAnswer::Diverging {
            epoch,
            end_offset,
            high_watermark: HighWatermark(0),
        }
    }

    #[test]
    fn fetches_from_the_log_end_with_the_last_epoch_one_at_a_time() {
        let mut f = follower();
        let log = MemLog::with_epochs(&[2, 2, 4]);
        assert_eq!(
            f.on_tick(0, &log),
            vec![FollowerAction::Fetch(request(3, 4))]
        );
        assert_eq!(f.on_tick(1, &log), vec![], "one in flight");
        // Unanswered: sent again after the timeout.
        assert_eq!(
            f.on_tick(30_000, &log),
            vec![FollowerAction::Fetch(request(3, 4))]
        );
    }

    #[test]
    fn records_are_appended_and_the_high_watermark_capped_at_our_log_end() {
        let mut f = follower();
        let log = MemLog::with_epochs(&[5]);
        f.on_tick(0, &log);
        let actions = f.on_fetch_response(1, &request(1, 5), records(9), 4, &log);
        assert_eq!(
            actions,
            vec![
                FollowerAction::AppendRecords,
                FollowerAction::SetHighWatermark(HighWatermark(4))
            ]
        );
        assert_eq!(f.high_watermark(), HighWatermark(4));
    }

    #[test]
    fn answers_that_are_not_to_the_fetch_in_flight_are_dropped() {
        let mut f = follower();
        let mut log = MemLog::with_epochs(&[5]);
        f.on_tick(0, &log);
        // An answer to an older request (reordered by the network).
        assert_eq!(
            f.on_fetch_response(1, &request(0, -1), records(1), 1, &log),
            vec![]
        );
        // The log moved since (cannot happen with one fetch in flight, but the runtime
        // might have appended through another path): drop rather than double-append.
        log.append(MemRecord { epoch: 5, id: 9 });
        assert_eq!(
            f.on_fetch_response(1, &request(1, 5), records(1), 2, &log),
            vec![]
        );
    }

    #[test]
    fn diverging_in_a_shared_epoch_truncates_to_the_shorter_end() {
        let mut f = follower();
        // Ours: epoch 3 at 0..4, epoch 4 at 4..6. The leader's epoch 3 ends at 2.
        let log = MemLog::with_epochs(&[3, 3, 3, 3, 4, 4]);
        f.on_tick(0, &log);
        let actions = f.on_fetch_response(1, &request(6, 4), diverging(3, 2), 6, &log);
        assert_eq!(actions, vec![FollowerAction::TruncateTo(2)]);
        // And the next fetch goes at once.
        let mut log = log;
        log.truncate_to(2);
        assert_eq!(
            f.on_tick(1, &log),
            vec![FollowerAction::Fetch(request(2, 3))]
        );
    }

    #[test]
    fn diverging_in_an_epoch_we_never_saw_truncates_to_our_older_epoch_end() {
        let mut f = follower();
        // Ours: epoch 2 at 0..2, epoch 6 at 2..5. The leader names epoch 4 ending at 4:
        // we have no epoch 4; our largest below it (2) ends at 2.
        let log = MemLog::with_epochs(&[2, 2, 6, 6, 6]);
        f.on_tick(0, &log);
        let actions = f.on_fetch_response(1, &request(5, 6), diverging(4, 4), 5, &log);
        assert_eq!(actions, vec![FollowerAction::TruncateTo(2)]);
    }

    #[test]
    fn diverging_before_our_first_epoch_truncates_everything_of_ours() {
        let mut f = follower();
        let log = MemLog::with_epochs(&[5, 5, 5]);
        f.on_tick(0, &log);
        f.on_fetch_response(1, &request(3, 5), records(1), 3, &log);
        assert_eq!(f.high_watermark(), HighWatermark(1));
        // The leader's largest epoch not above 5 is 2, which we never had: our epoch 5
        // records are not the leader's from offset 0 on.
        f.on_tick(2, &log);
        let actions = f.on_fetch_response(3, &request(3, 5), diverging(2, 7), 3, &log);
        assert_eq!(
            actions,
            vec![
                FollowerAction::TruncateTo(0),
                FollowerAction::SetHighWatermark(HighWatermark(0))
            ]
        );
        // A leader that knows no epoch at all: nothing beyond its log end survives.
        f.on_tick(4, &log);
        let actions = f.on_fetch_response(5, &request(3, 5), diverging(-1, 1), 3, &log);
        assert_eq!(actions, vec![FollowerAction::TruncateTo(1)]);
    }

    #[test]
    fn a_new_leader_epoch_restarts_from_the_log_end_and_stale_ones_are_ignored() {
        let mut f = follower();
        let log = MemLog::with_epochs(&[5, 5]);
        f.on_tick(0, &log);
        f.on_leader_change(1, 3, LeaderEpoch(6));
        let expected = FetchRequest {
            leader: 3,
            fetch: FollowerFetch {
                current_leader_epoch: LeaderEpoch(6),
                ..request(2, 5).fetch
            },
        };
        assert_eq!(f.on_tick(1, &log), vec![FollowerAction::Fetch(expected)]);
        // The answer to the epoch-5 fetch is dropped.
        assert_eq!(
            f.on_fetch_response(2, &request(2, 5), records(2), 2, &log),
            vec![]
        );
        f.on_leader_change(3, 1, LeaderEpoch(5));
        assert_eq!((f.leader(), f.leader_epoch()), (3, LeaderEpoch(6)));
        // No leader: no fetching.
        f.on_leader_change(4, NO_LEADER, LeaderEpoch(7));
        assert_eq!(f.on_tick(100_000, &log), vec![]);
    }

    #[test]
    fn a_fenced_or_unknown_epoch_backs_off() {
        let mut f = follower();
        let log = MemLog::default();
        f.on_tick(0, &log);
        let fenced = FollowerFetchAnswer::Error(ResponseError::FencedLeaderEpoch);
        assert_eq!(
            f.on_fetch_response(1, &request(0, -1), fenced, 0, &log),
            vec![]
        );
        assert_eq!(f.on_tick(999, &log), vec![]);
        assert_eq!(
            f.on_tick(1_001, &log),
            vec![FollowerAction::Fetch(request(0, -1))]
        );
    }
}
