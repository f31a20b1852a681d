//! SCRAM (RFC 5802) with SHA-256 and SHA-512 (RFC 7677), as Kafka serves it (KIP-84,
//! KIP-554): the stored credential, and the server side of one authentication exchange
//! as a state machine without I/O.
//!
//! A credential is what RFC 5802 calls the server's store: salt, iteration count,
//! StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
//! ServerKey = HMAC(SaltedPassword, "Server Key"). The password and the SaltedPassword
//! are never kept: a stolen credential lets no one log in as the user.
//!
//! Passwords are used as their UTF-8 bytes, without SASLprep, as Kafka's clients and
//! broker do: a client that applies SASLprep to a password SASLprep would change does
//! not match Kafka either.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's lower bound on the iteration count of a SCRAM credential (`ScramMechanism`
/// minIterations): fewer is refused with UNACCEPTABLE_CREDENTIAL.
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's upper bound (`ScramMechanism` maxIterations).
pub const MAX_ITERATIONS: i32 = 16384;
/// The longest SCRAM message read. Real ones are under 300 bytes (a user name, two
/// nonces, a proof); anything longer is refused before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest salt a credential may carry (Kafka's clients send 64 random bytes at
/// most; 1 KiB leaves room without letting the metadata log carry blobs).
pub const MAX_SALT_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism's number in Describe/AlterUserScramCredentials (Kafka's
    /// `ScramMechanism` type: 0 is UNKNOWN).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == t)
    }

    /// Bytes of the hash: the size of StoredKey, ServerKey, SaltedPassword and proofs.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC(key, the concatenation of `parts`).
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    /// SaltedPassword = Hi(password, salt, i), RFC 5802's PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.hash_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user's stored SCRAM credential for one mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// The keys stay out of logs.
impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_bytes", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a credential is not acceptable: Kafka's UNACCEPTABLE_CREDENTIAL cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("Too few iterations: {0} is below the minimum of {MIN_ITERATIONS}")]
    TooFewIterations(i32),
    #[error("Too many iterations: {0} is above the maximum of {MAX_ITERATIONS}")]
    TooManyIterations(i32),
    #[error("salt of {0} bytes: must be 1 to {MAX_SALT_BYTES} bytes")]
    Salt(usize),
    #[error("{what} of {len} bytes: {mechanism} needs {expected}")]
    KeyLength {
        what: &'static str,
        len: usize,
        mechanism: ScramMechanism,
        expected: usize,
    },
}

impl ScramCredential {
    /// The credential of a SaltedPassword (what AlterUserScramCredentials carries,
    /// KIP-554: the client salts and hashes, the password never travels).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, &[b"Server Key"]),
            iterations,
        }
    }

    /// The credential of a password, salted with `salt`.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: i32,
    ) -> Result<ScramCredential, CredentialError> {
        let rounds = check_iterations(iterations)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, rounds);
        let credential =
            ScramCredential::from_salted_password(mechanism, &salted, salt, iterations);
        credential.check(mechanism)?;
        Ok(credential)
    }

    /// Every field within Kafka's bounds and of the mechanism's sizes. The metadata
    /// image refuses a record that carries a credential failing this.
    pub fn check(&self, mechanism: ScramMechanism) -> Result<(), CredentialError> {
        check_iterations(self.iterations)?;
        if self.salt.is_empty() || self.salt.len() > MAX_SALT_BYTES {
            return Err(CredentialError::Salt(self.salt.len()));
        }
        for (what, key) in [
            ("stored key", &self.stored_key),
            ("server key", &self.server_key),
        ] {
            if key.len() != mechanism.hash_len() {
                return Err(CredentialError::KeyLength {
                    what,
                    len: key.len(),
                    mechanism,
                    expected: mechanism.hash_len(),
                });
            }
        }
        Ok(())
    }

    /// Does `password` produce this credential? (SASL/PLAIN checks passwords this way,
    /// so that no plaintext password is stored anywhere.) Constant time in the
    /// comparison; the cost is one PBKDF2 of the credential's iteration count.
    pub fn verifies_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let Ok(rounds) = check_iterations(self.iterations) else {
            return false;
        };
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, rounds);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        bool::from(mechanism.hash(&client_key).ct_eq(&self.stored_key))
    }
}

fn check_iterations(iterations: i32) -> Result<u32, CredentialError> {
    if iterations < MIN_ITERATIONS {
        return Err(CredentialError::TooFewIterations(iterations));
    }
    if iterations > MAX_ITERATIONS {
        return Err(CredentialError::TooManyIterations(iterations));
    }
    Ok(iterations as u32)
}

