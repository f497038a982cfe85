//! Swapping a segment out of a tenant, reading it while it is out, and faulting it back in
//! transparently: the *active* state of Squeak's ImageSegment made real, over the crate's
//! own segment file.
//!
//! [`Swapper::swap_out`] takes the segment of some roots (Squeak's definition, as
//! [`tenant::extract`] computes it against the tenant's other roots), writes its file to a
//! [`SegmentStore`] (a directory, [`DirStore`]; memory, [`MemStore`]; or any backend that
//! implements the trait), turns each member, roots first, into a stub of the segment's id
//! ([`Tenant::stub`]: 16 bytes each, the body dropped), and collects the tenant. It installs
//! the swapper's [`FaultHandler`] and [`SegmentReader`] on the tenant. Then:
//! - **a read by `&self` through a stub** answers from a view of the segment that the
//!   reader makes from the file at the first such read ([`Swapper::reader`],
//!   [`cowheap_tenants::stubs::SegmentView`]): the bodies the members had, with their
//!   identities and hashes; the segment stays out;
//! - **a write through a stub** brings the segment back: the handler reads the file from
//!   the store, verifies it (its checksum, and that it is the very file written: its
//!   checksum field, BLAKE3 over header and body, is kept in memory), imports the members
//!   with their identity hashes, and gives every stub its member's body at once
//!   ([`Tenant::fill_stubs`]), so every reference in the tenant finds each object where it
//!   was, with its identity and hash. [`Tenant::with_faults`] and the interpreter bring
//!   back what their reads touch the same way.
//!
//! ```text
//!              extract        store.put       stub members      collect
//!   (roots) ----------> ActiveCopy ----> (bytes stored) ----> Active ----> OnFile
//!                                                                          |   ^
//!                                              reads by &self: the view <--+---+
//!        fill_stubs, all members   import (hashes kept)      store.get,    |
//!   Imported <------------------ (members made) <---------- Inactive <-----+ (a write)
//!                                      |                     verified      ^
//!                                      +-- a fill refused: members freed --+ (OnFile)
//! ```
//!
//! ```
//! use cowheap_forwarders::Base;
//! use cowheap_heap::{synth, Format, Value};
//! use cowheap_segment::swap::{MemStore, Swapper};
//! use cowheap_tenants::Tenant;
//!
//! let base = Base::new(synth::image(1_000, 1));
//! let mut t = Tenant::fork(&base);
//! let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
//! let leaf = t.alloc_with(class, Format::Bytes, &[], b"swapped").unwrap();
//! let root = t.alloc_with(class, Format::Pointers, &[leaf, Value::int(7)], &[]).unwrap();
//! let holder = t.alloc_with(class, Format::Pointers, &[root], &[]).unwrap();
//! t.set_root("holder", holder).unwrap();
//! let hash = t.identity_hash(root).unwrap();
//!
//! let swapper = Swapper::new(MemStore::new());
//! let out = swapper.swap_out(&mut t, &[root]).unwrap();
//! assert_eq!((out.objects, out.stubs), (2, 2)); // the root and the leaf are stubs
//!
//! // Reads answer from the segment's file; it stays out.
//! let leaf = t.slot(root, 0).unwrap();
//! assert_eq!(t.bytes(leaf).unwrap(), b"swapped");
//! assert_eq!(t.slot(root, 1).unwrap().as_int(), Some(7));
//! assert_eq!(t.stub_segment(root).unwrap(), Some(out.id.get()));
//!
//! // A write brings it back; identity and hash are kept.
//! t.set_slot(root, 1, Value::int(8)).unwrap();
//! assert_eq!(t.stub_segment(root).unwrap(), None);
//! assert_eq!(t.identity_hash(root).unwrap(), hash);
//! assert!(t.identical(t.slot(root, 0).unwrap(), leaf).unwrap());
//! assert!(t.identical(t.slot(holder, 0).unwrap(), root).unwrap());
//! ```
//!
//! What holds:
//! - **A failed swap-out changes nothing.** The segment is extracted and stored before any
//!   member is stubbed, and the segment's state transitions are checked then too, so nothing
//!   after the stubbing can fail; an error before that leaves the tenant untouched, and a
//!   stub refused midway (which the checks before it make unexpected) is undone from the
//!   segment's own copy of the bodies: every member stubbed is given its body and its host
//!   object back, the first error answered. No host object is dropped while its state is
//!   in memory only: those taken from the members are kept until the segment is recorded
//!   as out; a member the undo cannot give its body back stays a stub of the segment, which
//!   is then recorded (its file kept, a fault brings it back); one it cannot give its host
//!   object back is stubbed again, or failing that the swapper keeps
//!   the host object ([`Swapper::take_stranded`]). The file is removed only when no stub
//!   refers to it.
//! - **Objects outside the segment that it refers to stay alive** while it is out: each is
//!   pinned ([`Tenant::pin`]) until the segment is back, so a collection cannot free what
//!   the segment will need, and they count as other roots when later segments are taken.
//! - **Stubs are never members** of a later segment: a reference to one is an out-pointer
//!   to an object outside, so segments swap out and fault in in any order.
//! - **Reads while out.** The reader reads and verifies the file as a fault does, under
//!   the lock, then makes the view without it. A segment it cannot read (a file gone,
//!   damaged or replaced) answers [`cowheap_tenants::Error::Swapped`] to the read, the
//!   typed reason kept for [`Swapper::explain`], so a caller that faults in meets it there.
//!   A view costs the segment's bodies in memory while the tenant keeps it (until a write
//!   brings the segment back, or the next collection); the stubs cost 16 bytes a member
//!   while the segment is out.
//! - **A fault that fails changes nothing visible.** A missing, damaged or replaced file is
//!   found before anything is allocated; the stubs stay, the tenant stays usable, and the
//!   typed reason ([`SwapError`]) is kept for [`Swapper::fault_in`] and
//!   [`Swapper::explain`] to answer (the handler answers the tenant's
//!   [`cowheap_tenants::Error::Fault`] naming the segment, which is still swapped out, and
//!   the reason in words). A tenant error (a quota, say) is answered as it is; what the
//!   import allocated before it is freed ([`Tenant::free_unreachable`]).
//! - **Plugins run without the swapper's lock.** A fault reads and verifies the file under
//!   the lock, makes the host objects with the plugins (cloned under it) without it, and
//!   imports under it again, if the segment is still out as it was (a fault that filled it
//!   meanwhile answers [`SwapError::Unknown`], as a second fault always has); swap-out saves
//!   them without it too. So a plugin may call back into the swapper ([`Swapper::swapped`],
//!   [`Swapper::state`], [`Swapper::records`], a swap-out).
//! - **A segment out can move with its tenant.** [`Swapper::records`] answers what the
//!   swapper remembers of each segment out in words a snapshot keeps (pins are not saved);
//!   after the tenant is restored from a snapshot taken then, in any process, a swapper over
//!   the same store takes them over ([`Swapper::adopt`]), pinning again what they keep
//!   alive, and faults them in as its own.
//! - **Host objects travel through their plugins** ([`crate::hosts`]). A swapper made
//!   [`Swapper::with_plugins`] saves each host object among the members (a root or not)
//!   through its kind's plugin into the segment's file (its host objects section), and the
//!   host objects leave memory with the members: each is taken from its proxy before the
//!   proxy is stubbed ([`Tenant::detach_host`]) and dropped once the segment is recorded.
//!   A read through a proxy's stub answers its body from the view, not its host object,
//!   which only a fault brings back: it makes each again with its plugin (the plugin's own
//!   initialisation, before anything is allocated) and gives it to the member made again
//!   ([`Tenant::attach_host`]), whence it goes with the body into the stub
//!   ([`Tenant::fill_stub`]), so the proxy everything refers to is the same, with its
//!   identity hash. A kind with no plugin is refused at swap-out
//!   ([`SwapError::HostObject`], nothing changed: a [`Swapper::new`] has no plugins, so it
//!   refuses every host object); at fault-in, a missing plugin or one that fails is
//!   [`SwapError::HostObject`] (the stubs stay), or, if the swapper accepts placeholders
//!   ([`Swapper::accept_placeholders`]), a missing plugin gives the tenant's placeholder
//!   as [`cowheap_tenants::Tenant::restore_with_hosts`] does.
//! - A root that is a stub already is refused.
//!
//! | operation | time |
//! | --- | --- |
//! | [`Swapper::swap_out`] | O(private objects reachable from the tenant's roots) for the extraction and the collection, plus the store's write of O(segment) bytes |
//! | a fault ([`Swapper::fault_in`], or through the handler) | the store's read of O(segment) bytes, then O(segment) to verify, decode and import |
//! | the first read through a stub after a swap-out or a collection (the reader) | the store's read of O(segment) bytes, then O(segment) to verify, decode and make the view; later reads O(1) |
//! | [`Swapper::explain`], [`Swapper::state`] | O(log segments out) |

