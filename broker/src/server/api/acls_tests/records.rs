//! DeleteRecords (DELETE on the topic) and DescribeLogDirs (DESCRIBE on the cluster),
//! through their handlers: refused without the right, and what they do with it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, ResourceType as Rt, CLUSTER_NAME};
use crate::log::batch::testing::TestBatch;
use crate::server::api::records;
use crate::server::partition::Acks;

/// `count` one-record batches appended to partition 0 of `topic`, stamped now (an old
/// timestamp would be past retention).
fn append(b: &Broker, topic: &str, count: usize) {
    let p = b.partitions.get(topic, 0).expect("the topic's partition");
    let now_ms = b.clock.wall_ms();
    for _ in 0..count {
        p.append_produce(TestBatch::new(&["v"], now_ms).encode().into(), Acks::Leader)
            .unwrap();
    }
}

async fn delete(b: &Broker, who: &str, topic: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let resp = records::delete_records(b, &ctx(ApiKey::DeleteRecords, 2, who), req).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

fn log_dirs(
    b: &Broker,
    who: &str,
    topics: Option<Vec<DescribableLogDirTopic>>,
) -> DescribeLogDirsResponse {
    let req = DescribeLogDirsRequest::default().with_topics(topics);
    records::describe_log_dirs(b, &ctx(ApiKey::DescribeLogDirs, 4, who), req)
}

#[tokio::test]
async fn delete_records_needs_delete_on_the_topic_and_trims_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    append(&b, "orders", 10);
    let alice = "User:alice";
    assert_eq!(delete(&b, alice, "orders", 4).await, (TAF, -1));
    // A topic that does not exist is refused the same way: existence is not told.
    assert_eq!(delete(&b, alice, "nothing", 4).await, (TAF, -1));

    allow(&b, Rt::Topic, "orders", alice, Op::Delete).await;
    assert_eq!(delete(&b, alice, "orders", 4).await, (0, 4));
    let start = |b: &Broker| {
        b.partitions
            .get("orders", 0)
            .unwrap()
            .with_log(|l| l.log_start_offset())
    };
    assert_eq!(start(&b), 4);
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    assert_eq!(delete(&b, alice, "orders", 11).await, (out_of_range, -1));
    assert_eq!(delete(&b, alice, "orders", -1).await, (0, 10));
    assert_eq!(start(&b), 10);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(delete(&b, "User:admin", "nothing", 0).await, (unknown, -1));
}

#[tokio::test]
async fn describe_log_dirs_needs_describe_on_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    create_topic(&b, "other").await;
    append(&b, "orders", 3);
    let alice = "User:alice";
    let refused = log_dirs(&b, alice, None);
    assert_eq!(refused.error_code, CAF);
    assert!(refused.results.is_empty());

    allow(&b, Rt::Cluster, CLUSTER_NAME, alice, Op::Describe).await;
    let only_orders = vec![DescribableLogDirTopic::default()
        .with_topic(TopicName(str_bytes("orders")))
        .with_partitions(vec![0])];
    let resp = log_dirs(&b, alice, Some(only_orders));
    assert_eq!(resp.error_code, 0);
    let [d] = &resp.results[..] else {
        panic!("one log dir: {:?}", resp.results)
    };
    assert_eq!(d.error_code, 0);
    assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes);
    let size = b
        .partitions
        .get("orders", 0)
        .unwrap()
        .with_log(|l| l.size_bytes() as i64);
    assert!(size > 0);
    let listed: Vec<(String, i32, i64, i64)> = d
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_size,
                    p.offset_lag,
                )
            })
        })
        .collect();
    assert_eq!(listed, vec![("orders".to_string(), 0, size, 0)]);

    // No topics named: every partition of the broker.
    let all = log_dirs(&b, alice, None);
    let names: Vec<String> = all.results[0]
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    assert!(
        names.contains(&"orders".to_string()) && names.contains(&"other".to_string()),
        "{names:?}"
    );
}
