//! A produced batch is checked whole before any of it is stored, as Kafka's broker does
//! (the produce request's own checks, `UnifiedLog.analyzeAndValidateRecords` and
//! `LogValidator`): its header and CRC (see [`batch::validate_client_records`]), then
//! every record, read out of the decompressor as a stream when the batch is compressed.
//! A batch that passes is stored as the client sent it.
//!
//! The error of each refusal is Kafka's:
//!
//! - CORRUPT_MESSAGE: the bytes are damaged: a CRC that does not match, a batchLength
//!   below the header, or a compressed section that is not a valid stream of its codec
//!   (where Kafka itself answers UNKNOWN_SERVER_ERROR from an uncaught exception).
//! - INVALID_RECORD: the batch is intact but breaks a rule: record count against the
//!   offset range or the records present, a length, varint or header count that does not
//!   fit, offset deltas other than 0, 1, 2, ..., a record without a key on a compacted
//!   topic, more than one batch, a control batch. Also Fjord's own bounds, which Kafka
//!   does not have: records that decompress past the cap, a zstd window over 16 MiB.
//! - MESSAGE_TOO_LARGE: the batch is larger than `max.message.bytes`.
//!
//! Two rules are checked record by record and reported per record (KIP-467: the
//! produce answer's `record_errors` name each refused record's index in the batch): a
//! record without a key on a compacted topic (INVALID_RECORD), and on a CreateTime topic
//! a timestamp further behind or ahead of the broker's clock than
//! `message.timestamp.before.max.ms` / `after.max.ms` (INVALID_TIMESTAMP).
//!
//! One rule Kafka enforces by rewriting is kept here by restamping: the header's
//! maxTimestamp must be the largest record timestamp (see [`ValidBatch`]).

use crate::log::batch::{self, BatchHeader, HEADER_BYTES, TIMESTAMP_TYPE_BIT};
use crate::log::records::{
    codec_of, decompressed_cap, read_record, Compression, RecordError, RecordFault, RecordSource,
    SliceSource, StreamSource, MIN_RECORD_BYTES,
};
use crate::log::{AppendError, LogConfig, RecordRefusals, TimestampType};

/// A record timestamp of -1: the producer set none.
const NO_TIMESTAMP: i64 = -1;

/// A produced batch that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    pub header: BatchHeader,
    /// The largest record timestamp (-1 when every record has an earlier one, as Kafka
    /// counts it). On a CreateTime topic Kafka overwrites the header's maxTimestamp with
    /// it when they differ; [`ValidBatch::needs_restamp`] says when.
    pub max_timestamp_ms: i64,
}

impl ValidBatch {
    /// Whether the header's maxTimestamp or timestamp type must be rewritten before the
    /// batch is stored on a topic of `timestamp_type` (LogAppendTime batches are always
    /// restamped by the log).
    pub fn needs_restamp(&self, timestamp_type: TimestampType) -> bool {
        timestamp_type == TimestampType::CreateTime
            && (self.header.max_timestamp_ms != self.max_timestamp_ms
                || self.header.attributes & TIMESTAMP_TYPE_BIT != 0)
    }
}

/// The rules checked record by record, whose refusals name the record (KIP-467).
struct RecordRules {
    compacted: bool,
    /// The CreateTime window `[earliest, latest]` of record timestamps; `None` on a
    /// LogAppendTime topic, whose timestamps the broker sets.
    timestamps: Option<(i64, i64)>,
}

/// What walking the records found.
struct Checked {
    max_timestamp_ms: i64,
    refusals: RecordRefusals,
}

