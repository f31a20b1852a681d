//! The request guard against every API's requests, malformed frames and limits.

use super::*;
use crate::protocol::layout::{Field, Ty};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes, VersionRange};

/// Every API in the table, with the crate's request type (its default value and the
/// versions the crate decodes).
macro_rules! crate_requests {
    ($($key:literal => $variant:ident($ty:ty)),* $(,)?) => {
        fn crate_default(key: i16) -> (RequestKind, VersionRange) {
            match key {
                $($key => (RequestKind::$variant(<$ty>::default()), <$ty as Message>::VERSIONS),)*
                other => panic!("api key {other} has no crate request type in this test"),
            }
        }
    };
}
crate_requests! {
    0 => Produce(ProduceRequest),
    1 => Fetch(FetchRequest),
    2 => ListOffsets(ListOffsetsRequest),
    3 => Metadata(MetadataRequest),
    8 => OffsetCommit(OffsetCommitRequest),
    9 => OffsetFetch(OffsetFetchRequest),
    10 => FindCoordinator(FindCoordinatorRequest),
    11 => JoinGroup(JoinGroupRequest),
    12 => Heartbeat(HeartbeatRequest),
    13 => LeaveGroup(LeaveGroupRequest),
    14 => SyncGroup(SyncGroupRequest),
    15 => DescribeGroups(DescribeGroupsRequest),
    16 => ListGroups(ListGroupsRequest),
    17 => SaslHandshake(SaslHandshakeRequest),
    18 => ApiVersions(ApiVersionsRequest),
    19 => CreateTopics(CreateTopicsRequest),
    20 => DeleteTopics(DeleteTopicsRequest),
    21 => DeleteRecords(DeleteRecordsRequest),
    22 => InitProducerId(InitProducerIdRequest),
    23 => OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    24 => AddPartitionsToTxn(AddPartitionsToTxnRequest),
    25 => AddOffsetsToTxn(AddOffsetsToTxnRequest),
    26 => EndTxn(EndTxnRequest),
    28 => TxnOffsetCommit(TxnOffsetCommitRequest),
    29 => DescribeAcls(DescribeAclsRequest),
    30 => CreateAcls(CreateAclsRequest),
    31 => DeleteAcls(DeleteAclsRequest),
    32 => DescribeConfigs(DescribeConfigsRequest),
    33 => AlterConfigs(AlterConfigsRequest),
    35 => DescribeLogDirs(DescribeLogDirsRequest),
    36 => SaslAuthenticate(SaslAuthenticateRequest),
    37 => CreatePartitions(CreatePartitionsRequest),
    42 => DeleteGroups(DeleteGroupsRequest),
    43 => ElectLeaders(ElectLeadersRequest),
    44 => IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    45 => AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    46 => ListPartitionReassignments(ListPartitionReassignmentsRequest),
    47 => OffsetDelete(OffsetDeleteRequest),
    48 => DescribeClientQuotas(DescribeClientQuotasRequest),
    50 => DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    51 => AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    60 => DescribeCluster(DescribeClusterRequest),
    61 => DescribeProducers(DescribeProducersRequest),
    64 => UnregisterBroker(UnregisterBrokerRequest),
    65 => DescribeTransactions(DescribeTransactionsRequest),
    66 => ListTransactions(ListTransactionsRequest),
    75 => DescribeTopicPartitions(DescribeTopicPartitionsRequest),
}

fn versions(api: &Api) -> std::ops::RangeInclusive<i16> {
    api.valid.0..=api.valid.1
}

