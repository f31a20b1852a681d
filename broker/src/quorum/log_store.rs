//! The Raft log of the metadata quorum on disk.
//!
//! Entries live in segment files `<20-digit first index>.raftlog`, each a sequence of
//! frames `[length u32 LE][crc32c u32 LE][entry as JSON]`. Appends are fsynced before
//! openraft is told they are durable. On open every frame is checked; the first short or
//! corrupt frame is where a crash tore the tail, so the file is cut there and later
//! segments are dropped. The vote and the purge point each live in a small JSON file
//! replaced atomically (write, fsync, rename, fsync directory).
//!
//! Every file operation goes through the storage seam ([`Disk`]), and every write is
//! retried until it lands ([`super::write_retry`]): openraft treats a storage error as
//! fatal. Memory changes only once the disk holds the change, and an append that failed
//! part way (a full disk, an I/O error, a failed fsync, whose written pages may be lost)
//! is rolled back to the last whole entry, removing the segments it created, before the
//! next attempt writes it again. The log thus never holds a partial frame with entries
//! after it.
//!
//! Every live entry is also kept in memory: the log holds at most the entries since the
//! last snapshot plus `max_in_snapshot_log_to_keep`, so it stays small.

use std::collections::BTreeMap;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::write_retry::Retry;
use super::{NodeId, TypeConfig};
use crate::storage::{Disk, DiskFile, FileKind, OpenMode};

const SEGMENT_SUFFIX: &str = "raftlog";
const FRAME_HEADER: usize = 8;
/// A frame longer than this is corruption, not an entry (entries are metadata batches).
const FRAME_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The vote, the purge point and the commit hint are a few dozen bytes.
const SMALL_JSON_MAX_BYTES: u64 = 64 * 1024;

/// Where one entry sits on disk.
#[derive(Debug, Clone, Copy)]
struct Position {
    segment: u64,
    offset: u64,
}

/// The last segment, open for appending.
#[derive(Clone)]
struct Active {
    base: u64,
    file: DiskFile,
    /// Bytes of whole frames in it.
    len: u64,
}

/// What a failed append left on disk, to undo before the next write.
struct Undo {
    /// Segments it created (their bases).
    created: Vec<u64>,
    /// The segment that was active, and its length before the append.
    truncate: Option<(DiskFile, u64)>,
}

struct Inner {
    dir: PathBuf,
    segment_entries_max: u64,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    positions: BTreeMap<u64, Position>,
    /// Segment base index -> number of entries written to it.
    segments: BTreeMap<u64, u64>,
    active: Option<Active>,
    undo: Option<Undo>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

/// The metadata Raft log. Clones share the same log (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    disk: Disk,
    retry: Retry,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn storage_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.{SEGMENT_SUFFIX}"))
}

/// Write `value` as JSON to `dir/name`, replacing it atomically and durably.
pub(crate) fn write_json_atomically<T: Serialize>(
    disk: &Disk,
    dir: &Path,
    name: &str,
    value: &T,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io_err)?;
    disk.write_atomically(dir, name, FileKind::Checkpoint, &bytes)
}

/// The JSON value in `path`, `None` when there is no file; a file longer than
/// `max_bytes` is an error.
pub(crate) fn read_json<T: DeserializeOwned>(
    disk: &Disk,
    path: &Path,
    max_bytes: u64,
) -> io::Result<Option<T>> {
    match disk.read_if_exists(path, FileKind::Checkpoint, max_bytes)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_err(format!("{}: {e}", path.display()))),
    }
}

