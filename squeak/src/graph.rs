//! What both importers produce before the heap is built, and reading a graph by object
//! number, whether it is still being imported or already a base heap.

use crate::classes::name_in;
use crate::float;
use crate::{ImageFormat, ImageHeader, ImportResult, ImportStats, Imported};
use cowheap_heap::{BaseHeap, Builder, Format, ObjectIndex, Word};

/// An object decoded from an image, ready for the builder.
#[derive(Debug)]
pub(crate) struct Obj {
    pub(crate) class: Word,
    pub(crate) format: Format,
    pub(crate) hash: u32,
    pub(crate) aux: u32,
    pub(crate) slots: Vec<Word>,
    pub(crate) bytes: Vec<u8>,
}

/// Read access to a graph of objects by number: an image being imported, a base heap, or
/// (implemented by a caller over its own type) a version of a base, whose commits changed
/// some objects and added others. [`crate::class_name_in`] reads class names through it.
pub trait Graph {
    /// The number of objects.
    fn len(&self) -> u32;
    /// Whether there is no object.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The class of object `i`, if it is an object with an object as class.
    fn class_of(&self, i: u32) -> Option<u32>;
    /// The pointer slots of object `i` (empty if there is no such object).
    fn slots_of(&self, i: u32) -> &[Word];
    /// The raw bytes of object `i` (empty if there is no such object).
    fn bytes_of(&self, i: u32) -> &[u8];
    /// The aux bits of object `i`.
    fn aux_of(&self, i: u32) -> u32;
}

impl Graph for [Obj] {
    fn len(&self) -> u32 {
        u32::try_from(<[Obj]>::len(self)).unwrap_or(u32::MAX)
    }
    fn class_of(&self, i: u32) -> Option<u32> {
        self.get(i as usize)?
            .class
            .as_base()
            .map(ObjectIndex::as_u32)
    }
    fn slots_of(&self, i: u32) -> &[Word] {
        self.get(i as usize).map_or(&[], |o| &o.slots)
    }
    fn bytes_of(&self, i: u32) -> &[u8] {
        self.get(i as usize).map_or(&[], |o| &o.bytes)
    }
    fn aux_of(&self, i: u32) -> u32 {
        self.get(i as usize).map_or(0, |o| o.aux)
    }
}

impl Graph for BaseHeap {
    fn len(&self) -> u32 {
        u32::try_from(BaseHeap::len(self)).unwrap_or(u32::MAX)
    }
    fn class_of(&self, i: u32) -> Option<u32> {
        self.class_word(ObjectIndex::from_u32(i))
            .ok()?
            .as_base()
            .map(ObjectIndex::as_u32)
    }
    fn slots_of(&self, i: u32) -> &[Word] {
        self.object(ObjectIndex::from_u32(i))
            .map_or(&[], |o| o.slots)
    }
    fn bytes_of(&self, i: u32) -> &[u8] {
        self.object(ObjectIndex::from_u32(i))
            .map_or(&[], |o| o.bytes)
    }
    fn aux_of(&self, i: u32) -> u32 {
        self.object(ObjectIndex::from_u32(i)).map_or(0, |o| o.aux)
    }
}

/// Slot `k` of object `i` as an object number, if it is a reference.
pub(crate) fn slot_ref<G: Graph + ?Sized>(g: &G, i: u32, k: usize) -> Option<u32> {
    g.slots_of(i).get(k)?.as_base().map(ObjectIndex::as_u32)
}

/// Classes an image names for its immediates, found by the importer (Spur: in the class
/// table); what is `None` is looked for in the special objects array, or by name.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Immediates {
    pub(crate) int: Option<u32>,
    pub(crate) char: Option<u32>,
    pub(crate) float: Option<u32>,
}

