//! The renewal planner: from the time, the CertificatesSpec, the Secrets that exist and
//! the number of brokers, the Secrets to write, the Events to publish and when to look
//! again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::types::CertificatesSpec;

use super::ca::{Ca, LeafSpec, BACKDATE_SECS};
use super::inspect::{parse_certificates, CertInfo};
use super::{
    parse_duration, PkiError, Result, CA_CERT_KEY, CA_CROSS_SIGNED_KEY, CA_GENERATION_ANNOTATION,
    CA_KEY_KEY, CA_PREVIOUS_KEY, OPERATOR_COMMON_NAME, TLS_CERT_KEY, TLS_KEY_KEY, TRUSTSTORE_KEY,
};
use crate::pki::NODE_URI_PREFIX;

/// A renewal asked for by annotation while the CA is younger than this was served by
/// that CA (the operator stopped before it could remove the annotation): renewing again
/// would drop the CA before it from the bundles while clients may still trust only it.
const RENEWAL_REQUEST_SERVED_SECS: i64 = 300;
/// A leaf whose lifetime differs from the spec's validity by more than this was issued
/// under another validity, and is issued again.
const LIFETIME_TOLERANCE_SECS: i64 = 2;

/// The two CAs of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    Cluster,
    Clients,
}

impl CaKind {
    fn label(self) -> &'static str {
        match self {
            CaKind::Cluster => "cluster",
            CaKind::Clients => "clients",
        }
    }

    /// The common name of generation `generation`, e.g. `fjord-cluster-ca demo 2`.
    pub fn common_name(self, cluster: &str, generation: u32) -> String {
        format!("fjord-{}-ca {cluster} {generation}", self.label())
    }
}

/// Names of a cluster's certificate Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    pub cluster_ca: String,
    pub cluster_ca_cert: String,
    pub clients_ca: String,
    pub clients_ca_cert: String,
    pub broker_certs: String,
    pub operator_cert: String,
}

/// The Secret names of FjordCluster `cluster`.
pub fn secret_names(cluster: &str) -> SecretNames {
    SecretNames {
        cluster_ca: format!("{cluster}-cluster-ca"),
        cluster_ca_cert: format!("{cluster}-cluster-ca-cert"),
        clients_ca: format!("{cluster}-clients-ca"),
        clients_ca_cert: format!("{cluster}-clients-ca-cert"),
        broker_certs: format!("{cluster}-broker-certs"),
        operator_cert: format!("{cluster}-operator-cert"),
    }
}

impl SecretNames {
    fn ca(&self, kind: CaKind) -> (&str, &str) {
        match kind {
            CaKind::Cluster => (&self.cluster_ca, &self.cluster_ca_cert),
            CaKind::Clients => (&self.clients_ca, &self.clients_ca_cert),
        }
    }
}

/// A Secret as it exists: its data and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    pub data: BTreeMap<String, Vec<u8>>,
    pub annotations: BTreeMap<String, String>,
}

/// What the planner looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    /// Unix seconds.
    pub now: i64,
    pub spec: &'a CertificatesSpec,
    /// The renewal annotations of the FjordCluster.
    pub renew_cluster_ca: bool,
    pub renew_clients_ca: bool,
    /// Brokers `0..brokers` get a certificate.
    pub brokers: i32,
    /// The Secrets that exist, by name (those of [`secret_names`] and the user's CAs).
    pub secrets: &'a BTreeMap<String, SecretData>,
}

/// A Secret to write (server-side apply: keys left out are removed).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretWrite {
    pub name: String,
    pub data: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWrite")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What happened, for an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A CA the operator made for the first time.
    CaCreated,
    /// A CA renewed (due, or asked for): `CaRenewed`.
    CaRenewed,
    /// A CA Secret that could not be read, replaced by a new CA (Warning).
    CaReplaced,
    /// A renewal's overlap ended: the previous CA left the bundles.
    CaOverlapEnded,
    /// Leaf certificates issued for the first time.
    CertificatesIssued,
    /// Leaf certificates issued again (due, CA changed, unreadable, names changed).
    CertificatesRenewed,
}

