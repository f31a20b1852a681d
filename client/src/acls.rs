//! ACL admin calls (KIP-140): DescribeAcls, CreateAcls and DeleteAcls. Brokers route
//! changes through their controller, so any broker answers; descriptions come from the
//! answering broker's view of the metadata.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use crate::client::{str_bytes, Client};
use crate::error::{Error, Result};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code),*
                }
            }

            /// The value of a wire code; `None` for codes this client does not know
            /// (and for the filter-only codes ANY and MATCH).
            pub fn from_code(code: i8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

wire_enum!(
    /// What kind of thing an ACL protects (Kafka's ResourceType).
    AclResourceType {
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
);

wire_enum!(
    /// How an ACL's resource name matches (Kafka's PatternType).
    AclPatternType {
        /// The name exactly, or every resource with `*`.
        Literal = 3,
        /// Every name starting with it.
        Prefixed = 4,
    }
);

wire_enum!(
    /// What a request does to a resource (Kafka's AclOperation).
    AclOperation {
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
        CreateTokens = 13,
        DescribeTokens = 14,
    }
);

wire_enum!(
    /// ALLOW or DENY (Kafka's AclPermissionType).
    AclPermission {
        Deny = 2,
        Allow = 3,
    }
);

/// Kafka's code for ANY in filters.
const ANY: i8 = 1;

/// One ACL: Kafka's `AclBinding`, a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: AclResourceType,
    /// The resource's name or prefix; `*` for every resource of the type;
    /// `kafka-cluster` for the cluster.
    pub resource_name: String,
    pub pattern_type: AclPatternType,
    /// `Type:Name`, e.g. `User:alice`.
    pub principal: String,
    /// Client host the entry applies to, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Which ACLs a DescribeAcls or DeleteAcls matches: `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<AclResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: Option<AclPatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclFilter {
    /// Every ACL of `principal`.
    pub fn principal(principal: impl Into<String>) -> AclFilter {
        AclFilter {
            principal: Some(principal.into()),
            ..AclFilter::default()
        }
    }

    /// Exactly `binding` (a DeleteAcls filter that removes that one ACL).
    pub fn exact(binding: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: Some(binding.resource_type),
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: Some(binding.pattern_type),
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: Some(binding.operation),
            permission: Some(binding.permission),
        }
    }

    #[allow(clippy::type_complexity)]
    fn wire(
        &self,
    ) -> (
        i8,
        Option<String>,
        i8,
        Option<String>,
        Option<String>,
        i8,
        i8,
    ) {
        (
            self.resource_type.map_or(ANY, AclResourceType::code),
            self.resource_name.clone(),
            self.pattern_type.map_or(ANY, AclPatternType::code),
            self.principal.clone(),
            self.host.clone(),
            self.operation.map_or(ANY, AclOperation::code),
            self.permission.map_or(ANY, AclPermission::code),
        )
    }
}

