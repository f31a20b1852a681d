//! The transaction coordinator runtime. The coordinator of transactional id T is the
//! leader of partition `txn::partition_for(T, N)` of `__transaction_state`, so the
//! runtime keeps one shard per partition this broker leads (see `server::shards`):
//! [`TxnRuntime::become_leader`] reads the partition back into a fresh pure
//! [`TxnCoordinator`], [`TxnRuntime::resign`] drops it. Each shard carries out its
//! coordinator's actions (`crate::txn` documents the contract): records are appended
//! to the partition with acks=all and reported back once the ISR holds them, answers
//! go to the requests parked on the shard, and marker writes and producer id
//! reservations, which need the rest of the broker, go to the effects task of
//! `lifecycle`, which reports their outcomes back to the shard that asked (if it is
//! still in service). Time is the broker clock's wall time: the records carry it, and
//! a new leader on another broker reads them.

pub mod lifecycle;
pub mod markers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::internal_topic::{encode_batches, read_partition, Entry};
use super::partition::{append_error_code, Partition};
use super::shards::{Load, Shards};
use crate::txn::{
    Action, Answer, MarkerResults, MarkerWrite, RequestId, TxnConfig, TxnCoordinator, TxnRecord,
};

/// Added to the write timeout before a parked request gives up: the coordinator
/// answers every parked request once its write completes or fails, so this only
/// guards against a client hanging on a bug.
const PARKED_SLACK: Duration = Duration::from_secs(5);

/// Work a shard hands to the rest of the broker ([`lifecycle::run_effects`]).
pub enum Effect {
    Markers {
        shard: Arc<TxnShard>,
        write: MarkerWrite,
    },
    ReserveProducerIds {
        shard: Arc<TxnShard>,
    },
}

/// The coordinator of the transactional ids of one `__transaction_state` partition
/// this broker leads, at one leader epoch.
pub struct TxnShard {
    partition: Arc<Partition>,
    leader_epoch: i32,
    write_timeout_ms: i64,
    next_request: AtomicU64,
    effects: mpsc::UnboundedSender<Effect>,
    state: Mutex<ShardState>,
}

struct ShardState {
    /// False once the shard is resigned or replaced: a request that found the shard
    /// just before then must not act on it, and late outcomes are dropped.
    active: bool,
    coordinator: TxnCoordinator,
    /// Parked requests. Dropping a sender (on retirement) answers NOT_COORDINATOR.
    waiting: HashMap<RequestId, oneshot::Sender<Answer>>,
}

impl super::shards::Shard for TxnShard {
    fn topic_id(&self) -> uuid::Uuid {
        self.partition.topic_id
    }
    fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
}

pub struct TxnRuntime {
    config: TxnConfig,
    /// How long a `__transaction_state` write may wait for the ISR (request.timeout.ms).
    write_timeout_ms: i64,
    shards: Shards<TxnShard>,
    /// The effects task's inbox. Unbounded, yet bounded by the coordinators: each
    /// transactional id has at most one marker write in flight and each shard at most
    /// one producer id reservation.
    effects: mpsc::UnboundedSender<Effect>,
}

