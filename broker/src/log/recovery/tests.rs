//! Opening damaged logs: what is cut, what is refused, what is rebuilt.

use std::collections::BTreeMap;

use super::*;
use crate::log::batch::testing::TestBatch;
use crate::log::batch::HEADER_BYTES;
use crate::log::scrub::ScrubReport;
use crate::log::tests::{append, config, open, read_all, segment_files, values};

/// Bytes of one test batch of one 4-byte value.
fn batch_bytes() -> u64 {
    TestBatch::new(&["v000"], 0).encode().len() as u64
}

fn five_batch_segments() -> LogConfig {
    LogConfig {
        segment_bytes: batch_bytes() * 5,
        ..config()
    }
}

/// 17 one-record batches at offsets 0..17: rolled segments 0-4, 5-9 and 10-14, and
/// the active segment 15-16; closed cleanly.
fn three_rolled_segments(dir: &Path) -> Vec<PathBuf> {
    let mut log = open(dir, five_batch_segments());
    for i in 0..17 {
        append(&mut log, &[&format!("v{i:03}")], 1_000 + i);
    }
    log.close().unwrap();
    drop(log);
    let logs = segment_files(dir, "log");
    assert_eq!(logs.len(), 4);
    logs
}

/// Every file of the directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn cut_in_half(path: &Path) -> u64 {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    len / 2
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn expect_corrupt(err: OpenError) -> (PathBuf, u64, String) {
    match err {
        OpenError::Corrupt {
            path,
            position,
            reason,
        } => (path, position, reason),
        other => panic!("expected a damaged log, got {other:?}"),
    }
}

#[test]
fn a_rolled_segment_cut_in_half_is_refused_and_no_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    cut_in_half(&logs[0]);
    let b = batch_bytes();
    for clean in [true, false] {
        if !clean {
            // After an unclean stop too: the segment was rolled, so it was durable.
            std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_MARKER)).unwrap();
        }
        let before = snapshot(dir.path());
        let err = Log::open(dir.path(), five_batch_segments(), 0).unwrap_err();
        let message = err.to_string();
        let (path, position, reason) = expect_corrupt(err);
        // 2.5 batches are left: the third one is the first that is not whole.
        assert_eq!((path.as_path(), position), (logs[0].as_path(), 2 * b));
        assert!(reason.contains("bytes"), "{reason}");
        assert!(
            message.contains("00000000000000000000.log")
                && message.contains(&format!("byte {}", 2 * b)),
            "{message}"
        );
        assert_eq!(snapshot(dir.path()), before, "clean: {clean}");
    }
    // What the runtime sees through `?` into io::Error keeps the details.
    let io: io::Error = Log::open(dir.path(), five_batch_segments(), 0)
        .unwrap_err()
        .into();
    assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    let inner = io.get_ref().and_then(|e| e.downcast_ref::<OpenError>());
    assert_eq!(
        inner.and_then(|e| e.damage()).map(|d| d.position),
        Some(2 * b)
    );
}

#[test]
fn the_truncating_open_keeps_the_batches_before_the_damage_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    let sizes: Vec<u64> = logs
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let left = cut_in_half(&logs[0]);
    let b = batch_bytes();
    let (mut log, dropped) =
        Log::open_truncating_damage(&LogStorage::default(), dir.path(), five_batch_segments(), 0)
            .unwrap();
    let dropped = dropped.expect("the damage was cut");
    assert_eq!(dropped.damage.path, logs[0]);
    assert_eq!(dropped.damage.position, 2 * b);
    assert_eq!(dropped.first_lost_offset, 2);
    assert_eq!(dropped.segments_deleted, 3);
    assert_eq!(
        dropped.bytes_dropped,
        (left - 2 * b) + sizes[1] + sizes[2] + sizes[3]
    );
    // Nothing past the damage is kept, and what is kept reads back.
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(values(&read_all(&log, 0)), vec![(0, "v000"), (1, "v001")]);
    assert_eq!(segment_files(dir.path(), "log"), vec![logs[0].clone()]);
    assert_eq!(segment_files(dir.path(), "index").len(), 1);
    assert_eq!(std::fs::metadata(&logs[0]).unwrap().len(), 2 * b);
    // The next offset continues after the kept batches: none is handed out twice.
    assert_eq!(append(&mut log, &["new"], 5_000).base_offset, 2);
    drop(log);
    let log = open(dir.path(), five_batch_segments());
    assert_eq!(
        values(&read_all(&log, 0)),
        vec![(0, "v000"), (1, "v001"), (2, "new")]
    );
}

