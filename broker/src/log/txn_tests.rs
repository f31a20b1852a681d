//! Transactions in the log: open transactions, markers, the last stable offset, and
//! what a follower, a restart and a truncation make of them.

use super::batch::testing::TestBatch;
use super::producer_state::MarkerRefusal;
use super::tests::{config, open, stored_from};
use super::txn::{CompletedTxn, EndTxnMarker};
use super::*;

/// Producer `producer_id`'s next transactional batch of `values`.
fn txn_batch(
    log: &mut Log,
    producer_id: i64,
    epoch: i16,
    seq: i32,
    values: &[&str],
) -> Result<AppendInfo, AppendError> {
    let batch = TestBatch::new(values, 100).transactional(producer_id, epoch, seq);
    log.append_transactional_as_leader(batch.encode(), 1, 100)
}

fn marker(producer_id: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> EndTxnMarker {
    EndTxnMarker {
        producer_id,
        producer_epoch: epoch,
        coordinator_epoch,
        commit,
    }
}

fn end(log: &mut Log, m: EndTxnMarker) -> Result<(AppendInfo, Option<CompletedTxn>), AppendError> {
    log.append_txn_marker(&m, 1, 200)
}

#[test]
fn last_stable_offset_with_interleaved_open_committed_and_aborted_producers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    // No transaction: the LSO is the high watermark, never above it.
    super::tests::append(&mut log, &["plain"], 100);
    assert_eq!(log.last_stable_offset(1), 1);
    assert_eq!(log.last_stable_offset(0), 0);
    txn_batch(&mut log, 1, 0, 0, &["p1-a", "p1-b"]).unwrap(); // 1..=2
    txn_batch(&mut log, 2, 0, 0, &["p2-a"]).unwrap(); // 3
    super::tests::append(&mut log, &["plain"], 100); // 4
    txn_batch(&mut log, 1, 0, 2, &["p1-c"]).unwrap(); // 5, same transaction
    txn_batch(&mut log, 3, 0, 0, &["p3-a"]).unwrap(); // 6
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.last_stable_offset(7), 1);
    assert_eq!(
        log.last_stable_offset(0),
        0,
        "never above the high watermark"
    );

    // Producer 1 commits (marker at 7): stable only once the high watermark passes it.
    let (info, completed) = end(&mut log, marker(1, 0, 0, true)).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (7, 7));
    assert_eq!(
        completed,
        Some(CompletedTxn {
            producer_id: 1,
            first_offset: 1,
            last_offset: 7,
            aborted: false
        })
    );
    assert_eq!(log.last_stable_offset(7), 1, "marker not replicated yet");
    assert_eq!(log.last_stable_offset(8), 3, "producer 2 is open from 3");

    // Producer 2 aborts (marker at 8); producer 3 is open from 6.
    let (_, completed) = end(&mut log, marker(2, 0, 0, false)).unwrap();
    assert_eq!(
        completed,
        Some(CompletedTxn {
            producer_id: 2,
            first_offset: 3,
            last_offset: 8,
            aborted: true
        })
    );
    assert_eq!(log.last_stable_offset(9), 6);
    log.on_high_watermark(9);
    assert_eq!(log.last_stable_offset(9), 6);
    assert_eq!(
        log.producer_state().open_transactions().collect::<Vec<_>>(),
        vec![(3, 6)]
    );

    // Producer 3 commits at 9: nothing is open, the LSO follows the high watermark.
    end(&mut log, marker(3, 0, 0, true)).unwrap();
    assert_eq!(log.last_stable_offset(9), 6);
    assert_eq!(log.last_stable_offset(10), 10);
    // A new transaction of producer 1 opens at its first batch.
    txn_batch(&mut log, 1, 0, 3, &["p1-d"]).unwrap(); // 10
    assert_eq!(log.last_stable_offset(11), 10);
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    txn_batch(&mut log, 1, 3, 0, &["a"]).unwrap();
    // A zombie coordinator's marker for an older producer epoch: refused, not written.
    let err = end(&mut log, marker(1, 2, 0, false)).unwrap_err();
    assert!(matches!(
        err,
        AppendError::MarkerRefused(MarkerRefusal::ProducerEpoch {
            producer_id: 1,
            got: 2,
            current: 3
        })
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(
        log.last_stable_offset(1),
        0,
        "the transaction is still open"
    );
    end(&mut log, marker(1, 3, 5, true)).unwrap();
    // The next transaction: a marker from an older coordinator epoch is fenced.
    txn_batch(&mut log, 1, 3, 1, &["b"]).unwrap(); // 2
    let err = end(&mut log, marker(1, 3, 4, false)).unwrap_err();
    assert!(matches!(
        err,
        AppendError::MarkerRefused(MarkerRefusal::CoordinatorEpoch {
            got: 4,
            current: 5,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 3);
    // A marker with a bumped producer epoch (a coordinator abort after a timeout,
    // KIP-588) ends the transaction and fences the old epoch's batches.
    let (_, completed) = end(&mut log, marker(1, 4, 5, false)).unwrap();
    assert_eq!(
        completed.map(|t| (t.first_offset, t.aborted)),
        Some((2, true))
    );
    assert!(matches!(
        txn_batch(&mut log, 1, 3, 2, &["zombie"]),
        Err(AppendError::InvalidProducerEpoch {
            got: 3,
            current: 4,
            ..
        })
    ));
    // A marker for a producer this partition never saw is written all the same (the
    // coordinator retries markers; Kafka writes them).
    let (info, completed) = end(&mut log, marker(99, 0, 5, true)).unwrap();
    assert_eq!(info.base_offset, 4);
    assert_eq!(completed, None);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.last_stable_offset(5), 5);
}

#[test]
fn transactional_batches_are_refused_outside_a_transactional_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    let batch = TestBatch::new(&["a"], 100).transactional(1, 0, 0).encode();
    assert!(matches!(
        log.append_as_leader(batch, 1, 100),
        Err(AppendError::Unsupported(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    // A transactional batch must name its producer.
    let anonymous = TestBatch {
        transactional: true,
        ..TestBatch::new(&["a"], 100)
    };
    assert!(matches!(
        log.append_transactional_as_leader(anonymous.encode(), 1, 100),
        Err(AppendError::InvalidRecord(_))
    ));
}

#[test]
fn a_follower_applies_markers_and_knows_the_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(&dir.path().join("leader"), config());
    txn_batch(&mut leader, 1, 0, 0, &["a"]).unwrap(); // 0
    txn_batch(&mut leader, 2, 0, 0, &["b"]).unwrap(); // 1
    end(&mut leader, marker(1, 0, 3, false)).unwrap(); // 2
    txn_batch(&mut leader, 1, 0, 1, &["c"]).unwrap(); // 3
    let mut follower = open(&dir.path().join("follower"), config());
    follower
        .append_as_follower(stored_from(&leader, 0))
        .unwrap();
    assert_eq!(follower.log_end_offset(), 4);
    for hw in 0..=4 {
        assert_eq!(
            follower.last_stable_offset(hw),
            leader.last_stable_offset(hw),
            "high watermark {hw}"
        );
    }
    let open_txns = |log: &Log| log.producer_state().open_transactions().collect::<Vec<_>>();
    assert_eq!(open_txns(&follower), vec![(2, 1), (1, 3)]);
    assert_eq!(open_txns(&follower), open_txns(&leader));
    // As a new leader the follower fences the old coordinator's marker.
    assert!(matches!(
        end(&mut follower, marker(1, 0, 2, true)),
        Err(AppendError::MarkerRefused(
            MarkerRefusal::CoordinatorEpoch { .. }
        ))
    ));
}

#[test]
fn open_transactions_survive_a_crash_and_a_clean_restart() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let batch_bytes = TestBatch::new(&["a"], 100)
            .transactional(7, 0, 0)
            .encode()
            .len() as u64;
        // Small segments: rolls write snapshots while transactions are open, and the
        // active tail (a marker among it) is replayed.
        let cfg = LogConfig {
            segment_bytes: batch_bytes * 2,
            ..config()
        };
        let mut log = open(dir.path(), cfg.clone());
        txn_batch(&mut log, 7, 0, 0, &["a"]).unwrap(); // 0
        txn_batch(&mut log, 8, 0, 0, &["b"]).unwrap(); // 1
        txn_batch(&mut log, 7, 0, 1, &["c"]).unwrap(); // 2
        txn_batch(&mut log, 9, 0, 0, &["d"]).unwrap(); // 3
        end(&mut log, marker(7, 0, 2, true)).unwrap(); // 4
        txn_batch(&mut log, 10, 0, 0, &["e"]).unwrap(); // 5
        assert!(log.segment_count() > 2, "clean={clean}");
        let before: Vec<_> = log.producer_state().open_transactions().collect();
        assert_eq!(before, vec![(8, 1), (9, 3), (10, 5)]);
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let mut log = open(dir.path(), cfg);
        let after: Vec<_> = log.producer_state().open_transactions().collect();
        assert_eq!(after, before, "clean={clean}");
        assert_eq!(log.last_stable_offset(6), 1, "clean={clean}");
        // The coordinator epoch survived too, and the open transactions still end.
        assert!(
            end(&mut log, marker(7, 0, 1, true)).is_err(),
            "clean={clean}"
        );
        end(&mut log, marker(8, 0, 2, false)).unwrap();
        assert_eq!(log.last_stable_offset(7), 3, "clean={clean}");
    }
}

#[test]
fn truncating_below_a_marker_reopens_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    txn_batch(&mut log, 1, 0, 0, &["a"]).unwrap(); // 0
    end(&mut log, marker(1, 0, 0, true)).unwrap(); // 1
    assert_eq!(log.last_stable_offset(2), 2);
    // A follower whose marker the new leader does not have.
    log.truncate_to(1).unwrap();
    assert_eq!(log.last_stable_offset(1), 0);
    assert_eq!(
        log.producer_state().open_transactions().collect::<Vec<_>>(),
        vec![(1, 0)]
    );
}

/// The log of the read_committed tests, in segments of about two batches:
/// 0 p1 "a" (aborted), 1 p2 "b", 2 plain, 3 abort p1, 4 p2 "c", 5 commit p2,
/// 6 p3 "d" (aborted), 7 abort p3, 8 plain.
fn log_with_aborts(dir: &Path) -> (Log, LogConfig) {
    let batch_bytes = TestBatch::new(&["a"], 100)
        .transactional(1, 0, 0)
        .encode()
        .len() as u64;
    let cfg = LogConfig {
        segment_bytes: batch_bytes * 2,
        ..config()
    };
    let mut log = open(dir, cfg.clone());
    txn_batch(&mut log, 1, 0, 0, &["a"]).unwrap();
    txn_batch(&mut log, 2, 0, 0, &["b"]).unwrap();
    super::tests::append(&mut log, &["plain"], 100);
    end(&mut log, marker(1, 0, 0, false)).unwrap();
    txn_batch(&mut log, 2, 0, 1, &["c"]).unwrap();
    end(&mut log, marker(2, 0, 0, true)).unwrap();
    txn_batch(&mut log, 3, 0, 0, &["d"]).unwrap();
    end(&mut log, marker(3, 0, 0, false)).unwrap();
    super::tests::append(&mut log, &["plain"], 100);
    assert!(
        log.segment_count() >= 4,
        "markers and data in different segments"
    );
    (log, cfg)
}

fn aborted(log: &Log, from: i64, upper: i64) -> Vec<(i64, i64)> {
    log.aborted_transactions(from, upper)
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect()
}

#[test]
fn read_committed_fetches_name_exactly_the_aborted_transactions_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_with_aborts(dir.path());
    assert_eq!(log.last_stable_offset(9), 9);
    // The whole log: both aborted transactions, by producer and first offset.
    assert_eq!(aborted(&log, 0, 9), vec![(1, 0), (3, 6)]);
    // From the middle of producer 1's aborted range: its marker is further on.
    assert_eq!(aborted(&log, 2, 4), vec![(1, 0)]);
    assert_eq!(aborted(&log, 1, 2), vec![(1, 0)]);
    // Past producer 1's marker and below producer 3's first offset: none.
    assert_eq!(aborted(&log, 4, 6), vec![]);
    assert_eq!(aborted(&log, 7, 9), vec![(3, 6)]);
    assert_eq!(aborted(&log, 8, 9), vec![]);
}

#[test]
fn a_damaged_or_lost_transaction_index_is_rebuilt_from_the_log() {
    // Damaged: a torn entry in a sealed segment's index, found by a clean open.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, cfg) = log_with_aborts(dir.path());
    let expected = aborted(&log, 0, 9);
    let files = super::tests::segment_files(dir.path(), "txnindex");
    assert_eq!(files.len(), 2, "one index per segment with an abort marker");
    log.close().unwrap();
    drop(log);
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() - 3]).unwrap();
    let log = open(dir.path(), cfg);
    assert_eq!(aborted(&log, 0, 9), expected);
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes, "rewritten whole");
    drop(log);

    // Lost in a crash: the active segment's index had not reached the disk.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    txn_batch(&mut log, 1, 0, 0, &["a"]).unwrap();
    end(&mut log, marker(1, 0, 0, false)).unwrap();
    let files = super::tests::segment_files(dir.path(), "txnindex");
    assert_eq!(files.len(), 1);
    std::fs::remove_file(&files[0]).unwrap();
    drop(log); // no close: a crash
    let log = open(dir.path(), config());
    assert_eq!(aborted(&log, 0, 2), vec![(1, 0)]);
    assert!(files[0].exists(), "written again");
}

#[test]
fn truncation_and_retention_take_the_index_entries_with_their_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, cfg) = log_with_aborts(dir.path());
    log.truncate_to(7).unwrap();
    assert_eq!(aborted(&log, 0, 7), vec![(1, 0)]);
    assert_eq!(log.last_stable_offset(7), 6, "producer 3 is open again");
    // A reopened log agrees.
    drop(log);
    let mut log = open(dir.path(), cfg);
    assert_eq!(aborted(&log, 0, 7), vec![(1, 0)]);
    // A follower starting over deletes every segment with its index.
    log.truncate_fully_and_start_at(50).unwrap();
    assert!(super::tests::segment_files(dir.path(), "txnindex").is_empty());
    assert_eq!(aborted(&log, 50, 60), vec![]);
}
