//! The object-memory trait the interpreter runs on, and its implementation by a tenant.
//!
//! The trait is about the size of what a VM's primitives need (fetch and store a slot or
//! bytes, class, size, format, instantiate, identity), plus the two things an embedder's
//! memory has to do for the interpreter: keep named roots and collect garbage with the
//! interpreter's registers as extra roots. The interpreter is generic over it, so each
//! implementation gets its own monomorphised copy of the dispatch loop: no `dyn` call per
//! bytecode.

use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, Word};
use cowheap_tenants::{Header, Tenant, Weakness};
use rustc_hash::{FxHashMap, FxHashSet};

/// The result of a memory operation: the tenant's error type, which also carries the heap's.
pub type MemResult<T> = Result<T, cowheap_tenants::Error>;

/// How a collection holds weak objects' slots ([`ObjectMemory::collect`]): the named
/// instance variables of a weak object ([`Format::Weak`], Squeak's weak classes such as
/// `WeakArray`) are strong, its indexed slots weak, as in Squeak's collector.
#[derive(Clone, Copy, Debug)]
pub struct WeakSlots {
    /// What a cleared weak slot is set to: the image's nil.
    pub nil: Value,
    /// The number of named instance variables of a class whose format word (slot 2 of a
    /// class) has integer value `format`, as the image's object format encodes it.
    pub named: fn(i64) -> usize,
}

impl WeakSlots {
    /// The strong slots of a weak object of class `class` in `m`: its class's named
    /// instance variables; `None` if the class's format word cannot be read (the object's
    /// slots are then all held strongly).
    pub fn strong_slots<M: ObjectMemory + ?Sized>(&self, m: &M, class: Value) -> Option<usize> {
        let format = m.slot(class, 2).ok()?.as_int()?;
        Some((self.named)(format))
    }
}

/// What a collection did ([`ObjectMemory::collect`]).
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// The memory's private bytes after it ([`ObjectMemory::private_bytes`]).
    pub private_bytes: u64,
    /// Weak slots it set to nil, their objects freed.
    pub cleared: u64,
    /// Ephemerons it fired, each now an object of plain pointers whose key and value it
    /// kept: their keys were reached through ephemerons alone. Nothing but this list holds
    /// them for the caller (the interpreter queues them for the image's finalization,
    /// primitive 172, as Spur's mourner queue does).
    pub mourners: Vec<Value>,
    /// Weak objects it cleared a slot of, each once: Spur queues them as mourners too.
    pub weak_mourners: Vec<Value>,
}

/// What an array become makes of each of its pairs ([`ObjectMemory::check_room_for_become`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BecomeKind {
    /// Two-way (`elementsExchangeIdentityWith:`, primitive 128): references to the two
    /// objects are exchanged, each hash staying with its references.
    TwoWay,
    /// One-way (`elementsForwardIdentityTo:` and its variants): references to the source
    /// lead to the target. With `copy_hash` the target is then given the source's identity
    /// hash (primitive 72, and 249 given `true`), a write to the target; without it the
    /// target keeps its own and is not written (248, and 249 given `false`).
    OneWay {
        /// The target takes its source's identity hash.
        copy_hash: bool,
    },
}

