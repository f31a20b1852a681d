//! One timer structure per broker: each hosted partition says when it next needs
//! attention (its leader's ISR lag, acks=all and AlterPartition retry deadlines; its
//! log's segment.ms roll, retention, flush.ms and producer-id expiry), and one task
//! wakes for the earliest deadline and visits only the partitions that are due. An
//! idle partition with nothing pending has no entry, so a tick costs work in
//! proportion to what is due, never to the number of partitions hosted.
//!
//! [`Timers`] is the pure deadline queue; [`BrokerTimers`] shares it between the
//! partitions that arm it and the timer task (`timer_task::run`), which fires it on the
//! broker's monotonic clock.
//! A deadline is only ever moved earlier by arming; a partition whose deadline moved
//! later (a follower fetched) is visited at the old time, finds nothing due and arms
//! its new deadline (lazy deletion), which keeps the hot paths to a compare.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// A deadline queue keyed by `K`: at most one deadline per key, the earliest armed.
#[derive(Debug)]
pub struct Timers<K> {
    by_deadline: BTreeSet<(i64, K)>,
    armed: HashMap<K, i64>,
}

impl<K: Ord + Hash + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_deadline: BTreeSet::new(),
            armed: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> Timers<K> {
    /// Arm `key` for `at_ms` unless it is already armed at or before then. Returns
    /// whether the key's deadline changed.
    pub fn arm(&mut self, key: K, at_ms: i64) -> bool {
        match self.armed.get_mut(&key) {
            Some(current) if *current <= at_ms => false,
            Some(current) => {
                self.by_deadline.remove(&(*current, key.clone()));
                *current = at_ms;
                self.by_deadline.insert((at_ms, key));
                true
            }
            None => {
                self.armed.insert(key.clone(), at_ms);
                self.by_deadline.insert((at_ms, key));
                true
            }
        }
    }

    /// Forget `key` (its partition went away).
    pub fn disarm(&mut self, key: &K) {
        if let Some(at_ms) = self.armed.remove(key) {
            self.by_deadline.remove(&(at_ms, key.clone()));
        }
    }

    /// The earliest deadline armed.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.by_deadline.first().map(|(at_ms, _)| *at_ms)
    }

    pub fn deadline_of(&self, key: &K) -> Option<i64> {
        self.armed.get(key).copied()
    }

    /// Remove and return, earliest first, at most `max` keys due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64, max: usize) -> Vec<K> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.by_deadline.first() {
                Some((at_ms, _)) if *at_ms <= now_ms => {
                    let (_, key) = self.by_deadline.pop_first().expect("checked");
                    self.armed.remove(&key);
                    due.push(key);
                }
                _ => break,
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}

/// What a partition's timer entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// The leader state machine's tick: ISR lag, AlterPartition retry, acks=all
    /// deadlines.
    Leader,
    /// The log's housekeeping: roll, retention, flush, producer expiry, compaction.
    Log,
}

/// A partition's timer entry: topic, partition index, kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    pub topic: Arc<str>,
    pub partition: i32,
    pub kind: TimerKind,
}

/// The broker's timers, shared by the partitions that arm them and the task that
/// fires them.
#[derive(Debug, Default)]
pub struct BrokerTimers {
    queue: Mutex<Timers<TimerKey>>,
    /// Wakes the timer task when a deadline earlier than the one it sleeps for was
    /// armed.
    pub(super) earlier: Notify,
}

impl BrokerTimers {
    pub fn arm(&self, key: TimerKey, at_ms: i64) {
        let mut queue = self.queue.lock();
        let before = queue.next_deadline_ms();
        if queue.arm(key, at_ms) && before.is_none_or(|b| at_ms < b) {
            drop(queue);
            self.earlier.notify_one();
        }
    }

    pub fn disarm(&self, key: &TimerKey) {
        self.queue.lock().disarm(key);
    }

    pub fn pop_due(&self, now_ms: i64, max: usize) -> Vec<TimerKey> {
        self.queue.lock().pop_due(now_ms, max)
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.queue.lock().next_deadline_ms()
    }

    /// Entries armed (one per partition and kind with something pending).
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }
}

