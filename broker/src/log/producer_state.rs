//! Idempotent producer state: the last sequence ranges per producer id.