#[test]
fn the_truncating_open_of_an_intact_log_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    three_rolled_segments(dir.path());
    let before = snapshot(dir.path());
    let (log, dropped) =
        Log::open_truncating_damage(&LogStorage::default(), dir.path(), five_batch_segments(), 0)
            .unwrap();
    assert_eq!(dropped, None);
    assert_eq!(log.log_end_offset(), 17);
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn damage_below_the_recovery_point_of_the_active_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config());
    for i in 0..4 {
        append(&mut log, &[&format!("v{i:03}")], 1_000 + i);
    }
    // Late enough for the flush to rewrite the recovery point checkpoint.
    log.flush(60_000).unwrap();
    assert_eq!(log.recovery_point(), 4);
    drop(log); // no clean shutdown
    let file = &segment_files(dir.path(), "log")[0];
    let b = batch_bytes();
    flip_byte(file, b + HEADER_BYTES as u64 + 2);
    let before = snapshot(dir.path());
    let (path, position, reason) = expect_corrupt(Log::open(dir.path(), config(), 0).unwrap_err());
    assert_eq!((&path, position), (file, b));
    assert!(reason.contains("CRC-32C"), "{reason}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn damage_in_the_active_segment_after_a_clean_shutdown_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    let active = &logs[3];
    let len = std::fs::metadata(active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(active)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (path, position, _) =
        expect_corrupt(Log::open(dir.path(), five_batch_segments(), 0).unwrap_err());
    assert_eq!((&path, position), (active, batch_bytes()));
}

#[test]
fn deleted_or_garbled_indexes_are_rebuilt_and_no_data_is_cut() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let logs = three_rolled_segments(dir.path());
        if !clean {
            std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_MARKER)).unwrap();
        }
        let indexes = segment_files(dir.path(), "index");
        let time_indexes = segment_files(dir.path(), "timeindex");
        let before = snapshot(dir.path());
        // Missing, garbage, a torn entry, an entry pointing at the wrong batch.
        std::fs::remove_file(&indexes[0]).unwrap();
        std::fs::write(&indexes[1], [0xab; 24]).unwrap();
        std::fs::write(&time_indexes[1], [1, 2, 3, 4, 5]).unwrap();
        let mut wrong = std::fs::read(&indexes[2]).unwrap();
        let n = wrong.len();
        wrong[n - 4..].copy_from_slice(&(batch_bytes() as u32).to_be_bytes());
        std::fs::write(&indexes[2], wrong).unwrap();
        std::fs::remove_file(&time_indexes[3]).unwrap();

        let log = open(dir.path(), five_batch_segments());
        let records = read_all(&log, 0);
        assert_eq!(records.len(), 17, "clean: {clean}");
        for (i, (offset, value)) in records.iter().enumerate() {
            assert_eq!(
                (*offset, value.as_str()),
                (i as i64, format!("v{i:03}").as_str())
            );
        }
        assert_eq!(log.offset_for_timestamp(1_007).unwrap(), Some((7, 1_007)));
        assert_eq!(log.offset_for_timestamp(1_016).unwrap(), Some((16, 1_016)));
        let after = snapshot(dir.path());
        for path in &logs {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(after[&name], before[&name], "{name} changed");
        }
        // The rolled segments' indexes are rebuilt exactly as they were written.
        for path in indexes[..3].iter().chain(&time_indexes[..3]) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(after[&name], before[&name], "{name} rebuilt differently");
        }
    }
}

