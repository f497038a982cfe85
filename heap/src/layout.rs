//! The object layout: the one place that encodes and decodes an object's words.
//!
//! Every object of a base heap (built in memory or mapped from an image file) is a
//! three-word header followed by its pointer slots and then its raw bytes, padded to a word,
//! all 64-bit little-endian words:
//!
//! ```text
//! word 0   class (a Word: a base reference)
//! word 1   size word: pointer slot count (bits 0..32) | raw byte count (bits 32..64)
//! word 2   info word: identity hash (bits 0..32) | format code (bits 32..40) | auxiliary (40..64)
//! word 3.. pointer slots, then raw bytes little-endian, zero-padded to a word
//! ```
//!
//! The builder, the image-file verifier, the base heap's reads and the bench's flat heaps all
//! go through this module, so the layout is written down once.
//!
//! ```
//! use cowheap_heap::layout::{self, HEADER_WORDS};
//! use cowheap_heap::{Format, Word};
//!
//! let mut words = Vec::new();
//! let head = layout::Head { class: Word::from_bits(0), format: Format::Bytes, hash: 7, aux: 0 };
//! layout::encode(head, &[], b"hello", &mut words).unwrap();
//! assert_eq!(words.len(), HEADER_WORDS + 1);
//! assert_eq!(layout::slot_count(words[1]), 0);
//! assert_eq!(layout::byte_count(words[1]), 5);
//! assert_eq!(layout::hash(words[2]), 7);
//! assert_eq!(layout::format(words[2]), Some(Format::Bytes));
//! ```
#![warn(clippy::cast_possible_truncation)]

use crate::{AUX_BITS, Error, Format, ObjectSize, Result, Word};

/// Words in an object header.
pub const HEADER_WORDS: usize = 3;

/// Position of the size word in a header.
pub const SIZE_WORD: usize = 1;

/// Position of the info word (hash, format, auxiliary bits) in a header.
pub const INFO_WORD: usize = 2;

const LOW32: u64 = 0xffff_ffff;
const FORMAT_SHIFT: u32 = 32;
const AUX_SHIFT: u32 = 40;

/// An object's header fields other than its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The class (a base reference).
    pub class: Word,
    /// The body's format.
    pub format: Format,
    /// The identity hash.
    pub hash: u32,
    /// The auxiliary bits: at most [`AUX_BITS`] wide.
    pub aux: u32,
}

/// The size word of an object of `size`, or `TooLarge` if a count does not fit 32 bits.
pub fn size_word(size: ObjectSize) -> Result<u64> {
    let slots = u32::try_from(size.slots).map_err(|_| Error::TooLarge("more than 2^32 slots"))?;
    let bytes = u32::try_from(size.bytes).map_err(|_| Error::TooLarge("more than 2^32 bytes"))?;
    Ok(u64::from(slots) | (u64::from(bytes) << 32))
}

/// The info word of `head`, or `TooLarge` if its auxiliary bits are wider than [`AUX_BITS`].
pub fn info_word(head: Head) -> Result<u64> {
    if head.aux >> AUX_BITS != 0 {
        return Err(Error::TooLarge("auxiliary bits wider than 24"));
    }
    Ok(u64::from(head.hash)
        | (u64::from(head.format.code()) << FORMAT_SHIFT)
        | (u64::from(head.aux) << AUX_SHIFT))
}

/// The pointer slot count a size word holds.
#[inline(always)]
pub fn slot_count(size_word: u64) -> usize {
    // Lossless: 32 bits on a 64-bit host (the crate requires one).
    (size_word & LOW32) as usize
}

/// The raw byte count a size word holds.
#[inline(always)]
pub fn byte_count(size_word: u64) -> usize {
    // Lossless: 32 bits on a 64-bit host.
    (size_word >> 32) as usize
}

/// The size a size word holds.
#[inline]
pub fn size(size_word: u64) -> ObjectSize {
    ObjectSize {
        slots: slot_count(size_word),
        bytes: byte_count(size_word),
    }
}

/// The identity hash an info word holds.
#[inline]
pub fn hash(info_word: u64) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the hash is the low 32 bits"
    )]
    let h = info_word as u32;
    h
}

/// The format an info word names, or `None` for an unknown code.
#[inline]
pub fn format(info_word: u64) -> Option<Format> {
    #[expect(clippy::cast_possible_truncation, reason = "the format code is 8 bits")]
    let code = (info_word >> FORMAT_SHIFT) as u8;
    Format::from_code(code)
}

/// The auxiliary bits an info word holds.
#[inline]
pub fn aux(info_word: u64) -> u32 {
    (info_word >> AUX_SHIFT) as u32
}

/// Words an object of `size` occupies, header included.
#[inline]
pub fn object_words(size: ObjectSize) -> usize {
    HEADER_WORDS + size.slots + size.bytes.div_ceil(8)
}

/// Appends one object to `out`: header, slots, then bytes, zero-padded to a word. On error
/// `out` is as it was.
pub fn encode(head: Head, slots: &[Word], bytes: &[u8], out: &mut Vec<u64>) -> Result<()> {
    let size = ObjectSize {
        slots: slots.len(),
        bytes: bytes.len(),
    };
    let (sizes, info) = (size_word(size)?, info_word(head)?);
    out.reserve(object_words(size));
    out.push(head.class.bits());
    out.push(sizes);
    out.push(info);
    out.extend(slots.iter().map(|w| w.bits()));
    out.extend(bytes.chunks(8).map(|c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_at_their_widths() {
        let head = Head {
            class: Word::from_bits(8),
            format: Format::CompiledMethod,
            hash: u32::MAX,
            aux: (1 << AUX_BITS) - 1,
        };
        let mut out = Vec::new();
        encode(head, &[Word::from_bits(1); 2], &[0xAB; 9], &mut out).unwrap();
        assert_eq!(out.len(), HEADER_WORDS + 2 + 2);
        assert_eq!(size(out[SIZE_WORD]), ObjectSize { slots: 2, bytes: 9 });
        assert_eq!(hash(out[INFO_WORD]), u32::MAX);
        assert_eq!(aux(out[INFO_WORD]), head.aux);
        assert_eq!(format(out[INFO_WORD]), Some(Format::CompiledMethod));
        assert_eq!(out[HEADER_WORDS + 3], 0xAB, "bytes are zero-padded");
    }

    #[test]
    fn fields_too_wide_are_refused_and_change_nothing() {
        let head = Head {
            class: Word::from_bits(8),
            format: Format::Bytes,
            hash: 0,
            aux: 1 << AUX_BITS,
        };
        let mut out = vec![1];
        assert!(encode(head, &[], &[], &mut out).is_err());
        assert_eq!(out, [1]);
        assert!(
            size_word(ObjectSize {
                slots: 1 << 32,
                bytes: 0
            })
            .is_err()
        );
    }
}
