//! Per-partition storage: a segmented, append-only log in Kafka's on-disk layout.
//!
//! This module does file I/O but makes no network or scheduling decisions; the
//! server layer owns locking, timers and sockets. Reads return file ranges
//! ([`FileSlice`]), not copied buffers, so the server can send them with sendfile.
//!
//! # Layout
//!
//! - [`Log`] itself (this file): its settings, the results of its calls, its fields.
//! - `append`: the write path (leader and follower appends) and segment rolls.
//! - `read`: the read path: fetch ranges, offsets by timestamp, leader epoch lookups.
//! - `retention`: retention from the start and truncation from the end.
//! - `start_offset`: the log start moved on request (DeleteRecords, followers).
//! - `durability`: flushes, clean shutdown, checkpoints, producer snapshots, replay.
//! - `batch`: RecordBatch v2 header parsing, validation, CRC-32C, in-place rewrites.
//! - `segment`: one `.log` file with its indexes; append, header scans, recovery.
//! - `index`: the sparse `.index` and `.timeindex` files (Kafka's formats).
//! - `handles`: the broker-wide bound on open segment files (opened on demand).
//! - `recovery`: [`Log::open`] and its variants; torn tails, damage, [`OpenError`].
//! - `scrub`: background checksums of data not read since the log was opened.
//! - `epoch_cache`: leader epoch → start offset, OffsetForLeaderEpoch answers.
//! - `producer_state`: idempotent producer sequence checks and open transactions
//!   (pure state machine); the last stable offset.
//! - `txn`: transaction markers (control batches) and the transactions they end.
//! - `txn_index`: a segment's aborted-transaction index (Kafka's `.txnindex`).
//! - `records`: the records inside a batch: the one record parser (in memory or
//!   streamed), rewriting for the cleaner.
//! - `codec`: the compression codecs: bounded streaming readers, compression.
//! - `validate`: every check a produced batch passes before it is stored.
//! - `compaction`: the log cleaner for `cleanup.policy=compact` (plan, run, install).
//!
//! # Files in a partition directory
//!
//! - `<base offset, 20 digits>.log|.index|.timeindex`: the segments; `.txnindex` beside
//!   a segment whose markers aborted transactions.
//! - `<offset, 20 digits>.snapshot`: producer state as of that offset, written on roll
//!   and close; the newest two are kept.
//! - `leader-epoch-checkpoint`: Kafka's text format (`0`, count, `epoch offset` lines).
//! - `recovery-point-offset-checkpoint`: `0` then the offset below which all segments
//!   are fsynced; recovery starts at the segment holding it.
//! - `log-start-offset-checkpoint`: `0` then the log start offset last moved on
//!   request (it may fall inside a segment); the log never starts before it.
//! - `.clean-shutdown`: written by [`Log::close`], removed before the next change;
//!   while present nothing needs recovery.
//! - `cleaner-offset-checkpoint`: where the dirty (not yet compacted) part of the log
//!   starts; `cleaner-swap-manifest` and `*.cleaned` / `*.swap` files exist only while
//!   a compaction is being installed (see `compaction`).
//!
//! Small files are replaced atomically (write `*.tmp`, fsync, rename, fsync the dir).
//! Every file operation goes through the storage seam (`crate::storage`), so tests
//! can make any of them fail.

mod append;
pub mod batch;
pub mod codec;
pub mod compaction;
pub mod durability;
pub mod epoch_cache;
pub mod handles;
mod index;
pub mod producer_state;
mod read;
pub mod recompress;
pub mod records;
mod recovery;
mod retention;
pub mod scrub;
mod segment;
mod start_offset;
pub mod txn;
pub mod txn_index;
pub mod validate;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;

use self::epoch_cache::LeaderEpochCache;
pub use self::handles::{FileHandles, LogStorage};
use self::producer_state::ProducerStateManager;
pub use self::recovery::{Damage, DroppedData, OpenError};
pub use self::scrub::{ScrubJob, ScrubReport};
use self::segment::Segment;
pub use self::start_offset::StartOffsetError;
use crate::storage::{Disk, FileKind};

