//! The crate's one error type.

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a reconcile; each is retried with backoff by the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A broker call failed (a Kafka error code, a connection or a timeout).
    #[error("broker: {0}")]
    Broker(#[from] fjord_client::Error),
    /// A finalizer step failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Certificates could not be made or read (a user-supplied CA, the spec's
    /// lifetimes).
    #[error("certificates: {0}")]
    Certificates(#[from] crate::pki::PkiError),
    /// The resource lacks something the API server always sets (name, namespace, uid).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Short label for metrics and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Broker(_) => "BrokerError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Invalid(_) => "Invalid",
            Error::Certificates(_) => "CertificateError",
        }
    }
}
