//! The log's side: [`Log::plan_compaction`] under a read lock,
//! [`Log::install_compaction`] under the write lock (the `.cleaned` / `.swap` scheme
//! of the parent module's docs), the cleaner checkpoint, and
//! [`recover_interrupted_compaction`] on open. Everything here changes or reads the
//! log's own state and files.

use std::io;
use std::path::Path;

use super::run::{CompactionPlan, CompactionReason, CompactionResult, SourceSegment};
use super::{
    kind_of, remove_if_exists, suffixed, CLEANED_SUFFIX, CLEANER_CHECKPOINT,
    DEFAULT_OFFSET_MAP_MAX_BYTES, NO_HORIZON, SWAP_MANIFEST, SWAP_SUFFIX,
};
use crate::log::segment::{self, segment_path, Segment};
use crate::log::txn_index::TXN_INDEX_SUFFIX;
use crate::log::Log;
use crate::storage::{Disk, FileKind};

impl Log {
    /// Decide whether the log needs cleaning now, and what to clean. `None` when the
    /// policy is not compact or nothing is due. Reads only in-memory state (and file
    /// times of segments without timestamps).
    pub fn plan_compaction(&self, now_ms: i64, high_watermark: i64) -> Option<CompactionPlan> {
        let config = &self.config;
        if !config.cleanup_policy.compact || self.compaction_disabled {
            return None;
        }
        let active_base = self.active().base_offset;
        let lag_cutoff_ms = now_ms.saturating_sub(config.min_compaction_lag_ms);
        // Open transactions are never cleaned: their outcome decides what stays.
        let last_stable_offset = self.last_stable_offset(high_watermark);
        let mut segments = Vec::new();
        for s in self.segments.values() {
            // Never the active segment, nothing at or above the last stable offset,
            // nothing newer than min.compaction.lag.ms (Kafka stops at the first such
            // segment).
            if s.base_offset >= active_base
                || s.next_offset > last_stable_offset
                || (config.min_compaction_lag_ms > 0 && s.largest_timestamp_ms() > lag_cutoff_ms)
            {
                break;
            }
            segments.push(SourceSegment::of(s));
        }
        if segments.is_empty() {
            return None;
        }
        let first_dirty_offset = self.first_dirty_offset.max(self.log_start_offset);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for s in &segments {
            if s.next_offset <= first_dirty_offset {
                clean_bytes += s.size_bytes;
            } else {
                dirty_bytes += s.size_bytes;
            }
        }
        let ratio = if dirty_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64
        };
        let overdue = segments
            .iter()
            .find(|s| s.next_offset > first_dirty_offset)
            .and_then(|s| s.first_batch_timestamp_ms)
            .is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > config.max_compaction_lag_ms);
        let reason = if dirty_bytes > 0 && ratio > config.min_cleanable_dirty_ratio {
            CompactionReason::DirtyRatio(ratio)
        } else if overdue {
            CompactionReason::MaxCompactionLag
        } else if now_ms >= self.tombstone_horizon_ms {
            CompactionReason::TombstonesDue
        } else {
            return None;
        };
        let aborted = self.aborted_transactions(
            segments[0].base_offset,
            segments.last().map_or(0, |s| s.next_offset),
        );
        Some(CompactionPlan {
            dir: self.dir.clone(),
            storage: self.storage.clone(),
            config: config.clone(),
            generation: self.generation,
            now_ms,
            segments,
            first_dirty_offset,
            producers_last_batch: self.producers.last_batch_offsets(),
            aborted,
            reason,
            offset_map_max_bytes: DEFAULT_OFFSET_MAP_MAX_BYTES,
        })
    }

    /// Swap cleaned segments in (see the module docs for the crash-safe order).
    /// Returns false, and removes the cleaned files, when the log changed since the
    /// plan: it was truncated, a replaced segment is gone or different, or the policy
    /// is no longer compact.
    ///
    /// On an error during the swap the log keeps serving the replaced segments through
    /// their open files (correct, merely uncompacted data), no further compaction is
    /// planned, and the next open completes the swap from the manifest.
    pub fn install_compaction(&mut self, result: CompactionResult) -> io::Result<bool> {
        let active_base = self.active().base_offset;
        let unchanged = result.generation == self.generation
            && result.dir == self.dir
            && self.config.cleanup_policy.compact
            && result.groups.iter().flatten().all(|source| {
                source.base_offset < active_base
                    && self.segments.get(&source.base_offset).is_some_and(|s| {
                        s.log.same(&source.file) && s.size_bytes == source.size_bytes
                    })
            });
        if !unchanged {
            tracing::info!(dir = %self.dir.display(), "log changed during compaction; discarding the cleaned segments");
            result.discard();
            return Ok(false);
        }
        self.mark_dirty()?;
        if let Err(e) = self.swap_in(&result) {
            self.compaction_disabled = true;
            tracing::error!(dir = %self.dir.display(), error = %e, "compaction swap failed; compaction is off for this log until it is reopened");
            return Err(e);
        }
        self.first_dirty_offset = result.next_first_dirty_offset;
        self.tombstone_horizon_ms = result.tombstone_horizon_ms;
        self.write_cleaner_checkpoint()?;
        let s = &result.stats;
        tracing::info!(
            dir = %self.dir.display(),
            segments_read = s.segments_read,
            segments_written = s.segments_written,
            bytes_read = s.bytes_read,
            bytes_written = s.bytes_written,
            records_read = s.records_read,
            records_retained = s.records_retained,
            keys = s.keys_mapped,
            "compacted log"
        );
        Ok(true)
    }

    /// The file steps of the swap, then the in-memory ones; until the files are all in
    /// place the in-memory log keeps the replaced segments (their open files stay
    /// readable after unlink).
    fn swap_in(&mut self, result: &CompactionResult) -> io::Result<()> {
        let dir = self.dir.clone();
        let disk = self.storage.disk.clone();
        for group in &result.groups {
            let base = group[0].base_offset;
            for suffix in [
                segment::INDEX_SUFFIX,
                segment::TIME_INDEX_SUFFIX,
                segment::LOG_SUFFIX,
            ] {
                disk.rename(
                    &segment_path(&dir, base, &suffixed(suffix, CLEANED_SUFFIX)),
                    &segment_path(&dir, base, &suffixed(suffix, SWAP_SUFFIX)),
                    kind_of(suffix),
                )?;
            }
        }
        disk.sync_dir(&dir)?;
        self.write_checkpoint(SWAP_MANIFEST, encode_manifest(&result.groups).as_bytes())?;
        for group in &result.groups {
            for source in &group[1..] {
                for suffix in [
                    segment::LOG_SUFFIX,
                    segment::INDEX_SUFFIX,
                    segment::TIME_INDEX_SUFFIX,
                    TXN_INDEX_SUFFIX,
                ] {
                    remove_if_exists(&disk, &dir, source.base_offset, suffix)?;
                }
            }
            // A rename replaces the old `<b0>` files; readers holding them keep reading.
            finish_swap(&disk, &dir, group[0].base_offset)?;
        }
        disk.sync_dir(&dir)?;
        let mut cleaned = Vec::with_capacity(result.groups.len());
        for group in &result.groups {
            let base = group[0].base_offset;
            let loaded = Segment::load(
                &self.storage,
                &dir,
                base,
                &self.config,
                self.clock_ms,
                false,
            )?;
            if let Some(damage) = loaded.damage {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "cleaned segment {} at byte {}: {}",
                        loaded.segment.log.path().display(),
                        damage.position,
                        damage.reason
                    ),
                ));
            }
            let mut segment = loaded.segment;
            segment.finish_load(&self.config, loaded.file_bytes, false)?;
            // Written (and checked) by the cleaner in this process.
            segment.verified_bytes = segment.size_bytes;
            segment.verified_next_offset = segment.next_offset;
            cleaned.push(segment);
        }
        for source in result.groups.iter().flatten() {
            self.segments.remove(&source.base_offset);
        }
        // A cleaned segment's index (the first source's file) lists the aborts whose
        // markers it kept.
        for (mut segment, entries) in cleaned.into_iter().zip(&result.aborted) {
            segment.txn_index.replace(entries.clone())?;
            self.segments.insert(segment.base_offset, segment);
        }
        disk.remove_file(&dir.join(SWAP_MANIFEST), FileKind::Checkpoint)?;
        disk.sync_dir(&dir)
    }

    pub(crate) fn write_cleaner_checkpoint(&self) -> io::Result<()> {
        let horizon = if self.tombstone_horizon_ms == NO_HORIZON {
            -1
        } else {
            self.tombstone_horizon_ms
        };
        self.write_checkpoint(
            CLEANER_CHECKPOINT,
            format!("0\n{}\n{horizon}\n", self.first_dirty_offset).as_bytes(),
        )
    }

    /// The first offset not yet cleaned (the cleaner checkpoint).
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset
    }
}

