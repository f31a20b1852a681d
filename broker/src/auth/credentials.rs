//! The pure decisions of DescribeUserScramCredentials and AlterUserScramCredentials
//! (KIP-554): which users the request names, Kafka's per-user errors, and the metadata
//! record each valid alteration becomes.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::scram::{CredentialError, ScramCredential, ScramMechanism};
use crate::metadata::admin::AdminError;
use crate::metadata::image::{MetadataImage, MetadataRecord};

fn error(code: ResponseError, message: impl Into<String>) -> AdminError {
    AdminError {
        code,
        message: message.into(),
    }
}

/// One user's alteration, validated against the request alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alteration {
    Delete {
        user: String,
        mechanism: ScramMechanism,
    },
    Upsert {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
}

/// An upsertion as the request carries it.
#[derive(Debug, Clone)]
pub struct Upsertion<'a> {
    pub user: &'a str,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: &'a [u8],
    pub salted_password: &'a [u8],
}

fn mechanism_of(t: i8) -> Result<ScramMechanism, AdminError> {
    ScramMechanism::from_kafka_type(t).ok_or_else(|| {
        error(
            ResponseError::UnsupportedSaslMechanism,
            format!("Unknown SCRAM mechanism {t}"),
        )
    })
}

fn check_user(user: &str) -> Result<(), AdminError> {
    if user.is_empty() {
        return Err(error(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    Ok(())
}

fn upsertion(u: &Upsertion<'_>) -> Result<Alteration, AdminError> {
    check_user(u.user)?;
    let mechanism = mechanism_of(u.mechanism)?;
    let unacceptable =
        |e: CredentialError| error(ResponseError::UnacceptableCredential, e.to_string());
    if u.salted_password.len() != mechanism.hash_len() {
        return Err(unacceptable(CredentialError::KeyLength {
            what: "salted password",
            len: u.salted_password.len(),
            mechanism,
            expected: mechanism.hash_len(),
        }));
    }
    let credential = ScramCredential::from_salted_password(
        mechanism,
        u.salted_password,
        u.salt.to_vec(),
        u.iterations,
    );
    credential.check(mechanism).map_err(unacceptable)?;
    Ok(Alteration::Upsert {
        user: u.user.to_string(),
        mechanism,
        credential,
    })
}

/// Validate an AlterUserScramCredentials request: one result per user named, in
/// the order first named. A user named more than once (in deletions and upsertions
/// together) is refused whole with DUPLICATE_RESOURCE, as Kafka does.
pub fn validate_alterations(
    deletions: &[(&str, i8)],
    upsertions: &[Upsertion<'_>],
) -> Vec<(String, Result<Alteration, AdminError>)> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let names = deletions
        .iter()
        .map(|(u, _)| *u)
        .chain(upsertions.iter().map(|u| u.user));
    let mut order = Vec::new();
    for name in names {
        let n = count.entry(name).or_default();
        if *n == 0 {
            order.push(name);
        }
        *n += 1;
    }
    order
        .into_iter()
        .map(|user| {
            let result = if count[user] > 1 {
                Err(error(
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                ))
            } else if let Some((_, m)) = deletions.iter().find(|(u, _)| *u == user) {
                check_user(user).and_then(|()| {
                    Ok(Alteration::Delete {
                        user: user.to_string(),
                        mechanism: mechanism_of(*m)?,
                    })
                })
            } else {
                let u = upsertions.iter().find(|u| u.user == user).expect("named");
                upsertion(u)
            };
            (user.to_string(), result)
        })
        .collect()
}

/// The record of one valid alteration, against the current image: deleting a
/// credential that does not exist is RESOURCE_NOT_FOUND.
pub fn plan_alteration(
    image: &MetadataImage,
    alteration: &Alteration,
) -> Result<MetadataRecord, AdminError> {
    match alteration {
        Alteration::Delete { user, mechanism } => {
            if image.scram_credential(user, *mechanism).is_none() {
                return Err(error(
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist",
                ));
            }
            Ok(MetadataRecord::ScramCredentialRemoved {
                user: user.clone(),
                mechanism: *mechanism,
            })
        }
        Alteration::Upsert {
            user,
            mechanism,
            credential,
        } => Ok(MetadataRecord::ScramCredentialSet {
            user: user.clone(),
            mechanism: *mechanism,
            credential: credential.clone(),
        }),
    }
}

/// What Describe shows of a credential: its mechanism and iteration count.
pub type CredentialInfo = (ScramMechanism, i32);

/// DescribeUserScramCredentials: each user's (mechanism, iterations), or Kafka's
/// error. `users` None or empty describes every user with a credential.
pub fn describe(
    image: &MetadataImage,
    users: Option<&[&str]>,
) -> Vec<(String, Result<Vec<CredentialInfo>, AdminError>)> {
    fn infos(creds: &BTreeMap<ScramMechanism, ScramCredential>) -> Vec<CredentialInfo> {
        creds.iter().map(|(m, c)| (*m, c.iterations)).collect()
    }
    // Kafka describes every user for a null list and for an empty one.
    let Some(users) = users.filter(|u| !u.is_empty()) else {
        return image
            .scram_users()
            .map(|(u, creds)| (u.to_string(), Ok(infos(creds))))
            .collect();
    };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for u in users {
        *seen.entry(u).or_default() += 1;
    }
    let mut out = Vec::new();
    for &user in users {
        if out.iter().any(|(u, _): &(String, _)| u == user) {
            continue;
        }
        let result = if seen[user] > 1 {
            Err(error(
                ResponseError::DuplicateResource,
                "Cannot describe SCRAM credentials for the same user twice in a single request",
            ))
        } else {
            image.scram_credentials(user).map(infos).ok_or_else(|| {
                error(
                    ResponseError::ResourceNotFound,
                    "Attempt to describe a user credential that does not exist",
                )
            })
        };
        out.push((user.to_string(), result));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: i8 = 1;
    const SHA512: i8 = 2;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> Upsertion<'_> {
        const SALTED: [u8; 64] = [9; 64];
        let len = ScramMechanism::from_kafka_type(mechanism).map_or(32, |m| m.hash_len());
        Upsertion {
            user,
            mechanism,
            iterations,
            salt: b"salt",
            salted_password: &SALTED[..len],
        }
    }

    fn codes(results: &[(String, Result<Alteration, AdminError>)]) -> Vec<(String, i16)> {
        results
            .iter()
            .map(|(u, r)| (u.clone(), r.as_ref().err().map_or(0, |e| e.code.code())))
            .collect()
    }

    #[test]
    fn alterations_get_kafkas_per_user_errors() {
        let results = validate_alterations(
            &[("dup", SHA256), ("gone", SHA512), ("", SHA256)],
            &[
                upsert("dup", SHA512, 4096),
                upsert("alice", SHA512, 4096),
                upsert("weak", SHA256, 4095),
                upsert("strong", SHA256, 16385),
                upsert("odd", 3, 4096),
                upsert("bob", SHA256, 16384),
            ],
        );
        let c = |u: &str, e: ResponseError| (u.to_string(), e.code());
        assert_eq!(
            codes(&results),
            vec![
                c("dup", ResponseError::DuplicateResource),
                ("gone".into(), 0),
                c("", ResponseError::UnacceptableCredential),
                ("alice".into(), 0),
                c("weak", ResponseError::UnacceptableCredential),
                c("strong", ResponseError::UnacceptableCredential),
                c("odd", ResponseError::UnsupportedSaslMechanism),
                ("bob".into(), 0),
            ]
        );
        let weak = &results[4].1.as_ref().unwrap_err().message;
        assert!(weak.starts_with("Too few iterations"), "{weak}");
        // A salted password of the wrong size is not a credential.
        let mut short = upsert("carol", SHA512, 4096);
        short.salted_password = &[1; 32];
        let r = validate_alterations(&[], &[short]);
        assert_eq!(
            r[0].1.as_ref().unwrap_err().code,
            ResponseError::UnacceptableCredential
        );
    }

    #[test]
    fn deletions_need_an_existing_credential_and_upserts_replace() {
        let mut image = MetadataImage::default();
        let [(_, up)] = validate_alterations(&[], &[upsert("alice", SHA512, 4096)])
            .try_into()
            .unwrap();
        let record = plan_alteration(&image, &up.unwrap()).unwrap();
        image.apply(&record).unwrap();
        let m = ScramMechanism::Sha512;
        let stored = image.scram_credential("alice", m).unwrap();
        // What the client derived from its password is what a login checks against.
        assert_eq!(
            stored,
            &ScramCredential::from_salted_password(m, &[9; 64], b"salt".to_vec(), 4096)
        );
        let del = |mech| Alteration::Delete {
            user: "alice".into(),
            mechanism: mech,
        };
        let missing = plan_alteration(&image, &del(ScramMechanism::Sha256)).unwrap_err();
        assert_eq!(missing.code, ResponseError::ResourceNotFound);
        image
            .apply(&plan_alteration(&image, &del(m)).unwrap())
            .unwrap();
        assert!(image.scram_credential("alice", m).is_none());
    }

    #[test]
    fn describe_lists_mechanisms_and_iterations_per_user() {
        let mut image = MetadataImage::default();
        for (user, mech, iterations) in [
            ("alice", SHA512, 8192),
            ("alice", SHA256, 4096),
            ("bob", SHA256, 4096),
        ] {
            let [(_, a)] = validate_alterations(&[], &[upsert(user, mech, iterations)])
                .try_into()
                .unwrap();
            image
                .apply(&plan_alteration(&image, &a.unwrap()).unwrap())
                .unwrap();
        }
        let all = describe(&image, None);
        assert_eq!(all.len(), 2);
        assert_eq!(describe(&image, Some(&[])), all);
        assert_eq!(
            all[0],
            (
                "alice".to_string(),
                Ok(vec![
                    (ScramMechanism::Sha256, 4096),
                    (ScramMechanism::Sha512, 8192)
                ])
            )
        );
        let some = describe(&image, Some(&["bob", "nobody", "alice", "alice"]));
        let codes: Vec<_> = some
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().err().map(|e| e.code)))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("bob", None),
                ("nobody", Some(ResponseError::ResourceNotFound)),
                ("alice", Some(ResponseError::DuplicateResource)),
            ]
        );
    }
}
