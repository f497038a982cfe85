//! Class names and the class histogram, read from the objects of an imported image.
//!
//! A Squeak class holds its name, a Symbol, in instance variable 6 (`superclass methodDict
//! format instanceVariables organization subclasses name ...`, in Squeak 2.8 as in Squeak 6);
//! a metaclass holds its sole instance in variable 5 (`thisClass`) and is named after it,
//! `Foo class`. The SqueakJS headless image, bootstrapped with minimal classes, has
//! `superclass methodDict format name ...` and metaclasses `superclass methodDict format
//! thisClass`; [`class_name`] finds the name in both layouts (see `name_in`).

use crate::auxbits::Aux;
use crate::graph::{Graph, slot_ref};
use cowheap_heap::{BaseHeap, ObjectIndex};
use std::collections::HashMap;

/// Instance variable of a class holding its name.
pub const CLASS_NAME_SLOT: usize = 6;
/// Instance variable of a metaclass holding its class.
pub const THIS_CLASS_SLOT: usize = 5;

/// The text of a Symbol-like object: a non-empty byte object of printable ASCII.
pub(crate) fn symbol_text<G: Graph + ?Sized>(g: &G, i: u32) -> Option<String> {
    let b = g.bytes_of(i);
    if !g.slots_of(i).is_empty() || b.is_empty() || !b.iter().all(|c| (0x20..0x7f).contains(c)) {
        return None;
    }
    String::from_utf8(b.to_vec()).ok()
}

/// The text of object `obj` of `heap` if it is a Symbol-like object (non-empty bytes of
/// printable ASCII, no pointer slots).
pub fn symbol_text_of(heap: &BaseHeap, obj: ObjectIndex) -> Option<String> {
    symbol_text(heap, obj.as_u32())
}

/// Longest text taken for a class name. Real names are tens of bytes; the bound keeps a
/// hostile file's long byte objects from costing their length at every look.
pub(crate) const MAX_CLASS_NAME: usize = 256;
/// Slots of a class looked at for its name or its sole instance (real classes have fewer
/// than 20 instance variables).
pub(crate) const MAX_CLASS_SLOTS: usize = 32;

/// [`symbol_text`] of at most [`MAX_CLASS_NAME`] bytes.
fn name_text<G: Graph + ?Sized>(g: &G, i: u32) -> Option<String> {
    if g.bytes_of(i).len() > MAX_CLASS_NAME {
        return None;
    }
    symbol_text(g, i)
}

/// The name of class `class` in any graph.
///
/// A class is recognised by its format instance variable (slot 2, a small integer). Its name
/// is the Symbol in slot 6 (Squeak 2.8 to 6, Pharo); failing that it is a metaclass if one
/// of its slots holds an object whose class it is (`thisClass`: slot 5 in Squeak, 3 in
/// minimal bootstrapped images), named after that class; failing that, the first slot holding
/// a Symbol-like object names it (slot 3 in minimal bootstrapped images).
///
/// Time: O(1): at most [`MAX_CLASS_SLOTS`] slots of the class and of its instance, and
/// [`MAX_CLASS_NAME`] bytes of each candidate name, are looked at.
pub(crate) fn name_in<G: Graph + ?Sized>(g: &G, class: u32) -> Option<String> {
    let all = g.slots_of(class);
    let slots = &all[..all.len().min(MAX_CLASS_SLOTS)];
    slots.get(2)?.as_int()?;
    if let Some(n) = slot_ref(g, class, CLASS_NAME_SLOT).and_then(|s| name_text(g, s)) {
        return Some(n);
    }
    let refs = || {
        slots
            .iter()
            .filter_map(|w| w.as_base())
            .map(ObjectIndex::as_u32)
    };
    if let Some(this) = refs()
        .skip(1)
        .find(|&t| t != class && g.class_of(t) == Some(class))
    {
        let this_all = g.slots_of(this);
        let this_slots = &this_all[..this_all.len().min(MAX_CLASS_SLOTS)];
        if this_slots.get(2).is_some_and(|w| w.as_int().is_some()) {
            let n = slot_ref(g, this, CLASS_NAME_SLOT)
                .and_then(|s| name_text(g, s))
                .or_else(|| {
                    this_slots
                        .iter()
                        .filter_map(|w| w.as_base())
                        .find_map(|s| name_text(g, s.as_u32()))
                })?;
            return Some(format!("{n} class"));
        }
    }
    refs().find_map(|s| name_text(g, s))
}

