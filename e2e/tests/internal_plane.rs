//! The internal plane as a hostile peer meets it. Three brokers talk to each other over
//! mutual TLS, each with a certificate naming its node id (SAN URI `fjord://node/<id>`)
//! from a CA made here; the cluster forms and serves produce and fetch. Then the
//! forgeries that once cost acknowledged records are sent to every broker's internal
//! listener: a `Controller.Submit` carrying a `PartitionChanged` record that makes a
//! follower the sole ISR member and leader, a `Replica.Fetch` claiming to be follower 3,
//! a `RegisterBroker` claiming id 3; each from a peer without TLS, one without a client
//! certificate, one whose certificate comes from another CA, and one with a valid
//! certificate of another node. Every one is refused, no refusal names the partition,
//! its leader or an epoch, and the metadata (leader, ISR, leader epoch, brokers) reads
//! the same afterwards.
//!
//! On a plaintext plane the forged record is refused too (a broker asks the controller
//! for changes; it never hands it leader or ISR records).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use fjord_broker::metadata::image::{MetadataRecord, PartitionState};
use fjord_broker::quorum::internal_ca::LocalCa;
use fjord_broker::quorum::pb;
use fjord_broker::quorum::ControllerRequest;
use fjord_broker::server::replica_wire::proto as replica;
use fjord_client::{Client, ClientConfig, FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::{unique_topic, Cluster, ClusterOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

const DEADLINE: Duration = Duration::from_secs(60);

/// A CA made for the test (the one `fjord dev` makes), and the files of the
/// certificates it issues.
struct Authority {
    ca: LocalCa,
    dir: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Result<Authority> {
        let ca = LocalCa::new(name)?;
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.pem"), ca.certificate_pem())?;
        Ok(Authority { ca, dir })
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Files (certificate, key) of a certificate naming `node`.
    fn node(&self, node: u32) -> Result<(PathBuf, PathBuf)> {
        let issued = self.ca.issue_node(i32::try_from(node)?)?;
        let cert = self.dir.join(format!("node-{node}.pem"));
        let key_file = self.dir.join(format!("node-{node}.key"));
        std::fs::write(&cert, issued.certificate_pem)?;
        std::fs::write(&key_file, issued.key_pem)?;
        Ok((cert, key_file))
    }

    fn broker_args(&self, node: u32) -> Result<Vec<String>> {
        let (cert, key) = self.node(node)?;
        Ok(vec![
            format!("--internal-ssl-certificate={}", cert.display()),
            format!("--internal-ssl-key={}", key.display()),
            format!("--internal-ssl-ca={}", self.ca().display()),
        ])
    }
}

/// Who the hostile peer is.
#[derive(Debug, Clone)]
enum Peer {
    /// No TLS at all.
    Plaintext,
    /// TLS, but no client certificate.
    NoCertificate,
    /// TLS with this certificate chain and key.
    Certificate {
        what: &'static str,
        cert: PathBuf,
        key: PathBuf,
    },
}

/// A client that does not check who the server is (an attacker need not), and
/// presents the certificate of its choice.
#[derive(Debug)]
struct TrustAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Clone)]
struct TlsDialer {
    address: String,
    config: Arc<rustls::ClientConfig>,
}

type Dialed = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tonic::codegen::Service<tonic::codegen::http::Uri> for TlsDialer {
    type Response = Dialed;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Dialed, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(&this.address).await?;
            let name = ServerName::try_from("fjord-internal").expect("a DNS name");
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Plaintext => f.write_str("a peer without TLS"),
            Peer::NoCertificate => f.write_str("a TLS peer without a client certificate"),
            Peer::Certificate { what, .. } => write!(f, "a peer with {what}"),
        }
    }
}

