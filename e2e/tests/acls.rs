//! ACLs against a real broker with the authorizer on, and real clients.
//!
//! The broker first runs with `User:ANONYMOUS` (the principal of every connection on a
//! plaintext listener) as its super user: it creates the topics and the ACLs, through
//! CreateAcls and through Kafka's own `kafka-acls.sh`. It then restarts without any
//! super user: the ACLs come back from the metadata log and decide, for librdkafka
//! producers and consumers in a group and for admin calls, what `User:ANONYMOUS` may
//! do: each allowed case succeeds and each denied one fails with Kafka's code;
//! PREFIXED patterns apply and DENY wins over ALLOW. `kafka-acls.sh --list` and
//! `--remove` work against the broker too.
//!
//! Needs Java and Kafka's classpath (see e2e/apache-kafka.sh), like the Java suites.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fjord_client::{AlterConfigOp, ConfigResource, NewTopic};
use fjord_e2e::{BrokerOptions, BrokerProcess};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::CreateAclsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const ANONYMOUS: &str = "User:ANONYMOUS";
const DEADLINE: Duration = Duration::from_secs(60);

// Kafka's codes: resource types, pattern types, operations, permissions.
const TOPIC: i8 = 2;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const DESCRIBE: i8 = 8;
const ALTER_CONFIGS: i8 = 11;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn acl(resource_type: i8, name: &str, pattern: i8, operation: i8, permission: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_resource_pattern_type(pattern)
        .with_principal(StrBytes::from_static_str(ANONYMOUS))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// Kafka's `kafka-acls.sh` against `bootstrap`; its stdout.
fn kafka_acls(bootstrap: &str, args: &[&str]) -> Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-kafka.sh");
    let out = std::process::Command::new("bash")
        .args([
            script,
            "tool",
            "kafka-acls",
            "--bootstrap-server",
            bootstrap,
        ])
        .args(args)
        .output()
        .context("running kafka-acls")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "kafka-acls {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// Produces one record with librdkafka: Ok, or the Kafka error code it failed with.
async fn produce(bootstrap: &str, topic: &str) -> Result<Result<(), RDKafkaErrorCode>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .create()?;
    let sent = producer
        .send(
            FutureRecord::to(topic).key("k").payload("hello"),
            Duration::from_secs(20),
        )
        .await;
    Ok(match sent {
        Ok(_) => Ok(()),
        Err((e, _)) => Err(e
            .rdkafka_error_code()
            .with_context(|| format!("produce to {topic}: {e}"))?),
    })
}

/// Consumes `topic` in `group` with librdkafka until one record arrives (then commits
/// it) or an authorization error is reported.
fn consume_one(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<Result<String, RDKafkaErrorCode>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                consumer.commit_message(&m, CommitMode::Sync)?;
                return Ok(Ok(value));
            }
            Some(Err(e)) => {
                if let Some(
                    code @ (RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::TopicAuthorizationFailed),
                ) = e.rdkafka_error_code()
                {
                    return Ok(Err(code));
                }
            }
            None => {}
        }
    }
    bail!("consuming {topic} in group {group}: neither a record nor an authorization error within {DEADLINE:?}")
}

fn kafka_code(e: &fjord_client::Error) -> Option<ResponseError> {
    e.kafka()
}

