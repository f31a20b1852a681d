//! What ties the group coordinator to its broker: creating `__consumer_offsets` on the
//! first FindCoordinator, and the timer task that ticks the loaded state machines.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;

use super::GroupRuntime;
use crate::group::OFFSETS_TOPIC;
use crate::server::broker::Broker;
use crate::server::internal_topic_create::{create_internal_topic, InternalTopic};

/// How often the state machines are ticked. Deadlines are seconds apart in
/// practice (session timeouts are at least group.min.session.timeout.ms).
const TICK: Duration = Duration::from_millis(100);

/// Create `__consumer_offsets` unless it exists, as Kafka does on the first
/// FindCoordinator for a group, with Kafka's configs for it: compacted, so the
/// partition keeps the latest record per group and per committed partition, and
/// tombstones (deleted groups, expired offsets) eventually leave it; time retention
/// off, so a live commit is never deleted with an old segment.
pub async fn create_offsets_topic(broker: &Broker) -> Result<(), ResponseError> {
    let mut configs = std::collections::BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    configs.insert("retention.ms".to_string(), "-1".to_string());
    // offsets.topic.segment.bytes
    configs.insert("segment.bytes".to_string(), "104857600".to_string());
    create_internal_topic(
        broker,
        InternalTopic {
            name: OFFSETS_TOPIC,
            partitions: broker.config.offsets_topic_num_partitions,
            replication_factor: broker.config.offsets_topic_replication_factor,
            replication_flag: "--offsets-topic-replication-factor",
            configs,
        },
    )
    .await
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
