//! Directed tests of the contract: isolation, identity, become, collection, errors, quotas,
//! the read barrier's counters, the registry and threads.

use cowheap::heap::Error as HeapError;
use cowheap::tenants::commit::{CommitRights, Repository};
use cowheap::{
    Base, Error, Format, MarkPolicy, ObjectSize, Registry, Tenant, TenantConfig, Value, synth,
};
use std::sync::Arc;

fn base() -> Arc<Base> {
    Base::new(synth::image(5_000, 11))
}

/// The Smalltalk globals array (pointer slots, each an association).
fn globals(base: &Base) -> Value {
    base.heap().root("Smalltalk").unwrap()
}

#[test]
fn writes_and_becomes_leave_the_base_and_other_tenants_untouched() {
    let base = base();
    let g = globals(&base);
    let heap = base.heap();
    let before: Vec<_> = (0..4).map(|i| heap.slot(g, i).unwrap().word()).collect();
    let (t, f) = (heap.root("true").unwrap(), heap.root("false").unwrap());

    let mut a = Tenant::fork(&base);
    let b = Tenant::fork(&base);
    for i in 0..4 {
        a.set_slot(g, i, Value::int(i as i64)).unwrap();
    }
    a.become_forward(t, f).unwrap();
    let assoc = before[1];
    a.become_two_way(Value::from(assoc), g).unwrap();

    for (i, &w) in before.iter().enumerate() {
        assert_eq!(heap.slot(g, i).unwrap().word(), w, "base slot {i}");
        assert_eq!(b.slot(g, i).unwrap().word(), w, "other tenant slot {i}");
    }
    assert!(!b.identical(t, f).unwrap());
    assert!(a.identical(t, f).unwrap());
    // After the two-way become, `g` in `a` shows what the association was.
    assert_eq!(a.size(g).unwrap(), b.size(Value::from(assoc)).unwrap());
    // A fresh tenant sees the base as it was.
    let c = Tenant::fork(&base);
    assert_eq!(c.slot(g, 0).unwrap().word(), before[0]);
    assert_eq!(b.stats().copies, 0);
}

#[test]
fn a_copy_keeps_identity_and_identity_hash() {
    let base = base();
    let g = globals(&base);
    let hash = base.heap().hash(g.as_base().unwrap()).unwrap();
    let mut t = Tenant::fork(&base);
    // Some base object refers to g: the special objects array.
    let specials = base.heap().root("specialObjects").unwrap();
    t.set_slot(g, 0, Value::int(5)).unwrap();
    assert_eq!(t.stats().copies, 1);
    assert_eq!(t.identity_hash(g).unwrap(), hash);
    // The reference held in a base object reaches the copy, and is identical to it.
    let via_base = t.slot(specials, 3).unwrap();
    assert!(t.identical(via_base, g).unwrap());
    assert_eq!(t.slot(via_base, 0).unwrap().as_int(), Some(5));
    // A reference stored in a private object reaches the copy too.
    let class = t.class_of(g).unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[g], &[]).unwrap();
    let via_private = t.slot(holder, 0).unwrap();
    assert!(t.identical(via_private, g).unwrap());
    assert_eq!(t.identity_hash(via_private).unwrap(), hash);
}

#[test]
fn a_private_slot_is_patched_once_then_reads_without_lookups() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    // The holder refers to g while g is still undiverted: it holds the base word.
    let holder = t.alloc_with(class, Format::Pointers, &[g], &[]).unwrap();
    t.set_slot(g, 0, Value::int(9)).unwrap();
    let lookups = t.stats().lookups;
    let first = t.slot(holder, 0).unwrap();
    assert_eq!(t.stats().patches, 1, "the first read patches the slot");
    assert!(
        t.stats().lookups > lookups,
        "the first read looked in the table"
    );
    assert!(
        !first.word().is_base(),
        "the slot now holds the private copy"
    );
    let lookups = t.stats().lookups;
    for _ in 0..10 {
        let v = t.slot(holder, 0).unwrap();
        assert_eq!(t.slot(v, 0).unwrap().as_int(), Some(9));
    }
    assert_eq!(t.stats().lookups, lookups, "patched reads do no lookup");
    assert_eq!(t.stats().patches, 1);
}

/// `resolve` answers the reference that reads without a lookup: the copy for a base object
/// this tenant copied (reads through it then look nothing up), the target for a forwarder,
/// anything else as it is; and refuses what a read refuses.
#[test]
fn resolve_answers_the_copy_and_reads_through_it_look_nothing_up() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let mut other = Tenant::fork(&base);
    for v in [Value::int(3), Value::char('x'), g] {
        assert_eq!(t.resolve(v).unwrap().word(), v.word(), "as it is");
    }
    let before = t.slot(g, 1).unwrap();
    t.set_slot(g, 0, Value::int(9)).unwrap();
    let copy = t.resolve(g).unwrap();
    assert!(copy.word().is_private());
    assert!(t.identical(copy, g).unwrap());
    assert_eq!(t.identity_word(copy).unwrap(), t.identity_word(g).unwrap());
    assert_eq!(
        t.resolve(copy).unwrap().word(),
        copy.word(),
        "a copy is itself"
    );
    // Through the base reference every read looks the copy up; through the copy, none does.
    let lookups = t.stats().lookups;
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(9));
    assert!(t.stats().lookups > lookups);
    let lookups = t.stats().lookups;
    for _ in 0..10 {
        assert_eq!(t.slot(copy, 0).unwrap().as_int(), Some(9));
        assert!(t.identical(t.slot(copy, 1).unwrap(), before).unwrap());
    }
    assert_eq!(
        t.stats().lookups,
        lookups,
        "reads of the copy look nothing up"
    );
    // Another tenant still reads the base object as it is.
    assert_eq!(other.resolve(g).unwrap().word(), g.word());
    assert!(matches!(
        other.resolve(copy),
        Err(Error::ForeignReference { .. })
    ));

    // A forwarder resolves to its target.
    let class = t.class_of(g).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let a = t.alloc(class, Format::Pointers, size).unwrap();
    let b = t.alloc(class, Format::Pointers, size).unwrap();
    t.set_root("b", b).unwrap();
    t.become_forward(a, b).unwrap();
    assert_eq!(t.resolve(a).unwrap().word(), b.word());
    // A collected object is refused, as a read of it is.
    let gone = t.alloc(class, Format::Pointers, size).unwrap();
    t.collect();
    assert!(matches!(t.resolve(gone), Err(Error::Collected(_))));
    assert!(matches!(t.slot(gone, 0), Err(Error::Collected(_))));
    other.set_slot(g, 0, Value::int(1)).unwrap();
    assert_eq!(t.slot(t.resolve(g).unwrap(), 0).unwrap().as_int(), Some(9));

    // After an abort the copy's reference is refused; the base reference reads the base.
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut r = repo.fork();
    r.set_slot(g, 0, Value::int(5)).unwrap();
    let copy = r.resolve(g).unwrap();
    repo.abort(&mut r);
    assert!(matches!(r.resolve(copy), Err(Error::Collected(_))));
    assert!(matches!(r.slot(copy, 0), Err(Error::Collected(_))));
    assert_eq!(r.resolve(g).unwrap().word(), g.word());
    assert!(
        r.identical(r.slot(g, 0).unwrap(), base.heap().slot(g, 0).unwrap())
            .unwrap()
    );
}

