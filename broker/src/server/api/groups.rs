//! Consumer group APIs (classic protocol): FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups, ListGroups, DeleteGroups (the offset APIs
//! are in `group_offsets`). Decisions come from `group::GroupCoordinator` through
//! `server::coordinator`; this layer maps the wire types in and out, gating fields
//! by version.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::acls::group_access;
use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::config::listeners::Listener;
use crate::group::{partition_for, JoinRequest, MemberRef, SyncRequest, OFFSETS_TOPIC};
use crate::metadata::image::{MetadataImage, PartitionState};
use crate::server::broker::Broker;
use crate::server::coordinator::{self, client_host, to_str, GroupRuntime, Shard};
use crate::txn::TRANSACTION_STATE_TOPIC;

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

pub(super) fn err(broker: &Broker, ctx: &RequestContext, e: Option<ResponseError>) -> i16 {
    let c = code(e);
    count_error(broker, ctx.api_key, c);
    c
}

/// The coordinator runtime, or COORDINATOR_NOT_AVAILABLE before it is built.
fn runtime(broker: &Broker) -> Result<&Arc<GroupRuntime>, ResponseError> {
    broker
        .groups()
        .ok_or(ResponseError::CoordinatorNotAvailable)
}

/// The `__consumer_offsets` partition of `group_id` and its state in the image.
fn offsets_partition<'a>(image: &'a MetadataImage, group_id: &str) -> Option<&'a PartitionState> {
    let topic = image.topic(OFFSETS_TOPIC)?;
    let n = i32::try_from(topic.partitions.len()).ok()?;
    topic
        .partitions
        .get(usize::try_from(partition_for(group_id, n)).ok()?)
}

/// The shard coordinating `group_id` here: NOT_COORDINATOR unless this broker leads
/// the group's `__consumer_offsets` partition and has loaded it,
/// COORDINATOR_LOAD_IN_PROGRESS while it loads.
pub(super) fn coordinator_for(
    broker: &Broker,
    group_id: &str,
) -> Result<Arc<Shard>, ResponseError> {
    let rt = runtime(broker)?;
    let image = broker.image();
    match offsets_partition(&image, group_id) {
        Some(p) if p.leader == broker.node_id() => rt.shard(p.partition),
        _ => Err(ResponseError::NotCoordinator),
    }
}

/// Node id, host and port of the coordinator of `group_id`: the current leader of
/// its `__consumer_offsets` partition, which is created on the first lookup, at its
/// endpoint on `listener`.
async fn find_group_coordinator(
    broker: &Broker,
    listener: &Listener,
    group_id: &str,
) -> Result<(i32, String, i32), ResponseError> {
    runtime(broker)?;
    if broker.image().topic(OFFSETS_TOPIC).is_none() {
        coordinator::lifecycle::create_offsets_topic(broker).await?;
    }
    let leader = offsets_partition(&broker.image(), group_id)
        .ok_or(ResponseError::CoordinatorNotAvailable)?
        .leader;
    coordinator_endpoint(broker, listener, leader)
}

