//! DeleteRecords (trim partitions from the start, `kafka-delete-records.sh`) and
//! DescribeLogDirs (what this broker stores where, `kafka-log-dirs.sh`).
//!
//! DeleteRecords moves the leader's log start at once (reads below it are refused from
//! then on) and answers when the low watermark, the smallest log start among the
//! replicas on live brokers, has reached the requested offset, or REQUEST_TIMED_OUT at the
//! request's timeout: Kafka's delayed DeleteRecords. Followers learn the leader's start
//! from its fetch answers and report theirs in their next fetch (see
//! `server::partition::start`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    TopicName,
};

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::server::broker::Broker;
use crate::server::partition::Partition;

/// Kafka refuses DeleteRecords on its internal topics (INVALID_TOPIC_EXCEPTION): their
/// records are the coordinators' state.
fn is_internal(topic: &str) -> bool {
    topic == crate::group::OFFSETS_TOPIC || topic == "__transaction_state"
}

pub async fn delete_records(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout_ms = u64::try_from(req.timeout_ms.max(0))
        .unwrap_or(0)
        .min(broker.config.request_timeout_ms);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    // (topic index, partition index in it, partition, offset the low watermark must reach)
    let mut waiting: Vec<(usize, usize, Arc<Partition>, i64)> = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    {
        let image = broker.image();
        let auth = super::acls::authorizer(broker, ctx, &image);
        for (ti, topic) in req.topics.into_iter().enumerate() {
            let name = topic.name.0.to_string();
            let allowed = auth.authorize(AclOperation::Delete, ResourceType::Topic, &name);
            let mut results = Vec::with_capacity(topic.partitions.len());
            for (pi, p) in topic.partitions.iter().enumerate() {
                let outcome = if !allowed {
                    Err(ResponseError::TopicAuthorizationFailed)
                } else if image.partition(&name, p.partition_index).is_none() {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else if is_internal(&name) {
                    Err(ResponseError::InvalidTopicException)
                } else {
                    super::led_partition(broker, &image, &name, p.partition_index).and_then(
                        |partition| {
                            let target = partition.delete_records_before(p.offset)?;
                            Ok((partition, target))
                        },
                    )
                };
                let mut result = DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(-1);
                match outcome {
                    Ok((partition, target)) => {
                        tracing::info!(topic = %name, partition = p.partition_index, offset = target, "records deleted before offset");
                        waiting.push((ti, pi, partition, target));
                    }
                    Err(code) => {
                        count_error(broker, ctx.api_key, code.code());
                        result.error_code = code.code();
                    }
                }
                results.push(result);
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(results),
            );
        }
    }
    for (ti, pi, partition, target) in waiting {
        let (error, low_watermark) =
            await_low_watermark(broker, &partition, target, deadline).await;
        let result = &mut topics[ti].partitions[pi];
        result.low_watermark = low_watermark;
        if let Some(code) = error {
            count_error(broker, ctx.api_key, code.code());
            result.error_code = code.code();
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Wait until `partition`'s low watermark reaches `target`: (no error, the low
/// watermark), or REQUEST_TIMED_OUT at `deadline`, or the error that ends the wait
/// (leadership lost).
async fn await_low_watermark(
    broker: &Broker,
    partition: &Partition,
    target: i64,
    deadline: tokio::time::Instant,
) -> (Option<ResponseError>, i64) {
    let mut starts = partition.watch_follower_starts();
    let mut role = partition.watch_role();
    // A broker fenced meanwhile leaves the ISR, which moves the high watermark: look
    // again then, without it.
    let mut high_watermark = partition.subscribe();
    loop {
        starts.borrow_and_update();
        role.borrow_and_update();
        high_watermark.borrow_and_update();
        let live = broker.live_brokers(&broker.image());
        let low_watermark = match partition.low_watermark(&live) {
            Ok(lw) if lw >= target => return (None, lw),
            Ok(lw) => lw,
            Err(code) => return (Some(code), -1),
        };
        if tokio::time::Instant::now() >= deadline {
            return (Some(ResponseError::RequestTimedOut), low_watermark);
        }
        tokio::select! {
            _ = starts.changed() => {}
            _ = role.changed() => {}
            _ = high_watermark.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One hosted partition as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPartition {
    pub topic: String,
    pub index: i32,
    pub size_bytes: u64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

/// The space of the file system holding the log directory: (total, usable) bytes.
// The statvfs field types are C types whose width differs between platforms.
#[allow(clippy::unnecessary_cast)]
fn space(dir: &Path) -> Result<(i64, i64), String> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bytes = |blocks: u64| {
        i64::try_from(blocks.saturating_mul(stat.fragment_size() as u64)).unwrap_or(i64::MAX)
    };
    Ok((
        bytes(stat.blocks() as u64),
        bytes(stat.blocks_available() as u64),
    ))
}

/// The answer for one log directory, without I/O: KAFKA_STORAGE_ERROR (and no
/// partitions) when its file system cannot be read, has no space left or its writes
/// fail, as Kafka reports a directory it took offline; otherwise each partition with its size and
/// Kafka's offset lag (how far the log end is behind the high watermark, 0 on a
/// leader), grouped by topic in the order given.
pub fn log_dir_result(
    dir: &str,
    space: Result<(i64, i64), String>,
    partitions: &[StoredPartition],
    version: i16,
) -> DescribeLogDirsResult {
    let mut result = DescribeLogDirsResult::default().with_log_dir(str_bytes(dir));
    let (total_bytes, usable_bytes) = match space {
        Ok((_, 0)) | Err(_) => {
            result.error_code = ResponseError::KafkaStorageError.code();
            return result;
        }
        Ok(space) => space,
    };
    if version >= 4 {
        result.total_bytes = total_bytes;
        result.usable_bytes = usable_bytes;
    }
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for p in partitions {
        let partition = DescribeLogDirsPartition::default()
            .with_partition_index(p.index)
            .with_partition_size(i64::try_from(p.size_bytes).unwrap_or(i64::MAX))
            .with_offset_lag((p.high_watermark - p.log_end_offset).max(0))
            .with_is_future_key(false);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == p.topic => t.partitions.push(partition),
            _ => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(p.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    result.with_topics(topics)
}

/// Whether DescribeLogDirs asked for `topic` partition `index` (`None`: everything).
fn requested(wanted: Option<&[DescribableLogDirTopic]>, topic: &str, index: i32) -> bool {
    wanted.is_none_or(|topics| {
        topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index))
    })
}

pub fn describe_log_dirs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let v = ctx.version;
    if let Some(e) = super::acls::cluster_denied(broker, ctx, AclOperation::Describe) {
        // Kafka answers no directories; v3 added the error code to say why.
        let mut resp = DescribeLogDirsResponse::default();
        if v >= 3 {
            resp.error_code = e.code.code();
        }
        return resp;
    }
    let mut partitions: Vec<StoredPartition> = broker
        .partitions
        .all()
        .into_iter()
        .filter(|p| requested(req.topics.as_deref(), &p.topic, p.index))
        .map(|p| {
            let (size_bytes, log_end_offset) = p.with_log(|l| (l.size_bytes(), l.log_end_offset()));
            StoredPartition {
                topic: p.topic.clone(),
                index: p.index,
                size_bytes,
                log_end_offset,
                high_watermark: p.high_watermark(),
            }
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
    let dir = &broker.config.data_dir;
    let dir_name = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    // The metadata log lives in the same directory: its writes failing (ENOSPC, EIO)
    // is the directory failing.
    let failing = broker.quorum().and_then(|q| q.write_health().failing());
    let space = match failing {
        Some(error) => Err(error),
        None => space(dir),
    };
    let result = log_dir_result(&dir_name.display().to_string(), space, &partitions, v);
    if result.error_code != 0 {
        count_error(broker, ctx.api_key, result.error_code);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(topic: &str, index: i32, size: u64, leo: i64, hw: i64) -> StoredPartition {
        StoredPartition {
            topic: topic.into(),
            index,
            size_bytes: size,
            log_end_offset: leo,
            high_watermark: hw,
        }
    }

    #[test]
    fn a_log_dir_lists_partitions_by_topic_with_size_and_lag() {
        let parts = [
            stored("a", 0, 100, 10, 10),
            stored("a", 1, 0, 0, 0),
            // A follower behind its high watermark lags by the difference; one whose
            // high watermark trails its log end (uncommitted records) by none.
            stored("b", 0, 7, 4, 9),
            stored("b", 1, 7, 9, 4),
        ];
        let r = log_dir_result("/data", Ok((1000, 400)), &parts, 4);
        assert_eq!(
            (r.error_code, r.total_bytes, r.usable_bytes),
            (0, 1000, 400)
        );
        // (topic, partition, size, lag), in the order listed.
        let got: Vec<(String, i32, i64, i64)> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let name = t.name.0.to_string();
                    (name, p.partition_index, p.partition_size, p.offset_lag)
                })
            })
            .collect();
        let want = [
            ("a", 0, 100, 0),
            ("a", 1, 0, 0),
            ("b", 0, 7, 5),
            ("b", 1, 7, 0),
        ];
        let want: Vec<_> = want
            .into_iter()
            .map(|(t, p, s, l)| (t.to_string(), p, s, l))
            .collect();
        assert_eq!(got, want);
        // One entry per topic, partitions grouped under it.
        assert_eq!(r.topics.len(), 2);
        // Before v4 the space fields are not sent.
        let r = log_dir_result("/data", Ok((1000, 400)), &parts, 3);
        assert_eq!((r.total_bytes, r.usable_bytes), (-1, -1));
    }

    #[test]
    fn a_full_or_unreadable_dir_is_a_storage_error_without_partitions() {
        let parts = [stored("a", 0, 100, 10, 10)];
        for space in [Ok((1000, 0)), Err("gone".to_string())] {
            let r = log_dir_result("/data", space, &parts, 4);
            assert_eq!(r.error_code, ResponseError::KafkaStorageError.code());
            assert!(r.topics.is_empty());
        }
    }

    #[test]
    fn named_topics_select_only_their_partitions() {
        let wanted = vec![DescribableLogDirTopic::default()
            .with_topic(TopicName(str_bytes("a")))
            .with_partitions(vec![1])];
        assert!(requested(None, "x", 3));
        assert!(requested(Some(&wanted), "a", 1));
        assert!(!requested(Some(&wanted), "a", 0));
        assert!(!requested(Some(&wanted), "b", 1));
    }

    #[test]
    fn the_space_of_a_real_dir_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (total, usable) = space(dir.path()).unwrap();
        assert!(total > 0 && usable <= total, "{total} {usable}");
        assert!(space(&dir.path().join("missing")).is_err());
    }
}
