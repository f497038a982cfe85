//! What an import makes in another image must be what that image holds. An immediate
//! of the writer's image is made as the target image has it, or refused: a Spur Character
//! (an immediate) imported into a V3 image, whose Characters are the objects of its
//! CharacterTable, is that table's Character of the same value, as `Character value:`
//! answers it there (one past 255, which a V3 image has no table entry for, is refused); a
//! SmallInteger of a 64-bit Spur image past the 31 bits of a 32-bit image, and a
//! SmallFloat64 imported into an image without immediate floats, are refused with a typed
//! error, the tenant left as it was (its snapshot byte for byte).
//!
//! And an object's class must be a class: a class out-pointer of a segment file or an Etoys
//! project that binds to nil, a Symbol or a global that is no class (`Smalltalk`), and a
//! member class without a format word, are refused with a typed error rather than made as
//! instances of it, the tenant left as it was.
//!
//! And a compiled method's header must count its literals as the target image's headers do:
//! a Spur method imported into a V3 image (whose headers count literals in bits 9-16, not
//! the low 15) and a V3 method of an Etoys project made in a Spur image are refused.
//!
//! The other way, a Spur tenant's segment is not written as V3 words, whose formats its
//! classes' Spur format words do not give (an Array would be written format 0); and a
//! segment's root given as a base object the tenant copied is that copy, the object the
//! tenant sees by it, as a root given by the copy's own reference is.
//!
//! A Character of a V3 image (an object of its CharacterTable) travels by its value: into
//! the headless Spur image it is the immediate, into Scratch that image's Character.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, Word};
use cowheap_segment::SegmentError;
use cowheap_segment::bind::{self, BaseNames};
use cowheap_segment::file;
use cowheap_segment::tenant::{self, OutRef, SRef};
use cowheap_tenants::Tenant;
use std::sync::{Arc, OnceLock};

/// The headless image exported as 64-bit Spur and imported again: 61-bit SmallIntegers and
/// immediate floats.
fn spur64() -> &'static (Arc<Base>, BaseNames) {
    static B: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    B.get_or_init(|| {
        let (b32, _) = common::base("headless-spur32.image");
        let options = cowheap_squeak::ExportOptions {
            kind: Some(cowheap_squeak::ImageKind::Spur64),
            allow_missing_float_class: true,
            ..Default::default()
        };
        let bytes = cowheap_squeak::export_bytes_with(b32.heap(), &options).unwrap();
        let b = Base::new(cowheap_squeak::import_bytes(&bytes).unwrap().heap);
        let n = BaseNames::of(b.heap()).unwrap();
        (b, n)
    })
}

/// A portable segment file of an Array of `values`, made in a tenant of `from`.
fn array_file(from: &(Arc<Base>, BaseNames), values: &[Value]) -> Vec<u8> {
    let (b, names) = from;
    let mut t = Tenant::fork(b);
    let array = names.global("Array").unwrap();
    let holder = common::alloc(&mut t, array, Format::Pointers, values.len(), 0);
    for (i, &v) in values.iter().enumerate() {
        t.set_slot(holder, i, v).unwrap();
    }
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(&**t.base()).unwrap();
    file::to_bytes(&seg).unwrap()
}

/// Imports the segment file `bytes` into a tenant of `into` holding one object of its own
/// already: the tenant, and the first root or the error. A refused import must leave the
/// tenant's snapshot as it was.
fn import(bytes: &[u8], into: &Arc<Base>) -> (Tenant, Result<Value, SegmentError>) {
    let mut back = file::from_bytes(bytes, Some(into.fingerprint())).unwrap();
    let mut t = Tenant::fork(into);
    let names = BaseNames::of(into.heap()).unwrap();
    let mine = common::alloc(
        &mut t,
        names.global("Array").unwrap(),
        Format::Pointers,
        1,
        0,
    );
    t.set_root("mine", mine).unwrap();
    let before = t.snapshot();
    let r = back.import_into(&mut t, &[], false).map(|i| i.roots[0]);
    if r.is_err() {
        assert!(
            t.snapshot() == before,
            "a refused import changed the tenant"
        );
    }
    (t, r)
}

