//! A node: what claims tenants from a store, runs them and suspends them back.

use crate::segments::{FrameError, StoreSegments, decode_state, encode_state};
use crate::store::{Access, Claim, Store};
use crate::{Digest, NodeName, Result, StoreError, TenantName, fingerprint_hex};
use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_heap::{BaseHeap, Fingerprint, Verification};
use cowheap_segment::swap::{SegmentId, SwapError, SwappedOut, Swapper};
use cowheap_tenants::hosts::{HostError, HostPlugins};
use cowheap_tenants::{RestoreError, SnapshotError, Tenant, TenantConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The lease a node takes by default: 30 seconds.
pub const DEFAULT_LEASE_MS: u64 = 30_000;

/// A tenant this node holds: the tenant itself, the claim that lets the node write it, and
/// the swapper that swaps its segments out to the store and faults them back in.
#[derive(Debug)]
pub struct Resident {
    /// The tenant, to work on.
    pub tenant: Tenant,
    pub(crate) claim: Claim,
    swapper: Swapper,
    /// Set when a suspend failed and the store could not say whether it landed: the claim
    /// may be released already. [`Node::renew`] settles it.
    unsure: bool,
}

impl Resident {
    /// The claim this node holds on the tenant.
    pub fn claim(&self) -> &Claim {
        &self.claim
    }

    /// The tenant's name in the store.
    pub fn name(&self) -> &TenantName {
        &self.claim.tenant
    }

    /// True if a suspend of this resident failed in a way the store could not settle (its
    /// record could not be read after the failure either): the suspend may have landed and
    /// released the claim. Renew it ([`Node::renew`]) before working on it: a renewal that
    /// is fenced means the store has the state (or another node has the tenant).
    pub fn is_unsure(&self) -> bool {
        self.unsure
    }

    /// The tenant's swapper: its segments go to the store ([`StoreSegments`], under this
    /// claim) and its files stay there after a fault-in until a state that no longer names
    /// them is written ([`Node::checkpoint`]) or the tenant is resumed again.
    pub fn swapper(&self) -> &Swapper {
        &self.swapper
    }

    /// Swaps the segment of `roots` out of the tenant into the store
    /// ([`Swapper::swap_out`]): the roots become stubs that fault it back in when touched,
    /// on this node or, after a suspend, on any node that resumes the tenant. Time: as
    /// [`Swapper::swap_out`], plus one store write.
    ///
    /// # Errors
    /// [`StoreError::Swap`] holding the swapper's reason (a store error, fenced or denied,
    /// is [`cowheap_segment::swap::StoreError::Backend`] holding the [`StoreError`]); the
    /// tenant is as it was.
    pub fn swap_out(&mut self, roots: &[Value]) -> Result<SwappedOut> {
        self.swapper
            .swap_out(&mut self.tenant, roots)
            .map_err(|e| swap_error(&self.claim.tenant, e))
    }

    /// Faults segment `id` in now ([`Swapper::fault_in`]), rather than at the first touch.
    ///
    /// # Errors
    /// [`StoreError::Swap`] with the reason; the segment stays out and the tenant usable.
    pub fn fault_in(&mut self, id: SegmentId) -> Result<()> {
        self.swapper
            .fault_in(&mut self.tenant, id)
            .map_err(|e| swap_error(&self.claim.tenant, e))
    }

    /// The tenant's state as the store keeps it: its snapshot, each host object it holds in
    /// memory saved by its kind's plugin in `plugins` ([`Tenant::snapshot_with`]; a
    /// placeholder keeps the bytes it was restored with), framed with the records of its
    /// segments out if it has any ([`crate::segments`]). Time: O(private), plus the
    /// plugins' work.
    ///
    /// # Errors
    /// [`StoreError::HostObject`] if a host object's kind has no plugin or its plugin
    /// cannot save it; [`StoreError::Swap`] if the records cannot be taken;
    /// [`StoreError::OutOfMemory`] if the allocator refuses the state's buffer or the
    /// records' lists. Nothing is written either way.
    pub(crate) fn state(&mut self, plugins: &HostPlugins) -> Result<Vec<u8>> {
        let records = self
            .swapper
            .records(&mut self.tenant)
            .map_err(|e| records_error(&self.claim.tenant, e))?;
        let snapshot = self.tenant.snapshot_with(plugins).map_err(|e| match e {
            SnapshotError::Host(e) => host_error(&self.claim.tenant, e),
            SnapshotError::OutOfMemory { bytes } => StoreError::OutOfMemory {
                what: "the tenant's snapshot",
                bytes,
            },
        })?;
        encode_state(snapshot, &records)
    }

    /// The ids of the segments the tenant has out.
    pub(crate) fn segments_out(&self) -> Vec<SegmentId> {
        self.swapper
            .swapped()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }
}

fn host_error(tenant: &TenantName, e: HostError) -> StoreError {
    StoreError::HostObject {
        tenant: tenant.clone(),
        source: Box::new(e),
    }
}

/// A suspend that failed ([`Node::try_suspend`]): why, and the tenant, still resident.
/// Unless the error is [`StoreError::Fenced`] (another node claimed the tenant since), the
/// claim is still held and the store keeps the tenant's last complete state, so the
/// resident can be worked on, checkpointed or suspended again; except when
/// [`Resident::is_unsure`]: the store could not say whether the suspend landed, and the
/// resident must be renewed ([`Node::renew`]) before it is worked on.
#[derive(Debug)]
pub struct SuspendFailed {
    /// Why the suspend failed.
    pub error: StoreError,
    /// The tenant, as it was before the call.
    pub resident: Box<Resident>,
}

impl std::fmt::Display for SuspendFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "suspend failed: {}", self.error)
    }
}

