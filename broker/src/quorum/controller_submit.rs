//! The active controller's answers to brokers' controller requests (`Submit`):
//! each decided against the controller's state or image, committed as one entry,
//! and answered with the index of that entry for the caller to wait for.

// The serve loop and its types are the parent's (controller.rs).
use super::*;

impl Active {
    /// The outcome of one request: the reply and the entry index to wait for, or the
    /// Kafka error. `Err(NotCommitted::Resign)` when committing failed.
    pub(super) async fn submit(
        &mut self,
        broker: i32,
        broker_epoch: i64,
        req: ControllerRequest,
    ) -> Result<Result<(ControllerReply, u64), AdminError>, NotCommitted> {
        let refuse = |code: ResponseError, message: String| Ok(Err(AdminError { code, message }));
        match req {
            ControllerRequest::Records(records) => {
                let image = self.sm.image();
                if let Err((code, message)) = check_records(&image, &records) {
                    return refuse(code, message);
                }
                let index = self.commit(records.clone()).await?;
                if !self.controller.apply_topic_records(&records) {
                    self.controller.set_state(
                        ClusterState::from_image(&self.sm.image()),
                        self.handle.now_ms(),
                    );
                }
                Ok(Ok((ControllerReply::Done, index)))
            }
            ControllerRequest::AlterPartitions(requests) => {
                if requests.len() > MAX_ALTER_PARTITIONS {
                    return refuse(
                        ResponseError::InvalidRequest,
                        format!("{} partitions in one AlterPartition", requests.len()),
                    );
                }
                let mut records = Vec::new();
                let answers = requests
                    .iter()
                    .map(|request| {
                        let (result, decided) = self.controller.alter_partition(
                            broker,
                            BrokerEpoch(broker_epoch),
                            request,
                        );
                        records.extend(decided);
                        result.map_err(|code| code.code())
                    })
                    .collect();
                // One entry for all (none if every change was refused).
                let index = self.commit_decided(records, None).await?;
                Ok(Ok((ControllerReply::Partitions(answers), index)))
            }
            ControllerRequest::AlterReassignment { partition, target } => {
                match self.controller.alter_reassignment(partition, target) {
                    Err(code) => refuse(code, format!("reassignment of {partition} refused")),
                    Ok(records) => {
                        let index = self.commit_decided(records, None).await?;
                        Ok(Ok((ControllerReply::Done, index)))
                    }
                }
            }
            ControllerRequest::AllocateProducerIds { count } => {
                if count <= 0 {
                    return refuse(
                        ResponseError::InvalidRequest,
                        format!("producer id block of {count}"),
                    );
                }
                let first = self.sm.image().producer_ids_reserved_until;
                let index = self
                    .commit(vec![MetadataRecord::ProducerIdsReserved {
                        next_producer_id: first + count,
                    }])
                    .await?;
                Ok(Ok((ControllerReply::ProducerIds { first, count }, index)))
            }
            ControllerRequest::CreateAcls(bindings) => {
                let planned = self.sm.image().acls().plan_create(
                    &bindings,
                    crate::auth::acl::MAX_ACLS,
                    uuid::Uuid::new_v4,
                );
                let records = match planned {
                    Err(e) => return refuse(ResponseError::InvalidRequest, e.0),
                    Ok(p) => p
                        .into_iter()
                        .map(|(id, binding)| MetadataRecord::AclCreated { id, binding }),
                };
                let index = self.commit(records.collect()).await?;
                Ok(Ok((ControllerReply::Done, index)))
            }
            ControllerRequest::DeleteAcls(filters) => {
                let matched = match self.sm.image().acls().plan_delete(&filters) {
                    Err(e) => return refuse(ResponseError::InvalidRequest, e.0),
                    Ok(m) => m,
                };
                let ids: BTreeSet<uuid::Uuid> =
                    matched.iter().flatten().map(|(id, _)| *id).collect();
                let index = self
                    .commit(
                        ids.into_iter()
                            .map(|id| MetadataRecord::AclRemoved { id })
                            .collect(),
                    )
                    .await?;
                let deleted = matched
                    .into_iter()
                    .map(|m| m.into_iter().map(|(_, b)| b).collect());
                Ok(Ok((ControllerReply::AclsDeleted(deleted.collect()), index)))
            }
            ControllerRequest::ElectLeaders(req) => {
                let (results, records) = self.controller.elect_leaders(&req);
                let index = if records.is_empty() {
                    self.applied()
                } else {
                    self.commit_decided(records, None).await?
                };
                let results = results
                    .into_iter()
                    .map(|(topic, partition, r)| match r {
                        Ok(()) => (topic, partition, 0, None),
                        Err((code, message)) => (topic, partition, code.code(), Some(message)),
                    })
                    .collect();
                Ok(Ok((ControllerReply::Elected(results), index)))
            }
            ControllerRequest::Sync => Ok(Ok((ControllerReply::Done, self.sm.image_index()))),
            ControllerRequest::ReplicaStorage { partition, offline } => {
                match self.controller.replica_storage(
                    broker,
                    BrokerEpoch(broker_epoch),
                    partition,
                    offline,
                ) {
                    Err(code) => refuse(code, format!("storage report for {partition} refused")),
                    Ok(records) => {
                        let index = self.commit_decided(records, None).await?;
                        Ok(Ok((ControllerReply::Done, index)))
                    }
                }
            }
            ControllerRequest::UnregisterBroker { broker } => {
                let membership = self.raft.metrics().borrow().membership_config.clone();
                if membership
                    .membership()
                    .voter_ids()
                    .any(|v| v == broker as NodeId)
                {
                    return refuse(
                        ResponseError::InvalidRequest,
                        format!(
                            "broker {broker} is a metadata quorum voter; voters cannot leave the quorum"
                        ),
                    );
                }
                match self.controller.unregister_broker(broker) {
                    Err(code) => refuse(code, format!("broker {broker} cannot be unregistered")),
                    Ok(records) => {
                        let index = self.commit_decided(records, None).await?;
                        if membership
                            .membership()
                            .get_node(&(broker as NodeId))
                            .is_some()
                        {
                            self.leave(broker as NodeId);
                        }
                        Ok(Ok((ControllerReply::Done, index)))
                    }
                }
            }
        }
    }
}

/// Do `records` apply, all of them, to `image`? Else the Kafka error for the first
/// that does not.
pub(super) fn check_records(
    image: &MetadataImage,
    records: &[MetadataRecord],
) -> Result<(), (ResponseError, String)> {
    let mut next = image.clone();
    for r in records {
        if let Err(message) = next.apply(r) {
            let code = match r {
                MetadataRecord::TopicCreated { name, .. } if next.topic(name).is_some() => {
                    ResponseError::TopicAlreadyExists
                }
                _ if message.starts_with("no topic") || message.contains("has no partition") => {
                    ResponseError::UnknownTopicOrPartition
                }
                MetadataRecord::ScramCredentialSet { .. } => ResponseError::UnacceptableCredential,
                MetadataRecord::ScramCredentialRemoved { .. } => ResponseError::ResourceNotFound,
                _ => ResponseError::InvalidRequest,
            };
            return Err((code, message));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod unit;
