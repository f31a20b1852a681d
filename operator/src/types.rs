//! The custom resources of API group `fjord.dev`, version `v1alpha1`.
//!
//! Doc comments on fields become the schema descriptions that `kubectl explain` shows.
//! CEL rules (`x-kubernetes-validations`) reject bad input at the API server, so the
//! reconcilers never see it: replicas and partitions of at least one, partitions and
//! storage that never shrink, a topic name that never changes.

// kube's derive takes repeated `printcolumn(type_ = ...)` and `validation = ...` keys, which
// clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod autoscale;
pub use autoscale::{
    Autoscale, AutoscaleStatus, PartitionGrowth, Recommendation, ScaleTargetRef,
    AUTOSCALE_MAX_REPLICAS,
};
mod reassignment;
pub use reassignment::TopicReassignmentStatus;
mod storage;
pub use storage::{ClaimResize, StorageStatus};
mod roll;
pub use roll::RollStatus;
mod certificates;
pub use certificates::{CaStatus, CertificatesStatus};
mod security;
pub use security::{
    AuthorizationSpec, AuthorizationType, CaSecretRef, CertificatesSpec, ListenerAuthentication,
    ListenerSpec, PortsSpec,
};
mod user;
pub use user::{
    AclOperation, AclPatternType, AclPermission, AclResource, AclResourceType, AclRule, User,
    UserAuthentication, UserAuthenticationType, UserAuthorization, UserSpec, UserStatus,
};

/// API group of every Fjord resource.
pub const GROUP: &str = "fjord.dev";

/// Annotation that stops reconciling one resource while it is `"true"`.
pub const PAUSE_ANNOTATION: &str = "fjord.dev/pause-reconciliation";

/// Annotation on a Topic: `"false"` leaves the topic on the broker alone, also on
/// deletion.
pub const MANAGED_ANNOTATION: &str = "fjord.dev/managed";

/// Annotation on a FjordCluster: `"true"` asks for a rebalance now. The operator
/// removes it when the run it started has finished.
pub const REBALANCE_ANNOTATION: &str = "fjord.dev/rebalance";

/// Annotation on a FjordCluster: `"true"` renews the cluster CA now (the operator's own
/// CA; a user-supplied one is never replaced). The operator removes it once done.
pub const RENEW_CA_ANNOTATION: &str = "fjord.dev/renew-ca";

/// Annotation on a FjordCluster: `"true"` renews the clients CA now, as
/// [`RENEW_CA_ANNOTATION`] does the cluster CA.
pub const RENEW_CLIENTS_CA_ANNOTATION: &str = "fjord.dev/renew-clients-ca";

/// Default broker image when `spec.image` is not set.
pub const DEFAULT_IMAGE: &str = "fjord:0.1.0";

/// A Fjord broker cluster: a StatefulSet of brokers on persistent volumes with a
/// headless Service (one DNS name per broker) and a bootstrap Service for clients.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "fjord.dev",
    version = "v1alpha1",
    kind = "FjordCluster",
    namespaced,
    status = "FjordClusterStatus",
    shortname = "fjc",
    category = "fjord",
    doc = "A Fjord broker cluster: brokers as a StatefulSet on persistent volumes, a headless Service for broker-to-broker traffic and a bootstrap Service for clients.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Brokers wanted"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Brokers ready"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the cluster is or is not ready"
    ),
    printcolumn(
        name = "Bootstrap",
        type_ = "string",
        json_path = ".status.bootstrap",
        priority = 1,
        description = "Address clients connect to"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FjordClusterSpec {
    /// Number of brokers. Pod N runs broker N. Scaling in first moves the replicas of the
    /// brokers to be removed to the remaining ones, then removes them; a scale-in that
    /// would remove a metadata quorum voter (brokers 0-2) or leave fewer brokers than a
    /// partition's replicas is refused (condition ScaleDownBlocked).
    #[x_kube(validation = Rule::new("self >= 1").message("replicas must be at least 1"))]
    pub replicas: i32,
    /// Broker container image (contains the `fjord` binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy of the broker container (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// CPU and memory requests and limits of the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent storage of each broker.
    pub storage: StorageSpec,
    /// Broker configuration by Kafka name (for example `log.retention.ms`,
    /// `auto.create.topics.enable`). Written to the cluster's ConfigMap as
    /// `broker.properties`; a change rolls the brokers one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Kafka protocol listeners for clients; one `plain` listener on 9092 (no TLS, no
    /// authentication) when none is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("listener names must be unique"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.port == a.port))").message("listener ports must be unique"),
        validation = Rule::new("self.all(l, !(l.name in ['internal', 'operator', 'http']))").message("internal, operator and http are the names of the brokers' own ports")
    )]
    pub listeners: Vec<ListenerSpec>,
    /// Ports of the brokers' own planes: internal (between brokers), operator and HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortsSpec>,
    /// Kafka ACLs; none (everyone may do everything) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,
    /// The cluster and clients CAs and the lifetime of the certificates they sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesSpec>,
    /// Rack awareness: brokers spread over the values of a node label and report it as
    /// their rack, so replicas of a partition land in different racks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,
    /// Additions to the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,
    /// Moving partitions so that every broker holds an even share of replicas and
    /// preferred leaders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,
}

