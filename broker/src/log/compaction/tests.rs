//! Compaction tests: the pure decisions, then what a consumer reads back from a
//! compacted log, then crashes in the middle of a swap.

use std::io::Write;

use bytes::{BufMut, BytesMut};

use std::path::Path;

use super::decide::*;
use super::install::*;
use super::run::*;
use super::*;
use crate::log::batch::{compute_crc, BatchHeader, HEADER_BYTES};
use crate::log::batch::{LOG_OVERHEAD_BYTES, MAGIC_V2, NO_PRODUCER_ID};
use crate::log::records;
use crate::log::records::{Compression, DELETE_HORIZON_BIT};
use crate::log::segment::{self, segment_path};
use crate::log::{AppendError, AppendInfo, CleanupPolicy};
use crate::log::{Log, LogConfig};
use crate::storage::{Disk, FileKind};

const HOUR_MS: i64 = 3600 * 1000;

pub(super) type Kv<'a> = (Option<&'a str>, Option<&'a str>);

pub(super) fn kv<'a>(k: &'a str, v: &'a str) -> Kv<'a> {
    (Some(k), Some(v))
}

fn tombstone(k: &str) -> Kv<'_> {
    (Some(k), None)
}

pub(super) fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        index_interval_bytes: 0,
        // Any dirty byte is enough, so each test decides when to clean.
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&str>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b.as_bytes());
        }
    }
}

/// A producer's batch, written here independently of the cleaner's encoder and
/// compressed with the codec crates directly (snappy raw, as librdkafka writes it).
/// Record i has timestamp `ts + i` and one header.
pub(super) fn encode_with(
    records: &[Kv<'_>],
    ts: i64,
    codec: Compression,
    producer: (i64, i16, i32),
) -> BytesMut {
    let mut section = Vec::new();
    for (i, (k, v)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        put_varlong(&mut body, i as i64);
        put_varlong(&mut body, i as i64);
        put_bytes(&mut body, *k);
        put_bytes(&mut body, *v);
        put_varlong(&mut body, 1);
        put_bytes(&mut body, Some("h"));
        put_bytes(&mut body, Some("1"));
        put_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let section = match codec {
        Compression::None => section,
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&section).unwrap();
            e.finish().unwrap()
        }
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(&section).unwrap(),
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&section).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(&section[..], 0).unwrap(),
    };
    let count = records.len() as i32;
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((HEADER_BYTES - LOG_OVERHEAD_BYTES + section.len()) as i32);
    b.put_i32(-1);
    b.put_i8(MAGIC_V2);
    b.put_u32(0);
    b.put_i16(codec as i16);
    b.put_i32(count - 1);
    b.put_i64(ts);
    b.put_i64(ts + i64::from(count - 1));
    b.put_i64(producer.0);
    b.put_i16(producer.1);
    b.put_i32(producer.2);
    b.put_i32(count);
    b.put_slice(&section);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

pub(super) fn encode(records: &[Kv<'_>], ts: i64) -> BytesMut {
    encode_with(records, ts, Compression::None, (NO_PRODUCER_ID, -1, -1))
}

pub(super) fn put(log: &mut Log, records: &[Kv<'_>], ts: i64) -> AppendInfo {
    log.append_as_leader(encode(records, ts), 1, ts).unwrap()
}

pub(super) fn roll(log: &mut Log) {
    let base = log.log_end_offset();
    log.roll(base, log.clock_ms).unwrap();
}

/// Plan, run and install with the high watermark at the log end; whether it installed.
pub(super) fn compact(log: &mut Log, now_ms: i64) -> bool {
    let hw = log.log_end_offset();
    match log.plan_compaction(now_ms, hw) {
        Some(plan) => log.install_compaction(plan.run().unwrap()).unwrap(),
        None => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    offset: i64,
    key: Option<String>,
    value: Option<String>,
    timestamp_ms: i64,
}

/// Every batch a consumer fetching from the log start receives, in order.
pub(super) fn read_batches(log: &Log) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_bytes().unwrap();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let h = BatchHeader::parse_prefix(rest).unwrap();
            let size = h.size_bytes() as usize;
            assert_eq!(
                compute_crc(&rest[..size]),
                h.crc,
                "CRC of batch at {}",
                h.base_offset
            );
            out.push((h, rest[..size].to_vec()));
            offset = h.last_offset() + 1;
            rest = &rest[size..];
        }
    }
    out
}

