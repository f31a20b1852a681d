//! Incremental fetch sessions between brokers: KIP-227's idea on the internal plane.
//!
//! A follower keeps one fetch stream per leader broker. Its first request is full (every
//! partition it follows there, with its position); the leader answers with a session id
//! and remembers each partition's position. Later requests name the session and the
//! next epoch and carry only partitions whose position changed, were added or are
//! forgotten; the leader answers only partitions with something to say. So an idle
//! partition costs nothing per round on either side.
//!
//! Both sides apply the same two rules, which keeps their views equal without
//! acknowledgements: a partition answered with an error leaves the session, and a
//! partition the follower heard an answer for is sent again with its position (the
//! leader cannot know whether the follower took the answer or dropped it).
//!
//! Any doubt (a failed call, a session the leader no longer has, an epoch out of
//! order) ends the session on both sides; the follower's next request is full.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;

use super::{BrokerEpoch, BrokerId, LeaderEpoch, TopicPartition};

/// Sessions a leader keeps (one per follower broker, so this bounds the followers
/// served at once with sessions; the least recently used one is evicted beyond it).
pub const MAX_SESSIONS: usize = 1_000;
/// Partitions one session may hold (a follower broker's partitions on one leader).
pub const MAX_SESSION_PARTITIONS: usize = 200_000;

/// Where a follower fetches one partition from (the KIP-320 fields of a fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub current_leader_epoch: LeaderEpoch,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    /// The follower's log start offset (-1: not told); a change is sent like a move,
    /// so the leader learns when a start it sent has been taken.
    pub log_start_offset: i64,
}

/// The session part of a request: `id` 0 opens a new session with a full request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub id: u32,
    pub epoch: u32,
    pub partitions: Vec<(TopicPartition, Position)>,
    pub forgotten: Vec<TopicPartition>,
}

impl SessionRequest {
    pub fn is_full(&self) -> bool {
        self.id == 0
    }
}

/// The follower's side of its session with one leader broker.
#[derive(Debug, Default)]
pub struct FollowerSession {
    id: u32,
    epoch: u32,
    /// The positions the leader's session holds, as last sent.
    known: HashMap<TopicPartition, Position>,
}

impl FollowerSession {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next request. `positions` holds every partition to fetch now; `touched` the
    /// partitions whose position or presence may have changed since the last request
    /// (the only ones looked at when the session is open).
    pub fn request(
        &mut self,
        positions: &HashMap<TopicPartition, Position>,
        touched: impl IntoIterator<Item = TopicPartition>,
    ) -> SessionRequest {
        if self.id == 0 {
            self.known = positions.clone();
            return SessionRequest {
                id: 0,
                epoch: 0,
                partitions: positions.iter().map(|(tp, p)| (*tp, *p)).collect(),
                forgotten: vec![],
            };
        }
        let (mut partitions, mut forgotten) = (Vec::new(), Vec::new());
        for tp in touched {
            match (positions.get(&tp), self.known.get(&tp)) {
                (Some(now), Some(sent)) if now == sent => {}
                (Some(now), _) => {
                    self.known.insert(tp, *now);
                    partitions.push((tp, *now));
                }
                (None, Some(_)) => {
                    self.known.remove(&tp);
                    forgotten.push(tp);
                }
                (None, None) => {}
            }
        }
        SessionRequest {
            id: self.id,
            epoch: self.epoch,
            partitions,
            forgotten,
        }
    }

    /// The leader took the request into session `id`.
    pub fn on_accepted(&mut self, id: u32) {
        if self.id != id {
            self.id = id;
            self.epoch = 0;
        }
        self.epoch = self.epoch.wrapping_add(1).max(1);
    }

    /// The call failed or the leader refused the session: start over with a full request.
    pub fn reset(&mut self) {
        *self = FollowerSession::default();
    }

    /// An answer for `tp` was heard: the leader's copy of its position is not trusted
    /// any more (see the module's rules), so it is sent again.
    pub fn on_answered(&mut self, tp: &TopicPartition) {
        self.known.remove(tp);
    }
}

/// Why a leader refused a session request: the follower starts over with a full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("fetch session {0} of this follower is not held here")]
    NotFound(u32),
    #[error("fetch session {id} expected epoch {expected}, got {got}")]
    InvalidEpoch { id: u32, expected: u32, got: u32 },
    #[error("a fetch session holds at most {limit} partitions")]
    TooManyPartitions { limit: usize },
}

impl SessionError {
    /// The Kafka error code the follower sees.
    pub fn code(&self) -> ResponseError {
        match self {
            SessionError::NotFound(_) => ResponseError::FetchSessionIdNotFound,
            SessionError::InvalidEpoch { .. } => ResponseError::InvalidFetchSessionEpoch,
            SessionError::TooManyPartitions { .. } => ResponseError::FetchSessionIdNotFound,
        }
    }
}

