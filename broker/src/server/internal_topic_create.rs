//! Creating a coordinator's internal topic (`__consumer_offsets`,
//! `__transaction_state`) on first use, as Kafka creates them.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::broker::Broker;
use crate::metadata::admin::{plan_create_topic, AdminError, NewTopic};

/// The replication factor an internal topic is created with: its configured one
/// (offsets.topic.replication.factor, transaction.state.log.replication.factor),
/// capped at the number of metadata quorum voters. Kafka does not cap it (its
/// single-broker example configs set it to 1 instead); the cap lets one broker, its
/// own only voter, serve groups and transactions with no flags while a cluster of
/// three or more voters gets Kafka's three replicas. Voters, not live or registered
/// brokers, set the cap: every broker reads the same --voters, so the answer does not
/// depend on how many brokers happen to be up at the first FindCoordinator.
pub fn internal_replication_factor(configured: i16, voters: usize) -> i16 {
    configured.min(i16::try_from(voters).unwrap_or(i16::MAX))
}

/// An internal topic to create: its name, partitions, configured replication factor
/// (capped by [`internal_replication_factor`]) and topic configs.
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: i32,
    pub replication_factor: i16,
    /// The flag that sets the replication factor, for the refusal's message.
    pub replication_flag: &'static str,
    pub configs: BTreeMap<String, String>,
}

/// Create `topic` unless it exists, as Kafka does on the first FindCoordinator that
/// needs it. With fewer live brokers than its replication factor the topic is not
/// created smaller: COORDINATOR_NOT_AVAILABLE until enough brokers are up.
pub async fn create_internal_topic(
    broker: &Broker,
    topic: InternalTopic,
) -> Result<(), ResponseError> {
    if broker.image().topic(topic.name).is_some() {
        return Ok(());
    }
    let voters = broker.config.quorum_voters().len();
    let rf = internal_replication_factor(topic.replication_factor, voters);
    let new = NewTopic {
        name: topic.name.to_string(),
        num_partitions: topic.partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: topic.configs,
    };
    // Planning runs under the metadata writer's lock, so of two concurrent
    // FindCoordinators the second plans against the created topic.
    match broker
        .change_metadata(true, |image| {
            let brokers = broker.live_brokers(image);
            if brokers.len() < usize::try_from(rf).unwrap_or(usize::MAX) {
                return Err(AdminError {
                    code: ResponseError::CoordinatorNotAvailable,
                    message: format!(
                        "not created: {} live brokers, fewer than its replication factor {rf} \
                         ({} {}, {voters} quorum voters)",
                        brokers.len(),
                        topic.replication_flag,
                        topic.replication_factor
                    ),
                });
            }
            plan_create_topic(image, &brokers, &new, 1, rf)
        })
        .await
    {
        Ok(_) => {
            tracing::info!(
                partitions = new.num_partitions,
                replication_factor = rf,
                "created {}",
                topic.name
            );
            Ok(())
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not create {}", topic.name);
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_replication_factor_is_capped_at_the_quorum_voters() {
        // (configured replication factor, voters) -> replicas of the topic.
        for (configured, voters, rf) in [
            (3, 1, 1), // one broker, no flags
            (3, 2, 2),
            (3, 3, 3), // fjord dev --brokers 3, a 3+ broker StatefulSet
            (3, 5, 3),
            (1, 3, 1), // asked for fewer than the voters: as asked
            (5, 3, 3),
            (i16::MAX, 100_000, i16::MAX),
        ] {
            assert_eq!(
                internal_replication_factor(configured, voters),
                rf,
                "replication factor {configured} with {voters} voters"
            );
        }
    }
}
