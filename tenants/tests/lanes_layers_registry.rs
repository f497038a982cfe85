//! Versions, lanes and the registry at their edges: a version no commit made (a root) has
//! no layer, and a layer that holds no body is refused rather than applied as a version no
//! commit made; a rebase onto a flattened lineage, whose table is marked again in the new
//! marks, answers the allocator's refusal anywhere with `OutOfMemory` and leaves the tenant
//! where it was. Against a model: tenants of every mark policy, more of them than there are
//! lanes, forked, dropped, re-forked, committing, recording and moved across a flatten,
//! each read the objects it wrote and the version's others (through the tenant and its
//! reader); every tenant on a version reads the objects it changed and added as the version
//! has them; threads removing and re-inserting the same tenants lose and duplicate none.

mod common;

use common::pointers;
use cowheap_forwarders::{Base, MarkPolicy};
use cowheap_heap::{Format, ObjectSize, Value, Word, synth};
use cowheap_tenants::commit::{CommitError, CommitRights, Layer, Repository};
use cowheap_tenants::{Registry, Tenant, TenantConfig};
use std::collections::HashMap;
use std::sync::Arc;

#[global_allocator]
static ALLOC: cowheap_testkit::Refusing = cowheap_testkit::Refusing;

/// A root version has no layer; the layer it was once given (its own fingerprint as its
/// parent's, no body) is refused by `apply`, which publishes nothing.
#[test]
fn a_root_has_no_layer_and_a_layer_of_no_body_is_refused() {
    let v0 = Base::new(synth::image(200, 1));
    let repo = Repository::new(v0.clone(), CommitRights::Anyone);
    assert!(Layer::of(&v0, vec![]).is_none());
    let empty = Layer {
        origin: v0.origin(),
        parent: 0,
        parent_fingerprint: v0.fingerprint(),
        len: v0.len(),
        changed: vec![],
        objects: vec![],
    };
    let r = repo.apply(&empty);
    assert!(
        matches!(
            r,
            Err(CommitError::Tenant(cowheap_tenants::Error::Heap(
                cowheap_heap::Error::Corrupt(_)
            )))
        ),
        "{r:?}"
    );
    assert!(Arc::ptr_eq(&repo.current(), &v0), "nothing published");

    // A committed version's layer names its parent, and a flattened version (a root again)
    // has none.
    let o = pointers(&v0, 2);
    let mut t = repo.fork();
    t.set_slot(o[0], 0, Value::int(3)).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap();
    let layer = Layer::of(&v1, vec![o[0].word().as_base().unwrap().as_u32()]).unwrap();
    assert_eq!(
        (layer.parent, layer.parent_fingerprint),
        (0, v0.fingerprint())
    );
    let flat = repo.flatten().unwrap();
    assert_eq!(flat.version(), 1);
    assert!(Layer::of(&flat, vec![]).is_none());
}

