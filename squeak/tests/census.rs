//! A second, independent reading of Scratch.image: a minimal walk of the raw V3 object memory
//! that shares no code with the importer, set against what the importer built.
//!
//! It pins down the graph facts under each definition one might give them (references with or
//! without class words, reachability with or without them), so a disagreement with a quoted
//! figure can be traced to its definition rather than to the importer.

mod common;

use common::*;
use cowheap_heap::ObjectIndex;
use std::collections::HashMap;

/// One object as the file lays it out.
struct RawObject {
    /// Header words: 1 (compact class), 2 (class word) or 3 (size and class words).
    header_words: usize,
    /// The class oop of a two- or three-word header.
    class_word: Option<u32>,
    /// The compact class index of the base header (0 for none).
    compact: usize,
    /// The words after the base header that hold oops: every field of a pointers object
    /// (formats 0-4), the header and literals of a compiled method (12-15), none otherwise.
    oop_fields: Vec<u32>,
}

/// The raw walk: objects in file order, the oop of each, and the special objects oop.
struct Raw {
    objects: Vec<RawObject>,
    index_of: HashMap<u32, usize>,
    special: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Walks a little-endian V3 image (the Squeak object header documentation: header type in the
/// low two bits; size in bits 2-7 or the size word; format in bits 8-11; compact class index
/// in bits 12-16; a compiled method's literal count in bits 10-17 of its header oop).
fn walk(file: &[u8]) -> Raw {
    let header_size = u32_at(file, 4) as usize;
    let data_size = u32_at(file, 8) as usize;
    let old_base = u32_at(file, 12);
    let special = u32_at(file, 16);
    let mem = &file[header_size..header_size + data_size];
    let (mut objects, mut index_of) = (Vec::new(), HashMap::new());
    let mut at = 0;
    while at < data_size {
        let first = u32_at(mem, at);
        let (header_words, class_word) = match first & 3 {
            0 => (3, Some(u32_at(mem, at + 4) & !3)),
            1 => (2, Some(first & !3)),
            3 => (1, None),
            t => panic!("header type {t} at {at}"),
        };
        let base = at + 4 * (header_words - 1);
        let header = u32_at(mem, base);
        let bytes = if header_words == 3 {
            (first & !3) as usize
        } else {
            (header & 0xfc) as usize
        };
        let fields = (bytes - 4) / 4;
        let field = |i: usize| u32_at(mem, base + 4 + 4 * i);
        let format = (header >> 8) & 15;
        let count = match format {
            0..=4 => fields,
            12..=15 => 1 + ((field(0) >> 10) & 0xff) as usize,
            _ => 0,
        };
        index_of.insert(old_base + base as u32, objects.len());
        objects.push(RawObject {
            header_words,
            class_word,
            compact: ((header >> 12) & 31) as usize,
            oop_fields: (0..count).map(field).collect(),
        });
        at = base + bytes;
    }
    Raw {
        objects,
        index_of,
        special,
    }
}

impl Raw {
    /// The object an oop names, if it is an object pointer (SmallIntegers have bit 0 set).
    fn target(&self, oop: u32) -> Option<usize> {
        if oop & 1 == 1 {
            return None;
        }
        Some(*self.index_of.get(&oop).expect("no oop dangles"))
    }

    /// The class of object `i`: its class word, or its entry in the compact classes array
    /// (slot 28 of the special objects array).
    fn class_of(&self, i: usize) -> usize {
        let o = &self.objects[i];
        match o.class_word {
            Some(c) => self.target(c).unwrap(),
            None => {
                let special = &self.objects[self.target(self.special).unwrap()];
                let compact = &self.objects[self.target(special.oop_fields[28]).unwrap()];
                self.target(compact.oop_fields[o.compact - 1]).unwrap()
            }
        }
    }

    /// Objects reachable from the special objects array through oop fields, and through
    /// classes too if `classes`.
    fn reachable(&self, classes: bool) -> usize {
        let start = self.target(self.special).unwrap();
        let mut seen = vec![false; self.objects.len()];
        seen[start] = true;
        let (mut stack, mut n) = (vec![start], 0);
        while let Some(i) = stack.pop() {
            n += 1;
            let class = classes.then(|| self.class_of(i));
            let fields = self.objects[i].oop_fields.iter();
            for j in fields.filter_map(|&w| self.target(w)).chain(class) {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        n
    }
}

#[test]
fn the_raw_walk_and_the_importer_agree_on_every_object() {
    let raw = walk(&image_bytes(SCRATCH));
    let im = scratch();
    assert_eq!(raw.objects.len(), im.heap.len());
    for (i, r) in raw.objects.iter().enumerate() {
        let o = im.heap.object(ObjectIndex::from_u32(i as u32)).unwrap();
        let raw_targets: Vec<usize> = r.oop_fields.iter().filter_map(|&w| raw.target(w)).collect();
        let targets: Vec<usize> = o
            .slots
            .iter()
            .filter_map(|w| w.as_base())
            .map(|x| x.get())
            .collect();
        assert_eq!(targets, raw_targets, "object {i}: pointer slots");
        assert_eq!(
            o.class.as_base().map(|x| x.get()),
            Some(raw.class_of(i)),
            "object {i}: class"
        );
    }
}

#[test]
fn scratch_references_and_reachability_under_each_definition() {
    let raw = walk(&image_bytes(SCRATCH));
    let in_fields: usize = raw
        .objects
        .iter()
        .map(|o| {
            o.oop_fields
                .iter()
                .filter(|&&w| raw.target(w).is_some())
                .count()
        })
        .sum();
    let class_words = raw
        .objects
        .iter()
        .filter(|o| o.class_word.is_some())
        .count();
    let by_header = |n| raw.objects.iter().filter(|o| o.header_words == n).count();
    assert_eq!(
        [by_header(1), by_header(2), by_header(3)],
        [59_017, 22_359, 2_083]
    );

    // References: in fields (method literals included), then with the explicit class words,
    // then with every object's class (compact ones through the compact classes array).
    assert_eq!(in_fields, 380_838);
    assert_eq!(in_fields + class_words, 405_280);
    assert_eq!(in_fields + raw.objects.len(), 464_297);
    assert_eq!(scratch().stats.references, in_fields + class_words);

    // Reachability from the special objects array: fields alone leave the metaclasses and
    // what only they lead to; with classes followed, nothing is unreachable, as a snapshot
    // taken after a full collection should be.
    assert_eq!(raw.reachable(false), 72_151);
    assert_eq!(raw.reachable(true), 83_459);
}
