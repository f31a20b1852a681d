//! The Topic's replication-factor change in progress (`status.reassignment`); the
//! decisions are in [`crate::topic_rf`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PartitionMove;

/// Progress of a change of a Topic's replication factor. A restarted operator
/// continues from here: the batch in flight is recorded before it is sent.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TopicReassignmentStatus {
    /// Running, Done or Refused.
    pub state: String,
    /// The replication factor this run brings every partition to.
    pub replication_factor: i32,
    /// Partitions this run changes: those done so far, those in flight and those
    /// still to start.
    #[serde(default)]
    pub partitions_to_move: i32,
    /// Partitions whose replicas are the target and all in sync.
    #[serde(default)]
    pub partitions_moved: i32,
    /// The partitions in flight, each with its target replicas. Written before the
    /// reassignments are sent, so that a restarted operator counts a partition as
    /// moved only once its replicas are these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<PartitionMove>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// What the run is doing, how it ended, or why it is refused.
    #[serde(default)]
    pub message: String,
}
