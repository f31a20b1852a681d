//! The decision: may this principal, from this host, do this operation on this
//! resource? Kafka's StandardAuthorizer rules, pure:
//! - no authorizer configured: everything is allowed (as a Kafka broker without
//!   `authorizer.class.name`);
//! - a super user is allowed everything;
//! - of the ACLs that cover the resource (literal name, literal `*`, PREFIXED
//!   patterns that begin the name) and match the principal (or `User:*`) and host
//!   (or `*`): any DENY for the operation (or ALL) denies; else any ALLOW for it
//!   allows, where an ALLOW of READ, WRITE, DELETE or ALTER also allows DESCRIBE and
//!   an ALLOW of ALTER_CONFIGS also allows DESCRIBE_CONFIGS (a DENY implies nothing);
//! - no ACL covers the resource at all: `allow.everyone.if.no.acl.found`;
//! - else denied.

use std::net::IpAddr;

use super::{AccessControlEntry, WILDCARD, WILDCARD_PRINCIPAL};
use super::{AclOperation, AclStore, PatternType, PermissionType, ResourceType};
use crate::auth::{Principal, PrincipalError};

/// Which authorizer checks requests (Kafka's `authorizer.class.name`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizerKind {
    /// No authorizer: every request is allowed, and the ACL APIs answer
    /// SECURITY_DISABLED.
    #[default]
    None,
    /// Kafka's StandardAuthorizer: ACLs from the metadata log.
    Standard,
}

/// `super.users`: principals allowed everything, `;`-separated as Kafka writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperUsers(Vec<Principal>);

impl SuperUsers {
    pub fn parse(s: &str) -> Result<SuperUsers, PrincipalError> {
        s.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Principal::parse)
            .collect::<Result<_, _>>()
            .map(SuperUsers)
    }

    pub fn contains(&self, p: &Principal) -> bool {
        self.0.contains(p)
    }
}

/// The authorizer settings, with Kafka's names.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthorizerConfig {
    /// The authorizer (authorizer.class.name): `none` allows every request to every
    /// client; `standard` checks Kafka ACLs kept in the metadata log. Production
    /// clusters set `standard`.
    #[arg(
        long = "authorizer",
        env = "FJORD_AUTHORIZER",
        value_enum,
        default_value_t = AuthorizerKind::None
    )]
    pub kind: AuthorizerKind,

    /// Principals allowed everything whatever the ACLs say (super.users), separated
    /// by `;`: `User:admin;User:CN=ops`.
    #[arg(long, env = "FJORD_SUPER_USERS", default_value = "", value_parser = parse_super_users)]
    pub super_users: SuperUsers,

    /// Allow an operation on a resource that no ACL names
    /// (allow.everyone.if.no.acl.found); off by default, as in Kafka.
    #[arg(
        long,
        env = "FJORD_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub allow_everyone_if_no_acl_found: bool,
}

fn parse_super_users(s: &str) -> Result<SuperUsers, String> {
    SuperUsers::parse(s).map_err(|e| format!("super users: {e}"))
}

impl AuthorizerConfig {
    pub fn enabled(&self) -> bool {
        self.kind != AuthorizerKind::None
    }
}

/// One requester's view of the authorizer: the decisions for a principal at a host,
/// against one set of ACLs.
pub struct Authorizer<'a> {
    config: &'a AuthorizerConfig,
    acls: &'a AclStore,
    principal: &'a Principal,
    /// `Type:Name`, as ACL entries write principals.
    principal_name: String,
    /// The client address as Kafka prints it (`InetAddress.getHostAddress`).
    host: String,
}

/// The name Kafka's `authorizeByResourceType` checks first, so that super users (and,
/// with `allow.everyone.if.no.acl.found`, everyone) pass whatever the ACLs say.
const HARDCODED_NAME: &str = "hardcode";

