//! What a target format cannot hold is an `Unrepresentable` error naming the object, never a
//! quietly changed image: identity hashes wider than the header's field, raw bytes in a
//! pointer object, a compiled method whose slots disagree with its header, a class whose
//! identity hash is another class's Spur class index, a class that is no class. A class
//! the Spur class table does not hold at all is entered into it at its hash.

mod common;

use common::*;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, Verification, Word};
use cowheap_squeak::{
    ByteOrder, ExportError, ExportOptions, ImageFormat, export_bytes_with, import_bytes,
};

/// Object `at` of `heap` edited by `edit`, exported to `format`: refused, naming it.
fn assert_unrepresentable(
    heap: &BaseHeap,
    format: ImageFormat,
    at: u32,
    edit: &dyn Fn(&mut Proto),
    what: &str,
) {
    let x = ObjectIndex::from_u32(at);
    let edited = rebuild_edited(heap, &[], None, &|y, p| {
        if y == x {
            edit(p)
        }
    });
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(format)
    };
    let e = export_bytes_with(&edited, &options);
    assert!(
        matches!(e, Err(ExportError::Unrepresentable { object, .. }) if object == x),
        "{what} in {format:?}: {:?}",
        e.map(|b| b.len())
    );
}

/// A pointer object of the image that is neither nil nor a class-table page: the special
/// objects array.
fn pointers(heap: &BaseHeap) -> u32 {
    heap.root("specialObjects")
        .unwrap()
        .as_base()
        .unwrap()
        .as_u32()
}

#[test]
fn identity_hashes_wider_than_the_header_are_refused() {
    let v3 = scratch();
    let at = pointers(&v3.heap);
    for hash in [0xFFFF_FFFF, 0x1000] {
        assert_unrepresentable(&v3.heap, v3.format, at, &|p| p.hash = hash, "a wide hash");
    }
    let spur = headless();
    let at = pointers(&spur.heap);
    for format in [
        ImageFormat::spur32(ByteOrder::Little),
        ImageFormat::spur64(ByteOrder::Big),
    ] {
        assert_unrepresentable(
            &spur.heap,
            format,
            at,
            &|p| p.hash = 0x40_0000,
            "a 23-bit hash",
        );
    }
}

