//! A command-line commit whose version landed in the store though the store's answer was
//! lost (`StoreError::CommitLanded`) stands on that version afterwards: the resident tenant
//! is aborted onto the version holding its changes and kept there, so its next commit lands
//! as the next version instead of conflicting with its own.

use cowheap_heap::synth;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, StoreError, open_store};
use std::sync::Arc;

#[test]
fn a_cli_commit_whose_answer_was_lost_stands_on_the_landed_version() {
    let dir = tempfile::tempdir().unwrap();
    let addr = dir.path().join("store").to_str().unwrap().to_owned();
    cli::init(&addr).unwrap();
    let op = open_store(
        &addr,
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let fp = cli::put_base(&*op, &synth::image(1_000, 3)).unwrap();
    let fp = fp.trim().to_owned();
    cli::create(&*op, "alice", &fp, None).unwrap();
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 42).unwrap();
    let failing = |lands: bool| -> Arc<dyn Store> {
        let inner = open_store(
            &addr,
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        Arc::new(FailingVersionWrite { inner, lands })
    };
    let a_lossy = CliNode::new(failing(true), "a", &a_dir).unwrap();
    let landed = a_lossy.commit("alice");
    assert!(
        matches!(&landed, Ok(s) if s.contains("version 1") && s.contains("answer was lost")),
        "{landed:?}"
    );
    assert_eq!(cli::versions(&*op, &fp, 0).unwrap().lines().count(), 1);
    // The node goes on: a new mark, and a commit, which lands as version 2.
    a.mark("alice", 43).unwrap();
    let again = a.commit("alice");
    assert!(
        matches!(&again, Ok(s) if s.contains("version 2")),
        "after a lost answer the tenant commits again: {again:?}"
    );
    // A failure that is no lost answer is still an error, the tenant unchanged.
    a.mark("alice", 44).unwrap();
    let refused = CliNode::new(failing(false), "a", &a_dir)
        .unwrap()
        .commit("alice");
    assert!(matches!(refused, Err(StoreError::Io { .. })), "{refused:?}");
    assert!(a.commit("alice").unwrap().contains("version 3"));
}

/// Delegates to `inner`, but a claimed version write answers an error: after it landed
/// (`lands`, a lost answer), or before anything was written.
#[derive(Debug)]
struct FailingVersionWrite {
    inner: Arc<dyn Store>,
    lands: bool,
}

use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{
    BlobStats, Claim, Digest, Millis, NodeName, PrincipalName, Result, Store, TenantName,
    TenantRecord, VersionRecord,
};

impl Store for FailingVersionWrite {
    fn put_base(&self, f: Fingerprint, i: &[u8]) -> Result<Digest> {
        self.inner.put_base(f, i)
    }
    fn get_base(&self, f: Fingerprint) -> Result<Vec<u8>> {
        self.inner.get_base(f)
    }
    fn bases(&self) -> Result<Vec<Fingerprint>> {
        self.inner.bases()
    }
    fn add_principal(&self, n: &PrincipalName, s: &str) -> Result<()> {
        self.inner.add_principal(n, s)
    }
    fn create_tenant(
        &self,
        t: &TenantName,
        b: Fingerprint,
        p: Option<&PrincipalName>,
    ) -> Result<TenantRecord> {
        self.inner.create_tenant(t, b, p)
    }
    fn record(&self, t: &TenantName) -> Result<TenantRecord> {
        self.inner.record(t)
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.inner.tenants()
    }
    fn claim(&self, t: &TenantName, n: &NodeName, l: u64) -> Result<Claim> {
        self.inner.claim(t, n, l)
    }
    fn renew(&self, c: &Claim, l: u64) -> Result<Claim> {
        self.inner.renew(c, l)
    }
    fn now(&self) -> Millis {
        self.inner.now()
    }
    fn write_state(&self, c: &Claim, s: &[u8]) -> Result<Digest> {
        self.inner.write_state(c, s)
    }
    fn release(&self, c: &Claim) -> Result<()> {
        self.inner.release(c)
    }
    fn suspend(&self, c: &Claim, s: &[u8]) -> Result<Digest> {
        self.inner.suspend(c, s)
    }
    fn read_state(&self, t: &TenantName, d: Digest) -> Result<Vec<u8>> {
        self.inner.read_state(t, d)
    }
    fn blob_stats(&self) -> Result<BlobStats> {
        self.inner.blob_stats()
    }
    fn allow_commit(&self, b: Fingerprint, p: &PrincipalName) -> Result<()> {
        self.inner.allow_commit(b, p)
    }
    fn committers(&self, b: Fingerprint) -> Result<Vec<PrincipalName>> {
        self.inner.committers(b)
    }
    fn put_version(&self, o: Fingerprint, n: u64, l: &[u8]) -> Result<VersionRecord> {
        self.inner.put_version(o, n, l)
    }
    fn put_version_claimed(
        &self,
        c: &Claim,
        o: Fingerprint,
        n: u64,
        l: &[u8],
    ) -> Result<VersionRecord> {
        if self.lands {
            self.inner.put_version_claimed(c, o, n, l)?;
        }
        Err(StoreError::Io {
            path: "versions".into(),
            source: std::io::Error::other("answer lost"),
        })
    }
    fn versions(&self, o: Fingerprint, a: u64) -> Result<Vec<VersionRecord>> {
        self.inner.versions(o, a)
    }
    fn get_layer(&self, d: Digest) -> Result<Vec<u8>> {
        self.inner.get_layer(d)
    }
    fn put_segment(&self, c: &Claim, i: SegmentId, b: &[u8]) -> Result<Digest> {
        self.inner.put_segment(c, i, b)
    }
    fn get_segment(&self, t: &TenantName, i: SegmentId) -> Result<Vec<u8>> {
        self.inner.get_segment(t, i)
    }
    fn remove_segment(&self, c: &Claim, i: SegmentId) -> Result<()> {
        self.inner.remove_segment(c, i)
    }
    fn segments(&self, t: &TenantName) -> Result<Vec<SegmentId>> {
        self.inner.segments(t)
    }
}
