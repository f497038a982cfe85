//! Swapping segments out of tenants and faulting them back in (`cowheap_segment::swap`).
//!
//! Properties, each over random private graphs in a synthetic base and in `mini.image`:
//! - the segment swapped out is Squeak's (counted here by a walk of this test's own), and
//!   every member is a stub, its body dropped;
//! - reads by `&self` through the stubs (the swapper's views) show everything the tenant's
//!   roots reach as before, with the segments left out: classes, identity hashes, bytes,
//!   and identity (references compared by the position of their targets in a walk);
//! - touching the roots in a random order (reads by `&self`, which leave their segment
//!   out; writes, which bring it back), a collection, then reads through `with_faults`,
//!   bring every segment back, and everything is then observed as before;
//! - a record with no member stubs (an older frame's) is faulted in by its roots;
//! - two segments, the second taken while the first is out, come back in either order;
//! - identity collections keyed by members and by base Symbols answer every lookup after a
//!   fault-in (the members were made again, with their hashes);
//! - a missing, truncated, damaged or replaced segment file is a typed error at fault-in,
//!   the tenant stays usable and the segment comes back once the file does;
//! - a swap-out that fails (a store that refuses, a host object) changes nothing;
//! - an object outside the segment that only the segment refers to while it is out stays
//!   alive for it (pinned), and is released when the segment is back;
//! - a large segment swapped out lowers the tenant's private bytes and memory.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, Word, synth};
use cowheap_segment::SegmentError;
use cowheap_segment::bind::BaseNames;
use cowheap_segment::rehash;
use cowheap_segment::swap::{
    DirStore, MemStore, SegmentId, SegmentStore, StoreError, SwapError, Swapper,
};
use cowheap_segment::tenant::SegmentState;
use cowheap_tenants::{Error, Tenant};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// The bases: a synthetic one and `mini.image`, each with a pointer class and a bytes class.
struct Bed {
    base: Arc<Base>,
    ptr_class: Value,
    bytes_class: Value,
}

fn synth_bed() -> &'static Bed {
    static B: OnceLock<Bed> = OnceLock::new();
    B.get_or_init(|| {
        let base = Base::new(synth::image(300, 5));
        let t = Tenant::fork(&base);
        let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
        Bed {
            base,
            ptr_class: class,
            bytes_class: class,
        }
    })
}

fn mini() -> &'static (Arc<Base>, BaseNames) {
    static B: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    B.get_or_init(|| {
        let base = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
        let names = BaseNames::of(base.heap()).unwrap();
        (base, names)
    })
}

fn mini_bed() -> &'static Bed {
    static B: OnceLock<Bed> = OnceLock::new();
    B.get_or_init(|| {
        let (base, names) = mini();
        Bed {
            base: base.clone(),
            ptr_class: names.global("Array").unwrap(),
            bytes_class: names.global("String").unwrap(),
        }
    })
}

/// A tenant with `n` private objects wired by `edges`, held by three holders (named roots);
/// every fifth object holds bytes.
fn graph(bed: &Bed, n: usize, edges: &[(usize, usize, usize)]) -> (Tenant, Vec<Value>) {
    let mut t = Tenant::fork(&bed.base);
    let g = Value::base(cowheap_heap::ObjectIndex::from_u32(3));
    let objects: Vec<Value> = (0..n)
        .map(|i| {
            if i % 5 == 4 {
                t.alloc_with(bed.bytes_class, Format::Bytes, &[], &[i as u8; 3])
                    .unwrap()
            } else {
                let slots = [Value::int(i as i64), g, Value::int(-1)];
                t.alloc_with(bed.ptr_class, Format::Pointers, &slots, &[])
                    .unwrap()
            }
        })
        .collect();
    for &(a, b, s) in edges {
        let (a, b) = (objects[a % n], objects[b % n]);
        if t.size(a).unwrap().slots > 0 {
            t.set_slot(a, s % 3, b).unwrap();
        }
    }
    for h in 0..3 {
        let held: Vec<Value> = objects.iter().skip(h).step_by(3).copied().collect();
        let v = t
            .alloc_with(bed.ptr_class, Format::Pointers, &held, &[])
            .unwrap();
        t.set_root(&format!("holder{h}"), v).unwrap();
    }
    (t, objects)
}

/// The tenant's named roots.
fn holders(t: &Tenant) -> Vec<Value> {
    let mut names: Vec<String> = t.root_names().map(str::to_owned).collect();
    names.sort();
    names.iter().filter_map(|n| t.root(n)).collect()
}

