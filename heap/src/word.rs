//! The tagged 64-bit word: the contents of every pointer slot.
//!
//! ```text
//!  63                                   35 34                             3 2 1 0
//! +---------------------------------------+--------------------------------+-----+
//! |            signed 63-bit small integer                                    | 1 |
//! +---------------------------------------+--------------------------------+-----+
//! |                  0                    |        base object index       | 000 |
//! +---------------------------------------+--------------------------------+-----+
//! |       generation (29 bits)            |      private key (32 bits)     | 100 |
//! +---------------------------------------+--------------------------------+-----+
//! |                  0                    |     character code point       | 010 |
//! +---------------------------------------+--------------------------------+-----+
//! ```
//! Tag `110` holds immediate floats: the 61-bit payload of a 64-bit Spur SmallFloat64, kept
//! exactly as Spur encodes it ([`Word::small_float_bits`], `Value::as_f64`). Only importers
//! of 64-bit Spur images make such words; cowheap itself treats them as opaque immediates.
//!
//! The read path decodes a word with one test: `w & 1` for small integers, and for base
//! references, which are the common case and the one the read barrier cares about, one
//! compare against a constant mask of the tag and the bits above the 32-bit index
//! ([`Word::is_base`]): a tag of `000` alone is not enough, since a tag-`000` word with a
//! bit above its index names no object.
//! A private reference carries the generation of the slot it names, so a reference to a
//! collected object whose slot was reused is caught, not aliased (the generation wraps after
//! 2^29 reuses of one slot).

#![warn(clippy::cast_possible_truncation)]

use bytemuck::{Pod, Zeroable};
use std::fmt;

/// Low three bits of a base reference.
const TAG_BASE: u64 = 0b000;
/// The bits a base reference must have clear: the tag and everything above the 32-bit index.
/// A tag-`000` word with a bit set above bit 34 names no object: refusing it keeps one word
/// per object, so identity can be compared word for word.
const BASE_MASK: u64 = !(u32::MAX as u64) << 3 | 7;
/// The 32 bits of `w` from bit `shift` up: one field of a word (an index, a key, a code
/// point). The bits above the field belong to other fields or must be zero, which the
/// callers check where it matters (`is_base`).
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "extracts one 32-bit field; the bits above it are not part of it"
)]
const fn field32(w: u64, shift: u32) -> u32 {
    (w >> shift) as u32
}

/// Low three bits of a private reference.
const TAG_PRIVATE: u64 = 0b100;
/// Low three bits of a character.
const TAG_CHAR: u64 = 0b010;
/// Low three bits of an immediate float (a 64-bit Spur SmallFloat64 payload).
const TAG_FLOAT: u64 = 0b110;
/// Width of the generation field of a private reference.
pub const GENERATION_BITS: u32 = 29;
/// Mask of the generation field.
pub const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// A slot's contents: an immediate or a reference, tagged as the module doc draws.
///
/// `Word` is plain data; it does not say which tenant a private reference belongs to (see
/// [`crate::Value`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(transparent)]
pub struct Word(u64);

/// The index of an object in a base heap. Invariant: below 2^32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ObjectIndex(u32);

/// A key into a tenant's private space with its generation. Invariant: `generation` fits in
/// [`GENERATION_BITS`] bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrivateKey {
    key: u32,
    generation: u32,
}

/// A word decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decoded {
    /// A small integer.
    Int(i64),
    /// A character, by code point.
    Char(u32),
    /// A reference to a base object.
    Base(ObjectIndex),
    /// A reference to a private object of some tenant.
    Private(PrivateKey),
    /// Any other word, kept raw: a word with tag `110` is an immediate float
    /// ([`Word::is_small_float`]), whose payload is Spur's SmallFloat64 encoding
    /// ([`Word::as_small_float_bits`]); a word with tag `000` and bits set above the 32-bit
    /// index is no word at all, and every check refuses it; a word with the character tag
    /// `010` and bits set above a 32-bit code point is no character.
    Reserved(u64),
}

impl Word {
    /// Smallest small integer.
    pub const MIN_INT: i64 = -(1 << 62);
    /// Largest small integer.
    pub const MAX_INT: i64 = (1 << 62) - 1;

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A word from raw bits, as stored in a slot. Every bit pattern is a word; what it refers
    /// to is checked when it is used.
    #[inline]
    pub const fn from_bits(bits: u64) -> Word {
        Word(bits)
    }

