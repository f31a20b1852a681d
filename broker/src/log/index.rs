//! Sparse offset (`.index`) and time (`.timeindex`) indexes of one segment.
//!
//! Kafka's file formats, big-endian: an offset entry is (offset relative to the
//! segment base u32, file position u32), pointing at the start of a batch whose last
//! offset is the entry's offset; a time entry is (timestamp i64, relative offset u32):
//! the largest timestamp seen so far and the batch where it appeared.
//!
//! The active segment keeps its entries in memory (bounded by `segment.index.bytes`)
//! and appends them with positional writes. Sealed segments drop them and binary-search
//! the file with `pread` (page-cache hits in practice), so memory does not grow with
//! the number of segments; Kafka gets the same effect from mmap.

use std::io;
use std::path::{Path, PathBuf};

use crate::log::handles::{LogStorage, SegmentFile};
use crate::storage::FileKind;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

trait IndexEntry: Copy {
    const BYTES: usize;
    fn decode(b: &[u8]) -> Self;
    fn encode(&self, out: &mut Vec<u8>);
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = OFFSET_ENTRY_BYTES;
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = TIME_ENTRY_BYTES;
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp_ms: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
}

/// Decode a whole index file without changing it; `None` when missing, larger than an
/// index of this segment can be, or not a whole number of entries.
fn read_entries<E: IndexEntry>(
    storage: &LogStorage,
    path: &Path,
    max_bytes: u64,
) -> io::Result<Option<Vec<E>>> {
    // An index never grows past segment.index.bytes (plus one forced final entry).
    let limit = max_bytes + E::BYTES as u64;
    let bytes = match storage.disk.read_if_exists(path, FileKind::Index, limit) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() % E::BYTES != 0 {
        return Ok(None);
    }
    Ok(Some(bytes.chunks_exact(E::BYTES).map(E::decode).collect()))
}

/// What loading an index file found.
pub enum IndexLoad<T> {
    Usable(T),
    /// Missing or malformed: rebuild it from the log.
    Rebuild(String),
    /// Well-formed, but it describes batches past the end of the log file. Index
    /// entries are written after their batch and fsynced with it when the segment is
    /// rolled, so for a sealed segment this means the log lost data.
    PastLogEnd(String),
}

/// The storage shared by both index kinds.
struct IndexFile<E> {
    /// Opened on demand; pinned while the segment is active.
    file: SegmentFile,
    /// Resident entries (all of them, written or pending) while `resident`.
    entries: Vec<E>,
    resident: bool,
    /// Entries `..written` are in the file; resident ones past it are pending.
    written: usize,
    last: Option<E>,
    max_entries: usize,
    /// The file may hold stale bytes past the written entries (the index is being
    /// rebuilt): the next write cuts them off.
    stale_tail: bool,
}

impl<E: IndexEntry> IndexFile<E> {
    fn new(file: SegmentFile, entries: Vec<E>, max_bytes: u64) -> Self {
        IndexFile {
            file,
            written: entries.len(),
            last: entries.last().copied(),
            entries,
            resident: true,
            max_entries: (max_bytes / E::BYTES as u64) as usize,
            stale_tail: false,
        }
    }

    /// An empty index to be filled from a scan of the log; the file on disk is
    /// replaced by the first write.
    fn rebuilt(file: SegmentFile, max_bytes: u64) -> Self {
        IndexFile {
            stale_tail: true,
            ..IndexFile::new(file, Vec::new(), max_bytes)
        }
    }

    fn len(&self) -> usize {
        if self.resident {
            self.entries.len()
        } else {
            self.written
        }
    }

    fn get(&self, i: usize) -> io::Result<E> {
        if self.resident {
            return Ok(self.entries[i]);
        }
        let mut buf = [0u8; 16];
        let buf = &mut buf[..E::BYTES];
        self.file.get()?.read_exact_at(buf, (i * E::BYTES) as u64)?;
        Ok(E::decode(buf))
    }

