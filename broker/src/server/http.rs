//! HTTP listener: `/metrics` (Prometheus text), `/health` (process up: a liveness
//! check), `/ready` (logs loaded, the Kafka listener serving, and the metadata log
//! writable: while a metadata write fails and is retried, the broker cannot take part
//! in metadata changes, and says why), `/ready/in-sync` (`/ready`, and back in every
//! ISR since the start: a broker pod's readiness, see `readiness`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::broker::Broker;
use super::readiness::InSync;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/ready/in-sync", get(ready_in_sync))
        .with_state(broker);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    if let Some(quorum) = broker.quorum() {
        let health = quorum.write_health();
        broker
            .metrics
            .observe_metadata_writes(health.failing().is_some(), &health.failures());
    }
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || {
        b.refresh_log_gauges();
        if let Some(groups) = b.groups() {
            groups.refresh_metrics(&b.metrics, |topic, partition| {
                b.partitions
                    .get(topic, partition)
                    .map(|p| p.high_watermark())
            });
        }
    })
    .await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        broker.metrics.render(),
    )
}

async fn ready(State(broker): State<Arc<Broker>>) -> (StatusCode, String) {
    if !broker.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
    }
    match broker.quorum().and_then(|q| q.write_health().failing()) {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metadata write failing, retrying: {why}\n"),
        ),
        None => (StatusCode::OK, "ready\n".to_string()),
    }
}

/// `/ready`, and back in sync since the start (see `readiness`): the probe of a broker
/// pod, so that a drain evicts the next broker only once this one caught up.
async fn ready_in_sync(State(broker): State<Arc<Broker>>) -> (StatusCode, String) {
    let (status, body) = ready(State(broker.clone())).await;
    if status != StatusCode::OK {
        return (status, body);
    }
    match broker.in_sync() {
        InSync::Open => (StatusCode::OK, "ready, in sync\n".to_string()),
        InSync::Waiting(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "catching up: not registered and unfenced yet\n".to_string(),
        ),
        InSync::Waiting(Some(n)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("catching up: {n} partitions not back in their ISR\n"),
        ),
    }
}
