//! A tenant's private space: copies of base objects and new objects, in a slab.

use cowheap_forwarders::Forwarding;
use cowheap_heap::{Format, ObjectSize, ObjectView, PrivateKey, Word};
use slab::Slab;
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
    pub(crate) fn copy_of(view: &ObjectView<'_>) -> Body {
        Body {
            class: view.class,
            format: view.format,
            hash: view.hash,
            slots: view.slots.iter().map(|&w| Cell::new(w)).collect(),
            bytes: view.bytes.into(),
        }
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

/// Size of one slab slot: the entry and, at most, the slab's vacant/occupied tag.
const SLAB_SLOT: usize = std::mem::size_of::<(usize, Entry)>();

/// Bytes an entry is charged beyond its slots and bytes: the slab slot and its generation.
pub(crate) const ENTRY_OVERHEAD: u64 = (SLAB_SLOT + 4) as u64;

/// Bytes an object of `size` is charged.
pub(crate) fn cost(size: ObjectSize) -> u64 {
    ENTRY_OVERHEAD + size.slots as u64 * 8 + size.bytes as u64
}

/// Private entries with versioned keys.
///
/// Invariant: every key the slab has handed out has a generation in `gens`; a key's
/// generation changes when its entry is freed, so a reference made before is refused after.
#[derive(Debug, Default)]
pub(crate) struct Space {
    slab: Slab<Entry>,
    gens: Vec<u32>,
}

impl Space {
    /// A space holding `entries` at their keys, with generations `gens`. The caller has
    /// checked that every key is below `gens.len()` and appears once.
    pub(crate) fn from_parts(entries: Vec<(usize, Entry)>, gens: Vec<u32>) -> Space {
        Space {
            slab: entries.into_iter().collect(),
            gens,
        }
    }

    /// Live entries with their keys, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PrivateKey, &Entry)> + '_ {
        self.slab
            .iter()
            .map(|(k, e)| (PrivateKey::new(k as u32, self.gens[k]), e))
    }

    /// The generation of every key ever handed out.
    pub(crate) fn gens(&self) -> &[u32] {
        &self.gens
    }

    /// Inserts an entry and returns its versioned key.
    pub(crate) fn insert(&mut self, entry: Entry) -> PrivateKey {
        let key = self.slab.insert(entry);
        if key >= self.gens.len() {
            self.gens.resize(key + 1, 0);
        }
        PrivateKey::new(key as u32, self.gens[key])
    }

    /// The entry `k` names, if it is alive and of the same generation.
    #[inline]
    pub(crate) fn get(&self, k: PrivateKey) -> Option<&Entry> {
        let i = k.key() as usize;
        match self.gens.get(i) {
            Some(&g) if g == k.generation() => self.slab.get(i),
            _ => None,
        }
    }

    /// The entry `k` names, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, k: PrivateKey) -> Option<&mut Entry> {
        let i = k.key() as usize;
        match self.gens.get(i) {
            Some(&g) if g == k.generation() => self.slab.get_mut(i),
            _ => None,
        }
    }

    /// The entry at raw key `i` (for collection and snapshots).
    pub(crate) fn by_index_mut(&mut self, i: u32) -> Option<&mut Entry> {
        self.slab.get_mut(i as usize)
    }

    /// Two distinct live entries, mutably.
    pub(crate) fn get2_mut(&mut self, a: u32, b: u32) -> Option<(&mut Entry, &mut Entry)> {
        self.slab.get2_mut(a as usize, b as usize)
    }

    /// The current key of raw index `i`.
    pub(crate) fn key_of(&self, i: u32) -> PrivateKey {
        PrivateKey::new(i, self.gens.get(i as usize).copied().unwrap_or(0))
    }

    /// Frees entry `i` and retires its generation.
    pub(crate) fn remove(&mut self, i: u32) -> Option<Entry> {
        let e = self.slab.try_remove(i as usize)?;
        let g = &mut self.gens[i as usize];
        *g = PrivateKey::new(i, g.wrapping_add(1)).generation();
        Some(e)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// One past the largest key ever handed out.
    pub(crate) fn key_bound(&self) -> usize {
        self.gens.len()
    }

    /// Raw keys of live entries.
    pub(crate) fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.slab.iter().map(|(k, _)| k as u32)
    }

    /// Heap bytes held by the slab and the generations.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slab.capacity() * SLAB_SLOT + self.gens.capacity() * 4
    }
}