    /// The number of leading entries for which `pred` holds (`pred` is monotone).
    fn partition_point(&self, pred: impl Fn(&E) -> bool) -> io::Result<usize> {
        if self.resident {
            return Ok(self.entries.partition_point(pred));
        }
        let file = self.file.get()?;
        let (mut lo, mut hi) = (0, self.written);
        let mut buf = [0u8; 16];
        let buf = &mut buf[..E::BYTES];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            file.read_exact_at(buf, (mid * E::BYTES) as u64)?;
            if pred(&E::decode(buf)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    fn ensure_resident(&mut self) -> io::Result<()> {
        if !self.resident {
            let mut buf = vec![0u8; self.written * E::BYTES];
            self.file.get()?.read_exact_at(&mut buf, 0)?;
            self.entries = buf.chunks_exact(E::BYTES).map(E::decode).collect();
            self.resident = true;
        }
        Ok(())
    }

    fn push(&mut self, e: E) -> io::Result<()> {
        self.ensure_resident()?;
        self.entries.push(e);
        self.last = Some(e);
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if !self.resident || (self.written == self.entries.len() && !self.stale_tail) {
            return Ok(());
        }
        let file = self.file.get()?;
        if self.written < self.entries.len() {
            let mut buf = Vec::with_capacity((self.entries.len() - self.written) * E::BYTES);
            for e in &self.entries[self.written..] {
                e.encode(&mut buf);
            }
            file.write_all_at(&buf, (self.written * E::BYTES) as u64)?;
            self.written = self.entries.len();
        }
        if self.stale_tail {
            file.set_len((self.written * E::BYTES) as u64)?;
            self.stale_tail = false;
        }
        Ok(())
    }

    /// Keep the first `keep` entries.
    fn truncate(&mut self, keep: usize) -> io::Result<()> {
        self.ensure_resident()?;
        self.entries.truncate(keep);
        self.last = self.entries.last().copied();
        self.written = self.written.min(keep);
        self.file.get()?.set_len((self.written * E::BYTES) as u64)?;
        self.stale_tail = false;
        Ok(())
    }

    /// Write what is pending and drop the in-memory copy.
    fn unload(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.entries = Vec::new();
        self.resident = false;
        Ok(())
    }
}

fn lazy_file(storage: &LogStorage, path: PathBuf) -> SegmentFile {
    SegmentFile::existing(&storage.handles, &storage.disk, path, FileKind::Index)
}

pub struct OffsetIndex {
    inner: IndexFile<OffsetEntry>,
    base_offset: i64,
}

impl OffsetIndex {
    /// A new, empty index. Its file is created by the first write (the first entry's
    /// flush, the segment's roll or the log's close): a partition that holds no data yet
    /// costs no index files, which makes creating thousands of partitions cheaper.
    pub fn create(storage: &LogStorage, path: PathBuf, base_offset: i64, max_bytes: u64) -> Self {
        OffsetIndex::rebuilt(storage, path, base_offset, max_bytes)
    }

    /// An empty index that replaces the file at `path` when first written (filled by
    /// a scan of the segment).
    pub fn rebuilt(storage: &LogStorage, path: PathBuf, base_offset: i64, max_bytes: u64) -> Self {
        OffsetIndex {
            inner: IndexFile::rebuilt(lazy_file(storage, path), max_bytes),
            base_offset,
        }
    }

    /// Load an existing index without changing it, checking that offsets and positions
    /// strictly increase and that the positions are inside the log.
    pub fn load(
        storage: &LogStorage,
        path: PathBuf,
        base_offset: i64,
        max_bytes: u64,
        log_size_bytes: u64,
    ) -> io::Result<IndexLoad<Self>> {
        let Some(entries) = read_entries::<OffsetEntry>(storage, &path, max_bytes)? else {
            return Ok(IndexLoad::Rebuild("missing or not whole entries".into()));
        };
        let monotonic = entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        if !monotonic {
            return Ok(IndexLoad::Rebuild("entries out of order".into()));
        }
        if let Some(last) = entries
            .last()
            .filter(|e| u64::from(e.position) >= log_size_bytes)
        {
            return Ok(IndexLoad::PastLogEnd(format!(
                "the offset index has the batch ending at offset {} at byte {}, past the end \
                 of the {log_size_bytes}-byte log file: data is missing",
                base_offset + i64::from(last.relative_offset),
                last.position
            )));
        }
        Ok(IndexLoad::Usable(OffsetIndex {
            inner: IndexFile::new(lazy_file(storage, path), entries, max_bytes),
            base_offset,
        }))
    }

    pub fn is_full(&self) -> bool {
        self.inner.len() >= self.inner.max_entries
    }

    /// The last entry as (offset, position).
    pub fn last_entry(&self) -> Option<(i64, u64)> {
        self.inner.last.map(|e| {
            (
                self.base_offset + i64::from(e.relative_offset),
                u64::from(e.position),
            )
        })
    }

    /// The entry with the largest offset <= `offset`, as (offset, position); the
    /// segment start when there is none.
    pub fn lookup(&self, offset: i64) -> io::Result<(i64, u64)> {
        let base = self.base_offset;
        let n = self
            .inner
            .partition_point(|e| base + i64::from(e.relative_offset) <= offset)?;
        if n == 0 {
            return Ok((base, 0));
        }
        let e = self.inner.get(n - 1)?;
        Ok((base + i64::from(e.relative_offset), u64::from(e.position)))
    }

    /// The largest indexed batch start at or below `position` (0 when none).
    pub fn lookup_position(&self, position: u64) -> io::Result<u64> {
        let n = self
            .inner
            .partition_point(|e| u64::from(e.position) <= position)?;
        if n == 0 {
            return Ok(0);
        }
        Ok(u64::from(self.inner.get(n - 1)?.position))
    }

    /// Add an entry for a batch whose last offset is `last_offset`, starting at
    /// `position`; written to the file by [`OffsetIndex::write_pending`].
    pub fn push(&mut self, last_offset: i64, position: u64) -> io::Result<()> {
        let relative_offset = u32::try_from(last_offset - self.base_offset).map_err(|_| {
            io::Error::other(format!(
                "offset {last_offset} not in segment {}",
                self.base_offset
            ))
        })?;
        let position = u32::try_from(position).map_err(|_| {
            io::Error::other(format!("position {position} exceeds the u32 index range"))
        })?;
        // A full index stays sparser rather than growing past segment.index.bytes (the
        // log rolls before appending to a segment whose index is full).
        if self.is_full()
            || self
                .inner
                .last
                .is_some_and(|l| l.relative_offset >= relative_offset || l.position >= position)
        {
            return Ok(());
        }
        self.inner.push(OffsetEntry {
            relative_offset,
            position,
        })
    }

    /// Write the entries added since the last call, with one write.
    pub fn write_pending(&mut self) -> io::Result<()> {
        self.inner.write_pending()
    }

    /// Drop entries for offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .inner
            .partition_point(|e| base + i64::from(e.relative_offset) < offset)?;
        self.inner.truncate(keep)
    }

    /// Drop the in-memory entries (the segment is sealed); lookups read the file.
    pub fn unload(&mut self) -> io::Result<()> {
        self.inner.unload()
    }

    /// The file (to sync it outside the log's lock, pin or retire it).
    pub fn file(&self) -> &SegmentFile {
        &self.inner.file
    }
}

pub struct TimeIndex {
    inner: IndexFile<TimeEntry>,
    base_offset: i64,
}

impl TimeIndex {
    /// A new, empty index; see [`OffsetIndex::create`].
    pub fn create(storage: &LogStorage, path: PathBuf, base_offset: i64, max_bytes: u64) -> Self {
        TimeIndex::rebuilt(storage, path, base_offset, max_bytes)
    }