impl std::error::Error for SuspendFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<SuspendFailed> for StoreError {
    fn from(f: SuspendFailed) -> StoreError {
        f.error
    }
}

fn swap_error(tenant: &TenantName, e: SwapError) -> StoreError {
    StoreError::Swap {
        tenant: tenant.clone(),
        source: Box::new(e),
    }
}

/// The store's error for a swapper's error over the records of the segments out (their
/// lists at a suspend, or taken over at a resume): the allocator's refusal is
/// [`StoreError::OutOfMemory`], as for the snapshot beside them.
fn records_error(tenant: &TenantName, e: SwapError) -> StoreError {
    match e {
        SwapError::Tenant(cowheap_tenants::Error::OutOfMemory { bytes }) => {
            StoreError::OutOfMemory {
                what: "the records of the segments out",
                bytes,
            }
        }
        e => swap_error(tenant, e),
    }
}

/// A base as this node holds it: empty until fetched and opened.
type BaseSlot = Mutex<Option<Arc<Base>>>;

/// A node of a deployment: a store handle, the node's name, and a local cache of bases.
///
/// - **Resume** claims the tenant (the epoch moves on), fetches its base if this node lacks
///   it (once, into the cache directory, then mapped from there and kept for every later
///   tenant of that base), fetches its latest state and restores it. Segments the state
///   names as swapped out are taken over by the tenant's swapper ([`Resident::swapper`]),
///   so a touch of a stub faults its segment in from the store, whichever node swapped it
///   out.
/// - **Suspend** writes the tenant's snapshot (O(private), fenced by the claim's epoch),
///   with the records of its segments out, and releases the claim.
/// - **Host objects** the tenant holds in memory travel with it through the node's
///   plugins ([`Node::with_plugins`]): a suspend or checkpoint saves each by its kind's
///   plugin, a resume makes each again by the resuming node's plugin. A kind without a
///   plugin is refused ([`StoreError::HostObject`]) and nothing is written or released; at
///   resume the record keeps its state for a node that has the plugin, unless the node
///   accepts placeholders ([`Node::accept_placeholders`]).
///
/// ```
/// use cowheap_heap::{Value, synth};
/// use cowheap_store::{Access, LocalStore, Node, NodeName, SystemClock, TenantName};
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir().unwrap();
/// let clock = Arc::new(SystemClock);
/// let store = Arc::new(LocalStore::init(dir.path(), clock, Access::Operator).unwrap());
/// let image = dir.path().join("base.cowheap");
/// synth::image(1_000, 1).save(&image).unwrap();
///
/// let a = Node::new(store.clone(), NodeName::new("a").unwrap(), dir.path().join("cache-a"));
/// let fp = a.put_base_file(&image).unwrap();
/// let t = TenantName::new("t1").unwrap();
/// store_create(&a, &t, fp);
/// # fn store_create(n: &Node, t: &TenantName, fp: cowheap_heap::Fingerprint) {
/// #     n.store().create_tenant(t, fp, None).unwrap();
/// # }
///
/// let mut r = a.resume(&t).unwrap();
/// let g = r.tenant.base().heap().root("Smalltalk").unwrap();
/// r.tenant.set_slot(g, 0, Value::int(42)).unwrap();
/// a.suspend(r).unwrap();
///
/// let b = Node::new(store, NodeName::new("b").unwrap(), dir.path().join("cache-b"));
/// let r = b.resume(&t).unwrap();
/// assert_eq!(r.tenant.slot(g, 0).unwrap().as_int(), Some(42));
/// ```
#[derive(Debug)]
pub struct Node {
    store: Arc<dyn Store>,
    name: NodeName,
    cache: PathBuf,
    /// One slot per base this node has met. The map's lock is held only to find or make a
    /// slot; a base is fetched and verified under its own slot's lock, so two threads
    /// wanting one base fetch it once (the second waits for the first and takes its
    /// result) and different bases are fetched at the same time. A fetch that fails leaves
    /// its slot empty, and the next caller tries again.
    bases: Mutex<HashMap<Fingerprint, Arc<BaseSlot>>>,
    /// The node's repository of each history it has met, by origin ([`crate::versions`]).
    pub(crate) repos: Mutex<HashMap<Fingerprint, Arc<crate::versions::NodeRepo>>>,
    pub(crate) config: TenantConfig,
    lease_ms: u64,
    /// The host object plugins that suspends, checkpoints and resumes save and make host
    /// objects with, and that each resident's swapper carries host objects through.
    plugins: HostPlugins,
    /// Whether a resume (and a resident's fault-in) makes a host object without its plugin
    /// a placeholder rather than refusing it.
    placeholders: bool,
}

