//! Well-formed but hostile image files: every checksum right, the contents random within the
//! format's field widths.
//!
//! Properties, for every generated file:
//! - opening it verified either refuses it with a typed error or gives a heap whose every
//!   object reads without error;
//! - opening it trusted refuses it or gives a heap on which reads, a tenant's reads, writes,
//!   collection, snapshot and restore, and export to every Smalltalk format each succeed or
//!   fail with a typed error: nothing panics (checked under `catch_unwind`).
//!
//! `PROPTEST_CASES` sets the number of cases (a few hundred by default, for CI).

mod common;

use cowheap::heap::image::{MAGIC, VERSION, Verification};
use cowheap::squeak::{ExportOptions, ImageKind};
use cowheap::{Base, BaseHeap, Tenant, Value, Word};
use proptest::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// One object as the generator lays it out.
#[derive(Clone, Debug)]
struct Obj {
    class: u64,
    slots: Vec<u64>,
    bytes: Vec<u8>,
    hash: u32,
    format: u8,
    aux: u32,
}

/// The meta section's fields.
#[derive(Clone, Debug)]
struct Meta {
    nil: u32,
    flags: u32,
    classes: [u64; 3],
    roots: Vec<(String, u64)>,
}

/// A whole file's contents before sealing.
#[derive(Clone, Debug)]
struct Image {
    objects: Vec<Obj>,
    /// Added to each computed offset (mostly zero).
    offset_skew: Vec<u64>,
    meta: Meta,
}

/// A word a slot may hold: a reference to one of `n` objects, an integer, a character or
/// an immediate float.
fn good_word(n: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (0..n).prop_map(|i| i << 3),
        2 => (-1000i64..1000).prop_map(|i| ((i << 1) | 1) as u64),
        1 => (0u64..0x11_0000).prop_map(|c| c << 3 | 0b010),
        1 => any::<u64>().prop_map(|b| b << 3 | 0b110),
    ]
}

/// A reference to one of `n` objects.
fn base_ref(n: u64) -> BoxedStrategy<u64> {
    (0..n).prop_map(|i| i << 3).boxed()
}

/// Any word, mostly from what a slot may hold and often from what it may not: references
/// past the end, private references, base tags with bits above the index, noise.
fn any_word(n: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => good_word(n),
        2 => (n..n + 3).prop_map(|i| i << 3),
        1 => any::<u32>().prop_map(|k| u64::from(k) << 3 | 0b100),
        1 => (0..n + 1, 35u32..64).prop_map(|(i, bit)| i << 3 | 1 << bit),
        1 => any::<u64>(),
    ]
}

/// An object of one of `n`: well formed (its format fits its size, its words are good), or,
/// when `hostile`, with any field drawn from its whole width.
fn object(n: u64, hostile: bool) -> BoxedStrategy<Obj> {
    if !hostile {
        return (
            0..n,
            prop::collection::vec(good_word(n), 0..5),
            prop::collection::vec(any::<u8>(), 0..13),
            any::<u32>(),
            0u32..(1 << 24),
        )
            .prop_map(|(class, slots, bytes, hash, aux)| {
                let format = match (slots.is_empty(), bytes.is_empty()) {
                    (_, true) => 0,
                    (true, false) => 3,
                    (false, false) => 7,
                };
                Obj {
                    class: class << 3,
                    slots,
                    bytes,
                    hash,
                    format,
                    aux,
                }
            })
            .boxed();
    }
    (
        prop_oneof![3 => (0..n).prop_map(|i| i << 3), 1 => any_word(n)],
        prop::collection::vec(any_word(n), 0..5),
        prop::collection::vec(any::<u8>(), 0..13),
        any::<u32>(),
        prop_oneof![4 => 0u8..8, 1 => any::<u8>()],
        prop_oneof![3 => Just(0u32), 1 => 0u32..(1 << 24), 1 => any::<u32>()],
    )
        .prop_map(|(class, slots, bytes, hash, format, aux)| Obj {
            class,
            slots,
            bytes,
            hash,
            format,
            aux,
        })
        .boxed()
}

fn root_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("specialObjects".to_owned()),
        Just("Smalltalk".to_owned()),
        Just("image.version".to_owned()),
        Just("image.format".to_owned()),
        Just("image.prefix".to_owned()),
        Just("image.headerSize".to_owned()),
        Just("image.oldBase".to_owned()),
        Just("image.specialObjects".to_owned()),
        "[a-z.]{1,12}",
    ]
}

