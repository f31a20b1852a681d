//! Tests of the User's desired ACLs, their difference with the brokers', and the
//! Secret's contents.

use std::collections::BTreeMap;

use super::*;
use crate::types::{AclResource, UserAuthentication, UserAuthorization, UserSpec};

fn rule(type_: AclResourceType, name: Option<&str>, ops: &[AclOperation]) -> AclRule {
    AclRule {
        resource: AclResource {
            type_,
            name: name.map(str::to_string),
            pattern_type: AclPatternType::Literal,
        },
        operations: ops.to_vec(),
        host: "*".into(),
        type_: AclPermission::Allow,
    }
}

fn binding(rt: WireResource, name: &str, op: WireOperation, principal: &str) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: WirePattern::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: WirePermission::Allow,
    }
}

#[test]
fn rules_expand_to_one_binding_per_operation() {
    let mut prefixed = rule(AclResourceType::Topic, Some("logs-"), &[AclOperation::Read]);
    prefixed.resource.pattern_type = AclPatternType::Prefixed;
    prefixed.type_ = AclPermission::Deny;
    prefixed.host = "10.0.0.1".into();
    let rules = vec![
        rule(
            AclResourceType::Topic,
            Some("orders"),
            &[
                AclOperation::Write,
                AclOperation::Read,
                AclOperation::Describe,
            ],
        ),
        // The same operation twice is one binding.
        rule(
            AclResourceType::Topic,
            Some("orders"),
            &[AclOperation::Read],
        ),
        rule(AclResourceType::Group, Some("*"), &[AclOperation::Read]),
        rule(
            AclResourceType::Cluster,
            None,
            &[AclOperation::IdempotentWrite],
        ),
        prefixed,
    ];
    let acls = desired_acls("User:alice", &rules).unwrap();
    assert_eq!(acls.len(), 6);
    assert!(acls.contains(&binding(
        WireResource::Topic,
        "orders",
        WireOperation::Write,
        "User:alice"
    )));
    assert!(acls.contains(&binding(
        WireResource::Group,
        "*",
        WireOperation::Read,
        "User:alice"
    )));
    assert!(acls.contains(&binding(
        WireResource::Cluster,
        "kafka-cluster",
        WireOperation::IdempotentWrite,
        "User:alice"
    )));
    let deny = acls
        .iter()
        .find(|b| b.pattern_type == WirePattern::Prefixed)
        .unwrap();
    assert_eq!(
        (
            deny.resource_name.as_str(),
            deny.host.as_str(),
            deny.permission
        ),
        ("logs-", "10.0.0.1", WirePermission::Deny)
    );
    assert!(acls.iter().all(|b| b.principal == "User:alice"));
}

#[test]
fn rules_the_brokers_would_refuse_are_invalid() {
    let no_name = rule(AclResourceType::Topic, None, &[AclOperation::Read]);
    assert!(desired_acls("User:a", &[no_name])
        .unwrap_err()
        .0
        .contains("acls[0]"));
    let empty = rule(AclResourceType::Group, Some(""), &[AclOperation::Read]);
    assert!(desired_acls("User:a", &[empty]).is_err());
    let cluster = rule(
        AclResourceType::Cluster,
        Some("other"),
        &[AclOperation::Alter],
    );
    assert!(desired_acls("User:a", &[cluster]).is_err());
    let long = "t".repeat(300);
    let long = rule(AclResourceType::Topic, Some(&long), &[AclOperation::Read]);
    assert!(desired_acls("User:a", &[long]).is_err());
    let no_ops = rule(AclResourceType::Topic, Some("t"), &[]);
    assert!(desired_acls("User:a", &[no_ops]).is_err());
}

