//! The transaction coordinator of one `__transaction_state` partition as a pure state
//! machine, following Kafka's rules (TransactionCoordinator, TransactionMetadata; KIPs
//! 98, 360, 588). Requests come in as calls with the time; each returns the [`Action`]s
//! to carry out, and no answer that depends on a state change is given before the
//! record of that change is durable (`persisted`). Marker delivery, timeouts and
//! expiry are in `markers`.
//!
//! Per transactional id:
//!
//! ```text
//!            InitProducerId (epoch + 1)           AddPartitions / AddOffsets
//!   Empty ◀──────────────────────────── Complete* ─────────────┐
//!     │ AddPartitions / AddOffsets          ▲                  ▼
//!     └─────────────────────────────▶ Ongoing ──EndTxn──▶ PrepareCommit/PrepareAbort
//!                                       │  ▲                  │ every marker written
//!     InitProducerId or timeout: fence ─┘  └ more partitions  ▼
//!     (epoch + 1, PrepareAbort)                 CompleteCommit/CompleteAbort
//!   idle past transactional.id.expiration.ms: tombstone, removed.
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};

use kafka_protocol::error::ResponseError;

use super::records::{TxnRecord, TxnValue, MAX_STRING_BYTES};
use super::state::{
    epoch_exhausted, Action, Answer, InitProducerIdRequest, ListFilter, ListedTxn, Pending,
    ProducerIdAndEpoch, Purpose, RequestId, TxnConfig, TxnDescription, TxnListing, TxnMetadata,
    TxnProducer, TxnResult, WriteId, NO_PRODUCER_EPOCH,
};
use super::types::{TopicPartition, TxnState};
use crate::backoff::Backoff;
use crate::group::OFFSETS_TOPIC;

/// A record read back from `__transaction_state` that no coordinator writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("transactional id {id:?}: state {state} is never persisted")]
    TransientState { id: String, state: &'static str },
}

/// The transactional ids of one `__transaction_state` partition, led at one epoch.
#[derive(Debug, Clone)]
pub struct TxnCoordinator {
    pub(super) config: TxnConfig,
    pub(super) partition: i32,
    pub(super) coordinator_epoch: i32,
    pub(super) txns: BTreeMap<String, TxnMetadata>,
    /// Requests are answered COORDINATOR_LOAD_IN_PROGRESS until the partition's
    /// records are replayed (`load_complete`).
    pub(super) loaded: bool,
    pub(super) next_write: WriteId,
    /// Writes in flight and whose they are.
    pub(super) writes: HashMap<WriteId, String>,
    /// Reserved producer ids not yet handed out, as [next, end) blocks.
    pub(super) producer_ids: VecDeque<(i64, i64)>,
    pub(super) last_block_len: i64,
    pub(super) reserving: bool,
    /// After a failed reservation: when to ask again, and how long the next wait is.
    pub(super) reserve_retry_at: Option<i64>,
    pub(super) reserve_backoff: Backoff,
}

/// The code a client gets when a `__transaction_state` append failed with `append`
/// (Kafka's mapping in appendTransactionToLog): a lost leadership sends the client to
/// find the coordinator again, a short ISR makes it retry.
pub fn client_error(append: ResponseError) -> ResponseError {
    use ResponseError as E;
    match append {
        E::UnknownTopicOrPartition
        | E::NotEnoughReplicas
        | E::NotEnoughReplicasAfterAppend
        | E::RequestTimedOut => E::CoordinatorNotAvailable,
        E::NotLeaderOrFollower | E::KafkaStorageError => E::NotCoordinator,
        E::MessageTooLarge | E::RecordListTooLarge => E::UnknownServerError,
        other => other,
    }
}

/// Clients before KIP-588 do not know PRODUCER_FENCED: InitProducerId below v4 and
/// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn below v2 get INVALID_PRODUCER_EPOCH
/// instead, as Kafka answers them.
pub fn for_old_client(code: ResponseError, knows_producer_fenced: bool) -> ResponseError {
    if code == ResponseError::ProducerFenced && !knows_producer_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        code
    }
}

