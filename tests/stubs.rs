//! Root stubs: random private graphs, random segment roots, swapped out (bodies saved, roots
//! stubbed, members collected) and touched back in a random order through a fault handler;
//! every observation of the tenant's graph must be what it was before, identity included.

use cowheap::Base;
use cowheap::heap::{Format, ObjectSize, Value, Word, synth};
use cowheap::tenants::stubs::FaultHandler;
use cowheap::tenants::{Error, Tenant};
use proptest::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

/// A saved body: class, format, hash, slots (a member's index, or a word kept as it is) and
/// bytes.
#[derive(Clone, Debug)]
struct Saved {
    class: Value,
    format: Format,
    hash: u32,
    slots: Vec<Result<usize, Value>>,
    bytes: Vec<u8>,
}

/// A segment as the test keeps it: its roots (the stubs' values) and its members, roots
/// first.
#[derive(Clone, Debug)]
struct Segment {
    roots: Vec<Value>,
    members: Vec<Saved>,
}

/// Private objects reachable from `from` through private references, stopping at `stop`.
fn reach(t: &Tenant, from: &[Value], stop: &FxHashSet<Word>) -> Vec<Value> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    let mut stack: Vec<Value> = from.to_vec();
    while let Some(v) = stack.pop() {
        let w = t.identity_word(v).unwrap();
        if !w.is_private() || stop.contains(&w) || !seen.insert(w) {
            continue;
        }
        out.push(v);
        for i in 0..t.size(v).unwrap().slots {
            stack.push(t.slot(v, i).unwrap());
        }
    }
    out
}

/// Saves the segment of `roots` (Squeak's definition: what they reach that the tenant's
/// other roots do not reach except through them) and stubs its roots.
fn swap_out(t: &mut Tenant, roots: &[Value], holders: &[Value], id: u64) -> Segment {
    let root_words: FxHashSet<Word> = roots.iter().map(|&v| t.identity_word(v).unwrap()).collect();
    let outside: FxHashSet<Word> = reach(t, holders, &root_words)
        .into_iter()
        .map(|v| t.identity_word(v).unwrap())
        .collect();
    let mut members: Vec<Value> = roots.to_vec();
    let mut index: FxHashMap<Word, usize> = FxHashMap::default();
    for (n, &r) in roots.iter().enumerate() {
        index.insert(t.identity_word(r).unwrap(), n);
    }
    for v in reach(t, roots, &FxHashSet::default()) {
        let w = t.identity_word(v).unwrap();
        if !outside.contains(&w) && !index.contains_key(&w) {
            index.insert(w, members.len());
            members.push(v);
        }
    }
    let saved = members
        .iter()
        .map(|&v| Saved {
            class: t.class_of(v).unwrap(),
            format: t.format(v).unwrap(),
            hash: t.identity_hash(v).unwrap(),
            slots: (0..t.size(v).unwrap().slots)
                .map(|i| {
                    let s = t.slot(v, i).unwrap();
                    match index.get(&t.identity_word(s).unwrap()) {
                        Some(&m) => Ok(m),
                        None => Err(s),
                    }
                })
                .collect(),
            bytes: t.bytes(v).unwrap().to_vec(),
        })
        .collect();
    for &r in roots {
        t.stub(r, id).unwrap();
    }
    Segment {
        roots: roots.to_vec(),
        members: saved,
    }
}

/// Brings `seg` back: every member allocated again with its hash, its slots filled, then
/// each root's stub given its body.
fn fault_in(t: &mut Tenant, seg: &Segment) -> cowheap::tenants::Result<()> {
    let nil = t.base().heap().nil();
    let mut made = Vec::new();
    for m in &seg.members {
        let size = ObjectSize {
            slots: m.slots.len(),
            bytes: m.bytes.len(),
        };
        let fill = vec![nil; size.slots];
        made.push(t.alloc_with_hash(m.class, m.format, &fill, &m.bytes, m.hash)?);
    }
    for (m, &v) in seg.members.iter().zip(&made) {
        for (i, s) in m.slots.iter().enumerate() {
            let w = match *s {
                Ok(n) if n < seg.roots.len() => seg.roots[n],
                Ok(n) => made[n],
                Err(v) => v,
            };
            t.set_slot(v, i, w)?;
        }
    }
    for (&stub, &body) in seg.roots.iter().zip(&made) {
        t.fill_stub(stub, body)?;
    }
    Ok(())
}

