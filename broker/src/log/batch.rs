//! RecordBatch (magic v2) header parsing and validation.
