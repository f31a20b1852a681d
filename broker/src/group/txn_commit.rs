//! The group coordinator's side of transactional offset commits (TxnOffsetCommit,
//! KIP-98 and KIP-447): validating a commit, applying its records as pending, the
//! transaction's marker completing them, and OffsetFetch's `require_stable`. What is
//! pending, and the log order that decides between plain and transactional commits,
//! is kept by [`super::txn_offsets`].

use kafka_protocol::error::ResponseError;

use super::coordinator::GroupCoordinator;
use super::records::GroupRecord;
use super::state::{Group, GroupState};
use super::txn_offsets::{FetchedOffset, TxnCommitRequest};

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
        // A producer committing for a consumer outside group management (or a client
        // older than KIP-447) creates a simple group, as a plain commit does.
        let group =
            Self::group_to_commit(&mut self.groups, &req.group_id, req.generation_id, now_ms)?;
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
        self.txn
            .add_pending(producer_id, group, topic, partition, value);
    }

    /// The marker of `producer_id`'s transaction reached this coordinator's partition
    /// (written live, or read back at load): on commit its pending offsets become the
    /// committed offsets wherever no later record set them, on abort they are dropped.
    /// Writes nothing: the marker is the record.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        for (k, value, position) in self.txn.take_producer(producer_id) {
            if !commit {
                continue;
            }
            // Kafka keeps the most recent committed offset when plain and
            // transactional commits mix: the pending one loses to a record after it.
            let superseded = self.txn.committed_after(&k, position)
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
            group.offsets.insert((k.1.clone(), k.2), value);
            self.txn.committed_from(k, position);
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
