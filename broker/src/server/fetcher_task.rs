//! A replica fetcher at work: one task per leader broker (started by the metadata
//! install when `Fetchers::follow` asks for it), carrying out its [`FetcherState`]'s
//! requests over `Replica.FetchSession` until it has no partitions left.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::broker::Broker;
use super::fetch_health::{FetchHealth, Report};
use super::fetcher::{to_proto, FetcherState, Mailbox};
use super::replica_wire::proto;
use super::throttle_gate::BrokerGate;
use crate::replication::fetch_session::SessionRequest;
use crate::replication::{BrokerId, TopicPartition};

use proto::replica_client::ReplicaClient;

type Stopped = BoxFuture<'static, (TopicPartition, CancellationToken)>;

pub async fn run(broker: Arc<Broker>, leader: BrokerId, mailbox: Arc<Mailbox>) {
    broker.metrics.replica_fetchers.inc();
    let mut f = FetcherState::new(leader);
    let mut health = FetchHealth::default();
    let mut stops: FuturesUnordered<Stopped> = FuturesUnordered::new();
    let backoff_ms = i64::try_from(broker.config.replica_fetch_backoff_ms).unwrap_or(i64::MAX);
    loop {
        let inbox = std::mem::take(&mut *mailbox.inbox.lock());
        for tp in inbox.removed {
            f.remove(&tp);
        }
        for (partition, stop) in inbox.added {
            let (tp, owned) = (partition.topic_partition(), stop.clone());
            stops.push(Box::pin(async move {
                owned.cancelled().await;
                (tp, owned)
            }));
            f.add(partition, stop);
        }
        inbox.touched.into_iter().for_each(|tp| f.touch(tp));
        while let Some(Some((tp, _))) = stops.next().now_or_never() {
            if f.leave_if_stopped(&tp) {
                broker.fetchers.left(&tp, leader);
            }
        }
        if f.is_empty() && broker.fetchers.end_if_empty(leader, &mailbox) {
            break;
        }
        let now_ms = broker.clock.now_ms();
        let Some(request) = f.next_request(now_ms, backoff_ms, &BrokerGate::follower(&broker))
        else {
            // Nothing to fetch now (backing off, or no leader yet): wait for news.
            let wait_ms = f.next_retry_ms().map_or(backoff_ms, |at| at - now_ms);
            let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
            tokio::select! {
                _ = mailbox.wake.notified() => {}
                Some((tp, _)) = stops.next() => {
                    if f.leave_if_stopped(&tp) {
                        broker.fetchers.left(&tp, leader);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        };
        match call(&broker, leader, f.len(), &request).await {
            Ok(response) => {
                if let Some(Report::Recovered { after_ms }) =
                    health.on_success(broker.clock.now_ms())
                {
                    tracing::info!(
                        leader,
                        after_ms,
                        "replica fetches from the leader succeed again"
                    );
                }
                for e in f.on_response(response, &BrokerGate::follower(&broker)) {
                    tracing::error!(leader, error = %e, "replicating failed");
                }
            }
            // Every partition backs off; the wait is the retries' (above).
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                if let Some(Report::Failing { failures, for_ms }) =
                    health.on_failure(broker.clock.now_ms())
                {
                    tracing::warn!(leader, failures, for_ms, error = %e, "replica fetches from the leader keep failing");
                }
                f.on_failure(&e);
            }
        }
    }
    broker.metrics.replica_fetchers.dec();
}

async fn call(
    broker: &Broker,
    leader: BrokerId,
    partitions: usize,
    request: &SessionRequest,
) -> Result<proto::SessionFetchResponse, String> {
    let address = broker
        .image()
        .broker(leader)
        .map(|b| b.endpoint.internal.clone())
        .ok_or_else(|| format!("leader {leader} is not registered"))?;
    let channel = broker.peers.get(leader, &address)?;
    let max_bytes = broker.config.replica_fetch_response_max_bytes;
    let max_wait_ms = u32::try_from(broker.config.replica_fetch_wait_max_ms).unwrap_or(u32::MAX);
    // The budget, one batch beyond it, and each partition's framing.
    let decode_max = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(broker.config.message_max_bytes as usize)
        .saturating_add(64 * partitions)
        .saturating_add(64 * 1024);
    let mut client = ReplicaClient::new(channel).max_decoding_message_size(decode_max);
    let mut req = tonic::Request::new(to_proto(
        request,
        broker.node_id(),
        broker.quorum().and_then(|q| q.broker_epoch()),
        max_wait_ms,
        max_bytes,
        broker.config.replica_fetch_max_bytes,
    ));
    req.set_timeout(
        Duration::from_millis(u64::from(max_wait_ms))
            + Duration::from_millis(broker.config.request_timeout_ms),
    );
    client
        .fetch_session(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("{}: {}", s.code(), s.message()))
}