/// Read the cleaner checkpoint: (first dirty offset, earliest tombstone horizon).
pub(crate) fn read_cleaner_checkpoint(disk: &Disk, dir: &Path) -> io::Result<Option<(i64, i64)>> {
    let Some(bytes) = crate::log::read_small_file(disk, &dir.join(CLEANER_CHECKPOINT), 4096)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines().map(str::trim);
    let parsed = match (lines.next(), lines.next(), lines.next()) {
        (Some("0"), Some(dirty), Some(horizon)) => {
            dirty.parse::<i64>().ok().zip(horizon.parse::<i64>().ok())
        }
        _ => None,
    };
    match parsed {
        Some((dirty, horizon)) => Ok(Some((
            dirty,
            if horizon < 0 { NO_HORIZON } else { horizon },
        ))),
        None => {
            // Losing it only means cleaning the whole log again next time.
            tracing::warn!(dir = %dir.display(), "unreadable cleaner checkpoint; the whole log counts as dirty");
            Ok(None)
        }
    }
}

pub(crate) fn no_horizon() -> i64 {
    NO_HORIZON
}

pub(super) fn encode_manifest(groups: &[Vec<SourceSegment>]) -> String {
    let mut text = String::from("0\n");
    for group in groups {
        let bases: Vec<String> = group.iter().map(|s| s.base_offset.to_string()).collect();
        text.push_str(&bases.join(" "));
        text.push('\n');
    }
    text
}