#[test]
fn a_reader_reads_undiverted_objects_in_place_and_leaves_the_rest_to_its_tenant() {
    let base = base();
    let g = globals(&base);
    let (x, y) = (
        base.heap().slot(g, 0).unwrap(),
        base.heap().slot(g, 1).unwrap(),
    );
    let x_before = base.heap().slot(x, 0).unwrap();
    let mut a = Tenant::fork(&base);
    let mut b = Tenant::fork(&base);

    // An undiverted object: read in place, and what the tenant reads.
    {
        let r = a.reader();
        let quick = r.try_slot(g, 0).expect("undiverted, in place");
        assert_eq!(quick.word(), a.slot(g, 0).unwrap().word());
        assert_eq!(
            r.try_class_of(g).unwrap().word(),
            a.class_of(g).unwrap().word()
        );
        assert_eq!(r.size(g).unwrap(), a.size(g).unwrap());
        assert_eq!(r.identity_hash(g).unwrap(), a.identity_hash(g).unwrap());
        assert_eq!(r.format(g).unwrap(), a.format(g).unwrap());
        assert_eq!(r.bytes(g).unwrap(), a.bytes(g).unwrap());
        let h = r.header(g).unwrap();
        assert_eq!(
            (h.format, h.size),
            (a.format(g).unwrap(), a.size(g).unwrap())
        );
        // Past the slots: no answer in place, and the tenant's own error.
        let n = a.size(g).unwrap().slots;
        assert!(r.try_slot(g, n).is_none());
        assert!(
            matches!(r.slot(g, n), Err(Error::Heap(_))),
            "{:?}",
            r.slot(g, n)
        );
        // Immediates have no slots; their class is the tenant's answer.
        assert!(r.try_slot(Value::int(3), 0).is_none());
        assert!(r.slot(Value::int(3), 0).is_err());
        assert!(r.try_class_of(Value::int(3)).is_none());
        assert_eq!(
            r.class_of(Value::int(3)).unwrap().word(),
            a.class_of(Value::int(3)).unwrap().word()
        );
        assert!(std::ptr::eq(r.tenant(), &a));
    }
    assert_eq!(a.stats().lookups, 0, "no read looked anything up");

    // Another tenant diverts x: its shared mark is set, and this tenant's filter says this
    // tenant did not divert it, so it is still read in place; the diverter reads its copy.
    b.set_slot(x, 0, Value::int(7)).unwrap();
    assert!(base.marks().is_marked(x.word().as_base().unwrap().as_u32()));
    {
        let (ra, rb) = (a.reader(), b.reader());
        let quick = ra
            .try_slot(x, 0)
            .expect("read in place past another's mark");
        assert_eq!(quick.word(), x_before.word());
        assert_eq!(ra.slot(x, 0).unwrap().word(), x_before.word());
        assert!(rb.try_slot(x, 0).is_none(), "the diverter's own copy");
        assert_eq!(rb.slot(x, 0).unwrap().as_int(), Some(7));
        assert_eq!(
            rb.class_of(x).unwrap().word(),
            b.class_of(x).unwrap().word(),
            "the copy's class"
        );
    }

    // A private object, and another tenant's reference to one, as the tenant answers.
    let class = a.class_of(g).unwrap();
    let p = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    a.set_slot(p, 1, Value::int(5)).unwrap();
    {
        let r = a.reader();
        assert!(r.try_slot(p, 1).is_none());
        assert_eq!(r.slot(p, 1).unwrap().as_int(), Some(5));
        // Its other reads, inline for a private object as the tenant's are.
        assert_eq!(r.size(p).unwrap(), ObjectSize { slots: 2, bytes: 0 });
        assert_eq!(r.size(p).unwrap(), a.size(p).unwrap());
        assert_eq!(r.format(p).unwrap(), Format::Pointers);
        assert_eq!(r.identity_hash(p).unwrap(), a.identity_hash(p).unwrap());
        assert!(r.bytes(p).unwrap().is_empty());
        let h = r.header(p).unwrap();
        assert_eq!((h.format, h.size), (Format::Pointers, a.size(p).unwrap()));
        assert_eq!(h.class.word(), class.word());
        assert!(matches!(
            b.reader().size(p),
            Err(Error::ForeignReference { .. })
        ));
        assert!(matches!(
            b.identity_hash(p),
            Err(Error::ForeignReference { .. })
        ));
    }
    // A private byte object's bytes, and its hash and size, inline through the tenant and a
    // reader, against what it was made with.
    let s = a
        .alloc_with_hash(class, Format::Bytes, &[], b"\0abc\0", 0x5EED)
        .unwrap();
    {
        let r = a.reader();
        assert_eq!(a.bytes(s).unwrap(), b"\0abc\0");
        assert_eq!(r.bytes(s).unwrap(), b"\0abc\0");
        assert_eq!(r.format(s).unwrap(), Format::Bytes);
        assert_eq!(a.format(s).unwrap(), Format::Bytes);
        assert_eq!(
            (a.identity_hash(s).unwrap(), r.identity_hash(s).unwrap()),
            (0x5EED, 0x5EED)
        );
        let five = ObjectSize { slots: 0, bytes: 5 };
        assert_eq!((a.size(s).unwrap(), r.size(s).unwrap()), (five, five));
        let h = r.header(s).unwrap();
        assert_eq!(
            (h.format, h.size, h.class.word()),
            (Format::Bytes, five, class.word())
        );
        assert!(matches!(
            b.reader().slot(p, 1),
            Err(Error::ForeignReference { .. })
        ));
    }

    // A private slot holding a base reference this tenant then copies: the reader's own
    // read of the private object does not settle it, and the tenant's (past the reader's
    // cold call) answers the copy and patches the slot.
    a.set_slot(p, 0, y).unwrap();
    a.set_slot(y, 1, Value::int(6)).unwrap();
    {
        let r = a.reader();
        let got = r.slot(p, 0).unwrap();
        assert!(a.identical(got, y).unwrap());
        assert!(got.word().is_private(), "the copy's reference");
        assert_eq!(r.slot(got, 1).unwrap().as_int(), Some(6));
        assert_eq!(
            r.slot(p, 0).unwrap().word(),
            got.word(),
            "patched: the slot holds the copy's reference"
        );
    }

    // With a forwarder in the space, a private word read is the tenant's to settle: a slot
    // holding the forwarded object answers its target (patched), one holding another
    // private object answers that object, and a collected object is refused.
    let size = ObjectSize { slots: 1, bytes: 0 };
    let (q1, q2, q3) = (
        a.alloc(class, Format::Pointers, size).unwrap(),
        a.alloc(class, Format::Pointers, ObjectSize { slots: 3, bytes: 0 })
            .unwrap(),
        a.alloc(class, Format::Pointers, size).unwrap(),
    );
    let holder = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    a.set_slot(holder, 0, q1).unwrap();
    a.set_slot(holder, 1, q3).unwrap();
    a.set_root("holder", holder).unwrap();
    a.set_root("q2", q2).unwrap();
    a.become_forward(q1, q2).unwrap();
    let patches = a.stats().patches;
    {
        let r = a.reader();
        // The forwarder itself is no live object: its reads are the tenant's, of the target.
        assert_eq!(r.identity_hash(q1).unwrap(), a.identity_hash(q2).unwrap());
        assert_eq!(a.identity_hash(q1).unwrap(), a.identity_hash(q2).unwrap());
        assert_eq!(r.size(q1).unwrap(), ObjectSize { slots: 3, bytes: 0 });
        assert_eq!(a.size(q1).unwrap(), ObjectSize { slots: 3, bytes: 0 });
        assert_eq!(r.format(q1).unwrap(), Format::Pointers);
        assert_eq!(r.header(q1).unwrap().size.slots, 3);
        assert_eq!(r.slot(holder, 0).unwrap().word(), q2.word());
        assert_eq!(r.slot(holder, 1).unwrap().word(), q3.word());
        assert_eq!(
            r.class_of(holder).unwrap().word(),
            a.class_of(holder).unwrap().word()
        );
    }
    assert_eq!(
        a.stats().patches,
        patches + 1,
        "the forwarder's slot patched"
    );
    let gone = a.alloc(class, Format::Pointers, size).unwrap();
    a.collect();
    assert!(matches!(a.reader().slot(gone, 0), Err(Error::Collected(_))));
    assert!(matches!(
        a.reader().class_of(gone),
        Err(Error::Collected(_))
    ));
    assert!(matches!(a.reader().size(gone), Err(Error::Collected(_))));
    assert!(matches!(
        a.reader().identity_hash(gone),
        Err(Error::Collected(_))
    ));
    assert!(matches!(a.identity_hash(gone), Err(Error::Collected(_))));
    assert!(matches!(a.bytes(gone), Err(Error::Collected(_))));
    assert!(matches!(a.reader().bytes(gone), Err(Error::Collected(_))));
    assert!(matches!(a.reader().format(gone), Err(Error::Collected(_))));
    assert!(matches!(a.reader().header(gone), Err(Error::Collected(_))));

    // Under the private policy nothing is read in place by the shared marks: the tenant's
    // own marks decide, for every read.
    let private = TenantConfig {
        marks: MarkPolicy::Private,
        ..TenantConfig::default()
    };
    let mut c = Tenant::fork_with(&base, private);
    let r = c.reader();
    assert!(r.try_slot(y, 0).is_none());
    assert_eq!(r.slot(y, 0).unwrap().word(), c.slot(y, 0).unwrap().word());
    assert_eq!(
        r.slot(x, 0).unwrap().word(),
        x_before.word(),
        "b's write is b's"
    );
    assert_eq!(r.class_of(y).unwrap().word(), c.class_of(y).unwrap().word());
    assert_eq!(r.size(y).unwrap(), c.size(y).unwrap());
    assert_eq!(r.format(y).unwrap(), c.format(y).unwrap());
    assert_eq!(r.identity_hash(y).unwrap(), c.identity_hash(y).unwrap());
    assert_eq!(r.bytes(y).unwrap(), c.bytes(y).unwrap());
    assert_eq!(r.header(y).unwrap().size, c.size(y).unwrap());
    // Its own copy, under its own marks, is its tenant's to read; a private slot holding
    // the base reference it copied answers the copy (its own filter's branch of the
    // settling of a private word), patched.
    let q = c.alloc(class, Format::Pointers, size).unwrap();
    c.set_slot(q, 0, g).unwrap();
    assert_eq!(c.slot(q, 0).unwrap().word(), g.word(), "stored as it is");
    c.set_slot(g, 0, Value::int(8)).unwrap();
    let r = c.reader();
    assert_eq!(r.slot(g, 0).unwrap().as_int(), Some(8));
    assert_eq!(r.class_of(g).unwrap().word(), c.class_of(g).unwrap().word());
    assert_eq!(r.slot(y, 0).unwrap().word(), c.slot(y, 0).unwrap().word());
    assert_eq!(
        r.slot(y, 0).unwrap().word(),
        base.heap().slot(y, 0).unwrap().word()
    );
    let copy = r.slot(q, 0).unwrap();
    assert!(copy.word().is_private() && c.identical(copy, g).unwrap());
    assert_eq!(r.slot(copy, 0).unwrap().as_int(), Some(8));
    // A private object's other reads under its own marks, and the copy's (a copy keeps its
    // base object's hash and size).
    assert_eq!(r.size(q).unwrap(), size);
    assert_eq!(r.identity_hash(q).unwrap(), c.identity_hash(q).unwrap());
    let gx = g.word().as_base().unwrap();
    assert_eq!(r.size(copy).unwrap(), base.heap().size(gx).unwrap());
    assert_eq!(
        r.identity_hash(copy).unwrap(),
        base.heap().hash(gx).unwrap()
    );
    assert_eq!(r.header(copy).unwrap().size, base.heap().size(gx).unwrap());

    // While the tenant records its reads, a reader's reads are recorded too.
    let mut d = Tenant::fork(&base);
    d.record_reads(true).unwrap();
    assert!(d.reader().try_slot(y, 0).is_none());
    d.reader().slot(y, 0).unwrap();
    let recorded = d.reads_recorded().unwrap();
    assert!(
        recorded.contains(&y.word().as_base().unwrap().as_u32()),
        "{recorded:?}"
    );
    // Its private objects are its own, read as any tenant's and recorded as nothing.
    let dp = d
        .alloc_with_hash(class, Format::Pointers, &[Value::int(4)], &[], 0xD0)
        .unwrap();
    let before = d.reads_recorded().unwrap().len();
    let r = d.reader();
    assert_eq!(r.identity_hash(dp).unwrap(), 0xD0);
    assert_eq!(r.size(dp).unwrap(), size);
    assert_eq!(r.slot(dp, 0).unwrap().as_int(), Some(4));
    assert_eq!(d.reads_recorded().unwrap().len(), before);

    // An object a committed version changed is read from the version, by the tenant; an
    // object it left alone, in place.
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut w = repo.fork();
    w.set_slot(y, 0, Value::int(11)).unwrap();
    repo.commit(&mut w, "w").unwrap();
    // Whether or not its lane is the committer's (set in y's mark beside the committed
    // bit): lanes are drawn at random, so fork until there is one of each.
    let fork_where = |same: bool| {
        (0..100_000)
            .map(|_| repo.fork())
            .find(|t| (t.lane() == w.lane()) == same)
            .expect("a fork of the lane asked for")
    };
    for e in [fork_where(true), fork_where(false)] {
        let r = e.reader();
        assert!(r.try_slot(y, 0).is_none(), "a version changed y");
        assert_eq!(r.slot(y, 0).unwrap().as_int(), Some(11));
        assert_eq!(r.slot(y, 0).unwrap().word(), e.slot(y, 0).unwrap().word());
        assert_eq!(r.size(y).unwrap(), e.size(y).unwrap());
        assert!(r.try_slot(g, 0).is_some(), "g is as the base has it");
        assert_eq!(r.slot(g, 0).unwrap().word(), e.slot(g, 0).unwrap().word());
    }
}

