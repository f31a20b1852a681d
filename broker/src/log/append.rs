//! The write path: a leader's append (offsets, epochs and timestamps assigned, the
//! batch validated, idempotent retries answered from producer state), a transaction
//! marker written by the leader, a follower's append (kept as the leader wrote it), and
//! the roll to a new segment that any may trigger. Everything that adds data to the log
//! goes through `write_batches`, which applies each batch to the producer state in log
//! order, so leader, follower and replay agree on the open transactions.

use std::io;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchHeader};
use super::producer_state::{BatchMetadata, LeaderCheck, ProducerStateManager};
use super::recompress::recompress;
use super::segment::{self, Segment};
use super::txn::{CompletedTxn, EndTxnMarker};
use super::txn_index::AbortedTxn;
use super::{validate, AppendError, AppendInfo, Log, TimestampType};

impl Log {
    /// Append the record batches of one produce request as leader, with one write.
    /// Offsets and `partitionLeaderEpoch` are assigned here; a retried idempotent batch
    /// returns its original offsets without writing. Every record is checked first
    /// (`validate`). The batch bytes are not copied unless maxTimestamp is restamped
    /// (LogAppendTime, or a CreateTime maxTimestamp other than the largest record
    /// timestamp): `records` may be a slice of the request.
    ///
    /// Transactional batches are refused here (UNSUPPORTED_FOR_MESSAGE_FORMAT): only a
    /// request whose transactional id the coordinator knows may carry them, see
    /// [`Log::append_transactional_as_leader`].
    pub fn append_as_leader(
        &mut self,
        records: impl Into<Bytes>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.append_client(records.into(), leader_epoch, now_ms, false)
    }

    /// [`Log::append_as_leader`] for a producer in a transaction: a transactional batch
    /// opens the producer's transaction (or continues it), which holds the last stable
    /// offset until its marker is written.
    pub fn append_transactional_as_leader(
        &mut self,
        records: impl Into<Bytes>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        self.append_client(records.into(), leader_epoch, now_ms, true)
    }

