//! Tests of the metadata log: reopening, torn tails, truncation, purging, and every
//! write failing the way a disk does (ENOSPC, EIO, short writes, failed fsync, a crash
//! mid-write), injected through the storage seam.

use std::fs::OpenOptions;
use std::time::Duration;

use openraft::{CommittedLeaderId, EntryPayload};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::quorum::write_retry::WriteHealth;
use crate::quorum::MetadataBatch;
use crate::storage::{Fault, FaultPlan, FaultRule, Op};

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

/// Retries a few milliseconds apart, so tests of failing writes stay quick.
fn quick_retry(health: Arc<WriteHealth>, cancel: CancellationToken) -> Retry {
    Retry::with_delays(
        health,
        cancel,
        Duration::from_millis(1),
        Duration::from_millis(2),
    )
}

/// A log on a disk that fails as `plan` says.
struct Faulty {
    store: LogStore,
    plan: Arc<FaultPlan>,
    health: Arc<WriteHealth>,
    cancel: CancellationToken,
}

fn faulty(dir: &Path, segment_entries_max: u64) -> Faulty {
    let plan = FaultPlan::new();
    let health = Arc::new(WriteHealth::default());
    let cancel = CancellationToken::new();
    let retry = quick_retry(health.clone(), cancel.clone());
    let store = LogStore::open(
        Disk::with_faults(plan.clone()),
        dir,
        segment_entries_max,
        retry,
    )
    .unwrap();
    Faulty {
        store,
        plan,
        health,
        cancel,
    }
}

/// Waits until `rule` has failed `n` calls, failing the test after a deadline.
async fn wait_fired(plan: &FaultPlan, rule: crate::storage::RuleId, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while plan.fired(rule) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rule failed {} calls, not {n}",
            plan.fired(rule)
        );
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Awaits a write that must complete now that its fault is gone.
async fn finishes<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the write lands once the fault is gone")
        .unwrap()
}

/// Every segment in `dir` holds whole frames only: no partial frame at its end.
fn assert_whole_frames(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == SEGMENT_SUFFIX) {
            let bytes = std::fs::read(&path).unwrap();
            let (_, valid) = read_segment(&bytes);
            assert_eq!(
                valid,
                bytes.len() as u64,
                "{} ends in a partial frame",
                path.display()
            );
        }
    }
}

fn segment_len(dir: &Path, base: u64) -> u64 {
    std::fs::metadata(segment_path(dir, base)).unwrap().len()
}

/// The log in `dir` on the real disk, as a restarted process opens it.
fn open(dir: &Path, segment_entries_max: u64) -> LogStore {
    let retry = quick_retry(Arc::default(), CancellationToken::new());
    LogStore::open(Disk::real(), dir, segment_entries_max, retry).unwrap()
}

#[tokio::test]
async fn entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 4);
    store
        .append_entries((1..=10).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    assert_eq!(store.segment_count(), 3);
    drop(store);
    let store = open(dir.path(), 4);
    assert_eq!(indexes(&store), (1..=10).collect::<Vec<_>>());
    store.append_entries(vec![entry(2, 11)]).await.unwrap();
    let store = open(dir.path(), 4);
    assert_eq!(indexes(&store).last(), Some(&11));
}

#[tokio::test]
async fn a_torn_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 100);
    store
        .append_entries((1..=5).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    drop(store);
    let path = segment_path(dir.path(), 1);
    let len = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of the last frame ...
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    let store = open(dir.path(), 100);
    assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
    // ... and a flipped byte in an earlier one.
    store.append_entries(vec![entry(1, 5)]).await.unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let (frames, _) = read_segment(&bytes);
    let third = frames[2].0 as usize;
    bytes[third + FRAME_HEADER + 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path(), 100);
    assert_eq!(indexes(&store), vec![1, 2]);
    store.append_entries(vec![entry(2, 3)]).await.unwrap();
    let store = open(dir.path(), 100);
    assert_eq!(indexes(&store), vec![1, 2, 3]);
}

#[tokio::test]
async fn truncate_drops_the_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 3);
    store
        .append_entries((1..=8).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    store.truncate_entries(5).await.unwrap();
    assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
    store
        .append_entries(vec![entry(2, 5), entry(2, 6)])
        .await
        .unwrap();
    // Truncating at a segment's first entry removes the file.
    store.truncate_entries(4).await.unwrap();
    assert_eq!(indexes(&store), vec![1, 2, 3]);
    let store = open(dir.path(), 3);
    assert_eq!(indexes(&store), vec![1, 2, 3]);
    store.append_entries(vec![entry(3, 4)]).await.unwrap();
    let store = open(dir.path(), 3);
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
    let mut store = open(dir.path(), 4);
    store
        .append_entries((1..=12).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    assert_eq!(store.segment_count(), 3);
    let purged = LogId::new(CommittedLeaderId::new(1, 1), 6);
    store.purge(purged).await.unwrap();
    // Segment 1..=4 is gone; 5..=8 still holds 7 and 8.
    assert_eq!(store.segment_count(), 2);
    assert_eq!(indexes(&store), (7..=12).collect::<Vec<_>>());
    let mut store = open(dir.path(), 4);
    assert_eq!(indexes(&store), (7..=12).collect::<Vec<_>>());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(purged));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(12));
    // Purging everything leaves the purge point as the last log id.
    let all = LogId::new(CommittedLeaderId::new(1, 1), 12);
    store.purge(all).await.unwrap();
    let mut store = open(dir.path(), 4);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(all));
    assert!(indexes(&store).is_empty());
    assert_eq!(store.segment_count(), 0);
    // A snapshot installed past the log's end: the log goes on after a gap.
    let far = LogId::new(CommittedLeaderId::new(2, 1), 40);
    store.purge(far).await.unwrap();
    store.append_entries(vec![entry(2, 41)]).await.unwrap();
    let store = open(dir.path(), 4);
    assert_eq!(indexes(&store), vec![41]);
}

