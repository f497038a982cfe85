//! Collection of a tenant's unreachable private objects.
//!
//! Base objects are immutable and so never refer to private objects; the only ways into the
//! private space are the tenant's roots, its pinned handles, and the indirection table (a
//! base object may refer to any object this tenant diverted). Marking starts there and
//! follows private references only, so it never reads the base: a collection costs
//! O(private objects + their slots), whatever the size of the base.
//!
//! While marking, every slot that holds a forwarder is patched to its target, so after a
//! collection no slot holds a forwarder and forwarders referred to only by slots are freed.
//!
//! Weak and ephemeron slots are held strongly.

use crate::space::State;
use crate::stats::{add, sub};
use crate::{CollectStats, Tenant};
use cowheap_heap::{PrivateKey, Value, Word};
use rustc_hash::FxHashMap;

impl Tenant {
    /// Frees every private object not reachable from this tenant's roots, pinned handles and
    /// diverted base objects. A `Value` naming a freed object is refused from then on
    /// ([`crate::Error::Collected`]).
    ///
    /// Time: O(private objects and their slots); never walks the base.
    pub fn collect(&mut self) -> CollectStats {
        let (marked, mut out) = self.mark();
        let dead: Vec<PrivateKey> = self
            .space
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !marked.get(k.key() as usize).copied().unwrap_or(false))
            .collect();
        self.sweep(&dead, &mut out);
        // A view's words are not patched here, and may name a forwarder just freed: views
        // are made again from their segments when next read.
        if let Some(c) = self.cold.as_mut() {
            c.views.clear();
        }
        add(&mut self.cold_mut().stats.collections, 1);
        out
    }

    /// Frees those of `objs` that are this tenant's private objects and unreachable (from
    /// its roots, pinned handles and diverted base objects), now, and nothing else: for an
    /// operation that made them and then failed part-way (a segment import, say), so that
    /// the tenant's objects, private bytes and quota are as they were before it. Anything
    /// else in `objs` (an immediate, a base reference, another tenant's reference, a
    /// forwarder or root stub, an object reachable after all, a copy of a base object) is
    /// left alone. A `Value` naming a freed object is refused from then on
    /// ([`crate::Error::Collected`]), as after [`Tenant::collect`], which unlike this frees
    /// every unreachable object. An unreachable object left standing may still hold a
    /// reference to one freed here; the mark follows keys with their generations, so such a
    /// word never keeps alive an object that reuses the index.
    ///
    /// Time: O(private objects and their slots), the marking of a collection, plus O(objs).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = base.heap().root("true").unwrap();
    /// let kept = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.set_root("kept", kept).unwrap();
    /// let before = t.stats();
    /// let made = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.set_slot(made, 0, kept).unwrap();
    /// let freed = t.free_unreachable(&[made, kept]);
    /// assert_eq!(freed.freed, 1);
    /// assert!(t.slot(made, 0).is_err());
    /// assert!(t.slot(kept, 0).is_ok());
    /// assert_eq!(t.stats().private_bytes, before.private_bytes);
    /// ```
    pub fn free_unreachable(&mut self, objs: &[Value]) -> CollectStats {
        let id = self.id();
        // Live objects only: never a forwarder or a root stub, which stand for other objects.
        let candidates: Vec<PrivateKey> = objs
            .iter()
            .filter_map(|v| v.key_for(id))
            .filter(|k| self.space.object(*k).is_some())
            .collect();
        if candidates.is_empty() {
            return CollectStats::default();
        }
        let (marked, mut out) = self.mark();
        let mut dead: Vec<PrivateKey> = candidates
            .into_iter()
            .filter(|k| !marked.get(k.key() as usize).copied().unwrap_or(false))
            .collect();
        dead.sort_unstable_by_key(|k| k.key());
        dead.dedup();
        self.sweep(&dead, &mut out);
        out
    }

    /// Marks every private entry reachable from the roots, the pinned handles and the
    /// diverted base objects, patching each forwarder met on the way; answers the marks by
    /// key index, and the live and patched counts.
    fn mark(&mut self) -> (Vec<bool>, CollectStats) {
        let lookups = self.stats().lookups;
        let mut out = CollectStats::default();
        let mut marked = vec![false; self.space.key_bound()];
        // Keys with their generations: a word that names a freed object (which an object
        // `free_unreachable` left standing may hold) marks nothing, not whatever reuses its
        // index.
        let mut stack: Vec<PrivateKey> = self
            .table
            .iter()
            .filter_map(|(_, i)| self.space.key_of(i))
            .collect();

        let mut roots: Vec<Word> = self
            .roots_map()
            .into_iter()
            .flat_map(|r| r.values().copied())
            .collect();
        if let Some(c) = self.cold.as_mut() {
            roots.extend(c.handles.words_mut().map(|w| *w));
        }
        let roots: Vec<Word> = roots
            .into_iter()
            .map(|w| self.final_word(w, &mut out))
            .collect();
        if let Some(c) = self.cold.as_mut() {
            for (slot, w) in c
                .roots
                .values_mut()
                .chain(c.handles.words_mut())
                .zip(&roots)
            {
                *slot = *w;
            }
        }
        stack.extend(roots.iter().filter_map(|w| w.as_private()));
        // The stubs of a segment live and die together: a stub's body (in its segment, or
        // in the segment's view) refers to the other members by their stubs. So the first
        // stub of a segment reached marks them all. Found in one pass over the keys, which
        // the sweep makes anyway.
        let mut stubs_by_segment: FxHashMap<u64, Vec<PrivateKey>> = FxHashMap::default();
        if self.space.stub_count() > 0 {
            for (k, s) in self.space.iter() {
                if let State::Stub(segment) = s {
                    stubs_by_segment.entry(segment).or_default().push(k);
                }
            }
        }

        while let Some(k) = stack.pop() {
            let Some(entry) = self.space.get(k) else {
                continue;
            };
            match marked.get_mut(k.key() as usize) {
                Some(m) if !*m => *m = true,
                _ => continue,
            }
            out.live += 1;
            let class = match entry {
                State::Forwarded(t) => {
                    stack.extend(t.as_private());
                    continue;
                }
                // A stub holds nothing here (its objects are in its segment) but the other
                // stubs of its segment.
                State::Stub(segment) => {
                    stack.extend(stubs_by_segment.remove(&segment).into_iter().flatten());
                    continue;
                }
                State::Object(body) => {
                    for cell in body.slots() {
                        let w = self.final_word(cell.get(), &mut out);
                        cell.set(w);
                        stack.extend(w.as_private());
                    }
                    body.class()
                }
            };
            let fin = self.final_word(class, &mut out);
            stack.extend(fin.as_private());
            if fin != class
                && let Some(mut w) = self.space.writable(k)
            {
                w.set_class(fin);
            }
        }

        let cold = self.cold_mut();
        let patches = cold.reads.patches.get().saturating_add(out.patched);
        cold.reads.patches.set(patches);
        cold.reads.lookups.set(lookups);
        (marked, out)
    }

    /// Frees the entries `dead` names (each once), with what hangs on them, and counts them
    /// in `out` and the tenant's statistics.
    fn sweep(&mut self, dead: &[PrivateKey], out: &mut CollectStats) {
        for &k in dead {
            if let Some(charged) = self.space.remove(k) {
                out.freed += 1;
                out.freed_bytes += charged;
            }
        }
        self.space.tidy();
        self.drop_dead_hosts();
        let space = &self.space;
        if let Some(c) = self.cold.as_mut() {
            c.committed.retain(|&k| space.get(k).is_some());
        }
        let cold = self.cold_mut();
        sub(&mut cold.stats.private_objects, out.freed);
        sub(&mut cold.stats.private_bytes, out.freed_bytes);
        add(&mut cold.stats.collected, out.freed);
    }

    /// `w`, or the final target if it is a forwarder.
    fn final_word(&self, w: Word, out: &mut CollectStats) -> Word {
        match self.forwarded(w) {
            Ok(Some(t)) => {
                out.patched += 1;
                t
            }
            _ => w,
        }
    }
}
