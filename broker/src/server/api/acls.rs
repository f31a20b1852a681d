//! The ACL APIs (DescribeAcls, CreateAcls, DeleteAcls) and the authorizer every
//! handler asks. Changes go through the controller, so the ACLs live in the metadata
//! log and every broker enforces the same set; descriptions read this broker's image.
//!
//! As in Kafka (AclApis): DescribeAcls needs DESCRIBE on the cluster, CreateAcls and
//! DeleteAcls need ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise), and
//! without an authorizer all three answer SECURITY_DISABLED.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, Authorizer, PatternType,
    PermissionType, ResourcePattern, ResourceType,
};
use crate::metadata::admin::AdminError;
use crate::metadata::image::MetadataImage;
use crate::quorum::{ControllerReply, ControllerRequest};
use crate::server::broker::Broker;

/// GROUP_AUTHORIZATION_FAILED unless the principal may do `op` on the group.
pub(super) fn group_access(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
    group_id: &str,
) -> Result<(), ResponseError> {
    let denied = ResponseError::GroupAuthorizationFailed;
    access(broker, ctx, op, ResourceType::Group, group_id, denied)
}

/// `denied` unless the principal may do `op` on the resource `name` of type `resource`.
pub(super) fn access(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
    resource: ResourceType,
    name: &str,
    denied: ResponseError,
) -> Result<(), ResponseError> {
    let image = broker.image();
    authorizer(broker, ctx, &image)
        .authorize(op, resource, name)
        .then_some(())
        .ok_or(denied)
}

/// The authorizer's decisions for this request's principal and client address,
/// against the ACLs of `image`.
pub fn authorizer<'a>(
    broker: &'a Broker,
    ctx: &'a RequestContext,
    image: &'a MetadataImage,
) -> Authorizer<'a> {
    Authorizer::new(
        &broker.config.authorizer,
        image.acls(),
        &ctx.principal,
        ctx.peer.ip(),
    )
}

/// CLUSTER_AUTHORIZATION_FAILED (counted) unless the principal may do `op` on the
/// cluster: the check of the APIs Kafka authorizes as a whole.
pub fn cluster_denied(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
) -> Option<AdminError> {
    let image = broker.image();
    if authorizer(broker, ctx, &image).cluster(op) {
        return None;
    }
    count_error(
        broker,
        ctx.api_key,
        ResponseError::ClusterAuthorizationFailed.code(),
    );
    Some(AdminError {
        code: ResponseError::ClusterAuthorizationFailed,
        message: format!("{} may not {op:?} the cluster", ctx.principal),
    })
}

/// Why an ACL API is refused as a whole, if it is.
fn refused(broker: &Broker, ctx: &RequestContext, op: AclOperation) -> Option<AdminError> {
    if !broker.config.authorizer.enabled() {
        count_error(broker, ctx.api_key, ResponseError::SecurityDisabled.code());
        return Some(AdminError {
            code: ResponseError::SecurityDisabled,
            message: "no authorizer is configured on the broker (--authorizer)".into(),
        });
    }
    cluster_denied(broker, ctx, op)
}

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn binding_of(c: &AclCreation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type),
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type),
        },
        entry: AccessControlEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation),
            permission: PermissionType::from_code(c.permission_type),
        },
    }
}

