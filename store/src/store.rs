//! The `Store` interface every backend implements, and what it speaks of.

use crate::{Digest, Epoch, Millis, NodeName, PrincipalName, Result, TenantName};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use std::fmt;

/// Who is talking to the store.
///
/// - [`Access::Operator`] runs the deployment: it stores bases, creates tenants, adds
///   principals and grants them tenants, and sees every record. Whoever can write the store's
///   directory, or holds the database's own credentials, is the operator.
/// - [`Access::Principal`] is a node's identity: it may read bases, and read, claim and write
///   only the tenants granted to it. Other tenants are invisible to it: asking for one gives
///   [`crate::StoreError::TenantMissing`] or [`crate::StoreError::Denied`], and listings leave
///   them out.
#[derive(Clone, PartialEq, Eq)]
pub enum Access {
    /// The deployment's operator.
    Operator,
    /// A principal, proved by its secret.
    Principal {
        /// The principal.
        name: PrincipalName,
        /// Its secret (the store keeps only a BLAKE3 digest of it).
        secret: String,
    },
}

impl Access {
    /// A principal's access.
    pub fn principal(name: PrincipalName, secret: impl Into<String>) -> Access {
        Access::Principal {
            name,
            secret: secret.into(),
        }
    }

    /// The principal's name, or `None` for the operator.
    pub fn principal_name(&self) -> Option<&PrincipalName> {
        match self {
            Access::Operator => None,
            Access::Principal { name, .. } => Some(name),
        }
    }
}

impl fmt::Debug for Access {
    // Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Operator => f.write_str("Operator"),
            Access::Principal { name, .. } => write!(f, "Principal({name})"),
        }
    }
}

/// The small per-tenant record: its base, latest state, owner, epoch and lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant.
    pub tenant: TenantName,
    /// The fingerprint of the base it runs on.
    pub base: Fingerprint,
    /// Its latest complete state (a snapshot blob), `None` before its first write.
    pub state: Option<Digest>,
    /// The node holding it, `None` when suspended.
    pub owner: Option<NodeName>,
    /// The epoch of the latest claim (0 before the first).
    pub epoch: Epoch,
    /// When the owner's lease runs out (meaningless without an owner).
    pub lease_expiry: Millis,
}

/// A node's claim on a tenant: what [`Store::claim`] hands back and every fenced write
/// presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The tenant.
    pub tenant: TenantName,
    /// The node holding it.
    pub node: NodeName,
    /// The epoch this claim made.
    pub epoch: Epoch,
    /// When its lease runs out unless renewed.
    pub lease_expiry: Millis,
    /// The tenant's base.
    pub base: Fingerprint,
    /// The state to resume from, as the record named it at the claim.
    pub state: Option<Digest>,
}

/// A committed version of a base, as the store lists it: version `number` of the history
/// that starts at base `origin` (version 0, the base itself), made by the layer blob
/// `layer` over version `number - 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// The fingerprint of the history's version-0 base (a base in the store).
    pub origin: Fingerprint,
    /// The version's number, 1 or more.
    pub number: u64,
    /// The digest of its layer's bytes ([`cowheap_tenants::commit::Layer::to_bytes`]).
    pub layer: Digest,
    /// The principal that committed it, `None` for the operator.
    pub committed_by: Option<PrincipalName>,
}

/// How many blobs a store holds, and their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlobStats {
    /// Distinct blobs.
    pub count: u64,
    /// Their total length.
    pub bytes: u64,
}

