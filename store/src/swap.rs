//! Swapping whole tenants out to the store under a memory budget.

use crate::{Node, Resident, Result, TenantName};
use cowheap_tenants::Tenant;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Counts kept by a [`SwapRegistry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapStats {
    /// Tenants resumed from the store (first use or after a swap-out).
    pub swapped_in: u64,
    /// Tenants suspended to the store to keep under the budget.
    pub swapped_out: u64,
    /// Uses served by a tenant already resident.
    pub hits: u64,
}

#[derive(Debug, Default)]
struct Inner {
    resident: HashMap<TenantName, (Resident, u64, usize)>,
    /// Last use -> tenant, oldest first.
    lru: BTreeMap<u64, TenantName>,
    tick: u64,
    bytes: usize,
    stats: SwapStats,
}

/// A node's resident tenants under a budget of private bytes: using a tenant resumes it
/// from the store if it is not resident, and when the resident tenants' private bytes
/// ([`Tenant::memory_bytes`]) pass the budget, the least recently used others are
/// suspended to the store until they fit again. Every tenant stays reachable: the next use
/// resumes it transparently.
///
/// Uses are serialised by one lock (a tenant is used by one thread at a time anyway); the
/// store's claims keep other nodes out of the resident tenants.
///
/// Time of a use: O(1) for a resident tenant; a resume (O(its state)) for one that is not,
/// plus a suspend (O(private)) per tenant swapped out.
///
/// ```
/// use cowheap_heap::synth;
/// use cowheap_store::{Access, LocalStore, Node, NodeName, SwapRegistry, SystemClock, TenantName};
/// use cowheap_store::workload::{read_mark, write_mark};
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = Arc::new(LocalStore::init(dir.path(), Arc::new(SystemClock), Access::Operator).unwrap());
/// let image = dir.path().join("base.cowheap");
/// synth::image(1_000, 1).save(&image).unwrap();
/// let node = Node::new(store.clone(), NodeName::new("a").unwrap(), dir.path().join("cache"));
/// let fp = node.put_base_file(&image).unwrap();
/// let names: Vec<_> = (0..4).map(|i| TenantName::new(format!("t{i}")).unwrap()).collect();
/// for t in &names {
///     node.store().create_tenant(t, fp, None).unwrap();
/// }
/// // A budget for about one tenant: each use swaps the previous one out.
/// let reg = SwapRegistry::new(node, 1);
/// for (i, t) in names.iter().enumerate() {
///     reg.with(t, |t| write_mark(t, i as i64)).unwrap().unwrap();
/// }
/// assert_eq!(reg.resident(), 1);
/// assert_eq!(reg.with(&names[0], |t| read_mark(t)).unwrap(), Some(0));
/// assert!(reg.stats().swapped_out >= 3);
/// ```
#[derive(Debug)]
pub struct SwapRegistry {
    node: Node,
    budget: usize,
    inner: Mutex<Inner>,
}

impl SwapRegistry {
    /// A registry on `node` keeping at most `budget` private bytes resident (the tenant in
    /// use always stays, even alone over the budget).
    pub fn new(node: Node, budget: usize) -> SwapRegistry {
        SwapRegistry {
            node,
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Runs `f` on `tenant`, resuming it first if it is not resident, then swaps out least
    /// recently used tenants until the resident ones fit the budget.
    ///
    /// # Errors
    /// As [`Node::resume`] (another node holds it, its state is damaged): `f` did not run.
    /// As [`Node::suspend`] for a tenant being swapped out: `f` **did** run (do not run it
    /// again), and the tenant that could not be written stays resident, so nothing is lost;
    /// the budget may be passed until a later call swaps it out. A fenced tenant is dropped
    /// without an error: another node has newer work.
    pub fn with<R>(&self, tenant: &TenantName, f: impl FnOnce(&mut Tenant) -> R) -> Result<R> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let (mut r, old_tick, old_bytes) = match inner.resident.remove(tenant) {
            Some(entry) => {
                inner.stats.hits += 1;
                entry
            }
            None => {
                let r = self.node.resume(tenant)?;
                inner.stats.swapped_in += 1;
                (r, 0, 0)
            }
        };
        inner.lru.remove(&old_tick);
        inner.bytes -= old_bytes;
        let out = f(&mut r.tenant);
        let bytes = r.tenant.memory_bytes();
        inner.bytes += bytes;
        inner.lru.insert(tick, tenant.clone());
        inner.resident.insert(tenant.clone(), (r, tick, bytes));
        let mut first_err = None;
        while inner.bytes > self.budget {
            let Some((&oldest, _)) = inner.lru.iter().next() else {
                break;
            };
            if oldest == tick {
                break; // only the tenant in use is left
            }
            let Some(name) = inner.lru.remove(&oldest) else {
                break;
            };
            let Some((r, t, b)) = inner.resident.remove(&name) else {
                continue;
            };
            // The state names the segments the tenant has out, so they travel with it.
            let mut r = r;
            match r
                .state()
                .and_then(|state| self.node.store().suspend(r.claim(), &state))
            {
                Ok(_) | Err(crate::StoreError::Fenced { .. }) => {
                    inner.bytes -= b;
                    inner.stats.swapped_out += 1;
                }
                Err(e) => {
                    // Kept, unwritten work and all; the next call tries again.
                    inner.lru.insert(t, name.clone());
                    inner.resident.insert(name, (r, t, b));
                    first_err = Some(e);
                    break;
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Private bytes of the resident tenants, as last measured.
    pub fn resident_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    /// How many tenants are resident.
    pub fn resident(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resident
            .len()
    }

    /// The counts so far.
    pub fn stats(&self) -> SwapStats {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).stats
    }

    /// Renews the leases of every resident tenant; a host calls it well within the node's
    /// lease (every half lease, say). A tenant whose claim was taken over meanwhile is
    /// dropped from the registry: another node has it now.
    ///
    /// # Errors
    /// The first renewal that failed (a [`crate::StoreError::Fenced`] tenant is dropped;
    /// another error keeps it resident); the others are still tried.
    pub fn renew_all(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        let mut first_err = None;
        let mut fenced = Vec::new();
        for (name, (r, tick, _)) in inner.resident.iter_mut() {
            match self.node.renew(r) {
                Ok(()) => {}
                Err(e) => {
                    if matches!(e, crate::StoreError::Fenced { .. }) {
                        fenced.push((name.clone(), *tick));
                    }
                    first_err.get_or_insert(e);
                }
            }
        }
        for (name, tick) in fenced {
            inner.lru.remove(&tick);
            if let Some((_, _, b)) = inner.resident.remove(&name) {
                inner.bytes -= b;
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Suspends every resident tenant to the store.
    ///
    /// # Errors
    /// The first suspend that failed; the others are still tried.
    pub fn suspend_all(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.lru.clear();
        inner.bytes = 0;
        let mut first_err = None;
        for (_, (r, _, _)) in inner.resident.drain() {
            if let Err(e) = self.node.suspend(r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
