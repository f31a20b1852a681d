//! Per-partition storage: a segmented, append-only log in Kafka's on-disk layout.
//!
//! This module does file I/O but makes no network or scheduling decisions; the
//! server layer owns locking, timers and sockets. Reads return file ranges
//! ([`FileSlice`]), not copied buffers, so the server can send them with sendfile.
//!
//! # Layout
//!
//! - `batch`: RecordBatch v2 header parsing, validation, CRC-32C, in-place rewrites.
//! - `segment`: one `.log` file with its indexes; append, header scans, recovery.
//! - `index`: the sparse `.index` and `.timeindex` files (Kafka's formats).
//! - `handles`: the broker-wide bound on open segment files (opened on demand).
//! - `recovery`: [`Log::open`] and its variants; torn tails, damage, [`OpenError`].
//! - `scrub`: background checksums of data not read since the log was opened.
//! - `epoch_cache`: leader epoch → start offset, OffsetForLeaderEpoch answers.
//! - `producer_state`: idempotent producer sequence checks (pure state machine).
//! - `records`: the records inside a batch: the one record parser (in memory or
//!   streamed), rewriting for the cleaner.
//! - `codec`: the compression codecs: bounded streaming readers, compression.
//! - `validate`: every check a produced batch passes before it is stored.
//! - `compaction`: the log cleaner for `cleanup.policy=compact` (plan, run, install).
//!
//! # Files in a partition directory
//!
//! - `<base offset, 20 digits>.log|.index|.timeindex`: the segments.
//! - `<offset, 20 digits>.snapshot`: producer state as of that offset, written on roll
//!   and close; the newest two are kept.
//! - `leader-epoch-checkpoint`: Kafka's text format (`0`, count, `epoch offset` lines).
//! - `recovery-point-offset-checkpoint`: `0` then the offset below which all segments
//!   are fsynced; recovery starts at the segment holding it.
//! - `.clean-shutdown`: written by [`Log::close`], removed before the next change;
//!   while present nothing needs recovery.
//! - `cleaner-offset-checkpoint`: where the dirty (not yet compacted) part of the log
//!   starts; `cleaner-swap-manifest` and `*.cleaned` / `*.swap` files exist only while
//!   a compaction is being installed (see `compaction`).
//!
//! Small files are replaced atomically (write `*.tmp`, fsync, rename, fsync the dir).
//! Every file operation goes through the storage seam (`crate::storage`), so tests
//! can make any of them fail.

pub mod batch;
pub mod codec;
pub mod compaction;
pub mod epoch_cache;
pub mod handles;
mod index;
pub mod producer_state;
pub mod records;
mod recovery;
pub mod scrub;
mod segment;
pub mod validate;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use self::batch::BatchHeader;
use self::epoch_cache::LeaderEpochCache;
pub use self::handles::{FileHandles, LogStorage};
use self::producer_state::{BatchMetadata, LeaderCheck, ProducerStateManager};
pub use self::recovery::{Damage, DroppedData, OpenError};
pub use self::scrub::{ScrubJob, ScrubReport};
use self::segment::{parse_segment_name, Segment};
use crate::storage::{Disk, DiskFile, FileKind};

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

/// Why an append was refused. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
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

/// An fsync of a log's unsynced files, taken by [`Log::prepare_flush`] and run
/// without the log's lock.
#[derive(Debug)]
pub struct FlushJob {
    files: Vec<DiskFile>,
    end_offset: i64,
    generation: u64,
    sync_failed: Arc<AtomicBool>,
}

