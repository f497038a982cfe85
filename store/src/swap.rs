//! Swapping parts of tenants, then whole tenants, out to the store under a memory budget.

use crate::{Node, Resident, Result, StoreError, TenantName};
use cowheap_heap::{Value, Word};
use cowheap_segment::swap::{SegmentId, Swapper};
use cowheap_tenants::Tenant;
use cowheap_tenants::stubs::FaultHandler;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Suspends that may fail in one fit before it gives up: it passes over a resident it
/// cannot suspend for the next oldest, but a store that is down fails them all.
const MAX_FAILED_SUSPENDS: usize = 4;

/// Counts kept by a [`SwapRegistry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapStats {
    /// Tenants resumed from the store (first use or after a swap-out).
    pub swapped_in: u64,
    /// Tenants suspended to the store to keep under the budget.
    pub swapped_out: u64,
    /// Uses served by a tenant already resident.
    pub hits: u64,
    /// Parts swapped out (as segments, to the store) to keep under the budget.
    pub parts_out: u64,
    /// Parts faulted back in by a touch of one of their stubs.
    pub parts_in: u64,
    /// Swap-outs of a part that were refused (its roots no longer private objects, a root
    /// in another part that is out, the store failing); the part stays resident.
    pub parts_refused: u64,
}

/// A part of a tenant declared to a [`SwapRegistry`] ([`SwapRegistry::declare_part`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartId(u64);

