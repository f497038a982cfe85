//! Hostile input: random bytes and random mutations of real segment words and object
//! streams never panic; each reader answers a value or a typed error.

mod common;

use common::image;
use cowheap_segment::v3::V3Segment;
use cowheap_segment::{Project, container, datastream};
use proptest::prelude::*;
use std::sync::OnceLock;

/// The real segment words and binary stream of JustPaintedCar.
fn real() -> &'static (Vec<u8>, Vec<u8>, usize) {
    static R: OnceLock<(Vec<u8>, Vec<u8>, usize)> = OnceLock::new();
    R.get_or_init(|| {
        let file = std::fs::read(image("segments/JustPaintedCar.013.pr")).unwrap();
        let p = Project::from_bytes(&file).unwrap();
        let u = container::unwrap(&file).unwrap();
        (
            p.segment_bytes().to_vec(),
            u.stream[u.binary_at..].to_vec(),
            p.out_pointers.len(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = datastream::read(&b);
        let _ = V3Segment::parse(&b, 16);
        let _ = container::unwrap(&b);
        let _ = Project::from_bytes(&b);
        let _ = cowheap_segment::file::from_bytes(&b, None);
    }

    #[test]
    fn mutated_segment_words_parse_or_fail_typed_and_round_trip(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u32>()), 1..8)
    ) {
        let (words, _, outs) = real();
        let mut w = words.clone();
        for (at, v) in edits {
            let i = at.index(w.len() / 4) * 4;
            w[i..i + 4].copy_from_slice(&v.to_le_bytes());
        }
        // Whatever parses writes back to the same bytes.
        if let Ok(s) = V3Segment::parse(&w, *outs) {
            prop_assert_eq!(s.to_bytes().unwrap(), w);
        }
    }

    #[test]
    fn mutated_object_streams_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let (_, stream, _) = real();
        let mut s = stream.clone();
        for (at, v) in edits {
            let i = at.index(s.len());
            s[i] = v;
        }
        let _ = datastream::read(&s);
    }
}

/// A segment of more tiny objects than the bound is refused before they are decoded, and one
/// at the bound is read.
#[test]
fn a_segment_of_too_many_objects_is_refused() {
    use cowheap_segment::SegmentError;
    use cowheap_segment::v3::MAX_OBJECTS;
    // The version word, then one-word objects: a one-word header of size 1 (its own word),
    // compact class 1, format 0.
    let header: u32 = (1 << 12) | (1 << 2) | 3;
    let words = |n: usize| {
        let mut b = 6502u32.to_le_bytes().to_vec();
        b.reserve(n * 4);
        for _ in 0..n {
            b.extend(header.to_le_bytes());
        }
        b
    };
    assert!(matches!(
        V3Segment::parse(&words(MAX_OBJECTS + 1), 0),
        Err(SegmentError::TooLarge {
            what: "objects in a segment",
            ..
        })
    ));
    // At the bound, the walk goes on to decode them (here, as objects with no roots array).
    assert!(!matches!(
        V3Segment::parse(&words(MAX_OBJECTS), 0),
        Err(SegmentError::TooLarge { .. })
    ));
}

/// A project whose out-pointers name one long String again and again (a 5-byte reference
/// each in the stream) is refused with a typed error, not described by a copy of the string
/// per reference (this 49 KB file would otherwise hold 64 MiB of copies; a gzipped one of
/// 9 KB, a tebibyte).
#[test]
fn out_pointers_naming_one_string_again_and_again_are_refused() {
    let (len, n) = (8u32 << 10, 8u32 << 10);
    let mut s = b"'x'!\r!self smartRefStream!".to_vec();
    s.extend([17, 192, 0, (len >> 8) as u8, len as u8]); // a String at position 0
    s.extend(vec![b'A'; len as usize]);
    s.extend([9, 0, 0, 0, 4, 6, 12]);
    s.extend(b"ImageSegment");
    s.extend([1, 18, 0, 0, 0, 2]); // nil; a WordArray: the 6502 version, a one-word roots array
    s.extend(6502u32.to_le_bytes());
    s.extend(((3u32 << 12) | (2 << 8) | (1 << 2) | 3).to_le_bytes());
    s.push(8); // the out-pointers, an Array of n references to the String
    s.extend(n.to_be_bytes());
    for _ in 0..n {
        s.extend([10, 0, 0, 0, 0]);
    }
    s.push(b'!');
    match Project::from_bytes(&s) {
        Err(cowheap_segment::SegmentError::TooLarge { what, len, limit }) => {
            assert!(what.contains("out-pointers"), "{what}");
            assert!(len > limit && limit < 4 * s.len() as u64 + (1 << 20) + 1);
        }
        Ok(p) => panic!(
            "described: {} bytes of strings for a {}-byte file",
            p.out_pointers
                .iter()
                .map(|o| match o {
                    cowheap_segment::OutPointer::String(t) => t.len(),
                    _ => 0,
                })
                .sum::<usize>(),
            s.len()
        ),
        Err(e) => panic!("another error: {e}"),
    }
    // The same stream naming the string a few times is described, each copy held.
    let few = 3u32;
    let cut = s.len() - 1 - 5 * n as usize - 4;
    let mut t = s[..cut].to_vec();
    t.extend(few.to_be_bytes());
    for _ in 0..few {
        t.extend([10, 0, 0, 0, 0]);
    }
    t.push(b'!');
    let p = Project::from_bytes(&t).expect("a few references are described");
    assert_eq!(p.out_pointers.len(), few as usize);
    assert!(
        p.out_pointers.iter().all(
            |o| matches!(o, cowheap_segment::OutPointer::String(t) if t.len() == len as usize)
        )
    );
}
