//! Deterministic graphs shaped like a Smalltalk image.
//!
//! [`image`] makes a base of about `objects` objects from a seed: nil, true and false; classes
//! (each with a superclass, a method dictionary, a format word and a name symbol); method
//! dictionaries holding compiled methods (a header and literals, then bytecodes); symbols and
//! strings (bytes); arrays; and many small objects (points, associations, instances of two to
//! eight slots) whose slots point anywhere in the graph. Proportions follow those of real
//! Squeak images: most objects are small, a fifth are methods, a third are bytes.
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = Builder::new();
    let nil = b.add_nil();
    let add = |b: &mut Builder, class, format, slots: Vec<Word>, bytes: Vec<u8>| {
        b.add(class, format, slots, bytes)
            .expect("synthetic objects have valid layouts")
    };
    let t = add(&mut b, nil, Format::Pointers, vec![], vec![]);
    let f = add(&mut b, nil, Format::Pointers, vec![], vec![]);

    // Classes: superclass, method dictionary, format, name. Filled in below.
    let n_classes = (objects / 140).max(16);
    let classes: Vec<Word> = (0..n_classes)
        .map(|_| add(&mut b, nil, Format::Pointers, vec![nil; 4], vec![]))
        .collect();
    let [
        object_c,
        symbol_c,
        string_c,
        array_c,
        assoc_c,
        point_c,
        method_c,
        dict_c,
        int_c,
        char_c,
        bool_c,
        undefined_c,
    ] = std::array::from_fn(|i| classes[i]);
    b.set_class(nil, undefined_c).expect("nil exists");
    b.set_class(t, bool_c).expect("true exists");
    b.set_class(f, bool_c).expect("false exists");
    b.set_immediate_classes(Some(int_c), Some(char_c));

    let mut symbols = Vec::new();
    let mut symbol = |b: &mut Builder, rng: &mut ChaCha8Rng| {
        let len = rng.random_range(3..16);
        let bytes = (0..len).map(|_| rng.random_range(b'a'..=b'z')).collect();
        let s = add(b, symbol_c, Format::Bytes, vec![], bytes);
        symbols.push(s);
        s
    };
    // Holders of random references, filled once every object exists.
    let mut holders: Vec<(Word, usize)> = Vec::new();
    let mut globals = Vec::new();
    for (i, &c) in classes.iter().enumerate() {
        let name = symbol(&mut b, &mut rng);
        let n_methods = rng.random_range(2..30);
        let mut keys = Vec::with_capacity(n_methods);
        let mut methods = Vec::with_capacity(n_methods);
        for _ in 0..n_methods {
            keys.push(symbol(&mut b, &mut rng));
            let n_lits = rng.random_range(1..8);
            let mut slots = vec![Word::int(n_lits as i64).expect("small")];
            slots.resize(n_lits + 1, nil);
            let code = (0..rng.random_range(4..64)).map(|_| rng.random()).collect();
            let m = add(&mut b, method_c, Format::CompiledMethod, slots, code);
            holders.push((m, n_lits + 1));
            methods.push(m);
        }
        let key_array = add(&mut b, array_c, Format::Pointers, keys, vec![]);
        let method_array = add(&mut b, array_c, Format::Pointers, methods, vec![]);
        let tally = Word::int(n_methods as i64).expect("small");
        let dict = add(
            &mut b,
            dict_c,
            Format::Pointers,
            vec![tally, key_array, method_array],
            vec![],
        );
        let superclass = if i == 0 { nil } else { object_c };
        let format = Word::int(rng.random_range(0..8)).expect("small");
        for (slot, w) in [superclass, dict, format, name].into_iter().enumerate() {
            b.set_slot(c, slot, w).expect("class slots exist");
        }
        let assoc = add(&mut b, assoc_c, Format::Pointers, vec![name, c], vec![]);
        globals.push(assoc);
    }
    let smalltalk = add(&mut b, array_c, Format::Pointers, globals, vec![]);

    while b.len() < objects.saturating_sub(1) {
        let roll: u32 = rng.random_range(0..100);
        match roll {
            0..=11 => {
                symbol(&mut b, &mut rng);
            }
            12..=29 => {
                let len = rng.random_range(0..48);
                let bytes = (0..len).map(|_| rng.random_range(b' '..=b'~')).collect();
                add(&mut b, string_c, Format::Bytes, vec![], bytes);
            }
            30..=39 => {
                let len = if rng.random_ratio(1, 50) {
                    rng.random_range(64..1024)
                } else {
                    rng.random_range(0..16)
                };
                let a = add(&mut b, array_c, Format::Pointers, vec![nil; len], vec![]);
                holders.push((a, len));
            }
            40..=54 => {
                let xy = [rng.random_range(-1000..1000), rng.random_range(-1000..1000)];
                add(
                    &mut b,
                    point_c,
                    Format::Pointers,
                    xy.map(|v| Word::int(v).expect("small")).to_vec(),
                    vec![],
                );
            }
            55..=64 => {
                let a = add(&mut b, assoc_c, Format::Pointers, vec![nil; 2], vec![]);
                holders.push((a, 2));
            }
            _ => {
                let class = classes[rng.random_range(12..classes.len())];
                let n = rng.random_range(2..9);
                let o = add(&mut b, class, Format::Pointers, vec![nil; n], vec![]);
                holders.push((o, n));
            }
        }
    }
    let total = b.len() as u32 + 1;
    for (o, n) in holders {
        // A method's slot 0 is its header word; its literals follow.
        let start = usize::from(b.format_of(o) == Some(Format::CompiledMethod));
        for i in start..n {
            let w = match rng.random_range(0..10) {
                0 => Word::int(rng.random_range(-100_000..100_000)).expect("small"),
                1 => Word::char(rng.random_range('a'..='z')),
                2 => nil,
                _ => Word::base(crate::ObjectIndex::from_u32(rng.random_range(0..total - 1))),
            };
            b.set_slot(o, i, w).expect("holder slots exist");
        }
    }
    let specials = add(
        &mut b,
        array_c,
        Format::Pointers,
        vec![nil, f, t, smalltalk],
        vec![],
    );
    for (name, w) in ROOTS.into_iter().zip([specials, smalltalk, nil, t, f]) {
        b.add_root(name, w).expect("root names are distinct");
    }
    b.freeze().expect("synthetic images are well formed")
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

    #[test]
    fn image_has_the_shape_asked_for() {
        let base = image(20_000, 3);
        assert!(base.len() >= 20_000 && base.len() < 20_100);
        let methods = base
            .indices()
            .filter(|&i| base.object(i).unwrap().format == Format::CompiledMethod)
            .count();
        assert!(methods > base.len() / 20, "{methods} methods");
        assert_eq!(base.roots()[0].name, "specialObjects");
    }
}