impl Node {
    /// A node named `name` on `store`, caching bases in `cache` (made when first needed),
    /// restoring tenants with the default configuration and taking
    /// [`DEFAULT_LEASE_MS`] leases.
    pub fn new(store: Arc<dyn Store>, name: NodeName, cache: impl Into<PathBuf>) -> Node {
        Node {
            store,
            name,
            cache: cache.into(),
            bases: Mutex::new(HashMap::new()),
            repos: Mutex::new(HashMap::new()),
            config: TenantConfig::default(),
            lease_ms: DEFAULT_LEASE_MS,
            plugins: HostPlugins::new(),
            placeholders: false,
        }
    }

    /// This node carries host objects through `plugins` ([`cowheap_tenants::hosts`]).
    ///
    /// - A suspend or checkpoint saves each host object the tenant holds in memory by its
    ///   kind's plugin ([`Tenant::snapshot_with`]); a resume makes each again by this
    ///   node's plugin ([`Tenant::restore_with_hosts`]), whichever node saved it. A kind
    ///   with no plugin is [`StoreError::HostObject`]: at a suspend nothing is written or
    ///   released, at a resume the record keeps its state (unless
    ///   [`Node::accept_placeholders`]).
    /// - Each resident's swapper carries them through segments ([`Swapper::with_plugins`]):
    ///   a segment holding a host object's proxy is swapped out with the state its plugin
    ///   saves, and made again by the plugin of the node that faults it in. Without the
    ///   kind's plugin such a segment is refused at swap-out, and one swapped out elsewhere
    ///   is refused at fault-in.
    ///
    /// Without plugins (the default) every host object is refused so.
    pub fn with_plugins(mut self, plugins: HostPlugins) -> Node {
        self.plugins = plugins;
        self
    }

