//! Kafka's ACL model (KIP-11, prefixed patterns from KIP-290): a binding is a
//! resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal, host,
//! operation, ALLOW or DENY). Bindings live in the metadata log (`AclStore` in the
//! image), so every broker decides from the same set; `Authorizer` decides.
//!
//! Codes are Kafka's wire numbers (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType` in kafka-clients), so requests map in and out unchanged.

mod authorizer;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use authorizer::{Authorizer, AuthorizerConfig, AuthorizerKind, SuperUsers};
pub use store::AclStore;

/// The one name of the CLUSTER resource (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL resource name, principal or host that matches every other.
pub const WILDCARD: &str = "*";
/// `User:*`: an ACL principal that matches every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The most ACLs a cluster holds (every broker keeps them all in memory); Kafka has
/// no limit, a hundred thousand is far beyond what deployments use.
pub const MAX_ACLS: usize = 100_000;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($variant = $code),+
        }

        impl $name {
            /// Kafka maps a code it does not know to UNKNOWN; so does this.
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)+
                    _ => $name::Unknown,
                }
            }

            pub fn code(self) -> i8 {
                self as i8
            }
        }
    };
}

wire_enum!(
    /// What kind of thing an ACL protects.
    ResourceType {
        Unknown = 0,
        Any = 1,
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
);

wire_enum!(
    /// How an ACL's resource name matches: LITERAL (or the `*` wildcard) and PREFIXED
    /// are stored; ANY and MATCH exist only in filters.
    PatternType {
        Unknown = 0,
        Any = 1,
        Match = 2,
        Literal = 3,
        Prefixed = 4,
    }
);

wire_enum!(
    /// What a request does to a resource.
    AclOperation {
        Unknown = 0,
        Any = 1,
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
        TwoPhaseCommit = 15,
    }
);

wire_enum!(
    /// ALLOW or DENY; ANY only in filters.
    PermissionType {
        Unknown = 0,
        Any = 1,
        Deny = 2,
        Allow = 3,
    }
);

impl AclOperation {
    /// The operations Kafka reports in authorized-operations fields for a resource
    /// type (`AclEntry.supportedOperations`).
    pub fn supported_on(resource: ResourceType) -> &'static [AclOperation] {
        use AclOperation::*;
        match resource {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

/// The resource side of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// Who may (or may not) do what, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessControlEntry {
    /// `Type:Name` as Kafka writes it; `User:*` matches every user.
    pub principal: String,
    /// A client address as the broker sees it, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// One ACL: Kafka's `AclBinding`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:?} {:?}: {} from {} {:?} {:?}",
            self.pattern.resource_type,
            self.pattern.pattern_type,
            self.pattern.name,
            self.entry.principal,
            self.entry.host,
            self.entry.permission,
            self.entry.operation
        )
    }
}

/// Kafka's `AclBindingFilter`: `None` strings and ANY codes match everything; a MATCH
/// pattern type selects the bindings that would apply to the named resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// A binding or filter Kafka would refuse; the message names the field and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// Kafka's checks on a new ACL (AclApis and `AclControlManager.validateNewAcl`):
    /// concrete type, pattern type, operation and permission (no ANY, MATCH or
    /// UNKNOWN), a non-empty name, `kafka-cluster` as the only CLUSTER name, and a
    /// principal of the form `Type:Name`.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let (p, e) = (&self.pattern, &self.entry);
        if matches!(p.resource_type, ResourceType::Unknown | ResourceType::Any) {
            return Err(InvalidAcl(format!(
                "invalid resource type {:?} in an ACL",
                p.resource_type
            )));
        }
        if !matches!(p.pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Err(InvalidAcl(format!(
                "invalid pattern type {:?} in an ACL (LITERAL or PREFIXED)",
                p.pattern_type
            )));
        }
        if matches!(e.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(InvalidAcl(format!(
                "invalid operation {:?} in an ACL",
                e.operation
            )));
        }
        if !matches!(e.permission, PermissionType::Allow | PermissionType::Deny) {
            return Err(InvalidAcl(format!(
                "invalid permission type {:?} in an ACL (ALLOW or DENY)",
                e.permission
            )));
        }
        if p.name.is_empty() {
            return Err(InvalidAcl(
                "an ACL's resource name must not be empty".into(),
            ));
        }
        if p.resource_type == ResourceType::Cluster && p.name != CLUSTER_NAME {
            return Err(InvalidAcl(format!(
                "the only valid name for the CLUSTER resource is {CLUSTER_NAME}, not {:?}",
                p.name
            )));
        }
        crate::auth::Principal::parse(&e.principal)
            .map_err(|err| InvalidAcl(format!("ACL principal: {err}")))?;
        Ok(())
    }
}

impl AclBindingFilter {
    /// Kafka refuses a filter with an UNKNOWN code anywhere (`validateFilter`).
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        if self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == PermissionType::Unknown
        {
            return Err(InvalidAcl(format!(
                "ACL filter with an unknown resource type, pattern type, operation or permission: {self:?}"
            )));
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    fn matches_pattern(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != p.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == p.pattern_type {
            return *name == p.name;
        }
        // MATCH: the bindings that apply to a resource called `name`.
        match p.pattern_type {
            PatternType::Literal => *name == p.name || p.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&p.name),
            _ => false,
        }
    }

    fn matches_entry(&self, e: &AccessControlEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == PermissionType::Any || self.permission == e.permission)
    }
}
