//! cowheap: a copy-on-write multi-tenant object heap.
//!
//! A *base heap* of objects (a Smalltalk image, say) is built or loaded once and frozen.
//! Any number of *tenants* (client images) fork from it in O(1). A tenant reads the base in
//! place; its first write to a base object copies that one object into the tenant, and the
//! base object becomes a *conditional forwarder* that each tenant resolves through its own
//! indirection table. References in the tenant's own objects are patched to the copy the
//! first time they are read (lazy become), so the lookup is paid once per reference.
//!
//! This crate re-exports the three layers:
//! - [`heap`]: words and values, object formats, the builder and the frozen [`BaseHeap`];
//! - [`forwarders`]: the diverted marks, indirection tables and the [`Base`] tenants fork from;
//! - [`tenants`]: [`Tenant`] (copy-on-first-write, allocation, become, collection, quotas,
//!   handles) and the thread-shared [`Registry`].
//!
//! and holds [`bench`](mod@bench), the machinery of `cowheap bench`: one workload run on cowheap and on
//! its alternatives (a plain heap, deep copies, `fork()`, a persistent vector), side by side.
//!
//! ```
//! use cowheap::{synth, Base, Format, ObjectSize, Tenant, Value};
//!
//! let base = Base::new(synth::image(10_000, 42));
//! let globals = base.heap().root("Smalltalk").unwrap();
//! let mut alice = Tenant::fork(&base);
//! let mut bob = Tenant::fork(&base);
//!
//! // Alice's first write copies one object; Bob and the base still see the original.
//! let before = bob.slot(globals, 0).unwrap();
//! alice.set_slot(globals, 0, Value::int(1)).unwrap();
//! assert_eq!(alice.slot(globals, 0).unwrap().as_int(), Some(1));
//! let now = bob.slot(globals, 0).unwrap();
//! assert!(bob.identical(now, before).unwrap());
//!
//! // The copy keeps the identity and identity hash of the base object.
//! assert_eq!(alice.identity_hash(globals).unwrap(), bob.identity_hash(globals).unwrap());
//!
//! // New objects live in the tenant; references to them never leave it.
//! let class = alice.class_of(globals).unwrap();
//! let mine = alice.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 }).unwrap();
//! assert!(bob.slot(mine, 0).is_err());
//! assert_eq!(alice.stats().copies, 1);
//! ```
// Unsafe code is denied, and allowed, with its reason, only in `bench::alloc` (a global
// allocator) and `bench::fork` (fork() and friends).
#![deny(unsafe_code)]

pub mod bench;

pub use cowheap_forwarders as forwarders;
pub use cowheap_heap as heap;
pub use cowheap_squeak as squeak;
pub use cowheap_tenants as tenants;

pub use cowheap_forwarders::{Base, MarkPolicy};
pub use cowheap_heap::{
    BaseHeap, Builder, Format, ObjectIndex, ObjectSize, TenantId, Value, Word, synth,
};
pub use cowheap_tenants::{
    CollectStats, Error, Handle, Registry, Result, Tenant, TenantConfig, TenantStats, par_each,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
