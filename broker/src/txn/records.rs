//! The records a transaction coordinator keeps in `__transaction_state`, in Kafka's own
//! schemas, so the topic reads the same as Kafka's to any tool that knows them. Each key
//! and value is prefixed by its int16 schema version; all integers are big-endian:
//!
//! ```text
//! TransactionLogKey   v0: transactional_id string
//! TransactionLogValue v0: producer_id int64, producer_epoch int16,
//!                         transaction_timeout_ms int32, transaction_status int8,
//!                         transaction_partitions nullable [topic string, partition_ids [int32]],
//!                         last_update_timestamp_ms int64, start_timestamp_ms int64
//! TransactionLogValue v1: the same fields in the flexible encoding (compact strings and
//!                         arrays, a tagged-field section after each struct) with tags
//!                         0 previous_producer_id int64 (default -1),
//!                         1 next_producer_id int64 (default -1),
//!                         2 client_transaction_version int16 (default 0)
//! ```
//!
//! A null value is a tombstone: the transactional id expired. Fjord writes value v0, as
//! Kafka does for clients below transaction version 2 (KIP-890 part 2 is not served);
//! both versions are read because a log written by Kafka may hold either. Unknown tags
//! are skipped, as the flexible encoding requires. Every length and count is checked
//! against the bytes that remain before anything is allocated: the log is read back
//! after a crash and its bytes are not trusted.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::types::{TopicPartition, TxnState};

/// The longest string the classic encoding can hold (int16 length).
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// A malformed `__transaction_state` record; the message names the field and the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    #[error("transaction log {what}: needs {needed} bytes, {remaining} remain")]
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("transaction log key version {0} is not 0")]
    KeyVersion(i16),
    #[error("transaction log value version {0} is not 0 or 1")]
    ValueVersion(i16),
    #[error("transaction log {what}: length {len} is negative or out of range")]
    Length { what: &'static str, len: i64 },
    #[error("transaction log {0} is not UTF-8")]
    Utf8(&'static str),
    #[error("transaction log {0} is null where a value is required")]
    Null(&'static str),
    #[error("transaction log status {0} is not a transaction state")]
    Status(i8),
    #[error("transaction log {what}: varint longer than {max} bytes")]
    Varint { what: &'static str, max: usize },
    #[error("transaction log {what}: {extra} bytes left after the record")]
    Trailing { what: &'static str, extra: usize },
}

type Result<T, E = TxnRecordError> = std::result::Result<T, E>;

/// TransactionLogValue: one transactional id's state as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    /// The producer id before the last rotation (v1 tag 0; -1 in v0).
    pub previous_producer_id: i64,
    /// v1 tag 1; used by transaction version 2 only, kept as read.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Always empty for Empty (Kafka writes null there and ignores what it reads).
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_ms: i64,
    /// -1 when no transaction has started.
    pub start_ms: i64,
    /// v1 tag 2.
    pub client_transaction_version: i16,
}

/// One record of `__transaction_state`; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnValue>,
}

impl TxnRecord {
    /// Key and value (None for a tombstone), value in v0 as Fjord writes it.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        self.encode_version(0)
    }

    /// Key and value with the value in schema `version` (0, or 1 for the flexible form).
    /// Strings longer than [`MAX_STRING_BYTES`] never get here: the coordinator refuses
    /// such ids and topics before it makes a record.
    pub fn encode_version(&self, version: i16) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        key.put_i16(0);
        put_str(&mut key, &self.transactional_id);
        let value = self.value.as_ref().map(|v| {
            let mut b = BytesMut::new();
            b.put_i16(version);
            if version == 0 {
                encode_v0(&mut b, v);
            } else {
                encode_v1(&mut b, v);
            }
            b.freeze()
        });
        (key.freeze(), value)
    }

    /// Decode one record read back from the log.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord> {
        let mut k = Reader(key);
        let version = k.i16("key version")?;
        if version != 0 {
            return Err(TxnRecordError::KeyVersion(version));
        }
        let transactional_id = k.string("transactional id")?;
        k.end("key")?;
        let value = match value {
            None => None,
            Some(v) => Some(decode_value(v)?),
        };
        Ok(TxnRecord {
            transactional_id,
            value,
        })
    }
}

/// Topics in name order, each with its partitions ascending: the set's order.
fn grouped(partitions: &BTreeSet<TopicPartition>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match out.last_mut() {
            Some((t, ids)) if *t == tp.topic => ids.push(tp.partition),
            _ => out.push((tp.topic.as_str(), vec![tp.partition])),
        }
    }
    out
}

