//! Partition reassignment (KIP-455): AlterPartitionReassignments starts or cancels
//! moves that the controller carries out (add the target replicas, wait until they
//! are in sync, move leadership, drop the old replicas); ListPartitionReassignments
//! shows the moves in progress from this broker's metadata image.
//! UnregisterBroker removes a stopped, emptied broker from the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::AclOperation;
use crate::replication::TopicPartition;
use crate::server::broker::Broker;

pub async fn alter(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // v0 allows changing the replication factor; v1 asks (KIP-860).
    let allow_rf_change = ctx.version < 1 || req.allow_replication_factor_change;
    let denied = super::acls::cluster_denied(broker, ctx, AclOperation::Alter);
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let outcome = match &denied {
                Some(e) => Err((e.code, e.message.clone())),
                None => {
                    reassign_one(broker, &name, p.partition_index, target, allow_rf_change).await
                }
            };
            let mut resp =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            if let Err((code, message)) = outcome {
                count_error(broker, ctx.api_key, code.code());
                resp.error_code = code.code();
                resp.error_message = Some(str_bytes(message));
            }
            partitions.push(resp);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let mut resp = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if let Some(e) = denied {
        resp.error_code = e.code.code();
        resp.error_message = Some(str_bytes(e.message));
    }
    if ctx.version >= 1 {
        resp.allow_replication_factor_change = req.allow_replication_factor_change;
    }
    resp
}

async fn reassign_one(
    broker: &Broker,
    topic: &str,
    index: i32,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> Result<(), (ResponseError, String)> {
    let mut image = broker.image();
    if image.partition(topic, index).is_none() {
        // Created a moment ago through another broker: the controller has it, this
        // broker may not have installed it yet.
        image = broker.synced_image().await;
    }
    let (Some(t), Some(state)) = (image.topic(topic), image.partition(topic, index)) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} partition {index} does not exist"),
        ));
    };
    if let Some(target) = &target {
        let current_rf = state.replicas.len() - state.adding_replicas.len();
        if !allow_rf_change && target.len() != current_rf {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "the reassignment changes the replication factor from {current_rf} to {}",
                    target.len()
                ),
            ));
        }
        if let Some(b) = target.iter().find(|&&b| image.broker(b).is_none()) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("broker {b} is not registered"),
            ));
        }
    }
    let tp = TopicPartition {
        topic_id: t.id,
        partition: index,
    };
    broker
        .alter_reassignment(tp, target.clone())
        .await
        .map_err(|code| (code, format!("topic {topic:?} partition {index}: {code}")))?;
    tracing::info!(topic, partition = index, ?target, "reassignment requested");
    Ok(())
}

pub fn list(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if let Some(e) = super::acls::cluster_denied(broker, ctx, AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let image = broker.image();
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&index)),
    };
    let topics = image
        .topics()
        .filter_map(|t| {
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .filter(|p| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty())
                .filter(|p| wanted(&t.name, p.partition))
                .map(|p| {
                    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect();
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.partition)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// UnregisterBroker (KIP-631): a broker leaves the cluster for good. Refused for a
/// metadata quorum voter (the quorum does not shrink), while the broker still holds
/// replicas (reassign them first: dropping it would lose copies) and while it runs (it
/// would register again).
pub async fn unregister_broker(
    broker: &Broker,
    ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let id = req.broker_id.0;
    if let Some(e) = super::acls::cluster_denied(broker, ctx, AclOperation::Alter) {
        return UnregisterBrokerResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let outcome = match check_unregister(broker, id) {
        Ok(()) => broker
            .unregister_broker(id)
            .await
            .map_err(|code| (code, format!("broker {id}: {code}"))),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(broker = id, "broker unregistered");
            UnregisterBrokerResponse::default()
        }
        Err((code, message)) => {
            count_error(broker, ctx.api_key, code.code());
            UnregisterBrokerResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
        }
    }
}

fn check_unregister(broker: &Broker, id: i32) -> Result<(), (ResponseError, String)> {
    let image = broker.image();
    let state = image.broker(id).ok_or((
        ResponseError::BrokerIdNotRegistered,
        format!("broker {id} is not registered"),
    ))?;
    // Only the controller's view of the membership is authoritative; this one is
    // what the local Raft node last learnt, which is enough to answer early.
    if broker
        .quorum()
        .is_some_and(|q| q.status().voters.contains(&id))
    {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker {id} is a metadata quorum voter; voters cannot leave the quorum"),
        ));
    }
    if !state.fenced {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker {id} is running; stop it before unregistering it"),
        ));
    }
    let held = image
        .topics()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.is_replica(id))
        .count();
    if held > 0 {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker {id} still holds replicas of {held} partitions; reassign them first"),
        ));
    }
    Ok(())
}
