//! One segment: a `.log` file of whole batches plus its two sparse indexes.
//!
//! Files are named by the 20-digit zero-padded base offset, as in Kafka. Writes are
//! positional at the in-memory size, so a failed or torn write is never visible to
//! readers (they stop at the in-memory size) and is overwritten by the next append.
//! Every file goes through the storage seam and is held open only while the
//! broker-wide [`FileHandles`](crate::log::handles::FileHandles) allows (the active
//! segment's files are pinned).
//!
//! Loading a segment never changes its files ([`Segment::load`]); what loading found
//! to repair (a torn tail to cut, indexes to rebuild) is done by
//! [`Segment::finish_load`], once the whole log has passed its checks.

use std::io;
use std::path::{Path, PathBuf};

use crate::log::batch::{BatchHeader, TIMESTAMP_TYPE_BIT};
use crate::log::handles::{LogStorage, SegmentFile};
use crate::log::index::{IndexLoad, OffsetIndex, TimeIndex};
use crate::log::records;
use crate::log::txn_index::{TxnIndex, TXN_INDEX_SUFFIX};
use crate::log::LogConfig;
use crate::storage::{DiskFile, FileKind, OpenMode};

mod scan;

pub use self::scan::VerifiedRange;
use self::scan::{read_header, scan_headers, verify_batches, verify_batches_from};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Relative offsets are stored as u32 but Kafka keeps them within i32.
pub const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;
/// Positions in the offset index are u32; Kafka's segment.bytes is an int.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

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

/// The first bad byte of a segment: where its whole, valid batches end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    /// File position of the first byte that is not part of a valid batch.
    pub position: u64,
    /// The offset the next batch would have started at (one past the last valid one).
    pub next_offset: i64,
    pub reason: String,
}

/// What a trusted load of a segment concluded.
enum Trust {
    Trusted(Box<Segment>),
    /// Something does not hold up: check every batch (and rebuild the indexes).
    Verify,
    /// The indexes describe batches the log file does not have.
    Lost(String),
}

/// A segment as [`Segment::load`] found it.
#[derive(Debug)]
pub struct Loaded {
    /// Sized to its valid batches (below `damage`, if any).
    pub segment: Segment,
    /// The file's length on disk.
    pub file_bytes: u64,
    pub damage: Option<SegmentDamage>,
}

pub struct Segment {
    pub base_offset: i64,
    pub log: SegmentFile,
    /// Bytes of whole batches; the file may be longer only transiently (a failed write).
    pub size_bytes: u64,
    /// One past the last offset in the segment (`base_offset` when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The transactions aborted by markers in this segment (`.txnindex`). Empty when
    /// loaded: the log loads it once the segment's end is known.
    pub txn_index: TxnIndex,
    bytes_since_last_index_entry: u64,
    /// Largest batch max timestamp (-1 when none) and the last offset of its batch.
    pub max_timestamp_ms: i64,
    pub offset_of_max_timestamp: i64,
    /// The first batch's max timestamp: segment.ms is measured from it (as Kafka).
    pub first_batch_timestamp_ms: Option<i64>,
    /// When this process created or opened the segment.
    pub created_ms: i64,
    /// The leading bytes this process has checked batch by batch (CRC included), and
    /// the offset after them: written here, recovered, or scrubbed. The scrub starts
    /// where this ends.
    pub verified_bytes: u64,
    pub verified_next_offset: i64,
    /// The scrub found damage here (see `scrub`); it does not look again.
    pub damaged: bool,
    /// The in-memory indexes are empty placeholders until [`Segment::finish_load`]
    /// rebuilds them from the log.
    indexes_stale: bool,
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

impl Drop for Segment {
    /// The segment object is gone (deleted, replaced by a cleaned one, or the log
    /// closed): its paths may name other files from now on, so they are never
    /// reopened through this segment's handles.
    fn drop(&mut self) {
        for file in self.files() {
            file.retire();
        }
    }
}

impl Segment {
    pub fn create(
        storage: &LogStorage,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<Segment> {
        Self::create_with_suffix(storage, dir, base_offset, config, now_ms, "")
    }

    /// A new, active segment whose three file names end in `file_suffix` after the
    /// usual suffix (the cleaner writes `.log.cleaned` and friends).
    pub fn create_with_suffix(
        storage: &LogStorage,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        file_suffix: &str,
    ) -> io::Result<Segment> {
        let path = |suffix: &str| segment_path(dir, base_offset, &format!("{suffix}{file_suffix}"));
        let log = SegmentFile::open_now(
            &storage.handles,
            &storage.disk,
            path(LOG_SUFFIX),
            FileKind::Segment,
            OpenMode::TRUNCATE,
            true,
        )?;
        let offset_index = OffsetIndex::create(
            storage,
            path(INDEX_SUFFIX),
            base_offset,
            config.segment_index_bytes,
        );
        let time_index = TimeIndex::create(
            storage,
            path(TIME_INDEX_SUFFIX),
            base_offset,
            config.segment_index_bytes,
        );
        let txn_index = TxnIndex::empty(storage.disk.clone(), path(TXN_INDEX_SUFFIX));
        Ok(Segment::assemble(
            base_offset,
            log,
            offset_index,
            time_index,
            txn_index,
            now_ms,
        ))
    }

    fn assemble(
        base_offset: i64,
        log: SegmentFile,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        txn_index: TxnIndex,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            txn_index,
            log,
            size_bytes: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_last_index_entry: 0,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp_ms: None,
            created_ms: now_ms,
            verified_bytes: 0,
            verified_next_offset: base_offset,
            damaged: false,
            indexes_stale: false,
        }
    }

