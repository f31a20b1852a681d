//! Fetch: whole batches from each partition up to the high watermark, waiting up to
//! max_wait_ms for min_bytes to arrive.
//!
//! Record data is not read here: each partition contributes a file range that the
//! connection sends with sendfile (see `protocol::fetch_response`).
//!
//! Fetch sessions (KIP-227) are not kept: every request is answered in full and the
//! response carries session id 0, which clients accept as "no session".

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;

use super::{count_error, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::log::{FileSlice, ReadError};
use crate::server::broker::Broker;

/// A fetch answer: the response fields, and per topic and partition the record data
/// as a file range (`None`: no records).
pub struct FetchReply {
    pub response: FetchResponse,
    pub records: Vec<Vec<Option<(FileSlice, usize)>>>,
}

struct Gathered {
    reply: FetchReply,
    bytes: usize,
    any_error: bool,
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: FetchRequest) -> FetchReply {
    if req.session_id != 0 {
        let code = ResponseError::FetchSessionIdNotFound.code();
        count_error(broker, ctx.api_key, code);
        return FetchReply {
            response: FetchResponse::default().with_error_code(code),
            records: vec![],
        };
    }
    let max_wait_ms = u64::try_from(req.max_wait_ms)
        .unwrap_or(0)
        .min(broker.config.request_timeout_ms);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    loop {
        let mut watchers = Vec::new();
        let gathered = gather(broker, ctx, &req, &mut watchers);
        let done = gathered.bytes >= min_bytes.max(1)
            || gathered.any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            let reply = gathered.reply;
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
            return reply;
        }
        // Watchers were subscribed before reading, so an append that raced with the
        // read still wakes us.
        let changed =
            futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn gather(
    broker: &Broker,
    ctx: &RequestContext,
    req: &FetchRequest,
    watchers: &mut Vec<watch::Receiver<i64>>,
) -> Gathered {
    let v = ctx.version;
    let image = broker.image();
    let mut remaining = usize::try_from(req.max_bytes).unwrap_or(0);
    let mut bytes = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    let mut records = Vec::with_capacity(req.topics.len());
    let auth = super::acls::authorizer(broker, ctx, &image);
    for topic in &req.topics {
        let name = topic.topic.0.as_str();
        let may_read = auth.authorize(AclOperation::Read, ResourceType::Topic, name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let mut topic_records = Vec::with_capacity(topic.partitions.len());
        for fp in &topic.partitions {
            let mut pd = PartitionData::default().with_partition_index(fp.partition);
            let mut slice = None;
            let led = if may_read {
                super::led_partition(broker, &image, name, fp.partition)
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
                        match partition.read(fp.fetch_offset, limit, min_one) {
                            Ok(info) => {
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
                                tracing::error!(topic = name, partition = fp.partition, error = %e, "log read failed");
                                pd.error_code = ResponseError::KafkaStorageError.code();
                            }
                        }
                        let hw = partition.high_watermark();
                        pd.high_watermark = hw;
                        // No transactions: everything below the high watermark is stable.
                        pd.last_stable_offset = hw;
                    }
                }
            }
            any_error |= pd.error_code != 0;
            if v < 5 {
                pd.log_start_offset = -1;
            }
            pd.aborted_transactions = (req.isolation_level == 1).then(Vec::new);
            topic_records.push(slice.map(|s| {
                let len = s.len;
                (s, len)
            }));
            partitions.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
        records.push(topic_records);
    }
    Gathered {
        reply: FetchReply {
            response: FetchResponse::default().with_responses(responses),
            records,
        },
        bytes,
        any_error,
    }
}
