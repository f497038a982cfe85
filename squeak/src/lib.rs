//! Real Smalltalk images as cowheap base heaps.
//!
//! [`import`] reads a Squeak, Pharo or Cuis image file (V3 32-bit, Spur 32- and 64-bit, either
//! byte order, with or without a 512-byte prefix) into a [`BaseHeap`] through the public
//! [`cowheap_heap::Builder`]: every object, reachable or not, with its class, format, identity
//! hash, slots and bytes; small integers, characters and (64-bit Spur) small floats become
//! cowheap immediates; compact classes and the class table are resolved to class objects.
//! What the cowheap object does not say about the source header is kept in its 24 auxiliary
//! bits ([`auxbits`]), and the image header's fields in integer roots ([`ImageHeader`]), so
//! [`export`] writes the base back: a V3 image imported and exported again is byte for byte
//! the original, and so is a single-segment Spur image. [`export_bytes_with`] writes Spur in
//! several memory segments.
//!
//! The base's roots: `specialObjects` (first, the special objects array), `nil`, `true`,
//! `false`, `Smalltalk` (the SystemDictionary), then the `image.*` header roots.
//!
//! - [`format`](mod@format): detecting the format; [`ImageFormat`], [`ImageHeader`].
//! - `v3`, `spur`: the two object memories, import and export.
//! - [`auxbits`]: the auxiliary bit layouts.
//! - [`classes`]: class names and the class histogram.
//!
//! The file formats and how each field maps into cowheap are described in `docs/FORMATS.md`.
#![forbid(unsafe_code)]
#![warn(clippy::cast_possible_truncation)]

pub mod auxbits;
mod bytes;
pub mod classes;
mod error;
mod float;
pub mod format;
mod graph;
mod spur;
mod v3;

pub use bytes::ByteOrder;
pub use classes::{ClassStats, class_histogram, class_name, class_name_in, class_name_of};
pub use error::{ExportError, ExportResult, ImportError, ImportResult};
pub use float::{SPECIAL_FLOAT, float_value, small_float_payload};
pub use format::{Family, ImageFormat, ImageHeader};
pub use graph::Graph;

use cowheap_heap::{BaseHeap, ObjectIndex, Word};
use graph::{Obj, slot_ref};
use std::io::Write;
use std::path::Path;

/// Special objects array index of the class SmallInteger (Squeak, all versions).
pub const SPECIAL_SMALLINTEGER: usize = 5;
/// Special objects array index of the global dictionary (Smalltalk).
pub const SPECIAL_SMALLTALK: usize = 8;
/// Special objects array index of the class Character.
pub const SPECIAL_CHARACTER: usize = 19;

/// An imported image: the base heap and what the file said beside its objects.
#[derive(Debug)]
pub struct Imported {
    /// The base heap.
    pub heap: BaseHeap,
    /// The format the file was in.
    pub format: ImageFormat,
    /// The header fields (also carried in the base's `image.*` roots).
    pub header: ImageHeader,
    /// Counts made while reading.
    pub stats: ImportStats,
}

/// Counts made while importing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Objects imported (hidden Spur objects included, segment bridges not).
    pub objects: usize,
    /// Hidden Spur objects (class index below 32).
    pub hidden: usize,
    /// V3: objects by header type (index 0: three words, 1: two words, 3: one word).
    pub header_types: [usize; 4],
    /// Pointers to objects found: in slots (method literals included) and in class words of
    /// V3 headers (Spur class indices are not pointers). None dangles.
    pub references: usize,
    /// Spur: memory segments read.
    pub segments: usize,
}