    fn files(&self) -> [&SegmentFile; 3] {
        [&self.log, self.offset_index.file(), self.time_index.file()]
    }

    /// Keep the data file open (the active segment) or let the cache close it. The
    /// indexes of the active segment are resident in memory and written on flush, so
    /// their files go through the cache like any other: one pinned descriptor per
    /// partition, as Kafka holds.
    pub fn set_active(&self, active: bool) {
        if active {
            self.log.pin();
        } else {
            self.log.unpin();
        }
    }

    /// Load an existing segment without changing any file. Without `verify` the data
    /// is trusted (it was flushed) but the indexes are sanity-checked and the batch
    /// headers after the last index entry must tile the file; a segment that does not
    /// hold up is verified anyway. Verifying checks every batch (structure, offsets,
    /// CRC-32C) and reports the first bad byte; the indexes are then rebuilt by
    /// [`Segment::finish_load`].
    pub fn load(
        storage: &LogStorage,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        verify: bool,
    ) -> io::Result<Loaded> {
        let log = SegmentFile::existing(
            &storage.handles,
            &storage.disk,
            segment_path(dir, base_offset, LOG_SUFFIX),
            FileKind::Segment,
        );
        let file = log.get()?;
        let file_bytes = file.size_bytes()?;
        let mut lost = None;
        if !verify {
            let trust = Self::load_trusted(
                storage,
                dir,
                base_offset,
                config,
                now_ms,
                &log,
                &file,
                file_bytes,
            )?;
            match trust {
                Trust::Trusted(segment) => {
                    return Ok(Loaded {
                        segment: *segment,
                        file_bytes,
                        damage: None,
                    })
                }
                Trust::Verify => {}
                Trust::Lost(reason) => lost = Some(reason),
            }
        }
        let scan = verify_batches(&file, 0, file_bytes, base_offset, u64::MAX)?;
        let offset_index = OffsetIndex::rebuilt(
            storage,
            segment_path(dir, base_offset, INDEX_SUFFIX),
            base_offset,
            config.segment_index_bytes,
        );
        let time_index = TimeIndex::rebuilt(
            storage,
            segment_path(dir, base_offset, TIME_INDEX_SUFFIX),
            base_offset,
            config.segment_index_bytes,
        );
        let txn_index = TxnIndex::empty(
            storage.disk.clone(),
            segment_path(dir, base_offset, TXN_INDEX_SUFFIX),
        );
        let mut segment = Segment::assemble(
            base_offset,
            log,
            offset_index,
            time_index,
            txn_index,
            now_ms,
        );
        segment.size_bytes = scan.end;
        segment.next_offset = scan.next_offset;
        segment.verified_bytes = scan.end;
        segment.verified_next_offset = scan.next_offset;
        segment.indexes_stale = true;
        // Damage inside the file comes first; if the batches are all valid, the indexes
        // still say some are missing after them.
        let damage =
            scan.damage
                .or(lost.map(|reason| (scan.end, reason)))
                .map(|(position, reason)| SegmentDamage {
                    position,
                    next_offset: scan.next_offset,
                    reason,
                });
        Ok(Loaded {
            segment,
            file_bytes,
            damage,
        })
    }

