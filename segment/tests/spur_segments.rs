//! Spur segment words: tenant segments of the V3 `mini.image` and of the Spur
//! `headless-spur32.image` written as Spur words in both word sizes and byte orders, read
//! back byte-identical and member by member equal to the segment they came from, then
//! imported into another tenant of the base and compared object by object with the graph
//! they were extracted from (a real Spur CompiledMethod among them); a 64-bit base (the
//! headless image exported as 64-bit Spur) with 61-bit integers, which only the 64-bit words
//! hold; every truncation and every bit flip of a small one refused with a typed error or
//! read and written back unchanged; random bytes never panic; random graphs of every
//! format (pointers, weak, bytes, 16-, 32- and 64-bit units) round-trip and import equal.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::spur::{SpurOop, SpurSegment, WordSize};
use cowheap_segment::spur_export::{from_spur, letter_for, to_segment, to_spur};
use cowheap_segment::tenant::SRef;
use cowheap_segment::tenant::{self, TenantSegment};
use cowheap_segment::v3::ByteOrder;
use cowheap_tenants::Tenant;
use proptest::prelude::*;
use std::sync::Arc;

const SHAPES: [(ByteOrder, WordSize); 4] = [
    (ByteOrder::Little, WordSize::W32),
    (ByteOrder::Big, WordSize::W32),
    (ByteOrder::Little, WordSize::W64),
    (ByteOrder::Big, WordSize::W64),
];

/// A small graph under one holder Array: Strings of every length 0-9, a ByteArray, a Point
/// of SmallIntegers, a Float, an Array of 300 slots (an overflow header) holding integers
/// at the edges of the 31-bit range, a cycle, and an Array shared by two others.
fn graph(t: &mut Tenant, names: &BaseNames, extra: &[i64]) -> Value {
    let g = |n: &str| names.global(n).unwrap_or_else(|| panic!("no {n}"));
    let mut parts = Vec::new();
    for len in 0..10 {
        let s = common::alloc(t, g("String"), Format::Bytes, 0, len);
        let text: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
        t.set_bytes(s, 0, &text).unwrap();
        parts.push(s);
    }
    let ba = common::alloc(t, g("ByteArray"), Format::Bytes, 0, 5);
    t.set_bytes(ba, 0, &[1, 2, 3, 250, 255]).unwrap();
    parts.push(ba);
    let p = common::alloc(t, g("Point"), Format::Pointers, 2, 0);
    t.set_slot(p, 0, Value::int(3)).unwrap();
    t.set_slot(p, 1, Value::int(-4)).unwrap();
    parts.push(p);
    let f = common::alloc(t, g("Float"), Format::Words, 0, 8);
    t.set_bytes(f, 0, &1.5f64.to_bits().to_le_bytes()).unwrap();
    parts.push(f);
    let big = common::alloc(t, g("Array"), Format::Pointers, 300, 0);
    let ints = [0, 1, -1, (1 << 30) - 1, -(1 << 30)];
    for (i, &v) in ints.iter().chain(extra).enumerate() {
        t.set_slot(big, i % 300, Value::int(v)).unwrap();
    }
    parts.push(big);
    let shared = common::alloc(t, g("Array"), Format::Pointers, 1, 0);
    let a = common::alloc(t, g("Array"), Format::Pointers, 2, 0);
    let b = common::alloc(t, g("Array"), Format::Pointers, 2, 0);
    t.set_slot(a, 0, shared).unwrap();
    t.set_slot(b, 0, shared).unwrap();
    t.set_slot(a, 1, b).unwrap();
    t.set_slot(b, 1, a).unwrap();
    t.set_slot(shared, 0, names.symbol("size").unwrap())
        .unwrap();
    parts.extend([a, b]);
    // A class of the tenant's own (superclass Object) and two instances of it: the class
    // is a member, named by the instances' class fields.
    let object = g("Object");
    let class = common::alloc(t, t.class_of(object).unwrap(), Format::Pointers, 3, 0);
    let spur = t
        .base()
        .heap()
        .root("image.version")
        .and_then(|v| v.as_int())
        == Some(6521);
    // Two fixed fields: a Spur format word (format 1 at bit 16) or a V3 one (spec 1 at bit 7).
    let format_word = if spur {
        (1 << 16) | 2
    } else {
        (1 << 7) | (3 << 1)
    };
    t.set_slot(class, 0, object).unwrap();
    t.set_slot(class, 2, Value::int(format_word)).unwrap();
    let i1 = common::alloc(t, class, Format::Pointers, 2, 0);
    let i2 = common::alloc(t, class, Format::Pointers, 2, 0);
    t.set_slot(i1, 0, i2).unwrap();
    t.set_slot(i2, 0, i1).unwrap();
    t.set_slot(i1, 1, parts[3]).unwrap();
    parts.extend([i1, i2]);
    // A copy of one of the base's own CompiledMethods (a Spur base's: a Spur method header).
    if let Some(m) = some_method(t, names) {
        parts.push(m);
    }
    let holder = common::alloc(t, g("Array"), Format::Pointers, parts.len(), 0);
    for (i, &v) in parts.iter().enumerate() {
        t.set_slot(holder, i, v).unwrap();
    }
    holder
}

