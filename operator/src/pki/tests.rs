//! The planner's rules, event by event, with chains verified as rustls (webpki)
//! verifies them on brokers and clients.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;

use super::*;
use crate::types::{CaSecretRef, CertificatesSpec};

const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

fn spec() -> CertificatesSpec {
    CertificatesSpec::default()
}

struct World {
    secrets: BTreeMap<String, SecretData>,
    spec: CertificatesSpec,
    brokers: i32,
    renew_cluster_ca: bool,
}

impl World {
    fn new() -> World {
        World {
            secrets: BTreeMap::new(),
            spec: spec(),
            brokers: 3,
            renew_cluster_ca: false,
        }
    }

    fn plan(&self, now: i64) -> Result<Plan> {
        plan(&Observed {
            cluster: "demo",
            namespace: "ns",
            now,
            spec: &self.spec,
            renew_cluster_ca: self.renew_cluster_ca,
            renew_clients_ca: false,
            brokers: self.brokers,
            secrets: &self.secrets,
        })
    }

    /// Plans at `now` and writes what the plan says, as the runtime does.
    fn step(&mut self, now: i64) -> Plan {
        let p = self.plan(now).unwrap();
        for w in &p.writes {
            self.secrets.insert(
                w.name.clone(),
                SecretData {
                    data: w
                        .data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect(),
                    annotations: w.annotations.clone(),
                },
            );
        }
        p
    }

    fn get(&self, secret: &str, key: &str) -> String {
        String::from_utf8(self.secrets[secret].data[key].clone()).unwrap()
    }
}

fn written(p: &Plan) -> Vec<&str> {
    p.writes.iter().map(|w| w.name.as_str()).collect()
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    parse_certificates(pem.as_bytes())
        .unwrap()
        .into_iter()
        .map(|c| CertificateDer::from(c.der))
        .collect()
}

fn roots(pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in ders(pem) {
        roots.add(c).unwrap();
    }
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies `chain` as a client verifies a server called `name`, trusting `trust`.
fn verify_server(chain: &str, trust: &str, name: &str, now: i64) -> Result<(), rustls::Error> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(trust), provider())
            .build()
            .unwrap();
    let chain = ders(chain);
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::since_unix_epoch(Duration::from_secs(now as u64)),
        )
        .map(|_| ())
}

/// Verifies `chain` as a TLS server requiring client certificates, trusting `trust`.
fn verify_client(chain: &str, trust: &str, now: i64) -> Result<(), rustls::Error> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(trust), provider())
            .build()
            .unwrap();
    let chain = ders(chain);
    verifier
        .verify_client_cert(
            &chain[0],
            &chain[1..],
            UnixTime::since_unix_epoch(Duration::from_secs(now as u64)),
        )
        .map(|_| ())
}

fn leaf(pem: &str) -> CertInfo {
    parse_certificates(pem.as_bytes()).unwrap().remove(0)
}

