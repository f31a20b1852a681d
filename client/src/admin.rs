//! Admin calls: create and delete topics, add partitions, reassign replicas, remove
//! a broker, describe and alter configs. They go to the controller when the cluster
//! names one, or to the broker that owns a broker-scoped config; none concerns a
//! partition leader, so they stand apart from produce and fetch.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, ElectLeadersRequest,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, UnregisterBrokerRequest,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::client::{missing, opt_string, str_bytes, topic_name, Client};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// A topic to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count; -1 for the broker default.
    pub num_partitions: i32,
    /// Replication factor; -1 for the broker default.
    pub replication_factor: i16,
    /// Topic configs, e.g. `("retention.ms", "60000")`.
    pub configs: Vec<(String, String)>,
    /// Replicas of each partition, in partition order (the first one preferred as
    /// leader); empty to let the brokers place them.
    pub assignments: Vec<Vec<i32>>,
}

impl NewTopic {
    /// A topic with the given partitions and replication factor and no configs.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
            assignments: Vec::new(),
        }
    }

    /// A topic whose partitions have the given replicas (partition count and
    /// replication factor follow from them).
    pub fn with_assignments(name: impl Into<String>, assignments: Vec<Vec<i32>>) -> Self {
        NewTopic {
            assignments,
            ..NewTopic::new(name, -1, -1)
        }
    }

    /// Adds a topic config.
    pub fn with_config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// A partition reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Target replicas first, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// What CreateTopics reports for a created (or validated) topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (v7+; nil before).
    pub topic_id: Uuid,
    /// Partition count (v5+; -1 before).
    pub num_partitions: i32,
    /// Replication factor (v5+; -1 before).
    pub replication_factor: i16,
}

/// A resource whose configs are described or altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by node id.
    Broker(i32),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        // Resource type codes from the Kafka protocol: TOPIC = 2, BROKER = 4.
        match self {
            ConfigResource::Topic(name) => (2, name.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(name) => format!("topic {name:?}"),
            ConfigResource::Broker(id) => format!("broker {id}"),
        }
    }
}

/// One config entry from DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, e.g. `retention.ms`.
    pub name: String,
    /// Value; `None` when unset or sensitive.
    pub value: Option<String>,
    /// Whether the config cannot be altered.
    pub read_only: bool,
    /// Where the value comes from (Kafka's ConfigSource code: 1 topic, 4 static broker,
    /// 5 default, ...; -1 when the version does not carry it).
    pub source: i8,
    /// Whether the value is sensitive (and so withheld).
    pub is_sensitive: bool,
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set `name` to `value`.
    Set(String, String),
    /// Remove `name`, reverting to the default.
    Delete(String),
    /// Append `value` to the list config `name`.
    Append(String, String),
    /// Remove `value` from the list config `name`.
    Subtract(String, String),
}

impl AlterConfigOp {
    fn wire(&self) -> AlterableConfig {
        let (op, name, value) = match self {
            AlterConfigOp::Set(n, v) => (0, n, Some(v)),
            AlterConfigOp::Delete(n) => (1, n, None),
            AlterConfigOp::Append(n, v) => (2, n, Some(v)),
            AlterConfigOp::Subtract(n, v) => (3, n, Some(v)),
        };
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(op)
            .with_value(value.map(|v| str_bytes(v)))
    }
}

