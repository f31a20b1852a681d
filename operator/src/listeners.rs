//! The brokers' Kafka listeners of a FjordCluster, as pure functions of its spec: the
//! broker flags (Kafka's `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, per-listener `ssl.client.auth`,
//! `sasl.enabled.mechanisms`, `ssl.principal.mapping.rules`, `authorizer.class.name`
//! and `super.users`) and the named ports the pods and Services publish.
//!
//! Every cluster has, besides the client listeners of `spec.listeners`, the operator's
//! own listener `OPERATOR` on `spec.ports.operator`: mutual TLS with a certificate of
//! the cluster CA, whose subject `CN=fjord:operator` maps to the principal
//! `User:fjord:operator` (a super user whenever an authorizer runs). `:` cannot appear
//! in a Kubernetes name, so no User resource can take that principal.

use crate::types::{
    AuthorizationType, FjordCluster, FjordClusterSpec, ListenerAuthentication, ListenerSpec,
};
use kube::ResourceExt;

/// The broker's name of the operator's listener.
pub const OPERATOR_LISTENER: &str = "OPERATOR";
/// The operator's principal on the brokers: its certificate's `CN=fjord:operator`
/// through [`PRINCIPAL_MAPPING_RULES`].
pub const OPERATOR_PRINCIPAL: &str = "User:fjord:operator";
/// The common name of the operator's certificate.
pub const OPERATOR_COMMON_NAME: &str = "fjord:operator";
/// A client certificate's subject `CN=alice` is the principal `User:alice`, the same as
/// a SCRAM user `alice`; any other subject stays as it is.
pub const PRINCIPAL_MAPPING_RULES: &str = "RULE:^CN=([^,]+)$/$1/,DEFAULT";
/// The one SASL mechanism a listener of `authentication: scram-sha-512` offers.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";
/// Names of the brokers' own ports, next to the client listeners' names.
pub const INTERNAL_PORT_NAME: &str = "internal";
pub const OPERATOR_PORT_NAME: &str = "operator";
pub const HTTP_PORT_NAME: &str = "http";

/// Kafka's security protocol of a client listener: TLS or not, SASL or not.
pub fn security_protocol(l: &ListenerSpec) -> &'static str {
    match (l.tls, l.authentication) {
        (false, ListenerAuthentication::ScramSha512) => "SASL_PLAINTEXT",
        (true, ListenerAuthentication::ScramSha512) => "SASL_SSL",
        (true, _) => "SSL",
        (false, _) => "PLAINTEXT",
    }
}

/// The broker's (upper-case) name of a client listener.
fn broker_name(l: &ListenerSpec) -> String {
    l.name.to_ascii_uppercase()
}

/// What the CRD's rules cannot say: a client listener on one of the brokers' own
/// ports, or two of those ports the same. The message names the ports.
pub fn validate(spec: &FjordClusterSpec) -> Result<(), String> {
    let own = spec.ports();
    let own = [
        (INTERNAL_PORT_NAME, own.internal),
        (OPERATOR_PORT_NAME, own.operator),
        (HTTP_PORT_NAME, own.http),
    ];
    for (i, (a, port)) in own.iter().enumerate() {
        if let Some((b, _)) = own[..i].iter().find(|(_, p)| p == port) {
            return Err(format!("ports.{b} and ports.{a} are both {port}"));
        }
    }
    let listeners = spec.client_listeners();
    for l in &listeners {
        if let Some((name, _)) = own.iter().find(|(_, p)| *p == l.port) {
            return Err(format!(
                "listener {:?} port {} is the brokers' {name} port (spec.ports.{name})",
                l.name, l.port
            ));
        }
        // The CRD refuses these too; a spec written before the rules existed may not.
        if l.authentication == ListenerAuthentication::Tls && !l.tls {
            return Err(format!(
                "listener {:?}: authentication tls needs tls: true",
                l.name
            ));
        }
    }
    for (i, a) in listeners.iter().enumerate() {
        if let Some(b) = listeners[..i]
            .iter()
            .find(|b| b.port == a.port || b.name == a.name)
        {
            return Err(format!(
                "listeners {:?} and {:?} share a name or port",
                b.name, a.name
            ));
        }
    }
    Ok(())
}

/// Name of the headless Service.
pub fn headless_service_name(cluster: &FjordCluster) -> String {
    format!("{}-brokers", cluster.name_any())
}