    /// A small integer, or `None` outside [`Word::MIN_INT`]..=[`Word::MAX_INT`].
    #[inline]
    pub const fn int(i: i64) -> Option<Word> {
        if i < Self::MIN_INT || i > Self::MAX_INT {
            None
        } else {
            Some(Word(((i as u64) << 1) | 1))
        }
    }

    /// A character.
    #[inline]
    pub const fn char(c: char) -> Word {
        Word(((c as u64) << 3) | TAG_CHAR)
    }

    /// A character by code point (Smalltalk characters need not be Unicode scalars).
    #[inline]
    pub const fn char_code(code: u32) -> Word {
        Word(((code as u64) << 3) | TAG_CHAR)
    }

    /// An immediate float from the 61-bit payload of a 64-bit Spur SmallFloat64 (the Spur
    /// word shifted right by its 3 tag bits), or `None` if `payload` is wider than 61 bits.
    /// The payload is kept exactly; [`crate::Value::as_f64`] decodes it.
    #[inline]
    pub const fn small_float_bits(payload: u64) -> Option<Word> {
        if payload >> 61 != 0 {
            None
        } else {
            Some(Word((payload << 3) | TAG_FLOAT))
        }
    }

    /// The 61-bit Spur SmallFloat64 payload, if this is an immediate float.
    #[inline]
    pub const fn as_small_float_bits(self) -> Option<u64> {
        if self.0 & 7 == TAG_FLOAT {
            Some(self.0 >> 3)
        } else {
            None
        }
    }

    /// True for an immediate float (tag `110`).
    #[inline]
    pub const fn is_small_float(self) -> bool {
        self.0 & 7 == TAG_FLOAT
    }

    /// A reference to base object `index`.
    #[inline]
    pub const fn base(index: ObjectIndex) -> Word {
        Word(((index.0 as u64) << 3) | TAG_BASE)
    }

    /// A reference to a private object.
    #[inline]
    pub const fn private(key: PrivateKey) -> Word {
        Word(((key.generation as u64) << 35) | ((key.key as u64) << 3) | TAG_PRIVATE)
    }

    /// True for a base reference: tag `000` and nothing above the 32-bit index. One test
    /// against a constant mask on the read path.
    #[inline]
    pub const fn is_base(self) -> bool {
        self.0 & BASE_MASK == TAG_BASE
    }

    /// True for an immediate: a small integer, a character or an immediate float, and a
    /// character tag with bits set above a 32-bit code point, which is no character
    /// ([`Word::as_char_code`] refuses it) but an opaque immediate every check takes as it is.
    #[inline]
    pub const fn is_immediate(self) -> bool {
        // Tags x x 1 (small integers), 0 1 0 (characters) and 1 1 0 (floats): exactly the
        // words with one of the two low bits set (references are 0 0 0 and 1 0 0).
        self.0 & 3 != 0
    }

