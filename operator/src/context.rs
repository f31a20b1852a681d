//! What every reconcile shares: the Kubernetes client, broker clients per cluster,
//! metrics and the Event recorder.
//!
//! The operator reaches a FjordCluster's brokers on their operator listener behind the
//! bootstrap Service ([`BrokerEndpoint`]), with mutual TLS: the certificate, key and
//! cluster-CA bundle of the Secret `<cluster>-operator-cert`. A client is kept per
//! cluster and replaced when that Secret's certificate changes (renewal, CA rotation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_client::{Client as BrokerClient, ClientConfig, TlsConfig};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::types::FjordCluster;
use crate::{Error, Result};

/// How long a client is used before its Secret is read again to see whether the
/// certificate changed. A renewal happens long before the old certificate expires
/// (`certificates.renewBefore`), so this only bounds how late the new one is picked up.
pub const IDENTITY_RECHECK: Duration = Duration::from_secs(30);

/// Where and as whom the operator reaches the brokers of one FjordCluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerEndpoint {
    /// The cluster's namespace.
    pub namespace: String,
    /// The FjordCluster's name.
    pub cluster: String,
    /// `host:port` of the operator listener behind the bootstrap Service.
    pub address: String,
}

impl BrokerEndpoint {
    /// The operator's endpoint of `cluster`.
    pub fn of(cluster: &FjordCluster) -> BrokerEndpoint {
        BrokerEndpoint {
            namespace: cluster.namespace().unwrap_or_default(),
            cluster: cluster.name_any(),
            address: crate::desired::operator_address(cluster),
        }
    }

    /// The Secret with the operator's certificate for this cluster.
    pub fn secret_name(&self) -> String {
        operator_secret_name(&self.cluster)
    }
}

impl std::fmt::Display for BrokerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// Name of the Secret with the operator's certificate for cluster `cluster`.
pub fn operator_secret_name(cluster: &str) -> String {
    format!("{cluster}-operator-cert")
}

/// The operator's TLS identity as read from its Secret: certificate chain, key and the
/// cluster-CA bundle the brokers' certificates must chain to.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for OperatorIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorIdentity").finish_non_exhaustive()
    }
}

impl OperatorIdentity {
    /// Reads `tls.crt`, `tls.key` and `ca.crt` of the Secret; the message names what is
    /// missing. Data from the API server is checked like any input.
    pub fn from_secret(secret: &Secret) -> std::result::Result<OperatorIdentity, String> {
        let name = secret.name_any();
        let data = secret.data.as_ref();
        let key = |k: &str| -> std::result::Result<String, String> {
            let bytes = data
                .and_then(|d| d.get(k))
                .ok_or_else(|| format!("Secret {name} has no {k}"))?;
            String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("Secret {name}: {k} is not PEM text"))
        };
        Ok(OperatorIdentity {
            chain_pem: key("tls.crt")?,
            key_pem: key("tls.key")?,
            ca_pem: key("ca.crt")?,
        })
    }

    /// The client TLS settings: present the certificate, trust the cluster CA bundle.
    pub fn tls(&self) -> fjord_client::Result<TlsConfig> {
        TlsConfig::with_client_certificate(&self.ca_pem, &self.chain_pem, &self.key_pem)
    }
}

/// A connected client and the identity it was made with.
struct Cached {
    client: Arc<BrokerClient>,
    identity: OperatorIdentity,
    checked: Instant,
}

