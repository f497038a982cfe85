//! Commit: a tenant's changes become a new version of its base, all or nothing.
//!
//! A [`Repository`] publishes the current version of a base and serialises the commits made
//! into it, as a GemStone repository does its sessions': each tenant sees the version it was
//! forked (or last moved) to, consistent and unchanging, and a commit merges the objects it
//! changed into a new version, or fails whole.
//!
//! - **What a commit writes.** The base objects the tenant changed (its copies, with their
//!   contents now) and the objects it made that those reach (or that the roots it names
//!   reach), which become objects of the new version, with their identity hashes, at indices
//!   from the version's length up. The new version is a layer over the current one
//!   ([`cowheap_forwarders::version`]): O(changed and new objects), never O(base).
//! - **Conflicts.** Write-write, GemStone's default: a commit fails when an object it changed
//!   was changed by a version committed after the tenant's own, and the error lists those
//!   objects. [`CommitMode::ReadWrite`] also fails on objects the tenant *read* that a later
//!   version changed, which makes commits serializable; it needs the tenant to record its
//!   reads ([`Tenant::record_reads`]), which takes every read of a base object off the fast
//!   path for that tenant only.
//! - **After a commit** the tenant stands on the new version with nothing of its own changed:
//!   each committed object of its own becomes a forwarder to the object it now is in the
//!   base, so every reference the tenant holds keeps working (and is patched when read).
//! - **Abort** drops the tenant's changes and moves it to the current version; **rebase**
//!   keeps them and moves it when they do not conflict.
//! - **Rights.** A repository names who may commit ([`CommitRights`]); anyone may still fork
//!   and write private copies.
//! - **Flattening.** [`Repository::flatten`] folds the current version's layers into a heap
//!   of its own, off the commit path; tenants on older versions keep theirs, and a version
//!   no tenant holds any more is freed with its last `Arc`.
//!
//! ```
//! use cowheap_forwarders::Base;
//! use cowheap_heap::{synth, Value};
//! use cowheap_tenants::commit::{CommitError, CommitRights, Repository};
//!
//! let base = Base::new(synth::image(1_000, 1));
//! let g = base.heap().root("Smalltalk").unwrap();
//! let repo = Repository::new(base, CommitRights::Anyone);
//! let (mut a, mut b) = (repo.fork(), repo.fork());
//! a.set_slot(g, 0, Value::int(1)).unwrap();
//! b.set_slot(g, 0, Value::int(2)).unwrap();
//! let v1 = repo.commit(&mut a, "alice").unwrap();
//! assert_eq!(v1.version(), 1);
//! assert_eq!(repo.fork().slot(g, 0).unwrap().as_int(), Some(1));
//! // b changed the same object after its version was taken: refused, whole.
//! let Err(CommitError::Conflict { objects, .. }) = repo.commit(&mut b, "bob") else { panic!() };
//! assert_eq!(objects.len(), 1);
//! repo.abort(&mut b);
//! assert_eq!(b.slot(g, 0).unwrap().as_int(), Some(1));
//! ```

pub use crate::layer::Layer;
use crate::space::{FORWARDER_COST, State, cost};
use crate::stats::sub;
use crate::tenant::Loc;
use crate::{Error, Tenant, TenantConfig};
use arc_swap::ArcSwap;
use cowheap_forwarders::{Base, BaseId, Committed, IndirectionTable};
use cowheap_heap::{Decoded, Error as HeapError, ObjectIndex, PrivateKey, Word};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Who may commit into a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitRights {
    /// Every principal.
    Anyone,
    /// Only the principals named.
    Only(BTreeSet<String>),
}

impl CommitRights {
    /// Only `names` may commit.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> CommitRights {
        CommitRights::Only(names.into_iter().map(Into::into).collect())
    }

    fn allows(&self, who: &str) -> bool {
        match self {
            CommitRights::Anyone => true,
            CommitRights::Only(names) => names.contains(who),
        }
    }
}

/// Which conflicts fail a commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitMode {
    /// An object the tenant changed was changed by a later version (GemStone's default).
    #[default]
    WriteWrite,
    /// That, or an object the tenant read (recorded by [`Tenant::record_reads`]) was changed
    /// by a later version: serializable commits.
    ReadWrite,
}

/// Why a commit, rebase or flatten did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Versions committed after the tenant's changed objects it changed (or, in
    /// [`CommitMode::ReadWrite`], read).
    #[error("{} object(s) changed by versions after {version}: {objects:?}", objects.len())]
    Conflict {
        /// The tenant's version.
        version: u64,
        /// The objects in conflict, in index order.
        objects: Vec<ObjectIndex>,
    },
    /// The principal may not commit into this repository.
    #[error("{who:?} may not commit into this repository")]
    NotPermitted {
        /// Who asked.
        who: String,
    },
    /// The commit changes objects of a protected part of the base
    /// ([`Repository::protect`]) that the principal may not commit to.
    #[error("{who:?} may not commit to {objects:?}")]
    Protected {
        /// Who asked.
        who: String,
        /// The protected objects it changed, in index order.
        objects: Vec<ObjectIndex>,
    },
    /// The tenant's base is not a version this repository published.
    #[error("the tenant's base (version {version}) is not one this repository published")]
    ForeignBase {
        /// The version number of the tenant's base.
        version: u64,
    },
    /// [`CommitMode::ReadWrite`] on a tenant that does not record its reads.
    #[error("a read-write commit needs a tenant that records its reads")]
    ReadsNotRecorded,
    /// A base object the tenant forwarded with `become_forward`, which a version cannot
    /// hold (references to it all over the base would have to change).
    #[error("cannot commit base object {index}: it was forwarded by become_forward")]
    Forwarded {
        /// The base object's index.
        index: u64,
    },
    /// A host object's proxy among the objects the commit would write (changed, or reached
    /// from a changed one): a base object cannot hold a host object.
    #[error("cannot commit a host object's proxy: a base object cannot hold one")]
    HostObject,
    /// A layer of another history, or made over another version of the same number
    /// ([`Repository::apply`]).
    #[error("the layer belongs to another history or another version")]
    ForeignLayer,
    /// A layer over a version other than the current one ([`Repository::apply`]).
    #[error("the layer applies over version {parent}, the current version is {current}")]
    OutOfOrder {
        /// The version the layer applies over.
        parent: u64,
        /// The current version.
        current: u64,
    },
    /// Persisting the new version failed ([`Repository::commit_through`]): nothing was
    /// published.
    #[error("the new version could not be persisted: {0}")]
    Persist(Box<dyn std::error::Error + Send + Sync>),
    /// The version named is not what a commit of the tenant's changes writes
    /// ([`Repository::settle_landed`]): the tenant was left as it was.
    #[error("version {version} does not hold exactly this tenant's changes")]
    NotLanded {
        /// The version named.
        version: u64,
    },
    /// The current version changed while it was being flattened; nothing was published.
    #[error("version {0} was superseded while it was flattened")]
    Superseded(u64),
    /// The flattened version's image file could not be written or read back.
    #[error(transparent)]
    File(#[from] cowheap_heap::FileError),
    /// An error of the tenant or of the object model.
    #[error(transparent)]
    Tenant(#[from] Error),
}

impl From<HeapError> for CommitError {
    fn from(e: HeapError) -> CommitError {
        match e {
            // The allocator's refusal is the tenant's kind, whichever layer met it.
            HeapError::OutOfMemory { bytes } => CommitError::Tenant(Error::OutOfMemory { bytes }),
            e => CommitError::Tenant(e.into()),
        }
    }
}

/// [`Error::OutOfMemory`] for `n` items of `T`.
fn refused<T>(n: usize) -> CommitError {
    CommitError::Tenant(Error::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
    })
}

