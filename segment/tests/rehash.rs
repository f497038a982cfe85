//! Rehashing on import: hashed collections keyed by Symbols, built in a tenant of
//! `mini.image` and moved portably into a tenant of the Scratch image, whose Symbols have
//! other identity hashes, answer the same lookups afterwards. The lookups are done twice:
//! by the crate's `rehash::lookup`, and by linear probing written out here.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_segment::rehash;
use cowheap_segment::{file, tenant};
use cowheap_tenants::Tenant;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

const TABLE: usize = 32;

/// Scratch descends from the Squeak `mini.image` comes from: of the 3,622 Symbols the two
/// share, the first 18 here have other identity hashes (made separately after the split);
/// the last six hash the same in both.
const TEXTS: [&str; 24] = [
    "processStartUpList",
    "processShutDownList",
    "connection",
    "CCodeGenerator",
    "lineCount",
    "removeCompilerMethods",
    "stopPlaying",
    "versionDate",
    "importImage",
    "Experimental",
    "stopServer",
    "MoviePlayerMorph",
    "openFileNamed:",
    "prettyPrint:",
    "addCoherency:",
    "millisecondsToRun:",
    "benchmarks",
    "tinyBenchmarks",
    "size",
    "at:",
    "value",
    "do:",
    "printString",
    "new",
];

/// The two real bases and their names, imported once.
fn bases() -> &'static (Arc<Base>, Arc<Base>, BaseNames, BaseNames) {
    static B: OnceLock<(Arc<Base>, Arc<Base>, BaseNames, BaseNames)> = OnceLock::new();
    B.get_or_init(|| {
        let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
        let scratch = Base::new(
            cowheap_squeak::import(image("Scratch-1.4.0.6.image"))
                .unwrap()
                .heap,
        );
        let mn = BaseNames::of(mini.heap()).unwrap();
        let sn = BaseNames::of(scratch.heap()).unwrap();
        (mini, scratch, mn, sn)
    })
}

/// Squeak's probe, written independently: from `hash \\ n + 1` (1-based) to the end, then
/// from 1, the first slot holding nil or the key (0-based answer).
fn scan(n: usize, hash: u32, is_nil_or_key: impl Fn(usize) -> bool) -> Option<usize> {
    let start = hash as usize % n;
    (start..n).chain(0..start).find(|&i| is_nil_or_key(i))
}

/// The three identity collections (and two equality ones) of the test, as the tenant has
/// them.
struct Built {
    id_dict: Value,
    meth_dict: Value,
    id_set: Value,
    dict: Value,
    int_set: Value,
}

