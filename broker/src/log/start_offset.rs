//! The log start offset moved on request: DeleteRecords on a leader, and a follower
//! taking its leader's start (Kafka's `maybeIncrementLogStartOffset`).
//!
//! Unlike retention, which drops whole segments so the start is always a segment's
//! base offset, a requested start may fall inside a segment: the records below it stay
//! in the file but are never served again (reads below the start are
//! OFFSET_OUT_OF_RANGE), and the segments wholly below it are deleted. The start is
//! written to `log-start-offset-checkpoint` before any file is deleted, and an open
//! takes the larger of it and the first segment's base offset, so the start never
//! moves back, not even across a crash.

use std::io;
use std::path::Path;

use super::{read_offset_checkpoint, Log, LOG_START_CHECKPOINT};
use crate::storage::Disk;

/// Why the log start could not move.
#[derive(Debug, thiserror::Error)]
pub enum StartOffsetError {
    /// Kafka's rule: records may be deleted up to the high watermark, not past it
    /// (OFFSET_OUT_OF_RANGE).
    #[error("log start offset {requested} is outside [0, {limit}] (the high watermark)")]
    OutOfRange { requested: i64, limit: i64 },
    #[error("log I/O: {0}")]
    Io(#[from] io::Error),
}

impl Log {
    /// Move the log start to `offset` if that is later than it is now, never past
    /// `limit` (the leader's high watermark; a follower passes its log end). Returns
    /// the log start after the call. The new start is durable when this returns;
    /// segments wholly below it are deleted.
    pub fn advance_log_start(&mut self, offset: i64, limit: i64) -> Result<i64, StartOffsetError> {
        if offset < 0 || offset > limit {
            return Err(StartOffsetError::OutOfRange {
                requested: offset,
                limit,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.mark_dirty()?;
        // Durable before any file goes: a crash in between reopens at the new start.
        self.write_checkpoint(LOG_START_CHECKPOINT, format!("0\n{offset}\n").as_bytes())?;
        self.log_start_offset = offset;
        self.first_dirty_offset = self.first_dirty_offset.max(offset);
        let now_ms = self.clock_ms;
        // Every offset below the start is gone, committed or not (`limit` bounds it).
        self.delete_segments(now_ms, i64::MAX, |segment| segment.next_offset <= offset)?;
        if self.epoch_cache.truncate_from_start(offset) {
            self.write_epoch_checkpoint()?;
        }
        tracing::info!(dir = %self.dir.display(), log_start_offset = offset, "log start offset advanced");
        Ok(self.log_start_offset)
    }

    /// Record the start of a log that was emptied and restarted at `offset`, so an
    /// older, larger checkpoint does not hide what is fetched from there on.
    pub(super) fn write_log_start_checkpoint(&self) -> io::Result<()> {
        self.write_checkpoint(
            LOG_START_CHECKPOINT,
            format!("0\n{}\n", self.log_start_offset).as_bytes(),
        )
    }
}

/// The checkpointed log start, if the file exists and reads as a one-offset checkpoint;
/// otherwise the start falls back to the first segment's base offset.
pub(super) fn read_log_start_checkpoint(disk: &Disk, dir: &Path) -> io::Result<Option<i64>> {
    read_offset_checkpoint(
        disk,
        dir,
        LOG_START_CHECKPOINT,
        ("log start offset checkpoint", "ignoring it"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, config, open, read_all, segment_files, values};
    use super::*;
    use crate::log::{LogConfig, ReadError};

    /// Segments of two single-record batches each: offsets 0-1, 2-3, 4-5, 6-7, 8-9.
    fn ten_records(dir: &Path) -> Log {
        let mut log = open(
            dir,
            LogConfig {
                segment_bytes: 150,
                ..config()
            },
        );
        for i in 0..10 {
            append(&mut log, &[format!("v{i}").as_str()], 1_000 + i);
        }
        assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
        log
    }

    fn out_of_range(log: &Log, offset: i64) -> bool {
        matches!(
            log.read(offset, 1 << 20, i64::MAX, true),
            Err(ReadError::OffsetOutOfRange { .. })
        )
    }

    #[test]
    fn advancing_inside_a_segment_hides_the_records_below_and_drops_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ten_records(dir.path());
        let segments_before = log.segment_count();
        assert_eq!(log.advance_log_start(5, 10).unwrap(), 5);
        assert_eq!(log.log_start_offset(), 5);
        assert!(out_of_range(&log, 4));
        assert!(!out_of_range(&log, 5));
        // Reading from the start gives 5 onwards (the batch holding 5 starts there).
        let read = read_all(&log, 5);
        assert_eq!(values(&read).first(), Some(&(5, "v5")));
        assert_eq!(read.len(), 5);
        // The segments wholly below 5 are gone; the one holding 5 stays.
        assert!(log.segment_count() < segments_before);
        assert!(segment_files(dir.path(), "log").iter().all(|p| p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            >= "00000000000000000004"));
    }

    #[test]
    fn the_start_never_moves_back_or_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ten_records(dir.path());
        assert_eq!(log.advance_log_start(6, 8).unwrap(), 6);
        // An earlier offset is no change (Kafka answers the current low watermark).
        assert_eq!(log.advance_log_start(3, 8).unwrap(), 6);
        assert!(matches!(
            log.advance_log_start(9, 8),
            Err(StartOffsetError::OutOfRange {
                requested: 9,
                limit: 8
            })
        ));
        assert!(matches!(
            log.advance_log_start(-2, 8),
            Err(StartOffsetError::OutOfRange { .. })
        ));
        assert_eq!(log.log_start_offset(), 6);
        // Up to the limit exactly: the log end, nothing left to read.
        assert_eq!(log.advance_log_start(10, 10).unwrap(), 10);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert!(out_of_range(&log, 9));
        // Appends go on after it.
        assert_eq!(append(&mut log, &["w"], 2_000).base_offset, 10);
        assert_eq!(values(&read_all(&log, 10)), vec![(10, "w")]);
    }

    #[test]
    fn the_start_survives_a_clean_restart_and_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 150,
            ..config()
        };
        let mut log = ten_records(dir.path());
        log.advance_log_start(5, 10).unwrap();
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), cfg.clone());
        assert_eq!(log.log_start_offset(), 5);
        assert!(out_of_range(&log, 4));
        // No clean shutdown this time: recovery must not move it back either.
        let mut log = log;
        log.advance_log_start(7, 10).unwrap();
        drop(log);
        let log = open(dir.path(), cfg);
        assert_eq!(log.log_start_offset(), 7);
        assert!(out_of_range(&log, 6));
        assert_eq!(values(&read_all(&log, 7)).first(), Some(&(7, "v7")));
    }

    #[test]
    fn a_checkpoint_past_the_recovered_end_empties_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ten_records(dir.path());
        log.advance_log_start(9, 10).unwrap();
        drop(log);
        // As after a crash that lost the unsynced tail the deletion covered: the log
        // ends (at 8) before the checkpointed start.
        let tail: Vec<_> = segment_files(dir.path(), "log");
        let last = tail.last().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(0)
            .unwrap();
        let log = open(dir.path(), config());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (9, 9));
    }

    #[test]
    fn retention_after_it_keeps_the_larger_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ten_records(dir.path());
        log.advance_log_start(5, 10).unwrap();
        // Retention by time deletes the segments it may; the start stays at least 5.
        let mut cfg = log.config().clone();
        cfg.retention_ms = 1;
        log.set_config(cfg);
        log.housekeeping(1_000_000, 7).unwrap();
        assert!(log.log_start_offset() >= 5);
        assert!(out_of_range(&log, 4));
    }
}
