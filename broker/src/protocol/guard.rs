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

use super::layout::{Api, Field, Ty};
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
                .map(|f| match f.ty {
                    // A null struct is its presence byte alone.
                    Ty::Struct(_) if f.nullable.contains(version) => 1,
                    _ => min_size(&f.ty, f.compact_in(version, flexible), version, flexible),
                })
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
        Ty::Struct(fields) => {
            if nullable {
                // A nullable struct is preceded by a presence byte: -1 null, 1 present.
                // The decoder reads any other value as null; refusing it keeps the two
                // from reading the bytes after it differently.
                match r.take(1, "struct presence")?[0] as i8 {
                    -1 => return Ok(()),
                    1 => {}
                    other => {
                        return Err(Fail::new(format!(
                            "struct presence byte is {other}, not -1 (null) or 1"
                        )))
                    }
                }
            }
            check_struct(r, fields, version, flexible, depth + 1)
        }
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
#[path = "guard_tests.rs"]
mod tests;