    /// Load indexes and find the end by scanning headers after the last index entry.
    #[allow(clippy::too_many_arguments)]
    fn load_trusted(
        storage: &LogStorage,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        log: &SegmentFile,
        file: &DiskFile,
        size_bytes: u64,
    ) -> io::Result<Trust> {
        let index_path = segment_path(dir, base_offset, INDEX_SUFFIX);
        let offset_index = match OffsetIndex::load(
            storage,
            index_path.clone(),
            base_offset,
            config.segment_index_bytes,
            size_bytes,
        )? {
            IndexLoad::Usable(index) => index,
            IndexLoad::Rebuild(why) => {
                tracing::warn!(path = %index_path.display(), why, "offset index unusable; checking the segment to rebuild it");
                return Ok(Trust::Verify);
            }
            IndexLoad::PastLogEnd(why) => return Ok(Trust::Lost(why)),
        };
        let (last_indexed_offset, scan_from) =
            offset_index.last_entry().unwrap_or((base_offset - 1, 0));
        let Some(tail) = scan_headers(file, scan_from, size_bytes, base_offset)? else {
            tracing::warn!(
                path = %log.path().display(),
                "segment tail does not match its index; checking the segment"
            );
            return Ok(Trust::Verify);
        };
        if scan_from > 0 && tail.first_last_offset != Some(last_indexed_offset) {
            tracing::warn!(
                path = %index_path.display(),
                "offset index entry does not point at its batch; checking the segment to rebuild it"
            );
            return Ok(Trust::Verify);
        }
        let next_offset = tail.next_offset.unwrap_or(base_offset);
        let time_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let time_index = match TimeIndex::load(
            storage,
            time_path.clone(),
            base_offset,
            config.segment_index_bytes,
            next_offset,
        )? {
            IndexLoad::Usable(index) => index,
            IndexLoad::Rebuild(why) => {
                tracing::warn!(path = %time_path.display(), why, "time index unusable; checking the segment to rebuild it");
                return Ok(Trust::Verify);
            }
            IndexLoad::PastLogEnd(why) => return Ok(Trust::Lost(why)),
        };
        let (mut max_timestamp_ms, mut offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        if tail.max_timestamp_ms > max_timestamp_ms {
            (max_timestamp_ms, offset_of_max_timestamp) =
                (tail.max_timestamp_ms, tail.offset_of_max_timestamp);
        }
        let first_batch_timestamp_ms =
            read_header(file, 0, size_bytes)?.map(|h| h.max_timestamp_ms);
        if size_bytes > 0
            && max_timestamp_ms < 0
            && first_batch_timestamp_ms.is_some_and(|t| t >= 0)
        {
            // Batches carry timestamps but the time index has none: it was lost.
            tracing::warn!(path = %time_path.display(), "time index lost its entries; checking the segment to rebuild it");
            return Ok(Trust::Verify);
        }
        let txn_index = TxnIndex::empty(
            storage.disk.clone(),
            segment_path(dir, base_offset, TXN_INDEX_SUFFIX),
        );
        let mut segment = Segment::assemble(
            base_offset,
            log.clone(),
            offset_index,
            time_index,
            txn_index,
            now_ms,
        );
        segment.size_bytes = size_bytes;
        segment.next_offset = next_offset;
        segment.bytes_since_last_index_entry = size_bytes - scan_from;
        segment.max_timestamp_ms = max_timestamp_ms;
        segment.offset_of_max_timestamp = offset_of_max_timestamp;
        segment.first_batch_timestamp_ms = first_batch_timestamp_ms;
        Ok(Trust::Trusted(Box::new(segment)))
    }

    /// Carry out what [`Segment::load`] found, once the log may be changed: cut the
    /// file to its valid batches, rebuild stale indexes, and pin the files of the
    /// active segment (others drop their index entries from memory).
    pub fn finish_load(
        &mut self,
        config: &LogConfig,
        file_bytes: u64,
        active: bool,
    ) -> io::Result<()> {
        if file_bytes > self.size_bytes {
            self.log.get()?.set_len(self.size_bytes)?;
        }
        if self.indexes_stale {
            self.rebuild_indexes(config, !active)?;
        }
        if active {
            self.set_active(true);
            Ok(())
        } else {
            self.unload_indexes()
        }
    }

    /// Refill both indexes and the timestamp state from the batch headers (already
    /// verified) and write the index files anew.
    fn rebuild_indexes(&mut self, config: &LogConfig, sealed: bool) -> io::Result<()> {
        let file = self.log.get()?;
        let (size_bytes, next_offset) = (self.size_bytes, self.next_offset);
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp_ms = None;
        let mut position = 0;
        while let Some(header) = read_header(&file, position, size_bytes)? {
            self.index_batch(&header, position, config)?;
            position += header.size_bytes();
        }
        if position != size_bytes || self.next_offset != next_offset {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: batches changed while the indexes were rebuilt (end {position}, expected {size_bytes})",
                    self.log.path().display()
                ),
            ));
        }
        if sealed {
            self.time_index.maybe_push(
                self.max_timestamp_ms,
                self.offset_of_max_timestamp,
                true,
            )?;
        }
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        self.indexes_stale = false;
        Ok(())
    }

    /// Check the batches in `[from, end)` as recovery does, at most about `max_bytes`
    /// of them (whole batches): the scrub's unit of work. `next_offset` is the offset
    /// the batch at `from` must not start below.
    pub fn verify_range(
        file: &DiskFile,
        from: u64,
        end: u64,
        base_offset: i64,
        next_offset: i64,
        max_bytes: u64,
    ) -> io::Result<VerifiedRange> {
        verify_batches_from(file, from, end, base_offset, next_offset, max_bytes)
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
    /// concatenation of `data`) with one positional vectored write. On an error nothing
    /// is visible: the in-memory end has not moved and bytes that landed past it are
    /// cut (or overwritten by the next append).
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
        let file = self.log.get()?;
        if let Err(e) = file.write_all_vectored_at(data, position) {
            let _ = file.set_len(position);
            return Err(e);
        }
        for (at, header) in headers {
            self.index_batch(header, position + *at as u64, config)?;
        }
        self.size_bytes = position + len as u64;
        if self.verified_bytes == position {
            // Appended batches were checked (CRC included) before they were written.
            self.verified_bytes = self.size_bytes;
            self.verified_next_offset = self.next_offset;
        }
        // The batches are in the log now; index files are derived from it, so a failed
        // index write leaves the entries pending for the next write (a flush or roll
        // reports it) rather than failing an append that is already visible.
        if let Err(e) = self
            .offset_index
            .write_pending()
            .and_then(|()| self.time_index.write_pending())
        {
            tracing::warn!(path = %self.log.path().display(), error = %e, "writing index entries failed; kept pending");
        }
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
        // Bytes of a failed write that could not be cut then would read as damage
        // once the segment is trusted.
        let file = self.log.get()?;
        if file.size_bytes()? > self.size_bytes {
            file.set_len(self.size_bytes)?;
        }
        self.txn_index.sync()?;
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
    pub fn flush_files(&mut self, files: &mut Vec<DiskFile>) -> io::Result<()> {
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        for file in self.files() {
            files.push(file.get()?);
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        let mut files = Vec::with_capacity(3);
        self.flush_files(&mut files)?;
        files.iter().try_for_each(|f| f.sync_data())
    }

    /// The header of the batch starting at `position`, if a whole header is there.
    pub fn read_header(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        read_header(&self.log.get()?, position, self.size_bytes)
    }

    /// The first batch whose last offset is >= `offset`, with its position.
    ///
    /// A sealed segment's index is only sanity-checked when loaded (its last entry), so
    /// every lookup checks the entry it used: the batch there must end at the entry's
    /// offset. A wrong entry costs a scan from the segment start, never a slice that
    /// starts in the middle of a batch; a header that is not a batch is an error.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let (indexed_offset, mut position) = self.offset_index.lookup(offset)?;
        let mut from_index = position > 0;
        let file = self.log.get()?;
        while let Some(header) = read_header(&file, position, self.size_bytes)? {
            let sound = header.check_structure().is_ok()
                && position + header.size_bytes() <= self.size_bytes;
            if from_index && (!sound || header.last_offset() != indexed_offset) {
                tracing::warn!(
                    path = %self.offset_index.file().path().display(),
                    offset = indexed_offset,
                    position,
                    "offset index entry does not point at its batch; scanning the segment"
                );
                (position, from_index) = (0, false);
                continue;
            }
            if !sound {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: no valid batch header at byte {position}",
                        self.log.path().display()
                    ),
                ));
            }
            from_index = false;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes();
        }
        Ok(None)
    }

    /// The end of the last whole batch that ends at or before `limit` (a batch start,
    /// found from the index and a short scan).
    pub fn boundary_at_or_below(&self, limit: u64) -> io::Result<u64> {
        let mut position = self.offset_index.lookup_position(limit)?;
        let file = self.log.get()?;
        while position < limit {
            let Some(header) = read_header(&file, position, self.size_bytes)? else {
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
        let file = self.log.get()?;
        while let Some(header) = read_header(&file, position, self.size_bytes)? {
            if header.max_timestamp_ms >= timestamp_ms {
                return Ok(Some(first_record_at_or_after(
                    &file,
                    position,
                    &header,
                    timestamp_ms,
                )));
            }
            position += header.size_bytes().max(1);
        }
        Ok(None)
    }

    /// Drop every batch that holds an offset >= `offset` (a batch holding it is
    /// dropped whole, as in Kafka). Returns the new next offset.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<i64> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(self.next_offset);
        };
        // Indexes first: an index left longer than its log reads as lost data on the
        // next open, a log left longer than its index is only scanned further.
        self.txn_index.truncate_to(offset)?;
        self.offset_index.truncate_to(offset)?;
        self.time_index.truncate_to(offset)?;
        let file = self.log.get()?;
        file.set_len(position)?;
        self.size_bytes = position;
        self.next_offset = if position == 0 {
            self.base_offset
        } else {
            header.base_offset
        };
        if self.verified_bytes > position {
            (self.verified_bytes, self.verified_next_offset) = (position, self.next_offset);
        }
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
        let tail =
            scan_headers(&file, scan_from, self.size_bytes, self.base_offset)?.unwrap_or_default();
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
            .get()
            .and_then(|f| f.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    /// Remove the files; readers holding an `Arc<File>` keep reading the unlinked data.
    pub fn delete_files(&self) -> io::Result<()> {
        for file in self.files() {
            file.remove()?;
        }
        self.txn_index.delete()
    }
}

/// The first record of the batch at `position` whose timestamp is >= `timestamp_ms`;
/// the batch's own (base offset, max timestamp) when its records cannot tell.
fn first_record_at_or_after(
    file: &DiskFile,
    position: u64,
    header: &BatchHeader,
    timestamp_ms: i64,
) -> (i64, i64) {
    let batch_level = (header.base_offset, header.max_timestamp_ms);
    if header.attributes & TIMESTAMP_TYPE_BIT != 0 {
        return batch_level;
    }
    let mut batch = vec![0u8; usize::try_from(header.size_bytes()).unwrap_or(0)];
    if let Err(e) = file.read_exact_at(&mut batch, position) {
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