fn alloc(t: &mut Tenant, class: Value, slots: usize) -> Value {
    t.alloc(class, Format::Pointers, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

/// Builds the collections in `t`, keyed by `keys`, each key `k` with value `k`'s position,
/// placed by the tenant's identity hashes.
fn build(t: &mut Tenant, names: &BaseNames, keys: &[Value], n: usize) -> Built {
    let g = |n: &str| names.global(n).unwrap();
    let nil = t.base().heap().nil();
    let table = |t: &mut Tenant| alloc(t, g("Array"), n);
    // IdentityDictionary and Dictionary: `tally array`, Associations in the array.
    let mut dicts = Vec::new();
    for class in ["IdentityDictionary", "Dictionary"] {
        let d = alloc(t, g(class), 2);
        let a = table(t);
        t.set_slot(d, 0, Value::int(keys.len() as i64)).unwrap();
        t.set_slot(d, 1, a).unwrap();
        for (i, &k) in keys.iter().enumerate() {
            let assoc = alloc(t, g("Association"), 2);
            t.set_slot(assoc, 0, k).unwrap();
            t.set_slot(assoc, 1, Value::int(i as i64)).unwrap();
            let h = t.identity_hash(k).unwrap();
            let at = scan(n, h, |j| t.slot(a, j).unwrap().same_word(nil)).unwrap();
            t.set_slot(a, at, assoc).unwrap();
        }
        dicts.push(d);
    }
    // MethodDictionary: `tally array` then the keys; values at the same index of `array`.
    let md = alloc(t, g("MethodDictionary"), 2 + n);
    let values = table(t);
    t.set_slot(md, 0, Value::int(keys.len() as i64)).unwrap();
    t.set_slot(md, 1, values).unwrap();
    for (i, &k) in keys.iter().enumerate() {
        let h = t.identity_hash(k).unwrap();
        let at = scan(n, h, |j| t.slot(md, 2 + j).unwrap().same_word(nil)).unwrap();
        t.set_slot(md, 2 + at, k).unwrap();
        t.set_slot(values, at, Value::int(i as i64)).unwrap();
    }
    // IdentitySet of the keys; a Set of SmallIntegers (hash: their value).
    let mut sets = Vec::new();
    for class in ["IdentitySet", "Set"] {
        let s = alloc(t, g(class), 2);
        let a = table(t);
        t.set_slot(s, 0, Value::int(keys.len() as i64)).unwrap();
        t.set_slot(s, 1, a).unwrap();
        for (i, &k) in keys.iter().enumerate() {
            let (e, h) = if class == "Set" {
                (Value::int(i as i64 * 7), i as u32 * 7)
            } else {
                (k, t.identity_hash(k).unwrap())
            };
            let at = scan(n, h, |j| t.slot(a, j).unwrap().same_word(nil)).unwrap();
            t.set_slot(a, at, e).unwrap();
        }
        sets.push(s);
    }
    Built {
        id_dict: dicts[0],
        dict: dicts[1],
        meth_dict: md,
        id_set: sets[0],
        int_set: sets[1],
    }
}

/// What the independent probe finds for `key` in `b`'s identity collections: the value
/// (or element) of each, `None` where absent.
fn probe_all(t: &Tenant, b: &Built, key: Value) -> [Option<Value>; 3] {
    let nil = t.base().heap().nil();
    let h = t.identity_hash(key).unwrap();
    let n = t.size(t.slot(b.id_dict, 1).unwrap()).unwrap().slots;
    let same = |v: Value| t.identical(v, key).unwrap();
    let d = {
        let a = t.slot(b.id_dict, 1).unwrap();
        let at = scan(n, h, |j| {
            let s = t.slot(a, j).unwrap();
            s.same_word(nil) || same(t.slot(s, 0).unwrap())
        })
        .unwrap();
        let s = t.slot(a, at).unwrap();
        (!s.same_word(nil)).then(|| t.slot(s, 1).unwrap())
    };
    let m = {
        let at = scan(n, h, |j| {
            let s = t.slot(b.meth_dict, 2 + j).unwrap();
            s.same_word(nil) || same(s)
        })
        .unwrap();
        (!t.slot(b.meth_dict, 2 + at).unwrap().same_word(nil))
            .then(|| t.slot(t.slot(b.meth_dict, 1).unwrap(), at).unwrap())
    };
    let s = {
        let a = t.slot(b.id_set, 1).unwrap();
        let at = scan(n, h, |j| {
            let s = t.slot(a, j).unwrap();
            s.same_word(nil) || same(s)
        })
        .unwrap();
        let s = t.slot(a, at).unwrap();
        (!s.same_word(nil)).then_some(s)
    };
    [d, m, s]
}

#[test]
fn symbol_keyed_collections_answer_the_same_lookups_after_a_cross_base_import() {
    let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let scratch = Base::new(
        cowheap_squeak::import(image("Scratch-1.4.0.6.image"))
            .unwrap()
            .heap,
    );
    let mn = BaseNames::of(mini.heap()).unwrap();
    let sn = BaseNames::of(scratch.heap()).unwrap();
    let texts: Vec<&str> = TEXTS
        .into_iter()
        .filter(|s| mn.symbol(s).is_some() && sn.symbol(s).is_some())
        .collect();
    assert_eq!(texts.len(), 24, "Symbols in both bases");
    let keys: Vec<Value> = texts.iter().map(|s| mn.symbol(s).unwrap()).collect();
    let mut t = Tenant::fork(&mini);
    let b = build(&mut t, &mn, &keys, TABLE);
    // In mini, both lookups find every key.
    for (i, &k) in keys.iter().enumerate() {
        let want = Value::int(i as i64);
        let [d, m, s] = probe_all(&t, &b, k);
        assert!(d.unwrap().same_word(want) && m.unwrap().same_word(want));
        assert!(t.identical(s.unwrap(), k).unwrap());
        let by_crate = rehash::lookup(&t, &mn, b.id_dict, k).unwrap().unwrap();
        assert!(by_crate.same_word(want));
    }
    // The Symbols hash differently in Scratch: some keys start their probe elsewhere, so
    // the tables as written would miss them there.
    let fresh = Tenant::fork(&scratch);
    let moved_starts = texts
        .iter()
        .filter(|s| {
            let hm = t.identity_hash(mn.symbol(s).unwrap()).unwrap() as usize % TABLE;
            let hs = fresh.identity_hash(sn.symbol(s).unwrap()).unwrap() as usize % TABLE;
            hm != hs
        })
        .count();
    assert!(
        moved_starts >= 10,
        "{moved_starts} Symbols start elsewhere in Scratch"
    );
    // Export portably, through the file format, into a tenant of Scratch.
    let holder = alloc(&mut t, mn.global("Array").unwrap(), 5);
    for (k, v) in [b.id_dict, b.meth_dict, b.id_set, b.dict, b.int_set]
        .into_iter()
        .enumerate()
    {
        t.set_slot(holder, k, v).unwrap();
    }
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(mini.heap()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(scratch.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(&scratch);
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    let h2 = imported.roots[0];
    let s = |k: usize| t2.slot(h2, k).unwrap();
    let b2 = Built {
        id_dict: s(0),
        meth_dict: s(1),
        id_set: s(2),
        dict: s(3),
        int_set: s(4),
    };
    // Every key answers in Scratch, by both lookups; Symbols not in the tables do not.
    for (i, text) in texts.iter().enumerate() {
        let k = sn.symbol(text).unwrap();
        let want = Value::int(i as i64);
        let [d, m, s] = probe_all(&t2, &b2, k);
        assert!(
            d.is_some_and(|v| v.same_word(want)),
            "#{text} in the IdentityDictionary"
        );
        assert!(
            m.is_some_and(|v| v.same_word(want)),
            "#{text} in the MethodDictionary"
        );
        assert!(
            t2.identical(s.unwrap(), k).unwrap(),
            "#{text} in the IdentitySet"
        );
        for c in [b2.id_dict, b2.meth_dict] {
            let v = rehash::lookup(&t2, &sn, c, k).unwrap().unwrap();
            assert!(v.same_word(want));
        }
        let e = rehash::lookup(&t2, &sn, b2.id_set, k).unwrap().unwrap();
        assert!(t2.identical(e, k).unwrap());
        let n = rehash::lookup(&t2, &sn, b2.int_set, Value::int(i as i64 * 7)).unwrap();
        assert!(n.is_some());
        // The equality Dictionary: Scratch's `Symbol>>hash` is primitive 75, the identity
        // hash, so its probe starts where the IdentityDictionary's does.
        let v = rehash::lookup(&t2, &sn, b2.dict, k).unwrap();
        assert!(
            v.is_some_and(|v| v.same_word(want)),
            "#{text} in the Dictionary"
        );
        let a = t2.slot(b2.dict, 1).unwrap();
        let nil = scratch.heap().nil();
        let at = scan(TABLE, t2.identity_hash(k).unwrap(), |j| {
            let e = t2.slot(a, j).unwrap();
            e.same_word(nil) || t2.identical(t2.slot(e, 0).unwrap(), k).unwrap()
        })
        .unwrap();
        let assoc = t2.slot(a, at).unwrap();
        assert!(t2.slot(assoc, 1).unwrap().same_word(want));
    }
    // The report: the three identity collections and the equality Dictionary of Symbols
    // rehashed, the Set of SmallIntegers already in place.
    let r = &imported.rehash;
    eprintln!("{r}");
    let position = |v: Value| {
        imported
            .members
            .iter()
            .position(|m| m.same_word(v))
            .unwrap()
    };
    let mut rehashed = r.rehashed.clone();
    rehashed.sort_unstable();
    let mut want = vec![
        position(b2.id_dict),
        position(b2.meth_dict),
        position(b2.id_set),
        position(b2.dict),
    ];
    want.sort_unstable();
    assert_eq!(rehashed, want);
    assert_eq!(r.collections, 5);
    assert_eq!(r.in_place, 1);
    assert!(r.moved > 0);
    assert!(r.not_rehashed.is_empty(), "{r}");
    assert!(r.to_string().contains("4 rehashed"));
    let absent = ["printString:", "inspect", "halt", "error:", "value:value:"]
        .into_iter()
        .filter_map(|s| sn.symbol(s))
        .filter(|s| !texts.iter().any(|x| sn.symbol(x).unwrap().same_word(*s)))
        .collect::<Vec<_>>();
    assert!(!absent.is_empty());
    for k in absent {
        assert!(probe_all(&t2, &b2, k).iter().all(Option::is_none));
        assert!(rehash::lookup(&t2, &sn, b2.id_dict, k).unwrap().is_none());
        assert!(rehash::lookup(&t2, &sn, b2.dict, k).unwrap().is_none());
    }
}

/// Squeak's `\\` is the floored modulo: a negative SmallInteger's probe starts at
/// `h mod n` counted up from 0. Elements placed anywhere are put back where the probe
/// finds them; what cannot be hashed here is left as it was and reported.
#[test]
fn misplaced_small_integers_are_rehashed_and_the_rest_reported() {
    let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let mn = BaseNames::of(mini.heap()).unwrap();
    let g = |n: &str| mn.global(n).unwrap();
    let nil = mini.heap().nil();
    let mut t = Tenant::fork(&mini);
    let set_of = |t: &mut Tenant, class: &str, elems: &[Value]| {
        let s = alloc(t, g(class), 2);
        let a = alloc(t, g("Array"), 8);
        t.set_slot(s, 0, Value::int(elems.len() as i64)).unwrap();
        t.set_slot(s, 1, a).unwrap();
        // Packed from slot 0, whatever their hashes.
        for (i, &e) in elems.iter().enumerate() {
            t.set_slot(a, i, e).unwrap();
        }
        (s, a)
    };
    let ints: Vec<Value> = [-5i64, -8, 13, 6, 7].into_iter().map(Value::int).collect();
    let (set, array) = set_of(&mut t, "Set", &ints);
    let (id_ints, id_array) = set_of(&mut t, "IdentitySet", &ints[..2]);
    let sym = mn.symbol("size").unwrap();
    let (twice, _) = set_of(&mut t, "IdentitySet", &[sym, sym]);
    let (fine, _) = set_of(&mut t, "Set", &[]);
    let not_a_collection = alloc(&mut t, g("Array"), 3);
    let before: Vec<u64> = (0..8)
        .map(|i| t.slot(id_array, i).unwrap().word().bits())
        .collect();
    let r = rehash::rehash(&mut t, &mn, &[set, id_ints, twice, fine, not_a_collection]).unwrap();
    assert_eq!(r.collections, 4);
    assert_eq!(r.rehashed, vec![0]);
    assert_eq!(r.in_place, 1);
    let why: Vec<(usize, String)> = r
        .not_rehashed
        .iter()
        .map(|n| (n.object, n.why.to_string()))
        .collect();
    assert_eq!(why.len(), 2);
    assert!(
        why[0].0 == 1 && why[0].1.contains("SmallIntegers"),
        "{why:?}"
    );
    assert!(why[1].0 == 2 && why[1].1.contains("twice"), "{why:?}");
    // Where each integer is now: -5 mod 8 = 3, -8 -> 0, 13 -> 5, 6 -> 6, 7 -> 7 (all free).
    for (e, at) in [(-5i64, 3usize), (-8, 0), (13, 5), (6, 6), (7, 7)] {
        assert_eq!(t.slot(array, at).unwrap().as_int(), Some(e), "{e}");
        let found = rehash::lookup(&t, &mn, set, Value::int(e)).unwrap();
        assert_eq!(found.and_then(Value::as_int), Some(e));
    }
    let empty = (0..8)
        .filter(|&i| t.slot(array, i).unwrap().same_word(nil))
        .count();
    assert_eq!(empty, 3);
    assert!(
        rehash::lookup(&t, &mn, set, Value::int(5))
            .unwrap()
            .is_none()
    );
    // What was not rehashed is untouched.
    let after: Vec<u64> = (0..8)
        .map(|i| t.slot(id_array, i).unwrap().word().bits())
        .collect();
    assert_eq!(before, after);
    // A collision wraps around: 15 and 7 both start at slot 7; re-inserted in table order,
    // 15 takes slot 7 and 7 wraps to slot 0, where its lookup finds it.
    let (wrap, wrap_array) = set_of(&mut t, "Set", &[Value::int(15), Value::int(7)]);
    let r = rehash::rehash(&mut t, &mn, &[wrap]).unwrap();
    assert_eq!(r.rehashed, vec![0]);
    assert_eq!(t.slot(wrap_array, 7).unwrap().as_int(), Some(15));
    assert_eq!(t.slot(wrap_array, 0).unwrap().as_int(), Some(7));
    for e in [7, 15] {
        let found = rehash::lookup(&t, &mn, wrap, Value::int(e)).unwrap();
        assert_eq!(found.and_then(Value::as_int), Some(e));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any subset of the Symbols, in any order, in tables of any size that holds them:
    /// after a portable move from mini to Scratch, the identity collections answer every
    /// key with its value, and so does the equality Dictionary of the Symbols (their `hash`
    /// is the identity hash in both images); the report accounts for all five collections.
    #[test]
    fn identity_collections_answer_after_any_cross_base_import(
        picks in prop::sample::subsequence((0..TEXTS.len()).collect::<Vec<_>>(), 1..=TEXTS.len())
            .prop_shuffle(),
        spare in 1usize..40,
    ) {
        let (mini, scratch, mn, sn) = bases();
        let n = picks.len() + spare;
        let keys: Vec<Value> = picks.iter().map(|&i| mn.symbol(TEXTS[i]).unwrap()).collect();
        let mut t = Tenant::fork(mini);
        let b = build(&mut t, mn, &keys, n);
        let holder = alloc(&mut t, mn.global("Array").unwrap(), 5);
        for (k, v) in [b.id_dict, b.meth_dict, b.id_set, b.dict, b.int_set].into_iter().enumerate() {
            t.set_slot(holder, k, v).unwrap();
        }
        let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
        seg.make_portable(mini.heap()).unwrap();
        let bytes = file::to_bytes(&seg).unwrap();
        let mut back = file::from_bytes(&bytes, Some(scratch.fingerprint())).unwrap();
        let mut t2 = Tenant::fork(scratch);
        let imported = back.import_into(&mut t2, &[], false).unwrap();
        let h2 = imported.roots[0];
        let s = |k: usize| t2.slot(h2, k).unwrap();
        let b2 = Built { id_dict: s(0), meth_dict: s(1), id_set: s(2), dict: s(3), int_set: s(4) };
        let r = &imported.rehash;
        prop_assert_eq!(r.collections, 5);
        prop_assert_eq!(r.in_place + r.rehashed.len() + r.not_rehashed.len(), 5);
        prop_assert_eq!(r.not_rehashed.len(), 0);
        for (i, &p) in picks.iter().enumerate() {
            let k = sn.symbol(TEXTS[p]).unwrap();
            let want = Value::int(i as i64);
            let [d, m, e] = probe_all(&t2, &b2, k);
            prop_assert!(d.is_some_and(|v| v.same_word(want)), "#{}", TEXTS[p]);
            prop_assert!(m.is_some_and(|v| v.same_word(want)), "#{}", TEXTS[p]);
            prop_assert!(t2.identical(e.unwrap(), k).unwrap());
            let by_crate = rehash::lookup(&t2, sn, b2.meth_dict, k).unwrap();
            prop_assert!(by_crate.is_some_and(|v| v.same_word(want)));
            let by_crate = rehash::lookup(&t2, sn, b2.dict, k).unwrap();
            prop_assert!(by_crate.is_some_and(|v| v.same_word(want)), "#{} in the Dictionary", TEXTS[p]);
        }
    }
}

/// A String of `text` in `t`.
fn string(t: &mut Tenant, names: &BaseNames, text: &str) -> Value {
    let s = t
        .alloc(
            names.global("String").unwrap(),
            Format::Bytes,
            ObjectSize {
                slots: 0,
                bytes: text.len(),
            },
        )
        .unwrap();
    t.set_bytes(s, 0, text.as_bytes()).unwrap();
    s
}

/// `String>>hash` of `mini.image` and Scratch, written out here from the image's method:
/// 21845 for the empty string, `(c bitAnd: 127) * 106` for one character, else
/// `first * 48 + (the second character for two, the next-to-last for more) + size`.
fn image_string_hash(b: &[u8]) -> usize {
    match b.len() {
        0 => 21845,
        1 => (b[0] as usize & 127) * 106,
        l => b[0] as usize * 48 + b[if l == 2 { 1 } else { l - 2 }] as usize + l,
    }
}

/// Equality collections of Strings, placed by another hash (as a writer whose `String>>hash`
/// differs, Squeak 3.7's `stringHash:initialHash:` say, would leave them), are rehashed by
/// the image's own `String>>hash`, found in its method dictionary and recognised; every
/// String is then found by an equal String that is another object, by the crate's lookup
/// and by a probe written out here. A Set of objects whose `hash` method is not recognised
/// (an Interval's, which sends `size`) is reported as not rehashed, and left as it was.
#[test]
fn string_keyed_equality_collections_rehash_by_the_images_string_hash() {
    let (mini, _, mn, _) = bases();
    let g = |n: &str| mn.global(n).unwrap();
    let nil = mini.heap().nil();
    let mut t = Tenant::fork(mini);
    let texts = [
        "",
        "a",
        "ab",
        "abc",
        "printString",
        "hello world",
        "x",
        "yy",
        "zebra",
        "Morph",
    ];
    let n = 16;
    // Where the image would put each one (the first free slot from its home): at least one
    // must not be where packing from slot 0 leaves it, or the test proves nothing.
    let homes: Vec<usize> = texts
        .iter()
        .map(|s| image_string_hash(s.as_bytes()) % n)
        .collect();
    assert!(homes.iter().enumerate().any(|(i, &h)| h != i));
    let set = alloc(&mut t, g("Set"), 2);
    let set_array = alloc(&mut t, g("Array"), n);
    let dict = alloc(&mut t, g("Dictionary"), 2);
    let dict_array = alloc(&mut t, g("Array"), n);
    for (c, a) in [(set, set_array), (dict, dict_array)] {
        t.set_slot(c, 0, Value::int(texts.len() as i64)).unwrap();
        t.set_slot(c, 1, a).unwrap();
    }
    // Packed from slot 0 in reverse, whatever their hashes.
    for (i, text) in texts.iter().rev().enumerate() {
        let s = string(&mut t, mn, text);
        t.set_slot(set_array, i, s).unwrap();
        let key = string(&mut t, mn, text);
        let assoc = alloc(&mut t, g("Association"), 2);
        t.set_slot(assoc, 0, key).unwrap();
        t.set_slot(assoc, 1, Value::int(text.len() as i64)).unwrap();
        t.set_slot(dict_array, i, assoc).unwrap();
    }
    // Intervals hash by `Interval>>hash`, which sends `size` to itself (a method with
    // jumps): not computed here.
    let points = alloc(&mut t, g("Set"), 2);
    let points_array = alloc(&mut t, g("Array"), 4);
    let p = alloc(&mut t, g("Interval"), 3);
    for (k, v) in [1, 5, 1].into_iter().enumerate() {
        t.set_slot(p, k, Value::int(v)).unwrap();
    }
    t.set_slot(points, 0, Value::int(1)).unwrap();
    t.set_slot(points, 1, points_array).unwrap();
    t.set_slot(points_array, 3, p).unwrap();

    let r = rehash::rehash(&mut t, mn, &[set, dict, points]).unwrap();
    assert_eq!(r.collections, 3);
    assert_eq!(r.rehashed, vec![0, 1], "{r}");
    assert!(r.moved > 0);
    assert_eq!(r.not_rehashed.len(), 1);
    assert_eq!(r.not_rehashed[0].object, 2);
    assert!(
        r.not_rehashed[0].why.to_string().contains("not recognised"),
        "{:?}",
        r.not_rehashed[0]
    );
    assert!(
        t.slot(points_array, 3).unwrap().same_word(p),
        "left as it was"
    );

    for text in texts {
        let probe = string(&mut t, mn, text);
        let h = image_string_hash(text.as_bytes()) as u32;
        let in_set = scan(n, h, |j| {
            let e = t.slot(set_array, j).unwrap();
            e.same_word(nil) || t.bytes(e).unwrap() == text.as_bytes()
        })
        .unwrap();
        let e = t.slot(set_array, in_set).unwrap();
        assert!(!e.same_word(nil), "{text:?} in the Set");
        let in_dict = scan(n, h, |j| {
            let e = t.slot(dict_array, j).unwrap();
            e.same_word(nil) || t.bytes(t.slot(e, 0).unwrap()).unwrap() == text.as_bytes()
        })
        .unwrap();
        let assoc = t.slot(dict_array, in_dict).unwrap();
        assert!(!assoc.same_word(nil), "{text:?} in the Dictionary");
        assert_eq!(t.slot(assoc, 1).unwrap().as_int(), Some(text.len() as i64));
        // The crate's lookup, by an equal String that is another object.
        let v = rehash::lookup(&t, mn, dict, probe).unwrap();
        assert_eq!(
            v.and_then(Value::as_int),
            Some(text.len() as i64),
            "{text:?}"
        );
        let e = rehash::lookup(&t, mn, set, probe).unwrap().unwrap();
        assert_eq!(t.bytes(e).unwrap(), text.as_bytes());
    }
    let absent = string(&mut t, mn, "absent");
    assert!(rehash::lookup(&t, mn, set, absent).unwrap().is_none());
    // Rehashed once, they are in place.
    let again = rehash::rehash(&mut t, mn, &[set, dict]).unwrap();
    assert_eq!(again.in_place, 2);
}

/// A hostile, well-formed cluster: a Set of 150,000 SmallIntegers that all hash to slot 0
/// of a 200,000-slot table, packed from slot 1 so none is where its probe looks. Probing
/// element by element would take about 10^10 steps; the rehash is linear and finishes in
/// seconds, every element then found, and a second rehash finds them in place.
#[test]
fn a_hostile_cluster_is_rehashed_in_linear_time() {
    let (mini, _, mn, _) = bases();
    let g = |n: &str| mn.global(n).unwrap();
    let mut t = Tenant::fork(mini);
    let (n, count) = (200_000usize, 150_000usize);
    let set = alloc(&mut t, g("Set"), 2);
    let array = alloc(&mut t, g("Array"), n);
    t.set_slot(set, 0, Value::int(count as i64)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    for k in 0..count {
        t.set_slot(array, 1 + k, Value::int(((k + 1) * n) as i64))
            .unwrap();
    }
    let start = std::time::Instant::now();
    let r = rehash::rehash(&mut t, mn, &[set]).unwrap();
    let took = start.elapsed();
    eprintln!("a cluster of {count} in {n} slots rehashed in {took:?}");
    assert_eq!(r.rehashed, vec![0]);
    assert_eq!(r.moved, count);
    assert!(
        took < std::time::Duration::from_secs(30),
        "rehashing took {took:?}"
    );
    // Squeak's probe from slot 0 now meets every element before a nil: slots 0..count.
    for k in 0..count {
        assert_eq!(
            t.slot(array, k).unwrap().as_int(),
            Some(((k + 1) * n) as i64)
        );
    }
    assert!(t.slot(array, count).unwrap().same_word(mini.heap().nil()));
    for k in [0, count / 2, count - 1] {
        let e = Value::int(((k + 1) * n) as i64);
        assert!(rehash::lookup(&t, mn, set, e).unwrap().is_some());
    }
    let again = rehash::rehash(&mut t, mn, &[set]).unwrap();
    assert_eq!(again.in_place, 1);
}

/// A Set of the integers 1..=8 in a table of 8 slots, none free, every one misplaced
/// (`i + 1` hashes to the slot after `i`); answers the set and its array.
fn full_set(t: &mut Tenant, names: &BaseNames) -> (Value, Value) {
    let g = |n: &str| names.global(n).unwrap();
    let set = alloc(t, g("Set"), 2);
    let array = alloc(t, g("Array"), 8);
    t.set_slot(set, 0, Value::int(8)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    for i in 0..8 {
        t.set_slot(array, i, Value::int(i as i64 + 1)).unwrap();
    }
    (set, array)
}

/// A table with no free slot is a typed error, not a search without end; a lookup of an
/// absent key in it goes round the table once and answers none.
#[test]
fn a_table_with_no_free_slot_is_refused() {
    let (mini, _, mn, _) = bases();
    let mut t = Tenant::fork(mini);
    let (set, _) = full_set(&mut t, mn);
    match rehash::rehash(&mut t, mn, &[set]) {
        Err(cowheap_segment::SegmentError::HashedCollection {
            object,
            class,
            problem,
        }) => {
            assert_eq!(object, 0);
            assert_eq!(class, "Set");
            assert_eq!(problem, rehash::TableProblem::NoFreeSlot { slots: 8 });
        }
        other => panic!("a full table: {other:?}"),
    }
    assert!(
        rehash::lookup(&t, mn, set, Value::int(100))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        rehash::lookup(&t, mn, set, Value::int(3))
            .unwrap()
            .and_then(Value::as_int),
        Some(3)
    );
}

/// An import's rehash writes only the objects it is given: a collection whose array is
/// not among them is reported ([`rehash::Reason::ArrayOutside`]) and its array left as it
/// was, where an import used to rewrite it; given the array too, or by [`rehash::rehash`],
/// the same collection is rehashed.
#[test]
fn a_rehash_leaves_an_array_it_was_not_given() {
    let (mini, _, mn, _) = bases();
    let keys: Vec<Value> = TEXTS.iter().filter_map(|s| mn.symbol(s)).collect();
    let g = |n: &str| mn.global(n).unwrap();
    // An IdentitySet whose keys sit in order from slot 0, not where their hashes lead.
    let build = |t: &mut Tenant| {
        let set = alloc(t, g("IdentitySet"), 2);
        let array = alloc(t, g("Array"), TABLE);
        t.set_slot(set, 0, Value::int(keys.len() as i64)).unwrap();
        t.set_slot(set, 1, array).unwrap();
        for (i, &k) in keys.iter().enumerate() {
            t.set_slot(array, i, k).unwrap();
        }
        (set, array)
    };
    let words = |t: &Tenant, array: Value| -> Vec<u64> {
        (0..TABLE)
            .map(|i| t.slot(array, i).unwrap().word().bits())
            .collect()
    };
    let found = |t: &Tenant, array: Value| {
        let nil = t.base().heap().nil();
        keys.iter().all(|&k| {
            let h = t.identity_hash(k).unwrap();
            let at = scan(TABLE, h, |j| {
                let s = t.slot(array, j).unwrap();
                s.same_word(nil) || t.identical(s, k).unwrap()
            })
            .unwrap();
            t.identical(t.slot(array, at).unwrap(), k).unwrap()
        })
    };
    let mut t = Tenant::fork(mini);
    let (set, array) = build(&mut t);
    let before = words(&t, array);
    assert!(!found(&t, array));
    let report = rehash::rehash_members(&mut t, mn, &[set]).unwrap();
    assert_eq!(report.collections, 1);
    assert!(report.rehashed.is_empty());
    assert_eq!(report.not_rehashed.len(), 1);
    assert_eq!(report.not_rehashed[0].why, rehash::Reason::ArrayOutside);
    assert_eq!(words(&t, array), before, "the array is as it was");

    // Given the array too, the import's rehash rewrites it.
    let report = rehash::rehash_members(&mut t, mn, &[set, array]).unwrap();
    assert_eq!(report.rehashed, vec![0]);
    assert!(report.moved > 0);
    assert!(found(&t, array));

    // Now in place, the same outside table counts as in place, not as one left alone.
    let report = rehash::rehash_members(&mut t, mn, &[set]).unwrap();
    assert_eq!((report.in_place, report.not_rehashed.len()), (1, 0));

    // The general rehash writes a collection's table wherever it is.
    let mut u = Tenant::fork(mini);
    let (set, array) = build(&mut u);
    let report = rehash::rehash(&mut u, mn, &[set]).unwrap();
    assert_eq!(report.rehashed, vec![0]);
    assert!(found(&u, array));
}

/// An import whose rehash is refused part-way (a Set with no free slot, moved to another
/// base where its elements' hashes may differ) frees the members it made: the tenant's
/// objects, bytes and quota are as before it, with no collection, and the segment can be
/// imported again once the table has room.
#[test]
fn an_import_refused_by_its_rehash_frees_what_it_made() {
    let (mini, scratch, mn, _) = bases();
    let g = |n: &str| mn.global(n).unwrap();
    let mut t = Tenant::fork(mini);
    let (set, array) = full_set(&mut t, mn);
    let mut seg = tenant::extract(&t, &[set], &[]).unwrap();
    seg.make_portable(mini.heap()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();

    let mut t2 = Tenant::fork(scratch);
    let kept = alloc(&mut t2, g("Array"), 1);
    t2.set_root("kept", kept).unwrap();
    let unrooted = alloc(&mut t2, g("Array"), 1);
    let before = t2.stats();
    let objects_before: Vec<_> = t2.private_objects().map(|v| v.word()).collect();
    t2.set_quota(Some(before.private_bytes + 4096));
    let mut back = file::from_bytes(&bytes, Some(scratch.fingerprint())).unwrap();
    match back.import_into(&mut t2, &[], false) {
        Err(cowheap_segment::SegmentError::HashedCollection { problem, .. }) => {
            assert_eq!(problem, rehash::TableProblem::NoFreeSlot { slots: 8 });
        }
        other => panic!("a full table: {other:?}"),
    }
    let after = t2.stats();
    assert_eq!(after.private_objects, before.private_objects);
    assert_eq!(after.private_bytes, before.private_bytes);
    let objects_after: Vec<_> = t2.private_objects().map(|v| v.word()).collect();
    assert_eq!(objects_after, objects_before);
    // What the tenant held, rooted or not, is untouched.
    assert!(t2.slot(kept, 0).is_ok());
    assert!(t2.slot(unrooted, 0).is_ok());
    // With room in the table, the same segment imports within the same quota.
    t.set_slot(array, 7, mini.heap().nil()).unwrap();
    t.set_slot(set, 0, Value::int(7)).unwrap();
    let mut seg = tenant::extract(&t, &[set], &[]).unwrap();
    seg.make_portable(mini.heap()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(scratch.fingerprint())).unwrap();
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    assert_eq!(imported.members.len(), 2);
}
