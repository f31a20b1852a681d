//! Log-level tests: what a producer, consumer or follower would notice.

use super::batch::testing::{decode_records, TestBatch};
use super::*;

pub(crate) fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 0,
        ..LogConfig::default()
    }
}

pub(crate) fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0).unwrap()
}

pub(crate) fn append(log: &mut Log, values: &[&str], ts: i64) -> AppendInfo {
    log.append_as_leader(TestBatch::new(values, ts).encode(), 1, ts)
        .unwrap()
}

/// Everything from `offset` to the log end, reading segment by segment as a consumer.
pub(crate) fn read_all(log: &Log, mut offset: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        let bytes = info
            .slice
            .expect("data below the log end")
            .read_to_bytes()
            .unwrap();
        let records = decode_records(&bytes);
        offset = records.last().unwrap().0 + 1;
        out.extend(records);
    }
    out
}

/// The whole batches stored from `offset`, as a fetch (up to 1 MiB) returns them.
pub(crate) fn stored_from(log: &Log, offset: i64) -> bytes::Bytes {
    log.read(offset, 1 << 20, i64::MAX, true)
        .unwrap()
        .slice
        .expect("data at the offset")
        .read_to_bytes()
        .unwrap()
}

pub(crate) fn values(records: &[(i64, String)]) -> Vec<(i64, &str)> {
    records.iter().map(|(o, v)| (*o, v.as_str())).collect()
}

pub(crate) fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn append_and_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 0);
    let a = append(&mut log, &["a", "b"], 10);
    let b = append(&mut log, &["c"], 20);
    assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 1, false));
    assert_eq!((b.base_offset, b.last_offset), (2, 2));
    assert_eq!(a.log_append_time_ms, -1);
    assert_eq!(
        values(&read_all(&log, 0)),
        vec![(0, "a"), (1, "b"), (2, "c")]
    );
    let at_end = log.read(3, 1000, i64::MAX, true).unwrap();
    assert!(at_end.slice.is_none());
    assert_eq!(at_end.log_end_offset, 3);
    assert!(matches!(
        log.read(4, 1000, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { offset: 4, .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().file_name() == "00000000000000000000.log" })
            .count(),
        1
    );
    assert_eq!(log.latest_epoch(), 1);
    assert!(log.size_bytes() > 0);
}

#[test]
fn a_topic_codec_other_than_producer_stores_batches_recompressed() {
    let dir = tempfile::tempdir().unwrap();
    let target = recompress::TopicCodec {
        compression: codec::Compression::Zstd,
        level: None,
    };
    let mut log = open(
        dir.path(),
        LogConfig {
            compression: Some(target),
            ..config()
        },
    );
    let a = append(&mut log, &["a", "b"], 10);
    let b = append(&mut log, &["c"], 20);
    assert_eq!((a.base_offset, b.base_offset), (0, 2));
    assert_eq!(
        values(&read_all(&log, 0)),
        vec![(0, "a"), (1, "b"), (2, "c")]
    );
    let stored = stored_from(&log, 0);
    let header = batch::BatchHeader::parse_prefix(&stored).unwrap();
    assert_eq!(
        codec::Compression::of_header(&header).unwrap(),
        codec::Compression::Zstd
    );
}

#[test]
fn fetch_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a", "b", "c"], 10);
    append(&mut log, &["d"], 20);
    let bytes = log
        .read(1, 1 << 20, i64::MAX, false)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    assert_eq!(
        values(&decode_records(&bytes)),
        vec![(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    );
}

#[test]
fn max_bytes_returns_whole_batches_and_min_one_batch_returns_an_oversized_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    let big = "x".repeat(1000);
    append(&mut log, &[&big], 10);
    append(&mut log, &["small"], 20);
    let first = log.read(0, 100, i64::MAX, true).unwrap().slice.unwrap();
    assert_eq!(
        values(&decode_records(&first.read_to_bytes().unwrap())),
        vec![(0, big.as_str())]
    );
    assert!(log.read(0, 100, i64::MAX, false).unwrap().slice.is_none());
    // 1.5 batches of room: only the whole first batch comes back.
    let partial = log
        .read(0, first.len + 30, i64::MAX, false)
        .unwrap()
        .slice
        .unwrap();
    assert_eq!(partial.len, first.len);
}