#[test]
fn a_spur_character_imported_into_a_v3_image_is_its_character_object() {
    let (mini, mini_names) = common::base("mini.image");
    let f = array_file(
        common::base("headless-spur32.image"),
        &[Value::char('a'), Value::char('\u{ff}')],
    );
    let (t, r) = import(&f, mini);
    let holder = r.unwrap();
    for (i, code) in [(0, 97), (1, 255)] {
        let c = t.slot(holder, i).unwrap();
        let expected = mini_names.character(mini.heap(), code).unwrap();
        assert!(
            t.identical(c, expected).unwrap(),
            "slot {i}: {:?}, not mini.image's Character value: {code}",
            c.word()
        );
    }
    // A value the CharacterTable has no entry for is refused, not made an immediate.
    let f = array_file(
        common::base("headless-spur32.image"),
        &[Value::char('\u{100}')],
    );
    let (_, r) = import(&f, mini);
    assert!(
        matches!(r, Err(SegmentError::NotHeldByTarget(_))),
        "{:?}",
        r.map(|v| v.word())
    );
}

#[test]
fn an_integer_past_the_targets_small_integers_is_refused() {
    let (spur32, _) = common::base("headless-spur32.image");
    let (mini, _) = common::base("mini.image");
    let big = 1i64 << 40;
    let f = array_file(spur64(), &[Value::int(3), Value::int(big)]);
    for into in [spur32, mini] {
        let (t, r) = import(&f, into);
        assert!(
            matches!(r, Err(SegmentError::NotHeldByTarget(_))),
            "{:?}",
            r.map(|h| t.slot(h, 1).unwrap().word())
        );
    }
    // The extremes of 31 bits import; one past them does not.
    let max = (1i64 << 30) - 1;
    let f = array_file(spur64(), &[Value::int(max), Value::int(-max - 1)]);
    let (t, r) = import(&f, mini);
    let h = r.unwrap();
    assert_eq!(t.slot(h, 0).unwrap().as_int(), Some(max));
    assert_eq!(t.slot(h, 1).unwrap().as_int(), Some(-max - 1));
    for past in [max + 1, -max - 2] {
        let f = array_file(spur64(), &[Value::int(past)]);
        let (_, r) = import(&f, mini);
        assert!(matches!(r, Err(SegmentError::NotHeldByTarget(_))), "{past}");
    }
    // Into the 64-bit image itself, as it was.
    let f = array_file(spur64(), &[Value::int(-max - 2)]);
    let (t, r) = import(&f, &spur64().0);
    let h = r.unwrap();
    assert_eq!(t.slot(h, 0).unwrap().as_int(), Some(-max - 2));
}

#[test]
fn an_immediate_float_into_an_image_without_them_is_refused() {
    let (spur32, _) = common::base("headless-spur32.image");
    let (mini, _) = common::base("mini.image");
    let one = Value::shared(Word::small_float_bits(0x3FF0_0000_0000_0000 >> 3).unwrap());
    let f = array_file(spur64(), &[one]);
    for into in [spur32, mini] {
        let (t, r) = import(&f, into);
        assert!(
            matches!(r, Err(SegmentError::NotHeldByTarget(_))),
            "{:?}",
            r.map(|h| t.slot(h, 0).unwrap().word())
        );
    }
    let (t, r) = import(&f, &spur64().0);
    assert!(t.slot(r.unwrap(), 0).unwrap().same_word(one));
}

