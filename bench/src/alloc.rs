//! A counting global allocator: how many bytes a tenant holds, measured rather than estimated.
//!
//! [`CountingAlloc`] forwards every call to the system allocator and counts the bytes asked
//! for, process-wide and per thread. The `cowheap` binary installs it; a program or test that
//! wants the bench's memory figures installs it too:
//!
//! ```
//! use cowheap_bench::alloc::{CountingAlloc, Meter};
//!
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let meter = Meter::start();
//!     let v = vec![0u8; 4096];
//!     assert!(CountingAlloc::counting());
//!     assert_eq!(meter.bytes(), 4096);
//!     drop(v);
//!     assert_eq!(meter.bytes(), 0);
//! }
//! ```
//!
//! Without the allocator installed nothing is counted, and [`CountingAlloc::counting`] says
//! so, so a report can say its memory figures are missing rather than zero.
//!
//! The per-thread count is what the bench uses: a tenant is worked by one thread at a time,
//! so the growth of that thread's count while it works the tenant is what the tenant
//! allocated, whatever other threads do meanwhile. Bytes freed on a thread other than the one
//! that allocated them move between the two threads' counts; the process-wide count is exact.
//! Counts are of bytes requested (`Layout::size`), not of the allocator's rounding or headers.
#![allow(
    unsafe_code,
    reason = "a global allocator is an `unsafe impl`; every method forwards to `System`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The system allocator, counting. See the module doc.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAlloc;

/// Bytes allocated and not yet freed, process-wide.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// Bytes ever allocated, process-wide.
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Set by the first allocation that goes through [`CountingAlloc`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. `const`-initialised and without a
    /// destructor, so reaching it never allocates and never fails, even while the thread
    /// exits: the allocator may touch it at any time.
    static THREAD_LIVE: Cell<i64> = const { Cell::new(0) };
}

/// Counts `delta` bytes (negative for a free) and, if positive, `delta` more bytes ever.
#[inline]
fn count(delta: i64) {
    // Relaxed: these are statistics. A reader reads them after the work it measures, on the
    // same thread (per-thread count) or after joining the workers (the process count), and
    // the join orders everything before it; no other memory is published through them.
    LIVE.fetch_add(delta, Ordering::Relaxed);
    if delta > 0 {
        TOTAL.fetch_add(delta as u64, Ordering::Relaxed);
    }
    // `try_with` cannot fail for a const, drop-free thread local; ignore it if it ever does.
    let _ = THREAD_LIVE.try_with(|c| c.set(c.get() + delta));
}

// SAFETY: every method passes its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, and returns what `System` returned; the counting touches only
// atomics and a drop-free thread local, which neither allocate nor unwind. So each method keeps
// exactly the contract `System` keeps.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size); forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_installed();
            count(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_installed();
            count(layout.size() as i64);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: `ptr` was returned by this allocator, that is by `System`, for `layout`,
        // as the caller guarantees; forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from this allocator (so from `System`) with
        // `layout`, and that `new_size` is valid for it; forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[inline]
fn note_installed() {
    // Relaxed: a flag that only ever goes from false to true and guards no other data.
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

impl CountingAlloc {
    /// True once an allocation has gone through `CountingAlloc`, that is, if it is the global
    /// allocator; the counts are all zero otherwise.
    pub fn counting() -> bool {
        INSTALLED.load(Ordering::Relaxed)
    }

    /// Bytes allocated and not yet freed in the whole process.
    pub fn live_bytes() -> i64 {
        LIVE.load(Ordering::Relaxed)
    }

    /// Bytes ever allocated in the whole process.
    pub fn total_bytes() -> u64 {
        TOTAL.load(Ordering::Relaxed)
    }

    /// Bytes allocated minus bytes freed by the calling thread.
    pub fn thread_live_bytes() -> i64 {
        THREAD_LIVE.try_with(Cell::get).unwrap_or(0)
    }
}

/// The growth of the calling thread's live bytes since [`Meter::start`].
///
/// ```
/// use cowheap_bench::alloc::{CountingAlloc, Meter};
///
/// #[global_allocator]
/// static ALLOC: CountingAlloc = CountingAlloc;
///
/// fn main() {
///     let m = Meter::start();
///     let b = Box::new([0u64; 16]);
///     assert_eq!(m.bytes(), 128);
///     drop(b);
///     assert_eq!(m.bytes(), 0);
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Meter {
    start: i64,
}

impl Meter {
    /// Starts measuring on this thread.
    pub fn start() -> Meter {
        Meter {
            start: CountingAlloc::thread_live_bytes(),
        }
    }

    /// Bytes this thread allocated and did not free since the start (negative if it freed
    /// more than it allocated).
    pub fn bytes(&self) -> i64 {
        CountingAlloc::thread_live_bytes() - self.start
    }
}
