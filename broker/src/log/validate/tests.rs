//! Every refusal of a produced batch with the error Kafka gives for it, and batches of
//! every codec, as producers write them, passing unchanged.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::log::batch::{compute_crc, CRC_AT, LOG_OVERHEAD_BYTES, MAGIC_V2, NO_PRODUCER_ID};
use crate::log::codec;
use crate::log::records::put_varlong;
use crate::log::CleanupPolicy;

const TS: i64 = 1_700_000_000_000;
/// The broker's clock in these tests: the batches' own time.
const NOW: i64 = TS;

/// One record's fields as a producer encodes them; tests bend any of them.
#[derive(Debug, Clone)]
struct Rec {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn rec(i: i64, value: &str) -> Rec {
    Rec {
        timestamp_delta: i,
        offset_delta: i,
        key: None,
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// The record's body (everything after its length varint).
fn body(r: &Rec) -> Vec<u8> {
    let mut b = vec![0u8];
    put_varlong(&mut b, r.timestamp_delta);
    put_varlong(&mut b, r.offset_delta);
    put_bytes(&mut b, r.key.as_deref());
    put_bytes(&mut b, r.value.as_deref());
    put_varlong(&mut b, r.headers.len() as i64);
    for (k, v) in &r.headers {
        put_bytes(&mut b, Some(k));
        put_bytes(&mut b, v.as_deref());
    }
    b
}

fn with_length(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varlong(&mut out, body.len() as i64);
    out.extend_from_slice(body);
    out
}

fn section(records: &[Rec]) -> Vec<u8> {
    records.iter().flat_map(|r| with_length(&body(r))).collect()
}

/// How a producer frames a codec's bytes.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Java's: gzip, snappy-java's xerial framing, lz4 64 KiB independent blocks, zstd.
    Java,
    /// snappy without framing (librdkafka); the other codecs as Java.
    RawSnappy,
}

fn compress(codec: Compression, framing: Framing, section: &[u8]) -> Vec<u8> {
    match (codec, framing) {
        (Compression::Snappy, Framing::RawSnappy) => {
            snap::raw::Encoder::new().compress_vec(section).unwrap()
        }
        _ => codec::compress(codec, section).unwrap(),
    }
}

/// A batch as a producer writes it around an (uncompressed) `section` that claims
/// `count` records, compressed with `codec`.
fn batch_of(section: &[u8], count: i32, codec: Compression, framing: Framing) -> Vec<u8> {
    let data = compress(codec, framing, section);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((HEADER_BYTES - LOG_OVERHEAD_BYTES + data.len()) as i32);
    b.put_i32(-1);
    b.put_i8(MAGIC_V2);
    b.put_u32(0);
    b.put_i16(codec as i16);
    b.put_i32(count - 1);
    b.put_i64(TS);
    b.put_i64(TS + i64::from(count - 1));
    b.put_i64(NO_PRODUCER_ID);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(&data);
    recrc(&mut b);
    b.to_vec()
}

fn batch(records: &[Rec], codec: Compression) -> Vec<u8> {
    batch_of(
        &section(records),
        records.len() as i32,
        codec,
        Framing::Java,
    )
}

fn recrc(b: &mut [u8]) {
    let crc = compute_crc(b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn delete_topic() -> LogConfig {
    LogConfig::default()
}

fn compacted_topic() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    }
}

#[track_caller]
fn invalid(result: Result<ValidBatch, AppendError>, says: &str) {
    match result {
        Err(AppendError::InvalidRecord(m)) if m.contains(says) => {}
        other => panic!("expected INVALID_RECORD saying {says:?}, got {other:?}"),
    }
}

/// Refused record by record (KIP-467), at exactly `indexes`, the first saying `says`.
#[track_caller]
fn refused(result: Result<ValidBatch, AppendError>, indexes: &[i32], timestamp: bool, says: &str) {
    match result {
        Err(AppendError::RecordsRefused(r)) => {
            let got: Vec<i32> = r.records.iter().map(|(i, _)| *i).collect();
            assert_eq!(got, indexes);
            assert_eq!(r.timestamp, timestamp);
            assert!(
                r.first().contains(says),
                "{:?} does not say {says:?}",
                r.first()
            );
        }
        other => panic!("expected records {indexes:?} refused, got {other:?}"),
    }
}

#[track_caller]
fn corrupt(result: Result<ValidBatch, AppendError>, says: &str) {
    match result {
        Err(AppendError::Corrupt(m)) if m.contains(says) => {}
        other => panic!("expected CORRUPT_MESSAGE saying {says:?}, got {other:?}"),
    }
}

/// Every codec and framing a producer may use.
fn each_codec(mut f: impl FnMut(Compression, Framing)) {
    for codec in CODECS {
        f(codec, Framing::Java);
    }
    f(Compression::Snappy, Framing::RawSnappy);
}

#[test]
fn valid_batches_of_every_codec_pass_with_their_largest_timestamp() {
    let mut records: Vec<Rec> = (0..50).map(|i| rec(i, "value")).collect();
    records[3].key = Some(b"key".to_vec());
    records[4].value = None;
    records[5].headers = vec![
        (b"h1".to_vec(), Some(b"v".to_vec())),
        (b"h2".to_vec(), None),
    ];
    records[6].key = Some(Vec::new());
    records[7].value = Some(vec![b'x'; 100_000]);
    // Timestamps need not increase; the largest is record 8's.
    records[8].timestamp_delta = 1_000;
    records[9].timestamp_delta = -5;
    each_codec(|codec, framing| {
        let b = batch_of(&section(&records), 50, codec, framing);
        let valid = validate_produce(&b, &delete_topic(), NOW).unwrap();
        assert_eq!(valid.header.records_count, 50, "{codec:?}");
        assert_eq!(valid.max_timestamp_ms, TS + 1_000, "{codec:?} {framing:?}");
        // The header says TS + 49: Kafka would overwrite it, and so does the log.
        assert!(valid.needs_restamp(TimestampType::CreateTime));
        assert!(!valid.needs_restamp(TimestampType::LogAppendTime));
    });
    let exact = batch(&[rec(0, "a"), rec(1, "b")], Compression::Lz4);
    let valid = validate_produce(&exact, &delete_topic(), NOW).unwrap();
    assert_eq!(valid.max_timestamp_ms, TS + 1);
    assert!(!valid.needs_restamp(TimestampType::CreateTime));
}

#[test]
fn the_poison_batches_of_issue_13_are_refused() {
    // Flagged gzip, but the payload is not gzip: CORRUPT_MESSAGE.
    let mut gzip_flag = batch(&[rec(0, "not gzip")], Compression::None);
    gzip_flag[21..23].copy_from_slice(&(Compression::Gzip as i16).to_be_bytes());
    recrc(&mut gzip_flag);
    corrupt(validate_produce(&gzip_flag, &delete_topic(), NOW), "gzip");
    // Uncompressed, a valid CRC, a record claiming a value of 2^31-1 bytes.
    let mut section = vec![0u8, 0, 0];
    put_varlong(&mut section, -1);
    put_varlong(&mut section, i64::from(i32::MAX));
    section.extend_from_slice(b"short");
    put_varlong(&mut section, 0);
    let poison = batch_of(&with_length(&section), 1, Compression::None, Framing::Java);
    invalid(
        validate_produce(&poison, &delete_topic(), NOW),
        "value length 2147483647 overruns the record",
    );
}

#[test]
fn a_payload_that_is_not_its_codec_is_corrupt_for_every_codec() {
    let good = section(&[rec(0, "a"), rec(1, "b")]);
    each_codec(|codec, framing| {
        if codec == Compression::None {
            return;
        }
        let data = compress(codec, framing, &good);
        // Flip bytes in the middle of the compressed stream.
        let mut flipped = data.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 3] {
            *b ^= 0x5a;
        }
        // Cut short.
        let cut = &data[..data.len() - 3];
        for (what, payload) in [("flipped", &flipped[..]), ("cut short", cut)] {
            let mut b = batch(&[], Compression::None);
            b.truncate(HEADER_BYTES);
            b.extend_from_slice(payload);
            let len = (b.len() - LOG_OVERHEAD_BYTES) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b[21..23].copy_from_slice(&(codec as i16).to_be_bytes());
            b[23..27].copy_from_slice(&1i32.to_be_bytes());
            b[57..61].copy_from_slice(&2i32.to_be_bytes());
            recrc(&mut b);
            match validate_produce(&b, &delete_topic(), NOW) {
                // A flip inside a literal run can leave a stream that decodes; its records
                // then do not parse.
                Err(AppendError::Corrupt(m)) => assert!(m.contains(codec.name()), "{m}"),
                Err(AppendError::InvalidRecord(_)) if what == "flipped" => {}
                other => panic!("{codec:?} {framing:?} {what}: {other:?}"),
            }
        }
    });
}

#[test]
fn lengths_that_do_not_fit_are_invalid_records() {
    let one = |body: Vec<u8>| batch_of(&with_length(&body), 1, Compression::None, Framing::Java);
    let good = body(&rec(0, "value"));
    // The record's length claims more bytes than the section holds.
    let mut longer = vec![];
    put_varlong(&mut longer, good.len() as i64 + 10);
    longer.extend_from_slice(&good);
    invalid(
        validate_produce(
            &batch_of(&longer, 1, Compression::None, Framing::Java),
            &delete_topic(),
            NOW,
        ),
        "record length 21 does not match the 11 bytes of its fields",
    );
    // ... or fewer than its fields take.
    let mut shorter = vec![];
    put_varlong(&mut shorter, good.len() as i64 - 2);
    shorter.extend_from_slice(&good);
    invalid(
        validate_produce(
            &batch_of(&shorter, 1, Compression::None, Framing::Java),
            &delete_topic(),
            NOW,
        ),
        "overruns the record",
    );
    // A record with bytes left over after its last header.
    let mut padded = good.clone();
    padded.push(0);
    invalid(
        validate_produce(&one(padded), &delete_topic(), NOW),
        "record length 12 does not match the 11 bytes of its fields",
    );
    // Negative and too-small record lengths.
    for len in [-1i64, 0, 5] {
        let mut s = vec![];
        put_varlong(&mut s, len);
        s.extend_from_slice(&good);
        invalid(
            validate_produce(
                &batch_of(&s, 1, Compression::None, Framing::Java),
                &delete_topic(),
                NOW,
            ),
            &format!("record length {len} is below"),
        );
    }
    // A key length below -1 (librdkafka fails on it) and one past the record.
    for (key_len, says) in [
        (-2i64, "key length -2 is negative"),
        (50, "key length 50 overruns"),
    ] {
        let mut b = vec![0u8, 0, 0];
        put_varlong(&mut b, key_len);
        put_varlong(&mut b, -1);
        put_varlong(&mut b, 0);
        invalid(validate_produce(&one(b), &delete_topic(), NOW), says);
    }
}

#[test]
fn varints_longer_than_their_width_are_invalid_records() {
    let with_offset_delta = |delta: &[u8]| {
        let mut b = vec![0u8, 0];
        b.extend_from_slice(delta);
        put_varlong(&mut b, -1);
        put_varlong(&mut b, -1);
        put_varlong(&mut b, 0);
        batch_of(&with_length(&b), 1, Compression::None, Framing::Java)
    };
    // 0 written in five bytes is still a 32-bit varint.
    validate_produce(
        &with_offset_delta(&[0x80, 0x80, 0x80, 0x80, 0x00]),
        &delete_topic(),
        NOW,
    )
    .unwrap();
    // Six bytes, and five carrying bits past 32.
    for bad in [
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00][..],
        &[0x80, 0x80, 0x80, 0x80, 0x10],
    ] {
        invalid(
            validate_produce(&with_offset_delta(bad), &delete_topic(), NOW),
            "varint is longer than 32 bits",
        );
    }
    // The timestamp delta is a varlong: ten bytes at most, the tenth 0 or 1.
    let with_timestamp_delta = |delta: &[u8]| {
        let mut b = vec![0u8];
        b.extend_from_slice(delta);
        b.extend_from_slice(&[0, 1, 1, 0]);
        batch_of(&with_length(&b), 1, Compression::None, Framing::Java)
    };
    let mut max = vec![0xffu8; 9];
    max.push(0x01);
    // (The timestamp this makes is far outside any CreateTime window.)
    let any_time = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..delete_topic()
    };
    validate_produce(&with_timestamp_delta(&max), &any_time, NOW).unwrap();
    let mut eleven = vec![0x80u8; 10];
    eleven.push(0);
    invalid(
        validate_produce(&with_timestamp_delta(&eleven), &delete_topic(), NOW),
        "varlong is longer than 64 bits",
    );
    // A record that ends inside a varint.
    // (Length 40, attributes, deltas 0, null key and value, a header count cut short.)
    let cut = batch_of(
        &[0x50, 0, 0, 0, 0x01, 0x01, 0x80, 0x80],
        1,
        Compression::None,
        Framing::Java,
    );
    invalid(
        validate_produce(&cut, &delete_topic(), NOW),
        "records end inside it",
    );
}

