//! The commit contract at its edges: a two-way become commits each body with the auxiliary
//! bits it came with (through a snapshot and a segment swapped out and back too), an abort
//! racing a publish of another history never leaves a committed reference reading an
//! object of that history, a commit over a copy out with a segment answers why, and a
//! tenant of an older version keeps its view (slots and hashes) after a become committed.
//! Rebase under the private mark policy across a flatten keeps the tenant's own writes, and
//! an object a version added conflicts as any other (read-write and write-write). A
//! flatten into a file that a commit supersedes leaves the file as it was, and one of a
//! version with no layers writes its file all the same.

mod common;

use common::pointers;
use cowheap_forwarders::{Base, MarkPolicy};
use cowheap_heap::{Builder, Format, ObjectIndex, ObjectSize, Value, synth};
use cowheap_tenants::commit::{CommitError, CommitMode, CommitRights, Repository};
use cowheap_tenants::{Error, Tenant, TenantConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// nil, a class, and objects `x` (no slots, aux 0x11), `y` (three slots, aux 0x22) and `z`
/// (one slot, aux 0x33).
fn aux_base() -> (Arc<Base>, [Value; 3]) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
    let x = b.add(class, Format::Pointers, vec![], vec![]).unwrap();
    let y = b
        .add(class, Format::Pointers, vec![nil, nil, nil], vec![])
        .unwrap();
    let z = b.add(class, Format::Pointers, vec![nil], vec![]).unwrap();
    b.set_aux(x, 0x11).unwrap();
    b.set_aux(y, 0x22).unwrap();
    b.set_aux(z, 0x33).unwrap();
    b.add_root("x", x).unwrap();
    let base = Base::new(b.freeze().unwrap());
    let v = |w: cowheap_heap::Word| Value::base(w.as_base().unwrap());
    (base, [v(x), v(y), v(z)])
}

fn index(v: Value) -> ObjectIndex {
    v.word().as_base().unwrap()
}

/// The auxiliary bits belong to an object's body as its format does: after `x become: y`
/// the version has x holding y's body with y's bits, and y holding x's with x's. After a
/// become with a new object (whose bits are none), x's bits go with x's old body into the
/// new object, and x holds none. A copy changed by a plain write keeps its own.
#[test]
fn a_two_way_become_commits_each_body_with_its_aux_bits() {
    let (base, [x, y, z]) = aux_base();
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.become_two_way(x, y).unwrap();
    t.set_slot(z, 0, Value::int(1)).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap();
    let at = |v: &Base, o: Value| {
        let o = v.object(index(o)).unwrap();
        (o.slots.len(), o.aux)
    };
    assert_eq!(at(&v1, x), (3, 0x22), "x holds y's body, with y's bits");
    assert_eq!(at(&v1, y), (0, 0x11), "y holds x's body, with x's bits");
    assert_eq!(at(&v1, z), (1, 0x33), "a copy keeps its own bits");

    // A become with a new object: x's old body (and bits) go to the new object.
    let mut t = repo.fork();
    let class = t.class_of(z).unwrap();
    let n = t
        .alloc_with(
            class,
            Format::Pointers,
            &[Value::int(5), Value::int(6)],
            &[],
        )
        .unwrap();
    t.become_two_way(z, n).unwrap();
    t.set_slot(x, 0, n).unwrap(); // n (now z's old body) reached from a changed object
    let v2 = repo.commit(&mut t, "t").unwrap();
    assert_eq!(
        at(&v2, z),
        (2, 0),
        "z holds the new object's body, which had no bits"
    );
    let added = Value::base(ObjectIndex::new(v2.len() - 1).unwrap());
    assert_eq!(at(&v2, added), (1, 0x33), "z's old body keeps z's bits");
}