#[test]
fn reads_stop_below_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a"], 10);
    append(&mut log, &["b", "c"], 20);
    append(&mut log, &["d"], 30);
    let bytes = log
        .read(0, 1 << 20, 3, true)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    assert_eq!(
        values(&decode_records(&bytes)),
        vec![(0, "a"), (1, "b"), (2, "c")]
    );
    // A batch straddling the high watermark is not exposed.
    let bytes = log
        .read(0, 1 << 20, 2, true)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    assert_eq!(values(&decode_records(&bytes)), vec![(0, "a")]);
    assert!(log.read(3, 1 << 20, 3, true).unwrap().slice.is_none());
}

#[test]
fn segments_roll_by_size_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["v0"], 0).encode().len() as u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes * 2,
            ..config()
        },
    );
    for i in 0..5 {
        append(&mut log, &[&format!("v{i}")], 100 + i);
    }
    assert_eq!(log.segment_count(), 3);
    let names: Vec<String> = segment_files(dir.path(), "log")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.log",
            "00000000000000000002.log",
            "00000000000000000004.log"
        ]
    );
    assert_eq!(read_all(&log, 0).len(), 5);
    assert_eq!(
        values(&read_all(&log, 3)),
        vec![(2, "v2"), (3, "v3"), (4, "v4")][1..].to_vec()
    );
    // A read returns data from one segment only.
    let one = log.read(0, 1 << 20, i64::MAX, true).unwrap().slice.unwrap();
    assert_eq!(decode_records(&one.read_to_bytes().unwrap()).len(), 2);
}

#[test]
fn no_segment_grows_past_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["v0"], 0).encode().len() as u64;
    // Room for two and a half batches: the third must go to a new segment.
    let segment_bytes = batch_bytes * 5 / 2;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes,
            ..config()
        },
    );
    for i in 0..7 {
        append(&mut log, &[&format!("v{i}")], 100 + i);
    }
    assert_eq!(log.segment_count(), 4);
    for path in segment_files(dir.path(), "log") {
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= segment_bytes, "{} holds {len} bytes", path.display());
    }
}

#[test]
fn segments_roll_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..config()
        },
    );
    append(&mut log, &["a"], 0);
    append(&mut log, &["b"], 500);
    assert_eq!(log.segment_count(), 1);
    // segment.ms is measured from the first batch's timestamp at append time.
    append(&mut log, &["c"], 1501);
    assert_eq!(log.segment_count(), 2);
    // An idle partition rolls in housekeeping, by the wall clock since the segment
    // was created (at now = 1501).
    log.housekeeping(2501, log.log_end_offset()).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.housekeeping(2502, log.log_end_offset()).unwrap();
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn retention_by_time_deletes_old_segments_and_advances_log_start() {
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
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.housekeeping(5500, log.log_end_offset()).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 1);
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(values(&read_all(&log, 1)), vec![(1, "new")]);
    // When even the active segment is expired it is rolled and deleted.
    assert_eq!(log.housekeeping(10_000, log.log_end_offset()).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(append(&mut log, &["next"], 10_000).base_offset, 2);
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
}

#[test]
fn retention_by_size_deletes_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["v0"], 0).encode().len() as u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes,
            retention_bytes: (batch_bytes * 2) as i64,
            ..config()
        },
    );
    for i in 0..5 {
        append(&mut log, &[&format!("v{i}")], 100);
    }
    assert_eq!(log.segment_count(), 5);
    assert_eq!(log.housekeeping(200, log.log_end_offset()).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.size_bytes(), batch_bytes * 2);
    assert_eq!(values(&read_all(&log, 3)), vec![(3, "v3"), (4, "v4")]);
}

