//! Produce: validate and append each partition's batch, then answer per acks.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::log::batch::ATTRIBUTES_AT;
use crate::log::codec::Compression;
use crate::log::AppendError;
use crate::server::broker::Broker;
use crate::server::offline::Cause;
use crate::server::partition::{Acks, Partition};

/// A produce request whose batches are in the log: what is left is waiting for the
/// ISR (acks=all) and for syncs (`flush.messages`) before answering.
pub struct Produced {
    acks: i16,
    version: i16,
    wait_ms: i64,
    responses: Vec<TopicProduceResponse>,
    /// Per (topic, partition) index into `responses`: what the answer waits on.
    waits: Vec<(usize, usize, PartitionWait)>,
}

/// What one partition's answer waits on.
struct PartitionWait {
    partition: Arc<Partition>,
    /// acks=all: the ISR's confirmation.
    replicated: Option<AckWait>,
    /// `flush.messages`: a sync through this offset.
    flush_through: Option<i64>,
}

impl Produced {
    /// Wait for the ISR and the syncs, then answer. `None` for acks=0: the client
    /// expects no response at all.
    pub async fn finish(self, broker: &Broker) -> Option<ProduceResponse> {
        let Produced {
            acks,
            version: v,
            wait_ms,
            mut responses,
            waits,
        } = self;
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
        // Syncs first, all partitions at once; the ISR's confirmations are usually in by
        // then.
        let flushes = futures::future::join_all(waits.iter().map(|(_, _, w)| async {
            match w.flush_through {
                Some(offset) => w.partition.flush_through(offset).await.err(),
                None => None,
            }
        }))
        .await;
        for ((t, p, w), flushed) in waits.into_iter().zip(flushes) {
            if flushed == Some(ResponseError::KafkaStorageError) {
                // Nothing written since the failed sync is known durable until the log
                // is opened again: stop serving it until it has been.
                broker.take_offline(
                    &w.partition,
                    Cause::Unavailable("a sync of the log to disk failed".into()),
                );
            }
            let replicated = match w.replicated {
                None => None,
                Some(rx) => match tokio::time::timeout_at(until, rx).await {
                    Ok(Ok(None)) => None,
                    Ok(Ok(Some(code))) => Some(code),
                    Ok(Err(_)) => Some(ResponseError::NotLeaderOrFollower),
                    Err(_) => Some(ResponseError::RequestTimedOut),
                },
            };
            let (code, what) = match (flushed, replicated) {
                (Some(code), _) => (code, "the write could not be synced to disk"),
                (None, Some(code)) => (code, "the in-sync replicas did not confirm the write"),
                (None, None) => continue,
            };
            count_error(broker, ApiKey::Produce, code.code());
            let resp = &mut responses[t].partition_responses[p];
            resp.error_code = code.code();
            resp.base_offset = -1;
            if v >= 8 {
                resp.error_message = Some(str_bytes(format!("{what}: {code}")));
            }
        }
        (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    }
}

/// Validate and append every partition's batch, in request order. The answer comes
/// from [`Produced::finish`].
pub fn start(broker: &Broker, ctx: &RequestContext, req: ProduceRequest) -> Produced {
    let v = ctx.version;
    let acks = req.acks;
    let image = broker.image();
    // acks=all: how long the ISR may take, the client's timeout within the broker's bound.
    let wait_ms = i64::from(req.timeout_ms.max(0))
        .min(i64::try_from(broker.config.request_timeout_ms).unwrap_or(i64::MAX));
    let deadline_ms = broker.clock.now_ms() + wait_ms;
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let auth = super::acls::authorizer(broker, ctx, &image);
    // A transactional id makes the request a transaction's: its batches may be
    // transactional (the log checks each against the producer's epoch). An empty id
    // is none, as Kafka reads it.
    let transactional_id = req
        .transactional_id
        .as_ref()
        .map(|id| id.0.to_string())
        .filter(|id| !id.is_empty());
    let may_transact = transactional_id
        .as_ref()
        .is_none_or(|id| auth.authorize(AclOperation::Write, ResourceType::TransactionalId, id));
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        // Kafka answers an unauthorized topic so whether or not it exists.
        let may_write = auth.authorize(AclOperation::Write, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut resp = PartitionProduceResponse::default().with_index(pd.index);
            let code = if !(-1..=1).contains(&acks) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={acks} is not -1, 0 or 1"),
                ))
            } else if !may_transact {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    format!(
                        "{} may not write as transactional id {:?}",
                        ctx.principal,
                        transactional_id.as_deref().unwrap_or_default()
                    ),
                ))
            } else if !may_write {
                Err((
                    ResponseError::TopicAuthorizationFailed,
                    format!("{} may not write to topic {name:?}", ctx.principal),
                ))
            } else {
                append_one(
                    broker,
                    &image,
                    &name,
                    pd.index,
                    pd.records,
                    (acks, deadline_ms),
                    transactional_id.is_some(),
                    v,
                    &mut resp,
                )
                .map(|wait| {
                    if let Some(wait) = wait {
                        waits.push((responses.len(), partitions.len(), wait));
                    }
                })
            };
            if let Err((code, message)) = code {
                count_error(broker, ctx.api_key, code.code());
                tracing::debug!(topic = %name, partition = pd.index, ?code, "produce refused: {message}");
                resp.error_code = code.code();
                resp.base_offset = -1;
                if v >= 8 {
                    resp.error_message = Some(str_bytes(message));
                }
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    Produced {
        acks,
        version: v,
        wait_ms,
        responses,
        waits,
    }
}

