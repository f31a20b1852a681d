//! TLS for connections to SSL listeners (rustls with the ring provider): the CAs a
//! broker's certificate must chain to, and optionally the client's own certificate for
//! listeners that require one (`ssl.client.auth=required`). The server name checked
//! against the broker's certificate is the host dialled, as a Kafka client does
//! (`ssl.endpoint.identification.algorithm=https`).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// TLS settings of a client: parsed once, shared by every connection.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ClientConfig>,
    /// Whether a client certificate is presented, for `Debug`.
    client_auth: bool,
}

/// Keys stay out of logs.
impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_certificate", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn pem_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what}: {e}"))
}

fn certificates(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what}: no PEM certificate")));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Trust the CA certificates of `trusted_ca_pem` (one or more PEM certificates, as
    /// a CA bundle during a CA renewal holds the old and the new CA), and present no
    /// client certificate.
    pub fn new(trusted_ca_pem: &str) -> Result<TlsConfig> {
        Self::build(trusted_ca_pem, None)
    }

    /// As [`TlsConfig::new`], presenting the client certificate chain of `chain_pem`
    /// (leaf first) with its private key `key_pem` (PKCS#8, PKCS#1 or SEC1 PEM).
    pub fn with_client_certificate(
        trusted_ca_pem: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<TlsConfig> {
        Self::build(trusted_ca_pem, Some((chain_pem, key_pem)))
    }

    fn build(trusted_ca_pem: &str, identity: Option<(&str, &str)>) -> Result<TlsConfig> {
        let mut roots = RootCertStore::empty();
        for ca in certificates("trusted CA", trusted_ca_pem)? {
            roots
                .add(ca)
                .map_err(|e| pem_error("trusted CA certificate", e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| pem_error("protocol versions", e))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = certificates("client certificate", chain)?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| pem_error("client private key", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| pem_error("client certificate and key", e))?
            }
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            client_auth: identity.is_some(),
        })
    }

    /// Runs the TLS handshake on `stream` to `addr` (`host:port`); the broker's
    /// certificate must name `host`.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = server_name(addr)?;
        TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
    }
}

/// The host of `host:port` (IPv6 in brackets) as the name the certificate must carry.
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host:?} is no TLS server name: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_dialled() {
        let name = |a: &str| server_name(a).map(|n| n.to_str().into_owned());
        assert_eq!(
            name("demo-bootstrap.ns.svc:9091").unwrap(),
            "demo-bootstrap.ns.svc"
        );
        assert_eq!(name("127.0.0.1:9092").unwrap(), "127.0.0.1");
        assert_eq!(name("[::1]:9092").unwrap(), "::1");
        assert!(name("bad host:1").is_err());
    }

    #[test]
    fn pem_without_certificates_is_refused_by_name() {
        let err = TlsConfig::new("not a pem").unwrap_err().to_string();
        assert!(err.contains("trusted CA: no PEM certificate"), "{err}");
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let pem = ca.cert.pem();
        assert!(TlsConfig::new(&pem).is_ok());
        let err = TlsConfig::with_client_certificate(&pem, &pem, "no key")
            .unwrap_err()
            .to_string();
        assert!(err.contains("client private key"), "{err}");
    }
}