/// A store of bases, tenant states and tenant records shared by many nodes.
///
/// Blobs (base images, tenant states) are content-addressed and immutable: each is written
/// once, by its BLAKE3 digest, however many tenants use it, and verified when read. Records
/// are small and change only through the operations below, each atomic:
///
/// ```text
///              claim (epoch+1, owner=node, lease=now+L)       write_state (epoch matches)
///  suspended ------------------------------------------> held ---------------------------+
///      ^   ^                                              | ^                            |
///      |   +---------------- release (epoch matches) -----+ +----------------------------+
///      |                                                  |
///      +------ lease runs out: the next claim wins -------+ (the old owner is fenced off)
/// ```
///
/// A claim succeeds only if the tenant has no owner or the owner's lease has run out; of
/// many nodes claiming at once exactly one wins and the rest get
/// [`crate::StoreError::Held`]. A write or release presenting an epoch other than the
/// record's gets [`crate::StoreError::Fenced`] and changes nothing, so a paused or
/// partitioned node never overwrites newer work.
///
/// Every method is checked against the handle's [`Access`].
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores a base image file's bytes under the fingerprint of the heap it holds. The
    /// caller computes the fingerprint (see [`crate::Node::put_base_file`]); a node that
    /// fetches the base checks it. Operator only. Idempotent. Time: O(size).
    fn put_base(&self, fingerprint: Fingerprint, image: &[u8]) -> Result<Digest>;

    /// The bytes of the base image stored under `fingerprint`, verified against their
    /// digest. Any access. Time: O(size).
    fn get_base(&self, fingerprint: Fingerprint) -> Result<Vec<u8>>;

    /// The fingerprints of every base in the store. Any access.
    fn bases(&self) -> Result<Vec<Fingerprint>>;

    /// Adds a principal with its secret, or changes its secret. Operator only.
    ///
    /// # Errors
    /// [`crate::StoreError::InvalidSecret`] for an empty secret or one holding a NUL byte
    /// (PostgreSQL takes neither as a role's password, so no backend takes them);
    /// [`crate::StoreError::InvalidName`] for a name past [`crate::MAX_PRINCIPAL`] bytes
    /// (no PostgreSQL role can be named so); [`crate::StoreError::RoleTaken`] in
    /// PostgreSQL when the principal's database role exists but the store did not make it.
    /// Nothing changes.
    fn add_principal(&self, name: &PrincipalName, secret: &str) -> Result<()>;

    /// Creates a tenant of `base`, suspended, with no state yet, and grants it to
    /// `principal` (if any). Operator only.
    ///
    /// # Errors
    /// [`crate::StoreError::BaseMissing`] if the store lacks the base,
    /// [`crate::StoreError::TenantExists`] if the name is taken.
    fn create_tenant(
        &self,
        tenant: &TenantName,
        base: Fingerprint,
        principal: Option<&PrincipalName>,
    ) -> Result<TenantRecord>;

    /// The tenant's record. Operator, or a principal entitled to it.
    fn record(&self, tenant: &TenantName) -> Result<TenantRecord>;

    /// The records of every tenant this access may see, by name (in the names' byte order,
    /// on every backend).
    fn tenants(&self) -> Result<Vec<TenantRecord>>;

    /// Claims the tenant for `node` for `lease_ms` from now: in one atomic step, if it has
    /// no owner or its owner's lease has run out, the epoch moves on by one and `node` owns
    /// it. Time: O(1). A lease's expiry is capped at `i64::MAX` ms (PostgreSQL's largest
    /// `bigint`), so a lease too long to end before then ends then, on every backend.
    ///
    /// # Errors
    /// [`crate::StoreError::Held`] if another claim's lease still runs (also when `node`
    /// itself holds it), [`crate::StoreError::TenantMissing`] or
    /// [`crate::StoreError::Denied`] if the tenant is not there for this access.
    fn claim(&self, tenant: &TenantName, node: &NodeName, lease_ms: u64) -> Result<Claim>;

    /// Extends a live claim's lease to `lease_ms` from now (capped as for
    /// [`Store::claim`]). Fenced like a write.
    fn renew(&self, claim: &Claim, lease_ms: u64) -> Result<Claim>;

    /// Now, on the clock this handle measures leases on: a claim's
    /// [`Claim::lease_expiry`] is this time at the claim (or renewal) plus its lease. A node
    /// compares the two to know how much of its lease is left ([`crate::Node::lease_left`])
    /// without a call to the store.
    fn now(&self) -> Millis;

    /// Stores `state` as a blob and makes it the tenant's latest state, if `claim` is still
    /// the record's epoch and owner. Time: O(state size).
    ///
    /// # Errors
    /// [`crate::StoreError::Fenced`] if the tenant was claimed since or released; the record
    /// keeps its state.
    fn write_state(&self, claim: &Claim, state: &[u8]) -> Result<Digest>;

    /// Releases the tenant: no owner, the epoch kept. Fenced like a write.
    fn release(&self, claim: &Claim) -> Result<()>;

    /// [`Store::write_state`] and [`Store::release`] as one atomic step: the record names
    /// the new state and has no owner, or (fenced, or failed) is as it was. Time: O(state
    /// size).
    ///
    /// The default runs the two steps one after the other; the backends override it with
    /// one step.
    fn suspend(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        let d = self.write_state(claim, state)?;
        self.release(claim)?;
        Ok(d)
    }

    /// The bytes of state `digest` of `tenant`, verified, if that state is the tenant's
    /// latest. Operator, or a principal entitled to the tenant. Time: O(size). (The local
    /// store answers [`crate::StoreError::OutOfMemory`] if the allocator refuses the
    /// buffer.)
    fn read_state(&self, tenant: &TenantName, digest: Digest) -> Result<Vec<u8>>;

    /// How many distinct blobs the store holds (bases, states, segments and layers). Operator
    /// only. A local store counts what its sweep walks: a link or a stray file among its
    /// blobs is none, and a `blobs` or `layers` that is no plain directory is
    /// [`crate::StoreError::Damaged`], as for [`Store::sweep_blobs`].
    fn blob_stats(&self) -> Result<BlobStats>;

    /// Removes every blob nothing in the store names, and answers how many it removed and
    /// their bytes: the states later checkpoints replaced, the segments faulted back in and
    /// removed, the layers of version writes that lost their race, and what a write killed
    /// before naming its blob left. Operator only. Time: O(blobs + records + segments +
    /// versions).
    ///
    /// Safe beside every other write, in any process: a blob a write is about to name is
    /// never removed (the local store's writes hold a shared lock from the blob to the file
    /// that names it, which the sweep takes exclusively; PostgreSQL's rows that name a blob
    /// hold a foreign key to it, so a removal that would break one is not made).
    ///
    /// # Errors
    /// [`crate::StoreError::Denied`] for a principal. A damaged record, pointer, segment
    /// entry or version record is answered as reading it answers, before anything is
    /// removed: the blob it names cannot be known.
    ///
    /// ```
    /// use cowheap_heap::synth;
    /// use cowheap_store::{Access, LocalStore, NodeName, Store, SystemClock, TenantName};
    /// use std::sync::Arc;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = LocalStore::init(dir.path(), Arc::new(SystemClock), Access::Operator).unwrap();
    /// let fp = synth::image(10, 1).fingerprint();
    /// store.put_base(fp, b"a base's image bytes").unwrap();
    /// let t = TenantName::new("t").unwrap();
    /// store.create_tenant(&t, fp, None).unwrap();
    /// let claim = store.claim(&t, &NodeName::new("n").unwrap(), 60_000).unwrap();
    /// store.write_state(&claim, b"first").unwrap();
    /// store.write_state(&claim, b"second").unwrap();
    /// // The first state, which the second replaced, goes; the base and the second stay.
    /// let removed = store.sweep_blobs().unwrap();
    /// assert_eq!((removed.count, removed.bytes), (1, 5));
    /// assert_eq!(store.blob_stats().unwrap().count, 2);
    /// ```
    fn sweep_blobs(&self) -> Result<BlobStats>;

    /// Lets `principal` commit versions of base `base` ([`Store::put_version`]). Operator
    /// only; the operator may always commit. Idempotent. Time: O(1).
    ///
    /// # Errors
    /// [`crate::StoreError::BaseMissing`] if the store lacks the base.
    fn allow_commit(&self, base: Fingerprint, principal: &PrincipalName) -> Result<()>;

    /// The principals that may commit versions of `base`, by name (in the names' byte
    /// order, on every backend). A principal sees at most itself.
    fn committers(&self, base: Fingerprint) -> Result<Vec<PrincipalName>>;

    /// Writes version `number` of the history of base `origin`: stores `layer` (the bytes of
    /// a [`cowheap_tenants::commit::Layer`] over version `number - 1` of that history) as a
    /// content-addressed blob and records the version, atomically, **if the newest version
    /// of `origin` in the store is exactly `number - 1`** (version 0 is the base itself,
    /// present once the base is). Of many writers of one number exactly one wins. A crash
    /// leaves the version recorded whole or not at all (a layer blob no version names may
    /// be left behind, which nothing reads). Time: O(layer size).
    ///
    /// # Errors
    /// [`crate::StoreError::VersionConflict`] naming the newest version if it is not
    /// `number - 1` (another writer won that number, or `number` skips one), and for a
    /// `number` past the largest `bigint`, which no history reaches;
    /// [`crate::StoreError::NotCommitter`] for a principal the base does not name
    /// ([`Store::allow_commit`]); [`crate::StoreError::BaseMissing`];
    /// [`crate::StoreError::Layer`] or [`crate::StoreError::LayerMismatch`] if `layer` is
    /// not a whole layer of that history over version `number - 1`. Nothing changes on any
    /// error.
    fn put_version(&self, origin: Fingerprint, number: u64, layer: &[u8]) -> Result<VersionRecord>;

    /// [`Store::put_version`] fenced by `claim`, in one atomic step: the version is written
    /// only if `claim` is still the record's epoch and owner, checked under the record's
    /// lock (the local store's `flock`, PostgreSQL's row lock), which a claim takes too. So
    /// of a commit and a claim by another node, one comes first: the version lands before
    /// the other node owns the tenant, or is refused. A node that commits a tenant it runs
    /// ([`crate::Node::commit_resident`]) writes this way, so a node stalled past its lease
    /// inside the write publishes nothing once another node has claimed the tenant.
    /// `claim` must be of a tenant of `origin`. Time: O(layer size).
    ///
    /// ```
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_store::{Access, LocalStore, ManualClock, Millis, Node, NodeName, Store, StoreError, TenantName};
    /// use cowheap_store::workload::slot_objects;
    /// use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
    /// use std::sync::Arc;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let clock = ManualClock::new(Millis(1_000));
    /// let store = Arc::new(LocalStore::init(dir.path(), Arc::new(clock.clone()), Access::Operator).unwrap());
    /// let image = dir.path().join("base.cowheap");
    /// synth::image(1_000, 1).save(&image).unwrap();
    /// let node = Node::new(store.clone(), NodeName::new("n").unwrap(), dir.path().join("cache"));
    /// let fp = node.put_base_file(&image).unwrap();
    /// // The bytes of a layer: version 1 of the base's history, as a commit makes them.
    /// let base = node.base(fp).unwrap();
    /// let repo = Repository::new(base.clone(), CommitRights::Anyone);
    /// let mut changed = repo.fork();
    /// changed.set_slot(slot_objects(&base, 1)[0], 0, Value::int(7)).unwrap();
    /// let mut layer = Vec::new();
    /// repo.commit_through(&mut changed, "n", CommitMode::WriteWrite, &[], |l| {
    ///     layer = l.to_bytes();
    ///     Ok::<(), std::convert::Infallible>(())
    /// }).unwrap();
    ///
    /// let t = TenantName::new("t").unwrap();
    /// store.create_tenant(&t, fp, None).unwrap();
    /// let a = store.claim(&t, &NodeName::new("a").unwrap(), 100).unwrap();
    /// clock.advance(200); // a's lease runs out and b claims the tenant
    /// let b = store.claim(&t, &NodeName::new("b").unwrap(), 100).unwrap();
    /// assert!(matches!(store.put_version_claimed(&a, fp, 1, &layer), Err(StoreError::Fenced { .. })));
    /// assert!(store.versions(fp, 0).unwrap().is_empty());
    /// assert_eq!(store.put_version_claimed(&b, fp, 1, &layer).unwrap().number, 1);
    /// ```
    ///
    /// The claim is checked before the bytes are: a claim this access may not present, a
    /// stale one and one of a tenant of another base are refused as such whatever `layer`
    /// holds, on every backend.
    ///
    /// # Errors
    /// [`crate::StoreError::Fenced`] if the tenant was claimed since or released (nothing
    /// is written, no blob added); [`crate::StoreError::LayerMismatch`] if the claim's
    /// tenant is of another base; [`crate::StoreError::TenantMissing`] or
    /// [`crate::StoreError::Denied`] for a tenant this access may not touch; otherwise as
    /// [`Store::put_version`].
    fn put_version_claimed(
        &self,
        claim: &Claim,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord>;

    /// The versions of `origin` numbered above `after`, in order: a gapless run from
    /// `after + 1` to the newest (none for an `after` past the largest version number a
    /// store keeps, the largest `bigint`). Any access. Time: O(versions listed).
    ///
    /// # Errors
    /// [`crate::StoreError::BaseMissing`] if the store lacks the base.
    fn versions(&self, origin: Fingerprint, after: u64) -> Result<Vec<VersionRecord>>;

    /// The bytes of the layer blob `digest` that a version names, verified against the
    /// digest (a changed length is [`crate::StoreError::BlobTruncated`], changed bytes
    /// [`crate::StoreError::BlobCorrupt`]). Any access. Time: O(size).
    ///
    /// # Errors
    /// [`crate::StoreError::BlobMissing`] if no version names such a layer.
    fn get_layer(&self, digest: Digest) -> Result<Vec<u8>>;

    /// Stores `bytes` (the file of a segment swapped out of the tenant) as segment `id` of
    /// `claim`'s tenant, if the claim is still the record's epoch and owner and the tenant
    /// has no segment `id`. The bytes are a content-addressed blob, as a state is; the
    /// tenant's entry for `id` names it. Atomic: afterwards the tenant has the whole
    /// segment under `id`, or (on any error) nothing new but perhaps a blob nothing names.
    /// Time: O(size).
    ///
    /// # Errors
    /// [`crate::StoreError::SegmentExists`] if the tenant has a segment `id` (never
    /// overwritten); [`crate::StoreError::SegmentIdOutOfRange`] for an id past
    /// [`crate::MAX_SEGMENT_ID`] (checked first); [`crate::StoreError::Fenced`] if the claim
    /// is stale; [`crate::StoreError::TenantMissing`] or [`crate::StoreError::Denied`] for a
    /// tenant this access may not touch.
    fn put_segment(&self, claim: &Claim, id: SegmentId, bytes: &[u8]) -> Result<Digest>;

    /// The bytes of segment `id` of `tenant`, verified against the digest its entry names
    /// (a changed length is [`crate::StoreError::BlobTruncated`], changed bytes
    /// [`crate::StoreError::BlobCorrupt`]). Operator, or a principal entitled to the
    /// tenant; no claim needed (reading changes nothing). Time: O(size).
    ///
    /// # Errors
    /// [`crate::StoreError::SegmentMissing`] (always for an id past
    /// [`crate::MAX_SEGMENT_ID`]); [`crate::StoreError::TenantMissing`] or
    /// [`crate::StoreError::Denied`] for a tenant this access may not see.
    fn get_segment(&self, tenant: &TenantName, id: SegmentId) -> Result<Vec<u8>>;

    /// Drops segment `id` from `claim`'s tenant (its blob may stay, named by nothing, as an
    /// old state's does). Fenced like a write; a segment the tenant lacks (as it lacks every
    /// id past [`crate::MAX_SEGMENT_ID`]) is not an error.
    /// Time: O(1).
    fn remove_segment(&self, claim: &Claim, id: SegmentId) -> Result<()>;

    /// The ids of `tenant`'s segments, ascending. Operator, or a principal entitled to the
    /// tenant. Time: O(segments).
    fn segments(&self, tenant: &TenantName) -> Result<Vec<SegmentId>>;

    /// Drops every segment of `claim`'s tenant but those in `keep` (fenced, one
    /// [`Store::remove_segment`] each) and answers how many it dropped. A node calls it
    /// with the segments the tenant's latest state names, while it holds the claim, so
    /// nothing a state in the store names is ever dropped. Time: O(segments).
    fn retain_segments(&self, claim: &Claim, keep: &[SegmentId]) -> Result<usize> {
        let keep: std::collections::BTreeSet<SegmentId> = keep.iter().copied().collect();
        let mut dropped = 0;
        for id in self.segments(&claim.tenant)? {
            if !keep.contains(&id) {
                self.remove_segment(claim, id)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// The layer `bytes` hold ([`cowheap_tenants::commit::Layer::from_bytes`]):
/// [`StoreError::Layer`] for bytes that are no whole layer, [`StoreError::OutOfMemory`] if
/// the allocator refuses the layer's memory.
pub(crate) fn decode_layer(bytes: &[u8]) -> Result<cowheap_tenants::commit::Layer> {
    cowheap_tenants::commit::Layer::from_bytes(bytes).map_err(|e| match e {
        cowheap_heap::FileError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::OutOfMemory =>
        {
            crate::StoreError::out_of_memory("a version's layer", bytes.len())
        }
        e => crate::StoreError::Layer(e),
    })
}

/// Checks that `bytes` are a whole layer of the history of `origin` over version
/// `number - 1`, as [`Store::put_version`] requires. Time: O(size).
pub(crate) fn check_layer(origin: Fingerprint, number: u64, bytes: &[u8]) -> Result<()> {
    use crate::StoreError;
    if number == 0 {
        return Err(StoreError::LayerMismatch {
            problem: "version 0 is the base itself, never a layer",
        });
    }
    let layer = decode_layer(bytes)?;
    if layer.origin != origin {
        return Err(StoreError::LayerMismatch {
            problem: "the layer belongs to another history",
        });
    }
    if layer.version() != number {
        return Err(StoreError::LayerMismatch {
            problem: "the layer is of another version number",
        });
    }
    Ok(())
}
