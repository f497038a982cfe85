//! A hostile base whose Smalltalk dictionary names one long key ten thousand times makes
//! `BaseNames::of` copy it once, not once per Association (its own binary: it installs a
//! global allocator that records the peak of live bytes).

mod common;

use cowheap_heap::{Builder, Format, ObjectIndex, Word};
use cowheap_segment::bind::BaseNames;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Peak;

// SAFETY: every call forwards to the system allocator with the caller's own arguments, so
// it keeps `GlobalAlloc`'s contract exactly as `System` does; the atomics only count bytes.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        PEAK.fetch_max(NOW.fetch_add(l.size(), Relaxed) + l.size(), Relaxed);
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Relaxed);
        // SAFETY: `p` came from `System.alloc` with this layout (above).
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Peak = Peak;

#[test]
fn base_names_copy_a_key_named_again_and_again_once() {
    let good = cowheap_squeak::import(common::image("mini.image")).unwrap();
    let h = &good.heap;
    let st = h.index_of(h.root("Smalltalk").unwrap()).unwrap();
    let array = h.object(st).unwrap().slots[1].as_base().unwrap();
    let assoc = *h
        .object(array)
        .unwrap()
        .slots
        .iter()
        .find(|w| {
            w.as_base()
                .is_some_and(|a| h.object(a).unwrap().slots.len() >= 2)
        })
        .unwrap();
    let key = h.object(assoc.as_base().unwrap()).unwrap().slots[0]
        .as_base()
        .unwrap();
    // The same image with one Association's key a 20,000-byte String and the Smalltalk
    // array 10,000 references to that Association.
    let big = ObjectIndex::new(h.len()).unwrap();
    let arr = ObjectIndex::new(h.len() + 1).unwrap();
    let mut b = Builder::new();
    for x in h.indices() {
        let o = h.object(x).unwrap();
        let mut slots = o.slots.to_vec();
        if x == st {
            slots[1] = Word::base(arr);
        }
        if Some(x) == assoc.as_base() {
            slots[0] = Word::base(big);
        }
        let w = if x == h.nil().as_base().unwrap() {
            let w = b.add_nil();
            b.set_class(w, o.class).unwrap();
            w
        } else {
            b.add(o.class, o.format, slots, o.bytes.to_vec()).unwrap()
        };
        b.set_hash(w, o.hash).unwrap();
        b.set_aux(w, o.aux).unwrap();
    }
    let k = b
        .add(
            h.class_word(key).unwrap(),
            Format::Bytes,
            vec![],
            vec![b'A'; 20_000],
        )
        .unwrap();
    let a = b
        .add(
            h.class_word(array).unwrap(),
            Format::Pointers,
            vec![assoc; 10_000],
            vec![],
        )
        .unwrap();
    b.set_hash(k, 1).unwrap();
    b.set_hash(a, 2).unwrap();
    for r in h.roots() {
        b.add_root(&r.name, r.value).unwrap();
    }
    let file = cowheap_squeak::export_bytes(&b.freeze().unwrap(), good.format).unwrap();
    let heap = cowheap_squeak::import_bytes(&file).unwrap().heap;

    PEAK.store(NOW.load(Relaxed), Relaxed);
    let before = NOW.load(Relaxed);
    let names = BaseNames::of(&heap).unwrap();
    let extra = PEAK.load(Relaxed) - before;
    assert!(
        extra < 10 * file.len(),
        "{extra} bytes for a {}-byte image",
        file.len()
    );
    // The long key is a global still, bound to the Association's value.
    let long = "A".repeat(20_000);
    assert!(names.global(&long).is_some(), "the long key is a global");
}
