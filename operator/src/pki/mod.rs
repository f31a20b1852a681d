//! The certificates of a FjordCluster, as pure functions: time is passed in and
//! nothing here reads or writes the API server ([`crate::certs`] does).
//!
//! Two certificate authorities per cluster: the cluster CA signs the broker
//! certificates (client listeners and the internal plane, where a certificate names its
//! node by the SAN URI `fjord://node/<id>`) and the operator's (`CN=fjord:operator`);
//! the clients CA signs the certificates of User resources (`CN=<user>`).
//!
//! A CA the operator made is renewed `caRenewBefore` ahead of its end (or at once when
//! asked by annotation) without breaking anyone: the new CA is also signed by the old
//! one (a cross-signed certificate), the trust bundles carry both CAs, and every leaf
//! chain carries the cross-signed certificate until the old CA expires. A client that
//! trusts only the old CA follows leaf → cross-signed new CA → old CA; one that trusts
//! only the new CA stops at the new CA. A CA the user supplies is used as it is and
//! never replaced.
//!
//! - `duration`: Go duration strings of the CertificatesSpec.
//! - `ca`: a CA (made, loaded, cross-signed) and the leaf certificates it issues.
//! - `inspect`: reading certificates back from Secrets (hostile input: anything may be
//!   there).
//! - `plan`: the renewal planner: which Secrets to write, and when to look again.

mod ca;
mod duration;
mod inspect;
mod plan;
pub mod pod;
#[cfg(test)]
mod tests;

pub use ca::{issue_user_certificate, Ca, Issued};
pub use duration::parse_duration;
pub use inspect::{parse_certificates, CertInfo};
pub use plan::{
    current_ca, plan, secret_names, CaKind, CaState, Event, EventKind, Observed, Plan, SecretData,
    SecretNames, SecretWrite,
};

/// Annotation on a CA Secret the operator made: the CA's generation, 1 for the first
/// CA of a cluster, one more at every renewal (also in the CA's common name).
pub const CA_GENERATION_ANNOTATION: &str = "fjord.dev/ca-generation";

/// The scheme and path before the node id in a broker certificate's SAN URI (the
/// broker's `internal_tls` takes the node identity from it).
pub const NODE_URI_PREFIX: &str = "fjord://node/";
/// Keys of the CA Secrets.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// During a CA renewal's overlap: the previous CA's certificate, and the new CA signed
/// by the previous one (what leaf chains carry).
pub const CA_PREVIOUS_KEY: &str = "ca-previous.crt";
pub const CA_CROSS_SIGNED_KEY: &str = "ca-cross-signed.crt";
/// Keys of the operator's certificate Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
/// The brokers' truststore in the broker certificates Secret: clients CA bundle and
/// cluster CA bundle.
pub const TRUSTSTORE_KEY: &str = "truststore.crt";
/// Common name of the operator's certificate, so its principal is
/// `User:fjord:operator` (`:` cannot appear in a User resource's name).
pub const OPERATOR_COMMON_NAME: &str = "fjord:operator";

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{field}: {value:?} is not a Go duration (e.g. 8760h, 90s, 1h30m): {what}")]
    Duration {
        field: &'static str,
        value: String,
        what: String,
    },
    #[error("Secret {secret}: {what}")]
    UserCa { secret: String, what: String },
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("certificate: {0}")]
    Invalid(String),
}

/// `Result` of this module.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;
