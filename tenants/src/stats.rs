//! Per-tenant counters.

use std::cell::Cell;

/// The counters the read path bumps through `&self`.
#[derive(Debug, Default)]
pub(crate) struct ReadCounters {
    pub(crate) lookups: ReadCounter,
    pub(crate) patches: ReadCounter,
}

/// A counter the read path bumps with one plain increment: the count since it was last set,
/// over the value it was set to. It saturates where it is read ([`ReadCounter::get`]), as
/// the other counters do where they are bumped, so one restored near its maximum stops
/// there; the increment itself wraps only after 2^64 reads (centuries), where a saturating
/// one cost the read path two more instructions and a register.
#[derive(Debug, Default)]
pub(crate) struct ReadCounter {
    since: Cell<u64>,
    from: u64,
}

impl ReadCounter {
    /// Adds one.
    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.since.set(self.since.get().wrapping_add(1));
    }

    /// The count, saturating.
    pub(crate) fn get(&self) -> u64 {
        self.from.saturating_add(self.since.get())
    }

    /// The increments since the counter was last set, wrapping as they do: the difference
    /// of two of these is how many bumps came between them, exactly, where the difference
    /// of two [`ReadCounter::get`]s stops short once the count saturates (a counter
    /// restored near its maximum).
    pub(crate) fn bumps(&self) -> u64 {
        self.since.get()
    }

    /// Sets the count to `n`.
    pub(crate) fn set(&mut self, n: u64) {
        self.from = n;
        self.since.set(0);
    }
}

/// Adds `n` to a counter or gauge, saturating.
#[inline]
pub(crate) fn add(c: &mut u64, n: u64) {
    *c = c.saturating_add(n);
}

/// Takes `n` from a gauge, stopping at zero.
#[inline]
pub(crate) fn sub(c: &mut u64, n: u64) {
    *c = c.saturating_sub(n);
}

/// What a tenant holds and has done. Counters only grow, except the two gauges
/// (`private_objects`, `private_bytes`), which collection lowers, and `allocations`, which
/// an undone operation takes back ([`crate::Tenant::free_unreachable_with`]). Every counter
/// saturates at `u64::MAX` (a restored tenant may start anywhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantStats {
    /// Private entries alive: copies, new objects and become forwarders.
    pub private_objects: u64,
    /// Bytes those entries are charged (see `Tenant::quota`): header, slots and bytes.
    pub private_bytes: u64,
    /// Base objects copied into the tenant on first write (or for a two-way become).
    pub copies: u64,
    /// New objects allocated (not those an undone operation made and freed again): the
    /// count new objects' identity hashes are drawn from.
    pub allocations: u64,
    /// Reads that consulted the indirection table or followed a forwarder.
    pub lookups: u64,
    /// Private slots rewritten to the target of the forwarder they held (lazy become).
    pub patches: u64,
    /// One-way and two-way becomes done.
    pub becomes: u64,
    /// Collections run.
    pub collections: u64,
    /// Private entries freed by collection.
    pub collected: u64,
}

/// What one collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Entries found reachable.
    pub live: u64,
    /// Entries freed.
    pub freed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Slots patched to skip forwarders.
    pub patched: u64,
    /// Steps the mark took along chains of forwarders to settle the words it met (table
    /// lookups and forwarders followed, as [`TenantStats::lookups`] counts them for reads):
    /// each chain is walked once and then points at its end, so this stays within a few
    /// steps a forwarder and a word, however many words hold a long chain.
    pub steps: u64,
    /// Weak slots cleared: set to the collection's nil because the private object they
    /// named was reachable through weak slots alone ([`crate::Weakness`]). Always 0 for a
    /// collection without one.
    pub cleared: u64,
    /// Ephemerons fired: reached, with keys that nothing but ephemerons reaches
    /// ([`crate::Tenant::try_collect_ephemerons`]). Always 0 for a collection without a
    /// [`crate::Weakness`].
    pub fired: u64,
    /// Weak objects that had a slot cleared, appended to the mourners after the fired
    /// ephemerons ([`crate::Tenant::try_collect_ephemerons`]), as Spur queues both. Always
    /// 0 for a collection that takes no mourners.
    pub weak_mourners: u64,
}
