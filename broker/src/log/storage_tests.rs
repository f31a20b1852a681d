//! The log on a failing disk (faults injected through the storage seam) and under a
//! bound on open files: what a producer, a consumer or a restart would notice.

use bytes::BytesMut;

use super::batch::testing::TestBatch;
use super::tests::{append, config, read_all, segment_files, values};
use super::*;
use crate::storage::{Fault, FaultPlan, FaultRule, Op};

fn faulty_log(dir: &Path, plan: &Arc<FaultPlan>, config: LogConfig) -> Log {
    let storage = LogStorage::new(Disk::with_faults(plan.clone()), 64);
    Log::open_in(&storage, dir, config, 0).unwrap()
}

fn batch_bytes() -> u64 {
    TestBatch::new(&["a"], 10).encode().len() as u64
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn produce(log: &mut Log, seq: i32, value: &str) -> Result<AppendInfo, AppendError> {
    let batch = TestBatch::new(&[value], 10).idempotent(7, 0, seq).encode();
    log.append_as_leader(batch, 1, 10)
}

fn os_error(e: AppendError) -> Option<i32> {
    match e {
        AppendError::Io(e) => e.raw_os_error(),
        other => panic!("expected an I/O error, got {other}"),
    }
}

#[test]
fn an_append_that_hits_enospc_or_eio_writes_nothing_visible_and_the_log_goes_on() {
    for (fault, errno) in [(Fault::ENOSPC, libc::ENOSPC), (Fault::EIO, libc::EIO)] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let mut log = faulty_log(dir.path(), &plan, config());
        produce(&mut log, 0, "a").unwrap();
        let segment = segment_files(dir.path(), "log")[0].clone();
        let rule = plan.add(
            FaultRule::new(Op::Write, fault)
                .kind(FileKind::Segment)
                .always(),
        );
        for _ in 0..3 {
            let err = produce(&mut log, 1, "b").unwrap_err();
            assert_eq!(os_error(err), Some(errno));
        }
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(values(&read_all(&log, 0)), vec![(0, "a")]);
        assert_eq!(file_len(&segment), batch_bytes());
        // Space returns: the producer's retry is a new batch to the log, not a
        // duplicate or a sequence gap.
        plan.remove(rule);
        let retried = produce(&mut log, 1, "b").unwrap();
        assert_eq!((retried.base_offset, retried.duplicate), (1, false));
        drop(log);
        let log = Log::open(dir.path(), config(), 0).unwrap();
        assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "b")]);
    }
}

#[test]
fn bytes_of_an_append_that_failed_half_way_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    append(&mut log, &["a"], 10);
    // The kernel writes part of the batch, then the disk is full.
    plan.add(FaultRule::new(Op::Write, Fault::Short(20)).kind(FileKind::Segment));
    plan.add(FaultRule::new(Op::Write, Fault::ENOSPC).kind(FileKind::Segment));
    let err = log
        .append_as_leader(TestBatch::new(&["b"], 20).encode(), 1, 20)
        .unwrap_err();
    assert_eq!(os_error(err), Some(libc::ENOSPC));
    let segment = &segment_files(dir.path(), "log")[0];
    assert_eq!(file_len(segment), batch_bytes());
    // Short writes alone are completed.
    plan.add(
        FaultRule::new(Op::Write, Fault::Short(7))
            .kind(FileKind::Segment)
            .times(5),
    );
    assert_eq!(append(&mut log, &["c"], 30).base_offset, 1);
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "c")]);
}

#[test]
fn a_roll_that_cannot_create_its_segment_fails_the_append_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let cfg = LogConfig {
        segment_bytes: batch_bytes() * 2,
        ..config()
    };
    let mut log = faulty_log(dir.path(), &plan, cfg);
    append(&mut log, &["a"], 10);
    append(&mut log, &["b"], 10);
    let rule = plan.add(
        FaultRule::new(Op::Open, Fault::Errno(libc::EMFILE))
            .kind(FileKind::Segment)
            .always(),
    );
    let err = log
        .append_as_leader(TestBatch::new(&["c"], 10).encode(), 1, 10)
        .unwrap_err();
    assert_eq!(os_error(err), Some(libc::EMFILE));
    assert_eq!((log.log_end_offset(), log.segment_count()), (2, 1));
    plan.remove(rule);
    assert_eq!(append(&mut log, &["c"], 10).base_offset, 2);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn a_torn_write_and_a_restart_recover_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    append(&mut log, &["a"], 10);
    append(&mut log, &["b"], 10);
    plan.add(FaultRule::new(Op::Write, Fault::Torn(30)).kind(FileKind::Segment));
    assert!(log
        .append_as_leader(TestBatch::new(&["c"], 10).encode(), 1, 10)
        .is_err());
    assert!(plan.has_crashed());
    // The process is dead: nothing else reaches the disk, not even the clean-up.
    assert!(log.close().is_err());
    drop(log);
    let segment = &segment_files(dir.path(), "log")[0];
    assert_eq!(file_len(segment), 2 * batch_bytes() + 30);

    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "b")]);
    assert_eq!(file_len(segment), 2 * batch_bytes());
    assert_eq!(append(&mut log, &["d"], 10).base_offset, 2);
}