#[test]
fn first_plan_makes_both_cas_and_every_certificate() {
    let mut w = World::new();
    let p = w.step(T0);
    assert_eq!(
        written(&p),
        [
            "demo-cluster-ca",
            "demo-cluster-ca-cert",
            "demo-clients-ca",
            "demo-clients-ca-cert",
            "demo-broker-certs",
            "demo-operator-cert"
        ]
    );
    let kinds: Vec<_> = p.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::CaCreated,
            EventKind::CaCreated,
            EventKind::CertificatesIssued
        ]
    );
    let ca = leaf(&w.get("demo-cluster-ca", CA_CERT_KEY));
    assert_eq!(ca.common_name.as_deref(), Some("fjord-cluster-ca demo 1"));
    assert!(ca.is_ca);
    assert_eq!(
        w.secrets["demo-cluster-ca"].annotations[CA_GENERATION_ANNOTATION],
        "1"
    );
    let clients = leaf(&w.get("demo-clients-ca", CA_CERT_KEY));
    assert_eq!(clients.common_name.as_deref(), Some("fjord-clients-ca demo 1"));
    assert_eq!(p.cluster_ca.generation, Some(1));

    let bundle = w.get("demo-cluster-ca-cert", CA_CERT_KEY);
    assert_eq!(ders(&bundle).len(), 1);
    let certs = &w.secrets["demo-broker-certs"].data;
    let mut keys: Vec<_> = certs.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "demo-0.crt",
            "demo-0.key",
            "demo-1.crt",
            "demo-1.key",
            "demo-2.crt",
            "demo-2.key",
            "truststore.crt"
        ]
    );
    let b1 = w.get("demo-broker-certs", "demo-1.crt");
    let l1 = leaf(&b1);
    assert_eq!(
        l1.uris.iter().collect::<Vec<_>>(),
        ["fjord://node/1"],
        "one node identity"
    );
    let dns: Vec<_> = l1.dns_names.iter().map(String::as_str).collect();
    for name in [
        "demo-1.demo-brokers.ns.svc",
        "demo-1.demo-brokers.ns.svc.cluster.local",
        "demo-bootstrap",
        "demo-bootstrap.ns",
        "demo-bootstrap.ns.svc",
        "demo-bootstrap.ns.svc.cluster.local",
        "demo-brokers.ns.svc",
    ] {
        assert!(dns.contains(&name), "{name} in {dns:?}");
    }
    assert_eq!(dns.len(), 7);
    assert!(l1.key_matches(&w.get("demo-broker-certs", "demo-1.key")));
    assert!(w
        .get("demo-broker-certs", "demo-1.key")
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // A client trusting the cluster CA reaches broker 1 by its pod name and the
    // bootstrap name; another broker accepts it as a client (the internal plane).
    verify_server(&b1, &bundle, "demo-1.demo-brokers.ns.svc", T0).unwrap();
    verify_server(&b1, &bundle, "demo-bootstrap.ns.svc", T0).unwrap();
    assert!(verify_server(&b1, &bundle, "demo-0.demo-brokers.ns.svc", T0).is_err());
    verify_client(&b1, &bundle, T0).unwrap();
    // The truststore holds both CAs: user certificates and the operator's verify.
    let truststore = w.get("demo-broker-certs", TRUSTSTORE_KEY);
    assert_eq!(ders(&truststore).len(), 2);
    let op = w.get("demo-operator-cert", TLS_CERT_KEY);
    assert_eq!(leaf(&op).common_name.as_deref(), Some(OPERATOR_COMMON_NAME));
    verify_client(&op, &truststore, T0).unwrap();
    assert_eq!(w.get("demo-operator-cert", CA_CERT_KEY), bundle);
    // The operator's certificate is not a server certificate; a broker's is not
    // signed by the clients CA.
    assert!(verify_server(&op, &bundle, "demo-bootstrap", T0).is_err());
    assert!(verify_client(&b1, &w.get("demo-clients-ca-cert", CA_CERT_KEY), T0).is_err());
}

#[test]
fn a_second_plan_writes_nothing_until_a_leaf_is_due() {
    let mut w = World::new();
    w.step(T0);
    let p = w.step(T0 + 10);
    assert!(p.writes.is_empty(), "{:?}", p.writes);
    assert!(p.events.is_empty());
    // Leaves renew renewBefore (720h) ahead of their end (8760h after issue).
    let due = T0 + 8760 * HOUR - 720 * HOUR;
    assert_eq!(p.next_renewal, due);
    assert!(w.step(due - 1).writes.is_empty());
    let old = w.get("demo-broker-certs", "demo-0.crt");
    let p = w.step(due);
    assert_eq!(written(&p), ["demo-broker-certs", "demo-operator-cert"]);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].kind, EventKind::CertificatesRenewed);
    assert!(p.events[0].message.contains("broker demo-0 (due)"), "{}", p.events[0].message);
    let new = leaf(&w.get("demo-broker-certs", "demo-0.crt"));
    assert!(new.not_after > leaf(&old).not_after);
    assert_eq!(new.not_after, due + 8760 * HOUR);
    assert_eq!(p.next_renewal, due + (8760 - 720) * HOUR);
    assert_eq!(p.cluster_ca.generation, Some(1), "the CA stays");
}

