//! [`Client`]: bootstrap, metadata, admin calls, produce, fetch and list offsets.
//!
//! Requests that concern one partition go to its leader (known from the last Metadata
//! answer, refreshed when unknown or after a leadership error). Admin requests go to the
//! controller when the cluster names one, as older brokers require; newer brokers accept
//! them anywhere.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    MetadataRequest, ProduceRequest, TopicName, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::records::{self, FetchedRecord, ProduceRecord};

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// The broker's node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, -1 when there is none.
    pub leader_id: i32,
    /// Leader epoch, -1 when the broker's version does not carry it.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline_replicas: Vec<i32>,
    /// The partition-level error, e.g. LEADER_NOT_AVAILABLE.
    pub error: Option<ResponseError>,
}

/// One topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id; nil when the broker has none or the version does not carry it.
    pub topic_id: Uuid,
    /// Whether the topic is internal (e.g. `__consumer_offsets`).
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
    /// The topic-level error, e.g. UNKNOWN_TOPIC_OR_PARTITION.
    pub error: Option<ResponseError>,
}

/// A Metadata answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// Controller node id, -1 when unknown.
    pub controller_id: i32,
    /// Live brokers.
    pub brokers: Vec<BrokerMetadata>,
    /// Requested topics (all topics when none were named).
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    /// The topic named `name`, if present.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|t| t.name == name)
    }
}

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

/// Produce settings.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// 0 (no answer), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    /// Batch compression.
    pub compression: Compression,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        ProduceOptions {
            acks: -1,
            compression: Compression::None,
        }
    }
}

