//! A tenant's accounting against a recount, and its quota, after random sequences of
//! writes, allocations, one-way and two-way becomes, collections, undone allocations,
//! swap-outs and fault-ins, snapshots and restores, commits, aborts and rebases:
//! `stats()`'s private objects and bytes equal what a restore of the tenant's snapshot
//! counts from its entries, a success that grew the private bytes never passes the quota,
//! a refusal changes nothing, a collection frees exactly what the walk from the roots,
//! handles and copies does not reach and leaves no word holding a forwarder, and a
//! reference to a collected object is refused from then on, whatever reuses its key. Plus
//! the arithmetic edges: each charge against a quota of exactly its size, and a collection's
//! steps with the lookups counter near its maximum.

mod common;
use common::graph;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::commit::{CommitRights, Repository};
use cowheap_tenants::{Error, Handle, Tenant};
use std::sync::Arc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Private objects and bytes as a restore of the tenant's snapshot counts them, from its
/// entries.
fn recount(t: &Tenant) -> (u64, u64) {
    let back = Tenant::restore_from(t.base(), &t.snapshot()).expect("a snapshot restores");
    let s = back.stats();
    (s.private_objects, s.private_bytes)
}

/// The counters a refused operation must leave as they were.
fn counters(t: &Tenant) -> (u64, u64, u64, u64, u64, u64) {
    let s = t.stats();
    (
        s.private_objects,
        s.private_bytes,
        s.copies,
        s.allocations,
        s.becomes,
        s.collections,
    )
}

