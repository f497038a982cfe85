//! What a tenant that records its reads counts as a read, and what an abort keeps: a
//! reference resolved to a committed object is no read of it, and a private forwarder to a
//! committed object stays that object after an abort, as does every forwarder alive at a
//! commit whose chain ends at a base object.

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
    t.record_reads(true).unwrap();
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
    t2.record_reads(true).unwrap();
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

/// `p` forwarded onto base object `x` and `x` written (copied), in either order, then
/// committed and aborted: `p` is the committed `x` before the abort and after it.
fn forward_write_commit_abort(write_first: bool) -> Result<bool, String> {
    let base = Base::new(synth::image(200, 7));
    let x = pointers(&base, 1)[0];
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let p = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    if write_first {
        t.set_slot(x, 0, Value::int(5)).unwrap();
        t.become_forward(p, x).unwrap();
    } else {
        t.become_forward(p, x).unwrap();
        t.set_slot(x, 0, Value::int(5)).unwrap();
    }
    repo.commit(&mut t, "t").unwrap();
    assert!(t.identical(p, x).unwrap());
    assert_eq!(t.slot(p, 0).unwrap().as_int(), Some(5));
    repo.abort(&mut t);
    assert_eq!(t.slot(x, 0).unwrap().as_int(), Some(5));
    t.identical(p, x).map_err(|e| e.to_string())
}

/// Whether an abort keeps a forwarder from before a commit does not hang on the order of
/// the `become_forward` and the write that copied its target.
#[test]
fn an_abort_keeps_a_forwarder_to_a_committed_copy_whatever_the_order() {
    assert_eq!(
        forward_write_commit_abort(true),
        Ok(true),
        "write, then become"
    );
    assert_eq!(
        forward_write_commit_abort(false),
        Ok(true),
        "become, then write"
    );
}

/// A forwarder onto a base object the commit did not change, alive at the commit, is kept
/// by an abort too (a reference from before the commit leads to that object, in the version
/// as before it), and so is one alive at a commit that had nothing to write. A forwarder
/// made after the last commit is the aborted work's, and is refused afterwards.
#[test]
fn an_abort_keeps_forwarders_alive_at_a_commit_and_drops_later_ones() {
    let base = Base::new(synth::image(200, 7));
    let [x, y, z]: [Value; 3] = pointers(&base, 3).try_into().unwrap();
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let size = ObjectSize { slots: 2, bytes: 0 };
    let p = t.alloc(class, Format::Pointers, size).unwrap();
    t.become_forward(p, y).unwrap();
    t.set_slot(x, 0, Value::int(1)).unwrap();
    repo.commit(&mut t, "t").unwrap();
    // Nothing to write: a commit all the same.
    let q = t.alloc(class, Format::Pointers, size).unwrap();
    t.become_forward(q, z).unwrap();
    repo.commit(&mut t, "t").unwrap();
    let r = t.alloc(class, Format::Pointers, size).unwrap();
    t.become_forward(r, y).unwrap();
    repo.abort(&mut t);
    assert!(t.identical(p, y).unwrap(), "p, alive at the first commit");
    assert!(t.identical(q, z).unwrap(), "q, alive at the empty commit");
    assert!(t.slot(r, 0).is_err(), "r, made after the last commit");
    assert_eq!(t.slot(x, 0).unwrap().as_int(), Some(1));
    // Kept across a second abort and a collection.
    repo.abort(&mut t);
    t.set_root("p", p).unwrap();
    t.collect();
    assert!(t.identical(t.root("p").unwrap(), y).unwrap());
}

/// Forwarders whose chains join (two onto a third, which leads to a copy the commit takes)
/// and a long chain onto a base object, alive at a commit: an abort keeps every one of them,
/// each leading to its object.
#[test]
fn an_abort_keeps_joined_and_long_forwarder_chains() {
    let base = Base::new(synth::image(200, 7));
    let [x, y]: [Value; 2] = pointers(&base, 2).try_into().unwrap();
    let repo = Repository::new(base, CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(x).unwrap();
    let size = ObjectSize { slots: 2, bytes: 0 };
    let alloc = |t: &mut cowheap_tenants::Tenant| t.alloc(class, Format::Pointers, size).unwrap();
    let [p1, p2, p3] = [alloc(&mut t), alloc(&mut t), alloc(&mut t)];
    t.set_slot(x, 0, Value::int(9)).unwrap();
    t.become_forward(p3, x).unwrap();
    t.become_forward(p1, p3).unwrap();
    t.become_forward(p2, p3).unwrap();
    let chain: Vec<Value> = (0..1_000).map(|_| alloc(&mut t)).collect();
    for pair in chain.windows(2).rev() {
        t.become_forward(pair[0], pair[1]).unwrap();
    }
    t.become_forward(*chain.last().unwrap(), y).unwrap();
    repo.commit(&mut t, "t").unwrap();
    repo.abort(&mut t);
    for p in [p1, p2, p3] {
        assert!(t.identical(p, x).unwrap());
        assert_eq!(t.slot(p, 0).unwrap().as_int(), Some(9));
    }
    for &c in &chain {
        assert!(t.identical(c, y).unwrap());
    }
}