/// Twin tenants of `base` that copied the globals `g` (whose slot 0 holds association `x`)
/// and then `x`, so that `g`'s copy holds a base reference to an object the tenant diverted,
/// to patch when it is first read; `record` turns on the recording of reads first.
fn twins_with_a_slot_to_patch(base: &Arc<Base>, record: bool) -> (Tenant, Tenant) {
    let g = globals(base);
    let x = base.heap().slot(g, 0).unwrap();
    let make = || {
        let mut t = Tenant::fork(base);
        t.record_reads(record).unwrap();
        t.set_slot(g, 1, Value::int(5)).unwrap();
        t.set_slot(x, 0, Value::int(6)).unwrap();
        t
    };
    (make(), make())
}

#[test]
fn a_reader_counts_patches_and_records_as_its_tenant_does() {
    let base = base();
    let g = globals(&base);
    let x = base.heap().slot(g, 0).unwrap();
    for record in [false, true] {
        let (a, b) = twins_with_a_slot_to_patch(&base, record);
        let (sa, sb) = (a.stats(), b.stats());
        // The copy of g, through its base reference (a probe of the table), holds x, which
        // the tenant diverted: the read answers x's copy and patches the slot, through a
        // reader (past its cold call) as through the tenant.
        let (va, vb) = (a.reader().slot(g, 0).unwrap(), b.slot(g, 0).unwrap());
        assert!(va.word().is_private() && vb.word().is_private());
        assert!(a.identical(va, x).unwrap() && b.identical(vb, x).unwrap());
        assert_eq!(a.reader().slot(va, 0).unwrap().as_int(), Some(6));
        assert_eq!(b.slot(vb, 0).unwrap().as_int(), Some(6));
        let (da, db) = (a.stats(), b.stats());
        assert_eq!(da.patches - sa.patches, 1, "the slot patched once");
        assert_eq!(da.patches - sa.patches, db.patches - sb.patches);
        assert_eq!(da.lookups - sa.lookups, db.lookups - sb.lookups);
        assert!(
            da.lookups > sa.lookups,
            "a base reference to a copy is looked up"
        );
        // Read again: the slot holds the copy now, and nothing is patched again.
        assert_eq!(a.reader().slot(g, 0).unwrap().word(), va.word());
        assert_eq!(b.slot(g, 0).unwrap().word(), vb.word());
        assert_eq!(a.stats().patches, da.patches);
        assert_eq!(b.stats().patches, db.patches);
        // The copy's other reads through its base reference, both ways.
        let (ra, rb) = (a.reader(), &b);
        assert_eq!(ra.size(g).unwrap(), rb.size(g).unwrap());
        assert_eq!(ra.identity_hash(g).unwrap(), rb.identity_hash(g).unwrap());
        assert_eq!(ra.header(g).unwrap().size, rb.header(g).unwrap().size);
        assert_eq!(
            ra.class_of(g).unwrap().word(),
            rb.class_of(g).unwrap().word()
        );
        assert_eq!(
            a.stats().lookups - da.lookups,
            b.stats().lookups - db.lookups
        );
        // A recording tenant records what its reader reads as it records its own reads.
        assert_eq!(a.reads_recorded(), b.reads_recorded());
        if record {
            assert!(a.reads_recorded().is_some());
        }
    }
}