#[test]
fn the_record_count_must_match_the_records() {
    let records = [
        rec(0, "aaaaaaaaaa"),
        rec(1, "bbbbbbbbbb"),
        rec(2, "cccccccccc"),
    ];
    each_codec(|codec, framing| {
        // The header claims three; two are there.
        let fewer = batch_of(&section(&records[..2]), 3, codec, framing);
        invalid(
            validate_produce(&fewer, &delete_topic(), NOW),
            "record 2 of 3: the records end inside it",
        );
        // The header claims two; three are there.
        let more = batch_of(&section(&records), 2, codec, framing);
        invalid(
            validate_produce(&more, &delete_topic(), NOW),
            "bytes follow the last of the 2 records",
        );
    });
    // A count the section cannot hold is refused before any record is read.
    let huge = batch_of(
        &section(&records),
        1_000_000,
        Compression::None,
        Framing::Java,
    );
    invalid(
        validate_produce(&huge, &delete_topic(), NOW),
        "1000000 records cannot fit in",
    );
}

#[test]
fn offset_deltas_must_be_0_1_2() {
    for deltas in [[0, 0], [0, 2], [1, 2], [-1, 0]] {
        let records = [
            Rec {
                offset_delta: deltas[0],
                ..rec(0, "a")
            },
            Rec {
                offset_delta: deltas[1],
                ..rec(1, "b")
            },
        ];
        each_codec(|codec, _| {
            let err = validate_produce(&batch(&records, codec), &delete_topic(), NOW);
            invalid(err, "a produced batch numbers its records 0, 1, 2");
        });
    }
}

