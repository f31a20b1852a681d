//! Idempotent producer state: the last sequence ranges per producer id.
//!
//! A pure state machine (no I/O): the log asks [`ProducerStateManager::check_leader_append`]
//! before writing a client batch and reports every written or replayed batch with
//! [`ProducerStateManager::record_batch`]. Rules follow KIP-98 (and KIP-360 for epoch
//! bumps): per producer id the current epoch and the metadata of the last
//! [`BATCHES_RETAINED`] batches, so a retry of any in-flight batch (clients keep at most
//! five in flight) is recognised and answered with its original offsets.
//!
//! Entries expire as in Kafka (`producer.id.expiration.ms`): a producer whose last batch
//! is older than the expiration is forgotten by [`ProducerStateManager::expire`], so
//! the state of a partition does not grow with every producer it ever saw. A producer
//! with an open transaction never expires: its transaction holds the last stable offset.
//!
//! Transactions (KIP-98): a producer's first transactional batch opens its transaction
//! at that batch's first offset; the commit or abort marker the coordinator has the
//! leader write ends it ([`ProducerStateManager::record_marker`]). The last stable
//! offset is the first offset of the oldest transaction that is still open, or whose
//! marker the high watermark has not passed yet (Kafka's unreplicated transactions: a
//! read_committed consumer must not see a transaction's outcome before it is replicated),
//! and never above the high watermark.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::log::batch::increment_sequence;
use crate::log::txn::{CompletedTxn, EndTxnMarker};
use crate::log::AppendError;

/// Batches remembered per producer (Kafka's max.in.flight.requests.per.connection bound).
pub const BATCHES_RETAINED: usize = 5;

/// What the log remembers of one written batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (LogAppendTime when the topic stamps it).
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_epoch: i16,
    /// Oldest first, at most [`BATCHES_RETAINED`].
    pub batches: VecDeque<BatchMetadata>,
    /// The first offset of the producer's open transaction.
    pub txn_first_offset: Option<i64>,
    /// The coordinator epoch of the last marker written for this producer (-1: none);
    /// a marker from an older coordinator is fenced.
    pub coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(producer_epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_epoch,
            batches: VecDeque::with_capacity(BATCHES_RETAINED),
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }

    /// A newer epoch restarts the sequences (KIP-360): the old batches are forgotten.
    fn bump_epoch(&mut self, producer_epoch: i16) {
        if producer_epoch > self.producer_epoch {
            self.producer_epoch = producer_epoch;
            self.batches.clear();
        }
    }
}

/// A transaction the last stable offset waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnState {
    pub producer_id: i64,
    /// The offset of its marker once written; it stays unstable until the high
    /// watermark passes the marker.
    pub marker_offset: Option<i64>,
}

/// Why a transaction marker was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerRefusal {
    /// INVALID_PRODUCER_EPOCH: the marker names an epoch older than the producer's.
    #[error("producer {producer_id}: marker epoch {got} is older than {current}")]
    ProducerEpoch {
        producer_id: i64,
        got: i16,
        current: i16,
    },
    /// TRANSACTION_COORDINATOR_FENCED: a newer coordinator already wrote a marker.
    #[error("producer {producer_id}: coordinator epoch {got} is older than {current}")]
    CoordinatorEpoch {
        producer_id: i64,
        got: i32,
        current: i32,
    },
}

/// What to do with a client batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderCheck {
    /// In sequence (or the producer is unknown): write it.
    Append,
    /// A retry of a batch already in the log: answer with its metadata, write nothing.
    Duplicate(BatchMetadata),
}

/// Why a snapshot could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("producer snapshot: {0}")]
    Invalid(String),
}

/// Producer id → epoch and recent batches, for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
    /// First offset → the transaction starting there, open or not yet replicated.
    txns: BTreeMap<i64, TxnState>,
}