impl<'a> Authorizer<'a> {
    pub fn new(
        config: &'a AuthorizerConfig,
        acls: &'a AclStore,
        principal: &'a Principal,
        host: IpAddr,
    ) -> Authorizer<'a> {
        // Without an authorizer nothing is looked up: the request path pays nothing.
        let (principal_name, host) = if config.enabled() {
            (principal.to_string(), host.to_canonical().to_string())
        } else {
            Default::default()
        };
        Authorizer {
            config,
            acls,
            principal,
            principal_name,
            host,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled()
    }

    /// May the requester do `op` on the resource `resource_type`/`name`?
    pub fn authorize(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        if !self.enabled() || self.config.super_users.contains(self.principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for entry in self.acls.applying_to(resource_type, name) {
            covered = true;
            match self.applies(entry, op) {
                Some(PermissionType::Deny) => return false,
                Some(PermissionType::Allow) => allowed = true,
                _ => {}
            }
        }
        allowed || (!covered && self.config.allow_everyone_if_no_acl_found)
    }

    /// Does this entry decide `op` for the requester, and which way?
    fn applies(&self, e: &AccessControlEntry, op: AclOperation) -> Option<PermissionType> {
        if e.principal != self.principal_name && e.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if e.host != WILDCARD && e.host != self.host {
            return None;
        }
        use AclOperation::*;
        let covers = e.operation == All
            || e.operation == op
            || (e.permission == PermissionType::Allow
                && match op {
                    Describe => matches!(e.operation, Read | Write | Delete | Alter),
                    DescribeConfigs => e.operation == AlterConfigs,
                    _ => false,
                });
        covers.then_some(e.permission)
    }

    pub fn cluster(&self, op: AclOperation) -> bool {
        self.authorize(op, ResourceType::Cluster, super::CLUSTER_NAME)
    }

    /// Kafka's `authorizedOperations`: the bitfield (bit = operation code) of the
    /// operations supported on the resource type that the requester may do.
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        AclOperation::supported_on(resource_type)
            .iter()
            .filter(|&&op| self.authorize(op, resource_type, name))
            .fold(0, |bits, &op| bits | (1 << op.code()))
    }

    /// May the requester do `op` on at least one resource of the type (KIP-679, for
    /// idempotent producers with WRITE on some topic)? Kafka's default
    /// `authorizeByResourceType`: an ALLOW of the operation (or ALL) for the
    /// requester, on the literal `*` or on a name or prefix that no DENY of the
    /// requester covers (a literal DENY of the same name, a PREFIXED DENY of a prefix
    /// of it); a literal `*` DENY denies.
    pub fn authorize_by_resource_type(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.authorize(op, resource_type, HARDCODED_NAME) {
            return true;
        }
        let mine = |e: &AccessControlEntry| {
            (e.host == WILDCARD || e.host == self.host)
                && (e.principal == self.principal_name || e.principal == WILDCARD_PRINCIPAL)
                && (e.operation == op || e.operation == AclOperation::All)
        };
        let mut denied_literal = Vec::new();
        let mut denied_prefix = Vec::new();
        let mut allowed = Vec::new();
        let mut wildcard_allowed = false;
        for b in self.acls.of_type(resource_type).filter(|b| mine(&b.entry)) {
            let (name, pattern) = (b.pattern.name.as_str(), b.pattern.pattern_type);
            match b.entry.permission {
                PermissionType::Deny if pattern == PatternType::Literal && name == WILDCARD => {
                    return false
                }
                PermissionType::Deny if pattern == PatternType::Literal => {
                    denied_literal.push(name)
                }
                PermissionType::Deny => denied_prefix.push(name),
                PermissionType::Allow if pattern == PatternType::Literal && name == WILDCARD => {
                    wildcard_allowed = true
                }
                PermissionType::Allow => allowed.push((name, pattern)),
                _ => {}
            }
        }
        wildcard_allowed
            || allowed.into_iter().any(|(name, pattern)| {
                let literal_denied =
                    pattern == PatternType::Literal && denied_literal.contains(&name);
                let prefix_denied = denied_prefix.iter().any(|d| name.starts_with(d));
                !literal_denied && !prefix_denied
            })
    }
}
