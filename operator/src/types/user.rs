//! The User resource: a Kafka user of a FjordCluster, its credentials and its ACLs.

// kube's derive takes repeated `printcolumn(type_ = ...)` keys, which clippy reads as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka user of a FjordCluster in the same namespace. Its user name is
/// metadata.name; its credentials are written to a Secret of the same name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "fjord.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    shortname = "fju",
    category = "fjord",
    doc = "A Kafka user of a FjordCluster in the same namespace: credentials in a Secret named after it, and its ACLs.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type"
    ),
    printcolumn(
        name = "ACLs",
        type_ = "integer",
        json_path = ".status.acls",
        description = "ACL bindings applied on the brokers"
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
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// Name of the FjordCluster (same namespace) the user belongs to.
    pub cluster_ref: String,
    /// How the user proves who it is.
    pub authentication: UserAuthentication,
    /// What the user may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
}

/// A user's credentials.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `scram-sha-512`: the operator generates a password, sets the SCRAM credential on
    /// the brokers and writes `password`, `sasl.jaas.config` and `bootstrap` to the
    /// Secret. `tls`: the operator writes a client certificate (`user.crt`), its key
    /// (`user.key`) and the cluster CA (`ca.crt`) to the Secret, signed by the clients
    /// CA with the user name as common name.
    #[serde(rename = "type")]
    pub type_: UserAuthenticationType,
}

/// Kinds of user credentials.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAuthenticationType {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
}

/// The user's ACLs. They are the whole truth: ACLs of this user's principal that are
/// not listed here are removed, and listed ones removed behind the operator's back
/// come back at the next resync.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    /// ACL rules of the user's principal (`User:<name>`).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub acls: Vec<AclRule>,
}

/// One ACL rule: operations on a resource, allowed or denied, from a host.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// What the rule is about.
    pub resource: AclResource,
    /// The operations the rule allows or denies.
    #[schemars(length(max = 11))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("an ACL rule needs at least one operation"))]
    pub operations: Vec<AclOperation>,
    /// The client host the rule applies to; `*` for any.
    #[serde(default = "any_host")]
    pub host: String,
    /// Whether the rule allows or denies.
    #[serde(default, rename = "type")]
    pub type_: AclPermission,
}

fn any_host() -> String {
    "*".into()
}

/// The resource of an ACL rule.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'cluster' || !has(self.name) || self.name == 'kafka-cluster'").message("a cluster resource is named kafka-cluster"))]
pub struct AclResource {
    /// Kind of resource.
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// Name of the resource, or its prefix with patternType prefixed; `*` is every
    /// resource of the type. Not needed for the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How `name` matches.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// Kafka's ACL resource types.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

/// How an ACL's resource name matches.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// The name exactly (or `*`).
    #[default]
    Literal,
    /// Every name starting with it.
    Prefixed,
}

/// Kafka's ACL operations.
#[derive(
    JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// Allow or deny.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AclPermission {
    #[default]
    Allow,
    Deny,
}

/// Observed state of a User.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, with reasons such as ClusterNotFound, BrokerError, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The user's principal on the brokers (`User:<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// ACL bindings of the principal applied on the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<i32>,
}
