//! Image files: a base heap on disk, opened by memory mapping with no per-object decoding.
//!
//! The format (version 1) is described in `docs/FORMATS.md`. In short: a 64-byte header, a
//! table of three sections (objects, offsets, meta) each with its BLAKE3 digest, and the
//! sections themselves, which are exactly the regions a [`BaseHeap`] reads. Opening maps the
//! file and serves reads from the mapping.
//!
//! ```
//! use cowheap_heap::{synth, BaseHeap, Verification};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("base.cowheap");
//! let built = synth::image(2_000, 3);
//! built.save(&path).unwrap();
//! let mapped = BaseHeap::open(&path).unwrap();          // verified
//! assert!(mapped.is_mapped());
//! assert_eq!(mapped.fingerprint(), built.fingerprint());
//! let trusted = BaseHeap::open_with(&path, Verification::Trust).unwrap();
//! assert_eq!(trusted.len(), built.len());
//! ```

use crate::base::{BaseHeap, Meta, Regions, Root};
use crate::file::{self, FileError, FileResult, Fingerprint, Reader};
use crate::layout::{self, HEADER_WORDS};
use crate::storage::Storage;
use crate::{Decoded, ObjectIndex, Word};
use rayon::prelude::*;
use std::path::Path;

/// The first eight bytes of every image file.
pub const MAGIC: [u8; 8] = *b"COWHEAP\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 56;
const SECTION_NAMES: [&str; 3] = ["objects section", "offsets section", "meta section"];
const TABLE_END: usize = HEADER_LEN + 3 * ENTRY_LEN;
/// Objects verified per parallel task.
const CHUNK: usize = 1 << 14;

/// How much of a file [`BaseHeap::open_with`] checks before serving it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verification {
    /// Every section's digest and every object: headers well formed, formats and sizes
    /// consistent, every reference in range. O(file size), in parallel.
    #[default]
    Full,
    /// The header, the section table and the meta section, the regions' extents, nil, the
    /// immediates' classes and the roots only: O(roots). For files the caller wrote itself
    /// or verified before. What a corrupt file opened this way can and cannot do:
    ///
    /// - every read is a checked load: no panic and no undefined behaviour, whatever the
    ///   bytes (a property test opens thousands of hostile files trusted);
    /// - a header that does not decode (an unknown format, a size past the end) is a typed
    ///   error ([`crate::Error::Corrupt`]) to the reads that decode the whole header
    ///   ([`BaseHeap::object`], [`BaseHeap::format`], and so a tenant's first write) and to
    ///   every read past the object words; a read of one field (a slot inside the words,
    ///   the size, the hash, the bytes) answers what its word holds, as the read path
    ///   decodes no more than it needs (`heap/tests/trusted_headers.rs`);
    /// - objects may overlap or claim wrong sizes, classes or hashes: reads then give wrong
    ///   answers;
    /// - a slot may hold a reference past the end (refused when followed), a private
    ///   reference or an invalid word, and a class word a private reference: read from the
    ///   base, such a word belongs to no tenant and every tenant refuses it; a tenant's
    ///   first write (or become) to an object holding one, or a reference past the end, in
    ///   a slot or as its class, is refused, so a copy never names a tenant's own object nor
    ///   makes a snapshot no restore accepts ([`BaseHeap::is_trusted`]);
    /// - a pointer object with raw bytes cannot be copied: a first write to it is refused;
    /// - exporting such a base to a Smalltalk image fails with a typed error or writes what
    ///   the objects say;
    /// - its fingerprint is made from the digests the section table holds, not from the
    ///   bytes, so a file changed after it was written keeps the fingerprint of what was
    ///   written: snapshots of that content restore onto the changed bytes.
    Trust,
}

/// What an image file's header and section table say: returned by [`inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Format version.
    pub version: u32,
    /// Number of objects.
    pub objects: u64,
    /// Bytes of object data.
    pub object_bytes: u64,
    /// Total file size.
    pub file_bytes: u64,
    /// The base's content fingerprint.
    pub fingerprint: Fingerprint,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if bytes.len() > 1 << 20 {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
    *h.finalize().as_bytes()
}

fn fingerprint_of(objects: u64, object_bytes: u64, digests: &[[u8; 32]; 3]) -> Fingerprint {
    let mut h = blake3::Hasher::new();
    h.update(b"cowheap base v1");
    h.update(&objects.to_le_bytes());
    h.update(&object_bytes.to_le_bytes());
    for d in digests {
        h.update(d);
    }
    Fingerprint(*h.finalize().as_bytes())
}

fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(meta.nil.as_u32().to_le_bytes());
    let flags = u32::from(meta.int_class.is_some())
        | (u32::from(meta.char_class.is_some()) << 1)
        | (u32::from(meta.float_class.is_some()) << 2);
    out.extend(flags.to_le_bytes());
    for c in [meta.int_class, meta.char_class] {
        out.extend(c.map_or(0, Word::bits).to_le_bytes());
    }
    // The class of floats is written only when there is one, so files without it keep the
    // layout (and fingerprint) they always had.
    if let Some(c) = meta.float_class {
        out.extend(c.bits().to_le_bytes());
    }
    let roots = meta.roots.iter().map(|r| (r.name.as_str(), r.value));
    // Every name fits: `Builder::add_root` refuses longer ones and a file cannot hold them.
    file::write_roots(&mut out, roots).expect("root names are shorter than 2^32 bytes");
    out
}

fn decode_meta(bytes: &[u8], at: u64) -> FileResult<Meta> {
    let mut r = Reader::new(bytes, at);
    let nil = ObjectIndex::from_u32(r.u32("nil")?);
    let flags = r.u32("meta flags")?;
    if flags > 7 {
        return Err(FileError::corrupt("meta section", "unknown flags"));
    }
    let int_class = r.u64("class of small integers")?;
    let char_class = r.u64("class of characters")?;
    // A class field whose flag is clear is written as zeros: anything else would be bytes
    // the heap ignores but its fingerprint covers, two fingerprints for one content.
    if (flags & 1 == 0 && int_class != 0) || (flags & 2 == 0 && char_class != 0) {
        return Err(FileError::corrupt(
            "meta section",
            "a class field whose flag is clear is not zero",
        ));
    }
    let float_class = if flags & 4 != 0 {
        Some(Word::from_bits(r.u64("class of immediate floats")?))
    } else {
        None
    };
    let roots = file::read_roots(&mut r, "meta section")?
        .into_iter()
        .map(|(name, value)| Root { name, value })
        .collect();
    if r.remaining() != 0 {
        return Err(FileError::corrupt(
            "meta section",
            "bytes after the last root",
        ));
    }
    Ok(Meta {
        nil,
        int_class: (flags & 1 != 0).then_some(Word::from_bits(int_class)),
        char_class: (flags & 2 != 0).then_some(Word::from_bits(char_class)),
        float_class,
        roots,
    })
}

impl BaseHeap {
    /// The content fingerprint: a BLAKE3 digest that names this exact base (objects, offsets,
    /// roots). Equal for a heap built in memory and the same heap saved and mapped.
    /// Time: O(1) for a mapped heap; O(size) once for a built one, then cached.
    pub fn fingerprint(&self) -> Fingerprint {
        *self.fingerprint.get_or_init(|| {
            let meta = encode_meta(&self.meta);
            let digests = [
                digest(self.objects_bytes()),
                digest(self.offsets_bytes()),
                digest(&meta),
            ];
            fingerprint_of(self.len as u64, self.objects_bytes().len() as u64, &digests)
        })
    }

    /// Writes this heap to `path` as an image file, atomically (see
    /// [`crate::file::write_atomically`]). Time: O(size).
    pub fn save(&self, path: &Path) -> FileResult<()> {
        self.save_staged(path)?.commit()
    }