fn run(seed: u64, steps: usize) {
    let base = Base::new(synth::image(400, seed));
    let marks = if seed.is_multiple_of(3) {
        cowheap_forwarders::MarkPolicy::Private
    } else {
        cowheap_forwarders::MarkPolicy::Shared
    };
    let repo = Repository::with_config(
        base.clone(),
        CommitRights::Anyone,
        cowheap_tenants::TenantConfig { quota: None, marks },
    );
    let mut other = repo.fork();
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = repo.fork();
    let class = t.class_of(g).unwrap();
    let pool: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| base.heap().size(x).unwrap().slots >= 1)
        .take(8)
        .map(Value::base)
        .collect();
    let mut r = Rng(seed);
    let mut vals: Vec<Value> = pool.clone();
    let mut handles: Vec<Handle> = Vec::new();
    // References known to name collected objects: refused for good.
    let mut dead: Vec<Value> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    for step in 0..steps {
        let op = r.below(19);
        let pick = |r: &mut Rng, vals: &Vec<Value>| {
            if r.below(8) == 0 {
                Value::int(r.below(100) as i64)
            } else {
                vals[r.below(vals.len())]
            }
        };
        let before = graph(&t, &handles);
        let counts = counters(&t);
        let (a, b) = (pick(&mut r, &vals), pick(&mut r, &vals));
        let mut graph_kept = false;
        let res: Result<(), Error> = match op {
            0 | 1 => {
                let n = r.below(4);
                let slots: Vec<Value> = (0..n).map(|_| pick(&mut r, &vals)).collect();
                let (format, bytes) = if r.below(3) == 0 {
                    (Format::Bytes, vec![7u8; r.below(12)])
                } else {
                    (Format::Pointers, vec![])
                };
                let slots = if format == Format::Bytes {
                    vec![]
                } else {
                    slots
                };
                t.alloc_with(class, format, &slots, &bytes)
                    .map(|v| vals.push(v))
            }
            2 | 3 => t.set_slot(a, r.below(3), b),
            4 => t.become_forward(a, b),
            5 => t.become_two_way(a, b),
            6 => {
                // Every transient private reference is checked after the collection: one
                // the graph does not reach is refused; one it reaches reads as before.
                let reached: Vec<bool> = vals
                    .iter()
                    .map(|&v| {
                        t.root_names()
                            .filter_map(|n| t.root(n))
                            .chain(handles.iter().filter_map(|&h| t.pinned_value(h).ok()))
                            .chain(t.copies().map(|(x, _)| x))
                            .any(|s| reaches(&t, s, v))
                    })
                    .collect();
                let pre: Vec<Option<cowheap_heap::Word>> =
                    vals.iter().map(|&v| t.identity_word(v).ok()).collect();
                t.collect();
                // No slot, class word, root or handle holds a forwarder any more.
                let patches = t.stats().patches;
                graph(&t, &handles);
                assert_eq!(
                    t.stats().patches,
                    patches,
                    "seed {seed} step {step}: a word still held a forwarder after a collection\n{log:#?}"
                );
                graph_kept = true;
                for ((&v, &reach), w) in vals.iter().zip(&reached).zip(&pre) {
                    if !v.word().is_private() {
                        continue;
                    }
                    match t.header(v) {
                        Err(Error::Collected(_)) => {
                            // Only a forwarder may go while what it leads to stays.
                            assert!(
                                !reach || w.is_some_and(|w| w != v.word()),
                                "seed {seed} step {step}: a reachable object was collected\n{log:#?}"
                            );
                            dead.push(v);
                        }
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                        Ok(_) => assert!(
                            reach,
                            "seed {seed} step {step}: an unreachable object survived a collection\n{log:#?}"
                        ),
                    }
                }
                Ok(())
            }
            7 => {
                let mut made: Vec<Value> = Vec::new();
                for _ in 0..1 + r.below(3) {
                    let mut slots: Vec<Value> =
                        (0..r.below(3)).map(|_| pick(&mut r, &vals)).collect();
                    if let Some(&m) = made.last() {
                        slots.push(m);
                    }
                    match t.alloc_with(class, Format::Pointers, &slots, &[]) {
                        Ok(m) => made.push(m),
                        Err(_) => break,
                    }
                }
                let res = t.free_unreachable(&made).map(|_| ());
                assert_eq!(counters(&t).1, counts.1, "seed {seed} step {step}");
                graph_kept = true;
                if res.is_ok() {
                    dead.extend(made);
                }
                res
            }
            8 => t.set_root(&format!("r{}", r.below(4)), a),
            9 => {
                t.remove_root(&format!("r{}", r.below(4)));
                Ok(())
            }
            10 => t.pin(a).map(|h| handles.push(h)),
            11 => {
                if !handles.is_empty() {
                    let h = handles.swap_remove(r.below(handles.len()));
                    t.unpin(h).map(|_| ()).unwrap();
                }
                Ok(())
            }
            12 => {
                let q = match r.below(3) {
                    0 | 1 => None,
                    _ => Some(t.stats().private_bytes + r.below(400) as u64),
                };
                t.set_quota(q);
                Ok(())
            }
            13 => {
                // A snapshot restored, the handles pinned again: the same graph and counts.
                let bytes = t.snapshot();
                let quota = t.quota();
                let mut back = Tenant::restore_from(t.base(), &bytes).unwrap();
                back.set_quota(quota);
                let id = back.id();
                let rehome = |v: Value| {
                    if v.word().is_private() {
                        Value::owned(v.word(), id)
                    } else {
                        v
                    }
                };
                let mut hs = Vec::new();
                for &h in &handles {
                    hs.push(back.pin(rehome(t.pinned_value(h).unwrap())).unwrap());
                }
                let s0 = t.stats();
                let s1 = back.stats();
                assert_eq!(
                    (
                        s0.private_objects,
                        s0.private_bytes,
                        s0.copies,
                        s0.allocations,
                        s0.becomes
                    ),
                    (
                        s1.private_objects,
                        s1.private_bytes,
                        s1.copies,
                        s1.allocations,
                        s1.becomes
                    ),
                    "seed {seed} step {step}: restore"
                );
                vals = vals.into_iter().map(rehome).collect();
                dead = dead.into_iter().map(rehome).collect();
                handles = hs;
                t = back;
                graph_kept = true;
                Ok(())
            }
            14 => match repo.commit(&mut t, "test") {
                Ok(_) => Ok(()),
                Err(e) => {
                    assert_eq!(before, graph(&t, &handles), "seed {seed} step {step}: {e}");
                    assert_eq!(counts, counters(&t), "seed {seed} step {step}: {e}");
                    Ok(())
                }
            },
            15 => {
                if r.below(4) == 0 {
                    repo.abort(&mut t);
                    handles.clear();
                }
                Ok(())
            }
            16 => {
                // Another tenant commits a write to a pool object: a later commit of this
                // one may conflict, and a rebase moves it on.
                let x = pool[r.below(pool.len())];
                let _ = other.set_slot(x, 0, Value::int(r.below(9) as i64));
                let _ = repo.commit(&mut other, "other");
                repo.abort(&mut other);
                match repo.rebase(&mut t) {
                    Ok(_) => {
                        graph_kept = true;
                        Ok(())
                    }
                    Err(_) => {
                        assert_eq!(before, graph(&t, &handles), "seed {seed} step {step}");
                        assert_eq!(counts, counters(&t), "seed {seed} step {step}");
                        Ok(())
                    }
                }
            }
            _ => swap_out_and_in(&mut t, a),
        };
        log.push(format!(
            "{step}: op {op} {:?} {:?} -> {:?}",
            a.word(),
            b.word(),
            res.as_ref().err()
        ));
        if graph_kept {
            assert_eq!(
                before,
                graph(&t, &handles),
                "seed {seed} step {step}: op {op} changed the graph\n{log:#?}"
            );
        }
        if res.is_err() {
            assert_eq!(
                before,
                graph(&t, &handles),
                "seed {seed} step {step}: a refused op changed the graph\n{log:#?}"
            );
            assert_eq!(
                counts,
                counters(&t),
                "seed {seed} step {step}: a refused op changed the counters\n{log:#?}"
            );
            if let Err(Error::QuotaExceeded {
                quota,
                used,
                needed,
            }) = res
            {
                assert_eq!(used, counts.1);
                assert!(
                    used.saturating_add(needed) > quota,
                    "seed {seed} step {step}"
                );
            }
        }
        let s = t.stats();
        if let Some(q) = t.quota()
            && s.private_bytes > counts.1
        {
            assert!(
                s.private_bytes <= q,
                "seed {seed} step {step}: op {op} passed the quota {q}: {s:?}\n{log:#?}"
            );
        }
        assert_eq!(
            (s.private_objects, s.private_bytes),
            recount(&t),
            "seed {seed} step {step}: op {op}: the counts differ from a recount\n{log:#?}"
        );
        for &d in &dead {
            assert!(
                matches!(t.header(d), Err(Error::Collected(_))),
                "seed {seed} step {step}: a collected reference reads {:?}\n{log:#?}",
                t.header(d)
            );
        }
        vals.retain(|&v| t.resolve(v).is_ok());
        if vals.len() > 24 {
            vals.drain(8..12);
        }
        if vals.is_empty() {
            vals.extend(pool.iter().copied());
        }
    }
}

