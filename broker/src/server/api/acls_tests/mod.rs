//! The ACL APIs on a one-broker cluster, and the check of every handler: each API is
//! called as a principal without the right (refused with Kafka's code) and again
//! after an ACL grants it.

mod admin;
mod admin_apis;
mod data;
mod groups;
mod records;
mod txn_offsets;

use std::sync::Arc;

use clap::Parser;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, PatternType as Pt, PermissionType as Perm};
use crate::auth::acl::{ResourceType as Rt, CLUSTER_NAME};
use crate::auth::Principal;
use crate::config::BrokerConfig;
use crate::server::api::admin as admin_api;

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
        listener: crate::config::listeners::Listener::plaintext_for_tests(),
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
/// One LITERAL ALLOW ACL, created by the super user.
async fn allow(b: &Broker, rt: Rt, name: &str, who: &str, op: Op) {
    grant(
        b,
        vec![creation(rt, name, Pt::Literal, who, op, Perm::Allow)],
    )
    .await;
}

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
    let resp = admin_api::create_topics(b, &ctx(ApiKey::CreateTopics, 7, "User:admin"), req).await;
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
    allow(&b, Rt::Cluster, CLUSTER_NAME, "User:alice", Op::Alter).await;
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
