//! Sparse offset (`.index`) and time (`.timeindex`) indexes of one segment.
//!
//! Kafka's file formats, big-endian: an offset entry is (offset relative to the
//! segment base u32, file position u32), pointing at the start of a batch whose last
//! offset is the entry's offset; a time entry is (timestamp i64, relative offset u32):
//! the largest timestamp seen so far and the batch where it appeared. Entries live in
//! memory (bounded by `segment.index.bytes`) and are appended to the files with plain
//! positional writes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

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

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

/// Read a whole index file, refusing files that cannot be an index of this segment.
fn read_file_bounded(path: &Path, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    // An index never grows past segment.index.bytes (plus one forced final entry).
    if len > max_bytes + TIME_ENTRY_BYTES as u64 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

pub struct OffsetIndex {
    file: File,
    base_offset: i64,
    entries: Vec<OffsetEntry>,
    /// Entries `..written` are in the file; the rest wait for [`OffsetIndex::write_pending`].
    written: usize,
    max_entries: usize,
}

impl OffsetIndex {
    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> io::Result<Self> {
        Ok(OffsetIndex {
            file: open_rw(path, true)?,
            base_offset,
            entries: Vec::new(),
            written: 0,
            max_entries: (max_bytes / OFFSET_ENTRY_BYTES as u64) as usize,
        })
    }

    /// Load an existing index; `None` when it is missing or fails the sanity checks
    /// (size a multiple of the entry size, offsets and positions strictly increasing,
    /// positions inside the log), so the caller rebuilds it.
    pub fn load(
        path: &Path,
        base_offset: i64,
        max_bytes: u64,
        log_size_bytes: u64,
    ) -> io::Result<Option<Self>> {
        let Some(buf) = read_file_bounded(path, max_bytes)? else {
            return Ok(None);
        };
        if buf.len() % OFFSET_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(buf.len() / OFFSET_ENTRY_BYTES);
        for chunk in buf.chunks_exact(OFFSET_ENTRY_BYTES) {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            let monotonic = entries.last().is_none_or(|l: &OffsetEntry| {
                e.relative_offset > l.relative_offset && e.position > l.position
            });
            if !monotonic || u64::from(e.position) >= log_size_bytes {
                return Ok(None);
            }
            entries.push(e);
        }
        Ok(Some(OffsetIndex {
            file: open_rw(path, false)?,
            base_offset,
            written: entries.len(),
            entries,
            max_entries: (max_bytes / OFFSET_ENTRY_BYTES as u64) as usize,
        }))
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// The entry with the largest offset <= `offset`, as (offset, position); the
    /// segment start when there is none.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let n = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) <= offset);
        match n {
            0 => (self.base_offset, 0),
            n => {
                let e = self.entries[n - 1];
                (
                    self.base_offset + i64::from(e.relative_offset),
                    u64::from(e.position),
                )
            }
        }
    }

    /// The largest indexed batch start at or below `position` (0 when none).
    pub fn lookup_position(&self, position: u64) -> u64 {
        let n = self
            .entries
            .partition_point(|e| u64::from(e.position) <= position);
        match n {
            0 => 0,
            n => u64::from(self.entries[n - 1].position),
        }
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
                .entries
                .last()
                .is_some_and(|l| l.relative_offset >= relative_offset || l.position >= position)
        {
            return Ok(());
        }
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// Write the entries added since the last call, with one write.
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.written) * OFFSET_ENTRY_BYTES);
        for e in &self.entries[self.written..] {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
        }
        self.file
            .write_all_at(&buf, (self.written * OFFSET_ENTRY_BYTES) as u64)?;
        self.written = self.entries.len();
        Ok(())
    }

    /// Drop entries for offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) < offset);
        self.entries.truncate(keep);
        self.written = self.written.min(keep);
        self.file
            .set_len((self.written * OFFSET_ENTRY_BYTES) as u64)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

pub struct TimeIndex {
    file: File,
    base_offset: i64,
    entries: Vec<TimeEntry>,
    /// Entries `..written` are in the file; the rest wait for [`TimeIndex::write_pending`].
    written: usize,
    max_entries: usize,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> io::Result<Self> {
        Ok(TimeIndex {
            file: open_rw(path, true)?,
            base_offset,
            entries: Vec::new(),
            written: 0,
            max_entries: (max_bytes / TIME_ENTRY_BYTES as u64) as usize,
        })
    }

    /// Load an existing time index; `None` when missing or not sane (timestamps and
    /// offsets must not decrease, offsets must be inside the segment).
    pub fn load(
        path: &Path,
        base_offset: i64,
        max_bytes: u64,
        next_offset: i64,
    ) -> io::Result<Option<Self>> {
        let Some(buf) = read_file_bounded(path, max_bytes)? else {
            return Ok(None);
        };
        if buf.len() % TIME_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(buf.len() / TIME_ENTRY_BYTES);
        for chunk in buf.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let e = TimeEntry {
                timestamp_ms: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            let monotonic = entries.last().is_none_or(|l| {
                e.timestamp_ms > l.timestamp_ms && e.relative_offset >= l.relative_offset
            });
            if !monotonic || base_offset + i64::from(e.relative_offset) >= next_offset {
                return Ok(None);
            }
            entries.push(e);
        }
        Ok(Some(TimeIndex {
            file: open_rw(path, false)?,
            base_offset,
            written: entries.len(),
            entries,
            max_entries: (max_bytes / TIME_ENTRY_BYTES as u64) as usize,
        }))
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries.last().map(|e| {
            (
                e.timestamp_ms,
                self.base_offset + i64::from(e.relative_offset),
            )
        })
    }

    /// The offset of the last entry whose timestamp is strictly below `timestamp_ms`:
    /// every batch before it is older, so a scan for the first batch at or after
    /// `timestamp_ms` may start at its batch. `None`: scan from the segment start.
    pub fn lookup_before(&self, timestamp_ms: i64) -> Option<i64> {
        let n = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        (n > 0).then(|| self.base_offset + i64::from(self.entries[n - 1].relative_offset))
    }

    /// Add `(timestamp, offset)` when the timestamp grew; `force` skips the full
    /// check (the final entry written when a segment is sealed). Written to the file by
    /// [`TimeIndex::write_pending`].
    pub fn maybe_push(&mut self, timestamp_ms: i64, offset: i64, force: bool) -> io::Result<()> {
        if timestamp_ms < 0
            || self
                .entries
                .last()
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
        self.entries.push(TimeEntry {
            timestamp_ms,
            relative_offset,
        });
        Ok(())
    }

    /// Write the entries added since the last call, with one write.
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.written) * TIME_ENTRY_BYTES);
        for e in &self.entries[self.written..] {
            buf.extend_from_slice(&e.timestamp_ms.to_be_bytes());
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        self.file
            .write_all_at(&buf, (self.written * TIME_ENTRY_BYTES) as u64)?;
        self.written = self.entries.len();
        Ok(())
    }

    /// Drop entries for offsets >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) < offset);
        self.entries.truncate(keep);
        self.written = self.written.min(keep);
        self.file.set_len((self.written * TIME_ENTRY_BYTES) as u64)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