/// Stubs private object `a` and fills the stub again with a copy of its body, as a
/// swap-out and a fault-in do.
fn swap_out_and_in(t: &mut Tenant, a: Value) -> Result<(), Error> {
    let h = t.header(a)?;
    if !t.resolve(a)?.word().is_private() {
        return Ok(());
    }
    let slots: Vec<Value> = (0..h.size.slots)
        .map(|j| t.slot(a, j))
        .collect::<Result<_, _>>()?;
    let bytes = t.bytes(a)?.to_vec();
    let hash = t.identity_hash(a)?;
    let body = t.alloc_with_hash(h.class, h.format, &slots, &bytes, hash)?;
    t.stub(a, 5)?;
    t.fill_stub(a, body)
}

/// True if `to`'s object is reached from `from` in `t`'s view, walking private objects and
/// copies only (a base object the tenant has not copied refers to none of its own).
fn reaches(t: &Tenant, from: Value, to: Value) -> bool {
    let mut seen: Vec<cowheap_heap::Word> = Vec::new();
    let mut work = vec![from];
    while let Some(v) = work.pop() {
        if !v.word().is_ref() {
            continue;
        }
        let Ok(w) = t.identity_word(v) else { continue };
        if t.identical(v, to).unwrap_or(false) {
            return true;
        }
        if !w.is_private() || seen.contains(&w) {
            continue;
        }
        seen.push(w);
        let Ok(h) = t.header(v) else { continue };
        work.push(h.class);
        for j in 0..h.size.slots {
            if let Ok(s) = t.slot(v, j) {
                work.push(s);
            }
        }
    }
    false
}

#[test]
fn random_operations_keep_the_counts_a_recount_gives() {
    for seed in 0..300 {
        run(seed, 200);
    }
}

