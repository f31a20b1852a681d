//! The ConsumerGroup's autoscaling spec and status (`spec.autoscale`,
//! `status.autoscale`); the decision itself is in [`crate::autoscale`].

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most consumer replicas an autoscaler may ask for; it bounds the recommendation
/// history kept in status as well.
pub const AUTOSCALE_MAX_REPLICAS: i32 = 1000;

/// Lag-driven scaling, as KEDA's Kafka scaler decides: one consumer per `lagThreshold`
/// records of lag, within `[minReplicas, maxReplicas]` and never more consumers than the
/// group's topics have partitions (a consumer beyond that idles); then, if lag keeps
/// growing with every partition taken, more partitions.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(
    validation = Rule::new("self.maxReplicas >= self.minReplicas").message("maxReplicas must be at least minReplicas")
)]
#[serde(rename_all = "camelCase")]
pub struct Autoscale {
    /// The consumer workload: any resource with a scale subresource (Deployment,
    /// StatefulSet, ...) in the group's namespace.
    pub scale_target_ref: ScaleTargetRef,
    /// Fewest replicas; 0 lets an idle group's workload scale to zero.
    #[serde(default = "default_min_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("minReplicas must not be negative"))]
    pub min_replicas: i32,
    /// Most replicas (at most 1000).
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("maxReplicas must be between 1 and 1000"))]
    pub max_replicas: i32,
    /// Target lag per consumer, in records (KEDA's `lagThreshold`): the workload gets
    /// ceil(total lag / lagThreshold) replicas.
    #[x_kube(validation = Rule::new("self >= 1").message("lagThreshold must be at least 1"))]
    pub lag_threshold: i64,
    /// Seconds the recommendation must have stayed below the current replicas before
    /// scaling in (the highest recommendation of the window wins), so a short dip in
    /// lag does not stop consumers that are needed again a moment later.
    #[serde(default = "default_scale_in_window_seconds")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3600").message("scaleInStabilizationWindowSeconds must be between 0 and 3600"))]
    pub scale_in_stabilization_window_seconds: i32,
    /// Seconds the recommendation must have stayed above the current replicas before
    /// scaling out (the lowest recommendation of the window wins); 0 scales out at once.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3600").message("scaleOutStabilizationWindowSeconds must be between 0 and 3600"))]
    pub scale_out_stabilization_window_seconds: i32,
    /// Growing the partitions of the group's topic when the workload has one consumer
    /// per partition and lag still grows. Only topics with a managed Topic resource on
    /// the same cluster grow, through that resource's `spec.partitions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_growth: Option<PartitionGrowth>,
}

fn default_min_replicas() -> i32 {
    1
}

fn default_scale_in_window_seconds() -> i32 {
    300
}

/// The workload an autoscaler scales, through its scale subresource.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API version of the workload, for example `apps/v1`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("apiVersion must not be empty"))]
    pub api_version: String,
    /// Kind of the workload, for example `Deployment`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("kind must not be empty"))]
    pub kind: String,
    /// Name of the workload, in the group's namespace.
    #[x_kube(validation = Rule::new("size(self) > 0").message("name must not be empty"))]
    pub name: String,
}

/// Partition growth of an autoscaled group's topic.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionGrowth {
    /// Whether partitions grow; false keeps the workload at one consumer per partition.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Most partitions a topic is grown to (partitions are never removed).
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000").message("maxPartitions must be between 1 and 10000"))]
    pub max_partitions: i32,
}

fn default_true() -> bool {
    true
}

/// The autoscaler's last decision and what later decisions need (kept in status so that
/// a restarted operator continues the stabilisation windows).
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoscaleStatus {
    /// Replicas of the workload when the decision was made.
    #[serde(default)]
    pub current_replicas: i32,
    /// Replicas the lag alone asks for (before the stabilisation windows).
    #[serde(default)]
    pub recommended_replicas: i32,
    /// Replicas the workload is set to.
    #[serde(default)]
    pub desired_replicas: i32,
    /// Partitions of the group's topics: the most consumers that get work.
    #[serde(default)]
    pub partitions: i32,
    /// ScaleOut, ScaleIn, GrowPartitions, Hold, or Blocked (the workload or its scale
    /// could not be read or written).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub decision: String,
    /// Why, with the figures behind it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the decision was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_time: Option<String>,
    /// When the workload was last scaled or a topic last grown (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// The group's total lag at the previous decision, to tell growing lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_total_lag: Option<i64>,
    /// Recent recommendations that may still decide a stabilisation window (a
    /// recommendation followed by a higher one can no longer be a window's highest, nor
    /// one followed by a lower one its lowest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<Recommendation>,
}

/// One recommendation of the autoscaler.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When it was made (ms since the epoch).
    pub time_ms: i64,
    /// Replicas recommended.
    pub replicas: i32,
}
