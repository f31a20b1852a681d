//! The records inside a RecordBatch v2: bounded decompression, record parsing and
//! re-encoding of retained records.
//!
//! The log looks inside batches only where Kafka does too: the key check on produce to
//! a compacted topic, and the cleaner. Everywhere else records stay opaque bytes.
//!
//! Record layout (after the 61-byte batch header, possibly compressed as a whole):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint (-1 null) | key | valueLength varint (-1 null) | value |
//! headerCount varint | headers (keyLength varint, key, valueLength varint, value)*
//! ```
//!
//! Every length and count is checked against the bytes that remain before anything is
//! allocated; decompressed output is capped (see [`decompressed_cap`]) so a small batch
//! claiming gigabytes (a "zip bomb") is an error, not an out-of-memory abort.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use crate::log::batch::{
    compute_crc, BatchHeader, COMPRESSION_MASK, CONTROL_BIT, CRC_AT, HEADER_BYTES,
    LOG_OVERHEAD_BYTES, MAGIC_V2, TIMESTAMP_TYPE_BIT,
};

/// attributes bit 6 (KIP-534): baseTimestamp holds the delete horizon of the batch's
/// tombstones, set by the cleaner the first time it rewrites the batch.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// The floor of the decompressed-size cap: a legitimate batch of up to this many
/// decompressed bytes is always accepted, whatever its compression ratio.
pub const MIN_DECOMPRESSED_CAP_BYTES: usize = 64 * 1024 * 1024;
/// Above the floor, records may decompress to at most this many times their compressed
/// size. Real producer data compresses far less than 64:1; a bomb compresses more.
pub const MAX_COMPRESSION_RATIO: usize = 64;

/// The most bytes the records of a batch with `compressed_bytes` of compressed records
/// may decompress to: `max(64 MiB, 64 × compressed_bytes)`.
pub fn decompressed_cap(compressed_bytes: usize) -> usize {
    MIN_DECOMPRESSED_CAP_BYTES.max(compressed_bytes.saturating_mul(MAX_COMPRESSION_RATIO))
}

/// The smallest encoded record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
const MIN_RECORD_BYTES: usize = 7;

/// xerial snappy-java's stream header, which Java producers write around snappy blocks.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The xerial header: magic, version 1, compatible version 1.
const XERIAL_HEADER_BYTES: usize = 16;
/// Block size of xerial framing written by the cleaner (snappy-java's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("batch at offset {base_offset}: {reason}")]
    Corrupt { base_offset: i64, reason: String },
    #[error(
        "batch at offset {base_offset}: records decompress to more than {cap} bytes \
         (the cap is max(64 MiB, 64 × the {compressed} compressed bytes))"
    )]
    DecompressedTooLarge {
        base_offset: i64,
        compressed: usize,
        cap: usize,
    },
}

impl From<RecordError> for io::Error {
    fn from(e: RecordError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Kafka's compression codecs, by their attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn of(header: &BatchHeader) -> Result<Compression, RecordError> {
        Ok(match header.attributes & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => {
                return Err(RecordError::Corrupt {
                    base_offset: header.base_offset,
                    reason: format!("unknown compression codec {other}"),
                })
            }
        })
    }
}

/// Decompress `data` (a batch's records section), refusing output beyond `cap` bytes.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    cap: usize,
    base_offset: i64,
) -> Result<Vec<u8>, RecordError> {
    let too_large = || RecordError::DecompressedTooLarge {
        base_offset,
        compressed: data.len(),
        cap,
    };
    let corrupt = |what: &str, e: &dyn std::fmt::Display| RecordError::Corrupt {
        base_offset,
        reason: format!("{what} records do not decompress: {e}"),
    };
    // Streaming codecs read through `take(cap + 1)`: one byte past the cap proves a bomb
    // without ever holding more than cap + 1 bytes.
    let read_capped = |reader: &mut dyn Read, what: &str| {
        let mut out = Vec::new();
        reader
            .take(cap as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(what, &e))?;
        if out.len() > cap {
            return Err(too_large());
        }
        Ok(out)
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_capped(&mut flate2::read::MultiGzDecoder::new(data), "gzip"),
        Compression::Lz4 => read_capped(&mut lz4_flex::frame::FrameDecoder::new(data), "lz4"),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt("zstd", &e))?;
            read_capped(&mut decoder, "zstd")
        }
        Compression::Snappy => {
            if data.starts_with(&XERIAL_MAGIC) {
                decompress_xerial(data, cap, base_offset)
            } else {
                // Raw snappy (librdkafka and others): the length is declared up front.
                let len = snap::raw::decompress_len(data).map_err(|e| corrupt("snappy", &e))?;
                if len > cap {
                    return Err(too_large());
                }
                snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(|e| corrupt("snappy", &e))
            }
        }
    }
}