fn encode_v0(b: &mut BytesMut, v: &TxnValue) {
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.state.id());
    if v.state == TxnState::Empty {
        b.put_i32(-1);
    } else {
        let topics = grouped(&v.partitions);
        b.put_i32(topics.len() as i32);
        for (topic, ids) in topics {
            put_str(b, topic);
            b.put_i32(ids.len() as i32);
            ids.iter().for_each(|p| b.put_i32(*p));
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
}

fn encode_v1(b: &mut BytesMut, v: &TxnValue) {
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.state.id());
    if v.state == TxnState::Empty {
        put_uvarint(b, 0);
    } else {
        let topics = grouped(&v.partitions);
        put_uvarint(b, topics.len() as u64 + 1);
        for (topic, ids) in topics {
            put_uvarint(b, topic.len() as u64 + 1);
            b.put_slice(topic.as_bytes());
            put_uvarint(b, ids.len() as u64 + 1);
            ids.iter().for_each(|p| b.put_i32(*p));
            put_uvarint(b, 0); // the partition entry's tagged fields
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    // Tagged fields are written only when they differ from their defaults, by tag.
    let mut tags = BytesMut::new();
    let mut count = 0u64;
    if v.previous_producer_id != -1 {
        count += 1;
        put_uvarint(&mut tags, 0);
        put_uvarint(&mut tags, 8);
        tags.put_i64(v.previous_producer_id);
    }
    if v.next_producer_id != -1 {
        count += 1;
        put_uvarint(&mut tags, 1);
        put_uvarint(&mut tags, 8);
        tags.put_i64(v.next_producer_id);
    }
    if v.client_transaction_version != 0 {
        count += 1;
        put_uvarint(&mut tags, 2);
        put_uvarint(&mut tags, 2);
        tags.put_i16(v.client_transaction_version);
    }
    put_uvarint(b, count);
    b.put_slice(&tags);
}

fn decode_value(v: &[u8]) -> Result<TxnValue> {
    let mut r = Reader(v);
    let version = r.i16("value version")?;
    let flexible = match version {
        0 => false,
        1 => true,
        other => return Err(TxnRecordError::ValueVersion(other)),
    };
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let timeout_ms = r.i32("transaction timeout")?;
    let status = r.i8("transaction status")?;
    let state = TxnState::from_id(status).ok_or(TxnRecordError::Status(status))?;
    let mut partitions = BTreeSet::new();
    // Each topic entry takes at least 6 bytes (v0) or 3 bytes (v1), each partition 4.
    let topics = if flexible {
        r.compact_len("partitions", 3)?
    } else {
        r.array_len("partitions", 6)?
    };
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            r.compact_string("topic")?
        } else {
            r.string("topic")?
        };
        let ids = if flexible {
            r.compact_len("partition ids", 4)?
        } else {
            r.array_len("partition ids", 4)?
        }
        .ok_or(TxnRecordError::Null("partition ids"))?;
        for _ in 0..ids {
            partitions.insert(TopicPartition::new(&topic, r.i32("partition id")?));
        }
        if flexible {
            r.skip_tagged_fields(|_, _| Ok(()))?;
        }
    }
    let last_update_ms = r.i64("last update timestamp")?;
    let start_ms = r.i64("start timestamp")?;
    let mut previous_producer_id = -1;
    let mut next_producer_id = -1;
    let mut client_transaction_version = 0;
    if flexible {
        r.skip_tagged_fields(|tag, data| {
            let mut field = Reader(data);
            match tag {
                0 => previous_producer_id = field.i64("previous producer id")?,
                1 => next_producer_id = field.i64("next producer id")?,
                2 => client_transaction_version = field.i16("client transaction version")?,
                _ => {}
            }
            Ok(())
        })?;
    }
    r.end("value")?;
    if state == TxnState::Empty {
        // Kafka ignores the partitions of an Empty record; so does Fjord.
        partitions.clear();
    }
    Ok(TxnValue {
        producer_id,
        previous_producer_id,
        next_producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        client_transaction_version,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    debug_assert!(s.len() <= MAX_STRING_BYTES, "string of {} bytes", s.len());
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A bounds-checked reader over one key or value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn need(&self, needed: usize, what: &'static str) -> Result<()> {
        if self.0.len() < needed {
            return Err(TxnRecordError::Truncated {
                what,
                needed,
                remaining: self.0.len(),
            });
        }
        Ok(())
    }
    fn i8(&mut self, what: &'static str) -> Result<i8> {
        self.need(1, what)?;
        Ok(self.0.get_i8())
    }
    fn i16(&mut self, what: &'static str) -> Result<i16> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &'static str) -> Result<i32> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self, what: &'static str) -> Result<i64> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn uvarint(&mut self, what: &'static str) -> Result<u64> {
        // A u32 needs at most 5 bytes; lengths and tags here are u32 in Kafka.
        const MAX: usize = 5;
        let mut v = 0u64;
        for i in 0..MAX {
            let byte = self.i8(what)? as u8;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TxnRecordError::Varint { what, max: MAX })
    }
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8]> {
        self.need(len, what)?;
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
    fn utf8(&mut self, len: usize, what: &'static str) -> Result<String> {
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| TxnRecordError::Utf8(what))
    }
    fn string(&mut self, what: &'static str) -> Result<String> {
        let len = self.i16(what)?;
        if len < 0 {
            return Err(TxnRecordError::Null(what));
        }
        self.utf8(len as usize, what)
    }
    fn compact_string(&mut self, what: &'static str) -> Result<String> {
        match self.uvarint(what)? {
            0 => Err(TxnRecordError::Null(what)),
            n => self.utf8((n - 1) as usize, what),
        }
    }
    /// A classic array count (-1 is null), no larger than the bytes left can hold.
    fn array_len(&mut self, what: &'static str, min_entry: usize) -> Result<Option<usize>> {
        let n = self.i32(what)?;
        if n == -1 {
            return Ok(None);
        }
        self.check_count(what, i64::from(n), min_entry).map(Some)
    }
    /// A compact array count (0 is null).
    fn compact_len(&mut self, what: &'static str, min_entry: usize) -> Result<Option<usize>> {
        match self.uvarint(what)? {
            0 => Ok(None),
            n => self.check_count(what, n as i64 - 1, min_entry).map(Some),
        }
    }
    fn check_count(&self, what: &'static str, n: i64, min_entry: usize) -> Result<usize> {
        if n < 0 || n as u64 > (self.0.len() / min_entry) as u64 {
            return Err(TxnRecordError::Length { what, len: n });
        }
        Ok(n as usize)
    }
    /// A tagged-field section: each (tag, data) goes to `field`, which may ignore it.
    fn skip_tagged_fields(
        &mut self,
        mut field: impl FnMut(u64, &'a [u8]) -> Result<()>,
    ) -> Result<()> {
        let count = self.uvarint("tagged field count")?;
        // Each tagged field takes at least 2 bytes (tag and size).
        self.check_count("tagged fields", count as i64, 2)?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")? as usize;
            let data = self.take(size, "tagged field")?;
            field(tag, data)?;
        }
        Ok(())
    }
    fn end(&self, what: &'static str) -> Result<()> {
        if !self.0.is_empty() {
            return Err(TxnRecordError::Trailing {
                what,
                extra: self.0.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState) -> TxnValue {
        TxnValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: [
                TopicPartition::new("orders", 1),
                TopicPartition::new("orders", 0),
                TopicPartition::new("audit", 7),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_and_v0_value_are_kafkas_bytes() {
        let record = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(value(TxnState::Ongoing)),
        };
        let (k, v) = record.encode();
        assert_eq!(&k[..], &[0, 0, 0, 2, b't', b'x']);
        let v = v.unwrap();
        let mut expected = vec![0, 0]; // value version 0
        expected.extend_from_slice(&1000i64.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(1); // Ongoing
        expected.extend_from_slice(&2i32.to_be_bytes()); // two topics, by name
        expected.extend_from_slice(&[0, 5, b'a', b'u', b'd', b'i', b't', 0, 0, 0, 1, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&v[..], &expected[..]);
        assert_eq!(TxnRecord::decode(&k, Some(&v[..])).unwrap(), record);
    }

    #[test]
    fn v1_value_is_the_bytes_kafka_writes() {
        // Kafka 4.4's TransactionLogValue v1 (MessageUtil.toVersionPrefixedBytes) for
        // these fields, with PreviousProducerId 999 and ClientTransactionVersion 2.
        const KAFKA_V1: &str = "000100000000000003e800030000ea600203066175646974020000000700\
            076f7264657273030000000000000001000000018bcfe5687b0000018bcfe5680002000800000000\
            000003e702020002";
        let kafka: Vec<u8> = (0..KAFKA_V1.len() / 2)
            .map(|i| u8::from_str_radix(&KAFKA_V1[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut v = value(TxnState::PrepareCommit);
        v.previous_producer_id = 999;
        v.client_transaction_version = 2;
        let record = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(v),
        };
        let (k, ours) = record.encode_version(1);
        assert_eq!(ours.as_deref(), Some(&kafka[..]));
        assert_eq!(TxnRecord::decode(&k, Some(&kafka[..])).unwrap(), record);
    }

    #[test]
    fn empty_state_writes_null_partitions_and_tombstones_have_no_value() {
        let mut empty = value(TxnState::Empty);
        empty.partitions.clear();
        empty.start_ms = -1;
        let record = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(empty),
        };
        let (k, v) = record.encode();
        let v = v.unwrap();
        // version, pid, epoch, timeout, status, then a null array (-1).
        assert_eq!(&v[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &[0xff; 4]);
        assert_eq!(TxnRecord::decode(&k, Some(&v[..])).unwrap(), record);
        let tombstone = TxnRecord {
            transactional_id: "tx".into(),
            value: None,
        };
        let (k, v) = tombstone.encode();
        assert!(v.is_none());
        assert_eq!(TxnRecord::decode(&k, None).unwrap(), tombstone);
    }

    #[test]
    fn v1_round_trips_with_its_tagged_fields_and_skips_unknown_tags() {
        let mut v1 = value(TxnState::PrepareCommit);
        v1.previous_producer_id = 999;
        v1.client_transaction_version = 2;
        let record = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(v1),
        };
        let (k, v) = record.encode_version(1);
        assert_eq!(TxnRecord::decode(&k, v.as_deref()).unwrap(), record);

        // The same value with an extra tag 9 of 3 bytes at the end: still read.
        let mut plain = value(TxnState::Ongoing);
        plain.partitions.clear();
        let (_, v) = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(plain.clone()),
        }
        .encode_version(1);
        let mut v = v.unwrap().to_vec();
        assert_eq!(v.pop(), Some(0), "no tags were written");
        v.extend_from_slice(&[1, 9, 3, 1, 2, 3]);
        assert_eq!(
            TxnRecord::decode(&k, Some(&v[..])).unwrap().value,
            Some(plain)
        );
    }

    #[test]
    fn every_truncation_and_bad_field_is_an_error_not_a_panic() {
        for version in [0, 1] {
            let (k, v) = TxnRecord {
                transactional_id: "tx".into(),
                value: Some(value(TxnState::PrepareAbort)),
            }
            .encode_version(version);
            let v = v.unwrap();
            for cut in 0..v.len() {
                assert!(
                    TxnRecord::decode(&k, Some(&v[..cut])).is_err(),
                    "v{version} cut at {cut}"
                );
            }
            let mut longer = v.to_vec();
            longer.push(0);
            assert!(matches!(
                TxnRecord::decode(&k, Some(&longer[..])),
                Err(TxnRecordError::Trailing { .. })
            ));
        }
        assert_eq!(
            TxnRecord::decode(&[0, 1, 0, 0], None),
            Err(TxnRecordError::KeyVersion(1))
        );
        assert!(TxnRecord::decode(&[0, 0, 0, 5, b'a'], None).is_err());
        assert!(
            TxnRecord::decode(&[0, 0, 0, 1, 0xff], None).is_err(),
            "not UTF-8"
        );
        // A status byte outside Kafka's states.
        let (k, v) = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(value(TxnState::Ongoing)),
        }
        .encode();
        let mut bad = v.unwrap().to_vec();
        bad[16] = 42;
        assert_eq!(
            TxnRecord::decode(&k, Some(&bad[..])),
            Err(TxnRecordError::Status(42))
        );
        // A partition count far beyond the bytes that remain allocates nothing.
        let mut huge = value(TxnState::Ongoing);
        huge.partitions.clear();
        let (_, v) = TxnRecord {
            transactional_id: "tx".into(),
            value: Some(huge),
        }
        .encode();
        let mut huge = v.unwrap().to_vec();
        huge[17..21].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
        assert!(matches!(
            TxnRecord::decode(&k, Some(&huge[..])),
            Err(TxnRecordError::Length { .. })
        ));
        // A varint that never ends.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&[0; 15]);
        v1.extend_from_slice(&[0x80; 6]);
        assert!(TxnRecord::decode(&k, Some(&v1[..])).is_err());
    }
}
