//! The leader's side of replica fetch sessions: one `Replica.FetchSession` call per
//! round from each follower broker, carrying what moved in its session (the pure
//! [`SessionCache`] decides), answered with only the partitions that have something to
//! say, long-polling until any of them has.
//!
//! A partition costs work here only when something happened to it: the session keeps,
//! per partition, one future waiting on its log end and high watermark; a round looks
//! only at partitions whose future fired or whose follower position moved.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use super::broker::Broker;
use super::partition::Partition;
use super::replica_wire::{fetch_response, proto};
use super::throttle::ThrottleGate;
use super::throttle_gate::BrokerGate;
use crate::quorum::authz::{self, InternalCall, Refusal, Roles};
use crate::quorum::internal_tls::Caller;
use crate::replication::fetch_session::{Position, SessionCache, SessionError, SessionRequest};
use crate::replication::leader::{AlterPartitionRequest, FollowerFetch, FollowerFetchAnswer};
use crate::replication::{BrokerEpoch, BrokerId, LeaderEpoch, TopicPartition};

/// Every follower broker's session, and what the runtime keeps beside each.
#[derive(Default)]
pub struct Sessions {
    cache: SessionCache,
    /// Taken out while the session's call runs, put back when it answers.
    watches: HashMap<BrokerId, SessionWatch>,
}

struct Watched {
    partition: Arc<Partition>,
    generation: u64,
    /// The high watermark last sent: a new one is something to say.
    high_watermark_sent: i64,
    /// The log start last sent: a new one (DeleteRecords) is something to say too.
    log_start_sent: i64,
}

struct Fired {
    tp: TopicPartition,
    generation: u64,
    receivers: Option<(watch::Receiver<i64>, watch::Receiver<i64>)>,
}

/// The runtime side of one session: the partitions' wake-ups and which are due a look.
struct SessionWatch {
    id: u32,
    watched: HashMap<TopicPartition, Watched>,
    waiters: FuturesUnordered<BoxFuture<'static, Fired>>,
    /// Partitions due a look, in the order they became due (a busy partition goes to
    /// the back after each answer, so it cannot starve the others).
    due: VecDeque<TopicPartition>,
    due_set: HashSet<TopicPartition>,
    generations: u64,
}

impl SessionWatch {
    fn new(id: u32) -> SessionWatch {
        SessionWatch {
            id,
            watched: HashMap::new(),
            waiters: FuturesUnordered::new(),
            due: VecDeque::new(),
            due_set: HashSet::new(),
            generations: 0,
        }
    }

    fn mark_due(&mut self, tp: TopicPartition) {
        if self.due_set.insert(tp) {
            self.due.push_back(tp);
        }
    }

    fn watch(&mut self, tp: TopicPartition, partition: Arc<Partition>) {
        self.generations += 1;
        let generation = self.generations;
        let receivers = (partition.subscribe_log_end(), partition.subscribe());
        self.waiters.push(waiter(tp, generation, receivers));
        self.watched.insert(
            tp,
            Watched {
                partition,
                generation,
                high_watermark_sent: -1,
                log_start_sent: -1,
            },
        );
        self.mark_due(tp);
    }

    fn forget(&mut self, tp: &TopicPartition) {
        // Its waiter finds its generation gone when it fires and ends.
        self.watched.remove(tp);
    }

    fn on_fired(&mut self, fired: Fired) {
        let current = self
            .watched
            .get(&fired.tp)
            .is_some_and(|w| w.generation == fired.generation);
        if !current {
            return;
        }
        self.mark_due(fired.tp);
        if let Some(receivers) = fired.receivers {
            self.waiters
                .push(waiter(fired.tp, fired.generation, receivers));
        }
    }

    /// Take every wake-up that already happened, without waiting.
    fn collect_fired(&mut self) {
        while let Some(Some(fired)) = self.waiters.next().now_or_never() {
            self.on_fired(fired);
        }
    }
}

