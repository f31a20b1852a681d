//! The group records' life in `__consumer_offsets`: encoding them into batches (plain,
//! or transactional for a TxnOffsetCommit) and reading a partition back at load, with
//! the transaction markers found between them.

use bytes::BytesMut;

use super::super::internal_topic::{self, encode_batches, Entry};
use super::super::partition::Partition;
use crate::group::GroupRecord;
use crate::log::AppendError;

pub(super) use super::super::internal_topic::TxnProducer;

/// Encode `records` as batches (see [`encode_batches`]), stamped `now`, without a
/// producer or as `producer`'s transactional batches, and hand each to `write` with
/// the number of records it holds.
pub(super) fn append_with(
    records: &[GroupRecord],
    now: i64,
    producer: Option<TxnProducer>,
    write: impl FnMut(BytesMut, usize) -> Result<(), AppendError>,
) -> Result<(), AppendError> {
    encode_batches(
        records.iter().map(GroupRecord::encode),
        now,
        producer,
        write,
    )
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

/// Replay every group record and transaction marker of `partition` up to its log end
/// offset into `apply`; returns how many group records were read.
pub(super) fn read_partition(
    partition: &Partition,
    mut apply: impl FnMut(LoadEvent),
) -> Result<usize, String> {
    let mut count = 0;
    internal_topic::read_partition(partition, |entry| {
        match entry {
            Entry::Marker(m) => apply(LoadEvent::Marker {
                producer_id: m.producer_id,
                commit: m.commit,
            }),
            Entry::Record(r) => {
                let Some(key) = r.key else { return Ok(()) };
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
        Ok(())
    })?;
    Ok(count)
}
