//! A version write whose answer is lost: the store wrote the version but reported a failure
//! (as a connection dropped at the commit, or a directory fsync failing after the record
//! was linked, would). The committing node finds its own layer there and says so with a
//! typed error; the tenant, aborted, stands on the version holding its change. A failure
//! that wrote nothing stays that failure, and nothing is there. The same for a suspend: one
//! that landed without an answer is a suspend, and a node that cannot tell keeps the tenant
//! only until a renewal says whether it still holds it. And a version the store took whose
//! making the allocator then refused on the node is reported as landed too.

mod common;

use common::wrapped::{Call, Hooks, Wrapped};
use common::{Harness, Local, Pg, n, real_base};
use cowheap_heap::{Format, Value};
use cowheap_store::workload::{read_mark, slot_objects, write_mark};
use cowheap_store::{Access, SystemClock};
use cowheap_store::{Digest, Node, Result, Store, StoreError, TenantName};
use cowheap_tenants::commit::{CommitError, CommitMode};
use cowheap_testkit::Refusing;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

#[global_allocator]
static ALLOC: Refusing = Refusing;

/// Hooks on a real store: `put_version` fails as told: 0 not at all, 1 after writing the
/// version, 2 before writing it, 3 as if another node had always just won.
#[derive(Debug)]
struct Faults {
    mode: AtomicU8,
    /// `suspend` fails as told: 0 not at all, 1 after suspending, 2 before.
    suspend_mode: AtomicU8,
    /// `record` fails (the store cannot be asked).
    record_fails: AtomicBool,
    /// After a version write that succeeded, the allocator refuses the large allocation
    /// this many after it on the writing thread (`usize::MAX`: none).
    refuse_after_put: AtomicUsize,
}

/// A store that fails as its [`Faults`] say.
type Flaky = Wrapped<Faults>;

fn lost() -> StoreError {
    StoreError::Io {
        path: "versions".into(),
        source: std::io::Error::other("the answer was lost"),
    }
}

impl Hooks for Faults {
    fn before(&self, call: Call) -> Result<()> {
        match call {
            Call::PutVersion { origin, number } | Call::PutVersionClaimed { origin, number } => {
                match self.mode.load(Ordering::Relaxed) {
                    2 => Err(lost()),
                    3 => Err(StoreError::VersionConflict {
                        origin,
                        number,
                        newest: number,
                    }),
                    _ => Ok(()),
                }
            }
            Call::Suspend if self.suspend_mode.load(Ordering::Relaxed) == 2 => Err(lost()),
            Call::Record if self.record_fails.load(Ordering::Relaxed) => Err(lost()),
            _ => Ok(()),
        }
    }

    fn after(&self, call: Call, ok: bool) -> Result<()> {
        match call {
            Call::PutVersion { .. } | Call::PutVersionClaimed { .. } if ok => {
                if self.mode.load(Ordering::Relaxed) == 1 {
                    return Err(lost());
                }
                let n = self.refuse_after_put.load(Ordering::Relaxed);
                if n != usize::MAX {
                    cowheap_testkit::refuse_after(n);
                }
                Ok(())
            }
            Call::Suspend if ok && self.suspend_mode.load(Ordering::Relaxed) == 1 => Err(lost()),
            _ => Ok(()),
        }
    }
}