#[test]
fn a_shorter_validity_reissues_the_leaves_and_renews_them_on_its_schedule() {
    let mut w = World::new();
    w.step(T0);
    w.spec.validity = "60s".into();
    w.spec.renew_before = "40s".into();
    let p = w.step(T0 + 5);
    assert_eq!(written(&p), ["demo-broker-certs", "demo-operator-cert"]);
    assert!(p.events[0].message.contains("validity changed"));
    let l = leaf(&w.get("demo-broker-certs", "demo-2.crt"));
    assert_eq!(l.not_after, T0 + 5 + 60);
    assert_eq!(p.next_renewal, T0 + 5 + 20);
    assert!(w.step(T0 + 24).writes.is_empty());
    let p = w.step(T0 + 25);
    assert_eq!(written(&p), ["demo-broker-certs", "demo-operator-cert"]);
    // Back to the default: issued again with the long validity.
    w.spec = spec();
    let p = w.step(T0 + 30);
    assert_eq!(written(&p), ["demo-broker-certs", "demo-operator-cert"]);
    assert_eq!(
        leaf(&w.get("demo-broker-certs", "demo-2.crt")).not_after,
        T0 + 30 + 8760 * HOUR
    );
}

/// The renewal overlap: old-only and new-only clients both verify every broker, and
/// brokers on old and new certificates verify each other.
fn assert_both_trusted(w: &World, old_ca: &str, new_ca: &str, old_b0: &str, now: i64) {
    let bundle = w.get("demo-cluster-ca-cert", CA_CERT_KEY);
    assert_eq!(ders(&bundle).len(), 2, "the bundle holds both CAs");
    for n in 0..3 {
        let chain = w.get("demo-broker-certs", &format!("demo-{n}.crt"));
        assert_eq!(ders(&chain).len(), 2, "leaf and cross-signed CA");
        let host = format!("demo-{n}.demo-brokers.ns.svc");
        verify_server(&chain, old_ca, &host, now).expect("client trusting only the old CA");
        verify_server(&chain, new_ca, &host, now).expect("client trusting only the new CA");
        verify_server(&chain, &bundle, &host, now).expect("client trusting the bundle");
        verify_client(&chain, &bundle, now).expect("a broker accepts its peer");
        verify_client(&chain, old_ca, now).expect("a broker still on the old CA file");
    }
    // A broker whose files are not rotated yet is still accepted by the others.
    verify_client(old_b0, &bundle, now).unwrap();
    let op = w.get("demo-operator-cert", TLS_CERT_KEY);
    verify_client(&op, old_ca, now).unwrap();
    verify_client(&op, new_ca, now).unwrap();
}

#[test]
fn a_due_ca_is_renewed_with_a_cross_signed_overlap_until_the_old_one_ends() {
    let mut w = World::new();
    w.step(T0);
    let old_ca = w.get("demo-cluster-ca", CA_CERT_KEY);
    let old_b0 = w.get("demo-broker-certs", "demo-0.crt");
    let ca_end = leaf(&old_ca).not_after;
    let due = ca_end - 4380 * HOUR;
    let p = w.step(due - 1);
    assert!(
        !written(&p).contains(&"demo-cluster-ca"),
        "not yet: {:?}",
        written(&p)
    );
    let p = w.step(due);
    let kinds: Vec<_> = p.events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::CaRenewed), "{kinds:?}");
    assert_eq!(p.cluster_ca.generation, Some(2));
    assert_eq!(p.cluster_ca.previous_not_after, Some(ca_end));
    assert_eq!(p.clients_ca.generation, Some(2), "made with the cluster CA, due with it");
    let new_ca = w.get("demo-cluster-ca", CA_CERT_KEY);
    assert_eq!(
        leaf(&new_ca).common_name.as_deref(),
        Some("fjord-cluster-ca demo 2")
    );
    assert_eq!(w.secrets["demo-cluster-ca"].annotations[CA_GENERATION_ANNOTATION], "2");
    assert!(p.events.iter().any(|e| e.kind == EventKind::CertificatesRenewed
        && e.message.contains("signed by another CA")));
    assert_both_trusted(&w, &old_ca, &new_ca, &old_b0, due + 1);
    // The next thing due is the end of the overlap.
    assert_eq!(p.next_renewal, ca_end);

    // Nothing changes during the overlap.
    assert!(w.step(due + 100).writes.is_empty());

    // Once the old CA ends, it leaves the bundles and the chains drop the cross-signed
    // certificate; the leaves themselves stay.
    let b0_key = w.get("demo-broker-certs", "demo-0.key");
    let p = w.step(ca_end);
    assert!(p.events.iter().any(|e| e.kind == EventKind::CaOverlapEnded));
    assert!(!p.events.iter().any(|e| e.kind == EventKind::CertificatesRenewed));
    assert_eq!(w.get("demo-broker-certs", "demo-0.key"), b0_key);
    let bundle = w.get("demo-cluster-ca-cert", CA_CERT_KEY);
    assert_eq!(ders(&bundle).len(), 1);
    let chain = w.get("demo-broker-certs", "demo-0.crt");
    assert_eq!(ders(&chain).len(), 1);
    verify_server(&chain, &new_ca, "demo-0.demo-brokers.ns.svc", ca_end + 1).unwrap();
    assert!(!w.secrets["demo-cluster-ca"].data.contains_key(CA_PREVIOUS_KEY));
}

