//! Topic administration and configs: CREATE, DELETE, ALTER, DESCRIBE_CONFIGS,
//! ALTER_CONFIGS on topics and the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, PatternType as Pt, PermissionType as Perm};
use crate::auth::acl::{ResourceType as Rt, CLUSTER_NAME};
use crate::server::api::{admin, configs};

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

#[tokio::test]
async fn topics_named_by_id_keep_their_names_hidden() {
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "hidden").await;
    let id = b.image().topic("hidden").unwrap().id;
    let alice = "User:alice";
    let by_id = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_topic_id(id)
        .with_name(None)]));
    let resp =
        crate::server::api::metadata::handle(&b, &ctx(ApiKey::Metadata, 12, alice), by_id).await;
    let t = &resp.topics[0];
    assert_eq!(
        (t.error_code, t.name.is_none(), t.topic_id),
        (TAF, true, id)
    );
    assert!(t.partitions.is_empty());

    let delete = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default()
        .with_name(None)
        .with_topic_id(id)]);
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 6, alice), delete).await;
    let r = &resp.responses[0];
    assert_eq!(
        (r.error_code, r.name.is_none(), r.topic_id),
        (TAF, true, id)
    );
    assert!(b.image().topic("hidden").is_some());
    // By name, the id of a topic alice may not describe is not told either.
    let delete = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(TopicName(str_bytes("hidden"))))
    ]);
    let resp = admin::delete_topics(&b, &ctx(ApiKey::DeleteTopics, 6, alice), delete).await;
    assert_eq!(
        (resp.responses[0].error_code, resp.responses[0].topic_id),
        (TAF, uuid::Uuid::nil())
    );
}

#[tokio::test]
async fn create_on_the_cluster_creates_any_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let alice = "User:alice";
    allow(&b, Rt::Cluster, CLUSTER_NAME, alice, Op::Create).await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(str_bytes("x")))
            .with_num_partitions(1)
            .with_replication_factor(1),
        CreatableTopic::default()
            .with_name(TopicName(str_bytes("y")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let resp = admin::create_topics(&b, &ctx(ApiKey::CreateTopics, 7, alice), req).await;
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 0]);
}

/// SCRAM credentials are the cluster's: describing them needs DESCRIBE and altering
/// them ALTER on the cluster (Kafka's rule), answered for the whole request.
#[tokio::test]
async fn scram_credentials_need_describe_and_alter_on_the_cluster() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let alice = "User:alice";
    let describe = || {
        crate::server::api::scram::describe_user_scram_credentials(
            &b,
            &ctx(ApiKey::DescribeUserScramCredentials, 0, alice),
            DescribeUserScramCredentialsRequest::default(),
        )
    };
    let alter = || async {
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(str_bytes("bob"))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"0123456789abcdef"))
            .with_salted_password(bytes::Bytes::from(vec![7u8; 64]));
        crate::server::api::scram::alter_user_scram_credentials(
            &b,
            &ctx(ApiKey::AlterUserScramCredentials, 0, alice),
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]),
        )
        .await
    };
    assert_eq!(describe().error_code, CAF);
    let refused = alter().await;
    assert_eq!(refused.results[0].error_code, CAF);
    assert!(b
        .image()
        .scram_credential("bob", crate::auth::scram::ScramMechanism::Sha512)
        .is_none());

    let on_cluster = |op| {
        creation(
            Rt::Cluster,
            CLUSTER_NAME,
            Pt::Literal,
            alice,
            op,
            Perm::Allow,
        )
    };
    grant(&b, vec![on_cluster(Op::Describe), on_cluster(Op::Alter)]).await;
    assert_eq!(describe().error_code, 0);
    let done = alter().await;
    assert_eq!(
        done.results[0].error_code, 0,
        "{:?}",
        done.results[0].error_message
    );
    assert!(b
        .image()
        .scram_credential("bob", crate::auth::scram::ScramMechanism::Sha512)
        .is_some());
}
