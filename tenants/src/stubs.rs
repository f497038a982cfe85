//! Root stubs: the tenant's half of swapping a segment out and faulting it back in.
//!
//! Swapping a segment out (Squeak's ImageSegment in its *active* state) leaves, for each of
//! its roots, a **root stub** in the tenant: the root's key, with its identity, and the id of
//! the segment that now holds its body. Every reference in the tenant (slots, roots, handles,
//! the indirection table) keeps naming the same key, so nothing outside the segment changes.
//! The segment's other objects, which by the segment's definition only the roots reach, are
//! then freed by the next collection.
//!
//! - [`Tenant::stub`] turns a private object into a root stub of a segment (its body is
//!   dropped: the caller has saved it in the segment first).
//! - Reading through a stub answers [`Error::Swapped`] naming the segment. Identity needs no
//!   body: a stub is identical to itself, can be stored, pinned and compared without a fault.
//! - [`Tenant::fill_stub`] gives a stub its body back: the body of an object the caller has
//!   just brought back from the segment, which then forwards to the stub (so references
//!   among the objects brought back lead to the stub's key: identity is kept).
//! - A **fault handler** ([`Tenant::set_fault_handler`]) is what brings a segment back:
//!   [`Tenant::fault_in`] calls it, a write through a stub calls it and retries, and
//!   [`Tenant::with_faults`] runs reads with it, faulting in what they touch and running them
//!   again. The segment crate's swap-out supplies the handler; this module knows no format.
//!
//! Stubs cost what a forwarder costs (16 bytes), are saved in snapshots (entry kind 2), and
//! cost the read path nothing: a stub is not an object, so the inlined paths pass it to the
//! out-of-line path, which reports it.

use crate::space::{FORWARDER_COST, State, cost};
use crate::stats::sub;
use crate::tenant::Loc;
use crate::{Error, Result, Tenant};
use cowheap_heap::{Value, Word};

/// Brings a swapped-out segment back into a tenant: given the tenant and the segment's id,
/// it must read the segment's objects in and [`Tenant::fill_stub`] each of its roots.
pub struct FaultHandler(Box<HandlerFn>);

/// The closure a [`FaultHandler`] holds.
type HandlerFn = dyn FnMut(&mut Tenant, u64) -> Result<()> + Send;

impl FaultHandler {
    /// A handler from a closure.
    pub fn new(f: impl FnMut(&mut Tenant, u64) -> Result<()> + Send + 'static) -> FaultHandler {
        FaultHandler(Box::new(f))
    }
}

impl std::fmt::Debug for FaultHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHandler")
    }
}

impl Tenant {
    /// Makes `root`, a private object, a root stub of segment `segment`: its body is dropped
    /// (the caller has saved it in the segment) and every reference to it now reads as
    /// [`Error::Swapped`] until the segment is faulted in. Identity and references are kept.
    /// Time: O(1).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, Value};
    /// use cowheap_tenants::{Error, Tenant};
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(g).unwrap();
    /// let a = t.alloc_with(class, Format::Pointers, &[Value::int(5)], &[]).unwrap();
    /// t.set_slot(g, 0, a).unwrap();
    /// t.stub(a, 9).unwrap();
    /// assert!(matches!(t.slot(a, 0), Err(Error::Swapped { segment: 9, .. })));
    /// assert!(t.identical(t.slot(g, 0).unwrap(), a).unwrap()); // identity needs no body
    /// let back = t.alloc_with(class, Format::Pointers, &[Value::int(5)], &[]).unwrap();
    /// t.fill_stub(a, back).unwrap();
    /// assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(5));
    /// assert!(t.identical(back, a).unwrap());
    /// ```
    ///
    /// # Errors
    /// [`Error::NotSwappable`] unless `root` leads to a live private object that is no host
    /// object's proxy (take its host object away first, [`Tenant::detach_host`], to swap a
    /// proxy out); [`Error::Swapped`] if it is a stub already; as [`Tenant::slot`] for a
    /// reference that leads nowhere. Nothing changes on error.
    pub fn stub(&mut self, root: Value, segment: u64) -> Result<()> {
        let Loc::Private(k) = self.locate(root)? else {
            return Err(Error::NotSwappable(root.word()));
        };
        self.body(k)?;
        if self
            .cold
            .as_ref()
            .is_some_and(|c| c.hosts.contains_key(&k.key()))
        {
            return Err(Error::NotSwappable(root.word()));
        }
        let w = self
            .space
            .writable(k)
            .ok_or(Error::NotSwappable(root.word()))?;
        let size = w.stub(segment);
        sub(
            &mut self.stats_mut().private_bytes,
            cost(size) - FORWARDER_COST,
        );
        Ok(())
    }

