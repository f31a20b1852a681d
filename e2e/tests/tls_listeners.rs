//! A broker with a PLAINTEXT and an SSL listener (`ssl.client.auth=required`), and
//! librdkafka clients over each:
//!
//! 1. produce and consume in a group over SSL with a client certificate;
//! 2. Metadata on each listener advertises that listener's port;
//! 3. a client without a certificate and one with a certificate from another CA are
//!    refused;
//! 4. the client certificate's subject is the connection's principal, in Kafka's
//!    RFC 2253 form;
//! 5. replacing the broker's certificate files: the next connection gets the new
//!    certificate, without a restart.
//!
//! And a broker with the five listeners of the client compatibility suites, where
//! `ssl.client.auth` is per listener (KIP-684): a client without a certificate is
//! refused on SSL and accepted on SASL_SSL and on an SSL listener set to `none`.
//!
//! And fetches of a multi-megabyte range over SSL, every byte checked, with the TLS
//! connections counted in the mode this kernel offers: kernel TLS (sendfile) where
//! /proc/sys/net/ipv4/tcp_available_ulp lists tls, user space otherwise.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use anyhow::{bail, ensure, Context, Result};
use fjord_e2e::{free_port, http_get, unique_topic, BrokerOptions, BrokerProcess};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

const DEADLINE: Duration = Duration::from_secs(60);

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

/// Certificate and key (PEM) for `subject`, valid for localhost and 127.0.0.1.
fn leaf(ca: &Ca, subject: &[(DnType, &str)], serial: u64) -> (String, String) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (t, v) in subject {
        params.distinguished_name.push(t.clone(), *v);
    }
    params.serial_number = Some(serial.into());
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A test CA and a broker certificate from it, written to `dir` as server.pem,
/// server.key and ca.pem: the CA, and the paths of the three files.
fn broker_files(dir: &Path) -> (Ca, PathBuf, PathBuf, PathBuf) {
    let ca = new_ca("Fjord Test CA");
    let (server_cert, server_key) = leaf(&ca, &[(DnType::CommonName, "broker")], 1);
    let server_pem = write(dir, "server.pem", &server_cert);
    let server_key = write(dir, "server.key", &server_key);
    let ca_path = write(dir, "ca.pem", &ca.pem);
    (ca, server_pem, server_key, ca_path)
}

fn client(bootstrap: &str, tls: Option<(&Path, Option<(&Path, &Path)>)>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "20000");
    if let Some((ca, identity)) = tls {
        c.set("security.protocol", "ssl")
            .set("ssl.ca.location", ca.to_str().unwrap());
        if let Some((cert, key)) = identity {
            c.set("ssl.certificate.location", cert.to_str().unwrap())
                .set("ssl.key.location", key.to_str().unwrap());
        }
    }
    c
}

/// The port Metadata advertises for the only broker.
fn advertised_port(config: &ClientConfig) -> Result<u16> {
    let producer: FutureProducer = config.create()?;
    let md = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))?;
    match md.brokers() {
        [b] => Ok(b.port() as u16),
        other => bail!("{} brokers in Metadata", other.len()),
    }
}

/// The serial number of the certificate the broker presents to a new TLS connection.
async fn served_serial(port: u16, ca_pem: &str, client: &(String, String)) -> Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(client.0.as_bytes()).collect::<Result<_, _>>()?,
            rustls_pki_types::PrivateKeyDer::from_pem_slice(client.1.as_bytes())?,
        )?;
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .context("no server certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0])?;
    Ok(cert.raw_serial().to_vec())
}

/// Produce `payloads` to partition 0 of `topic` over `producer`, each acknowledged.
async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    payloads: impl IntoIterator<Item = Vec<u8>>,
    broker: &BrokerProcess,
) -> Result<()> {
    for payload in payloads {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&payload),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("produce over SSL\n{}", broker.logs()))?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// The next `n` records `consumer` receives, within [`DEADLINE`].
async fn consume_n(consumer: &StreamConsumer, n: usize) -> Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, consumer.recv())
            .await
            .with_context(|| format!("{} of {n} records consumed over SSL", got.len()))??;
        got.push(message.detach());
    }
    Ok(got)
}

