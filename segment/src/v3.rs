//! The Squeak V3 ImageSegment word format (what primitives 98 and 99 write and read).
//!
//! A segment is a sequence of 32-bit words in the writing machine's byte order:
//!
//! ```text
//! word 0      version word: the image version (6502, or 6504 for closures... as V3 images)
//!             in the low 24 bits, a byte-order letter in the top byte ('s' = 0x73 in the
//!             Etoys files); read in either byte order, the order whose low bits give a
//!             known version is the segment's
//! word 1...   objects, each a V3 header (1, 2 or 3 words) then its body; the first object is
//!             the roots array
//! ```
//!
//! A V3 header: the *base header* word holds, from the top, 3 GC bits, a 12-bit identity
//! hash, a 5-bit compact class index, a 4-bit format, a 6-bit size in words (base header
//! included) and a 2-bit header type: 3 = one word (the class is the compact class), 1 = two
//! words (a class word with type bits 01 precedes it), 0 = three words (a size word holding
//! the size in bytes, then a class word, both with type bits 00). An oop inside the segment
//! is the byte offset of an object's base header from the segment word array's own oop
//! (so the version word, the array's first field, is at 4, and word `i` at `4 * (i + 1)`);
//! an oop with the top bit set is an *out-pointer*: `0x80000000 + 4 * k` names element `k`
//! (1-based) of the segment's out-pointer table. Small integers have the low bit set.
//!
//! Formats: 0-4 pointers (4 weak; in a context, format 3 of compact class 13 or 14, only the
//! six fixed fields and the stack up to the stack pointer are pointers, the rest is kept raw
//! as the virtual machine leaves it), 6 words, 8-11 bytes (the low two bits are unused bytes at
//! the end), 12-15 a compiled method (header and literals are pointers, then bytes).
//!
//! [`V3Segment::parse`] decodes every word into a typed form and [`V3Segment::to_bytes`]
//! writes that form back; for any segment `parse` accepts, the two round-trip byte for byte
//! (the only freedom, the three-word header's size word, is derived from the body).

use crate::error::{Result, SegmentError};
pub use cowheap_squeak::ByteOrder;

/// Compact class indices the V3 virtual machine treats as contexts (BlockContext 13,
/// MethodContext 14), whatever the image's compact classes array holds.
pub const CONTEXT_CLASSES: [u8; 2] = [13, 14];
/// The format of a V3 context (fixed fields and indexable ones): the virtual machine ends
/// an object's pointers at its stack pointer only when it has this format and a context's
/// compact class index ([`CONTEXT_CLASSES`]).
pub const CONTEXT_FORMAT: u8 = 3;
/// Fixed fields of a V3 context before its temporaries and stack.
pub const CONTEXT_FIXED: usize = 6;
/// Field of a V3 context holding its stack pointer.
pub const CONTEXT_STACKP: usize = 2;

/// The high bit of an out-pointer oop.
pub const OUT_POINTER_BIT: u32 = 0x8000_0000;
/// Objects a segment (V3 or Spur) may hold before a parse refuses it. The real Etoys
/// projects hold a few thousand; a parsed object takes about 70 bytes beside its words, so the
/// cap keeps a segment of tiny objects from growing past about 300 MiB.
pub const MAX_OBJECTS: usize = 1 << 22;

/// How an object's header was written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HeaderKind {
    /// One word: the class is a compact class.
    One,
    /// Two words: a class word, then the base header.
    Two,
    /// Three words: a size word, a class word, the base header.
    Three,
}

impl HeaderKind {
    /// Header words.
    pub fn words(self) -> usize {
        match self {
            HeaderKind::One => 1,
            HeaderKind::Two => 2,
            HeaderKind::Three => 3,
        }
    }
}

/// A pointer-sized value in a segment, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Oop {
    /// A SmallInteger (31 bits).
    Int(i32),
    /// An object of the segment, by its number (0 is the roots array).
    Obj(u32),
    /// An out-pointer, 1-based index into the out-pointer table.
    Out(u32),
}