impl EventKind {
    /// The Event's reason.
    pub fn reason(self) -> &'static str {
        match self {
            EventKind::CaCreated => "CaCreated",
            EventKind::CaRenewed => "CaRenewed",
            EventKind::CaReplaced => "CaReplaced",
            EventKind::CaOverlapEnded => "CaOverlapEnded",
            EventKind::CertificatesIssued => "CertificatesIssued",
            EventKind::CertificatesRenewed => "CertificatesRenewed",
        }
    }

    /// Whether the Event is a Warning.
    pub fn warning(self) -> bool {
        self == EventKind::CaReplaced
    }
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub message: String,
}

/// A CA as it stands after the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaState {
    /// Generation of a CA the operator made; None for the user's.
    pub generation: Option<u32>,
    /// Unix seconds.
    pub not_after: i64,
    /// The previous CA's end while the renewal overlap lasts.
    pub previous_not_after: Option<i64>,
}

/// The planner's answer.
#[derive(Debug)]
pub struct Plan {
    /// Secrets to write, in order: CAs, trust bundles, then leaf certificates.
    pub writes: Vec<SecretWrite>,
    pub events: Vec<Event>,
    pub cluster_ca: CaState,
    pub clients_ca: CaState,
    /// The clients CA, ready to sign user certificates.
    pub clients: Ca,
    /// When something is due next (Unix seconds): a leaf or CA renewal, or the end of
    /// an overlap.
    pub next_renewal: i64,
}

/// The lifetimes of the spec, checked.
struct Lifetimes {
    validity: Duration,
    renew_before: i64,
    ca_validity: Duration,
    ca_renew_before: i64,
}

fn lifetimes(spec: &CertificatesSpec) -> Result<Lifetimes> {
    let validity = parse_duration("validity", &spec.validity)?;
    let renew_before = parse_duration("renewBefore", &spec.renew_before)?;
    let ca_validity = parse_duration("caValidity", &spec.ca_validity)?;
    let ca_renew_before = parse_duration("caRenewBefore", &spec.ca_renew_before)?;
    if renew_before >= validity {
        return Err(PkiError::Invalid(format!(
            "renewBefore {} must be shorter than validity {}",
            spec.renew_before, spec.validity
        )));
    }
    if ca_renew_before >= ca_validity {
        return Err(PkiError::Invalid(format!(
            "caRenewBefore {} must be shorter than caValidity {}",
            spec.ca_renew_before, spec.ca_validity
        )));
    }
    let s = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
    Ok(Lifetimes {
        validity,
        renew_before: s(renew_before),
        ca_validity,
        ca_renew_before: s(ca_renew_before),
    })
}