#[tokio::test]
async fn ssl_listener_with_client_certificates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (ca, _, _, ca_path) = broker_files(d);
    let client_identity = leaf(
        &ca,
        &[
            (DnType::OrganizationName, "Fjord Test"),
            (DnType::OrganizationalUnitName, "eng"),
            (DnType::CommonName, "client"),
        ],
        10,
    );
    let client_cert = write(d, "client.pem", &client_identity.0);
    let client_key = write(d, "client.key", &client_identity.1);
    let stranger = leaf(&new_ca("Other CA"), &[(DnType::CommonName, "mallory")], 11);
    let stranger_cert = write(d, "stranger.pem", &stranger.0);
    let stranger_key = write(d, "stranger.key", &stranger.1);

    let ssl_port = free_port()?;
    let mut options = BrokerOptions::default();
    options.env.push((
        "FJORD_LOG".into(),
        "info,openraft=off,fjord_broker::server=debug".into(),
    ));
    let mut broker = BrokerProcess::prepare(options)?;
    // The harness's Kafka port becomes the PLAINTEXT listener.
    let plain = broker.bootstrap();
    broker.push_args([
        "--listeners".to_string(),
        format!("PLAINTEXT://{plain},SSL://127.0.0.1:{ssl_port}"),
        "--ssl-keystore-location".into(),
        d.join("server.pem").display().to_string(),
        "--ssl-key-location".into(),
        d.join("server.key").display().to_string(),
        "--ssl-truststore-location".into(),
        ca_path.display().to_string(),
        "--ssl-client-auth".into(),
        "required".into(),
        "--ssl-reload-interval-ms".into(),
        "200".into(),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    let ssl = format!("127.0.0.1:{ssl_port}");
    let with_cert = client(&ssl, Some((&ca_path, Some((&client_cert, &client_key)))));

    // 1. Produce and consume in a group over SSL.
    let topic = unique_topic("tls");
    let producer: FutureProducer = with_cert.create()?;
    let values = (0..100).map(|i| format!("record-{i}").into_bytes());
    produce_all(&producer, &topic, values, &broker).await?;
    let consumer: StreamConsumer = with_cert
        .clone()
        .set("group.id", unique_topic("tls-group"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let got: Vec<String> = consume_n(&consumer, 100)
        .await?
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("record-{i}")).collect();
    assert_eq!(got, want);

    // 2. Each listener advertises itself.
    assert_eq!(advertised_port(&with_cert)?, ssl_port);
    let plain_port: u16 = plain.rsplit_once(':').unwrap().1.parse()?;
    assert_eq!(advertised_port(&client(&plain, None))?, plain_port);

    // 3. No certificate, or one from another CA: refused.
    assert!(advertised_port(&client(&ssl, Some((&ca_path, None)))).is_err());
    assert!(advertised_port(&client(
        &ssl,
        Some((&ca_path, Some((&stranger_cert, &stranger_key))))
    ))
    .is_err());
    let logs = broker.logs();
    assert!(
        logs.contains("TLS connection refused"),
        "no refused handshake logged\n{logs}"
    );
    // A refused client may see its handshake fail a moment before the broker counts it.
    common::wait_for(
        "two refused handshakes counted",
        common::DEADLINE,
        || async {
            let (_, metrics) =
                http_get(&broker.http_addr(), "/metrics", Duration::from_secs(10)).await?;
            let refused: f64 = metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix("fjord_connections_closed_total{reason=\"tls_handshake\"} ")
                })
                .map_or(Ok(0.0), |v| v.trim().parse())?;
            Ok(if refused >= 2.0 {
                Ok(())
            } else {
                Err(format!("{refused} counted"))
            })
        },
    )
    .await?;

    // 4. The principal of the client certificate, as Kafka names it.
    assert!(
        logs.contains("principal=User:CN=client,OU=eng,O=Fjord Test"),
        "principal not logged\n{logs}"
    );

    // 5. Rotation: new files, and the next connection gets the new certificate.
    assert_eq!(
        served_serial(ssl_port, &ca.pem, &client_identity).await?,
        vec![1]
    );
    let (rotated_cert, rotated_key) = leaf(&ca, &[(DnType::CommonName, "broker")], 2);
    // Key first: until the certificate follows, the pair does not match and the old
    // files stay in use.
    write(d, "server.key", &rotated_key);
    write(d, "server.pem", &rotated_cert);
    common::wait_for("the rotated certificate served", DEADLINE, || async {
        let serial = served_serial(ssl_port, &ca.pem, &client_identity).await?;
        Ok(if serial == vec![2] {
            Ok(())
        } else {
            Err(format!("still serial {serial:?}\n{}", broker.logs()))
        })
    })
    .await?;
    // Clients keep working across the rotation.
    assert_eq!(advertised_port(&with_cert)?, ssl_port);
    Ok(())
}

