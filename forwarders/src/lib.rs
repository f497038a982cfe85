//! Conditional forwarders: how a tenant finds its own copy of a shared base object.
//!
//! A base object that some tenant has copied (or becomed) is a *conditional forwarder*: it
//! still holds the base's contents, but each tenant must ask its own *indirection table*
//! whether it sees those contents or a private copy. Asking a hash table on every read would
//! make every read pay; instead each base object has a *diverted mark*, a bit kept beside the
//! base (never inside the base's own memory, which stays read-only and may be a mapped file).
//! The read barrier is:
//!
//! ```text
//! read base object x:
//!     if marks[x] is clear  -> read the base            (one load of shared read-only state)
//!     else                  -> table[x]: copy, or the base if this tenant has none
//! ```
//!
//! - [`DivertMarks`] is the bitmap, set once per object with an atomic `fetch_or` and never
//!   cleared. [`MarkPolicy`] picks between the shared bitmap and a tenant-private filter that
//!   tells no tenant what another wrote (see [`marks`] for the memory orderings and the
//!   security note).
//! - [`IndirectionTable`] maps a base object to the private key of this tenant's copy.
//! - [`Forwarding`] is the state machine of a private entry: an object, or a forwarder left
//!   by `become_forward`.
//! - [`Base`] is a frozen [`BaseHeap`](cowheap_heap::BaseHeap) with its marks, the unit that
//!   tenants fork from and that a host publishes.
#![forbid(unsafe_code)]

mod base;
pub mod marks;
mod state;
mod sync;
mod table;

pub use base::{Base, BaseId};
pub use marks::{DivertMarks, MarkPolicy};
pub use state::Forwarding;
pub use table::IndirectionTable;
