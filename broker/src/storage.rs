//! The storage seam: every file operation of the broker's on-disk state (partition
//! segments, their indexes, checkpoints, the metadata log) goes through [`Disk`], so
//! deterministic tests can make any of them fail the way a real disk does.
//!
//! The files are real: [`DiskFile`] wraps an `Arc<File>` that readers may take
//! ([`DiskFile::file`]) to send ranges with sendfile. Each operation performs the real
//! system call unless a [`FaultPlan`] says otherwise; production disks have no plan,
//! and the check costs one branch on an `Option`.
//!
//! A plan holds [`FaultRule`]s: "the 3rd write of a segment file fails with ENOSPC",
//! "every fsync of `recovery-point-offset-checkpoint.tmp` fails with EIO", "the next
//! write to this path lands 100 bytes and then the process dies". Faults:
//!
//! - [`Fault::Errno`]: the call fails with that OS error and changes nothing (ENOSPC,
//!   EIO, EMFILE, ...), as a write refused by the kernel does.
//! - [`Fault::Short`]: a write transfers only the first bytes and reports the short
//!   count, as `write(2)` may; callers must loop (the `write_all*` methods do).
//! - [`Fault::Torn`]: a write lands only its first bytes, then the process "crashes":
//!   the call fails and so does every later operation through any `Disk` sharing the
//!   plan, so nothing else reaches the files. The test then drops what it had open and
//!   reopens the files with a fresh `Disk`, as a restarted process would.
//!
//! On operations that move no bytes (open, fsync, rename, ...) `Short` and `Torn` act
//! as EIO, and `Torn` crashes as well.
//!
//! This module knows nothing of what the files hold; the partition log
//! (`crate::log`) and the metadata log (`crate::quorum`) both build on it.

use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// What a file is, so a fault plan can aim at one kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A partition segment's `.log` file (record batches).
    Segment,
    /// A segment's `.index` or `.timeindex` file.
    Index,
    /// A small file replaced atomically: checkpoints, snapshots, markers, partition
    /// metadata, the metadata quorum's vote and purge point.
    Checkpoint,
    /// A segment of the metadata quorum's Raft log.
    MetadataLog,
    /// A directory (created, listed, fsynced after a rename, create or delete).
    Directory,
    /// Anything else.
    Other,
}

/// A kind of file operation, for fault plans and call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening or creating a file.
    Open,
    /// A positional or whole-file read.
    Read,
    /// One write system call (a `write_all*` loop makes one per transfer).
    Write,
    /// Truncating or extending a file.
    SetLen,
    /// fsync / fdatasync of a file or a directory.
    Sync,
    Rename,
    Remove,
    CreateDir,
    ReadDir,
    /// Reading a file's size or times, or whether it exists.
    Stat,
}

/// What an operation hit by a [`FaultRule`] does instead of its normal work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this OS error number, changing nothing.
    Errno(i32),
    /// Transfer at most this many bytes and report the short count (writes).
    Short(usize),
    /// Land at most this many bytes, then crash (see the module docs).
    Torn(usize),
}

impl Fault {
    /// No space left on the device.
    pub const ENOSPC: Fault = Fault::Errno(libc::ENOSPC);
    /// An I/O error (a bad sector, a failed writeback).
    pub const EIO: Fault = Fault::Errno(libc::EIO);
}

/// Which calls fail, and how. Built with [`FaultRule::new`] and narrowed with the
/// other methods; by default it hits the first matching call only.
#[derive(Debug, Clone)]
pub struct FaultRule {
    op: Op,
    fault: Fault,
    kind: Option<FileKind>,
    path: Option<PathBuf>,
    name_suffix: Option<String>,
    /// The first matching call that fails, counting from 1.
    nth: u64,
    /// How many consecutive matching calls fail from the `nth` on.
    times: u64,
}

impl FaultRule {
    /// Hit the first `op` call on any file with `fault`.
    pub fn new(op: Op, fault: Fault) -> FaultRule {
        FaultRule {
            op,
            fault,
            kind: None,
            path: None,
            name_suffix: None,
            nth: 1,
            times: 1,
        }
    }

