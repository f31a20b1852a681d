//! Which partitions of an internal topic this broker coordinates. A coordinator (of
//! groups over `__consumer_offsets`, of transactions over `__transaction_state`) is the
//! leader of its partition, so it keeps one shard per partition it leads: loading
//! while it reads the partition back, then loaded. A shard is tied to the leader epoch
//! it was loaded at; a newer epoch's load replaces it, and a load overtaken by a
//! resignation or a newer load is dropped when it finishes. A loading slot may collect
//! what happens meanwhile (`L`, e.g. transaction markers) for the shard to apply once
//! it is built.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

use super::partition::Partition;

/// What a shard tells the table about itself.
pub trait Shard {
    fn topic_id(&self) -> Uuid;
    fn leader_epoch(&self) -> i32;
}

enum Slot<S, L> {
    Loading {
        topic_id: Uuid,
        leader_epoch: i32,
        /// Tells this load from a later one for the same partition.
        load: u64,
        /// What arrived while the load read the partition.
        meanwhile: L,
    },
    Loaded(Arc<S>),
}

impl<S: Shard, L> Slot<S, L> {
    fn leads(&self, topic_id: Uuid, epoch: i32) -> bool {
        match self {
            Slot::Loading {
                topic_id: t,
                leader_epoch,
                ..
            } => *t == topic_id && *leader_epoch >= epoch,
            Slot::Loaded(s) => s.topic_id() == topic_id && s.leader_epoch() >= epoch,
        }
    }
}

/// A load in progress, from [`Shards::begin_load`].
#[derive(Debug, PartialEq, Eq)]
pub struct Load {
    pub token: u64,
    pub leader_epoch: i32,
}

/// The shards of one internal topic, by partition index.
pub struct Shards<S, L = ()> {
    slots: Mutex<HashMap<i32, Slot<S, L>>>,
    next_load: AtomicU64,
}

impl<S: Shard, L: Default> Default for Shards<S, L> {
    fn default() -> Self {
        Shards {
            slots: Mutex::new(HashMap::new()),
            next_load: AtomicU64::new(1),
        }
    }
}

impl<S: Shard, L: Default> Shards<S, L> {
    /// Mark `partition` as loading at `epoch`, unless it is already loaded or loading
    /// at that leader epoch (or a newer one). Returns the load and the shard it
    /// replaces, which the caller retires.
    pub fn begin_load(&self, partition: &Partition, epoch: i32) -> Option<(Load, Option<Arc<S>>)> {
        let token = self.next_load.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock();
        if slots
            .get(&partition.index)
            .is_some_and(|s| s.leads(partition.topic_id, epoch))
        {
            return None;
        }
        let replaced = slots.insert(
            partition.index,
            Slot::Loading {
                topic_id: partition.topic_id,
                leader_epoch: epoch,
                load: token,
                meanwhile: L::default(),
            },
        );
        let replaced = match replaced {
            Some(Slot::Loaded(old)) => Some(old),
            _ => None,
        };
        Some((
            Load {
                token,
                leader_epoch: epoch,
            },
            replaced,
        ))
    }

    /// Install the shard `make` builds from what arrived during the load, unless the
    /// load was superseded meanwhile (by a resignation or a newer epoch's load).
    /// `make` runs under the table's lock, so nothing arrives between the two.
    pub fn finish_load(
        &self,
        index: i32,
        load: &Load,
        make: impl FnOnce(L) -> S,
    ) -> Option<Arc<S>> {
        let mut slots = self.slots.lock();
        let meanwhile = match slots.get_mut(&index) {
            Some(Slot::Loading {
                load: l, meanwhile, ..
            }) if *l == load.token => std::mem::take(meanwhile),
            _ => return None,
        };
        let shard = Arc::new(make(meanwhile));
        slots.insert(index, Slot::Loaded(shard.clone()));
        Some(shard)
    }

    /// The loaded shard of partition `index`; while it loads, `meanwhile` records
    /// what arrived for it (and None is returned), and without a slot, None.
    pub fn loaded_or_note(&self, index: i32, meanwhile: impl FnOnce(&mut L)) -> Option<Arc<S>> {
        match self.slots.lock().get_mut(&index) {
            None => None,
            Some(Slot::Loading { meanwhile: m, .. }) => {
                meanwhile(m);
                None
            }
            Some(Slot::Loaded(s)) => Some(s.clone()),
        }
    }

    /// The load failed: forget it, unless a newer one took its place.
    pub fn abandon_load(&self, index: i32, load: &Load) {
        let mut slots = self.slots.lock();
        if matches!(slots.get(&index), Some(Slot::Loading { load: l, .. }) if *l == load.token) {
            slots.remove(&index);
        }
    }

    /// Stop coordinating partition `index`; returns the shard to retire.
    pub fn remove(&self, index: i32) -> Option<Arc<S>> {
        match self.slots.lock().remove(&index) {
            Some(Slot::Loaded(s)) => Some(s),
            _ => None,
        }
    }

    /// The shard of partition `index`: NOT_COORDINATOR when it is not led here,
    /// COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub fn get(&self, index: i32) -> Result<Arc<S>, ResponseError> {
        match self.slots.lock().get(&index) {
            None => Err(ResponseError::NotCoordinator),
            Some(Slot::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress),
            Some(Slot::Loaded(s)) => Ok(s.clone()),
        }
    }

    pub fn loaded(&self) -> Vec<Arc<S>> {
        self.slots
            .lock()
            .values()
            .filter_map(|s| match s {
                Slot::Loaded(s) => Some(s.clone()),
                Slot::Loading { .. } => None,
            })
            .collect()
    }
}
