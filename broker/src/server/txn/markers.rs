//! Transaction markers between brokers (Kafka's WriteTxnMarkers, on Fjord's internal
//! plane): the coordinator's side sends one call per partition leader, the leader's
//! side appends one control batch per partition, replicated like an acks=all append.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::log::txn::EndTxnMarker;
use crate::server::broker::Broker;
use crate::server::partition::append_error_code;
use crate::server::replica_wire::proto;
use crate::txn::{MarkerOutcome, MarkerResults, MarkerWrite, TopicPartition, TxnResult};

use proto::txn_markers_client::TxnMarkersClient;
use proto::txn_markers_server::{TxnMarkers, TxnMarkersServer};

/// Partitions one call may name: a transaction's partitions fit in one
/// `__transaction_state` record (max.message.bytes), a few tens of bytes each.
const MAX_PARTITIONS_PER_CALL: usize = 100_000;

/// Write `write`'s markers, for the coordinator of `__transaction_state` partition
/// `state_partition`: locally for the partitions this broker leads, by one call per
/// other leader; one outcome per partition.
pub async fn send(broker: &Broker, state_partition: i32, write: &MarkerWrite) -> MarkerResults {
    let image = broker.image();
    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(write.partitions.len());
    for tp in &write.partitions {
        match image.topic(&tp.topic) {
            None => outcomes.push((tp.clone(), MarkerOutcome::Deleted)),
            Some(t) => match t
                .partitions
                .get(usize::try_from(tp.partition).unwrap_or(usize::MAX))
            {
                None => outcomes.push((tp.clone(), MarkerOutcome::Deleted)),
                Some(p) if p.leader < 0 => outcomes.push((
                    tp.clone(),
                    MarkerOutcome::Failed(ResponseError::LeaderNotAvailable),
                )),
                Some(p) => by_leader.entry(p.leader).or_default().push(tp.clone()),
            },
        }
    }
    let marker = EndTxnMarker {
        producer_id: write.producer_id,
        producer_epoch: write.producer_epoch,
        coordinator_epoch: write.coordinator_epoch,
        commit: write.result == TxnResult::Commit,
    };
    let calls = by_leader
        .into_iter()
        .map(|(leader, partitions)| async move {
            let codes = if leader == broker.node_id() {
                write_local(broker, &marker, &partitions).await
            } else {
                call(broker, leader, state_partition, &marker, &partitions).await
            };
            partitions.into_iter().zip(codes).collect::<Vec<_>>()
        });
    for answered in futures::future::join_all(calls).await {
        outcomes.extend(answered.into_iter().map(|(tp, code)| {
            let outcome = match code {
                None => MarkerOutcome::Written,
                Some(code) => MarkerOutcome::Failed(code),
            };
            (tp, outcome)
        }));
    }
    MarkerResults {
        transactional_id: write.transactional_id.clone(),
        producer_id: write.producer_id,
        producer_epoch: write.producer_epoch,
        partitions: outcomes,
    }
}

