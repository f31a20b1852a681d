//! Records in and out of RecordBatch v2.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::error::{Error, Result};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProduceRecord {
    /// The key (`None` is a null key).
    pub key: Option<Bytes>,
    /// The value (`None` is a null value: a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl ProduceRecord {
    /// A record with an optional key and a value, no headers, timestamped when produced.
    pub fn new(key: Option<impl Into<Bytes>>, value: impl Into<Bytes>) -> Self {
        ProduceRecord {
            key: key.map(Into::into),
            value: Some(value.into()),
            ..Default::default()
        }
    }
}

/// A record read by a fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedRecord {
    /// The record's offset in its partition.
    pub offset: i64,
    /// The timestamp in ms since the epoch.
    pub timestamp_ms: i64,
    /// Whether the timestamp is the create time or the broker's log-append time.
    pub timestamp_type: TimestampType,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Encodes `records` as one RecordBatch v2 (non-idempotent, non-transactional) with
/// offset deltas 0..n; the broker assigns the base offset. Empty input is an empty buffer.
pub(crate) fn encode_batch(
    records: &[ProduceRecord],
    compression: Compression,
    now_ms: i64,
) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever `offset - sequence` changes; keeping
            // it constant yields one batch whose base sequence is NO_SEQUENCE (-1), as a
            // non-idempotent batch must carry.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: r.timestamp_ms.unwrap_or(now_ms),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| Error::protocol("encoding record batch", e))?;
    Ok(buf.freeze())
}

/// Length of the batch header fields before and including `batchLength`.
const BATCH_PREFIX_BYTES: usize = 12;

/// Decodes the record batches of one fetched partition into records at offset
/// `from_offset` or later.
///
/// A fetch may end in a batch cut short at the size limit; that tail is ignored (the next
/// fetch returns it whole). A fetch may also start with a batch that begins before
/// `from_offset`: the broker returns whole batches, so records before it are skipped here.
/// Control records (transaction markers) are not user records and are skipped.
pub(crate) fn decode_batches(mut data: Bytes, from_offset: i64) -> Result<Vec<FetchedRecord>> {
    let mut out = Vec::new();
    while data.len() >= BATCH_PREFIX_BYTES {
        let batch_len = (&data[8..12]).get_i32();
        let Ok(batch_len) = usize::try_from(batch_len) else {
            return Err(Error::Protocol(format!("record batch length {batch_len}")));
        };
        let total = BATCH_PREFIX_BYTES + batch_len;
        if total > data.len() {
            break;
        }
        let mut batch = data.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| Error::protocol("decoding fetched record batch", e))?;
        out.extend(
            set.records
                .into_iter()
                .filter(|r| !r.control && r.offset >= from_offset)
                .map(|r| FetchedRecord {
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    timestamp_type: r.timestamp_type,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a batch and sets its base offset as a broker would on append.
    fn stored_batch(base_offset: i64, values: &[&str], compression: Compression) -> Bytes {
        let records: Vec<_> = values
            .iter()
            .map(|v| ProduceRecord {
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                ..ProduceRecord::new(Some(format!("k-{v}")), v.to_string())
            })
            .collect();
        let mut batch = BytesMut::from(&encode_batch(&records, compression, 1_000).unwrap()[..]);
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
        batch.freeze()
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = stored_batch(40, &["a", "b", "c"], codec);
            let records = decode_batches(batch, 0).unwrap();
            let got: Vec<_> = records
                .iter()
                .map(|r| (r.offset, r.value.clone().unwrap()))
                .collect();
            assert_eq!(
                got,
                vec![
                    (40, Bytes::from("a")),
                    (41, Bytes::from("b")),
                    (42, Bytes::from("c"))
                ],
                "{codec:?}"
            );
            assert_eq!(records[0].key.as_deref(), Some(&b"k-a"[..]));
            assert_eq!(records[0].timestamp_ms, 1_000);
            assert_eq!(
                records[0].headers,
                vec![("h".into(), Some(Bytes::from("x")))]
            );
        }
    }

    #[test]
    fn one_batch_without_producer_sequence() {
        let records = vec![ProduceRecord::new(None::<Bytes>, "v"); 5];
        let batch = encode_batch(&records, Compression::None, 1).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].record_count, 5);
        assert_eq!(info[0].base_sequence, NO_SEQUENCE);
        assert_eq!(info[0].producer_id, NO_PRODUCER_ID);
    }

    #[test]
    fn skips_records_before_fetch_offset_and_partial_tail() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&stored_batch(0, &["a", "b", "c"], Compression::None));
        data.extend_from_slice(&stored_batch(3, &["d", "e"], Compression::Lz4));
        let third = stored_batch(5, &["f"], Compression::None);
        // A fetch cut at its size limit ends inside the third batch.
        data.extend_from_slice(&third[..third.len() - 3]);
        let offsets: Vec<_> = decode_batches(data.freeze(), 1)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![1, 2, 3, 4]);
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let mut batch = BytesMut::from(&stored_batch(0, &["a"], Compression::None)[..]);
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(decode_batches(batch.freeze(), 0).is_err());
        let mut negative = BytesMut::from(&stored_batch(0, &["a"], Compression::None)[..]);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_batches(negative.freeze(), 0).is_err());
    }
}
