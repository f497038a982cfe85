//! Test support: [`Refusing`], a global allocator that refuses chosen large allocations of
//! the calling thread, so that a test can check what an operation does when the allocator
//! says no part-way; and [`reseal_image`], which makes the digests of an image file a test
//! changed on purpose right again.
//!
//! A test binary installs it and then arms it around the operation:
//!
//! ```
//! use cowheap_testkit::{Refusing, refusing_the};
//!
//! #[global_allocator]
//! static ALLOC: Refusing = Refusing;
//!
//! fn main() {
//!     // The first large allocation is refused, and a fallible reservation says so.
//!     let (answer, refused) = refusing_the(0, || Vec::<u8>::new().try_reserve(1 << 20));
//!     assert!(refused && answer.is_err());
//!     // Disarmed again: the same reservation succeeds.
//!     assert!(Vec::<u8>::new().try_reserve(1 << 20).is_ok());
//! }
//! ```
//!
//! Only allocations of at least [`LARGE`] bytes are refused: the library reserves its
//! large memory fallibly, while a small bookkeeping allocation that failed would end the
//! process, as everywhere in Rust. Other threads, and the thread while disarmed, allocate
//! as usual.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Allocations at least this large may be refused.
pub const LARGE: usize = 4096;

/// Passes every allocation to [`System`], but for the large ones the current thread is
/// armed to refuse ([`refusing_the`], [`refusing_from`], [`refuse_after`]): those it
/// answers with null, which Rust's fallible reservations report as an error.
#[derive(Debug)]
pub struct Refusing;

thread_local! {
    /// Large allocations still to allow before one is refused; `usize::MAX`: never refuse.
    static ALLOW: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Large allocations refused so far.
    static REFUSED: Cell<usize> = const { Cell::new(0) };
    /// Once one is refused, refuse every later one too (memory that stays short).
    static PERSIST: Cell<bool> = const { Cell::new(false) };
}

impl Refusing {
    /// True if this allocation is the one to refuse.
    fn refuse(size: usize) -> bool {
        if size < LARGE {
            return false;
        }
        ALLOW.with(|a| match a.get() {
            usize::MAX => false,
            0 => {
                if !PERSIST.with(Cell::get) {
                    a.set(usize::MAX);
                }
                REFUSED.with(|r| r.set(r.get() + 1));
                true
            }
            n => {
                a.set(n - 1);
                false
            }
        })
    }
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged, except
// that `alloc` may answer null instead, which `GlobalAlloc` allows (it reports that the
// memory could not be had). `realloc` and `alloc_zeroed` keep their default forms, which
// call `alloc` and so refuse the same way. The thread-locals are `const`-initialised cells
// with no destructor, which on Linux live in the thread's static TLS block: reading them
// allocates nothing, so the allocator is never re-entered. (Where thread-locals are made
// with OS keys, the first access of a thread may allocate.)
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Refusing::refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Arms this thread: the `n`-th large allocation from now on (0: the next) is refused,
/// once. Where [`Refusing`] is not the global allocator, nothing is refused.
pub fn refuse_after(n: usize) {
    ALLOW.with(|a| a.set(n));
}

/// Disarms this thread: nothing more is refused.
pub fn disarm() {
    ALLOW.with(|a| a.set(usize::MAX));
    PERSIST.with(|p| p.set(false));
}

/// Large allocations this thread has had refused so far.
pub fn refused() -> usize {
    REFUSED.with(Cell::get)
}

/// Disarms the thread when dropped, so that a panic in the armed code leaves nothing armed.
struct Disarm;

impl Drop for Disarm {
    fn drop(&mut self) {
        disarm();
    }
}

/// Runs `f` with the `n`-th large allocation of this thread refused; answers its result and
/// whether a refusal happened. The thread is disarmed afterwards, even if `f` panics.
pub fn refusing_the<T>(n: usize, f: impl FnOnce() -> T) -> (T, bool) {
    let before = refused();
    let _disarm = Disarm;
    refuse_after(n);
    let out = f();
    drop(_disarm);
    (out, refused() > before)
}

/// Runs `f` with the `n`-th large allocation of this thread and every later one refused;
/// answers its result and whether a refusal happened. The thread is disarmed afterwards,
/// even if `f` panics.
pub fn refusing_from<T>(n: usize, f: impl FnOnce() -> T) -> (T, bool) {
    let _disarm = Disarm;
    PERSIST.with(|p| p.set(true));
    refusing_the(n, f)
}

/// Recomputes a cowheap image file's three section digests and its header digest after a
/// test changed its bytes, so that what opens it checks the change itself (a hostile file
/// whose checksums are right), not only the checksums. A section whose extent lies past
/// the bytes keeps its digest; bytes too short for a header are left as they are.
pub fn reseal_image(b: &mut [u8]) {
    if b.len() < 232 {
        return;
    }
    let u = |b: &[u8], at: usize| {
        usize::try_from(u64::from_le_bytes(
            b[at..at + 8].try_into().unwrap_or_default(),
        ))
        .unwrap_or(usize::MAX)
    };
    for k in 0..3 {
        let e = 64 + k * 56;
        let (at, len) = (u(b, e + 8), u(b, e + 16));
        if let Some(s) = at.checked_add(len).and_then(|end| b.get(at..end)) {
            let d = *blake3::hash(s).as_bytes();
            b[e + 24..e + 56].copy_from_slice(&d);
        }
    }
    let mut h = blake3::Hasher::new();
    h.update(&b[..40]);
    h.update(&b[64..232]);
    let d = *h.finalize().as_bytes();
    b[40..56].copy_from_slice(&d[..16]);
}

/// Makes a FIFO at `path`, replacing a file there: a path that names no regular file, for
/// tests that such a path is refused at once where a file is read.
///
/// # Panics
/// If `mkfifo` fails.
pub fn mkfifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// How long [`answer_within`] waits for an answer that should come at once.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` on a thread of its own and answers what it answers, or `None` if it gave no
/// answer within [`PATIENCE`]: for a call given the FIFO at `fifo` that must refuse it at
/// once rather than wait for a writer. A thread still waiting is let go (a writer opens
/// the FIFO and closes it at once, which also ends a read of it) and joined, so it does
/// not outlive the test.
pub fn answer_within<T: Send + 'static>(
    fifo: &std::path::Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let answer = rx.recv_timeout(PATIENCE).ok();
    if answer.is_none() {
        drop(std::fs::OpenOptions::new().write(true).open(fifo));
    }
    let _ = worker.join();
    answer
}
