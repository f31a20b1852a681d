//! Request handlers, one module per API family. Each handler takes the decoded
//! request and returns the response body; Kafka-level failures are error codes in
//! the response, never a Rust error. A Rust error here means the request could not
//! be decoded or answered at all, and the connection is closed.

pub mod acls;
pub mod admin;
pub mod api_versions;
pub mod configs;
pub mod describe_partitions;
pub mod elect;
pub mod fetch;
pub mod group_offsets;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod reassign;
pub mod records;
pub mod scram;
pub mod txn;

#[cfg(test)]
mod listener_tests;

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::broker::Broker;
use crate::log::FileSlice;
use crate::protocol::fetch_response::{self, Part};

pub struct RequestContext {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub peer: SocketAddr,
    /// The listener the request arrived on (name, security protocol, advertised
    /// address).
    pub listener: std::sync::Arc<crate::config::listeners::Listener>,
    /// Who the connection authenticated as.
    pub principal: crate::auth::Principal,
}

#[cfg(test)]
impl RequestContext {
    /// An anonymous plaintext request, as handler tests send them.
    pub fn for_tests(api_key: ApiKey, version: i16) -> RequestContext {
        RequestContext {
            api_key,
            version,
            correlation_id: 1,
            client_id: "test".into(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            listener: crate::config::listeners::Listener::plaintext_for_tests(),
            principal: crate::auth::Principal::anonymous(),
        }
    }
}

pub fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::UnregisterBroker => "UnregisterBroker",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeAcls => "DescribeAcls",
        ApiKey::CreateAcls => "CreateAcls",
        ApiKey::DeleteAcls => "DeleteAcls",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::DescribeUserScramCredentials => "DescribeUserScramCredentials",
        ApiKey::AlterUserScramCredentials => "AlterUserScramCredentials",
        ApiKey::DescribeClientQuotas => "DescribeClientQuotas",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::DescribeTopicPartitions => "DescribeTopicPartitions",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::EndTxn => "EndTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::DescribeTransactions => "DescribeTransactions",
        ApiKey::ListTransactions => "ListTransactions",
        ApiKey::DescribeProducers => "DescribeProducers",
        _ => "Other",
    }
}

#[cfg(test)]
#[test]
fn every_served_api_has_its_own_metric_label() {
    for &(key, _, _) in crate::protocol::SUPPORTED_APIS {
        assert_ne!(api_name(key), "Other", "{key:?}");
    }
}

/// Count a non-zero error code returned by `api` (per topic or partition).
pub fn count_error(broker: &Broker, api: ApiKey, code: i16) {
    if let Some(e) = ResponseError::try_from_code(code) {
        broker
            .metrics
            .request_errors
            .with_label_values(&[api_name(api), &format!("{e:?}")])
            .inc();
    }
}

