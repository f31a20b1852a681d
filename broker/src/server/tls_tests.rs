//! Handshakes between a rustls client and the acceptor over loopback, with
//! certificates made for each test.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA that signs certificates.
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

/// A certificate for `cn` (a server for localhost, or a client) and its key, in PEM.
fn leaf(ca: &Ca, cn: &str, serial: u64) -> (String, String) {
    leaf_with(ca, cn, serial, |_| {})
}

fn leaf_with(
    ca: &Ca,
    cn: &str,
    serial: u64,
    adjust: impl FnOnce(&mut CertificateParams),
) -> (String, String) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Fjord Test");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(serial.into());
    adjust(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }
}

fn settings(files: &Files, auth: SslClientAuth, rules: &str) -> SslConfig {
    SslConfig {
        ssl_keystore_location: Some(files.dir.path().join("server.pem")),
        ssl_key_location: Some(files.dir.path().join("server.key")),
        ssl_truststore_location: Some(files.dir.path().join("ca.pem")),
        ssl_client_auth: auth,
        listener_ssl_client_auth: String::new(),
        ssl_ktls: crate::config::ssl::SslKtls::Auto,
        ssl_principal_mapping_rules: rules.into(),
        ssl_reload_interval_ms: 100,
    }
}

fn client_config(trusted_ca: &str, identity: Option<(String, String)>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(trusted_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

/// The acceptor with what this kernel offers: on a kernel with TLS, these tests run
/// their connections through kernel TLS.
fn load(settings: &SslConfig, listeners: &Listeners) -> Result<Arc<TlsAcceptor>, TlsError> {
    TlsAcceptor::load(settings, listeners, KernelTls::probe())
}

/// One SSL listener named SSL.
fn ssl_listener() -> Listeners {
    listeners("SSL://127.0.0.1:0", "")
}

fn listeners(listeners: &str, protocol_map: &str) -> Listeners {
    crate::config::listeners::resolve(&crate::config::listeners::ListenerSettings {
        listeners,
        advertised: "",
        protocol_map,
    })
    .unwrap()
}

/// One connection to the listener named SSL; see [`connect_to`].
async fn connect(
    acceptor: &TlsAcceptor,
    client: Arc<ClientConfig>,
) -> (Result<Principal, String>, Option<Vec<u8>>) {
    connect_to(acceptor, "SSL", client).await
}

/// One connection to `listener`: the client's handshake and a byte each way, the
/// server's outcome, and the serial number of the server certificate the client saw.
async fn connect_to(
    acceptor: &TlsAcceptor,
    listener: &str,
    client: Arc<ClientConfig>,
) -> (Result<Principal, String>, Option<Vec<u8>>) {
    let listener_name = ListenerName::parse(listener).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client_side = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .ok()?;
        let serial = tls.get_ref().1.peer_certificates().map(|c| {
            let (_, cert) = x509_parser::parse_x509_certificate(&c[0]).unwrap();
            cert.raw_serial().to_vec()
        });
        // TLS 1.3 clients learn of a refused certificate only when they read.
        tls.write_all(b"x").await.ok()?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.ok()?;
        serial
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let outcome = match acceptor.accept(tcp, &listener_name, 10_000).await {
        Ok((stream, principal, _)) => {
            let (mut read, mut write) = stream.into_split();
            let mut byte = [0u8; 1];
            read.read_exact(&mut byte).await.unwrap();
            write.write_all(b"y").await.unwrap();
            write.flush().await.unwrap();
            Ok(principal)
        }
        Err(e) => Err(e.to_string()),
    };
    (outcome, client_side.await.unwrap())
}

fn setup() -> (Files, Ca) {
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let ca = new_ca("Fjord Test CA");
    let (cert, key) = leaf(&ca, "broker", 1);
    files.write("server.pem", &cert);
    files.write("server.key", &key);
    files.write("ca.pem", &ca.pem);
    (files, ca)
}

#[tokio::test]
async fn a_client_certificate_is_the_principal_and_required_refuses_the_rest() {
    let (files, ca) = setup();
    let acceptor = load(
        &settings(
            &files,
            SslClientAuth::Required,
            "RULE:^CN=(.*?),O=Fjord Test$/$1/L,DEFAULT",
        ),
        &ssl_listener(),
    )
    .unwrap();
    let (principal, serial) = connect(
        &acceptor,
        client_config(&ca.pem, Some(leaf(&ca, "Alice", 7))),
    )
    .await;
    assert_eq!(principal.unwrap(), Principal::user("alice"));
    assert_eq!(
        serial,
        Some(vec![1]),
        "the client saw the broker's certificate"
    );

    let (refused, seen) = connect(&acceptor, client_config(&ca.pem, None)).await;
    assert!(refused.unwrap_err().contains("handshake"));
    assert_eq!(seen, None);

    let expired = leaf_with(&ca, "old", 8, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let (refused, seen) = connect(&acceptor, client_config(&ca.pem, Some(expired))).await;
    let refused = refused.unwrap_err();
    assert!(
        refused.contains("handshake") && refused.contains("xpired"),
        "{refused}"
    );
    assert_eq!(seen, None);

    let stranger = new_ca("Other CA");
    let (refused, seen) = connect(
        &acceptor,
        client_config(&ca.pem, Some(leaf(&stranger, "mallory", 9))),
    )
    .await;
    assert!(refused.unwrap_err().contains("handshake"));
    assert_eq!(seen, None);
}

#[tokio::test]
async fn requested_lets_a_client_without_a_certificate_in_as_anonymous() {
    let (files, ca) = setup();
    let acceptor = load(
        &settings(&files, SslClientAuth::Requested, "DEFAULT"),
        &ssl_listener(),
    )
    .unwrap();
    let (principal, _) = connect(&acceptor, client_config(&ca.pem, None)).await;
    assert_eq!(principal.unwrap(), Principal::anonymous());
    let (principal, _) =
        connect(&acceptor, client_config(&ca.pem, Some(leaf(&ca, "bob", 3)))).await;
    assert_eq!(principal.unwrap(), Principal::user("CN=bob,O=Fjord Test"));
    // With none, a certificate is not even asked for.
    let acceptor = load(
        &settings(&files, SslClientAuth::None, "DEFAULT"),
        &ssl_listener(),
    )
    .unwrap();
    let (principal, _) =
        connect(&acceptor, client_config(&ca.pem, Some(leaf(&ca, "bob", 3)))).await;
    assert_eq!(principal.unwrap(), Principal::anonymous());
}

#[tokio::test]
async fn client_auth_is_per_listener_and_sasl_ssl_asks_for_no_certificate() {
    let (files, ca) = setup();
    let mut s = settings(&files, SslClientAuth::Required, "DEFAULT");
    s.listener_ssl_client_auth = "sslnocert:none".into();
    let acceptor = load(
        &s,
        &listeners(
            "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SSLNOCERT://127.0.0.1:0",
            "SSL:SSL,SASL_SSL:SASL_SSL,SSLNOCERT:SSL",
        ),
    )
    .unwrap();
    let no_cert = || client_config(&ca.pem, None);
    let (refused, _) = connect_to(&acceptor, "SSL", no_cert()).await;
    assert!(refused.unwrap_err().contains("handshake"));
    for open in ["SASL_SSL", "SSLNOCERT"] {
        let (principal, serial) = connect_to(&acceptor, open, no_cert()).await;
        assert_eq!(principal.unwrap(), Principal::anonymous(), "{open}");
        assert_eq!(serial, Some(vec![1]), "{open}");
    }
    // A certificate offered where none is asked for is not even looked at.
    let (principal, _) = connect_to(
        &acceptor,
        "SASL_SSL",
        client_config(&ca.pem, Some(leaf(&ca, "bob", 3))),
    )
    .await;
    assert_eq!(principal.unwrap(), Principal::anonymous());
    let (principal, _) = connect_to(
        &acceptor,
        "SSL",
        client_config(&ca.pem, Some(leaf(&ca, "bob", 3))),
    )
    .await;
    assert_eq!(principal.unwrap(), Principal::user("CN=bob,O=Fjord Test"));

    // The files are shared: one rotation serves every listener's new handshakes.
    let (cert, key) = leaf(&ca, "broker", 2);
    files.write("server.key", &key);
    files.write("server.pem", &cert);
    assert!(acceptor.reload().unwrap());
    for open in ["SASL_SSL", "SSLNOCERT"] {
        let (_, serial) = connect_to(&acceptor, open, no_cert()).await;
        assert_eq!(serial, Some(vec![2]), "{open}");
    }
    let (_, serial) = connect_to(
        &acceptor,
        "SSL",
        client_config(&ca.pem, Some(leaf(&ca, "bob", 4))),
    )
    .await;
    assert_eq!(serial, Some(vec![2]));
}

#[tokio::test]
async fn rotated_files_serve_new_handshakes_and_a_bad_file_keeps_the_old_ones() {
    let (files, ca) = setup();
    let acceptor = load(
        &settings(&files, SslClientAuth::None, "DEFAULT"),
        &ssl_listener(),
    )
    .unwrap();
    assert!(!acceptor.reload().unwrap(), "nothing changed");
    let (_, serial) = connect(&acceptor, client_config(&ca.pem, None)).await;
    assert_eq!(serial, Some(vec![1]));

    let (cert, key) = leaf(&ca, "broker", 2);
    // Half-way through a rotation the key does not match the certificate: refused.
    files.write("server.key", &key);
    let err = acceptor.reload().unwrap_err().to_string();
    assert!(err.contains("TLS configuration"), "{err}");
    files.write("server.pem", &cert);
    assert!(acceptor.reload().unwrap());
    let (_, serial) = connect(&acceptor, client_config(&ca.pem, None)).await;
    assert_eq!(serial, Some(vec![2]));

    // A half-written rotation: the certificate does not match... nor parse.
    files.write("server.pem", "-----BEGIN CERTIFICATE-----\ngarbage\n");
    assert!(acceptor.reload().is_err());
    // Reported once, not at every check.
    assert!(!acceptor.reload().unwrap());
    let (_, serial) = connect(&acceptor, client_config(&ca.pem, None)).await;
    assert_eq!(serial, Some(vec![2]));
}

#[test]
fn files_that_cannot_serve_are_refused_with_what_is_wrong() {
    let (files, _) = setup();
    let mut s = settings(&files, SslClientAuth::None, "DEFAULT");
    s.ssl_key_location = None;
    let err = load(&s, &ssl_listener()).unwrap_err().to_string();
    assert!(err.contains("private key"), "{err}");
    files.write(
        "enc.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    s.ssl_key_location = Some(files.dir.path().join("enc.key"));
    let err = load(&s, &ssl_listener()).unwrap_err().to_string();
    assert!(err.contains("encrypted keys are not supported"), "{err}");
    s.ssl_key_location = Some(files.dir.path().join("missing.key"));
    let err = load(&s, &ssl_listener()).unwrap_err().to_string();
    assert!(err.contains("missing.key"), "{err}");
}

/// Where the kernel offers TLS but not the negotiated cipher, the connection stays in
/// rustls over the record-by-record reader: large payloads cross intact both ways.
#[tokio::test]
async fn a_cipher_the_kernel_does_not_take_stays_in_user_space() {
    let (files, ca) = setup();
    let acceptor = TlsAcceptor::load(
        &settings(&files, SslClientAuth::None, "DEFAULT"),
        &ssl_listener(),
        KernelTls::Available(Vec::new()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let sent = payload.clone();
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client_config(&ca.pem, None))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(&sent).await.unwrap();
        tls.flush().await.unwrap();
        let mut echoed = vec![0u8; sent.len()];
        tls.read_exact(&mut echoed).await.unwrap();
        echoed == sent
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let (stream, _, mode) = acceptor
        .accept(tcp, &ListenerName::parse("SSL").unwrap(), 10_000)
        .await
        .unwrap();
    assert_eq!(mode, TlsMode::Userspace);
    let (mut read, mut write) = stream.into_split();
    let mut got = vec![0u8; payload.len()];
    read.read_exact(&mut got).await.unwrap();
    assert!(got == payload, "payload changed on the way in");
    write.write_all(&got).await.unwrap();
    write.flush().await.unwrap();
    assert!(client.await.unwrap(), "payload changed on the way out");
}
