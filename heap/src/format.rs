//! Object formats: how an object's body is laid out.

/// The layout of an object's body.
///
/// Every object has some pointer slots followed by some raw bytes; the format says which of
/// the two it may have and how the bytes are read. Pointer formats hold no bytes, raw formats
/// hold no pointer slots, and [`Format::CompiledMethod`] holds both (the method header and
/// literals as slots, then the bytecodes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Format {
    /// Pointer slots only.
    Pointers = 0,
    /// Pointer slots only, those past the named ones weakly held (by a collection told how
    /// many are named: `cowheap_tenants::Weakness`; strongly by any other).
    Weak = 1,
    /// An ephemeron (key, value, ...): its slots are held only once its key is reached
    /// another way by a collection that takes mourners (`Tenant::try_collect_ephemerons` of
    /// `cowheap_tenants`, which fires one whose key only ephemerons reach), strongly by any
    /// other.
    Ephemeron = 2,
    /// Raw bytes.
    Bytes = 3,
    /// Raw 16-bit units, stored little-endian.
    Shorts = 4,
    /// Raw 32-bit units, stored little-endian.
    Words = 5,
    /// Raw 64-bit units, stored little-endian.
    DoubleWords = 6,
    /// Pointer slots (header and literals) then bytes (bytecodes).
    CompiledMethod = 7,
}

/// The size of an object: its pointer slots and its raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ObjectSize {
    /// Number of pointer slots.
    pub slots: usize,
    /// Number of raw bytes.
    pub bytes: usize,
}

impl Format {
    /// Every format, in code order.
    pub const ALL: [Format; 8] = [
        Format::Pointers,
        Format::Weak,
        Format::Ephemeron,
        Format::Bytes,
        Format::Shorts,
        Format::Words,
        Format::DoubleWords,
        Format::CompiledMethod,
    ];

    /// The format with code `code`, if there is one.
    pub fn from_code(code: u8) -> Option<Format> {
        Self::ALL.get(code as usize).copied()
    }

    /// The format's code (its discriminant).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// True if objects of this format may hold pointer slots.
    pub const fn has_slots(self) -> bool {
        matches!(
            self,
            Format::Pointers | Format::Weak | Format::Ephemeron | Format::CompiledMethod
        )
    }

    /// True if objects of this format may hold raw bytes.
    pub const fn has_bytes(self) -> bool {
        !matches!(self, Format::Pointers | Format::Weak | Format::Ephemeron)
    }

    /// The unit raw bytes come in (1 for bytes and methods, 2, 4 or 8 for the word formats).
    pub const fn unit(self) -> usize {
        match self {
            Format::Shorts => 2,
            Format::Words => 4,
            Format::DoubleWords => 8,
            _ => 1,
        }
    }

    /// True if an object of this format may have `size`.
    pub const fn fits(self, size: ObjectSize) -> bool {
        (size.slots == 0 || self.has_slots())
            && (size.bytes == 0 || self.has_bytes())
            && size.bytes.is_multiple_of(self.unit())
    }

    /// The error for a slot index `i` past `len` slots: [`crate::Error::WrongKind`] if this
    /// format has no slots at all, else [`crate::Error::SlotOutOfRange`].
    pub fn slot_error(self, index: usize, len: usize) -> crate::Error {
        if len == 0 && !self.has_slots() {
            crate::Error::WrongKind {
                format: self,
                wanted: "pointer slots",
            }
        } else {
            crate::Error::SlotOutOfRange { index, len }
        }
    }

    /// The error for bytes `start..end` past `len` bytes: [`crate::Error::WrongKind`] if this
    /// format has no bytes at all, else [`crate::Error::BytesOutOfRange`].
    pub fn bytes_error(self, start: usize, end: usize, len: usize) -> crate::Error {
        if len == 0 && !self.has_bytes() {
            crate::Error::WrongKind {
                format: self,
                wanted: "raw bytes",
            }
        } else {
            crate::Error::BytesOutOfRange { start, end, len }
        }
    }

    /// `Ok` if an object of this format may have `size`, else [`crate::Error::BadLayout`].
    pub fn check(self, size: ObjectSize) -> crate::Result<()> {
        if self.fits(size) {
            Ok(())
        } else {
            Err(crate::Error::BadLayout {
                format: self,
                slots: size.slots,
                bytes: size.bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_none() {
        for f in Format::ALL {
            assert_eq!(Format::from_code(f.code()), Some(f));
        }
        assert_eq!(Format::from_code(8), None);
    }

    #[test]
    fn layouts_are_checked() {
        let s = |slots, bytes| ObjectSize { slots, bytes };
        assert!(Format::Pointers.fits(s(3, 0)));
        assert!(!Format::Pointers.fits(s(3, 1)));
        assert!(!Format::Bytes.fits(s(1, 0)));
        assert!(Format::CompiledMethod.fits(s(2, 5)));
        assert!(!Format::Words.fits(s(0, 6)));
        assert!(Format::Words.fits(s(0, 8)));
        assert!(Format::Bytes.check(s(1, 0)).is_err());
    }
}
