//! One segment: a `.log` file of whole batches plus its two sparse indexes.
//!
//! Files are named by the 20-digit zero-padded base offset, as in Kafka. Writes are
//! positional at the in-memory size, so a failed or torn write is never visible to
//! readers (they stop at the in-memory size) and is overwritten by the next append.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::uio::pwritev;

use crate::log::batch::{BatchHeader, HEADER_BYTES, TIMESTAMP_TYPE_BIT};
use crate::log::index::{OffsetIndex, TimeIndex};
use crate::log::records;
use crate::log::LogConfig;

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Relative offsets are stored as u32 but Kafka keeps them within i32.
pub const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;
/// Positions in the offset index are u32; Kafka's segment.bytes is an int.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// Chunk size for CRC checks during recovery: memory stays bounded whatever a
/// (possibly corrupt) length field claims.
const RECOVERY_CHUNK_BYTES: usize = 64 * 1024;

pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Parse `<20 digits>.<suffix>` file names.
pub fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// What recovery of one segment found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    pub valid_batches: u64,
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
}

pub struct Segment {
    pub base_offset: i64,
    pub log: Arc<File>,
    dir: PathBuf,
    /// Bytes of whole batches; the file may be longer only transiently (a failed write).
    pub size_bytes: u64,
    /// One past the last offset in the segment (`base_offset` when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_last_index_entry: u64,
    /// Largest batch max timestamp (-1 when none) and the last offset of its batch.
    pub max_timestamp_ms: i64,
    pub offset_of_max_timestamp: i64,
    /// The first batch's max timestamp: segment.ms is measured from it (as Kafka).
    pub first_batch_timestamp_ms: Option<i64>,
    /// When this process created or opened the segment.
    pub created_ms: i64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("next_offset", &self.next_offset)
            .field("size_bytes", &self.size_bytes)
            .finish()
    }
}

