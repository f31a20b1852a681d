//! The FjordCluster's certificate status (`status.certificates`); the decisions are
//! made in [`crate::pki`], carried out in [`crate::certs`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The cluster's CAs and the next renewal.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    /// The cluster CA (signs broker and operator certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<CaStatus>,
    /// The clients CA (signs User certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca: Option<CaStatus>,
    /// When the operator renews a certificate or a CA next, or ends a CA renewal's
    /// overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<Time>,
}

/// One CA.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaStatus {
    /// Generation of a CA the operator made (1, then one more per renewal); unset for
    /// a CA the user supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// When the CA's certificate ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When the previous CA ends, while clients trusting only it are still served
    /// (after a renewal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_not_after: Option<Time>,
}
