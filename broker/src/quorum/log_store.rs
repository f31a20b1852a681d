//! The Raft log of the metadata quorum on disk.
//!
//! Entries live in segment files `<20-digit first index>.raftlog`, each a sequence of
//! frames `[length u32 LE][crc32c u32 LE][entry as JSON]`. Appends are fsynced before
//! openraft is told they are durable. On open every frame is checked; the first short or
//! corrupt frame is where a crash tore the tail, so the file is cut there and later
//! segments are dropped. The vote and the purge point each live in a small JSON file
//! replaced atomically (write, fsync, rename, fsync directory).
//!
//! Every live entry is also kept in memory: the log holds at most the entries since the
//! last snapshot plus `max_in_snapshot_log_to_keep`, so it stays small.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{NodeId, TypeConfig};

const SEGMENT_SUFFIX: &str = "raftlog";
const FRAME_HEADER: usize = 8;
/// A frame longer than this is corruption, not an entry (entries are metadata batches).
const FRAME_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Where one entry sits on disk.
#[derive(Debug, Clone, Copy)]
struct Position {
    segment: u64,
    offset: u64,
}

struct Inner {
    dir: PathBuf,
    segment_entries_max: u64,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    positions: BTreeMap<u64, Position>,
    /// Segment base index -> number of entries written to it.
    segments: BTreeMap<u64, u64>,
    /// The last segment, open for appending, and its length.
    active: Option<(u64, File, u64)>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

/// The metadata Raft log. Clones share the same log (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
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
pub(crate) fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io_err)?;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_err(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
    /// every `segment_entries_max` entries, so purging can delete whole files.
    pub fn open(dir: &Path, segment_entries_max: u64) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let vote = read_json(&dir.join("vote.json"))?;
        let purged: Option<LogId<NodeId>> = read_json(&dir.join("purged.json"))?;
        // A torn committed.json only loses a hint: replay then waits for the leader.
        let committed = read_json(&dir.join("committed.json")).unwrap_or(None);
        let mut bases = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == SEGMENT_SUFFIX) {
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
                std::fs::remove_file(&path)?;
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
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
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid)?;
                f.sync_all()?;
                torn = true;
            }
            if count == 0 {
                std::fs::remove_file(&path)?;
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
            let f = OpenOptions::new().append(true).open(&path)?;
            let len = f.metadata()?.len();
            inner.active = Some((base, f, len));
        }
        sync_dir(dir)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Files of the log (segments), for tests and metrics.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    fn append_sync(&self, entries: Vec<Entry<TypeConfig>>) -> io::Result<()> {
        let mut inner = self.inner.lock();
        for entry in entries {
            let index = entry.log_id.index;
            let bytes = frame(&entry)?;
            let follows = inner
                .positions
                .keys()
                .next_back()
                .is_none_or(|last| last + 1 == index);
            let roll = match &inner.active {
                None => true,
                Some((base, _, _)) => inner.segments[base] >= inner.segment_entries_max || !follows,
            };
            if roll {
                if let Some((_, f, _)) = &inner.active {
                    f.sync_data()?;
                }
                let path = segment_path(&inner.dir, index);
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(&path)?;
                sync_dir(&inner.dir)?;
                inner.segments.insert(index, 0);
                inner.active = Some((index, f, 0));
            }
            let Some((base, f, len)) = inner.active.as_mut() else {
                return Err(io_err("no active segment"));
            };
            let (base, offset) = (*base, *len);
            f.write_all(&bytes)?;
            *len += bytes.len() as u64;
            *inner.segments.get_mut(&base).expect("active segment") += 1;
            inner.positions.insert(
                index,
                Position {
                    segment: base,
                    offset,
                },
            );
            inner.entries.insert(index, entry);
        }
        if let Some((_, f, _)) = &inner.active {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Delete entries from `index` on (a new leader overwrote them).
    fn truncate_sync(&self, index: u64) -> io::Result<()> {
        let mut inner = self.inner.lock();
        let Some(pos) = inner.positions.get(&index).copied() else {
            inner.entries.split_off(&index);
            return Ok(());
        };
        let later: Vec<u64> = inner
            .segments
            .range(pos.segment + 1..)
            .map(|(&b, _)| b)
            .collect();
        inner.active = None;
        for base in later {
            std::fs::remove_file(segment_path(&inner.dir, base))?;
            inner.segments.remove(&base);
        }
        let path = segment_path(&inner.dir, pos.segment);
        if pos.offset == 0 {
            std::fs::remove_file(&path)?;
            inner.segments.remove(&pos.segment);
        } else {
            let f = OpenOptions::new().append(true).open(&path)?;
            f.set_len(pos.offset)?;
            f.sync_all()?;
            let kept = inner
                .positions
                .range(pos.segment..index)
                .filter(|(_, p)| p.segment == pos.segment)
                .count() as u64;
            inner.segments.insert(pos.segment, kept);
            inner.active = Some((pos.segment, f, pos.offset));
        }
        inner.entries.split_off(&index);
        inner.positions.split_off(&index);
        if inner.active.is_none() {
            if let Some((&base, _)) = inner.segments.iter().next_back() {
                let path = segment_path(&inner.dir, base);
                let f = OpenOptions::new().append(true).open(&path)?;
                let len = f.metadata()?.len();
                inner.active = Some((base, f, len));
            }
        }
        sync_dir(&inner.dir)
    }

    /// Forget entries up to `log_id` (a snapshot holds them). The purge point is made
    /// durable first; then every segment holding only purged entries is deleted.
    fn purge_sync(&self, log_id: LogId<NodeId>) -> io::Result<()> {
        let mut inner = self.inner.lock();
        write_atomic(&inner.dir, "purged.json", &log_id)?;
        inner.purged = Some(log_id);
        let keep_from = log_id.index + 1;
        inner.entries = inner.entries.split_off(&keep_from);
        inner.positions = inner.positions.split_off(&keep_from);
        let bases: Vec<u64> = inner.segments.keys().copied().collect();
        if inner.positions.is_empty() {
            // Nothing live is left (a snapshot past the end of the log was installed):
            // the next entry starts a fresh segment.
            inner.active = None;
            for base in bases {
                std::fs::remove_file(segment_path(&inner.dir, base))?;
            }
            inner.segments.clear();
            return sync_dir(&inner.dir);
        }
        let active = inner.active.as_ref().map(|(b, _, _)| *b);
        for (i, base) in bases.iter().enumerate() {
            // Entries of a segment end where the next one begins.
            let next = bases.get(i + 1).copied();
            let all_purged = match next {
                Some(next) => next <= keep_from,
                None => false,
            };
            if all_purged && Some(*base) != active {
                std::fs::remove_file(segment_path(&inner.dir, *base))?;
                inner.segments.remove(base);
            }
        }
        Ok(())
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        let inner = self.inner.lock();
        inner.entries.range(range).map(|(_, e)| e.clone()).collect()
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
        let mut inner = self.inner.lock();
        write_atomic(&inner.dir, "vote.json", vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        inner.vote = Some(*vote);
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
        // is replaced atomically but not fsynced: losing it only delays replay.
        let mut inner = self.inner.lock();
        inner.committed = committed;
        let bytes = serde_json::to_vec(&committed).map_err(|e| storage_err(io_err(e)))?;
        let tmp = inner.dir.join("committed.json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, inner.dir.join("committed.json")))
            .map_err(storage_err)
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
        let result = self.append_sync(entries);
        let ret = result
            .as_ref()
            .map_err(|e| storage_err(io::Error::new(e.kind(), e.to_string())))
            .map(|_| ());
        callback.log_io_completed(result);
        ret
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.truncate_sync(log_id.index).map_err(storage_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.purge_sync(log_id).map_err(storage_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MetadataBatch;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataBatch(vec![])),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store
            .read_range(..)
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[test]
    fn entries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 4).unwrap();
        store
            .append_sync((1..=10).map(|i| entry(1, i)).collect())
            .unwrap();
        assert_eq!(store.segment_count(), 3);
        drop(store);
        let store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&store), (1..=10).collect::<Vec<_>>());
        store.append_sync(vec![entry(2, 11)]).unwrap();
        let store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&store).last(), Some(&11));
    }

    #[test]
    fn a_torn_tail_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 100).unwrap();
        store
            .append_sync((1..=5).map(|i| entry(1, i)).collect())
            .unwrap();
        drop(store);
        let path = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the last frame ...
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let store = LogStore::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
        // ... and a flipped byte in an earlier one.
        store.append_sync(vec![entry(1, 5)]).unwrap();
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        let (frames, _) = read_segment(&bytes);
        let third = frames[2].0 as usize;
        bytes[third + FRAME_HEADER + 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let store = LogStore::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&store), vec![1, 2]);
        store.append_sync(vec![entry(2, 3)]).unwrap();
        let store = LogStore::open(dir.path(), 100).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3]);
    }

    #[test]
    fn truncate_drops_the_tail_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), 3).unwrap();
        store
            .append_sync((1..=8).map(|i| entry(1, i)).collect())
            .unwrap();
        store.truncate_sync(5).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
        store.append_sync(vec![entry(2, 5), entry(2, 6)]).unwrap();
        // Truncating at a segment's first entry removes the file.
        store.truncate_sync(4).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3]);
        let store = LogStore::open(dir.path(), 3).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3]);
        store.append_sync(vec![entry(3, 4)]).unwrap();
        let store = LogStore::open(dir.path(), 3).unwrap();
        let terms: Vec<u64> = store
            .read_range(..)
            .iter()
            .map(|e| e.log_id.leader_id.term)
            .collect();
        assert_eq!(terms, vec![1, 1, 1, 3]);
    }

    #[tokio::test]
    async fn purge_deletes_whole_segments_and_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), 4).unwrap();
        store
            .append_sync((1..=12).map(|i| entry(1, i)).collect())
            .unwrap();
        assert_eq!(store.segment_count(), 3);
        let purged = LogId::new(CommittedLeaderId::new(1, 1), 6);
        store.purge(purged).await.unwrap();
        // Segment 1..=4 is gone; 5..=8 still holds 7 and 8.
        assert_eq!(store.segment_count(), 2);
        assert_eq!(indexes(&store), (7..=12).collect::<Vec<_>>());
        let mut store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&store), (7..=12).collect::<Vec<_>>());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(12));
        // Purging everything leaves the purge point as the last log id.
        let all = LogId::new(CommittedLeaderId::new(1, 1), 12);
        store.purge(all).await.unwrap();
        let mut store = LogStore::open(dir.path(), 4).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(all));
        assert!(indexes(&store).is_empty());
        assert_eq!(store.segment_count(), 0);
        // A snapshot installed past the log's end: the log goes on after a gap.
        let far = LogId::new(CommittedLeaderId::new(2, 1), 40);
        store.purge(far).await.unwrap();
        store.append_sync(vec![entry(2, 41)]).unwrap();
        let store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(indexes(&store), vec![41]);
    }

    #[tokio::test]
    async fn the_vote_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), None);
        let vote = Vote::new(3, 2);
        store.save_vote(&vote).await.unwrap();
        let mut store = LogStore::open(dir.path(), 4).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    }
}
