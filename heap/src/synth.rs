//! Deterministic graphs shaped like a Smalltalk image.
//!
//! [`image`] makes a base of about `objects` objects from a seed: nil, true and false; classes
//! (each with a superclass, a method dictionary, a format word and a name symbol); method
//! dictionaries holding compiled methods (a header and literals, then bytecodes); symbols and
//! strings (bytes); arrays; and many small objects (points, associations, instances of two to
//! eight slots) whose slots point anywhere in the graph. From 20,000 objects up, half the
//! objects are small (no bytes and at most eight slots), a third are bytes and a ninth are
//! methods (more in a base of a few thousand objects or fewer, which still has sixteen
//! classes and their methods). A real image has more methods and fewer small objects: of
//! Scratch 1.4's 83,459 objects, a fifth are methods, two fifths small and a third raw
//! (bytes or words).
//!
//! The same `objects` and `seed` always give the same base, object for object.
//!
//! ```
//! let base = cowheap_heap::synth::image(10_000, 7);
//! assert!(base.len() >= 10_000);
//! assert!(base.root("Smalltalk").is_some());
//! ```

use crate::{BaseHeap, Builder, Format, Word};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Roots every synthetic image names, in order (the first is the special objects array).
pub const ROOTS: [&str; 5] = ["specialObjects", "Smalltalk", "nil", "true", "false"];

/// Builds a Smalltalk-shaped base of at least `objects` objects (at least a few hundred),
/// deterministically from `seed`. Time: O(objects).
pub fn image(objects: usize, seed: u64) -> BaseHeap {
    let mut g = Gen::new(seed);
    let smalltalk = g.classes(objects);
    while g.b.len() < objects.saturating_sub(1) {
        g.filler();
    }
    g.fill_holders();
    let (nil, t, f, array_c) = (g.nil, g.t, g.f, g.class(ARRAY));
    let specials = g.add(
        array_c,
        Format::Pointers,
        vec![nil, f, t, smalltalk],
        vec![],
    );
    for (name, w) in ROOTS.into_iter().zip([specials, smalltalk, nil, t, f]) {
        g.b.add_root(name, w).expect("root names are distinct");
    }
    g.b.freeze().expect("synthetic images are well formed")
}

// The first classes, by position in `Gen::classes`.
const OBJECT: usize = 0;
const SYMBOL: usize = 1;
const STRING: usize = 2;
const ARRAY: usize = 3;
const ASSOCIATION: usize = 4;
const POINT: usize = 5;
const METHOD: usize = 6;
const DICTIONARY: usize = 7;
const SMALL_INTEGER: usize = 8;
const CHARACTER: usize = 9;
const BOOLEAN: usize = 10;
const UNDEFINED: usize = 11;
/// Classes from here on are the ones ordinary objects are made of.
const FIRST_PLAIN_CLASS: usize = 12;