impl PartId {
    /// Its number (unique within its registry).
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A declared part: its roots as identity words (which keep their meaning across a
/// suspend and resume of the tenant, where values do not), whether it is out, and when it
/// was last brought in.
#[derive(Debug)]
struct Part {
    tenant: TenantName,
    roots: Vec<Word>,
    /// The segment holding it while it is swapped out.
    out: Option<SegmentId>,
    /// The tick of its declaration or of its last fault-in.
    tick: u64,
}

#[derive(Debug, Default)]
struct Inner {
    resident: HashMap<TenantName, (Resident, u64, usize)>,
    /// Last use -> tenant, oldest first.
    lru: BTreeMap<u64, TenantName>,
    tick: u64,
    bytes: usize,
    stats: SwapStats,
    parts: BTreeMap<PartId, Part>,
    next_part: u64,
}

/// Faults the tenants' handlers have served, as (tenant, segment): written by the handlers
/// while a tenant runs, read after.
type FaultLog = Arc<Mutex<Vec<(TenantName, u64)>>>;

/// A node's resident tenants under a budget of private bytes: using a tenant resumes it
/// from the store if it is not resident, and when the resident tenants' private bytes
/// ([`Tenant::memory_bytes`]) pass the budget, the least recently used others are
/// suspended to the store until they fit again. Every tenant stays reachable: the next use
/// resumes it transparently.
///
/// **Parts.** An embedder may declare parts of a tenant ([`SwapRegistry::declare_part`]:
/// a set of roots each; the part is what they reach that the tenant's other roots do not,
/// a segment). Over the budget, the registry first swaps out the least recently brought
/// in parts of the resident tenants, each as a segment to the store through the tenant's
/// [`Resident::swap_out`], and only then whole tenants. A part comes back transparently
/// on the tenant's next touch of one of its stubs: a write through a stub, or a read
/// inside [`Tenant::with_faults`]. Use is detected at the fault: the registry installs on
/// each tenant a fault handler that runs the tenant's swapper ([`Swapper::fault`]) and logs
/// the fault, and a part's recency is the tick it was declared or last faulted in. (A read
/// of a resident part costs nothing extra and is not seen, so a part in constant use may be
/// swapped out and fault straight back in: its recency is that of its last fault.) A part
/// brought in by the current use stays, as the tenant in use does. A part whose swap-out
/// is refused stays resident and is counted ([`SwapStats::parts_refused`]).
///
/// Uses are serialised by one lock (a tenant is used by one thread at a time anyway); the
/// store's claims keep other nodes out of the resident tenants.
///
/// Time of a use: O(1) for a resident tenant; a resume (O(its state)) for one that is not,
/// plus a suspend (O(private)) per tenant swapped out; O(parts) to pick each part to swap
/// out, and per part a swap-out (O(the tenant's private objects): the extraction walks
/// from the tenant's roots and collects) plus a store write.
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
    faults: FaultLog,
}

impl SwapRegistry {
    /// A registry on `node` keeping at most `budget` private bytes resident (the tenant in
    /// use always stays, even alone over the budget).
    pub fn new(node: Node, budget: usize) -> SwapRegistry {
        SwapRegistry {
            node,
            budget,
            inner: Mutex::new(Inner::default()),
            faults: FaultLog::default(),
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Runs `f` on `tenant`, resuming it first if it is not resident, then swaps out least
    /// recently used parts (but those `f` faulted in), then least recently used tenants
    /// (but this one), until the resident ones fit the budget.
    ///
    /// A resident tenant with less than half the node's lease left is renewed before `f`
    /// runs ([`Node::keep_lease`]): one whose lease ran out and that another node claimed
    /// since is dropped and resumed afresh (so refused with [`StoreError::Held`] while that
    /// node holds it), never run here at the same time. So is a tenant just resumed: a
    /// resume slow enough to outlast its lease is checked the same way before `f` runs. A use `f` that runs longer than
    /// half a lease can still outlive the lease: keep uses short (a use holds the
    /// registry's lock, so nothing renews meanwhile).
    ///
    /// # Errors
    /// As [`Node::resume`] (another node holds it, its state is damaged): `f` did not run.
    /// As [`Node::keep_lease`] for a resident whose lease needed renewing and whose
    /// renewal the store failed: `f` did not run, and the tenant stays resident.
    /// As [`Node::suspend`] for a tenant being swapped out when the resident ones still do
    /// not fit the budget: `f` **did** run (do not run it again), and the tenant that could
    /// not be written stays resident, so nothing is lost; the budget may be passed until a
    /// later call swaps it out. A tenant that cannot be suspended is passed over for the
    /// next oldest (up to four failures a call), and a call that fits the budget all the
    /// same answers `Ok`. A fenced tenant is dropped
    /// without an error: another node has newer work.
    pub fn with<R>(&self, tenant: &TenantName, f: impl FnOnce(&mut Tenant) -> R) -> Result<R> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.use_tenant(&mut g, tenant, |r| f(&mut r.tenant))
    }

    /// Declares a part of `tenant` (resumed first if it is not resident): the objects
    /// `roots` reach that the tenant's other roots do not, swapped out as one segment when
    /// the budget needs room ([`SwapRegistry`]'s doc). `roots` are values of the tenant as
    /// it is resident now (from a [`SwapRegistry::with`] just before, say); the registry
    /// keeps their identity words, which stay valid across swap-outs of the part and of
    /// the whole tenant. Parts of one tenant should not share roots (the second to go
    /// would be refused). The part counts as just used. Time: O(roots), plus what a use
    /// costs.
    ///
    /// # Errors
    /// As [`SwapRegistry::with`]; [`StoreError::Swap`] for no roots; [`StoreError::Tenant`]
    /// for a root that is not a value of this tenant, and then nothing is declared.
    pub fn declare_part(&self, tenant: &TenantName, roots: &[Value]) -> Result<PartId> {
        if roots.is_empty() {
            return Err(StoreError::Swap {
                tenant: tenant.clone(),
                source: Box::new(cowheap_segment::swap::SwapError::NoRoots),
            });
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let tick = g.tick + 1;
        let (words, out) = self.use_tenant(&mut g, tenant, |r| {
            let words = roots
                .iter()
                .map(|&v| r.tenant.identity_word(v))
                .collect::<cowheap_tenants::Result<Vec<Word>>>()?;
            // A root that is a stub already: the part is out (in that segment).
            let out = r.tenant.stub_segment(roots[0])?.map(SegmentId::new);
            Ok::<_, cowheap_tenants::Error>((words, out))
        })??;
        let id = PartId(g.next_part);
        g.next_part += 1;
        g.parts.insert(
            id,
            Part {
                tenant: tenant.clone(),
                roots: words,
                out,
                tick,
            },
        );
        Ok(id)
    }

    /// Whether part `id` is swapped out now (`None` for a part this registry never
    /// declared).
    pub fn part_out(&self, id: PartId) -> Option<bool> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.parts.get(&id).map(|p| p.out.is_some())
    }

    /// Swaps out parts, then whole tenants, least recently used first, until the resident
    /// private bytes fit the budget; nothing is kept for being in use. Time: as the
    /// swap-outs it makes.
    ///
    /// # Errors
    /// As [`SwapRegistry::with`]'s swap-outs.
    pub fn trim(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.fit(&mut g, None)
    }

    /// Resumes `tenant` if need be, runs `f` on it, takes note of the faults its handler
    /// served, and fits the budget keeping the tenant and what `f` brought in.
    fn use_tenant<R>(
        &self,
        inner: &mut Inner,
        tenant: &TenantName,
        f: impl FnOnce(&mut Resident) -> R,
    ) -> Result<R> {
        inner.tick += 1;
        let tick = inner.tick;
        // A resident runs only with at least half its lease left ([`Node::keep_lease`]):
        // renewed first when less is left, so that a tenant whose lease ran out (another
        // node may have claimed it) is never run here; and a resident whose suspend failed
        // unsettled (it may have been released by it) is renewed before anything runs on
        // it. Fenced, the store has its state (or another node the tenant), and it is
        // resumed afresh.
        if let Some((r, t, b)) = inner.resident.get_mut(tenant) {
            match self.node.keep_lease(r) {
                Ok(_) => {}
                Err(StoreError::Fenced { .. }) => {
                    let (t, b) = (*t, *b);
                    inner.resident.remove(tenant);
                    inner.lru.remove(&t);
                    inner.bytes -= b;
                }
                Err(e) => return Err(e),
            }
        }
        let (mut r, old_tick, old_bytes) = match inner.resident.remove(tenant) {
            Some(entry) => {
                inner.stats.hits += 1;
                entry
            }
            None => {
                let mut r = self.resume_leased(tenant)?;
                inner.stats.swapped_in += 1;
                // Where each part of it is now: the state resumed may be another node's.
                for p in inner.parts.values_mut().filter(|p| &p.tenant == tenant) {
                    let root = Value::owned(p.roots[0], r.tenant.id());
                    p.out = r
                        .tenant
                        .stub_segment(root)
                        .ok()
                        .flatten()
                        .map(SegmentId::new);
                }
                self.install_handler(&mut r);
                (r, 0, 0)
            }
        };
        inner.lru.remove(&old_tick);
        inner.bytes -= old_bytes;
        let out = f(&mut r);
        self.note_faults(inner, tick);
        let bytes = r.tenant.memory_bytes();
        inner.bytes += bytes;
        inner.lru.insert(tick, tenant.clone());
        inner.resident.insert(tenant.clone(), (r, tick, bytes));
        self.fit(inner, Some(tick))?;
        Ok(out)
    }

    /// Resumes `tenant` ([`Node::resume`]) with at least half the node's lease left before
    /// anything runs on it ([`Node::keep_lease`]). A resume is a claim followed by fetches
    /// and a restore, which may outlast the lease the claim took while another node claims
    /// the tenant: such a resident is dropped (its claim is fenced) and the tenant claimed
    /// once more, which is refused with [`StoreError::Held`] while that node holds it. A
    /// renewal the store fails releases the claim (best effort) and answers its error.
    /// Time: as [`Node::resume`]; no store call more when the resume was quick.
    fn resume_leased(&self, tenant: &TenantName) -> Result<Resident> {
        let mut fenced = false;
        loop {
            let mut r = self.node.resume(tenant)?;
            match self.node.keep_lease(&mut r) {
                Ok(_) => return Ok(r),
                // Another node holds it now: claimed again, so that its hold is what the
                // use is told (unless this resume also outlasts its lease).
                Err(StoreError::Fenced { .. }) if !fenced => fenced = true,
                Err(e) => {
                    if !matches!(e, StoreError::Fenced { .. }) {
                        let _ = self.node.store().release(r.claim());
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Installs on `r`'s tenant the handler that faults its segments in through its swapper
    /// and logs each fault for [`SwapRegistry::note_faults`].
    fn install_handler(&self, r: &mut Resident) {
        let swapper: Swapper = r.swapper().clone();
        let log = self.faults.clone();
        let name = r.name().clone();
        r.tenant
            .set_fault_handler(Some(FaultHandler::new(move |t, id| {
                swapper.fault(t, SegmentId::new(id))?;
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((name.clone(), id));
                Ok(())
            })));
    }

    /// The parts the logged faults brought in are resident again, used at `tick`.
    fn note_faults(&self, inner: &mut Inner, tick: u64) {
        let faults = std::mem::take(&mut *self.faults.lock().unwrap_or_else(|p| p.into_inner()));
        for (name, seg) in faults {
            let seg = SegmentId::new(seg);
            if let Some(p) = inner
                .parts
                .values_mut()
                .find(|p| p.tenant == name && p.out == Some(seg))
            {
                p.out = None;
                p.tick = tick;
                inner.stats.parts_in += 1;
            }
        }
    }

    /// Swaps out parts, then whole tenants, least recently used first, until the resident
    /// bytes fit the budget. With `keep`, the parts brought in and the tenant used at that
    /// tick stay.
    ///
    /// # Errors
    /// As [`SwapRegistry::with`].
    fn fit(&self, inner: &mut Inner, keep: Option<u64>) -> Result<()> {
        let mut refused = HashSet::new();
        while inner.bytes > self.budget {
            let next = inner
                .parts
                .iter()
                .filter(|(id, p)| {
                    p.out.is_none()
                        && Some(p.tick) != keep
                        && !refused.contains(*id)
                        && inner.resident.contains_key(&p.tenant)
                })
                .min_by_key(|(_, p)| p.tick)
                .map(|(&id, _)| id);
            let Some(id) = next else {
                break;
            };
            if !self.swap_part(inner, id) {
                refused.insert(id);
            }
        }
        // Residents whose suspend failed: kept, and passed over for the next oldest, so that
        // one tenant that cannot be suspended does not hold every other over the budget;
        // after a few failures (a store that is down fails them all) the fit stops.
        let mut failed = Vec::new();
        let mut first_err = None;
        while inner.bytes > self.budget && failed.len() < MAX_FAILED_SUSPENDS {
            let Some((&oldest, _)) = inner.lru.iter().next() else {
                break;
            };
            if Some(oldest) == keep {
                break; // only the tenant in use is left
            }
            let Some(name) = inner.lru.remove(&oldest) else {
                break;
            };
            let Some((r, t, b)) = inner.resident.remove(&name) else {
                continue;
            };
            // A suspend that answered an error but landed counts as done
            // (`Node::try_suspend` asks the record).
            match self.node.try_suspend(r) {
                Err(f) if !matches!(f.error, StoreError::Fenced { .. }) => {
                    // Kept, unwritten work and all; the next call tries again (and renews
                    // first if the store could not say whether the suspend landed).
                    inner.resident.insert(name.clone(), (*f.resident, t, b));
                    failed.push((t, name));
                    first_err.get_or_insert(f.error);
                }
                // Written, or fenced (another node has it): gone from here either way.
                _ => {
                    inner.bytes -= b;
                    inner.stats.swapped_out += 1;
                }
            }
        }
        for (t, name) in failed {
            inner.lru.insert(t, name);
        }
        // An error only if the budget is still not met: a use that fits answers Ok though
        // another resident could not be suspended (it is tried again at the next fit).
        match first_err {
            Some(e) if inner.bytes > self.budget => Err(e),
            _ => Ok(()),
        }
    }

    /// Swaps part `id` out of its resident tenant; `false` if that was refused (the part
    /// stays resident, the tenant as it was).
    fn swap_part(&self, inner: &mut Inner, id: PartId) -> bool {
        let Some(part) = inner.parts.get_mut(&id) else {
            return false;
        };
        let Some((r, _, bytes)) = inner.resident.get_mut(&part.tenant) else {
            return false;
        };
        let roots: Vec<Value> = part
            .roots
            .iter()
            .map(|&w| Value::owned(w, r.tenant.id()))
            .collect();
        match r.swap_out(&roots) {
            Ok(out) => {
                // The swap-out installed the swapper's own handler: put the counting one
                // back.
                self.install_handler(r);
                part.out = Some(out.id);
                let now = r.tenant.memory_bytes();
                inner.bytes = inner.bytes - *bytes + now;
                *bytes = now;
                inner.stats.parts_out += 1;
                true
            }
            Err(_) => {
                inner.stats.parts_refused += 1;
                false
            }
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

    /// Suspends every resident tenant to the store, host objects saved by the node's plugins
    /// ([`Node::suspend`]).
    ///
    /// # Errors
    /// The first suspend that failed; the others are still tried. A tenant whose suspend
    /// failed stays resident, claimed and as it was (a host object without its plugin,
    /// say), unless it was fenced (another node has it).
    pub fn suspend_all(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.lru.clear();
        inner.bytes = 0;
        let mut first_err = None;
        let mut kept = Vec::new();
        for (name, (r, tick, _)) in inner.resident.drain() {
            match self.node.try_suspend(r) {
                Ok(_) => {}
                Err(f) => {
                    // Another node has a fenced tenant; any other failure keeps it
                    // resident, claimed and unwritten, as it was.
                    if !matches!(f.error, StoreError::Fenced { .. }) {
                        kept.push((name, *f.resident, tick));
                    }
                    first_err.get_or_insert(f.error);
                }
            }
        }
        for (name, r, tick) in kept {
            let b = r.tenant.memory_bytes();
            inner.bytes += b;
            inner.lru.insert(tick, name.clone());
            inner.resident.insert(name, (r, tick, b));
        }
        first_err.map_or(Ok(()), Err)
    }
}
