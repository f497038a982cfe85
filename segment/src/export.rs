//! Writing a tenant segment in Squeak's V3 segment word format.
//!
//! The segment must come from a tenant of a base imported from a V3 image (its classes
//! carry V3 class format words; a Spur base's segment is refused) and still name base
//! objects by index (not yet made portable). The words follow Squeak's layout (see [`crate::v3`]): the roots array first
//! (an Array of the roots, its class the base's `Array` from special objects slot 7, which
//! becomes out-pointer 1), then every member, its header chosen as the virtual machine
//! would: one word when its class is compact (the class format's compact index) and it is
//! under 64 words, else two words, else three. The V3 format comes from the class's
//! instance specification (format word bits 7-10), plus the unused byte count for bytes
//! and methods; the identity hash is the member's, cut to 12 bits. Out-pointer `k + 2` is
//! the segment's out-pointer `k`.
//!
//! What V3 cannot hold is refused with [`SegmentError::Unrepresentable`]: a character, a
//! small float or an integer beyond 31 bits as an immediate, 16- or 64-bit raw units, a
//! host object ([`crate::hosts`]: Squeak's segments have no place for its plugin's state),
//! a compiled method whose slots are not its header and the literals the header counts.

use crate::bind::Objects;
use crate::error::{Result, SegmentError};
use crate::tenant::{OutRef, SRef, SegObj, TenantSegment};
use crate::v3::{ByteOrder, ClassRef, HeaderKind, Oop, SegObject, V3Segment};
use cowheap_heap::{Format, ObjectIndex, Value, Word};

/// Special objects array index of the class Array.
const SPECIAL_ARRAY: usize = 7;
/// Special objects array index of the class Float.
const SPECIAL_FLOAT: usize = 9;
/// Class instance variable holding the format word.
const FORMAT_SLOT: usize = 2;
/// Special objects array index of the compact classes array (compact index `k`, 1 to 31, is
/// its slot `k - 1`).
const SPECIAL_COMPACT_CLASSES: usize = 28;

/// Refuses a compiled method whose slots are not its header (a small integer) and the
/// literals the header counts, `literals` reading the count from the header's value: read
/// back, that count says where the literals end and the bytes begin, so such a method (a
/// tenant can write any slot of it, the header among them) would be split elsewhere, its
/// bytes taken for literals or its literals for bytes.
///
/// # Errors
/// [`SegmentError::Unrepresentable`] for such a method.
pub(crate) fn check_literals(o: &SegObj, literals: impl Fn(i64) -> i64) -> Result<()> {
    let count = match o.slots.first() {
        Some(SRef::Imm(w)) => w.as_int().map(literals),
        _ => None,
    };
    if count
        .and_then(|c| usize::try_from(c).ok())
        .is_none_or(|c| c.checked_add(1) != Some(o.slots.len()))
    {
        return Err(SegmentError::Unrepresentable(
            "a compiled method whose literals are not the count its header gives",
        ));
    }
    Ok(())
}

/// What a Squeak segment export of `seg` starts from: the base's special objects array and
/// the out-pointer table, whose first entry is the class Array (of the roots array), then
/// `seg`'s own.
///
/// # Errors
/// [`SegmentError::Unrepresentable`] for a segment holding host objects;
/// [`SegmentError::BaseMissing`] for a base without special objects or the class Array.
pub(crate) fn export_start<O: Objects + ?Sized>(
    seg: &TenantSegment,
    heap: &O,
) -> Result<(ObjectIndex, Vec<OutRef>)> {
    if !seg.hosts.is_empty() {
        return Err(SegmentError::Unrepresentable(
            "a host object (a proxy member and its plugin's state)",
        ));
    }
    let special = heap
        .named_root("specialObjects")
        .and_then(|v| v.word().as_base())
        .filter(|&x| heap.view(x).is_some())
        .ok_or(SegmentError::BaseMissing("special objects array"))?;
    let array = heap
        .slot_of(special, SPECIAL_ARRAY)
        .and_then(Word::as_base)
        .ok_or(SegmentError::BaseMissing("the class Array"))?;
    let mut out = Vec::with_capacity(seg.out.len() + 1);
    out.push(OutRef::Base(array));
    out.extend(seg.out.iter().cloned());
    Ok((special, out))
}

/// A tenant segment as V3 words, with its out-pointer table.
#[derive(Clone, Debug)]
pub struct V3Export {
    /// The words, decoded form.
    pub segment: V3Segment,
    /// The out-pointer table: element `k - 1` is out-pointer `k`.
    pub out: Vec<OutRef>,
}

