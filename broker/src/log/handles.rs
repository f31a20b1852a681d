//! A bound on the segment files a broker holds open.
//!
//! Every `.log`, `.index` and `.timeindex` file of every partition is a
//! [`SegmentFile`]: a path that is opened on demand (through the storage seam) and may
//! be closed again by the broker-wide [`FileHandles`] when more than its maximum are
//! open. Kafka's users run 100,000+ segments per broker; holding all of them open
//! would need as many descriptors, most of them for data nobody reads.
//!
//! Replacement is CLOCK (second chance), an LRU approximation whose hit path takes no
//! shared lock: a read of an open file sets its slot's reference bit, and eviction
//! passes over referenced slots once, clearing the bit. The data files of active
//! segments are pinned (appends and tailing fetches go there) and never closed; their
//! indexes are resident in memory and go through the cache. Closing drops only the
//! cache's reference: a [`FileSlice`](crate::log::FileSlice) handed to a fetch
//! holds its own `Arc<File>`, so a file in flight stays open until it is sent.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::storage::{Disk, DiskFile, FileKind, OpenMode};

/// Open segment files kept when the broker's configuration does not say.
pub const DEFAULT_MAX_OPEN_FILES: usize = 8192;
/// Descriptors the cache leaves to everything else under the process limit: client and
/// peer sockets, the metadata log, checkpoints.
pub const RESERVED_DESCRIPTORS: usize = 1024;

/// What every log of a broker shares: the storage seam and the bound on open files.
#[derive(Debug, Clone)]
pub struct LogStorage {
    pub disk: Disk,
    pub handles: Arc<FileHandles>,
}

impl LogStorage {
    pub fn new(disk: Disk, max_open_files: usize) -> LogStorage {
        LogStorage {
            disk,
            handles: FileHandles::new(max_open_files),
        }
    }
}

impl Default for LogStorage {
    /// The real disk and a bound of its own ([`DEFAULT_MAX_OPEN_FILES`]).
    fn default() -> Self {
        LogStorage::new(Disk::real(), DEFAULT_MAX_OPEN_FILES)
    }
}

/// The broker-wide set of open segment files: at most `max_open` of them unpinned.
/// Pinned files (the active segments' data files) stay open on top of the bound.
pub struct FileHandles {
    max_open: usize,
    /// Slots holding an open file, pinned ones included.
    open: AtomicUsize,
    /// Pinned slots holding an open file.
    pinned_open: AtomicUsize,
    /// The process's descriptor limit (RLIMIT_NOFILE): the unpinned files give way to
    /// the pinned ones under it, so that many partitions' active segments never leave
    /// the broker without a descriptor for a new segment or a connection.
    descriptors: AtomicUsize,
    /// Unpinned slots that may hold an open file, in clock order. Entries of slots
    /// dropped or pinned meanwhile are skipped (and removed) when met.
    clock: Mutex<VecDeque<Weak<Slot>>>,
}

impl fmt::Debug for FileHandles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileHandles")
            .field("max_open", &self.max_open)
            .field("open", &self.open_count())
            .finish()
    }
}

impl FileHandles {
    /// At least one unpinned file stays open whatever `max_open` says.
    pub fn new(max_open: usize) -> Arc<FileHandles> {
        Arc::new(FileHandles {
            max_open: max_open.max(1),
            open: AtomicUsize::new(0),
            pinned_open: AtomicUsize::new(0),
            descriptors: AtomicUsize::new(usize::MAX),
            clock: Mutex::new(VecDeque::new()),
        })
    }

    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Bound the cache by the process's descriptor limit as well: unpinned files are
    /// closed while pinned ones, unpinned ones and [`RESERVED_DESCRIPTORS`] would exceed
    /// it. Takes effect at the next open.
    pub fn limit_to_descriptors(&self, limit: usize) {
        self.descriptors.store(limit, Ordering::Release);
    }

    /// The most unpinned files kept open now: `max_open`, or less when the pinned files
    /// take the descriptors; at least one.
    fn bound(&self) -> usize {
        let room = self.descriptors.load(Ordering::Acquire).saturating_sub(
            RESERVED_DESCRIPTORS.saturating_add(self.pinned_open.load(Ordering::Acquire)),
        );
        self.max_open.min(room).max(1)
    }

    /// Segment files held open now, pinned ones included (not counting those only
    /// fetches in flight hold).
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn unpinned_open(&self) -> usize {
        self.open_count()
            .saturating_sub(self.pinned_open.load(Ordering::Acquire))
    }