#[test]
fn a_become_forward_is_patched_lazily_and_collected() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let a = t.alloc(class, Format::Pointers, size).unwrap();
    let b = t.alloc(class, Format::Pointers, size).unwrap();
    t.set_slot(b, 0, Value::int(2)).unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[a], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    t.become_forward(a, b).unwrap();
    let seen = t.slot(holder, 0).unwrap();
    assert!(t.identical(seen, b).unwrap());
    assert_eq!(t.stats().patches, 1);
    let objects = t.stats().private_objects;
    let freed = t.collect();
    // `a`'s forwarder and nothing else is garbage: holder -> b are rooted.
    assert_eq!(freed.freed, 1);
    assert_eq!(t.stats().private_objects, objects - 1);
    assert!(matches!(t.size(a), Err(Error::Collected(_))));
    assert_eq!(t.slot(seen, 0).unwrap().as_int(), Some(2));
}

/// A writer makes the later writes `set_slot` makes with no copy (into a private object, by
/// its private reference or by the base reference of a copy), counts them as `set_slot`
/// does, and refuses everything else with no change: the tenant then writes it, or answers
/// the error.
#[test]
fn a_writer_makes_later_writes_and_leaves_the_rest_to_its_tenant() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let mut other = Tenant::fork(&base);
    let n = t.size(g).unwrap().slots;
    let (a, b) = (t.slot(g, 0).unwrap(), t.slot(g, 1).unwrap());
    // With nothing copied yet, every write is a first write: refused, nothing made.
    assert!(!t.writer().try_set_slot(g, 0, Value::int(1)));
    assert_eq!(t.stats(), cowheap::TenantStats::default());
    assert_eq!(t.slot(g, 0).unwrap().word(), a.word());
    t.set_slot(g, 0, Value::int(1)).unwrap();
    let class = t.class_of(g).unwrap();
    let two = ObjectSize { slots: 2, bytes: 0 };
    let (p, q) = (
        t.alloc(class, Format::Pointers, two).unwrap(),
        t.alloc(class, Format::Pointers, two).unwrap(),
    );
    let copy = t.resolve(g).unwrap();
    let foreign = other.alloc(class, Format::Pointers, two).unwrap();
    let far = Value::base(cowheap::ObjectIndex::from_u32(u32::MAX));
    let stats = t.stats();
    let w = t.writer();
    // Into a private object: an immediate, a private reference, an undiverted base object.
    assert!(w.try_set_slot(p, 0, Value::int(7)));
    assert!(w.try_set_slot(p, 1, q));
    assert!(w.try_set_slot(q, 0, b));
    // Into the copy, by its private reference and by the base reference (one lookup).
    assert!(w.try_set_slot(copy, 2, p));
    assert!(w.try_set_slot(g, 3, Value::int(8)));
    // A reader taken beside the writer reads what it wrote.
    let r = t.reader();
    assert_eq!(r.slot(p, 0).unwrap().as_int(), Some(7));
    assert_eq!(r.slot(p, 1).unwrap().word(), q.word());
    assert_eq!(r.slot(q, 0).unwrap().word(), b.word());
    assert_eq!(r.slot(g, 2).unwrap().word(), p.word());
    assert_eq!(r.slot(copy, 3).unwrap().as_int(), Some(8));
    // Refused, changing nothing: a slot out of range (of a private object, of the copy by
    // either reference); a first write (an undiverted base object); a value that must be
    // resolved first (the copied object's base reference), or that is another tenant's;
    // another tenant's object, an immediate, a reference past the heap.
    let refused = [
        (p, 2, Value::int(1)),
        (copy, n, Value::int(1)),
        (g, n, Value::int(1)),
        (a, 0, Value::int(1)),
        (p, 0, g),
        (p, 0, foreign),
        (foreign, 0, Value::int(1)),
        (Value::int(3), 0, Value::int(1)),
        (far, 0, Value::int(1)),
    ];
    let words = |t: &Tenant| {
        [p, q, copy]
            .iter()
            .flat_map(|&o| (0..t.size(o).unwrap().slots).map(move |i| (o, i)))
            .map(|(o, i)| t.slot(o, i).unwrap().word())
            .collect::<Vec<_>>()
    };
    let before = words(&t);
    let w = t.writer();
    for &(obj, i, v) in &refused {
        assert!(!w.try_set_slot(obj, i, v), "{obj:?} {i} {v:?}");
    }
    assert_eq!(words(&t), before, "a refused write changes nothing");
    let after = t.stats();
    assert_eq!(
        (after.copies, after.private_objects, after.private_bytes),
        (stats.copies, stats.private_objects, stats.private_bytes),
        "a writer copies nothing"
    );
    // Through `g` the copy was looked up once a write (the refused one past its slots
    // too, as `set_slot` counts it) and once by the reader.
    assert_eq!(after.lookups, stats.lookups + 3);
    // The tenant makes what the writer refused, or answers why not.
    assert!(matches!(
        t.set_slot(p, 2, Value::int(1)),
        Err(Error::Heap(HeapError::SlotOutOfRange { .. }))
    ));
    t.set_slot(p, 0, g).unwrap();
    assert!(t.identical(t.slot(p, 0).unwrap(), copy).unwrap());
    assert!(t.set_slot(p, 0, foreign).is_err());
    t.set_slot(a, 0, Value::int(5)).unwrap();
    assert_eq!(t.stats().copies, stats.copies + 1);
    // Then the writer makes it: the object is copied now.
    assert!(t.writer().try_set_slot(a, 0, Value::int(6)));
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(6));
    // Past a become the space holds a forwarder: a private value is left to the tenant
    // (which resolves it), an immediate is still written, the forwarder is not written.
    t.become_forward(q, p).unwrap();
    let w = t.writer();
    assert!(!w.try_set_slot(p, 1, p));
    assert!(w.try_set_slot(p, 1, Value::int(4)));
    assert!(!w.try_set_slot(q, 0, Value::int(4)));
    assert_eq!(t.slot(p, 1).unwrap().as_int(), Some(4));
    t.set_slot(p, 1, q).unwrap();
    assert!(t.identical(t.slot(p, 1).unwrap(), p).unwrap());
    // Once collected, the forwarder's reference is refused by both.
    t.set_slot(p, 1, Value::int(0)).unwrap();
    t.collect();
    assert!(!t.writer().try_set_slot(q, 0, Value::int(1)));
    assert!(matches!(
        t.set_slot(q, 0, Value::int(1)),
        Err(Error::Collected(_))
    ));
}

