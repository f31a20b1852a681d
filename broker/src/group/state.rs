//! One group's state and the messages the coordinator exchanges with the runtime:
//! the requests it is fed, the answers and records it returns ([`Action`]), and the
//! [`Group`] with its members. These are the nouns every other file of `group` uses,
//! so they stand apart, below the coordinator and the rebalance steps.

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
pub(super) struct Member {
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) rebalance_timeout_ms: i32,
    pub(super) session_timeout_ms: i32,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) awaiting_join: Option<RequestId>,
    pub(super) awaiting_sync: Option<RequestId>,
    /// Evicted when this passes and no JoinGroup/SyncGroup of it is parked.
    pub(super) session_deadline_ms: i64,
}

impl Member {
    pub(super) fn metadata(&self, protocol: Option<&str>) -> Bytes {
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
pub(super) struct InitialDelay {
    pub(super) delay_ms: i64,
    pub(super) remaining_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) state_timestamp_ms: i64,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) generation_id: i32,
    pub(super) leader_id: Option<String>,
    /// In join order: the first member becomes leader.
    pub(super) members: IndexMap<String, Member>,
    /// Members told MEMBER_ID_REQUIRED, until they rejoin or their session passes.
    pub(super) pending_members: BTreeMap<String, i64>,
    /// group.instance.id → member id of static members.
    pub(super) static_members: HashMap<String, String>,
    /// Members that joined the current generation but have not synced yet.
    pub(super) pending_sync: BTreeSet<String>,
    pub(super) sync_deadline_ms: Option<i64>,
    pub(super) rebalance_deadline_ms: Option<i64>,
    pub(super) initial_delay: Option<InitialDelay>,
    pub(super) new_member_added: bool,
    pub(super) offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    pub(super) fn new(id: &str, now_ms: i64) -> Group {
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

    pub(super) fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub(super) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub(super) fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports, in the leader's order of preference.
    pub(super) fn candidate_protocols(&self) -> Vec<String> {
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
    pub(super) fn select_protocol(&self) -> Option<String> {
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

    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols();
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// FENCED_INSTANCE_ID when a static member's id was taken over by a newer
    /// instance; UNKNOWN_MEMBER_ID when the member is not in the group.
    pub(super) fn validate_member(
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

    pub(super) fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        }
    }

    /// The current generation as a JoinGroup answer for `member_id`; the leader gets
    /// the members' metadata.
    pub(super) fn join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
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

    pub(super) fn metadata_record(&self) -> GroupRecord {
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

    pub(super) fn offset_tombstone(&self, topic: &str, partition: i32) -> Action {
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