    /// Whether a host object whose kind has no plugin on this node (or whose state was not
    /// saved) is resumed as a placeholder ([`Tenant::placeholders`]) rather than refused;
    /// by default it is refused. A placeholder keeps the bytes its plugin saved, and a
    /// later suspend or checkpoint writes them again, so a node with the plugin can make
    /// the object from them. The resident's swapper accepts placeholders likewise
    /// ([`Swapper::accept_placeholders`]). A plugin that fails to make its object is
    /// refused either way.
    pub fn accept_placeholders(mut self, accept: bool) -> Node {
        self.placeholders = accept;
        self
    }

    /// The host object plugins this node carries host objects through.
    pub fn plugins(&self) -> &HostPlugins {
        &self.plugins
    }

    /// This node restores tenants under `config` (the host's quota and mark policy).
    pub fn with_config(mut self, config: TenantConfig) -> Node {
        self.config = config;
        self
    }

    /// This node takes leases of `lease_ms`.
    pub fn with_lease(mut self, lease_ms: u64) -> Node {
        self.lease_ms = lease_ms;
        self
    }

    /// The node's name.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stores the cowheap image file at `path` as a base (after verifying it in full) and
    /// returns its fingerprint. Operator only. Time: O(size).
    pub fn put_base_file(&self, path: &Path) -> Result<Fingerprint> {
        // Read once, and verify a private copy of exactly those bytes: a file that changes
        // meanwhile cannot slip unverified bytes into the store.
        let bytes = cowheap_heap::file::read_regular(path).map_err(|e| StoreError::io(path, e))?;
        let dir = tempfile::tempdir().map_err(|e| StoreError::io(std::env::temp_dir(), e))?;
        let copy = dir.path().join("base.cowheap");
        std::fs::write(&copy, &bytes).map_err(|e| StoreError::io(&copy, e))?;
        let heap = BaseHeap::open_with(&copy, Verification::Full).map_err(StoreError::BaseFile)?;
        let fp = heap.fingerprint();
        drop(heap);
        self.store.put_base(fp, &bytes)?;
        Ok(fp)
    }

    /// The base with fingerprint `fp`: from memory if this node has it open, else from the
    /// cache directory, else fetched from the store into the cache first. A file in the cache
    /// is verified in full and its fingerprint checked when first opened. Time: O(1) when
    /// open; O(size) the first time in a process.
    ///
    /// Threads: the node-wide lock is held only to find `fp`'s slot, never across a fetch
    /// or a verification; callers wanting the same base wait on its slot and share one
    /// fetch, and callers wanting different bases fetch them in parallel.
    pub fn base(&self, fp: Fingerprint) -> Result<Arc<Base>> {
        let slot = {
            let mut bases = self.bases.lock().unwrap_or_else(|p| p.into_inner());
            bases.entry(fp).or_default().clone()
        };
        // A panic while fetching leaves the slot as it was (empty): nothing half made is
        // ever stored in it, so a poisoned lock is safe to take over.
        let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = held.as_ref() {
            return Ok(b.clone());
        }
        let base = Base::new(self.open_base(fp)?);
        *held = Some(base.clone());
        Ok(base)
    }

    /// Opens `fp` from the cache directory, fetching it from the store first if the cache
    /// lacks it or holds a damaged or different file. Time: O(size).
    fn open_base(&self, fp: Fingerprint) -> Result<BaseHeap> {
        std::fs::create_dir_all(&self.cache).map_err(|e| StoreError::io(&self.cache, e))?;
        let path = self.cache.join(format!("{}.cowheap", fingerprint_hex(&fp)));
        // Only a regular file is opened: a FIFO in the cache (which an open would wait on
        // for a writer, for ever), a device or a directory is damage, replaced below.
        let regular = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        if regular
            && let Ok(h) = BaseHeap::open_with(&path, Verification::Full)
            && h.fingerprint() == fp
        {
            return Ok(h);
        }
        // Missing, damaged or not this base: fetch it again.
        let bytes = self.store.get_base(fp)?;
        cowheap_heap::file::write_atomically(&path, |w| w.write_all(&bytes))
            .map_err(StoreError::BaseFile)?;
        let h = BaseHeap::open_with(&path, Verification::Full).map_err(StoreError::BaseFile)?;
        if h.fingerprint() != fp {
            return Err(StoreError::BaseMismatch {
                expected: fp,
                found: h.fingerprint(),
            });
        }
        Ok(h)
    }

