//! The read path: whole batches as a file range for Fetch (sent with sendfile), the
//! offset for a timestamp (ListOffsets), and the leader epoch lookups of
//! OffsetForLeaderEpoch. Nothing here changes the log.

use std::io;
use std::sync::Arc;

use super::txn_index::AbortedTxn;
use super::{FileSlice, Log, ReadError, ReadInfo};

impl Log {
    /// Whole batches from `offset` on, at most `max_bytes` (but at least one batch when
    /// `min_one_batch`), never including a batch at or past `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ReadError> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset;
        if offset < log_start_offset || offset > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let nothing = ReadInfo {
            slice: None,
            next_offset: offset,
            log_start_offset,
            log_end_offset,
        };
        // Reads come from one segment: the first, from the one holding `offset`, that
        // has a batch ending at or after it.
        for segment in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..))
        {
            let segment = segment.1;
            let Some((start, first)) = segment.find_batch(offset)? else {
                continue;
            };
            if first.last_offset() >= max_offset {
                return Ok(nothing);
            }
            let first_end = start + first.size_bytes();
            // The batch holding max_offset starts where readable data ends.
            let below_max_offset = if segment.next_offset <= max_offset {
                segment.size_bytes
            } else {
                segment
                    .find_batch(max_offset)?
                    .map_or(segment.size_bytes, |(p, _)| p)
            };
            let limit = below_max_offset.min(start.saturating_add(max_bytes as u64));
            let end = if limit < first_end {
                if !min_one_batch {
                    return Ok(nothing);
                }
                first_end
            } else {
                segment.boundary_at_or_below(limit)?
            };
            debug_assert!(end >= first_end && end <= segment.size_bytes);
            let next_offset = if end == segment.size_bytes {
                segment.next_offset
            } else {
                segment
                    .read_header(end)?
                    .map_or(segment.next_offset, |h| h.base_offset)
            };
            let len = usize::try_from(end - start).map_err(|_| {
                ReadError::Io(io::Error::other("read range exceeds the address space"))
            })?;
            return Ok(ReadInfo {
                slice: Some(FileSlice {
                    file: Arc::clone(segment.log.get()?.file()),
                    position: start,
                    len,
                }),
                next_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        Ok(nothing)
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` must name
    /// (KIP-98): every one with data in the range, found in the indexes of the
    /// segments from the one holding `from` on (a transaction's marker may lie far
    /// past its data), until an entry shows none could be left.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for (_, segment) in self.segments.range(first..) {
            if segment.txn_index.collect(from, upper, &mut out) {
                break;
            }
        }
        out
    }

    /// The first offset whose batch max timestamp is at least `timestamp_ms`, with
    /// that timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> std::io::Result<Option<(i64, i64)>> {
        for segment in self.segments.values() {
            if segment.max_timestamp_ms < timestamp_ms {
                continue;
            }
            if let Some((offset, ts)) = segment.find_by_timestamp(timestamp_ms)? {
                return Ok(Some((offset.max(self.log_start_offset), ts)));
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    ///
    /// Batch granularity: the offset is the last offset of the batch holding the
    /// largest timestamp (finding the exact record would need per-record work).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp_ms >= 0
                && best.is_none_or(|(_, ts)| segment.max_timestamp_ms > ts)
            {
                best = Some((segment.offset_of_max_timestamp, segment.max_timestamp_ms));
            }
        }
        best
    }

    /// The leader epoch of the last batch in the log (-1 when empty).
    pub fn latest_epoch(&self) -> i32 {
        self.epoch_cache.latest_epoch().unwrap_or(-1)
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` this log knows and the offset
    /// where it ends (log end offset for the latest epoch). `None` is Kafka's
    /// UNDEFINED_EPOCH/UNDEFINED_EPOCH_OFFSET answer.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epoch_cache
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader epoch that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epoch_cache.epoch_for_offset(offset)
    }
}