/// The class of a segment object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ClassRef {
    /// A compact class index (1-31) of the image that wrote the segment.
    Compact(u8),
    /// A class inside the segment.
    Obj(u32),
    /// A class outside it, through the out-pointer table (1-based).
    Out(u32),
}

/// One object of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegObject {
    /// Word index of its first header word.
    pub at: usize,
    /// Its header kind.
    pub header: HeaderKind,
    /// Its class as its header writes it: the compact class of a one-word header, else
    /// the class word. The class the object has is [`SegObject::vm_class`].
    pub class: ClassRef,
    /// The V3 format (0-15).
    pub format: u8,
    /// The 12-bit identity hash.
    pub hash: u16,
    /// The 3 GC bits.
    pub gc_bits: u8,
    /// The base header's compact class field (also set in some two- and three-word
    /// headers: kept as written).
    pub compact_field: u8,
    /// The base header's 6-bit size field as written (0 in three-word headers).
    pub size_field: u8,
    /// Pointer fields: all fields of formats 0-4; the header and literals of a method.
    pub pointers: Vec<Oop>,
    /// The other body words, as read (in the segment's byte order).
    pub raw: Vec<u32>,
}

impl SegObject {
    /// Words of the body (fields).
    pub fn body_words(&self) -> usize {
        self.pointers.len() + self.raw.len()
    }

    /// Whole words, header included.
    pub fn total_words(&self) -> usize {
        self.header.words() + self.body_words()
    }

    /// The class the V3 virtual machine answers for the object (`fetchClassOf:`): the
    /// compact class whenever the base header names one, whatever the header's size (a
    /// large instance of a compact class has a class word too, and the index wins), else
    /// the class word's.
    pub fn vm_class(&self) -> ClassRef {
        if self.compact_field == 0 {
            self.class
        } else {
            ClassRef::Compact(self.compact_field)
        }
    }

    /// The bytes of a byte object (formats 8-15: for a method, its bytecodes), in memory
    /// order (the segment's words are memory images, so bytes are in string order in either
    /// byte order). Empty for other formats.
    pub fn bytes(&self, order: ByteOrder) -> Vec<u8> {
        if self.format < 8 {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.raw.len() * 4);
        for &w in &self.raw {
            out.extend(match order {
                ByteOrder::Little => w.to_le_bytes(),
                ByteOrder::Big => w.to_be_bytes(),
            });
        }
        out.truncate(out.len().saturating_sub(usize::from(self.format & 3)));
        out
    }
}

/// A decoded V3 segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Segment {
    /// The byte order of its words.
    pub order: ByteOrder,
    /// The whole version word.
    pub version_word: u32,
    /// Every object, in address order; the first is the roots array.
    pub objects: Vec<SegObject>,
}

/// Counts over a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// Words in the segment, the version word included.
    pub words: usize,
    /// Objects.
    pub objects: usize,
    /// Objects by header kind: one, two, three words.
    pub headers: [usize; 3],
    /// Fields of the roots array.
    pub roots: usize,
    /// Pointer fields naming objects of the segment.
    pub internal_refs: usize,
    /// Pointer fields and class words naming out-pointers.
    pub out_refs: usize,
    /// Pointer fields holding SmallIntegers.
    pub ints: usize,
    /// Distinct out-pointers used.
    pub out_pointers_used: usize,
}

impl V3Segment {
    /// The image version (6502 or 6504).
    pub fn version(&self) -> u32 {
        self.version_word & 0x00FF_FFFF
    }

    /// The byte-order letter in the version word's top byte.
    pub fn letter(&self) -> u8 {
        (self.version_word >> 24) as u8
    }

