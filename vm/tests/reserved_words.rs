//! Words that are neither an object nor an immediate with a class (a character tag with
//! bits set past 32 bits of code point, the reserved tags): the flat heap and a tenant
//! answer the same error for their class, and for every read that needs an object.

use cowheap_forwarders::Base;
use cowheap_heap::{Value, Word};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory};

/// The Debug forms of what `m` answers for the class, size and first slot of `v`.
fn answers<M: ObjectMemory>(m: &M, v: Value) -> [String; 3] {
    [
        format!("{:?}", m.class_of(v)),
        format!("{:?}", m.size(v)),
        format!("{:?}", m.slot(v, 0)),
    ]
}

#[test]
fn the_flat_heap_and_a_tenant_refuse_reserved_words_alike() {
    let (heap, _) = cowheap_vm::synth::SynthImage::new(false).freeze().unwrap();
    let flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let t = Tenant::fork(&base);
    // A character tag (010) with a bit past the 32-bit code point; the reserved tags.
    for bits in [
        (1u64 << 40) | 0b010,
        0b110,
        (5 << 3) | 0b110,
        0b1010 << 8 | 0b110,
    ] {
        let v = Value::shared(Word::from_bits(bits));
        assert!(v.word().as_char_code().is_none() && !v.word().is_ref());
        let (on_flat, on_tenant) = (answers(&flat, v), answers(&t, v));
        assert_eq!(on_flat, on_tenant, "{bits:#x}");
        assert!(
            on_flat.iter().all(|a| a.starts_with("Err")),
            "{bits:#x}: {on_flat:?}"
        );
    }
}