/// Everything the tenant's roots reach, as seen through it: per object, in the order of a
/// walk from the holders, its class, hash, bytes and slots, with private references named
/// by the walk's order (so identity is compared, not keys).
fn observe(t: &mut Tenant, holders: &[Value]) -> Vec<String> {
    let order = t
        .with_faults(|t| {
            let mut order: Vec<Value> = Vec::new();
            let mut seen: FxHashMap<Word, usize> = FxHashMap::default();
            let mut stack: Vec<Value> = holders.to_vec();
            while let Some(v) = stack.pop() {
                let w = t.identity_word(v)?;
                if !w.is_private() || seen.contains_key(&w) {
                    continue;
                }
                seen.insert(w, order.len());
                order.push(v);
                for i in (0..t.size(v)?.slots).rev() {
                    stack.push(t.slot(v, i)?);
                }
            }
            Ok(order)
        })
        .unwrap();
    let names: FxHashMap<Word, usize> = order
        .iter()
        .enumerate()
        .map(|(n, &v)| (t.identity_word(v).unwrap(), n))
        .collect();
    order
        .iter()
        .map(|&v| {
            let slots: Vec<String> = (0..t.size(v).unwrap().slots)
                .map(|i| {
                    let s = t.slot(v, i).unwrap();
                    let w = t.identity_word(s).unwrap();
                    match names.get(&w) {
                        Some(n) => format!("#{n}"),
                        None => format!("{:?}", w),
                    }
                })
                .collect();
            format!(
                "{:?} {} {:?} {:?}",
                t.class_of(v).unwrap().word(),
                t.identity_hash(v).unwrap(),
                t.bytes(v).unwrap(),
                slots
            )
        })
        .collect()
}

/// A tenant with `n` private objects wired by `edges`, held by three holders (named roots).
fn graph(
    base: &Arc<Base>,
    n: usize,
    edges: &[(usize, usize, usize)],
) -> (Tenant, Vec<Value>, Vec<Value>) {
    let mut t = Tenant::fork(base);
    let g = base.heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let objects: Vec<Value> = (0..n)
        .map(|i| {
            if i % 5 == 4 {
                t.alloc_with(class, Format::Bytes, &[], &[i as u8; 3])
                    .unwrap()
            } else {
                let slots = [Value::int(i as i64), g, Value::int(-1)];
                t.alloc_with(class, Format::Pointers, &slots, &[]).unwrap()
            }
        })
        .collect();
    for &(a, b, s) in edges {
        let (a, b) = (objects[a % n], objects[b % n]);
        if t.size(a).unwrap().slots > 0 {
            t.set_slot(a, s % 3, b).unwrap();
        }
    }
    let holders: Vec<Value> = (0..3)
        .map(|h| {
            let held: Vec<Value> = objects.iter().skip(h).step_by(3).copied().collect();
            let v = t.alloc_with(class, Format::Pointers, &held, &[]).unwrap();
            t.set_root(&format!("holder{h}"), v).unwrap();
            v
        })
        .collect();
    (t, objects, holders)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn swapped_segments_fault_back_in_with_identity(
        n in 4usize..40,
        edges in proptest::collection::vec((0usize..64, 0usize..64, 0usize..3), 0..80),
        picks in proptest::collection::vec(0usize..64, 1..6),
        touches in proptest::collection::vec(0usize..64, 1..10),
        write in any::<bool>(),
    ) {
        let base = Base::new(synth::image(300, 5));
        let (mut t, objects, holders) = graph(&base, n, &edges);
        let before = observe(&mut t, &holders);

        // One segment of the picked roots.
        let mut roots: Vec<Value> = Vec::new();
        for &p in &picks {
            let v = objects[p % n];
            if !roots.iter().any(|&r| t.identical(r, v).unwrap()) {
                roots.push(v);
            }
        }
        let segs = vec![swap_out(&mut t, &roots, &holders, 0)];
        let freed = t.collect().freed;
        let members: usize = segs.iter().map(|s| s.members.len() - s.roots.len()).sum();
        prop_assert_eq!(freed as usize, members, "the members are gone from the tenant");
        prop_assert_eq!(t.stubs().count(), roots.len());
        prop_assert_eq!(t.stubs_of(0), roots.len());

        // Reads through a stub say which segment; identity needs no fault.
        for (id, s) in segs.iter().enumerate() {
            for &r in &s.roots {
                prop_assert_eq!(t.stub_segment(r).unwrap(), Some(id as u64));
                let swapped = matches!(
                    t.class_of(r),
                    Err(Error::Swapped { segment, .. }) if segment == id as u64
                );
                prop_assert!(swapped);
                prop_assert!(t.identical(r, r).unwrap());
            }
        }
        // Without a handler a write through a stub is refused and changes nothing.
        let r0 = segs[0].roots[0];
        let refused = matches!(t.set_bytes(r0, 0, &[]), Err(Error::Swapped { .. }));
        prop_assert!(refused);

        let kept = segs.clone();
        t.set_fault_handler(Some(FaultHandler::new(move |t, id| {
            fault_in(t, &kept[id as usize])
        })));
        // Touch through stubs in a random order: reads through `with_faults`, or an empty
        // write (which faults the segment in directly, through the handler).
        for &k in &touches {
            let v = roots[k % roots.len()];
            if write {
                t.set_bytes(v, 0, &[]).unwrap();
            } else {
                t.with_faults(|t| t.identity_hash(v)).unwrap();
            }
            prop_assert!(t.stub_segment(v).unwrap().is_none());
        }
        let after = observe(&mut t, &holders);
        prop_assert_eq!(t.stubs().count(), 0);
        prop_assert_eq!(t.stubs_of(0), 0);
        prop_assert_eq!(after, before);
        // Every root is still what the tenant's references name.
        for &r in &roots {
            prop_assert!(t.stub_segment(r).unwrap().is_none());
        }
    }
}

