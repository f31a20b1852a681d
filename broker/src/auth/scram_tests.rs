use super::*;

/// RFC 7677 section 3: user "user", password "pencil", SCRAM-SHA-256.
const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC7677_SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc7677_credential() -> ScramCredential {
    let salt = BASE64.decode(RFC7677_SALT_B64).unwrap();
    ScramCredential::from_password(ScramMechanism::Sha256, "pencil", salt, 4096).unwrap()
}

fn no_salt(_: &str) -> Vec<u8> {
    b"unknown".to_vec()
}

#[test]
fn the_rfc_7677_exchange_succeeds_byte_for_byte() {
    let credential = rfc7677_credential();
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    let first = server
        .client_first(
            RFC7677_CLIENT_FIRST.as_bytes(),
            |u| (u == "user").then(|| credential.clone()),
            RFC7677_SERVER_NONCE,
            no_salt,
        )
        .unwrap();
    assert_eq!(std::str::from_utf8(&first).unwrap(), RFC7677_SERVER_FIRST);
    let done = server
        .client_final(RFC7677_CLIENT_FINAL.as_bytes())
        .unwrap();
    assert_eq!(done.user, "user");
    assert_eq!(
        std::str::from_utf8(&done.server_final).unwrap(),
        RFC7677_SERVER_FINAL
    );
    // One exchange per server.
    assert_eq!(
        server.client_final(RFC7677_CLIENT_FINAL.as_bytes()),
        Err(ScramError::Finished)
    );
}

/// The client side of RFC 5802, to drive the server with any mechanism and password.
pub(crate) struct TestClient {
    pub mechanism: ScramMechanism,
    pub user: String,
    pub password: String,
    pub nonce: String,
}

impl TestClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> TestClient {
        TestClient {
            mechanism,
            user: user.into(),
            password: password.into(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
        }
    }

    pub fn first(&self) -> String {
        let name = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n,,n={name},r={}", self.nonce)
    }

    /// The client-final-message answering `server_first`.
    pub fn last(&self, server_first: &[u8]) -> String {
        let sf = std::str::from_utf8(server_first).unwrap();
        let nonce = sf.split(',').find_map(|p| p.strip_prefix("r=")).unwrap();
        self.sign(server_first, &format!("c=biws,r={nonce}"))
    }

