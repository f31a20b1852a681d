//! fjord-client over a broker's SSL listener that requires client certificates
//! (`ssl.client.auth=required`), as the operator reaches its clusters:
//!
//! 1. with the CA and a client certificate: create a topic, produce, fetch the records
//!    back (the client follows Metadata to the listener's advertised address, with TLS);
//! 2. the broker's certificate is checked against the host dialled: an address the
//!    certificate does not name is refused;
//! 3. no client certificate, a client certificate from another CA, or trusting another
//!    CA: the connection fails, with a TLS or connection error;
//! 4. plaintext to the SSL listener fails within the connect bound.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use fjord_client::{
    Client, ClientConfig, FetchOptions, NewTopic, ProduceOptions, ProduceRecord, TlsConfig,
};
use fjord_e2e::{free_port, unique_topic, BrokerOptions, BrokerProcess};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Certificate chain and key (PEM) of `cn` with the SANs `names`.
fn leaf(ca: &Ca, cn: &str, names: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

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
async fn client_over_an_ssl_listener_with_a_client_certificate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let ca = new_ca("Fjord Test Cluster CA");
    let (server_cert, server_key) = leaf(&ca, "broker", &["localhost"]);
    let (client_cert, client_key) = leaf(&ca, "fjord:operator", &[]);
    let other = new_ca("Other CA");
    let (stranger_cert, stranger_key) = leaf(&other, "mallory", &[]);

    let ssl_port = free_port()?;
    let mut broker = BrokerProcess::prepare(BrokerOptions::default())?;
    let plain = broker.bootstrap();
    broker.push_args([
        "--listeners".to_string(),
        format!("PLAINTEXT://{plain},OPERATOR://127.0.0.1:{ssl_port}"),
        "--advertised-listeners".into(),
        format!("OPERATOR://localhost:{ssl_port}"),
        "--listener-security-protocol-map".into(),
        "PLAINTEXT:PLAINTEXT,OPERATOR:SSL".into(),
        "--listener-ssl-client-auth".into(),
        "OPERATOR:required".into(),
        "--ssl-keystore-location".into(),
        write(d, "server.pem", &server_cert),
        "--ssl-key-location".into(),
        write(d, "server.key", &server_key),
        "--ssl-truststore-location".into(),
        write(d, "ca.pem", &ca.pem),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    let ssl = format!("localhost:{ssl_port}");

    // 1. A whole round trip over TLS with a client certificate.
    let tls = TlsConfig::with_client_certificate(&ca.pem, &client_cert, &client_key)?;
    let client = Client::connect(&[&ssl], config(Some(tls.clone()))).await?;
    let topic = unique_topic("client-tls");
    client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
    let records: Vec<_> = (0..50)
        .map(|i| ProduceRecord::new(Some(format!("k{i}")), format!("record-{i}")))
        .collect();
    let produced = client
        .produce(&topic, 0, &records, &ProduceOptions::default())
        .await?;
    assert_eq!(produced.base_offset, 0);
    let fetched = client.fetch(&topic, 0, 0, &FetchOptions::default()).await?;
    let values: Vec<String> = fetched
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("record-{i}")).collect();
    assert_eq!(values, want);
    // Metadata on this listener names it: the brokers are reached over TLS too.
    let md = client.metadata(Some(&[])).await?;
    let advertised: Vec<String> = md.brokers.iter().map(|b| b.addr()).collect();
    assert_eq!(advertised, std::slice::from_ref(&ssl));

    // 2. The certificate names localhost, not the address 127.0.0.1.
    let by_ip = Client::connect(&[format!("127.0.0.1:{ssl_port}")], config(Some(tls))).await;
    let Err(err) = by_ip else {
        panic!("a certificate without the dialled name was accepted");
    };
    assert!(err.to_string().contains("certificate"), "{err}");

    // 3. Refused: no certificate, a stranger's certificate, a server from another CA.
    let refusals = [
        ("no client certificate", TlsConfig::new(&ca.pem)?),
        (
            "a client certificate of another CA",
            TlsConfig::with_client_certificate(&ca.pem, &stranger_cert, &stranger_key)?,
        ),
        (
            "trusting another CA",
            TlsConfig::with_client_certificate(&other.pem, &client_cert, &client_key)?,
        ),
    ];
    for (what, tls) in refusals {
        let result = Client::connect(&[&ssl], config(Some(tls))).await;
        assert!(result.is_err(), "{what}: connected");
    }

    // 4. Plaintext to a TLS listener: no Kafka answer.
    assert!(Client::connect(&[&ssl], config(None)).await.is_err());
    Ok(())
}
