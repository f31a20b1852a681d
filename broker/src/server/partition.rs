//! A partition hosted by this broker: its log behind a lock, its leader epoch, and a
//! watch channel that wakes fetches waiting for data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;
use uuid::Uuid;

use crate::log::compaction::CompactionStats;
use crate::log::{AppendError, AppendInfo, Log, LogConfig, ReadError, ReadInfo};

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    leader_epoch: AtomicI32,
    log: RwLock<Log>,
    /// The high watermark, announced after every append; fetches waiting for data
    /// subscribe to it. On a single broker the high watermark is the log end offset.
    high_watermark: watch::Sender<i64>,
}

/// Kafka's `partition.metadata` file: binds a partition directory to its topic id, so
/// a directory left by a deleted topic is never served for a new topic of that name.
fn write_partition_metadata(dir: &Path, topic_id: &Uuid) -> std::io::Result<()> {
    let body = format!(
        "version: 0\ntopic_id: {}\n",
        crate::metadata::base64_uuid(topic_id)
    );
    let tmp = dir.join("partition.metadata.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, dir.join("partition.metadata"))
}

fn read_partition_topic_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: ").map(|s| s.trim().to_string()))
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

impl Partition {
    /// Open (recovering) or create the partition's log.
    pub fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        config: LogConfig,
        now_ms: i64,
    ) -> std::io::Result<Partition> {
        let dir = partition_dir(data_dir, topic, index);
        let expected = crate::metadata::base64_uuid(&topic_id);
        match read_partition_topic_id(&dir) {
            Some(found) if found != expected => {
                // Left behind by a deleted topic of the same name.
                tracing::warn!(dir = %dir.display(), found, expected, "removing partition directory of an older topic");
                std::fs::remove_dir_all(&dir)?;
            }
            _ => {}
        }
        std::fs::create_dir_all(&dir)?;
        write_partition_metadata(&dir, &topic_id)?;
        let log = Log::open(&dir, config, now_ms)?;
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(leader_epoch),
            log: RwLock::new(log),
            high_watermark,
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn append(
        &self,
        records: impl Into<Bytes>,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let info = {
            let mut log = self.log.write();
            let info = log.append_as_leader(records, self.leader_epoch(), now_ms)?;
            // Published under the log lock so announcements never go backwards.
            if !info.duplicate {
                self.high_watermark.send_replace(log.log_end_offset());
            }
            info
        };
        Ok(info)
    }

    /// Whole batches from `offset`, never past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ReadError> {
        let hw = self.high_watermark();
        self.log.read().read(offset, max_bytes, hw, min_one_batch)
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.read())
    }

    pub fn with_log_mut<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.log.write())
    }

    /// Compact the log if it is due: plan under the read lock, clean with no lock
    /// (appends and fetches go on), install under the write lock. `None` when nothing
    /// was due or the log changed meanwhile.
    pub fn compact(&self, now_ms: i64) -> std::io::Result<Option<CompactionStats>> {
        let hw = self.high_watermark();
        let Some(plan) = self.with_log(|log| log.plan_compaction(now_ms, hw)) else {
            return Ok(None);
        };
        let result = plan.run()?;
        let stats = result.stats.clone();
        let installed = self.with_log_mut(|log| log.install_compaction(result))?;
        Ok(installed.then_some(stats))
    }
}

/// The partitions hosted here, by topic name and index.
#[derive(Default)]
pub struct PartitionMap {
    inner: RwLock<HashMap<String, Vec<Arc<Partition>>>>,
}

impl PartitionMap {
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let map = self.inner.read();
        usize::try_from(partition)
            .ok()
            .and_then(|i| map.get(topic)?.get(i).cloned())
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.inner.read().values().flatten().cloned().collect()
    }

    pub fn topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.inner.read().get(topic).cloned().unwrap_or_default()
    }

    pub fn insert_topic(&self, topic: &str, partitions: Vec<Arc<Partition>>) {
        self.inner.write().insert(topic.to_string(), partitions);
    }

    pub fn remove_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.inner.write().remove(topic).unwrap_or_default()
    }
}
