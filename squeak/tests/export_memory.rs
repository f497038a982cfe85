//! Exports when the allocator refuses memory part-way: each large allocation of an export
//! refused in turn, the export answers [`ExportError::OutOfMemory`] or the same bytes it
//! answers with memory to spare, and never ends the process.

mod common;

use cowheap_heap::BaseHeap;
use cowheap_squeak::{
    ExportError, ExportOptions, ImageFormat, export_bytes, export_bytes_with, import,
};
use cowheap_testkit::{Refusing, refusing_the};

#[global_allocator]
static ALLOC: Refusing = Refusing;

fn each_refusal(heap: &BaseHeap, format: ImageFormat) {
    each_refusal_of(|| export_bytes(heap, format));
}

/// [`each_refusal`] for a base that has no immediate float class (an export to 64 bits of a
/// 32-bit one).
fn each_refusal_with(heap: &BaseHeap, format: ImageFormat) {
    let options = ExportOptions {
        allow_missing_float_class: true,
        ..ExportOptions::exactly(format)
    };
    each_refusal_of(|| export_bytes_with(heap, &options));
}

fn each_refusal_of(export: impl Fn() -> Result<Vec<u8>, ExportError>) {
    let whole = export().unwrap();
    let mut refused_any = false;
    for k in 0.. {
        let (r, refused) = refusing_the(k, &export);
        if !refused {
            assert_eq!(r.unwrap(), whole, "allocation {k}");
            break;
        }
        refused_any = true;
        match r {
            Err(ExportError::OutOfMemory { .. }) => {}
            Ok(b) => assert_eq!(b, whole, "allocation {k}"),
            Err(e) => panic!("allocation {k}: {e}"),
        }
    }
    assert!(refused_any);
}

#[test]
fn a_v3_export_short_of_memory_is_refused_typed() {
    let im = import(common::images_dir().join("mini.image")).unwrap();
    each_refusal(&im.heap, im.format);
}

#[test]
fn a_spur_export_short_of_memory_is_refused_typed() {
    let im = common::headless();
    each_refusal(&im.heap, im.format);
}

/// A Spur export that writes new class-table pages (a class a commit added, whose hash
/// falls in a page the base lacks) in 32- and 64-bit words.
#[test]
fn a_spur_export_adding_class_table_pages_short_of_memory_is_refused_typed() {
    let heap = common::committed_new_class(Some(100 * 1024 + 5));
    for format in [
        ImageFormat::spur32(cowheap_squeak::ByteOrder::Little),
        ImageFormat::spur64(cowheap_squeak::ByteOrder::Little),
    ] {
        each_refusal_with(&heap, format);
    }
}