    /// Keep the counters in step with one slot's change, made under its lock.
    fn account(&self, before: (bool, bool), after: (bool, bool)) {
        let ((had, was_pinned), (has, pinned)) = (before, after);
        if has && !had {
            self.open.fetch_add(1, Ordering::AcqRel);
        }
        let (pinned_before, pinned_after) = (had && was_pinned, has && pinned);
        if pinned_after && !pinned_before {
            self.pinned_open.fetch_add(1, Ordering::AcqRel);
        }
        if pinned_before && !pinned_after {
            self.pinned_open.fetch_sub(1, Ordering::AcqRel);
        }
        if had && !has {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Put an unpinned slot with an open file on the clock, then close files until
    /// the bound holds.
    fn admit(&self, slot: &Arc<Slot>) {
        let mut clock = self.clock.lock();
        if !slot.queued.swap(true, Ordering::AcqRel) {
            clock.push_back(Arc::downgrade(slot));
        }
        self.evict(&mut clock);
        // Slots dropped while open leave dead entries; keep the queue proportional to
        // the files it tracks.
        if clock.len() > 2 * self.max_open + 64 {
            clock.retain(|w| w.strong_count() > 0);
        }
    }

    fn evict(&self, clock: &mut VecDeque<Weak<Slot>>) {
        // Two passes at most: the first may only clear reference bits.
        let mut budget = 2 * clock.len() + 1;
        while self.unpinned_open() > self.bound() && budget > 0 {
            budget -= 1;
            let Some(weak) = clock.pop_front() else {
                return;
            };
            let Some(slot) = weak.upgrade() else {
                continue;
            };
            if slot.referenced.swap(false, Ordering::AcqRel) {
                clock.push_back(weak);
                continue;
            }
            // A slot busy opening or reading is skipped, never waited for (that thread
            // may be waiting for this lock).
            let Some(mut state) = slot.state.try_lock() else {
                clock.push_back(weak);
                continue;
            };
            slot.queued.store(false, Ordering::Release);
            if !state.pinned && state.file.is_some() {
                state.file = None;
                self.account((true, false), (false, false));
            }
        }
    }
}

/// What a slot holds, changed only under its lock.
struct SlotState {
    file: Option<DiskFile>,
    pinned: bool,
}

struct Slot {
    path: PathBuf,
    kind: FileKind,
    /// How a closed file is opened again: data files must exist (a missing `.log` is
    /// an error, not an empty segment); index files are created (then rebuilt).
    reopen: OpenMode,
    disk: Disk,
    handles: Arc<FileHandles>,
    state: Mutex<SlotState>,
    referenced: AtomicBool,
    /// On the clock queue; changed under the clock's lock only.
    queued: AtomicBool,
    /// The segment is gone: never open the path again (it may name another file now).
    retired: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        let before = (state.file.is_some(), state.pinned);
        self.handles.account(before, (false, false));
    }
}

/// One file of a segment, opened on demand and closed by [`FileHandles`] when others
/// are needed more. Clones share the slot.
#[derive(Clone)]
pub struct SegmentFile {
    slot: Arc<Slot>,
}

impl fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.slot.state.lock();
        f.debug_struct("SegmentFile")
            .field("path", &self.slot.path)
            .field("open", &state.file.is_some())
            .field("pinned", &state.pinned)
            .finish()
    }
}

impl SegmentFile {
    /// A file that exists on disk, not opened yet.
    pub fn existing(
        handles: &Arc<FileHandles>,
        disk: &Disk,
        path: PathBuf,
        kind: FileKind,
    ) -> SegmentFile {
        SegmentFile {
            slot: Arc::new(Slot {
                path,
                kind,
                reopen: match kind {
                    FileKind::Index => OpenMode::CREATE,
                    _ => OpenMode::READ_WRITE,
                },
                disk: disk.clone(),
                handles: Arc::clone(handles),
                state: Mutex::new(SlotState {
                    file: None,
                    pinned: false,
                }),
                referenced: AtomicBool::new(false),
                queued: AtomicBool::new(false),
                retired: AtomicBool::new(false),
            }),
        }
    }

    /// Open `path` now with `mode` (e.g. created empty), pinned or not.
    pub fn open_now(
        handles: &Arc<FileHandles>,
        disk: &Disk,
        path: PathBuf,
        kind: FileKind,
        mode: OpenMode,
        pinned: bool,
    ) -> io::Result<SegmentFile> {
        let file = SegmentFile::existing(handles, disk, path, kind);
        file.slot.state.lock().pinned = pinned;
        file.open_with(mode)?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.slot.path
    }

    /// The open file, opening it if the cache closed it.
    pub fn get(&self) -> io::Result<DiskFile> {
        {
            let state = self.slot.state.lock();
            if let Some(f) = &state.file {
                self.slot.referenced.store(true, Ordering::Relaxed);
                return Ok(f.clone());
            }
        }
        self.open_with(self.slot.reopen)
    }

