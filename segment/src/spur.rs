//! The Spur ImageSegment word format, 32- and 64-bit, either byte order.
//!
//! ```text
//! bytes 0-7   version stamp: a 32-bit version word (the image format, 6521 for 32-bit
//!             Spur, 68021 for 64-bit, possibly with the multiple-bytecode-sets bit 512, in
//!             the low 24 bits; a byte-order letter in the top byte, `s` little-endian and
//!             `d` big-endian), twice (the second word is kept as written); read in either
//!             byte order, the one giving a known format is the segment's, and the format
//!             gives the word size
//! bytes 8...  objects, each at an 8-byte boundary; the first is the roots array
//! ```
//!
//! An object is a Spur object as in an image (see docs/FORMATS.md, Spur images): a 64-bit
//! header (in 32-bit segments two 32-bit words, low half first) with the class field (22
//! bits), the format (5 bits), the identity hash (22 bits) and the slot count (8 bits; 255
//! means a 64-bit overflow word before the header holds it, its top byte 0xFF too), the flag
//! bits (immutable, remembered, pinned, grey) kept as written and the marked bit clear (the
//! virtual machine refuses a marked object), then the slots,
//! padded with zeros to 8 bytes and at least 8 bytes long. An oop of the segment is the
//! byte offset of an object's header from byte 8 (the first object's oop is 0, or 8 when it
//! has an overflow word). A pointer with the top bit of the word set is an out-pointer:
//! `top bit + (k - 1) * word size` names element `k` (1-based) of the out-pointer table. A
//! class field with its top bit (`0x200000`, the VM's TopHashBit) set names the out-pointer
//! `(field & 0x1FFFFF) + 1` (1-based); otherwise it is a class in the segment, whose oop in
//! 8-byte units is `field - 16` (the VM's `firstClassIndexPun`). The VM's writer puts the
//! classes of the segment right after the roots array, with the remembered bit set and
//! identity hash 0 (the loader enters them into its class table, which gives them their
//! hash); [`crate::spur_export`] does the same.
//! Immediates are the image's: 32-bit SmallIntegers (tag 1) and Characters (tag `10`);
//! 64-bit SmallIntegers (tag `001`), Characters (`010`) and SmallFloat64s (`100`).
//!
//! Formats: 0-5 pointers (every slot a pointer), 9 64-bit units, 10-11 32-bit, 12-15
//! 16-bit, 16-23 bytes, 24-31 a compiled method (the header, a SmallInteger whose low 15
//! bits count the literals, and the literals are pointers; then bytes); the low bits of the
//! raw formats count unused units at the end, which must be zero bytes, as must the padding.
//!
//! [`SpurSegment::parse`] decodes every word and [`SpurSegment::to_bytes`] writes the form
//! back: for every input `parse` accepts, byte for byte.

use crate::error::{Result, SegmentError};
use crate::v3::ByteOrder;

/// The top bit of a class field naming an out-pointer.
pub const CLASS_OUT_BIT: u32 = 0x20_0000;
/// The VM's `firstClassIndexPun` (16 in VMMaker's `SpurMemoryManager`): a class field below
/// `CLASS_OUT_BIT` names the class member at byte offset `(field - FIRST_CLASS_INDEX_PUN) * 8`.
pub const FIRST_CLASS_INDEX_PUN: u32 = 16;
/// The header's remembered bit, which marks a class of the segment with instances in it.
pub const REMEMBERED_BIT: u64 = 1 << 29;
/// The header's marked bit, which no object of a segment has.
pub const MARKED_BIT: u64 = 1 << 55;
/// Spur image formats a segment may carry, with their word sizes: 6521 and 68021, and the
/// same with the multiple-bytecode-sets bit (512) set.
pub const VERSIONS: [(u32, WordSize); 4] = [
    (6521, WordSize::W32),
    (68021, WordSize::W64),
    (6521 | 512, WordSize::W32),
    (68021 | 512, WordSize::W64),
];
/// Flag bits of the header kept as written: 22, 23, 29, 30, 31, 54, 55.
const FLAG_MASK: u64 = (1 << 22) | (1 << 23) | (7 << 29) | (3 << 54);

