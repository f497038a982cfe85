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
fn symbol_keyed_identity_collections_answer_the_same_lookups_after_a_cross_base_import() {
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
    }
    // The report: the three identity collections rehashed, the equality Dictionary of
    // Symbols named as not rehashed, the Set of SmallIntegers already in place.
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
    ];
    want.sort_unstable();
    assert_eq!(rehashed, want);
    assert_eq!(r.collections, 5);
    assert_eq!(r.in_place, 1);
    assert!(r.moved > 0);
    assert_eq!(r.not_rehashed.len(), 1);
    assert_eq!(r.not_rehashed[0].object, position(b2.dict));
    assert_eq!(r.not_rehashed[0].class, "Dictionary");
    assert!(r.to_string().contains("3 rehashed"));
    let absent = ["printString:", "inspect", "halt", "error:", "value:value:"]
        .into_iter()
        .filter_map(|s| sn.symbol(s))
        .filter(|s| !texts.iter().any(|x| sn.symbol(x).unwrap().same_word(*s)))
        .collect::<Vec<_>>();
    assert!(!absent.is_empty());
    for k in absent {
        assert!(probe_all(&t2, &b2, k).iter().all(Option::is_none));
        assert!(rehash::lookup(&t2, &sn, b2.id_dict, k).unwrap().is_none());
    }
    // The equality Dictionary's keys are not looked up by a hash this crate cannot compute.
    assert!(rehash::lookup(&t2, &sn, b2.dict, sn.symbol("size").unwrap()).is_err());
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
    let why: Vec<(usize, &str)> = r
        .not_rehashed
        .iter()
        .map(|n| (n.object, n.why.as_str()))
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
    /// key with its value and the report accounts for all five collections.
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
        prop_assert_eq!(r.not_rehashed.len(), 1);
        for (i, &p) in picks.iter().enumerate() {
            let k = sn.symbol(TEXTS[p]).unwrap();
            let want = Value::int(i as i64);
            let [d, m, e] = probe_all(&t2, &b2, k);
            prop_assert!(d.is_some_and(|v| v.same_word(want)), "#{}", TEXTS[p]);
            prop_assert!(m.is_some_and(|v| v.same_word(want)), "#{}", TEXTS[p]);
            prop_assert!(t2.identical(e.unwrap(), k).unwrap());
            let by_crate = rehash::lookup(&t2, sn, b2.meth_dict, k).unwrap();
            prop_assert!(by_crate.is_some_and(|v| v.same_word(want)));
        }
    }
}
