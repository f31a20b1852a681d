//! The broker-wide budget of request bytes being read (Kafka's
//! `queued.max.request.bytes`).
//!
//! Once a frame's size has arrived, its reader reserves that many bytes of the budget
//! before reading the rest, and gives them back when the frame is read. While the
//! budget is taken, readers wait in arrival order (the semaphore is fair), so memory
//! stays bounded and valid requests are delayed rather than refused, as in Kafka,
//! where a broker out of request memory stops reading sockets until some is freed.
//! Readers that never finish are bounded in time by the connection's frame deadline.
//!
//! Two exceptions keep the broker serving under pressure:
//! - A frame of at most [`GUARANTEED_FRAME_BYTES`] never waits: every connection may
//!   read one small request even when the budget is exhausted (as TCP guarantees each
//!   socket `tcp_rmem[0]` of receive buffer under memory pressure). Clients' metadata,
//!   heartbeat, fetch and small produce requests stay served while stalled large frames
//!   hold the budget; the cost is bounded by `max.connections` times this size.
//! - A frame larger than the whole budget reserves all of it: it is read once nothing
//!   else holds room, and alone.
//!
//! Memory held by frames being read is thus at most the budget, plus
//! [`GUARANTEED_FRAME_BYTES`] per connection, or one frame larger than the budget.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Frames up to this size are read without waiting for room (see the module doc).
pub const GUARANTEED_FRAME_BYTES: u32 = 16 * 1024;

/// How the read of one frame is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Read at once, outside the budget.
    Guaranteed,
    /// Wait until this many bytes of the budget are free.
    Wait(u32),
}

/// How a frame of `size` bytes is admitted against a budget of `budget_bytes`.
pub fn admission(size: u32, budget_bytes: u64) -> Admission {
    if size <= GUARANTEED_FRAME_BYTES {
        Admission::Guaranteed
    } else {
        // Clamped to the budget, a larger frame waits for all of it and reads alone.
        Admission::Wait(u64::from(size).min(budget_bytes) as u32)
    }
}

/// The budget shared by every connection.
pub struct RequestBudget {
    room: Arc<Semaphore>,
    budget_bytes: u64,
    /// Bytes of frames being read, guaranteed ones included.
    reserved: IntGauge,
}

impl RequestBudget {
    pub fn new(budget_bytes: u64, reserved: IntGauge) -> RequestBudget {
        let budget_bytes = budget_bytes.clamp(1, Semaphore::MAX_PERMITS as u64);
        RequestBudget {
            room: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
            reserved,
        }
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Room for a frame of `size` bytes, once there is some (see [`admission`]). The
    /// wait is cancel-safe: dropping it leaves the queue.
    pub async fn reserve(&self, size: u32) -> Reservation {
        let permit = match admission(size, self.budget_bytes) {
            Admission::Guaranteed => None,
            Admission::Wait(bytes) => Some(
                self.room
                    .clone()
                    .acquire_many_owned(bytes)
                    .await
                    .expect("the budget's semaphore is never closed"),
            ),
        };
        self.reserved.add(i64::from(size));
        Reservation {
            _permit: permit,
            size,
            reserved: self.reserved.clone(),
        }
    }
}

/// Room for one frame being read; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    size: u32,
    reserved: IntGauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.sub(i64::from(self.size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    const MIB: u32 = 1 << 20;

    fn budget(bytes: u64) -> RequestBudget {
        RequestBudget::new(bytes, IntGauge::new("reserved", "test").unwrap())
    }

    #[test]
    fn small_frames_are_guaranteed_larger_ones_wait_for_at_most_the_budget() {
        let b = 10 * u64::from(MIB);
        assert_eq!(admission(0, b), Admission::Guaranteed);
        assert_eq!(admission(GUARANTEED_FRAME_BYTES, b), Admission::Guaranteed);
        assert_eq!(
            admission(GUARANTEED_FRAME_BYTES + 1, b),
            Admission::Wait(GUARANTEED_FRAME_BYTES + 1)
        );
        assert_eq!(admission(10 * MIB, b), Admission::Wait(10 * MIB));
        assert_eq!(admission(10 * MIB + 1, b), Admission::Wait(10 * MIB));
        assert_eq!(admission(u32::MAX, b), Admission::Wait(10 * MIB));
        // A budget below the guaranteed size still admits larger frames, one at a time.
        assert_eq!(admission(GUARANTEED_FRAME_BYTES + 1, 1), Admission::Wait(1));
    }

    #[tokio::test]
    async fn a_full_budget_makes_the_next_frame_wait_until_room_is_given_back() {
        let b = budget(4 * u64::from(MIB));
        let first = b.reserve(3 * MIB).await;
        // Exactly the rest of the budget fits.
        let second = b
            .reserve(MIB)
            .now_or_never()
            .expect("exactly the rest fits");
        assert_eq!(b.reserved.get(), 4 * i64::from(MIB));
        let mut third = Box::pin(b.reserve(GUARANTEED_FRAME_BYTES + 1));
        assert!((&mut third).now_or_never().is_none(), "one byte over waits");
        // A small frame is read even now, and counted.
        let small = b
            .reserve(GUARANTEED_FRAME_BYTES)
            .now_or_never()
            .expect("a guaranteed frame never waits");
        assert_eq!(
            b.reserved.get(),
            4 * i64::from(MIB) + i64::from(GUARANTEED_FRAME_BYTES)
        );
        drop(small);
        assert!(
            (&mut third).now_or_never().is_none(),
            "no room given back yet"
        );
        drop(second);
        let third = third.now_or_never().expect("room given back");
        drop((first, third));
        assert_eq!(b.reserved.get(), 0);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_is_read_alone() {
        let b = budget(u64::from(MIB));
        let held = b.reserve(MIB / 2).await;
        let mut huge = Box::pin(b.reserve(100 * MIB));
        assert!(
            (&mut huge).now_or_never().is_none(),
            "waits while anything holds room"
        );
        drop(held);
        let huge = huge.now_or_never().expect("read once the budget is free");
        assert_eq!(b.reserved.get(), 100 * i64::from(MIB));
        assert!(
            b.reserve(GUARANTEED_FRAME_BYTES + 1)
                .now_or_never()
                .is_none(),
            "nothing else waits its way in beside it"
        );
        drop(huge);
        assert_eq!(b.reserved.get(), 0);
    }

    #[tokio::test]
    async fn waiting_frames_get_room_in_arrival_order() {
        let b = budget(u64::from(MIB));
        let held = b.reserve(MIB).await;
        let mut large = Box::pin(b.reserve(MIB));
        let mut small = Box::pin(b.reserve(MIB / 2));
        assert!((&mut large).now_or_never().is_none());
        assert!((&mut small).now_or_never().is_none());
        drop(held);
        // The smaller frame would fit beside nothing else, but the larger came first.
        let large = (&mut large).now_or_never().expect("first in line");
        assert!((&mut small).now_or_never().is_none());
        drop(large);
        small.now_or_never().expect("next in line");
    }

    #[tokio::test]
    async fn a_wait_given_up_leaves_the_queue() {
        let b = budget(u64::from(MIB));
        let held = b.reserve(MIB).await;
        let mut gone = Box::pin(b.reserve(MIB));
        assert!((&mut gone).now_or_never().is_none());
        let mut next = Box::pin(b.reserve(MIB));
        assert!((&mut next).now_or_never().is_none());
        drop(gone);
        drop(held);
        let next = next
            .now_or_never()
            .expect("the abandoned wait holds nothing");
        assert_eq!(b.reserved.get(), i64::from(MIB));
        drop(next);
        assert_eq!(b.reserved.get(), 0);
    }
}
