//! The client's connection and request settings.

use std::time::Duration;

use crate::tls::TlsConfig;

/// A default that callers can rely on in docs and tests.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection and request settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// Bound on establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Bound on one request, from waiting for an in-flight slot to the answer; also sent
    /// to the broker as the timeout of admin and produce requests.
    pub request_timeout: Duration,
    /// Requests in flight per connection; more wait for a slot.
    pub max_in_flight: usize,
    /// Largest response frame accepted; a larger one closes the connection.
    pub max_response_bytes: usize,
    /// Extra attempts of a produce, fetch or list-offsets call after a leadership error
    /// (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, ...): the request was not applied,
    /// so it is safe to send again once Metadata names the new leader.
    pub leader_retries: u32,
    /// Pause before such a retry, doubled each time.
    pub retry_backoff: Duration,
    /// TLS on every connection (SSL and SASL_SSL listeners); `None` is plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "fjord-client".into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_in_flight: 64,
            max_response_bytes: 100 * 1024 * 1024,
            leader_retries: 5,
            retry_backoff: Duration::from_millis(50),
            tls: None,
        }
    }
}

impl ClientConfig {
    pub(crate) fn request_timeout_ms(&self) -> i32 {
        i32::try_from(self.request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}
