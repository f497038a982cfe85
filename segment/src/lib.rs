//! Image segments: Squeak's unit for moving part of an image out of memory, into a file, and
//! into another image; here, between cowheap tenants and bases.
//!
//! A *segment* is the set of objects reachable from some roots and from nothing else, with an
//! *out-pointer table* for every reference that leaves it. Two kinds are read and written:
//!
//! **Squeak's own segments.** An Etoys project file ([`Project`]) is a zip whose `.pr` entry
//! is `SPRJ`, 40 bytes and a gzip ([`container`]) of a SmartRefStream: Squeak's DataStream
//! object encoding ([`datastream`]) holding a class-structure table and an `ImageSegment`
//! instance, whose `segment` field is the V3 segment words ([`v3`]) and whose `outPointers`
//! field is an Array of what the words point at outside: symbols, class proxies by name,
//! constructed objects, a few objects by value ([`OutPointer`]). The words are decoded into a
//! typed form, every oop checked, and written back byte for byte. [`bind`] resolves the
//! out-pointers in a base by name (classes only where their instance variable names match the
//! writer's) and materialises the segment's objects in a tenant through its public API.
//!
//! **Tenant segments** ([`tenant`]). [`tenant::extract`] takes a tenant's private objects in
//! the roots' shadow (Squeak's definition), walking private objects only; references to base
//! objects and to private objects outside become out-pointers. A segment moves through the
//! states of Squeak's `ImageSegment` ([`tenant::SegmentState`]), is written to a checksummed,
//! versioned file atomically ([`mod@file`]), and imports into a tenant of the same base or, made
//! portable (out-pointers by name: symbols, classes with their shapes, special objects,
//! globals), of another base.
//!
//! A member that is a host object's proxy (an open connection, a file: see
//! `cowheap_tenants::hosts`) travels with its kind and what its plugin saves, and is made
//! again by the plugin on import ([`hosts`]); a missing plugin is a typed error, or, if the
//! caller asks, a placeholder listed in the import's report.
//!
//! Imported objects keep their identity hashes (`Tenant::alloc_with_hash`); objects an
//! out-pointer binds to in another base have that base's, so [`rehash`] puts the elements
//! of the imported `Set`s, `IdentitySet`s, `Dictionary`s, `IdentityDictionary`s and
//! `MethodDictionary`s back where Squeak's `scanFor:` looks for them, and reports the
//! collections whose hashes it cannot compute. Those are finished as Squeak finishes every
//! hashed collection of a segment it loads, by sending them `rehash`: the report lists them
//! ([`rehash::RehashReport::left_for_image`], `Imported::left_for_image`,
//! `Materialised::left_for_image`) as plain values for the interpreter of the `cowheap-vm`
//! crate (`Vm::rehash_by_image`), which runs the image's own code. This crate does not
//! depend on the interpreter: a user of segments alone neither builds nor runs it.
//!
//! [`export::to_v3`] writes a tenant segment in Squeak's V3 word format (roots array first,
//! compact classes from the class format words, out-pointers with the top bit set), and
//! [`spur_export::to_spur`] in the Spur format ([`spur`]: 32- or 64-bit, either byte order),
//! which [`spur_export::to_segment`] reads back into a tenant segment.
//!
//! [`swap`] swaps a segment out of a tenant to a store ([`swap::SegmentStore`]: a directory,
//! memory, or another backend) and leaves root stubs; the first touch through a stub faults
//! it back in, identity and identity hashes kept (Squeak's *active* state).
//!
//! Equality collections are placed by `hash` as the target image defines it:
//! [`image_hash::Hasher`] looks the method up and runs it when it is within an exactly
//! modelled subset of V3 methods, and says why when it is not.
//!
//! [`info`] answers what the `cowheap segment info` and `cowheap segment import` commands
//! print.
//!
//! | operation | time |
//! | --- | --- |
//! | [`Project::from_bytes`] | O(file + inflated stream + segment words) |
//! | [`v3::V3Segment::parse`], [`v3::V3Segment::to_bytes`] | O(words) |
//! | [`bind::BaseNames::of`] | O(base objects), once per base |
//! | [`bind::materialise`] | O(segment words) after the names |
//! | [`rehash::rehash`] | O(objects + slots of the hashed collections among them) |
//! | [`spur::SpurSegment::parse`], [`spur::SpurSegment::to_bytes`] | O(bytes) |
//! | [`spur_export::to_spur`], [`spur_export::to_segment`] | O(segment size) |
//! | [`image_hash::Hasher::hash`] | O(the methods run), at most 16 sends deep |
//! | [`tenant::extract`], [`tenant::extract_with_hosts`] | O(private objects reachable from the roots and the other roots), plus the plugins' work |
//! | [`file::write`], [`file::read`] | O(segment size) |
//! | [`swap::Swapper::swap_out`] | O(private objects reachable from the tenant's roots) + the store's write |
//! | a fault-in ([`swap::Swapper::fault_in`]) | the store's read + O(segment size) |
//!
//! Bad input never panics: every truncation and corruption is a typed [`SegmentError`], and
//! every count is checked against the bytes left before anything is allocated.
//!
//! ```no_run
//! use cowheap_segment::{Project, bind};
//! use cowheap_forwarders::Base;
//! use cowheap_tenants::Tenant;
//!
//! let project = Project::open("JustPaintedCar.013.pr")?;
//! println!("{}", project.report());
//! let base = Base::new(cowheap_squeak::import("mini.image").unwrap().heap);
//! let mut tenant = Tenant::fork(&base);
//! let m = bind::materialise(&mut tenant, &project, "segment")?;
//! println!("{}", m.report);
//! # Ok::<(), cowheap_segment::SegmentError>(())
//! ```
#![forbid(unsafe_code)]