    /// See [`OffsetIndex::rebuilt`].
    pub fn rebuilt(storage: &LogStorage, path: PathBuf, base_offset: i64, max_bytes: u64) -> Self {
        TimeIndex {
            inner: IndexFile::rebuilt(lazy_file(storage, path), max_bytes),
            base_offset,
        }
    }

    /// Load an existing time index without changing it, checking that timestamps
    /// strictly increase, offsets do not decrease and stay inside the segment.
    pub fn load(
        storage: &LogStorage,
        path: PathBuf,
        base_offset: i64,
        max_bytes: u64,
        next_offset: i64,
    ) -> io::Result<IndexLoad<Self>> {
        let Some(entries) = read_entries::<TimeEntry>(storage, &path, max_bytes)? else {
            return Ok(IndexLoad::Rebuild("missing or not whole entries".into()));
        };
        let monotonic = entries.windows(2).all(|w| {
            w[0].timestamp_ms < w[1].timestamp_ms && w[0].relative_offset <= w[1].relative_offset
        });
        if !monotonic {
            return Ok(IndexLoad::Rebuild("entries out of order".into()));
        }
        if let Some(last) = entries
            .last()
            .map(|e| base_offset + i64::from(e.relative_offset))
            .filter(|&offset| offset >= next_offset)
        {
            return Ok(IndexLoad::PastLogEnd(format!(
                "the time index refers to offset {last}, past the segment's last batch (ending \
                 before offset {next_offset}): data is missing"
            )));
        }
        Ok(IndexLoad::Usable(TimeIndex {
            inner: IndexFile::new(lazy_file(storage, path), entries, max_bytes),
            base_offset,
        }))
    }