/// An empty vector with room for `n` items, reserved fallibly: a commit's large memory is
/// reserved so that the allocator's refusal is an error that changes nothing.
fn room<T>(n: usize) -> Result<Vec<T>, CommitError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| refused::<T>(n))?;
    Ok(v)
}

/// Appends `items` to `out`, growing it fallibly: the lists a refused commit answers with
/// (its conflicts, the protected objects it changed) can be long.
fn extend_fallibly<T>(
    out: &mut Vec<T>,
    items: impl IntoIterator<Item = T>,
) -> Result<(), CommitError> {
    for x in items {
        if out.len() == out.capacity() {
            out.try_reserve(1)
                .map_err(|_| refused::<T>(out.len().saturating_add(1)))?;
        }
        out.push(x);
    }
    Ok(())
}

/// A copy of `c` whose slots and bytes are reserved fallibly ([`Repository::apply`] takes
/// its layer by reference, so it copies the bodies it keeps).
fn copy_body(c: &Committed) -> Result<Committed, CommitError> {
    let mut slots = room(c.slots.len())?;
    slots.extend_from_slice(&c.slots);
    let mut bytes = room(c.bytes.len())?;
    bytes.extend_from_slice(&c.bytes);
    Ok(Committed {
        class: c.class,
        format: c.format,
        hash: c.hash,
        aux: c.aux,
        slots: slots.into_boxed_slice(),
        bytes: bytes.into_boxed_slice(),
    })
}

/// Numbers a committing tenant's objects in the new version: copies as the base objects they
/// stand for, new objects from the version's length up, in the order they are met.
struct Numbering<'a> {
    tenant: &'a Tenant,
    copies: FxHashMap<u32, ObjectIndex>,
    /// New objects met so far: entry key -> index in the new version.
    fresh: FxHashMap<u32, u32>,
    /// New objects numbered whose bodies are still to gather.
    queue: VecDeque<PrivateKey>,
    next: usize,
}

impl Numbering<'_> {
    /// The word `w` (a word of the tenant) is in the new version.
    fn word(&mut self, w: Word) -> Result<Word, CommitError> {
        if !w.is_ref() {
            return Ok(w);
        }
        let k = match self.tenant.locate_word(w)? {
            Loc::Base(x) => return Ok(Word::base(x)),
            Loc::Private(k) => k,
        };
        // A host object's proxy first, even one that is the copy of a base object (whose
        // slot the commit would otherwise answer with the base object).
        if self.tenant.is_host(k) {
            return Err(CommitError::HostObject);
        }
        if let Some(&x) = self.copies.get(&k.key()) {
            return Ok(Word::base(x));
        }
        let y = match self.fresh.get(&k.key()) {
            Some(&y) => y,
            None => {
                let y = u32::try_from(self.next)
                    .map_err(|_| HeapError::TooLarge("more objects than references can name"))?;
                self.fresh
                    .try_reserve(1)
                    .map_err(|_| refused::<(u32, u32)>(self.fresh.len() + 1))?;
                self.queue
                    .try_reserve(1)
                    .map_err(|_| refused::<PrivateKey>(self.queue.len() + 1))?;
                self.next += 1;
                self.fresh.insert(k.key(), y);
                self.queue.push_back(k);
                y
            }
        };
        Ok(Word::base(ObjectIndex::from_u32(y)))
    }

    /// The body of the tenant's object `k` in the new version's terms.
    fn body(&mut self, k: PrivateKey) -> Result<Committed, CommitError> {
        let body = self.tenant.body(k)?;
        let class = self.word(body.class())?;
        let mut slots = room(body.slots().len())?;
        for c in body.slots() {
            slots.push(self.word(c.get())?);
        }
        let mut bytes = room(body.bytes().len())?;
        bytes.extend_from_slice(body.bytes());
        Ok(Committed {
            class,
            format: body.format(),
            hash: body.hash(),
            // The body's own bits: a copy's base object's, a new object's none, moved with
            // the bodies by a two-way become.
            aux: body.aux(),
            slots: slots.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        })
    }
}

/// The versions of a base, the current one published, commits serialised.
///
/// `Repository` is `Send + Sync`: share it between threads (each thread with its own
/// tenants). Reading the current version takes no lock; a commit, rebase, apply, publish or
/// the end of a flatten takes the repository's commit lock for its own duration only; an
/// abort takes it only to read which history the tenant is of and the version to move it
/// to, not while it frees the tenant's objects.
#[derive(Debug)]
pub struct Repository {
    current: ArcSwap<Base>,
    log: Mutex<Log>,
    rights: CommitRights,
    config: TenantConfig,
}

#[derive(Debug)]
struct Log {
    /// Version numbers of the bases this repository published, by id.
    known: FxHashMap<BaseId, u64>,
    /// The objects each version (by number) changed over the one before: what conflicts are
    /// checked against. Only objects that existed before it; added objects cannot conflict.
    changes: BTreeMap<u64, Arc<FxHashSet<u32>>>,
    /// Parts of the base with rights of their own ([`Repository::protect`]), by object.
    protected: FxHashMap<u32, Arc<CommitRights>>,
}

