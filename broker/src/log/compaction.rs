//! Log compaction (Kafka's log cleaner) for `cleanup.policy=compact`: keep, for every
//! key, the record with the highest offset.
//!
//! # Three steps, so the write lock is held only for renames
//!
//! 1. [`Log::plan_compaction`](crate::log::Log::plan_compaction) (a read lock is
//!    enough): picks the cleanable segments and checks the dirty ratio,
//!    `max.compaction.lag.ms` and due tombstones.
//! 2. [`run::CompactionPlan::run`] (no lock): sealed segments below the high watermark are
//!    immutable, so it reads them through their open files, builds the offset map and
//!    writes the cleaned segments as `.cleaned` files.
//! 3. [`Log::install_compaction`](crate::log::Log::install_compaction) (write lock):
//!    swaps the cleaned segments in, or discards them when the log changed meanwhile
//!    (truncation, retention, a newer cleaning).
//!
//! # Layout
//!
//! - `decide`: the pure rules (offset map, which record and batch survive, grouping).
//! - `run`: the plan and result types and the lock-free run.
//! - `install`: the log's side: plan, install, the cleaner checkpoint, crash recovery.
//! - this file: the file names and helpers both `run` and `install` use.
//!
//! # Kafka's rules
//!
//! - Cleanable: sealed segments wholly below the high watermark, up to the first one
//!   holding a record newer than `min.compaction.lag.ms`. The active segment never.
//! - The dirty section starts at the cleaner checkpoint (first dirty offset); the
//!   offset map (key → latest offset) is built over it, bounded by
//!   [`DEFAULT_OFFSET_MAP_MAX_BYTES`]: when full, the cleaning stops at a batch boundary
//!   and the rest stays dirty for the next round.
//! - Every segment from the log start to the end of the mapped range is rewritten:
//!   a record survives unless a later record of its key is in the map
//!   ([`decide::keep_record`]). Records without a key cannot be compacted and are dropped.
//! - Tombstones (null values) survive `delete.retention.ms` after the cleaning that
//!   first rewrote their batch: that cleaning stores the delete horizon in the batch's
//!   baseTimestamp with attribute bit 6 (KIP-534), so the rule survives restarts and
//!   needs no file times. A later cleaning drops them once the horizon has passed; the
//!   earliest horizon is kept in the checkpoint so that cleaning happens even when
//!   nothing else is dirty.
//! - Offsets never change (gaps appear). A rewritten batch keeps its base offset,
//!   lastOffsetDelta, producer id/epoch/base sequence, leader epoch and codec (records
//!   are recompressed with it); an idempotent producer's last batch, once empty, stays
//!   as a bare header so its sequence state survives a reload. Batches that lose
//!   nothing are copied byte for byte.
//! - Small cleaned segments are grouped into one, up to `segment.bytes`.
//!
//! # Files and crash safety (Kafka's `.cleaned` / `.swap` scheme)
//!
//! A cleaned group replacing segments `b0..bk` is written as
//! `<b0>.{log,index,timeindex}.cleaned` and fsynced. Installing it:
//!
//! 1. rename every `.cleaned` to `.swap`;
//! 2. write `cleaner-swap-manifest` atomically, listing each group's bases: **the commit
//!    point**;
//! 3. per group, delete segments `b1..bk`, then rename the `<b0>` swaps over the old
//!    files (index files first, the `.log` last; a rename replaces its target
//!    atomically);
//! 4. remove the manifest.
//!
//! [`install::recover_interrupted_compaction`] runs first thing on open: with a manifest, every
//! group whose `<b0>.log.swap` still exists is finished (steps 3 again; deleting a
//! missing file is fine); then every leftover `.cleaned` and `.swap` file goes, and the
//! manifest with them. Without a manifest the swap never committed and the old segments
//! are intact, so the leftovers are simply removed. Either way the log is the old one or
//! the new one, never a mix.

pub mod decide;
pub mod install;
pub mod run;

use std::io;
use std::path::Path;

use crate::log::segment::{self, segment_path};
use crate::storage::{Disk, FileKind};

/// `<dir>/cleaner-offset-checkpoint`: `0`, the first dirty offset, and the earliest
/// delete horizon of a retained tombstone (or -1).
pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// Present only while cleaned segments are being swapped in (see the module docs).
pub const SWAP_MANIFEST: &str = "cleaner-swap-manifest";
pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";
/// The offset map's memory budget (Kafka's log.cleaner.dedupe.buffer.size default).
pub const DEFAULT_OFFSET_MAP_MAX_BYTES: usize = 128 * 1024 * 1024;
/// "No tombstone waits for its horizon."
const NO_HORIZON: i64 = i64::MAX;

fn suffixed(suffix: &str, extra: &str) -> String {
    format!("{suffix}{extra}")
}

/// Remove a segment's three files with `extra` appended to their names; best effort
/// (used on paths that are already failing or discarding).
fn remove_segment_files(disk: &Disk, dir: &Path, base_offset: i64, extra: &str) {
    for suffix in [
        segment::LOG_SUFFIX,
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
    ] {
        let path = segment_path(dir, base_offset, &suffixed(suffix, extra));
        let _ = disk.remove_file(&path, kind_of(suffix));
    }
}

/// The kind of a segment file by its (plain) suffix.
fn kind_of(suffix: &str) -> FileKind {
    if suffix == segment::LOG_SUFFIX {
        FileKind::Segment
    } else {
        FileKind::Index
    }
}

fn remove_if_exists(disk: &Disk, dir: &Path, base_offset: i64, suffix: &str) -> io::Result<()> {
    disk.remove_file_if_exists(&segment_path(dir, base_offset, suffix), kind_of(suffix))
        .map(|_| ())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