/// Imports the image file at `path`. Time: O(file size).
///
/// # Errors
/// [`ImportError::Io`] if the file cannot be read, else as [`import_bytes`].
pub fn import(path: impl AsRef<Path>) -> ImportResult<Imported> {
    let path = path.as_ref();
    let bytes = cowheap_heap::file::read_regular(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    import_bytes(&bytes)
}

/// Imports an image held in memory. Time: O(size).
///
/// # Errors
/// A typed [`ImportError`] naming the problem: no known version ([`ImportError::BadMagic`]),
/// a version not read ([`ImportError::UnsupportedVersion`]), a file shorter than it says
/// ([`ImportError::Truncated`]), an undecodable header ([`ImportError::BadHeader`]), a pointer
/// to no object ([`ImportError::DanglingOop`]), a missing well-known object.
pub fn import_bytes(bytes: &[u8]) -> ImportResult<Imported> {
    let (f, prefix) = format::detect(bytes)?;
    match f.family() {
        Family::V3 => v3::import(bytes, f, prefix),
        Family::Spur => spur::import(bytes, f, prefix),
    }
}

/// Writes `heap` as an image file of exactly `format` (version and byte order). Time: O(size
/// of the base).
///
/// A base imported from a V3 image exports to V3 (any of 6502, 6504, 6505) in either byte
/// order; one imported from Spur exports to 32- or 64-bit Spur in either byte order (the V3
/// and Spur object models differ, so there is no conversion between them). A base not
/// imported from an image exports to V3, with headers derived from its formats, if its first
/// root is a special objects array. Boxed Floats are written in the word order `format` asks
/// for (see [`float_value`]). To write the version and byte order the base came from, use
/// [`export_bytes_with`] and [`ExportOptions`].
///
/// # Errors
/// [`ExportError::Unsupported`] for a family change or a base without a special objects
/// array; [`ExportError::Unrepresentable`] for a value the target cannot hold (a 61-bit
/// integer in a 32-bit image); I/O errors.
pub fn export(heap: &BaseHeap, format: ImageFormat, out: &mut impl Write) -> ExportResult<()> {
    out.write_all(&export_bytes(heap, format)?)?;
    Ok(())
}

/// The object memory and word size of an image, without its exact version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ImageKind {
    /// 32-bit V3 (versions 6502, 6504, 6505).
    V3,
    /// 32-bit Spur (6521, and 7033 with the multiple-bytecode-sets bit).
    Spur32,
    /// 64-bit Spur (68021, and 68533 with the multiple-bytecode-sets bit).
    Spur64,
}

impl ImageKind {
    /// The kind of `format`.
    pub fn of(format: ImageFormat) -> ImageKind {
        match (format.family(), format.word_bytes()) {
            (Family::V3, _) => ImageKind::V3,
            (Family::Spur, 4) => ImageKind::Spur32,
            (Family::Spur, _) => ImageKind::Spur64,
        }
    }

    /// The version written for this kind when the base came from no version of it: 6502 for
    /// V3 (floats high word first, no closures), 6521, 68021.
    pub fn default_version(self) -> u32 {
        match self {
            ImageKind::V3 => ImageFormat::V3,
            ImageKind::Spur32 => ImageFormat::SPUR_32,
            ImageKind::Spur64 => ImageFormat::SPUR_64,
        }
    }
}

/// What [`export_bytes_with`] writes. Every field left at its default means "as the base was
/// imported": `ExportOptions::default()` writes the version and byte order the base came
/// from (from its `image.version` and `image.bigEndian` roots), in one memory segment.
///
/// ```
/// use cowheap_squeak::{ByteOrder, ExportOptions, ImageKind};
///
/// // The base's own format; the same kind and version, big-endian; 64-bit Spur in
/// // 1 MiB segments.
/// let same = ExportOptions::default();
/// let big = ExportOptions { order: Some(ByteOrder::Big), ..ExportOptions::default() };
/// let split = ExportOptions {
///     kind: Some(ImageKind::Spur64),
///     segment_bytes: Some(1 << 20),
///     segment_gap: 4096,
///     ..ExportOptions::default()
/// };
/// assert_eq!(same.segment_bytes, None);
/// assert!(big.kind.is_none() && split.segment_bytes.is_some());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The object memory and word size. `None`: the base's.
    pub kind: Option<ImageKind>,
    /// The exact image version, which must be of `kind` when both are given. `None`: the
    /// base's version if it is of the kind written, else [`ImageKind::default_version`]
    /// (with the base's multiple-bytecode-sets bit, from one Spur word size to the other).
    pub version: Option<u32>,
    /// The byte order. `None`: the base's, little-endian for a base that records none.
    pub order: Option<ByteOrder>,
    /// Spur: the most bytes one memory segment may hold, its closing bridge included; an
    /// object larger than that gets a segment of its own. `None`: one segment.
    pub segment_bytes: Option<u64>,
    /// Spur: bytes of address space between the end of one segment and the start of the
    /// next, spanned by the bridge (a multiple of 8).
    pub segment_gap: u64,
    /// 64-bit Spur: write a base that names no class of immediate floats (SmallFloat64)
    /// anyway, with class-table entry 4 nil and every Float boxed. Such an image loads, but a
    /// 64-bit VM fails on its first immediate float. `false` (the default):
    /// [`ExportError::NoFloatClass`].
    pub allow_missing_float_class: bool,
}