/// What an importer has read, ready to become an [`Imported`].
pub(crate) struct Read {
    pub(crate) objs: Vec<Obj>,
    pub(crate) format: ImageFormat,
    pub(crate) header: ImageHeader,
    pub(crate) stats: ImportStats,
    /// The special objects array and nil, as object numbers.
    pub(crate) special: u32,
    pub(crate) nil: u32,
    pub(crate) immediates: Immediates,
    /// Roots the format needs beside the standard and header roots.
    pub(crate) extra_roots: Vec<(String, Word)>,
}

/// The width of a Squeak V3 header's identity hash.
const V3_HASH_BITS: i64 = 12;

/// The shared end of both importers: boxed Floats in the base's word order, the standard
/// and header roots, the classes of immediates, the heap built. Time: O(objects).
pub(crate) fn finish(read: Read) -> ImportResult<Imported> {
    let Read {
        mut objs,
        format,
        mut header,
        mut stats,
        special,
        nil,
        immediates,
        extra_roots,
    } = read;
    header.order = Some(format.order());
    let boxed_float = float::float_class(&objs[..], special);
    float::normalize(&mut objs, boxed_float, format);
    stats.objects = objs.len();
    let obj_ref = |i: u32| Word::base(ObjectIndex::from_u32(i));
    let special_word = |k: usize| slot_ref(&objs[..], special, k);
    let int_class = immediates
        .int
        .or_else(|| special_word(crate::SPECIAL_SMALLINTEGER));
    let char_class = immediates
        .char
        .or_else(|| special_word(crate::SPECIAL_CHARACTER));
    let float_class = immediates
        .float
        .or_else(|| class_named(&objs[..], "SmallFloat64"));
    let mut roots = crate::standard_roots(&objs, special, nil);
    roots.extend(header.roots()?);
    roots.extend(extra_roots);
    if crate::ImageKind::of(format) == crate::ImageKind::V3 {
        // A V3 header holds 12 bits of identity hash: what a tenant makes must fit them.
        roots.push((
            cowheap_heap::HASH_BITS_ROOT.to_owned(),
            Word::int(V3_HASH_BITS).unwrap_or(Word::from_bits(1)),
        ));
    }
    let heap = build(
        objs,
        nil,
        &roots,
        [int_class, char_class, float_class].map(|c| c.map(obj_ref)),
    )?;
    Ok(Imported {
        heap,
        format,
        header,
        stats,
    })
}

/// The class named `name` whose class is the metaclass `name class`, if the graph has one.
/// Time: O(objects).
fn class_named<G: Graph + ?Sized>(g: &G, name: &str) -> Option<u32> {
    let meta = format!("{name} class");
    (0..g.len()).find(|&i| {
        g.slots_of(i).get(2).is_some_and(|w| w.as_int().is_some())
            && name_in(g, i).as_deref() == Some(name)
            && g.class_of(i).and_then(|m| name_in(g, m)).as_deref() == Some(meta.as_str())
    })
}

/// Builds the base heap: every object in order, `nil` made the base's nil, then the roots and
/// the classes of immediates (small integers, characters, floats).
pub(crate) fn build(
    objs: Vec<Obj>,
    nil: u32,
    roots: &[(String, Word)],
    [int_class, char_class, float_class]: [Option<Word>; 3],
) -> ImportResult<BaseHeap> {
    let mut b = Builder::new();
    for (i, o) in objs.into_iter().enumerate() {
        let w = if i == nil as usize {
            if !o.slots.is_empty() || !o.bytes.is_empty() {
                return Err(crate::ImportError::Missing("nil has fields"));
            }
            let w = b.add_nil();
            b.set_class(w, o.class)?;
            w
        } else {
            b.add(o.class, o.format, o.slots, o.bytes)?
        };
        b.set_hash(w, o.hash)?;
        b.set_aux(w, o.aux)?;
    }
    for (name, w) in roots {
        b.add_root(name, *w)?;
    }
    b.set_immediate_classes(int_class, char_class);
    b.set_float_class(float_class);
    Ok(b.freeze()?)
}