    /// Decodes `bytes`, the segment's words. `out_pointers` is the length of the out-pointer
    /// table, against which every out-pointer is checked. Time: O(words).
    ///
    /// # Errors
    /// [`SegmentError::OddLength`], [`SegmentError::BadVersion`], [`SegmentError::BadHeader`],
    /// [`SegmentError::SegmentTruncated`], [`SegmentError::DanglingOop`],
    /// [`SegmentError::BadOutPointer`], [`SegmentError::NoRootsArray`].
    pub fn parse(bytes: &[u8], out_pointers: usize) -> Result<V3Segment> {
        if !bytes.len().is_multiple_of(4) {
            return Err(SegmentError::OddLength(bytes.len()));
        }
        let first: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(SegmentError::OddLength(bytes.len()))?;
        let known = |w: u32| matches!(w & 0x00FF_FFFF, 6502 | 6504);
        let (order, version_word) = if known(u32::from_le_bytes(first)) {
            (ByteOrder::Little, u32::from_le_bytes(first))
        } else if known(u32::from_be_bytes(first)) {
            (ByteOrder::Big, u32::from_be_bytes(first))
        } else {
            return Err(SegmentError::BadVersion(u32::from_le_bytes(first)));
        };
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| {
                let c = [c[0], c[1], c[2], c[3]];
                match order {
                    ByteOrder::Little => u32::from_le_bytes(c),
                    ByteOrder::Big => u32::from_be_bytes(c),
                }
            })
            .collect();
        let headers = walk(&words)?;
        // Object number by the word index of its base header.
        let mut index = vec![u32::MAX; words.len()];
        for (i, h) in (0u32..).zip(&headers) {
            index[h.base] = i;
        }
        let resolve = |w: u32, at: usize| -> Result<Oop> {
            if w & 1 == 1 {
                return Ok(Oop::Int((w as i32) >> 1));
            }
            if w & OUT_POINTER_BIT != 0 {
                let off = w & !OUT_POINTER_BIT;
                let k = (off / 4) as usize;
                if !off.is_multiple_of(4) || k == 0 || k > out_pointers {
                    return Err(SegmentError::BadOutPointer {
                        at,
                        index: k,
                        len: out_pointers,
                    });
                }
                return Ok(Oop::Out(k as u32));
            }
            if !w.is_multiple_of(4) {
                return Err(SegmentError::DanglingOop { at, oop: w });
            }
            // An oop is relative to the segment word array's own oop: its first word (the
            // version word) is at 4.
            ((w / 4) as usize)
                .checked_sub(1)
                .and_then(|i| index.get(i))
                .copied()
                .filter(|&i| i != u32::MAX)
                .map(Oop::Obj)
                .ok_or(SegmentError::DanglingOop { at, oop: w })
        };
        let mut objects = Vec::with_capacity(headers.len());
        for h in &headers {
            let base = words[h.base];
            let format = ((base >> 8) & 15) as u8;
            let compact_field = ((base >> 12) & 31) as u8;
            let bad = |problem| SegmentError::BadHeader {
                at: h.base,
                problem,
            };
            let class = match h.kind {
                HeaderKind::One => {
                    if compact_field == 0 {
                        return Err(bad("a one-word header with compact class index 0"));
                    }
                    ClassRef::Compact(compact_field)
                }
                _ => match resolve(h.class_word & !3, h.base - 1)? {
                    Oop::Obj(i) => ClassRef::Obj(i),
                    Oop::Out(k) => ClassRef::Out(k),
                    Oop::Int(_) => return Err(bad("a class word that is a SmallInteger")),
                },
            };
            let body = &words[h.base + 1..h.base + h.words];
            let n_ptr = match format {
                CONTEXT_FORMAT if CONTEXT_CLASSES.contains(&compact_field) => {
                    // A context: only the fields up to its stack pointer are pointers (V3's
                    // `lastPointerOf:`, which asks this of format 3 alone: any other pointer
                    // format of the same compact class index is all pointers); the rest may
                    // hold stale words.
                    let sp = match body.get(CONTEXT_STACKP) {
                        Some(&w) if w & 1 == 1 => ((w as i32) >> 1).max(0) as usize,
                        _ => 0,
                    };
                    (CONTEXT_FIXED + sp).min(body.len())
                }
                0..=4 => body.len(),
                5 | 7 => return Err(bad("format 5 or 7, which V3 does not use")),
                6 | 8..=11 => 0,
                _ => {
                    let head = *body
                        .first()
                        .ok_or(bad("a compiled method without a header"))?;
                    if head & 1 == 0 {
                        return Err(bad("a compiled method whose header is no SmallInteger"));
                    }
                    let lits = ((head >> 10) & 0xFF) as usize;
                    if lits + 1 > body.len() {
                        return Err(bad("a compiled method with more literals than fields"));
                    }
                    lits + 1
                }
            };
            if format >= 8 && usize::from(format & 3) > 4 * (body.len() - n_ptr) {
                return Err(bad("more unused bytes than bytes"));
            }
            let pointers = body[..n_ptr]
                .iter()
                .enumerate()
                .map(|(k, &w)| resolve(w, h.base + 1 + k))
                .collect::<Result<Vec<_>>>()?;
            objects.push(SegObject {
                at: h.start,
                header: h.kind,
                class,
                format,
                hash: ((base >> 17) & 0xFFF) as u16,
                gc_bits: (base >> 29) as u8,
                compact_field,
                size_field: ((base >> 2) & 63) as u8,
                pointers,
                raw: body[n_ptr..].to_vec(),
            });
        }
        match objects.first() {
            Some(o) if o.format <= 4 => {}
            _ => return Err(SegmentError::NoRootsArray),
        }
        Ok(V3Segment {
            order,
            version_word,
            objects,
        })
    }

    /// The roots: the roots array's fields.
    pub fn roots(&self) -> &[Oop] {
        self.objects
            .first()
            .map(|o| o.pointers.as_slice())
            .unwrap_or(&[])
    }

    /// The counts. Time: O(objects + fields).
    pub fn stats(&self) -> SegmentStats {
        let mut s = SegmentStats {
            words: 1 + self
                .objects
                .iter()
                .map(SegObject::total_words)
                .sum::<usize>(),
            objects: self.objects.len(),
            roots: self.roots().len(),
            ..SegmentStats::default()
        };
        let mut used = std::collections::BTreeSet::new();
        for o in &self.objects {
            s.headers[o.header.words() - 1] += 1;
            if let ClassRef::Out(k) = o.class {
                s.out_refs += 1;
                used.insert(k);
            }
            for p in &o.pointers {
                match *p {
                    Oop::Int(_) => s.ints += 1,
                    Oop::Obj(_) => s.internal_refs += 1,
                    Oop::Out(k) => {
                        s.out_refs += 1;
                        used.insert(k);
                    }
                }
            }
        }
        s.out_pointers_used = used.len();
        s
    }

    /// Writes the segment's words back, in its byte order. Time: O(words).
    ///
    /// # Errors
    /// [`SegmentError::BadHeader`] if the decoded form cannot be written: a size over the
    /// 32-bit range, a SmallInteger outside 31 bits, a reference to an object number the
    /// segment does not have.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        // Byte offset of each object's base header.
        let mut oops = Vec::with_capacity(self.objects.len());
        let mut pos = 1usize;
        for o in &self.objects {
            oops.push(pos + o.header.words() - 1);
            pos += o.total_words();
        }
        let bad = |at, problem| SegmentError::BadHeader { at, problem };
        let oop_of = |i: u32, at: usize| -> Result<u32> {
            oops.get(i as usize)
                .and_then(|&w| u32::try_from((w + 1) * 4).ok())
                .filter(|&b| b & OUT_POINTER_BIT == 0)
                .ok_or(bad(
                    at,
                    "a reference to an object the segment does not have",
                ))
        };
        let encode = |p: Oop, at: usize| -> Result<u32> {
            Ok(match p {
                Oop::Int(i) => {
                    if !(-(1 << 30)..(1 << 30)).contains(&i) {
                        return Err(bad(at, "a SmallInteger outside 31 bits"));
                    }
                    ((i as u32) << 1) | 1
                }
                Oop::Obj(i) => oop_of(i, at)?,
                Oop::Out(k) => k
                    .checked_mul(4)
                    .filter(|&b| b & OUT_POINTER_BIT == 0)
                    .map(|b| b | OUT_POINTER_BIT)
                    .ok_or(bad(at, "an out-pointer index over 2^29"))?,
            })
        };
        let mut words: Vec<u32> = Vec::with_capacity(pos);
        words.push(self.version_word);
        for o in &self.objects {
            let at = words.len();
            let class_word = |w: &mut Vec<u32>, tag: u32| -> Result<()> {
                let c = match o.class {
                    ClassRef::Obj(i) => encode(Oop::Obj(i), at)?,
                    ClassRef::Out(k) => encode(Oop::Out(k), at)?,
                    ClassRef::Compact(_) => {
                        return Err(bad(at, "a compact class in a two- or three-word header"));
                    }
                };
                w.push(c | tag);
                Ok(())
            };
            let type_bits = match o.header {
                HeaderKind::One => 3,
                HeaderKind::Two => {
                    class_word(&mut words, 1)?;
                    1
                }
                HeaderKind::Three => {
                    let size = u32::try_from((o.body_words() + 1) * 4)
                        .map_err(|_| bad(at, "an object over 4 GB"))?;
                    words.push(size);
                    class_word(&mut words, 0)?;
                    0
                }
            };
            words.push(
                (u32::from(o.gc_bits & 7) << 29)
                    | (u32::from(o.hash & 0xFFF) << 17)
                    | (u32::from(o.compact_field & 31) << 12)
                    | (u32::from(o.format & 15) << 8)
                    | (u32::from(o.size_field & 63) << 2)
                    | type_bits,
            );
            for (k, &p) in o.pointers.iter().enumerate() {
                words.push(encode(p, at + k)?);
            }
            words.extend_from_slice(&o.raw);
        }
        let mut out = Vec::with_capacity(words.len() * 4);
        for w in words {
            out.extend(match self.order {
                ByteOrder::Little => w.to_le_bytes(),
                ByteOrder::Big => w.to_be_bytes(),
            });
        }
        Ok(out)
    }
}

