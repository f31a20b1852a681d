//! [`Client`]: bootstrap, connections, routing and metadata.
//!
//! Requests that concern one partition go to its leader (known from the last Metadata
//! answer, refreshed when unknown or after a leadership error). Admin requests go to the
//! controller when the cluster names one, as older brokers require; newer brokers accept
//! them anywhere. The calls themselves are in `admin`, `data` (produce, fetch, list
//! offsets) and `groups`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};

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

#[derive(Default)]
pub(crate) struct State {
    /// Open connections by address.
    connections: HashMap<String, Arc<Connection>>,
    /// Broker addresses by node id, from the last Metadata answer.
    brokers: HashMap<i32, String>,
    controller_id: i32,
    /// Partition leaders by (topic, partition), from Metadata answers.
    pub(crate) leaders: HashMap<(String, i32), i32>,
}

/// A Kafka-protocol client: one connection per broker, opened on demand.
pub struct Client {
    bootstrap: Vec<String>,
    pub(crate) config: ClientConfig,
    pub(crate) state: Mutex<State>,
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

pub(crate) fn opt_string(s: Option<&StrBytes>) -> Option<String> {
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

    pub(crate) async fn node_connection(&self, node_id: i32) -> Result<Arc<Connection>> {
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
    pub(crate) async fn controller_connection(&self) -> Result<Arc<Connection>> {
        let controller = self.state.lock().await.controller_id;
        if controller >= 0 {
            if let Ok(conn) = self.node_connection(controller).await {
                return Ok(conn);
            }
        }
        self.any_connection().await
    }

    pub(crate) async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Connection>> {
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
    pub(crate) async fn with_leader_retries<T, F: Future<Output = Result<T>>>(
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
}