pub mod bind;
pub mod container;
pub mod datastream;
mod error;
pub mod export;
pub mod file;
pub mod hosts;
pub mod image_hash;
pub mod info;
pub mod project;
pub mod rehash;
pub mod spur;
pub mod spur_export;
pub mod swap;
pub mod tenant;
pub mod v3;

pub use error::{Result, SegmentError};
pub use project::{OutPointer, Project, ProjectReport};

/// Class instance variable holding the format word, in V3 and Spur alike (`superclass
/// methodDict format ...`).
pub(crate) const CLASS_FORMAT_SLOT: usize = 2;
/// Special objects array index of the CharacterTable of a V3 image.
const SPECIAL_CHARACTER_TABLE: usize = 24;

/// Whether `v` is a class as the virtual machine needs one to make an instance: a pointer
/// object whose field 2 (`format`, in V3 and Spur alike) is a SmallInteger. An import into
/// a base read from an image makes an object only with such a class: an out-pointer of a
/// hostile file or project naming nil, a Symbol or a global that is no class as a class
/// would otherwise give an object of no class the image can read. Time: O(1).
///
/// # Errors
/// [`SegmentError::Tenant`] if the tenant refuses a read of `v`.
pub(crate) fn is_class(t: &cowheap_tenants::Tenant, v: cowheap_heap::Value) -> Result<bool> {
    if !v.word().is_ref() {
        return Ok(false);
    }
    Ok(t.format(v)? == cowheap_heap::Format::Pointers
        && t.size(v)?.slots > CLASS_FORMAT_SLOT
        && t.slot(v, CLASS_FORMAT_SLOT)?.as_int().is_some())
}

/// How the image a base was imported from holds the values a segment carries as
/// immediates, from its `image.version` root: what a value of another image's segment
/// becomes there ([`Immediates::convert`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Immediates {
    /// V3 (6502, 6504, 6505): 31-bit SmallIntegers, Characters as the objects of the
    /// CharacterTable (special objects slot 24), no immediate floats.
    V3,
    /// 32-bit Spur (6521, 7033): 31-bit SmallIntegers, immediate Characters of 30 bits.
    Spur32,
    /// 64-bit Spur (68021, 68533): 61-bit SmallIntegers, immediate Characters of 30 bits
    /// and immediate floats.
    Spur64,
    /// A base not read from an image (no version): any immediate cowheap holds.
    Any,
}