/// `bytes`, a tenant snapshot, with its lookups counter set to `lookups` and resealed
/// (`docs/FORMATS.md`: a 56-byte header, its digest, then the payload: the quota, then the
/// counters, copies, allocations, lookups, ...).
fn with_lookups(bytes: &[u8], lookups: u64) -> Vec<u8> {
    let (head, rest) = bytes.split_at(56);
    let mut payload = rest[32..].to_vec();
    payload[24..32].copy_from_slice(&lookups.to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(head);
    h.update(&payload);
    let mut out = head.to_vec();
    out.extend(h.finalize().as_bytes());
    out.extend(payload);
    out
}

/// A tenant whose one root holds an object whose slot holds the head of a chain of `m`
/// one-way becomes.
fn chained(base: &Arc<Base>, m: usize) -> Tenant {
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(base);
    let class = t.class_of(g).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let mut at = t.alloc(class, Format::Pointers, size).unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[at], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    for _ in 0..m {
        let next = t.alloc(class, Format::Pointers, size).unwrap();
        t.become_forward(at, next).unwrap();
        at = next;
    }
    t
}

/// The steps a collection reports are the steps its mark took, whatever the tenant's
/// lookups counter holds: one restored near its maximum (where it saturates) counts them
/// as a fresh one does.
#[test]
fn a_collection_counts_its_steps_with_the_lookups_counter_near_its_maximum() {
    let base = Base::new(synth::image(400, 1));
    let fresh = chained(&base, 10).collect().steps;
    assert!(fresh >= 10, "{fresh}");
    let t = chained(&base, 10);
    let bytes = with_lookups(&t.snapshot(), u64::MAX - 1);
    let mut back = Tenant::restore_from(&base, &bytes).unwrap();
    assert_eq!(back.stats().lookups, u64::MAX - 1);
    assert_eq!(back.collect().steps, fresh);
    assert_eq!(
        back.stats().lookups,
        u64::MAX - 1,
        "a collection counts no lookup"
    );
}

/// Each operation that takes private bytes, with a quota exactly what it takes (done) and
/// one byte less (refused, nothing changed).
#[test]
fn each_charge_fits_a_quota_of_exactly_its_size() {
    let base = Base::new(synth::image(400, 2));
    let g = base.heap().root("Smalltalk").unwrap();
    let pool: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| base.heap().size(x).unwrap().slots >= 1)
        .take(4)
        .map(Value::base)
        .collect();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    type Op = Box<dyn Fn(&mut Tenant, &[Value]) -> Result<(), Error>>;
    let ops: Vec<(&str, Op)> = vec![
        (
            "alloc",
            Box::new(move |t: &mut Tenant, _: &[Value]| {
                t.alloc_with(class, Format::Bytes, &[], &[1, 2, 3])
                    .map(drop)
            }),
        ),
        (
            "first write",
            Box::new(|t: &mut Tenant, p: &[Value]| t.set_slot(p[0], 0, Value::int(1))),
        ),
        (
            "become base",
            Box::new(|t: &mut Tenant, p: &[Value]| t.become_forward(p[0], p[1])),
        ),
        (
            "two-way",
            Box::new(|t: &mut Tenant, p: &[Value]| t.become_two_way(p[0], p[1])),
        ),
        (
            "two-way private",
            Box::new(|t: &mut Tenant, p: &[Value]| t.become_two_way(p[4], p[0])),
        ),
        (
            "become private",
            Box::new(|t: &mut Tenant, p: &[Value]| t.become_forward(p[4], p[0])),
        ),
    ];
    // A private object beside the base ones, made before the quota is set.
    let setup = |t: &mut Tenant| -> Vec<Value> {
        let mut p = pool.clone();
        p.push(
            t.alloc_with(class, Format::Pointers, &[pool[2]], &[])
                .unwrap(),
        );
        p
    };
    for (name, op) in &ops {
        // What it takes, measured without a quota.
        let mut free = Tenant::fork(&base);
        let p = setup(&mut free);
        let before = free.stats().private_bytes;
        op(&mut free, &p).unwrap();
        let needs = free.stats().private_bytes.saturating_sub(before);
        if needs == 0 {
            // It gives bytes back: done under any quota, even one below what is held.
            let mut t = Tenant::fork(&base);
            let p = setup(&mut t);
            t.set_quota(Some(0));
            op(&mut t, &p).unwrap();
            continue;
        }
        for (room, ok) in [(needs, true), (needs - 1, false)] {
            let mut t = Tenant::fork(&base);
            let p = setup(&mut t);
            let used = t.stats().private_bytes;
            t.set_quota(Some(used + room));
            let r = op(&mut t, &p);
            assert_eq!(r.is_ok(), ok, "{name} with room {room} of {needs}: {r:?}");
            if !ok {
                assert_eq!(t.stats().private_bytes, used, "{name}");
                assert!(
                    matches!(r, Err(Error::QuotaExceeded { .. })),
                    "{name}: {r:?}"
                );
            }
        }
    }
}