/// `free_unreachable` frees exactly the given objects that are unreachable: not one a root
/// reaches through another, not a copy of a base object, not another tenant's, not an
/// immediate; and, unlike `collect`, no other garbage. What it frees is refused afterwards,
/// and its bytes are back under the quota.
#[test]
fn free_unreachable_frees_only_the_given_unreachable_objects() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let reached = t.alloc(class, Format::Pointers, size).unwrap();
    let holder = t
        .alloc_with(class, Format::Pointers, &[reached], &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    t.set_slot(g, 0, Value::int(1)).unwrap();
    let copy = t.copies().next().unwrap().1;
    let other_garbage = t.alloc(class, Format::Pointers, size).unwrap();
    let before = t.stats();
    let made: Vec<Value> = (0..3)
        .map(|_| t.alloc(class, Format::Pointers, size).unwrap())
        .collect();
    let made_bytes = t.stats().private_bytes - before.private_bytes;
    t.set_slot(made[0], 0, made[1]).unwrap();
    t.set_slot(made[1], 0, reached).unwrap();
    let mut other = Tenant::fork(&base);
    let foreign = other.alloc(class, Format::Pointers, size).unwrap();

    let mut given = made.clone();
    given.extend([reached, holder, copy, g, foreign, Value::int(3), made[2]]);
    let freed = t.free_unreachable(&given);
    assert_eq!(freed.unwrap().freed, 3);
    let after = t.stats();
    assert_eq!(after.private_objects, before.private_objects);
    assert_eq!(after.private_bytes, before.private_bytes);
    for v in &made {
        assert!(matches!(t.size(*v), Err(Error::Collected(_))));
    }
    assert!(t.identical(t.slot(holder, 0).unwrap(), reached).unwrap());
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(1));
    assert!(t.size(other_garbage).is_ok());
    assert!(other.size(foreign).is_ok());
    // The freed bytes are room again: as many objects fit under a quota that held them.
    t.set_quota(Some(before.private_bytes + made_bytes));
    for _ in 0..3 {
        t.alloc(class, Format::Pointers, size).unwrap();
    }
    assert!(t.alloc(class, Format::Pointers, size).is_err());
    // Nothing given, or nothing of this tenant's: nothing marked, nothing freed.
    assert_eq!(t.free_unreachable(&[]).unwrap().freed, 0);
    let objects = t.stats().private_objects;
    assert_eq!(t.free_unreachable(&[foreign, g]).unwrap().freed, 0);
    assert_eq!(t.stats().private_objects, objects);
}