fn lost_answer(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let flaky = Arc::new(Flaky::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        Faults {
            mode: AtomicU8::new(2),
            suspend_mode: AtomicU8::new(0),
            record_fails: AtomicBool::new(false),
            refuse_after_put: AtomicUsize::new(usize::MAX),
        },
    ));
    let node = Node::new(flaky.clone(), n("a"), h.scratch().join("cache-a"));
    let x = slot_objects(&node.base(fp).unwrap(), 1)[0];
    let repo = node.repository(fp).unwrap();
    let mut t = repo.fork();
    t.set_slot(x, 0, Value::int(41)).unwrap();

    // Nothing written: the store's error stands, and nothing is there.
    assert!(matches!(
        node.commit(&mut t, CommitMode::WriteWrite, &[]),
        Err(StoreError::Io { .. })
    ));
    assert!(flaky.versions(fp, 0).unwrap().is_empty());
    assert_eq!(repo.current().version(), 0);

    // Written, but the answer lost: the node finds its layer and applies the version.
    flaky.mode.store(1, Ordering::Relaxed);
    match node.commit(&mut t, CommitMode::WriteWrite, &[]) {
        Err(StoreError::CommitLanded { version, source }) => {
            assert_eq!(version, 1);
            assert!(matches!(*source, StoreError::Io { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.current().version(), 1);
    assert_eq!(
        t.slot(x, 0).unwrap().as_int(),
        Some(41),
        "the tenant keeps its change"
    );
    repo.abort(&mut t);
    assert_eq!(t.base().version(), 1);
    assert_eq!(
        t.slot(x, 0).unwrap().as_int(),
        Some(41),
        "the version holds it"
    );

    // Another node sees exactly that version.
    let other = Node::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        n("b"),
        h.scratch().join("cache-b"),
    );
    let v = other.sync(fp).unwrap();
    assert_eq!(v.fingerprint(), repo.current().fingerprint());
    flaky.mode.store(0, Ordering::Relaxed);
    t.set_slot(x, 0, Value::int(42)).unwrap();
    assert_eq!(
        node.commit(&mut t, CommitMode::WriteWrite, &[])
            .unwrap()
            .version(),
        2
    );

    // A node that loses every race gives up after a bounded number of tries, writing
    // nothing, and its tenant keeps its change.
    flaky.mode.store(3, Ordering::Relaxed);
    t.set_slot(x, 0, Value::int(43)).unwrap();
    assert!(matches!(
        node.commit(&mut t, CommitMode::WriteWrite, &[]),
        Err(StoreError::CommitRaced { tries }) if tries == cowheap_store::MAX_COMMIT_TRIES
    ));
    assert_eq!(flaky.versions(fp, 0).unwrap().len(), 2);
    assert_eq!(t.slot(x, 0).unwrap().as_int(), Some(43));
}

#[test]
fn a_version_written_without_an_answer_is_reported_as_landed_on_a_local_store() {
    lost_answer(&Local::new());
}

#[test]
fn a_version_written_without_an_answer_is_reported_as_landed_on_postgres() {
    lost_answer(&Pg::new());
}

fn lost_suspend_answer(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let flaky = Arc::new(Flaky::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        Faults {
            mode: AtomicU8::new(0),
            suspend_mode: AtomicU8::new(2),
            record_fails: AtomicBool::new(false),
            refuse_after_put: AtomicUsize::new(usize::MAX),
        },
    ));
    let name = TenantName::new("t1").unwrap();
    flaky.create_tenant(&name, fp, None).unwrap();
    let a = Node::new(flaky.clone(), n("a"), h.scratch().join("cache-a"));
    let b = Node::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        n("b"),
        h.scratch().join("cache-b"),
    );

    // Nothing written: the error stands, and the claim is still held by a.
    let mut r = a.resume(&name).unwrap();
    write_mark(&mut r.tenant, 5).unwrap();
    let f = a.try_suspend(r).unwrap_err();
    assert!(matches!(f.error, StoreError::Io { .. }), "{:?}", f.error);
    assert!(!f.resident.is_unsure());
    assert_eq!(flaky.record(&name).unwrap().owner, Some(n("a")));
    flaky.suspend_mode.store(0, Ordering::Relaxed);
    a.suspend(*f.resident).unwrap();

    // Written, but the answer lost: the record says it landed, and that is a suspend.
    flaky.suspend_mode.store(1, Ordering::Relaxed);
    let mut r = a.resume(&name).unwrap();
    write_mark(&mut r.tenant, 6).unwrap();
    let d = a.try_suspend(r).expect("a suspend that landed");
    let rec = flaky.record(&name).unwrap();
    assert_eq!((rec.owner, rec.state), (None, Some(d)));
    let r = b.resume(&name).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(6));
    b.suspend(r).unwrap();

    // Written, the answer lost, and the record unreadable too: the resident comes back
    // unsure, and a renewal (once the store answers) says it is no longer held.
    let mut r = a.resume(&name).unwrap();
    write_mark(&mut r.tenant, 7).unwrap();
    flaky.record_fails.store(true, Ordering::Relaxed);
    let f = a.try_suspend(r).unwrap_err();
    assert!(f.resident.is_unsure());
    flaky.record_fails.store(false, Ordering::Relaxed);
    let mut r = *f.resident;
    assert!(matches!(a.renew(&mut r), Err(StoreError::Fenced { .. })));
    let r = b.resume(&name).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(7), "the state that landed");
    b.suspend(r).unwrap();

    // Nothing written and the record unreadable: unsure, and the renewal settles it the
    // other way: still held, so the tenant goes on here.
    flaky.suspend_mode.store(2, Ordering::Relaxed);
    let mut r = a.resume(&name).unwrap();
    write_mark(&mut r.tenant, 8).unwrap();
    flaky.record_fails.store(true, Ordering::Relaxed);
    let f = a.try_suspend(r).unwrap_err();
    assert!(f.resident.is_unsure());
    flaky.record_fails.store(false, Ordering::Relaxed);
    flaky.suspend_mode.store(0, Ordering::Relaxed);
    let mut r = *f.resident;
    a.renew(&mut r).unwrap();
    assert!(!r.is_unsure());
    a.suspend(r).unwrap();
    let r = b.resume(&name).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(8));
}