    fn append_client(
        &mut self,
        records: Bytes,
        leader_epoch: i32,
        now_ms: i64,
        transactions_allowed: bool,
    ) -> Result<AppendInfo, AppendError> {
        let mut valid = validate::validate_produce(&records, &self.config, now_ms)?;
        if valid.header.is_transactional() {
            if !transactions_allowed {
                return Err(AppendError::Unsupported(
                    "transactional batches outside a transactional produce request".into(),
                ));
            }
            if !valid.header.is_idempotent() {
                return Err(AppendError::InvalidRecord(
                    "transactional batch without a producer id".into(),
                ));
            }
        }
        let records = match self.config.compression {
            Some(target) => {
                match recompress(
                    &records,
                    &valid.header,
                    target,
                    self.config.max_message_bytes,
                )? {
                    Some((rewritten, header)) => {
                        valid.header = header;
                        rewritten
                    }
                    None => records,
                }
            }
            None => records,
        };
        let header = valid.header;
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        if header.is_idempotent() {
            let check = self.producers.check_leader_append(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence(),
            )?;
            if let LeaderCheck::Duplicate(original) = check {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if log_append_time {
                        original.timestamp_ms
                    } else {
                        -1
                    },
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
        }

        let base_offset = self.log_end_offset();
        let mut header = BatchHeader {
            base_offset,
            partition_leader_epoch: leader_epoch,
            ..header
        };
        // The two broker-assigned fields (baseOffset, partitionLeaderEpoch) sit in the
        // first bytes and outside the CRC: they are written from a patched copy of that
        // prefix, the rest straight from the request buffer.
        let mut prefix = [0u8; batch::BROKER_ASSIGNED_PREFIX_BYTES];
        let stamped;
        // LogAppendTime, or (as Kafka does) a CreateTime maxTimestamp that is not the
        // largest record timestamp, changes fields inside the CRC: restamp a copy.
        let restamp = if log_append_time {
            Some((true, now_ms))
        } else {
            valid
                .needs_restamp(self.config.timestamp_type)
                .then_some((false, valid.max_timestamp_ms))
        };
        let parts: [&[u8]; 2] = if let Some((append_time, max_timestamp_ms)) = restamp {
            let mut copy = BytesMut::from(&records[..]);
            batch::set_base_offset(&mut copy, base_offset);
            batch::set_partition_leader_epoch(&mut copy, leader_epoch);
            batch::set_max_timestamp(&mut copy, append_time, max_timestamp_ms);
            header.max_timestamp_ms = max_timestamp_ms;
            header.attributes &= !batch::TIMESTAMP_TYPE_BIT;
            if append_time {
                header.attributes |= batch::TIMESTAMP_TYPE_BIT;
            }
            stamped = copy;
            [&stamped[..], &[]]
        } else {
            prefix.copy_from_slice(&records[..batch::BROKER_ASSIGNED_PREFIX_BYTES]);
            batch::set_base_offset(&mut prefix, base_offset);
            batch::set_partition_leader_epoch(&mut prefix, leader_epoch);
            [&prefix, &records[batch::BROKER_ASSIGNED_PREFIX_BYTES..]]
        };
        self.write_batches(&parts, &[(0, header)], &[], now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Append batches replicated from the leader: offsets and epochs are kept as they
    /// are; CRCs are checked and the offsets must continue the log.
    pub fn append_as_follower(&mut self, records: Bytes) -> Result<AppendInfo, AppendError> {
        let now_ms = self.clock_ms;
        let log_end_offset = self.log_end_offset();
        let headers = batch::split_batches(&records)?;
        let (Some((_, first)), Some((_, last))) = (headers.first(), headers.last()) else {
            return Ok(AppendInfo {
                base_offset: log_end_offset,
                last_offset: log_end_offset - 1,
                log_append_time_ms: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
            });
        };
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        segment::check_follower_batches(&headers, log_end_offset).map_err(|e| {
            AppendError::Corrupt(format!(
                "follower append at log end offset {log_end_offset}: {e}"
            ))
        })?;
        let mut markers = Vec::new();
        for (position, h) in headers.iter().filter(|(_, h)| h.is_control()) {
            let bytes = &records[*position..*position + h.size_bytes() as usize];
            if let Some(marker) = EndTxnMarker::parse(bytes)? {
                markers.push((h.base_offset, marker));
            }
        }
        self.write_batches(&[&records], &headers, &markers, now_ms)?;
        // A follower syncs in line: one fetch response brings many batches.
        if self.flush_due() {
            self.flush(now_ms)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Write the marker that ends producer `marker.producer_id`'s transaction, as
    /// leader. Fenced as Kafka fences it (see
    /// [`ProducerStateManager::check_marker`]); a marker for a producer with no open
    /// transaction is written all the same. Returns the append and the transaction it
    /// ended, if one was open.
    pub fn append_txn_marker(
        &mut self,
        marker: &EndTxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<CompletedTxn>), AppendError> {
        self.producers
            .check_marker(marker)
            .map_err(AppendError::MarkerRefused)?;
        let base_offset = self.log_end_offset();
        let bytes = marker.encode(base_offset, leader_epoch, now_ms);
        let header = batch::validate_batch(&bytes)?;
        let completed =
            self.write_batches(&[&bytes], &[(0, header)], &[(base_offset, *marker)], now_ms)?;
        let info = AppendInfo {
            base_offset,
            last_offset: base_offset,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        };
        Ok((info, completed.into_iter().next()))
    }

    /// The first offset a read_committed reader may not read with the high watermark
    /// at `high_watermark`: the last stable offset (never above the high watermark).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.producers
            .first_unstable_offset(high_watermark)
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The high watermark moved to `high_watermark`: transactions whose markers it
    /// passed are stable for good.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.producers.retire_transactions(high_watermark);
    }

    /// The one write path: roll if needed, write `data` once, then update the epoch
    /// cache, producer state (`markers`: the markers of the control batches among
    /// `headers`, by offset) and flush accounting. Returns the transactions the
    /// markers ended.
    fn write_batches(
        &mut self,
        data: &[&[u8]],
        headers: &[(usize, BatchHeader)],
        markers: &[(i64, EndTxnMarker)],
        now_ms: i64,
    ) -> io::Result<Vec<CompletedTxn>> {
        let Some((_, first)) = headers.first() else {
            return Ok(Vec::new());
        };
        self.clock_ms = self.clock_ms.max(now_ms);
        let last_offset = headers
            .last()
            .map_or(first.last_offset(), |(_, h)| h.last_offset());
        self.mark_dirty()?;
        let data_bytes: usize = data.iter().map(|d| d.len()).sum();
        if self.active().should_roll(
            data_bytes as u64,
            first.max_timestamp_ms,
            last_offset,
            &self.config,
            now_ms,
        ) {
            self.roll(first.base_offset, now_ms)?;
        }
        let config = self.config.clone();
        self.active_mut().append(data, headers, &config)?;
        let mut epochs_changed = false;
        let mut messages = 0i64;
        let mut markers = markers.iter().peekable();
        let mut completed = Vec::new();
        for (_, h) in headers {
            epochs_changed |= self
                .epoch_cache
                .assign(h.partition_leader_epoch, h.base_offset);
            let marker = markers.next_if(|(offset, _)| *offset == h.base_offset);
            if let Some(txn) = apply_to_producers(&mut self.producers, h, marker.map(|m| &m.1)) {
                if let Some(entry) = aborted_entry(&self.producers, txn) {
                    // Every batch of this write went to the active segment.
                    self.active_mut().txn_index.push(entry);
                }
                completed.push(txn);
            }
            messages += i64::from(h.records_count);
        }
        if epochs_changed || self.epoch_checkpoint_stale {
            // The batches are in the log: failing the append now would tell the client
            // they are not. The checkpoint is written before the recovery point moves
            // past them (a flush, a roll, close).
            match self.write_epoch_checkpoint() {
                Ok(()) => self.epoch_checkpoint_stale = false,
                Err(e) => {
                    self.epoch_checkpoint_stale = true;
                    tracing::warn!(dir = %self.dir.display(), error = %e, "writing the leader epoch checkpoint failed; retried before the next flush");
                }
            }
        }
        self.unflushed_messages += messages;
        debug_assert_eq!(self.log_end_offset(), last_offset + 1);
        Ok(completed)
    }

    /// Seal the active segment (final time index entry, fsync) and start a new one at
    /// `base_offset` (the log end offset, or past it for a follower's offset gap).
    pub(super) fn roll(&mut self, base_offset: i64, now_ms: i64) -> io::Result<()> {
        let log_end_offset = self.log_end_offset();
        debug_assert!(base_offset >= log_end_offset);
        if self.active().size_bytes == 0 && self.active().base_offset == base_offset {
            return Ok(());
        }
        self.mark_dirty()?;
        self.ensure_epoch_checkpoint()?;
        self.active_mut().seal()?;
        let segment = Segment::create(&self.storage, &self.dir, base_offset, &self.config, now_ms)?;
        self.active().set_active(false);
        self.segments.insert(base_offset, segment);
        // Every older segment was sealed (fsynced) when it was rolled.
        if !self.sync_failed.load(Ordering::Acquire) {
            self.recovery_point = log_end_offset;
        }
        self.write_recovery_point()?;
        self.write_producer_snapshot(log_end_offset)?;
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled a new segment");
        Ok(())
    }
}

/// Apply one batch now in the log to the producer state (leader and follower appends,
/// replay): a data batch of an idempotent producer, or a control batch with its
/// `marker` (`None` for other control batches, which change nothing). Returns the
/// transaction a marker ended.
pub(super) fn apply_to_producers(
    producers: &mut ProducerStateManager,
    h: &BatchHeader,
    marker: Option<&EndTxnMarker>,
) -> Option<CompletedTxn> {
    if h.is_control() {
        return producers.record_marker(marker?, h.base_offset);
    }
    if h.is_idempotent() {
        producers.record_batch(
            h.producer_id,
            h.producer_epoch,
            BatchMetadata {
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
                timestamp_ms: h.max_timestamp_ms,
            },
            h.is_transactional(),
        );
    }
    None
}

/// The index entry of a transaction a marker ended, if it was aborted: with the last
/// stable offset once it ended (the oldest transaction still open, else the offset
/// after the marker), as Kafka's `ProducerStateManager.lastStableOffset` gives it.
pub(super) fn aborted_entry(
    producers: &ProducerStateManager,
    txn: CompletedTxn,
) -> Option<AbortedTxn> {
    txn.aborted.then(|| AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset: producers
            .open_transactions()
            .next()
            .map_or(txn.last_offset + 1, |(_, first)| first),
    })
}
