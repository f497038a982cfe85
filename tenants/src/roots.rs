//! What keeps private objects alive: named roots and pinned handles.

use crate::{Error, Result, Tenant};
use cowheap_heap::{TenantId, Value, Word};
use slab::Slab;

/// A pinned reference: a root of its tenant until [`Tenant::unpin`].
///
/// A handle is a versioned key: it names its tenant and a generation, so a handle used after
/// it was unpinned, or in another tenant, is refused ([`Error::StaleHandle`],
/// [`Error::ForeignReference`]) rather than read as whatever reused its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    tenant: TenantId,
    key: u32,
    generation: u32,
}

/// Pinned words with versioned keys.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    slab: Slab<Word>,
    gens: Vec<u32>,
}

impl Handles {
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<(usize, Word)>() + self.gens.capacity() * 4
    }

    /// Every pinned word, mutably (collection patches them).
    pub(crate) fn words_mut(&mut self) -> impl Iterator<Item = &mut Word> {
        self.slab.iter_mut().map(|(_, w)| w)
    }

    fn live(&self, h: &Handle) -> bool {
        self.gens.get(h.key as usize) == Some(&h.generation) && self.slab.contains(h.key as usize)
    }
}

impl Tenant {
    /// Pins `v`: it stays alive (through collections) until unpinned. Time: O(1).
    pub fn pin(&mut self, v: Value) -> Result<Handle> {
        let w = self.store_word(v)?;
        let key = self.handles.slab.insert(w);
        if key >= self.handles.gens.len() {
            self.handles.gens.resize(key + 1, 0);
        }
        Ok(Handle {
            tenant: self.id,
            key: key as u32,
            generation: self.handles.gens[key],
        })
    }

    fn check_handle(&self, h: &Handle) -> Result<()> {
        if h.tenant != self.id {
            return Err(Error::ForeignReference {
                value: Word::from_bits(0),
                owner: Some(h.tenant),
                tenant: self.id,
            });
        }
        if !self.handles.live(h) {
            return Err(Error::StaleHandle);
        }
        Ok(())
    }

    /// What `h` refers to now (after any become). Time: O(1).
    pub fn pinned(&mut self, h: Handle) -> Result<Value> {
        self.check_handle(&h)?;
        let w = self.handles.slab[h.key as usize];
        let w = if w.is_ref() {
            let fin = self.locate_word(w)?.word();
            self.handles.slab[h.key as usize] = fin;
            fin
        } else {
            w
        };
        Ok(Value::owned(w, self.id))
    }

    /// Unpins `h` and returns what it referred to. Using `h` again is an error. Time: O(1).
    pub fn unpin(&mut self, h: Handle) -> Result<Value> {
        let v = self.pinned(h)?;
        self.handles.slab.remove(h.key as usize);
        let g = &mut self.handles.gens[h.key as usize];
        *g = g.wrapping_add(1);
        Ok(v)
    }

    /// Number of pinned handles.
    pub fn pinned_count(&self) -> usize {
        self.handles.slab.len()
    }

    /// Names `v` as a root of this tenant, replacing any root of that name. A tenant root
    /// hides a base root of the same name. Time: O(log roots).
    pub fn set_root(&mut self, name: &str, v: Value) -> Result<()> {
        let w = self.store_word(v)?;
        self.roots.insert(name.to_owned(), w);
        Ok(())
    }

    /// The root named `name`: this tenant's own, else the base's. Time: O(log roots + base
    /// roots).
    pub fn root(&self, name: &str) -> Option<Value> {
        match self.roots.get(name) {
            Some(&w) => Some(Value::owned(w, self.id)),
            None => self.base.heap().root(name),
        }
    }

    /// Removes this tenant's root `name` and returns it (a base root is never removed).
    pub fn remove_root(&mut self, name: &str) -> Option<Value> {
        self.roots.remove(name).map(|w| Value::owned(w, self.id))
    }

    /// This tenant's own root names, sorted.
    pub fn root_names(&self) -> impl Iterator<Item = &str> {
        self.roots.keys().map(String::as_str)
    }
}