/// The generator's state: one random stream, the builder, and the objects whose reference
/// slots are filled once every object exists.
struct Gen {
    rng: ChaCha8Rng,
    b: Builder,
    nil: Word,
    t: Word,
    f: Word,
    classes: Vec<Word>,
    holders: Vec<(Word, usize)>,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let mut g = Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            b,
            nil,
            t: nil,
            f: nil,
            classes: Vec::new(),
            holders: Vec::new(),
        };
        g.t = g.add(nil, Format::Pointers, vec![], vec![]);
        g.f = g.add(nil, Format::Pointers, vec![], vec![]);
        g
    }

    fn add(&mut self, class: Word, format: Format, slots: Vec<Word>, bytes: Vec<u8>) -> Word {
        self.b
            .add(class, format, slots, bytes)
            .expect("synthetic objects have valid layouts")
    }

    fn class(&self, which: usize) -> Word {
        self.classes[which]
    }

    fn symbol(&mut self) -> Word {
        let len = self.rng.random_range(3..16);
        let bytes = (0..len)
            .map(|_| self.rng.random_range(b'a'..=b'z'))
            .collect();
        self.add(self.class(SYMBOL), Format::Bytes, vec![], bytes)
    }

    /// The classes (superclass, method dictionary, format, name), each with its methods and
    /// a global association; returns the array of globals.
    fn classes(&mut self, objects: usize) -> Word {
        let nil = self.nil;
        let n_classes = (objects / 140).max(16);
        self.classes = (0..n_classes)
            .map(|_| self.add(nil, Format::Pointers, vec![nil; 4], vec![]))
            .collect();
        self.b
            .set_class(nil, self.class(UNDEFINED))
            .expect("nil exists");
        self.b
            .set_class(self.t, self.class(BOOLEAN))
            .expect("true exists");
        self.b
            .set_class(self.f, self.class(BOOLEAN))
            .expect("false exists");
        self.b
            .set_immediate_classes(Some(self.class(SMALL_INTEGER)), Some(self.class(CHARACTER)));
        let globals = (0..n_classes).map(|i| self.class_body(i)).collect();
        self.add(self.class(ARRAY), Format::Pointers, globals, vec![])
    }

    /// Class `i`'s name, methods and method dictionary; returns its global association.
    fn class_body(&mut self, i: usize) -> Word {
        let (nil, c, array_c) = (self.nil, self.classes[i], self.class(ARRAY));
        let name = self.symbol();
        let n_methods = self.rng.random_range(2..30);
        let mut keys = Vec::with_capacity(n_methods);
        let mut methods = Vec::with_capacity(n_methods);
        for _ in 0..n_methods {
            keys.push(self.symbol());
            let n_lits = self.rng.random_range(1..8);
            let mut slots = vec![Word::int(n_lits as i64).expect("small")];
            slots.resize(n_lits + 1, nil);
            let code = (0..self.rng.random_range(4..64))
                .map(|_| self.rng.random())
                .collect();
            let m = self.add(self.class(METHOD), Format::CompiledMethod, slots, code);
            self.holders.push((m, n_lits + 1));
            methods.push(m);
        }
        let key_array = self.add(array_c, Format::Pointers, keys, vec![]);
        let method_array = self.add(array_c, Format::Pointers, methods, vec![]);
        let tally = Word::int(n_methods as i64).expect("small");
        let slots = vec![tally, key_array, method_array];
        let dict = self.add(self.class(DICTIONARY), Format::Pointers, slots, vec![]);
        let superclass = if i == 0 { nil } else { self.class(OBJECT) };
        let format = Word::int(self.rng.random_range(0..8)).expect("small");
        for (slot, w) in [superclass, dict, format, name].into_iter().enumerate() {
            self.b.set_slot(c, slot, w).expect("class slots exist");
        }
        self.add(
            self.class(ASSOCIATION),
            Format::Pointers,
            vec![name, c],
            vec![],
        )
    }

    /// One more object, of a kind drawn at random: symbols, strings, arrays, points,
    /// associations and plain instances, in the proportions of a Smalltalk image.
    fn filler(&mut self) {
        let nil = self.nil;
        let roll: u32 = self.rng.random_range(0..100);
        match roll {
            0..=11 => {
                self.symbol();
            }
            12..=29 => {
                let len = self.rng.random_range(0..48);
                let bytes = (0..len)
                    .map(|_| self.rng.random_range(b' '..=b'~'))
                    .collect();
                self.add(self.class(STRING), Format::Bytes, vec![], bytes);
            }
            30..=39 => {
                let len = if self.rng.random_ratio(1, 50) {
                    self.rng.random_range(64..1024)
                } else {
                    self.rng.random_range(0..16)
                };
                let a = self.add(self.class(ARRAY), Format::Pointers, vec![nil; len], vec![]);
                self.holders.push((a, len));
            }
            40..=54 => {
                let xy = [
                    self.rng.random_range(-1000..1000),
                    self.rng.random_range(-1000..1000),
                ];
                let slots = xy.map(|v| Word::int(v).expect("small")).to_vec();
                self.add(self.class(POINT), Format::Pointers, slots, vec![]);
            }
            55..=64 => {
                let a = self.add(
                    self.class(ASSOCIATION),
                    Format::Pointers,
                    vec![nil; 2],
                    vec![],
                );
                self.holders.push((a, 2));
            }
            _ => {
                let class =
                    self.classes[self.rng.random_range(FIRST_PLAIN_CLASS..self.classes.len())];
                let n = self.rng.random_range(2..9);
                let o = self.add(class, Format::Pointers, vec![nil; n], vec![]);
                self.holders.push((o, n));
            }
        }
    }

    /// Fills every holder's slots with random references and immediates.
    fn fill_holders(&mut self) {
        let total = self.b.len() as u32 + 1;
        for (o, n) in std::mem::take(&mut self.holders) {
            // A method's slot 0 is its header word; its literals follow.
            let start = usize::from(self.b.format_of(o) == Some(Format::CompiledMethod));
            for i in start..n {
                let w = match self.rng.random_range(0..10) {
                    0 => Word::int(self.rng.random_range(-100_000..100_000)).expect("small"),
                    1 => Word::char(self.rng.random_range('a'..='z')),
                    2 => self.nil,
                    _ => Word::base(crate::ObjectIndex::from_u32(
                        self.rng.random_range(0..total - 1),
                    )),
                };
                self.b.set_slot(o, i, w).expect("holder slots exist");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_image_and_different_seed_differs() {
        let a = image(3_000, 1);
        let b = image(3_000, 1);
        let c = image(3_000, 2);
        assert_eq!(a.len(), b.len());
        let same = |x: &BaseHeap, y: &BaseHeap| {
            x.len() == y.len()
                && x.indices().all(|i| {
                    let (p, q) = (x.object(i).unwrap(), y.object(i).unwrap());
                    p.slots == q.slots && p.bytes == q.bytes && p.class == q.class
                })
        };
        assert!(same(&a, &b));
        assert!(!same(&a, &c));
    }

    /// The shares of methods, of byte objects and of small objects (at most eight slots,
    /// no bytes) among a base's objects.
    fn shares(base: &BaseHeap) -> (f64, f64, f64) {
        let (mut methods, mut bytes, mut small) = (0, 0, 0);
        for i in base.indices() {
            let o = base.object(i).unwrap();
            methods += usize::from(o.format == Format::CompiledMethod);
            bytes += usize::from(o.format == Format::Bytes);
            small += usize::from(o.bytes.is_empty() && o.slots.len() <= 8);
        }
        let n = base.len() as f64;
        (methods as f64 / n, bytes as f64 / n, small as f64 / n)
    }

    #[test]
    fn image_has_the_shape_asked_for() {
        let base = image(20_000, 3);
        assert!(base.len() >= 20_000 && base.len() < 20_100);
        assert_eq!(base.roots()[0].name, "specialObjects");
    }

    /// The proportions the module documentation states, at the sizes the tests and the
    /// bench use.
    #[test]
    fn proportions_are_as_documented() {
        for (objects, seed) in [(20_000, 3), (200_000, 1)] {
            let (methods, bytes, small) = shares(&image(objects, seed));
            assert!(
                (0.09..0.14).contains(&methods),
                "{objects}: methods {methods:.3}"
            );
            assert!((0.28..0.38).contains(&bytes), "{objects}: bytes {bytes:.3}");
            assert!((0.45..0.56).contains(&small), "{objects}: small {small:.3}");
        }
    }
}
