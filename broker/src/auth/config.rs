//! SASL settings of the broker (Kafka's names), and the SCRAM credentials created at
//! start so that the first user can log in (Kafka's `kafka-storage format --add-scram`).

use std::fmt;

use super::sasl::{Mechanism, SaslSettings};
use super::scram::{ScramMechanism, MIN_ITERATIONS};

#[derive(Debug, Clone, clap::Args)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms` of SASL_PLAINTEXT and SASL_SSL listeners: PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512. PLAIN sends the password itself: enable it on
    /// SASL_SSL listeners only.
    #[arg(
        long,
        env = "FJORD_SASL_ENABLED_MECHANISMS",
        value_delimiter = ',',
        default_value = "SCRAM-SHA-256,SCRAM-SHA-512",
        value_parser = Mechanism::parse
    )]
    pub sasl_enabled_mechanisms: Vec<Mechanism>,

    /// `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long; the
    /// client must re-authenticate before, or its connection is closed on the next
    /// request. 0: sessions never expire.
    #[arg(long, env = "FJORD_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: i64,

    /// SCRAM credentials to create at start when the user has none for that mechanism,
    /// e.g. `SCRAM-SHA-512=[name=admin,password=admin-secret]` (Kafka's
    /// `kafka-storage format --add-scram`); several separated by spaces or `;`. Values
    /// may be double-quoted. Prefer the environment variable: flags show in `ps`.
    #[arg(
        long,
        env = "FJORD_SCRAM_BOOTSTRAP",
        hide_env_values = true,
        value_parser = parse_scram_bootstrap
    )]
    pub scram_bootstrap: Option<ScramBootstrap>,
}

impl SaslConfig {
    pub fn settings(&self) -> SaslSettings {
        SaslSettings::new(
            self.sasl_enabled_mechanisms.clone(),
            self.connections_max_reauth_ms,
        )
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.sasl_enabled_mechanisms.is_empty() {
            return Err("--sasl-enabled-mechanisms must name at least one mechanism".into());
        }
        if self.connections_max_reauth_ms < 0 {
            return Err(format!(
                "--connections-max-reauth-ms {} must be 0 (off) or positive",
                self.connections_max_reauth_ms
            ));
        }
        Ok(())
    }
}

/// One credential to create at start.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapCredential {
    pub mechanism: ScramMechanism,
    pub user: String,
    pub password: String,
    pub iterations: i32,
}

/// The password stays out of logs and `--help`.
impl fmt::Debug for BootstrapCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapCredential")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramBootstrap(pub Vec<BootstrapCredential>);

/// Parse `MECH=[name=...,password=...(,iterations=N)]`, several separated by spaces
/// or `;`.
pub fn parse_scram_bootstrap(s: &str) -> Result<ScramBootstrap, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
    while !rest.is_empty() {
        let (mech, after) = rest
            .split_once("=[")
            .ok_or_else(|| format!("expected MECHANISM=[...] at {:?}", head(rest)))?;
        let mechanism = ScramMechanism::from_name(mech.trim())
            .ok_or_else(|| format!("{mech:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"))?;
        let (fields, after) = parse_fields(after)?;
        let mut user = None;
        let mut password = None;
        let mut iterations = MIN_ITERATIONS;
        for (key, value) in fields {
            match key.as_str() {
                "name" => user = Some(value),
                "password" => password = Some(value),
                "iterations" => {
                    iterations = value
                        .parse()
                        .map_err(|_| format!("iterations {value:?} is not a number"))?
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?} (name, password, iterations)"
                    ))
                }
            }
        }
        let user = user
            .filter(|u| !u.is_empty())
            .ok_or("a credential needs name=")?;
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("credential of {user:?} needs password="))?;
        out.push(BootstrapCredential {
            mechanism,
            user,
            password,
            iterations,
        });
        rest = after.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
    }
    if out.is_empty() {
        return Err("no credential given".into());
    }
    Ok(ScramBootstrap(out))
}

fn head(s: &str) -> &str {
    let end = s.char_indices().nth(20).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

type Fields = Vec<(String, String)>;

/// `key=value,...]`: the fields and what follows the `]`. A value is bare (up to `,` or
/// `]`) or double-quoted with `\"` and `\\` escapes.
fn parse_fields(mut s: &str) -> Result<(Fields, &str), String> {
    let mut fields = Vec::new();
    loop {
        let (key, after) = s
            .split_once('=')
            .ok_or_else(|| format!("expected key=value at {:?}", head(s)))?;
        let key = key.trim().to_string();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = if after.starts_with('"') {
            chars.next();
            let mut closed = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => break,
                    },
                    '"' => {
                        closed = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            closed.ok_or_else(|| format!("unterminated quoted value of {key:?}"))?
        } else {
            let end = after
                .find([',', ']'])
                .ok_or_else(|| format!("value of {key:?} is not closed by ]"))?;
            value.push_str(&after[..end]);
            end
        };
        fields.push((key, value));
        let after = &after[end..];
        match after.chars().next() {
            Some(',') => s = &after[1..],
            Some(']') => return Ok((fields, &after[1..])),
            _ => {
                return Err(format!(
                    "expected , or ] after a value at {:?}",
                    head(after)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_credentials_parse_like_kafkas_add_scram() {
        let b = parse_scram_bootstrap(
            r#"SCRAM-SHA-512=[name=admin,password=admin-secret]; SCRAM-SHA-256=[name="a b",password="p,]\"q",iterations=8192]"#,
        )
        .unwrap();
        assert_eq!(
            b.0,
            vec![
                BootstrapCredential {
                    mechanism: ScramMechanism::Sha512,
                    user: "admin".into(),
                    password: "admin-secret".into(),
                    iterations: 4096,
                },
                BootstrapCredential {
                    mechanism: ScramMechanism::Sha256,
                    user: "a b".into(),
                    password: "p,]\"q".into(),
                    iterations: 8192,
                },
            ]
        );
        assert!(!format!("{b:?}").contains("admin-secret"));
        for bad in [
            "",
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-512=[name=a]",
            "SCRAM-SHA-512=[password=b]",
            "SCRAM-SHA-512=[name=a,password=b",
            "SCRAM-SHA-512=[name=a,password=\"b]",
            "SCRAM-SHA-512=[name=a,password=b,salt=c]",
            "SCRAM-SHA-512=[name=a,password=b,iterations=x]",
            "SCRAM-SHA-512=[name=a,password=b]x",
            "name=a,password=b",
        ] {
            assert!(parse_scram_bootstrap(bad).is_err(), "{bad}");
        }
    }
}
