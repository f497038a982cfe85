//! How a commit settles its tenant, and what it refuses: a commit whose version was
//! persisted though its answer was lost settles the tenant on that version as an answered
//! commit does (`Repository::settle_landed`), keeping its roots and the objects the commit
//! did not take, and refuses, changing nothing, a version that is not exactly its changes.
//! A version committed elsewhere and applied here (`Repository::apply`) while the allocator
//! refuses its memory answers `OutOfMemory` and publishes nothing; so does a rebase, which
//! leaves the tenant where it was. An abort, which cannot fail, takes no large memory. The
//! heap a flatten builds, refused by the allocator anywhere, answers `OutOfMemory` (the new
//! version's marks are still reserved infallibly, as every base's are), and so does the end
//! of a record of reads, which leaves the tenant recording.

mod common;

use common::pointers;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitError, CommitMode, CommitRights, Layer, Repository};
use std::sync::Arc;

/// The answer is the tenant's `OutOfMemory`, as a refused reservation answers.
fn out_of_memory<T>(r: &Result<T, CommitError>) -> bool {
    matches!(
        r,
        Err(CommitError::Tenant(
            cowheap_tenants::Error::OutOfMemory { .. }
        ))
    )
}

/// A commit through a persist step that keeps the layer and then answers an error, as a
/// store whose answer was lost after it took the version: the commit fails, changing
/// nothing; the layer is then applied as a sync would.
fn lost_answer(repo: &Repository, t: &mut Tenant) -> Arc<Base> {
    let mut sent = None;
    let r = repo.commit_through(t, "t", CommitMode::WriteWrite, &[], |layer| {
        sent = Some(layer.to_bytes());
        Err(std::io::Error::other("answer lost"))
    });
    assert!(matches!(r, Err(CommitError::Persist(_))), "{r:?}");
    repo.apply(&Layer::from_bytes(&sent.unwrap()).unwrap())
        .unwrap()
}

