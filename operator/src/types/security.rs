//! The FjordCluster's security settings: client listeners, the ports of the brokers'
//! own planes, authorization and the certificate authorities.

// kube's derive takes repeated `validation = ...` keys, which clippy reads as duplicated
// attributes.
#![allow(clippy::duplicated_attributes)]

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka protocol listener for clients: a port on every broker, published by the
/// headless and the bootstrap Service.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.authentication != 'tls' || self.tls").message("authentication tls needs tls: true"))]
pub struct ListenerSpec {
    /// Name of the listener: lowercase letters and digits, at most 11, starting with a
    /// letter. The broker's listener is the upper-case name; the Service port and the
    /// container port carry this one.
    #[schemars(length(max = 11))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9]{0,10}$')").message("listener name must be 1-11 lowercase letters and digits, starting with a letter"))]
    pub name: String,
    /// Port on every broker (1024-65535: brokers do not run as root).
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("listener port must be within 1024-65535"))]
    pub port: i32,
    /// Whether connections are encrypted with TLS, with the broker certificates the
    /// cluster CA issues.
    #[serde(default)]
    pub tls: bool,
    /// How clients prove who they are.
    #[serde(default)]
    pub authentication: ListenerAuthentication,
}

impl ListenerSpec {
    /// The listener of a FjordCluster that names none: `plain` on 9092, no TLS, no
    /// authentication.
    pub fn default_plain() -> ListenerSpec {
        ListenerSpec {
            name: "plain".into(),
            port: 9092,
            tls: false,
            authentication: ListenerAuthentication::None,
        }
    }
}

/// Client authentication on a listener.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerAuthentication {
    /// Anyone who connects is `User:ANONYMOUS`.
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL SCRAM-SHA-512 with the credentials of a User resource (SASL_SSL with TLS,
    /// SASL_PLAINTEXT without).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A client certificate signed by the clients CA, as a User resource of
    /// authentication tls gets it; the certificate's common name is the user.
    #[serde(rename = "tls")]
    Tls,
}

/// Ports of the brokers' own planes (not for clients).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortsSpec {
    /// Port between brokers (metadata quorum and replication), always mutual TLS with
    /// certificates of the cluster CA.
    #[serde(default = "default_internal_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("port must be within 1024-65535"))]
    pub internal: i32,
    /// The operator's Kafka protocol listener: mutual TLS, the operator's certificate
    /// from the cluster CA.
    #[serde(default = "default_operator_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("port must be within 1024-65535"))]
    pub operator: i32,
    /// HTTP port: /metrics, /health, /ready.
    #[serde(default = "default_http_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("port must be within 1024-65535"))]
    pub http: i32,
}

fn default_internal_port() -> i32 {
    9093
}
fn default_operator_port() -> i32 {
    9091
}
fn default_http_port() -> i32 {
    9644
}

impl Default for PortsSpec {
    fn default() -> Self {
        PortsSpec {
            internal: default_internal_port(),
            operator: default_operator_port(),
            http: default_http_port(),
        }
    }
}

/// Who may do what: Kafka ACLs, kept by the brokers and set through User resources.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// The authorizer: `simple` is Kafka's ACL authorizer (a request no ACL allows is
    /// refused).
    #[serde(rename = "type")]
    pub type_: AuthorizationType,
    /// Users allowed everything whatever the ACLs say, by user name (the User
    /// resource's name, or a client certificate's common name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub super_users: Vec<String>,
}

/// The authorizer of a cluster.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationType {
    /// Kafka ACLs.
    #[serde(rename = "simple")]
    Simple,
}

/// The cluster's certificate authorities and how long what they sign lives. The cluster
/// CA signs the broker certificates (client listeners and the internal plane) and the
/// operator's; the clients CA signs the certificates of User resources with
/// authentication tls. Durations are Go durations such as `8760h` or `90s`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("duration(self.renewBefore) < duration(self.validity)").message("renewBefore must be shorter than validity"),
    validation = Rule::new("duration(self.caRenewBefore) < duration(self.caValidity)").message("caRenewBefore must be shorter than caValidity")
)]
pub struct CertificatesSpec {
    /// How long a broker, operator or user certificate is valid.
    #[serde(default = "default_validity")]
    pub validity: String,
    /// How long before its end a certificate is replaced; brokers pick up the new files
    /// without a restart.
    #[serde(default = "default_renew_before")]
    pub renew_before: String,
    /// How long a CA the operator made is valid.
    #[serde(default = "default_ca_validity")]
    pub ca_validity: String,
    /// How long before its end a CA is replaced. Until the old CA expires, the
    /// brokers' chains carry the new CA signed by the old one, so clients trusting
    /// either CA keep connecting; the CA Secrets hold both certificates meanwhile.
    #[serde(default = "default_ca_renew_before")]
    pub ca_renew_before: String,
    /// A cluster CA of your own instead of one the operator makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca: Option<CaSecretRef>,
    /// A clients CA of your own instead of one the operator makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_ca: Option<CaSecretRef>,
}

fn default_validity() -> String {
    "8760h".into()
}
fn default_renew_before() -> String {
    "720h".into()
}
fn default_ca_validity() -> String {
    "43800h".into()
}
fn default_ca_renew_before() -> String {
    "4380h".into()
}

impl Default for CertificatesSpec {
    fn default() -> Self {
        CertificatesSpec {
            validity: default_validity(),
            renew_before: default_renew_before(),
            ca_validity: default_ca_validity(),
            ca_renew_before: default_ca_renew_before(),
            cluster_ca: None,
            clients_ca: None,
        }
    }
}

/// A CA supplied by the user: a Secret in the cluster's namespace with `ca.crt` and
/// `ca.key` (PEM). The operator signs with it and never replaces it.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// Name of the Secret.
    pub secret_name: String,
}
