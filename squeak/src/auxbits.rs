//! The 24 auxiliary bits an imported object keeps ([`cowheap_heap::Builder::set_aux`]).
//!
//! They hold what the source header said that the cowheap object does not: enough to write
//! the header back bit for bit. Bits 22..24 name the layout; an object whose aux is 0 was not
//! imported, and an export derives its header from its cowheap format alone.
//!
//! ```text
//! V3 (bits 22..24 = 01)
//!   0..4    format code of the base header (0..15)
//!   4..6    header type: 0 three words, 1 two words, 3 one word
//!   6..11   compact class index field
//!   11..14  GC bits (base header bits 29..31)
//!   14..20  size field of the base header (bits 2..7), kept for three-word headers
//!
//! Spur (bits 22..24 = 10)
//!   0..5    format code (0..31)
//!   5..12   flag bits of the header: bits 22, 23 (immutable), 29 (remembered),
//!           30 (pinned), 31 (grey), 54, 55 (marked), in that order
//!   12..17  pun class index of a hidden object (class index below 32)
//!   17      hidden: the object's class index is a pun, its cowheap class is nil
//!   18      the class index is not the class's identity hash (a class entered twice in
//!           the class table): it is kept in the root `image.classIndex.<object number>`
//! ```

/// Which layout an aux value follows.
const FAMILY_SHIFT: u32 = 22;
const FAMILY_V3: u32 = 1;
const FAMILY_SPUR: u32 = 2;

/// A V3 object's header bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct V3Aux {
    /// Format code (0..15).
    pub format: u8,
    /// Header type: 0 (three words), 1 (two words) or 3 (one word).
    pub header_type: u8,
    /// Compact class index field (0..31).
    pub compact_class: u8,
    /// GC bits (0..7).
    pub gc_bits: u8,
    /// The base header's size field (0..63).
    pub size_field: u8,
}

/// A Spur object's header bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SpurAux {
    /// Format code (0..31).
    pub format: u8,
    /// The seven flag bits (see the module doc).
    pub flags: u8,
    /// The pun class index of a hidden object.
    pub pun: Option<u8>,
    /// The class index is kept in a root, not given by the class's identity hash.
    pub index_in_root: bool,
}

/// The aux bits decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Aux {
    /// Not imported.
    None,
    /// From a V3 image.
    V3(V3Aux),
    /// From a Spur image.
    Spur(SpurAux),
}

/// Spur header bits kept as flags, in aux order.
pub(crate) const SPUR_FLAG_BITS: [u32; 7] = [22, 23, 29, 30, 31, 54, 55];

impl Aux {
    /// Decodes aux bits.
    pub fn decode(aux: u32) -> Aux {
        match aux >> FAMILY_SHIFT {
            FAMILY_V3 => Aux::V3(V3Aux {
                format: (aux & 15) as u8,
                header_type: ((aux >> 4) & 3) as u8,
                compact_class: ((aux >> 6) & 31) as u8,
                gc_bits: ((aux >> 11) & 7) as u8,
                size_field: ((aux >> 14) & 63) as u8,
            }),
            FAMILY_SPUR => Aux::Spur(SpurAux {
                format: (aux & 31) as u8,
                flags: ((aux >> 5) & 127) as u8,
                pun: (aux & (1 << 17) != 0).then_some(((aux >> 12) & 31) as u8),
                index_in_root: aux & (1 << 18) != 0,
            }),
            _ => Aux::None,
        }
    }

    /// Encodes aux bits (24 bits).
    pub fn encode(self) -> u32 {
        match self {
            Aux::None => 0,
            Aux::V3(a) => {
                (FAMILY_V3 << FAMILY_SHIFT)
                    | u32::from(a.format & 15)
                    | (u32::from(a.header_type & 3) << 4)
                    | (u32::from(a.compact_class & 31) << 6)
                    | (u32::from(a.gc_bits & 7) << 11)
                    | (u32::from(a.size_field & 63) << 14)
            }
            Aux::Spur(a) => {
                (FAMILY_SPUR << FAMILY_SHIFT)
                    | u32::from(a.format & 31)
                    | (u32::from(a.flags & 127) << 5)
                    | a.pun.map_or(0, |p| (u32::from(p & 31) << 12) | (1 << 17))
                    | (u32::from(a.index_in_root) << 18)
            }
        }
    }

    /// True for a hidden Spur object (free lists, hidden roots, class-table pages, obj stacks,
    /// forwarders, free chunks).
    pub fn is_hidden(self) -> bool {
        matches!(self, Aux::Spur(SpurAux { pun: Some(_), .. }))
    }
}

/// The seven flag bits of a Spur header, packed.
pub(crate) fn spur_flags(header: u64) -> u8 {
    SPUR_FLAG_BITS
        .iter()
        .enumerate()
        .fold(0, |acc, (k, &b)| acc | ((((header >> b) & 1) as u8) << k))
}

/// The header bits of packed Spur flags.
pub(crate) fn spur_flag_bits(flags: u8) -> u64 {
    SPUR_FLAG_BITS
        .iter()
        .enumerate()
        .fold(0, |acc, (k, &b)| acc | (u64::from((flags >> k) & 1) << b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aux_round_trips_and_fits_24_bits() {
        let all = [
            Aux::None,
            Aux::V3(V3Aux {
                format: 15,
                header_type: 3,
                compact_class: 31,
                gc_bits: 7,
                size_field: 63,
            }),
            Aux::V3(V3Aux {
                format: 0,
                header_type: 0,
                compact_class: 0,
                gc_bits: 0,
                size_field: 0,
            }),
            Aux::Spur(SpurAux {
                format: 31,
                flags: 127,
                pun: Some(31),
                index_in_root: true,
            }),
            Aux::Spur(SpurAux {
                format: 0,
                flags: 0,
                pun: None,
                index_in_root: false,
            }),
        ];
        for a in all {
            assert!(a.encode() < 1 << 24);
            assert_eq!(Aux::decode(a.encode()), a);
        }
        let h = (1u64 << 55) | (1 << 30) | (1 << 23);
        assert_eq!(spur_flag_bits(spur_flags(h)), h);
    }
}
