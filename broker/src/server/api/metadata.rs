//! Metadata: brokers, topics with their ids, partitions, leaders and ISR, from this
//! broker's image; unknown topics are created when auto-creation is on.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::metadata::admin::{plan_create_topic, validate_topic_name, NewTopic};
use crate::metadata::image::{MetadataImage, PartitionState, TopicState};
use crate::server::broker::{Broker, ClusterBroker};

fn broker_entries(listed: Vec<ClusterBroker>) -> Vec<MetadataResponseBroker> {
    listed
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect()
}

/// `hidden_leader`: a broker cut off from the controller does not name itself leader
/// (its metadata may be stale; clients ask another broker).
fn topic_entry(
    t: &TopicState,
    version: i16,
    image: &MetadataImage,
    hidden_leader: Option<i32>,
) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let leader = if Some(p.leader) == hidden_leader {
                -1
            } else {
                p.leader
            };
            let mut e = MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect());
            if version >= 7 {
                e.leader_epoch = p.leader_epoch;
            }
            if version >= 5 {
                e.offline_replicas = offline_replicas(p, image);
            }
            if leader < 0 {
                e.error_code = ResponseError::LeaderNotAvailable.code();
            }
            e
        })
        .collect();
    let mut e = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_partitions(partitions);
    if version >= 1 {
        e.is_internal = t.is_internal();
    }
    if version >= 10 {
        e.topic_id = t.id;
    }
    e
}

/// Replicas whose broker reported them unusable, or on fenced brokers.
pub(super) fn offline_replicas(p: &PartitionState, image: &MetadataImage) -> Vec<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .filter(|&r| p.offline_replicas.contains(&r) || image.broker(r).is_some_and(|b| b.fenced))
        .map(BrokerId)
        .collect()
}

pub(super) fn hidden(broker: &Broker) -> Option<i32> {
    broker.is_cut_off().then(|| broker.node_id())
}

fn error_topic(name: Option<TopicName>, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(code.code())
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    let v = ctx.version;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        Some(list) if v == 0 && list.is_empty() => None,
        other => other,
    };
    let allow_auto_create = v < 4 || req.allow_auto_topic_creation;
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let describable =
        |name: &str| auth.authorize(AclOperation::Describe, ResourceType::Topic, name);
    let mut topics = Vec::new();
    match requested {
        // All topics: only those the principal may describe, without a word on the rest.
        None => {
            topics.extend(
                image
                    .topics()
                    .filter(|t| describable(&t.name))
                    .map(|t| topic_entry(t, v, &image, hidden(broker))),
            );
        }
        Some(list) => {
            // Answer each name once, in request order.
            let mut seen = BTreeMap::new();
            for t in list {
                let name = t.name.clone();
                let key = name.as_ref().map(|n| n.0.to_string());
                if let Some(k) = &key {
                    if seen.insert(k.clone(), ()).is_some() {
                        continue;
                    }
                }
                let image_now = broker.image();
                topics.push(match key {
                    // Refused whether or not it exists, so existence is not disclosed.
                    Some(name) if !describable(&name) => {
                        error_topic(t.name, ResponseError::TopicAuthorizationFailed)
                    }
                    Some(name) => {
                        let may_create = auth.cluster(AclOperation::Create)
                            || auth.authorize(AclOperation::Create, ResourceType::Topic, &name);
                        let create = allow_auto_create.then_some(may_create);
                        lookup_or_create(broker, v, &name, create).await
                    }
                    None => match image_now.topic_by_id(&t.topic_id) {
                        Some(state) if !describable(&state.name) => {
                            let mut e = error_topic(None, ResponseError::TopicAuthorizationFailed);
                            e.topic_id = t.topic_id;
                            e
                        }
                        Some(state) => topic_entry(state, v, &image_now, hidden(broker)),
                        None => {
                            let mut e = error_topic(None, ResponseError::UnknownTopicId);
                            e.topic_id = t.topic_id;
                            e
                        }
                    },
                });
            }
        }
    }
    for t in &mut topics {
        count_error(broker, ctx.api_key, t.error_code);
        if v >= 8 && req.include_topic_authorized_operations {
            if let Some(name) = t
                .name
                .as_ref()
                .filter(|_| t.error_code != ResponseError::TopicAuthorizationFailed.code())
            {
                t.topic_authorized_operations =
                    auth.authorized_operations(ResourceType::Topic, name);
            }
        }
    }
    let mut resp = MetadataResponse::default().with_topics(topics);
    if (8..=10).contains(&v) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = if auth.cluster(AclOperation::Describe) {
            auth.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    let listed = broker.cluster_brokers(&ctx.listener);
    if v >= 1 {
        resp.controller_id = BrokerId(broker.controller_id(&listed));
    }
    resp.brokers = broker_entries(listed);
    if v >= 2 {
        resp.cluster_id = Some(str_bytes(broker.cluster_id.clone()));
    }
    resp
}

/// `create`: None when the request does not allow auto-creation, else whether the
/// principal may create the topic (CREATE on the cluster or the topic).
async fn lookup_or_create(
    broker: &Broker,
    v: i16,
    name: &str,
    create: Option<bool>,
) -> MetadataResponseTopic {
    let topic_name = || Some(TopicName(str_bytes(name.to_string())));
    let image = broker.image();
    if let Some(t) = image.topic(name) {
        return topic_entry(t, v, &image, hidden(broker));
    }
    if validate_topic_name(name).is_err() {
        return error_topic(topic_name(), ResponseError::InvalidTopicException);
    }
    if create.is_none() || !broker.config.auto_create_topics || name.starts_with("__") {
        return error_topic(topic_name(), ResponseError::UnknownTopicOrPartition);
    }
    if create == Some(false) {
        return error_topic(topic_name(), ResponseError::TopicAuthorizationFailed);
    }
    let new = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![],
        configs: BTreeMap::new(),
    };
    let created = broker
        .change_metadata(true, |image| {
            plan_create_topic(
                image,
                &broker.live_brokers(image),
                &new,
                broker.config.num_partitions,
                broker.config.default_replication_factor,
            )
        })
        .await;
    match created {
        Ok(_) => tracing::info!(topic = name, "auto-created topic"),
        // Another request may have created it meanwhile; the image below tells.
        Err(e) => tracing::debug!(topic = name, error = %e.message, "auto-creation did not happen"),
    }
    let image = broker.image();
    match image.topic(name) {
        Some(t) => topic_entry(t, v, &image, hidden(broker)),
        None => error_topic(topic_name(), ResponseError::UnknownTopicOrPartition),
    }
}