use crate::error::SegmentError;
use crate::file;
use crate::tenant::{self, SegmentState, TenantSegment};
use cowheap_heap::{TenantId, Value, Word};
use cowheap_tenants::hosts::{DetachedHost, HostError, HostPlugins};
use cowheap_tenants::stubs::{FaultHandler, SegmentReader, SegmentView, ViewMember};
use cowheap_tenants::{CollectStats, CollectionReserve, Handle, Tenant};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The id of a swapped-out segment: the word its stubs hold ([`Tenant::stub`]) and the
/// name it has in its [`SegmentStore`]. Unique among the segments a [`Swapper`] has out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SegmentId(u64);

impl SegmentId {
    /// The id with number `n`.
    pub const fn new(n: u64) -> SegmentId {
        SegmentId(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a [`SegmentStore`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store holds no segment under this id.
    #[error("the store holds no segment {0}")]
    Missing(SegmentId),
    /// The store holds a segment under this id already (ids are never overwritten).
    #[error("the store holds a segment {0} already")]
    Exists(SegmentId),
    /// Reading or writing failed.
    #[error("the store failed on segment {id} ({path}): {source}")]
    Io {
        /// The segment.
        id: SegmentId,
        /// Where.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Another backend's failure (a database, object storage).
    #[error("the store failed on segment {id}: {source}")]
    Backend {
        /// The segment.
        id: SegmentId,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where swapped-out segments are kept: whole files, by id. A store belongs to the swaps of
/// one tenant (a directory each, say): ids are unique within it, never across stores.
///
/// The contract, which every backend keeps:
/// - `put` is atomic: afterwards the id holds all of `bytes` or (on error) nothing new;
///   and it never overwrites: an id held already is [`StoreError::Exists`].
/// - `get` answers exactly the bytes put, or [`StoreError::Missing`]. (The bytes are
///   verified by the caller; a store need not check them.)
/// - `remove` of an id not held is not an error.
pub trait SegmentStore: Send + fmt::Debug {
    /// Stores `bytes` under `id`.
    ///
    /// # Errors
    /// [`StoreError::Exists`] if `id` is held; the backend's failure otherwise.
    fn put(&self, id: SegmentId, bytes: &[u8]) -> Result<(), StoreError>;

    /// The bytes stored under `id`.
    ///
    /// # Errors
    /// [`StoreError::Missing`]; the backend's failure.
    fn get(&self, id: SegmentId) -> Result<Vec<u8>, StoreError>;

    /// Drops what is stored under `id`.
    ///
    /// # Errors
    /// The backend's failure.
    fn remove(&self, id: SegmentId) -> Result<(), StoreError>;
}

/// A directory of segment files, one per id: `seg-{id:016x}.cowseg`, each a cowheap segment
/// file (docs/FORMATS.md). A put writes a temporary file in the directory, syncs it, links it
/// to its name only if the name is free (`persist_noclobber`), and syncs the directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// [`SegmentError::Io`] if the directory cannot be made.
    pub fn new(dir: impl Into<PathBuf>) -> Result<DirStore, SegmentError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| SegmentError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(DirStore { dir })
    }

    /// The file that holds segment `id`.
    pub fn path(&self, id: SegmentId) -> PathBuf {
        self.dir.join(format!("seg-{:016x}.cowseg", id.0))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl SegmentStore for DirStore {
    fn put(&self, id: SegmentId, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(id);
        let io = |source| StoreError::Io {
            id,
            path: path.clone(),
            source,
        };
        if path.exists() {
            return Err(StoreError::Exists(id));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".cowheap-seg-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(io)?;
        tmp.write_all(bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist_noclobber(&path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Exists(id)
            } else {
                io(e.error)
            }
        })?;
        // The new name is durable only once the directory is.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    fn get(&self, id: SegmentId) -> Result<Vec<u8>, StoreError> {
        let path = self.path(id);
        cowheap_heap::file::read_regular(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::Missing(id)
            } else {
                StoreError::Io { id, path, source }
            }
        })
    }

    fn remove(&self, id: SegmentId) -> Result<(), StoreError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { id, path, source })
            }
            _ => Ok(()),
        }
    }
}

/// Segments kept in memory (tests, benches, and a tenant whose swaps need only to leave its
/// private space). Clones share the same segments.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    segments: Arc<Mutex<HashMap<SegmentId, Vec<u8>>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<SegmentId, Vec<u8>>> {
        // A panic elsewhere while holding the lock cannot leave a map half-updated (every
        // change is one insert or remove), so a poisoned lock is used as it is.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held, over every segment.
    pub fn bytes(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }

    /// Replaces the bytes under `id` (to test what a damaged store does).
    pub fn replace(&self, id: SegmentId, bytes: Vec<u8>) {
        self.map().insert(id, bytes);
    }
}

impl SegmentStore for MemStore {
    fn put(&self, id: SegmentId, bytes: &[u8]) -> Result<(), StoreError> {
        let mut m = self.map();
        if m.contains_key(&id) {
            return Err(StoreError::Exists(id));
        }
        m.insert(id, bytes.to_vec());
        Ok(())
    }

    fn get(&self, id: SegmentId) -> Result<Vec<u8>, StoreError> {
        self.map().get(&id).cloned().ok_or(StoreError::Missing(id))
    }

    fn remove(&self, id: SegmentId) -> Result<(), StoreError> {
        self.map().remove(&id);
        Ok(())
    }
}

/// Why a swap-out or a fault-in failed. A failed swap-out changes nothing in the tenant; a
/// failed fault-in leaves the segment swapped out and the tenant usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwapError {
    /// Extracting, encoding, or (at fault-in) verifying and decoding the segment: a damaged
    /// or truncated file is [`SegmentError::Checksum`] or [`SegmentError::BadFile`].
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The store refused: at fault-in, [`StoreError::Missing`] for a file that is gone.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant refused (a quota, a reference that is no longer valid).
    #[error(transparent)]
    Tenant(#[from] cowheap_tenants::Error),
    /// Nothing to swap out.
    #[error("a segment needs at least one root")]
    NoRoots,
    /// A member that is a host object's proxy ([`crate::hosts`]) could not be swapped out
    /// or made again: at swap-out, no plugin for its kind among the swapper's
    /// ([`HostError::NoPlugin`], the only case a [`Swapper::new`] with no plugins meets),
    /// its plugin failed to save it ([`HostError::Save`]) or a placeholder's state is not
    /// kept ([`HostError::NotSaved`]); at fault-in, no plugin for its kind, or its plugin
    /// failed to make it again ([`HostError::Restore`]).
    #[error("segment member {member} is a host object's proxy: {source}")]
    HostObject {
        /// The member's number.
        member: u32,
        /// What went wrong, with the kind.
        #[source]
        source: HostError,
    },
    /// The store answered a valid segment file, but not the one written for this id.
    #[error("the store's segment {0} is not the one swapped out under that id")]
    Replaced(SegmentId),
    /// The segment read back does not fit what was swapped out (its roots, its out-pointers).
    #[error("segment {segment} read back does not fit what was swapped out: {what}")]
    Mismatch {
        /// The segment.
        segment: SegmentId,
        /// What differs.
        what: &'static str,
    },
    /// This swapper has no such segment out (never, or faulted in already).
    #[error("segment {0} is not swapped out by this swapper")]
    Unknown(SegmentId),
    /// A tenant has one swapper: the tenant holds stubs of a segment this swapper does not
    /// have out (another swapper's, or one not adopted), whose fault handler and segment
    /// reader a swap-out would replace, leaving that segment neither readable nor faulted
    /// in.
    #[error("the tenant has segment {segment} out through another swapper")]
    OtherSwapper {
        /// The segment.
        segment: SegmentId,
    },
    /// A swapper serves one tenant.
    #[error("this swapper serves tenant {serves}, not tenant {asked}")]
    OtherTenant {
        /// The tenant it serves.
        serves: TenantId,
        /// The tenant it was given.
        asked: TenantId,
    },
}

