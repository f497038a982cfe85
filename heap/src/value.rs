//! Values as an embedder holds them.

use crate::{Decoded, ObjectIndex, PrivateKey, Word};
use std::fmt;
use std::num::NonZeroU64;

/// The identity of a tenant. Invariant: never zero, never reused within a process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TenantId(NonZeroU64);

impl TenantId {
    /// The id with number `n`, or `None` for zero.
    pub fn new(n: u64) -> Option<TenantId> {
        NonZeroU64::new(n).map(TenantId)
    }

    /// The id's number.
    #[inline(always)]
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant {}", self.0)
    }
}

/// A word as held by an embedder: an immediate, a base reference, or a private reference
/// together with the tenant it belongs to.
///
/// A `Value` is `Copy` and cheap (16 bytes). It does not keep its object alive: a private
/// object is kept by the tenant's roots, its pinned handles and references from other live
/// objects, and a `Value` naming a collected object is refused when used. Values are not
/// compared with `==`: two values can name the same object by different paths (a base
/// reference and the tenant's copy of it), so identity is asked of the tenant
/// (`Tenant::identical`). `==` does not compile:
///
/// ```compile_fail
/// let same = cowheap_heap::Value::int(1) == cowheap_heap::Value::int(1);
/// ```
///
/// ```
/// use cowheap_heap::Value;
/// let v = Value::int(42);
/// assert_eq!(v.as_int(), Some(42));
/// assert_eq!(Value::char('x').as_char(), Some('x'));
/// assert!(!v.is_object());
/// ```
#[derive(Clone, Copy)]
pub struct Value {
    word: Word,
    /// The tenant a private reference belongs to; `None` for immediates and base references,
    /// which mean the same in every tenant.
    owner: Option<TenantId>,
}

impl Value {
    /// A small integer.
    ///
    /// # Panics
    /// If `i` lies outside [`Word::MIN_INT`]..=[`Word::MAX_INT`] (63 bits); [`Value::try_int`]
    /// says so with an error instead.
    ///
    /// Inlined, with the panic out of line: callers across crates (an interpreter, a bench
    /// loop) make integers on their hot paths.
    #[inline]
    #[track_caller]
    pub fn int(i: i64) -> Value {
        match Word::int(i) {
            Some(w) => Value::shared(w),
            None => int_out_of_range(i),
        }
    }

    /// A small integer, or [`Error::IntOutOfRange`](crate::Error::IntOutOfRange) outside
    /// [`Word::MIN_INT`]..=[`Word::MAX_INT`].
    ///
    /// ```
    /// use cowheap_heap::{Value, Word};
    /// assert_eq!(Value::try_int(-5).unwrap().as_int(), Some(-5));
    /// assert!(Value::try_int(Word::MAX_INT + 1).is_err());
    /// ```
    #[inline]
    pub fn try_int(i: i64) -> crate::Result<Value> {
        Word::int(i)
            .map(Value::shared)
            .ok_or(crate::Error::IntOutOfRange(i))
    }

    /// A character.
    #[inline]
    pub fn char(c: char) -> Value {
        Value::shared(Word::char(c))
    }

    /// A reference to a base object.
    #[inline]
    pub fn base(index: ObjectIndex) -> Value {
        Value::shared(Word::base(index))
    }

    /// A word that means the same in every tenant (an immediate or a base reference). A
    /// private word made this way belongs to no tenant and is refused by every tenant.
    #[inline]
    pub const fn shared(word: Word) -> Value {
        Value { word, owner: None }
    }

    /// A word as seen by `tenant`. Private references keep the owner; other words drop it.
    #[inline]
    pub const fn owned(word: Word, tenant: TenantId) -> Value {
        Value {
            word,
            owner: if word.is_private() {
                Some(tenant)
            } else {
                None
            },
        }
    }

    /// The raw word.
    #[inline]
    pub const fn word(self) -> Word {
        self.word
    }

    /// The tenant a private reference belongs to; `None` for every other value.
    #[inline]
    pub const fn owner(self) -> Option<TenantId> {
        self.owner
    }

    /// True if this value belongs to `tenant` (`owner() == Some(tenant)`), in one compare:
    /// no owner is 0, which no tenant's id is. On the read path of every private object.
    ///
    /// ```
    /// use cowheap_heap::{TenantId, Value};
    /// let t = TenantId::new(7).unwrap();
    /// assert!(!Value::int(1).is_owned_by(t));
    /// ```
    #[inline(always)]
    pub fn is_owned_by(self, tenant: TenantId) -> bool {
        self.owner.map_or(0, TenantId::get) == tenant.get()
    }

