//! Real Smalltalk images as cowheap base heaps.
//!
//! [`import`] reads a Squeak, Pharo or Cuis image file (V3 32-bit, Spur 32- and 64-bit, either
//! byte order, with or without a 512-byte prefix) into a [`BaseHeap`] through the public
//! [`cowheap_heap::Builder`]: every object, reachable or not, with its class, format, identity
//! hash, slots and bytes; small integers, characters and (64-bit Spur) small floats become
//! cowheap immediates; compact classes and the class table are resolved to class objects.
//! What the cowheap object does not say about the source header is kept in its 24 auxiliary
//! bits ([`aux`]), and the image header's fields in integer roots ([`ImageHeader`]), so
//! [`export`] writes the base back: a V3 image imported and exported again is byte for byte
//! the original, and so is a single-segment Spur image. [`export_bytes_with`] writes Spur in
//! several memory segments.
//!
//! The base's roots: `specialObjects` (first, the special objects array), `nil`, `true`,
//! `false`, `Smalltalk` (the SystemDictionary), then the `image.*` header roots.
//!
//! - [`format`](mod@format): detecting the format; [`ImageFormat`], [`ImageHeader`].
//! - `v3`, `spur`: the two object memories, import and export.
//! - [`aux`]: the auxiliary bit layouts.
//! - [`classes`]: class names and the class histogram.
//!
//! The file formats and how each field maps into cowheap are described in `docs/FORMATS.md`.
#![forbid(unsafe_code)]

pub mod aux;
mod bytes;
pub mod classes;
mod error;
pub mod format;
mod graph;
mod spur;
mod v3;

pub use bytes::ByteOrder;
pub use classes::{ClassStats, class_histogram, class_name, class_name_of};
pub use error::{ExportError, ExportResult, ImportError, ImportResult};
pub use format::{Family, ImageFormat, ImageHeader};

use cowheap_heap::{BaseHeap, ObjectIndex, Word};
use graph::{Graph, Obj, slot_ref};
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
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
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

/// Writes `heap` as an image file of format `format`. Time: O(size of the base).
///
/// A base imported from a V3 image exports to V3 in either byte order; one imported from Spur
/// exports to 32- or 64-bit Spur in either byte order (the V3 and Spur object models differ,
/// so there is no conversion between them). A base not imported from an image exports to V3,
/// with headers derived from its formats, if its first root is a special objects array.
///
/// # Errors
/// [`ExportError::Unsupported`] for a family change or a base without a special objects
/// array; [`ExportError::Unrepresentable`] for a value the target cannot hold (a 61-bit
/// integer in a 32-bit image); I/O errors.
pub fn export(heap: &BaseHeap, format: ImageFormat, out: &mut impl Write) -> ExportResult<()> {
    out.write_all(&export_bytes(heap, format)?)?;
    Ok(())
}

/// How [`export_bytes_with`] lays out an image. The default is what [`export`] writes: one
/// memory segment.
///
/// ```
/// use cowheap_squeak::ExportOptions;
///
/// let split = ExportOptions { segment_bytes: Some(1 << 20), segment_gap: 4096 };
/// assert_eq!(ExportOptions::default().segment_bytes, None);
/// assert!(split.segment_bytes.is_some());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Spur: the most bytes one memory segment may hold, its closing bridge included; an
    /// object larger than that gets a segment of its own. `None`: one segment.
    pub segment_bytes: Option<u64>,
    /// Spur: bytes of address space between the end of one segment and the start of the
    /// next, spanned by the bridge (a multiple of 8).
    pub segment_gap: u64,
}

/// [`export`] into a new vector.
pub fn export_bytes(heap: &BaseHeap, format: ImageFormat) -> ExportResult<Vec<u8>> {
    export_bytes_with(heap, format, &ExportOptions::default())
}

/// [`export_bytes`] with a layout other than the default: a Spur image in several memory
/// segments, as images grown by a running VM are. The objects, their addresses apart, are
/// the same; [`import_bytes`] reads the segments back into the same graph.
///
/// # Errors
/// As [`export`]; also [`ExportError::Unsupported`] for segments in a V3 image (which has
/// none) and for a gap that is not a multiple of 8 bytes or that a bridge cannot span.
pub fn export_bytes_with(
    heap: &BaseHeap,
    format: ImageFormat,
    options: &ExportOptions,
) -> ExportResult<Vec<u8>> {
    let header = ImageHeader::from_heap(heap);
    let source = match header.version {
        0 => None,
        v => ImageFormat::new(v, ByteOrder::Little)
            .ok()
            .map(ImageFormat::family),
    };
    match (format.family(), source) {
        (Family::V3, _) if *options != ExportOptions::default() => Err(ExportError::Unsupported(
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
    let bytes = export_bytes(heap, format)?;
    cowheap_heap::file::write_atomically(path.as_ref(), |out| out.write_all(&bytes))?;
    Ok(())
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
    let name_of = |i: u32| {
        objs.class_of(i)
            .and_then(|c| classes::name_in(objs, c))
            .unwrap_or_default()
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