fn read_records(log: &Log) -> Vec<Read> {
    let mut out = Vec::new();
    for (h, bytes) in read_batches(log) {
        let section = records::records_section(&bytes, &h).unwrap();
        let base_ts = h.base_timestamp_ms;
        for r in records::parse_records(&h, &section).unwrap() {
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
            out.push(Read {
                offset: h.base_offset + i64::from(r.offset_delta),
                key: s(r.key),
                value: s(r.value),
                timestamp_ms: base_ts + r.timestamp_delta,
            });
        }
    }
    out
}

/// (offset, key, value) with a tombstone shown as value "∅".
pub(super) fn kvs(log: &Log) -> Vec<(i64, String, String)> {
    read_records(log)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                r.key.unwrap_or_default(),
                r.value.unwrap_or_else(|| "∅".into()),
            )
        })
        .collect()
}

fn kvs_ref(v: &[(i64, String, String)]) -> Vec<(i64, &str, &str)> {
    v.iter()
        .map(|(o, k, v)| (*o, k.as_str(), v.as_str()))
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(CLEANED_SUFFIX) || n.ends_with(SWAP_SUFFIX) || n == SWAP_MANIFEST)
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------
// Pure decisions.
// ---------------------------------------------------------------------------------

fn facts<'a>(offset: i64, key: Option<&'a str>, tombstone: bool) -> RecordFacts<'a> {
    RecordFacts {
        offset,
        key: key.map(str::as_bytes),
        tombstone,
    }
}

const PLAIN: BatchFacts = BatchFacts {
    delete_horizon_ms: None,
    producers_last_batch: false,
};

#[test]
fn a_record_survives_unless_superseded_keyless_or_an_expired_tombstone() {
    let a = facts(5, Some("a"), false);
    assert!(keep_record(&a, Some(5), false), "the latest of its key");
    assert!(keep_record(&a, None, false), "key not in the dirty map");
    assert!(
        keep_record(&a, Some(3), false),
        "newer than the map (beyond its range)"
    );
    assert!(!keep_record(&a, Some(6), false), "superseded");
    assert!(!keep_record(&facts(5, None, false), None, false), "no key");
    let t = facts(5, Some("a"), true);
    assert!(keep_record(&t, Some(5), false));
    assert!(!keep_record(&t, Some(5), true));
    // An expired horizon does not touch live values.
    assert!(keep_record(&a, Some(5), true));
}

#[test]
fn batch_decisions_follow_kafka() {
    let latest = |k: &[u8]| match k {
        b"a" => Some(10),
        b"b" => Some(2),
        _ => None,
    };
    // Everything survives and there is no tombstone: the bytes are copied.
    let all = [facts(1, Some("c"), false), facts(2, Some("b"), false)];
    assert_eq!(
        decide_batch(&all, latest, PLAIN, 0),
        BatchDecision::KeepOriginal
    );
    // Some records go.
    let some = [facts(1, Some("a"), false), facts(2, Some("b"), false)];
    assert_eq!(
        decide_batch(&some, latest, PLAIN, 0),
        BatchDecision::Rewrite {
            keep: vec![false, true],
            set_delete_horizon: false
        }
    );
    // A surviving tombstone without a horizon: rewritten to start its clock.
    let tomb = [facts(2, Some("b"), true)];
    assert_eq!(
        decide_batch(&tomb, latest, PLAIN, 0),
        BatchDecision::Rewrite {
            keep: vec![true],
            set_delete_horizon: true
        }
    );
    // With a horizon: kept as is until it passes, then dropped.
    let horizon = BatchFacts {
        delete_horizon_ms: Some(100),
        ..PLAIN
    };
    assert_eq!(
        decide_batch(&tomb, latest, horizon, 99),
        BatchDecision::KeepOriginal
    );
    assert_eq!(
        decide_batch(&tomb, latest, horizon, 100),
        BatchDecision::Drop
    );
    // Emptied: dropped, unless it is its idempotent producer's last batch.
    let gone = [facts(1, Some("a"), false)];
    assert_eq!(decide_batch(&gone, latest, PLAIN, 0), BatchDecision::Drop);
    let last = BatchFacts {
        producers_last_batch: true,
        ..PLAIN
    };
    assert_eq!(
        decide_batch(&gone, latest, last, 0),
        BatchDecision::KeepEmpty
    );
    assert_eq!(
        decide_batch(&[], latest, last, 0),
        BatchDecision::KeepOriginal
    );
    assert_eq!(decide_batch(&[], latest, PLAIN, 0), BatchDecision::Drop);
}