/// Why an exchange failed. The client is told only Kafka's generic message (see
/// `sasl`); these say why in the broker's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("SCRAM message of {0} bytes exceeds {MAX_MESSAGE_BYTES}")]
    TooLong(usize),
    #[error("malformed SCRAM {message}: {reason}")]
    Malformed {
        message: &'static str,
        reason: String,
    },
    #[error("SCRAM {0} not supported")]
    Unsupported(&'static str),
    #[error("authorization id {authzid:?} differs from user {user:?}")]
    AuthzId { authzid: String, user: String },
    #[error("no {mechanism} credential for user {user:?}")]
    UnknownUser {
        user: String,
        mechanism: ScramMechanism,
    },
    #[error("channel binding does not repeat the GS2 header")]
    ChannelBinding,
    #[error("nonce does not end with the exchange's nonce")]
    Nonce,
    #[error("invalid client proof for user {0:?}")]
    InvalidProof(String),
    #[error("SCRAM message after the exchange ended")]
    Finished,
}

fn malformed(message: &'static str, reason: impl Into<String>) -> ScramError {
    ScramError::Malformed {
        message,
        reason: reason.into(),
    }
}

/// A SCRAM nonce: printable ASCII except `,` (RFC 5802 `printable`), at least one.
fn check_nonce(nonce: &str, message: &'static str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(malformed(message, "nonce is empty or not printable ASCII"));
    }
    Ok(())
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(raw: &str) -> Result<String, ScramError> {
    if raw.is_empty() {
        return Err(malformed("client-first-message", "empty user name"));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("client-first-message", "bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.chars().any(char::is_control) {
        return Err(malformed(
            "client-first-message",
            "control character in user name",
        ));
    }
    Ok(out)
}

/// `name=value` of attribute `name`, or an error naming what was expected.
fn attribute<'a>(
    part: Option<&'a str>,
    name: char,
    message: &'static str,
) -> Result<&'a str, ScramError> {
    part.and_then(|p| p.strip_prefix(name))
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| malformed(message, format!("expected attribute {name}=")))
}

/// Optional extensions after the mandatory attributes (`name=value`, Kafka's
/// KIP-84 extensions). `tokenauth` asks for delegation tokens, which Fjord does not
/// issue; RFC 5802's `m=` is a mandatory extension no server here understands.
fn check_extensions<'a>(
    parts: impl Iterator<Item = &'a str>,
    message: &'static str,
) -> Result<(), ScramError> {
    for ext in parts {
        let (key, _) = ext
            .split_once('=')
            .ok_or_else(|| malformed(message, "extension without a value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed(message, "bad extension name"));
        }
        if key == "m" {
            return Err(ScramError::Unsupported("mandatory extension"));
        }
        if key == "tokenauth" {
            return Err(ScramError::Unsupported("delegation token authentication"));
        }
    }
    Ok(())
}

fn utf8<'a>(bytes: &'a [u8], message: &'static str) -> Result<&'a str, ScramError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ScramError::TooLong(bytes.len()));
    }
    std::str::from_utf8(bytes).map_err(|_| malformed(message, "not UTF-8"))
}

/// The parsed client-first-message.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    user: String,
    nonce: &'a str,
    bare: &'a str,
}

fn parse_client_first(msg: &str) -> Result<ClientFirst<'_>, ScramError> {
    const WHAT: &str = "client-first-message";
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = msg
        .split_once(',')
        .ok_or_else(|| malformed(WHAT, "no GS2 header"))?;
    match flag {
        "n" => {}
        // The client supports channel binding and believes the server does not
        // (`y`), or requires it (`p=`): Kafka offers no -PLUS mechanism and, like
        // Kafka, accepts only `n`.
        "y" => return Err(ScramError::Unsupported("channel binding (y)")),
        f if f.starts_with("p=") => return Err(ScramError::Unsupported("channel binding")),
        _ => return Err(malformed(WHAT, "GS2 flag is not n, y or p=")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or_else(|| malformed(WHAT, "GS2 header not closed"))?;
    let gs2_header = &msg[..msg.len() - bare.len()];
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(
            a.strip_prefix("a=")
                .ok_or_else(|| malformed(WHAT, "authzid without a="))?,
        )?),
    };
    let mut parts = bare.split(',');
    let user = decode_saslname(attribute(parts.next(), 'n', WHAT)?)?;
    let nonce = attribute(parts.next(), 'r', WHAT)?;
    check_nonce(nonce, WHAT)?;
    check_extensions(parts, WHAT)?;
    if let Some(authzid) = authzid {
        // Kafka authenticates as the authorization id only when it is the user itself.
        if authzid != user {
            return Err(ScramError::AuthzId { authzid, user });
        }
    }
    Ok(ClientFirst {
        gs2_header,
        user,
        nonce,
        bare,
    })
}

/// The parsed client-final-message.
struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    proof: Vec<u8>,
    without_proof: &'a str,
}

