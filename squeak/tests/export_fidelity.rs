//! What an exported image says to a Squeak VM about objects a tenant made or changed, and
//! about execution state across word sizes: a context's pc and a closure's start pc keep
//! pointing at the same bytecode when a Spur image changes word size; a V3 header's compact
//! class index names the object's class after a class change; a new pointer object gets the
//! format its class's instance specification says (fixed, indexable, or both); a Spur class
//! index kept in a root is used only while the class table still holds the object's class
//! there; a hidden Spur object given a class, or referred to by an ordinary object, is
//! refused rather than written as another graph; and a V3 file whose class word names
//! another class than its compact class index (which a VM reads first) is refused on
//! import.

mod common;

use common::*;
use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, Value, Word};
use cowheap_squeak::auxbits::Aux;
use cowheap_squeak::{ByteOrder, ExportOptions, ImageFormat, class_name_of, export_bytes_with};
use cowheap_tenants::Tenant;
use cowheap_tenants::TenantConfig;
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
use std::sync::Arc;

/// Special object `k` of `heap`.
fn special(heap: &BaseHeap, k: usize) -> Option<ObjectIndex> {
    let s = heap.root("specialObjects").unwrap().as_base().unwrap();
    heap.get_slot(s, k).and_then(Word::as_base)
}

/// A repository over `heap`, and a tenant forked from it.
fn repo(heap: BaseHeap) -> (Repository, Tenant) {
    let repo = Repository::with_config(
        Base::new(heap),
        CommitRights::Anyone,
        TenantConfig::default(),
    );
    let t = repo.fork();
    (repo, t)
}

/// The tenant's changes (and the objects `roots` reach) committed and flattened.
fn committed(repo: &Repository, t: &mut Tenant, roots: &[Value]) -> Arc<Base> {
    repo.commit_with(t, "me", CommitMode::WriteWrite, roots)
        .unwrap();
    repo.flatten().unwrap()
}

/// A class of `heap` with an instance whose class is named `name`.
fn class_named(heap: &BaseHeap, name: &str) -> ObjectIndex {
    heap.indices()
        .find(|&x| class_name_of(heap, x).as_deref() == Some(name))
        .map(|x| heap.class_word(x).unwrap().as_base().unwrap())
        .unwrap_or_else(|| panic!("no instance of {name}"))
}

/// The bytecode offset a pc names in `method`: past its header and literals, of `ws` bytes.
fn bytecode_offset(heap: &BaseHeap, method: ObjectIndex, pc: i64, ws: i64) -> i64 {
    let header = heap.get_slot(method, 0).unwrap().as_int().unwrap();
    pc - ((header & 0x7FFF) + 1) * ws
}

#[test]
fn a_word_size_change_keeps_a_contexts_pc_at_its_bytecode() {
    let h = &headless().heap;
    let ctx_class = special(h, 10).unwrap();
    let ctx = h
        .indices()
        .find(|&x| h.class_word(x).unwrap().as_base() == Some(ctx_class))
        .unwrap();
    let method = h.get_slot(ctx, 3).unwrap().as_base().unwrap();
    let pc = h.get_slot(ctx, 1).unwrap().as_int().unwrap();
    let at = bytecode_offset(h, method, pc, 4);
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let options = ExportOptions {
            allow_missing_float_class: true,
            ..ExportOptions::exactly(ImageFormat::spur64(order))
        };
        let wide = cowheap_squeak::import_bytes(&export_bytes_with(h, &options).unwrap()).unwrap();
        let pc64 = wide.heap.get_slot(ctx, 1).unwrap().as_int().unwrap();
        assert_eq!(
            bytecode_offset(&wide.heap, method, pc64, 8),
            at,
            "the context's pc in 64-bit Spur ({order:?}) names another bytecode"
        );
    }
}