/// Per-topic storage settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll a new segment when the active one reaches this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a new segment when the active one is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: the largest offset/time index file.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes between two sparse index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many messages (i64::MAX: leave it to the OS).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when unflushed data is this old (i64::MAX: leave it to the OS).
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: keep the producer's time or stamp the append time.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy`: delete by retention, compact by key, or both.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaning that
    /// first saw it, so consumers that lag less than this see the delete.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records newer than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this force a cleaning whatever
    /// the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when dirty bytes exceed this share of the
    /// cleanable log.
    pub min_cleanable_dirty_ratio: f64,
    /// `producer.id.expiration.ms` (a broker setting in Kafka): forget an idempotent
    /// producer whose last batch is older than this.
    pub producer_id_expiration_ms: i64,
    /// `message.timestamp.before.max.ms` / `after.max.ms`: how far a CreateTime record
    /// timestamp may be behind / ahead of the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `compression.type`: the codec batches are stored in, `None` for `producer`.
    pub compression: Option<recompress::TopicCodec>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: None,
        }
    }
}

/// `cleanup.policy`: a list of `delete` and `compact` (Kafka allows both, in any order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Segments past retention.ms / retention.bytes are deleted.
    pub delete: bool,
    /// The cleaner keeps the last record per key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parse Kafka's comma-separated list, e.g. `compact,delete`.
    pub fn parse(value: &str) -> Result<CleanupPolicy, String> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in value.split(',').map(str::trim) {
            match item {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                other => {
                    return Err(format!(
                        "{other:?} is not a cleanup policy (a list of delete, compact)"
                    ))
                }
            }
        }
        Ok(policy)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A byte range of one segment file. Holding it keeps the file open even if the
/// segment is deleted meanwhile.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    /// Copy the range into memory (the fallback where sendfile cannot be used).
    pub fn read_to_bytes(&self) -> std::io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Set when the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; nothing was written and the
    /// offsets are those of the original.
    pub duplicate: bool,
}

/// Records of one batch refused by a per-record rule (KIP-467): the produce answer
/// names each by its index in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRefusals {
    /// A timestamp outside message.timestamp.before/after.max.ms was among them
    /// (INVALID_TIMESTAMP; otherwise INVALID_RECORD), as Kafka decides the code.
    pub timestamp: bool,
    /// (index in the batch, why); messages only for the first
    /// [`RecordRefusals::MAX_MESSAGES`], so the answer stays small.
    pub records: Vec<(i32, Option<String>)>,
}

impl RecordRefusals {
    pub const MAX_MESSAGES: usize = 100;

    pub(crate) fn push(&mut self, index: usize, why: impl FnOnce() -> String) {
        let message = (self.records.len() < Self::MAX_MESSAGES).then(why);
        self.records.push((index as i32, message));
    }

    /// The first refusal's reason, for the partition's error message.
    pub fn first(&self) -> &str {
        self.records
            .first()
            .and_then(|(_, m)| m.as_deref())
            .unwrap_or("")
    }
}

