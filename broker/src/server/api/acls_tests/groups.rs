//! Group APIs (on the group and its topics) and the cluster-wide APIs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, PatternType as Pt, PermissionType as Perm};
use crate::auth::acl::{ResourceType as Rt, CLUSTER_NAME};
use crate::server::api::{admin, group_offsets, groups, reassign};

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
    let resp = group_offsets::offset_commit(
        &b,
        &ctx(ApiKey::OffsetCommit, 8, alice),
        commit("g", "orders"),
    )
    .await;
    assert_eq!(code(&resp), GAF);

    // READ on the group: found, committed only with READ on the topic too.
    allow(&b, Rt::Group, "g", alice, Op::Read).await;
    let resp = groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, alice), find).await;
    assert_eq!(resp.error_code, 0);
    let resp = group_offsets::offset_commit(
        &b,
        &ctx(ApiKey::OffsetCommit, 8, alice),
        commit("g", "orders"),
    )
    .await;
    assert_eq!(code(&resp), TAF);
    allow(&b, Rt::Topic, "orders", alice, Op::Read).await;
    // The group's coordinator loads in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = group_offsets::offset_commit(
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
    let resp =
        group_offsets::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(named.clone()));
    assert_eq!(resp.groups[0].error_code, GAF);
    allow(&b, Rt::Group, "g", bob, Op::Describe).await;
    let resp =
        group_offsets::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(named.clone()));
    assert_eq!(resp.groups[0].topics[0].partitions[0].error_code, TAF);
    let resp = group_offsets::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, bob), fetch(None));
    assert!(resp.groups[0].topics.is_empty());
    let resp = group_offsets::offset_fetch(&b, &ctx(ApiKey::OffsetFetch, 8, alice), fetch(None));
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
    allow(
        &b,
        Rt::Cluster,
        CLUSTER_NAME,
        "User:bob",
        Op::IdempotentWrite,
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
    allow(&b, Rt::Cluster, CLUSTER_NAME, alice, Op::Describe).await;
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

#[tokio::test]
async fn offset_delete_needs_delete_on_the_group_and_read_on_the_topic() {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    let alice = "User:alice";
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str_bytes("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let resp =
        group_offsets::offset_delete(&b, &ctx(ApiKey::OffsetDelete, 0, alice), req.clone()).await;
    assert_eq!(resp.error_code, GAF);
    allow(&b, Rt::Group, "g", alice, Op::Delete).await;
    // The group gets an offset (the coordinator loads in the background first); then
    // alice may delete offsets of the group, but not of a topic she may not read.
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes("g"))
        .with_key_type(0);
    let admin = |api| ctx(api, 8, "User:admin");
    groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, "User:admin"), find).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp =
            group_offsets::offset_commit(&b, &admin(ApiKey::OffsetCommit), commit("g", "orders"))
                .await;
        let code = resp.topics[0].partitions[0].error_code;
        if code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "commit answered {code}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let resp =
        group_offsets::offset_delete(&b, &ctx(ApiKey::OffsetDelete, 0, alice), req.clone()).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].error_code, TAF);
    let resp =
        group_offsets::offset_delete(&b, &ctx(ApiKey::OffsetDelete, 0, "User:admin"), req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn a_transaction_coordinator_lookup_needs_describe_on_the_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes("tx"))
        .with_key_type(1);
    let resp = groups::find_coordinator(
        &b,
        &ctx(ApiKey::FindCoordinator, 3, "User:alice"),
        find.clone(),
    )
    .await;
    assert_eq!(
        resp.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    let denied = resp
        .error_message
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(!denied.contains("not served"), "{denied}");
    // Allowed, it is told the coordinator.
    let resp =
        groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, "User:admin"), find).await;
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    assert_eq!(resp.node_id.0, b.node_id());
}
