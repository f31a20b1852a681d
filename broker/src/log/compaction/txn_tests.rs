//! Compaction of a log with transactions: aborted records go (and never hide a
//! committed record of their key), open transactions are not cleaned, markers stay
//! while their transaction has data and go after delete.retention.ms.

use super::tests::{compact, compact_config, encode_with, kv, kvs, put, read_batches, roll, Kv};
use crate::log::batch::{compute_crc, CRC_AT, TRANSACTIONAL_BIT};
use crate::log::records::Compression;
use crate::log::txn::EndTxnMarker;
use crate::log::Log;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn txn(log: &mut Log, producer_id: i64, seq: i32, records: &[Kv<'_>], ts: i64) {
    let mut b = encode_with(records, ts, Compression::None, (producer_id, 0, seq));
    let attributes = i16::from_be_bytes([b[21], b[22]]) | TRANSACTIONAL_BIT;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    log.append_transactional_as_leader(b, 1, ts).unwrap();
}

fn end(log: &mut Log, producer_id: i64, commit: bool, ts: i64) {
    let marker = EndTxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit,
    };
    log.append_txn_marker(&marker, 1, ts).unwrap();
}

/// The data records (offset, key, value) and the markers' offsets a consumer reads.
fn read(log: &Log) -> (Vec<(i64, String, String)>, Vec<i64>) {
    let markers: Vec<i64> = read_batches(log)
        .iter()
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| h.base_offset)
        .collect();
    let data = kvs(log)
        .into_iter()
        .filter(|(o, _, _)| !markers.contains(o))
        .collect();
    (data, markers)
}

fn aborted(log: &Log) -> Vec<(i64, i64)> {
    log.aborted_transactions(log.log_start_offset(), log.log_end_offset())
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect()
}

fn owned(v: &[(i64, &str, &str)]) -> Vec<(i64, String, String)> {
    v.iter()
        .map(|(o, k, v)| (*o, k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn compaction_removes_aborted_records_and_keeps_markers_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    txn(&mut log, 1, 0, &[kv("a", "committed")], 10); // 0
    end(&mut log, 1, true, 10); // 1
    txn(
        &mut log,
        2,
        0,
        &[kv("a", "aborted"), kv("b", "aborted")],
        10,
    ); // 2, 3
    end(&mut log, 2, false, 10); // 4
    txn(&mut log, 2, 2, &[kv("e", "later")], 10); // 5
    end(&mut log, 2, true, 10); // 6
    put(&mut log, &[kv("c", "x")], 10); // 7
    roll(&mut log);
    txn(&mut log, 3, 0, &[kv("d", "open")], 10); // 8, never ended here
    roll(&mut log);
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 8);

    assert!(compact(&mut log, 1_000));
    let (data, markers) = read(&log);
    // "a" keeps its committed value: the aborted record later in the log neither
    // survives nor hides it; "b" existed only in the aborted transaction.
    assert_eq!(
        data,
        owned(&[
            (0, "a", "committed"),
            (5, "e", "later"),
            (7, "c", "x"),
            (8, "d", "open")
        ])
    );
    // The abort marker stays while the cleaning found its transaction's data.
    assert_eq!(markers, vec![1, 4, 6]);
    assert_eq!(aborted(&log), vec![(2, 2)]);
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 8);

    // The next cleaning finds no data of the aborted transaction: its marker gets a
    // delete horizon, and goes once it passed. Markers of committed data stay.
    end(&mut log, 3, true, 2_000); // 9
    put(&mut log, &[kv("f", "y")], 2_000); // 10
    roll(&mut log);
    assert!(compact(&mut log, 2_000));
    assert_eq!(read(&log).1, vec![1, 4, 6, 9]);
    assert!(compact(&mut log, 2_000 + DAY_MS + 1));
    let (data, markers) = read(&log);
    assert_eq!(markers, vec![1, 6, 9]);
    assert_eq!(aborted(&log), vec![]);
    assert_eq!(data.len(), 5);
    // A reopened log agrees: no transaction left open, none aborted.
    let end_offset = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), compact_config(), 0).unwrap();
    assert_eq!(log.last_stable_offset(end_offset), end_offset);
    assert_eq!(aborted(&log), vec![]);
}
