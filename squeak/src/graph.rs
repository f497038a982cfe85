//! What both importers produce before the heap is built, and reading a graph by object
//! number, whether it is still being imported or already a base heap.

use crate::ImportResult;
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

/// Read access to a graph of objects by number.
pub(crate) trait Graph {
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

/// Builds the base heap: every object in order, `nil` made the base's nil, then the roots and
/// the classes of immediates.
pub(crate) fn build(
    objs: Vec<Obj>,
    nil: u32,
    roots: &[(String, Word)],
    int_class: Option<Word>,
    char_class: Option<Word>,
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
    Ok(b.freeze()?)
}