    pub fn is_full(&self) -> bool {
        self.inner.len() >= self.inner.max_entries
    }

    /// The last entry as (timestamp, offset).
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.inner.last.map(|e| {
            (
                e.timestamp_ms,
                self.base_offset + i64::from(e.relative_offset),
            )
        })
    }

    /// The offset of the last entry whose timestamp is strictly below `timestamp_ms`:
    /// every batch before it is older, so a scan for the first batch at or after
    /// `timestamp_ms` may start at its batch. `None`: scan from the segment start.
    pub fn lookup_before(&self, timestamp_ms: i64) -> io::Result<Option<i64>> {
        let n = self
            .inner
            .partition_point(|e| e.timestamp_ms < timestamp_ms)?;
        if n == 0 {
            return Ok(None);
        }
        let e = self.inner.get(n - 1)?;
        Ok(Some(self.base_offset + i64::from(e.relative_offset)))
    }

    /// Add `(timestamp, offset)` when the timestamp grew; `force` skips the full
    /// check (the final entry written when a segment is sealed). Written to the file by
    /// [`TimeIndex::write_pending`].
    pub fn maybe_push(&mut self, timestamp_ms: i64, offset: i64, force: bool) -> io::Result<()> {
        if timestamp_ms < 0
            || self
                .inner
                .last
                .is_some_and(|l| timestamp_ms <= l.timestamp_ms)
        {
            return Ok(());
        }
        if !force && self.is_full() {
            return Ok(());
        }
        let relative_offset = u32::try_from(offset - self.base_offset).map_err(|_| {
            io::Error::other(format!(
                "offset {offset} not in segment {}",
                self.base_offset
            ))
        })?;
        self.inner.push(TimeEntry {
            timestamp_ms,
            relative_offset,
        })
    }

    /// Write the entries added since the last call, with one write.
    pub fn write_pending(&mut self) -> io::Result<()> {
        self.inner.write_pending()
    }

    /// Drop entries for offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .inner
            .partition_point(|e| base + i64::from(e.relative_offset) < offset)?;
        self.inner.truncate(keep)
    }

    /// Drop the in-memory entries (the segment is sealed); lookups read the file.
    pub fn unload(&mut self) -> io::Result<()> {
        self.inner.unload()
    }

    /// The file (to sync it outside the log's lock, pin or retire it).
    pub fn file(&self) -> &SegmentFile {
        &self.inner.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LogStorage::default();
        let mut offsets = OffsetIndex::create(&storage, dir.path().join("i"), 100, 1 << 20);
        let mut times = TimeIndex::create(&storage, dir.path().join("t"), 100, 1 << 20);
        for i in 1..50u64 {
            offsets.push(100 + i as i64 * 10, i * 1000).unwrap();
            times
                .maybe_push(i as i64 * 5, 100 + i as i64 * 10, false)
                .unwrap();
        }
        offsets.write_pending().unwrap();
        times.write_pending().unwrap();
        let probe = |o: &OffsetIndex, t: &TimeIndex| {
            (
                (95..700).map(|x| o.lookup(x).unwrap()).collect::<Vec<_>>(),
                (0..60_000)
                    .step_by(333)
                    .map(|p| o.lookup_position(p).unwrap())
                    .collect::<Vec<_>>(),
                (0..300)
                    .map(|ts| t.lookup_before(ts).unwrap())
                    .collect::<Vec<_>>(),
            )
        };
        let resident = probe(&offsets, &times);
        assert_eq!(resident.0[0], (100, 0));
        assert_eq!(offsets.lookup(125).unwrap(), (120, 2000));
        assert_eq!(times.lookup_before(11).unwrap(), Some(120));
        offsets.unload().unwrap();
        times.unload().unwrap();
        assert_eq!(probe(&offsets, &times), resident);
        // Mutation reloads the entries first.
        offsets.truncate_to(300).unwrap();
        assert_eq!(offsets.last_entry(), Some((290, 19_000)));
        assert_eq!(
            std::fs::metadata(dir.path().join("i")).unwrap().len(),
            19 * OFFSET_ENTRY_BYTES as u64
        );
    }
}
