//! The cluster metadata image: topics with their ids, partitions, replicas, leaders,
//! leader epochs, ISR and config overrides. It changes only by applying
//! [`MetadataRecord`]s, in log order, so every copy that applied the same records
//! holds the same image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// Broker id of the leader, or -1 when the partition has none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
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
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    topics: BTreeMap<Uuid, TopicState>,
    names: BTreeMap<String, Uuid>,
    /// Every producer id below this may already be in use.
    pub producer_ids_reserved_until: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicState> {
        self.topics.get(id)
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicState> {
        self.names.values().filter_map(|id| self.topics.get(id))
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
                    TopicState {
                        name: name.clone(),
                        id: *id,
                        partitions: partitions.clone(),
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionsCreated {
                topic_id,
                partitions,
            } => {
                let t = self
                    .topics
                    .get_mut(topic_id)
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
        }
        Ok(())
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
}
