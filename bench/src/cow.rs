//! The product: cowheap tenants on one shared base.
//!
//! A tenant is a [`Tenant`] forked from the base in O(1) without allocating. Reads of objects
//! no tenant has diverted cost one test of the shared mark; a first write copies one object.
//!
//! ```
//! use cowheap_bench::Approach;
//! use cowheap_bench::cow::Cowheap;
//!
//! let heap = Cowheap::new(cowheap::Base::new(cowheap::synth::image(2_000, 1)));
//! let x = heap.base().heap().root("Smalltalk").unwrap().as_base().unwrap();
//! let (mut a, mut b) = (heap.fork().unwrap(), heap.fork().unwrap());
//! heap.write(&mut a, x, 0, 5).unwrap();
//! assert_eq!(heap.read(&mut a, x, 0).unwrap().as_int(), Some(5));
//! assert_ne!(heap.read(&mut b, x, 0).unwrap().as_int(), Some(5));
//! ```

use super::approach::Approach;
use super::workload::{Op, checksum_of};
use super::{Error, Result};
use cowheap::forwarders::Base;
use cowheap::heap::{BaseHeap, ObjectIndex, Value, Word};
use cowheap::tenants::Tenant;
use std::sync::Arc;

/// cowheap as a comparator: each tenant a [`Tenant`] of one [`Base`].
#[derive(Debug)]
pub struct Cowheap {
    base: Arc<Base>,
}

impl Cowheap {
    /// Tenants of `base`.
    pub fn new(base: Arc<Base>) -> Cowheap {
        Cowheap { base }
    }

    /// The base.
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }
}

impl Approach for Cowheap {
    type Tenant = Tenant;

    fn fork(&self) -> Result<Tenant> {
        Ok(Tenant::fork(&self.base))
    }

    #[inline]
    fn read(&self, tenant: &mut Tenant, object: ObjectIndex, slot: u32) -> Result<Word> {
        Ok(tenant.slot(Value::base(object), slot as usize)?.word())
    }

    /// The run through one [`cowheap::tenants::TenantReader`], so that the loop keeps the
    /// tenant's read fields in its own registers and frame rather than loading them from the
    /// tenant at every read.
    fn reads(&self, tenant: &mut Tenant, ops: &[Op]) -> Result<u64> {
        let reader = tenant.reader();
        let mut sum = 0u64;
        for &op in ops {
            if let Op::Read { object, slot } = op {
                let w = reader.slot(Value::base(object), slot as usize)?.word();
                sum = sum.wrapping_add(checksum_of(w));
            }
        }
        Ok(sum)
    }

    #[inline]
    fn write(&self, tenant: &mut Tenant, object: ObjectIndex, slot: u32, value: i64) -> Result<()> {
        Ok(tenant.set_slot(Value::base(object), slot as usize, Value::int(value))?)
    }
}

/// Reads straight from the base heap, with no tenant: not a comparator but a yardstick. Set
/// beside cowheap's reads of undiverted objects, it shows what the tenant adds to the base
/// heap's own read path. It cannot write.
///
/// ```
/// use cowheap_bench::Approach;
/// use cowheap_bench::cow::BaseReads;
///
/// let base = cowheap::synth::image(2_000, 1);
/// let x = base.root("Smalltalk").unwrap().as_base().unwrap();
/// let reads = BaseReads(&base);
/// assert!(reads.read(&mut (), x, 0).is_ok());
/// assert!(reads.write(&mut (), x, 0, 1).is_err());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BaseReads<'a>(pub &'a BaseHeap);

impl Approach for BaseReads<'_> {
    type Tenant = ();

    fn fork(&self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn read(&self, _: &mut (), object: ObjectIndex, slot: u32) -> Result<Word> {
        Ok(self.0.slot_word(object, slot as usize)?)
    }

    fn write(&self, _: &mut (), object: ObjectIndex, slot: u32, _: i64) -> Result<()> {
        Err(Error::OutOfRange {
            object: object.get() as u64,
            slot: u64::from(slot),
        })
    }
}
