//! A certificate authority: made by the operator or supplied by the user, renewed with a
//! cross-signed successor, and the leaf certificates it issues.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::inspect::{parse_certificates, CertInfo};
use super::{PkiError, Result};

/// Certificates start this long before they are made, so a peer whose clock runs a
/// little behind the operator's does not find them not yet valid.
pub(crate) const BACKDATE_SECS: i64 = 60;

/// A leaf certificate and its key, PEM. `chain_pem` is the leaf followed by what a
/// peer needs to reach a CA it trusts (during a CA renewal: the new CA signed by the
/// old one); `key_pem` is PKCS#8.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// What a leaf certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafSpec {
    pub common_name: String,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub server_auth: bool,
}

/// A CA that can sign.
pub struct Ca {
    /// The generation of a CA the operator made (1, 2, ...); 0 for a user's.
    pub generation: u32,
    cert: CertInfo,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Appended to every leaf chain: the cross-signed certificate of this CA during a
    /// renewal's overlap.
    chain_tail: Vec<CertInfo>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("generation", &self.generation)
            .field("common_name", &self.cert.common_name)
            .field("not_after", &self.cert.not_after)
            .finish_non_exhaustive()
    }
}

pub(crate) fn datetime(unix_secs: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .map_err(|e| PkiError::Invalid(format!("time {unix_secs}: {e}")))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn ca_params(common_name: &str, not_before: i64, not_after: i64) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = datetime(not_before)?;
    params.not_after = datetime(not_after)?;
    Ok(params)
}

fn one(pem: &str) -> Result<CertInfo> {
    parse_certificates(pem.as_bytes())
        .map_err(PkiError::Invalid)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::Invalid("no certificate".into()))
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid from now for `validity`.
    pub fn create(common_name: &str, generation: u32, now: i64, validity: Duration) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let params = ca_params(common_name, now - BACKDATE_SECS, now + secs(validity))?;
        let cert = one(&params.self_signed(&key)?.pem())?;
        Ok(Ca {
            generation,
            cert,
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            chain_tail: Vec::new(),
        })
    }

    /// A CA from its certificate and key (PEM), checked: a CA certificate, the key
    /// belongs to it, and it is valid at `now`.
    pub fn load(cert_pem: &[u8], key_pem: &[u8], generation: u32, now: i64) -> Result<Ca, String> {
        let certs = parse_certificates(cert_pem)?;
        let cert = certs[0].clone();
        if !cert.is_ca {
            return Err("the certificate is not a CA (basicConstraints cA)".into());
        }
        let key_pem = std::str::from_utf8(key_pem).map_err(|_| "the key is not PEM text")?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("the key: {e}"))?;
        if !cert.key_matches(key_pem) {
            return Err("the key does not belong to the certificate".into());
        }
        if now >= cert.not_after {
            return Err("the CA certificate has expired".into());
        }
        let issuer = Issuer::from_ca_cert_der(&cert.der.clone().into(), key)
            .map_err(|e| format!("the CA certificate: {e}"))?;
        Ok(Ca {
            generation,
            cert,
            key_pem: key_pem.to_string(),
            issuer,
            chain_tail: Vec::new(),
        })
    }

    /// The successor of this CA: a new CA named `common_name` (generation + 1), and the
    /// same CA (name and key) signed by this one, valid until this one ends — what leaf
    /// chains carry so that clients trusting only this CA still verify them.
    pub fn renew(&self, common_name: &str, now: i64, validity: Duration) -> Result<(Ca, CertInfo)> {
        let next = Ca::create(common_name, self.generation + 1, now, validity)?;
        let not_after = next.cert.not_after.min(self.cert.not_after);
        let params = ca_params(common_name, now - BACKDATE_SECS, not_after)?;
        let cross = one(&params.signed_by(next.issuer.key(), &self.issuer)?.pem())?;
        Ok((next, cross))
    }

    /// The CA with `tail` appended to the chains of the leaves it issues.
    pub fn with_chain_tail(mut self, tail: Vec<CertInfo>) -> Ca {
        self.chain_tail = tail;
        self
    }

    /// This CA's own certificate.
    pub fn certificate(&self) -> &CertInfo {
        &self.cert
    }

    /// This CA's key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// What follows a leaf in the chains of this CA.
    pub fn chain_tail(&self) -> &[CertInfo] {
        &self.chain_tail
    }

    /// A leaf certificate with a fresh key, valid from now for `validity`.
    pub(crate) fn issue(&self, leaf: &LeafSpec, now: i64, validity: Duration) -> Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, leaf.common_name.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = leaf
            .dns_names
            .iter()
            .map(|d| Ok(SanType::DnsName(d.clone().try_into()?)))
            .chain(
                leaf.uris
                    .iter()
                    .map(|u| Ok(SanType::URI(u.clone().try_into()?))),
            )
            .collect::<Result<_, rcgen::Error>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = if leaf.server_auth {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.not_before = datetime(now - BACKDATE_SECS)?;
        params.not_after = datetime(now + secs(validity))?;
        let mut chain_pem = params.signed_by(&key, &self.issuer)?.pem();
        for c in &self.chain_tail {
            chain_pem.push_str(&c.pem());
        }
        Ok(Issued {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

/// The certificate of User `user` (subject `CN=<user>`, clientAuth), signed by the
/// clients CA, valid from `now` for `validity`.
pub fn issue_user_certificate(
    clients_ca: &Ca,
    user: &str,
    now: k8s_openapi::jiff::Timestamp,
    validity: Duration,
) -> Result<Issued> {
    let leaf = LeafSpec {
        common_name: user.to_string(),
        dns_names: Vec::new(),
        uris: Vec::new(),
        server_auth: false,
    };
    clients_ca.issue(&leaf, now.as_second(), validity)
}
