//! Transactional offset commits in the group runtime: TxnOffsetCommit appends the
//! offsets as the producer's transactional batch of `__consumer_offsets` (so the log
//! fences a stale producer epoch and the partition's last stable offset waits for the
//! marker), and [`GroupRuntime::complete_txn`] applies the marker once written.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use super::load::{append_with, TxnProducer};
use super::{write_error, GroupRuntime, Shard, Write, WriteExt, WriteKind};
use crate::group::{FetchedOffset, TxnCommitRequest};
use crate::log::batch::increment_sequence;
use crate::server::partition::{append_error_code, Acks, Partition};

impl GroupRuntime {
    /// A transaction marker for `producer_id` was appended to, and replicated on,
    /// `__consumer_offsets` partition `offsets_partition` (WriteTxnMarkers): the
    /// producer's pending offsets in every group of that partition become committed
    /// (`commit`) or are dropped. A partition not coordinated here is skipped: its
    /// coordinator reads the marker back from the log when it loads. One still loading
    /// gets the marker when its load is done.
    pub fn complete_txn(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        let Some(shard) = self.shards.loaded_or_note(offsets_partition, |markers| {
            markers.entry(producer_id).or_insert(commit);
        }) else {
            return;
        };
        let now = shard.now_ms();
        let mut state = shard.state.lock();
        if state.active {
            state.coordinator.complete_txn(producer_id, commit, now);
        }
    }
}

impl Shard {
    /// TxnOffsetCommit: the offsets are appended as the producer's transactional batch
    /// and are pending until its transaction's marker; answered once the ISR, at least
    /// `min.insync.replicas` strong, holds them. A batch the log refuses (a producer
    /// epoch older than the one the partition has seen) leaves nothing pending.
    pub async fn txn_commit(self: &Arc<Self>, req: TxnCommitRequest) -> Result<(), ResponseError> {
        let written = {
            let mut state = self.active()?;
            let now = self.now_ms();
            let records = state.coordinator.txn_commit(&req, now)?;
            if records.is_empty() {
                return Ok(());
            }
            // Every append to this partition goes through this shard under its lock,
            // so the producer's next sequence cannot move between here and the append.
            let producer = TxnProducer {
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
                base_sequence: next_sequence(&self.partition, req.producer_id, req.producer_epoch),
            };
            let clock = self.partition.clock();
            let deadline_ms = clock.now_ms() + self.write_timeout_ms;
            let mut acks = Vec::new();
            let mut appended = 0usize;
            let result = append_with(&records, clock.wall_ms(), Some(producer), |batch, n| {
                let done = self
                    .partition
                    .append_transactional(batch.freeze(), Acks::All { deadline_ms })?;
                if done.flush_due {
                    self.partition.with_log_mut(|l| l.flush(clock.wall_ms()))?;
                }
                acks.extend(done.replicated);
                appended += n;
                Ok(())
            });
            // What reached the log is pending, as a load would find it.
            for record in records.into_iter().take(appended) {
                state
                    .coordinator
                    .replay_txn_offset(req.producer_id, record, now);
            }
            if let Err(e) = result {
                tracing::warn!(
                    partition = self.partition.index,
                    producer_id = req.producer_id,
                    producer_epoch = req.producer_epoch,
                    error = %e,
                    "transactional offsets not written"
                );
                return Err(txn_write_error(append_error_code(&e)));
            }
            Write::new(acks)
        };
        written.await.map_err(txn_write_error)
    }

    /// OffsetFetch, with KIP-447's `require_stable`.
    pub fn fetch_stable_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, ResponseError> {
        Ok(self
            .active()?
            .coordinator
            .fetch_stable_offsets(group_id, partitions, require_stable))
    }
}

/// The sequence the producer's next batch on `partition` must start at: after its last
/// batch there at the same epoch, 0 for a new producer or a bumped epoch (KIP-360).
fn next_sequence(partition: &Partition, producer_id: i64, producer_epoch: i16) -> i32 {
    partition.with_log(|l| match l.producer_state().entry(producer_id) {
        Some(e) if e.producer_epoch == producer_epoch => e
            .batches
            .back()
            .map_or(0, |b| increment_sequence(b.last_seq, 1)),
        _ => 0,
    })
}

/// The error a TxnOffsetCommit gets when its write fails with `code`: a fenced
/// producer epoch reaches the producer as INVALID_PRODUCER_EPOCH (it aborts and, being
/// a zombie, fails: both Kafka clients treat it as fenced), the rest as for
/// OffsetCommit.
fn txn_write_error(code: ResponseError) -> ResponseError {
    match code {
        ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => {
            ResponseError::InvalidProducerEpoch
        }
        other => write_error(other, WriteKind::Offsets),
    }
}