impl Peer {
    async fn channel(&self, address: &str) -> Result<Channel, String> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)));
        let mut config = match self {
            Peer::Plaintext => return endpoint.connect().await.map_err(|e| format!("{e:?}")),
            Peer::NoCertificate => builder.with_no_client_auth(),
            Peer::Certificate { cert, key, .. } => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| e.to_string())?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| e.to_string())?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| e.to_string())?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let dialer = TlsDialer {
            address: address.to_string(),
            config: Arc::new(config),
        };
        endpoint
            .connect_with_connector(dialer)
            .await
            .map_err(|e| format!("{e:?}"))
    }
}

/// What became of one forged call.
#[derive(Debug)]
enum Outcome {
    /// The listener did the forger's bidding.
    Accepted(String),
    /// Answered, but not done (e.g. NOT_CONTROLLER from a broker that is not the
    /// controller): the broker-level answer code.
    NotDone(i32),
    /// Refused before anything was done: the status or the connection failure.
    Refused(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Accepted(what) => write!(f, "accepted: {what}"),
            Outcome::NotDone(code) => write!(f, "answered with error code {code}"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

fn refused(status: tonic::Status) -> Outcome {
    Outcome::Refused(format!("{:?}: {}", status.code(), status.message()))
}

/// The forgeries, against one broker's internal listener.
struct Forgery {
    topic_id: uuid::Uuid,
    /// Partition 0 as the forger wants it: the claimed follower as sole ISR member
    /// and leader, a leader epoch ahead.
    forged: PartitionState,
    claimed: i32,
}

impl Forgery {
    async fn submit_partition_changed(&self, peer: &Peer, address: &str, as_node: i32) -> Outcome {
        let channel = match peer.channel(address).await {
            Ok(c) => c,
            Err(e) => return Outcome::Refused(e),
        };
        let request = ControllerRequest::Records(vec![MetadataRecord::PartitionChanged {
            topic_id: self.topic_id,
            partition: self.forged.clone(),
        }]);
        let answer = pb::controller_client::ControllerClient::new(channel)
            .submit(pb::SubmitRequest {
                broker_id: as_node,
                broker_epoch: -1,
                request_json: serde_json::to_vec(&request).unwrap().into(),
            })
            .await;
        match answer {
            Err(status) => refused(status),
            Ok(a) if a.get_ref().error_code == 0 => Outcome::Accepted(format!("{a:?}")),
            Ok(a) => Outcome::NotDone(a.get_ref().error_code),
        }
    }

    async fn register_broker(&self, peer: &Peer, address: &str) -> Outcome {
        let channel = match peer.channel(address).await {
            Ok(c) => c,
            Err(e) => return Outcome::Refused(e),
        };
        let answer = pb::controller_client::ControllerClient::new(channel)
            .register_broker(pb::RegisterBrokerRequest {
                broker_id: self.claimed,
                host: "127.0.0.1".into(),
                port: 1,
                internal_address: "127.0.0.1:1".into(),
                ..Default::default()
            })
            .await;
        match answer {
            Err(status) => refused(status),
            Ok(a) if a.get_ref().error_code == 0 => Outcome::Accepted(format!("{a:?}")),
            Ok(a) => Outcome::NotDone(a.get_ref().error_code),
        }
    }

    async fn replica_fetch(&self, peer: &Peer, leader: &str, replica_id: i32) -> Outcome {
        let channel = match peer.channel(leader).await {
            Ok(c) => c,
            Err(e) => return Outcome::Refused(e),
        };
        let answer = replica::replica_client::ReplicaClient::new(channel)
            .fetch(replica::FetchRequest {
                replica_id,
                topic_id: self.topic_id.as_bytes().to_vec().into(),
                partition: 0,
                current_leader_epoch: self.forged.leader_epoch - 1,
                fetch_offset: 0,
                last_fetched_epoch: -1,
                max_bytes: 1 << 20,
                max_wait_ms: 0,
                replica_epoch: None,
            })
            .await;
        match answer {
            Err(status) => refused(status),
            Ok(a) if !a.get_ref().records.is_empty() => {
                Outcome::Accepted(format!("{} bytes of records", a.get_ref().records.len()))
            }
            Ok(a) => Outcome::NotDone(a.get_ref().error_code),
        }
    }
}

/// What the metadata says of the test's partition and the brokers.
async fn observed(cluster: &Cluster, client: &Client, topic: &str) -> Result<String> {
    let leader = cluster.leader(topic, 0).await.context("no leader")?;
    let mut brokers: Vec<_> = client
        .metadata(Some(&[topic]))
        .await?
        .brokers
        .into_iter()
        .map(|b| (b.node_id, b.host, b.port))
        .collect();
    brokers.sort();
    Ok(format!("{leader:?} brokers {brokers:?}"))
}

async fn produce_and_read_back(client: &Client, topic: &str, value: &str) -> Result<()> {
    let produced = client
        .produce(
            topic,
            0,
            &[ProduceRecord::new(None::<String>, value.to_string())],
            &ProduceOptions::default(),
        )
        .await?;
    let fetched = client
        .fetch(topic, 0, produced.base_offset, &FetchOptions::default())
        .await?;
    let first = fetched.records.first().context("nothing read back")?;
    ensure!(
        first.value.as_deref() == Some(value.as_bytes()),
        "read back {first:?}, produced {value:?}"
    );
    Ok(())
}

/// A cluster of three, a topic on all three with a record in it, and the forgery
/// aimed at its partition 0.
async fn setup(options: ClusterOptions) -> Result<(Cluster, Client, String, Forgery)> {
    let cluster = Cluster::start(options).await?;
    let bootstrap: Vec<String> = cluster.bootstrap().split(',').map(String::from).collect();
    let client = Client::connect(&bootstrap, ClientConfig::default()).await?;
    let topic = unique_topic("internal");
    let created = client.create_topic(NewTopic::new(&topic, 1, 3)).await?;
    produce_and_read_back(&client, &topic, "before").await?;
    let leader = cluster
        .wait_for_leader(&topic, 0, DEADLINE, "with 3 in sync", |l| l.isr.len() == 3)
        .await?;
    // The follower to promote: any broker but the leader (3 unless 3 leads).
    let claimed = if leader.node_id == 3 { 2 } else { 3 };
    let forged = PartitionState {
        partition: 0,
        leader: claimed,
        leader_epoch: leader.leader_epoch + 1,
        replicas: vec![1, 2, 3],
        isr: vec![claimed],
        partition_epoch: 100,
        adding_replicas: vec![],
        removing_replicas: vec![],
        offline_replicas: vec![],
    };
    Ok((
        cluster,
        client,
        topic,
        Forgery {
            topic_id: created.topic_id,
            forged,
            claimed,
        },
    ))
}

/// The refusal tells nothing about the partition: no topic, no id, no epoch.
fn check_refusal(what: &str, outcome: &Outcome, topic: &str, forgery: &Forgery) -> Result<()> {
    let Outcome::Refused(text) = outcome else {
        bail!("{what}: not refused, {outcome}");
    };
    let lower = text.to_lowercase();
    for secret in [
        topic.to_lowercase(),
        forgery.topic_id.to_string(),
        "epoch".into(),
        "leader".into(),
        "isr".into(),
    ] {
        ensure!(
            !lower.contains(&secret),
            "{what}: the refusal tells {secret:?}: {text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_internal_calls_are_refused_under_mutual_tls() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Authority::new(dir.path(), "cluster-ca")?;
    let stranger_ca = Authority::new(dir.path(), "stranger-ca")?;
    let mut broker_args = BTreeMap::new();
    for node in 1..=3 {
        broker_args.insert(node, ca.broker_args(node)?);
    }
    let (cluster, client, topic, forgery) = setup(ClusterOptions {
        broker_args,
        ..ClusterOptions::default()
    })
    .await?;
    let before = observed(&cluster, &client, &topic).await?;

    let leader = cluster
        .leader(&topic, 0)
        .await
        .context("no leader")?
        .node_id;
    let claimed = forgery.claimed;
    // A broker of the cluster that is neither the claimed node nor the leader: its
    // valid certificate speaks for it alone.
    let other = (1..=3).find(|n| *n != claimed && *n != leader).unwrap();
    let (stranger_cert, stranger_key) = stranger_ca.node(claimed as u32)?;
    let (other_cert, other_key) = ca.node(other as u32)?;
    let (outsider_cert, outsider_key) = ca.node(4)?;
    let peers = [
        Peer::Plaintext,
        Peer::NoCertificate,
        Peer::Certificate {
            what: "another CA's certificate naming the claimed node",
            cert: stranger_cert,
            key: stranger_key,
        },
        Peer::Certificate {
            what: "a valid certificate of another broker",
            cert: other_cert.clone(),
            key: other_key.clone(),
        },
    ];
    let leader_address = cluster.broker(leader).internal_addr();
    for peer in &peers {
        for node in cluster.node_ids() {
            let address = cluster.broker(node).internal_addr();
            let outcome = forgery
                .submit_partition_changed(peer, &address, claimed)
                .await;
            check_refusal(
                &format!("{peer}: Submit(PartitionChanged) to {node}"),
                &outcome,
                &topic,
                &forgery,
            )?;
            let outcome = forgery.register_broker(peer, &address).await;
            check_refusal(
                &format!("{peer}: RegisterBroker({claimed}) to {node}"),
                &outcome,
                &topic,
                &forgery,
            )?;
        }
        let outcome = forgery.replica_fetch(peer, &leader_address, claimed).await;
        check_refusal(
            &format!("{peer}: Replica.Fetch as {claimed}"),
            &outcome,
            &topic,
            &forgery,
        )?;
    }
    // A proved broker is told no more than "permission denied", even in its own name:
    // a broker asks for changes and never submits leader or ISR records, and a node
    // that replicates nothing of the partition fetches nothing of it.
    let other_peer = &peers[3];
    let outsider = Peer::Certificate {
        what: "a valid certificate of a node outside the cluster",
        cert: outsider_cert,
        key: outsider_key,
    };
    let mut proved = Vec::new();
    for node in cluster.node_ids() {
        let address = cluster.broker(node).internal_addr();
        proved.push(
            forgery
                .submit_partition_changed(other_peer, &address, claimed)
                .await,
        );
        proved.push(
            forgery
                .submit_partition_changed(other_peer, &address, other)
                .await,
        );
        proved.push(forgery.register_broker(other_peer, &address).await);
    }
    proved.push(
        forgery
            .replica_fetch(other_peer, &leader_address, claimed)
            .await,
    );
    proved.push(forgery.replica_fetch(&outsider, &leader_address, 4).await);
    for outcome in &proved {
        ensure!(
            matches!(outcome, Outcome::Refused(text) if text == "PermissionDenied: permission denied"),
            "a proved but unentitled peer: {outcome}"
        );
    }

    let after = observed(&cluster, &client, &topic).await?;
    ensure!(
        before == after,
        "the metadata changed: before {before}, after {after}"
    );
    produce_and_read_back(&client, &topic, "after").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_metadata_record_is_refused_on_a_plaintext_plane() -> Result<()> {
    let (cluster, client, topic, forgery) = setup(ClusterOptions::default()).await?;
    let before = observed(&cluster, &client, &topic).await?;
    for node in cluster.node_ids() {
        let address = cluster.broker(node).internal_addr();
        let outcome = forgery
            .submit_partition_changed(&Peer::Plaintext, &address, forgery.claimed)
            .await;
        check_refusal(
            &format!("Submit(PartitionChanged) to {node}"),
            &outcome,
            &topic,
            &forgery,
        )?;
    }
    let after = observed(&cluster, &client, &topic).await?;
    ensure!(
        before == after,
        "the metadata changed: before {before}, after {after}"
    );
    Ok(())
}