/// A header as written, key and value each possibly null.
type RawHeader<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

#[test]
fn header_counts_must_fit_the_record() {
    let with_headers = |count: i64, headers: &[RawHeader]| {
        let mut b = body(&Rec {
            headers: vec![],
            ..rec(0, "v")
        });
        b.pop(); // the header count written by body()
        put_varlong(&mut b, count);
        for (k, v) in headers {
            put_bytes(&mut b, *k);
            put_bytes(&mut b, *v);
        }
        batch_of(&with_length(&b), 1, Compression::None, Framing::Java)
    };
    let two: &[RawHeader] = &[(Some(b"a"), Some(b"1")), (Some(b"b"), None)];
    validate_produce(&with_headers(2, two), &delete_topic(), NOW).unwrap();
    invalid(
        validate_produce(&with_headers(1_000_000_000, two), &delete_topic(), NOW),
        "header count 1000000000 is more than the record's",
    );
    invalid(
        validate_produce(&with_headers(3, two), &delete_topic(), NOW),
        "header count 3 is more than",
    );
    invalid(
        validate_produce(&with_headers(1, two), &delete_topic(), NOW),
        "does not match",
    );
    invalid(
        validate_produce(&with_headers(-1, &[]), &delete_topic(), NOW),
        "header count -1 is negative",
    );
    invalid(
        validate_produce(
            &with_headers(1, &[(None, Some(b"v"))]),
            &delete_topic(),
            NOW,
        ),
        "header 0 has a null key",
    );
}

