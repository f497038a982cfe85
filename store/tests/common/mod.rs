//! The conformance suite: one set of checks every backend must pass, generic over a
//! [`Harness`] that makes a fresh store of that backend. `tests/local.rs` and `tests/pg.rs`
//! call each function.

#![allow(dead_code, reason = "each test binary uses part of the shared suite")]

use cowheap_heap::Format;
use cowheap_heap::Value;
use cowheap_heap::{Fingerprint, synth};
use cowheap_segment::swap::SwapError;
use cowheap_store::workload::{read_mark, slot_objects, write_mark};
use cowheap_store::{
    Access, Clock, Digest, Epoch, ManualClock, Millis, Node, NodeName, PrincipalName, Store,
    StoreError, SystemClock, TenantName,
};
use cowheap_store::{LocalStore, PgServer, PgStore};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitError, CommitMode, CommitRights, Repository};
use cowheap_tenants::hosts::{HostError, HostPlugin, HostPlugins};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

pub(crate) mod wrapped;

/// How a test damages a blob behind the store's back.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Damage {
    /// Cut the last bytes off.
    Truncate,
    /// Flip one bit in the middle.
    Flip,
}

/// One fresh store of a backend.
pub(crate) trait Harness: Sync {
    /// A new handle on this store.
    fn open(&self, access: Access, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError>;
    /// The store's address, for node processes.
    fn address(&self) -> String;
    /// Damages blob `d`.
    fn damage(&self, d: &Digest, how: Damage);
    /// A scratch directory that lives as long as the store.
    fn scratch(&self) -> &Path;
}

pub(crate) fn t(name: &str) -> TenantName {
    TenantName::new(name).unwrap()
}

pub(crate) fn n(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

pub(crate) fn p(name: &str) -> PrincipalName {
    PrincipalName::new(name).unwrap()
}

fn op(h: &dyn Harness) -> Arc<dyn Store> {
    h.open(Access::Operator, Arc::new(SystemClock)).unwrap()
}

fn fake_base(store: &dyn Store, seed: u8) -> Fingerprint {
    let fp = Fingerprint([seed; 32]);
    store.put_base(fp, &[seed; 1000]).unwrap();
    fp
}

/// A real base (a generated image) in the store; returns its fingerprint.
pub(crate) fn real_base(h: &dyn Harness, objects: usize) -> Fingerprint {
    let path = h.scratch().join(format!("base-{objects}.cowheap"));
    synth::image(objects, 1).save(&path).unwrap();
    node(h, "setup", Access::Operator)
        .put_base_file(&path)
        .unwrap()
}

/// An operator's node `name` whose clock is past every lease: it may claim any tenant,
/// whoever held it.
pub(crate) fn late_node(h: &dyn Harness, name: &str) -> Node {
    let clock = ManualClock::new(Millis(u64::MAX / 4));
    Node::new(
        h.open(Access::Operator, Arc::new(clock)).unwrap(),
        n(name),
        h.scratch().join(format!("cache-{name}")),
    )
}

pub(crate) fn node(h: &dyn Harness, name: &str, access: Access) -> Node {
    let store = h.open(access, Arc::new(SystemClock)).unwrap();
    Node::new(store, n(name), h.scratch().join(format!("cache-{name}")))
}

/// The bytes of version 1 of base `fp`'s history (slot 0 of one object set to `value`), as
/// a commit makes them.
pub(crate) fn layer_v1(h: &dyn Harness, fp: Fingerprint, value: i64) -> Vec<u8> {
    let base = node(h, "layer-maker", Access::Operator).base(fp).unwrap();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut changed = repo.fork();
    changed
        .set_slot(slot_objects(&base, 1)[0], 0, Value::int(value))
        .unwrap();
    let mut layer = Vec::new();
    repo.commit_through(&mut changed, "x", CommitMode::WriteWrite, &[], |l| {
        layer = l.to_bytes();
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    layer
}

/// Blobs: written once by digest, read back verified; a missing one is a typed error.
pub(crate) fn blobs_and_dedup(h: &dyn Harness) {
    let s = op(h);
    let before = s.blob_stats().unwrap();
    let fp = Fingerprint([7; 32]);
    let image = vec![42u8; 4096];
    let d1 = s.put_base(fp, &image).unwrap();
    let d2 = s.put_base(fp, &image).unwrap();
    // The same bytes under another base name are still one blob.
    let d3 = s.put_base(Fingerprint([8; 32]), &image).unwrap();
    assert_eq!(d1, d2);
    assert_eq!(d1, d3);
    assert_eq!(d1, Digest::of(&image));
    let after = s.blob_stats().unwrap();
    assert_eq!(after.count, before.count + 1);
    assert_eq!(after.bytes, before.bytes + 4096);
    assert_eq!(s.get_base(fp).unwrap(), image);
    assert_eq!(
        s.bases().unwrap(),
        vec![Fingerprint([7; 32]), Fingerprint([8; 32])]
    );
    assert!(matches!(
        s.get_base(Fingerprint([9; 32])),
        Err(StoreError::BaseMissing { .. })
    ));

    // Two tenants whose states are the same bytes share one blob.
    for name in ["a", "b"] {
        s.create_tenant(&t(name), fp, None).unwrap();
        let c = s.claim(&t(name), &n("n1"), 10_000).unwrap();
        s.write_state(&c, b"the same state").unwrap();
        s.release(&c).unwrap();
    }
    assert_eq!(s.blob_stats().unwrap().count, after.count + 1);
    let d = s.record(&t("a")).unwrap().state.unwrap();
    assert_eq!(s.record(&t("b")).unwrap().state, Some(d));
    assert_eq!(s.read_state(&t("a"), d).unwrap(), b"the same state");
    // Only the tenant's latest state is readable through it.
    assert!(matches!(
        s.read_state(&t("a"), Digest::of(b"other")),
        Err(StoreError::BlobMissing { .. })
    ));
}

/// Records: created suspended at epoch 0, unique, bound to a base the store has.
pub(crate) fn records(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 1);
    let r = s.create_tenant(&t("alice"), fp, None).unwrap();
    assert_eq!(r.epoch, Epoch(0));
    assert_eq!(r.owner, None);
    assert_eq!(r.state, None);
    assert_eq!(r.base, fp);
    assert_eq!(s.record(&t("alice")).unwrap(), r);
    assert!(matches!(
        s.create_tenant(&t("alice"), fp, None),
        Err(StoreError::TenantExists { .. })
    ));
    assert!(matches!(
        s.create_tenant(&t("bob"), Fingerprint([99; 32]), None),
        Err(StoreError::BaseMissing { .. })
    ));
    assert!(matches!(
        s.record(&t("bob")),
        Err(StoreError::TenantMissing { .. })
    ));
    s.create_tenant(&t("carol"), fp, None).unwrap();
    let names: Vec<_> = s.tenants().unwrap().into_iter().map(|r| r.tenant).collect();
    assert_eq!(names, vec![t("alice"), t("carol")]);
}

/// Claims: each moves the epoch on by one; a held tenant refuses a second claim; a
/// released one can be claimed by another node, which sees the state written before.
pub(crate) fn claims_and_epochs(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 1);
    s.create_tenant(&t("x"), fp, None).unwrap();
    let c1 = s.claim(&t("x"), &n("a"), 60_000).unwrap();
    assert_eq!(c1.epoch, Epoch(1));
    assert_eq!(c1.state, None);
    match s.claim(&t("x"), &n("b"), 60_000) {
        Err(StoreError::Held { owner, epoch, .. }) => {
            assert_eq!(owner, n("a"));
            assert_eq!(epoch, Epoch(1));
        }
        other => panic!("second claim: {other:?}"),
    }
    // Claiming one's own live claim again is refused too.
    assert!(matches!(
        s.claim(&t("x"), &n("a"), 60_000),
        Err(StoreError::Held { .. })
    ));
    let d = s.write_state(&c1, b"state one").unwrap();
    let rec = s.record(&t("x")).unwrap();
    assert_eq!(
        (rec.state, rec.owner.clone(), rec.epoch),
        (Some(d), Some(n("a")), Epoch(1))
    );
    s.release(&c1).unwrap();
    assert_eq!(s.record(&t("x")).unwrap().owner, None);
    let c2 = s.claim(&t("x"), &n("b"), 60_000).unwrap();
    assert_eq!(c2.epoch, Epoch(2));
    assert_eq!(c2.state, Some(d));
    assert_eq!(s.read_state(&t("x"), d).unwrap(), b"state one");
    let renewed = s.renew(&c2, 120_000).unwrap();
    assert!(renewed.lease_expiry > c2.lease_expiry);
    assert_eq!(renewed.epoch, Epoch(2));

    // Suspend: the state written and the tenant released in one step.
    let d2 = s.suspend(&renewed, b"state two").unwrap();
    let rec = s.record(&t("x")).unwrap();
    assert_eq!(
        (rec.state, rec.owner, rec.epoch),
        (Some(d2), None, Epoch(2))
    );
    // A second suspend on the same claim is fenced and changes nothing.
    assert!(matches!(
        s.suspend(&renewed, b"state three"),
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(s.record(&t("x")).unwrap().state, Some(d2));
    assert_eq!(s.read_state(&t("x"), d2).unwrap(), b"state two");
}

/// Many threads, each with its own handle, claim one tenant at once: exactly one wins.
pub(crate) fn resume_race_threads(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 1);
    for round in 0..5 {
        let tenant = t(&format!("race-{round}"));
        s.create_tenant(&tenant, fp, None).unwrap();
        let threads = 8;
        let handles: Vec<_> = (0..threads).map(|_| op(h)).collect();
        let barrier = Barrier::new(threads);
        let results: Vec<_> = std::thread::scope(|sc| {
            let joins: Vec<_> = handles
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let (barrier, tenant) = (&barrier, &tenant);
                    sc.spawn(move || {
                        barrier.wait();
                        st.claim(tenant, &n(&format!("node{i}")), 60_000)
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {results:?}");
        assert_eq!(wins[0].epoch, Epoch(1));
        for r in &results {
            assert!(
                matches!(r, Ok(_) | Err(StoreError::Held { .. })),
                "a loser gets Held: {r:?}"
            );
        }
        assert_eq!(s.record(&tenant).unwrap().owner, Some(wins[0].node.clone()));
    }
}

/// The node process built with this crate.
pub(crate) fn node_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cowheap-store-node"))
}

/// Several processes claim one tenant at once: exactly one wins.
pub(crate) fn resume_race_processes(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 1);
    for round in 0..3 {
        let tenant = format!("prace-{round}");
        s.create_tenant(&t(&tenant), fp, None).unwrap();
        let children: Vec<_> = (0..6)
            .map(|i| {
                Command::new(node_exe())
                    .args([
                        &h.address(),
                        "-",
                        "-",
                        "claim",
                        &tenant,
                        &format!("p{i}"),
                        "60000",
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let mut won = 0;
        for o in &outs {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "{text} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            if text.starts_with("won ") {
                won += 1;
                assert_eq!(text.trim(), "won 1");
            } else {
                assert!(text.starts_with("held p"), "{text}");
            }
        }
        assert_eq!(won, 1, "round {round}");
        assert_eq!(s.record(&t(&tenant)).unwrap().epoch, Epoch(1));
    }
}

/// A node that lost its claim (its lease ran out and another node claimed) can write
/// nothing: state, renewal and release are all fenced, and the newer work stays.
pub(crate) fn fencing(h: &dyn Harness) {
    let clock = ManualClock::new(Millis(1_000_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let fp = fake_base(&*s, 1);
    s.create_tenant(&t("f"), fp, None).unwrap();
    let old = s.claim(&t("f"), &n("a"), 1_000).unwrap();
    let d_old = s.write_state(&old, b"a's work").unwrap();
    clock.advance(5_000);
    let new = s.claim(&t("f"), &n("b"), 1_000).unwrap();
    assert_eq!(new.epoch, Epoch(2));
    let d_new = s.write_state(&new, b"b's newer work").unwrap();
    let blobs = s.blob_stats().unwrap();
    for r in [
        s.write_state(&old, b"a's stale work").map(|_| ()),
        s.suspend(&old, b"a's stale work").map(|_| ()),
        s.renew(&old, 1_000).map(|_| ()),
        s.release(&old),
    ] {
        match r {
            Err(StoreError::Fenced { held, current, .. }) => {
                assert_eq!((held, current), (Epoch(1), Epoch(2)));
            }
            other => panic!("stale node: {other:?}"),
        }
    }
    assert_ne!(d_old, d_new);
    let rec = s.record(&t("f")).unwrap();
    assert_eq!(
        (rec.state, rec.owner, rec.epoch),
        (Some(d_new), Some(n("b")), Epoch(2))
    );
    assert_eq!(s.read_state(&t("f"), d_new).unwrap(), b"b's newer work");
    // The fenced write left no blob behind.
    assert_eq!(s.blob_stats().unwrap(), blobs);
    // A released tenant fences its last holder too.
    s.release(&new).unwrap();
    assert!(matches!(
        s.write_state(&new, b"after release"),
        Err(StoreError::Fenced { .. })
    ));
}

/// Leases run out on the injected clock: held until the expiry, claimable from then on.
pub(crate) fn lease_expiry(h: &dyn Harness) {
    let clock = ManualClock::new(Millis(5_000_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let other = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let fp = fake_base(&*s, 1);
    s.create_tenant(&t("l"), fp, None).unwrap();
    let c = s.claim(&t("l"), &n("a"), 10_000).unwrap();
    assert_eq!(c.lease_expiry, Millis(5_010_000));
    clock.advance(9_999);
    assert!(matches!(
        other.claim(&t("l"), &n("b"), 10_000),
        Err(StoreError::Held { .. })
    ));
    // Renewal pushes the expiry on.
    let c = s.renew(&c, 10_000).unwrap();
    assert_eq!(c.lease_expiry, Millis(5_019_999));
    clock.advance(9_999);
    assert!(matches!(
        other.claim(&t("l"), &n("b"), 10_000),
        Err(StoreError::Held { .. })
    ));
    clock.advance(1);
    let b = other.claim(&t("l"), &n("b"), 10_000).unwrap();
    assert_eq!(b.epoch, Epoch(2));
    assert_eq!(b.lease_expiry, Millis(5_029_999));
}

/// A principal reaches only the tenants granted to it; other tenants' records, states and
/// names are refused or left out; bad secrets and operator-only operations are refused.
pub(crate) fn cross_tenant_refused(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 1);
    s.add_principal(&p("p1"), "secret-1").unwrap();
    s.add_principal(&p("p2"), "secret-2").unwrap();
    s.create_tenant(&t("t1"), fp, Some(&p("p1"))).unwrap();
    s.create_tenant(&t("t2"), fp, Some(&p("p2"))).unwrap();
    let c = s.claim(&t("t1"), &n("op"), 60_000).unwrap();
    let d1 = s.write_state(&c, b"t1's secret state").unwrap();
    s.release(&c).unwrap();

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    assert!(matches!(
        h.open(Access::principal(p("p1"), "wrong"), clock.clone()),
        Err(StoreError::BadCredentials { .. })
    ));
    assert!(matches!(
        h.open(Access::principal(p("nobody"), "x"), clock.clone()),
        Err(StoreError::BadCredentials { .. })
    ));
    let p1 = h
        .open(Access::principal(p("p1"), "secret-1"), clock.clone())
        .unwrap();
    let p2 = h
        .open(Access::principal(p("p2"), "secret-2"), clock)
        .unwrap();

    // p1 works on its own tenant.
    let c1 = p1.claim(&t("t1"), &n("node1"), 60_000).unwrap();
    assert_eq!(p1.read_state(&t("t1"), d1).unwrap(), b"t1's secret state");
    p1.write_state(&c1, b"t1 again").unwrap();
    p1.release(&c1).unwrap();
    let d1 = p1.record(&t("t1")).unwrap().state.unwrap();

    // p2 holds credentials for t2 only: every touch of t1 is refused, as denied or as
    // missing (a backend may hide the tenant altogether).
    let denied = |r: Result<(), StoreError>| {
        assert!(
            matches!(
                r,
                Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
            ),
            "p2 on t1: {r:?}"
        )
    };
    denied(p2.record(&t("t1")).map(|_| ()));
    denied(p2.claim(&t("t1"), &n("node2"), 60_000).map(|_| ()));
    denied(p2.read_state(&t("t1"), d1).map(|_| ()));
    let forged = cowheap_store::Claim {
        tenant: t("t1"),
        node: n("node2"),
        epoch: Epoch(2),
        lease_expiry: Millis(u64::MAX),
        base: fp,
        state: None,
    };
    denied(p2.write_state(&forged, b"overwrite").map(|_| ()));
    denied(p2.release(&forged));
    denied(p2.create_tenant(&t("t3"), fp, Some(&p("p2"))).map(|_| ()));
    denied(p2.add_principal(&p("p3"), "x"));
    denied(p2.put_base(Fingerprint([5; 32]), b"x").map(|_| ()));
    denied(p2.blob_stats().map(|_| ()));
    // Listings name only the principal's own tenants.
    let names: Vec<_> = p2
        .tenants()
        .unwrap()
        .into_iter()
        .map(|r| r.tenant)
        .collect();
    assert_eq!(names, vec![t("t2")]);
    // Bases are readable by every node.
    assert_eq!(p2.get_base(fp).unwrap(), vec![1u8; 1000]);
    // t1 is as p1 left it.
    let rec = s.record(&t("t1")).unwrap();
    assert_eq!(
        (rec.state, rec.owner, rec.epoch),
        (Some(d1), None, Epoch(2))
    );
}

/// A damaged blob is a typed error; the record and the other blobs are untouched, a node
/// that still has the tenant rewrites it whole, and a failed write never replaces the last
/// complete state.
pub(crate) fn corrupt_blobs(h: &dyn Harness) {
    let s = op(h);
    let fp = fake_base(&*s, 3);
    s.create_tenant(&t("c"), fp, None).unwrap();
    let c = s.claim(&t("c"), &n("a"), 60_000).unwrap();
    let good = vec![11u8; 5000];
    let d = s.write_state(&c, &good).unwrap();

    h.damage(&d, Damage::Truncate);
    match s.read_state(&t("c"), d) {
        Err(StoreError::BlobTruncated {
            digest,
            expected,
            found,
        }) => {
            assert_eq!(digest, d);
            assert_eq!(expected, 5000);
            assert!(found < 5000);
        }
        other => panic!("truncated: {other:?}"),
    }
    // The node still holding the tenant writes the same state again: whole again.
    assert_eq!(s.write_state(&c, &good).unwrap(), d);
    assert_eq!(s.read_state(&t("c"), d).unwrap(), good);

    h.damage(&d, Damage::Flip);
    match s.read_state(&t("c"), d) {
        Err(StoreError::BlobCorrupt { digest, found }) => {
            assert_eq!(digest, d);
            assert_ne!(found, d);
        }
        other => panic!("flipped: {other:?}"),
    }
    assert_eq!(s.write_state(&c, &good).unwrap(), d);
    assert_eq!(s.read_state(&t("c"), d).unwrap(), good);

    // A damaged base blob: the base is refused, the tenant's state is still readable.
    let base_digest = Digest::of(&[3u8; 1000]);
    h.damage(&base_digest, Damage::Flip);
    assert!(matches!(
        s.get_base(fp),
        Err(StoreError::BlobCorrupt { .. })
    ));
    assert_eq!(s.read_state(&t("c"), d).unwrap(), good);

    // A stale write fails and the last complete state stays.
    s.release(&c).unwrap();
    assert!(s.write_state(&c, b"lost").is_err());
    assert_eq!(s.record(&t("c")).unwrap().state, Some(d));
    assert_eq!(s.read_state(&t("c"), d).unwrap(), good);
}

/// Nodes: suspend on one, resume on another; the base fetched once into each node's cache;
/// a damaged state refuses to resume with a typed error and releases the claim.
pub(crate) fn suspend_resume_nodes(h: &dyn Harness) {
    let fp = real_base(h, 2_000);
    let s = op(h);
    let a = node(h, "a", Access::Operator);
    let b = node(h, "b", Access::Operator);
    for i in 0..3 {
        s.create_tenant(&t(&format!("n{i}")), fp, None).unwrap();
    }
    for i in 0..3 {
        let mut r = a.resume(&t(&format!("n{i}"))).unwrap();
        assert_eq!(read_mark(&r.tenant), None);
        write_mark(&mut r.tenant, 100 + i).unwrap();
        a.suspend(r).unwrap();
    }
    let first = b.base(fp).unwrap();
    assert!(h.scratch().join("cache-b").read_dir().unwrap().count() >= 1);
    for i in 0..3 {
        let r = b.resume(&t(&format!("n{i}"))).unwrap();
        assert_eq!(read_mark(&r.tenant), Some(100 + i));
        // Every tenant of the base shares the one mapped base.
        assert!(Arc::ptr_eq(r.tenant.base(), &first));
        b.suspend(r).unwrap();
    }
    let rec = s.record(&t("n0")).unwrap();
    assert_eq!((rec.owner, rec.epoch), (None, Epoch(2)));

    // Damage n1's state: resume fails with a typed error and leaves the tenant claimable.
    let d = s.record(&t("n1")).unwrap().state.unwrap();
    h.damage(&d, Damage::Flip);
    assert!(matches!(
        a.resume(&t("n1")),
        Err(StoreError::BlobCorrupt { .. })
    ));
    assert_eq!(s.record(&t("n1")).unwrap().owner, None);

    // A record naming a base the store lacks cannot be made.
    assert!(matches!(
        s.create_tenant(&t("orphan"), Fingerprint([0xEE; 32]), None),
        Err(StoreError::BaseMissing { .. })
    ));

    // A stale node's suspend is fenced: b's newer work stays.
    let late = late_node(h, "late");
    let mut r = a.resume(&t("n2")).unwrap();
    write_mark(&mut r.tenant, 7).unwrap();
    let mut r2 = late.resume(&t("n2")).unwrap(); // a's lease has run out on late's clock
    write_mark(&mut r2.tenant, 8).unwrap();
    late.suspend(r2).unwrap();
    assert!(matches!(a.suspend(r), Err(StoreError::Fenced { .. })));
    let r = b.resume(&t("n2")).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(8));
}

/// Layers of a real history: `count` versions over base `fp` as the store holds it, each
/// setting slot 0 of the first slot object to `seed * 1000 + version`, from a repository of
/// this process; and the fingerprint of each version (index 0: the base).
pub(crate) fn history(
    h: &dyn Harness,
    fp: Fingerprint,
    seed: i64,
    count: usize,
) -> (Vec<Vec<u8>>, Vec<Fingerprint>) {
    let base = node(h, &format!("history-{seed}"), Access::Operator)
        .base(fp)
        .unwrap();
    let x = slot_objects(&base, 1)[0];
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut layers = Vec::new();
    let mut fps = vec![base.fingerprint()];
    for v in 1..=count {
        let mut t = repo.fork();
        t.set_slot(x, 0, Value::int(seed * 1000 + v as i64))
            .unwrap();
        let next = repo
            .commit_through(&mut t, "test", CommitMode::WriteWrite, &[], |l| {
                layers.push(l.to_bytes());
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap();
        fps.push(next.fingerprint());
    }
    (layers, fps)
}

/// Versions are compare-and-set: of many threads writing version 1 exactly one wins and the
/// others are told the newest; a number that skips one is refused; listing and fetching
/// give back exactly what was written; bytes that are not that version's layer are refused.
pub(crate) fn versions_compare_and_set(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    assert!(s.versions(fp, 0).unwrap().is_empty());
    let threads = 8;
    // Eight histories, each with its own version 1 (different bytes).
    let candidates: Vec<Vec<Vec<u8>>> = (0..threads)
        .map(|i| history(h, fp, i as i64 + 1, 4).0)
        .collect();
    let handles: Vec<_> = (0..threads).map(|_| op(h)).collect();
    let barrier = Barrier::new(threads);
    let results: Vec<_> = std::thread::scope(|sc| {
        let joins: Vec<_> = handles
            .iter()
            .zip(&candidates)
            .map(|(st, layers)| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    st.put_version(fp, 1, &layers[0])
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..threads).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        assert!(
            matches!(
                r,
                Ok(_)
                    | Err(StoreError::VersionConflict {
                        number: 1,
                        newest: 1,
                        ..
                    })
            ),
            "a loser is told the newest version: {r:?}"
        );
    }
    let w = winners[0];
    let rec = results[w].as_ref().unwrap().clone();
    assert_eq!(
        (rec.origin, rec.number, rec.committed_by.clone()),
        (fp, 1, None)
    );
    assert_eq!(rec.layer, Digest::of(&candidates[w][0]));
    assert_eq!(s.versions(fp, 0).unwrap(), vec![rec.clone()]);
    assert_eq!(s.get_layer(rec.layer).unwrap(), candidates[w][0]);

    // The winner's history goes on; every other writer is refused at every number but
    // the next, and a number that skips one is refused too.
    let other = (w + 1) % threads;
    match s.put_version(fp, 3, &candidates[w][2]) {
        Err(StoreError::VersionConflict {
            number: 3,
            newest: 1,
            ..
        }) => {}
        r => panic!("a skipped number: {r:?}"),
    }
    for v in 2..=4u64 {
        assert!(matches!(
            s.put_version(fp, v - 1, &candidates[other][v as usize - 2]),
            Err(StoreError::VersionConflict { .. })
        ));
        let r = s
            .put_version(fp, v, &candidates[w][v as usize - 1])
            .unwrap();
        assert_eq!(r.number, v);
    }
    let listed = s.versions(fp, 2).unwrap();
    assert_eq!(
        listed.iter().map(|v| v.number).collect::<Vec<_>>(),
        vec![3, 4]
    );
    for v in &listed {
        assert_eq!(
            s.get_layer(v.layer).unwrap(),
            candidates[w][v.number as usize - 1]
        );
    }
    assert_eq!(s.versions(fp, 4).unwrap(), vec![]);

    // Bytes that are not version 5's layer of this history change nothing.
    assert!(matches!(
        s.put_version(fp, 5, &candidates[w][3]),
        Err(StoreError::LayerMismatch { .. })
    ));
    assert!(matches!(
        s.put_version(fp, 5, b"not a layer at all"),
        Err(StoreError::Layer(_))
    ));
    let mut cut = candidates[w][3].clone();
    cut.truncate(cut.len() - 1);
    assert!(matches!(
        s.put_version(fp, 5, &cut),
        Err(StoreError::Layer(_))
    ));
    assert!(matches!(
        s.put_version(fp, 0, &candidates[w][0]),
        Err(StoreError::LayerMismatch { .. })
    ));
    assert_eq!(s.versions(fp, 0).unwrap().len(), 4);
    assert!(matches!(
        s.versions(Fingerprint([0xAB; 32]), 0),
        Err(StoreError::BaseMissing { .. })
    ));
    assert!(matches!(
        s.get_layer(Digest::of(b"no such layer")),
        Err(StoreError::BlobMissing { .. })
    ));
    // A tenant state's blob is not served as a layer.
    s.create_tenant(&t("st"), fp, None).unwrap();
    let c = s.claim(&t("st"), &n("a"), 60_000).unwrap();
    let d = s.write_state(&c, b"a state, not a layer").unwrap();
    assert!(matches!(
        s.get_layer(d),
        Err(StoreError::BlobMissing { .. })
    ));
}

/// Several processes write version 1 of a history at once: exactly one wins, the others
/// are told the newest is 1. Three rounds, each on a base of its own.
pub(crate) fn versions_compare_and_set_processes(h: &dyn Harness) {
    let s = op(h);
    for round in 0..3 {
        let fp = real_base(h, 1_000 + round);
        let files: Vec<PathBuf> = (0..6)
            .map(|i| {
                let (layers, _) = history(h, fp, i + 1, 1);
                let f = h.scratch().join(format!("layer-{round}-{i}"));
                std::fs::write(&f, &layers[0]).unwrap();
                f
            })
            .collect();
        let children: Vec<_> = files
            .iter()
            .map(|f| {
                Command::new(node_exe())
                    .args([
                        &h.address(),
                        "-",
                        "-",
                        "put-version",
                        &cowheap_store::fingerprint_hex(&fp),
                        "1",
                        f.to_str().unwrap(),
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut won = 0;
        for c in children {
            let o = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            assert!(
                o.status.success(),
                "{text} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            if text == "won 1" {
                won += 1;
            } else {
                assert_eq!(text, "lost 1");
            }
        }
        assert_eq!(won, 1, "round {round}");
        let listed = s.versions(fp, 0).unwrap();
        assert_eq!(listed.len(), 1);
        // The one recorded is one of the candidates, whole.
        let bytes = s.get_layer(listed[0].layer).unwrap();
        assert!(files.iter().any(|f| std::fs::read(f).unwrap() == bytes));
    }
}

/// A damaged layer blob is a typed error, for the store and for a node that syncs; the
/// node applies nothing of it.
pub(crate) fn corrupt_layers(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    let (layers, _) = history(h, fp, 1, 2);
    s.put_version(fp, 1, &layers[0]).unwrap();
    let v2 = s.put_version(fp, 2, &layers[1]).unwrap();
    let a = node(h, "a", Access::Operator);
    h.damage(&v2.layer, Damage::Truncate);
    assert!(matches!(
        s.get_layer(v2.layer),
        Err(StoreError::BlobTruncated { digest, .. }) if digest == v2.layer
    ));
    assert!(matches!(a.sync(fp), Err(StoreError::BlobTruncated { .. })));
    // Version 1 was whole and is applied; nothing of version 2.
    assert_eq!(a.repository(fp).unwrap().current().version(), 1);
    let b = node(h, "b", Access::Operator);
    h.damage(&v2.layer, Damage::Flip);
    assert!(matches!(
        b.sync(fp),
        Err(StoreError::BlobTruncated { .. } | StoreError::BlobCorrupt { .. })
    ));
    assert_eq!(b.repository(fp).unwrap().current().version(), 1);
}

/// Who may commit: the operator names the principals; one it does not name is refused with
/// a typed error and nothing changes; one it names commits, and the version says who.
pub(crate) fn commit_rights(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.add_principal(&p("p1"), "secret-1").unwrap();
    s.add_principal(&p("p2"), "secret-2").unwrap();
    s.allow_commit(fp, &p("p1")).unwrap();
    s.allow_commit(fp, &p("p1")).unwrap();
    assert!(matches!(
        s.allow_commit(Fingerprint([0xCD; 32]), &p("p1")),
        Err(StoreError::BaseMissing { .. })
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let p1 = h
        .open(Access::principal(p("p1"), "secret-1"), clock.clone())
        .unwrap();
    let p2 = h
        .open(Access::principal(p("p2"), "secret-2"), clock)
        .unwrap();
    assert_eq!(s.committers(fp).unwrap(), vec![p("p1")]);
    assert_eq!(p1.committers(fp).unwrap(), vec![p("p1")]);
    assert_eq!(p2.committers(fp).unwrap(), vec![]);
    assert!(matches!(
        p2.allow_commit(fp, &p("p2")),
        Err(StoreError::Denied { .. })
    ));
    let blobs = s.blob_stats().unwrap();
    let (layers, _) = history(h, fp, 1, 2);
    match p2.put_version(fp, 1, &layers[0]) {
        Err(StoreError::NotCommitter { principal, base }) => {
            assert_eq!((principal, base), (p("p2"), fp));
        }
        r => panic!("p2 commits: {r:?}"),
    }
    assert!(s.versions(fp, 0).unwrap().is_empty());
    assert_eq!(
        s.blob_stats().unwrap(),
        blobs,
        "a refused version adds no blob"
    );
    let v1 = p1.put_version(fp, 1, &layers[0]).unwrap();
    assert_eq!(v1.committed_by, Some(p("p1")));
    // Every principal reads versions, as it reads bases; the operator commits too.
    assert_eq!(p2.versions(fp, 0).unwrap(), vec![v1.clone()]);
    assert_eq!(p2.get_layer(v1.layer).unwrap(), layers[0]);
    let v2 = s.put_version(fp, 2, &layers[1]).unwrap();
    assert_eq!(v2.committed_by, None);

    // Through nodes: p2's node cannot commit, and its tenant keeps its changes.
    let n2 = node(h, "n2", Access::principal(p("p2"), "secret-2"));
    n2.sync(fp).unwrap();
    let x = slot_objects(&n2.base(fp).unwrap(), 2)[1];
    let mut t2 = n2.repository(fp).unwrap().fork();
    t2.set_slot(x, 0, Value::int(77)).unwrap();
    assert!(matches!(
        n2.commit(&mut t2, CommitMode::WriteWrite, &[]),
        Err(StoreError::NotCommitter { .. })
    ));
    assert_eq!(t2.slot(x, 0).unwrap().as_int(), Some(77));
    assert_eq!(s.versions(fp, 0).unwrap().len(), 2);
    let n1 = node(h, "n1", Access::principal(p("p1"), "secret-1"));
    let mut t1 = {
        n1.sync(fp).unwrap();
        n1.repository(fp).unwrap().fork()
    };
    t1.set_slot(x, 0, Value::int(78)).unwrap();
    let v = n1.commit(&mut t1, CommitMode::WriteWrite, &[]).unwrap();
    assert_eq!(v.version(), 3);
    assert_eq!(s.versions(fp, 2).unwrap()[0].committed_by, Some(p("p1")));
}

/// Two nodes commit against one store from two threads at once. Disjoint changes: every
/// commit lands, in order. The same object: exactly one of two racing commits wins, the
/// other gets a conflict naming it, aborts, redoes and lands. Afterwards every node that
/// syncs holds the same version (same fingerprint) and reads the same values.
pub(crate) fn nodes_commit(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let a = node(h, "a", Access::Operator);
    let b = node(h, "b", Access::Operator);
    let objs = slot_objects(&a.base(fp).unwrap(), 3);
    let rounds = 15;
    std::thread::scope(|sc| {
        for (i, nd) in [&a, &b].into_iter().enumerate() {
            let x = objs[i];
            sc.spawn(move || {
                nd.sync(fp).unwrap();
                let repo = nd.repository(fp).unwrap();
                let mut t = repo.fork();
                for r in 1..=rounds {
                    t.set_slot(x, 0, Value::int(r)).unwrap();
                    nd.commit(&mut t, CommitMode::WriteWrite, &[]).unwrap();
                }
            });
        }
    });
    let s = op(h);
    let listed = s.versions(fp, 0).unwrap();
    assert_eq!(
        listed.iter().map(|v| v.number).collect::<Vec<_>>(),
        (1..=2 * rounds as u64).collect::<Vec<_>>()
    );
    // Each version changed one node's object by one: along the chain, the two values
    // add up to the version's number.
    let c = node(h, "c", Access::Operator);
    let newest = c.sync(fp).unwrap();
    let mut v = Some(newest.clone());
    while let Some(b) = v {
        let t = Tenant::fork(&b);
        let sum: i64 = objs[..2]
            .iter()
            .map(|&x| t.slot(x, 0).unwrap().as_int().unwrap_or(0))
            .sum();
        if b.version() > 0 {
            assert_eq!(sum, b.version() as i64, "version {}", b.version());
        }
        v = b.parent().cloned();
    }

    // The same object, both at once: one wins, the other is told which object.
    let x = objs[2];
    let barrier = Barrier::new(2);
    let outcomes: Vec<(Result<u64, StoreError>, Tenant)> = std::thread::scope(|sc| {
        let joins: Vec<_> = [(&a, 100), (&b, 200)]
            .into_iter()
            .map(|(nd, value)| {
                let barrier = &barrier;
                sc.spawn(move || {
                    nd.sync(fp).unwrap();
                    let mut t = nd.repository(fp).unwrap().fork();
                    t.set_slot(x, 0, Value::int(value)).unwrap();
                    barrier.wait();
                    let r = nd
                        .commit(&mut t, CommitMode::WriteWrite, &[])
                        .map(|v| v.version());
                    (r, t)
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..2).filter(|&i| outcomes[i].0.is_ok()).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        outcomes.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    let (w, l) = (won[0], 1 - won[0]);
    let x_index = a.base(fp).unwrap().heap().index_of(x).unwrap();
    match &outcomes[l].0 {
        Err(StoreError::Commit(e)) => match &**e {
            CommitError::Conflict { objects, .. } => assert_eq!(objects, &vec![x_index]),
            other => panic!("the loser: {other}"),
        },
        other => panic!("the loser: {other:?}"),
    }
    assert_eq!(outcomes[w].0.as_ref().unwrap(), &(2 * rounds as u64 + 1));
    // The loser aborts (it sees the winner's value), redoes its change and commits.
    let loser = [&a, &b][l];
    let mut t = outcomes.into_iter().nth(l).unwrap().1;
    let repo = loser.repository(fp).unwrap();
    assert!(matches!(
        repo.rebase(&mut t),
        Err(CommitError::Conflict { .. })
    ));
    repo.abort(&mut t);
    let winner_value = if w == 0 { 100 } else { 200 };
    assert_eq!(t.slot(x, 0).unwrap().as_int(), Some(winner_value));
    t.set_slot(x, 0, Value::int(300)).unwrap();
    let last = loser.commit(&mut t, CommitMode::WriteWrite, &[]).unwrap();
    assert_eq!(last.version(), 2 * rounds as u64 + 2);

    // Every node that syncs holds the same version.
    let fresh = node(h, "fresh", Access::Operator);
    let views = [
        a.sync(fp).unwrap(),
        b.sync(fp).unwrap(),
        fresh.sync(fp).unwrap(),
    ];
    for v in &views {
        assert_eq!(v.version(), last.version());
        assert_eq!(v.fingerprint(), last.fingerprint());
        assert_eq!(Tenant::fork(v).slot(x, 0).unwrap().as_int(), Some(300));
    }
}

/// A tenant suspended on version N resumes on a node that has never synced: the node finds
/// version N (syncing first), and the tenant reads and commits there.
pub(crate) fn resume_on_a_version(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.create_tenant(&t("v"), fp, None).unwrap();
    let a = node(h, "a", Access::Operator);
    let x = slot_objects(&a.base(fp).unwrap(), 1)[0];
    let mut r = a.resume(&t("v")).unwrap();
    r.tenant.set_slot(x, 0, Value::int(5)).unwrap();
    let v1 = a
        .commit(&mut r.tenant, CommitMode::WriteWrite, &[])
        .unwrap();
    assert_eq!(v1.version(), 1);
    write_mark(&mut r.tenant, 9).unwrap();
    a.suspend(r).unwrap();

    let b = node(h, "b", Access::Operator);
    let mut r = b.resume(&t("v")).unwrap();
    assert_eq!(r.tenant.base().fingerprint(), v1.fingerprint());
    assert_eq!(r.tenant.slot(x, 0).unwrap().as_int(), Some(5));
    assert_eq!(read_mark(&r.tenant), Some(9));
    r.tenant.set_slot(x, 0, Value::int(6)).unwrap();
    let v2 = b
        .commit(&mut r.tenant, CommitMode::WriteWrite, &[])
        .unwrap();
    assert_eq!(v2.version(), 2);
    b.suspend(r).unwrap();
    // A fresh tenant resumes on the newest version.
    s.create_tenant(&t("w"), fp, None).unwrap();
    let c = node(h, "c", Access::Operator);
    let r = c.resume(&t("w")).unwrap();
    assert_eq!(r.tenant.base().version(), 2);
    assert_eq!(r.tenant.slot(x, 0).unwrap().as_int(), Some(6));
}

/// The store error behind a swap error of a node (a segment the store refused or sent
/// damaged), if there is one.
pub(crate) fn store_cause(e: &StoreError) -> Option<&StoreError> {
    use cowheap_segment::swap::{StoreError as SegStoreError, SwapError};
    match e {
        StoreError::Swap { source, .. } => match &**source {
            SwapError::Store(SegStoreError::Backend { source, .. }) => source.downcast_ref(),
            _ => None,
        },
        _ => None,
    }
}

/// Segments in the store: written once per tenant and id under a live claim, read back
/// verified (a truncated or flipped blob is a typed error, repaired by a later put of the
/// same bytes), fenced, listed, removed; refused across tenants; and the same through the
/// segment crate's `SegmentStore` adapter.
pub(crate) fn segments_in_store(h: &dyn Harness) {
    use cowheap_segment::swap::{SegmentId, SegmentStore, StoreError as SegStoreError};
    use cowheap_store::StoreSegments;
    let clock = ManualClock::new(Millis(1_000_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let fp = fake_base(&*s, 6);
    s.add_principal(&p("p1"), "secret-1").unwrap();
    s.add_principal(&p("p2"), "secret-2").unwrap();
    s.create_tenant(&t("t1"), fp, Some(&p("p1"))).unwrap();
    s.create_tenant(&t("t2"), fp, Some(&p("p2"))).unwrap();
    let p1 = h
        .open(
            Access::principal(p("p1"), "secret-1"),
            Arc::new(clock.clone()),
        )
        .unwrap();
    let p2 = h
        .open(
            Access::principal(p("p2"), "secret-2"),
            Arc::new(clock.clone()),
        )
        .unwrap();
    let id = SegmentId::new;
    let c1 = p1.claim(&t("t1"), &n("a"), 10_000).unwrap();
    let seg1 = vec![0x51u8; 3000];
    let seg2: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let d1 = p1.put_segment(&c1, id(1), &seg1).unwrap();
    assert_eq!(d1, Digest::of(&seg1));
    p1.put_segment(&c1, id(7), &seg2).unwrap();
    assert_eq!(p1.get_segment(&t("t1"), id(1)).unwrap(), seg1);
    assert_eq!(p1.get_segment(&t("t1"), id(7)).unwrap(), seg2);
    assert_eq!(p1.segments(&t("t1")).unwrap(), vec![id(1), id(7)]);
    // An id is written once.
    assert!(matches!(
        p1.put_segment(&c1, id(1), b"other bytes"),
        Err(StoreError::SegmentExists { id: i, .. }) if i == id(1)
    ));
    assert_eq!(p1.get_segment(&t("t1"), id(1)).unwrap(), seg1);
    assert!(matches!(
        p1.get_segment(&t("t1"), id(2)),
        Err(StoreError::SegmentMissing { id: i, .. }) if i == id(2)
    ));

    // Another principal reaches none of it, with its own claim or a forged one.
    let denied = |r: Result<(), StoreError>| {
        assert!(
            matches!(
                r,
                Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
            ),
            "p2 on t1's segments: {r:?}"
        )
    };
    denied(p2.get_segment(&t("t1"), id(1)).map(|_| ()));
    denied(p2.segments(&t("t1")).map(|_| ()));
    let forged = cowheap_store::Claim {
        node: n("b"),
        ..c1.clone()
    };
    denied(p2.put_segment(&forged, id(9), b"planted").map(|_| ()));
    denied(p2.remove_segment(&forged, id(1)));
    denied(p2.retain_segments(&forged, &[]).map(|_| ()));
    let c2 = p2.claim(&t("t2"), &n("b"), 10_000).unwrap();
    let forged = cowheap_store::Claim {
        tenant: t("t1"),
        ..c2.clone()
    };
    denied(p2.put_segment(&forged, id(9), b"planted").map(|_| ()));
    denied(p2.remove_segment(&forged, id(1)));
    // p2's own tenant has segments of its own, the same ids included.
    p2.put_segment(&c2, id(1), b"t2's segment").unwrap();
    assert_eq!(p2.get_segment(&t("t2"), id(1)).unwrap(), b"t2's segment");
    assert_eq!(p1.segments(&t("t1")).unwrap(), vec![id(1), id(7)]);
    assert_eq!(p1.get_segment(&t("t1"), id(1)).unwrap(), seg1);

    // Damage: typed errors; the same bytes put again (under any id) make the blob whole.
    h.damage(&d1, Damage::Truncate);
    match p1.get_segment(&t("t1"), id(1)) {
        Err(StoreError::BlobTruncated {
            digest, expected, ..
        }) => assert_eq!((digest, expected), (d1, 3000)),
        other => panic!("truncated segment: {other:?}"),
    }
    p1.put_segment(&c1, id(2), &seg1).unwrap();
    assert_eq!(p1.get_segment(&t("t1"), id(1)).unwrap(), seg1);
    h.damage(&d1, Damage::Flip);
    assert!(matches!(
        p1.get_segment(&t("t1"), id(1)),
        Err(StoreError::BlobCorrupt { digest, .. }) if digest == d1
    ));
    p1.put_segment(&c1, id(3), &seg1).unwrap();
    assert_eq!(p1.get_segment(&t("t1"), id(1)).unwrap(), seg1);

    // Through the adapter: the trait's errors, and a damaged blob as the store's.
    let a = StoreSegments::new(p1.clone(), c1.clone());
    a.put(id(20), b"through the adapter").unwrap();
    assert_eq!(a.get(id(20)).unwrap(), b"through the adapter");
    assert!(matches!(a.put(id(20), b"x"), Err(SegStoreError::Exists(i)) if i == id(20)));
    assert!(matches!(a.get(id(21)), Err(SegStoreError::Missing(i)) if i == id(21)));
    a.remove(id(20)).unwrap();
    a.remove(id(20)).unwrap();
    assert!(matches!(a.get(id(20)), Err(SegStoreError::Missing(_))));
    h.damage(&d1, Damage::Flip);
    match a.get(id(1)) {
        Err(SegStoreError::Backend { source, .. }) => assert!(
            matches!(
                source.downcast_ref::<StoreError>(),
                Some(StoreError::BlobCorrupt { .. })
            ),
            "{source}"
        ),
        other => panic!("damaged segment through the adapter: {other:?}"),
    }
    p1.put_segment(&c1, id(4), &seg1).unwrap();

    // A stale claim adds and drops nothing; the newer owner's segments stay.
    clock.advance(20_000);
    let newer = p1.claim(&t("t1"), &n("c"), 10_000).unwrap();
    let stale = StoreSegments::new(p1.clone(), c1.clone());
    for r in [
        p1.put_segment(&c1, id(30), b"stale").map(|_| ()),
        p1.remove_segment(&c1, id(1)),
        p1.retain_segments(&c1, &[]).map(|_| ()),
    ] {
        assert!(matches!(r, Err(StoreError::Fenced { .. })), "{r:?}");
    }
    assert!(matches!(
        stale.remove(id(7)),
        Err(SegStoreError::Backend { .. })
    ));
    assert_eq!(
        p1.segments(&t("t1")).unwrap(),
        vec![id(1), id(2), id(3), id(4), id(7)]
    );
    // Removal and retention under the live claim.
    p1.remove_segment(&newer, id(2)).unwrap();
    p1.remove_segment(&newer, id(2)).unwrap();
    assert_eq!(p1.retain_segments(&newer, &[id(1), id(7)]).unwrap(), 2);
    assert_eq!(p1.segments(&t("t1")).unwrap(), vec![id(1), id(7)]);
    assert!(matches!(
        p1.get_segment(&t("t1"), id(3)),
        Err(StoreError::SegmentMissing { .. })
    ));
    assert_eq!(p1.get_segment(&t("t1"), id(7)).unwrap(), seg2);
    // The operator sees every tenant's segments.
    assert_eq!(s.segments(&t("t2")).unwrap(), vec![id(1)]);
}

/// The objects of one part: a root holding `LEAVES` byte objects, an integer and a shared
/// object outside every part. Answers the root.
fn part(t: &mut Tenant, i: usize, shared: Value) -> Value {
    let class = t
        .class_of(t.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    let mut slots: Vec<Value> = (0..LEAVES)
        .map(|j| {
            t.alloc_with(class, cowheap_heap::Format::Bytes, &[], &part_bytes(i, j))
                .unwrap()
        })
        .collect();
    slots.push(Value::int(i as i64));
    slots.push(shared);
    t.alloc_with(class, cowheap_heap::Format::Pointers, &slots, &[])
        .unwrap()
}

/// Leaves per part.
pub(crate) const LEAVES: usize = 12;

/// The bytes of leaf `j` of part `i`.
pub(crate) fn part_bytes(i: usize, j: usize) -> Vec<u8> {
    let mut b = format!("part {i} leaf {j} ").into_bytes();
    b.resize(160 + (i * 7 + j) % 50, b'a' + (j % 26) as u8);
    b
}

/// Builds `count` parts under the named root `holder` (an object whose slot `i` is part
/// `i`'s root) and a named root `shared` they all refer to; answers the roots and their
/// identity hashes.
pub(crate) fn build_parts(t: &mut Tenant, count: usize) -> (Vec<Value>, Vec<u32>) {
    let class = t
        .class_of(t.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    let shared = t
        .alloc_with(class, cowheap_heap::Format::Bytes, &[], b"shared")
        .unwrap();
    t.set_root("shared", shared).unwrap();
    let roots: Vec<Value> = (0..count).map(|i| part(t, i, shared)).collect();
    let holder = t
        .alloc_with(class, cowheap_heap::Format::Pointers, &roots, &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    let hashes = roots.iter().map(|&r| t.identity_hash(r).unwrap()).collect();
    (roots, hashes)
}

/// Checks part `i` against the oracle (its leaves' bytes, its integer `int`, the shared
/// object, the root's identity hash), faulting it in if need be; answers whether it was
/// out before.
pub(crate) fn check_part(t: &mut Tenant, i: usize, int: i64, hash: u32) -> bool {
    let holder = t.root("holder").unwrap();
    let root = t.slot(holder, i).unwrap();
    let was_out = t.stub_segment(root).unwrap().is_some();
    for j in 0..LEAVES {
        let leaf = t.with_faults(|t| t.slot(root, j)).unwrap();
        assert_eq!(
            t.bytes(leaf).unwrap(),
            part_bytes(i, j),
            "part {i} leaf {j}"
        );
    }
    assert_eq!(
        t.slot(root, LEAVES).unwrap().as_int(),
        Some(int),
        "part {i}"
    );
    let shared = t.slot(root, LEAVES + 1).unwrap();
    assert!(t.identical(shared, t.root("shared").unwrap()).unwrap());
    assert_eq!(t.identity_hash(root).unwrap(), hash, "part {i}");
    assert!(t.identical(t.slot(holder, i).unwrap(), root).unwrap());
    was_out
}

/// Segments travel with the tenant: node A swaps parts out into the store and suspends;
/// node B (same principal) resumes, and a write through a stub and reads through
/// `with_faults` bring each back from the store with identity and hash kept; A resumes
/// B's work, and the segments nothing names any more are dropped. A damaged segment is a
/// typed error at fault-in and leaves the stub and the tenant usable; another principal's
/// node reaches none of it.
/// How many segments have stubs in `t`.
pub(crate) fn segments_with_stubs(t: &cowheap_tenants::Tenant) -> usize {
    t.stubs()
        .map(|(_, s)| s)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

pub(crate) fn segments_across_nodes(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.add_principal(&p("p1"), "secret-1").unwrap();
    s.add_principal(&p("p2"), "secret-2").unwrap();
    s.create_tenant(&t("seg"), fp, Some(&p("p1"))).unwrap();
    let a = node(h, "a", Access::principal(p("p1"), "secret-1"));
    let b = node(h, "b", Access::principal(p("p1"), "secret-1"));
    let mut r = a.resume(&t("seg")).unwrap();
    let (roots, hashes) = build_parts(&mut r.tenant, 3);
    let mut ids = Vec::new();
    for &root in &roots {
        let out = r.swap_out(&[root]).unwrap();
        assert_eq!((out.objects, out.roots, out.pinned), (LEAVES + 1, 1, 1));
        ids.push(out.id);
    }
    // A read by `&self` through a stub answers from the segment's file, and brings nothing
    // back: what it answers is a stub of the same segment (every member is one).
    let leaf = r.tenant.slot(roots[0], 0).unwrap();
    assert_eq!(r.tenant.stub_segment(leaf).unwrap(), Some(ids[0].get()));
    assert_eq!(segments_with_stubs(&r.tenant), 3);
    assert_eq!(r.tenant.stubs().count(), 3 * (LEAVES + 1));
    assert_eq!(s.segments(&t("seg")).unwrap(), ids);
    a.suspend(r).unwrap();

    let mut r = b.resume(&t("seg")).unwrap();
    assert_eq!(segments_with_stubs(&r.tenant), 3);
    // On the other node too, a read by `&self` answers from the store's file, leaving the
    // segment out.
    let holder = r.tenant.root("holder").unwrap();
    let root0 = r.tenant.slot(holder, 0).unwrap();
    let leaf = r.tenant.slot(root0, 2).unwrap();
    assert_eq!(r.tenant.bytes(leaf).unwrap(), part_bytes(0, 2));
    assert_eq!(r.tenant.identity_hash(root0).unwrap(), hashes[0]);
    assert_eq!(r.tenant.stub_segment(leaf).unwrap(), Some(ids[0].get()));
    assert!(r.tenant.has_fault_handler());
    assert_eq!(r.swapper().swapped().len(), 3);
    // A write through part 1's stub faults it in and goes on.
    let holder = r.tenant.root("holder").unwrap();
    let root1 = r.tenant.slot(holder, 1).unwrap();
    r.tenant.set_slot(root1, LEAVES, Value::int(100)).unwrap();
    assert_eq!(segments_with_stubs(&r.tenant), 2);
    // Reads through `with_faults` bring the others.
    for (i, &hash) in hashes.iter().enumerate() {
        let int = if i == 1 { 100 } else { i as i64 };
        assert_eq!(check_part(&mut r.tenant, i, int, hash), i != 1);
    }
    assert_eq!(r.tenant.stubs().count(), 0);
    assert!(r.swapper().swapped().is_empty());
    // Files stay until a state that does not name them is written.
    assert_eq!(s.segments(&t("seg")).unwrap().len(), 3);
    b.suspend(r).unwrap();

    let mut r = a.resume(&t("seg")).unwrap();
    assert!(
        s.segments(&t("seg")).unwrap().is_empty(),
        "dropped at resume"
    );
    for (i, &hash) in hashes.iter().enumerate() {
        let int = if i == 1 { 100 } else { i as i64 };
        assert!(!check_part(&mut r.tenant, i, int, hash));
    }
    // Again out, then damaged in the store: a typed error at fault-in, the stub stays.
    let root0 = r.tenant.slot(r.tenant.root("holder").unwrap(), 0).unwrap();
    let out = r.swap_out(&[root0]).unwrap();
    a.suspend(r).unwrap();
    let d = Digest::of(&s.get_segment(&t("seg"), out.id).unwrap());
    h.damage(&d, Damage::Flip);
    let other = node(h, "c", Access::principal(p("p2"), "secret-2"));
    assert!(matches!(
        other.resume(&t("seg")),
        Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
    ));
    assert!(matches!(
        other.store().get_segment(&t("seg"), out.id),
        Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
    ));
    let mut r = b.resume(&t("seg")).unwrap();
    let e = r.fault_in(out.id).unwrap_err();
    assert!(
        matches!(store_cause(&e), Some(StoreError::BlobCorrupt { digest, .. }) if *digest == d),
        "{e:?}"
    );
    assert!(matches!(
        r.tenant.with_faults(|t| t.slot(root_of(t, 0), 0)),
        Err(cowheap_tenants::Error::Fault { segment, .. }) if segment == out.id.get()
    ));
    assert!(!check_part(&mut r.tenant, 2, 2, hashes[2]));
    assert_eq!(r.swapper().swapped().len(), 1);
}

/// A connection-like host object for [`host_objects_in_segments_across_nodes`].
struct Session {
    address: String,
    requests: u64,
    reopened: bool,
}

/// Its plugin: saves the request count and the address, counts what it restores.
#[derive(Default)]
struct Sessions {
    restored: std::sync::atomic::AtomicUsize,
}

impl HostPlugin for Sessions {
    fn save(&self, object: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        let s = object.downcast_ref::<Session>().ok_or("not a session")?;
        Ok([&s.requests.to_le_bytes()[..], s.address.as_bytes()].concat())
    }
    fn restore(&self, saved: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        let (n, address) = saved.split_at_checked(8).ok_or("too short")?;
        self.restored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(Session {
            address: String::from_utf8(address.to_vec()).map_err(|e| e.to_string())?,
            requests: u64::from_le_bytes(n.try_into().map_err(|_| "too short")?),
            reopened: true,
        }))
    }
}

/// A tenant with a host object inside a swapped-out segment, suspended on one node and
/// resumed on others: a node without the plugin refuses the fault with the typed reason
/// and keeps the tenant usable; a node with it (its own plugin instance) makes the host
/// object again from the state saved in the segment, given to the same proxy with its
/// identity hash.
pub(crate) fn host_objects_in_segments_across_nodes(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    op(h).create_tenant(&t("hosts"), fp, None).unwrap();
    let with = |name: &str| {
        let plugin = Arc::new(Sessions::default());
        let mut plugins = HostPlugins::new();
        plugins.register("session", plugin.clone());
        (
            node(h, name, Access::Operator).with_plugins(plugins),
            plugin,
        )
    };
    let (a, a_plugin) = with("a");
    let (b, b_plugin) = with("b");
    let bare = node(h, "c", Access::Operator);

    let mut r = a.resume(&t("hosts")).unwrap();
    let class = r
        .tenant
        .class_of(r.tenant.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    let session = Box::new(Session {
        address: "db:5432".into(),
        requests: 41,
        reopened: false,
    });
    let proxy = r.tenant.new_host_object(class, "session", session).unwrap();
    let root = r
        .tenant
        .alloc_with(class, Format::Pointers, &[proxy, Value::int(1)], &[])
        .unwrap();
    let holder = r
        .tenant
        .alloc_with(class, Format::Pointers, &[root, proxy], &[])
        .unwrap();
    r.tenant.set_root("holder", holder).unwrap();
    // The segment of `root` and `proxy`: the holder refers to both, so both are roots, and
    // the proxy is a root stub while the segment is out.
    let hashes = [root, proxy].map(|v| r.tenant.identity_hash(v).unwrap());
    let out = r.swap_out(&[root, proxy]).unwrap();
    assert_eq!((out.objects, out.roots), (2, 2));
    assert_eq!(r.tenant.host_count(), 0);
    a.suspend(r).unwrap();

    // A node without the plugin: the fault is refused with the reason, the stubs stay, and
    // the tenant works and is written back as it was.
    let mut r = bare.resume(&t("hosts")).unwrap();
    let e = r.fault_in(out.id).unwrap_err();
    match &e {
        StoreError::Swap { source, .. } => assert!(
            matches!(
                &**source,
                SwapError::HostObject { source: HostError::NoPlugin { kind }, .. } if kind == "session"
            ),
            "{e:?}"
        ),
        _ => panic!("{e:?}"),
    }
    assert_eq!(r.tenant.stubs_of(out.id.get()), 2);
    let holder = r.tenant.root("holder").unwrap();
    assert!(matches!(
        r.tenant.with_faults(|t| t.slot(root_of(t, 0), 1)),
        Err(cowheap_tenants::Error::Fault { segment, .. }) if segment == out.id.get()
    ));
    let stub = proxy_of(&r.tenant);
    r.tenant.set_slot(holder, 1, Value::int(0)).unwrap();
    r.tenant.set_slot(holder, 1, stub).unwrap();
    bare.suspend(r).unwrap();

    // A node with the plugin: a read through the stub brings the session back.
    let mut r = b.resume(&t("hosts")).unwrap();
    let root = root_of(&r.tenant, 0);
    assert_eq!(
        r.tenant.with_faults(|t| t.slot(root, 1)).unwrap().as_int(),
        Some(1)
    );
    let proxy = r.tenant.slot(root, 0).unwrap();
    assert!(r.tenant.identical(proxy, proxy_of(&r.tenant)).unwrap());
    assert_eq!(
        [root, proxy].map(|v| r.tenant.identity_hash(v).unwrap()),
        hashes
    );
    let (kind, object) = r.tenant.host_object(proxy).unwrap();
    assert_eq!(kind, "session");
    let s = object.unwrap().downcast_ref::<Session>().unwrap();
    assert_eq!(
        (s.address.as_str(), s.requests, s.reopened),
        ("db:5432", 41, true)
    );
    let restored = |p: &Sessions| p.restored.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((restored(&a_plugin), restored(&b_plugin)), (0, 1));
    assert!(r.swapper().swapped().is_empty());
    b.suspend(r).unwrap();
    // Faulted in, the session is a host object in memory: the suspend saved it through the
    // plugin, and the tenant resumes again with it.
    let r = b.resume(&t("hosts")).unwrap();
    let proxy = r.tenant.slot(root_of(&r.tenant, 0), 0).unwrap();
    let (_, object) = r.tenant.host_object(proxy).unwrap();
    let s = object.unwrap().downcast_ref::<Session>().unwrap();
    assert_eq!((s.address.as_str(), s.requests), ("db:5432", 41));
    assert_eq!((restored(&a_plugin), restored(&b_plugin)), (0, 2));
    b.suspend(r).unwrap();
}

/// A node named `name` whose plugins carry sessions through its own [`Sessions`] plugin.
fn with_sessions(h: &dyn Harness, name: &str) -> (Node, Arc<Sessions>) {
    let plugin = Arc::new(Sessions::default());
    let mut plugins = HostPlugins::new();
    plugins.register("session", plugin.clone());
    (
        node(h, name, Access::Operator).with_plugins(plugins),
        plugin,
    )
}

fn restored(p: &Sessions) -> usize {
    p.restored.load(std::sync::atomic::Ordering::Relaxed)
}

/// Gives a resident tenant a session with `requests` held in memory under root "session":
/// its proxy and the proxy's identity hash.
fn hold_session(r: &mut cowheap_store::Resident, requests: u64) -> (Value, u32) {
    let class = r
        .tenant
        .class_of(r.tenant.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    let session = Box::new(Session {
        address: "db:5432".into(),
        requests,
        reopened: false,
    });
    let proxy = r.tenant.new_host_object(class, "session", session).unwrap();
    r.tenant.set_root("session", proxy).unwrap();
    (proxy, r.tenant.identity_hash(proxy).unwrap())
}

/// The session the tenant holds under root "session": (address, requests, reopened).
fn session_of(t: &Tenant) -> (String, u64, bool) {
    let proxy = t.root("session").unwrap();
    let (kind, object) = t.host_object(proxy).unwrap();
    assert_eq!(kind, "session");
    let s = object
        .expect("a live session, not a placeholder")
        .downcast_ref::<Session>()
        .unwrap();
    (s.address.clone(), s.requests, s.reopened)
}

fn is_host_error(e: &StoreError, tenant: &str, want: impl Fn(&HostError) -> bool) -> bool {
    matches!(e, StoreError::HostObject { tenant: n, source } if n.as_str() == tenant && want(source))
}

fn no_plugin(e: &HostError) -> bool {
    matches!(e, HostError::NoPlugin { kind } if kind == "session")
}

/// A tenant holding a session in memory (no segment out) is suspended on node a and
/// resumed on node b: b's own plugin makes the session again from the state a's plugin
/// saved, on the same proxy (identity hash, class). A node without the plugin refuses the
/// resume with the typed reason, releases its claim and leaves the state for b.
pub(crate) fn host_objects_in_memory_across_nodes(h: &dyn Harness) {
    let s = op(h);
    let fp = real_base(h, 1_000);
    let name = t("mem-hosts");
    s.create_tenant(&name, fp, None).unwrap();
    let (a, a_plugin) = with_sessions(h, "a");
    let (b, b_plugin) = with_sessions(h, "b");
    let bare = node(h, "c", Access::Operator);

    let mut r = a.resume(&name).unwrap();
    let (proxy, hash) = hold_session(&mut r, 41);
    r.tenant
        .host_object_mut(proxy)
        .unwrap()
        .downcast_mut::<Session>()
        .unwrap()
        .requests += 1;
    let d = a.suspend(r).unwrap();
    assert_eq!(s.record(&name).unwrap().state, Some(d));

    // No plugin here: refused with the reason, and the record keeps the state, unowned.
    let e = bare.resume(&name).unwrap_err();
    assert!(is_host_error(&e, "mem-hosts", no_plugin), "{e:?}");
    let rec = s.record(&name).unwrap();
    assert_eq!((rec.state, rec.owner), (Some(d), None));

    let mut r = b.resume(&name).unwrap();
    assert_eq!(session_of(&r.tenant), ("db:5432".to_owned(), 42, true));
    assert_eq!((restored(&a_plugin), restored(&b_plugin)), (0, 1));
    let proxy = r.tenant.root("session").unwrap();
    assert_eq!(r.tenant.identity_hash(proxy).unwrap(), hash);
    let class = r
        .tenant
        .class_of(r.tenant.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    assert!(
        r.tenant
            .identical(r.tenant.class_of(proxy).unwrap(), class)
            .unwrap()
    );
    assert_eq!(r.tenant.placeholders().count(), 0);
    // b's session goes on counting, and a checkpoint carries that too.
    r.tenant
        .host_object_mut(proxy)
        .unwrap()
        .downcast_mut::<Session>()
        .unwrap()
        .requests = 50;
    b.checkpoint(&mut r).unwrap();
    b.suspend(r).unwrap();
    let r = a.resume(&name).unwrap();
    assert_eq!(session_of(&r.tenant), ("db:5432".to_owned(), 50, true));
    assert_eq!(restored(&a_plugin), 1);
    a.suspend(r).unwrap();
}

/// A node without the plugin refuses to suspend or checkpoint a tenant holding a session:
/// the typed reason, nothing written or released, the tenant given back resident, claimed
/// and usable; a node of the same name with the plugin then suspends it, session and all.
pub(crate) fn host_objects_refused_at_suspend(h: &dyn Harness) {
    let s = op(h);
    let fp = real_base(h, 1_000);
    let name = t("held-hosts");
    s.create_tenant(&name, fp, None).unwrap();
    let bare = node(h, "a", Access::Operator);
    let (a, _) = with_sessions(h, "a");
    let (b, b_plugin) = with_sessions(h, "b");

    // A first state, with no host object.
    let mut r = bare.resume(&name).unwrap();
    let g = r.tenant.base().heap().root("Smalltalk").unwrap();
    r.tenant.set_slot(g, 0, Value::int(1)).unwrap();
    let first = bare.checkpoint(&mut r).unwrap();
    let (_, hash) = hold_session(&mut r, 7);
    r.tenant.set_slot(g, 0, Value::int(2)).unwrap();
    let before = s.record(&name).unwrap();
    assert_eq!(
        (before.state, before.owner.clone()),
        (Some(first), Some(n("a")))
    );

    let e = bare.checkpoint(&mut r).unwrap_err();
    assert!(is_host_error(&e, "held-hosts", no_plugin), "{e:?}");
    assert_eq!(s.record(&name).unwrap(), before);

    let f = bare.try_suspend(r).unwrap_err();
    assert!(
        is_host_error(&f.error, "held-hosts", no_plugin),
        "{:?}",
        f.error
    );
    assert_eq!(s.record(&name).unwrap(), before);
    let mut r = *f.resident;
    assert_eq!(r.claim().epoch, before.epoch);
    // Still usable: the session is there, the tenant writes and renews.
    assert_eq!(session_of(&r.tenant), ("db:5432".to_owned(), 7, false));
    assert_eq!(r.tenant.slot(g, 0).unwrap().as_int(), Some(2));
    r.tenant.set_slot(g, 0, Value::int(3)).unwrap();
    bare.renew(&mut r).unwrap();
    // Another node cannot take it meanwhile.
    assert!(matches!(b.resume(&name), Err(StoreError::Held { .. })));
    // `suspend` refuses the same way and writes nothing either.
    let again = bare.try_suspend(r).unwrap_err();
    assert!(is_host_error(&again.error, "held-hosts", no_plugin));
    let r = *again.resident;
    let kept = s.record(&name).unwrap();
    assert_eq!(
        (kept.state, kept.owner.clone(), kept.epoch),
        (Some(first), Some(n("a")), before.epoch)
    );

    // The same node with the plugin suspends it.
    let d = a.suspend(r).unwrap();
    assert_ne!(d, first);
    let rec = s.record(&name).unwrap();
    assert_eq!((rec.state, rec.owner), (Some(d), None));
    let r = b.resume(&name).unwrap();
    assert_eq!(session_of(&r.tenant), ("db:5432".to_owned(), 7, true));
    assert_eq!(r.tenant.slot(g, 0).unwrap().as_int(), Some(3));
    assert_eq!(
        r.tenant
            .identity_hash(r.tenant.root("session").unwrap())
            .unwrap(),
        hash
    );
    assert_eq!(restored(&b_plugin), 1);
    b.suspend(r).unwrap();
}

/// A node that accepts placeholders resumes a tenant whose session it has no plugin for:
/// the proxy is listed as a placeholder keeping the saved bytes, the tenant works, and a
/// later suspend writes those bytes again, so a node with the plugin gets the session back.
pub(crate) fn host_objects_as_placeholders(h: &dyn Harness) {
    let s = op(h);
    let fp = real_base(h, 1_000);
    let name = t("kept-hosts");
    s.create_tenant(&name, fp, None).unwrap();
    let (a, _) = with_sessions(h, "a");
    let (b, b_plugin) = with_sessions(h, "b");
    let lenient = node(h, "c", Access::Operator).accept_placeholders(true);

    let mut r = a.resume(&name).unwrap();
    let (_, hash) = hold_session(&mut r, 99);
    a.suspend(r).unwrap();

    let mut r = lenient.resume(&name).unwrap();
    let proxy = r.tenant.root("session").unwrap();
    let listed: Vec<(Value, String)> = r
        .tenant
        .placeholders()
        .map(|(v, k)| (v, k.to_owned()))
        .collect();
    assert_eq!(listed.len(), 1);
    assert!(r.tenant.identical(listed[0].0, proxy).unwrap());
    assert_eq!(listed[0].1, "session");
    let saved = [&99u64.to_le_bytes()[..], b"db:5432"].concat();
    assert_eq!(r.tenant.host_saved(proxy), Some(&saved[..]));
    let (kind, object) = r.tenant.host_object(proxy).unwrap();
    assert_eq!((kind, object.is_none()), ("session", true));
    assert_eq!(r.tenant.identity_hash(proxy).unwrap(), hash);
    let g = r.tenant.base().heap().root("Smalltalk").unwrap();
    r.tenant.set_slot(g, 0, Value::int(5)).unwrap();
    lenient.checkpoint(&mut r).unwrap();
    lenient.suspend(r).unwrap();

    let r = b.resume(&name).unwrap();
    assert_eq!(session_of(&r.tenant), ("db:5432".to_owned(), 99, true));
    assert_eq!(r.tenant.slot(g, 0).unwrap().as_int(), Some(5));
    assert_eq!(r.tenant.placeholders().count(), 0);
    assert_eq!(restored(&b_plugin), 1);
    b.suspend(r).unwrap();
}

/// A registry swaps whole tenants holding sessions in memory out and back through its
/// node's plugins; one whose node lacks the plugin keeps such a tenant resident, claimed
/// and usable when it cannot suspend it (over the budget, and at `suspend_all`).
pub(crate) fn host_objects_in_a_registry(h: &dyn Harness) {
    use cowheap_store::SwapRegistry;
    let s = op(h);
    let fp = real_base(h, 1_000);
    for name in ["reg-x", "reg-y", "reg-z"] {
        s.create_tenant(&t(name), fp, None).unwrap();
    }
    let give_session = |tenant: &mut Tenant, requests: u64| {
        let class = tenant
            .class_of(tenant.base().heap().root("Smalltalk").unwrap())
            .unwrap();
        let session = Box::new(Session {
            address: "db:5432".into(),
            requests,
            reopened: false,
        });
        let proxy = tenant.new_host_object(class, "session", session).unwrap();
        tenant.set_root("session", proxy).unwrap();
    };

    // With the plugin, a budget of nothing: each use swaps the other tenant out.
    let (a, a_plugin) = with_sessions(h, "a");
    let reg = SwapRegistry::new(a, 0);
    reg.with(&t("reg-x"), |tenant| give_session(tenant, 3))
        .unwrap();
    reg.with(&t("reg-y"), |tenant| write_mark(tenant, 1).unwrap())
        .unwrap();
    assert_eq!(reg.resident(), 1);
    let x = s.record(&t("reg-x")).unwrap();
    assert!(x.state.is_some() && x.owner.is_none(), "{x:?}");
    let back = reg.with(&t("reg-x"), |tenant| session_of(tenant)).unwrap();
    assert_eq!(back, ("db:5432".to_owned(), 3, true));
    assert_eq!(restored(&a_plugin), 1);
    reg.suspend_all().unwrap();
    assert_eq!(reg.resident(), 0);

    // Without it: the tenant holding a session cannot be swapped out, nor suspended.
    let reg = SwapRegistry::new(node(h, "c", Access::Operator), 0);
    reg.with(&t("reg-z"), |tenant| give_session(tenant, 8))
        .unwrap();
    let e = reg
        .with(&t("reg-y"), |tenant| read_mark(tenant))
        .unwrap_err();
    assert!(is_host_error(&e, "reg-z", no_plugin), "{e:?}");
    assert_eq!(reg.resident(), 2);
    let e = reg.suspend_all().unwrap_err();
    assert!(is_host_error(&e, "reg-z", no_plugin), "{e:?}");
    assert_eq!(reg.resident(), 1);
    let z = s.record(&t("reg-z")).unwrap();
    assert_eq!((z.state, z.owner), (None, Some(n("c"))));
    let y = s.record(&t("reg-y")).unwrap();
    assert!(y.state.is_some() && y.owner.is_none(), "{y:?}");
    // Still resident, session and all.
    let kept = reg.with(&t("reg-z"), |tenant| session_of(tenant)).unwrap();
    assert_eq!(kept, ("db:5432".to_owned(), 8, false));
}

/// The holder's second slot: the proxy, by the reference the tenant kept.
fn proxy_of(t: &Tenant) -> Value {
    root_of(t, 1)
}

fn root_of(t: &Tenant, i: usize) -> Value {
    t.slot(t.root("holder").unwrap(), i).unwrap()
}

/// A fresh local-directory store.
pub(crate) struct Local {
    pub(crate) dir: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Local {
    pub(crate) fn new() -> Local {
        let dir = tempfile::tempdir().unwrap();
        LocalStore::init(
            dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        Local {
            dir,
            scratch: tempfile::tempdir().unwrap(),
        }
    }
}

impl Harness for Local {
    fn open(&self, access: Access, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(LocalStore::open(self.dir.path(), clock, access)?))
    }

    fn address(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn damage(&self, d: &Digest, how: Damage) {
        let s = LocalStore::open(
            self.dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        // A layer blob lives beside the other blobs, in a directory of its own.
        let path = Some(s.blob_path(d))
            .filter(|p| p.exists())
            .unwrap_or_else(|| s.layer_path(d));
        let mut bytes = std::fs::read(&path).unwrap();
        match how {
            Damage::Truncate => bytes.truncate(bytes.len() - 10),
            Damage::Flip => {
                let mid = bytes.len() / 2 + 8;
                bytes[mid] ^= 0x10;
            }
        }
        std::fs::write(&path, bytes).unwrap();
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

/// A fresh PostgreSQL store on a server of its own, stopped when dropped.
pub(crate) struct Pg {
    // Dropped last: the server outlives every connection of the test.
    pub(crate) url: String,
    scratch: tempfile::TempDir,
    pub(crate) server: PgServer,
}

impl Pg {
    pub(crate) fn new() -> Pg {
        let server = PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL must start: {e}"));
        let url = server.create_db("store").unwrap();
        PgStore::init(&url, Arc::new(SystemClock)).unwrap();
        Pg {
            url,
            scratch: tempfile::tempdir().unwrap(),
            server,
        }
    }

    pub(crate) fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Harness for Pg {
    fn open(&self, access: Access, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(PgStore::connect(&self.url, clock, access)?))
    }

    fn address(&self) -> String {
        self.url.clone()
    }

    fn damage(&self, d: &Digest, how: Damage) {
        let sql = match how {
            Damage::Truncate => {
                "UPDATE cowheap_blobs SET data = substring(data FROM 1 FOR length(data) - 10) \
                 WHERE digest = $1"
            }
            Damage::Flip => {
                "UPDATE cowheap_blobs SET data = set_byte(data, length(data) / 2, \
                 get_byte(data, length(data) / 2) # 16) WHERE digest = $1"
            }
        };
        let n = self.raw().execute(sql, &[&d.0.as_slice()]).unwrap();
        assert_eq!(n, 1, "the blob to damage exists");
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

/// A tenant suspended with segments out, resumed, marked and suspended by a command-line
/// node, keeps its segments: the state the command line writes back names them, and a node
/// resuming the tenant reads and faults them in.
pub(crate) fn command_line_keeps_segments_out(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.create_tenant(&t("seg"), fp, None).unwrap();
    let a = node(h, "a", Access::Operator);
    let mut r = a.resume(&t("seg")).unwrap();
    let (roots, hashes) = build_parts(&mut r.tenant, 2);
    for &root in &roots {
        r.swap_out(&[root]).unwrap();
    }
    assert_eq!(segments_with_stubs(&r.tenant), 2);
    a.suspend(r).unwrap();
    let ids = s.segments(&t("seg")).unwrap();
    assert_eq!(ids.len(), 2);

    let c = cowheap_store::cli::CliNode::open(
        &h.address(),
        Access::Operator,
        "c",
        &h.scratch().join("cli-c"),
    )
    .unwrap();
    c.resume("seg").unwrap();
    c.mark("seg", 7).unwrap();
    c.suspend("seg").unwrap();
    assert_eq!(s.segments(&t("seg")).unwrap(), ids, "the segments are kept");

    let mut r = a.resume(&t("seg")).unwrap();
    assert_eq!(segments_with_stubs(&r.tenant), 2);
    assert_eq!(read_mark(&r.tenant), Some(7));
    for (i, &hash) in hashes.iter().enumerate() {
        assert!(
            check_part(&mut r.tenant, i, i as i64, hash),
            "part {i} faulted in"
        );
    }
    a.suspend(r).unwrap();
}

/// A test's hook, run once when armed.
type Hook = std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>;

/// Hooks that run one test hook once, when armed, at the next `versions` call (what a
/// commit's sync asks first): a node stalled there, after its renewal and before its
/// version write; and another at the next version write, fenced or not, before the inner
/// store takes it: a node stalled inside its version write.
#[derive(Default)]
pub(crate) struct Stalls {
    pub(crate) hook: Hook,
    pub(crate) in_write: Hook,
}

/// A store whose calls stall as [`Stalls`] says.
pub(crate) type Stalling = wrapped::Wrapped<Stalls>;

impl Stalls {
    fn stall(hook: &Hook) {
        let hook = hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl wrapped::Hooks for Stalls {
    fn before(&self, call: wrapped::Call) -> Result<(), StoreError> {
        match call {
            wrapped::Call::PutVersion { .. } | wrapped::Call::PutVersionClaimed { .. } => {
                Stalls::stall(&self.in_write);
            }
            wrapped::Call::Versions => Stalls::stall(&self.hook),
            _ => {}
        }
        Ok(())
    }
}

/// What the stalled-commit tests share: tenant `c` of a fresh base, a manual clock, node `a`
/// on a [`Stalling`] store and node `b` on a plain one, both on that clock with a
/// 1,000 ms lease.
struct StalledPair {
    fp: Fingerprint,
    s: Arc<dyn Store>,
    clock: ManualClock,
    stalling: Arc<Stalling>,
    a: Node,
    b: Arc<Node>,
}

fn stalled_pair(h: &dyn Harness) -> StalledPair {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.create_tenant(&t("c"), fp, None).unwrap();
    let clock = ManualClock::new(Millis(1_000_000));
    let stalling = Arc::new(Stalling::new(
        h.open(Access::Operator, Arc::new(clock.clone())).unwrap(),
        Stalls::default(),
    ));
    let a = Node::new(stalling.clone(), n("a"), h.scratch().join("cache-a")).with_lease(1_000);
    let b = Arc::new(
        Node::new(
            h.open(Access::Operator, Arc::new(clock.clone())).unwrap(),
            n("b"),
            h.scratch().join("cache-b"),
        )
        .with_lease(1_000),
    );
    StalledPair {
        fp,
        s,
        clock,
        stalling,
        a,
        b,
    }
}

/// A node that stalls inside [`Node::commit_resident`] (after its renewal, before its
/// version write) keeps its lease before the write: stalled past half its lease it renews
/// and publishes, its claim extended; stalled past its whole lease, while another node
/// claims the tenant, it publishes nothing (fenced), and the tenant keeps its change.
pub(crate) fn a_node_stalled_in_a_commit_keeps_its_lease(h: &dyn Harness) {
    let StalledPair {
        fp,
        s,
        clock,
        stalling,
        a,
        b,
    } = stalled_pair(h);
    let xs = slot_objects(&a.base(fp).unwrap(), 2);
    let mut r = a.resume(&t("c")).unwrap();

    // Stalled 700 ms of a 1,000 ms lease: renewed before the write, which lands.
    r.tenant.set_slot(xs[0], 0, Value::int(1)).unwrap();
    let c = clock.clone();
    *stalling.hook.lock().unwrap() = Some(Box::new(move || c.advance(700)));
    let v = a
        .commit_resident(&mut r, CommitMode::WriteWrite, &[])
        .unwrap();
    assert_eq!(v.version(), 1);
    assert_eq!(
        r.claim().lease_expiry,
        Millis(1_001_700),
        "renewed at the write"
    );
    assert_eq!(s.record(&t("c")).unwrap().lease_expiry, Millis(1_001_700));

    // Stalled past the lease, while b claims the tenant: nothing is published.
    r.tenant.set_slot(xs[1], 0, Value::int(2)).unwrap();
    let (c, b2) = (clock.clone(), b.clone());
    let taken = Arc::new(std::sync::Mutex::new(None));
    let took = taken.clone();
    *stalling.hook.lock().unwrap() = Some(Box::new(move || {
        c.advance(2_000);
        *took.lock().unwrap() = Some(b2.resume(&t("c")).unwrap());
    }));
    assert!(matches!(
        a.commit_resident(&mut r, CommitMode::WriteWrite, &[]),
        Err(StoreError::Fenced { .. })
    ));
    assert!(taken.lock().unwrap().is_some(), "b holds the tenant");
    assert_eq!(
        s.versions(fp, 0).unwrap().len(),
        1,
        "nothing more committed"
    );
    assert_eq!(
        r.tenant.slot(xs[1], 0).unwrap().as_int(),
        Some(2),
        "the fenced tenant keeps its change"
    );
}

/// A node that stalls inside its version write (past its lease check, before the store
/// takes the write) while another node claims the tenant publishes nothing: the store checks
/// the claim in the same atomic step as the write ([`Store::put_version_claimed`]), so the
/// commit is fenced, adds no blob, and the tenant keeps its change. The node that holds the
/// claim then commits.
pub(crate) fn a_node_stalled_inside_its_version_write_publishes_nothing(h: &dyn Harness) {
    let StalledPair {
        fp,
        s,
        clock,
        stalling,
        a,
        b,
    } = stalled_pair(h);
    let x = slot_objects(&a.base(fp).unwrap(), 1)[0];
    let mut r = a.resume(&t("c")).unwrap();
    r.tenant.set_slot(x, 0, Value::int(5)).unwrap();
    // Inside the write: a's lease runs out and b claims the tenant.
    let (c, b2, s2) = (clock.clone(), b.clone(), s.clone());
    let taken = Arc::new(std::sync::Mutex::new(None));
    let took = taken.clone();
    *stalling.in_write.lock().unwrap() = Some(Box::new(move || {
        c.advance(2_000);
        let resumed = b2.resume(&t("c")).unwrap();
        *took.lock().unwrap() = Some((resumed, s2.blob_stats().unwrap()));
    }));
    match a.commit_resident(&mut r, CommitMode::WriteWrite, &[]) {
        Err(StoreError::Fenced {
            tenant,
            held,
            current,
        }) => {
            assert_eq!(tenant, t("c"));
            assert!(current > held, "b's claim moved the epoch on");
        }
        other => panic!(
            "a stalled write published: {:?}",
            other.map(|v| v.version())
        ),
    }
    let (mut r2, blobs) = taken.lock().unwrap().take().expect("the write stalled");
    assert!(s.versions(fp, 0).unwrap().is_empty(), "nothing committed");
    assert_eq!(
        s.blob_stats().unwrap(),
        blobs,
        "a fenced version adds no blob"
    );
    assert_eq!(
        r.tenant.slot(x, 0).unwrap().as_int(),
        Some(5),
        "the fenced tenant keeps its change"
    );
    assert_eq!(s.record(&t("c")).unwrap().owner, Some(n("b")));
    r2.tenant.set_slot(x, 0, Value::int(6)).unwrap();
    let v = b
        .commit_resident(&mut r2, CommitMode::WriteWrite, &[])
        .unwrap();
    assert_eq!(v.version(), 1);
    assert_eq!(s.versions(fp, 0).unwrap().len(), 1);
}

/// A version fenced by a claim ([`Store::put_version_claimed`]) is written while the claim
/// is the record's, by the claim's tenant's committers, into the history of that tenant's
/// base; every other case is a typed refusal that writes nothing.
pub(crate) fn claimed_versions(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let other = real_base(h, 1_200);
    let s = op(h);
    s.add_principal(&p("p1"), "secret-1").unwrap();
    s.add_principal(&p("p2"), "secret-2").unwrap();
    s.allow_commit(fp, &p("p1")).unwrap();
    s.create_tenant(&t("t1"), fp, Some(&p("p1"))).unwrap();
    s.create_tenant(&t("t2"), fp, Some(&p("p2"))).unwrap();
    s.create_tenant(&t("elsewhere"), other, None).unwrap();
    let clock = ManualClock::new(Millis(1_000_000));
    let open = |access| h.open(access, Arc::new(clock.clone())).unwrap();
    let (p1, p2, s) = (
        open(Access::principal(p("p1"), "secret-1")),
        open(Access::principal(p("p2"), "secret-2")),
        open(Access::Operator),
    );
    let (layers, _) = history(h, fp, 3, 2);
    let blobs = s.blob_stats().unwrap();
    let refused = |what: &str, r: Result<cowheap_store::VersionRecord, StoreError>| {
        assert!(
            s.versions(fp, 0).unwrap().is_empty(),
            "{what}: nothing written"
        );
        assert_eq!(s.blob_stats().unwrap(), blobs, "{what}: no blob added");
        r.expect_err(what)
    };

    // A claim that is no longer the record's: fenced.
    let stale = p1.claim(&t("t1"), &n("a"), 1_000).unwrap();
    clock.advance(2_000);
    let live = p1.claim(&t("t1"), &n("b"), 1_000).unwrap();
    let e = refused("stale", p1.put_version_claimed(&stale, fp, 1, &layers[0]));
    assert!(matches!(e, StoreError::Fenced { .. }), "{e:?}");
    // A claim of a tenant of another base.
    let elsewhere = s.claim(&t("elsewhere"), &n("a"), 1_000).unwrap();
    let e = refused(
        "another base",
        s.put_version_claimed(&elsewhere, fp, 1, &layers[0]),
    );
    assert!(matches!(e, StoreError::LayerMismatch { .. }), "{e:?}");
    // A principal holding a claim of its tenant, but no committer of the base.
    let c2 = p2.claim(&t("t2"), &n("a"), 1_000).unwrap();
    let e = refused(
        "not a committer",
        p2.put_version_claimed(&c2, fp, 1, &layers[0]),
    );
    assert!(matches!(e, StoreError::NotCommitter { .. }), "{e:?}");
    // A committer presenting a claim of a tenant not granted to it.
    let e = refused(
        "not its tenant",
        p1.put_version_claimed(&c2, fp, 1, &layers[0]),
    );
    assert!(
        matches!(
            e,
            StoreError::TenantMissing { .. } | StoreError::Denied { .. }
        ),
        "{e:?}"
    );
    // Bytes that are not a layer of this history over the newest version.
    let e = refused(
        "skips one",
        p1.put_version_claimed(&live, fp, 2, &layers[1]),
    );
    assert!(matches!(e, StoreError::VersionConflict { .. }), "{e:?}");

    // The live claim: written, as its principal.
    let v1 = p1.put_version_claimed(&live, fp, 1, &layers[0]).unwrap();
    assert_eq!((v1.number, v1.committed_by.clone()), (1, Some(p("p1"))));
    assert_eq!(s.versions(fp, 0).unwrap(), vec![v1]);
    // Released, the claim fences nothing more.
    p1.release(&live).unwrap();
    assert!(matches!(
        p1.put_version_claimed(&live, fp, 2, &layers[1]),
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(s.versions(fp, 0).unwrap().len(), 1);
}

/// A node whose claim on a resident tenant another node took over (its lease ran out)
/// commits nothing of it through [`Node::commit_resident`]; the node that holds the claim
/// commits.
pub(crate) fn a_node_that_lost_its_claim_commits_nothing(h: &dyn Harness) {
    let fp = real_base(h, 1_000);
    let s = op(h);
    s.create_tenant(&t("c"), fp, None).unwrap();
    let a = node(h, "a", Access::Operator);
    let x = slot_objects(&a.base(fp).unwrap(), 1)[0];
    let mut r = a.resume(&t("c")).unwrap();
    r.tenant.set_slot(x, 0, Value::int(41)).unwrap();
    // a's lease has run out on late's clock: late claims the tenant.
    let late = late_node(h, "late");
    let mut r2 = late.resume(&t("c")).unwrap();
    assert!(matches!(
        a.commit_resident(&mut r, CommitMode::WriteWrite, &[]),
        Err(StoreError::Fenced { .. })
    ));
    assert!(s.versions(fp, 0).unwrap().is_empty(), "nothing committed");
    assert_eq!(
        r.tenant.slot(x, 0).unwrap().as_int(),
        Some(41),
        "the fenced tenant keeps its change"
    );
    r2.tenant.set_slot(x, 0, Value::int(42)).unwrap();
    let v = late
        .commit_resident(&mut r2, CommitMode::WriteWrite, &[])
        .unwrap();
    assert_eq!(v.version(), 1);
    assert_eq!(s.versions(fp, 0).unwrap().len(), 1);
}

/// Replaces the file at `path` (if there is one) with a FIFO.
#[allow(
    unused_imports,
    reason = "a FIFO is made by some of the tests that share this module"
)]
pub(crate) use cowheap_testkit::mkfifo as fifo;

/// Runs `f` on a thread of its own: its answer, or `None` if it gave none within 30
/// seconds, for a call that must answer at once rather than wait on a FIFO for ever (the
/// thread, stuck, is left behind).
pub(crate) fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30)).ok()
}

/// A sweep removes exactly the blobs nothing names (replaced states, a removed segment's
/// blob) and keeps every named one readable (the base, the latest states, a shared state, a
/// live segment, a version's layer); a principal may not sweep, and a second sweep finds
/// nothing.
pub(crate) fn sweeping_blobs(h: &dyn Harness) {
    use cowheap_segment::swap::SegmentId;
    let fp = real_base(h, 200);
    let s = op(h);
    s.add_principal(&p("p"), "secret").unwrap();
    for name in ["a", "b"] {
        s.create_tenant(&t(name), fp, Some(&p("p"))).unwrap();
    }
    let ca = s.claim(&t("a"), &n("n"), 60_000).unwrap();
    let cb = s.claim(&t("b"), &n("n"), 60_000).unwrap();
    // Tenant b keeps the state a goes past: one blob, named by b.
    s.write_state(&cb, b"shared state").unwrap();
    s.write_state(&ca, b"shared state").unwrap();
    s.write_state(&ca, b"state one").unwrap();
    s.write_state(&ca, b"state two!").unwrap();
    let latest = s.write_state(&ca, b"latest state").unwrap();
    s.put_segment(&ca, SegmentId::new(1), b"a segment faulted back in")
        .unwrap();
    s.put_segment(&ca, SegmentId::new(2), b"a segment still out")
        .unwrap();
    s.remove_segment(&ca, SegmentId::new(1)).unwrap();
    let v1 = s.put_version(fp, 1, &layer_v1(h, fp, 5)).unwrap();
    let before = s.blob_stats().unwrap();

    let principal = h
        .open(Access::principal(p("p"), "secret"), Arc::new(SystemClock))
        .unwrap();
    assert!(matches!(
        principal.sweep_blobs(),
        Err(StoreError::Denied { .. })
    ));
    assert_eq!(s.blob_stats().unwrap(), before);

    let removed = s.sweep_blobs().unwrap();
    let gone = [
        &b"state one"[..],
        b"state two!",
        b"a segment faulted back in",
    ];
    assert_eq!(removed.count, gone.len() as u64);
    assert_eq!(
        removed.bytes,
        gone.iter().map(|g| g.len() as u64).sum::<u64>()
    );
    let after = s.blob_stats().unwrap();
    assert_eq!(after.count, before.count - removed.count);
    assert_eq!(after.bytes, before.bytes - removed.bytes);
    // Everything named reads as before.
    assert!(s.get_base(fp).is_ok());
    assert_eq!(s.read_state(&t("a"), latest).unwrap(), b"latest state");
    let shared = s.record(&t("b")).unwrap().state.unwrap();
    assert_eq!(s.read_state(&t("b"), shared).unwrap(), b"shared state");
    assert_eq!(
        s.get_segment(&t("a"), SegmentId::new(2)).unwrap(),
        b"a segment still out"
    );
    assert!(s.get_layer(v1.layer).is_ok());
    assert_eq!(
        s.sweep_blobs().unwrap(),
        cowheap_store::BlobStats::default()
    );
    // The command line's sweep says what went and what is left.
    s.write_state(&ca, b"one more").unwrap();
    let text = cowheap_store::cli::sweep(&*s).unwrap();
    assert!(
        text.starts_with(&format!(
            "removed 1 blobs (12 bytes); {} blobs",
            after.count
        )),
        "{text}"
    );
}

/// A sweep beside writers removes no blob a write names: writers that keep going back to
/// states written before (whose blobs a sweep may be removing as they are named again)
/// read every state they wrote, while sweeps run in a loop.
pub(crate) fn sweeping_beside_writers(h: &dyn Harness) {
    let fp = fake_base(&*op(h), 9);
    let writers = 2;
    let rounds = 60;
    let stores: Vec<Arc<dyn Store>> = (0..=writers).map(|_| op(h)).collect();
    for w in 0..writers {
        stores[0]
            .create_tenant(&t(&format!("w{w}")), fp, None)
            .unwrap();
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for (w, st) in stores.iter().enumerate().skip(1) {
            let done = &done;
            sc.spawn(move || {
                // Counted as done however the writer ends, so that a failed assertion
                // stops the sweeps too rather than leave them looping.
                struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _done = Done(done);
                let tenant = t(&format!("w{}", w - 1));
                let c = st.claim(&tenant, &n("n"), 600_000).unwrap();
                for i in 0..rounds {
                    // Three states in turn: each is replaced, swept, and written again.
                    let state = format!("writer {w} state {}", i % 3);
                    let d = st.write_state(&c, state.as_bytes()).unwrap();
                    assert_eq!(st.read_state(&tenant, d).unwrap(), state.as_bytes());
                }
            });
        }
        let sweeper = &stores[0];
        let done = &done;
        sc.spawn(move || {
            let mut sweeps = 0;
            while done.load(std::sync::atomic::Ordering::SeqCst) < writers || sweeps < 3 {
                sweeper.sweep_blobs().unwrap();
                sweeps += 1;
            }
        });
    });
    // Each tenant's last state is there, and nothing else of theirs.
    let s = op(h);
    for w in 0..writers {
        let tenant = t(&format!("w{w}"));
        let d = s.record(&tenant).unwrap().state.unwrap();
        let want = format!("writer {} state {}", w + 1, (rounds - 1) % 3);
        assert_eq!(s.read_state(&tenant, d).unwrap(), want.as_bytes());
    }
    s.sweep_blobs().unwrap();
    // The base and one state a writer.
    assert_eq!(s.blob_stats().unwrap().count, 1 + writers as u64);
}