#[test]
fn segments_group_by_size_and_offset_range() {
    // (base, next offset, bytes)
    let segments = [
        (0, 10, 40),
        (10, 20, 40),
        (20, 30, 40),
        (30, 30, 0),
        (40, 50, 90),
    ];
    assert_eq!(group_by_size(&segments, 100), vec![2, 2, 1]);
    assert_eq!(group_by_size(&segments, 1000), vec![5]);
    assert_eq!(group_by_size(&segments, 10), vec![1, 1, 1, 1, 1]);
    let far = [
        (0, 10, 1),
        (i64::from(i32::MAX) + 5, i64::from(i32::MAX) + 6, 1),
    ];
    assert_eq!(group_by_size(&far, 1000), vec![1, 1]);
}

// ---------------------------------------------------------------------------------
// What a consumer reads back.
// ---------------------------------------------------------------------------------

#[test]
fn overwritten_keys_keep_only_the_latest_record_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, &[kv("a", "1"), kv("b", "1")], 10);
    put(&mut log, &[kv("a", "2")], 20);
    roll(&mut log);
    put(&mut log, &[kv("c", "1"), kv("b", "2")], 30);
    put(&mut log, &[kv("a", "3")], 40);
    roll(&mut log);
    put(&mut log, &[kv("b", "3")], 50); // active: never compacted
    assert!(compact(&mut log, 100));
    assert_eq!(
        kvs_ref(&kvs(&log)),
        vec![(3, "c", "1"), (4, "b", "2"), (5, "a", "3"), (6, "b", "3")]
    );
    // Both sealed segments fit segment.bytes: grouped into one, named by the first.
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.first_dirty_offset(), 6);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 7);
    // Timestamps survive the rewrite.
    let c = read_records(&log)
        .into_iter()
        .find(|r| r.offset == 3)
        .unwrap();
    assert_eq!(c.timestamp_ms, 30);
    // Nothing newly dirty: nothing to plan.
    assert!(log.plan_compaction(200, log.log_end_offset()).is_none());
    // The cleaned log survives a reopen, indexes included.
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), compact_config(), 300).unwrap();
    assert_eq!(kvs(&log).len(), 4);
    assert_eq!(log.first_dirty_offset(), 6);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_read_at_a_compacted_offset_returns_the_next_surviving_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, &[kv("a", "1")], 1); // 0
    put(&mut log, &[kv("b", "1")], 2); // 1
    roll(&mut log);
    put(&mut log, &[kv("a", "2")], 3); // 2
    roll(&mut log);
    put(&mut log, &[kv("b", "2")], 4); // 3
    roll(&mut log);
    put(&mut log, &[kv("z", "1")], 5); // 4, active
    assert!(compact(&mut log, 10));
    for (offset, expected) in [(0, 2), (1, 2), (2, 2), (3, 3)] {
        let info = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        let bytes = info.slice.unwrap().read_to_bytes().unwrap();
        let h = BatchHeader::parse_prefix(&bytes).unwrap();
        assert_eq!(h.base_offset, expected, "read at {offset}");
    }
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|(o, _)| o),
        Some(2)
    );
}

#[test]
fn tombstones_survive_delete_retention_then_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: HOUR_MS,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    put(&mut log, &[kv("a", "1"), kv("b", "1")], 10);
    put(&mut log, &[tombstone("a")], 20);
    roll(&mut log);
    put(&mut log, &[kv("c", "1")], 30);
    let t0 = 1_000;
    assert!(compact(&mut log, t0));
    // The delete is visible to consumers for delete.retention.ms.
    assert_eq!(
        kvs_ref(&kvs(&log)),
        vec![(1, "b", "1"), (2, "a", "∅"), (3, "c", "1")]
    );
    let (tomb, _) = read_batches(&log)
        .into_iter()
        .find(|(h, _)| h.base_offset == 2)
        .unwrap();
    assert_ne!(tomb.attributes & DELETE_HORIZON_BIT, 0);
    assert_eq!(tomb.base_timestamp_ms, t0 + HOUR_MS);
    assert_eq!(read_records(&log)[1].timestamp_ms, 20, "record time kept");
    // Nothing is due before the horizon, even across a restart.
    assert!(log.plan_compaction(t0 + HOUR_MS - 1, 4).is_none());
    drop(log);
    let mut log = Log::open(dir.path(), config, t0).unwrap();
    assert!(log.plan_compaction(t0 + HOUR_MS - 1, 4).is_none());
    let plan = log.plan_compaction(t0 + HOUR_MS, 4).unwrap();
    assert_eq!(plan.reason, CompactionReason::TombstonesDue);
    assert!(log.install_compaction(plan.run().unwrap()).unwrap());
    assert_eq!(kvs_ref(&kvs(&log)), vec![(1, "b", "1"), (3, "c", "1")]);
    assert_eq!(log.tombstone_horizon_ms, NO_HORIZON);
}