/// snappy-java's framing: the 16-byte header, then blocks of (length u32, raw snappy).
fn decompress_xerial(data: &[u8], cap: usize, base_offset: i64) -> Result<Vec<u8>, RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt {
        base_offset,
        reason,
    };
    let mut rest = data
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt("truncated snappy-java header".into()))?;
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt("truncated snappy-java block length".into()));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(format!("snappy-java block of {len} bytes is truncated")))?;
        let block_len = snap::raw::decompress_len(block)
            .map_err(|e| corrupt(format!("snappy records do not decompress: {e}")))?;
        if out.len().saturating_add(block_len) > cap {
            return Err(RecordError::DecompressedTooLarge {
                base_offset,
                compressed: data.len(),
                cap,
            });
        }
        let start = out.len();
        out.resize(start + block_len, 0);
        decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(format!("snappy records do not decompress: {e}")))?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Compress a records section with `codec`, in the framing Java producers use.
pub fn compress(codec: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK_BYTES) {
                let block = encoder.compress_vec(chunk).map_err(io::Error::other)?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            // Kafka's LZ4 reader handles independent 64 KiB blocks (its own writer's
            // settings); linked blocks or other sizes are not safe for every client.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(data)?;
            e.finish().map_err(io::Error::other)
        }
        // Level 3 is Kafka's default compression.zstd.level.
        Compression::Zstd => zstd::stream::encode_all(data, 3),
    }
}

/// The records section of a whole batch, decompressed (borrowed when uncompressed).
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<Cow<'a, [u8]>, RecordError> {
    let data = &batch[HEADER_BYTES..];
    match Compression::of(header)? {
        Compression::None => Ok(Cow::Borrowed(data)),
        codec => Ok(Cow::Owned(decompress(
            codec,
            data,
            decompressed_cap(data.len()),
            header.base_offset,
        )?)),
    }
}

/// One record, borrowing from the (decompressed) records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone: a delete marker for the key on compacted topics.
    pub value: Option<&'a [u8]>,
    /// From the key length through the last header: copied verbatim on rewrite.
    pub tail: &'a [u8],
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Option<i64> {
        let mut z = 0u64;
        for i in 0..10 {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            z |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        i32::try_from(self.varlong()?).ok()
    }

    fn i8(&mut self) -> Option<i8> {
        let b = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(b as i8)
    }

    /// A length-prefixed byte string; -1 is null.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        let s = self.b.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(Some(s))
    }
}