#[test]
fn a_segment_member_whose_class_is_no_class_is_refused() {
    let from = common::base("mini.image");
    let f = array_file(from, &[Value::int(3)]);
    let seg = file::from_bytes(&f, None).unwrap();
    let SRef::Out(k) = seg.objects[0].class else {
        panic!("the Array class is an out-pointer");
    };
    for not_a_class in [
        OutRef::Special(0),
        OutRef::Symbol("Array".into()),
        OutRef::Global("Smalltalk".into()),
    ] {
        let mut s = seg.clone();
        s.out[k as usize] = not_a_class.clone();
        let (t, r) = import(&file::to_bytes(&s).unwrap(), &from.0);
        assert!(
            matches!(r, Err(SegmentError::BadSegment(_))),
            "{not_a_class}: made an instance of {:?}",
            r.map(|h| t.class_of(h).unwrap().word())
        );
    }
    // A member class that is a String, not a class: two members, the Array made an
    // instance of the second.
    let mut s = seg.clone();
    let string = from.1.global("String").unwrap();
    s.out.push(OutRef::Class {
        name: "String".into(),
        inst_vars: from
            .1
            .all_inst_var_names(from.0.heap(), string.as_base().unwrap())
            .unwrap(),
    });
    s.objects.push(tenant::SegObj {
        class: SRef::Out(s.out.len() as u32 - 1),
        format: Format::Bytes,
        hash: 5,
        slots: Vec::new(),
        bytes: b"no class".to_vec(),
    });
    s.objects[0].class = SRef::Obj(1);
    let (t, r) = import(&file::to_bytes(&s).unwrap(), &from.0);
    assert!(
        matches!(r, Err(SegmentError::BadSegment(_))),
        "made an instance of a String: {:?}",
        r.map(|h| t.class_of(h).unwrap().word())
    );
}

/// Little-endian bytes of `words`.
fn le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A Symbol in the stream.
fn symbol(s: &str) -> Vec<u8> {
    let mut b = vec![6, u8::try_from(s.len()).unwrap()];
    b.extend(s.as_bytes());
    b
}

/// `DiskProxy global: #name selector: #withClassVersion: args: #(1)`: the class `name`.
fn class_proxy(name: &str) -> Vec<u8> {
    let mut b = vec![9, 0, 0, 0, 5];
    b.extend(symbol("DiskProxy"));
    b.extend(symbol(name));
    b.push(1);
    b.extend(symbol("withClassVersion:"));
    b.extend([8, 0, 0, 0, 1, 4, 0, 0, 0, 1]);
    b
}

/// `DiskProxy global: #name`: the global `name`'s value.
fn global_proxy(name: &str) -> Vec<u8> {
    let mut b = vec![9, 0, 0, 0, 5];
    b.extend(symbol("DiskProxy"));
    b.extend(symbol(name));
    b.extend([1, 1, 1]);
    b
}

/// The header of a V3 object with a class word: format `fmt`, `fields` body words.
fn two_word(fmt: u32, fields: u32) -> u32 {
    (fmt << 8) | ((fields + 1) << 2) | 1
}

/// An Etoys-like project whose segment is `words` (after the version word) and whose
/// out-pointers are `first` (an encoded stream object) and the class Array.
fn project(words: &[u32], first: Vec<u8>) -> Vec<u8> {
    let words = le(&[&[0x7300_0000 | 6502], words].concat());
    let mut b = vec![9, 0, 0, 0, 4];
    b.extend(symbol("ImageSegment"));
    b.push(1);
    b.push(19);
    b.extend(u32::try_from(words.len() / 4).unwrap().to_be_bytes());
    b.extend(&words);
    b.extend([8, 0, 0, 0, 2]);
    b.extend(first);
    b.extend(class_proxy("Array"));
    b.push(b'!');
    let mut s = b"'From Squeak'!\r!self smartRefStream!".to_vec();
    s.extend(b);
    s
}

/// A project whose segment is a roots array (an Array: out-pointer 2) holding one object
/// with no fields, whose class word is out-pointer 1, `first`.
fn project_with_class(first: Vec<u8>) -> Vec<u8> {
    project(
        &[
            0x8000_0008 | 1,
            two_word(2, 1),
            4 * (5 + 1),
            0x8000_0004 | 1,
            two_word(1, 0),
        ],
        first,
    )
}