/// What the interpreter needs of an object memory.
///
/// Every operation has the meaning of the same operation on [`Tenant`]: `slot`, `bytes`,
/// `size` and `format` read, `set_slot` and `set_bytes` write (a tenant copies a base object
/// on its first write), `alloc` makes an object with nil slots and zero bytes, `identical`
/// answers identity in this memory's view. Both implementations must give the same answers
/// to the same operations: the interpreter's tests run the same programs on both.
pub trait ObjectMemory {
    /// The class of `v` (of an object, or of a small integer).
    fn class_of(&self, v: Value) -> MemResult<Value>;
    /// Pointer slot `i` of `obj`.
    fn slot(&self, obj: Value, i: usize) -> MemResult<Value>;
    /// Sets pointer slot `i` of `obj`.
    fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> MemResult<()>;
    /// Sets pointer slots `start..start + values.len()` of `obj`, all or none.
    fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> MemResult<()>;
    /// The raw bytes of `obj`.
    fn bytes(&self, obj: Value) -> MemResult<&[u8]>;
    /// Writes `data` into the raw bytes of `obj` from `offset`.
    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()>;
    /// The size of `obj`.
    fn size(&self, obj: Value) -> MemResult<ObjectSize>;
    /// The format of `obj`.
    fn format(&self, obj: Value) -> MemResult<Format>;
    /// The class, format and size of `obj` together (what `class_of`, `format` and `size`
    /// answer), for the primitives that need all three.
    fn header(&self, obj: Value) -> MemResult<Header>;
    /// A new object of `class`, its slots nil, its bytes zero.
    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value>;
    /// True if `a` and `b` are the same object or equal immediates.
    fn identical(&self, a: Value, b: Value) -> MemResult<bool>;
    /// The identity hash of `obj`.
    fn identity_hash(&self, obj: Value) -> MemResult<u32>;
    /// One-way become: every reference to `a` now leads to `b`.
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()>;
    /// Two-way become: references to `a` and `b` are exchanged.
    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()>;
    /// Checks, changing nothing, that the memory has room for the becomes of `pairs`, made
    /// one after the other as `kind` says (two-way; or one-way, each target then given its
    /// source's identity hash when the kind copies hashes, as primitive 72 does), and that
    /// none of them is refused for what its objects are: so that an array become the
    /// memory would refuse partway (a tenant's quota, a host object's proxy as a one-way
    /// source, a read-only base object whose hash would be written) is refused before its
    /// first pair. It may refuse what would just fit; a memory without limits or refusals
    /// answers `Ok`.
    fn check_room_for_become(&self, pairs: &[(Value, Value)], kind: BecomeKind) -> MemResult<()> {
        let _ = (pairs, kind);
        Ok(())
    }
    /// The root named `name` (the memory's own, else the base's).
    fn root(&self, name: &str) -> Option<Value>;
    /// Names `v` as a root.
    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()>;
    /// Removes the root named `name`.
    fn remove_root(&mut self, name: &str);
    /// Bytes this memory has allocated of its own (a tenant's private bytes); what the
    /// interpreter's collection threshold is measured in.
    fn private_bytes(&self) -> u64;
    /// Collects garbage, keeping alive what the memory's roots reach and `roots`, and
    /// holding the slots of weak objects past their named ones weakly (`weak`): a weak slot
    /// naming an object the collection frees is set to `weak.nil`. An ephemeron
    /// ([`Format::Ephemeron`]) holds its slots only once its key (its first slot) is reached
    /// another way; a reached one whose key nothing but ephemerons reaches is fired: kept
    /// with its slots, made plain pointers, and answered as a mourner. Objects do not move:
    /// the values in `roots` stay valid. Answers the private bytes after, the weak slots
    /// cleared, the ephemerons fired and the weak objects whose slots it cleared.
    fn collect(&mut self, roots: &[Value], weak: &WeakSlots) -> MemResult<Collected>;
    /// Replaces the contents of `out` with every object of this memory, each once, in this
    /// memory's enumeration order: what `someObject`/`nextObject` and
    /// `someInstance`/`nextInstance` walk. A Spur image's hidden objects (free lists,
    /// hidden roots, class-table pages), which a Spur VM's walk never answers, are left
    /// out. Time: O(objects).
    fn enumerate_objects(&self, out: &mut Vec<Value>) -> MemResult<()>;
    /// Makes `class` the class of `obj`, keeping its identity, identity hash, format and
    /// contents (`primitiveChangeClass`). The caller checks that the class's instance format
    /// suits the object. Time: O(size of `obj`) at most.
    fn set_class(&mut self, obj: Value, class: Value) -> MemResult<()>;
    /// Gives `obj` the identity hash `hash` (the become primitives keep each hash where
    /// Squeak's do).
    fn set_identity_hash(&mut self, obj: Value, hash: u32) -> MemResult<()>;
    /// One key for `v`'s identity: two references are identical exactly when their keys are
    /// equal, whichever way they name the object. Valid until the next collection, become
    /// or first write of a base object (a tenant's key for an object it has not copied is
    /// the base reference's, and for one it has, the copy's: keys taken on either side of
    /// the first write differ).
    fn identity_key(&self, v: Value) -> MemResult<u64>;
    /// True if the memory can bring a swapped-out segment back ([`ObjectMemory::fault_in`]):
    /// a tenant with a fault handler. A read through a root stub answers
    /// [`cowheap_tenants::Error::Swapped`]; the interpreter then faults the segment in and
    /// runs the operation again, or, with no handler, stops with a typed error.
    fn has_fault_handler(&self) -> bool;
    /// Brings segment `segment` back, every root stub of it becoming its object again with
    /// its identity and identity hash. Time: the handler's.
    ///
    /// # Errors
    /// The handler's error, or [`cowheap_tenants::Error::Swapped`] when there is no handler
    /// or a stub of the segment is left.
    fn fault_in(&mut self, segment: u64) -> MemResult<()>;
    /// Makes reads through stubs answer [`cowheap_tenants::Error::Swapped`] (`true`), so
    /// that the interpreter faults in what it reads, rather than answer from a view of the
    /// segment (a tenant's [`Tenant::set_stub_views`]); answers the setting before. A
    /// memory with no stubs ignores it.
    fn set_reads_fault(&mut self, on: bool) -> bool {
        on
    }
}

