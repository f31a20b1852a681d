//! Mutual TLS on the internal listener, and the node identity it proves.
//!
//! A broker's identity on the internal plane is its node id, bound to its certificate
//! by exactly one subject alternative name URI `fjord://node/<id>`. Both sides check
//! it: the listener requires a client certificate signed by the internal CA and takes
//! the caller's id from it (never from request fields); a broker dialing node N
//! accepts only a server certificate, signed by the same CA, that names node N. Every
//! node certificate therefore carries both the serverAuth and clientAuth extended key
//! usages. Host names play no part: a certificate names a node, not an address.
//!
//! The certificate, key and CA files are read again whenever one of them changes on
//! disk (Kubernetes rotates a mounted secret in place by swapping a symlink), so new
//! connections, accepted or dialed, use the new material; connections already open keep
//! theirs. A rotation caught half-written is logged and the previous material kept.
//!
//! Without `--internal-ssl-*` settings the listener is plaintext as before: callers are
//! not authenticated, and the broker says so once at start.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The scheme and path before the node id in a node certificate's SAN URI.
pub const NODE_URI_PREFIX: &str = "fjord://node/";

/// How long a peer may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once on the internal listener; further connections wait
/// in the kernel's backlog, so a flood of half-open peers costs bounded memory.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// The internal listener's TLS files (`--internal-ssl-*`), all three or none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InternalTlsArgs {
    /// PEM certificate chain (leaf first) this broker presents on the internal plane,
    /// as server and as client. Its SAN URI `fjord://node/<id>` must name --node-id.
    /// With --internal-ssl-key and --internal-ssl-ca it turns on mutual TLS between
    /// brokers; without the three, the internal listener is plaintext and unauthenticated.
    #[arg(
        long = "internal-ssl-certificate",
        env = "FJORD_INTERNAL_SSL_CERTIFICATE"
    )]
    pub certificate: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --internal-ssl-certificate.
    #[arg(long = "internal-ssl-key", env = "FJORD_INTERNAL_SSL_KEY")]
    pub key: Option<PathBuf>,

    /// PEM certificates of the CA that signs every broker's internal certificate; peers
    /// are trusted only through it.
    #[arg(long = "internal-ssl-ca", env = "FJORD_INTERNAL_SSL_CA")]
    pub ca: Option<PathBuf>,
}

impl InternalTlsArgs {
    /// The three files, or None for a plaintext internal plane; an error when only some
    /// are given, since a half-configured listener would silently stay open.
    pub fn files(&self) -> Result<Option<TlsFiles>, String> {
        match (&self.certificate, &self.key, &self.ca) {
            (None, None, None) => Ok(None),
            (Some(certificate), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })),
            _ => Err(
                "--internal-ssl-certificate, --internal-ssl-key and --internal-ssl-ca \
                 go together: give all three for mutual TLS between brokers, or none"
                    .to_string(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InternalTlsError {
    #[error("internal TLS file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("internal TLS file {path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("internal TLS certificate {path}: {what}")]
    Identity { path: PathBuf, what: String },
    #[error("internal TLS settings: {0}")]
    Rustls(String),
}

/// Why a certificate does not name one node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a parseable X.509 certificate")]
    Unparseable,
    #[error("no subject alternative name URI {NODE_URI_PREFIX}<id>")]
    Missing,
    #[error("more than one subject alternative name URI {NODE_URI_PREFIX}<id>")]
    Ambiguous,
    #[error("subject alternative name URI {0:?} does not end in a node id (0..=2147483647)")]
    BadId(String),
}

/// The node id a certificate names: its one SAN URI `fjord://node/<id>`.
pub fn node_identity(der: &[u8]) -> Result<i32, IdentityError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::Unparseable)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| IdentityError::Unparseable)?;
    let mut found = None;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        let x509_parser::extensions::GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(id) = uri.strip_prefix(NODE_URI_PREFIX) else {
            continue;
        };
        // Digits only: "+3", " 3" or "03" would let two spellings name one node.
        let parsed = (!id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && (id == "0" || !id.starts_with('0')))
        .then(|| id.parse::<i32>().ok())
        .flatten()
        .ok_or_else(|| IdentityError::BadId(uri.to_string()))?;
        if found.replace(parsed).is_some() {
            return Err(IdentityError::Ambiguous);
        }
    }
    found.ok_or(IdentityError::Missing)
}

/// Who called, as the internal listener knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The internal plane runs without TLS: the peer is not authenticated and is taken
    /// at its word, as before TLS existed.
    Unauthenticated,
    /// A peer that proved, by its certificate, to be this node.
    Node(i32),
}

/// What the listener attaches to every request of a connection (tonic's ConnectInfo).
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    pub caller: Caller,
    pub remote: Option<SocketAddr>,
}

