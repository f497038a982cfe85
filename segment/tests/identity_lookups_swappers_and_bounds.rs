//! Identity collections placed as the image's own `scanFor:` probes them (V3 and Spur), the
//! method lookups of [`Hasher`] on long superclass chains, one swapper per tenant, and
//! what the out-pointer table of a project may cost in memory.
//!
//! - An `IdentitySet` and an `IdentityDictionary` of Symbols and plain objects, scattered
//!   over their tables and rehashed, answer the image's own `includes:` and
//!   `includesKey:`, run by the interpreter, for every key: in `mini.image` (V3) and in the
//!   headless Spur image.
//! - A `hash` method above a superclass chain of more than a thousand classes is found from
//!   every class of the chain, and the lookups of all of them walk each class once.
//! - A second swapper's swap-out on a tenant with segments out through another is refused
//!   before anything changes, and the first swapper's segments still come back.
//! - A project whose out-pointers Array holds millions of nils (a few kilobytes gzipped) is
//!   refused with a typed error, not described entry by entry.
//! - The boxed Floats of the Etoys projects materialised in `mini.image` hold the doubles of
//!   the segment's words, in the layout of the tenant's Float class.

mod common;
#[path = "common/hashed.rs"]
mod hashed;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::image_hash::Hasher;
use cowheap_segment::rehash;
use cowheap_segment::swap::{MemStore, SwapError, Swapper};
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm};
use hashed::{alloc, pair, permutation};
use std::sync::Arc;

const BUDGET: u64 = 5_000_000;

/// An IdentitySet and an IdentityDictionary of `keys` in `t`, scattered over `n` slots
/// (not where any hash leads), rehashed; then the image's own `includes:` and
/// `includesKey:` are asked for each key. Answers the keys not found.
fn identity_collections_found_by_the_image(base: &Arc<Base>, keys_from: &[&str]) -> Vec<String> {
    let names = BaseNames::of(base.heap()).unwrap();
    // A class by its global, else by its name (the headless image's `Smalltalk` does not
    // name `IdentitySet` and `IdentityDictionary`).
    let g = |n: &str| {
        names.global(n).unwrap_or_else(|| {
            let heap = base.heap();
            heap.indices()
                .find(|&x| cowheap_squeak::class_name(heap, x).as_deref() == Some(n))
                .map(Value::base)
                .unwrap_or_else(|| panic!("no {n}"))
        })
    };
    let mut t = Tenant::fork(base);
    let mut keys: Vec<Value> = keys_from.iter().filter_map(|s| names.symbol(s)).collect();
    assert!(keys.len() >= 6, "{} symbols", keys.len());
    for _ in 0..6 {
        keys.push(alloc(&mut t, g("Object"), Format::Pointers, 0, 0));
    }
    let n = 2 * keys.len() + 3;
    let order = permutation(n, 0x9e37_79b9);
    let set = alloc(&mut t, g("IdentitySet"), Format::Pointers, 2, 0);
    let set_array = alloc(&mut t, g("Array"), Format::Pointers, n, 0);
    let dict = alloc(&mut t, g("IdentityDictionary"), Format::Pointers, 2, 0);
    let dict_array = alloc(&mut t, g("Array"), Format::Pointers, n, 0);
    for (c, a) in [(set, set_array), (dict, dict_array)] {
        t.set_slot(c, 0, Value::int(keys.len() as i64)).unwrap();
        t.set_slot(c, 1, a).unwrap();
    }
    for (i, (&k, &at)) in keys.iter().zip(&order).enumerate() {
        t.set_slot(set_array, at, k).unwrap();
        let assoc = pair(&mut t, g("Association"), k, Value::int(i as i64));
        t.set_slot(dict_array, at, assoc).unwrap();
    }
    let r = rehash::rehash(&mut t, &names, &[set, dict]).unwrap();
    assert_eq!(r.collections, 2, "{r}");
    assert!(r.not_rehashed.is_empty(), "{r}");
    let symbols = Symbols::from_base(base.heap());
    let mut vm = Vm::new(&t).unwrap();
    let held: Vec<_> = [set, dict]
        .iter()
        .chain(&keys)
        .map(|&v| t.pin(v).unwrap())
        .collect();
    let mut missed = Vec::new();
    for i in 0..keys.len() {
        let (set, dict, k) = (
            t.pinned(held[0]).unwrap(),
            t.pinned(held[1]).unwrap(),
            t.pinned(held[2 + i]).unwrap(),
        );
        // The model's own lookup agrees with where the elements are.
        assert!(rehash::lookup(&t, &names, dict, k).unwrap().is_some());
        for (c, sel) in [(set, "includes:"), (dict, "includesKey:")] {
            let found = vm
                .send_named(&mut t, &symbols, c, sel, &[k], BUDGET)
                .unwrap();
            let class = t.class_of(found).unwrap().word().as_base().unwrap();
            if cowheap_squeak::class_name(base.heap(), class).as_deref() != Some("True") {
                missed.push(format!("{sel} key {i}"));
            }
        }
    }
    missed
}

