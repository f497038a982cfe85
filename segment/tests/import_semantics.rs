//! Squeak's own reading of well-formed segment words and object streams, case by case:
//! which fields of a V3 object are pointers (a context's stack-pointer rule applies to
//! format 3 only, as the virtual machine's `lastPointerOf:` has it).

use cowheap_segment::v3::{Oop, V3Segment};

/// A V3 one-word header: compact class `cc`, format `fmt`, `fields` body words.
fn one_word(cc: u32, fmt: u32, fields: u32) -> u32 {
    (cc << 12) | (fmt << 8) | ((fields + 1) << 2) | 3
}

/// Little-endian bytes of `words`.
fn le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The version word of a little-endian 6502 segment.
const VERSION: u32 = 0x7300_0000 | 6502;

/// A segment of a roots array (compact class 3, one field: the object at word 3) and an
/// object of compact class `cc` and format `fmt` with eight fields, whose stack-pointer
/// field (2) is SmallInteger 0 and whose last field points back at the roots array.
fn with_second(cc: u32, fmt: u32) -> Vec<u8> {
    let int = |i: u32| (i << 1) | 1;
    let roots_oop = 4 * (1 + 1);
    let second_oop = 4 * (3 + 1);
    le(&[
        VERSION,
        one_word(3, 2, 1),
        second_oop,
        one_word(cc, fmt, 8),
        int(1),
        int(2),
        int(0),
        int(3),
        int(4),
        int(5),
        int(6),
        roots_oop,
    ])
}

#[test]
fn only_a_format_3_context_ends_at_its_stack_pointer() {
    // A real context (format 3, compact class 14): six fixed fields and an empty stack are
    // pointers; the rest is kept raw.
    let s = V3Segment::parse(&with_second(14, 3), 0).unwrap();
    assert_eq!(s.objects[1].pointers.len(), 6);
    assert_eq!(s.objects[1].raw.len(), 2);
    // The same compact class index on a format 2 object: the virtual machine's
    // `lastPointerOf:` takes every field as a pointer (its context rule is for format 3),
    // so the last field is the roots array, not a raw word.
    for fmt in [0, 1, 2, 4] {
        let s = V3Segment::parse(&with_second(13, fmt), 0).unwrap();
        let o = &s.objects[1];
        assert_eq!(o.pointers.len(), 8, "format {fmt}");
        assert!(o.raw.is_empty(), "format {fmt}");
        assert_eq!(o.pointers[7], Oop::Obj(0), "format {fmt}");
        assert_eq!(s.to_bytes().unwrap(), with_second(13, fmt));
    }
}
