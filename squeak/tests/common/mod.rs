//! Finding the real images and walking imported graphs.
#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

pub(crate) mod spur_writer;

use cowheap_heap::{BaseHeap, Builder, Format, ObjectIndex, Word};
use cowheap_squeak::Imported;
use std::path::PathBuf;
use std::sync::OnceLock;

pub(crate) const SCRATCH: &str = "Scratch-1.4.0.6.image";
pub(crate) const HEADLESS: &str = "headless-spur32.image";

/// The folder holding the real images: `COWHEAP_IMAGES`, else `../shared/images` beside the
/// repository.
pub(crate) fn images_dir() -> PathBuf {
    match std::env::var_os("COWHEAP_IMAGES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/images")),
    }
}

/// The bytes of a real image; a missing file fails the test with how to get it.
pub(crate) fn image_bytes(name: &str) -> Vec<u8> {
    let path = images_dir().join(name);
    match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot read the real image {} ({e}). Set COWHEAP_IMAGES to the folder holding it, \
             or put it in ../shared/images. Scratch.image comes from Debian 12's `scratch` \
             package: `apt-get update && apt-get download scratch && dpkg-deb -x scratch_*_all.deb DIR`, \
             then DIR/usr/share/scratch/Scratch.image, renamed {SCRATCH}. The Spur image is \
             headless/headless.image of the SqueakJS repository (codefrau/SqueakJS), renamed {HEADLESS}. \
             See ../shared/images/README.md for their SHA-256.",
            path.display()
        ),
    }
}

/// Each real image imported once per test binary.
pub(crate) fn scratch() -> &'static Imported {
    static S: OnceLock<Imported> = OnceLock::new();
    S.get_or_init(|| cowheap_squeak::import_bytes(&image_bytes(SCRATCH)).expect("Scratch imports"))
}

pub(crate) fn headless() -> &'static Imported {
    static S: OnceLock<Imported> = OnceLock::new();
    S.get_or_init(|| {
        cowheap_squeak::import_bytes(&image_bytes(HEADLESS)).expect("headless imports")
    })
}

/// Objects reachable from `from` through slots and class words.
pub(crate) fn reachable(heap: &BaseHeap, from: ObjectIndex) -> usize {
    reachable_from(heap, from, true)
}

/// Objects reachable from `from` through pointer slots, and class words if `classes`.
pub(crate) fn reachable_from(heap: &BaseHeap, from: ObjectIndex, classes: bool) -> usize {
    let mut seen = vec![false; heap.len()];
    let mut stack = vec![from];
    seen[from.get()] = true;
    let mut n = 0;
    while let Some(x) = stack.pop() {
        n += 1;
        let o = heap.object(x).unwrap();
        let class = classes.then_some(&o.class);
        for w in class.into_iter().chain(o.slots) {
            if let Some(y) = w.as_base()
                && !seen[y.get()]
            {
                seen[y.get()] = true;
                stack.push(y);
            }
        }
    }
    n
}

