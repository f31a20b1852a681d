//! The aborted-transaction index of one segment, Kafka's `.txnindex`: one entry per
//! transaction aborted by a marker in the segment, so a read_committed fetch can tell
//! its consumer which producers' records to drop (`aborted_transactions`).
//!
//! File format (Kafka's, big-endian, 34 bytes an entry): `version i16 = 0,
//! producer_id i64, first_offset i64, last_offset i64 (the marker),
//! last_stable_offset i64` (the partition's last stable offset once the transaction
//! ended: a search may stop at the first entry whose LSO is past what it reads).
//!
//! Entries are kept in memory (a segment's aborts are few) and appended to the file
//! without a sync; [`TxnIndex::sync`] runs when the segment is sealed (roll, close).
//! What a crash loses is rebuilt: recovery replays the log after the last producer
//! snapshot, which is never older than the active segment, and re-adds the entries of
//! the markers it finds ([`TxnIndex::push`] ignores one already present). Every byte
//! read back is checked ([`TxnIndex::load`]); a damaged file is rebuilt from the log.

use std::io;
use std::path::{Path, PathBuf};

use crate::storage::{Disk, FileKind, OpenMode};

pub const TXN_INDEX_SUFFIX: &str = "txnindex";
const VERSION: i16 = 0;
pub const ENTRY_BYTES: usize = 34;
/// The largest index read (about two million aborted transactions in one segment).
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..2].copy_from_slice(&VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> AbortedTxn {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        }
    }
}

