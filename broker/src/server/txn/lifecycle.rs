//! What ties the transaction coordinator to its broker: creating `__transaction_state`
//! on the first FindCoordinator for a transactional id, the timer task that ticks the
//! loaded coordinators (transaction timeouts, id expiry, retries), and the effects
//! task that writes markers and reserves producer ids for them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Effect, TxnRuntime};
use crate::server::broker::Broker;
use crate::server::internal_topic_create::{create_internal_topic, InternalTopic};
use crate::txn::TRANSACTION_STATE_TOPIC;

/// How often the coordinators' deadlines are looked at. Transaction timeouts are
/// seconds long; marker retries back off from 100 ms.
const TICK: Duration = Duration::from_millis(100);

/// Producer ids reserved from the controller at a time for one coordinator shard.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Create `__transaction_state` unless it exists, with Kafka's settings for it:
/// compacted (the latest record per transactional id), min.insync.replicas from
/// transaction.state.log.min.isr, never an unclean leader.
pub async fn create_transaction_topic(broker: &Broker) -> Result<(), ResponseError> {
    let config = &broker.config;
    let mut configs = BTreeMap::new();
    for (k, v) in [
        ("cleanup.policy", "compact".to_string()),
        ("retention.ms", "-1".to_string()),
        ("compression.type", "uncompressed".to_string()),
        ("unclean.leader.election.enable", "false".to_string()),
        // transaction.state.log.segment.bytes
        ("segment.bytes", "104857600".to_string()),
        (
            "min.insync.replicas",
            config.transaction_state_log_min_isr.to_string(),
        ),
    ] {
        configs.insert(k.to_string(), v);
    }
    create_internal_topic(
        broker,
        InternalTopic {
            name: TRANSACTION_STATE_TOPIC,
            partitions: config.transaction_state_log_num_partitions,
            replication_factor: config.transaction_state_log_replication_factor,
            replication_flag: "--transaction-state-log-replication-factor",
            configs,
        },
    )
    .await
}

/// Tick every loaded coordinator whose next deadline has passed.
pub async fn run_timer(broker: Arc<Broker>, runtime: Arc<TxnRuntime>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = broker.clock.wall_ms();
        for shard in runtime.loaded() {
            let due = shard
                .read(|c, _| c.next_deadline_ms().is_some_and(|at| at <= now))
                .unwrap_or(false);
            if due {
                shard.apply(|c, now| c.tick(now));
            }
        }
    }
}

/// Carry out what the shards hand over: marker writes (each in a task of its own, so
/// one slow leader holds up only its transaction) and producer id reservations.
pub async fn run_effects(
    broker: Arc<Broker>,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    shutdown: CancellationToken,
) {
    loop {
        let effect = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = effects.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            match effect {
                Effect::Markers { shard, write } => {
                    let results = super::markers::send(&broker, shard.index(), &write).await;
                    shard.markers_done(&results);
                }
                Effect::ReserveProducerIds { shard } => {
                    match broker.reserve_producer_ids(PRODUCER_ID_BLOCK).await {
                        Ok((first, count)) => {
                            shard.apply(|c, _| {
                                c.add_producer_ids(first, count);
                                Vec::new()
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not reserve producer ids for the transaction coordinator");
                            shard.apply(|c, now| {
                                c.producer_ids_failed(now);
                                Vec::new()
                            });
                        }
                    }
                }
            }
        });
    }
}