/// A binding from the wire's codes; a code this client does not know is a protocol
/// error (a broker never stores ANY, MATCH or UNKNOWN).
#[allow(clippy::too_many_arguments)]
fn binding(
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding> {
    let bad = |what: &str, code: i8| Error::Protocol(format!("ACL with unknown {what} {code}"));
    Ok(AclBinding {
        resource_type: AclResourceType::from_code(resource_type)
            .ok_or_else(|| bad("resource type", resource_type))?,
        resource_name: resource_name.to_string(),
        pattern_type: AclPatternType::from_code(pattern_type)
            .ok_or_else(|| bad("pattern type", pattern_type))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::from_code(operation).ok_or_else(|| bad("operation", operation))?,
        permission: AclPermission::from_code(permission)
            .ok_or_else(|| bad("permission type", permission))?,
    })
}

impl Client {
    /// The ACLs matching `filter` (DescribeAcls; needs DESCRIBE on the cluster).
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let (rt, name, pt, principal, host, op, perm) = filter.wire();
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.as_deref().map(str_bytes))
            .with_pattern_type_filter(pt)
            .with_principal_filter(principal.as_deref().map(str_bytes))
            .with_host_filter(host.as_deref().map(str_bytes))
            .with_operation(op)
            .with_permission_type(perm);
        let response = self.controller_connection().await?.send(&request).await?;
        Error::check(
            response.error_code,
            || "ACLs".to_string(),
            response.error_message.as_ref(),
        )?;
        let mut out = Vec::new();
        for r in &response.resources {
            for a in &r.acls {
                out.push(binding(
                    r.resource_type,
                    &r.resource_name,
                    r.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )?);
            }
        }
        Ok(out)
    }

    /// Creates ACLs (CreateAcls; needs ALTER on the cluster); one result per binding,
    /// in order. Creating an ACL that exists already succeeds.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let request = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(str_bytes(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(str_bytes(&b.principal))
                        .with_host(str_bytes(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let response = self.controller_connection().await?.send(&request).await?;
        if response.results.len() != bindings.len() {
            return Err(Error::Protocol(format!(
                "CreateAcls answered {} results for {} ACLs",
                response.results.len(),
                bindings.len()
            )));
        }
        Ok(bindings
            .iter()
            .zip(&response.results)
            .map(|(b, r)| {
                Error::check(
                    r.error_code,
                    || format!("ACL {b:?}"),
                    r.error_message.as_ref(),
                )
            })
            .collect())
    }

    /// Deletes the ACLs matching each filter (DeleteAcls; needs ALTER on the cluster);
    /// per filter, in order, the ACLs it removed.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Result<Vec<AclBinding>>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    let (rt, name, pt, principal, host, op, perm) = f.wire();
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(rt)
                        .with_resource_name_filter(name.as_deref().map(str_bytes))
                        .with_pattern_type_filter(pt)
                        .with_principal_filter(principal.as_deref().map(str_bytes))
                        .with_host_filter(host.as_deref().map(str_bytes))
                        .with_operation(op)
                        .with_permission_type(perm)
                })
                .collect(),
        );
        let response = self.controller_connection().await?.send(&request).await?;
        if response.filter_results.len() != filters.len() {
            return Err(Error::Protocol(format!(
                "DeleteAcls answered {} results for {} filters",
                response.filter_results.len(),
                filters.len()
            )));
        }
        Ok(filters
            .iter()
            .zip(&response.filter_results)
            .map(|(f, r)| {
                Error::check(
                    r.error_code,
                    || format!("ACL filter {f:?}"),
                    r.error_message.as_ref(),
                )?;
                r.matching_acls
                    .iter()
                    .map(|m| {
                        binding(
                            m.resource_type,
                            &m.resource_name,
                            m.pattern_type,
                            &m.principal,
                            &m.host,
                            m.operation,
                            m.permission_type,
                        )
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_filters_use_any() {
        for op in [
            AclOperation::All,
            AclOperation::Read,
            AclOperation::IdempotentWrite,
        ] {
            assert_eq!(AclOperation::from_code(op.code()), Some(op));
        }
        assert_eq!(AclOperation::from_code(ANY), None);
        assert_eq!(AclPatternType::from_code(2), None, "MATCH is filter-only");
        let (rt, name, pt, principal, _, op, perm) = AclFilter::principal("User:alice").wire();
        assert_eq!((rt, pt, op, perm), (ANY, ANY, ANY, ANY));
        assert_eq!(name, None);
        assert_eq!(principal.as_deref(), Some("User:alice"));
    }

    #[test]
    fn exact_filter_names_every_field() {
        let b = AclBinding {
            resource_type: AclResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: AclPatternType::Prefixed,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        };
        assert_eq!(
            AclFilter::exact(&b).wire(),
            (
                2,
                Some("orders".into()),
                4,
                Some("User:alice".into()),
                Some("*".into()),
                4,
                3
            )
        );
        assert!(binding(2, "orders", 4, "User:alice", "*", 4, 3).unwrap() == b);
        assert!(binding(2, "orders", 1, "User:alice", "*", 4, 3).is_err());
    }
}