/// Private objects reachable from `from`, not entering `stop` nor stubs (counted apart).
fn reach(t: &Tenant, from: &[Value], stop: &HashSet<Word>) -> HashSet<Word> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Value> = from.to_vec();
    while let Some(v) = stack.pop() {
        let w = t.identity_word(v).unwrap();
        if !w.is_private() || stop.contains(&w) || t.stub_segment(v).unwrap().is_some() {
            continue;
        }
        if !seen.insert(w) {
            continue;
        }
        stack.push(t.class_of(v).unwrap());
        for i in 0..t.size(v).unwrap().slots {
            stack.push(t.slot(v, i).unwrap());
        }
    }
    seen
}

/// Squeak's segment of `roots`, counted by this test: reachable from them, not from the
/// named roots and pinned objects without passing through them.
fn expected_members(t: &Tenant, roots: &[Value]) -> usize {
    let root_words: HashSet<Word> = roots.iter().map(|&r| t.identity_word(r).unwrap()).collect();
    let mut others = holders(t);
    others.extend(t.pinned_objects());
    let outside = reach(t, &others, &root_words);
    reach(t, roots, &outside).len()
}

/// Everything the named roots reach, as the tenant shows it, faulting in what it touches:
/// per object in walk order its class, identity hash, bytes and slots, private references
/// named by walk position (so identity is compared, not keys).
fn observe(t: &mut Tenant) -> Vec<String> {
    let hs = holders(t);
    let order = t.with_faults(|t| walk(t, &hs)).unwrap();
    describe_all(t, &order)
}

/// [`observe`] by `&self`: reads through stubs answer from their segments' views (the
/// swapper's reader) and bring nothing back.
fn observe_reading(t: &Tenant) -> Vec<String> {
    let order = walk(t, &holders(t)).unwrap();
    describe_all(t, &order)
}

/// The private objects `from` reaches, in walk order.
fn walk(t: &Tenant, from: &[Value]) -> Result<Vec<Value>, Error> {
    let mut order: Vec<Value> = Vec::new();
    let mut seen: HashSet<Word> = HashSet::new();
    let mut stack: Vec<Value> = from.to_vec();
    while let Some(v) = stack.pop() {
        let w = t.identity_word(v)?;
        if !w.is_private() || !seen.insert(w) {
            continue;
        }
        order.push(v);
        for i in (0..t.size(v)?.slots).rev() {
            stack.push(t.slot(v, i)?);
        }
    }
    Ok(order)
}

/// Each of `order` described, private references named by walk position.
fn describe_all(t: &Tenant, order: &[Value]) -> Vec<String> {
    let names: HashMap<Word, usize> = order
        .iter()
        .enumerate()
        .map(|(n, &v)| (t.identity_word(v).unwrap(), n))
        .collect();
    order.iter().map(|&v| describe(t, v, &names)).collect()
}

fn describe(t: &Tenant, v: Value, names: &HashMap<Word, usize>) -> String {
    let slots: Vec<String> = (0..t.size(v).unwrap().slots)
        .map(|i| {
            let w = t.identity_word(t.slot(v, i).unwrap()).unwrap();
            match names.get(&w) {
                Some(n) => format!("#{n}"),
                None if w.is_private() => "private?".to_owned(),
                None => format!("{w:?}"),
            }
        })
        .collect();
    format!(
        "{:?} {} {:?} {:?}",
        t.identity_word(t.class_of(v).unwrap()).unwrap(),
        t.identity_hash(v).unwrap(),
        t.bytes(v).unwrap(),
        slots
    )
}

/// One root's own observation (no walk): hash, class, bytes, slot count.
type View = (u32, Word, Vec<u8>, usize);

/// What `v` shows of itself.
fn root_view(t: &Tenant, v: Value) -> Result<View, Error> {
    Ok((
        t.identity_hash(v)?,
        t.identity_word(t.class_of(v)?)?,
        t.bytes(v)?.to_vec(),
        t.size(v)?.slots,
    ))
}

/// Distinct objects among `picks`.
fn pick(t: &Tenant, objects: &[Value], picks: &[usize], avoid: &[Value]) -> Vec<Value> {
    let mut roots: Vec<Value> = Vec::new();
    for &p in picks {
        let v = objects[p % objects.len()];
        if t.stub_segment(v).unwrap().is_some()
            || roots
                .iter()
                .chain(avoid)
                .any(|&r| t.identical(r, v).unwrap())
        {
            continue;
        }
        roots.push(v);
    }
    roots
}