    /// Only calls on files of this kind.
    pub fn kind(mut self, kind: FileKind) -> FaultRule {
        self.kind = Some(kind);
        self
    }

    /// Only calls on exactly this path (either side of a rename).
    pub fn path(mut self, path: impl Into<PathBuf>) -> FaultRule {
        self.path = Some(path.into());
        self
    }

    /// Only calls on paths whose file name ends with `suffix` (e.g. `.log` or
    /// `recovery-point-offset-checkpoint.tmp`).
    pub fn name_ends_with(mut self, suffix: impl Into<String>) -> FaultRule {
        self.name_suffix = Some(suffix.into());
        self
    }

    /// Let the first `n - 1` matching calls through; the `n`th fails (n >= 1).
    pub fn nth(mut self, n: u64) -> FaultRule {
        self.nth = n.max(1);
        self
    }

    /// Fail `count` consecutive matching calls from the `nth` on.
    pub fn times(mut self, count: u64) -> FaultRule {
        self.times = count;
        self
    }

    /// Fail every matching call from the `nth` on, until the rule is removed.
    pub fn always(self) -> FaultRule {
        self.times(u64::MAX)
    }

    fn matches(&self, op: Op, kind: FileKind, paths: &[&Path]) -> bool {
        self.op == op
            && self.kind.is_none_or(|k| k == kind)
            && self
                .path
                .as_deref()
                .is_none_or(|want| paths.contains(&want))
            && self.name_suffix.as_deref().is_none_or(|suffix| {
                paths.iter().any(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
                })
            })
    }
}

/// Identifies a rule added to a [`FaultPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

#[derive(Debug)]
struct ActiveRule {
    id: RuleId,
    rule: FaultRule,
    /// Matching calls seen so far.
    seen: u64,
    /// Calls this rule failed.
    fired: u64,
}

#[derive(Debug, Default)]
struct PlanState {
    rules: Vec<ActiveRule>,
    next_id: u64,
    /// Calls seen, by operation and file kind.
    calls: Vec<((Op, FileKind), u64)>,
    /// Fired counts of removed rules stay readable.
    retired: Vec<(RuleId, u64)>,
}

/// The faults a test injects, shared by every [`Disk`] made from it.
#[derive(Debug, Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    crashed: AtomicBool,
}

impl FaultPlan {
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// Add a rule; rules are checked in the order added and the first that hits wins.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut state = self.state.lock();
        let id = RuleId(state.next_id);
        state.next_id += 1;
        state.rules.push(ActiveRule {
            id,
            rule,
            seen: 0,
            fired: 0,
        });
        id
    }

    /// Remove one rule (the fault "clears").
    pub fn remove(&self, id: RuleId) {
        let mut state = self.state.lock();
        if let Some(i) = state.rules.iter().position(|r| r.id == id) {
            let rule = state.rules.remove(i);
            state.retired.push((rule.id, rule.fired));
        }
    }

    /// Remove every rule. A crash is not undone: a crashed process stays dead.
    pub fn clear(&self) {
        let mut state = self.state.lock();
        let rules = std::mem::take(&mut state.rules);
        state
            .retired
            .extend(rules.into_iter().map(|r| (r.id, r.fired)));
    }

    /// How many calls the rule failed.
    pub fn fired(&self, id: RuleId) -> u64 {
        let state = self.state.lock();
        state
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.fired)
            .or_else(|| state.retired.iter().find(|r| r.0 == id).map(|r| r.1))
            .unwrap_or(0)
    }

    /// How many `op` calls were made on files of `kind` (failed ones included).
    pub fn calls(&self, op: Op, kind: FileKind) -> u64 {
        let state = self.state.lock();
        state
            .calls
            .iter()
            .find(|(key, _)| *key == (op, kind))
            .map_or(0, |(_, n)| *n)
    }

    /// The process dies now: every later operation fails.
    pub fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    pub fn has_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Count the call and return the fault it must suffer, if any.
    fn check(&self, op: Op, kind: FileKind, paths: &[&Path]) -> io::Result<Option<Fault>> {
        if self.has_crashed() {
            return Err(crashed_error());
        }
        let mut state = self.state.lock();
        match state.calls.iter_mut().find(|(key, _)| *key == (op, kind)) {
            Some((_, n)) => *n += 1,
            None => state.calls.push(((op, kind), 1)),
        }
        for active in &mut state.rules {
            if !active.rule.matches(op, kind, paths) {
                continue;
            }
            active.seen += 1;
            let first = active.rule.nth;
            if active.seen >= first && active.seen - first < active.rule.times {
                active.fired += 1;
                let fault = active.rule.fault;
                if matches!(fault, Fault::Torn(_)) {
                    self.crash();
                }
                return Ok(Some(fault));
            }
        }
        Ok(None)
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("storage seam: the process crashed (injected fault)")
}