/// Node id, host and port of the coordinator of `transactional_id`: the current
/// leader of its `__transaction_state` partition, which is created on the first
/// lookup, at its endpoint on `listener`.
async fn find_txn_coordinator(
    broker: &Broker,
    listener: &Listener,
    transactional_id: &str,
) -> Result<(i32, String, i32), ResponseError> {
    if broker.txns().is_none() {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if broker.image().topic(TRANSACTION_STATE_TOPIC).is_none() {
        crate::server::txn::lifecycle::create_transaction_topic(broker).await?;
    }
    let leader = super::txn::txn_partition(&broker.image(), transactional_id)
        .ok_or(ResponseError::CoordinatorNotAvailable)?
        .leader;
    coordinator_endpoint(broker, listener, leader)
}

/// The endpoint of coordinator `leader` on the listener the client used; a
/// coordinator without that listener cannot be reached by this client.
fn coordinator_endpoint(
    broker: &Broker,
    listener: &Listener,
    leader: i32,
) -> Result<(i32, String, i32), ResponseError> {
    if leader < 0 {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    match broker.image().broker(leader) {
        Some(b) => match b.endpoint.listener(listener.name.as_str()) {
            Some((host, port)) => Ok((leader, host.to_string(), port)),
            None => Err(ResponseError::CoordinatorNotAvailable),
        },
        // This broker knows its own listener before (or without) registering.
        None if leader == broker.node_id() => Ok((
            leader,
            listener.advertised_host.clone(),
            i32::from(listener.advertised_port),
        )),
        None => Err(ResponseError::CoordinatorNotAvailable),
    }
}

pub async fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let v = ctx.version;
    // The error and, where it says more than the code, a message.
    let lookup = |key: String| async move {
        match req.key_type {
            0 => {
                group_access(broker, ctx, AclOperation::Describe, &key)
                    .map_err(|e| (e, None::<&'static str>))?;
                find_group_coordinator(broker, &ctx.listener, &key)
                    .await
                    .map_err(|e| (e, None::<&'static str>))
            }
            1 => {
                let image = broker.image();
                let auth = super::acls::authorizer(broker, ctx, &image);
                if !auth.authorize(AclOperation::Describe, ResourceType::TransactionalId, &key) {
                    return Err((
                        ResponseError::TransactionalIdAuthorizationFailed,
                        None::<&'static str>,
                    ));
                }
                find_txn_coordinator(broker, &ctx.listener, &key)
                    .await
                    .map_err(|e| (e, None))
            }
            // Share groups (KIP-932) are not served.
            _ => Err((ResponseError::InvalidRequest, None)),
        }
    };
    let message = |e: ResponseError, m: Option<&str>| {
        Some(str_bytes(m.map_or_else(|| e.to_string(), str::to_string)))
    };
    if v >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match lookup(key.to_string()).await {
                Ok((node_id, host, port)) => c
                    .with_node_id(BrokerId(node_id))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((e, m)) => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(err(broker, ctx, Some(e)))
                    .with_error_message(message(e, m)),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let mut resp = FindCoordinatorResponse::default();
    match lookup(req.key.to_string()).await {
        Ok((node_id, host, port)) => {
            resp.node_id = BrokerId(node_id);
            resp.host = str_bytes(host);
            resp.port = port;
        }
        Err((e, m)) => {
            resp.error_code = err(broker, ctx, Some(e));
            resp.node_id = BrokerId(-1);
            resp.port = -1;
            if v >= 1 {
                resp.error_message = message(e, m);
            }
        }
    }
    resp
}

pub async fn join_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let coordinator = group_access(broker, ctx, AclOperation::Read, &group_id)
        .and_then(|()| coordinator_for(broker, &group_id));
    let result = match coordinator {
        Err(e) => crate::group::JoinResult::error(e, &req.member_id),
        Ok(rt) => {
            let new_member_id = format!(
                "{}-{}",
                if ctx.client_id.is_empty() {
                    "member"
                } else {
                    &ctx.client_id
                },
                uuid::Uuid::new_v4()
            );
            rt.join(JoinRequest {
                group_id,
                member_id: req.member_id.to_string(),
                group_instance_id: if v >= 5 {
                    to_str(req.group_instance_id.as_ref())
                } else {
                    None
                },
                client_id: ctx.client_id.clone(),
                client_host: client_host(ctx.peer),
                session_timeout_ms: req.session_timeout_ms,
                // v0 has no rebalance timeout: the session timeout serves as one.
                rebalance_timeout_ms: if v >= 1 {
                    req.rebalance_timeout_ms
                } else {
                    req.session_timeout_ms
                },
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: v >= 4,
                new_member_id,
            })
            .await
        }
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(err(broker, ctx, result.error))
        .with_generation_id(result.generation_id)
        .with_leader(str_bytes(result.leader))
        .with_member_id(str_bytes(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.map(str_bytes)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    // protocol_name is nullable from v7 only; before, "" stands for none.
    resp.protocol_name = match (result.protocol_name, v >= 7) {
        (Some(n), _) => Some(str_bytes(n)),
        (None, true) => None,
        (None, false) => Some(StrBytes::default()),
    };
    if v >= 7 {
        resp.protocol_type = result.protocol_type.map(str_bytes);
    }
    if v >= 9 {
        resp.skip_assignment = result.skip_assignment;
    }
    resp
}

pub async fn sync_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let coordinator = group_access(broker, ctx, AclOperation::Read, &group_id)
        .and_then(|()| coordinator_for(broker, &group_id));
    let result = match coordinator {
        Err(e) => crate::group::SyncResult::error(e),
        Ok(rt) => {
            // Bound the wait like Kafka's client does: the sync is answered once the
            // leader's assignment arrives, at the latest when the group's rebalance
            // timeout evicts members that never sync.
            let bound = Duration::from_millis(
                u64::try_from(broker.config.group_max_session_timeout_ms).unwrap_or(0),
            );
            rt.sync(
                SyncRequest {
                    group_id,
                    member_id: req.member_id.to_string(),
                    group_instance_id: if v >= 3 {
                        to_str(req.group_instance_id.as_ref())
                    } else {
                        None
                    },
                    generation_id: req.generation_id,
                    protocol_type: if v >= 5 {
                        to_str(req.protocol_type.as_ref())
                    } else {
                        None
                    },
                    protocol_name: if v >= 5 {
                        to_str(req.protocol_name.as_ref())
                    } else {
                        None
                    },
                    assignments: req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect(),
                },
                bound,
            )
            .await
        }
    };
    let mut resp = SyncGroupResponse::default()
        .with_error_code(err(broker, ctx, result.error))
        .with_assignment(result.assignment);
    if v >= 5 {
        resp.protocol_type = result.protocol_type.map(str_bytes);
        resp.protocol_name = result.protocol_name.map(str_bytes);
    }
    resp
}

pub fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let coordinator = group_access(broker, ctx, AclOperation::Read, &group_id)
        .and_then(|()| coordinator_for(broker, &group_id));
    let result = match coordinator {
        Err(e) => Some(e),
        Ok(rt) => rt.heartbeat(
            &group_id,
            &req.member_id,
            if ctx.version >= 3 {
                req.group_instance_id.as_deref()
            } else {
                None
            },
            req.generation_id,
        ),
    };
    HeartbeatResponse::default().with_error_code(err(broker, ctx, result))
}

pub fn leave_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let members: Vec<MemberRef> = if v >= 3 {
        req.members
            .iter()
            .map(|m| MemberRef {
                member_id: m.member_id.to_string(),
                group_instance_id: to_str(m.group_instance_id.as_ref()),
            })
            .collect()
    } else {
        vec![MemberRef {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let left = group_access(broker, ctx, AclOperation::Read, &group_id)
        .and_then(|()| coordinator_for(broker, &group_id))
        .and_then(|s| s.leave(&group_id, &members));
    let errors = match left {
        Ok(errors) => errors,
        Err(e) => return LeaveGroupResponse::default().with_error_code(err(broker, ctx, Some(e))),
    };
    if v < 3 {
        return LeaveGroupResponse::default().with_error_code(err(broker, ctx, errors[0]));
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(errors)
            .map(|(m, e)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                    .with_error_code(err(broker, ctx, e))
            })
            .collect(),
    )
}

pub fn describe_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = ctx.version;
    let groups = req
        .groups
        .iter()
        .map(|g| {
            let out = DescribedGroup::default().with_group_id(g.clone());
            let described = group_access(broker, ctx, AclOperation::Describe, g)
                .and_then(|()| coordinator_for(broker, g))
                .and_then(|s| s.describe(g));
            let d = match described {
                Ok(d) => d,
                Err(e) => return out.with_error_code(err(broker, ctx, Some(e))),
            };
            let mut out = out
                .with_group_state(str_bytes(d.state.as_str()))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol_name))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(m.member_id))
                                .with_group_instance_id(if v >= 4 {
                                    m.group_instance_id.map(str_bytes)
                                } else {
                                    None
                                })
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                );
            if v >= 3 && req.include_authorized_operations {
                let image = broker.image();
                out.authorized_operations = super::acls::authorizer(broker, ctx, &image)
                    .authorized_operations(ResourceType::Group, g);
            }
            out
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn list_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let v = ctx.version;
    let rt = match runtime(broker) {
        Ok(rt) => rt,
        Err(e) => return ListGroupsResponse::default().with_error_code(err(broker, ctx, Some(e))),
    };
    let lower = |list: &[StrBytes]| list.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    let states = if v >= 4 {
        lower(&req.states_filter)
    } else {
        Vec::new()
    };
    let types = if v >= 5 {
        lower(&req.types_filter)
    } else {
        Vec::new()
    };
    // Every group with DESCRIBE on the cluster, else those it may describe (Kafka).
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let all = auth.cluster(AclOperation::Describe);
    let groups = rt
        .list()
        .into_iter()
        .filter(|(_, _, s)| listed(s.as_str(), &states, &types))
        .filter(|(id, _, _)| all || auth.authorize(AclOperation::Describe, ResourceType::Group, id))
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type));
            if v >= 4 {
                g.group_state = str_bytes(state.as_str());
            }
            if v >= 5 {
                g.group_type = str_bytes(GROUP_TYPE);
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Every group Fjord coordinates is a classic one (KIP-848's types: classic, consumer,
/// share, streams).
const GROUP_TYPE: &str = "classic";

/// ListGroups' filters (lower-cased; empty lets everything through): states (v4+,
/// KIP-518) and types (v5+, KIP-848), both matched without regard to case, as Kafka.
fn listed(state: &str, states: &[String], types: &[String]) -> bool {
    (states.is_empty() || states.contains(&state.to_lowercase()))
        && (types.is_empty() || types.iter().any(|t| t == GROUP_TYPE))
}

pub async fn delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let coordinator = group_access(broker, ctx, AclOperation::Delete, g)
            .and_then(|()| coordinator_for(broker, g));
        let e = match coordinator {
            Ok(rt) => rt.delete_group(g).await.err(),
            Err(e) => Some(e),
        };
        if e.is_none() {
            tracing::info!(group = %g.0, "deleted group");
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(err(broker, ctx, e)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use clap::Parser;
    use kafka_protocol::messages::ApiKey;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerConfig,
    }

    async fn broker(dir: &std::path::Path, flags: &[&str]) -> Arc<Broker> {
        let mut args = vec!["fjord", "--data-dir", dir.to_str().unwrap()];
        args.extend_from_slice(flags);
        let config = Cli::parse_from(args).broker;
        crate::server::test_broker(config).await.0
    }

    fn ctx(api_key: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_tests(api_key, version)
    }

    fn find(key: &str) -> FindCoordinatorRequest {
        FindCoordinatorRequest::default()
            .with_key(str_bytes(key.to_string()))
            .with_key_type(0)
    }

    fn heartbeat_error(broker: &Broker, group: &str) -> i16 {
        heartbeat(
            broker,
            &ctx(ApiKey::Heartbeat, 0),
            HeartbeatRequest::default()
                .with_group_id(GroupId(str_bytes(group.to_string())))
                .with_member_id(str_bytes("m".to_string()))
                .with_generation_id(1),
        )
        .error_code
    }

    #[tokio::test]
    async fn find_coordinator_creates_the_offsets_topic_and_names_its_leader() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path(), &["--offsets-topic-num-partitions", "4"]).await;
        assert!(b.image().topic(OFFSETS_TOPIC).is_none());
        // Before the topic exists no group is coordinated here.
        assert_eq!(
            heartbeat_error(&b, "g"),
            ResponseError::NotCoordinator.code()
        );

        let resp = find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3), find("g")).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.node_id, BrokerId(b.node_id()));
        let (host, port) = b.config.advertised();
        assert_eq!((resp.host.to_string(), resp.port), (host, port));
        assert_eq!(b.image().topic(OFFSETS_TOPIC).unwrap().partitions.len(), 4);
        // The group's shard loads in the background (NOT_COORDINATOR until the load
        // starts, COORDINATOR_LOAD_IN_PROGRESS during it); then the heartbeat reaches
        // the state machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let code = heartbeat_error(&b, "g");
            if code == ResponseError::UnknownMemberId.code() {
                break;
            }
            let loading = [
                ResponseError::NotCoordinator.code(),
                ResponseError::CoordinatorLoadInProgress.code(),
            ];
            assert!(
                loading.contains(&code) && std::time::Instant::now() < deadline,
                "heartbeat answered {code}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        // v4 batches keys; a second lookup does not create the topic again.
        let req = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![str_bytes("a".to_string()), str_bytes("b".to_string())]);
        let resp = find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 4), req).await;
        assert_eq!(resp.coordinators.len(), 2);
        for c in &resp.coordinators {
            assert_eq!((c.error_code, c.node_id), (0, BrokerId(b.node_id())));
        }
    }

    #[tokio::test]
    async fn one_broker_creates_the_offsets_topic_with_one_replica() {
        // offsets.topic.replication.factor 3 (the default) and default.replication.factor
        // 3: a broker that is its own only voter still creates the topic, with one replica.
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path(), &["--default-replication-factor", "3"]).await;
        assert_eq!(b.config.offsets_topic_replication_factor, 3);
        let resp = find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 1), find("g")).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.node_id, BrokerId(b.node_id()));
        let image = b.image();
        let topic = image.topic(OFFSETS_TOPIC).unwrap();
        assert_eq!(topic.partitions.len(), 50);
        for p in &topic.partitions {
            assert_eq!(p.replicas, vec![b.node_id()], "partition {}", p.partition);
        }
    }

    /// The first FindCoordinator for a transactional id creates `__transaction_state`
    /// (one replica on a one-voter cluster, min.insync.replicas capped by it) and
    /// names the leader of the id's partition.
    #[tokio::test]
    async fn find_coordinator_for_a_transaction_creates_the_transaction_state_topic() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path(), &["--transaction-state-log-num-partitions", "5"]).await;
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![str_bytes("txn".to_string())]);
        let resp = find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 4), req).await;
        assert_eq!(
            resp.coordinators[0].error_code, 0,
            "{:?}",
            resp.coordinators[0]
        );
        assert_eq!(resp.coordinators[0].node_id, BrokerId(b.node_id()));
        let image = b.image();
        let topic = image.topic(TRANSACTION_STATE_TOPIC).unwrap();
        assert_eq!(topic.partitions.len(), 5);
        assert_eq!(
            topic.configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        for p in &topic.partitions {
            assert_eq!(p.replicas, vec![b.node_id()], "partition {}", p.partition);
        }
    }

    #[test]
    fn list_groups_filters_by_state_and_type_without_regard_to_case() {
        let lower = |l: &[&str]| l.iter().map(|x| x.to_lowercase()).collect::<Vec<_>>();
        assert!(listed("Stable", &[], &[]));
        assert!(listed("Stable", &lower(&["stable"]), &lower(&["Classic"])));
        assert!(!listed("Stable", &lower(&["Empty"]), &[]));
        assert!(!listed("Stable", &[], &lower(&["consumer", "share"])));
    }
}