/// The word size of a Spur segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum WordSize {
    /// 32-bit Spur (image format 6521).
    W32,
    /// 64-bit Spur (image format 68021).
    W64,
}

impl WordSize {
    /// Bytes in a word.
    pub fn bytes(self) -> usize {
        match self {
            WordSize::W32 => 4,
            WordSize::W64 => 8,
        }
    }

    fn top_bit(self) -> u64 {
        match self {
            WordSize::W32 => 1 << 31,
            WordSize::W64 => 1 << 63,
        }
    }
}

/// A pointer of a Spur segment, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SpurOop {
    /// An immediate, as the raw word (tag bits included).
    Imm(u64),
    /// An object of the segment, by number (0 is the roots array).
    Obj(u32),
    /// An out-pointer, 1-based.
    Out(u32),
}

/// One object of a Spur segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpurObject {
    /// Its class: an object of the segment or an out-pointer (never an immediate).
    pub class: SpurOop,
    /// The Spur format (0-31).
    pub format: u8,
    /// The 22-bit identity hash.
    pub hash: u32,
    /// The header's flag bits, as written.
    pub flags: u64,
    /// The pointer slots (all slots of formats 0-5, the header and literals of a method).
    pub pointers: Vec<SpurOop>,
    /// The other slots' bytes, unused units removed, as written (units in the segment's
    /// byte order).
    pub raw: Vec<u8>,
}

/// A decoded Spur segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpurSegment {
    /// The byte order.
    pub order: ByteOrder,
    /// The word size.
    pub words: WordSize,
    /// The version word.
    pub version_word: u32,
    /// The second word of the version stamp, as written.
    pub stamp: u32,
    /// Every object in address order; the first is the roots array.
    pub objects: Vec<SpurObject>,
}

/// Counts over a Spur segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpurStats {
    /// Bytes, the version stamp included.
    pub bytes: usize,
    /// Objects.
    pub objects: usize,
    /// Objects with an overflow word (255 slots or more).
    pub overflow_headers: usize,
    /// Slots of the roots array.
    pub roots: usize,
    /// Pointer slots naming objects of the segment.
    pub internal_refs: usize,
    /// Pointer slots and class fields naming out-pointers.
    pub out_refs: usize,
    /// Pointer slots holding immediates.
    pub immediates: usize,
    /// Distinct out-pointers used.
    pub out_pointers_used: usize,
}

/// Bytes of one unit of a raw format, and how many unused units its low bits may count.
fn unit_of(format: u8, words: WordSize) -> Option<(usize, u8)> {
    let ws = words.bytes();
    Some(match format {
        9 => (8, 0),
        10 | 11 => (4, (format - 10) * u8::from(ws == 8)),
        12..=15 => (2, format - 12),
        16..=31 => (1, format & 7),
        _ => return None,
    })
}

impl SpurSegment {
    /// The image format (6521 or 68021).
    pub fn version(&self) -> u32 {
        self.version_word & 0x00FF_FFFF
    }

    /// The roots: the roots array's slots.
    pub fn roots(&self) -> &[SpurOop] {
        self.objects
            .first()
            .map(|o| o.pointers.as_slice())
            .unwrap_or(&[])
    }