fn frame(entry: &Entry<TypeConfig>) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(io_err)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| (l as usize) <= FRAME_MAX_BYTES)
        .ok_or_else(|| io_err(format!("log entry of {} bytes is too large", body.len())))?;
    let mut out = Vec::with_capacity(FRAME_HEADER + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The valid frames of a segment and the length of the valid prefix.
fn read_segment(bytes: &[u8]) -> (Vec<(u64, Entry<TypeConfig>)>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= FRAME_HEADER {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER;
        if len > FRAME_MAX_BYTES || bytes.len() - start < len {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry<TypeConfig>>(body) else {
            break;
        };
        out.push((pos as u64, entry));
        pos = start + len;
    }
    (out, pos as u64)
}

impl LogStore {
    /// Open (or create) the log in `dir`, cutting a torn tail. A new segment starts
    /// every `segment_entries_max` entries, so purging can delete whole files. Later
    /// writes are retried with `retry`.
    pub fn open(
        disk: Disk,
        dir: &Path,
        segment_entries_max: u64,
        retry: Retry,
    ) -> io::Result<LogStore> {
        disk.create_dir_all(dir)?;
        let vote = read_json(&disk, &dir.join("vote.json"), SMALL_JSON_MAX_BYTES)?;
        let purged: Option<LogId<NodeId>> =
            read_json(&disk, &dir.join("purged.json"), SMALL_JSON_MAX_BYTES)?;
        // A torn committed.json only loses a hint: replay then waits for the leader.
        let committed =
            read_json(&disk, &dir.join("committed.json"), SMALL_JSON_MAX_BYTES).unwrap_or(None);
        let mut bases = Vec::new();
        for name in disk.read_dir(dir)? {
            let path = dir.join(&name);
            if path.extension().is_some_and(|x| x == "tmp") {
                // A replacement that did not complete; the file it replaces is whole.
                disk.remove_file_if_exists(&path, FileKind::Checkpoint)?;
            } else if path.extension().is_some_and(|x| x == SEGMENT_SUFFIX) {
                if let Some(base) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            segment_entries_max: segment_entries_max.max(1),
            entries: BTreeMap::new(),
            positions: BTreeMap::new(),
            segments: BTreeMap::new(),
            active: None,
            undo: None,
            vote,
            committed,
            purged,
        };
        let purged_index = purged.map(|l| l.index);
        let mut torn = false;
        for base in bases {
            let path = segment_path(dir, base);
            if torn {
                // Everything after a torn frame was written after it: not durable.
                disk.remove_file(&path, FileKind::MetadataLog)?;
                continue;
            }
            let bytes = disk.read(&path, FileKind::MetadataLog)?;
            let (frames, valid) = read_segment(&bytes);
            let mut count = 0;
            for (offset, entry) in frames {
                let index = entry.log_id.index;
                let expected = inner.positions.keys().next_back().map(|i| i + 1);
                // A gap is only allowed where the entries before it were purged (a
                // snapshot was installed past the end of the log).
                let gap_ok = purged_index.is_some_and(|p| index <= p + 1);
                if expected.is_some_and(|e| e != index && !(e < index && gap_ok)) {
                    return Err(io_err(format!(
                        "metadata log {}: entry {index} does not follow {}",
                        path.display(),
                        expected.unwrap_or_default() - 1
                    )));
                }
                inner.positions.insert(
                    index,
                    Position {
                        segment: base,
                        offset,
                    },
                );
                if purged_index.is_none_or(|p| index > p) {
                    inner.entries.insert(index, entry);
                }
                count += 1;
            }
            if valid < bytes.len() as u64 {
                tracing::warn!(
                    segment = %path.display(),
                    valid,
                    len = bytes.len(),
                    "metadata log: cutting a torn tail"
                );
                let f = disk.open(&path, FileKind::MetadataLog, OpenMode::READ_WRITE)?;
                f.set_len(valid)?;
                f.sync_all()?;
                torn = true;
            }
            if count == 0 {
                disk.remove_file(&path, FileKind::MetadataLog)?;
            } else {
                inner.segments.insert(base, count);
            }
        }
        // Positions of purged entries are only needed while their segment is alive.
        if let Some(p) = purged_index {
            inner.positions.retain(|&i, _| i > p);
        }
        if let Some((&base, _)) = inner.segments.iter().next_back() {
            let path = segment_path(dir, base);
            let file = disk.open(&path, FileKind::MetadataLog, OpenMode::READ_WRITE)?;
            let len = file.size_bytes()?;
            inner.active = Some(Active { base, file, len });
        }
        disk.sync_dir(dir)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            disk,
            retry,
        })
    }

    /// Files of the log (segments), for tests and metrics.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// Append `entries` durably, retrying until they land.
    async fn append_entries(&self, entries: Vec<Entry<TypeConfig>>) -> io::Result<()> {
        // Framing does not depend on the disk: its errors are not retried.
        let frames = entries
            .iter()
            .map(|e| Ok((e.log_id.index, frame(e)?)))
            .collect::<io::Result<Vec<_>>>()?;
        let placed = self
            .retry
            .run("metadata log append", || {
                self.inner.lock().try_append(&self.disk, &frames)
            })
            .await?;
        let mut inner = self.inner.lock();
        for (entry, (index, position)) in entries.into_iter().zip(placed) {
            inner.positions.insert(index, position);
            inner.entries.insert(index, entry);
        }
        Ok(())
    }

    /// Delete entries from `index` on (a new leader overwrote them).
    async fn truncate_entries(&self, index: u64) -> io::Result<()> {
        self.retry
            .run("metadata log truncation", || {
                self.inner.lock().try_truncate(&self.disk, index)
            })
            .await
    }

    /// Forget entries up to `log_id` (a snapshot holds them). The purge point is made
    /// durable first; then every segment holding only purged entries is deleted.
    async fn purge_entries(&self, log_id: LogId<NodeId>) -> io::Result<()> {
        self.retry
            .run("metadata log purge", || {
                self.inner.lock().try_purge(&self.disk, log_id)
            })
            .await
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        let inner = self.inner.lock();
        inner.entries.range(range).map(|(_, e)| e.clone()).collect()
    }
}

impl Inner {
    /// Undo what a failed append left on disk; an error leaves the rest for later.
    fn finish_undo(&mut self, disk: &Disk) -> io::Result<()> {
        let Some(undo) = self.undo.as_mut() else {
            return Ok(());
        };
        while let Some(&base) = undo.created.last() {
            disk.remove_file_if_exists(&segment_path(&self.dir, base), FileKind::MetadataLog)?;
            undo.created.pop();
        }
        if let Some((file, len)) = &undo.truncate {
            file.set_len(*len)?;
        }
        self.undo = None;
        Ok(())
    }

    /// One attempt at writing `frames` (index, bytes) after the log's end, fsynced.
    /// Changes the active segment and segment counts only when it succeeds, and
    /// returns where each entry went; on failure it rolls the files back to the last
    /// whole entry (or leaves that to the next attempt, should the rollback fail too).
    fn try_append(
        &mut self,
        disk: &Disk,
        frames: &[(u64, Vec<u8>)],
    ) -> io::Result<Vec<(u64, Position)>> {
        self.finish_undo(disk)?;
        let mut active = self.active.clone();
        let mut segments = self.segments.clone();
        let mut created = Vec::new();
        let mut placed = Vec::with_capacity(frames.len());
        let mut last = self.positions.keys().next_back().copied();
        let mut write = || -> io::Result<()> {
            for (index, bytes) in frames {
                let index = *index;
                let follows = last.is_none_or(|l| l + 1 == index);
                let roll = match &active {
                    None => true,
                    Some(a) => segments[&a.base] >= self.segment_entries_max || !follows,
                };
                if roll {
                    if let Some(a) = &active {
                        a.file.sync_data()?;
                    }
                    created.push(index);
                    let path = segment_path(&self.dir, index);
                    let file = disk.open(&path, FileKind::MetadataLog, OpenMode::TRUNCATE)?;
                    disk.sync_dir(&self.dir)?;
                    segments.insert(index, 0);
                    active = Some(Active {
                        base: index,
                        file,
                        len: 0,
                    });
                }
                let a = active.as_mut().expect("a segment is open");
                a.file.write_all_at(bytes, a.len)?;
                placed.push((
                    index,
                    Position {
                        segment: a.base,
                        offset: a.len,
                    },
                ));
                a.len += bytes.len() as u64;
                *segments.get_mut(&a.base).expect("active segment") += 1;
                last = Some(index);
            }
            if let Some(a) = &active {
                a.file.sync_data()?;
            }
            Ok(())
        };
        match write() {
            Ok(()) => {
                self.active = active;
                self.segments = segments;
                Ok(placed)
            }
            Err(e) => {
                self.undo = Some(Undo {
                    created,
                    truncate: self.active.as_ref().map(|a| (a.file.clone(), a.len)),
                });
                if let Err(undo) = self.finish_undo(disk) {
                    tracing::debug!(error = %undo, "metadata log: rollback left for the next attempt");
                }
                Err(e)
            }
        }
    }

    /// One attempt at deleting entries from `index` on: the files first (each step
    /// repeatable), memory once they are done.
    fn try_truncate(&mut self, disk: &Disk, index: u64) -> io::Result<()> {
        self.finish_undo(disk)?;
        let Some(pos) = self.positions.get(&index).copied() else {
            self.entries.split_off(&index);
            return Ok(());
        };
        let later: Vec<u64> = self
            .segments
            .range(pos.segment + 1..)
            .map(|(&b, _)| b)
            .collect();
        for base in later.iter().rev() {
            disk.remove_file_if_exists(&segment_path(&self.dir, *base), FileKind::MetadataLog)?;
        }
        let path = segment_path(&self.dir, pos.segment);
        let kept = if pos.offset == 0 {
            disk.remove_file_if_exists(&path, FileKind::MetadataLog)?;
            None
        } else {
            let file = match &self.active {
                Some(a) if a.base == pos.segment => a.file.clone(),
                _ => disk.open(&path, FileKind::MetadataLog, OpenMode::READ_WRITE)?,
            };
            file.set_len(pos.offset)?;
            file.sync_all()?;
            Some(file)
        };
        disk.sync_dir(&self.dir)?;
        for base in later {
            self.segments.remove(&base);
        }
        // Without a kept segment the next append starts a new one.
        self.active = match kept {
            None => {
                self.segments.remove(&pos.segment);
                None
            }
            Some(file) => {
                let entries = self
                    .positions
                    .range(pos.segment..index)
                    .filter(|(_, p)| p.segment == pos.segment)
                    .count() as u64;
                self.segments.insert(pos.segment, entries);
                Some(Active {
                    base: pos.segment,
                    file,
                    len: pos.offset,
                })
            }
        };
        self.entries.split_off(&index);
        self.positions.split_off(&index);
        Ok(())
    }

    /// One attempt at purging up to `log_id`: the purge point, then whole segments.
    fn try_purge(&mut self, disk: &Disk, log_id: LogId<NodeId>) -> io::Result<()> {
        self.finish_undo(disk)?;
        write_json_atomically(disk, &self.dir, "purged.json", &log_id)?;
        let keep_from = log_id.index + 1;
        // Nothing live left (a snapshot past the end of the log was installed): every
        // segment goes, and the next entry starts a fresh one.
        let nothing_left = self.positions.range(keep_from..).next().is_none();
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let active = self.active.as_ref().map(|a| a.base);
        let doomed: Vec<u64> = if nothing_left {
            bases
        } else {
            // Entries of a segment end where the next one begins.
            bases
                .windows(2)
                .filter(|w| w[1] <= keep_from && Some(w[0]) != active)
                .map(|w| w[0])
                .collect()
        };
        for base in &doomed {
            disk.remove_file_if_exists(&segment_path(&self.dir, *base), FileKind::MetadataLog)?;
        }
        if nothing_left {
            disk.sync_dir(&self.dir)?;
            self.active = None;
        }
        for base in doomed {
            self.segments.remove(&base);
        }
        self.purged = Some(log_id);
        self.entries = self.entries.split_off(&keep_from);
        self.positions = self.positions.split_off(&keep_from);
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.read_range(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let dir = self.inner.lock().dir.clone();
        self.retry
            .run("metadata vote", || {
                write_json_atomically(&self.disk, &dir, "vote.json", vote)
            })
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // A hint for replay on restart (entries up to it may be applied at once), so it
        // is replaced atomically but neither fsynced nor retried: losing it, or keeping
        // an older one, only delays replay.
        let dir = {
            let mut inner = self.inner.lock();
            inner.committed = committed;
            inner.dir.clone()
        };
        let bytes = serde_json::to_vec(&committed).map_err(|e| storage_err(io_err(e)))?;
        let tmp = dir.join("committed.json.tmp");
        let written = self
            .disk
            .write(&tmp, FileKind::Checkpoint, &bytes)
            .and_then(|()| {
                self.disk
                    .rename(&tmp, &dir.join("committed.json"), FileKind::Checkpoint)
            });
        if let Err(e) = written {
            tracing::debug!(error = %e, "metadata commit hint not saved");
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let result = self.append_entries(entries).await;
        let ret = result
            .as_ref()
            .map_err(|e| storage_err(io::Error::new(e.kind(), e.to_string())))
            .map(|_| ());
        callback.log_io_completed(result);
        ret
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.truncate_entries(log_id.index)
            .await
            .map_err(storage_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.purge_entries(log_id).await.map_err(storage_err)
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
