//! Spur segment words: tenant segments of the V3 `mini.image` and of the Spur
//! `headless-spur32.image` written as Spur words in both word sizes and byte orders, read
//! back byte-identical and member by member equal to the segment they came from; every
//! truncation and every bit flip of a small one refused with a typed error or read and
//! written back unchanged; random bytes never panic.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::spur::{SpurOop, SpurSegment, WordSize};
use cowheap_segment::spur_export::{from_spur, to_spur};
use cowheap_segment::tenant::{self, TenantSegment};
use cowheap_segment::v3::ByteOrder;
use cowheap_tenants::Tenant;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

const SHAPES: [(ByteOrder, WordSize); 4] = [
    (ByteOrder::Little, WordSize::W32),
    (ByteOrder::Big, WordSize::W32),
    (ByteOrder::Little, WordSize::W64),
    (ByteOrder::Big, WordSize::W64),
];

fn base(name: &str) -> &'static (Arc<Base>, BaseNames) {
    static MINI: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    static SPUR: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    let cell = if name == "mini.image" { &MINI } else { &SPUR };
    cell.get_or_init(|| {
        let b = Base::new(cowheap_squeak::import(image(name)).unwrap().heap);
        let n = BaseNames::of(b.heap()).unwrap();
        (b, n)
    })
}

fn alloc(t: &mut Tenant, class: Value, format: Format, slots: usize, bytes: usize) -> Value {
    t.alloc(class, format, ObjectSize { slots, bytes }).unwrap()
}

/// A small graph under one holder Array: Strings of every length 0-9, a ByteArray, a Point
/// of SmallIntegers, a Float, an Array of 300 slots (an overflow header) holding integers
/// at the edges of the 31-bit range, a cycle, and an Array shared by two others.
fn graph(t: &mut Tenant, names: &BaseNames, extra: &[i64]) -> Value {
    let g = |n: &str| names.global(n).unwrap_or_else(|| panic!("no {n}"));
    let mut parts = Vec::new();
    for len in 0..10 {
        let s = alloc(t, g("String"), Format::Bytes, 0, len);
        let text: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
        t.set_bytes(s, 0, &text).unwrap();
        parts.push(s);
    }
    let ba = alloc(t, g("ByteArray"), Format::Bytes, 0, 5);
    t.set_bytes(ba, 0, &[1, 2, 3, 250, 255]).unwrap();
    parts.push(ba);
    let p = alloc(t, g("Point"), Format::Pointers, 2, 0);
    t.set_slot(p, 0, Value::int(3)).unwrap();
    t.set_slot(p, 1, Value::int(-4)).unwrap();
    parts.push(p);
    let f = alloc(t, g("Float"), Format::Words, 0, 8);
    t.set_bytes(f, 0, &1.5f64.to_bits().to_le_bytes()).unwrap();
    parts.push(f);
    let big = alloc(t, g("Array"), Format::Pointers, 300, 0);
    let ints = [0, 1, -1, (1 << 30) - 1, -(1 << 30)];
    for (i, &v) in ints.iter().chain(extra).enumerate() {
        t.set_slot(big, i % 300, Value::int(v)).unwrap();
    }
    parts.push(big);
    let shared = alloc(t, g("Array"), Format::Pointers, 1, 0);
    let a = alloc(t, g("Array"), Format::Pointers, 2, 0);
    let b = alloc(t, g("Array"), Format::Pointers, 2, 0);
    t.set_slot(a, 0, shared).unwrap();
    t.set_slot(b, 0, shared).unwrap();
    t.set_slot(a, 1, b).unwrap();
    t.set_slot(b, 1, a).unwrap();
    t.set_slot(shared, 0, names.symbol("size").unwrap())
        .unwrap();
    parts.extend([a, b]);
    let holder = alloc(t, g("Array"), Format::Pointers, parts.len(), 0);
    for (i, &v) in parts.iter().enumerate() {
        t.set_slot(holder, i, v).unwrap();
    }
    holder
}

fn segment_of(name: &str, extra: &[i64]) -> (TenantSegment, &'static Arc<Base>) {
    let (b, names) = base(name);
    let mut t = Tenant::fork(b);
    let holder = graph(&mut t, names, extra);
    (tenant::extract(&t, &[holder], &[]).unwrap(), b)
}

/// Writes, reads, writes again, and compares every member with the segment's.
fn round_trip(seg: &TenantSegment, b: &Base, order: ByteOrder, words: WordSize) -> Vec<u8> {
    let e = to_spur(seg, b.heap(), order, words, b's').unwrap();
    let bytes = e.segment.to_bytes().unwrap();
    let back = SpurSegment::parse(&bytes, e.out.len()).unwrap();
    assert_eq!(back, e.segment, "{order:?} {words:?}");
    assert_eq!(back.to_bytes().unwrap(), bytes, "byte-identical");
    assert_eq!(back.order, order);
    assert_eq!(back.words, words);
    assert_eq!(back.objects.len(), seg.objects.len() + 1);
    let (members, roots) = from_spur(&back).unwrap();
    assert_eq!(roots, seg.roots);
    assert_eq!(members.len(), seg.objects.len());
    for (i, (m, o)) in members.iter().zip(&seg.objects).enumerate() {
        assert_eq!(m.class, o.class, "member {i}");
        assert_eq!(m.format, o.format, "member {i}");
        assert_eq!(m.hash, o.hash & 0x3F_FFFF, "member {i}");
        assert_eq!(m.slots, o.slots, "member {i}");
        assert_eq!(m.bytes, o.bytes, "member {i}");
    }
    assert_eq!(e.out[1..], seg.out[..]);
    bytes
}

