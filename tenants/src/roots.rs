//! What keeps private objects alive: named roots and pinned handles.
#![warn(clippy::cast_possible_truncation)]

use crate::slab::{SlabKey, VersionedSlab};
use crate::{Error, Result, Tenant};
use cowheap_heap::{TenantId, Value, Word};

/// A pinned reference: a root of its tenant until [`Tenant::unpin`].
///
/// A handle is a versioned key: it names its tenant and a generation, so a handle used after
/// it was unpinned, or in another tenant, is refused ([`Error::StaleHandle`],
/// [`Error::ForeignReference`]) rather than read as whatever reused its slot. It also keeps
/// the word it was pinned with, so that an error about it can name the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    tenant: TenantId,
    key: SlabKey,
    /// The object as pinned (the tenant's current view may differ after a become).
    pinned: Word,
}

/// Pinned words under versioned keys ([`VersionedSlab`]).
#[derive(Debug, Default)]
pub(crate) struct Handles {
    slab: VersionedSlab<Word>,
}

impl Handles {
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slab.memory_bytes()
    }

    /// Unpins every handle, retiring each key's generation: a handle held past this is
    /// refused, never read as whatever reuses its slot.
    pub(crate) fn clear(&mut self) {
        let keys: Vec<SlabKey> = self.slab.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.slab.remove(k);
        }
    }

    /// The number of pinned words.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Every pinned word, mutably (collection patches them).
    pub(crate) fn words_mut(&mut self) -> impl Iterator<Item = &mut Word> {
        self.slab.values_mut()
    }
}

impl Tenant {
    /// Pins `v`: it stays alive (through collections) until unpinned. Time: O(1) amortized.
    ///
    /// # Errors
    /// As [`Tenant::set_root`]; [`Error::KeysExhausted`] past `u32::MAX - 1` handles.
    pub fn pin(&mut self, v: Value) -> Result<Handle> {
        let w = self.store_word(v)?;
        let key = self
            .cold_mut()
            .handles
            .slab
            .insert(w)
            .map_err(|_| Error::KeysExhausted { what: "handles" })?;
        Ok(Handle {
            tenant: self.id,
            key,
            pinned: w,
        })
    }

    /// The live handle's key.
    fn check_handle(&self, h: &Handle) -> Result<SlabKey> {
        if h.tenant != self.id {
            return Err(Error::ForeignReference {
                value: h.pinned,
                owner: Some(h.tenant),
                tenant: self.id,
            });
        }
        match self.handles().and_then(|hs| hs.slab.get(h.key)) {
            Some(_) => Ok(h.key),
            None => Err(Error::StaleHandle),
        }
    }

    /// What `h` refers to now (after any become). Time: O(1).
    pub fn pinned(&mut self, h: Handle) -> Result<Value> {
        let v = self.pinned_value(h)?;
        // The handle keeps where a become led it, so the next look needs no forwarder.
        let key = self.check_handle(&h)?;
        if let Some(slot) = self.cold_mut().handles.slab.get_mut(key) {
            *slot = v.word();
        }
        Ok(v)
    }

    /// What `h` refers to now, as [`Tenant::pinned`] answers it, by `&self` (the handle
    /// keeps the word it holds; `pinned` writes back where a become led it). Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::pinned`].
    pub fn pinned_value(&self, h: Handle) -> Result<Value> {
        let key = self.check_handle(&h)?;
        let w = self
            .handles()
            .and_then(|hs| hs.slab.get(key))
            .copied()
            .ok_or(Error::StaleHandle)?;
        let w = if w.is_ref() {
            self.locate_word(w)?.word()
        } else {
            w
        };
        Ok(Value::owned(w, self.id))
    }

    /// Unpins `h` and returns what it referred to. Using `h` again is an error. Time: O(1).
    pub fn unpin(&mut self, h: Handle) -> Result<Value> {
        let v = self.pinned(h)?;
        self.cold_mut().handles.slab.remove(h.key);
        Ok(v)
    }

    /// What every pinned handle refers to now (after any become), in no particular order:
    /// the objects handles keep alive, as roots of a walk over the tenant (a segment's
    /// extraction, say). Time: O(handles).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, ObjectSize};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    /// let v = t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
    /// t.pin(v).unwrap();
    /// let pinned: Vec<_> = t.pinned_objects().collect();
    /// assert!(pinned.len() == 1 && t.identical(pinned[0], v).unwrap());
    /// ```
    pub fn pinned_objects(&self) -> impl Iterator<Item = Value> + '_ {
        self.handles()
            .into_iter()
            .flat_map(|hs| hs.slab.iter().map(|(_, &w)| w))
            .map(|w| match w.is_ref() {
                true => self.locate_word(w).map_or(w, |l| l.word()),
                false => w,
            })
            .map(|w| Value::owned(w, self.id))
    }

    /// Number of pinned handles.
    pub fn pinned_count(&self) -> usize {
        self.handles().map_or(0, |hs| hs.slab.len())
    }

    /// Names `v` as a root of this tenant, replacing any root of that name. A tenant root
    /// hides a base root of the same name. Time: O(log roots).
    ///
    /// # Errors
    /// As [`Tenant::slot`] for a `v` that leads nowhere in this tenant;
    /// [`cowheap_heap::Error::TooLarge`] for a name of 2^32 bytes or more (snapshots hold a
    /// name's length in 32 bits).
    pub fn set_root(&mut self, name: &str, v: Value) -> Result<()> {
        if u32::try_from(name.len()).is_err() {
            return Err(cowheap_heap::Error::TooLarge("a root name of 2^32 bytes").into());
        }
        let w = self.store_word(v)?;
        self.cold_mut().roots.insert(name.to_owned(), w);
        Ok(())
    }

    /// The root named `name`: this tenant's own, else the base's. Time: O(log roots + base
    /// roots).
    pub fn root(&self, name: &str) -> Option<Value> {
        match self.roots_map().and_then(|r| r.get(name)) {
            Some(&w) => Some(Value::owned(w, self.id)),
            None => self.base.heap().root(name),
        }
    }

    /// Removes this tenant's root `name` and returns it (a base root is never removed).
    pub fn remove_root(&mut self, name: &str) -> Option<Value> {
        let w = self.cold.as_mut()?.roots.remove(name)?;
        Some(Value::owned(w, self.id))
    }

    /// This tenant's own root names, sorted.
    pub fn root_names(&self) -> impl Iterator<Item = &str> {
        self.roots_map()
            .into_iter()
            .flat_map(|r| r.keys().map(String::as_str))
    }
}