    /// [`BaseHeap::save`]'s file written and fsynced beside `path`, not yet in its place
    /// ([`crate::file::Staged`]): for a caller that opens it and decides whether it goes in
    /// (a flatten that a commit may have superseded meanwhile). Time: O(size).
    pub fn save_staged(&self, path: &Path) -> FileResult<crate::file::Staged> {
        let meta = encode_meta(&self.meta);
        let sections: [&[u8]; 3] = [self.objects_bytes(), self.offsets_bytes(), &meta];
        let digests = sections.map(digest);
        let mut table = Vec::with_capacity(3 * ENTRY_LEN);
        let mut at = TABLE_END as u64;
        for (kind, (s, d)) in sections.iter().zip(&digests).enumerate() {
            table.extend((kind as u32 + 1).to_le_bytes());
            table.extend(0u32.to_le_bytes());
            table.extend(at.to_le_bytes());
            table.extend((s.len() as u64).to_le_bytes());
            table.extend(d);
            at += s.len() as u64;
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend(MAGIC);
        header.extend(VERSION.to_le_bytes());
        header.extend(8u32.to_le_bytes());
        header.extend(0u32.to_le_bytes());
        header.extend(3u32.to_le_bytes());
        header.extend((self.len as u64).to_le_bytes());
        header.extend((self.objects_bytes().len() as u64).to_le_bytes());
        let check = header_digest(&header, &table);
        header.extend(check);
        header.extend(0u64.to_le_bytes());
        file::stage(path, |w| {
            w.write_all(&header)?;
            w.write_all(&table)?;
            for s in sections {
                w.write_all(s)?;
            }
            Ok(())
        })
    }

    /// Maps and fully verifies the image file at `path`. See [`BaseHeap::open_with`].
    pub fn open(path: &Path) -> FileResult<BaseHeap> {
        BaseHeap::open_with(path, Verification::Full)
    }

    /// Maps the image file at `path` and serves reads from the mapping, after checking it as
    /// `verification` says. Time: O(1) plus O(roots) with [`Verification::Trust`] (no
    /// per-object work at all); O(size), in parallel, with [`Verification::Full`].
    ///
    /// # Errors
    /// A typed [`FileError`] for every way a file can be wrong: too short, wrong magic or
    /// version, a checksum that does not match, a count or offset out of range, an object
    /// that breaks a rule of the format; [`FileError::Io`] for a path that names no regular
    /// file (a directory, a FIFO, a device), refused before anything is mapped.
    pub fn open_with(path: &Path, verification: Verification) -> FileResult<BaseHeap> {
        // A regular file only: a directory opens but does not map (the system says "no such
        // device") and is named for what it is, and a FIFO is refused at once rather than
        // waited on for a writer.
        let file = file::open_regular(path)?;
        let mmap = map(&file).map_err(|e| FileError::io(path, e))?;
        let mut heap = parse(Storage::mapped(mmap))?;
        if verification == Verification::Full {
            heap.verify()?;
        }
        heap.trusted = verification == Verification::Trust;
        Ok(heap)
    }

    /// Checks every object of this heap: its header well formed, its format and size
    /// consistent, objects tiling their region exactly, every reference in range; and, for a
    /// mapped heap, every section's digest. Time: O(size), in parallel with rayon.
    pub fn verify(&self) -> FileResult<()> {
        if self.storage.is_mapped() {
            let stored = table_digests(self.storage.bytes())?;
            let checks: Vec<bool> = [0usize, 1]
                .into_par_iter()
                .map(|i| {
                    let s = if i == 0 {
                        self.objects_bytes()
                    } else {
                        self.offsets_bytes()
                    };
                    digest(s) == stored[i]
                })
                .collect();
            for (i, ok) in checks.into_iter().enumerate() {
                if !ok {
                    return Err(FileError::Checksum {
                        part: SECTION_NAMES[i],
                    });
                }
            }
        }
        self.verify_structure()
    }

    fn verify_structure(&self) -> FileResult<()> {
        let len = self.len;
        // Whole words: `from_parts` made the object words a region of words.
        let words = self.objects.words().len() as u64;
        let n_chunks = len.div_ceil(CHUNK);
        (0..n_chunks).into_par_iter().try_for_each(|c| {
            (c * CHUNK..((c + 1) * CHUNK).min(len)).try_for_each(|i| self.verify_object(i, words))
        })?;
        let meta = &self.meta;
        let in_range = |w: Word, immediates: bool| match w.decode() {
            Decoded::Base(x) => x.get() < len,
            _ => immediates && w.is_immediate(),
        };
        if meta.nil.get() >= len {
            return Err(FileError::corrupt("meta section", "nil is not an object"));
        }
        for c in [meta.int_class, meta.char_class, meta.float_class]
            .into_iter()
            .flatten()
        {
            if !in_range(c, false) {
                return Err(FileError::corrupt(
                    "meta section",
                    "an immediate class is not an object",
                ));
            }
        }
        if !meta.roots.iter().all(|r| in_range(r.value, true)) {
            return Err(FileError::corrupt(
                "meta section",
                "a root refers outside the heap",
            ));
        }
        Ok(())
    }

    fn verify_object(&self, i: usize, words: u64) -> FileResult<()> {
        let objects = self.objects.words();
        let bad = |problem| Err(FileError::corrupt(format!("object {i}"), problem));
        let offset = |j: usize| self.offsets.get(j).unwrap_or(u64::MAX);
        let off = offset(i);
        let next = if i + 1 < self.len {
            offset(i + 1)
        } else {
            words
        };
        if i == 0 && off != 0 {
            return bad("the first object does not start the objects section");
        }
        if next > words
            || off
                .checked_add(HEADER_WORDS as u64)
                .is_none_or(|end| end > next)
        {
            return bad("its header lies outside the objects section");
        }
        let h = off as usize;
        let word = |k: usize| objects.get(h + k).unwrap_or(0);
        let class = Word::from_bits(word(0));
        let size = layout::size(word(layout::SIZE_WORD));
        let Some(format) = layout::format(word(layout::INFO_WORD)) else {
            return bad("unknown format code");
        };
        if !format.fits(size) {
            return bad("its size does not fit its format");
        }
        if off + layout::object_words(size) as u64 != next {
            return bad("it does not end where the next object starts");
        }
        let len = self.len;
        let is_object = |w: Word| matches!(w.decode(), Decoded::Base(x) if x.get() < len);
        if !is_object(class) {
            return bad("its class is not an object of the heap");
        }
        for k in 0..size.slots {
            match Word::from_bits(word(HEADER_WORDS + k)).decode() {
                Decoded::Base(x) if x.get() >= len => return bad("a slot refers outside the heap"),
                Decoded::Private(_) => return bad("a slot holds a private reference"),
                Decoded::Reserved(w) if !Word::from_bits(w).is_valid() => {
                    return bad("a slot holds a word that is no immediate and no reference");
                }
                _ => {}
            }
        }
        let bytes_at = (h + HEADER_WORDS + size.slots) * 8;
        let padded = size.bytes.div_ceil(8) * 8;
        let padding = objects
            .bytes()
            .get(bytes_at + size.bytes..bytes_at + padded);
        if padding.is_none_or(|p| p.iter().any(|&x| x != 0)) {
            return bad("padding after its bytes is not zero");
        }
        Ok(())
    }
}

fn header_digest(header40: &[u8], table: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&header40[..40]);
    h.update(table);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Maps `file` read-only.
#[allow(
    unsafe_code,
    reason = "memory mapping a file is unsafe in Rust; see the SAFETY note"
)]
pub(crate) fn map(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change if another process
    // writes the file while it is mapped, which would break the immutability of `&[u8]`.
    // cowheap never writes a file in place: `save` writes a new file and renames it over the
    // old path, so an existing mapping keeps the old inode's bytes. Every read of the mapping
    // is a bounds-checked load of a plain integer (a byte or a word, any bit pattern valid),
    // so even bytes that changed underneath could give wrong values, not out-of-bounds access.
    // Writing an image file in place by other means while it is open is outside the
    // contract (docs/FORMATS.md).
    unsafe { memmap2::Mmap::map(file) }
}