/// A rebase onto a flattened lineage marks the tenant's table again in the new marks: a
/// refusal of any of its large allocations answers `OutOfMemory` and leaves the tenant on
/// its version with its copies.
#[test]
fn a_rebase_across_a_flatten_refused_anywhere_changes_nothing() {
    let base = Base::new(synth::image(3_000, 5));
    let o = pointers(&base, 1_200);
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut u = repo.fork();
    u.set_slot(o[1_100], 0, Value::int(7)).unwrap();
    repo.commit(&mut u, "u").unwrap();
    let flat = repo.flatten().unwrap();
    assert_eq!(flat.depth(), 0);
    let mut refusals = 0;
    for n in 0.. {
        let mut t = Tenant::fork(&base);
        for &x in &o[..1_000] {
            t.set_slot(x, 0, Value::int(-1)).unwrap();
        }
        let (r, refused) = cowheap_testkit::refusing_the(n, || repo.rebase(&mut t));
        if !refused {
            assert!(Arc::ptr_eq(&r.unwrap(), &flat));
            assert_eq!(t.slot(o[0], 0).unwrap().as_int(), Some(-1));
            assert_eq!(t.slot(o[1_100], 0).unwrap().as_int(), Some(7));
            assert_eq!(t.diverted(), 1_000);
            break;
        }
        refusals += 1;
        assert!(
            matches!(
                r,
                Err(CommitError::Tenant(
                    cowheap_tenants::Error::OutOfMemory { .. }
                ))
            ),
            "refusal {n} answered {r:?}"
        );
        assert!(Arc::ptr_eq(t.base(), &base), "refusal {n} moved the tenant");
        assert_eq!(t.diverted(), 1_000);
        assert_eq!(t.slot(o[0], 0).unwrap().as_int(), Some(-1));
        assert_eq!(t.slot(o[1_100], 0).unwrap().as_int(), None);
    }
    assert!(refusals >= 2, "{refusals} large allocations");
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Up to 60 tenants (more than the 22 lanes) of both mark policies, some recording their
/// reads, are forked, written, dropped and re-forked, commit and are moved across flattens;
/// each reads, through itself and its reader, what it wrote and otherwise the version.
#[test]
fn tenants_past_the_lanes_read_their_own_writes_and_the_version() {
    let base = Base::new(synth::image(400, 3));
    let objs = pointers(&base, 40);
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut r = Lcg(7);
    let mut live: Vec<(Tenant, HashMap<usize, i64>)> = Vec::new();
    let mut version: Vec<Word> = objs
        .iter()
        .map(|&o| base.slot_word(o.word().as_base().unwrap(), 0).unwrap())
        .collect();
    for step in 0..2_000 {
        match r.next() % 12 {
            0 | 1 if live.len() < 60 => {
                let marks = if r.next().is_multiple_of(3) {
                    MarkPolicy::Private
                } else {
                    MarkPolicy::Shared
                };
                let config = TenantConfig {
                    marks,
                    ..Default::default()
                };
                let mut t = Tenant::fork_with(&repo.current(), config);
                t.record_reads(r.next().is_multiple_of(4)).unwrap();
                live.push((t, HashMap::new()));
            }
            2 if !live.is_empty() => {
                let i = (r.next() as usize) % live.len();
                live.swap_remove(i);
            }
            3 if !live.is_empty() && r.next().is_multiple_of(8) => {
                // One commits; the others are moved onto its version (their writes are
                // to other objects than its, or conflict and are dropped).
                let i = (r.next() as usize) % live.len();
                let (mut t, m) = live.swap_remove(i);
                repo.commit(&mut t, "t").unwrap();
                for (&k, &v) in &m {
                    version[k] = Value::int(v).word();
                }
                live.retain_mut(|(t, _)| repo.rebase(t).is_ok());
                live.push((t, HashMap::new()));
            }
            4 if r.next().is_multiple_of(8) => {
                repo.flatten().unwrap();
                live.retain_mut(|(t, _)| repo.rebase(t).is_ok());
            }
            5 if !live.is_empty() => {
                let i = (r.next() as usize) % live.len();
                let on = r.next().is_multiple_of(2);
                live[i].0.record_reads(on).unwrap();
            }
            _ if !live.is_empty() => {
                let i = (r.next() as usize) % live.len();
                let k = (r.next() as usize) % objs.len();
                let v = (r.next() % 1_000) as i64;
                let (t, m) = &mut live[i];
                t.set_slot(objs[k], 0, Value::int(v)).unwrap();
                m.insert(k, v);
            }
            _ => {}
        }
        for (t, m) in &live {
            for (k, &o) in objs.iter().enumerate() {
                let want = m.get(&k).map_or(version[k], |&v| Value::int(v).word());
                assert_eq!(t.slot(o, 0).unwrap().word(), want, "step {step}");
                let reader = t.reader();
                assert_eq!(reader.slot(o, 0).unwrap().word(), want, "step {step}");
                if let Some(v) = reader.try_slot(o, 0) {
                    assert_eq!(v.word(), want, "step {step}");
                }
            }
        }
    }
}

/// Tenants of every policy on a committed version read the objects it changed and the one
/// it added as the version has them: slots, classes, hashes and sizes.
#[test]
fn every_tenant_on_a_version_reads_its_objects_as_it_has_them() {
    let base = Base::new(synth::image(400, 3));
    let objs = pointers(&base, 10);
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut w = repo.fork();
    let class = w.class_of(objs[0]).unwrap();
    let size = ObjectSize { slots: 3, bytes: 0 };
    let new = w.alloc(class, Format::Pointers, size).unwrap();
    w.set_slot(new, 0, Value::int(5)).unwrap();
    w.set_slot(objs[1], 0, new).unwrap();
    w.set_slot(objs[2], 1, Value::int(9)).unwrap();
    let v1 = repo.commit(&mut w, "w").unwrap();
    let added = v1.slot_word(objs[1].word().as_base().unwrap(), 0).unwrap();
    let added = Value::base(added.as_base().unwrap());
    let fork = |marks: MarkPolicy, record: bool| {
        let config = TenantConfig {
            marks,
            ..Default::default()
        };
        let mut t = Tenant::fork_with(&v1, config);
        t.record_reads(record).unwrap();
        t
    };
    let mut ts = vec![
        fork(MarkPolicy::Shared, false),
        fork(MarkPolicy::Private, false),
        fork(MarkPolicy::Shared, true),
        fork(MarkPolicy::Private, true),
    ];
    for t in &mut ts[..2] {
        t.set_slot(objs[5], 0, Value::int(1)).unwrap();
    }
    for t in &ts {
        for &o in objs
            .iter()
            .filter(|o| o.word() != objs[5].word())
            .chain([&added])
        {
            let view = v1.object(o.word().as_base().unwrap()).unwrap();
            let reader = t.reader();
            for (i, &s) in view.slots.iter().enumerate() {
                assert_eq!(t.slot(o, i).unwrap().word(), s);
                assert_eq!(reader.slot(o, i).unwrap().word(), s);
            }
            assert_eq!(t.identity_hash(o).unwrap(), view.hash);
            assert_eq!(reader.identity_hash(o).unwrap(), view.hash);
            assert_eq!(t.class_of(o).unwrap().word(), view.class);
            assert_eq!(reader.class_of(o).unwrap().word(), view.class);
            assert_eq!(t.size(o).unwrap().slots, view.slots.len());
            assert_eq!(reader.size(o).unwrap().slots, view.slots.len());
        }
    }
}

/// Threads removing and re-inserting the same tenants: each is held by one at a time, and
/// at the end every tenant is registered once.
#[test]
fn removing_and_reinserting_the_same_tenants_loses_and_duplicates_none() {
    let base = Base::new(synth::image(200, 1));
    let registry = Registry::new(base);
    let ids: Vec<_> = (0..4).map(|_| registry.spawn()).collect();
    std::thread::scope(|s| {
        for th in 0..3 {
            let (registry, ids) = (&registry, &ids);
            s.spawn(move || {
                for i in 0..5_000 {
                    let id = ids[(i + th) % ids.len()];
                    if let Some(t) = registry.remove(id) {
                        assert_eq!(t.id(), id);
                        assert!(registry.with(id, |_| ()).is_none(), "held twice");
                        assert_eq!(registry.insert(t), id);
                    }
                }
            });
        }
    });
    let mut got = registry.ids();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(registry.len(), 4);
}