impl FjordClusterSpec {
    /// The client listeners: those of the spec, or the default `plain` one.
    pub fn client_listeners(&self) -> Vec<ListenerSpec> {
        if self.listeners.is_empty() {
            vec![ListenerSpec::default_plain()]
        } else {
            self.listeners.clone()
        }
    }

    /// The ports of the brokers' own planes, defaults filled in.
    pub fn ports(&self) -> PortsSpec {
        self.ports.clone().unwrap_or_default()
    }

    /// The certificate settings, defaults filled in.
    pub fn certificates(&self) -> CertificatesSpec {
        self.certificates.clone().unwrap_or_default()
    }

    /// Whether a scale-out is followed by a rebalance (`spec.rebalance.auto`, default
    /// true).
    pub fn auto_rebalance(&self) -> bool {
        self.rebalance.as_ref().is_none_or(|r| r.auto)
    }

    /// The replication throttle of rebalance moves in bytes per second
    /// (`spec.rebalance.throttleBytesPerSecond`, default 50 MiB/s); 0 is none.
    pub fn rebalance_throttle(&self) -> u64 {
        self.rebalance
            .as_ref()
            .map_or(DEFAULT_THROTTLE_BYTES_PER_SECOND, |r| {
                r.throttle_bytes_per_second
            })
    }
}

/// The default replication throttle of rebalance moves: 50 MiB/s.
pub const DEFAULT_THROTTLE_BYTES_PER_SECOND: u64 = 50 * 1024 * 1024;

fn default_throttle() -> u64 {
    DEFAULT_THROTTLE_BYTES_PER_SECOND
}

/// Rebalancing: replicas and preferred leaders spread evenly over the brokers, moved by
/// partition reassignment in batches. A run can also be asked for at any time with the
/// annotation `fjord.dev/rebalance: "true"`.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Rebalance once all brokers of a scale-out are registered and ready.
    #[serde(default = "default_true")]
    pub auto: bool,
    /// Replication throttle of the moves, bytes per second per broker and direction
    /// (Kafka's `leader/follower.replication.throttled.rate`, applied only to the
    /// moving replicas while their batch runs), so clients keep their bandwidth. 0
    /// moves at full speed.
    #[serde(default = "default_throttle")]
    pub throttle_bytes_per_second: u64,
}

fn default_true() -> bool {
    true
}

/// Persistent storage of each broker: one PersistentVolumeClaim per pod.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's claim, as a Kubernetes quantity (for example `10Gi`). May
    /// grow, never shrink: growing expands every claim in place (the StorageClass must
    /// allow volume expansion), progress in `status.storage`.
    #[x_kube(
        validation = Rule::new("isQuantity(self)").message("storage size must be a quantity such as 10Gi"),
        validation = Rule::new("!isQuantity(oldSelf) || !isQuantity(self) || !quantity(self).isLessThan(quantity(oldSelf))").message("storage size may grow but never shrink")
    )]
    pub size: String,
    /// StorageClass of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the claims of removed brokers when the cluster scales in.
    #[serde(default)]
    pub claim_policy_on_scale_down: ClaimPolicy,
    /// What happens to all claims when the FjordCluster is deleted.
    #[serde(default)]
    pub claim_policy_on_delete: ClaimPolicy,
}

/// Whether claims (and so broker data) outlive their pods.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimPolicy {
    /// Keep the claims; a broker that comes back finds its data.
    #[default]
    Retain,
    /// Delete the claims with the pods.
    Delete,
}

impl ClaimPolicy {
    /// The StatefulSet's persistentVolumeClaimRetentionPolicy value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimPolicy::Retain => "Retain",
            ClaimPolicy::Delete => "Delete",
        }
    }
}

/// Rack awareness.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Node label whose value is the broker's rack, for example
    /// `topology.kubernetes.io/zone`. Brokers spread evenly over its values; the pod
    /// label of the same name (set by the API server's pod topology labels) becomes the
    /// broker's rack.
    pub topology_key: String,
}

