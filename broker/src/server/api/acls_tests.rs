//! The ACL APIs on a one-broker cluster, and the check of every handler: each API is
//! called as a principal without the right (refused with Kafka's code) and again
//! after an ACL grants it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::auth::acl::{AclOperation as Op, PatternType as Pt, PermissionType as Perm};
use crate::auth::acl::{ResourceType as Rt, CLUSTER_NAME};
use crate::auth::Principal;
use crate::config::BrokerConfig;
use crate::server::api::{admin, configs, fetch, groups, metadata, offsets, produce, reassign};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

const TAF: i16 = ResponseError::TopicAuthorizationFailed.code();
const GAF: i16 = ResponseError::GroupAuthorizationFailed.code();
const CAF: i16 = ResponseError::ClusterAuthorizationFailed.code();

async fn broker(dir: &std::path::Path, flags: &[&str]) -> Arc<Broker> {
    let mut args = vec!["fjord", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    crate::server::test_broker(Cli::parse_from(args).broker)
        .await
        .0
}

/// Authorizer on, `User:admin` the super user.
async fn secured(dir: &std::path::Path) -> Arc<Broker> {
    broker(
        dir,
        &["--authorizer", "standard", "--super-users", "User:admin"],
    )
    .await
}

fn ctx(api_key: ApiKey, version: i16, who: &str) -> RequestContext {
    RequestContext {
        api_key,
        version,
        correlation_id: 1,
        client_id: "test".into(),
        peer: "127.0.0.1:5000".parse().unwrap(),
        principal: Principal::parse(who).unwrap(),
    }
}

fn creation(rt: Rt, name: &str, pt: Pt, who: &str, op: Op, perm: Perm) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt.code())
        .with_resource_name(str_bytes(name))
        .with_resource_pattern_type(pt.code())
        .with_principal(str_bytes(who))
        .with_host(str_bytes("*"))
        .with_operation(op.code())
        .with_permission_type(perm.code())
}

/// Create ACLs as the super user; every one must succeed.
async fn grant(b: &Broker, acls: Vec<AclCreation>) {
    let resp = create_acls(
        b,
        &ctx(ApiKey::CreateAcls, 3, "User:admin"),
        CreateAclsRequest::default().with_creations(acls),
    )
    .await;
    for r in resp.results {
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }
}

async fn create_topic(b: &Broker, name: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let resp = admin::create_topics(b, &ctx(ApiKey::CreateTopics, 7, "User:admin"), req).await;
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

fn filter_any() -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(Rt::Any.code())
        .with_pattern_type_filter(Pt::Any.code())
        .with_operation(Op::Any.code())
        .with_permission_type(Perm::Any.code())
}

#[tokio::test]
async fn acl_apis_need_an_authorizer_and_rights_on_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let open = broker(dir.path(), &[]).await;
    let acl = creation(Rt::Topic, "t", Pt::Literal, "User:a", Op::Read, Perm::Allow);
    let resp = create_acls(
        &open,
        &ctx(ApiKey::CreateAcls, 3, "User:admin"),
        CreateAclsRequest::default().with_creations(vec![acl.clone()]),
    )
    .await;
    let disabled = ResponseError::SecurityDisabled.code();
    assert_eq!(resp.results[0].error_code, disabled);
    let resp = describe_acls(
        &open,
        &ctx(ApiKey::DescribeAcls, 3, "User:admin"),
        DescribeAclsRequest::default(),
    );
    assert_eq!(resp.error_code, disabled);
    let resp = delete_acls(
        &open,
        &ctx(ApiKey::DeleteAcls, 3, "User:admin"),
        DeleteAclsRequest::default().with_filters(vec![filter_any()]),
    )
    .await;
    assert_eq!(resp.filter_results[0].error_code, disabled);
    drop(open);

    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let alice = |api| ctx(api, 3, "User:alice");
    let create = CreateAclsRequest::default().with_creations(vec![acl.clone()]);
    let resp = create_acls(&b, &alice(ApiKey::CreateAcls), create.clone()).await;
    assert_eq!(resp.results[0].error_code, CAF);
    assert!(b.image().acls().is_empty());
    // ALTER on the cluster lets alice create ACLs; DESCRIBE lets her list them.
    grant(
        &b,
        vec![creation(
            Rt::Cluster,
            CLUSTER_NAME,
            Pt::Literal,
            "User:alice",
            Op::Alter,
            Perm::Allow,
        )],
    )
    .await;
    let resp = create_acls(&b, &alice(ApiKey::CreateAcls), create).await;
    assert_eq!(resp.results[0].error_code, 0);
    let resp = describe_acls(
        &b,
        &alice(ApiKey::DescribeAcls),
        DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(Rt::Any.code())
            .with_pattern_type_filter(Pt::Any.code())
            .with_operation(Op::Any.code())
            .with_permission_type(Perm::Any.code()),
    );
    // ALTER implies DESCRIBE.
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.resources.len(), 2);
}