/// What Produce reports for an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the batch's first record; -1 with acks=0.
    pub base_offset: i64,
    /// Log-append time when the topic uses it, else -1.
    pub log_append_time_ms: i64,
    /// The partition's log start offset (v5+; -1 before).
    pub log_start_offset: i64,
}

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes`.
    pub max_wait: Duration,
    /// Bytes the broker waits for before answering.
    pub min_bytes: i32,
    /// Bound on the whole answer.
    pub max_bytes: i32,
    /// Bound on this partition's records (the first batch is returned whole regardless).
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// One partition's fetch answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPartition {
    /// High watermark: the offset after the last committed record.
    pub high_watermark: i64,
    /// Last stable offset (v4+; -1 before).
    pub last_stable_offset: i64,
    /// Log start offset (v5+; -1 before).
    pub log_start_offset: i64,
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<FetchedRecord>,
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark for consumers).
    Latest,
    /// The offset of the record with the largest timestamp (v7+).
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record matches a timestamp.
    pub offset: i64,
    /// The matched record's timestamp, -1 for earliest/latest.
    pub timestamp_ms: i64,
    /// Leader epoch of the offset (v4+; -1 before).
    pub leader_epoch: i32,
}

#[derive(Default)]
struct State {
    /// Open connections by address.
    connections: HashMap<String, Arc<Connection>>,
    /// Broker addresses by node id, from the last Metadata answer.
    brokers: HashMap<i32, String>,
    controller_id: i32,
    /// Partition leaders by (topic, partition), from Metadata answers.
    leaders: HashMap<(String, i32), i32>,
}

/// A Kafka-protocol client: one connection per broker, opened on demand.
pub struct Client {
    bootstrap: Vec<String>,
    config: ClientConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

fn opt_string(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string())
}

pub(crate) fn partition_resource(topic: &str, partition: i32) -> String {
    format!("topic {topic:?} partition {partition}")
}

pub(crate) fn missing(what: String) -> Error {
    Error::Protocol(format!("response has no entry for {what}"))
}

impl Client {
    /// Connects to the first reachable address of `bootstrap` (host:port each) and reads
    /// the cluster's metadata.
    pub async fn connect(bootstrap: &[impl AsRef<str>], config: ClientConfig) -> Result<Client> {
        let client = Client {
            bootstrap: bootstrap.iter().map(|a| a.as_ref().to_string()).collect(),
            config,
            state: Mutex::default(),
        };
        client.metadata(Some(&[])).await?;
        Ok(client)
    }

    /// The settings this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        let mut state = self.state.lock().await;
        if let Some(conn) = state.connections.get(addr) {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let conn = Arc::new(Connection::connect(addr, &self.config).await?);
        state.connections.insert(addr.to_string(), conn.clone());
        Ok(conn)
    }

    /// A connection to any broker: an open one if there is one, else the bootstrap
    /// addresses and then the known brokers, in order.
    pub(crate) async fn any_connection(&self) -> Result<Arc<Connection>> {
        let candidates: Vec<String> = {
            let state = self.state.lock().await;
            if let Some(conn) = state.connections.values().find(|c| !c.is_closed()) {
                return Ok(conn.clone());
            }
            self.bootstrap
                .iter()
                .cloned()
                .chain(state.brokers.values().cloned())
                .collect()
        };
        let mut last = None;
        for addr in candidates {
            match self.connection_to(&addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Protocol("no bootstrap address".into())))
    }

    async fn node_connection(&self, node_id: i32) -> Result<Arc<Connection>> {
        let addr = self.state.lock().await.brokers.get(&node_id).cloned();
        let addr = match addr {
            Some(addr) => addr,
            None => {
                self.metadata(Some(&[])).await?;
                self.state
                    .lock()
                    .await
                    .brokers
                    .get(&node_id)
                    .cloned()
                    .ok_or_else(|| Error::Kafka {
                        resource: format!("broker {node_id}"),
                        error: ResponseError::BrokerNotAvailable,
                        message: None,
                    })?
            }
        };
        self.connection_to(&addr).await
    }

    /// The controller if Metadata named one, else any broker.
    async fn controller_connection(&self) -> Result<Arc<Connection>> {
        let controller = self.state.lock().await.controller_id;
        if controller >= 0 {
            if let Ok(conn) = self.node_connection(controller).await {
                return Ok(conn);
            }
        }
        self.any_connection().await
    }

    async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let key = (topic.to_string(), partition);
        let cached = self.state.lock().await.leaders.get(&key).copied();
        let leader = match cached {
            Some(leader) if leader >= 0 => leader,
            _ => {
                let metadata = self.metadata(Some(&[topic])).await?;
                let t = metadata.topic(topic).ok_or_else(|| Error::Kafka {
                    resource: format!("topic {topic:?}"),
                    error: ResponseError::UnknownTopicOrPartition,
                    message: None,
                })?;
                if let Some(error) = t.error {
                    return Err(Error::Kafka {
                        resource: format!("topic {topic:?}"),
                        error,
                        message: None,
                    });
                }
                let p = t
                    .partitions
                    .iter()
                    .find(|p| p.partition == partition)
                    .ok_or_else(|| Error::Kafka {
                        resource: partition_resource(topic, partition),
                        error: ResponseError::UnknownTopicOrPartition,
                        message: None,
                    })?;
                if p.leader_id < 0 {
                    return Err(Error::Kafka {
                        resource: partition_resource(topic, partition),
                        error: p.error.unwrap_or(ResponseError::LeaderNotAvailable),
                        message: None,
                    });
                }
                p.leader_id
            }
        };
        self.node_connection(leader).await
    }

    /// After a failed partition call: forgets the cached leader when the error says it
    /// moved or vanished, and says whether to retry (after a pause) or give up.
    /// Runs `op` against the partition's current leader, retrying leadership errors
    /// (see [`ClientConfig::leader_retries`]): the broker did not apply the request.
    // `op` is a closure returning a future rather than an async closure: the futures of
    // async closures are not `Send` for every lifetime, which the operator's
    // controllers need.
    async fn with_leader_retries<T, F: Future<Output = Result<T>>>(
        &self,
        topic: &str,
        partition: i32,
        mut op: impl FnMut() -> F,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(err)
                    if self
                        .on_partition_error(topic, partition, &err, attempt)
                        .await =>
                {
                    attempt += 1
                }
                result => return result,
            }
        }
    }

    async fn on_partition_error(
        &self,
        topic: &str,
        partition: i32,
        err: &Error,
        attempt: u32,
    ) -> bool {
        let leadership = matches!(
            err.kafka(),
            Some(
                ResponseError::NotLeaderOrFollower
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
            )
        );
        let stale = leadership
            || err.kafka() == Some(ResponseError::UnknownTopicOrPartition)
            || matches!(err, Error::Io { .. } | Error::ConnectionClosed { .. });
        if stale {
            self.state
                .lock()
                .await
                .leaders
                .remove(&(topic.to_string(), partition));
        }
        // A topic just created may not have reached every broker's metadata yet:
        // retried a few times (UNKNOWN_TOPIC_OR_PARTITION is retriable in Kafka).
        let unknown = err.kafka() == Some(ResponseError::UnknownTopicOrPartition)
            && attempt < self.config.leader_retries.min(3);
        if (leadership && attempt < self.config.leader_retries) || unknown {
            let backoff = self.config.retry_backoff * 2u32.saturating_pow(attempt.min(10));
            tokio::time::sleep(backoff).await;
            return true;
        }
        false
    }

    /// Metadata for `topics` (`None`: all topics; `Some(&[])`: brokers and controller
    /// only). Never asks the broker to auto-create topics. Updates the cached brokers and
    /// leaders.
    pub async fn metadata(&self, topics: Option<&[&str]>) -> Result<ClusterMetadata> {
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::Metadata)?;
        let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }));
        // The flag exists from v4; before it, asking for a topic may create it.
        if version >= 4 {
            request.allow_auto_topic_creation = false;
        }
        let response = conn.send_at(&request, version).await?;
        let metadata = ClusterMetadata {
            cluster_id: opt_string(response.cluster_id.as_ref()),
            controller_id: *response.controller_id,
            brokers: response
                .brokers
                .iter()
                .map(|b| BrokerMetadata {
                    node_id: *b.node_id,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: opt_string(b.rack.as_ref()),
                })
                .collect(),
            topics: response
                .topics
                .iter()
                .map(|t| {
                    let mut partitions: Vec<_> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionMetadata {
                            partition: p.partition_index,
                            leader_id: *p.leader_id,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|n| **n).collect(),
                            isr: p.isr_nodes.iter().map(|n| **n).collect(),
                            offline_replicas: p.offline_replicas.iter().map(|n| **n).collect(),
                            error: ResponseError::try_from_code(p.error_code),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicMetadata {
                        name: t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions,
                        error: ResponseError::try_from_code(t.error_code),
                    }
                })
                .collect(),
        };
        let mut state = self.state.lock().await;
        state.controller_id = metadata.controller_id;
        state.brokers = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id, b.addr()))
            .collect();
        for t in &metadata.topics {
            for p in &t.partitions {
                state
                    .leaders
                    .insert((t.name.clone(), p.partition), p.leader_id);
            }
        }
        Ok(metadata)
    }

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

    /// Appends `records` as one batch to `topic`/`partition` through its leader, retrying
    /// leadership errors (see [`ClientConfig::leader_retries`]).
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        options: &ProduceOptions,
    ) -> Result<Produced> {
        self.with_leader_retries(topic, partition, || {
            self.produce_once(topic, partition, records, options)
        })
        .await
    }

    async fn produce_once(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        options: &ProduceOptions,
    ) -> Result<Produced> {
        let batch = records::encode_batch(records, options.compression, now_ms())?;
        let request = ProduceRequest::default()
            .with_acks(options.acks)
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let conn = self.leader_connection(topic, partition).await?;
        if options.acks == 0 {
            conn.send_no_response(&request).await?;
            return Ok(Produced {
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            });
        }
        let response = conn.send(&request).await?;
        let p = response
            .responses
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        let message = p.error_message.clone().or_else(|| {
            p.record_errors
                .first()
                .and_then(|e| e.batch_index_error_message.clone())
        });
        Error::check(
            p.error_code,
            || partition_resource(topic, partition),
            message.as_ref(),
        )?;
        Ok(Produced {
            base_offset: p.base_offset,
            log_append_time_ms: p.log_append_time_ms,
            log_start_offset: p.log_start_offset,
        })
    }

    /// Reads records of `topic`/`partition` from `offset` through its leader (read
    /// uncommitted, no fetch session), retrying leadership errors.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition> {
        self.with_leader_retries(topic, partition, || {
            self.fetch_once(topic, partition, offset, options)
        })
        .await
    }

    async fn fetch_once(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition> {
        let request = FetchRequest::default()
            .with_max_wait_ms(i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(options.partition_max_bytes)])]);
        let conn = self.leader_connection(topic, partition).await?;
        let response = conn.send(&request).await?;
        Error::check(response.error_code, || "Fetch".into(), None)?;
        let p = response
            .responses
            .iter()
            .filter(|t| t.topic.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        Error::check(p.error_code, || partition_resource(topic, partition), None)?;
        let records = match &p.records {
            Some(data) => records::decode_batches(data.clone(), offset)?,
            None => Vec::new(),
        };
        Ok(FetchedPartition {
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            log_start_offset: p.log_start_offset,
            records,
        })
    }

    /// Looks up an offset of `topic`/`partition` through its leader, retrying leadership
    /// errors.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        self.with_leader_retries(topic, partition, || {
            self.list_offsets_once(topic, partition, spec)
        })
        .await
    }

    async fn list_offsets_once(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        let request = ListOffsetsRequest::default()
            // -1: a consumer, not a follower replica.
            .with_replica_id(BrokerId(-1))
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(spec.wire())])]);
        let conn = self.leader_connection(topic, partition).await?;
        let response = conn.send(&request).await?;
        let p = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        Error::check(p.error_code, || partition_resource(topic, partition), None)?;
        Ok(ListedOffset {
            offset: p.offset,
            timestamp_ms: p.timestamp,
            leader_epoch: p.leader_epoch,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
