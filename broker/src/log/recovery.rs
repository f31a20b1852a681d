//! Opening a log: recovery after an unclean stop, and what to do with damage.
//!
//! # What is recovered, what is refused
//!
//! After a clean shutdown (the `.clean-shutdown` marker) every segment is trusted:
//! its indexes are sanity-checked and the batch headers after the last index entry
//! must tile the file. After an unclean stop, the segment holding the recovery point
//! and every later one are verified batch by batch (length, offsets, CRC-32C), as in
//! Kafka. A segment whose indexes do not hold up is verified too, and only its indexes
//! are rebuilt: data that passes its checks is never cut.
//!
//! Damage is a byte where a whole, valid batch must be and is not. In the active
//! segment after an unclean stop, past the recovery point, it is a torn tail (the
//! process died mid-write, the page cache was lost): it is cut at the last whole
//! batch. Anywhere else (a rolled segment, which was fsynced when it was rolled, or
//! below the recovery point) it is lost data, not a torn tail, and cutting there would
//! delete the intact segments after it and hand their offsets out again. Then:
//!
//! - [`Log::open`] / [`Log::open_in`] refuse with [`OpenError::Corrupt`], naming the
//!   file and byte position, and change no file: the partition goes offline
//!   (KAFKA_STORAGE_ERROR) until an operator or another replica repairs it.
//! - [`Log::open_truncating_damage`] is for a replica whose data another replica
//!   holds: it keeps the valid batches before the damage, deletes what follows, and
//!   returns [`DroppedData`] (first lost offset, bytes), so the runtime fetches the rest
//!   back from the leader. The log end moves back to the first lost offset: the
//!   replica must not lead (nor answer for those offsets) until it has caught up.
//!
//! Loading never writes; the repairs (cutting a torn tail, rebuilding indexes,
//! removing leftovers of interrupted writes) are made only once every segment has
//! passed, so a refused open leaves the directory as it found it. The one exception
//! is a compaction swap interrupted by a crash, completed (or rolled back) first
//! because it decides which segment files exist (see `compaction`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::log::epoch_cache::LeaderEpochCache;
use crate::log::handles::LogStorage;
use crate::log::producer_state::ProducerStateManager;
use crate::log::segment::{self, parse_segment_name, segment_path, Segment, SegmentDamage};
use crate::log::txn_index::{self, TxnIndex};
use crate::log::{
    compaction, read_offset_checkpoint, read_small_file, Log, LogConfig, CLEAN_SHUTDOWN_MARKER,
    LEADER_EPOCH_CHECKPOINT, MAX_CHECKPOINT_BYTES, RECOVERY_POINT_CHECKPOINT,
};
use crate::storage::{Disk, FileKind, OpenMode};

