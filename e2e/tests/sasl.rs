//! SASL with librdkafka (the `rdkafka` crate) over SASL_PLAINTEXT:
//!
//! 1. SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN log in with a credential created at start
//!    (`FJORD_SCRAM_BOOTSTRAP`), create a topic, produce and consume it back;
//! 2. a wrong password is refused with Kafka's authentication error, and nothing is
//!    served to that client;
//! 3. the same over SASL_SSL (SASL inside TLS);
//! 4. `kafka-configs.sh` (the Java client over SASL_PLAINTEXT) adds, describes and
//!    deletes a user's credential, and refuses too few iterations;
//! 5. with `--connections-max-reauth-ms` small, a consumer reading while a producer
//!    writes keeps working across several re-authentications (KIP-368), and no
//!    connection is closed for an expired session.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::{metric, scrape, DEADLINE};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PASSWORD: &str = "alice-secret";

async fn sasl_broker(extra: &[&str]) -> Result<BrokerProcess> {
    let mut args: Vec<String> = vec![
        "--sasl-enabled-mechanisms".into(),
        "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    BrokerProcess::start(BrokerOptions {
        security_protocol: "SASL_PLAINTEXT",
        args,
        env: vec![(
            "FJORD_SCRAM_BOOTSTRAP".into(),
            format!(
                "SCRAM-SHA-256=[name=alice,password={PASSWORD}] SCRAM-SHA-512=[name=alice,password={PASSWORD}]"
            ),
        )],
        ..BrokerOptions::default()
    })
    .await
}

fn config(bootstrap: &str, mechanism: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", "alice")
        .set("sasl.password", password)
        .set("message.timeout.ms", "20000")
        .set("socket.timeout.ms", "10000");
    c
}

async fn produce(bootstrap: &str, mechanism: &str, topic: &str, values: &[String]) -> Result<()> {
    let producer: FutureProducer = config(bootstrap, mechanism, PASSWORD).create()?;
    for v in values {
        producer
            .send(
                FutureRecord::<(), _>::to(topic).partition(0).payload(v),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("{mechanism}: producing {v}"))?;
    }
    Ok(())
}

/// Reads partition 0 of `topic` from the start until `n` records came back.
fn consume(consumer: &BaseConsumer<impl ConsumerContext>, n: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        if Instant::now() >= deadline {
            bail!("read {} of {n} records within {DEADLINE:?}", out.len());
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into())
            }
            Some(Err(e)) => bail!("consumer error: {e}"),
            None => {}
        }
    }
    Ok(out)
}

