//! The naive alternative: every tenant a full deep copy of the base.
//!
//! Forking copies the whole base (its words and offsets), so a tenant costs the base's size
//! however little it writes; reads and writes are as cheap as on the plain heap. The bench
//! runs a sample of such tenants, since a thousand copies of a large base do not fit.
//!
//! ```
//! use cowheap_bench::Approach;
//! use cowheap_bench::deep_copy::DeepCopy;
//!
//! let base = cowheap::synth::image(2_000, 1);
//! let copies = DeepCopy::of(&base).unwrap();
//! let x = base.root("Smalltalk").unwrap().as_base().unwrap();
//! let (mut a, mut b) = (copies.fork().unwrap(), copies.fork().unwrap());
//! copies.write(&mut a, x, 0, 5).unwrap();
//! assert_eq!(copies.read(&mut a, x, 0).unwrap().as_int(), Some(5));
//! assert_ne!(copies.read(&mut b, x, 0).unwrap().as_int(), Some(5));
//! ```

use super::Result;
use super::approach::Approach;
use super::plain::FlatHeap;
use cowheap::heap::{BaseHeap, ObjectIndex, Word};

/// A deep copy per tenant; the copies are made from one plain copy of the base.
#[derive(Debug)]
pub struct DeepCopy {
    original: FlatHeap,
}

impl DeepCopy {
    /// Copies of `base`. Time: O(size of the base).
    pub fn of(base: &BaseHeap) -> Result<DeepCopy> {
        Ok(DeepCopy {
            original: FlatHeap::of(base)?,
        })
    }

    /// Bytes of one copy.
    pub fn copy_bytes(&self) -> usize {
        self.original.memory_bytes()
    }
}

impl Approach for DeepCopy {
    type Tenant = FlatHeap;

    /// A full copy. Time: O(size of the base).
    fn fork(&self) -> Result<FlatHeap> {
        Ok(self.original.clone())
    }

    #[inline]
    fn read(&self, tenant: &mut FlatHeap, object: ObjectIndex, slot: u32) -> Result<Word> {
        tenant.read(object, slot as usize).map(Word::from_bits)
    }

    #[inline]
    fn write(
        &self,
        tenant: &mut FlatHeap,
        object: ObjectIndex,
        slot: u32,
        value: i64,
    ) -> Result<()> {
        tenant.write(object, slot as usize, value)
    }
}
