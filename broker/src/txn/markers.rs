//! What happens after the decision and with the passing of time: transaction markers
//! (sent once Prepare* is durable, retried with backoff until every partition has
//! one, then Complete* written), transaction timeouts (abort under a bumped epoch, so
//! the timed-out producer is fenced), transactional id expiry, and the deadline of the
//! next of these for the runtime's timer.

use kafka_protocol::error::ResponseError;

use super::coordinator::TxnCoordinator;
use super::state::{
    Action, MarkerOutcome, MarkerResults, MarkerSlot, MarkerWrite, Purpose, TxnResult,
};
use super::types::{TopicPartition, TxnState};

impl TxnCoordinator {
    /// The id's Prepare* record is durable (or was loaded): send a marker to every
    /// partition of the transaction; with none, complete at once.
    pub(super) fn start_markers(&mut self, id: &str, now_ms: i64, out: &mut Vec<Action>) {
        let backoff = self.config.backoff();
        let meta = self.txns.get_mut(id).expect("markers for a known id");
        meta.markers_abandoned = false;
        meta.complete_retry = None;
        meta.markers = meta
            .partitions
            .iter()
            .map(|tp| {
                let slot = MarkerSlot {
                    in_flight: true,
                    retry_at_ms: now_ms,
                    backoff,
                };
                (tp.clone(), slot)
            })
            .collect();
        if meta.markers.is_empty() {
            self.complete(id, now_ms, out);
        } else {
            let partitions = meta.partitions.iter().cloned().collect();
            out.push(self.marker_write(id, partitions));
        }
    }

    fn marker_write(&self, id: &str, partitions: Vec<TopicPartition>) -> Action {
        let meta = &self.txns[id];
        Action::WriteMarkers(MarkerWrite {
            transactional_id: id.to_string(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            result: match meta.state {
                TxnState::PrepareCommit => TxnResult::Commit,
                _ => TxnResult::Abort,
            },
            coordinator_epoch: self.coordinator_epoch,
            partitions,
        })
    }

    /// Every marker is written: persist CompleteCommit/CompleteAbort, with no partitions.
    fn complete(&mut self, id: &str, now_ms: i64, out: &mut Vec<Action>) {
        let meta = &self.txns[id];
        let mut next = meta.value();
        next.state = match meta.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.last_update_ms = now_ms;
        let last_epoch = meta.last_producer_epoch;
        out.push(self.begin(id, Some(next), last_epoch, Purpose::Complete));
    }

    /// The runtime's report on (some partitions of) one `WriteMarkers`. Every
    /// partition it was given must be reported once, a lost request as
    /// REQUEST_TIMED_OUT.
    pub fn markers_done(&mut self, results: &MarkerResults, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let id = results.transactional_id.as_str();
        let Some(meta) = self.txns.get_mut(id) else {
            return out;
        };
        // Markers of an earlier transaction or an earlier coordinator: nothing to do.
        if !matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
            || meta.producer_id != results.producer_id
            || meta.producer_epoch != results.producer_epoch
            || meta.pending.is_some()
            || meta.markers_abandoned
        {
            return out;
        }
        for (tp, outcome) in &results.partitions {
            let Some(slot) = meta.markers.get_mut(tp) else {
                continue;
            };
            match outcome {
                MarkerOutcome::Written
                | MarkerOutcome::Deleted
                // A partition that cannot hold markers cannot hold the transaction's
                // records either: nothing to mark there, as Kafka concludes.
                | MarkerOutcome::Failed(
                    ResponseError::UnsupportedForMessageFormat | ResponseError::UnsupportedVersion,
                ) => {
                    meta.markers.remove(tp);
                }
                // The partition has seen a newer coordinator or epoch for this
                // producer: this coordinator is stale and stops; the new one finishes.
                MarkerOutcome::Failed(
                    ResponseError::InvalidProducerEpoch
                    | ResponseError::TransactionCoordinatorFenced,
                ) => {
                    meta.markers_abandoned = true;
                    meta.markers.clear();
                    return out;
                }
                // A leader change, a short ISR, a timeout: the same marker again later.
                // Codes no leader should give (a corrupt or oversized marker) are
                // retried with the same backoff: the transaction must not complete
                // without its marker, and the runtime reports them loudly.
                MarkerOutcome::Failed(_) => {
                    slot.in_flight = false;
                    let delay = slot.backoff.next_delay().as_millis() as i64;
                    slot.retry_at_ms = now_ms.saturating_add(delay);
                }
            }
        }
        if meta.markers.is_empty() {
            self.complete(id, now_ms, &mut out);
        }
        out
    }

    /// Timeouts, expiry, and retries that are due.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.loaded {
            return out;
        }
        if self.reserve_retry_at.is_some_and(|at| at <= now_ms) {
            self.reserve_retry_at = None;
            self.reserving = true;
            out.push(Action::ReserveProducerIds);
        }
        let expiration_ms = self.config.transactional_id_expiration_ms;
        let ids: Vec<String> = self.txns.keys().cloned().collect();
        for id in ids {
            let meta = &self.txns[&id];
            if meta.pending.is_some() {
                continue;
            }
            match meta.state {
                // Kafka aborts once the timeout has strictly passed.
                TxnState::Ongoing
                    if meta.start_ms.saturating_add(i64::from(meta.timeout_ms)) < now_ms =>
                {
                    self.fence(&id, None, now_ms, &mut out);
                }
                s if s.is_idle() && meta.last_update_ms.saturating_add(expiration_ms) <= now_ms => {
                    let last_epoch = meta.last_producer_epoch;
                    out.push(self.begin(&id, None, last_epoch, Purpose::Expire));
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort if !meta.markers_abandoned => {
                    if meta.markers.is_empty() {
                        if meta.complete_retry.is_some_and(|(at, _)| at <= now_ms) {
                            self.complete(&id, now_ms, &mut out);
                        }
                        continue;
                    }
                    let meta = self.txns.get_mut(&id).expect("listed");
                    let due: Vec<TopicPartition> = meta
                        .markers
                        .iter_mut()
                        .filter(|(_, s)| !s.in_flight && s.retry_at_ms <= now_ms)
                        .map(|(tp, s)| {
                            s.in_flight = true;
                            tp.clone()
                        })
                        .collect();
                    if !due.is_empty() {
                        out.push(self.marker_write(&id, due));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// When `tick` next has something to do (None: nothing is waiting on time).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        if !self.loaded {
            return None;
        }
        let expiration_ms = self.config.transactional_id_expiration_ms;
        let reserve = self.reserve_retry_at;
        self.txns
            .values()
            .filter(|m| m.pending.is_none())
            .filter_map(|m| match m.state {
                TxnState::Ongoing => Some(
                    m.start_ms
                        .saturating_add(i64::from(m.timeout_ms))
                        .saturating_add(1),
                ),
                s if s.is_idle() => Some(m.last_update_ms.saturating_add(expiration_ms)),
                TxnState::PrepareCommit | TxnState::PrepareAbort if !m.markers_abandoned => {
                    let retry = m
                        .markers
                        .values()
                        .filter(|s| !s.in_flight)
                        .map(|s| s.retry_at_ms)
                        .min();
                    retry.or(m.complete_retry.map(|(at, _)| at))
                }
                _ => None,
            })
            .chain(reserve)
            .min()
    }
}
