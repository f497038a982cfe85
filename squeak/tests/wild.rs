//! Images as they are found in the wild rather than only the test images: the versions real
//! Squeak, Pharo and Cuis images carry (the multiple-bytecode-sets bit of Squeak 6, 64-bit V3
//! whose version is a 64-bit word), and the VM-internal objects a Spur VM reads by size when
//! it loads an image of another word size than the one it came from, what a Spur VM leaves
//! past a context's stack pointer, and a V3 compact class index whose class is nil.

mod common;

use common::*;
use cowheap_heap::ObjectIndex;
use cowheap_squeak::auxbits::Aux;
use cowheap_squeak::{ByteOrder, ExportOptions, ImageFormat, ImportError, import_bytes};

/// The image with its version word replaced by `version`, in its own byte order.
fn with_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[..4].copy_from_slice(&version.to_le_bytes());
    b
}

/// 64-bit options for the headless image, which has no SmallFloat64 class.
fn spur64(order: ByteOrder) -> ExportOptions {
    ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(ImageFormat::spur64(order))
    }
}

#[test]
fn spur_images_with_the_multiple_bytecode_sets_bit_import() {
    // Squeak 6 and later save 32-bit Spur as 7033 and 64-bit Spur as 68533: 6521 and 68021
    // with bit 512 (the image needs a VM with both bytecode sets). The object memory is
    // the same.
    let original = image_bytes(HEADLESS);
    let im = import_bytes(&with_version(&original, 6521 | 512)).unwrap();
    assert_eq!(im.format.version(), 7033);
    assert_eq!(im.format.word_bytes(), 4);
    assert_eq!(im.stats.objects, headless().stats.objects);
    // Written back as it came.
    let out = cowheap_squeak::export_bytes_with(&im.heap, &ExportOptions::default()).unwrap();
    assert!(out == with_version(&original, 7033));

    let wide =
        cowheap_squeak::export_bytes_with(&headless().heap, &spur64(ByteOrder::Little)).unwrap();
    let im = import_bytes(&with_version(&wide, 68021 | 512)).unwrap();
    assert_eq!(im.format.version(), 68533);
    assert_eq!(im.format.word_bytes(), 8);
    assert_eq!(im.stats.objects, headless().stats.objects);
}

#[test]
fn other_known_versions_are_named_unsupported_not_foreign() {
    // 64-bit V3 images keep their version in a 64-bit word: big-endian, its first four bytes
    // are zeros.
    for v in [68_000u64, 68_002, 68_003] {
        let mut b = vec![0u8; 256];
        b[..8].copy_from_slice(&v.to_be_bytes());
        let e = import_bytes(&b);
        assert!(
            matches!(e, Err(ImportError::UnsupportedVersion(x)) if u64::from(x) == v),
            "big-endian {v}: {e:?}"
        );
    }
    // 64-bit Spur with the tags of before 68021, and V3 with the multiple-bytecode-sets bit.
    for v in [68_019u32, 6504 | 512, 6505 | 512] {
        for big in [false, true] {
            let mut b = vec![0u8; 256];
            let word = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            b[..4].copy_from_slice(&word);
            let e = import_bytes(&b);
            assert!(
                matches!(e, Err(ImportError::UnsupportedVersion(x)) if x == v),
                "{v}: {e:?}"
            );
        }
    }
}

/// The free lists object of an image (the object after `true`): its pun, format and bytes.
fn free_lists(heap: &cowheap_heap::BaseHeap) -> (Option<u8>, u8, usize) {
    let o = heap.object(ObjectIndex::from_u32(3)).unwrap();
    match Aux::decode(o.aux) {
        Aux::Spur(a) => (a.pun, a.format, o.bytes.len()),
        other => panic!("not a Spur object: {other:?}"),
    }
}

#[test]
fn a_word_size_change_writes_the_free_lists_a_vm_of_that_size_reads() {
    // A Spur VM reads as many free-list heads as its word has bits (32 or 64), from the
    // object after `true`, a raw object of its word size (pun 18, format 10 in 32-bit; pun
    // 19, format 9 in 64-bit). Fewer slots, and a 64-bit VM takes the words after them (the
    // hidden roots) for free lists and rewrites them.
    assert_eq!(free_lists(&headless().heap), (Some(18), 10, 32 * 4));
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let wide = cowheap_squeak::export_bytes_with(&headless().heap, &spur64(order)).unwrap();
        let back = import_bytes(&wide).unwrap();
        assert_eq!(free_lists(&back.heap), (Some(19), 9, 64 * 8), "{order:?}");
        let narrow = cowheap_squeak::export_bytes(&back.heap, ImageFormat::spur32(order)).unwrap();
        let again = import_bytes(&narrow).unwrap();
        assert_eq!(free_lists(&again.heap), (Some(18), 10, 32 * 4), "{order:?}");
    }
}

