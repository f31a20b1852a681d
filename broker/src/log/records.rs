//! The records inside a RecordBatch v2: the one record parser (over records in memory or
//! streamed out of a decompressor), and re-encoding of retained records for the cleaner.
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
//! read past it, and nothing is allocated per record; decompressed output is capped (see
//! [`decompressed_cap`]) so a small batch claiming gigabytes (a "zip bomb") is an error,
//! not an out-of-memory abort.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::log::batch::{
    compute_crc, BatchHeader, COMPRESSION_MASK, CONTROL_BIT, CRC_AT, HEADER_BYTES,
    LOG_OVERHEAD_BYTES, MAGIC_V2, TIMESTAMP_TYPE_BIT,
};
use crate::log::codec::{self, CodecError};
pub use crate::log::codec::{compress, decompressed_cap, Compression};

/// attributes bit 6 (KIP-534): baseTimestamp holds the delete horizon of the batch's
/// tombstones, set by the cleaner the first time it rewrites the batch.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// The fixed fields of a record body: attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each at least.
const MIN_RECORD_BODY_BYTES: usize = 6;
/// The smallest encoded record: its length varint and the fixed fields.
pub const MIN_RECORD_BYTES: usize = 1 + MIN_RECORD_BODY_BYTES;

/// Bytes of decompressed records a [`StreamSource`] holds at a time.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The records do not parse, or break a rule of produced batches (Kafka's
    /// InvalidRecordException: INVALID_RECORD).
    #[error("batch at offset {base_offset}: {reason}")]
    Malformed { base_offset: i64, reason: String },
    /// The records section is not a valid stream of its codec (CORRUPT_MESSAGE).
    #[error("batch at offset {base_offset}: {reason}")]
    Codec { base_offset: i64, reason: String },
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

impl RecordError {
    pub fn from_codec(e: CodecError, header: &BatchHeader, compressed: usize) -> RecordError {
        match e {
            CodecError::Corrupt { .. } => RecordError::Codec {
                base_offset: header.base_offset,
                reason: e.to_string(),
            },
            CodecError::Unsupported { reason, .. } => RecordError::Malformed {
                base_offset: header.base_offset,
                reason,
            },
            CodecError::TooLarge { cap } => RecordError::DecompressedTooLarge {
                base_offset: header.base_offset,
                compressed,
                cap,
            },
        }
    }
}

impl From<RecordError> for io::Error {
    fn from(e: RecordError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The codec of a stored or produced batch.
pub fn codec_of(header: &BatchHeader) -> Result<Compression, RecordError> {
    Compression::of_header(header).map_err(|reason| RecordError::Codec {
        base_offset: header.base_offset,
        reason,
    })
}

/// Decompress `data` (a batch's records section) whole, refusing output beyond `cap`.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    cap: usize,
    base_offset: i64,
) -> Result<Vec<u8>, RecordError> {
    codec::decompress(codec, data, cap).map_err(|e| match e {
        CodecError::TooLarge { cap } => RecordError::DecompressedTooLarge {
            base_offset,
            compressed: data.len(),
            cap,
        },
        CodecError::Unsupported { reason, .. } => RecordError::Malformed {
            base_offset,
            reason,
        },
        e => RecordError::Codec {
            base_offset,
            reason: e.to_string(),
        },
    })
}

/// The records section of a whole batch, decompressed (borrowed when uncompressed).
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Result<Cow<'a, [u8]>, RecordError> {
    let data = &batch[HEADER_BYTES..];
    match codec_of(header)? {
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

/// Why a [`RecordSource`] gave no more bytes.
#[derive(Debug)]
pub enum SourceError {
    /// The records section ended.
    End,
    /// The decompressor failed or passed the cap.
    Codec(CodecError),
}

/// Why [`read_record`] could not read a record.
#[derive(Debug)]
pub enum RecordFault {
    Source(SourceError),
    Malformed(String),
}

impl From<SourceError> for RecordFault {
    fn from(e: SourceError) -> RecordFault {
        RecordFault::Source(e)
    }
}

impl RecordFault {
    /// As the error of record `index` of the batch of `header`, whose records section has
    /// `compressed` bytes.
    pub fn at(self, header: &BatchHeader, index: usize, compressed: usize) -> RecordError {
        let malformed = |reason| RecordError::Malformed {
            base_offset: header.base_offset,
            reason,
        };
        match self {
            RecordFault::Malformed(what) => malformed(format!("record {index}: {what}")),
            RecordFault::Source(SourceError::End) => malformed(format!(
                "record {index} of {}: the records end inside it",
                header.records_count
            )),
            RecordFault::Source(SourceError::Codec(e)) => {
                RecordError::from_codec(e, header, compressed)
            }
        }
    }
}

/// Where the record parser reads: records in memory ([`SliceSource`], fields borrowed)
/// or streamed out of a decompressor ([`StreamSource`], fields skipped).
pub trait RecordSource {
    /// What a key, value or header field yields: its bytes, or nothing when streamed.
    type Bytes;
    fn byte(&mut self) -> Result<u8, SourceError>;
    /// The next `n` bytes, consumed.
    fn take(&mut self, n: usize) -> Result<Self::Bytes, SourceError>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
    /// Whether every byte has been consumed (a stream is read to its end, which is where
    /// codecs check their trailers and checksums).
    fn at_end(&mut self) -> Result<bool, SourceError>;
}

/// Records held in memory.
pub struct SliceSource<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        SliceSource { b, pos: 0 }
    }
}