    /// Decodes `bytes`, checking every out-pointer against a table of `out_pointers`.
    /// Time: O(bytes).
    ///
    /// # Errors
    /// [`SegmentError::OddLength`] for a length that is not a whole number of 8-byte units,
    /// [`SegmentError::BadVersion`], [`SegmentError::BadHeader`],
    /// [`SegmentError::SegmentTruncated`], [`SegmentError::DanglingOop`],
    /// [`SegmentError::BadImmediate`], [`SegmentError::BadOutPointer`],
    /// [`SegmentError::NoRootsArray`].
    pub fn parse(bytes: &[u8], out_pointers: usize) -> Result<SpurSegment> {
        if !bytes.len().is_multiple_of(8) || bytes.len() < 8 {
            return Err(SegmentError::OddLength(bytes.len()));
        }
        let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let known = |w: u32| VERSIONS.iter().find(|(v, _)| w & 0x00FF_FFFF == *v);
        let (order, version_word, words) = if let Some(&(_, ws)) = known(u32::from_le_bytes(first))
        {
            (ByteOrder::Little, u32::from_le_bytes(first), ws)
        } else if let Some(&(_, ws)) = known(u32::from_be_bytes(first)) {
            (ByteOrder::Big, u32::from_be_bytes(first), ws)
        } else {
            return Err(SegmentError::BadVersion(u32::from_le_bytes(first)));
        };
        let r = Reader { bytes, order };
        let stamp = r.u32(4);
        let ws = words.bytes();
        // First pass: where each object's header is, by its oop.
        struct At {
            header: usize,
            slots: usize,
            overflow: bool,
        }
        let mut ats: Vec<At> = Vec::new();
        let mut pos = 8usize;
        let word_at = |i: usize| SegmentError::SegmentTruncated {
            at: i / 4,
            end: i / 4 + 2,
            len: bytes.len() / 4,
        };
        while pos < bytes.len() {
            let bad = |problem| SegmentError::BadHeader {
                at: pos / 4,
                problem,
            };
            let mut h = r.header(pos, words).ok_or(word_at(pos))?;
            let mut header = pos;
            let mut overflow = false;
            let mut slots = (h >> 56) as usize;
            if slots == 255 {
                // An overflow word: the count, its top byte 0xFF; the header follows.
                overflow = true;
                let count = h & 0x00FF_FFFF_FFFF_FFFF;
                header = pos + 8;
                h = r.header(header, words).ok_or(word_at(header))?;
                if h >> 56 != 255 {
                    return Err(bad("an overflow word before a header that does not say so"));
                }
                if count < 255 {
                    return Err(bad("an overflow word counting fewer than 255 slots"));
                }
                slots = usize::try_from(count)
                    .ok()
                    .filter(|&c| c <= bytes.len() / ws)
                    .ok_or(SegmentError::SegmentTruncated {
                        at: pos / 4,
                        end: usize::MAX,
                        len: bytes.len() / 4,
                    })?;
            }
            let body = (slots * ws).max(8).next_multiple_of(8);
            let end = header + 8 + body;
            if end > bytes.len() {
                return Err(SegmentError::SegmentTruncated {
                    at: pos / 4,
                    end: end.div_ceil(4),
                    len: bytes.len() / 4,
                });
            }
            ats.push(At {
                header,
                slots,
                overflow,
            });
            pos = end;
        }
        let index: std::collections::HashMap<usize, u32> = ats
            .iter()
            .enumerate()
            .map(|(i, a)| (a.header - 8, i as u32))
            .collect();
        let top = words.top_bit();
        let resolve = |w: u64, at: usize| -> Result<SpurOop> {
            let tag_mask = if ws == 4 { 3 } else { 7 };
            if w & tag_mask != 0 {
                let tag = w & tag_mask;
                let ok = match words {
                    WordSize::W32 => tag & 1 == 1 || tag == 2,
                    WordSize::W64 => matches!(tag, 1 | 2 | 4),
                };
                if !ok {
                    return Err(SegmentError::BadImmediate { at: at / 4, oop: w });
                }
                return Ok(SpurOop::Imm(w));
            }
            if w & top != 0 {
                let off = w & !top;
                let k = Some(off)
                    .filter(|o| o.is_multiple_of(ws as u64))
                    .map(|o| o / ws as u64 + 1)
                    .and_then(|k| u32::try_from(k).ok())
                    .filter(|&k| k as usize <= out_pointers);
                return match k {
                    Some(k) => Ok(SpurOop::Out(k)),
                    None => Err(SegmentError::BadOutPointer {
                        at: at / 4,
                        index: usize::try_from(off / ws as u64).unwrap_or(usize::MAX),
                        len: out_pointers,
                    }),
                };
            }
            usize::try_from(w)
                .ok()
                .and_then(|o| index.get(&o))
                .map(|&i| SpurOop::Obj(i))
                .ok_or(SegmentError::DanglingOop {
                    at: at / 4,
                    oop: w as u32,
                })
        };
        if ats.len() > crate::v3::MAX_OBJECTS {
            return Err(SegmentError::TooLarge {
                what: "objects in a segment",
                len: ats.len() as u64,
                limit: crate::v3::MAX_OBJECTS as u64,
            });
        }
        let mut objects = Vec::with_capacity(ats.len());
        for a in &ats {
            let h = r.header(a.header, words).ok_or(word_at(a.header))?;
            let bad = |problem| SegmentError::BadHeader {
                at: a.header / 4,
                problem,
            };
            if a.overflow != (a.slots >= 255) {
                return Err(bad("a slot count of 255 or more without an overflow word"));
            }
            if h & MARKED_BIT != 0 {
                return Err(bad("a marked object, which the virtual machine refuses"));
            }
            let class_field = (h & 0x3F_FFFF) as u32;
            let format = ((h >> 24) & 31) as u8;
            let hash = ((h >> 32) & 0x3F_FFFF) as u32;
            let class = if class_field & CLASS_OUT_BIT != 0 {
                let k = (class_field & !CLASS_OUT_BIT) as usize + 1;
                if k > out_pointers {
                    return Err(SegmentError::BadOutPointer {
                        at: a.header / 4,
                        index: k,
                        len: out_pointers,
                    });
                }
                SpurOop::Out(k as u32)
            } else {
                match class_field
                    .checked_sub(FIRST_CLASS_INDEX_PUN)
                    .and_then(|f| index.get(&(f as usize * 8)))
                {
                    Some(&i) => SpurOop::Obj(i),
                    None => return Err(bad("a class field naming no object of the segment")),
                }
            };
            let body = a.header + 8;
            let slot = |i: usize| r.word(body + i * ws, words);
            let n_ptr = match format {
                0..=5 => a.slots,
                24..=31 => {
                    let head = slot(0).ok_or(bad("a compiled method without a header"))?;
                    if a.slots == 0 || head & 1 == 0 {
                        return Err(bad("a compiled method whose header is no SmallInteger"));
                    }
                    // The header's SmallInteger value: its low 15 bits count the literals.
                    let value = match words {
                        WordSize::W32 => head >> 1,
                        WordSize::W64 => head >> 3,
                    };
                    let lits = (value & 0x7FFF) as usize;
                    if lits + 1 > a.slots {
                        return Err(bad("a compiled method with more literals than slots"));
                    }
                    lits + 1
                }
                6..=8 => return Err(bad("format 6, 7 or 8, which Spur reserves")),
                _ => 0,
            };
            let mut pointers = Vec::with_capacity(n_ptr);
            for i in 0..n_ptr {
                let w = slot(i).ok_or(word_at(body + i * ws))?;
                pointers.push(resolve(w, body + i * ws)?);
            }
            let raw_start = body + n_ptr * ws;
            let raw_len_full = (a.slots - n_ptr) * ws;
            let raw = if n_ptr == a.slots {
                Vec::new()
            } else {
                let (unit, unused) =
                    unit_of(format, words).ok_or(bad("a raw format with no unit"))?;
                if ws == 4
                    && (format == 11 || (20..=23).contains(&format) || (28..=31).contains(&format))
                {
                    return Err(bad("a format a 32-bit segment does not use"));
                }
                if usize::from(unused) * unit >= ws.max(unit) || raw_len_full % unit != 0 {
                    return Err(bad("more unused units than a word holds"));
                }
                let used = raw_len_full
                    .checked_sub(usize::from(unused) * unit)
                    .ok_or(bad("more unused units than units"))?;
                let all = &bytes[raw_start..raw_start + raw_len_full];
                if all[used..].iter().any(|&b| b != 0) {
                    return Err(bad("unused bytes that are not zero"));
                }
                all[..used].to_vec()
            };
            if n_ptr == a.slots && !matches!(format, 0..=5 | 24..=31) && a.slots != 0 {
                return Err(bad("a raw format without raw slots"));
            }
            if n_ptr == a.slots
                && !matches!(format, 0..=5)
                && a.slots == 0
                && unit_of(format, words).is_some_and(|(_, u)| u != 0)
            {
                return Err(bad("unused units in an empty object"));
            }
            let pad_from = body + a.slots * ws;
            let pad_to = body + (a.slots * ws).max(8).next_multiple_of(8);
            if bytes[pad_from..pad_to].iter().any(|&b| b != 0) {
                return Err(bad("padding that is not zero"));
            }
            objects.push(SpurObject {
                class,
                format,
                hash,
                flags: h & FLAG_MASK,
                pointers,
                raw,
            });
        }
        match objects.first() {
            Some(o) if o.format <= 5 => {}
            _ => return Err(SegmentError::NoRootsArray),
        }
        Ok(SpurSegment {
            order,
            words,
            version_word,
            stamp,
            objects,
        })
    }

