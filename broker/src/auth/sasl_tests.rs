use std::collections::BTreeMap;

use super::*;
use crate::auth::scram::random_salt;
use crate::auth::scram::tests::TestClient;

const AUTH_FAILED: i16 = 58;
const ILLEGAL_STATE: i16 = 34;
const UNSUPPORTED_MECHANISM: i16 = 33;

struct Store(BTreeMap<(String, ScramMechanism), ScramCredential>);

impl Credentials for Store {
    fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        self.0.get(&(user.to_string(), m)).cloned()
    }
}

fn store(users: &[(&str, &str)]) -> Store {
    let mut map = BTreeMap::new();
    for (user, password) in users {
        for m in ScramMechanism::ALL {
            let c = ScramCredential::from_password(m, password, random_salt(), 4096).unwrap();
            map.insert((user.to_string(), m), c);
        }
    }
    Store(map)
}

fn connection(reauth_ms: i64) -> SaslConnection {
    SaslConnection::new(Arc::new(SaslSettings::new(
        vec![
            Mechanism::Scram(ScramMechanism::Sha512),
            Mechanism::Scram(ScramMechanism::Sha256),
            Mechanism::Plain,
        ],
        reauth_ms,
    )))
}

/// A whole SCRAM exchange on `conn`: the answer of its last round.
fn scram_login(
    conn: &mut SaslConnection,
    store: &Store,
    m: ScramMechanism,
    user: &str,
    password: &str,
    now_ms: i64,
) -> Answer<AuthenticateAnswer> {
    let hs = conn.handshake(m.name(), 1);
    assert_eq!(hs.body.error_code, 0);
    assert!(!hs.close);
    let client = TestClient::new(m, user, password);
    let first = conn.authenticate(client.first().as_bytes(), store, "SRV", now_ms);
    assert_eq!(first.body.error_code, 0, "{:?}", first.body.error_message);
    conn.authenticate(
        client.last(&first.body.auth_bytes).as_bytes(),
        store,
        "SRV",
        now_ms,
    )
}

#[test]
fn only_api_versions_and_sasl_requests_are_served_before_authentication() {
    let conn = connection(0);
    assert_eq!(conn.gate(ApiKey::ApiVersions, 0), Gate::Serve);
    assert_eq!(conn.gate(ApiKey::SaslHandshake, 0), Gate::Sasl);
    assert_eq!(conn.gate(ApiKey::SaslAuthenticate, 0), Gate::Sasl);
    for key in [
        ApiKey::Metadata,
        ApiKey::Produce,
        ApiKey::CreateTopics,
        ApiKey::Fetch,
    ] {
        assert!(matches!(conn.gate(key, 0), Gate::Close(_)), "{key:?}");
    }
    assert!(conn.principal().is_none());
}

#[test]
fn scram_and_plain_logins_set_the_principal() {
    let store = store(&[("alice", "pw")]);
    for m in ScramMechanism::ALL {
        let mut conn = connection(0);
        let done = scram_login(&mut conn, &store, m, "alice", "pw", 0);
        assert_eq!(done.body.error_code, 0, "{:?}", done.body.error_message);
        assert!(done.body.auth_bytes.starts_with(b"v="));
        assert_eq!(done.body.session_lifetime_ms, 0);
        assert!(!done.close);
        assert_eq!(conn.principal(), Some(&Principal::user("alice")));
        assert_eq!(conn.gate(ApiKey::Metadata, i64::MAX), Gate::Serve);
    }
    let mut conn = connection(0);
    assert_eq!(conn.handshake("PLAIN", 1).body.error_code, 0);
    let done = conn.authenticate(b"\0alice\0pw", &store, "SRV", 0);
    assert_eq!(done.body.error_code, 0);
    assert!(done.body.auth_bytes.is_empty());
    assert_eq!(conn.principal(), Some(&Principal::user("alice")));
}

