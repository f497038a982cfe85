//! V3 contexts hold references only up to their stack pointer: the words past it are
//! whatever the virtual machine left there. An image whose stale word names no object is
//! one the machine loads, and imports with nil in that field; a word before the stack
//! pointer that names no object is still refused.

mod common;

use common::*;
use cowheap_heap::Word;
use cowheap_squeak::{ImportError, export_bytes, import_bytes};

/// Scratch's first context (compact class 13 or 14, format 3) with a field past its stack
/// pointer: (its object number, the byte offset in the file of its first field past the
/// stack pointer, that field's number).
fn context_with_room() -> (usize, usize, usize) {
    let b = image_bytes(SCRATCH);
    for (x, (_, hdr, _, words)) in v3_headers(&b).into_iter().enumerate() {
        let base = le32(&b, hdr);
        let (fmt, cc) = ((base >> 8) & 15, (base >> 12) & 31);
        if fmt != 3 || !(cc == 13 || cc == 14) {
            continue;
        }
        let sp = le32(&b, hdr + 4 + 4 * 2);
        if sp & 1 == 0 {
            continue;
        }
        let first_stale = 6 + (sp >> 1) as usize;
        if first_stale < words - 1 {
            return (x, hdr + 4 + 4 * first_stale, first_stale);
        }
    }
    panic!("Scratch has a context with room past its stack pointer");
}

/// A word-aligned address inside the special objects array: no object starts there.
fn dangling(b: &[u8]) -> u32 {
    le32(b, 16) + 8
}

#[test]
fn a_stale_word_past_a_contexts_stack_pointer_imports_as_nil() {
    let (x, at, k) = context_with_room();
    let mut b = image_bytes(SCRATCH);
    let stale = dangling(&b);
    b[at..at + 4].copy_from_slice(&stale.to_le_bytes());
    let im = import_bytes(&b).expect("the machine loads this image");
    let heap = &im.heap;
    let x = cowheap_heap::ObjectIndex::from_u32(x as u32);
    assert_eq!(heap.get_slot(x, k), Some(heap.nil().word()));
    // Every other object is as in the unpatched image.
    let original = &scratch().heap;
    for y in heap.indices() {
        let (p, q) = (heap.object(y).unwrap(), original.object(y).unwrap());
        if y != x {
            assert_eq!(p.slots, q.slots, "slots of {y}");
        }
        assert_eq!(p.class, q.class, "class of {y}");
    }
    // Exported, the stale word is nil's oop; everything else is the file.
    let nil_oop = original_nil_oop(&b);
    let mut expected = b.clone();
    expected[at..at + 4].copy_from_slice(&nil_oop.to_le_bytes());
    assert!(export_bytes(heap, im.format).unwrap() == expected);
}

/// Nil's oop: slot 0 of the special objects array.
fn original_nil_oop(b: &[u8]) -> u32 {
    let hs = le32(b, 4) as usize;
    let (old_base, special) = (le32(b, 12) as usize, le32(b, 16) as usize);
    le32(b, hs + special - old_base + 4)
}

#[test]
fn a_stale_word_that_names_an_object_or_integer_is_kept() {
    let (x, at, k) = context_with_room();
    let x = cowheap_heap::ObjectIndex::from_u32(x as u32);
    let mut b = image_bytes(SCRATCH);
    // The special objects array's oop, then a small integer.
    let special = le32(&b, 16);
    b[at..at + 4].copy_from_slice(&special.to_le_bytes());
    let im = import_bytes(&b).unwrap();
    assert_eq!(
        im.heap.get_slot(x, k),
        Some(im.heap.root("specialObjects").unwrap().word())
    );
    assert!(export_bytes(&im.heap, im.format).unwrap() == b);
    b[at..at + 4].copy_from_slice(&((42u32 << 1) | 1).to_le_bytes());
    let im = import_bytes(&b).unwrap();
    assert_eq!(im.heap.get_slot(x, k), Word::int(42));
    assert!(export_bytes(&im.heap, im.format).unwrap() == b);
}

#[test]
fn a_dangling_word_below_the_stack_pointer_is_refused() {
    let (_, at, _) = context_with_room();
    let mut b = image_bytes(SCRATCH);
    let stale = dangling(&b);
    // The last field below the stack pointer (the top of the stack, or a fixed field).
    let below = at - 4;
    b[below..below + 4].copy_from_slice(&stale.to_le_bytes());
    assert!(
        matches!(import_bytes(&b), Err(ImportError::DanglingOop { oop, .. }) if oop == u64::from(stale))
    );
}

#[test]
fn a_context_whose_stack_pointer_is_no_integer_holds_only_its_fixed_fields() {
    let (x, at, _) = context_with_room();
    let mut b = image_bytes(SCRATCH);
    let hdr = v3_headers(&b)[x].1;
    let stale = dangling(&b);
    // The stack pointer made nil's oop: every field from the seventh is past it.
    let nil_oop = original_nil_oop(&b);
    b[hdr + 12..hdr + 16].copy_from_slice(&nil_oop.to_le_bytes());
    b[at..at + 4].copy_from_slice(&stale.to_le_bytes());
    b[hdr + 4 + 4 * 6..hdr + 4 + 4 * 7].copy_from_slice(&stale.to_le_bytes());
    let im = import_bytes(&b).expect("past the fixed fields, stale words are nil");
    let x = cowheap_heap::ObjectIndex::from_u32(x as u32);
    assert_eq!(im.heap.get_slot(x, 6), Some(im.heap.nil().word()));
    // A fixed field that names no object is still refused.
    b[hdr + 4 + 4 * 3..hdr + 4 + 4 * 4].copy_from_slice(&stale.to_le_bytes());
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::DanglingOop { .. })
    ));
}
