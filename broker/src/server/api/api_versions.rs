//! ApiVersions: what this broker serves.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::encode_response;
use crate::protocol::SUPPORTED_APIS;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    // No features are advertised: clients turn on behaviour (e.g. transactions v2)
    // from finalized features, and none of those are implemented.
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// A client asked for an ApiVersions version newer than served: answer in v0 with
/// UNSUPPORTED_VERSION and the served ranges, so it retries with one of them (KIP-511).
pub fn unsupported(correlation_id: i32, requested: i16) -> BytesMut {
    tracing::debug!(requested, "ApiVersions version not served; answering in v0");
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &resp,
        &mut BytesMut::new(),
    )
    .expect("v0 ApiVersions encodes")
}