#[test]
fn a_torn_follower_write_keeps_the_batches_that_landed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    let mut fetched = BytesMut::new();
    for (offset, value) in [(0, "a"), (1, "b"), (2, "c")] {
        let mut batch = TestBatch::new(&[value], 10).encode();
        batch::set_base_offset(&mut batch, offset);
        fetched.extend_from_slice(&batch);
    }
    plan.add(
        FaultRule::new(Op::Write, Fault::Torn(2 * batch_bytes() as usize + 5))
            .kind(FileKind::Segment),
    );
    assert!(log.append_as_follower(fetched.freeze()).is_err());
    drop(log);
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "b")]);
}

#[test]
fn a_failed_fsync_does_not_move_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    append(&mut log, &["a"], 10);
    log.flush(60_000).unwrap();
    assert_eq!(log.recovery_point(), 1);
    append(&mut log, &["b"], 10);
    plan.add(FaultRule::new(Op::Sync, Fault::EIO).kind(FileKind::Segment));
    assert!(log.flush(61_000).is_err());
    assert_eq!(log.recovery_point(), 1);
    // The sync that failed may have dropped pages that a later, successful sync no
    // longer sees as dirty: nothing after the recovery point is claimed durable again
    // by this process, in either form of the flush.
    let err = log.flush(62_000).unwrap_err();
    assert!(err.to_string().contains("fsync"), "{err}");
    let job = log.prepare_flush(63_000).unwrap();
    job.run().unwrap();
    assert!(log.complete_flush(&job, 63_000).is_err());
    assert_eq!(log.recovery_point(), 1);
    // Nor does a clean shutdown pretend otherwise.
    assert!(log.close().is_err());
    assert!(!dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap(),
        "0\n1\n"
    );
    drop(log);
    // The next open recovers from there (the data is still in the page cache here).
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "b")]);
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn a_failed_checkpoint_write_leaves_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let cfg = LogConfig {
        segment_bytes: batch_bytes() * 2,
        ..config()
    };
    let mut log = faulty_log(dir.path(), &plan, cfg);
    for v in ["a", "b", "c"] {
        append(&mut log, &[v], 10);
    }
    let rp_path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
    assert_eq!(std::fs::read_to_string(&rp_path).unwrap(), "0\n2\n");
    // The roll before the 5th batch must record the new recovery point, and cannot.
    let rule = plan.add(
        FaultRule::new(Op::Write, Fault::ENOSPC)
            .name_ends_with("recovery-point-offset-checkpoint.tmp")
            .always(),
    );
    append(&mut log, &["d"], 10);
    let err = log
        .append_as_leader(TestBatch::new(&["e"], 10).encode(), 1, 10)
        .unwrap_err();
    assert_eq!(os_error(err), Some(libc::ENOSPC));
    assert_eq!(std::fs::read_to_string(&rp_path).unwrap(), "0\n2\n");
    assert!(!dir
        .path()
        .join("recovery-point-offset-checkpoint.tmp")
        .exists());
    assert_eq!(log.log_end_offset(), 4);
    plan.remove(rule);
    assert_eq!(append(&mut log, &["e"], 10).base_offset, 4);

    // A new leader epoch's checkpoint cannot be written: the append stands (its batch
    // is in the log), the old checkpoint stays, and the recovery point does not move
    // past the batch until the checkpoint is written.
    let epochs = dir.path().join(LEADER_EPOCH_CHECKPOINT);
    let before = std::fs::read_to_string(&epochs).unwrap();
    let rule = plan.add(
        FaultRule::new(Op::Rename, Fault::EIO)
            .name_ends_with(LEADER_EPOCH_CHECKPOINT)
            .always(),
    );
    let info = log
        .append_as_leader(TestBatch::new(&["f"], 10).encode(), 2, 10)
        .unwrap();
    assert_eq!((info.base_offset, log.latest_epoch()), (5, 2));
    assert_eq!(std::fs::read_to_string(&epochs).unwrap(), before);
    let rp = log.recovery_point();
    assert!(log.flush(60_000).is_err());
    assert_eq!(log.recovery_point(), rp);
    plan.remove(rule);
    log.flush(61_000).unwrap();
    assert_eq!(log.recovery_point(), 6);
    assert!(std::fs::read_to_string(&epochs).unwrap().contains("2 5"));
}

