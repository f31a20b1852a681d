//! The FjordCluster's storage growth status (`status.storage`); the steps themselves are
//! decided in [`crate::storage`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Progress of growing the brokers' claims to `spec.storage.size`.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The size the claims grow to (`spec.storage.size` when this status was written).
    pub size: String,
    /// Resizing (claims asked to grow, or the StatefulSet being re-created so that its
    /// claim template carries the new size), Done, or Unsupported (the StorageClass does
    /// not allow volume expansion: nothing is changed).
    pub state: String,
    /// Claims whose capacity has reached `size` (the run is Done once every other claim
    /// is PendingMount).
    #[serde(default)]
    pub claims_resized: i32,
    /// Claims of the cluster's brokers (also those kept from brokers removed by a
    /// scale-in, so that a broker coming back finds a claim of the new size).
    #[serde(default)]
    pub claims_total: i32,
    /// Each claim's progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimResize>,
    /// Broker pods (existing, of the brokers the cluster keeps) that must restart
    /// before their claim's file system grows (the volume reported
    /// FileSystemResizePending): the rolling restart restarts them (`status.roll`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_to_restart: Vec<String>,
    /// Replicas of the StatefulSet deleted (with its pods orphaned) to be re-created
    /// with the new claim size. Written before the deletion, so that a restarted
    /// operator re-creates it with as many pods; cleared once it exists again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate_replicas: Option<i32>,
    /// What is being done or waited for, or why nothing can be done.
    #[serde(default)]
    pub message: String,
}

/// One claim's resize.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResize {
    /// PersistentVolumeClaim name (`data-<pod>`).
    pub name: String,
    /// The claim's `status.capacity.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Pending (request not raised yet), Resizing (the volume is growing),
    /// FileSystemResizePending (the pod must restart to finish), PendingMount (the
    /// same, for the claim of a broker removed by a scale-in: it finishes when a broker
    /// mounts it again, and does not hold the run), Infeasible (the storage driver
    /// refused the size), Resized.
    pub state: String,
}