/// Persists a version before it is published: the version, and the objects of its parent it
/// changed.
type Persist<'a> = dyn FnMut(&Layer) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'a;

/// What a commit gathered from a tenant, before anything changes.
struct Gathered {
    objects: Vec<(u32, Committed)>,
    len: usize,
    /// The tenant's own entries that the new version now holds, with their new words.
    moved: Vec<(PrivateKey, Word)>,
    changed: FxHashSet<u32>,
}

impl Repository {
    /// A repository whose current version is `base`; tenants it forks use the default
    /// configuration.
    pub fn new(base: Arc<Base>, rights: CommitRights) -> Repository {
        Repository::with_config(base, rights, TenantConfig::default())
    }

    /// A repository whose tenants ([`Repository::fork`], [`Repository::abort`]) are set up
    /// with `config`.
    pub fn with_config(base: Arc<Base>, rights: CommitRights, config: TenantConfig) -> Repository {
        let mut known = FxHashMap::default();
        known.insert(base.id(), base.version());
        Repository {
            current: ArcSwap::new(base),
            log: Mutex::new(Log {
                known,
                changes: BTreeMap::new(),
                protected: FxHashMap::default(),
            }),
            rights,
            config,
        }
    }

    /// The current version. Time: O(1), lock-free.
    pub fn current(&self) -> Arc<Base> {
        self.current.load_full()
    }

    /// Makes `base` current and returns the previous version. Unless `base` is the current
    /// version already, it starts a new history: the versions before it (and the parts
    /// [`Repository::protect`] protected) are forgotten, and their tenants can no longer
    /// commit or rebase here ([`CommitError::ForeignBase`]).
    /// Time: O(versions known).
    pub fn publish(&self, base: Arc<Base>) -> Arc<Base> {
        let mut log = self.lock();
        if self.current.load().id() != base.id() {
            log.known.clear();
            log.changes.clear();
            log.protected.clear();
            log.known.insert(base.id(), base.version());
        }
        self.current.swap(base)
    }

    /// Gives a part of the base rights of its own, as Hannan's well-known segments are
    /// writable by their owner alone: a commit that changes any of `objects` (say, the
    /// members of a segment) is refused ([`CommitError::Protected`]) unless `rights` allows
    /// its principal, on top of the repository's own rights. A later call for an object
    /// replaces its rights. Time: O(objects).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::commit::{CommitError, CommitRights, Repository};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let repo = Repository::new(base.clone(), CommitRights::Anyone);
    /// repo.protect([base.heap().index_of(g).unwrap()], CommitRights::only(["owner"]));
    /// let mut t = repo.fork();
    /// t.set_slot(g, 0, Value::int(1)).unwrap();
    /// assert!(matches!(repo.commit(&mut t, "guest"), Err(CommitError::Protected { .. })));
    /// assert!(repo.commit(&mut t, "owner").is_ok());
    /// ```
    pub fn protect(&self, objects: impl IntoIterator<Item = ObjectIndex>, rights: CommitRights) {
        let rights = Arc::new(rights);
        let mut log = self.lock();
        for x in objects {
            log.protected.insert(x.as_u32(), rights.clone());
        }
    }

    /// Who may commit.
    pub fn rights(&self) -> &CommitRights {
        &self.rights
    }