/// What a swap-out did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwappedOut {
    /// The segment's id (its stubs' word).
    pub id: SegmentId,
    /// Members, roots included.
    pub objects: usize,
    /// Roots.
    pub roots: usize,
    /// Members now stubs: every member, roots included, so that a read through a stub can
    /// answer from the segment without bringing it back ([`Swapper::reader`]).
    pub stubs: usize,
    /// Out-pointers.
    pub out_pointers: usize,
    /// Objects outside the segment it refers to, pinned while it is out.
    pub pinned: usize,
    /// Bytes of its file.
    pub file_bytes: usize,
    /// What the collection after the stubbing freed.
    pub collected: CollectStats,
}

/// A segment out, as [`Swapper::records`] answers it and [`Swapper::adopt`] takes it: the
/// words a snapshot of the tenant keeps, so a swapper in another process (after the tenant
/// is restored there) can fault the segment in from the same store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRecord {
    /// The segment's id (its stubs' word, its name in the store).
    pub id: SegmentId,
    /// The identity words of its root stubs, in the segment's root order.
    pub roots: Vec<Word>,
    /// The identity words of the stubs of its other members, in member order; `None` for a
    /// segment whose other members were not stubbed (then freed: a record of an earlier
    /// frame), which reads through its stubs cannot answer without a fault.
    pub members: Option<Vec<Word>>,
    /// The identity words of the objects its `Outside` out-pointers name, in their order.
    pub outside: Vec<Word>,
    /// The checksum field of its file (BLAKE3 of header and body), checked at fault-in.
    pub digest: [u8; 32],
    /// After a fault that filled some stubs and then failed (in a build that filled them
    /// one at a time; this one fills all or none, so it keeps such bodies only from a
    /// record it adopted, until a fault fills the rest): the identity words of the imported
    /// bodies kept to fill the rest from, those of the last stubs (from the one the fault
    /// stopped at), stubs in the order roots then members.
    pub pending: Option<Vec<Word>>,
}

/// How [`Swapper::stub_roots`] ended.
enum Stubbed {
    /// Every root is a stub: the pins, and the roots' host objects (their state in the
    /// file), to drop once the segment is recorded.
    Done(Vec<Handle>, Vec<DetachedHost>),
    /// A stub was refused and the undo put back every member: the tenant as it was, pins
    /// released (a host object it could not give back is the swapper's stranded one).
    Undone(SwapError),
    /// A stub was refused and some members could not be put back: they are stubs of the
    /// segment, whose file must stay and which is recorded as out; the pins, the host
    /// objects the file holds (to drop once recorded), and the first error.
    Partly(Vec<Handle>, Vec<DetachedHost>, SwapError),
}

/// A segment's file read and verified for a fault, its host objects made (outside the
/// swapper's lock).
struct Prepared {
    seg: TenantSegment,
    hosts: Vec<DetachedHost>,
    /// The checksum field of the record the file was checked against.
    digest: [u8; 32],
}

/// A segment that is out, as the swapper remembers it (a word per member and per outside
/// object; the bodies are in the store only).
#[derive(Debug)]
struct Out {
    state: SegmentState,
    /// The stubs of the roots, in the segment's root order.
    roots: Vec<Value>,
    /// The stubs of the other members, in member order (`None` if they were not stubbed:
    /// a record of an earlier frame, [`OutRecord::members`]).
    members: Option<Vec<Value>>,
    /// The objects the `Outside` out-pointers name, pinned.
    outside: Vec<Handle>,
    /// The checksum field of the file written (BLAKE3 of its header and body).
    digest: [u8; 32],
    /// From a record of a fault that filled some stubs and then failed: the imported
    /// bodies of the last stubs (pinned), to fill the rest from, so that every stub gets
    /// the same import.
    pending: Option<Vec<Handle>>,
}

impl Out {
    /// Every stub, in the order a fault fills them: the roots, then the other members.
    fn stubs(&self) -> impl Iterator<Item = Value> + '_ {
        self.roots
            .iter()
            .chain(self.members.iter().flatten())
            .copied()
    }

    /// How many stubs.
    fn stub_len(&self) -> usize {
        self.roots.len() + self.members.as_ref().map_or(0, Vec::len)
    }
}

/// The members of a segment of `n` members in the order its swap-out stubs them: the
/// roots in root order, then the others in member order.
///
/// # Errors
/// [`SegmentError::BadSegment`] for a root that is no member or a root given twice.
fn stub_order(roots: &[u32], n: usize) -> Result<Vec<u32>, SegmentError> {
    let mut is_root = vec![false; n];
    for &r in roots {
        match is_root.get_mut(r as usize) {
            Some(seen) if !*seen => *seen = true,
            _ => {
                return Err(SegmentError::BadSegment(
                    "a root that is no member, or twice",
                ));
            }
        }
    }
    let others = (0..n as u32).filter(|&m| !is_root[m as usize]);
    Ok(roots.iter().copied().chain(others).collect())
}

#[derive(Debug)]
struct Inner {
    store: Box<dyn SegmentStore>,
    tenant: Option<TenantId>,
    next: u64,
    out: BTreeMap<SegmentId, Out>,
    /// Why the last fault of a segment failed, when the tenant's error cannot say.
    errors: HashMap<SegmentId, SwapError>,
    keep_files: bool,
    /// Save host objects at swap-out and make them again at fault-in.
    plugins: HostPlugins,
    /// A host object whose plugin is missing at fault-in becomes a placeholder.
    placeholders: bool,
    /// Host objects a failed swap-out could give back to no proxy ([`Swapper::take_stranded`]).
    stranded: Vec<(Value, DetachedHost)>,
}

/// Swaps segments of one tenant out to a [`SegmentStore`] and faults them back in (see the
/// module doc). Clones share the same state; the tenant's fault handler is one of them.
#[derive(Clone, Debug)]
pub struct Swapper {
    inner: Arc<Mutex<Inner>>,
}

/// How many ids are tried when the store holds the next ones already (each further on than
/// the one before: see [`Swapper::store_new`]).
const ID_TRIES: u32 = 1_024;

impl Swapper {
    /// A swapper writing to `store`, with no host object plugins: a segment holding a host
    /// object's proxy is refused ([`SwapError::HostObject`]).
    pub fn new(store: impl SegmentStore + 'static) -> Swapper {
        Swapper::with_plugins(store, HostPlugins::new())
    }

    /// A swapper writing to `store` that carries host objects through `plugins`
    /// ([`crate::hosts`]): at swap-out each host object among the members is saved by its
    /// kind's plugin into the segment's file and dropped with the members; at fault-in each
    /// is made again by its plugin and given back to the same proxy (a root keeps its
    /// identity and identity hash, like any root).
    pub fn with_plugins(store: impl SegmentStore + 'static, plugins: HostPlugins) -> Swapper {
        Swapper {
            inner: Arc::new(Mutex::new(Inner {
                store: Box::new(store),
                tenant: None,
                next: 1,
                out: BTreeMap::new(),
                errors: HashMap::new(),
                keep_files: false,
                plugins,
                placeholders: false,
                stranded: Vec::new(),
            })),
        }
    }

    /// Replaces the host object plugins (see [`Swapper::with_plugins`]): for a swapper
    /// made without them, or one that takes over segments out ([`Swapper::adopt`]) in a
    /// process whose plugins are known later. Applies to later swap-outs and faults.
    pub fn set_plugins(&self, plugins: HostPlugins) {
        self.lock().plugins = plugins;
    }

    /// Whether a host object whose kind has no plugin (or whose state was not kept) comes
    /// back as a placeholder ([`cowheap_tenants::Tenant::placeholders`]) rather than
    /// refusing the fault, as [`cowheap_tenants::Tenant::restore_with_hosts`] with
    /// `placeholders` does; by default it is refused. With placeholders accepted, a swap-out
    /// also takes host objects its plugins could not make again (a placeholder with no
    /// saved state). A plugin that fails to make its object is refused either way.
    pub fn accept_placeholders(&self, accept: bool) {
        self.lock().placeholders = accept;
    }

