//! Decide: pure functions over records and the offset map, with no file or lock in
//! sight. Which record survives, what a batch becomes, how small cleaned segments
//! are grouped: the rules a test can drive record by record.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::log::segment::MAX_RELATIVE_OFFSET;
use crate::log::txn_index::AbortedTxn;

/// What one map entry costs beyond its key bytes (hash table slot, box, offset).
pub(super) const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;

/// The latest offset of every key in the dirty section, within a memory budget.
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    max_bytes: usize,
}

impl OffsetMap {
    pub fn new(max_bytes: usize) -> Self {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether `keys` more keys of `key_bytes` in total surely fit.
    pub(super) fn has_room_for(&self, keys: usize, key_bytes: usize) -> bool {
        let needed = key_bytes.saturating_add(keys.saturating_mul(OFFSET_MAP_ENTRY_OVERHEAD_BYTES));
        self.bytes.saturating_add(needed) <= self.max_bytes
    }

    /// Records arrive in offset order, so the last put of a key is its latest offset.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
        } else {
            self.bytes += key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
            self.latest.insert(key.into(), offset);
        }
    }
}

/// What the cleaner needs to know of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// A null value: a delete marker for the key.
    pub tombstone: bool,
}

/// What the cleaner needs to know of the batch holding the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFacts {
    /// Set by an earlier cleaning (KIP-534).
    pub delete_horizon_ms: Option<i64>,
    /// The last batch in the log of an idempotent producer still known to the log.
    pub producers_last_batch: bool,
}

/// What becomes of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDecision {
    /// Nothing changes: copy the batch byte for byte.
    KeepOriginal,
    /// Write a new batch with the records whose `keep` is true; when
    /// `set_delete_horizon`, its retained tombstones start their delete.retention.ms.
    Rewrite {
        keep: Vec<bool>,
        set_delete_horizon: bool,
    },
    /// Every record goes, but the producer's sequence state needs the header.
    KeepEmpty,
    Drop,
}

/// Kafka's rule for one record: a record survives unless it has no key, a later record
/// of its key is in the map (`latest_offset`), or it is a tombstone whose horizon has
/// passed.
pub fn keep_record(
    record: &RecordFacts<'_>,
    latest_offset: Option<i64>,
    tombstones_expired: bool,
) -> bool {
    if record.key.is_none() {
        // A compacted topic refuses keyless records at produce time; older ones (from
        // before the policy changed) cannot be compacted by key and go, as in Kafka.
        return false;
    }
    if latest_offset.is_some_and(|latest| record.offset < latest) {
        return false;
    }
    !(record.tombstone && tombstones_expired)
}

/// Decide one batch, given its records in offset order and the latest offset per key.
pub fn decide_batch(
    records: &[RecordFacts<'_>],
    latest_offset: impl Fn(&[u8]) -> Option<i64>,
    batch: BatchFacts,
    now_ms: i64,
) -> BatchDecision {
    let tombstones_expired = batch.delete_horizon_ms.is_some_and(|h| now_ms >= h);
    let keep: Vec<bool> = records
        .iter()
        .map(|r| keep_record(r, r.key.and_then(&latest_offset), tombstones_expired))
        .collect();
    let kept = keep.iter().filter(|k| **k).count();
    if kept == 0 {
        return if batch.producers_last_batch {
            if records.is_empty() {
                BatchDecision::KeepOriginal
            } else {
                BatchDecision::KeepEmpty
            }
        } else {
            BatchDecision::Drop
        };
    }
    let keeps_tombstone = records.iter().zip(&keep).any(|(r, k)| *k && r.tombstone);
    let set_delete_horizon = keeps_tombstone && batch.delete_horizon_ms.is_none();
    if kept == records.len() && !set_delete_horizon {
        BatchDecision::KeepOriginal
    } else {
        BatchDecision::Rewrite {
            keep,
            set_delete_horizon,
        }
    }
}

/// Kafka's groupSegmentsBySize: consecutive segments whose total size fits in
/// `max_bytes` and whose offsets fit the index's 32-bit relative offsets become one
/// cleaned segment. Returns the number of segments in each group.
pub fn group_by_size(segments: &[(i64, i64, u64)], max_bytes: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let (group_base, _, first_size) = segments[i];
        let mut total = first_size;
        let mut n = 1;
        while let Some(&(base, next_offset, size)) = segments.get(i + n) {
            let last_offset = next_offset.max(base + 1) - 1;
            if total.saturating_add(size) > max_bytes
                || last_offset - group_base > MAX_RELATIVE_OFFSET
            {
                break;
            }
            total += size;
            n += 1;
        }
        groups.push(n);
        i += n;
    }
    groups
}

/// Transactions while the cleaner walks the log in offset order (Kafka's
/// `CleanedTransactionMetadata`): which transactional batches belong to an aborted
/// transaction (removed whole: a read_committed reader never sees them anyway), and
/// which markers may go. A marker stays while the cleaning found data of its
/// transaction (its readers need it); one whose transaction has no data left may go
/// once delete.retention.ms passed, as a tombstone does. Batches of open transactions
/// never reach the cleaner: it stops at the last stable offset.
#[derive(Debug, Default)]
pub struct TxnCleaning {
    /// Aborted transactions not yet reached, by first offset.
    upcoming: VecDeque<AbortedTxn>,
    /// Producer → its aborted transaction being walked, and whether data of it was
    /// seen.
    aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers whose committed (not aborted) transactional data was seen.
    committed: HashSet<i64>,
}

/// What becomes of a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerFate {
    /// No data of its transaction was found: it may go after delete.retention.ms.
    pub removable: bool,
    /// The aborted transaction it ends, for the cleaned segment's index.
    pub aborted: Option<AbortedTxn>,
}

impl TxnCleaning {
    /// `aborted`: the aborted transactions overlapping the range to clean.
    pub fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|t| t.first_offset);
        TxnCleaning {
            upcoming: aborted.into(),
            ..TxnCleaning::default()
        }
    }

    fn reach(&mut self, offset: i64) {
        while self
            .upcoming
            .front()
            .is_some_and(|t| t.first_offset <= offset)
        {
            let txn = self.upcoming.pop_front().expect("checked above");
            self.aborted.insert(txn.producer_id, (txn, false));
        }
    }

    /// A data batch of `producer_id` ending at `last_offset`: true when it belongs to
    /// an aborted transaction.
    pub fn on_data_batch(
        &mut self,
        producer_id: i64,
        last_offset: i64,
        transactional: bool,
    ) -> bool {
        self.reach(last_offset);
        if !transactional {
            return false;
        }
        match self.aborted.get_mut(&producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.committed.insert(producer_id);
                false
            }
        }
    }

    /// The marker at `offset` ending `producer_id`'s transaction.
    pub fn on_marker(&mut self, producer_id: i64, offset: i64, commit: bool) -> MarkerFate {
        self.reach(offset);
        if commit {
            return MarkerFate {
                removable: !self.committed.remove(&producer_id),
                aborted: None,
            };
        }
        match self.aborted.remove(&producer_id) {
            Some((txn, seen)) => MarkerFate {
                removable: !seen,
                aborted: Some(txn),
            },
            None => MarkerFate {
                removable: true,
                aborted: None,
            },
        }
    }
}
