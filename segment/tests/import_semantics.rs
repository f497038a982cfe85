//! Squeak's own reading of well-formed segment words and object streams, case by case:
//! which fields of a V3 object are pointers (a context's stack-pointer rule applies to
//! format 3 only, as the virtual machine's `lastPointerOf:` has it), which class a V3 object
//! has (the compact class its base header names, whatever the header's size, as
//! `fetchClassOf:` answers), how a Bitmap in the old run-coded form ends (at its zero byte, as
//! `Bitmap>>readCompressedFrom:` reads it), where a project's segment words lie in its
//! stream (after a type 20 object's class name), and what an out-pointer `DiskProxy` with a
//! pre-selector names (what code makes, as `DiskProxy>>comeFullyUpOnReload:` does).

use cowheap_segment::datastream::{self, Body, Val};
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

/// A stream holding an old-form compressed Bitmap of `words` words whose runs are `runs`
/// (ending in their zero byte), then SmallInteger 7, then the closing `!`.
fn old_bitmap_stream(words: i32, runs: &[u8]) -> Vec<u8> {
    let mut s = vec![11];
    s.extend((-words).to_be_bytes());
    s.extend(runs);
    s.extend([4, 0, 0, 0, 7]);
    s.push(b'!');
    s
}

#[test]
fn an_old_compressed_bitmap_ends_at_its_zero_run() {
    // Two words: eight copies (5 + 3) of 0xAB, then the end of runs.
    let s = datastream::read(&old_bitmap_stream(2, &[5, 0xAB, 0])).unwrap();
    assert_eq!(s.top.len(), 2, "{:?}", s.top);
    assert_eq!(s.top[1], Val::Int(7));
    assert!(matches!(
        s.body(s.top[0]),
        Some(Body::Bitmap {
            compressed: true,
            ..
        })
    ));
    // Every kind of run: 4 copies of a byte (1) and 2 copies of 4 bytes (192) fill three
    // words; 2 bytes as they are (129), 4 copies of a byte and 2 more bytes fill two.
    let runs = [1, 0x11, 192, 1, 2, 3, 4, 0];
    let s = datastream::read(&old_bitmap_stream(3, &runs)).unwrap();
    assert_eq!(s.top[1], Val::Int(7));
    let runs = [129, 9, 9, 1, 0x11, 0x81, 1, 2, 0];
    let s = datastream::read(&old_bitmap_stream(2, &runs)).unwrap();
    assert_eq!(s.top[1], Val::Int(7));
    // An empty Bitmap is its zero byte alone.
    let s = datastream::read(&old_bitmap_stream(0, &[0])).unwrap();
    assert_eq!(s.top[1], Val::Int(7));
    // Runs that fill other than the Bitmap's words are Squeak's "Decompression size
    // error"; runs without their end are a truncated stream: both typed.
    assert!(datastream::read(&old_bitmap_stream(3, &[5, 0xAB, 0])).is_err());
    let mut cut = vec![11];
    cut.extend((-2i32).to_be_bytes());
    cut.extend([5, 0xAB]);
    assert!(datastream::read(&cut).is_err());
}

/// An Etoys-like object stream (text preamble, then the binary stream) of one ImageSegment
/// whose `segment` field is a one-object V3 segment written as type `segment_type` (19, a
/// WordArrayForSegment, or 20, a word-like object naming its class), with an empty
/// out-pointer Array. Answers the whole stream and the segment's bytes.
fn project_stream(segment_type: u8) -> (Vec<u8>, Vec<u8>) {
    let words = le(&[VERSION, one_word(3, 2, 0)]);
    let mut b = vec![9, 0, 0, 0, 4, 6, 12];
    b.extend(b"ImageSegment");
    b.push(1); // arrayOfRoots: nil
    b.push(segment_type);
    if segment_type == 20 {
        b.extend([6, 19]);
        b.extend(b"WordArrayForSegment");
    }
    b.extend(u32::try_from(words.len() / 4).unwrap().to_be_bytes());
    b.extend(&words);
    b.extend([8, 0, 0, 0, 0]); // outPointers: an empty Array
    b.push(b'!');
    let mut s = b"'From Squeak'!\r!self smartRefStream!".to_vec();
    s.extend(b);
    (s, words)
}

#[test]
fn the_segment_words_are_found_where_the_stream_holds_them() {
    for t in [19, 20] {
        let (stream, words) = project_stream(t);
        let p = cowheap_segment::Project::from_bytes(&stream).unwrap();
        assert_eq!(p.segment_bytes(), words.as_slice());
        let at = p.binary_at + p.segment_at;
        assert_eq!(
            stream.get(at..at + words.len()),
            Some(words.as_slice()),
            "type {t}: segment_at {}",
            p.segment_at
        );
    }
}

/// A Symbol in the stream.
fn symbol(s: &str) -> Vec<u8> {
    let mut b = vec![6, u8::try_from(s.len()).unwrap()];
    b.extend(s.as_bytes());
    b
}

/// `DiskProxy global: #name selector: #withClassVersion: args: #(1)`: the class `name`.
fn class_proxy(name: &str) -> Vec<u8> {
    let mut b = vec![9, 0, 0, 0, 5];
    b.extend(symbol("DiskProxy"));
    b.extend(symbol(name));
    b.push(1);
    b.extend(symbol("withClassVersion:"));
    b.extend([8, 0, 0, 0, 1, 4, 0, 0, 0, 1]);
    b
}