    /// The counts. Time: O(objects + slots).
    ///
    /// # Errors
    /// As [`SpurSegment::to_bytes`], for a form that cannot be written.
    pub fn stats(&self) -> Result<SpurStats> {
        let ws = self.words.bytes();
        let mut s = SpurStats {
            bytes: 8,
            objects: self.objects.len(),
            roots: self.roots().len(),
            ..SpurStats::default()
        };
        let mut used = std::collections::BTreeSet::new();
        for o in &self.objects {
            let slots = o.slots(self.words)?;
            s.bytes += 8 + (slots * ws).max(8).next_multiple_of(8);
            if slots >= 255 {
                s.overflow_headers += 1;
                s.bytes += 8;
            }
            for p in std::iter::once(&o.class).chain(&o.pointers) {
                match *p {
                    SpurOop::Imm(_) => s.immediates += 1,
                    SpurOop::Obj(_) => s.internal_refs += 1,
                    SpurOop::Out(k) => {
                        s.out_refs += 1;
                        used.insert(k);
                    }
                }
            }
            if let SpurOop::Obj(_) = o.class {
                s.internal_refs -= 1;
            }
        }
        s.out_pointers_used = used.len();
        Ok(s)
    }

    /// The oop (byte offset of the main header from byte 8) of every object. Time:
    /// O(objects).
    ///
    /// # Errors
    /// As [`SpurSegment::to_bytes`], for a form that cannot be written.
    pub fn oops(&self) -> Result<Vec<u64>> {
        let ws = self.words.bytes();
        let mut oops = Vec::with_capacity(self.objects.len());
        let mut pos = 0usize;
        for o in &self.objects {
            let slots = o.slots(self.words)?;
            if slots >= 255 {
                pos += 8;
            }
            oops.push(pos as u64);
            pos += 8 + (slots * ws).max(8).next_multiple_of(8);
        }
        Ok(oops)
    }

