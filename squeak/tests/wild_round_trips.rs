//! Round trips of images as they exist in the wild, written here where the shared files do
//! not cover them: a 64-bit Spur image holding a boxed Float a SmallFloat64 could hold, a
//! 32-bit one holding large integers a 64-bit SmallInteger holds, written as 64-bit, and one
//! with free space on its free lists, written in segments.

mod common;
use common::spur_writer::*;

use cowheap_heap::{ObjectIndex, Word};
use cowheap_squeak::{ImageFormat, export_bytes, import_bytes};

/// A 64-bit image whose class table names a class of immediate floats (entry 4) and a
/// class of boxed Floats (index 34, special object 9), and whose special objects slot 11
/// refers to a boxed Float of 1.5, which a SmallFloat64 could hold: such an object is made
/// by `Float new: 2` or `basicNew:` in a 64-bit image, which a VM never normalises.
fn spur64_with_boxed_float() -> (Vec<u8>, usize) {
    let int = |i: u64| S::W((i << 3) | 1);
    let small_float = 8;
    let boxed_float_class = 9;
    let boxed = 10;
    let mut objs = spur_objects(
        8,
        vec![
            sobj(32, 1, 4, vec![S::R(NIL), S::R(NIL), int(0)]),
            sobj(32, 1, 34, vec![S::R(NIL), S::R(NIL), int(10 << 16)]),
            sobj(34, 10, 77, vec![S::W(1.5f64.to_bits())]),
        ],
    );
    objs[5].slots[4] = S::R(small_float);
    objs[5].slots[34] = S::R(boxed_float_class);
    objs[SPECIAL].slots[9] = S::R(boxed_float_class);
    objs[SPECIAL].slots[11] = S::R(boxed);
    (spur_image(8, 0x1_0000, &objs, SPECIAL), boxed)
}

/// A 64-bit Spur image imported and written again in its own format is the original file,
/// and its boxed Float stays the object it was: the conversion of boxed Floats into
/// immediates belongs to a change from 32 to 64 bits, not to an image already 64-bit.
#[test]
fn a_64_bit_images_boxed_float_stays_boxed() {
    let (file, boxed) = spur64_with_boxed_float();
    let im = import_bytes(&file).unwrap();
    assert_eq!(
        im.format,
        ImageFormat::spur64(cowheap_squeak::ByteOrder::Little)
    );
    let special = im.heap.root("specialObjects").unwrap().as_base().unwrap();
    let boxed = Word::base(ObjectIndex::from_u32(boxed as u32));
    assert_eq!(im.heap.get_slot(special, 11), Some(boxed));
    let out = export_bytes(&im.heap, im.format).unwrap();
    let back = import_bytes(&out).unwrap();
    assert_eq!(
        back.heap.get_slot(special, 11),
        Some(boxed),
        "the reference to the boxed Float became {:?}",
        back.heap.get_slot(special, 11)
    );
    assert!(out == file, "the exported image differs from the original");
}

/// A 32-bit image whose special objects array names the classes LargePositiveInteger (13)
/// and LargeNegativeInteger (42), and an Array holding 2^40, -2^40 and 2^62 as large
/// integers (bytes, least significant first), as a 32-bit image holds every integer past
/// 30 bits.
fn spur32_with_large_integers() -> (Vec<u8>, usize) {
    let int = |i: u64| S::W((i << 1) | 1);
    let mut objs = spur_objects(4, vec![]);
    let (lpi, lni) = (objs.len(), objs.len() + 1);
    objs.push(sobj(32, 1, 33, vec![S::R(NIL), S::R(NIL), int(16 << 16)]));
    objs.push(sobj(32, 1, 35, vec![S::R(NIL), S::R(NIL), int(16 << 16)]));
    let words = |bytes: &[u8]| {
        bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                S::W(u64::from(u32::from_le_bytes(w)))
            })
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (objs.len(), objs.len() + 1, objs.len() + 2);
    // 6 bytes in two words: 2 unused bytes, format 18; 8 bytes: format 16.
    objs.push(sobj(33, 18, 50, words(&[0, 0, 0, 0, 0, 1])));
    objs.push(sobj(35, 18, 51, words(&[0, 0, 0, 0, 0, 1])));
    objs.push(sobj(33, 16, 52, words(&[0, 0, 0, 0, 0, 0, 0, 0x40])));
    let array = objs.len();
    objs.push(sobj(32, 2, 53, vec![S::R(a), S::R(b), S::R(c)]));
    objs[5].slots[33] = S::R(lpi);
    objs[5].slots[35] = S::R(lni);
    objs[SPECIAL].slots.resize(43, S::R(NIL));
    objs[SPECIAL].slots[13] = S::R(lpi);
    objs[SPECIAL].slots[42] = S::R(lni);
    objs[SPECIAL].slots[4] = S::R(array);
    (spur_image(4, 0x1_0000, &objs, SPECIAL), array)
}

/// Written as 64-bit Spur, a large integer whose value a 61-bit SmallInteger holds is that
/// SmallInteger, as Squeak's 32- to 64-bit converter makes it: a 64-bit VM answers every
/// such value as a SmallInteger, and the image's integer code (`=`, `hash`) takes a large
/// integer for a value past the SmallIntegers. One past 61 bits stays large.
#[test]
fn large_integers_a_64_bit_small_integer_holds_become_small_integers() {
    let (file, array) = spur32_with_large_integers();
    let im = import_bytes(&file).unwrap();
    let array = ObjectIndex::from_u32(array as u32);
    let options = cowheap_squeak::ExportOptions {
        allow_missing_float_class: true,
        ..cowheap_squeak::ExportOptions::exactly(ImageFormat::spur64(
            cowheap_squeak::ByteOrder::Little,
        ))
    };
    let back =
        import_bytes(&cowheap_squeak::export_bytes_with(&im.heap, &options).unwrap()).unwrap();
    let slots = back.heap.object(array).unwrap().slots.to_vec();
    assert_eq!(slots[0].as_int(), Some(1 << 40), "2^40 is {:?}", slots[0]);
    assert_eq!(
        slots[1].as_int(),
        Some(-(1 << 40)),
        "-2^40 is {:?}",
        slots[1]
    );
    assert_eq!(
        slots[2],
        im.heap.object(array).unwrap().slots[2],
        "2^62 stays large"
    );
}

