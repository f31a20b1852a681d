//! Where a log loses data on purpose: retention and time-based rolls from the start
//! (`housekeeping`, never past the high watermark), and truncation from the end (a
//! follower whose log diverged from its leader's). Both keep the index, leader epochs,
//! producer state and checkpoints consistent with the segments that remain.

use std::io;

use super::producer_state::ProducerStateManager;
use super::segment::Segment;
use super::Log;
use crate::storage::FileKind;

impl Log {
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

    /// When [`Log::housekeeping`] next has something to do if nothing is appended
    /// meanwhile (wall-clock ms; at or before `now_ms` when due already), or `None`
    /// when nothing can come due without an append: the active segment's segment.ms
    /// (or KIP-354 max.compaction.lag.ms) roll, the oldest segment's retention.ms,
    /// retention.bytes exceeded, flush.ms of unflushed records, the first idle
    /// producer's expiry, and on a compacted log the cleaner's next look.
    pub fn next_housekeeping_ms(&self, now_ms: i64) -> Option<i64> {
        let after = |at: i64, ms: i64| at.saturating_add(ms).saturating_add(1);
        let active = self.active();
        let mut due: Option<i64> = None;
        let mut at = |t: i64| due = Some(due.map_or(t, |d| d.min(t)));
        if active.size_bytes > 0 {
            at(after(active.created_ms, self.config.segment_ms));
            if self.config.cleanup_policy.compact {
                if let Some(ts) = active.first_batch_timestamp_ms.filter(|ts| *ts >= 0) {
                    at(after(ts, self.config.max_compaction_lag_ms));
                }
            }
        }
        if let Some(last_ms) = self.producers.earliest_last_timestamp_ms() {
            at(after(last_ms, self.config.producer_id_expiration_ms));
        }
        let holds_data = self.segments.len() > 1 || active.size_bytes > 0;
        if self.config.cleanup_policy.delete && holds_data {
            if self.config.retention_ms >= 0 {
                let oldest = self.segments.values().next().expect("never empty");
                at(after(
                    oldest.largest_timestamp_ms(),
                    self.config.retention_ms,
                ));
            }
            if self.config.retention_bytes >= 0
                && self.size_bytes() as i64 > self.config.retention_bytes
            {
                at(now_ms);
            }
        }
        if self.recovery_point < self.log_end_offset() && self.config.flush_ms < i64::MAX {
            at(self.last_flush_ms.saturating_add(self.config.flush_ms));
        }
        if self.config.cleanup_policy.compact && holds_data {
            at(now_ms);
        }
        due
    }

    /// Delete the oldest segments while `deletable` says so, as Kafka: stop at the
    /// first one kept; the active segment goes too (after a roll) unless it is empty.
    /// A segment holding offsets at or above the high watermark is never deleted
    /// (Kafka's rule: consumers and followers may not have it yet).
    pub(super) fn delete_segments(
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
            self.write_log_start_checkpoint()?;
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
}
