//! The cluster metadata image: topics with their ids, partitions, replicas, leaders,
//! leader epochs, ISR and config overrides. It changes only by applying
//! [`MetadataRecord`]s, in log order, so every copy that applied the same records
//! holds the same image.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::acl::{AclBinding, AclStore};
use crate::auth::scram::{ScramCredential, ScramMechanism};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// Broker id of the leader, or -1 when the partition has none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Bumped on every change (leader, ISR, replicas); see KIP-497.
    #[serde(default)]
    pub partition_epoch: i32,
    /// Reassignment in progress: replicas being added (also listed in `replicas`) ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// ... and replicas that leave once every adding replica is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
    /// Replicas whose broker cannot serve its copy (unreadable, damaged or unopenable
    /// storage): never elected, never in the ISR unless as its last member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_replicas: Vec<i32>,
}

impl PartitionState {
    /// Does `broker` hold (or is it receiving) a copy of this partition?
    pub fn is_replica(&self, broker: i32) -> bool {
        self.replicas.contains(&broker) || self.adding_replicas.contains(&broker)
    }
}

/// Where clients and other brokers reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The first advertised Kafka listener.
    pub host: String,
    pub port: i32,
    /// host:port of the internal gRPC listener.
    pub internal: String,
    /// Every advertised Kafka listener by name (Kafka's RegisterBrokerRecord
    /// endpoints). Empty in registrations written before listeners had names: then
    /// `host:port` stands for every listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerEndpoint>,
}

/// One advertised listener of a registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// The listener's name, upper-case.
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// The most listeners a broker may register; Kafka brokers have a handful.
pub const MAX_REGISTERED_LISTENERS: usize = 32;

/// The longest host name (RFC 1035) or listener name a registration may carry.
const MAX_ENDPOINT_NAME_BYTES: usize = 253;

impl ListenerEndpoint {
    /// A registration's listeners as the metadata log may hold them: bounded in
    /// number and size, named uniquely, with ports in range.
    pub fn check_registered(
        listeners: Vec<ListenerEndpoint>,
    ) -> Result<Vec<ListenerEndpoint>, String> {
        if listeners.len() > MAX_REGISTERED_LISTENERS {
            return Err(format!(
                "{} listeners exceed the limit of {MAX_REGISTERED_LISTENERS}",
                listeners.len()
            ));
        }
        for (i, l) in listeners.iter().enumerate() {
            crate::config::listeners::ListenerName::parse(&l.name).map_err(|e| e.to_string())?;
            if l.name.len() > MAX_ENDPOINT_NAME_BYTES || l.host.len() > MAX_ENDPOINT_NAME_BYTES {
                return Err(format!(
                    "listener {:.64}: name or host longer than {MAX_ENDPOINT_NAME_BYTES} bytes",
                    l.name
                ));
            }
            if l.host.is_empty() || !(0..=i32::from(u16::MAX)).contains(&l.port) {
                return Err(format!(
                    "listener {}: host {:?} port {} is not an address",
                    l.name, l.host, l.port
                ));
            }
            if listeners[..i].iter().any(|o| o.name == l.name) {
                return Err(format!("listener {} registered twice", l.name));
            }
        }
        Ok(listeners)
    }
}