impl Immediates {
    /// The kind of `heap`'s image. Time: O(roots).
    pub(crate) fn of<O: bind::Objects + ?Sized>(heap: &O) -> Immediates {
        match heap.named_root("image.version").and_then(|v| v.as_int()) {
            Some(6502 | 6504 | 6505) => Immediates::V3,
            Some(6521 | 7033) => Immediates::Spur32,
            Some(68021 | 68533) => Immediates::Spur64,
            _ => Immediates::Any,
        }
    }

    /// The literal count a compiled method's header (its SmallInteger value) gives in the
    /// image: bits 9-16 of a V3 header, the low 15 bits of a Spur one; `None` for a base
    /// not read from an image. Time: O(1).
    pub(crate) fn method_literals(self) -> Option<fn(i64) -> i64> {
        match self {
            Immediates::V3 => Some(|h| h >> 9 & 0xFF),
            Immediates::Spur32 | Immediates::Spur64 => Some(|h| h & 0x7FFF),
            Immediates::Any => None,
        }
    }

    /// Refuses a compiled method of `slots` slots whose header (`header`, its first slot's
    /// SmallInteger), read as the image reads its methods' headers
    /// ([`Immediates::method_literals`]), does not count the literals it has: a method of a
    /// V3 image in a Spur one, or the other way round (their headers count literals in
    /// other bits), or a header a tenant wrote. Made, the image would split its literals
    /// from its bytes elsewhere. Time: O(1).
    ///
    /// # Errors
    /// [`SegmentError::NotHeldByTarget`] for such a method.
    pub(crate) fn check_method(self, header: Option<i64>, slots: usize) -> Result<()> {
        let Some(literals) = self.method_literals() else {
            return Ok(());
        };
        if header
            .map(literals)
            .and_then(|c| usize::try_from(c).ok())
            .is_some_and(|c| c.checked_add(1) == Some(slots))
        {
            Ok(())
        } else {
            Err(SegmentError::NotHeldByTarget(
                "a compiled method whose header does not count its literals as its headers do",
            ))
        }
    }

    /// `w`, an immediate of a segment, as the image of `heap` holds it: a SmallInteger or
    /// an immediate Character or float as it is where the image has such immediates, and a
    /// Character in a V3 image as its CharacterTable's Character of that value (what
    /// `Character value:` answers there, and a V3 segment's Characters are). Squeak's own
    /// loaders refuse a segment of another word size, and cowheap's segments travel between
    /// images, so a value the image has no such object for is refused rather than made as
    /// an immediate it cannot read: kept as it was, a SmallInteger past 31 bits in a 32-bit
    /// image answered `SmallInteger` for a value past `SmallInteger maxVal`, and a Spur
    /// Character in a V3 image was no object of its CharacterTable (`$a == $a` false). Time:
    /// O(1).
    ///
    /// # Errors
    /// [`SegmentError::NotHeldByTarget`] for an integer past the image's SmallIntegers, an
    /// immediate float in an image without them, a Character past its range (or, in a V3
    /// image, past its CharacterTable).
    pub(crate) fn convert<O: bind::Objects + ?Sized>(
        self,
        heap: &O,
        w: cowheap_heap::Word,
    ) -> Result<cowheap_heap::Value> {
        use cowheap_heap::{Decoded, Value};
        let refuse = SegmentError::NotHeldByTarget;
        let held = Value::shared(w);
        if self == Immediates::Any {
            return Ok(held);
        }
        match w.decode() {
            Decoded::Int(i) => {
                let bits = if self == Immediates::Spur64 { 61 } else { 31 };
                let half = 1i64 << (bits - 1);
                if (-half..half).contains(&i) {
                    Ok(held)
                } else {
                    Err(refuse("an integer past its SmallIntegers"))
                }
            }
            Decoded::Char(c) => match self {
                Immediates::V3 => {
                    let special = heap
                        .named_root("specialObjects")
                        .and_then(|v| v.word().as_base());
                    special
                        .and_then(|s| heap.slot_of(s, SPECIAL_CHARACTER_TABLE))
                        .and_then(|t| t.as_base())
                        .filter(|_| c < 256)
                        .and_then(|t| heap.slot_of(t, c as usize))
                        .and_then(|x| x.as_base())
                        .map(Value::base)
                        .ok_or(refuse("a Character its CharacterTable has no entry for"))
                }
                _ if c < (1 << 30) => Ok(held),
                _ => Err(refuse("a Character past 30 bits")),
            },
            _ if w.as_small_float_bits().is_some() => {
                if self == Immediates::Spur64 {
                    Ok(held)
                } else {
                    Err(refuse("an immediate float"))
                }
            }
            _ => Ok(held),
        }
    }
}