    /// Whether a segment's file stays in the store after it is faulted in (by default it is
    /// removed). Keep them when a snapshot taken while the segment was out may be restored.
    pub fn keep_files(&self, keep: bool) {
        self.lock().keep_files = keep;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock is made after the fallible work, in a few map updates
        // that cannot panic halfway: a poisoned lock holds consistent state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handler that faults this swapper's segments in; [`Swapper::swap_out`] installs
    /// it on the tenant.
    pub fn handler(&self) -> FaultHandler {
        let me = self.clone();
        FaultHandler::new(move |t, id| me.fault(t, SegmentId(id)))
    }

    /// The reader that answers reads through this swapper's stubs from their segments'
    /// files without bringing them back; [`Swapper::swap_out`] installs it on the tenant
    /// ([`Tenant::set_segment_reader`]). It reads and verifies the file as a fault does; a
    /// segment it cannot read (a file gone or damaged) answers
    /// [`cowheap_tenants::Error::Swapped`], so the caller faults it in and meets the typed
    /// reason there.
    pub fn reader(&self) -> SegmentReader {
        let me = self.clone();
        SegmentReader::new(move |t, id| me.view(t, SegmentId(id)))
    }

    /// The segments out, with their states, in id order.
    pub fn swapped(&self) -> Vec<(SegmentId, SegmentState)> {
        self.lock().out.iter().map(|(&k, o)| (k, o.state)).collect()
    }

    /// The state of segment `id`, if it is out.
    pub fn state(&self, id: SegmentId) -> Option<SegmentState> {
        self.lock().out.get(&id).map(|o| o.state)
    }

    /// The typed reason behind a tenant error: for [`cowheap_tenants::Error::Fault`] of a
    /// segment whose fault failed, why it failed (taken: asked once); otherwise the tenant's
    /// error as it is.
    pub fn explain(&self, e: cowheap_tenants::Error) -> SwapError {
        if let cowheap_tenants::Error::Fault { segment, .. } = e
            && let Some(why) = self.lock().errors.remove(&SegmentId(segment))
        {
            return why;
        }
        SwapError::Tenant(e)
    }

    /// [`SwapError::OtherTenant`] if the swapper serves a tenant other than `t`. A swapper
    /// comes to serve a tenant by its first segment out (a swap-out that records one, or an
    /// adoption), never by an operation refused.
    fn check_tenant(inner: &Inner, t: &Tenant) -> Result<(), SwapError> {
        match inner.tenant {
            Some(serves) if serves != t.id() => Err(SwapError::OtherTenant {
                serves,
                asked: t.id(),
            }),
            _ => Ok(()),
        }
    }

    /// [`SwapError::OtherSwapper`] if `t` holds a stub of a segment this swapper does not
    /// have out: one tenant has one swapper, since a swap-out installs its own fault
    /// handler and segment reader in place of the tenant's. Time: O(the tenant's private
    /// keys), as finding a fresh id is.
    fn check_sole_swapper(inner: &Inner, t: &Tenant) -> Result<(), SwapError> {
        Self::check_sole_swapper_with(inner, t, &[])
    }

    /// [`Swapper::check_sole_swapper`], the segments of `adopting` (sorted) counted as
    /// this swapper's: an adoption installs its handler and reader as a swap-out does.
    fn check_sole_swapper_with(
        inner: &Inner,
        t: &Tenant,
        adopting: &[SegmentId],
    ) -> Result<(), SwapError> {
        match t
            .stubs()
            .map(|(_, s)| SegmentId(s))
            .find(|id| !inner.out.contains_key(id) && adopting.binary_search(id).is_err())
        {
            Some(segment) => Err(SwapError::OtherSwapper { segment }),
            None => Ok(()),
        }
    }

    /// Swaps out the segment of `roots`: what they reach that the tenant's other roots
    /// ([`tenant::tenant_roots`], the diverted copies, the objects pinned for segments out
    /// already) do not. Writes its file to the store, stubs each member (roots first) with
    /// the segment's id, collects the tenant and installs [`Swapper::handler`] as its fault
    /// handler and [`Swapper::reader`] as its segment reader. Time: see the module doc.
    ///
    /// # Errors
    /// [`SwapError::NoRoots`]; [`SwapError::Segment`] as [`tenant::extract`] (a root that is
    /// no private object, or a stub already: [`SegmentError::Tenant`] with
    /// [`cowheap_tenants::Error::Swapped`]); [`SwapError::HostObject`] for a host object
    /// among the members that no plugin of this swapper's can save, or make again at
    /// fault-in (unless placeholders are accepted), or whose plugin fails to save it;
    /// [`SwapError::Store`]; [`SwapError::Tenant`]; [`SwapError::OtherTenant`];
    /// [`SwapError::OtherSwapper`] for a tenant with a segment out through another swapper
    /// (one tenant has one swapper: this swap-out would replace that swapper's fault
    /// handler and segment reader, and its segments could no longer come back). On error
    /// the tenant is as it was, save after a stub refused midway (unexpected: `extract`
    /// checked every root) whose undo could not give some member its body back: that
    /// member is then a stub of the segment, which is recorded as out ([`Swapper::swapped`]) with
    /// its file, and the error is the undo's first.
    pub fn swap_out(&self, t: &mut Tenant, roots: &[Value]) -> Result<SwappedOut, SwapError> {
        // The swapper serves `t` from here (another tenant's swap-out meanwhile is refused),
        // and stops again if this one records nothing.
        let fresh = {
            let mut inner = self.lock();
            Self::check_tenant(&inner, t)?;
            Self::check_sole_swapper(&inner, t)?;
            inner.tenant.replace(t.id()).is_none()
        };
        let done = self.swap_out_served(t, roots);
        if done.is_err() && fresh {
            let mut inner = self.lock();
            if inner.out.is_empty() {
                inner.tenant = None;
            }
        }
        done
    }

    /// [`Swapper::swap_out`], the swapper serving `t`.
    fn swap_out_served(&self, t: &mut Tenant, roots: &[Value]) -> Result<SwappedOut, SwapError> {
        if roots.is_empty() {
            return Err(SwapError::NoRoots);
        }
        // One root per object, named by its word as the tenant stores it.
        let mut words = std::collections::HashSet::new();
        let mut rs = Vec::with_capacity(roots.len());
        for &r in roots {
            let w = t.identity_word(r)?;
            if words.insert(w) {
                rs.push(Value::owned(w, t.id()));
            }
        }
        let (plugins, placeholders) = {
            let inner = self.lock();
            (inner.plugins.clone(), inner.placeholders)
        };
        let others = tenant::tenant_roots(t);
        // Each host object among the members is saved by its plugin into the segment.
        let mut seg = tenant::extract_with_hosts(t, &rs, &others, &plugins).map_err(host_error)?;
        // What a fault could not make again is refused now, with nothing changed.
        for h in &seg.hosts {
            crate::hosts::restorable(h, &plugins, placeholders).map_err(host_error)?;
        }
        // The states the segment passes through once its roots are stubbed are checked now,
        // before anything changes: nothing after the stubbing can fail.
        let mut on_file = seg.state;
        on_file
            .advance(SegmentState::Active)
            .and_then(|()| on_file.advance(SegmentState::OnFile))
            .map_err(SegmentError::State)?;
        let order = stub_order(&seg.roots, seg.members.len())?;
        let bytes = file::to_bytes(&seg)?;
        let digest =
            file_checksum(&bytes).ok_or(SegmentError::BadFile("shorter than its header"))?;
        let id = self.store_new(t, &bytes)?;
        // From here on a failure takes the file back out of the store, unless a member is
        // left a stub of it.
        let (pins, hosts, failed) = match self.stub_members(t, &seg, &order, id) {
            Stubbed::Done(pins, hosts) => (pins, hosts, None),
            Stubbed::Partly(pins, hosts, e) => (pins, hosts, Some(e)),
            Stubbed::Undone(e) => {
                // Nothing in the tenant refers to the file: it is of no use; a store that
                // cannot drop it leaves an orphan file.
                let _ = self.lock().store.remove(id);
                return Err(e);
            }
        };
        seg.state = on_file;
        // Every member is a stub (or, after a failed undo, some are): what the members held
        // is gone, and the collection frees what else only they reached (forwarders).
        let collected = t.collect();
        t.set_fault_handler(Some(self.handler()));
        t.set_segment_reader(Some(self.reader()));
        let members = order[seg.roots.len()..]
            .iter()
            .map(|&m| seg.members[m as usize])
            .collect();
        let mut inner = self.lock();
        inner.errors.remove(&id);
        inner.out.insert(
            id,
            Out {
                state: seg.state,
                roots: rs,
                members: Some(members),
                outside: pins,
                digest,
                pending: None,
            },
        );
        drop(inner);
        // The roots' host objects are in the segment's file, and the segment is recorded:
        // they are dropped here, as the collection dropped the other members'.
        drop(hosts);
        self.forget_dead(t);
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(SwappedOut {
            id,
            objects: seg.objects.len(),
            roots: seg.roots.len(),
            stubs: seg.objects.len(),
            out_pointers: seg.out.len(),
            pinned: seg.outside.len(),
            file_bytes: bytes.len(),
            collected,
        })
    }

    /// Stores `bytes` under a fresh id: above every stub the tenant has, and past the ids
    /// the store holds already. Each id found taken moves the next try twice as far on as
    /// the one before (1, 2, 4, ... past it), so a run of taken ids as long as a store holds
    /// is passed within [`ID_TRIES`] tries; where the tries ended is kept for the next
    /// swap-out.
    fn store_new(&self, t: &Tenant, bytes: &[u8]) -> Result<SegmentId, SwapError> {
        let top = t.stubs().map(|(_, s)| s).max().unwrap_or(0);
        let mut inner = self.lock();
        let mut next = inner.next.max(top.saturating_add(1));
        let mut step = 1u64;
        let mut last = next;
        for _ in 0..ID_TRIES {
            let id = SegmentId(next);
            last = next;
            if !inner.out.contains_key(&id) {
                match inner.store.put(id, bytes) {
                    Ok(()) => {
                        inner.next = next.saturating_add(1);
                        return Ok(id);
                    }
                    Err(StoreError::Exists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            next = next.saturating_add(step);
            step = step.saturating_mul(2);
        }
        inner.next = next;
        Err(StoreError::Exists(SegmentId(last)).into())
    }

    /// Pins the outside objects and stubs every member, roots first ([`stub_order`]); a
    /// member that is a host object's proxy loses its host object first, kept to be dropped
    /// once the segment is recorded. On failure undoes it (see [`Stubbed`]).
    ///
    /// With today's tenant no stub is refused here: every root was checked by `extract`
    /// (a private object with a body, a proxy or not), the other members are private
    /// objects it reached, and nothing ran since. The undo is for a tenant that changes
    /// under that assumption; it goes through every member stubbed,
    /// gives each host object back or keeps it where its state is (the file, or the
    /// swapper's [`Swapper::take_stranded`]), and answers the first error.
    fn stub_members(
        &self,
        t: &mut Tenant,
        seg: &TenantSegment,
        order: &[u32],
        id: SegmentId,
    ) -> Stubbed {
        let mut pins = Vec::with_capacity(seg.outside.len());
        for &o in &seg.outside {
            match t.pin(o) {
                Ok(h) => pins.push(h),
                Err(e) => {
                    unpin_all(t, &pins);
                    return Stubbed::Undone(e.into());
                }
            }
        }
        // The host objects taken from the members stubbed so far, by member.
        let mut detached: Vec<Option<DetachedHost>> = Vec::with_capacity(order.len());
        let mut failed = None;
        for &r in order {
            let member = seg.members[r as usize];
            let host = t.detach_host(member);
            if let Err(e) = t.stub(member, id.0) {
                if let Some(h) = host {
                    // Nothing changed but the detaching: the proxy takes it back (a proxy a
                    // moment ago, with its body). Were it refused, the swapper keeps it.
                    if let Err((_, h)) = t.try_attach_host(member, h) {
                        self.lock().stranded.push((member, h));
                    }
                }
                failed = Some(e);
                break;
            }
            detached.push(host);
        }
        let Some(e) = failed else {
            return Stubbed::Done(pins, detached.into_iter().flatten().collect());
        };
        // Undo: each stubbed member gets its body back, made from the segment's copy of it
        // (its references to the other members name them, stubs or not, by their keys),
        // and its host object. A member that cannot is left a stub of this segment, whose
        // file holds it, its host object among them (saved at extract): the segment is then
        // recorded as out.
        let mut first: Option<SwapError> = None;
        let mut in_file = Vec::new();
        let mut stubs_left = false;
        for (&r, host) in order.iter().zip(detached) {
            let member = seg.members[r as usize];
            if let Err(e) = restore_body(t, seg, r as usize) {
                first.get_or_insert(e);
                stubs_left = true;
                in_file.extend(host);
                continue;
            }
            let Some(h) = host else { continue };
            // A body just made is no proxy: the attach is not refused today. Were it, the
            // member is stubbed again so that the file, which holds its host object, gives
            // it back at fault-in; failing that too, the swapper keeps it.
            if let Err((e, h)) = t.try_attach_host(member, h) {
                first.get_or_insert(e.into());
                if t.stub(member, id.0).is_ok() {
                    stubs_left = true;
                    in_file.push(h);
                } else {
                    self.lock().stranded.push((member, h));
                }
            }
        }
        if stubs_left {
            return Stubbed::Partly(pins, in_file, first.unwrap_or_else(|| e.into()));
        }
        unpin_all(t, &pins);
        Stubbed::Undone(e.into())
    }

    /// The host objects a failed swap-out could give back to no proxy, with the roots they
    /// were taken from (none with today's tenant: see [`Swapper::swap_out`]). Taken: asked
    /// once. The embedder decides what becomes of them (attach them again, or close them).
    pub fn take_stranded(&self) -> Vec<(Value, DetachedHost)> {
        std::mem::take(&mut self.lock().stranded)
    }

    /// Faults segment `id` in (through the tenant, so the tenant's checks apply), answering
    /// the typed reason if it fails. Time: see the module doc.
    ///
    /// # Errors
    /// [`SwapError::Unknown`] if it is not out; [`SwapError::Store`] with
    /// [`StoreError::Missing`] for a file gone; [`SwapError::Segment`] for a damaged or
    /// truncated one; [`SwapError::Replaced`], [`SwapError::Mismatch`];
    /// [`SwapError::HostObject`] for a host object whose kind has no plugin (unless
    /// placeholders are accepted) or whose plugin fails to make it again;
    /// [`SwapError::Tenant`] (a quota). The segment stays out and the tenant usable.
    /// [`SwapError::OtherTenant`] for a tenant this swapper does not serve, which is left
    /// as it was: no handler is installed on it, and its own handler (another swapper's,
    /// whose ids may equal this one's) is not asked to fault anything in.
    pub fn fault_in(&self, t: &mut Tenant, id: SegmentId) -> Result<(), SwapError> {
        {
            let inner = self.lock();
            Self::check_tenant(&inner, t)?;
            if !inner.out.contains_key(&id) {
                return Err(SwapError::Unknown(id));
            }
        }
        if !t.has_fault_handler() {
            t.set_fault_handler(Some(self.handler()));
        }
        t.fault_in(id.0).map_err(|e| self.explain(e))
    }

    /// The handler's body: the typed reason is kept, the tenant told the segment is still
    /// out (or given its own error as it is). Public for an embedder's own handler that
    /// wraps this one (to count faults, say); [`Swapper::handler`] is this and nothing
    /// more.
    pub fn fault(&self, t: &mut Tenant, id: SegmentId) -> cowheap_tenants::Result<()> {
        let result = self.fault_typed(t, id);
        let mut inner = self.lock();
        match result {
            Ok(()) => {
                inner.errors.remove(&id);
                Ok(())
            }
            Err(SwapError::Tenant(e)) => Err(e),
            Err(e) => {
                let reason = e.to_string();
                inner.errors.insert(id, e);
                Err(cowheap_tenants::Error::Fault {
                    segment: id.0,
                    reason,
                })
            }
        }
    }

    /// A fault in two steps. Under the lock the file is read and verified; the host objects
    /// are made by the plugins (cloned under the lock) without it, so a plugin may call
    /// back into the swapper (`swapped`, `records`, a swap-out); then, under the lock
    /// again, the segment is imported if the swapper still has it out as it was when the
    /// file was read (otherwise the step is taken again with what it has now: filled by
    /// another fault meanwhile is [`SwapError::Unknown`], as a second fault was before).
    fn fault_typed(&self, t: &mut Tenant, id: SegmentId) -> Result<(), SwapError> {
        let mut prepared: Option<Prepared> = None;
        loop {
            let mut inner = self.lock();
            Self::check_tenant(&inner, t)?;
            let out = inner.out.get(&id).ok_or(SwapError::Unknown(id))?;
            if out.pending.is_some() {
                // The rest of the roots come from the import kept: no file, no plugin. Host
                // objects made meanwhile are new objects made from the file, which keeps
                // their state: dropping them loses nothing.
                return Self::fault_locked(&mut inner, t, id, None);
            }
            if let Some(p) = prepared.take()
                && p.digest == out.digest
            {
                return Self::fault_locked(&mut inner, t, id, Some(p));
            }
            let digest = out.digest;
            // Everything is checked before the tenant is touched.
            let seg = Self::read_out(&inner, t, id, out)?;
            let (plugins, placeholders) = (inner.plugins.clone(), inner.placeholders);
            drop(inner);
            // Host objects are made again (by the plugins) before anything is allocated: a
            // plugin that fails leaves the tenant untouched.
            let hosts = seg.make_hosts(&plugins, placeholders).map_err(host_error)?;
            prepared = Some(Prepared { seg, hosts, digest });
        }
    }

    /// The file of segment `id`, which is `out`, read from the store and verified: its own
    /// checksum, that it is the very file written (its checksum field is the one kept), and
    /// that it fits the stubs (its roots, and its members if they were stubbed).
    fn read_out(
        inner: &Inner,
        t: &Tenant,
        id: SegmentId,
        out: &Out,
    ) -> Result<TenantSegment, SwapError> {
        let bytes = inner.store.get(id)?;
        // The file's own checksum (BLAKE3 over its header and body, verified by the
        // decoder) must be the one written: then the bytes are the segment's.
        // Made on the tenant's version of its base or on one it has moved on from since
        // (a commit, a rebase): its objects are at the same indices.
        let mut on = Some(t.base());
        let seg = loop {
            let Some(v) = on else {
                // Refused by the tenant's own version, as a file of another base is.
                break file::from_bytes(&bytes, Some(t.base().fingerprint()))?;
            };
            match file::from_bytes(&bytes, Some(v.fingerprint())) {
                Err(SegmentError::WrongBase { .. }) => on = v.parent(),
                r => break r?,
            }
        };
        if file_checksum(&bytes) != Some(out.digest) {
            return Err(SwapError::Replaced(id));
        }
        Self::check_fits(&seg, out, id)?;
        Ok(seg)
    }

    /// [`SwapError::Mismatch`] unless segment `seg` has as many roots as `out` has root
    /// stubs, and as many other members as it has member stubs (if any).
    fn check_fits(seg: &TenantSegment, out: &Out, id: SegmentId) -> Result<(), SwapError> {
        if seg.roots.len() != out.roots.len() {
            return Err(SwapError::Mismatch {
                segment: id,
                what: "the number of roots",
            });
        }
        if out.members.is_some() && seg.objects.len() != out.stub_len() {
            return Err(SwapError::Mismatch {
                segment: id,
                what: "the number of members",
            });
        }
        Ok(())
    }

    /// A view of segment `id` for a read through one of its stubs ([`Swapper::reader`]):
    /// the tenant's error as it is, any other failure kept for [`Swapper::explain`] and
    /// answered as [`cowheap_tenants::Error::Swapped`] (a fault then meets it, typed).
    fn view(&self, t: &Tenant, id: SegmentId) -> cowheap_tenants::Result<SegmentView> {
        let swapped = cowheap_tenants::Error::Swapped {
            segment: id.0,
            object: Word::from_bits(0),
        };
        match self.view_typed(t, id) {
            // A reason kept from an earlier failure stays for `explain`, asked once.
            Ok(Some(v)) => Ok(v),
            // No view to make: not a failure, nothing to keep.
            Ok(None) => Err(swapped),
            Err(SwapError::Tenant(e)) => Err(e),
            Err(e) => {
                self.lock().errors.insert(id, e);
                Err(swapped)
            }
        }
    }

    /// The view, or `None` where there is none to make: a segment whose other members
    /// were not stubbed (a record of an earlier frame: no names for them), or one a fault
    /// filled part-way (the stubs left are filled from bodies already imported, which
    /// writes through the filled ones may have changed since: the file no longer tells).
    fn view_typed(&self, t: &Tenant, id: SegmentId) -> Result<Option<SegmentView>, SwapError> {
        let (seg, stubs, outside) = {
            let inner = self.lock();
            if inner.tenant != Some(t.id()) {
                return Err(SwapError::Unknown(id));
            }
            let out = inner.out.get(&id).ok_or(SwapError::Unknown(id))?;
            if out.members.is_none() || out.pending.is_some() {
                return Ok(None);
            }
            let seg = Self::read_out(&inner, t, id, out)?;
            let stubs: Vec<Value> = out.stubs().collect();
            (seg, stubs, out.outside.clone())
        };
        if stubs.len() != seg.objects.len() {
            return Err(SwapError::Mismatch {
                segment: id,
                what: "the number of members",
            });
        }
        let order = stub_order(&seg.roots, seg.objects.len())?;
        // Member m's stub.
        let mut stub_of = vec![Value::int(0); seg.objects.len()];
        for (&m, &v) in order.iter().zip(&stubs) {
            stub_of[m as usize] = v;
        }
        let outside = outside
            .iter()
            .map(|&h| t.pinned_value(h))
            .collect::<cowheap_tenants::Result<Vec<_>>>()?;
        let value = |r: tenant::SRef| -> Result<Value, SwapError> {
            Ok(match r {
                tenant::SRef::Imm(w) => Value::shared(w),
                tenant::SRef::Obj(j) => *stub_of
                    .get(j as usize)
                    .ok_or(SegmentError::BadSegment("a reference to no member"))?,
                tenant::SRef::Out(k) => match seg.out.get(k as usize) {
                    Some(tenant::OutRef::Base(x)) => Value::base(*x),
                    Some(tenant::OutRef::Outside(k)) => *outside
                        .get(*k as usize)
                        .ok_or(SegmentError::BadSegment("a reference to no outside object"))?,
                    _ => return Err(SegmentError::BadSegment("a portable out-pointer").into()),
                },
            })
        };
        let mut slots = Vec::with_capacity(seg.objects.len());
        let mut classes = Vec::with_capacity(seg.objects.len());
        for o in &seg.objects {
            classes.push(value(o.class)?);
            slots.push(
                o.slots
                    .iter()
                    .map(|&r| value(r))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        // The stubs still standing: after a fault that stopped part-way, or an undo that
        // gave some members their bodies back, the others are objects again.
        let standing = |v: Value| matches!(t.stub_segment(v), Ok(Some(s)) if s == id.0);
        let members = seg
            .objects
            .iter()
            .enumerate()
            .filter(|&(m, _)| standing(stub_of[m]))
            .map(|(m, o)| ViewMember {
                stub: stub_of[m],
                class: classes[m],
                format: o.format,
                hash: o.hash,
                slots: &slots[m],
                bytes: &o.bytes,
            });
        Ok(Some(t.segment_view(id.0, members)?))
    }

    /// Fills the stubs of segment `id` from `prepared` (its file read, verified and its host
    /// objects made, for the record of digest `prepared.digest`), or from the bodies kept
    /// by a fault that stopped part-way (a record's; then `prepared` is `None`): all the
    /// stubs or none ([`Tenant::fill_stubs`]); if none, the import is freed again.
    fn fault_locked(
        inner: &mut Inner,
        t: &mut Tenant,
        id: SegmentId,
        prepared: Option<Prepared>,
    ) -> Result<(), SwapError> {
        let out = inner.out.get_mut(&id).ok_or(SwapError::Unknown(id))?;
        // The members this fault's own import made, if it made them: freed again if the
        // stubs cannot take them.
        let mut made: Vec<Value> = Vec::new();
        // The memory to free them, had before the import makes the first.
        let mut reserve = CollectionReserve::default();
        let bodies: Vec<Value> = match (&out.pending, prepared) {
            (Some(p), _) => p
                .iter()
                .map(|&h| t.pinned(h))
                .collect::<cowheap_tenants::Result<_>>()?,
            (None, None) => return Err(SwapError::Unknown(id)),
            (
                None,
                Some(Prepared {
                    mut seg,
                    hosts,
                    digest,
                }),
            ) => {
                if digest != out.digest {
                    return Err(SwapError::Replaced(id));
                }
                Self::check_fits(&seg, out, id)?;
                let order = stub_order(&seg.roots, seg.objects.len())?;
                let outside = out
                    .outside
                    .iter()
                    .map(|&h| t.pinned(h))
                    .collect::<cowheap_tenants::Result<Vec<_>>>()?;
                reserve = t.reserve_collection(seg.objects.len())?;
                let imported = seg
                    .import_swapped(t, &outside, hosts)
                    .map_err(|e| match e {
                        SegmentError::Tenant(e) => SwapError::Tenant(e),
                        e => host_error(e),
                    })?;
                out.state = SegmentState::Inactive;
                made = imported.members;
                if out.members.is_none() {
                    imported.roots
                } else {
                    order.iter().map(|&m| made[m as usize]).collect()
                }
            }
        };
        // Each stub still standing gets its member's body, all together or none (the
        // bodies refer to one another); one the tenant has dropped since (collected) is
        // skipped, its body garbage. Bodies pinned by a record (of a fault that stopped
        // part-way, in a process that filled stubs one at a time) are those of the last
        // stubs.
        let stubs: Vec<Value> = out.stubs().collect();
        let Some(first) = stubs.len().checked_sub(bodies.len()) else {
            if !made.is_empty() {
                let _ = t.free_unreachable_with(&made, reserve);
                out.state = SegmentState::OnFile;
            }
            return Err(SwapError::Mismatch {
                segment: id,
                what: "the number of members",
            });
        };
        let filled = try_list::<(Value, Value)>(bodies.len())
            .map_err(SwapError::from)
            .and_then(|mut pairs| {
                pairs.extend(
                    stubs[first..]
                        .iter()
                        .zip(&bodies)
                        .filter(
                            |&(&stub, _)| matches!(t.stub_segment(stub), Ok(Some(s)) if s == id.0),
                        )
                        .map(|(&stub, &body)| (stub, body)),
                );
                // Every stub of the segment the tenant holds gets a body here: the file is
                // dropped after, so one left a stub could never come back.
                if pairs.len() != t.stubs_of(id.0) {
                    return Err(SwapError::Mismatch {
                        segment: id,
                        what: "a stub of the segment the record does not name",
                    });
                }
                Ok(t.fill_stubs(&pairs)?)
            });
        if let Err(e) = filled {
            // No stub has changed: the import is dropped, the segment still out on file.
            if !made.is_empty() {
                // In the memory reserved before the import: not refused.
                let _ = t.free_unreachable_with(&made, reserve);
                out.state = SegmentState::OnFile;
            }
            return Err(e);
        }
        let Some(mut out) = inner.out.remove(&id) else {
            return Err(SwapError::Unknown(id));
        };
        out.state = SegmentState::Imported;
        unpin_all(t, &out.outside);
        if let Some(p) = &out.pending {
            unpin_all(t, p);
        }
        if !inner.keep_files {
            // The segment is back; a file the store cannot drop is an orphan, not an error.
            let _ = inner.store.remove(id);
        }
        Ok(())
    }

    /// What this swapper remembers of its segments out, in words that keep their meaning in
    /// a snapshot of the tenant taken now (keys and generations are saved; handles are
    /// not): with the snapshot, what a swapper of another process needs to fault them in
    /// ([`Swapper::adopt`]). Time: O(roots and pins of the segments out).
    ///
    /// # Errors
    /// [`SwapError::OtherTenant`]; [`SwapError::Tenant`] if a pin is no longer valid, or
    /// holding [`cowheap_tenants::Error::OutOfMemory`] if the allocator refuses the
    /// records' memory (reserved fallibly, list by list).
    pub fn records(&self, t: &mut Tenant) -> Result<Vec<OutRecord>, SwapError> {
        {
            let inner = self.lock();
            Self::check_tenant(&inner, t)?;
        }
        // A segment none of whose stubs the tenant holds any more (its roots dropped and
        // collected) has nothing to record: forgotten first, as a swap-out forgets it.
        self.forget_dead(t);
        let inner = self.lock();
        let mut out = try_list(inner.out.len())?;
        for (&id, o) in &inner.out {
            let pinned = |t: &mut Tenant, hs: &[Handle]| -> Result<Vec<Word>, SwapError> {
                let mut ws = try_list(hs.len())?;
                for &h in hs {
                    let v = t.pinned(h)?;
                    ws.push(t.identity_word(v)?);
                }
                Ok(ws)
            };
            // The stubs before the kept bodies of a fault that stopped part-way were filled
            // by it: no part of the fault to come, and the tenant may have dropped and
            // collected them since, so they are named by the word held, not resolved.
            let filled = o
                .pending
                .as_ref()
                .map_or(0, |p| o.stub_len().saturating_sub(p.len()));
            let stubs =
                |t: &mut Tenant, vs: &[Value], from: usize| -> Result<Vec<Word>, SwapError> {
                    let mut ws = try_list(vs.len())?;
                    for (k, &v) in vs.iter().enumerate() {
                        ws.push(if from + k < filled {
                            v.word()
                        } else {
                            t.identity_word(v)?
                        });
                    }
                    Ok(ws)
                };
            out.push(OutRecord {
                id,
                roots: stubs(t, &o.roots, 0)?,
                members: o
                    .members
                    .as_deref()
                    .map(|ms| stubs(t, ms, o.roots.len()))
                    .transpose()?,
                outside: pinned(t, &o.outside)?,
                digest: o.digest,
                pending: o.pending.as_deref().map(|p| pinned(t, p)).transpose()?,
            });
        }
        Ok(out)
    }

    /// Takes over segments another swapper swapped out of this tenant, as
    /// [`Swapper::records`] gave them when the snapshot the tenant was restored from was
    /// taken: pins what each keeps alive again (before anything can collect it), remembers
    /// them as out and installs [`Swapper::handler`]. The segments' files must be in this
    /// swapper's store, under the same ids. Time: O(roots and pins), and O(the tenant's
    /// private keys) to find its stubs.
    ///
    /// # Errors
    /// [`SwapError::OtherTenant`]; [`SwapError::OtherSwapper`] if the tenant holds a stub
    /// of a segment neither out through this swapper nor among `records` (one tenant has
    /// one swapper); [`SwapError::Tenant`] for a word that names nothing
    /// live in the tenant, or holding [`cowheap_tenants::Error::OutOfMemory`] if the
    /// allocator refuses the lists' memory (reserved fallibly); [`SwapError::Mismatch`]
    /// for a record whose id this swapper has out already, or with no root, or whose
    /// roots and members are not the segment's stubs (but for those a failed fault filled
    /// before its `pending` ones: objects, live or collected since, and no stub among
    /// them), each named once and all of them, or that keeps more `pending` bodies than it
    /// names stubs, or keeps as one a stub, a body twice or an object it names besides.
    /// Nothing changes on an error.
    pub fn adopt(&self, t: &mut Tenant, records: &[OutRecord]) -> Result<(), SwapError> {
        let mut inner = self.lock();
        if let Some(serves) = inner.tenant
            && serves != t.id()
        {
            return Err(SwapError::OtherTenant {
                serves,
                asked: t.id(),
            });
        }
        // One tenant has one swapper: the adoption installs this one's handler and reader,
        // so a stub of a segment neither out here nor adopted now would be stranded.
        let mut adopting = try_list(records.len())?;
        adopting.extend(records.iter().map(|r| r.id));
        adopting.sort_unstable();
        Self::check_sole_swapper_with(&inner, t, &adopting)?;
        let mut made: Vec<(SegmentId, Out)> = try_list(records.len())?;
        // Every pin, so that an error unpins them all: its room reserved first, as the
        // records say how many there are.
        let mut pins = try_list(
            records
                .iter()
                .map(|r| r.outside.len() + r.pending.as_ref().map_or(0, Vec::len))
                .fold(0, usize::saturating_add),
        )?;
        if let Err(e) = Self::adopt_each(t, records, &inner, &mut made, &mut pins) {
            unpin_all(t, &pins);
            return Err(e);
        }
        // Bound by a segment it now has out, as a swap-out binds it: adopting no record
        // leaves a fresh swapper free to serve any tenant.
        if !made.is_empty() {
            inner.tenant = Some(t.id());
        }
        for (id, o) in made {
            inner.next = inner.next.max(id.0.saturating_add(1));
            inner.errors.remove(&id);
            inner.out.insert(id, o);
        }
        drop(inner);
        t.set_fault_handler(Some(self.handler()));
        t.set_segment_reader(Some(self.reader()));
        Ok(())
    }

    /// [`Swapper::adopt`]'s checks and pins, record by record, into `made`; every handle
    /// pinned is pushed to `pins` (which has room for them all), for the caller to unpin
    /// on an error.
    fn adopt_each(
        t: &mut Tenant,
        records: &[OutRecord],
        inner: &Inner,
        made: &mut Vec<(SegmentId, Out)>,
        pins: &mut Vec<Handle>,
    ) -> Result<(), SwapError> {
        for r in records {
            if r.roots.is_empty()
                || inner.out.contains_key(&r.id)
                || made.iter().any(|(id, _)| *id == r.id)
            {
                return Err(SwapError::Mismatch {
                    segment: r.id,
                    what: "a record with no root, or of a segment out already",
                });
            }
            let pin = |t: &mut Tenant, ws: &[Word], pins: &mut Vec<Handle>| {
                let mut hs = try_list(ws.len())?;
                for &w in ws {
                    let h = t.pin(Value::owned(w, t.id()))?;
                    pins.push(h);
                    hs.push(h);
                }
                Ok::<_, SwapError>(hs)
            };
            let stubs = |t: &Tenant, ws: &[Word]| {
                let mut vs = try_list(ws.len())?;
                vs.extend(ws.iter().map(|&w| Value::owned(w, t.id())));
                Ok::<_, SwapError>(vs)
            };
            // Every root and member is a stub of this segment, but for those a failed fault
            // filled before the `pending` ones, which are objects (live, or collected since:
            // the fault does not touch them): a record naming anything else (a collected
            // key, another segment's stub) would be taken out and its tenant could then
            // never be suspended again. The kept bodies are those of the last stubs, one
            // each: a stub standing before them, or more bodies than stubs, is one no fault
            // could ever fill.
            let stubs_n = r.roots.len() + r.members.as_ref().map_or(0, Vec::len);
            let filled = match &r.pending {
                Some(p) if p.len() > stubs_n => {
                    return Err(SwapError::Mismatch {
                        segment: r.id,
                        what: "a record keeping more bodies than it has stubs",
                    });
                }
                Some(p) => stubs_n - p.len(),
                None => 0,
            };
            let mut standing = 0usize;
            for (k, &w) in r.roots.iter().chain(r.members.iter().flatten()).enumerate() {
                match t.stub_segment(Value::owned(w, t.id())) {
                    Ok(Some(s)) if s == r.id.0 && k >= filled => standing += 1,
                    // Filled by the fault that stopped: a live object, or one the tenant
                    // has dropped and collected since.
                    Ok(None) | Err(cowheap_tenants::Error::Collected(_))
                        if k < filled && w.is_private() => {}
                    Err(e) => return Err(e.into()),
                    _ => {
                        return Err(SwapError::Mismatch {
                            segment: r.id,
                            what: "a root or member that is no stub of its segment",
                        });
                    }
                }
            }
            // Each named once, and every stub of the segment the tenant holds named: a fault
            // fills the stubs the record names and then drops the file, so a stub it does
            // not name would be left with nothing to bring it back.
            let mut words = try_list::<Word>(stubs_n)?;
            words.extend(r.roots.iter().chain(r.members.iter().flatten()));
            words.sort_unstable_by_key(|w| w.bits());
            if words.windows(2).any(|p| p[0] == p[1]) || standing != t.stubs_of(r.id.0) {
                return Err(SwapError::Mismatch {
                    segment: r.id,
                    what: "a record that does not name each stub of its segment once",
                });
            }
            // The kept bodies are what the fault fills the stubs left from: each a live
            // object that is no stub, kept for one stub only and named nowhere else in the
            // record (a fill refuses a stub or a body given twice, at every fault).
            if let Some(p) = &r.pending {
                words.clear();
                words.extend(r.roots.iter().chain(r.members.iter().flatten()));
                words.try_reserve_exact(p.len()).map_err(|_| {
                    cowheap_tenants::Error::OutOfMemory {
                        bytes: u64::try_from(p.len().saturating_mul(size_of::<Word>()))
                            .unwrap_or(u64::MAX),
                    }
                })?;
                words.extend(p);
                words.sort_unstable_by_key(|w| w.bits());
                let twice = words.windows(2).any(|p| p[0] == p[1]);
                let mut stub_kept = false;
                for &w in p {
                    stub_kept |= t.stub_segment(Value::owned(w, t.id()))?.is_some();
                }
                if twice || stub_kept {
                    return Err(SwapError::Mismatch {
                        segment: r.id,
                        what: "a record keeping a stub, or one body twice, to fill from",
                    });
                }
            }
            let outside = pin(t, &r.outside, pins)?;
            let pending = r.pending.as_deref().map(|p| pin(t, p, pins)).transpose()?;
            let roots = stubs(t, &r.roots)?;
            let members = r.members.as_deref().map(|ms| stubs(t, ms)).transpose()?;
            made.push((
                r.id,
                Out {
                    state: SegmentState::OnFile,
                    roots,
                    members,
                    outside,
                    digest: r.digest,
                    pending,
                },
            ));
        }
        Ok(())
    }

    /// Forgets the segments none of whose roots is a stub in the tenant any more (dropped by
    /// the tenant and collected): unpins what they kept alive, drops their files and the
    /// reasons kept for their failures.
    fn forget_dead(&self, t: &mut Tenant) {
        let mut inner = self.lock();
        let dead: Vec<SegmentId> = inner
            .out
            .iter()
            .filter(|(id, o)| {
                !o.stubs()
                    .any(|r| matches!(t.stub_segment(r), Ok(Some(s)) if s == id.0))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in dead {
            inner.errors.remove(&id);
            if let Some(o) = inner.out.remove(&id) {
                unpin_all(t, &o.outside);
                if let Some(p) = &o.pending {
                    unpin_all(t, p);
                }
                if !inner.keep_files {
                    let _ = inner.store.remove(id);
                }
            }
        }
    }
}

/// The swap's error for a segment error: a host object's is [`SwapError::HostObject`].
fn host_error(e: SegmentError) -> SwapError {
    match e {
        SegmentError::Host { member, source } => SwapError::HostObject { member, source },
        e => SwapError::Segment(e),
    }
}

/// The checksum field of a segment file's header, if it has a header.
fn file_checksum(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.get(56..file::HEADER)?.try_into().ok()
}

/// An empty list with room for `n` items, its memory reserved fallibly.
fn try_list<T>(n: usize) -> cowheap_tenants::Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| cowheap_tenants::Error::OutOfMemory {
            bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
        })?;
    Ok(v)
}

fn unpin_all(t: &mut Tenant, pins: &[Handle]) {
    for &h in pins {
        // A handle of this swapper's own making, unpinned once.
        let _ = t.unpin(h);
    }
}

/// Gives stubbed member `r` of `seg` (still `ActiveCopy`: the other members are live or
/// stubs) its body back from the segment's copy of it.
fn restore_body(t: &mut Tenant, seg: &TenantSegment, r: usize) -> Result<(), SwapError> {
    let o = &seg.objects[r];
    let value = |s: tenant::SRef| -> Result<Value, SwapError> {
        Ok(match s {
            tenant::SRef::Imm(w) => Value::shared(w),
            tenant::SRef::Obj(j) => *seg
                .members
                .get(j as usize)
                .ok_or(SegmentError::BadSegment("a reference to no member"))?,
            tenant::SRef::Out(k) => match seg.out.get(k as usize) {
                Some(tenant::OutRef::Base(x)) => {
                    // A reference to a diverted copy is recorded as its base object: the
                    // tenant leads it to the copy.
                    Value::base(*x)
                }
                Some(tenant::OutRef::Outside(k)) => *seg
                    .outside
                    .get(*k as usize)
                    .ok_or(SegmentError::BadSegment("a reference to no outside object"))?,
                _ => return Err(SegmentError::BadSegment("a portable out-pointer").into()),
            },
        })
    };
    let slots = o
        .slots
        .iter()
        .map(|&s| value(s))
        .collect::<Result<Vec<_>, _>>()?;
    let class = value(o.class)?;
    let body = t.alloc_with_hash(class, o.format, &slots, &o.bytes, o.hash)?;
    t.fill_stub(seg.members[r], body)?;
    Ok(())
}
