//! Words that name no object and are no immediate with a class: a character tag with bits
//! set past its 32-bit code point (a reserved word), and a base tag with bits set above its
//! 32-bit index (no word at all, which a tenant refuses as invalid wherever it meets one).
//! The flat heap and a tenant answer the same for every read of one: the same error, or,
//! for an identity compare of a reserved word with itself, the same answer.

use cowheap_forwarders::Base;
use cowheap_heap::{Value, Word};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory};

/// The Debug forms of what `m` answers for each read of `v`.
fn answers<M: ObjectMemory>(m: &M, v: Value) -> Vec<String> {
    vec![
        format!("class {:?}", m.class_of(v)),
        format!("slot {:?}", m.slot(v, 0)),
        format!("bytes {:?}", m.bytes(v)),
        format!("size {:?}", m.size(v)),
        format!("format {:?}", m.format(v)),
        format!("header {:?}", m.header(v).map(|_| ())),
        format!("identical {:?}", m.identical(v, v)),
        format!("hash {:?}", m.identity_hash(v)),
        format!("key {:?}", m.identity_key(v).map(|_| ())),
    ]
}

#[test]
fn the_flat_heap_and_a_tenant_refuse_words_that_name_no_object_alike() {
    let (heap, _) = cowheap_vm::synth::SynthImage::new(false).freeze().unwrap();
    let flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let t = Tenant::fork(&base);
    let reserved = [(1u64 << 40) | 0b010, (1 << 35) | (9 << 3) | 0b010];
    let invalid = [1u64 << 40, (1 << 35) | (7 << 3)];
    for bits in reserved.into_iter().chain(invalid) {
        let v = Value::shared(Word::from_bits(bits));
        assert!(v.word().as_char_code().is_none() && !v.word().is_ref());
        let (on_flat, on_tenant) = (answers(&flat, v), answers(&t, v));
        assert_eq!(on_flat, on_tenant, "{bits:#x}");
        let errors = on_flat.iter().filter(|a| a.contains("Err")).count();
        if invalid.contains(&bits) {
            assert_eq!(errors, on_flat.len(), "{bits:#x}: {on_flat:?}");
            assert!(
                on_flat.iter().all(|a| a.contains("InvalidWord")),
                "{on_flat:?}"
            );
        } else {
            // Every read but the identity compare and key, which a reserved word has.
            assert_eq!(errors, on_flat.len() - 2, "{bits:#x}: {on_flat:?}");
        }
    }
}