    /// Claims `tenant`, fetches its base and latest state, and restores it (a fresh fork of
    /// the base if it has never been written). If anything after the claim fails, the claim
    /// is released and the record keeps its last complete state. Time: O(state size), plus
    /// the base's size the first time this node meets that base.
    ///
    /// The tenant's segments in the store that its state does not name are dropped (best
    /// effort: what a fault-in left, or a swap-out no state saw).
    ///
    /// The lease runs from the claim, so a slow resume (a large base fetched, a large state
    /// restored) hands back a resident with less of it left, or none: call
    /// [`Node::keep_lease`] before working on it, as [`crate::SwapRegistry`] does.
    ///
    /// # Errors
    /// [`StoreError::Held`] if another node holds it; [`StoreError::BaseMissing`],
    /// [`StoreError::BlobCorrupt`], [`StoreError::BlobTruncated`],
    /// [`StoreError::Restore`], [`StoreError::Damaged`] (the frame of a state with
    /// segments out) or [`StoreError::Swap`] (its records do not fit the snapshot) if what
    /// it needs is missing or damaged; [`StoreError::HostObject`] if the state holds a host
    /// object this node has no plugin for (and does not accept placeholders), whose state
    /// was not saved, or whose plugin fails to make it; [`StoreError::OutOfMemory`] if the
    /// allocator refuses the state's buffer, the restored tenant's memory or the lists of
    /// the records of its segments out. The claim is
    /// released and the record keeps its state, so a node with the plugin (or the memory)
    /// can resume the tenant.
    pub fn resume(&self, tenant: &TenantName) -> Result<Resident> {
        let claim = self.store.claim(tenant, &self.name, self.lease_ms)?;
        match self.restore(&claim) {
            Ok(r) => {
                // The state just restored is the tenant's latest and this claim fences
                // every other writer: a segment it does not name is garbage (faulted in,
                // or written by a swap-out the state never saw). Best effort.
                let _ = self.store.retain_segments(&r.claim, &r.segments_out());
                Ok(r)
            }
            Err(e) => {
                // Best effort: the claim's lease runs out anyway if this fails too.
                let _ = self.store.release(&claim);
                Err(e)
            }
        }
    }

    /// A tenant that has never been written forks from the newest version of its base's
    /// history (synced first); a state restores onto the version its snapshot was taken on,
    /// found among the versions this node holds, synced first if it has none by that
    /// fingerprint ([`Node::version_for_snapshot`]).
    ///
    /// The tenant gets a [`Swapper`] over its segments in the store; if the state names
    /// segments out, the swapper takes them over ([`Swapper::adopt`]) and its fault handler
    /// is installed, so touching a stub faults the segment in from the store.
    fn restore(&self, claim: &Claim) -> Result<Resident> {
        let swapper = self.swapper_for(claim);
        match claim.state {
            None => Ok(Resident {
                tenant: Tenant::fork_with(&self.sync(claim.base)?, self.config),
                claim: claim.clone(),
                swapper,
                unsure: false,
            }),
            Some(d) => {
                let bytes = self.store.read_state(&claim.tenant, d)?;
                self.resident_from(claim, d, &bytes, swapper)
            }
        }
    }

    /// A swapper over the segments `claim`'s tenant has in the store.
    fn swapper_for(&self, claim: &Claim) -> Swapper {
        let swapper = Swapper::with_plugins(
            StoreSegments::new(self.store.clone(), claim.clone()),
            self.plugins.clone(),
        );
        swapper.accept_placeholders(self.placeholders);
        // A file faulted in stays until a state that no longer names it is written: the
        // state in the store may still name it.
        swapper.keep_files(true);
        swapper
    }

