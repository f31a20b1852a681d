//! Describe/AlterUserScramCredentials (KIP-554) through the controller. The decisions
//! are in `auth::credentials`.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;

use super::{count_error, str_bytes, RequestContext};
use crate::auth::credentials::{self, Upsertion};
use crate::server::broker::Broker;

pub fn describe_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
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
    let mut results = Vec::new();
    for (user, alteration) in credentials::validate_alterations(&deletions, &upsertions) {
        let outcome = match alteration {
            Ok(a) => broker
                .change_metadata(true, |image| credentials::plan_alteration(image, &a))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        let mut result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
        match outcome {
            Ok(()) => tracing::info!(user, principal = %ctx.principal, "altered SCRAM credential"),
            Err(e) => {
                count_error(broker, ctx.api_key, e.code.code());
                result.error_code = e.code.code();
                result.error_message = Some(str_bytes(e.message));
            }
        }
        results.push(result);
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}
