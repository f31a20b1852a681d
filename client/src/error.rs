//! The crate's one error type.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a Kafka-protocol broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with a Kafka error code for `resource` (a topic, a
    /// partition `topic/3`, a config resource, or the whole request).
    #[error("{resource}: {error} (Kafka error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), code = error.code())]
    Kafka {
        /// What the error is about, e.g. `topic "orders" partition 3`.
        resource: String,
        /// The Kafka error: `error.code()` is the wire code, `Display` its name.
        error: ResponseError,
        /// The broker's error message, when the API carries one.
        message: Option<String>,
    },
    /// Connecting, reading or writing failed.
    #[error("connection to {addr}: {source}")]
    Io {
        /// The broker address.
        addr: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The connection closed (or its reader failed) while requests were in flight.
    #[error("connection to {addr} closed: {reason}")]
    ConnectionClosed {
        /// The broker address.
        addr: String,
        /// Why the connection was torn down.
        reason: String,
    },
    /// No answer within the request timeout (this includes waiting for an in-flight slot).
    #[error("connection to {addr}: {api:?} request timed out after {timeout:?}")]
    Timeout {
        /// The broker address.
        addr: String,
        /// The API of the request.
        api: ApiKey,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A response frame declared a size outside `0..=max`.
    #[error(
        "connection to {addr}: response frame of {size} bytes exceeds max_response_bytes {max}"
    )]
    FrameTooLarge {
        /// The broker address.
        addr: String,
        /// The declared frame size.
        size: i64,
        /// The configured bound.
        max: usize,
    },
    /// The client and the broker share no version of an API the call needs.
    #[error("broker {addr} supports no version of {api:?} that this client speaks")]
    UnsupportedApi {
        /// The broker address.
        addr: String,
        /// The API.
        api: ApiKey,
    },
    /// TLS settings that cannot be used: a PEM without certificates, a key that does
    /// not match, ...
    #[error("TLS: {0}")]
    Tls(String),
    /// Encoding a request or decoding a response or record batch failed.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// The Kafka error when this is [`Error::Kafka`], so callers can match on codes.
    pub fn kafka(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// `Err(Error::Kafka)` for a non-zero error code, `Ok(())` for 0.
    pub(crate) fn check(
        code: i16,
        resource: impl FnOnce() -> String,
        message: Option<&kafka_protocol::protocol::StrBytes>,
    ) -> Result<()> {
        match ResponseError::try_from_code(code) {
            None => Ok(()),
            Some(error) => Err(Error::Kafka {
                resource: resource(),
                error,
                message: message.map(|m| m.to_string()),
            }),
        }
    }

    pub(crate) fn protocol(context: &str, e: impl std::fmt::Display) -> Error {
        Error::Protocol(format!("{context}: {e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names_resource_code_and_message() {
        let err = Error::check(
            36,
            || "topic \"orders\"".into(),
            Some(&"already there".to_string().into()),
        )
        .unwrap_err();
        assert_eq!(err.kafka(), Some(ResponseError::TopicAlreadyExists));
        let text = err.to_string();
        assert!(text.starts_with("topic \"orders\": "), "{text}");
        assert!(
            text.contains("(Kafka error code 36): already there"),
            "{text}"
        );
        assert!(Error::check(0, || unreachable!(), None).is_ok());
    }
}
