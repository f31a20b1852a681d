//! A User's broker-side steps against a real `fjord` broker with the authorizer on and
//! a SASL_PLAINTEXT SCRAM-SHA-512 listener beside a PLAINTEXT one (standing in for
//! the operator's listener: its `User:ANONYMOUS` is the super user). The client's ACL
//! and SCRAM admin calls are checked first; then the User controller's steps
//! ([`fjord_operator::user`]) give `alice` a password and ACLs: she produces and
//! consumes with librdkafka, `bob` (no ACL on the topic) is refused with
//! TOPIC_AUTHORIZATION_FAILED, an ACL deleted behind the operator's back comes back at
//! the next pass (and one added is removed), and removing the user takes her access.
//!
//! Needs the broker binary: `cargo build -p fjord-broker --bin fjord`, then
//! `FJORD_BIN=$CARGO_TARGET_DIR/debug/fjord cargo test -p fjord-operator --test user_broker`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use fjord_client::{
    AclBinding, AclFilter, AclOperation, AclPatternType, AclPermission, AclResourceType, Client,
    ClientConfig, NewTopic, ResponseError, ScramMechanism, ScramUpsertion,
};
use fjord_e2e::{free_port, BrokerOptions, BrokerProcess};
use fjord_operator::types::{self, AclResource, AclRule};
use fjord_operator::user::{
    apply_acls, desired_acls, ensure_scram, generate_password, principal, remove_user,
};
use rdkafka::config::ClientConfig as KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "orders";

/// A broker with PLAINTEXT (admin, super user) and SASL_PLAINTEXT (SCRAM) listeners;
/// returns it and the SCRAM listener's address.
async fn secure_broker() -> Result<(BrokerProcess, String)> {
    let mut broker = BrokerProcess::prepare(BrokerOptions::default())?;
    let sasl = format!("127.0.0.1:{}", free_port()?);
    broker.push_args([
        "--listeners".to_string(),
        format!("PLAINTEXT://{},SASL_PLAINTEXT://{sasl}", broker.bootstrap()),
        "--sasl-enabled-mechanisms".into(),
        "SCRAM-SHA-512".into(),
        "--authorizer".into(),
        "standard".into(),
        "--super-users".into(),
        "User:ANONYMOUS".into(),
    ]);
    let started = broker.spawn()?;
    broker.wait_ready(started).await?;
    Ok((broker, sasl))
}

fn scram_config(bootstrap: &str, user: &str, password: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "10000")
        .set("socket.timeout.ms", "10000");
    c
}

/// Produces one record as `user`: Ok, or the error librdkafka reports.
async fn produce(bootstrap: &str, user: &str, password: &str) -> Result<Result<(), KafkaError>> {
    let producer: FutureProducer = scram_config(bootstrap, user, password).create()?;
    let sent = producer
        .send(
            FutureRecord::<(), _>::to(TOPIC).partition(0).payload(user),
            Duration::from_secs(10),
        )
        .await;
    Ok(sent.map(|_| ()).map_err(|(e, _)| e))
}

fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Reads partition 0 from the start as `user` in group `group` until `n` records.
fn consume(bootstrap: &str, user: &str, password: &str, n: usize) -> Result<Vec<String>> {
    let consumer: BaseConsumer = scram_config(bootstrap, user, password)
        .set("group.id", "alice-group")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        ensure!(
            Instant::now() < deadline,
            "read {} of {n} records",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into())
            }
            Some(Err(e)) => bail!("consumer error: {e}"),
            None => {}
        }
    }
    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
    Ok(out)
}

fn rule(type_: types::AclResourceType, name: &str, ops: &[types::AclOperation]) -> AclRule {
    AclRule {
        resource: AclResource {
            type_,
            name: Some(name.into()),
            pattern_type: types::AclPatternType::Literal,
        },
        operations: ops.to_vec(),
        host: "*".into(),
        type_: types::AclPermission::Allow,
    }
}

