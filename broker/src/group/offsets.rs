//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, retention (KIP-211)
//! and the clean-up after a topic is deleted. Offsets live beside the group state but
//! follow their own rules (a simple commit needs no membership), so they stand apart
//! from the rebalance protocol.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::coordinator::GroupCoordinator;
use super::records::{GroupRecord, OffsetValue};
use super::state::{Action, CommitRequest, Group, GroupState, CONSUMER_PROTOCOL_TYPE};

impl GroupCoordinator {
    /// Validate and apply a commit; on success the records to persist.
    pub fn commit(
        &mut self,
        req: CommitRequest,
        now_ms: i64,
    ) -> Result<Vec<Action>, ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let simple =
            req.generation_id < 0 && req.member_id.is_empty() && req.group_instance_id.is_none();
        let group =
            Self::group_to_commit(&mut self.groups, &req.group_id, req.generation_id, now_ms)?;
        if req.generation_id < 0 && group.state == GroupState::Empty {
            // Offsets only: the group has no members to check against.
        } else if !simple {
            group.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
            if req.generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
            // The member holds the new generation but has no assignment yet.
            if group.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            // PreparingRebalance is accepted: eager members commit before rejoining.
            group.touch(&req.member_id, now_ms);
        } else {
            return Err(ResponseError::UnknownMemberId);
        }
        let mut out = Vec::with_capacity(req.offsets.len());
        for (topic, partition, value) in req.offsets {
            out.push(Action::Persist(GroupRecord::Offset {
                group: req.group_id.clone(),
                topic: topic.clone(),
                partition,
                value: Some(value.clone()),
            }));
            self.txn.committed(&req.group_id, &topic, partition);
            group.offsets.insert((topic, partition), value);
        }
        Ok(out)
    }

    /// Committed offsets of `group_id`: of the named partitions (None where nothing is
    /// committed), or all of them when `partitions` is None.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(ps) => ps
                .iter()
                .map(|(t, p)| {
                    let v = group.and_then(|g| g.offsets.get(&(t.clone(), *p)).cloned());
                    (t.clone(), *p, v)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: per partition an error or None, and the tombstones.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Option<ResponseError>>, Vec<Action>), ResponseError> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        let subscribed = if group.state == GroupState::Empty {
            BTreeSet::new()
        } else {
            // A non-consumer group with members gives no way to tell what it reads.
            group
                .subscribed_topics()
                .ok_or(ResponseError::NonEmptyGroup)?
        };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut out = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                errors.push(Some(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            // A partition only a transaction holds an offset for gets its tombstone
            // too (Kafka's rule), which drops the pending offset.
            let pending = self.txn.is_pending(group_id, t, *p);
            if group.offsets.remove(&(t.clone(), *p)).is_some() || pending {
                self.txn.removed(group_id, t, *p);
                out.push(group.offset_tombstone(t, *p));
            }
            errors.push(None);
        }
        Ok((errors, out))
    }

    /// Offset retention (Kafka 2.1+, KIP-211): a consumer group's offsets expire
    /// `offsets.retention.minutes` after the group became Empty; a group without a
    /// protocol (offsets only) expires each offset by its commit time; a Stable consumer
    /// group expires offsets of topics it no longer subscribes to. A group left Empty
    /// with no offsets is removed (Dead) and tombstoned.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<Action> {
        let retention = self.config.offsets_retention_ms;
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let txn = &mut self.txn;
        for group in self.groups.values_mut() {
            let expired: Vec<(String, i32)> = match (group.state, group.protocol_type.as_deref()) {
                (GroupState::Empty, Some(_)) => {
                    if now_ms - group.state_timestamp_ms >= retention {
                        group.offsets.keys().cloned().collect()
                    } else {
                        Vec::new()
                    }
                }
                (GroupState::Empty, None) => group
                    .offsets
                    .iter()
                    .filter(|(_, v)| now_ms - v.commit_timestamp_ms >= retention)
                    .map(|(k, _)| k.clone())
                    .collect(),
                (GroupState::Stable, Some(CONSUMER_PROTOCOL_TYPE)) => {
                    match group.subscribed_topics() {
                        Some(topics) => group
                            .offsets
                            .iter()
                            .filter(|((t, _), v)| {
                                !topics.contains(t) && now_ms - v.commit_timestamp_ms >= retention
                            })
                            .map(|(k, _)| k.clone())
                            .collect(),
                        None => Vec::new(),
                    }
                }
                _ => Vec::new(),
            };
            for (t, p) in expired {
                // Not while a transaction holds a pending offset for the partition:
                // its marker may still make that offset the committed one.
                if txn.is_pending(&group.id, &t, p) {
                    continue;
                }
                group.offsets.remove(&(t.clone(), p));
                txn.removed(&group.id, &t, p);
                out.push(group.offset_tombstone(&t, p));
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
                && !txn.group_has_pending(&group.id)
            {
                dead.push(group.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
            out.push(Action::Persist(GroupRecord::Group {
                group: id,
                value: None,
            }));
        }
        out
    }

    /// Drop the offsets of topics that no longer exist (Kafka does this when a topic
    /// is deleted), as tombstones.
    pub fn remove_offsets_of_deleted_topics(
        &mut self,
        topic_exists: impl Fn(&str) -> bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let txn = &mut self.txn;
        for group in self.groups.values_mut() {
            // Pending transactional offsets of a deleted topic go as well (Kafka).
            let mut gone: BTreeSet<(String, i32)> = group
                .offsets
                .keys()
                .filter(|(t, _)| !topic_exists(t))
                .cloned()
                .collect();
            gone.extend(
                txn.pending_partitions(&group.id)
                    .into_iter()
                    .filter(|(t, _)| !topic_exists(t)),
            );
            for (t, p) in gone {
                group.offsets.remove(&(t.clone(), p));
                txn.removed(&group.id, &t, p);
                out.push(group.offset_tombstone(&t, p));
            }
        }
        out
    }

    /// The group a commit names. A client managing its own partitions commits with
    /// generation -1 and may create the group that way; a commit of any other
    /// generation for a group that does not exist is from a generation that is gone.
    pub(super) fn group_to_commit<'a>(
        groups: &'a mut BTreeMap<String, Group>,
        group_id: &str,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<&'a mut Group, ResponseError> {
        if !groups.contains_key(group_id) {
            if generation_id >= 0 {
                return Err(ResponseError::IllegalGeneration);
            }
            groups.insert(group_id.to_string(), Group::new(group_id, now_ms));
        }
        groups
            .get_mut(group_id)
            .ok_or(ResponseError::IllegalGeneration)
    }
}
