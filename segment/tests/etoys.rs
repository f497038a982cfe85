//! The real Etoys project files of `../shared/images/segments/`: the counts the images README
//! gives, cross-checked by a walk written here independently of the crate (it finds the
//! segment words in the inflated stream by their type byte and version word, not through the
//! DataStream reader); the byte-identical re-export; every truncation and a set of bit flips
//! refused with a typed error.

mod common;

use common::image;
use cowheap_segment::{Project, SegmentError, container, v3::ByteOrder};
use std::io::Read;

/// The README's table: file, segment words, objects, fields of the roots array.
const TABLE: [(&str, usize, usize, usize); 4] = [
    ("JustPaintedCar.013.pr", 5_155, 269, 238),
    ("BouncingBallAnimation.012.pr", 14_639, 1_248, 1_082),
    ("CarAndPen.014.pr", 20_113, 2_302, 1_911),
    ("AgeComparison.005.pr", 41_500, 5_763, 4_759),
];

/// Inflates the `.pr` entry by hand: the zip's entry, 44 bytes of `SPRJ` header, gzip.
fn inflate_by_hand(file: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
    let name = z
        .file_names()
        .find(|n| n.ends_with(".pr"))
        .unwrap()
        .to_owned();
    let mut entry = Vec::new();
    z.by_name(&name).unwrap().read_to_end(&mut entry).unwrap();
    assert_eq!(&entry[..4], b"SPRJ");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&entry[44..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Finds the segment words by pattern: type byte 19, a big-endian length, then a
/// little-endian version word 6502 with a letter on top. Answers (byte offset, words).
fn find_segment(stream: &[u8]) -> (usize, Vec<u32>) {
    let hits: Vec<usize> = (0..stream.len().saturating_sub(9))
        .filter(|&i| stream[i] == 19 && stream[i + 5..i + 8] == [0x66, 0x19, 0x00])
        .collect();
    assert_eq!(hits.len(), 1, "one segment word array");
    let i = hits[0];
    let n = u32::from_be_bytes(stream[i + 1..i + 5].try_into().unwrap()) as usize;
    let words = stream[i + 5..i + 5 + 4 * n]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (i + 5, words)
}

/// Walks V3 headers: (objects, fields of the first object).
fn walk(words: &[u32]) -> (usize, usize) {
    let (mut pos, mut objects, mut first) = (1, 0, None);
    while pos < words.len() {
        let h = words[pos];
        let (base, size) = match h & 3 {
            0 => (pos + 2, (h >> 2) as usize),
            1 => (pos + 1, ((words[pos + 1] >> 2) & 63) as usize),
            3 => (pos, ((h >> 2) & 63) as usize),
            _ => panic!("free chunk at word {pos}"),
        };
        first.get_or_insert(size - 1);
        objects += 1;
        pos = base + size;
    }
    assert_eq!(pos, words.len(), "the last object ends at the end");
    (objects, first.unwrap())
}

#[test]
fn the_readme_counts_come_out_exactly_and_agree_with_an_independent_walk() {
    for (name, words, objects, roots) in TABLE {
        let file = std::fs::read(image(&format!("segments/{name}"))).unwrap();
        let p = Project::from_bytes(&file).unwrap();
        let s = p.segment.stats();
        assert_eq!(
            (s.words, s.objects, s.roots),
            (words, objects, roots),
            "{name}"
        );
        assert_eq!(p.user_roots, Some(roots as i32), "{name}: userRootCnt");
        assert_eq!(p.segment.version(), 6502);
        assert_eq!(p.segment.letter(), b's');
        assert_eq!(p.segment.order, ByteOrder::Little);
        // The walk written here, over words found by pattern.
        let stream = inflate_by_hand(&file);
        assert_eq!(stream.len(), p.inflated_len, "{name}");
        let (at, found) = find_segment(&stream);
        assert_eq!(found.len(), words, "{name}");
        assert_eq!(walk(&found), (objects, roots), "{name}");
        assert_eq!(
            at,
            p.binary_at + p.segment_at,
            "{name}: where the words lie"
        );
        assert_eq!(s.headers.iter().sum::<usize>(), objects);
        // Every out-pointer the words use is in the table; the roots array's class is
        // out-pointer 1, the class Array.
        assert!(s.out_pointers_used <= p.out_pointers.len());
        assert_eq!(
            p.segment.objects[0].class,
            cowheap_segment::v3::ClassRef::Out(1)
        );
        assert_eq!(
            p.out_pointer(1),
            Some(&cowheap_segment::OutPointer::Class {
                name: "Array".into(),
                version: Some(0)
            })
        );
    }
}

#[test]
fn just_painted_car_matches_the_readme_facts() {
    let file = std::fs::read(image("segments/JustPaintedCar.013.pr")).unwrap();
    let p = Project::from_bytes(&file).unwrap();
    assert_eq!(p.inflated_len, 32_512);
    assert_eq!(p.binary_at + p.segment_at, 9_119);
    assert_eq!(&p.segment_bytes()[..4], &0x7300_1966u32.to_le_bytes());
    let roots = &p.segment.objects[0];
    assert_eq!(roots.header, cowheap_segment::v3::HeaderKind::Three);
    assert_eq!(roots.pointers.len(), 238);
    // Its first field, oop 0x3D0, is the next object.
    assert_eq!(roots.pointers[0], cowheap_segment::v3::Oop::Obj(1));
    assert_eq!(&p.segment_bytes()[16..20], &0x3D0u32.to_le_bytes());
}

#[test]
fn every_segment_re_exports_byte_identical() {
    for (name, ..) in TABLE {
        let p = Project::open(image(&format!("segments/{name}"))).unwrap();
        let again = p.segment.to_bytes().unwrap();
        assert_eq!(again.len(), p.segment_bytes().len(), "{name}");
        assert!(again == p.segment_bytes(), "{name}: re-export differs");
        // And the re-export parses to the same decoded form.
        let back = cowheap_segment::v3::V3Segment::parse(&again, p.out_pointers.len()).unwrap();
        assert_eq!(back, p.segment, "{name}");
    }
}

#[test]
fn every_truncation_of_a_project_file_is_a_typed_error() {
    let file = std::fs::read(image("segments/JustPaintedCar.013.pr")).unwrap();
    for cut in 0..file.len() {
        assert!(
            Project::from_bytes(&file[..cut]).is_err(),
            "a project cut at byte {cut} was accepted"
        );
    }
}

#[test]
fn truncations_of_the_other_project_files_are_typed_errors() {
    for (name, ..) in &TABLE[1..] {
        let file = std::fs::read(image(&format!("segments/{name}"))).unwrap();
        for cut in 0..file.len() {
            assert!(
                Project::from_bytes(&file[..cut]).is_err(),
                "{name} cut at byte {cut} was accepted"
            );
        }
    }
}

#[test]
fn truncations_of_the_inflated_stream_are_typed_errors() {
    let file = std::fs::read(image("segments/JustPaintedCar.013.pr")).unwrap();
    let good = Project::from_bytes(&file).unwrap();
    let full = container::unwrap(&file).unwrap().stream;
    // The stream is complete with its closing `!`; only the line ends after it may go.
    let end = good.binary_at + good.stream.len + 1;
    assert_eq!(full[end - 1], b'!');
    // Every cut in the preamble and around the segment words, every 5th elsewhere.
    let seg = 9_119usize..9_119 + 20_620;
    let cuts = (0..full.len()).filter(|&c| {
        c < 600
            || c % 5 == 0
            || (seg.start - 64..seg.start + 64).contains(&c)
            || (seg.end - 64..seg.end + 64).contains(&c)
            || c + 64 > full.len()
    });
    for cut in cuts {
        match Project::from_bytes(&full[..cut]) {
            Err(
                SegmentError::NotAProject(_)
                | SegmentError::StreamTruncated { .. }
                | SegmentError::NoSegment(_),
            ) if cut < end => {}
            Ok(p) if cut >= end => assert!(p.segment == good.segment),
            other => panic!("cut at {cut} of {end}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn bit_flips_are_refused_or_harmless() {
    let file = std::fs::read(image("segments/JustPaintedCar.013.pr")).unwrap();
    let good = Project::from_bytes(&file).unwrap();
    let mut refused = 0;
    for at in (0..file.len()).step_by(61) {
        for bit in 0..8 {
            let mut f = file.clone();
            f[at] ^= 1 << bit;
            match Project::from_bytes(&f) {
                Err(_) => refused += 1,
                // A flip the zip does not guard (a timestamp, another entry's name) must
                // leave the segment as it was: never a silently different segment.
                Ok(p) => assert!(
                    p.segment == good.segment && p.out_pointers == good.out_pointers,
                    "a flip of bit {bit} of byte {at} changed the segment"
                ),
            }
        }
    }
    assert!(refused > 0);
    // Flips inside the inflated stream, past the zip's and gzip's checks: typed errors or
    // another decoding, never a panic.
    let inner = container::unwrap(&file).unwrap().stream;
    for at in (0..inner.len()).step_by(37) {
        let mut s = inner.clone();
        s[at] ^= 1 << (at % 8);
        let _ = Project::from_bytes(&s);
    }
}

#[test]
fn info_recognises_projects_bare_words_and_cowheap_segments() {
    use cowheap_segment::info::{Info, info};
    let path = image("segments/JustPaintedCar.013.pr");
    let Info::Project(r) = info(&path).unwrap() else {
        panic!("not read as a project")
    };
    assert_eq!(
        (r.stats.words, r.stats.objects, r.stats.roots),
        (5_155, 269, 238)
    );
    let text = r.to_string();
    assert!(text.contains("segment words:   5155"), "{text}");
    // The bare words, written out: read as Squeak segment words with the same counts.
    let p = Project::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("car.seg");
    std::fs::write(&words, p.segment_bytes()).unwrap();
    match info(&words).unwrap() {
        Info::SqueakWords {
            version_word,
            stats,
        } => {
            assert_eq!(version_word, 0x7300_1966);
            assert_eq!(stats, p.segment.stats());
        }
        other => panic!("{other:?}"),
    }
    // Garbage is an error, not a panic.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\x66\x19\x00\x73\x01").unwrap();
    assert!(info(&junk).is_err());
}

#[test]
fn import_project_reports_what_bound() {
    let r = cowheap_segment::info::import_project(
        &image("segments/JustPaintedCar.013.pr"),
        &image("mini.image"),
    )
    .unwrap();
    assert_eq!(r.objects, 269);
    assert_eq!(r.out_pointers, 120);
    assert_eq!(
        r.unbound.len() + r.bound_by_kind.values().sum::<usize>(),
        120
    );
    assert!(r.materialised > 0 && r.materialised < 269);
    assert!(r.to_string().contains("materialised of 269"));
}