/// `hash` as an identity hash of a base whose hashes are `bits` wide
/// ([`cowheap_heap::BaseHeap::hash_bits`]: 12 for a V3 image, 22 for Spur): itself when it
/// fits, else its low `bits` bits, and 1 if those are all zero (a hash a tenant draws is
/// never 0, which Spur headers take for a hash not yet given). A member's recorded hash
/// comes from the base it was extracted from, which may hold wider hashes than the base it
/// is imported into (a Spur tenant's segment into a V3 tenant), or from a file naming any
/// 32-bit value: kept as it is, the object would answer an `identityHash` that image never
/// answers and that its exporters refuse. O(1).
pub(crate) fn fit_hash(hash: u32, bits: u32) -> u32 {
    let mask = 1u32.checked_shl(bits).map_or(u32::MAX, |b| b - 1);
    if hash <= mask {
        hash
    } else {
        (hash & mask).max(1)
    }
}

/// An order of `n` members in which every member comes after the member that is its class
/// (`class_member(i)`, when its class is a member in range), so that one pass can make them
/// all: O(n), however long the chains of classes. Members on a cycle of classes come in some
/// order after the rest of their chain; the caller finds their class unmade and reports it.
pub(crate) fn class_first_order(
    n: usize,
    class_member: impl Fn(usize) -> Option<usize>,
) -> Vec<usize> {
    // 0: not yet placed; 1: on the chain being walked; 2: placed.
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    let mut chain = Vec::new();
    for start in 0..n {
        let mut i = start;
        // Walk up the classes to a placed member, an outside class or a cycle.
        while state[i] == 0 {
            state[i] = 1;
            chain.push(i);
            match class_member(i) {
                Some(j) if j < n => i = j,
                _ => break,
            }
        }
        // Place the chain from its top down.
        while let Some(i) = chain.pop() {
            state[i] = 2;
            order.push(i);
        }
    }
    order
}

#[cfg(test)]
mod order_tests {
    use super::class_first_order;

    #[test]
    fn classes_come_before_their_instances_and_cycles_end() {
        // 0's class is 1, 1's is 2, 2's is outside; 3 and 4 are each other's class; 5's is 9.
        let class = |i: usize| [Some(1), Some(2), None, Some(4), Some(3), Some(9)][i];
        let order = class_first_order(6, class);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..6).collect::<Vec<_>>());
        let at = |i| order.iter().position(|&x| x == i).unwrap();
        assert!(at(2) < at(1) && at(1) < at(0));
        // A long chain is ordered in one walk.
        let long = class_first_order(100_000, |i| (i + 1 < 100_000).then_some(i + 1));
        assert_eq!(long.first(), Some(&99_999));
        assert_eq!(long.last(), Some(&0));
    }
}