impl TxnCoordinator {
    pub fn new(partition: i32, coordinator_epoch: i32, config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            partition,
            coordinator_epoch,
            txns: BTreeMap::new(),
            loaded: false,
            next_write: 1,
            writes: HashMap::new(),
            producer_ids: VecDeque::new(),
            last_block_len: 0,
            reserving: false,
            reserve_retry_at: None,
            reserve_backoff: config.backoff(),
            config,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    pub fn txn(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn txns(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    // ---- Loading ----

    /// Apply one record read back from the partition, in log order.
    pub fn replay(&mut self, record: &TxnRecord) -> Result<(), ReplayError> {
        match &record.value {
            None => {
                self.txns.remove(&record.transactional_id);
            }
            Some(v) if v.state == TxnState::Dead => {
                self.txns.remove(&record.transactional_id);
            }
            Some(v) if v.state == TxnState::PrepareEpochFence => {
                return Err(ReplayError::TransientState {
                    id: record.transactional_id.clone(),
                    state: v.state.as_str(),
                });
            }
            Some(v) => {
                self.txns.insert(
                    record.transactional_id.clone(),
                    TxnMetadata::from_value(&record.transactional_id, v),
                );
            }
        }
        Ok(())
    }

    /// Every record is replayed: start serving. A transaction the previous coordinator
    /// left in Prepare* (it stopped between the decision and the markers) resumes
    /// writing its markers; a block of producer ids is asked for up front.
    pub fn load_complete(&mut self, now_ms: i64) -> Vec<Action> {
        self.loaded = true;
        let mut out = Vec::new();
        let preparing: Vec<String> = self
            .txns
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in preparing {
            self.start_markers(&id, now_ms, &mut out);
        }
        self.maybe_reserve(&mut out);
        out
    }

    /// This broker stopped leading the partition: every request still waiting on a
    /// write is told NOT_COORDINATOR (the client finds the new coordinator), and
    /// completions that arrive later are ignored.
    pub fn resign(&mut self) -> Vec<Action> {
        self.loaded = false;
        self.writes.clear();
        let mut out = Vec::new();
        for m in self.txns.values_mut() {
            let code = ResponseError::NotCoordinator;
            let (request, answer) = match m.pending.take().map(|p| p.purpose) {
                Some(Purpose::Init { request })
                | Some(Purpose::Fence {
                    request: Some(request),
                }) => (request, Answer::InitProducerId(Err(code))),
                Some(Purpose::Add { request }) | Some(Purpose::End { request }) => {
                    (request, Answer::Done(Err(code)))
                }
                _ => continue,
            };
            out.push(Action::Reply { request, answer });
        }
        out
    }

    // ---- Producer ids ----

    /// A block of `count` producer ids from `first`, reserved by the controller.
    pub fn add_producer_ids(&mut self, first: i64, count: i64) {
        self.reserving = false;
        self.reserve_retry_at = None;
        self.reserve_backoff.reset();
        if count > 0 {
            self.producer_ids
                .push_back((first, first.saturating_add(count)));
            self.last_block_len = count;
        }
    }

    /// The reservation failed: it is asked again after a backoff.
    pub fn producer_ids_failed(&mut self, now_ms: i64) {
        self.reserving = false;
        let delay = self.reserve_backoff.next_delay().as_millis() as i64;
        self.reserve_retry_at = Some(now_ms.saturating_add(delay));
    }

    fn ids_left(&self) -> i64 {
        self.producer_ids.iter().map(|(n, e)| e - n).sum()
    }

    /// Ask for the next block when a tenth of the last one is left (Kafka prefetches
    /// at 90% too), so clients rarely meet an empty pool.
    pub(super) fn maybe_reserve(&mut self, out: &mut Vec<Action>) {
        if self.reserving || self.reserve_retry_at.is_some() {
            return;
        }
        if self.ids_left() <= self.last_block_len / 10 {
            self.reserving = true;
            out.push(Action::ReserveProducerIds);
        }
    }

    /// None when the pool is empty: the client is told COORDINATOR_LOAD_IN_PROGRESS and
    /// retries, as Kafka answers while its producer id block is on its way.
    fn take_producer_id(&mut self, out: &mut Vec<Action>) -> Option<i64> {
        while let Some((next, end)) = self.producer_ids.front_mut() {
            if *next < *end {
                let id = *next;
                *next += 1;
                self.maybe_reserve(out);
                return Some(id);
            }
            self.producer_ids.pop_front();
        }
        self.maybe_reserve(out);
        None
    }

    // ---- Writes ----

    /// Start the write of `next` (None: the tombstone) for `id`; its purpose says what
    /// follows when it lands.
    pub(super) fn begin(
        &mut self,
        id: &str,
        next: Option<TxnValue>,
        last_epoch: i16,
        purpose: Purpose,
    ) -> Action {
        let write = self.next_write;
        self.next_write += 1;
        self.writes.insert(write, id.to_string());
        let meta = self.txns.get_mut(id).expect("begin on a known id");
        debug_assert!(meta.pending.is_none(), "{id}: two writes in flight");
        meta.pending = Some(Pending {
            write,
            next: next.clone(),
            last_epoch,
            purpose,
        });
        Action::Persist {
            write,
            record: TxnRecord {
                transactional_id: id.to_string(),
                value: next,
            },
        }
    }

    /// The runtime's report on one `Persist`: Ok once the record is committed (the ISR
    /// holds it), or the append's error code.
    pub fn persisted(
        &mut self,
        write: WriteId,
        result: Result<(), ResponseError>,
        now_ms: i64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(id) = self.writes.remove(&write) else {
            return out; // from before a resignation
        };
        let Some(meta) = self.txns.get_mut(&id) else {
            return out;
        };
        let Some(pending) = meta.pending.take_if(|p| p.write == write) else {
            return out;
        };
        let reply = |request, answer| Action::Reply { request, answer };
        match (result, pending.purpose) {
            (Ok(()), Purpose::Expire) => {
                self.txns.remove(&id);
            }
            (Ok(()), purpose) => {
                let next = pending.next.expect("only the tombstone has no value");
                meta.apply(&next);
                meta.last_producer_epoch = pending.last_epoch;
                match purpose {
                    Purpose::Init { request } => out.push(reply(
                        request,
                        Answer::InitProducerId(Ok(ProducerIdAndEpoch {
                            producer_id: next.producer_id,
                            epoch: next.producer_epoch,
                        })),
                    )),
                    Purpose::Add { request } => out.push(reply(request, Answer::Done(Ok(())))),
                    Purpose::End { request } => {
                        out.push(reply(request, Answer::Done(Ok(()))));
                        self.start_markers(&id, now_ms, &mut out);
                    }
                    Purpose::Fence { request } => {
                        meta.failed_epoch_fence = false;
                        if let Some(request) = request {
                            // The client retries and, once the abort completes, gets
                            // its own epoch bump.
                            out.push(reply(
                                request,
                                Answer::InitProducerId(Err(ResponseError::ConcurrentTransactions)),
                            ));
                        }
                        self.start_markers(&id, now_ms, &mut out);
                    }
                    Purpose::Complete => {
                        meta.markers.clear();
                        meta.complete_retry = None;
                    }
                    Purpose::Expire => unreachable!("handled above"),
                }
            }
            (Err(e), purpose) => {
                let code = client_error(e);
                match purpose {
                    Purpose::Init { request } => {
                        out.push(reply(request, Answer::InitProducerId(Err(code))))
                    }
                    Purpose::Add { request } | Purpose::End { request } => {
                        out.push(reply(request, Answer::Done(Err(code))))
                    }
                    Purpose::Fence { request } => {
                        // The epoch stays bumped in memory, so the old producer stays
                        // fenced; the next fence must not bump it again.
                        meta.failed_epoch_fence = true;
                        if let Some(request) = request {
                            out.push(reply(request, Answer::InitProducerId(Err(code))));
                        }
                    }
                    Purpose::Complete => {
                        let mut backoff = meta
                            .complete_retry
                            .take()
                            .map(|(_, b)| b)
                            .unwrap_or_else(|| self.config.backoff());
                        let at = now_ms.saturating_add(backoff.next_delay().as_millis() as i64);
                        meta.complete_retry = Some((at, backoff));
                    }
                    Purpose::Expire => {} // tried again on a later tick
                }
            }
        }
        out
    }

    // ---- InitProducerId ----

    /// InitProducerId with a transactional id (KIP-98; epoch bumps of KIP-360; fencing
    /// answers of KIP-588). Ids without a transactional id are not this coordinator's.
    pub fn init_producer_id(
        &mut self,
        req: &InitProducerIdRequest,
        request: RequestId,
        now_ms: i64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if let Err(code) = self.init_inner(req, request, now_ms, &mut out) {
            out.push(Action::Reply {
                request,
                answer: Answer::InitProducerId(Err(code)),
            });
        }
        out
    }

    fn init_inner(
        &mut self,
        req: &InitProducerIdRequest,
        request: RequestId,
        now_ms: i64,
        out: &mut Vec<Action>,
    ) -> Result<(), ResponseError> {
        let id = req.transactional_id.as_str();
        self.check_serving(id)?;
        if req.timeout_ms <= 0 || req.timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        if !self.txns.contains_key(id) {
            let producer_id = self
                .take_producer_id(out)
                .ok_or(ResponseError::CoordinatorLoadInProgress)?;
            self.txns.insert(
                id.to_string(),
                TxnMetadata::new(id, producer_id, req.timeout_ms, now_ms),
            );
        }
        let meta = &self.txns[id];
        if meta.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some(expected) = req.expected {
            // A producer bumping its own epoch (KIP-360) must hold this id's producer
            // id, or the one before a rotation whose answer it may have missed.
            let valid = meta.producer_epoch == NO_PRODUCER_EPOCH
                || expected.producer_id == meta.producer_id
                || (expected.producer_id == meta.last_producer_id
                    && epoch_exhausted(expected.epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Abort the open transaction under a bumped epoch first; the client is
                // told to retry, and its retry bumps again (or rotates the id).
                self.fence(id, Some(request), now_ms, out);
                Ok(())
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                debug_assert!(false, "{id}: state {:?} is never held", meta.state);
                Err(ResponseError::UnknownServerError)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let rotate = epoch_exhausted(meta.producer_epoch)
                    && req.expected.is_none_or(|e| e.epoch == meta.producer_epoch);
                let mut next = meta.value();
                let last_epoch;
                if rotate {
                    let old_epoch = meta.producer_epoch;
                    next.previous_producer_id = meta.producer_id;
                    next.producer_id = self
                        .take_producer_id(out)
                        .ok_or(ResponseError::CoordinatorLoadInProgress)?;
                    next.producer_epoch = 0;
                    last_epoch = if req.expected.is_some() {
                        old_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    let current = meta.producer_epoch;
                    let bumped = current.saturating_add(1);
                    let (epoch, last) = match req.expected {
                        _ if epoch_exhausted(current) => {
                            // Not the holder of the exhausted epoch: only a retry of
                            // the bump that got here may be answered again.
                            match req.expected {
                                Some(e) if e.epoch == meta.last_producer_epoch => {
                                    (current, meta.last_producer_epoch)
                                }
                                _ => return Err(ResponseError::ProducerFenced),
                            }
                        }
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some(e) if current == NO_PRODUCER_EPOCH || e.epoch == current => {
                            (bumped, current)
                        }
                        // The bump was done but its answer lost: the same answer.
                        Some(e) if e.epoch == meta.last_producer_epoch => {
                            (current, meta.last_producer_epoch)
                        }
                        Some(_) => return Err(ResponseError::ProducerFenced),
                    };
                    next.producer_epoch = epoch;
                    last_epoch = last;
                }
                next.timeout_ms = req.timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now_ms;
                out.push(self.begin(id, Some(next), last_epoch, Purpose::Init { request }));
                Ok(())
            }
        }
    }

    /// Bump the epoch now (the old producer is fenced from this moment) and write
    /// PrepareAbort under it; markers follow once it lands.
    pub(super) fn fence(
        &mut self,
        id: &str,
        request: Option<RequestId>,
        now_ms: i64,
        out: &mut Vec<Action>,
    ) {
        let meta = self.txns.get_mut(id).expect("fence on a known id");
        debug_assert_eq!(meta.state, TxnState::Ongoing);
        if !meta.failed_epoch_fence {
            // Epochs handed to clients stay below i16::MAX - 1 (rotation), so this
            // never saturates.
            debug_assert!(meta.producer_epoch < i16::MAX);
            meta.producer_epoch = meta.producer_epoch.saturating_add(1);
        }
        meta.last_producer_epoch = NO_PRODUCER_EPOCH;
        let mut next = meta.value();
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms;
        out.push(self.begin(
            id,
            Some(next),
            NO_PRODUCER_EPOCH,
            Purpose::Fence { request },
        ));
    }

    /// Loaded, and a transactional id a record can hold.
    fn check_serving(&self, id: &str) -> Result<(), ResponseError> {
        if !self.loaded {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        if id.is_empty() || id.len() > MAX_STRING_BYTES {
            return Err(ResponseError::InvalidRequest);
        }
        Ok(())
    }

    /// The id's metadata, if `producer` is its current producer and nothing is in flight.
    fn check_producer(&self, producer: &TxnProducer) -> Result<&TxnMetadata, ResponseError> {
        let meta = self.check_holder(producer)?;
        if meta.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(meta)
    }

    /// The id's metadata, if `producer` holds its current producer id and epoch.
    fn check_holder(&self, producer: &TxnProducer) -> Result<&TxnMetadata, ResponseError> {
        self.check_serving(&producer.transactional_id)?;
        let meta = self
            .txns
            .get(&producer.transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer.epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(meta)
    }

    // ---- AddPartitionsToTxn / AddOffsetsToTxn ----

    /// AddPartitionsToTxn (v3 and below, or one transaction of a v4 batch): the runtime
    /// has checked that the topics exist and may be written.
    pub fn add_partitions(
        &mut self,
        producer: &TxnProducer,
        partitions: &[TopicPartition],
        request: RequestId,
        now_ms: i64,
    ) -> Vec<Action> {
        match self.add_inner(producer, partitions, request, now_ms) {
            Ok(Some(action)) => vec![action],
            Ok(None) => vec![Action::Reply {
                request,
                answer: Answer::Done(Ok(())),
            }],
            Err(code) => vec![Action::Reply {
                request,
                answer: Answer::Done(Err(code)),
            }],
        }
    }

    fn add_inner(
        &mut self,
        producer: &TxnProducer,
        partitions: &[TopicPartition],
        request: RequestId,
        now_ms: i64,
    ) -> Result<Option<Action>, ResponseError> {
        let meta = self.check_producer(producer)?;
        if partitions
            .iter()
            .any(|tp| tp.topic.len() > MAX_STRING_BYTES)
        {
            return Err(ResponseError::InvalidRequest);
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing if partitions.iter().all(|tp| meta.partitions.contains(tp)) => {
                return Ok(None);
            }
            _ => {}
        }
        let mut next = meta.value();
        if meta.state.is_idle() {
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        let record = TxnRecord {
            transactional_id: producer.transactional_id.clone(),
            value: Some(next),
        };
        if record.encode().1.map_or(0, |v| v.len()) > self.config.max_record_bytes {
            return Err(ResponseError::UnknownServerError);
        }
        let last_epoch = meta.last_producer_epoch;
        Ok(Some(self.begin(
            &producer.transactional_id,
            record.value,
            last_epoch,
            Purpose::Add { request },
        )))
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
    /// transaction, so the offsets TxnOffsetCommit writes get its markers.
    /// `offsets_partition` maps a group id to its partition (`group::partition_for`
    /// with the topic's partition count).
    pub fn add_offsets(
        &mut self,
        producer: &TxnProducer,
        group_id: &str,
        offsets_partition: impl Fn(&str) -> i32,
        request: RequestId,
        now_ms: i64,
    ) -> Vec<Action> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, offsets_partition(group_id));
        self.add_partitions(producer, &[tp], request, now_ms)
    }

    /// AddPartitionsToTxn v4 with verify_only (KIP-890 part 1, sent by a partition
    /// leader before it appends a transactional batch): is each partition already in
    /// the producer's transaction? Changes nothing. A write in flight is not waited
    /// for (the append is checked again on the log), as in Kafka; a partition that was
    /// never added is TRANSACTION_ABORTABLE, so the producer aborts rather than leave
    /// records no marker will close.
    pub fn verify_partitions(
        &self,
        producer: &TxnProducer,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
        let verdict = self
            .check_holder(producer)
            .and_then(|meta| match meta.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    Err(ResponseError::ConcurrentTransactions)
                }
                _ => Ok(meta),
            });
        partitions
            .iter()
            .map(|tp| {
                let result = match verdict {
                    Err(code) => Err(code),
                    Ok(meta) if meta.partitions.contains(tp) => Ok(()),
                    Ok(_) => Err(ResponseError::TransactionAbortable),
                };
                (tp.clone(), result)
            })
            .collect()
    }

    // ---- EndTxn ----

    /// EndTxn: commit or abort the open transaction. The answer follows the Prepare*
    /// record; markers follow the answer. A retry after completion with the same
    /// outcome succeeds; the opposite outcome is INVALID_TXN_STATE.
    pub fn end_txn(
        &mut self,
        producer: &TxnProducer,
        result: TxnResult,
        request: RequestId,
        now_ms: i64,
    ) -> Vec<Action> {
        let reply = |answer| {
            vec![Action::Reply {
                request,
                answer: Answer::Done(answer),
            }]
        };
        let meta = match self.check_producer(producer) {
            Ok(meta) => meta,
            Err(code) => return reply(Err(code)),
        };
        use TxnResult::{Abort, Commit};
        use TxnState as S;
        match (meta.state, result) {
            (S::Ongoing, _) => {
                let mut next = meta.value();
                next.state = result.prepare_state();
                next.last_update_ms = now_ms;
                let last_epoch = meta.last_producer_epoch;
                vec![self.begin(
                    &producer.transactional_id,
                    Some(next),
                    last_epoch,
                    Purpose::End { request },
                )]
            }
            (S::CompleteCommit, Commit) | (S::CompleteAbort, Abort) => reply(Ok(())),
            (S::PrepareCommit, Commit) | (S::PrepareAbort, Abort) => {
                reply(Err(ResponseError::ConcurrentTransactions))
            }
            _ => reply(Err(ResponseError::InvalidTxnState)),
        }
    }

    // ---- Admin ----

    /// DescribeTransactions for one id.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, ResponseError> {
        self.check_serving(transactional_id)?;
        let meta = self
            .txns
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .ok_or(ResponseError::TransactionalIdNotFound)?;
        Ok(TxnDescription {
            transactional_id: transactional_id.to_string(),
            state: meta.state,
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            timeout_ms: meta.timeout_ms,
            start_ms: meta.start_ms,
            partitions: meta.partitions.clone(),
        })
    }

    /// ListTransactions over this partition's ids, in id order.
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> Result<TxnListing, ResponseError> {
        if !self.loaded {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let mut listing = TxnListing::default();
        let mut states = Vec::new();
        for name in &filter.states {
            match TxnState::from_name(name) {
                Some(s) => states.push(s),
                None => listing.unknown_state_filters.push(name.clone()),
            }
        }
        listing.transactions = self
            .txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| {
                filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id)
            })
            .filter(|m| filter.states.is_empty() || states.contains(&m.state))
            .filter(|m| {
                filter.duration_ms < 0 || now_ms.saturating_sub(m.start_ms) > filter.duration_ms
            })
            .map(|m| ListedTxn {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        Ok(listing)
    }
}