/// The error an operation that moves no bytes returns for `fault`.
fn fault_error(fault: Fault) -> io::Error {
    match fault {
        Fault::Errno(errno) => io::Error::from_raw_os_error(errno),
        Fault::Short(_) | Fault::Torn(_) => io::Error::from_raw_os_error(libc::EIO),
    }
}

/// How to open a file; the constants cover what the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMode {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
}

impl OpenMode {
    /// An existing file, read only.
    pub const READ: OpenMode = OpenMode {
        read: true,
        write: false,
        append: false,
        create: false,
        truncate: false,
    };
    /// An existing file, read and write.
    pub const READ_WRITE: OpenMode = OpenMode {
        write: true,
        ..OpenMode::READ
    };
    /// Read and write, created empty when missing, kept as is otherwise.
    pub const CREATE: OpenMode = OpenMode {
        create: true,
        ..OpenMode::READ_WRITE
    };
    /// Read and write, created or emptied.
    pub const TRUNCATE: OpenMode = OpenMode {
        truncate: true,
        ..OpenMode::CREATE
    };
    /// Writes go to the end ([`DiskFile::write_all`]); created when missing.
    pub const APPEND: OpenMode = OpenMode {
        read: true,
        write: false,
        append: true,
        create: true,
        truncate: false,
    };

    fn options(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append)
            .create(self.create)
            .truncate(self.truncate);
        options
    }
}

/// The broker's file system, with an optional fault plan. Cheap to clone; clones
/// share the plan.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    faults: Option<Arc<FaultPlan>>,
}

impl Disk {
    /// The real file system, no faults.
    pub fn real() -> Disk {
        Disk { faults: None }
    }

    /// The real file system, with the faults `plan` injects.
    pub fn with_faults(plan: Arc<FaultPlan>) -> Disk {
        Disk { faults: Some(plan) }
    }

    pub fn faults(&self) -> Option<&Arc<FaultPlan>> {
        self.faults.as_ref()
    }

    #[inline]
    fn check(&self, op: Op, kind: FileKind, paths: &[&Path]) -> io::Result<Option<Fault>> {
        match &self.faults {
            None => Ok(None),
            Some(plan) => plan.check(op, kind, paths),
        }
    }

    /// Fail with the fault's error if an operation that moves no bytes is hit.
    #[inline]
    fn gate(&self, op: Op, kind: FileKind, paths: &[&Path]) -> io::Result<()> {
        match self.check(op, kind, paths)? {
            None => Ok(()),
            Some(fault) => Err(fault_error(fault)),
        }
    }

    pub fn open(&self, path: &Path, kind: FileKind, mode: OpenMode) -> io::Result<DiskFile> {
        self.gate(Op::Open, kind, &[path])?;
        let file = mode.options().open(path)?;
        Ok(DiskFile {
            file: Arc::new(file),
            path: Arc::from(path),
            kind,
            disk: self.clone(),
        })
    }

    /// The whole file (`std::fs::read`).
    pub fn read(&self, path: &Path, kind: FileKind) -> io::Result<Vec<u8>> {
        self.open(path, kind, OpenMode::READ)?.read_to_end()
    }

