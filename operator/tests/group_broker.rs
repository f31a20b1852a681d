//! The ConsumerGroup controller's broker side against a real `fjord` process (spawned by
//! the e2e harness): fjord-client's group calls and the controller's pure status and
//! reset decisions, as a reconcile would combine them.
//!
//! 1. An unknown group describes as Dead with no offsets.
//! 2. An admin commit (generation -1) creates it Empty; the offsets read back, and the
//!    status shows lag = log end offset - committed offset.
//! 3. A member joins (raw JoinGroup/SyncGroup): the group is Stable, the member's
//!    assignment decodes, the reset is blocked and the coordinator refuses an admin
//!    commit with UNKNOWN_MEMBER_ID.
//! 4. The member leaves: the reset to earliest runs and the lag is the whole log.
//!
//! Needs the broker binary: `cargo build -p fjord-broker --bin fjord`, then
//! `FJORD_BIN=$CARGO_TARGET_DIR/debug/fjord cargo test -p fjord-operator --test group_broker`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use bytes::{BufMut, Bytes, BytesMut};
use fjord_client::{
    Client, ClientConfig, Connection, NewTopic, OffsetSpec, ProduceOptions, ProduceRecord,
    ResponseError,
};
use fjord_e2e::{BrokerOptions, BrokerProcess};
use fjord_operator::group::{
    group_status, reset_lookup, reset_offset, reset_partitions, reset_step, ResetStep,
};
use fjord_operator::types::{ConsumerGroupStatus, OffsetReset, ResetTarget};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, JoinGroupRequest,
    LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

const GROUP: &str = "payments";
const TOPIC: &str = "orders";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A consumer-protocol payload: the i16 version, then the body.
fn versioned(body: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    body.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

/// Log end offsets of the partitions the group has offsets for, as reconcile reads them.
async fn end_offsets(
    client: &Client,
    committed: &[(String, i32, i64)],
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    for (topic, partition, _) in committed {
        let end = client
            .list_offsets(topic, *partition, OffsetSpec::Latest)
            .await?;
        out.insert((topic.clone(), *partition), end.offset);
    }
    Ok(out)
}

async fn status_of(client: &Client) -> Result<ConsumerGroupStatus> {
    let description = client.describe_group(GROUP).await?;
    let committed = client.fetch_offsets(GROUP).await?;
    let ends = end_offsets(client, &committed).await?;
    let mut status = ConsumerGroupStatus::default();
    group_status(&mut status, &description, &committed, &ends);
    Ok(status)
}

fn lags(status: &ConsumerGroupStatus) -> Vec<(i32, i64, i64, i64)> {
    status
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed_offset, p.log_end_offset, p.lag))
        .collect()
}

/// Joins the group as one consumer member and hands itself every partition; returns
/// the member id.
async fn join_as_member(conn: &Connection) -> Result<String> {
    let subscription =
        versioned(&ConsumerProtocolSubscription::default().with_topics(vec![s(TOPIC)]));
    let mut member_id = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let joined = loop {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(&member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription.clone())]);
        let response = conn.send(&request).await?;
        match ResponseError::try_from_code(response.error_code) {
            None => break response,
            // KIP-394: the first join gets its member id and must join again with it.
            Some(ResponseError::MemberIdRequired) => member_id = response.member_id.to_string(),
            Some(e) => bail!("JoinGroup: {e:?}"),
        }
        ensure!(Instant::now() < deadline, "JoinGroup did not complete");
    };
    let member_id = joined.member_id.to_string();
    ensure!(joined.leader.as_str() == member_id, "the only member leads");
    let assignment = versioned(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(vec![0, 1, 2]),
        ]),
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&member_id))
            .with_assignment(assignment)]);
    let synced = conn.send(&sync).await?;
    ensure!(
        synced.error_code == 0,
        "SyncGroup error {}",
        synced.error_code
    );
    Ok(member_id)
}