fn parse_client_final(msg: &str, hash_len: usize) -> Result<ClientFinal<'_>, ScramError> {
    const WHAT: &str = "client-final-message";
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(WHAT, "no proof"))?;
    let mut parts = without_proof.split(',');
    let channel_binding = BASE64
        .decode(attribute(parts.next(), 'c', WHAT)?)
        .map_err(|_| malformed(WHAT, "channel binding is not base64"))?;
    let nonce = attribute(parts.next(), 'r', WHAT)?;
    check_nonce(nonce, WHAT)?;
    check_extensions(parts, WHAT)?;
    let proof = BASE64
        .decode(proof)
        .map_err(|_| malformed(WHAT, "proof is not base64"))?;
    if proof.len() != hash_len {
        return Err(malformed(
            WHAT,
            format!("proof of {} bytes, expected {hash_len}", proof.len()),
        ));
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// Where the exchange is.
enum ScramState {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        /// None for a user without a credential: the exchange goes on with a made-up
        /// salt and fails at the proof, so the number of rounds does not tell who
        /// exists.
        credential: Option<ScramCredential>,
        gs2_header: String,
        /// client-nonce + server-nonce.
        nonce: String,
        /// client-first-message-bare + "," + server-first-message + ",".
        auth_prefix: String,
    },
    Done,
}

/// The server side of one SCRAM exchange: client-first -> server-first,
/// client-final -> server-final.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ScramState,
}

/// A finished exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSuccess {
    pub user: String,
    /// The server-final-message (`v=<ServerSignature>`).
    pub server_final: Vec<u8>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: ScramState::AwaitingClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Is the client-first-message next?
    pub fn awaits_client_first(&self) -> bool {
        matches!(self.state, ScramState::AwaitingClientFirst)
    }

    /// Answer the client-first-message with the server-first-message. `lookup` finds
    /// the user's credential; `server_nonce` (printable, no `,`) is fresh randomness
    /// from the caller; `unknown_salt` is the salt shown for a user with no credential
    /// (derive it from the name and a process secret, so that it is stable).
    pub fn client_first(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
        unknown_salt: impl FnOnce(&str) -> Vec<u8>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ScramState::AwaitingClientFirst) {
            return Err(ScramError::Finished);
        }
        self.state = ScramState::Done;
        let first = parse_client_first(utf8(msg, "client-first-message")?)?;
        debug_assert!(check_nonce(server_nonce, "server nonce").is_ok());
        let credential = lookup(&first.user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (unknown_salt(&first.user), MIN_ITERATIONS),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        self.state = ScramState::AwaitingClientFinal {
            user: first.user,
            credential,
            gs2_header: first.gs2_header.to_string(),
            nonce,
            auth_prefix: format!("{},{server_first},", first.bare),
        };
        Ok(server_first.into_bytes())
    }

    /// Check the client-final-message's proof and answer the server-final-message.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<ScramSuccess, ScramError> {
        let ScramState::AwaitingClientFinal {
            user,
            credential,
            gs2_header,
            nonce,
            auth_prefix,
        } = std::mem::replace(&mut self.state, ScramState::Done)
        else {
            return Err(ScramError::Finished);
        };
        let m = self.mechanism;
        let fin = parse_client_final(utf8(msg, "client-final-message")?, m.hash_len())?;
        if fin.channel_binding != gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        // Kafka checks that the nonce ends with the exchange's (ScramSaslServer), and
        // librdkafka before 2.1 sends its own nonce again in front of it: accepted for
        // those clients. The proof covers the message as sent, so nothing is weakened.
        if !fin.nonce.ends_with(&nonce) {
            return Err(ScramError::Nonce);
        }
        let Some(credential) = credential else {
            return Err(ScramError::UnknownUser { user, mechanism: m });
        };
        let auth_message = [auth_prefix.as_bytes(), fin.without_proof.as_bytes()];
        let client_signature = m.hmac(&credential.stored_key, &auth_message);
        let client_key: Vec<u8> = fin
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidProof(user));
        }
        let server_signature = m.hmac(&credential.server_key, &auth_message);
        Ok(ScramSuccess {
            user,
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

/// A fresh server nonce: 24 random bytes, base64 (never a `,`).
pub fn random_nonce() -> String {
    BASE64.encode(rand::random::<[u8; 24]>())
}

/// A fresh random salt for a new credential.
pub fn random_salt() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// The salt shown for a user without a credential: HMAC(secret, user), so that asking
/// twice shows the same salt, as for a user that exists.
pub fn unknown_user_salt(secret: &[u8], user: &str) -> Vec<u8> {
    ScramMechanism::Sha256.hmac(secret, &[user.as_bytes()])
}

#[cfg(test)]
#[path = "scram_tests.rs"]
pub(crate) mod tests;
