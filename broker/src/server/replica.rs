//! Follower replication at the edge: the leader's `Replica` gRPC service (the
//! batched `FetchSession` of `replica_session`, and the one-partition `Fetch`), the
//! follower's handling of a partition's answer (used by `fetcher`) and ISR proposals
//! sent to the controller (leaders are ticked by `timers` when a deadline is due). The
//! decisions are the pure state machines of `crate::replication`, held by each
//! [`Partition`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::broker::Broker;
use super::partition::Partition;
use crate::replication::follower::FetchRequest;
use crate::replication::leader::{FollowerFetch, FollowerFetchAnswer};
use crate::replication::BrokerEpoch;
use crate::replication::{HighWatermark, LeaderEpoch};

pub mod proto {
    tonic::include_proto!("fjord.replica");
}

use proto::replica_server::{Replica, ReplicaServer};

/// The leader's side of follower replication.
pub struct ReplicaService {
    broker: Arc<Broker>,
    sessions: parking_lot::Mutex<super::replica_session::Sessions>,
}

/// A session request names each partition in about 40 bytes: room for a full request
/// of every partition a follower broker may hold in one session.
const MAX_SESSION_REQUEST_BYTES: usize =
    64 * crate::replication::fetch_session::MAX_SESSION_PARTITIONS;