/// One follower's session at the leader.
#[derive(Debug)]
pub struct LeaderSession {
    pub id: u32,
    broker_epoch: Option<BrokerEpoch>,
    next_epoch: u32,
    last_used_ms: i64,
    partitions: HashMap<TopicPartition, Position>,
}

impl LeaderSession {
    pub fn position(&self, tp: &TopicPartition) -> Option<Position> {
        self.partitions.get(tp).copied()
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }
}

/// What a request changed in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    pub id: u32,
    /// A new session (full request): whatever the runtime held for the follower's
    /// previous one is gone.
    pub opened: bool,
    /// Partitions whose position is new or changed: each must be looked at this round.
    pub moved: Vec<TopicPartition>,
    pub forgotten: Vec<TopicPartition>,
}

/// The leader's sessions, one per follower broker, bounded in count and size.
#[derive(Debug)]
pub struct SessionCache {
    max_sessions: usize,
    max_partitions: usize,
    sessions: HashMap<BrokerId, LeaderSession>,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache::new(MAX_SESSIONS, MAX_SESSION_PARTITIONS)
    }
}

impl SessionCache {
    pub fn new(max_sessions: usize, max_partitions: usize) -> SessionCache {
        SessionCache {
            max_sessions: max_sessions.max(1),
            max_partitions,
            sessions: HashMap::new(),
        }
    }

    pub fn get(&self, replica: BrokerId) -> Option<&LeaderSession> {
        self.sessions.get(&replica)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Take `request` from `replica` (whose process has `broker_epoch`). A full request
    /// replaces the replica's session with a new one numbered `new_id` (non-zero, chosen
    /// by the caller); an incremental one must name the replica's session, from the
    /// same process, at the next epoch. Any refusal drops the replica's session.
    pub fn update(
        &mut self,
        now_ms: i64,
        replica: BrokerId,
        broker_epoch: Option<BrokerEpoch>,
        request: &SessionRequest,
        new_id: u32,
    ) -> Result<SessionUpdate, SessionError> {
        let opened = request.is_full();
        if opened {
            self.sessions.remove(&replica);
            if request.partitions.len() > self.max_partitions {
                return Err(SessionError::TooManyPartitions {
                    limit: self.max_partitions,
                });
            }
            if self.sessions.len() >= self.max_sessions {
                self.evict_least_recently_used();
            }
            self.sessions.insert(
                replica,
                LeaderSession {
                    id: new_id.max(1),
                    broker_epoch,
                    next_epoch: 1,
                    last_used_ms: now_ms,
                    partitions: HashMap::new(),
                },
            );
        }
        let session = match self.sessions.get_mut(&replica) {
            Some(s) if s.id == request.id || opened => s,
            _ => {
                self.sessions.remove(&replica);
                return Err(SessionError::NotFound(request.id));
            }
        };
        // KIP-903: a request from another process of the follower is not this session's.
        if session.broker_epoch != broker_epoch {
            self.sessions.remove(&replica);
            return Err(SessionError::NotFound(request.id));
        }
        if !opened && request.epoch != session.next_epoch {
            let expected = session.next_epoch;
            self.sessions.remove(&replica);
            return Err(SessionError::InvalidEpoch {
                id: request.id,
                expected,
                got: request.epoch,
            });
        }
        for tp in &request.forgotten {
            session.partitions.remove(tp);
        }
        let mut moved = Vec::with_capacity(request.partitions.len());
        for (tp, position) in &request.partitions {
            if session.partitions.insert(*tp, *position) != Some(*position) || opened {
                moved.push(*tp);
            }
        }
        if session.partitions.len() > self.max_partitions {
            self.sessions.remove(&replica);
            return Err(SessionError::TooManyPartitions {
                limit: self.max_partitions,
            });
        }
        if !opened {
            // The full request is epoch 0; the first incremental one is 1.
            session.next_epoch = session.next_epoch.wrapping_add(1).max(1);
        }
        session.last_used_ms = now_ms;
        Ok(SessionUpdate {
            id: session.id,
            opened,
            moved,
            forgotten: request.forgotten.clone(),
        })
    }

    /// `tp` was answered with an error: it leaves the replica's session.
    pub fn remove_partition(&mut self, replica: BrokerId, tp: &TopicPartition) {
        if let Some(s) = self.sessions.get_mut(&replica) {
            s.partitions.remove(tp);
        }
    }

    /// Drop the replica's session (its call failed while answering).
    pub fn close(&mut self, replica: BrokerId) {
        self.sessions.remove(&replica);
    }

    fn evict_least_recently_used(&mut self) {
        if let Some((&replica, _)) = self.sessions.iter().min_by_key(|(_, s)| s.last_used_ms) {
            self.sessions.remove(&replica);
        }
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
