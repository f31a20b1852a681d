//! Log compaction (Kafka's log cleaner) for `cleanup.policy=compact`: keep, for every
//! key, the record with the highest offset.
//!
//! # Three steps, so the write lock is held only for renames
//!
//! 1. [`Log::plan_compaction`] (a read lock is enough): picks the cleanable segments
//!    and checks the dirty ratio, `max.compaction.lag.ms` and due tombstones.
//! 2. [`CompactionPlan::run`] (no lock): sealed segments below the high watermark are
//!    immutable, so it reads them through their open files, builds the offset map and
//!    writes the cleaned segments as `.cleaned` files.
//! 3. [`Log::install_compaction`] (write lock): swaps the cleaned segments in, or
//!    discards them when the log changed meanwhile (truncation, retention, a newer
//!    cleaning).
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
//!   ([`keep_record`]). Records without a key cannot be compacted and are dropped.
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
//! [`recover_interrupted_compaction`] runs first thing on open: with a manifest, every
//! group whose `<b0>.log.swap` still exists is finished (steps 3 again; deleting a
//! missing file is fine); then every leftover `.cleaned` and `.swap` file goes, and the
//! manifest with them. Without a manifest the swap never committed and the old segments
//! are intact, so the leftovers are simply removed. Either way the log is the old one or
//! the new one, never a mix.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::log::batch::{compute_crc, BatchHeader, HEADER_BYTES};
use crate::log::handles::{LogStorage, SegmentFile};
use crate::log::records::{self, Record};
use crate::log::segment::{self, segment_path, Segment, MAX_RELATIVE_OFFSET};
use crate::log::{Log, LogConfig};
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
/// What one map entry costs beyond its key bytes (hash table slot, box, offset).
const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Cleaned batches are written in chunks of about this size.
const WRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Source segments are read in chunks of about this size.
const READ_CHUNK_BYTES: usize = 1024 * 1024;
/// "No tombstone waits for its horizon."
const NO_HORIZON: i64 = i64::MAX;

// ---------------------------------------------------------------------------------
// Decide: pure functions over records and the offset map.
// ---------------------------------------------------------------------------------

/// The latest offset of every key in the dirty section, within a memory budget.
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    max_bytes: usize,
}

impl OffsetMap {
    pub fn new(max_bytes: usize) -> Self {
        OffsetMap {
            latest: HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether `keys` more keys of `key_bytes` in total surely fit.
    fn has_room_for(&self, keys: usize, key_bytes: usize) -> bool {
        let needed = key_bytes.saturating_add(keys.saturating_mul(OFFSET_MAP_ENTRY_OVERHEAD_BYTES));
        self.bytes.saturating_add(needed) <= self.max_bytes
    }

    /// Records arrive in offset order, so the last put of a key is its latest offset.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
        } else {
            self.bytes += key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
            self.latest.insert(key.into(), offset);
        }
    }
}

/// What the cleaner needs to know of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// A null value: a delete marker for the key.
    pub tombstone: bool,
}

/// What the cleaner needs to know of the batch holding the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFacts {
    /// Set by an earlier cleaning (KIP-534).
    pub delete_horizon_ms: Option<i64>,
    /// The last batch in the log of an idempotent producer still known to the log.
    pub producers_last_batch: bool,
}

/// What becomes of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDecision {
    /// Nothing changes: copy the batch byte for byte.
    KeepOriginal,
    /// Write a new batch with the records whose `keep` is true; when
    /// `set_delete_horizon`, its retained tombstones start their delete.retention.ms.
    Rewrite {
        keep: Vec<bool>,
        set_delete_horizon: bool,
    },
    /// Every record goes, but the producer's sequence state needs the header.
    KeepEmpty,
    Drop,
}

