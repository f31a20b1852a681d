//! Produce, fetch and list offsets: the calls that go to a partition's leader and are
//! retried when leadership moves. Records are encoded and decoded in `records`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest};
use kafka_protocol::records::Compression;

use crate::client::{missing, partition_resource, topic_name, Client};
use crate::error::{Error, Result};
use crate::records::{self, FetchedRecord, ProduceRecord};

/// Produce settings.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// 0 (no answer), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    /// Batch compression.
    pub compression: Compression,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        ProduceOptions {
            acks: -1,
            compression: Compression::None,
        }
    }
}

/// What Produce reports for an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the batch's first record; -1 with acks=0.
    pub base_offset: i64,
    /// Log-append time when the topic uses it, else -1.
    pub log_append_time_ms: i64,
    /// The partition's log start offset (v5+; -1 before).
    pub log_start_offset: i64,
}

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes`.
    pub max_wait: Duration,
    /// Bytes the broker waits for before answering.
    pub min_bytes: i32,
    /// Bound on the whole answer.
    pub max_bytes: i32,
    /// Bound on this partition's records (the first batch is returned whole regardless).
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// One partition's fetch answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPartition {
    /// High watermark: the offset after the last committed record.
    pub high_watermark: i64,
    /// Last stable offset (v4+; -1 before).
    pub last_stable_offset: i64,
    /// Log start offset (v5+; -1 before).
    pub log_start_offset: i64,
    /// Records at or after the fetch offset, in offset order.
    pub records: Vec<FetchedRecord>,
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark for consumers).
    Latest,
    /// The offset of the record with the largest timestamp (v7+).
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when no record matches a timestamp.
    pub offset: i64,
    /// The matched record's timestamp, -1 for earliest/latest.
    pub timestamp_ms: i64,
    /// Leader epoch of the offset (v4+; -1 before).
    pub leader_epoch: i32,
}

impl Client {
    /// Appends `records` as one batch to `topic`/`partition` through its leader, retrying
    /// leadership errors (see
    /// [`ClientConfig::leader_retries`](crate::ClientConfig::leader_retries)).
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        options: &ProduceOptions,
    ) -> Result<Produced> {
        self.with_leader_retries(topic, partition, || {
            self.produce_once(topic, partition, records, options)
        })
        .await
    }

    async fn produce_once(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        options: &ProduceOptions,
    ) -> Result<Produced> {
        let batch = records::encode_batch(records, options.compression, now_ms())?;
        let request = ProduceRequest::default()
            .with_acks(options.acks)
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let conn = self.leader_connection(topic, partition).await?;
        if options.acks == 0 {
            conn.send_no_response(&request).await?;
            return Ok(Produced {
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            });
        }
        let response = conn.send(&request).await?;
        let p = response
            .responses
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        let message = p.error_message.clone().or_else(|| {
            p.record_errors
                .first()
                .and_then(|e| e.batch_index_error_message.clone())
        });
        Error::check(
            p.error_code,
            || partition_resource(topic, partition),
            message.as_ref(),
        )?;
        Ok(Produced {
            base_offset: p.base_offset,
            log_append_time_ms: p.log_append_time_ms,
            log_start_offset: p.log_start_offset,
        })
    }

    /// Reads records of `topic`/`partition` from `offset` through its leader (read
    /// uncommitted, no fetch session), retrying leadership errors.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition> {
        self.with_leader_retries(topic, partition, || {
            self.fetch_once(topic, partition, offset, options)
        })
        .await
    }

    async fn fetch_once(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition> {
        let request = FetchRequest::default()
            .with_max_wait_ms(i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(options.partition_max_bytes)])]);
        let conn = self.leader_connection(topic, partition).await?;
        let response = conn.send(&request).await?;
        Error::check(response.error_code, || "Fetch".into(), None)?;
        let p = response
            .responses
            .iter()
            .filter(|t| t.topic.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        Error::check(p.error_code, || partition_resource(topic, partition), None)?;
        let records = match &p.records {
            Some(data) => records::decode_batches(data.clone(), offset)?,
            None => Vec::new(),
        };
        Ok(FetchedPartition {
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            log_start_offset: p.log_start_offset,
            records,
        })
    }

    /// Looks up an offset of `topic`/`partition` through its leader, retrying leadership
    /// errors.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        self.with_leader_retries(topic, partition, || {
            self.list_offsets_once(topic, partition, spec)
        })
        .await
    }

    async fn list_offsets_once(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<ListedOffset> {
        let request = ListOffsetsRequest::default()
            // -1: a consumer, not a follower replica.
            .with_replica_id(BrokerId(-1))
            .with_timeout_ms(self.config.request_timeout_ms())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(spec.wire())])]);
        let conn = self.leader_connection(topic, partition).await?;
        let response = conn.send(&request).await?;
        let p = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| missing(partition_resource(topic, partition)))?;
        Error::check(p.error_code, || partition_resource(topic, partition), None)?;
        Ok(ListedOffset {
            offset: p.offset,
            timestamp_ms: p.timestamp,
            leader_epoch: p.leader_epoch,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
