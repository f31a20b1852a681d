//! Offset lookups: ListOffsets (earliest -2, latest -1, max timestamp -3, or the first
//! offset at or after a timestamp) and OffsetForLeaderEpoch (where an epoch ended, so
//! a consumer can check its position after a leader change, KIP-320). With
//! isolation_level=1 (read_committed) ListOffsets answers as far as the last stable
//! offset instead of the high watermark, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use super::{count_error, RequestContext};
use crate::auth::acl::{AclOperation, Authorizer, ResourceType};
use crate::server::broker::Broker;
use crate::server::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let v = ctx.version;
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let described = described(&auth, name);
            let partitions = topic
                .partitions
                .iter()
                .map(|lp| {
                    let mut resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index);
                    let result = described
                        .and_then(|()| {
                            super::led_partition(broker, &image, name, lp.partition_index)
                        })
                        .and_then(|p| lookup(&p, lp, v, read_committed, name));
                    match result {
                        Ok(Some((ts, offset, epoch))) => {
                            resp.timestamp = ts;
                            resp.offset = offset;
                            if v >= 4 {
                                resp.leader_epoch = epoch;
                            }
                        }
                        // Nothing at or after the timestamp: Kafka answers offset -1.
                        Ok(None) => {
                            resp.timestamp = -1;
                            resp.offset = -1;
                        }
                        Err(code) => {
                            count_error(broker, ctx.api_key, code.code());
                            resp.error_code = code.code();
                            resp.timestamp = -1;
                            resp.offset = -1;
                        }
                    }
                    resp
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (timestamp, offset, leader epoch) a ListOffsets entry asks for; None when no
/// record is at or after the timestamp below what the reader may fetch (the last
/// stable offset when `read_committed`, else the high watermark).
fn lookup(
    p: &Partition,
    lp: &ListOffsetsPartition,
    v: i16,
    read_committed: bool,
    topic: &str,
) -> Result<Option<(i64, i64, i32)>, ResponseError> {
    if v >= 4 {
        check_leader_epoch(p.leader_epoch(), lp.current_leader_epoch)?;
    }
    let hw = p.client_high_watermark()?;
    p.with_log(|log| {
        let fetchable = if read_committed {
            log.last_stable_offset(hw)
        } else {
            hw
        };
        let found = match lp.timestamp {
            LATEST => Some((-1, fetchable)),
            EARLIEST => Some((-1, log.log_start_offset())),
            MAX_TIMESTAMP if v >= 7 => log.max_timestamp_offset().map(|(o, ts)| (ts, o)),
            ts if ts >= 0 => log
                .offset_for_timestamp(ts)
                .map_err(|e| {
                    tracing::error!(topic, partition = lp.partition_index, error = %e, "time index lookup failed");
                    ResponseError::KafkaStorageError
                })?
                .map(|(o, ts)| (ts, o))
                .filter(|&(_, o)| o < fetchable),
            _ => return Err(ResponseError::InvalidRequest),
        };
        Ok(found.map(|(ts, o)| (ts, o, log.epoch_for_offset(o).unwrap_or_else(|| log.latest_epoch()))))
    })
}

/// Both offset APIs need DESCRIBE on the topic (Kafka; a follower's
/// OffsetForLeaderEpoch is not on this port in Fjord).
fn described(auth: &Authorizer, topic: &str) -> Result<(), ResponseError> {
    auth.authorize(AclOperation::Describe, ResourceType::Topic, topic)
        .then_some(())
        .ok_or(ResponseError::TopicAuthorizationFailed)
}

/// Fencing shared by the offset APIs: a client naming an older leader epoch is
/// fenced, one naming a newer epoch knows more than we do.
fn check_leader_epoch(current: i32, requested: i32) -> Result<(), ResponseError> {
    match requested {
        -1 => Ok(()),
        r if r < current => Err(ResponseError::FencedLeaderEpoch),
        r if r > current => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

pub fn offset_for_leader_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.as_str();
            let described = described(&auth, name);
            let partitions = topic
                .partitions
                .iter()
                .map(|op| {
                    let mut resp = EpochEndOffset::default().with_partition(op.partition);
                    let result = described
                        .and_then(|()| super::led_partition(broker, &image, name, op.partition))
                        .and_then(|p| {
                            check_leader_epoch(p.leader_epoch(), op.current_leader_epoch)?;
                            Ok(p.with_log(|l| l.end_offset_for_epoch(op.leader_epoch)))
                        });
                    match result {
                        Ok(Some((epoch, end_offset))) => {
                            resp.leader_epoch = epoch;
                            resp.end_offset = end_offset;
                        }
                        Ok(None) => {
                            resp.leader_epoch = -1;
                            resp.end_offset = -1;
                        }
                        Err(code) => {
                            count_error(broker, ctx.api_key, code.code());
                            resp.error_code = code.code();
                            resp.leader_epoch = -1;
                            resp.end_offset = -1;
                        }
                    }
                    resp
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
