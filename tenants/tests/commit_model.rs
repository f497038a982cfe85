//! Commits, aborts, rebases, flattens, layers applied elsewhere and commits settled after
//! a lost answer, run at random over three tenants of one repository, against a simple
//! model (the objects each version changed) and fresh forks of each version.
//!
//! Properties, checked after every step:
//! - after a commit (answered, or settled after its answer was lost) and after an abort,
//!   every base object of the tenant's version reads in it as in a fresh fork of that
//!   version;
//! - after a rebase, every object the tenant did not divert reads as in a fresh fork;
//! - a commit or rebase is refused exactly when the model finds a conflict (write-write,
//!   and read-write for the objects a recording tenant read), listing exactly those objects;
//! - a refused operation leaves the tenant's graph and counts, and the repository, as they
//!   were; no operation changes what the other tenants read;
//! - each version's layer, carried as bytes to a second repository, makes there a version
//!   of the same fingerprint that reads the same;
//! - the private objects and bytes agree with a recount (a restore of a snapshot), and no
//!   operation that grew the private bytes passed the quota.
//!
//! Beside it: every read of a base object by a recording tenant, through the tenant or a
//! reader, is recorded; and threads of a registry committing increments of one object, with
//! flattens, aborts and refused rebases between, lose no increment.

use cowheap_forwarders::{Base, MarkPolicy};
use cowheap_heap::{Format, ObjectIndex, Value, synth};
use cowheap_tenants::commit::{CommitError, CommitMode, CommitRights, Layer, Repository};
use cowheap_tenants::{Registry, Tenant, TenantConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use common::graph;

/// xorshift64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How `v` reads in `t`: an immediate's word, a base object's index, `D` for a base
/// object of `skip` (one the tenant diverted), or `PRIVATE`.
fn ident(t: &Tenant, v: Value, skip: &BTreeSet<u32>) -> String {
    if !v.word().is_ref() {
        return format!("{:?}", v.word());
    }
    if let Some(x) = v.word().as_base()
        && skip.contains(&x.as_u32())
    {
        return "D".into();
    }
    match t.identity_word(v) {
        Ok(w) if w.is_base() => format!("B{}", w.as_base().unwrap().get()),
        Ok(_) => "PRIVATE".into(),
        Err(e) => format!("ERR {e}"),
    }
}

/// Every base object below `len` as `t` reads it: class, format, hash, slots and bytes.
fn view(t: &Tenant, len: usize, skip: &BTreeSet<u32>) -> Vec<String> {
    (0..len)
        .map(|i| {
            let v = Value::base(ObjectIndex::new(i).unwrap());
            match t.header(v) {
                Err(e) => format!("{i}: {e}"),
                Ok(h) => {
                    let slots: Vec<String> = (0..h.size.slots)
                        .map(|j| ident(t, t.slot(v, j).unwrap(), skip))
                        .collect();
                    format!(
                        "{i}: {} {:?} {:?} {slots:?} {:?}",
                        ident(t, h.class, skip),
                        h.format,
                        t.identity_hash(v).ok(),
                        t.bytes(v).ok()
                    )
                }
            }
        })
        .collect()
}

/// `steps` random operations on three tenants, the properties of the module doc checked
/// after each.
fn run(seed: u64, steps: usize) {
    let base = Base::new(synth::image(300, seed));
    let marks = if seed.is_multiple_of(2) {
        MarkPolicy::Private
    } else {
        MarkPolicy::Shared
    };
    let repo = Repository::with_config(
        base.clone(),
        CommitRights::Anyone,
        TenantConfig { quota: None, marks },
    );
    let mirror = Repository::new(Base::new(synth::image(300, seed)), CommitRights::Anyone);
    let g = base.heap().root("Smalltalk").unwrap();
    let pool: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| {
            base.heap().format(x).unwrap() == Format::Pointers
                && base.heap().size(x).unwrap().slots >= 2
        })
        .take(10)
        .map(Value::base)
        .collect();
    let mut ts: Vec<Tenant> = (0..3).map(|_| repo.fork()).collect();
    let class = ts[0].class_of(g).unwrap();
    let mut vals: Vec<Vec<Value>> = vec![pool.clone(); 3];
    let mut r = Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1);
    let mut log = Vec::new();
    let none = BTreeSet::new();
    // The objects each version changed, by number.
    let mut changes: BTreeMap<u64, BTreeSet<u32>> = Default::default();
    let expect = |changes: &BTreeMap<u64, BTreeSet<u32>>, v: u64, watched: &BTreeSet<u32>| {
        let mut out: Vec<u32> = changes
            .range(v + 1..)
            .flat_map(|(_, c)| c.intersection(watched).copied().collect::<Vec<_>>())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    };
    for step in 0..steps {
        let i = r.below(3);
        let op = r.below(19);
        let others_before: Vec<Vec<String>> = ts
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, o)| view(o, o.base().len(), &none))
            .collect();
        let t = &mut ts[i];
        let vs = &mut vals[i];
        let pick = |r: &mut Rng, vs: &Vec<Value>| {
            if r.below(6) == 0 {
                Value::int(r.below(50) as i64)
            } else {
                vs[r.below(vs.len())]
            }
        };
        let (a, b) = (pick(&mut r, vs), pick(&mut r, vs));
        let before = graph(t, &[]);
        let s0 = t.stats();
        let cur0 = repo.current();
        let res: Result<(), String> = match op {
            0..=2 => t.set_slot(a, r.below(3), b).map_err(|e| e.to_string()),
            3 => {
                let n = r.below(3);
                let slots: Vec<Value> = (0..n).map(|_| pick(&mut r, vs)).collect();
                t.alloc_with(class, Format::Pointers, &slots, &[])
                    .map(|v| vs.push(v))
                    .map_err(|e| e.to_string())
            }
            4 => t.become_forward(a, b).map_err(|e| e.to_string()),
            5 => t.become_two_way(a, b).map_err(|e| e.to_string()),
            6 => {
                t.collect();
                Ok(())
            }
            7 | 8 => {
                let roots: Vec<Value> = if r.below(2) == 0 { vec![a] } else { vec![] };
                let mode = if t.reads_recorded().is_some() && r.below(2) == 0 {
                    CommitMode::ReadWrite
                } else {
                    CommitMode::WriteWrite
                };
                let changed: Vec<u32> = {
                    let mut c: Vec<u32> = t
                        .copies()
                        .map(|(x, _)| x.word().as_base().unwrap().as_u32())
                        .collect();
                    c.sort_unstable();
                    c
                };
                let mut watched: BTreeSet<u32> = changed.iter().copied().collect();
                if mode == CommitMode::ReadWrite {
                    watched.extend(t.reads_recorded().unwrap());
                }
                let want = expect(&changes, t.base().version(), &watched);
                let lost = r.below(3) == 0;
                let res = if lost {
                    // The store took the layer, the answer was lost: applied, then settled.
                    let mut kept = None;
                    let res = repo.commit_through(t, "x", mode, &roots, |l| {
                        kept = Some(l.clone());
                        Err(std::io::Error::other("lost"))
                    });
                    match (res, kept) {
                        (Err(CommitError::Persist(_)), Some(layer)) => {
                            assert_eq!(before, graph(t, &[]), "seed {seed} step {step}: persist");
                            let v = repo.apply(&layer).unwrap();
                            repo.settle_landed(t, &roots, &v)
                        }
                        (res, _) => res,
                    }
                } else {
                    repo.commit_with(t, "x", mode, &roots)
                };
                match &res {
                    Err(CommitError::Conflict { objects, .. }) => {
                        let got: Vec<u32> = objects.iter().map(|x| x.as_u32()).collect();
                        assert_eq!(got, want, "seed {seed} step {step}: conflicts\n{log:#?}");
                    }
                    Ok(_) => assert!(
                        want.is_empty(),
                        "seed {seed} step {step}: missed {want:?}\n{log:#?}"
                    ),
                    Err(_) => {}
                }
                match res {
                    Ok(v) => {
                        if v.version() > cur0.version() {
                            changes.insert(v.version(), changed.iter().copied().collect());
                        }
                        if v.version() > cur0.version() {
                            let layer = Layer::of(&v, changed).unwrap();
                            let layer = Layer::from_bytes(&layer.to_bytes()).unwrap();
                            let m = mirror.apply(&layer).unwrap();
                            assert_eq!(m.fingerprint(), v.fingerprint());
                            let a1 = view(&Tenant::fork(&m), m.len(), &none);
                            let a2 = view(&Tenant::fork(&v), v.len(), &none);
                            assert_eq!(a1, a2, "seed {seed} step {step}: mirror");
                        }
                        let fresh = Tenant::fork(&v);
                        let want = view(&fresh, v.len(), &none);
                        let got = view(t, v.len(), &none);
                        for (w, gt) in want.iter().zip(&got) {
                            assert_eq!(
                                w, gt,
                                "seed {seed} step {step}: after commit, tenant differs\n{log:#?}"
                            );
                        }
                        Ok(())
                    }
                    Err(e) => {
                        assert_eq!(before, graph(t, &[]), "seed {seed} step {step} {e}");
                        assert!(Arc::ptr_eq(&cur0, &repo.current()));
                        Err(e.to_string())
                    }
                }
            }
            9 => {
                repo.abort(t);
                let cur = repo.current();
                let fresh = Tenant::fork(&cur);
                assert_eq!(
                    view(&fresh, cur.len(), &none),
                    view(t, cur.len(), &none),
                    "seed {seed} step {step}: after abort\n{log:#?}"
                );
                Ok(())
            }
            10 | 11 => {
                let copies: BTreeSet<u32> = t
                    .copies()
                    .map(|(x, _)| x.word().as_base().unwrap().as_u32())
                    .collect();
                let v0 = t.base().clone();
                let mut watched = copies.clone();
                if let Some(r) = t.reads_recorded() {
                    watched.extend(r);
                }
                let want = expect(&changes, v0.version(), &watched);
                let res = repo.rebase(t);
                match &res {
                    Err(CommitError::Conflict { objects, .. }) => {
                        let got: Vec<u32> = objects.iter().map(|x| x.as_u32()).collect();
                        assert_eq!(
                            got, want,
                            "seed {seed} step {step}: rebase conflicts\n{log:#?}"
                        );
                    }
                    Ok(_) => assert!(
                        want.is_empty(),
                        "seed {seed} step {step}: rebase missed {want:?}\n{log:#?}"
                    ),
                    Err(_) => {}
                }
                match res {
                    Ok(cur) => {
                        // objects not copied read as the current version
                        let fresh = Tenant::fork(&cur);
                        let want = view(&fresh, cur.len(), &copies);
                        let got = view(t, cur.len(), &copies);
                        for (x, (w, gt)) in want.iter().zip(&got).enumerate() {
                            if copies.contains(&(x as u32)) {
                                continue;
                            }
                            // A slot may name a private object of the tenant.
                            if gt.contains("PRIVATE") {
                                continue;
                            }
                            assert_eq!(
                                w,
                                gt,
                                "seed {seed} step {step}: after rebase from {}\n{log:#?}",
                                v0.version()
                            );
                        }
                        Ok(())
                    }
                    Err(e) => {
                        assert_eq!(before, graph(t, &[]), "seed {seed} step {step} {e}");
                        Err(e.to_string())
                    }
                }
            }
            12 => {
                let on = r.below(2) == 0;
                t.record_reads(on).map_err(|e| e.to_string())
            }
            13 => {
                let bytes = t.snapshot();
                let back = Tenant::restore_from(t.base(), &bytes).unwrap();
                let id = back.id();
                *vs = vs
                    .iter()
                    .map(|&v| {
                        if v.word().is_private() {
                            Value::owned(v.word(), id)
                        } else {
                            v
                        }
                    })
                    .collect();
                *t = back;
                Ok(())
            }
            14 => {
                if r.below(2) == 0 {
                    let _ = mirror.flatten();
                }
                repo.flatten().map(|_| ()).map_err(|e| e.to_string())
            }
            15 => t
                .set_root(&format!("r{}", r.below(3)), a)
                .map_err(|e| e.to_string()),
            16 => t.set_class(a, b).map_err(|e| e.to_string()),
            17 => t
                .set_identity_hash(a, r.below(1000) as u32)
                .map_err(|e| e.to_string()),
            _ => {
                let q = match r.below(3) {
                    0 => None,
                    _ => Some(t.stats().private_bytes + r.below(200) as u64),
                };
                t.set_quota(q);
                Ok(())
            }
        };
        log.push(format!(
            "{step}: t{i} op {op} {:?} {:?} -> {res:?}",
            a.word(),
            b.word()
        ));
        if res.is_err() && op != 14 {
            assert_eq!(before, graph(t, &[]), "seed {seed} step {step}\n{log:#?}");
            let s1 = t.stats();
            assert_eq!(
                (s0.private_objects, s0.private_bytes),
                (s1.private_objects, s1.private_bytes),
                "seed {seed} step {step}\n{log:#?}"
            );
        }
        if let Some(q) = t.quota()
            && t.stats().private_bytes > s0.private_bytes
        {
            assert!(
                t.stats().private_bytes <= q,
                "seed {seed} step {step}: quota\n{log:#?}"
            );
        }
        let back = Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
        let (s, sb) = (t.stats(), back.stats());
        assert_eq!(
            (s.private_objects, s.private_bytes),
            (sb.private_objects, sb.private_bytes),
            "seed {seed} step {step} recount\n{log:#?}"
        );
        vs.retain(|&v| t.resolve(v).is_ok() || !v.word().is_ref());
        if vs.len() > 30 {
            vs.drain(10..15);
        }
        if vs.is_empty() {
            vs.extend(pool.iter().copied());
        }
        let others_after: Vec<Vec<String>> = ts
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, o)| view(o, o.base().len(), &none))
            .collect();
        assert!(
            others_before == others_after,
            "seed {seed} step {step}: isolation\n{log:#?}"
        );
    }
}