fn header_bytes(api_key: i16, version: i16) -> BytesMut {
    let key = ApiKey::try_from(api_key).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(0x0102_0304)
        .with_client_id(Some(StrBytes::from_static_str("fjord-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf
}

/// A frame built with the crate's own encoders.
fn encode(api_key: i16, version: i16, body: &RequestKind) -> Vec<u8> {
    let mut buf = header_bytes(api_key, version);
    body.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode api {api_key} v{version}: {e:#}"));
    buf.to_vec()
}

/// What the server does: guard first, decoder only when the guard agrees. The decoder
/// must then succeed and consume exactly what the guard measured.
fn guarded_decode(frame: &[u8]) -> Result<(RequestHead, RequestHeader, RequestKind), GuardError> {
    let head = check_request(frame)?;
    let mut buf = Bytes::copy_from_slice(frame);
    let header = RequestHeader::decode(&mut buf, head.header_version)
        .unwrap_or_else(|e| panic!("guard passed but the header does not decode: {e:#}"));
    assert_eq!(
        buf.len(),
        frame.len() - head.header_len,
        "header length disagrees"
    );
    let key = ApiKey::try_from(head.api_key).unwrap();
    let body = RequestKind::decode(key, &mut buf, head.api_version).unwrap_or_else(|e| {
        panic!(
            "guard passed but api {} v{} does not decode: {e:#}",
            head.api_key, head.api_version
        )
    });
    assert_eq!(
        buf.len(),
        frame.len() - head.header_len - head.body_len,
        "api {} v{}: body length disagrees with the decoder",
        head.api_key,
        head.api_version
    );
    assert_eq!(header.request_api_key, head.api_key);
    assert_eq!(header.request_api_version, head.api_version);
    assert_eq!(header.correlation_id, head.correlation_id);
    Ok((head, header, body))
}

fn malformed_reason(frame: &[u8]) -> String {
    match check_request(frame) {
        Err(GuardError::Malformed { reason, .. }) => reason,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// Header v1 for `api_key`/`version` with client id "c", then `body`.
fn raw_frame(api_key: i16, version: i16, flexible_header: bool, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&7i32.to_be_bytes());
    f.extend_from_slice(&1i16.to_be_bytes());
    f.push(b'c');
    if flexible_header {
        f.push(0); // no tagged fields
    }
    f.extend_from_slice(body);
    f
}

// ---- The trap that motivated the guard ----

#[test]
fn metadata_v0_huge_topic_count_is_refused_before_decoding() {
    let frame = raw_frame(3, 0, false, &[0x7f, 0xff, 0xff, 0xf0]);
    // Were the guard to let this through, guarded_decode would call the decoder,
    // which aborts the test process trying to allocate ~150 GB.
    let err = guarded_decode(&frame).unwrap_err();
    let GuardError::Malformed {
        api_key,
        api_version,
        correlation_id,
        reason,
    } = err
    else {
        panic!("expected Malformed, got {err:?}");
    };
    assert_eq!((api_key, api_version, correlation_id), (3, 0, 7));
    assert!(reason.contains("MetadataRequest v0"), "{reason}");
    assert!(reason.contains("Topics"), "{reason}");
    assert!(reason.contains("2147483632"), "{reason}");
}

// ---- Valid requests from the crate's encoders ----

#[test]
fn default_requests_of_every_api_and_version_pass_and_decode() {
    let mut checked = 0;
    for api in APIS {
        let (body, crate_versions) = crate_default(api.key);
        assert!(
            crate_versions.min <= api.valid.0 && api.valid.1 <= crate_versions.max,
            "{}: table versions {:?} exceed what the crate decodes ({crate_versions:?})",
            api.name,
            api.valid
        );
        for version in versions(api) {
            let frame = encode(api.key, version, &body);
            let (head, _, _) =
                guarded_decode(&frame).unwrap_or_else(|e| panic!("{} v{version}: {e}", api.name));
            let key = ApiKey::try_from(api.key).unwrap();
            assert_eq!(head.header_version, key.request_header_version(version));
            assert_eq!(head.header_len + head.body_len, frame.len());
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} api versions checked");
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// Requests with populated arrays, nullable fields and tagged fields, built with the
/// crate's encoders for every version the table accepts.
fn populated_requests() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let mut push = |name: &str, key: i16, version: i16, body: RequestKind| {
        out.push((format!("{name}-v{version}"), encode(key, version, &body)));
    };
    for version in 0..=13 {
        let topics = (0..3)
            .map(|i| {
                let t = metadata_request::MetadataRequestTopic::default();
                if version >= 10 {
                    t.with_topic_id(id).with_name(None)
                } else {
                    t.with_name(Some(topic(["orders", "payments", "äöü"][i])))
                }
            })
            .collect();
        push(
            "metadata",
            3,
            version,
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(topics))),
        );
        if version >= 1 {
            push(
                "metadata-all",
                3,
                version,
                RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
            );
        }
    }
    for version in 3..=13 {
        let partitions = (0..2)
            .map(|i| {
                produce_request::PartitionProduceData::default()
                    .with_index(i)
                    .with_records((i == 0).then(|| Bytes::from_static(&[9; 61])))
            })
            .collect();
        let mut t = produce_request::TopicProduceData::default().with_partition_data(partitions);
        t = if version >= 13 {
            t.with_topic_id(id)
        } else {
            t.with_name(topic("orders"))
        };
        let req = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![t]);
        push("produce", 0, version, RequestKind::Produce(req));
    }
    for version in 4..=18 {
        let partitions = (0..2)
            .map(|i| {
                let p = fetch_request::FetchPartition::default()
                    .with_partition(i)
                    .with_fetch_offset(100);
                if version >= 17 {
                    p.with_replica_directory_id(id)
                        .with_high_watermark(if version >= 18 { 5 } else { i64::MAX })
                } else {
                    p
                }
            })
            .collect();
        let mut t = fetch_request::FetchTopic::default().with_partitions(partitions);
        t = if version >= 13 {
            t.with_topic_id(id)
        } else {
            t.with_topic(topic("orders"))
        };
        let mut req = FetchRequest::default().with_topics(vec![t]);
        if version >= 7 {
            let mut f = fetch_request::ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
            f = if version >= 13 {
                f.with_topic_id(id)
            } else {
                f.with_topic(topic("old"))
            };
            req = req.with_forgotten_topics_data(vec![f]);
        }
        if version >= 12 {
            req = req.with_cluster_id(Some(StrBytes::from_static_str("cluster")));
        }
        if version >= 15 {
            req = req.with_replica_state(
                fetch_request::ReplicaState::default()
                    .with_replica_id(BrokerId(3))
                    .with_replica_epoch(9),
            );
        }
        push("fetch", 1, version, RequestKind::Fetch(req));
    }
    for version in 2..=7 {
        let t = create_topics_request::CreatableTopic::default()
            .with_name(topic("orders"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                create_topics_request::CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
            ])
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1000"))),
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_value(None),
            ]);
        push(
            "create-topics",
            19,
            version,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![t])),
        );
    }
    for version in 0..=9 {
        let p = join_group_request::JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\x00\x01meta"));
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![p.clone(), p]);
        if version >= 5 {
            req = req.with_group_instance_id(Some(StrBytes::from_static_str("i-1")));
        }
        if version >= 8 {
            req = req.with_reason(Some(StrBytes::from_static_str("rebalance")));
        }
        push("join-group", 11, version, RequestKind::JoinGroup(req));
    }
    out
}