impl FlushJob {
    /// fdatasync every file (blocking). A failure is remembered by the log (see
    /// [`Log::complete_flush`]).
    pub fn run(&self) -> io::Result<()> {
        for file in &self.files {
            if let Err(e) = file.sync_data() {
                self.sync_failed.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Everything below this offset is durable once the job ran.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }
}

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

    /// Append the record batches of one produce request as leader, with one write.
    /// Offsets and `partitionLeaderEpoch` are assigned here; a retried idempotent batch
    /// returns its original offsets without writing. Every record is checked first
    /// (`validate`). The batch bytes are not copied unless maxTimestamp is restamped
    /// (LogAppendTime, or a CreateTime maxTimestamp other than the largest record
    /// timestamp): `records` may be a slice of the request.
    pub fn append_as_leader(
        &mut self,
        records: impl Into<Bytes>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let records: Bytes = records.into();
        let valid = validate::validate_produce(&records, &self.config)?;
        let header = valid.header;
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        if header.is_idempotent() {
            let check = self.producers.check_leader_append(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence(),
            )?;
            if let LeaderCheck::Duplicate(original) = check {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if log_append_time {
                        original.timestamp_ms
                    } else {
                        -1
                    },
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
        }

        let base_offset = self.log_end_offset();
        let mut header = BatchHeader {
            base_offset,
            partition_leader_epoch: leader_epoch,
            ..header
        };
        // The two broker-assigned fields (baseOffset, partitionLeaderEpoch) sit in the
        // first bytes and outside the CRC: they are written from a patched copy of that
        // prefix, the rest straight from the request buffer.
        let mut prefix = [0u8; batch::BROKER_ASSIGNED_PREFIX_BYTES];
        let stamped;
        // LogAppendTime, or (as Kafka does) a CreateTime maxTimestamp that is not the
        // largest record timestamp, changes fields inside the CRC: restamp a copy.
        let restamp = if log_append_time {
            Some((true, now_ms))
        } else {
            valid
                .needs_restamp(self.config.timestamp_type)
                .then_some((false, valid.max_timestamp_ms))
        };
        let parts: [&[u8]; 2] = if let Some((append_time, max_timestamp_ms)) = restamp {
            let mut copy = BytesMut::from(&records[..]);
            batch::set_base_offset(&mut copy, base_offset);
            batch::set_partition_leader_epoch(&mut copy, leader_epoch);
            batch::set_max_timestamp(&mut copy, append_time, max_timestamp_ms);
            header.max_timestamp_ms = max_timestamp_ms;
            header.attributes &= !batch::TIMESTAMP_TYPE_BIT;
            if append_time {
                header.attributes |= batch::TIMESTAMP_TYPE_BIT;
            }
            stamped = copy;
            [&stamped[..], &[]]
        } else {
            prefix.copy_from_slice(&records[..batch::BROKER_ASSIGNED_PREFIX_BYTES]);
            batch::set_base_offset(&mut prefix, base_offset);
            batch::set_partition_leader_epoch(&mut prefix, leader_epoch);
            [&prefix, &records[batch::BROKER_ASSIGNED_PREFIX_BYTES..]]
        };
        self.write_batches(&parts, &[(0, header)], now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Append batches replicated from the leader: offsets and epochs are kept as they
    /// are; CRCs are checked and the offsets must continue the log.
    pub fn append_as_follower(&mut self, records: Bytes) -> Result<AppendInfo, AppendError> {
        let now_ms = self.clock_ms;
        let log_end_offset = self.log_end_offset();
        let headers = batch::split_batches(&records)?;
        let (Some((_, first)), Some((_, last))) = (headers.first(), headers.last()) else {
            return Ok(AppendInfo {
                base_offset: log_end_offset,
                last_offset: log_end_offset - 1,
                log_append_time_ms: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
            });
        };
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        segment::check_follower_batches(&headers, log_end_offset).map_err(|e| {
            AppendError::Corrupt(format!(
                "follower append at log end offset {log_end_offset}: {e}"
            ))
        })?;
        self.write_batches(&[&records], &headers, now_ms)?;
        // A follower syncs in line: one fetch response brings many batches.
        if self.flush_due() {
            self.flush(now_ms)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// The one write path: roll if needed, write `data` once, then update the epoch
    /// cache, producer state and flush accounting.
    fn write_batches(
        &mut self,
        data: &[&[u8]],
        headers: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> io::Result<()> {
        let Some((_, first)) = headers.first() else {
            return Ok(());
        };
        self.clock_ms = self.clock_ms.max(now_ms);
        let last_offset = headers
            .last()
            .map_or(first.last_offset(), |(_, h)| h.last_offset());
        self.mark_dirty()?;
        let data_bytes: usize = data.iter().map(|d| d.len()).sum();
        if self.active().should_roll(
            data_bytes as u64,
            first.max_timestamp_ms,
            last_offset,
            &self.config,
            now_ms,
        ) {
            self.roll(first.base_offset, now_ms)?;
        }
        let config = self.config.clone();
        self.active_mut().append(data, headers, &config)?;
        let mut epochs_changed = false;
        let mut messages = 0i64;
        for (_, h) in headers {
            epochs_changed |= self
                .epoch_cache
                .assign(h.partition_leader_epoch, h.base_offset);
            self.record_producer_batch(h);
            messages += i64::from(h.records_count);
        }
        if epochs_changed || self.epoch_checkpoint_stale {
            // The batches are in the log: failing the append now would tell the client
            // they are not. The checkpoint is written before the recovery point moves
            // past them (a flush, a roll, close).
            match self.write_epoch_checkpoint() {
                Ok(()) => self.epoch_checkpoint_stale = false,
                Err(e) => {
                    self.epoch_checkpoint_stale = true;
                    tracing::warn!(dir = %self.dir.display(), error = %e, "writing the leader epoch checkpoint failed; retried before the next flush");
                }
            }
        }
        self.unflushed_messages += messages;
        debug_assert_eq!(self.log_end_offset(), last_offset + 1);
        Ok(())
    }

    fn record_producer_batch(&mut self, h: &BatchHeader) {
        if h.is_idempotent() {
            self.producers.record_batch(
                h.producer_id,
                h.producer_epoch,
                BatchMetadata {
                    first_seq: h.base_sequence,
                    last_seq: h.last_sequence(),
                    first_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    timestamp_ms: h.max_timestamp_ms,
                },
            );
        }
    }

    /// Seal the active segment (final time index entry, fsync) and start a new one at
    /// `base_offset` (the log end offset, or past it for a follower's offset gap).
    fn roll(&mut self, base_offset: i64, now_ms: i64) -> io::Result<()> {
        let log_end_offset = self.log_end_offset();
        debug_assert!(base_offset >= log_end_offset);
        if self.active().size_bytes == 0 && self.active().base_offset == base_offset {
            return Ok(());
        }
        self.mark_dirty()?;
        self.ensure_epoch_checkpoint()?;
        self.active_mut().seal()?;
        let segment = Segment::create(&self.storage, &self.dir, base_offset, &self.config, now_ms)?;
        self.active().set_active(false);
        self.segments.insert(base_offset, segment);
        // Every older segment was sealed (fsynced) when it was rolled.
        if !self.sync_failed.load(Ordering::Acquire) {
            self.recovery_point = log_end_offset;
        }
        self.write_recovery_point()?;
        self.write_producer_snapshot(log_end_offset)?;
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled a new segment");
        Ok(())
    }

    /// Whether `flush.messages` calls for a sync now. A leader's append does not sync
    /// by itself: its caller syncs ([`Log::flush`], or the split
    /// [`Log::prepare_flush`] / [`FlushJob::run`] / [`Log::complete_flush`] that lets
    /// appends go on during the sync and one sync cover several requests).
    pub fn flush_due(&self) -> bool {
        self.unflushed_messages >= self.config.flush_messages
    }

    /// fsync the unflushed segments and move the recovery point to the log end.
    pub fn flush(&mut self, now_ms: i64) -> io::Result<()> {
        let job = self.prepare_flush(now_ms)?;
        job.run()?;
        self.complete_flush(&job, now_ms)?;
        Ok(())
    }

    /// The first half of a flush, under the log's lock: write the pending index
    /// entries and take handles on the files holding unsynced data, up to the current
    /// log end.
    pub fn prepare_flush(&mut self, now_ms: i64) -> io::Result<FlushJob> {
        let recovery_point = self.recovery_point;
        let mut files = Vec::new();
        for segment in self.segments.values_mut().rev() {
            segment.flush_files(&mut files)?;
            if segment.base_offset <= recovery_point {
                break;
            }
        }
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(FlushJob {
            files,
            end_offset: self.log_end_offset(),
            generation: self.generation,
            sync_failed: Arc::clone(&self.sync_failed),
        })
    }

    /// The last half of a flush, under the log's lock again once `job` ran: the
    /// recovery point moves to what the job covered, unless the log was truncated
    /// meanwhile (offsets past the truncation point are new, unsynced data). Returns
    /// whether it moved. The checkpoint file is rewritten at most every
    /// [`RECOVERY_POINT_CHECKPOINT_MS`]: a stale one only makes recovery after a
    /// crash scan more.
    ///
    /// After any failed sync of this log (see [`FlushJob::run`]) it is an error: the
    /// data may not be on disk whatever later syncs say, until the log is reopened
    /// and recovered.
    pub fn complete_flush(&mut self, job: &FlushJob, now_ms: i64) -> io::Result<bool> {
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(self.sync_failed_error());
        }
        if job.generation != self.generation {
            return Ok(false);
        }
        self.ensure_epoch_checkpoint()?;
        if job.end_offset > self.recovery_point {
            self.recovery_point = job.end_offset;
            if now_ms.saturating_sub(self.recovery_point_written_ms) >= RECOVERY_POINT_CHECKPOINT_MS
            {
                self.write_recovery_point()?;
                self.recovery_point_written_ms = now_ms;
            }
        }
        Ok(true)
    }

    /// Whole batches from `offset` on, at most `max_bytes` (but at least one batch when
    /// `min_one_batch`), never including a batch at or past `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ReadError> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset;
        if offset < log_start_offset || offset > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let nothing = ReadInfo {
            slice: None,
            next_offset: offset,
            log_start_offset,
            log_end_offset,
        };
        // Reads come from one segment: the first, from the one holding `offset`, that
        // has a batch ending at or after it.
        for segment in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..))
        {
            let segment = segment.1;
            let Some((start, first)) = segment.find_batch(offset)? else {
                continue;
            };
            if first.last_offset() >= max_offset {
                return Ok(nothing);
            }
            let first_end = start + first.size_bytes();
            // The batch holding max_offset starts where readable data ends.
            let below_max_offset = if segment.next_offset <= max_offset {
                segment.size_bytes
            } else {
                segment
                    .find_batch(max_offset)?
                    .map_or(segment.size_bytes, |(p, _)| p)
            };
            let limit = below_max_offset.min(start.saturating_add(max_bytes as u64));
            let end = if limit < first_end {
                if !min_one_batch {
                    return Ok(nothing);
                }
                first_end
            } else {
                segment.boundary_at_or_below(limit)?
            };
            debug_assert!(end >= first_end && end <= segment.size_bytes);
            let next_offset = if end == segment.size_bytes {
                segment.next_offset
            } else {
                segment
                    .read_header(end)?
                    .map_or(segment.next_offset, |h| h.base_offset)
            };
            let len = usize::try_from(end - start).map_err(|_| {
                ReadError::Io(io::Error::other("read range exceeds the address space"))
            })?;
            return Ok(ReadInfo {
                slice: Some(FileSlice {
                    file: Arc::clone(segment.log.get()?.file()),
                    position: start,
                    len,
                }),
                next_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        Ok(nothing)
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

    /// The first offset whose batch max timestamp is at least `timestamp_ms`, with
    /// that timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> std::io::Result<Option<(i64, i64)>> {
        for segment in self.segments.values() {
            if segment.max_timestamp_ms < timestamp_ms {
                continue;
            }
            if let Some((offset, ts)) = segment.find_by_timestamp(timestamp_ms)? {
                return Ok(Some((offset.max(self.log_start_offset), ts)));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    ///
    /// Batch granularity: the offset is the last offset of the batch holding the
    /// largest timestamp (finding the exact record would need per-record work).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp_ms >= 0
                && best.is_none_or(|(_, ts)| segment.max_timestamp_ms > ts)
            {
                best = Some((segment.offset_of_max_timestamp, segment.max_timestamp_ms));
            }
        }
        best
    }

    /// The leader epoch of the last batch in the log (-1 when empty).
    pub fn latest_epoch(&self) -> i32 {
        self.epoch_cache.latest_epoch().unwrap_or(-1)
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` this log knows and the offset
    /// where it ends (log end offset for the latest epoch). `None` is Kafka's
    /// UNDEFINED_EPOCH/UNDEFINED_EPOCH_OFFSET answer.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epoch_cache
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader epoch that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epoch_cache.epoch_for_offset(offset)
    }

    /// The idempotent producer state (for diagnostics and the server's describe calls).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Roll, delete segments past retention (never at or above `high_watermark`),
    /// expire idle producers, and fsync per flush.ms; called periodically by the
    /// server. Returns the number of segments deleted. Compaction is separate
    /// ([`Log::plan_compaction`]) so it can run without the write lock.
    pub fn housekeeping(&mut self, now_ms: i64, high_watermark: i64) -> std::io::Result<usize> {
        self.clock_ms = self.clock_ms.max(now_ms);
        // segment.ms for an idle partition: measured on the wall clock from when this
        // process created or opened the segment (producer timestamps are only compared
        // with each other at append time).
        let active = self.active();
        // KIP-354: on a compacted topic, the active segment is rolled once its first
        // batch is older than max.compaction.lag.ms, or it could never be cleaned.
        let compaction_overdue = self.config.cleanup_policy.compact
            && active.first_batch_timestamp_ms.is_some_and(|ts| {
                ts >= 0 && now_ms.saturating_sub(ts) > self.config.max_compaction_lag_ms
            });
        if active.size_bytes > 0
            && (now_ms.saturating_sub(active.created_ms) > self.config.segment_ms
                || compaction_overdue)
        {
            let base = self.log_end_offset();
            self.roll(base, now_ms)?;
        }
        let expired = self
            .producers
            .expire(now_ms, self.config.producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "expired idle producers");
        }
        let mut deleted = 0;
        // With `compact` alone, retention never deletes: the cleaner owns the log.
        if self.config.cleanup_policy.delete && self.config.retention_ms >= 0 {
            let retention_ms = self.config.retention_ms;
            deleted += self.delete_segments(now_ms, high_watermark, |segment| {
                now_ms.saturating_sub(segment.largest_timestamp_ms()) > retention_ms
            })?;
        }
        if self.config.cleanup_policy.delete && self.config.retention_bytes >= 0 {
            let mut excess_bytes = self.size_bytes() as i64 - self.config.retention_bytes;
            deleted += self.delete_segments(now_ms, high_watermark, |segment| {
                if excess_bytes >= segment.size_bytes as i64 {
                    excess_bytes -= segment.size_bytes as i64;
                    true
                } else {
                    false
                }
            })?;
        }
        if self.recovery_point < self.log_end_offset()
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush(now_ms)?;
        }
        Ok(deleted)
    }

    /// Delete the oldest segments while `deletable` says so, as Kafka: stop at the
    /// first one kept; the active segment goes too (after a roll) unless it is empty.
    /// A segment holding offsets at or above the high watermark is never deleted
    /// (Kafka's rule: consumers and followers may not have it yet).
    fn delete_segments(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
        mut deletable: impl FnMut(&Segment) -> bool,
    ) -> io::Result<usize> {
        let mut doomed = Vec::new();
        let count = self.segments.len();
        for (i, segment) in self.segments.values().enumerate() {
            let is_last = i + 1 == count;
            if (is_last && segment.size_bytes == 0)
                || segment.next_offset > high_watermark
                || !deletable(segment)
            {
                break;
            }
            doomed.push(segment.base_offset);
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        self.mark_dirty()?;
        if doomed.len() == count {
            let base = self.log_end_offset();
            self.roll(base, now_ms)?;
        }
        for base in &doomed {
            if let Some(segment) = self.segments.remove(base) {
                segment.delete_files()?;
                tracing::info!(dir = %self.dir.display(), segment = base, "deleted segment past retention");
            }
        }
        self.log_start_offset = self.log_start_offset.max(self.active_base_or_first());
        if self.epoch_cache.truncate_from_start(self.log_start_offset) {
            self.write_epoch_checkpoint()?;
        }
        Ok(doomed.len())
    }

    fn active_base_or_first(&self) -> i64 {
        *self
            .segments
            .keys()
            .next()
            .expect("a log always has an active segment")
    }

    /// Drop everything at and after `offset` (a follower whose log diverged). A batch
    /// holding `offset` goes whole. Index entries, leader epochs and producer state
    /// follow the log.
    pub fn truncate_to(&mut self, offset: i64) -> std::io::Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.truncate(offset, offset <= self.log_start_offset)
    }

    /// Drop the whole log and start empty at `offset`: a follower whose log ends
    /// before its leader's log start (retention moved it) starts over there.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> std::io::Result<()> {
        self.truncate(offset, true)
    }

    fn truncate(&mut self, offset: i64, fully: bool) -> std::io::Result<()> {
        let now_ms = self.clock_ms;
        self.mark_dirty()?;
        if fully {
            // Nothing survives: start over at `offset` (Kafka's truncateFullyAndStartAt).
            let start = offset.max(0);
            let old = std::mem::take(&mut self.segments);
            let deleted = old.values().try_for_each(Segment::delete_files);
            drop(old);
            // The log keeps an active segment even when a deletion failed.
            self.segments.insert(
                start,
                Segment::create(&self.storage, &self.dir, start, &self.config, now_ms)?,
            );
            deleted?;
            // No batch of any producer is left (Kafka's truncateFullyAndStartAt).
            for (_, path) in self.list_snapshots()? {
                self.storage.disk.remove_file(&path, FileKind::Checkpoint)?;
            }
            self.log_start_offset = start;
        } else {
            let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
            for base in doomed {
                if let Some(segment) = self.segments.remove(&base) {
                    segment.delete_files()?;
                }
            }
            self.active().set_active(true);
            self.active_mut().truncate_to(offset)?;
        }
        self.scrub_from = i64::MIN;
        let log_end_offset = self.log_end_offset();
        if self.epoch_cache.truncate_from_end(log_end_offset) {
            self.write_epoch_checkpoint()?;
        }
        // Offsets past the truncation point will be written anew: a compaction planned
        // before must not install, and the cleaner must see the new data as dirty.
        self.generation += 1;
        let first_dirty = self.first_dirty_offset.min(log_end_offset);
        if first_dirty != self.first_dirty_offset {
            self.first_dirty_offset = first_dirty;
            self.write_cleaner_checkpoint()?;
        }
        self.recovery_point = self.recovery_point.min(log_end_offset);
        self.write_recovery_point()?;
        for (snapshot, path) in self.list_snapshots()? {
            if snapshot > log_end_offset {
                self.storage.disk.remove_file(&path, FileKind::Checkpoint)?;
            }
        }
        self.producers = ProducerStateManager::new();
        let from = self.load_producer_snapshot()?;
        self.replay(i64::MAX, from)?;
        Ok(())
    }

    /// fsync everything and write the clean-shutdown state.
    ///
    /// After a failed sync (see [`Log::complete_flush`]) no clean shutdown is
    /// recorded and this is an error: the next open recovers from the recovery point.
    pub fn close(&mut self) -> std::io::Result<()> {
        if self.clean_marker_present {
            return Ok(());
        }
        self.active_mut().seal()?;
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(self.sync_failed_error());
        }
        let log_end_offset = self.log_end_offset();
        self.write_producer_snapshot(log_end_offset)?;
        self.write_epoch_checkpoint()?;
        self.epoch_checkpoint_stale = false;
        self.recovery_point = log_end_offset;
        self.write_recovery_point()?;
        self.write_checkpoint(CLEAN_SHUTDOWN_MARKER, b"")?;
        self.clean_marker_present = true;
        Ok(())
    }

    /// Remove the log and its directory (topic deletion).
    pub fn delete(self) -> std::io::Result<()> {
        self.storage.disk.remove_dir_all(&self.dir)
    }

    fn sync_failed_error(&self) -> io::Error {
        io::Error::other(format!(
            "{}: an fsync of this log failed; nothing past offset {} is known to be on \
             disk until the log is reopened and recovered",
            self.dir.display(),
            self.recovery_point
        ))
    }

    /// The log is about to change: a later open must not trust it without recovery.
    fn mark_dirty(&mut self) -> io::Result<()> {
        if self.clean_marker_present {
            self.storage.disk.remove_file_if_exists(
                &self.dir.join(CLEAN_SHUTDOWN_MARKER),
                FileKind::Checkpoint,
            )?;
            self.storage.disk.sync_dir(&self.dir)?;
            self.clean_marker_present = false;
        }
        Ok(())
    }

    /// Replace the small file `name` of this log atomically and durably.
    fn write_checkpoint(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.storage
            .disk
            .write_atomically(&self.dir, name, FileKind::Checkpoint, bytes)
    }

    fn write_epoch_checkpoint(&self) -> io::Result<()> {
        self.write_checkpoint(
            LEADER_EPOCH_CHECKPOINT,
            self.epoch_cache.encode_checkpoint().as_bytes(),
        )
    }

    /// Write the epoch checkpoint if an append could not (before the recovery point
    /// moves past batches it lacks).
    fn ensure_epoch_checkpoint(&mut self) -> io::Result<()> {
        if self.epoch_checkpoint_stale {
            self.write_epoch_checkpoint()?;
            self.epoch_checkpoint_stale = false;
        }
        Ok(())
    }

    fn write_recovery_point(&self) -> io::Result<()> {
        self.write_checkpoint(
            RECOVERY_POINT_CHECKPOINT,
            format!("0\n{}\n", self.recovery_point).as_bytes(),
        )
    }

    fn list_snapshots(&self) -> io::Result<Vec<(i64, PathBuf)>> {
        let mut out = Vec::new();
        for name in self.storage.disk.read_dir(&self.dir)? {
            if let Some((offset, SNAPSHOT_SUFFIX)) = name.to_str().and_then(parse_segment_name) {
                out.push((offset, self.dir.join(&name)));
            }
        }
        Ok(out)
    }

    /// Snapshot producer state as of `offset` (the log end offset) and keep only the
    /// newest snapshots.
    fn write_producer_snapshot(&self, offset: i64) -> io::Result<()> {
        let name = format!("{offset:020}.{SNAPSHOT_SUFFIX}");
        self.write_checkpoint(&name, &self.producers.encode_snapshot())?;
        let snapshots = self.list_snapshots()?;
        let excess = snapshots.len().saturating_sub(SNAPSHOTS_RETAINED);
        for (_, path) in &snapshots[..excess] {
            self.storage.disk.remove_file(path, FileKind::Checkpoint)?;
        }
        Ok(())
    }

    /// Load the newest usable snapshot at or below the log end offset into
    /// `self.producers`; returns the offset from which batches must be replayed.
    fn load_producer_snapshot(&mut self) -> io::Result<i64> {
        let log_end_offset = self.log_end_offset();
        for (offset, path) in self.list_snapshots()?.into_iter().rev() {
            if offset > log_end_offset {
                // Taken before a truncation (recovery or divergence): it knows batches
                // the log no longer has.
                self.storage.disk.remove_file(&path, FileKind::Checkpoint)?;
                continue;
            }
            let Some(bytes) = read_small_file(&self.storage.disk, &path, MAX_SNAPSHOT_BYTES)?
            else {
                continue;
            };
            match ProducerStateManager::decode_snapshot(&bytes) {
                Ok(state) => {
                    self.producers = state;
                    return Ok(offset.max(self.log_start_offset));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping producer snapshot")
                }
            }
        }
        self.producers = ProducerStateManager::new();
        Ok(self.log_start_offset)
    }

    /// Scan batch headers from the earlier of the two offsets to the end, feeding the
    /// epoch cache (batches at or after `epochs_from`) and producer state (at or after
    /// `producers_from`).
    fn replay(&mut self, epochs_from: i64, producers_from: i64) -> io::Result<()> {
        let from = epochs_from.min(producers_from).max(self.log_start_offset);
        if from >= self.log_end_offset() {
            return Ok(());
        }
        let mut headers = Vec::new();
        let first_base = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(b, _)| *b);
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            let Some((mut position, _)) = segment.find_batch(from)? else {
                continue;
            };
            while let Some(header) = segment.read_header(position)? {
                headers.push(header);
                position += header.size_bytes();
                // Apply in bounded chunks: a long log must not hold every header.
                if headers.len() >= 4096 {
                    Self::apply_replayed(
                        &mut self.epoch_cache,
                        &mut self.producers,
                        &headers,
                        epochs_from,
                        producers_from,
                    );
                    headers.clear();
                }
            }
        }
        Self::apply_replayed(
            &mut self.epoch_cache,
            &mut self.producers,
            &headers,
            epochs_from,
            producers_from,
        );
        Ok(())
    }

    fn apply_replayed(
        epochs: &mut LeaderEpochCache,
        producers: &mut ProducerStateManager,
        headers: &[BatchHeader],
        epochs_from: i64,
        producers_from: i64,
    ) {
        for h in headers {
            if h.base_offset >= epochs_from {
                epochs.assign(h.partition_leader_epoch, h.base_offset);
            }
            if h.base_offset >= producers_from && h.is_idempotent() {
                producers.record_batch(
                    h.producer_id,
                    h.producer_epoch,
                    BatchMetadata {
                        first_seq: h.base_sequence,
                        last_seq: h.last_sequence(),
                        first_offset: h.base_offset,
                        last_offset: h.last_offset(),
                        timestamp_ms: h.max_timestamp_ms,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
