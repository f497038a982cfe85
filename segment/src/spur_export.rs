//! A tenant segment as Spur segment words ([`crate::spur`]), and back.
//!
//! [`to_spur`] writes a segment extracted from a tenant (still naming base objects by index)
//! in the Spur word format of either word size and byte order: the roots array first (an
//! Array of the roots; its class, the base's `Array` from special objects slot 7, is
//! out-pointer 1), then the members that are classes of members (remembered, identity hash
//! 0, as the VM writes them: its loader enters them into the class table), then the other
//! members ([`SpurExport::object_of`] numbers them), out-pointer `k` (0-based) of the
//! segment as out-pointer `k + 2`. The Spur format of a pointer object comes from its
//! class's format word (a Spur base's: bits 16-20; a V3 base's instance specification, bits
//! 7-10, whose codes 0-4 are Spur's); raw formats from the member's format and size, with
//! the unused units counted for the word size. Raw units are written in the segment's byte
//! order; a boxed Float's two words are its bytes as the base keeps them. The identity hash
//! is the member's, cut to Spur's 22 bits.
//!
//! Refused with [`SegmentError::Unrepresentable`]: host objects, integers and characters
//! the word size cannot hold as immediates, immediate floats in 32-bit segments, and the
//! compiled methods of a V3 base (their headers are not Spur headers), and a compiled method
//! whose slots are not its header and the literals the header counts.
//!
//! [`from_spur`] decodes the words back into members and roots, and [`to_segment`] makes
//! them a [`TenantSegment`] again (state `Inactive`, as read back from a file), which
//! imports into a tenant as any other ([`TenantSegment::import_into`]).

use crate::bind::Objects;
use crate::error::{Result, SegmentError};
use crate::spur::{REMEMBERED_BIT, SpurObject, SpurOop, SpurSegment, VERSIONS, WordSize};
use crate::tenant::{OutRef, SRef, SegObj, TenantSegment};
use crate::v3::ByteOrder;
use cowheap_heap::{Decoded, Fingerprint, Format, Word};

/// Class instance variable holding the format word.
const FORMAT_SLOT: usize = 2;

/// A tenant segment as Spur words, with its out-pointer table.
#[derive(Clone, Debug)]
pub struct SpurExport {
    /// The words, decoded form.
    pub segment: SpurSegment,
    /// The out-pointer table: element `k - 1` is out-pointer `k`.
    pub out: Vec<OutRef>,
    /// The object number of each member (classes of members come first, after the roots
    /// array).
    pub object_of: Vec<u32>,
}

/// The byte-order letter the VM puts in a segment's version word: `s` little-endian, `d`
/// big-endian.
pub fn letter_for(order: ByteOrder) -> u8 {
    match order {
        ByteOrder::Little => b's',
        ByteOrder::Big => b'd',
    }
}

