//! TLS on SSL and SASL_SSL listeners: rustls with PEM files, client certificates
//! verified against the truststore, the client's principal from its certificate, and
//! the files re-read when they change (Kubernetes rotates secrets in place).
//!
//! Building a server configuration from file contents is pure ([`server_config`]);
//! [`TlsAcceptor`] reads the files and swaps the configuration new handshakes use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use ::ktls::CorkStream;

use super::ktls::{self, KernelTls, TlsMode};
use super::stream::ClientStream;
use crate::auth::ssl_principal::{subject_rfc2253, SslPrincipalError, SslPrincipalMapper};
use crate::auth::Principal;
use crate::config::listeners::{ListenerName, Listeners};
use crate::config::ssl::{SslClientAuth, SslConfig};

/// Why TLS cannot be set up, or a client not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {why}")]
    Pem { what: &'static str, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("truststore: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake not complete within {0} ms")]
    HandshakeTimeout(u64),
    #[error(transparent)]
    Principal(#[from] SslPrincipalError),
    #[error("{0}")]
    Listeners(String),
    #[error("listener {0} has no TLS configuration")]
    NotTls(ListenerName),
    #[error("handing the connection to kernel TLS: {0}")]
    KernelTls(String),
}

/// The contents of the PEM files, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub keystore: Vec<u8>,
    /// The separate key file, if any.
    pub key: Option<Vec<u8>>,
    pub truststore: Option<Vec<u8>>,
}