/// An image of up to 24 objects: well formed in every part, or (half the time) with some
/// objects, offsets and meta fields hostile.
fn image() -> impl Strategy<Value = Image> {
    (1u64..24, any::<bool>()).prop_flat_map(|(n, hostile)| {
        let objects = prop::collection::vec(
            prop_oneof![3 => object(n, false), if hostile { 1 } else { 0 } => object(n, true)],
            n as usize,
        );
        let skew = if hostile {
            // Now and then an offset too wide for a mark word's offset bits (a tenant keeps
            // it past every heap, so reads it as the heap does: refused).
            // (Added with wrapping to offsets under 2^20: each stays wide.)
            let wide = prop_oneof![
                Just(1u64 << 40),
                Just(1u64 << 62),
                Just(u64::MAX - (1 << 20))
            ];
            prop::collection::vec(
                prop_oneof![12 => Just(0u64), 1 => 1u64..4, 1 => wide],
                n as usize,
            )
            .boxed()
        } else {
            Just(vec![0u64; n as usize]).boxed()
        };
        let meta = if hostile {
            (
                prop_oneof![6 => 0..n as u32, 1 => any::<u32>()],
                0u32..9,
                [
                    any_word(n).boxed(),
                    any_word(n).boxed(),
                    any_word(n).boxed(),
                ],
                prop::collection::vec((root_name(), any_word(n)), 0..5),
                any::<bool>(),
            )
                // Mostly a class field whose flag is clear is zero, as a writer leaves it
                // (a file with another value there is refused before anything else).
                .prop_map(|(nil, flags, mut classes, roots, keep)| {
                    if !keep {
                        for (k, class) in classes.iter_mut().enumerate().take(2) {
                            if flags >> k & 1 == 0 {
                                *class = 0;
                            }
                        }
                    }
                    (nil, flags, classes, roots)
                })
                .boxed()
        } else {
            (
                0..n as u32,
                0u32..8,
                [base_ref(n), base_ref(n), base_ref(n)],
                prop::collection::vec((root_name(), good_word(n)), 0..5),
            )
                // A class field whose flag is clear is zero, as a writer leaves it.
                .prop_map(|(nil, flags, mut classes, roots)| {
                    for (k, class) in classes.iter_mut().enumerate().take(2) {
                        if flags >> k & 1 == 0 {
                            *class = 0;
                        }
                    }
                    (nil, flags, classes, roots)
                })
                .boxed()
        };
        (objects, skew, meta).prop_map(|(objects, offset_skew, (nil, flags, classes, roots))| {
            Image {
                objects,
                offset_skew,
                meta: Meta {
                    nil,
                    flags,
                    classes,
                    roots,
                },
            }
        })
    })
}

/// The file, laid out and sealed as `docs/FORMATS.md` says.
fn encode(img: &Image) -> Vec<u8> {
    let mut objects = Vec::new();
    let mut offsets = Vec::new();
    for (o, skew) in img.objects.iter().zip(&img.offset_skew) {
        let at = (objects.len() / 8) as u64;
        offsets.extend(at.wrapping_add(*skew).to_le_bytes());
        let sizes = o.slots.len() as u64 | (o.bytes.len() as u64) << 32;
        let info = u64::from(o.hash) | u64::from(o.format) << 32 | u64::from(o.aux) << 40;
        for w in [o.class, sizes, info].iter().chain(&o.slots) {
            objects.extend(w.to_le_bytes());
        }
        let mut bytes = o.bytes.clone();
        bytes.resize(o.bytes.len().div_ceil(8) * 8, 0);
        objects.extend(bytes);
    }
    let m = &img.meta;
    let mut meta = Vec::new();
    meta.extend(m.nil.to_le_bytes());
    meta.extend(m.flags.to_le_bytes());
    meta.extend(m.classes[0].to_le_bytes());
    meta.extend(m.classes[1].to_le_bytes());
    if m.flags & 4 != 0 {
        meta.extend(m.classes[2].to_le_bytes());
    }
    let mut seen = std::collections::HashSet::new();
    let roots: Vec<_> = m.roots.iter().filter(|(n, _)| seen.insert(n)).collect();
    meta.extend((roots.len() as u64).to_le_bytes());
    for (name, value) in roots {
        meta.extend((name.len() as u32).to_le_bytes());
        meta.extend(name.as_bytes());
        meta.extend(value.to_le_bytes());
    }
    let sections = [&objects, &offsets, &meta];
    let mut file = Vec::new();
    file.extend(MAGIC);
    file.extend(VERSION.to_le_bytes());
    file.extend(8u32.to_le_bytes());
    file.extend(0u32.to_le_bytes());
    file.extend(3u32.to_le_bytes());
    file.extend((img.objects.len() as u64).to_le_bytes());
    file.extend((objects.len() as u64).to_le_bytes());
    file.extend([0u8; 16]); // the header digest, sealed below
    file.extend(0u64.to_le_bytes());
    let mut at = 64 + 3 * 56;
    for (k, s) in sections.iter().enumerate() {
        file.extend((k as u32 + 1).to_le_bytes());
        file.extend(0u32.to_le_bytes());
        file.extend((at as u64).to_le_bytes());
        file.extend((s.len() as u64).to_le_bytes());
        file.extend(blake3::hash(s).as_bytes());
        at += s.len();
    }
    for s in sections {
        file.extend(s.iter());
    }
    let mut h = blake3::Hasher::new();
    h.update(&file[..40]);
    h.update(&file[64..232]);
    let d = *h.finalize().as_bytes();
    file[40..56].copy_from_slice(&d[..16]);
    file
}

fn open(dir: &Path, bytes: &[u8], v: Verification) -> Option<BaseHeap> {
    let p = dir.join("hostile.cowheap");
    std::fs::write(&p, bytes).unwrap();
    BaseHeap::open_with(&p, v).ok()
}

