//! Tenants: many client images on one frozen base.
//!
//! A [`Tenant`] is forked from an `Arc<`[`Base`](cowheap_forwarders::Base)`>` in O(1). It reads
//! the base in place; its first write to a base object copies that object into its private
//! space and diverts it (see `cowheap_forwarders` for the marks and the table); new objects
//! it allocates live in the same private space. References in private objects are patched to
//! where they lead the first time they are read (lazy become).
//!
//! | operation | time |
//! | --- | --- |
//! | [`Tenant::fork`] | O(1), no allocation |
//! | read of an undiverted base object | O(1): one mark test, then the base read (in a loop, through a [`TenantReader`]) |
//! | read of a diverted object through a base object | O(1) expected: one table lookup |
//! | read through a patched private slot | O(1), no lookup |
//! | first write to a base object | O(size of the object) |
//! | later writes, allocation | O(1) (fastest in a loop through a [`TenantWriter`]), O(size) |
//! | [`Tenant::become_forward`], [`Tenant::become_two_way`] | O(1) (+ copy of base objects for two-way) |
//! | [`Tenant::collect`] | O(private objects and their slots), never the base |
//!
//! Private objects and handles live in one kind of versioned slab (a generation per key, one
//! rule for advancing it, a dense `slab` store for the values), so a reference to a collected
//! object is refused rather than aliased, and a retired key costs 8 bytes. [`Handle`]s pin objects for an embedder.
//! [`Registry`] shares tenants between threads (`dashmap`) and publishes the current base
//! (`arc-swap`); [`par_each`] and [`Registry::par_for_each`] run tenants in parallel
//! (`rayon`).
#![forbid(unsafe_code)]

mod become_;
mod collect;
pub mod commit;
mod error;
pub mod hosts;
mod layer;
mod reader;
mod registry;
mod roots;
mod slab;
pub mod snapshot;
mod space;
mod stats;
pub mod stubs;
mod tenant;
mod writer;

pub use collect::{CollectionReserve, Weakness};
pub use error::{Error, Result};
pub use reader::TenantReader;
pub use registry::{Registry, par_each};
pub use roots::Handle;
pub use snapshot::{RestoreError, SnapshotError};
pub use stats::{CollectStats, TenantStats};
pub use tenant::{Header, Tenant, TenantConfig};
pub use writer::TenantWriter;
