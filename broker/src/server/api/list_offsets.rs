//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset at
//! or after a timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{count_error, RequestContext};
use crate::server::broker::Broker;

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
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|lp| {
                    let mut resp = ListOffsetsPartitionResponse::default().with_partition_index(lp.partition_index);
                    let hosted = image.partition(name, lp.partition_index).and(broker.partitions.get(name, lp.partition_index));
                    let result = match hosted {
                        None => Err(ResponseError::UnknownTopicOrPartition),
                        Some(p) if v >= 4 && lp.current_leader_epoch != -1 && lp.current_leader_epoch < p.leader_epoch() => {
                            Err(ResponseError::FencedLeaderEpoch)
                        }
                        Some(p) if v >= 4 && lp.current_leader_epoch > p.leader_epoch() => Err(ResponseError::UnknownLeaderEpoch),
                        Some(p) if lp.timestamp == MAX_TIMESTAMP && v < 7 => {
                            let _ = p;
                            Err(ResponseError::UnsupportedVersion)
                        }
                        Some(p) => {
                            let hw = p.high_watermark();
                            p.with_log(|log| match lp.timestamp {
                                LATEST => Ok(Some((-1, hw))),
                                EARLIEST => Ok(Some((-1, log.log_start_offset()))),
                                MAX_TIMESTAMP => Ok(log.max_timestamp_offset().map(|(o, ts)| (ts, o))),
                                ts if ts >= 0 => log
                                    .offset_for_timestamp(ts)
                                    .map(|found| found.map(|(o, ts)| (ts, o)).filter(|&(_, o)| o < hw))
                                    .map_err(|e| {
                                        tracing::error!(topic = name, partition = lp.partition_index, error = %e, "time index lookup failed");
                                        ResponseError::KafkaStorageError
                                    }),
                                _ => Err(ResponseError::InvalidRequest),
                            })
                            .map(|found| (found, log_epoch_of(&p, found)))
                        }
                    };
                    match result {
                        Ok((Some((ts, offset)), epoch)) => {
                            resp.timestamp = ts;
                            resp.offset = offset;
                            if v >= 4 {
                                resp.leader_epoch = epoch;
                            }
                        }
                        // Nothing at or after the timestamp: Kafka answers offset -1.
                        Ok((None, _)) => {
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
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn log_epoch_of(p: &crate::server::partition::Partition, found: Option<(i64, i64)>) -> i32 {
    match found {
        Some(_) => p.leader_epoch(),
        None => -1,
    }
}
