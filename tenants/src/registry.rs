//! Many tenants in one process: a shared registry, the published base, parallel runs.

use crate::commit::{CommitError, CommitRights, Repository};
use crate::{Tenant, TenantConfig};
use cowheap_forwarders::Base;
use cowheap_heap::TenantId;
use dashmap::DashMap;
use rayon::prelude::*;
use std::sync::{Arc, Mutex, MutexGuard};

/// The live tenants of a host process, shareable between threads, and the base new tenants
/// fork from.
///
/// - The current base is published with `arc-swap`: [`Registry::publish`] swaps in a new
///   version, new tenants fork from it, and existing tenants keep the `Arc<Base>` they were
///   forked from. Reading the current base takes no lock.
/// - Tenants live in a `dashmap`, each behind its own mutex. The registry's locks are taken
///   to check a tenant out ([`Registry::with`]), never on a tenant's read or write path: a
///   closure works on `&mut Tenant` with no further locking.
///
/// ```
/// use cowheap_forwarders::Base;
/// use cowheap_heap::{synth, Value};
/// use cowheap_tenants::Registry;
///
/// let base = Base::new(synth::image(1_000, 1));
/// let registry = Registry::new(base.clone());
/// let ids: Vec<_> = (0..4).map(|_| registry.spawn()).collect();
/// let st = base.heap().root("Smalltalk").unwrap();
/// registry.par_for_each(|t| t.set_slot(st, 0, Value::int(t.id().get() as i64)).unwrap());
/// for id in ids {
///     let n = registry.with(id, |t| t.slot(st, 0).unwrap().as_int()).unwrap();
///     assert_eq!(n, Some(id.get() as i64));
/// }
/// ```
#[derive(Debug)]
pub struct Registry {
    /// The published base and its versions: commits move it on.
    repo: Repository,
    tenants: DashMap<TenantId, Arc<Mutex<Tenant>>>,
}

impl Registry {
    /// An empty registry whose tenants fork from `base` with the default configuration. No
    /// one may commit into its base ([`Registry::with_rights`] names who may).
    pub fn new(base: Arc<Base>) -> Registry {
        Registry::with_config(base, TenantConfig::default())
    }

    /// An empty registry whose tenants fork from `base` with `config`; no one may commit.
    pub fn with_config(base: Arc<Base>, config: TenantConfig) -> Registry {
        Registry::with_rights(base, config, CommitRights::Only(Default::default()))
    }

    /// An empty registry whose tenants fork from `base` with `config`, and into whose base
    /// the principals `rights` names may commit ([`Registry::commit`]).
    pub fn with_rights(base: Arc<Base>, config: TenantConfig, rights: CommitRights) -> Registry {
        Registry {
            repo: Repository::with_config(base, rights, config),
            tenants: DashMap::new(),
        }
    }

    /// The base's versions: commits, rebases, aborts and flattening.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The base new tenants fork from: the newest version. Time: O(1), lock-free.
    pub fn current(&self) -> Arc<Base> {
        self.repo.current()
    }

    /// Makes `base` the one new tenants fork from and returns the previous one. Tenants
    /// already forked keep theirs. Unless `base` is the current version already, it starts a
    /// new history: tenants of earlier bases can no longer commit or rebase into this
    /// registry ([`CommitError::ForeignBase`]). Time: O(versions known).
    pub fn publish(&self, base: Arc<Base>) -> Arc<Base> {
        self.repo.publish(base)
    }

    /// Forks a tenant from the current base, registers it and returns its id. Time: O(1).
    pub fn spawn(&self) -> TenantId {
        self.insert(self.repo.fork())
    }

    /// Commits tenant `id`'s changes into a new version of the base, which new tenants then
    /// fork from ([`Repository::commit`]); `None` if there is no such tenant.
    pub fn commit(&self, id: TenantId, who: &str) -> Option<Result<Arc<Base>, CommitError>> {
        self.with(id, |t| self.repo.commit(t, who))
    }

    /// Registers a tenant made elsewhere and returns its id.
    pub fn insert(&self, tenant: Tenant) -> TenantId {
        let id = tenant.id();
        self.tenants.insert(id, Arc::new(Mutex::new(tenant)));
        id
    }

    /// Unregisters tenant `id` and hands it back, if it is registered and no other thread
    /// holds it. Time: O(1).
    ///
    /// The decision is taken under the map's lock for `id`: a tenant another thread holds (or
    /// is about to lock, having looked it up) stays registered throughout, so [`Registry::with`]
    /// and [`Registry::ids`] never miss it because a remove failed.
    pub fn remove(&self, id: TenantId) -> Option<Tenant> {
        // Every clone of a tenant's Arc is made under the map's lock (`with`, `par_for_each`),
        // so while `remove_if` holds that lock a count of one means no other thread holds the
        // tenant, or can start to.
        let (_, cell) = self
            .tenants
            .remove_if(&id, |_, cell| Arc::strong_count(cell) == 1)?;
        match Arc::try_unwrap(cell) {
            Ok(m) => Some(m.into_inner().unwrap_or_else(|p| p.into_inner())),
            // Unreachable by the argument above; the tenant is put back rather than lost.
            Err(cell) => {
                self.tenants.insert(id, cell);
                None
            }
        }
    }

    /// Runs `f` on tenant `id`, or returns `None` if there is no such tenant. Waits if another
    /// thread holds the tenant. Time: O(1) plus `f`.
    ///
    /// A tenant's lock is not reentrant: `f` must not reach tenant `id` through the
    /// registry again (`with` or [`Registry::commit`] of `id`, or [`Registry::par_for_each`],
    /// which visits it), which would wait for itself forever; and [`Registry::remove`] of
    /// `id` inside `f` answers `None`, as for any tenant a thread holds. Other tenants may be
    /// reached from `f`, but two threads that each hold one tenant and wait for the other's
    /// deadlock, as with any two locks taken in opposite orders.
    pub fn with<R>(&self, id: TenantId, f: impl FnOnce(&mut Tenant) -> R) -> Option<R> {
        let cell = self.tenants.get(&id)?.value().clone();
        let mut guard = lock(&cell);
        Some(f(&mut guard))
    }

    /// Runs `f` on every registered tenant, in parallel on rayon's pool. Tenants registered
    /// or removed meanwhile may or may not be visited.
    ///
    /// A tenant is held only while `f` runs on it: the ids are listed first, and each
    /// tenant is checked out by its id when its turn comes ([`Registry::with`]), so another
    /// thread may [`Registry::remove`] a tenant this run has visited already or not yet
    /// (then it is not visited). As in [`Registry::with`], `f` must not reach, through the
    /// registry, the tenant it is given.
    pub fn par_for_each(&self, f: impl Fn(&mut Tenant) + Sync + Send) {
        let ids = self.ids();
        ids.par_iter().for_each(|&id| {
            self.with(id, &f);
        });
    }

    /// Number of registered tenants.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// True if no tenant is registered.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The ids of registered tenants, in no particular order.
    pub fn ids(&self) -> Vec<TenantId> {
        self.tenants.iter().map(|e| *e.key()).collect()
    }
}

/// Locks a tenant. A tenant whose previous holder panicked is still consistent (every
/// operation leaves it whole or unchanged), so a poisoned lock is taken over.
fn lock(cell: &Mutex<Tenant>) -> MutexGuard<'_, Tenant> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on every tenant of `tenants` in parallel (rayon), each on one thread at a time.
pub fn par_each(tenants: &mut [Tenant], f: impl Fn(&mut Tenant) + Sync + Send) {
    tenants.par_iter_mut().for_each(f);
}
