//! Transactions on a partition (KIP-98): a producer's transactional appends, the
//! markers that end its transactions (replicated like any acks=all append), and the
//! reads that stop at the last stable offset.

use bytes::Bytes;

use super::{Acks, Appended, Partition};
use crate::log::txn::EndTxnMarker;
use crate::log::txn_index::AbortedTxn;
use crate::log::{AppendError, ReadError, ReadInfo};

/// A consumer's read ([`Partition::read_isolated`]).
pub struct IsolatedRead {
    pub info: ReadInfo,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// read_committed: the aborted transactions the records returned overlap.
    pub aborted: Vec<AbortedTxn>,
}

impl Partition {
    /// [`Partition::append_produce`] for a producer in a transaction (a request with a
    /// transactional id the coordinator knows): its transactional batch opens or
    /// continues its transaction, which holds the last stable offset until the marker.
    pub fn append_transactional(
        &self,
        records: Bytes,
        acks: Acks,
    ) -> Result<Appended, AppendError> {
        self.append_as_leader(acks, |log, epoch, now_ms, _| {
            log.append_transactional_as_leader(records, epoch, now_ms)
        })
    }

    /// Write the marker that ends a producer's transaction (WriteTxnMarkers),
    /// replicated as an acks=all append: [`Appended::replicated`] completes when the
    /// ISR holds it, and with it the transaction is stable. A marker with an older
    /// producer epoch is refused (INVALID_PRODUCER_EPOCH), one from an older
    /// coordinator too (TRANSACTION_COORDINATOR_FENCED); see
    /// [`Log::append_txn_marker`](crate::log::Log::append_txn_marker). Syncs in line when `flush.messages` calls for it.
    pub fn append_txn_marker(
        &self,
        marker: &EndTxnMarker,
        deadline_ms: i64,
    ) -> Result<Appended, AppendError> {
        let appended =
            self.append_as_leader(Acks::All { deadline_ms }, |log, epoch, now_ms, hw| {
                log.on_high_watermark(hw);
                log.append_txn_marker(marker, epoch, now_ms)
                    .map(|(info, _)| info)
            })?;
        if appended.flush_due {
            self.log.write().flush(self.clock.wall_ms())?;
        }
        Ok(appended)
    }

    /// The last stable offset: where read_committed reads stop (KIP-98).
    pub fn last_stable_offset(&self) -> i64 {
        self.stable_offsets().1
    }

    /// A consumer's read: whole batches from `offset`, below the high watermark, or
    /// with `read_committed` below the last stable offset and with the aborted
    /// transactions the batches overlap (KIP-98). The offsets are those the read saw.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        read_committed: bool,
    ) -> Result<IsolatedRead, ReadError> {
        let high_watermark = self.high_watermark();
        let log = self.log.read();
        let last_stable_offset = log.last_stable_offset(high_watermark);
        let max_offset = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        let info = log.read(offset, max_bytes, max_offset, min_one_batch)?;
        let aborted = match &info.slice {
            Some(_) if read_committed => log.aborted_transactions(offset, info.next_offset),
            _ => Vec::new(),
        };
        Ok(IsolatedRead {
            info,
            high_watermark,
            last_stable_offset,
            aborted,
        })
    }

    /// (high watermark, last stable offset), read together.
    pub fn stable_offsets(&self) -> (i64, i64) {
        let high_watermark = self.high_watermark();
        (
            high_watermark,
            self.log.read().last_stable_offset(high_watermark),
        )
    }
}
