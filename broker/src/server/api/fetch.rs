//! Fetch: whole batches from each partition up to the high watermark (read_uncommitted)
//! or the last stable offset (read_committed, with the aborted transactions the
//! batches overlap, KIP-98), waiting up to max_wait_ms for min_bytes to arrive. The
//! last stable offset moves only with the high watermark (a marker is stable once the
//! high watermark passes it), so waiting on the high watermark wakes both.
//!
//! Record data is not read here: each partition contributes a file range that the
//! connection sends with sendfile (see `protocol::fetch_response`).
//!
//! Fetch sessions (KIP-227): `fetch_session::SessionCache` decides from the request's
//! session id and epoch which partitions to read and which of them to answer; this
//! handler reads them and carries that out. An incremental fetch of idle partitions
//! waits like a full one and answers none of them.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use super::{count_error, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::fetch_session::{
    FetchContext, FetchParams, PartitionKey, PartitionState, ReadOutcome, SessionCache,
    SessionRequest, FINAL_EPOCH, INVALID_SESSION_ID,
};
use crate::log::{FileSlice, ReadError};
use crate::server::broker::Broker;

/// A fetch answer: the response fields, and per topic and partition the record data
/// as a file range (`None`: no records).
pub struct FetchReply {
    pub response: FetchResponse,
    pub records: Vec<Vec<Option<(FileSlice, usize)>>>,
}

/// One partition as read: the answer's fields and its record data.
struct Read {
    data: PartitionData,
    slice: Option<FileSlice>,
}

struct Gathered {
    reads: Vec<Read>,
    bytes: usize,
    any_error: bool,
}

/// What the session rules asked of this request once it is read.
enum Mode {
    Sessionless,
    Full,
    Incremental(i32),
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: FetchRequest) -> FetchReply {
    let requested = requested_partitions(&req);
    let forgotten: Vec<PartitionKey> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic: Arc<str> = Arc::from(t.topic.0.as_str());
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect();
    let owner = ctx.principal.to_string();
    let now_ms = || u64::try_from(broker.clock.now_ms()).unwrap_or(0);
    // Fetch v4-v6 have no session fields: always a full, sessionless fetch.
    let (session_id, epoch) = if ctx.version >= 7 {
        (req.session_id, req.session_epoch)
    } else {
        (INVALID_SESSION_ID, FINAL_EPOCH)
    };
    let decided = sessions(broker, |cache| {
        cache.begin(
            &SessionRequest {
                session_id,
                epoch,
                // Fetch is served up to v12, which names topics.
                uses_topic_ids: ctx.version >= 13,
                owner: &owner,
                partitions: &requested,
                forgotten: &forgotten,
            },
            now_ms(),
        )
    });
    let (partitions, mode) = match decided {
        FetchContext::Error(e) => {
            let code = e.code().code();
            count_error(broker, ctx.api_key, code);
            return FetchReply {
                // Kafka answers a refused session with session id 0 and no partitions.
                response: FetchResponse::default().with_error_code(code),
                records: vec![],
            };
        }
        FetchContext::Sessionless => (requested, Mode::Sessionless),
        FetchContext::Full => (requested, Mode::Full),
        FetchContext::Incremental {
            session_id,
            partitions,
        } => (partitions, Mode::Incremental(session_id)),
    };

    let max_wait_ms = u64::try_from(req.max_wait_ms)
        .unwrap_or(0)
        .min(broker.config.request_timeout_ms);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let gathered = loop {
        let mut watchers = Vec::new();
        let gathered = gather(broker, ctx, &req, &partitions, &mut watchers);
        let done = gathered.bytes >= min_bytes.max(1)
            || gathered.any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            break gathered;
        }
        // Watchers were subscribed before reading, so an append that raced with the
        // read still wakes us.
        let changed =
            futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        let timed_out = tokio::select! {
            _ = changed => false,
            _ = tokio::time::sleep_until(deadline) => true,
        };
        // No high watermark moved while waiting: a read that found nothing would find
        // nothing again, so answer it rather than read every partition a second time.
        if timed_out
            && gathered.bytes == 0
            && !watchers.iter().any(|w| w.has_changed().unwrap_or(false))
        {
            break gathered;
        }
    };

    let (session_id, keep) = match mode {
        Mode::Sessionless => (INVALID_SESSION_ID, None),
        Mode::Full => {
            let told = partitions
                .iter()
                .zip(&gathered.reads)
                .map(|((key, params), read)| (key.clone(), *params, told_state(&read.data)))
                .collect();
            let id = sessions(broker, |cache| cache.create(&owner, false, told, now_ms()));
            (id, None)
        }
        Mode::Incremental(id) => {
            let outcomes: Vec<(PartitionKey, ReadOutcome)> = partitions
                .iter()
                .zip(&gathered.reads)
                .map(|((key, _), read)| (key.clone(), outcome(read)))
                .collect();
            (
                id,
                Some(sessions(broker, |cache| cache.select(id, &outcomes))),
            )
        }
    };
    let reply = assemble(&partitions, gathered.reads, keep.as_deref(), session_id);
    for (t, topic) in reply.response.responses.iter().enumerate() {
        let name = topic.topic.0.as_str();
        for (p, part) in topic.partitions.iter().enumerate() {
            count_error(broker, ctx.api_key, part.error_code);
            if let Some((_, len)) = &reply.records[t][p] {
                broker
                    .metrics
                    .bytes_out
                    .with_label_values(&[name])
                    .inc_by(*len as u64);
            }
        }
    }
    reply
}

