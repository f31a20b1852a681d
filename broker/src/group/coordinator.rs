//! The classic group coordinator as a pure state machine, following Kafka's rules
//! (GroupCoordinator / ClassicGroup). Events carry the time; each returns the
//! responses to complete (possibly for other members' parked JoinGroup/SyncGroup
//! requests) and the records to persist, in the order they must happen: records
//! before the responses that depend on them.
//!
//! Per group:
//!
//! ```text
//!  Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!    ▲                 ▲   ▲                                         │ leader syncs
//!    │ last member     │   └────── join / leave / expiry ────────────┤
//!    └── leaves ───────┴─────────── join / leave / expiry ──── Stable ◀┘
//!  Dead: deleted, or Empty with no offsets left after expiry (removed from the map).
//! ```
//!
//! The group's state and messages are in `state`, the rebalance steps in `rebalance`,
//! committed offsets in `offsets`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::rebalance::{
    complete_join, join_known_member, join_unknown_member, maybe_prepare_rebalance,
    remove_member_and_rebalance, try_complete_join,
};
use super::records::GroupRecord;
use super::state::{
    Action, Group, GroupConfig, GroupDescription, GroupState, InitialDelay, JoinRequest,
    JoinResult, Member, MemberDescription, MemberRef, RequestId, SyncRequest, SyncResult,
};
use super::txn_offsets::TxnOffsets;

