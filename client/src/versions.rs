//! ApiVersions negotiation: for each API, the highest version that both this client
//! (the `kafka-protocol` crate's range, minus versions it cannot fill in) and the broker
//! support.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, VersionRange};
use kafka_protocol::ResponseError;

use crate::error::{Error, Result};

/// The versions this client speaks for `api`.
///
/// Produce v13+ and Fetch v13+ address topics by id only; this client addresses them by
/// name, so it stops at v12 (brokers keep v12 for clients without topic ids).
pub(crate) fn client_range(api: ApiKey) -> VersionRange {
    let crate_range = api.valid_versions();
    let cap = match api {
        ApiKey::Produce | ApiKey::Fetch => 12,
        _ => i16::MAX,
    };
    VersionRange {
        min: crate_range.min,
        max: crate_range.max.min(cap),
    }
}

/// The outcome of a broker's ApiVersions answer: one version per API both sides speak.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    chosen: BTreeMap<i16, i16>,
    broker: BTreeMap<i16, VersionRange>,
}

impl ApiVersions {
    /// Negotiates from a broker's ApiVersions response: per API, the highest version in the
    /// intersection of the client's and the broker's ranges; APIs with no common version
    /// (or unknown to the crate) are left out.
    pub fn negotiate(response: &ApiVersionsResponse) -> Self {
        let mut out = ApiVersions::default();
        for advertised in &response.api_keys {
            let broker = VersionRange {
                min: advertised.min_version,
                max: advertised.max_version,
            };
            out.broker.insert(advertised.api_key, broker);
            let Ok(api) = ApiKey::try_from(advertised.api_key) else {
                continue;
            };
            let common = client_range(api).intersect(&broker);
            if !common.is_empty() {
                out.chosen.insert(advertised.api_key, common.max);
            }
        }
        out
    }

    /// The negotiated version of `api`, or `None` when the two sides share none.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.chosen.get(&(api as i16)).copied()
    }

    /// The range the broker advertised for `api`, if it advertised it at all.
    pub fn broker_range(&self, api: ApiKey) -> Option<VersionRange> {
        self.broker.get(&(api as i16)).copied()
    }
}

/// What to do with the answer to an ApiVersions request sent at `version`.
#[derive(Debug)]
pub(crate) enum Handshake {
    /// The broker answered at the requested version.
    Done(ApiVersionsResponse),
    /// The broker does not speak `version` and answered in v0 with UNSUPPORTED_VERSION;
    /// ask again at this version (the highest ApiVersions version both speak).
    RetryAt(i16),
}

/// Interprets an ApiVersions response frame (header + body). The response header is
/// always v0 for ApiVersions (so a client can read it before knowing any versions), and a
/// broker that does not speak the request's version answers in the v0 body layout with
/// UNSUPPORTED_VERSION and its own ranges.
pub(crate) fn read_handshake(version: i16, mut frame: Bytes) -> Result<Handshake> {
    ResponseHeader::decode(&mut frame, 0)
        .map_err(|e| Error::protocol("decoding ApiVersions response header", e))?;
    if frame.len() >= 2 && (&frame[..2]).get_i16() == ResponseError::UnsupportedVersion.code() {
        let v0 = ApiVersionsResponse::decode(&mut frame, 0)
            .map_err(|e| Error::protocol("decoding ApiVersions v0 fallback response", e))?;
        let ours = client_range(ApiKey::ApiVersions);
        let theirs = v0
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .map(|k| VersionRange {
                min: k.min_version,
                max: k.max_version,
            })
            // A broker that lists nothing still speaks v0: that is the contract.
            .unwrap_or(VersionRange { min: 0, max: 0 });
        let common = ours.intersect(&theirs);
        if common.is_empty() || common.max >= version {
            return Err(Error::Protocol(format!(
                "broker rejected ApiVersions v{version} but advertises {theirs}"
            )));
        }
        return Ok(Handshake::RetryAt(common.max));
    }
    let response = ApiVersionsResponse::decode(&mut frame, version)
        .map_err(|e| Error::protocol(&format!("decoding ApiVersions v{version} response"), e))?;
    Error::check(response.error_code, || "ApiVersions".into(), None)?;
    Ok(Handshake::Done(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::protocol::Encodable;

    fn advertised(api: ApiKey, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(api as i16)
            .with_min_version(min)
            .with_max_version(max)
    }

    #[test]
    fn picks_highest_common_version_per_api() {
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            advertised(ApiKey::Metadata, 0, 12),
            // Broker newer than the crate: capped at the crate's max.
            advertised(ApiKey::CreateTopics, 2, 99),
            // Produce is capped at v12 (names, not topic ids) even if both speak v13.
            advertised(ApiKey::Produce, 0, 13),
            advertised(ApiKey::Fetch, 4, 12),
            // No overlap: the crate's DescribeConfigs starts at v1.
            advertised(ApiKey::DescribeConfigs, 0, 0),
            // Unknown API key: ignored, but remembered as advertised.
            advertised(ApiKey::Metadata, 0, 0).with_api_key(9999),
        ]);
        let v = ApiVersions::negotiate(&response);
        assert_eq!(v.version(ApiKey::Metadata), Some(12));
        assert_eq!(
            v.version(ApiKey::CreateTopics),
            Some(ApiKey::CreateTopics.valid_versions().max)
        );
        assert_eq!(v.version(ApiKey::Produce), Some(12));
        assert_eq!(v.version(ApiKey::Fetch), Some(12));
        assert_eq!(v.version(ApiKey::DescribeConfigs), None);
        assert_eq!(v.version(ApiKey::ListOffsets), None);
        assert_eq!(
            v.broker_range(ApiKey::DescribeConfigs),
            Some(VersionRange { min: 0, max: 0 })
        );
    }

    #[test]
    fn old_broker_gets_older_version() {
        let response =
            ApiVersionsResponse::default().with_api_keys(vec![advertised(ApiKey::Fetch, 0, 6)]);
        assert_eq!(
            ApiVersions::negotiate(&response).version(ApiKey::Fetch),
            Some(6)
        );
    }

    fn frame(version: i16, response: &ApiVersionsResponse) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(&mut buf, 0)
            .unwrap();
        response.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn unsupported_version_answer_in_v0_leads_to_retry() {
        let response = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![advertised(ApiKey::ApiVersions, 0, 2)]);
        match read_handshake(4, frame(0, &response)).unwrap() {
            Handshake::RetryAt(v) => assert_eq!(v, 2),
            other => panic!("expected a retry, got {other:?}"),
        }
        // Rejecting a version it claims to support is a broker bug, not a loop.
        assert!(read_handshake(2, frame(0, &response)).is_err());
    }

    #[test]
    fn handshake_at_requested_version() {
        let response =
            ApiVersionsResponse::default().with_api_keys(vec![advertised(ApiKey::Metadata, 0, 12)]);
        match read_handshake(3, frame(3, &response)).unwrap() {
            Handshake::Done(r) => assert_eq!(r.api_keys.len(), 1),
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}
