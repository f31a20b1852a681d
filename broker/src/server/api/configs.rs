//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics,
//! groups and brokers (the broker's static configs read-only, its dynamic ones, the
//! replication quota rates, per broker id or as the cluster default).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, Authorizer, ResourceType};
use crate::config::{
    effective_topic_config, group_config_def, ConfigType, TopicConfigDef, TopicDefaults,
    BROKER_DYNAMIC_CONFIGS, GROUP_CONFIGS, TOPIC_CONFIGS,
};
use crate::metadata::admin::{
    plan_alter_broker_configs, plan_alter_group_configs, plan_alter_topic_configs,
    replace_config_ops, AdminError, ConfigOp,
};
use crate::server::broker::Broker;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
// Kafka's ConfigSource numbers.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

struct Entry {
    name: String,
    value: String,
    source: i8,
    config_type: ConfigType,
    doc: String,
    read_only: bool,
    /// Kafka's synonyms, most specific first: (name, value, source).
    synonyms: Vec<(String, String, i8)>,
}

/// A resource's configs from their definitions: each override with `override_source`,
/// else the default, with Kafka's synonyms (the override, then the broker property the
/// default comes from).
fn entries(
    defs: &[TopicConfigDef],
    overrides: &BTreeMap<String, String>,
    defaults: &TopicDefaults,
    override_source: i8,
) -> Vec<Entry> {
    defs.iter()
        .map(|def| {
            let default = (def.default)(defaults);
            let overridden = overrides.get(def.name);
            let mut synonyms = Vec::new();
            if let Some(v) = overridden {
                synonyms.push((def.name.to_string(), v.clone(), override_source));
            }
            if let Some(p) = def.broker_property {
                synonyms.push((p.to_string(), default.clone(), SOURCE_DEFAULT));
            }
            Entry {
                name: def.name.to_string(),
                value: overridden.cloned().unwrap_or(default),
                source: if overridden.is_some() {
                    override_source
                } else {
                    SOURCE_DEFAULT
                },
                config_type: def.config_type,
                doc: def.documentation(),
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

fn topic_entries(broker: &Broker, topic: &str) -> Option<Vec<Entry>> {
    let image = broker.image();
    let t = image.topic(topic)?;
    Some(entries(
        TOPIC_CONFIGS,
        &t.configs,
        &broker.defaults,
        SOURCE_TOPIC,
    ))
}

/// A group's configs: described whether or not the group exists, as in Kafka.
fn group_entries(broker: &Broker, group: &str) -> Vec<Entry> {
    let image = broker.image();
    let none = BTreeMap::new();
    let overrides = image.group_configs(group).unwrap_or(&none);
    entries(GROUP_CONFIGS, overrides, &broker.defaults, SOURCE_GROUP)
}

/// A broker's dynamic configs as Kafka describes them: for one broker, each with its
/// own value, else the cluster default's, else Kafka's default, with that chain as
/// synonyms; for the cluster default (`id` None), only the values set there.
fn broker_dynamic_entries(broker: &Broker, id: Option<&str>) -> Vec<Entry> {
    let image = broker.image();
    let none = BTreeMap::new();
    let cluster = image.broker_configs("").unwrap_or(&none);
    let own = id.and_then(|id| image.broker_configs(id)).unwrap_or(&none);
    BROKER_DYNAMIC_CONFIGS
        .iter()
        .filter(|def| id.is_some() || cluster.contains_key(def.name))
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = own.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER));
            }
            if let Some(v) = cluster.get(def.name) {
                synonyms.push((
                    def.name.to_string(),
                    v.clone(),
                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                ));
            }
            let default = (def.default)(&broker.defaults);
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or((default, SOURCE_DEFAULT));
            Entry {
                name: def.name.to_string(),
                value,
                source,
                config_type: def.config_type,
                doc: def.documentation(),
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let c = &broker.config;
    let listeners = c.listeners().expect("validated at startup");
    let entry = |name: &str, value: String, config_type, doc: &str| Entry {
        name: name.to_string(),
        synonyms: vec![(name.to_string(), value.clone(), SOURCE_STATIC_BROKER)],
        value,
        source: SOURCE_STATIC_BROKER,
        config_type,
        doc: doc.to_string(),
        read_only: true,
    };
    vec![
        entry(
            "node.id",
            c.node_id.to_string(),
            ConfigType::Int,
            "This broker's id.",
        ),
        entry(
            "broker.rack",
            c.rack.clone().unwrap_or_default(),
            ConfigType::String,
            "Rack of this broker.",
        ),
        entry(
            "listeners",
            listeners
                .iter()
                .map(|l| format!("{}://{}", l.name, l.bind_address()))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
            "Where the Kafka listeners bind.",
        ),
        entry(
            "advertised.listeners",
            listeners
                .iter()
                .map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
            "Addresses clients are told, per listener.",
        ),
        entry(
            "listener.security.protocol.map",
            listeners
                .iter()
                .map(|l| format!("{}:{}", l.name, l.protocol))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::String,
            "The security protocol of each listener.",
        ),
        entry(
            "num.partitions",
            c.num_partitions.to_string(),
            ConfigType::Int,
            "Default partitions of new topics.",
        ),
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
            "Create unknown topics on metadata requests.",
        ),
        entry(
            "default.replication.factor",
            c.default_replication_factor.to_string(),
            ConfigType::Int,
            "Default replication factor of new topics.",
        ),
        entry(
            "offsets.topic.replication.factor",
            c.offsets_topic_replication_factor.to_string(),
            ConfigType::Short,
            "Replication factor of __consumer_offsets, capped at the metadata quorum voters.",
        ),
        entry(
            "min.insync.replicas",
            c.min_insync_replicas.to_string(),
            ConfigType::Int,
            "Default min.insync.replicas of topics.",
        ),
        entry(
            "log.segment.bytes",
            c.log_segment_bytes.to_string(),
            ConfigType::Int,
            "Default segment.bytes of topics.",
        ),
        entry(
            "log.roll.ms",
            c.log_roll_ms.to_string(),
            ConfigType::Long,
            "Default segment.ms of topics.",
        ),
        entry(
            "log.retention.ms",
            c.log_retention_ms.to_string(),
            ConfigType::Long,
            "Default retention.ms of topics.",
        ),
        entry(
            "log.retention.bytes",
            c.log_retention_bytes.to_string(),
            ConfigType::Long,
            "Default retention.bytes of topics.",
        ),
        entry(
            "log.flush.interval.messages",
            c.log_flush_interval_messages.to_string(),
            ConfigType::Long,
            "Default flush.messages of topics.",
        ),
        entry(
            "log.flush.interval.ms",
            c.log_flush_interval_ms.to_string(),
            ConfigType::Long,
            "Default flush.ms of topics.",
        ),
        entry(
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            ConfigType::Long,
            "Interval of log housekeeping.",
        ),
        entry(
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            ConfigType::Int,
            "Default max.message.bytes of topics.",
        ),
        entry(
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
            "The largest request accepted.",
        ),
        entry(
            "max.connections",
            c.max_connections.to_string(),
            ConfigType::Int,
            "Client connections served at once.",
        ),
        entry(
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
            ConfigType::Long,
            "Idle connections are closed after this.",
        ),
    ]
}

/// Kafka's rule for config resources: a topic's configs need `op` on the topic
/// (TOPIC_AUTHORIZATION_FAILED), a broker's need `op` on the cluster
/// (CLUSTER_AUTHORIZATION_FAILED), a group's `op` on the group
/// (GROUP_AUTHORIZATION_FAILED). Other types are refused later as unsupported.
fn may_configure(
    auth: &Authorizer,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), AdminError> {
    let (allowed, code, what) = match resource_type {
        RESOURCE_TOPIC => (
            auth.authorize(op, ResourceType::Topic, name),
            ResponseError::TopicAuthorizationFailed,
            format!("topic {name:?}"),
        ),
        RESOURCE_BROKER => (
            auth.cluster(op),
            ResponseError::ClusterAuthorizationFailed,
            "the cluster".to_string(),
        ),
        RESOURCE_GROUP => (
            auth.authorize(op, ResourceType::Group, name),
            ResponseError::GroupAuthorizationFailed,
            format!("group {name:?}"),
        ),
        _ => return Ok(()),
    };
    if allowed {
        Ok(())
    } else {
        Err(AdminError {
            code,
            message: format!("{} may not {op:?} on {what}", ctx.principal),
        })
    }
}

pub fn describe_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let v = ctx.version;
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let allowed = may_configure(
                &auth,
                ctx,
                AclOperation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            );
            let entries = match r.resource_type {
                _ if allowed.is_err() => allowed
                    .map(|()| Vec::new())
                    .map_err(|e| (e.code, e.message)),
                RESOURCE_TOPIC => topic_entries(broker, &r.resource_name).ok_or_else(|| {
                    (
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {:?} does not exist", r.resource_name.as_str()),
                    )
                }),
                RESOURCE_GROUP => Ok(group_entries(broker, &r.resource_name)),
                RESOURCE_BROKER if r.resource_name.is_empty() => {
                    Ok(broker_dynamic_entries(broker, None))
                }
                RESOURCE_BROKER if r.resource_name.as_str() == broker.node_id().to_string() => {
                    let mut entries = broker_entries(broker);
                    entries.extend(broker_dynamic_entries(broker, Some(&r.resource_name)));
                    Ok(entries)
                }
                // Another broker: its dynamic configs are in the metadata every broker
                // holds; its static ones only it knows.
                RESOURCE_BROKER if r.resource_name.parse::<u32>().is_ok() => {
                    Ok(broker_dynamic_entries(broker, Some(&r.resource_name)))
                }
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "broker {:?} is not a broker id (or empty, for the cluster default)",
                        r.resource_name.as_str(),
                    ),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let wanted = r.configuration_keys.as_ref();
                    result.configs = entries
                        .into_iter()
                        .filter(|e| {
                            wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| {
                            let mut c = DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(e.name.clone()))
                                .with_value(Some(str_bytes(e.value.clone())))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source);
                            if req.include_synonyms {
                                c.synonyms = e
                                    .synonyms
                                    .into_iter()
                                    .map(|(name, value, source)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(name))
                                            .with_value(Some(str_bytes(value)))
                                            .with_source(source)
                                    })
                                    .collect();
                            }
                            if v >= 3 {
                                c.config_type = e.config_type as i8;
                                if req.include_documentation {
                                    c.documentation = Some(str_bytes(e.doc));
                                }
                            }
                            c
                        })
                        .collect();
                }
                Err((code, message)) => {
                    count_error(broker, ctx.api_key, code.code());
                    result.error_code = code.code();
                    result.error_message = Some(str_bytes(message));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// How a request changes a resource's overrides.
enum Change {
    /// IncrementalAlterConfigs: these operations, in order.
    Ops(Vec<ConfigOp>),
    /// Legacy AlterConfigs: the whole set replaced by these (a null value sets nothing).
    Replace(Vec<(String, Option<String>)>),
}

impl Change {
    fn ops(&self, current: Option<&BTreeMap<String, String>>) -> Vec<ConfigOp> {
        match self {
            Change::Ops(ops) => ops.clone(),
            Change::Replace(requested) => {
                replace_config_ops(current.unwrap_or(&BTreeMap::new()), requested)
            }
        }
    }
}

/// Plan (and unless `validate_only`, commit) one resource's config change; both
/// AlterConfigs forms come here, so they validate alike.
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: Change,
) -> Result<(), AdminError> {
    let defaults = &broker.defaults;
    match resource_type {
        RESOURCE_TOPIC => broker
            .change_metadata(!validate_only, |image| {
                let list_default =
                    |k: &str| effective_topic_config(k, &Default::default(), defaults);
                let ops = change.ops(image.topic(name).map(|t| &t.configs));
                plan_alter_topic_configs(image, name, &ops, list_default)
            })
            .await
            .map(|_| tracing::info!(topic = %name, validate_only, "altered topic configs")),
        RESOURCE_GROUP => broker
            .change_metadata(!validate_only, |image| {
                let list_default = |k: &str| group_config_def(k).map(|d| (d.default)(defaults));
                let ops = change.ops(image.group_configs(name));
                plan_alter_group_configs(image, name, &ops, list_default)
            })
            .await
            .map(|_| tracing::info!(group = %name, validate_only, "altered group configs")),
        RESOURCE_BROKER => broker
            .change_metadata(!validate_only, |image| {
                let ops = change.ops(image.broker_configs(name));
                plan_alter_broker_configs(image, name, &ops)
            })
            .await
            .map(|_| tracing::info!(broker = %name, validate_only, "altered broker configs")),
        other => Err(AdminError {
            code: ResponseError::InvalidRequest,
            message: format!("resource type {other} is not supported"),
        }),
    }
}