#[test]
fn indexes_are_rebuilt_when_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..50 {
        append(&mut log, &[&format!("v{i}")], 1000 + i);
    }
    log.close().unwrap();
    drop(log);
    for f in segment_files(dir.path(), "index")
        .into_iter()
        .chain(segment_files(dir.path(), "timeindex"))
    {
        std::fs::remove_file(f).unwrap();
    }
    let log = open(dir.path(), config());
    assert!(
        std::fs::metadata(&segment_files(dir.path(), "index")[0])
            .unwrap()
            .len()
            > 0
    );
    assert!(
        std::fs::metadata(&segment_files(dir.path(), "timeindex")[0])
            .unwrap()
            .len()
            > 0
    );
    assert_eq!(read_all(&log, 37)[0], (37, "v37".to_string()));
    assert_eq!(log.offset_for_timestamp(1020).unwrap(), Some((20, 1020)));
    assert_eq!(log.log_end_offset(), 50);
}

#[test]
fn corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..10 {
        append(&mut log, &[&format!("v{i}")], 1000 + i);
    }
    log.close().unwrap();
    drop(log);
    let index = &segment_files(dir.path(), "index")[0];
    let mut bytes = std::fs::read(index).unwrap();
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // position past the log
    std::fs::write(index, bytes).unwrap();
    let log = open(dir.path(), config());
    assert_eq!(values(&read_all(&log, 5))[0], (5, "v5"));
}

/// Three batches written, then the process dies (no close): the page cache keeps them.
fn crashed_log_with_three_batches(dir: &Path) -> PathBuf {
    let mut log = open(dir, config());
    append(&mut log, &["a"], 10);
    append(&mut log, &["b"], 20);
    append(&mut log, &["c", "d"], 30);
    drop(log);
    segment_files(dir, "log")[0].clone()
}

#[test]
fn recovery_keeps_fully_written_batches_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    crashed_log_with_three_batches(dir.path());
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log, 0).len(), 4);
}

#[test]
fn recovery_truncates_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let file = crashed_log_with_three_batches(dir.path());
    let len = std::fs::metadata(&file).unwrap().len();
    let last = TestBatch::new(&["c", "d"], 30).encode().len() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - last / 2)
        .unwrap();
    let mut log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "a"), (1, "b")]);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len - last);
    assert_eq!(append(&mut log, &["e"], 40).base_offset, 2);
    assert_eq!(values(&read_all(&log, 2)), vec![(2, "e")]);
}

#[test]
fn recovery_drops_a_last_batch_with_a_bad_crc() {
    let dir = tempfile::tempdir().unwrap();
    let file = crashed_log_with_three_batches(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(read_all(&log, 0).len(), 2);
}

#[test]
fn recovery_truncates_garbage_without_allocating_what_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let file = crashed_log_with_three_batches(dir.path());
    let valid_len = std::fs::metadata(&file).unwrap().len();
    // A plausible header claiming a 2 GB batch, then noise.
    let mut garbage = TestBatch::new(&["zzz"], 40).encode().to_vec();
    garbage[0..8].copy_from_slice(&4i64.to_be_bytes());
    garbage[8..12].copy_from_slice(&(i32::MAX - 100).to_be_bytes());
    garbage.extend((0..5000u32).map(|i| (i * 7919 % 251) as u8));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&garbage);
    std::fs::write(&file, bytes).unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), valid_len);
}