#[test]
fn diff_creates_missing_and_deletes_extra_of_the_principal_only() {
    let desired: BTreeSet<AclBinding> = [
        binding(
            WireResource::Topic,
            "orders",
            WireOperation::Write,
            "User:alice",
        ),
        binding(
            WireResource::Topic,
            "orders",
            WireOperation::Read,
            "User:alice",
        ),
    ]
    .into();
    let actual = vec![
        binding(
            WireResource::Topic,
            "orders",
            WireOperation::Read,
            "User:alice",
        ),
        // Added behind the operator's back: removed.
        binding(
            WireResource::Topic,
            "orders",
            WireOperation::Delete,
            "User:alice",
        ),
        // Another principal's: never touched, even if DescribeAcls returned it.
        binding(
            WireResource::Topic,
            "orders",
            WireOperation::Delete,
            "User:bob",
        ),
    ];
    let diff = acl_diff("User:alice", &desired, &actual);
    assert_eq!(
        diff.create,
        vec![binding(
            WireResource::Topic,
            "orders",
            WireOperation::Write,
            "User:alice"
        )]
    );
    assert_eq!(
        diff.delete,
        vec![binding(
            WireResource::Topic,
            "orders",
            WireOperation::Delete,
            "User:alice"
        )]
    );
    // In sync: nothing to do.
    let all: Vec<AclBinding> = desired.iter().cloned().collect();
    assert!(acl_diff("User:alice", &desired, &all).is_empty());
    // An empty spec removes everything of the principal.
    assert_eq!(
        acl_diff("User:alice", &BTreeSet::new(), &all).delete.len(),
        2
    );
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBcA==\n-----END CERTIFICATE-----\n";

/// Parses a Java properties file as Kafka's clients read it (enough for what the
/// operator writes: one `key=value` per line, `\n` and `\\` escapes).
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            let mut out = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some(other) => out.push(other),
                        None => {}
                    }
                } else {
                    out.push(c);
                }
            }
            (k.to_string(), out)
        })
        .collect()
}

#[test]
fn scram_secret_has_password_jaas_bootstrap_ca_and_properties() {
    let listener = ClientListener {
        bootstrap: "secure-bootstrap.ns.svc:9094".into(),
        tls: true,
    };
    let data = scram_secret_data("alice", "s3cret", Some(&listener), Some(CA));
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "bootstrap",
            "ca.crt",
            "client.properties",
            "password",
            "sasl.jaas.config"
        ]
    );
    assert_eq!(data["password"], "s3cret");
    assert_eq!(data["bootstrap"], "secure-bootstrap.ns.svc:9094");
    assert_eq!(data["ca.crt"], CA);
    assert_eq!(
        data["sasl.jaas.config"],
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cret\";"
    );
    let props = properties(&data["client.properties"]);
    assert_eq!(props["bootstrap.servers"], "secure-bootstrap.ns.svc:9094");
    assert_eq!(props["security.protocol"], "SASL_SSL");
    assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
    assert_eq!(props["sasl.jaas.config"], data["sasl.jaas.config"]);
    assert_eq!(props["ssl.truststore.type"], "PEM");
    assert_eq!(props["ssl.truststore.certificates"], CA.replace('\r', ""));

    // A plaintext SCRAM listener and no CA yet: SASL_PLAINTEXT, no trust settings.
    let plain = ClientListener {
        bootstrap: "c-bootstrap.ns.svc:9092".into(),
        tls: false,
    };
    let data = scram_secret_data("alice", "s3cret", Some(&plain), None);
    assert!(!data.contains_key("ca.crt"));
    let props = properties(&data["client.properties"]);
    assert_eq!(props["security.protocol"], "SASL_PLAINTEXT");
    assert!(!props.contains_key("ssl.truststore.certificates"));
}

#[test]
fn tls_secret_has_certificate_key_ca_and_pem_properties() {
    let chain = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let key = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
    let listener = ClientListener {
        bootstrap: "secure-bootstrap.ns.svc:9095".into(),
        tls: true,
    };
    let data = tls_secret_data(chain, key, Some(&listener), Some(CA));
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "bootstrap",
            "ca.crt",
            "client.properties",
            "user.crt",
            "user.key"
        ]
    );
    let props = properties(&data["client.properties"]);
    assert_eq!(props["security.protocol"], "SSL");
    assert_eq!(props["ssl.keystore.type"], "PEM");
    assert_eq!(props["ssl.keystore.certificate.chain"], chain);
    assert_eq!(props["ssl.keystore.key"], key);
    assert_eq!(props["ssl.truststore.certificates"], CA);
    // Every property is on its own line: a PEM's line breaks are escaped.
    assert_eq!(data["client.properties"].lines().count(), props.len());
}

