//! The admin APIs Kafka's tools use, on a one-broker cluster: legacy AlterConfigs,
//! group configs, DescribeTopicPartitions and ElectLeaders, each with its right.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, ResourceType as Rt, CLUSTER_NAME};
use crate::server::api::{admin, configs, describe_partitions, elect};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();

async fn create_partitions_topic(b: &Broker, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let resp = admin::create_topics(b, &ctx(ApiKey::CreateTopics, 7, "User:admin"), req).await;
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

/// A described config: name, value, source, and its synonyms' names and sources.
type ConfigRow = (String, String, i8, Vec<(String, i8)>);

/// The resource's error and its configs `keys`, as `who` sees them.
fn describe(
    b: &Broker,
    who: &str,
    resource_type: i8,
    name: &str,
    keys: &[&str],
) -> (i16, Vec<ConfigRow>) {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(Some(
                keys.iter().map(|k| str_bytes(*k)).collect(),
            ))]);
    let resp = configs::describe_configs(b, &ctx(ApiKey::DescribeConfigs, 4, who), req);
    let r = &resp.results[0];
    let entries = r
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
                c.synonyms
                    .iter()
                    .map(|s| (s.name.to_string(), s.source))
                    .collect(),
            )
        })
        .collect();
    (r.error_code, entries)
}

fn legacy(
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(str_bytes(*k))
                            .with_value(v.map(str_bytes))
                    })
                    .collect(),
            )])
}

async fn legacy_alter(b: &Broker, who: &str, req: AlterConfigsRequest) -> i16 {
    let resp = configs::alter_configs(b, &ctx(ApiKey::AlterConfigs, 2, who), req).await;
    resp.responses[0].error_code
}

fn overrides(b: &Broker, topic: &str) -> Vec<(String, String)> {
    let image = b.image();
    let t = image.topic(topic).unwrap();
    t.configs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn legacy_alter_configs_replaces_a_topics_whole_set() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_partitions_topic(&b, "t", 1).await;
    let admin = "User:admin";
    let first = legacy(
        TOPIC,
        "t",
        &[
            ("retention.ms", Some("1000")),
            ("segment.bytes", Some("2000000")),
        ],
        false,
    );
    assert_eq!(legacy_alter(&b, admin, first).await, 0);
    assert_eq!(
        overrides(&b, "t"),
        pairs(&[("retention.ms", "1000"), ("segment.bytes", "2000000")])
    );
    // validate_only changes nothing.
    let second = |validate_only| {
        legacy(
            TOPIC,
            "t",
            &[("segment.bytes", Some("3000000")), ("cleanup.policy", None)],
            validate_only,
        )
    };
    assert_eq!(legacy_alter(&b, admin, second(true)).await, 0);
    assert_eq!(overrides(&b, "t").len(), 2);
    // What the request does not name returns to its default.
    assert_eq!(legacy_alter(&b, admin, second(false)).await, 0);
    assert_eq!(overrides(&b, "t"), pairs(&[("segment.bytes", "3000000")]));
    let (_, described) = describe(&b, admin, TOPIC, "t", &["retention.ms"]);
    assert_eq!(described[0].2, 5, "retention.ms is back to its default");
    // Refused as IncrementalAlterConfigs refuses, and nothing changes.
    for bad in [("segment.bytes", "x"), ("no.such.config", "1")] {
        let req = legacy(TOPIC, "t", &[(bad.0, Some(bad.1))], false);
        assert_eq!(
            legacy_alter(&b, admin, req).await,
            INVALID_CONFIG,
            "{bad:?}"
        );
    }
    assert_eq!(overrides(&b, "t"), pairs(&[("segment.bytes", "3000000")]));
    let unknown = legacy(TOPIC, "nope", &[], false);
    assert_eq!(
        legacy_alter(&b, admin, unknown).await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let broker_req = legacy(BROKER, "1", &[("num.partitions", Some("3"))], false);
    assert_eq!(legacy_alter(&b, admin, broker_req).await, INVALID_CONFIG);
    // ALTER_CONFIGS on the topic.
    let alice = "User:alice";
    let req = legacy(TOPIC, "t", &[], false);
    assert_eq!(legacy_alter(&b, alice, req.clone()).await, TAF);
    allow(&b, Rt::Topic, "t", alice, Op::AlterConfigs).await;
    assert_eq!(legacy_alter(&b, alice, req).await, 0);
    assert_eq!(overrides(&b, "t"), vec![]);
}

#[tokio::test]
async fn group_configs_are_described_altered_and_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let admin = "User:admin";
    let key = "consumer.session.timeout.ms";
    // A group that never existed is described with Kafka's defaults.
    let (code, described) = describe(&b, admin, GROUP, "g", &[key]);
    assert_eq!(code, 0);
    assert_eq!(
        described,
        vec![(
            key.to_string(),
            "45000".to_string(),
            5,
            vec![("group.consumer.session.timeout.ms".to_string(), 5)]
        )]
    );
    let set = |value: &str| {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(GROUP)
                .with_resource_name(str_bytes("g"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(key))
                    .with_config_operation(0)
                    .with_value(Some(str_bytes(value)))]),
        ])
    };
    let alter = |who: &'static str, value: &'static str| {
        let b = b.clone();
        async move {
            configs::incremental_alter_configs(
                &b,
                &ctx(ApiKey::IncrementalAlterConfigs, 1, who),
                set(value),
            )
            .await
            .responses[0]
                .error_code
        }
    };
    assert_eq!(alter(admin, "50000").await, 0);
    let (_, described) = describe(&b, admin, GROUP, "g", &[key]);
    assert_eq!(
        described[0],
        (
            key.to_string(),
            "50000".to_string(),
            8,
            vec![
                (key.to_string(), 8),
                ("group.consumer.session.timeout.ms".to_string(), 5)
            ]
        )
    );
    // Kafka's bounds, at their limits.
    assert_eq!(alter(admin, "60001").await, INVALID_CONFIG);
    assert_eq!(alter(admin, "60000").await, 0);
    // The legacy form replaces the group's set too.
    let req = legacy(
        GROUP,
        "g",
        &[("share.delivery.count.limit", Some("3"))],
        false,
    );
    assert_eq!(legacy_alter(&b, admin, req).await, 0);
    let (_, described) = describe(&b, admin, GROUP, "g", &[key, "share.delivery.count.limit"]);
    let values: Vec<(&str, &str)> = described
        .iter()
        .map(|(n, v, _, _)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        values,
        vec![(key, "45000"), ("share.delivery.count.limit", "3")]
    );
    // DESCRIBE_CONFIGS / ALTER_CONFIGS on the group.
    let alice = "User:alice";
    assert_eq!(describe(&b, alice, GROUP, "g", &[key]).0, GAF);
    assert_eq!(alter(alice, "50000").await, GAF);
    allow(&b, Rt::Group, "g", alice, Op::DescribeConfigs).await;
    allow(&b, Rt::Group, "g", alice, Op::AlterConfigs).await;
    assert_eq!(describe(&b, alice, GROUP, "g", &[key]).0, 0);
    assert_eq!(alter(alice, "50000").await, 0);
}

