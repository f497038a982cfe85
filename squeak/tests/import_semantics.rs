//! What the importers make of files a VM reads one way: references from ordinary Spur
//! objects to hidden ones, class words and class-table entries that name no class, and the
//! variants of the real images (byte order, old base) compared with the originals.

mod common;

use common::*;
use cowheap_squeak::{ImportError, import_bytes};

/// The oop of the object whose header is at file offset `hdr` of the headless image.
fn spur32_oop(b: &[u8], hdr: usize) -> u32 {
    le32(b, 12) + (hdr - le32(b, 4) as usize) as u32
}

/// File offset of slot `k` of the headless image's special objects array.
fn special_slot_at(b: &[u8], k: usize) -> usize {
    let (hs, old_base, special) = (le32(b, 4), le32(b, 12), le32(b, 16));
    (hs + special - old_base) as usize + 8 + 4 * k
}

#[test]
fn a_reference_from_an_ordinary_object_to_a_hidden_one_is_refused() {
    // Hidden objects (the free lists, the hidden roots, the class-table pages) are the VM's
    // own: only hidden objects refer to them, and no Smalltalk object can hold one. An image
    // whose special objects array names the hidden roots imports (before) as an object
    // whose class is nil, which the exporter then refuses to write back.
    let mut b = image_bytes(HEADLESS);
    let objs = spur32_objects(&b);
    let nil_oop = le32(&b, special_slot_at(&b, 0));
    let k = (0..60)
        .find(|&k| le32(&b, special_slot_at(&b, k)) == nil_oop && k > 0)
        .expect("the special objects array has a nil slot");
    for hidden in [3usize, 4, 5] {
        let oop = spur32_oop(&b, objs[hidden].0);
        let at = special_slot_at(&b, k);
        b[at..at + 4].copy_from_slice(&oop.to_le_bytes());
        let r = import_bytes(&b);
        let round_trip = r
            .as_ref()
            .ok()
            .map(|im| cowheap_squeak::export_bytes(&im.heap, im.format).map(|out| out == b));
        assert!(
            matches!(r, Err(ImportError::HiddenReference { oop: o, .. }) if o == u64::from(oop)),
            "hidden object {hidden}: imported: {}, exported back: {round_trip:?}",
            r.is_ok()
        );
    }
}

#[test]
fn a_v3_class_word_that_names_no_class_is_refused() {
    // A class is an object of pointers whose third field is its format, a small integer:
    // the VM reads a class's superclass, method dictionary and format to send to an
    // instance. A two-word header whose class word names `true`, or a byte object, names
    // no class; it was imported as the instance of an object that is none.
    let good = image_bytes("mini.image");
    let headers = v3_headers(&good);
    let (hs, old_base) = (le32(&good, 4) as usize, le32(&good, 12) as usize);
    let oop = |hdr: usize| (old_base + hdr - hs) as u32;
    let special = le32(&good, 16) as usize - old_base + hs;
    let true_oop = le32(&good, special + 4 + 4 * 2);
    let bytes = headers
        .iter()
        .find(|&&(_, hdr, _, words)| (le32(&good, hdr) >> 8) & 15 >= 8 && words > 1)
        .map(|&(_, hdr, _, _)| oop(hdr))
        .unwrap();
    let (pos, hdr, _, _) = *headers
        .iter()
        .find(|&&(_, hdr, t, _)| t == 1 && (le32(&good, hdr) >> 12) & 31 == 0)
        .unwrap();
    for class in [true_oop, bytes] {
        let mut b = good.clone();
        b[pos..pos + 4].copy_from_slice(&(class | 1).to_le_bytes());
        let r = import_bytes(&b);
        assert!(
            matches!(r, Err(ImportError::NotAClass { at, .. }) if at == (hdr - hs) as u64),
            "class word {class:#x}: {:?}",
            r.map(|_| ())
        );
    }
}

#[test]
fn a_spur_class_table_entry_that_names_no_class_is_refused() {
    // The headless image's class table: hidden roots slot 0 is the first page; an entry of
    // a class index that objects use, replaced by `true`, by the free lists (a hidden words
    // object) or by a byte object, names no class.
    let good = image_bytes(HEADLESS);
    let objs = spur32_objects(&good);
    // An ordinary object's class index below 1024, on the first page.
    let &(hdr, _) = objs
        .iter()
        .find(|&&(hdr, _)| (32..1024).contains(&(le32(&good, hdr) & 0x3F_FFFF)))
        .unwrap();
    let ci = (le32(&good, hdr) & 0x3F_FFFF) as usize;
    let page = le32(&good, objs[4].0 + 8);
    let page_hdr = objs
        .iter()
        .find(|&&(h, _)| spur32_oop(&good, h) == page)
        .unwrap()
        .0;
    let entry = page_hdr + 8 + 4 * ci;
    let true_oop = le32(&good, special_slot_at(&good, 2));
    let bytes = objs
        .iter()
        .find(|&&(h, n)| {
            (le32(&good, h) >> 24) & 31 >= 16 && n > 0 && le32(&good, h) & 0x3F_FFFF >= 32
        })
        .map(|&(h, _)| spur32_oop(&good, h))
        .unwrap();
    for class in [true_oop, spur32_oop(&good, objs[3].0), bytes] {
        let mut b = good.clone();
        b[entry..entry + 4].copy_from_slice(&class.to_le_bytes());
        let r = import_bytes(&b);
        assert!(
            matches!(r, Err(ImportError::BadClassIndex { index, .. }) if index as usize == ci),
            "entry {ci} = {class:#x}: {:?}",
            r.map(|_| ())
        );
    }
}

/// A hidden Spur object whose pun is not that of a hidden array (16, or 17 weak) holds raw
/// words, which the base keeps as words: no class-table page, special objects array or nil
/// is read through one. The headless image with its first class-table page given pun 18
/// (the free lists' raw words) is refused (before, the importer read its classes through
/// its words, and the base it made, whose page held no references, did not export).
#[test]
fn no_reference_is_read_through_a_hidden_object_of_raw_words() {
    let mut b = image_bytes(HEADLESS);
    let objs = spur32_objects(&b);
    let hidden_roots = objs[4].0;
    let page = le32(&b, hidden_roots + 8);
    let at = objs
        .iter()
        .map(|o| o.0)
        .find(|&hdr| spur32_oop(&b, hdr) == page)
        .expect("the first class-table page");
    assert_eq!(le32(&b, at) & 0x3F_FFFF, 16, "a hidden array");
    let header = (le32(&b, at) & !0x3F_FFFF) | 18;
    b[at..at + 4].copy_from_slice(&header.to_le_bytes());
    let r = import_bytes(&b);
    assert!(
        matches!(r, Err(ImportError::BadClassIndex { .. })),
        "{:?}",
        r.map(|im| cowheap_squeak::export_bytes(&im.heap, im.format).map(|_| ()))
    );
}
