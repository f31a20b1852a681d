//! The nouns of the transaction coordinator: a transactional id's state
//! ([`TxnMetadata`]), the settings it applies, and the messages exchanged with the
//! runtime (the [`Action`]s it returns and the outcomes fed back).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::records::{TxnRecord, TxnValue};
use super::types::{TopicPartition, TxnState};
use crate::backoff::Backoff;

/// Identifies a request whose answer waits on a record write; chosen by the runtime.
pub type RequestId = u64;

/// Identifies one `__transaction_state` append; chosen by the coordinator, echoed back
/// by the runtime in [`super::TxnCoordinator::persisted`].
pub type WriteId = u64;

/// Kafka's "no producer id" and "no epoch" (RecordBatch.NO_PRODUCER_ID/EPOCH).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// An epoch this high cannot be bumped twice more (fence, then re-init), so
/// InitProducerId moves the transactional id to a new producer id instead (KIP-360).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// What EndTxn (or a timeout) asks for, and what the markers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnResult {
    pub(super) fn prepare_state(self) -> TxnState {
        match self {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        }
    }
}

/// Broker settings the coordinator applies (Kafka's names and defaults).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// transaction.max.timeout.ms (900000): a larger transaction.timeout.ms is refused.
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms (604800000): an idle id is removed after this.
    pub transactional_id_expiration_ms: i64,
    /// The first and the longest wait before a failed marker write or completion
    /// record is tried again.
    pub retry_backoff_min_ms: i64,
    pub retry_backoff_max_ms: i64,
    /// The largest value record (the topic's max.message.bytes, 1048588 by default):
    /// a transaction whose partitions would not fit is refused, as Kafka refuses it
    /// when the append fails with MESSAGE_TOO_LARGE.
    pub max_record_bytes: usize,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            retry_backoff_min_ms: 100,
            retry_backoff_max_ms: 10_000,
            max_record_bytes: 1_048_588,
        }
    }
}

impl TxnConfig {
    pub(super) fn backoff(&self) -> Backoff {
        Backoff::new(
            std::time::Duration::from_millis(self.retry_backoff_min_ms.max(0) as u64),
            std::time::Duration::from_millis(self.retry_backoff_max_ms.max(0) as u64),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// InitProducerId with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    pub transactional_id: String,
    pub timeout_ms: i32,
    /// KIP-360 (v3+): the id and epoch the producer holds when it asks for a bump;
    /// None when the request carries -1/-1.
    pub expected: Option<ProducerIdAndEpoch>,
}

/// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn name the producer the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
}

/// The answer to a request; the runtime encodes it for the request's API and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    InitProducerId(Result<ProducerIdAndEpoch, ResponseError>),
    /// AddPartitionsToTxn (one code for every partition of the transaction),
    /// AddOffsetsToTxn, EndTxn.
    Done(Result<(), ResponseError>),
}

/// Markers to write: one control batch per partition, each the leader's to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWrite {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    /// The `__transaction_state` partition's leader epoch: a data partition that has
    /// seen a higher one refuses the write (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
    pub partitions: Vec<TopicPartition>,
}

/// How one partition's marker write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOutcome {
    Written,
    /// The partition's topic is gone from the metadata image: nothing to mark.
    Deleted,
    /// The leader's (or the transport's) error code; the coordinator decides.
    Failed(ResponseError),
}

/// The outcomes of (some of) the partitions of one [`MarkerWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerResults {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<(TopicPartition, MarkerOutcome)>,
}

/// What the runtime must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append `record` to this coordinator's `__transaction_state` partition with
    /// acks=all at the coordinator epoch; report with `persisted(write, ..)`.
    Persist { write: WriteId, record: TxnRecord },
    /// Answer a request.
    Reply { request: RequestId, answer: Answer },
    /// Send WriteTxnMarkers to each partition's leader; report with `markers_done`.
    WriteMarkers(MarkerWrite),
    /// Reserve a block of producer ids from the controller; hand it over with
    /// `add_producer_ids`, or report `producer_ids_failed`.
    ReserveProducerIds,
}