/// (topic, error, partitions) of a DescribeTopicPartitions answer, and its cursor.
type Described = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn describe_pages(
    b: &Broker,
    who: &str,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> Described {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(TopicName(str_bytes(*t))))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(TopicName(str_bytes(t)))
                .with_partition_index(p)
        }));
    let resp = describe_partitions::describe_topic_partitions(
        b,
        &ctx(ApiKey::DescribeTopicPartitions, 0, who),
        req,
    );
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            if t.error_code == 0 {
                assert!(!t.topic_id.is_nil(), "{name} has its id");
                assert!(t.topic_authorized_operations > 0, "{name}: operations");
                for p in &t.partitions {
                    assert_eq!(p.leader_id.0, b.node_id());
                    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
                }
            }
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (name, t.error_code, partitions)
        })
        .collect();
    let cursor = resp
        .next_cursor
        .map(|c| (c.topic_name.to_string(), c.partition_index));
    (topics, cursor)
}

#[tokio::test]
async fn describe_topic_partitions_pages_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_partitions_topic(&b, "a", 3).await;
    create_partitions_topic(&b, "b", 2).await;
    let admin = "User:admin";
    let row = |name: &str, partitions: &[i32]| (name.to_string(), 0i16, partitions.to_vec());
    // Every topic, four partitions a page.
    let (topics, cursor) = describe_pages(&b, admin, &[], 4, None);
    assert_eq!(topics, vec![row("a", &[0, 1, 2]), row("b", &[0])]);
    assert_eq!(cursor, Some(("b".to_string(), 1)));
    let (topics, cursor) = describe_pages(&b, admin, &[], 4, Some(("b", 1)));
    assert_eq!(topics, vec![row("b", &[1])]);
    assert_eq!(cursor, None);
    // Named: in name order, unknown ones answered as such.
    let (topics, cursor) = describe_pages(&b, admin, &["nope", "b", "a"], 2000, None);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        topics,
        vec![
            row("a", &[0, 1, 2]),
            row("b", &[0, 1]),
            ("nope".to_string(), unknown, vec![])
        ]
    );
    assert_eq!(cursor, None);
    // A cursor on a topic the request does not name is refused.
    let (topics, _) = describe_pages(&b, admin, &["a"], 10, Some(("b", 0)));
    assert_eq!(topics[0].1, ResponseError::InvalidRequest.code());
    // DESCRIBE on the topic: refused by name, left out of "every topic".
    let alice = "User:alice";
    allow(&b, Rt::Topic, "b", alice, Op::Describe).await;
    let (topics, _) = describe_pages(&b, alice, &["a", "b"], 10, None);
    assert_eq!(
        topics,
        vec![row("b", &[0, 1]), ("a".to_string(), TAF, vec![])]
    );
    let (topics, _) = describe_pages(&b, alice, &[], 10, None);
    assert_eq!(topics, vec![row("b", &[0, 1])]);
}

