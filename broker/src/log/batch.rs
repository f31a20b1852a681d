//! RecordBatch (magic v2) header parsing and validation.
//!
//! The 61-byte header and the CRC; the records inside are parsed by `records` and a
//! produced batch's records checked by `validate`. Layout, big-endian:
//!
//! ```text
//!  0 baseOffset i64        | outside the CRC, rewritten by the log
//!  8 batchLength i32       | bytes after this field
//! 12 partitionLeaderEpoch  | outside the CRC, rewritten by the log
//! 16 magic i8
//! 17 crc u32               | CRC-32C of bytes 21..end
//! 21 attributes i16
//! 23 lastOffsetDelta i32
//! 27 baseTimestamp i64
//! 35 maxTimestamp i64
//! 43 producerId i64
//! 51 producerEpoch i16
//! 53 baseSequence i32
//! 57 recordsCount i32
//! 61 records...
//! ```

use crate::log::AppendError;

/// Bytes of the v2 batch header, records excluded.
pub const HEADER_BYTES: usize = 61;
/// baseOffset + batchLength: the part of the header not counted by batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The smallest legal batchLength value (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
pub const MAGIC_V2: i8 = 2;

const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
/// baseOffset, batchLength and partitionLeaderEpoch: the prefix holding both fields
/// the broker assigns on append.
pub const BROKER_ASSIGNED_PREFIX_BYTES: usize = LEADER_EPOCH_AT + 4;
const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
/// The CRC covers attributes through the end of the batch.
const CRC_FROM: usize = ATTRIBUTES_AT;
const MAX_TIMESTAMP_AT: usize = 35;

/// attributes bits 0-2: compression codec (0 none .. 4 zstd).
pub const COMPRESSION_MASK: i16 = 0x07;
const MAX_COMPRESSION_CODEC: i16 = 4;
/// attributes bit 3: timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub const TRANSACTIONAL_BIT: i16 = 0x10;
pub const CONTROL_BIT: i16 = 0x20;

/// "No producer id": the batch is not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Decode the header fields; no validation beyond the fixed size.
    pub fn parse(b: &[u8; HEADER_BYTES]) -> BatchHeader {
        BatchHeader {
            base_offset: i64_at(b, 0),
            batch_length: i32_at(b, LENGTH_AT),
            partition_leader_epoch: i32_at(b, LEADER_EPOCH_AT),
            magic: b[MAGIC_AT] as i8,
            crc: i32_at(b, CRC_AT) as u32,
            attributes: i16_at(b, CRC_FROM),
            last_offset_delta: i32_at(b, 23),
            base_timestamp_ms: i64_at(b, 27),
            max_timestamp_ms: i64_at(b, MAX_TIMESTAMP_AT),
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            records_count: i32_at(b, 57),
        }
    }

    /// Decode from the start of a buffer of at least [`HEADER_BYTES`].
    pub fn parse_prefix(b: &[u8]) -> Option<BatchHeader> {
        let head: &[u8; HEADER_BYTES] = b.get(..HEADER_BYTES)?.try_into().ok()?;
        Some(BatchHeader::parse(head))
    }

    /// The whole batch on disk, log overhead included. Only meaningful once
    /// [`BatchHeader::check_structure`] passed (batchLength >= 49).
    pub fn size_bytes(&self) -> u64 {
        LOG_OVERHEAD_BYTES as u64 + self.batch_length.max(0) as u64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The sequence of the last record; sequences wrap from i32::MAX to 0.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    pub fn is_idempotent(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Checks that need only the header: magic, length, offset delta and count.
    pub fn check_structure(&self) -> Result<(), AppendError> {
        if self.magic != MAGIC_V2 {
            return Err(AppendError::Unsupported(format!(
                "record batch magic {} (only magic 2 is supported)",
                self.magic
            )));
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(AppendError::Corrupt(format!(
                "batchLength {} is below the header size {MIN_BATCH_LENGTH}",
                self.batch_length
            )));
        }
        // Compaction leaves gaps: a stored batch may hold fewer records than its offset
        // range (even none, for an emptied batch kept for its producer), never more.
        if self.last_offset_delta < 0
            || self.records_count < 0
            || i64::from(self.records_count) > i64::from(self.last_offset_delta) + 1
        {
            return Err(AppendError::Corrupt(format!(
                "recordsCount {} does not fit lastOffsetDelta {} + 1",
                self.records_count, self.last_offset_delta
            )));
        }
        Ok(())
    }
}

/// `seq + delta` with the wrap at i32::MAX that producers use.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// CRC-32C of a whole batch's covered range (attributes..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_FROM..])
}

