//! ElectLeaders (KIP-183, KIP-460): leader elections an operator asks for, decided on the
//! controller's state as Kafka's controller decides them.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Controller;
use crate::replication::cluster_state::ControllerRecord;
use crate::replication::{BrokerId, Isr, LeaderEpoch, TopicPartition, NO_LEADER};

/// Kafka's ElectionType numbers (ElectLeaders v1+; v0 asks for preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica leads again if it is in the ISR and can serve.
    Preferred,
    /// Only for a partition without a leader: an ISR member if one can serve, else any
    /// replica that can (its log becomes the truth; acknowledged records may be lost).
    Unclean,
}

impl ElectionType {
    pub fn from_wire(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The outcome for one partition: `Ok` when a new leader was committed.
pub type ElectionResult = Result<(), (ResponseError, String)>;

/// What to elect: named partitions by topic name, or every partition (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeaders {
    pub election: ElectionType,
    pub partitions: Option<Vec<(String, i32)>>,
}

impl Controller {
    /// Decide an ElectLeaders request. Named partitions each get an answer; asked for
    /// every partition, only those the election concerned are answered, as Kafka's
    /// controller leaves out the ones already led as asked (ELECTION_NOT_NEEDED).
    pub fn elect_leaders(
        &mut self,
        req: &ElectLeaders,
    ) -> (Vec<(String, i32, ElectionResult)>, Vec<ControllerRecord>) {
        let wanted: Vec<(String, i32, Option<TopicPartition>)> = match &req.partitions {
            Some(named) => {
                let ids: BTreeMap<&str, Uuid> = self
                    .state
                    .topics
                    .iter()
                    .map(|(&id, t)| (t.name.as_str(), id))
                    .collect();
                named
                    .iter()
                    .map(|(topic, partition)| {
                        let tp = ids.get(topic.as_str()).map(|&topic_id| TopicPartition {
                            topic_id,
                            partition: *partition,
                        });
                        (topic.clone(), *partition, tp)
                    })
                    .collect()
            }
            None => self
                .state
                .partitions
                .keys()
                .filter_map(|&tp| {
                    let topic = self.state.topics.get(&tp.topic_id)?;
                    Some((topic.name.clone(), tp.partition, Some(tp)))
                })
                .collect(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        let mut records = Vec::new();
        for (topic, partition, tp) in wanted {
            let tp = tp.filter(|tp| self.state.partitions.contains_key(tp));
            let outcome = match tp {
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("no partition {topic}-{partition}"),
                )),
                Some(tp) => match self.elect_one(req.election, tp) {
                    Ok(Some(record)) => {
                        records.push(record);
                        Ok(())
                    }
                    Ok(None) => Err((
                        ResponseError::ElectionNotNeeded,
                        format!("{topic}-{partition} is already led as asked"),
                    )),
                    Err((code, why)) => Err((code, format!("{topic}-{partition}: {why}"))),
                },
            };
            let not_needed = matches!(&outcome, Err((ResponseError::ElectionNotNeeded, _)));
            if req.partitions.is_some() || !not_needed {
                results.push((topic, partition, outcome));
            }
        }
        (results, records)
    }

    /// One partition: the committed change, `None` when no election is needed.
    fn elect_one(
        &mut self,
        election: ElectionType,
        tp: TopicPartition,
    ) -> Result<Option<ControllerRecord>, (ResponseError, String)> {
        let current = self.state.partitions[&tp].clone();
        let mut next = current.clone();
        match election {
            ElectionType::Preferred => {
                let Some(&preferred) = current.replicas.first() else {
                    return Err((
                        ResponseError::PreferredLeaderNotAvailable,
                        "no replicas".to_string(),
                    ));
                };
                if current.leader == preferred {
                    return Ok(None);
                }
                if !current.isr.contains(preferred) || !self.state.can_serve(preferred, &current) {
                    return Err((
                        ResponseError::PreferredLeaderNotAvailable,
                        format!(
                            "preferred replica {preferred} is not in the ISR {:?} or cannot serve",
                            current.isr.members()
                        ),
                    ));
                }
                next.leader = preferred;
                next.leader_epoch = LeaderEpoch(current.leader_epoch.0 + 1);
            }
            ElectionType::Unclean => {
                if current.has_leader() {
                    return Ok(None);
                }
                let replicas = current.replicas.clone();
                self.elect_within(&mut next, &replicas);
                if next.leader == NO_LEADER {
                    let any: Option<BrokerId> = replicas
                        .iter()
                        .copied()
                        .find(|&b| self.state.can_serve(b, &current));
                    let Some(b) = any else {
                        return Err((
                            ResponseError::EligibleLeadersNotAvailable,
                            format!("no replica of {replicas:?} can serve"),
                        ));
                    };
                    next.leader = b;
                    next.isr = Isr::new(vec![b]);
                    next.leader_epoch = LeaderEpoch(current.leader_epoch.0 + 1);
                }
            }
        }
        Ok(Some(self.change(tp, next)))
    }
}