fn waiter(
    tp: TopicPartition,
    generation: u64,
    (mut log_end, mut high_watermark): (watch::Receiver<i64>, watch::Receiver<i64>),
) -> BoxFuture<'static, Fired> {
    Box::pin(async move {
        let alive = tokio::select! {
            r = log_end.changed() => r.is_ok(),
            r = high_watermark.changed() => r.is_ok(),
        };
        Fired {
            tp,
            generation,
            receivers: alive.then_some((log_end, high_watermark)),
        }
    })
}

fn answer_for(tp: &TopicPartition, answer: proto::FetchResponse) -> proto::PartitionAnswer {
    proto::PartitionAnswer {
        topic_id: Bytes::copy_from_slice(tp.topic_id.as_bytes()),
        partition: tp.partition,
        answer: Some(answer),
    }
}

fn error_answer(tp: &TopicPartition, code: ResponseError) -> proto::PartitionAnswer {
    answer_for(
        tp,
        proto::FetchResponse {
            error_code: i32::from(code.code()),
            ..Default::default()
        },
    )
}

/// Bytes of records a round may answer: in the whole response and per partition.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub total: usize,
    pub per_partition: usize,
}

/// One round of a session between taking the request and answering it.
pub struct Round {
    replica: BrokerId,
    broker_epoch: Option<BrokerEpoch>,
    budget: Budget,
    watch: SessionWatch,
    answers: Vec<proto::PartitionAnswer>,
    /// Stored bytes to read into `answers[i]`.
    slices: Vec<(usize, crate::log::FileSlice)>,
    /// When the replication quota lets the partitions it holds back pass again.
    held_until_ms: Option<i64>,
}

impl Sessions {
    /// Take `request` from `replica` into its session (its partitions already
    /// authorized; `refused` are answered as they are). `lookup` finds a partition
    /// hosted here.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        this: &parking_lot::Mutex<Sessions>,
        now_ms: i64,
        replica: BrokerId,
        broker_epoch: Option<BrokerEpoch>,
        request: &SessionRequest,
        new_id: u32,
        budget: Budget,
        refused: Vec<proto::PartitionAnswer>,
        lookup: impl Fn(&TopicPartition) -> Option<Arc<Partition>>,
    ) -> Result<Round, SessionError> {
        let (update, watch) = {
            let mut s = this.lock();
            let update = s
                .cache
                .update(now_ms, replica, broker_epoch, request, new_id);
            (update, s.watches.remove(&replica))
        };
        let update = update?;
        let mut watch = match watch {
            Some(w) if w.id == update.id && !update.opened => w,
            _ => SessionWatch::new(update.id),
        };
        for tp in &update.forgotten {
            watch.forget(tp);
        }
        let mut answers = refused;
        for tp in &update.moved {
            if watch.watched.contains_key(tp) {
                watch.mark_due(*tp);
                continue;
            }
            match lookup(tp).filter(|p| p.topic_id == tp.topic_id) {
                Some(p) => watch.watch(*tp, p),
                None => {
                    answers.push(error_answer(tp, ResponseError::NotLeaderOrFollower));
                    this.lock().cache.remove_partition(replica, tp);
                }
            }
        }
        Ok(Round {
            replica,
            broker_epoch,
            budget,
            watch,
            answers,
            slices: Vec::new(),
            held_until_ms: None,
        })
    }
}

impl Round {
    pub fn session_id(&self) -> u32 {
        self.watch.id
    }

    pub fn has_answers(&self) -> bool {
        !self.answers.is_empty()
    }

    /// Look at the partitions due; returns the ISR proposals their leaders made.
    /// Throttled partitions `gate` holds back stay due.
    /// `isr_eligible`: what this broker's metadata now says of the follower (see
    /// [`FollowerFetch::isr_eligible`]).
    pub fn answer_due(
        &mut self,
        sessions: &parking_lot::Mutex<Sessions>,
        gate: &dyn ThrottleGate,
        isr_eligible: bool,
    ) -> Vec<(Arc<Partition>, Vec<AlterPartitionRequest>)> {
        self.watch.collect_fired();
        let (proposals, held_until_ms) = answer_due(
            sessions,
            (self.replica, self.broker_epoch, isr_eligible),
            self.budget,
            gate,
            &mut self.watch,
            &mut self.answers,
            &mut self.slices,
        );
        self.held_until_ms = held_until_ms;
        proposals
    }

