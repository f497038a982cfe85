//! A tenant's private space: copies of base objects and new objects, in a slab.

#![warn(clippy::cast_possible_truncation)]

use crate::slab::{SlabKey, VersionedSlab};
use crate::tenant::try_vec;
use crate::{Error, Result};
use cowheap_forwarders::Forwarding;
use cowheap_heap::{Format, ObjectSize, ObjectView, PrivateKey, Word};
use std::cell::Cell;

/// The body of a private object.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub(crate) class: Word,
    pub(crate) format: Format,
    pub(crate) hash: u32,
    /// Pointer slots. Cells, so that a read through `&Tenant` can patch a slot that holds a
    /// forwarder (lazy become).
    pub(crate) slots: Box<[Cell<Word>]>,
    pub(crate) bytes: Box<[u8]>,
}

impl Body {
    /// A copy of a base object, its memory reserved fallibly.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the allocator refuses.
    pub(crate) fn try_copy_of(view: &ObjectView<'_>) -> Result<Body> {
        // A base holds no private reference and no invalid word (the builder and
        // verification refuse them); a base opened without verification might, and copied
        // into the tenant such a word would name one of the tenant's own objects.
        if let Some(&w) = view
            .slots
            .iter()
            .find(|w| !(w.is_base() || w.is_immediate()))
        {
            return Err(cowheap_heap::Error::InvalidWord(w).into());
        }
        let mut slots = try_vec(Cell::new(Word::from_bits(1)), view.slots.len())?;
        for (c, &w) in slots.iter_mut().zip(view.slots.iter()) {
            c.set(w);
        }
        let mut bytes = try_vec(0u8, view.bytes.len())?;
        bytes.copy_from_slice(view.bytes);
        Ok(Body {
            class: view.class,
            format: view.format,
            hash: view.hash,
            slots: slots.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        })
    }

    pub(crate) fn size(&self) -> ObjectSize {
        ObjectSize {
            slots: self.slots.len(),
            bytes: self.bytes.len(),
        }
    }
}

/// A slot of the private space. An entry that stands for a diverted base object is named
/// by the indirection table and lives as long as the tenant.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) state: Forwarding<Body>,
}

/// Bytes an entry is charged beyond its slots and bytes: its place in the slab's dense store
/// and its index record (generation and link).
pub(crate) const ENTRY_OVERHEAD: u64 =
    (VersionedSlab::<Entry>::VALUE_BYTES + VersionedSlab::<Entry>::RECORD_BYTES) as u64;

/// Bytes an object of `size` is charged.
pub(crate) fn cost(size: ObjectSize) -> u64 {
    let slots = u64::try_from(size.slots).unwrap_or(u64::MAX);
    let bytes = u64::try_from(size.bytes).unwrap_or(u64::MAX);
    ENTRY_OVERHEAD
        .saturating_add(slots.saturating_mul(8))
        .saturating_add(bytes)
}

/// Bytes `entry` is charged.
pub(crate) fn entry_cost(entry: &Entry) -> u64 {
    match &entry.state {
        Forwarding::Object(b) => cost(b.size()),
        Forwarding::Forwarded(_) => ENTRY_OVERHEAD,
    }
}

fn slab_key(k: PrivateKey) -> SlabKey {
    SlabKey::new(k.key(), k.generation())
}

fn private_key(k: SlabKey) -> PrivateKey {
    PrivateKey::new(k.index(), k.generation())
}

/// Proof that an object is private and may be written: a live `Object` entry of the private
/// space. The space hands one out only for its own entries, and a base object has none until
/// [`crate::Tenant::writable`] has copied it (the first write), so holding a `Writable` proves
/// the copy was made. It is the only way to a mutable body and to an entry's state changes.
#[derive(Debug)]
pub(crate) struct Writable<'a> {
    /// Invariant: `Forwarding::Object`.
    state: &'a mut Forwarding<Body>,
}