fn assigned_consumer(bootstrap: &str, mechanism: &str, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = config(bootstrap, mechanism, PASSWORD)
        .set("group.id", format!("g-{topic}"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_and_plain_clients_produce_and_consume() -> Result<()> {
    let broker = sasl_broker(&[]).await?;
    let bootstrap = broker.bootstrap();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let topic = unique_topic("sasl");
        let admin: AdminClient<DefaultClientContext> =
            config(&bootstrap, mechanism, PASSWORD).create()?;
        let created = admin
            .create_topics(
                &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await?;
        ensure!(
            created.iter().all(|r| r.is_ok()),
            "{mechanism}: {created:?}"
        );
        let values: Vec<String> = (0..20).map(|i| format!("{mechanism}-{i}")).collect();
        produce(&bootstrap, mechanism, &topic, &values).await?;
        let consumer = assigned_consumer(&bootstrap, mechanism, &topic)?;
        let read = tokio::task::block_in_place(|| consume(&consumer, values.len()))?;
        ensure!(read == values, "{mechanism}: read back {read:?}");
    }
    Ok(())
}

/// Keeps the errors librdkafka reports.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_with_the_authentication_error() -> Result<()> {
    let broker = sasl_broker(&[]).await?;
    let bootstrap = broker.bootstrap();
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let errors = Errors::default();
        let consumer: BaseConsumer<Errors> = config(&bootstrap, mechanism, "not-the-password")
            .create_with_context(errors.clone())?;
        let metadata =
            tokio::task::block_in_place(|| consumer.fetch_metadata(None, Duration::from_secs(5)));
        ensure!(
            metadata.is_err(),
            "{mechanism}: metadata served: {metadata:?}"
        );
        let expected = match mechanism {
            "PLAIN" => "Authentication failed: Invalid username or password".to_string(),
            m => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {m}"
            ),
        };
        // librdkafka reports errors through the error callback, served by poll().
        let deadline = Instant::now() + DEADLINE;
        tokio::task::block_in_place(|| -> Result<()> {
            while !errors
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.contains(&expected))
            {
                ensure!(
                    Instant::now() < deadline,
                    "{mechanism}: no {expected:?} within {DEADLINE:?}; errors: {:?}",
                    errors.0.lock().unwrap()
                );
                let _ = consumer.poll(Duration::from_millis(100));
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_running_consumer_keeps_working_across_reauthentications() -> Result<()> {
    const REAUTH_MS: u64 = 2000;
    let broker = sasl_broker(&["--connections-max-reauth-ms", &REAUTH_MS.to_string()]).await?;
    let bootstrap = broker.bootstrap();
    let mechanism = "SCRAM-SHA-512";
    let topic = unique_topic("reauth");
    produce(&bootstrap, mechanism, &topic, &["first".to_string()]).await?;
    let consumer = assigned_consumer(&bootstrap, mechanism, &topic)?;
    let producer: FutureProducer = config(&bootstrap, mechanism, PASSWORD).create()?;
    let handshakes = || async {
        let text = scrape(&broker.http_addr()).await?;
        Ok::<_, anyhow::Error>(
            metric(&text, "fjord_requests_total", &[("api", "SaslHandshake")]).unwrap_or(0.0),
        )
    };
    let initial = handshakes().await?;
    // Produce and consume, one record at a time, until the clients have re-authenticated
    // on their connections several times over.
    let mut sent = vec!["first".to_string()];
    let mut read = tokio::task::block_in_place(|| consume(&consumer, 1))?;
    let deadline = Instant::now() + DEADLINE;
    while handshakes().await? < initial + 6.0 {
        ensure!(
            Instant::now() < deadline,
            "fewer than 6 re-authentications within {DEADLINE:?} (connections.max.reauth.ms {REAUTH_MS})"
        );
        let v = format!("r{}", sent.len());
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).partition(0).payload(&v),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)?;
        sent.push(v);
        read.extend(tokio::task::block_in_place(|| consume(&consumer, 1))?);
    }
    ensure!(read == sent, "read {read:?}, sent {sent:?}");
    let logs = broker.logs();
    ensure!(
        !logs.contains("expired"),
        "a connection was closed for an expired session:\n{logs}"
    );
    Ok(())
}

/// Runs one of Kafka's own tools (e2e/apache-kafka.sh) against the broker as the
/// bootstrap admin over SASL_PLAINTEXT with SCRAM-SHA-512 (the Java client's SASL);
/// its stdout.
fn kafka_tool(broker: &BrokerProcess, tool: &str, args: &[&str]) -> Result<String> {
    let props = broker.dir().join("admin.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"{PASSWORD}\";\n"
        ),
    )?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-kafka.sh");
    let out = std::process::Command::new("bash")
        .args([script, "tool", tool, "--bootstrap-server"])
        .arg(broker.bootstrap())
        .arg("--command-config")
        .arg(&props)
        .args(args)
        .output()
        .context("running e2e/apache-kafka.sh (needs java and Kafka's classpath)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "{tool} {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// Can `user` log in with `password` over SCRAM-SHA-512 (librdkafka)?
fn logs_in(bootstrap: &str, user: &str, password: &str) -> Result<bool> {
    let consumer: BaseConsumer = config(bootstrap, "SCRAM-SHA-512", password)
        .set("sasl.username", user)
        .create()?;
    Ok(consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_configs_manages_scram_credentials() -> Result<()> {
    let broker = sasl_broker(&[]).await?;
    let bootstrap = broker.bootstrap();
    let users = ["--entity-type", "users", "--entity-name", "bob"];
    tokio::task::block_in_place(|| -> Result<()> {
        ensure!(
            !logs_in(&bootstrap, "bob", "bob-secret")?,
            "bob logged in before he had a credential"
        );
        let add = [
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-512=[iterations=8192,password=bob-secret]",
            ][..],
            &users,
        ]
        .concat();
        kafka_tool(&broker, "kafka-configs", &add)?;
        let described = kafka_tool(
            &broker,
            "kafka-configs",
            &[&["--describe"][..], &users].concat(),
        )?;
        ensure!(
            described.contains("SCRAM-SHA-512=iterations=8192"),
            "describe: {described}"
        );
        ensure!(
            logs_in(&bootstrap, "bob", "bob-secret")?,
            "bob cannot log in with his new password"
        );
        ensure!(
            !logs_in(&bootstrap, "bob", "wrong")?,
            "bob logged in with a wrong password"
        );
        // Too few iterations: refused, and the credential stays as it was.
        let weak = [
            &[
                "--alter",
                "--add-config",
                "SCRAM-SHA-512=[iterations=1000,password=weak]",
            ][..],
            &users,
        ]
        .concat();
        ensure!(
            kafka_tool(&broker, "kafka-configs", &weak).is_err(),
            "1000 iterations accepted"
        );
        ensure!(
            logs_in(&bootstrap, "bob", "bob-secret")?,
            "a refused change altered bob's credential"
        );
        let delete = [&["--alter", "--delete-config", "SCRAM-SHA-512"][..], &users].concat();
        kafka_tool(&broker, "kafka-configs", &delete)?;
        ensure!(
            !logs_in(&bootstrap, "bob", "bob-secret")?,
            "bob logged in after his credential was deleted"
        );
        Ok(())
    })
}

/// A CA and a broker certificate for 127.0.0.1 (PEM), written to `dir`: the CA's path.
fn broker_certificates(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Fjord SASL test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params.distinguished_name.push(DnType::CommonName, "broker");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("broker.pem"), cert.pem())?;
    std::fs::write(dir.join("broker.key"), key.serialize_pem())?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem())?;
    Ok(ca)
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_and_plain_over_sasl_ssl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = broker_certificates(dir.path())?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let broker = BrokerProcess::start(BrokerOptions {
        security_protocol: "SASL_SSL",
        args: vec![
            "--sasl-enabled-mechanisms".into(),
            "SCRAM-SHA-512,PLAIN".into(),
            "--ssl-keystore-location".into(),
            path("broker.pem"),
            "--ssl-key-location".into(),
            path("broker.key"),
        ],
        env: vec![(
            "FJORD_SCRAM_BOOTSTRAP".into(),
            format!("SCRAM-SHA-512=[name=alice,password={PASSWORD}]"),
        )],
        ..BrokerOptions::default()
    })
    .await?;
    let bootstrap = broker.bootstrap();
    let tls = |mechanism: &str, password: &str| {
        let mut c = config(&bootstrap, mechanism, password);
        c.set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", ca.display().to_string());
        c
    };
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let topic = unique_topic("sasl-ssl");
        let producer: FutureProducer = tls(mechanism, PASSWORD).create()?;
        let values: Vec<String> = (0..10).map(|i| format!("{mechanism}-{i}")).collect();
        for v in &values {
            producer
                .send(
                    FutureRecord::<(), _>::to(&topic).partition(0).payload(v),
                    Duration::from_secs(20),
                )
                .await
                .map_err(|(e, _)| e)
                .with_context(|| format!("{mechanism} over SASL_SSL\n{}", broker.logs()))?;
        }
        let consumer: BaseConsumer = tls(mechanism, PASSWORD)
            .set("group.id", format!("g-{topic}"))
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let read = tokio::task::block_in_place(|| consume(&consumer, values.len()))?;
        ensure!(
            read == values,
            "{mechanism} over SASL_SSL: read back {read:?}"
        );
        let wrong: BaseConsumer = tls(mechanism, "wrong").create()?;
        let metadata =
            tokio::task::block_in_place(|| wrong.fetch_metadata(None, Duration::from_secs(5)));
        ensure!(
            metadata.is_err(),
            "{mechanism}: a wrong password was served over SASL_SSL"
        );
    }
    Ok(())
}
