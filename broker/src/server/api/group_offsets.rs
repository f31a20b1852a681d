//! Consumer group offset APIs: OffsetCommit, TxnOffsetCommit, OffsetFetch,
//! OffsetDelete. Offsets are written by the group's coordinator
//! (`server::coordinator`) as acks=all records of `__consumer_offsets`; this layer maps
//! the wire types in and out, gating fields by version.

use kafka_protocol::error::ResponseError;
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
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::acls::group_access;
use super::groups::{coordinator_for, err};
use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::group::{CommitRequest, OffsetValue, TxnCommitRequest};
use crate::server::broker::Broker;
use crate::server::coordinator::to_str;

/// offset.metadata.max.bytes (Kafka's default).
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    // READ on the group, then READ on each topic (Kafka).
    let group_denied = group_access(broker, ctx, AclOperation::Read, &group_id).err();
    // Commit times are record timestamps: wall clock.
    let now = broker.clock.wall_ms();
    // Per partition: an error of its own, or None and a place in the commit.
    let mut per_partition: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    let mut offsets = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let may_read = auth.authorize(AclOperation::Read, ResourceType::Topic, &t.name);
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
            let own = if group_denied.is_some() {
                group_denied
            } else if !may_read {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if image.partition(&t.name, p.partition_index).is_none() {
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
        _ if group_denied.is_some() => group_denied,
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

/// TxnOffsetCommit (KIP-98): offsets a transactional producer commits for a consumer
/// group inside its transaction; the coordinator keeps them pending until the
/// transaction's marker. Checks as Kafka's: WRITE on the transactional id, READ on the
/// group, READ on each topic, then the coordinator's (KIP-447 member and generation
/// from v3, the producer epoch through the log). v4 differs from v3 only by allowing
/// TRANSACTION_ABORTABLE, which is never answered here.
pub async fn txn_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let denied = if !auth.authorize(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        group_access(broker, ctx, AclOperation::Read, &group_id).err()
    };
    let now = broker.clock.wall_ms();
    let mut per_partition: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    let mut offsets = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let may_read = auth.authorize(AclOperation::Read, ResourceType::Topic, &t.name);
        let exists = image.topic(&t.name).is_some();
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
            let own = if denied.is_some() {
                denied
            } else if !may_read {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !exists {
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
                        // v2+ carries it; the wire type defaults it to -1 before.
                        leader_epoch: p.committed_leader_epoch,
                        metadata,
                        commit_timestamp_ms: now,
                    },
                ));
            }
            per_partition.push((ti, p.partition_index, own));
        }
    }
    let request_error = match denied {
        Some(e) => Some(e),
        // Every partition refused already: nothing for the coordinator to write.
        None if offsets.is_empty() => None,
        None => match coordinator_for(broker, &group_id) {
            Err(e) => Some(e),
            Ok(shard) => shard
                .txn_commit(TxnCommitRequest {
                    group_id,
                    producer_id: req.producer_id.0,
                    producer_epoch: req.producer_epoch,
                    // Before v3 the wire type holds the defaults: no member, -1.
                    member_id: req.member_id.to_string(),
                    group_instance_id: to_str(req.group_instance_id.as_ref()),
                    generation_id: req.generation_id,
                    offsets,
                })
                .await
                .err(),
        },
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()))
        .collect();
    for (ti, partition, own) in per_partition {
        topics[ti].partitions.push(
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(err(broker, ctx, own.or(request_error))),
        );
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

type Wanted = Option<Vec<(String, i32)>>;
/// Topics (with the partitions asked) the principal may not describe.
type Denied = Vec<(String, Vec<i32>)>;
/// Committed offsets by topic, each partition with its offset if any, or its error
/// (UNSTABLE_OFFSET_COMMIT).
type ByTopic = Vec<(
    String,
    Vec<(i32, Result<Option<OffsetValue>, ResponseError>)>,
)>;

/// Committed offsets of one group: Ok(topic → partitions) or a group-level error.
/// As in Kafka: GROUP_AUTHORIZATION_FAILED without DESCRIBE on the group; topics the
/// principal may not describe are not read: named ones come back in `.1` (answered
/// TOPIC_AUTHORIZATION_FAILED), and with every topic asked they are left out.
fn fetch_group(
    broker: &Broker,
    ctx: &RequestContext,
    group_id: &str,
    wanted: &Wanted,
    require_stable: bool,
) -> Result<(ByTopic, Denied), ResponseError> {
    group_access(broker, ctx, AclOperation::Describe, group_id)?;
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let describable = |t: &str| auth.authorize(AclOperation::Describe, ResourceType::Topic, t);
    let mut denied: Denied = Vec::new();
    let wanted: Wanted = wanted.as_ref().map(|w| {
        w.iter()
            .filter(|(t, p)| {
                let ok = describable(t);
                if !ok {
                    match denied.iter_mut().find(|(n, _)| n == t) {
                        Some((_, ps)) => ps.push(*p),
                        None => denied.push((t.clone(), vec![*p])),
                    }
                }
                ok
            })
            .cloned()
            .collect()
    });
    // require_stable (KIP-447): a partition with a pending transactional offset answers
    // UNSTABLE_OFFSET_COMMIT and the consumer retries until the transaction ends.
    let found = coordinator_for(broker, group_id)?.fetch_stable_offsets(
        group_id,
        wanted.as_deref(),
        require_stable,
    )?;
    let mut by_topic: ByTopic = Vec::new();
    for (t, p, v) in found.into_iter().filter(|(t, _, _)| describable(t)) {
        match by_topic.iter_mut().find(|(n, _)| *n == t) {
            Some((_, ps)) => ps.push((p, v)),
            None => by_topic.push((t, vec![(p, v)])),
        }
    }
    Ok((by_topic, denied))
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
                match fetch_group(broker, ctx, &group_id, &wanted, req.require_stable) {
                    Ok((topics, denied)) => {
                        out.topics = topics
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(t)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, o)| {
                                                let code = match &o {
                                                    Ok(_) => 0,
                                                    Err(e) => err(broker, ctx, Some(*e)),
                                                };
                                                let o = o.ok().flatten();
                                                let o = o.as_ref();
                                                OffsetFetchResponsePartitions::default()
                                                    .with_error_code(code)
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
                        let code = err(broker, ctx, Some(ResponseError::TopicAuthorizationFailed));
                        out.topics.extend(denied.into_iter().map(|(t, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(StrBytes::default()))
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        }));
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
    // require_stable is v7's; the wire type holds false before.
    match fetch_group(broker, ctx, &group_id, &wanted, req.require_stable) {
        Ok((topics, denied)) => {
            let found = topics.into_iter().map(|(t, ps)| {
                let ps: Vec<_> = ps
                    .into_iter()
                    .map(|(p, o)| match o {
                        Ok(o) => partition(p, o.as_ref(), 0),
                        Err(e) => partition(p, None, err(broker, ctx, Some(e))),
                    })
                    .collect();
                (t, ps)
            });
            let code = ResponseError::TopicAuthorizationFailed.code();
            let denied = denied.into_iter().map(|(t, ps)| {
                count_error(broker, ctx.api_key, code);
                let ps: Vec<_> = ps.into_iter().map(|p| partition(p, None, code)).collect();
                (t, ps)
            });
            OffsetFetchResponse::default().with_topics(
                found
                    .chain(denied)
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        }
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

pub async fn offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    // DELETE on the group, READ on each topic (Kafka).
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| auth.authorize(AclOperation::Read, ResourceType::Topic, &t.name))
        .collect();
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, &r)| r)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let coordinator = group_access(broker, ctx, AclOperation::Delete, &group_id)
        .and_then(|()| coordinator_for(broker, &group_id));
    let result = match coordinator {
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
                .zip(readable)
                .map(|(t, readable)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let e = if readable {
                                        errors.next().flatten()
                                    } else {
                                        Some(ResponseError::TopicAuthorizationFailed)
                                    };
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(err(broker, ctx, e))
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
