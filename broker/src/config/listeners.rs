//! Named listeners as Kafka has them: `listeners`, `advertised.listeners` and
//! `listener.security.protocol.map`.
//!
//! A listener is a name (`CLIENT`, `SSL`, ...) bound to `host:port` and mapped to a
//! security protocol. Kafka's default map names each protocol after itself, so
//! `SSL://:9093` needs no map entry. Names are case-insensitive and kept upper-case, as
//! Kafka normalises them. A listener missing from `--advertised-listeners` is advertised
//! at its bind address.
//!
//! Everything here is parsing and checking, without I/O: host names are resolved when
//! the server binds.

use std::fmt;
use std::sync::Arc;

/// How a listener secures its connections (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Connections run TLS from their first byte.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Clients authenticate with SaslHandshake/SaslAuthenticate before other requests.
    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = ListenerError;

    fn from_str(s: &str) -> Result<SecurityProtocol, ListenerError> {
        let upper = s.trim().to_ascii_uppercase();
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name() == upper)
            .ok_or_else(|| ListenerError::UnknownProtocol(s.trim().to_string()))
    }
}

/// A listener's name, upper-case (Kafka's `ListenerName.normalised`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerName(Arc<str>);

impl ListenerName {
    pub fn parse(s: &str) -> Result<ListenerName, ListenerError> {
        let s = s.trim();
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ListenerError::BadName(s.to_string()));
        }
        Ok(ListenerName(s.to_ascii_uppercase().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `NAME://host:port`, one entry of `--listeners` or `--advertised-listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: ListenerName,
    /// Empty in `--listeners` means every interface.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, ListenerError> {
        let s = s.trim();
        let bad = |why: &str| ListenerError::BadEndpoint {
            endpoint: s.to_string(),
            why: why.to_string(),
        };
        let (name, address) = s
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        let name = ListenerName::parse(name)?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| bad("unclosed [ of an IPv6 address"))?,
            None if host.contains(':') => return Err(bad("an IPv6 address goes in [brackets]")),
            None => host,
        };
        Ok(Endpoint {
            name,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// One listener of this broker: where it binds, what it runs, what clients are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: ListenerName,
    pub protocol: SecurityProtocol,
    /// Bind host; empty binds every interface.
    pub host: String,
    pub port: u16,
    /// What clients are told to connect to for this listener.
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl Listener {
    /// `host:port` to bind, with an empty host meaning every IPv4 interface.
    pub fn bind_address(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            h if h.contains(':') => format!("[{h}]:{}", self.port),
            h => format!("{h}:{}", self.port),
        }
    }
}

impl Listener {
    /// The listener of a broker started without listener settings.
    #[cfg(test)]
    pub fn plaintext_for_tests() -> Arc<Listener> {
        Arc::new(Listener {
            name: ListenerName("PLAINTEXT".into()),
            protocol: SecurityProtocol::Plaintext,
            host: "127.0.0.1".into(),
            port: 9092,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
        })
    }
}

/// Every listener of this broker, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners(pub Vec<Arc<Listener>>);

impl Listeners {
    pub fn get(&self, name: &ListenerName) -> Option<&Arc<Listener>> {
        self.0.iter().find(|l| &l.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Listener>> {
        self.0.iter()
    }

    /// The first listener: the one a setting without a listener name refers to.
    pub fn first(&self) -> &Arc<Listener> {
        &self.0[0]
    }
}

/// What the listener settings are, before they are checked against each other.
#[derive(Debug, Clone, Default)]
pub struct ListenerSettings<'a> {
    /// `--listeners`, comma separated.
    pub listeners: &'a str,
    /// `--advertised-listeners`, comma separated; may be empty.
    pub advertised: &'a str,
    /// `--listener-security-protocol-map`, comma separated; empty means Kafka's
    /// default map.
    pub protocol_map: &'a str,
}

/// Why the listener settings cannot be used; each names the flag and the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("listener name {0:?}: letters, digits, '_' and '-' only, not empty")]
    BadName(String),
    #[error("listener {endpoint:?}: {why}")]
    BadEndpoint { endpoint: String, why: String },
    #[error("security protocol {0:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")]
    UnknownProtocol(String),
    #[error("--listeners is empty: at least one listener is needed")]
    NoListeners,
    #[error("--listeners names listener {0} twice")]
    DuplicateName(ListenerName),
    #[error("--listeners: listeners {0} and {1} both bind port {2}")]
    DuplicatePort(ListenerName, ListenerName, u16),
    #[error("--listener-security-protocol-map entry {0:?}: expected NAME:PROTOCOL")]
    BadMapEntry(String),
    #[error("--listener-security-protocol-map names listener {0} twice")]
    DuplicateMapEntry(ListenerName),
    #[error("--listener-security-protocol-map names listener {0}, which is not in --listeners")]
    UnknownMapListener(ListenerName),
    #[error("listener {0} has no security protocol in --listener-security-protocol-map")]
    Unmapped(ListenerName),
    #[error("--advertised-listeners names listener {0}, which is not in --listeners")]
    UnknownAdvertised(ListenerName),
    #[error("--advertised-listeners names listener {0} twice")]
    DuplicateAdvertised(ListenerName),
    #[error(
        "--advertised-listeners {0}: clients cannot connect to an empty or unspecified \
         host (0.0.0.0, ::)"
    )]
    UnroutableAdvertised(String),
    #[error(
        "--listener-ssl-client-auth entry {0:?}: expected NAME:MODE with MODE none, \
         requested or required"
    )]
    BadClientAuthEntry(String),
    #[error("--listener-ssl-client-auth names listener {0} twice")]
    DuplicateClientAuth(ListenerName),
    #[error("--listener-ssl-client-auth names listener {0}, which is not in --listeners")]
    UnknownClientAuthListener(ListenerName),
    #[error(
        "--listener-ssl-client-auth names listener {0}, which runs {1}: client certificates \
         need an SSL or SASL_SSL listener"
    )]
    ClientAuthOnPlainListener(ListenerName, SecurityProtocol),
}

/// Split a comma-separated setting, ignoring empty entries and blanks.
pub(super) fn entries(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|e| !e.is_empty())
}

fn is_unspecified(host: &str) -> bool {
    host.is_empty()
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
}

/// Check the three settings against each other and join them into listeners.
pub fn resolve(settings: &ListenerSettings<'_>) -> Result<Listeners, ListenerError> {
    let bound: Vec<Endpoint> = entries(settings.listeners)
        .map(Endpoint::parse)
        .collect::<Result<_, _>>()?;
    if bound.is_empty() {
        return Err(ListenerError::NoListeners);
    }
    for (i, a) in bound.iter().enumerate() {
        for b in &bound[..i] {
            if a.name == b.name {
                return Err(ListenerError::DuplicateName(a.name.clone()));
            }
            // Port 0 asks the kernel for a free port, different for each.
            if a.port == b.port && a.port != 0 {
                return Err(ListenerError::DuplicatePort(
                    b.name.clone(),
                    a.name.clone(),
                    a.port,
                ));
            }
        }
    }
    let map = protocol_map(settings.protocol_map, &bound)?;
    let mut advertised: Vec<Endpoint> = Vec::new();
    for a in entries(settings.advertised).map(Endpoint::parse) {
        let a = a?;
        if !bound.iter().any(|b| b.name == a.name) {
            return Err(ListenerError::UnknownAdvertised(a.name));
        }
        if advertised.iter().any(|x| x.name == a.name) {
            return Err(ListenerError::DuplicateAdvertised(a.name));
        }
        if is_unspecified(&a.host) {
            return Err(ListenerError::UnroutableAdvertised(a.to_string()));
        }
        advertised.push(a);
    }
    let listeners = bound
        .into_iter()
        .map(|b| {
            let protocol = map
                .iter()
                .find(|(name, _)| *name == b.name)
                .map(|(_, p)| *p)
                .ok_or_else(|| ListenerError::Unmapped(b.name.clone()))?;
            let (advertised_host, advertised_port) =
                match advertised.iter().find(|a| a.name == b.name) {
                    Some(a) => (a.host.clone(), a.port),
                    // As clients reached this broker before listeners had names: the bind
                    // address, every interface advertised as 0.0.0.0.
                    None if b.host.is_empty() => ("0.0.0.0".to_string(), b.port),
                    None => (b.host.clone(), b.port),
                };
            Ok(Arc::new(Listener {
                name: b.name,
                protocol,
                host: b.host,
                port: b.port,
                advertised_host,
                advertised_port,
            }))
        })
        .collect::<Result<_, ListenerError>>()?;
    Ok(Listeners(listeners))
}

/// The security protocol map: the one given, or Kafka's default (each protocol's name
/// maps to itself). Entries of a given map must name listeners that exist.
fn protocol_map(
    given: &str,
    bound: &[Endpoint],
) -> Result<Vec<(ListenerName, SecurityProtocol)>, ListenerError> {
    if entries(given).next().is_none() {
        return Ok(SecurityProtocol::ALL
            .into_iter()
            .map(|p| (ListenerName(p.name().into()), p))
            .collect());
    }
    let mut map: Vec<(ListenerName, SecurityProtocol)> = Vec::new();
    for entry in entries(given) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| ListenerError::BadMapEntry(entry.to_string()))?;
        let name = ListenerName::parse(name)?;
        let protocol: SecurityProtocol = protocol.parse()?;
        if map.iter().any(|(n, _)| *n == name) {
            return Err(ListenerError::DuplicateMapEntry(name));
        }
        if !bound.iter().any(|b| b.name == name) {
            return Err(ListenerError::UnknownMapListener(name));
        }
        map.push((name, protocol));
    }
    Ok(map)
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