const SYMBOLS: [&str; 12] = [
    "size",
    "at:",
    "printString",
    "new",
    "value",
    "do:",
    "hash",
    "=",
    "class",
    "yourself",
    "add:",
    "includes:",
];

#[test]
fn v3_identity_collections_answer_the_images_lookups() {
    let base = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let missed = identity_collections_found_by_the_image(&base, &SYMBOLS);
    assert!(missed.is_empty(), "{missed:?}");
}

#[test]
fn spur_identity_collections_answer_the_images_lookups() {
    let base = Base::new(
        cowheap_squeak::import(image("headless-spur32.image"))
            .unwrap()
            .heap,
    );
    let missed = identity_collections_found_by_the_image(&base, &SYMBOLS);
    assert!(missed.is_empty(), "{missed:?}");
}

/// A class of the tenant under `superclass` with the method dictionary `md`, made as an
/// instance of `metaclass`.
fn class_on(t: &mut Tenant, metaclass: Value, superclass: Value, md: Value) -> Value {
    let class = alloc(t, metaclass, Format::Pointers, 3, 0);
    t.set_slot(class, 0, superclass).unwrap();
    t.set_slot(class, 1, md).unwrap();
    t.set_slot(class, 2, Value::int(2)).unwrap();
    class
}

/// A superclass chain of 1,500 classes below one that holds `hash` (a quick return of 2):
/// the method is found from every class of the chain, as the VM's lookup, which has no
/// bound on a chain, finds it; and the lookups from all 1,500 walk each class once, not a
/// thousand classes each.
#[test]
fn a_method_above_a_long_chain_is_found_from_every_class_walking_each_once() {
    let base = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let names = BaseNames::of(base.heap()).unwrap();
    let g = |n: &str| names.global(n).unwrap();
    let mut t = Tenant::fork(&base);
    let nil = base.heap().nil();
    let hash = names.symbol("hash").unwrap();
    // `^2`: primitive 263 (a quick return of 2), one bytecode.
    let two = alloc(&mut t, g("CompiledMethod"), Format::CompiledMethod, 1, 1);
    t.set_slot(two, 0, Value::int(263)).unwrap();
    t.set_bytes(two, 0, &[120]).unwrap();
    let md = alloc(&mut t, g("MethodDictionary"), Format::Pointers, 3, 0);
    let values = alloc(&mut t, g("Array"), Format::Pointers, 1, 0);
    t.set_slot(md, 0, Value::int(1)).unwrap();
    t.set_slot(md, 1, values).unwrap();
    t.set_slot(md, 2, hash).unwrap();
    t.set_slot(values, 0, two).unwrap();
    let metaclass = t.class_of(g("Object")).unwrap();
    let top = class_on(&mut t, metaclass, nil, md);
    let empty = alloc(&mut t, g("MethodDictionary"), Format::Pointers, 2, 0);
    t.set_slot(empty, 0, Value::int(0)).unwrap();
    let no_values = alloc(&mut t, g("Array"), Format::Pointers, 0, 0);
    t.set_slot(empty, 1, no_values).unwrap();
    let mut chain = vec![top];
    for _ in 0..1_500 {
        let c = class_on(&mut t, metaclass, *chain.last().unwrap(), empty);
        chain.push(c);
    }
    let mut hasher = Hasher::new(base.heap(), &names);
    // From the bottom up: each lookup starts below the classes of the one before.
    for (depth, &c) in chain.iter().enumerate().rev() {
        let x = alloc(&mut t, c, Format::Pointers, 0, 0);
        assert_eq!(
            hasher.hash(&t, x).unwrap(),
            Ok(2),
            "an instance of the class {depth} below the method"
        );
    }
    assert!(
        hasher.classes_walked() <= 2 * chain.len() as u64,
        "{} classes walked for a chain of {}",
        hasher.classes_walked(),
        chain.len()
    );
}

