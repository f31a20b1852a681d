//! A real broker started with the listener, authentication and authorizer flags the
//! operator gives a FjordCluster's pods (`fjord_operator::listeners::listener_args`),
//! pod name and IP replaced as the kubelet would, and certificates as the cluster CA
//! issues them:
//!
//! 1. the operator's client (fjord-client, mutual TLS with `CN=fjord:operator`) reaches
//!    the operator listener and, as the super user `User:fjord:operator` the principal
//!    mapping rule makes of it, creates a topic while the authorizer is on;
//! 2. an anonymous client of the plain listener is refused that (no ACL allows it);
//! 3. a client without a certificate is refused on the operator listener.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use fjord_client::{Client, ClientConfig, NewTopic, ResponseError, TlsConfig};
use fjord_e2e::{free_ports_on, unique_topic, BrokerOptions, BrokerProcess};
use fjord_operator::listeners::{listener_args, OPERATOR_COMMON_NAME};
use fjord_operator::types::FjordCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

fn config(tls: Option<TlsConfig>) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(10),
        tls,
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn broker_runs_the_operator_listener_flags() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test Cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |cn: &str, names: Vec<String>| -> Result<(String, String)> {
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate()?;
        Ok((p.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
    };
    let (broker_cert, broker_key) = leaf("demo-0", vec!["localhost".into()])?;
    let (op_cert, op_key) = leaf(OPERATOR_COMMON_NAME, vec![])?;

    let ports = free_ports_on(std::net::Ipv4Addr::LOCALHOST, 3)?;
    let (plain, scram, operator) = (ports[0], ports[1], ports[2]);
    let cluster: FjordCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "fjord.dev/v1alpha1",
        "kind": "FjordCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": {
            "replicas": 1,
            "storage": {"size": "1Gi"},
            "listeners": [
                {"name": "plain", "port": plain},
                {"name": "scram", "port": scram, "tls": true, "authentication": "scram-sha-512"}
            ],
            "ports": {"operator": operator},
            "authorization": {"type": "simple", "superUsers": ["admin"]}
        }
    }))?;
    let args: Vec<String> = listener_args(&cluster)
        .into_iter()
        .map(|a| {
            a.replace("$(POD_IP)", "127.0.0.1")
                .replace("$(POD_NAME).demo-brokers.ns.svc", "localhost")
        })
        .collect();
    let mut broker = BrokerProcess::prepare(BrokerOptions::default())?;
    broker.push_args(args);
    broker.push_args([
        format!(
            "--ssl-keystore-location={}",
            write(d, "demo-0.crt", &broker_cert)
        ),
        format!("--ssl-key-location={}", write(d, "demo-0.key", &broker_key)),
        format!(
            "--ssl-truststore-location={}",
            write(d, "truststore.crt", &ca_pem)
        ),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;

    // 1. The operator, a super user, on its own listener.
    let tls = TlsConfig::with_client_certificate(&ca_pem, &op_cert, &op_key)?;
    let op = Client::connect(&[format!("localhost:{operator}")], config(Some(tls))).await?;
    let topic = unique_topic("operator");
    op.create_topic(NewTopic::new(&topic, 1, 1)).await?;
    let md = op.metadata(Some(&[topic.as_str()])).await?;
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.brokers[0].addr(), format!("localhost:{operator}"));

    // 2. Anonymous on the plain listener: the authorizer refuses.
    let anonymous = Client::connect(&[format!("127.0.0.1:{plain}")], config(None)).await?;
    let err = anonymous
        .create_topic(NewTopic::new(unique_topic("anonymous"), 1, 1))
        .await
        .expect_err("an anonymous client may not create topics");
    assert!(
        matches!(
            err.kafka(),
            Some(
                ResponseError::TopicAuthorizationFailed | ResponseError::ClusterAuthorizationFailed
            )
        ),
        "{err}"
    );

    // 3. No client certificate on the operator listener.
    let no_cert = TlsConfig::new(&ca_pem)?;
    assert!(
        Client::connect(&[format!("localhost:{operator}")], config(Some(no_cert)))
            .await
            .is_err()
    );
    Ok(())
}
