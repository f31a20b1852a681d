//! The cluster metadata the controller decides on, as the log holds it: each
//! [`ControllerRecord`], the [`ClusterState`] built by applying them in log order (the
//! same on the controller and on every broker), and the conversion to and from the
//! metadata log's records. It is the controller's input and output, not its judgement,
//! so brokers use it without the controller's decisions.
//!
//! # Records in the metadata log
//!
//! [`ControllerRecord::into_metadata`] turns each record into the metadata log's
//! `MetadataRecord` (same name; a registration gains the broker's endpoints).
//! `PartitionChanged` carries the whole new registration rather than Kafka's
//! optional-field delta (PartitionChangeRecord): applying it is a replacement,
//! idempotent and easy to check. [`ClusterState::from_image`] reads the applied image
//! back, so a new active controller starts from exactly what is committed.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    BrokerEpoch, BrokerId, Isr, LeaderEpoch, PartitionEpoch, PartitionRegistration, TopicPartition,
};
use crate::metadata::image::{BrokerEndpoint, MetadataImage, MetadataRecord, PartitionState};

/// The topic config that allows electing a replica outside the ISR (losing data).
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// One change to the cluster metadata, decided by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ControllerRecord {
    /// A broker process registered; it starts fenced (KIP-841: no leadership, no ISR
    /// membership) until a heartbeat says it has caught up with the metadata log.
    BrokerRegistered {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        rack: Option<String>,
    },
    BrokerUnfenced {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// Heartbeats stopped for `broker.session.timeout.ms` (or a new process registered).
    BrokerFenced {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// Controlled shutdown began: no new leaderships or ISR membership for it.
    BrokerShuttingDown {
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    BrokerUnregistered {
        broker: BrokerId,
    },
    TopicCreated {
        name: String,
        topic_id: Uuid,
        /// Indexed by partition number.
        partitions: Vec<PartitionRegistration>,
        configs: BTreeMap<String, String>,
    },
    /// The partition's new registration, replacing the old one whole.
    PartitionChanged {
        partition: TopicPartition,
        registration: PartitionRegistration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub epoch: BrokerEpoch,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub configs: BTreeMap<String, String>,
}

impl TopicInfo {
    pub fn unclean_leader_election(&self) -> bool {
        self.configs
            .get(UNCLEAN_LEADER_ELECTION)
            .map(String::as_str)
            == Some("true")
    }
}

/// What the records say: brokers, topics and partitions. The same on the controller
/// and on every broker that applied the same records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    pub(super) brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub(super) topics: BTreeMap<Uuid, TopicInfo>,
    pub(super) partitions: BTreeMap<TopicPartition, PartitionRegistration>,
    pub(super) next_broker_epoch: i64,
}

impl ClusterState {
    /// The committed image as the controller sees it.
    pub fn from_image(image: &MetadataImage) -> ClusterState {
        let mut state = ClusterState {
            next_broker_epoch: image.next_broker_epoch,
            ..ClusterState::default()
        };
        for b in image.brokers() {
            state.brokers.insert(
                b.id,
                BrokerRegistration {
                    epoch: BrokerEpoch(b.epoch),
                    rack: b.rack.clone(),
                    fenced: b.fenced,
                    in_controlled_shutdown: b.in_controlled_shutdown,
                },
            );
        }
        for topic in image.topics() {
            state.insert_topic(topic.id, &topic.name, &topic.configs, &topic.partitions);
        }
        state
    }

    /// Follow one committed topic record (topics, partitions added, configs, deletion),
    /// as [`ClusterState::from_image`] would see it, without rereading the image.
    /// Other records are ignored.
    pub fn apply_topic_record(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
            } => self.insert_topic(*id, name, configs, partitions),
            MetadataRecord::PartitionsCreated {
                topic_id,
                partitions,
            } => self.insert_partitions(*topic_id, partitions),
            MetadataRecord::TopicConfigsSet { topic_id, configs } => {
                if let Some(t) = self.topics.get_mut(topic_id) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                self.topics.remove(topic_id);
                self.partitions.retain(|tp, _| tp.topic_id != *topic_id);
            }
            _ => {}
        }
    }

    fn insert_topic(
        &mut self,
        id: Uuid,
        name: &str,
        configs: &BTreeMap<String, String>,
        partitions: &[PartitionState],
    ) {
        let info = TopicInfo {
            name: name.to_string(),
            configs: configs.clone(),
        };
        self.topics.insert(id, info);
        self.insert_partitions(id, partitions);
    }

    fn insert_partitions(&mut self, topic_id: Uuid, partitions: &[PartitionState]) {
        for p in partitions {
            let tp = TopicPartition {
                topic_id,
                partition: p.partition,
            };
            self.partitions.insert(tp, registration_of(p));
        }
    }

    pub fn broker(&self, broker: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker)
    }

    pub fn brokers(&self) -> impl Iterator<Item = (BrokerId, &BrokerRegistration)> {
        self.brokers.iter().map(|(&b, r)| (b, r))
    }

    pub fn topic(&self, topic_id: &Uuid) -> Option<&TopicInfo> {
        self.topics.get(topic_id)
    }

    pub fn partition(&self, partition: &TopicPartition) -> Option<&PartitionRegistration> {
        self.partitions.get(partition)
    }

    pub fn partitions(&self) -> impl Iterator<Item = (TopicPartition, &PartitionRegistration)> {
        self.partitions.iter().map(|(&tp, r)| (tp, r))
    }

    /// May lead and be in an ISR: registered, unfenced, not shutting down (KIP-841).
    pub fn is_eligible(&self, broker: BrokerId) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// A leader may propose `broker` into an ISR on the fetch of its process
    /// `broker_epoch`: eligible, and that process the registered one (KIP-841, KIP-903).
    pub fn isr_eligible(&self, broker: BrokerId, broker_epoch: Option<BrokerEpoch>) -> bool {
        broker_epoch.is_some() && self.eligible_epoch(broker) == broker_epoch
    }

    /// The epoch under which `broker` is eligible, `None` when it is not.
    pub fn eligible_epoch(&self, broker: BrokerId) -> Option<BrokerEpoch> {
        self.brokers
            .get(&broker)
            .filter(|_| self.is_eligible(broker))
            .map(|r| r.epoch)
    }

    /// A request from `broker` carrying `broker_epoch` comes from its current process.
    pub fn check_broker_epoch(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<(), ResponseError> {
        match self.brokers.get(&broker) {
            None => Err(ResponseError::BrokerIdNotRegistered),
            Some(r) if r.epoch != broker_epoch => Err(ResponseError::StaleBrokerEpoch),
            Some(_) => Ok(()),
        }
    }

    /// May `broker` lead `p` or join its ISR: eligible, and its copy not offline.
    pub fn can_serve(&self, broker: BrokerId, p: &PartitionRegistration) -> bool {
        self.is_eligible(broker) && !p.offline_replicas.contains(&broker)
    }

    /// Apply one committed record. A record that does not fit means a corrupt log.
    pub fn apply(&mut self, record: &ControllerRecord) -> Result<(), String> {
        match record {
            ControllerRecord::BrokerRegistered {
                broker,
                broker_epoch,
                rack,
            } => {
                self.next_broker_epoch = self.next_broker_epoch.max(broker_epoch.0 + 1);
                self.brokers.insert(
                    *broker,
                    BrokerRegistration {
                        epoch: *broker_epoch,
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            ControllerRecord::BrokerUnfenced {
                broker,
                broker_epoch,
            } => registered(&mut self.brokers, *broker, *broker_epoch)?.fenced = false,
            ControllerRecord::BrokerFenced {
                broker,
                broker_epoch,
            } => registered(&mut self.brokers, *broker, *broker_epoch)?.fenced = true,
            ControllerRecord::BrokerShuttingDown {
                broker,
                broker_epoch,
            } => {
                registered(&mut self.brokers, *broker, *broker_epoch)?.in_controlled_shutdown = true
            }
            ControllerRecord::BrokerUnregistered { broker } => {
                self.brokers
                    .remove(broker)
                    .ok_or_else(|| format!("broker {broker} is not registered"))?;
            }
            ControllerRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(topic_id)
                    || self.topics.values().any(|t| &t.name == name)
                {
                    return Err(format!("topic {name:?} ({topic_id}) already exists"));
                }
                self.topics.insert(
                    *topic_id,
                    TopicInfo {
                        name: name.clone(),
                        configs: configs.clone(),
                    },
                );
                for (i, registration) in partitions.iter().enumerate() {
                    let tp = TopicPartition {
                        topic_id: *topic_id,
                        partition: i as i32,
                    };
                    self.partitions.insert(tp, registration.clone());
                }
            }
            ControllerRecord::PartitionChanged {
                partition,
                registration,
            } => {
                let current = self
                    .partitions
                    .get_mut(partition)
                    .ok_or_else(|| format!("partition {partition} does not exist"))?;
                if registration.partition_epoch <= current.partition_epoch
                    || registration.leader_epoch < current.leader_epoch
                {
                    return Err(format!(
                        "partition {partition}: change to partition epoch {} / leader epoch {} does not follow {} / {}",
                        registration.partition_epoch.0,
                        registration.leader_epoch.0,
                        current.partition_epoch.0,
                        current.leader_epoch.0
                    ));
                }
                *current = registration.clone();
            }
        }
        Ok(())
    }
}

/// A partition of the metadata image as a [`PartitionRegistration`].
pub fn registration_of(p: &PartitionState) -> PartitionRegistration {
    PartitionRegistration {
        replicas: p.replicas.clone(),
        isr: Isr::new(p.isr.clone()),
        leader: p.leader,
        leader_epoch: LeaderEpoch(p.leader_epoch),
        partition_epoch: PartitionEpoch(p.partition_epoch),
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
        offline_replicas: p.offline_replicas.clone(),
    }
}

/// A [`PartitionRegistration`] as partition `partition` of the metadata image.
pub fn partition_state(partition: i32, r: &PartitionRegistration) -> PartitionState {
    PartitionState {
        partition,
        leader: r.leader,
        leader_epoch: r.leader_epoch.0,
        replicas: r.replicas.clone(),
        isr: r.isr.members().to_vec(),
        partition_epoch: r.partition_epoch.0,
        adding_replicas: r.adding_replicas.clone(),
        removing_replicas: r.removing_replicas.clone(),
        offline_replicas: r.offline_replicas.clone(),
    }
}

impl ControllerRecord {
    /// The record as it goes into the metadata log. A registration carries the
    /// endpoints the broker registered with (the controller's decision does not need
    /// them, every broker's Metadata answer does).
    pub fn into_metadata(self, endpoint: impl Fn(BrokerId) -> BrokerEndpoint) -> MetadataRecord {
        match self {
            ControllerRecord::BrokerRegistered {
                broker,
                broker_epoch,
                rack,
            } => MetadataRecord::BrokerRegistered {
                broker,
                broker_epoch: broker_epoch.0,
                rack,
                endpoint: endpoint(broker),
            },
            ControllerRecord::BrokerUnfenced {
                broker,
                broker_epoch,
            } => MetadataRecord::BrokerUnfenced {
                broker,
                broker_epoch: broker_epoch.0,
            },
            ControllerRecord::BrokerFenced {
                broker,
                broker_epoch,
            } => MetadataRecord::BrokerFenced {
                broker,
                broker_epoch: broker_epoch.0,
            },
            ControllerRecord::BrokerShuttingDown {
                broker,
                broker_epoch,
            } => MetadataRecord::BrokerShuttingDown {
                broker,
                broker_epoch: broker_epoch.0,
            },
            ControllerRecord::BrokerUnregistered { broker } => {
                MetadataRecord::BrokerUnregistered { broker }
            }
            ControllerRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                configs,
            } => MetadataRecord::TopicCreated {
                name,
                id: topic_id,
                partitions: partitions
                    .iter()
                    .enumerate()
                    .map(|(i, r)| partition_state(i as i32, r))
                    .collect(),
                configs,
            },
            ControllerRecord::PartitionChanged {
                partition,
                registration,
            } => MetadataRecord::PartitionChanged {
                topic_id: partition.topic_id,
                partition: partition_state(partition.partition, &registration),
            },
        }
    }
}

/// The registration a broker record refers to; another epoch means a corrupt log.
fn registered(
    brokers: &mut BTreeMap<BrokerId, BrokerRegistration>,
    broker: BrokerId,
    epoch: BrokerEpoch,
) -> Result<&mut BrokerRegistration, String> {
    match brokers.get_mut(&broker) {
        Some(r) if r.epoch == epoch => Ok(r),
        Some(r) => Err(format!(
            "broker {broker}: record for epoch {} but registered with {}",
            epoch.0, r.epoch.0
        )),
        None => Err(format!("broker {broker} is not registered")),
    }
}