/// The tenant's changes are in the landed version: settled on it, the tenant reads what a
/// fresh fork reads, its named root (a private object the commit did not take) is kept,
/// references to its copies and to the new object the version holds lead to them, and its
/// next commit is the next version, not a conflict with its own.
#[test]
fn a_landed_commit_settles_the_tenant_keeping_its_own_objects() {
    let base = Base::new(synth::image(300, 3));
    let o = pointers(&base, 3);
    let (x, y, z) = (o[0], o[1], o[2]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let new = t
        .alloc_with(class, Format::Pointers, &[Value::int(42)], &[])
        .unwrap();
    t.set_slot(x, 0, new).unwrap();
    let kept = t
        .alloc_with(class, Format::Pointers, &[Value::int(7)], &[])
        .unwrap();
    t.set_root("kept", kept).unwrap();
    let copy = t.resolve(x).unwrap();
    // Another tenant commits first, so the landed version is over version 1.
    let mut u = repo.fork();
    u.set_slot(z, 0, Value::int(9)).unwrap();
    repo.commit(&mut u, "u").unwrap();
    let v2 = lost_answer(&repo, &mut t);
    assert_eq!(v2.version(), 2);
    assert_eq!(t.base().version(), 0);
    let settled = repo.settle_landed(&mut t, &[], &v2).unwrap();
    assert_eq!(settled.version(), 2);
    assert_eq!(t.base().version(), 2);
    assert_eq!(t.diverted(), 0);
    let fork = repo.fork();
    let fresh = fork.slot(x, 0).unwrap();
    assert_eq!(fork.slot(fresh, 0).unwrap().as_int(), Some(42));
    assert!(t.identical(t.slot(x, 0).unwrap(), new).unwrap());
    assert!(t.identical(copy, x).unwrap());
    assert_eq!(t.slot(new, 0).unwrap().as_int(), Some(42));
    assert_eq!(t.slot(z, 0).unwrap().as_int(), Some(9));
    let root = t
        .root("kept")
        .expect("the root the commit did not take is kept");
    assert_eq!(t.slot(root, 0).unwrap().as_int(), Some(7));
    t.set_slot(y, 0, Value::int(5)).unwrap();
    assert_eq!(repo.commit(&mut t, "t").unwrap().version(), 3);
}

/// A version that is not exactly the tenant's changes (the tenant changed more since, or
/// the version is another tenant's) is refused, and the tenant is left as it was.
#[test]
fn a_version_that_is_not_the_tenants_changes_is_refused() {
    let base = Base::new(synth::image(300, 3));
    let o = pointers(&base, 3);
    let (x, y, z) = (o[0], o[1], o[2]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.set_slot(x, 0, Value::int(1)).unwrap();
    let v1 = lost_answer(&repo, &mut t);
    t.set_slot(y, 0, Value::int(2)).unwrap();
    let r = repo.settle_landed(&mut t, &[], &v1);
    assert!(
        matches!(r, Err(CommitError::NotLanded { version: 1 })),
        "{r:?}"
    );
    assert_eq!(t.base().version(), 0);
    assert_eq!(t.diverted(), 2);
    assert_eq!(t.slot(y, 0).unwrap().as_int(), Some(2));
    // Another tenant's version.
    let mut u = repo.fork();
    u.set_slot(z, 0, Value::int(3)).unwrap();
    let v2 = repo.commit(&mut u, "u").unwrap();
    let r = repo.settle_landed(&mut t, &[], &v2);
    assert!(matches!(r, Err(CommitError::NotLanded { .. })), "{r:?}");
    assert_eq!(t.diverted(), 2);
}

#[global_allocator]
static ALLOC: cowheap_testkit::Refusing = cowheap_testkit::Refusing;

/// A version committed elsewhere, applied here ([`Repository::apply`], what a store's sync
/// does) while the allocator refuses each large allocation in turn: every refusal answers
/// `OutOfMemory` and publishes nothing, and the apply with nothing left to refuse makes
/// the same version.
#[test]
fn an_apply_refused_anywhere_changes_nothing() {
    let base = Base::new(synth::image(3_000, 5));
    let o = pointers(&base, 600);
    let a = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = a.fork();
    let class = t.class_of(o[0]).unwrap();
    let big: Vec<Value> = (0..1_000).map(Value::int).collect();
    for &x in &o {
        t.set_slot(x, 0, Value::int(-1)).unwrap();
    }
    let holder = t.alloc_with(class, Format::Pointers, &big, &[]).unwrap();
    t.set_slot(o[0], 1, holder).unwrap();
    let mut sent = None;
    let v1 = a
        .commit_through(&mut t, "t", CommitMode::WriteWrite, &[], |layer| {
            sent = Some(layer.clone());
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    let layer = sent.unwrap();
    // The length a persist step reserves for the layer's bytes is theirs exactly.
    assert_eq!(layer.try_to_bytes().unwrap().len(), layer.encoded_len());
    assert_eq!(layer.to_bytes(), layer.try_to_bytes().unwrap());
    let mut refusals = 0;
    for n in 0.. {
        let b = Repository::new(Base::new(synth::image(3_000, 5)), CommitRights::Anyone);
        let (r, refused) = cowheap_testkit::refusing_the(n, || b.apply(&layer));
        if !refused {
            assert_eq!(r.unwrap().fingerprint(), v1.fingerprint());
            break;
        }
        refusals += 1;
        assert!(out_of_memory(&r), "refusal {n} answered {r:?}");
        assert_eq!(b.current().version(), 0, "refusal {n} published");
    }
    // The changed list, its set, the bodies, the check's set and the layer's map.
    assert!(refusals >= 5, "{refusals} large allocations");
}

/// A rebase refused by the allocator anywhere answers `OutOfMemory` and leaves the tenant
/// on its version with its changes; with nothing refused it moves the tenant.
#[test]
fn a_rebase_refused_anywhere_changes_nothing() {
    let base = Base::new(synth::image(3_000, 5));
    let o = pointers(&base, 1_200);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut u = repo.fork();
    u.set_slot(o[1_100], 0, Value::int(7)).unwrap();
    let mut refusals = 0;
    for n in 0.. {
        let mut t = repo.fork();
        t.record_reads(true).unwrap();
        for &x in &o[..1_000] {
            t.set_slot(x, 0, Value::int(-1)).unwrap();
        }
        if n == 0 {
            repo.commit(&mut u, "u").unwrap();
        }
        let (r, refused) = cowheap_testkit::refusing_the(n, || repo.rebase(&mut t));
        if !refused {
            assert_eq!(r.unwrap().version(), 1);
            assert_eq!(t.slot(o[1_100], 0).unwrap().as_int(), Some(7));
            break;
        }
        refusals += 1;
        assert!(out_of_memory(&r), "refusal {n} answered {r:?}");
        assert_eq!(t.base().version(), 0, "refusal {n} moved the tenant");
        assert_eq!(t.diverted(), 1_000);
        assert_eq!(t.slot(o[0], 0).unwrap().as_int(), Some(-1));
    }
    assert!(refusals >= 1, "{refusals} large allocations");
}

/// An abort cannot fail, so it takes no large memory: with every large allocation refused,
/// an abort of a tenant with many objects of its own, some of them committed, frees what it
/// made since and keeps what its commit left.
#[test]
fn an_abort_takes_no_large_memory() {
    let base = Base::new(synth::image(3_000, 5));
    let o = pointers(&base, 1_000);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(o[0]).unwrap();
    for &x in &o[..800] {
        t.set_slot(x, 0, Value::int(-1)).unwrap();
    }
    let old = t.resolve(o[0]).unwrap();
    repo.commit(&mut t, "t").unwrap();
    let made: Vec<Value> = (0..2_000)
        .map(|i| {
            t.alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
                .unwrap()
        })
        .collect();
    t.set_slot(o[900], 0, made[0]).unwrap();
    let ((), refused) = cowheap_testkit::refusing_from(0, || repo.abort(&mut t));
    assert!(!refused, "an abort asked for large memory");
    assert_eq!(t.diverted(), 0);
    assert!(t.slot(made[5], 0).is_err());
    assert_eq!(t.slot(old, 0).unwrap().as_int(), Some(-1));
    assert_eq!(
        t.slot(o[900], 0).unwrap().as_int(),
        repo.fork().slot(o[900], 0).unwrap().as_int()
    );
}

/// The heap a flatten builds (`Base::flatten`, the step of `Repository::flatten` that takes
/// its memory but for the new version's marks), refused by the allocator at any of its
/// large allocations (the builder's objects, a body's slots, the frozen heap's words),
/// answers `OutOfMemory`, and the repository reads as before. With nothing refused the
/// repository's flatten publishes a version that reads the same.
#[test]
fn a_flatten_refused_anywhere_publishes_nothing() {
    let mut refusals = 0;
    for n in 0.. {
        let base = Base::new(synth::image(3_000, 5));
        let o = pointers(&base, 600);
        let repo = Repository::new(base, CommitRights::Anyone);
        let mut t = repo.fork();
        let class = t.class_of(o[0]).unwrap();
        let size = cowheap_heap::ObjectSize {
            slots: 1_000,
            bytes: 0,
        };
        let big = t.alloc(class, Format::Pointers, size).unwrap();
        t.set_slot(big, 999, Value::int(5)).unwrap();
        for (i, &x) in o.iter().enumerate() {
            t.set_slot(x, 0, Value::int(i as i64)).unwrap();
        }
        t.set_slot(o[1], 1, big).unwrap();
        let v1 = repo.commit(&mut t, "t").unwrap();
        let (r, refused) = cowheap_testkit::refusing_the(n, || v1.flatten());
        let reads_the_same = |repo: &Repository| {
            let reader = repo.fork();
            let far = reader.slot(o[1], 1).unwrap();
            assert_eq!(reader.slot(far, 999).unwrap().as_int(), Some(5));
            assert_eq!(reader.slot(o[599], 0).unwrap().as_int(), Some(599));
        };
        reads_the_same(&repo);
        assert!(Arc::ptr_eq(&repo.current(), &v1), "refusal {n} published");
        if !refused {
            assert!(r.is_ok(), "{r:?}");
            let flat = repo.flatten().unwrap();
            assert_eq!(flat.depth(), 0);
            assert_eq!(flat.version(), v1.version());
            reads_the_same(&repo);
            break;
        }
        refusals += 1;
        assert!(
            matches!(r, Err(cowheap_heap::Error::OutOfMemory { .. })),
            "refusal {n} answered {r:?}"
        );
    }
    // The builder's objects, the large body's slots and the frozen words, at least.
    assert!(refusals >= 3, "{refusals} large allocations");
}

/// Stopping a record of reads marks the tenant's diverted objects again under its own
/// policy, in a table reserved first: refused by the allocator, it answers `OutOfMemory`
/// and the tenant goes on recording, its reads and writes as they were; stopped with
/// nothing refused, the other tenants' fast reads of the objects it copied still miss them.
#[test]
fn stopping_a_record_of_reads_refused_leaves_it_recording() {
    let base = Base::new(synth::image(3_000, 5));
    let o = pointers(&base, 1_200);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.record_reads(true).unwrap();
    for (i, &x) in o.iter().enumerate().take(1_000) {
        t.set_slot(x, 0, Value::int(i as i64)).unwrap();
    }
    assert_eq!(t.slot(o[1_100], 0).unwrap().as_int(), None);
    let read = t.reads_recorded().unwrap();
    assert!(!read.is_empty());
    let (r, refused) = cowheap_testkit::refusing_from(0, || t.record_reads(false));
    assert!(refused, "stopping took no large memory");
    assert!(
        matches!(r, Err(cowheap_tenants::Error::OutOfMemory { .. })),
        "{r:?}"
    );
    assert_eq!(t.reads_recorded().as_ref(), Some(&read));
    assert_eq!(t.diverted(), 1_000);
    assert_eq!(t.slot(o[999], 0).unwrap().as_int(), Some(999));
    t.record_reads(false).unwrap();
    assert_eq!(t.reads_recorded(), None);
    assert_eq!(t.slot(o[999], 0).unwrap().as_int(), Some(999));
    let other = repo.fork();
    assert_ne!(other.slot(o[999], 0).unwrap().as_int(), Some(999));
    // The record stopped, the tenant's later reads go unrecorded and its commit lands.
    repo.commit(&mut t, "t").unwrap();
    assert_eq!(repo.fork().slot(o[999], 0).unwrap().as_int(), Some(999));
}
