//! The request guard: validates a whole request frame against the Kafka message schemas
//! before the `kafka-protocol` decoder sees it.
//!
//! That decoder sizes every array with `Vec::with_capacity(count)` straight from the wire
//! (and every `Vec<u8>` with `vec![0; len]`), so a 4-byte Metadata v0 body claiming
//! 0x7ffffff0 topics makes it allocate ~150 GB and abort the process. The guard walks the
//! frame with the layout table generated from Apache Kafka's JSON schemas
//! (`schemas.rs`, written by `tools/gen_request_schemas.py`) and refuses any frame in which
//! a declared length or count does not fit in the bytes that remain, counting every
//! array element at its minimum encoded size. A frame that passes therefore makes the
//! decoder allocate no more element slots than the frame has bytes. A slot is the decoded
//! struct's in-memory size, which can be tens of times its smallest encoding (a flexible
//! Metadata topic is 2 bytes on the wire), so the server's frame size limit is what
//! bounds decoded memory.
//!
//! The guard is deliberately at least as strict as the decoder wherever they could read
//! the same bytes differently, so that "passes the guard" implies "decodes, consuming
//! exactly `header_len + body_len` bytes" (the fuzz target asserts this):
//! - unsigned varints longer than 5 bytes or above `u32::MAX` are refused (the decoder
//!   would silently truncate them);
//! - a known tagged field's value must fill exactly the size its prefix declares (the
//!   decoder reads the value in place and ignores the size), and a known tag in a version
//!   where its field does not exist is refused (the decoder refuses it too);
//! - `-1`/null where the schema says the field is not nullable in that version, and any
//!   other negative length, are refused; strings must be UTF-8.
//!
//! Bytes after the body are accepted, as the decoder and Kafka's own request parsing
//! (RequestContext.parseRequest) accept them; `RequestHead::body_len` tells the caller
//! where the body ends.
//!
//! Cost: one pass over the frame. Every array element and tagged field consumes at least
//! one byte (elements with no bytes in that version are bounded by the byte count too),
//! nesting follows the static schema depth (bounded by `MAX_NESTING`), and nothing is
//! allocated except the reason string of a refusal.

use self::schema::{Api, Field, Ty};
use super::schemas::{APIS, REQUEST_HEADER, REQUEST_HEADER_FLEXIBLE};

