//! User controller: a Kafka user of a FjordCluster. It keeps the user's credentials
//! (a SCRAM-SHA-512 credential on the brokers, or a client certificate from the
//! clients CA) and a Secret named after the User for its clients, and makes the
//! User's ACL rules the whole truth for its principal `User:<name>`: missing ACLs are
//! created and others deleted, on every change and at each resync (so ACLs changed
//! behind the operator's back come back). A finalizer removes the ACLs, the SCRAM
//! credential and the Secret before the User goes.
//!
//! The pure parts (desired ACLs and their difference with the brokers', the Secret's
//! contents) come first and are unit-tested in `user_tests.rs`; the runtime follows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_client::{
    AclBinding, AclFilter, AclOperation as WireOperation, AclPatternType as WirePattern,
    AclPermission as WirePermission, AclResourceType as WireResource, Client as BrokerClient,
    ResponseError, ScramMechanism, ScramUpsertion, SCRAM_MIN_ITERATIONS,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};

use crate::apply::apply_status;
use crate::conditions;
use crate::context::{paused, BrokerEndpoint, Context};
use crate::desired::FIELD_MANAGER;
use crate::types::{
    AclOperation, AclPatternType, AclPermission, AclResourceType, AclRule, FjordCluster,
    ListenerAuthentication, ListenerSpec, User, UserAuthenticationType, UserStatus,
};
use crate::{Error, Result};

const KIND: &str = "User";
/// Finalizer that removes the user's ACLs, credential and Secret first.
pub const FINALIZER: &str = "fjord.dev/user";
/// PBKDF2 iterations of the SCRAM credentials the operator sets (Kafka's minimum and
/// default for `kafka-configs --alter --add-config SCRAM-SHA-512=[...]`).
pub const SCRAM_ITERATIONS: i32 = SCRAM_MIN_ITERATIONS;
/// Kafka's name of the one CLUSTER resource.
const CLUSTER_NAME: &str = "kafka-cluster";
/// Longest ACL resource name accepted (Kafka's topic names stop at 249).
const RESOURCE_NAME_MAX_LEN: usize = 255;

// ---- Desired state (pure) ----

/// The principal the brokers give the user: `User:<name>` for SCRAM and for a client
/// certificate whose common name is the user name.
pub fn principal(user_name: &str) -> String {
    format!("User:{user_name}")
}

/// An ACL rule that cannot be written as Kafka ACLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

fn wire_operation(op: AclOperation) -> WireOperation {
    match op {
        AclOperation::All => WireOperation::All,
        AclOperation::Read => WireOperation::Read,
        AclOperation::Write => WireOperation::Write,
        AclOperation::Create => WireOperation::Create,
        AclOperation::Delete => WireOperation::Delete,
        AclOperation::Alter => WireOperation::Alter,
        AclOperation::Describe => WireOperation::Describe,
        AclOperation::ClusterAction => WireOperation::ClusterAction,
        AclOperation::DescribeConfigs => WireOperation::DescribeConfigs,
        AclOperation::AlterConfigs => WireOperation::AlterConfigs,
        AclOperation::IdempotentWrite => WireOperation::IdempotentWrite,
    }
}

