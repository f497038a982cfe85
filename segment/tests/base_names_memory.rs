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

/// `h` built again with `edit` applied to each object's slots, and `extra` objects after
/// its own (each a class word, a format, slots, bytes), exported and imported back.
fn rebuilt(
    good: &cowheap_squeak::Imported,
    edit: impl Fn(ObjectIndex, &mut Vec<Word>),
    extra: Vec<(Word, Format, Vec<Word>, Vec<u8>)>,
) -> (cowheap_heap::BaseHeap, usize) {
    let h = &good.heap;
    let mut b = Builder::new();
    for x in h.indices() {
        let o = h.object(x).unwrap();
        let mut slots = o.slots.to_vec();
        edit(x, &mut slots);
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
    for (k, (class, format, slots, bytes)) in extra.into_iter().enumerate() {
        let w = b.add(class, format, slots, bytes).unwrap();
        b.set_hash(w, k as u32 + 1).unwrap();
    }
    for r in h.roots() {
        b.add_root(&r.name, r.value).unwrap();
    }
    let file = cowheap_squeak::export_bytes(&b.freeze().unwrap(), good.format).unwrap();
    (
        cowheap_squeak::import_bytes(&file).unwrap().heap,
        file.len(),
    )
}

/// Held by each test throughout: the counters are the process's, so one test at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The live bytes `f` makes at its peak.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = NOW.load(Relaxed);
    PEAK.store(before, Relaxed);
    let t = f();
    (t, PEAK.load(Relaxed) - before)
}

#[test]
fn base_names_copy_a_key_named_again_and_again_once() {
    let _one = one_at_a_time();
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
    let (heap, file_len) = rebuilt(
        &good,
        |x, slots| {
            if x == st {
                slots[1] = Word::base(arr);
            }
            if Some(x) == assoc.as_base() {
                slots[0] = Word::base(big);
            }
        },
        vec![
            (
                h.class_word(key).unwrap(),
                Format::Bytes,
                vec![],
                vec![b'A'; 20_000],
            ),
            (
                h.class_word(array).unwrap(),
                Format::Pointers,
                vec![assoc; 10_000],
                vec![],
            ),
        ],
    );
    let (names, extra) = peak_of(|| BaseNames::of(&heap).unwrap());
    assert!(
        extra < 10 * file_len,
        "{extra} bytes for a {file_len}-byte image"
    );
    // The long key is a global still.
    let long = "A".repeat(20_000);
    assert!(names.global(&long).is_some(), "the long key is a global");
}

/// A class whose instance variable names are one 20,000-byte String named 10,000 times
/// costs its names' budget, not their copies: `portable` names the class as a global
/// instead, and `all_inst_var_names` answers none.
#[test]
fn a_class_naming_one_long_name_again_and_again_is_not_copied() {
    let _one = one_at_a_time();
    let good = cowheap_squeak::import(common::image("mini.image")).unwrap();
    let h = &good.heap;
    let names = BaseNames::of(h).unwrap();
    let class = names.global("Rectangle").unwrap().word().as_base().unwrap();
    // Rectangle's own names array (`origin corner`), at slot 3 or 4 by the image's age.
    let text = |w: Word| {
        w.as_base()
            .and_then(|x| h.object(x).ok())
            .map(|o| o.bytes.to_vec())
    };
    let (slot, own) = [3, 4]
        .into_iter()
        .find_map(|i| {
            let a = h.get_slot(class, i)?.as_base()?;
            let o = h.object(a).ok()?;
            let texts: Vec<_> = o.slots.iter().map(|&w| text(w)).collect();
            (texts == [Some(b"origin".to_vec()), Some(b"corner".to_vec())]).then_some((i, a))
        })
        .expect("Rectangle's names: origin corner");
    let array = h.class_word(own).unwrap();
    let string = h
        .class_word(h.object(own).unwrap().slots[0].as_base().unwrap())
        .unwrap();
    let long = Word::base(ObjectIndex::new(h.len()).unwrap());
    let arr = Word::base(ObjectIndex::new(h.len() + 1).unwrap());
    let (heap, file_len) = rebuilt(
        &good,
        |x, slots| {
            if x == class {
                slots[slot] = arr;
            }
        },
        vec![
            (string, Format::Bytes, vec![], vec![b'n'; 20_000]),
            (array, Format::Pointers, vec![long; 10_000], vec![]),
        ],
    );
    let names = BaseNames::of(&heap).unwrap();
    let (ivars, extra) = peak_of(|| names.all_inst_var_names(&heap, class));
    assert!(ivars.is_none(), "names past the budget are none");
    assert!(
        extra < 10 * file_len,
        "{extra} bytes for a {file_len}-byte image"
    );
    let (_, extra) = peak_of(|| names.portable(&heap, class));
    assert!(
        extra < 10 * file_len,
        "{extra} bytes for a {file_len}-byte image"
    );
}
