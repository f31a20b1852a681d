//! The FjordCluster's rolling-restart status (`status.roll`); the steps themselves are
//! decided in [`crate::roll`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Progress of a rolling restart: the broker pods whose revision differs from the
/// StatefulSet's update revision, and those whose volume needs a restart to finish
/// growing, are restarted one at a time by the operator. Written
/// before every action, so that a restarted operator continues from here.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollStatus {
    /// Idle (nothing to roll yet), Rolling (pods to restart) or Done.
    pub state: String,
    /// The StatefulSet update revision every broker pod is rolled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The broker being restarted, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<i32>,
    /// What happens to `broker`: MovingLeadership (before its pod is deleted),
    /// Restarting (pod deletion asked for; waiting for it to be back, Ready and caught
    /// up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The uid of `broker`'s pod deleted by this roll (written before the deletion): a
    /// pod with another uid is its replacement, so it is not restarted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_uid: Option<String>,
    /// Leader elections asked for to move leadership off `broker`.
    #[serde(default)]
    pub elections: i32,
    /// Brokers restarted in this roll, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<i32>,
    /// Why the roll waits, when it does (e.g. MinInSyncReplicas, UnderReplicated,
    /// BrokerNotReady).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the roll is doing or waits for.
    #[serde(default)]
    pub message: String,
    /// When the roll started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When `broker`'s current phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_started_at: Option<Time>,
    /// When the roll finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}