    /// True for every word but a base tag with bits set above its 32-bit index, which names
    /// no object (two words must never name one). Every other word is an immediate or a
    /// reference.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 & 7 != TAG_BASE || self.0 & BASE_MASK == 0
    }

    /// Bits set only in a word that is neither a base reference nor an immediate (a
    /// private reference, or a base tag with bits above its index): zero exactly for the
    /// words a base object's slot may hold. Branch-free, so that a fold of it over many
    /// words (`acc | w.stray_bits()`) runs as a few vector instructions a pair of words,
    /// where testing [`Word::is_base`] and [`Word::is_immediate`] word by word does not.
    #[inline]
    pub const fn stray_bits(self) -> u64 {
        // An immediate has one of the two low bits set; any other word is a base reference
        // exactly when the base mask's other bits are clear.
        if self.0 & 3 == 0 {
            self.0 & (BASE_MASK & !3)
        } else {
            0
        }
    }

    /// True for a private reference.
    #[inline]
    pub const fn is_private(self) -> bool {
        self.0 & 7 == TAG_PRIVATE
    }

    /// True for any reference (base or private).
    #[inline]
    pub const fn is_ref(self) -> bool {
        self.is_base() || self.is_private()
    }

    /// The base index, if this is a base reference.
    #[inline]
    pub const fn as_base(self) -> Option<ObjectIndex> {
        if self.is_base() {
            Some(ObjectIndex(field32(self.0, 3)))
        } else {
            None
        }
    }

    /// The base index of a base reference, widened; every other word gives a number of at
    /// least 2^32, which no base index reaches. The word rotated right by its three tag bits:
    /// a set tag bit lands at the top, a set bit above a base index stays above bit 31. One
    /// compare of the result with a table's length therefore both tests for a base reference
    /// and bounds its index, where [`Word::as_base`] and a bounds check take two.
    ///
    /// ```
    /// use cowheap_heap::{ObjectIndex, Word};
    /// let x = ObjectIndex::from_u32(7);
    /// assert_eq!(Word::base(x).base_index_wide(), 7);
    /// assert!(Word::int(7).unwrap().base_index_wide() >= 1 << 32);
    /// assert!(Word::from_bits(1 << 40).base_index_wide() >= 1 << 32);
    /// ```
    #[inline(always)]
    pub const fn base_index_wide(self) -> u64 {
        self.0.rotate_right(3)
    }

    /// The private key, if this is a private reference.
    #[inline]
    pub const fn as_private(self) -> Option<PrivateKey> {
        if self.is_private() {
            Some(self.private_key_bits())
        } else {
            None
        }
    }

    /// The key and generation fields, whatever the tag: for a word known to be a private
    /// reference.
    #[inline(always)]
    pub(crate) const fn private_key_bits(self) -> PrivateKey {
        PrivateKey {
            key: field32(self.0, 3),
            generation: (self.0 >> 35) as u32,
        }
    }

    /// The small integer, if this is one.
    #[inline]
    pub const fn as_int(self) -> Option<i64> {
        if self.0 & 1 == 1 {
            Some((self.0 as i64) >> 1)
        } else {
            None
        }
    }

    /// The character code point, if this is a character: a character tag and a code point of
    /// at most 32 bits above it (a word with bits set higher is no character, but a
    /// [`Decoded::Reserved`] word, so that two words are never the same character).
    #[inline]
    pub const fn as_char_code(self) -> Option<u32> {
        if self.0 & 7 == TAG_CHAR && self.0 >> 35 == 0 {
            Some(field32(self.0, 3))
        } else {
            None
        }
    }

    /// The word decoded.
    #[inline]
    pub const fn decode(self) -> Decoded {
        if self.0 & 1 == 1 {
            return Decoded::Int((self.0 as i64) >> 1);
        }
        match self.0 & 7 {
            TAG_BASE if self.is_base() => Decoded::Base(ObjectIndex(field32(self.0, 3))),
            TAG_PRIVATE => Decoded::Private(PrivateKey {
                key: field32(self.0, 3),
                generation: (self.0 >> 35) as u32,
            }),
            TAG_CHAR if self.0 >> 35 == 0 => Decoded::Char(field32(self.0, 3)),
            _ => Decoded::Reserved(self.0),
        }
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            Decoded::Int(i) => write!(f, "{i}"),
            Decoded::Char(c) => match char::from_u32(c) {
                Some(ch) => write!(f, "${ch}"),
                None => write!(f, "$<{c:#x}>"),
            },
            Decoded::Base(i) => write!(f, "@{}", i.0),
            Decoded::Private(k) => write!(f, "#{}.{}", k.key, k.generation),
            Decoded::Reserved(b) if self.is_small_float() => write!(f, "<float {:#x}>", b >> 3),
            Decoded::Reserved(b) => write!(f, "<invalid {b:#x}>"),
        }
    }
}

impl ObjectIndex {
    /// The index `i`, or `None` if it does not fit the encoding (2^32 objects).
    #[inline]
    pub fn new(i: usize) -> Option<ObjectIndex> {
        u32::try_from(i).ok().map(ObjectIndex)
    }

    /// The index as a `usize`.
    #[inline]
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The index as a `u32`.
    #[inline]
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The index from a `u32`, which always fits.
    #[inline]
    pub const fn from_u32(i: u32) -> ObjectIndex {
        ObjectIndex(i)
    }
}

impl fmt::Display for ObjectIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

impl PrivateKey {
    /// A private key; the generation is reduced to [`GENERATION_BITS`] bits.
    #[inline]
    pub const fn new(key: u32, generation: u32) -> PrivateKey {
        PrivateKey {
            key,
            generation: generation & GENERATION_MASK,
        }
    }

    /// The slot number in the private space.
    #[inline]
    pub const fn key(self) -> u32 {
        self.key
    }

    /// The generation of the slot when the reference was made.
    #[inline]
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A character word's code point is at most 32 bits: one with a bit set above is no
    /// character, so two words that differ are never one character.
    #[test]
    fn a_character_word_with_bits_above_its_code_point_is_no_character() {
        let c = Word::char_code(u32::MAX);
        assert_eq!(c.as_char_code(), Some(u32::MAX));
        assert!(matches!(c.decode(), Decoded::Char(u32::MAX)));
        for high in [1u64 << 35, 1 << 40, 1 << 63] {
            let wide = Word::from_bits(c.bits() | high);
            assert_eq!(wide.as_char_code(), None);
            assert!(matches!(wide.decode(), Decoded::Reserved(w) if w == wide.bits()));
            let low = Word::from_bits(Word::char_code(65).bits() | high);
            assert_eq!(low.as_char_code(), None, "not the character 65");
        }
    }