/// A closure a tenant made over the image's context, in a 32-bit base: its start pc names
/// the same bytecode of the outer context's method in the 64-bit export.
#[test]
fn a_word_size_change_keeps_a_closures_start_pc_at_its_bytecode() {
    let h = &headless().heap;
    let ctx_class = special(h, 10).unwrap();
    let closure_class = special(h, 36).unwrap();
    let ctx = h
        .indices()
        .find(|&x| h.class_word(x).unwrap().as_base() == Some(ctx_class))
        .unwrap();
    let method = h.get_slot(ctx, 3).unwrap().as_base().unwrap();
    let (repo, mut t) = repo(rebuild(h, &[], None));
    let start = 4 * ((h.get_slot(method, 0).unwrap().as_int().unwrap() & 0x7FFF) + 1) + 3;
    let closure = t
        .alloc_with_hash(
            Value::shared(Word::base(closure_class)),
            Format::Pointers,
            &[
                Value::shared(Word::base(ctx)),
                Value::int(start),
                Value::int(0),
            ],
            &[],
            77,
        )
        .unwrap();
    let v = committed(&repo, &mut t, &[closure]);
    let x = (v.heap().len() - 1) as u32;
    let x = ObjectIndex::from_u32(x);
    assert_eq!(
        v.heap().class_word(x).unwrap().as_base(),
        Some(closure_class)
    );
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(ImageFormat::spur64(ByteOrder::Little))
    };
    let wide =
        cowheap_squeak::import_bytes(&export_bytes_with(v.heap(), &options).unwrap()).unwrap();
    let start64 = wide.heap.get_slot(x, 1).unwrap().as_int().unwrap();
    assert_eq!(
        bytecode_offset(&wide.heap, method, start64, 8),
        bytecode_offset(h, method, start, 4),
        "the closure's start pc names another bytecode"
    );
}

/// The class a V3 VM gives object `x` of an imported V3 base: the compact class its header's
/// index names when that index is not 0 (`fetchClassOf:`), else its class word.
fn v3_vm_class(heap: &BaseHeap, x: ObjectIndex) -> ObjectIndex {
    let Aux::V3(a) = Aux::decode(heap.object(x).unwrap().aux) else {
        panic!("{x} was not read from V3");
    };
    if a.compact_class == 0 {
        return heap.class_word(x).unwrap().as_base().unwrap();
    }
    let cc = special(heap, 28).unwrap();
    heap.get_slot(cc, usize::from(a.compact_class) - 1)
        .unwrap()
        .as_base()
        .unwrap()
}

#[test]
fn a_class_change_of_an_object_with_a_class_word_rewrites_its_compact_index() {
    let mini = cowheap_squeak::import_bytes(&image_bytes("mini.image")).unwrap();
    let h = &mini.heap;
    // An instance of a compact class written with a class word (a header of three words)
    // and its compact index, and a class that is not compact.
    let x = h
        .indices()
        .find(|&x| {
            matches!(Aux::decode(h.object(x).unwrap().aux),
                Aux::V3(a) if a.header_type != 3 && a.compact_class != 0)
        })
        .expect("an object with a class word and a compact index");
    let smalltalk = h.root("Smalltalk").unwrap().as_base().unwrap();
    let other = h.class_word(smalltalk).unwrap().as_base().unwrap();
    let (repo, mut t) = repo(rebuild(h, &[], None));
    t.set_class(
        Value::shared(Word::base(x)),
        Value::shared(Word::base(other)),
    )
    .unwrap();
    let v = committed(&repo, &mut t, &[]);
    assert_eq!(v.heap().class_word(x).unwrap().as_base(), Some(other));
    let bytes = export_bytes_with(v.heap(), &ExportOptions::default()).unwrap();
    let back = cowheap_squeak::import_bytes(&bytes).unwrap();
    assert_eq!(
        v3_vm_class(&back.heap, x),
        other,
        "a V3 VM reads the old compact class of {x}"
    );
}

/// The instance specification (0 to 3 for pointers) and fixed fields a class's format word
/// gives, in V3 or Spur.
fn inst_spec(heap: &BaseHeap, class: ObjectIndex, spur: bool) -> (u8, usize) {
    let f = heap.get_slot(class, 2).unwrap().as_int().unwrap();
    if spur {
        (((f >> 16) & 31) as u8, (f & 0xFFFF) as usize)
    } else {
        (
            ((f >> 7) & 15) as u8,
            (((f >> 10) & 0xC0) + ((f >> 1) & 0x3F) - 1) as usize,
        )
    }
}

