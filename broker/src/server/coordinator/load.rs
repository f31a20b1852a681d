//! The group records' life in `__consumer_offsets`: encoding them into batches (plain,
//! or transactional for a TxnOffsetCommit) and reading a partition back at load, with
//! the transaction markers found between them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::super::partition::Partition;
use crate::group::GroupRecord;
use crate::log::batch::{increment_sequence, BatchHeader};
use crate::log::txn::EndTxnMarker;
use crate::log::AppendError;

/// Bytes of records per appended batch, well under the default max.message.bytes.
const BATCH_BYTES: usize = 512 * 1024;

/// The producer a TxnOffsetCommit's records are written for: its transactional
/// batches carry its id and epoch, so the log fences a stale epoch, and sequences that
/// follow its previous batches on the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Encode `records` as uncompressed RecordBatch v2 batches of at most
/// [`BATCH_BYTES`], stamped `now`, and hand each to `write` with the number of records
/// it holds. Without `producer` the batches have no producer id; with it they are the
/// producer's transactional batches, sequences running on from its base sequence.
pub(super) fn append_with(
    records: &[GroupRecord],
    now: i64,
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
        .map_err(|e| AppendError::Corrupt(format!("encoding group records: {e}")))?;
        let n = batch.len();
        batch.clear();
        write(buf, n)
    };
    for (i, r) in records.iter().enumerate() {
        let (key, value) = r.encode();
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
            timestamp: now,
            key: Some(key),
            value,
            headers: Default::default(),
        });
    }
    flush(&mut pending)
}

/// What a load reads back from the partition, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LoadEvent {
    /// A record outside any transaction.
    Record(GroupRecord),
    /// A record of `producer_id`'s transactional batch (a TxnOffsetCommit).
    Txn {
        producer_id: i64,
        record: GroupRecord,
    },
    /// The marker that ended `producer_id`'s transaction.
    Marker { producer_id: i64, commit: bool },
}

/// Replay every record and transaction marker of `partition` up to its log end offset
/// into `apply`; returns how many group records were read. Reads past the high
/// watermark on purpose: when a broker becomes leader, its whole log is committed.
pub(super) fn read_partition(
    partition: &Partition,
    mut apply: impl FnMut(LoadEvent),
) -> Result<usize, String> {
    let what = |e: &dyn std::fmt::Display| {
        format!(
            "reading {} partition {}: {e}",
            partition.topic, partition.index
        )
    };
    let mut offset = partition.with_log(|l| l.log_start_offset());
    let end = partition.with_log(|l| l.log_end_offset());
    let mut count = 0;
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
                    Ok(Some(m)) => apply(LoadEvent::Marker {
                        producer_id: m.producer_id,
                        commit: m.commit,
                    }),
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
                for r in set.records {
                    if r.offset < offset {
                        continue;
                    }
                    let Some(key) = r.key else { continue };
                    match GroupRecord::decode(&key, r.value.as_deref()) {
                        Ok(record) => {
                            apply(if r.transactional {
                                LoadEvent::Txn {
                                    producer_id: r.producer_id,
                                    record,
                                }
                            } else {
                                LoadEvent::Record(record)
                            });
                            count += 1;
                        }
                        // Kafka skips records it does not understand rather than refuse
                        // to load the partition.
                        Err(e) => tracing::warn!(
                            partition = partition.index,
                            offset = r.offset,
                            error = %e,
                            "skipping unreadable group record"
                        ),
                    }
                }
            }
        }
        if next <= offset {
            return Err(what(&"no progress"));
        }
        offset = next;
    }
    Ok(count)
}