    /// A resident for `claim` from `bytes`, a state as the store keeps it (its digest `d`,
    /// for errors): its snapshot restored, its segments out taken over by `swapper`.
    fn resident_from(
        &self,
        claim: &Claim,
        d: Digest,
        bytes: &[u8],
        swapper: Swapper,
    ) -> Result<Resident> {
        let (snapshot, records) = decode_state(bytes).map_err(|e| match e {
            FrameError::Damaged(problem) => StoreError::Damaged {
                what: format!("state {d} of tenant {}", claim.tenant),
                problem,
            },
            FrameError::OutOfMemory(bytes) => {
                StoreError::out_of_memory("the records of the segments out", bytes)
            }
        })?;
        let base = self.version_for_snapshot(claim.base, snapshot)?;
        let mut tenant = Tenant::restore_with_hosts(
            &base,
            snapshot,
            &self.config,
            &self.plugins,
            self.placeholders,
        )
        .map_err(|source| match source {
            RestoreError::Host(e) => host_error(&claim.tenant, e),
            RestoreError::OutOfMemory { bytes } => StoreError::OutOfMemory {
                what: "the restored tenant",
                bytes,
            },
            source => StoreError::Restore {
                tenant: claim.tenant.clone(),
                digest: d,
                source: Box::new(source),
            },
        })?;
        if !records.is_empty() {
            swapper
                .adopt(&mut tenant, &records)
                .map_err(|e| records_error(&claim.tenant, e))?;
        }
        Ok(Resident {
            tenant,
            claim: claim.clone(),
            swapper,
            unsure: false,
        })
    }

    /// A resident for `claim` from a state kept outside the store (a command line keeps one
    /// in its node's directory between invocations): what [`Node::resume`] would restore
    /// from those bytes, its segments out taken over. No store call is made but what the
    /// base and the segments need.
    ///
    /// # Errors
    /// As [`Node::resume`] for a damaged or unrestorable state.
    pub(crate) fn resident_from_state(&self, claim: &Claim, bytes: &[u8]) -> Result<Resident> {
        let d = Digest::of(bytes);
        self.resident_from(claim, d, bytes, self.swapper_for(claim))
    }

    /// Writes the tenant's state and keeps holding it (renewing the lease). Host objects are
    /// saved by this node's plugins, as at [`Node::suspend`]. Time: O(private).
    ///
    /// # Errors
    /// [`StoreError::Fenced`] if another node claimed it since; [`StoreError::HostObject`]
    /// if a host object's kind has no plugin here or its plugin cannot save it, and
    /// [`StoreError::OutOfMemory`] if the allocator refuses the state's buffer or the
    /// records' lists (nothing is written, the store keeps the last complete state).
    pub fn checkpoint(&self, r: &mut Resident) -> Result<Digest> {
        let state = r.state(&self.plugins)?;
        let d = self.store.write_state(&r.claim, &state)?;
        r.claim = self.store.renew(&r.claim, self.lease_ms)?;
        // The state just written is the latest: segments it does not name are garbage.
        // Best effort (a failure leaves garbage, never a missing segment).
        let _ = self.store.retain_segments(&r.claim, &r.segments_out());
        Ok(d)
    }

    /// Renews the node's lease on a resident tenant. A host that keeps tenants resident
    /// renews them well within the lease (every half lease, say).
    ///
    /// # Errors
    /// [`StoreError::Fenced`] if another node claimed it since (its lease had run out).
    pub fn renew(&self, r: &mut Resident) -> Result<()> {
        r.claim = self.store.renew(&r.claim, self.lease_ms)?;
        r.unsure = false;
        Ok(())
    }

    /// Milliseconds left of this node's lease on `r`, by the store handle's clock
    /// ([`Store::now`], the clock the lease was taken on); 0 once it has run out. Asks
    /// nothing of the store. Time: O(1).
    pub fn lease_left(&self, r: &Resident) -> u64 {
        r.claim.lease_expiry.0.saturating_sub(self.store.now().0)
    }