#[test]
fn keyless_records_are_refused_on_compacted_topics_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    let keyless = encode(&[kv("a", "1"), (None, Some("x"))], 5);
    let err = log.append_as_leader(keyless.clone(), 1, 5).unwrap_err();
    assert!(
        matches!(&err, AppendError::RecordsRefused(r) if r.first().contains("record 1 has no key")),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 0, "nothing written");
    // Also when compressed: the check looks inside.
    let compressed = encode_with(
        &[(None, Some("x"))],
        5,
        Compression::Zstd,
        (NO_PRODUCER_ID, -1, -1),
    );
    assert!(matches!(
        log.append_as_leader(compressed, 1, 5),
        Err(AppendError::RecordsRefused(_))
    ));
    // Tombstones have keys: accepted.
    log.append_as_leader(encode(&[tombstone("a")], 6), 1, 6)
        .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut plain = Log::open(dir2.path(), LogConfig::default(), 0).unwrap();
    plain.append_as_leader(keyless, 1, 5).unwrap();
}

#[test]
fn every_codec_is_compacted_and_keeps_its_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
        let no_producer = (NO_PRODUCER_ID, -1, -1);
        let first = encode_with(
            &[kv("a", "1"), kv("b", "1"), kv("c", "1")],
            10,
            codec,
            no_producer,
        );
        log.append_as_leader(first, 1, 10).unwrap();
        let second = encode_with(&[kv("b", "2"), tombstone("c")], 20, codec, no_producer);
        log.append_as_leader(second, 1, 20).unwrap();
        roll(&mut log);
        put(&mut log, &[kv("z", "z")], 30);
        assert!(compact(&mut log, 100), "{codec:?}");
        assert_eq!(
            kvs_ref(&kvs(&log)),
            vec![(0, "a", "1"), (3, "b", "2"), (4, "c", "∅"), (5, "z", "z")],
            "{codec:?}"
        );
        let batches = read_batches(&log);
        for (h, _) in &batches[..2] {
            assert_eq!(
                h.attributes & 7,
                codec as i16,
                "{codec:?} batch at {}",
                h.base_offset
            );
        }
        // The rewritten first batch keeps its offset range (lastOffsetDelta).
        assert_eq!(
            (batches[0].0.base_offset, batches[0].0.last_offset()),
            (0, 2)
        );
        assert_eq!(batches[0].0.records_count, 1);
    }
}

#[test]
fn java_style_snappy_framing_round_trips() {
    let data = b"snappy-java frames records in 32 KiB blocks".repeat(2000);
    let framed = records::compress(Compression::Snappy, &data).unwrap();
    assert!(framed.starts_with(&[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0]));
    let back = records::decompress(Compression::Snappy, &framed, 1 << 20, 0).unwrap();
    assert_eq!(back, data);
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let c = records::compress(codec, &data).unwrap();
        assert_eq!(
            records::decompress(codec, &c, 1 << 20, 0).unwrap(),
            data,
            "{codec:?}"
        );
    }
}