/// An object `free_unreachable` leaves standing (unreachable, but not given) may hold a
/// reference to one it freed; rooted later, its stale word keeps nothing alive, not even
/// the object that reuses the freed index.
#[test]
fn a_stale_word_left_by_free_unreachable_keeps_nothing_alive() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let size = ObjectSize { slots: 1, bytes: 0 };
    let freed = t.alloc(class, Format::Pointers, size).unwrap();
    let survivor = t
        .alloc_with(class, Format::Pointers, &[freed], &[])
        .unwrap();
    assert_eq!(t.free_unreachable(&[freed]).unwrap().freed, 1);
    t.set_root("survivor", survivor).unwrap();
    // The stale word reads as a value that is refused when used.
    let stale = t.slot(survivor, 0).unwrap();
    assert!(matches!(t.size(stale), Err(Error::Collected(_))));
    let reuser = t.alloc(class, Format::Pointers, size).unwrap();
    assert_eq!(
        reuser.word().as_private().unwrap().key(),
        freed.word().as_private().unwrap().key(),
        "the freed index is reused"
    );
    assert_eq!(t.free_unreachable(&[reuser]).unwrap().freed, 1);
    assert!(t.size(survivor).is_ok());
    let objects = t.stats().private_objects;
    assert_eq!(t.collect().freed, 0);
    assert_eq!(t.stats().private_objects, objects);
}

