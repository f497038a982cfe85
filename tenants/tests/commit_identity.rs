//! What a tenant that records its reads counts as a read, and what an abort keeps: a
//! reference resolved to a committed object is no read of it, and a private forwarder to a
//! committed object stays that object after an abort.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, synth};
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};

/// `n` pointer objects of `base` with at least two slots.
fn pointers(base: &Base, n: usize) -> Vec<Value> {
    let h = base.heap();
    h.indices()
        .filter(|&x| h.format(x).unwrap() == Format::Pointers && h.size(x).unwrap().slots >= 2)
        .map(Value::base)
        .take(n)
        .collect()
}

/// A collection that patches a root from a committed forwarder to the base object it
/// leads to, an identity test and a reference stored are no reads of that object: a later
/// read-write commit finds no conflict in it. A read of its slot is one.
#[test]
fn resolving_a_reference_is_no_read_of_its_object() {
    let base = Base::new(synth::image(200, 7));
    let o = pointers(&base, 3);
    let (x, z, w) = (o[0], o[1], o[2]);
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    t.record_reads(true);
    let class = t.class_of(x).unwrap();
    let p = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    t.set_slot(x, 0, p).unwrap();
    t.set_root("r", p).unwrap();
    let v1 = repo.commit(&mut t, "t").unwrap(); // p is now base object y of v1
    let y_index = v1.len() - 1;
    let y = Value::base(ObjectIndex::new(y_index).unwrap());
    // Another tenant changes y; t never reads y's body.
    let mut u = repo.fork();
    u.set_slot(y, 0, Value::int(9)).unwrap();
    repo.commit(&mut u, "u").unwrap();
    t.collect(); // patches the root "r" from p's forwarder to y
    assert!(t.identical(t.root("r").unwrap(), y).unwrap());
    t.set_slot(w, 1, y).unwrap(); // a reference to y stored
    t.set_slot(z, 0, Value::int(1)).unwrap();
    let read = |t: &cowheap_tenants::Tenant| {
        t.reads_recorded()
            .unwrap()
            .contains(&u32::try_from(y_index).unwrap())
    };
    assert!(!read(&t), "y's body was never read");
    let mut t2 = repo.fork();
    t2.record_reads(true);
    repo.commit_with(&mut t, "t", CommitMode::ReadWrite, &[])
        .expect("no object t read was changed");
    // A read of y's slot is a read.
    t2.slot(y, 0).unwrap();
    assert!(read(&t2));
}

/// After a commit, a private forwarder to a committed object is that object; an abort
/// keeps both, as it keeps the committed object.
#[test]
fn an_abort_keeps_forwarders_to_committed_objects() {
    let base = Base::new(synth::image(200, 7));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let p = t.alloc(class, Format::Pointers, size).unwrap();
    let q = t.alloc(class, Format::Pointers, size).unwrap();
    t.set_slot(q, 0, Value::int(3)).unwrap();
    t.become_forward(p, q).unwrap(); // p now leads to q
    t.set_slot(x, 0, q).unwrap();
    repo.commit(&mut t, "t").unwrap(); // q is committed
    assert!(t.identical(p, q).unwrap());
    assert_eq!(t.slot(p, 0).unwrap().as_int(), Some(3));
    repo.abort(&mut t);
    assert_eq!(t.slot(q, 0).unwrap().as_int(), Some(3), "q kept");
    assert!(
        t.identical(p, q).unwrap(),
        "p still leads to the committed q"
    );
    assert_eq!(t.slot(p, 0).unwrap().as_int(), Some(3));
    // A snapshot of the aborted tenant restores (its kept forwarders lead to base objects).
    let back = cowheap_tenants::Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
    let mine = |v: Value| Value::owned(v.word(), back.id());
    assert!(back.identical(mine(p), mine(q)).unwrap());
    assert_eq!(back.slot(mine(p), 0).unwrap().as_int(), Some(3));
    // And a collection after the abort keeps what is rooted: both lead to one object.
    t.set_root("p", p).unwrap();
    t.set_root("q", q).unwrap();
    t.collect();
    let (rp, rq) = (t.root("p").unwrap(), t.root("q").unwrap());
    assert!(t.identical(rp, rq).unwrap());
    assert_eq!(t.slot(rp, 0).unwrap().as_int(), Some(3));
}