    /// A new tenant of the current version. Time: O(1).
    pub fn fork(&self) -> Tenant {
        Tenant::fork_with(&self.current.load(), self.config)
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while the lock was held left the log as it was before that operation's
        // publication (the log and the publication change together, after every check).
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The version number of `base`, if this repository published it.
    fn version_of(log: &Log, base: &Base) -> Result<u64, CommitError> {
        log.known
            .get(&base.id())
            .copied()
            .ok_or(CommitError::ForeignBase {
                version: base.version(),
            })
    }

    /// Appends to `out` the objects among `objects` that versions after `version` changed.
    fn conflicts(
        log: &Log,
        version: u64,
        objects: &FxHashSet<u32>,
        out: &mut Vec<ObjectIndex>,
    ) -> Result<(), CommitError> {
        let found = log
            .changes
            .range(version + 1..)
            .flat_map(|(_, changed)| {
                let (small, large) = if changed.len() < objects.len() {
                    (&**changed, objects)
                } else {
                    (objects, &**changed)
                };
                small.iter().filter(|x| large.contains(x)).copied()
            })
            .map(ObjectIndex::from_u32);
        extend_fallibly(out, found)
    }

    /// [`CommitError::Conflict`] listing the objects of `changed` (and of `read`, if given)
    /// that versions after `version` changed, in index order; its list is grown fallibly, so
    /// an allocator's refusal answers [`Error::OutOfMemory`] instead.
    fn check_conflicts(
        log: &Log,
        version: u64,
        changed: &FxHashSet<u32>,
        read: Option<&FxHashSet<u32>>,
    ) -> Result<(), CommitError> {
        let mut conflicts = Vec::new();
        Repository::conflicts(log, version, changed, &mut conflicts)?;
        if let Some(read) = read {
            Repository::conflicts(log, version, read, &mut conflicts)?;
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        conflicts.sort_unstable();
        conflicts.dedup();
        Err(CommitError::Conflict {
            version,
            objects: conflicts,
        })
    }

    /// Commits `tenant`'s changes as a new version and makes it current; the tenant moves to
    /// it. Time: O(changed and new objects), plus O(changed) per version committed since the
    /// tenant's.
    ///
    /// # Errors
    /// [`CommitError::NotPermitted`], [`CommitError::Conflict`],
    /// [`CommitError::ForeignBase`], [`CommitError::Forwarded`],
    /// [`CommitError::HostObject`], or an error of the tenant
    /// (a collected object reached from a changed one; [`Error::Swapped`] for a changed
    /// object, or one it reaches, that is out with a segment). On any error nothing changes: not
    /// the repository, not the tenant, not any other tenant's view.
    pub fn commit(&self, tenant: &mut Tenant, who: &str) -> Result<Arc<Base>, CommitError> {
        self.commit_with(tenant, who, CommitMode::WriteWrite, &[])
    }

    /// [`Repository::commit`] with a conflict mode, and `roots`: objects of the tenant to
    /// commit with everything of its own they reach, even if no changed object reaches them.
    /// Their new identities are the tenant's references to them, which keep working.
    ///
    /// # Errors
    /// As [`Repository::commit`], and [`CommitError::ReadsNotRecorded`] for
    /// [`CommitMode::ReadWrite`] on a tenant that does not record its reads.
    pub fn commit_with(
        &self,
        tenant: &mut Tenant,
        who: &str,
        mode: CommitMode,
        roots: &[cowheap_heap::Value],
    ) -> Result<Arc<Base>, CommitError> {
        self.commit_inner(tenant, who, mode, roots, &mut |_| Ok(()))
    }

    /// [`Repository::commit_with`], the new version persisted by `persist` before it is
    /// published: `persist` gets the version's [`Layer`] (write it to a store in one
    /// transaction, refusing it if another process committed over the same version first),
    /// and if it fails, the commit fails whole with [`CommitError::Persist`], and nothing
    /// is published or changed.
    ///
    /// After `persist` succeeded, only the allocator can still refuse the commit: the
    /// version's own memory (its check's set, its layer's map) is reserved when it is made,
    /// and a refusal there is [`Error::OutOfMemory`] with nothing published or changed in
    /// this process, while the layer is persisted. The caller that persisted it decides
    /// what that means (the store's node reports it as landed and applies it at its next
    /// sync).
    ///
    /// `persist` runs under the repository's commit lock, so that no other commit lands
    /// between its write and the publication: it must not call back into the same
    /// repository (`commit`, `abort`, `rebase`, `apply`, `publish`, `flatten`, `protect`,
    /// `settle_landed`, ...), which would wait for that lock forever.
    ///
    /// # Errors
    /// As [`Repository::commit_with`], and [`CommitError::Persist`].
    pub fn commit_through<E>(
        &self,
        tenant: &mut Tenant,
        who: &str,
        mode: CommitMode,
        roots: &[cowheap_heap::Value],
        persist: impl FnOnce(&Layer) -> Result<(), E>,
    ) -> Result<Arc<Base>, CommitError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut persist = Some(persist);
        self.commit_inner(
            tenant,
            who,
            mode,
            roots,
            &mut |layer| match persist.take() {
                Some(p) => p(layer).map_err(|e| Box::new(e) as _),
                None => Ok(()),
            },
        )
    }

    /// Makes the version `layer` describes, committed by another process over the current
    /// version, the current one here. Time: O(layer).
    ///
    /// # Errors
    /// [`CommitError::ForeignLayer`] for a layer of another history or made over another
    /// version of the current one's number,
    /// [`CommitError::OutOfOrder`] unless it applies over the current version, and the
    /// object model's errors for a layer whose changed list does not match its bodies,
    /// whose words name no object of the new version, or that holds no body at all (a
    /// commit that changes nothing makes no version); [`Error::OutOfMemory`] if the
    /// allocator refuses the version's memory (every large allocation is reserved
    /// fallibly). Nothing changes on any error.
    pub fn apply(&self, layer: &Layer) -> Result<Arc<Base>, CommitError> {
        let mut log = self.lock();
        let current = self.current.load_full();
        if layer.origin != current.origin() {
            return Err(CommitError::ForeignLayer);
        }
        if layer.parent != current.version() {
            return Err(CommitError::OutOfOrder {
                parent: layer.parent,
                current: current.version(),
            });
        }
        if layer.parent_fingerprint != current.fingerprint() {
            return Err(CommitError::ForeignLayer);
        }
        if layer.objects.is_empty() {
            // A commit that changes nothing makes no version, so no layer holds no body.
            return Err(HeapError::Corrupt("a layer that changes and adds no object").into());
        }
        current.check_layer(&layer.objects, layer.len)?;
        // Every large allocation is reserved fallibly, as a commit's are: the allocator's
        // refusal is `OutOfMemory`, with nothing published.
        let mut old: Vec<u32> = room(layer.objects.len())?;
        old.extend(
            layer
                .objects
                .iter()
                .map(|&(x, _)| x)
                .filter(|&x| (x as usize) < current.len()),
        );
        // `check_layer` found no object twice.
        old.sort_unstable();
        if old != layer.changed
            || old.len() + (layer.len.saturating_sub(current.len())) != layer.objects.len()
        {
            return Err(
                HeapError::Corrupt("a layer whose changed objects are not its bodies").into(),
            );
        }
        let mut changed = FxHashSet::default();
        changed
            .try_reserve(old.len())
            .map_err(|_| refused::<u32>(old.len()))?;
        changed.extend(old);
        let mut objects = room(layer.objects.len())?;
        for (x, c) in &layer.objects {
            objects.push((*x, copy_body(c)?));
        }
        log.known
            .try_reserve(1)
            .map_err(|_| refused::<(BaseId, u64)>(log.known.len() + 1))?;
        // Only `next_version`'s own reservations can fail below, before it sets a bit.
        let next = current.next_version(objects, layer.len)?;
        log.known.insert(next.id(), next.version());
        log.changes.insert(next.version(), Arc::new(changed));
        self.current.store(next.clone());
        Ok(next)
    }

    fn commit_inner(
        &self,
        tenant: &mut Tenant,
        who: &str,
        mode: CommitMode,
        roots: &[cowheap_heap::Value],
        persist: &mut Persist<'_>,
    ) -> Result<Arc<Base>, CommitError> {
        if !self.rights.allows(who) {
            return Err(CommitError::NotPermitted { who: who.into() });
        }
        let mut log = self.lock();
        let version = Repository::version_of(&log, tenant.base())?;
        let current = self.current.load_full();
        if matches!(mode, CommitMode::ReadWrite) && tenant.recording().is_none() {
            return Err(CommitError::ReadsNotRecorded);
        }
        // Gathering follows references; it must not count them as the tenant's reads.
        let recording = tenant.cold.as_mut().and_then(|c| c.recording.take());
        let gathered = tenant.gather(current.len(), roots);
        if let Some(c) = tenant.cold.as_mut() {
            c.recording = recording;
        }
        let gathered = gathered?;
        if !log.protected.is_empty() {
            let mut refused = Vec::new();
            extend_fallibly(
                &mut refused,
                gathered
                    .changed
                    .iter()
                    .copied()
                    .filter(|x| log.protected.get(x).is_some_and(|r| !r.allows(who)))
                    .map(ObjectIndex::from_u32),
            )?;
            if !refused.is_empty() {
                refused.sort_unstable();
                return Err(CommitError::Protected {
                    who: who.into(),
                    objects: refused,
                });
            }
        }
        {
            // The tenant's read set itself, borrowed for the check (no copy).
            let read = match mode {
                CommitMode::WriteWrite => None,
                CommitMode::ReadWrite => tenant.recording(),
            };
            Repository::check_conflicts(&log, version, &gathered.changed, read.as_deref())?;
        }
        // The forwarders that outlast the commit, and room to remember them.
        let lasting = tenant.lasting_forwarders(&gathered.moved)?;
        tenant.reserve_committed(gathered.moved.len().saturating_add(lasting.len()))?;
        if gathered.objects.is_empty() {
            // Nothing to commit: the tenant moves to the current version, as a rebase would.
            tenant.keep_forwarders(&lasting);
            tenant.rebind(&current);
            tenant.restart_recording();
            return Ok(current);
        }
        let mut changed: Vec<u32> = room(gathered.changed.len())?;
        changed.extend(gathered.changed.iter().copied());
        changed.sort_unstable();
        let layer = Layer {
            origin: current.origin(),
            parent: current.version(),
            parent_fingerprint: current.fingerprint(),
            len: gathered.len,
            changed,
            objects: gathered.objects,
        };
        current.check_layer(&layer.objects, layer.len)?;
        // What settling the tenant needs, reserved before the version is made.
        let forwarders = room(gathered.moved.len())?;
        log.known
            .try_reserve(1)
            .map_err(|_| refused::<(BaseId, u64)>(log.known.len() + 1))?;
        persist(&layer).map_err(CommitError::Persist)?;
        // Only `next_version`'s own reservations (its check's set, the layer's map) can fail
        // below, before it sets a bit: an `OutOfMemory` that changes nothing here (see
        // `commit_through`). The version is made (its committed bits set), logged,
        // published, and the tenant moved.
        let next = current.next_version(layer.objects, layer.len)?;
        log.known.insert(next.id(), next.version());
        log.changes
            .insert(next.version(), Arc::new(gathered.changed));
        self.current.store(next.clone());
        tenant.settle_commit(&next, &gathered.moved, forwarders);
        tenant.keep_forwarders(&lasting);
        tenant.restart_recording();
        Ok(next)
    }

    /// Drops `tenant`'s changes, objects, roots, handles and read record and moves it to the
    /// current version, keeping its id, quota, mark policy and counters. References and
    /// handles to its objects are refused afterwards ([`Error::Collected`],
    /// [`Error::StaleHandle`]), never read as another object; references to objects it
    /// committed keep leading to them. Time: O(private keys ever used).
    ///
    /// A tenant on a base of another history (another repository's, or one it never
    /// published) loses its committed objects too: they forward to objects of that history,
    /// which in this one are other objects, so references to them are refused as well.
    ///
    /// Whether the tenant's history is this one and the version it moves to are read
    /// together, under the commit lock (held for those two reads only): a
    /// [`Repository::publish`] of another history meanwhile cannot leave it on that history
    /// with forwarders to objects of its own.
    pub fn abort(&self, tenant: &mut Tenant) {
        let (ours, current) = {
            let log = self.lock();
            let ours = Repository::version_of(&log, tenant.base()).is_ok();
            (ours, self.current.load_full())
        };
        if !ours && let Some(c) = tenant.cold.as_mut() {
            c.committed.clear();
        }
        tenant.discard();
        tenant.rebind(&current);
    }

    /// Settles `tenant` on `version` as its own commit (with `roots`) would have, when that
    /// commit's version was persisted and is known here, though the commit itself answered
    /// an error: the store took the layer and its answer was lost, or the allocator refused
    /// the version's tables after the write ([`Repository::commit_through`]), and the
    /// version was then made here by [`Repository::apply`]. The tenant's changes are in
    /// `version`, so, as after an answered commit, each object of its own that the version
    /// holds becomes a forwarder to what it now is in the base, and everything else of the
    /// tenant (its roots, handles, the private objects the commit did not take) stays. An
    /// abort in its place would drop all of that. Time: that of the commit's gathering,
    /// plus O(the version's layer).
    ///
    /// # Errors
    /// [`CommitError::NotLanded`] if `version`'s own layer is not exactly what a commit of
    /// the tenant's changes and `roots` over its parent writes (the tenant changed since,
    /// or the version is someone else's), or if `version` has no parent in this lineage or
    /// is older than the tenant's own; [`CommitError::ForeignBase`] if the tenant's base or
    /// `version` is not one this repository published; the gathering's errors, as for
    /// [`Repository::commit`]. Nothing changes on any error: abort the tenant then.
    pub fn settle_landed(
        &self,
        tenant: &mut Tenant,
        roots: &[cowheap_heap::Value],
        version: &Arc<Base>,
    ) -> Result<Arc<Base>, CommitError> {
        let log = self.lock();
        Repository::version_of(&log, tenant.base())?;
        Repository::version_of(&log, version)?;
        let not_landed = || CommitError::NotLanded {
            version: version.version(),
        };
        let parent = version.parent().ok_or_else(not_landed)?;
        if tenant.base().version() > parent.version() {
            return Err(not_landed());
        }
        // Gathering follows references; it must not count them as the tenant's reads.
        let recording = tenant.cold.as_mut().and_then(|c| c.recording.take());
        let gathered = tenant.gather(parent.len(), roots);
        if let Some(c) = tenant.cold.as_mut() {
            c.recording = recording;
        }
        let gathered = gathered?;
        let mut own = FxHashSet::default();
        let n = version.changed_here().count();
        own.try_reserve(n).map_err(|_| refused::<u32>(n))?;
        own.extend(version.changed_here().map(ObjectIndex::as_u32));
        let same = gathered.len == version.len()
            && gathered.objects.len() == own.len()
            && gathered
                .objects
                .iter()
                .all(|(x, c)| own.contains(x) && version.committed(*x) == Some(c));
        if !same {
            return Err(not_landed());
        }
        let lasting = tenant.lasting_forwarders(&gathered.moved)?;
        tenant.reserve_committed(gathered.moved.len().saturating_add(lasting.len()))?;
        let forwarders = room(gathered.moved.len())?;
        // Nothing below fails.
        tenant.settle_commit(version, &gathered.moved, forwarders);
        tenant.keep_forwarders(&lasting);
        tenant.restart_recording();
        Ok(version.clone())
    }

    /// Moves `tenant`, changes and all, to the current version if no version since its own
    /// changed an object it changed (or, for a tenant that records its reads, one it read).
    /// Time: O(changed and read objects) per version since the tenant's.
    ///
    /// # Errors
    /// [`CommitError::Conflict`] (the tenant is left as it was),
    /// [`CommitError::ForeignBase`], or [`Error::OutOfMemory`] if the allocator refuses the
    /// check's memory (the tenant is left as it was).
    pub fn rebase(&self, tenant: &mut Tenant) -> Result<Arc<Base>, CommitError> {
        let log = self.lock();
        let version = Repository::version_of(&log, tenant.base())?;
        let current = self.current.load_full();
        // Reserved fallibly, as a commit's memory is: the allocator's refusal is
        // `OutOfMemory`, and the tenant stays where it was.
        let n = tenant.table.len();
        let mut changed = FxHashSet::default();
        changed.try_reserve(n).map_err(|_| refused::<u32>(n))?;
        changed.extend(tenant.table.iter().map(|(x, _)| x.as_u32()));
        {
            // A tenant that records its reads keeps them through the move: they must not
            // have changed either, or a later read-write commit would miss the conflict.
            // Its read set is checked where it is (no copy).
            let read = tenant.recording();
            Repository::check_conflicts(&log, version, &changed, read.as_deref())?;
        }
        // Onto a flattened lineage the table is marked again, into a new table reserved
        // here: the move itself then allocates nothing.
        let fresh = tenant.table_for(&current)?;
        tenant.rebind_into(&current, fresh);
        Ok(current)
    }

    /// Folds the current version's layers into a heap of its own ([`Base::flatten`]) and
    /// publishes it in the version's place, with the same number: tenants forked afterwards
    /// read every object on the fast path. Tenants on older versions keep theirs; a commit,
    /// rebase or abort moves them onto the flattened lineage. The work, O(objects), runs
    /// without the commit lock: call it from a background thread.
    ///
    /// # Errors
    /// [`CommitError::Superseded`] if a commit published a newer version meanwhile (nothing
    /// is published; flatten again), or what the heap's builder refuses.
    pub fn flatten(&self) -> Result<Arc<Base>, CommitError> {
        self.flatten_with(None)
    }

    /// [`Repository::flatten`] into an image file at `path` (written atomically, then mapped
    /// and verified): the flattened version is served from the file, as a base opened from
    /// one is. The version keeps its fingerprint here, but the file holds only the objects:
    /// opened again (after a restart, by another process) it is a base of its own, version
    /// 0, named by its content, and the version's tenant snapshots and layers are refused
    /// on it ([`cowheap_heap::FileError::ForeignBase`], [`CommitError::ForeignLayer`]),
    /// but for version 0 itself, whose fingerprint is its content's: its snapshots restore
    /// on the file.
    ///
    /// The file is written for a version with no layers too (one never committed over, or
    /// flattened already): its heap is copied into the file, and the version is served from
    /// it with the same number and fingerprint. Time: O(objects).
    ///
    /// # Errors
    /// As [`Repository::flatten`], and [`CommitError::File`] if the file cannot be written or
    /// read back; nothing is published then. The file at `path` is replaced only when the
    /// flattened version is published: on any error (`Superseded` included) it is as it was.
    pub fn flatten_to(&self, path: &std::path::Path) -> Result<Arc<Base>, CommitError> {
        self.flatten_with(Some(path))
    }

    /// [`Repository::flatten`] (into the file at `path`, if given) on a thread of its own.
    pub fn flatten_in_background(
        self: &Arc<Self>,
        path: Option<std::path::PathBuf>,
    ) -> std::thread::JoinHandle<Result<Arc<Base>, CommitError>> {
        let repo = self.clone();
        std::thread::spawn(move || repo.flatten_with(path.as_deref()))
    }

    fn flatten_with(&self, path: Option<&std::path::Path>) -> Result<Arc<Base>, CommitError> {
        let current = self.current.load_full();
        // A version with no layers is flat already; but a file asked for is written (and
        // the version served from it) whatever the depth, or the answer would name a file
        // that is not there.
        if current.depth() == 0 && path.is_none() {
            return Ok(current);
        }
        let mut heap = current.flatten()?;
        // The file is written and read back beside `path`, and put in its place only when
        // the version is published: a superseded flatten leaves `path` as it was.
        let mut staged = None;
        if let Some(path) = path {
            let s = heap.save_staged(path)?;
            heap = cowheap_heap::BaseHeap::open(s.path())?;
            staged = Some(s);
        }
        let flat = Base::flattened(heap, &current);
        let mut log = self.lock();
        if self.current.load().id() != current.id() {
            return Err(CommitError::Superseded(current.version()));
        }
        if let Some(s) = staged {
            // A rename and a directory's fsync, under the lock: nothing published on error.
            s.commit()?;
        }
        log.known.insert(flat.id(), flat.version());
        self.current.store(flat.clone());
        Ok(flat)
    }
}

/// What a query ([`Repository::query`]) came to.
#[derive(Debug)]
pub enum Query<R> {
    /// The run changed no object of the base: its answer.
    Answered(R),
    /// The run tried to change an object of the base and was stopped there: the caller
    /// brings the objects the run read (`read`, in index order) to a tenant of its own and
    /// runs it there instead.
    WouldWrite {
        /// The first object it tried to change.
        object: ObjectIndex,
        /// The base objects it read up to then.
        read: Vec<ObjectIndex>,
    },
}

impl Repository {
    /// Runs `run` on the database's behalf against `version` (the current one if `None`):
    /// in a scratch tenant to which the base is read-only and which records what it reads,
    /// dropped afterwards, so nothing of the run survives it. The run may allocate and write
    /// objects of its own (an interpreter's contexts, say); a write to an object of the base
    /// is refused ([`Error::BaseReadOnly`]) and the query answers
    /// [`Query::WouldWrite`] with the objects to bring to the caller, whatever `run` made of
    /// the refusal. (A [`crate::TenantWriter`]'s `false` is no write: the write `run` then
    /// makes through the tenant is the one refused and recorded.)
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::commit::{CommitRights, Query, Repository};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let repo = Repository::new(base, CommitRights::Anyone);
    /// let size = repo.query(None, |t| t.size(g).unwrap().slots);
    /// assert!(matches!(size, Query::Answered(n) if n > 0));
    /// let write = repo.query(None, |t| t.set_slot(g, 0, Value::int(1)).is_ok());
    /// assert!(matches!(write, Query::WouldWrite { .. }));
    /// ```
    pub fn query<R>(
        &self,
        version: Option<&Arc<Base>>,
        run: impl FnOnce(&mut Tenant) -> R,
    ) -> Query<R> {
        let base = version.cloned().unwrap_or_else(|| self.current());
        let mut scratch = Tenant::fork_with(&base, self.config);
        scratch.set_base_read_only(true);
        scratch.start_recording();
        let answer = run(&mut scratch);
        match scratch.refused_write() {
            None => Query::Answered(answer),
            Some(object) => {
                let mut read: Vec<u32> = scratch
                    .reads_recorded()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                read.sort_unstable();
                Query::WouldWrite {
                    object,
                    read: read.into_iter().map(ObjectIndex::from_u32).collect(),
                }
            }
        }
    }
}

impl Tenant {
    /// Everything a commit of this tenant into a version of `len` objects writes, gathered
    /// without changing anything. Time: O(changed and new objects and their slots).
    fn gather(&self, len: usize, roots: &[cowheap_heap::Value]) -> Result<Gathered, CommitError> {
        // This tenant's copies, by entry key: the base object each stands for.
        let mut copies: FxHashMap<u32, ObjectIndex> = FxHashMap::default();
        copies
            .try_reserve(self.table.len())
            .map_err(|_| refused::<(u32, ObjectIndex)>(self.table.len()))?;
        let mut sorted = room(self.table.len())?;
        for (x, entry) in self.table.iter() {
            let k = self
                .space
                .key_of(entry)
                .ok_or(Error::Collected(Word::base(x)))?;
            // A forwarder cannot be committed; a copy swapped out with a segment answers
            // the tenant's own error (`Error::Swapped`: fault it in and commit again).
            if let Some(State::Forwarded(_)) = self.space.get(k) {
                return Err(CommitError::Forwarded {
                    index: u64::from(x.as_u32()),
                });
            }
            self.body(k)?;
            // A copy that is a host object's proxy would become a base object, its host
            // object left on a forwarder.
            if self.is_host(k) {
                return Err(CommitError::HostObject);
            }
            copies.insert(k.key(), x);
            sorted.push((x, k));
        }
        sorted.sort_unstable_by_key(|&(x, _)| x);
        let mut g = Numbering {
            tenant: self,
            copies,
            fresh: FxHashMap::default(),
            queue: VecDeque::new(),
            next: len,
        };
        let mut objects = room(sorted.len())?;
        let mut moved = room(sorted.len())?;
        let mut changed = FxHashSet::default();
        changed
            .try_reserve(sorted.len())
            .map_err(|_| refused::<u32>(sorted.len()))?;
        for (x, k) in sorted {
            let c = g.body(k)?;
            objects.push((x.as_u32(), c));
            moved.push((k, Word::base(x)));
            changed.insert(x.as_u32());
        }
        for &r in roots {
            let w = self.own(r)?;
            g.word(w)?;
        }
        while let Some(k) = g.queue.pop_front() {
            let c = g.body(k)?;
            let y = g.fresh[&k.key()];
            objects
                .try_reserve(1)
                .map_err(|_| refused::<(u32, Committed)>(objects.len() + 1))?;
            moved
                .try_reserve(1)
                .map_err(|_| refused::<(PrivateKey, Word)>(moved.len() + 1))?;
            objects.push((y, c));
            moved.push((k, Word::base(ObjectIndex::from_u32(y))));
        }
        Ok(Gathered {
            objects,
            len: g.next,
            moved,
            changed,
        })
    }