/// Everything a user may do with a base and a tenant of it; each result is dropped, since a
/// typed error is as good an answer as any for hostile input.
fn exercise(heap: BaseHeap) {
    let n = heap.len();
    for i in heap.indices() {
        let _ = heap.object(i);
        let _ = heap.size(i);
        let _ = heap.class_word(i);
        let _ = heap.hash(i);
    }
    for kind in [ImageKind::V3, ImageKind::Spur32, ImageKind::Spur64] {
        let options = ExportOptions {
            kind: Some(kind),
            ..ExportOptions::default()
        };
        let _ = cowheap::squeak::export_bytes_with(&heap, &options);
    }
    let base = Base::new(heap);
    // A tenant that wrote nothing reads what the heap reads, in place or not, whatever the
    // file holds.
    let fresh = Tenant::fork(&base);
    let (heap, r) = (base.heap(), fresh.reader());
    for i in 0..n {
        let x = cowheap::ObjectIndex::new(i).unwrap();
        let v = Value::from(Word::base(x));
        for s in 0..6 {
            let want = heap.slot(v, s).ok().map(|w| w.word());
            assert_eq!(
                fresh.slot(v, s).ok().map(|w| w.word()),
                want,
                "{i} slot {s}"
            );
            assert_eq!(r.slot(v, s).ok().map(|w| w.word()), want, "{i} slot {s}");
        }
        let class = heap.class_word(x).ok();
        assert_eq!(fresh.class_of(v).ok().map(|c| c.word()), class, "{i} class");
        assert_eq!(r.class_of(v).ok().map(|c| c.word()), class, "{i} class");
        assert_eq!(fresh.size(v).ok(), heap.size(x).ok(), "{i} size");
        assert_eq!(r.size(v).ok(), heap.size(x).ok(), "{i} size");
        assert_eq!(fresh.format(v).ok(), heap.format(x).ok(), "{i} format");
        assert_eq!(r.format(v).ok(), heap.format(x).ok(), "{i} format");
        assert_eq!(fresh.identity_hash(v).ok(), heap.hash(x).ok(), "{i} hash");
        assert_eq!(r.identity_hash(v).ok(), heap.hash(x).ok(), "{i} hash");
        assert_eq!(fresh.bytes(v).ok(), heap.bytes(x).ok(), "{i} bytes");
        assert_eq!(r.bytes(v).ok(), heap.bytes(x).ok(), "{i} bytes");
    }
    let mut t = Tenant::fork(&base);
    for i in 0..n {
        let v = Value::from(Word::base(cowheap::ObjectIndex::new(i).unwrap()));
        for s in 0..6 {
            let _ = t.slot(v, s);
        }
        let _ = t.class_of(v);
        let _ = t.size(v);
        let _ = t.identity_hash(v);
        let _ = t.bytes(v);
        let _ = t.set_slot(v, 0, Value::int(7));
        if let Ok(w) = t.slot(v, 1) {
            let _ = t.set_slot(v, 0, w);
            let _ = t.class_of(w);
        }
    }
    for r in base.heap().roots() {
        let _ = t.slot(Value::from(r.value), 0);
    }
    t.collect();
    let snap = t.snapshot();
    if let Ok(mut back) = Tenant::restore_from(&base, &snap) {
        back.collect();
        let _ = back.snapshot();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: common::cases(256),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/hostile_images.txt",
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_images_are_refused_or_usable_without_a_panic(img in image()) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&img);
        if let Some(heap) = open(dir.path(), &bytes, Verification::Full) {
            // Verified: every object and every slot reads.
            for i in heap.indices() {
                let o = heap.object(i).unwrap();
                for s in 0..o.slots.len() {
                    heap.slot_word(i, s).unwrap();
                }
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| exercise(heap)));
            prop_assert!(outcome.is_ok(), "a verified base panicked");
        }
        if let Some(heap) = open(dir.path(), &bytes, Verification::Trust) {
            let outcome = catch_unwind(AssertUnwindSafe(|| exercise(heap)));
            prop_assert!(outcome.is_ok(), "a trusted base panicked");
        }
    }
}

#[test]
fn the_generator_makes_files_that_verify_as_well_as_files_that_do_not() {
    // Without this, a generator that only ever made broken files would pass the property
    // above without testing anything past the first check.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::deterministic();
    let (mut verified, mut trusted, mut refused) = (0, 0, 0);
    for _ in 0..300 {
        let img = image().new_tree(&mut runner).unwrap().current();
        let bytes = encode(&img);
        match (
            open(dir.path(), &bytes, Verification::Full).is_some(),
            open(dir.path(), &bytes, Verification::Trust).is_some(),
        ) {
            (true, _) => verified += 1,
            (false, true) => trusted += 1,
            (false, false) => refused += 1,
        }
    }
    println!("verified {verified}, trusted only {trusted}, refused {refused}");
    assert!(
        verified > 0 && trusted > 0 && refused > 0,
        "{verified} {trusted} {refused}"
    );
}