/// Parse the `records_count` records of a batch from its decompressed records section.
/// The records must fill the section exactly and their offset deltas must increase
/// within `0..=lastOffsetDelta`.
pub fn parse_records<'a>(
    header: &BatchHeader,
    section: &'a [u8],
) -> Result<Vec<Record<'a>>, RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt {
        base_offset: header.base_offset,
        reason,
    };
    let count = usize::try_from(header.records_count)
        .map_err(|_| corrupt(format!("negative record count {}", header.records_count)))?;
    if count > section.len() / MIN_RECORD_BYTES {
        return Err(corrupt(format!(
            "{count} records cannot fit in {} bytes",
            section.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    let mut c = Cursor { b: section, pos: 0 };
    let mut previous_delta = -1i64;
    for i in 0..count {
        let truncated = || corrupt(format!("record {i} is truncated or malformed"));
        let len = c.varint().ok_or_else(truncated)?;
        let len = usize::try_from(len).map_err(|_| truncated())?;
        let end = c.pos.checked_add(len).filter(|&e| e <= section.len());
        let end = end.ok_or_else(truncated)?;
        let mut r = Cursor {
            b: &section[..end],
            pos: c.pos,
        };
        let attributes = r.i8().ok_or_else(truncated)?;
        let timestamp_delta = r.varlong().ok_or_else(truncated)?;
        let offset_delta = r.varint().ok_or_else(truncated)?;
        let tail_from = r.pos;
        let key = r.bytes().ok_or_else(truncated)?;
        let value = r.bytes().ok_or_else(truncated)?;
        let headers = r.varint().ok_or_else(truncated)?;
        if headers < 0 {
            return Err(truncated());
        }
        for _ in 0..headers {
            // Header keys are never null; each header is at least two bytes, so a huge
            // count runs out of bytes long before it costs anything.
            r.bytes().flatten().ok_or_else(truncated)?;
            r.bytes().ok_or_else(truncated)?;
        }
        if r.pos != end {
            return Err(corrupt(format!(
                "record {i} declares {len} bytes but holds {}",
                r.pos - c.pos
            )));
        }
        if i64::from(offset_delta) <= previous_delta || offset_delta > header.last_offset_delta {
            return Err(corrupt(format!(
                "record {i} has offset delta {offset_delta} (previous {previous_delta}, \
                 lastOffsetDelta {})",
                header.last_offset_delta
            )));
        }
        previous_delta = i64::from(offset_delta);
        out.push(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            tail: &section[tail_from..end],
        });
        c.pos = end;
    }
    if c.pos != section.len() {
        return Err(corrupt(format!(
            "{} bytes follow the last of {count} records",
            section.len() - c.pos
        )));
    }
    Ok(out)
}

/// Produce to a compacted topic: every record needs a key, and (as for any client
/// batch in Kafka) record offset deltas must be 0, 1, 2, ...
pub fn check_compacted_produce(batch: &[u8], header: &BatchHeader) -> Result<(), KeyCheck> {
    let section = records_section(batch, header).map_err(KeyCheck::Corrupt)?;
    let records = parse_records(header, &section).map_err(KeyCheck::Corrupt)?;
    for (i, r) in records.iter().enumerate() {
        if r.offset_delta as usize != i {
            return Err(KeyCheck::Invalid(format!(
                "record {i} has offset delta {}; a produced batch numbers its records 0, 1, 2, ...",
                r.offset_delta
            )));
        }
        if r.key.is_none() {
            return Err(KeyCheck::Invalid(format!(
                "record {i} has no key; a compacted topic (cleanup.policy=compact) \
                 accepts only keyed records"
            )));
        }
    }
    Ok(())
}

/// Why [`check_compacted_produce`] refused a batch.
#[derive(Debug)]
pub enum KeyCheck {
    /// The batch cannot be read (bad compression, malformed records, a bomb).
    Corrupt(RecordError),
    /// Readable, but not acceptable on a compacted topic (Kafka: INVALID_RECORD).
    Invalid(String),
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Write a batch holding `records` (a subset of `original`'s, in order) with the
/// original's base offset, lastOffsetDelta, producer id/epoch/base sequence, leader
/// epoch and codec, as Kafka's cleaner does: keeping lastOffsetDelta keeps the last
/// sequence, so idempotent producers are not told their next batch is out of order.
///
/// `delete_horizon_ms`, when given, is stored in baseTimestamp with
/// [`DELETE_HORIZON_BIT`] (KIP-534); record timestamp deltas are recomputed so every
/// record keeps its timestamp.
pub fn build_batch(
    original: &BatchHeader,
    records: &[Record<'_>],
    delete_horizon_ms: Option<i64>,
) -> io::Result<Vec<u8>> {
    let codec = Compression::of(original)?;
    let base_timestamp_ms = delete_horizon_ms.unwrap_or(original.base_timestamp_ms);
    let log_append_time = original.attributes & TIMESTAMP_TYPE_BIT != 0;
    let mut max_timestamp_ms = if log_append_time {
        original.max_timestamp_ms
    } else {
        -1
    };
    let mut section = Vec::new();
    let mut body = Vec::new();
    for r in records {
        let timestamp_ms = original.base_timestamp_ms.wrapping_add(r.timestamp_delta);
        if !log_append_time {
            max_timestamp_ms = max_timestamp_ms.max(timestamp_ms);
        }
        body.clear();
        body.push(r.attributes as u8);
        put_varlong(&mut body, timestamp_ms.wrapping_sub(base_timestamp_ms));
        put_varlong(&mut body, i64::from(r.offset_delta));
        body.extend_from_slice(r.tail);
        put_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let compressed = compress(codec, &section)?;
    let mut attributes = original.attributes;
    if delete_horizon_ms.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    Ok(encode_batch(
        original,
        attributes,
        base_timestamp_ms,
        max_timestamp_ms,
        records.len() as i32,
        &compressed,
    ))
}

/// An emptied batch kept for its producer state: the header alone, uncompressed (Kafka
/// writes the same), with the original offsets, sequence range and max timestamp.
pub fn build_empty_batch(original: &BatchHeader) -> Vec<u8> {
    let attributes = original.attributes & !COMPRESSION_MASK & !DELETE_HORIZON_BIT;
    encode_batch(
        original,
        attributes,
        original.max_timestamp_ms,
        original.max_timestamp_ms,
        0,
        &[],
    )
}

fn encode_batch(
    original: &BatchHeader,
    attributes: i16,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    records_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + records.len());
    b.extend_from_slice(&original.base_offset.to_be_bytes());
    b.extend_from_slice(
        &((HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32).to_be_bytes(),
    );
    b.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&original.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp_ms.to_be_bytes());
    b.extend_from_slice(&max_timestamp_ms.to_be_bytes());
    b.extend_from_slice(&original.producer_id.to_be_bytes());
    b.extend_from_slice(&original.producer_epoch.to_be_bytes());
    b.extend_from_slice(&original.base_sequence.to_be_bytes());
    b.extend_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The delete horizon stored in a batch by an earlier cleaning (KIP-534).
pub fn delete_horizon_ms(header: &BatchHeader) -> Option<i64> {
    (header.attributes & DELETE_HORIZON_BIT != 0).then_some(header.base_timestamp_ms)
}

pub fn is_control(header: &BatchHeader) -> bool {
    header.attributes & CONTROL_BIT != 0
}
