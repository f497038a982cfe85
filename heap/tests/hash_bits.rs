//! The width of the identity hashes a tenant draws on a base ([`BaseHeap::hash_bits`]): the
//! root [`HASH_BITS_ROOT`] names it, a heap file keeps it, and a root that is no small
//! integer from 1 to 22 is refused (by the one constructor that both the builder and an
//! opened file go through).

use cowheap_heap::{BaseHeap, Builder, Error, Format, HASH_BITS_ROOT, MAX_HASH_BITS};
use cowheap_heap::{Word, synth};

/// A small heap (nil and one object) with `root` as its hash width root, if any.
fn heap_with(root: Option<Word>) -> Result<BaseHeap, Error> {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![], vec![]).unwrap();
    b.set_class(nil, class).unwrap();
    b.add_root("thing", class).unwrap();
    if let Some(w) = root {
        b.add_root(HASH_BITS_ROOT, w).unwrap();
    }
    b.freeze()
}

#[test]
fn a_base_without_the_root_draws_the_widest_hashes() {
    assert_eq!(heap_with(None).unwrap().hash_bits(), MAX_HASH_BITS);
    assert_eq!(synth::image(100, 1).hash_bits(), MAX_HASH_BITS);
}

#[test]
fn the_root_names_the_width_and_a_file_keeps_it() {
    let heap = heap_with(Some(Word::int(12).unwrap())).unwrap();
    assert_eq!(heap.hash_bits(), 12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.cowheap");
    heap.save(&path).unwrap();
    assert_eq!(BaseHeap::open(&path).unwrap().hash_bits(), 12);
}

#[test]
fn a_width_root_out_of_range_is_refused() {
    let class_ref = Word::base(cowheap_heap::ObjectIndex::from_u32(1));
    for bad in [
        Word::int(0).unwrap(),
        Word::int(-3).unwrap(),
        Word::int(23).unwrap(),
        Word::char_code(12),
        class_ref,
    ] {
        assert!(
            matches!(heap_with(Some(bad)), Err(Error::Corrupt(_))),
            "{bad:?} as the hash width"
        );
    }
}