/// Why an append was refused. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Records refused one by one; the rest of the batch was valid.
    #[error("{} of the batch's records refused, the first: {}", .0.records.len(), .0.first())]
    RecordsRefused(RecordRefusals),
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        got: i16,
        current: i16,
    },
    #[error("unsupported record batch: {0}")]
    Unsupported(String),
    /// A transaction marker fenced by the producer or coordinator epoch.
    #[error("transaction marker refused: {0}")]
    MarkerRefused(producer_state::MarkerRefusal),
    /// Well-formed but refused by a topic rule, e.g. a record without a key on a
    /// compacted topic (Kafka's InvalidRecordException, INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("log I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Raised by the server layer: this broker does not lead the partition.
    #[error("this broker is not the partition's leader")]
    NotLeader,
    /// Raised by the server layer: acks=all with fewer in-sync replicas than
    /// min.insync.replicas.
    #[error("{isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: usize, min: usize },
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// Whole batches, starting with the one that holds the requested offset; `None`
    /// when there is nothing to return below `max_offset`.
    pub slice: Option<FileSlice>,
    /// The offset after the last batch in `slice` (the requested offset when empty).
    pub next_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("log I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Kafka's text checkpoint of leader epochs.
const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// The offset below which every segment is known to be on disk (fsynced).
const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// The log start offset set by DeleteRecords or taken from the leader (see
/// `start_offset`).
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Written by [`Log::close`] after everything is fsynced; removed before the next
/// change to the log, so its presence means no recovery is needed.
const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Producer snapshots kept on disk (the newest ones).
const SNAPSHOTS_RETAINED: usize = 2;
/// A producer snapshot larger than this is not read (bounds memory on open).
const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;
/// The largest checkpoint text file read.
const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// How often a flush rewrites the recovery-point checkpoint at most (Kafka's
/// log.flush.offset.checkpoint.interval.ms is a minute). Rolls, truncations and
/// clean shutdown always write it.
const RECOVERY_POINT_CHECKPOINT_MS: i64 = 5_000;

/// One partition's log: segments under `<data-dir>/<topic>-<partition>/`.
pub struct Log {
    dir: PathBuf,
    storage: LogStorage,
    config: LogConfig,
    /// By base offset; the last one is the active segment. Never empty.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    epoch_cache: LeaderEpochCache,
    producers: ProducerStateManager,
    /// Every byte below this offset has been fsynced.
    recovery_point: i64,
    clean_marker_present: bool,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// When the recovery-point checkpoint was last written by a flush (see
    /// [`RECOVERY_POINT_CHECKPOINT_MS`]).
    recovery_point_written_ms: i64,
    /// The latest `now_ms` the server passed in; the clock for calls that take none
    /// (follower appends, truncation), so time stays injected and tests deterministic.
    clock_ms: i64,
    /// The cleaner checkpoint: offsets below it have been compacted.
    first_dirty_offset: i64,
    /// The earliest delete horizon of a tombstone the cleaner retained; a cleaning is
    /// due when it passes (i64::MAX: none).
    tombstone_horizon_ms: i64,
    /// Bumped whenever offsets are rewritten (truncation), so a compaction planned
    /// before is discarded instead of installed.
    generation: u64,
    /// Set when installing a compaction failed half way: the files are left for the
    /// next open to complete, and nothing more is compacted until then.
    compaction_disabled: bool,
    /// An fsync of this log failed. The kernel may have dropped the pages it could not
    /// write and report the next fsync as a success, so nothing written before is
    /// known durable: the recovery point stays where it was and no clean shutdown is
    /// recorded, so the next open recovers from there.
    sync_failed: Arc<AtomicBool>,
    /// The leader epoch checkpoint could not be written after an append; it is
    /// written again before the recovery point moves past the batch.
    epoch_checkpoint_stale: bool,
    /// Damage the scrub found (see `scrub`).
    damage: Option<Damage>,
    /// The first offset whose batch the scrub found damaged (with `damage`).
    damage_offset: Option<i64>,
    /// The scrub's first segment to look at: every earlier one is verified.
    scrub_from: i64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset())
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Read a small file whole; `None` when missing or larger than `max_bytes` (a damaged
/// checkpoint is ignored, not trusted).
/// A one-offset checkpoint in Kafka's form (`0`, then the offset) in `dir`: `None` when
/// the file is missing, and when it does not read as one (with a warning naming `what`
/// and what the caller does instead, `fallback`).
fn read_offset_checkpoint(
    disk: &Disk,
    dir: &Path,
    name: &str,
    (what, fallback): (&str, &str),
) -> io::Result<Option<i64>> {
    let Some(bytes) = read_small_file(disk, &dir.join(name), 4096)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    match (
        lines.next(),
        lines.next().and_then(|l| l.trim().parse::<i64>().ok()),
    ) {
        (Some("0"), Some(offset)) if offset >= 0 => Ok(Some(offset)),
        _ => {
            tracing::warn!(dir = %dir.display(), "unreadable {what}; {fallback}");
            Ok(None)
        }
    }
}

fn read_small_file(disk: &Disk, path: &Path, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    match disk.read_if_exists(path, FileKind::Checkpoint, max_bytes) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring the file");
            Ok(None)
        }
        other => other,
    }
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The offset below which everything is known to be on disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The idempotent producer state (for diagnostics and the server's describe calls).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Remove the log and its directory (topic deletion).
    pub fn delete(self) -> std::io::Result<()> {
        self.storage.disk.remove_dir_all(&self.dir)
    }
}

#[cfg(test)]
mod housekeeping_tests;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