/// Additions to the broker pods. Labels and annotations are added to the operator's own;
/// the operator's win on conflict.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector of the broker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the broker pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// ServiceAccount the broker pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra environment variables of the broker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

/// Observed state of a FjordCluster.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FjordClusterStatus {
    /// Broker pods that exist (the StatefulSet's replicas), for the scale subresource.
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the broker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Degraded, ScaleDownBlocked, StorageResizeUnsupported, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Address clients bootstrap from (`host:port` of the bootstrap Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    /// Node id of the controller broker, as Metadata reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<i32>,
    /// Partitions with fewer in-sync replicas than replicas.
    #[serde(default)]
    pub under_replicated_partitions: i32,
    /// Partitions without a leader.
    #[serde(default)]
    pub offline_partitions: i32,
    /// Per-broker state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// The last or current rebalance. A restarted operator continues a run from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
    /// Growth of the brokers' claims after `spec.storage.size` was raised. A restarted
    /// operator continues from here and from the claims themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// The last or current rolling restart. A restarted operator continues it from
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll: Option<RollStatus>,
    /// The certificate authorities and when the operator renews something next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,
}

/// A replication throttle set for a rebalance batch.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    /// The rate set on each broker, per direction.
    pub rate_bytes_per_second: i64,
    /// Brokers the rates are set on.
    #[serde(default)]
    pub brokers: Vec<i32>,
    /// Topics whose throttled-replica lists are set.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// Progress of a rebalance.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// Idle (no run yet: the brokers seen so far), Running or Done.
    pub state: String,
    /// What started the run: ScaleOut or Requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Brokers the cluster had when the last run finished (or when first seen); more
    /// registered brokers than this is a scale-out to balance.
    #[serde(default)]
    pub brokers: i32,
    /// Partitions this run moves: those moved so far plus those the current plan
    /// still moves (the plan is recomputed from the brokers after every batch).
    #[serde(default)]
    pub partitions_to_move: i32,
    /// Partitions whose reassignment has completed in this run.
    #[serde(default)]
    pub partitions_moved: i32,
    /// The batch in progress: each partition with the replicas it moves to. Written
    /// before the reassignments are sent, so that a restarted operator counts a
    /// partition as moved only once its replicas are these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<PartitionMove>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// What the run is doing or how it ended.
    #[serde(default)]
    pub message: String,
    /// The replication throttle in force for the batch, recorded before it is set
    /// and cleared once removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleStatus>,
}

/// One partition's reassignment.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PartitionMove {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Target replicas, preferred leader first.
    #[serde(default)]
    pub replicas: Vec<i32>,
}

/// One broker as the operator sees it.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Broker node id (the pod ordinal).
    pub id: i32,
    /// Active (registered), Offline (expected but not registered), Draining or Removed.
    pub state: String,
    /// Advertised address, when registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Partition replicas this broker holds.
    #[serde(default)]
    pub replicas: i32,
}

/// A Kafka topic on a FjordCluster in the same namespace. The resource is the source of
/// truth: partitions and configs changed by other tools are set back.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "fjord.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "ft",
    category = "fjord",
    doc = "A Kafka topic on a FjordCluster in the same namespace.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(
        name = "RF",
        type_ = "integer",
        json_path = ".spec.replicationFactor",
        description = "Replication factor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName)").message("topicName is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Name of the FjordCluster (same namespace) that holds the topic.
    pub cluster_ref: String,
    /// Topic name on the broker; metadata.name when unset. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topicName is immutable"))]
    pub topic_name: Option<String>,
    /// Number of partitions. May grow, never shrink (Kafka cannot remove partitions).
    #[x_kube(
        validation = Rule::new("self >= 1").message("partitions must be at least 1"),
        validation = Rule::new("self >= oldSelf").message("partitions may grow but never shrink")
    )]
    pub partitions: i32,
    /// Copies of each partition, on different brokers. A change moves replicas in
    /// batches (status.reassignment shows the progress); it is refused above the
    /// brokers' count and below the topic's min.insync.replicas.
    #[serde(default = "default_replication_factor")]
    #[x_kube(validation = Rule::new("self >= 1").message("replicationFactor must be at least 1"))]
    pub replication_factor: i32,
    /// Topic configs by Kafka name (for example `retention.ms`, `cleanup.policy`).
    /// Configs not named here are reset to the broker default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// What deleting this resource does to the topic on the broker.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_replication_factor() -> i32 {
    1
}

/// What deleting a Topic resource does to the topic on the broker.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete the topic and its data.
    #[default]
    Delete,
    /// Keep the topic on the broker.
    Retain,
}