/// Validate one whole batch held in memory: structure, length against the buffer, CRC.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, AppendError> {
    let Some(header) = BatchHeader::parse_prefix(batch) else {
        return Err(AppendError::Corrupt(format!(
            "record batch of {} bytes is shorter than the {HEADER_BYTES}-byte header",
            batch.len()
        )));
    };
    header.check_structure()?;
    if header.size_bytes() != batch.len() as u64 {
        return Err(AppendError::Corrupt(format!(
            "batchLength {} does not match the {} bytes received",
            header.batch_length,
            batch.len() - LOG_OVERHEAD_BYTES
        )));
    }
    let crc = compute_crc(batch);
    if crc != header.crc {
        return Err(AppendError::Corrupt(format!(
            "batch at offset {}: CRC-32C {crc:#010x} does not match the stored {:#010x}",
            header.base_offset, header.crc
        )));
    }
    Ok(header)
}

/// Validate the header and CRC of the records of one produce request for one partition,
/// as a leader (the records inside are checked by `log::validate`).
///
/// For magic v2 a produce carries exactly one batch per partition, its baseOffset must be
/// 0, and it must not exceed `max.message.bytes`. The errors are Kafka's: INVALID_RECORD
/// for a batch that breaks a produce rule (Kafka's produce request checks and
/// `LogValidator.validateBatch`), CORRUPT_MESSAGE for damaged bytes, MESSAGE_TOO_LARGE.
pub fn validate_client_records(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<BatchHeader, AppendError> {
    let invalid = |reason: String| Err(AppendError::InvalidRecord(reason));
    // Magic first: an old-format producer is told so rather than that the batch is short.
    if let Some(&magic) = records.get(MAGIC_AT) {
        if magic as i8 != MAGIC_V2 {
            return invalid(format!(
                "record batch magic {}; produce requests carry magic {MAGIC_V2} batches only",
                magic as i8
            ));
        }
    }
    let Some(header) = BatchHeader::parse_prefix(records) else {
        return invalid(format!(
            "records of {} bytes hold no whole record batch (the header alone is \
             {HEADER_BYTES} bytes)",
            records.len()
        ));
    };
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(AppendError::Corrupt(format!(
            "batchLength {} is below the header size {MIN_BATCH_LENGTH}",
            header.batch_length
        )));
    }
    let size = header.size_bytes();
    if size > records.len() as u64 {
        return invalid(format!(
            "batchLength {} exceeds the {} bytes received: no whole record batch",
            header.batch_length,
            records.len() - LOG_OVERHEAD_BYTES
        ));
    }
    if size < records.len() as u64 {
        return invalid(format!(
            "produce carries more than one record batch ({} bytes, first batch {size}); \
             magic v2 allows exactly one per partition",
            records.len()
        ));
    }
    if header.base_offset != 0 {
        return invalid(format!(
            "baseOffset of a produced batch must be 0, got {}",
            header.base_offset
        ));
    }
    if size > u64::from(max_message_bytes) {
        return Err(AppendError::MessageTooLarge {
            size: records.len(),
            max: max_message_bytes,
        });
    }
    let crc = compute_crc(records);
    if crc != header.crc {
        return Err(AppendError::Corrupt(format!(
            "CRC-32C {crc:#010x} does not match the batch's {:#010x}",
            header.crc
        )));
    }
    if header.attributes & COMPRESSION_MASK > MAX_COMPRESSION_CODEC {
        return Err(AppendError::Corrupt(format!(
            "unknown compression codec {}",
            header.attributes & COMPRESSION_MASK
        )));
    }
    if header.last_offset_delta < 0 {
        return invalid(format!(
            "lastOffsetDelta {} gives an empty offset range",
            header.last_offset_delta
        ));
    }
    if header.records_count <= 0 {
        return invalid(format!(
            "recordsCount {} (a produced batch holds at least one record)",
            header.records_count
        ));
    }
    // A batch as a producer sends it has one record per offset of its range.
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return invalid(format!(
            "recordsCount {} does not match lastOffsetDelta {} + 1",
            header.records_count, header.last_offset_delta
        ));
    }
    if header.is_control() {
        return invalid("clients may not write control batches".into());
    }
    if header.is_idempotent() && (header.producer_epoch < 0 || header.base_sequence < 0) {
        return invalid(format!(
            "idempotent batch of producer {} has epoch {} and base sequence {}",
            header.producer_id, header.producer_epoch, header.base_sequence
        ));
    }
    Ok(header)
}

/// Split a buffer of consecutive batches (a follower fetch) and validate each.
/// Returns each batch's position in the buffer with its header.
pub fn split_batches(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, AppendError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let Some(header) = BatchHeader::parse_prefix(rest) else {
            return Err(AppendError::Corrupt(format!(
                "{} trailing bytes at position {pos} are not a whole batch header",
                rest.len()
            )));
        };
        header.check_structure()?;
        let size = header.size_bytes();
        if size > rest.len() as u64 {
            return Err(AppendError::Corrupt(format!(
                "batch at position {pos} claims {size} bytes, only {} remain",
                rest.len()
            )));
        }
        let size = size as usize;
        validate_batch(&rest[..size])?;
        out.push((pos, header));
        pos += size;
    }
    Ok(out)
}

pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamp LogAppendTime: maxTimestamp = now and the timestamp-type bit set.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    set_max_timestamp(batch, true, now_ms);
}

/// Set maxTimestamp and the timestamp type (LogAppendTime when `log_append_time`, else
/// CreateTime). Both are inside the CRC, so it is recomputed (as Kafka does).
pub fn set_max_timestamp(batch: &mut [u8], log_append_time: bool, max_timestamp_ms: i64) {
    let mut attributes = i16_at(batch, CRC_FROM) & !TIMESTAMP_TYPE_BIT;
    if log_append_time {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    batch[CRC_FROM..CRC_FROM + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// After the records section was replaced: set the codec bits of attributes to `codec`,
/// batchLength to the buffer's length, and recompute the CRC.
pub fn set_codec_and_length(batch: &mut [u8], codec: i16) {
    let attributes =
        (i16_at(batch, ATTRIBUTES_AT) & !COMPRESSION_MASK) | (codec & COMPRESSION_MASK);
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
    batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A minimal RecordBatch v2 encoder and decoder for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::log::records::{self, put_varlong};
    use bytes::{BufMut, BytesMut};

    #[derive(Debug, Clone)]
    pub struct TestBatch {
        pub values: Vec<Vec<u8>>,
        pub base_timestamp_ms: i64,
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        pub transactional: bool,
    }

    impl TestBatch {
        pub fn new(values: &[&str], timestamp_ms: i64) -> TestBatch {
            TestBatch {
                values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
                base_timestamp_ms: timestamp_ms,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: -1,
                base_sequence: -1,
                transactional: false,
            }
        }

        /// A batch of producer `producer_id`'s transaction (the transactional bit set).
        pub fn transactional(self, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
            TestBatch {
                transactional: true,
                ..self.idempotent(producer_id, epoch, base_sequence)
            }
        }

        pub fn idempotent(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
            self.producer_id = producer_id;
            self.producer_epoch = epoch;
            self.base_sequence = base_sequence;
            self
        }

        /// Encoded with baseOffset 0, as a producer sends it. Record i has timestamp
        /// base + i.
        pub fn encode(&self) -> BytesMut {
            let mut records = Vec::new();
            for (i, value) in self.values.iter().enumerate() {
                let mut body = Vec::new();
                body.push(0u8); // record attributes
                put_varlong(&mut body, i as i64); // timestamp delta
                put_varlong(&mut body, i as i64); // offset delta
                put_varlong(&mut body, -1); // null key
                put_varlong(&mut body, value.len() as i64);
                body.extend_from_slice(value);
                put_varlong(&mut body, 0); // no headers
                put_varlong(&mut records, body.len() as i64);
                records.extend_from_slice(&body);
            }
            let count = self.values.len() as i32;
            let mut b = BytesMut::new();
            b.put_i64(0);
            b.put_i32((HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32);
            b.put_i32(-1);
            b.put_i8(MAGIC_V2);
            b.put_u32(0);
            b.put_i16(if self.transactional {
                TRANSACTIONAL_BIT
            } else {
                0
            });
            b.put_i32(count - 1);
            b.put_i64(self.base_timestamp_ms);
            b.put_i64(self.base_timestamp_ms + i64::from(count.max(1) - 1));
            b.put_i64(self.producer_id);
            b.put_i16(self.producer_epoch);
            b.put_i32(self.base_sequence);
            b.put_i32(count);
            b.put_slice(&records);
            let crc = compute_crc(&b);
            b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
            b
        }
    }

    /// Decode whole batches (any codec) into (offset, value) pairs.
    pub fn decode_records(mut b: &[u8]) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let h = BatchHeader::parse_prefix(b).expect("whole batch header");
            let size = h.size_bytes() as usize;
            let batch = &b[..size];
            assert_eq!(
                compute_crc(batch),
                h.crc,
                "CRC of batch at {}",
                h.base_offset
            );
            let section = records::records_section(batch, &h).expect("records decompress");
            for r in records::parse_records(&h, &section).expect("records parse") {
                let value = String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap();
                out.push((h.base_offset + i64::from(r.offset_delta), value));
            }
            b = &b[size..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestBatch;
    use super::*;

    #[test]
    fn valid_batch_round_trips_header_fields() {
        let b = TestBatch::new(&["a", "b", "c"], 1000)
            .idempotent(7, 2, 40)
            .encode();
        let h = validate_client_records(&b, 1 << 20).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp_ms, 1002);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 2, 40)
        );
        assert_eq!(h.last_sequence(), 42);
    }

    #[test]
    fn corrupt_crc_is_rejected() {
        let mut b = TestBatch::new(&["hello"], 1).encode();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(
            validate_client_records(&b, 1 << 20),
            Err(AppendError::Corrupt(_))
        ));
    }

    #[test]
    fn rewriting_outside_the_crc_keeps_it_valid() {
        let mut b = TestBatch::new(&["x"], 5).encode();
        set_base_offset(&mut b, 99);
        set_partition_leader_epoch(&mut b, 3);
        let h = validate_batch(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (99, 3));
        set_log_append_time(&mut b, 777);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.max_timestamp_ms, 777);
        assert_ne!(h.attributes & TIMESTAMP_TYPE_BIT, 0);
    }

    /// `b` with `edit` applied and the CRC made to match again.
    fn edited(b: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = b.to_vec();
        edit(&mut b);
        let crc = compute_crc(&b);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn invalid_record(result: Result<BatchHeader, AppendError>, says: &str) {
        match result {
            Err(AppendError::InvalidRecord(m)) if m.contains(says) => {}
            other => panic!("expected INVALID_RECORD saying {says:?}, got {other:?}"),
        }
    }

    #[test]
    fn magic_other_than_two_is_an_invalid_record() {
        // Kafka's produce request check: v3+ requests carry magic 2 batches only.
        let b = TestBatch::new(&["x"], 5).encode();
        let old = edited(&b, |b| b[MAGIC_AT] = 1);
        invalid_record(validate_client_records(&old, 1 << 20), "magic 1");
    }

    #[test]
    fn two_batches_in_one_produce_are_rejected() {
        let mut b = TestBatch::new(&["x"], 5).encode();
        let second = TestBatch::new(&["y"], 6).encode();
        b.extend_from_slice(&second);
        invalid_record(
            validate_client_records(&b, 1 << 20),
            "more than one record batch",
        );
        // A follower fetch may carry several.
        assert_eq!(split_batches(&b).unwrap().len(), 2);
    }

    #[test]
    fn length_and_count_are_checked_against_the_buffer() {
        let b = TestBatch::new(&["x", "y"], 5).encode();
        invalid_record(
            validate_client_records(&b[..b.len() - 1], 1 << 20),
            "no whole record batch",
        );
        invalid_record(
            validate_client_records(&b[..30], 1 << 20),
            "no whole record batch",
        );
        let too_big = validate_client_records(&b, 10).unwrap_err();
        assert!(matches!(
            too_big,
            AppendError::MessageTooLarge { max: 10, .. }
        ));
        // At the limit the batch is accepted.
        validate_client_records(&b, b.len() as u32).unwrap();
        // batchLength below the header: damaged bytes, CORRUPT_MESSAGE.
        let mut short = b.to_vec();
        short[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&(MIN_BATCH_LENGTH - 1).to_be_bytes());
        assert!(matches!(
            validate_client_records(&short, 1 << 20),
            Err(AppendError::Corrupt(m)) if m.contains("below the header size")
        ));
    }

    #[test]
    fn header_rules_of_produced_batches_are_invalid_records() {
        let b = TestBatch::new(&["x", "y"], 5).encode();
        let count = |n: i32| edited(&b, |b| b[57..61].copy_from_slice(&n.to_be_bytes()));
        invalid_record(
            validate_client_records(&count(5), 1 << 20),
            "recordsCount 5 does not match lastOffsetDelta 1 + 1",
        );
        invalid_record(
            validate_client_records(&count(1), 1 << 20),
            "recordsCount 1 does not match",
        );
        invalid_record(
            validate_client_records(&count(0), 1 << 20),
            "recordsCount 0",
        );
        let delta = edited(&b, |b| b[23..27].copy_from_slice(&(-1i32).to_be_bytes()));
        invalid_record(
            validate_client_records(&delta, 1 << 20),
            "lastOffsetDelta -1",
        );
        let offset = edited(&b, |b| set_base_offset(b, 7));
        invalid_record(validate_client_records(&offset, 1 << 20), "baseOffset");
        let control = edited(&b, |b| b[CRC_FROM + 1] |= CONTROL_BIT as u8);
        invalid_record(validate_client_records(&control, 1 << 20), "control");
        let no_sequence = TestBatch::new(&["x"], 5).idempotent(3, 0, -1).encode();
        invalid_record(
            validate_client_records(&no_sequence, 1 << 20),
            "base sequence -1",
        );
        // The CRC is checked before the rules: a flipped count is damage, not a lie.
        let mut flipped = b.to_vec();
        flipped[60] ^= 1;
        assert!(matches!(
            validate_client_records(&flipped, 1 << 20),
            Err(AppendError::Corrupt(_))
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }
}
