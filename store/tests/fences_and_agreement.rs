//! Fencing, leases and the two backends answering alike: one script of claims, renewals,
//! releases, fenced writes, segment and version writes, run on a local directory and on
//! PostgreSQL with the same clock, each answer compared; and what each backend takes as a
//! principal.

mod common;

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

/// Runs `f` on a thread of its own: its answer, or `None` if it gave none in time (the
/// thread, stuck, is left behind).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
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
    std::fs::remove_file(&lock).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&lock)
        .status()
        .unwrap();
    assert!(made.success());
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
        let answer = within(move || call(&s))
            .unwrap_or_else(|| panic!("{what} with a FIFO as the lock file hangs"));
        assert!(answer.starts_with("Err"), "{what}: {answer}");
    }
    // The record is as it was.
    let rec = s.record(&t("x")).unwrap();
    assert_eq!((rec.owner, rec.epoch.0), (Some(n("a")), 1));
}
