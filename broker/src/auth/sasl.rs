//! One connection's SASL state, as a state machine without I/O: which requests may be
//! served, the SaslHandshake and SaslAuthenticate answers (KIP-152 framing), the
//! principal once authenticated, and KIP-368 re-authentication. The connection feeds
//! it each request and the time; it answers what to do.
//!
//! Kafka's rules, followed here:
//! - Before authentication only ApiVersions and SaslHandshake are served, then
//!   SaslAuthenticate; anything else closes the connection.
//! - A failed authentication is answered (SASL_AUTHENTICATION_FAILED, or
//!   UNSUPPORTED_SASL_MECHANISM for the handshake) and the connection is closed.
//! - With `connections.max.reauth.ms` set, SaslAuthenticate v1+ tells the client its
//!   session lifetime; a request other than SaslHandshake arriving after the session
//!   expired closes the connection. A client re-authenticates by starting again with
//!   SaslHandshake (same mechanism), and may not change its principal doing so. While it
//!   re-authenticates, other requests close the connection, as in Kafka.
//!
//! Both framings are served: after SaslHandshake v1 the tokens travel in
//! SaslAuthenticate requests (KIP-152); after v0 they are raw size-prefixed frames
//! ([`SaslConnection::expects_raw_token`]), and a failure can only close the
//! connection. Re-authentication needs v1, as in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use super::plain;
use super::scram::{self, ScramCredential, ScramMechanism, ScramServer};
use super::Principal;

/// A SASL mechanism a listener may enable (`sasl.enabled.mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    pub fn parse(name: &str) -> Result<Mechanism, String> {
        match name {
            "PLAIN" => Ok(Mechanism::Plain),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram).ok_or_else(|| {
                format!(
                    "SASL mechanism {other:?} is not supported; supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                )
            }),
        }
    }
}

/// A SASL listener's settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// In the order they were configured (the order SaslHandshake lists them).
    pub mechanisms: Vec<Mechanism>,
    /// `connections.max.reauth.ms`: 0 means sessions never expire.
    pub reauth_ms: i64,
    /// Keys the made-up salt shown for unknown users (see `scram`).
    pub unknown_user_secret: [u8; 32],
}

impl SaslSettings {
    pub fn new(mechanisms: Vec<Mechanism>, reauth_ms: i64) -> SaslSettings {
        SaslSettings {
            mechanisms,
            reauth_ms,
            unknown_user_secret: rand::random(),
        }
    }
}

/// What the connection does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Serve it with the session's principal.
    Serve,
    /// A SaslHandshake or SaslAuthenticate: answered by this session.
    Sasl,
    /// Close the connection without answering, for this reason.
    Close(String),
}

/// An answer of this session, and whether the connection closes once it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub body: T,
    pub close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeAnswer {
    pub error_code: i16,
    pub mechanisms: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticateAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub auth_bytes: Vec<u8>,
    pub session_lifetime_ms: i64,
}

/// Where the exchange is.
enum Phase {
    /// Waiting for SaslHandshake: the first, or one that starts re-authentication.
    Handshake,
    /// The handshake chose a mechanism; SaslAuthenticate comes next.
    Authenticate(Exchange),
}

enum Exchange {
    Plain,
    Scram(ScramServer),
    /// A re-authentication asked for another mechanism than the session's: Kafka
    /// accepts the handshake and fails the SaslAuthenticate that follows.
    BadMechanism(String),
}

/// Who the connection is, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    principal: Principal,
    mechanism: Mechanism,
    /// None: the session never expires.
    expires_at_ms: Option<i64>,
}

/// One connection's SASL state.
pub struct SaslConnection {
    settings: Arc<SaslSettings>,
    phase: Phase,
    session: Option<Session>,
    /// The handshake was v0: the tokens that follow are raw frames.
    raw_tokens: bool,
}