impl<'a> RecordSource for SliceSource<'a> {
    type Bytes = &'a [u8];

    #[inline]
    fn byte(&mut self) -> Result<u8, SourceError> {
        let b = *self.b.get(self.pos).ok_or(SourceError::End)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], SourceError> {
        let end = self.pos.checked_add(n).ok_or(SourceError::End)?;
        let s = self.b.get(self.pos..end).ok_or(SourceError::End)?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn position(&self) -> u64 {
        self.pos as u64
    }

    fn at_end(&mut self) -> Result<bool, SourceError> {
        Ok(self.pos == self.b.len())
    }
}

/// Records read out of a decompressor through a fixed buffer: memory stays at the
/// buffer and the codec's own state however large the records are, and reading more
/// than `cap` bytes in total is an error.
pub struct StreamSource<'a> {
    reader: Box<dyn Read + 'a>,
    codec: Compression,
    buf: Box<[u8]>,
    at: usize,
    end: usize,
    /// Bytes read out of the decompressor so far.
    produced: u64,
    cap: u64,
}

impl<'a> StreamSource<'a> {
    /// A source of the records in `data` compressed with `codec`, at most `cap` bytes.
    pub fn new(codec: Compression, data: &'a [u8], cap: usize) -> Result<Self, CodecError> {
        Ok(StreamSource {
            reader: codec::decoder(codec, data)?,
            codec,
            buf: vec![0u8; STREAM_BUFFER_BYTES].into_boxed_slice(),
            at: 0,
            end: 0,
            produced: 0,
            cap: cap as u64,
        })
    }

    /// Refill an empty buffer. Reads at most one byte past the cap: enough to prove it
    /// was passed.
    fn fill(&mut self) -> Result<(), SourceError> {
        debug_assert_eq!(self.at, self.end);
        let room = (self.cap + 1).saturating_sub(self.produced);
        let want = self
            .buf
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        loop {
            match self.reader.read(&mut self.buf[..want]) {
                Ok(0) => return Err(SourceError::End),
                Ok(n) => {
                    self.produced += n as u64;
                    if self.produced > self.cap {
                        return Err(SourceError::Codec(CodecError::TooLarge {
                            cap: self.cap as usize,
                        }));
                    }
                    (self.at, self.end) = (0, n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SourceError::Codec(codec::corrupt(self.codec, e))),
            }
        }
    }
}

impl RecordSource for StreamSource<'_> {
    type Bytes = ();

    #[inline]
    fn byte(&mut self) -> Result<u8, SourceError> {
        if self.at == self.end {
            self.fill()?;
        }
        let b = self.buf[self.at];
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, mut n: usize) -> Result<(), SourceError> {
        loop {
            let here = self.end - self.at;
            if n <= here {
                self.at += n;
                return Ok(());
            }
            n -= here;
            self.at = self.end;
            self.fill()?;
        }
    }

    #[inline]
    fn position(&self) -> u64 {
        self.produced - (self.end - self.at) as u64
    }