/// The plan for the certificates of `o.cluster`.
pub fn plan(o: &Observed<'_>) -> Result<Plan> {
    let life = lifetimes(o.spec)?;
    let names = secret_names(o.cluster);
    let mut out = Out {
        writes: Vec::new(),
        events: Vec::new(),
        next: i64::MAX,
    };
    let (cluster, cluster_bundle, cluster_state) =
        resolve_ca(o, &names, CaKind::Cluster, &life, &mut out)?;
    let (clients, clients_bundle, clients_state) =
        resolve_ca(o, &names, CaKind::Clients, &life, &mut out)?;

    let mut issued = Vec::new();
    let mut renewed = Vec::new();
    let existing = o.secrets.get(&names.broker_certs);
    let mut data = BTreeMap::new();
    for n in 0..o.brokers.max(0) {
        let pod = format!("{}-{n}", o.cluster);
        let leaf = broker_leaf(o, n);
        let (crt, key) = (format!("{pod}.crt"), format!("{pod}.key"));
        let (chain, key_pem) =
            keep_or_issue(o, &cluster, &leaf, &life, existing, (&crt, &key), &mut out)?.note(
                &format!("broker {pod}"),
                &mut issued,
                &mut renewed,
            );
        data.insert(crt, chain);
        data.insert(key, key_pem);
    }
    data.insert(
        TRUSTSTORE_KEY.to_string(),
        format!("{clients_bundle}{cluster_bundle}"),
    );
    out.write(o, &names.broker_certs, data, BTreeMap::new());

    let existing = o.secrets.get(&names.operator_cert);
    let leaf = LeafSpec {
        common_name: OPERATOR_COMMON_NAME.into(),
        dns_names: Vec::new(),
        uris: Vec::new(),
        server_auth: false,
    };
    let (chain, key_pem) = keep_or_issue(
        o,
        &cluster,
        &leaf,
        &life,
        existing,
        (TLS_CERT_KEY, TLS_KEY_KEY),
        &mut out,
    )?
    .note("operator", &mut issued, &mut renewed);
    let data = BTreeMap::from([
        (TLS_CERT_KEY.to_string(), chain),
        (TLS_KEY_KEY.to_string(), key_pem),
        (CA_CERT_KEY.to_string(), cluster_bundle.clone()),
    ]);
    out.write(o, &names.operator_cert, data, BTreeMap::new());

    if !issued.is_empty() {
        out.events.push(Event {
            kind: EventKind::CertificatesIssued,
            message: format!("issued certificates: {}", issued.join(", ")),
        });
    }
    if !renewed.is_empty() {
        out.events.push(Event {
            kind: EventKind::CertificatesRenewed,
            message: format!("renewed certificates: {}", renewed.join(", ")),
        });
    }
    Ok(Plan {
        writes: out.writes,
        events: out.events,
        cluster_ca: cluster_state,
        clients_ca: clients_state,
        clients,
        next_renewal: out.next,
    })
}

struct Out {
    writes: Vec<SecretWrite>,
    events: Vec<Event>,
    next: i64,
}

impl Out {
    fn due(&mut self, at: i64) {
        self.next = self.next.min(at);
    }

    /// Writes the Secret unless it already holds exactly this.
    fn write(
        &mut self,
        o: &Observed<'_>,
        name: &str,
        data: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) {
        let same = o.secrets.get(name).is_some_and(|s| {
            s.data.len() == data.len()
                && data
                    .iter()
                    .all(|(k, v)| s.data.get(k).is_some_and(|e| e == v.as_bytes()))
                && annotations
                    .iter()
                    .all(|(k, v)| s.annotations.get(k) == Some(v))
        });
        if !same {
            self.writes.push(SecretWrite {
                name: name.to_string(),
                data,
                annotations,
            });
        }
    }
}

fn text(secret: Option<&SecretData>, key: &str) -> Option<String> {
    secret
        .and_then(|s| s.data.get(key))
        .and_then(|b| String::from_utf8(b.clone()).ok())
}

fn bundle_of(certs: &[&CertInfo]) -> String {
    certs.iter().map(|c| c.pem()).collect()
}