    /// The private key of this value if it belongs to `tenant`, in the one compare of
    /// [`Value::is_owned_by`]: a value has an owner only when its word is a private reference
    /// ([`Value::owned`] keeps the owner of no other word), so the tag needs no test of its
    /// own.
    ///
    /// ```
    /// use cowheap_heap::{PrivateKey, TenantId, Value, Word};
    /// let (t, u) = (TenantId::new(7).unwrap(), TenantId::new(8).unwrap());
    /// let k = PrivateKey::new(3, 1);
    /// let v = Value::owned(Word::private(k), t);
    /// assert_eq!(v.key_for(t), Some(k));
    /// assert_eq!(v.key_for(u), None);
    /// assert_eq!(Value::shared(Word::private(k)).key_for(t), None);
    /// assert_eq!(Value::int(1).key_for(t), None);
    /// ```
    #[inline(always)]
    pub fn key_for(self, tenant: TenantId) -> Option<PrivateKey> {
        if self.is_owned_by(tenant) {
            debug_assert!(self.word.is_private());
            Some(self.word.private_key_bits())
        } else {
            None
        }
    }

    /// The small integer, if this is one.
    #[inline]
    pub const fn as_int(self) -> Option<i64> {
        self.word.as_int()
    }

    /// The character, if this is one and a Unicode scalar.
    #[inline]
    pub fn as_char(self) -> Option<char> {
        self.word.as_char_code().and_then(char::from_u32)
    }

    /// The immediate float, if this is one: the payload of a 64-bit Spur SmallFloat64
    /// ([`Word::small_float_bits`]) decoded as Spur does. Its 8-bit exponent is re-biased
    /// from 127 to 1023 (payloads 0 and 1 are the zeros), then the sign, kept in the low
    /// bit, is rotated back to the top.
    #[inline]
    pub fn as_f64(self) -> Option<f64> {
        let mut bits = self.word.as_small_float_bits()?;
        if bits > 1 {
            bits += 896 << 53;
        }
        Some(f64::from_bits(bits.rotate_right(1)))
    }

    /// True for references (base or private); false for immediates and for invalid words
    /// ([`Word::is_valid`]).
    #[inline]
    pub const fn is_object(self) -> bool {
        self.word.is_ref()
    }

    /// The base index, if this is a base reference.
    #[inline]
    pub const fn as_base(self) -> Option<ObjectIndex> {
        self.word.as_base()
    }

    /// The word decoded.
    #[inline]
    pub const fn decode(self) -> Decoded {
        self.word.decode()
    }

    /// True if the two values hold the same word and owner. This is *not* identity: see the
    /// type's documentation.
    #[inline]
    pub fn same_word(self, other: Value) -> bool {
        self.word == other.word && self.owner == other.owner
    }
}

/// [`Value::int`]'s panic, out of line.
#[cold]
#[inline(never)]
#[track_caller]
fn int_out_of_range(i: i64) -> ! {
    panic!("{}", crate::Error::IntOutOfRange(i))
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            Some(t) => write!(f, "{:?}@t{}", self.word, t.get()),
            None => write!(f, "{:?}", self.word),
        }
    }
}

impl From<Word> for Value {
    /// Same as [`Value::shared`].
    fn from(w: Word) -> Value {
        Value::shared(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_kept_only_for_private_words() {
        let t = TenantId::new(9).unwrap();
        let p = Word::private(crate::PrivateKey::new(1, 2));
        assert_eq!(Value::owned(p, t).owner(), Some(t));
        assert_eq!(Value::owned(Word::int(5).unwrap(), t).owner(), None);
        assert!(TenantId::new(0).is_none());
    }

    #[test]
    fn small_floats_decode_as_spur_encodes_them() {
        // Spur's encoding of a double: rotate left by 1, take away the exponent bias
        // difference, keep the low 61 bits.
        let encode = |f: f64| {
            let mut b = f.to_bits().rotate_left(1);
            if b > 1 {
                b -= 896 << 53;
            }
            Word::small_float_bits(b).unwrap()
        };
        for f in [0.0, -0.0, 1.0, -2.5, std::f64::consts::PI, 1e38, -1e-30] {
            let v = Value::shared(encode(f));
            assert_eq!(v.as_f64().unwrap().to_bits(), f.to_bits(), "{f}");
        }
        assert_eq!(Value::int(1).as_f64(), None);
    }

    #[test]
    fn try_int_refuses_what_63_bits_cannot_hold() {
        assert_eq!(Value::int(Word::MAX_INT).as_int(), Some(Word::MAX_INT));
        assert_eq!(Value::int(Word::MIN_INT).as_int(), Some(Word::MIN_INT));
        for i in [i64::MIN, i64::MAX, Word::MAX_INT + 1, Word::MIN_INT - 1] {
            assert!(matches!(Value::try_int(i), Err(crate::Error::IntOutOfRange(j)) if j == i));
        }
    }

    #[test]
    #[should_panic(expected = "does not fit a small integer")]
    fn int_out_of_range_panics_rather_than_saturating() {
        let _ = Value::int(i64::MAX);
    }
}