/// The ACL bindings `rules` stand for: one per rule and operation, for `principal`.
/// Duplicates collapse (the brokers keep a binding once).
pub fn desired_acls(
    principal: &str,
    rules: &[AclRule],
) -> Result<BTreeSet<AclBinding>, InvalidAcl> {
    let mut out = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let r = &rule.resource;
        let (resource_type, name) = match r.type_ {
            AclResourceType::Cluster => match r.name.as_deref() {
                None | Some(CLUSTER_NAME) => (WireResource::Cluster, CLUSTER_NAME.to_string()),
                Some(other) => {
                    return Err(InvalidAcl(format!(
                        "acls[{i}]: the cluster resource is named {CLUSTER_NAME}, not {other:?}"
                    )))
                }
            },
            other => {
                let kind = match other {
                    AclResourceType::Topic => WireResource::Topic,
                    AclResourceType::Group => WireResource::Group,
                    _ => WireResource::TransactionalId,
                };
                match r.name.as_deref() {
                    Some(n) if !n.is_empty() && n.len() <= RESOURCE_NAME_MAX_LEN => {
                        (kind, n.to_string())
                    }
                    Some(n) if !n.is_empty() => {
                        return Err(InvalidAcl(format!(
                            "acls[{i}]: resource name of {} bytes exceeds {RESOURCE_NAME_MAX_LEN}",
                            n.len()
                        )))
                    }
                    _ => {
                        return Err(InvalidAcl(format!(
                            "acls[{i}]: a {other:?} resource needs a name (or \"*\")"
                        )))
                    }
                }
            }
        };
        if rule.operations.is_empty() {
            return Err(InvalidAcl(format!("acls[{i}]: no operations")));
        }
        if rule.host.is_empty() || rule.host.len() > RESOURCE_NAME_MAX_LEN {
            return Err(InvalidAcl(format!(
                "acls[{i}]: host must be \"*\" or an address"
            )));
        }
        let pattern_type = match r.pattern_type {
            AclPatternType::Literal => WirePattern::Literal,
            AclPatternType::Prefixed => WirePattern::Prefixed,
        };
        let permission = match rule.type_ {
            AclPermission::Allow => WirePermission::Allow,
            AclPermission::Deny => WirePermission::Deny,
        };
        for &op in &rule.operations {
            out.insert(AclBinding {
                resource_type,
                resource_name: name.clone(),
                pattern_type,
                principal: principal.to_string(),
                host: rule.host.clone(),
                operation: wire_operation(op),
                permission,
            });
        }
    }
    Ok(out)
}

/// What to change on the brokers so that `principal`'s ACLs are `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclDiff {
    /// Desired ACLs the brokers lack.
    pub create: Vec<AclBinding>,
    /// ACLs of the principal that the User does not list.
    pub delete: Vec<AclBinding>,
}

impl AclDiff {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// Desired against what the brokers hold (`actual`, from DescribeAcls on the
/// principal). Bindings of other principals are never deleted, whatever `actual` holds.
pub fn acl_diff(principal: &str, desired: &BTreeSet<AclBinding>, actual: &[AclBinding]) -> AclDiff {
    let actual: BTreeSet<&AclBinding> =
        actual.iter().filter(|b| b.principal == principal).collect();
    AclDiff {
        create: desired
            .iter()
            .filter(|b| !actual.contains(b))
            .cloned()
            .collect(),
        delete: actual
            .into_iter()
            .filter(|b| !desired.contains(*b))
            .cloned()
            .collect(),
    }
}

/// A client listener of `cluster` with `authentication`: the first one, as clients of
/// that kind of user connect to it.
pub fn listener_for(
    cluster: &FjordCluster,
    authentication: ListenerAuthentication,
) -> Option<ListenerSpec> {
    cluster
        .spec
        .client_listeners()
        .into_iter()
        .find(|l| l.authentication == authentication)
}

/// The bootstrap address of `listener` through the cluster's bootstrap Service.
pub fn listener_bootstrap(cluster: &FjordCluster, listener: &ListenerSpec) -> String {
    format!(
        "{}.{}.svc:{}",
        crate::listeners::bootstrap_service_name(cluster),
        cluster.namespace().unwrap_or_default(),
        listener.port
    )
}

// ---- TLS users ----

/// A client certificate and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Whether the client certificate `crt_pem` must be replaced at `now`: unreadable,
/// within `renew_before` of its end, or not signed by the clients CA in use (`ca`). A
/// certificate of the CA before a renewal works through the overlap only, so it is
/// replaced as soon as the renewal shows.
pub fn certificate_due(
    crt_pem: &str,
    ca: &crate::pki::CertInfo,
    now: i64,
    renew_before: Duration,
) -> bool {
    let first = crate::pki::parse_certificates(crt_pem.as_bytes())
        .ok()
        .and_then(|certs| certs.into_iter().next());
    let Some(cert) = first else {
        return true;
    };
    let renew_at = cert
        .not_after
        .saturating_sub(i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX));
    renew_at <= now || !cert.signed_by(ca)
}

