//! The internal topics coordinators keep their state in (`__consumer_offsets`,
//! `__transaction_state`; created on first use by `internal_topic_create`), written as
//! key/value records in uncompressed RecordBatch v2 batches without a producer id,
//! read back in offset order when a broker becomes a partition's leader.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::partition::Partition;
use crate::log::batch::{increment_sequence, BatchHeader};
use crate::log::txn::EndTxnMarker;
use crate::log::AppendError;

/// Bytes of records per appended batch, well under the default max.message.bytes.
pub const BATCH_BYTES: usize = 512 * 1024;

/// The producer whose transactional batches carry a coordinator's records (a
/// TxnOffsetCommit's offsets): its id and epoch, so the log fences a stale epoch, and
/// sequences that follow its previous batches on the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Encode `records` (key, value; None is a tombstone) stamped `wall_ms` as
/// uncompressed RecordBatch v2 batches of at most [`BATCH_BYTES`] and hand each to
/// `write` with the number of records it holds. Without `producer` the batches have no
/// producer id; with it they are the producer's transactional batches, sequences
/// running on from its base sequence.
pub fn encode_batches(
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    wall_ms: i64,
    producer: Option<TxnProducer>,
    mut write: impl FnMut(BytesMut, usize) -> Result<(), AppendError>,
) -> Result<(), AppendError> {
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut flush = |batch: &mut Vec<Record>| -> Result<(), AppendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            batch.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| AppendError::Corrupt(format!("encoding coordinator records: {e}")))?;
        let n = batch.len();
        batch.clear();
        write(buf, n)
    };
    for (i, (key, value)) in records.into_iter().enumerate() {
        let size = key.len() + value.as_ref().map_or(0, Bytes::len) + 32;
        if pending_bytes + size > BATCH_BYTES {
            flush(&mut pending)?;
            pending_bytes = 0;
        }
        pending_bytes += size;
        let offset = i64::try_from(pending.len()).unwrap_or(i64::MAX);
        // The encoder keeps records in one batch only while offset - sequence is
        // constant; the batch's base sequence is its first record's. Without a
        // producer that is -1, which the log requires of a batch without producer id.
        let (producer_id, producer_epoch, sequence) = match producer {
            None => (-1, -1, i32::try_from(offset).unwrap_or(i32::MAX) - 1),
            Some(p) => (
                p.producer_id,
                p.producer_epoch,
                increment_sequence(p.base_sequence, i32::try_from(i).unwrap_or(i32::MAX)),
            ),
        };
        pending.push(Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence,
            timestamp: wall_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        });
    }
    flush(&mut pending)
}

/// What a partition holds, in log order, as a load reads it back.
#[derive(Debug)]
pub enum Entry {
    /// A data record (transactional ones carry their producer id).
    Record(Record),
    /// The marker that ended a producer's transaction.
    Marker(EndTxnMarker),
}

/// Hand every record and transaction marker of `partition`, from its log start to its
/// log end offset, to `apply` in offset order. Reads past the high watermark on
/// purpose: when a broker becomes leader, its whole log is committed. Does file I/O.
pub fn read_partition(
    partition: &Partition,
    mut apply: impl FnMut(Entry) -> Result<(), String>,
) -> Result<(), String> {
    let what = |e: &dyn std::fmt::Display| {
        format!(
            "reading {} partition {}: {e}",
            partition.topic, partition.index
        )
    };
    let mut offset = partition.with_log(|l| l.log_start_offset());
    let end = partition.with_log(|l| l.log_end_offset());
    while offset < end {
        let info = partition
            .with_log(|l| l.read(offset, 1 << 20, end, true))
            .map_err(|e| what(&e))?;
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_bytes().map_err(|e| what(&e))?;
        // Batch by batch, by their headers, so a batch emptied by compaction still
        // moves the read on and a control batch is told from a data batch.
        let mut next = offset;
        let mut at = 0usize;
        while let Some(h) = BatchHeader::parse_prefix(&bytes[at..]) {
            let size = usize::try_from(h.size_bytes()).unwrap_or(usize::MAX);
            if size > bytes.len() - at {
                break;
            }
            let batch = bytes.slice(at..at + size);
            at += size;
            next = next.max(h.last_offset() + 1);
            if h.last_offset() < offset {
                continue;
            }
            if h.is_control() {
                match EndTxnMarker::parse(&batch) {
                    Ok(Some(m)) => apply(Entry::Marker(m)).map_err(|e| what(&e))?,
                    // A control record type this broker does not know: skipped, as
                    // Kafka and every client skip it.
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        partition = partition.index,
                        offset = h.base_offset,
                        error = %e,
                        "skipping unreadable transaction marker"
                    ),
                }
                continue;
            }
            let mut buf = batch;
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| what(&e))?;
            for set in sets {
                for r in set.records.into_iter().filter(|r| r.offset >= offset) {
                    apply(Entry::Record(r)).map_err(|e| what(&e))?;
                }
            }
        }
        if next <= offset {
            return Err(what(&"no progress"));
        }
        offset = next;
    }
    Ok(())
}