impl ObjectMemory for Tenant {
    #[inline(always)]
    fn class_of(&self, v: Value) -> MemResult<Value> {
        Tenant::class_of(self, v)
    }
    #[inline(always)]
    fn slot(&self, obj: Value, i: usize) -> MemResult<Value> {
        Tenant::slot(self, obj, i)
    }
    #[inline(always)]
    fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> MemResult<()> {
        Tenant::set_slot(self, obj, i, v)
    }
    #[inline(always)]
    fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> MemResult<()> {
        Tenant::set_slots(self, obj, start, values)
    }
    #[inline(always)]
    fn bytes(&self, obj: Value) -> MemResult<&[u8]> {
        Tenant::bytes(self, obj)
    }
    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()> {
        Tenant::set_bytes(self, obj, offset, data)
    }
    #[inline(always)]
    fn size(&self, obj: Value) -> MemResult<ObjectSize> {
        Tenant::size(self, obj)
    }
    #[inline(always)]
    fn format(&self, obj: Value) -> MemResult<Format> {
        Tenant::format(self, obj)
    }
    #[inline(always)]
    fn header(&self, obj: Value) -> MemResult<Header> {
        Tenant::header(self, obj)
    }
    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value> {
        Tenant::alloc(self, class, format, size)
    }
    #[inline(always)]
    fn identical(&self, a: Value, b: Value) -> MemResult<bool> {
        Tenant::identical(self, a, b)
    }
    #[inline(always)]
    fn identity_hash(&self, obj: Value) -> MemResult<u32> {
        Tenant::identity_hash(self, obj)
    }
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()> {
        Tenant::become_forward(self, a, b)
    }
    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()> {
        Tenant::become_two_way(self, a, b)
    }
    /// The most private bytes the becomes take at any point, counted pair by pair as the
    /// tenant counts them ([`Tenant::quota`]): a copy of each base object a become or a
    /// hash write copies first (a one-way target only when the kind copies hashes), a
    /// forwarder for a base source of a one-way become, less what a private source gives
    /// back when it becomes a forwarder; refused as
    /// [`cowheap_tenants::Error::QuotaExceeded`] when that peak passes the quota. Before
    /// that, each pair is checked as the tenant's become would check it when its turn
    /// comes ([`Tenant::check_become_forward`], [`Tenant::check_become_two_way`], and
    /// [`Tenant::check_writable`] for a one-way target whose hash is written): a
    /// one-way source is taken where the pairs before it forwarded it, so a source named
    /// twice is checked as the object the first pair leaves it leading to. Time: O(pairs)
    /// expected.
    fn check_room_for_become(&self, pairs: &[(Value, Value)], kind: BecomeKind) -> MemResult<()> {
        let (two_way, copy_hash) = match kind {
            BecomeKind::TwoWay => (true, true),
            BecomeKind::OneWay { copy_hash } => (false, copy_hash),
        };
        if two_way {
            for &(x, y) in pairs {
                Tenant::check_become_two_way(self, x, y)?;
            }
        } else {
            // What each source forwarded so far leads to, by its identity word.
            let mut forwarded: FxHashMap<Word, Value> = FxHashMap::default();
            // Each word met on the way is then pointed at the end (path compression), so
            // that pairs that keep naming the start of a long chain (a source forwarded on
            // and on) cost its length once, not once a pair: the check stays near O(pairs)
            // whatever the arrays hold.
            let settle = |v: Value, forwarded: &mut FxHashMap<Word, Value>| -> MemResult<Value> {
                let mut v = v;
                let mut met: Vec<Word> = Vec::new();
                // Each step follows a pair's forwarding: no chain is longer than the pairs.
                for _ in 0..=pairs.len() {
                    let w = Tenant::identity_word(self, v)?;
                    match forwarded.get(&w) {
                        Some(&to) => {
                            met.push(w);
                            v = to;
                        }
                        None => break,
                    }
                }
                if met.len() > 1 {
                    for w in met {
                        forwarded.insert(w, v);
                    }
                }
                Ok(v)
            };
            for &(x, y) in pairs {
                let (x, y) = (settle(x, &mut forwarded)?, settle(y, &mut forwarded)?);
                Tenant::check_become_forward(self, x, y)?;
                // The target is then given the source's identity hash, if the kind says so.
                if copy_hash {
                    Tenant::check_writable(self, y)?;
                }
                let (wx, wy) = (
                    Tenant::identity_word(self, x)?,
                    Tenant::identity_word(self, y)?,
                );
                if wx != wy {
                    forwarded.insert(wx, y);
                }
            }
        }
        let Some(quota) = self.quota() else {
            return Ok(());
        };
        // Objects of the pairs already copied (or made forwarders) by an earlier step.
        let mut done: FxHashSet<Word> = FxHashSet::default();
        let (mut now, mut peak) = (0i128, 0i128);
        for &(x, y) in pairs {
            let (wx, wy) = (
                Tenant::identity_word(self, x)?,
                Tenant::identity_word(self, y)?,
            );
            if wx == wy {
                continue;
            }
            if two_way {
                for (v, w) in [(x, wx), (y, wy)] {
                    if w.as_base().is_some() && done.insert(w) {
                        now += i128::from(Tenant::charge_of(Tenant::size(self, v)?));
                    }
                }
            } else {
                if done.insert(wx) {
                    now += if wx.as_base().is_some() {
                        i128::from(Tenant::FORWARDER_CHARGE)
                    } else {
                        // A private source's body gives way to a forwarder.
                        i128::from(Tenant::FORWARDER_CHARGE)
                            - i128::from(Tenant::charge_of(Tenant::size(self, x)?))
                    };
                }
                peak = peak.max(now);
                // Only a hash write copies a base target.
                if copy_hash && wy.as_base().is_some() && done.insert(wy) {
                    now += i128::from(Tenant::charge_of(Tenant::size(self, y)?));
                }
            }
            peak = peak.max(now);
        }
        let needed = u64::try_from(peak).unwrap_or(u64::MAX);
        let used = self.stats().private_bytes;
        if needed > 0 && used.saturating_add(needed) > quota {
            return Err(cowheap_tenants::Error::QuotaExceeded {
                quota,
                used,
                needed,
            });
        }
        Ok(())
    }
    fn root(&self, name: &str) -> Option<Value> {
        Tenant::root(self, name)
    }
    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()> {
        Tenant::set_root(self, name, v)
    }
    fn remove_root(&mut self, name: &str) {
        Tenant::remove_root(self, name);
    }
    fn private_bytes(&self) -> u64 {
        self.stats().private_bytes
    }
    fn collect(&mut self, roots: &[Value], weak: &WeakSlots) -> MemResult<Collected> {
        let handles = roots
            .iter()
            .map(|&v| self.pin(v))
            .collect::<MemResult<Vec<_>>>()?;
        // A mark the allocator refuses frees nothing; the handles come off either way.
        let strong = |t: &Tenant, class: Value| weak.strong_slots(t, class);
        let mut mourners = Vec::new();
        let collected = Tenant::try_collect_ephemerons(
            self,
            &Weakness {
                nil: weak.nil,
                strong_slots: &strong,
            },
            &mut mourners,
        );
        for h in handles {
            self.unpin(h)?;
        }
        let out = collected?;
        // The fired ephemerons first, then the weak objects a slot of which was cleared.
        let weak_mourners = mourners.split_off(mourners.len().min(out.fired as usize));
        Ok(Collected {
            private_bytes: self.stats().private_bytes,
            cleared: out.cleared,
            mourners,
            weak_mourners,
        })
    }
    /// The base objects in index order, those its version's commits added included (each
    /// read through the tenant: its copy where it has one; one a one-way become forwarded
    /// elsewhere is left out, as the object it now leads to is listed where that one is,
    /// under its own base object or among the tenant's own, as the flat heap lists it; a
    /// hidden Spur object is left out), then [`Tenant::private_objects`]. Time: O(base
    /// objects + private keys).
    fn enumerate_objects(&self, out: &mut Vec<Value>) -> MemResult<()> {
        out.clear();
        // What stands for each base object the tenant holds a body of its own for.
        let own: FxHashMap<Word, Value> =
            self.own_copies().map(|(b, now)| (b.word(), now)).collect();
        // Every diverted base object: those not in `own` were forwarded by a become.
        let diverted: FxHashSet<Word> = self.copies().map(|(b, _)| b.word()).collect();
        // The version's objects: the heap's, then those its commits added.
        let n = u32::try_from(self.base().len()).unwrap_or(u32::MAX);
        out.reserve(n as usize + own.len());
        for x in 0..n {
            let v = Value::base(ObjectIndex::from_u32(x));
            // A hidden Spur object is none of the image's: never answered.
            if hidden(self.base().object(ObjectIndex::from_u32(x))?.aux) {
                continue;
            }
            match own.get(&v.word()) {
                Some(&now) => out.push(now),
                None if diverted.contains(&v.word()) => {}
                None => out.push(v),
            }
        }
        out.extend(self.private_objects());
        Ok(())
    }
    /// [`Tenant::set_class`]: the class word rewritten in place (the first write to a base
    /// object copies it, as any write does).
    fn set_class(&mut self, obj: Value, class: Value) -> MemResult<()> {
        Tenant::set_class(self, obj, class)
    }
    fn set_identity_hash(&mut self, obj: Value, hash: u32) -> MemResult<()> {
        Tenant::set_identity_hash(self, obj, hash)
    }
    #[inline(always)]
    fn identity_key(&self, v: Value) -> MemResult<u64> {
        Ok(Tenant::identity_word(self, v)?.bits())
    }
    fn has_fault_handler(&self) -> bool {
        Tenant::has_fault_handler(self)
    }
    /// [`Tenant::fault_in`]: the tenant's fault handler.
    fn fault_in(&mut self, segment: u64) -> MemResult<()> {
        Tenant::fault_in(self, segment)
    }
    /// [`Tenant::set_stub_views`], turned the other way.
    fn set_reads_fault(&mut self, on: bool) -> bool {
        !Tenant::set_stub_views(self, !on)
    }
}

/// True for the auxiliary bits of a hidden Spur object (its class index a pun): one no
/// walk of the image's objects answers.
pub(crate) fn hidden(aux: u32) -> bool {
    cowheap_squeak::auxbits::Aux::decode(aux).is_hidden()
}
