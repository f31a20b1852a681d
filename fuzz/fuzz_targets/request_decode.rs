//! A request frame as the server receives it (size prefix stripped): the guard first,
//! then, only for frames it lets through, the `kafka-protocol` decoder. Nothing may
//! panic or abort, and a frame the guard passes must decode and consume exactly the
//! header and body lengths the guard measured; any disagreement means the guard's
//! table and the decoder read the bytes differently, which is how an unchecked count
//! would slip through.

#![no_main]

use bytes::Bytes;
use fjord_broker::protocol::guard::check_request;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(head) = check_request(frame) else {
        return;
    };
    let mut buf = Bytes::copy_from_slice(frame);
    let header = RequestHeader::decode(&mut buf, head.header_version)
        .unwrap_or_else(|e| panic!("guard passed {head:?} but the header does not decode: {e:#}"));
    assert_eq!(
        buf.len(),
        frame.len() - head.header_len,
        "header length: {head:?}"
    );
    let key = ApiKey::try_from(head.api_key).expect("guard passed an api key the decoder lacks");
    let body = RequestKind::decode(key, &mut buf, head.api_version)
        .unwrap_or_else(|e| panic!("guard passed {head:?} but the body does not decode: {e:#}"));
    assert_eq!(
        buf.len(),
        frame.len() - head.header_len - head.body_len,
        "body length: {head:?}"
    );
    std::hint::black_box((header, body));
});