impl ExportOptions {
    /// Options that write exactly `format`, in one segment.
    pub fn exactly(format: ImageFormat) -> ExportOptions {
        ExportOptions {
            kind: Some(ImageKind::of(format)),
            version: Some(format.version()),
            order: Some(format.order()),
            ..ExportOptions::default()
        }
    }

    /// The format these options write for `heap`: each field not given is taken from the
    /// base's `image.*` roots. Time: O(roots).
    ///
    /// # Errors
    /// [`ExportError::Unsupported`] for a base imported from no image when no kind or version
    /// is given, and for a version that is no version of `kind` or that this crate does not
    /// write; [`ExportError::BadHeaderRoot`] for an `image.*` root out of its range.
    pub fn resolve(&self, heap: &BaseHeap) -> ExportResult<ImageFormat> {
        let header = ImageHeader::try_from_heap(heap)?;
        let source = match header.version {
            0 => None,
            v => ImageFormat::new(v, ByteOrder::Little).ok(),
        };
        let order = self.order.or(header.order).unwrap_or(ByteOrder::Little);
        let unknown = || ExportError::Unsupported("an image version this crate does not write");
        let version = match (self.kind, self.version) {
            (kind, Some(v)) => {
                let f = ImageFormat::new(v, order).map_err(|_| unknown())?;
                if kind.is_some_and(|k| k != ImageKind::of(f)) {
                    return Err(ExportError::Unsupported(
                        "the version asked for is not of the kind asked for",
                    ));
                }
                v
            }
            (Some(kind), None) => match source {
                Some(s) if ImageKind::of(s) == kind => s.version(),
                // The other word size of Spur keeps the multiple-bytecode-sets bit: the
                // methods still use the bytecode set they were compiled with.
                Some(s) if s.multiple_bytecode_sets() && kind != ImageKind::V3 => {
                    kind.default_version() | ImageFormat::MULTIPLE_BYTECODE_SETS
                }
                _ => kind.default_version(),
            },
            (None, None) => source
                .map(ImageFormat::version)
                .ok_or(ExportError::Unsupported(
                    "the base was not imported from an image: name a kind or version",
                ))?,
        };
        ImageFormat::new(version, order).map_err(|_| unknown())
    }
}

/// [`export`] into a new vector.
pub fn export_bytes(heap: &BaseHeap, format: ImageFormat) -> ExportResult<Vec<u8>> {
    export_format(heap, format, &ExportOptions::exactly(format))
}

/// An image of `heap` as `options` say: by default the version and byte order the base was
/// imported from, one memory segment. [`ExportOptions::resolve`] tells which format that is.
/// With segments, a Spur image is written in several memory segments, as images grown by a
/// running VM are; the objects, their addresses apart, are the same, and [`import_bytes`]
/// reads the segments back into the same graph. Time: O(size of the base).
///
/// # Errors
/// As [`export`] and [`ExportOptions::resolve`]; also [`ExportError::Unsupported`] for
/// segments in a V3 image (which has none) and for a gap that is not a multiple of 8 bytes or
/// that a bridge cannot span.
pub fn export_bytes_with(heap: &BaseHeap, options: &ExportOptions) -> ExportResult<Vec<u8>> {
    export_format(heap, options.resolve(heap)?, options)
}

fn export_format(
    heap: &BaseHeap,
    format: ImageFormat,
    options: &ExportOptions,
) -> ExportResult<Vec<u8>> {
    let header = ImageHeader::try_from_heap(heap)?;
    header.check_for(format)?;
    let source = match header.version {
        0 => None,
        v => ImageFormat::new(v, ByteOrder::Little)
            .ok()
            .map(ImageFormat::family),
    };
    let segmented = options.segment_bytes.is_some() || options.segment_gap != 0;
    match (format.family(), source) {
        (Family::V3, _) if segmented => Err(ExportError::Unsupported(
            "a V3 image has no memory segments",
        )),
        (Family::V3, None | Some(Family::V3)) => v3::export(heap, format, &header),
        (Family::Spur, Some(Family::Spur)) => spur::export(heap, format, &header, options),
        (Family::Spur, None) => Err(ExportError::Unsupported("the base has no Spur class table")),
        _ => Err(ExportError::Unsupported(
            "V3 and Spur images do not convert into each other",
        )),
    }
}

/// [`export`] to the file at `path`, created or replaced atomically: the image is written to
/// a temporary file beside it, fsynced and renamed over `path`, so a failure or a crash leaves
/// the old file (or none), never a torn one.
pub fn export_to_path(
    heap: &BaseHeap,
    format: ImageFormat,
    path: impl AsRef<Path>,
) -> ExportResult<()> {
    export_to_path_with(heap, &ExportOptions::exactly(format), path).map(|_| ())
}