/// A rustls server configuration from PEM contents. With `kernel_tls`, the traffic
/// secrets can be handed to the kernel after the handshake, and no TLS 1.3 session
/// ticket is sent: a ticket written after the handshake would take a record sequence
/// number the kernel does not know of (and Kafka clients do not resume sessions).
pub fn server_config(
    files: &TlsFiles,
    client_auth: SslClientAuth,
    kernel_tls: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.keystore)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error("keystore", e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: "keystore",
            why: "no CERTIFICATE in the PEM file".into(),
        });
    }
    let key_pem = files.key.as_deref().unwrap_or(&files.keystore);
    if std::str::from_utf8(key_pem).is_ok_and(|s| s.contains("ENCRYPTED PRIVATE KEY")) {
        return Err(TlsError::Pem {
            what: "private key",
            why: "encrypted keys are not supported; give an unencrypted PEM key".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem_error("private key", e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (client_auth, &files.truststore) {
        (SslClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Pem {
                what: "truststore",
                why: "client authentication needs a truststore".into(),
            })
        }
        (auth, Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(ca.map_err(|e| pem_error("truststore", e))?)
                    .map_err(TlsError::Config)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == SslClientAuth::Requested {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    if kernel_tls {
        config.enable_secret_extraction = true;
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

fn pem_error(what: &'static str, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        why: e.to_string(),
    }
}

/// The principal of a client: `User:<mapped subject>` of its certificate, or
/// `User:ANONYMOUS` without one (as Kafka's default principal builder).
pub fn client_principal(
    peer_certificates: Option<&[CertificateDer<'_>]>,
    mapper: &SslPrincipalMapper,
) -> Result<Principal, SslPrincipalError> {
    match peer_certificates.and_then(|c| c.first()) {
        None => Ok(Principal::anonymous()),
        Some(leaf) => Ok(Principal::user(mapper.map(&subject_rfc2253(leaf)?)?)),
    }
}

/// One server configuration for each client authentication mode in `modes`, from the
/// same files.
fn server_configs(
    files: &TlsFiles,
    modes: &[SslClientAuth],
    kernel_tls: bool,
) -> Result<Vec<(SslClientAuth, Arc<ServerConfig>)>, TlsError> {
    let mut configs: Vec<(SslClientAuth, Arc<ServerConfig>)> = Vec::new();
    for &mode in modes {
        if !configs.iter().any(|(m, _)| *m == mode) {
            configs.push((mode, server_config(files, mode, kernel_tls)?));
        }
    }
    Ok(configs)
}

/// What the TLS listeners hand their new connections to: the configurations in use (one
/// per ssl.client.auth mode the listeners have), swapped together when the files change.
pub struct TlsAcceptor {
    settings: SslConfig,
    mapper: SslPrincipalMapper,
    /// Each TLS listener's ssl.client.auth.
    modes: Vec<(ListenerName, SslClientAuth)>,
    /// What the kernel offers, decided once at start.
    kernel: KernelTls,
    current: RwLock<Vec<(SslClientAuth, Arc<ServerConfig>)>>,
    /// The files the current configuration came from, and the last files that did not
    /// load (so that a bad file is logged once, not at every check).
    seen: Mutex<(TlsFiles, Option<TlsFiles>)>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Reads the files for the TLS ones of `listeners`; a start with files that do not
    /// load fails. `kernel` is what the kernel offers for record encryption.
    pub fn load(
        settings: &SslConfig,
        listeners: &Listeners,
        kernel: KernelTls,
    ) -> Result<Arc<TlsAcceptor>, TlsError> {
        let mapper = SslPrincipalMapper::parse(&settings.ssl_principal_mapping_rules)?;
        let modes = settings
            .client_auth_by_listener(listeners)
            .map_err(TlsError::Listeners)?;
        let files = read_files(settings)?;
        let configs = server_configs(&files, &modes_in_use(&modes), kernel.is_available())?;
        Ok(Arc::new(TlsAcceptor {
            settings: settings.clone(),
            mapper,
            modes,
            kernel,
            current: RwLock::new(configs),
            seen: Mutex::new((files, None)),
        }))
    }

    /// Re-reads the files; when they changed and load, new handshakes use them. Returns
    /// whether the configuration changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = read_files(&self.settings)?;
        let mut seen = self.seen.lock();
        if files == seen.0 || Some(&files) == seen.1.as_ref() {
            return Ok(false);
        }
        match server_configs(
            &files,
            &modes_in_use(&self.modes),
            self.kernel.is_available(),
        ) {
            Ok(configs) => {
                *self.current.write() = configs;
                *seen = (files, None);
                Ok(true)
            }
            Err(e) => {
                seen.1 = Some(files);
                Err(e)
            }
        }
    }

    /// The ssl.client.auth of a TLS listener.
    pub fn client_auth(&self, listener: &ListenerName) -> Option<SslClientAuth> {
        self.modes
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, m)| *m)
    }

    /// What the kernel offers for record encryption.
    pub fn kernel(&self) -> &KernelTls {
        &self.kernel
    }

    /// The TLS handshake of a connection to `listener`, within `timeout_ms`; the
    /// client's principal; and the connection, handed to the kernel where it offers the
    /// negotiated cipher.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        listener: &ListenerName,
        timeout_ms: u64,
    ) -> Result<(ClientStream, Principal, TlsMode), TlsError> {
        let mode = self
            .client_auth(listener)
            .ok_or_else(|| TlsError::NotTls(listener.clone()))?;
        let config = self
            .current
            .read()
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| TlsError::NotTls(listener.clone()))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        let timed_out = |_| TlsError::HandshakeTimeout(timeout_ms);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        if !self.kernel.is_available() {
            let stream = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
                .await
                .map_err(timed_out)?
                .map_err(TlsError::Handshake)?;
            let principal = client_principal(stream.get_ref().1.peer_certificates(), &self.mapper)?;
            return Ok((
                ClientStream::Tls(Box::new(stream)),
                principal,
                TlsMode::Userspace,
            ));
        }
        // Read record by record, so that at the hand-over rustls holds no partial
        // record the kernel would never see.
        let stream = tokio::time::timeout_at(deadline, acceptor.accept(CorkStream::new(tcp)))
            .await
            .map_err(timed_out)?
            .map_err(TlsError::Handshake)?;
        let connection = stream.get_ref().1;
        let principal = client_principal(connection.peer_certificates(), &self.mapper)?;
        match self.kernel.mode_for(connection.negotiated_cipher_suite()) {
            TlsMode::Userspace => Ok((
                ClientStream::Tls(Box::new(stream)),
                principal,
                TlsMode::Userspace,
            )),
            TlsMode::Kernel => {
                // The secrets are out of rustls once this starts: a failure closes the
                // connection (the probe makes one unlikely).
                let stream = tokio::time::timeout_at(deadline, ktls::hand_over(stream))
                    .await
                    .map_err(timed_out)?
                    .map_err(|e| TlsError::KernelTls(e.to_string()))?;
                Ok((ClientStream::KernelTls(stream), principal, TlsMode::Kernel))
            }
        }
    }
}

fn modes_in_use(modes: &[(ListenerName, SslClientAuth)]) -> Vec<SslClientAuth> {
    modes.iter().map(|(_, m)| *m).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_files(settings: &SslConfig) -> Result<TlsFiles, TlsError> {
    let keystore = settings
        .ssl_keystore_location
        .as_deref()
        .ok_or_else(|| TlsError::Pem {
            what: "keystore",
            why: "--ssl-keystore-location is not set".into(),
        })?;
    Ok(TlsFiles {
        keystore: read(keystore)?,
        key: settings.ssl_key_location.as_deref().map(read).transpose()?,
        truststore: settings
            .ssl_truststore_location
            .as_deref()
            .map(read)
            .transpose()?,
    })
}

/// Checks the files every --ssl-reload-interval-ms until `shutdown`.
pub async fn watch(acceptor: Arc<TlsAcceptor>, shutdown: CancellationToken) {
    let period = Duration::from_millis(acceptor.settings.ssl_reload_interval_ms);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let a = acceptor.clone();
        match tokio::task::spawn_blocking(move || a.reload()).await {
            Ok(Ok(true)) => tracing::info!("TLS certificates reloaded: new connections use them"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "TLS files changed but do not load; keeping the ones in use")
            }
            Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
        }
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
