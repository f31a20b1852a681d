//! Client fetch sessions (KIP-227 incremental fetch): the rules, without I/O.
//!
//! A consumer that fetches many partitions from one broker opens a session with a full
//! fetch (epoch 0). The broker remembers, per partition, what the consumer asked (fetch
//! offset, byte limit, leader epoch) and what it was last told (high watermark, last
//! stable offset, log start offset). Later fetches (epoch 1, 2, ...) carry only the
//! partitions whose request changed and the ones to forget; the answer carries only the
//! partitions with something new. An idle consumer of 1,000 partitions then sends and
//! receives almost nothing per poll.
//!
//! Kafka's rules, as its brokers apply them:
//! - epoch -1 (FINAL): a full fetch with no session; a nonzero session id names a session
//!   to close first.
//! - epoch 0 (INITIAL): a full fetch that asks for a new session (a nonzero session id is
//!   closed first). The broker may decline (session id 0 in the answer).
//! - epoch > 0: an incremental fetch of session `session_id`, which must exist
//!   (FETCH_SESSION_ID_NOT_FOUND) and expect exactly this epoch
//!   (INVALID_FETCH_SESSION_EPOCH); a session made with topic ids is used with topic ids
//!   and one made with names with names (FETCH_SESSION_TOPIC_ID_ERROR). Each accepted
//!   fetch moves the expected epoch on (wrapping from i32::MAX to 1).
//! - The cache has a bounded number of slots (`max.incremental.fetch.session.cache.slots`).
//!   When full, a new session may take the slot of one unused for longer than the
//!   eviction time, or else of the smallest session older than the eviction time when
//!   the new one has more partitions; otherwise it is not cached and the consumer fetches
//!   in full.
//!
//! Beyond Kafka: a session belongs to the principal that made it (another principal
//! naming its id is told it does not exist), the partitions of one session and of the
//! whole cache are bounded, and a session with fewer than `min_partitions` is not cached.
//!
//! Time is passed in (`now_ms`, monotonic); the runtime (`server::api::fetch`) reads the
//! partitions and carries out what this module decides.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[cfg(test)]
mod tests;

/// Session id 0: no session.
pub const INVALID_SESSION_ID: i32 = 0;
/// A full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// A full fetch without a session (and the close of a named one).
pub const FINAL_EPOCH: i32 = -1;

/// Bounds of the session cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions kept at most (max.incremental.fetch.session.cache.slots); 0 turns
    /// sessions off.
    pub slots: usize,
    /// A session unused this long may be evicted by any new one, and a session must be
    /// this old before a larger new one may evict it
    /// (min.incremental.fetch.session.eviction.ms).
    pub eviction_ms: u64,
    /// Sessions with fewer partitions are not cached: a full fetch of them is cheap.
    pub min_partitions: usize,
    /// Partitions of one session at most.
    pub max_partitions_per_session: usize,
    /// Partitions of all sessions together at most (bounds the cache's memory).
    pub max_cached_partitions: usize,
}

impl SessionLimits {
    /// Kafka's defaults for the slots and the eviction time; Fjord's partition bounds.
    pub fn with_slots(slots: usize) -> SessionLimits {
        SessionLimits {
            slots,
            eviction_ms: 120_000,
            min_partitions: 1,
            max_partitions_per_session: 50_000,
            max_cached_partitions: 1_000_000,
        }
    }
}

/// A partition named by topic and index (Fetch v4-v12 name topics; v13+ topic ids are
/// mapped to names before they reach the session).
pub type PartitionKey = (Arc<str>, i32);

/// What the consumer asks of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// What a fetch answer tells of one partition besides its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// What reading one partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    pub record_bytes: usize,
    pub error_code: i16,
    pub state: PartitionState,
}

/// The session fields of a Fetch request, and its partitions.
#[derive(Debug, Clone)]
pub struct SessionRequest<'a> {
    pub session_id: i32,
    pub epoch: i32,
    /// Fetch v13 and later name topics by id.
    pub uses_topic_ids: bool,
    /// The principal the connection authenticated as.
    pub owner: &'a str,
    /// Full fetch: every partition; incremental: the added and changed ones.
    pub partitions: &'a [(PartitionKey, FetchParams)],
    /// Partitions to drop from the session (incremental fetches only).
    pub forgotten: &'a [PartitionKey],
}

/// Why a session request is refused (a top-level error of the Fetch answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    IdNotFound,
    InvalidEpoch,
    TopicIdMismatch,
}

impl SessionError {
    pub fn code(self) -> ResponseError {
        match self {
            SessionError::IdNotFound => ResponseError::FetchSessionIdNotFound,
            SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
            SessionError::TopicIdMismatch => ResponseError::FetchSessionTopicIdError,
        }
    }
}

