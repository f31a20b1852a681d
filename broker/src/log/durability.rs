//! What makes a log survive a crash, and what a restart reads back: flushes (fsync
//! and the recovery point, split so appends go on during the sync), clean shutdown,
//! the atomically replaced checkpoint files, producer snapshots, and the replay of
//! batch headers that rebuilds leader epochs and producer state past them.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::append::{aborted_entry, apply_to_producers};
use super::batch::BatchHeader;
use super::producer_state::ProducerStateManager;
use super::segment::{parse_segment_name, Segment};
use super::txn::{EndTxnMarker, MAX_MARKER_BATCH_BYTES};
use super::txn_index::AbortedTxn;
use super::{
    read_small_file, Log, CLEAN_SHUTDOWN_MARKER, LEADER_EPOCH_CHECKPOINT, MAX_SNAPSHOT_BYTES,
    RECOVERY_POINT_CHECKPOINT, RECOVERY_POINT_CHECKPOINT_MS, SNAPSHOTS_RETAINED, SNAPSHOT_SUFFIX,
};
use crate::storage::{DiskFile, FileKind};

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

impl Log {
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

    fn sync_failed_error(&self) -> io::Error {
        io::Error::other(format!(
            "{}: an fsync of this log failed; nothing past offset {} is known to be on \
             disk until the log is reopened and recovered",
            self.dir.display(),
            self.recovery_point
        ))
    }

    /// The log is about to change: a later open must not trust it without recovery.
    pub(super) fn mark_dirty(&mut self) -> io::Result<()> {
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
    pub(super) fn write_checkpoint(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.storage
            .disk
            .write_atomically(&self.dir, name, FileKind::Checkpoint, bytes)
    }

    pub(super) fn write_epoch_checkpoint(&self) -> io::Result<()> {
        self.write_checkpoint(
            LEADER_EPOCH_CHECKPOINT,
            self.epoch_cache.encode_checkpoint().as_bytes(),
        )
    }

    /// Write the epoch checkpoint if an append could not (before the recovery point
    /// moves past batches it lacks).
    pub(super) fn ensure_epoch_checkpoint(&mut self) -> io::Result<()> {
        if self.epoch_checkpoint_stale {
            self.write_epoch_checkpoint()?;
            self.epoch_checkpoint_stale = false;
        }
        Ok(())
    }

    pub(super) fn write_recovery_point(&self) -> io::Result<()> {
        self.write_checkpoint(
            RECOVERY_POINT_CHECKPOINT,
            format!("0\n{}\n", self.recovery_point).as_bytes(),
        )
    }

    pub(super) fn list_snapshots(&self) -> io::Result<Vec<(i64, PathBuf)>> {
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
    pub(super) fn write_producer_snapshot(&self, offset: i64) -> io::Result<()> {
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
    pub(super) fn load_producer_snapshot(&mut self) -> io::Result<i64> {
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
    /// `producers_from`; markers are read whole, so open transactions are rebuilt, and
    /// the aborted-transaction index gets the entries a crash may have lost).
    pub(super) fn replay(&mut self, epochs_from: i64, producers_from: i64) -> io::Result<()> {
        let from = epochs_from.min(producers_from).max(self.log_start_offset);
        let mut aborted = Vec::new();
        let (epochs, producers) = (&mut self.epoch_cache, &mut self.producers);
        scan_batches(&self.segments, from, producers_from, |h, marker| {
            if h.base_offset >= epochs_from {
                epochs.assign(h.partition_leader_epoch, h.base_offset);
            }
            if h.base_offset >= producers_from {
                let completed = apply_to_producers(producers, h, marker);
                aborted.extend(completed.and_then(|t| aborted_entry(producers, t)));
            }
        })?;
        for entry in aborted {
            self.index_aborted(entry);
        }
        Ok(())
    }

    /// Put an aborted transaction in the index of the segment holding its marker.
    pub(super) fn index_aborted(&mut self, entry: AbortedTxn) {
        if let Some((_, segment)) = self.segments.range_mut(..=entry.last_offset).next_back() {
            segment.txn_index.push(entry);
        }
    }

    /// Rebuild the aborted-transaction indexes of the segments based at `bases` (found
    /// damaged) from the log: every batch from the log start, with producer state of
    /// its own. A transaction begun before the log start is not known to it.
    pub(super) fn rebuild_txn_indexes(&mut self, bases: &[i64]) -> io::Result<()> {
        let mut producers = ProducerStateManager::new();
        let mut rebuilt: BTreeMap<i64, Vec<AbortedTxn>> =
            bases.iter().map(|b| (*b, Vec::new())).collect();
        let segments = &self.segments;
        scan_batches(
            segments,
            self.log_start_offset,
            self.log_start_offset,
            |h, marker| {
                let completed = apply_to_producers(&mut producers, h, marker);
                let Some(entry) = completed.and_then(|t| aborted_entry(&producers, t)) else {
                    return;
                };
                let holder = segments
                    .range(..=entry.last_offset)
                    .next_back()
                    .map(|(b, _)| *b);
                if let Some(entries) = holder.and_then(|b| rebuilt.get_mut(&b)) {
                    entries.push(entry);
                }
            },
        )?;
        for (base, entries) in rebuilt {
            if let Some(segment) = self.segments.get_mut(&base) {
                tracing::info!(dir = %self.dir.display(), segment = base, aborted = entries.len(), "rebuilt the transaction index");
                segment.txn_index.replace(entries)?;
            }
        }
        Ok(())
    }
}

/// Every batch header from the one holding `from` to the log end, in order, with the
/// marker of each control batch at or after `markers_from` (read whole).
fn scan_batches(
    segments: &BTreeMap<i64, Segment>,
    from: i64,
    markers_from: i64,
    mut visit: impl FnMut(&BatchHeader, Option<&EndTxnMarker>),
) -> io::Result<()> {
    let first_base = segments
        .range(..=from)
        .next_back()
        .map_or(from, |(b, _)| *b);
    for segment in segments.range(first_base..).map(|(_, s)| s) {
        let Some((mut position, _)) = segment.find_batch(from)? else {
            continue;
        };
        while let Some(header) = segment.read_header(position)? {
            let marker = if header.is_control() && header.base_offset >= markers_from {
                read_marker(segment, position, &header)?
            } else {
                None
            };
            visit(&header, marker.as_ref());
            position += header.size_bytes();
        }
    }
    Ok(())
}

/// The marker of the control batch at `position`, read whole and checked (CRC, Kafka's
/// control record format). A control batch that is too large or not a marker is
/// skipped with a warning: it cannot end a transaction, and recovery has checked the
/// bytes it keeps.
pub(super) fn read_marker(
    segment: &Segment,
    position: u64,
    header: &BatchHeader,
) -> io::Result<Option<EndTxnMarker>> {
    let size = header.size_bytes();
    if size > MAX_MARKER_BATCH_BYTES {
        tracing::warn!(
            offset = header.base_offset,
            size,
            "control batch too large for a transaction marker; skipped"
        );
        return Ok(None);
    }
    let mut bytes = vec![0u8; size as usize];
    segment.log.get()?.read_exact_at(&mut bytes, position)?;
    match EndTxnMarker::parse(&bytes) {
        Ok(marker) => Ok(marker),
        Err(e) => {
            tracing::warn!(offset = header.base_offset, error = %e, "unreadable transaction marker; skipped");
            Ok(None)
        }
    }
}
