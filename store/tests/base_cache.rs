//! A node's base cache under threads: threads wanting the same base fetch it once and share
//! it; threads wanting different bases fetch them at the same time (the node-wide lock is
//! not held across a fetch); a failed fetch is tried again by the next caller.

use cowheap_heap::{Fingerprint, synth};
use cowheap_store::{
    Access, BlobStats, Claim, Digest, LocalStore, Node, NodeName, PrincipalName, Result, Store,
    StoreError, SystemClock, TenantName, TenantRecord, VersionRecord,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A store whose base fetches are counted and held back until `gate` fetches are in flight
/// at once (or `patience` has passed), so a test can see whether fetches overlap.
#[derive(Debug)]
struct Gated {
    inner: LocalStore,
    fetches: AtomicUsize,
    in_flight: Mutex<usize>,
    /// Fetches that have reached the gate, ever (the gate opens when it is `gate`).
    reached: Mutex<usize>,
    most_at_once: AtomicUsize,
    arrived: Condvar,
    gate: usize,
    patience: Duration,
    /// Fetches of these fingerprints fail (a store that lost the base for a while).
    failing: Mutex<Vec<Fingerprint>>,
}

impl Gated {
    fn new(inner: LocalStore, gate: usize, patience: Duration) -> Gated {
        Gated {
            inner,
            fetches: AtomicUsize::new(0),
            in_flight: Mutex::new(0),
            reached: Mutex::new(0),
            most_at_once: AtomicUsize::new(0),
            arrived: Condvar::new(),
            gate,
            patience,
            failing: Mutex::new(Vec::new()),
        }
    }
}

impl Store for Gated {
    fn put_base(&self, fingerprint: Fingerprint, image: &[u8]) -> Result<Digest> {
        self.inner.put_base(fingerprint, image)
    }
    fn get_base(&self, fingerprint: Fingerprint) -> Result<Vec<u8>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.lock().unwrap().contains(&fingerprint) {
            return Err(StoreError::BaseMissing { fingerprint });
        }
        {
            let mut f = self.in_flight.lock().unwrap();
            *f += 1;
            self.most_at_once.fetch_max(*f, Ordering::SeqCst);
        }
        let mut n = self.reached.lock().unwrap();
        *n += 1;
        self.arrived.notify_all();
        let until = Instant::now() + self.patience;
        while *n < self.gate && Instant::now() < until {
            n = self
                .arrived
                .wait_timeout(n, until.saturating_duration_since(Instant::now()))
                .unwrap()
                .0;
        }
        drop(n);
        let out = self.inner.get_base(fingerprint);
        *self.in_flight.lock().unwrap() -= 1;
        out
    }
    fn bases(&self) -> Result<Vec<Fingerprint>> {
        self.inner.bases()
    }
    fn add_principal(&self, name: &PrincipalName, secret: &str) -> Result<()> {
        self.inner.add_principal(name, secret)
    }
    fn create_tenant(
        &self,
        tenant: &TenantName,
        base: Fingerprint,
        principal: Option<&PrincipalName>,
    ) -> Result<TenantRecord> {
        self.inner.create_tenant(tenant, base, principal)
    }
    fn record(&self, tenant: &TenantName) -> Result<TenantRecord> {
        self.inner.record(tenant)
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.inner.tenants()
    }
    fn claim(&self, tenant: &TenantName, node: &NodeName, lease_ms: u64) -> Result<Claim> {
        self.inner.claim(tenant, node, lease_ms)
    }
    fn now(&self) -> cowheap_store::Millis {
        self.inner.now()
    }
    fn renew(&self, claim: &Claim, lease_ms: u64) -> Result<Claim> {
        self.inner.renew(claim, lease_ms)
    }
    fn write_state(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        self.inner.write_state(claim, state)
    }
    fn release(&self, claim: &Claim) -> Result<()> {
        self.inner.release(claim)
    }
    fn read_state(&self, tenant: &TenantName, digest: Digest) -> Result<Vec<u8>> {
        self.inner.read_state(tenant, digest)
    }
    fn blob_stats(&self) -> Result<BlobStats> {
        self.inner.blob_stats()
    }
    fn allow_commit(&self, base: Fingerprint, principal: &PrincipalName) -> Result<()> {
        self.inner.allow_commit(base, principal)
    }
    fn committers(&self, base: Fingerprint) -> Result<Vec<PrincipalName>> {
        self.inner.committers(base)
    }
    fn put_version(&self, origin: Fingerprint, number: u64, layer: &[u8]) -> Result<VersionRecord> {
        self.inner.put_version(origin, number, layer)
    }
    fn put_version_claimed(
        &self,
        claim: &Claim,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        self.inner.put_version_claimed(claim, origin, number, layer)
    }
    fn versions(&self, origin: Fingerprint, after: u64) -> Result<Vec<VersionRecord>> {
        self.inner.versions(origin, after)
    }
    fn get_layer(&self, digest: Digest) -> Result<Vec<u8>> {
        self.inner.get_layer(digest)
    }
    fn put_segment(
        &self,
        c: &Claim,
        id: cowheap_segment::swap::SegmentId,
        bytes: &[u8],
    ) -> Result<Digest> {
        self.inner.put_segment(c, id, bytes)
    }
    fn get_segment(&self, t: &TenantName, id: cowheap_segment::swap::SegmentId) -> Result<Vec<u8>> {
        self.inner.get_segment(t, id)
    }
    fn remove_segment(&self, c: &Claim, id: cowheap_segment::swap::SegmentId) -> Result<()> {
        self.inner.remove_segment(c, id)
    }
    fn segments(&self, t: &TenantName) -> Result<Vec<cowheap_segment::swap::SegmentId>> {
        self.inner.segments(t)
    }
}

