//! The autoscaler's runtime against kube's mock service (the Kubernetes side) and a real
//! `fjord` process (the group's lag and partitions): what it reads, the patch it sends
//! to the workload's scale subresource, and what a missing workload leaves in status.
//! A paused ConsumerGroup touches no workload.
//!
//! Needs the broker binary: `cargo build -p fjord-broker --bin fjord`, then
//! `FJORD_BIN=$CARGO_TARGET_DIR/debug/fjord cargo test -p fjord-operator --test autoscale_mock`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use fjord_client::{Client, ClientConfig, NewTopic, OffsetSpec, ProduceOptions, ProduceRecord};
use fjord_e2e::{BrokerOptions, BrokerProcess};
use fjord_operator::autoscale::apply::autoscale;
use fjord_operator::context::Context;
use fjord_operator::group::{self, group_status};
use fjord_operator::metrics::Metrics;
use fjord_operator::types::{
    Autoscale, ConsumerGroup, ConsumerGroupSpec, ConsumerGroupStatus, ScaleTargetRef,
    PAUSE_ANNOTATION,
};
use http::{Method, Request, Response};
use kube::client::Body;
use tower_test::mock::Handle;

const GROUP: &str = "payments";
const TOPIC: &str = "orders";

fn group_resource() -> ConsumerGroup {
    let mut g = ConsumerGroup::new(
        "payments",
        ConsumerGroupSpec {
            cluster_ref: "demo".into(),
            group_id: GROUP.into(),
            resync_seconds: 30,
            offset_reset: None,
            autoscale: Some(Autoscale {
                scale_target_ref: ScaleTargetRef {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: "consumer".into(),
                },
                min_replicas: 1,
                max_replicas: 10,
                lag_threshold: 2,
                scale_in_stabilization_window_seconds: 300,
                scale_out_stabilization_window_seconds: 0,
                partition_growth: None,
            }),
        },
    );
    g.metadata.namespace = Some("ns".into());
    g.metadata.uid = Some("uid-7".into());
    g.metadata.generation = Some(2);
    g
}

fn context() -> (Arc<Context>, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    (Arc::new(Context::new(client, Metrics::default())), handle)
}

fn respond(json: serde_json::Value, status: u16) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&json).unwrap()))
        .unwrap()
}

async fn body_json(req: Request<Body>) -> serde_json::Value {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Answers the discovery of apps/v1 the scale target's API is found by.
async fn answer_discovery(handle: &mut Handle<Request<Body>, Response<Body>>) {
    let (req, send) = handle.next_request().await.expect("discovery");
    assert_eq!(
        (req.method(), req.uri().path()),
        (&Method::GET, "/apis/apps/v1")
    );
    send.send_response(respond(
        serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true,
                 "kind": "Deployment", "verbs": ["get", "list", "patch"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true,
                 "group": "autoscaling", "version": "v1", "kind": "Scale",
                 "verbs": ["get", "patch", "update"]}
            ]
        }),
        200,
    ));
}

/// Waits a moment for a request that must not come (the client may also be gone).
async fn no_more_requests(handle: &mut Handle<Request<Body>, Response<Body>>) {
    let next = tokio::time::timeout(std::time::Duration::from_millis(300), handle.next_request());
    if let Ok(Some((req, _))) = next.await {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}

fn scale(replicas: i32, version: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "consumer", "namespace": "ns", "resourceVersion": version},
        "spec": {"replicas": replicas}, "status": {"replicas": replicas}
    })
}

const SCALE_PATH: &str = "/apis/apps/v1/namespaces/ns/deployments/consumer/scale";

/// A broker with topic `orders` (3 partitions), 10 records on partition 0 and 4 on
/// partition 1, and group `payments` committed at 3 and 4: lag 7. Returns the status
/// the ConsumerGroup controller computes from it.
async fn lagging_group(broker: &BrokerProcess) -> Result<(Client, ConsumerGroupStatus)> {
    let client = Client::connect(&[broker.bootstrap()], ClientConfig::default()).await?;
    client.create_topic(NewTopic::new(TOPIC, 3, 1)).await?;
    let records: Vec<_> = (0..10)
        .map(|i| ProduceRecord::new(None::<&str>, format!("v{i}")))
        .collect();
    client
        .produce(TOPIC, 0, &records, &ProduceOptions::default())
        .await?;
    client
        .produce(TOPIC, 1, &records[..4], &ProduceOptions::default())
        .await?;
    let commits = [(TOPIC.to_string(), 0, 3), (TOPIC.to_string(), 1, 4)];
    client.commit_offsets(GROUP, &commits).await?;
    let mut ends = BTreeMap::new();
    for (topic, partition, _) in &commits {
        let end = client
            .list_offsets(topic, *partition, OffsetSpec::Latest)
            .await?;
        ends.insert((topic.clone(), *partition), end.offset);
    }
    let mut status = ConsumerGroupStatus::default();
    let description = client.describe_group(GROUP).await?;
    group_status(&mut status, &description, &commits, &ends);
    assert_eq!(status.total_lag, 7);
    Ok((client, status))
}