/// The name of the class that is object `class` of `heap`: its name Symbol, or for a
/// metaclass its instance's name followed by ` class`. `None` if the object does not look
/// like a class. Time: O(length of the name).
pub fn class_name(heap: &BaseHeap, class: ObjectIndex) -> Option<String> {
    name_in(heap, class.as_u32())
}

/// [`class_name`] of object `class` of any [`Graph`]: a version of a base, say, whose
/// commits changed or added classes the base heap under it does not have. Time: O(length
/// of the name).
pub fn class_name_in<G: Graph + ?Sized>(g: &G, class: ObjectIndex) -> Option<String> {
    name_in(g, class.as_u32())
}

/// The class name of the object `obj` of `heap` (`None` for a hidden Spur object, whose
/// class is a pun, or an object whose class has no name).
pub fn class_name_of(heap: &BaseHeap, obj: ObjectIndex) -> Option<String> {
    if Aux::decode(heap.aux_of(obj.as_u32())).is_hidden() {
        return None;
    }
    name_in(heap, heap.class_of(obj.as_u32())?)
}

/// One line of a class histogram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassStats {
    /// The class's name; `(hidden)` for hidden Spur objects, `(unnamed @N)` for a class
    /// without a readable name.
    pub name: String,
    /// The class object (`None` for the hidden objects' line).
    pub class: Option<ObjectIndex>,
    /// Number of instances in the base.
    pub instances: usize,
    /// Bytes the instances occupy in the base: 24 bytes of header, 8 per pointer slot, the
    /// raw bytes padded to 8.
    pub bytes: usize,
}

/// Every class with instances in `heap`, by instance count (most first; ties by name). Sort
/// by `bytes` for the other view. Time: O(objects).
pub fn class_histogram(heap: &BaseHeap) -> Vec<ClassStats> {
    let mut by_class: HashMap<Option<u32>, (usize, usize)> = HashMap::new();
    for x in heap.indices() {
        let Ok(o) = heap.object(x) else { continue };
        let key = if Aux::decode(o.aux).is_hidden() {
            None
        } else {
            o.class.as_base().map(ObjectIndex::as_u32)
        };
        let e = by_class.entry(key).or_default();
        e.0 += 1;
        e.1 += 24 + 8 * o.slots.len() + o.bytes.len().div_ceil(8) * 8;
    }
    let mut out: Vec<ClassStats> = by_class
        .into_iter()
        .map(|(k, (instances, bytes))| ClassStats {
            name: match k {
                None => "(hidden)".to_owned(),
                Some(c) => name_in(heap, c).unwrap_or_else(|| format!("(unnamed @{c})")),
            },
            class: k.map(ObjectIndex::from_u32),
            instances,
            bytes,
        })
        .collect();
    out.sort_by(|a, b| {
        b.instances
            .cmp(&a.instances)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Obj;
    use cowheap_heap::{Format, Word};

    fn obj(class: u32, slots: Vec<Word>, bytes: &[u8]) -> Obj {
        Obj {
            class: Word::base(ObjectIndex::from_u32(class)),
            format: if bytes.is_empty() {
                Format::Pointers
            } else {
                Format::Bytes
            },
            hash: 0,
            aux: 0,
            slots,
            bytes: bytes.to_vec(),
        }
    }

    fn r(i: u32) -> Word {
        Word::base(ObjectIndex::from_u32(i))
    }

    #[test]
    fn names_are_bounded_in_length_and_in_the_slots_looked_at() {
        let nil = r(0);
        let format = Word::int(2).unwrap();
        let long = "N".repeat(MAX_CLASS_NAME + 1);
        let longest = "L".repeat(MAX_CLASS_NAME);
        let mut late = vec![nil, nil, format];
        late.resize(MAX_CLASS_SLOTS, nil);
        late.push(r(2)); // a name past the slots looked at
        let objs = [
            obj(0, vec![], &[]),
            // 1: a class named in slot 6.
            obj(0, vec![nil, nil, format, nil, nil, nil, r(2)], &[]),
            obj(0, vec![], b"Foo"),
            // 3: a class whose name is one byte too long, 5 one of the longest name.
            obj(0, vec![nil, nil, format, nil, nil, nil, r(4)], &[]),
            obj(0, vec![], long.as_bytes()),
            obj(0, vec![nil, nil, format, nil, nil, nil, r(6)], &[]),
            obj(0, vec![], longest.as_bytes()),
            // 7: a name only past the slots looked at.
            obj(0, late, &[]),
        ];
        let g = &objs[..];
        assert_eq!(name_in(g, 1).as_deref(), Some("Foo"));
        assert_eq!(name_in(g, 3), None);
        assert_eq!(name_in(g, 5), Some(longest));
        assert_eq!(name_in(g, 7), None);
    }
}