    /// Writes the segment in its byte order and word size. Time: O(bytes).
    ///
    /// # Errors
    /// [`SegmentError::BadHeader`] for a form that cannot be written: a reference to an
    /// object number the segment does not have, an out-pointer or class beyond what the
    /// fields hold, raw bytes that do not fill the format's units, a hash over 22 bits.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let ws = self.words.bytes();
        let oops = self.oops()?;
        let top = self.words.top_bit();
        let bad = |at, problem| SegmentError::BadHeader { at, problem };
        let mut out = Vec::new();
        let w = Writer { order: self.order };
        w.u32(&mut out, self.version_word);
        w.u32(&mut out, self.stamp);
        let encode = |p: SpurOop, at: usize| -> Result<u64> {
            Ok(match p {
                SpurOop::Imm(x) => x,
                SpurOop::Obj(i) => *oops.get(i as usize).ok_or(bad(
                    at,
                    "a reference to an object the segment does not have",
                ))?,
                SpurOop::Out(k) => {
                    let off = u64::from(k)
                        .checked_sub(1)
                        .map(|k| k * ws as u64)
                        .filter(|&o| o < top)
                        .ok_or(bad(at, "an out-pointer index of 0 or past the word"))?;
                    top | off
                }
            })
        };
        for o in &self.objects {
            let at = out.len() / 4;
            let slots = o.slots(self.words)?;
            let class_field = match o.class {
                SpurOop::Obj(j) => {
                    let oop = encode(SpurOop::Obj(j), at)?;
                    u32::try_from(oop / 8)
                        .ok()
                        .and_then(|f| f.checked_add(FIRST_CLASS_INDEX_PUN))
                        .filter(|&f| f < CLASS_OUT_BIT)
                        .ok_or(bad(at, "a class past what a class field holds"))?
                }
                SpurOop::Out(k) => k
                    .checked_sub(1)
                    .filter(|&k| k < CLASS_OUT_BIT)
                    .map(|k| k | CLASS_OUT_BIT)
                    .ok_or(bad(at, "a class out-pointer past what a class field holds"))?,
                SpurOop::Imm(_) => return Err(bad(at, "an immediate as a class")),
            };
            if o.hash > 0x3F_FFFF || o.format > 31 || o.flags & MARKED_BIT != 0 {
                return Err(bad(
                    at,
                    "a hash over 22 bits, a format over 31 or a marked object",
                ));
            }
            let count = if slots >= 255 {
                w.header(&mut out, (0xFF << 56) | slots as u64, self.words);
                255
            } else {
                slots as u64
            };
            w.header(
                &mut out,
                u64::from(class_field)
                    | (u64::from(o.format) << 24)
                    | (u64::from(o.hash) << 32)
                    | (count << 56)
                    | (o.flags & FLAG_MASK),
                self.words,
            );
            let body = out.len();
            for &p in &o.pointers {
                let v = encode(p, out.len() / 4)?;
                w.word(&mut out, v, self.words);
            }
            out.extend_from_slice(&o.raw);
            let end = body + (slots * ws).max(8).next_multiple_of(8);
            out.resize(end, 0);
        }
        Ok(out)
    }
}