fn open_log_file(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

impl Segment {
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<Segment> {
        Self::create_with_suffix(dir, base_offset, config, now_ms, "")
    }

    /// A new segment whose three file names end in `file_suffix` after the usual
    /// suffix (the cleaner writes `.log.cleaned` and friends). Only the writing
    /// methods may be used on it: `delete_files` knows the plain names only.
    pub fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        file_suffix: &str,
    ) -> io::Result<Segment> {
        let path = |suffix: &str| segment_path(dir, base_offset, &format!("{suffix}{file_suffix}"));
        let log = open_log_file(&path(LOG_SUFFIX), true)?;
        Ok(Segment {
            base_offset,
            log: Arc::new(log),
            dir: dir.to_path_buf(),
            size_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::create(
                &path(INDEX_SUFFIX),
                base_offset,
                config.segment_index_bytes,
            )?,
            time_index: TimeIndex::create(
                &path(TIME_INDEX_SUFFIX),
                base_offset,
                config.segment_index_bytes,
            )?,
            bytes_since_last_index_entry: 0,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp_ms: None,
            created_ms: now_ms,
        })
    }

    /// Open an existing segment. Without `recover` the data is trusted (it was flushed)
    /// but the indexes are sanity-checked; a segment whose indexes or tail do not hold
    /// up is recovered anyway. Returns the recovery stats when it was recovered.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        recover: bool,
    ) -> io::Result<(Segment, Option<RecoveryStats>)> {
        let log = open_log_file(&segment_path(dir, base_offset, LOG_SUFFIX), false)?;
        let size_bytes = log.metadata()?.len();
        let loaded = if recover {
            None
        } else {
            Self::load_trusted(dir, base_offset, config, now_ms, &log, size_bytes)?
        };
        if let Some(segment) = loaded {
            return Ok((segment, None));
        }
        let mut segment =
            Segment::create_indexes_for(dir, base_offset, config, now_ms, log, size_bytes)?;
        let stats = segment.recover(config)?;
        Ok((segment, Some(stats)))
    }

    fn create_indexes_for(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        log: File,
        size_bytes: u64,
    ) -> io::Result<Segment> {
        Ok(Segment {
            base_offset,
            log: Arc::new(log),
            dir: dir.to_path_buf(),
            size_bytes,
            next_offset: base_offset,
            offset_index: OffsetIndex::create(
                &segment_path(dir, base_offset, INDEX_SUFFIX),
                base_offset,
                config.segment_index_bytes,
            )?,
            time_index: TimeIndex::create(
                &segment_path(dir, base_offset, TIME_INDEX_SUFFIX),
                base_offset,
                config.segment_index_bytes,
            )?,
            bytes_since_last_index_entry: 0,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp_ms: None,
            created_ms: now_ms,
        })
    }

    /// Load indexes and find the end by scanning headers after the last index entry.
    /// `None`: something does not hold up, recover instead.
    fn load_trusted(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        log: &File,
        size_bytes: u64,
    ) -> io::Result<Option<Segment>> {
        let index_path = segment_path(dir, base_offset, INDEX_SUFFIX);
        let Some(offset_index) = OffsetIndex::load(
            &index_path,
            base_offset,
            config.segment_index_bytes,
            size_bytes,
        )?
        else {
            tracing::warn!(path = %index_path.display(), "offset index missing or inconsistent; rebuilding");
            return Ok(None);
        };
        let (last_indexed_offset, scan_from) =
            offset_index.last_entry().unwrap_or((base_offset - 1, 0));
        let Some(tail) = scan_headers(log, scan_from, size_bytes, base_offset)? else {
            tracing::warn!(
                base_offset,
                "segment tail does not match its index; recovering the segment"
            );
            return Ok(None);
        };
        if scan_from > 0 && tail.first_last_offset != Some(last_indexed_offset) {
            tracing::warn!(
                base_offset,
                "offset index entry does not point at its batch; rebuilding"
            );
            return Ok(None);
        }
        let next_offset = tail.next_offset.unwrap_or(base_offset);
        let time_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let Some(time_index) = TimeIndex::load(
            &time_path,
            base_offset,
            config.segment_index_bytes,
            next_offset,
        )?
        else {
            tracing::warn!(path = %time_path.display(), "time index missing or inconsistent; rebuilding");
            return Ok(None);
        };
        let (mut max_timestamp_ms, mut offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        if tail.max_timestamp_ms > max_timestamp_ms {
            (max_timestamp_ms, offset_of_max_timestamp) =
                (tail.max_timestamp_ms, tail.offset_of_max_timestamp);
        }
        let first_batch_timestamp_ms = read_header(log, 0, size_bytes)?.map(|h| h.max_timestamp_ms);
        if size_bytes > 0
            && max_timestamp_ms < 0
            && first_batch_timestamp_ms.is_some_and(|t| t >= 0)
        {
            // Batches carry timestamps but the time index has none: it was lost.
            return Ok(None);
        }
        Ok(Some(Segment {
            base_offset,
            log: Arc::new(log.try_clone()?),
            dir: dir.to_path_buf(),
            size_bytes,
            next_offset,
            offset_index,
            time_index,
            bytes_since_last_index_entry: size_bytes - scan_from,
            max_timestamp_ms,
            offset_of_max_timestamp,
            first_batch_timestamp_ms,
            created_ms: now_ms,
        }))
    }

    /// Validate every batch (structure, length, CRC-32C, increasing offsets), rebuild
    /// both indexes, and truncate the file at the first bad byte.
    pub fn recover(&mut self, config: &LogConfig) -> io::Result<RecoveryStats> {
        let file_len = self.log.metadata()?.len();
        self.offset_index.truncate_to(i64::MIN)?;
        self.time_index.truncate_to(i64::MIN)?;
        self.size_bytes = 0;
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp_ms = None;
        let mut stats = RecoveryStats::default();
        let mut chunk = vec![0u8; RECOVERY_CHUNK_BYTES];
        let mut pos = 0u64;
        while let Some(header) = read_header(&self.log, pos, file_len)? {
            if header.check_structure().is_err()
                || pos + header.size_bytes() > file_len
                || header.base_offset < self.next_offset
                || header.last_offset() - self.base_offset > MAX_RELATIVE_OFFSET
                || !crc_matches(&self.log, pos, &header, &mut chunk)?
            {
                break;
            }
            self.index_batch(&header, pos, config)?;
            pos += header.size_bytes();
            self.size_bytes = pos;
            stats.valid_batches += 1;
        }
        stats.valid_bytes = self.size_bytes;
        stats.truncated_bytes = file_len - self.size_bytes;
        if stats.truncated_bytes > 0 {
            self.log.set_len(self.size_bytes)?;
        }
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        Ok(stats)
    }

    /// Account a batch written at `position`: max timestamp, then the sparse index
    /// entries (Kafka adds one once more than index.interval.bytes went unindexed).
    fn index_batch(
        &mut self,
        header: &BatchHeader,
        position: u64,
        config: &LogConfig,
    ) -> io::Result<()> {
        debug_assert!(header.base_offset >= self.next_offset);
        if header.max_timestamp_ms > self.max_timestamp_ms {
            self.max_timestamp_ms = header.max_timestamp_ms;
            self.offset_of_max_timestamp = header.last_offset();
        }
        self.first_batch_timestamp_ms
            .get_or_insert(header.max_timestamp_ms);
        if self.bytes_since_last_index_entry > config.index_interval_bytes {
            self.offset_index.push(header.last_offset(), position)?;
            self.time_index.maybe_push(
                self.max_timestamp_ms,
                self.offset_of_max_timestamp,
                false,
            )?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size_bytes();
        self.next_offset = header.last_offset() + 1;
        Ok(())
    }

    /// Append already validated batches (`headers` with their positions in the
    /// concatenation of `data`) with one positional vectored write.
    pub fn append(
        &mut self,
        data: &[&[u8]],
        headers: &[(usize, BatchHeader)],
        config: &LogConfig,
    ) -> io::Result<()> {
        let len: usize = data.iter().map(|d| d.len()).sum();
        debug_assert_eq!(
            headers.iter().map(|(_, h)| h.size_bytes()).sum::<u64>(),
            len as u64
        );
        let position = self.size_bytes;
        if let Err(e) = write_all_vectored_at(&self.log, data, position) {
            // The in-memory size still marks the end; drop whatever part did land.
            let _ = self.log.set_len(position);
            return Err(e);
        }
        for (at, header) in headers {
            self.index_batch(header, position + *at as u64, config)?;
        }
        self.size_bytes = position + len as u64;
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        Ok(())
    }

    /// Kafka's roll conditions for an append of `batch_bytes` whose max timestamp is
    /// `batch_max_timestamp_ms` and last offset `last_offset`.
    pub fn should_roll(
        &self,
        batch_bytes: u64,
        batch_max_timestamp_ms: i64,
        last_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> bool {
        if self.size_bytes == 0 {
            return false;
        }
        let waited_ms = match self.first_batch_timestamp_ms {
            Some(first) if first >= 0 => batch_max_timestamp_ms.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        self.size_bytes + batch_bytes > config.segment_bytes.min(MAX_SEGMENT_BYTES)
            || waited_ms > config.segment_ms
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > MAX_RELATIVE_OFFSET
    }

    /// Write the final time index entry, fsync everything and drop the in-memory index
    /// entries (on roll and close).
    pub fn seal(&mut self) -> io::Result<()> {
        self.time_index
            .maybe_push(self.max_timestamp_ms, self.offset_of_max_timestamp, true)?;
        self.flush()?;
        self.unload_indexes()
    }

    /// Sealed segments answer index lookups from the files (see `index`).
    pub fn unload_indexes(&mut self) -> io::Result<()> {
        self.offset_index.unload()?;
        self.time_index.unload()
    }

    /// Write the pending index entries and add the files to sync to `files` (the
    /// split form of [`Segment::flush`]).
    pub fn flush_files(&mut self, files: &mut Vec<Arc<File>>) -> io::Result<()> {
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        files.extend([
            self.log.clone(),
            self.offset_index.file(),
            self.time_index.file(),
        ]);
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        let mut files = Vec::with_capacity(3);
        self.flush_files(&mut files)?;
        files.iter().try_for_each(|f| f.sync_data())
    }

    /// The header of the batch starting at `position`, if a whole header is there.
    pub fn read_header(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        read_header(&self.log, position, self.size_bytes)
    }

    /// The first batch whose last offset is >= `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let (_, mut position) = self.offset_index.lookup(offset)?;
        while let Some(header) = self.read_header(position)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes().max(1);
        }
        Ok(None)
    }

    /// The end of the last whole batch that ends at or before `limit` (a batch start,
    /// found from the index and a short scan).
    pub fn boundary_at_or_below(&self, limit: u64) -> io::Result<u64> {
        let mut position = self.offset_index.lookup_position(limit)?;
        while position < limit {
            let Some(header) = self.read_header(position)? else {
                break;
            };
            let end = position + header.size_bytes().max(1);
            if end > limit {
                break;
            }
            position = end;
        }
        Ok(position)
    }

    /// The first record whose timestamp is >= `timestamp_ms`: (offset, timestamp).
    /// Batch headers narrow the search to one batch; only that batch's records are
    /// decoded (ListOffsets by time is rare, so the per-record work stays off the hot
    /// paths). With LogAppendTime every record carries the batch's max timestamp.
    pub fn find_by_timestamp(&self, timestamp_ms: i64) -> io::Result<Option<(i64, i64)>> {
        let from_offset = self
            .time_index
            .lookup_before(timestamp_ms)?
            .unwrap_or(self.base_offset);
        let (_, mut position) = self.offset_index.lookup(from_offset)?;
        while let Some(header) = self.read_header(position)? {
            if header.max_timestamp_ms >= timestamp_ms {
                return Ok(Some(self.first_record_at_or_after(
                    position,
                    &header,
                    timestamp_ms,
                )));
            }
            position += header.size_bytes().max(1);
        }
        Ok(None)
    }

    fn first_record_at_or_after(
        &self,
        position: u64,
        header: &BatchHeader,
        timestamp_ms: i64,
    ) -> (i64, i64) {
        let batch_level = (header.base_offset, header.max_timestamp_ms);
        if header.attributes & TIMESTAMP_TYPE_BIT != 0 {
            return batch_level;
        }
        let mut batch = vec![0u8; usize::try_from(header.size_bytes()).unwrap_or(0)];
        if let Err(e) = self.log.read_exact_at(&mut batch, position) {
            tracing::warn!(base_offset = header.base_offset, error = %e, "reading batch for a time lookup");
            return batch_level;
        }
        let found = records::records_section(&batch, header).and_then(|section| {
            let records = records::parse_records(header, &section)?;
            Ok(records.iter().find_map(|r| {
                let ts = header.base_timestamp_ms.saturating_add(r.timestamp_delta);
                (ts >= timestamp_ms).then(|| (header.base_offset + i64::from(r.offset_delta), ts))
            }))
        });
        match found {
            Ok(Some(hit)) => hit,
            Ok(None) => batch_level,
            Err(e) => {
                tracing::warn!(base_offset = header.base_offset, error = %e, "decoding batch for a time lookup");
                batch_level
            }
        }
    }

    /// Drop every batch that holds an offset >= `offset` (a batch holding it is
    /// dropped whole, as in Kafka). Returns the new next offset.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<i64> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(self.next_offset);
        };
        self.log.set_len(position)?;
        self.size_bytes = position;
        self.next_offset = if position == 0 {
            self.base_offset
        } else {
            header.base_offset
        };
        self.offset_index.truncate_to(offset)?;
        self.time_index.truncate_to(offset)?;
        // Recompute the tail state from the last surviving time index entry's batch:
        // every batch before it is no newer than that entry.
        let (ts, ts_offset) = self
            .time_index
            .last_entry()
            .unwrap_or((-1, self.base_offset));
        let scan_from = if ts < 0 {
            0
        } else {
            self.offset_index.lookup(ts_offset)?.1
        };
        let tail = scan_headers(&self.log, scan_from, self.size_bytes, self.base_offset)?
            .unwrap_or_default();
        (self.max_timestamp_ms, self.offset_of_max_timestamp) = (ts, ts_offset);
        if tail.max_timestamp_ms > ts {
            (self.max_timestamp_ms, self.offset_of_max_timestamp) =
                (tail.max_timestamp_ms, tail.offset_of_max_timestamp);
        }
        if position == 0 {
            self.first_batch_timestamp_ms = None;
            self.offset_of_max_timestamp = self.base_offset;
        }
        let last_indexed = self.offset_index.last_entry().map_or(0, |(_, p)| p);
        self.bytes_since_last_index_entry = self.size_bytes - last_indexed;
        Ok(self.next_offset)
    }

    /// The segment's newest timestamp for retention: its max timestamp, else the file's
    /// modification time (as Kafka).
    pub fn largest_timestamp_ms(&self) -> i64 {
        if self.max_timestamp_ms >= 0 {
            return self.max_timestamp_ms;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    /// Remove the files; readers holding the `Arc<File>` keep reading the unlinked data.
    pub fn delete_files(&self) -> io::Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match std::fs::remove_file(segment_path(&self.dir, self.base_offset, suffix)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Write all of `parts` at `position`: one `pwritev` unless the kernel writes short.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut position: u64) -> io::Result<()> {
    let mut bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut slices = &mut bufs[..];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let offset = libc::off_t::try_from(position).map_err(io::Error::other)?;
        let written = pwritev(file, slices, offset)?;
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "segment write made no progress",
            ));
        }
        position += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

