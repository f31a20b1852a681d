//! ElectLeaders (key 43): preferred and unclean leader elections on request
//! (`kafka-leader-election.sh`). The controller decides
//! ([`Controller::elect_leaders`](crate::replication::controller::Controller::elect_leaders));
//! this handler checks who may ask and shapes the answer.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::AclOperation;
use crate::quorum::{ControllerReply, ControllerRequest};
use crate::replication::controller::{ElectLeaders, ElectionType};
use crate::server::broker::Broker;

/// Results grouped by topic, as Kafka answers them.
fn response(
    error_code: i16,
    results: impl IntoIterator<Item = (String, i32, i16, Option<String>)>,
) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, code, message) in results {
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message.map(str_bytes)),
        );
    }
    ElectLeadersResponse::default()
        .with_error_code(error_code)
        .with_replica_election_results(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(str_bytes(topic)))
                        .with_partition_result(partitions)
                })
                .collect(),
        )
}

/// The named partitions of a request, each once, in request order.
fn named_partitions(req: &ElectLeadersRequest) -> Option<Vec<(String, i32)>> {
    let topics = req.topic_partitions.as_ref()?;
    let mut seen = std::collections::BTreeSet::new();
    Some(
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.to_string(), p)))
            .filter(|tp| seen.insert(tp.clone()))
            .collect(),
    )
}

/// Every named partition refused with `code` (the request as a whole was refused).
fn refused(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ElectLeadersRequest,
    code: ResponseError,
    message: String,
) -> ElectLeadersResponse {
    count_error(broker, ctx.api_key, code.code());
    let partitions = named_partitions(req).unwrap_or_default();
    response(
        code.code(),
        partitions
            .into_iter()
            .map(|(t, p)| (t, p, code.code(), Some(message.clone()))),
    )
}

pub async fn elect_leaders(
    broker: &Broker,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let mut resp = answer(broker, ctx, req).await;
    if ctx.version < 1 {
        // v0 has no top-level error code; its partitions carry the refusal.
        resp.error_code = 0;
    }
    resp
}

async fn answer(
    broker: &Broker,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 has no election type: it asks for the preferred leader (KIP-183).
    let wire_type = if ctx.version >= 1 {
        req.election_type
    } else {
        0
    };
    let Some(election) = ElectionType::from_wire(wire_type) else {
        let message = format!("election type {wire_type} is not 0 (preferred) or 1 (unclean)");
        return refused(broker, ctx, &req, ResponseError::InvalidRequest, message);
    };
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    if !auth.cluster(AclOperation::Alter) {
        let message = format!("{} may not Alter the cluster", ctx.principal);
        return refused(
            broker,
            ctx,
            &req,
            ResponseError::ClusterAuthorizationFailed,
            message,
        );
    }
    let request = ElectLeaders {
        election,
        partitions: named_partitions(&req),
    };
    match broker
        .submit(ControllerRequest::ElectLeaders(request))
        .await
    {
        Ok(ControllerReply::Elected(results)) => {
            for (_, _, code, _) in &results {
                count_error(broker, ctx.api_key, *code);
            }
            tracing::info!(
                ?election,
                elected = results.iter().filter(|r| r.2 == 0).count(),
                "leader election requested"
            );
            response(0, results)
        }
        Ok(other) => refused(
            broker,
            ctx,
            &req,
            ResponseError::UnknownServerError,
            format!("the controller answered {other:?}"),
        ),
        Err(e) => refused(broker, ctx, &req, e.code, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;

    #[test]
    fn named_partitions_are_deduplicated_and_null_means_all() {
        let req = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(str_bytes("a")))
                .with_partitions(vec![1, 0, 1]),
            TopicPartitions::default()
                .with_topic(TopicName(str_bytes("a")))
                .with_partitions(vec![0]),
        ]));
        assert_eq!(
            named_partitions(&req),
            Some(vec![("a".to_string(), 1), ("a".to_string(), 0)])
        );
        assert_eq!(
            named_partitions(&ElectLeadersRequest::default().with_topic_partitions(None)),
            None
        );
    }

    #[test]
    fn results_are_grouped_by_topic() {
        let resp = response(
            0,
            vec![
                ("b".to_string(), 0, 0, None),
                ("a".to_string(), 2, 84, Some("led".to_string())),
                ("b".to_string(), 1, 80, None),
            ],
        );
        let shape: Vec<(String, Vec<(i32, i16)>)> = resp
            .replica_election_results
            .iter()
            .map(|t| {
                (
                    t.topic.to_string(),
                    t.partition_result
                        .iter()
                        .map(|p| (p.partition_id, p.error_code))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a".to_string(), vec![(2, 84)]),
                ("b".to_string(), vec![(0, 0), (1, 80)])
            ]
        );
    }
}
