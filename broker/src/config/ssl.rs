//! TLS settings of the SSL and SASL_SSL listeners, with the names of Kafka's
//! `ssl.keystore.type=PEM` / `ssl.truststore.type=PEM` settings.

use std::path::PathBuf;

use super::listeners::{entries, ListenerError, ListenerName, Listeners, SecurityProtocol};

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

impl SslClientAuth {
    /// Kafka's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslClientAuth::None => "none",
            SslClientAuth::Requested => "requested",
            SslClientAuth::Required => "required",
        }
    }
}

/// Whether TLS connections hand record encryption to the kernel (kTLS), so that
/// fetches keep sendfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SslKtls {
    /// Where the kernel offers TLS (found once at start) and the negotiated cipher is
    /// one it takes; user space otherwise.
    Auto,
    /// Always in user space (rustls).
    Off,
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

    /// Ask TLS clients for a certificate (ssl.client.auth). As in Kafka (KIP-684) this
    /// applies to SSL listeners; SASL_SSL listeners ask for none unless
    /// --listener-ssl-client-auth sets their mode.
    #[arg(
        long,
        env = "FJORD_SSL_CLIENT_AUTH",
        value_enum,
        default_value = "none"
    )]
    pub ssl_client_auth: SslClientAuth,

    /// ssl.client.auth of single TLS listeners (Kafka's
    /// `listener.name.<name>.ssl.client.auth`): `NAME:MODE` entries, comma separated,
    /// MODE none, requested or required. Wins over --ssl-client-auth for those
    /// listeners; the certificate files stay the same for all.
    #[arg(long, env = "FJORD_LISTENER_SSL_CLIENT_AUTH", default_value = "")]
    pub listener_ssl_client_auth: String,

    /// How a client certificate's subject (RFC 2253, `CN=x,OU=y,O=z`) becomes the
    /// principal's name (ssl.principal.mapping.rules): `RULE:pattern/replacement/[LU]`
    /// entries tried in order, `DEFAULT` keeping the subject as it is.
    #[arg(
        long,
        env = "FJORD_SSL_PRINCIPAL_MAPPING_RULES",
        default_value = "DEFAULT"
    )]
    pub ssl_principal_mapping_rules: String,

    /// Kernel TLS for SSL and SASL_SSL connections: rustls does the handshake, the
    /// kernel encrypts the records, and fetches keep sendfile. auto uses it where the
    /// kernel offers it (logged once at start otherwise); off keeps every connection in
    /// user space.
    #[arg(long, env = "FJORD_SSL_KTLS", value_enum, default_value = "auto")]
    pub ssl_ktls: SslKtls,

    /// How often the keystore, key and truststore files are checked for changes; new
    /// handshakes use the new files, and a file that does not load is logged and the
    /// files in use kept.
    #[arg(long, env = "FJORD_SSL_RELOAD_INTERVAL_MS", default_value_t = 10_000)]
    pub ssl_reload_interval_ms: u64,
}

impl SslConfig {
    /// The ssl.client.auth mode of each SSL and SASL_SSL listener.
    pub fn client_auth_by_listener(
        &self,
        listeners: &Listeners,
    ) -> Result<Vec<(ListenerName, SslClientAuth)>, String> {
        client_auth_by_listener(
            listeners,
            self.ssl_client_auth,
            &self.listener_ssl_client_auth,
        )
        .map_err(|e| e.to_string())
    }

    /// Check the settings the TLS listeners need, without reading the files.
    pub fn validate(&self, listeners: &Listeners) -> Result<(), String> {
        crate::auth::ssl_principal::SslPrincipalMapper::parse(&self.ssl_principal_mapping_rules)
            .map_err(|e| e.to_string())?;
        if self.ssl_reload_interval_ms < 100 {
            return Err(format!(
                "--ssl-reload-interval-ms {} must be >= 100",
                self.ssl_reload_interval_ms
            ));
        }
        let modes = self.client_auth_by_listener(listeners)?;
        if modes.is_empty() {
            return Ok(());
        }
        if self.ssl_keystore_location.is_none() {
            return Err(
                "an SSL or SASL_SSL listener needs --ssl-keystore-location (PEM certificate chain)"
                    .into(),
            );
        }
        if self.ssl_truststore_location.is_some() {
            return Ok(());
        }
        let Some((listener, mode)) = modes.iter().find(|(_, m)| *m != SslClientAuth::None) else {
            return Ok(());
        };
        let given = listener_mode_given(&self.listener_ssl_client_auth, listener);
        let flag = if given {
            format!("--listener-ssl-client-auth {listener}:{}", mode.name())
        } else {
            format!("--ssl-client-auth {}", mode.name())
        };
        Err(format!(
            "{flag} needs --ssl-truststore-location (PEM CA certificates)"
        ))
    }
}

/// Whether `listener` has its own entry in --listener-ssl-client-auth (already checked).
fn listener_mode_given(overrides: &str, listener: &ListenerName) -> bool {
    overrides
        .split(',')
        .filter_map(|e| e.split_once(':'))
        .any(|(name, _)| ListenerName::parse(name).is_ok_and(|n| n == *listener))
}

/// Each TLS listener's `ssl.client.auth`, as KIP-684 has it: the broker-wide mode
/// (`broker_wide`) applies to SSL listeners only; SASL_SSL listeners ask for no
/// certificate (SASL authenticates the client) unless `overrides`
/// (`--listener-ssl-client-auth NAME:MODE,...`, Kafka's
/// `listener.name.<name>.ssl.client.auth`) sets a mode for that listener.
pub fn client_auth_by_listener(
    listeners: &Listeners,
    broker_wide: SslClientAuth,
    overrides: &str,
) -> Result<Vec<(ListenerName, SslClientAuth)>, ListenerError> {
    let mut given: Vec<(ListenerName, SslClientAuth)> = Vec::new();
    for entry in entries(overrides) {
        let bad = || ListenerError::BadClientAuthEntry(entry.to_string());
        let (name, mode) = entry.split_once(':').ok_or_else(bad)?;
        let name = ListenerName::parse(name)?;
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "none" => SslClientAuth::None,
            "requested" => SslClientAuth::Requested,
            "required" => SslClientAuth::Required,
            _ => return Err(bad()),
        };
        if given.iter().any(|(n, _)| *n == name) {
            return Err(ListenerError::DuplicateClientAuth(name));
        }
        let listener = listeners
            .get(&name)
            .ok_or_else(|| ListenerError::UnknownClientAuthListener(name.clone()))?;
        if !listener.protocol.is_tls() {
            return Err(ListenerError::ClientAuthOnPlainListener(
                name,
                listener.protocol,
            ));
        }
        given.push((name, mode));
    }
    Ok(listeners
        .iter()
        .filter(|l| l.protocol.is_tls())
        .map(|l| {
            let mode = match given.iter().find(|(n, _)| *n == l.name) {
                Some((_, mode)) => *mode,
                None if l.protocol == SecurityProtocol::Ssl => broker_wide,
                None => SslClientAuth::None,
            };
            (l.name.clone(), mode)
        })
        .collect())
}