/// Reads the header and section table of a mapped file and builds the heap over it.
fn parse(storage: Storage) -> FileResult<BaseHeap> {
    let b = storage.bytes();
    let (objects, object_bytes, table) = parse_header(b)?;
    let (ranges, digests) = parse_sections(table, b.len() as u64)?;
    if ranges[0].1 as u64 != object_bytes || object_bytes % 8 != 0 {
        return Err(FileError::corrupt(
            "section table",
            "the objects section does not match the header",
        ));
    }
    if Some(ranges[1].1 as u64) != objects.checked_mul(8) {
        return Err(FileError::corrupt(
            "section table",
            "the offsets section does not match the object count",
        ));
    }
    let meta_bytes = &b[ranges[2].0..ranges[2].0 + ranges[2].1];
    if digest(meta_bytes) != digests[2] {
        return Err(FileError::Checksum {
            part: SECTION_NAMES[2],
        });
    }
    let meta = decode_meta(meta_bytes, ranges[2].0 as u64)?;
    if meta.nil.get() as u64 >= objects {
        return Err(FileError::corrupt("meta section", "nil is not an object"));
    }
    let regions = Regions {
        objects_at: ranges[0].0,
        objects_len: ranges[0].1,
        offsets_at: ranges[1].0,
        len: objects as usize,
    };
    let fingerprint = fingerprint_of(objects, object_bytes, &digests);
    BaseHeap::from_parts(storage, regions, meta, Some(fingerprint)).map_err(|e| match e {
        crate::Error::Corrupt(problem) | crate::Error::TooLarge(problem) => {
            FileError::corrupt("file", problem)
        }
        _ => FileError::corrupt("file", "the regions do not make a heap"),
    })
}

