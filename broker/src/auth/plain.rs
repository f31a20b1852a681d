//! SASL/PLAIN (RFC 4616): one message `authzid NUL authcid NUL passwd`.
//!
//! The password is checked against the user's stored SCRAM credential (see
//! [`super::scram::ScramCredential::verifies_password`]), so a cluster that offers
//! PLAIN still stores no password anywhere: a user needs a SCRAM credential (either
//! mechanism) to log in with PLAIN. PLAIN sends the password itself, so it belongs on
//! SASL_SSL listeners only.

use super::scram::{ScramCredential, ScramMechanism};

/// RFC 4616 bounds each of the three fields to 255 octets.
pub const MAX_FIELD_BYTES: usize = 255;

/// Why a PLAIN message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("PLAIN message is not authzid NUL authcid NUL passwd")]
    Malformed,
    #[error("PLAIN {0} longer than {MAX_FIELD_BYTES} bytes")]
    TooLong(&'static str),
    #[error("PLAIN {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("PLAIN user name is empty")]
    EmptyUser,
    #[error("PLAIN password is empty")]
    EmptyPassword,
    #[error("PLAIN authorization id {authzid:?} differs from user {user:?}")]
    AuthzId { authzid: String, user: String },
    #[error("invalid username or password for user {0:?}")]
    InvalidCredentials(String),
}

/// A parsed PLAIN message.
#[derive(PartialEq, Eq)]
pub struct PlainMessage<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn field<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, PlainError> {
    if bytes.len() > MAX_FIELD_BYTES {
        return Err(PlainError::TooLong(what));
    }
    std::str::from_utf8(bytes).map_err(|_| PlainError::NotUtf8(what))
}

/// Parse `authzid NUL authcid NUL passwd`. The authzid may be empty or the user
/// itself (Kafka's `PlainSaslServer` rule).
pub fn parse(msg: &[u8]) -> Result<PlainMessage<'_>, PlainError> {
    let mut parts = msg.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    if password.contains(&0) {
        return Err(PlainError::Malformed);
    }
    let authzid = field(authzid, "authorization id")?;
    let user = field(user, "user name")?;
    let password = field(password, "password")?;
    if user.is_empty() {
        return Err(PlainError::EmptyUser);
    }
    if password.is_empty() {
        return Err(PlainError::EmptyPassword);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthzId {
            authzid: authzid.into(),
            user: user.into(),
        });
    }
    Ok(PlainMessage { user, password })
}

/// Authenticate a PLAIN message against the user's SCRAM credentials: the user name
/// when the password matches the credential of either mechanism (SHA-512 tried first).
pub fn authenticate(
    msg: &[u8],
    lookup: impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
) -> Result<String, PlainError> {
    let m = parse(msg)?;
    let matches = [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .filter_map(|mech| lookup(m.user, mech).map(|c| (mech, c)))
        .any(|(mech, c)| c.verifies_password(mech, m.password));
    if matches {
        Ok(m.user.to_string())
    } else {
        Err(PlainError::InvalidCredentials(m.user.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::random_salt;

    fn store(
        mech: ScramMechanism,
        password: &str,
    ) -> impl Fn(&str, ScramMechanism) -> Option<ScramCredential> {
        let c = ScramCredential::from_password(mech, password, random_salt(), 4096).unwrap();
        move |u, m| (u == "alice" && m == mech).then(|| c.clone())
    }

    #[test]
    fn the_password_is_checked_against_either_scram_credential() {
        for mech in ScramMechanism::ALL {
            let lookup = store(mech, "pw");
            assert_eq!(authenticate(b"\0alice\0pw", &lookup), Ok("alice".into()));
            assert_eq!(
                authenticate(b"alice\0alice\0pw", &lookup),
                Ok("alice".into())
            );
            assert_eq!(
                authenticate(b"\0alice\0pw2", &lookup),
                Err(PlainError::InvalidCredentials("alice".into()))
            );
            assert_eq!(
                authenticate(b"\0bob\0pw", &lookup),
                Err(PlainError::InvalidCredentials("bob".into()))
            );
        }
    }

    #[test]
    fn hostile_plain_messages_are_refused() {
        let long = [b"\0".as_slice(), &[b'a'; MAX_FIELD_BYTES + 1], b"\0pw"].concat();
        let long_pw = [b"\0alice\0".as_slice(), &[b'a'; MAX_FIELD_BYTES + 1]].concat();
        let cases: &[(&[u8], PlainError)] = &[
            (b"", PlainError::Malformed),
            (b"alice", PlainError::Malformed),
            (b"\0alice", PlainError::Malformed),
            (b"\0alice\0pw\0extra", PlainError::Malformed),
            (b"\0\0pw", PlainError::EmptyUser),
            (b"\0alice\0", PlainError::EmptyPassword),
            (b"\0al\xffice\0pw", PlainError::NotUtf8("user name")),
            (&long, PlainError::TooLong("user name")),
            (&long_pw, PlainError::TooLong("password")),
            (
                b"bob\0alice\0pw",
                PlainError::AuthzId {
                    authzid: "bob".into(),
                    user: "alice".into(),
                },
            ),
        ];
        for (msg, err) in cases {
            assert_eq!(
                parse(msg).unwrap_err(),
                *err,
                "{:?}",
                String::from_utf8_lossy(msg)
            );
        }
        // At the bound a field is fine.
        let at = [b"\0alice\0".as_slice(), &[b'a'; MAX_FIELD_BYTES]].concat();
        assert_eq!(parse(&at).unwrap().password.len(), MAX_FIELD_BYTES);
        // The password never shows in the debug form.
        assert!(!format!("{:?}", parse(b"\0alice\0hunter2").unwrap()).contains("hunter2"));
    }
}