#[tokio::test]
async fn elect_leaders_asks_the_controller_and_needs_alter_on_the_cluster() {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_partitions_topic(&b, "t", 2).await;
    let named = |election_type: i8| {
        ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(TopicName(str_bytes("t")))
                .with_partitions(vec![0, 5])]))
    };
    let codes = |resp: ElectLeadersResponse| {
        let mut out = vec![resp.error_code];
        for t in resp.replica_election_results {
            out.extend(t.partition_result.iter().map(|p| p.error_code));
        }
        out
    };
    let admin = "User:admin";
    let run = |who: &'static str, req: ElectLeadersRequest, v: i16| {
        let b = b.clone();
        async move { elect::elect_leaders(&b, &ctx(ApiKey::ElectLeaders, v, who), req).await }
    };
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    // One broker leads everything already.
    assert_eq!(
        codes(run(admin, named(0), 2).await),
        vec![0, not_needed, unknown]
    );
    assert_eq!(
        codes(run(admin, named(1), 1).await),
        vec![0, not_needed, unknown]
    );
    let all = ElectLeadersRequest::default().with_topic_partitions(None);
    assert_eq!(codes(run(admin, all.clone(), 2).await), vec![0]);
    let bad_type = codes(run(admin, named(2), 2).await);
    assert_eq!(bad_type[0], ResponseError::InvalidRequest.code());
    // ALTER on the cluster.
    let alice = "User:alice";
    assert_eq!(codes(run(alice, named(0), 2).await), vec![CAF, CAF, CAF]);
    // v0 has no top-level code: the answer must still encode.
    let v0 = run(alice, named(0), 0).await;
    let mut buf = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&v0, &mut buf, 0).expect("v0 encodes");
    assert_eq!(codes(v0), vec![0, CAF, CAF]);
    assert_eq!(codes(run(alice, all.clone(), 2).await), vec![CAF]);
    allow(&b, Rt::Cluster, CLUSTER_NAME, alice, Op::Alter).await;
    assert_eq!(codes(run(alice, all, 2).await), vec![0]);
}

#[tokio::test]
async fn replication_rates_are_dynamic_broker_configs_per_broker_and_by_default() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let admin = "User:admin";
    let leader = "leader.replication.throttled.rate";
    let follower = "follower.replication.throttled.rate";
    let alter = |who: &'static str, broker: &'static str, name: &'static str, op: i8, v: &str| {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(str_bytes(broker))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(name))
                    .with_config_operation(op)
                    .with_value(Some(str_bytes(v.to_string())))]),
        ]);
        let b = b.clone();
        async move {
            configs::incremental_alter_configs(
                &b,
                &ctx(ApiKey::IncrementalAlterConfigs, 1, who),
                req,
            )
            .await
            .responses[0]
                .error_code
        }
    };
    // Unset: Kafka's default (no limit), and the default resource lists nothing.
    let (code, rows) = describe(&b, admin, BROKER, "1", &[leader]);
    assert_eq!(code, 0);
    assert_eq!(rows[0].1, i64::MAX.to_string());
    assert_eq!(rows[0].2, 5);
    assert_eq!(
        describe(&b, admin, BROKER, "", &[leader, follower]).1,
        vec![]
    );
    // The cluster default, then this broker's own value over it.
    assert_eq!(alter(admin, "", follower, 0, "2000000").await, 0);
    assert_eq!(alter(admin, "1", follower, 0, "1000000").await, 0);
    assert_eq!(alter(admin, "", leader, 0, "3000000").await, 0);
    let (_, rows) = describe(&b, admin, BROKER, "1", &[leader, follower]);
    assert_eq!(
        rows,
        vec![
            (
                follower.to_string(),
                "1000000".to_string(),
                2,
                vec![(follower.to_string(), 2), (follower.to_string(), 3)]
            ),
            (
                leader.to_string(),
                "3000000".to_string(),
                3,
                vec![(leader.to_string(), 3)]
            ),
        ]
    );
    let (_, rows) = describe(&b, admin, BROKER, "", &[leader, follower]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Another broker's dynamic configs are described from the metadata.
    let (code, rows) = describe(&b, admin, BROKER, "7", &[follower]);
    assert_eq!((code, rows[0].1.as_str()), (0, "2000000"));
    // Validated: a non-negative long, only the dynamic names.
    assert_eq!(alter(admin, "1", leader, 0, "-1").await, INVALID_CONFIG);
    assert_eq!(
        alter(admin, "1", "num.partitions", 0, "3").await,
        INVALID_CONFIG
    );
    assert_eq!(
        alter(admin, "one", leader, 0, "1").await,
        ResponseError::InvalidRequest.code()
    );
    // Deleting the broker's value falls back to the default.
    assert_eq!(alter(admin, "1", follower, 1, "").await, 0);
    assert_eq!(
        b.image().dynamic_broker_config(1, follower),
        Some("2000000")
    );
    // ALTER_CONFIGS on the cluster.
    assert_eq!(alter("User:alice", "1", leader, 0, "1").await, CAF);
}