#[test]
fn an_index_write_that_fails_does_not_fail_the_append_and_is_written_later() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    let rule = plan.add(
        FaultRule::new(Op::Write, Fault::EIO)
            .kind(FileKind::Index)
            .always(),
    );
    for i in 0..5 {
        append(&mut log, &[&format!("v{i}")], 10 + i);
    }
    assert_eq!(read_all(&log, 3)[0].0, 3);
    assert!(log.flush(60_000).is_err());
    plan.remove(rule);
    log.close().unwrap();
    drop(log);
    let index = &segment_files(dir.path(), "index")[0];
    assert_eq!(file_len(index), 4 * 8);
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert_eq!(read_all(&log, 0).len(), 5);
}

/// Open descriptors of this process on files under `dir` (other tests' files are
/// elsewhere).
fn open_fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn open_segment_files_stay_within_the_bound_while_every_segment_is_read() {
    const BOUND: usize = 16;
    const SEGMENTS: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let storage = LogStorage::new(Disk::real(), BOUND);
    let cfg = LogConfig {
        segment_bytes: batch_bytes(),
        ..config()
    };
    // The active segment's data file is pinned on top of the bound; its indexes are not.
    let limit = BOUND + 1;
    let mut log = Log::open_in(&storage, &dir, cfg.clone(), 0).unwrap();
    for i in 0..SEGMENTS {
        log.append_as_leader(TestBatch::new(&[&format!("v{i}")], 10).encode(), 1, 10)
            .unwrap();
        assert!(open_fds_under(&dir) <= limit);
    }
    assert_eq!(log.segment_count(), SEGMENTS as usize);
    log.close().unwrap();
    drop(log);
    assert_eq!(storage.handles.open_count(), 0);
    assert_eq!(open_fds_under(&dir), 0);

    let log = Log::open_in(&storage, &dir, cfg, 0).unwrap();
    assert!(open_fds_under(&dir) <= limit);
    // Twice over, each segment by offset and by time: files are reopened on demand.
    let first = log.read(0, 1 << 20, i64::MAX, true).unwrap().slice.unwrap();
    for _ in 0..2 {
        for offset in 0..SEGMENTS {
            let slice = log
                .read(offset, 1 << 20, i64::MAX, true)
                .unwrap()
                .slice
                .unwrap();
            let records = batch::testing::decode_records(&slice.read_to_bytes().unwrap());
            assert_eq!(records, vec![(offset, format!("v{offset}"))]);
            // The bound plus the slices held: `first` and this one.
            assert!(open_fds_under(&dir) <= limit + 2, "at offset {offset}");
        }
        assert!(log.offset_for_timestamp(10).unwrap().is_some());
        assert!(storage.handles.open_count() <= limit);
    }
    // A slice handed out before its file was closed by the cache still reads.
    let records = batch::testing::decode_records(&first.read_to_bytes().unwrap());
    assert_eq!(values(&records), vec![(0, "v0")]);
}

/// Not a test: prints the cost of the log's hot paths (appends, fetch reads) with every
/// file operation going through the seam and the handle cache. Run with
/// `cargo test --release -p fjord-broker --lib -- --ignored log_hot_path_throughput --nocapture`.
#[test]
#[ignore = "benchmark: prints figures"]
fn log_hot_path_throughput() {
    const BATCHES: i64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let value = "x".repeat(1000);
    let batch = TestBatch::new(&[value.as_str()], 10).encode().freeze();
    let cfg = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..BATCHES {
        log.append_as_leader(batch.clone(), 1, 10).unwrap();
    }
    let append = started.elapsed();
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for round in 0..5 {
        let mut offset = round;
        while offset < BATCHES {
            let info = log.read(offset, 16 * 1024, i64::MAX, true).unwrap();
            bytes += info.slice.map_or(0, |s| s.len);
            offset = info.next_offset;
        }
    }
    let read = started.elapsed();
    println!(
        "appends: {:.0}/s ({:.1} MB/s); fetch reads (16 KiB slices, 5 passes): {:.0} MB/s of slices",
        BATCHES as f64 / append.as_secs_f64(),
        BATCHES as f64 * batch.len() as f64 / append.as_secs_f64() / 1e6,
        bytes as f64 / read.as_secs_f64() / 1e6
    );
}

#[test]
fn appends_write_checkpoints_only_when_an_epoch_starts() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let mut log = faulty_log(dir.path(), &plan, config());
    let writes = || plan.calls(Op::Write, FileKind::Checkpoint);
    let before = writes();
    for epoch in [1, 1, 1, 2, 2, 2] {
        log.append_as_leader(TestBatch::new(&["a"], 10).encode(), epoch, 10)
            .unwrap();
    }
    // One leader-epoch checkpoint per new epoch, nothing per append.
    assert_eq!(writes() - before, 2);
}