/// A partition's side of the broker's timers: where to arm, and the deadline of
/// each kind it last armed, so arming a deadline that is not earlier costs a load
/// and a compare, with no lock taken.
#[derive(Debug)]
pub struct PartitionTimer {
    attached: OnceLock<Attached>,
    leader_armed_ms: AtomicI64,
    log_armed_ms: AtomicI64,
}

#[derive(Debug)]
struct Attached {
    timers: Arc<BrokerTimers>,
    topic: Arc<str>,
    partition: i32,
    /// The least time between two housekeeping visits of the log
    /// (`log.retention.check.interval.ms`).
    log_check_ms: i64,
}

impl Default for PartitionTimer {
    fn default() -> Self {
        PartitionTimer {
            attached: OnceLock::new(),
            leader_armed_ms: AtomicI64::new(i64::MAX),
            log_armed_ms: AtomicI64::new(i64::MAX),
        }
    }
}

impl PartitionTimer {
    /// Arm on `timers` from now on, with nothing armed yet. A partition never
    /// attached (tests driving it directly) arms nothing.
    pub fn attach(
        &self,
        timers: Arc<BrokerTimers>,
        topic: &str,
        partition: i32,
        log_check_ms: i64,
    ) {
        let _ = self.attached.set(Attached {
            timers,
            topic: Arc::from(topic),
            partition,
            log_check_ms,
        });
        // Attached again (an offline replica served again): entries that came due
        // while it was not listed were popped by the timer task, which found no
        // partition to visit. Their deadlines are forgotten here, or no deadline at
        // or after them could ever be armed again.
        self.leader_armed_ms.store(i64::MAX, Ordering::Release);
        self.log_armed_ms.store(i64::MAX, Ordering::Release);
    }

    fn armed(&self, kind: TimerKind) -> &AtomicI64 {
        match kind {
            TimerKind::Leader => &self.leader_armed_ms,
            TimerKind::Log => &self.log_armed_ms,
        }
    }

    /// Ask for attention of `kind` at `at_ms` (monotonic) unless already asked for
    /// at or before then.
    pub fn arm(&self, kind: TimerKind, at_ms: Option<i64>) {
        let (Some(at_ms), Some(a)) = (at_ms, self.attached.get()) else {
            return;
        };
        let armed = self.armed(kind);
        if at_ms >= armed.load(Ordering::Acquire) {
            return;
        }
        armed.fetch_min(at_ms, Ordering::AcqRel);
        a.timers.arm(
            TimerKey {
                topic: a.topic.clone(),
                partition: a.partition,
                kind,
            },
            at_ms,
        );
    }

    /// The entry of `kind` fired: whatever is armed next is armed anew.
    pub fn fired(&self, kind: TimerKind) {
        self.armed(kind).store(i64::MAX, Ordering::Release);
    }

    /// Records were appended: make sure the log's housekeeping looks at it within
    /// `log.retention.check.interval.ms` (it then arms its exact next deadline).
    ///
    /// Whatever the last visit armed does not stand in for this: it armed what was
    /// due without an append (a segment.ms roll or a retention.ms deletion days
    /// away), while an append can make work due at once (retention.bytes exceeded,
    /// a first record for segment.ms or flush.ms, a new producer to expire). So a
    /// later entry is moved to one interval from now; an entry already armed within
    /// it costs a load and a compare, no lock, and a log appended to without pause
    /// is visited once per interval, as Kafka visits every log.
    pub fn log_appended(&self, now_ms: i64) {
        if let Some(a) = self.attached.get() {
            self.arm(TimerKind::Log, Some(now_ms.saturating_add(a.log_check_ms)));
        }
    }

    /// Arm the log's next housekeeping, `due_ms` (monotonic), but not sooner than one
    /// check interval after `now_ms` (Kafka visits logs at that period; a deadline
    /// blocked by the high watermark is not retried in a loop).
    pub fn arm_log(&self, now_ms: i64, due_ms: Option<i64>) {
        let Some(a) = self.attached.get() else {
            return;
        };
        let earliest = now_ms.saturating_add(a.log_check_ms);
        self.arm(TimerKind::Log, due_ms.map(|d| d.max(earliest)));
    }

    /// Look at the log now (opened with data, or its configuration changed).
    pub fn arm_log_now(&self, now_ms: i64) {
        self.arm(TimerKind::Log, Some(now_ms));
    }
}

#[cfg(test)]
#[path = "timers_tests.rs"]
mod tests;
