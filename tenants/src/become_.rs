//! become: making references to one object lead to another, in one tenant only.
//!
//! Both forms run in time independent of the heap's size: they never scan for references.
//! Instead they change what one private entry holds, and every reference reaches the change
//! through the indirection table (for base references) or the entry itself (for private
//! ones).
//!
//! - [`Tenant::become_forward`] turns `a`'s entry into a forwarder to `b`. A base object `a`
//!   needs no copy: its new entry is born a forwarder. Slots that hold `a` are patched to
//!   `b` when read (lazy become) or at the next collection.
//! - [`Tenant::become_two_way`] swaps the bodies of `a`'s and `b`'s entries, copying each
//!   that is still a base object first (O(size of the two objects)).

use crate::space::{Body, Entry, FORWARDER_COST, cost};
use crate::stats::{add, sub};
use crate::tenant::Loc;
use crate::{Error, Result, Tenant};
use cowheap_heap::{ObjectIndex, PrivateKey, Value, Word};

impl Tenant {
    /// Every reference to `a` in this tenant's view now leads to `b` (`a becomeForward: b`).
    /// `b` keeps its identity hash. A host object's proxy cannot become a forwarder
    /// ([`Error::HostProxy`](crate::Error::HostProxy)). Time: O(1).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let (t, f) = (base.heap().root("true").unwrap(), base.heap().root("false").unwrap());
    /// let mut tenant = Tenant::fork(&base);
    /// tenant.become_forward(t, f).unwrap();
    /// assert!(tenant.identical(t, f).unwrap());
    /// assert!(!Tenant::fork(&base).identical(t, f).unwrap());
    /// ```
    pub fn become_forward(&mut self, a: Value, b: Value) -> Result<()> {
        let (la, lb) = (self.locate(a)?, self.locate(b)?);
        if la == lb {
            add(&mut self.stats_mut().becomes, 1);
            return Ok(());
        }
        let target = lb.word();
        match la {
            Loc::Base(x) => {
                self.may_divert(x)?;
                self.check_quota(FORWARDER_COST)?;
                self.reserve_diversions(1)?;
                let k = self.space.insert(Entry::Forwarded(target))?;
                self.divert(x, k, FORWARDER_COST)?;
            }
            Loc::Private(k) => {
                self.check_forwardable(k, a)?;
                let w = self
                    .space
                    .writable(k)
                    .ok_or(Error::Collected(Word::private(k)))?;
                let size = w.forward(target);
                sub(
                    &mut self.stats_mut().private_bytes,
                    cost(size) - FORWARDER_COST,
                );
            }
        }
        add(&mut self.stats_mut().becomes, 1);
        Ok(())
    }

    /// Checks, changing no object, that [`Tenant::become_forward`] of `a` onto `b` would not
    /// be refused for what `a` and `b` are: a reference that leads nowhere, a root stub
    /// ([`Error::Swapped`]), a host object's proxy ([`Error::HostProxy`]), a base object
    /// the tenant may not change ([`Error::BaseReadOnly`]). Room (the quota, the
    /// allocator) is not checked. So that a caller making several becomes as one (an
    /// array become) can refuse them all before the first, rather than stop part-way.
    /// Time: O(1).
    ///
    /// The one thing a check records is what a refused write records: on a read-only base
    /// ([`Tenant::set_base_read_only`]), the object refused, in [`Tenant::refused_write`],
    /// so that a query that only checks is told its operation would write.
    ///
    /// # Errors
    /// The error [`Tenant::become_forward`] would answer for `a` or `b`.
    pub fn check_become_forward(&self, a: Value, b: Value) -> Result<()> {
        let (la, lb) = (self.locate(a)?, self.locate(b)?);
        if la == lb {
            return Ok(());
        }
        match la {
            Loc::Base(x) => self.may_divert(x),
            Loc::Private(k) => self.check_forwardable(k, a),
        }
    }

    /// Whether the private object `k` (referred to as `a`) may become a forwarder: a root
    /// stub is refused ([`Error::Swapped`]: its body is in its segment), and so is a host
    /// object's proxy ([`Error::HostProxy`]).
    fn check_forwardable(&self, k: PrivateKey, a: Value) -> Result<()> {
        self.body(k)?;
        if self.is_host(k) {
            return Err(Error::HostProxy(a.word()));
        }
        Ok(())
    }