#[tokio::test]
async fn group_status_and_reset_against_a_broker() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions {
        env: vec![("FJORD_GROUP_INITIAL_REBALANCE_DELAY_MS".into(), "0".into())],
        ..BrokerOptions::default()
    })
    .await?;
    let client = Client::connect(&[broker.bootstrap()], ClientConfig::default()).await?;
    client.create_topic(NewTopic::new(TOPIC, 3, 1)).await?;
    let records: Vec<_> = (0..10)
        .map(|i| ProduceRecord::new(None::<&str>, format!("v{i}")))
        .collect();
    client
        .produce(TOPIC, 0, &records, &ProduceOptions::default())
        .await?;
    client
        .produce(TOPIC, 1, &records[..4], &ProduceOptions::default())
        .await?;

    // 1. Unknown group: Dead, no members, no offsets.
    let status = status_of(&client).await?;
    assert_eq!(status.state.as_deref(), Some("Dead"));
    assert_eq!((status.member_count, status.partitions.len()), (0, 0));

    // 2. An admin commit creates the group Empty; lag = end - committed.
    let commits = [(TOPIC.to_string(), 0, 3), (TOPIC.to_string(), 1, 4)];
    client.commit_offsets(GROUP, &commits).await?;
    assert_eq!(client.fetch_offsets(GROUP).await?, commits.to_vec());
    let status = status_of(&client).await?;
    assert_eq!(status.state.as_deref(), Some("Empty"));
    assert_eq!(lags(&status), vec![(0, 3, 10, 7), (1, 4, 4, 0)]);
    assert_eq!(status.total_lag, 7);
    let listed = client.list_groups().await?;
    assert!(listed.iter().any(|g| g.group_id == GROUP), "{listed:?}");
    let coordinator = client.find_coordinator(GROUP).await?;
    assert_eq!(coordinator.addr(), broker.bootstrap());

    // 3. A member joins: Stable, its assignment decodes, the reset waits and the
    // coordinator refuses an admin commit.
    let conn = Connection::connect(
        &coordinator.addr(),
        &ClientConfig {
            client_id: "member-1".into(),
            ..ClientConfig::default()
        },
    )
    .await?;
    let member_id = join_as_member(&conn).await?;
    let description = client.describe_group(GROUP).await?;
    assert_eq!(description.state, "Stable");
    assert_eq!(description.protocol, "range");
    assert_eq!(description.members.len(), 1);
    let member = &description.members[0];
    assert_eq!(
        (member.member_id.as_str(), member.client_id.as_str()),
        (member_id.as_str(), "member-1")
    );
    assert_eq!(
        member.assignment,
        vec![(TOPIC.into(), 0), (TOPIC.into(), 1), (TOPIC.into(), 2)]
    );
    let status = status_of(&client).await?;
    assert_eq!(
        status.members[0].assignments,
        vec!["orders:0", "orders:1", "orders:2"]
    );

    let reset = OffsetReset {
        token: "rewind-1".into(),
        to: ResetTarget::Earliest,
        topics: vec![TOPIC.into()],
        timestamp_ms: None,
        offsets: Vec::new(),
    };
    match reset_step(Some(&reset), None, &description) {
        ResetStep::Blocked(message) => assert!(message.contains("Stable"), "{message}"),
        other => panic!("reset with a member: {other:?}"),
    }
    let refused = client
        .commit_offsets(GROUP, &[(TOPIC.into(), 0, 0)])
        .await
        .expect_err("admin commit while the group has a member");
    assert_eq!(
        refused.kafka(),
        Some(ResponseError::UnknownMemberId),
        "{refused}"
    );
    assert_eq!(client.fetch_offsets(GROUP).await?, commits.to_vec());

    // 4. The member leaves: the reset runs, as the controller would carry it out.
    // v3 names leaving members in a list; before it, one member id.
    let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s(GROUP)));
    if conn.version(ApiKey::LeaveGroup)? >= 3 {
        leave.members = vec![MemberIdentity::default().with_member_id(s(&member_id))];
    } else {
        leave.member_id = s(&member_id);
    }
    let left = conn.send(&leave).await?;
    ensure!(left.error_code == 0, "LeaveGroup error {}", left.error_code);
    let description = client.describe_group(GROUP).await?;
    assert_eq!(description.state, "Empty");
    let ResetStep::Run(reset) = reset_step(Some(&reset), None, &description) else {
        bail!("reset should run on an Empty group");
    };
    let committed = client.fetch_offsets(GROUP).await?;
    let counts = BTreeMap::from([(TOPIC.to_string(), 3)]);
    let mut moves = Vec::new();
    for (topic, partition) in
        reset_partitions(reset, &committed, &counts).map_err(anyhow::Error::msg)?
    {
        let spec = reset_lookup(reset).context("earliest looks offsets up")?;
        let found = client.list_offsets(&topic, partition, spec).await?.offset;
        moves.extend(
            reset_offset(reset, &topic, partition, Some(found), -1).map(|o| (topic, partition, o)),
        );
    }
    client.commit_offsets(GROUP, &moves).await?;
    let status = status_of(&client).await?;
    assert_eq!(
        lags(&status),
        vec![(0, 0, 10, 10), (1, 0, 4, 4), (2, 0, 0, 0)]
    );
    assert_eq!(status.total_lag, 14);
    Ok(())
}