    /// Makes sure at least half of this node's lease on `r` is left before work on it goes
    /// on: renews the lease ([`Node::renew`]) when less than half is left (or it has run
    /// out), else asks nothing of the store. Answers the milliseconds left after (a slow
    /// renewal may leave less than the whole lease).
    ///
    /// Fencing keeps a node whose lease ran out from writing over newer work, but not from
    /// running the tenant meanwhile: without a check it runs on until its next store call,
    /// and its work since is lost. A host that calls this before each piece of work on a
    /// resident, and keeps each piece shorter than half a lease (an interpreter run in
    /// slices of a bytecode budget, say), never runs a tenant past its lease, so never at
    /// the same time as a node that claimed it after the lease ran out (to within the
    /// nodes' clock skew, which the crate's docs ask to be well under a lease).
    /// [`crate::SwapRegistry`] does this at every use.
    ///
    /// ```
    /// use cowheap_heap::synth;
    /// use cowheap_store::{Access, LocalStore, ManualClock, Millis, Node, NodeName, StoreError, TenantName};
    /// use std::sync::Arc;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let clock = ManualClock::new(Millis(1_000));
    /// let store = Arc::new(LocalStore::init(dir.path(), Arc::new(clock.clone()), Access::Operator).unwrap());
    /// let image = dir.path().join("base.cowheap");
    /// synth::image(100, 1).save(&image).unwrap();
    /// let a = Node::new(store.clone(), NodeName::new("a").unwrap(), dir.path().join("a")).with_lease(1_000);
    /// let fp = a.put_base_file(&image).unwrap();
    /// let t = TenantName::new("t").unwrap();
    /// a.store().create_tenant(&t, fp, None).unwrap();
    ///
    /// let mut r = a.resume(&t).unwrap();
    /// clock.advance(400);
    /// assert_eq!(a.keep_lease(&mut r).unwrap(), 600); // more than half left: no renewal
    /// clock.advance(200);
    /// assert_eq!(a.keep_lease(&mut r).unwrap(), 1_000); // renewed
    ///
    /// // Node a stalls past its lease, and node b takes the tenant over.
    /// clock.advance(1_500);
    /// assert_eq!(a.lease_left(&r), 0);
    /// let b = Node::new(store, NodeName::new("b").unwrap(), dir.path().join("b"));
    /// let _taken = b.resume(&t).unwrap();
    /// assert!(matches!(a.keep_lease(&mut r), Err(StoreError::Fenced { .. })));
    /// ```
    ///
    /// # Errors
    /// As [`Node::renew`]: [`StoreError::Fenced`] if another node claimed the tenant since
    /// (stop working on it: the store has newer work); a store failure, after which the
    /// lease is as it was.
    pub fn keep_lease(&self, r: &mut Resident) -> Result<u64> {
        if r.unsure {
            self.renew(r)?;
        } else if let Some(renewed) = self.lease_kept(&r.claim)? {
            r.claim = renewed;
        }
        Ok(self.lease_left(r))
    }

    /// `claim` renewed if less than half of this node's lease is left of it (or none),
    /// else `None`: [`Node::keep_lease`] of a claim.
    ///
    /// # Errors
    /// As [`Store::renew`].
    pub(crate) fn lease_kept(&self, claim: &Claim) -> Result<Option<Claim>> {
        let left = claim.lease_expiry.0.saturating_sub(self.store.now().0);
        // A lease run out is renewed whatever the lease's length (a zero-length lease
        // included, whose half is zero).
        if left > 0 && left >= self.lease_ms.div_ceil(2) {
            return Ok(None);
        }
        self.store.renew(claim, self.lease_ms).map(Some)
    }

    /// Writes the tenant's state and releases it, in one atomic step ([`Store::suspend`]).
    /// Each host object the tenant holds in memory is saved by its kind's plugin in this
    /// node's plugins ([`Node::with_plugins`]). Time: O(private), plus the plugins' work.
    ///
    /// On an error the resident is dropped (the store is as it was: the claim stays until
    /// its lease runs out); [`Node::try_suspend`] gives it back instead.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] if another node claimed it since: nothing is written, and the
    /// store keeps the newer work. [`StoreError::HostObject`] if a host object's kind has no
    /// plugin on this node or its plugin cannot save it, [`StoreError::OutOfMemory`] if the
    /// allocator refuses the state's buffer or the records' lists: nothing is written or
    /// released.
    pub fn suspend(&self, r: Resident) -> Result<Digest> {
        self.try_suspend(r).map_err(|f| f.error)
    }