#[test]
fn a_project_object_whose_class_is_no_class_is_refused() {
    let (mini, _) = common::base("mini.image");
    // A class that binds: the object is made, an instance of it.
    let p =
        cowheap_segment::Project::from_bytes(&project_with_class(class_proxy("Object"))).unwrap();
    let mut t = Tenant::fork(mini);
    let m = bind::materialise(&mut t, &p, "project").unwrap();
    assert!(m.objects[1].is_some());
    // nil, a Symbol that binds (#Array), a global that is no class.
    for first in [vec![1u8], symbol("Array"), global_proxy("Smalltalk")] {
        let p = cowheap_segment::Project::from_bytes(&project_with_class(first)).unwrap();
        let mut t = Tenant::fork(mini);
        let before = t.snapshot();
        let r = bind::materialise(&mut t, &p, "project");
        assert!(
            matches!(r, Err(SegmentError::BadSegment(_))),
            "{:?}: made an instance of {:?}",
            p.out_pointer(1),
            r.map(|m| m.objects[1].map(|o| t.class_of(o).unwrap().word()))
        );
        assert!(
            t.snapshot() == before,
            "a refused project import changed the tenant"
        );
    }
}

/// A portable segment file of an Array holding a compiled method made in a tenant of
/// `from` (its class the base's, special objects slot 16), whose header (a SmallInteger)
/// is `header`, with two literals (`#size`, `#at:`) and four bytes.
fn method_file(from: &(Arc<Base>, BaseNames), header: i64) -> Vec<u8> {
    let (b, names) = from;
    let special = b.heap().root("specialObjects").unwrap();
    let class = Value::shared(b.heap().object(special.as_base().unwrap()).unwrap().slots[16]);
    let mut t = Tenant::fork(b);
    let literals = [names.symbol("size").unwrap(), names.symbol("at:").unwrap()];
    let m = t
        .alloc_with(
            class,
            Format::CompiledMethod,
            &[Value::int(header), literals[0], literals[1]],
            &[0x70, 0x7C, 0, 0],
        )
        .unwrap();
    let array = names.global("Array").unwrap();
    let holder = common::alloc(&mut t, array, Format::Pointers, 1, 0);
    t.set_slot(holder, 0, m).unwrap();
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(&**t.base()).unwrap();
    file::to_bytes(&seg).unwrap()
}

#[test]
fn a_compiled_method_whose_header_the_target_reads_otherwise_is_refused() {
    let mini = common::base("mini.image");
    let spur = common::base("headless-spur32.image");
    // Two literals: a Spur header counts them in its low 15 bits, a V3 one in bits 9-16.
    let (spur_header, v3_header) = (2, 2 << 9);
    // Each imports into an image of its own kind, header and literals as they were.
    for (from, header) in [(spur, spur_header), (mini, v3_header)] {
        let (t, r) = import(&method_file(from, header), &from.0);
        let m = t.slot(r.unwrap(), 0).unwrap();
        assert_eq!(t.slot(m, 0).unwrap().as_int(), Some(header));
        assert_eq!(t.size(m).unwrap().slots, 3);
    }
    // Into a V3 image, the Spur header would count no literals (bits 9-16): refused. (A V3
    // method's class does not bind in the headless image, whose CompiledMethod has another
    // shape: the other way round is an Etoys project's, below.)
    let (t, r) = import(&method_file(spur, spur_header), &mini.0);
    assert!(
        matches!(r, Err(SegmentError::NotHeldByTarget(_))),
        "{:?}",
        r.map(|h| {
            let m = t.slot(h, 0).unwrap();
            (t.slot(m, 0).unwrap().as_int(), t.size(m).unwrap().slots)
        })
    );
}