#[test]
fn stubs_survive_snapshots_and_refuse_what_they_cannot_be() {
    let base = Base::new(synth::image(300, 5));
    let (mut t, objects, holders) = graph(&base, 10, &[(0, 1, 0), (1, 2, 1)]);
    let g = base.heap().root("Smalltalk").unwrap();
    assert!(matches!(t.stub(g, 1), Err(Error::NotSwappable(_))));
    assert!(matches!(t.stub(Value::int(3), 1), Err(Error::Heap(_))));
    t.stub(objects[1], 7).unwrap();
    assert!(matches!(
        t.stub(objects[1], 8),
        Err(Error::Swapped { segment: 7, .. })
    ));
    assert!(matches!(
        t.become_forward(objects[1], objects[2]),
        Err(Error::Swapped { .. })
    ));
    assert!(matches!(
        t.become_two_way(objects[3], objects[1]),
        Err(Error::Swapped { .. })
    ));
    // A snapshot keeps the stub; the restored tenant reads it as swapped out too.
    let bytes = t.snapshot();
    let r = Tenant::restore_from(&base, &bytes).unwrap();
    let h0 = r.root("holder0").unwrap();
    let held = r.slot(h0, 0).unwrap(); // objects[0]
    let one = r.slot(held, 0).unwrap(); // objects[1], the stub
    assert!(matches!(
        r.slot(one, 0),
        Err(Error::Swapped { segment: 7, .. })
    ));
    // A reader leaves the stub to its tenant, and answers its error.
    let rd = r.reader();
    assert!(rd.try_slot(one, 0).is_none());
    assert!(matches!(
        rd.slot(one, 0),
        Err(Error::Swapped { segment: 7, .. })
    ));
    assert!(matches!(
        rd.size(one),
        Err(Error::Swapped { segment: 7, .. })
    ));
    // A writer leaves a write into the stub to its tenant, and stores a reference to the
    // stub as it is, as `set_slot` does.
    let w = r.writer();
    assert!(!w.try_set_slot(one, 0, Value::int(1)));
    assert!(w.try_set_slot(held, 2, one));
    assert_eq!(r.slot(held, 2).unwrap().word(), one.word());
    assert_eq!(r.stubs().count(), 1);
    assert_eq!((r.stubs_of(7), r.stubs_of(8)), (1, 0));
    // A fault handler that leaves the stub is an error, not a hang.
    t.set_fault_handler(Some(FaultHandler::new(|_, _| Ok(()))));
    assert!(matches!(
        t.fault_in(7),
        Err(Error::Swapped { segment: 7, .. })
    ));
    assert!(matches!(
        t.with_faults(|t| t.size(objects[1])),
        Err(Error::Swapped { .. })
    ));
    let _ = holders;
}