/// A private copy of the first method of `Object`'s method dictionary, in a Spur base only.
fn some_method(t: &mut Tenant, names: &BaseNames) -> Option<Value> {
    let version = t
        .base()
        .heap()
        .root("image.version")
        .and_then(|v| v.as_int())?;
    if version != 6521 && version != 68021 {
        return None;
    }
    let object = names.global("Object")?;
    let md = t.slot(object, 1).ok()?;
    let values = t.slot(md, 1).ok()?;
    let n = t.size(values).ok()?.slots;
    let m = (0..n)
        .filter_map(|i| t.slot(values, i).ok())
        .find(|&m| m.word().is_ref() && t.format(m).ok() == Some(Format::CompiledMethod))?;
    let size = t.size(m).ok()?;
    let class = t.class_of(m).ok()?;
    let copy = t.alloc(class, Format::CompiledMethod, size).ok()?;
    for i in 0..size.slots {
        let v = t.slot(m, i).ok()?;
        t.set_slot(copy, i, v).ok()?;
    }
    let bytes = t.bytes(m).ok()?.to_vec();
    t.set_bytes(copy, 0, &bytes).ok()?;
    Some(copy)
}

fn segment_of(name: &str, extra: &[i64]) -> (TenantSegment, &'static Arc<Base>) {
    let (b, names) = common::base(name);
    let mut t = Tenant::fork(b);
    let holder = graph(&mut t, names, extra);
    (tenant::extract(&t, &[holder], &[]).unwrap(), b)
}

/// Imports the Spur words of `seg` into a fresh tenant of `b` and compares every member
/// with the object it was extracted from in `src`: class, format, identity hash, slots
/// (members by member, the rest identical) and bytes.
fn import_and_compare(
    src: &Tenant,
    seg: &TenantSegment,
    b: &Arc<Base>,
    order: ByteOrder,
    words: WordSize,
) {
    let e = to_spur(seg, b.heap(), order, words, letter_for(order)).unwrap();
    let bytes = e.segment.to_bytes().unwrap();
    let back = SpurSegment::parse(&bytes, e.out.len()).unwrap();
    let mut read = to_segment(&back, &e.out, b.fingerprint()).unwrap();
    let mut t = Tenant::fork(b);
    let imported = read.import_into(&mut t, &[], false).unwrap();
    assert_eq!(imported.members.len(), seg.members.len());
    // Imported members are in object order: member j is `e.object_of[j] - 1`.
    let new_of = |j: usize| imported.members[(e.object_of[j] - 1) as usize];
    let index: std::collections::HashMap<u64, usize> = seg
        .members
        .iter()
        .enumerate()
        .map(|(i, v)| (v.word().bits(), i))
        .collect();
    let same = |a: Value, x: Value| -> bool {
        match index.get(&a.word().bits()) {
            Some(&i) => new_of(i).same_word(x),
            None => a.same_word(x),
        }
    };
    let is_class: std::collections::HashSet<usize> = seg
        .objects
        .iter()
        .filter_map(|o| match o.class {
            SRef::Obj(c) => Some(c as usize),
            _ => None,
        })
        .collect();
    for (i, &old) in seg.members.iter().enumerate() {
        let new = new_of(i);
        assert!(
            same(src.class_of(old).unwrap(), t.class_of(new).unwrap()),
            "member {i}"
        );
        assert_eq!(
            src.format(old).unwrap(),
            t.format(new).unwrap(),
            "member {i}"
        );
        if !is_class.contains(&i) {
            // A class of the segment travels with hash 0 (the VM gives it its class index).
            assert_eq!(
                src.identity_hash(old).unwrap() & 0x3F_FFFF,
                t.identity_hash(new).unwrap(),
                "member {i}"
            );
        }
        assert_eq!(src.size(old).unwrap(), t.size(new).unwrap(), "member {i}");
        for k in 0..src.size(old).unwrap().slots {
            assert!(
                same(src.slot(old, k).unwrap(), t.slot(new, k).unwrap()),
                "member {i} slot {k}"
            );
        }
        assert_eq!(src.bytes(old).unwrap(), t.bytes(new).unwrap(), "member {i}");
    }
    for (r, &root) in imported.roots.iter().zip(&seg.roots) {
        assert!(r.same_word(new_of(root as usize)));
    }
}

