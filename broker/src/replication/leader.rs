//! A partition leader's decisions: follower fetch state, the high watermark, ISR
//! change proposals and acks=all waiters.
//!
//! The ISR this leader works with has two parts (KIP-497): the *committed* ISR, the one
//! the controller last returned, and at most one *pending* proposal in flight. The
//! high watermark is computed over the *maximal* ISR, committed ∪ pending: a replica
//! being added counts at once (so a write acknowledged meanwhile is on it, whatever
//! the controller answers), a replica being removed still counts until the controller
//! confirms (so the controller's ISR is never smaller than what acknowledged writes
//! relied on). `min.insync.replicas` is checked against the committed ISR.
//!
//! The runtime feeds: appends it made to the log, follower fetches, controller answers
//! and metadata, and clock ticks; it performs the [`LeaderAction`]s.

use kafka_protocol::error::ResponseError;

use super::BrokerEpoch;
use super::{
    BrokerId, EpochLog, HighWatermark, Isr, LeaderEpoch, PartitionEpoch, PartitionRegistration,
    TopicPartition,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up with the leader's
    /// log end offset for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `min.insync.replicas`: acks=all needs an ISR at least this large.
    pub min_insync_replicas: usize,
    /// How long an unanswered AlterPartition waits before it is sent again, and how
    /// long after a refusal before the next proposal.
    pub alter_partition_retry_ms: i64,
}

impl Default for LeaderConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        LeaderConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            alter_partition_retry_ms: 1_000,
        }
    }
}

/// The runtime's handle on a produce request waiting for acks=all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProduceId(pub u64);

/// An acks=all produce whose batch was appended at offsets up to `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceWaiter {
    pub id: ProduceId,
    pub last_offset: i64,
    /// `now + request.timeout.ms` (or the request's own timeout).
    pub deadline_ms: i64,
}

/// A follower's Fetch for this partition (replica id >= 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica: BrokerId,
    /// The leader epoch the follower believes current (KIP-320 `current_leader_epoch`).
    pub current_leader_epoch: LeaderEpoch,
    /// The follower's log end offset.
    pub fetch_offset: i64,
    /// The epoch of the last batch in the follower's log, -1 when empty.
    pub last_fetched_epoch: i32,
    /// KIP-903: the broker epoch of the follower's process, when it has one. A fetch
    /// without it never adds the follower to the ISR, and one carrying an epoch older
    /// than the follower's last is from a process that is gone.
    pub broker_epoch: Option<BrokerEpoch>,
    /// KIP-841: the leader's metadata shows the follower's broker registered under
    /// `broker_epoch`, unfenced and not in controlled shutdown. A fetch without it still
    /// counts for the high watermark when the follower is in the ISR, but never adds the
    /// follower to it: a broker on its way out, proposed back, would hold acks=all
    /// writes until the controller refused it.
    pub isr_eligible: bool,
}

/// The answer to a follower fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerFetchAnswer {
    /// Send whole batches from `fetch_offset`, with the leader's high watermark.
    Records {
        fetch_offset: i64,
        high_watermark: HighWatermark,
    },
    /// The follower's log diverged from ours (Fetch v12 `diverging_epoch`): the largest
    /// epoch we know not above its last fetched epoch, and where that epoch ends here.
    /// No records; the follower truncates and fetches again.
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: HighWatermark,
    },
    /// A partition-level error code for the response.
    Error(ResponseError),
}

/// AlterPartition (KIP-497): ask the controller to make `new_isr` the ISR. The runtime
/// adds this broker's id and broker epoch. Serializable: it travels to the controller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    pub partition: TopicPartition,
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the proposal was built on; the controller refuses any other.
    pub partition_epoch: PartitionEpoch,
    pub new_isr: Isr,
    /// KIP-903: the broker epoch each replica being added fetched with. The controller
    /// refuses the change if one is not that broker's registered epoch: the fetch came
    /// from a process that has since restarted, with a log it may no longer hold.
    #[serde(default)]
    pub added_epochs: Vec<(BrokerId, BrokerEpoch)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderAction {
    /// Answer an acks=all produce: `None` is success.
    CompleteProduce {
        id: ProduceId,
        error: Option<ResponseError>,
    },
    /// Send to the controller; answer with [`PartitionLeader::on_alter_partition_response`].
    AlterPartition(AlterPartitionRequest),
    /// The high watermark moved: wake long-polling fetches, checkpoint it, and let the
    /// log use it (retention never deletes at or above it).
    HighWatermarkAdvanced(HighWatermark),
}

