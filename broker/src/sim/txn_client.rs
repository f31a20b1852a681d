//! The transactional client of the simulation: a few producers, each running one
//! transaction at a time on the partition, and acting as its own transaction
//! coordinator for the markers (the leader writes them as WriteTxnMarkers asks).
//!
//! A transaction starts with a bumped producer epoch; its data batches go one at a
//! time, acks=all. It ends with a commit or abort marker, retried until the ISR holds
//! it. A data batch that fails or times out ends the transaction with an abort under a
//! bumped epoch (KIP-588), so a late copy of the batch is fenced rather than opening a
//! transaction nobody ends; a marker delayed past the next transaction is fenced the
//! same way. Once faults stop no transaction starts, and the open ones are ended.

use kafka_protocol::error::ResponseError;

use super::broker::REQUEST_TIMEOUT_MS;
use super::net::{Msg, Rng};

const PRODUCERS: i64 = 3;

/// A transaction whose marker the ISR holds.
#[derive(Debug, Clone)]
pub(super) struct EndedTxn {
    pub producer_id: i64,
    pub commit: bool,
    /// Its acknowledged data batches' offsets.
    pub offsets: Vec<i64>,
}

enum State {
    Idle,
    /// Every batch sent so far was acknowledged, at `offsets`.
    Open {
        offsets: Vec<i64>,
        next_seq: i32,
        in_flight: Option<(u64, i64)>,
    },
    Ending {
        commit: bool,
        offsets: Vec<i64>,
        in_flight: Option<(u64, i64)>,
    },
}

struct Producer {
    producer_id: i64,
    epoch: i16,
    state: State,
}

pub(super) struct TxnClient {
    producers: Vec<Producer>,
    pub ended: Vec<EndedTxn>,
    /// Acknowledged data batches and markers.
    pub acked: usize,
}

impl TxnClient {
    pub fn new() -> TxnClient {
        TxnClient {
            producers: (1..=PRODUCERS)
                .map(|producer_id| Producer {
                    producer_id,
                    epoch: 0,
                    state: State::Idle,
                })
                .collect(),
            ended: Vec::new(),
            acked: 0,
        }
    }

    /// This step's requests (for the partition's leader); transactions start only
    /// while `start_new`.
    pub fn step(
        &mut self,
        rng: &mut Rng,
        now: i64,
        next_id: &mut u64,
        start_new: bool,
    ) -> Vec<Msg> {
        let mut sends = Vec::new();
        for p in &mut self.producers {
            let mut id = || {
                let id = *next_id;
                *next_id += 1;
                id
            };
            let timed_out = |sent: i64| now - sent > REQUEST_TIMEOUT_MS;
            match &mut p.state {
                State::Idle => {
                    if start_new && rng.chance(10) {
                        p.epoch += 1;
                        p.state = State::Open {
                            offsets: Vec::new(),
                            next_seq: 0,
                            in_flight: None,
                        };
                    }
                }
                State::Open {
                    offsets,
                    next_seq,
                    in_flight,
                } => match *in_flight {
                    Some((_, sent)) if timed_out(sent) => {
                        p.epoch += 1;
                        p.state = State::Ending {
                            commit: false,
                            offsets: std::mem::take(offsets),
                            in_flight: None,
                        };
                    }
                    Some(_) => {}
                    None if !offsets.is_empty() && (!start_new || rng.chance(25)) => {
                        p.state = State::Ending {
                            commit: rng.chance(70),
                            offsets: std::mem::take(offsets),
                            in_flight: None,
                        };
                    }
                    None => {
                        if rng.chance(30) || !start_new {
                            let id = id();
                            *in_flight = Some((id, now));
                            sends.push(Msg::TxnProduce {
                                id,
                                producer_id: p.producer_id,
                                epoch: p.epoch,
                                seq: *next_seq,
                            });
                        }
                    }
                },
                State::Ending { .. } => {}
            }
            if let State::Ending {
                commit, in_flight, ..
            } = &mut p.state
            {
                if in_flight.is_none_or(|(_, sent)| timed_out(sent)) {
                    let id = id();
                    *in_flight = Some((id, now));
                    sends.push(Msg::TxnMarker {
                        id,
                        producer_id: p.producer_id,
                        epoch: p.epoch,
                        commit: *commit,
                    });
                }
            }
        }
        sends
    }

    /// The answer to request `id`; `None` when it is not one of this client's in
    /// flight (a late answer to a request given up on).
    pub fn on_reply(&mut self, id: u64, result: Result<i64, ResponseError>) -> Option<String> {
        for p in &mut self.producers {
            let pid = p.producer_id;
            match &mut p.state {
                State::Open {
                    offsets,
                    next_seq,
                    in_flight,
                } if in_flight.is_some_and(|(i, _)| i == id) => {
                    *in_flight = None;
                    return Some(match result {
                        Ok(offset) => {
                            offsets.push(offset);
                            *next_seq += 1;
                            self.acked += 1;
                            format!("client: producer {pid} batch {id} acked at {offset}")
                        }
                        Err(code) => {
                            p.epoch += 1;
                            p.state = State::Ending {
                                commit: false,
                                offsets: std::mem::take(offsets),
                                in_flight: None,
                            };
                            format!("client: producer {pid} batch {id} failed {code:?}; aborting")
                        }
                    });
                }
                State::Ending {
                    commit,
                    offsets,
                    in_flight,
                } if in_flight.is_some_and(|(i, _)| i == id) => {
                    *in_flight = None;
                    return Some(match result {
                        Ok(offset) => {
                            let line = format!(
                                "client: producer {pid} {} marker acked at {offset}",
                                if *commit { "commit" } else { "abort" }
                            );
                            self.ended.push(EndedTxn {
                                producer_id: pid,
                                commit: *commit,
                                offsets: std::mem::take(offsets),
                            });
                            self.acked += 1;
                            p.state = State::Idle;
                            line
                        }
                        Err(code) => format!("client: producer {pid} marker failed {code:?}"),
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// (producer id, first offset) of each open transaction with acknowledged data
    /// and no marker sent: the last stable offset may not pass it.
    pub fn open(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers.iter().filter_map(|p| match &p.state {
            State::Open { offsets, .. } => offsets.first().map(|&f| (p.producer_id, f)),
            _ => None,
        })
    }

    pub fn all_ended(&self) -> bool {
        self.producers
            .iter()
            .all(|p| matches!(p.state, State::Idle))
    }
}
