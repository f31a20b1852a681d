//! The layout vocabulary of the generated request table (`schemas.rs`) that the
//! request guard interprets.

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
