//! The Kafka wire protocol at the edge: framing, the request guard, and the
//! advertised API versions.

pub mod guard;