    /// After a commit: the tenant stands on `next` with nothing changed of its own; each of
    /// its entries in `moved` becomes a forwarder to what it now is in the base.
    /// `forwarders` is empty with room for `moved`, and the committed list has room for
    /// them too ([`Tenant::reserve_committed`]): nothing here allocates.
    fn settle_commit(
        &mut self,
        next: &Arc<Base>,
        moved: &[(PrivateKey, Word)],
        mut forwarders: Vec<PrivateKey>,
    ) {
        let mut freed = 0u64;
        for &(k, target) in moved {
            if let Some(w) = self.space.writable(k) {
                let size = w.forward(target);
                freed = freed.saturating_add(cost(size) - FORWARDER_COST);
                forwarders.push(k);
            }
        }
        if !moved.is_empty() {
            let stats = self.stats_mut();
            sub(&mut stats.private_bytes, freed);
            // Remembered so that an abort keeps them: references from before the commit
            // lead to the committed objects, which an abort does not undo.
            self.cold_mut().committed.extend(forwarders);
        }
        // Every copy was committed: the table is empty now.
        self.table = IndirectionTable::new();
        self.rebind(next);
    }

    /// The tenant's other forwarders whose chains end at a base object once the entries in
    /// `moved` forward to theirs (as [`Tenant::settle_commit`] makes them), each with that
    /// end: a reference from before the commit to one of them leads to an object of the
    /// version, and keeps leading to it after an abort. Forwarders commits left before are
    /// not listed again; a chain that ends at a private object the commit did not take is
    /// not listed. Time: O(1) when every forwarder is one commits left (the common case: no
    /// `become_forward` since the last commit); otherwise O(keys in use), each forwarder's
    /// chain walked once (the ends found are remembered for the chains that join them), and
    /// a walk bounded by the space's entries (chains never cycle; the bound turns a broken
    /// invariant into a chain not listed).
    fn lasting_forwarders(
        &self,
        moved: &[(PrivateKey, Word)],
    ) -> Result<Vec<(PrivateKey, Word)>, CommitError> {
        let committed = self.cold.as_ref().map_or(&[][..], |c| &c.committed[..]);
        // The committed list holds live forwarders only (a collection prunes the keys it
        // frees): as many of them as forwarders means every forwarder is listed already.
        let forwarders = self.space.forwarder_count();
        if forwarders <= committed.len() {
            return Ok(Vec::new());
        }
        let mut to: FxHashMap<PrivateKey, Word> = FxHashMap::default();
        to.try_reserve(moved.len())
            .map_err(|_| refused::<(PrivateKey, Word)>(moved.len()))?;
        to.extend(moved.iter().copied());
        let mut already: FxHashSet<PrivateKey> = FxHashSet::default();
        already
            .try_reserve(committed.len())
            .map_err(|_| refused::<PrivateKey>(committed.len()))?;
        already.extend(committed.iter().copied());
        // Each forwarder walked, with where its chain ends (`None`: not at a base object).
        let mut ends: FxHashMap<PrivateKey, Option<Word>> = FxHashMap::default();
        ends.try_reserve(forwarders)
            .map_err(|_| refused::<(PrivateKey, Option<Word>)>(forwarders))?;
        let mut path: Vec<PrivateKey> = room(forwarders)?;
        for (k, state) in self.space.iter() {
            let State::Forwarded(mut w) = state else {
                continue;
            };
            if already.contains(&k) || ends.contains_key(&k) {
                continue;
            }
            path.clear();
            path.push(k);
            let mut end = None;
            for _ in 0..=self.space.len() {
                match w.decode() {
                    Decoded::Base(_) => {
                        end = Some(w);
                        break;
                    }
                    Decoded::Private(j) => {
                        if let Some(&t) = to.get(&j) {
                            end = Some(t);
                            break;
                        }
                        if let Some(&e) = ends.get(&j) {
                            end = e;
                            break;
                        }
                        match self.space.get(j) {
                            // A forwarder not walked before: at most `forwarders` in all.
                            Some(State::Forwarded(t)) if path.len() < forwarders => {
                                path.push(j);
                                w = t;
                            }
                            _ => break,
                        }
                    }
                    _ => break,
                }
            }
            // Within the room reserved: every key of a path is a forwarder walked once.
            for &p in &path {
                ends.insert(p, end);
            }
        }
        let mut lasting = room(ends.len())?;
        lasting.extend(
            ends.into_iter()
                .filter(|(k, _)| !already.contains(k))
                .filter_map(|(k, end)| Some((k, end?))),
        );
        Ok(lasting)
    }