impl TxnRuntime {
    /// The runtime and the receiving end of its effects, for
    /// [`lifecycle::run_effects`].
    pub fn from_config(
        config: &crate::config::BrokerConfig,
    ) -> (TxnRuntime, mpsc::UnboundedReceiver<Effect>) {
        let (effects, rx) = mpsc::unbounded_channel();
        let txn = TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            transactional_id_expiration_ms: config.transactional_id_expiration_ms,
            max_record_bytes: usize::try_from(config.message_max_bytes).unwrap_or(usize::MAX),
            ..TxnConfig::default()
        };
        let runtime = TxnRuntime {
            config: txn,
            write_timeout_ms: i64::try_from(config.request_timeout_ms).unwrap_or(i64::MAX),
            shards: Shards::default(),
            effects,
        };
        (runtime, rx)
    }

    /// Coordinate the transactional ids of `partition`, which this broker now leads:
    /// replay it into a fresh coordinator, then resume what the previous coordinator
    /// left half done (markers of prepared transactions). Idempotent for the same
    /// leader epoch. Does file I/O: call from a blocking context.
    pub fn become_leader(&self, partition: Arc<Partition>) {
        let epoch = partition.leader_epoch();
        let Some((load, replaced)) = self.shards.begin_load(&partition, epoch) else {
            return;
        };
        if let Some(old) = replaced {
            old.retire();
        }
        let started = std::time::Instant::now();
        let mut coordinator = TxnCoordinator::new(partition.index, epoch, self.config.clone());
        let mut records = 0usize;
        let replayed = read_partition(&partition, |entry| {
            let Entry::Record(r) = entry else {
                return Ok(());
            };
            let Some(key) = r.key else {
                return Err("a record without a key".to_string());
            };
            // A record that does not decode is a storage fault: loading stops rather
            // than coordinate from a partial state.
            let record = TxnRecord::decode(&key, r.value.as_deref())
                .map_err(|e| format!("offset {}: {e}", r.offset))?;
            records += 1;
            coordinator
                .replay(&record)
                .map_err(|e| format!("offset {}: {e}", r.offset))
        });
        match replayed {
            Ok(()) => {}
            Err(e) => {
                // Clients hear NOT_COORDINATOR and retry; the next leadership change
                // or restart loads again.
                tracing::error!(error = %e, "could not load transaction coordinator shard");
                self.shards.abandon_load(partition.index, &load);
                return;
            }
        }
        let Some(shard) = self.install(&partition, &load, coordinator) else {
            return;
        };
        let ids = {
            let mut state = shard.state.lock();
            let now = shard.now_ms();
            let actions = state.coordinator.load_complete(now);
            shard.execute(&mut state, actions);
            state.coordinator.txns().count()
        };
        tracing::info!(
            partition = partition.index,
            leader_epoch = load.leader_epoch,
            transactional_ids = ids,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded transaction coordinator shard"
        );
    }

    fn install(
        &self,
        partition: &Arc<Partition>,
        load: &Load,
        coordinator: TxnCoordinator,
    ) -> Option<Arc<TxnShard>> {
        self.shards
            .finish_load(partition.index, load, |()| TxnShard {
                partition: partition.clone(),
                leader_epoch: load.leader_epoch,
                write_timeout_ms: self.write_timeout_ms,
                next_request: AtomicU64::new(1),
                effects: self.effects.clone(),
                state: Mutex::new(ShardState {
                    active: true,
                    coordinator,
                    waiting: HashMap::new(),
                }),
            })
    }

    /// Stop coordinating the ids of partition `index`.
    pub fn resign(&self, index: i32) {
        if let Some(old) = self.shards.remove(index) {
            tracing::info!(partition = index, "resigned transaction coordinator shard");
            old.retire();
        }
    }

    /// The shard coordinating `__transaction_state` partition `index`.
    pub fn shard(&self, index: i32) -> Result<Arc<TxnShard>, ResponseError> {
        self.shards.get(index)
    }

    pub fn loaded(&self) -> Vec<Arc<TxnShard>> {
        self.shards.loaded()
    }
}

impl TxnShard {
    /// The `__transaction_state` partition this shard coordinates.
    pub fn index(&self) -> i32 {
        self.partition.index
    }

    /// The coordinator's time: the broker clock's wall time, as the records carry it.
    fn now_ms(&self) -> i64 {
        self.partition.clock().wall_ms()
    }

    fn retire(&self) {
        let mut state = self.state.lock();
        state.active = false;
        let _ = state.coordinator.resign();
        // Parked requests see their sender dropped: NOT_COORDINATOR.
        state.waiting.clear();
    }

