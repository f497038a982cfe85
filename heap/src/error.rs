//! Errors of the heap layer.

use crate::{Format, ObjectIndex, Word};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong reading or building a base heap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference names an object the base does not have.
    #[error("no object {index} in the base (it has {len})")]
    NoSuchObject {
        /// The index asked for.
        index: u64,
        /// How many objects the base holds.
        len: u64,
    },
    /// An immediate (small integer, character) was used where an object is needed.
    #[error("{0:?} is an immediate, not an object")]
    NotAnObject(crate::Word),
    /// A private reference reached the base, which only holds base references and immediates.
    #[error("a base heap cannot hold or read the private reference {0:?}")]
    PrivateInBase(crate::Word),
    /// A pointer slot index past the end of the object's pointer slots.
    #[error("slot {index} is out of range: the object has {len} pointer slots")]
    SlotOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many pointer slots the object has.
        len: usize,
    },
    /// A slot or byte access to an object whose format has none of that kind (a pointer slot
    /// of a string, the bytes of an array).
    #[error("a {format:?} object has no {wanted}")]
    WrongKind {
        /// The object's format.
        format: Format,
        /// What was asked for: "pointer slots" or "raw bytes".
        wanted: &'static str,
    },
    /// A byte range past the end of the object's raw bytes.
    #[error("bytes {start}..{end} are out of range: the object has {len} bytes")]
    BytesOutOfRange {
        /// First byte asked for.
        start: usize,
        /// One past the last byte asked for.
        end: usize,
        /// How many raw bytes the object has.
        len: usize,
    },
    /// The layout does not fit the format (bytes in a pointer object, say).
    #[error("format {format:?} cannot hold {slots} pointer slots and {bytes} bytes")]
    BadLayout {
        /// The format asked for.
        format: Format,
        /// Pointer slots asked for.
        slots: usize,
        /// Raw bytes asked for.
        bytes: usize,
    },
    /// A reference inside the builder names an object that was never added.
    #[error("object {from} refers to object {to}, which does not exist")]
    Dangling {
        /// The object holding the reference.
        from: ObjectIndex,
        /// The missing object.
        to: u64,
    },
    /// An object's class is an immediate.
    #[error("the class of object {0} is not an object")]
    ClassNotObject(ObjectIndex),
    /// The builder has no nil object ([`crate::Builder::add_nil`]).
    #[error("the base has no nil object")]
    MissingNil,
    /// Two roots share a name.
    #[error("there is already a root named {0:?}")]
    DuplicateRoot(String),
    /// A stored header does not decode (an unknown format code, a size past the end).
    #[error("corrupt base heap: {0}")]
    Corrupt(&'static str),
    /// A word that is no immediate and no reference (a base tag with bits set above the
    /// object index).
    #[error("{0:?} is no valid word")]
    InvalidWord(Word),
    /// An integer outside the 63 bits of a small integer.
    #[error("{0} does not fit a small integer (63 bits)")]
    IntOutOfRange(i64),
    /// More objects, slots or bytes than the encoding can address.
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// The allocator refused memory a structure of the heap needed (a version's layer, say);
    /// nothing was changed.
    #[error("could not reserve {bytes} bytes")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
}