    /// Points each forwarder of `lasting` ([`Tenant::lasting_forwarders`]) straight at its
    /// chain's end and remembers it with those commits left, in room reserved
    /// ([`Tenant::reserve_committed`]): nothing here allocates.
    fn keep_forwarders(&mut self, lasting: &[(PrivateKey, Word)]) {
        if lasting.is_empty() {
            return;
        }
        for &(k, end) in lasting {
            self.space.retarget(k, end);
        }
        self.cold_mut()
            .committed
            .extend(lasting.iter().map(|&(k, _)| k));
    }

    /// Room for `n` more forwarders in the list commits leave ([`Tenant::settle_commit`]),
    /// reserved fallibly.
    fn reserve_committed(&mut self, n: usize) -> Result<(), CommitError> {
        self.cold_mut()
            .committed
            .try_reserve(n)
            .map_err(|_| refused::<PrivateKey>(n))
    }

    /// Frees every private object, root and handle, empties the table and stops recording
    /// reads: the tenant sees its base as a fresh fork would. Keys' generations move on. The
    /// forwarders commits left stay (a reference from before a commit leads to the object
    /// committed, which an abort does not undo): each copy a commit took, and each forwarder
    /// alive at a commit whose chain ended at a base object (a `become_forward` onto an
    /// object then committed, or onto a base object), all pointed straight at base objects.
    /// Takes no large memory. Time: O(keys ever used, times the log of the forwarders kept).
    fn discard(&mut self) {
        // An abort cannot fail, so this takes no large memory: the kept keys are the
        // committed list itself, sorted in place and searched, and the keys are walked by
        // index and freed as they are met (the slab's free list is intrusive).
        let mut kept = self
            .cold
            .as_mut()
            .map(|c| std::mem::take(&mut c.committed))
            .unwrap_or_default();
        kept.sort_unstable_by_key(|k| (k.key(), k.generation()));
        for i in (0..self.space.key_bound()).filter_map(|i| u32::try_from(i).ok()) {
            let Some(k) = self.space.key_of(i) else {
                continue;
            };
            let keep = kept
                .binary_search_by_key(&(k.key(), k.generation()), |c| (c.key(), c.generation()))
                .is_ok();
            if !keep {
                self.space.remove(k);
            }
        }
        if let Some(c) = self.cold.as_mut() {
            c.committed = kept;
        }
        let left = self.space.len() as u64;
        self.table = IndirectionTable::new();
        // The table is empty: marking its entries again takes no room.
        self.stop_recording_into(IndirectionTable::new());
        if let Some(cold) = self.cold.as_mut() {
            cold.roots.clear();
            cold.handles.clear();
            cold.hosts.clear();
            cold.views.clear();
            cold.stub_aux.clear();
            cold.stats.private_objects = left;
            cold.stats.private_bytes = left * FORWARDER_COST;
        }
        if let Some(f) = self.filter.as_mut() {
            *f = cowheap_forwarders::MarkFilter::new();
        }
    }