#[test]
fn clean_shutdown_skips_recovery_until_the_next_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a"], 10);
    log.close().unwrap();
    drop(log);
    assert!(dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    let mut log = open(dir.path(), config());
    assert_eq!(log.log_end_offset(), 1);
    assert!(dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    append(&mut log, &["b"], 20);
    assert!(!dir.path().join(CLEAN_SHUTDOWN_MARKER).exists());
    assert_eq!(log.max_timestamp_offset(), Some((1, 20)));
}

fn produce(
    log: &mut Log,
    producer_id: i64,
    epoch: i16,
    seq: i32,
    values: &[&str],
) -> Result<AppendInfo, AppendError> {
    log.append_as_leader(
        TestBatch::new(values, 100)
            .idempotent(producer_id, epoch, seq)
            .encode(),
        1,
        100,
    )
}

#[test]
fn retried_duplicate_returns_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["other"], 1);
    let first = produce(&mut log, 7, 0, 0, &["a", "b"]).unwrap();
    produce(&mut log, 7, 0, 2, &["c"]).unwrap();
    let size = log.size_bytes();
    let retry = produce(&mut log, 7, 0, 0, &["a", "b"]).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!((retry.base_offset, retry.last_offset), (1, 2));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn sequence_gap_and_old_epoch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    produce(&mut log, 7, 1, 0, &["a"]).unwrap();
    assert!(matches!(
        produce(&mut log, 7, 1, 2, &["c"]),
        Err(AppendError::OutOfOrderSequence {
            producer_id: 7,
            expected: 1,
            got: 2
        })
    ));
    assert!(matches!(
        produce(&mut log, 7, 0, 1, &["b"]),
        Err(AppendError::InvalidProducerEpoch {
            producer_id: 7,
            got: 0,
            current: 1
        })
    ));
    assert!(matches!(
        produce(&mut log, 7, 2, 5, &["b"]),
        Err(AppendError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(produce(&mut log, 7, 2, 0, &["b"]).unwrap().base_offset, 1);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn producer_state_survives_crash_and_clean_restart() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let batch_bytes = TestBatch::new(&["a"], 100)
            .idempotent(7, 0, 0)
            .encode()
            .len() as u64;
        // Small segments: rolls write snapshots, the active tail is replayed.
        let cfg = LogConfig {
            segment_bytes: batch_bytes * 2,
            ..config()
        };
        let mut log = open(dir.path(), cfg.clone());
        for seq in 0..5 {
            produce(&mut log, 7, 0, seq, &["a"]).unwrap();
        }
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let mut log = open(dir.path(), cfg);
        let retry = produce(&mut log, 7, 0, 3, &["a"]).unwrap();
        assert!(retry.duplicate, "clean={clean}");
        assert_eq!(retry.base_offset, 3);
        assert!(matches!(
            produce(&mut log, 7, 0, 9, &["a"]),
            Err(AppendError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert_eq!(produce(&mut log, 7, 0, 5, &["a"]).unwrap().base_offset, 5);
    }
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["a", "b"], 0).encode().len() as u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes * 3,
            ..config()
        },
    );
    for i in 0..8 {
        append(&mut log, &["a", "b"], 100 * (i + 1)); // records at 100*(i+1) and +1
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    // Inside a batch: the second record, not the batch's first.
    assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((1, 101)));
    assert_eq!(log.offset_for_timestamp(102).unwrap(), Some((2, 200)));
    assert_eq!(log.offset_for_timestamp(650).unwrap(), Some((12, 700)));
    assert_eq!(log.offset_for_timestamp(802).unwrap(), None);
    assert_eq!(log.max_timestamp_offset(), Some((15, 801)));
}

#[test]
fn log_append_time_stamps_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config()
        },
    );
    let info = log
        .append_as_leader(TestBatch::new(&["a"], 5).encode(), 0, 9999)
        .unwrap();
    assert_eq!(info.log_append_time_ms, 9999);
    let bytes = log
        .read(0, 1000, i64::MAX, true)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    let header = batch::validate_batch(&bytes).unwrap();
    assert_eq!(header.max_timestamp_ms, 9999);
    assert_ne!(header.attributes & batch::TIMESTAMP_TYPE_BIT, 0);
}

#[test]
fn bad_produce_requests_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 100,
            ..config()
        },
    );
    let big = "x".repeat(200);
    let err = log
        .append_as_leader(TestBatch::new(&[&big], 5).encode(), 0, 5)
        .unwrap_err();
    assert!(
        matches!(err, AppendError::MessageTooLarge { max: 100, .. }),
        "{err}"
    );
    let mut corrupt = TestBatch::new(&["a"], 5).encode();
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert!(matches!(
        log.append_as_leader(corrupt, 0, 5),
        Err(AppendError::Corrupt(_))
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn leader_epoch_checkpoint_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    log.append_as_leader(TestBatch::new(&["a"], 1).encode(), 1, 1)
        .unwrap();
    log.append_as_leader(TestBatch::new(&["b"], 2).encode(), 1, 2)
        .unwrap();
    log.append_as_leader(TestBatch::new(&["c", "d"], 3).encode(), 3, 3)
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n1 0\n3 2\n");
    drop(log);
    let log = open(dir.path(), config());
    assert_eq!(log.latest_epoch(), 3);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 2)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 2)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)));
    assert_eq!(log.end_offset_for_epoch(4), None);
    assert_eq!(log.epoch_for_offset(1), Some(1));
    assert_eq!(log.epoch_for_offset(3), Some(3));
}

