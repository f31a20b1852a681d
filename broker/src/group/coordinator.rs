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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;

use super::records::{subscribed_topics, GroupRecord, GroupValue, MemberValue, OffsetValue};

/// Identifies a parked JoinGroup or SyncGroup request; chosen by the runtime.
pub type RequestId = u64;

/// The classic consumer protocol type; only its subscriptions are understood here.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];
}

/// Broker settings the coordinator applies (Kafka's names and defaults).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms (6000).
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms (1800000).
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms (3000).
    pub initial_rebalance_delay_ms: i64,
    /// offsets.retention.minutes (10080) in ms.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            offsets_retention_ms: 10080 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED with its id
    /// (KIP-394), so a client that never rejoins leaves no member behind.
    pub require_known_member_id: bool,
    /// The id a new member gets (the runtime makes it unique: client id + UUID).
    pub new_member_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// KIP-814: a static leader rejoining a stable group must not reassign.
    pub skip_assignment: bool,
    /// Every member's metadata for the selected protocol, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(code: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(code),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+: checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(code: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(code),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member named by LeaveGroup (v3+ batches several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// -1 for a "simple" commit from a client that does not use group management.
    pub generation_id: i32,
    pub offsets: Vec<(String, i32, OffsetValue)>,
}

/// What the runtime must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append this record to the group's `__consumer_offsets` partition.
    Persist(GroupRecord),
    /// Answer a parked (or the current) JoinGroup request.
    Join {
        request: RequestId,
        result: JoinResult,
    },
    /// Answer a parked (or the current) SyncGroup request.
    Sync {
        request: RequestId,
        result: SyncResult,
    },
}

#[derive(Debug, Clone)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<RequestId>,
    awaiting_sync: Option<RequestId>,
    /// Evicted when this passes and no JoinGroup/SyncGroup of it is parked.
    session_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// group.initial.rebalance.delay.ms in progress: the first rebalance of an empty
/// group waits `delay_ms`, and again (up to the rebalance timeout in total) while new
/// members keep arriving, so a group starting many consumers rebalances once.
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    delay_ms: i64,
    remaining_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Group {
    id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    /// In join order: the first member becomes leader.
    members: IndexMap<String, Member>,
    /// Members told MEMBER_ID_REQUIRED, until they rejoin or their session passes.
    pending_members: BTreeMap<String, i64>,
    /// group.instance.id → member id of static members.
    static_members: HashMap<String, String>,
    /// Members that joined the current generation but have not synced yet.
    pending_sync: BTreeSet<String>,
    sync_deadline_ms: Option<i64>,
    rebalance_deadline_ms: Option<i64>,
    initial_delay: Option<InitialDelay>,
    new_member_added: bool,
    offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: IndexMap::new(),
            pending_members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            rebalance_deadline_ms: None,
            initial_delay: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn offsets(&self) -> &BTreeMap<(String, i32), OffsetValue> {
        &self.offsets
    }

    /// Topics named by any member's subscription, when the group speaks the consumer
    /// protocol and every subscription parses.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscribed_topics(&m.metadata(Some(protocol)))?);
        }
        Some(topics)
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports, in the leader's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let first = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next());
        let Some(first) = first else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Kafka's rule: each member votes for its most preferred protocol among those
    /// all members support; the most votes wins (ties go to the leader's preference).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let v = votes.get(c.as_str()).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c, v));
            }
        }
        best.map(|(c, _)| c.clone())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// FENCED_INSTANCE_ID when a static member's id was taken over by a newer
    /// instance; UNKNOWN_MEMBER_ID when the member is not in the group.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                Some(_) => {}
                None => return Err(ResponseError::UnknownMemberId),
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        }
    }

    /// The current generation as a JoinGroup answer for `member_id`; the leader gets
    /// the members' metadata.
    fn join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment,
            members: if is_leader {
                self.members
                    .iter()
                    .map(|(id, m)| JoinedMember {
                        member_id: id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(self.protocol_name.as_deref()),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn metadata_record(&self) -> GroupRecord {
        GroupRecord::Group {
            group: self.id.clone(),
            value: Some(GroupValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation_id: self.generation_id,
                protocol_name: self.protocol_name.clone(),
                leader: self.leader_id.clone(),
                current_state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .members
                    .iter()
                    .map(|(id, m)| MemberValue {
                        member_id: id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata(self.protocol_name.as_deref()),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        }
    }

    fn offset_tombstone(&self, topic: &str, partition: i32) -> Action {
        Action::Persist(GroupRecord::Offset {
            group: self.id.clone(),
            topic: topic.to_string(),
            partition,
            value: None,
        })
    }
}

/// A member's view of a group, for DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// The groups coordinated through one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, Group>,
    rebalances_total: u64,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            rebalances_total: 0,
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

    // ---- Offsets ----

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
        let group = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            // A client managing its own partitions commits with generation -1 and may
            // create the group that way; anything else is from a generation that is gone.
            None if req.generation_id < 0 => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now_ms)),
            None => return Err(ResponseError::IllegalGeneration),
        };
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
        let mut out: Vec<Action> = group
            .offsets
            .keys()
            .map(|(t, p)| group.offset_tombstone(t, *p))
            .collect();
        out.push(Action::Persist(GroupRecord::Group {
            group: group_id.to_string(),
            value: None,
        }));
        Ok(out)
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
            if group.offsets.remove(&(t.clone(), *p)).is_some() {
                out.push(group.offset_tombstone(t, *p));
            }
            errors.push(None);
        }
        Ok((errors, out))
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

    /// Offset retention (Kafka 2.1+, KIP-211): a consumer group's offsets expire
    /// `offsets.retention.minutes` after the group became Empty; a group without a
    /// protocol (offsets only) expires each offset by its commit time; a Stable consumer
    /// group expires offsets of topics it no longer subscribes to. A group left Empty
    /// with no offsets is removed (Dead) and tombstoned.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<Action> {
        let retention = self.config.offsets_retention_ms;
        let mut out = Vec::new();
        let mut dead = Vec::new();
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
                group.offsets.remove(&(t.clone(), p));
                out.push(group.offset_tombstone(&t, p));
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
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
        for group in self.groups.values_mut() {
            let gone: Vec<(String, i32)> = group
                .offsets
                .keys()
                .filter(|(t, _)| !topic_exists(t))
                .cloned()
                .collect();
            for (t, p) in gone {
                group.offsets.remove(&(t.clone(), p));
                out.push(group.offset_tombstone(&t, p));
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

fn join_unknown_member(
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

fn join_known_member(
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

fn maybe_prepare_rebalance(
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

fn try_complete_join(group: &mut Group, now_ms: i64, out: &mut Vec<Action>) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay.is_none()
        && group.all_members_joined()
    {
        complete_join(group, now_ms, out);
    }
}

/// End the join phase: drop members that did not rejoin, start the next generation
/// and answer every parked JoinGroup.
fn complete_join(group: &mut Group, now_ms: i64, out: &mut Vec<Action>) {
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

fn remove_member_and_rebalance(
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