    fn at_end(&mut self) -> Result<bool, SourceError> {
        if self.at < self.end {
            return Ok(false);
        }
        match self.fill() {
            Ok(()) => Ok(false),
            Err(SourceError::End) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// A zigzag varint of at most 32 bits (5 bytes), as Kafka reads it. Longer encodings, and
/// 5-byte ones carrying bits beyond 32, are refused: Java clients would reject them and
/// librdkafka would read a different value.
#[inline]
pub fn read_varint<S: RecordSource>(src: &mut S) -> Result<i32, RecordFault> {
    let mut z = 0u32;
    for i in 0..5 {
        let b = src.byte()?;
        if i == 4 && b > 0x0f {
            break;
        }
        z |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i32) ^ -((z & 1) as i32));
        }
    }
    Err(RecordFault::Malformed(
        "a varint is longer than 32 bits".into(),
    ))
}

/// A zigzag varlong of at most 64 bits (10 bytes).
#[inline]
pub fn read_varlong<S: RecordSource>(src: &mut S) -> Result<i64, RecordFault> {
    let mut z = 0u64;
    for i in 0..10 {
        let b = src.byte()?;
        if i == 9 && b > 0x01 {
            break;
        }
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(RecordFault::Malformed(
        "a varlong is longer than 64 bits".into(),
    ))
}

/// Append `v` as a zigzag varint (any width up to 64 bits).
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The fields of one record as [`read_record`] found them.
#[derive(Debug)]
pub struct RawRecord<B> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<B>,
    pub value: Option<B>,
    /// Where the key length starts: the record's tail runs from here to its end.
    pub key_at: u64,
}

/// A length-prefixed byte string of the record that ends at `end`; -1 is null.
#[inline]
fn read_bytes<S: RecordSource>(
    src: &mut S,
    end: u64,
    what: &str,
) -> Result<Option<S::Bytes>, RecordFault> {
    let len = read_varint(src)?;
    if len == -1 {
        return Ok(None);
    }
    // Java reads any negative length as null, but librdkafka fails on one below -1: a
    // batch holding it would stop librdkafka consumers.
    let left = end.saturating_sub(src.position());
    let len = u64::try_from(len)
        .map_err(|_| RecordFault::Malformed(format!("{what} length {len} is negative")))?;
    if len > left {
        return Err(RecordFault::Malformed(format!(
            "{what} length {len} overruns the record ({left} bytes left in it)"
        )));
    }
    Ok(Some(src.take(len as usize)?))
}

/// Read one record: every length against the record's own declared length, every varint
/// bounded, the header count against the bytes it would need. Nothing is allocated.
pub fn read_record<S: RecordSource>(src: &mut S) -> Result<RawRecord<S::Bytes>, RecordFault> {
    let len = read_varint(src)?;
    let len = u64::try_from(len)
        .ok()
        .filter(|&l| l >= MIN_RECORD_BODY_BYTES as u64)
        .ok_or_else(|| {
            RecordFault::Malformed(format!(
                "record length {len} is below the {MIN_RECORD_BODY_BYTES} bytes of a \
                 record's fixed fields"
            ))
        })?;
    let start = src.position();
    let end = start + len;
    let attributes = src.byte()? as i8;
    let timestamp_delta = read_varlong(src)?;
    let offset_delta = read_varint(src)?;
    let key_at = src.position();
    let key = read_bytes(src, end, "key")?;
    let value = read_bytes(src, end, "value")?;
    let headers = read_varint(src)?;
    if headers < 0 {
        return Err(RecordFault::Malformed(format!(
            "header count {headers} is negative"
        )));
    }
    for h in 0..headers {
        // Each header takes at least two bytes, so a count the record cannot hold runs
        // out of its bytes long before it costs anything.
        if src.position() >= end {
            return Err(RecordFault::Malformed(format!(
                "header count {headers} is more than the record's {len} bytes hold \
                 (they end after header {h})"
            )));
        }
        if read_bytes(src, end, "header key")?.is_none() {
            return Err(RecordFault::Malformed(format!("header {h} has a null key")));
        }
        read_bytes(src, end, "header value")?;
    }
    let read = src.position() - start;
    if read != len {
        return Err(RecordFault::Malformed(format!(
            "record length {len} does not match the {read} bytes of its fields"
        )));
    }
    Ok(RawRecord {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        key_at,
    })
}

