//! A store that passes every call to another, with a test's hooks before and after each:
//! the failing, lossy, stalling and gated stores of the tests are hooks on it, so each says
//! only what it changes.

#![allow(dead_code, reason = "each test binary uses part of the shared hooks")]

use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{
    BlobStats, Claim, Digest, Millis, NodeName, PrincipalName, Result, Store, TenantName,
    TenantRecord, VersionRecord,
};
use std::sync::Arc;

/// One call of the [`Store`] trait, as a hook sees it: which call, and for the calls the
/// tests fail or hold back, the arguments they test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    PutBase,
    GetBase(Fingerprint),
    Bases,
    AddPrincipal,
    CreateTenant,
    Record,
    Tenants,
    Claim,
    Renew,
    WriteState,
    Release,
    Suspend,
    ReadState,
    BlobStats,
    SweepBlobs,
    AllowCommit,
    Committers,
    /// A version write without a claim.
    PutVersion {
        origin: Fingerprint,
        number: u64,
    },
    /// A version write fenced by a claim.
    PutVersionClaimed {
        origin: Fingerprint,
        number: u64,
    },
    Versions,
    GetLayer,
    PutSegment,
    GetSegment,
    RemoveSegment,
    Segments,
    RetainSegments,
}

/// What a test does around the calls of a [`Wrapped`] store. Both hooks do nothing unless
/// a test says otherwise.
pub(crate) trait Hooks: Send + Sync {
    /// Runs before `call` reaches the inner store. An error is the call's answer, and the
    /// inner store is not called: a failure that wrote nothing.
    fn before(&self, call: Call) -> Result<()> {
        let _ = call;
        Ok(())
    }

    /// Runs after the inner store answered `call` (`ok` if it answered no error). An error
    /// replaces the answer: a call that landed, or failed, and whose answer was lost.
    fn after(&self, call: Call, ok: bool) -> Result<()> {
        let _ = (call, ok);
        Ok(())
    }
}

/// `inner` with `hooks` around each call. Every call, `suspend` and `retain_segments`
/// included, is the inner store's own. It dereferences to its hooks, whose switches and
/// counters a test reads and sets.
pub(crate) struct Wrapped<H> {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) hooks: H,
}

impl<H> Wrapped<H> {
    /// `inner` with `hooks` around each call.
    pub(crate) fn new(inner: Arc<dyn Store>, hooks: H) -> Wrapped<H> {
        Wrapped { inner, hooks }
    }
}

impl<H: Hooks> Wrapped<H> {
    /// `f` of the inner store, with the hooks around it.
    fn call<T>(&self, call: Call, f: impl FnOnce(&dyn Store) -> Result<T>) -> Result<T> {
        self.hooks.before(call)?;
        let out = f(&*self.inner);
        self.hooks.after(call, out.is_ok())?;
        out
    }
}

impl<H> std::ops::Deref for Wrapped<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

impl<H> std::fmt::Debug for Wrapped<H> {
    /// The inner store (the hooks may hold closures, which print nothing useful).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapped")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<H: Hooks> Store for Wrapped<H> {
    fn put_base(&self, f: Fingerprint, image: &[u8]) -> Result<Digest> {
        self.call(Call::PutBase, |s| s.put_base(f, image))
    }
    fn get_base(&self, f: Fingerprint) -> Result<Vec<u8>> {
        self.call(Call::GetBase(f), |s| s.get_base(f))
    }
    fn bases(&self) -> Result<Vec<Fingerprint>> {
        self.call(Call::Bases, |s| s.bases())
    }
    fn add_principal(&self, name: &PrincipalName, secret: &str) -> Result<()> {
        self.call(Call::AddPrincipal, |s| s.add_principal(name, secret))
    }
    fn create_tenant(
        &self,
        t: &TenantName,
        base: Fingerprint,
        p: Option<&PrincipalName>,
    ) -> Result<TenantRecord> {
        self.call(Call::CreateTenant, |s| s.create_tenant(t, base, p))
    }
    fn record(&self, t: &TenantName) -> Result<TenantRecord> {
        self.call(Call::Record, |s| s.record(t))
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.call(Call::Tenants, |s| s.tenants())
    }
    fn claim(&self, t: &TenantName, node: &NodeName, lease_ms: u64) -> Result<Claim> {
        self.call(Call::Claim, |s| s.claim(t, node, lease_ms))
    }
    fn renew(&self, c: &Claim, lease_ms: u64) -> Result<Claim> {
        self.call(Call::Renew, |s| s.renew(c, lease_ms))
    }
    fn now(&self) -> Millis {
        self.inner.now()
    }
    fn write_state(&self, c: &Claim, state: &[u8]) -> Result<Digest> {
        self.call(Call::WriteState, |s| s.write_state(c, state))
    }
    fn release(&self, c: &Claim) -> Result<()> {
        self.call(Call::Release, |s| s.release(c))
    }
    fn suspend(&self, c: &Claim, state: &[u8]) -> Result<Digest> {
        self.call(Call::Suspend, |s| s.suspend(c, state))
    }
    fn read_state(&self, t: &TenantName, d: Digest) -> Result<Vec<u8>> {
        self.call(Call::ReadState, |s| s.read_state(t, d))
    }
    fn blob_stats(&self) -> Result<BlobStats> {
        self.call(Call::BlobStats, |s| s.blob_stats())
    }
    fn sweep_blobs(&self) -> Result<BlobStats> {
        self.call(Call::SweepBlobs, |s| s.sweep_blobs())
    }
    fn allow_commit(&self, base: Fingerprint, p: &PrincipalName) -> Result<()> {
        self.call(Call::AllowCommit, |s| s.allow_commit(base, p))
    }
    fn committers(&self, base: Fingerprint) -> Result<Vec<PrincipalName>> {
        self.call(Call::Committers, |s| s.committers(base))
    }
    fn put_version(&self, origin: Fingerprint, number: u64, layer: &[u8]) -> Result<VersionRecord> {
        self.call(Call::PutVersion { origin, number }, |s| {
            s.put_version(origin, number, layer)
        })
    }
    fn put_version_claimed(
        &self,
        c: &Claim,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        self.call(Call::PutVersionClaimed { origin, number }, |s| {
            s.put_version_claimed(c, origin, number, layer)
        })
    }
    fn versions(&self, origin: Fingerprint, after: u64) -> Result<Vec<VersionRecord>> {
        self.call(Call::Versions, |s| s.versions(origin, after))
    }
    fn get_layer(&self, d: Digest) -> Result<Vec<u8>> {
        self.call(Call::GetLayer, |s| s.get_layer(d))
    }
    fn put_segment(&self, c: &Claim, id: SegmentId, bytes: &[u8]) -> Result<Digest> {
        self.call(Call::PutSegment, |s| s.put_segment(c, id, bytes))
    }
    fn get_segment(&self, t: &TenantName, id: SegmentId) -> Result<Vec<u8>> {
        self.call(Call::GetSegment, |s| s.get_segment(t, id))
    }
    fn remove_segment(&self, c: &Claim, id: SegmentId) -> Result<()> {
        self.call(Call::RemoveSegment, |s| s.remove_segment(c, id))
    }
    fn segments(&self, t: &TenantName) -> Result<Vec<SegmentId>> {
        self.call(Call::Segments, |s| s.segments(t))
    }
    fn retain_segments(&self, c: &Claim, keep: &[SegmentId]) -> Result<usize> {
        self.call(Call::RetainSegments, |s| s.retain_segments(c, keep))
    }
}
