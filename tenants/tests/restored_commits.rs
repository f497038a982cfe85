//! A restored tenant observes what the saved one did about its commits and its reads: an
//! abort keeps the objects it committed (their forwarders saved), and a tenant that records
//! its reads records them still, with what it had read (so a rebase over a version that
//! changed one is refused). Before, a snapshot kept neither: the restored tenant's abort
//! freed its committed objects, and its rebase took a version its reads conflicted with.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitRights, Repository};

fn pointers(base: &Base, n: usize) -> Vec<Value> {
    let h = base.heap();
    h.indices()
        .filter(|&x| h.format(x).unwrap() == Format::Pointers && h.size(x).unwrap().slots >= 2)
        .map(Value::base)
        .take(n)
        .collect()
}

#[test]
fn a_restored_tenant_keeps_its_committed_objects_through_an_abort() {
    let base = Base::new(synth::image(200, 7));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let p = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    t.set_slot(p, 0, Value::int(42)).unwrap();
    t.set_slot(x, 0, p).unwrap();
    t.set_root("r", p).unwrap();
    let v1 = repo.commit(&mut t, "a").unwrap(); // p is now a base object of v1
    let mut back = Tenant::restore_from(&v1, &t.snapshot()).unwrap();
    let (p0, p1) = (t.root("r").unwrap(), back.root("r").unwrap());
    repo.abort(&mut t);
    repo.abort(&mut back);
    assert_eq!(t.slot(p0, 0).unwrap().as_int(), Some(42));
    assert_eq!(back.slot(p1, 0).unwrap().as_int(), Some(42));
    // Saved again, the restored tenant's snapshot is the original's.
    assert_eq!(back.snapshot(), t.snapshot());
}

#[test]
fn a_restored_tenant_keeps_its_read_set() {
    let base = Base::new(synth::image(200, 7));
    let o = pointers(&base, 2);
    let (x, y) = (o[0], o[1]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.record_reads(true).unwrap();
    t.slot(y, 0).unwrap();
    t.set_slot(x, 0, Value::int(4)).unwrap();
    let mut back = Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
    assert_eq!(back.reads_recorded(), t.reads_recorded());
    let mut other = repo.fork();
    other.set_slot(y, 0, Value::int(5)).unwrap();
    repo.commit(&mut other, "o").unwrap();
    assert!(repo.rebase(&mut t).is_err(), "read-write conflict on y");
    assert!(repo.rebase(&mut back).is_err(), "the same, restored");
    // A tenant recording with nothing read yet is restored recording.
    let mut fresh = repo.fork();
    fresh.record_reads(true).unwrap();
    let back = Tenant::restore_from(fresh.base(), &fresh.snapshot()).unwrap();
    assert_eq!(back.reads_recorded().map(|r| r.len()), Some(0));
    // And one that does not record is restored not recording.
    let plain = repo.fork();
    let back = Tenant::restore_from(plain.base(), &plain.snapshot()).unwrap();
    assert!(back.reads_recorded().is_none());
}

/// A snapshot names its tenant's base by [`Base::fingerprint`]: for a committed version,
/// the version's (its parent's and its layer's, as `docs/FORMATS.md` spells it), not any
/// heap's content. A flatten keeps that name, so the version's snapshots restore onto the
/// flattened base; but the file `flatten_to` wrote, opened again (by another process, after
/// a restart), is a base of its own named by its content, onto which they are refused.
#[test]
fn a_snapshot_names_its_version_and_a_reopened_flattened_file_is_another_base() {
    use cowheap_heap::BaseHeap;
    use cowheap_heap::file::FileError;
    let base = Base::new(synth::image(200, 7));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    t.set_slot(x, 0, Value::int(42)).unwrap();
    let v1 = repo.commit(&mut t, "a").unwrap();
    let mut u = Tenant::fork(&v1);
    u.set_slot(x, 1, Value::int(7)).unwrap();
    let snap = u.snapshot();

    // The version's fingerprint, computed as docs/FORMATS.md says.
    let mut h = blake3::Hasher::new();
    h.update(b"cowheap version\0");
    h.update(&base.fingerprint().0);
    h.update(&1u64.to_le_bytes());
    h.update(&(v1.len() as u64).to_le_bytes());
    let mut changed: Vec<u32> = v1.changed_here().map(|x| x.as_u32()).collect();
    changed.sort_unstable();
    assert_eq!(changed, [x.as_base().unwrap().as_u32()]);
    for x in changed {
        let c = v1.committed(x).unwrap();
        h.update(&x.to_le_bytes());
        h.update(&c.class.bits().to_le_bytes());
        h.update(&[c.format.code()]);
        h.update(&c.hash.to_le_bytes());
        h.update(&c.aux.to_le_bytes());
        h.update(&(c.slots.len() as u64).to_le_bytes());
        for w in c.slots.iter() {
            h.update(&w.bits().to_le_bytes());
        }
        h.update(&(c.bytes.len() as u64).to_le_bytes());
        h.update(&c.bytes);
    }
    assert_eq!(v1.fingerprint().0, *h.finalize().as_bytes());
    assert_eq!(
        snap[16..48],
        v1.fingerprint().0,
        "the snapshot names the version"
    );
    assert_ne!(v1.fingerprint(), v1.heap().fingerprint());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.cowheap");
    let flat = repo.flatten_to(&path).unwrap();
    assert_eq!(flat.fingerprint(), v1.fingerprint());
    let back = Tenant::restore_from(&flat, &snap).unwrap();
    assert_eq!(back.slot(x, 1).unwrap().as_int(), Some(7));

    let reopened = Base::new(BaseHeap::open(&path).unwrap());
    assert_eq!(reopened.version(), 0);
    assert_eq!(reopened.fingerprint(), flat.heap().fingerprint());
    assert_ne!(reopened.fingerprint(), v1.fingerprint());
    assert!(matches!(
        Tenant::restore_from(&reopened, &snap),
        Err(FileError::ForeignBase { expected, found })
            if expected == v1.fingerprint() && found == reopened.fingerprint()
    ));
    // Nor does a layer made over the version apply there: it names another history.
    let mut c = repo.fork();
    c.set_slot(x, 1, Value::int(8)).unwrap();
    let v2 = repo.commit(&mut c, "c").unwrap();
    let layer =
        cowheap_tenants::commit::Layer::of(&v2, vec![x.as_base().unwrap().as_u32()]).unwrap();
    let there = Repository::new(reopened.clone(), CommitRights::Anyone);
    assert!(matches!(
        there.apply(&layer),
        Err(cowheap_tenants::commit::CommitError::ForeignLayer)
    ));
    // Its own tenants' snapshots restore on it, as on any base.
    let mut w = Tenant::fork(&reopened);
    w.set_slot(x, 1, Value::int(7)).unwrap();
    assert!(Tenant::restore_from(&reopened, &w.snapshot()).is_ok());
}