/// Decode a whole `.txnindex` of the segment starting at `base_offset` whose batches
/// end before `next_offset`; any entry that cannot be right is an error naming it.
pub fn decode(bytes: &[u8], base_offset: i64, next_offset: i64) -> Result<Vec<AbortedTxn>, String> {
    if bytes.len() % ENTRY_BYTES != 0 {
        return Err(format!(
            "{} bytes is not a whole number of {ENTRY_BYTES}-byte entries",
            bytes.len()
        ));
    }
    let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for (i, chunk) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
        let version = i16::from_be_bytes([chunk[0], chunk[1]]);
        if version != VERSION {
            return Err(format!("entry {i} has version {version}"));
        }
        let e = AbortedTxn::decode(chunk);
        let in_segment = e.last_offset >= base_offset && e.last_offset < next_offset;
        let ordered = entries.last().is_none_or(|p| p.last_offset < e.last_offset);
        if e.producer_id < 0
            || e.first_offset < 0
            || e.first_offset > e.last_offset
            || !in_segment
            || !ordered
            || e.last_stable_offset < 0
            || e.last_stable_offset > e.last_offset + 1
        {
            return Err(format!(
                "entry {i} (producer {}, offsets {}..={}, last stable offset {}) does not fit \
                 the segment [{base_offset}, {next_offset}) after its predecessors",
                e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
            ));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// A segment's aborted transactions and their file.
#[derive(Debug)]
pub struct TxnIndex {
    disk: Disk,
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// Entries at the start of `entries` that are in the file.
    written: usize,
    /// Written since the last sync.
    unsynced: bool,
}

impl TxnIndex {
    /// An index with no entries; its file is created by the first entry.
    pub fn empty(disk: Disk, path: PathBuf) -> TxnIndex {
        TxnIndex {
            disk,
            path,
            entries: Vec::new(),
            written: 0,
            unsynced: false,
        }
    }

    /// Read and check the file of a segment `[base_offset, next_offset)`: a missing
    /// file is an empty index (as in Kafka, created on the first abort); a damaged one
    /// is `Ok(Err(reason))`, for the caller to rebuild.
    pub fn load(
        disk: &Disk,
        path: PathBuf,
        base_offset: i64,
        next_offset: i64,
    ) -> io::Result<Result<TxnIndex, String>> {
        let bytes = match disk.read_if_exists(&path, FileKind::Index, MAX_INDEX_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Ok(TxnIndex::empty(disk.clone(), path))),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Err(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(
            decode(&bytes, base_offset, next_offset).map(|entries| TxnIndex {
                disk: disk.clone(),
                path,
                written: entries.len(),
                entries,
                unsynced: false,
            }),
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Add the entry of an abort marker appended (or replayed) in this segment.
    /// Markers come in log order: one not past the last entry is already here.
    /// A failed file write keeps the entry in memory (fetches stay right) and is
    /// retried by the next push or [`TxnIndex::sync`].
    pub fn push(&mut self, entry: AbortedTxn) {
        if self
            .entries
            .last()
            .is_some_and(|last| last.last_offset >= entry.last_offset)
        {
            return;
        }
        self.entries.push(entry);
        if let Err(e) = self.write_pending() {
            tracing::warn!(path = %self.path.display(), error = %e, "writing the transaction index failed; retried at the next write or seal");
        }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - self.written) * ENTRY_BYTES);
        for e in &self.entries[self.written..] {
            bytes.extend_from_slice(&e.encode());
        }
        let file = self
            .disk
            .open(&self.path, FileKind::Index, OpenMode::CREATE)?;
        file.write_all_at(&bytes, (self.written * ENTRY_BYTES) as u64)?;
        self.written = self.entries.len();
        self.unsynced = true;
        Ok(())
    }

    /// Write what is pending and fsync the file (the segment is being sealed).
    pub fn sync(&mut self) -> io::Result<()> {
        self.write_pending()?;
        if self.unsynced {
            self.disk
                .open(&self.path, FileKind::Index, OpenMode::READ_WRITE)?
                .sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Replace every entry (a rebuild) and write the file anew.
    pub fn replace(&mut self, entries: Vec<AbortedTxn>) -> io::Result<()> {
        self.entries = entries;
        self.written = 0;
        self.disk
            .remove_file_if_exists(&self.path, FileKind::Index)?;
        self.sync()
    }

    /// Drop the entries of markers at or after `offset` (the log is cut there).
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if self.written > keep {
            self.written = keep;
            let file = self
                .disk
                .open(&self.path, FileKind::Index, OpenMode::READ_WRITE)?;
            file.set_len((keep * ENTRY_BYTES) as u64)?;
        }
        Ok(())
    }

    pub fn delete(&self) -> io::Result<()> {
        self.disk
            .remove_file_if_exists(&self.path, FileKind::Index)
            .map(|_| ())
    }

    /// Kafka's search of one segment for a fetch of `[from, upper)`: the aborted
    /// transactions overlapping it go to `out`; returns true once an entry shows every
    /// transaction overlapping the range was complete by then (its last stable offset
    /// is at or past `upper`), so later segments need not be searched.
    pub fn collect(&self, from: i64, upper: i64, out: &mut Vec<AbortedTxn>) -> bool {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        for e in &self.entries[start..] {
            if e.first_offset < upper {
                out.push(*e);
            }
            if e.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first_offset: i64, last_offset: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn index_round_trips_through_its_file_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let disk = Disk::real();
        let mut index = TxnIndex::empty(disk.clone(), path.clone());
        index.push(entry(7, 100, 105, 106));
        index.push(entry(8, 101, 110, 111));
        index.push(entry(8, 101, 110, 111)); // a replayed marker: already here
        index.sync().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * ENTRY_BYTES);
        assert_eq!(&bytes[..2], &[0, 0], "version 0");
        let loaded = TxnIndex::load(&disk, path.clone(), 100, 120)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.entries(), index.entries());

        // Damage of every kind is reported, never trusted.
        let damaged = |bytes: &[u8], next_offset: i64| {
            std::fs::write(&path, bytes).unwrap();
            TxnIndex::load(&disk, path.clone(), 100, next_offset)
                .unwrap()
                .is_err()
        };
        assert!(damaged(&bytes[..bytes.len() - 1], 120), "torn entry");
        let mut version = bytes.clone();
        version[ENTRY_BYTES + 1] = 9;
        assert!(damaged(&version, 120), "unknown version");
        assert!(damaged(&bytes, 110), "marker past the segment's end");
        let mut reversed = entry(8, 101, 110, 111).encode().to_vec();
        reversed.extend_from_slice(&entry(7, 100, 105, 106).encode());
        assert!(damaged(&reversed, 120), "out of order");
        assert!(
            damaged(&entry(7, 106, 105, 106).encode(), 120),
            "first after last"
        );
        assert!(
            damaged(&entry(7, 100, 105, 107).encode(), 120),
            "LSO past the marker"
        );
        // A missing file is an empty index.
        std::fs::remove_file(&path).unwrap();
        let missing = TxnIndex::load(&disk, path.clone(), 100, 120)
            .unwrap()
            .unwrap();
        assert!(missing.entries().is_empty());
    }

    #[test]
    fn truncation_drops_the_entries_of_cut_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let disk = Disk::real();
        let mut index = TxnIndex::empty(disk.clone(), path.clone());
        index.push(entry(1, 0, 3, 4));
        index.push(entry(2, 1, 6, 7));
        index.truncate_to(6).unwrap();
        assert_eq!(index.entries(), &[entry(1, 0, 3, 4)]);
        let loaded = TxnIndex::load(&disk, path, 0, 6).unwrap().unwrap();
        assert_eq!(loaded.entries(), index.entries());
    }

    #[test]
    fn collect_returns_the_overlapping_aborts_and_stops_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::real();
        let mut index = TxnIndex::empty(disk, dir.path().join("x.txnindex"));
        index.push(entry(1, 0, 2, 3)); // ends before the fetch
        index.push(entry(2, 4, 9, 6)); // overlaps [5, 8); producer 3 was still open
        index.push(entry(3, 8, 12, 13)); // starts at the upper bound; complete past it
        index.push(entry(4, 1, 20, 21)); // not reached: the search stopped at 12
        let mut out = Vec::new();
        assert!(index.collect(5, 8, &mut out));
        assert_eq!(out, vec![entry(2, 4, 9, 6)]);
        let mut out = Vec::new();
        assert!(!index.collect(21, 30, &mut out));
        assert!(out.is_empty());
    }
}