#[test]
fn compacted_topics_take_keyed_records_only() {
    let keyed = |i: i64| Rec {
        key: Some(format!("k{i}").into_bytes()),
        ..rec(i, "v")
    };
    each_codec(|codec, _| {
        let ok = batch(&[keyed(0), keyed(1)], codec);
        validate_produce(&ok, &compacted_topic(), NOW).unwrap();
        let unkeyed = batch(&[keyed(0), rec(1, "v"), keyed(2), rec(3, "v")], codec);
        refused(
            validate_produce(&unkeyed, &compacted_topic(), NOW),
            &[1, 3],
            false,
            "record 1 has no key",
        );
        // The same batch is fine where nothing is compacted.
        validate_produce(&unkeyed, &delete_topic(), NOW).unwrap();
    });
}

/// One record whose value is `value_bytes` zeros.
fn zeros_record(value_bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8, 0, 0];
    put_varlong(&mut b, -1);
    put_varlong(&mut b, value_bytes as i64);
    b.resize(b.len() + value_bytes, 0);
    put_varlong(&mut b, 0);
    with_length(&b)
}

#[test]
fn a_decompression_bomb_is_refused_at_the_cap() {
    // Records of exactly the 64 MiB floor pass; one byte more does not. zstd and gzip
    // reach far past 64:1 on zeros, so the floor is the cap here.
    let floor = decompressed_cap(0);
    let overhead = zeros_record(floor).len() - floor;
    for codec in [Compression::Zstd, Compression::Gzip] {
        let at_cap = zeros_record(floor - overhead);
        assert_eq!(at_cap.len(), floor);
        let b = batch_of(&at_cap, 1, codec, Framing::Java);
        assert!(
            decompressed_cap(b.len()) == floor,
            "{codec:?} compresses less than 64:1"
        );
        validate_produce(&b, &delete_topic(), NOW).unwrap();
        let past = batch_of(&zeros_record(floor - overhead + 1), 1, codec, Framing::Java);
        invalid(
            validate_produce(&past, &delete_topic(), NOW),
            "records decompress to more than 67108864 bytes",
        );
    }
}