impl<'a> Writable<'a> {
    fn new(state: &'a mut Forwarding<Body>) -> Option<Writable<'a>> {
        state.body().is_some().then_some(Writable { state })
    }

    /// The body, to write.
    pub(crate) fn body(&mut self) -> &mut Body {
        match self.state {
            Forwarding::Object(b) => b,
            // The constructor admits objects only, and nothing here changes the state
            // without consuming the witness.
            Forwarding::Forwarded(_) => unreachable!("a Writable always names an object"),
        }
    }

    /// Turns the object into a forwarder to `target` (one-way become) and returns its body.
    pub(crate) fn forward(self, target: Word) -> Body {
        self.state.forward(target)
    }

    /// Exchanges the bodies of two objects (two-way become).
    pub(crate) fn swap(a: Writable<'_>, b: Writable<'_>) {
        std::mem::swap(a.state, b.state);
    }
}

/// Private entries under versioned keys ([`VersionedSlab`]).
#[derive(Debug, Default)]
pub(crate) struct Space {
    slab: VersionedSlab<Entry>,
    /// How many entries are forwarders. While none is, no private reference needs patching,
    /// and the read path does not look at the entry a private slot names.
    forwarders: usize,
}

impl Space {
    /// A space holding `entries` at their keys; every other key below `bound` is retired at
    /// the generation `generation_of` gives it. Memory: 8 bytes per key below `bound`, plus
    /// the entries. Time: O(bound + entries).
    ///
    /// # Errors
    /// [`Error::KeysExhausted`] if a key is not below `bound`, two entries share one, or
    /// `bound` passes the key space.
    pub(crate) fn from_parts(
        entries: impl IntoIterator<Item = (u32, Entry)>,
        bound: usize,
        generation_of: impl Fn(u32) -> u32,
    ) -> Result<Space> {
        let slab = VersionedSlab::from_parts(bound, generation_of, entries).map_err(|_| {
            Error::KeysExhausted {
                what: "private objects",
            }
        })?;
        let forwarders = slab
            .iter()
            .filter(|(_, e)| e.state.target().is_some())
            .count();
        Ok(Space { slab, forwarders })
    }

    /// True if some entry is a forwarder: a private reference may then need patching.
    #[inline(always)]
    pub(crate) fn has_forwarders(&self) -> bool {
        self.forwarders != 0
    }

    /// Counts an object just turned into a forwarder ([`Writable::forward`]).
    pub(crate) fn count_forwarder(&mut self) {
        self.forwarders += 1;
    }

    /// Live entries with their keys, in key order. Time: O(keys ever used).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PrivateKey, &Entry)> + '_ {
        self.slab.iter().map(|(k, e)| (private_key(k), e))
    }

    /// The generation of every key ever handed out, in key order.
    pub(crate) fn gens(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.slab.generations()
    }

    /// Inserts an entry and returns its versioned key. Time: O(1) amortized.
    ///
    /// # Errors
    /// [`Error::KeysExhausted`] when no key is left; nothing changes.
    pub(crate) fn insert(&mut self, entry: Entry) -> Result<PrivateKey> {
        let forwarder = usize::from(entry.state.target().is_some());
        let k = self
            .slab
            .insert(entry)
            .map(private_key)
            .map_err(|_| Error::KeysExhausted {
                what: "private objects",
            })?;
        self.forwarders += forwarder;
        Ok(k)
    }

    /// [`Error::KeysExhausted`] unless `n` more entries can be inserted; then no `insert`
    /// before them can fail for want of a key. Time: O(1).
    pub(crate) fn reserve_keys(&self, n: usize) -> Result<()> {
        if self.slab.has_room(n) {
            Ok(())
        } else {
            Err(Error::KeysExhausted {
                what: "private objects",
            })
        }
    }

    /// The entry `k` names, if it is alive and of the same generation.
    #[inline]
    pub(crate) fn get(&self, k: PrivateKey) -> Option<&Entry> {
        self.slab.get(slab_key(k))
    }

    /// The object `k` names, to write, if it is a live object (not a forwarder).
    pub(crate) fn writable(&mut self, k: PrivateKey) -> Option<Writable<'_>> {
        Writable::new(&mut self.slab.get_mut(slab_key(k))?.state)
    }

    /// Two distinct live objects, to write.
    pub(crate) fn writable_pair(
        &mut self,
        a: PrivateKey,
        b: PrivateKey,
    ) -> Option<(Writable<'_>, Writable<'_>)> {
        let (ea, eb) = self.slab.get2_mut(slab_key(a), slab_key(b))?;
        Some((Writable::new(&mut ea.state)?, Writable::new(&mut eb.state)?))
    }

    /// The current key of raw index `i`, if it is live.
    pub(crate) fn key_of(&self, i: u32) -> Option<PrivateKey> {
        self.slab.key_at(i).map(private_key)
    }

    /// Frees the entry `k` names and retires its generation.
    pub(crate) fn remove(&mut self, k: PrivateKey) -> Option<Entry> {
        let e = self.slab.remove(slab_key(k))?;
        if e.state.target().is_some() {
            self.forwarders -= 1;
        }
        Some(e)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// One past the largest key ever handed out.
    pub(crate) fn key_bound(&self) -> usize {
        self.slab.bound()
    }

    /// Heap bytes held by the slab (records and the dense store of entries).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slab.memory_bytes()
    }
}