    /// Feed one event to a shard still in service and carry out its actions.
    pub fn apply(self: &Arc<Self>, event: impl FnOnce(&mut TxnCoordinator, i64) -> Vec<Action>) {
        let mut state = self.state.lock();
        if !state.active {
            return;
        }
        let now = self.now_ms();
        let actions = event(&mut state.coordinator, now);
        self.execute(&mut state, actions);
    }

    /// Read the coordinator of a shard still in service.
    pub fn read<T>(&self, f: impl FnOnce(&TxnCoordinator, i64) -> T) -> Result<T, ResponseError> {
        let state = self.state.lock();
        if !state.active {
            return Err(ResponseError::NotCoordinator);
        }
        Ok(f(&state.coordinator, self.now_ms()))
    }

    /// A request whose answer may wait on a record: `event` feeds it with the request
    /// id the answer will carry. NOT_COORDINATOR when the shard left service first.
    pub async fn ask(
        self: &Arc<Self>,
        event: impl FnOnce(&mut TxnCoordinator, RequestId, i64) -> Vec<Action>,
    ) -> Result<Answer, ResponseError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state.lock();
            if !state.active {
                return Err(ResponseError::NotCoordinator);
            }
            state.waiting.insert(id, tx);
            let now = self.now_ms();
            let actions = event(&mut state.coordinator, id, now);
            self.execute(&mut state, actions);
        }
        let bound =
            Duration::from_millis(u64::try_from(self.write_timeout_ms).unwrap_or(0)) + PARKED_SLACK;
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ResponseError::NotCoordinator),
            Err(_) => {
                self.state.lock().waiting.remove(&id);
                tracing::warn!(
                    partition = self.partition.index,
                    "transaction request was not answered in time"
                );
                Err(ResponseError::RequestTimedOut)
            }
        }
    }

    /// The outcomes of a [`MarkerWrite`] this shard asked for.
    pub fn markers_done(self: &Arc<Self>, results: &MarkerResults) {
        self.apply(|c, now| c.markers_done(results, now));
    }

    /// Carry out the actions of one event, in order.
    fn execute(self: &Arc<Self>, state: &mut ShardState, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Persist { write, record } => self.persist(state, write, &record),
                Action::Reply { request, answer } => {
                    if let Some(tx) = state.waiting.remove(&request) {
                        let _ = tx.send(answer);
                    }
                }
                Action::WriteMarkers(write) => {
                    let _ = self.effects.send(Effect::Markers {
                        shard: self.clone(),
                        write,
                    });
                }
                Action::ReserveProducerIds => {
                    let _ = self.effects.send(Effect::ReserveProducerIds {
                        shard: self.clone(),
                    });
                }
            }
        }
    }

    /// Append one record with acks=all; the coordinator hears how it ended.
    fn persist(self: &Arc<Self>, state: &mut ShardState, write: u64, record: &TxnRecord) {
        let deadline_ms = self.partition.clock().now_ms() + self.write_timeout_ms;
        let mut acks = Vec::new();
        let appended = encode_batches([record.encode()], self.now_ms(), None, |batch, _| {
            let appended = self.partition.append_replicated(batch, deadline_ms)?;
            acks.extend(appended.replicated);
            Ok(())
        });
        if let Err(e) = appended {
            tracing::error!(partition = self.partition.index, error = %e, "could not persist transaction record");
            let now = self.now_ms();
            let actions = state
                .coordinator
                .persisted(write, Err(append_error_code(&e)), now);
            self.execute(state, actions);
            return;
        }
        let shard = self.clone();
        tokio::spawn(async move {
            let mut outcome = Ok(());
            for ack in acks {
                outcome = match ack.await {
                    Ok(None) => Ok(()),
                    Ok(Some(code)) => Err(code),
                    // The partition dropped its waiters: no longer its leader.
                    Err(_) => Err(ResponseError::NotLeaderOrFollower),
                };
                if outcome.is_err() {
                    break;
                }
            }
            shard.apply(|c, now| c.persisted(write, outcome, now));
        });
    }
}