#[tokio::test]
async fn the_vote_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 4);
    assert_eq!(store.read_vote().await.unwrap(), None);
    let vote = Vote::new(3, 2);
    store.save_vote(&vote).await.unwrap();
    let mut store = open(dir.path(), 4);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn a_full_disk_blocks_an_append_until_space_returns_and_leaves_no_partial_frame() {
    let dir = tempfile::tempdir().unwrap();
    let f = faulty(dir.path(), 100);
    f.store
        .append_entries((1..=3).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let before = segment_len(dir.path(), 1);
    // The kernel takes the first 10 bytes of a frame, then the disk is full.
    f.plan.add(
        FaultRule::new(Op::Write, Fault::Short(10))
            .kind(FileKind::MetadataLog)
            .times(1),
    );
    let full = f.plan.add(
        FaultRule::new(Op::Write, Fault::ENOSPC)
            .kind(FileKind::MetadataLog)
            .always(),
    );
    let store = f.store.clone();
    let append =
        tokio::spawn(async move { store.append_entries(vec![entry(1, 4), entry(1, 5)]).await });
    wait_fired(&f.plan, full, 3).await;
    let failing = f.health.failing().expect("the failure is reported");
    assert!(
        failing.contains("metadata log append") && failing.contains("No space left"),
        "{failing}"
    );
    assert_eq!(indexes(&f.store), vec![1, 2, 3], "memory never runs ahead");
    assert_eq!(segment_len(dir.path(), 1), before, "rolled back to entry 3");
    assert_whole_frames(dir.path());
    assert!(!append.is_finished(), "the append waits for space");
    // Space comes back.
    f.plan.remove(full);
    finishes(append).await.unwrap();
    assert_eq!(f.health.failing(), None);
    assert!(f.health.failures()["ENOSPC"] >= 3);
    assert_eq!(indexes(&f.store), (1..=5).collect::<Vec<_>>());
    assert_whole_frames(dir.path());
    assert_eq!(indexes(&open(dir.path(), 100)), (1..=5).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_fsync_writes_the_entries_again() {
    let dir = tempfile::tempdir().unwrap();
    let f = faulty(dir.path(), 100);
    f.store
        .append_entries((1..=2).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    // After a failed fsync the kernel may have dropped the written pages: what the
    // attempt wrote is cut and written again, not trusted to a second fsync.
    f.plan
        .add(FaultRule::new(Op::Sync, Fault::EIO).kind(FileKind::MetadataLog));
    let writes = f.plan.calls(Op::Write, FileKind::MetadataLog);
    f.store
        .append_entries(vec![entry(1, 3), entry(1, 4)])
        .await
        .unwrap();
    assert_eq!(f.plan.calls(Op::Write, FileKind::MetadataLog) - writes, 4);
    assert_eq!(f.health.failures()["EIO"], 1);
    assert_whole_frames(dir.path());
    assert_eq!(indexes(&open(dir.path(), 100)), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_rollback_that_fails_is_finished_before_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let f = faulty(dir.path(), 100);
    f.store
        .append_entries((1..=2).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let before = segment_len(dir.path(), 1);
    f.plan.add(
        FaultRule::new(Op::Write, Fault::Short(10))
            .kind(FileKind::MetadataLog)
            .times(1),
    );
    f.plan
        .add(FaultRule::new(Op::Write, Fault::ENOSPC).kind(FileKind::MetadataLog));
    // The rollback's truncation fails too, once: 10 bytes of a frame stay behind.
    let cut = f.plan.add(
        FaultRule::new(Op::SetLen, Fault::EIO)
            .kind(FileKind::MetadataLog)
            .always(),
    );
    let store = f.store.clone();
    let append = tokio::spawn(async move { store.append_entries(vec![entry(1, 3)]).await });
    wait_fired(&f.plan, cut, 2).await;
    assert_eq!(segment_len(dir.path(), 1), before + 10);
    f.plan.remove(cut);
    finishes(append).await.unwrap();
    assert_whole_frames(dir.path());
    assert_eq!(indexes(&open(dir.path(), 100)), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_segment_that_cannot_be_created_is_removed_and_created_again() {
    for (op, kind) in [
        (Op::Open, FileKind::MetadataLog),
        (Op::Sync, FileKind::Directory),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let f = faulty(dir.path(), 2);
        f.store
            .append_entries((1..=2).map(|i| entry(1, i)).collect())
            .await
            .unwrap();
        let rule = f
            .plan
            .add(FaultRule::new(op, Fault::ENOSPC).kind(kind).always());
        let store = f.store.clone();
        let append = tokio::spawn(async move { store.append_entries(vec![entry(1, 3)]).await });
        wait_fired(&f.plan, rule, 2).await;
        assert!(
            !segment_path(dir.path(), 3).exists(),
            "{op:?} of {kind:?}: the failed segment is gone"
        );
        assert_eq!(f.store.segment_count(), 1);
        f.plan.remove(rule);
        finishes(append).await.unwrap();
        assert_eq!(f.store.segment_count(), 2, "{op:?} of {kind:?}");
        assert_whole_frames(dir.path());
        let reopened = open(dir.path(), 2);
        assert_eq!(indexes(&reopened), vec![1, 2, 3], "{op:?} of {kind:?}");
        assert_eq!(reopened.segment_count(), 2);
    }
}

#[tokio::test]
async fn the_vote_waits_for_space() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = faulty(dir.path(), 4);
    let full = f.plan.add(
        FaultRule::new(Op::Write, Fault::ENOSPC)
            .kind(FileKind::Checkpoint)
            .always(),
    );
    let mut store = f.store.clone();
    let vote = Vote::new(3, 2);
    let save = tokio::spawn(async move { store.save_vote(&vote).await });
    wait_fired(&f.plan, full, 2).await;
    assert_eq!(f.store.read_vote().await.unwrap(), None);
    assert!(f.health.failing().unwrap().contains("metadata vote"));
    assert!(!dir.path().join("vote.json").exists());
    f.plan.remove(full);
    finishes(save).await.unwrap();
    assert_eq!(f.store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(open(dir.path(), 4).read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn purge_and_truncate_are_retried_and_change_memory_only_once_done() {
    let dir = tempfile::tempdir().unwrap();
    let f = faulty(dir.path(), 4);
    f.store
        .append_entries((1..=12).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    let stuck = f.plan.add(
        FaultRule::new(Op::Remove, Fault::EIO)
            .kind(FileKind::MetadataLog)
            .always(),
    );
    let store = f.store.clone();
    let purged = LogId::new(CommittedLeaderId::new(1, 1), 6);
    let purge = tokio::spawn(async move { store.purge_entries(purged).await });
    wait_fired(&f.plan, stuck, 2).await;
    assert_eq!(indexes(&f.store), (1..=12).collect::<Vec<_>>());
    f.plan.remove(stuck);
    finishes(purge).await.unwrap();
    assert_eq!(indexes(&f.store), (7..=12).collect::<Vec<_>>());
    assert_eq!(f.store.segment_count(), 2);

    let stuck = f.plan.add(
        FaultRule::new(Op::SetLen, Fault::EIO)
            .kind(FileKind::MetadataLog)
            .always(),
    );
    let store = f.store.clone();
    let truncate = tokio::spawn(async move { store.truncate_entries(10).await });
    wait_fired(&f.plan, stuck, 2).await;
    assert_eq!(indexes(&f.store), (7..=12).collect::<Vec<_>>());
    f.plan.remove(stuck);
    finishes(truncate).await.unwrap();
    assert_eq!(indexes(&f.store), vec![7, 8, 9]);
    f.store.append_entries(vec![entry(2, 10)]).await.unwrap();
    assert_whole_frames(dir.path());
    assert_eq!(indexes(&open(dir.path(), 4)), vec![7, 8, 9, 10]);
}

#[tokio::test]
async fn a_crash_in_the_middle_of_an_append_loses_only_that_append() {
    let dir = tempfile::tempdir().unwrap();
    let f = faulty(dir.path(), 100);
    f.store
        .append_entries((1..=3).map(|i| entry(1, i)).collect())
        .await
        .unwrap();
    f.plan
        .add(FaultRule::new(Op::Write, Fault::Torn(20)).kind(FileKind::MetadataLog));
    let store = f.store.clone();
    let append = tokio::spawn(async move { store.append_entries(vec![entry(1, 4)]).await });
    // The dead process retries in vain until it is shut down.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f.plan.has_crashed() {
        assert!(tokio::time::Instant::now() < deadline, "no crash");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    f.cancel.cancel();
    let err = finishes(append).await.unwrap_err();
    assert!(err.to_string().contains("given up at shutdown"), "{err}");
    // The restarted process cuts the torn frame and goes on.
    let store = open(dir.path(), 100);
    assert_eq!(indexes(&store), vec![1, 2, 3]);
    store.append_entries(vec![entry(2, 4)]).await.unwrap();
    assert_whole_frames(dir.path());
    assert_eq!(indexes(&open(dir.path(), 100)), vec![1, 2, 3, 4]);
}
