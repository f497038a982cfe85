//! A persistent-structure heap: each tenant a clone of one persistent vector of objects.
//!
//! The base is an [`rpds::VectorSync`] (a 32-way trie whose nodes and elements are shared by
//! `Arc`) holding every object. A tenant is a clone of it: O(1). A write clones the object
//! and every trie node on the path to it that the tenant still shares, so its cost is one
//! object plus a few nodes of 32 pointers; a read walks the trie (four levels for a million
//! objects) where the other comparators index an array.
//!
//! ```
//! use cowheap_bench::Approach;
//! use cowheap_bench::rpds::Rpds;
//!
//! let base = cowheap::synth::image(2_000, 1);
//! let heap = Rpds::of(&base).unwrap();
//! let x = base.root("Smalltalk").unwrap().as_base().unwrap();
//! let (mut a, mut b) = (heap.fork().unwrap(), heap.fork().unwrap());
//! heap.write(&mut a, x, 0, 5).unwrap();
//! assert_eq!(heap.read(&mut a, x, 0).unwrap().as_int(), Some(5));
//! assert_ne!(heap.read(&mut b, x, 0).unwrap().as_int(), Some(5));
//! ```

use super::approach::Approach;
use super::plain::{encode, int_bits};
use super::{Error, Result};
use cowheap::heap::layout::{self, HEADER_WORDS, SIZE_WORD};
use cowheap::heap::{BaseHeap, ObjectIndex, Word};
use rpds::VectorSync;

/// One object: its header, pointer slots and raw bytes in one boxed slice of words.
#[derive(Clone, Debug)]
pub struct Object {
    words: Box<[u64]>,
}

impl Object {
    fn slots(&self) -> usize {
        layout::slot_count(self.words[SIZE_WORD])
    }
}

/// The persistent-vector heap; see the module doc.
#[derive(Debug)]
pub struct Rpds {
    base: VectorSync<Object>,
}

/// The error of a slot out of range.
#[cold]
fn out_of_range(object: ObjectIndex, slot: u32) -> Error {
    Error::OutOfRange {
        object: object.get() as u64,
        slot: u64::from(slot),
    }
}

impl Rpds {
    /// A persistent vector of the objects of `base`. Time: O(size of the base).
    pub fn of(base: &BaseHeap) -> Result<Rpds> {
        let mut v = VectorSync::new_sync();
        for x in base.indices() {
            let o = base.object(x)?;
            let mut words = Vec::with_capacity(layout::object_words(o.size()));
            encode(&o, &mut words)?;
            v.push_back_mut(Object {
                words: words.into_boxed_slice(),
            });
        }
        Ok(Rpds { base: v })
    }
}

impl Approach for Rpds {
    type Tenant = VectorSync<Object>;

    /// A clone of the base vector. Time: O(1).
    fn fork(&self) -> Result<VectorSync<Object>> {
        Ok(self.base.clone())
    }

    #[inline]
    fn read(
        &self,
        tenant: &mut VectorSync<Object>,
        object: ObjectIndex,
        slot: u32,
    ) -> Result<Word> {
        let o = tenant
            .get(object.get())
            .ok_or_else(|| out_of_range(object, slot))?;
        if (slot as usize) < o.slots() {
            Ok(Word::from_bits(o.words[HEADER_WORDS + slot as usize]))
        } else {
            Err(out_of_range(object, slot))
        }
    }

    /// Clones the object and the trie path to it on the tenant's first write there.
    #[inline]
    fn write(
        &self,
        tenant: &mut VectorSync<Object>,
        object: ObjectIndex,
        slot: u32,
        value: i64,
    ) -> Result<()> {
        // Check before `get_mut`, which would clone the path even for a refused write.
        self.read(tenant, object, slot)?;
        let o = tenant
            .get_mut(object.get())
            .ok_or_else(|| out_of_range(object, slot))?;
        o.words[HEADER_WORDS + slot as usize] = int_bits(value);
        Ok(())
    }
}