/// Runs `f` on the broker's session cache, then shows the cache's size in the metrics.
fn sessions<T>(broker: &Broker, f: impl FnOnce(&mut SessionCache) -> T) -> T {
    let mut cache = broker.fetch_sessions.lock();
    let out = f(&mut cache);
    let (len, partitions) = (cache.len(), cache.cached_partitions());
    drop(cache);
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    broker.metrics.fetch_sessions.set(gauge(len));
    broker
        .metrics
        .fetch_session_partitions
        .set(gauge(partitions));
    out
}

/// The request's partitions in its order.
fn requested_partitions(req: &FetchRequest) -> Vec<(PartitionKey, FetchParams)> {
    let mut out = Vec::with_capacity(req.topics.iter().map(|t| t.partitions.len()).sum());
    for topic in &req.topics {
        let name: Arc<str> = Arc::from(topic.topic.0.as_str());
        for fp in &topic.partitions {
            out.push((
                (name.clone(), fp.partition),
                FetchParams {
                    fetch_offset: fp.fetch_offset,
                    partition_max_bytes: fp.partition_max_bytes,
                    current_leader_epoch: fp.current_leader_epoch,
                },
            ));
        }
    }
    out
}

/// What the consumer is told of a partition by this answer (`None` after an error, so
/// the state is told again once the error is gone).
fn told_state(data: &PartitionData) -> Option<PartitionState> {
    (data.error_code == 0).then_some(PartitionState {
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
    })
}

fn outcome(read: &Read) -> ReadOutcome {
    ReadOutcome {
        record_bytes: read.slice.as_ref().map_or(0, |s| s.len),
        error_code: read.data.error_code,
        state: PartitionState {
            high_watermark: read.data.high_watermark,
            last_stable_offset: read.data.last_stable_offset,
            log_start_offset: read.data.log_start_offset,
        },
    }
}

/// The answer: the kept reads, adjacent partitions of one topic under one topic entry.
fn assemble(
    partitions: &[(PartitionKey, FetchParams)],
    reads: Vec<Read>,
    keep: Option<&[bool]>,
    session_id: i32,
) -> FetchReply {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut records: Vec<Vec<Option<(FileSlice, usize)>>> = Vec::new();
    let mut last: Option<&Arc<str>> = None;
    for (i, (((topic, _), _), read)) in partitions.iter().zip(reads).enumerate() {
        if keep.is_some_and(|k| !k[i]) {
            continue;
        }
        if last != Some(topic) {
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string()))),
            );
            records.push(Vec::new());
            last = Some(topic);
        }
        responses
            .last_mut()
            .expect("pushed above")
            .partitions
            .push(read.data);
        records
            .last_mut()
            .expect("pushed above")
            .push(read.slice.map(|s| {
                let len = s.len;
                (s, len)
            }));
    }
    FetchReply {
        response: FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(responses),
        records,
    }
}

