//! fjord-operator: runs Fjord on Kubernetes. Users declare FjordCluster, Topic and
//! ConsumerGroup resources; the controllers here turn them into StatefulSets, Services
//! and broker-side state through the Kafka admin protocol (fjord-client).
//!
//! # Layout
//!
//! - `types`: the custom resources (fjord.dev/v1alpha1) and their CEL rules
//!   (`types::autoscale`: the ConsumerGroup's autoscaling spec and status;
//!   `types::reassignment`: a Topic's replication-factor change in status).
//! - `crd`: CRD manifests generated from the types (what `crdgen` prints).
//! - `desired`: pure builders of a FjordCluster's StatefulSet, Services, ConfigMap, PDB.
//! - `netpol`: pure builder of a FjordCluster's NetworkPolicy (who may reach which port).
//! - `listeners`: pure broker listener, authentication and authorizer flags and the
//!   named ports of a FjordCluster (client listeners and the operator's mTLS listener).
//! - `scale`: pure scale-in/out decision from the spec and observed broker state.
//! - `plan`: pure plan of broker-side steps for a Topic.
//! - `rebalance`: pure reassignment plan that balances replicas and preferred leaders,
//!   and the steps of a rebalance run.
//! - `topic_rf`: pure plan and steps of a Topic's replication-factor change.
//! - `throttle`: the replication throttle (KIP-73 configs) set for a rebalance batch
//!   and removed after it.
//! - `roll`: pure rolling-restart steps (one broker at a time, the controller last,
//!   never below min.insync.replicas) and their runtime.
//! - `autoscale`: pure lag-driven scaling decision for a ConsumerGroup's consumer
//!   workload (and partition growth), and its runtime.
//! - `storage`: pure steps of growing the brokers' claims when `spec.storage.size` grows.
//! - `storage_run`: carries out the storage steps (claims, StatefulSet re-creation).
//! - `pki`: pure certificate authority work: the cluster and clients CAs, broker,
//!   operator and user certificates, CA renewal with cross-signing, and the renewal
//!   planner; `pki::pod`: the certificate volumes and flags of broker pods.
//! - `certs`: reads and writes the certificate Secrets of a FjordCluster from the pki
//!   plan (called by the FjordCluster reconcile before the StatefulSet).
//! - `conditions`: status conditions helpers.
//! - `context`: shared controller state (clients, metrics, Events, backoff).
//! - `cluster`, `topic`, `group`: the controllers (apply, status, Events).
//! - `user`: the User controller: SCRAM credential or client certificate, the Secret
//!   for its clients, and its ACLs as the whole truth for its principal
//!   (`user_secret`: the Secret's contents, pure).
//! - `lease`: leader election through a Lease.
//! - `metrics`: Prometheus metrics of the operator.
//! - `error`: the crate's error type.

pub mod apply;
pub mod autoscale;
pub mod broker_calls;
pub mod certs;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod crd;
pub mod desired;
mod error;
pub mod group;
pub mod lease;
pub mod listeners;
pub mod metrics;
pub mod netpol;
pub mod pki;
pub mod plan;
pub mod rebalance;
pub mod roll;
pub mod scale;
pub mod storage;
pub mod storage_run;
pub mod throttle;
pub mod topic;
pub mod topic_rf;
pub mod types;
pub mod user;
pub mod user_secret;

pub use error::{Error, Result};

/// An Api over one namespace, or over all when `namespace` is `None`.
pub fn api<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

/// A controller over the resources of `api` that is woken by changes to their spec
/// (generation), annotations (pause, managed) and finalizers — not by the status writes
/// every reconcile makes, which would otherwise wake it again at once. Periodic
/// refreshes come from each reconcile's requeue.
pub fn controller<K>(api: kube::Api<K>) -> kube::runtime::Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{predicates, reflector, watcher, Predicate, WatchStreamExt};
    let (reader, writer) = reflector::store();
    let changes = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            Default::default(),
        );
    kube::runtime::Controller::for_stream(changes, reader)
}