    /// The client-final-message `without_proof` with its proof, for `server_first`.
    pub fn sign(&self, server_first: &[u8], without_proof: &str) -> String {
        let sf = std::str::from_utf8(server_first).unwrap();
        let mut salt = vec![];
        let mut iterations = 0;
        for part in sf.split(',') {
            match part.split_at(2) {
                ("s=", v) => salt = BASE64.decode(v).unwrap(),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let stored_key = m.hash(&client_key);
        let bare = &self.first()[3..];
        let auth = format!("{bare},{sf},{without_proof}");
        let signature = m.hmac(&stored_key, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", BASE64.encode(proof))
    }
}

/// Runs a whole exchange against a store holding `stored` for `alice`.
fn exchange(
    mechanism: ScramMechanism,
    stored: &ScramCredential,
    client: &TestClient,
) -> Result<ScramSuccess, ScramError> {
    let mut server = ScramServer::new(mechanism);
    let first = server.client_first(
        client.first().as_bytes(),
        |u| (u == "alice").then(|| stored.clone()),
        &random_nonce(),
        no_salt,
    )?;
    server.client_final(client.last(&first).as_bytes())
}

#[test]
fn both_mechanisms_accept_the_right_password_and_refuse_a_wrong_one() {
    for m in ScramMechanism::ALL {
        let stored = ScramCredential::from_password(m, "s3cret", random_salt(), 4096).unwrap();
        let ok = exchange(m, &stored, &TestClient::new(m, "alice", "s3cret")).unwrap();
        assert_eq!(ok.user, "alice");
        assert!(ok.server_final.starts_with(b"v="));
        assert_eq!(
            exchange(m, &stored, &TestClient::new(m, "alice", "s3cret!")),
            Err(ScramError::InvalidProof("alice".into()))
        );
    }
}

#[test]
fn an_unknown_user_gets_a_stable_salt_and_fails_only_at_the_proof() {
    let m = ScramMechanism::Sha512;
    let client = TestClient::new(m, "mallory", "x");
    let mut server = ScramServer::new(m);
    let salt = |u: &str| unknown_user_salt(b"secret", u);
    let first = server
        .client_first(client.first().as_bytes(), |_| None, "abc", salt)
        .unwrap();
    let mut again = ScramServer::new(m);
    let second = again
        .client_first(client.first().as_bytes(), |_| None, "abc", salt)
        .unwrap();
    assert_eq!(first, second, "the same made-up salt both times");
    assert_eq!(
        server.client_final(client.last(&first).as_bytes()),
        Err(ScramError::UnknownUser {
            user: "mallory".into(),
            mechanism: m
        })
    );
}

#[test]
fn user_names_are_unescaped_and_authzid_must_be_the_user() {
    let m = ScramMechanism::Sha256;
    let stored = ScramCredential::from_password(m, "pw", random_salt(), 4096).unwrap();
    let client = TestClient::new(m, "a,b=c", "pw");
    let mut server = ScramServer::new(m);
    let first = server
        .client_first(
            client.first().as_bytes(),
            |u| (u == "a,b=c").then(|| stored.clone()),
            "n1",
            no_salt,
        )
        .unwrap();
    assert_eq!(
        server
            .client_final(client.last(&first).as_bytes())
            .unwrap()
            .user,
        "a,b=c"
    );

    let mut server = ScramServer::new(m);
    let err = server
        .client_first(b"n,a=bob,n=alice,r=xyz", |_| None, "n1", no_salt)
        .unwrap_err();
    assert!(matches!(err, ScramError::AuthzId { .. }), "{err}");
    // An authzid equal to the user is fine, and the channel binding must repeat it.
    let mut server = ScramServer::new(m);
    let first = server
        .client_first(
            b"n,a=alice,n=alice,r=xyz",
            |_| Some(stored.clone()),
            "n1",
            no_salt,
        )
        .unwrap();
    let nonce = std::str::from_utf8(&first).unwrap()[2..]
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let err = server
        .client_final(format!("c=biws,r={nonce},p={}", BASE64.encode([0; 32])).as_bytes())
        .unwrap_err();
    assert_eq!(err, ScramError::ChannelBinding);
}

#[test]
fn hostile_client_first_messages_are_refused() {
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"x,,n=alice,r=abc",
        b"y,,n=alice,r=abc",
        b"p=tls-unique,,n=alice,r=abc",
        b"n,,r=abc,n=alice",     // attributes out of order
        b"n,,n=,r=abc",          // empty user
        b"n,,n=al=ice,r=abc",    // bad escape
        b"n,,n=al=2,r=abc",      // truncated escape
        b"n,,n=alice",           // no nonce
        b"n,,n=alice,r=",        // empty nonce
        b"n,,n=alice,r=a\x01b",  // unprintable nonce
        b"n,,m=ext,n=alice,r=a", // mandatory extension first
        b"n,,n=alice,r=abc,m=1", // mandatory extension
        b"n,,n=alice,r=abc,tokenauth=true",
        b"n,,n=alice,r=abc,=x",
        b"n,,n=alice,r=abc,noequals",
        b"n,,n=al\x7fice,r=abc",
        b"n,,n=\xff\xfe,r=abc", // not UTF-8
        b"n,b=x,n=alice,r=abc",
    ];
    for &msg in cases {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let looked_up = std::cell::Cell::new(false);
        let r = server.client_first(
            msg,
            |_| {
                looked_up.set(true);
                None
            },
            "n1",
            no_salt,
        );
        assert!(r.is_err(), "accepted {:?}", String::from_utf8_lossy(msg));
        assert!(
            !looked_up.get(),
            "looked up a user for {:?}",
            String::from_utf8_lossy(msg)
        );
        // A refused exchange cannot be continued.
        assert_eq!(
            server.client_final(b"c=biws,r=x,p=AAAA"),
            Err(ScramError::Finished)
        );
    }
    let long = format!("n,,n=alice,r={}", "a".repeat(MAX_MESSAGE_BYTES));
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert_eq!(
        server.client_first(long.as_bytes(), |_| None, "n1", no_salt),
        Err(ScramError::TooLong(long.len()))
    );
    // Unknown optional extensions are ignored, as Kafka does.
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(server
        .client_first(b"n,,n=alice,r=abc,ext1=v", |_| None, "n1", no_salt)
        .is_ok());
}

#[test]
fn hostile_client_final_messages_are_refused() {
    let m = ScramMechanism::Sha256;
    let stored = ScramCredential::from_password(m, "pw", random_salt(), 4096).unwrap();
    let client = TestClient::new(m, "alice", "pw");
    let good_proof = BASE64.encode([7; 32]);
    let start = || {
        let mut server = ScramServer::new(m);
        let first = server
            .client_first(
                client.first().as_bytes(),
                |_| Some(stored.clone()),
                "SRV",
                no_salt,
            )
            .unwrap();
        (server, first)
    };
    let (_, first) = start();
    let nonce = format!("{}SRV", client.nonce);
    assert!(std::str::from_utf8(&first)
        .unwrap()
        .starts_with(&format!("r={nonce},")));
    let cases = [
        (format!("c=biws,r={nonce}"), "no proof"),
        (format!("r={nonce},c=biws,p={good_proof}"), "order"),
        (
            format!("c=biws,r={}XX,p={good_proof}", nonce),
            "nonce extended",
        ),
        (
            format!("c=biws,r={},p={good_proof}", client.nonce),
            "server nonce missing",
        ),
        (format!("c=eSws,r={nonce},p={good_proof}"), "y,, binding"),
        (
            format!("c=!!,r={nonce},p={good_proof}"),
            "binding not base64",
        ),
        (format!("c=biws,r={nonce},p=!!!"), "proof not base64"),
        (
            format!("c=biws,r={nonce},p={}", BASE64.encode([7; 31])),
            "short proof",
        ),
        (
            format!("c=biws,r={nonce},p={}", BASE64.encode([7; 64])),
            "long proof",
        ),
        (
            format!("c=biws,r={nonce},m=x,p={good_proof}"),
            "mandatory extension",
        ),
        (format!("c=biws,r={nonce},p={good_proof}"), "wrong proof"),
    ];
    for (msg, what) in cases {
        let (mut server, _) = start();
        assert!(
            server.client_final(msg.as_bytes()).is_err(),
            "{what}: {msg}"
        );
    }
    // The right proof still works after all that, on a fresh exchange.
    // Older librdkafka repeats its nonce in front of the exchange's; Kafka accepts it.
    let (mut server, first) = start();
    let doubled = client.sign(&first, &format!("c=biws,r={}{nonce}", client.nonce));
    assert!(server.client_final(doubled.as_bytes()).is_ok());
    let (mut server, first) = start();
    assert!(server.client_final(client.last(&first).as_bytes()).is_ok());
}

#[test]
fn credentials_are_checked_against_kafkas_bounds() {
    let m = ScramMechanism::Sha512;
    assert_eq!(
        ScramCredential::from_password(m, "pw", random_salt(), MIN_ITERATIONS - 1),
        Err(CredentialError::TooFewIterations(MIN_ITERATIONS - 1))
    );
    assert_eq!(
        ScramCredential::from_password(m, "pw", random_salt(), MAX_ITERATIONS + 1),
        Err(CredentialError::TooManyIterations(MAX_ITERATIONS + 1))
    );
    assert!(ScramCredential::from_password(m, "pw", random_salt(), MIN_ITERATIONS).is_ok());
    assert!(ScramCredential::from_password(m, "pw", random_salt(), MAX_ITERATIONS).is_ok());
    assert_eq!(
        ScramCredential::from_password(m, "pw", vec![], 4096),
        Err(CredentialError::Salt(0))
    );
    assert_eq!(
        ScramCredential::from_password(m, "pw", vec![1; MAX_SALT_BYTES + 1], 4096),
        Err(CredentialError::Salt(MAX_SALT_BYTES + 1))
    );
    let c = ScramCredential::from_password(m, "pw", vec![1; MAX_SALT_BYTES], 4096).unwrap();
    assert!(c.check(m).is_ok());
    // A SHA-512 credential is not a SHA-256 one.
    assert!(matches!(
        c.check(ScramMechanism::Sha256),
        Err(CredentialError::KeyLength { .. })
    ));
    assert!(c.verifies_password(m, "pw"));
    assert!(!c.verifies_password(m, "pw "));
    // No key material in the debug form.
    assert!(!format!("{c:?}").contains("key"), "{c:?}");
}

#[test]
fn mechanisms_have_kafkas_names_and_numbers() {
    assert_eq!(
        ScramMechanism::from_name("SCRAM-SHA-256"),
        Some(ScramMechanism::Sha256)
    );
    assert_eq!(
        ScramMechanism::from_name("SCRAM-SHA-512"),
        Some(ScramMechanism::Sha512)
    );
    assert_eq!(ScramMechanism::from_name("scram-sha-512"), None);
    assert_eq!(
        ScramMechanism::from_kafka_type(1),
        Some(ScramMechanism::Sha256)
    );
    assert_eq!(
        ScramMechanism::from_kafka_type(2),
        Some(ScramMechanism::Sha512)
    );
    assert_eq!(ScramMechanism::from_kafka_type(0), None);
}