/// Reads `partitions` in order, within the request's byte limit, subscribing to each
/// partition it may wait on.
fn gather(
    broker: &Broker,
    ctx: &RequestContext,
    req: &FetchRequest,
    partitions: &[(PartitionKey, FetchParams)],
    watchers: &mut Vec<watch::Receiver<i64>>,
) -> Gathered {
    let v = ctx.version;
    let image = broker.image();
    let mut remaining = usize::try_from(req.max_bytes).unwrap_or(0);
    let mut bytes = 0usize;
    let mut any_error = false;
    let mut reads = Vec::with_capacity(partitions.len());
    let auth = super::acls::authorizer(broker, ctx, &image);
    // Partitions of one topic are adjacent: authorize once per run of them.
    let mut may_read: Option<(&str, bool)> = None;
    for ((topic, partition), fp) in partitions {
        let name: &str = topic;
        let allowed = match may_read {
            Some((n, allowed)) if n == name => allowed,
            _ => {
                let allowed = auth.authorize(AclOperation::Read, ResourceType::Topic, name);
                may_read = Some((name, allowed));
                allowed
            }
        };
        let mut pd = PartitionData::default().with_partition_index(*partition);
        let mut slice = None;
        let led = if allowed {
            super::led_partition(broker, &image, name, *partition)
        } else {
            Err(ResponseError::TopicAuthorizationFailed)
        };
        match led {
            Err(code) => pd.error_code = code.code(),
            Ok(partition) => {
                let epoch = partition.leader_epoch();
                if v >= 9 && fp.current_leader_epoch != -1 && fp.current_leader_epoch != epoch {
                    pd.error_code = if fp.current_leader_epoch < epoch {
                        ResponseError::FencedLeaderEpoch.code()
                    } else {
                        ResponseError::UnknownLeaderEpoch.code()
                    };
                } else {
                    watchers.push(partition.subscribe());
                    let limit = usize::try_from(fp.partition_max_bytes)
                        .unwrap_or(0)
                        .min(remaining);
                    // Kafka's rule: the first batch of the response is returned whole
                    // even above the limits, or a consumer facing a large batch stalls.
                    let min_one = bytes == 0;
                    let read_committed = req.isolation_level == 1;
                    let read =
                        partition.read_isolated(fp.fetch_offset, limit, min_one, read_committed);
                    let (hw, lso) = match &read {
                        Ok(r) => (r.high_watermark, r.last_stable_offset),
                        Err(_) => partition.stable_offsets(),
                    };
                    match read {
                        Ok(read) => {
                            let info = read.info;
                            if read_committed {
                                pd.aborted_transactions = Some(
                                    read.aborted
                                        .iter()
                                        .map(|t| {
                                            AbortedTransaction::default()
                                                .with_producer_id(ProducerId(t.producer_id))
                                                .with_first_offset(t.first_offset)
                                        })
                                        .collect(),
                                );
                            }
                            pd.log_start_offset = info.log_start_offset;
                            if let Some(s) = info.slice {
                                let records_out = info.next_offset - fp.fetch_offset.max(0);
                                broker
                                    .metrics
                                    .messages_out
                                    .with_label_values(&[name])
                                    .inc_by(u64::try_from(records_out).unwrap_or(0));
                                bytes += s.len;
                                remaining = remaining.saturating_sub(s.len);
                                slice = Some(s);
                            }
                        }
                        Err(ReadError::OffsetOutOfRange {
                            log_start_offset, ..
                        }) => {
                            pd.error_code = ResponseError::OffsetOutOfRange.code();
                            pd.log_start_offset = log_start_offset;
                        }
                        Err(ReadError::Io(e)) => {
                            tracing::error!(topic = name, partition = pd.partition_index, error = %e, "log read failed");
                            pd.error_code = ResponseError::KafkaStorageError.code();
                        }
                    }
                    pd.high_watermark = hw;
                    pd.last_stable_offset = lso;
                }
            }
        }
        any_error |= pd.error_code != 0;
        if v < 5 {
            pd.log_start_offset = -1;
        }
        // Only read_committed answers name aborted transactions (null otherwise).
        if req.isolation_level != 1 {
            pd.aborted_transactions = None;
        } else if pd.aborted_transactions.is_none() {
            pd.aborted_transactions = Some(Vec::new());
        }
        reads.push(Read { data: pd, slice });
    }
    Gathered {
        reads,
        bytes,
        any_error,
    }
}

#[cfg(test)]
#[path = "fetch_txn_tests.rs"]
mod txn_tests;