/// Name of the bootstrap Service.
pub fn bootstrap_service_name(cluster: &FjordCluster) -> String {
    format!("{}-bootstrap", cluster.name_any())
}

/// The listener flags of a broker pod. `$(POD_IP)` and `$(POD_NAME)` are expanded by
/// the kubelet; each listener is advertised at the pod's name under the headless
/// Service, which the broker certificates name.
pub fn listener_args(cluster: &FjordCluster) -> Vec<String> {
    let spec = &cluster.spec;
    let operator_port = spec.ports().operator;
    let host = format!(
        "$(POD_NAME).{}.{}.svc",
        headless_service_name(cluster),
        cluster.namespace().unwrap_or_default()
    );
    let listeners = spec.client_listeners();
    let named: Vec<(String, i32)> = listeners
        .iter()
        .map(|l| (broker_name(l), l.port))
        .chain([(OPERATOR_LISTENER.to_string(), operator_port)])
        .collect();
    let join = |host: &str| {
        named
            .iter()
            .map(|(name, port)| format!("{name}://{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let protocols = listeners
        .iter()
        .map(|l| format!("{}:{}", broker_name(l), security_protocol(l)))
        .chain([format!("{OPERATOR_LISTENER}:SSL")])
        .collect::<Vec<_>>()
        .join(",");
    // Listeners of authentication tls and the operator's refuse a client without a
    // certificate from the truststore (clients CA + cluster CA).
    let client_auth = listeners
        .iter()
        .filter(|l| l.authentication == ListenerAuthentication::Tls)
        .map(|l| format!("{}:required", broker_name(l)))
        .chain([format!("{OPERATOR_LISTENER}:required")])
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec![
        format!("--listeners={}", join("$(POD_IP)")),
        format!("--advertised-listeners={}", join(&host)),
        format!("--listener-security-protocol-map={protocols}"),
        format!("--listener-ssl-client-auth={client_auth}"),
        format!("--ssl-principal-mapping-rules={PRINCIPAL_MAPPING_RULES}"),
    ];
    if listeners
        .iter()
        .any(|l| l.authentication == ListenerAuthentication::ScramSha512)
    {
        args.push(format!("--sasl-enabled-mechanisms={SCRAM_MECHANISM}"));
    }
    args.extend(authorization_args(spec));
    args
}

/// `--authorizer` and `--super-users` when `spec.authorization` is set: the operator,
/// then the super users of the spec by user name.
pub fn authorization_args(spec: &FjordClusterSpec) -> Vec<String> {
    let Some(authz) = &spec.authorization else {
        return Vec::new();
    };
    let kind = match authz.type_ {
        // Kafka's ACL authorizer, which the broker calls `standard`.
        AuthorizationType::Simple => "standard",
    };
    let mut supers = vec![OPERATOR_PRINCIPAL.to_string()];
    for user in &authz.super_users {
        let user = user.trim();
        if user.is_empty() {
            continue;
        }
        // `User:name` as Kafka writes principals; a bare name is a user name.
        let principal = if user.contains(':') {
            user.to_string()
        } else {
            format!("User:{user}")
        };
        if !supers.contains(&principal) {
            supers.push(principal);
        }
    }
    vec![
        format!("--authorizer={kind}"),
        format!("--super-users={}", supers.join(";")),
    ]
}

/// The named ports of a broker pod: the client listeners (named as in the spec), then
/// the operator, internal and HTTP ports.
pub fn pod_ports(spec: &FjordClusterSpec) -> Vec<(String, i32)> {
    let own = spec.ports();
    client_ports(spec)
        .into_iter()
        .chain([
            (OPERATOR_PORT_NAME.to_string(), own.operator),
            (INTERNAL_PORT_NAME.to_string(), own.internal),
            (HTTP_PORT_NAME.to_string(), own.http),
        ])
        .collect()
}

/// The ports of the bootstrap Service: the client listeners and the operator's.
pub fn bootstrap_ports(spec: &FjordClusterSpec) -> Vec<(String, i32)> {
    client_ports(spec)
        .into_iter()
        .chain([(OPERATOR_PORT_NAME.to_string(), spec.ports().operator)])
        .collect()
}

fn client_ports(spec: &FjordClusterSpec) -> Vec<(String, i32)> {
    spec.client_listeners()
        .into_iter()
        .map(|l| (l.name, l.port))
        .collect()
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
