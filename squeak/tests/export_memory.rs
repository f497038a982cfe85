//! Exports when the allocator refuses memory part-way: each large allocation of an export
//! refused in turn, the export answers [`ExportError::OutOfMemory`] or the same bytes it
//! answers with memory to spare, and never ends the process.

mod common;

use cowheap_heap::BaseHeap;
use cowheap_squeak::{ExportError, ImageFormat, export_bytes, import};
use cowheap_testkit::{Refusing, refusing_the};

#[global_allocator]
static ALLOC: Refusing = Refusing;

fn each_refusal(heap: &BaseHeap, format: ImageFormat) {
    let whole = export_bytes(heap, format).unwrap();
    let mut refused_any = false;
    for k in 0.. {
        let (r, refused) = refusing_the(k, || export_bytes(heap, format));
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