impl BrokerEndpoint {
    /// Where a client that arrived on listener `name` reaches this broker: Kafka
    /// answers with the endpoint of the same listener, and leaves out a broker without
    /// it.
    pub fn listener(&self, name: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// A registered broker (KIP-631 broker registration with KIP-841 fencing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: i32,
    /// Changes with every registration of a broker process.
    pub epoch: i64,
    pub rack: Option<String>,
    pub endpoint: BrokerEndpoint,
    /// A fenced broker leads nothing and is in no ISR.
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerState {
    /// May lead partitions and be in an ISR.
    pub fn is_eligible(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionState>,
    /// Topic-level config overrides (Kafka names); unset names take broker defaults.
    pub configs: BTreeMap<String, String>,
}

impl TopicState {
    /// Internal topics are hidden from clients that do not ask for them by name.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        id: Uuid,
        partitions: Vec<PartitionState>,
        configs: BTreeMap<String, String>,
    },
    PartitionsCreated {
        topic_id: Uuid,
        partitions: Vec<PartitionState>,
    },
    /// Replaces the topic's whole override set.
    TopicConfigsSet {
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        topic_id: Uuid,
    },
    /// Producer ids below `next_producer_id` are handed out; a block is reserved at a
    /// time so that InitProducerId rarely writes metadata.
    ProducerIdsReserved {
        next_producer_id: i64,
    },
    /// A broker process registered; it starts fenced.
    BrokerRegistered {
        broker: i32,
        broker_epoch: i64,
        rack: Option<String>,
        endpoint: BrokerEndpoint,
    },
    BrokerUnfenced {
        broker: i32,
        broker_epoch: i64,
    },
    BrokerFenced {
        broker: i32,
        broker_epoch: i64,
    },
    /// Controlled shutdown began.
    BrokerShuttingDown {
        broker: i32,
        broker_epoch: i64,
    },
    BrokerUnregistered {
        broker: i32,
    },
    /// One partition's new state (leader, ISR, replicas), replacing the old one whole.
    PartitionChanged {
        topic_id: Uuid,
        partition: PartitionState,
    },
    /// An ACL was created (Kafka's AccessControlEntryRecord).
    AclCreated {
        id: Uuid,
        binding: AclBinding,
    },
    /// An ACL was deleted (Kafka's RemoveAccessControlEntryRecord).
    AclRemoved {
        id: Uuid,
    },
    /// A user's SCRAM credential for one mechanism, created or replaced (KIP-554).
    ScramCredentialSet {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    ScramCredentialRemoved {
        user: String,
        mechanism: ScramMechanism,
    },
    /// Replaces a group's whole config override set (Kafka's ConfigRecord for a GROUP
    /// resource); an empty set removes the group's entry.
    GroupConfigsSet {
        group: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic config set of one broker (`broker` its id) or of the
    /// cluster default (`broker` empty), Kafka's ConfigRecord for a BROKER resource;
    /// an empty set removes the entry.
    BrokerConfigsSet {
        broker: String,
        configs: BTreeMap<String, String>,
    },
}

/// Topics added or changed, and topics gone, between two images.
#[derive(Debug, Default)]
pub struct TopicChanges<'a> {
    pub changed: Vec<&'a TopicState>,
    pub gone: Vec<&'a TopicState>,
}

/// Serializable so that the metadata quorum can snapshot it whole. Successive images
/// share structure (persistent maps; a change copies the path to the topic it touches
/// and that topic only), so cloning an image and applying a record cost about the same
/// with ten topics as with thousands, and an unchanged topic is the same allocation in
/// both images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    topics: OrdMap<Uuid, Arc<TopicState>>,
    names: OrdMap<String, Uuid>,
    /// Every producer id below this may already be in use.
    pub producer_ids_reserved_until: i64,
    brokers: BTreeMap<i32, BrokerState>,
    /// The epoch the next broker registration gets.
    pub next_broker_epoch: i64,
    #[serde(default)]
    acls: AclStore,
    /// SCRAM credentials by user and mechanism (never passwords).
    #[serde(default)]
    scram: OrdMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Config overrides of consumer groups, by group id (KIP-848 group configs).
    #[serde(default)]
    group_configs: OrdMap<String, BTreeMap<String, String>>,
    /// Dynamic broker configs by broker id as text, the cluster default under "".
    #[serde(default)]
    broker_configs: OrdMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.names
            .get(name)
            .and_then(|id| self.topics.get(id))
            .map(Arc::as_ref)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicState> {
        self.topics.get(id).map(Arc::as_ref)
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicState> {
        self.names
            .values()
            .filter_map(|id| self.topics.get(id))
            .map(Arc::as_ref)
    }

    /// What changed from `old` to this image, by topic: the topics added or changed
    /// here (in id order), and the topics of `old` that are gone. A merge of the two
    /// id-ordered maps that compares shared topics by address, so it takes no lookups.
    pub fn topic_changes<'a>(&'a self, old: &'a MetadataImage) -> TopicChanges<'a> {
        let mut changes = TopicChanges::default();
        let mut new = self.topics.iter().peekable();
        let mut before = old.topics.iter().peekable();
        loop {
            match (new.peek(), before.peek()) {
                (Some((n_id, n)), Some((o_id, o))) => match n_id.cmp(o_id) {
                    std::cmp::Ordering::Less => {
                        changes.changed.push(n);
                        new.next();
                    }
                    std::cmp::Ordering::Greater => {
                        changes.gone.push(o);
                        before.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if !Arc::ptr_eq(n, o) && n != o {
                            changes.changed.push(n);
                        }
                        new.next();
                        before.next();
                    }
                },
                (Some((_, n)), None) => {
                    changes.changed.push(n);
                    new.next();
                }
                (None, Some((_, o))) => {
                    changes.gone.push(o);
                    before.next();
                }
                (None, None) => return changes,
            }
        }
    }

    /// The cluster's ACLs, which every broker's authorizer reads.
    /// A group's config overrides, if any were set.
    pub fn group_configs(&self, group: &str) -> Option<&BTreeMap<String, String>> {
        self.group_configs.get(group)
    }

    /// The dynamic configs set on one broker (`broker` its id) or, for "", the
    /// cluster default.
    pub fn broker_configs(&self, broker: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(broker)
    }

    /// A dynamic broker config in force on broker `id`: its own value, else the
    /// cluster default, else none.
    pub fn dynamic_broker_config(&self, id: i32, name: &str) -> Option<&str> {
        self.broker_configs
            .get(&id.to_string())
            .and_then(|c| c.get(name))
            .or_else(|| self.broker_configs.get("").and_then(|c| c.get(name)))
            .map(String::as_str)
    }

    pub fn acls(&self) -> &AclStore {
        &self.acls
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerState> {
        self.brokers.get(&id)
    }

    /// The broker epoch under which broker `id` is registered, unfenced and not in
    /// controlled shutdown (KIP-841); `None` when it is not all three.
    pub fn eligible_epoch(&self, id: i32) -> Option<i64> {
        self.broker(id).filter(|b| b.is_eligible()).map(|b| b.epoch)
    }

    /// A leader may propose broker `id` into an ISR on a fetch of its process
    /// `broker_epoch` (KIP-841 with KIP-903).
    pub fn isr_eligible(&self, id: i32, broker_epoch: Option<i64>) -> bool {
        broker_epoch.is_some() && self.eligible_epoch(id) == broker_epoch
    }

    /// Brokers whose [`Self::eligible_epoch`] differs from `old`'s, with the new one.
    pub fn eligibility_changes(&self, old: &MetadataImage) -> Vec<(i32, Option<i64>)> {
        let ids: std::collections::BTreeSet<i32> = self
            .brokers
            .keys()
            .chain(old.brokers.keys())
            .copied()
            .collect();
        ids.into_iter()
            .map(|id| (id, self.eligible_epoch(id)))
            .filter(|&(id, now)| old.eligible_epoch(id) != now)
            .collect()
    }

    /// Registered brokers in id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values()
    }

    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(user)?.get(&mechanism)
    }

    /// A user's SCRAM credentials by mechanism.
    pub fn scram_credentials(
        &self,
        user: &str,
    ) -> Option<&BTreeMap<ScramMechanism, ScramCredential>> {
        self.scram.get(user)
    }

    /// Users with a SCRAM credential, in name order, with their credentials.
    pub fn scram_users(
        &self,
    ) -> impl Iterator<Item = (&str, &BTreeMap<ScramMechanism, ScramCredential>)> {
        self.scram.iter().map(|(u, c)| (u.as_str(), c))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let t = self.topic(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
    }

    /// Apply one record. Records come from the metadata log, which only ever holds
    /// records that were valid against the image they were planned on; one that does
    /// not fit means the log is corrupt, which is reported, never papered over.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
            } => {
                if self.names.contains_key(name) || self.topics.contains_key(id) {
                    return Err(format!("topic {name:?} ({id}) already exists"));
                }
                self.names.insert(name.clone(), *id);
                self.topics.insert(
                    *id,
                    Arc::new(TopicState {
                        name: name.clone(),
                        id: *id,
                        partitions: partitions.clone(),
                        configs: configs.clone(),
                    }),
                );
            }
            MetadataRecord::PartitionsCreated {
                topic_id,
                partitions,
            } => {
                let t = self
                    .topics
                    .get_mut(topic_id)
                    .map(Arc::make_mut)
                    .ok_or_else(|| format!("no topic with id {topic_id}"))?;
                for p in partitions {
                    if usize::try_from(p.partition).ok() != Some(t.partitions.len()) {
                        return Err(format!(
                            "topic {:?}: partition {} does not follow {}",
                            t.name,
                            p.partition,
                            t.partitions.len()
                        ));
                    }
                    t.partitions.push(p.clone());
                }
            }
            MetadataRecord::TopicConfigsSet { topic_id, configs } => {
                let t = self
                    .topics
                    .get_mut(topic_id)
                    .map(Arc::make_mut)
                    .ok_or_else(|| format!("no topic with id {topic_id}"))?;
                t.configs = configs.clone();
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                let t = self
                    .topics
                    .remove(topic_id)
                    .ok_or_else(|| format!("no topic with id {topic_id}"))?;
                self.names.remove(&t.name);
            }
            MetadataRecord::ProducerIdsReserved { next_producer_id } => {
                if *next_producer_id < self.producer_ids_reserved_until {
                    return Err(format!(
                        "producer id reservation {next_producer_id} goes back from {}",
                        self.producer_ids_reserved_until
                    ));
                }
                self.producer_ids_reserved_until = *next_producer_id;
            }
            MetadataRecord::BrokerRegistered {
                broker,
                broker_epoch,
                rack,
                endpoint,
            } => {
                if *broker_epoch < self.next_broker_epoch {
                    return Err(format!(
                        "broker {broker}: registration epoch {broker_epoch} is not new (next {})",
                        self.next_broker_epoch
                    ));
                }
                self.next_broker_epoch = broker_epoch + 1;
                self.brokers.insert(
                    *broker,
                    BrokerState {
                        id: *broker,
                        epoch: *broker_epoch,
                        rack: rack.clone(),
                        endpoint: endpoint.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::BrokerUnfenced {
                broker,
                broker_epoch,
            } => self.registered(*broker, *broker_epoch)?.fenced = false,
            MetadataRecord::BrokerFenced {
                broker,
                broker_epoch,
            } => self.registered(*broker, *broker_epoch)?.fenced = true,
            MetadataRecord::BrokerShuttingDown {
                broker,
                broker_epoch,
            } => {
                self.registered(*broker, *broker_epoch)?
                    .in_controlled_shutdown = true
            }
            MetadataRecord::BrokerUnregistered { broker } => {
                self.brokers
                    .remove(broker)
                    .ok_or_else(|| format!("broker {broker} is not registered"))?;
            }
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
            } => {
                let t = self
                    .topics
                    .get_mut(topic_id)
                    .map(Arc::make_mut)
                    .ok_or_else(|| format!("no topic with id {topic_id}"))?;
                let current = usize::try_from(partition.partition)
                    .ok()
                    .and_then(|i| t.partitions.get_mut(i))
                    .ok_or_else(|| {
                        format!(
                            "topic {:?} has no partition {}",
                            t.name, partition.partition
                        )
                    })?;
                if partition.partition_epoch <= current.partition_epoch
                    || partition.leader_epoch < current.leader_epoch
                {
                    return Err(format!(
                        "topic {:?} partition {}: change to partition epoch {} / leader epoch {} does not follow {} / {}",
                        t.name,
                        partition.partition,
                        partition.partition_epoch,
                        partition.leader_epoch,
                        current.partition_epoch,
                        current.leader_epoch
                    ));
                }
                *current = partition.clone();
            }
            MetadataRecord::AclCreated { id, binding } => self.acls.create(*id, binding)?,
            MetadataRecord::AclRemoved { id } => {
                self.acls.remove(*id)?;
            }
            MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => {
                if user.is_empty() {
                    return Err("SCRAM credential for an empty user name".into());
                }
                credential
                    .check(*mechanism)
                    .map_err(|e| format!("user {user:?} {mechanism} credential: {e}"))?;
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::ScramCredentialRemoved { user, mechanism } => {
                let creds = self
                    .scram
                    .get_mut(user)
                    .filter(|c| c.contains_key(mechanism))
                    .ok_or_else(|| format!("no {mechanism} credential for user {user:?}"))?;
                creds.remove(mechanism);
                if creds.is_empty() {
                    self.scram.remove(user);
                }
            }
            MetadataRecord::GroupConfigsSet { group, configs } => {
                if group.is_empty() {
                    return Err("group configs for an empty group id".into());
                }
                if configs.is_empty() {
                    self.group_configs.remove(group);
                } else {
                    self.group_configs.insert(group.clone(), configs.clone());
                }
            }
            MetadataRecord::BrokerConfigsSet { broker, configs } => {
                if !broker.is_empty() && broker.parse::<u32>().is_err() {
                    return Err(format!("broker configs for {broker:?}, not a broker id"));
                }
                if configs.is_empty() {
                    self.broker_configs.remove(broker);
                } else {
                    self.broker_configs.insert(broker.clone(), configs.clone());
                }
            }
        }
        Ok(())
    }
}

impl MetadataImage {
    fn registered(&mut self, broker: i32, epoch: i64) -> Result<&mut BrokerState, String> {
        match self.brokers.get_mut(&broker) {
            Some(b) if b.epoch == epoch => Ok(b),
            Some(b) => Err(format!(
                "broker {broker}: record for epoch {epoch} but registered with {}",
                b.epoch
            )),
            None => Err(format!("broker {broker} is not registered")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(i: i32) -> PartitionState {
        PartitionState {
            partition: i,
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        }
    }

    #[test]
    fn a_broker_is_reached_on_the_listener_a_client_used() {
        let l = |name: &str, port| ListenerEndpoint {
            name: name.into(),
            host: "b1".into(),
            port,
        };
        let e = BrokerEndpoint {
            host: "b1".into(),
            port: 9092,
            internal: "b1:9093".into(),
            listeners: vec![l("PLAINTEXT", 9092), l("SSL", 9094)],
        };
        assert_eq!(e.listener("SSL"), Some(("b1", 9094)));
        assert_eq!(e.listener("PLAINTEXT"), Some(("b1", 9092)));
        assert_eq!(e.listener("SASL_SSL"), None);
        // A registration from before named listeners still loads, and serves any.
        let old: BrokerEndpoint =
            serde_json::from_str(r#"{"host":"b1","port":9092,"internal":"b1:9093"}"#).unwrap();
        assert!(old.listeners.is_empty());
        assert_eq!(old.listener("SSL"), Some(("b1", 9092)));
        let back: BrokerEndpoint =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn registered_listeners_are_bounded_and_checked() {
        let l = |name: &str, host: &str, port| ListenerEndpoint {
            name: name.into(),
            host: host.into(),
            port,
        };
        let many: Vec<_> = (0..MAX_REGISTERED_LISTENERS)
            .map(|i| l(&format!("L{i}"), "h", 1))
            .collect();
        assert_eq!(
            ListenerEndpoint::check_registered(many.clone())
                .unwrap()
                .len(),
            MAX_REGISTERED_LISTENERS
        );
        let mut too_many = many;
        too_many.push(l("X", "h", 1));
        assert!(ListenerEndpoint::check_registered(too_many)
            .unwrap_err()
            .contains("33 listeners exceed the limit of 32"));
        for (bad, why) in [
            (vec![l("A", "h", 65536)], "port 65536"),
            (vec![l("A", "", 1)], "host \"\""),
            (vec![l("A B", "h", 1)], "letters"),
            (vec![l("A", &"h".repeat(254), 1)], "longer than 253"),
            (vec![l("A", "h", 1), l("A", "g", 2)], "registered twice"),
        ] {
            let err = ListenerEndpoint::check_registered(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn topics_are_created_grown_configured_and_deleted() {
        let mut image = MetadataImage::default();
        let id = Uuid::new_v4();
        image
            .apply(&MetadataRecord::TopicCreated {
                name: "orders".into(),
                id,
                partitions: vec![partition(0)],
                configs: BTreeMap::new(),
            })
            .unwrap();
        image
            .apply(&MetadataRecord::PartitionsCreated {
                topic_id: id,
                partitions: vec![partition(1)],
            })
            .unwrap();
        assert_eq!(image.topic("orders").unwrap().partitions.len(), 2);
        assert!(image.partition("orders", 1).is_some());
        assert!(image.partition("orders", 2).is_none());
        // A gap in partition numbers means a corrupt log.
        assert!(image
            .apply(&MetadataRecord::PartitionsCreated {
                topic_id: id,
                partitions: vec![partition(5)]
            })
            .is_err());
        let configs = BTreeMap::from([("retention.ms".to_string(), "10".to_string())]);
        image
            .apply(&MetadataRecord::TopicConfigsSet {
                topic_id: id,
                configs: configs.clone(),
            })
            .unwrap();
        assert_eq!(image.topic_by_id(&id).unwrap().configs, configs);
        image
            .apply(&MetadataRecord::TopicDeleted { topic_id: id })
            .unwrap();
        assert!(image.topic("orders").is_none());
        assert!(image
            .apply(&MetadataRecord::TopicDeleted { topic_id: id })
            .is_err());
    }

    #[test]
    fn acls_are_created_and_removed_by_id_and_kept_in_snapshots() {
        use crate::auth::acl::*;
        let binding = AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: "orders".into(),
                pattern_type: PatternType::Literal,
            },
            entry: AccessControlEntry {
                principal: "User:alice".into(),
                host: "*".into(),
                operation: AclOperation::Read,
                permission: PermissionType::Allow,
            },
        };
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        // A snapshot written before images held ACLs reads as an image without any.
        let json = serde_json::to_string(&image).unwrap();
        assert!(json.contains(",\"acls\":[]"), "{json}");
        let old: MetadataImage = serde_json::from_str(&json.replace(",\"acls\":[]", "")).unwrap();
        assert!(old.acls().is_empty());
        image
            .apply(&MetadataRecord::AclCreated {
                id,
                binding: binding.clone(),
            })
            .unwrap();
        let snapshot: MetadataImage =
            serde_json::from_str(&serde_json::to_string(&image).unwrap()).unwrap();
        assert_eq!(snapshot, image);
        assert_eq!(
            snapshot
                .acls()
                .applying_to(ResourceType::Topic, "orders")
                .count(),
            1
        );
        image.apply(&MetadataRecord::AclRemoved { id }).unwrap();
        assert!(image.acls().is_empty());
        // Removing twice, or creating one twice, means the log is corrupt.
        assert!(image.apply(&MetadataRecord::AclRemoved { id }).is_err());
        let twice = MetadataRecord::AclCreated {
            id: Uuid::new_v4(),
            binding,
        };
        image.apply(&twice).unwrap();
        assert!(image.apply(&twice).is_err());
    }

    #[test]
    fn scram_credentials_are_set_replaced_and_removed() {
        use crate::auth::scram::random_salt;
        let m = ScramMechanism::Sha512;
        let cred = |pw| ScramCredential::from_password(m, pw, random_salt(), 4096).unwrap();
        let set = |user: &str, credential| MetadataRecord::ScramCredentialSet {
            user: user.into(),
            mechanism: m,
            credential,
        };
        let mut image = MetadataImage::default();
        image.apply(&set("alice", cred("one"))).unwrap();
        let second = cred("two");
        image.apply(&set("alice", second.clone())).unwrap();
        assert_eq!(image.scram_credential("alice", m), Some(&second));
        assert_eq!(
            image.scram_credential("alice", ScramMechanism::Sha256),
            None
        );
        // A credential out of bounds, or for no one, means a corrupt log.
        let mut weak = cred("x");
        weak.iterations = 4095;
        assert!(image.apply(&set("bob", weak)).is_err());
        assert!(image.apply(&set("", cred("x"))).is_err());
        assert!(image.scram_credential("bob", m).is_none());
        // The image survives a snapshot round trip with its credentials.
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), image);
        let remove = |user: &str| MetadataRecord::ScramCredentialRemoved {
            user: user.into(),
            mechanism: m,
        };
        image.apply(&remove("alice")).unwrap();
        assert_eq!(image.scram_users().count(), 0);
        assert!(image.apply(&remove("alice")).is_err());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut image = MetadataImage::default();
        let rec = |id| MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: vec![],
            configs: BTreeMap::new(),
        };
        image.apply(&rec(Uuid::new_v4())).unwrap();
        assert!(image.apply(&rec(Uuid::new_v4())).is_err());
    }

    #[test]
    fn group_configs_are_replaced_whole_and_survive_a_snapshot() {
        let mut image = MetadataImage::default();
        let set = |group: &str, configs: &[(&str, &str)]| MetadataRecord::GroupConfigsSet {
            group: group.into(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        image.apply(&set("g", &[("a", "1"), ("b", "2")])).unwrap();
        image.apply(&set("g", &[("b", "3")])).unwrap();
        let expected = BTreeMap::from([("b".to_string(), "3".to_string())]);
        assert_eq!(image.group_configs("g"), Some(&expected));
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), image);
        // A snapshot written before group configs existed still loads.
        let old: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("group_configs");
        let loaded: MetadataImage = serde_json::from_value(old.into()).unwrap();
        assert_eq!(loaded.group_configs("g"), None);
        image.apply(&set("g", &[])).unwrap();
        assert_eq!(image.group_configs("g"), None);
        assert!(image.apply(&set("", &[("a", "1")])).is_err());
    }

    #[test]
    fn broker_configs_fall_back_to_the_cluster_default_and_survive_a_snapshot() {
        let mut image = MetadataImage::default();
        let set = |broker: &str, configs: &[(&str, &str)]| MetadataRecord::BrokerConfigsSet {
            broker: broker.into(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        image.apply(&set("", &[("r", "10")])).unwrap();
        image.apply(&set("2", &[("r", "20")])).unwrap();
        assert_eq!(image.dynamic_broker_config(2, "r"), Some("20"));
        assert_eq!(image.dynamic_broker_config(1, "r"), Some("10"));
        assert_eq!(image.dynamic_broker_config(1, "other"), None);
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), image);
        let old: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("broker_configs");
        let loaded: MetadataImage = serde_json::from_value(old.into()).unwrap();
        assert_eq!(loaded.dynamic_broker_config(2, "r"), None);
        image.apply(&set("", &[])).unwrap();
        assert_eq!(image.dynamic_broker_config(1, "r"), None);
        assert_eq!(image.broker_configs(""), None);
        assert!(image.apply(&set("-1", &[("r", "1")])).is_err());
        assert!(image.apply(&set("b", &[("r", "1")])).is_err());
    }
}