#[test]
fn a_project_method_whose_header_a_spur_image_reads_otherwise_is_refused() {
    // A roots array holding a compiled method (format 12: the virtual machine takes any
    // object of that format for one) of one literal by its V3 header, the literal 7, and
    // four bytes; its class out-pointer 1 is `Object` (the headless image has no global
    // `CompiledMethod` to bind one to).
    let int = |i: u32| (i << 1) | 1;
    let words = [
        0x8000_0008 | 1,
        two_word(2, 1),
        4 * (5 + 1),
        0x8000_0004 | 1,
        two_word(12, 3),
        int(1 << 9),
        int(7),
        0x0000_7C70,
    ];
    let p = cowheap_segment::Project::from_bytes(&project(&words, class_proxy("Object"))).unwrap();
    // In the V3 image it is made, as it was.
    let (mini, _) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let m = bind::materialise(&mut t, &p, "project").unwrap().objects[1].unwrap();
    assert_eq!(t.slot(m, 0).unwrap().as_int(), Some(1 << 9));
    assert_eq!(t.slot(m, 1).unwrap().as_int(), Some(7));
    // The headless Spur image would read 512 literals in its header: refused.
    let (spur, _) = common::base("headless-spur32.image");
    let mut t = Tenant::fork(spur);
    let before = t.snapshot();
    let r = bind::materialise(&mut t, &p, "project");
    assert!(
        matches!(r, Err(SegmentError::NotHeldByTarget(_))),
        "{:?}",
        r.map(|m| (
            m.objects[1].map(|m| t.slot(m, 0).unwrap().as_int()),
            m.report.unbound
        ))
    );
    assert!(
        t.snapshot() == before,
        "a refused project import changed the tenant"
    );
}

#[test]
fn a_spur_tenants_segment_is_not_written_as_v3_words() {
    use cowheap_segment::export;
    use cowheap_segment::v3::ByteOrder;
    // An Array of two fields in a tenant of the headless Spur image: its class's format
    // word is Spur's (bits 16-20), which V3's instance specification (bits 7-10) misreads.
    let (spur, names) = common::base("headless-spur32.image");
    let mut t = Tenant::fork(spur);
    let array = names.global("Array").unwrap();
    let a = common::alloc(&mut t, array, Format::Pointers, 2, 0);
    t.set_slot(a, 0, Value::int(1)).unwrap();
    let seg = tenant::extract(&t, &[a], &[]).unwrap();
    let r = export::to_v3(&seg, &**t.base(), ByteOrder::Little, 6502, b's');
    assert!(
        matches!(r, Err(SegmentError::BadSegment(_))),
        "written as V3 format {:?}",
        r.map(|e| e.segment.objects[1].format)
    );
    // From a V3 base, the Array is format 2 (indexable pointers).
    let (mini, names) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let a = common::alloc(
        &mut t,
        names.global("Array").unwrap(),
        Format::Pointers,
        2,
        0,
    );
    let seg = tenant::extract(&t, &[a], &[]).unwrap();
    let e = export::to_v3(&seg, &**t.base(), ByteOrder::Little, 6502, b's').unwrap();
    assert_eq!(e.segment.objects[1].format, 2);
}

#[test]
fn a_root_given_as_the_base_object_a_tenant_copied_is_its_copy() {
    // The tenant writes a base Array (the special objects array): its copy is the object
    // the tenant sees by the base reference, and identical to it.
    let (mini, _) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let special = mini.heap().root("specialObjects").unwrap();
    let first = t.slot(special, 0).unwrap();
    t.set_slot(special, 0, first).unwrap();
    let copy = t.resolve(special).unwrap();
    assert!(copy.word().is_private() && t.identical(copy, special).unwrap());
    let others = tenant::tenant_roots(&t);
    let by_copy = tenant::extract(&t, &[copy], &others).unwrap();
    let by_base = tenant::extract(&t, &[special], &others);
    let by_base = by_base.unwrap();
    assert_eq!(by_base.roots, by_copy.roots);
    assert_eq!(by_base.objects.len(), by_copy.objects.len());
    assert!(t.identical(by_base.members[0], copy).unwrap());
    // A base object the tenant did not copy is no object of the tenant's: refused.
    let array = mini
        .heap()
        .object(special.as_base().unwrap())
        .unwrap()
        .slots[7];
    assert!(matches!(
        tenant::extract(&t, &[Value::shared(array)], &others),
        Err(SegmentError::NotPrivate(_))
    ));
}