#[test]
fn a_suspend_without_an_answer_is_settled_by_the_record_on_a_local_store() {
    lost_suspend_answer(&Local::new());
}

#[test]
fn a_suspend_without_an_answer_is_settled_by_the_record_on_postgres() {
    lost_suspend_answer(&Pg::new());
}

/// The store takes the version, and then the node's making of it is refused by the
/// allocator (the layer's check and map, reserved fallibly): the commit is reported as
/// landed, the version is the store's newest, and the tenant, aborted onto it, reads its
/// change. Each large allocation after the write is refused in turn, until one run makes
/// the version with none refused.
fn refused_after_the_write(h: &dyn Harness) {
    let fp = real_base(h, 5_000);
    let mut landed = 0;
    for k in 0.. {
        let flaky = Arc::new(Flaky::new(
            h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
            Faults {
                mode: AtomicU8::new(0),
                suspend_mode: AtomicU8::new(0),
                record_fails: AtomicBool::new(false),
                refuse_after_put: AtomicUsize::new(k),
            },
        ));
        let name = format!("a{k}");
        let node = Node::new(flaky.clone(), n(&name), h.scratch().join(&name));
        let repo = node.repository(fp).unwrap();
        node.sync(fp).unwrap();
        let before = repo.current().version();
        let xs = slot_objects(&node.base(fp).unwrap(), 1_000);
        let mut t = repo.fork();
        let mark = i64::try_from(k).unwrap() * 10_000;
        for (i, &x) in (0..).zip(&xs) {
            t.set_slot(x, 0, Value::int(mark + i)).unwrap();
        }
        let refused = cowheap_testkit::refused();
        let r = node.commit(&mut t, CommitMode::WriteWrite, &[]);
        cowheap_testkit::disarm();
        let stored = flaky.versions(fp, before).unwrap().len();
        if cowheap_testkit::refused() == refused {
            assert_eq!(r.unwrap().version(), before + 1);
            assert_eq!(stored, 1);
            eprintln!("{k} large allocations after the write");
            break;
        }
        // The version was written before any refusal: it is there, and the answer says so.
        assert_eq!(stored, 1, "refusal {k}");
        match r {
            Err(StoreError::CommitLanded { version, source }) => {
                assert_eq!(version, before + 1, "refusal {k}");
                assert!(
                    matches!(
                        &*source,
                        StoreError::Commit(e) if matches!(
                            **e,
                            CommitError::Tenant(cowheap_tenants::Error::OutOfMemory { .. })
                        )
                    ),
                    "refusal {k}: {source:?}"
                );
                landed += 1;
                repo.abort(&mut t);
            }
            other => panic!("refusal {k} answered {other:?}"),
        }
        assert_eq!(t.base().version(), before + 1, "refusal {k}");
        for (i, &x) in (0..).zip(&xs) {
            assert_eq!(
                t.slot(x, 0).unwrap().as_int(),
                Some(mark + i),
                "refusal {k}"
            );
        }
        // Another node sees exactly that version.
        let other = Node::new(
            h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
            n(&format!("b{k}")),
            h.scratch().join(format!("b{k}")),
        );
        assert_eq!(
            other.sync(fp).unwrap().fingerprint(),
            repo.current().fingerprint()
        );
    }
    eprintln!("{landed} refusals after the write, each reported as landed");
    assert!(landed >= 1, "no refusal after the write failed the commit");
}

#[test]
fn a_version_the_allocator_refuses_after_the_write_is_reported_as_landed() {
    refused_after_the_write(&Local::new());
}

/// A tenant whose snapshot runs to a few large buffers: a 64 KiB byte object held by a
/// root, beside the mark.
fn with_bulk(node: &Node, name: &TenantName, mark: i64) -> cowheap_store::Resident {
    let mut r = node.resume(name).unwrap();
    write_mark(&mut r.tenant, mark).unwrap();
    let t = &mut r.tenant;
    let class = t
        .class_of(t.root(cowheap_store::workload::MARK_ROOT).unwrap())
        .unwrap();
    let bulk = t
        .alloc_with(class, Format::Bytes, &[], &[7; 65_536])
        .unwrap();
    t.set_root("bulk", bulk).unwrap();
    r
}

