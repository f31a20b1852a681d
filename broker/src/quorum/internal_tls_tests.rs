use std::time::Duration;

use futures::StreamExt;
use tonic::codegen::Service;

use super::*;
use crate::quorum::internal_ca::{LocalCa, NodeCertificate};

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn the_node_id_is_the_one_san_uri() {
    let ca = LocalCa::new("test CA").unwrap();
    let cert = |uris: &[&str]| {
        let c = ca
            .issue(7, uris.iter().map(|u| u.to_string()).collect())
            .unwrap();
        node_identity(&der(&c.certificate_pem))
    };
    assert_eq!(
        node_identity(&der(&ca.issue_node(7).unwrap().certificate_pem)),
        Ok(7)
    );
    assert_eq!(cert(&["fjord://node/0"]), Ok(0));
    assert_eq!(cert(&["https://example.com/", "fjord://node/12"]), Ok(12));
    assert_eq!(cert(&[]), Err(IdentityError::Missing));
    assert_eq!(
        cert(&["spiffe://fjord/node/3"]),
        Err(IdentityError::Missing)
    );
    assert_eq!(
        cert(&["fjord://node/2", "fjord://node/3"]),
        Err(IdentityError::Ambiguous)
    );
    for bad in [
        "fjord://node/",
        "fjord://node/03",
        "fjord://node/+3",
        "fjord://node/-1",
        "fjord://node/2147483648",
        "fjord://node/3/x",
    ] {
        assert_eq!(
            cert(&[bad]),
            Err(IdentityError::BadId(bad.to_string())),
            "{bad}"
        );
    }
    assert_eq!(
        node_identity(b"not a certificate"),
        Err(IdentityError::Unparseable)
    );
}

/// The files of one node, in a temp dir.
struct NodeFiles {
    _dir: tempfile::TempDir,
    args: InternalTlsArgs,
}

fn write(dir: &Path, ca: &LocalCa, cert: &NodeCertificate) {
    // As Kubernetes rotates a secret: new files moved into place.
    for (name, text) in [
        ("node.pem", cert.certificate_pem.as_str()),
        ("node.key", cert.key_pem.as_str()),
        ("ca.pem", ca.certificate_pem()),
    ] {
        let tmp = dir.join(format!(".{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn files(ca: &LocalCa, cert: &NodeCertificate) -> NodeFiles {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ca, cert);
    NodeFiles {
        args: InternalTlsArgs {
            certificate: Some(dir.path().join("node.pem")),
            key: Some(dir.path().join("node.key")),
            ca: Some(dir.path().join("ca.pem")),
        },
        _dir: dir,
    }
}

#[test]
fn settings_come_as_three_files_naming_this_node() {
    assert!(InternalTlsArgs::default().files().unwrap().is_none());
    let partial = InternalTlsArgs {
        certificate: Some("a.pem".into()),
        ..Default::default()
    };
    let e = partial.files().unwrap_err();
    assert!(e.contains("--internal-ssl-ca"), "{e}");

    let ca = LocalCa::new("test CA").unwrap();
    let node2 = files(&ca, &ca.issue_node(2).unwrap());
    assert!(InternalTls::from_args(2, &node2.args).unwrap().is_some());
    let e = InternalTls::from_args(3, &node2.args)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("names node 2") && e.contains("--node-id 3"),
        "{e}"
    );

    let anonymous = files(&ca, &ca.issue(2, vec![]).unwrap());
    let e = InternalTls::from_args(2, &anonymous.args)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fjord://node/"), "{e}");

    let mut missing = node2.args.clone();
    missing.key = Some("/nonexistent/node.key".into());
    let e = InternalTls::from_args(2, &missing).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/node.key"), "{e}");
}

/// A listener on loopback and what its accept path hands to the gRPC server.
struct Listener {
    address: String,
    accepted: Incoming,
}

async fn listen(tls: Option<Arc<InternalTls>>) -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    Listener {
        address,
        accepted: incoming(listener, tls),
    }
}

impl Listener {
    /// Runs `client` while the listener accepts (the stream drives the handshakes):
    /// its result, and the callers handed on meanwhile.
    async fn while_accepting<T>(
        &mut self,
        client: impl std::future::Future<Output = T>,
    ) -> (T, Vec<Caller>) {
        let mut client = std::pin::pin!(client);
        let mut callers = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::select! {
                out = &mut client => return (out, callers),
                Some(Ok(s)) = self.accepted.next() => {
                    callers.push(tonic::transport::server::Connected::connect_info(&s).caller);
                }
                () = tokio::time::sleep_until(deadline) => panic!("the client did not finish"),
            }
        }
    }

    /// The caller of the next connection handed on.
    async fn next_caller(&mut self) -> Caller {
        let next = tokio::time::timeout(Duration::from_secs(10), self.accepted.next()).await;
        match next {
            Ok(Some(Ok(s))) => tonic::transport::server::Connected::connect_info(&s).caller,
            other => panic!(
                "no connection handed on: {:?}",
                other.map(|o| o.map(|r| r.err()))
            ),
        }
    }

    /// Dial as `tls` expecting node `server_node`: the dial's result, and, when it
    /// connected, the caller the listener saw (the server finishes its side of the
    /// handshake after the client).
    async fn dial(
        &mut self,
        tls: &Arc<InternalTls>,
        server_node: i32,
    ) -> std::io::Result<Vec<Caller>> {
        let address = self.address.clone();
        let (result, mut callers) = self.while_accepting(dial(tls, server_node, &address)).await;
        result?;
        if callers.is_empty() {
            callers.push(self.next_caller().await);
        }
        Ok(callers)
    }

    /// Nothing was handed on since the last look: a probe connection from node 9 is
    /// the one and next to come out.
    async fn handed_on_nothing(&mut self, probe: &Arc<InternalTls>, server_node: i32) {
        let seen = self.dial(probe, server_node).await.unwrap();
        assert_eq!(seen, [Caller::Node(9)]);
    }
}