/// Parse the `records_count` records of a batch from its decompressed records section.
/// The records must fill the section exactly and their offset deltas must increase
/// within `0..=lastOffsetDelta` (a cleaned batch may have gaps).
pub fn parse_records<'a>(
    header: &BatchHeader,
    section: &'a [u8],
) -> Result<Vec<Record<'a>>, RecordError> {
    let corrupt = |reason: String| RecordError::Malformed {
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
    let mut src = SliceSource::new(section);
    let mut previous_delta = -1i64;
    for i in 0..count {
        let r = read_record(&mut src).map_err(|f| f.at(header, i, section.len()))?;
        if i64::from(r.offset_delta) <= previous_delta || r.offset_delta > header.last_offset_delta
        {
            return Err(corrupt(format!(
                "record {i} has offset delta {} (previous {previous_delta}, \
                 lastOffsetDelta {})",
                r.offset_delta, header.last_offset_delta
            )));
        }
        previous_delta = i64::from(r.offset_delta);
        out.push(Record {
            attributes: r.attributes,
            timestamp_delta: r.timestamp_delta,
            offset_delta: r.offset_delta,
            key: r.key,
            value: r.value,
            tail: &section[r.key_at as usize..src.pos],
        });
    }
    if src.pos != section.len() {
        return Err(corrupt(format!(
            "{} bytes follow the last of {count} records",
            section.len() - src.pos
        )));
    }
    Ok(out)
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
    let codec = codec_of(original)?;
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

pub(crate) fn encode_batch(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One record whose value is `n` zeros.
    fn zeros_record(n: usize) -> Vec<u8> {
        let mut body = vec![0u8, 0, 0];
        put_varlong(&mut body, -1);
        put_varlong(&mut body, n as i64);
        body.resize(body.len() + n, 0);
        put_varlong(&mut body, 0);
        let mut out = Vec::new();
        put_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_stream_stops_one_byte_past_its_cap_for_every_codec() {
        let section = zeros_record(100_000);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let data = compress(codec, &section).unwrap();
            let mut src = StreamSource::new(codec, &data, section.len()).unwrap();
            let r = read_record(&mut src).unwrap();
            assert_eq!((r.key, r.value), (None, Some(())));
            assert!(src.at_end().unwrap(), "{codec:?}");
            assert_eq!(src.position(), section.len() as u64);

            let mut src = StreamSource::new(codec, &data, section.len() - 1).unwrap();
            match read_record(&mut src) {
                Err(RecordFault::Source(SourceError::Codec(CodecError::TooLarge { cap }))) => {
                    assert_eq!(cap, section.len() - 1)
                }
                other => panic!("{codec:?}: {other:?}"),
            }
            // Never more than the cap and the byte that proves it was passed.
            assert!(src.produced <= section.len() as u64, "{codec:?}");
        }
    }

    #[test]
    fn the_slice_and_stream_sources_read_the_same_records() {
        let mut section = Vec::new();
        for i in 0..100i64 {
            let mut body = vec![0u8];
            put_varlong(&mut body, i * 1000);
            put_varlong(&mut body, i);
            put_varlong(&mut body, 3);
            body.extend_from_slice(b"key");
            put_varlong(&mut body, i * 300);
            body.resize(body.len() + (i * 300) as usize, b'v');
            put_varlong(&mut body, 1);
            put_varlong(&mut body, 1);
            body.push(b'h');
            put_varlong(&mut body, -1);
            put_varlong(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
        let data = compress(Compression::Zstd, &section).unwrap();
        let mut slice = SliceSource::new(&section);
        let mut stream = StreamSource::new(Compression::Zstd, &data, 1 << 30).unwrap();
        for i in 0..100 {
            let a = read_record(&mut slice).unwrap();
            let b = read_record(&mut stream).unwrap();
            assert_eq!(
                (a.timestamp_delta, a.offset_delta, a.key_at),
                (b.timestamp_delta, b.offset_delta, b.key_at),
                "record {i}"
            );
            assert_eq!(a.key, Some(&b"key"[..]));
            assert_eq!(slice.position(), stream.position());
        }
        assert!(slice.at_end().unwrap() && stream.at_end().unwrap());
    }
}