/// How to answer a Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchContext {
    /// Read the request's partitions, answer them all, session id 0.
    Sessionless,
    /// Read the request's partitions, answer them all, then offer a session with
    /// [`SessionCache::create`].
    Full,
    /// Read these partitions (the whole session, in its order), then keep the answers
    /// [`SessionCache::select`] picks.
    Incremental {
        session_id: i32,
        partitions: Vec<(PartitionKey, FetchParams)>,
    },
    /// Answer only this top-level error.
    Error(SessionError),
}

struct CachedPartition {
    params: FetchParams,
    /// What the consumer was last told; `None` until it has been told anything (a new
    /// partition, or one whose last answer was an error), so it is answered next time.
    told: Option<PartitionState>,
    /// Position in the session's order.
    seq: u64,
}

struct Session {
    owner: Arc<str>,
    uses_topic_ids: bool,
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    created_ms: u64,
    last_used_ms: u64,
    partitions: HashMap<PartitionKey, CachedPartition>,
    /// The partitions in fetch order: ones that returned records move to the back, so a
    /// response byte limit does not starve the partitions behind them.
    order: BTreeMap<u64, PartitionKey>,
    next_seq: u64,
}

impl Session {
    fn push_back(&mut self, key: PartitionKey, params: FetchParams, told: Option<PartitionState>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self
            .partitions
            .insert(key.clone(), CachedPartition { params, told, seq })
        {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key);
    }

    fn remove(&mut self, key: &PartitionKey) {
        if let Some(old) = self.partitions.remove(key) {
            self.order.remove(&old.seq);
        }
    }

    fn len(&self) -> usize {
        self.partitions.len()
    }
}

/// The epoch after `epoch` (Kafka's FetchMetadata.nextEpoch).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The fetch sessions of one broker.
pub struct SessionCache {
    limits: SessionLimits,
    sessions: HashMap<i32, Session>,
    /// (last used, id): the least recently used first.
    by_last_used: BTreeSet<(u64, i32)>,
    /// (partitions, id): the smallest first.
    by_size: BTreeSet<(usize, i32)>,
    cached_partitions: usize,
    rng: StdRng,
}