/// The property, on one bed: random graph, two segments (the second taken while the first
/// is out), touched back in a random order.
fn swap_and_touch(
    bed: &Bed,
    n: usize,
    edges: &[(usize, usize, usize)],
    picks_a: &[usize],
    picks_b: &[usize],
    touches: &[(usize, bool)],
    dir: bool,
) -> Result<(), TestCaseError> {
    let (mut t, objects) = graph(bed, n, edges);
    let before = observe(&mut t);
    let tmp = tempfile::tempdir().unwrap();
    let swapper = if dir {
        Swapper::new(DirStore::new(tmp.path()).unwrap())
    } else {
        Swapper::new(MemStore::new())
    };

    let mut all_roots: Vec<(Value, View)> = Vec::new();
    let mut ids = Vec::new();
    for picks in [picks_a, picks_b] {
        let avoid: Vec<Value> = all_roots.iter().map(|r| r.0).collect();
        let roots = pick(&t, &objects, picks, &avoid);
        if roots.is_empty() {
            continue;
        }
        let expected = expected_members(&t, &roots);
        let views: Vec<_> = roots.iter().map(|&r| root_view(&t, r).unwrap()).collect();
        let stubs_before = t.stubs().count();
        let bytes_before = t.stats().private_bytes;
        let out = swapper.swap_out(&mut t, &roots).unwrap();
        prop_assert_eq!(out.objects, expected, "Squeak's segment");
        prop_assert_eq!(out.roots, roots.len());
        prop_assert_eq!(out.stubs, expected, "every member is a stub");
        prop_assert!(
            t.stats().private_bytes < bytes_before,
            "the bodies are dropped"
        );
        prop_assert_eq!(t.stubs().count(), stubs_before + expected);
        prop_assert_eq!(swapper.state(out.id), Some(SegmentState::OnFile));
        for (&r, view) in roots.iter().zip(&views) {
            prop_assert_eq!(t.stub_segment(r).unwrap(), Some(out.id.get()));
            // A read by `&self` answers what it did, from the segment, which stays out.
            prop_assert_eq!(&root_view(&t, r).unwrap(), view);
            prop_assert_eq!(t.stub_segment(r).unwrap(), Some(out.id.get()));
            prop_assert!(t.identical(r, r).unwrap());
        }
        all_roots.extend(roots.into_iter().zip(views));
        ids.push(out.id);
    }
    // The whole graph, read by `&self` through the stubs, is what it was: every object
    // reached, identity included, with the segments still out.
    let out_now = swapper.swapped().len();
    prop_assert_eq!(&observe_reading(&t), &before);
    prop_assert_eq!(swapper.swapped().len(), out_now, "reads bring nothing back");
    // Touch in the order given: a read answers what it did and brings nothing back; a
    // write brings its segment back. Each root is then what it was.
    for &(k, write) in touches {
        let (v, view) = &all_roots[k % all_roots.len()];
        let segment = t.stub_segment(*v).unwrap();
        if write {
            t.set_bytes(*v, 0, &[]).unwrap();
            prop_assert!(t.stub_segment(*v).unwrap().is_none());
        } else {
            t.identity_hash(*v).unwrap();
            prop_assert_eq!(t.stub_segment(*v).unwrap(), segment);
        }
        prop_assert_eq!(&root_view(&t, *v).unwrap(), view);
    }
    prop_assert_eq!(&observe_reading(&t), &before);
    // A collection keeps every stub of a segment whose stub is reached (a view names the
    // other members by their stubs), and the reads still answer.
    t.collect();
    prop_assert_eq!(&observe_reading(&t), &before);
    // `with_faults` brings back what its reads touch: the rest.
    let after = observe(&mut t);
    prop_assert_eq!(t.stubs().count(), 0);
    prop_assert_eq!(after, before);
    prop_assert!(swapper.swapped().is_empty());
    prop_assert_eq!(t.pinned_count(), 0, "the outside objects are unpinned");
    if dir {
        let left = std::fs::read_dir(tmp.path()).unwrap().count();
        prop_assert_eq!(left, 0, "the files of segments back in are removed");
    }
    // Nothing is left behind that a collection keeps: the graph is what it was.
    t.collect();
    prop_assert_eq!(observe(&mut t), observe(&mut t));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn synthetic_segments_swap_out_and_fault_back_in(
        n in 4usize..40,
        edges in prop::collection::vec((0usize..64, 0usize..64, 0usize..3), 0..80),
        picks_a in prop::collection::vec(0usize..64, 1..6),
        picks_b in prop::collection::vec(0usize..64, 0..6),
        touches in prop::collection::vec((0usize..64, any::<bool>()), 1..12),
        dir in any::<bool>(),
    ) {
        swap_and_touch(synth_bed(), n, &edges, &picks_a, &picks_b, &touches, dir)?;
    }

    #[test]
    fn mini_image_segments_swap_out_and_fault_back_in(
        n in 4usize..40,
        edges in prop::collection::vec((0usize..64, 0usize..64, 0usize..3), 0..80),
        picks_a in prop::collection::vec(0usize..64, 1..6),
        picks_b in prop::collection::vec(0usize..64, 0..6),
        touches in prop::collection::vec((0usize..64, any::<bool>()), 1..12),
        dir in any::<bool>(),
    ) {
        swap_and_touch(mini_bed(), n, &edges, &picks_a, &picks_b, &touches, dir)?;
    }
}