/// One WriteTxnMarkers call to `leader`: its error per partition, or a transport
/// failure (REQUEST_TIMED_OUT for every partition: the coordinator retries).
async fn call(
    broker: &Broker,
    leader: i32,
    state_partition: i32,
    marker: &EndTxnMarker,
    partitions: &[TopicPartition],
) -> Vec<Option<ResponseError>> {
    let failed = |why: &str| {
        tracing::debug!(leader, why, "transaction markers not delivered");
        vec![Some(ResponseError::RequestTimedOut); partitions.len()]
    };
    let Some(address) = broker
        .image()
        .broker(leader)
        .map(|b| b.endpoint.internal.clone())
    else {
        return vec![Some(ResponseError::NotLeaderOrFollower); partitions.len()];
    };
    let channel = match broker.peers.get(leader, &address) {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let mut req = tonic::Request::new(proto::WriteTxnMarkersRequest {
        coordinator_id: broker.node_id(),
        producer_id: marker.producer_id,
        producer_epoch: i32::from(marker.producer_epoch),
        commit: marker.commit,
        coordinator_epoch: marker.coordinator_epoch,
        state_partition,
        partitions: partitions
            .iter()
            .map(|tp| proto::TxnPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
            .collect(),
    });
    req.set_timeout(Duration::from_millis(broker.config.request_timeout_ms));
    match TxnMarkersClient::new(channel).write_txn_markers(req).await {
        Ok(resp) => {
            let codes = resp.into_inner().error_codes;
            if codes.len() != partitions.len() {
                return failed("an answer that does not match the request");
            }
            codes
                .into_iter()
                .map(|c| {
                    let code = i16::try_from(c).unwrap_or(-1);
                    (code != 0).then(|| {
                        ResponseError::try_from_code(code)
                            .unwrap_or(ResponseError::UnknownServerError)
                    })
                })
                .collect()
        }
        Err(status) => failed(status.message()),
    }
}

/// Append `marker` to each partition this broker leads and wait until its ISR holds
/// it; the error per partition (None: written).
pub async fn write_local(
    broker: &Broker,
    marker: &EndTxnMarker,
    partitions: &[TopicPartition],
) -> Vec<Option<ResponseError>> {
    let writes = partitions.iter().map(|tp| write_one(broker, marker, tp));
    futures::future::join_all(writes).await
}

async fn write_one(
    broker: &Broker,
    marker: &EndTxnMarker,
    tp: &TopicPartition,
) -> Option<ResponseError> {
    if broker.image().partition(&tp.topic, tp.partition).is_none() {
        return Some(ResponseError::UnknownTopicOrPartition);
    }
    let Some(partition) = broker.partitions.get(&tp.topic, tp.partition) else {
        return Some(ResponseError::NotLeaderOrFollower);
    };
    let deadline_ms =
        broker.clock.now_ms() + i64::try_from(broker.config.request_timeout_ms).unwrap_or(i64::MAX);
    let appended = match partition.append_txn_marker(marker, deadline_ms) {
        Ok(a) => a,
        Err(e) => return Some(append_error_code(&e)),
    };
    broker.propose_isr(&partition, appended.proposals);
    if let Some(rx) = appended.replicated {
        match rx.await {
            Ok(None) => {}
            Ok(Some(code)) => return Some(code),
            Err(_) => return Some(ResponseError::NotLeaderOrFollower),
        }
    }
    // Offsets a TxnOffsetCommit left pending in the groups of this partition end with
    // the marker.
    if tp.topic == crate::group::OFFSETS_TOPIC {
        if let Some(groups) = broker.groups() {
            groups.complete_txn(tp.partition, marker.producer_id, marker.commit);
        }
    }
    None
}

/// The leader's side of WriteTxnMarkers on the internal plane.
pub struct TxnMarkersService {
    broker: Arc<Broker>,
}

impl TxnMarkersService {
    pub fn server(broker: Arc<Broker>) -> TxnMarkersServer<TxnMarkersService> {
        TxnMarkersServer::new(TxnMarkersService { broker })
    }
}

#[tonic::async_trait]
impl TxnMarkers for TxnMarkersService {
    async fn write_txn_markers(
        &self,
        request: tonic::Request<proto::WriteTxnMarkersRequest>,
    ) -> Result<tonic::Response<proto::WriteTxnMarkersResponse>, tonic::Status> {
        let caller = crate::quorum::internal_tls::caller_of(&request);
        let req = request.into_inner();
        let image = self.broker.image();
        let state_partition = image
            .topic(crate::txn::TRANSACTION_STATE_TOPIC)
            .and_then(|t| t.partitions.get(usize::try_from(req.state_partition).ok()?));
        crate::quorum::authz::check(
            caller,
            &crate::quorum::authz::InternalCall::WriteTxnMarkers {
                coordinator: req.coordinator_id,
                state_partition,
            },
            &crate::quorum::authz::Roles {
                voters: &Default::default(),
            },
        )?;
        let producer_epoch = i16::try_from(req.producer_epoch)
            .map_err(|_| tonic::Status::invalid_argument("producer epoch out of range"))?;
        if req.producer_id < 0 || producer_epoch < 0 {
            return Err(tonic::Status::invalid_argument("no producer id or epoch"));
        }
        if req.partitions.len() > MAX_PARTITIONS_PER_CALL {
            return Err(tonic::Status::invalid_argument("too many partitions"));
        }
        let marker = EndTxnMarker {
            producer_id: req.producer_id,
            producer_epoch,
            coordinator_epoch: req.coordinator_epoch,
            commit: req.commit,
        };
        let partitions: Vec<TopicPartition> = req
            .partitions
            .iter()
            .map(|p| TopicPartition::new(&p.topic, p.partition))
            .collect();
        let codes = write_local(&self.broker, &marker, &partitions).await;
        Ok(tonic::Response::new(proto::WriteTxnMarkersResponse {
            error_codes: codes
                .into_iter()
                .map(|c| i32::from(c.map_or(0, |c| c.code())))
                .collect(),
        }))
    }
}