/// New instances of `names` (each with as many slots as an existing one has, plus
/// `extra` indexed slots for indexable classes) committed, exported and imported again:
/// each header's format is its class's instance specification.
fn new_instances_get_their_class_format(heap: &BaseHeap, names: &[&str], spur: bool) {
    let classes: Vec<ObjectIndex> = names.iter().map(|n| class_named(heap, n)).collect();
    let (repo, mut t) = repo(rebuild(heap, &[], None));
    let nil = heap.nil();
    let mut made = Vec::new();
    for &c in &classes {
        let (spec, fixed) = inst_spec(heap, c, spur);
        let n = if spec >= 2 { fixed + 3 } else { fixed };
        let slots = vec![nil; n];
        let v = t
            .alloc_with_hash(
                Value::shared(Word::base(c)),
                Format::Pointers,
                &slots,
                &[],
                5,
            )
            .unwrap();
        made.push(v);
    }
    let v = committed(&repo, &mut t, &made);
    let vh = v.heap();
    let news: Vec<ObjectIndex> = (heap.len()..vh.len())
        .map(|i| ObjectIndex::from_u32(i as u32))
        .collect();
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::default()
    };
    let back = cowheap_squeak::import_bytes(&export_bytes_with(vh, &options).unwrap()).unwrap();
    for x in news {
        let class = back.heap.class_word(x).unwrap().as_base().unwrap();
        let name = cowheap_squeak::class_name(&back.heap, class).unwrap();
        let written = match Aux::decode(back.heap.object(x).unwrap().aux) {
            Aux::V3(a) => a.format,
            Aux::Spur(a) => a.format,
            Aux::None => panic!("no aux"),
        };
        assert_eq!(
            written,
            inst_spec(heap, class, spur).0,
            "a new {name} is written with format {written}"
        );
    }
}

#[test]
fn new_v3_pointer_objects_get_their_class_format() {
    let mini = cowheap_squeak::import_bytes(&image_bytes("mini.image")).unwrap();
    new_instances_get_their_class_format(
        &mini.heap,
        &["Association", "MethodDictionary", "Array"],
        false,
    );
}

#[test]
fn new_spur_pointer_objects_get_their_class_format() {
    new_instances_get_their_class_format(
        &headless().heap,
        &["Association", "MethodDictionary", "Array"],
        true,
    );
}

