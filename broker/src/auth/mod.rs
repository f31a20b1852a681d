//! Who a client is: the principal a connection authenticated as, in Kafka's
//! `Type:Name` form (`User:alice`, `User:CN=client,O=acme`, `User:ANONYMOUS`).
//! Listeners decide it (TLS client certificate, SASL); authorization (`acl`) reads it.
//!
//! - `acl`: Kafka's ACL model and the authorizer.
//! - `config`: the SASL flags and the SCRAM credentials created at start.
//! - `credentials`: the decisions of Describe/AlterUserScramCredentials.
//! - `scram`: SCRAM-SHA-256/512 credentials and the server side of an exchange.
//! - `plain`: SASL/PLAIN, checked against the stored SCRAM credentials.
//! - `sasl`: one connection's SASL state: gating, handshake, authenticate, KIP-368.

pub mod acl;
pub mod config;
pub mod credentials;
pub mod plain;
pub mod sasl;
pub mod scram;

pub mod ssl_principal;

use std::fmt;
use std::sync::Arc;

/// Kafka's `KafkaPrincipal`: a type (always `User` for Kafka's built-in
/// authenticators) and a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    pub kind: Arc<str>,
    pub name: Arc<str>,
}

/// The type of every principal Kafka's authenticators produce.
pub const USER: &str = "User";

impl Principal {
    /// `User:name`.
    pub fn user(name: impl Into<Arc<str>>) -> Principal {
        Principal {
            kind: USER.into(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`: a connection on a listener that authenticates no one.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    pub fn is_anonymous(&self) -> bool {
        &*self.kind == USER && &*self.name == "ANONYMOUS"
    }

    /// Parses Kafka's `Type:Name` (the name may itself contain `:`).
    pub fn parse(s: &str) -> Result<Principal, PrincipalError> {
        match s.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Principal {
                kind: kind.into(),
                name: name.into(),
            }),
            _ => Err(PrincipalError(s.to_string())),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal {0:?} is not of the form Type:Name")]
pub struct PrincipalError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_read_and_print_in_kafkas_form() {
        let p = Principal::parse("User:CN=client,O=acme:x").unwrap();
        assert_eq!((&*p.kind, &*p.name), ("User", "CN=client,O=acme:x"));
        assert_eq!(p.to_string(), "User:CN=client,O=acme:x");
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
        assert!(Principal::anonymous().is_anonymous());
        assert!(!Principal::user("alice").is_anonymous());
        for bad in ["alice", ":alice", "User:"] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }
}