/// `fill_stubs` checks every pair before it fills the first: a pair it refuses anywhere in
/// the list leaves every stub standing and every body an object.
#[test]
fn fill_stubs_fills_all_or_none() {
    let base = Base::new(synth::image(300, 5));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let obj = |t: &mut Tenant, n: i64| {
        t.alloc_with(class, Format::Pointers, &[Value::int(n)], &[])
            .unwrap()
    };
    let (a, b) = (obj(&mut t, 1), obj(&mut t, 2));
    let holder = t.alloc_with(class, Format::Pointers, &[a, b], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    t.stub(a, 4).unwrap();
    t.stub(b, 4).unwrap();
    let (ba, bb, other) = (obj(&mut t, 10), obj(&mut t, 20), obj(&mut t, 30));
    let before = t.stats();
    let refused: [&[(Value, Value)]; 5] = [
        // The second stub given a base object, a stub, the first's body, a non-stub.
        &[(a, ba), (b, g)],
        &[(a, ba), (b, a)],
        &[(a, ba), (b, ba)],
        &[(a, ba), (other, bb)],
        // One stub twice.
        &[(a, ba), (a, bb)],
    ];
    for pairs in refused {
        let e = t.fill_stubs(pairs).unwrap_err();
        assert!(matches!(e, Error::NotSwappable(_)), "{pairs:?}: {e:?}");
        assert_eq!(t.stub_segment(a).unwrap(), Some(4), "{pairs:?}");
        assert_eq!(t.stub_segment(b).unwrap(), Some(4), "{pairs:?}");
        assert_eq!(t.slot(ba, 0).unwrap().as_int(), Some(10), "{pairs:?}");
        let s = t.stats();
        assert_eq!(
            (s.private_objects, s.private_bytes),
            (before.private_objects, before.private_bytes)
        );
    }
    t.fill_stubs(&[(a, ba), (b, bb)]).unwrap();
    assert_eq!(t.stubs_of(4), 0);
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(10));
    assert_eq!(t.slot(b, 0).unwrap().as_int(), Some(20));
    assert!(t.identical(ba, a).unwrap());
    assert!(t.identical(t.slot(holder, 1).unwrap(), bb).unwrap());
}

/// A copy of a base object is that base object's own body here: `fill_stubs` refuses it as
/// a stub's body (named by the base reference or by the copy's own value), since filling
/// from it would make the base object one with the stub's root. Nothing changes.
#[test]
fn fill_stubs_refuses_a_copy_of_a_base_object() {
    let base = Base::new(synth::image(300, 5));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let a = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[a], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    t.stub(a, 4).unwrap();
    t.set_slot(g, 0, Value::int(77)).unwrap();
    let copy = t
        .copies()
        .find(|&(b, _)| b.word() == g.word())
        .map(|(_, c)| c)
        .unwrap();
    assert!(copy.word().is_private());
    let before = t.stats();
    for from in [g, copy] {
        let e = t.fill_stubs(&[(a, from)]).unwrap_err();
        assert!(matches!(e, Error::NotSwappable(_)), "{from:?}: {e:?}");
        assert_eq!(t.stub_segment(a).unwrap(), Some(4));
        assert!(!t.identical(g, holder).unwrap());
        assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(77));
        assert_eq!(t.identity_word(g).unwrap(), t.identity_word(copy).unwrap());
        let s = t.stats();
        assert_eq!(
            (s.private_objects, s.private_bytes, s.copies),
            (before.private_objects, before.private_bytes, before.copies)
        );
    }
    // The base object is still its own: not the stub's root.
    assert!(t.identity_word(g).unwrap() != t.identity_word(a).unwrap());
}