/// A client certificate for `user_name` (subject `CN=<name>`) from the clients CA `ca`,
/// valid for the cluster's `certificates.validity`.
fn issue_user_certificate(
    ca: &crate::pki::Ca,
    cluster: &FjordCluster,
    user_name: &str,
) -> Result<IssuedCertificate> {
    let validity = crate::pki::parse_duration("validity", &cluster.spec.certificates().validity)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let issued = crate::pki::issue_user_certificate(
        ca,
        user_name,
        k8s_openapi::jiff::Timestamp::now(),
        validity,
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(IssuedCertificate {
        chain_pem: issued.chain_pem,
        key_pem: issued.key_pem,
    })
}

// ---- Runtime ----

/// The User controller's state: the shared context and its resync interval.
pub struct UserContext {
    pub ctx: Arc<Context>,
    /// How often a Ready User is compared with the brokers again.
    pub resync: Duration,
}

/// One reconcile of a User.
pub async fn reconcile(user: Arc<User>, uctx: Arc<UserContext>) -> Result<Action> {
    let ctx = &uctx.ctx;
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let ns = user
        .namespace()
        .ok_or_else(|| Error::Invalid("User without namespace".into()))?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, user, |event| async {
        match event {
            Finalizer::Apply(user) => apply_user(&api, &user, ctx, uctx.resync).await,
            Finalizer::Cleanup(user) => cleanup_user(&user, ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics
        .duration
        .with_label_values(&[KIND])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn write_status(api: &Api<User>, user: &User, status: &UserStatus) -> Result<()> {
    apply_status(api, user, serde_json::to_value(status).unwrap()).await
}

/// What one pass changed on the brokers and in the Secret.
struct Synced {
    acls: usize,
    changes: Vec<String>,
    /// Why the user is not ready although nothing failed.
    not_ready: Option<(&'static str, String)>,
}

async fn apply_user(
    api: &Api<User>,
    user: &User,
    ctx: &Context,
    resync: Duration,
) -> Result<Action> {
    let generation = user.meta().generation;
    let name = user.name_any();
    let mut status = user.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.principal = Some(principal(&name));
    status.secret = Some(name.clone());

    if paused(user) {
        conditions::set(
            &mut status.conditions,
            "Paused",
            true,
            "ReconciliationPaused",
            format!("annotation {} is \"true\"", crate::types::PAUSE_ANNOTATION),
            generation,
        );
        write_status(api, user, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    conditions::remove(&mut status.conditions, "Paused");

    let ns = user.namespace().unwrap_or_default();
    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&user.spec.cluster_ref).await? else {
        conditions::cluster_not_found(
            &mut status.conditions,
            &user.spec.cluster_ref,
            &ns,
            generation,
        );
        write_status(api, user, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };

    let rules = user
        .spec
        .authorization
        .as_ref()
        .map(|a| a.acls.as_slice())
        .unwrap_or_default();
    let desired = match desired_acls(&principal(&name), rules) {
        Ok(d) => d,
        Err(e) => {
            conditions::set(
                &mut status.conditions,
                "Ready",
                false,
                "InvalidAcl",
                e.0.clone(),
                generation,
            );
            ctx.event(user, EventType::Warning, "InvalidAcl", e.0).await;
            write_status(api, user, &status).await?;
            return Ok(Action::requeue(resync));
        }
    };

    let bootstrap = BrokerEndpoint::of(&cluster);
    match sync_user(user, &cluster, &bootstrap, &desired, ctx).await {
        Ok(synced) => {
            status.acls = Some(synced.acls as i32);
            match &synced.not_ready {
                Some((reason, message)) => conditions::set(
                    &mut status.conditions,
                    "Ready",
                    false,
                    reason,
                    message.clone(),
                    generation,
                ),
                None => conditions::set(
                    &mut status.conditions,
                    "Ready",
                    true,
                    "Reconciled",
                    format!(
                        "credentials in Secret {name:?}; {} ACLs of {} on the brokers",
                        synced.acls,
                        principal(&name)
                    ),
                    generation,
                ),
            }
            if !synced.changes.is_empty() {
                ctx.event(
                    user,
                    EventType::Normal,
                    "Reconciled",
                    synced.changes.join("; "),
                )
                .await;
            }
            write_status(api, user, &status).await?;
            ctx.reset_backoff(user);
            Ok(Action::requeue(resync))
        }
        Err(e) => {
            let reason = match &e {
                Error::Broker(_) => "BrokerError",
                other => other.kind(),
            };
            ctx.forget_broker(&bootstrap).await;
            conditions::set(
                &mut status.conditions,
                "Ready",
                false,
                reason,
                e.to_string(),
                generation,
            );
            ctx.event(user, EventType::Warning, reason, e.to_string())
                .await;
            write_status(api, user, &status).await?;
            Err(e)
        }
    }
}

/// The cluster CA bundle from `<cluster>-cluster-ca-cert`, when that Secret exists.
async fn cluster_ca_bundle(ctx: &Context, cluster: &FjordCluster) -> Result<Option<String>> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let name = format!("{}-cluster-ca-cert", cluster.name_any());
    Ok(secrets
        .get_opt(&name)
        .await?
        .and_then(|s| secret_text(&s, "ca.crt"))
        .filter(|ca| ca.contains("-----BEGIN CERTIFICATE-----")))
}

/// The user's SCRAM credentials on the brokers (none for a user the brokers do not know).
async fn scram_mechanisms(client: &BrokerClient, name: &str) -> Result<Vec<ScramMechanism>> {
    let described = client
        .describe_user_scram_credentials(Some(&[name]))
        .await?;
    let mut out = Vec::new();
    for (user, result) in described {
        if user != name {
            continue;
        }
        match result {
            Ok(infos) => out.extend(infos.into_iter().map(|i| i.mechanism)),
            Err(e) if e.kafka() == Some(ResponseError::ResourceNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Removes every SCRAM credential of `name` that the brokers hold.
async fn remove_scram(client: &BrokerClient, name: &str) -> Result<bool> {
    let held = scram_mechanisms(client, name).await?;
    if held.is_empty() {
        return Ok(false);
    }
    let deletions: Vec<(String, ScramMechanism)> =
        held.into_iter().map(|m| (name.to_string(), m)).collect();
    for (_, result) in client.alter_user_scram_credentials(&[], &deletions).await? {
        match result {
            Ok(()) => {}
            Err(e) if e.kafka() == Some(ResponseError::ResourceNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

// ---- Broker-side steps (also driven by operator/tests/user_broker.rs) ----

/// Makes `principal`'s ACLs on the brokers exactly `desired`: DescribeAcls on the
/// principal, then CreateAcls for the missing and DeleteAcls (one exact filter each)
/// for the extra. Returns what it changed.
pub async fn apply_acls(
    client: &BrokerClient,
    principal: &str,
    desired: &BTreeSet<AclBinding>,
) -> Result<AclDiff> {
    let actual = client
        .describe_acls(&AclFilter::principal(principal))
        .await?;
    let diff = acl_diff(principal, desired, &actual);
    for result in client.create_acls(&diff.create).await? {
        result?;
    }
    let filters: Vec<AclFilter> = diff.delete.iter().map(AclFilter::exact).collect();
    for result in client.delete_acls(&filters).await? {
        result?;
    }
    Ok(diff)
}

/// Sets `name`'s SCRAM-SHA-512 credential to `password` when the password `changed`
/// (generated, or edited in the Secret) or the brokers hold none (removed behind the
/// operator's back); a password the brokers already have is not salted again on every
/// pass. Returns whether it set it.
pub async fn ensure_scram(
    client: &BrokerClient,
    name: &str,
    password: &str,
    changed: bool,
) -> Result<bool> {
    if !changed
        && scram_mechanisms(client, name)
            .await?
            .contains(&ScramMechanism::Sha512)
    {
        return Ok(false);
    }
    let upsertion = ScramUpsertion::new(name, ScramMechanism::Sha512, password, SCRAM_ITERATIONS)?;
    for (_, result) in client
        .alter_user_scram_credentials(&[upsertion], &[])
        .await?
    {
        result?;
    }
    Ok(true)
}

/// Removes what the brokers hold for user `name`: every ACL of its principal (when the
/// cluster has an authorizer) and its SCRAM credentials. Returns what it removed.
pub async fn remove_user(client: &BrokerClient, name: &str, acls: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if acls {
        for result in client
            .delete_acls(&[AclFilter::principal(principal(name))])
            .await?
        {
            let n = result?.len();
            if n > 0 {
                removed.push(format!("deleted {n} ACLs"));
            }
        }
    }
    if remove_scram(client, name).await? {
        removed.push("removed the SCRAM credential".into());
    }
    Ok(removed)
}

async fn sync_user(
    user: &User,
    cluster: &FjordCluster,
    bootstrap: &BrokerEndpoint,
    desired: &BTreeSet<AclBinding>,
    ctx: &Context,
) -> Result<Synced> {
    let name = user.name_any();
    let ns = user.namespace().unwrap_or_default();
    let uid = user.meta().uid.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets.get_opt(&name).await?;
    if existing.as_ref().is_some_and(|s| !owned_by(s, &uid)) {
        return Ok(Synced {
            acls: 0,
            changes: Vec::new(),
            not_ready: Some((
                "SecretConflict",
                format!(
                    "Secret {name:?} exists and does not belong to this User: it is left alone"
                ),
            )),
        });
    }
    let ca = cluster_ca_bundle(ctx, cluster).await?;
    let client = ctx.broker(bootstrap).await?;
    let mut changes = Vec::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match user.spec.authentication.type_ {
        UserAuthenticationType::ScramSha512 => {
            let kept = existing
                .as_ref()
                .and_then(|s| secret_text(s, "password"))
                .filter(|p| usable_password(p));
            let fresh = kept.is_none();
            let password = kept.unwrap_or_else(generate_password);
            let listener = listener_for(cluster, ListenerAuthentication::ScramSha512).map(|l| {
                ClientListener {
                    bootstrap: listener_bootstrap(cluster, &l),
                    tls: l.tls,
                }
            });
            let data = scram_secret_data(&name, &password, listener.as_ref(), ca.as_deref());
            // What the brokers were last given; a password edited in the Secret differs.
            let given = existing
                .as_ref()
                .and_then(|s| s.annotations().get(PASSWORD_DIGEST_ANNOTATION).cloned());
            let digest = password_digest(&password);
            let changed = fresh || given.as_deref().is_some_and(|g| g != digest);
            // The password is kept before the brokers get it, and recorded as given
            // after: a pass that fails between the two gives it again next time.
            let secret = |given: Option<&str>| {
                with_password_digest(
                    desired_secret(user, &cluster.name_any(), data.clone()),
                    given,
                )
            };
            secrets
                .patch(&name, &params, &Patch::Apply(&secret(given.as_deref())))
                .await?;
            if fresh {
                changes.push(format!("generated a password in Secret {name:?}"));
            } else if changed {
                changes.push(format!("took the password edited in Secret {name:?}"));
            }
            if ensure_scram(&client, &name, &password, changed).await? {
                changes.push("set the SCRAM-SHA-512 credential".into());
            }
            if given.as_deref() != Some(digest.as_str()) {
                secrets
                    .patch(&name, &params, &Patch::Apply(&secret(Some(&digest))))
                    .await?;
            }
        }
        UserAuthenticationType::Tls => {
            let renew_before = crate::pki::parse_duration(
                "renewBefore",
                &cluster.spec.certificates().renew_before,
            )
            .unwrap_or(Duration::from_secs(720 * 3600));
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            let clients_ca = crate::certs::load_clients_ca(&ctx.client, cluster).await?;
            let current = existing
                .as_ref()
                .and_then(|s| Some((secret_text(s, "user.crt")?, secret_text(s, "user.key")?)));
            let due = current.as_ref().is_none_or(|(crt, _)| {
                certificate_due(crt, clients_ca.certificate(), now, renew_before)
            });
            let (chain, key) = match current.filter(|_| !due) {
                Some(c) => c,
                None => {
                    let issued = issue_user_certificate(&clients_ca, cluster, &name)?;
                    changes.push(format!("issued a client certificate in Secret {name:?}"));
                    (issued.chain_pem, issued.key_pem)
                }
            };
            let listener =
                listener_for(cluster, ListenerAuthentication::Tls).map(|l| ClientListener {
                    bootstrap: listener_bootstrap(cluster, &l),
                    tls: true,
                });
            let data = tls_secret_data(&chain, &key, listener.as_ref(), ca.as_deref());
            let secret = desired_secret(user, &cluster.name_any(), data);
            secrets
                .patch(&name, &params, &Patch::Apply(&secret))
                .await?;
            // A user that moved from SCRAM to TLS keeps no password on the brokers.
            if remove_scram(&client, &name).await? {
                changes.push("removed the SCRAM credential".into());
            }
        }
    }

    let principal = principal(&name);
    if cluster.spec.authorization.is_none() {
        let not_ready = (!desired.is_empty()).then(|| {
            (
                "AuthorizationDisabled",
                format!(
                    "FjordCluster {:?} has no spec.authorization: its brokers keep no ACLs",
                    cluster.name_any()
                ),
            )
        });
        return Ok(Synced {
            acls: 0,
            changes,
            not_ready,
        });
    }
    let diff = apply_acls(&client, &principal, desired).await?;
    if !diff.create.is_empty() {
        changes.push(format!("created {} ACLs", diff.create.len()));
    }
    if !diff.delete.is_empty() {
        changes.push(format!(
            "deleted {} ACLs not in the spec",
            diff.delete.len()
        ));
    }
    Ok(Synced {
        acls: desired.len(),
        changes,
        not_ready: None,
    })
}

async fn cleanup_user(user: &User, ctx: &Context) -> Result<Action> {
    let name = user.name_any();
    if paused(user) {
        tracing::info!(user = %name, "resource deleted while paused; credentials and ACLs kept");
        return Ok(Action::await_change());
    }
    let ns = user.namespace().unwrap_or_default();
    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let mut removed = Vec::new();
    if let Some(cluster) = clusters.get_opt(&user.spec.cluster_ref).await? {
        let bootstrap = BrokerEndpoint::of(&cluster);
        let done = async {
            let client = ctx.broker(&bootstrap).await?;
            removed = remove_user(&client, &name, cluster.spec.authorization.is_some()).await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = done {
            ctx.forget_broker(&bootstrap).await;
            ctx.event(
                user,
                EventType::Warning,
                "BrokerError",
                format!("removing the user: {e}"),
            )
            .await;
            return Err(e);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = user.meta().uid.clone().unwrap_or_default();
    if let Some(secret) = secrets.get_opt(&name).await? {
        if owned_by(&secret, &uid) {
            match secrets.delete(&name, &DeleteParams::default()).await {
                Ok(_) => removed.push(format!("deleted Secret {name:?}")),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    ctx.event(
        user,
        EventType::Normal,
        "Deleted",
        if removed.is_empty() {
            "nothing left to remove".into()
        } else {
            removed.join("; ")
        },
    )
    .await;
    Ok(Action::await_change())
}

fn error_policy(user: Arc<User>, error: &Error, uctx: Arc<UserContext>) -> Action {
    tracing::warn!(user = %user.name_any(), %error, "reconcile failed");
    uctx.ctx
        .metrics
        .errors
        .with_label_values(&[KIND, error.kind()])
        .inc();
    Action::requeue(uctx.ctx.backoff(&*user))
}

/// Runs the User controller until the stream ends.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, resync: Duration) {
    let api = crate::api::<User>(&ctx.client, namespace);
    let uctx = Arc::new(UserContext { ctx, resync });
    crate::controller(api)
        .shutdown_on_signal()
        .run(reconcile, error_policy, uctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = KIND, error = %e, "controller");
            }
        })
        .await;
}

pub use crate::user_secret::*;

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
