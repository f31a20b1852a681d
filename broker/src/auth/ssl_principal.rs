//! The principal of a TLS client certificate, as Kafka's default
//! `KafkaPrincipalBuilder` makes it: the subject's distinguished name in RFC 2253 form
//! (`CN=client,OU=eng,O=acme`, most specific first, as Java's `X500Principal.getName()`),
//! passed through `ssl.principal.mapping.rules`, as `User:<name>`.

use regex::Regex;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Why a client certificate yields no principal; the handshake is then refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SslPrincipalError {
    #[error("ssl.principal.mapping.rules: {0}")]
    BadRules(String),
    #[error("client certificate: {0}")]
    BadCertificate(String),
    #[error("no rule of ssl.principal.mapping.rules matches the subject {0:?}")]
    NoMatchingRule(String),
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// `DEFAULT`: the distinguished name as it is.
    Default,
    /// `RULE:pattern/replacement/[LU]`: when the whole name matches `pattern`, the name
    /// becomes `replacement` (with `$1` groups), then lower- or upper-cased.
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Kafka's `SslPrincipalMapper`: the first rule that matches decides.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

/// The rules string may be at most this long; it comes from the operator, but a bound
/// keeps a mistake (a file pasted in) from costing a regex compile of megabytes.
const MAX_RULES_BYTES: usize = 64 * 1024;

impl SslPrincipalMapper {
    /// Parses Kafka's rule list: `RULE:...` and `DEFAULT` entries separated by commas
    /// (a pattern may itself contain commas, and `\/` stands for `/`).
    pub fn parse(rules: &str) -> Result<SslPrincipalMapper, SslPrincipalError> {
        if rules.len() > MAX_RULES_BYTES {
            return Err(SslPrincipalError::BadRules(format!(
                "{} bytes exceed the limit of {MAX_RULES_BYTES}",
                rules.len()
            )));
        }
        let mut out = Vec::new();
        let mut rest = rules;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
                continue;
            }
            let Some(r) = rest.strip_prefix("RULE:") else {
                return Err(SslPrincipalError::BadRules(format!(
                    "expected RULE:pattern/replacement/[LU] or DEFAULT at {:?}",
                    rest.chars().take(40).collect::<String>()
                )));
            };
            let (pattern, r) = until_slash(r)
                .ok_or_else(|| SslPrincipalError::BadRules(format!("rule {rest:?}: no '/'")))?;
            let (replacement, r) = until_slash(r).ok_or_else(|| {
                SslPrincipalError::BadRules(format!("rule {rest:?}: no closing '/'"))
            })?;
            let (case, r) = match r.chars().next() {
                Some('L') => (Case::Lower, &r[1..]),
                Some('U') => (Case::Upper, &r[1..]),
                _ => (Case::Keep, r),
            };
            let after = r.trim_start();
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(SslPrincipalError::BadRules(format!(
                    "rule {rest:?}: unexpected {:?} after the flags",
                    after.chars().take(20).collect::<String>()
                )));
            }
            // Java's Matcher.matches(): the pattern must match the whole name.
            let pattern = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| SslPrincipalError::BadRules(format!("pattern {pattern:?}: {e}")))?;
            out.push(Rule::Replace {
                pattern,
                replacement,
                case,
            });
            rest = after;
        }
        if out.is_empty() {
            return Err(SslPrincipalError::BadRules(
                "no rule; use DEFAULT to keep the subject as it is".into(),
            ));
        }
        Ok(SslPrincipalMapper { rules: out })
    }

    /// The principal name for a subject distinguished name.
    pub fn map(&self, dn: &str) -> Result<String, SslPrincipalError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if !pattern.is_match(dn) {
                        continue;
                    }
                    let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    return Ok(match case {
                        Case::Keep => name,
                        Case::Lower => name.to_lowercase(),
                        Case::Upper => name.to_uppercase(),
                    });
                }
            }
        }
        Err(SslPrincipalError::NoMatchingRule(dn.to_string()))
    }
}

