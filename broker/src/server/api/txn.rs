//! Transaction APIs (KIP-98): InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions,
//! ListTransactions, and DescribeProducers (a replica's producer state, KIP-664). Decisions come from `txn::TxnCoordinator` through `server::txn`;
//! this layer checks ACLs and that partitions exist, and maps the wire types in and
//! out (PRODUCER_FENCED only to the versions that know it, KIP-588).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::server::broker::Broker;
use crate::server::txn::TxnShard;
use crate::txn::{
    for_old_client, partition_for, Answer, InitProducerIdRequest as TxnInit, ListFilter,
    ProducerIdAndEpoch, TopicPartition, TxnProducer, TxnResult, TRANSACTION_STATE_TOPIC,
};

/// The shard coordinating `transactional_id` here: NOT_COORDINATOR unless this broker
/// leads its `__transaction_state` partition and has loaded it (the client then finds
/// the coordinator again), COORDINATOR_LOAD_IN_PROGRESS while it loads.
fn shard_for(broker: &Broker, transactional_id: &str) -> Result<Arc<TxnShard>, ResponseError> {
    let runtime = broker
        .txns()
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = txn_partition(&broker.image(), transactional_id)
        .ok_or(ResponseError::NotCoordinator)?
        .partition;
    runtime.shard(partition)
}

/// The `__transaction_state` partition coordinating `transactional_id`, if the topic
/// exists (FindCoordinator).
pub fn txn_partition<'a>(
    image: &'a crate::metadata::image::MetadataImage,
    transactional_id: &str,
) -> Option<&'a crate::metadata::image::PartitionState> {
    let topic = image.topic(TRANSACTION_STATE_TOPIC)?;
    let n = i32::try_from(topic.partitions.len()).ok()?;
    topic
        .partitions
        .get(usize::try_from(partition_for(transactional_id, n)).ok()?)
}

/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED unless the principal may do `op` on the id.
fn txn_access(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
    transactional_id: &str,
) -> Result<(), ResponseError> {
    let denied = ResponseError::TransactionalIdAuthorizationFailed;
    let resource = ResourceType::TransactionalId;
    super::acls::access(broker, ctx, op, resource, transactional_id, denied)
}

fn fail(broker: &Broker, ctx: &RequestContext, code: ResponseError) -> i16 {
    count_error(broker, ctx.api_key, code.code());
    code.code()
}

/// The outcome of a request the coordinator answers with success or a code.
async fn done(
    broker: &Broker,
    transactional_id: &str,
    event: impl FnOnce(&mut crate::txn::TxnCoordinator, u64, i64) -> Vec<crate::txn::Action>,
) -> Result<(), ResponseError> {
    let shard = shard_for(broker, transactional_id)?;
    match shard.ask(event).await? {
        Answer::Done(result) => result,
        Answer::InitProducerId(_) => Err(ResponseError::UnknownServerError),
    }
}