/// What the leader knows about one follower, from its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowerState {
    /// `None` until the follower fetches in this leader epoch.
    pub log_end_offset: Option<i64>,
    pub last_fetch_ms: Option<i64>,
    /// The leader's log end offset when that fetch arrived.
    last_fetch_leader_log_end_offset: i64,
    /// The last time the follower had everything the leader had.
    pub last_caught_up_ms: Option<i64>,
    /// The broker epoch of its latest fetch that carried one.
    pub broker_epoch: Option<BrokerEpoch>,
    /// What that latest fetch said of the broker's registration (KIP-841).
    isr_eligible: bool,
    /// Proposals to add it the controller refused as ineligible (a fenced or shutting
    /// down broker, KIP-841) since that broker epoch fetched.
    refusals: u32,
    /// Not proposed again before this time: a broker the controller fenced stays
    /// fenced until it heartbeats again, so asking each tick only loads the controller.
    retry_after_ms: i64,
}

/// The longest a refused follower waits before it is proposed again, unless a fetch
/// from a new broker process comes first.
const MAX_REFUSED_BACKOFF_MS: i64 = 30_000;

/// How long a proposal the controller refused as built on a stale view (another
/// leader or leader epoch, an older partition epoch) waits before it is sent again.
/// The metadata that supersedes it normally comes first and settles it; the resend
/// only covers a refusal from a controller that had not caught up yet. Resending at
/// the usual pace would have every stale leader of a broker that was cut off ask the
/// controller again each second, for hundreds of partitions.
const STALE_PROPOSAL_RESEND_MS: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingIsr {
    request: AlterPartitionRequest,
    /// When the proposal is sent again if nothing settled it.
    resend_at_ms: i64,
}

/// One partition's leader for one leader epoch. A new epoch (or losing leadership)
/// means a new value: [`PartitionLeader::resign`] the old one.
#[derive(Debug, Clone)]
pub struct PartitionLeader {
    partition: TopicPartition,
    local: BrokerId,
    config: LeaderConfig,
    /// The controller's last committed state of the partition.
    committed: PartitionRegistration,
    pending: Option<PendingIsr>,
    /// No proposal before this time (after a refusal).
    propose_after_ms: i64,
    /// Our log end offset when we became leader: the first offset of this epoch.
    epoch_start_offset: i64,
    log_end_offset: i64,
    high_watermark: HighWatermark,
    followers: std::collections::BTreeMap<BrokerId, FollowerState>,
    /// In append order, hence in offset order.
    waiters: Vec<ProduceWaiter>,
}

impl PartitionLeader {
    /// Become leader of `registration` (whose leader must be `local`) with our log at
    /// `log_end_offset` and the high watermark we last knew as a follower.
    pub fn new(
        partition: TopicPartition,
        local: BrokerId,
        config: LeaderConfig,
        registration: PartitionRegistration,
        log_end_offset: i64,
        high_watermark: HighWatermark,
        now_ms: i64,
    ) -> PartitionLeader {
        assert_eq!(
            registration.leader, local,
            "partition {partition}: broker {local} made leader of a partition led by {}",
            registration.leader
        );
        let followers = registration
            .replicas
            .iter()
            .chain(&registration.adding_replicas)
            .filter(|&&b| b != local)
            .map(|&b| {
                // Kafka gives every ISR member a full lag window from the election.
                let caught_up = registration.isr.contains(b).then_some(now_ms);
                (
                    b,
                    FollowerState {
                        last_caught_up_ms: caught_up,
                        ..FollowerState::default()
                    },
                )
            })
            .collect();
        PartitionLeader {
            partition,
            local,
            config,
            committed: registration,
            pending: None,
            propose_after_ms: now_ms,
            epoch_start_offset: log_end_offset,
            log_end_offset,
            high_watermark: HighWatermark(high_watermark.0.min(log_end_offset)),
            followers,
            waiters: Vec::new(),
        }
    }

    pub fn partition(&self) -> TopicPartition {
        self.partition
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.committed.leader_epoch
    }