/// Where one object's header lies.
struct Header {
    /// Word index of the first header word.
    start: usize,
    /// Word index of the base header.
    base: usize,
    /// Words from the base header to the end.
    words: usize,
    class_word: u32,
    kind: HeaderKind,
}

/// Finds every object by its header, from word 1 to the end.
fn walk(words: &[u32]) -> Result<Vec<Header>> {
    let len = words.len();
    let mut out = Vec::new();
    let mut pos = 1usize;
    while pos < len {
        let get = |i: usize| {
            words.get(i).copied().ok_or(SegmentError::SegmentTruncated {
                at: pos,
                end: i + 1,
                len,
            })
        };
        let w = get(pos)?;
        let bad = |at, problem| SegmentError::BadHeader { at, problem };
        let (base, class_word, size, kind) = match w & 3 {
            0 => {
                let class = get(pos + 1)?;
                let base = get(pos + 2)?;
                if class & 3 != 0 || base & 3 != 0 {
                    return Err(bad(
                        pos,
                        "a three-word header whose class or base word is not type 0",
                    ));
                }
                // The base word's size field is not used (the size word says it); it is kept
                // as written, so a segment that sets it still writes back identically.
                (pos + 2, class, (w >> 2) as usize, HeaderKind::Three)
            }
            1 => {
                let base = get(pos + 1)?;
                if base & 3 != 1 {
                    return Err(bad(pos, "a two-word header whose base word is not type 1"));
                }
                (pos + 1, w, ((base >> 2) & 63) as usize, HeaderKind::Two)
            }
            3 => (pos, 0, ((w >> 2) & 63) as usize, HeaderKind::One),
            _ => return Err(bad(pos, "a free chunk (header type 2)")),
        };
        if size == 0 {
            return Err(bad(pos, "a size that does not count the base header"));
        }
        let end = base + size;
        if end > len {
            return Err(SegmentError::SegmentTruncated { at: pos, end, len });
        }
        if out.len() >= MAX_OBJECTS {
            return Err(SegmentError::TooLarge {
                what: "objects in a segment",
                len: out.len() as u64 + 1,
                limit: MAX_OBJECTS as u64,
            });
        }
        out.push(Header {
            start: pos,
            base,
            words: size,
            class_word,
            kind,
        });
        pos = end;
    }
    Ok(out)
}