/// InitProducerId with a transactional id: a producer id and epoch from the id's
/// coordinator, fencing the id's earlier producer (KIP-98, KIP-360).
pub async fn init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: &InitProducerIdRequest,
    transactional_id: &str,
) -> InitProducerIdResponse {
    let v = ctx.version;
    let answer = async {
        txn_access(broker, ctx, AclOperation::Write, transactional_id)?;
        // KIP-360 (v3+): the id and epoch the producer holds when it asks for a bump.
        let expected =
            (req.producer_id.0 != -1 || req.producer_epoch != -1).then_some(ProducerIdAndEpoch {
                producer_id: req.producer_id.0,
                epoch: req.producer_epoch,
            });
        let init = TxnInit {
            transactional_id: transactional_id.to_string(),
            timeout_ms: req.transaction_timeout_ms,
            expected,
        };
        let shard = shard_for(broker, transactional_id)?;
        match shard
            .ask(|c, request, now| c.init_producer_id(&init, request, now))
            .await?
        {
            Answer::InitProducerId(result) => result,
            Answer::Done(_) => Err(ResponseError::UnknownServerError),
        }
    };
    match answer.await {
        Ok(ids) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(ids.producer_id))
            .with_producer_epoch(ids.epoch),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(fail(broker, ctx, for_old_client(code, v >= 4)))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn add_partitions_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let v = ctx.version;
    let transactional_id = req.v3_and_below_transactional_id.0.to_string();
    let requested: Vec<(String, Vec<i32>)> = req
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.clone()))
        .collect();
    // One code per partition: the refusals Kafka gives before asking the coordinator
    // (every other partition is then OPERATION_NOT_ATTEMPTED), else the coordinator's
    // answer for all of them.
    let mut refused: BTreeMap<(String, i32), ResponseError> = BTreeMap::new();
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let outcome = if !auth.authorize(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        for (topic, partitions) in &requested {
            for &p in partitions {
                // Internal topics are written by their coordinators only.
                let code = if topic.starts_with("__")
                    || !auth.authorize(AclOperation::Write, ResourceType::Topic, topic)
                {
                    Some(ResponseError::TopicAuthorizationFailed)
                } else if image.partition(topic, p).is_none() {
                    Some(ResponseError::UnknownTopicOrPartition)
                } else {
                    None
                };
                if let Some(code) = code {
                    refused.insert((topic.clone(), p), code);
                }
            }
        }
        if !refused.is_empty() {
            Err(ResponseError::OperationNotAttempted)
        } else {
            let producer = TxnProducer {
                transactional_id: transactional_id.clone(),
                producer_id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
            };
            let partitions: Vec<TopicPartition> = requested
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |&p| TopicPartition::new(t, p)))
                .collect();
            done(broker, &transactional_id, |c, request, now| {
                c.add_partitions(&producer, &partitions, request, now)
            })
            .await
        }
    };
    let results = req
        .v3_and_below_topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = match (refused.get(&(name.clone(), p)), outcome) {
                        (Some(&code), _) => Some(code),
                        (None, Err(code)) => Some(for_old_client(code, v >= 2)),
                        (None, Ok(())) => None,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code.map_or(0, |c| fail(broker, ctx, c)))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(results_by_partition)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub async fn add_offsets_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let transactional_id = req.transactional_id.0.to_string();
    let group_id = req.group_id.0.to_string();
    let outcome = async {
        txn_access(broker, ctx, AclOperation::Write, &transactional_id)?;
        super::acls::group_access(broker, ctx, AclOperation::Read, &group_id)?;
        let image = broker.image();
        // The group's coordinator partition: of the topic as it stands, or as it will
        // be created.
        let offsets_partitions = image
            .topic(crate::group::OFFSETS_TOPIC)
            .and_then(|t| i32::try_from(t.partitions.len()).ok())
            .unwrap_or(broker.config.offsets_topic_num_partitions);
        let producer = TxnProducer {
            transactional_id: transactional_id.clone(),
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        done(broker, &transactional_id, |c, request, now| {
            c.add_offsets(
                &producer,
                &group_id,
                |g| crate::group::partition_for(g, offsets_partitions),
                request,
                now,
            )
        })
        .await
    };
    let code = match outcome.await {
        Ok(()) => 0,
        Err(code) => fail(broker, ctx, for_old_client(code, ctx.version >= 2)),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end_txn(broker: &Broker, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let transactional_id = req.transactional_id.0.to_string();
    let outcome = async {
        txn_access(broker, ctx, AclOperation::Write, &transactional_id)?;
        let producer = TxnProducer {
            transactional_id: transactional_id.clone(),
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let result = if req.committed {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        done(broker, &transactional_id, |c, request, now| {
            c.end_txn(&producer, result, request, now)
        })
        .await
    };
    let code = match outcome.await {
        Ok(()) => 0,
        Err(code) => fail(broker, ctx, for_old_client(code, ctx.version >= 2)),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub fn describe_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    use describe_transactions_response::{TopicData, TransactionState};
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let state = TransactionState::default().with_transactional_id(id);
            let described =
                if auth.authorize(AclOperation::Describe, ResourceType::TransactionalId, &name) {
                    shard_for(broker, &name).and_then(|s| s.read(|c, _| c.describe(&name))?)
                } else {
                    Err(ResponseError::TransactionalIdAuthorizationFailed)
                };
            match described {
                Ok(d) => {
                    // Only the topics the principal may describe, as Kafka answers.
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for tp in d.partitions.iter().filter(|tp| {
                        auth.authorize(AclOperation::Describe, ResourceType::Topic, &tp.topic)
                    }) {
                        topics
                            .entry(tp.topic.clone())
                            .or_default()
                            .push(tp.partition);
                    }
                    state
                        .with_transaction_state(str_bytes(d.state.as_str()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, partitions)| {
                                    TopicData::default()
                                        .with_topic(TopicName(str_bytes(t)))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        )
                }
                Err(code) => state
                    .with_error_code(fail(broker, ctx, code))
                    .with_transaction_state(str_bytes(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    use list_transactions_response::TransactionState;
    let filter = ListFilter {
        states: req.state_filters.iter().map(|s| s.to_string()).collect(),
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        duration_ms: if ctx.version >= 1 {
            req.duration_filter
        } else {
            -1
        },
    };
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let mut resp = ListTransactionsResponse::default();
    let mut unknown = std::collections::BTreeSet::new();
    for shard in broker.txns().map(|r| r.loaded()).unwrap_or_default() {
        match shard.read(|c, now| c.list(&filter, now)) {
            Ok(Ok(listing)) => {
                unknown.extend(listing.unknown_state_filters);
                resp.transaction_states.extend(
                    listing
                        .transactions
                        .into_iter()
                        .filter(|t| {
                            auth.authorize(
                                AclOperation::Describe,
                                ResourceType::TransactionalId,
                                &t.transactional_id,
                            )
                        })
                        .map(|t| {
                            TransactionState::default()
                                .with_transactional_id(TransactionalId(str_bytes(
                                    t.transactional_id,
                                )))
                                .with_producer_id(ProducerId(t.producer_id))
                                .with_transaction_state(str_bytes(t.state.as_str()))
                        }),
                );
            }
            // A shard that resigned meanwhile lists nothing; one loading answers
            // for the whole request, as Kafka's does.
            Ok(Err(code)) => resp.error_code = fail(broker, ctx, code),
            Err(_) => {}
        }
    }
    resp.unknown_state_filters = unknown.into_iter().map(str_bytes).collect();
    resp
}

/// DescribeProducers (KIP-664): the producers a partition replica remembers, with the
/// first offset of each one's open transaction (`kafka-transactions.sh
/// describe-producers` and `find-hanging`).
pub fn describe_producers(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    use describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let may_read = auth.authorize(AclOperation::Read, ResourceType::Topic, &name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let resp = PartitionResponse::default().with_partition_index(index);
                    let leader = if !may_read {
                        Err(ResponseError::TopicAuthorizationFailed)
                    } else if image.partition(&name, index).is_none() {
                        Err(ResponseError::UnknownTopicOrPartition)
                    } else {
                        // Any replica answers from its own producer state, so that
                        // `find-hanging --broker-id` can ask one broker for all it hosts.
                        broker
                            .partitions
                            .get(&name, index)
                            .ok_or(ResponseError::NotLeaderOrFollower)
                    };
                    match leader {
                        Ok(p) => resp.with_active_producers(p.with_log(|log| {
                            log.producer_state()
                                .producers()
                                .map(|(id, e)| {
                                    let last = e.batches.back();
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(id))
                                        .with_producer_epoch(i32::from(e.producer_epoch))
                                        .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                                        .with_last_timestamp(last.map_or(-1, |b| b.timestamp_ms))
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            e.txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect()
                        })),
                        Err(code) => resp
                            .with_error_code(fail(broker, ctx, code))
                            .with_error_message(Some(str_bytes(code.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