/// Squeak's probe: from `hash \\ n` round the table, the first slot holding nil or the key.
fn scan(n: usize, hash: u32, free_or_key: impl Fn(usize) -> bool) -> Option<usize> {
    let start = hash as usize % n;
    (start..n).chain(0..start).find(|&i| free_or_key(i))
}

/// An IdentityDictionary and an IdentitySet in a `mini.image` tenant, keyed by `keys`
/// (Symbols of the base, and Points made here): answers (dictionary, set).
fn identity_collections(t: &mut Tenant, names: &BaseNames, keys: &[Value]) -> (Value, Value) {
    let g = |n: &str| names.global(n).unwrap();
    let nil = t.base().heap().nil();
    let size = (keys.len() * 2).max(4);
    let d = t
        .alloc_with(g("IdentityDictionary"), Format::Pointers, &[nil, nil], &[])
        .unwrap();
    let a = t
        .alloc_with(g("Array"), Format::Pointers, &vec![nil; size], &[])
        .unwrap();
    t.set_slot(d, 0, Value::int(keys.len() as i64)).unwrap();
    t.set_slot(d, 1, a).unwrap();
    let s = t
        .alloc_with(g("IdentitySet"), Format::Pointers, &[nil, nil], &[])
        .unwrap();
    let sa = t
        .alloc_with(g("Array"), Format::Pointers, &vec![nil; size], &[])
        .unwrap();
    t.set_slot(s, 0, Value::int(keys.len() as i64)).unwrap();
    t.set_slot(s, 1, sa).unwrap();
    for (i, &k) in keys.iter().enumerate() {
        let h = t.identity_hash(k).unwrap();
        let assoc = t
            .alloc_with(
                g("Association"),
                Format::Pointers,
                &[k, Value::int(i as i64)],
                &[],
            )
            .unwrap();
        let at = scan(size, h, |j| t.slot(a, j).unwrap().same_word(nil)).unwrap();
        t.set_slot(a, at, assoc).unwrap();
        let at = scan(size, h, |j| t.slot(sa, j).unwrap().same_word(nil)).unwrap();
        t.set_slot(sa, at, k).unwrap();
    }
    (d, s)
}