#[test]
fn random_commits_match_fresh_forks_and_the_model() {
    for seed in 1..=10 {
        run(seed, 300);
    }
}

/// Four threads of a registry each read one object's count, write it one more and commit,
/// flattening now and then; a refused commit is aborted (a rebase of it refused first, half
/// the time). The count the newest version holds is the number of commits answered.
#[test]
fn racing_increments_lose_none() {
    let base = Base::new(synth::image(300, 3));
    let reg = Registry::with_rights(base.clone(), TenantConfig::default(), CommitRights::Anyone);
    let pool: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| {
            base.heap().format(x).unwrap() == Format::Pointers
                && base.heap().size(x).unwrap().slots >= 2
        })
        .take(2)
        .map(Value::base)
        .collect();
    let c = pool[0];
    let ids: Vec<_> = (0..4).map(|_| reg.spawn()).collect();
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (n, &id) in ids.iter().enumerate() {
            let (reg, ok) = (&reg, &ok);
            s.spawn(move || {
                for round in 0..300 {
                    let done = reg
                        .with(id, |t| {
                            let v = t.slot(c, 0).unwrap().as_int().unwrap_or(0);
                            t.set_slot(c, 0, Value::int(v + 1)).unwrap();
                            if round % 3 == 0 {
                                let _ = reg.repository().flatten();
                            }
                            match reg.repository().commit(t, "x") {
                                Ok(_) => true,
                                Err(CommitError::Conflict { .. }) => {
                                    if (n + round) % 2 == 0 {
                                        reg.repository().abort(t);
                                    } else {
                                        // A rebase is refused as well: the object conflicts.
                                        assert!(reg.repository().rebase(t).is_err());
                                        reg.repository().abort(t);
                                    }
                                    false
                                }
                                Err(e) => panic!("{e}"),
                            }
                        })
                        .unwrap();
                    if done {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let f = Tenant::fork(&reg.current());
    let v = f.slot(c, 0).unwrap().as_int().unwrap_or(0);
    let base_v = Tenant::fork(&base)
        .slot(c, 0)
        .unwrap()
        .as_int()
        .unwrap_or(0);
    let answered = ok.load(Ordering::Relaxed);
    assert!(answered > 0, "no commit was answered");
    assert_eq!((v - base_v) as usize, answered);
}

/// Every read of a base object by a recording tenant, through the tenant or a reader, under
/// either mark policy, is recorded: of an object no one diverted, one a version changed,
/// one another tenant diverted, and one a version added.
#[test]
fn every_read_of_a_base_object_is_recorded() {
    let base = Base::new(synth::image(300, 4));
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let pool: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| {
            base.heap().format(x).unwrap() == Format::Pointers
                && base.heap().size(x).unwrap().slots >= 2
        })
        .take(6)
        .map(Value::base)
        .collect();
    // pool[1] committed in v1, and an object added.
    let mut w = repo.fork();
    let class = w.class_of(pool[0]).unwrap();
    let n = w
        .alloc_with(
            class,
            Format::Pointers,
            &[Value::int(1), Value::int(2)],
            &[],
        )
        .unwrap();
    w.set_slot(pool[1], 0, n).unwrap();
    let v1 = repo.commit(&mut w, "w").unwrap();
    let added = Value::base(ObjectIndex::new(v1.len() - 1).unwrap());
    // pool[2] diverted by another tenant (shared marks).
    let mut o = repo.fork();
    o.set_slot(pool[2], 0, Value::int(3)).unwrap();
    for policy in [MarkPolicy::Shared, MarkPolicy::Private] {
        let cfg = TenantConfig {
            quota: None,
            marks: policy,
        };
        for &x in &[pool[0], pool[1], pool[2], added] {
            let xi = x.word().as_base().unwrap().as_u32();
            type R = fn(&Tenant, Value) -> bool;
            let reads: Vec<(&str, R)> = vec![
                ("slot", |t, x| t.slot(x, 0).is_ok()),
                ("bytes", |t, x| t.bytes(x).is_ok()),
                ("size", |t, x| t.size(x).is_ok()),
                ("format", |t, x| t.format(x).is_ok()),
                ("header", |t, x| t.header(x).is_ok()),
                ("class_of", |t, x| t.class_of(x).is_ok()),
                ("hash", |t, x| t.identity_hash(x).is_ok()),
                ("r.slot", |t, x| t.reader().slot(x, 0).is_ok()),
                ("r.try_slot", |t, x| t.reader().try_slot(x, 0).is_some()),
                ("r.class_of", |t, x| t.reader().class_of(x).is_ok()),
                ("r.try_class_of", |t, x| {
                    t.reader().try_class_of(x).is_some()
                }),
                ("r.size", |t, x| t.reader().size(x).is_ok()),
                ("r.format", |t, x| t.reader().format(x).is_ok()),
                ("r.header", |t, x| t.reader().header(x).is_ok()),
                ("r.hash", |t, x| t.reader().identity_hash(x).is_ok()),
                ("r.bytes", |t, x| t.reader().bytes(x).is_ok()),
            ];
            for (name, f) in reads {
                let mut t = Tenant::fork_with(&repo.current(), cfg);
                t.record_reads(true).unwrap();
                let did = f(&t, x);
                assert!(did || name.contains("try"), "{name} failed");
                assert!(
                    !did || t.reads_recorded().unwrap().contains(&xi),
                    "{policy:?} {name} of {xi} not recorded"
                );
                // Also with a copy of some other object in the tenant.
                let mut t = Tenant::fork_with(&repo.current(), cfg);
                t.set_slot(pool[4], 0, Value::int(1)).unwrap();
                t.record_reads(true).unwrap();
                let did = f(&t, x);
                assert!(did || name.contains("try"), "{name} failed");
                assert!(
                    !did || t.reads_recorded().unwrap().contains(&xi),
                    "{policy:?} {name} of {xi} not recorded (with a copy)"
                );
            }
        }
    }
}