#[test]
fn decompression_bombs_are_refused() {
    assert_eq!(records::decompressed_cap(1000), 64 << 20);
    assert_eq!(records::decompressed_cap(2 << 20), 128 << 20);
    let zeros = vec![0u8; 1 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let c = records::compress(codec, &zeros).unwrap();
        assert!(
            matches!(
                records::decompress(codec, &c, 4096, 7),
                Err(records::RecordError::DecompressedTooLarge {
                    base_offset: 7,
                    cap: 4096,
                    ..
                })
            ),
            "{codec:?}"
        );
    }
    // A batch whose one record's value inflates past 64 MiB, as a produce and in the log.
    let mut body = vec![0u8, 0, 0]; // attributes, timestamp delta, offset delta
    put_bytes(&mut body, Some("k"));
    put_varlong(&mut body, 65 << 20);
    body.resize(body.len() + (65 << 20), 0);
    put_varlong(&mut body, 0); // no headers
    let mut section = Vec::new();
    put_varlong(&mut section, body.len() as i64);
    section.extend_from_slice(&body);
    let bomb_section = zstd::encode_all(&section[..], 3).unwrap();
    let mut bomb = encode(&[kv("k", "v")], 5);
    let h = BatchHeader::parse_prefix(&bomb).unwrap();
    bomb.truncate(HEADER_BYTES);
    bomb.extend_from_slice(&bomb_section);
    let batch_length = (bomb.len() - LOG_OVERHEAD_BYTES) as i32;
    bomb[8..12].copy_from_slice(&batch_length.to_be_bytes());
    bomb[21..23].copy_from_slice(&(h.attributes | Compression::Zstd as i16).to_be_bytes());
    let crc = compute_crc(&bomb);
    bomb[17..21].copy_from_slice(&crc.to_be_bytes());

    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    for config in [compact_config(), LogConfig::default()] {
        log.set_config(config);
        let err = log.append_as_leader(bomb.clone(), 1, 5).unwrap_err();
        assert!(
            matches!(&err, AppendError::InvalidRecord(m) if m.contains("64 MiB")),
            "{err}"
        );
    }
    // Stored anyway (as a follower stores what its leader wrote), then compacted: the
    // cleaning fails, leaving the log as it was and no files behind.
    log.append_as_follower(bytes::Bytes::from(bomb)).unwrap();
    roll(&mut log);
    log.set_config(compact_config());
    let plan = log.plan_compaction(10, log.log_end_offset()).unwrap();
    let err = plan.run().unwrap_err();
    assert!(err.to_string().contains("decompress to more than"), "{err}");
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(read_batches(&log).len(), 1);
}

#[test]
fn an_offset_map_spanning_many_segments_and_one_that_fills_up() {
    let build = |dir: &Path| {
        let mut log = Log::open(dir, compact_config(), 0).unwrap();
        // 10 segments; key k<i mod 7> rewritten throughout.
        for i in 0..40 {
            let v = i.to_string();
            put(&mut log, &[kv(&format!("k{}", i % 7), &v)], i);
            if i % 4 == 3 {
                roll(&mut log);
            }
        }
        put(&mut log, &[kv("active", "x")], 100);
        log
    };
    let expected: Vec<(i64, String, String)> = (33..40)
        .map(|i| (i, format!("k{}", i % 7), i.to_string()))
        .chain([(40, "active".to_string(), "x".to_string())])
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path());
    let plan = log.plan_compaction(1000, log.log_end_offset()).unwrap();
    let result = plan.run().unwrap();
    assert_eq!(result.stats.keys_mapped, 7);
    assert_eq!(result.stats.segments_read, 10);
    assert!(log.install_compaction(result).unwrap());
    assert_eq!(kvs(&log), expected);

    // A map that holds two keys at a time: each cleaning stops at a batch boundary,
    // the rest stays dirty, and repeated cleanings reach the same log.
    let dir = tempfile::tempdir().unwrap();
    let mut log = build(dir.path());
    let mut rounds = 0;
    while let Some(mut plan) = log.plan_compaction(1000, log.log_end_offset()) {
        plan.offset_map_max_bytes = 2 * (2 + OFFSET_MAP_ENTRY_OVERHEAD_BYTES);
        let before = log.first_dirty_offset();
        assert!(log.install_compaction(plan.run().unwrap()).unwrap());
        assert!(log.first_dirty_offset() > before, "progress");
        rounds += 1;
        assert!(rounds < 40);
    }
    assert!(rounds > 1);
    assert_eq!(log.first_dirty_offset(), 40);
    assert_eq!(kvs(&log), expected);
}

