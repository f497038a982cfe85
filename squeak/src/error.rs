//! The errors of importing and exporting images.

use cowheap_heap::ObjectIndex;
use std::path::PathBuf;

/// Why an image file could not be imported. Every way a file can be wrong has its own variant;
/// no input makes the importer panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// No known image version at offset 0 or 512, in either byte order.
    #[error(
        "not a Squeak image: no known image version at offset 0 or 512 in either byte order \
         (the first word is {found:#x})"
    )]
    BadMagic {
        /// The first 32-bit word of the file, little-endian.
        found: u32,
    },
    /// A known image version this importer does not read (64-bit V3, 6501, V3 with the
    /// multiple-bytecode-sets bit, 64-bit Spur before 68021).
    #[error(
        "image version {0} is not supported (V3 6502/6504/6505, Spur 6521 and 68021 are, the \
         Spur ones also with the multiple-bytecode-sets bit: 7033, 68533)"
    )]
    UnsupportedVersion(u32),
    /// The file ends before something it declares.
    #[error("truncated image: {what} needs bytes {at}..{end} but the file has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// First byte needed.
        at: u64,
        /// One past the last byte needed.
        end: u64,
        /// Bytes available.
        len: u64,
    },
    /// The image header holds an impossible value.
    #[error("bad image header: {0}")]
    BadImageHeader(&'static str),
    /// An object header does not decode.
    #[error("bad object header at data offset {at}: {problem}")]
    BadHeader {
        /// Byte offset of the object in the object data (after the image header).
        at: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// A pointer names no object of the image.
    #[error("the object at data offset {at} refers to {oop:#x}, which is no object of the image")]
    DanglingOop {
        /// Byte offset of the referring object in the object data.
        at: u64,
        /// The pointer.
        oop: u64,
    },
    /// A slot holds an immediate no Spur VM makes: in a 64-bit image a tag of 3, 5, 6 or 7,
    /// or a character whose code does not fit 32 bits.
    #[error("the object at data offset {at} holds {oop:#x}, an immediate no Spur VM makes")]
    BadImmediate {
        /// Byte offset of the referring object in the object data.
        at: u64,
        /// The word.
        oop: u64,
    },
    /// A Spur reference to a forwarder whose chain of forwarders comes back to a forwarder
    /// already on it: it ends at no object, where a VM following it would not stop.
    #[error(
        "the object at data offset {at} refers to {oop:#x}, a forwarder whose chain of \
         forwarders is a cycle"
    )]
    ForwarderCycle {
        /// Byte offset of the referring object in the object data.
        at: u64,
        /// The reference to the first forwarder.
        oop: u64,
    },
    /// A Spur reference from an ordinary object to a hidden one (a free-list, hidden-roots
    /// or class-table object, or another object whose class index is a pun): those objects
    /// are the VM's own, which no Smalltalk object holds and no message can be sent to.
    #[error(
        "the object at data offset {at} refers to {oop:#x}, a hidden object no Smalltalk \
         object can hold"
    )]
    HiddenReference {
        /// Byte offset of the referring object in the object data.
        at: u64,
        /// The reference (the first forwarder of a chain that ends at the hidden object).
        oop: u64,
    },
    /// A V3 object's class word names an object that is no class: not an object of
    /// pointers whose third field (the format) is a small integer.
    #[error("the object at data offset {at} has class {oop:#x}, which is no class")]
    NotAClass {
        /// Byte offset of the object in the object data.
        at: u64,
        /// The class word.
        oop: u64,
    },
    /// A Spur object's class index names no class in the class table.
    #[error("the object at data offset {at} has class index {index}, which is no class")]
    BadClassIndex {
        /// Byte offset of the object in the object data.
        at: u64,
        /// The class index.
        index: u32,
    },
    /// A well-known object is missing or malformed (the special objects array, nil, the
    /// compact classes, the hidden roots).
    #[error("bad image: {0}")]
    Missing(&'static str),
    /// The graph was refused by the heap builder.
    #[error("the image does not make a base heap: {0}")]
    Heap(#[from] cowheap_heap::Error),
}

/// Why a base heap could not be written as an image file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing failed.
    #[error("cannot write the image: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the image file failed; whatever was at its path is as it was.
    #[error("cannot write the image file: {0}")]
    File(#[from] cowheap_heap::FileError),
    /// Reading the base failed (a corrupt mapped file).
    #[error("cannot read the base: {0}")]
    Heap(#[from] cowheap_heap::Error),
    /// A value the target format cannot hold: a small integer too wide for 31 or 61 bits, an
    /// immediate float in a 32-bit image, an immediate character in a V3 image.
    #[error("object {object} holds {what}, which a {target} image cannot represent")]
    Unrepresentable {
        /// The object holding the value.
        object: ObjectIndex,
        /// What the value is.
        what: &'static str,
        /// The target format.
        target: &'static str,
    },
    /// The base cannot be written in the format asked for.
    #[error("cannot export: {0}")]
    Unsupported(&'static str),
    /// A root of the base's image header (`image.*`) holds a value no image can have.
    #[error(
        "the base's root {root} holds {}, which a {target} image cannot hold",
        .value.map_or_else(|| "no small integer".to_owned(), |v| v.to_string())
    )]
    BadHeaderRoot {
        /// The root.
        root: &'static str,
        /// Its value, `None` if it is no small integer.
        value: Option<i64>,
        /// The image format that cannot hold it.
        target: &'static str,
    },
    /// A 64-bit Spur image needs the class of immediate floats (SmallFloat64), and the base
    /// names none ([`crate::ExportOptions::allow_missing_float_class`] writes it anyway).
    #[error("a 64-bit Spur image needs a SmallFloat64 class, and the base names none")]
    NoFloatClass,
    /// The image would need more address space than the format has.
    #[error("the image is too large for a {0} image")]
    TooLarge(&'static str),
    /// The allocator refused the memory an export needs (its plan or the file's bytes):
    /// nothing was written.
    #[error("out of memory: {bytes} bytes for the export refused")]
    OutOfMemory {
        /// The size of the refused reservation.
        bytes: u64,
    },
}

/// The result of importing.
pub type ImportResult<T> = Result<T, ImportError>;
/// The result of exporting.
pub type ExportResult<T> = Result<T, ExportError>;