impl Topic {
    /// The topic's name on the broker.
    pub fn topic_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}

/// Observed state of a Topic.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (reason Reassigning while the replication factor changes), NotSupported
    /// (PartitionDecrease, TooFewBrokers, BelowMinInsyncReplicas), ClusterNotFound,
    /// BrokerError, Paused, Unmanaged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Topic name on the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Topic id the broker assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions the topic has on the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replicas of partition 0 on the broker; while the replication factor changes,
    /// the one before the change, until every partition has the new one in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// The last or current change of the replication factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<TopicReassignmentStatus>,
}

/// A consumer group on a FjordCluster in the same namespace: its state, members and lag,
/// refreshed every `resyncSeconds`, and a one-shot offset reset. Deleting the resource
/// leaves the group alone.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "fjord.dev",
    version = "v1alpha1",
    kind = "ConsumerGroup",
    namespaced,
    status = "ConsumerGroupStatus",
    shortname = "fcg",
    category = "fjord",
    doc = "A consumer group on a FjordCluster in the same namespace: state, members and lag, and one-shot offset resets.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.memberCount"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.totalLag"),
    printcolumn(
        name = "Consumers",
        type_ = "integer",
        json_path = ".status.autoscale.desiredReplicas",
        priority = 1,
        description = "Replicas the autoscaler set the consumer workload to"
    ),
    printcolumn(
        name = "Decision",
        type_ = "string",
        json_path = ".status.autoscale.decision",
        priority = 1,
        description = "The autoscaler's last decision"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupSpec {
    /// Name of the FjordCluster (same namespace) that coordinates the group.
    pub cluster_ref: String,
    /// The group's id on the broker.
    #[x_kube(validation = Rule::new("self == oldSelf").message("groupId is immutable"))]
    pub group_id: String,
    /// Seconds between status refreshes.
    #[serde(default = "default_resync_seconds")]
    #[x_kube(validation = Rule::new("self >= 1").message("resyncSeconds must be at least 1"))]
    pub resync_seconds: i32,
    /// A one-shot offset reset, run once per token and only while the group has no
    /// members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
    /// Lag-driven scaling of the workload that runs the group's consumers, decided at
    /// every refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

fn default_resync_seconds() -> i32 {
    30
}

/// A one-shot offset reset.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(
    validation = Rule::new("self.to != 'Timestamp' || has(self.timestampMs)").message("to: Timestamp needs timestampMs"),
    validation = Rule::new("self.to != 'Offsets' || (has(self.offsets) && size(self.offsets) > 0)").message("to: Offsets needs offsets")
)]
#[serde(rename_all = "camelCase")]
pub struct OffsetReset {
    /// Identifies this request; a reset runs once per token. Change it to run again.
    #[x_kube(validation = Rule::new("size(self) > 0").message("token must not be empty"))]
    pub token: String,
    /// Where to move the committed offsets.
    pub to: ResetTarget,
    /// Topics whose offsets move; all topics the group has offsets for when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// With `to: Timestamp`: the first offset at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// With `to: Offsets`: the offsets to commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<PartitionOffset>,
}

/// Target of an offset reset.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The log start offset of each partition.
    Earliest,
    /// The log end offset of each partition.
    Latest,
    /// The first offset at or after `timestampMs`.
    Timestamp,
    /// Explicit offsets from `offsets`.
    Offsets,
}

/// An offset of one partition.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Observed state of a ConsumerGroup.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (reason Observed; ClusterNotFound; the Kafka error's name, such as
    /// CoordinatorNotAvailable; BrokerUnreachable), ResetBlocked (GroupNotEmpty,
    /// UnknownTopic: the reset waits and is tried again at the next refresh), Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Group state as the coordinator reports it: Empty, PreparingRebalance,
    /// CompletingRebalance, Stable, Dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Number of members.
    #[serde(default)]
    pub member_count: i32,
    /// Members and their assignments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<GroupMember>,
    /// Committed offset, log end offset and lag per partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionLag>,
    /// Sum of the lag over all partitions.
    #[serde(default)]
    pub total_lag: i64,
    /// Token of the last offset reset carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reset_token: Option<String>,
    /// When the status was last refreshed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// The autoscaler's last decision, when `spec.autoscale` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleStatus>,
}

/// One member of a consumer group.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub host: String,
    /// Assigned partitions as `topic:partition`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<String>,
}

/// Offsets and lag of one partition.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The group's committed offset.
    pub committed_offset: i64,
    /// The partition's log end offset.
    pub log_end_offset: i64,
    /// log end offset minus committed offset.
    pub lag: i64,
}