#[test]
fn the_scrub_finds_a_flipped_bit_in_a_rolled_segment_a_clean_open_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    let b = batch_bytes();
    // Inside the records of the middle segment's second batch: headers still tile.
    flip_byte(&logs[1], b + HEADER_BYTES as u64 + 2);
    let mut log = open(dir.path(), five_batch_segments());
    assert_eq!(log.damage(), None);
    let mut verified = 0;
    let mut found = Vec::new();
    for step in 0.. {
        assert!(step < 100, "the scrub does not finish");
        // About two batches per step.
        let report = log.scrub(2 * b).unwrap();
        assert!(report.verified_bytes <= 3 * b, "{report:?}");
        verified += report.verified_bytes;
        found.extend(report.damage);
        if !report.pending {
            break;
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((&found[0].path, found[0].position), (&logs[1], b));
    assert!(found[0].reason.contains("CRC-32C"), "{}", found[0].reason);
    assert_eq!(log.damage(), Some(&found[0]));
    // Everything else was read: three whole segments and the good batch before the
    // damage.
    assert_eq!(verified, 5 * b + b + 5 * b + 2 * b);
    assert_eq!(log.scrub(b).unwrap(), ScrubReport::default());
}

#[test]
fn a_log_cut_at_the_damage_the_scrub_found_keeps_what_was_before_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    let b = batch_bytes();
    flip_byte(&logs[1], b + HEADER_BYTES as u64 + 2);
    let mut log = open(dir.path(), five_batch_segments());
    assert_eq!(log.truncate_damage().unwrap(), None, "nothing found yet");
    while log.scrub(1 << 20).unwrap().pending {}
    assert!(log.damage().is_some());
    // The middle segment starts at offset 5: its first batch is kept.
    assert_eq!(log.truncate_damage().unwrap(), Some(6));
    assert_eq!((log.damage(), log.log_end_offset()), (None, 6));
    let kept: Vec<String> = read_all(&log, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(kept, ["v000", "v001", "v002", "v003", "v004", "v005"]);
    // Fetched back from the leader: the log continues at the cut.
    append(&mut log, &["again"], 2_000);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(read_all(&log, 0)[6], (6, "again".to_string()));
}

#[test]
fn the_scrub_has_nothing_to_do_for_what_this_process_wrote_or_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), five_batch_segments());
    for i in 0..12 {
        append(&mut log, &[&format!("v{i:03}")], 1_000 + i);
    }
    assert!(log.plan_scrub(1 << 20).is_none());
    drop(log); // unclean: the tail is recovered (verified) on open
    let mut log = open(dir.path(), five_batch_segments());
    let report = log.scrub(1 << 20).unwrap();
    // Only the rolled segments below the recovery point were trusted.
    assert_eq!(report.verified_bytes, 5 * batch_bytes());
    assert!(report.pending);
    assert_eq!(
        log.scrub(1 << 20).unwrap().verified_bytes,
        5 * batch_bytes()
    );
    assert_eq!(log.scrub(1 << 20).unwrap(), ScrubReport::default());
}

#[test]
fn a_scrub_result_for_a_segment_that_changed_meanwhile_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    three_rolled_segments(dir.path());
    let mut log = open(dir.path(), five_batch_segments());
    let job = log.plan_scrub(1 << 20).unwrap();
    let result = job.run();
    log.truncate_to(3).unwrap();
    let report = log.complete_scrub(job, result).unwrap();
    assert_eq!(report.verified_bytes, 0);
    // The truncated log is scrubbed from its (new) start again.
    assert!(report.pending);
    assert_eq!(
        log.scrub(1 << 20).unwrap().verified_bytes,
        3 * batch_bytes()
    );
}

#[test]
fn a_rolled_segment_that_lost_whole_batches_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let logs = three_rolled_segments(dir.path());
    let b = batch_bytes();
    // Cut at a batch boundary: every batch left is whole and valid, but the indexes
    // written and fsynced with the segment describe batches it no longer has.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&logs[1])
        .unwrap()
        .set_len(3 * b)
        .unwrap();
    let before = snapshot(dir.path());
    let (path, position, reason) =
        expect_corrupt(Log::open(dir.path(), five_batch_segments(), 0).unwrap_err());
    assert_eq!((&path, position), (&logs[1], 3 * b));
    assert!(reason.contains("data is missing"), "{reason}");
    assert_eq!(snapshot(dir.path()), before);
    // The truncating open keeps segment 0 and the three batches, offsets 0..8.
    let (log, dropped) =
        Log::open_truncating_damage(&LogStorage::default(), dir.path(), five_batch_segments(), 0)
            .unwrap();
    assert_eq!(dropped.unwrap().first_lost_offset, 8);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(read_all(&log, 0).len(), 8);
}

#[test]
fn a_wrong_entry_in_the_middle_of_a_trusted_index_never_misplaces_a_read() {
    let dir = tempfile::tempdir().unwrap();
    three_rolled_segments(dir.path());
    let b = batch_bytes();
    // Still increasing and inside the log, so the open trusts it; the entry for offset
    // 7 (the middle segment's third batch, at 2b) now points 10 bytes into it.
    let index = &segment_files(dir.path(), "index")[1];
    let mut bytes = std::fs::read(index).unwrap();
    let entry = (0..bytes.len() / 8)
        .find(|i| bytes[i * 8..i * 8 + 4] == 2u32.to_be_bytes())
        .unwrap();
    bytes[entry * 8 + 4..entry * 8 + 8].copy_from_slice(&(2 * b as u32 + 10).to_be_bytes());
    std::fs::write(index, bytes).unwrap();
    let log = open(dir.path(), five_batch_segments());
    for offset in 5..10 {
        let slice = log.read(offset, 1, i64::MAX, true).unwrap().slice.unwrap();
        let records = crate::log::batch::testing::decode_records(&slice.read_to_bytes().unwrap());
        assert_eq!(
            values(&records),
            vec![(offset, format!("v{offset:03}").as_str())],
            "reading offset {offset}"
        );
    }
}
