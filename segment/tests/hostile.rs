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