/// Check one partition's records of a produce request against the topic's `config`,
/// at broker time `now_ms`.
pub fn validate_produce(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<ValidBatch, AppendError> {
    let header = batch::validate_client_records(records, config.max_message_bytes)?;
    let rules = RecordRules {
        compacted: config.cleanup_policy.compact,
        timestamps: (config.timestamp_type == TimestampType::CreateTime).then(|| {
            (
                now_ms.saturating_sub(config.timestamp_before_max_ms),
                now_ms.saturating_add(config.timestamp_after_max_ms),
            )
        }),
    };
    let section = &records[HEADER_BYTES..];
    let checked = match codec_of(&header).map_err(refusal)? {
        Compression::None => {
            let mut src = SliceSource::new(section);
            check_records(&header, &mut src, section.len(), section.len(), &rules)
        }
        codec => {
            let cap = decompressed_cap(section.len());
            match StreamSource::new(codec, section, cap) {
                Ok(mut src) => check_records(&header, &mut src, cap, section.len(), &rules),
                Err(e) => Err(RecordError::from_codec(e, &header, section.len())),
            }
        }
    }
    .map_err(refusal)?;
    if !checked.refusals.records.is_empty() {
        return Err(AppendError::RecordsRefused(checked.refusals));
    }
    Ok(ValidBatch {
        header,
        max_timestamp_ms: checked.max_timestamp_ms,
    })
}

/// Walk every record: count, structure, offset deltas 0, 1, 2, ..., nothing after the
/// last; and the per-record `rules`, whose refusals are collected rather than ending the
/// walk. `room` is the most bytes `src` can yield, `compressed` the size of the records
/// section as sent.
fn check_records<S: RecordSource>(
    header: &BatchHeader,
    src: &mut S,
    room: usize,
    compressed: usize,
    rules: &RecordRules,
) -> Result<Checked, RecordError> {
    let malformed = |reason: String| RecordError::Malformed {
        base_offset: header.base_offset,
        reason,
    };
    // validate_client_records checked 1 <= count == lastOffsetDelta + 1.
    let count = header.records_count as usize;
    // Each record takes at least MIN_RECORD_BYTES, so a count the records cannot hold is
    // refused before any is read.
    if count > room / MIN_RECORD_BYTES {
        return Err(malformed(format!(
            "{count} records cannot fit in {room} bytes of records"
        )));
    }
    let mut max_timestamp_ms = NO_TIMESTAMP;
    let mut refusals = RecordRefusals {
        timestamp: false,
        records: Vec::new(),
    };
    for i in 0..count {
        let r = read_record(src).map_err(|f| f.at(header, i, compressed))?;
        // Kafka rewrites a compressed batch with other deltas and stores an uncompressed
        // one as it is, so consumers would read offsets the log never assigned; Fjord
        // stores the client's bytes, so it refuses them.
        if i64::from(r.offset_delta) != i as i64 {
            return Err(malformed(format!(
                "record {i} has offset delta {}; a produced batch numbers its records \
                 0, 1, 2, ...",
                r.offset_delta
            )));
        }
        // Java consumers compute base + delta in wrapping 64-bit arithmetic.
        let timestamp_ms = header.base_timestamp_ms.wrapping_add(r.timestamp_delta);
        max_timestamp_ms = max_timestamp_ms.max(timestamp_ms);
        // A record without a key could never be compacted (the cleaner would drop it);
        // Kafka looks at keys on compacted topics only.
        if rules.compacted && r.key.is_none() {
            refusals.push(i, || {
                format!(
                    "record {i} has no key; a compacted topic (cleanup.policy=compact) \
                     accepts only keyed records"
                )
            });
        } else if let Some((earliest, latest)) = rules.timestamps {
            // A record without a timestamp (-1) is not checked, as in Kafka.
            if timestamp_ms != NO_TIMESTAMP && !(earliest..=latest).contains(&timestamp_ms) {
                refusals.timestamp = true;
                refusals.push(i, || {
                    format!(
                        "record {i} has timestamp {timestamp_ms}, outside [{earliest}, \
                         {latest}] (message.timestamp.before.max.ms and \
                         message.timestamp.after.max.ms around the broker's clock)"
                    )
                });
            }
        }
    }
    let at_end = src
        .at_end()
        .map_err(|e| RecordFault::Source(e).at(header, count, compressed))?;
    if !at_end {
        return Err(malformed(format!(
            "bytes follow the last of the {count} records the header declares"
        )));
    }
    Ok(Checked {
        max_timestamp_ms,
        refusals,
    })
}

/// The produce error for a batch whose records were refused.
fn refusal(e: RecordError) -> AppendError {
    match e {
        RecordError::Malformed { reason, .. } => AppendError::InvalidRecord(reason),
        RecordError::Codec { reason, .. } => AppendError::Corrupt(reason),
        RecordError::DecompressedTooLarge {
            compressed, cap, ..
        } => AppendError::InvalidRecord(format!(
            "records decompress to more than {cap} bytes (the cap is max(64 MiB, 64 × the \
             {compressed} compressed bytes))"
        )),
    }
}

#[cfg(test)]
mod tests;
