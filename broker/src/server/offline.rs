//! Replicas this broker hosts but cannot serve: logs that could not be opened (file
//! handles or space exhausted, I/O errors, damage found when opening) and logs found
//! damaged while open (the scrub).
//!
//! Each one is reported to the controller, which takes it out of the ISR and moves its
//! leadership (`Controller::replica_storage`); requests for it here are answered
//! KAFKA_STORAGE_ERROR; and it is tried again with backoff. A cause that may go away
//! (an I/O error) is retried by opening the log again. Damage is real: the log is cut
//! at the damage and the rest fetched back from the leader, but only once the
//! controller has it out of the ISR and another ISR member holds the data; with no
//! other copy, the replica stays offline, untouched, for an operator. Back in service,
//! the replica is reported online and rejoins the ISR by catching up.
//!
//! [`next_step`] decides; the broker carries the steps out (`Broker::retry_offline`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;

use super::partition::Partition;
use crate::backoff::Backoff;
use crate::log::Damage;
use crate::metadata::image::PartitionState;

/// First retry after this long; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why a replica is offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Opening or writing failed with an error that may go away (open files, space,
    /// I/O errors).
    Unavailable(String),
    /// The data is not what was written.
    Damaged(Damage),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Unavailable(e) => write!(f, "{e}"),
            Cause::Damaged(d) => write!(
                f,
                "{} is damaged at byte {}: {}",
                d.path.display(),
                d.position,
                d.reason
            ),
        }
    }
}

/// What to do next with an offline replica, given what the metadata image says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The topic is gone or this broker no longer holds a replica: forget it.
    Forget,
    /// The controller does not have it offline yet: report it (again).
    Report,
    /// Open the log again: the cause may have gone away.
    Reopen,
    /// Damaged, out of the ISR, and another ISR member holds the data: cut the log at
    /// the damage and fetch the rest from the leader.
    Repair,
    /// Damaged, and no other replica holds the data: stay offline, untouched.
    Hold,
}

/// The one decision: see the module docs.
pub fn next_step(cause: &Cause, state: Option<&PartitionState>, me: i32) -> Step {
    let Some(state) = state.filter(|s| s.is_replica(me)) else {
        return Step::Forget;
    };
    if !state.offline_replicas.contains(&me) {
        return Step::Report;
    }
    match cause {
        Cause::Unavailable(_) => Step::Reopen,
        Cause::Damaged(_) if state.isr.iter().any(|&b| b != me) && !state.isr.contains(&me) => {
            Step::Repair
        }
        Cause::Damaged(_) => Step::Hold,
    }
}

/// One offline replica.
pub struct OfflineReplica {
    pub topic_id: Uuid,
    pub cause: Cause,
    /// The open log the scrub found damaged; `None` when the log could not be opened.
    pub open: Option<Arc<Partition>>,
    pub next_try_ms: i64,
    backoff: Backoff,
    /// `Hold` has been logged.
    pub held: bool,
}

/// An offline replica whose next try is due.
pub struct Due {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    pub cause: Cause,
    pub open: Option<Arc<Partition>>,
}

/// The offline replicas of this broker, by topic name and partition.
#[derive(Default)]
pub struct OfflineReplicas {
    replicas: Mutex<BTreeMap<(String, i32), OfflineReplica>>,
    /// Replicas served here that the controller may still have offline: reported
    /// online until the image says so.
    back_online: Mutex<BTreeSet<(String, i32)>>,
}

impl OfflineReplicas {
    /// Record `topic`/`index` offline (or a new cause for it); first retry soon.
    pub fn insert(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        cause: Cause,
        open: Option<Arc<Partition>>,
        now_ms: i64,
    ) {
        self.replicas.lock().insert(
            (topic.to_string(), index),
            OfflineReplica {
                topic_id,
                cause,
                open,
                next_try_ms: now_ms,
                backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
                held: false,
            },
        );
    }

    /// `topic`/`index` is served here; report it online until the image has it so.
    pub fn served_again(&self, topic: &str, index: i32) {
        self.back_online.lock().insert((topic.to_string(), index));
    }

    /// Replicas to report online.
    pub fn to_report_online(&self) -> Vec<(String, i32)> {
        self.back_online.lock().iter().cloned().collect()
    }

    /// The image no longer has `topic`/`index` offline (or it is gone).
    pub fn reported_online(&self, topic: &str, index: i32) {
        self.back_online.lock().remove(&(topic.to_string(), index));
    }

    /// Why `topic`/`index` is offline here, if it is.
    pub fn cause(&self, topic: &str, index: i32) -> Option<Cause> {
        self.replicas
            .lock()
            .get(&(topic.to_string(), index))
            .map(|r| r.cause.clone())
    }

