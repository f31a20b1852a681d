//! The librdkafka client context of the e2e programs.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Errors and warnings librdkafka reports outside any one request (connection refused,
/// broker down): printed, since they explain a slow or failed run; a run fails only
/// through a delivery or consume error.
pub struct Diagnostics;

impl ClientContext for Diagnostics {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if level as i32 <= RDKafkaLogLevel::Warning as i32 {
            eprintln!("librdkafka {level:?} {fac}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("librdkafka error: {error}: {reason}");
    }
}

impl ConsumerContext for Diagnostics {}