/// What a parked write is for: what happens when it lands or fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    /// InitProducerId: answer the new id and epoch.
    Init { request: RequestId },
    /// AddPartitionsToTxn / AddOffsetsToTxn.
    Add { request: RequestId },
    /// A client's EndTxn: answer once Prepare* is durable, then write markers.
    End { request: RequestId },
    /// An epoch fence (InitProducerId during a transaction, or a timeout): PrepareAbort
    /// with the bumped epoch; InitProducerId is told CONCURRENT_TRANSACTIONS.
    Fence { request: Option<RequestId> },
    /// Every marker is written: CompleteCommit/CompleteAbort.
    Complete,
    /// transactional.id.expiration.ms passed: the tombstone.
    Expire,
}

#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) write: WriteId,
    /// The value the write carries (None for the tombstone), applied when it lands.
    pub(super) next: Option<TxnValue>,
    /// The last epoch to remember once it lands (not part of the record).
    pub(super) last_epoch: i16,
    pub(super) purpose: Purpose,
}

/// One partition still waiting for its marker.
#[derive(Debug, Clone)]
pub(super) struct MarkerSlot {
    pub(super) in_flight: bool,
    pub(super) retry_at_ms: i64,
    pub(super) backoff: Backoff,
}

/// One transactional id (Kafka's TransactionMetadata).
#[derive(Debug, Clone)]
pub struct TxnMetadata {
    pub(super) transactional_id: String,
    pub(super) producer_id: i64,
    /// The producer id before the last rotation (KIP-360 retries name it).
    pub(super) last_producer_id: i64,
    pub(super) producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId gets the same
    /// answer (KIP-360); not persisted, as in Kafka.
    pub(super) last_producer_epoch: i16,
    pub(super) timeout_ms: i32,
    pub(super) state: TxnState,
    pub(super) partitions: BTreeSet<TopicPartition>,
    pub(super) start_ms: i64,
    pub(super) last_update_ms: i64,
    /// At most one write in flight per id; requests meanwhile are told
    /// CONCURRENT_TRANSACTIONS.
    pub(super) pending: Option<Pending>,
    /// A fence bumped the epoch in memory but its record did not land: the next fence
    /// reuses that epoch rather than bumping again.
    pub(super) failed_epoch_fence: bool,
    /// While Prepare*: partitions whose marker is not yet written.
    pub(super) markers: BTreeMap<TopicPartition, MarkerSlot>,
    /// A data partition refused our markers as from a stale coordinator: a newer
    /// coordinator owns this id, so this one stops sending.
    pub(super) markers_abandoned: bool,
    /// When a failed completion record is tried again.
    pub(super) complete_retry: Option<(i64, Backoff)>,
}

impl TxnMetadata {
    pub(super) fn new(
        transactional_id: &str,
        producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            pending: None,
            failed_epoch_fence: false,
            markers: BTreeMap::new(),
            markers_abandoned: false,
            complete_retry: None,
        }
    }

    pub(super) fn from_value(transactional_id: &str, v: &TxnValue) -> Self {
        TxnMetadata {
            last_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            state: v.state,
            partitions: v.partitions.clone(),
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            ..TxnMetadata::new(
                transactional_id,
                v.producer_id,
                v.timeout_ms,
                v.last_update_ms,
            )
        }
    }

    /// The persisted form of this id as it stands, the base of every transition.
    pub(super) fn value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            previous_producer_id: self.last_producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_transaction_version: 0,
        }
    }

    /// A write landed: take on the state it carried.
    pub(super) fn apply(&mut self, v: &TxnValue) {
        self.producer_id = v.producer_id;
        self.last_producer_id = v.previous_producer_id;
        self.producer_epoch = v.producer_epoch;
        self.timeout_ms = v.timeout_ms;
        self.state = v.state;
        self.partitions = v.partitions.clone();
        self.last_update_ms = v.last_update_ms;
        self.start_ms = v.start_ms;
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }
    pub fn state(&self) -> TxnState {
        self.state
    }
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }
    pub fn partitions(&self) -> &BTreeSet<TopicPartition> {
        &self.partitions
    }
    /// A write for this id is in flight.
    pub fn has_pending_write(&self) -> bool {
        self.pending.is_some()
    }
}

/// DescribeTransactions' answer for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: BTreeSet<TopicPartition>,
}

/// ListTransactions' filters; empty lists and a negative duration filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// KIP-994 (v1+): only transactions running longer than this; -1 for all.
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnListing {
    pub transactions: Vec<ListedTxn>,
    /// State names in the filter that are not Kafka's (reported back, as Kafka does).
    pub unknown_state_filters: Vec<String>,
}