pub fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some(e) = refused(broker, ctx, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let filter = AclBindingFilter {
        resource_type: ResourceType::from_code(req.resource_type_filter),
        name: opt_string(&req.resource_name_filter),
        pattern_type: PatternType::from_code(req.pattern_type_filter),
        principal: opt_string(&req.principal_filter),
        host: opt_string(&req.host_filter),
        operation: AclOperation::from_code(req.operation),
        permission: PermissionType::from_code(req.permission_type),
    };
    if let Err(e) = filter.validate() {
        count_error(broker, ctx.api_key, ResponseError::InvalidRequest.code());
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(e.0)));
    }
    let image = broker.image();
    // One entry per resource pattern, as Kafka groups them.
    let mut resources: BTreeMap<&ResourcePattern, Vec<AclDescription>> = BTreeMap::new();
    for (_, b) in image.acls().matching(&filter) {
        resources.entry(&b.pattern).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(b.entry.principal.clone()))
                .with_host(str_bytes(b.entry.host.clone()))
                .with_operation(b.entry.operation.code())
                .with_permission_type(b.entry.permission.code()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|(p, acls)| {
            DescribeAclsResource::default()
                .with_resource_type(p.resource_type.code())
                .with_resource_name(str_bytes(p.name.clone()))
                .with_pattern_type(p.pattern_type.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn create_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |code: ResponseError, message: String| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some(e) = refused(broker, ctx, AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| failed(e.code, e.message.clone()))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings: Vec<AclBinding> = req.creations.iter().map(binding_of).collect();
    // Invalid bindings are answered one by one; the valid ones go to the controller
    // together, and succeed or fail together.
    let valid: Vec<AclBinding> = bindings
        .iter()
        .filter(|b| b.validate().is_ok())
        .cloned()
        .collect();
    let committed = if valid.is_empty() {
        Ok(ControllerReply::Done)
    } else {
        broker.submit(ControllerRequest::CreateAcls(valid)).await
    };
    let results = bindings
        .iter()
        .map(|b| match (b.validate(), &committed) {
            (Err(e), _) => failed(ResponseError::InvalidRequest, e.0),
            (Ok(()), Err(e)) => failed(e.code, e.message.clone()),
            (Ok(()), Ok(_)) => {
                tracing::info!(acl = %b, principal = %ctx.principal, "created ACL");
                AclCreationResult::default()
            }
        })
        .inspect(|r| count_error(broker, ctx.api_key, r.error_code))
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(f: &DeleteAclsFilter) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(f.resource_type_filter),
        name: opt_string(&f.resource_name_filter),
        pattern_type: PatternType::from_code(f.pattern_type_filter),
        principal: opt_string(&f.principal_filter),
        host: opt_string(&f.host_filter),
        operation: AclOperation::from_code(f.operation),
        permission: PermissionType::from_code(f.permission_type),
    }
}

pub async fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: ResponseError, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if let Some(e) = refused(broker, ctx, AclOperation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| failed(e.code, e.message.clone()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<AclBindingFilter> = req.filters.iter().map(filter_of).collect();
    let valid: Vec<AclBindingFilter> = filters
        .iter()
        .filter(|f| f.validate().is_ok())
        .cloned()
        .collect();
    let committed = if valid.is_empty() {
        Ok(vec![])
    } else {
        match broker.submit(ControllerRequest::DeleteAcls(valid)).await {
            Ok(ControllerReply::AclsDeleted(deleted)) => Ok(deleted),
            Ok(other) => Err(AdminError {
                code: ResponseError::UnknownServerError,
                message: format!("controller answered DeleteAcls with {other:?}"),
            }),
            Err(e) => Err(e),
        }
    };
    let mut deleted = committed.as_ref().map(|d| d.iter());
    let results = filters
        .iter()
        .map(|f| match (f.validate(), &mut deleted) {
            (Err(e), _) => failed(ResponseError::InvalidRequest, e.0),
            (Ok(()), Err(e)) => failed(e.code, e.message.clone()),
            (Ok(()), Ok(per_filter)) => {
                let matching = per_filter
                    .next()
                    .into_iter()
                    .flatten()
                    .inspect(
                        |b| tracing::info!(acl = %b, principal = %ctx.principal, "deleted ACL"),
                    )
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.pattern.resource_type.code())
                            .with_resource_name(str_bytes(b.pattern.name.clone()))
                            .with_pattern_type(b.pattern.pattern_type.code())
                            .with_principal(str_bytes(b.entry.principal.clone()))
                            .with_host(str_bytes(b.entry.host.clone()))
                            .with_operation(b.entry.operation.code())
                            .with_permission_type(b.entry.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .inspect(|r| count_error(broker, ctx.api_key, r.error_code))
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
#[path = "acls_tests/mod.rs"]
mod tests;
