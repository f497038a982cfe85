//! Boxed Floats: how each image version lays out their two 32-bit words, and the one layout
//! a base holds them in.
//!
//! A boxed Float is an object of the class in special objects slot 9 (`Float`, or
//! `BoxedFloat64` in Spur) with 8 bytes of 32-bit words. Image files disagree on the order of
//! those words:
//!
//! - 6502 and 6504 (V3 before and with closures): the most significant word first, each word
//!   in the file's byte order, whatever the byte order;
//! - 6505 (V3 with closures), 6521 and 68021 (Spur): the platform's order, so one 64-bit
//!   double in the file's byte order (in a little-endian file the least significant word
//!   comes first). The header flag bit 1 says which ("floats little-endian").
//!
//! A base holds every boxed Float as the IEEE 754 double in little-endian bytes, whichever
//! file it came from, so [`float_value`] reads it without knowing the file, and an export
//! writes it in the order its target version asks for.

use crate::graph::{Graph, Obj, slot_ref};
use crate::{ByteOrder, ImageFormat};
use cowheap_heap::{BaseHeap, Format, ObjectIndex};

/// Special objects array index of the class of boxed floats.
pub const SPECIAL_FLOAT: usize = 9;

/// The header flag that says a file's floats are little-endian (the saving platform's order).
pub(crate) const FLOATS_LITTLE_ENDIAN: u64 = 2;

/// True if `version` stores a Float's most significant word first in either byte order.
fn high_word_first(version: u32) -> bool {
    matches!(version, ImageFormat::V3 | ImageFormat::V3_CLOSURES)
}

/// A Float's bits from its two 32-bit words in file order, each already read in the file's
/// byte order.
pub(crate) fn from_file_words(w0: u32, w1: u32, f: ImageFormat) -> u64 {
    if high_word_first(f.version()) || f.order() == ByteOrder::Big {
        (u64::from(w0) << 32) | u64::from(w1)
    } else {
        (u64::from(w1) << 32) | u64::from(w0)
    }
}

/// The two 32-bit words, in file order, that hold a Float's `bits` in format `f`.
pub(crate) fn to_file_words(bits: u64, f: ImageFormat) -> [u32; 2] {
    let (hi, lo) = split(bits);
    if high_word_first(f.version()) || f.order() == ByteOrder::Big {
        [hi, lo]
    } else {
        [lo, hi]
    }
}

/// The high and low 32-bit halves of `bits`.
fn split(bits: u64) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = bits.to_be_bytes();
    (
        u32::from_be_bytes([a, b, c, d]),
        u32::from_be_bytes([e, f, g, h]),
    )
}

/// The header flags to write for format `f`: `flags` with bit 1 saying how the file's floats
/// are ordered (set for little-endian doubles; clear for big-endian ones and for the
/// high-word-first versions, whose floats are big-endian word order).
pub(crate) fn header_flags(flags: u64, f: ImageFormat) -> u64 {
    if !high_word_first(f.version()) && f.order() == ByteOrder::Little {
        flags | FLOATS_LITTLE_ENDIAN
    } else {
        flags & !FLOATS_LITTLE_ENDIAN
    }
}

/// The class of boxed floats of a graph whose special objects array is object `special`.
pub(crate) fn float_class<G: Graph + ?Sized>(g: &G, special: u32) -> Option<u32> {
    slot_ref(g, special, SPECIAL_FLOAT)
}

/// The 61-bit payload of the SmallFloat64 that holds the double `bits` in a 64-bit Spur
/// image, if one can: zeros, and values whose exponent Spur's 8-bit immediate exponent
/// reaches (biased exponent 897..=1151). Infinities, NaNs, subnormals and values beyond
/// about 1e±38 stay boxed. [`cowheap_heap::Value::as_f64`] decodes the payload back.
pub fn small_float_payload(bits: u64) -> Option<u64> {
    // Spur keeps the sign in the low bit and re-biases the exponent by 896.
    const OFFSET: u64 = 896 << 53;
    let rotated = bits.rotate_left(1);
    if rotated <= 1 {
        return Some(rotated);
    }
    (897..=1151)
        .contains(&(rotated >> 53))
        .then(|| rotated - OFFSET)
}

/// The bits of a boxed Float held as little-endian bytes.
pub(crate) fn bits_of(bytes: &[u8]) -> Option<u64> {
    let b: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// True if an object of `format` with `bytes`, of class `class`, is a boxed Float of a graph
/// whose Float class is `float_class`.
pub(crate) fn is_boxed(
    float_class: Option<u32>,
    class: Option<u32>,
    format: Format,
    bytes: &[u8],
) -> bool {
    float_class.is_some() && class == float_class && format == Format::Words && bytes.len() == 8
}

/// Rewrites every boxed Float of freshly read objects, whose words are in file order as
/// little-endian units, as a little-endian double. Time: O(objects).
pub(crate) fn normalize(objs: &mut [Obj], float_class: Option<u32>, f: ImageFormat) {
    for o in objs.iter_mut() {
        let class = o.class.as_base().map(ObjectIndex::as_u32);
        if !is_boxed(float_class, class, o.format, &o.bytes) {
            continue;
        }
        let word = |k: usize| {
            u32::from_le_bytes([o.bytes[k], o.bytes[k + 1], o.bytes[k + 2], o.bytes[k + 3]])
        };
        let bits = from_file_words(word(0), word(4), f);
        o.bytes = bits.to_le_bytes().to_vec();
    }
}

/// The value of the boxed Float `obj` of `heap`: an object of the class in special objects
/// slot 9 with 8 bytes. `None` for any other object. Time: O(roots), to find the special
/// objects array.
pub fn float_value(heap: &BaseHeap, obj: ObjectIndex) -> Option<f64> {
    let special = crate::special_objects(heap).ok()?;
    let o = heap.object(obj).ok()?;
    let class = o.class.as_base().map(ObjectIndex::as_u32);
    if !is_boxed(float_class(heap, special), class, o.format, o.bytes) {
        return None;
    }
    bits_of(o.bytes).map(f64::from_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_in_every_format() {
        let bits = 1234.5678f64.to_bits();
        for v in [6502, 6504, 6505, 6521, 68021] {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let f = ImageFormat::new(v, order).unwrap();
                let [w0, w1] = to_file_words(bits, f);
                assert_eq!(from_file_words(w0, w1, f), bits, "{f:?}");
            }
        }
        let le = ImageFormat::new(6505, ByteOrder::Little).unwrap();
        let (hi, lo) = split(bits);
        assert_eq!(to_file_words(bits, le), [lo, hi]);
        let old = ImageFormat::new(6502, ByteOrder::Little).unwrap();
        assert_eq!(to_file_words(bits, old), [hi, lo]);
        assert_eq!(header_flags(16, le), 18);
        for v in [1.5, -2.0, 0.0, -0.0, 1e38, -1e-37, std::f64::consts::PI] {
            let p = small_float_payload(v.to_bits()).unwrap();
            let w = cowheap_heap::Word::small_float_bits(p).unwrap();
            assert_eq!(
                cowheap_heap::Value::shared(w).as_f64().map(f64::to_bits),
                Some(v.to_bits())
            );
        }
        for v in [
            f64::INFINITY,
            f64::NAN,
            1e300,
            1e-300,
            f64::MIN_POSITIVE / 2.0,
        ] {
            assert_eq!(small_float_payload(v.to_bits()), None, "{v}");
        }
        assert_eq!(header_flags(18, old), 16);
        assert_eq!(header_flags(2, le.with_order(ByteOrder::Big)), 0);
    }
}
