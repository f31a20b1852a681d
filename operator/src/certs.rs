//! The certificates of a FjordCluster, carried out: reads the certificate Secrets, asks
//! [`crate::pki::plan`] what to write, writes it (server-side apply, owned by the
//! FjordCluster), publishes Events and removes the renewal annotations once served.
//! Called by the FjordCluster reconcile before the StatefulSet, so a broker pod never
//! starts without its certificate.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use crate::context::Context;
use crate::pki::{self, CaKind, CaState, Observed, SecretData, SecretWrite};
use crate::types::{
    CaStatus, CertificatesStatus, FjordCluster, RENEW_CA_ANNOTATION, RENEW_CLIENTS_CA_ANNOTATION,
};
use crate::{Error, Result};

/// The longest a cluster waits before its certificates are looked at again.
const MAX_RECHECK: Duration = Duration::from_secs(3600);

/// What a certificate reconcile leaves: the status to report and when to come back.
#[derive(Debug)]
pub struct Outcome {
    pub status: CertificatesStatus,
    pub requeue_after: Duration,
}

fn namespace(cluster: &FjordCluster) -> Result<String> {
    cluster
        .namespace()
        .ok_or_else(|| Error::Invalid("FjordCluster without namespace".into()))
}

fn annotated(cluster: &FjordCluster, key: &str) -> bool {
    cluster.annotations().get(key).is_some_and(|v| v == "true")
}

/// The Secrets the planner looks at, by name: those of [`pki::secret_names`] and the
/// user's CAs.
async fn read_secrets(
    api: &Api<Secret>,
    cluster: &FjordCluster,
) -> Result<BTreeMap<String, SecretData>> {
    let names = pki::secret_names(&cluster.name_any());
    let spec = cluster.spec.certificates();
    let mut wanted = vec![
        names.cluster_ca,
        names.cluster_ca_cert,
        names.clients_ca,
        names.clients_ca_cert,
        names.broker_certs,
        names.operator_cert,
    ];
    wanted.extend(
        [&spec.cluster_ca, &spec.clients_ca]
            .into_iter()
            .flatten()
            .map(|r| r.secret_name.clone()),
    );
    let mut out = BTreeMap::new();
    for name in wanted {
        if let Some(s) = api.get_opt(&name).await? {
            out.insert(
                name,
                SecretData {
                    data: s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                    annotations: s.metadata.annotations.unwrap_or_default(),
                },
            );
        }
    }
    Ok(out)
}

fn desired_secret(cluster: &FjordCluster, w: &SecretWrite) -> Secret {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "fjord".to_string()),
        ("app.kubernetes.io/instance".to_string(), cluster.name_any()),
        (
            "app.kubernetes.io/component".to_string(),
            "certificates".to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "fjord-operator".to_string(),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(w.name.clone()),
            namespace: cluster.namespace(),
            labels: Some(labels),
            annotations: (!w.annotations.is_empty()).then(|| w.annotations.clone()),
            owner_references: Some(vec![crate::desired::owner_reference(cluster)]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            w.data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn time(unix: i64) -> Option<Time> {
    Timestamp::from_second(unix).ok().map(Time)
}

fn ca_status(state: &CaState) -> CaStatus {
    CaStatus {
        generation: state.generation,
        not_after: time(state.not_after),
        previous_not_after: state.previous_not_after.and_then(time),
    }
}

/// Makes, renews and writes the certificates of `cluster` for brokers `0..brokers`.
pub async fn reconcile(ctx: &Context, cluster: &FjordCluster, brokers: i32) -> Result<Outcome> {
    let ns = namespace(cluster)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets = read_secrets(&api, cluster).await?;
    let spec = cluster.spec.certificates();
    let now = Timestamp::now().as_second();
    let name = cluster.name_any();
    let (renew_cluster_ca, renew_clients_ca) = (
        annotated(cluster, RENEW_CA_ANNOTATION),
        annotated(cluster, RENEW_CLIENTS_CA_ANNOTATION),
    );
    let plan = pki::plan(&Observed {
        cluster: &name,
        namespace: &ns,
        now,
        spec: &spec,
        renew_cluster_ca,
        renew_clients_ca,
        brokers,
        secrets: &secrets,
    });
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            ctx.event(
                cluster,
                EventType::Warning,
                "CertificatesFailed",
                e.to_string(),
            )
            .await;
            return Err(e.into());
        }
    };
    for w in &plan.writes {
        tracing::info!(cluster = %name, secret = %w.name, "writing certificates");
        crate::apply::apply(&api, &desired_secret(cluster, w)).await?;
    }
    for e in &plan.events {
        let type_ = if e.kind.warning() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        tracing::info!(cluster = %name, reason = e.kind.reason(), "{}", e.message);
        ctx.event(cluster, type_, e.kind.reason(), e.message.clone())
            .await;
    }
    let served: Vec<&str> = [
        (renew_cluster_ca, RENEW_CA_ANNOTATION),
        (renew_clients_ca, RENEW_CLIENTS_CA_ANNOTATION),
    ]
    .into_iter()
    .filter_map(|(set, key)| set.then_some(key))
    .collect();
    if !served.is_empty() {
        let annotations: serde_json::Map<String, serde_json::Value> = served
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        let patch = serde_json::json!({"metadata": {"annotations": annotations}});
        Api::<FjordCluster>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let wait = u64::try_from(plan.next_renewal.saturating_sub(now)).unwrap_or(0);
    Ok(Outcome {
        status: CertificatesStatus {
            cluster_ca: Some(ca_status(&plan.cluster_ca)),
            clients_ca: Some(ca_status(&plan.clients_ca)),
            next_renewal: time(plan.next_renewal),
        },
        requeue_after: Duration::from_secs(wait.max(1)).min(MAX_RECHECK),
    })
}

/// The clients CA of `cluster` as its Secrets hold it, to sign User certificates with.
/// An error while the operator has not made it yet (the FjordCluster reconcile does).
pub async fn load_clients_ca(client: &kube::Client, cluster: &FjordCluster) -> Result<pki::Ca> {
    let ns = namespace(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secrets = read_secrets(&api, cluster).await?;
    let spec = cluster.spec.certificates();
    let name = cluster.name_any();
    let observed = Observed {
        cluster: &name,
        namespace: &ns,
        now: Timestamp::now().as_second(),
        spec: &spec,
        renew_cluster_ca: false,
        renew_clients_ca: false,
        brokers: 0,
        secrets: &secrets,
    };
    pki::current_ca(&observed, CaKind::Clients)?.ok_or_else(|| {
        Error::Invalid(format!(
            "FjordCluster {name}: the clients CA is not made yet"
        ))
    })
}

/// The cluster CA's trust bundle (PEM) of `cluster`, what clients verify brokers with.
pub async fn cluster_ca_bundle(client: &kube::Client, cluster: &FjordCluster) -> Result<String> {
    let ns = namespace(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = pki::secret_names(&cluster.name_any()).cluster_ca_cert;
    let secret = api.get_opt(&name).await?;
    secret
        .and_then(|s| s.data)
        .and_then(|d| d.get(pki::CA_CERT_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .ok_or_else(|| Error::Invalid(format!("Secret {name} has no {}", pki::CA_CERT_KEY)))
}