/// The caller of a request that came through [`incoming`]. A request without the
/// listener's mark (which cannot happen on the internal listener) is nobody.
pub fn caller_of<T>(req: &tonic::Request<T>) -> Option<Caller> {
    req.extensions().get::<PeerInfo>().map(|p| p.caller)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files' identity on disk, to notice a rotation without reading them.
type Stamp = Vec<(u64, u64, u64, Option<SystemTime>)>;

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    [&files.certificate, &files.key, &files.ca]
        .into_iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.len(), m.modified().ok()))
        })
        .collect()
}

/// Certificates and keys as loaded from the files.
struct Material {
    stamp: Option<Stamp>,
    server: Arc<ServerConfig>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<RootCertStore>,
}

/// This broker's internal TLS: its identity, the CA, and the configs built from them.
pub struct InternalTls {
    node_id: i32,
    files: TlsFiles,
    current: Mutex<Arc<Material>>,
}

impl std::fmt::Debug for InternalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTls")
            .field("node_id", &self.node_id)
            .field("files", &self.files)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, InternalTlsError> {
    std::fs::read(path).map_err(|source| InternalTlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load(node_id: i32, files: &TlsFiles) -> Result<Material, InternalTlsError> {
    let stamp = stamp(files);
    let pem_err = |path: &Path, what: String| InternalTlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let chain = CertificateDer::pem_slice_iter(&read(&files.certificate)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&files.certificate, e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(pem_err(&files.certificate, "no CERTIFICATE block".into()));
    };
    let named = node_identity(leaf).map_err(|e| InternalTlsError::Identity {
        path: files.certificate.clone(),
        what: e.to_string(),
    })?;
    if named != node_id {
        return Err(InternalTlsError::Identity {
            path: files.certificate.clone(),
            what: format!("names node {named}, but this broker is --node-id {node_id}"),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| pem_err(&files.key, e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&files.ca)?) {
        let ca = ca.map_err(|e| pem_err(&files.ca, e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| pem_err(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(pem_err(&files.ca, "no CERTIFICATE block".into()));
    }
    let roots = Arc::new(roots);
    let rustls_err = |e: rustls::Error| InternalTlsError::Rustls(e.to_string());
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| InternalTlsError::Rustls(e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(rustls_err)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Material {
        stamp,
        server: Arc::new(server),
        chain,
        key: Arc::new(key),
        roots,
    })
}

impl InternalTls {
    /// Loads the files once, checking that the certificate names `node_id`. None when
    /// `args` configure no TLS.
    pub fn from_args(
        node_id: i32,
        args: &InternalTlsArgs,
    ) -> Result<Option<Arc<InternalTls>>, InternalTlsError> {
        let Some(files) = args.files().map_err(InternalTlsError::Rustls)? else {
            return Ok(None);
        };
        let material = load(node_id, &files)?;
        Ok(Some(Arc::new(InternalTls {
            node_id,
            files,
            current: Mutex::new(Arc::new(material)),
        })))
    }

    /// The material for a new connection: the files as they are now, reloaded if they
    /// changed since the last look.
    fn material(&self) -> Arc<Material> {
        let now = stamp(&self.files);
        let current = self.current.lock().clone();
        if now.is_none() || now == current.stamp {
            return current;
        }
        match load(self.node_id, &self.files) {
            Ok(fresh) => {
                tracing::info!(certificate = %self.files.certificate.display(), "internal TLS files changed: reloaded");
                let fresh = Arc::new(fresh);
                *self.current.lock() = fresh.clone();
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "internal TLS files changed but cannot be loaded: keeping the previous ones");
                // Remember the stamp so a broken rotation is reported once, not per
                // connection; the next change is looked at again.
                let kept = Arc::new(Material {
                    stamp: now,
                    server: current.server.clone(),
                    chain: current.chain.clone(),
                    key: current.key.clone(),
                    roots: current.roots.clone(),
                });
                *self.current.lock() = kept.clone();
                kept
            }
        }
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.material().server.clone()
    }

    /// A client config that presents this broker's certificate and accepts only a
    /// server whose certificate, signed by the CA, names node `expected`.
    pub fn client_config(&self, expected: i32) -> Result<Arc<ClientConfig>, InternalTlsError> {
        let m = self.material();
        let verifier = Arc::new(NodeVerifier {
            roots: m.roots.clone(),
            expected,
            provider: provider(),
        });
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| InternalTlsError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
            .map_err(|e| InternalTlsError::Rustls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        // The server name is not what is verified (the node id is): send none.
        config.enable_sni = false;
        Ok(Arc::new(config))
    }
}

/// Verifies a server certificate by the chain to the internal CA and the node id it
/// names, in place of a host name.
#[derive(Debug)]
struct NodeVerifier {
    roots: Arc<RootCertStore>,
    expected: i32,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match node_identity(end_entity) {
            Ok(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            Ok(id) => Err(rustls::Error::General(format!(
                "peer certificate names node {id}, expected node {}",
                self.expected
            ))),
            Err(e) => Err(rustls::Error::General(format!("peer certificate: {e}"))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One accepted internal connection, TLS or not, with who is on the other end.
pub enum InternalStream {
    Plain(TcpStream, PeerInfo),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, PeerInfo),
}

impl tonic::transport::server::Connected for InternalStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            InternalStream::Plain(_, p) | InternalStream::Tls(_, p) => *p,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            InternalStream::Plain($s, _) => {
                let $s = Pin::new($s);
                $e
            }
            InternalStream::Tls($s, _) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for InternalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for InternalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            InternalStream::Plain(s, _) => s.is_write_vectored(),
            InternalStream::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The internal listener's accepted connections, for tonic's `serve_with_incoming`:
/// plaintext ones as they come, TLS ones once the handshake proved the peer's node id
/// (a peer without a certificate from the CA, or whose certificate names no node, is
/// dropped after the handshake fails, having learnt nothing but the TLS alert).
///
/// The stream owns the listener and drives the handshakes itself (at most
/// [`MAX_PENDING_HANDSHAKES`] at once, each bounded by [`HANDSHAKE_TIMEOUT`]): once the
/// server drops it, the port is free.
pub fn incoming(listener: TcpListener, tls: Option<Arc<InternalTls>>) -> Incoming {
    let state = Accepting {
        listener,
        tls,
        handshakes: FuturesUnordered::new(),
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        let next = st.next().await;
        Some((Ok(next), st))
    }))
}

/// See [`incoming`].
pub type Incoming =
    Pin<Box<dyn futures::Stream<Item = std::io::Result<InternalStream>> + Send + 'static>>;

type Handshake = Pin<Box<dyn std::future::Future<Output = Option<InternalStream>> + Send>>;

struct Accepting {
    listener: TcpListener,
    tls: Option<Arc<InternalTls>>,
    handshakes: FuturesUnordered<Handshake>,
}

impl Accepting {
    async fn next(&mut self) -> InternalStream {
        loop {
            tokio::select! {
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(stream) = done {
                        return stream;
                    }
                }
                // Accept only with a handshake slot free, so the bound holds.
                accepted = self.listener.accept(), if self.handshakes.len() < MAX_PENDING_HANDSHAKES => {
                    let (stream, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Typically EMFILE: back off instead of spinning.
                            tracing::warn!(error = %e, "internal listener: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    match &self.tls {
                        None => {
                            let peer = PeerInfo {
                                caller: Caller::Unauthenticated,
                                remote: Some(remote),
                            };
                            return InternalStream::Plain(stream, peer);
                        }
                        Some(tls) => self.handshakes.push(Box::pin(handshake(tls.clone(), stream, remote))),
                    }
                }
            }
        }
    }
}

/// The server side of one TLS handshake: the stream and the node its peer proved to
/// be, or None (logged) when the peer did not prove one.
async fn handshake(
    tls: Arc<InternalTls>,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<InternalStream> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "internal listener: TLS handshake refused");
            return None;
        }
        Err(_) => {
            tracing::debug!(%remote, "internal listener: TLS handshake timed out");
            return None;
        }
    };
    let identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|leaf| node_identity(leaf));
    match identity {
        Some(Ok(node)) => {
            let peer = PeerInfo {
                caller: Caller::Node(node),
                remote: Some(remote),
            };
            Some(InternalStream::Tls(Box::new(stream), peer))
        }
        other => {
            tracing::info!(%remote, problem = ?other, "internal listener: peer certificate names no node; closing");
            None
        }
    }
}

/// Dials one peer over mutual TLS for tonic (`Endpoint::connect_with_connector_lazy`):
/// a TCP connection from `local_ip` when set, then a handshake that presents this
/// broker's certificate and requires the peer's to name node `expected`. The TLS
/// files are looked at again on every connect.
#[derive(Clone)]
pub struct TlsConnector {
    pub tls: Arc<InternalTls>,
    pub expected: i32,
    pub address: String,
    pub local_ip: Option<IpAddr>,
}

type ConnectFuture = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tonic::codegen::Service<tonic::codegen::http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::codegen::http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let config = this
                .tls
                .client_config(this.expected)
                .map_err(std::io::Error::other)?;
            let tcp = connect_tcp(&this.address, this.local_ip).await?;
            let name = ServerName::try_from("fjord-internal").expect("a valid DNS name");
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// A TCP connection to `address` (host:port), from `local_ip` when set.
async fn connect_tcp(address: &str, local_ip: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(ip) = local_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        match socket.connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address}: no address"),
        )
    }))
}

#[cfg(test)]
#[path = "internal_tls_tests.rs"]
mod tests;