/// The header's fields after its checks: the object count, the object bytes, and the bytes
/// of the section table (whose digest the header holds).
fn parse_header(b: &[u8]) -> FileResult<(u64, u64, &[u8])> {
    let mut r = Reader::new(b, 0);
    let magic: [u8; 8] = r.array("the magic")?;
    if magic != MAGIC {
        return Err(FileError::BadMagic {
            expected: "cowheap image file",
            found: magic,
        });
    }
    let head = r.take(HEADER_LEN - 8, "the header")?;
    let table = r.take(3 * ENTRY_LEN, "the section table")?;
    let mut h = Reader::new(head, 8);
    let version = h.u32("version")?;
    if version != VERSION {
        return Err(FileError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let stored_check: [u8; 16] = b[40..56].try_into().expect("header length checked");
    if header_digest(&b[..40], table) != stored_check {
        return Err(FileError::Checksum { part: "header" });
    }
    let (word_size, flags, sections) = (
        h.u32("word size")?,
        h.u32("flags")?,
        h.u32("section count")?,
    );
    let objects = h.u64("object count")?;
    let object_bytes = h.u64("object bytes")?;
    if word_size != 8 || flags != 0 || sections != 3 || b.get(56..64) != Some(&[0; 8][..]) {
        return Err(FileError::corrupt(
            "header",
            "unsupported word size, flags or section count",
        ));
    }
    if objects > 1 << 32 {
        return Err(FileError::corrupt(
            "header",
            "more objects than references can name",
        ));
    }
    Ok((objects, object_bytes, table))
}

/// The section table: each section's byte range and digest, checked to follow one another,
/// 8-aligned, in order, inside the file, and to end it.
#[allow(
    clippy::type_complexity,
    reason = "three ranges and three digests, named at the call"
)]
fn parse_sections(table: &[u8], file_len: u64) -> FileResult<([(usize, usize); 3], [[u8; 32]; 3])> {
    let mut t = Reader::new(table, HEADER_LEN as u64);
    let mut ranges = [(0usize, 0usize); 3];
    let mut digests = [[0u8; 32]; 3];
    let mut end = TABLE_END as u64;
    for (k, (range, d)) in ranges.iter_mut().zip(&mut digests).enumerate() {
        let (kind, reserved) = (t.u32("section kind")?, t.u32("section reserved")?);
        let (at, len) = (t.u64("section offset")?, t.u64("section length")?);
        *d = t.array("section digest")?;
        if kind != k as u32 + 1 || reserved != 0 {
            return Err(FileError::corrupt(
                "section table",
                "sections are not objects, offsets, meta",
            ));
        }
        if at != end || at % 8 != 0 {
            return Err(FileError::corrupt(
                "section table",
                "a section does not follow the previous one",
            ));
        }
        let stop = at
            .checked_add(len)
            .filter(|&s| s <= file_len)
            .ok_or(FileError::Truncated {
                what: SECTION_NAMES[k],
                at,
                need: len,
                have: file_len,
            })?;
        *range = (at as usize, len as usize);
        end = stop;
    }
    if end != file_len {
        return Err(FileError::corrupt("file", "bytes after the last section"));
    }
    Ok((ranges, digests))
}

/// The digests the section table of a mapped file holds.
fn table_digests(b: &[u8]) -> FileResult<[[u8; 32]; 3]> {
    let mut out = [[0u8; 32]; 3];
    for (k, d) in out.iter_mut().enumerate() {
        let at = HEADER_LEN + k * ENTRY_LEN + 24;
        *d = b
            .get(at..at + 32)
            .and_then(|s| s.try_into().ok())
            .ok_or(FileError::corrupt("section table", "short"))?;
    }
    Ok(out)
}

/// Reads what an image file's header says, checking what a trusted open checks
/// ([`Verification::Trust`]: the header, the section table, the meta section, the regions'
/// extents and the roots), not the objects. Time: O(roots).
pub fn inspect(path: &Path) -> FileResult<ImageInfo> {
    let heap = BaseHeap::open_with(path, Verification::Trust)?;
    Ok(ImageInfo {
        version: VERSION,
        objects: heap.len as u64,
        object_bytes: heap.objects_bytes().len() as u64,
        file_bytes: heap.storage.bytes().len() as u64,
        fingerprint: heap.fingerprint(),
    })
}
