//! A produced partition's records as the log receives them: first the input as sent
//! (header, length and CRC checks on arbitrary bytes), then the input wrapped in a
//! batch header that passes those checks, so that the record parser and every codec's
//! decoder see it. Nothing may panic or abort, and memory stays within the bounds the
//! validator promises (run with -malloc_limit_mb, see tools/fuzz.sh).
//!
//! Wrapped input: byte 0 picks the codec (low 3 bits, 5-7 wrap to 0-2) and, with its
//! high bit, a compacted topic; bytes 1-2 the record count (1-65536); the rest is the
//! records section.

#![no_main]

use fjord_broker::log::batch::{compute_crc, CRC_AT, HEADER_BYTES, LOG_OVERHEAD_BYTES};
use fjord_broker::log::validate::validate_produce;
use fjord_broker::log::{CleanupPolicy, LogConfig};
use libfuzzer_sys::fuzz_target;

fn wrap(codec: u8, count: i32, section: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + section.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_BYTES - LOG_OVERHEAD_BYTES + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&i16::from(codec).to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let mut config = LogConfig {
        max_message_bytes: u32::MAX,
        // Any timestamp: the timestamp window is a comparison, the walk is what is fuzzed.
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    };
    let _ = validate_produce(data, &config, 0);
    let [mode, c0, c1, section @ ..] = data else {
        return;
    };
    if mode & 0x80 != 0 {
        config.cleanup_policy = CleanupPolicy::COMPACT;
    }
    let codec = (mode & 0x7) % 5;
    let count = i32::from(u16::from_be_bytes([*c0, *c1])) + 1;
    if let Ok(valid) = validate_produce(&wrap(codec, count, section), &config, 0) {
        assert_eq!(valid.header.records_count, count);
    }
});