/// Asserts two bases hold the same graph: every object's class, format, hash, slots and
/// bytes, the roots and the immediate classes.
pub(crate) fn assert_same_graph(a: &BaseHeap, b: &BaseHeap) {
    assert_eq!(a.len(), b.len(), "object counts differ");
    for x in a.indices() {
        let (p, q) = (a.object(x).unwrap(), b.object(x).unwrap());
        assert_eq!(p.class, q.class, "class of {x}");
        assert_eq!(p.format, q.format, "format of {x}");
        assert_eq!(p.hash, q.hash, "hash of {x}");
        assert_eq!(p.slots, q.slots, "slots of {x}");
        assert_eq!(p.bytes, q.bytes, "bytes of {x}");
    }
    let names = |h: &BaseHeap| {
        h.roots()
            .iter()
            .filter(|r| !r.name.starts_with("image."))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(names(a), names(b), "roots differ");
    assert_eq!(
        a.int_class().map(|v| v.word()),
        b.int_class().map(|v| v.word())
    );
    assert_eq!(
        a.char_class().map(|v| v.word()),
        b.char_class().map(|v| v.word())
    );
}

/// `heap` built again object by object, with each root of `roots` set to its integer (added
/// if missing) and, if `float_class` is given, that class of immediate floats.
pub(crate) fn rebuild(
    heap: &BaseHeap,
    roots: &[(&str, i64)],
    float_class: Option<Word>,
) -> BaseHeap {
    rebuild_edited(heap, roots, float_class, &|_, _| {})
}

/// An object as [`rebuild_edited`] adds it.
#[derive(Debug)]
pub(crate) struct Proto {
    pub(crate) class: Word,
    pub(crate) format: Format,
    pub(crate) hash: u32,
    pub(crate) slots: Vec<Word>,
    pub(crate) bytes: Vec<u8>,
}

/// [`rebuild`], each object first given to `edit`.
pub(crate) fn rebuild_edited(
    heap: &BaseHeap,
    roots: &[(&str, i64)],
    float_class: Option<Word>,
    edit: &dyn Fn(ObjectIndex, &mut Proto),
) -> BaseHeap {
    let mut b = Builder::new();
    let nil = heap.nil().as_base().unwrap();
    for x in heap.indices() {
        let o = heap.object(x).unwrap();
        let mut p = Proto {
            class: o.class,
            format: o.format,
            hash: o.hash,
            slots: o.slots.to_vec(),
            bytes: o.bytes.to_vec(),
        };
        edit(x, &mut p);
        let w = if x == nil {
            let w = b.add_nil();
            b.set_class(w, p.class).unwrap();
            w
        } else {
            b.add(p.class, p.format, p.slots, p.bytes).unwrap()
        };
        b.set_hash(w, p.hash).unwrap();
        b.set_aux(w, o.aux).unwrap();
    }
    let int = |name: &str| {
        roots
            .iter()
            .find(|r| r.0 == name)
            .map(|r| Word::int(r.1).unwrap())
    };
    for r in heap.roots() {
        b.add_root(&r.name, int(&r.name).unwrap_or(r.value))
            .unwrap();
    }
    for (name, v) in roots {
        if heap.root(name).is_none() {
            b.add_root(name, Word::int(*v).unwrap()).unwrap();
        }
    }
    let word = |v: Option<cowheap_heap::Value>| v.map(|v| v.word());
    b.set_immediate_classes(word(heap.int_class()), word(heap.char_class()));
    b.set_float_class(float_class.or(word(heap.float_class())));
    b.freeze().unwrap()
}

/// The little-endian 32-bit word at byte `at` of `b`.
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Every object of a little-endian V3 image file, in order: (byte offset of its first
/// header word, byte offset of its base header, header type, words from the base header
/// on).
pub(crate) fn v3_headers(b: &[u8]) -> Vec<(usize, usize, u32, usize)> {
    let hs = le32(b, 4) as usize;
    let end = hs + le32(b, 8) as usize;
    let mut out = Vec::new();
    let mut pos = hs;
    while pos < end {
        let w = le32(b, pos);
        let (hdr, words) = match w & 3 {
            0 => (pos + 8, (w >> 2) as usize),
            1 => (pos + 4, ((le32(b, pos + 4) >> 2) & 63) as usize),
            _ => (pos, ((w >> 2) & 63) as usize),
        };
        out.push((pos, hdr, w & 3, words));
        pos = hdr + 4 * words;
    }
    out
}

/// Every object of a little-endian, one-segment, 32-bit Spur image: the byte offset in the
/// file of its (main) header and its slot count.
pub(crate) fn spur32_objects(b: &[u8]) -> Vec<(usize, usize)> {
    let hs = le32(b, 4) as usize;
    let end = hs + le32(b, 8) as usize - 16;
    let mut out = Vec::new();
    let mut pos = hs;
    while pos < end {
        let (mut hdr, mut slots) = (pos, (le32(b, pos + 4) >> 24) as usize);
        if slots == 255 {
            slots = le32(b, pos) as usize;
            hdr = pos + 8;
        }
        out.push((hdr, slots));
        pos = hdr + 8 + (slots * 4).max(8).next_multiple_of(8);
    }
    out
}

/// The headless image with a class a commit added (a copy of Array's class, its identity
/// hash `hash` or one drawn at random) and an instance of it, flattened into a heap.
pub(crate) fn committed_new_class(hash: Option<u32>) -> BaseHeap {
    use cowheap_forwarders::Base;
    use cowheap_heap::Value;
    use cowheap_tenants::TenantConfig;
    use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
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
    let n = base
        .heap()
        .size(base.heap().index_of(array).unwrap())
        .unwrap()
        .slots;
    let slots: Vec<Value> = (0..n).map(|i| t.slot(array, i).unwrap()).collect();
    let class = match hash {
        Some(h) => t
            .alloc_with_hash(meta, Format::Pointers, &slots, &[], h)
            .unwrap(),
        None => t.alloc_with(meta, Format::Pointers, &slots, &[]).unwrap(),
    };
    let inst = t
        .alloc_with(class, Format::Pointers, &[Value::int(7)], &[])
        .unwrap();
    let v = repo
        .commit_with(&mut t, "me", CommitMode::WriteWrite, &[inst])
        .unwrap();
    v.flatten().unwrap()
}
