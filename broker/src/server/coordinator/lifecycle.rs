//! What ties the group coordinator to its broker: creating `__consumer_offsets` on the
//! first FindCoordinator, and the timer task that ticks the loaded state machines.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;

use super::GroupRuntime;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::admin::{plan_create_topic, AdminError, NewTopic};
use crate::server::broker::Broker;

/// How often the state machines are ticked. Deadlines are seconds apart in
/// practice (session timeouts are at least group.min.session.timeout.ms).
const TICK: Duration = Duration::from_millis(100);

/// The `__consumer_offsets` topic configs, as Kafka sets them: compacted, so the
/// partition keeps the latest record per group and per committed partition, and
/// tombstones (deleted groups, expired offsets) eventually leave it. Time retention
/// is off as well, so a live commit is never deleted with an old segment.
fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    let mut c = std::collections::BTreeMap::new();
    c.insert("cleanup.policy".to_string(), "compact".to_string());
    c.insert("retention.ms".to_string(), "-1".to_string());
    // offsets.topic.segment.bytes
    c.insert("segment.bytes".to_string(), "104857600".to_string());
    c
}

/// The replication factor `__consumer_offsets` is created with:
/// offsets.topic.replication.factor, capped at the number of metadata quorum voters.
/// Kafka does not cap it (its single-broker example configs set it to 1 instead); the
/// cap lets one broker, its own only voter, serve groups with no flags while a cluster
/// of three or more voters gets Kafka's three replicas. Voters, not live or registered
/// brokers, set the cap: every broker reads the same --voters, so the answer does not
/// depend on how many brokers happen to be up at the first FindCoordinator.
pub fn offsets_topic_replication_factor(configured: i16, voters: usize) -> i16 {
    configured.min(i16::try_from(voters).unwrap_or(i16::MAX))
}

/// Create `__consumer_offsets` unless it exists, as Kafka does on the first
/// FindCoordinator for a group, with [`offsets_topic_replication_factor`] replicas.
/// With fewer live brokers than that the topic is not created smaller:
/// COORDINATOR_NOT_AVAILABLE until enough brokers are up.
pub async fn create_offsets_topic(broker: &Broker) -> Result<(), ResponseError> {
    if broker.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let voters = broker.config.quorum_voters().len();
    let rf =
        offsets_topic_replication_factor(broker.config.offsets_topic_replication_factor, voters);
    let new = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: broker.config.offsets_topic_num_partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: offsets_topic_configs(),
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
                         (offsets.topic.replication.factor {}, {voters} quorum voters)",
                        brokers.len(),
                        broker.config.offsets_topic_replication_factor
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
                "created {OFFSETS_TOPIC}"
            );
            Ok(())
        }
        Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e.message, "could not create {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Tick the loaded state machines; expire offsets every
/// `offsets.retention.check.interval.ms`; on every metadata change drop offsets of
/// deleted topics.
pub async fn run_timer(
    broker: Arc<Broker>,
    runtime: Arc<GroupRuntime>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry_every = broker.config.offsets_retention_check_interval_ms.max(100);
    let clock = broker.clock.clone();
    let mut last_expiry = clock.now_ms();
    let mut last_image = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let image = broker.image();
        let image_changed = last_image
            .as_ref()
            .is_none_or(|last| !Arc::ptr_eq(&image, last));
        let now = clock.now_ms();
        runtime.each_shard(|c| c.tick(now));
        if now - last_expiry >= i64::try_from(expiry_every).unwrap_or(i64::MAX) {
            last_expiry = now;
            // Offsets expire by their commit time, a wall-clock timestamp.
            let wall = clock.wall_ms();
            runtime.each_shard(|c| c.expire_offsets(wall));
        }
        if image_changed {
            let topics: std::collections::HashSet<String> =
                image.topics().map(|t| t.name.clone()).collect();
            runtime.each_shard(|c| c.remove_offsets_of_deleted_topics(|t| topics.contains(t)));
            last_image = Some(image);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_topic_replication_factor_is_capped_at_the_quorum_voters() {
        // (offsets.topic.replication.factor, voters) -> replicas of the topic.
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
                offsets_topic_replication_factor(configured, voters),
                rf,
                "offsets.topic.replication.factor {configured} with {voters} voters"
            );
        }
    }
}