impl ReplicaService {
    pub fn server(broker: Arc<Broker>) -> ReplicaServer<ReplicaService> {
        ReplicaServer::new(ReplicaService {
            broker,
            sessions: Default::default(),
        })
        .max_decoding_message_size(MAX_SESSION_REQUEST_BYTES)
        // A response carries at most replica.fetch.max.bytes plus one batch.
        .max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl Replica for ReplicaService {
    async fn fetch(
        &self,
        request: tonic::Request<proto::FetchRequest>,
    ) -> Result<tonic::Response<proto::FetchResponse>, tonic::Status> {
        let caller = crate::quorum::internal_tls::caller_of(&request);
        let req = request.into_inner();
        self.broker.metrics.replica_fetch_requests.inc();
        let image = self.broker.image();
        let topic_id = Uuid::from_slice(&req.topic_id).ok();
        let state = topic_id
            .and_then(|id| image.topic_by_id(&id))
            .and_then(|t| t.partitions.get(usize::try_from(req.partition).ok()?));
        // Before anything is answered: to a peer that may not fetch this partition,
        // even whether it exists is not told.
        crate::quorum::authz::check(
            caller,
            &crate::quorum::authz::InternalCall::ReplicaFetch {
                replica: req.replica_id,
                partition: state,
            },
            &crate::quorum::authz::Roles {
                voters: &Default::default(),
            },
        )?;
        let error = |code: ResponseError| proto::FetchResponse {
            error_code: i32::from(code.code()),
            ..Default::default()
        };
        let Some(topic_id) = topic_id else {
            return Ok(tonic::Response::new(error(ResponseError::InvalidRequest)));
        };
        let Some(topic) = image.topic_by_id(&topic_id) else {
            return Ok(tonic::Response::new(error(
                ResponseError::UnknownTopicOrPartition,
            )));
        };
        let Some(partition) = self.broker.partitions.get(&topic.name, req.partition) else {
            return Ok(tonic::Response::new(error(
                ResponseError::NotLeaderOrFollower,
            )));
        };
        let fetch = FollowerFetch {
            replica: req.replica_id,
            current_leader_epoch: LeaderEpoch(req.current_leader_epoch),
            fetch_offset: req.fetch_offset,
            last_fetched_epoch: req.last_fetched_epoch,
            broker_epoch: req.replica_epoch.map(BrokerEpoch),
        };
        let max_wait = Duration::from_millis(u64::from(req.max_wait_ms))
            .min(Duration::from_millis(self.broker.config.request_timeout_ms));
        let max_bytes = usize::try_from(req.max_bytes.max(1)).unwrap_or(usize::MAX);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut log_end = partition.subscribe_log_end();
        loop {
            log_end.borrow_and_update();
            let mut result = partition.follower_fetch(&fetch, max_bytes);
            self.broker
                .propose_isr(&partition, std::mem::take(&mut result.proposals));
            let nothing_new = matches!(result.answer, FollowerFetchAnswer::Records { .. })
                && result.records.is_none();
            if !nothing_new || tokio::time::Instant::now() >= deadline {
                return Ok(tonic::Response::new(self.respond(result).await?));
            }
            // Caught up: wait for an append or the deadline, then answer from the log.
            // The follower's position was recorded either way.
            let _ = tokio::time::timeout_at(deadline, log_end.changed()).await;
        }
    }

    async fn fetch_session(
        &self,
        request: tonic::Request<proto::SessionFetchRequest>,
    ) -> Result<tonic::Response<proto::SessionFetchResponse>, tonic::Status> {
        let caller = crate::quorum::internal_tls::caller_of(&request);
        self.broker.metrics.replica_fetch_requests.inc();
        super::replica_session::fetch(&self.broker, &self.sessions, caller, request.into_inner())
            .await
            .map(tonic::Response::new)
    }
}

impl ReplicaService {
    async fn respond(
        &self,
        mut result: super::partition::FollowerFetchResult,
    ) -> Result<proto::FetchResponse, tonic::Status> {
        let records = match result.records.take() {
            Some(slice) => tokio::task::spawn_blocking(move || slice.read_to_bytes())
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .map_err(|e| tonic::Status::internal(format!("reading records: {e}")))?,
            None => Bytes::new(),
        };
        Ok(fetch_response(&result, records))
    }
}

/// The leader's answer to a follower fetch as it goes on the wire: the state machine's
/// answer, with `records` (read from the answer's file slice) when it sends records.
pub fn fetch_response(
    result: &super::partition::FollowerFetchResult,
    records: Bytes,
) -> proto::FetchResponse {
    let mut resp = proto::FetchResponse {
        log_start_offset: result.log_start_offset,
        ..Default::default()
    };
    match result.answer {
        FollowerFetchAnswer::Records { high_watermark, .. } => {
            resp.high_watermark = high_watermark.0;
            resp.records = records;
        }
        FollowerFetchAnswer::Diverging {
            epoch,
            end_offset,
            high_watermark,
        } => {
            resp.diverging = true;
            resp.diverging_epoch = epoch;
            resp.diverging_end_offset = end_offset;
            resp.high_watermark = high_watermark.0;
        }
        FollowerFetchAnswer::Error(code) => resp.error_code = i32::from(code.code()),
    }
    resp
}

/// A follower's handling of its leader's answer to `request`, or of the call's
/// failure (`Err`, counted as a network error so the state machine backs off): the
/// partition truncates, appends and takes the high watermark as its follower state
/// machine decides. A follower whose log ends before the leader's log start
/// (retention there moved past it) starts over at that log start; one past it
/// advances its own start to the leader's. `Err` is a failed write of this broker's
/// log.
pub fn on_fetch_answer(
    partition: &Partition,
    request: &FetchRequest,
    outcome: Result<proto::FetchResponse, String>,
) -> Result<(), String> {
    let mut reset_failed = None;
    let mut leader_log_start = None;
    let (answer, records) = match outcome {
        Ok(resp) => match answer_of(&resp) {
            Ok(answer) => {
                leader_log_start = Some(resp.log_start_offset);
                (answer, resp.records)
            }
            Err(ResponseError::OffsetOutOfRange)
                if resp.log_start_offset > partition.log_end_offset() =>
            {
                tracing::warn!(topic = %partition.topic, partition = partition.index,
                    leader_log_start = resp.log_start_offset, "follower fell behind the leader's log start");
                reset_failed = partition.reset_to(resp.log_start_offset).err();
                (
                    FollowerFetchAnswer::Error(ResponseError::OffsetOutOfRange),
                    Bytes::new(),
                )
            }
            Err(code) => (FollowerFetchAnswer::Error(code), Bytes::new()),
        },
        Err(e) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, leader = request.leader, error = %e, "follower fetch failed");
            (
                FollowerFetchAnswer::Error(ResponseError::NetworkException),
                Bytes::new(),
            )
        }
    };
    partition.on_fetch_response(request, answer, records)?;
    // The leader's start moved (DeleteRecords, retention): ours follows, so a new
    // leader after a failover does not serve what was deleted.
    if let Some(start) = leader_log_start {
        partition.follow_log_start(start)?;
    }
    reset_failed.map_or(Ok(()), Err)
}

fn answer_of(resp: &proto::FetchResponse) -> Result<FollowerFetchAnswer, ResponseError> {
    if resp.error_code != 0 {
        let code = i16::try_from(resp.error_code).unwrap_or(-1);
        return Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError));
    }
    let high_watermark = HighWatermark(resp.high_watermark);
    Ok(if resp.diverging {
        FollowerFetchAnswer::Diverging {
            epoch: resp.diverging_epoch,
            end_offset: resp.diverging_end_offset,
            high_watermark,
        }
    } else {
        FollowerFetchAnswer::Records {
            fetch_offset: 0,
            high_watermark,
        }
    })
}