/// Has `writer` divert the first `n` base objects with pointer slots other than the one
/// `reader` knows as `own`, writing 123,456,789 into slot 0 of each; returns them.
fn divert_others(writer: &mut Tenant, reader: &Tenant, own: Value, n: usize) -> Vec<Value> {
    let base = reader.base().clone();
    let heap = base.heap();
    let marked: Vec<Value> = heap
        .indices()
        .filter(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
        .map(Value::base)
        .filter(|&v| !reader.identical(v, own).unwrap())
        .take(n)
        .collect();
    for &v in &marked {
        writer.set_slot(v, 0, Value::int(123_456_789)).unwrap();
    }
    marked
}

/// The lanes of the shared marks: a tenant whose lane is clear on an object another tenant
/// diverted reads it in place with no look at its table, even with copies of its own; one
/// that shares the diverter's lane asks its table (through the filter), and both read the
/// base's words, never the diverter's copy.
#[test]
fn a_tenant_of_another_lane_reads_past_a_mark_without_its_table() {
    let base = base();
    let g = globals(&base);
    let heap = base.heap();
    let mut writer = Tenant::fork(&base);
    let lane = |t: &Tenant| t.lane();
    // Lanes are drawn at random: fork until one tenant shares the writer's lane and one
    // does not (bounded: each fork draws one of 22).
    let fork_where = |want: &dyn Fn(&Tenant) -> bool| {
        (0..100_000)
            .map(|_| Tenant::fork(&base))
            .find(|t| want(t))
            .expect("a fork of the lane asked for")
    };
    let mut same = fork_where(&|t| lane(t) == lane(&writer));
    let mut other = fork_where(&|t| lane(t) != lane(&writer));
    // Both have copies of their own, so both have tables with filters to consult.
    let own = same.slot(g, 1).unwrap();
    for t in [&mut same, &mut other] {
        t.set_slot(own, 0, Value::int(3)).unwrap();
    }
    let marked = divert_others(&mut writer, &same, own, 300);
    let (other_before, same_before) = (other.stats().lookups, same.stats().lookups);
    for &v in &marked {
        let want = heap.slot(v, 0).unwrap().word();
        assert_eq!(other.slot(v, 0).unwrap().word(), want, "{v:?}");
        assert_eq!(same.slot(v, 0).unwrap().word(), want, "{v:?}");
        let x = v.word().as_base().unwrap().as_u32();
        let entry = base.marks().entry(x).unwrap();
        assert_ne!(entry & lane(&writer), 0, "the writer's lane is set");
        assert_eq!(entry & lane(&other), 0, "the other lane is clear");
        // The reader reads it in place for the tenant of the other lane.
        let r = other.reader();
        assert_eq!(r.try_slot(v, 0).map(|w| w.word()), Some(want));
        assert_eq!(same.reader().slot(v, 0).unwrap().word(), want);
    }
    assert_eq!(
        other.stats().lookups,
        other_before,
        "a tenant of another lane never consults its table"
    );
    // Through a reader too, the tenant of the writer's lane reads in place wherever its
    // filter is clear: with no call to the tenant, and so no look at its table.
    let quick = marked
        .iter()
        .filter(|&&v| same.reader().try_slot(v, 0).is_some())
        .count();
    assert!(quick > 270, "{quick} of 300 read in place through a reader");
    // The writer's lane is the same tenant's: its filter answers most, its table the rest.
    let consulted = same.stats().lookups - same_before;
    assert!(
        consulted < 30,
        "{consulted} of 300 reads consulted the table"
    );
    // Each still reads its own copy, the writer its own.
    for t in [&same, &other] {
        assert_eq!(t.slot(own, 0).unwrap().as_int(), Some(3));
    }
    assert_eq!(
        writer.slot(marked[0], 0).unwrap().as_int(),
        Some(123_456_789)
    );

    // The same words read from a private object's slots: the reader settles those its
    // filter leaves by a cold call (the table's probe clears them) and answers each as the
    // tenant does, the base word itself, with nothing patched and no lookup counted.
    let holder = same
        .alloc(
            g,
            Format::Pointers,
            ObjectSize {
                slots: marked.len(),
                bytes: 0,
            },
        )
        .unwrap();
    same.set_slots(holder, 0, &marked).unwrap();
    let (lookups, patches) = (same.stats().lookups, same.stats().patches);
    let r = same.reader();
    let maybe = marked
        .iter()
        .filter(|&&v| r.try_slot(v, 0).is_none())
        .count();
    assert!(maybe > 0, "some of the words are the filter's maybes");
    for (i, &v) in marked.iter().enumerate() {
        let got = r.slot(holder, i).unwrap();
        assert_eq!(got.word(), v.word(), "slot {i}");
        assert_eq!(got.word(), same.slot(holder, i).unwrap().word(), "slot {i}");
    }
    assert_eq!(
        (same.stats().lookups, same.stats().patches),
        (lookups, patches),
        "settled without a lookup counted or a slot patched"
    );
}

#[test]
fn undiverted_reads_never_look_in_a_table_and_private_marks_hide_other_tenants() {
    let base = base();
    let g = globals(&base);
    let shared = Tenant::fork(&base);
    let mut private = Tenant::fork_with(
        &base,
        TenantConfig {
            marks: MarkPolicy::Private,
            ..TenantConfig::default()
        },
    );
    for i in 0..50 {
        shared.slot(g, i % 8).unwrap();
    }
    assert_eq!(shared.stats().lookups, 0);
    // Another tenant diverts g: the shared mark now sends `shared` off the inline path, but
    // having diverted nothing itself it has an empty table, which it does not consult; the
    // private filter does not change.
    Tenant::fork(&base).set_slot(g, 0, Value::int(1)).unwrap();
    shared.slot(g, 0).unwrap();
    private.slot(g, 0).unwrap();
    assert_eq!(shared.stats().lookups, 0);
    assert_eq!(private.stats().lookups, 0);
    // A tenant with a copy of its own consults its table only where the table's filter (8
    // bits a bucket) says maybe: of 200 objects another tenant diverted, a few.
    let mut busy = Tenant::fork(&base);
    let other = busy.slot(g, 1).unwrap();
    busy.set_slot(other, 0, Value::int(3)).unwrap();
    let mut writer = Tenant::fork(&base);
    let heap = base.heap();
    let marked = divert_others(&mut writer, &busy, other, 200);
    let before = busy.stats().lookups;
    for &v in &marked {
        let seen = busy.slot(v, 0).unwrap().word();
        assert_eq!(seen, heap.slot(v, 0).unwrap().word(), "{v:?}");
    }
    let consulted = busy.stats().lookups - before;
    assert!(
        consulted < 20,
        "{consulted} of 200 reads consulted the table"
    );
    // Its own copy, through the base reference, is one lookup a read.
    let before = busy.stats().lookups;
    assert_eq!(busy.slot(other, 0).unwrap().as_int(), Some(3));
    assert_eq!(busy.stats().lookups, before + 1);
    // The private tenant's own write is found through its filter.
    private.set_slot(g, 1, Value::int(3)).unwrap();
    assert_eq!(private.slot(g, 1).unwrap().as_int(), Some(3));
    assert_eq!(shared.slot(g, 1).unwrap().as_int(), None);
}

#[test]
fn stale_handles_and_foreign_references_are_refused() {
    let base = base();
    let g = globals(&base);
    let mut a = Tenant::fork(&base);
    let mut b = Tenant::fork(&base);
    let class = a.class_of(g).unwrap();
    let obj = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    let h = a.pin(obj).unwrap();
    assert!(matches!(b.pinned(h), Err(Error::ForeignReference { .. })));
    assert!(matches!(
        b.slot(obj, 0),
        Err(Error::ForeignReference { .. })
    ));
    assert!(matches!(
        b.set_slot(g, 0, obj),
        Err(Error::ForeignReference { .. })
    ));
    assert_eq!(b.stats().copies, 0, "the refused write copied nothing");

    a.collect();
    let survivor = a.pinned(h).unwrap();
    assert!(a.identical(survivor, obj).unwrap(), "pinned survives");
    a.unpin(h).unwrap();
    assert_eq!(a.pinned(h).unwrap_err(), Error::StaleHandle);
    a.collect();
    assert!(matches!(a.slot(obj, 0), Err(Error::Collected(_))));
    // The slot is reused by a new object; the old reference still fails.
    let newer = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    assert!(matches!(a.slot(obj, 0), Err(Error::Collected(_))));
    for e in [
        a.size(obj).err(),
        a.identity_hash(obj).err(),
        a.bytes(obj).err(),
        a.reader().size(obj).err(),
        a.reader().identity_hash(obj).err(),
        a.reader().bytes(obj).err(),
    ] {
        assert!(matches!(e, Some(Error::Collected(_))), "{e:?}");
    }
    assert!(a.slot(newer, 0).is_ok());
    let h2 = a.pin(newer).unwrap();
    assert_eq!(
        a.pinned(h).unwrap_err(),
        Error::StaleHandle,
        "old handle, reused slot"
    );
    assert!(a.pinned(h2).is_ok());
}

#[test]
fn misuse_gets_typed_errors_and_changes_nothing() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let n = t.size(g).unwrap().slots;
    let string = (0..base.heap().len() as u32)
        .map(cowheap::ObjectIndex::from_u32)
        .find(|&i| base.heap().object(i).unwrap().format == Format::Bytes)
        .map(Value::base)
        .unwrap();
    assert!(matches!(
        t.set_slot(g, n, Value::int(1)),
        Err(Error::Heap(HeapError::SlotOutOfRange { .. }))
    ));
    assert!(matches!(
        t.set_slot(string, 0, Value::int(1)),
        Err(Error::Heap(HeapError::WrongKind { .. }))
    ));
    assert!(matches!(
        t.set_bytes(g, 0, &[1]),
        Err(Error::Heap(HeapError::WrongKind { .. }))
    ));
    assert!(matches!(
        t.slot(Value::int(3), 0),
        Err(Error::Heap(HeapError::NotAnObject(_)))
    ));
    let far = Value::base(cowheap::ObjectIndex::from_u32(u32::MAX));
    assert!(matches!(
        t.slot(far, 0),
        Err(Error::Heap(HeapError::NoSuchObject { .. }))
    ));
    assert!(matches!(
        t.alloc(Value::int(1), Format::Pointers, ObjectSize::default()),
        Err(Error::Heap(HeapError::NotAnObject(_)))
    ));
    assert!(matches!(
        t.alloc(g, Format::Pointers, ObjectSize { slots: 1, bytes: 1 }),
        Err(Error::Heap(HeapError::BadLayout { .. }))
    ));
    assert!(matches!(
        t.become_forward(Value::int(1), g),
        Err(Error::Heap(HeapError::NotAnObject(_)))
    ));
    assert_eq!(
        t.stats(),
        cowheap::TenantStats::default(),
        "nothing happened"
    );
}

