//! SCRAM credential admin calls (KIP-554): DescribeUserScramCredentials and
//! AlterUserScramCredentials. As Kafka's AdminClient does, the password never leaves
//! the client: it sends a random salt, the iteration count and the salted password
//! (PBKDF2 with the mechanism's HMAC, RFC 5802's `Hi`), from which the broker derives
//! the stored and server keys.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use rand::RngCore;
use sha2::{Sha256, Sha512};

use crate::client::{missing, str_bytes, Client};
use crate::connection::ApiRequest;
use crate::error::{Error, Result};

impl ApiRequest for DescribeUserScramCredentialsRequest {
    const API: ApiKey = ApiKey::DescribeUserScramCredentials;
    type Response = DescribeUserScramCredentialsResponse;
}

impl ApiRequest for AlterUserScramCredentialsRequest {
    const API: ApiKey = ApiKey::AlterUserScramCredentials;
    type Response = AlterUserScramCredentialsResponse;
}

/// The fewest iterations Kafka accepts for a SCRAM credential.
pub const SCRAM_MIN_ITERATIONS: i32 = 4096;
/// The most iterations Kafka accepts for a SCRAM credential.
pub const SCRAM_MAX_ITERATIONS: i32 = 16384;
/// Bytes of random salt in a credential made by [`ScramUpsertion::new`].
const SALT_BYTES: usize = 32;

/// A SCRAM mechanism, with Kafka's wire code (ScramMechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    /// Kafka's wire code: 1 for SCRAM-SHA-256, 2 for SCRAM-SHA-512.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of a wire code; `None` for UNKNOWN (0) and codes not defined.
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The SASL mechanism name, e.g. `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// RFC 5802's `SaltedPassword := Hi(password, salt, i)`: PBKDF2 with this
    /// mechanism's HMAC, one hash-length block.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramMechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// A credential to create or replace: what goes on the wire, the password already
/// salted. The Debug output leaves the salted password out.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramUpsertion {
    /// A credential for `user` with `password`, a fresh random salt and `iterations`
    /// (within Kafka's 4096..=16384, else an error before anything is sent).
    pub fn new(
        user: impl Into<String>,
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
    ) -> Result<ScramUpsertion> {
        let mut salt = vec![0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        ScramUpsertion::with_salt(user, mechanism, password, iterations, salt)
    }

    /// As [`ScramUpsertion::new`] with the salt given (for tests and known vectors).
    pub fn with_salt(
        user: impl Into<String>,
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
        salt: Vec<u8>,
    ) -> Result<ScramUpsertion> {
        let user = user.into();
        if !(SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::Protocol(format!(
                "SCRAM credential of {user:?}: {iterations} iterations is outside \
                 {SCRAM_MIN_ITERATIONS}..={SCRAM_MAX_ITERATIONS}"
            )));
        }
        if user.is_empty() {
            return Err(Error::Protocol(
                "SCRAM credential with an empty user".into(),
            ));
        }
        let salted_password =
            mechanism.salted_password(password.as_bytes(), &salt, iterations as u32);
        Ok(ScramUpsertion {
            user,
            mechanism,
            iterations,
            salt,
            salted_password,
        })
    }
}

/// One credential a user has: its mechanism and iteration count (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
}

impl Client {
    /// The SCRAM credentials of `users` (all users with `None`); per user, its
    /// credentials or the error the broker gave (RESOURCE_NOT_FOUND for a user without
    /// any). Needs DESCRIBE on the cluster.
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<Vec<(String, Result<Vec<ScramCredentialInfo>>)>> {
        let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(str_bytes(n)))
                .collect()
        }));
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(
            response.error_code,
            || "SCRAM credentials".into(),
            response.error_message.as_ref(),
        )?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                let result = Error::check(
                    r.error_code,
                    || format!("user {user:?}"),
                    r.error_message.as_ref(),
                )
                .map(|()| {
                    r.credential_infos
                        .iter()
                        .filter_map(|c| {
                            Some(ScramCredentialInfo {
                                mechanism: ScramMechanism::from_code(c.mechanism)?,
                                iterations: c.iterations,
                            })
                        })
                        .collect()
                });
                (user, result)
            })
            .collect())
    }

    /// Creates or replaces (`upsertions`) and removes (`deletions`) SCRAM credentials;
    /// one result per user named, in the order first named. Needs ALTER on the
    /// cluster. Removing a credential a user does not have fails that user with
    /// RESOURCE_NOT_FOUND.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: &[ScramUpsertion],
        deletions: &[(String, ScramMechanism)],
    ) -> Result<Vec<(String, Result<()>)>> {
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upsertions
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(str_bytes(&u.user))
                            .with_mechanism(u.mechanism.code())
                            .with_iterations(u.iterations)
                            .with_salt(Bytes::copy_from_slice(&u.salt))
                            .with_salted_password(Bytes::copy_from_slice(&u.salted_password))
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|(user, m)| {
                        ScramCredentialDeletion::default()
                            .with_name(str_bytes(user))
                            .with_mechanism(m.code())
                    })
                    .collect(),
            );
        let response = self.controller_connection().await?.send(&request).await?;
        let mut users: Vec<&str> = Vec::new();
        for u in upsertions
            .iter()
            .map(|u| u.user.as_str())
            .chain(deletions.iter().map(|(u, _)| u.as_str()))
        {
            if !users.contains(&u) {
                users.push(u);
            }
        }
        users
            .into_iter()
            .map(|user| {
                let r = response
                    .results
                    .iter()
                    .find(|r| r.user.as_str() == user)
                    .ok_or_else(|| missing(format!("user {user:?}")))?;
                let result = Error::check(
                    r.error_code,
                    || format!("user {user:?}"),
                    r.error_message.as_ref(),
                );
                Ok((user.to_string(), result))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_password_is_pbkdf2_hmac_sha512() {
        // RFC 5802's Hi is PBKDF2; the expected bytes come from another implementation
        // (Python's hashlib.pbkdf2_hmac("sha512", b"password", b"NaCl", 4096)).
        let out = ScramMechanism::Sha512.salted_password(b"password", b"NaCl", 4096);
        assert_eq!(out.len(), 64);
        let hex: String = out[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "360490fe092258e699640a7d04586926");
    }

    #[test]
    fn upsertion_checks_iterations_and_salts_randomly() {
        let a = ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 4096).unwrap();
        let b = ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 4096).unwrap();
        assert_eq!(a.salt.len(), SALT_BYTES);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.salted_password, b.salted_password);
        assert_eq!(
            a.salted_password,
            ScramMechanism::Sha512.salted_password(b"pw", &a.salt, 4096)
        );
        assert!(ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 4095).is_err());
        assert!(ScramUpsertion::new("alice", ScramMechanism::Sha512, "pw", 16385).is_err());
        assert!(ScramUpsertion::new("", ScramMechanism::Sha512, "pw", 4096).is_err());
        assert!(!format!("{a:?}").contains("salted"));
    }

    #[test]
    fn mechanism_codes() {
        assert_eq!(ScramMechanism::from_code(2), Some(ScramMechanism::Sha512));
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(ScramMechanism::Sha256.name(), "SCRAM-SHA-256");
    }
}
