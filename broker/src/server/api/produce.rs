//! Produce: validate and append each partition's batch, then answer per acks.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{count_error, str_bytes, RequestContext};
use crate::config::effective_topic_config;
use crate::log::AppendError;
use crate::server::broker::{now_ms, Broker};

fn append_error_code(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Corrupt(_) => ResponseError::CorruptMessage,
        AppendError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::Unsupported(_) => ResponseError::UnsupportedForMessageFormat,
        AppendError::InvalidRecord(_) => ResponseError::InvalidRecord,
        AppendError::Io(_) => ResponseError::KafkaStorageError,
        AppendError::NotLeader => ResponseError::NotLeaderOrFollower,
        AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
    }
}

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let v = ctx.version;
    let acks = req.acks;
    let image = broker.image();
    // acks=all: how long the ISR may take, the client's timeout within the broker's bound.
    let wait_ms = i64::from(req.timeout_ms.max(0))
        .min(i64::try_from(broker.config.request_timeout_ms).unwrap_or(i64::MAX));
    let deadline_ms = now_ms() + wait_ms;
    let mut waiting = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut resp = PartitionProduceResponse::default().with_index(pd.index);
            let code = if !(-1..=1).contains(&acks) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={acks} is not -1, 0 or 1"),
                ))
            } else if req.transactional_id.is_some() {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "transactions are not supported".into(),
                ))
            } else {
                append_one(
                    broker,
                    &image,
                    &name,
                    pd.index,
                    pd.records,
                    (acks, deadline_ms),
                    v,
                    &mut resp,
                )
                .map(|rx| {
                    if let Some(rx) = rx {
                        waiting.push((responses.len(), partitions.len(), rx));
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
    // acks=all: answer once the ISR holds every batch of the request (or with the
    // error that ended the wait).
    let until = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
    for (t, p, rx) in waiting {
        let outcome = tokio::time::timeout_at(until, rx).await;
        let error = match outcome {
            Ok(Ok(None)) => None,
            Ok(Ok(Some(code))) => Some(code),
            Ok(Err(_)) => Some(ResponseError::NotLeaderOrFollower),
            Err(_) => Some(ResponseError::RequestTimedOut),
        };
        if let Some(code) = error {
            count_error(broker, ctx.api_key, code.code());
            let resp = &mut responses[t].partition_responses[p];
            resp.error_code = code.code();
            resp.base_offset = -1;
            if v >= 8 {
                resp.error_message = Some(str_bytes(format!(
                    "the in-sync replicas did not confirm the write: {code}"
                )));
            }
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

type AckWait = tokio::sync::oneshot::Receiver<Option<ResponseError>>;

/// Append one partition's batch; for acks=all also returns what to wait on.
#[allow(clippy::too_many_arguments)]
fn append_one(
    broker: &Broker,
    image: &crate::metadata::image::MetadataImage,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    (acks, deadline_ms): (i16, i64),
    version: i16,
    resp: &mut PartitionProduceResponse,
) -> Result<Option<AckWait>, (ResponseError, String)> {
    let unknown = || {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} partition {index} does not exist"),
        )
    };
    let state = image.partition(topic, index).ok_or_else(unknown)?;
    let partition = broker.partitions.get(topic, index).ok_or_else(|| {
        (
            ResponseError::NotLeaderOrFollower,
            format!(
                "topic {topic:?} partition {index} is led by broker {}",
                state.leader
            ),
        )
    })?;
    let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
        (
            ResponseError::CorruptMessage,
            format!("topic {topic:?} partition {index}: produce without records"),
        )
    })?;
    let size = records.len() as u64;
    let now = now_ms();
    // The batch goes to the log as a slice of the request frame, without a copy.
    let appended = if acks == -1 {
        let min_isr: usize = image
            .topic(topic)
            .and_then(|t| {
                effective_topic_config("min.insync.replicas", &t.configs, &broker.defaults)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        partition
            .append_acks_all(records, now, min_isr, deadline_ms)
            .map(|(info, rx, proposals)| {
                broker.propose_isr(&partition, proposals);
                (info, Some(rx))
            })
    } else {
        partition.append(records, now).map(|info| (info, None))
    };
    let (info, wait) = appended.map_err(|e| {
        if let AppendError::Io(io) = &e {
            tracing::error!(topic, partition = index, error = %io, "log append failed");
        }
        (
            append_error_code(&e),
            format!("topic {topic:?} partition {index}: {e}"),
        )
    })?;
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
    Ok(wait)
}