#[test]
fn tenant_segments_round_trip_in_every_word_size_and_byte_order() {
    for name in ["mini.image", "headless-spur32.image"] {
        let (seg, b) = segment_of(name, &[]);
        let mut sizes = Vec::new();
        for (order, words) in SHAPES {
            let bytes = round_trip(&seg, b, order, words);
            sizes.push(bytes.len());
            // 8-byte alignment, the version word first, out-pointer 1 the roots' class.
            assert_eq!(bytes.len() % 8, 0);
            let v = match order {
                ByteOrder::Little => u32::from_le_bytes(bytes[..4].try_into().unwrap()),
                ByteOrder::Big => u32::from_be_bytes(bytes[..4].try_into().unwrap()),
            };
            let want = if words == WordSize::W32 { 6521 } else { 68021 };
            assert_eq!(v, 0x7300_0000 | want);
            let s = SpurSegment::parse(&bytes, seg.out.len() + 1).unwrap();
            assert_eq!(s.objects[0].class, SpurOop::Out(1));
            assert_eq!(s.roots(), &[SpurOop::Obj(1)]);
        }
        eprintln!(
            "{name}: {} members, {} out-pointers; bytes (LE32, BE32, LE64, BE64): {sizes:?}",
            seg.objects.len(),
            seg.out.len()
        );
        // The two byte orders differ, and mirror each other's word count.
        assert_eq!(sizes[0], sizes[1]);
        assert_eq!(sizes[2], sizes[3]);
        assert!(sizes[2] > sizes[0]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any SmallIntegers of the 31-bit range, anywhere in the graph, round-trip.
    #[test]
    fn random_integers_round_trip(extra in prop::collection::vec(-(1i64 << 30)..(1 << 30), 0..40), shape in 0usize..4) {
        let (seg, b) = segment_of("mini.image", &extra);
        let (order, words) = SHAPES[shape];
        round_trip(&seg, b, order, words);
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512), outs in 0usize..8) {
        let _ = SpurSegment::parse(&b, outs);
        let mut with_version = b.clone();
        if with_version.len() >= 8 {
            with_version[..4].copy_from_slice(&(0x7300_0000u32 | 6521).to_le_bytes());
            let _ = SpurSegment::parse(&with_version, outs);
            with_version[..4].copy_from_slice(&(0x7300_0000u32 | 68021).to_be_bytes());
            let _ = SpurSegment::parse(&with_version, outs);
        }
    }
}

/// A small segment: a String, a Point and an Array of 300 slots.
fn small(order: ByteOrder, words: WordSize) -> (Vec<u8>, usize) {
    let (b, names) = base("mini.image");
    let mut t = Tenant::fork(b);
    let g = |n: &str| names.global(n).unwrap();
    let s = alloc(&mut t, g("String"), Format::Bytes, 0, 3);
    t.set_bytes(s, 0, b"abc").unwrap();
    let p = alloc(&mut t, g("Point"), Format::Pointers, 2, 0);
    t.set_slot(p, 0, s).unwrap();
    t.set_slot(p, 1, Value::int(7)).unwrap();
    let big = alloc(&mut t, g("Array"), Format::Pointers, 300, 0);
    t.set_slot(big, 299, p).unwrap();
    let seg = tenant::extract(&t, &[big], &[]).unwrap();
    let e = to_spur(&seg, b.heap(), order, words, b's').unwrap();
    (e.segment.to_bytes().unwrap(), e.out.len())
}

#[test]
fn every_truncation_of_a_small_segment_is_a_typed_error() {
    for (order, words) in SHAPES {
        let (bytes, outs) = small(order, words);
        assert!(SpurSegment::parse(&bytes, outs).is_ok());
        for len in 0..bytes.len() {
            assert!(
                SpurSegment::parse(&bytes[..len], outs).is_err(),
                "{order:?} {words:?}: a truncation to {len} of {} bytes parsed",
                bytes.len()
            );
        }
    }
}

#[test]
fn every_bit_flip_of_a_small_segment_is_refused_or_harmless() {
    for (order, words) in SHAPES {
        let (bytes, outs) = small(order, words);
        let (mut refused, mut harmless) = (0, 0);
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                match SpurSegment::parse(&b, outs) {
                    Err(_) => refused += 1,
                    Ok(s) => {
                        // A flip the format cannot see (a byte of the String, an integer, a
                        // hash, a flag) reads as what it says and writes back unchanged.
                        assert_eq!(s.to_bytes().unwrap(), b, "flip {bit} of byte {at}");
                        harmless += 1;
                    }
                }
            }
        }
        eprintln!(
            "{order:?} {words:?}: {} bytes, {refused} flips refused, {harmless} read as written",
            bytes.len()
        );
        assert!(refused > 0 && harmless > 0);
    }
}