    pub fn registration(&self) -> &PartitionRegistration {
        &self.committed
    }

    /// The ISR the controller committed.
    pub fn isr(&self) -> &Isr {
        &self.committed.isr
    }

    /// Committed ∪ pending: the replicas the high watermark waits for.
    pub fn maximal_isr(&self) -> Isr {
        match &self.pending {
            Some(p) => self.committed.isr.union(&p.request.new_isr),
            None => self.committed.isr.clone(),
        }
    }

    pub fn pending_isr(&self) -> Option<&Isr> {
        self.pending.as_ref().map(|p| &p.request.new_isr)
    }

    pub fn high_watermark(&self) -> HighWatermark {
        self.high_watermark
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    pub fn follower(&self, broker: BrokerId) -> Option<&FollowerState> {
        self.followers.get(&broker)
    }

    /// The high watermark consumers may be given. A new leader's high watermark can be
    /// behind its predecessor's until it reaches the start of its own epoch (everything
    /// the old leader could have committed is below that offset), so until then clients
    /// get OFFSET_NOT_AVAILABLE (retriable) instead of a high watermark that went back.
    pub fn client_high_watermark(&self) -> Result<HighWatermark, ResponseError> {
        if self.high_watermark.0 < self.epoch_start_offset {
            Err(ResponseError::OffsetNotAvailable)
        } else {
            Ok(self.high_watermark)
        }
    }

    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    /// The topic's settings changed (`min.insync.replicas`): requests from now on, and
    /// waiting acks=all requests when they complete, are judged by the new ones.
    pub fn reconfigure(&mut self, config: LeaderConfig) {
        self.config = config;
    }

    /// Before appending a produce: acks=all is refused with NOT_ENOUGH_REPLICAS when the
    /// committed ISR is smaller than `min.insync.replicas` (nothing is written).
    pub fn check_produce(&self, acks_all: bool) -> Result<(), ResponseError> {
        if acks_all && self.committed.isr.len() < self.effective_min_isr() {
            return Err(ResponseError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// `min.insync.replicas`, but never more than the partition has replicas, as Kafka
    /// counts it (`Partition.effectiveMinIsr`): a topic of replication factor 1 on a
    /// cluster whose default is 2 takes acks=all writes instead of refusing them all.
    pub fn effective_min_isr(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.followers.len() + 1)
    }

    /// The runtime appended to the log, which now ends at `log_end_offset`; `waiter` is
    /// the acks=all request to answer once the high watermark passes its batch.
    pub fn on_appended(
        &mut self,
        now_ms: i64,
        log_end_offset: i64,
        waiter: Option<ProduceWaiter>,
    ) -> Vec<LeaderAction> {
        debug_assert!(
            log_end_offset >= self.log_end_offset,
            "a leader never truncates"
        );
        if log_end_offset > self.log_end_offset {
            // A follower that held our whole log until now was caught up until now: with
            // fetch sessions an idle partition's follower sends no fetch while it has
            // nothing to ask, so its last fetch may be long past.
            let before = Some(self.log_end_offset);
            for f in self.followers.values_mut() {
                if f.log_end_offset == before {
                    f.last_caught_up_ms = Some(now_ms);
                }
            }
            self.log_end_offset = log_end_offset;
        }
        if let Some(w) = waiter {
            self.waiters.push(w);
        }
        let mut actions = Vec::new();
        self.maybe_advance_high_watermark(&mut actions);
        actions
    }

    /// A follower fetch. `log` is this leader's log (its epoch cache answers divergence).
    pub fn on_follower_fetch(
        &mut self,
        now_ms: i64,
        fetch: &FollowerFetch,
        log: &impl EpochLog,
    ) -> (FollowerFetchAnswer, Vec<LeaderAction>) {
        let mut actions = Vec::new();
        self.log_end_offset = self.log_end_offset.max(log.log_end_offset());
        let Some(known) = self.followers.get(&fetch.replica) else {
            return (
                FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower),
                actions,
            );
        };
        // KIP-903: a fetch from an earlier process of the follower (a long poll that
        // outlived it) says nothing about the log the follower holds now.
        if let (Some(sent), Some(latest)) = (fetch.broker_epoch, known.broker_epoch) {
            if sent < latest {
                return (
                    FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower),
                    actions,
                );
            }
        }
        // KIP-320: the follower's view of the leader epoch must be ours.
        if fetch.current_leader_epoch < self.leader_epoch() {
            return (
                FollowerFetchAnswer::Error(ResponseError::FencedLeaderEpoch),
                actions,
            );
        }
        if fetch.current_leader_epoch > self.leader_epoch() {
            return (
                FollowerFetchAnswer::Error(ResponseError::UnknownLeaderEpoch),
                actions,
            );
        }
        // Divergence (KIP-101/279, checked on fetch since Fetch v12): the follower's last
        // epoch must end, in our log, at or after its fetch offset. Otherwise its tail
        // was written by a leader whose records we do not hold, and its position must
        // not count for the high watermark. A follower fetching at our log start holds
        // nothing we could compare (retention deleted it here, and its own start
        // follows ours): asking about an epoch we may no longer know would answer
        // "diverging" at the offset it already fetches from, again and again.
        if fetch.last_fetched_epoch >= 0 && fetch.fetch_offset > log.log_start_offset() {
            match log.end_offset_for_epoch(fetch.last_fetched_epoch) {
                Some((epoch, end_offset))
                    if epoch == fetch.last_fetched_epoch && end_offset >= fetch.fetch_offset => {}
                Some((epoch, end_offset)) => {
                    return (
                        FollowerFetchAnswer::Diverging {
                            epoch,
                            end_offset,
                            high_watermark: self.high_watermark,
                        },
                        actions,
                    )
                }
                None => {
                    // The follower's epoch is after every epoch of our log: we have
                    // not appended in our own epoch yet. Kafka's leader puts its epoch
                    // in the cache when elected, so the follower's epoch ends where
                    // ours starts, after our latest epoch; with an empty log nothing
                    // of the follower's can match.
                    return (
                        FollowerFetchAnswer::Diverging {
                            epoch: log.latest_epoch(),
                            end_offset: self.epoch_start_offset,
                            high_watermark: self.high_watermark,
                        },
                        actions,
                    );
                }
            }
        }
        if fetch.fetch_offset > self.log_end_offset {
            return (
                FollowerFetchAnswer::Error(ResponseError::OffsetOutOfRange),
                actions,
            );
        }

        // Kafka's caught-up rule: caught up now if it has our whole log; caught up as of
        // its previous fetch if it now has what we had then.
        let leader_end = self.log_end_offset;
        let state = self.followers.get_mut(&fetch.replica).expect("checked");
        if fetch.broker_epoch.is_some() {
            if fetch.broker_epoch != state.broker_epoch {
                // A new broker process: what was refused of the old one does not hold.
                state.refusals = 0;
                state.retry_after_ms = 0;
            }
            state.broker_epoch = fetch.broker_epoch;
            state.isr_eligible = fetch.isr_eligible;
        }
        if fetch.fetch_offset >= leader_end {
            state.last_caught_up_ms = Some(now_ms);
        } else if fetch.fetch_offset >= state.last_fetch_leader_log_end_offset {
            if let Some(prev) = state.last_fetch_ms {
                state.last_caught_up_ms = Some(state.last_caught_up_ms.unwrap_or(prev).max(prev));
            }
        }
        state.log_end_offset = Some(fetch.fetch_offset);
        state.last_fetch_ms = Some(now_ms);
        state.last_fetch_leader_log_end_offset = leader_end;

        self.maybe_advance_high_watermark(&mut actions);
        self.maybe_expand_isr(now_ms, fetch.replica, &mut actions);
        (
            FollowerFetchAnswer::Records {
                fetch_offset: fetch.fetch_offset,
                high_watermark: self.high_watermark,
            },
            actions,
        )
    }

    /// The metadata changed what it says of `broker`: eligible for an ISR under
    /// `eligible_epoch` (KIP-841), or not at all (`None`). A follower of that broker
    /// process that had everything when it last fetched is proposed now, without
    /// waiting for a fetch that new records would bring.
    pub fn on_broker_state(
        &mut self,
        now_ms: i64,
        broker: BrokerId,
        eligible_epoch: Option<BrokerEpoch>,
    ) -> Vec<LeaderAction> {
        let mut actions = Vec::new();
        if let Some(f) = self.followers.get_mut(&broker) {
            f.isr_eligible = f.broker_epoch.is_some() && f.broker_epoch == eligible_epoch;
            self.maybe_expand_isr(now_ms, broker, &mut actions);
        }
        actions
    }

    /// Time passed: shrink the ISR of followers that fell behind, resend an unanswered
    /// proposal, time out acks=all waiters.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<LeaderAction> {
        let mut actions = Vec::new();
        if let Some(p) = &mut self.pending {
            if now_ms >= p.resend_at_ms {
                // Lost or slow: the same proposal again. If the first was applied, the
                // controller refuses this one (stale partition epoch) and the metadata
                // update that follows settles it.
                p.resend_at_ms = now_ms.saturating_add(self.config.alter_partition_retry_ms);
                actions.push(LeaderAction::AlterPartition(p.request.clone()));
            }
        } else {
            self.maybe_shrink_isr(now_ms, &mut actions);
            // A caught-up follower outside the ISR (its last proposal refused, say while
            // it was fenced) is proposed again here: with fetch sessions, the follower
            // of an idle partition sends no fetch that would do it.
            let outside: Vec<BrokerId> = self
                .followers
                .keys()
                .copied()
                .filter(|&b| !self.committed.isr.contains(b))
                .collect();
            for b in outside {
                self.maybe_expand_isr(now_ms, b, &mut actions);
            }
        }
        let (expired, kept): (Vec<_>, Vec<_>) = self
            .waiters
            .drain(..)
            .partition(|w| w.deadline_ms <= now_ms);
        self.waiters = kept;
        actions.extend(expired.into_iter().map(|w| LeaderAction::CompleteProduce {
            id: w.id,
            error: Some(ResponseError::RequestTimedOut),
        }));
        actions
    }

