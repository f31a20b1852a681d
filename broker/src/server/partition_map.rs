//! The partitions this broker hosts, by topic name and index.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::partition::Partition;

/// The partitions hosted here (those this broker is a replica of), by topic name and
/// index.
#[derive(Default)]
pub struct PartitionMap {
    inner: RwLock<HashMap<String, BTreeMap<i32, Arc<Partition>>>>,
    /// Signalled when a partition is added (a log opened): the scrub has new
    /// unverified data to look at.
    added: tokio::sync::Notify,
}

impl PartitionMap {
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.inner.read().get(topic)?.get(&partition).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.inner
            .read()
            .values()
            .flat_map(|m| m.values())
            .cloned()
            .collect()
    }

    /// The hosted partitions of `topic`, in index order.
    pub fn topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.inner
            .read()
            .get(topic)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn insert(&self, partition: Arc<Partition>) {
        self.inner
            .write()
            .entry(partition.topic.clone())
            .or_default()
            .insert(partition.index, partition);
        // One stored permit is enough: the waiter then looks at every partition.
        self.added.notify_one();
    }

    /// Resolves once a partition was added since the last call returned.
    pub async fn added(&self) {
        self.added.notified().await
    }

    pub fn remove(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let mut map = self.inner.write();
        let parts = map.get_mut(topic)?;
        let p = parts.remove(&index);
        if parts.is_empty() {
            map.remove(topic);
        }
        p
    }

    pub fn remove_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.inner
            .write()
            .remove(topic)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }
}
