//! The object-memory trait the interpreter runs on, and its implementation by a tenant.
//!
//! The trait is about the size of what a VM's primitives need (fetch and store a slot or
//! bytes, class, size, format, instantiate, identity), plus the two things an embedder's
//! memory has to do for the interpreter: keep named roots and collect garbage with the
//! interpreter's registers as extra roots. The interpreter is generic over it, so each
//! implementation gets its own monomorphised copy of the dispatch loop: no `dyn` call per
//! bytecode.

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;

/// The result of a memory operation: the tenant's error type, which also carries the heap's.
pub type MemResult<T> = Result<T, cowheap_tenants::Error>;

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
    /// The raw bytes of `obj`.
    fn bytes(&self, obj: Value) -> MemResult<&[u8]>;
    /// Writes `data` into the raw bytes of `obj` from `offset`.
    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()>;
    /// The size of `obj`.
    fn size(&self, obj: Value) -> MemResult<ObjectSize>;
    /// The format of `obj`.
    fn format(&self, obj: Value) -> MemResult<Format>;
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
    /// The root named `name` (the memory's own, else the base's).
    fn root(&self, name: &str) -> Option<Value>;
    /// Names `v` as a root.
    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()>;
    /// Removes the root named `name`.
    fn remove_root(&mut self, name: &str);
    /// Bytes this memory has allocated of its own (a tenant's private bytes); what the
    /// interpreter's collection threshold is measured in.
    fn private_bytes(&self) -> u64;
    /// Collects garbage, keeping alive what the memory's roots reach and `roots`. Objects
    /// do not move: the values in `roots` stay valid. Answers the private bytes after.
    fn collect(&mut self, roots: &[Value]) -> MemResult<u64>;
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
    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value> {
        Tenant::alloc(self, class, format, size)
    }
    #[inline(always)]
    fn identical(&self, a: Value, b: Value) -> MemResult<bool> {
        Tenant::identical(self, a, b)
    }
    fn identity_hash(&self, obj: Value) -> MemResult<u32> {
        Tenant::identity_hash(self, obj)
    }
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()> {
        Tenant::become_forward(self, a, b)
    }
    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()> {
        Tenant::become_two_way(self, a, b)
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
    fn collect(&mut self, roots: &[Value]) -> MemResult<u64> {
        let handles = roots
            .iter()
            .map(|&v| self.pin(v))
            .collect::<MemResult<Vec<_>>>()?;
        Tenant::collect(self);
        for h in handles {
            self.unpin(h)?;
        }
        Ok(self.stats().private_bytes)
    }
}