/// Splits at the first unescaped `/`, turning `\/` into `/`.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The subject of a DER certificate in RFC 2253 form.
pub fn subject_rfc2253(cert_der: &[u8]) -> Result<String, SslPrincipalError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| SslPrincipalError::BadCertificate(e.to_string()))?;
    rfc2253(cert.subject())
}

/// RFC 2253: relative names last-to-first, attributes of one name joined by `+`, the
/// keywords RFC 2253 defines and dotted OIDs with `#`-hex DER values for the rest.
fn rfc2253(name: &X509Name<'_>) -> Result<String, SslPrincipalError> {
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let value = attr.attr_value();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.6" => Some("C"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let text = match value.tag() {
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::T61String => {
                    std::str::from_utf8(value.data).ok().map(str::to_string)
                }
                Tag::BmpString => {
                    let units: Vec<u16> = value
                        .data
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                _ => None,
            };
            attrs.push(match (keyword, text) {
                (Some(k), Some(t)) => format!("{k}={}", escape(&t)),
                (k, _) => format!("{}=#{}", k.unwrap_or(&oid), der_hex(value)),
            });
        }
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 2253 section 2.4 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value's whole DER encoding (tag, length, contents) as hex.
fn der_hex(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    let data = value.data;
    let mut der = vec![value.tag().0 as u8];
    match data.len() {
        n if n < 0x80 => der.push(n as u8),
        n => {
            let bytes: Vec<u8> = (n as u64)
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            der.push(0x80 | bytes.len() as u8);
            der.extend(bytes);
        }
    }
    der.extend_from_slice(data);
    der.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(subject: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_reads_most_specific_first_as_java_prints_it() {
        use rcgen::DnType::*;
        let der = cert_with(&[
            (CountryName, "NO"),
            (OrganizationName, "Acme, Inc"),
            (OrganizationalUnitName, "eng"),
            (CommonName, "client-1"),
        ]);
        assert_eq!(
            subject_rfc2253(&der).unwrap(),
            "CN=client-1,OU=eng,O=Acme\\, Inc,C=NO"
        );
        assert!(subject_rfc2253(b"not a certificate").is_err());
    }

    #[test]
    fn rfc2253_escapes_specials_and_leading_or_trailing_blanks() {
        assert_eq!(escape("a+b;c"), "a\\+b\\;c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn mapping_rules_follow_kafkas_syntax_and_order() {
        let m = SslPrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=([a-zA-Z.]+),O=(.*)$/$1@$2/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.map("CN=kafka-app,OU=ServiceUsers,O=Acme").unwrap(),
            "kafka-app"
        );
        assert_eq!(m.map("CN=Duke.Doe,O=ACME").unwrap(), "duke.doe@acme");
        assert_eq!(m.map("CN=x-1,O=y").unwrap(), "CN=x-1,O=y");
        // A pattern must match the whole name (Java's Matcher.matches()).
        let m = SslPrincipalMapper::parse("RULE:CN=([^,]*)/$1/U").unwrap();
        assert_eq!(m.map("CN=abc").unwrap(), "ABC");
        assert_eq!(
            m.map("CN=abc,O=x").unwrap_err(),
            SslPrincipalError::NoMatchingRule("CN=abc,O=x".into())
        );
        // An escaped slash is part of the pattern.
        let m = SslPrincipalMapper::parse("RULE:^CN=(.*)\\/x$/$1/").unwrap();
        assert_eq!(m.map("CN=a/x").unwrap(), "a");
        for bad in [
            "",
            "RULE:abc",
            "RULE:a/b",
            "RULE:(/x/",
            "NOPE",
            "RULE:a/b/Q",
        ] {
            assert!(SslPrincipalMapper::parse(bad).is_err(), "{bad:?}");
        }
        let big = "DEFAULT,".repeat(MAX_RULES_BYTES / 8 + 1);
        assert!(SslPrincipalMapper::parse(&big)
            .unwrap_err()
            .to_string()
            .contains("exceed the limit"));
    }
}