#[tokio::test]
async fn acls_are_created_described_and_deleted_in_the_metadata_log() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let admin = |api| ctx(api, 3, "User:admin");
    let lit = creation(
        Rt::Topic,
        "orders",
        Pt::Literal,
        "User:a",
        Op::Read,
        Perm::Allow,
    );
    let pre = creation(
        Rt::Topic,
        "ord",
        Pt::Prefixed,
        "User:b",
        Op::Write,
        Perm::Deny,
    );
    let group = creation(Rt::Group, "g", Pt::Literal, "User:a", Op::Read, Perm::Allow);
    let mut bad = lit.clone();
    bad.resource_pattern_type = Pt::Match.code();
    let mut no_colon = lit.clone();
    no_colon.principal = str_bytes("alice");
    let req = CreateAclsRequest::default().with_creations(vec![
        lit.clone(),
        bad,
        pre.clone(),
        no_colon,
        group.clone(),
        lit.clone(),
    ]);
    let resp = create_acls(&b, &admin(ApiKey::CreateAcls), req).await;
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![0, invalid, 0, invalid, 0, 0]);
    // A repeated or existing binding is stored once.
    assert_eq!(b.image().acls().len(), 3);
    grant(&b, vec![lit.clone()]).await;
    assert_eq!(b.image().acls().len(), 3);

    let describe = |f: DescribeAclsRequest| describe_acls(&b, &admin(ApiKey::DescribeAcls), f);
    let any = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(Rt::Any.code())
        .with_pattern_type_filter(Pt::Any.code())
        .with_operation(Op::Any.code())
        .with_permission_type(Perm::Any.code());
    assert_eq!(describe(any.clone()).resources.len(), 3);
    // MATCH: every ACL that applies to topic "orders".
    let matching = describe(
        any.clone()
            .with_resource_type_filter(Rt::Topic.code())
            .with_resource_name_filter(Some(str_bytes("orders")))
            .with_pattern_type_filter(Pt::Match.code()),
    );
    let mut names: Vec<(String, i8)> = matching
        .resources
        .iter()
        .map(|r| (r.resource_name.to_string(), r.pattern_type))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("ord".into(), Pt::Prefixed.code()),
            ("orders".into(), Pt::Literal.code())
        ]
    );
    let unknown = describe(any.clone().with_operation(Op::Unknown.code()));
    assert_eq!(unknown.error_code, invalid);

    // DeleteAcls lists what each filter removed; an ACL matched twice is listed twice.
    let by_a = filter_any().with_principal_filter(Some(str_bytes("User:a")));
    let topics = filter_any().with_resource_type_filter(Rt::Topic.code());
    let unknown = filter_any().with_permission_type(Perm::Unknown.code());
    let resp = delete_acls(
        &b,
        &admin(ApiKey::DeleteAcls),
        DeleteAclsRequest::default().with_filters(vec![by_a, topics, unknown]),
    )
    .await;
    let counts: Vec<(i16, usize)> = resp
        .filter_results
        .iter()
        .map(|r| (r.error_code, r.matching_acls.len()))
        .collect();
    assert_eq!(counts, vec![(0, 2), (0, 2), (invalid, 0)]);
    assert!(b.image().acls().is_empty());
}

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
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "orders",
            Pt::Literal,
            "User:*",
            Op::Read,
            Perm::Allow,
        )],
    )
    .await;
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
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "orders",
            Pt::Literal,
            alice,
            Op::Read,
            Perm::Allow,
        )],
    )
    .await;
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
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "fresh",
            Pt::Literal,
            alice,
            Op::Describe,
            Perm::Allow,
        )],
    )
    .await;
    let named = metadata_of(&b, alice, Some(&["fresh"])).await;
    assert_eq!(named.topics[0].error_code, TAF);
    assert!(b.image().topic("fresh").is_none());
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "fresh",
            Pt::Literal,
            alice,
            Op::Create,
            Perm::Allow,
        )],
    )
    .await;
    let named = metadata_of(&b, alice, Some(&["fresh"])).await;
    assert_eq!(named.topics[0].error_code, 0);
    assert!(b.image().topic("fresh").is_some());

    grant(
        &b,
        vec![creation(
            Rt::Cluster,
            CLUSTER_NAME,
            Pt::Literal,
            alice,
            Op::Describe,
            Perm::Allow,
        )],
    )
    .await;
    assert_eq!(
        metadata_of(&b, alice, None)
            .await
            .cluster_authorized_operations,
        bit(Op::Describe)
    );
}