/// Kafka's rule for one record: a record survives unless it has no key, a later record
/// of its key is in the map (`latest_offset`), or it is a tombstone whose horizon has
/// passed.
pub fn keep_record(
    record: &RecordFacts<'_>,
    latest_offset: Option<i64>,
    tombstones_expired: bool,
) -> bool {
    if record.key.is_none() {
        // A compacted topic refuses keyless records at produce time; older ones (from
        // before the policy changed) cannot be compacted by key and go, as in Kafka.
        return false;
    }
    if latest_offset.is_some_and(|latest| record.offset < latest) {
        return false;
    }
    !(record.tombstone && tombstones_expired)
}

/// Decide one batch, given its records in offset order and the latest offset per key.
pub fn decide_batch(
    records: &[RecordFacts<'_>],
    latest_offset: impl Fn(&[u8]) -> Option<i64>,
    batch: BatchFacts,
    now_ms: i64,
) -> BatchDecision {
    let tombstones_expired = batch.delete_horizon_ms.is_some_and(|h| now_ms >= h);
    let keep: Vec<bool> = records
        .iter()
        .map(|r| keep_record(r, r.key.and_then(&latest_offset), tombstones_expired))
        .collect();
    let kept = keep.iter().filter(|k| **k).count();
    if kept == 0 {
        return if batch.producers_last_batch {
            if records.is_empty() {
                BatchDecision::KeepOriginal
            } else {
                BatchDecision::KeepEmpty
            }
        } else {
            BatchDecision::Drop
        };
    }
    let keeps_tombstone = records.iter().zip(&keep).any(|(r, k)| *k && r.tombstone);
    let set_delete_horizon = keeps_tombstone && batch.delete_horizon_ms.is_none();
    if kept == records.len() && !set_delete_horizon {
        BatchDecision::KeepOriginal
    } else {
        BatchDecision::Rewrite {
            keep,
            set_delete_horizon,
        }
    }
}

/// Kafka's groupSegmentsBySize: consecutive segments whose total size fits in
/// `max_bytes` and whose offsets fit the index's 32-bit relative offsets become one
/// cleaned segment. Returns the number of segments in each group.
pub fn group_by_size(segments: &[(i64, i64, u64)], max_bytes: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let (group_base, _, first_size) = segments[i];
        let mut total = first_size;
        let mut n = 1;
        while let Some(&(base, next_offset, size)) = segments.get(i + n) {
            let last_offset = next_offset.max(base + 1) - 1;
            if total.saturating_add(size) > max_bytes
                || last_offset - group_base > MAX_RELATIVE_OFFSET
            {
                break;
            }
            total += size;
            n += 1;
        }
        groups.push(n);
        i += n;
    }
    groups
}

// ---------------------------------------------------------------------------------
// Plan, run, install.
// ---------------------------------------------------------------------------------

/// A sealed segment as the plan saw it; the open file is how `run` reads it without
/// the log's lock, and how `install` recognises that it is still the same segment.
#[derive(Debug, Clone)]
struct SourceSegment {
    base_offset: i64,
    next_offset: i64,
    size_bytes: u64,
    first_batch_timestamp_ms: Option<i64>,
    file: SegmentFile,
}

impl SourceSegment {
    fn of(s: &Segment) -> Self {
        SourceSegment {
            base_offset: s.base_offset,
            next_offset: s.next_offset,
            size_bytes: s.size_bytes,
            first_batch_timestamp_ms: s.first_batch_timestamp_ms,
            file: s.log.clone(),
        }
    }
}

/// Why a cleaning was planned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CompactionReason {
    /// Dirty bytes exceed `min.cleanable.dirty.ratio` of the cleanable log.
    DirtyRatio(f64),
    /// A dirty record is older than `max.compaction.lag.ms`.
    MaxCompactionLag,
    /// A retained tombstone's delete horizon has passed.
    TombstonesDue,
}

/// What [`Log::plan_compaction`] chose; run it with [`CompactionPlan::run`].
#[derive(Debug)]
pub struct CompactionPlan {
    dir: PathBuf,
    storage: LogStorage,
    config: LogConfig,
    generation: u64,
    now_ms: i64,
    /// Cleanable segments from the log start, in offset order.
    segments: Vec<SourceSegment>,
    first_dirty_offset: i64,
    /// Producer id → last offset of its last batch in the log.
    producers_last_batch: HashMap<i64, i64>,
    pub reason: CompactionReason,
    /// The offset map's memory budget.
    pub offset_map_max_bytes: usize,
}

