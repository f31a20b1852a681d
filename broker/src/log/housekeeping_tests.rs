//! When a log says its housekeeping is next due, against what housekeeping does.

use super::batch::testing::TestBatch;
use super::tests::{append, config, open};
use super::*;

#[test]
fn an_empty_log_never_needs_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.next_housekeeping_ms(0), None);
}

#[test]
fn an_idle_segment_is_due_to_roll_exactly_at_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..config()
        },
    );
    append(&mut log, &["a"], 0);
    let due = log.next_housekeeping_ms(0).unwrap();
    assert_eq!(due, 1001);
    log.housekeeping(due - 1, log.log_end_offset()).unwrap();
    assert_eq!(log.segment_count(), 1, "not rolled before it is due");
    log.housekeeping(due, log.log_end_offset()).unwrap();
    assert_eq!(log.segment_count(), 2);
    // Rolled: what is left to wait for is the old segment's retention.ms.
    assert_eq!(
        log.next_housekeeping_ms(due),
        Some(LogConfig::default().retention_ms + 1)
    );
}

#[test]
fn an_old_segment_is_due_for_deletion_exactly_at_retention_ms() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["v"], 0).encode().len() as u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes,
            retention_ms: 1000,
            ..config()
        },
    );
    append(&mut log, &["old"], 100);
    append(&mut log, &["new"], 5000);
    let due = log.next_housekeeping_ms(100).unwrap();
    assert_eq!(due, 1101);
    assert_eq!(log.housekeeping(due - 1, log.log_end_offset()).unwrap(), 0);
    assert_eq!(log.housekeeping(due, log.log_end_offset()).unwrap(), 1);
}

#[test]
fn unflushed_records_are_due_at_flush_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            flush_ms: 100,
            ..config()
        },
    );
    append(&mut log, &["a"], 5);
    let due = log.next_housekeeping_ms(5).unwrap();
    assert_eq!(due, 100);
    log.housekeeping(due - 1, log.log_end_offset()).unwrap();
    assert!(log.recovery_point() < log.log_end_offset());
    log.housekeeping(due, log.log_end_offset()).unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());
}
