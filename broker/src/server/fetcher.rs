//! Replica fetchers: one per leader broker this broker follows partitions on, as
//! Kafka's fetcher threads. A fetcher owns the partitions it fetches from its leader
//! and keeps one `Replica.FetchSession` call in flight, carrying only what moved since
//! the last round (`replication::fetch_session`); the leader long-polls it until any
//! partition has something to say. Each partition's decisions stay with its follower
//! state machine (`Partition::next_fetch`, `replica_wire::on_fetch_answer`); a fetcher only
//! carries them out, and looks only at partitions something happened to.
//!
//! Partitions are handed over by the metadata install (`Fetchers::follow`); one whose
//! follower role ends (its stop token) leaves by itself; a fetcher left with none ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::partition::Partition;
use super::replica_wire::{on_fetch_answer, proto};
use super::throttle::ThrottleGate;
use crate::replication::fetch_session::{FollowerSession, Position, SessionRequest};
use crate::replication::follower::FetchRequest;
use crate::replication::{BrokerId, TopicPartition, NO_LEADER};

/// This broker's fetchers, by leader broker.
#[derive(Default)]
pub struct Fetchers {
    registry: parking_lot::Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_leader: HashMap<BrokerId, Arc<Mailbox>>,
    /// Each followed partition's leader, with the token of the follower role that
    /// fetches it there.
    leader_of: HashMap<TopicPartition, (BrokerId, CancellationToken)>,
}

/// What the install hands a running fetcher.
#[derive(Default)]
pub struct Mailbox {
    pub(super) inbox: parking_lot::Mutex<Inbox>,
    pub(super) wake: Notify,
}

#[derive(Default)]
pub(super) struct Inbox {
    pub(super) added: Vec<(Arc<Partition>, CancellationToken)>,
    /// Partitions whose leader epoch moved (same leader): look at them again.
    pub(super) touched: Vec<TopicPartition>,
    /// Partitions now fetched from another leader, or from none.
    pub(super) removed: Vec<TopicPartition>,
}

impl Fetchers {
    /// `partition` follows `leader` (after `Partition::make_follower`, whose `stop` is
    /// `Some` when the partition just became a follower). Hands it to that leader's
    /// fetcher, starting one if needed, and takes it from the fetcher it was with.
    ///
    /// Returns the mailbox of a fetcher to start for `leader` when there was none:
    /// the caller runs it (`fetcher_task::run`).
    #[must_use]
    pub fn follow(
        &self,
        me: BrokerId,
        partition: &Arc<Partition>,
        stop: Option<CancellationToken>,
        leader: BrokerId,
    ) -> Option<Arc<Mailbox>> {
        let tp = partition.topic_partition();
        let mut registry = self.registry.lock();
        let before = registry.leader_of.get(&tp).map(|(l, _)| *l);
        if before == Some(leader) && stop.is_none() {
            if let Some(mailbox) = registry.by_leader.get(&leader) {
                mailbox.inbox.lock().touched.push(tp);
                mailbox.wake.notify_one();
            }
            return None;
        }
        if let Some(old) = before.and_then(|l| registry.by_leader.get(&l)) {
            old.inbox.lock().removed.push(tp);
            old.wake.notify_one();
        }
        registry.leader_of.remove(&tp);
        if leader == NO_LEADER || leader == me {
            return None;
        }
        // The partition's follower role, as the fetcher watches it: the token of this
        // call, or the one the partition holds since it became a follower.
        let stop = stop.or_else(|| partition.follower_stop())?;
        registry.leader_of.insert(tp, (leader, stop.clone()));
        let (mailbox, start) = match registry.by_leader.get(&leader) {
            Some(m) => (m.clone(), false),
            None => {
                let mailbox = Arc::new(Mailbox::default());
                registry.by_leader.insert(leader, mailbox.clone());
                (mailbox, true)
            }
        };
        mailbox.inbox.lock().added.push((partition.clone(), stop));
        mailbox.wake.notify_one();
        start.then_some(mailbox)
    }

    /// The fetcher of `leader` has no partitions left: it ends unless some were handed
    /// to it meanwhile.
    pub(super) fn end_if_empty(&self, leader: BrokerId, mailbox: &Arc<Mailbox>) -> bool {
        let mut registry = self.registry.lock();
        let inbox = mailbox.inbox.lock();
        if !inbox.added.is_empty() {
            return false;
        }
        if registry
            .by_leader
            .get(&leader)
            .is_some_and(|m| Arc::ptr_eq(m, mailbox))
        {
            registry.by_leader.remove(&leader);
        }
        true
    }

