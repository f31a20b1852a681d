//! What every reconcile shares: the Kubernetes client, broker clients per cluster,
//! metrics and the Event recorder.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_client::{Client as BrokerClient, ClientConfig};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::Result;

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Metrics registry and families.
    pub metrics: Metrics,
    /// How often a Ready Topic is compared with its broker topic again, to set back
    /// changes made by other tools (which raise no Kubernetes event).
    pub topic_resync: Duration,
    /// Where the operator's pods are, for the operator port of each NetworkPolicy.
    pub operator_peer: crate::netpol::OperatorPeer,
    recorder: Recorder,
    /// Broker clients by bootstrap address; dropped on error and reconnected on demand.
    brokers: Mutex<HashMap<String, Arc<BrokerClient>>>,
    /// Consecutive failed reconciles per object uid, for retry backoff.
    failures: std::sync::Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context reporting Events as `fjord-operator` (instance: this pod or host).
    pub fn new(client: kube::Client, metrics: Metrics) -> Context {
        let reporter = Reporter {
            controller: crate::desired::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            topic_resync: crate::topic::DEFAULT_RESYNC,
            operator_peer: crate::netpol::OperatorPeer::default(),
            brokers: Mutex::default(),
            failures: std::sync::Mutex::default(),
        }
    }

    /// A connected client for the cluster bootstrapping at `bootstrap`.
    pub async fn broker(&self, bootstrap: &str) -> Result<Arc<BrokerClient>> {
        if let Some(c) = self.brokers.lock().await.get(bootstrap) {
            return Ok(c.clone());
        }
        let config = ClientConfig {
            client_id: "fjord-operator".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            ..ClientConfig::default()
        };
        let client = Arc::new(BrokerClient::connect(&[bootstrap], config).await?);
        self.brokers
            .lock()
            .await
            .insert(bootstrap.to_string(), client.clone());
        Ok(client)
    }

    /// Forgets the client of `bootstrap` after an error, so the next call reconnects
    /// (brokers may have moved to new pods and addresses).
    pub async fn forget_broker(&self, bootstrap: &str) {
        self.brokers.lock().await.remove(bootstrap);
    }

    /// Delay before retrying `obj` after a failed reconcile: 1 s doubling per
    /// consecutive failure, capped at 5 minutes.
    pub fn backoff<K: Resource>(&self, obj: &K) -> Duration {
        let key = obj.meta().uid.clone().unwrap_or_default();
        let mut failures = self.failures.lock().unwrap();
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Clears the failure count of `obj` after a successful reconcile.
    pub fn reset_backoff<K: Resource>(&self, obj: &K) {
        if let Some(uid) = &obj.meta().uid {
            self.failures.lock().unwrap().remove(uid);
        }
    }

    /// Publishes an Event about `obj`; a failure is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.event_related(obj, None, type_, reason, note).await;
    }

    /// Publishes an Event about `obj` that names a `related` object too. The recorder
    /// folds Events of one reason about one object into a series that keeps the first
    /// note; a related object keeps each one apart (one per broker pod restarted).
    pub async fn event_related<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        related: Option<ObjectReference>,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: related,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.name_any(), error = %e, "publishing event failed");
        }
    }
}

/// Whether reconciliation of `obj` is paused by annotation.
pub fn paused<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::types::PAUSE_ANNOTATION))
        .is_some_and(|v| v == "true")
}