#[test]
fn epochs_are_rebuilt_from_batches_when_the_checkpoint_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    log.append_as_leader(TestBatch::new(&["a"], 1).encode(), 2, 1)
        .unwrap();
    log.append_as_leader(TestBatch::new(&["b"], 2).encode(), 5, 2)
        .unwrap();
    drop(log);
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let log = open(dir.path(), config());
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 1)));
    assert_eq!(log.latest_epoch(), 5);
}

#[test]
fn truncate_to_drops_data_epochs_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["a"], 100)
        .idempotent(7, 0, 0)
        .encode()
        .len() as u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes * 2,
            ..config()
        },
    );
    for seq in 0..3 {
        produce(&mut log, 7, 0, seq, &["a"]).unwrap();
    }
    log.append_as_leader(
        TestBatch::new(&["x"], 100).idempotent(7, 0, 3).encode(),
        4,
        100,
    )
    .unwrap();
    log.append_as_leader(
        TestBatch::new(&["y"], 100).idempotent(7, 0, 4).encode(),
        4,
        100,
    )
    .unwrap();
    assert_eq!(log.latest_epoch(), 4);
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log, 0).len(), 3);
    assert_eq!(log.latest_epoch(), 1);
    assert_eq!(log.end_offset_for_epoch(4), None);
    // The truncated batch's sequence is no longer known: it is the next in sequence.
    let again = produce(&mut log, 7, 0, 3, &["x"]).unwrap();
    assert_eq!((again.base_offset, again.duplicate), (3, false));
    // Survives a reopen too.
    drop(log);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: batch_bytes * 2,
            ..config()
        },
    );
    assert_eq!(log.log_end_offset(), 4);
    log.read(3, 1000, i64::MAX, true).unwrap().slice.unwrap();
}

#[test]
fn truncate_to_before_the_log_start_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a", "b"], 1);
    log.truncate_to(0).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.latest_epoch()
        ),
        (0, 0, -1)
    );
    assert_eq!(append(&mut log, &["c"], 2).base_offset, 0);
}

#[test]
fn follower_append_keeps_offsets_and_rejects_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), config());
    append(&mut leader, &["a", "b"], 1);
    append(&mut leader, &["c"], 2);
    let fetched = stored_from(&leader, 0);
    let mut follower = open(dir.path(), config());
    let info = follower.append_as_follower(fetched.clone()).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(
        values(&read_all(&follower, 0)),
        vec![(0, "a"), (1, "b"), (2, "c")]
    );
    assert_eq!(follower.latest_epoch(), 1);
    assert!(matches!(
        follower.append_as_follower(fetched),
        Err(AppendError::Corrupt(_))
    ));
    assert_eq!(follower.log_end_offset(), 3);
}

#[test]
fn flush_messages_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            flush_messages: 3,
            ..config()
        },
    );
    append(&mut log, &["a", "b"], 1);
    assert!(!log.flush_due());
    append(&mut log, &["c"], 2);
    // The leader's caller syncs: the append itself only says a sync is due.
    assert!(log.flush_due());
    assert_eq!(log.recovery_point(), 0);
    log.flush(2).unwrap();
    assert!(!log.flush_due());
    assert_eq!(log.recovery_point(), 3);
}

#[test]
fn a_split_flush_covers_what_was_appended_before_it_was_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a", "b"], 1);
    let job = log.prepare_flush(1).unwrap();
    // Appends go on while the job runs without the log's lock; they wait for the next.
    append(&mut log, &["c"], 2);
    job.run().unwrap();
    assert!(log.complete_flush(&job, 2).unwrap());
    assert_eq!(log.recovery_point(), 2);
    let next = log.prepare_flush(3).unwrap();
    next.run().unwrap();
    assert!(log.complete_flush(&next, 3).unwrap());
    assert_eq!(log.recovery_point(), 3);
}