/// Resumes `name` on `node` with each large allocation of the resume refused in turn, until
/// one refuses none: each refused resume must answer `OutOfMemory`, release its claim and
/// leave the record on state `d`. Answers the resident and the number of refusals.
fn resume_refusing_each(
    node: &Node,
    store: &dyn Store,
    name: &TenantName,
    d: Digest,
) -> (cowheap_store::Resident, usize) {
    let mut refusals = 0;
    loop {
        let (answer, refused) = cowheap_testkit::refusing_the(refusals, || node.resume(name));
        if !refused {
            return (answer.expect("a resume with nothing refused"), refusals);
        }
        let e = answer.expect_err("a refused resume");
        assert!(
            matches!(e, StoreError::OutOfMemory { .. }),
            "refusal {refusals}: {e:?}"
        );
        let rec = store.record(name).unwrap();
        assert_eq!(
            (rec.owner, rec.state),
            (None, Some(d)),
            "refusal {refusals}"
        );
        refusals += 1;
    }
}

/// A suspend, a checkpoint, a state read and a resume whose large buffers the allocator
/// refuses answer `OutOfMemory`: a suspended resident comes back as it was and still
/// claimed, a resume releases its claim, and the store keeps the last complete state.
/// Each large allocation is refused in turn until one run refuses none; then another node
/// resumes what the last run wrote.
#[test]
fn buffers_the_allocator_refuses_leave_the_tenant_and_the_store_as_they_were() {
    let h = Local::new();
    let fp = real_base(&h, 1_000);
    let store = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let name = TenantName::new("t1").unwrap();
    store.create_tenant(&name, fp, None).unwrap();
    let a = Node::new(store.clone(), n("a"), h.scratch().join("cache-a"));
    let r = with_bulk(&a, &name, 5);
    let first = a.suspend(r).unwrap();

    let mut r = with_bulk(&a, &name, 6);
    let mut refusals = 0;
    for k in 0.. {
        let (answer, refused) = cowheap_testkit::refusing_the(k, || a.try_suspend(r));
        if !refused {
            answer.expect("a suspend with nothing refused");
            break;
        }
        let f = answer.expect_err("a refused suspend");
        assert!(
            matches!(f.error, StoreError::OutOfMemory { .. }),
            "refusal {k}: {:?}",
            f.error
        );
        assert!(!f.resident.is_unsure(), "refusal {k}");
        let rec = store.record(&name).unwrap();
        assert_eq!(rec.owner, Some(n("a")), "refusal {k}: still claimed");
        assert_eq!(rec.state, Some(first), "refusal {k}: the last state stands");
        assert_eq!(read_mark(&f.resident.tenant), Some(6), "refusal {k}");
        r = *f.resident;
        refusals += 1;
    }
    assert!(refusals >= 1, "no large allocation in a suspend");
    eprintln!("a suspend met {refusals} large allocations, each refused in turn");

    // A checkpoint likewise.
    let mut r = with_bulk(&a, &name, 7);
    let before = store.record(&name).unwrap().state;
    let (answer, refused) = cowheap_testkit::refusing_the(0, || a.checkpoint(&mut r));
    assert!(refused);
    assert!(
        matches!(answer, Err(StoreError::OutOfMemory { .. })),
        "{answer:?}"
    );
    assert_eq!(store.record(&name).unwrap().state, before);
    assert_eq!(read_mark(&r.tenant), Some(7));
    let d = a.suspend(r).unwrap();

    // Reading the state back: its buffer refused, a typed error and nothing else.
    let (answer, refused) = cowheap_testkit::refusing_the(0, || store.read_state(&name, d));
    assert!(refused);
    assert!(
        matches!(answer, Err(StoreError::OutOfMemory { .. })),
        "{answer:?}"
    );

    // A resume refused anywhere (the state's buffer, the restored objects, the keys'
    // records, the table) releases the claim and leaves the record as it was. Node a holds
    // the base already, so only the resume's own allocations are met.
    let (r, refusals) = resume_refusing_each(&a, &*store, &name, d);
    assert!(refusals >= 2, "{refusals} large allocations in a resume");
    eprintln!("a resume met {refusals} large allocations, each refused in turn");
    assert_eq!(read_mark(&r.tenant), Some(7));
    a.suspend(r).unwrap();

    let b = Node::new(store.clone(), n("b"), h.scratch().join("cache-b"));
    let r = b.resume(&name).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(7));
    let bulk = r.tenant.root("bulk").unwrap();
    assert_eq!(r.tenant.bytes(bulk).unwrap(), &[7; 65_536][..]);
}

