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
