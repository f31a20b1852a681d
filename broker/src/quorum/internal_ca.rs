//! A certificate authority made on the spot for the internal plane: what `fjord dev`
//! gives its brokers. Each node certificate names its node by the SAN URI
//! `fjord://node/<id>` and may serve and dial (serverAuth and clientAuth), as
//! `internal_tls` requires. The CA's key lives only in memory: once the node
//! certificates are written, nobody can issue another.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::internal_tls::NODE_URI_PREFIX;

/// A node's certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct NodeCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

pub struct LocalCa {
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

fn named(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl LocalCa {
    /// A fresh self-signed CA called `common_name`.
    pub fn new(common_name: &str) -> Result<LocalCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate_pem = params.self_signed(&key)?.pem();
        Ok(LocalCa {
            certificate_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: every broker's `--internal-ssl-ca`.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A certificate for node `node`, signed by this CA.
    pub fn issue_node(&self, node: i32) -> Result<NodeCertificate, rcgen::Error> {
        self.issue(node, vec![format!("{NODE_URI_PREFIX}{node}")])
    }

    /// A certificate with the given SAN URIs (tests make malformed identities with it).
    pub fn issue(&self, node: i32, uris: Vec<String>) -> Result<NodeCertificate, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named(&format!("fjord-node-{node}"));
        params.subject_alt_names = uris
            .into_iter()
            .map(|u| Ok(SanType::URI(u.try_into()?)))
            .collect::<Result<_, rcgen::Error>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(NodeCertificate {
            certificate_pem: params.signed_by(&key, &self.issuer)?.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