/// An object whose class index was kept in a root (its class is in the class table twice),
/// given another class by a tenant: the export names the new class, not the kept index.
#[test]
fn a_class_change_of_an_object_with_a_kept_class_index_exports_the_new_class() {
    let h = &headless().heap;
    let root = h
        .roots()
        .iter()
        .find(|r| r.name.starts_with("image.classIndex."))
        .unwrap();
    let x: u32 = root.name["image.classIndex.".len()..].parse().unwrap();
    let x = ObjectIndex::from_u32(x);
    let array = h
        .class_word(h.root("specialObjects").unwrap().as_base().unwrap())
        .unwrap()
        .as_base()
        .unwrap();
    assert_ne!(h.class_word(x).unwrap().as_base(), Some(array));
    let (repo, mut t) = repo(rebuild(h, &[], None));
    t.set_class(
        Value::shared(Word::base(x)),
        Value::shared(Word::base(array)),
    )
    .unwrap();
    let v = committed(&repo, &mut t, &[]);
    assert_eq!(v.heap().class_word(x).unwrap().as_base(), Some(array));
    let back = cowheap_squeak::import_bytes(
        &export_bytes_with(v.heap(), &ExportOptions::default()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        back.heap.class_word(x).unwrap().as_base(),
        Some(array),
        "{x} came back of class {:?}",
        class_name_of(&back.heap, x)
    );
}

/// A class index root that names an index where the class table holds another class (a base
/// whose roots were edited) does not give the object that class: the object keeps its own.
#[test]
fn a_kept_class_index_naming_another_class_is_not_written() {
    let h = &headless().heap;
    let root = h
        .roots()
        .iter()
        .find(|r| r.name.starts_with("image.classIndex."))
        .unwrap();
    let x: u32 = root.name["image.classIndex.".len()..].parse().unwrap();
    let x = ObjectIndex::from_u32(x);
    let array = h
        .class_word(h.root("specialObjects").unwrap().as_base().unwrap())
        .unwrap()
        .as_base()
        .unwrap();
    let array_index = i64::from(h.hash(array).unwrap());
    let edited = rebuild(h, &[(root.name.as_str(), array_index)], None);
    let back = cowheap_squeak::import_bytes(
        &export_bytes_with(&edited, &ExportOptions::default()).unwrap(),
    )
    .unwrap();
    assert_eq!(back.heap.class_word(x).unwrap(), h.class_word(x).unwrap());
}

/// A V3 object with a class word and a compact class index takes its class from the index
/// in a VM (`fetchClassOf:`): a file whose class word names another class is refused, not
/// read with the class word's class.
#[test]
fn a_class_word_that_disagrees_with_the_compact_index_is_refused() {
    let mut b = image_bytes("mini.image");
    let headers = v3_headers(&b);
    // A two-word header of a class that is not compact: its class word.
    let other = headers
        .iter()
        .find(|&&(_, hdr, t, _)| t == 1 && (le32(&b, hdr) >> 12) & 31 == 0)
        .map(|&(pos, _, _, _)| le32(&b, pos) & !3)
        .unwrap();
    // A header with a class word and a compact index: its class word made that class.
    let (pos, _, t, _) = headers
        .iter()
        .copied()
        .find(|&(_, hdr, t, _)| t != 3 && (le32(&b, hdr) >> 12) & 31 != 0)
        .unwrap();
    let at = if t == 0 { pos + 4 } else { pos };
    b[at..at + 4].copy_from_slice(&(other | t).to_le_bytes());
    let e = cowheap_squeak::import_bytes(&b);
    assert!(
        matches!(e, Err(cowheap_squeak::ImportError::BadHeader { .. })),
        "{:?}",
        e.map(|_| ())
    );
}

/// A hidden Spur object (a forwarder, a free chunk: its class index a pun below 32) has no
/// class; given one by a tenant, it cannot be written with its pun, which reads back as no
/// class: the export is refused, naming it.
#[test]
fn a_hidden_object_given_a_class_is_refused() {
    let h = &headless().heap;
    let x = h
        .indices()
        .filter(|&x| x.get() > 4)
        .find(|&x| {
            Aux::decode(h.object(x).unwrap().aux).is_hidden()
                && h.object(x).unwrap().slots.is_empty()
        })
        .unwrap();
    let array = h
        .class_word(h.root("specialObjects").unwrap().as_base().unwrap())
        .unwrap();
    let (repo, mut t) = repo(rebuild(h, &[], None));
    t.set_class(Value::shared(Word::base(x)), Value::shared(array))
        .unwrap();
    let v = committed(&repo, &mut t, &[]);
    assert_eq!(v.heap().class_word(x).unwrap(), array);
    let e = export_bytes_with(v.heap(), &ExportOptions::default());
    assert!(
        matches!(e, Err(cowheap_squeak::ExportError::Unrepresentable { object, .. }) if object == x),
        "{:?}",
        e.map(|b| b.len())
    );
}

/// A reference from an ordinary object to a hidden one (a forwarder, which a tenant can
/// name, as `someObject`/`nextObject` walks may reach it): a Spur VM would follow the
/// forwarder to its target, and the importer reads the reference so, so the file says
/// another graph. The export is refused, naming the referring object.
#[test]
fn a_reference_to_a_hidden_object_is_refused() {
    let h = &headless().heap;
    let forwarder = h
        .indices()
        .find(
            |&x| matches!(Aux::decode(h.object(x).unwrap().aux), Aux::Spur(a) if a.pun == Some(8)),
        )
        .unwrap();
    let array = h
        .class_word(h.root("specialObjects").unwrap().as_base().unwrap())
        .unwrap();
    let (repo, mut t) = repo(rebuild(h, &[], None));
    let a = t
        .alloc_with_hash(
            Value::shared(array),
            Format::Pointers,
            &[Value::shared(Word::base(forwarder))],
            &[],
            6,
        )
        .unwrap();
    let v = committed(&repo, &mut t, &[a]);
    let x = ObjectIndex::from_u32((v.heap().len() - 1) as u32);
    assert_eq!(v.heap().get_slot(x, 0), Some(Word::base(forwarder)));
    let e = export_bytes_with(v.heap(), &ExportOptions::default());
    if let Ok(bytes) = &e {
        let back = cowheap_squeak::import_bytes(bytes).map(|b| b.heap.get_slot(x, 0));
        println!("written; read back as {back:?}");
    }
    assert!(
        matches!(e, Err(cowheap_squeak::ExportError::Unrepresentable { object, .. }) if object == x),
        "{:?}",
        e.map(|b| b.len())
    );
}
