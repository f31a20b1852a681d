//! Certificates read back from Secrets. A Secret may hold anything (an old operator's
//! output, a hand edit, garbage): parsing never panics, and what does not parse is
//! reported, so the planner replaces it.

use std::collections::BTreeSet;

use rcgen::{KeyPair, PublicKeyData};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// At most this many certificates in one PEM value (a chain or a bundle).
const MAX_CERTIFICATES: usize = 16;
/// At most this many bytes of PEM in one value.
const MAX_PEM_BYTES: usize = 256 * 1024;

/// What the planner needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Subject and issuer names, DER (compared byte for byte, as path building does).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub common_name: Option<String>,
    pub is_ca: bool,
    /// SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    pub dns_names: BTreeSet<String>,
    pub uris: BTreeSet<String>,
}

impl CertInfo {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        pem_of(&self.der)
    }

    /// Whether `issuer` signed this certificate: names match and the signature
    /// verifies with the issuer's key.
    pub fn signed_by(&self, issuer: &CertInfo) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        let (Ok((_, cert)), Ok((_, ca))) = (
            x509_parser::parse_x509_certificate(&self.der),
            x509_parser::parse_x509_certificate(&issuer.der),
        ) else {
            return false;
        };
        cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Whether `key_pem` is the private key of this certificate.
    pub fn key_matches(&self, key_pem: &str) -> bool {
        KeyPair::from_pem(key_pem).is_ok_and(|k| k.subject_public_key_info() == self.spki)
    }

    /// The certificate's lifetime in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.not_after - self.not_before
    }
}

/// DER as a PEM CERTIFICATE block.
pub(crate) fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Every certificate in `pem`, in order. An error says what is wrong: not PEM, not a
/// certificate, too many, too large, or none at all.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertInfo>, String> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(format!("{} bytes of PEM, more than {MAX_PEM_BYTES}", pem.len()));
    }
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            return Err(format!("a {} block where a CERTIFICATE was expected", block.label));
        }
        if out.len() == MAX_CERTIFICATES {
            return Err(format!("more than {MAX_CERTIFICATES} certificates"));
        }
        out.push(parse_der(&block.contents)?);
    }
    if out.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(out)
}

fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let mut dns_names = BTreeSet::new();
    let mut uris = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    dns_names.insert(d.to_string());
                }
                GeneralName::URI(u) => {
                    uris.insert(u.to_string());
                }
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(CertInfo {
        der: der.to_vec(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        common_name,
        is_ca: cert.is_ca(),
        spki: cert.public_key().raw.to_vec(),
        dns_names,
        uris,
    })
}