/// The bits a two-way become moved survive a snapshot and its restore: the restored
/// tenant's commit gives each body the bits it came with, as the tenant's own would, with a
/// new object's body (no bits) in a copy's place and the copy's old body (its bits) in the
/// new object.
#[test]
fn bits_a_become_moved_survive_a_snapshot() {
    let (base, [x, y, z]) = aux_base();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    t.become_two_way(x, y).unwrap();
    let class = t.class_of(z).unwrap();
    let n = t
        .alloc_with(
            class,
            Format::Pointers,
            &[Value::int(5), Value::int(6)],
            &[],
        )
        .unwrap();
    t.become_two_way(z, n).unwrap();
    t.set_root("n", n).unwrap();
    let mut t = Tenant::restore_from(&base, &t.snapshot()).unwrap();
    let n = t.root("n").unwrap();
    t.set_slot(x, 0, n).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap();
    let at = |o: Value| {
        let o = v1.object(index(o)).unwrap();
        (o.slots.len(), o.aux)
    };
    assert_eq!(at(x), (3, 0x22), "x holds y's body, with y's bits");
    assert_eq!(at(y), (0, 0x11), "y holds x's body, with x's bits");
    assert_eq!(
        at(z),
        (2, 0),
        "z holds the new object's body, which had none"
    );
    let added = Value::base(ObjectIndex::new(v1.len() - 1).unwrap());
    assert_eq!(at(added), (1, 0x33), "z's old body keeps z's bits");
    // A snapshot of a tenant with no bits to keep is as it was: no section, no flag.
    let (plain, [_, py, _]) = aux_base();
    let mut u = Tenant::fork(&plain);
    let class = u.class_of(py).unwrap();
    u.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
    let bytes = u.snapshot();
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 0);
}

/// A copy's bits survive a snapshot and its restore, and a swap-out of the copy with a
/// segment and its fault-in: the commit afterwards gives the object its own bits.
#[test]
fn a_copy_keeps_its_aux_bits_through_a_snapshot_and_a_segment() {
    let (base, [x, y, z]) = aux_base();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    t.set_slot(y, 0, Value::int(1)).unwrap();
    t.set_slot(z, 0, Value::int(2)).unwrap();
    let mut t = Tenant::restore_from(&base, &t.snapshot()).unwrap();
    // z swapped out (its body saved by the caller) and brought back.
    let class = t.class_of(z).unwrap();
    t.stub(z, 9).unwrap();
    let back = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    t.fill_stub(z, back).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap();
    for (o, aux) in [(x, 0x11), (y, 0x22), (z, 0x33)] {
        assert_eq!(v1.object(index(o)).unwrap().aux, aux);
    }
    assert_eq!(v1.object(index(z)).unwrap().slots[0].as_int(), Some(2));
}

