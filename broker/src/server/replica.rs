//! Follower replication at the edge: the leader's `Replica` gRPC service (the
//! batched `FetchSession` of `replica_session`, and the one-partition `Fetch`) and ISR
//! proposals sent to the controller (leaders are ticked by `timers` when a deadline is
//! due). The wire form and the follower's handling of an answer are in `replica_wire`.
//! The decisions are the pure state machines of `crate::replication`, held by each
//! [`Partition`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::broker::Broker;
use super::replica_wire::{fetch_response, proto};
use crate::replication::leader::{FollowerFetch, FollowerFetchAnswer};
use crate::replication::BrokerEpoch;
use crate::replication::LeaderEpoch;

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
            isr_eligible: image.isr_eligible(req.replica_id, req.replica_epoch),
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
