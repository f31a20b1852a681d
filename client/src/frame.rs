//! Size-prefixed frames: every request and response is an `int32` length followed by
//! that many bytes (header, then body).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};

/// Encodes one request frame: length prefix, request header (in the header version the
/// API prescribes for `version`), then the body.
pub(crate) fn encode_request<B: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &B,
) -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(|e| Error::protocol(&format!("encoding {api:?} v{version} header"), e))?;
    body.encode(&mut buf, version)
        .map_err(|e| Error::protocol(&format!("encoding {api:?} v{version} request"), e))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| Error::Protocol(format!("{api:?} request of {} bytes", buf.len())))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// The body length a frame's 4-byte prefix declares, if it is within `0..=max`. The bound
/// is checked before anything is allocated: a corrupt or hostile prefix must not make the
/// client reserve gigabytes.
pub(crate) fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, i64> {
    let len = i32::from_be_bytes(prefix);
    match usize::try_from(len) {
        Ok(n) if n >= 4 && n <= max => Ok(n),
        _ => Err(i64::from(len)),
    }
}

/// The correlation id at the start of every response header (all header versions).
pub(crate) fn correlation_id(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(..4)?.try_into().ok()?))
}

/// Decodes a response frame body (header + body, without the length prefix).
pub(crate) fn decode_response<R: Decodable>(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<R> {
    ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| Error::protocol(&format!("decoding {api:?} v{version} response header"), e))?;
    let body = R::decode(&mut frame, version)
        .map_err(|e| Error::protocol(&format!("decoding {api:?} v{version} response"), e))?;
    if frame.has_remaining() {
        // Trailing bytes mean the two sides disagree on the layout: fail rather than
        // trust fields decoded under the wrong schema.
        return Err(Error::Protocol(format!(
            "{api:?} v{version} response has {} trailing bytes",
            frame.remaining()
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    #[test]
    fn request_frame_is_length_prefixed_and_carries_header() {
        let frame = encode_request(
            ApiKey::Metadata,
            9,
            42,
            "fjord-test",
            &MetadataRequest::default(),
        )
        .unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let mut rest = frame.slice(4..);
        // Metadata v9 is flexible: request header v2.
        let header = RequestHeader::decode(&mut rest, 2).unwrap();
        assert_eq!(header.request_api_key, 3);
        assert_eq!(header.request_api_version, 9);
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.as_deref(), Some("fjord-test"));
        let body = MetadataRequest::decode(&mut rest, 9).unwrap();
        assert_eq!(body, MetadataRequest::default());
        assert!(rest.is_empty());
    }

    #[test]
    fn frame_len_enforces_bounds() {
        assert_eq!(frame_len(100i32.to_be_bytes(), 100), Ok(100));
        assert_eq!(frame_len(101i32.to_be_bytes(), 100), Err(101));
        assert_eq!(frame_len((-1i32).to_be_bytes(), 100), Err(-1));
        // Shorter than a correlation id cannot be a response.
        assert_eq!(frame_len(3i32.to_be_bytes(), 100), Err(3));
        assert_eq!(
            frame_len(i32::MAX.to_be_bytes(), 1 << 20),
            Err(i64::from(i32::MAX))
        );
    }

    #[test]
    fn response_round_trip_and_trailing_bytes() {
        let response = MetadataResponse::default().with_controller_id(7.into());
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(5)
            .encode(&mut frame, 1)
            .unwrap();
        response.encode(&mut frame, 12).unwrap();
        let frame = frame.freeze();
        assert_eq!(correlation_id(&frame), Some(5));
        let decoded: MetadataResponse =
            decode_response(ApiKey::Metadata, 12, frame.clone()).unwrap();
        assert_eq!(decoded.controller_id, 7);

        let mut longer = BytesMut::from(&frame[..]);
        longer.put_u8(0);
        let err =
            decode_response::<MetadataResponse>(ApiKey::Metadata, 12, longer.freeze()).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