/// The partition, if this broker leads it: UNKNOWN_TOPIC_OR_PARTITION when it does
/// not exist, KAFKA_STORAGE_ERROR when its replica here cannot be served,
/// NOT_LEADER_OR_FOLLOWER when another broker leads it (clients refresh metadata and
/// go there).
pub fn led_partition(
    broker: &Broker,
    image: &crate::metadata::image::MetadataImage,
    topic: &str,
    index: i32,
) -> Result<std::sync::Arc<crate::server::partition::Partition>, ResponseError> {
    image
        .partition(topic, index)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if broker.offline.contains(topic, index) {
        return Err(ResponseError::KafkaStorageError);
    }
    broker
        .partitions
        .get(topic, index)
        .filter(|p| p.is_leader())
        .ok_or(ResponseError::NotLeaderOrFollower)
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn decode<T: Decodable>(mut body: Bytes, version: i16) -> anyhow::Result<T> {
    T::decode(&mut body, version)
}

/// An encoded response frame: in one buffer, or in parts where record data is sent
/// from segment files.
pub enum Response {
    Frame(BytesMut),
    Parts(Vec<Part<FileSlice>>),
}

/// A Produce request: decode it and append its batches, in the order requests arrive.
/// Its answer comes from [`produce::Produced::finish`].
pub fn start_produce(
    broker: &Broker,
    ctx: &RequestContext,
    body: Bytes,
) -> anyhow::Result<produce::Produced> {
    Ok(produce::start(broker, ctx, decode(body, ctx.version)?))
}

/// Decode the body, run the handler, encode the response (None for acks=0 produce).
/// Responses are encoded into `buf`'s storage (see [`encode_response`]).
pub async fn dispatch(
    broker: &Broker,
    ctx: &RequestContext,
    body: Bytes,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<Response>> {
    let v = ctx.version;
    let mut encode = |resp: &dyn ErasedEncodable| resp.encode_frame(ctx, buf);
    let frame = match ctx.api_key {
        ApiKey::ApiVersions => encode(&api_versions::handle(decode(body, v)?, v)),
        ApiKey::Metadata => encode(&metadata::handle(broker, ctx, decode(body, v)?).await),
        ApiKey::Produce => {
            let produced = start_produce(broker, ctx, body)?;
            match produced.finish(broker).await {
                Some(resp) => encode(&resp),
                None => return Ok(None),
            }
        }
        ApiKey::Fetch => {
            let reply = fetch::handle(broker, ctx, decode(body, v)?).await;
            let parts =
                fetch_response::encode(&reply.response, reply.records, v, ctx.correlation_id, buf);
            return Ok(Some(Response::Parts(parts)));
        }
        ApiKey::ListOffsets => encode(&offsets::handle(broker, ctx, decode(body, v)?)),
        ApiKey::OffsetForLeaderEpoch => encode(&offsets::offset_for_leader_epoch(
            broker,
            ctx,
            decode(body, v)?,
        )),
        ApiKey::CreateTopics => encode(&admin::create_topics(broker, ctx, decode(body, v)?).await),
        ApiKey::DeleteTopics => encode(&admin::delete_topics(broker, ctx, decode(body, v)?).await),
        ApiKey::CreatePartitions => {
            encode(&admin::create_partitions(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::InitProducerId => {
            encode(&admin::init_producer_id(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::AddPartitionsToTxn => {
            encode(&txn::add_partitions_to_txn(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::AddOffsetsToTxn => {
            encode(&txn::add_offsets_to_txn(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::EndTxn => encode(&txn::end_txn(broker, ctx, decode(body, v)?).await),
        ApiKey::DescribeTransactions => {
            encode(&txn::describe_transactions(broker, ctx, decode(body, v)?))
        }
        ApiKey::ListTransactions => encode(&txn::list_transactions(broker, ctx, decode(body, v)?)),
        ApiKey::DescribeProducers => {
            encode(&txn::describe_producers(broker, ctx, decode(body, v)?))
        }
        ApiKey::DescribeCluster => encode(&admin::describe_cluster(broker, ctx, decode(body, v)?)),
        ApiKey::AlterPartitionReassignments => {
            encode(&reassign::alter(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::ListPartitionReassignments => {
            encode(&reassign::list(broker, ctx, decode(body, v)?))
        }
        ApiKey::UnregisterBroker => {
            encode(&reassign::unregister_broker(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::DescribeConfigs => {
            encode(&configs::describe_configs(broker, ctx, decode(body, v)?))
        }
        ApiKey::IncrementalAlterConfigs => {
            encode(&configs::incremental_alter_configs(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::AlterConfigs => {
            encode(&configs::alter_configs(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::ElectLeaders => encode(&elect::elect_leaders(broker, ctx, decode(body, v)?).await),
        ApiKey::DescribeTopicPartitions => encode(&describe_partitions::describe_topic_partitions(
            broker,
            ctx,
            decode(body, v)?,
        )),
        ApiKey::FindCoordinator => {
            encode(&groups::find_coordinator(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::JoinGroup => encode(&groups::join_group(broker, ctx, decode(body, v)?).await),
        ApiKey::SyncGroup => encode(&groups::sync_group(broker, ctx, decode(body, v)?).await),
        ApiKey::Heartbeat => encode(&groups::heartbeat(broker, ctx, decode(body, v)?)),
        ApiKey::LeaveGroup => encode(&groups::leave_group(broker, ctx, decode(body, v)?)),
        ApiKey::OffsetCommit => {
            encode(&group_offsets::offset_commit(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::OffsetFetch => encode(&group_offsets::offset_fetch(broker, ctx, decode(body, v)?)),
        ApiKey::TxnOffsetCommit => {
            encode(&group_offsets::txn_offset_commit(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::DescribeGroups => encode(&groups::describe_groups(broker, ctx, decode(body, v)?)),
        ApiKey::ListGroups => encode(&groups::list_groups(broker, ctx, decode(body, v)?)),
        ApiKey::DeleteGroups => encode(&groups::delete_groups(broker, ctx, decode(body, v)?).await),
        ApiKey::OffsetDelete => {
            encode(&group_offsets::offset_delete(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::DescribeAcls => encode(&acls::describe_acls(broker, ctx, decode(body, v)?)),
        ApiKey::CreateAcls => encode(&acls::create_acls(broker, ctx, decode(body, v)?).await),
        ApiKey::DeleteAcls => encode(&acls::delete_acls(broker, ctx, decode(body, v)?).await),
        ApiKey::DescribeUserScramCredentials => encode(&scram::describe_user_scram_credentials(
            broker,
            ctx,
            decode(body, v)?,
        )),
        ApiKey::AlterUserScramCredentials => {
            encode(&scram::alter_user_scram_credentials(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::DeleteRecords => {
            encode(&records::delete_records(broker, ctx, decode(body, v)?).await)
        }
        ApiKey::DescribeLogDirs => {
            encode(&records::describe_log_dirs(broker, ctx, decode(body, v)?))
        }
        ApiKey::DescribeClientQuotas => {
            let _: DescribeClientQuotasRequest = decode(body, v)?;
            encode(&DescribeClientQuotasResponse::default().with_entries(Some(Vec::new())))
        }
        // A SASL listener answers these from the connection's SASL state; here the
        // listener authenticates no one by SASL.
        ApiKey::SaslHandshake => encode(&scram::sasl_handshake_not_enabled()),
        ApiKey::SaslAuthenticate => encode(&scram::sasl_authenticate_not_enabled()),
        other => anyhow::bail!("{other:?} is not served"),
    }?;
    Ok(Some(Response::Frame(frame)))
}

/// Lets `dispatch` encode any response type through one closure.
trait ErasedEncodable {
    fn encode_frame(&self, ctx: &RequestContext, buf: &mut BytesMut) -> anyhow::Result<BytesMut>;
}

impl<T: kafka_protocol::protocol::Encodable> ErasedEncodable for T {
    fn encode_frame(&self, ctx: &RequestContext, buf: &mut BytesMut) -> anyhow::Result<BytesMut> {
        encode_response(ctx.api_key, ctx.version, ctx.correlation_id, self, buf)
    }
}

/// Room reserved before encoding a response; larger ones grow the buffer, which
/// keeps the larger storage for the next.
const RESPONSE_BUFFER_BYTES: usize = 1024;

/// Encode a response frame (size, header, body) into `buf`'s storage and split it
/// off: once the frame is written and dropped, the next encoding into `buf` reuses
/// the same memory, so a connection does not allocate per response.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    buf: &mut BytesMut,
) -> anyhow::Result<BytesMut> {
    buf.clear();
    buf.reserve(RESPONSE_BUFFER_BYTES);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, api_key.response_header_version(version))?;
    body.encode(buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.split())
}
