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
//! that allocated them move between the two threads' counts. Counts are of bytes requested
//! (`Layout::size`), not of the allocator's rounding or headers.
//!
//! **What counting costs the measured paths.** Every count is kept in the allocating thread's
//! own thread-local cells: an allocation or free adds to them with plain loads and stores, and
//! touches no shared cache line, so threads that allocate at once do not contend on a counter.
//! The process-wide counts are folded in from a thread's cells when the thread ends or when it
//! reads a process-wide count ([`CountingAlloc::live_bytes`], [`CountingAlloc::total_bytes`]):
//! they are exact for the threads that have ended (the bench reads them after joining its
//! workers) and for the calling thread, and leave out what other running threads did since
//! they last folded. (Before, every allocation made two atomic read-modify-writes on two
//! process-wide counters, a cache line every allocating thread fought over.)
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

/// Bytes allocated and not yet freed, process-wide, as folded in by the threads.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// Bytes ever allocated, process-wide, as folded in by the threads.
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Set by the first allocation that goes through [`CountingAlloc`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// One thread's counts. Only the thread itself touches them.
struct Local {
    /// Bytes allocated minus bytes freed by this thread, ever: what [`Meter`] reads.
    live: Cell<i64>,
    /// Of `live`'s changes, those not yet folded into [`LIVE`].
    pending_live: Cell<i64>,
    /// Bytes allocated by this thread and not yet folded into [`TOTAL`].
    pending_total: Cell<u64>,
}

impl Local {
    /// Adds this thread's pending counts to the process-wide ones.
    fn fold(&self) {
        // Relaxed: these are statistics. A reader folds its own counts before reading (program
        // order), and reads other threads' after joining them, and the join orders their
        // folds, run as they end, before it; no other memory is published through them.
        LIVE.fetch_add(self.pending_live.replace(0), Ordering::Relaxed);
        TOTAL.fetch_add(self.pending_total.replace(0), Ordering::Relaxed);
    }
}

impl Drop for Local {
    /// A thread's counts join the process-wide ones when it ends.
    fn drop(&mut self) {
        self.fold();
    }
}

thread_local! {
    /// This thread's counts. `const`-initialised, so reaching it never allocates; its
    /// destructor (the fold) touches only atomics. Once it has run, while the thread exits,
    /// `try_with` fails and [`count`] counts straight into the process-wide counters.
    static LOCAL: Local = const {
        Local {
            live: Cell::new(0),
            pending_live: Cell::new(0),
            pending_total: Cell::new(0),
        }
    };
}

/// Counts `delta` bytes (negative for a free) and, if positive, `delta` more bytes ever.
#[inline]
fn count(delta: i64) {
    let added = delta.max(0) as u64;
    let local = LOCAL.try_with(|l| {
        l.live.set(l.live.get() + delta);
        l.pending_live.set(l.pending_live.get() + delta);
        l.pending_total.set(l.pending_total.get() + added);
    });
    if local.is_err() {
        // The thread's cells are gone (it is exiting): count process-wide at once. Relaxed,
        // as in `Local::fold`.
        LIVE.fetch_add(delta, Ordering::Relaxed);
        TOTAL.fetch_add(added, Ordering::Relaxed);
    }
}

/// Folds the calling thread's pending counts into the process-wide ones.
fn fold_here() {
    let _ = LOCAL.try_with(Local::fold);
}

// SAFETY: every method passes its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, and returns what `System` returned; the counting touches only
// thread-local cells (or, once they are gone, atomics), which neither allocate nor unwind. So each method keeps
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

    /// Bytes allocated and not yet freed in the whole process: by the threads that have
    /// ended and the calling thread, exactly; other running threads count as of their last
    /// fold (see the module doc). Time: O(1).
    pub fn live_bytes() -> i64 {
        fold_here();
        LIVE.load(Ordering::Relaxed)
    }

    /// Bytes ever allocated in the whole process, counted as [`CountingAlloc::live_bytes`]
    /// counts. Time: O(1).
    ///
    /// ```
    /// use cowheap_bench::alloc::CountingAlloc;
    ///
    /// #[global_allocator]
    /// static ALLOC: CountingAlloc = CountingAlloc;
    ///
    /// fn main() {
    ///     let (live, total) = (CountingAlloc::live_bytes(), CountingAlloc::total_bytes());
    ///     // A thread's allocations join the process-wide counts when it ends.
    ///     let kept = std::thread::spawn(|| vec![1u8; 1000]).join().unwrap();
    ///     assert!(CountingAlloc::live_bytes() - live >= 1000);
    ///     assert!(CountingAlloc::total_bytes() - total >= 1000);
    ///     drop(kept);
    ///     assert!(CountingAlloc::live_bytes() - live < 1000);
    /// }
    /// ```
    pub fn total_bytes() -> u64 {
        fold_here();
        TOTAL.load(Ordering::Relaxed)
    }

    /// Bytes allocated minus bytes freed by the calling thread. Time: O(1).
    pub fn thread_live_bytes() -> i64 {
        LOCAL.try_with(|l| l.live.get()).unwrap_or(0)
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