#[test]
fn a_quota_stops_a_write_and_leaves_the_tenant_intact() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork_with(
        &base,
        TenantConfig {
            quota: Some(200),
            ..TenantConfig::default()
        },
    );
    let size = t.size(g).unwrap();
    assert!(size.slots * 8 > 200, "globals are bigger than the quota");
    let before = t.slot(g, 0).unwrap();
    let err = t.set_slot(g, 0, Value::int(1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                quota: 200,
                used: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(t.stats(), cowheap::TenantStats::default());
    let after = t.slot(g, 0).unwrap();
    assert!(t.identical(before, after).unwrap());
    assert_eq!(t.diverted(), 0);
    // Small allocations fit until they do not.
    let class = t.class_of(g).unwrap();
    let mut made = 0;
    let err = loop {
        match t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 }) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
    };
    assert!(made > 0 && matches!(err, Error::QuotaExceeded { .. }));
    assert!(t.stats().private_bytes <= 200);
    assert_eq!(t.stats().allocations, made);
    // Raising the quota lets the write through.
    t.set_quota(None);
    t.set_slot(g, 0, Value::int(1)).unwrap();
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(1));
}

#[test]
fn the_registry_publishes_new_bases_to_new_tenants_only() {
    let old = base();
    let registry = Registry::new(old.clone());
    let early = registry.spawn();
    let newer = Base::new(synth::image(2_000, 99));
    let replaced = registry.publish(newer.clone());
    assert!(Arc::ptr_eq(&replaced, &old));
    let late = registry.spawn();
    assert_eq!(registry.with(early, |t| t.base().id()), Some(old.id()));
    assert_eq!(registry.with(late, |t| t.base().id()), Some(newer.id()));
    assert_eq!(registry.len(), 2);
    let t = registry.remove(early).unwrap();
    assert_eq!(t.base().id(), old.id());
    assert!(registry.with(early, |_| ()).is_none());
}

#[test]
fn many_tenants_on_many_threads_write_the_same_base_objects() {
    let base = base();
    let g = globals(&base);
    let registry = Registry::new(base.clone());
    let ids: Vec<_> = (0..64).map(|_| registry.spawn()).collect();
    let n = base
        .heap()
        .size(g.as_base().unwrap())
        .unwrap()
        .slots
        .min(16);
    std::thread::scope(|s| {
        for chunk in ids.chunks(16) {
            let (registry, base) = (&registry, &base);
            s.spawn(move || {
                for &id in chunk {
                    registry.with(id, |t| {
                        for i in 0..n {
                            let tag = (id.get() * 1000 + i as u64) as i64;
                            t.set_slot(g, i, Value::int(tag)).unwrap();
                            let assoc = base.heap().slot(g, i).unwrap();
                            t.set_slot(assoc, 1, Value::int(-tag)).unwrap();
                        }
                    });
                }
            });
        }
    });
    registry.par_for_each(|t| {
        for i in 0..n {
            let tag = (t.id().get() * 1000 + i as u64) as i64;
            assert_eq!(t.slot(g, i).unwrap().as_int(), Some(tag));
            let assoc = t.base().heap().slot(g, i).unwrap();
            assert_eq!(t.slot(assoc, 1).unwrap().as_int(), Some(-tag));
        }
        assert_eq!(t.stats().copies, 1 + n as u64);
    });
    // The base is untouched and every written object is marked.
    assert!(base.heap().slot(g, 0).unwrap().as_int().is_none());
    assert_eq!(base.marks().count(), 1 + n);
}

#[test]
fn small_floats_are_immediates_a_tenant_stores_and_snapshots() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    let f = Value::from(cowheap::Word::small_float_bits(0x3ff0_0000_0000_0000 >> 3).unwrap());
    t.set_slot(g, 0, f).unwrap();
    let back = t.slot(g, 0).unwrap();
    assert!(back.word().is_small_float() && back.same_word(f));
    let restored = Tenant::restore_from(&base, &t.snapshot()).unwrap();
    assert!(restored.slot(g, 0).unwrap().same_word(f));
}

#[test]
fn public_types_are_send_and_sync_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Base>();
    send_sync::<cowheap::BaseHeap>();
    // A tenant moves between threads but is used by one at a time (not Sync: its reads
    // patch slots through cells); the registry shares it behind a mutex.
    fn send<T: Send>() {}
    send::<Tenant>();
    send_sync::<Registry>();
    send_sync::<Value>();
    send_sync::<cowheap::Handle>();
    send_sync::<Error>();
}

#[test]
fn an_immediate_float_has_the_class_the_base_names_in_tenants_and_image_files() {
    let mut b = cowheap::Builder::new();
    let nil = b.add_nil();
    let float_class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
    let holder = b
        .add(float_class, Format::Pointers, vec![nil], vec![])
        .unwrap();
    b.add_root("holder", holder).unwrap();
    b.set_float_class(Some(float_class));
    let heap = b.freeze().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floats.cowheap");
    heap.save(&path).unwrap();
    let mapped = cowheap::BaseHeap::open(&path).unwrap();
    assert_eq!(mapped.fingerprint(), heap.fingerprint());
    assert!(
        mapped
            .float_class()
            .unwrap()
            .same_word(Value::from(float_class))
    );
    let f = Value::from(cowheap::Word::small_float_bits(0x3ff0_0000_0000_0000 >> 3).unwrap());
    for base in [Base::new(heap), Base::new(mapped)] {
        let t = Tenant::fork(&base);
        assert!(t.class_of(f).unwrap().same_word(Value::from(float_class)));
    }
    // A base that names no float class says so, as it does for the other immediates.
    let t = Tenant::fork(&Base::new(synth::image(100, 1)));
    assert!(matches!(t.class_of(f), Err(Error::NoImmediateClass(_))));
}

#[test]
fn reads_and_writes_of_a_copy_through_its_base_reference_each_count_one_lookup() {
    let base = base();
    let g = globals(&base);
    let mut t = Tenant::fork(&base);
    t.set_slot(g, 0, Value::int(1)).unwrap(); // the first write: the copy
    let mut last = t.stats().lookups;
    let mut step = |t: &Tenant| {
        let now = t.stats().lookups;
        let d = now - last;
        last = now;
        d
    };
    t.set_slot(g, 0, Value::int(2)).unwrap();
    assert_eq!(step(&t), 1, "set_slot");
    t.set_bytes(g, 0, &[]).ok();
    assert_eq!(step(&t), 1, "set_bytes");
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(2));
    assert_eq!(step(&t), 1, "slot");
    t.class_of(g).unwrap();
    assert_eq!(step(&t), 1, "class_of");
}
