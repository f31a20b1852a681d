//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98; member checks of
//! KIP-447). A transactional commit is written to `__consumer_offsets` in a batch of
//! the producer's id and epoch and stays *pending* for that producer until the
//! transaction's marker reaches the partition: a commit marker makes the producer's
//! pending offsets the groups' committed offsets, an abort marker drops them. As in
//! Kafka's group coordinator:
//!
//! - a pending offset becomes committed only if no later record set the partition's
//!   committed offset: "later" is log order, so a plain OffsetCommit appended after the
//!   transactional one wins even though the marker comes after both;
//! - a tombstone for a partition (OffsetDelete, group deletion, a deleted topic) drops
//!   the pending offsets of every producer for it, so a marker cannot bring back an
//!   offset deleted meanwhile;
//! - retention does not expire a partition's committed offset while a transaction
//!   holds a pending one for it, nor remove a group that has pending offsets;
//! - OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for a partition
//!   with pending offsets (the client retries until the marker).
//!
//! Positions stand in for log offsets: every offset record this coordinator applies
//! (appended live, or read back in log order at load) takes the next position, so
//! comparing positions compares log order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;

use super::records::OffsetValue;

/// (group, topic, partition).
pub(super) type OffsetKey = (String, String, i32);

/// One TxnOffsetCommit, as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// v3+ (KIP-447): the member and generation the producer's consumer belongs to;
    /// before v3 the request has none (-1, "", None) and is not checked.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub offsets: Vec<(String, i32, OffsetValue)>,
}

/// A partition's offset as OffsetFetch answers it.
pub type FetchedOffset = (String, i32, Result<Option<OffsetValue>, ResponseError>);

#[derive(Debug, Clone)]
struct Pending {
    value: OffsetValue,
    position: u64,
}

/// The transactional side of one coordinator's offsets.
#[derive(Debug, Clone, Default)]
pub(super) struct TxnOffsets {
    /// Producer id → its pending offsets.
    pending: BTreeMap<i64, BTreeMap<OffsetKey, Pending>>,
    /// Partition → the producers with a pending offset for it (never an empty set).
    open: BTreeMap<OffsetKey, BTreeSet<i64>>,
    /// Position of the record behind each committed offset.
    committed_at: HashMap<OffsetKey, u64>,
    next_position: u64,
}

fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
    (group.to_string(), topic.to_string(), partition)
}

impl TxnOffsets {
    fn next_position(&mut self) -> u64 {
        self.next_position += 1;
        self.next_position
    }

    /// A plain (non-transactional) offset record was applied.
    pub(super) fn committed(&mut self, group: &str, topic: &str, partition: i32) {
        let position = self.next_position();
        self.committed_at
            .insert(key(group, topic, partition), position);
    }

    /// A tombstone for the partition was applied: its committed offset is gone, and so
    /// are the pending offsets of every producer for it.
    pub(super) fn removed(&mut self, group: &str, topic: &str, partition: i32) {
        let k = key(group, topic, partition);
        self.committed_at.remove(&k);
        for producer in self.open.remove(&k).unwrap_or_default() {
            if let Some(offsets) = self.pending.get_mut(&producer) {
                offsets.remove(&k);
                if offsets.is_empty() {
                    self.pending.remove(&producer);
                }
            }
        }
    }

    pub(super) fn is_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.open.contains_key(&key(group, topic, partition))
    }

    /// The partitions of `group` with a pending offset.
    pub(super) fn pending_partitions(&self, group: &str) -> Vec<(String, i32)> {
        self.open
            .range((group.to_string(), String::new(), i32::MIN)..)
            .take_while(|((g, _, _), _)| g == group)
            .map(|((_, t, p), _)| (t.clone(), *p))
            .collect()
    }

    pub(super) fn group_has_pending(&self, group: &str) -> bool {
        !self.pending_partitions(group).is_empty()
    }

    /// An offset record of `producer_id`'s transactional batch was applied: pending
    /// until the transaction's marker.
    pub(super) fn add_pending(
        &mut self,
        producer_id: i64,
        group: String,
        topic: String,
        partition: i32,
        value: OffsetValue,
    ) {
        let position = self.next_position();
        let k = (group, topic, partition);
        self.open.entry(k.clone()).or_default().insert(producer_id);
        self.pending
            .entry(producer_id)
            .or_default()
            .insert(k, Pending { value, position });
    }

    /// The marker of `producer_id`'s transaction: its pending offsets, no longer
    /// pending, with the position of the record that wrote each.
    pub(super) fn take_producer(&mut self, producer_id: i64) -> Vec<(OffsetKey, OffsetValue, u64)> {
        let Some(offsets) = self.pending.remove(&producer_id) else {
            return vec![];
        };
        offsets
            .into_iter()
            .map(|(k, pending)| {
                if let Some(producers) = self.open.get_mut(&k) {
                    producers.remove(&producer_id);
                    if producers.is_empty() {
                        self.open.remove(&k);
                    }
                }
                (k, pending.value, pending.position)
            })
            .collect()
    }

    /// Whether a record after `position` set the partition's committed offset.
    pub(super) fn committed_after(&self, k: &OffsetKey, position: u64) -> bool {
        self.committed_at.get(k).is_some_and(|at| *at > position)
    }

    /// A pending offset written at `position` became the partition's committed offset.
    pub(super) fn committed_from(&mut self, k: OffsetKey, position: u64) {
        self.committed_at.insert(k, position);
    }
}