    /// Gives root stub `stub` the body of `from`, a private object just brought back from the
    /// stub's segment; `from` then forwards to `stub`, so references to it (from the objects
    /// brought back with it) lead to the stub's key. If `from` is a host object's proxy
    /// ([`crate::hosts`]), its host object goes with the body: the stub's key is the proxy
    /// from then on. Time: O(log host objects).
    ///
    /// # Errors
    /// [`Error::NotSwappable`] unless `stub` is a root stub and `from` a live private
    /// object; [`Error::OutOfMemory`]; as [`Tenant::slot`] for a reference that leads
    /// nowhere. Nothing changes on error.
    pub fn fill_stub(&mut self, stub: Value, from: Value) -> Result<()> {
        let (Loc::Private(ks), Loc::Private(kf)) = (self.locate(stub)?, self.locate(from)?) else {
            return Err(Error::NotSwappable(from.word()));
        };
        if !self.space.fill(ks, kf)? {
            return Err(Error::NotSwappable(from.word()));
        }
        // The stub now holds the body and `from` is a forwarder: the same charges, swapped.
        // A host object is the body's: it moves to the stub's key (a stub is never a proxy,
        // so nothing is there).
        self.move_host(kf, ks);
        Ok(())
    }

    /// The segment `v` is a root stub of, if it is one. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::slot`] for a reference that leads nowhere.
    pub fn stub_segment(&self, v: Value) -> Result<Option<u64>> {
        Ok(match self.locate(v)? {
            Loc::Private(k) => match self.space.get(k) {
                Some(State::Stub(segment)) => Some(segment),
                _ => None,
            },
            Loc::Base(_) => None,
        })
    }

    /// How many root stubs segment `segment` has in this tenant. Time: O(1).
    pub fn stubs_of(&self, segment: u64) -> usize {
        self.space.stubs_of(segment)
    }

    /// Every root stub with its segment, in key order. Time: O(private keys ever used).
    pub fn stubs(&self) -> impl Iterator<Item = (Value, u64)> + '_ {
        self.space.iter().filter_map(move |(k, s)| match s {
            State::Stub(segment) => Some((Value::owned(Word::private(k), self.id), segment)),
            _ => None,
        })
    }

    /// Sets (or clears) what brings a swapped-out segment back ([`FaultHandler`]).
    pub fn set_fault_handler(&mut self, handler: Option<FaultHandler>) {
        if handler.is_some() || self.cold.is_some() {
            self.cold_mut().fault = handler;
        }
    }

    /// True if the tenant has a fault handler.
    pub fn has_fault_handler(&self) -> bool {
        self.cold.as_ref().is_some_and(|c| c.fault.is_some())
    }

    /// Brings segment `segment` back through the fault handler. Time: the handler's, and
    /// O(1) besides.
    ///
    /// # Errors
    /// [`Error::Swapped`] if the tenant has no handler; the handler's error; and
    /// [`Error::Swapped`] if a stub of the segment is left when the handler returns (it must
    /// fill every root).
    pub fn fault_in(&mut self, segment: u64) -> Result<()> {
        let Some(mut handler) = self.cold.as_mut().and_then(|c| c.fault.take()) else {
            return Err(Error::Swapped {
                segment,
                object: Word::from_bits(0),
            });
        };
        let done = handler.0(self, segment);
        if let Some(c) = self.cold.as_mut()
            && c.fault.is_none()
        {
            c.fault = Some(handler);
        }
        done?;
        if self.space.stubs_of(segment) == 0 {
            return Ok(());
        }
        // The handler left a stub: name one (a walk of the keys, on this error only).
        let left = self
            .stubs()
            .find(|&(_, s)| s == segment)
            .map_or(Word::from_bits(0), |(v, _)| v.word());
        Err(Error::Swapped {
            segment,
            object: left,
        })
    }

    /// Runs `f`, and while it fails with [`Error::Swapped`] and the tenant has a fault
    /// handler, faults that segment in and runs `f` again: reads through stubs made
    /// transparent for code that can take the tenant mutably. `f` should be a read (or a
    /// write that changes nothing before it fails), since it may run more than once. At most
    /// as many faults as the tenant has stubs.
    ///
    /// # Errors
    /// `f`'s error, or [`Tenant::fault_in`]'s.
    pub fn with_faults<T>(&mut self, mut f: impl FnMut(&mut Tenant) -> Result<T>) -> Result<T> {
        let mut left = self.space.stub_count();
        loop {
            match f(self) {
                Err(Error::Swapped { segment, .. }) if left > 0 && self.has_fault_handler() => {
                    left -= 1;
                    self.fault_in(segment)?;
                }
                r => return r,
            }
        }
    }
}
