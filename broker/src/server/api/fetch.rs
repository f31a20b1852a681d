//! Fetch: whole batches from each partition up to the high watermark, waiting up to
//! max_wait_ms for min_bytes to arrive.
//!
//! Fetch sessions (KIP-227) are not kept: every request is answered in full and the
//! response carries session id 0, which clients accept as "no session".

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;

use super::{count_error, RequestContext};
use crate::log::batch::BatchHeader;
use crate::log::ReadError;
use crate::server::broker::Broker;

/// Records counted in a run of whole batches (recordsCount of each v2 header).
fn records_in(mut batches: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Some(h) = BatchHeader::parse_prefix(batches) {
        n += u64::try_from(h.records_count).unwrap_or(0);
        batches = batches
            .get(usize::try_from(h.size_bytes()).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
    }
    n
}

struct Gathered {
    response: FetchResponse,
    bytes: usize,
    any_error: bool,
}

pub async fn handle(broker: &Broker, ctx: &RequestContext, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 {
        count_error(
            broker,
            ctx.api_key,
            ResponseError::FetchSessionIdNotFound.code(),
        );
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
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
            for t in &gathered.response.responses {
                for p in &t.partitions {
                    count_error(broker, ctx.api_key, p.error_code);
                }
            }
            return gathered.response;
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
    for topic in &req.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for fp in &topic.partitions {
            let mut pd = PartitionData::default().with_partition_index(fp.partition);
            let hosted = image
                .partition(name, fp.partition)
                .and(broker.partitions.get(name, fp.partition));
            let Some(partition) = hosted else {
                pd.error_code = ResponseError::UnknownTopicOrPartition.code();
                any_error = true;
                partitions.push(pd);
                continue;
            };
            let epoch = partition.leader_epoch();
            if v >= 9 && fp.current_leader_epoch != -1 && fp.current_leader_epoch != epoch {
                pd.error_code = if fp.current_leader_epoch < epoch {
                    ResponseError::FencedLeaderEpoch.code()
                } else {
                    ResponseError::UnknownLeaderEpoch.code()
                };
                any_error = true;
                partitions.push(pd);
                continue;
            }
            watchers.push(partition.subscribe());
            let limit = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(remaining);
            // Kafka's rule: the first batch of the response is returned whole even
            // above the limits, or a consumer facing a large batch would stall.
            let min_one = bytes == 0;
            let records = match partition.read(fp.fetch_offset, limit, min_one) {
                Ok(info) => {
                    pd.log_start_offset = info.log_start_offset;
                    match info.slice.map(|s| s.read_to_bytes()).transpose() {
                        Ok(r) => r.unwrap_or_default(),
                        Err(e) => {
                            tracing::error!(topic = name, partition = fp.partition, error = %e, "log read failed");
                            pd.error_code = ResponseError::KafkaStorageError.code();
                            Bytes::new()
                        }
                    }
                }
                Err(ReadError::OffsetOutOfRange {
                    log_start_offset, ..
                }) => {
                    pd.error_code = ResponseError::OffsetOutOfRange.code();
                    pd.log_start_offset = log_start_offset;
                    Bytes::new()
                }
                Err(ReadError::Io(e)) => {
                    tracing::error!(topic = name, partition = fp.partition, error = %e, "log read failed");
                    pd.error_code = ResponseError::KafkaStorageError.code();
                    Bytes::new()
                }
            };
            any_error |= pd.error_code != 0;
            if !records.is_empty() {
                broker
                    .metrics
                    .bytes_out
                    .with_label_values(&[name])
                    .inc_by(records.len() as u64);
                broker
                    .metrics
                    .messages_out
                    .with_label_values(&[name])
                    .inc_by(records_in(&records));
            }
            bytes += records.len();
            remaining = remaining.saturating_sub(records.len());
            let hw = partition.high_watermark();
            pd.high_watermark = hw;
            pd.last_stable_offset = hw;
            if v < 5 {
                pd.log_start_offset = -1;
            }
            pd.aborted_transactions = (req.isolation_level == 1).then(Vec::new);
            pd.records = Some(records);
            partitions.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    Gathered {
        response: FetchResponse::default().with_responses(responses),
        bytes,
        any_error,
    }
}