    /// The topic id of `topic`/`index` when it is offline here.
    pub fn topic_id(&self, topic: &str, index: i32) -> Option<Uuid> {
        self.replicas
            .lock()
            .get(&(topic.to_string(), index))
            .map(|r| r.topic_id)
    }

    pub fn contains(&self, topic: &str, index: i32) -> bool {
        self.replicas
            .lock()
            .contains_key(&(topic.to_string(), index))
    }

    pub fn remove(&self, topic: &str, index: i32) -> Option<OfflineReplica> {
        self.replicas.lock().remove(&(topic.to_string(), index))
    }

    /// Forget every replica of `topic`.
    pub fn remove_topic(&self, topic: &str) {
        self.replicas.lock().retain(|(t, _), _| t != topic);
    }

    pub fn len(&self) -> usize {
        self.replicas.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replicas whose next try is due.
    pub fn due(&self, now_ms: i64) -> Vec<Due> {
        self.replicas
            .lock()
            .iter()
            .filter(|(_, r)| r.next_try_ms <= now_ms)
            .map(|((topic, index), r)| Due {
                topic: topic.clone(),
                index: *index,
                topic_id: r.topic_id,
                cause: r.cause.clone(),
                open: r.open.clone(),
            })
            .collect()
    }

    /// Try `topic`/`index` again later, waiting twice as long as last time.
    pub fn back_off(&self, topic: &str, index: i32, now_ms: i64) {
        if let Some(r) = self.replicas.lock().get_mut(&(topic.to_string(), index)) {
            let delay = i64::try_from(r.backoff.next_delay().as_millis()).unwrap_or(i64::MAX);
            r.next_try_ms = now_ms.saturating_add(delay);
        }
    }

    /// Mark `Hold` as said; true the first time.
    pub fn first_hold(&self, topic: &str, index: i32) -> bool {
        self.replicas
            .lock()
            .get_mut(&(topic.to_string(), index))
            .is_some_and(|r| !std::mem::replace(&mut r.held, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: &[i32], isr: &[i32], offline: &[i32]) -> PartitionState {
        PartitionState {
            partition: 0,
            leader: isr.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: offline.to_vec(),
        }
    }

    fn damaged() -> Cause {
        Cause::Damaged(Damage {
            path: "t-0/00000000000000000000.log".into(),
            position: 4096,
            reason: "CRC-32C mismatch".into(),
        })
    }

    #[test]
    fn a_replica_is_reported_until_the_controller_has_it_offline() {
        let io = Cause::Unavailable("Too many open files".into());
        for cause in [io.clone(), damaged()] {
            assert_eq!(
                next_step(&cause, Some(&state(&[1, 2, 3], &[1, 2, 3], &[])), 1),
                Step::Report
            );
        }
        assert_eq!(
            next_step(&io, Some(&state(&[1, 2, 3], &[2, 3], &[1])), 1),
            Step::Reopen
        );
    }

    #[test]
    fn damage_is_repaired_only_from_another_isr_member() {
        // Out of the ISR, two others hold the data.
        assert_eq!(
            next_step(&damaged(), Some(&state(&[1, 2, 3], &[2, 3], &[1])), 1),
            Step::Repair
        );
        // The last ISR member: nobody else has the data.
        assert_eq!(
            next_step(&damaged(), Some(&state(&[1, 2, 3], &[1], &[1])), 1),
            Step::Hold
        );
        // A single replica.
        assert_eq!(
            next_step(&damaged(), Some(&state(&[1], &[1], &[1])), 1),
            Step::Hold
        );
    }

    #[test]
    fn a_replica_that_moved_away_or_a_deleted_topic_is_forgotten() {
        assert_eq!(next_step(&damaged(), None, 1), Step::Forget);
        assert_eq!(
            next_step(&damaged(), Some(&state(&[2, 3, 4], &[2, 3, 4], &[])), 1),
            Step::Forget
        );
    }

    #[test]
    fn retries_back_off_to_a_bound() {
        let offline = OfflineReplicas::default();
        offline.insert("t", 0, Uuid::nil(), damaged(), None, 0);
        assert_eq!(offline.due(0).len(), 1);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            offline.back_off("t", 0, now);
            let next = offline.replicas.lock()[&("t".to_string(), 0)].next_try_ms;
            waits.push(next - now);
            assert!(offline.due(next - 1).is_empty());
            now = next;
        }
        assert_eq!(&waits[..4], &[500, 1_000, 2_000, 4_000]);
        assert_eq!(waits[9], RETRY_MAX.as_millis() as i64);
    }
}