    /// Checks, changing no object, that [`Tenant::become_two_way`] of `a` and `b` would not
    /// be refused for what they are: a reference that leads nowhere, a root stub
    /// ([`Error::Swapped`]), a base object the tenant may not change
    /// ([`Error::BaseReadOnly`]). Room is not checked (see
    /// [`Tenant::check_become_forward`]). Time: O(1).
    ///
    /// The one thing a check records is what a refused write records: on a read-only base
    /// ([`Tenant::set_base_read_only`]), the object refused, in [`Tenant::refused_write`],
    /// so that a query that only checks is told its operation would write.
    ///
    /// # Errors
    /// The error [`Tenant::become_two_way`] would answer for `a` or `b` before it reads
    /// either body.
    pub fn check_become_two_way(&self, a: Value, b: Value) -> Result<()> {
        let (la, lb) = (self.locate(a)?, self.locate(b)?);
        if la == lb {
            return Ok(());
        }
        for l in [la, lb] {
            self.check_changeable(l)?;
        }
        Ok(())
    }

    /// Checks, changing no object, that a write to `v`'s object would not be refused for
    /// what it is: a reference that leads nowhere, a root stub ([`Error::Swapped`]), a base
    /// object the tenant may not change ([`Error::BaseReadOnly`]). Room, and the index or
    /// range written, are not checked. For a caller that writes several objects as one
    /// step (an array become gives each one-way target its source's identity hash).
    /// Time: O(1).
    ///
    /// The one thing a check records is what a refused write records: on a read-only base
    /// ([`Tenant::set_base_read_only`]), the object refused, in [`Tenant::refused_write`],
    /// so that a query that only checks is told its operation would write.
    ///
    /// # Errors
    /// The error a write's first step would answer for `v`.
    pub fn check_writable(&self, v: Value) -> Result<()> {
        self.check_changeable(self.locate(v)?)
    }

    /// [`Tenant::check_writable`] of a located object.
    fn check_changeable(&self, l: Loc) -> Result<()> {
        match l {
            Loc::Private(k) => self.body(k).map(drop),
            Loc::Base(x) => self.may_divert(x),
        }
    }

    /// References to `a` now lead to what `b` was and the other way round (`a become: b`).
    /// Time: O(1) for private objects; a base object is copied first, O(its size).
    pub fn become_two_way(&mut self, a: Value, b: Value) -> Result<()> {
        let (la, lb) = (self.locate(a)?, self.locate(b)?);
        if la == lb {
            add(&mut self.stats_mut().becomes, 1);
            return Ok(());
        }
        // What refuses the become whatever the base bodies hold, before any is read: a root
        // stub (`Error::Swapped`), a base the tenant may not change. Such a refusal reads
        // nothing, and records no read.
        for l in [la, lb] {
            self.check_changeable(l)?;
        }
        // Each base body is read from here on (its layout and size decide the rest, and it
        // is copied): a read, as a first write's is.
        let mut needed = 0u64;
        for l in [la, lb] {
            if let Loc::Base(x) = l {
                self.note_read(x);
                let view = self.base.object(x)?;
                view.format.check(view.size())?;
                needed = needed.saturating_add(cost(view.size()));
            }
        }
        self.check_quota(needed)?;
        // Both copies are made, checked and allocated, and room for both keys is checked,
        // before either enters the tenant: a refused become changes nothing.
        let prepare = |tenant: &Tenant, l: Loc| match l {
            Loc::Base(x) => tenant.copy_of(x).map(|body| Operand::Copy(x, body)),
            Loc::Private(k) => Ok(Operand::Private(k)),
        };
        let (oa, ob) = (prepare(self, la)?, prepare(self, lb)?);
        let copies = [&oa, &ob]
            .into_iter()
            .filter(|o| matches!(o, Operand::Copy(..)))
            .count();
        self.space.reserve_keys(copies)?;
        // And arena room for both copies: the second insert must not fail after the first
        // has diverted its object.
        let sizes: Vec<_> = [&oa, &ob]
            .into_iter()
            .filter_map(|o| match o {
                Operand::Copy(_, body) => Some(body.size()),
                Operand::Private(_) => None,
            })
            .collect();
        self.space.reserve_objects(&sizes)?;
        // And the table's room for both diversions.
        self.reserve_diversions(copies)?;
        let mut key = |o: Operand| match o {
            Operand::Copy(x, body) => self.divert_body(x, body),
            Operand::Private(k) => Ok(k),
        };
        let ka = key(oa)?;
        let kb = key(ob)?;
        if !self.space.swap(ka, kb) {
            return Err(Error::Collected(Word::private(kb)));
        }
        add(&mut self.stats_mut().becomes, 1);
        Ok(())
    }
}

/// An operand of a two-way become, ready to be swapped: a private object, or a base object
/// with its copy made but not yet in the tenant.
enum Operand {
    Private(PrivateKey),
    Copy(ObjectIndex, Body),
}