#[tokio::test]
async fn lag_scales_the_workload_through_its_scale_subresource_then_a_missing_one_blocks(
) -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let (client, mut status) = lagging_group(&broker).await?;
    let group = group_resource();

    // Lag 7 at 2 per consumer: 4 consumers, within the 3 partitions: 3.
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        answer_discovery(&mut handle).await;
        let (req, send) = handle.next_request().await.expect("scale read");
        assert_eq!((req.method(), req.uri().path()), (&Method::GET, SCALE_PATH));
        send.send_response(respond(scale(1, "41"), 200));
        let (req, send) = handle.next_request().await.expect("scale patch");
        assert_eq!(
            (req.method(), req.uri().path()),
            (&Method::PATCH, SCALE_PATH)
        );
        assert!(
            req.uri()
                .query()
                .unwrap()
                .contains("fieldManager=fjord-operator"),
            "{:?}",
            req.uri()
        );
        let patch = body_json(req).await;
        // The version read: a scale changed in between is not overwritten.
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {"resourceVersion": "41"}, "spec": {"replicas": 3}})
        );
        send.send_response(respond(scale(3, "42"), 200));
    });
    let notes = autoscale(&ctx, &group, &mut status, &client).await;
    server.await?;
    let decided = status.autoscale.clone().expect("status.autoscale");
    assert_eq!(decided.decision, "ScaleOut", "{decided:?}");
    assert_eq!(
        (
            decided.current_replicas,
            decided.recommended_replicas,
            decided.desired_replicas,
            decided.partitions
        ),
        (1, 3, 3, 3)
    );
    assert!(
        decided.reason.contains("capped at the 3 partitions"),
        "{}",
        decided.reason
    );
    assert!(decided.last_scale_time.is_some());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1, "ScaledOut");
    assert!(
        notes[0]
            .2
            .contains("Deployment \"consumer\" scaled from 1 to 3"),
        "{}",
        notes[0].2
    );

    // The Deployment is gone: the decision is Blocked, naming it; nothing is patched and
    // the history the next decision needs stays.
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        answer_discovery(&mut handle).await;
        let (req, send) = handle.next_request().await.expect("scale read");
        assert_eq!(req.uri().path(), SCALE_PATH);
        send.send_response(respond(
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404,
                "message": "deployments.apps \"consumer\" not found"}),
            404,
        ));
        no_more_requests(&mut handle).await;
    });
    let notes = autoscale(&ctx, &group, &mut status, &client).await;
    server.await?;
    let blocked = status.autoscale.clone().expect("status.autoscale");
    assert_eq!(blocked.decision, "Blocked");
    assert!(
        blocked
            .reason
            .contains("reading the scale of scaleTargetRef Deployment \"consumer\" (apps/v1)")
            && blocked.reason.contains("not found"),
        "{}",
        blocked.reason
    );
    assert_eq!(blocked.recommendations, decided.recommendations);
    assert!(notes.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_paused_group_touches_no_workload() {
    let (ctx, mut handle) = context();
    let mut group = group_resource();
    group.metadata.annotations = Some([(PAUSE_ANNOTATION.to_string(), "true".into())].into());
    let answer = serde_json::to_value(&group).unwrap();
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("status write");
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(
            req.uri().path(),
            "/apis/fjord.dev/v1alpha1/namespaces/ns/consumergroups/payments/status"
        );
        let body = body_json(req).await;
        assert_eq!(body["status"]["conditions"][0]["type"], "Paused");
        assert!(body["status"].get("autoscale").is_none(), "{body}");
        send.send_response(respond(answer, 200));
        no_more_requests(&mut handle).await;
    });
    group::reconcile(Arc::new(group), ctx).await.unwrap();
    server.await.unwrap();
}