#[test]
fn never_the_active_segment_nor_above_the_high_watermark_nor_within_min_lag() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 1000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    put(&mut log, &[kv("a", "1")], 10); // 0
    roll(&mut log);
    put(&mut log, &[kv("a", "2")], 20); // 1
    roll(&mut log);
    put(&mut log, &[kv("a", "3")], 2000); // 2
    roll(&mut log);
    put(&mut log, &[kv("a", "4"), kv("a", "5")], 2010); // 3, 4: active

    // Only the active segment is dirty data for key a beyond offset 2: nothing of it
    // may go, and the high watermark at 1 keeps segment 1 out too.
    let plan = log.plan_compaction(5000, 1).unwrap();
    assert!(log.install_compaction(plan.run().unwrap()).unwrap());
    assert_eq!(kvs(&log).len(), 5, "segment 0 alone has nothing to drop");
    assert_eq!(log.first_dirty_offset(), 1);
    // min.compaction.lag.ms: at 2500 segment 2 (ts 2000) is too new, so offset 1 is
    // the latest of a in the cleanable range and offset 0 goes.
    assert!(compact(&mut log, 2500));
    assert_eq!(
        kvs(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // Later everything sealed is cleanable; the active segment keeps both its records.
    assert!(compact(&mut log, 5000));
    assert_eq!(
        kvs(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(log.first_dirty_offset(), 3);
}

#[test]
fn the_dirty_ratio_and_max_compaction_lag_decide_when() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        max_compaction_lag_ms: 10_000,
        ..compact_config()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    for i in 0..4 {
        put(&mut log, &[kv("k", &i.to_string())], 100);
        roll(&mut log);
    }
    put(&mut log, &[kv("k", "9")], 100);
    let plan = log.plan_compaction(200, log.log_end_offset()).unwrap();
    assert_eq!(plan.reason, CompactionReason::DirtyRatio(1.0));
    assert!(log.install_compaction(plan.run().unwrap()).unwrap());
    // One clean segment and one dirty one of the same size: a dirty ratio of 0.5 is
    // not above 0.5...
    roll(&mut log);
    put(&mut log, &[kv("k", "x")], 100);
    assert!(log.plan_compaction(200, log.log_end_offset()).is_none());
    // ...until the dirty record is older than max.compaction.lag.ms.
    let plan = log.plan_compaction(10_101, log.log_end_offset()).unwrap();
    assert_eq!(plan.reason, CompactionReason::MaxCompactionLag);
}

#[test]
fn compact_delete_also_deletes_by_retention_and_compact_alone_does_not() {
    for (policy, expect_deleted) in [
        (CleanupPolicy::COMPACT, 0),
        (
            CleanupPolicy {
                delete: true,
                compact: true,
            },
            2,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleanup_policy: policy,
            retention_ms: 1000,
            ..compact_config()
        };
        let mut log = Log::open(dir.path(), config, 0).unwrap();
        put(&mut log, &[kv("a", "1")], 10);
        roll(&mut log);
        put(&mut log, &[kv("b", "1")], 20);
        roll(&mut log);
        put(&mut log, &[kv("c", "1")], 5000);
        let hw = log.log_end_offset();
        assert_eq!(
            log.housekeeping(5000, hw).unwrap(),
            expect_deleted,
            "{policy:?}"
        );
        assert_eq!(kvs(&log).len(), 3 - expect_deleted, "{policy:?}");
    }
}

#[test]
fn retention_never_deletes_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    put(&mut log, &[kv("a", "1")], 10);
    roll(&mut log);
    put(&mut log, &[kv("b", "1")], 20);
    roll(&mut log);
    assert_eq!(
        log.housekeeping(5000, 1).unwrap(),
        1,
        "only the segment below hw 1"
    );
    assert_eq!(log.log_start_offset(), 1);
    assert_eq!(log.housekeeping(5000, 2).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
}

#[test]
fn an_emptied_last_batch_of_an_idempotent_producer_keeps_its_sequence_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    let idem = |recs: &[Kv<'_>], seq| encode_with(recs, 10, Compression::Lz4, (7, 0, seq));
    log.append_as_leader(idem(&[kv("a", "1"), kv("b", "1")], 0), 1, 10)
        .unwrap(); // 0-1
    log.append_as_leader(idem(&[kv("a", "2")], 2), 1, 10)
        .unwrap(); // 2
    roll(&mut log);
    put(&mut log, &[kv("a", "3"), kv("b", "3")], 20); // 3-4, no producer
    roll(&mut log);
    assert!(compact(&mut log, 100));
    let batches = read_batches(&log);
    // Batch 0-1 of producer 7 emptied and dropped; its last batch (2) kept as a header.
    let kept: Vec<(i64, i64, i32)> = batches
        .iter()
        .map(|(h, _)| (h.base_offset, h.last_offset(), h.records_count))
        .collect();
    assert_eq!(kept, vec![(2, 2, 0), (3, 4, 2)]);
    let (empty, _) = &batches[0];
    assert_eq!(
        (empty.producer_id, empty.producer_epoch, empty.base_sequence),
        (7, 0, 2)
    );
    assert_eq!(empty.attributes & 7, 0, "an empty batch is uncompressed");
    // After a crash, producer state rebuilt from the log still knows sequence 2.
    drop(log);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    let retry = log
        .append_as_leader(idem(&[kv("a", "2")], 2), 1, 10)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 2);
    let next = log
        .append_as_leader(idem(&[kv("c", "1")], 3), 1, 10)
        .unwrap();
    assert_eq!(next.base_offset, 5);
}

#[test]
fn producers_expire_in_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: HOUR_MS,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let batch = encode_with(&[kv("a", "1")], 1000, Compression::None, (9, 0, 0));
    log.append_as_leader(batch, 1, 1000).unwrap();
    let hw = log.log_end_offset();
    log.housekeeping(1000 + HOUR_MS, hw).unwrap();
    assert_eq!(log.producer_state().len(), 1);
    log.housekeeping(1001 + HOUR_MS, hw).unwrap();
    assert!(log.producer_state().is_empty());
    // The producer is new again: any sequence is accepted.
    let later = encode_with(
        &[kv("a", "2")],
        2000 + HOUR_MS,
        Compression::None,
        (9, 0, 50),
    );
    log.append_as_leader(later, 1, 2000 + HOUR_MS).unwrap();
}

