//! Snapshots of tenants that hold words and states the rest of the system accepts: every
//! word a tenant stores (through its writes, or copied from a verified base) is one its
//! snapshot restores, so that a snapshot of any tenant reached through the public API
//! restores to a tenant that observes the same.

use cowheap_forwarders::Base;
use cowheap_heap::{Builder, Format, Value, Word, synth};
use cowheap_tenants::Tenant;
use std::sync::Arc;

/// A tag-`010` word with a bit set above its 32-bit code point: no character
/// (`Word::as_char_code` refuses it), yet an immediate to the builder, to verification and to
/// a tenant's writes, which store it as it is.
fn wide_char_word() -> Word {
    Word::from_bits(1 << 40 | 0b010)
}

/// Snapshot `t`, restore it on its base, and check that what `read` observes is the same.
fn round_trip<T: PartialEq + std::fmt::Debug>(t: &Tenant, read: impl Fn(&Tenant) -> T) {
    let base = t.base().clone();
    let bytes = t.snapshot();
    let back = Tenant::restore_from(&base, &bytes)
        .unwrap_or_else(|e| panic!("a snapshot of a tenant the API made is refused: {e}"));
    assert_eq!(read(&back), read(t));
    // Past the header, the quota and the counters (reads count lookups).
    const PAST_COUNTERS: usize = 88 + 8 + 7 * 8;
    assert_eq!(
        back.snapshot()[PAST_COUNTERS..],
        bytes[PAST_COUNTERS..],
        "a second round trip is the same"
    );
}

#[test]
fn an_immediate_a_tenant_stores_survives_its_snapshot() {
    let base = Base::new(synth::image(300, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let w = wide_char_word();
    assert!(w.is_immediate() && w.is_valid() && w.as_char_code().is_none());
    t.set_slot(g, 0, Value::shared(w)).unwrap();
    t.set_root("wide", Value::shared(w)).unwrap();
    assert_eq!(t.slot(g, 0).unwrap().word(), w);
    round_trip(&t, |t| {
        (t.slot(g, 0).unwrap().word(), t.root("wide").unwrap().word())
    });
}

#[test]
fn a_copy_of_a_built_base_object_survives_its_snapshot() {
    // The builder (and so a verified image file) accepts the word in a slot.
    let mut b = Builder::new();
    let nil = b.add_nil();
    let obj = b
        .add(nil, Format::Pointers, vec![wide_char_word(), nil], vec![])
        .unwrap();
    b.add_root("obj", obj).unwrap();
    let heap = b.freeze().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.cowheap");
    heap.save(&path).unwrap();
    let base: Arc<Base> = Base::new(cowheap_heap::BaseHeap::open(&path).unwrap());
    let obj = base.heap().root("obj").unwrap();
    let mut t = Tenant::fork(&base);
    // A first write copies the object, the word with it.
    t.set_slot(obj, 1, Value::int(3)).unwrap();
    round_trip(&t, |t| {
        (
            t.slot(obj, 0).unwrap().word(),
            t.slot(obj, 1).unwrap().as_int(),
        )
    });
}
