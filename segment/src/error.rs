//! The errors of reading, writing and binding segments.

use std::path::PathBuf;

/// Anything that can go wrong with a segment or a project file. Every variant names where
/// the problem is (a byte or word offset) so a corrupt file can be looked at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The file could not be read or written.
    #[error("cannot read or write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The zip archive around a project is unreadable (a bad directory, a CRC mismatch).
    #[error("the project's zip archive is unreadable: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// The gzip stream of a project is corrupt or truncated (bad header, bad deflate data,
    /// CRC or length mismatch).
    #[error("the project's gzip stream is corrupt: {0}")]
    Gzip(#[source] std::io::Error),
    /// The input is not a project file in any of the accepted wrappings.
    #[error("not an Etoys project file: {0}")]
    NotAProject(&'static str),
    /// A zip holds a zip holds a zip ... deeper than the limit.
    #[error("archives nested deeper than {0}")]
    NestedTooDeep(usize),
    /// A length in the input would take more memory than the limit allows.
    #[error("{what} of {len} bytes is over the limit of {limit}")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The length asked for.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The DataStream ends inside an object.
    #[error("the object stream ends inside {what} at byte {at} (needs {need} more bytes)")]
    StreamTruncated {
        /// What was being read.
        what: &'static str,
        /// Byte position in the stream (relative to its start).
        at: u64,
        /// Bytes missing.
        need: u64,
    },
    /// A DataStream type byte this reader does not know (or one Squeak no longer writes).
    #[error("unknown object type {type_id} at byte {at} of the object stream")]
    UnknownType {
        /// The type byte.
        type_id: u8,
        /// Its position.
        at: u64,
    },
    /// A DataStream reference to a position where no object was read.
    #[error("a reference at byte {at} to byte {target}, where no object starts")]
    BadReference {
        /// Position of the reference.
        at: u64,
        /// The position it names.
        target: u64,
    },
    /// Some other inconsistency in the object stream.
    #[error("the object stream is malformed at byte {at}: {problem}")]
    BadStream {
        /// Position.
        at: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// Objects nested deeper than the reader follows (it refuses rather than overflow its
    /// stack).
    #[error("objects nested deeper than {limit} at byte {at} of the object stream")]
    NestedObjectsTooDeep {
        /// The limit.
        limit: usize,
        /// Position.
        at: u64,
    },
    /// The stream holds no ImageSegment, or one without segment words.
    #[error("no image segment in the stream: {0}")]
    NoSegment(&'static str),
    /// The segment's first word is not a V3 segment version word.
    #[error("the segment's version word {0:#010x} is not 6502 or 6504 with a byte-order letter")]
    BadVersion(u32),
    /// The segment's bytes are not a whole number of words.
    #[error("the segment is {0} bytes, not a whole number of 32-bit words")]
    OddLength(usize),
    /// An object header in the segment cannot be decoded.
    #[error("segment word {at}: {problem}")]
    BadHeader {
        /// Word index in the segment.
        at: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// An object reaches past the end of the segment.
    #[error("segment object at word {at} needs words up to {end}, the segment has {len}")]
    SegmentTruncated {
        /// Word index of its first header word.
        at: usize,
        /// Word index past its end.
        end: usize,
        /// Words in the segment.
        len: usize,
    },
    /// A pointer in the segment names no object of the segment.
    #[error("segment word {at} holds {oop:#010x}, which points at no object of the segment")]
    DanglingOop {
        /// Word index of the field.
        at: usize,
        /// The oop.
        oop: u32,
    },
    /// A word of a 64-bit Spur segment whose tag no Spur VM makes (3, 5, 6 or 7).
    #[error("segment word {at} holds {oop:#018x}, an immediate no Spur VM makes")]
    BadImmediate {
        /// Word index (of 4 bytes) of the field.
        at: usize,
        /// The whole word.
        oop: u64,
    },
    /// An out-pointer index beyond the out-pointer table.
    #[error("segment word {at} names out-pointer {index}, the table has {len}")]
    BadOutPointer {
        /// Word index of the field.
        at: usize,
        /// The 1-based index.
        index: usize,
        /// The table's length.
        len: usize,
    },
    /// The segment's first object is not an Array-shaped pointer object (the roots array).
    #[error("the segment's first object is not a pointer object (the roots array)")]
    NoRootsArray,
    /// A tenant operation failed while materialising a segment.
    #[error("tenant: {0}")]
    Tenant(#[from] cowheap_tenants::Error),
    /// A segment root that is not a private object of the tenant.
    #[error("segment roots must be private objects of the tenant; {0:#x} is not")]
    NotPrivate(u64),
    /// Out-pointers that did not bind on import (and the caller did not accept that).
    #[error("{} out-pointers did not bind: {}", .0.len(), .0.join(", "))]
    Unbound(Vec<String>),
    /// A decoded segment refers to something it does not have.
    #[error("the segment is inconsistent: {0}")]
    BadSegment(&'static str),
    /// A transition the segment state machine does not have.
    #[error(transparent)]
    State(#[from] crate::tenant::StateError),
    /// Writing a file atomically failed.
    #[error(transparent)]
    File(#[from] cowheap_heap::FileError),
    /// A cowheap segment file is not one, or is damaged.
    #[error("not a valid cowheap segment file: {0}")]
    BadFile(&'static str),
    /// A cowheap segment file's checksum does not match its contents.
    #[error("the segment file's checksum does not match: it is damaged")]
    Checksum,
    /// A cowheap segment file bound to another base than the one given.
    #[error("the segment belongs to base {file}, not to base {base}")]
    WrongBase {
        /// The file's base.
        file: cowheap_heap::Fingerprint,
        /// The base given.
        base: cowheap_heap::Fingerprint,
    },
    /// Something the target format cannot hold.
    #[error("the V3 segment format cannot hold {0}")]
    Unrepresentable(&'static str),
    /// A value of the segment that the image of the tenant it is imported into cannot hold
    /// (an integer past its SmallIntegers, an immediate float in an image without them, a
    /// Character its CharacterTable has no entry for).
    #[error("the target image cannot hold {0}")]
    NotHeldByTarget(&'static str),
    /// The image given as the base did not import (the importer's message).
    #[error("the base image did not import: {0}")]
    BaseImage(#[source] cowheap_squeak::ImportError),
    /// A hashed collection that no lookup can work on (see [`crate::rehash::TableProblem`]):
    /// refused rather than searched without end.
    #[error("hashed collection {object} ({class}): {problem}")]
    HashedCollection {
        /// Its position in the objects given to [`crate::rehash::rehash`].
        object: usize,
        /// Its class's name.
        class: String,
        /// What is wrong with its table.
        problem: crate::rehash::TableProblem,
    },
    /// A member that is a host object's proxy ([`crate::hosts`]) could not be saved on
    /// extraction or made again on import: no plugin for its kind, its state not saved, or
    /// the plugin failed. The source names the kind.
    #[error("segment member {member} is a host object's proxy: {source}")]
    Host {
        /// The member's number in the segment.
        member: u32,
        /// What went wrong, with the kind.
        #[source]
        source: cowheap_tenants::hosts::HostError,
    },
    /// The base a segment is bound to lacks something every Squeak image has.
    #[error("the base has no {0}")]
    BaseMissing(&'static str),
}

/// The crate's result.
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;