    /// The whole file, `None` when it does not exist; a file longer than `max_bytes`
    /// is an `InvalidData` error naming the path and the limit (nothing is allocated
    /// for it).
    pub fn read_if_exists(
        &self,
        path: &Path,
        kind: FileKind,
        max_bytes: u64,
    ) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open(path, kind, OpenMode::READ) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.size_bytes()?;
        if len > max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {len} bytes exceeds the {max_bytes} bytes read for a {kind:?} file",
                    path.display()
                ),
            ));
        }
        file.read_to_end().map(Some)
    }

    /// Create or replace `path` with `bytes`, without fsync (`std::fs::write`).
    pub fn write(&self, path: &Path, kind: FileKind, bytes: &[u8]) -> io::Result<()> {
        self.open(path, kind, OpenMode::TRUNCATE)?
            .write_all_at(bytes, 0)
    }

    /// Replace `dir/name` so that a crash leaves either the old or the new content,
    /// durably: write `name.tmp`, fsync it, rename it over `name`, fsync `dir`. On an
    /// error the old file is untouched (and the temporary file removed if possible).
    pub fn write_atomically(
        &self,
        dir: &Path,
        name: &str,
        kind: FileKind,
        bytes: &[u8],
    ) -> io::Result<()> {
        let tmp = dir.join(format!("{name}.tmp"));
        let written = self.open(&tmp, kind, OpenMode::TRUNCATE).and_then(|f| {
            f.write_all_at(bytes, 0)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| self.rename(&tmp, &dir.join(name), kind)) {
            // Best effort: a leftover `.tmp` is removed again when the directory is
            // next opened.
            let _ = self.remove_file(&tmp, kind);
            return Err(e);
        }
        self.sync_dir(dir)
    }

    pub fn rename(&self, from: &Path, to: &Path, kind: FileKind) -> io::Result<()> {
        self.gate(Op::Rename, kind, &[from, to])?;
        std::fs::rename(from, to)
    }

    pub fn remove_file(&self, path: &Path, kind: FileKind) -> io::Result<()> {
        self.gate(Op::Remove, kind, &[path])?;
        std::fs::remove_file(path)
    }

    /// Remove `path`; returns whether it existed.
    pub fn remove_file_if_exists(&self, path: &Path, kind: FileKind) -> io::Result<bool> {
        match self.remove_file(path, kind) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove a directory and everything in it.
    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.gate(Op::Remove, FileKind::Directory, &[path])?;
        std::fs::remove_dir_all(path)
    }

    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.gate(Op::CreateDir, FileKind::Directory, &[path])?;
        std::fs::create_dir_all(path)
    }

    /// The names of the entries of `dir`, sorted.
    pub fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.gate(Op::ReadDir, FileKind::Directory, &[dir])?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name());
        }
        names.sort_unstable();
        Ok(names)
    }

    /// fsync a directory, making creates, renames and removals in it durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.gate(Op::Sync, FileKind::Directory, &[dir])?;
        File::open(dir)?.sync_all()
    }

    pub fn exists(&self, path: &Path, kind: FileKind) -> io::Result<bool> {
        self.gate(Op::Stat, kind, &[path])?;
        path.try_exists()
    }
}

/// An open file whose operations go through the seam. Cheap to clone (clones share
/// the open file). The `Arc<File>` keeps the file open while anyone holds it, even
/// after it is unlinked.
#[derive(Debug, Clone)]
pub struct DiskFile {
    file: Arc<File>,
    path: Arc<Path>,
    kind: FileKind,
    disk: Disk,
}