/// A node 9 that dials with a certificate of `ca`.
fn probe(ca: &LocalCa) -> (NodeFiles, Arc<InternalTls>) {
    let f = files(ca, &ca.issue_node(9).unwrap());
    let tls = load(9, &f);
    (f, tls)
}

async fn dial(tls: &Arc<InternalTls>, expected: i32, address: &str) -> std::io::Result<()> {
    let mut connector = TlsConnector {
        tls: tls.clone(),
        expected,
        address: address.to_string(),
        local_ip: None,
    };
    let uri: tonic::codegen::http::Uri = format!("http://{address}").parse().unwrap();
    connector.call(uri).await.map(|_| ())
}

fn load(node: i32, files: &NodeFiles) -> Arc<InternalTls> {
    InternalTls::from_args(node, &files.args).unwrap().unwrap()
}

#[tokio::test]
async fn mutual_tls_proves_both_node_ids() {
    let ca = LocalCa::new("cluster CA").unwrap();
    let files1 = files(&ca, &ca.issue_node(1).unwrap());
    let files2 = files(&ca, &ca.issue_node(2).unwrap());
    let (node1, node2) = (load(1, &files1), load(2, &files2));
    let mut server = listen(Some(node1.clone())).await;

    assert_eq!(server.dial(&node2, 1).await.unwrap(), [Caller::Node(2)]);

    // The server is node 1: a broker that dials it as node 3 does not go on.
    let e = server.dial(&node2, 3).await.unwrap_err();
    assert!(
        e.to_string().contains("names node 1, expected node 3"),
        "{e}"
    );
    let (_f, probe) = probe(&ca);
    server.handed_on_nothing(&probe, 1).await;
}

