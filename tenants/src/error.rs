//! Errors of tenant operations.

use cowheap_heap::{TenantId, Word};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a tenant refused an operation. A refused operation changes nothing in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the object model: an immediate where an object is needed, an index out of
    /// range, a layout the format cannot hold, a base reference past the end of the base.
    #[error(transparent)]
    Heap(#[from] cowheap_heap::Error),
    /// A private reference that belongs to another tenant (or to none).
    #[error("{value:?} belongs to {owner:?}, not to {tenant}")]
    ForeignReference {
        /// The reference.
        value: Word,
        /// The tenant it belongs to, if any.
        owner: Option<TenantId>,
        /// The tenant it was used in.
        tenant: TenantId,
    },
    /// A private reference to an object that has been collected.
    #[error("{0:?} refers to a collected object")]
    Collected(Word),
    /// A handle that was unpinned (its slot may have been reused since).
    #[error("the handle was unpinned")]
    StaleHandle,
    /// The operation would take the tenant's private bytes past its quota.
    #[error("quota exceeded: {used} bytes used + {needed} needed > quota of {quota}")]
    QuotaExceeded {
        /// The tenant's quota.
        quota: u64,
        /// Private bytes in use before the operation.
        used: u64,
        /// Private bytes the operation needed.
        needed: u64,
    },
    /// No key is left for another private object or handle: `u32::MAX - 1` of them are in use
    /// or retired.
    #[error("no key left for more {what}")]
    KeysExhausted {
        /// What ran out of keys: "private objects" or "handles".
        what: &'static str,
    },
    /// The allocator refused memory the tenant needed: an object's (with no quota, or under a
    /// quota larger than the memory there is), a collection's mark, a table's or an
    /// arena's growth. What the refused operation leaves is in its own documentation:
    /// most change nothing.
    #[error("could not reserve {bytes} bytes")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// A write to an object of the base while the base is read-only to this tenant
    /// ([`crate::Tenant::set_base_read_only`]).
    #[error("the base is read-only here: a write to {0:?} was refused")]
    BaseReadOnly(cowheap_heap::ObjectIndex),
    /// An immediate whose class the base does not name.
    #[error("the base names no class for the immediate {0:?}")]
    NoImmediateClass(Word),
    /// The object is a root stub of a segment swapped out of this tenant: fault the segment
    /// in ([`crate::Tenant::fault_in`]) and try again.
    #[error("{object:?} is swapped out with segment {segment}")]
    Swapped {
        /// The segment's id, as given to [`crate::Tenant::stub`].
        segment: u64,
        /// The stub.
        object: Word,
    },
    /// A fault handler could not bring segment `segment` back; its stubs stand and the tenant
    /// is as it was. `reason` is the handler's account.
    #[error("segment {segment} could not be faulted in: {reason}")]
    Fault {
        /// The segment's id.
        segment: u64,
        /// Why, in the handler's words.
        reason: String,
    },
    /// Only a private object that is no host object's proxy can become a root stub.
    #[error("{0:?} is not a private object that can be swapped out")]
    NotSwappable(Word),
    /// A host object's proxy cannot become a forwarder (`becomeForward:`): its host object
    /// would be left on no object.
    #[error("{0:?} is a host object's proxy: it cannot become a forwarder")]
    HostProxy(Word),
}