#[tokio::test]
async fn topic_administration_needs_create_delete_alter_and_config_rights() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let alice = "User:alice";
    let create = |name: &str| {
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)])
    };
    let resp = admin::create_topics(&b, &ctx(ApiKey::CreateTopics, 7, alice), create("a1")).await;
    assert_eq!(resp.topics[0].error_code, TAF);
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "a",
            Pt::Prefixed,
            alice,
            Op::Create,
            Perm::Allow,
        )],
    )
    .await;
    let resp = admin::create_topics(&b, &ctx(ApiKey::CreateTopics, 7, alice), create("a1")).await;
    assert_eq!(resp.topics[0].error_code, 0);
    // Configs are reported only with DESCRIBE_CONFIGS on the topic.
    assert_eq!(resp.topics[0].topic_config_error_code, TAF);
    let resp = admin::create_topics(&b, &ctx(ApiKey::CreateTopics, 7, alice), create("b1")).await;
    assert_eq!(resp.topics[0].error_code, TAF);

    // CreatePartitions: ALTER.
    let grow = CreatePartitionsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(str_bytes("a1")))
            .with_count(2)
            .with_assignments(None),
    ]);
    let resp =
        admin::create_partitions(&b, &ctx(ApiKey::CreatePartitions, 3, alice), grow.clone()).await;
    assert_eq!(resp.results[0].error_code, TAF);

    // Configs: DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, on the cluster for the broker.
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("a1")),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(str_bytes("1")),
    ]);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("a1"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(str_bytes("retention.ms"))
                .with_value(Some(str_bytes("1000")))]),
    ]);
    let codes =
        |r: &DescribeConfigsResponse| r.results.iter().map(|x| x.error_code).collect::<Vec<_>>();
    let resp = configs::describe_configs(
        &b,
        &ctx(ApiKey::DescribeConfigs, 4, alice),
        describe.clone(),
    );
    assert_eq!(codes(&resp), vec![TAF, CAF]);
    let resp = configs::incremental_alter_configs(
        &b,
        &ctx(ApiKey::IncrementalAlterConfigs, 1, alice),
        alter.clone(),
    )
    .await;
    assert_eq!(resp.responses[0].error_code, TAF);
    grant(
        &b,
        vec![
            creation(
                Rt::Topic,
                "a1",
                Pt::Literal,
                alice,
                Op::AlterConfigs,
                Perm::Allow,
            ),
            creation(Rt::Topic, "a1", Pt::Literal, alice, Op::Alter, Perm::Allow),
            creation(
                Rt::Cluster,
                CLUSTER_NAME,
                Pt::Literal,
                alice,
                Op::DescribeConfigs,
                Perm::Allow,
            ),
        ],
    )
    .await;
    let resp = configs::describe_configs(&b, &ctx(ApiKey::DescribeConfigs, 4, alice), describe);
    assert_eq!(codes(&resp), vec![0, 0]);
    let resp = configs::incremental_alter_configs(
        &b,
        &ctx(ApiKey::IncrementalAlterConfigs, 1, alice),
        alter,
    )
    .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        b.image().topic("a1").unwrap().configs["retention.ms"],
        "1000"
    );
    let resp = admin::create_partitions(&b, &ctx(ApiKey::CreatePartitions, 3, alice), grow).await;
    assert_eq!(resp.results[0].error_code, 0);

    // DeleteTopics: DESCRIBE, then existence, then DELETE.
    let delete = |name: &str| {
        DeleteTopicsRequest::default().with_topic_names(vec![TopicName(str_bytes(name))])
    };
    let codes = |r: &DeleteTopicsResponse| r.responses[0].error_code;
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 5, alice), delete("zz")).await;
    assert_eq!(
        codes(&resp),
        TAF,
        "no word on a topic alice may not describe"
    );
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 5, alice), delete("a1")).await;
    assert_eq!(codes(&resp), TAF, "ALTER implies DESCRIBE, not DELETE");
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "a",
            Pt::Prefixed,
            alice,
            Op::Delete,
            Perm::Allow,
        )],
    )
    .await;
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 5, alice), delete("a2")).await;
    assert_eq!(codes(&resp), ResponseError::UnknownTopicOrPartition.code());
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 5, alice), delete("a1")).await;
    assert_eq!(codes(&resp), 0);
    assert!(b.image().topic("a1").is_none());
}