#[test]
fn imported_spur_segments_equal_their_source_object_by_object() {
    for name in ["mini.image", "headless-spur32.image"] {
        let (b, names) = common::base(name);
        let mut t = Tenant::fork(b);
        let holder = graph(&mut t, names, &[]);
        let seg = tenant::extract(&t, &[holder], &[]).unwrap();
        let methods = seg
            .objects
            .iter()
            .filter(|o| o.format == Format::CompiledMethod)
            .count();
        assert_eq!(methods, usize::from(name != "mini.image"), "{name}");
        for (order, words) in SHAPES {
            import_and_compare(&t, &seg, b, order, words);
        }
    }
}

/// The headless image exported as 64-bit Spur and imported again: a base whose
/// SmallIntegers have 61 bits. A segment holding one beyond 31 bits is written and read
/// back in 64-bit words, and refused in 32-bit ones.
#[test]
fn sixty_one_bit_integers_need_sixty_four_bit_words() {
    let (b32, _) = common::base("headless-spur32.image");
    let options = cowheap_squeak::ExportOptions {
        kind: Some(cowheap_squeak::ImageKind::Spur64),
        allow_missing_float_class: true,
        ..Default::default()
    };
    let bytes = cowheap_squeak::export_bytes_with(b32.heap(), &options).unwrap();
    let b = Base::new(cowheap_squeak::import_bytes(&bytes).unwrap().heap);
    let names = BaseNames::of(b.heap()).unwrap();
    let mut t = Tenant::fork(&b);
    let big = (1i64 << 59) + 12_345;
    let holder = graph(&mut t, &names, &[big, -big, 1 << 31]);
    let seg = tenant::extract(&t, &[holder], &[]).unwrap();
    for order in [ByteOrder::Little, ByteOrder::Big] {
        round_trip(&seg, &b, order, WordSize::W64);
        import_and_compare(&t, &seg, &b, order, WordSize::W64);
        assert!(matches!(
            to_spur(&seg, b.heap(), order, WordSize::W32, letter_for(order)),
            Err(cowheap_segment::SegmentError::Unrepresentable(_))
        ));
    }
}

/// What a Spur segment cannot hold is refused, not written wrong: a V3 base's
/// CompiledMethod (its header is V3's), a host object.
#[test]
fn v3_methods_are_refused() {
    let (b, names) = common::base("mini.image");
    let mut t = Tenant::fork(b);
    let object = names.global("Object").unwrap();
    let md = t.slot(object, 1).unwrap();
    let values = t.slot(md, 1).unwrap();
    let m = (0..t.size(values).unwrap().slots)
        .map(|i| t.slot(values, i).unwrap())
        .find(|&m| m.word().is_ref() && t.format(m).unwrap() == Format::CompiledMethod)
        .unwrap();
    let size = t.size(m).unwrap();
    let copy = t
        .alloc(t.class_of(m).unwrap(), Format::CompiledMethod, size)
        .unwrap();
    let seg = tenant::extract(&t, &[copy], &[]).unwrap();
    assert!(matches!(
        to_spur(&seg, b.heap(), ByteOrder::Little, WordSize::W32, b's'),
        Err(cowheap_segment::SegmentError::Unrepresentable(_))
    ));
}

