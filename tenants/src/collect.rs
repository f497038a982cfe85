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

use crate::space::cost;
use crate::{CollectStats, Tenant};
use cowheap_forwarders::Forwarding;
use cowheap_heap::Word;

impl Tenant {
    /// Frees every private object not reachable from this tenant's roots, pinned handles and
    /// diverted base objects. A `Value` naming a freed object is refused from then on
    /// ([`crate::Error::Collected`]).
    ///
    /// Time: O(private objects and their slots); never walks the base.
    pub fn collect(&mut self) -> CollectStats {
        let lookups = self.reads.lookups.get();
        let mut out = CollectStats::default();
        let mut marked = vec![false; self.space.key_bound()];
        let mut stack: Vec<u32> = self.table.iter().map(|(_, k)| k.key()).collect();

        let mut roots: Vec<Word> = self.roots.values().copied().collect();
        roots.extend(self.handles.words_mut().map(|w| *w));
        let roots: Vec<Word> = roots
            .into_iter()
            .map(|w| self.final_word(w, &mut out))
            .collect();
        for (slot, w) in self
            .roots
            .values_mut()
            .chain(self.handles.words_mut())
            .zip(&roots)
        {
            *slot = *w;
        }
        stack.extend(roots.iter().filter_map(|w| w.as_private()).map(|k| k.key()));

        while let Some(i) = stack.pop() {
            match marked.get_mut(i as usize) {
                Some(m) if !*m => *m = true,
                _ => continue,
            }
            out.live += 1;
            let Some(entry) = self.space.get(self.space.key_of(i)) else {
                continue;
            };
            let class = match &entry.state {
                Forwarding::Forwarded(t) => {
                    stack.extend(t.as_private().map(|k| k.key()));
                    continue;
                }
                Forwarding::Object(body) => {
                    for cell in body.slots.iter() {
                        let w = self.final_word(cell.get(), &mut out);
                        cell.set(w);
                        stack.extend(w.as_private().map(|k| k.key()));
                    }
                    body.class
                }
            };
            let fin = self.final_word(class, &mut out);
            stack.extend(fin.as_private().map(|k| k.key()));
            if fin != class {
                if let Some(b) = self.space.by_index_mut(i).and_then(|e| e.state.body_mut()) {
                    b.class = fin;
                }
            }
        }

        let dead: Vec<u32> = self
            .space
            .keys()
            .filter(|&i| !marked.get(i as usize).copied().unwrap_or(false))
            .collect();
        for i in dead {
            if let Some(e) = self.space.remove(i) {
                let c = match &e.state {
                    Forwarding::Object(b) => cost(b.size()),
                    Forwarding::Forwarded(_) => crate::space::ENTRY_OVERHEAD,
                };
                out.freed += 1;
                out.freed_bytes += c;
            }
        }
        self.stats.private_objects -= out.freed;
        self.stats.private_bytes -= out.freed_bytes;
        self.stats.collected += out.freed;
        self.stats.collections += 1;
        self.reads
            .patches
            .set(self.reads.patches.get() + out.patched);
        self.reads.lookups.set(lookups);
        out
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