#[test]
fn populated_requests_pass_and_decode() {
    for (name, frame) in populated_requests() {
        guarded_decode(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn array_elements_are_counted_at_every_level() {
    let frames = populated_requests();
    let elements = |name: &str| {
        let (_, frame) = frames.iter().find(|(n, _)| n == name).unwrap();
        check_request(frame).unwrap().array_elements
    };
    assert_eq!(elements("metadata-v0"), 3);
    assert_eq!(elements("metadata-all-v1"), 0);
    // One topic of two partitions, one forgotten topic of three partition ids.
    assert_eq!(elements("fetch-v17"), 7);
}

#[test]
fn every_truncation_of_a_valid_request_is_refused() {
    let mut frames = populated_requests();
    for api in APIS {
        let (body, _) = crate_default(api.key);
        for version in versions(api) {
            frames.push((
                format!("{}-v{version}", api.name),
                encode(api.key, version, &body),
            ));
        }
    }
    for (name, frame) in &frames {
        for len in 0..frame.len() {
            match check_request(&frame[..len]) {
                Err(GuardError::TooShort) if len < 8 => {}
                Err(GuardError::Malformed { .. }) if len >= 8 => {}
                other => panic!("{name} cut to {len} of {} bytes: {other:?}", frame.len()),
            }
        }
    }
}

// ---- Valid requests synthesized from the table itself ----
//
// Every field of every version gets a value (arrays of two elements, strings,
// nulls where allowed, each known tagged field, plus an unknown tag): this checks the
// generated table against the crate's decoders field by field, including the
// versions the populated builders above do not cover.

fn synth_struct(out: &mut Vec<u8>, fields: &[Field], version: i16, flexible: bool, nulls: bool) {
    for f in fields.iter().filter(|f| f.is_plain_in(version)) {
        synth_field(out, f, version, flexible, nulls);
    }
    if flexible {
        let mut tagged: Vec<&Field> = fields.iter().filter(|f| f.is_tagged_in(version)).collect();
        tagged.sort_by_key(|f| f.tag.unwrap().0);
        push_uvarint(out, tagged.len() as u32 + 1);
        for f in tagged {
            let mut value = Vec::new();
            synth_field(&mut value, f, version, true, nulls);
            push_uvarint(out, f.tag.unwrap().0);
            push_uvarint(out, value.len() as u32);
            out.extend_from_slice(&value);
        }
        push_uvarint(out, 1000); // unknown to everyone
        push_uvarint(out, 3);
        out.extend_from_slice(b"xyz");
    }
}

fn synth_field(out: &mut Vec<u8>, f: &Field, version: i16, flexible: bool, nulls: bool) {
    let nullable = nulls && f.nullable.contains(version);
    if matches!(f.ty, Ty::Struct(_)) && f.nullable.contains(version) {
        // The presence byte of a nullable struct.
        out.push(if nullable { 0xff } else { 1 });
        if nullable {
            return;
        }
    }
    synth_value(
        out,
        &f.ty,
        nullable,
        f.compact_in(version, flexible),
        version,
        flexible,
        nulls,
    );
}

fn push_len(out: &mut Vec<u8>, len: Option<usize>, compact: bool, short: bool) {
    match (len, compact) {
        (None, true) => out.push(0),
        (Some(n), true) => push_uvarint(out, n as u32 + 1),
        (None, false) if short => out.extend_from_slice(&(-1i16).to_be_bytes()),
        (None, false) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (Some(n), false) if short => out.extend_from_slice(&(n as i16).to_be_bytes()),
        (Some(n), false) => out.extend_from_slice(&(n as i32).to_be_bytes()),
    }
}

fn push_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn synth_value(
    out: &mut Vec<u8>,
    ty: &Ty,
    null: bool,
    compact: bool,
    version: i16,
    flexible: bool,
    nulls: bool,
) {
    match ty {
        Ty::Bool | Ty::I8 => out.push(1),
        Ty::I16 | Ty::U16 => out.extend_from_slice(&[0, 2]),
        Ty::I32 => out.extend_from_slice(&3i32.to_be_bytes()),
        Ty::I64 | Ty::F64 => out.extend_from_slice(&4i64.to_be_bytes()),
        Ty::Uuid => out.extend_from_slice(&[5; 16]),
        Ty::Str if null => push_len(out, None, compact, true),
        Ty::Str => {
            push_len(out, Some(2), compact, true);
            out.extend_from_slice(b"ab");
        }
        Ty::Bytes | Ty::Records if null => push_len(out, None, compact, false),
        Ty::Bytes | Ty::Records => {
            push_len(out, Some(3), compact, false);
            out.extend_from_slice(&[1, 2, 3]);
        }
        Ty::Array(_) if null => push_len(out, None, compact, false),
        Ty::Array(elem) => {
            push_len(out, Some(2), compact, false);
            for _ in 0..2 {
                synth_value(out, elem, false, flexible, version, flexible, nulls);
            }
        }
        Ty::Struct(fields) => synth_struct(out, fields, version, flexible, nulls),
    }
}

/// Frames for every api and version, synthesized from the table; with `nulls`, every
/// nullable field is null.
fn synthesized_requests(nulls: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for api in APIS {
        for version in versions(api) {
            let mut frame = header_bytes(api.key, version).to_vec();
            synth_struct(
                &mut frame,
                api.fields,
                version,
                api.flexible.contains(version),
                nulls,
            );
            out.push((
                format!(
                    "{}-v{version}-synth{}",
                    api.name,
                    if nulls { "-nulls" } else { "" }
                ),
                frame,
            ));
        }
    }
    out
}

#[test]
fn synthesized_requests_of_every_api_and_version_pass_and_decode() {
    for nulls in [false, true] {
        for (name, frame) in synthesized_requests(nulls) {
            guarded_decode(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn trailing_bytes_after_the_body_are_accepted_and_measured() {
    let mut frame = encode(18, 3, &RequestKind::ApiVersions(Default::default()));
    let full = frame.len();
    frame.extend_from_slice(b"junk");
    let (head, _, _) = guarded_decode(&frame).unwrap();
    assert_eq!(head.header_len + head.body_len, full);
}

// ---- Hostile frames ----

#[test]
fn short_frames_are_too_short() {
    for len in 0..8 {
        assert_eq!(check_request(&[0u8; 8][..len]), Err(GuardError::TooShort));
    }
}

#[test]
fn unknown_api_and_unsupported_version_still_report_the_header() {
    // UpdateFeatures is not served.
    let frame = raw_frame(57, 1, false, &[]);
    assert_eq!(
        check_request(&frame),
        Err(GuardError::UnknownApi {
            api_key: 57,
            api_version: 1,
            correlation_id: 7
        })
    );
    // A newer client's ApiVersions: the body layout is unknown, and may be garbage,
    // but the server still needs key, version and correlation id to answer in v0.
    let mut frame = raw_frame(18, 99, false, &[]);
    frame.truncate(8);
    frame.extend_from_slice(&[0xff; 20]);
    assert_eq!(
        check_request(&frame),
        Err(GuardError::UnsupportedVersion {
            api_key: 18,
            api_version: 99,
            correlation_id: 7
        })
    );
    // Produce v0-2 are gone from the schemas (KIP-896) and are never decoded.
    for version in [-1, 0, 1, 2] {
        assert!(matches!(
            check_request(&raw_frame(0, version, false, &[0; 64])),
            Err(GuardError::UnsupportedVersion { api_key: 0, .. })
        ));
    }
}

#[test]
fn huge_compact_array_counts_are_refused() {
    // Metadata v12: compact topics array claiming u32::MAX - 1 entries.
    let reason = malformed_reason(&raw_frame(
        3,
        12,
        true,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0],
    ));
    assert!(
        reason.contains("Topics: array count 4294967294"),
        "{reason}"
    );
    // A count that would fit in bytes if elements were free, but each element takes
    // at least 17 bytes in v12 (uuid, compact name, tag count).
    let reason = malformed_reason(&raw_frame(
        3,
        12,
        true,
        &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ));
    assert!(reason.contains("18 per element"), "{reason}");
}

#[test]
fn huge_counts_deep_inside_are_refused_with_their_path() {
    // Produce v3: one topic "t" whose partition array claims 2^31 - 1 entries.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b't');
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let reason = malformed_reason(&raw_frame(0, 3, false, &body));
    assert!(
        reason.starts_with("ProduceRequest v3: TopicData[0].PartitionData: array count 2147483647"),
        "{reason}"
    );
}

#[test]
fn overlong_and_oversized_varints_are_refused() {
    // Six-byte varint as Metadata v12's topic count.
    let reason = malformed_reason(&raw_frame(
        3,
        12,
        true,
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0],
    ));
    assert!(
        reason.contains("varint does not fit in 32 bits"),
        "{reason}"
    );
    // Five bytes whose last one carries bits above 2^32.
    let reason = malformed_reason(&raw_frame(
        3,
        12,
        true,
        &[0x81, 0x80, 0x80, 0x80, 0x10, 0, 0, 0],
    ));
    assert!(reason.contains("fifth byte 0x10"), "{reason}");
    // A padded but in-range varint is what the decoder reads too: accepted.
    let frame = raw_frame(3, 12, true, &[0x81, 0x80, 0x80, 0x80, 0x00, 0, 0, 0]);
    guarded_decode(&frame).unwrap();
}

#[test]
fn negative_lengths_other_than_null_are_refused() {
    // Produce v3 transactional id (nullable string) with length -2.
    let mut body = (-2i16).to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 16]);
    let reason = malformed_reason(&raw_frame(0, 3, false, &body));
    assert!(
        reason.contains("TransactionalId: string length is negative (-2)"),
        "{reason}"
    );
    // JoinGroup v0 protocol metadata (bytes) with length -5.
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b'g'); // group id
    body.extend_from_slice(&1000i32.to_be_bytes()); // session timeout
    body.extend_from_slice(&0i16.to_be_bytes()); // member id ""
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b'c'); // protocol type
    body.extend_from_slice(&1i32.to_be_bytes()); // one protocol
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b'r');
    body.extend_from_slice(&(-5i32).to_be_bytes());
    let reason = malformed_reason(&raw_frame(11, 0, false, &body));
    assert!(
        reason.contains("Protocols[0].Metadata: bytes length is negative (-5)"),
        "{reason}"
    );
}