/// Writes `seg` (extracted from a tenant of `heap`) as a Spur segment of word size `words`
/// in `order`, the version word's top byte `letter`. `heap` is the base heap, or the
/// tenant's version of the base (`&**tenant.base()`), whose classes its commits changed or
/// added are then read as that version has them. Time: O(segment size).
///
/// # Errors
/// [`SegmentError::Unrepresentable`] for what the Spur segment cannot hold (see the module
/// doc); [`SegmentError::BadSegment`] for a portable segment or a member whose class has no
/// format word; [`SegmentError::BaseMissing`] for a base without special objects.
pub fn to_spur<O: Objects + ?Sized>(
    seg: &TenantSegment,
    heap: &O,
    order: ByteOrder,
    words: WordSize,
    letter: u8,
) -> Result<SpurExport> {
    let (_, out) = crate::export::export_start(seg, heap)?;
    let spur_base = heap
        .named_root("image.version")
        .and_then(|v| v.as_int())
        .is_some_and(|v| VERSIONS.iter().any(|&(s, _)| i64::from(s) == v));
    let ws = words.bytes();
    // The VM's order: the roots array, then the members that are classes of members, then
    // the rest; `object_of[j]` is member j's object number.
    let n = seg.objects.len();
    let mut is_class = vec![false; n];
    for o in &seg.objects {
        if let SRef::Obj(c) = o.class
            && let Some(x) = is_class.get_mut(c as usize)
        {
            *x = true;
        }
    }
    let order_of: Vec<usize> = (0..n)
        .filter(|&j| is_class[j])
        .chain((0..n).filter(|&j| !is_class[j]))
        .collect();
    let mut object_of = vec![0u32; n];
    for (k, &j) in order_of.iter().enumerate() {
        object_of[j] = u32::try_from(k + 1)
            .map_err(|_| SegmentError::BadSegment("more members than a segment numbers"))?;
    }
    let oop = |r: SRef| -> Result<SpurOop> {
        Ok(match r {
            SRef::Obj(j) => SpurOop::Obj(
                *object_of
                    .get(j as usize)
                    .ok_or(SegmentError::BadSegment("a reference past the members"))?,
            ),
            SRef::Out(k) => SpurOop::Out(k + 2),
            SRef::Imm(w) => SpurOop::Imm(immediate(w, words)?),
        })
    };
    let class_format = |c: SRef| -> Result<i64> {
        let bad = SegmentError::BadSegment("a member whose class has no format word");
        match c {
            SRef::Out(k) => match seg.out.get(k as usize) {
                Some(OutRef::Base(x)) => heap
                    .slot_of(*x, FORMAT_SLOT)
                    .and_then(Word::as_int)
                    .ok_or(bad),
                Some(OutRef::Outside(_)) => Err(bad),
                _ => Err(SegmentError::BadSegment(
                    "a portable segment: write the Spur words before making it portable",
                )),
            },
            SRef::Obj(j) => match seg
                .objects
                .get(j as usize)
                .and_then(|o| o.slots.get(FORMAT_SLOT))
            {
                Some(SRef::Imm(w)) => w.as_int().ok_or(bad),
                _ => Err(bad),
            },
            SRef::Imm(_) => Err(bad),
        }
    };
    // Raw bytes (kept little-endian by the base) as units in the segment's order.
    let units = |bytes: &[u8], unit: usize| -> Vec<u8> {
        let mut v = bytes.to_vec();
        if order == ByteOrder::Big && unit > 1 {
            for c in v.chunks_mut(unit) {
                c.reverse();
            }
        }
        v
    };
    let unused = |len: usize, unit: usize| ((len.div_ceil(ws) * ws - len) / unit) as u8;
    let mut objects = Vec::with_capacity(seg.objects.len() + 1);
    objects.push(SpurObject {
        class: SpurOop::Out(1),
        format: 2,
        hash: 0,
        flags: 0,
        pointers: seg
            .roots
            .iter()
            .map(|&r| oop(SRef::Obj(r)))
            .collect::<Result<Vec<_>>>()?,
        raw: Vec::new(),
    });
    for &j in &order_of {
        let o = &seg.objects[j];
        let class = match oop(o.class)? {
            SpurOop::Imm(_) => return Err(SegmentError::BadSegment("an immediate as a class")),
            c => c,
        };
        let pointers = |o: &SegObj| o.slots.iter().map(|&s| oop(s)).collect::<Result<Vec<_>>>();
        let (format, pointers, raw) = match o.format {
            Format::Pointers => {
                let fw = class_format(o.class)?;
                let spec = if spur_base {
                    (fw >> 16) & 31
                } else {
                    (fw >> 7) & 15
                };
                let spec = u8::try_from(spec).ok().filter(|&s| s <= 3).unwrap_or(2);
                (spec, pointers(o)?, Vec::new())
            }
            Format::Weak => (4, pointers(o)?, Vec::new()),
            Format::Ephemeron => (5, pointers(o)?, Vec::new()),
            Format::DoubleWords => (9, Vec::new(), units(&o.bytes, 8)),
            Format::Words => (
                10 + unused(o.bytes.len(), 4),
                Vec::new(),
                units(&o.bytes, 4),
            ),
            Format::Shorts => (
                12 + unused(o.bytes.len(), 2),
                Vec::new(),
                units(&o.bytes, 2),
            ),
            Format::Bytes => (16 + unused(o.bytes.len(), 1), Vec::new(), o.bytes.clone()),
            Format::CompiledMethod => {
                if !spur_base {
                    return Err(SegmentError::Unrepresentable(
                        "a V3 compiled method (its header is not a Spur method header)",
                    ));
                }
                // A Spur header counts the literals in the low 15 bits of its value.
                crate::export::check_literals(o, |h| h & 0x7FFF)?;
                (24 + unused(o.bytes.len(), 1), pointers(o)?, o.bytes.clone())
            }
        };
        // A class of the segment: remembered, hash 0 (its class-table index comes on load).
        let (hash, flags) = if is_class[j] {
            (0, REMEMBERED_BIT)
        } else {
            (o.hash & 0x3F_FFFF, 0)
        };
        objects.push(SpurObject {
            class,
            format,
            hash,
            flags,
            pointers,
            raw,
        });
    }
    let version = VERSIONS
        .iter()
        .find(|&&(_, w)| w == words)
        .map_or(6521, |&(v, _)| v);
    Ok(SpurExport {
        segment: SpurSegment {
            order,
            words,
            version_word: (u32::from(letter) << 24) | version,
            // The VM writes the version word twice.
            stamp: (u32::from(letter) << 24) | version,
            objects,
        },
        out,
        object_of,
    })
}

/// A cowheap immediate as a Spur word of `words`.
fn immediate(w: Word, words: WordSize) -> Result<u64> {
    let un = SegmentError::Unrepresentable;
    match (w.decode(), words) {
        (Decoded::Int(i), WordSize::W32) => {
            if (-(1 << 30)..(1 << 30)).contains(&i) {
                Ok(u64::from(((i as u32) << 1) | 1))
            } else {
                Err(un("an integer beyond 31 bits in a 32-bit Spur segment"))
            }
        }
        (Decoded::Int(i), WordSize::W64) => {
            if (-(1 << 60)..(1 << 60)).contains(&i) {
                Ok(((i as u64) << 3) | 1)
            } else {
                Err(un("an integer beyond 61 bits"))
            }
        }
        (Decoded::Char(c), WordSize::W32) if c < (1 << 30) => Ok((u64::from(c) << 2) | 2),
        (Decoded::Char(c), WordSize::W64) => Ok((u64::from(c) << 3) | 2),
        _ => match (w.as_small_float_bits(), words) {
            (Some(p), WordSize::W64) => Ok((p << 3) | 4),
            _ => Err(un("an immediate the Spur word size cannot hold")),
        },
    }
}