impl Client {
    /// Creates topics; one result per requested topic, in request order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<CreatedTopic>)>> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_assignments(
                                t.assignments
                                    .iter()
                                    .zip(0..)
                                    .map(|(replicas, partition)| {
                                        CreatableReplicaAssignment::default()
                                            .with_partition_index(partition)
                                            .with_broker_ids(
                                                replicas.iter().copied().map(BrokerId).collect(),
                                            )
                                    })
                                    .collect(),
                            )
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self.controller_connection().await?.send(&request).await?;
        topics
            .iter()
            .map(|t| {
                let r = response
                    .topics
                    .iter()
                    .find(|r| r.name.as_str() == t.name)
                    .ok_or_else(|| missing(format!("topic {:?}", t.name)))?;
                let result = Error::check(
                    r.error_code,
                    || format!("topic {:?}", t.name),
                    r.error_message.as_ref(),
                )
                .map(|()| CreatedTopic {
                    name: t.name.clone(),
                    topic_id: r.topic_id,
                    num_partitions: r.num_partitions,
                    replication_factor: r.replication_factor,
                });
                Ok((t.name.clone(), result))
            })
            .collect()
    }

    /// Creates one topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<CreatedTopic> {
        let mut results = self.create_topics(&[topic], false).await?;
        results.remove(0).1
    }

    /// Deletes topics by name; one result per topic, in request order.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<Vec<(String, Result<()>)>> {
        let conn = self.controller_connection().await?;
        let version = conn.version(ApiKey::DeleteTopics)?;
        let mut request =
            DeleteTopicsRequest::default().with_timeout_ms(self.config.request_timeout_ms());
        // v6 names topics by name or id in `topics`; earlier versions by name only.
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect();
        } else {
            request.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let response = conn.send_at(&request, version).await?;
        let mut state = self.state.lock().await;
        state
            .leaders
            .retain(|(t, _), _| !names.contains(&t.as_str()));
        drop(state);
        names
            .iter()
            .map(|n| {
                let r = response
                    .responses
                    .iter()
                    .find(|r| r.name.as_ref().map(|x| x.as_str()) == Some(*n))
                    .ok_or_else(|| missing(format!("topic {n:?}")))?;
                let result = Error::check(
                    r.error_code,
                    || format!("topic {n:?}"),
                    r.error_message.as_ref(),
                );
                Ok((n.to_string(), result))
            })
            .collect()
    }

    /// Grows `topic` to `total_count` partitions (the new total, not the increment).
    pub async fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        validate_only: bool,
    ) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total_count)
                .with_assignments(None)]);
        let response = self.controller_connection().await?.send(&request).await?;
        let r = response
            .results
            .iter()
            .find(|r| r.name.as_str() == topic)
            .ok_or_else(|| missing(format!("topic {topic:?}")))?;
        Error::check(
            r.error_code,
            || format!("topic {topic:?}"),
            r.error_message.as_ref(),
        )
    }

    /// Moves `topic`/`partition` to `replicas` (the first one preferred as leader), or
    /// cancels the move in progress with `None` (AlterPartitionReassignments). The
    /// brokers copy the data and drop the old replicas in the background; watch
    /// [`Client::list_partition_reassignments`] for completion.
    pub async fn alter_partition_reassignment(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
    ) -> Result<()> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_allow_replication_factor_change(true)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(partition)
                    .with_replicas(
                        replicas.map(|r| r.into_iter().map(BrokerId).collect()),
                    )])]);
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(
            response.error_code,
            || "reassignment".to_string(),
            response.error_message.as_ref(),
        )?;
        let r = response
            .responses
            .iter()
            .find(|t| t.name.as_str() == topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .ok_or_else(|| missing(format!("topic {topic:?} partition {partition}")))?;
        Error::check(
            r.error_code,
            || format!("topic {topic:?} partition {partition}"),
            r.error_message.as_ref(),
        )
    }

    /// Every partition reassignment in progress.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<Reassignment>> {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topics(None);
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(
            response.error_code,
            || "reassignments".to_string(),
            response.error_message.as_ref(),
        )?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| Reassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }

    /// Moves leadership of each named partition to its preferred replica, the first in
    /// its replica list (ElectLeaders, election type 0). Returns the partitions whose
    /// election failed, with the error; a partition already led by its preferred
    /// replica (ELECTION_NOT_NEEDED) is not a failure.
    pub async fn elect_preferred_leaders(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<(String, i32, ResponseError)>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let request = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topic_partitions(Some(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TopicPartitions::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            ));
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(response.error_code, || "leader election".to_string(), None)?;
        Ok(response
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().filter_map(move |p| {
                    match ResponseError::try_from_code(p.error_code) {
                        None | Some(ResponseError::ElectionNotNeeded) => None,
                        Some(e) => Some((t.topic.to_string(), p.partition_id, e)),
                    }
                })
            })
            .collect())
    }

    /// Removes a stopped broker that holds no replicas from the cluster
    /// (UnregisterBroker).
    pub async fn unregister_broker(&self, broker: i32) -> Result<()> {
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker));
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(
            response.error_code,
            || format!("broker {broker}"),
            response.error_message.as_ref(),
        )
    }

    /// Connection for a config resource: a broker's own configs are answered by that
    /// broker; topic configs by the controller (or any broker).
    async fn config_connection(&self, resource: &ConfigResource) -> Result<Arc<Connection>> {
        match resource {
            ConfigResource::Broker(id) => self.node_connection(*id).await,
            ConfigResource::Topic(_) => self.controller_connection().await,
        }
    }

    /// All config entries of `resource`.
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let (resource_type, resource_name) = resource.wire();
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(&resource_name))
                .with_configuration_keys(None),
        ]);
        let conn = self.config_connection(resource).await?;
        let response = conn.send(&request).await?;
        let r = response
            .results
            .iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == resource_name)
            .ok_or_else(|| missing(resource.describe()))?;
        Error::check(
            r.error_code,
            || resource.describe(),
            r.error_message.as_ref(),
        )?;
        Ok(r.configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: opt_string(c.value.as_ref()),
                read_only: c.read_only,
                source: c.config_source,
                is_sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// Applies `ops` to `resource` (IncrementalAlterConfigs); with `validate_only` the
    /// broker checks them without applying.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let (resource_type, resource_name) = resource.wire();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(&resource_name))
                .with_configs(ops.iter().map(AlterConfigOp::wire).collect())]);
        let conn = self.config_connection(resource).await?;
        let response = conn.send(&request).await?;
        let r = response
            .responses
            .iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == resource_name)
            .ok_or_else(|| missing(resource.describe()))?;
        Error::check(
            r.error_code,
            || resource.describe(),
            r.error_message.as_ref(),
        )
    }
}
