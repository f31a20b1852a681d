//! Per-partition storage: a segmented, append-only log in Kafka's on-disk layout.
//!
//! This module does file I/O but makes no network or scheduling decisions; the
//! server layer owns locking, timers and sockets. Reads return file ranges
//! ([`FileSlice`]), not copied buffers, so the server can send them with sendfile.

pub mod batch;
pub mod producer_state;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

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
        }
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
        todo!()
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
    #[error("log I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// Whole batches, starting with the one that holds the requested offset; `None`
    /// when there is nothing to return below `max_offset`.
    pub slice: Option<FileSlice>,
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

/// One partition's log: segments under `<data-dir>/<topic>-<partition>/`.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
}

impl Log {
    /// Open (or create) the log in `dir`, recovering any segment not covered by a clean
    /// shutdown: batches are validated (length, CRC-32C) and a torn tail is truncated;
    /// indexes and producer state are rebuilt where needed.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> std::io::Result<Log> {
        let _ = now_ms;
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Append the record batches of one produce request as leader, with one write.
    /// Offsets and `partitionLeaderEpoch` are assigned here; a retried idempotent batch
    /// returns its original offsets without writing.
    pub fn append_as_leader(
        &mut self,
        records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let _ = (records, leader_epoch, now_ms);
        todo!()
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
        let _ = (offset, max_bytes, max_offset, min_one_batch);
        todo!()
    }

    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }

    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// The first offset whose batch max timestamp is at least `timestamp_ms`, with
    /// that timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> std::io::Result<Option<(i64, i64)>> {
        let _ = timestamp_ms;
        todo!()
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        todo!()
    }

    /// The leader epoch of the last batch in the log (-1 when empty).
    pub fn latest_epoch(&self) -> i32 {
        todo!()
    }

    /// Roll, delete segments past retention, and fsync per flush.ms; called
    /// periodically by the server. Returns the number of segments deleted.
    pub fn housekeeping(&mut self, now_ms: i64) -> std::io::Result<usize> {
        let _ = now_ms;
        todo!()
    }

    /// fsync everything and write the clean-shutdown state.
    pub fn close(&mut self) -> std::io::Result<()> {
        todo!()
    }

    /// Remove the log and its directory (topic deletion).
    pub fn delete(self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}