#[test]
fn null_where_the_version_does_not_allow_it_is_refused() {
    // Metadata topics became nullable in v1; v0 has no null.
    let reason = malformed_reason(&raw_frame(3, 0, false, &(-1i32).to_be_bytes()));
    assert!(reason.contains("not nullable in v0"), "{reason}");
    guarded_decode(&raw_frame(3, 1, false, &(-1i32).to_be_bytes())).unwrap();
    // Compact null (0) for CreateTopics v5's non-nullable topics array.
    let reason = malformed_reason(&raw_frame(19, 5, true, &[0, 0, 0, 0, 0, 0, 0]));
    assert!(reason.contains("Topics: array count is null"), "{reason}");
}

#[test]
fn invalid_utf8_strings_are_refused() {
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend_from_slice(&2i16.to_be_bytes());
    body.extend_from_slice(&[0xc3, 0x28]);
    let reason = malformed_reason(&raw_frame(3, 0, false, &body));
    assert!(
        reason.contains("Topics[0].Name: string of 2 bytes is not UTF-8"),
        "{reason}"
    );
}

#[test]
fn tagged_fields_are_bounded_and_known_ones_checked() {
    // ApiVersions v3 body: two compact strings, then the tag section.
    let base = [2, b'a', 2, b'1'];
    let with_tags = |tags: &[u8]| {
        let mut b = base.to_vec();
        b.extend_from_slice(tags);
        raw_frame(18, 3, true, &b)
    };
    // Unknown tag whose size runs past the end.
    let reason = malformed_reason(&with_tags(&[1, 7, 50, 1, 2]));
    assert!(
        reason.contains("<tag 7>: tagged field needs 50 bytes, 2 remain"),
        "{reason}"
    );
    // More tagged fields than bytes could hold.
    let reason = malformed_reason(&with_tags(&[0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert!(reason.contains("tagged field count 4294967295"), "{reason}");
    // Unknown tags are skipped by size only.
    guarded_decode(&with_tags(&[2, 7, 2, 0xff, 0xff, 9, 0])).unwrap();

    // Fetch v12's ClusterId (tag 0, compact nullable string) whose value is shorter
    // than its declared size: the decoder would read the value in place and lose
    // its place in the frame.
    let fetch = encode(1, 12, &RequestKind::Fetch(FetchRequest::default()));
    assert_eq!(*fetch.last().unwrap(), 0, "no tags in the default request");
    let mut frame = fetch[..fetch.len() - 1].to_vec();
    frame.extend_from_slice(&[1, 0, 3, 2, b'c', b'x']);
    let reason = malformed_reason(&frame);
    assert!(
        reason.contains("ClusterId: tagged field declares 3 bytes but its value takes 2"),
        "{reason}"
    );
    // The same field with an honest size is fine.
    let mut frame = fetch[..fetch.len() - 1].to_vec();
    frame.extend_from_slice(&[1, 0, 2, 2, b'c']);
    let (_, _, body) = guarded_decode(&frame).unwrap();
    let RequestKind::Fetch(fetch_req) = body else {
        unreachable!()
    };
    assert_eq!(fetch_req.cluster_id.as_deref(), Some("c"));
    // A known tag's value must itself be well formed: a compact string claiming more
    // than its tag's size.
    let mut frame = fetch[..fetch.len() - 1].to_vec();
    frame.extend_from_slice(&[1, 0, 1, 0x7f]);
    let reason = malformed_reason(&frame);
    assert!(
        reason.contains("ClusterId: string needs 126 bytes, 0 remain"),
        "{reason}"
    );
    // Tag 1 (ReplicaState) only exists from v15; the decoder refuses it before then.
    let mut frame = fetch[..fetch.len() - 1].to_vec();
    frame.extend_from_slice(&[1, 1, 1, 0]);
    let reason = malformed_reason(&frame);
    assert!(
        reason.contains("ReplicaState: tag 1 is not valid in v12"),
        "{reason}"
    );
}

#[test]
fn flexible_header_client_id_keeps_its_two_byte_length() {
    // Header v2: a client id of 300 bytes needs a 2-byte length; a compact reading
    // would get lost.
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(&9i32.to_be_bytes());
    frame.extend_from_slice(&300i16.to_be_bytes());
    frame.extend_from_slice(&[b'x'; 300]);
    frame.extend_from_slice(&[0, 2, b'a', 2, b'1', 0]);
    let (head, header, _) = guarded_decode(&frame).unwrap();
    assert_eq!(head.header_len, 8 + 2 + 300 + 1);
    assert_eq!(header.client_id.map(|s| s.len()), Some(300));
}

#[test]
fn table_is_sorted_bounded_and_agrees_with_the_crate_on_header_versions() {
    fn depth(ty: &Ty) -> usize {
        match ty {
            Ty::Struct(fields) => 1 + fields.iter().map(|f| depth(&f.ty)).max().unwrap_or(0),
            Ty::Array(elem) => 1 + depth(elem),
            _ => 0,
        }
    }
    assert!(
        APIS.windows(2).all(|w| w[0].key < w[1].key),
        "APIS must be sorted by key, without duplicates"
    );
    for api in APIS {
        let d = depth(&Ty::Struct(api.fields));
        assert!(d < MAX_NESTING, "{}: nesting {d}", api.name);
        let key = ApiKey::try_from(api.key).unwrap();
        for version in versions(api) {
            let flexible_header = key.request_header_version(version) == 2;
            assert_eq!(
                api.flexible.contains(version),
                flexible_header,
                "{} v{version}",
                api.name
            );
        }
    }
}

/// Writes the fuzz target's seed corpus (valid frames of every api and version):
/// `FJORD_FUZZ_SEEDS=fuzz/corpus/request_decode cargo test -p fjord-broker -- --ignored write_fuzz_seeds`
#[test]
#[ignore = "writes files; run on demand"]
fn write_fuzz_seeds() {
    let dir = std::path::PathBuf::from(
        std::env::var("FJORD_FUZZ_SEEDS").expect("set FJORD_FUZZ_SEEDS to a directory"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let mut frames = populated_requests();
    frames.extend(synthesized_requests(false));
    frames.extend(synthesized_requests(true));
    for (name, frame) in frames {
        std::fs::write(dir.join(name.to_lowercase()), frame).unwrap();
    }
}

#[test]
fn nullable_struct_presence_is_minus_one_or_one() {
    // DescribeTopicPartitions v0: no topics, limit, then the Cursor's presence byte.
    let body = |presence: u8| {
        let mut b = vec![1u8, 0, 0, 0, 10, presence];
        if presence == 1 {
            b.extend_from_slice(&[2, b'a', 0, 0, 0, 3, 0]);
        }
        b.push(0);
        raw_frame(75, 0, true, &b)
    };
    let (_, _, req) = guarded_decode(&body(0xff)).expect("null cursor");
    let RequestKind::DescribeTopicPartitions(req) = req else {
        panic!("decoded as another request")
    };
    assert!(req.cursor.is_none());
    let (_, _, req) = guarded_decode(&body(1)).expect("present cursor");
    let RequestKind::DescribeTopicPartitions(req) = req else {
        panic!("decoded as another request")
    };
    let cursor = req.cursor.expect("cursor present");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("a", 3)
    );
    let reason = malformed_reason(&body(0));
    assert!(
        reason.contains("presence byte is 0"),
        "presence 0 must be refused, got {reason}"
    );
}