fn tenant_err(e: SegmentError) -> Error {
    match e {
        SegmentError::Tenant(e) => e,
        e => panic!("{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Identity collections whose keys are members of the segment (Points, made again at
    /// fault-in with their identity hashes) and base Symbols answer every lookup after the
    /// fault-in, the keys found by walking the faulted-in tables.
    #[test]
    fn identity_collections_answer_the_same_lookups_after_a_fault(
        points in 1usize..30,
        symbols in prop::collection::vec(0usize..3_000, 0..20),
        read_first in any::<bool>(),
    ) {
        let (base, names) = mini();
        let mut t = Tenant::fork(base);
        let point = names.global("Point").unwrap();
        let mut keys: Vec<Value> = (0..points)
            .map(|i| {
                t.alloc_with(point, Format::Pointers, &[Value::int(i as i64), Value::int(-(i as i64))], &[])
                    .unwrap()
            })
            .collect();
        let texts = ["size", "at:", "value", "do:", "new", "printString", "hash", "class", "x", "y"];
        let mut seen = HashSet::new();
        for s in symbols {
            let sym = names.symbol(texts[s % texts.len()]).unwrap();
            if seen.insert(sym.word()) {
                keys.push(sym);
            }
        }
        let (d, s) = identity_collections(&mut t, names, &keys);
        let holder = t
            .alloc_with(names.global("Array").unwrap(), Format::Pointers, &[d, s], &[])
            .unwrap();
        t.set_root("holder", holder).unwrap();
        let hashes: Vec<u32> = keys.iter().map(|&k| t.identity_hash(k).unwrap()).collect();
        drop(keys);
        let swapper = Swapper::new(MemStore::new());
        let out = swapper.swap_out(&mut t, &[d, s]).unwrap();
        // The dictionary, its array, the associations, the set, its array, the points.
        prop_assert_eq!(out.objects, 4 + hashes.len() + points);
        if read_first {
            t.with_faults(|t| t.size(s)).unwrap();
        } else {
            t.set_bytes(d, 0, &[]).unwrap();
        }
        prop_assert_eq!(t.stubs().count(), 0, "one segment: both roots back");
        // Every key, found by walking the dictionary's table, answers its value by lookup
        // in the dictionary and itself in the set, and has the hash it had.
        let a = t.slot(d, 1).unwrap();
        let nil = base.heap().nil();
        let mut found = 0;
        for j in 0..t.size(a).unwrap().slots {
            let assoc = t.slot(a, j).unwrap();
            if assoc.same_word(nil) {
                continue;
            }
            let k = t.slot(assoc, 0).unwrap();
            let i = t.slot(assoc, 1).unwrap().as_int().unwrap() as usize;
            prop_assert_eq!(t.identity_hash(k).unwrap(), hashes[i]);
            let v = t.with_faults(|t| rehash::lookup(t, names, d, k).map_err(tenant_err)).unwrap();
            prop_assert_eq!(v.and_then(|v| v.as_int()), Some(i as i64));
            let e = rehash::lookup(&t, names, s, k).unwrap().unwrap();
            prop_assert!(t.identical(e, k).unwrap());
            found += 1;
        }
        prop_assert_eq!(found, hashes.len());
    }
}

/// A swapped-out segment of a few objects in a directory store, with the tenant and what
/// it looked like before.
struct OnDisk {
    t: Tenant,
    swapper: Swapper,
    store: DirStore,
    id: SegmentId,
    root: Value,
    other: Value,
    before: Vec<String>,
    _dir: tempfile::TempDir,
}

fn on_disk(root: usize) -> OnDisk {
    let (mut t, objects) = graph(
        synth_bed(),
        12,
        &[(0, 1, 0), (1, 2, 1), (2, 3, 0), (3, 0, 2), (5, 6, 0)],
    );
    let before = observe(&mut t);
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path().join("segments")).unwrap();
    let swapper = Swapper::new(store.clone());
    let out = swapper.swap_out(&mut t, &[objects[root]]).unwrap();
    assert!(out.objects >= 1);
    OnDisk {
        t,
        swapper,
        store,
        id: out.id,
        root: objects[root],
        other: objects[6],
        before,
        _dir: dir,
    }
}

/// The tenant is usable: other objects read and write, a collection and a snapshot run,
/// and the segment is still out.
fn still_usable(d: &mut OnDisk) {
    let t = &mut d.t;
    assert_eq!(t.stub_segment(d.root).unwrap(), Some(d.id.get()));
    let x = t.slot(d.other, 0).unwrap();
    t.set_slot(d.other, 0, x).unwrap();
    t.collect();
    let r = Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
    assert_eq!(r.stubs().count(), 1);
    assert_eq!(d.swapper.state(d.id), Some(SegmentState::OnFile));
}

#[test]
fn damaged_missing_and_replaced_files_are_typed_errors_and_change_nothing() {
    // Every truncation of the file, and a bit flip in each region of it.
    let mut d = on_disk(0);
    let path = d.store.path(d.id);
    let good = std::fs::read(&path).unwrap();
    let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    for at in [0, 9, 13, 20, 50, 60, 88, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        cases.push(b);
    }
    for bad in cases {
        std::fs::write(&path, &bad).unwrap();
        let e = d.swapper.fault_in(&mut d.t, d.id).unwrap_err();
        assert!(
            matches!(
                e,
                SwapError::Segment(
                    SegmentError::BadFile(_)
                        | SegmentError::Checksum
                        | SegmentError::WrongBase { .. }
                )
            ),
            "{e}"
        );
        // A read through the stub, with the handler: the tenant's error, then the reason.
        let r = d.t.with_faults(|t| t.size(d.root));
        let Err(e @ Error::Fault { .. }) = r else {
            panic!("{r:?}")
        };
        assert!(matches!(d.swapper.explain(e), SwapError::Segment(_)));
        // A read by `&self`: the reader makes no view of a damaged file, so the read
        // answers `Swapped`, the reason kept for `explain`.
        assert!(matches!(
            d.t.size(d.root),
            Err(Error::Swapped { segment, object })
                if segment == d.id.get() && object == d.root.word()
        ));
        let kept = Error::Fault {
            segment: d.id.get(),
            reason: String::new(),
        };
        assert!(matches!(d.swapper.explain(kept), SwapError::Segment(_)));
        // A write through it: the handler is called and its error answered.
        assert!(matches!(
            d.t.set_bytes(d.root, 0, &[]),
            Err(Error::Fault { .. })
        ));
        still_usable(&mut d);
    }
    // Missing.
    std::fs::remove_file(&path).unwrap();
    let e = d.swapper.fault_in(&mut d.t, d.id).unwrap_err();
    assert!(
        matches!(e, SwapError::Store(StoreError::Missing(id)) if id == d.id),
        "{e}"
    );
    still_usable(&mut d);
    // Replaced by another valid segment file: its BLAKE3 is not the one written.
    let other = on_disk(4);
    std::fs::copy(other.store.path(other.id), &path).unwrap();
    let e = d.swapper.fault_in(&mut d.t, d.id).unwrap_err();
    assert!(matches!(e, SwapError::Replaced(id) if id == d.id), "{e}");
    still_usable(&mut d);
    // The right file back: a read by `&self` answers from it, the segment left out; then
    // the segment comes back and the tenant is what it was.
    std::fs::write(&path, &good).unwrap();
    let hash = d.t.identity_hash(d.root).unwrap();
    assert_eq!(d.t.stub_segment(d.root).unwrap(), Some(d.id.get()));
    d.swapper.fault_in(&mut d.t, d.id).unwrap();
    assert_eq!(d.t.identity_hash(d.root).unwrap(), hash);
    assert_eq!(observe(&mut d.t), d.before);
    assert!(!path.exists());
    assert!(matches!(
        d.swapper.fault_in(&mut d.t, d.id),
        Err(SwapError::Unknown(_))
    ));
}

#[test]
fn a_quota_at_fault_in_is_the_tenants_error_and_the_segment_stays_out() {
    let mut d = on_disk(0);
    let used = d.t.stats().private_bytes;
    d.t.set_quota(Some(used));
    let e = d.swapper.fault_in(&mut d.t, d.id).unwrap_err();
    assert!(
        matches!(e, SwapError::Tenant(Error::QuotaExceeded { .. })),
        "{e}"
    );
    still_usable(&mut d);
    d.t.set_quota(None);
    d.swapper.fault_in(&mut d.t, d.id).unwrap();
    assert_eq!(observe(&mut d.t), d.before);
}

/// A store that refuses every write.
#[derive(Debug)]
struct Full;

impl SegmentStore for Full {
    fn put(&self, id: SegmentId, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::Io {
            id,
            path: "full".into(),
            source: std::io::Error::other("no space left"),
        })
    }
    fn get(&self, id: SegmentId) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::Missing(id))
    }
    fn remove(&self, _: SegmentId) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn a_failed_swap_out_changes_nothing() {
    let (mut t, objects) = graph(synth_bed(), 20, &[(0, 1, 0), (1, 2, 0), (2, 7, 1)]);
    let before = observe(&mut t);
    let stats = t.stats();
    let full = Swapper::new(Full);
    let e = full
        .swap_out(&mut t, &[objects[0], objects[1]])
        .unwrap_err();
    assert!(matches!(e, SwapError::Store(StoreError::Io { .. })), "{e}");
    assert_eq!(t.stubs().count(), 0);
    assert_eq!(t.pinned_count(), 0);
    assert!(!t.has_fault_handler());
    assert_eq!(t.stats().private_bytes, stats.private_bytes);
    assert_eq!(observe(&mut t), before);

    let swapper = Swapper::new(MemStore::new());
    assert!(matches!(
        swapper.swap_out(&mut t, &[]),
        Err(SwapError::NoRoots)
    ));
    // A base object is no segment root.
    let g = t.base().heap().nil();
    assert!(matches!(
        swapper.swap_out(&mut t, &[g]),
        Err(SwapError::Segment(SegmentError::NotPrivate(_)))
    ));
    // A host object's proxy among the members.
    let class = synth_bed().ptr_class;
    let proxy = t.new_host_object(class, "conn", Box::new(7u32)).unwrap();
    t.set_slot(objects[0], 2, proxy).unwrap();
    let before = observe(&mut t);
    assert!(matches!(
        swapper.swap_out(&mut t, &[objects[0]]),
        Err(SwapError::HostObject { .. })
    ));
    assert_eq!(observe(&mut t), before);
    // A stub is no root of another segment; another tenant is refused.
    t.set_slot(objects[0], 2, Value::int(0)).unwrap();
    let before = observe(&mut t);
    swapper.swap_out(&mut t, &[objects[1]]).unwrap();
    assert!(matches!(
        swapper.swap_out(&mut t, &[objects[1]]),
        Err(SwapError::Segment(SegmentError::Tenant(
            Error::Swapped { .. }
        )))
    ));
    let (mut t2, o2) = graph(synth_bed(), 5, &[]);
    assert!(matches!(
        swapper.swap_out(&mut t2, &[o2[0]]),
        Err(SwapError::OtherTenant { .. })
    ));
    t.with_faults(|t| t.size(objects[1])).unwrap();
    assert_eq!(observe(&mut t), before);
}