#[test]
fn a_cleaning_overtaken_by_truncation_or_retention_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), compact_config(), 0).unwrap();
    put(&mut log, &[kv("a", "1")], 10);
    put(&mut log, &[kv("a", "2")], 10);
    roll(&mut log);
    put(&mut log, &[kv("a", "3")], 10);
    roll(&mut log);
    put(&mut log, &[kv("a", "4")], 10);
    let result = log.plan_compaction(100, 3).unwrap().run().unwrap();
    log.truncate_to(3).unwrap();
    assert!(!log.install_compaction(result).unwrap());
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(kvs(&log).len(), 3);

    let result = log.plan_compaction(100, 3).unwrap().run().unwrap();
    let mut delete = log.config().clone();
    delete.cleanup_policy.delete = true;
    delete.retention_ms = 0;
    log.set_config(delete);
    log.housekeeping(100, 3).unwrap();
    assert!(!log.install_compaction(result).unwrap());
    assert!(leftovers(dir.path()).is_empty());
}

// ---------------------------------------------------------------------------------
// Crashes.
// ---------------------------------------------------------------------------------

/// A log with four sealed segments of rewritten keys, and the cleaning of it run but
/// not installed.
fn log_with_pending_cleaning(dir: &Path) -> (Log, CompactionResult) {
    let config = LogConfig {
        segment_bytes: 200,
        ..compact_config()
    };
    let mut log = Log::open(dir, config, 0).unwrap();
    for i in 0..8 {
        put(&mut log, &[kv(&format!("k{}", i % 2), &i.to_string())], i);
        roll(&mut log);
    }
    put(&mut log, &[kv("k0", "active")], 100);
    let result = log
        .plan_compaction(1000, log.log_end_offset())
        .unwrap()
        .run()
        .unwrap();
    assert!(
        result.groups.len() >= 2,
        "segment.bytes 200 makes several groups"
    );
    assert!(
        result.groups.iter().any(|g| g.len() > 1),
        "and some hold several segments"
    );
    (log, result)
}

const BEFORE: [(i64, &str, &str); 9] = [
    (0, "k0", "0"),
    (1, "k1", "1"),
    (2, "k0", "2"),
    (3, "k1", "3"),
    (4, "k0", "4"),
    (5, "k1", "5"),
    (6, "k0", "6"),
    (7, "k1", "7"),
    (8, "k0", "active"),
];
const AFTER: [(i64, &str, &str); 3] = [(6, "k0", "6"), (7, "k1", "7"), (8, "k0", "active")];

fn reopen(dir: &Path) -> Log {
    Log::open(
        dir,
        LogConfig {
            segment_bytes: 200,
            ..compact_config()
        },
        0,
    )
    .unwrap()
}

#[test]
fn crash_before_the_swap_leaves_the_old_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, result) = log_with_pending_cleaning(dir.path());
    // Crash with .cleaned files on disk, some of them already renamed to .swap.
    let first = result.groups[0][0].base_offset;
    for suffix in [segment::INDEX_SUFFIX, segment::LOG_SUFFIX] {
        std::fs::rename(
            segment_path(dir.path(), first, &suffixed(suffix, CLEANED_SUFFIX)),
            segment_path(dir.path(), first, &suffixed(suffix, SWAP_SUFFIX)),
        )
        .unwrap();
    }
    drop(log);
    assert!(!leftovers(dir.path()).is_empty());
    let log = reopen(dir.path());
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(kvs_ref(&kvs(&log)), BEFORE.to_vec());
}