    /// Moves the tenant to `base`, a version of the same lineage or a flattened one, its
    /// table kept: on a base with other marks, each diverted object is marked there.
    pub(crate) fn rebind(&mut self, base: &Arc<Base>) {
        self.rebind_into(base, IndirectionTable::new());
    }

    /// An empty table with room for this tenant's entries if moving it to `base` marks
    /// them again (a base with other marks: a flattened lineage), else an empty one that
    /// allocated nothing: what [`Tenant::rebind_into`] takes, so that a move that must not
    /// fail part-way reserves its table first.
    ///
    /// # Errors
    /// The tenant's [`Error::OutOfMemory`] if the allocator refuses the table; nothing
    /// changes.
    pub(crate) fn table_for(&self, base: &Base) -> Result<IndirectionTable, CommitError> {
        let mut fresh = IndirectionTable::new();
        if !std::ptr::eq(self.base.heap(), base.heap()) {
            let n = self.table.len();
            fresh.try_reserve(n).map_err(|_| refused::<u64>(n))?;
        }
        Ok(fresh)
    }

    /// [`Tenant::rebind`], the entries marked again (on a base with other marks) into
    /// `fresh`, an empty table: one with room for them ([`Tenant::table_for`]) makes the
    /// move allocate nothing.
    pub(crate) fn rebind_into(&mut self, base: &Arc<Base>, fresh: IndirectionTable) {
        let same_marks = std::ptr::eq(self.base.heap(), base.heap());
        self.base = base.clone();
        if !same_marks {
            self.marks = base.marks().clone();
            self.reader = base.heap().reader();
            self.remark_into(fresh);
        }
    }
}