    /// The follower role of `tp` ended while with the fetcher of `leader`. A newer
    /// role of `tp` may already be registered there (the partition led for a moment
    /// and follows the same leader again): its registration stays.
    pub(super) fn left(&self, tp: &TopicPartition, leader: BrokerId) {
        let mut registry = self.registry.lock();
        if registry
            .leader_of
            .get(tp)
            .is_some_and(|(l, stop)| *l == leader && stop.is_cancelled())
        {
            registry.leader_of.remove(tp);
        }
    }

    /// The leader `tp` is registered as fetched from, if any.
    #[cfg(test)]
    pub(super) fn leader_of(&self, tp: &TopicPartition) -> Option<BrokerId> {
        self.registry.lock().leader_of.get(tp).map(|(l, _)| *l)
    }

    pub fn count(&self) -> usize {
        self.registry.lock().by_leader.len()
    }
}

struct Member {
    partition: Arc<Partition>,
    stop: CancellationToken,
    /// The fetch the partition's state machine has in flight through this fetcher.
    request: Option<FetchRequest>,
}

/// What a fetcher decides between rounds, without I/O (the simulator drives it too):
/// which partitions it fetches, each one's fetch in flight, the session, and which
/// partitions to look at before the next request.
pub struct FetcherState {
    leader: BrokerId,
    members: HashMap<TopicPartition, Member>,
    positions: HashMap<TopicPartition, Position>,
    session: FollowerSession,
    touched: HashSet<TopicPartition>,
    /// Partitions backing off after an error, by when to look again.
    retries: BinaryHeap<Reverse<(i64, TopicPartition)>>,
}

impl FetcherState {
    pub fn new(leader: BrokerId) -> FetcherState {
        FetcherState {
            leader,
            members: HashMap::new(),
            positions: HashMap::new(),
            session: FollowerSession::default(),
            touched: HashSet::new(),
            retries: BinaryHeap::new(),
        }
    }