/// The groups coordinated through one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default)]
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) rebalances_total: u64,
    /// Offsets committed in transactions still open.
    pub(super) txn: TxnOffsets,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            rebalances_total: 0,
            txn: TxnOffsets::default(),
        }
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Rebalances started since this coordinator was created.
    pub fn rebalances_total(&self) -> u64 {
        self.rebalances_total
    }

    /// A group record of this event did not reach `min.insync.replicas` replicas (or
    /// this broker stopped leading first): the members were not told what it held
    /// (their answers carried the write's error), and nothing durable backs the
    /// generation it described, so a group still in that generation rebalances and its
    /// members rejoin (Kafka resets the assignment and prepares a rebalance when
    /// storing it fails).
    pub fn group_write_failed(&mut self, record: &GroupRecord, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let GroupRecord::Group {
            group: id,
            value: Some(value),
        } = record
        else {
            return out;
        };
        let Some(group) = self.groups.get_mut(id) else {
            return out;
        };
        if group.generation_id == value.generation_id && !group.members.is_empty() {
            maybe_prepare_rebalance(
                group,
                &self.config,
                &mut self.rebalances_total,
                now_ms,
                &mut out,
            );
        }
        out
    }

    // ---- JoinGroup ----

    pub fn join(&mut self, req: JoinRequest, request: RequestId, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Err(code) = self.join_inner(&req, request, now_ms, &mut out) {
            let member_id = if code == ResponseError::MemberIdRequired {
                req.new_member_id.as_str()
            } else {
                req.member_id.as_str()
            };
            out.push(Action::Join {
                request,
                result: JoinResult::error(code, member_id),
            });
        }
        out
    }

    fn join_inner(
        &mut self,
        req: &JoinRequest,
        request: RequestId,
        now_ms: i64,
        out: &mut Vec<Action>,
    ) -> Result<(), ResponseError> {
        if req.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        if !self.groups.contains_key(&req.group_id) {
            // Only a new member may create a group.
            if !req.member_id.is_empty() {
                return Err(ResponseError::UnknownMemberId);
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group = self.groups.get_mut(&req.group_id).expect("just ensured");
        let config = &self.config;
        let rebalances = &mut self.rebalances_total;
        if req.member_id.is_empty() {
            join_unknown_member(group, config, rebalances, req, request, now_ms, out)
        } else {
            join_known_member(group, config, rebalances, req, request, now_ms, out)
        }
    }

    // ---- SyncGroup ----

    pub fn sync(&mut self, req: SyncRequest, request: RequestId, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Err(code) = self.sync_inner(&req, request, now_ms, &mut out) {
            out.push(Action::Sync {
                request,
                result: SyncResult::error(code),
            });
        }
        out
    }

    fn sync_inner(
        &mut self,
        req: &SyncRequest,
        request: RequestId,
        now_ms: i64,
        out: &mut Vec<Action>,
    ) -> Result<(), ResponseError> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        group.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != group.protocol_name.as_ref())
        {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                group.touch(&req.member_id, now_ms);
                let member = group.members.get_mut(&req.member_id).expect("validated");
                if let Some(old) = member.awaiting_sync.replace(request) {
                    out.push(Action::Sync {
                        request: old,
                        result: SyncResult::error(ResponseError::RebalanceInProgress),
                    });
                }
                if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    // Members the leader left out get an empty assignment; ids it
                    // names that are not members are ignored.
                    let given: HashMap<&str, &Bytes> = req
                        .assignments
                        .iter()
                        .map(|(m, a)| (m.as_str(), a))
                        .collect();
                    for (id, m) in group.members.iter_mut() {
                        m.assignment = given
                            .get(id.as_str())
                            .map(|a| (*a).clone())
                            .unwrap_or_default();
                    }
                    group.set_state(GroupState::Stable, now_ms);
                    out.push(Action::Persist(group.metadata_record()));
                    let (pt, pn) = (group.protocol_type.clone(), group.protocol_name.clone());
                    for m in group.members.values_mut() {
                        if let Some(r) = m.awaiting_sync.take() {
                            out.push(Action::Sync {
                                request: r,
                                result: SyncResult {
                                    error: None,
                                    protocol_type: pt.clone(),
                                    protocol_name: pn.clone(),
                                    assignment: m.assignment.clone(),
                                },
                            });
                        }
                    }
                }
                Ok(())
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                group.touch(&req.member_id, now_ms);
                out.push(Action::Sync {
                    request,
                    result: SyncResult {
                        error: None,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        assignment: group.members[&req.member_id].assignment.clone(),
                    },
                });
                Ok(())
            }
        }
    }

    // ---- Heartbeat ----

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Option<ResponseError> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if let Err(e) = group.validate_member(member_id, group_instance_id) {
            return Some(e);
        }
        if generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            // The member must rejoin; its heartbeat still proves it alive.
            GroupState::PreparingRebalance => {
                group.touch(member_id, now_ms);
                Some(ResponseError::RebalanceInProgress)
            }
            // Clients may heartbeat between their JoinGroup and SyncGroup answers.
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.touch(member_id, now_ms);
                None
            }
        }
    }

    // ---- LeaveGroup ----

    /// One error (or None) per member named, in order.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[MemberRef],
        now_ms: i64,
    ) -> (Vec<Option<ResponseError>>, Vec<Action>) {
        let mut out = Vec::new();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (
                vec![Some(ResponseError::UnknownMemberId); members.len()],
                out,
            );
        };
        let mut errors = Vec::with_capacity(members.len());
        for m in members {
            let target = match &m.group_instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(current) if !m.member_id.is_empty() && *current != m.member_id => {
                        Err(ResponseError::FencedInstanceId)
                    }
                    Some(current) => Ok(current.clone()),
                },
                None if group.pending_members.remove(&m.member_id).is_some() => {
                    try_complete_join(group, now_ms, &mut out);
                    errors.push(None);
                    continue;
                }
                None if group.members.contains_key(&m.member_id) => Ok(m.member_id.clone()),
                None => Err(ResponseError::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    remove_member_and_rebalance(
                        group,
                        &mut self.rebalances_total,
                        &self.config,
                        &id,
                        ResponseError::UnknownMemberId,
                        now_ms,
                        &mut out,
                    );
                    errors.push(None);
                }
                Err(e) => errors.push(Some(e)),
            }
        }
        (errors, out)
    }

    // ---- Admin ----

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        // As Kafka: metadata and assignments only once the group is Stable.
        let stable = g.state == GroupState::Stable;
        GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: g.protocol_name.clone().unwrap_or_default(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(g.protocol_name.as_deref())
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<Action>, ResponseError> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if group.state != GroupState::Empty || !group.pending_members.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        let group = self.groups.remove(group_id).expect("present");
        // As Kafka does, the partitions that only a transaction holds an offset for
        // get a tombstone too, so the transaction's marker cannot bring the group back.
        let mut partitions: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
        for k in self.txn.pending_partitions(group_id) {
            if !group.offsets.contains_key(&k) {
                partitions.push(k);
            }
        }
        let mut out = Vec::with_capacity(partitions.len() + 1);
        for (t, p) in partitions {
            self.txn.removed(group_id, &t, p);
            out.push(group.offset_tombstone(&t, p));
        }
        out.push(Action::Persist(GroupRecord::Group {
            group: group_id.to_string(),
            value: None,
        }));
        Ok(out)
    }

    // ---- Time ----

    /// Session timeouts, pending-member timeouts, rebalance and sync deadlines.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        for group in self.groups.values_mut() {
            let rebalances = &mut self.rebalances_total;
            let config = &self.config;
            let expired: Vec<String> = group
                .pending_members
                .iter()
                .filter(|(_, d)| **d <= now_ms)
                .map(|(m, _)| m.clone())
                .collect();
            for m in expired {
                group.pending_members.remove(&m);
                try_complete_join(group, now_ms, &mut out);
            }
            let silent: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.awaiting_join.is_none()
                        && m.awaiting_sync.is_none()
                        && m.session_deadline_ms <= now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in silent {
                remove_member_and_rebalance(
                    group,
                    rebalances,
                    config,
                    &id,
                    ResponseError::UnknownMemberId,
                    now_ms,
                    &mut out,
                );
            }
            if group.state == GroupState::PreparingRebalance
                && group.rebalance_deadline_ms.is_some_and(|d| d <= now_ms)
            {
                match group.initial_delay {
                    Some(delay) if group.new_member_added && delay.remaining_ms > 0 => {
                        let next = delay.delay_ms.min(delay.remaining_ms);
                        group.new_member_added = false;
                        group.initial_delay = Some(InitialDelay {
                            delay_ms: delay.delay_ms,
                            remaining_ms: delay.remaining_ms - next,
                        });
                        group.rebalance_deadline_ms = Some(now_ms + next);
                    }
                    _ => complete_join(group, now_ms, &mut out),
                }
            }
            if group.sync_deadline_ms.is_some_and(|d| d <= now_ms) {
                group.sync_deadline_ms = None;
                if matches!(
                    group.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                ) && !group.pending_sync.is_empty()
                {
                    // Joined but never synced within the rebalance timeout.
                    let gone: Vec<String> = std::mem::take(&mut group.pending_sync)
                        .into_iter()
                        .collect();
                    for id in gone {
                        remove_member_and_rebalance(
                            group,
                            rebalances,
                            config,
                            &id,
                            ResponseError::UnknownMemberId,
                            now_ms,
                            &mut out,
                        );
                    }
                }
            }
        }
        out
    }

    // ---- Loading ----

    /// Apply one record read back from the log, in log order. A group with members
    /// comes back Stable; its members' sessions start at `now_ms`.
    pub fn replay(&mut self, record: GroupRecord, now_ms: i64) {
        match record {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value: Some(v),
            } => {
                self.txn.committed(&group, &topic, partition);
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now_ms))
                    .offsets
                    .insert((topic, partition), v);
            }
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value: None,
            } => {
                self.txn.removed(&group, &topic, partition);
                if let Some(g) = self.groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            GroupRecord::Group {
                group,
                value: Some(v),
            } => {
                let offsets = self
                    .groups
                    .remove(&group)
                    .map(|g| g.offsets)
                    .unwrap_or_default();
                let mut g = Group::new(&group, now_ms);
                g.offsets = offsets;
                g.generation_id = v.generation_id;
                g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                g.protocol_name = v.protocol_name.clone();
                g.leader_id = v.leader;
                if v.current_state_timestamp_ms >= 0 {
                    g.state_timestamp_ms = v.current_state_timestamp_ms;
                }
                for m in v.members {
                    if let Some(i) = &m.group_instance_id {
                        g.static_members.insert(i.clone(), m.member_id.clone());
                    }
                    g.members.insert(
                        m.member_id,
                        Member {
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            session_timeout_ms: m.session_timeout_ms,
                            protocols: vec![(
                                v.protocol_name.clone().unwrap_or_default(),
                                m.subscription,
                            )],
                            assignment: m.assignment,
                            awaiting_join: None,
                            awaiting_sync: None,
                            session_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
                        },
                    );
                }
                if !g.members.is_empty() {
                    g.state = GroupState::Stable;
                    if g.leader_id
                        .as_ref()
                        .is_none_or(|l| !g.members.contains_key(l))
                    {
                        g.leader_id = g.members.keys().next().cloned();
                    }
                }
                self.groups.insert(group, g);
            }
            GroupRecord::Group { group, value: None } => {
                if let Some(g) = self.groups.remove(&group) {
                    if !g.offsets.is_empty() {
                        let mut fresh = Group::new(&group, now_ms);
                        fresh.offsets = g.offsets;
                        self.groups.insert(group, fresh);
                    }
                }
            }
        }
    }
}