/// A tenant has one swapper: a second swapper's swap-out, while the tenant has a segment
/// out through the first, is refused with a typed error before anything changes (it would
/// replace the tenant's fault handler and segment reader, and the first swapper's segment
/// could then be neither read nor faulted in), and the first swapper's segment still reads
/// and comes back.
#[test]
fn a_second_swapper_on_a_tenant_with_segments_out_is_refused() {
    let base = Base::new(synth::image(300, 5));
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let a = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let b = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[a, b], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    let first = Swapper::new(MemStore::new());
    let second = Swapper::new(MemStore::new());
    let out = first.swap_out(&mut t, &[a]).unwrap();
    let private = t.stats().private_bytes;
    match second.swap_out(&mut t, &[b]) {
        Err(SwapError::OtherSwapper { segment }) => assert_eq!(segment, out.id),
        other => panic!("a second swapper's swap-out answered {other:?}"),
    }
    assert!(second.swapped().is_empty());
    assert_eq!(t.stub_segment(b).unwrap(), None);
    assert_eq!(t.stats().private_bytes, private);
    // The first swapper's segment reads through its stub, and comes back on a write.
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(1));
    t.set_slot(a, 0, Value::int(3)).unwrap();
    assert_eq!(t.stub_segment(a).unwrap(), None);
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(3));
    // With nothing out through the first, the second may serve the tenant.
    second.swap_out(&mut t, &[b]).unwrap();
    assert_eq!(t.slot(b, 0).unwrap().as_int(), Some(2));
    second.fault_in(&mut t, second.swapped()[0].0).unwrap();
}

/// The binary stream of a project whose ImageSegment's out-pointers are an Array of
/// `outs` nils (one byte each in the stream), with a one-object segment (its roots array,
/// which refers to none of them).
fn project_of_nils(outs: u32) -> Vec<u8> {
    let mut s = b"'x'!\r!self smartRefStream!".to_vec();
    s.extend([9, 0, 0, 0, 4, 6, 12]);
    s.extend(b"ImageSegment");
    s.extend([1, 18, 0, 0, 0, 2]); // nil; a WordArray: the 6502 version, a roots array
    s.extend(6502u32.to_le_bytes());
    s.extend(((3u32 << 12) | (2 << 8) | (1 << 2) | 3).to_le_bytes());
    s.push(8);
    s.extend(outs.to_be_bytes());
    s.extend(std::iter::repeat_n(1u8, outs as usize));
    s.push(b'!');
    s
}

/// An out-pointers Array of nils one past the bound, a byte each in the stream, is refused
/// with a typed error before it is described (a 72-byte `OutPointer` each, and a binding
/// each after: at the stream's own bound of 2^24 values, 16 MiB of stream and a few
/// kilobytes gzipped, 1.2 GB); a table of a few nils is read.
#[test]
fn an_out_pointer_table_past_what_a_segment_can_name_is_refused() {
    use cowheap_segment::{Project, SegmentError};
    let s = project_of_nils((1 << 20) + 1);
    match Project::from_bytes(&s) {
        Err(SegmentError::TooLarge { what, .. }) => {
            assert!(what.contains("out-pointers"), "{what}")
        }
        Ok(p) => panic!(
            "described {} out-pointers ({} bytes) for a {}-byte stream",
            p.out_pointers.len(),
            p.out_pointers.len() * std::mem::size_of::<cowheap_segment::OutPointer>(),
            s.len()
        ),
        Err(e) => panic!("another error: {e}"),
    }
    let p = Project::from_bytes(&project_of_nils(5)).unwrap();
    assert_eq!(p.out_pointers.len(), 5);
}

/// The boxed Floats of the Etoys projects materialised in `mini.image` hold the doubles the
/// segment's words hold (high word first in a V3 segment), as the tenant's Float class
/// keeps them: little-endian bytes that `Value::as_f64`-style reads and the interpreter's
/// float primitives take (the class is the special objects array's Float, slot 9, of the
/// tenant's version).
#[test]
fn materialised_floats_hold_the_segments_doubles() {
    use cowheap_segment::{Project, bind};
    let base = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let heap = base.heap();
    let special = heap.root("specialObjects").unwrap();
    let float = heap.get_slot(heap.index_of(special).unwrap(), 9).unwrap();
    let mut floats = 0;
    for project in [
        "JustPaintedCar.013.pr",
        "BouncingBallAnimation.012.pr",
        "CarAndPen.014.pr",
        "AgeComparison.005.pr",
    ] {
        let p = Project::open(image(&format!("segments/{project}"))).unwrap();
        let mut t = Tenant::fork(&base);
        let m = bind::materialise(&mut t, &p, "segment").unwrap();
        for (o, v) in p.segment.objects.iter().zip(&m.objects) {
            let Some(v) = *v else { continue };
            if t.class_of(v).unwrap().word() != float || o.raw.len() != 2 {
                continue;
            }
            floats += 1;
            let bits = (u64::from(o.raw[0]) << 32) | u64::from(o.raw[1]);
            assert_eq!(
                t.bytes(v).unwrap(),
                bits.to_le_bytes(),
                "{project}: a Float of {}",
                f64::from_bits(bits)
            );
        }
    }
    assert!(floats > 0, "no Float in the projects");
}