#[test]
fn crash_after_the_commit_point_completes_the_swap() {
    // Stop after each step of the swap in turn; every reopen must give the compacted
    // log, with no leftovers.
    for stop_after_groups in 0..3 {
        for delete_only in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (log, result) = log_with_pending_cleaning(dir.path());
            for group in &result.groups {
                let base = group[0].base_offset;
                for suffix in [
                    segment::INDEX_SUFFIX,
                    segment::TIME_INDEX_SUFFIX,
                    segment::LOG_SUFFIX,
                ] {
                    std::fs::rename(
                        segment_path(dir.path(), base, &suffixed(suffix, CLEANED_SUFFIX)),
                        segment_path(dir.path(), base, &suffixed(suffix, SWAP_SUFFIX)),
                    )
                    .unwrap();
                }
            }
            let disk = Disk::real();
            disk.write_atomically(
                dir.path(),
                SWAP_MANIFEST,
                FileKind::Checkpoint,
                encode_manifest(&result.groups).as_bytes(),
            )
            .unwrap();
            for (i, group) in result.groups.iter().enumerate() {
                if i > stop_after_groups {
                    break;
                }
                for source in &group[1..] {
                    for suffix in [
                        segment::LOG_SUFFIX,
                        segment::INDEX_SUFFIX,
                        segment::TIME_INDEX_SUFFIX,
                    ] {
                        remove_if_exists(&disk, dir.path(), source.base_offset, suffix).unwrap();
                    }
                }
                if i == stop_after_groups && delete_only {
                    break;
                }
                finish_swap(&disk, dir.path(), group[0].base_offset).unwrap();
            }
            drop(log);
            let log = reopen(dir.path());
            assert!(leftovers(dir.path()).is_empty());
            assert_eq!(
                kvs_ref(&kvs(&log)),
                AFTER.to_vec(),
                "stopped after group {stop_after_groups}, delete only {delete_only}"
            );
        }
    }
}

#[test]
fn a_damaged_swap_manifest_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _result) = log_with_pending_cleaning(dir.path());
    drop(log);
    std::fs::write(dir.path().join(SWAP_MANIFEST), "0\n12 x\n").unwrap();
    let err = Log::open(dir.path(), compact_config(), 0).unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");
}

/// Not a test: prints cleaning throughput. Run with
/// `cargo test --release -p fjord-broker --lib -- --ignored compaction_throughput --nocapture`.
#[test]
#[ignore = "benchmark: prints figures"]
fn compaction_throughput() {
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 64 << 20,
            index_interval_bytes: 4096,
            ..compact_config()
        };
        let mut log = Log::open(dir.path(), config, 0).unwrap();
        let value = "v".repeat(100);
        let keys: Vec<String> = (0..50_000).map(|k| format!("key-{k:08}")).collect();
        let mut n = 0usize;
        for b in 0..4_000 {
            let recs: Vec<Kv<'_>> = (0..100)
                .map(|i| {
                    n += 1;
                    (
                        Some(keys[(b * 100 + i) * 7919 % keys.len()].as_str()),
                        Some(value.as_str()),
                    )
                })
                .collect();
            let batch = encode_with(&recs, b as i64, codec, (NO_PRODUCER_ID, -1, -1));
            log.append_as_leader(batch, 1, b as i64).unwrap();
        }
        roll(&mut log);
        let plan = log.plan_compaction(10_000, log.log_end_offset()).unwrap();
        let started = std::time::Instant::now();
        let result = plan.run().unwrap();
        let run = started.elapsed();
        let s = result.stats.clone();
        assert!(log.install_compaction(result).unwrap());
        let secs = run.as_secs_f64();
        println!(
            "{codec:?}: {} records ({} MiB on disk) -> {} records ({} MiB) in {:.2} s: \
             {:.0} MiB/s read, {:.2} M records/s",
            s.records_read,
            s.bytes_read >> 20,
            s.records_retained,
            s.bytes_written >> 20,
            secs,
            s.bytes_read as f64 / (1 << 20) as f64 / secs,
            s.records_read as f64 / 1e6 / secs,
        );
        assert_eq!(s.records_read as usize, n);
    }
}