/// What the guard learned about a frame it let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Request header version: 2 when the API version is flexible, else 1.
    pub header_version: i16,
    /// Bytes of the request header; the body starts at `frame[header_len..]`.
    pub header_len: usize,
    /// Bytes of the body as the schema reads it; anything after it is trailing.
    pub body_len: usize,
    /// Array elements in the frame. Each becomes one decoded value of up to ~100 bytes
    /// (tens of times its smallest encoding), so this, not the frame size, is what to
    /// bound when limiting the memory a single request can make the decoder use.
    pub array_elements: usize,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not even api key, api version and correlation id.
    #[error(
        "request frame is shorter than the 8 bytes of api key, api version and correlation id"
    )]
    TooShort,
    #[error(
        "request api key {api_key} (v{api_version}, correlation id {correlation_id}) is not served"
    )]
    UnknownApi {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    #[error("request api key {api_key} version {api_version} (correlation id {correlation_id}) is not supported")]
    UnsupportedVersion {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// `reason` names the message, version, field path and the numbers that did not fit.
    #[error("malformed request (correlation id {correlation_id}): {reason}")]
    Malformed {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Deepest struct/array nesting the guard follows. Kafka schemas are not recursive, so
/// the real depth is fixed by the table (a test checks it stays well below this).
pub const MAX_NESTING: usize = 16;

/// Check a whole request frame (request header and body, without the 4-byte size
/// prefix). `Ok` means the `kafka-protocol` decoder can decode the header (at
/// `head.header_version`) and the body without allocating more than the frame justifies.
pub fn check_request(frame: &[u8]) -> Result<RequestHead, GuardError> {
    if frame.len() < 8 {
        return Err(GuardError::TooShort);
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);

    let Some(api) = find_api(api_key) else {
        return Err(GuardError::UnknownApi {
            api_key,
            api_version,
            correlation_id,
        });
    };
    if !api.valid.contains(api_version) {
        // Answered without reading further: ApiVersions must get its v0-format
        // UNSUPPORTED_VERSION reply even when the rest of the frame is a newer layout.
        return Err(GuardError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |reason: String| GuardError::Malformed {
        api_key,
        api_version,
        correlation_id,
        reason,
    };

    let flexible = api.flexible.contains(api_version);
    let header_version: i16 = if flexible { 2 } else { 1 };
    let mut r = Reader::new(frame);
    let header_flexible = REQUEST_HEADER_FLEXIBLE.contains(header_version);
    check_struct(&mut r, REQUEST_HEADER, header_version, header_flexible, 0)
        .map_err(|e| malformed(e.describe("RequestHeader", header_version)))?;
    let header_len = r.pos;
    check_struct(&mut r, api.fields, api_version, flexible, 0)
        .map_err(|e| malformed(e.describe(&format!("{}Request", api.name), api_version)))?;
    Ok(RequestHead {
        api_key,
        api_version,
        correlation_id,
        header_version,
        header_len,
        body_len: r.pos - header_len,
        array_elements: r.elements,
    })
}

fn find_api(api_key: i16) -> Option<&'static Api> {
    APIS.binary_search_by_key(&api_key, |a| a.key)
        .ok()
        .map(|i| &APIS[i])
}

/// The layout vocabulary of the generated table (`schemas.rs`).
pub(crate) mod schema {
    /// Inclusive version range; `NONE` is empty, `X` is open-ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct V(pub i16, pub i16);

    pub(crate) const X: i16 = i16::MAX;
    pub(crate) const NONE: V = V(1, 0);

    impl V {
        pub(crate) const fn contains(self, version: i16) -> bool {
            self.0 <= version && version <= self.1
        }
    }

    /// Wire types of the Kafka schemas. The full set is kept (uint16 and float64 appear
    /// in no request served today) so that adding an API never needs a guard change.
    #[allow(dead_code)]
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Ty {
        Bool,
        I8,
        I16,
        U16,
        I32,
        I64,
        F64,
        Uuid,
        Str,
        Bytes,
        Records,
        Struct(&'static [Field]),
        Array(&'static Ty),
    }

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Field {
        pub name: &'static str,
        pub ty: Ty,
        pub versions: V,
        pub nullable: V,
        /// Overrides the message's flexible versions for this field's length prefix
        /// (the header's ClientId keeps its 2-byte length in header v2).
        pub flexible: Option<V>,
        /// Tag number and the versions in which the field travels as a tagged field.
        pub tag: Option<(u32, V)>,
    }

    pub(crate) const fn f(name: &'static str, ty: Ty, versions: V) -> Field {
        Field {
            name,
            ty,
            versions,
            nullable: NONE,
            flexible: None,
            tag: None,
        }
    }

    impl Field {
        pub(crate) const fn nullable(self, versions: V) -> Self {
            Field {
                nullable: versions,
                ..self
            }
        }
        pub(crate) const fn flexible(self, versions: V) -> Self {
            Field {
                flexible: Some(versions),
                ..self
            }
        }
        pub(crate) const fn tagged(self, tag: u32, versions: V) -> Self {
            Field {
                tag: Some((tag, versions)),
                ..self
            }
        }
        /// Present in the fixed part of the struct in this version.
        pub(crate) fn is_plain_in(&self, version: i16) -> bool {
            self.versions.contains(version) && !self.is_tagged_in(version)
        }
        pub(crate) fn is_tagged_in(&self, version: i16) -> bool {
            matches!(self.tag, Some((_, tagged)) if tagged.contains(version))
                && self.versions.contains(version)
        }
        /// Whether the length prefix is a compact (varint) one in this version.
        pub(crate) fn compact_in(&self, version: i16, flexible: bool) -> bool {
            flexible && self.flexible.is_none_or(|v| v.contains(version))
        }
    }

    /// One request API: its key, the versions the guard accepts and the body layout.
    #[derive(Debug)]
    pub(crate) struct Api {
        pub key: i16,
        pub name: &'static str,
        pub valid: V,
        pub flexible: V,
        pub fields: &'static [Field],
    }
}

/// Where in the message a check failed, innermost last once reversed.
#[derive(Debug)]
enum Seg {
    Field(&'static str),
    Index(u64),
    Tag(u32),
}

/// A refusal on its way out; the path is collected while unwinding, so the happy path
/// allocates nothing.
#[derive(Debug)]
struct Fail {
    msg: String,
    path: Vec<Seg>,
}

impl Fail {
    fn new(msg: String) -> Self {
        Fail {
            msg,
            path: Vec::new(),
        }
    }

    fn at(mut self, seg: Seg) -> Self {
        self.path.push(seg);
        self
    }

    fn describe(&self, message: &str, version: i16) -> String {
        let mut path = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
                Seg::Tag(t) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&format!("<tag {t}>"));
                }
            }
        }
        if path.is_empty() {
            format!("{message} v{version}: {}", self.msg)
        } else {
            format!("{message} v{version}: {path}: {}", self.msg)
        }
    }
}

type Check<T = ()> = Result<T, Fail>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Array elements seen so far.
    elements: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            elements: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Check<&'a [u8]> {
        if n > self.remaining() {
            return Err(Fail::new(format!(
                "{what} needs {n} bytes, {} remain",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn int16(&mut self, what: &str) -> Check<i16> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self, what: &str) -> Check<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Kafka's unsigned varint: at most 5 bytes and at most `u32::MAX`. Longer or wider
    /// encodings are refused rather than truncated, so the guard and the decoder never
    /// disagree on the value.
    fn uvarint(&mut self, what: &str) -> Check<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, what)?[0];
            if i == 4 && b > 0x0f {
                return Err(Fail::new(format!(
                    "{what}: varint does not fit in 32 bits (fifth byte {b:#04x})"
                )));
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        unreachable!("the fifth byte is at most 0x0f, so it ends the varint")
    }
}

/// Minimum encoded size of a value of `ty` in `version`; tagged fields cost nothing
/// (they live in the tag section, which costs its 1-byte count).
fn min_size(ty: &Ty, compact: bool, version: i16, flexible: bool) -> usize {
    match ty {
        Ty::Bool | Ty::I8 => 1,
        Ty::I16 | Ty::U16 => 2,
        Ty::I32 => 4,
        Ty::I64 | Ty::F64 => 8,
        Ty::Uuid => 16,
        Ty::Str => {
            if compact {
                1
            } else {
                2
            }
        }
        Ty::Bytes | Ty::Records | Ty::Array(_) => {
            if compact {
                1
            } else {
                4
            }
        }
        Ty::Struct(fields) => {
            let plain: usize = fields
                .iter()
                .filter(|f| f.is_plain_in(version))
                .map(|f| min_size(&f.ty, f.compact_in(version, flexible), version, flexible))
                .sum();
            plain + usize::from(flexible)
        }
    }
}

fn check_struct(
    r: &mut Reader<'_>,
    fields: &'static [Field],
    version: i16,
    flexible: bool,
    depth: usize,
) -> Check {
    if depth > MAX_NESTING {
        return Err(Fail::new(format!(
            "nested deeper than {MAX_NESTING} levels"
        )));
    }
    for field in fields.iter().filter(|f| f.is_plain_in(version)) {
        check_field(r, field, version, flexible, depth)
            .map_err(|e| e.at(Seg::Field(field.name)))?;
    }
    if flexible {
        check_tagged_fields(r, fields, version, depth)?;
    }
    Ok(())
}

fn check_field(
    r: &mut Reader<'_>,
    field: &'static Field,
    version: i16,
    flexible: bool,
    depth: usize,
) -> Check {
    let nullable = field.nullable.contains(version);
    let compact = field.compact_in(version, flexible);
    check_value(r, &field.ty, nullable, compact, version, flexible, depth)
}

/// Reads a length or count prefix: `None` is null. Compact prefixes are varints holding
/// length + 1 (0 is null); classic ones are int16 (strings) or int32 with -1 as null.
fn read_len(
    r: &mut Reader<'_>,
    ty: &Ty,
    nullable: bool,
    compact: bool,
    version: i16,
) -> Check<Option<usize>> {
    let what = match ty {
        Ty::Str => "string length",
        Ty::Array(_) => "array count",
        _ => "bytes length",
    };
    let len: i64 = if compact {
        i64::from(r.uvarint(what)?) - 1
    } else if matches!(ty, Ty::Str) {
        i64::from(r.int16(what)?)
    } else {
        i64::from(r.int32(what)?)
    };
    match len {
        -1 if nullable => Ok(None),
        -1 => Err(Fail::new(format!(
            "{what} is null (-1), but the field is not nullable in v{version}"
        ))),
        n if n < 0 => Err(Fail::new(format!("{what} is negative ({n})"))),
        // Lossless: at most u32::MAX - 1 or i32::MAX.
        n => Ok(Some(n as usize)),
    }
}

fn check_value(
    r: &mut Reader<'_>,
    ty: &'static Ty,
    nullable: bool,
    compact: bool,
    version: i16,
    flexible: bool,
    depth: usize,
) -> Check {
    match ty {
        Ty::Bool | Ty::I8 => r.take(1, "int8").map(drop),
        Ty::I16 | Ty::U16 => r.take(2, "int16").map(drop),
        Ty::I32 => r.take(4, "int32").map(drop),
        Ty::I64 | Ty::F64 => r.take(8, "int64").map(drop),
        Ty::Uuid => r.take(16, "uuid").map(drop),
        Ty::Str => {
            if let Some(len) = read_len(r, ty, nullable, compact, version)? {
                let bytes = r.take(len, "string")?;
                if let Err(e) = std::str::from_utf8(bytes) {
                    return Err(Fail::new(format!(
                        "string of {len} bytes is not UTF-8 ({e})"
                    )));
                }
            }
            Ok(())
        }
        Ty::Bytes | Ty::Records => {
            if let Some(len) = read_len(r, ty, nullable, compact, version)? {
                r.take(len, "bytes")?;
            }
            Ok(())
        }
        Ty::Array(elem) => {
            let Some(count) = read_len(r, ty, nullable, compact, version)? else {
                return Ok(());
            };
            // Elements are never nullable and use the message's own length style.
            let elem_min = min_size(elem, flexible, version, flexible);
            // An element with nothing to read in this version still costs one byte here,
            // so the count (and the decoder's allocation) stays bounded by the frame.
            let per = elem_min.max(1);
            if count > r.remaining() / per {
                return Err(Fail::new(format!(
                    "array count {count} needs at least {} bytes ({per} per element), {} remain",
                    (count as u128) * (per as u128),
                    r.remaining()
                )));
            }
            r.elements += count;
            for i in 0..count {
                check_value(r, elem, false, flexible, version, flexible, depth + 1)
                    .map_err(|e| e.at(Seg::Index(i as u64)))?;
            }
            Ok(())
        }
        Ty::Struct(fields) => check_struct(r, fields, version, flexible, depth + 1),
    }
}

/// The tag section of a flexible struct: a count, then (tag, size, value) triples.
/// Unknown tags are skipped by their size; known ones are checked against their type and
/// must fill their size exactly, as the decoder reads them in place.
fn check_tagged_fields(
    r: &mut Reader<'_>,
    fields: &'static [Field],
    version: i16,
    depth: usize,
) -> Check {
    let count = r.uvarint("tagged field count")?;
    // Each tagged field takes at least two bytes: its tag and its size.
    if count as usize > r.remaining() / 2 {
        return Err(Fail::new(format!(
            "tagged field count {count} needs at least {} bytes, {} remain",
            u64::from(count) * 2,
            r.remaining()
        )));
    }
    for _ in 0..count {
        let tag = r.uvarint("tag")?;
        let size = r
            .uvarint("tagged field size")
            .map_err(|e| e.at(Seg::Tag(tag)))? as usize;
        let value = r
            .take(size, "tagged field")
            .map_err(|e| e.at(Seg::Tag(tag)))?;
        let Some(field) = fields
            .iter()
            .find(|f| matches!(f.tag, Some((t, _)) if t == tag))
        else {
            continue;
        };
        if !field.is_tagged_in(version) {
            return Err(Fail::new(format!("tag {tag} is not valid in v{version}"))
                .at(Seg::Field(field.name)));
        }
        let mut sub = Reader::new(value);
        check_field(&mut sub, field, version, true, depth)
            .map_err(|e| e.at(Seg::Field(field.name)))?;
        if sub.remaining() != 0 {
            return Err(Fail::new(format!(
                "tagged field declares {size} bytes but its value takes {}",
                sub.pos
            ))
            .at(Seg::Field(field.name)));
        }
        r.elements += sub.elements;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::schema::{Field, Ty};
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes, VersionRange};

    /// Every API in the table, with the crate's request type (its default value and the
    /// versions the crate decodes).
    macro_rules! crate_requests {
        ($($key:literal => $variant:ident($ty:ty)),* $(,)?) => {
            fn crate_default(key: i16) -> (RequestKind, VersionRange) {
                match key {
                    $($key => (RequestKind::$variant(<$ty>::default()), <$ty as Message>::VERSIONS),)*
                    other => panic!("api key {other} has no crate request type in this test"),
                }
            }
        };
    }
    crate_requests! {
        0 => Produce(ProduceRequest),
        1 => Fetch(FetchRequest),
        2 => ListOffsets(ListOffsetsRequest),
        3 => Metadata(MetadataRequest),
        8 => OffsetCommit(OffsetCommitRequest),
        9 => OffsetFetch(OffsetFetchRequest),
        10 => FindCoordinator(FindCoordinatorRequest),
        11 => JoinGroup(JoinGroupRequest),
        12 => Heartbeat(HeartbeatRequest),
        13 => LeaveGroup(LeaveGroupRequest),
        14 => SyncGroup(SyncGroupRequest),
        15 => DescribeGroups(DescribeGroupsRequest),
        16 => ListGroups(ListGroupsRequest),
        17 => SaslHandshake(SaslHandshakeRequest),
        18 => ApiVersions(ApiVersionsRequest),
        19 => CreateTopics(CreateTopicsRequest),
        20 => DeleteTopics(DeleteTopicsRequest),
        21 => DeleteRecords(DeleteRecordsRequest),
        22 => InitProducerId(InitProducerIdRequest),
        23 => OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
        29 => DescribeAcls(DescribeAclsRequest),
        30 => CreateAcls(CreateAclsRequest),
        31 => DeleteAcls(DeleteAclsRequest),
        32 => DescribeConfigs(DescribeConfigsRequest),
        36 => SaslAuthenticate(SaslAuthenticateRequest),
        37 => CreatePartitions(CreatePartitionsRequest),
        42 => DeleteGroups(DeleteGroupsRequest),
        44 => IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
        45 => AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
        46 => ListPartitionReassignments(ListPartitionReassignmentsRequest),
        47 => OffsetDelete(OffsetDeleteRequest),
        48 => DescribeClientQuotas(DescribeClientQuotasRequest),
        50 => DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
        51 => AlterUserScramCredentials(AlterUserScramCredentialsRequest),
        60 => DescribeCluster(DescribeClusterRequest),
        64 => UnregisterBroker(UnregisterBrokerRequest),
    }

    fn versions(api: &Api) -> std::ops::RangeInclusive<i16> {
        api.valid.0..=api.valid.1
    }

    fn header_bytes(api_key: i16, version: i16) -> BytesMut {
        let key = ApiKey::try_from(api_key).unwrap();
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(0x0102_0304)
            .with_client_id(Some(StrBytes::from_static_str("fjord-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        buf
    }

    /// A frame built with the crate's own encoders.
    fn encode(api_key: i16, version: i16, body: &RequestKind) -> Vec<u8> {
        let mut buf = header_bytes(api_key, version);
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode api {api_key} v{version}: {e:#}"));
        buf.to_vec()
    }

    /// What the server does: guard first, decoder only when the guard agrees. The decoder
    /// must then succeed and consume exactly what the guard measured.
    fn guarded_decode(
        frame: &[u8],
    ) -> Result<(RequestHead, RequestHeader, RequestKind), GuardError> {
        let head = check_request(frame)?;
        let mut buf = Bytes::copy_from_slice(frame);
        let header = RequestHeader::decode(&mut buf, head.header_version)
            .unwrap_or_else(|e| panic!("guard passed but the header does not decode: {e:#}"));
        assert_eq!(
            buf.len(),
            frame.len() - head.header_len,
            "header length disagrees"
        );
        let key = ApiKey::try_from(head.api_key).unwrap();
        let body = RequestKind::decode(key, &mut buf, head.api_version).unwrap_or_else(|e| {
            panic!(
                "guard passed but api {} v{} does not decode: {e:#}",
                head.api_key, head.api_version
            )
        });
        assert_eq!(
            buf.len(),
            frame.len() - head.header_len - head.body_len,
            "api {} v{}: body length disagrees with the decoder",
            head.api_key,
            head.api_version
        );
        assert_eq!(header.request_api_key, head.api_key);
        assert_eq!(header.request_api_version, head.api_version);
        assert_eq!(header.correlation_id, head.correlation_id);
        Ok((head, header, body))
    }

    fn malformed_reason(frame: &[u8]) -> String {
        match check_request(frame) {
            Err(GuardError::Malformed { reason, .. }) => reason,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    /// Header v1 for `api_key`/`version` with client id "c", then `body`.
    fn raw_frame(api_key: i16, version: i16, flexible_header: bool, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&api_key.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&7i32.to_be_bytes());
        f.extend_from_slice(&1i16.to_be_bytes());
        f.push(b'c');
        if flexible_header {
            f.push(0); // no tagged fields
        }
        f.extend_from_slice(body);
        f
    }

    // ---- The trap that motivated the guard ----

    #[test]
    fn metadata_v0_huge_topic_count_is_refused_before_decoding() {
        let frame = raw_frame(3, 0, false, &[0x7f, 0xff, 0xff, 0xf0]);
        // Were the guard to let this through, guarded_decode would call the decoder,
        // which aborts the test process trying to allocate ~150 GB.
        let err = guarded_decode(&frame).unwrap_err();
        let GuardError::Malformed {
            api_key,
            api_version,
            correlation_id,
            reason,
        } = err
        else {
            panic!("expected Malformed, got {err:?}");
        };
        assert_eq!((api_key, api_version, correlation_id), (3, 0, 7));
        assert!(reason.contains("MetadataRequest v0"), "{reason}");
        assert!(reason.contains("Topics"), "{reason}");
        assert!(reason.contains("2147483632"), "{reason}");
    }

    // ---- Valid requests from the crate's encoders ----

    #[test]
    fn default_requests_of_every_api_and_version_pass_and_decode() {
        let mut checked = 0;
        for api in APIS {
            let (body, crate_versions) = crate_default(api.key);
            assert!(
                crate_versions.min <= api.valid.0 && api.valid.1 <= crate_versions.max,
                "{}: table versions {:?} exceed what the crate decodes ({crate_versions:?})",
                api.name,
                api.valid
            );
            for version in versions(api) {
                let frame = encode(api.key, version, &body);
                let (head, _, _) = guarded_decode(&frame)
                    .unwrap_or_else(|e| panic!("{} v{version}: {e}", api.name));
                let key = ApiKey::try_from(api.key).unwrap();
                assert_eq!(head.header_version, key.request_header_version(version));
                assert_eq!(head.header_len + head.body_len, frame.len());
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} api versions checked");
    }

    fn topic(name: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(name))
    }

    /// Requests with populated arrays, nullable fields and tagged fields, built with the
    /// crate's encoders for every version the table accepts.
    fn populated_requests() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let mut push = |name: &str, key: i16, version: i16, body: RequestKind| {
            out.push((format!("{name}-v{version}"), encode(key, version, &body)));
        };
        for version in 0..=13 {
            let topics = (0..3)
                .map(|i| {
                    let t = metadata_request::MetadataRequestTopic::default();
                    if version >= 10 {
                        t.with_topic_id(id).with_name(None)
                    } else {
                        t.with_name(Some(topic(["orders", "payments", "äöü"][i])))
                    }
                })
                .collect();
            push(
                "metadata",
                3,
                version,
                RequestKind::Metadata(MetadataRequest::default().with_topics(Some(topics))),
            );
            if version >= 1 {
                push(
                    "metadata-all",
                    3,
                    version,
                    RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
                );
            }
        }
        for version in 3..=13 {
            let partitions = (0..2)
                .map(|i| {
                    produce_request::PartitionProduceData::default()
                        .with_index(i)
                        .with_records((i == 0).then(|| Bytes::from_static(&[9; 61])))
                })
                .collect();
            let mut t =
                produce_request::TopicProduceData::default().with_partition_data(partitions);
            t = if version >= 13 {
                t.with_topic_id(id)
            } else {
                t.with_name(topic("orders"))
            };
            let req = ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![t]);
            push("produce", 0, version, RequestKind::Produce(req));
        }
        for version in 4..=18 {
            let partitions = (0..2)
                .map(|i| {
                    let p = fetch_request::FetchPartition::default()
                        .with_partition(i)
                        .with_fetch_offset(100);
                    if version >= 17 {
                        p.with_replica_directory_id(id)
                            .with_high_watermark(if version >= 18 { 5 } else { i64::MAX })
                    } else {
                        p
                    }
                })
                .collect();
            let mut t = fetch_request::FetchTopic::default().with_partitions(partitions);
            t = if version >= 13 {
                t.with_topic_id(id)
            } else {
                t.with_topic(topic("orders"))
            };
            let mut req = FetchRequest::default().with_topics(vec![t]);
            if version >= 7 {
                let mut f = fetch_request::ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
                f = if version >= 13 {
                    f.with_topic_id(id)
                } else {
                    f.with_topic(topic("old"))
                };
                req = req.with_forgotten_topics_data(vec![f]);
            }
            if version >= 12 {
                req = req.with_cluster_id(Some(StrBytes::from_static_str("cluster")));
            }
            if version >= 15 {
                req = req.with_replica_state(
                    fetch_request::ReplicaState::default()
                        .with_replica_id(BrokerId(3))
                        .with_replica_epoch(9),
                );
            }
            push("fetch", 1, version, RequestKind::Fetch(req));
        }
        for version in 2..=7 {
            let t = create_topics_request::CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                ])
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("1000"))),
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_value(None),
                ]);
            push(
                "create-topics",
                19,
                version,
                RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![t])),
            );
        }
        for version in 0..=9 {
            let p = join_group_request::JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\x00\x01meta"));
            let mut req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![p.clone(), p]);
            if version >= 5 {
                req = req.with_group_instance_id(Some(StrBytes::from_static_str("i-1")));
            }
            if version >= 8 {
                req = req.with_reason(Some(StrBytes::from_static_str("rebalance")));
            }
            push("join-group", 11, version, RequestKind::JoinGroup(req));
        }
        out
    }

    #[test]
    fn populated_requests_pass_and_decode() {
        for (name, frame) in populated_requests() {
            guarded_decode(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn array_elements_are_counted_at_every_level() {
        let frames = populated_requests();
        let elements = |name: &str| {
            let (_, frame) = frames.iter().find(|(n, _)| n == name).unwrap();
            check_request(frame).unwrap().array_elements
        };
        assert_eq!(elements("metadata-v0"), 3);
        assert_eq!(elements("metadata-all-v1"), 0);
        // One topic of two partitions, one forgotten topic of three partition ids.
        assert_eq!(elements("fetch-v17"), 7);
    }

    #[test]
    fn every_truncation_of_a_valid_request_is_refused() {
        let mut frames = populated_requests();
        for api in APIS {
            let (body, _) = crate_default(api.key);
            for version in versions(api) {
                frames.push((
                    format!("{}-v{version}", api.name),
                    encode(api.key, version, &body),
                ));
            }
        }
        for (name, frame) in &frames {
            for len in 0..frame.len() {
                match check_request(&frame[..len]) {
                    Err(GuardError::TooShort) if len < 8 => {}
                    Err(GuardError::Malformed { .. }) if len >= 8 => {}
                    other => panic!("{name} cut to {len} of {} bytes: {other:?}", frame.len()),
                }
            }
        }
    }

    // ---- Valid requests synthesized from the table itself ----
    //
    // Every field of every version gets a value (arrays of two elements, strings,
    // nulls where allowed, each known tagged field, plus an unknown tag): this checks the
    // generated table against the crate's decoders field by field, including the
    // versions the populated builders above do not cover.

    fn synth_struct(
        out: &mut Vec<u8>,
        fields: &[Field],
        version: i16,
        flexible: bool,
        nulls: bool,
    ) {
        for f in fields.iter().filter(|f| f.is_plain_in(version)) {
            synth_field(out, f, version, flexible, nulls);
        }
        if flexible {
            let mut tagged: Vec<&Field> =
                fields.iter().filter(|f| f.is_tagged_in(version)).collect();
            tagged.sort_by_key(|f| f.tag.unwrap().0);
            push_uvarint(out, tagged.len() as u32 + 1);
            for f in tagged {
                let mut value = Vec::new();
                synth_field(&mut value, f, version, true, nulls);
                push_uvarint(out, f.tag.unwrap().0);
                push_uvarint(out, value.len() as u32);
                out.extend_from_slice(&value);
            }
            push_uvarint(out, 1000); // unknown to everyone
            push_uvarint(out, 3);
            out.extend_from_slice(b"xyz");
        }
    }

    fn synth_field(out: &mut Vec<u8>, f: &Field, version: i16, flexible: bool, nulls: bool) {
        let nullable = nulls && f.nullable.contains(version);
        synth_value(
            out,
            &f.ty,
            nullable,
            f.compact_in(version, flexible),
            version,
            flexible,
            nulls,
        );
    }

    fn push_len(out: &mut Vec<u8>, len: Option<usize>, compact: bool, short: bool) {
        match (len, compact) {
            (None, true) => out.push(0),
            (Some(n), true) => push_uvarint(out, n as u32 + 1),
            (None, false) if short => out.extend_from_slice(&(-1i16).to_be_bytes()),
            (None, false) => out.extend_from_slice(&(-1i32).to_be_bytes()),
            (Some(n), false) if short => out.extend_from_slice(&(n as i16).to_be_bytes()),
            (Some(n), false) => out.extend_from_slice(&(n as i32).to_be_bytes()),
        }
    }

    fn push_uvarint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn synth_value(
        out: &mut Vec<u8>,
        ty: &Ty,
        null: bool,
        compact: bool,
        version: i16,
        flexible: bool,
        nulls: bool,
    ) {
        match ty {
            Ty::Bool | Ty::I8 => out.push(1),
            Ty::I16 | Ty::U16 => out.extend_from_slice(&[0, 2]),
            Ty::I32 => out.extend_from_slice(&3i32.to_be_bytes()),
            Ty::I64 | Ty::F64 => out.extend_from_slice(&4i64.to_be_bytes()),
            Ty::Uuid => out.extend_from_slice(&[5; 16]),
            Ty::Str if null => push_len(out, None, compact, true),
            Ty::Str => {
                push_len(out, Some(2), compact, true);
                out.extend_from_slice(b"ab");
            }
            Ty::Bytes | Ty::Records if null => push_len(out, None, compact, false),
            Ty::Bytes | Ty::Records => {
                push_len(out, Some(3), compact, false);
                out.extend_from_slice(&[1, 2, 3]);
            }
            Ty::Array(_) if null => push_len(out, None, compact, false),
            Ty::Array(elem) => {
                push_len(out, Some(2), compact, false);
                for _ in 0..2 {
                    synth_value(out, elem, false, flexible, version, flexible, nulls);
                }
            }
            Ty::Struct(fields) => synth_struct(out, fields, version, flexible, nulls),
        }
    }

    /// Frames for every api and version, synthesized from the table; with `nulls`, every
    /// nullable field is null.
    fn synthesized_requests(nulls: bool) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for api in APIS {
            for version in versions(api) {
                let mut frame = header_bytes(api.key, version).to_vec();
                synth_struct(
                    &mut frame,
                    api.fields,
                    version,
                    api.flexible.contains(version),
                    nulls,
                );
                out.push((
                    format!(
                        "{}-v{version}-synth{}",
                        api.name,
                        if nulls { "-nulls" } else { "" }
                    ),
                    frame,
                ));
            }
        }
        out
    }

    #[test]
    fn synthesized_requests_of_every_api_and_version_pass_and_decode() {
        for nulls in [false, true] {
            for (name, frame) in synthesized_requests(nulls) {
                guarded_decode(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn trailing_bytes_after_the_body_are_accepted_and_measured() {
        let mut frame = encode(18, 3, &RequestKind::ApiVersions(Default::default()));
        let full = frame.len();
        frame.extend_from_slice(b"junk");
        let (head, _, _) = guarded_decode(&frame).unwrap();
        assert_eq!(head.header_len + head.body_len, full);
    }

    // ---- Hostile frames ----

    #[test]
    fn short_frames_are_too_short() {
        for len in 0..8 {
            assert_eq!(check_request(&[0u8; 8][..len]), Err(GuardError::TooShort));
        }
    }

    #[test]
    fn unknown_api_and_unsupported_version_still_report_the_header() {
        // UpdateFeatures is not served.
        let frame = raw_frame(57, 1, false, &[]);
        assert_eq!(
            check_request(&frame),
            Err(GuardError::UnknownApi {
                api_key: 57,
                api_version: 1,
                correlation_id: 7
            })
        );
        // A newer client's ApiVersions: the body layout is unknown, and may be garbage,
        // but the server still needs key, version and correlation id to answer in v0.
        let mut frame = raw_frame(18, 99, false, &[]);
        frame.truncate(8);
        frame.extend_from_slice(&[0xff; 20]);
        assert_eq!(
            check_request(&frame),
            Err(GuardError::UnsupportedVersion {
                api_key: 18,
                api_version: 99,
                correlation_id: 7
            })
        );
        // Produce v0-2 are gone from the schemas (KIP-896) and are never decoded.
        for version in [-1, 0, 1, 2] {
            assert!(matches!(
                check_request(&raw_frame(0, version, false, &[0; 64])),
                Err(GuardError::UnsupportedVersion { api_key: 0, .. })
            ));
        }
    }

    #[test]
    fn huge_compact_array_counts_are_refused() {
        // Metadata v12: compact topics array claiming u32::MAX - 1 entries.
        let reason = malformed_reason(&raw_frame(
            3,
            12,
            true,
            &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0],
        ));
        assert!(
            reason.contains("Topics: array count 4294967294"),
            "{reason}"
        );
        // A count that would fit in bytes if elements were free, but each element takes
        // at least 17 bytes in v12 (uuid, compact name, tag count).
        let reason = malformed_reason(&raw_frame(
            3,
            12,
            true,
            &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ));
        assert!(reason.contains("18 per element"), "{reason}");
    }

    #[test]
    fn huge_counts_deep_inside_are_refused_with_their_path() {
        // Produce v3: one topic "t" whose partition array claims 2^31 - 1 entries.
        let mut body = Vec::new();
        body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
        body.extend_from_slice(&1i16.to_be_bytes()); // acks
        body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
        body.extend_from_slice(&1i32.to_be_bytes()); // one topic
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(b't');
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        let reason = malformed_reason(&raw_frame(0, 3, false, &body));
        assert!(
            reason.starts_with(
                "ProduceRequest v3: TopicData[0].PartitionData: array count 2147483647"
            ),
            "{reason}"
        );
    }

    #[test]
    fn overlong_and_oversized_varints_are_refused() {
        // Six-byte varint as Metadata v12's topic count.
        let reason = malformed_reason(&raw_frame(
            3,
            12,
            true,
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0],
        ));
        assert!(
            reason.contains("varint does not fit in 32 bits"),
            "{reason}"
        );
        // Five bytes whose last one carries bits above 2^32.
        let reason = malformed_reason(&raw_frame(
            3,
            12,
            true,
            &[0x81, 0x80, 0x80, 0x80, 0x10, 0, 0, 0],
        ));
        assert!(reason.contains("fifth byte 0x10"), "{reason}");
        // A padded but in-range varint is what the decoder reads too: accepted.
        let frame = raw_frame(3, 12, true, &[0x81, 0x80, 0x80, 0x80, 0x00, 0, 0, 0]);
        guarded_decode(&frame).unwrap();
    }

    #[test]
    fn negative_lengths_other_than_null_are_refused() {
        // Produce v3 transactional id (nullable string) with length -2.
        let mut body = (-2i16).to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 16]);
        let reason = malformed_reason(&raw_frame(0, 3, false, &body));
        assert!(
            reason.contains("TransactionalId: string length is negative (-2)"),
            "{reason}"
        );
        // JoinGroup v0 protocol metadata (bytes) with length -5.
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(b'g'); // group id
        body.extend_from_slice(&1000i32.to_be_bytes()); // session timeout
        body.extend_from_slice(&0i16.to_be_bytes()); // member id ""
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(b'c'); // protocol type
        body.extend_from_slice(&1i32.to_be_bytes()); // one protocol
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(b'r');
        body.extend_from_slice(&(-5i32).to_be_bytes());
        let reason = malformed_reason(&raw_frame(11, 0, false, &body));
        assert!(
            reason.contains("Protocols[0].Metadata: bytes length is negative (-5)"),
            "{reason}"
        );
    }

    #[test]
    fn null_where_the_version_does_not_allow_it_is_refused() {
        // Metadata topics became nullable in v1; v0 has no null.
        let reason = malformed_reason(&raw_frame(3, 0, false, &(-1i32).to_be_bytes()));
        assert!(reason.contains("not nullable in v0"), "{reason}");
        guarded_decode(&raw_frame(3, 1, false, &(-1i32).to_be_bytes())).unwrap();
        // Compact null (0) for CreateTopics v5's non-nullable topics array.
        let reason = malformed_reason(&raw_frame(19, 5, true, &[0, 0, 0, 0, 0, 0, 0]));
        assert!(reason.contains("Topics: array count is null"), "{reason}");
    }

    #[test]
    fn invalid_utf8_strings_are_refused() {
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&[0xc3, 0x28]);
        let reason = malformed_reason(&raw_frame(3, 0, false, &body));
        assert!(
            reason.contains("Topics[0].Name: string of 2 bytes is not UTF-8"),
            "{reason}"
        );
    }

    #[test]
    fn tagged_fields_are_bounded_and_known_ones_checked() {
        // ApiVersions v3 body: two compact strings, then the tag section.
        let base = [2, b'a', 2, b'1'];
        let with_tags = |tags: &[u8]| {
            let mut b = base.to_vec();
            b.extend_from_slice(tags);
            raw_frame(18, 3, true, &b)
        };
        // Unknown tag whose size runs past the end.
        let reason = malformed_reason(&with_tags(&[1, 7, 50, 1, 2]));
        assert!(
            reason.contains("<tag 7>: tagged field needs 50 bytes, 2 remain"),
            "{reason}"
        );
        // More tagged fields than bytes could hold.
        let reason = malformed_reason(&with_tags(&[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert!(reason.contains("tagged field count 4294967295"), "{reason}");
        // Unknown tags are skipped by size only.
        guarded_decode(&with_tags(&[2, 7, 2, 0xff, 0xff, 9, 0])).unwrap();

        // Fetch v12's ClusterId (tag 0, compact nullable string) whose value is shorter
        // than its declared size: the decoder would read the value in place and lose
        // its place in the frame.
        let fetch = encode(1, 12, &RequestKind::Fetch(FetchRequest::default()));
        assert_eq!(*fetch.last().unwrap(), 0, "no tags in the default request");
        let mut frame = fetch[..fetch.len() - 1].to_vec();
        frame.extend_from_slice(&[1, 0, 3, 2, b'c', b'x']);
        let reason = malformed_reason(&frame);
        assert!(
            reason.contains("ClusterId: tagged field declares 3 bytes but its value takes 2"),
            "{reason}"
        );
        // The same field with an honest size is fine.
        let mut frame = fetch[..fetch.len() - 1].to_vec();
        frame.extend_from_slice(&[1, 0, 2, 2, b'c']);
        let (_, _, body) = guarded_decode(&frame).unwrap();
        let RequestKind::Fetch(fetch_req) = body else {
            unreachable!()
        };
        assert_eq!(fetch_req.cluster_id.as_deref(), Some("c"));
        // A known tag's value must itself be well formed: a compact string claiming more
        // than its tag's size.
        let mut frame = fetch[..fetch.len() - 1].to_vec();
        frame.extend_from_slice(&[1, 0, 1, 0x7f]);
        let reason = malformed_reason(&frame);
        assert!(
            reason.contains("ClusterId: string needs 126 bytes, 0 remain"),
            "{reason}"
        );
        // Tag 1 (ReplicaState) only exists from v15; the decoder refuses it before then.
        let mut frame = fetch[..fetch.len() - 1].to_vec();
        frame.extend_from_slice(&[1, 1, 1, 0]);
        let reason = malformed_reason(&frame);
        assert!(
            reason.contains("ReplicaState: tag 1 is not valid in v12"),
            "{reason}"
        );
    }

    #[test]
    fn flexible_header_client_id_keeps_its_two_byte_length() {
        // Header v2: a client id of 300 bytes needs a 2-byte length; a compact reading
        // would get lost.
        let mut frame = Vec::new();
        frame.extend_from_slice(&18i16.to_be_bytes());
        frame.extend_from_slice(&3i16.to_be_bytes());
        frame.extend_from_slice(&9i32.to_be_bytes());
        frame.extend_from_slice(&300i16.to_be_bytes());
        frame.extend_from_slice(&[b'x'; 300]);
        frame.extend_from_slice(&[0, 2, b'a', 2, b'1', 0]);
        let (head, header, _) = guarded_decode(&frame).unwrap();
        assert_eq!(head.header_len, 8 + 2 + 300 + 1);
        assert_eq!(header.client_id.map(|s| s.len()), Some(300));
    }

    #[test]
    fn table_is_sorted_bounded_and_agrees_with_the_crate_on_header_versions() {
        fn depth(ty: &Ty) -> usize {
            match ty {
                Ty::Struct(fields) => 1 + fields.iter().map(|f| depth(&f.ty)).max().unwrap_or(0),
                Ty::Array(elem) => 1 + depth(elem),
                _ => 0,
            }
        }
        assert!(
            APIS.windows(2).all(|w| w[0].key < w[1].key),
            "APIS must be sorted by key, without duplicates"
        );
        for api in APIS {
            let d = depth(&Ty::Struct(api.fields));
            assert!(d < MAX_NESTING, "{}: nesting {d}", api.name);
            let key = ApiKey::try_from(api.key).unwrap();
            for version in versions(api) {
                let flexible_header = key.request_header_version(version) == 2;
                assert_eq!(
                    api.flexible.contains(version),
                    flexible_header,
                    "{} v{version}",
                    api.name
                );
            }
        }
    }

    /// Writes the fuzz target's seed corpus (valid frames of every api and version):
    /// `FJORD_FUZZ_SEEDS=fuzz/corpus/request_decode cargo test -p fjord-broker -- --ignored write_fuzz_seeds`
    #[test]
    #[ignore = "writes files; run on demand"]
    fn write_fuzz_seeds() {
        let dir = std::path::PathBuf::from(
            std::env::var("FJORD_FUZZ_SEEDS").expect("set FJORD_FUZZ_SEEDS to a directory"),
        );
        std::fs::create_dir_all(&dir).unwrap();
        let mut frames = populated_requests();
        frames.extend(synthesized_requests(false));
        frames.extend(synthesized_requests(true));
        for (name, frame) in frames {
            std::fs::write(dir.join(name.to_lowercase()), frame).unwrap();
        }
    }
}
