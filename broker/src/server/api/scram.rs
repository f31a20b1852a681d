//! SASL on the wire: SaslHandshake and SaslAuthenticate answered from a connection's
//! [`SaslConnection`], and Describe/AlterUserScramCredentials (KIP-554) through the
//! controller. The decisions are in `auth::sasl` and `auth::credentials`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;

use super::encode_response;
use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::AclOperation;
use crate::auth::credentials::{self, Upsertion};
use crate::auth::sasl::{Answer, SaslConnection};
use crate::auth::scram;
use crate::server::broker::Broker;

pub fn sasl_handshake(
    conn: &mut SaslConnection,
    req: SaslHandshakeRequest,
    version: i16,
) -> Answer<SaslHandshakeResponse> {
    let answer = conn.handshake(&req.mechanism, version);
    Answer {
        body: SaslHandshakeResponse::default()
            .with_error_code(answer.body.error_code)
            .with_mechanisms(answer.body.mechanisms.into_iter().map(str_bytes).collect()),
        close: answer.close,
    }
}

pub fn sasl_authenticate(
    broker: &Broker,
    conn: &mut SaslConnection,
    req: SaslAuthenticateRequest,
    now_ms: i64,
) -> Answer<SaslAuthenticateResponse> {
    let image = broker.image();
    let answer = conn.authenticate(&req.auth_bytes, &*image, &scram::random_nonce(), now_ms);
    let a = answer.body;
    Answer {
        body: SaslAuthenticateResponse::default()
            .with_error_code(a.error_code)
            .with_error_message(a.error_message.map(str_bytes))
            .with_auth_bytes(Bytes::from(a.auth_bytes))
            .with_session_lifetime_ms(a.session_lifetime_ms),
        close: answer.close,
    }
}

/// SaslHandshake on a listener without SASL: Kafka answers ILLEGAL_SASL_STATE (the
/// connection is already authenticated, as whoever the listener says).
pub fn sasl_handshake_not_enabled() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

pub fn sasl_authenticate_not_enabled() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(str_bytes(
            "SaslAuthenticate request received on a listener without SASL",
        )))
}

pub fn describe_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // Kafka authorizes the whole request: DESCRIBE on the cluster.
    if let Some(e) = super::acls::cluster_denied(broker, ctx, AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message)));
    }
    let image = broker.image();
    let names: Option<Vec<&str>> = req
        .users
        .as_ref()
        .map(|users| users.iter().map(|u| &*u.name).collect());
    let results = credentials::describe(&image, names.as_deref())
        .into_iter()
        .map(|(user, outcome)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            match outcome {
                Ok(infos) => result.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.kafka_type())
                                .with_iterations(iterations)
                        })
                        .collect(),
                ),
                Err(e) => {
                    count_error(broker, ctx.api_key, e.code.code());
                    result
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message)))
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<(&str, i8)> = req
        .deletions
        .iter()
        .map(|d| (&*d.name, d.mechanism))
        .collect();
    let upsertions: Vec<Upsertion<'_>> = req
        .upsertions
        .iter()
        .map(|u| Upsertion {
            user: &u.name,
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: &u.salt,
            salted_password: &u.salted_password,
        })
        .collect();
    // Kafka authorizes the whole request (ALTER on the cluster) and answers each user.
    let denied = super::acls::cluster_denied(broker, ctx, AclOperation::Alter);
    let mut results = Vec::new();
    for (user, alteration) in credentials::validate_alterations(&deletions, &upsertions) {
        let outcome = match (alteration, &denied) {
            (_, Some(e)) => Err(e.clone()),
            (Ok(a), None) => broker
                .change_metadata(true, |image| credentials::plan_alteration(image, &a))
                .await
                .map(|_| ()),
            (Err(e), None) => Err(e),
        };
        let mut result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
        match outcome {
            Ok(()) => tracing::info!(user, principal = %ctx.principal, "altered SCRAM credential"),
            Err(e) => {
                if denied.is_none() {
                    count_error(broker, ctx.api_key, e.code.code());
                }
                result.error_code = e.code.code();
                result.error_message = Some(str_bytes(e.message));
            }
        }
        results.push(result);
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Answer a SaslHandshake or SaslAuthenticate on a SASL listener's connection: the
/// encoded frame, and whether the connection closes once it is sent.
pub fn answer_sasl(
    broker: &Broker,
    conn: &mut SaslConnection,
    ctx: &RequestContext,
    body: Bytes,
    buf: &mut BytesMut,
) -> anyhow::Result<(BytesMut, bool)> {
    let (v, c) = (ctx.version, ctx.correlation_id);
    let now_ms = broker.clock.now_ms();
    Ok(match ctx.api_key {
        ApiKey::SaslHandshake => {
            let a = sasl_handshake(conn, super::decode(body, v)?, v);
            (encode_response(ctx.api_key, v, c, &a.body, buf)?, a.close)
        }
        ApiKey::SaslAuthenticate => {
            let a = sasl_authenticate(broker, conn, super::decode(body, v)?, now_ms);
            (encode_response(ctx.api_key, v, c, &a.body, buf)?, a.close)
        }
        other => anyhow::bail!("{other:?} is not a SASL request"),
    })
}

/// Answer a raw SASL token (after SaslHandshake v0): the size-prefixed answer token,
/// or None when authentication failed (the raw framing has no way to say why; the
/// connection closes).
pub fn answer_raw_token(
    broker: &Broker,
    conn: &mut SaslConnection,
    token: &[u8],
) -> Option<BytesMut> {
    let image = broker.image();
    let now_ms = broker.clock.now_ms();
    let answer = conn.authenticate(token, &*image, &scram::random_nonce(), now_ms);
    if answer.close || answer.body.error_code != 0 {
        return None;
    }
    let bytes = answer.body.auth_bytes;
    let mut frame = BytesMut::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    Some(frame)
}

/// Create the `--scram-bootstrap` credentials of users that have none for that
/// mechanism yet (a later AlterUserScramCredentials is never undone by a restart).
/// Each is planned on the current image and committed by the controller; a failure
/// is logged and the broker starts anyway.
pub async fn bootstrap_credentials(broker: &Broker) {
    let Some(bootstrap) = &broker.config.sasl.scram_bootstrap else {
        return;
    };
    for b in &bootstrap.0 {
        let planned = broker
            .change_metadata(true, |image| {
                if image.scram_credential(&b.user, b.mechanism).is_some() {
                    return Err(crate::metadata::admin::AdminError {
                        code: ResponseError::DuplicateResource,
                        message: "already has a credential".into(),
                    });
                }
                let credential = scram::ScramCredential::from_password(
                    b.mechanism,
                    &b.password,
                    scram::random_salt(),
                    b.iterations,
                )
                .map_err(|e| crate::metadata::admin::AdminError {
                    code: ResponseError::UnacceptableCredential,
                    message: e.to_string(),
                })?;
                Ok(crate::metadata::image::MetadataRecord::ScramCredentialSet {
                    user: b.user.clone(),
                    mechanism: b.mechanism,
                    credential,
                })
            })
            .await;
        match planned {
            Ok(_) => {
                tracing::info!(user = b.user, mechanism = %b.mechanism, "created bootstrap SCRAM credential")
            }
            Err(e) if e.code == ResponseError::DuplicateResource => {
                tracing::debug!(user = b.user, mechanism = %b.mechanism, "bootstrap SCRAM credential exists")
            }
            Err(e) => tracing::warn!(
                user = b.user,
                mechanism = %b.mechanism,
                "bootstrap SCRAM credential not created: {}",
                e.message
            ),
        }
    }
}