type AckWait = tokio::sync::oneshot::Receiver<Option<ResponseError>>;

/// Append one partition's batch; also returns what its answer waits on, if anything.
#[allow(clippy::too_many_arguments)]
fn append_one(
    broker: &Broker,
    image: &crate::metadata::image::MetadataImage,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    (acks, deadline_ms): (i16, i64),
    transactional: bool,
    version: i16,
    resp: &mut PartitionProduceResponse,
) -> Result<Option<PartitionWait>, (ResponseError, String)> {
    let unknown = || {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} partition {index} does not exist"),
        )
    };
    let state = image.partition(topic, index).ok_or_else(unknown)?;
    if let Some(cause) = broker.offline.cause(topic, index) {
        return Err((
            ResponseError::KafkaStorageError,
            format!("topic {topic:?} partition {index} is offline on this broker: {cause}"),
        ));
    }
    let partition = broker.partitions.get(topic, index).ok_or_else(|| {
        (
            ResponseError::NotLeaderOrFollower,
            format!(
                "topic {topic:?} partition {index} is led by broker {}",
                state.leader
            ),
        )
    })?;
    // Kafka: INVALID_RECORD, a produce request carries one batch per partition.
    let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
        (
            ResponseError::InvalidRecord,
            format!("topic {topic:?} partition {index}: produce without records"),
        )
    })?;
    // zstd came with Produce v7 (KIP-110); Kafka refuses it in older requests, whose
    // clients could not read it back.
    let codec = records
        .get(ATTRIBUTES_AT..ATTRIBUTES_AT + 2)
        .and_then(|a| Compression::from_attributes(i16::from_be_bytes([a[0], a[1]])));
    if version < 7 && codec == Some(Compression::Zstd) {
        return Err((
            ResponseError::UnsupportedCompressionType,
            format!("topic {topic:?} partition {index}: zstd batches need Produce v7 or later"),
        ));
    }
    let size = records.len() as u64;
    // The batch goes to the log as a slice of the request frame, without a copy.
    let acks = if acks == -1 {
        Acks::All { deadline_ms }
    } else {
        Acks::Leader
    };
    let appended = if transactional {
        partition.append_transactional(records, acks)
    } else {
        partition.append_produce(records, acks)
    };
    let appended = appended.map_err(|e| {
        if let AppendError::Io(io) = &e {
            tracing::error!(topic, partition = index, error = %io, "log append failed");
        }
        // KIP-467: each refused record by its index in the batch, so the client fails
        // exactly those.
        if let (AppendError::RecordsRefused(refused), true) = (&e, version >= 8) {
            resp.record_errors = refused
                .records
                .iter()
                .map(|(i, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(*i)
                        .with_batch_index_error_message(message.clone().map(str_bytes))
                })
                .collect();
        }
        (
            crate::server::partition::append_error_code(&e),
            format!("topic {topic:?} partition {index}: {e}"),
        )
    })?;
    broker.propose_isr(&partition, appended.proposals);
    let info = appended.info;
    if !info.duplicate {
        broker
            .metrics
            .bytes_in
            .with_label_values(&[topic])
            .inc_by(size);
        broker
            .metrics
            .messages_in
            .with_label_values(&[topic])
            .inc_by((info.last_offset - info.base_offset + 1) as u64);
    }
    resp.base_offset = info.base_offset;
    resp.log_append_time_ms = info.log_append_time_ms;
    if version >= 5 {
        resp.log_start_offset = info.log_start_offset;
    }
    let flush_through = appended.flush_due.then_some(info.last_offset);
    Ok(
        (appended.replicated.is_some() || flush_through.is_some()).then(|| PartitionWait {
            partition,
            replicated: appended.replicated,
            flush_through,
        }),
    )
}