    /// The controller's answer to our AlterPartition.
    pub fn on_alter_partition_response(
        &mut self,
        now_ms: i64,
        response: Result<PartitionRegistration, ResponseError>,
    ) -> Vec<LeaderAction> {
        match response {
            Ok(registration) => self.on_partition_update(now_ms, registration),
            // Checked after the epochs, so the controller read the proposal against
            // the state it was built on and did not apply it: forget it; the metadata
            // update or a later fetch brings a fresh one, not before the backoff so a
            // refused replica does not loop.
            Err(code @ (ResponseError::IneligibleReplica | ResponseError::InvalidRequest)) => {
                if let (Some(p), ResponseError::IneligibleReplica) = (&self.pending, code) {
                    // The followers it would have added wait longer each time, until
                    // their broker fetches from a new process.
                    let retry = self.config.alter_partition_retry_ms.max(1);
                    for (b, _) in &p.request.added_epochs {
                        if let Some(f) = self.followers.get_mut(b) {
                            f.refusals = f.refusals.saturating_add(1);
                            let backoff = retry
                                .saturating_mul(1 << (f.refusals - 1).min(16))
                                .min(MAX_REFUSED_BACKOFF_MS.max(retry));
                            f.retry_after_ms = now_ms.saturating_add(backoff);
                        }
                    }
                }
                self.pending = None;
                self.propose_after_ms = now_ms + self.config.alter_partition_retry_ms;
                let mut actions = Vec::new();
                self.maybe_advance_high_watermark(&mut actions);
                actions
            }
            // Anything else (stale epochs, a timeout, leadership moving) may answer a
            // resend of a proposal the controller already applied, or precede its
            // application: it stays pending, in the maximal ISR, until the metadata
            // tells what the controller holds (Kafka resets to the committed state only
            // on INELIGIBLE_REPLICA and OPERATION_NOT_ATTEMPTED). A stale view is not
            // resent at the usual pace: the metadata is on its way.
            Err(
                ResponseError::FencedLeaderEpoch
                | ResponseError::NotLeaderOrFollower
                | ResponseError::InvalidUpdateVersion
                | ResponseError::UnknownTopicOrPartition,
            ) => {
                if let Some(p) = &mut self.pending {
                    p.resend_at_ms = now_ms.saturating_add(STALE_PROPOSAL_RESEND_MS);
                }
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The controller committed a new state of the partition with us still leader in
    /// the same leader epoch (otherwise the runtime resigns this leader). Stale states
    /// (partition epoch not newer) are ignored.
    pub fn on_partition_update(
        &mut self,
        now_ms: i64,
        registration: PartitionRegistration,
    ) -> Vec<LeaderAction> {
        let mut actions = Vec::new();
        if registration.leader != self.local
            || registration.leader_epoch != self.committed.leader_epoch
        {
            // Another epoch: an older one is stale; a newer one means this leader is
            // done, which the runtime learns from metadata and acts on with `resign`.
            return actions;
        }
        if registration.partition_epoch <= self.committed.partition_epoch {
            return actions;
        }
        if let Some(p) = &self.pending {
            // Any newer committed state answers (or overrides) the proposal.
            if registration.partition_epoch > p.request.partition_epoch {
                self.pending = None;
            }
        }
        for &b in registration
            .replicas
            .iter()
            .chain(&registration.adding_replicas)
        {
            if b != self.local {
                self.followers.entry(b).or_insert(FollowerState {
                    last_caught_up_ms: registration.isr.contains(b).then_some(now_ms),
                    ..FollowerState::default()
                });
            }
        }
        let is_replica = |b: &BrokerId| {
            registration.replicas.contains(b) || registration.adding_replicas.contains(b)
        };
        self.followers.retain(|b, _| is_replica(b));
        self.committed = registration;
        self.maybe_advance_high_watermark(&mut actions);
        actions
    }

    /// Leadership is gone (new leader epoch or another leader): waiting producers get
    /// NOT_LEADER_OR_FOLLOWER and retry against the new leader.
    pub fn resign(self) -> Vec<LeaderAction> {
        self.waiters
            .into_iter()
            .map(|w| LeaderAction::CompleteProduce {
                id: w.id,
                error: Some(ResponseError::NotLeaderOrFollower),
            })
            .collect()
    }

    /// High watermark = the smallest log end offset over the maximal ISR; it never goes
    /// back. A follower whose position is not known yet in this epoch holds it.
    fn maybe_advance_high_watermark(&mut self, actions: &mut Vec<LeaderAction>) {
        let mut candidate = self.log_end_offset;
        for b in self.maximal_isr().members() {
            if *b == self.local {
                continue;
            }
            match self.followers.get(b).and_then(|f| f.log_end_offset) {
                Some(leo) => candidate = candidate.min(leo),
                None => return self.complete_waiters(actions),
            }
        }
        if candidate > self.high_watermark.0 {
            self.high_watermark = HighWatermark(candidate);
            actions.push(LeaderAction::HighWatermarkAdvanced(self.high_watermark));
        }
        self.complete_waiters(actions);
    }

    /// Kafka's DelayedProduce: done once the high watermark passes the batch; an error
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the committed ISR shrank below
    /// `min.insync.replicas` meanwhile (the records are written but not as safely as
    /// asked).
    fn complete_waiters(&mut self, actions: &mut Vec<LeaderAction>) {
        let hw = self.high_watermark.0;
        let done = self
            .waiters
            .iter()
            .take_while(|w| w.last_offset < hw)
            .count();
        let error = (self.committed.isr.len() < self.effective_min_isr())
            .then_some(ResponseError::NotEnoughReplicasAfterAppend);
        actions.extend(
            self.waiters
                .drain(..done)
                .map(|w| LeaderAction::CompleteProduce { id: w.id, error }),
        );
    }

    /// Kafka's rule: a replica joins the ISR once it reaches the high watermark and holds
    /// everything from before this epoch (its log end >= the epoch start offset).
    fn maybe_expand_isr(
        &mut self,
        now_ms: i64,
        follower: BrokerId,
        actions: &mut Vec<LeaderAction>,
    ) {
        if self.pending.is_some() || now_ms < self.propose_after_ms {
            return;
        }
        if self.committed.isr.contains(follower) {
            return;
        }
        let Some(f) = self.followers.get(&follower).copied() else {
            return;
        };
        if now_ms < f.retry_after_ms {
            return;
        }
        if let (true, Some(broker_epoch)) = (self.may_join_isr(&f), f.broker_epoch) {
            let new_isr = self.committed.isr.with(follower);
            self.propose(now_ms, new_isr, vec![(follower, broker_epoch)], actions);
        }
    }

    /// A follower whose log reaches the high watermark and this epoch's start, from a
    /// known broker process the metadata shows eligible, may join the ISR.
    fn may_join_isr(&self, f: &FollowerState) -> bool {
        f.broker_epoch.is_some()
            && f.isr_eligible
            && f.log_end_offset
                .is_some_and(|leo| leo >= self.high_watermark.0 && leo >= self.epoch_start_offset)
    }

    /// ISR members that have not caught up within `replica.lag.time.max.ms` leave it.
    fn maybe_shrink_isr(&mut self, now_ms: i64, actions: &mut Vec<LeaderAction>) {
        if now_ms < self.propose_after_ms {
            return;
        }
        let lag_max = self.config.replica_lag_time_max_ms;
        let out_of_sync: Vec<BrokerId> = self
            .committed
            .isr
            .members()
            .iter()
            .copied()
            .filter(|&b| b != self.local)
            .filter(|b| match self.followers.get(b) {
                Some(f) => {
                    !self.holds_whole_log(f)
                        && now_ms - f.last_caught_up_ms.unwrap_or(i64::MIN / 2) > lag_max
                }
                // An ISR member that is no replica (cannot happen in a valid state).
                None => true,
            })
            .collect();
        if out_of_sync.is_empty() {
            return;
        }
        let new_isr = out_of_sync
            .iter()
            .fold(self.committed.isr.clone(), |isr, &b| isr.without(b));
        self.propose(now_ms, new_isr, Vec::new(), actions);
    }

    /// Kafka's `isCaughtUp`: a follower whose log ends where ours does is in sync
    /// however long ago it fetched (an idle partition's followers stay in the ISR; a
    /// follower that is gone is fenced by the controller, which drops it from the ISR).
    fn holds_whole_log(&self, f: &FollowerState) -> bool {
        f.log_end_offset == Some(self.log_end_offset)
    }

    /// When the ISR lag check or the AlterPartition retry next has something to do,
    /// if ever without a new event: the earliest time an ISR member can fall out of
    /// sync (`replica.lag.time.max.ms` after it last caught up), not before the
    /// proposal backoff; or the resend of the proposal in flight.
    pub fn isr_deadline_ms(&self) -> Option<i64> {
        if let Some(p) = &self.pending {
            return Some(p.resend_at_ms);
        }
        let lag_max = self.config.replica_lag_time_max_ms;
        // A caught-up follower outside the ISR is proposed by a tick (see on_tick).
        let joining = self
            .followers
            .iter()
            .filter(|(b, f)| !self.committed.isr.contains(**b) && self.may_join_isr(f))
            .map(|(_, f)| f.retry_after_ms.max(self.propose_after_ms))
            .min();
        self.committed
            .isr
            .members()
            .iter()
            .filter(|&&b| b != self.local)
            .filter_map(|b| match self.followers.get(b) {
                Some(f) if self.holds_whole_log(f) => None,
                Some(f) => Some(
                    f.last_caught_up_ms
                        .unwrap_or(i64::MIN / 2)
                        .saturating_add(lag_max)
                        .saturating_add(1),
                ),
                None => Some(i64::MIN),
            })
            .chain(joining)
            .min()
            .map(|at| at.max(self.propose_after_ms))
    }

    /// When [`PartitionLeader::on_tick`] next has something to do if nothing else
    /// happens: the ISR deadline or the earliest acks=all deadline. `None`: nothing
    /// pending, the partition needs no tick.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let waiters = self.waiters.iter().map(|w| w.deadline_ms).min();
        match (self.isr_deadline_ms(), waiters) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn propose(
        &mut self,
        now_ms: i64,
        new_isr: Isr,
        added_epochs: Vec<(BrokerId, BrokerEpoch)>,
        actions: &mut Vec<LeaderAction>,
    ) {
        let request = AlterPartitionRequest {
            partition: self.partition,
            leader_epoch: self.committed.leader_epoch,
            partition_epoch: self.committed.partition_epoch,
            new_isr,
            added_epochs,
        };
        actions.push(LeaderAction::AlterPartition(request.clone()));
        self.pending = Some(PendingIsr {
            request,
            resend_at_ms: now_ms.saturating_add(self.config.alter_partition_retry_ms),
        });
    }
}

#[cfg(test)]
mod tests;
