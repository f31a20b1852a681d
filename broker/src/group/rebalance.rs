//! The membership steps of a rebalance, as functions over one [`Group`]: admitting
//! new, known and static members, preparing a rebalance, completing the join phase
//! and removing members. JoinGroup, LeaveGroup and the clock all end up here, so the
//! transitions of the state diagram in `coordinator` live in one place.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::state::{
    Action, Group, GroupConfig, GroupState, InitialDelay, JoinRequest, JoinResult, Member,
    RequestId, SyncResult,
};

pub(super) fn join_unknown_member(
    group: &mut Group,
    config: &GroupConfig,
    rebalances: &mut u64,
    req: &JoinRequest,
    request: RequestId,
    now_ms: i64,
    out: &mut Vec<Action>,
) -> Result<(), ResponseError> {
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let new_id = req.new_member_id.clone();
    if let Some(instance) = &req.group_instance_id {
        if let Some(old_id) = group.static_members.get(instance).cloned() {
            // KIP-345: a static member restarting takes over its old slot; the old
            // member id is fenced.
            let unchanged = group.members[&old_id].protocols == req.protocols;
            replace_static_member(group, &old_id, &new_id, out);
            return match group.state {
                GroupState::Stable if unchanged => {
                    let m = group.members.get_mut(&new_id).expect("replaced");
                    m.session_timeout_ms = req.session_timeout_ms;
                    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                    m.client_id = req.client_id.clone();
                    m.client_host = req.client_host.clone();
                    group.touch(&new_id, now_ms);
                    // The new member id must survive a coordinator restart.
                    out.push(Action::Persist(group.metadata_record()));
                    let is_leader = group.leader_id.as_deref() == Some(new_id.as_str());
                    out.push(Action::Join {
                        request,
                        result: group.join_result(&new_id, is_leader),
                    });
                    Ok(())
                }
                _ => {
                    update_member_and_rebalance(
                        group, config, rebalances, &new_id, req, request, now_ms, out,
                    );
                    Ok(())
                }
            };
        }
        add_member_and_rebalance(
            group, config, rebalances, &new_id, req, request, now_ms, out,
        );
        return Ok(());
    }
    if req.require_known_member_id {
        group
            .pending_members
            .insert(new_id, now_ms + i64::from(req.session_timeout_ms));
        return Err(ResponseError::MemberIdRequired);
    }
    add_member_and_rebalance(
        group, config, rebalances, &new_id, req, request, now_ms, out,
    );
    Ok(())
}

pub(super) fn join_known_member(
    group: &mut Group,
    config: &GroupConfig,
    rebalances: &mut u64,
    req: &JoinRequest,
    request: RequestId,
    now_ms: i64,
    out: &mut Vec<Action>,
) -> Result<(), ResponseError> {
    if group.pending_members.contains_key(&req.member_id) {
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        group.pending_members.remove(&req.member_id);
        let id = req.member_id.clone();
        add_member_and_rebalance(group, config, rebalances, &id, req, request, now_ms, out);
        return Ok(());
    }
    group.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let id = req.member_id.clone();
    let member = &group.members[&id];
    let unchanged = member.protocols == req.protocols;
    let is_leader = group.leader_id.as_deref() == Some(id.as_str());
    match group.state {
        GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        GroupState::PreparingRebalance => {
            update_member_and_rebalance(group, config, rebalances, &id, req, request, now_ms, out);
            Ok(())
        }
        // A repeated join (its answer was lost): answer with the generation again.
        GroupState::CompletingRebalance if unchanged => {
            out.push(Action::Join {
                request,
                result: group.join_result(&id, false),
            });
            Ok(())
        }
        // A follower rejoining unchanged needs no rebalance.
        GroupState::Stable if unchanged && !is_leader => {
            group.touch(&id, now_ms);
            out.push(Action::Join {
                request,
                result: group.join_result(&id, false),
            });
            Ok(())
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_and_rebalance(group, config, rebalances, &id, req, request, now_ms, out);
            Ok(())
        }
    }
}

fn replace_static_member(group: &mut Group, old_id: &str, new_id: &str, out: &mut Vec<Action>) {
    let (_, mut member) = group
        .members
        .shift_remove_entry(old_id)
        .expect("static member");
    if let Some(r) = member.awaiting_join.take() {
        out.push(Action::Join {
            request: r,
            result: JoinResult::error(ResponseError::FencedInstanceId, old_id),
        });
    }
    if let Some(r) = member.awaiting_sync.take() {
        out.push(Action::Sync {
            request: r,
            result: SyncResult::error(ResponseError::FencedInstanceId),
        });
    }
    if let Some(i) = &member.group_instance_id {
        group.static_members.insert(i.clone(), new_id.to_string());
    }
    if group.leader_id.as_deref() == Some(old_id) {
        group.leader_id = Some(new_id.to_string());
    }
    if group.pending_sync.remove(old_id) {
        group.pending_sync.insert(new_id.to_string());
    }
    group.members.insert(new_id.to_string(), member);
}

#[allow(clippy::too_many_arguments)]
fn add_member_and_rebalance(
    group: &mut Group,
    config: &GroupConfig,
    rebalances: &mut u64,
    id: &str,
    req: &JoinRequest,
    request: RequestId,
    now_ms: i64,
    out: &mut Vec<Action>,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(req.protocol_type.clone());
    }
    if let Some(i) = &req.group_instance_id {
        group.static_members.insert(i.clone(), id.to_string());
    }
    group.members.insert(
        id.to_string(),
        Member {
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(request),
            awaiting_sync: None,
            session_deadline_ms: now_ms + i64::from(req.session_timeout_ms),
        },
    );
    if group.leader_id.is_none() {
        group.leader_id = Some(id.to_string());
    }
    group.new_member_added = true;
    maybe_prepare_rebalance(group, config, rebalances, now_ms, out);
    try_complete_join(group, now_ms, out);
}