/// A publish of another history racing an abort: the abort moves the tenant to a version
/// of the history it was of (keeping its committed objects) or of the other one (refusing
/// references to them), never to the other history with them kept, where they would read
/// that history's objects at the same indices.
#[test]
fn an_abort_racing_a_publish_never_reads_an_object_of_another_history() {
    let a = Base::new(synth::image(300, 3));
    // Larger: the index a commit into `a` gives a new object is an object of `b`.
    let b = Base::new(synth::image(3_000, 4));
    let origin_a = a.origin();
    let holder = pointers(&a, 1)[0];
    let repo = Arc::new(Repository::new(a.clone(), CommitRights::Anyone));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (repo, stop, a, b) = (repo.clone(), stop.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                repo.publish(b.clone());
                repo.publish(a.clone());
            }
        })
    };
    let started = Instant::now();
    let (mut aborts, mut wrong) = (0, 0);
    while started.elapsed() < Duration::from_secs(3) {
        let mut t = repo.fork();
        if t.base().origin() != origin_a {
            continue;
        }
        let class = t.class_of(holder).unwrap();
        let n = t
            .alloc_with(class, Format::Pointers, &[Value::int(41)], &[])
            .unwrap();
        t.set_slot(holder, 0, n).unwrap();
        if repo.commit(&mut t, "t").is_err() {
            continue; // the history changed under the fork
        }
        // Objects for the abort to free: a window for the publisher.
        for _ in 0..20_000 {
            t.alloc(class, Format::Pointers, ObjectSize { slots: 0, bytes: 0 })
                .unwrap();
        }
        repo.abort(&mut t);
        aborts += 1;
        if t.base().origin() != origin_a && t.slot(n, 0).is_ok() {
            wrong += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(aborts > 0);
    assert_eq!(
        wrong, 0,
        "{wrong} of {aborts} aborts left a committed reference reading another history"
    );
}

/// A changed copy that is out with a segment: the commit answers `Error::Swapped` naming
/// the segment (fault it in and commit again), not a forwarder it is not; nothing changes.
#[test]
fn a_commit_over_a_copy_out_with_a_segment_answers_swapped() {
    let base = Base::new(synth::image(300, 3));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.set_slot(x, 0, Value::int(1)).unwrap();
    t.stub(x, 7).unwrap();
    let err = repo.commit(&mut t, "t").unwrap_err();
    assert!(
        matches!(err, CommitError::Tenant(Error::Swapped { segment: 7, .. })),
        "{err}"
    );
    assert_eq!(repo.current().version(), 0);
    assert_eq!(t.diverted(), 1);
}

/// A tenant of version 0 reads its own view of two objects another tenant swapped by a
/// become and rehashed, before and after that commit, through the tenant and its reader.
#[test]
fn a_tenant_of_an_older_version_keeps_its_view_of_a_committed_become() {
    let base = Base::new(synth::image(300, 3));
    let o = pointers(&base, 2);
    let (x, y) = (o[0], o[1]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let old = repo.fork();
    let view = |t: &Tenant| {
        (
            t.slot(x, 0).unwrap().word(),
            t.slot(y, 0).unwrap().word(),
            t.identity_hash(x).unwrap(),
            t.reader().identity_hash(x).unwrap(),
        )
    };
    let before = view(&old);
    let mut a = repo.fork();
    a.become_two_way(x, y).unwrap();
    a.set_identity_hash(x, 12_345).unwrap();
    repo.commit(&mut a, "a").unwrap();
    assert_eq!(view(&old), before);
    assert_eq!(repo.fork().identity_hash(x).unwrap(), 12_345);
}

/// Under the private mark policy, a rebase onto a flattened version keeps the tenant's own
/// write and shows the other tenant's; its commit then publishes both.
#[test]
fn a_rebase_across_a_flatten_keeps_the_tenants_own_writes() {
    let base = Base::new(synth::image(300, 3));
    let o = pointers(&base, 2);
    let (x, y) = (o[0], o[1]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let config = TenantConfig {
        quota: None,
        marks: MarkPolicy::Private,
    };
    let mut t = Tenant::fork_with(&repo.current(), config);
    t.set_slot(x, 0, Value::int(5)).unwrap();
    let mut u = repo.fork();
    u.set_slot(y, 0, Value::int(6)).unwrap();
    repo.commit(&mut u, "u").unwrap();
    repo.flatten().unwrap();
    repo.rebase(&mut t).unwrap();
    let read = |t: &Tenant| {
        (
            t.slot(x, 0).unwrap().as_int(),
            t.slot(y, 0).unwrap().as_int(),
        )
    };
    assert_eq!(read(&t), (Some(5), Some(6)));
    repo.commit(&mut t, "t").unwrap();
    assert_eq!(read(&repo.fork()), (Some(5), Some(6)));
}

/// An object a version added conflicts as a base object of the heap does: a read of it in
/// read-write mode, and a second write of it.
#[test]
fn an_added_object_conflicts_as_any_other() {
    let base = Base::new(synth::image(300, 3));
    let o = pointers(&base, 2);
    let (x, z) = (o[0], o[1]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut a = repo.fork();
    let class = a.class_of(x).unwrap();
    let n = a
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    a.set_slot(x, 0, n).unwrap();
    let v1 = repo.commit(&mut a, "a").unwrap();
    let added = Value::base(ObjectIndex::new(v1.len() - 1).unwrap());
    let mut r = repo.fork();
    r.record_reads(true).unwrap();
    assert_eq!(r.slot(added, 0).unwrap().as_int(), Some(1));
    r.set_slot(z, 0, Value::int(3)).unwrap();
    let mut w = repo.fork();
    let mut p = repo.fork();
    w.set_slot(added, 0, Value::int(2)).unwrap();
    p.set_slot(added, 0, Value::int(9)).unwrap();
    repo.commit(&mut w, "w").unwrap();
    let res = repo.commit_with(&mut r, "r", CommitMode::ReadWrite, &[]);
    assert!(matches!(res, Err(CommitError::Conflict { .. })), "{res:?}");
    let res = repo.commit(&mut p, "p");
    assert!(matches!(res, Err(CommitError::Conflict { .. })), "{res:?}");
}

/// A flatten into a file that a commit supersedes publishes nothing and leaves the file
/// as it was: the file goes in with the version, not before. Each try starts a flatten in
/// the background and commits once the flatten's file is staged (it is then read back and
/// verified, far longer than a commit takes), until three are superseded.
#[test]
fn a_superseded_flatten_to_leaves_its_file_as_it_was() {
    let base = Base::new(synth::image(20_000, 5));
    let o = pointers(&base, 64);
    let repo = Arc::new(Repository::new(base, CommitRights::Anyone));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.cowheap");
    std::fs::write(&path, b"the file before").unwrap();
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    let mut superseded = 0;
    for (n, &x) in o.iter().enumerate() {
        let mut t = repo.fork();
        t.set_slot(x, 0, Value::int(n as i64)).unwrap();
        repo.commit(&mut t, "depth").unwrap();
        let flatten = repo.flatten_in_background(Some(path.clone()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while files() == 1 && !flatten.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut u = repo.fork();
        u.set_slot(o[(n + 1) % o.len()], 1, Value::int(7)).unwrap();
        repo.commit(&mut u, "meanwhile").unwrap();
        match flatten.join().unwrap() {
            Err(CommitError::Superseded(_)) => {
                superseded += 1;
                assert!(
                    std::fs::read(&path).unwrap() == b"the file before",
                    "a superseded flatten replaced the file"
                );
                assert_eq!(files(), 1, "no staged file left");
                if superseded == 3 {
                    break;
                }
            }
            Ok(_) => {
                // Published: the file is the version's (and mapped: the marker goes in as
                // a new file, never written over the mapped one).
                assert!(std::fs::read(&path).unwrap() != b"the file before");
                std::fs::remove_file(&path).unwrap();
                std::fs::write(&path, b"the file before").unwrap();
            }
            Err(e) => panic!("flatten: {e}"),
        }
    }
    assert_eq!(superseded, 3, "fewer flattens superseded than tried");
}

/// A flatten into a file writes the file whatever the version's depth: of a version that is
/// a heap of its own already (never committed over, or flattened before) too, which is then
/// served from the file like any other, with the same number and fingerprint.
#[test]
fn flatten_to_writes_its_file_for_a_version_with_no_layers() {
    let base = Base::new(synth::image(500, 3));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.cowheap");
    let v0 = repo.flatten_to(&first).unwrap();
    assert!(first.exists(), "no file written for version 0");
    let heap = cowheap_heap::BaseHeap::open(&first).unwrap();
    assert_eq!(heap.fingerprint(), base.fingerprint());
    assert_eq!((v0.version(), v0.fingerprint()), (0, base.fingerprint()));
    assert!(Arc::ptr_eq(&v0, &repo.current()));
    // A tenant of the version before commits on: the file's version is of the same history.
    let mut t = Tenant::fork(&base);
    t.set_slot(x, 0, Value::int(5)).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap();
    repo.flatten().unwrap();
    let second = dir.path().join("second.cowheap");
    let v1f = repo.flatten_to(&second).unwrap();
    assert!(second.exists(), "no file written for a flattened version");
    assert_eq!(v1f.fingerprint(), v1.fingerprint());
    assert_eq!(repo.fork().slot(x, 0).unwrap().as_int(), Some(5));
}
