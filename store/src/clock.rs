//! The clock leases are measured against, injected so tests move time by hand.

use crate::Millis;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells the time for leases. Every node of a deployment must agree on it to within a small
/// fraction of the lease (see the crate doc).
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told: for tests of lease expiry without sleeping.
///
/// ```
/// use cowheap_store::{Clock, ManualClock, Millis};
/// let c = ManualClock::new(Millis(1_000));
/// c.advance(500);
/// assert_eq!(c.now(), Millis(1_500));
/// ```
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `start`. Clones share the same time.
    pub fn new(start: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(start.0)))
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&self, ms: u64) {
        // Relaxed: the time is one independent value; the store's own locks and transactions
        // order everything read after it.
        self.0.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets the time.
    pub fn set(&self, t: Millis) {
        // Relaxed: as in `advance`.
        self.0.store(t.0, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        // Relaxed: as in `advance`.
        Millis(self.0.load(Ordering::Relaxed))
    }
}