#[tokio::test]
async fn acls_decide_for_real_clients_and_persist_across_a_restart() -> Result<()> {
    let secured = |super_user: bool| {
        let mut args = vec!["--authorizer".to_string(), "standard".to_string()];
        if super_user {
            args.extend(["--super-users".to_string(), ANONYMOUS.to_string()]);
        }
        args
    };
    let mut broker = BrokerProcess::start(BrokerOptions {
        args: secured(true),
        ..Default::default()
    })
    .await?;
    let bootstrap = broker.bootstrap();

    // As super user: topics, and the ACLs.
    let admin = common::client(&bootstrap).await?;
    for t in ["orders", "secret", "logs-a", "logs-b", "doomed", "kept"] {
        admin.create_topic(NewTopic::new(t, 1, 1)).await?;
    }
    let conn = common::connection(&bootstrap).await?;
    let created = conn
        .send(&CreateAclsRequest::default().with_creations(vec![
            acl(TOPIC, "orders", LITERAL, WRITE, ALLOW),
            acl(TOPIC, "orders", LITERAL, ALTER_CONFIGS, ALLOW),
            // PREFIXED, with a DENY that wins on one of the names it covers.
            acl(TOPIC, "logs-", PREFIXED, WRITE, ALLOW),
            acl(TOPIC, "logs-a", LITERAL, WRITE, DENY),
            acl(TOPIC, "new-", PREFIXED, CREATE, ALLOW),
            acl(TOPIC, "doomed", LITERAL, DELETE, ALLOW),
            acl(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE, ALLOW),
        ]))
        .await?;
    for r in &created.results {
        ensure!(r.error_code == 0, "CreateAcls: {:?}", r.error_message);
    }
    // Kafka's own tool adds the consumer's rights.
    kafka_acls(
        &bootstrap,
        &[
            "--add",
            "--allow-principal",
            ANONYMOUS,
            "--operation",
            "Read",
            "--topic",
            "orders",
            "--group",
            "readers",
        ],
    )?;
    let listed = kafka_acls(&bootstrap, &["--list", "--topic", "orders"])?;
    ensure!(
        listed.contains("ANONYMOUS") && listed.contains("READ") && listed.contains("WRITE"),
        "kafka-acls --list: {listed}"
    );
    ensure!(
        produce(&bootstrap, "secret").await? == Ok(()),
        "the super user writes anywhere"
    );

    // Restarted without a super user, the ACLs from the metadata log decide.
    broker.sigterm(Duration::from_secs(30)).await?;
    broker.set_args(secured(false));
    broker.restart().await?;
    let admin = common::client(&bootstrap).await?;

    // Produce: WRITE on the topic.
    ensure!(produce(&bootstrap, "orders").await? == Ok(()));
    ensure!(
        produce(&bootstrap, "secret").await? == Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    ensure!(
        produce(&bootstrap, "logs-b").await? == Ok(()),
        "PREFIXED ALLOW"
    );
    ensure!(
        produce(&bootstrap, "logs-a").await? == Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "DENY wins over the PREFIXED ALLOW"
    );

    // Consume in a group: READ on the group and on the topic.
    let b = bootstrap.clone();
    let consumed = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((
            consume_one(&b, "readers", "orders")?,
            consume_one(&b, "others", "orders")?,
            consume_one(&b, "readers", "secret")?,
        ))
    })
    .await??;
    ensure!(
        consumed.0 == Ok("hello".into()),
        "readers on orders: {:?}",
        consumed.0
    );
    ensure!(
        consumed.1 == Err(RDKafkaErrorCode::GroupAuthorizationFailed),
        "others: {:?}",
        consumed.1
    );
    ensure!(
        consumed.2 == Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "secret: {:?}",
        consumed.2
    );

    // Create and delete topics: CREATE (PREFIXED here) and DELETE on the topic.
    admin.create_topic(NewTopic::new("new-1", 1, 1)).await?;
    let refused = admin
        .create_topic(NewTopic::new("other-1", 1, 1))
        .await
        .unwrap_err();
    ensure!(
        kafka_code(&refused) == Some(ResponseError::TopicAuthorizationFailed),
        "{refused}"
    );
    let deleted = admin.delete_topics(&["doomed", "kept"]).await?;
    ensure!(deleted[0].1.is_ok(), "delete doomed: {:?}", deleted[0].1);
    let kept = deleted[1].1.as_ref().unwrap_err();
    ensure!(
        kafka_code(kept) == Some(ResponseError::TopicAuthorizationFailed),
        "{kept}"
    );

    // Alter configs: ALTER_CONFIGS on the topic.
    let retention = [AlterConfigOp::Set("retention.ms".into(), "3600000".into())];
    admin
        .incremental_alter_configs(&ConfigResource::Topic("orders".into()), &retention, false)
        .await?;
    let refused = admin
        .incremental_alter_configs(&ConfigResource::Topic("secret".into()), &retention, false)
        .await
        .unwrap_err();
    ensure!(
        kafka_code(&refused) == Some(ResponseError::TopicAuthorizationFailed),
        "{refused}"
    );

    // Without ALTER on the cluster, ACLs cannot be changed; DESCRIBE lets them be listed.
    let denied = kafka_acls(
        &bootstrap,
        &[
            "--add",
            "--allow-principal",
            ANONYMOUS,
            "--operation",
            "Write",
            "--topic",
            "secret",
        ],
    );
    ensure!(
        denied.is_err(),
        "kafka-acls --add without ALTER on the cluster succeeded"
    );
    let listed = kafka_acls(&bootstrap, &["--list"])?;
    ensure!(
        listed.contains("logs-") && listed.contains("PREFIXED") && listed.contains("DENY"),
        "{listed}"
    );
    drop(broker);

    // --remove through Kafka's tool, on a broker where ANONYMOUS is a super user again.
    let mut broker = BrokerProcess::start(BrokerOptions {
        args: secured(true),
        ..Default::default()
    })
    .await?;
    let bootstrap = broker.bootstrap();
    kafka_acls(
        &bootstrap,
        &[
            "--add",
            "--allow-principal",
            ANONYMOUS,
            "--operation",
            "Read",
            "--topic",
            "t",
            "--resource-pattern-type",
            "prefixed",
        ],
    )?;
    ensure!(kafka_acls(
        &bootstrap,
        &[
            "--list",
            "--topic",
            "t",
            "--resource-pattern-type",
            "prefixed"
        ]
    )?
    .contains("READ"));
    kafka_acls(
        &bootstrap,
        &[
            "--remove",
            "--force",
            "--allow-principal",
            ANONYMOUS,
            "--operation",
            "Read",
            "--topic",
            "t",
            "--resource-pattern-type",
            "prefixed",
        ],
    )?;
    let listed = kafka_acls(&bootstrap, &["--list"])?;
    ensure!(!listed.contains("READ"), "after --remove: {listed}");
    broker.sigterm(Duration::from_secs(30)).await?;
    Ok(())
}