impl SessionCache {
    /// `seed` draws the session ids (random, so one consumer cannot guess another's).
    pub fn new(limits: SessionLimits, seed: u64) -> SessionCache {
        SessionCache {
            limits,
            sessions: HashMap::new(),
            by_last_used: BTreeSet::new(),
            by_size: BTreeSet::new(),
            cached_partitions: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions held by all sessions.
    pub fn cached_partitions(&self) -> usize {
        self.cached_partitions
    }

    /// The epoch session `id` expects next, if it is cached.
    pub fn epoch_of(&self, id: i32) -> Option<i32> {
        self.sessions.get(&id).map(|s| s.epoch)
    }

    /// Partitions of session `id`, if it is cached.
    pub fn size_of(&self, id: i32) -> Option<usize> {
        self.sessions.get(&id).map(Session::len)
    }

    /// Decides how to answer a Fetch request, and updates the named session.
    pub fn begin(&mut self, req: &SessionRequest<'_>, now_ms: u64) -> FetchContext {
        if req.epoch == INITIAL_EPOCH || req.epoch == FINAL_EPOCH {
            // A full fetch closes the session it names, whether or not it opens another.
            if req.session_id != INVALID_SESSION_ID && self.owned_by(req.session_id, req.owner) {
                self.remove(req.session_id);
            }
            return if req.epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            };
        }
        if !self.owned_by(req.session_id, req.owner) {
            return FetchContext::Error(SessionError::IdNotFound);
        }
        let session = self
            .sessions
            .get(&req.session_id)
            .expect("owned_by found it");
        if session.epoch != req.epoch {
            return FetchContext::Error(SessionError::InvalidEpoch);
        }
        if session.uses_topic_ids != req.uses_topic_ids {
            return FetchContext::Error(SessionError::TopicIdMismatch);
        }
        let id = req.session_id;
        let session = self.sessions.get_mut(&id).expect("looked up above");
        let before = session.len();
        for (key, params) in req.partitions {
            match session.partitions.get_mut(key) {
                Some(cached) => cached.params = *params,
                None => session.push_back(key.clone(), *params, None),
            }
        }
        for key in req.forgotten {
            session.remove(key);
        }
        let after = session.len();
        self.resized(id, before, after);
        if after == 0 {
            // Nothing left to follow: Kafka drops the session and answers sessionless.
            self.remove(id);
            return FetchContext::Sessionless;
        }
        if after > self.limits.max_partitions_per_session
            || self.cached_partitions > self.limits.max_cached_partitions
        {
            // The session outgrew its bound: drop it; the consumer starts over with a
            // full fetch, which is then answered without a session.
            self.remove(id);
            return FetchContext::Error(SessionError::IdNotFound);
        }
        self.touch(id, now_ms);
        let session = self.sessions.get_mut(&id).expect("still cached");
        session.epoch = next_epoch(session.epoch);
        let partitions = session
            .order
            .values()
            .map(|key| (key.clone(), session.partitions[key].params))
            .collect();
        FetchContext::Incremental {
            session_id: id,
            partitions,
        }
    }

    /// Offers a session for the partitions a full fetch just answered (with what it told
    /// of each). Returns its id, or 0 when the cache declines it.
    pub fn create(
        &mut self,
        owner: &str,
        uses_topic_ids: bool,
        partitions: Vec<(PartitionKey, FetchParams, Option<PartitionState>)>,
        now_ms: u64,
    ) -> i32 {
        let size = partitions.len();
        if self.limits.slots == 0
            || size < self.limits.min_partitions
            || size > self.limits.max_partitions_per_session
            || size > self.limits.max_cached_partitions
        {
            return INVALID_SESSION_ID;
        }
        while self.sessions.len() >= self.limits.slots
            || self.cached_partitions + size > self.limits.max_cached_partitions
        {
            if !self.try_evict(size, now_ms) {
                return INVALID_SESSION_ID;
            }
        }
        let id = loop {
            let id = self.rng.random_range(1..=i32::MAX);
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut session = Session {
            owner: owner.into(),
            uses_topic_ids,
            epoch: next_epoch(INITIAL_EPOCH),
            created_ms: now_ms,
            last_used_ms: now_ms,
            partitions: HashMap::with_capacity(size),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for (key, params, told) in partitions {
            session.push_back(key, params, told);
        }
        // A request naming a partition twice leaves fewer entries than it named.
        let size = session.len();
        self.sessions.insert(id, session);
        self.by_last_used.insert((now_ms, id));
        self.by_size.insert((size, id));
        self.cached_partitions += size;
        id
    }

    /// After an incremental fetch read `outcomes` (in the order of its context's
    /// partitions): which of them the answer carries. A partition is answered when it has
    /// records, an error, or a high watermark, last stable offset or log start offset
    /// other than the one last told; partitions with records move to the back of the
    /// session's order. A session gone meanwhile answers them all.
    pub fn select(
        &mut self,
        session_id: i32,
        outcomes: &[(PartitionKey, ReadOutcome)],
    ) -> Vec<bool> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return vec![true; outcomes.len()];
        };
        let mut keep = Vec::with_capacity(outcomes.len());
        for (key, outcome) in outcomes {
            let Some(cached) = session.partitions.get_mut(key) else {
                // Forgotten by a later request while this one read it.
                keep.push(false);
                continue;
            };
            let changed = cached.told != Some(outcome.state);
            let answer = outcome.record_bytes > 0 || outcome.error_code != 0 || changed;
            // After an error the consumer must be told the partition's state again once
            // the error is gone.
            cached.told = (outcome.error_code == 0).then_some(outcome.state);
            if outcome.record_bytes > 0 {
                let (params, told) = (cached.params, cached.told);
                session.push_back(key.clone(), params, told);
            }
            keep.push(answer);
        }
        keep
    }

    fn owned_by(&self, id: i32, owner: &str) -> bool {
        self.sessions.get(&id).is_some_and(|s| &*s.owner == owner)
    }

    fn touch(&mut self, id: i32, now_ms: u64) {
        let session = self.sessions.get_mut(&id).expect("touch a cached session");
        self.by_last_used.remove(&(session.last_used_ms, id));
        session.last_used_ms = now_ms.max(session.last_used_ms);
        self.by_last_used.insert((session.last_used_ms, id));
    }

    fn resized(&mut self, id: i32, before: usize, after: usize) {
        if before != after {
            self.by_size.remove(&(before, id));
            self.by_size.insert((after, id));
            self.cached_partitions = self.cached_partitions - before + after;
        }
    }

    fn remove(&mut self, id: i32) {
        if let Some(s) = self.sessions.remove(&id) {
            self.by_last_used.remove(&(s.last_used_ms, id));
            self.by_size.remove(&(s.len(), id));
            self.cached_partitions -= s.len();
        }
    }

    /// Frees one slot for a new session of `size` partitions, if Kafka's rules allow:
    /// the least recently used session when unused past the eviction time, else the
    /// smallest session older than the eviction time when it is smaller than the new one.
    fn try_evict(&mut self, size: usize, now_ms: u64) -> bool {
        let eviction_ms = self.limits.eviction_ms;
        if let Some(&(last_used_ms, id)) = self.by_last_used.first() {
            if now_ms.saturating_sub(last_used_ms) > eviction_ms {
                self.remove(id);
                return true;
            }
        }
        let victim = self
            .by_size
            .iter()
            .find(|(_, id)| now_ms.saturating_sub(self.sessions[id].created_ms) > eviction_ms);
        match victim {
            Some(&(victim_size, id)) if victim_size < size => {
                self.remove(id);
                true
            }
            _ => false,
        }
    }
}
