//! The Secret of a User: its password, the client settings for Kafka's Java clients
//! (`client.properties`) and its certificate, as pure functions of what the User
//! controller ([`crate::user`]) read. Re-exported from there.

use std::collections::BTreeMap;

use fjord_client::ScramMechanism;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use rand::Rng;

use crate::desired::FIELD_MANAGER;
use crate::types::User;

/// Length of a generated password: 32 letters and digits, about 190 bits.
pub const PASSWORD_LEN: usize = 32;
/// Longest password taken from an existing Secret.
pub const PASSWORD_MAX_LEN: usize = 256;
/// Kafka's JAAS login module for SCRAM.
const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
/// Kind of the owner of a User's Secret.
const KIND: &str = "User";

/// Whether a password found in an existing Secret can be used: printable ASCII
/// without the quote and backslash that would break the JAAS line, and not too long.
pub fn usable_password(password: &str) -> bool {
    !password.is_empty()
        && password.len() <= PASSWORD_MAX_LEN
        && password
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A fresh random password of letters and digits.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..PASSWORD_LEN)
        .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
        .collect()
}

/// Kafka's `sasl.jaas.config` for a SCRAM user.
pub fn jaas_config(user_name: &str, password: &str) -> String {
    format!("{SCRAM_LOGIN_MODULE} required username=\"{user_name}\" password=\"{password}\";")
}

/// A value of a Java properties file on one line: backslashes doubled, line breaks as
/// `\n` (so a PEM bundle is one `key=value` line, which Kafka's PEM settings accept).
fn property_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The listener a user's clients connect to, as the Secret describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListener {
    /// `host:port` through the bootstrap Service.
    pub bootstrap: String,
    /// Whether the listener runs TLS.
    pub tls: bool,
}

/// Secret keys of a `scram-sha-512` user: `password`, `sasl.jaas.config`, and when the
/// cluster has them `bootstrap` (its first SCRAM listener) and `ca.crt` (the cluster
/// CA bundle); `client.properties` gathers them for Kafka's Java clients.
pub fn scram_secret_data(
    user_name: &str,
    password: &str,
    listener: Option<&ClientListener>,
    ca_bundle: Option<&str>,
) -> BTreeMap<String, String> {
    let jaas = jaas_config(user_name, password);
    let mut data = BTreeMap::new();
    let mut props = String::new();
    if let Some(l) = listener {
        data.insert("bootstrap".into(), l.bootstrap.clone());
        props.push_str(&format!("bootstrap.servers={}\n", l.bootstrap));
    }
    let tls = listener.is_some_and(|l| l.tls);
    let protocol = if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" };
    props.push_str(&format!("security.protocol={protocol}\n"));
    props.push_str(&format!(
        "sasl.mechanism={}\n",
        ScramMechanism::Sha512.name()
    ));
    props.push_str(&format!("sasl.jaas.config={}\n", property_value(&jaas)));
    if let Some(ca) = ca_bundle {
        data.insert("ca.crt".into(), ca.to_string());
        if tls {
            props.push_str("ssl.truststore.type=PEM\n");
            props.push_str(&format!(
                "ssl.truststore.certificates={}\n",
                property_value(ca)
            ));
        }
    }
    data.insert("password".into(), password.to_string());
    data.insert("sasl.jaas.config".into(), jaas);
    data.insert("client.properties".into(), props);
    data
}

/// Secret keys of a `tls` user: `user.crt` (the chain), `user.key` (PKCS#8), `ca.crt`
/// (cluster CA bundle, to verify the brokers), `bootstrap` when the cluster has a TLS
/// client-authentication listener, and `client.properties` with the PEM inline.
pub fn tls_secret_data(
    chain_pem: &str,
    key_pem: &str,
    listener: Option<&ClientListener>,
    ca_bundle: Option<&str>,
) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut props = String::new();
    if let Some(l) = listener {
        data.insert("bootstrap".into(), l.bootstrap.clone());
        props.push_str(&format!("bootstrap.servers={}\n", l.bootstrap));
    }
    props.push_str("security.protocol=SSL\n");
    props.push_str("ssl.keystore.type=PEM\n");
    props.push_str(&format!(
        "ssl.keystore.certificate.chain={}\n",
        property_value(chain_pem)
    ));
    props.push_str(&format!("ssl.keystore.key={}\n", property_value(key_pem)));
    if let Some(ca) = ca_bundle {
        data.insert("ca.crt".into(), ca.to_string());
        props.push_str("ssl.truststore.type=PEM\n");
        props.push_str(&format!(
            "ssl.truststore.certificates={}\n",
            property_value(ca)
        ));
    }
    data.insert("user.crt".into(), chain_pem.to_string());
    data.insert("user.key".into(), key_pem.to_string());
    data.insert("client.properties".into(), props);
    data
}

/// The Secret of `user` holding `data`, owned by the User (so it goes with it even if
/// the finalizer is bypassed).
/// Annotation of a SCRAM User's Secret: the SHA-256 (hex) of the password the brokers
/// were last given. A password edited in the Secret no longer matches it and is given
/// to the brokers at the next reconcile.
pub const PASSWORD_DIGEST_ANNOTATION: &str = "fjord.dev/password-sha256";

/// The value of [`PASSWORD_DIGEST_ANNOTATION`] for `password`.
pub fn password_digest(password: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `secret` recording `digest` as the password the brokers hold (none: not given yet).
pub fn with_password_digest(mut secret: Secret, digest: Option<&str>) -> Secret {
    if let Some(digest) = digest {
        secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(PASSWORD_DIGEST_ANNOTATION.to_string(), digest.to_string());
    }
    secret
}

pub fn desired_secret(user: &User, cluster_name: &str, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(user.name_any()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    FIELD_MANAGER.to_string(),
                ),
                ("fjord.dev/cluster".to_string(), cluster_name.to_string()),
                ("fjord.dev/user".to_string(), user.name_any()),
            ])),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A key of a Secret as UTF-8 text.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Whether `secret` belongs to the User with `uid` (its owner reference), so the
/// operator may write it. A Secret of the same name made by someone else is left alone.
pub fn owned_by(secret: &Secret, uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid && r.kind == KIND))
}