/// `heap` saved as a cowheap image file in which the first byte object of `len` bytes is
/// made a pointer object, opened again without verifying objects: the only way a base gets
/// such an object, since the builder and a verified open refuse it. Returns the base and
/// the object.
fn pointers_with_bytes(heap: &BaseHeap, len: usize) -> (BaseHeap, ObjectIndex, tempfile::TempDir) {
    let x = heap
        .indices()
        .find(|&x| {
            let o = heap.object(x).unwrap();
            o.format == Format::Bytes && o.bytes.len() == len
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.cowheap");
    heap.save(&path).unwrap();
    let mut file = std::fs::read(&path).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    // Section table at 64, 56 bytes an entry: objects, then offsets; each entry's file
    // offset at +8.
    let objects = usize::try_from(u64_at(&file, 64 + 8)).unwrap();
    let offsets = usize::try_from(u64_at(&file, 64 + 56 + 8)).unwrap();
    let word = usize::try_from(u64_at(&file, offsets + 8 * x.get())).unwrap();
    // Header word 2 holds the format code in bits 32..40.
    let code = objects + 8 * word + 16 + 4;
    assert_eq!(file[code], Format::Bytes.code());
    file[code] = Format::Pointers.code();
    std::fs::write(&path, &file).unwrap();
    let opened = BaseHeap::open_with(&path, Verification::Trust).unwrap();
    (opened, x, dir)
}

#[test]
fn raw_bytes_in_pointer_objects_are_refused() {
    let spur = headless();
    let (heap, x, _dir) = pointers_with_bytes(&spur.heap, 20);
    assert_eq!(heap.object(x).unwrap().format, Format::Pointers);
    for format in [
        ImageFormat::spur32(ByteOrder::Little),
        ImageFormat::spur64(ByteOrder::Big),
    ] {
        let options = ExportOptions {
            allow_missing_float_class: true,
            ..ExportOptions::exactly(format)
        };
        let e = export_bytes_with(&heap, &options);
        assert!(
            matches!(e, Err(ExportError::Unrepresentable { object, .. }) if object == x),
            "{format:?}: {:?}",
            e.map(|b| b.len())
        );
    }
    let v3 = scratch();
    let (heap, x, _dir) = pointers_with_bytes(&v3.heap, 20);
    let e = cowheap_squeak::export_bytes(&heap, v3.format);
    assert!(
        matches!(e, Err(ExportError::Unrepresentable { object, .. }) if object == x),
        "V3: {:?}",
        e.map(|b| b.len())
    );
}

/// A compiled method whose slots are not the literal count its header gives (one literal
/// more, or a header that is no SmallInteger) is refused: read back, the header's count
/// would move the boundary between literals and bytecodes, and the method would come back
/// another (before, it was written, and read back with a literal fewer and more bytes).
#[test]
fn compiled_methods_whose_literals_disagree_with_their_header_are_refused() {
    for imported in [scratch(), headless()] {
        let heap = &imported.heap;
        let m = heap
            .indices()
            .find(|&x| heap.object(x).unwrap().format == Format::CompiledMethod)
            .unwrap();
        // As it is, the method is written.
        let same = rebuild_edited(heap, &[], None, &|_, _| {});
        let options = ExportOptions {
            allow_missing_float_class: true,
            ..ExportOptions::exactly(imported.format)
        };
        assert!(export_bytes_with(&same, &options).is_ok());
        let extra = cowheap_heap::Value::int(5).word();
        assert_unrepresentable(
            heap,
            imported.format,
            m.as_u32(),
            &|p| p.slots.push(extra),
            "a literal more than the header says",
        );
        assert_unrepresentable(
            heap,
            imported.format,
            m.as_u32(),
            &|p| p.slots[0] = heap.nil().word(),
            "a header that is no SmallInteger",
        );
    }
}

/// A compiled method without slots (no header) is refused: written, its first bytes would
/// be read back as its header, and the method would come back another object, if the image
/// read back at all.
#[test]
fn compiled_methods_without_a_header_are_refused() {
    for imported in [scratch(), headless()] {
        let heap = &imported.heap;
        let ws = imported.format.word_bytes();
        let m = heap
            .indices()
            .find(|&x| {
                let o = heap.object(x).unwrap();
                o.format == Format::CompiledMethod && o.bytes.len() >= 2 * ws
            })
            .unwrap();
        // Bytes whose first word reads as the header of a method without literals.
        assert_unrepresentable(
            heap,
            imported.format,
            m.as_u32(),
            &|p| {
                p.slots.clear();
                p.bytes.truncate(2 * ws);
                p.bytes.fill(0x55);
                p.bytes[..ws].fill(0);
                p.bytes[0] = 1;
            },
            "no header slot",
        );
        assert_unrepresentable(
            heap,
            imported.format,
            m.as_u32(),
            &|p| p.slots.clear(),
            "no header slot, the method's own bytes",
        );
    }
}

/// A class a commit added whose identity hash is the class index of another class, or no
/// class index at all, is refused: read back, its instance would be an instance of the other
/// class (before, one came back an instance of True), or of none.
#[test]
fn a_class_whose_hash_is_taken_or_no_class_index_is_refused() {
    let h = &headless().heap;
    let true_class = h
        .class_word(h.root("true").unwrap().as_base().unwrap())
        .unwrap()
        .as_base()
        .unwrap();
    for hash in [h.hash(true_class).unwrap(), 5] {
        let heap = committed_new_class(Some(hash));
        let e = export_bytes_with(&heap, &ExportOptions::default());
        assert!(
            matches!(e, Err(ExportError::Unsupported(_))),
            "{hash}: {:?}",
            e.map(|b| b.len())
        );
    }
    // The image as it is still exports.
    assert!(export_bytes_with(h, &ExportOptions::default()).is_ok());
}

/// A class a commit added enters the class table at the index that is its identity hash,
/// as a Spur VM enters a class, so that its hash stays what every hashed collection holding
/// it was hashed by: at a free entry of a page the base has, in a page the base lacks
/// (written as a new hidden page), and at a hash drawn for it. Read back, in Spur 32 and 64
/// and both byte orders, its instance is an instance of it, with its hash, and the table
/// holds it at that index; before, every such export was refused.
#[test]
fn a_class_a_commit_added_enters_the_class_table_at_its_hash() {
    let h = &headless().heap;
    let roots = ObjectIndex::from_u32(4);
    let nil = h.nil().word();
    let page0 = h.get_slot(roots, 0).unwrap().as_base().unwrap();
    let free = (32..1024)
        .find(|&k| h.get_slot(page0, k) == Some(nil))
        .unwrap();
    assert_eq!(
        h.get_slot(roots, 100),
        Some(nil),
        "page 100 is one the base lacks"
    );
    let formats = [
        ImageFormat::spur32(ByteOrder::Little),
        ImageFormat::spur32(ByteOrder::Big),
        ImageFormat::spur64(ByteOrder::Little),
    ];
    for hash in [Some(free as u32), Some(100 * 1024 + 5), None] {
        let heap = committed_new_class(hash);
        // The instance: the one new object with the single slot 7.
        let inst = (h.len()..heap.len())
            .map(|i| ObjectIndex::from_u32(i as u32))
            .find(|&x| {
                heap.object(x)
                    .is_ok_and(|o| o.slots.len() == 1 && o.slots[0].as_int() == Some(7))
            })
            .unwrap();
        let class = heap.class_word(inst).unwrap().as_base().unwrap();
        let ci = heap.hash(class).unwrap();
        if let Some(hash) = hash {
            assert_eq!(ci, hash);
        }
        for (format, segment_bytes) in formats.into_iter().zip([None, Some(8192), None]) {
            let options = ExportOptions {
                allow_missing_float_class: true,
                segment_bytes,
                ..ExportOptions::exactly(format)
            };
            let bytes = export_bytes_with(&heap, &options)
                .unwrap_or_else(|e| panic!("{hash:?} {format:?}: {e}"));
            let back = cowheap_squeak::import_bytes(&bytes).unwrap().heap;
            let o = back.object(inst).unwrap();
            assert_eq!(o.slots[0].as_int(), Some(7), "{hash:?} {format:?}");
            let c = back.class_word(inst).unwrap().as_base().unwrap();
            assert_eq!(back.hash(c).unwrap(), ci, "{hash:?} {format:?}");
            assert_eq!(
                back.object(c).unwrap().slots.len(),
                heap.object(class).unwrap().slots.len()
            );
            let page = back
                .get_slot(roots, (ci / 1024) as usize)
                .and_then(|w| w.as_base())
                .unwrap();
            assert_eq!(
                back.get_slot(page, (ci % 1024) as usize),
                Some(cowheap_heap::Word::base(c)),
                "{hash:?} {format:?}: the table holds the class at its hash"
            );
            // The pages are contiguous from the first, as a Spur VM counts them.
            let last = (ci / 1024) as usize;
            assert!(
                (0..=last).all(|n| back.get_slot(roots, n) != Some(back.nil().word())),
                "{hash:?} {format:?}: a nil page below page {last}"
            );
            // Read back, the table holds the class: written again, the file is the same.
            let again = export_bytes_with(&back, &options).unwrap();
            assert!(
                again == bytes,
                "{hash:?} {format:?}: written again, another file"
            );
        }
    }
}

/// An object whose class is no class (not an object of pointers whose third slot, the
/// format, is a small integer) is refused: the importers take no such class, so the file
/// would not read back (before, a V3 export wrote a class word naming a Symbol, and a Spur
/// export wrote nil's identity hash as a class index wherever the class table held nil
/// there, each a file refused as `NotAClass` or `BadClassIndex`).
#[test]
fn a_class_that_is_no_class_is_refused() {
    let v3 = scratch();
    let at = pointers(&v3.heap);
    let symbol = v3
        .heap
        .indices()
        .find(|&x| cowheap_squeak::classes::symbol_text_of(&v3.heap, x).is_some())
        .unwrap();
    let true_object = v3.heap.root("true").unwrap().word();
    for class in [Word::base(symbol), true_object] {
        assert_unrepresentable(
            &v3.heap,
            v3.format,
            at,
            &|p| p.class = class,
            "a Symbol or true as class",
        );
    }
    // nil as class still exports and reads back, in V3: the importer takes it.
    let nil = v3.heap.nil().word();
    let x = ObjectIndex::from_u32(at);
    let edited = rebuild_edited(&v3.heap, &[], None, &|y, p| {
        if y == x {
            p.class = nil
        }
    });
    let back =
        import_bytes(&export_bytes_with(&edited, &ExportOptions::default()).unwrap()).unwrap();
    assert_eq!(back.heap.class_word(x).unwrap(), nil);

    // Spur: nil given the identity hash of an empty class-table entry (nil, in page 0),
    // then made the class of the special objects array; and a Symbol entered in the table
    // at its own hash, made the class of the special objects array.
    let spur = headless();
    let h = &spur.heap;
    let hidden_roots = ObjectIndex::from_u32(4);
    let page = h.get_slot(hidden_roots, 0).unwrap().as_base().unwrap();
    let nil = h.nil().word();
    let empty = (32..1024)
        .find(|&k| h.get_slot(page, k) == Some(nil))
        .unwrap();
    let at = ObjectIndex::from_u32(pointers(h));
    let nil_index = h.nil().as_base().unwrap();
    let nil_class = rebuild_edited(h, &[], None, &|y, p| {
        if y == nil_index {
            p.hash = empty as u32;
        }
        if y == at {
            p.class = nil;
        }
    });
    let symbol = h
        .indices()
        .find(|&x| cowheap_squeak::classes::symbol_text_of(h, x).is_some())
        .unwrap();
    let symbol_class = rebuild_edited(h, &[], None, &|y, p| {
        if y == symbol {
            p.hash = empty as u32;
        }
        if y == page {
            p.slots[empty] = Word::base(symbol);
        }
        if y == at {
            p.class = Word::base(symbol);
        }
    });
    for heap in [nil_class, symbol_class] {
        let e = export_bytes_with(&heap, &ExportOptions::default());
        assert!(
            matches!(e, Err(ExportError::Unrepresentable { object, .. }) if object == at),
            "{:?}",
            e.map(|b| import_bytes(&b).map(|_| ()))
        );
    }
}

/// An ephemeron a collection fired (plain pointers now, its class still an ephemeron
/// class) is written with Spur's non-indexable format, 1, as Spur's collector leaves one;
/// an ephemeron not fired keeps format 5. Before, the fired one was written as 2, which a
/// VM reads as indexable.
#[test]
fn a_fired_ephemeron_is_written_non_indexable() {
    use cowheap_forwarders::Base;
    use cowheap_heap::{ObjectSize, Value};
    use cowheap_squeak::auxbits::Aux;
    use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
    use cowheap_tenants::{Tenant, TenantConfig, Weakness};
    let base = Base::new(
        cowheap_squeak::import_bytes(&image_bytes(HEADLESS))
            .unwrap()
            .heap,
    );
    let repo = Repository::with_config(base.clone(), CommitRights::Anyone, TenantConfig::default());
    let mut t = repo.fork();
    let special = base.heap().root("specialObjects").unwrap();
    let array = t.class_of(special).unwrap();
    let meta = t.class_of(array).unwrap();
    let n = t.size(array).unwrap().slots;
    let slots: Vec<Value> = (0..n).map(|i| t.slot(array, i).unwrap()).collect();
    let class = t.alloc_with(meta, Format::Pointers, &slots, &[]).unwrap();
    t.set_slot(class, 2, Value::int((5 << 16) | 2)).unwrap();
    let two = ObjectSize { slots: 2, bytes: 0 };
    let fired = t.alloc(class, Format::Ephemeron, two).unwrap();
    let kept = t.alloc(class, Format::Ephemeron, two).unwrap();
    let key = t.alloc_with(array, Format::Pointers, &[], &[]).unwrap();
    t.set_slot(fired, 0, key).unwrap();
    t.set_slot(kept, 0, special).unwrap();
    t.set_root("fired", fired).unwrap();
    t.set_root("kept", kept).unwrap();
    let nil = base.heap().nil();
    let none = |_: &Tenant, _: Value| None;
    let mut mourners = Vec::new();
    let out = t
        .try_collect_ephemerons(
            &Weakness {
                nil,
                strong_slots: &none,
            },
            &mut mourners,
        )
        .unwrap();
    assert_eq!(out.fired, 1);
    let v = repo
        .commit_with(&mut t, "me", CommitMode::WriteWrite, &[fired, kept])
        .unwrap();
    let heap = v.flatten().unwrap();
    // The two new ephemeron-class objects, by their formats.
    let find = |h: &BaseHeap, format: Format| {
        (base.heap().len()..h.len())
            .map(|i| ObjectIndex::from_u32(i as u32))
            .find(|&x| {
                h.object(x)
                    .is_ok_and(|o| o.format == format && o.slots.len() == 2)
            })
            .unwrap()
    };
    let (f, k) = (
        find(&heap, Format::Pointers),
        find(&heap, Format::Ephemeron),
    );
    for format in [
        ImageFormat::spur32(ByteOrder::Little),
        ImageFormat::spur64(ByteOrder::Big),
    ] {
        let options = ExportOptions {
            allow_missing_float_class: true,
            ..ExportOptions::exactly(format)
        };
        let back = import_bytes(&export_bytes_with(&heap, &options).unwrap())
            .unwrap()
            .heap;
        let code = |x| match Aux::decode(back.object(x).unwrap().aux) {
            Aux::Spur(a) => a.format,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(f), 1, "{format:?}: the fired one");
        assert_eq!(code(k), 5, "{format:?}: the one not fired");
    }
}