/// Writes, reads, writes again, and compares every member with the segment's.
fn round_trip(seg: &TenantSegment, b: &Base, order: ByteOrder, words: WordSize) -> Vec<u8> {
    let e = to_spur(seg, b.heap(), order, words, letter_for(order)).unwrap();
    let bytes = e.segment.to_bytes().unwrap();
    let back = SpurSegment::parse(&bytes, e.out.len()).unwrap();
    assert_eq!(back, e.segment, "{order:?} {words:?}");
    assert_eq!(back.to_bytes().unwrap(), bytes, "byte-identical");
    assert_eq!(back.order, order);
    assert_eq!(back.words, words);
    assert_eq!(back.objects.len(), seg.objects.len() + 1);
    let (members, roots) = from_spur(&back).unwrap();
    // Members come back in object order: member j is object `e.object_of[j]`.
    let at = |j: u32| e.object_of[j as usize] - 1;
    let map = |r: SRef| match r {
        SRef::Obj(j) => SRef::Obj(at(j)),
        other => other,
    };
    let is_class: std::collections::HashSet<u32> = seg
        .objects
        .iter()
        .filter_map(|o| match o.class {
            SRef::Obj(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(roots, seg.roots.iter().map(|&r| at(r)).collect::<Vec<_>>());
    assert_eq!(members.len(), seg.objects.len());
    for (j, o) in seg.objects.iter().enumerate() {
        let m = &members[at(j as u32) as usize];
        assert_eq!(m.class, map(o.class), "member {j}");
        assert_eq!(m.format, o.format, "member {j}");
        let hash = if is_class.contains(&(j as u32)) {
            0
        } else {
            o.hash & 0x3F_FFFF
        };
        assert_eq!(m.hash, hash, "member {j}");
        assert_eq!(
            m.slots,
            o.slots.iter().map(|&r| map(r)).collect::<Vec<_>>(),
            "member {j}"
        );
        assert_eq!(m.bytes, o.bytes, "member {j}");
    }
    // The classes of members come first after the roots array, remembered.
    let first_other = is_class.len() + 1;
    for (k, o) in back.objects.iter().enumerate().skip(1) {
        assert_eq!(k < first_other, o.flags & (1 << 29) != 0, "object {k}");
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
            assert_eq!(v, (u32::from(letter_for(order)) << 24) | want);
            let s = SpurSegment::parse(&bytes, seg.out.len() + 1).unwrap();
            assert_eq!(s.objects[0].class, SpurOop::Out(1));
            assert_eq!(s.roots().len(), 1);
            // The tenant's class is object 1 (first after the roots array), remembered, hash
            // 0; its two instances name it by `16 + oop / 8` in their class fields, and the
            // roots array names Array by out-pointer 1 as `0x200000 + 0`.
            let oops = s.oops().unwrap();
            assert_eq!((s.objects[1].flags >> 29) & 1, 1);
            assert_eq!(s.objects[1].hash, 0);
            let field = |k: usize| {
                let at = 8 + oops[k] as usize;
                let w: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
                let low = match (order, words) {
                    (ByteOrder::Little, _) => u32::from_le_bytes(w),
                    (ByteOrder::Big, WordSize::W32) => u32::from_be_bytes(w),
                    (ByteOrder::Big, WordSize::W64) => {
                        let w8: [u8; 8] = bytes[at..at + 8].try_into().unwrap();
                        u64::from_be_bytes(w8) as u32
                    }
                };
                low & 0x3F_FFFF
            };
            assert_eq!(field(0), 0x20_0000);
            let instances: Vec<usize> = (0..s.objects.len())
                .filter(|&k| s.objects[k].class == SpurOop::Obj(1))
                .collect();
            assert_eq!(instances.len(), 2);
            for k in instances {
                assert_eq!(u64::from(field(k)), 16 + oops[1] / 8);
            }
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

/// A small segment: a String, a Point, an Array of 300 slots, and a class of the tenant's
/// own with an instance (so class fields of both kinds are flipped).
fn small(order: ByteOrder, words: WordSize) -> (Vec<u8>, usize) {
    let (b, names) = common::base("mini.image");
    let mut t = Tenant::fork(b);
    let g = |n: &str| names.global(n).unwrap();
    let s = common::alloc(&mut t, g("String"), Format::Bytes, 0, 3);
    t.set_bytes(s, 0, b"abc").unwrap();
    let p = common::alloc(&mut t, g("Point"), Format::Pointers, 2, 0);
    t.set_slot(p, 0, s).unwrap();
    t.set_slot(p, 1, Value::int(7)).unwrap();
    let big = common::alloc(&mut t, g("Array"), Format::Pointers, 300, 0);
    t.set_slot(big, 299, p).unwrap();
    let object = g("Object");
    let meta = t.class_of(object).unwrap();
    let class = common::alloc(&mut t, meta, Format::Pointers, 3, 0);
    t.set_slot(class, 0, object).unwrap();
    t.set_slot(class, 2, Value::int((1 << 7) | (2 << 1)))
        .unwrap();
    let x = common::alloc(&mut t, class, Format::Pointers, 1, 0);
    t.set_slot(x, 0, s).unwrap();
    t.set_slot(big, 0, x).unwrap();
    let seg = tenant::extract(&t, &[big], &[]).unwrap();
    let e = to_spur(&seg, b.heap(), order, words, letter_for(order)).unwrap();
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

/// `cowheap segment info` on bare Spur words: the shape and the counts, which agree with
/// the segment written.
#[test]
fn info_reads_bare_spur_words() {
    let (seg, b) = segment_of("mini.image", &[]);
    let dir = tempfile::tempdir().unwrap();
    for (order, words) in SHAPES {
        let e = to_spur(&seg, b.heap(), order, words, letter_for(order)).unwrap();
        let path = dir.path().join("words.seg");
        std::fs::write(&path, e.segment.to_bytes().unwrap()).unwrap();
        let info = cowheap_segment::info::info(&path).unwrap();
        let text = info.to_string();
        match info {
            cowheap_segment::info::Info::SpurWords {
                order: o,
                words: w,
                stats,
                ..
            } => {
                assert_eq!((o, w), (order, words));
                assert_eq!(stats, e.segment.stats().unwrap());
                assert_eq!(stats.objects, seg.objects.len() + 1);
                assert_eq!(stats.overflow_headers, 1);
                assert_eq!(stats.roots, 1);
                assert_eq!(stats.bytes, e.segment.to_bytes().unwrap().len());
            }
            other => panic!("{other:?}"),
        }
        assert!(text.contains("Spur segment words"), "{text}");
    }
}

/// A node of a random graph: pointer objects (Array, or weak) linking to other nodes or
/// holding integers, and raw objects of every unit size.
#[derive(Clone, Debug)]
enum Node {
    Array(Vec<Link>),
    Weak(Vec<Link>),
    Bytes(Vec<u8>),
    Words(Vec<u32>),
    Shorts(Vec<u16>),
    Doubles(Vec<u64>),
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Node(usize),
    Int(i32),
}

fn node() -> impl Strategy<Value = Node> {
    let link = prop_oneof![
        (0usize..64).prop_map(Link::Node),
        (-(1i32 << 30)..(1 << 30)).prop_map(Link::Int),
    ];
    let links = prop::collection::vec(link, 0..8);
    prop_oneof![
        links.clone().prop_map(Node::Array),
        links.prop_map(Node::Weak),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Node::Bytes),
        prop::collection::vec(any::<u32>(), 0..6).prop_map(Node::Words),
        prop::collection::vec(any::<u16>(), 0..9).prop_map(Node::Shorts),
        prop::collection::vec(any::<u64>(), 0..4).prop_map(Node::Doubles),
    ]
}

/// Builds the nodes under one holder Array in a tenant of `name`'s base (raw objects of
/// unit sizes the base has no class for are given the class `Object`: the segment words do
/// not look at the class of a raw object).
fn random_graph(t: &mut Tenant, names: &BaseNames, nodes: &[Node]) -> Value {
    let g = |n: &str| names.global(n).unwrap();
    let mut made = Vec::with_capacity(nodes.len());
    for n in nodes {
        let (class, format, slots, bytes): (Value, Format, usize, Vec<u8>) = match n {
            Node::Array(l) => (g("Array"), Format::Pointers, l.len(), Vec::new()),
            Node::Weak(l) => (g("Array"), Format::Weak, l.len(), Vec::new()),
            Node::Bytes(b) => (g("ByteArray"), Format::Bytes, 0, b.clone()),
            Node::Words(w) => (
                g("Object"),
                Format::Words,
                0,
                w.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            Node::Shorts(w) => (
                g("Object"),
                Format::Shorts,
                0,
                w.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            Node::Doubles(w) => (
                g("Object"),
                Format::DoubleWords,
                0,
                w.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        };
        let v = common::alloc(t, class, format, slots, bytes.len());
        t.set_bytes(v, 0, &bytes).unwrap();
        made.push(v);
    }
    for (n, &v) in nodes.iter().zip(&made) {
        if let Node::Array(links) | Node::Weak(links) = n {
            for (k, l) in links.iter().enumerate() {
                let x = match *l {
                    Link::Node(i) => made[i % made.len()],
                    Link::Int(i) => Value::int(i.into()),
                };
                t.set_slot(v, k, x).unwrap();
            }
        }
    }
    let holder = common::alloc(t, g("Array"), Format::Pointers, made.len(), 0);
    for (i, &v) in made.iter().enumerate() {
        t.set_slot(holder, i, v).unwrap();
    }
    holder
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random graphs of every format, in either base and every shape: the words round-trip
    /// byte for byte and import equal, object by object, to what was extracted.
    #[test]
    fn random_graphs_round_trip_and_import_equal(
        nodes in prop::collection::vec(node(), 1..30),
        spur_base in any::<bool>(),
        shape in 0usize..4,
    ) {
        let name = if spur_base { "headless-spur32.image" } else { "mini.image" };
        let (b, names) = common::base(name);
        let mut t = Tenant::fork(b);
        let holder = random_graph(&mut t, names, &nodes);
        let seg = tenant::extract(&t, &[holder], &[]).unwrap();
        let (order, words) = SHAPES[shape];
        round_trip(&seg, b, order, words);
        import_and_compare(&t, &seg, b, order, words);
    }
}

/// An out-pointer whose index does not fit 32 bits is refused, even against a table of any
/// length, rather than read as another index.
#[test]
fn an_out_pointer_index_past_32_bits_is_refused() {
    let (bytes, outs) = small(ByteOrder::Little, WordSize::W64);
    assert!(SpurSegment::parse(&bytes, usize::MAX).is_ok());
    // Out-pointers are the words with the top bit set (and not the header's words).
    let top = 1u64 << 63;
    let at = (8..bytes.len() / 8)
        .map(|k| k * 8)
        .find(|&at| {
            let w = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            w & top != 0 && (w & !top) / 8 < outs as u64
        })
        .expect("the segment has an out-pointer");
    let w = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let mut far = bytes.clone();
    far[at..at + 8].copy_from_slice(&(w + (8u64 << 32)).to_le_bytes());
    assert!(
        matches!(
            SpurSegment::parse(&far, usize::MAX),
            Err(cowheap_segment::SegmentError::BadOutPointer { .. })
        ),
        "an index 2^32 past the first read as {:?}",
        SpurSegment::parse(&far, usize::MAX).map(|s| s.stats())
    );
}

/// A 64-bit word whose tag no Spur VM makes (3, 5, 6 or 7) is refused as a bad immediate,
/// with the whole word, not as a pointer to no object with the word cut to 32 bits.
#[test]
fn an_immediate_no_vm_makes_is_refused_with_its_whole_word() {
    let (bytes, outs) = small(ByteOrder::Little, WordSize::W64);
    // The Point's y, the SmallInteger 7.
    let seven = (7u64 << 3) | 1;
    let at = (8..bytes.len() / 8)
        .map(|k| k * 8)
        .find(|&at| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) == seven)
        .expect("the segment holds 7");
    for tag in [3u64, 5, 6, 7] {
        let bad = (1u64 << 40) | (7 << 3) | tag;
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&bad.to_le_bytes());
        let r = SpurSegment::parse(&b, outs);
        assert!(
            matches!(r, Err(cowheap_segment::SegmentError::BadImmediate { oop, .. }) if oop == bad),
            "tag {tag}: {:?}",
            r.map(|s| s.stats())
        );
    }
}