/// Counters of one cleaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_retained: u64,
    pub keys_mapped: usize,
}

/// Cleaned segments on disk as `.cleaned` files, ready for [`Log::install_compaction`].
#[derive(Debug)]
pub struct CompactionResult {
    dir: PathBuf,
    disk: Disk,
    generation: u64,
    /// Each cleaned segment with the source segments it replaces (the first has its base).
    groups: Vec<Vec<SourceSegment>>,
    next_first_dirty_offset: i64,
    tombstone_horizon_ms: i64,
    pub stats: CompactionStats,
}

impl CompactionResult {
    /// Remove the `.cleaned` files (a result that will not be installed).
    pub fn discard(self) {
        for group in &self.groups {
            remove_segment_files(&self.disk, &self.dir, group[0].base_offset, CLEANED_SUFFIX);
        }
    }
}

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

/// Sequential, CRC-checked reads of the whole batches of a source segment.
struct BatchReader<'a> {
    segment: &'a SourceSegment,
    position: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_position: u64,
}

impl<'a> BatchReader<'a> {
    fn new(segment: &'a SourceSegment) -> Self {
        BatchReader {
            segment,
            position: 0,
            buf: Vec::new(),
            buf_position: 0,
        }
    }

    fn corrupt(&self, reason: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "segment {} position {}: {reason}",
                self.segment.base_offset, self.position
            ),
        )
    }

    /// Make `len` bytes from `self.position` resident.
    fn fill(&mut self, len: u64) -> io::Result<()> {
        let buffered_end = self.buf_position + self.buf.len() as u64;
        if self.position >= self.buf_position && self.position + len <= buffered_end {
            return Ok(());
        }
        let remaining = self.segment.size_bytes - self.position;
        let want = len.max(READ_CHUNK_BYTES as u64).min(remaining);
        self.buf.resize(want as usize, 0);
        self.segment
            .file
            .get()?
            .read_exact_at(&mut self.buf, self.position)?;
        self.buf_position = self.position;
        Ok(())
    }

    /// The next batch's header and its bytes (valid until the next call).
    fn next_batch(&mut self) -> io::Result<Option<(BatchHeader, &[u8])>> {
        let remaining = self.segment.size_bytes.saturating_sub(self.position);
        if remaining == 0 {
            return Ok(None);
        }
        if remaining < HEADER_BYTES as u64 {
            return Err(self.corrupt(format!("{remaining} trailing bytes are not a batch")));
        }
        self.fill(HEADER_BYTES as u64)?;
        let at = (self.position - self.buf_position) as usize;
        let header =
            BatchHeader::parse_prefix(&self.buf[at..]).expect("a whole header is buffered");
        header
            .check_structure()
            .map_err(|e| self.corrupt(e.to_string()))?;
        let size = header.size_bytes();
        if size > remaining {
            return Err(self.corrupt(format!("batch of {size} bytes exceeds the segment")));
        }
        self.fill(size)?;
        let at = (self.position - self.buf_position) as usize;
        let batch = &self.buf[at..at + size as usize];
        if compute_crc(batch) != header.crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "segment {} position {}: CRC-32C mismatch in batch at offset {}",
                    self.segment.base_offset, self.position, header.base_offset
                ),
            ));
        }
        self.position += size;
        Ok(Some((header, batch)))
    }
}

/// Collects cleaned batches and appends them to the `.cleaned` segment in chunks.
struct CleanedWriter {
    segment: Segment,
    pending: Vec<u8>,
    headers: Vec<(usize, BatchHeader)>,
    config: LogConfig,
}

impl CleanedWriter {
    fn push(&mut self, batch: &[u8]) -> io::Result<()> {
        let header = BatchHeader::parse_prefix(batch).expect("the cleaner writes whole batches");
        self.headers.push((self.pending.len(), header));
        self.pending.extend_from_slice(batch);
        if self.pending.len() >= WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.headers.is_empty() {
            self.segment
                .append(&[&self.pending], &self.headers, &self.config)?;
            self.pending.clear();
            self.headers.clear();
        }
        Ok(())
    }

