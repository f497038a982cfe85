//! Conditional forwarders: how a tenant finds its own copy of a shared base object.
//!
//! A base object that some tenant has copied (or becomed) is a *conditional forwarder*: it
//! still holds the base's contents, but each tenant must ask its own *indirection table*
//! whether it sees those contents or a private copy. Asking a hash table on every read would
//! make every read pay; instead each base object has a *diverted mark*, kept beside the base
//! (never inside the base's own memory, which stays read-only and may be a mapped file) in the
//! same word as the object's header offset, which a read loads anyway. The read barrier is:
//!
//! ```text
//! read base object x:
//!     w = marks[x]                          (offset | lanes | diverted bit: one load)
//!     if w's diverted bit is clear  -> read the base at w's offset
//!     else if this tenant's lane in w is clear -> read the base (other lanes' tenants
//!                                                 diverted x)
//!     else                          -> table[x]: copy, or the base if this tenant has none
//! ```
//!
//! (A committed bit beside the diverted one sends a read of an object a version changed
//! to that version instead of the base.)
//!
//! - [`DivertMarks`] is that table, its bits set once per object with an atomic `fetch_or`
//!   and never cleared. [`MarkPolicy`] picks between the shared marks and a tenant-private
//!   [`MarkFilter`] that tells no tenant what another wrote (see [`marks`] for the memory
//!   orderings and the security note).
//! - [`IndirectionTable`] maps a base object to the index of this tenant's entry for it. Its
//!   `divert` (hidden from the docs: the tenants crate's) is the one way to set a mark, and it
//!   sets one only for an entry it records; the raw setters are crate-private, since a stray
//!   mark is never cleared.
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
pub mod version;

pub use base::{Base, BaseId};
pub use marks::{DivertMarks, MarkFilter, MarkPolicy, MarksView};
pub use state::Forwarding;
pub use table::{AlreadyDiverted, FilterView, IndirectionTable, MarkTarget};
pub use version::Committed;