#[test]
fn two_segments_come_back_in_either_order() {
    for first in [0, 1] {
        // Two chains of 50 under one holder each; a link from the first to the second's
        // root keeps the second outside the first.
        let bed = mini_bed();
        let mut t = Tenant::fork(&bed.base);
        let nil = bed.base.heap().nil();
        let mut heads = Vec::new();
        for h in 0..2 {
            let mut next = nil;
            for i in 0..50 {
                next = t
                    .alloc_with(bed.ptr_class, Format::Pointers, &[next, Value::int(i)], &[])
                    .unwrap();
            }
            let holder = t
                .alloc_with(bed.ptr_class, Format::Pointers, &[next, nil], &[])
                .unwrap();
            t.set_root(&format!("holder{h}"), holder).unwrap();
            heads.push(next);
        }
        t.set_slot(heads[0], 1, heads[1]).unwrap();
        let before = observe(&mut t);
        let swapper = Swapper::new(MemStore::new());
        let a = swapper.swap_out(&mut t, &[heads[0]]).unwrap();
        let b = swapper.swap_out(&mut t, &[heads[1]]).unwrap();
        assert_eq!((a.objects, b.objects), (50, 50));
        assert_eq!(a.pinned, 1, "the second head, outside the first segment");
        let order = if first == 0 {
            [a.id, b.id]
        } else {
            [b.id, a.id]
        };
        for id in order {
            swapper.fault_in(&mut t, id).unwrap();
        }
        assert_eq!(observe(&mut t), before);
        assert_eq!(t.pinned_count(), 0);
    }
}