/// The error code and message of one resource's outcome, counted.
fn outcome_error(
    broker: &Broker,
    ctx: &RequestContext,
    outcome: Result<(), AdminError>,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => {
            count_error(broker, ctx.api_key, e.code.code());
            (e.code.code(), Some(str_bytes(e.message)))
        }
    }
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    for r in req.resources {
        let name = r.resource_name.to_string();
        let allowed = may_configure(
            &auth,
            ctx,
            AclOperation::AlterConfigs,
            r.resource_type,
            &name,
        );
        let ops: Result<Vec<ConfigOp>, AdminError> = r
            .configs
            .into_iter()
            .map(|c| {
                ConfigOp::from_wire(
                    c.config_operation,
                    c.name.to_string(),
                    c.value.map(|v| v.to_string()),
                )
            })
            .collect();
        let outcome = match (allowed, ops) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(ops)) => {
                alter_resource(
                    broker,
                    r.resource_type,
                    &name,
                    req.validate_only,
                    Change::Ops(ops),
                )
                .await
            }
        };
        let (error_code, error_message) = outcome_error(broker, ctx, outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Legacy AlterConfigs (key 33): each resource's dynamic configs become exactly the
/// request's; what it does not name returns to its default.
pub async fn alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    for r in req.resources {
        let name = r.resource_name.to_string();
        let outcome = match may_configure(
            &auth,
            ctx,
            AclOperation::AlterConfigs,
            r.resource_type,
            &name,
        ) {
            Err(e) => Err(e),
            Ok(()) => {
                let requested = r
                    .configs
                    .into_iter()
                    .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                    .collect();
                alter_resource(
                    broker,
                    r.resource_type,
                    &name,
                    req.validate_only,
                    Change::Replace(requested),
                )
                .await
            }
        };
        let (error_code, error_message) = outcome_error(broker, ctx, outcome);
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}
