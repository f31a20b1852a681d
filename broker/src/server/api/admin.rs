//! Topic administration (CreateTopics, DeleteTopics, CreatePartitions), producer ids
//! (InitProducerId) and DescribeCluster. Decisions come from `metadata::admin`; this
//! layer maps the wire types in and out.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::config::{effective_topic_config, TOPIC_CONFIGS};
use crate::metadata::admin::{
    plan_create_partitions, plan_create_topic, plan_delete_topic, AdminError, NewTopic,
};
use crate::metadata::image::MetadataRecord;
use crate::server::broker::Broker;

pub async fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let v = ctx.version;
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results = Vec::with_capacity(req.topics.len());
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    // CREATE on the cluster creates any topic; else CREATE on the topic (Kafka).
    let cluster_create = auth.cluster(AclOperation::Create);
    // Refused up front, or planned together below: one metadata entry for the request.
    let mut outcomes: Vec<Option<Result<MetadataRecord, AdminError>>> = Vec::new();
    let mut to_plan: Vec<NewTopic> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let refused = if duplicated.contains(&name) {
            Some(AdminError {
                code: ResponseError::InvalidRequest,
                message: format!("topic {name:?} appears more than once in the request"),
            })
        } else if !cluster_create
            && !auth.authorize(AclOperation::Create, ResourceType::Topic, &name)
        {
            Some(denied(ctx, "create", &name))
        } else {
            None
        };
        match refused {
            Some(e) => outcomes.push(Some(Err(e))),
            None => {
                outcomes.push(None);
                to_plan.push(new_topic(name, t));
            }
        }
    }
    let mut planned = broker
        .change_metadata_each(!req.validate_only, &to_plan, |image, new| {
            plan_create_topic(
                image,
                &broker.live_brokers(image),
                new,
                broker.config.num_partitions,
                broker.config.default_replication_factor,
            )
        })
        .await
        .into_iter();
    for (t, outcome) in req.topics.into_iter().zip(outcomes) {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        let outcome = outcome
            .or_else(|| planned.next())
            .expect("one planned outcome per topic not refused");
        match outcome {
            Ok(MetadataRecord::TopicCreated {
                id,
                partitions,
                configs,
                ..
            }) => {
                tracing::info!(topic = %name, partitions = partitions.len(), validate_only = req.validate_only, "created topic");
                if v >= 5 {
                    result.num_partitions = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
                    result.replication_factor =
                        partitions.first().map_or(0, |p| p.replicas.len() as i16);
                    // The effective configs only to whom may describe them.
                    if auth.authorize(AclOperation::DescribeConfigs, ResourceType::Topic, &name) {
                        result.configs = Some(describe_for_create(broker, &configs));
                    } else {
                        result.topic_config_error_code =
                            ResponseError::TopicAuthorizationFailed.code();
                    }
                }
                if v >= 7 && !req.validate_only {
                    result.topic_id = id;
                }
            }
            Ok(other) => unreachable!("create planned {other:?}"),
            Err(e) => {
                count_error(broker, ctx.api_key, e.code.code());
                result.error_code = e.code.code();
                result.error_message = Some(str_bytes(e.message));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn new_topic(name: String, t: &CreatableTopic) -> NewTopic {
    NewTopic {
        name,
        num_partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignments: t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect(),
        configs: t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect(),
    }
}

/// TOPIC_AUTHORIZATION_FAILED for `op` on `topic`.
fn denied(ctx: &RequestContext, op: &str, topic: &str) -> AdminError {
    AdminError {
        code: ResponseError::TopicAuthorizationFailed,
        message: format!("{} may not {op} topic {topic:?}", ctx.principal),
    }
}

/// CreateTopics v5+ reports the new topic's effective configs.
fn describe_for_create(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let value = effective_topic_config(def.name, overrides, &broker.defaults);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(def.name))
                .with_value(value.map(str_bytes))
                .with_config_source(if overrides.contains_key(def.name) {
                    1
                } else {
                    5
                })
        })
        .collect()
}

