//! Plan and run: what a cleaning was planned to do ([`CompactionPlan`]), and running
//! it without the log's lock: build the offset map over the dirty section, then read
//! each source segment batch by batch and write the cleaned ones as `.cleaned` files
//! ([`CompactionResult`]). Sealed segments below the high watermark are immutable, so
//! this part touches only files the log no longer writes.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use super::decide::{
    decide_batch, group_by_size, BatchDecision, BatchFacts, OffsetMap, RecordFacts, TxnCleaning,
};
use super::{remove_segment_files, CLEANED_SUFFIX, NO_HORIZON};
use crate::log::batch::{compute_crc, BatchHeader, HEADER_BYTES};
use crate::log::handles::{LogStorage, SegmentFile};
use crate::log::records::{self, Record};
use crate::log::segment::Segment;
use crate::log::txn::EndTxnMarker;
use crate::log::txn_index::AbortedTxn;
use crate::log::LogConfig;
use crate::storage::Disk;

/// Cleaned batches are written in chunks of about this size.
const WRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// Source segments are read in chunks of about this size.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// A sealed segment as the plan saw it; the open file is how `run` reads it without
/// the log's lock, and how `install` recognises that it is still the same segment.
#[derive(Debug, Clone)]
pub(super) struct SourceSegment {
    pub(super) base_offset: i64,
    pub(super) next_offset: i64,
    pub(super) size_bytes: u64,
    pub(super) first_batch_timestamp_ms: Option<i64>,
    pub(super) file: SegmentFile,
}