#[test]
fn a_wrong_password_is_refused_with_kafkas_message_and_closes() {
    let store = store(&[("alice", "pw")]);
    let mut conn = connection(0);
    let done = scram_login(
        &mut conn,
        &store,
        ScramMechanism::Sha512,
        "alice",
        "nope",
        0,
    );
    assert_eq!(done.body.error_code, AUTH_FAILED);
    assert_eq!(
        done.body.error_message.as_deref(),
        Some("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512")
    );
    assert!(done.close);
    assert!(conn.principal().is_none());
    // An unknown user gets the very same answer, after the same number of rounds.
    let mut conn = connection(0);
    let unknown = scram_login(&mut conn, &store, ScramMechanism::Sha512, "bob", "pw", 0);
    assert_eq!(unknown, done);

    let mut conn = connection(0);
    conn.handshake("PLAIN", 1);
    let done = conn.authenticate(b"\0alice\0nope", &store, "SRV", 0);
    assert_eq!(done.body.error_code, AUTH_FAILED);
    assert_eq!(
        done.body.error_message.as_deref(),
        Some("Authentication failed: Invalid username or password")
    );
    assert!(done.close);
    // Garbage as the first SCRAM message fails the same way.
    let mut conn = connection(0);
    conn.handshake("SCRAM-SHA-256", 1);
    let done = conn.authenticate(b"\x00\xff garbage", &store, "SRV", 0);
    assert_eq!(done.body.error_code, AUTH_FAILED);
    assert!(done.close);
}

#[test]
fn handshakes_out_of_turn_or_for_other_mechanisms_are_refused() {
    let mut conn = SaslConnection::new(Arc::new(SaslSettings::new(
        vec![Mechanism::Scram(ScramMechanism::Sha512)],
        0,
    )));
    let hs = conn.handshake("PLAIN", 1);
    assert_eq!(hs.body.error_code, UNSUPPORTED_MECHANISM);
    assert_eq!(hs.body.mechanisms, vec!["SCRAM-SHA-512"]);
    assert!(hs.close);

    let mut conn = connection(0);
    assert_eq!(conn.handshake("SCRAM-SHA-512", 1).body.error_code, 0);
    let again = conn.handshake("SCRAM-SHA-512", 1);
    assert_eq!(again.body.error_code, ILLEGAL_STATE);
    assert!(again.close);
    // ApiVersions is served only before the handshake, as in Kafka.
    assert!(matches!(conn.gate(ApiKey::ApiVersions, 0), Gate::Close(_)));

    let mut conn = connection(0);
    let early = conn.authenticate(b"n,,n=alice,r=x", &store(&[]), "SRV", 0);
    assert_eq!(early.body.error_code, ILLEGAL_STATE);
    assert!(early.close);
}

#[test]
fn sessions_expire_after_the_reauth_interval_and_reauthentication_renews_them() {
    let store = store(&[("alice", "pw"), ("bob", "pw")]);
    let m = ScramMechanism::Sha256;
    let mut conn = connection(1000);
    let done = scram_login(&mut conn, &store, m, "alice", "pw", 5_000);
    assert_eq!(done.body.session_lifetime_ms, 1000);
    assert_eq!(conn.gate(ApiKey::Fetch, 5_999), Gate::Serve);
    // At the limit the session is over: the next request closes the connection ...
    assert!(matches!(conn.gate(ApiKey::Fetch, 6_000), Gate::Close(_)));
    // ... unless it starts a re-authentication.
    assert_eq!(conn.gate(ApiKey::SaslHandshake, 6_000), Gate::Sasl);
    let done = scram_login(&mut conn, &store, m, "alice", "pw", 6_500);
    assert_eq!(done.body.error_code, 0);
    assert_eq!(done.body.session_lifetime_ms, 1000);
    assert_eq!(conn.gate(ApiKey::Fetch, 7_499), Gate::Serve);
    assert!(matches!(conn.gate(ApiKey::Fetch, 7_500), Gate::Close(_)));

    // During a re-authentication other requests close the connection.
    assert_eq!(conn.handshake(m.name(), 1).body.error_code, 0);
    assert!(matches!(conn.gate(ApiKey::Fetch, 7_000), Gate::Close(_)));
}