/// A part of `n` members beside its root, under the named root "part": the root's slot
/// `i` holds a new object whose one slot is `i`. Answers the root.
fn big_part(t: &mut cowheap_tenants::Tenant, n: usize) -> Value {
    let class = t
        .class_of(t.root(cowheap_store::workload::MARK_ROOT).unwrap())
        .unwrap();
    let members: Vec<Value> = (0..n)
        .map(|i| {
            let i = i64::try_from(i).unwrap();
            t.alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
                .unwrap()
        })
        .collect();
    let root = t
        .alloc_with(class, Format::Pointers, &members, &[])
        .unwrap();
    t.set_root("part", root).unwrap();
    root
}

/// The ids of the segments out of the resident's tenant.
fn out_ids(r: &cowheap_store::Resident) -> Vec<cowheap_segment::swap::SegmentId> {
    r.swapper()
        .swapped()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Whether the part's members read back through its root (faulting it in if it is out).
fn check_part(t: &mut cowheap_tenants::Tenant, n: usize) {
    let root = t.root("part").unwrap();
    for i in 0..n {
        let member = t.with_faults(|t| t.slot(root, i)).unwrap();
        let int = t.with_faults(|t| t.slot(member, 0)).unwrap();
        assert_eq!(int.as_int(), Some(i64::try_from(i).unwrap()), "member {i}");
    }
}

/// With a segment out, the records a state carries beside its snapshot grow with the
/// segment's members: a suspend whose records' lists the allocator refuses, and a resume
/// whose lists (the frame's decoding, the swapper's taking them over) it refuses, answer
/// `OutOfMemory`, as for the snapshot's buffers. The suspended resident comes back with its
/// segment still out, the resume releases its claim, and the store keeps the last state.
/// Then a resume with nothing refused faults the segment in from the store.
#[test]
fn records_of_segments_out_the_allocator_refuses_leave_the_tenant_and_the_store_as_they_were() {
    const MEMBERS: usize = 600;
    let h = Local::new();
    let fp = real_base(&h, 1_000);
    let store = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let name = TenantName::new("t1").unwrap();
    store.create_tenant(&name, fp, None).unwrap();
    let a = Node::new(store.clone(), n("a"), h.scratch().join("cache-a"));
    let mut r = a.resume(&name).unwrap();
    write_mark(&mut r.tenant, 1).unwrap();
    let part = big_part(&mut r.tenant, MEMBERS);
    let out = r.swap_out(&[part]).unwrap();
    assert_eq!((out.objects, out.roots), (MEMBERS + 1, 1));
    let first = a.checkpoint(&mut r).unwrap();
    write_mark(&mut r.tenant, 2).unwrap();

    let mut refusals = 0;
    let d = loop {
        let (answer, refused) = cowheap_testkit::refusing_the(refusals, || a.try_suspend(r));
        if !refused {
            break answer.expect("a suspend with nothing refused");
        }
        let f = answer.expect_err("a refused suspend");
        assert!(
            matches!(f.error, StoreError::OutOfMemory { .. }),
            "refusal {refusals}: {:?}",
            f.error
        );
        let rec = store.record(&name).unwrap();
        assert_eq!(rec.owner, Some(n("a")), "refusal {refusals}: still claimed");
        assert_eq!(rec.state, Some(first), "refusal {refusals}: the last state");
        r = *f.resident;
        assert_eq!(read_mark(&r.tenant), Some(2), "refusal {refusals}");
        assert_eq!(out_ids(&r), vec![out.id], "refusal {refusals}");
        assert_eq!(r.tenant.stubs().count(), MEMBERS + 1, "refusal {refusals}");
        refusals += 1;
    };
    // The records' lists (the members' words the largest) and the frame, beside the
    // snapshot's own buffers.
    assert!(refusals >= 3, "{refusals} large allocations in a suspend");
    eprintln!("a suspend met {refusals} large allocations, each refused in turn");

    let (mut r, refusals) = resume_refusing_each(&a, &*store, &name, d);
    assert!(refusals >= 3, "{refusals} large allocations in a resume");
    eprintln!("a resume met {refusals} large allocations, each refused in turn");
    assert_eq!(read_mark(&r.tenant), Some(2));
    assert_eq!(out_ids(&r), vec![out.id]);
    check_part(&mut r.tenant, MEMBERS);
    assert_eq!(out_ids(&r), vec![]);
    assert_eq!(r.tenant.stubs().count(), 0);
    a.suspend(r).unwrap();
}
