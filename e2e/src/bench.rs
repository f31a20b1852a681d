//! The I/O-free parts of the benchmark client `fjord-bench` (e2e/src/bin/fjord-bench.rs):
//! the fixed-rate schedule, the send time carried in a record, and the figures it prints.
//!
//! Units: MB is 10^6 bytes (the machine limits in e2e/bench are in the same unit);
//! latencies are recorded in microseconds and printed in milliseconds.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Largest record value the client sends: librdkafka's default `message.max.bytes` is
/// 1,000,000 and a record must also fit the broker's `max.message.bytes` (1,048,588).
pub const MAX_RECORD_BYTES: usize = 900_000;

/// Bytes at the start of a record value that carry its send time (end-to-end runs).
pub const STAMP_BYTES: usize = 8;

/// Highest latency the histograms track: one hour, in microseconds. A sample above it is
/// clamped to it (and still counted), so a stalled broker shows as a huge p99.9, not as a
/// dropped sample.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Writes `nanos` (the send time, nanoseconds since the process's reference instant) into
/// the first [`STAMP_BYTES`] of `value`, little-endian.
pub fn stamp(value: &mut [u8], nanos: u64) {
    value[..STAMP_BYTES].copy_from_slice(&nanos.to_le_bytes());
}

/// The send time [`stamp`] wrote, or `None` when the value is too short to carry one.
pub fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// When record `i` of a run at `rate` records per second is due, from the start of the
/// run. The schedule is absolute: a sender that fell behind sends at once until it has
/// caught up, so the average rate is the one asked for.
pub fn due(i: u64, rate: u64) -> Duration {
    debug_assert!(rate > 0);
    // Whole seconds and the rest apart: i * 10^9 would overflow u64 past 1.8e10 records.
    let nanos = (i % rate) * 1_000_000_000 / rate;
    Duration::new(i / rate, nanos as u32)
}

/// A latency histogram in microseconds, from 1 us to [`LATENCY_MAX_US`], 3 significant
/// digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static histogram bounds are valid")
}

/// Records one latency, clamped to the histogram's range.
pub fn record_latency(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, LATENCY_MAX_US);
    h.record(us)
        .expect("value clamped to the histogram's range");
}

/// Percentiles of a latency histogram in milliseconds, as printed: count, min, p50, p99,
/// p99.9, max and mean. An empty histogram gives nulls, never zeros.
pub fn latency_summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return json!({"count": 0, "min_ms": null, "p50_ms": null, "p99_ms": null,
                      "p999_ms": null, "max_ms": null, "mean_ms": null});
    }
    json!({
        "count": h.len(),
        "min_ms": ms(h.min()),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean() / 1000.0,
    })
}

/// Records per second and MB (10^6 bytes) per second of `records` records holding `bytes`
/// value bytes in `elapsed`.
pub fn throughput(records: u64, bytes: u64, elapsed: Duration) -> Value {
    let secs = elapsed.as_secs_f64();
    let (msgs, mb) = if secs > 0.0 {
        (records as f64 / secs, bytes as f64 / secs / 1e6)
    } else {
        (0.0, 0.0)
    };
    json!({"records": records, "bytes": bytes, "elapsed_s": secs, "msgs_per_s": msgs,
           "MBps": mb})
}

/// The `acks` value librdkafka takes, from `0`, `1`, `all` or `-1`.
pub fn parse_acks(s: &str) -> Result<String> {
    match s {
        "0" | "1" | "all" => Ok(s.to_string()),
        "-1" => Ok("all".to_string()),
        _ => bail!("acks must be 0, 1, all or -1, got {s:?}"),
    }
}

/// A librdkafka property given as `KEY=VALUE` (`-X` on the command line).
pub fn parse_property(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("property {s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        bail!("property {s:?} has an empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Checks a record size against what every run needs: room for the send time, and at
/// most [`MAX_RECORD_BYTES`].
pub fn check_record_size(size: usize) -> Result<()> {
    if !(STAMP_BYTES..=MAX_RECORD_BYTES).contains(&size) {
        bail!("record size {size} is outside {STAMP_BYTES}..={MAX_RECORD_BYTES} bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_short_values_carry_none() {
        let mut v = vec![0xaa; 100];
        stamp(&mut v, 0x0102_0304_0506_0708);
        assert_eq!(read_stamp(&v), Some(0x0102_0304_0506_0708));
        assert_eq!(v[8], 0xaa, "bytes after the stamp are left alone");
        assert_eq!(read_stamp(&v[..7]), None);
    }

    #[test]
    fn schedule_is_absolute_and_exact_at_whole_seconds() {
        assert_eq!(due(0, 5000), Duration::ZERO);
        assert_eq!(due(1, 5000), Duration::from_micros(200));
        assert_eq!(due(5000, 5000), Duration::from_secs(1));
        assert_eq!(due(7, 3), Duration::from_nanos(2_333_333_333));
        // No overflow for counts far beyond any run.
        assert_eq!(due(u64::MAX, 1), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn latency_summary_reports_percentiles_in_ms() {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            record_latency(&mut h, Duration::from_micros(us * 10));
        }
        let s = latency_summary(&h);
        assert_eq!(s["count"], 1000);
        let p50 = s["p50_ms"].as_f64().unwrap();
        let p99 = s["p99_ms"].as_f64().unwrap();
        let p999 = s["p999_ms"].as_f64().unwrap();
        assert!((p50 - 5.0).abs() < 0.01, "p50 {p50}");
        assert!((p99 - 9.9).abs() < 0.01, "p99 {p99}");
        assert!((p999 - 9.99).abs() < 0.01, "p99.9 {p999}");
        assert!((s["max_ms"].as_f64().unwrap() - 10.0).abs() < 0.01);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_dropped() {
        let mut h = latency_histogram();
        record_latency(&mut h, Duration::ZERO);
        record_latency(&mut h, Duration::from_secs(10 * 3600));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= LATENCY_MAX_US);
    }

    #[test]
    fn empty_summary_is_null_not_zero() {
        let s = latency_summary(&latency_histogram());
        assert_eq!(s["count"], 0);
        assert!(s["p99_ms"].is_null());
    }

    #[test]
    fn throughput_is_in_decimal_megabytes() {
        let t = throughput(1000, 2_000_000, Duration::from_secs(2));
        assert_eq!(t["msgs_per_s"].as_f64(), Some(500.0));
        assert_eq!(t["MBps"].as_f64(), Some(1.0));
        assert_eq!(throughput(0, 0, Duration::ZERO)["MBps"].as_f64(), Some(0.0));
    }

    #[test]
    fn acks_properties_and_sizes_are_checked() {
        assert_eq!(parse_acks("-1").unwrap(), "all");
        assert_eq!(parse_acks("1").unwrap(), "1");
        assert!(parse_acks("2").is_err());
        assert_eq!(
            parse_property("linger.ms=5").unwrap(),
            ("linger.ms".to_string(), "5".to_string())
        );
        assert_eq!(parse_property("a=b=c").unwrap().1, "b=c");
        assert!(parse_property("linger.ms").is_err());
        assert!(parse_property("=5").is_err());
        assert!(check_record_size(7).is_err());
        assert!(check_record_size(1024).is_ok());
        assert!(check_record_size(MAX_RECORD_BYTES + 1).is_err());
    }
}