#[test]
fn reauthentication_keeps_the_principal_and_the_mechanism() {
    let store = store(&[("alice", "pw"), ("bob", "pw")]);
    let m = ScramMechanism::Sha256;
    let mut conn = connection(1000);
    scram_login(&mut conn, &store, m, "alice", "pw", 0);
    let done = scram_login(&mut conn, &store, m, "bob", "pw", 10);
    assert_eq!(done.body.error_code, AUTH_FAILED);
    assert_eq!(
        done.body.error_message.as_deref(),
        Some("Cannot change principals during re-authentication from User:alice: User:bob")
    );
    assert!(done.close);

    let mut conn = connection(1000);
    scram_login(&mut conn, &store, m, "alice", "pw", 0);
    // Kafka accepts the handshake and fails the authentication that follows.
    assert_eq!(conn.handshake("SCRAM-SHA-512", 1).body.error_code, 0);
    let done = conn.authenticate(b"n,,n=alice,r=x", &store, "SRV", 10);
    assert_eq!(done.body.error_code, AUTH_FAILED);
    assert_eq!(
        done.body.error_message.as_deref(),
        Some("SASL mechanism 'SCRAM-SHA-512' requested by client is not supported for re-authentication of mechanism 'SCRAM-SHA-256'")
    );
    assert!(done.close);
    // A failed re-authentication says so.
    let mut conn = connection(1000);
    scram_login(&mut conn, &store, m, "alice", "pw", 0);
    let done = scram_login(&mut conn, &store, m, "alice", "wrong", 10);
    assert_eq!(
        done.body.error_message.as_deref(),
        Some("Authentication failed during re-authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")
    );
}

#[test]
fn a_second_authenticate_after_success_is_illegal_but_keeps_the_connection() {
    let store = store(&[("alice", "pw")]);
    let mut conn = connection(0);
    scram_login(&mut conn, &store, ScramMechanism::Sha256, "alice", "pw", 0);
    let extra = conn.authenticate(b"anything", &store, "SRV", 0);
    assert_eq!(extra.body.error_code, ILLEGAL_STATE);
    assert!(!extra.close);
    assert_eq!(conn.principal(), Some(&Principal::user("alice")));
}

#[test]
fn mechanism_names_parse_strictly() {
    assert_eq!(Mechanism::parse("PLAIN"), Ok(Mechanism::Plain));
    assert_eq!(
        Mechanism::parse("SCRAM-SHA-512"),
        Ok(Mechanism::Scram(ScramMechanism::Sha512))
    );
    assert!(Mechanism::parse("GSSAPI").is_err());
    assert!(Mechanism::parse("plain").is_err());
}

#[test]
fn a_v0_handshake_switches_to_raw_tokens_for_the_first_login_only() {
    let store = store(&[("alice", "pw")]);
    let m = ScramMechanism::Sha256;
    let mut conn = connection(1000);
    assert!(!conn.expects_raw_token());
    assert_eq!(conn.handshake(m.name(), 0).body.error_code, 0);
    assert!(conn.expects_raw_token());
    let client = TestClient::new(m, "alice", "pw");
    let first = conn.authenticate(client.first().as_bytes(), &store, "SRV", 0);
    assert!(conn.expects_raw_token());
    let done = conn.authenticate(
        client.last(&first.body.auth_bytes).as_bytes(),
        &store,
        "SRV",
        0,
    );
    assert_eq!(done.body.error_code, 0);
    assert!(!conn.expects_raw_token());
    assert_eq!(conn.principal(), Some(&Principal::user("alice")));
    // Re-authentication is a v1 affair even if the client says v0.
    assert_eq!(conn.handshake(m.name(), 0).body.error_code, 0);
    assert!(!conn.expects_raw_token());
}