#[test]
fn validation_is_the_only_gate_to_the_log() {
    let mut log_config = compacted_topic();
    log_config.max_message_bytes = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut log = crate::log::Log::open(dir.path(), log_config, 0).unwrap();
    let unkeyed = batch(&[rec(0, "v")], Compression::Zstd);
    assert!(matches!(
        log.append_as_leader(unkeyed, 0, TS),
        Err(AppendError::RecordsRefused(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

/// Kafka overwrites a CreateTime maxTimestamp that is not the largest record timestamp
/// (and a producer's LogAppendTime type); the log does too, leaving the records as sent.
#[test]
fn a_wrong_max_timestamp_is_restamped_and_the_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = crate::log::Log::open(dir.path(), delete_topic(), 0).unwrap();
    let mut records = vec![rec(0, "a"), rec(1, "b")];
    records[0].timestamp_delta = 500;
    let sent = batch(&records, Compression::Lz4);
    let info = log.append_as_leader(sent.clone(), 0, TS).unwrap();
    let mut lat = batch(&[rec(0, "c")], Compression::None);
    lat[22] |= TIMESTAMP_TYPE_BIT as u8;
    recrc(&mut lat);
    log.append_as_leader(lat.clone(), 0, TS).unwrap();
    let stored = log
        .read(info.base_offset, 1 << 20, log.log_end_offset(), true)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    let first = BatchHeader::parse_prefix(&stored).unwrap();
    assert_eq!(first.max_timestamp_ms, TS + 500);
    assert_eq!(
        first.crc,
        compute_crc(&stored[..first.size_bytes() as usize])
    );
    // The records section is byte for byte the producer's.
    assert_eq!(
        &stored[HEADER_BYTES..first.size_bytes() as usize],
        &sent[HEADER_BYTES..]
    );
    let second = BatchHeader::parse_prefix(&stored[first.size_bytes() as usize..]).unwrap();
    assert_eq!(second.attributes & TIMESTAMP_TYPE_BIT, 0);
    assert_eq!(second.max_timestamp_ms, TS);
}

/// Each poison batch kind, through the log's one produce entry point: refused, nothing
/// stored. (Before produce validated records, every one of these was stored.)
#[test]
fn refused_batches_never_reach_the_log() {
    let not_gzip = {
        let mut b = batch(&[rec(0, "not gzip")], Compression::None);
        b[22] |= Compression::Gzip as u8;
        recrc(&mut b);
        b
    };
    let huge_value = {
        let mut s = vec![0u8, 0, 0];
        put_varlong(&mut s, -1);
        put_varlong(&mut s, i64::from(i32::MAX));
        s.extend_from_slice(b"short");
        put_varlong(&mut s, 0);
        batch_of(&with_length(&s), 1, Compression::None, Framing::Java)
    };
    let long_varint = {
        let mut s = vec![0u8, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        put_varlong(&mut s, -1);
        put_varlong(&mut s, -1);
        put_varlong(&mut s, 0);
        batch_of(&with_length(&s), 1, Compression::None, Framing::Java)
    };
    let three = [
        rec(0, "aaaaaaaaaa"),
        rec(1, "bbbbbbbbbb"),
        rec(2, "cccccccccc"),
    ];
    let fewer = batch_of(&section(&three[..2]), 3, Compression::Snappy, Framing::Java);
    let repeated_delta = batch(
        &[
            rec(0, "a"),
            Rec {
                offset_delta: 0,
                ..rec(1, "b")
            },
        ],
        Compression::Lz4,
    );
    let header_lie = {
        let mut b = body(&rec(0, "v"));
        b.pop();
        put_varlong(&mut b, 1_000_000);
        batch_of(&with_length(&b), 1, Compression::None, Framing::Java)
    };
    let negative_key = {
        let mut s = vec![0u8, 0, 0];
        put_varlong(&mut s, -2);
        put_varlong(&mut s, -1);
        put_varlong(&mut s, 0);
        batch_of(&with_length(&s), 1, Compression::Zstd, Framing::Java)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = crate::log::Log::open(dir.path(), delete_topic(), 0).unwrap();
    for (what, b) in [
        ("gzip flag, payload not gzip", not_gzip),
        ("value of 2^31-1 bytes", huge_value),
        ("6-byte varint", long_varint),
        ("count above the records", fewer),
        ("offset deltas 0, 0", repeated_delta),
        ("a million headers", header_lie),
        ("key length -2", negative_key),
    ] {
        let result = log.append_as_leader(b, 0, TS);
        assert!(
            matches!(
                result,
                Err(AppendError::Corrupt(_) | AppendError::InvalidRecord(_))
            ),
            "{what}: {result:?}"
        );
        assert_eq!(log.log_end_offset(), 0, "{what} was stored");
    }
}

/// One batch of three keyed records with a header each, as librdkafka 2.12 and Kafka's
/// Java producer 4.4 (idempotent, its default) sent it for each codec; written by
/// `write_client_batch_fixtures` in e2e/tests/poison_batches.rs.
const CLIENT_BATCHES: [(&str, &[u8]); 10] = [
    (
        "librdkafka none",
        include_bytes!("fixtures/librdkafka-none.bin"),
    ),
    (
        "librdkafka gzip",
        include_bytes!("fixtures/librdkafka-gzip.bin"),
    ),
    (
        "librdkafka snappy",
        include_bytes!("fixtures/librdkafka-snappy.bin"),
    ),
    (
        "librdkafka lz4",
        include_bytes!("fixtures/librdkafka-lz4.bin"),
    ),
    (
        "librdkafka zstd",
        include_bytes!("fixtures/librdkafka-zstd.bin"),
    ),
    ("java none", include_bytes!("fixtures/java-none.bin")),
    ("java gzip", include_bytes!("fixtures/java-gzip.bin")),
    ("java snappy", include_bytes!("fixtures/java-snappy.bin")),
    ("java lz4", include_bytes!("fixtures/java-lz4.bin")),
    ("java zstd", include_bytes!("fixtures/java-zstd.bin")),
];

#[test]
fn batches_as_librdkafka_and_java_send_them_pass_and_are_stored_unchanged() {
    for (name, sent) in CLIENT_BATCHES {
        // Checked at the time the client stamped them.
        let sent_at = BatchHeader::parse_prefix(sent).unwrap().max_timestamp_ms;
        let valid = validate_produce(sent, &compacted_topic(), sent_at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(valid.header.records_count, 3, "{name}");
        assert!(!valid.needs_restamp(TimestampType::CreateTime), "{name}");
        let section = crate::log::records::records_section(sent, &valid.header).unwrap();
        let records = crate::log::records::parse_records(&valid.header, &section).unwrap();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.key, Some(format!("k{i}").as_bytes()), "{name}");
            assert_eq!(
                r.value,
                Some(format!("value {i} ").repeat(20).as_bytes()),
                "{name}"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let mut log = crate::log::Log::open(dir.path(), compacted_topic(), 0).unwrap();
        log.append_as_leader(sent.to_vec(), 7, sent_at).unwrap();
        let stored = log
            .read(0, 1 << 20, log.log_end_offset(), true)
            .unwrap()
            .slice
            .unwrap()
            .read_to_bytes()
            .unwrap();
        // Only the two fields outside the CRC the log assigns differ.
        assert_eq!(&stored[..8], &0i64.to_be_bytes(), "{name}");
        assert_eq!(&stored[12..16], &7i32.to_be_bytes(), "{name}");
        assert_eq!(&stored[8..12], &sent[8..12], "{name}");
        assert_eq!(&stored[16..], &sent[16..], "{name}");
    }
}

#[test]
fn create_time_outside_the_topics_window_is_refused_record_by_record() {
    let at = |i: i64, delta: i64| Rec {
        timestamp_delta: delta,
        ..rec(i, "v")
    };
    let hour = 3_600_000;
    let config = LogConfig {
        timestamp_before_max_ms: hour,
        timestamp_after_max_ms: hour,
        ..delete_topic()
    };
    each_codec(|codec, _| {
        // Records 1 and 3 are more than an hour ahead of and behind the broker's clock;
        // the window's edges are inside it.
        let b = batch(
            &[
                at(0, hour),
                at(1, hour + 1),
                at(2, -hour),
                at(3, -hour - 1),
                at(4, 0),
            ],
            codec,
        );
        refused(
            validate_produce(&b, &config, NOW),
            &[1, 3],
            true,
            "record 1 has timestamp",
        );
        // LogAppendTime topics stamp their own time: nothing to check.
        let append_time = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config.clone()
        };
        validate_produce(&b, &append_time, NOW).unwrap();
    });
    // Kafka's default: at most an hour ahead, any age.
    let far_past = batch(&[at(0, -TS)], Compression::None);
    validate_produce(&far_past, &delete_topic(), NOW).unwrap();
    let future = batch(&[at(0, hour + 1)], Compression::None);
    refused(
        validate_produce(&future, &delete_topic(), NOW),
        &[0],
        true,
        "message.timestamp.after.max.ms",
    );
}

#[test]
fn a_record_without_a_timestamp_is_not_checked() {
    // timestamp -1: base -1 with delta 0, as old producers send.
    let mut b = batch(&[rec(0, "v")], Compression::None);
    b[27..35].copy_from_slice(&(-1i64).to_be_bytes());
    b[35..43].copy_from_slice(&(-1i64).to_be_bytes());
    recrc(&mut b);
    validate_produce(&b, &delete_topic(), NOW).unwrap();
}

#[test]
fn refusals_carry_messages_for_the_first_hundred_only() {
    let records: Vec<Rec> = (0..300).map(|i| rec(i, "v")).collect();
    let b = batch(&records, Compression::None);
    let Err(AppendError::RecordsRefused(r)) = validate_produce(&b, &compacted_topic(), NOW) else {
        panic!("every record is keyless on a compacted topic");
    };
    assert_eq!(r.records.len(), 300);
    let with_message = r.records.iter().filter(|(_, m)| m.is_some()).count();
    assert_eq!(with_message, RecordRefusals::MAX_MESSAGES);
    assert_eq!(r.records[299], (299, None));
}
