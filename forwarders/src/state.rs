//! The forwarding states of objects, as a tenant sees them.
//!
//! A base object `x`, for one tenant:
//!
//! ```text
//!                     first write, or become of x
//!   Undiverted  ─────────────────────────────────────────▶  Diverted(k)
//!   marks[x] may be set by other tenants;                    marks[x] set; table[x] = k,
//!   table has no x; reads go to the base                     reads go to private entry k
//! ```
//!
//! The transition is taken once and never undone while the tenant lives. The mark is set
//! *before* the table entry is used, so no read of `x` by this tenant can skip the table
//! after the copy exists.
//!
//! A private entry `k` ([`Forwarding`]):
//!
//! ```text
//!                     become_forward(k, target)
//!   Object(body)  ─────────────────────────────────▶  Forwarded(target)
//!   reads see body                                     reads follow target; a private slot
//!                                                      holding k is patched to target when
//!                                                      read (lazy become)
//! ```
//!
//! `target` is always a *final* reference when the forwarder is made (an undiverted base
//! object or a private `Object`), so chains only grow by forwarding their end and never form
//! a cycle. Two-way become swaps the bodies of two `Object` entries and makes no forwarder.

use cowheap_heap::Word;

/// A private entry: an object's body, or a forwarder to another object.
#[derive(Clone, Debug)]
pub enum Forwarding<B> {
    /// A live object. Invariant: reads of this entry see `B`.
    Object(B),
    /// A forwarder left by one-way become. Invariant: the target was final when this was made.
    Forwarded(Word),
}

impl<B> Forwarding<B> {
    /// The body, if this is an object.
    #[inline]
    pub fn body(&self) -> Option<&B> {
        match self {
            Forwarding::Object(b) => Some(b),
            Forwarding::Forwarded(_) => None,
        }
    }

    /// The body, mutably, if this is an object.
    #[inline]
    pub fn body_mut(&mut self) -> Option<&mut B> {
        match self {
            Forwarding::Object(b) => Some(b),
            Forwarding::Forwarded(_) => None,
        }
    }

    /// The target, if this is a forwarder.
    #[inline]
    pub fn target(&self) -> Option<Word> {
        match self {
            Forwarding::Object(_) => None,
            Forwarding::Forwarded(w) => Some(*w),
        }
    }

    /// Turns an object into a forwarder to `target` and returns the body it held; `None`,
    /// changing nothing, if this entry is a forwarder already (forwarding one again would
    /// break the chain invariant: only final entries are forwarded).
    pub fn forward(&mut self, target: Word) -> Option<B> {
        if let Forwarding::Forwarded(_) = self {
            return None;
        }
        match std::mem::replace(self, Forwarding::Forwarded(target)) {
            Forwarding::Object(b) => Some(b),
            Forwarding::Forwarded(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_hands_back_the_body() {
        let mut e = Forwarding::Object(5);
        assert_eq!(e.body(), Some(&5));
        let t = Word::int(1).unwrap();
        assert_eq!(e.forward(t), Some(5));
        assert_eq!(e.target(), Some(t));
        assert!(e.body().is_none());
    }

    #[test]
    fn forwarding_twice_is_refused() {
        let t = Word::int(1).unwrap();
        let mut e: Forwarding<u8> = Forwarding::Forwarded(t);
        assert_eq!(e.forward(Word::int(2).unwrap()), None);
        assert_eq!(e.target(), Some(t));
    }
}