#[test]
fn the_annotation_renews_the_ca_at_once_and_only_once() {
    let mut w = World::new();
    w.step(T0);
    let old_ca = w.get("demo-cluster-ca", CA_CERT_KEY);
    let old_b0 = w.get("demo-broker-certs", "demo-0.crt");
    w.renew_cluster_ca = true;
    let p = w.step(T0 + HOUR);
    assert_eq!(p.cluster_ca.generation, Some(2));
    assert!(p.events.iter().any(|e| e.kind == EventKind::CaRenewed
        && e.message.contains("annotation")));
    let new_ca = w.get("demo-cluster-ca", CA_CERT_KEY);
    assert_both_trusted(&w, &old_ca, &new_ca, &old_b0, T0 + HOUR + 1);
    // The operator stopped before removing the annotation: the next reconcile does
    // not renew again (which would drop the first CA while clients still trust it).
    let p = w.step(T0 + HOUR + 60);
    assert!(p.writes.is_empty(), "{:?}", p.writes);
    assert_eq!(p.cluster_ca.generation, Some(2));
}

#[test]
fn an_expired_ca_is_replaced_without_overlap() {
    let mut w = World::new();
    w.spec.ca_validity = "2h".into();
    w.spec.ca_renew_before = "1h".into();
    w.spec.validity = "30m".into();
    w.spec.renew_before = "10m".into();
    w.step(T0);
    // The operator was away past the CA's end.
    let p = w.step(T0 + 3 * HOUR);
    assert!(p.events.iter().any(|e| e.kind == EventKind::CaReplaced));
    assert_eq!(p.cluster_ca.generation, Some(2));
    assert_eq!(p.cluster_ca.previous_not_after, None);
    assert_eq!(ders(&w.get("demo-cluster-ca-cert", CA_CERT_KEY)).len(), 1);
}

#[test]
fn garbage_secrets_are_replaced_not_crashed_on() {
    let mut w = World::new();
    w.step(T0);
    let garbage: Vec<(&str, &[u8])> = vec![
        (CA_CERT_KEY, b"not a certificate"),
        (CA_KEY_KEY, b"\xff\xfe\x00"),
    ];
    let ca = w.secrets.get_mut("demo-cluster-ca").unwrap();
    for (k, v) in &garbage {
        ca.data.insert(k.to_string(), v.to_vec());
    }
    let b = w.secrets.get_mut("demo-broker-certs").unwrap();
    b.data.insert(
        "demo-1.crt".into(),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
    );
    let p = w.step(T0 + 10);
    let replaced = p
        .events
        .iter()
        .find(|e| e.kind == EventKind::CaReplaced)
        .expect("reported");
    assert!(replaced.kind.warning());
    assert!(replaced.message.contains("demo-cluster-ca"), "{}", replaced.message);
    assert_eq!(p.cluster_ca.generation, Some(2));
    let bundle = w.get("demo-cluster-ca-cert", CA_CERT_KEY);
    for n in 0..3 {
        let chain = w.get("demo-broker-certs", &format!("demo-{n}.crt"));
        verify_server(&chain, &bundle, &format!("demo-{n}.demo-brokers.ns.svc"), T0 + 11).unwrap();
    }
    assert!(w.step(T0 + 20).writes.is_empty(), "settled");

    // A leaf whose key was swapped, or whose chain is another cert's, is issued again.
    let k0 = w.get("demo-broker-certs", "demo-0.key");
    let b = w.secrets.get_mut("demo-broker-certs").unwrap();
    b.data.insert("demo-1.key".into(), k0.into_bytes());
    b.data.insert("demo-2.crt".into(), vec![0u8; 300_000]);
    let p = w.step(T0 + 30);
    let msg = &p.events[0].message;
    assert!(msg.contains("demo-1 (key does not match)"), "{msg}");
    assert!(msg.contains("demo-2 (unreadable)"), "{msg}");

    // Hostile PEM shapes parse to errors.
    for bad in [
        &b""[..],
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ] {
        assert!(parse_certificates(bad).is_err());
    }
    let many = w.get("demo-broker-certs", "demo-0.crt").repeat(40);
    assert!(parse_certificates(many.as_bytes()).is_err(), "bounded");
}