    /// When partitions held back by the replication quota may pass (`now_ms` the
    /// clock that quota reads), as a deadline to wake at.
    fn held_deadline(&self, now_ms: i64) -> Option<tokio::time::Instant> {
        let until = self.held_until_ms?;
        let wait_ms = u64::try_from(until.saturating_sub(now_ms))
            .unwrap_or(0)
            .max(1);
        Some(tokio::time::Instant::now() + Duration::from_millis(wait_ms))
    }

    /// Wait until a partition of the session changes or `deadline` passes.
    async fn wait(&mut self, deadline: tokio::time::Instant) {
        if self.watch.waiters.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        tokio::select! {
            fired = self.watch.waiters.next() => {
                if let Some(fired) = fired {
                    self.watch.on_fired(fired);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }

    /// The session's watch goes back for its next round; the answers and the stored
    /// ranges to read into them are left.
    pub fn finish(
        self,
        sessions: &parking_lot::Mutex<Sessions>,
    ) -> (
        Vec<proto::PartitionAnswer>,
        Vec<(usize, crate::log::FileSlice)>,
    ) {
        let mut s = sessions.lock();
        if s.cache
            .get(self.replica)
            .is_some_and(|x| x.id == self.watch.id)
        {
            s.watches.insert(self.replica, self.watch);
        }
        (self.answers, self.slices)
    }
}

/// The response, with the records read from the stored ranges (as stored, no
/// per-record work).
pub fn response(
    session_id: u32,
    mut answers: Vec<proto::PartitionAnswer>,
    read: Vec<(usize, Bytes)>,
) -> proto::SessionFetchResponse {
    for (i, records) in read {
        if let Some(answer) = answers.get_mut(i).and_then(|a| a.answer.as_mut()) {
            answer.records = records;
        }
    }
    proto::SessionFetchResponse {
        error_code: 0,
        session_id,
        partitions: answers,
    }
}

/// A refused session, as the follower is told.
pub fn refused(error: SessionError) -> proto::SessionFetchResponse {
    proto::SessionFetchResponse {
        error_code: i32::from(error.code().code()),
        ..Default::default()
    }
}

/// The request's session part, its partitions taken only where `allowed`: the others
/// come back as their answers, the answer a partition that does not exist gets, so
/// nothing about them is told.
pub fn session_request(
    req: &proto::SessionFetchRequest,
    allowed: impl Fn(&TopicPartition) -> bool,
) -> (SessionRequest, Vec<proto::PartitionAnswer>) {
    let mut refused = Vec::new();
    let mut partitions = Vec::with_capacity(req.partitions.len());
    for p in &req.partitions {
        let tp = TopicPartition {
            topic_id: Uuid::from_slice(&p.topic_id).unwrap_or_default(),
            partition: p.partition,
        };
        if !allowed(&tp) {
            refused.push(error_answer(&tp, ResponseError::UnknownTopicOrPartition));
            continue;
        }
        partitions.push((
            tp,
            Position {
                current_leader_epoch: LeaderEpoch(p.current_leader_epoch),
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset.unwrap_or(-1),
            },
        ));
    }
    let forgotten = req
        .forgotten
        .iter()
        .filter_map(|f| {
            Some(TopicPartition {
                topic_id: Uuid::from_slice(&f.topic_id).ok()?,
                partition: f.partition,
            })
        })
        .collect();
    let request = SessionRequest {
        id: req.session_id,
        epoch: req.session_epoch,
        partitions,
        forgotten,
    };
    (request, refused)
}

/// [`session_request`] with each partition authorized for `caller`: only an assigned
/// replica may fetch it.
fn authorized(
    broker: &Broker,
    caller: Option<Caller>,
    req: &proto::SessionFetchRequest,
) -> (SessionRequest, Vec<proto::PartitionAnswer>) {
    let image = broker.image();
    let roles = Roles {
        voters: &Default::default(),
    };
    session_request(req, |tp| {
        let state = image
            .topic_by_id(&tp.topic_id)
            .and_then(|t| t.partitions.get(usize::try_from(tp.partition).ok()?));
        let call = InternalCall::ReplicaFetch {
            replica: req.replica_id,
            partition: state,
        };
        match authz::authorize(caller, &call, &roles) {
            Ok(()) => true,
            Err(refusal) => {
                tracing::debug!(?caller, %refusal, "replica fetch of a partition refused");
                false
            }
        }
    })
}

/// One round of a follower broker's session, long-polling until any of its
/// partitions has something to say.
pub async fn fetch(
    broker: &Broker,
    sessions: &parking_lot::Mutex<Sessions>,
    caller: Option<Caller>,
    req: proto::SessionFetchRequest,
) -> Result<proto::SessionFetchResponse, tonic::Status> {
    let replica = req.replica_id;
    // The caller speaks in its own name, whatever it fetches.
    let identity = InternalCall::ReplicaFetch {
        replica,
        partition: None,
    };
    let roles = Roles {
        voters: &Default::default(),
    };
    match authz::authorize(caller, &identity, &roles) {
        Ok(()) | Err(Refusal::NotAReplica(_)) => {}
        Err(refusal) => {
            tracing::warn!(?caller, %refusal, "internal call refused");
            return Err(authz::denied());
        }
    }
    let (request, refused_answers) = authorized(broker, caller, &req);
    let budget = Budget {
        total: usize::try_from(req.max_bytes.max(1)).unwrap_or(usize::MAX),
        per_partition: usize::try_from(req.partition_max_bytes.max(1)).unwrap_or(usize::MAX),
    };
    let image = broker.image();
    let lookup = |tp: &TopicPartition| {
        image
            .topic_by_id(&tp.topic_id)
            .and_then(|t| broker.partitions.get(&t.name, tp.partition))
    };
    let begun = Sessions::begin(
        sessions,
        broker.clock.now_ms(),
        replica,
        req.replica_epoch.map(BrokerEpoch),
        &request,
        rand::random(),
        budget,
        refused_answers,
        lookup,
    );
    let mut round = match begun {
        Ok(round) => round,
        Err(e) => {
            tracing::debug!(replica, error = %e, "replica fetch session refused");
            return Ok(refused(e));
        }
    };
    let max_wait = Duration::from_millis(u64::from(req.max_wait_ms))
        .min(Duration::from_millis(broker.config.request_timeout_ms));
    let deadline = tokio::time::Instant::now() + max_wait;
    let gate = BrokerGate::leader(broker);
    loop {
        let isr_eligible = broker.image().isr_eligible(replica, req.replica_epoch);
        for (partition, proposals) in round.answer_due(sessions, &gate, isr_eligible) {
            broker.propose_isr(&partition, proposals);
        }
        if round.has_answers() || tokio::time::Instant::now() >= deadline {
            break;
        }
        let wake = round
            .held_deadline(broker.clock.now_ms())
            .map_or(deadline, |held| held.min(deadline));
        round.wait(wake).await;
    }
    let session_id = round.session_id();
    let (answers, slices) = round.finish(sessions);
    // The stored bytes, read in one blocking task for the whole response.
    let read = tokio::task::spawn_blocking(move || {
        slices
            .into_iter()
            .map(|(i, slice)| Ok((i, slice.read_to_bytes()?)))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .await;
    let read = match read {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(e)) => Err(format!("reading records: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(read) => Ok(response(session_id, answers, read)),
        Err(message) => {
            // The follower's next request opens a new session and asks again.
            sessions.lock().cache.close(replica);
            Err(tonic::Status::internal(message))
        }
    }
}

/// ISR proposals of the partitions looked at, with the partition that made them.
type Proposals = Vec<(Arc<Partition>, Vec<AlterPartitionRequest>)>;

/// Look at the partitions due, in order, while the response has room; those left
/// stay due (first in line next round). Each look records the follower's position.
/// A throttled partition whose quota is spent is not looked at and stays due (at the
/// back); the second value says when the quota lets it pass.
#[allow(clippy::too_many_arguments)]
fn answer_due(
    sessions: &parking_lot::Mutex<Sessions>,
    (replica, broker_epoch, isr_eligible): (BrokerId, Option<BrokerEpoch>, bool),
    budget: Budget,
    gate: &dyn ThrottleGate,
    watch: &mut SessionWatch,
    answers: &mut Vec<proto::PartitionAnswer>,
    slices: &mut Vec<(usize, crate::log::FileSlice)>,
) -> (Proposals, Option<i64>) {
    let mut proposals = Vec::new();
    let mut held = Vec::new();
    let mut held_until_ms = None;
    if watch.due.is_empty() {
        return (proposals, held_until_ms);
    }
    let mut left = budget
        .total
        .saturating_sub(slices.iter().map(|(_, s)| s.len).sum());
    let due: Vec<(TopicPartition, Option<Position>)> = {
        let s = sessions.lock();
        let session = s.cache.get(replica);
        watch
            .due
            .iter()
            .map(|tp| (*tp, session.and_then(|s| s.position(tp))))
            .collect()
    };
    let mut errors = Vec::new();
    for (tp, position) in due {
        if left == 0 {
            break;
        }
        watch.due.pop_front();
        watch.due_set.remove(&tp);
        let (Some(position), Some(watched)) = (position, watch.watched.get_mut(&tp)) else {
            continue;
        };
        let throttled = gate.throttled(&watched.partition, Some(replica));
        if throttled {
            if let Some(until) = gate.held_until_ms() {
                held.push(tp);
                held_until_ms = Some(until);
                continue;
            }
        }
        if position.log_start_offset >= 0 {
            watched
                .partition
                .on_follower_log_start(replica, position.log_start_offset);
        }
        let fetch = FollowerFetch {
            replica,
            current_leader_epoch: position.current_leader_epoch,
            fetch_offset: position.fetch_offset,
            last_fetched_epoch: position.last_fetched_epoch,
            broker_epoch,
            isr_eligible,
        };
        let mut result = watched
            .partition
            .follower_fetch(&fetch, budget.per_partition.min(left));
        let proposed = std::mem::take(&mut result.proposals);
        if !proposed.is_empty() {
            proposals.push((watched.partition.clone(), proposed));
        }
        let slice = result.records.take();
        match result.answer {
            FollowerFetchAnswer::Records { high_watermark, .. }
                if slice.is_none()
                    && high_watermark.0 == watched.high_watermark_sent
                    && result.log_start_offset == watched.log_start_sent =>
            {
                continue;
            }
            FollowerFetchAnswer::Records { high_watermark, .. }
            | FollowerFetchAnswer::Diverging { high_watermark, .. } => {
                watched.high_watermark_sent = high_watermark.0;
                watched.log_start_sent = result.log_start_offset;
            }
            FollowerFetchAnswer::Error(_) => errors.push(tp),
        }
        if let Some(slice) = slice {
            if throttled {
                gate.passed(slice.len as u64);
            }
            left = left.saturating_sub(slice.len);
            slices.push((answers.len(), slice));
        }
        answers.push(answer_for(&tp, fetch_response(&result, Bytes::new())));
    }
    for tp in held {
        watch.mark_due(tp);
    }
    if !errors.is_empty() {
        let mut s = sessions.lock();
        for tp in errors {
            watch.forget(&tp);
            s.cache.remove_partition(replica, &tp);
        }
    }
    (proposals, held_until_ms)
}

#[cfg(test)]
#[path = "replica_session_tests.rs"]
mod tests;