fn read_header(file: &File, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
    if position.saturating_add(HEADER_BYTES as u64) > end {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut buf, position)?;
    Ok(Some(BatchHeader::parse(&buf)))
}

/// Stream the batch's CRC-covered bytes through a bounded buffer.
fn crc_matches(
    file: &File,
    position: u64,
    header: &BatchHeader,
    chunk: &mut [u8],
) -> io::Result<bool> {
    let mut at = position + 21;
    let end = position + header.size_bytes();
    let mut crc = 0u32;
    while at < end {
        let n = chunk.len().min((end - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        at += n as u64;
    }
    Ok(crc == header.crc)
}

#[derive(Debug, Default)]
struct TailScan {
    next_offset: Option<i64>,
    first_last_offset: Option<i64>,
    max_timestamp_ms: i64,
    offset_of_max_timestamp: i64,
}

/// Walk headers from `position` to `end`; `None` unless they tile the range exactly
/// with sane headers and increasing offsets.
fn scan_headers(
    file: &File,
    mut position: u64,
    end: u64,
    base_offset: i64,
) -> io::Result<Option<TailScan>> {
    let mut scan = TailScan {
        max_timestamp_ms: -1,
        ..TailScan::default()
    };
    let mut expected = base_offset;
    while position < end {
        let Some(header) = read_header(file, position, end)? else {
            return Ok(None);
        };
        if header.check_structure().is_err()
            || position + header.size_bytes() > end
            || header.base_offset < expected
            || header.last_offset() - base_offset > MAX_RELATIVE_OFFSET
        {
            return Ok(None);
        }
        scan.first_last_offset.get_or_insert(header.last_offset());
        if header.max_timestamp_ms > scan.max_timestamp_ms {
            scan.max_timestamp_ms = header.max_timestamp_ms;
            scan.offset_of_max_timestamp = header.last_offset();
        }
        expected = header.last_offset() + 1;
        scan.next_offset = Some(expected);
        position += header.size_bytes();
    }
    Ok(Some(scan))
}

/// Validation for batches given to [`Segment::append`] by a follower append.
pub fn check_follower_batches(
    headers: &[(usize, BatchHeader)],
    mut next_offset: i64,
) -> Result<(), String> {
    for (_, h) in headers {
        if h.base_offset < next_offset {
            return Err(format!(
                "batch base offset {} is below the expected {next_offset}",
                h.base_offset
            ));
        }
        next_offset = h.last_offset() + 1;
    }
    Ok(())
}
