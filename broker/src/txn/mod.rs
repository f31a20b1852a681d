//! Transactions (exactly-once, KIP-98): the transaction coordinator as a pure state
//! machine and the records it keeps in `__transaction_state`. Nothing here does I/O or
//! reads a clock; a runtime feeds it requests and outcomes with the time and carries
//! out the [`Action`]s it returns, in order.
//!
//! # Layout
//!
//! - `coordinator`: [`TxnCoordinator`], one per `__transaction_state` partition led at
//!   one coordinator epoch: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//!   EndTxn, DescribeTransactions, ListTransactions, loading, write completions.
//! - `markers`: marker delivery and its retries, completion, transaction timeouts,
//!   transactional id expiry, the next deadline.
//! - `state`: [`TxnMetadata`] (Kafka's TransactionMetadata), the settings, and the
//!   messages exchanged with the runtime.
//! - `records`: TransactionLogKey/TransactionLogValue in Kafka's byte format.
//!
//! # Contract with the runtime
//!
//! The coordinator of transactional id T is the leader of partition
//! [`partition_for`]`(T, transaction.state.log.num.partitions)` of [`TRANSACTION_STATE_TOPIC`]
//! (a compacted topic replicated like `__consumer_offsets`). For each partition it
//! leads, the runtime:
//!
//! 1. **Loads.** On becoming leader at leader epoch E: `TxnCoordinator::new(partition,
//!    E, config)`, `replay` every record of the partition in offset order up to its log
//!    end (decoded with [`TxnRecord::decode`]; a record that does not decode is a
//!    storage fault, not something to skip), then `load_complete(now)` and carry out
//!    its actions: markers of transactions the previous coordinator left prepared are
//!    sent again. Until then every request is answered COORDINATOR_LOAD_IN_PROGRESS.
//!    On losing leadership: `resign()` (answers parked requests NOT_COORDINATOR) and
//!    drop the coordinator.
//! 2. **Feeds requests** after its own checks (API version, authorization, that the
//!    topics exist): `init_producer_id`, `add_partitions` (one call per transaction of
//!    a v4 batch; `verify_partitions` for verify-only ones), `add_offsets`, `end_txn`,
//!    `describe`, `list`. Each request gets a [`RequestId`] of the runtime's choosing,
//!    unique among those in flight. InitProducerId without a transactional id is not
//!    this coordinator's (idempotent producers get ids from the controller directly).
//!    [`for_old_client`] turns PRODUCER_FENCED into INVALID_PRODUCER_EPOCH for
//!    request versions from before KIP-588.
//! 3. **Carries out actions**, in order:
//!    - [`Action::Persist`]: append the record to the partition (acks=all, no
//!      compression, as Kafka enforces), then call `persisted(write, Ok(()))` once it
//!      is committed, or `persisted(write, Err(code))` with the append's error. An
//!      answer never precedes its record.
//!    - [`Action::Reply`]: send the answer.
//!    - [`Action::WriteMarkers`]: send WriteTxnMarkers to each partition's leader over
//!      the internal plane, then `markers_done` with one outcome per partition:
//!      [`MarkerOutcome::Deleted`] when the topic is gone from the metadata image,
//!      `Failed(code)` for the leader's error or a transport failure
//!      (REQUEST_TIMED_OUT); the coordinator decides what to retry and when.
//!    - [`Action::ReserveProducerIds`]: reserve a block of ids from the controller and
//!      hand it over with `add_producer_ids`, or call `producer_ids_failed`.
//! 4. **Keeps time**: calls `tick(now)` when `next_deadline_ms()` passes (the
//!    broker's one timer structure), and again after every event that may move it.
//!    `tick` aborts transactions past their timeout, expires idle ids, and retries
//!    markers and completion records.
//!
//! Producer ids: the coordinator holds blocks reserved by the controller and asks for
//! the next one when a tenth of the last is left; with none left, InitProducerId is
//! answered COORDINATOR_LOAD_IN_PROGRESS (retriable), as Kafka answers while its block
//! is on its way. This keeps the coordinator synchronous: no request waits on the
//! controller inside it.
//!
//! Transaction version: Fjord serves the protocol of transaction version 1 (KIP-890
//! part 2 is not advertised): EndTxn does not bump the epoch, TransactionLogValue is
//! written in v0. Not here: TxnOffsetCommit (the group coordinator's, checked against
//! the producer state of the offsets partition), the markers' effect on data partitions
//! (the log's control batches, last stable offset and aborted-transaction index).

pub mod coordinator;
mod markers;
pub mod records;
#[cfg(test)]
mod sim;
pub mod state;
#[cfg(test)]
mod tests;
pub mod types;

pub use coordinator::{client_error, for_old_client, ReplayError, TxnCoordinator};
pub use records::{TxnRecord, TxnRecordError, TxnValue};
pub use state::{
    epoch_exhausted, Action, Answer, InitProducerIdRequest, ListFilter, ListedTxn, MarkerOutcome,
    MarkerResults, MarkerWrite, ProducerIdAndEpoch, RequestId, TxnConfig, TxnDescription,
    TxnListing, TxnMetadata, TxnProducer, TxnResult, WriteId, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};
pub use types::{TopicPartition, TxnState};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The `__transaction_state` partition that coordinates `transactional_id`: Kafka's
/// rule (`abs(String.hashCode) % partitions`), so an id lands where it would in Kafka.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::partition_for(transactional_id, partitions)
}
