//! What the segment tests share: where the real images are, the imported mini.image and
//! headless Spur bases, and allocation in a tenant.
#![allow(dead_code, reason = "each test file uses a different part")]

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_segment::bind::BaseNames;
use cowheap_tenants::Tenant;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images`.
pub(crate) fn image(name: &str) -> PathBuf {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/images"))
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (see ../shared/images/README.md)",
        path.display()
    );
    path
}

/// The base imported from `name` (mini.image, or else the headless Spur image), imported
/// once per test binary, and its names.
pub(crate) fn base(name: &str) -> &'static (Arc<Base>, BaseNames) {
    static MINI: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    static SPUR: OnceLock<(Arc<Base>, BaseNames)> = OnceLock::new();
    let cell = if name == "mini.image" { &MINI } else { &SPUR };
    cell.get_or_init(|| {
        let b = Base::new(cowheap_squeak::import(image(name)).unwrap().heap);
        let n = BaseNames::of(b.heap()).unwrap();
        (b, n)
    })
}

/// A new object of `class` in `t`, which must be made.
pub(crate) fn alloc(
    t: &mut Tenant,
    class: Value,
    format: Format,
    slots: usize,
    bytes: usize,
) -> Value {
    t.alloc(class, format, ObjectSize { slots, bytes }).unwrap()
}