/// The headless image's first context (an instance of special object 10, format 3) with a
/// slot past its stack pointer: (its object number, the byte offset in the file of that
/// slot, the slot's number).
fn spur_context_with_room() -> (usize, usize, usize) {
    let b = image_bytes(HEADLESS);
    let heap = &headless().heap;
    let special = heap.root("specialObjects").unwrap().as_base().unwrap();
    let context_class = heap.get_slot(special, 10).unwrap().as_base().unwrap();
    let ci = heap.hash(context_class).unwrap();
    for (x, (hdr, slots)) in spur32_objects(&b).into_iter().enumerate() {
        let lo = le32(&b, hdr);
        if lo & 0x3F_FFFF != ci || (lo >> 24) & 31 != 3 {
            continue;
        }
        let sp = le32(&b, hdr + 8 + 4 * 2);
        if sp & 1 == 0 {
            continue;
        }
        let first_stale = 6 + (sp >> 1) as usize;
        if first_stale < slots {
            return (x, hdr + 8 + 4 * first_stale, first_stale);
        }
    }
    panic!("the headless image has a context with room past its stack pointer");
}

#[test]
fn a_stale_word_past_a_spur_contexts_stack_pointer_imports_as_nil() {
    // A Spur VM, as a V3 one, traces and updates a context's slots only up to its stack
    // pointer (`numPointerSlotsOf:`): the slots past it may hold a word that names no
    // object, and the VM loads the image.
    let (x, at, k) = spur_context_with_room();
    let mut b = image_bytes(HEADLESS);
    // An address inside the special objects array: no object starts there.
    let stale = le32(&b, 16) + 8;
    b[at..at + 4].copy_from_slice(&stale.to_le_bytes());
    let im = import_bytes(&b).expect("a Spur VM loads this image");
    let x = ObjectIndex::from_u32(x as u32);
    assert_eq!(im.heap.get_slot(x, k), Some(im.heap.nil().word()));
    // Exported, the stale word is nil's oop (slot 0 of the special objects array); the rest
    // is the file.
    let (hs, old_base, special) = (le32(&b, 4), le32(&b, 12), le32(&b, 16));
    let nil_oop = le32(&b, (hs + special - old_base + 8) as usize);
    let mut expected = b.clone();
    expected[at..at + 4].copy_from_slice(&nil_oop.to_le_bytes());
    assert!(cowheap_squeak::export_bytes(&im.heap, im.format).unwrap() == expected);
    // A word before the stack pointer that names no object is still refused.
    let mut b = image_bytes(HEADLESS);
    b[at - 4..at].copy_from_slice(&stale.to_le_bytes());
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::DanglingOop { oop, .. }) if oop == u64::from(stale)
    ));
}

#[test]
fn a_compact_class_index_whose_slot_is_nil_is_refused() {
    // A one-word header's class is the compact classes array's slot at its index; a VM
    // that finds nil there has no class to send to. Such an object is refused, as one whose
    // index is past the array is, rather than imported with nil for its class.
    let heap = &scratch().heap;
    let special = heap.root("specialObjects").unwrap().as_base().unwrap();
    let compact = heap.get_slot(special, 28).unwrap().as_base().unwrap();
    let nil = heap.nil().word();
    let k = (0..31)
        .find(|&k| heap.get_slot(compact, k) == Some(nil))
        .expect("Scratch's compact classes array has a nil slot");
    let mut b = image_bytes(SCRATCH);
    let (_, hdr, _, _) = v3_headers(&b)
        .into_iter()
        .find(|&(_, _, t, _)| t == 3)
        .unwrap();
    let base = le32(&b, hdr) & !(31 << 12) | ((k as u32 + 1) << 12);
    b[hdr..hdr + 4].copy_from_slice(&base.to_le_bytes());
    let e = import_bytes(&b);
    assert!(
        matches!(e, Err(ImportError::BadHeader { .. })),
        "{:?}",
        e.map(|_| ())
    );
    // The other V3 images name a class at every compact index their objects use.
    for name in ["mini.image", "bootstrapped.image"] {
        import_bytes(&image_bytes(name)).unwrap();
    }
}