#[test]
fn a_split_flush_across_a_truncation_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    append(&mut log, &["a", "b", "c"], 1);
    let job = log.prepare_flush(1).unwrap();
    // A new leader's log replaces offsets 1.. while the sync runs: they are not the
    // bytes the job synced.
    log.truncate_to(1).unwrap();
    append(&mut log, &["x", "y"], 2);
    job.run().unwrap();
    assert!(!log.complete_flush(&job, 2).unwrap());
    assert_eq!(log.recovery_point(), 0);
}

#[test]
fn every_offset_reads_back_with_a_sparse_index_before_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 150,
        segment_bytes: 800,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg.clone());
    let mut offset = 0;
    let mut expected = Vec::new();
    for i in 0..60 {
        let vals: Vec<String> = (0..(i % 3 + 1)).map(|j| format!("r{i}-{j}")).collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        let info = append(&mut log, &refs, 1000 + i);
        assert_eq!(info.base_offset, offset);
        for v in vals {
            expected.push((offset, v));
            offset += 1;
        }
    }
    assert!(log.segment_count() > 3);
    let check = |log: &Log| {
        for (o, v) in &expected {
            let bytes = log
                .read(*o, 300, i64::MAX, true)
                .unwrap()
                .slice
                .unwrap()
                .read_to_bytes()
                .unwrap();
            let records = decode_records(&bytes);
            assert!(
                records.first().unwrap().0 <= *o,
                "read at {o} starts after it"
            );
            assert!(records.contains(&(*o, v.clone())), "read at {o} misses {v}");
        }
        assert_eq!(read_all(log, 0), expected);
    };
    check(&log);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), cfg.clone());
    check(&log);
    drop(log);
    // And after a crash with every segment recovered.
    std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_MARKER)).unwrap();
    std::fs::remove_file(dir.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    let log = open(dir.path(), cfg);
    check(&log);
}

#[test]
fn crash_after_rolls_recovers_only_the_tail_and_keeps_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let batch_bytes = TestBatch::new(&["v0"], 0).encode().len() as u64;
    let cfg = LogConfig {
        segment_bytes: batch_bytes * 2,
        ..config()
    };
    let mut log = open(dir.path(), cfg.clone());
    for i in 0..5 {
        append(&mut log, &[&format!("v{i}")], 100 + i);
    }
    assert_eq!(log.recovery_point(), 4);
    drop(log);
    let last = segment_files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&last, bytes).unwrap();
    let log = open(dir.path(), cfg);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log, 0).len(), 4);
    assert_eq!(log.recovery_point(), 4);
}

#[test]
fn full_offset_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two offset index entries; the first batch of a segment is never indexed.
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_index_bytes: 24,
            ..config()
        },
    );
    for i in 0..4 {
        append(&mut log, &["v"], i);
    }
    assert_eq!(log.segment_count(), 2);
    assert_eq!(read_all(&log, 0).len(), 4);
}

#[test]
fn truncating_everything_forgets_producers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    produce(&mut log, 7, 3, 0, &["a"]).unwrap();
    log.close().unwrap();
    log.truncate_to(0).unwrap();
    assert!(log.producer_state().is_empty());
    drop(log);
    let mut log = open(dir.path(), config());
    assert!(log.producer_state().is_empty());
    // An unknown producer may start at any sequence and any epoch.
    assert_eq!(produce(&mut log, 7, 1, 9, &["b"]).unwrap().base_offset, 0);
}

#[test]
fn duplicate_under_log_append_time_reports_the_original_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..config()
    };
    let mut log = open(dir.path(), cfg);
    let batch = || TestBatch::new(&["a"], 5).idempotent(3, 0, 0).encode();
    let first = log.append_as_leader(batch(), 0, 1000).unwrap();
    let retry = log.append_as_leader(batch(), 0, 2000).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.log_append_time_ms),
        (first.base_offset, 1000)
    );
}

#[test]
fn flush_ms_flushes_in_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            flush_ms: 100,
            ..config()
        },
    );
    append(&mut log, &["a"], 10);
    log.housekeeping(99, log.log_end_offset()).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.housekeeping(100, log.log_end_offset()).unwrap();
    assert_eq!(log.recovery_point(), 1);
}