/// `next` follows `last` (sequences wrap from i32::MAX to 0).
fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer remembered, by id (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Decide a client (leader) append of an idempotent batch.
    pub fn check_leader_append(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<LeaderCheck, AppendError> {
        // An unknown producer (new, or its batches left the log) may start anywhere.
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(LeaderCheck::Append);
        };
        if producer_epoch < entry.producer_epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id,
                got: producer_epoch,
                current: entry.producer_epoch,
            });
        }
        if producer_epoch > entry.producer_epoch {
            // A bumped epoch (KIP-360) restarts the sequence at 0.
            if first_seq != 0 {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                });
            }
            return Ok(LeaderCheck::Append);
        }
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(LeaderCheck::Duplicate(*original));
        }
        let expected = match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, first_seq) => {
                increment_sequence(last.last_seq, 1)
            }
            None if first_seq != 0 => 0,
            _ => return Ok(LeaderCheck::Append),
        };
        Err(AppendError::OutOfOrderSequence {
            producer_id,
            expected,
            got: first_seq,
        })
    }

    /// Remember a batch that is now in the log (leader append, follower append or
    /// replay during recovery). Batches arrive in log order. A `transactional` batch
    /// opens the producer's transaction unless one is open.
    pub fn record_batch(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        batch: BatchMetadata,
        transactional: bool,
    ) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(producer_epoch));
        if producer_epoch < entry.producer_epoch {
            // Only a replicated or replayed log can carry this (a zombie's batch that a
            // former leader accepted); it must not lower the fence.
            tracing::warn!(
                producer_id,
                producer_epoch,
                current = entry.producer_epoch,
                "batch with an older producer epoch in the log"
            );
            return;
        }
        entry.bump_epoch(producer_epoch);
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        debug_assert!(entry.batches.len() <= BATCHES_RETAINED);
        if transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.first_offset);
            self.txns.insert(
                batch.first_offset,
                TxnState {
                    producer_id,
                    marker_offset: None,
                },
            );
        }
    }

    /// Decide a marker the leader is asked to write (WriteTxnMarkers), as Kafka's
    /// `ProducerAppendInfo.appendEndTxnMarker` does for the coordinator: an older
    /// producer epoch or an older coordinator epoch is fenced. A marker for a producer
    /// without an open transaction (or unknown here) is written all the same: the
    /// coordinator retries markers, and the partition may never have seen the data.
    pub fn check_marker(&self, marker: &EndTxnMarker) -> Result<(), MarkerRefusal> {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return Ok(());
        };
        if marker.producer_epoch < entry.producer_epoch {
            return Err(MarkerRefusal::ProducerEpoch {
                producer_id: marker.producer_id,
                got: marker.producer_epoch,
                current: entry.producer_epoch,
            });
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(MarkerRefusal::CoordinatorEpoch {
                producer_id: marker.producer_id,
                got: marker.coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Remember a marker now in the log at `offset` (leader, follower or replay): the
    /// producer's transaction ends there. Returns the transaction it ended, if one was
    /// open. Replicated markers are applied whatever their epochs (the leader decided).
    pub fn record_marker(&mut self, marker: &EndTxnMarker, offset: i64) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(marker.producer_id)
            .or_insert_with(|| ProducerEntry::new(marker.producer_epoch));
        entry.bump_epoch(marker.producer_epoch);
        entry.coordinator_epoch = entry.coordinator_epoch.max(marker.coordinator_epoch);
        let first_offset = entry.txn_first_offset.take()?;
        if let Some(txn) = self.txns.get_mut(&first_offset) {
            txn.marker_offset = Some(offset);
        }
        Some(CompletedTxn {
            producer_id: marker.producer_id,
            first_offset,
            last_offset: offset,
            aborted: !marker.commit,
        })
    }

    /// The first offset of the oldest transaction a read_committed reader must not
    /// pass with the high watermark at `high_watermark`: one still open, or ended by a
    /// marker the high watermark has not passed. `None` when there is none.
    pub fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        self.txns
            .iter()
            .find(|(_, t)| t.marker_offset.is_none_or(|m| m >= high_watermark))
            .map(|(first, _)| *first)
    }

    /// Forget transactions whose marker is below the high watermark: they are stable
    /// on every in-sync replica. Keeps [`Self::first_unstable_offset`] cheap.
    pub fn retire_transactions(&mut self, high_watermark: i64) {
        self.txns
            .retain(|_, t| t.marker_offset.is_none_or(|m| m >= high_watermark));
    }

    /// The open transactions: (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.txns
            .iter()
            .filter(|(_, t)| t.marker_offset.is_none())
            .map(|(first, t)| (t.producer_id, *first))
    }

    /// Forget producers whose last batch's timestamp is more than `expiration_ms` before
    /// `now_ms` (Kafka compares the batch's max timestamp the same way). A forgotten
    /// producer that comes back is treated as new: it may start at any sequence.
    /// Returns how many were removed.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let cutoff_ms = now_ms.saturating_sub(expiration_ms);
        self.producers.retain(|_, entry| {
            entry.txn_first_offset.is_some()
                || entry
                    .batches
                    .back()
                    .is_some_and(|last| last.timestamp_ms >= cutoff_ms)
        });
        before - self.producers.len()
    }

    /// The oldest last-batch timestamp among the producers: the first to expire.
    pub fn earliest_last_timestamp_ms(&self) -> Option<i64> {
        self.producers
            .values()
            .filter(|e| e.txn_first_offset.is_none())
            .filter_map(|e| e.batches.back().map(|b| b.timestamp_ms))
            .min()
    }

    /// Producer id → last offset of its last batch (the cleaner keeps that batch, even
    /// emptied, so the producer's sequence state survives a reload).
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, e)| Some((*id, e.batches.back()?.last_offset)))
            .collect()
    }

    /// Encode for a `.snapshot` file. Format (big-endian), version 2:
    /// `version u16, crc32c u32 (of everything after it), count u32`, then per producer
    /// `id i64, epoch i16, coordinator_epoch i32, txn_first_offset i64 (-1: no open
    /// transaction), n u8` and n times `first_seq i32, last_seq i32, first_offset i64,
    /// last_offset i64, timestamp i64`. Version 1 (no transaction fields) is still read.
    /// Transactions already ended are not kept: the high watermark is not known on the
    /// next open, and their markers are in the log.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * 50);
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, entry) in &self.producers {
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.producer_epoch.to_be_bytes());
            body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp_ms.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decode a snapshot; every count is checked against the bytes present.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { b: bytes, pos: 0 };
        let version = r.u16()?;
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_1 {
            return Err(SnapshotError::Invalid(format!("unknown version {version}")));
        }
        let crc = r.u32()?;
        let body = &bytes[r.pos..];
        if crc32c::crc32c(body) != crc {
            return Err(SnapshotError::Invalid("CRC mismatch".into()));
        }
        let count = r.u32()? as usize;
        const MIN_ENTRY_BYTES: usize = 11;
        if count > r.remaining() / MIN_ENTRY_BYTES {
            return Err(SnapshotError::Invalid(format!(
                "{count} producers in {} bytes",
                bytes.len()
            )));
        }
        let mut state = ProducerStateManager::new();
        for _ in 0..count {
            let id = r.u64()? as i64;
            let producer_epoch = r.u16()? as i16;
            let (coordinator_epoch, txn_first_offset) = if version == SNAPSHOT_VERSION_1 {
                (-1, None)
            } else {
                let coordinator_epoch = r.u32()? as i32;
                let first = r.u64()? as i64;
                if first < -1 {
                    return Err(SnapshotError::Invalid(format!(
                        "producer {id}: transaction first offset {first}"
                    )));
                }
                (coordinator_epoch, (first >= 0).then_some(first))
            };
            let n = r.u8()? as usize;
            if n > BATCHES_RETAINED {
                return Err(SnapshotError::Invalid(format!(
                    "producer {id} has {n} batches"
                )));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    first_offset: r.u64()? as i64,
                    last_offset: r.u64()? as i64,
                    timestamp_ms: r.u64()? as i64,
                });
            }
            if let Some(first) = txn_first_offset {
                let txn = TxnState {
                    producer_id: id,
                    marker_offset: None,
                };
                if state.txns.insert(first, txn).is_some() {
                    return Err(SnapshotError::Invalid(format!(
                        "two open transactions start at offset {first}"
                    )));
                }
            }
            let previous = state.producers.insert(
                id,
                ProducerEntry {
                    producer_epoch,
                    batches,
                    txn_first_offset,
                    coordinator_epoch,
                },
            );
            if previous.is_some() {
                return Err(SnapshotError::Invalid(format!("producer {id} twice")));
            }
        }
        if r.remaining() != 0 {
            return Err(SnapshotError::Invalid(format!(
                "{} trailing bytes",
                r.remaining()
            )));
        }
        Ok(state)
    }
}