#[tokio::test]
async fn ssl_client_auth_per_listener() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (ca, server_pem, server_key, ca_path) = broker_files(d);
    let identity = leaf(&ca, &[(DnType::CommonName, "client")], 10);
    let client_cert = write(d, "client.pem", &identity.0);
    let client_key = write(d, "client.key", &identity.1);

    let [ssl, sasl_plain, sasl_ssl, no_cert] =
        [free_port()?, free_port()?, free_port()?, free_port()?];
    let mut options = BrokerOptions::default();
    options.env.push((
        "FJORD_SCRAM_BOOTSTRAP".into(),
        "SCRAM-SHA-512=[name=alice,password=alice-secret]".into(),
    ));
    let mut broker = BrokerProcess::prepare(options)?;
    let plain = broker.bootstrap();
    // The command line of the client compatibility broker.
    broker.push_args([
        "--listeners".to_string(),
        format!(
            "PLAINTEXT://{plain},SSL://127.0.0.1:{ssl},SASL_PLAINTEXT://127.0.0.1:{sasl_plain},\
             SASL_SSL://127.0.0.1:{sasl_ssl},SSLNOCERT://127.0.0.1:{no_cert}"
        ),
        "--listener-security-protocol-map".into(),
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,\
         SSLNOCERT:SSL"
            .into(),
        "--ssl-client-auth".into(),
        "required".into(),
        "--listener-ssl-client-auth".into(),
        "SSLNOCERT:none".into(),
        "--sasl-enabled-mechanisms".into(),
        "SCRAM-SHA-512,PLAIN".into(),
        "--ssl-keystore-location".into(),
        server_pem.display().to_string(),
        "--ssl-key-location".into(),
        server_key.display().to_string(),
        "--ssl-truststore-location".into(),
        ca_path.display().to_string(),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    let at = |port: u16| format!("127.0.0.1:{port}");

    // SSL: ssl.client.auth=required.
    let refused = advertised_port(&client(&at(ssl), Some((&ca_path, None))));
    assert!(
        refused.is_err(),
        "SSL accepted a client without a certificate"
    );
    assert_eq!(
        advertised_port(&client(
            &at(ssl),
            Some((&ca_path, Some((&client_cert, &client_key))))
        ))?,
        ssl
    );
    // SSLNOCERT: an SSL listener set to none.
    assert_eq!(
        advertised_port(&client(&at(no_cert), Some((&ca_path, None))))
            .with_context(|| format!("SSLNOCERT without a certificate\n{}", broker.logs()))?,
        no_cert
    );
    // SASL_SSL: the broker-wide mode does not apply; SASL authenticates.
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let mut c = client(&at(sasl_ssl), Some((&ca_path, None)));
        c.set("security.protocol", "sasl_ssl")
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "alice")
            .set("sasl.password", "alice-secret");
        assert_eq!(
            advertised_port(&c).with_context(|| format!(
                "SASL_SSL {mechanism} without a certificate\n{}",
                broker.logs()
            ))?,
            sasl_ssl
        );
    }
    Ok(())
}

/// The bytes of record `i` of the fetch test: distinct per record and position.
fn fetch_record(i: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|j| (j.wrapping_mul(31) ^ i.wrapping_mul(2_654_435_761)) as u8)
        .collect()
}

#[tokio::test]
async fn fetch_over_ssl_in_the_mode_the_kernel_offers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (_, server_pem, server_key, ca_path) = broker_files(d);
    let ssl_port = free_port()?;
    let mut broker = BrokerProcess::prepare(BrokerOptions::default())?;
    let plain = broker.bootstrap();
    broker.push_args([
        "--listeners".to_string(),
        format!("PLAINTEXT://{plain},SSL://127.0.0.1:{ssl_port}"),
        "--ssl-keystore-location".into(),
        server_pem.display().to_string(),
        "--ssl-key-location".into(),
        server_key.display().to_string(),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    let ssl = client(&format!("127.0.0.1:{ssl_port}"), Some((&ca_path, None)));

    // 64 records of 100 KB in one partition: fetched in ranges of megabytes.
    const RECORDS: u32 = 64;
    const SIZE: usize = 100 * 1024;
    let topic = unique_topic("tls-fetch");
    let producer: FutureProducer = ssl.clone().set("message.max.bytes", "1000000").create()?;
    let records = (0..RECORDS).map(|i| fetch_record(i, SIZE));
    produce_all(&producer, &topic, records, &broker).await?;
    let consumer: StreamConsumer = ssl
        .clone()
        .set("group.id", unique_topic("tls-fetch"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "16777216")
        .set("receive.message.max.bytes", "33554432")
        .create()?;
    consumer.subscribe(&[&topic])?;
    for (i, message) in (0..RECORDS).zip(consume_n(&consumer, RECORDS as usize).await?) {
        ensure!(
            message.offset() == i64::from(i),
            "offset {} for record {i}",
            message.offset()
        );
        ensure!(
            message.payload() == Some(&fetch_record(i, SIZE)[..]),
            "record {i} fetched over SSL differs from what was produced"
        );
    }

    let ulps = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
    let (used, unused) = if ulps.split_whitespace().any(|u| u == "tls") {
        ("kernel", "userspace")
    } else {
        ("userspace", "kernel")
    };
    let metrics = common::scrape(&broker.http_addr()).await?;
    let count = |mode| common::metric(&metrics, "fjord_tls_connections_total", &[("mode", mode)]);
    ensure!(
        count(used).unwrap_or(0.0) >= 2.0,
        "tcp_available_ulp {ulps:?}: {:?} {used} TLS connections (producer and consumer)\n{metrics}",
        count(used)
    );
    ensure!(
        count(unused).unwrap_or(0.0) == 0.0,
        "tcp_available_ulp {ulps:?}: {:?} {unused} TLS connections",
        count(unused)
    );
    let logs = broker.logs();
    let said = if used == "kernel" {
        "kernel TLS available"
    } else {
        "kernel TLS unavailable"
    };
    ensure!(
        logs.matches(said).count() == 1,
        "{said:?} not logged once at start\n{logs}"
    );
    Ok(())
}