    /// [`Node::suspend`], giving the resident back if the suspend fails: on any error but
    /// [`StoreError::Fenced`] it is still claimed by this node and the store keeps its
    /// last complete state, so it can be used, and suspended again (by a node of the same
    /// name with the missing plugin, say).
    ///
    /// A store error may come after the store committed (the answer lost): the tenant's
    /// record then settles it. A suspend the record shows landed is answered `Ok`; a claim
    /// the record shows another node took is [`StoreError::Fenced`]; if the record cannot
    /// be read either, the resident comes back [`Resident::is_unsure`]. Such a resident
    /// suspended again, unchanged, is answered `Ok` if its first suspend landed: the store
    /// refuses the second as fenced (the claim was released by the first), and the record,
    /// naming this state with no owner at the claim's epoch, says it is in.
    ///
    /// # Errors
    /// As [`Node::suspend`], in a [`SuspendFailed`] holding the resident as it was.
    pub fn try_suspend(&self, mut r: Resident) -> Result<Digest, SuspendFailed> {
        let failed = |error, r| {
            Err(SuspendFailed {
                error,
                resident: Box::new(r),
            })
        };
        let state = match r.state(&self.plugins) {
            Ok(state) => state,
            Err(error) => return failed(error, r),
        };
        match self.store.suspend(&r.claim, &state) {
            Ok(d) => Ok(d),
            // Fenced by this very state, released at the claim's epoch: an earlier suspend
            // of this resident landed without an answer (it came back unsure), and the store
            // holds exactly this work. That is a suspend; any other fence stands.
            Err(error @ StoreError::Fenced { .. }) => {
                match self.settle(&r.claim, Digest::of(&state)) {
                    Settled::Landed(d) => Ok(d),
                    _ => failed(error, r),
                }
            }
            // Any other failure may have come after the store committed (a connection lost
            // at the commit, a directory not synced after the rename): the record says
            // which, so that a suspend that landed is not taken for one that did not and
            // the tenant run on here while another node resumes it.
            Err(error) => match self.settle(&r.claim, Digest::of(&state)) {
                Settled::Landed(d) => Ok(d),
                Settled::Held => failed(error, r),
                Settled::Fenced(fenced) => failed(fenced, r),
                Settled::Unknown => {
                    r.unsure = true;
                    failed(error, r)
                }
            },
        }
    }

    /// What the store's record says of a suspend by `claim` of state `d` that answered an
    /// error: it landed (the record names `d` at the claim's epoch, with no owner), the
    /// claim is still held (nothing was written), another node has the tenant, or the
    /// record cannot be read either.
    fn settle(&self, claim: &Claim, d: Digest) -> Settled {
        match self.store.record(&claim.tenant) {
            Ok(rec) if rec.epoch == claim.epoch && rec.owner.is_none() && rec.state == Some(d) => {
                Settled::Landed(d)
            }
            Ok(rec) if rec.epoch == claim.epoch && rec.owner.as_ref() == Some(&claim.node) => {
                Settled::Held
            }
            Ok(rec) => Settled::Fenced(StoreError::Fenced {
                tenant: claim.tenant.clone(),
                held: claim.epoch,
                current: rec.epoch,
            }),
            Err(_) => Settled::Unknown,
        }
    }
}

/// What became of a suspend that answered an error ([`Node::settle`]).
enum Settled {
    Landed(Digest),
    Held,
    Fenced(StoreError),
    Unknown,
}

impl Node {}

/// What a node presents: kept here so a command line can build one from flags.
pub fn principal_access(name: &str, secret: &str) -> Result<Access> {
    Ok(Access::principal(crate::PrincipalName::new(name)?, secret))
}