    /// Write the rest, the final time index entry, and fsync; returns the size.
    fn finish(mut self) -> io::Result<u64> {
        self.flush()?;
        self.segment.seal()?;
        Ok(self.segment.size_bytes)
    }
}

impl CompactionPlan {
    /// Clean: build the offset map, then write the cleaned segments as `.cleaned`
    /// files. Pure file I/O over sealed segments; takes no lock. On error nothing is
    /// left behind.
    pub fn run(self) -> io::Result<CompactionResult> {
        let mut created = Vec::new();
        let result = self.run_inner(&mut created);
        if result.is_err() {
            for base in created {
                remove_segment_files(&self.storage.disk, &self.dir, base, CLEANED_SUFFIX);
            }
        }
        result
    }

    fn run_inner(&self, created: &mut Vec<i64>) -> io::Result<CompactionResult> {
        let mut stats = CompactionStats::default();
        let (map, end_offset) = self.build_offset_map()?;
        stats.keys_mapped = map.len();

        let rewrite: Vec<SourceSegment> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < end_offset)
            .cloned()
            .collect();
        let shapes: Vec<(i64, i64, u64)> = rewrite
            .iter()
            .map(|s| (s.base_offset, s.next_offset, s.size_bytes))
            .collect();
        let mut groups = Vec::new();
        let mut tombstone_horizon_ms = NO_HORIZON;
        let mut at = 0;
        for n in group_by_size(&shapes, self.config.segment_bytes) {
            let group = rewrite[at..at + n].to_vec();
            at += n;
            let base = group[0].base_offset;
            created.push(base);
            let segment = Segment::create_with_suffix(
                &self.storage,
                &self.dir,
                base,
                &self.config,
                self.now_ms,
                CLEANED_SUFFIX,
            )?;
            let mut writer = CleanedWriter {
                segment,
                pending: Vec::new(),
                headers: Vec::new(),
                config: self.config.clone(),
            };
            for source in &group {
                stats.segments_read += 1;
                stats.bytes_read += source.size_bytes;
                let horizon = self.clean_segment(source, &map, &mut writer, &mut stats)?;
                tombstone_horizon_ms = tombstone_horizon_ms.min(horizon);
            }
            stats.bytes_written += writer.finish()?;
            stats.segments_written += 1;
            groups.push(group);
        }
        self.storage.disk.sync_dir(&self.dir)?;
        Ok(CompactionResult {
            dir: self.dir.clone(),
            disk: self.storage.disk.clone(),
            generation: self.generation,
            groups,
            next_first_dirty_offset: end_offset,
            tombstone_horizon_ms,
            stats,
        })
    }

    /// The latest offset of every key in the dirty section, and the offset where the
    /// mapped range ends (exclusive): the end of the cleanable segments, or the batch
    /// where the map's budget ran out.
    fn build_offset_map(&self) -> io::Result<(OffsetMap, i64)> {
        let mut map = OffsetMap::new(self.offset_map_max_bytes);
        let first_dirty = self.first_dirty_offset;
        let end = self.segments.last().map_or(first_dirty, |s| s.next_offset);
        for source in self.segments.iter().filter(|s| s.next_offset > first_dirty) {
            let mut reader = BatchReader::new(source);
            while let Some((header, batch)) = reader.next_batch()? {
                if header.last_offset() < first_dirty || records::is_control(&header) {
                    continue;
                }
                let section = records::records_section(batch, &header)?;
                let records = records::parse_records(&header, &section)?;
                let (keys, key_bytes) = records
                    .iter()
                    .filter_map(|r| r.key)
                    .fold((0, 0), |(n, b), k| (n + 1, b + k.len()));
                if !map.is_empty() && !map.has_room_for(keys, key_bytes) {
                    // Full: this batch and the rest stay dirty for the next cleaning.
                    return Ok((map, header.base_offset.max(first_dirty)));
                }
                for r in &records {
                    let offset = header.base_offset + i64::from(r.offset_delta);
                    if let (Some(key), true) = (r.key, offset >= first_dirty) {
                        map.put(key, offset);
                    }
                }
            }
        }
        Ok((map, end))
    }

    /// Write the surviving batches of `source`; returns the earliest delete horizon of
    /// the tombstones it retained.
    fn clean_segment(
        &self,
        source: &SourceSegment,
        map: &OffsetMap,
        writer: &mut CleanedWriter,
        stats: &mut CompactionStats,
    ) -> io::Result<i64> {
        let mut horizon_ms = NO_HORIZON;
        let mut reader = BatchReader::new(source);
        while let Some((header, batch)) = reader.next_batch()? {
            if records::is_control(&header) {
                // Fjord writes no transaction markers; one replicated from elsewhere is
                // kept as it is rather than interpreted.
                writer.push(batch)?;
                continue;
            }
            let section = records::records_section(batch, &header)?;
            let records = records::parse_records(&header, &section)?;
            stats.records_read += records.len() as u64;
            let facts: Vec<RecordFacts<'_>> = records
                .iter()
                .map(|r| RecordFacts {
                    offset: header.base_offset + i64::from(r.offset_delta),
                    key: r.key,
                    tombstone: r.value.is_none(),
                })
                .collect();
            let existing_horizon = records::delete_horizon_ms(&header);
            let batch_facts = BatchFacts {
                delete_horizon_ms: existing_horizon,
                producers_last_batch: header.is_idempotent()
                    && self.producers_last_batch.get(&header.producer_id)
                        == Some(&header.last_offset()),
            };
            match decide_batch(&facts, |k| map.get(k), batch_facts, self.now_ms) {
                BatchDecision::KeepOriginal => {
                    stats.records_retained += records.len() as u64;
                    if facts.iter().any(|f| f.tombstone) {
                        horizon_ms = horizon_ms.min(existing_horizon.unwrap_or(NO_HORIZON));
                    }
                    writer.push(batch)?;
                }
                BatchDecision::Rewrite {
                    keep,
                    set_delete_horizon,
                } => {
                    let kept: Vec<Record<'_>> = records
                        .iter()
                        .zip(&keep)
                        .filter(|(_, k)| **k)
                        .map(|(r, _)| *r)
                        .collect();
                    stats.records_retained += kept.len() as u64;
                    let new_horizon = set_delete_horizon
                        .then(|| self.now_ms.saturating_add(self.config.delete_retention_ms));
                    if kept.iter().any(|r| r.value.is_none()) {
                        let h = new_horizon.or(existing_horizon).unwrap_or(NO_HORIZON);
                        horizon_ms = horizon_ms.min(h);
                    }
                    writer.push(&records::build_batch(&header, &kept, new_horizon)?)?;
                }
                BatchDecision::KeepEmpty => writer.push(&records::build_empty_batch(&header))?,
                BatchDecision::Drop => {}
            }
        }
        Ok(horizon_ms)
    }
}

// ---------------------------------------------------------------------------------
// The log's side: plan under a read lock, install under the write lock, recover.
// ---------------------------------------------------------------------------------

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
        let mut segments = Vec::new();
        for s in self.segments.values() {
            // Never the active segment, nothing at or above the high watermark, nothing
            // newer than min.compaction.lag.ms (Kafka stops at the first such segment).
            if s.base_offset >= active_base
                || s.next_offset > high_watermark
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
        Some(CompactionPlan {
            dir: self.dir.clone(),
            storage: self.storage.clone(),
            config: config.clone(),
            generation: self.generation,
            now_ms,
            segments,
            first_dirty_offset,
            producers_last_batch: self.producers.last_batch_offsets(),
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
        for segment in cleaned {
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

fn encode_manifest(groups: &[Vec<SourceSegment>]) -> String {
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
fn finish_swap(disk: &Disk, dir: &Path, base: i64) -> io::Result<()> {
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

#[cfg(test)]
mod tests;
