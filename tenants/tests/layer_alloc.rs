//! A layer's body count is read from the file: a forged one must not make the reader
//! allocate more than the layer's own size (its own binary: it installs a global allocator
//! that records the largest allocation).

use cowheap_tenants::commit::Layer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's own arguments, so
// it keeps `GlobalAlloc`'s contract exactly as `System` does; the atomic only records sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::SeqCst);
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Largest = Largest;

#[test]
fn a_forged_body_count_allocates_no_more_than_the_layer() {
    let n: u64 = 1_000_000;
    let mut b = Vec::new();
    b.extend_from_slice(b"CHLAYER1");
    b.extend_from_slice(&[0; 64]); // origin, parent fingerprint
    b.extend_from_slice(&0u64.to_le_bytes()); // parent version
    b.extend_from_slice(&0u64.to_le_bytes()); // objects
    b.extend_from_slice(&0u64.to_le_bytes()); // no changed objects
    b.extend_from_slice(&n.to_le_bytes()); // n bodies claimed,
    b.extend(std::iter::repeat_n(0xFF, 29 * n as usize)); // 29 bytes each, an unknown format
    b.extend_from_slice(blake3::hash(&b).as_bytes());
    LARGEST.store(0, Ordering::SeqCst);
    assert!(
        Layer::from_bytes(&b).is_err(),
        "an unknown format is refused"
    );
    let largest = LARGEST.load(Ordering::SeqCst);
    assert!(
        largest <= b.len(),
        "one allocation of {largest} bytes for a {}-byte layer",
        b.len()
    );
}