/// A Spur immediate as a cowheap word.
fn from_immediate(x: u64, words: WordSize) -> Result<Word> {
    let bad = SegmentError::BadSegment("an immediate cowheap cannot hold");
    match words {
        WordSize::W32 => {
            let v = x as u32;
            if v & 1 == 1 {
                Word::int(i64::from((v as i32) >> 1)).ok_or(bad)
            } else {
                Ok(Word::char_code(v >> 2))
            }
        }
        WordSize::W64 => match x & 7 {
            1 => Word::int((x as i64) >> 3).ok_or(bad),
            2 => u32::try_from(x >> 3).map(Word::char_code).map_err(|_| bad),
            _ => Word::small_float_bits(x >> 3).ok_or(bad),
        },
    }
}

/// The members and roots of a Spur segment written by [`to_spur`], in object order (member
/// `j` is object `j + 1`: for [`to_spur`]'s members, [`SpurExport::object_of`] maps them), out-pointer `k + 2` the segment's out-pointer `k`; raw units back in the base's
/// little-endian order. Time: O(segment size).
///
/// # Errors
/// [`SegmentError::BadSegment`] for a segment [`to_spur`] cannot have written (a reference
/// to the roots array, out-pointer 1 used other than as the roots array's class, an
/// immediate cowheap cannot hold).
pub fn from_spur(s: &SpurSegment) -> Result<(Vec<SegObj>, Vec<u32>)> {
    let bad = SegmentError::BadSegment;
    let sref = |p: SpurOop| -> Result<SRef> {
        Ok(match p {
            SpurOop::Imm(x) => SRef::Imm(from_immediate(x, s.words)?),
            SpurOop::Obj(j) => SRef::Obj(
                j.checked_sub(1)
                    .ok_or(bad("a reference to the roots array"))?,
            ),
            SpurOop::Out(k) => SRef::Out(
                k.checked_sub(2)
                    .ok_or(bad("out-pointer 1 used as a field"))?,
            ),
        })
    };
    let roots = s
        .roots()
        .iter()
        .map(|&r| match r {
            SpurOop::Obj(j) if j > 0 => Ok(j - 1),
            _ => Err(bad("a root that is no member")),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut objects = Vec::with_capacity(s.objects.len().saturating_sub(1));
    for o in s.objects.iter().skip(1) {
        let (format, unit) = match o.format {
            0..=3 => (Format::Pointers, 1),
            4 => (Format::Weak, 1),
            5 => (Format::Ephemeron, 1),
            9 => (Format::DoubleWords, 8),
            10 | 11 => (Format::Words, 4),
            12..=15 => (Format::Shorts, 2),
            16..=23 => (Format::Bytes, 1),
            _ => (Format::CompiledMethod, 1),
        };
        let mut bytes = o.raw.clone();
        if s.order == ByteOrder::Big && unit > 1 {
            for c in bytes.chunks_mut(unit) {
                c.reverse();
            }
        }
        objects.push(SegObj {
            class: sref(o.class)?,
            format,
            hash: o.hash,
            slots: o
                .pointers
                .iter()
                .map(|&p| sref(p))
                .collect::<Result<Vec<_>>>()?,
            bytes,
        });
    }
    Ok((objects, roots))
}

/// The tenant segment a Spur segment written by [`to_spur`] holds, with `out` its
/// out-pointer table (out-pointer 1, the roots array's class, is dropped) and `fingerprint`
/// the base its `Base` out-pointers index. Time: O(segment size).
///
/// # Errors
/// As [`from_spur`]; [`SegmentError::BadSegment`] if `out` does not match the segment.
pub fn to_segment(
    s: &SpurSegment,
    out: &[OutRef],
    fingerprint: Fingerprint,
) -> Result<TenantSegment> {
    let (objects, roots) = from_spur(s)?;
    let out = out
        .get(1..)
        .ok_or(SegmentError::BadSegment(
            "an out-pointer table without the Array class",
        ))?
        .to_vec();
    let n = u32::try_from(objects.len()).unwrap_or(u32::MAX);
    let k = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let in_range = |r: &SRef| match *r {
        SRef::Obj(j) => j < n,
        SRef::Out(i) => i < k,
        SRef::Imm(_) => true,
    };
    for o in &objects {
        if !in_range(&o.class) || !o.slots.iter().all(in_range) {
            return Err(SegmentError::BadSegment(
                "a reference past the members or the out-pointer table",
            ));
        }
    }
    Ok(TenantSegment::read(
        fingerprint,
        objects,
        roots,
        out,
        Vec::new(),
    ))
}