    pub fn leader(&self) -> BrokerId {
        self.leader
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Fetch `partition` here while `stop` is not cancelled. Handed the partition it
    /// already fetches, in the same live role, it keeps the fetch in flight: dropping
    /// it would leave the state machine waiting for an answer no one hands it.
    pub fn add(&mut self, partition: Arc<Partition>, stop: CancellationToken) {
        let tp = partition.topic_partition();
        let request = self
            .members
            .get_mut(&tp)
            .filter(|m| Arc::ptr_eq(&m.partition, &partition) && !m.stop.is_cancelled())
            .and_then(|m| m.request.take());
        self.members.insert(
            tp,
            Member {
                partition,
                stop,
                request,
            },
        );
        self.touched.insert(tp);
    }

    pub fn remove(&mut self, tp: &TopicPartition) {
        self.members.remove(tp);
        self.touched.insert(*tp);
    }

    /// The partition's leader epoch moved: look at it again.
    pub fn touch(&mut self, tp: TopicPartition) {
        self.touched.insert(tp);
    }

    /// `tp`'s follower role ended if its token is cancelled: true when it left.
    pub fn leave_if_stopped(&mut self, tp: &TopicPartition) -> bool {
        let stopped = self.members.get(tp).is_some_and(|m| m.stop.is_cancelled());
        if stopped {
            self.remove(tp);
        }
        stopped
    }

    /// When the earliest backing-off partition is due.
    pub fn next_retry_ms(&self) -> Option<i64> {
        self.retries.peek().map(|Reverse((at, _))| *at)
    }

    /// The next request, after asking each partition looked at what it fetches now;
    /// `None` when there is nothing to fetch (all backing off, held back by the
    /// replication quota, or without a leader).
    pub fn next_request(
        &mut self,
        now_ms: i64,
        backoff_ms: i64,
        gate: &dyn ThrottleGate,
    ) -> Option<SessionRequest> {
        while let Some(Reverse((at, tp))) = self.retries.peek().copied() {
            if at > now_ms {
                break;
            }
            self.retries.pop();
            self.touched.insert(tp);
        }
        let touched = std::mem::take(&mut self.touched);
        for tp in &touched {
            self.refresh(tp, now_ms, backoff_ms, gate);
        }
        if self.positions.is_empty() {
            return None;
        }
        Some(self.session.request(&self.positions, touched))
    }

    fn refresh(
        &mut self,
        tp: &TopicPartition,
        now_ms: i64,
        backoff_ms: i64,
        gate: &dyn ThrottleGate,
    ) {
        let Some(member) = self.members.get_mut(tp) else {
            self.positions.remove(tp);
            return;
        };
        match member.partition.next_fetch() {
            Some(request) if request.leader == self.leader => member.request = Some(request),
            // Re-pointed to another leader: the install moves it.
            Some(_) => member.request = None,
            // Backing off after an error (look again later), or without a leader.
            None if member.request.is_none() && member.partition.follower_stop().is_some() => {
                self.retries
                    .push(Reverse((now_ms + backoff_ms.max(1), *tp)));
            }
            // Its fetch is still in flight (or its follower role ended).
            None => {}
        }
        // KIP-73 on the follower: a throttled partition leaves the session while the
        // quota is spent (its fetch stays pending) and comes back when it refills.
        let held = member.request.is_some()
            && gate.throttled(&member.partition, None)
            && match gate.held_until_ms() {
                Some(until) => {
                    self.retries.push(Reverse((until.max(now_ms + 1), *tp)));
                    true
                }
                None => false,
            };
        match member.request {
            Some(_) if held => {
                self.positions.remove(tp);
            }
            Some(r) => {
                self.positions.insert(
                    *tp,
                    Position {
                        current_leader_epoch: r.fetch.current_leader_epoch,
                        fetch_offset: r.fetch.fetch_offset,
                        last_fetched_epoch: r.fetch.last_fetched_epoch,
                        log_start_offset: member.partition.with_log(|l| l.log_start_offset()),
                    },
                );
            }
            None => {
                self.positions.remove(tp);
            }
        }
    }

    /// The leader's answer to the last request. `Err` is a failed write of this
    /// broker's log, for the runtime to report (the partition retries after its backoff).
    pub fn on_response(
        &mut self,
        response: proto::SessionFetchResponse,
        gate: &dyn ThrottleGate,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        if response.error_code != 0 {
            tracing::debug!(
                leader = self.leader,
                code = response.error_code,
                "fetch session refused; starting a new one"
            );
            self.session.reset();
            self.touched.extend(self.members.keys().copied());
            return failed;
        }
        self.session.on_accepted(response.session_id);
        for answer in response.partitions {
            let Ok(topic_id) = Uuid::from_slice(&answer.topic_id) else {
                continue;
            };
            let tp = TopicPartition {
                topic_id,
                partition: answer.partition,
            };
            self.session.on_answered(&tp);
            self.touched.insert(tp);
            let Some(member) = self.members.get_mut(&tp) else {
                continue;
            };
            let Some(request) = member.request.take() else {
                continue;
            };
            let answer = answer.answer.unwrap_or_default();
            if !answer.records.is_empty() && gate.throttled(&member.partition, None) {
                gate.passed(answer.records.len() as u64);
            }
            let outcome = Ok(answer);
            if let Err(e) = on_fetch_answer(&member.partition, &request, outcome) {
                failed.push(format!(
                    "{}-{}: {e}",
                    member.partition.topic, member.partition.index
                ));
            }
        }
        failed
    }

    /// The call failed: every partition's fetch failed with it (each backs off), and
    /// the session is in doubt (the leader may or may not have taken the request).
    pub fn on_failure(&mut self, error: &str) {
        self.session.reset();
        for (tp, member) in &mut self.members {
            if let Some(request) = member.request.take() {
                let _ = on_fetch_answer(&member.partition, &request, Err(error.to_string()));
            }
            self.touched.insert(*tp);
        }
    }
}

/// The wire form of a session request.
pub fn to_proto(
    request: &SessionRequest,
    replica_id: BrokerId,
    replica_epoch: Option<i64>,
    max_wait_ms: u32,
    max_bytes: u32,
    partition_max_bytes: u32,
) -> proto::SessionFetchRequest {
    let topic_id = |id: &Uuid| Bytes::copy_from_slice(id.as_bytes());
    proto::SessionFetchRequest {
        replica_id,
        replica_epoch,
        session_id: request.id,
        session_epoch: request.epoch,
        max_wait_ms,
        max_bytes,
        partition_max_bytes,
        partitions: request
            .partitions
            .iter()
            .map(|(tp, p)| proto::PartitionFetch {
                topic_id: topic_id(&tp.topic_id),
                partition: tp.partition,
                current_leader_epoch: p.current_leader_epoch.0,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: Some(p.log_start_offset),
            })
            .collect(),
        forgotten: request
            .forgotten
            .iter()
            .map(|tp| proto::PartitionRef {
                topic_id: topic_id(&tp.topic_id),
                partition: tp.partition,
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