#[allow(clippy::too_many_arguments)]
fn update_member_and_rebalance(
    group: &mut Group,
    config: &GroupConfig,
    rebalances: &mut u64,
    id: &str,
    req: &JoinRequest,
    request: RequestId,
    now_ms: i64,
    out: &mut Vec<Action>,
) {
    let m = group.members.get_mut(id).expect("member");
    m.protocols = req.protocols.clone();
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    if let Some(old) = m.awaiting_join.replace(request) {
        // Superseded by this join: that client gave up on it.
        out.push(Action::Join {
            request: old,
            result: JoinResult::error(ResponseError::RebalanceInProgress, id),
        });
    }
    maybe_prepare_rebalance(group, config, rebalances, now_ms, out);
    try_complete_join(group, now_ms, out);
}

pub(super) fn maybe_prepare_rebalance(
    group: &mut Group,
    config: &GroupConfig,
    rebalances: &mut u64,
    now_ms: i64,
    out: &mut Vec<Action>,
) {
    if !matches!(
        group.state,
        GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
    ) {
        return;
    }
    if group.state == GroupState::CompletingRebalance {
        // The generation being synced is void: its members must rejoin.
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(r) = m.awaiting_sync.take() {
                out.push(Action::Sync {
                    request: r,
                    result: SyncResult::error(ResponseError::RebalanceInProgress),
                });
            }
        }
    }
    group.pending_sync.clear();
    group.sync_deadline_ms = None;
    let timeout = group.max_rebalance_timeout_ms();
    if group.state == GroupState::Empty && config.initial_rebalance_delay_ms > 0 {
        let delay = config.initial_rebalance_delay_ms;
        group.initial_delay = Some(InitialDelay {
            delay_ms: delay,
            remaining_ms: (timeout - delay).max(0),
        });
        group.new_member_added = false;
        group.rebalance_deadline_ms = Some(now_ms + delay);
    } else {
        group.initial_delay = None;
        group.rebalance_deadline_ms = Some(now_ms + timeout);
    }
    *rebalances += 1;
    group.set_state(GroupState::PreparingRebalance, now_ms);
}

pub(super) fn try_complete_join(group: &mut Group, now_ms: i64, out: &mut Vec<Action>) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay.is_none()
        && group.all_members_joined()
    {
        complete_join(group, now_ms, out);
    }
}

/// End the join phase: drop members that did not rejoin, start the next generation
/// and answer every parked JoinGroup.
pub(super) fn complete_join(group: &mut Group, now_ms: i64, out: &mut Vec<Action>) {
    let missing: Vec<String> = group
        .members
        .iter()
        .filter(|(_, m)| m.awaiting_join.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    for id in missing {
        remove_member(group, &id, ResponseError::UnknownMemberId, out);
    }
    group.rebalance_deadline_ms = None;
    group.initial_delay = None;
    group.new_member_added = false;
    group.generation_id += 1;
    if group.members.is_empty() {
        group.protocol_name = None;
        group.leader_id = None;
        group.set_state(GroupState::Empty, now_ms);
        out.push(Action::Persist(group.metadata_record()));
        return;
    }
    group.protocol_name = group.select_protocol();
    group.set_state(GroupState::CompletingRebalance, now_ms);
    group.pending_sync = group.members.keys().cloned().collect();
    group.sync_deadline_ms = Some(now_ms + group.max_rebalance_timeout_ms());
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let result = group.join_result(&id, false);
        let m = group.members.get_mut(&id).expect("member");
        m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        if let Some(r) = m.awaiting_join.take() {
            out.push(Action::Join { request: r, result });
        }
    }
}

/// Remove a member; its parked requests are answered with `code`.
fn remove_member(group: &mut Group, id: &str, code: ResponseError, out: &mut Vec<Action>) {
    let Some(m) = group.members.shift_remove(id) else {
        return;
    };
    if let Some(r) = m.awaiting_join {
        out.push(Action::Join {
            request: r,
            result: JoinResult::error(code, id),
        });
    }
    if let Some(r) = m.awaiting_sync {
        out.push(Action::Sync {
            request: r,
            result: SyncResult::error(code),
        });
    }
    if let Some(i) = &m.group_instance_id {
        if group.static_members.get(i).map(String::as_str) == Some(id) {
            group.static_members.remove(i);
        }
    }
    group.pending_sync.remove(id);
    if group.leader_id.as_deref() == Some(id) {
        // Prefer a member already rejoining, so the new leader is in this round.
        group.leader_id = group
            .members
            .iter()
            .find(|(_, m)| m.awaiting_join.is_some())
            .or_else(|| group.members.iter().next())
            .map(|(id, _)| id.clone());
    }
}

pub(super) fn remove_member_and_rebalance(
    group: &mut Group,
    rebalances: &mut u64,
    config: &GroupConfig,
    id: &str,
    code: ResponseError,
    now_ms: i64,
    out: &mut Vec<Action>,
) {
    remove_member(group, id, code, out);
    if matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance
    ) {
        maybe_prepare_rebalance(group, config, rebalances, now_ms, out);
    }
    try_complete_join(group, now_ms, out);
}