fn commit(group: &str, topic: &str) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])])
}

#[tokio::test]
async fn groups_need_rights_on_the_group_and_its_topics() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    let alice = "User:alice";
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes("g"))
        .with_key_type(0);
    let resp =
        groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, alice), find.clone()).await;
    assert_eq!(resp.error_code, GAF);
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_member_id(str_bytes("m"))
        .with_generation_id(1);
    assert_eq!(
        groups::heartbeat(&b, &ctx(ApiKey::Heartbeat, 4, alice), heartbeat.clone()).error_code,
        GAF
    );
    let code = |r: &OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    let resp = groups::offset_commit(
        &b,
        &ctx(ApiKey::OffsetCommit, 8, alice),
        commit("g", "orders"),
    )
    .await;
    assert_eq!(code(&resp), GAF);

    // READ on the group: found, committed only with READ on the topic too.
    grant(
        &b,
        vec![creation(
            Rt::Group,
            "g",
            Pt::Literal,
            alice,
            Op::Read,
            Perm::Allow,
        )],
    )
    .await;
    let resp = groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, alice), find).await;
    assert_eq!(resp.error_code, 0);
    let resp = groups::offset_commit(
        &b,
        &ctx(ApiKey::OffsetCommit, 8, alice),
        commit("g", "orders"),
    )
    .await;
    assert_eq!(code(&resp), TAF);
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "orders",
            Pt::Literal,
            alice,
            Op::Read,
            Perm::Allow,
        )],
    )
    .await;
    // The group's coordinator loads in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = groups::offset_commit(
            &b,
            &ctx(ApiKey::OffsetCommit, 8, alice),
            commit("g", "orders"),
        )
        .await;
        if code(&resp) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "commit answered {}",
            code(&resp)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        groups::heartbeat(&b, &ctx(ApiKey::Heartbeat, 4, alice), heartbeat).error_code,
        ResponseError::UnknownMemberId.code()
    );

    // Bob: no DESCRIBE on the group; with DESCRIBE on the group but not the topic the
    // committed offset is TOPIC_AUTHORIZATION_FAILED, and an all-topics fetch omits it.
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    let fetch = |topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_topics(topics)])
    };
    let named = Some(vec![OffsetFetchRequestTopics::default()
        .with_name(TopicName(str_bytes("orders")))
        .with_partition_indexes(vec![0])]);
    let bob = "User:bob";
    let resp = groups::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(named.clone()));
    assert_eq!(resp.groups[0].error_code, GAF);
    grant(
        &b,
        vec![creation(
            Rt::Group,
            "g",
            Pt::Literal,
            bob,
            Op::Describe,
            Perm::Allow,
        )],
    )
    .await;
    let resp = groups::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(named.clone()));
    assert_eq!(resp.groups[0].topics[0].partitions[0].error_code, TAF);
    let resp = groups::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(None));
    assert!(resp.groups[0].topics.is_empty());
    let resp = groups::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, alice), fetch(None));
    assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 0);

    // DescribeGroups / ListGroups: DESCRIBE; DeleteGroups: DELETE.
    let describe = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(str_bytes("g"))])
        .with_include_authorized_operations(true);
    let resp = groups::describe_groups(
        &b,
        &ctx(ApiKey::DescribeGroups, 5, "User:carol"),
        describe.clone(),
    );
    assert_eq!(resp.groups[0].error_code, GAF);
    let resp = groups::describe_groups(&b, &ctx(ApiKey::DescribeGroups, 5, bob), describe);
    assert_eq!(resp.groups[0].error_code, 0);
    assert_eq!(
        resp.groups[0].authorized_operations,
        1 << Op::Describe.code()
    );
    let listed = |who| {
        groups::list_groups(
            &b,
            &ctx(ApiKey::ListGroups, 4, who),
            ListGroupsRequest::default(),
        )
        .groups
        .len()
    };
    assert_eq!((listed(bob), listed("User:carol")), (1, 0));
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("g"))]);
    let resp = groups::delete_groups(&b, &ctx(ApiKey::DeleteGroups, 2, alice), delete).await;
    assert_eq!(resp.results[0].error_code, GAF);
}