#[test]
fn passwords_are_generated_long_and_reused_only_when_safe() {
    let a = generate_password();
    assert_eq!(a.len(), PASSWORD_LEN);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, generate_password());
    assert!(usable_password(&a));
    assert!(!usable_password(""));
    assert!(!usable_password("has\"quote"));
    assert!(!usable_password("back\\slash"));
    assert!(!usable_password("white space"));
    assert!(!usable_password(&"x".repeat(PASSWORD_MAX_LEN + 1)));
}

fn user(name: &str, uid: &str) -> User {
    let mut u = User::new(
        name,
        UserSpec {
            cluster_ref: "secure".into(),
            authentication: UserAuthentication {
                type_: UserAuthenticationType::ScramSha512,
            },
            authorization: Some(UserAuthorization::default()),
        },
    );
    u.metadata.namespace = Some("ns".into());
    u.metadata.uid = Some(uid.into());
    u
}

#[test]
fn secret_is_owned_by_the_user_and_read_back() {
    let u = user("alice", "uid-1");
    let s = desired_secret(
        &u,
        "secure",
        BTreeMap::from([("password".into(), "pw".into())]),
    );
    assert_eq!(s.metadata.name.as_deref(), Some("alice"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
    assert!(owned_by(&s, "uid-1"));
    assert!(!owned_by(&s, "uid-2"));
    assert_eq!(secret_text(&s, "password").as_deref(), Some("pw"));
    assert_eq!(secret_text(&s, "missing"), None);
    assert_eq!(principal("alice"), "User:alice");
}

/// A TLS User's certificate is replaced when it nears its end, when it cannot be read,
/// and when the clients CA was renewed (it was signed by the CA before).
#[test]
fn a_user_certificate_is_due_near_its_end_or_from_another_ca() {
    let day = Duration::from_secs(86_400);
    let now = k8s_openapi::jiff::Timestamp::now();
    let t = now.as_second();
    let ca = crate::pki::Ca::create("clients", 1, t, 365 * day).unwrap();
    let issued = crate::pki::issue_user_certificate(&ca, "alice", now, 90 * day).unwrap();
    let crt = issued.chain_pem.as_str();
    assert!(!certificate_due(crt, ca.certificate(), t, 30 * day));
    assert!(certificate_due(
        crt,
        ca.certificate(),
        t + 61 * 86_400,
        30 * day
    ));
    assert!(certificate_due("garbage", ca.certificate(), t, 30 * day));
    let (renewed, _) = ca.renew("clients", t, 365 * day).unwrap();
    assert!(
        certificate_due(crt, renewed.certificate(), t, 30 * day),
        "a certificate of the CA before the renewal is kept"
    );
    let reissued = crate::pki::issue_user_certificate(&renewed, "alice", now, 90 * day).unwrap();
    assert!(!certificate_due(
        &reissued.chain_pem,
        renewed.certificate(),
        t,
        30 * day
    ));
}

/// The digest recorded on a SCRAM User's Secret names the password the brokers hold:
/// another password (edited in the Secret) has another digest.
#[test]
fn the_password_digest_tells_an_edited_password() {
    let a = password_digest("first-password");
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a, password_digest("first-password"));
    assert_ne!(a, password_digest("edited-password"));
    let user = user("alice", "uid-1");
    let secret = with_password_digest(desired_secret(&user, "demo", BTreeMap::new()), Some(&a));
    assert_eq!(
        secret.annotations().get(PASSWORD_DIGEST_ANNOTATION),
        Some(&a)
    );
    let unrecorded = with_password_digest(desired_secret(&user, "demo", BTreeMap::new()), None);
    assert!(unrecorded.annotations().is_empty());
}