/// The little-endian 32-bit word at byte `at` of `b`.
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Every object of a little-endian 32-bit Spur image in any number of segments, in order:
/// its address (from the header's old base, bridges' gaps included), class index and the
/// byte offset of its first slot in the file.
fn spur32_addresses(b: &[u8]) -> Vec<(u32, u32, usize)> {
    let hs = le32(b, 4) as usize;
    let old_base = le32(b, 12);
    let mut seg_end = hs + le32(b, 48) as usize;
    let (mut pos, mut gap, mut out) = (hs, 0u32, Vec::new());
    loop {
        while pos < seg_end - 16 {
            let (mut hdr, mut slots) = (pos, (le32(b, pos + 4) >> 24) as usize);
            if slots == 255 {
                slots = le32(b, pos) as usize;
                hdr = pos + 8;
            }
            let addr = old_base + gap + (hdr - hs) as u32;
            out.push((addr, le32(b, hdr) & 0x3F_FFFF, hdr + 8));
            pos = hdr + 8 + (slots * 4).max(8).next_multiple_of(8);
        }
        let next = le32(b, seg_end - 8) as usize;
        if next == 0 {
            return out;
        }
        if le32(b, seg_end - 12) >> 24 == 0xFF {
            gap += le32(b, seg_end - 16) * 4;
        }
        pos = seg_end;
        seg_end += next;
    }
}

/// A 32-bit image with free space, as a Spur VM saves an image with free old space: free
/// chunks of two slots (16 bytes, class index 0) after an Array, the free lists (object 3, 32
/// heads) holding the first at head 2, its size in allocation units. With `linked`, a second
/// chunk of the same size follows an Array of 2,000 slots, on the first chunk's list (its
/// slot 0, the next chunk).
fn spur32_with_free_chunks(linked: bool) -> Vec<u8> {
    let mut objs = spur_objects(4, vec![]);
    let array = objs.len();
    objs.push(sobj(32, 2, 40, vec![S::R(NIL); 6]));
    let chunk = objs.len();
    objs.push(sobj(0, 0, 0, vec![S::W(0); 2]));
    if linked {
        objs.push(sobj(32, 2, 41, vec![S::R(NIL); 2000]));
        objs.push(sobj(0, 0, 0, vec![S::W(0); 2]));
        objs[chunk].slots[0] = S::R(chunk + 2);
    }
    let mut heads = vec![S::W(0); 32];
    heads[2] = S::R(chunk);
    objs[3] = sobj(18, 10, 0, heads);
    objs[SPECIAL].slots[4] = S::R(array);
    spur_image(4, 0x1_0000, &objs, SPECIAL)
}

/// Whether every free-list head and every free chunk's next link of a little-endian 32-bit
/// Spur image is 0 or the address of a free chunk (class index 0) of the image.
fn free_lists_name_free_chunks(b: &[u8]) -> bool {
    let objects = spur32_addresses(b);
    let free = |a: u32| a == 0 || objects.iter().any(|o| o.0 == a && o.1 == 0);
    let heads = (0..32).map(|k| le32(b, objects[3].2 + 4 * k));
    let links = objects.iter().filter(|o| o.1 == 0).map(|o| le32(b, o.2));
    heads.chain(links).all(free)
}

/// A Spur VM takes the free lists' heads and the free chunks' links as addresses of free
/// chunks (it relocates them with the segments, walks the lists and allocates from them):
/// written where objects have moved, each must name a free chunk at its new address, or be
/// empty, never a live object or the middle of one. Where nothing moved, they are written
/// as they were read.
#[test]
fn free_list_heads_name_free_chunks_where_objects_moved() {
    for linked in [false, true] {
        let file = spur32_with_free_chunks(linked);
        assert!(free_lists_name_free_chunks(&file));
        let im = import_bytes(&file).unwrap();
        assert!(
            export_bytes(&im.heap, im.format).unwrap() == file,
            "linked: {linked}: written unmoved, the image is not the original"
        );
        // Written in segments 4 KiB apart, the objects past the first segment move: the
        // only chunk, or the second one, which the first links to.
        let options = cowheap_squeak::ExportOptions {
            segment_bytes: Some(if linked { 24 << 10 } else { 16 << 10 }),
            segment_gap: 4096,
            ..cowheap_squeak::ExportOptions::default()
        };
        let out = cowheap_squeak::export_bytes_with(&im.heap, &options).unwrap();
        let moved = spur32_addresses(&out);
        assert!(
            moved
                .iter()
                .zip(spur32_addresses(&file))
                .any(|(p, q)| p.1 == 0 && p.0 != q.0),
            "linked: {linked}: no free chunk moved"
        );
        assert!(
            free_lists_name_free_chunks(&out),
            "linked: {linked}: a free list head or link names no free chunk"
        );
        // Read back, it holds every object.
        let back = import_bytes(&out).unwrap();
        assert_eq!(back.heap.len(), im.heap.len());
    }
}