/// The CA of `kind`: the user's, or the operator's (made, kept, renewed or replaced).
/// Returns it with its chain tail set, its trust bundle, and its state.
fn resolve_ca(
    o: &Observed<'_>,
    names: &SecretNames,
    kind: CaKind,
    life: &Lifetimes,
    out: &mut Out,
) -> Result<(Ca, String, CaState)> {
    let (ca_secret, cert_secret) = names.ca(kind);
    let user = match kind {
        CaKind::Cluster => o.spec.cluster_ca.as_ref(),
        CaKind::Clients => o.spec.clients_ca.as_ref(),
    };
    if let Some(user) = user {
        let secret = &user.secret_name;
        let err = |what: String| PkiError::UserCa {
            secret: secret.clone(),
            what,
        };
        let s = o
            .secrets
            .get(secret)
            .ok_or_else(|| err("not found".into()))?;
        let (Some(crt), Some(key)) = (s.data.get(CA_CERT_KEY), s.data.get(CA_KEY_KEY)) else {
            return Err(err(format!("needs keys {CA_CERT_KEY} and {CA_KEY_KEY}")));
        };
        let ca = Ca::load(crt, key, 0, o.now).map_err(err)?;
        let all = parse_certificates(crt).map_err(err)?;
        let bundle = bundle_of(&all.iter().collect::<Vec<_>>());
        let state = CaState {
            generation: None,
            not_after: ca.certificate().not_after,
            previous_not_after: None,
        };
        let ca = ca.with_chain_tail(all[1..].to_vec());
        out.write(
            o,
            cert_secret,
            BTreeMap::from([(CA_CERT_KEY.to_string(), bundle.clone())]),
            BTreeMap::new(),
        );
        return Ok((ca, bundle, state));
    }

    let label = kind.label();
    let renew_asked = match kind {
        CaKind::Cluster => o.renew_cluster_ca,
        CaKind::Clients => o.renew_clients_ca,
    };
    let existing = o.secrets.get(ca_secret);
    let generation_seen: u32 = existing
        .and_then(|s| s.annotations.get(CA_GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let loaded = existing.map(
        |s| match (s.data.get(CA_CERT_KEY), s.data.get(CA_KEY_KEY)) {
            (Some(crt), Some(key)) => Ca::load(crt, key, generation_seen, i64::MIN),
            _ => Err(format!("needs keys {CA_CERT_KEY} and {CA_KEY_KEY}")),
        },
    );
    let fresh = |generation: u32| {
        Ca::create(
            &kind.common_name(o.cluster, generation),
            generation,
            o.now,
            life.ca_validity,
        )
    };
    // (CA, previous CA and the cross-signed certificate while they overlap)
    let (ca, overlap): (Ca, Option<(CertInfo, CertInfo)>) = match loaded {
        None => {
            let ca = fresh(1)?;
            out.events.push(Event {
                kind: EventKind::CaCreated,
                message: format!("created the {label} CA (generation 1)"),
            });
            (ca, None)
        }
        Some(Err(what)) => {
            let generation = generation_seen + 1;
            out.events.push(Event {
                kind: EventKind::CaReplaced,
                message: format!(
                    "Secret {ca_secret} could not be read ({what}); a new {label} CA \
                     (generation {generation}) replaces it"
                ),
            });
            (fresh(generation)?, None)
        }
        Some(Ok(ca)) => {
            let cert = ca.certificate().clone();
            let overlap = existing.and_then(|s| overlap_of(s, &cert, o.now));
            let young = o.now - (cert.not_before + BACKDATE_SECS) < RENEWAL_REQUEST_SERVED_SECS;
            let asked = renew_asked && !(young && overlap.is_some());
            let due = o.now >= cert.not_after - life.ca_renew_before;
            if !(asked || due) {
                (ca, overlap)
            } else if o.now >= cert.not_after {
                let generation = ca.generation + 1;
                out.events.push(Event {
                    kind: EventKind::CaReplaced,
                    message: format!(
                        "the {label} CA (generation {}) had expired; a new one \
                         (generation {generation}) replaces it without overlap",
                        ca.generation
                    ),
                });
                (fresh(generation)?, None)
            } else {
                let generation = ca.generation + 1;
                let (next, cross) = ca.renew(
                    &kind.common_name(o.cluster, generation),
                    o.now,
                    life.ca_validity,
                )?;
                out.events.push(Event {
                    kind: EventKind::CaRenewed,
                    message: format!(
                        "renewed the {label} CA{}: generation {} to {generation}; until the \
                         old CA ends, trust bundles hold both and chains carry the new CA \
                         signed by the old one",
                        if asked { " as asked by annotation" } else { "" },
                        ca.generation
                    ),
                });
                (next, Some((cert, cross)))
            }
        }
    };
    if overlap.is_none() {
        if let Some(s) = existing {
            if s.data.contains_key(CA_PREVIOUS_KEY) {
                out.events.push(Event {
                    kind: EventKind::CaOverlapEnded,
                    message: format!(
                        "the {label} CA before generation {} left the trust bundles",
                        ca.generation
                    ),
                });
            }
        }
    }
    let cert = ca.certificate().clone();
    out.due(cert.not_after - life.ca_renew_before);
    let mut data = BTreeMap::from([
        (CA_CERT_KEY.to_string(), cert.pem()),
        (CA_KEY_KEY.to_string(), ca.key_pem().to_string()),
    ]);
    let mut bundle = vec![&cert];
    let mut tail = Vec::new();
    if let Some((previous, cross)) = &overlap {
        out.due(previous.not_after);
        data.insert(CA_PREVIOUS_KEY.into(), previous.pem());
        data.insert(CA_CROSS_SIGNED_KEY.into(), cross.pem());
        bundle.push(previous);
        tail.push(cross.clone());
    }
    let bundle = bundle_of(&bundle);
    let annotations = BTreeMap::from([(
        CA_GENERATION_ANNOTATION.to_string(),
        ca.generation.to_string(),
    )]);
    out.write(o, ca_secret, data, annotations);
    out.write(
        o,
        cert_secret,
        BTreeMap::from([(CA_CERT_KEY.to_string(), bundle.clone())]),
        BTreeMap::new(),
    );
    let state = CaState {
        generation: Some(ca.generation),
        not_after: cert.not_after,
        previous_not_after: overlap.as_ref().map(|(p, _)| p.not_after),
    };
    Ok((ca.with_chain_tail(tail), bundle, state))
}

/// The previous CA and the cross-signed certificate kept in a CA Secret, when both
/// read, fit `current` and the previous one has not ended.
fn overlap_of(s: &SecretData, current: &CertInfo, now: i64) -> Option<(CertInfo, CertInfo)> {
    let previous = parse_certificates(s.data.get(CA_PREVIOUS_KEY)?).ok()?;
    let cross = parse_certificates(s.data.get(CA_CROSS_SIGNED_KEY)?).ok()?;
    let (previous, cross) = (previous.into_iter().next()?, cross.into_iter().next()?);
    let fits = cross.subject == current.subject
        && cross.spki == current.spki
        && cross.signed_by(&previous)
        && now < previous.not_after;
    fits.then_some((previous, cross))
}

fn broker_leaf(o: &Observed<'_>, n: i32) -> LeafSpec {
    let (c, ns) = (o.cluster, o.namespace);
    LeafSpec {
        common_name: format!("fjord:broker:{c}-{n}"),
        dns_names: vec![
            format!("{c}-{n}.{c}-brokers.{ns}.svc"),
            format!("{c}-{n}.{c}-brokers.{ns}.svc.cluster.local"),
            format!("{c}-bootstrap"),
            format!("{c}-bootstrap.{ns}"),
            format!("{c}-bootstrap.{ns}.svc"),
            format!("{c}-bootstrap.{ns}.svc.cluster.local"),
            format!("{c}-brokers.{ns}.svc"),
        ],
        uris: vec![format!("{NODE_URI_PREFIX}{n}")],
        server_auth: true,
    }
}

/// A leaf kept, or issued (first time or again) and why.
enum Leaf {
    Kept(String, String),
    Issued(String, String),
    Renewed(String, String, String),
}

impl Leaf {
    fn note(
        self,
        what: &str,
        issued: &mut Vec<String>,
        renewed: &mut Vec<String>,
    ) -> (String, String) {
        match self {
            Leaf::Kept(c, k) => (c, k),
            Leaf::Issued(c, k) => {
                issued.push(what.to_string());
                (c, k)
            }
            Leaf::Renewed(c, k, why) => {
                renewed.push(format!("{what} ({why})"));
                (c, k)
            }
        }
    }
}

/// Why the leaf in `chain`/`key` must be issued again, if it must.
fn renewal_reason(
    o: &Observed<'_>,
    ca: &Ca,
    spec: &LeafSpec,
    life: &Lifetimes,
    leaf: &CertInfo,
    key: &str,
) -> Option<&'static str> {
    if !leaf.signed_by(ca.certificate()) {
        return Some("signed by another CA");
    }
    if !leaf.key_matches(key) {
        return Some("key does not match");
    }
    let names_match = leaf.common_name.as_deref() == Some(spec.common_name.as_str())
        && leaf.dns_names.iter().eq(spec
            .dns_names
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
        && leaf
            .uris
            .iter()
            .eq(spec.uris.iter().collect::<std::collections::BTreeSet<_>>());
    if !names_match {
        return Some("names changed");
    }
    let wanted = i64::try_from(life.validity.as_secs()).unwrap_or(i64::MAX / 4) + BACKDATE_SECS;
    if (leaf.lifetime_secs() - wanted).abs() > LIFETIME_TOLERANCE_SECS {
        return Some("validity changed");
    }
    if o.now >= leaf.not_after - life.renew_before {
        return Some("due");
    }
    None
}

fn keep_or_issue(
    o: &Observed<'_>,
    ca: &Ca,
    spec: &LeafSpec,
    life: &Lifetimes,
    existing: Option<&SecretData>,
    (crt_key, key_key): (&str, &str),
    out: &mut Out,
) -> Result<Leaf> {
    let chain = text(existing, crt_key);
    let key = text(existing, key_key);
    let why = match (&chain, &key) {
        (Some(chain), Some(key)) => match parse_certificates(chain.as_bytes()) {
            Err(_) => Some("unreadable"),
            Ok(certs) => match renewal_reason(o, ca, spec, life, &certs[0], key) {
                Some(why) => Some(why),
                None => {
                    out.due(certs[0].not_after - life.renew_before);
                    // The leaf stays; its chain follows the CA's (a renewal's overlap
                    // starts or ends).
                    let mut wanted = certs[0].pem();
                    for c in ca.chain_tail() {
                        wanted.push_str(&c.pem());
                    }
                    let tail_same = certs[1..]
                        .iter()
                        .map(|c| &c.der)
                        .eq(ca.chain_tail().iter().map(|c| &c.der));
                    let chain = if tail_same { chain.clone() } else { wanted };
                    return Ok(Leaf::Kept(chain, key.clone()));
                }
            },
        },
        _ => None,
    };
    let issued = ca.issue(spec, o.now, life.validity)?;
    out.due(
        o.now + i64::try_from(life.validity.as_secs()).unwrap_or(i64::MAX / 4) - life.renew_before,
    );
    Ok(match why {
        None => Leaf::Issued(issued.chain_pem, issued.key_pem),
        Some(why) => Leaf::Renewed(issued.chain_pem, issued.key_pem, why.to_string()),
    })
}

/// The CA of `kind` as its Secrets hold it now, to sign with outside the planner (User
/// certificates): the user's CA, or the operator's with its overlap chain. None while
/// the operator has not made it yet; an error when it does not read.
pub fn current_ca(o: &Observed<'_>, kind: CaKind) -> Result<Option<Ca>> {
    let names = secret_names(o.cluster);
    let user = match kind {
        CaKind::Cluster => o.spec.cluster_ca.as_ref(),
        CaKind::Clients => o.spec.clients_ca.as_ref(),
    };
    let (secret, generation) = match user {
        Some(u) => (u.secret_name.clone(), None),
        None => (names.ca(kind).0.to_string(), Some(())),
    };
    let err = |what: String| PkiError::UserCa {
        secret: secret.clone(),
        what,
    };
    let Some(s) = o.secrets.get(&secret) else {
        return match user {
            Some(_) => Err(err("not found".into())),
            None => Ok(None),
        };
    };
    let (Some(crt), Some(key)) = (s.data.get(CA_CERT_KEY), s.data.get(CA_KEY_KEY)) else {
        return Err(err(format!("needs keys {CA_CERT_KEY} and {CA_KEY_KEY}")));
    };
    let generation = generation
        .and_then(|()| s.annotations.get(CA_GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let ca = Ca::load(crt, key, generation, o.now).map_err(err)?;
    let tail = if user.is_some() {
        parse_certificates(crt).map_err(err)?.split_off(1)
    } else {
        overlap_of(s, ca.certificate(), o.now)
            .map(|(_, cross)| vec![cross])
            .unwrap_or_default()
    };
    Ok(Some(ca.with_chain_tail(tail)))
}