impl DiskFile {
    /// The open file, for reads the seam need not see (sendfile of fetch ranges).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> FileKind {
        self.kind
    }

    #[inline]
    fn check(&self, op: Op) -> io::Result<Option<Fault>> {
        self.disk.check(op, self.kind, &[&self.path])
    }

    #[inline]
    fn gate(&self, op: Op) -> io::Result<()> {
        self.disk.gate(op, self.kind, &[&self.path])
    }

    pub fn metadata(&self) -> io::Result<Metadata> {
        self.gate(Op::Stat)?;
        self.file.metadata()
    }

    /// The file's length in bytes.
    pub fn size_bytes(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    pub fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.gate(Op::Read)?;
        self.file.read_exact_at(buf, position)
    }

    /// The whole file from its start.
    pub fn read_to_end(&self) -> io::Result<Vec<u8>> {
        self.gate(Op::Read)?;
        let mut bytes = Vec::new();
        let mut at = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = self.file.read_at(&mut chunk, at)?;
            if n == 0 {
                return Ok(bytes);
            }
            bytes.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
    }

    /// Write all of `buf` at `position`.
    pub fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.write_all_vectored_at(&[buf], position)
    }

    /// Write all of `parts`, one after the other, at `position`: one `pwritev` unless
    /// the kernel (or a [`Fault::Short`]) writes short.
    pub fn write_all_vectored_at(&self, parts: &[&[u8]], position: u64) -> io::Result<()> {
        self.write_all_inner(parts, Some(position))
    }

    /// Write all of `buf` at the file's cursor (the end, for [`OpenMode::APPEND`]).
    pub fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.write_all_inner(&[buf], None)
    }

    fn write_all_inner(&self, parts: &[&[u8]], mut position: Option<u64>) -> io::Result<()> {
        let mut bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut bufs[..];
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            let written = match self.write_some(slices, position) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("{}: write made no progress", self.path.display()),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(p) = position.as_mut() {
                *p += written as u64;
            }
            IoSlice::advance_slices(&mut slices, written);
        }
        Ok(())
    }

    /// One write system call, or what the fault plan makes of it.
    fn write_some(&self, bufs: &[IoSlice<'_>], position: Option<u64>) -> io::Result<usize> {
        let limit = match self.check(Op::Write)? {
            None => return self.write_syscall(bufs, position),
            Some(Fault::Errno(errno)) => return Err(io::Error::from_raw_os_error(errno)),
            Some(Fault::Short(limit) | Fault::Torn(limit)) => limit,
        };
        // A prefix of the data goes out; tests only, so a copy is fine.
        let prefix: Vec<u8> = bufs
            .iter()
            .flat_map(|b| b.iter().copied())
            .take(limit)
            .collect();
        let landed = if prefix.is_empty() {
            0
        } else {
            self.write_syscall(&[IoSlice::new(&prefix)], position)?
        };
        if self.disk.faults.as_ref().is_some_and(|p| p.has_crashed()) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(landed)
    }

    fn write_syscall(&self, bufs: &[IoSlice<'_>], position: Option<u64>) -> io::Result<usize> {
        match position {
            Some(position) => {
                let offset = libc::off_t::try_from(position).map_err(io::Error::other)?;
                Ok(nix::sys::uio::pwritev(&*self.file, bufs, offset)?)
            }
            None => (&*self.file).write_vectored(bufs),
        }
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.gate(Op::SetLen)?;
        self.file.set_len(len)
    }

    /// fdatasync: the data and what is needed to read it back.
    pub fn sync_data(&self) -> io::Result<()> {
        self.gate(Op::Sync)?;
        self.file.sync_data()
    }

    /// fsync: the data and all metadata.
    pub fn sync_all(&self) -> io::Result<()> {
        self.gate(Op::Sync)?;
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faulty() -> (Arc<FaultPlan>, Disk) {
        let plan = FaultPlan::new();
        (plan.clone(), Disk::with_faults(plan))
    }

    #[test]
    fn without_faults_files_behave_as_std() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::real();
        let path = dir.path().join("a.log");
        let f = disk
            .open(&path, FileKind::Segment, OpenMode::CREATE)
            .unwrap();
        f.write_all_vectored_at(&[b"hello ", b"world"], 0).unwrap();
        f.write_all_at(b"W", 6).unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size_bytes().unwrap(), 11);
        let mut buf = [0u8; 5];
        f.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"World");
        // The Arc<File> is the real file: what sendfile would send.
        let mut via_std = [0u8; 5];
        f.file().read_exact_at(&mut via_std, 0).unwrap();
        assert_eq!(&via_std, b"hello");
        f.set_len(5).unwrap();
        assert_eq!(disk.read(&path, FileKind::Segment).unwrap(), b"hello");

        let appended = disk
            .open(&path, FileKind::MetadataLog, OpenMode::APPEND)
            .unwrap();
        appended.write_all(b"!!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello!!");

        disk.write_atomically(dir.path(), "cp", FileKind::Checkpoint, b"1")
            .unwrap();
        assert_eq!(
            disk.read_if_exists(&dir.path().join("cp"), FileKind::Checkpoint, 10)
                .unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            disk.read_if_exists(&dir.path().join("none"), FileKind::Checkpoint, 10)
                .unwrap(),
            None
        );
        let too_long = disk
            .read_if_exists(&path, FileKind::Segment, 3)
            .unwrap_err();
        assert_eq!(too_long.kind(), io::ErrorKind::InvalidData);
        assert!(too_long.to_string().contains("a.log"), "{too_long}");
        assert_eq!(disk.read_dir(dir.path()).unwrap(), ["a.log", "cp"]);
        assert!(disk
            .remove_file_if_exists(&path, FileKind::Segment)
            .unwrap());
        assert!(!disk
            .remove_file_if_exists(&path, FileKind::Segment)
            .unwrap());
    }

    #[test]
    fn the_nth_matching_write_fails_with_enospc_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        let rule = plan.add(
            FaultRule::new(Op::Write, Fault::ENOSPC)
                .kind(FileKind::Segment)
                .nth(3),
        );
        let seg = disk
            .open(
                &dir.path().join("s.log"),
                FileKind::Segment,
                OpenMode::CREATE,
            )
            .unwrap();
        let idx = disk
            .open(
                &dir.path().join("s.index"),
                FileKind::Index,
                OpenMode::CREATE,
            )
            .unwrap();
        seg.write_all_at(b"aa", 0).unwrap();
        idx.write_all_at(b"xx", 0).unwrap(); // another kind: not counted
        seg.write_all_at(b"bb", 2).unwrap();
        let err = seg.write_all_at(b"cc", 4).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            seg.size_bytes().unwrap(),
            4,
            "the failed write landed nothing"
        );
        // One call only: the 4th goes through.
        seg.write_all_at(b"dd", 4).unwrap();
        assert_eq!(std::fs::read(seg.path()).unwrap(), b"aabbdd");
        assert_eq!(plan.fired(rule), 1);
        assert_eq!(plan.calls(Op::Write, FileKind::Segment), 4);
        assert_eq!(plan.calls(Op::Write, FileKind::Index), 1);
    }

    #[test]
    fn an_always_rule_fails_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        let path = dir.path().join("x.log");
        let rule = plan.add(FaultRule::new(Op::Sync, Fault::EIO).path(&path).always());
        let f = disk
            .open(&path, FileKind::Segment, OpenMode::CREATE)
            .unwrap();
        let other = disk
            .open(
                &dir.path().join("y.log"),
                FileKind::Segment,
                OpenMode::CREATE,
            )
            .unwrap();
        for _ in 0..3 {
            assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        }
        other.sync_data().unwrap();
        plan.remove(rule);
        f.sync_all().unwrap();
        assert_eq!(plan.fired(rule), 3);
    }

    #[test]
    fn short_writes_are_completed_by_the_write_all_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        plan.add(FaultRule::new(Op::Write, Fault::Short(3)).times(2));
        let f = disk
            .open(
                &dir.path().join("s.log"),
                FileKind::Segment,
                OpenMode::CREATE,
            )
            .unwrap();
        f.write_all_vectored_at(&[b"0123", b"456789"], 10).unwrap();
        let mut buf = [0u8; 10];
        f.read_exact_at(&mut buf, 10).unwrap();
        assert_eq!(&buf, b"0123456789");
        // 3 + 3 bytes short, then one call for the remaining 4.
        assert_eq!(plan.calls(Op::Write, FileKind::Segment), 3);

        let appended = disk
            .open(
                &dir.path().join("m"),
                FileKind::MetadataLog,
                OpenMode::APPEND,
            )
            .unwrap();
        plan.add(FaultRule::new(Op::Write, Fault::Short(1)).kind(FileKind::MetadataLog));
        appended.write_all(b"abc").unwrap();
        appended.write_all(b"def").unwrap();
        assert_eq!(std::fs::read(appended.path()).unwrap(), b"abcdef");
    }

    #[test]
    fn a_torn_write_lands_a_prefix_and_then_nothing_else_happens() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        let path = dir.path().join("t.log");
        plan.add(FaultRule::new(Op::Write, Fault::Torn(4)).name_ends_with(".log"));
        let f = disk
            .open(&path, FileKind::Segment, OpenMode::CREATE)
            .unwrap();
        assert!(f.write_all_at(b"abcdefgh", 0).is_err());
        assert!(plan.has_crashed());
        // The dead process cannot clean up after itself.
        assert!(f.set_len(0).is_err());
        assert!(f.write_all_at(b"zz", 0).is_err());
        assert!(disk.remove_file(&path, FileKind::Segment).is_err());
        assert!(disk
            .open(&dir.path().join("n"), FileKind::Other, OpenMode::CREATE)
            .is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        assert!(!dir.path().join("n").exists());
        // Clearing the rules does not revive it.
        plan.clear();
        assert!(f.sync_data().is_err());
        // A restarted process sees the torn bytes.
        let restarted = Disk::real();
        assert_eq!(restarted.read(&path, FileKind::Segment).unwrap(), b"abcd");
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        disk.write_atomically(dir.path(), "cp", FileKind::Checkpoint, b"old")
            .unwrap();
        for (op, fault) in [
            (Op::Open, Fault::Errno(libc::EMFILE)),
            (Op::Write, Fault::ENOSPC),
            (Op::Write, Fault::Short(1)),
            (Op::Sync, Fault::EIO),
            (Op::Rename, Fault::EIO),
        ] {
            let rule = plan.add(
                FaultRule::new(op, fault)
                    .kind(FileKind::Checkpoint)
                    .always(),
            );
            let result = disk.write_atomically(dir.path(), "cp", FileKind::Checkpoint, b"new!");
            plan.remove(rule);
            if fault == Fault::Short(1) {
                // Short writes are retried until whole (here: one byte per call).
                result.unwrap();
                assert_eq!(std::fs::read(dir.path().join("cp")).unwrap(), b"new!");
                disk.write_atomically(dir.path(), "cp", FileKind::Checkpoint, b"old")
                    .unwrap();
                continue;
            }
            assert!(result.is_err(), "{op:?} {fault:?}");
            assert_eq!(std::fs::read(dir.path().join("cp")).unwrap(), b"old");
            assert!(!dir.path().join("cp.tmp").exists(), "{op:?}");
        }
        // A failed directory sync comes after the rename: the new content is in place
        // but the caller is told it may not be durable.
        plan.add(FaultRule::new(Op::Sync, Fault::EIO).kind(FileKind::Directory));
        assert!(disk
            .write_atomically(dir.path(), "cp", FileKind::Checkpoint, b"new")
            .is_err());
    }

    #[test]
    fn faults_on_directory_operations() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, disk) = faulty();
        let a = dir.path().join("a");
        disk.write(&a, FileKind::Other, b"1").unwrap();
        plan.add(FaultRule::new(Op::Rename, Fault::EIO).path(dir.path().join("b")));
        assert!(disk
            .rename(&a, &dir.path().join("b"), FileKind::Other)
            .is_err());
        assert!(a.exists());
        plan.add(FaultRule::new(Op::Remove, Fault::EIO));
        assert!(disk.remove_file(&a, FileKind::Other).is_err());
        assert!(a.exists());
        plan.add(FaultRule::new(Op::ReadDir, Fault::EIO));
        assert!(disk.read_dir(dir.path()).is_err());
        plan.add(FaultRule::new(Op::CreateDir, Fault::ENOSPC));
        assert!(disk.create_dir_all(&dir.path().join("d")).is_err());
        plan.add(FaultRule::new(Op::Read, Fault::EIO).kind(FileKind::Other));
        assert!(disk.read(&a, FileKind::Other).is_err());
        // Every rule fired once; all pass now.
        disk.read(&a, FileKind::Other).unwrap();
        disk.rename(&a, &dir.path().join("b"), FileKind::Other)
            .unwrap();
        assert_eq!(disk.read_dir(dir.path()).unwrap(), ["b"]);
    }
}