/// The credential store the exchange reads (the metadata image).
pub trait Credentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl Credentials for crate::metadata::image::MetadataImage {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        crate::metadata::image::MetadataImage::scram_credential(self, user, mechanism).cloned()
    }
}

impl SaslConnection {
    pub fn new(settings: Arc<SaslSettings>) -> SaslConnection {
        SaslConnection {
            settings,
            phase: Phase::Handshake,
            session: None,
            raw_tokens: false,
        }
    }

    /// The authenticated principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.session.as_ref().map(|s| &s.principal)
    }

    /// What to do with a request of `api_key` arriving at `now_ms`.
    pub fn gate(&self, api_key: ApiKey, now_ms: i64) -> Gate {
        if matches!(api_key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
            return Gate::Sasl;
        }
        let Some(session) = &self.session else {
            return match (api_key, &self.phase) {
                (ApiKey::ApiVersions, Phase::Handshake) => Gate::Serve,
                _ => Gate::Close(format!(
                    "{api_key:?} request before SASL authentication completed"
                )),
            };
        };
        if let Phase::Authenticate(_) = self.phase {
            return Gate::Close(format!("{api_key:?} request during SASL re-authentication"));
        }
        match session.expires_at_ms {
            // KIP-368: a connection whose session expired is closed on its next
            // request, unless that request starts a re-authentication.
            Some(at) if now_ms >= at => Gate::Close(format!(
                "SASL session of {} expired {} ms ago without re-authentication (connections.max.reauth.ms {})",
                session.principal,
                now_ms - at,
                self.settings.reauth_ms
            )),
            _ => Gate::Serve,
        }
    }

    fn enabled(&self) -> Vec<&'static str> {
        self.settings.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// Is the next frame a raw SASL token (after SaslHandshake v0) rather than a
    /// Kafka request? Answer it with [`SaslConnection::authenticate`], raw too.
    pub fn expects_raw_token(&self) -> bool {
        self.raw_tokens && matches!(self.phase, Phase::Authenticate(_))
    }

    /// Answer a SaslHandshake of `version` asking for `mechanism`.
    pub fn handshake(&mut self, mechanism: &str, version: i16) -> Answer<HandshakeAnswer> {
        let mechanisms = self.enabled();
        let refuse = |code: ResponseError| Answer {
            body: HandshakeAnswer {
                error_code: code.code(),
                mechanisms: mechanisms.clone(),
            },
            close: true,
        };
        if let Phase::Authenticate(_) = self.phase {
            return refuse(ResponseError::IllegalSaslState);
        }
        let Some(&chosen) = self
            .settings
            .mechanisms
            .iter()
            .find(|m| m.name() == mechanism)
        else {
            return refuse(ResponseError::UnsupportedSaslMechanism);
        };
        let exchange = match (&self.session, chosen) {
            (Some(s), m) if s.mechanism != m => Exchange::BadMechanism(format!(
                "SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'",
                m.name(),
                s.mechanism.name()
            )),
            (_, Mechanism::Plain) => Exchange::Plain,
            (_, Mechanism::Scram(m)) => Exchange::Scram(ScramServer::new(m)),
        };
        self.phase = Phase::Authenticate(exchange);
        // KIP-368: only v1 clients re-authenticate; v0 is for the first login.
        self.raw_tokens = version == 0 && self.session.is_none();
        Answer {
            body: HandshakeAnswer {
                error_code: 0,
                mechanisms: mechanisms.clone(),
            },
            close: false,
        }
    }

    /// Answer a SaslAuthenticate carrying `auth_bytes` at `now_ms`. `server_nonce` is
    /// fresh randomness for a SCRAM exchange (see [`scram::random_nonce`]).
    pub fn authenticate(
        &mut self,
        auth_bytes: &[u8],
        credentials: &dyn Credentials,
        server_nonce: &str,
        now_ms: i64,
    ) -> Answer<AuthenticateAnswer> {
        let phase = std::mem::replace(&mut self.phase, Phase::Handshake);
        let Phase::Authenticate(exchange) = phase else {
            // Kafka answers ILLEGAL_SASL_STATE to an authenticated connection and keeps
            // it; before a handshake the request is not valid at all.
            return Answer {
                body: AuthenticateAnswer {
                    error_code: ResponseError::IllegalSaslState.code(),
                    error_message: Some(
                        "SaslAuthenticate request received without a SaslHandshake before it"
                            .into(),
                    ),
                    ..Default::default()
                },
                close: self.session.is_none(),
            };
        };
        let reauth = self.session.is_some();
        let phase_text = if reauth {
            "re-authentication"
        } else {
            "authentication"
        };
        let lookup = |user: &str, m| credentials.scram_credential(user, m);
        let scram_failed = |m: ScramMechanism, e: scram::ScramError| {
            tracing::info!("SASL/{m} {phase_text} failed: {e}");
            // Kafka's message for every SCRAM failure: it names nothing but the phase
            // and the mechanism, so it tells no one which users exist.
            format!(
                "Authentication failed during {phase_text} due to invalid credentials with SASL mechanism {m}"
            )
        };
        let (mechanism, outcome) = match exchange {
            Exchange::BadMechanism(message) => return self.fail(message),
            Exchange::Plain => (
                Mechanism::Plain,
                plain::authenticate(auth_bytes, lookup)
                    .map(|user| (user, Vec::new()))
                    .map_err(|e| {
                        tracing::info!("SASL/PLAIN {phase_text} failed: {e}");
                        // Kafka's PlainSaslServer message, the same for every failure.
                        "Authentication failed: Invalid username or password".to_string()
                    }),
            ),
            Exchange::Scram(mut server) if server.awaits_client_first() => {
                let m = server.mechanism();
                let secret = self.settings.unknown_user_secret;
                match server.client_first(
                    auth_bytes,
                    |user| lookup(user, m),
                    server_nonce,
                    |user| scram::unknown_user_salt(&secret, user),
                ) {
                    Ok(server_first) => {
                        self.phase = Phase::Authenticate(Exchange::Scram(server));
                        return Answer {
                            body: AuthenticateAnswer {
                                auth_bytes: server_first,
                                ..Default::default()
                            },
                            close: false,
                        };
                    }
                    Err(e) => (Mechanism::Scram(m), Err(scram_failed(m, e))),
                }
            }
            Exchange::Scram(mut server) => {
                let m = server.mechanism();
                let done = server
                    .client_final(auth_bytes)
                    .map(|d| (d.user, d.server_final))
                    .map_err(|e| scram_failed(m, e));
                (Mechanism::Scram(m), done)
            }
        };
        let (user, final_bytes) = match outcome {
            Ok(done) => done,
            Err(message) => return self.fail(message),
        };
        let principal = Principal::user(user);
        if let Some(previous) = &self.session {
            if previous.principal != principal {
                return self.fail(format!(
                    "Cannot change principals during re-authentication from {}: {}",
                    previous.principal, principal
                ));
            }
        }
        let reauth_ms = self.settings.reauth_ms.max(0);
        self.session = Some(Session {
            principal,
            mechanism,
            expires_at_ms: (reauth_ms > 0).then(|| now_ms.saturating_add(reauth_ms)),
        });
        Answer {
            body: AuthenticateAnswer {
                auth_bytes: final_bytes,
                session_lifetime_ms: reauth_ms,
                ..Default::default()
            },
            close: false,
        }
    }

    fn fail(&mut self, message: String) -> Answer<AuthenticateAnswer> {
        self.phase = Phase::Handshake;
        Answer {
            body: AuthenticateAnswer {
                error_code: ResponseError::SaslAuthenticationFailed.code(),
                error_message: Some(message),
                ..Default::default()
            },
            close: true,
        }
    }
}

#[cfg(test)]
#[path = "sasl_tests.rs"]
mod tests;