#[test]
fn a_user_supplied_ca_is_used_and_never_replaced() {
    let mut w = World::new();
    let mine = Ca::create("my corporate CA", 0, T0 - HOUR, Duration::from_secs(1000 * 3600)).unwrap();
    w.secrets.insert(
        "my-ca".into(),
        SecretData {
            data: BTreeMap::from([
                (CA_CERT_KEY.to_string(), mine.certificate().pem().into_bytes()),
                (CA_KEY_KEY.to_string(), mine.key_pem().as_bytes().to_vec()),
            ]),
            annotations: BTreeMap::new(),
        },
    );
    w.spec.cluster_ca = Some(CaSecretRef {
        secret_name: "my-ca".into(),
    });
    w.renew_cluster_ca = true;
    let p = w.step(T0);
    assert!(!written(&p).contains(&"demo-cluster-ca"));
    assert!(written(&p).contains(&"demo-cluster-ca-cert"));
    assert_eq!(p.cluster_ca.generation, None);
    let mine_pem = mine.certificate().pem();
    assert_eq!(w.get("demo-cluster-ca-cert", CA_CERT_KEY), mine_pem);
    let chain = w.get("demo-broker-certs", "demo-0.crt");
    verify_server(&chain, &mine_pem, "demo-0.demo-brokers.ns.svc", T0).unwrap();
    // Well past caRenewBefore (4380h ahead of its 1000h end): still the user's CA, and
    // no writes beyond leaf renewals.
    let p = w.step(T0 + 10);
    assert!(p.writes.is_empty());
    assert!(!p.events.iter().any(|e| e.kind == EventKind::CaRenewed));

    // A broken user CA stops the plan with an error naming the Secret.
    w.secrets.get_mut("my-ca").unwrap().data.remove(CA_KEY_KEY);
    let e = w.plan(T0 + 20).unwrap_err().to_string();
    assert!(e.contains("my-ca") && e.contains("ca.key"), "{e}");
    w.secrets.remove("my-ca");
    let e = w.plan(T0 + 20).unwrap_err().to_string();
    assert!(e.contains("my-ca") && e.contains("not found"), "{e}");
}

#[test]
fn certificates_follow_the_broker_count() {
    let mut w = World::new();
    w.brokers = 1;
    w.step(T0);
    w.brokers = 4;
    let p = w.step(T0 + 1);
    assert_eq!(written(&p), ["demo-broker-certs"]);
    assert!(p.events[0].message.contains("broker demo-3"));
    assert!(w.secrets["demo-broker-certs"].data.contains_key("demo-3.key"));
    w.brokers = 2;
    let p = w.step(T0 + 2);
    assert_eq!(written(&p), ["demo-broker-certs"]);
    assert!(!w.secrets["demo-broker-certs"].data.contains_key("demo-2.crt"));
    assert!(p.events.is_empty(), "removing certificates issues none");
}

#[test]
fn user_certificates_name_the_user_and_chain_to_the_clients_ca() {
    let mut w = World::new();
    let p = w.step(T0);
    let issued = issue_user_certificate(
        &p.clients,
        "alice",
        k8s_openapi::jiff::Timestamp::from_second(T0).unwrap(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let l = leaf(&issued.chain_pem);
    assert_eq!(l.common_name.as_deref(), Some("alice"));
    assert!(l.key_matches(&issued.key_pem));
    verify_client(&issued.chain_pem, &w.get("demo-broker-certs", TRUSTSTORE_KEY), T0).unwrap();
    assert!(verify_client(&issued.chain_pem, &w.get("demo-cluster-ca-cert", CA_CERT_KEY), T0).is_err());
}

#[test]
fn invalid_lifetimes_are_refused() {
    let mut w = World::new();
    w.spec.renew_before = "9000h".into();
    assert!(w.plan(T0).unwrap_err().to_string().contains("renewBefore"));
    w.spec = spec();
    w.spec.validity = "a year".into();
    assert!(w.plan(T0).unwrap_err().to_string().contains("validity"));
}
