//! The conformance suite: one set of checks every backend must pass, generic over a
//! [`Harness`] that makes a fresh store of that backend. `tests/local.rs` and `tests/pg.rs`
//! call each function.

#![allow(dead_code, reason = "each test binary uses part of the shared suite")]

use cowheap_heap::{Fingerprint, synth};
use cowheap_store::workload::{read_mark, write_mark};
use cowheap_store::{
    Access, Clock, Digest, Epoch, ManualClock, Millis, Node, NodeName, PrincipalName, Store,
    StoreError, SystemClock, TenantName,
};
use cowheap_store::{LocalStore, PgServer, PgStore};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

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

pub(crate) fn node(h: &dyn Harness, name: &str, access: Access) -> Node {
    let store = h.open(access, Arc::new(SystemClock)).unwrap();
    Node::new(store, n(name), h.scratch().join(format!("cache-{name}")))
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
    let clock = ManualClock::new(Millis(u64::MAX / 4));
    let late = Node::new(
        h.open(Access::Operator, Arc::new(clock)).unwrap(),
        n("late"),
        h.scratch().join("cache-late"),
    );
    let mut r = a.resume(&t("n2")).unwrap();
    write_mark(&mut r.tenant, 7).unwrap();
    let mut r2 = late.resume(&t("n2")).unwrap(); // a's lease has run out on late's clock
    write_mark(&mut r2.tenant, 8).unwrap();
    late.suspend(r2).unwrap();
    assert!(matches!(a.suspend(r), Err(StoreError::Fenced { .. })));
    let r = b.resume(&t("n2")).unwrap();
    assert_eq!(read_mark(&r.tenant), Some(8));
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
        let path = s.blob_path(d);
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
