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

use super::coordinator::GroupCoordinator;
use super::records::{GroupRecord, OffsetValue};
use super::state::{Group, GroupState};

/// (group, topic, partition).
type OffsetKey = (String, String, i32);

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
}

impl GroupCoordinator {
    /// Validate a TxnOffsetCommit (Kafka's classic-group rules for a transactional
    /// commit) and return the records to append in the producer's transactional batch.
    /// Nothing is applied here: once the batch is in the log, the runtime applies each
    /// record with [`GroupCoordinator::replay_txn_offset`], the same step a load takes,
    /// so a batch the log refused (a fenced epoch) leaves no pending offset behind.
    pub fn txn_commit(
        &mut self,
        req: &TxnCommitRequest,
        now_ms: i64,
    ) -> Result<Vec<GroupRecord>, ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        // A transactional batch needs a producer: without one the log would refuse
        // the batch, and a retriable answer would have the client retry for ever.
        if req.producer_id < 0 || req.producer_epoch < 0 {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            // A producer committing for a consumer outside group management (or a
            // client older than KIP-447) creates a simple group, as a plain commit does.
            None if req.generation_id < 0 => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now_ms)),
            None => return Err(ResponseError::IllegalGeneration),
        };
        let checked =
            req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some();
        if !(req.generation_id < 0 && group.state == GroupState::Empty) && checked {
            // KIP-447: a member fenced by a rebalance must not commit for partitions it
            // may no longer own. Unlike a plain commit, the group's state is not checked
            // (no REBALANCE_IN_PROGRESS): the generation is what fences.
            group.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
            if req.generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        }
        Ok(req
            .offsets
            .iter()
            .map(|(topic, partition, value)| GroupRecord::Offset {
                group: req.group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(value.clone()),
            })
            .collect())
    }

    /// Apply an offset record of `producer_id`'s transactional batch, appended live or
    /// read back in log order: the offset is pending until the transaction's marker.
    /// A tombstone in such a batch is applied as any tombstone.
    pub fn replay_txn_offset(&mut self, producer_id: i64, record: GroupRecord, now_ms: i64) {
        let GroupRecord::Offset {
            group,
            topic,
            partition,
            value: Some(value),
        } = record
        else {
            return self.replay(record, now_ms);
        };
        // Kafka creates the (simple) group when it reads an offset for a group it
        // does not know, so the group is listed and described while the commit waits.
        self.groups
            .entry(group.clone())
            .or_insert_with(|| Group::new(&group, now_ms));
        let position = self.txn.next_position();
        let k = (group, topic, partition);
        self.txn
            .open
            .entry(k.clone())
            .or_default()
            .insert(producer_id);
        self.txn
            .pending
            .entry(producer_id)
            .or_default()
            .insert(k, Pending { value, position });
    }

    /// The marker of `producer_id`'s transaction reached this coordinator's partition
    /// (written live, or read back at load): on commit its pending offsets become the
    /// committed offsets wherever no later record set them, on abort they are dropped.
    /// Writes nothing: the marker is the record.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(offsets) = self.txn.pending.remove(&producer_id) else {
            return;
        };
        for (k, pending) in offsets {
            if let Some(producers) = self.txn.open.get_mut(&k) {
                producers.remove(&producer_id);
                if producers.is_empty() {
                    self.txn.open.remove(&k);
                }
            }
            if !commit {
                continue;
            }
            // Kafka keeps the most recent committed offset when plain and
            // transactional commits mix: the pending one loses to a record after it.
            let superseded = self
                .txn
                .committed_at
                .get(&k)
                .is_some_and(|at| *at > pending.position)
                && self
                    .groups
                    .get(&k.0)
                    .is_some_and(|g| g.offsets.contains_key(&(k.1.clone(), k.2)));
            if superseded {
                continue;
            }
            let group = self
                .groups
                .entry(k.0.clone())
                .or_insert_with(|| Group::new(&k.0, now_ms));
            group.offsets.insert((k.1.clone(), k.2), pending.value);
            self.txn.committed_at.insert(k, pending.position);
        }
    }

    /// Whether a transaction holds a pending offset of `group` for the partition.
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txn.is_pending(group, topic, partition)
    }

    /// OffsetFetch: the committed offsets of `group_id` (of the named partitions, or
    /// all of them when `partitions` is None). With `require_stable` (KIP-447) a
    /// partition with a pending transactional offset answers UNSTABLE_OFFSET_COMMIT,
    /// so that a consumer does not start from an offset a transaction is replacing.
    pub fn fetch_stable_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        self.fetch_offsets(group_id, partitions)
            .into_iter()
            .map(|(t, p, v)| {
                let answer = if require_stable && self.txn.is_pending(group_id, &t, p) {
                    Err(ResponseError::UnstableOffsetCommit)
                } else {
                    Ok(v)
                };
                (t, p, answer)
            })
            .collect()
    }
}