/// Writes `seg` (extracted from a tenant of `heap`) as a V3 segment of `version` (6502 or
/// 6504) in `order`, the version word's top byte `letter`. `heap` is the base heap, or the
/// tenant's version of the base (`&**tenant.base()`), whose classes its commits changed or
/// added are then read as that version has them. Time: O(segment size).
///
/// A member is written with a one-word (compact) header only if its class is a base class
/// that the base's compact classes array holds at the index the class's format word names:
/// a class of the segment (a copy of `Array`, say, format word and all) keeps its own.
///
/// # Errors
/// [`SegmentError::BadVersion`] for a `version` other than 6502 and 6504;
/// [`SegmentError::Unrepresentable`] for what V3 cannot hold; [`SegmentError::BadSegment`]
/// for a portable segment, a member whose class format is unknown, or a segment of a Spur
/// base (its classes' format words are Spur's: [`crate::spur_export::to_spur`] writes it);
/// [`SegmentError::BaseMissing`] for a base without special objects.
pub fn to_v3<O: Objects + ?Sized>(
    seg: &TenantSegment,
    heap: &O,
    order: ByteOrder,
    version: u32,
    letter: u8,
) -> Result<V3Export> {
    if !matches!(version, 6502 | 6504) {
        return Err(SegmentError::BadVersion(version));
    }
    // A Spur base's classes have Spur format words (the instance specification in bits
    // 16-20), which read as V3's (bits 7-10) would give other formats: an Array format 0.
    if matches!(
        crate::Immediates::of(heap),
        crate::Immediates::Spur32 | crate::Immediates::Spur64
    ) {
        return Err(SegmentError::BadSegment(
            "a segment of a Spur base, whose class formats are not V3's: write Spur words",
        ));
    }
    let (special, out) = export_start(seg, heap)?;
    // The class the base's compact classes array holds at index `cci`.
    let compact_class = |cci: u8| -> Option<Word> {
        let classes = heap.slot_of(special, SPECIAL_COMPACT_CLASSES)?.as_base()?;
        heap.slot_of(classes, usize::from(cci).checked_sub(1)?)
    };
    let float = heap
        .slot_of(special, SPECIAL_FLOAT)
        .ok_or(SegmentError::BaseMissing(
            "a class in the special objects array",
        ))?;
    // The class format word of a member's class.
    let class_format = |c: SRef| -> Result<(i64, Option<Word>)> {
        let bad = SegmentError::BadSegment("a member whose class has no V3 format word");
        match c {
            SRef::Out(k) => match seg.out.get(k as usize) {
                Some(OutRef::Base(x)) => {
                    let f = heap
                        .slot_of(*x, FORMAT_SLOT)
                        .and_then(Word::as_int)
                        .ok_or(bad)?;
                    Ok((f, Some(Word::base(*x))))
                }
                Some(OutRef::Outside(_)) => Err(bad),
                _ => Err(SegmentError::BadSegment(
                    "a portable segment: write the V3 words before making it portable",
                )),
            },
            SRef::Obj(j) => match seg
                .objects
                .get(j as usize)
                .and_then(|o| o.slots.get(FORMAT_SLOT))
            {
                Some(SRef::Imm(w)) => Ok((w.as_int().ok_or(bad)?, None)),
                _ => Err(bad),
            },
            SRef::Imm(_) => Err(bad),
        }
    };
    let oop = |r: SRef| -> Result<Oop> {
        Ok(match r {
            SRef::Obj(j) => Oop::Obj(j + 1),
            SRef::Out(k) => Oop::Out(k + 2),
            SRef::Imm(w) => match w.as_int() {
                Some(i) if (-(1 << 30)..(1 << 30)).contains(&i) => Oop::Int(i as i32),
                Some(_) => {
                    return Err(SegmentError::Unrepresentable("an integer beyond 31 bits"));
                }
                None => {
                    return Err(SegmentError::Unrepresentable(
                        "a character or small float immediate",
                    ));
                }
            },
        })
    };
    let pack = |bytes: &[u8]| -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| {
                let mut a = [0u8; 4];
                a[..c.len()].copy_from_slice(c);
                match order {
                    ByteOrder::Little => u32::from_le_bytes(a),
                    ByteOrder::Big => u32::from_be_bytes(a),
                }
            })
            .collect()
    };
    let header_for = |cci: u8, body: usize| -> (HeaderKind, u8) {
        if body + 1 < 64 {
            (
                if cci != 0 {
                    HeaderKind::One
                } else {
                    HeaderKind::Two
                },
                (body + 1) as u8,
            )
        } else {
            (HeaderKind::Three, 0)
        }
    };
    let mut objects = Vec::with_capacity(seg.objects.len() + 1);
    // The roots array.
    let roots: Vec<Oop> = seg.roots.iter().map(|&r| Oop::Obj(r + 1)).collect();
    let (kind, size_field) = header_for(0, roots.len());
    objects.push(SegObject {
        at: 0,
        header: kind,
        class: ClassRef::Out(1),
        format: 2,
        hash: 0,
        gc_bits: 0,
        compact_field: 0,
        size_field,
        pointers: roots,
        raw: Vec::new(),
    });
    for o in &seg.objects {
        let (fmt_word, class_word) = class_format(o.class)?;
        let spec = ((fmt_word >> 7) & 15) as u8;
        let cci = match ((fmt_word >> 11) & 31) as u8 {
            cci if cci != 0 && class_word.is_some() && compact_class(cci) == class_word => cci,
            _ => 0,
        };
        let pad = |n: usize| ((4 - n % 4) % 4) as u8;
        let (format, pointers, raw) = match o.format {
            Format::Pointers | Format::Weak | Format::Ephemeron => (
                if spec <= 4 { spec } else { 2 },
                o.slots
                    .iter()
                    .map(|&s| oop(s))
                    .collect::<Result<Vec<_>>>()?,
                Vec::new(),
            ),
            Format::Words => {
                let is_float = class_word == Some(float) && o.bytes.len() == 8;
                let raw = if is_float {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&o.bytes);
                    let bits = u64::from_le_bytes(b);
                    vec![(bits >> 32) as u32, bits as u32]
                } else {
                    o.bytes
                        .chunks(4)
                        .map(|c| {
                            let mut a = [0u8; 4];
                            a[..c.len()].copy_from_slice(c);
                            u32::from_le_bytes(a)
                        })
                        .collect()
                };
                (6, Vec::new(), raw)
            }
            Format::Bytes => (8 + pad(o.bytes.len()), Vec::new(), pack(&o.bytes)),
            Format::CompiledMethod => {
                // A V3 header counts the literals in bits 9-16 of its value.
                check_literals(o, |h| h >> 9 & 0xFF)?;
                (
                    12 + pad(o.bytes.len()),
                    o.slots
                        .iter()
                        .map(|&s| oop(s))
                        .collect::<Result<Vec<_>>>()?,
                    pack(&o.bytes),
                )
            }
            Format::Shorts | Format::DoubleWords => {
                return Err(SegmentError::Unrepresentable(
                    "16- or 64-bit raw units, which V3 does not have",
                ));
            }
        };
        let body = pointers.len() + raw.len();
        let (kind, size_field) = header_for(cci, body);
        let class = match (kind, o.class) {
            (HeaderKind::One, _) => ClassRef::Compact(cci),
            (_, SRef::Obj(j)) => ClassRef::Obj(j + 1),
            (_, SRef::Out(k)) => ClassRef::Out(k + 2),
            (_, SRef::Imm(_)) => return Err(SegmentError::BadSegment("an immediate as a class")),
        };
        objects.push(SegObject {
            at: 0,
            header: kind,
            class,
            format,
            hash: (o.hash & 0xFFF) as u16,
            gc_bits: 0,
            compact_field: cci,
            size_field,
            pointers,
            raw,
        });
    }
    // Word positions, as a parse would give them.
    let mut pos = 1;
    for o in &mut objects {
        o.at = pos;
        pos += o.total_words();
    }
    Ok(V3Export {
        segment: V3Segment {
            order,
            version_word: (u32::from(letter) << 24) | (version & 0xFF_FFFF),
            objects,
        },
        out,
    })
}

/// The value a V3 pointer of an exported segment names in the tenant it came from, given the
/// members' values: for tests and tools that check an export against its source.
pub fn value_of(oop: Oop, members: &[Value], out: &[OutRef], outside: &[Value]) -> Option<Value> {
    match oop {
        Oop::Int(i) => Some(Value::int(i.into())),
        Oop::Obj(j) => members.get((j as usize).checked_sub(1)?).copied(),
        Oop::Out(k) => match out.get((k as usize).checked_sub(1)?)? {
            OutRef::Base(x) => Some(Value::base(*x)),
            OutRef::Outside(i) => outside.get(*i as usize).copied(),
            _ => None,
        },
    }
}
