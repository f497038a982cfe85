//! Fencing, leases and the two backends answering alike: one script of claims, renewals,
//! releases, fenced writes, segment and version writes, run on a local directory and on
//! PostgreSQL with the same clock, each answer compared; and what each backend takes as a
//! principal.

mod common;

use common::wrapped::{self, Hooks, Wrapped};
use common::{Harness, Local, Pg, n, p, real_base, t};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{Access, Claim, ManualClock, Millis, StoreError, SystemClock};
use std::sync::Arc;

fn kind<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => format!("Err({e})"),
    }
}

/// What a backend answers, call by call, for one script of fenced writes: stale, released
/// and forged claims presented to every fenced write, each with good and bad bytes.
fn fenced_answers(h: &dyn Harness) -> Vec<String> {
    let fp = real_base(h, 1_000);
    let layer = common::layer_v1(h, fp, 7);
    let clock = ManualClock::new(Millis(1_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let other = Fingerprint([6; 32]);
    s.put_base(other, &[6u8; 100]).unwrap();
    s.create_tenant(&t("x"), fp, None).unwrap();
    s.create_tenant(&t("y"), other, None).unwrap();
    let stale = s.claim(&t("x"), &n("a"), 100).unwrap();
    clock.advance(200);
    let live = s.claim(&t("x"), &n("b"), 100).unwrap();
    let forged = Claim {
        tenant: t("nope"),
        ..live.clone()
    };
    let elsewhere = s.claim(&t("y"), &n("a"), 100).unwrap();
    let mut out = Vec::new();
    for (what, c) in [
        ("stale", &stale),
        ("forged", &forged),
        ("elsewhere", &elsewhere),
    ] {
        for (bytes, number) in [
            (&b"no layer"[..], 1),
            (&layer[..], 0),
            (&layer[..], 2),
            (&layer[..], 1),
        ] {
            out.push(format!(
                "{what} version {number}: {}",
                kind(s.put_version_claimed(c, fp, number, bytes))
            ));
        }
        out.push(format!(
            "{what} segment: {}",
            kind(s.put_segment(c, SegmentId::new(1), b"seg"))
        ));
        out.push(format!("{what} renew: {}", kind(s.renew(c, 100))));
        out.push(format!("{what} state: {}", kind(s.write_state(c, b"st"))));
        out.push(format!("{what} release: {}", kind(s.release(c))));
    }
    // The live claim: a bad layer and a good one.
    out.push(kind(s.put_version_claimed(&live, fp, 1, b"no layer")));
    out.push(kind(s.put_version_claimed(&live, fp, 1, &layer)));
    // Released, then every fenced write with the released claim.
    out.push(kind(s.release(&live)));
    out.push(kind(s.put_version_claimed(&live, fp, 2, b"no layer")));
    out.push(kind(s.renew(&live, 100)));
    out.push(kind(s.suspend(&live, b"st")));
    out.push(format!(
        "{:?}",
        s.record(&t("x")).map(|r| (r.owner, r.epoch))
    ));
    out.push(format!("{:?}", s.versions(fp, 0).map(|v| v.len())));
    out
}

/// A version write fenced by a claim answers the same error on both backends whatever else
/// is wrong with it: a stale, released or forged claim is refused as such before the bytes
/// are looked at, as every other fenced write refuses it.
#[test]
fn backends_agree_on_fenced_writes_with_bad_bytes() {
    let local = fenced_answers(&Local::new());
    let pg = fenced_answers(&Pg::new());
    for (i, (l, g)) in local.iter().zip(&pg).enumerate() {
        if l != g {
            eprintln!("{i}: local {l}\n{i}: pg    {g}");
        }
    }
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
    assert!(local[0].contains("fenced"), "{local:?}");
}

/// What a backend answers when the operator adds principals of every length a
/// [`cowheap_store::PrincipalName`] takes, and when each then connects.
fn principal_lengths(h: &dyn Harness) -> Vec<String> {
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let mut out = Vec::new();
    for len in [1, 55, 56, 100, 128] {
        let name = p(&"q".repeat(len));
        out.push(format!(
            "add {len}: {}",
            kind(op.add_principal(&name, "s3cret"))
        ));
        out.push(format!(
            "open {len}: {}",
            kind(h.open(Access::principal(name, "s3cret"), Arc::new(SystemClock)))
        ));
    }
    out
}

/// A principal name no backend can hold is refused by both: PostgreSQL makes a role of
/// each principal, whose name must fit its identifiers.
#[test]
fn backends_agree_on_principal_names() {
    let local = principal_lengths(&Local::new());
    let pg = principal_lengths(&Pg::new());
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
}

/// What a backend answers, call by call, for a principal's script: its own tenant, one
/// granted to another principal, one granted to none, and a tenant that does not exist.
fn principal_answers(h: &dyn Harness) -> Vec<String> {
    let fp = real_base(h, 1_000);
    let layer = common::layer_v1(h, fp, 7);
    let clock = ManualClock::new(Millis(1_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    s.add_principal(&p("p1"), "one").unwrap();
    s.add_principal(&p("p2"), "two").unwrap();
    s.create_tenant(&t("mine"), fp, Some(&p("p1"))).unwrap();
    s.create_tenant(&t("theirs"), fp, Some(&p("p2"))).unwrap();
    s.create_tenant(&t("nobodys"), fp, None).unwrap();
    let p1 = h
        .open(Access::principal(p("p1"), "one"), Arc::new(clock.clone()))
        .unwrap();
    let mut out = Vec::new();
    let theirs = s.claim(&t("theirs"), &n("x"), 100).unwrap();
    let nobodys = s.claim(&t("nobodys"), &n("x"), 100).unwrap();
    let mine = p1.claim(&t("mine"), &n("x"), 100).unwrap();
    let d = s.write_state(&theirs, b"their state").unwrap();
    out.push(kind(p1.write_state(&mine, b"my state")));
    for (name, c) in [("mine", &mine), ("theirs", &theirs), ("nobodys", &nobodys)] {
        let tn = t(name);
        out.push(format!("{name} record: {}", kind(p1.record(&tn))));
        out.push(format!(
            "{name} claim: {}",
            kind(p1.claim(&tn, &n("y"), 100))
        ));
        out.push(format!("{name} read: {}", kind(p1.read_state(&tn, d))));
        out.push(format!("{name} segments: {}", kind(p1.segments(&tn))));
        out.push(format!(
            "{name} get segment: {}",
            kind(p1.get_segment(&tn, SegmentId::new(0)))
        ));
        out.push(format!(
            "{name} put segment: {}",
            kind(p1.put_segment(c, SegmentId::new(0), b"seg"))
        ));
        out.push(format!(
            "{name} remove segment: {}",
            kind(p1.remove_segment(c, SegmentId::new(0)))
        ));
        out.push(format!(
            "{name} retain: {}",
            kind(p1.retain_segments(c, &[]))
        ));
        out.push(format!(
            "{name} version: {}",
            kind(p1.put_version_claimed(c, fp, 1, &layer))
        ));
        out.push(format!("{name} renew: {}", kind(p1.renew(c, 100))));
        out.push(format!("{name} state: {}", kind(p1.write_state(c, b"st"))));
        out.push(format!("{name} suspend: {}", kind(p1.suspend(c, b"st"))));
        out.push(format!("{name} release: {}", kind(p1.release(c))));
    }
    out.push(format!("tenants: {:?}", p1.tenants().map(|v| v.len())));
    out.push(format!("blobs: {}", kind(p1.blob_stats())));
    out.push(format!("commit: {}", kind(p1.put_version(fp, 1, &layer))));
    out.push(format!("committers: {:?}", p1.committers(fp)));
    out.push(format!("allow: {}", kind(p1.allow_commit(fp, &p("p1")))));
    out.push(format!("base: {}", kind(p1.get_base(fp))));
    out.push(format!(
        "create: {}",
        kind(p1.create_tenant(&t("new"), fp, None))
    ));
    out.push(format!("add: {}", kind(p1.add_principal(&p("p3"), "x"))));
    out
}

/// A principal's calls are answered alike by both backends, on its own tenants and on
/// those it may not touch.
#[test]
fn backends_agree_on_a_principals_calls() {
    let local = principal_answers(&Local::new());
    let pg = principal_answers(&Pg::new());
    for (i, (l, g)) in local.iter().zip(&pg).enumerate() {
        if l != g {
            eprintln!("{i}: local {l}\n{i}: pg    {g}");
        }
    }
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
}

/// One call of a store, answering its result as text.
type Call = Box<dyn FnOnce(&cowheap_store::LocalStore) -> String + Send>;

/// A FIFO in place of a tenant's lock file in a local store (a damaged or hostile
/// directory) is an error to every call that takes the lock, at once: none hangs waiting
/// for a reader, as none hangs on a FIFO in place of a record or a blob.
#[test]
fn a_fifo_in_place_of_a_lock_file_answers_an_error_at_once() {
    use cowheap_store::{LocalStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let clock = ManualClock::new(Millis(1_000));
    let s = Arc::new(LocalStore::init(&root, Arc::new(clock.clone()), Access::Operator).unwrap());
    let fp = Fingerprint([3; 32]);
    s.put_base(fp, b"a base").unwrap();
    s.create_tenant(&t("x"), fp, None).unwrap();
    let c = s.claim(&t("x"), &n("a"), 100).unwrap();
    let lock = root.join("tenants/x.lock");
    common::fifo(&lock);
    let calls: Vec<(&str, Call)> = vec![
        ("claim", Box::new(|s| kind(s.claim(&t("x"), &n("b"), 100)))),
        ("renew", {
            let c = c.clone();
            Box::new(move |s| kind(s.renew(&c, 100)))
        }),
        ("suspend", {
            let c = c.clone();
            Box::new(move |s| kind(s.suspend(&c, b"st")))
        }),
        ("segment", {
            let c = c.clone();
            Box::new(move |s| kind(s.put_segment(&c, SegmentId::new(0), b"seg")))
        }),
        (
            "create",
            Box::new(move |s| kind(s.create_tenant(&t("x"), fp, None))),
        ),
    ];
    for (what, call) in calls {
        let s = s.clone();
        let answer = common::within(move || call(&s))
            .unwrap_or_else(|| panic!("{what} with a FIFO as the lock file hangs"));
        assert!(answer.starts_with("Err"), "{what}: {answer}");
    }
    // The record is as it was.
    let rec = s.record(&t("x")).unwrap();
    assert_eq!((rec.owner, rec.epoch.0), (Some(n("a")), 1));
}

/// Hooks on a real store: its `suspend` may land and then answer an error (an answer
/// lost), and its `record` may fail (the store cannot be asked).
#[derive(Default)]
struct Losses {
    lose_suspend: std::sync::atomic::AtomicBool,
    record_fails: std::sync::atomic::AtomicBool,
    /// Run once, when armed, as a state is read (a resume stalled while it fetches).
    on_read_state: std::sync::Mutex<Option<Hook>>,
}

/// A store that loses answers as [`Losses`] says.
type Lossy = Wrapped<Losses>;

/// A test's hook, run once.
type Hook = Box<dyn FnOnce() + Send>;

fn lossy_store(inner: Arc<dyn cowheap_store::Store>) -> Lossy {
    Wrapped::new(inner, Losses::default())
}

fn lost() -> StoreError {
    StoreError::Io {
        path: "tenants".into(),
        source: std::io::Error::other("the answer was lost"),
    }
}

impl Hooks for Losses {
    fn before(&self, call: wrapped::Call) -> cowheap_store::Result<()> {
        match call {
            wrapped::Call::Record
                if self.record_fails.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                Err(lost())
            }
            wrapped::Call::ReadState => {
                let hook = self.on_read_state.lock().unwrap().take();
                if let Some(hook) = hook {
                    hook();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn after(&self, call: wrapped::Call, ok: bool) -> cowheap_store::Result<()> {
        if call == wrapped::Call::Suspend
            && ok
            && self.lose_suspend.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(lost());
        }
        Ok(())
    }
}

/// A suspend that landed without an answer, on a node that could not read the record
/// after it either (the resident comes back unsure), is a suspend: suspending the
/// resident again, unchanged, answers the state the store holds, not `Fenced` (no other
/// node claimed the tenant, and the store keeps exactly this work). So does a registry's
/// `suspend_all`, which then holds nothing and answers no error.
fn a_suspend_tried_again_after_it_landed_unanswered(h: &dyn Harness) {
    use cowheap_store::workload::{read_mark, write_mark};
    use cowheap_store::{Node, Store, SwapRegistry};
    use std::sync::atomic::Ordering;
    let fp = real_base(h, 1_000);
    let lossy = Arc::new(lossy_store(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
    ));
    lossy.create_tenant(&t("u"), fp, None).unwrap();
    lossy.create_tenant(&t("v"), fp, None).unwrap();
    let a = Node::new(lossy.clone(), n("a"), h.scratch().join("cache-a"));
    let mut r = a.resume(&t("u")).unwrap();
    write_mark(&mut r.tenant, 5).unwrap();
    lossy.lose_suspend.store(true, Ordering::Relaxed);
    lossy.record_fails.store(true, Ordering::Relaxed);
    let f = a.try_suspend(r).unwrap_err();
    assert!(f.resident.is_unsure());
    lossy.lose_suspend.store(false, Ordering::Relaxed);
    lossy.record_fails.store(false, Ordering::Relaxed);
    let landed = lossy.record(&t("u")).unwrap();
    assert_eq!(landed.owner, None, "the first suspend landed");
    let again = a.try_suspend(*f.resident).map_err(|f| f.error);
    assert_eq!(
        again.as_ref().ok(),
        landed.state.as_ref(),
        "the suspend tried again: {again:?}"
    );
    assert_eq!(
        lossy.record(&t("u")).unwrap(),
        landed,
        "nothing more written"
    );

    // The same through a registry: the unsure resident goes at `suspend_all` with no
    // error, and the next use resumes what landed.
    let reg = SwapRegistry::new(
        Node::new(lossy.clone(), n("b"), h.scratch().join("cache-b")),
        usize::MAX,
    );
    reg.with(&t("v"), |tenant| write_mark(tenant, 6))
        .unwrap()
        .unwrap();
    lossy.lose_suspend.store(true, Ordering::Relaxed);
    lossy.record_fails.store(true, Ordering::Relaxed);
    assert!(reg.suspend_all().is_err(), "the answer lost and unsettled");
    assert_eq!(reg.resident(), 1, "kept, unsure");
    lossy.lose_suspend.store(false, Ordering::Relaxed);
    lossy.record_fails.store(false, Ordering::Relaxed);
    let done = reg.suspend_all();
    assert!(done.is_ok(), "{done:?}");
    assert_eq!(reg.resident(), 0);
    assert_eq!(
        reg.with(&t("v"), |tenant| read_mark(tenant)).unwrap(),
        Some(6)
    );
}

#[test]
fn a_suspend_tried_again_after_it_landed_unanswered_on_a_local_store() {
    a_suspend_tried_again_after_it_landed_unanswered(&Local::new());
}

#[test]
fn a_suspend_tried_again_after_it_landed_unanswered_on_postgres() {
    a_suspend_tried_again_after_it_landed_unanswered(&Pg::new());
}

/// A registry never runs a tenant it has just resumed past the lease that resume took: a
/// resume that stalls (a slow fetch of the state) until its lease has run out, while
/// another node claims the tenant, runs nothing here; the use is refused while that node
/// holds the tenant, and once it lets the tenant go the next use resumes its work. Before,
/// the registry ran the use on the tenant another node held, both running it at once.
fn a_registry_never_runs_a_tenant_resumed_past_its_lease(h: &dyn Harness) {
    use cowheap_store::workload::{read_mark, write_mark};
    use cowheap_store::{Node, Resident, Store, SwapRegistry};
    use std::sync::Mutex;
    let fp = real_base(h, 1_000);
    let clock = ManualClock::new(Millis(1_000_000));
    let open = || h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let lossy = Arc::new(lossy_store(open()));
    lossy.create_tenant(&t("r"), fp, None).unwrap();
    let b = Arc::new(Node::new(open(), n("b"), h.scratch().join("cache-b")).with_lease(1_000));
    // A state to resume from.
    let mut rb = b.resume(&t("r")).unwrap();
    write_mark(&mut rb.tenant, 1).unwrap();
    b.suspend(rb).unwrap();

    let reg = SwapRegistry::new(
        Node::new(lossy.clone(), n("a"), h.scratch().join("cache-a")).with_lease(1_000),
        usize::MAX,
    );
    // Node a's resume stalls past its lease as it reads the state; b claims the tenant.
    let taken: Arc<Mutex<Option<Resident>>> = Arc::default();
    *lossy.on_read_state.lock().unwrap() = Some(Box::new({
        let (clock, b, taken) = (clock.clone(), b.clone(), taken.clone());
        move || {
            clock.advance(1_500);
            let mut r = b.resume(&t("r")).unwrap();
            write_mark(&mut r.tenant, 2).unwrap();
            *taken.lock().unwrap() = Some(r);
        }
    }));
    let ran = std::sync::atomic::AtomicBool::new(false);
    let used = reg.with(&t("r"), |tenant| {
        ran.store(true, std::sync::atomic::Ordering::Relaxed);
        write_mark(tenant, 3)
    });
    assert!(
        !ran.load(std::sync::atomic::Ordering::Relaxed),
        "the use ran on a tenant node b holds: {used:?}"
    );
    assert!(matches!(used, Err(StoreError::Held { .. })), "{used:?}");
    assert_eq!(reg.resident(), 0);
    // b lets it go: the next use resumes b's work.
    let rb = taken.lock().unwrap().take().unwrap();
    b.suspend(rb).unwrap();
    assert_eq!(
        reg.with(&t("r"), |tenant| read_mark(tenant)).unwrap(),
        Some(2)
    );
}

#[test]
fn a_registry_never_runs_a_tenant_resumed_past_its_lease_on_a_local_store() {
    a_registry_never_runs_a_tenant_resumed_past_its_lease(&Local::new());
}

#[test]
fn a_registry_never_runs_a_tenant_resumed_past_its_lease_on_postgres() {
    a_registry_never_runs_a_tenant_resumed_past_its_lease(&Pg::new());
}