fn topic_acl(user: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: TOPIC.into(),
        pattern_type: AclPatternType::Literal,
        principal: principal(user),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_acl_and_scram_admin_calls() -> Result<()> {
    let (broker, _) = secure_broker().await?;
    let admin = Client::connect(&[broker.bootstrap()], ClientConfig::default()).await?;

    let described = admin
        .describe_user_scram_credentials(Some(&["carol"]))
        .await?;
    ensure!(described.len() == 1 && described[0].0 == "carol");
    ensure!(
        described[0].1.as_ref().err().and_then(|e| e.kafka())
            == Some(ResponseError::ResourceNotFound),
        "a user without credentials: {described:?}"
    );
    let upsert = ScramUpsertion::new("carol", ScramMechanism::Sha512, "pw-carol", 8192)?;
    let altered = admin.alter_user_scram_credentials(&[upsert], &[]).await?;
    ensure!(altered.len() == 1 && altered[0].1.is_ok(), "{altered:?}");
    let described = admin.describe_user_scram_credentials(None).await?;
    let carol = described
        .iter()
        .find(|(u, _)| u == "carol")
        .expect("carol listed");
    let infos = carol.1.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        infos.len() == 1
            && infos[0].mechanism == ScramMechanism::Sha512
            && infos[0].iterations == 8192,
        "{infos:?}"
    );

    let read = topic_acl("carol", AclOperation::Read);
    let write = topic_acl("carol", AclOperation::Write);
    let created = admin.create_acls(&[read.clone(), write.clone()]).await?;
    ensure!(created.iter().all(Result::is_ok), "{created:?}");
    let mut listed = admin
        .describe_acls(&AclFilter::principal("User:carol"))
        .await?;
    listed.sort();
    ensure!(listed == vec![read.clone(), write.clone()], "{listed:?}");
    let deleted = admin.delete_acls(&[AclFilter::exact(&write)]).await?;
    ensure!(deleted.len() == 1, "{deleted:?}");
    ensure!(
        deleted[0].as_ref().ok() == Some(&vec![write.clone()]),
        "{deleted:?}"
    );
    ensure!(
        admin
            .describe_acls(&AclFilter::principal("User:carol"))
            .await?
            == vec![read]
    );

    let removed = admin
        .alter_user_scram_credentials(&[], &[("carol".into(), ScramMechanism::Sha512)])
        .await?;
    ensure!(removed[0].1.is_ok(), "{removed:?}");
    let again = admin
        .alter_user_scram_credentials(&[], &[("carol".into(), ScramMechanism::Sha512)])
        .await?;
    ensure!(
        again[0].1.as_ref().err().and_then(|e| e.kafka()) == Some(ResponseError::ResourceNotFound),
        "removing a credential twice: {again:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn user_steps_grant_refuse_revert_and_remove() -> Result<()> {
    let (broker, sasl) = secure_broker().await?;
    let admin = Client::connect(&[broker.bootstrap()], ClientConfig::default()).await?;
    admin.create_topic(NewTopic::new(TOPIC, 1, 1)).await?;

    use types::AclOperation as Op;
    use types::AclResourceType as Res;
    let alice_pw = generate_password();
    let bob_pw = generate_password();
    let alice_acls = desired_acls(
        &principal("alice"),
        &[
            rule(Res::Topic, TOPIC, &[Op::Write, Op::Read, Op::Describe]),
            rule(Res::Group, "alice-group", &[Op::Read]),
        ],
    )?;
    // Bob may describe another topic only.
    let bob_acls = desired_acls(
        &principal("bob"),
        &[rule(Res::Topic, "other", &[Op::Describe])],
    )?;
    ensure!(ensure_scram(&admin, "alice", &alice_pw, true).await?);
    ensure!(ensure_scram(&admin, "bob", &bob_pw, true).await?);
    // A password the brokers hold is not set again on the next pass.
    ensure!(!ensure_scram(&admin, "alice", &alice_pw, false).await?);
    let first = apply_acls(&admin, &principal("alice"), &alice_acls).await?;
    ensure!(
        first.create.len() == 4 && first.delete.is_empty(),
        "{first:?}"
    );
    apply_acls(&admin, &principal("bob"), &bob_acls).await?;
    ensure!(apply_acls(&admin, &principal("alice"), &alice_acls)
        .await?
        .is_empty());

    // Alice produces and consumes in her group; bob is refused.
    if let Err(e) = produce(&sasl, "alice", &alice_pw).await? {
        bail!("alice with her ACLs: {e}\n{}", broker.logs());
    }
    let read = tokio::task::block_in_place(|| consume(&sasl, "alice", &alice_pw, 1))?;
    ensure!(read == ["alice"], "{read:?}");
    let refused = produce(&sasl, "bob", &bob_pw).await?;
    ensure!(
        refused.as_ref().err().and_then(code) == Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "bob without an ACL on the topic: {refused:?}"
    );

    // Drift: Write removed and Delete added behind the operator's back.
    admin
        .delete_acls(&[AclFilter::exact(&topic_acl("alice", AclOperation::Write))])
        .await?;
    admin
        .create_acls(&[topic_acl("alice", AclOperation::Delete)])
        .await?;
    let drifted = produce(&sasl, "alice", &alice_pw).await?;
    ensure!(
        drifted.as_ref().err().and_then(code) == Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "alice without Write: {drifted:?}"
    );
    let reverted = apply_acls(&admin, &principal("alice"), &alice_acls).await?;
    ensure!(
        reverted.create == vec![topic_acl("alice", AclOperation::Write)]
            && reverted.delete == vec![topic_acl("alice", AclOperation::Delete)],
        "{reverted:?}"
    );
    let mut held: Vec<AclBinding> = admin
        .describe_acls(&AclFilter::principal(principal("alice")))
        .await?;
    held.sort();
    ensure!(
        held == alice_acls.iter().cloned().collect::<Vec<_>>(),
        "{held:?}"
    );
    if let Err(e) = produce(&sasl, "alice", &alice_pw).await? {
        bail!("alice after the ACL came back: {e}");
    }

    // A credential removed behind the operator's back is set again.
    admin
        .alter_user_scram_credentials(&[], &[("alice".into(), ScramMechanism::Sha512)])
        .await?;
    ensure!(ensure_scram(&admin, "alice", &alice_pw, false).await?);

    // Removing the user: no ACLs, no credential, no access; bob keeps his.
    let removed = remove_user(&admin, "alice", true).await?;
    ensure!(removed.len() == 2, "{removed:?}");
    ensure!(admin
        .describe_acls(&AclFilter::principal(principal("alice")))
        .await?
        .is_empty());
    let gone = produce(&sasl, "alice", &alice_pw).await?;
    ensure!(gone.is_err(), "alice after removal produced");
    let bob_left: BTreeSet<AclBinding> = admin
        .describe_acls(&AclFilter::principal(principal("bob")))
        .await?
        .into_iter()
        .collect();
    ensure!(bob_left == bob_acls, "{bob_left:?}");
    Ok(())
}