/// Two bases stored in a fresh local store, and that store wrapped in a [`Gated`].
fn setup(gate: usize, patience: Duration) -> (tempfile::TempDir, Arc<Gated>, [Fingerprint; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::init(
        &dir.path().join("store"),
        Arc::new(SystemClock),
        Access::Operator,
    )
    .unwrap();
    let setup = Node::new(
        Arc::new(
            LocalStore::open(
                &dir.path().join("store"),
                Arc::new(SystemClock),
                Access::Operator,
            )
            .unwrap(),
        ),
        NodeName::new("setup").unwrap(),
        dir.path().join("cache-setup"),
    );
    let mut fps = [Fingerprint([0; 32]); 2];
    for (i, fp) in fps.iter_mut().enumerate() {
        let file = dir.path().join(format!("base{i}.cowheap"));
        synth::image(500 + 100 * i, i as u64 + 1)
            .save(&file)
            .unwrap();
        *fp = setup.put_base_file(&file).unwrap();
    }
    assert_ne!(fps[0], fps[1]);
    (dir, Arc::new(Gated::new(local, gate, patience)), fps)
}

#[test]
fn threads_wanting_one_base_fetch_it_once_and_share_it() {
    // No fetch waits for another here (gate 1): the count is the point.
    let (dir, store, fps) = setup(1, Duration::ZERO);
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    let start = Barrier::new(8);
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    node.base(fps[0]).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        store.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for eight threads"
    );
    for b in &got[1..] {
        assert!(
            Arc::ptr_eq(b, &got[0]),
            "every thread holds the one mapped base"
        );
    }
    assert_eq!(got[0].heap().fingerprint(), fps[0]);
}

#[test]
fn different_bases_are_fetched_at_the_same_time() {
    // Each fetch waits (up to 20 s) until two are in flight: with a node-wide lock held
    // across a fetch the second could not start, and at most one would ever be in flight.
    let (dir, store, fps) = setup(2, Duration::from_secs(20));
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    let start = Barrier::new(2);
    let t0 = Instant::now();
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = fps
            .iter()
            .map(|&fp| {
                let (node, start) = (&node, &start);
                s.spawn(move || {
                    start.wait();
                    node.base(fp).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(store.most_at_once.load(Ordering::SeqCst), 2);
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "neither waited out its patience"
    );
    assert_eq!(got[0].heap().fingerprint(), fps[0]);
    assert_eq!(got[1].heap().fingerprint(), fps[1]);
    // Open now: no fetch again.
    assert!(Arc::ptr_eq(&node.base(fps[0]).unwrap(), &got[0]));
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_fetch_is_tried_again_and_does_not_block_other_bases() {
    let (dir, store, fps) = setup(1, Duration::ZERO);
    store.failing.lock().unwrap().push(fps[0]);
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    assert!(matches!(
        node.base(fps[0]),
        Err(StoreError::BaseMissing { .. })
    ));
    assert_eq!(node.base(fps[1]).unwrap().heap().fingerprint(), fps[1]);
    store.failing.lock().unwrap().clear();
    assert_eq!(node.base(fps[0]).unwrap().heap().fingerprint(), fps[0]);
    assert_eq!(store.fetches.load(Ordering::SeqCst), 3);
}