const SNAPSHOT_VERSION: u16 = 2;
/// Written before transactions were kept: no coordinator epoch, no open transaction.
const SNAPSHOT_VERSION_1: u16 = 1;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let s = self
            .b
            .get(self.pos..self.pos + N)
            .ok_or_else(|| SnapshotError::Invalid(format!("truncated at byte {}", self.pos)))?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            last_offset: first_offset + i64::from(last_seq - first_seq),
            timestamp_ms: 100,
        }
    }

    #[test]
    fn unknown_producer_may_start_anywhere() {
        let s = ProducerStateManager::new();
        assert_eq!(
            s.check_leader_append(1, 0, 17, 20).unwrap(),
            LeaderCheck::Append
        );
    }

    #[test]
    fn duplicate_of_any_of_the_last_five_batches_returns_the_original() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.record_batch(1, 0, meta(i * 2, i * 2 + 1, i64::from(i) * 2 + 100), false);
        }
        // Batches 2..=6 are retained.
        assert_eq!(
            s.check_leader_append(1, 0, 4, 5).unwrap(),
            LeaderCheck::Duplicate(meta(4, 5, 104))
        );
        assert_eq!(
            s.check_leader_append(1, 0, 12, 13).unwrap(),
            LeaderCheck::Duplicate(meta(12, 13, 112))
        );
        // Batch 1 fell out of the window: neither duplicate nor in sequence.
        assert!(matches!(
            s.check_leader_append(1, 0, 2, 3),
            Err(AppendError::OutOfOrderSequence {
                expected: 14,
                got: 2,
                ..
            })
        ));
        assert_eq!(
            s.check_leader_append(1, 0, 14, 20).unwrap(),
            LeaderCheck::Append
        );
    }

    #[test]
    fn gap_is_out_of_order() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 0, meta(0, 4, 0), false);
        assert!(matches!(
            s.check_leader_append(1, 0, 6, 6),
            Err(AppendError::OutOfOrderSequence {
                producer_id: 1,
                expected: 5,
                got: 6
            })
        ));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 3, meta(0, 4, 0), false);
        assert!(matches!(
            s.check_leader_append(1, 2, 5, 5),
            Err(AppendError::InvalidProducerEpoch {
                got: 2,
                current: 3,
                ..
            })
        ));
        assert!(matches!(
            s.check_leader_append(1, 4, 5, 5),
            Err(AppendError::OutOfOrderSequence {
                expected: 0,
                got: 5,
                ..
            })
        ));
        assert_eq!(
            s.check_leader_append(1, 4, 0, 2).unwrap(),
            LeaderCheck::Append
        );
        s.record_batch(1, 4, meta(0, 2, 5), false);
        assert_eq!(s.entry(1).unwrap().batches.len(), 1);
        // A replayed batch of the old epoch does not lower the fence.
        s.record_batch(1, 3, meta(5, 5, 8), false);
        assert_eq!(s.entry(1).unwrap().producer_epoch, 4);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 0, meta(i32::MAX - 1, i32::MAX, 0), false);
        assert_eq!(
            s.check_leader_append(1, 0, 0, 3).unwrap(),
            LeaderCheck::Append
        );
    }

    #[test]
    fn producers_idle_past_the_expiration_are_forgotten() {
        let mut s = ProducerStateManager::new();
        let at = |first_seq, offset, timestamp_ms| BatchMetadata {
            timestamp_ms,
            ..meta(first_seq, first_seq, offset)
        };
        s.record_batch(1, 0, at(0, 0, 1_000), false);
        s.record_batch(2, 0, at(0, 1, 1_000), false);
        s.record_batch(2, 0, at(1, 2, 5_000), false);
        // Producer 1's last batch is 1000 ms old at 2000: kept at expiration 1000.
        assert_eq!(s.expire(2_000, 1_000), 0);
        assert_eq!(s.expire(2_001, 1_000), 1);
        assert!(s.entry(1).is_none());
        // Producer 2 is judged by its last batch, not its first.
        assert!(s.entry(2).is_some());
        assert_eq!(s.last_batch_offsets(), HashMap::from([(2, 2)]));
        // A forgotten producer may start again anywhere, as a new one.
        assert_eq!(
            s.check_leader_append(1, 0, 40, 41).unwrap(),
            LeaderCheck::Append
        );
        assert_eq!(s.expire(6_001, 1_000), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn snapshot_round_trip_and_rejects_damage() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 0, meta(0, 4, 0), false);
        s.record_batch(9, 2, meta(7, 9, 5), false);
        let bytes = s.encode_snapshot();
        assert_eq!(ProducerStateManager::decode_snapshot(&bytes).unwrap(), s);
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&bad).is_err());
        assert!(ProducerStateManager::decode_snapshot(&bytes[..bytes.len() - 3]).is_err());
        // A count claiming billions of producers allocates nothing.
        let mut huge = vec![0, 1];
        let body = u32::MAX.to_be_bytes();
        huge.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        huge.extend_from_slice(&body);
        assert!(ProducerStateManager::decode_snapshot(&huge).is_err());
    }

    fn txn_marker(producer_id: i64, producer_epoch: i16, coordinator_epoch: i32) -> EndTxnMarker {
        EndTxnMarker {
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit: true,
        }
    }

    #[test]
    fn snapshot_round_trip_keeps_open_transactions() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 0, meta(0, 0, 10), true);
        s.record_batch(2, 3, meta(0, 1, 11), true);
        s.record_marker(&txn_marker(2, 3, 7), 13);
        s.record_batch(3, 0, meta(0, 0, 14), true);
        s.retire_transactions(14);
        let decoded = ProducerStateManager::decode_snapshot(&s.encode_snapshot()).unwrap();
        assert_eq!(decoded, s);
        assert_eq!(decoded.first_unstable_offset(20), Some(10));
        assert_eq!(
            decoded.open_transactions().collect::<Vec<_>>(),
            vec![(1, 10), (3, 14)]
        );
        assert_eq!(decoded.entry(2).unwrap().coordinator_epoch, 7);
        assert!(decoded.check_marker(&txn_marker(2, 3, 6)).is_err());

        // Two producers claiming one transaction start are refused.
        let mut twice = ProducerStateManager::new();
        twice.record_batch(1, 0, meta(0, 0, 10), true);
        let mut bytes = twice.encode_snapshot();
        // The count is at bytes 6..10, the one producer's entry after it.
        let entry = bytes[10..].to_vec();
        bytes[9] = 2;
        let mut second = entry.clone();
        second[7] = 2; // producer id 2
        bytes.extend_from_slice(&second);
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStateManager::decode_snapshot(&bytes).is_err());

        // A version 1 snapshot (before transactions) is still read.
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.push(0);
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        v1.extend_from_slice(&body);
        let old = ProducerStateManager::decode_snapshot(&v1).unwrap();
        assert_eq!(old.entry(5).unwrap().producer_epoch, 2);
        assert_eq!(old.open_transactions().count(), 0);
    }

    #[test]
    fn a_producer_with_an_open_transaction_never_expires() {
        let mut s = ProducerStateManager::new();
        s.record_batch(1, 0, meta(0, 0, 0), true);
        s.record_batch(2, 0, meta(0, 0, 1), false);
        assert_eq!(s.expire(1_000_000, 1_000), 1);
        assert!(s.entry(1).is_some());
        assert_eq!(s.earliest_last_timestamp_ms(), None);
        s.record_marker(&txn_marker(1, 0, 0), 2);
        assert_eq!(s.expire(1_000_000, 1_000), 1);
        assert!(s.is_empty());
    }
}
