//! The replication quotas' gate on a running broker: the rates read from the dynamic
//! broker configs and the throttled replicas from the topic configs in the installed
//! image, the spending counted in this broker's quotas and metrics.

use super::broker::Broker;
use super::partition::Partition;
use super::throttle::ThrottleGate;
use crate::replication::throttle::{is_throttled, parse_rate, Direction, ThrottledReplicas};
use crate::replication::BrokerId;

/// The gate of one direction on a running broker.
pub struct BrokerGate<'a> {
    broker: &'a Broker,
    direction: Direction,
}

impl<'a> BrokerGate<'a> {
    pub fn leader(broker: &'a Broker) -> Self {
        BrokerGate {
            broker,
            direction: Direction::Leader,
        }
    }

    pub fn follower(broker: &'a Broker) -> Self {
        BrokerGate {
            broker,
            direction: Direction::Follower,
        }
    }

    /// The rate in force here, put into the quota.
    fn rate(&self, image: &crate::metadata::image::MetadataImage) -> Option<u64> {
        let rate = image
            .dynamic_broker_config(self.broker.node_id(), self.direction.rate_config())
            .and_then(|v| parse_rate(v).ok());
        let now_ms = self.broker.clock.now_ms();
        let mut q = self.broker.replication_quotas.of(self.direction).lock();
        if q.quota.rate_bytes_per_s() != rate {
            q.quota.set_rate(rate, now_ms);
            self.broker
                .metrics
                .replication_throttle_rate
                .with_label_values(&[self.direction.label()])
                .set(rate.map_or(0, |r| i64::try_from(r).unwrap_or(i64::MAX)));
        }
        rate
    }
}

impl ThrottleGate for BrokerGate<'_> {
    fn throttled(&self, partition: &Partition, follower: Option<BrokerId>) -> bool {
        let image = self.broker.image();
        if self.rate(&image).is_none() {
            return false;
        }
        let Some(topic) = image.topic_by_id(&partition.topic_id) else {
            return false;
        };
        let listed = topic
            .configs
            .get(self.direction.replicas_config())
            .is_some_and(|v| {
                ThrottledReplicas::parse(v).lists(partition.index, self.broker.node_id())
            });
        let follower = follower.unwrap_or(self.broker.node_id());
        let in_sync = match self.direction {
            // The leader's own ISR, fresher than the metadata's.
            Direction::Leader => partition.isr_contains(follower),
            Direction::Follower => usize::try_from(partition.index)
                .ok()
                .and_then(|i| topic.partitions.get(i))
                .is_some_and(|p| p.isr.contains(&follower)),
        };
        is_throttled(listed, in_sync)
    }

    fn held_until_ms(&self) -> Option<i64> {
        let now_ms = self.broker.clock.now_ms();
        let mut q = self.broker.replication_quotas.of(self.direction).lock();
        if !q.quota.exceeded(now_ms) {
            return None;
        }
        let until = q.quota.ready_at_ms(now_ms);
        // Each spent stretch counted once, however often it is asked about.
        let from = now_ms.max(q.counted_until_ms);
        if until > from && until != i64::MAX {
            self.broker
                .metrics
                .replication_throttled_time_ms
                .with_label_values(&[self.direction.label()])
                .inc_by(u64::try_from(until - from).unwrap_or(0));
            q.counted_until_ms = until;
        }
        Some(until)
    }

    fn passed(&self, bytes: u64) {
        let now_ms = self.broker.clock.now_ms();
        self.broker
            .replication_quotas
            .of(self.direction)
            .lock()
            .quota
            .record(bytes, now_ms);
        self.broker
            .metrics
            .replication_throttled_bytes
            .with_label_values(&[self.direction.label()])
            .inc_by(bytes);
    }
}