#[test]
fn a_large_segment_swapped_out_lowers_the_tenants_memory() {
    let bed = mini_bed();
    let mut t = Tenant::fork(&bed.base);
    let nil = bed.base.heap().nil();
    // 20,000 objects: Arrays of four slots, each with a 32-byte String.
    let mut next = nil;
    for i in 0..10_000 {
        let s = t
            .alloc_with(bed.bytes_class, Format::Bytes, &[], &[i as u8; 32])
            .unwrap();
        next = t
            .alloc_with(
                bed.ptr_class,
                Format::Pointers,
                &[next, Value::int(i), s, nil],
                &[],
            )
            .unwrap();
    }
    let holder = t
        .alloc_with(bed.ptr_class, Format::Pointers, &[next], &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    t.collect();
    let (bytes0, mem0) = (t.stats().private_bytes, t.memory_bytes());
    let swapper = Swapper::new(MemStore::new());
    let out = swapper.swap_out(&mut t, &[next]).unwrap();
    let (bytes1, mem1) = (t.stats().private_bytes, t.memory_bytes());
    t.with_faults(|t| t.size(next)).unwrap();
    t.collect();
    let (bytes2, mem2) = (t.stats().private_bytes, t.memory_bytes());
    println!(
        "{} objects, file {} bytes: private bytes {bytes0} -> {bytes1} (back in: {bytes2}); \
         memory_bytes {mem0} -> {mem1} (back in: {mem2})",
        out.objects, out.file_bytes
    );
    assert_eq!(out.objects, 20_000);
    // What is left is a stub of 16 bytes per member (and the holder): a read through one
    // answers from the segment's file.
    assert_eq!(out.stubs, 20_000);
    assert!(
        bytes1 < 16 * (out.stubs as u64 + 10),
        "private bytes {bytes0} -> {bytes1}"
    );
    assert!(bytes1 * 4 < bytes0, "private bytes {bytes0} -> {bytes1}");
    assert!(mem1 * 3 < mem0, "memory {mem0} -> {mem1}");
    assert_eq!(bytes2, bytes0);
}

#[test]
fn a_segment_whose_stubs_the_tenant_drops_is_forgotten_with_its_pins_and_file() {
    let (mut t, objects) = graph(synth_bed(), 12, &[(0, 1, 0), (0, 4, 1)]);
    // objects[0] is the root; objects[1] and [4] are held by holders too: outside.
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path()).unwrap();
    let swapper = Swapper::new(store.clone());
    let a = swapper.swap_out(&mut t, &[objects[0]]).unwrap();
    assert_eq!(a.pinned, 2);
    assert_eq!(t.pinned_count(), 2);
    // The tenant drops its only reference to the stub (holder0's slot 0).
    let h0 = t.root("holder0").unwrap();
    t.set_slot(h0, 0, Value::int(0)).unwrap();
    let b = swapper.swap_out(&mut t, &[objects[5]]).unwrap();
    assert_eq!(swapper.swapped(), vec![(b.id, SegmentState::OnFile)]);
    assert!(!store.path(a.id).exists());
    assert!(store.path(b.id).exists());
    assert_eq!(t.pinned_count(), 0, "objects[5] refers to nothing outside");
    swapper.fault_in(&mut t, b.id).unwrap();
    assert!(swapper.swapped().is_empty());
}

