//! cowheap: a copy-on-write multi-tenant object heap.
//!
//! A *base heap* of objects (a Smalltalk image, say) is built or loaded once and frozen.
//! Any number of *tenants* (client images) fork from it in O(1). A tenant reads the base in
//! place; its first write to a base object copies that one object into the tenant, and the
//! base object becomes a *conditional forwarder* that each tenant resolves through its own
//! indirection table. References in the tenant's own objects are patched to the copy the
//! first time they are read (lazy become), so the lookup is paid once per reference.
//!
//! This crate re-exports the layers:
//! - [`heap`]: words and values, object formats, the builder and the frozen [`BaseHeap`];
//! - [`forwarders`]: the diverted marks, indirection tables and the [`Base`] tenants fork from;
//! - [`tenants`]: [`Tenant`] (copy-on-first-write, allocation, become, collection, quotas,
//!   handles), its [`TenantReader`] and [`TenantWriter`] for loops of reads and later writes,
//!   and the thread-shared [`Registry`];
//! - [`squeak`]: importers and exporters of Squeak, Pharo and Cuis images (V3 and Spur);
//!
//! and adds [`open_base`], which opens any base: a cowheap image file or a Smalltalk image.
//!
//! The `cowheap` command and its bench live in crates of their own (`cowheap-cli`,
//! `cowheap-bench`), so a program that uses the library compiles none of their dependencies.
//! The feature `synth` adds `synth`, generated Smalltalk-shaped bases for tests and demos.
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
#![forbid(unsafe_code)]

mod open;

pub use cowheap_forwarders as forwarders;
pub use cowheap_heap as heap;
pub use cowheap_squeak as squeak;
pub use cowheap_tenants as tenants;

pub use cowheap_forwarders::{Base, MarkPolicy};
#[cfg(feature = "synth")]
pub use cowheap_heap::synth;
pub use cowheap_heap::{
    BaseHeap, Builder, Format, ObjectIndex, ObjectSize, TenantId, Value, Verification, Word,
};
pub use cowheap_tenants::{
    CollectStats, Error, Handle, Registry, RestoreError, Result, SnapshotError, Tenant,
    TenantConfig, TenantReader, TenantStats, TenantWriter, par_each,
};
pub use open::{OpenError, Opened, open_base};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
