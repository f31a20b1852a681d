//! Consumer group APIs (classic protocol): FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
//! DeleteGroups, OffsetDelete. Decisions come from `group::GroupCoordinator` through
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
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{count_error, str_bytes, RequestContext};
use crate::config::listeners::Listener;
use crate::group::{
    partition_for, CommitRequest, JoinRequest, MemberRef, OffsetValue, SyncRequest, OFFSETS_TOPIC,
};
use crate::metadata::image::{MetadataImage, PartitionState};
use crate::server::broker::Broker;
use crate::server::coordinator::{self, client_host, to_str, GroupRuntime, Shard};

/// offset.metadata.max.bytes (Kafka's default).
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

fn err(broker: &Broker, ctx: &RequestContext, e: Option<ResponseError>) -> i16 {
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
fn coordinator_for(broker: &Broker, group_id: &str) -> Result<Arc<Shard>, ResponseError> {
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
        coordinator::create_offsets_topic(broker).await?;
    }
    let image = broker.image();
    let leader = offsets_partition(&image, group_id)
        .ok_or(ResponseError::CoordinatorNotAvailable)?
        .leader;
    if leader < 0 {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    // The coordinator's endpoint on the listener the client used; a coordinator
    // without that listener cannot be reached by this client.
    match image.broker(leader) {
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
    let lookup = |key: String| async move {
        match req.key_type {
            0 => find_group_coordinator(broker, &ctx.listener, &key).await,
            // Transactions are not served (InitProducerId refuses transactional ids),
            // so there is no transaction coordinator to name. Kafka answers this
            // retriable code while its transaction state topic is unavailable.
            1 => Err(ResponseError::CoordinatorNotAvailable),
            _ => Err(ResponseError::InvalidRequest),
        }
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
                Err(e) => c
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(err(broker, ctx, Some(e)))
                    .with_error_message(Some(str_bytes(e.to_string()))),
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
        Err(e) => {
            resp.error_code = err(broker, ctx, Some(e));
            resp.node_id = BrokerId(-1);
            resp.port = -1;
            if v >= 1 {
                resp.error_message = Some(str_bytes(e.to_string()));
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
    let result = match coordinator_for(broker, &group_id) {
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
    let result = match coordinator_for(broker, &group_id) {
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
    let result = match coordinator_for(broker, &group_id) {
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
    let errors = match coordinator_for(broker, &group_id).and_then(|s| s.leave(&group_id, &members))
    {
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

pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let image = broker.image();
    // Commit times are record timestamps: wall clock.
    let now = broker.clock.wall_ms();
    // Per partition: an error of its own, or None and a place in the commit.
    let mut per_partition: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    let mut offsets = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
            let own = if image.partition(&t.name, p.partition_index).is_none() {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                None
            };
            if own.is_none() {
                offsets.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                        metadata,
                        commit_timestamp_ms: now,
                    },
                ));
            }
            per_partition.push((ti, p.partition_index, own));
        }
    }
    let group_error = match coordinator_for(broker, &group_id) {
        Err(e) => Some(e),
        Ok(rt) => {
            let committed = rt.commit(CommitRequest {
                group_id,
                member_id: req.member_id.to_string(),
                group_instance_id: if v >= 7 {
                    to_str(req.group_instance_id.as_ref())
                } else {
                    None
                },
                generation_id: req.generation_id_or_member_epoch,
                offsets,
            });
            committed.await.err()
        }
    };
    let mut topics: Vec<OffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| OffsetCommitResponseTopic::default().with_name(t.name.clone()))
        .collect();
    for (ti, partition, own) in per_partition {
        topics[ti].partitions.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(err(broker, ctx, own.or(group_error))),
        );
    }
    OffsetCommitResponse::default().with_topics(topics)
}

type Wanted = Option<Vec<(String, i32)>>;
/// Committed offsets by topic, each partition with its offset if any.
type ByTopic = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

/// Committed offsets of one group: Ok(topic → partitions) or a group-level error.
fn fetch_group(broker: &Broker, group_id: &str, wanted: &Wanted) -> Result<ByTopic, ResponseError> {
    let found = coordinator_for(broker, group_id)?.fetch_offsets(group_id, wanted.as_deref())?;
    // require_stable (KIP-447) waits for pending transactional offsets; without
    // transactions no offset is ever pending, so every answer is stable.
    let mut by_topic: ByTopic = Vec::new();
    for (t, p, v) in found {
        match by_topic.iter_mut().find(|(n, _)| *n == t) {
            Some((_, ps)) => ps.push((p, v)),
            None => by_topic.push((t, vec![(p, v)])),
        }
    }
    Ok(by_topic)
}

fn wanted_v1_7(req: &OffsetFetchRequest, v: i16) -> Wanted {
    // v1 always names partitions; from v2 null asks for every committed offset.
    let topics = req.topics.as_ref()?;
    let _ = v;
    Some(
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.0.to_string(), *p))
            })
            .collect(),
    )
}

