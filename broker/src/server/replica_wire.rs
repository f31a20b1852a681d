//! The replication wire, below the broker: the `fjord.replica` protobuf messages, the
//! leader's answer to one partition's fetch as it goes on the wire, and the follower's
//! handling of that answer (used by `fetcher` and by the simulator).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::partition::Partition;
use crate::replication::follower::FetchRequest;
use crate::replication::leader::FollowerFetchAnswer;
use crate::replication::HighWatermark;

pub mod proto {
    tonic::include_proto!("fjord.replica");
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
            Err(ResponseError::OffsetOutOfRange) => {
                // The leader's log ends before this follower's: the divergence check
                // did not settle it, and each retry gets the same answer.
                tracing::warn!(topic = %partition.topic, partition = partition.index,
                    leader = request.leader, fetch_offset = request.fetch.fetch_offset,
                    leader_log_start = resp.log_start_offset,
                    "follower's fetch offset is past the leader's log end");
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