/// [`export_bytes_with`] to the file at `path`, created or replaced atomically as by
/// [`export_to_path`]. Returns the format written. Time: O(size of the base).
///
/// # Errors
/// As [`export_bytes_with`]; [`ExportError::File`] if the file cannot be written.
pub fn export_to_path_with(
    heap: &BaseHeap,
    options: &ExportOptions,
    path: impl AsRef<Path>,
) -> ExportResult<ImageFormat> {
    let format = options.resolve(heap)?;
    let bytes = export_format(heap, format, options)?;
    cowheap_heap::file::write_atomically(path.as_ref(), |out| out.write_all(&bytes))?;
    Ok(format)
}

/// The special objects array: the base's first root, which must be named `specialObjects`.
pub(crate) fn special_objects(heap: &BaseHeap) -> ExportResult<u32> {
    heap.roots()
        .first()
        .filter(|r| r.name == "specialObjects")
        .and_then(|r| r.value.as_base())
        .filter(|x| x.get() < heap.len())
        .map(ObjectIndex::as_u32)
        .ok_or(ExportError::Unsupported(
            "the base's first root is not a special objects array",
        ))
}

/// An empty list with room for `n` items, its memory reserved fallibly.
///
/// # Errors
/// [`ExportError::OutOfMemory`] if the allocator refuses it.
pub(crate) fn try_list<T>(n: usize) -> ExportResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| ExportError::OutOfMemory {
            bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
        })?;
    Ok(v)
}

/// Checks that the special objects array `special` holds the base's nil in its first slot:
/// every reader takes nil from there, so with any other object in it the file would read
/// back with that object as nil. Time: O(1).
///
/// # Errors
/// [`ExportError::Unsupported`] if it does not.
pub(crate) fn check_nil_first(heap: &BaseHeap, special: u32) -> ExportResult<()> {
    if heap.get_slot(ObjectIndex::from_u32(special), 0) == Some(heap.nil().word()) {
        Ok(())
    } else {
        Err(ExportError::Unsupported(
            "a special objects array whose first slot is not nil",
        ))
    }
}

/// The roots every import makes: `specialObjects`, `nil`, `false`, `true`, `Smalltalk`.
pub(crate) fn standard_roots(objs: &[Obj], special: u32, nil: u32) -> Vec<(String, Word)> {
    let obj_ref = |i: u32| Word::base(ObjectIndex::from_u32(i));
    let mut roots = vec![
        ("specialObjects".to_owned(), obj_ref(special)),
        ("nil".to_owned(), obj_ref(nil)),
    ];
    for (name, k) in [("false", 1), ("true", 2)] {
        if let Some(i) = slot_ref(objs, special, k) {
            roots.push((name.to_owned(), obj_ref(i)));
        }
    }
    if let Some(w) = smalltalk_root(objs, special) {
        roots.push(("Smalltalk".to_owned(), w));
    }
    roots
}

/// The global dictionary. Special object 8 is the SystemDictionary itself (Squeak 2.8 to
/// 4.x), an association whose value it is, or a SmalltalkImage whose slots hold it (Squeak 5
/// and later, where it is `Smalltalk globals`); failing all three, special object 8 itself.
pub(crate) fn smalltalk_root(objs: &[Obj], special: u32) -> Option<Word> {
    let s = slot_ref(objs, special, SPECIAL_SMALLTALK)?;
    // Each class named once: a hostile special object can hold many instances of one class.
    let names = std::cell::RefCell::new(std::collections::HashMap::new());
    let name_of = |i: u32| {
        let Some(c) = objs.class_of(i) else {
            return String::new();
        };
        names
            .borrow_mut()
            .entry(c)
            .or_insert_with(|| classes::name_in(objs, c).unwrap_or_default())
            .clone()
    };
    let obj = |i: u32| Word::base(ObjectIndex::from_u32(i));
    let name = name_of(s);
    if name == "Association" || name.ends_with("Binding") {
        return objs.slots_of(s).get(1).copied();
    }
    if name.ends_with("Dictionary") {
        return Some(obj(s));
    }
    let globals = objs
        .slots_of(s)
        .iter()
        .filter_map(|w| w.as_base())
        .map(ObjectIndex::as_u32);
    Some(obj(globals
        .into_iter()
        .find(|&g| name_of(g).ends_with("Dictionary"))
        .unwrap_or(s)))
}