/// A segment forgotten (its stubs dropped and collected) takes with it the reason its last
/// read or fault failed: `explain` answers nothing kept for it.
#[test]
fn a_forgotten_segment_leaves_no_reason_kept_for_it() {
    let (mut t, objects) = graph(synth_bed(), 12, &[(0, 1, 0), (0, 4, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path()).unwrap();
    let swapper = Swapper::new(store.clone());
    let a = swapper.swap_out(&mut t, &[objects[0]]).unwrap();
    std::fs::write(store.path(a.id), b"damaged").unwrap();
    // A read by `&self` keeps the reason for `explain`.
    assert!(matches!(t.size(objects[0]), Err(Error::Swapped { .. })));
    let h0 = t.root("holder0").unwrap();
    t.set_slot(h0, 0, Value::int(0)).unwrap();
    t.collect();
    assert!(swapper.records(&mut t).unwrap().is_empty());
    let asked = Error::Fault {
        segment: a.id.get(),
        reason: String::new(),
    };
    let e = swapper.explain(asked);
    assert!(matches!(e, SwapError::Tenant(Error::Fault { .. })), "{e}");
}

#[test]
fn swap_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Swapper>();
    send_sync::<DirStore>();
    send_sync::<MemStore>();
    send::<SwapError>();
    send::<Box<dyn SegmentStore>>();
}

#[test]
fn an_outside_object_the_tenant_drops_while_the_segment_is_out_stays_for_it() {
    let bed = mini_bed();
    let mut t = Tenant::fork(&bed.base);
    let nil = bed.base.heap().nil();
    let x = t
        .alloc_with(bed.bytes_class, Format::Bytes, &[], b"outside")
        .unwrap();
    let root = t
        .alloc_with(bed.ptr_class, Format::Pointers, &[x, nil], &[])
        .unwrap();
    let holder = t
        .alloc_with(bed.ptr_class, Format::Pointers, &[root, x], &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    let hash = t.identity_hash(x).unwrap();
    let swapper = Swapper::new(MemStore::new());
    let out = swapper.swap_out(&mut t, &[root]).unwrap();
    assert_eq!((out.objects, out.pinned), (1, 1));
    // The holder lets go of x; only the segment out refers to it.
    t.set_slot(holder, 1, nil).unwrap();
    t.collect();
    let back = t.with_faults(|t| t.slot(root, 0)).unwrap();
    assert_eq!(t.bytes(back).unwrap(), b"outside");
    assert_eq!(t.identity_hash(back).unwrap(), hash);
    assert_eq!(t.pinned_count(), 0);
    // Nothing holds it but the root, as before the swap: dropped there, it is freed (with
    // the forwarder the fault-in's fill left).
    t.set_slot(root, 0, nil).unwrap();
    t.collect();
    assert!(matches!(t.bytes(back), Err(Error::Collected(_))));
}

/// A segment out recorded by a frame from before member stubs (no member stubs: its other
/// members were freed), taken over by another swapper: reads by `&self` through its stub
/// answer `Swapped` (no view: no names for the other members), and a read with faults
/// brings it back, filling its roots alone. A segment of one object is the same both ways,
/// so the tenant is a real one.
#[test]
fn a_record_with_no_member_stubs_is_faulted_in_by_its_roots() {
    let (mut t, objects) = graph(synth_bed(), 10, &[]);
    let before = observe(&mut t);
    let hash = t.identity_hash(objects[2]).unwrap();
    let store = MemStore::new();
    let first = Swapper::new(store.clone());
    let out = first.swap_out(&mut t, &[objects[2]]).unwrap();
    assert_eq!((out.objects, out.stubs), (1, 1));
    let mut records = first.records(&mut t).unwrap();
    assert_eq!(records[0].members, Some(vec![]));
    records[0].members = None;
    let snapshot = t.snapshot();
    let mut t = Tenant::restore_from(t.base(), &snapshot).unwrap();
    let second = Swapper::new(store);
    second.adopt(&mut t, &records).unwrap();
    // The same object, named in the restored tenant.
    let root = Value::owned(objects[2].word(), t.id());
    assert!(matches!(
        t.size(root),
        Err(Error::Swapped { segment, .. }) if segment == out.id.get()
    ));
    assert_eq!(t.with_faults(|t| t.identity_hash(root)).unwrap(), hash);
    assert_eq!(t.stub_segment(root).unwrap(), None);
    assert!(second.swapped().is_empty());
    assert_eq!(observe(&mut t), before);
}
