//! TLS settings of the SSL and SASL_SSL listeners, with the names of Kafka's
//! `ssl.keystore.type=PEM` / `ssl.truststore.type=PEM` settings.

use std::path::PathBuf;

/// Whether a TLS listener asks clients for a certificate (ssl.client.auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SslClientAuth {
    /// No client certificate is asked for; clients are `User:ANONYMOUS`.
    None,
    /// A certificate is asked for; a client without one is `User:ANONYMOUS`, one with
    /// an untrusted certificate is refused.
    Requested,
    /// A client without a certificate from the truststore is refused.
    Required,
}

/// TLS settings shared by every TLS listener.
#[derive(Debug, Clone, clap::Args)]
pub struct SslConfig {
    /// PEM file with this broker's certificate chain, leaf first
    /// (ssl.keystore.location with ssl.keystore.type=PEM); it may hold the private key
    /// too. Needed when a listener is SSL or SASL_SSL. Re-read when it changes.
    #[arg(long, env = "FJORD_SSL_KEYSTORE_LOCATION")]
    pub ssl_keystore_location: Option<PathBuf>,

    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1, unencrypted), when it is
    /// not in --ssl-keystore-location (Kubernetes TLS secrets keep tls.key apart).
    #[arg(long, env = "FJORD_SSL_KEY_LOCATION")]
    pub ssl_key_location: Option<PathBuf>,

    /// PEM file with the CA certificates that client certificates must chain to
    /// (ssl.truststore.location with ssl.truststore.type=PEM); needed by
    /// --ssl-client-auth requested or required.
    #[arg(long, env = "FJORD_SSL_TRUSTSTORE_LOCATION")]
    pub ssl_truststore_location: Option<PathBuf>,

    /// Ask TLS clients for a certificate (ssl.client.auth).
    #[arg(
        long,
        env = "FJORD_SSL_CLIENT_AUTH",
        value_enum,
        default_value = "none"
    )]
    pub ssl_client_auth: SslClientAuth,

    /// How a client certificate's subject (RFC 2253, `CN=x,OU=y,O=z`) becomes the
    /// principal's name (ssl.principal.mapping.rules): `RULE:pattern/replacement/[LU]`
    /// entries tried in order, `DEFAULT` keeping the subject as it is.
    #[arg(
        long,
        env = "FJORD_SSL_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    pub ssl_principal_mapping_rules: String,

    /// How often the keystore, key and truststore files are checked for changes; new
    /// handshakes use the new files, and a file that does not load is logged and the
    /// files in use kept.
    #[arg(long, env = "FJORD_SSL_RELOAD_INTERVAL_MS", default_value_t = 10_000)]
    pub ssl_reload_interval_ms: u64,
}

impl SslConfig {
    /// Check the settings a TLS listener needs, without reading the files.
    pub fn validate(&self, any_tls_listener: bool) -> Result<(), String> {
        crate::auth::ssl_principal::SslPrincipalMapper::parse(&self.ssl_principal_mapping_rules)
            .map_err(|e| e.to_string())?;
        if self.ssl_reload_interval_ms < 100 {
            return Err(format!(
                "--ssl-reload-interval-ms {} must be >= 100",
                self.ssl_reload_interval_ms
            ));
        }
        if !any_tls_listener {
            return Ok(());
        }
        if self.ssl_keystore_location.is_none() {
            return Err(
                "an SSL or SASL_SSL listener needs --ssl-keystore-location (PEM certificate chain)"
                    .into(),
            );
        }
        if self.ssl_client_auth != SslClientAuth::None && self.ssl_truststore_location.is_none() {
            let auth = match self.ssl_client_auth {
                SslClientAuth::Requested => "requested",
                _ => "required",
            };
            return Err(format!(
                "--ssl-client-auth {auth} needs --ssl-truststore-location (PEM CA certificates)"
            ));
        }
        Ok(())
    }
}