pub fn offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version;
    let none = |p: i32| (p, None::<OffsetValue>);
    if v >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let group_id = g.group_id.0.to_string();
                let wanted: Wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .flat_map(|t| {
                            t.partition_indexes
                                .iter()
                                .map(move |p| (t.name.0.to_string(), *p))
                        })
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetch_group(broker, &group_id, &wanted) {
                    Ok(topics) => {
                        out.topics = topics
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(t)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, o)| {
                                                let o = o.as_ref();
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(
                                                        o.map_or(-1, |o| o.offset),
                                                    )
                                                    .with_committed_leader_epoch(
                                                        o.map_or(-1, |o| o.leader_epoch),
                                                    )
                                                    .with_metadata(Some(str_bytes(
                                                        o.map_or(String::new(), |o| {
                                                            o.metadata.clone()
                                                        }),
                                                    )))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect();
                    }
                    Err(e) => out.error_code = err(broker, ctx, Some(e)),
                }
                out
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group_id = req.group_id.0.to_string();
    let wanted = wanted_v1_7(&req, v);
    let partition = |p: i32, o: Option<&OffsetValue>, e: i16| {
        let mut r = OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(o.map_or(-1, |o| o.offset))
            .with_metadata(Some(str_bytes(
                o.map_or(String::new(), |o| o.metadata.clone()),
            )))
            .with_error_code(e);
        if v >= 5 {
            r.committed_leader_epoch = o.map_or(-1, |o| o.leader_epoch);
        }
        r
    };
    match fetch_group(broker, &group_id, &wanted) {
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| partition(p, o.as_ref(), 0))
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => {
            let c = err(broker, ctx, Some(e));
            // v1 has no top-level error: every partition carries it.
            let topics = req
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    let (p, o) = none(*p);
                                    partition(p, o.as_ref(), c)
                                })
                                .collect(),
                        )
                })
                .collect();
            let mut resp = OffsetFetchResponse::default().with_topics(topics);
            if v >= 2 {
                resp.error_code = c;
            }
            resp
        }
    }
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
            let d = match coordinator_for(broker, g).and_then(|s| s.describe(g)) {
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
                // No ACLs: every group operation is allowed (READ, DELETE, DESCRIBE).
                out.authorized_operations = (1 << 3) | (1 << 6) | (1 << 8);
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
    let filter: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let groups = rt
        .list()
        .into_iter()
        .filter(|(_, _, s)| filter.is_empty() || filter.contains(&s.as_str().to_lowercase()))
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type));
            if v >= 4 {
                g.group_state = str_bytes(state.as_str());
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let e = match coordinator_for(broker, g) {
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

pub async fn offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let result = match coordinator_for(broker, &group_id) {
        Ok(rt) => rt.delete_offsets(&group_id, &wanted).await,
        Err(e) => Err(e),
    };
    match result {
        Err(e) => OffsetDeleteResponse::default().with_error_code(err(broker, ctx, Some(e))),
        Ok(errors) => {
            let mut errors = errors.into_iter();
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(err(broker, ctx, errors.next().flatten()))
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
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
        RequestContext {
            api_key,
            version,
            correlation_id: 1,
            client_id: "test".into(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            listener: crate::config::listeners::Listener::plaintext_for_tests(),
            principal: crate::auth::Principal::anonymous(),
        }
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
}
