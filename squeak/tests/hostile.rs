//! Bases whose `image.*` roots hold values no image can have: checksums right, content
//! hostile. Every such root is refused with a typed error naming it, before anything large
//! is allocated.

mod common;

use common::*;
use cowheap_heap::BaseHeap;
use cowheap_squeak::{
    ByteOrder, ExportError, ExportOptions, ImageFormat, ImageHeader, export_bytes,
    export_bytes_with, import_bytes,
};

/// `heap` built again object by object, with root `name` set to `value`.
fn with_root(heap: &BaseHeap, name: &str, value: i64) -> BaseHeap {
    rebuild(heap, &[(name, value)], None)
}

fn assert_refused(heap: &BaseHeap, format: ImageFormat, root: &str) {
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(format)
    };
    let e = export_bytes_with(heap, &options);
    assert!(
        matches!(&e, Err(ExportError::BadHeaderRoot { root: r, .. }) if *r == root),
        "{root} in {format:?}: {:?}",
        e.map(|b| b.len())
    );
}

#[test]
fn the_base_rebuilt_unchanged_exports_the_original() {
    let heap = with_root(&scratch().heap, "image.lastHash", 25_748);
    assert!(export_bytes(&heap, scratch().format).unwrap() == image_bytes(SCRATCH));
}

#[test]
fn a_huge_prefix_or_header_is_refused_before_it_is_allocated() {
    let v3 = scratch();
    for (root, value) in [("image.prefix", 1i64 << 31), ("image.headerSize", 1 << 31)] {
        assert_refused(&with_root(&v3.heap, root, value), v3.format, root);
        let spur = headless();
        assert_refused(&with_root(&spur.heap, root, value), spur.format, root);
    }
    // A prefix other than 0 or 512 could not be read back either.
    assert_refused(
        &with_root(&v3.heap, "image.prefix", 100),
        v3.format,
        "image.prefix",
    );
}

#[test]
fn a_negative_or_misaligned_old_base_is_refused() {
    let v3 = scratch();
    for value in [-8, 2, 1 << 32] {
        assert_refused(
            &with_root(&v3.heap, "image.oldBase", value),
            v3.format,
            "image.oldBase",
        );
    }
    // 64-bit Spur: made by the exporter, then given a hostile old base.
    let spur = headless();
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(ImageFormat::spur64(ByteOrder::Little))
    };
    let wide = import_bytes(&export_bytes_with(&spur.heap, &options).unwrap()).unwrap();
    for value in [-8, 4, 1 << 60] {
        assert_refused(
            &with_root(&wide.heap, "image.oldBase", value),
            wide.format,
            "image.oldBase",
        );
    }
}

#[test]
fn other_header_roots_out_of_range_are_refused() {
    let v3 = scratch();
    for (root, value) in [
        ("image.version", 12_345i64),
        ("image.lastHash", 1 << 40),
        ("image.windowSize", -1),
        ("image.flags", 1 << 33),
        ("image.extraVMMemory", 1 << 32),
        ("image.stackPages", -5),
        (ImageHeader::ORDER_ROOT, 2),
    ] {
        assert_refused(&with_root(&v3.heap, root, value), v3.format, root);
    }
}

#[test]
fn class_index_roots_out_of_range_are_refused() {
    let spur = headless();
    let kept = spur
        .heap
        .roots()
        .iter()
        .find(|r| r.name.starts_with("image.classIndex."))
        .unwrap()
        .name
        .clone();
    for (root, value) in [
        (kept.as_str(), 1i64 << 40),
        (kept.as_str(), 5),
        ("image.classIndex.99999999", 40),
        ("image.classIndex.x", 40),
    ] {
        assert_refused(
            &with_root(&spur.heap, root, value),
            spur.format,
            "image.classIndex.",
        );
    }
}