fn parse_manifest(text: &str) -> Option<Vec<Vec<i64>>> {
    let mut lines = text.lines();
    if lines.next()? != "0" {
        return None;
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bases: Option<Vec<i64>> = l.split_whitespace().map(|b| b.parse().ok()).collect();
            bases.filter(|b| !b.is_empty())
        })
        .collect()
}

/// Rename the swap files of the cleaned segment at `base` over its final names, the
/// `.log` last: once `<base>.log.swap` is gone the group is fully installed.
pub(super) fn finish_swap(disk: &Disk, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
        segment::LOG_SUFFIX,
    ] {
        let swap = segment_path(dir, base, &suffixed(suffix, SWAP_SUFFIX));
        match disk.rename(&swap, &segment_path(dir, base, suffix), kind_of(suffix)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Finish or roll back a compaction interrupted by a crash; run before the segments
/// are loaded. See the module docs.
pub fn recover_interrupted_compaction(disk: &Disk, dir: &Path) -> io::Result<()> {
    let manifest_path = dir.join(SWAP_MANIFEST);
    let manifest =
        crate::log::read_small_file(disk, &manifest_path, crate::log::MAX_CHECKPOINT_BYTES)?;
    let mut changed = false;
    if let Some(bytes) = &manifest {
        // Written atomically, so it is whole; anything else is damage we must not guess
        // around (old and new segments may both be present).
        let groups = parse_manifest(&String::from_utf8_lossy(bytes)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: unreadable compaction swap manifest",
                    manifest_path.display()
                ),
            )
        })?;
        for bases in groups {
            let base = bases[0];
            let log_swap = segment_path(dir, base, &suffixed(segment::LOG_SUFFIX, SWAP_SUFFIX));
            if !disk.exists(&log_swap, FileKind::Segment)? {
                continue;
            }
            tracing::warn!(dir = %dir.display(), segment = base, "completing an interrupted compaction swap");
            for &replaced in &bases[1..] {
                for suffix in [
                    segment::LOG_SUFFIX,
                    segment::INDEX_SUFFIX,
                    segment::TIME_INDEX_SUFFIX,
                ] {
                    remove_if_exists(disk, dir, replaced, suffix)?;
                }
            }
            finish_swap(disk, dir, base)?;
        }
        changed = true;
    }
    for name in disk.read_dir(dir)? {
        let Some(text) = name.to_str() else { continue };
        if text.ends_with(CLEANED_SUFFIX) || text.ends_with(SWAP_SUFFIX) {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "removing a leftover file of an interrupted compaction");
            let kind = if text.contains(".log.") {
                FileKind::Segment
            } else {
                FileKind::Index
            };
            disk.remove_file(&path, kind)?;
            changed = true;
        }
    }
    if manifest.is_some() {
        disk.remove_file_if_exists(&manifest_path, FileKind::Checkpoint)?;
    }
    if changed {
        disk.sync_dir(dir)?;
    }
    Ok(())
}