    #[test]
    fn a_wide_index_is_below_2_to_the_32_exactly_for_base_references() {
        // Every tag, with and without bits above a base index, at the edges of each field.
        let mut words = Vec::new();
        for high in [0u64, 1 << 35, 1 << 40, 1 << 63, u64::MAX << 35] {
            for index in [
                0u64,
                1,
                7,
                12345,
                u64::from(u32::MAX) - 1,
                u64::from(u32::MAX),
            ] {
                for tag in 0..8u64 {
                    words.push(Word::from_bits(high | index << 3 | tag));
                }
            }
        }
        for &w in &words {
            assert_eq!(
                w.stray_bits() == 0,
                w.is_base() || w.is_immediate(),
                "{w:?}"
            );
        }
        for w in words {
            let wide = w.base_index_wide();
            match w.as_base() {
                Some(x) => assert_eq!(wide, u64::from(x.as_u32()), "{w:?}"),
                None => assert!(wide >= 1 << 32, "{w:?} gives {wide}"),
            }
        }
    }

    #[test]
    fn ints_round_trip_at_the_edges() {
        for i in [0, 1, -1, Word::MIN_INT, Word::MAX_INT, 12345, -98765] {
            let w = Word::int(i).unwrap();
            assert_eq!(w.as_int(), Some(i));
            assert_eq!(w.decode(), Decoded::Int(i));
            assert!(!w.is_ref());
        }
        assert!(Word::int(Word::MAX_INT + 1).is_none());
        assert!(Word::int(Word::MIN_INT - 1).is_none());
    }

    #[test]
    fn references_decode_to_their_space() {
        let b = Word::base(ObjectIndex::from_u32(u32::MAX));
        assert_eq!(b.as_base(), Some(ObjectIndex::from_u32(u32::MAX)));
        assert!(b.is_base() && b.is_ref() && !b.is_private());
        let k = PrivateKey::new(u32::MAX, GENERATION_MASK);
        let p = Word::private(k);
        assert_eq!(p.as_private(), Some(k));
        assert!(p.is_private() && p.is_ref() && !p.is_base());
        assert_eq!(PrivateKey::new(7, GENERATION_MASK + 1).generation(), 0);
    }

    #[test]
    fn a_base_tag_with_bits_above_the_index_names_no_object() {
        let canonical = Word::base(ObjectIndex::from_u32(5));
        for high in [35, 40, 63] {
            let alias = Word::from_bits(canonical.bits() | 1 << high);
            assert_eq!(alias.as_base(), None, "bit {high}");
            assert!(!alias.is_base() && !alias.is_ref() && !alias.is_small_float());
            assert!(!alias.is_valid() && !alias.is_immediate());
            assert!(matches!(alias.decode(), Decoded::Reserved(_)));
        }
        assert_eq!(canonical.as_base(), Some(ObjectIndex::from_u32(5)));
        let private = Word::private(PrivateKey::new(u32::MAX, GENERATION_MASK));
        let float = Word::from_bits(u64::MAX << 3 | 0b110);
        for (w, immediate) in [
            (canonical, false),
            (private, false),
            (Word::int(-1).unwrap(), true),
            (Word::char('x'), true),
            (float, true),
        ] {
            assert!(w.is_valid(), "{w:?}");
            assert_eq!(w.is_immediate(), immediate, "{w:?}");
            assert_eq!(w.is_ref(), !immediate, "{w:?}");
        }
    }

    #[test]
    fn characters_are_not_references() {
        let c = Word::char('λ');
        assert_eq!(c.as_char_code(), Some('λ' as u32));
        assert!(!c.is_ref());
        assert_eq!(c.as_int(), None);
        assert!(matches!(
            Word::from_bits(0b110).decode(),
            Decoded::Reserved(6)
        ));
    }

    #[test]
    fn small_float_payloads_round_trip() {
        let max = (1u64 << 61) - 1;
        for p in [0, 1, 12345, max] {
            let w = Word::small_float_bits(p).unwrap();
            assert!(w.is_small_float() && !w.is_ref() && w.as_int().is_none());
            assert_eq!(w.as_small_float_bits(), Some(p));
        }
        assert!(Word::small_float_bits(max + 1).is_none());
        assert_eq!(Word::int(3).unwrap().as_small_float_bits(), None);
    }
}