pub async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let v = ctx.version;
    // v6 names topics by name or id; older versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if v >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    let cluster_delete = {
        let image = broker.image();
        super::acls::authorizer(broker, ctx, &image).cluster(AclOperation::Delete)
    };
    for (name, id) in targets {
        let image = broker.image();
        let auth = super::acls::authorizer(broker, ctx, &image);
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => image.topic_by_id(&id).map(|t| t.name.clone()),
        };
        let may = |op, n: &str| cluster_delete || auth.authorize(op, ResourceType::Topic, n);
        let describable = resolved
            .as_deref()
            .is_some_and(|n| may(AclOperation::Describe, n));
        // A topic named by id that the principal may not describe keeps its name hidden.
        let shown = resolved.clone().filter(|_| name.is_some() || describable);
        let mut result =
            DeletableTopicResult::default().with_name(shown.map(|n| TopicName(str_bytes(n))));
        if v >= 6 {
            result.topic_id = image
                .topic(resolved.as_deref().unwrap_or(""))
                .filter(|_| describable)
                .map_or(id, |t| t.id);
        }
        let outcome = match &resolved {
            None => Err(AdminError {
                code: ResponseError::UnknownTopicId,
                message: format!("no topic with id {id}"),
            }),
            // Kafka's order: not describable, then unknown, then not deletable.
            Some(n) if !describable => Err(denied(ctx, "describe", n)),
            Some(n) if image.topic(n).is_none() => Err(AdminError {
                code: ResponseError::UnknownTopicOrPartition,
                message: format!("topic {n:?} does not exist"),
            }),
            Some(n) if !may(AclOperation::Delete, n) => Err(denied(ctx, "delete", n)),
            Some(n) if n.starts_with("__") => Err(AdminError {
                code: ResponseError::InvalidTopicException,
                message: format!("internal topic {n:?} cannot be deleted"),
            }),
            Some(n) => broker
                .change_metadata(true, |image| plan_delete_topic(image, n))
                .await
                .map(|_| ()),
        };
        match outcome {
            Ok(()) => tracing::info!(topic = ?resolved, "deleted topic"),
            Err(e) => {
                count_error(broker, ctx.api_key, e.code.code());
                result.error_code = e.code.code();
                if v >= 5 {
                    result.error_message = Some(str_bytes(e.message));
                }
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    for t in req.topics {
        let name = t.name.0.to_string();
        if !auth.authorize(AclOperation::Alter, ResourceType::Topic, &name) {
            let e = denied(ctx, "alter", &name);
            count_error(broker, ctx.api_key, e.code.code());
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            );
            continue;
        }
        let assignments = t.assignments.map(|a| {
            a.into_iter()
                .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = broker
            .change_metadata(!req.validate_only, |image| {
                let brokers = broker.live_brokers(image);
                plan_create_partitions(image, &brokers, &name, t.count, assignments)
            })
            .await;
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name);
        match outcome {
            Ok(_) => {
                tracing::info!(topic = %name, count = t.count, validate_only = req.validate_only, "grew topic")
            }
            Err(e) => {
                count_error(broker, ctx.api_key, e.code.code());
                result.error_code = e.code.code();
                result.error_message = Some(str_bytes(e.message));
            }
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |code: ResponseError| {
        count_error(broker, ctx.api_key, code.code());
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // An empty transactional id is none, as Kafka reads it.
    if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        return super::txn::init_producer_id(broker, ctx, &req, &id.0.to_string()).await;
    }
    // IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    if !auth.cluster(AclOperation::IdempotentWrite)
        && !auth.authorize_by_resource_type(AclOperation::Write, ResourceType::Topic)
    {
        return fail(ResponseError::ClusterAuthorizationFailed);
    }
    // An idempotent producer gets a fresh id with epoch 0, also when it asks to bump
    // an old one (KIP-360): a new id fences nothing and restarts its sequences at 0.
    match broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "could not reserve producer ids");
            fail(ResponseError::KafkaStorageError)
        }
    }
}

pub fn describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let listed = broker.cluster_brokers(&ctx.listener);
    let controller_id = broker.controller_id(&listed);
    let brokers = listed
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id))
        .with_brokers(brokers);
    if req.include_cluster_authorized_operations {
        // Kafka answers DescribeCluster to anyone; the operations only to whom may
        // describe the cluster.
        let image = broker.image();
        let auth = super::acls::authorizer(broker, ctx, &image);
        resp.cluster_authorized_operations = if auth.cluster(AclOperation::Describe) {
            auth.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    if ctx.version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        // 1 = brokers; 2 = controllers, which are not exposed separately.
        if req.endpoint_type != 1 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.brokers.clear();
            count_error(broker, ctx.api_key, resp.error_code);
        }
    }
    resp
}
