//! Topic controller flows that need no real API server, against kube's mock service:
//! each test answers the requests the reconcile makes and checks what it sent.

use std::sync::Arc;

use fjord_operator::context::Context;
use fjord_operator::metrics::Metrics;
use fjord_operator::topic;
use fjord_operator::types::{DeletionPolicy, Topic, TopicSpec};
use http::{Request, Response};
use kube::client::Body;

fn topic_with(finalizers: Vec<String>) -> Topic {
    let mut t = Topic::new(
        "orders",
        TopicSpec {
            cluster_ref: "missing".into(),
            topic_name: None,
            partitions: 3,
            replication_factor: 1,
            config: Default::default(),
            deletion_policy: DeletionPolicy::Delete,
        },
    );
    t.metadata.namespace = Some("ns".into());
    t.metadata.uid = Some("uid-1".into());
    t.metadata.generation = Some(4);
    t.metadata.resource_version = Some("1".into());
    t.metadata.finalizers = Some(finalizers);
    t
}

async fn body_json(req: Request<Body>) -> serde_json::Value {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn respond(json: serde_json::Value, status: u16) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&json).unwrap()))
        .unwrap()
}

fn context() -> (
    Arc<Context>,
    tower_test::mock::Handle<Request<Body>, Response<Body>>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    (Arc::new(Context::new(client, Metrics::default())), handle)
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer() {
    let (ctx, mut handle) = context();
    let topic = topic_with(vec![]);
    let answer = topic_with(vec![topic::FINALIZER.into()]);
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), http::Method::PATCH);
        assert_eq!(
            req.uri().path(),
            "/apis/fjord.dev/v1alpha1/namespaces/ns/topics/orders"
        );
        let patch = body_json(req).await.to_string();
        assert!(patch.contains(topic::FINALIZER), "{patch}");
        send.send_response(respond(serde_json::to_value(&answer).unwrap(), 200));
    });
    topic::reconcile(Arc::new(topic), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn missing_cluster_gives_cluster_not_found() {
    let (ctx, mut handle) = context();
    let topic = topic_with(vec![topic::FINALIZER.into()]);
    let answer = topic.clone();
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("cluster lookup");
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri().path(),
            "/apis/fjord.dev/v1alpha1/namespaces/ns/fjordclusters/missing"
        );
        send.send_response(respond(
            serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}),
            404,
        ));
        let (req, send) = handle.next_request().await.expect("status write");
        assert_eq!(req.method(), http::Method::PATCH);
        assert_eq!(
            req.uri().path(),
            "/apis/fjord.dev/v1alpha1/namespaces/ns/topics/orders/status"
        );
        assert!(req
            .uri()
            .query()
            .unwrap()
            .contains("fieldManager=fjord-operator"));
        let body = body_json(req).await;
        let cond = &body["status"]["conditions"][0];
        assert_eq!(cond["type"], "Ready");
        assert_eq!(cond["status"], "False");
        assert_eq!(cond["reason"], "ClusterNotFound");
        assert_eq!(body["status"]["observedGeneration"], 4);
        send.send_response(respond(serde_json::to_value(&answer).unwrap(), 200));
    });
    let action = topic::reconcile(Arc::new(topic), ctx).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(30))
    );
    server.await.unwrap();
}