impl SpurObject {
    /// Slots (words) of the body, from its pointers and raw bytes.
    fn slots(&self, words: WordSize) -> Result<usize> {
        let ws = words.bytes();
        let bad = |problem| SegmentError::BadHeader { at: 0, problem };
        if self.raw.is_empty() {
            return Ok(self.pointers.len());
        }
        let (unit, _) = unit_of(self.format, words).ok_or(bad("raw bytes in a pointer format"))?;
        if self.format < 24 && !self.pointers.is_empty() {
            return Err(bad("pointers in a raw format"));
        }
        let raw_words = self.raw.len().div_ceil(ws);
        let unused_units = (raw_words * ws - self.raw.len()) / unit;
        let expected = unit_of(self.format, words).map(|(_, u)| usize::from(u));
        if !self.raw.len().is_multiple_of(unit) || expected != Some(unused_units) {
            return Err(bad("raw bytes that do not match the format's unused units"));
        }
        Ok(self.pointers.len() + raw_words)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl Reader<'_> {
    fn u32(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        match self.order {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    fn word(&self, at: usize, words: WordSize) -> Option<u64> {
        let b = self.bytes.get(at..at + words.bytes())?;
        Some(match (words, self.order) {
            (WordSize::W32, ByteOrder::Little) => u64::from(u32::from_le_bytes(b.try_into().ok()?)),
            (WordSize::W32, ByteOrder::Big) => u64::from(u32::from_be_bytes(b.try_into().ok()?)),
            (WordSize::W64, ByteOrder::Little) => u64::from_le_bytes(b.try_into().ok()?),
            (WordSize::W64, ByteOrder::Big) => u64::from_be_bytes(b.try_into().ok()?),
        })
    }

    /// A 64-bit header: one word in 64-bit segments, two (low half first) in 32-bit ones.
    fn header(&self, at: usize, words: WordSize) -> Option<u64> {
        match words {
            WordSize::W64 => self.word(at, words),
            WordSize::W32 => {
                let lo = self.word(at, words)?;
                let hi = self.word(at + 4, words)?;
                Some(lo | (hi << 32))
            }
        }
    }
}

struct Writer {
    order: ByteOrder,
}

impl Writer {
    fn u32(&self, out: &mut Vec<u8>, v: u32) {
        out.extend(match self.order {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        });
    }

    fn word(&self, out: &mut Vec<u8>, v: u64, words: WordSize) {
        match words {
            WordSize::W32 => self.u32(out, v as u32),
            WordSize::W64 => out.extend(match self.order {
                ByteOrder::Little => v.to_le_bytes(),
                ByteOrder::Big => v.to_be_bytes(),
            }),
        }
    }

    fn header(&self, out: &mut Vec<u8>, v: u64, words: WordSize) {
        match words {
            WordSize::W64 => self.word(out, v, words),
            WordSize::W32 => {
                self.u32(out, v as u32);
                self.u32(out, (v >> 32) as u32);
            }
        }
    }
}
