//! Produce, Fetch, ListOffsets and Metadata: WRITE, READ and DESCRIBE on topics.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::auth::acl::{AclOperation as Op, PatternType as Pt, PermissionType as Perm};
use crate::auth::acl::{ResourceType as Rt, CLUSTER_NAME};
use crate::server::api::{fetch, metadata, offsets, produce};

fn batch() -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).unwrap();
    buf.freeze()
}

async fn produce_code(b: &Broker, who: &str, topic: &str) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch()))])]);
    let resp = produce::start(b, &ctx(ApiKey::Produce, 9, who), req)
        .finish(b)
        .await
        .unwrap();
    resp.responses[0].partition_responses[0].error_code
}

async fn fetch_code(b: &Broker, who: &str, topic: &str) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(str_bytes(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let reply = fetch::handle(b, &ctx(ApiKey::Fetch, 12, who), req).await;
    reply.response.responses[0].partitions[0].error_code
}

fn list_offsets_code(b: &Broker, who: &str, topic: &str) -> i16 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(str_bytes(topic)))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_current_leader_epoch(-1)
            .with_timestamp(-1)])]);
    offsets::handle(b, &ctx(ApiKey::ListOffsets, 7, who), req).topics[0].partitions[0].error_code
}

#[tokio::test]
async fn produce_fetch_and_list_offsets_need_write_read_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    let alice = "User:alice";
    assert_eq!(produce_code(&b, alice, "orders").await, TAF);
    // A topic that does not exist is refused the same way: existence is not told.
    assert_eq!(produce_code(&b, alice, "nothing").await, TAF);
    assert_eq!(fetch_code(&b, alice, "orders").await, TAF);
    assert_eq!(list_offsets_code(&b, alice, "orders"), TAF);

    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "ord",
            Pt::Prefixed,
            alice,
            Op::Write,
            Perm::Allow,
        )],
    )
    .await;
    assert_eq!(produce_code(&b, alice, "orders").await, 0);
    assert_eq!(fetch_code(&b, alice, "orders").await, TAF);
    // WRITE implies DESCRIBE.
    assert_eq!(list_offsets_code(&b, alice, "orders"), 0);
    allow(&b, Rt::Topic, "orders", "User:*", Op::Read).await;
    assert_eq!(fetch_code(&b, alice, "orders").await, 0);

    // DENY wins over the PREFIXED ALLOW.
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "orders",
            Pt::Literal,
            alice,
            Op::Write,
            Perm::Deny,
        )],
    )
    .await;
    assert_eq!(produce_code(&b, alice, "orders").await, TAF);
    // The super user is not subject to ACLs.
    assert_eq!(produce_code(&b, "User:admin", "orders").await, 0);
}

async fn metadata_of(b: &Broker, who: &str, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(str_bytes(*t)))))
                .collect()
        }))
        .with_allow_auto_topic_creation(true)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    metadata::handle(b, &ctx(ApiKey::Metadata, 10, who), req).await
}

#[tokio::test]
async fn metadata_shows_only_described_topics_and_auto_creates_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    create_topic(&b, "secret").await;
    let alice = "User:alice";
    allow(&b, Rt::Topic, "orders", alice, Op::Read).await;
    let all = metadata_of(&b, alice, None).await;
    let names: Vec<String> = all
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["orders"]);
    let bit = |op: Op| 1 << op.code();
    assert_eq!(
        all.topics[0].topic_authorized_operations,
        bit(Op::Read) | bit(Op::Describe)
    );
    assert_eq!(all.cluster_authorized_operations, 0);

    // Named: refused whether it exists or not; not created without CREATE.
    let named = metadata_of(&b, alice, Some(&["secret", "fresh"])).await;
    let codes: Vec<i16> = named.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![TAF, TAF]);
    assert!(named.topics[0].partitions.is_empty());
    allow(&b, Rt::Topic, "fresh", alice, Op::Describe).await;
    let named = metadata_of(&b, alice, Some(&["fresh"])).await;
    assert_eq!(named.topics[0].error_code, TAF);
    assert!(b.image().topic("fresh").is_none());
    allow(&b, Rt::Topic, "fresh", alice, Op::Create).await;
    let named = metadata_of(&b, alice, Some(&["fresh"])).await;
    assert_eq!(named.topics[0].error_code, 0);
    assert!(b.image().topic("fresh").is_some());

    allow(&b, Rt::Cluster, CLUSTER_NAME, alice, Op::Describe).await;
    assert_eq!(
        metadata_of(&b, alice, None)
            .await
            .cluster_authorized_operations,
        bit(Op::Describe)
    );
}