#[tokio::test]
async fn a_peer_without_a_certificate_of_the_ca_is_not_accepted() {
    let ca = LocalCa::new("cluster CA").unwrap();
    let other_ca = LocalCa::new("someone else's CA").unwrap();
    let files1 = files(&ca, &ca.issue_node(1).unwrap());
    let mut server = listen(Some(load(1, &files1))).await;
    let (_f, probe) = probe(&ca);

    // Signed by another CA, naming node 2 (and trusting the other CA: it learns
    // nothing from the server either).
    let stranger_files = files(&other_ca, &other_ca.issue_node(2).unwrap());
    let stranger = load(2, &stranger_files);
    assert!(server.dial(&stranger, 1).await.is_err());
    server.handed_on_nothing(&probe, 1).await;

    // No client certificate at all.
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeVerifier {
            roots: Arc::new(roots_of(&ca)),
            expected: 1,
            provider: provider(),
        }))
        .with_no_client_auth();
    let address = server.address.clone();
    let (read, seen) = server
        .while_accepting(async {
            let tcp = TcpStream::connect(&address).await?;
            let name = ServerName::try_from("localhost").unwrap();
            let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            // TLS 1.3 reports a refused client certificate on the first read.
            use tokio::io::AsyncReadExt;
            stream.read(&mut [0u8; 1]).await
        })
        .await;
    assert!(matches!(read, Err(_) | Ok(0)), "{read:?}");
    assert_eq!(seen, []);
    server.handed_on_nothing(&probe, 1).await;

    // Signed by the CA, but naming no node: the handshake completes, the connection
    // goes no further.
    let anonymous = ca.issue(2, vec![]).unwrap();
    let verifier = Arc::new(NodeVerifier {
        roots: Arc::new(roots_of(&ca)),
        expected: 1,
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![der(&anonymous.certificate_pem).into()],
            PrivateKeyDer::from_pem_slice(anonymous.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let address = server.address.clone();
    let (read, seen) = server
        .while_accepting(async {
            let tcp = TcpStream::connect(&address).await?;
            let name = ServerName::try_from("localhost").unwrap();
            let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            use tokio::io::AsyncReadExt;
            stream.read(&mut [0u8; 1]).await
        })
        .await;
    assert!(matches!(read, Err(_) | Ok(0)), "{read:?}");
    assert_eq!(seen, []);
    server.handed_on_nothing(&probe, 1).await;
}

fn roots_of(ca: &LocalCa) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca.certificate_pem()).into()).unwrap();
    roots
}

#[tokio::test]
async fn a_plaintext_listener_marks_callers_unauthenticated() {
    let mut server = listen(None).await;
    let _tcp = TcpStream::connect(&server.address).await.unwrap();
    assert_eq!(server.next_caller().await, Caller::Unauthenticated);
}

#[tokio::test]
async fn rotated_files_are_used_by_new_connections() {
    let ca = LocalCa::new("first CA").unwrap();
    let files1 = files(&ca, &ca.issue_node(1).unwrap());
    let files2 = files(&ca, &ca.issue_node(2).unwrap());
    let (node1, node2) = (load(1, &files1), load(2, &files2));
    let mut server = listen(Some(node1.clone())).await;
    assert_eq!(server.dial(&node2, 1).await.unwrap(), [Caller::Node(2)]);

    // Both nodes move to a new CA, in place.
    let next = LocalCa::new("second CA").unwrap();
    write(files1._dir.path(), &next, &next.issue_node(1).unwrap());
    write(files2._dir.path(), &next, &next.issue_node(2).unwrap());
    assert_eq!(server.dial(&node2, 1).await.unwrap(), [Caller::Node(2)]);
    // A peer still on the old CA is no longer trusted.
    let old_files = files(&ca, &ca.issue_node(2).unwrap());
    assert!(server.dial(&load(2, &old_files), 1).await.is_err());
    let (_f, probe) = probe(&next);
    server.handed_on_nothing(&probe, 1).await;

    // A rotation caught half-written keeps the material that works.
    std::fs::write(files1._dir.path().join("node.pem"), "-----BEGIN CERT").unwrap();
    assert_eq!(server.dial(&node2, 1).await.unwrap(), [Caller::Node(2)]);
}