/// A place in a log's files where a whole, valid batch must be and is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Byte position of the first bad byte in `path`.
    pub position: u64,
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.path.display(),
            self.position,
            self.reason
        )
    }
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("log I/O: {0}")]
    Io(#[from] io::Error),
    /// Damage that is not a torn tail (see the module docs); no file was changed.
    #[error(
        "{} is damaged at byte {position}: {reason}; the data there was durable, so the \
         log is not truncated",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

impl OpenError {
    pub fn damage(&self) -> Option<Damage> {
        match self {
            OpenError::Io(_) => None,
            OpenError::Corrupt {
                path,
                position,
                reason,
            } => Some(Damage {
                path: path.clone(),
                position: *position,
                reason: reason.clone(),
            }),
        }
    }
}

impl From<OpenError> for io::Error {
    /// A damaged log is `InvalidData`, with the [`OpenError`] inside (callers that
    /// need the file and position downcast `get_ref()`).
    fn from(e: OpenError) -> io::Error {
        match e {
            OpenError::Io(e) => e,
            corrupt => io::Error::new(io::ErrorKind::InvalidData, corrupt),
        }
    }
}

/// What [`Log::open_truncating_damage`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedData {
    pub damage: Damage,
    /// The log now ends here: every offset from it on must be fetched again.
    pub first_lost_offset: i64,
    /// Bytes removed: the damaged segment's tail from the damage on, and every later
    /// segment.
    pub bytes_dropped: u64,
    /// Whole segments deleted after the damaged one (or the damaged one itself when it
    /// overlapped the previous segment).
    pub segments_deleted: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDamage {
    Refuse,
    Truncate,
}

impl Log {
    /// Open (or create) the log in `dir` with its own bound on open files; see
    /// [`Log::open_in`].
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, OpenError> {
        Log::open_in(&LogStorage::default(), dir, config, now_ms)
    }

    /// Open (or create) the log in `dir`, recovering after an unclean stop: a torn
    /// tail of the active segment is cut; indexes and producer state are rebuilt where
    /// needed. Damage anywhere else is refused with [`OpenError::Corrupt`] and no file
    /// is changed (see the module docs).
    pub fn open_in(
        storage: &LogStorage,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Log, OpenError> {
        let (log, dropped) = open_log(storage, dir, config, now_ms, OnDamage::Refuse)?;
        debug_assert!(dropped.is_none());
        Ok(log)
    }

    /// Open like [`Log::open_in`], but where that refuses, cut the log at the last
    /// whole, valid batch before the damage, delete every later segment, and say what
    /// was dropped. For a replica whose data another replica holds: the dropped offsets
    /// are fetched back from the leader; until then this replica must not lead.
    pub fn open_truncating_damage(
        storage: &LogStorage,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(Log, Option<DroppedData>), OpenError> {
        open_log(storage, dir, config, now_ms, OnDamage::Truncate)
    }
}

/// The file names of a partition directory that open cares about.
#[derive(Default)]
struct Listing {
    log_bases: Vec<i64>,
    index_files: Vec<(i64, OsString)>,
    /// Leftovers of interrupted atomic writes (the previous file is intact).
    tmp_files: Vec<OsString>,
}

fn list(disk: &Disk, dir: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    for name in disk.read_dir(dir)? {
        let Some(text) = name.to_str() else { continue };
        if text.ends_with(".tmp") {
            listing.tmp_files.push(name);
            continue;
        }
        match parse_segment_name(text) {
            Some((base, segment::LOG_SUFFIX)) => listing.log_bases.push(base),
            Some((
                base,
                segment::INDEX_SUFFIX | segment::TIME_INDEX_SUFFIX | txn_index::TXN_INDEX_SUFFIX,
            )) => listing.index_files.push((base, name)),
            _ => {}
        }
    }
    listing.log_bases.sort_unstable();
    Ok(listing)
}

fn open_log(
    storage: &LogStorage,
    dir: &Path,
    config: LogConfig,
    now_ms: i64,
    on_damage: OnDamage,
) -> Result<(Log, Option<DroppedData>), OpenError> {
    let disk = &storage.disk;
    disk.create_dir_all(dir)?;
    compaction::install::recover_interrupted_compaction(disk, dir)?;
    let clean = disk.exists(&dir.join(CLEAN_SHUTDOWN_MARKER), FileKind::Checkpoint)?;
    let recovery_point = if clean {
        i64::MAX
    } else {
        read_offset_checkpoint(
            disk,
            dir,
            RECOVERY_POINT_CHECKPOINT,
            ("recovery point", "recovering every segment"),
        )?
        .unwrap_or(0)
    };
    let listing = list(disk, dir)?;

    // Load every segment; nothing on disk changes until all of them passed.
    let mut loaded: Vec<(Segment, u64)> = Vec::with_capacity(listing.log_bases.len());
    // Epochs and producer state of batches from here on are taken from the batches.
    let mut first_recovered: Option<i64> = None;
    let mut dropped: Option<DroppedData> = None;
    let mut doomed: Vec<i64> = Vec::new();
    for (i, &base) in listing.log_bases.iter().enumerate() {
        let next_base = listing.log_bases.get(i + 1).copied();
        let active = next_base.is_none();
        // Kafka recovers the segment holding the recovery point and all after it.
        let verify = !clean && next_base.is_none_or(|n| n > recovery_point);
        if verify {
            first_recovered.get_or_insert(base);
        }
        let found = Segment::load(storage, dir, base, &config, now_ms, verify)?;
        let overlap = loaded.last().and_then(|(prev, _)| {
            (base < prev.next_offset).then(|| SegmentDamage {
                position: 0,
                next_offset: prev.next_offset,
                reason: format!(
                    "the segment starts at offset {base}, below the previous segment's end {}",
                    prev.next_offset
                ),
            })
        });
        let (segment, file_bytes) = (found.segment, found.file_bytes);
        let Some(damage) = overlap.clone().or(found.damage) else {
            loaded.push((segment, file_bytes));
            continue;
        };
        let path = segment.log.path().to_path_buf();
        if active && !clean && overlap.is_none() && damage.next_offset >= recovery_point {
            tracing::warn!(
                path = %path.display(),
                position = damage.position,
                reason = %damage.reason,
                truncated_bytes = file_bytes - damage.position,
                "recovery cuts a torn tail of the active segment"
            );
            loaded.push((segment, file_bytes));
            break;
        }
        let damage = Damage {
            path,
            position: damage.position,
            reason: damage.reason,
        };
        if on_damage == OnDamage::Refuse {
            tracing::error!(
                dir = %dir.display(),
                path = %damage.path.display(),
                position = damage.position,
                reason = %damage.reason,
                "log is damaged where its data was durable (not a torn tail); not opening it, no file changed"
            );
            return Err(OpenError::Corrupt {
                path: damage.path,
                position: damage.position,
                reason: damage.reason,
            });
        }
        let (first_lost_offset, mut bytes_dropped) = if overlap.is_some() {
            doomed.push(base);
            drop(segment);
            (
                loaded.last().map_or(base, |(p, _)| p.next_offset),
                file_bytes,
            )
        } else {
            let lost = file_bytes - segment.size_bytes;
            let next = segment.next_offset;
            loaded.push((segment, file_bytes));
            (next, lost)
        };
        for &later in &listing.log_bases[i + 1..] {
            bytes_dropped += disk
                .open(
                    &segment_path(dir, later, segment::LOG_SUFFIX),
                    FileKind::Segment,
                    OpenMode::READ,
                )?
                .size_bytes()?;
            doomed.push(later);
        }
        first_recovered = Some(first_recovered.map_or(base, |f| f.min(base)));
        let info = DroppedData {
            damage,
            first_lost_offset,
            bytes_dropped,
            segments_deleted: doomed.len(),
        };
        tracing::warn!(
            dir = %dir.display(),
            damage = %info.damage,
            first_lost_offset,
            bytes_dropped,
            segments_deleted = info.segments_deleted,
            "log is damaged; truncating it at the damage so the rest is fetched again from the leader"
        );
        dropped = Some(info);
        break;
    }

    // The log passed (or is being cut at its damage): repair.
    for name in &listing.tmp_files {
        disk.remove_file(&dir.join(name), FileKind::Checkpoint)?;
    }
    for (base, name) in &listing.index_files {
        if listing.log_bases.binary_search(base).is_err() || doomed.contains(base) {
            disk.remove_file(&dir.join(name), FileKind::Index)?;
        }
    }
    for &base in &doomed {
        disk.remove_file_if_exists(
            &segment_path(dir, base, segment::LOG_SUFFIX),
            FileKind::Segment,
        )?;
        tracing::warn!(dir = %dir.display(), segment = base, "deleted a segment after the damage");
    }
    if !doomed.is_empty() {
        disk.sync_dir(dir)?;
    }
    let count = loaded.len();
    let mut segments = BTreeMap::new();
    let mut txn_index_damaged = Vec::new();
    for (i, (mut segment, file_bytes)) in loaded.into_iter().enumerate() {
        segment.finish_load(&config, file_bytes, i + 1 == count)?;
        // A recovered segment may have been cut: its index loses the cut markers'
        // entries (and the replay below re-adds what the cut kept).
        let recovered = first_recovered.is_some_and(|f| segment.base_offset >= f);
        let end = if recovered {
            i64::MAX
        } else {
            segment.next_offset
        };
        let path = segment.txn_index.path().to_path_buf();
        match TxnIndex::load(disk, path, segment.base_offset, end)? {
            Ok(mut index) => {
                index.truncate_to(segment.next_offset)?;
                segment.txn_index = index;
            }
            Err(why) => {
                tracing::warn!(dir = %dir.display(), segment = segment.base_offset, why, "transaction index damaged; rebuilding it from the log");
                txn_index_damaged.push(segment.base_offset);
            }
        }
        segments.insert(segment.base_offset, segment);
    }
    if segments.is_empty() {
        segments.insert(0, Segment::create(storage, dir, 0, &config, now_ms)?);
    }
    // A start moved on request (DeleteRecords) may be inside the first segment; it
    // never goes back. One past the recovered end is applied once the log is built.
    let checkpointed_start = super::start_offset::read_log_start_checkpoint(disk, dir)?;
    let recovered_end = segments.values().next_back().map_or(0, |s| s.next_offset);
    let log_start_offset = (*segments.keys().next().unwrap_or(&0)).max(
        checkpointed_start
            .filter(|&start| start <= recovered_end)
            .unwrap_or(0),
    );

    let mut log = Log {
        dir: dir.to_path_buf(),
        storage: storage.clone(),
        config,
        segments,
        log_start_offset,
        epoch_cache: LeaderEpochCache::default(),
        producers: ProducerStateManager::new(),
        recovery_point: 0,
        clean_marker_present: clean,
        unflushed_messages: 0,
        last_flush_ms: now_ms,
        recovery_point_written_ms: now_ms,
        clock_ms: now_ms,
        first_dirty_offset: log_start_offset,
        tombstone_horizon_ms: compaction::install::no_horizon(),
        generation: 0,
        compaction_disabled: false,
        sync_failed: Arc::new(AtomicBool::new(false)),
        epoch_checkpoint_stale: false,
        damage: None,
        damage_offset: None,
        scrub_from: i64::MIN,
    };
    let log_end_offset = log.log_end_offset();
    if let Some((dirty, horizon)) = compaction::install::read_cleaner_checkpoint(disk, dir)? {
        // Past the end (the log was truncated behind the checkpoint's back): Kafka
        // starts over from the log start, which is always safe.
        if (log_start_offset..=log_end_offset).contains(&dirty) {
            log.first_dirty_offset = dirty;
        }
        log.tombstone_horizon_ms = horizon;
    }

    // Leader epochs: the checkpoint covers what is before the first recovered
    // segment; epochs of recovered batches are taken from the batches themselves.
    let epoch_checkpoint = read_small_file(
        disk,
        &dir.join(LEADER_EPOCH_CHECKPOINT),
        MAX_CHECKPOINT_BYTES,
    )?;
    let epoch_replay_from = match &epoch_checkpoint {
        Some(bytes) => match LeaderEpochCache::parse_checkpoint(&String::from_utf8_lossy(bytes)) {
            Ok(cache) => {
                log.epoch_cache = cache;
                first_recovered.unwrap_or(log_end_offset)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable leader epoch checkpoint; rebuilding");
                log_start_offset
            }
        },
        None => log_start_offset,
    };
    log.epoch_cache.truncate_from_end(epoch_replay_from);
    let producer_replay_from = log.load_producer_snapshot()?;
    log.replay(epoch_replay_from, producer_replay_from)?;
    if !txn_index_damaged.is_empty() {
        log.rebuild_txn_indexes(&txn_index_damaged)?;
    }
    log.epoch_cache.truncate_from_start(log_start_offset);
    if dropped.is_some() {
        // The files changed: the marker no longer describes them.
        log.mark_dirty()?;
    }
    // Rewritten only when it says something else than the epochs now known: a new,
    // empty log has none to write (an absent checkpoint reads as an empty cache), so
    // creating thousands of partitions costs no fsync each.
    let epochs = log.epoch_cache.encode_checkpoint();
    let unchanged = match &epoch_checkpoint {
        Some(bytes) => bytes.as_slice() == epochs.as_bytes(),
        None => log.epoch_cache == LeaderEpochCache::default(),
    };
    if !unchanged {
        log.write_epoch_checkpoint()?;
    }

    if let Some(first) = first_recovered {
        // Recovered data sits in the page cache; make it durable before claiming it.
        for segment in log.segments.values_mut() {
            if segment.base_offset >= first {
                segment.flush()?;
            }
        }
    }
    log.recovery_point = log_end_offset;
    if !log.clean_marker_present {
        log.write_recovery_point()?;
    }
    if let Some(start) = checkpointed_start.filter(|&start| start > log_end_offset) {
        // The records up to the start were deleted on request, and the crash lost the
        // tail they were deleted up to: nothing below the start may come back.
        tracing::warn!(dir = %dir.display(), log_end_offset, log_start_offset = start,
            "the log ends before its checkpointed start; starting empty there");
        log.truncate_fully_and_start_at(start)?;
    }
    Ok((log, dropped))
}

#[cfg(test)]
mod tests;