#[test]
fn a_compact_class_index_names_the_class_whatever_the_header() {
    // Out-pointer 1 is the class Foo; out-pointer 2 the writer's compact classes, 3 Array.
    // The second object has a two-word header whose class word is out-pointer 1 and whose
    // base header names compact class 3: the virtual machine's `fetchClassOf:` answers the
    // compact class whenever the index is not 0, so it is an Array, as the roots array is.
    let two_word_base = (3 << 12) | (2 << 8) | (1 << 2) | 1;
    let words = le(&[
        VERSION,
        one_word(3, 2, 1),
        4 * (4 + 1),
        0x8000_0004 | 1,
        two_word_base,
    ]);
    let mut b = vec![9, 0, 0, 0, 4];
    b.extend(symbol("ImageSegment"));
    b.push(1);
    b.push(19);
    b.extend(u32::try_from(words.len() / 4).unwrap().to_be_bytes());
    b.extend(&words);
    b.extend([8, 0, 0, 0, 2]);
    b.extend(class_proxy("Foo"));
    b.extend([8, 0, 0, 0, 3, 1, 1]);
    b.extend(class_proxy("Array"));
    b.push(b'!');
    let mut s = b"'From Squeak'!\r!self smartRefStream!".to_vec();
    s.extend(b);
    let p = cowheap_segment::Project::from_bytes(&s).unwrap();
    assert_eq!(
        p.writer_compact_classes().unwrap()[3].as_deref(),
        Some("Array")
    );
    assert_eq!(p.report().classes, vec![("Array".to_owned(), 2)]);
    assert_eq!(p.segment.to_bytes().unwrap(), words);
}

/// A project stream whose roots array holds out-pointer 1, the out-pointer table being
/// `outs` (each an encoded object).
fn project_with_out_pointers(outs: &[Vec<u8>]) -> Vec<u8> {
    let words = le(&[VERSION, one_word(3, 2, 1), 0x8000_0004]);
    let mut b = vec![9, 0, 0, 0, 4];
    b.extend(symbol("ImageSegment"));
    b.push(1);
    b.push(19);
    b.extend(u32::try_from(words.len() / 4).unwrap().to_be_bytes());
    b.extend(&words);
    b.extend([8, 0, 0, 0, u8::try_from(outs.len()).unwrap()]);
    for o in outs {
        b.extend(o);
    }
    b.push(b'!');
    let mut s = b"'From Squeak'!\r!self smartRefStream!".to_vec();
    s.extend(b);
    s
}

/// `DiskProxy global: #global preSelector: #pre selector: sel args: args`.
fn proxy(global: &str, pre: Option<&str>, sel: Option<&str>, args: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![9, 0, 0, 0, 5];
    b.extend(symbol("DiskProxy"));
    b.extend(symbol(global));
    match pre {
        Some(p) => b.extend(symbol(p)),
        None => b.push(1),
    }
    match sel {
        Some(s) => b.extend(symbol(s)),
        None => b.push(1),
    }
    b.extend([8, 0, 0, 0, u8::try_from(args.len()).unwrap()]);
    for a in args {
        b.extend(a);
    }
    b
}

#[test]
fn a_disk_proxy_with_a_pre_selector_is_not_the_global_itself() {
    use cowheap_segment::OutPointer;
    // `DiskProxy>>comeFullyUpOnReload:` sends the pre-selector to the global before the
    // constructor, if any: `Smalltalk class` is not `Smalltalk`, `(TextConstants foo) at:
    // #DefaultTabsArray` not `TextConstants at: #DefaultTabsArray`, `Point class` not Point.
    let cases = [
        (
            proxy("Smalltalk", Some("class"), None, &[]),
            OutPointer::Constructed {
                global: "Smalltalk".into(),
                selector: "class".into(),
                args: vec![],
            },
        ),
        (
            proxy(
                "TextConstants",
                Some("foo"),
                Some("at:"),
                &[symbol("DefaultTabsArray")],
            ),
            OutPointer::Constructed {
                global: "TextConstants".into(),
                selector: "foo at:".into(),
                args: vec!["#DefaultTabsArray".into()],
            },
        ),
        (
            proxy(
                "Point",
                Some("class"),
                Some("withClassVersion:"),
                &[vec![4, 0, 0, 0, 1]],
            ),
            OutPointer::Constructed {
                global: "Point".into(),
                selector: "class withClassVersion:".into(),
                args: vec!["1".into()],
            },
        ),
    ];
    for (bytes, expected) in cases {
        let p = cowheap_segment::Project::from_bytes(&project_with_out_pointers(&[bytes])).unwrap();
        assert_eq!(p.out_pointer(1), Some(&expected));
    }
    // Without one, as before.
    let p = cowheap_segment::Project::from_bytes(&project_with_out_pointers(&[proxy(
        "Smalltalk",
        None,
        None,
        &[],
    )]))
    .unwrap();
    assert_eq!(
        p.out_pointer(1),
        Some(&OutPointer::Global("Smalltalk".into()))
    );
}