#[tokio::test]
async fn cluster_operations_need_rights_on_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    let alice = "User:alice";
    let init = |who| {
        let b = b.clone();
        async move {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1);
            admin::init_producer_id(&b, &ctx(ApiKey::InitProducerId, 4, who), req)
                .await
                .error_code
        }
    };
    assert_eq!(init(alice).await, CAF);
    // WRITE on some topic is enough (KIP-679), as is IDEMPOTENT_WRITE on the cluster.
    grant(
        &b,
        vec![creation(
            Rt::Topic,
            "o",
            Pt::Prefixed,
            alice,
            Op::Write,
            Perm::Allow,
        )],
    )
    .await;
    assert_eq!(init(alice).await, 0);
    grant(
        &b,
        vec![creation(
            Rt::Cluster,
            CLUSTER_NAME,
            Pt::Literal,
            "User:bob",
            Op::IdempotentWrite,
            Perm::Allow,
        )],
    )
    .await;
    assert_eq!(init("User:bob").await, 0);

    let list = reassign::list(
        &b,
        &ctx(ApiKey::ListPartitionReassignments, 0, alice),
        ListPartitionReassignmentsRequest::default(),
    );
    assert_eq!(list.error_code, CAF);
    let unregister = reassign::unregister_broker(
        &b,
        &ctx(ApiKey::UnregisterBroker, 0, alice),
        UnregisterBrokerRequest::default().with_broker_id(BrokerId(9)),
    )
    .await;
    assert_eq!(unregister.error_code, CAF);
    let alter = reassign::alter(
        &b,
        &ctx(ApiKey::AlterPartitionReassignments, 0, alice),
        AlterPartitionReassignmentsRequest::default(),
    )
    .await;
    assert_eq!(alter.error_code, CAF);
    grant(
        &b,
        vec![creation(
            Rt::Cluster,
            CLUSTER_NAME,
            Pt::Literal,
            alice,
            Op::Describe,
            Perm::Allow,
        )],
    )
    .await;
    let list = reassign::list(
        &b,
        &ctx(ApiKey::ListPartitionReassignments, 0, alice),
        ListPartitionReassignmentsRequest::default(),
    );
    assert_eq!(list.error_code, 0);

    // DescribeCluster answers anyone; the operations only to whom may describe it.
    let describe =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let resp = admin::describe_cluster(
        &b,
        &ctx(ApiKey::DescribeCluster, 0, "User:carol"),
        describe.clone(),
    );
    assert_eq!(
        (resp.error_code, resp.cluster_authorized_operations),
        (0, 0)
    );
    let resp = admin::describe_cluster(&b, &ctx(ApiKey::DescribeCluster, 0, alice), describe);
    assert_eq!(resp.cluster_authorized_operations, 1 << Op::Describe.code());
}