impl SourceSegment {
    pub(super) fn of(s: &Segment) -> Self {
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

/// What [`Log::plan_compaction`](crate::log::Log::plan_compaction) chose; run it with
/// [`CompactionPlan::run`].
#[derive(Debug)]
pub struct CompactionPlan {
    pub(super) dir: PathBuf,
    pub(super) storage: LogStorage,
    pub(super) config: LogConfig,
    pub(super) generation: u64,
    pub(super) now_ms: i64,
    /// Cleanable segments from the log start, in offset order.
    pub(super) segments: Vec<SourceSegment>,
    pub(super) first_dirty_offset: i64,
    /// Producer id → last offset of its last batch in the log.
    pub(super) producers_last_batch: HashMap<i64, i64>,
    /// The aborted transactions with data in the cleanable segments.
    pub(super) aborted: Vec<AbortedTxn>,
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

/// Cleaned segments on disk as `.cleaned` files, ready for
/// [`Log::install_compaction`](crate::log::Log::install_compaction).
#[derive(Debug)]
pub struct CompactionResult {
    pub(super) dir: PathBuf,
    pub(super) disk: Disk,
    pub(super) generation: u64,
    /// Each cleaned segment with the source segments it replaces (the first has its base).
    pub(super) groups: Vec<Vec<SourceSegment>>,
    /// Each cleaned segment's aborted-transaction index: the aborts whose markers it
    /// kept.
    pub(super) aborted: Vec<Vec<AbortedTxn>>,
    pub(super) next_first_dirty_offset: i64,
    pub(super) tombstone_horizon_ms: i64,
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
    /// The aborted transactions whose markers were kept.
    aborted: Vec<AbortedTxn>,
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

    /// Write the rest, the final time index entry, and fsync; returns the size and
    /// the aborted transactions of the cleaned segment.
    fn finish(mut self) -> io::Result<(u64, Vec<AbortedTxn>)> {
        self.flush()?;
        self.segment.seal()?;
        Ok((self.segment.size_bytes, std::mem::take(&mut self.aborted)))
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
        let mut aborted = Vec::new();
        let mut txns = TxnCleaning::new(self.aborted.clone());
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
                aborted: Vec::new(),
            };
            for source in &group {
                stats.segments_read += 1;
                stats.bytes_read += source.size_bytes;
                let horizon =
                    self.clean_segment(source, &map, &mut txns, &mut writer, &mut stats)?;
                tombstone_horizon_ms = tombstone_horizon_ms.min(horizon);
            }
            let (bytes, group_aborted) = writer.finish()?;
            stats.bytes_written += bytes;
            stats.segments_written += 1;
            groups.push(group);
            aborted.push(group_aborted);
        }
        self.storage.disk.sync_dir(&self.dir)?;
        Ok(CompactionResult {
            dir: self.dir.clone(),
            disk: self.storage.disk.clone(),
            generation: self.generation,
            groups,
            aborted,
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
        // Records of aborted transactions are not mapped: they must not hide an earlier
        // committed record of their key.
        let mut txns = TxnCleaning::new(self.aborted.clone());
        for source in self.segments.iter().filter(|s| s.next_offset > first_dirty) {
            let mut reader = BatchReader::new(source);
            while let Some((header, batch)) = reader.next_batch()? {
                if records::is_control(&header) {
                    if let Some(m) = EndTxnMarker::parse(batch).map_err(io::Error::other)? {
                        txns.on_marker(m.producer_id, header.base_offset, m.commit);
                    }
                    continue;
                }
                let aborted = txns.on_data_batch(
                    header.producer_id,
                    header.last_offset(),
                    header.is_transactional(),
                );
                if header.last_offset() < first_dirty || aborted {
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
        txns: &mut TxnCleaning,
        writer: &mut CleanedWriter,
        stats: &mut CompactionStats,
    ) -> io::Result<i64> {
        let mut horizon_ms = NO_HORIZON;
        let mut reader = BatchReader::new(source);
        while let Some((header, batch)) = reader.next_batch()? {
            let producers_last_batch = header.is_idempotent()
                && self.producers_last_batch.get(&header.producer_id)
                    == Some(&header.last_offset());
            if records::is_control(&header) {
                if let Some(h) = self.clean_marker(&header, batch, txns, writer)? {
                    horizon_ms = horizon_ms.min(h);
                }
                continue;
            }
            let section = records::records_section(batch, &header)?;
            let records = records::parse_records(&header, &section)?;
            stats.records_read += records.len() as u64;
            if txns.on_data_batch(
                header.producer_id,
                header.last_offset(),
                header.is_transactional(),
            ) {
                // An aborted transaction's batch goes whole (emptied when the
                // producer's sequence state needs its header).
                if producers_last_batch {
                    writer.push(&records::build_empty_batch(&header))?;
                }
                continue;
            }
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
                producers_last_batch,
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

    /// A control batch: a marker goes once its transaction has no data left and its
    /// delete horizon (set by the cleaning that first found it removable, KIP-534)
    /// passed; until then it is kept, and an abort marker keeps its index entry.
    /// Returns the delete horizon of a marker kept with one.
    fn clean_marker(
        &self,
        header: &BatchHeader,
        batch: &[u8],
        txns: &mut TxnCleaning,
        writer: &mut CleanedWriter,
    ) -> io::Result<Option<i64>> {
        let Some(marker) = EndTxnMarker::parse(batch).map_err(io::Error::other)? else {
            // A control batch of a type Fjord does not know is kept as it is.
            writer.push(batch)?;
            return Ok(None);
        };
        let fate = txns.on_marker(marker.producer_id, header.base_offset, marker.commit);
        let existing = records::delete_horizon_ms(header);
        let horizon = match (fate.removable, existing) {
            (true, Some(h)) if self.now_ms >= h => return Ok(None),
            (true, Some(h)) => {
                writer.push(batch)?;
                Some(h)
            }
            (true, None) => {
                let h = self.now_ms.saturating_add(self.config.delete_retention_ms);
                let section = records::records_section(batch, header)?;
                let records = records::parse_records(header, &section)?;
                writer.push(&records::build_batch(header, &records, Some(h))?)?;
                Some(h)
            }
            (false, _) => {
                writer.push(batch)?;
                None
            }
        };
        writer.aborted.extend(fate.aborted);
        Ok(horizon)
    }
}