/// Every broker of a cluster enforces the same ACLs: one created through broker 1 is
/// listed by every broker and decides on every broker's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_of_a_cluster_enforces_the_same_acls() -> Result<()> {
    use fjord_e2e::{Cluster, ClusterOptions};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{DescribeAclsRequest, MetadataRequest, TopicName};
    const ANY: i8 = 1;

    // No super user: with no ACL on a resource everyone may use it, so User:ANONYMOUS
    // may create the first ACL.
    let cluster = Cluster::start(ClusterOptions {
        args: [
            "--authorizer",
            "standard",
            "--allow-everyone-if-no-acl-found",
            "true",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .await?;
    let admin = common::client(&cluster.broker(1).bootstrap()).await?;
    admin.create_topic(NewTopic::new("hidden", 1, 3)).await?;
    let first = common::connection(&cluster.broker(1).bootstrap()).await?;
    let created = first
        .send(
            &CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, "hidden", LITERAL, DESCRIBE, DENY)]),
        )
        .await?;
    ensure!(
        created.results[0].error_code == 0,
        "{:?}",
        created.results[0]
    );

    let denied = ResponseError::TopicAuthorizationFailed.code();
    for id in cluster.node_ids() {
        let conn = common::connection(&cluster.broker(id).bootstrap()).await?;
        common::wait_for(&format!("broker {id} to deny the topic"), DEADLINE, || {
            let conn = &conn;
            async move {
                let metadata = MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("hidden"))))]));
                let code = conn.send(&metadata).await?.topics[0].error_code;
                let listed = conn
                    .send(
                        &DescribeAclsRequest::default()
                            .with_resource_type_filter(ANY)
                            .with_resource_name_filter(None)
                            .with_pattern_type_filter(ANY)
                            .with_principal_filter(None)
                            .with_host_filter(None)
                            .with_operation(ANY)
                            .with_permission_type(ANY),
                    )
                    .await?
                    .resources
                    .len();
                Ok(if code == denied && listed == 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "metadata error {code}, {listed} ACL resources listed"
                    ))
                })
            }
        })
        .await?;
    }
    Ok(())
}