/// How often a Ready Topic or User is compared with the brokers again, unless
/// `--topic-resync-seconds` or `--user-resync-seconds` say otherwise.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);

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
    /// Broker clients by endpoint; dropped on error and reconnected on demand.
    brokers: Mutex<HashMap<BrokerEndpoint, Cached>>,
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
            topic_resync: DEFAULT_RESYNC,
            operator_peer: crate::netpol::OperatorPeer::default(),
            brokers: Mutex::default(),
            failures: std::sync::Mutex::default(),
        }
    }

    /// A connected client for the brokers of `endpoint`, as the operator (mutual TLS).
    /// A client older than [`IDENTITY_RECHECK`] is kept only while the operator's
    /// Secret holds the certificate it was made with.
    pub async fn broker(&self, endpoint: &BrokerEndpoint) -> Result<Arc<BrokerClient>> {
        let now = Instant::now();
        if let Some(c) = self.brokers.lock().await.get_mut(endpoint) {
            if now.duration_since(c.checked) < IDENTITY_RECHECK {
                return Ok(c.client.clone());
            }
        }
        let identity = self.operator_identity(endpoint).await?;
        if let Some(c) = self.brokers.lock().await.get_mut(endpoint) {
            if c.identity == identity {
                c.checked = now;
                return Ok(c.client.clone());
            }
            tracing::info!(cluster = %endpoint.cluster, namespace = %endpoint.namespace,
                "operator certificate changed; reconnecting to the brokers with it");
        }
        let tls = identity.tls().map_err(|e| {
            Error::Invalid(format!(
                "Secret {}/{}: {e}",
                endpoint.namespace,
                endpoint.secret_name()
            ))
        })?;
        let config = ClientConfig {
            client_id: "fjord-operator".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            tls: Some(tls),
            ..ClientConfig::default()
        };
        let client = Arc::new(BrokerClient::connect(&[&endpoint.address], config).await?);
        self.brokers.lock().await.insert(
            endpoint.clone(),
            Cached {
                client: client.clone(),
                identity,
                checked: now,
            },
        );
        Ok(client)
    }

    async fn operator_identity(&self, endpoint: &BrokerEndpoint) -> Result<OperatorIdentity> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &endpoint.namespace);
        let name = endpoint.secret_name();
        let secret = secrets.get_opt(&name).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "Secret {}/{name} with the operator's certificate does not exist yet",
                endpoint.namespace
            ))
        })?;
        OperatorIdentity::from_secret(&secret).map_err(Error::Invalid)
    }

    /// Forgets the client of `endpoint` after an error, so the next call reconnects
    /// (brokers may have moved to new pods and addresses).
    pub async fn forget_broker(&self, endpoint: &BrokerEndpoint) {
        self.brokers.lock().await.remove(endpoint);
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(keys: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("demo-operator-cert".into()),
                ..Default::default()
            },
            data: Some(
                keys.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn endpoint_is_the_operator_port_behind_the_bootstrap_service() {
        let mut c = FjordCluster::new(
            "demo",
            serde_json::from_value(serde_json::json!({
                "replicas": 3, "storage": {"size": "1Gi"}, "ports": {"operator": 9191}
            }))
            .unwrap(),
        );
        c.metadata.namespace = Some("ns".into());
        let e = BrokerEndpoint::of(&c);
        assert_eq!(e.address, "demo-bootstrap.ns.svc:9191");
        assert_eq!(e.to_string(), "demo-bootstrap.ns.svc:9191");
        assert_eq!(e.secret_name(), "demo-operator-cert");
        assert_eq!(e.namespace, "ns");
    }

    #[test]
    fn identity_is_read_from_the_secret_and_checked() {
        let id = OperatorIdentity::from_secret(&secret(&[
            ("tls.crt", b"CHAIN"),
            ("tls.key", b"KEY"),
            ("ca.crt", b"CA"),
        ]))
        .unwrap();
        assert_eq!(
            (
                id.chain_pem.as_str(),
                id.key_pem.as_str(),
                id.ca_pem.as_str()
            ),
            ("CHAIN", "KEY", "CA")
        );
        // The key never shows in logs.
        assert!(!format!("{id:?}").contains("KEY"));
        // Not PEM: the TLS settings say so instead of connecting.
        assert!(id.tls().is_err());
        let missing = OperatorIdentity::from_secret(&secret(&[("tls.crt", b"x")]));
        assert_eq!(
            missing.unwrap_err(),
            "Secret demo-operator-cert has no tls.key"
        );
        let binary = OperatorIdentity::from_secret(&secret(&[
            ("tls.crt", b"x"),
            ("tls.key", &[0xff, 0xfe]),
            ("ca.crt", b"x"),
        ]));
        assert_eq!(
            binary.unwrap_err(),
            "Secret demo-operator-cert: tls.key is not PEM text"
        );
    }
}
