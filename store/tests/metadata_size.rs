//! A local store's metadata files (tenant records, principals' files) are small, and are
//! read as such: a file grown huge in a record's place, here a sparse 1 GiB one, is refused
//! as damaged having read a bounded number of bytes, never reserving its length. The binary
//! runs under an allocator that refuses, and counts, every allocation past a cap.

use cowheap_store::{Access, LocalStore, PrincipalName, Store, StoreError, SystemClock};
use cowheap_store::{TenantName, fingerprint_hex};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations larger than this are refused: far more than any metadata file needs, far
/// less than the 1 GiB file.
const CAP: usize = 16 << 20;

/// Forwards to [`System`], refusing (and counting) every allocation larger than [`CAP`].
struct Capping;

/// Allocations refused so far.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged, except
// that `alloc` answers null for a layout past the cap, which `GlobalAlloc` allows (it
// reports that the memory could not be had). `realloc` and `alloc_zeroed` keep their
// default forms, which go through `alloc` and so refuse the same way. Counting is one
// atomic add, which allocates nothing.
unsafe impl GlobalAlloc for Capping {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            // Relaxed: one independent counter, read after the operation on the same thread.
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires of it.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` (through `alloc` above) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Capping = Capping;

/// Replaces `path` by a sparse file of 1 GiB (no disk blocks, only a length).
fn sparse_gib(path: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(1 << 30).unwrap();
}

#[test]
fn a_sparse_gib_metadata_file_is_refused_as_damaged_without_reserving_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let op = LocalStore::init(root, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([5; 32]);
    op.put_base(fp, b"a base").unwrap();
    let p1 = PrincipalName::new("p1").unwrap();
    op.add_principal(&p1, "s1").unwrap();
    let t = TenantName::new("t").unwrap();
    op.create_tenant(&t, fp, Some(&p1)).unwrap();

    // A tenant record.
    sparse_gib(&root.join("tenants/t.rec"));
    let r = op.record(&t);
    assert!(matches!(r, Err(StoreError::Damaged { .. })), "{r:?}");
    let r = op.tenants();
    assert!(matches!(r, Err(StoreError::Damaged { .. })), "{r:?}");
    // A principal's file.
    sparse_gib(&root.join("principals/p1"));
    let r = LocalStore::open(root, Arc::new(SystemClock), Access::principal(p1, "s1"));
    assert!(matches!(r, Err(StoreError::Damaged { .. })), "{r:?}");
    // A base's pointer.
    sparse_gib(&root.join("bases").join(fingerprint_hex(&fp)));
    let r = op.get_base(fp);
    assert!(matches!(r, Err(StoreError::Damaged { .. })), "{r:?}");
    assert_eq!(
        REFUSED.load(Ordering::Relaxed),
        0,
        "a large allocation was asked for"
    );
}