#[test]
fn a_v3_character_travels_to_another_image_as_its_character() {
    // An Array holding mini.image's Characters $a and $ÿ (objects of its CharacterTable)
    // and a SmallInteger, exported portably.
    let mini = common::base("mini.image");
    let chars: Vec<Value> = [97, 255]
        .iter()
        .map(|&n| mini.1.character(mini.0.heap(), n).unwrap())
        .collect();
    let f = array_file(mini, &[chars[0], chars[1], Value::int(3)]);
    // Into the headless Spur image: its immediate Characters.
    let (spur, _) = common::base("headless-spur32.image");
    let (t, r) = import(&f, spur);
    let h = r.unwrap();
    assert!(t.slot(h, 0).unwrap().same_word(Value::char('a')));
    assert!(t.slot(h, 1).unwrap().same_word(Value::char('\u{ff}')));
    // Into Scratch, another V3 image: its CharacterTable's.
    let scratch = Base::new(
        cowheap_squeak::import(common::image("Scratch-1.4.0.6.image"))
            .unwrap()
            .heap,
    );
    let names = BaseNames::of(scratch.heap()).unwrap();
    let (t, r) = import(&f, &scratch);
    let h = r.unwrap();
    for (i, n) in [(0, 97), (1, 255)] {
        let expected = names.character(scratch.heap(), n).unwrap();
        assert!(t.identical(t.slot(h, i).unwrap(), expected).unwrap(), "{n}");
    }
    assert_eq!(t.slot(h, 2).unwrap().as_int(), Some(3));
}

/// An import refused after it made its members (a Set whose table has no free slot, which
/// the rehash refuses) frees them again: against a twin tenant that never tried it, the
/// tenant's objects, bytes and allocation count are the same, and the next object each
/// makes has the same identity hash. Its snapshot is not byte for byte the twin's: the
/// freed members' keys stay retired in the key slab, as every freed key does (README,
/// "Known limits").
#[test]
fn a_refused_import_that_made_members_leaves_the_tenant_as_it_was() {
    let (b, names) = common::base("mini.image");
    let mut t = Tenant::fork(b);
    let array = common::alloc(
        &mut t,
        names.global("Array").unwrap(),
        Format::Pointers,
        8,
        0,
    );
    for i in 0..8 {
        t.set_slot(array, i, Value::int(i as i64 + 1)).unwrap();
    }
    let set = common::alloc(&mut t, names.global("Set").unwrap(), Format::Pointers, 2, 0);
    t.set_slot(set, 0, Value::int(8)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    let mut seg = tenant::extract(&t, &[set], &[]).unwrap();
    seg.make_portable(&**t.base()).unwrap();
    let mut back = file::from_bytes(&file::to_bytes(&seg).unwrap(), None).unwrap();
    let array_class = names.global("Array").unwrap();
    let with_one = || {
        let mut t = Tenant::fork(b);
        let mine = common::alloc(&mut t, array_class, Format::Pointers, 1, 0);
        t.set_slot(mine, 0, Value::int(7)).unwrap();
        t.set_root("mine", mine).unwrap();
        t
    };
    let (mut t2, mut twin) = (with_one(), with_one());
    let r = back.import_into(&mut t2, &[], false);
    assert!(matches!(r, Err(SegmentError::HashedCollection { .. })));
    for t in [&t2, &twin] {
        let mine = t.root("mine").unwrap();
        assert_eq!(t.slot(mine, 0).unwrap().as_int(), Some(7));
    }
    let counts = |t: &Tenant| {
        let s = t.stats();
        (s.private_objects, s.private_bytes, s.allocations)
    };
    assert_eq!(counts(&t2), counts(&twin), "objects, bytes, allocations");
    let next = |t: &mut Tenant| {
        let v = common::alloc(t, array_class, Format::Pointers, 1, 0);
        t.identity_hash(v).unwrap()
    };
    assert_eq!(next(&mut t2), next(&mut twin), "the next identity hash");
}