    /// (Re)open the file with `mode`, replacing any open handle.
    pub fn open_with(&self, mode: OpenMode) -> io::Result<DiskFile> {
        let slot = &self.slot;
        let (opened, pinned) = {
            let mut state = slot.state.lock();
            if slot.retired.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: the segment was deleted", slot.path.display()),
                ));
            }
            if let (Some(f), false) = (&state.file, mode.truncate) {
                return Ok(f.clone());
            }
            let opened = slot.disk.open(&slot.path, slot.kind, mode)?;
            let before = (state.file.is_some(), state.pinned);
            state.file = Some(opened.clone());
            slot.handles.account(before, (true, state.pinned));
            (opened, state.pinned)
        };
        if !pinned {
            slot.handles.admit(slot);
        }
        Ok(opened)
    }

    /// Keep the file open until [`SegmentFile::unpin`] (active segments).
    pub fn pin(&self) {
        let mut state = self.slot.state.lock();
        let before = (state.file.is_some(), state.pinned);
        state.pinned = true;
        self.slot.handles.account(before, (before.0, true));
    }

    /// Let the cache close the file again (the segment was rolled).
    pub fn unpin(&self) {
        let open = {
            let mut state = self.slot.state.lock();
            let before = (state.file.is_some(), state.pinned);
            state.pinned = false;
            self.slot.handles.account(before, (before.0, false));
            before.0
        };
        if open {
            self.slot.handles.admit(&self.slot);
        }
    }

    /// Close the file for good: the segment is deleted or replaced. Holders of the
    /// `Arc<File>` keep reading what they have.
    pub fn retire(&self) {
        self.slot.retired.store(true, Ordering::Release);
        let mut state = self.slot.state.lock();
        let before = (state.file.is_some(), state.pinned);
        state.file = None;
        self.slot.handles.account(before, (false, state.pinned));
    }

    /// Retire the file and remove it from the disk (deleting its segment).
    pub fn remove(&self) -> io::Result<()> {
        self.retire();
        self.slot
            .disk
            .remove_file_if_exists(&self.slot.path, self.slot.kind)
            .map(|_| ())
    }

    /// Whether two handles are the same file of the same segment.
    pub fn same(&self, other: &SegmentFile) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot)
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.slot.state.lock().file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, handles: &Arc<FileHandles>, n: usize) -> Vec<SegmentFile> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.log"));
                std::fs::write(&path, i.to_string()).unwrap();
                SegmentFile::existing(handles, &Disk::real(), path, FileKind::Segment)
            })
            .collect()
    }

    fn read(file: &SegmentFile) -> String {
        let f = file.get().unwrap();
        String::from_utf8(f.read_to_end().unwrap()).unwrap()
    }

    #[test]
    fn open_files_stay_within_the_bound_and_reopen_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(4);
        let files = files(dir.path(), &handles, 20);
        for round in 0..3 {
            for (i, f) in files.iter().enumerate() {
                assert_eq!(read(f), i.to_string(), "round {round}");
                assert!(handles.open_count() <= 4);
            }
        }
        assert_eq!(handles.open_count(), 4);
        drop(files);
        assert_eq!(handles.open_count(), 0);
    }

    #[test]
    fn pinned_files_are_never_closed_and_recently_read_ones_get_a_second_chance() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(3);
        let files = files(dir.path(), &handles, 10);
        files[0].pin();
        files[0].get().unwrap();
        files[1].get().unwrap();
        for f in &files[2..] {
            // files[1] is read again before every open: it keeps its handle.
            files[1].get().unwrap();
            f.get().unwrap();
        }
        assert!(files[0].is_open(), "pinned");
        assert!(files[1].is_open(), "referenced");
        // The pinned file is on top of the bound.
        assert_eq!(handles.open_count(), 4);
        files[0].unpin();
        assert_eq!(handles.open_count(), 3);
    }

    #[test]
    fn pinned_files_take_descriptors_from_the_cache_under_the_process_limit() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(100);
        handles.limit_to_descriptors(RESERVED_DESCRIPTORS + 10);
        let files = files(dir.path(), &handles, 22);
        for f in &files[..6] {
            f.pin();
            f.get().unwrap();
        }
        for (i, f) in files[6..20].iter().enumerate() {
            assert_eq!(read(f), (i + 6).to_string());
            // 10 descriptors for segment files, 6 of them pinned: 4 left to the cache.
            assert!(handles.open_count() <= 10, "{}", handles.open_count());
        }
        assert_eq!(handles.open_count(), 10);
        // Pinned files past the limit still leave one unpinned file open.
        for f in &files[6..16] {
            f.pin();
            f.get().unwrap();
        }
        files[20].get().unwrap();
        files[21].get().unwrap();
        assert_eq!(handles.open_count(), 17);
    }

    #[test]
    fn a_handle_in_flight_outlives_eviction_and_retirement() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(1);
        let files = files(dir.path(), &handles, 3);
        let in_flight = files[0].get().unwrap();
        files[1].get().unwrap();
        files[2].get().unwrap();
        assert!(!files[0].is_open(), "evicted from the cache");
        std::fs::remove_file(files[0].path()).unwrap();
        files[0].retire();
        assert_eq!(in_flight.read_to_end().unwrap(), b"0");
        let err = files[0].get().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("0.log"), "{err}");
    }
}
