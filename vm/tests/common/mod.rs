//! Shared helpers of the real-image tests.
#![allow(dead_code, reason = "each test file uses a different part")]

use cowheap_forwarders::Base;
use cowheap_heap::BaseHeap;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images` from the workspace.
pub(crate) fn images() -> PathBuf {
    std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"))
}

/// Imports image `name`; panics (fails the test) if the file is missing.
pub(crate) fn import(name: &str) -> BaseHeap {
    let path = images().join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (see /work/shared/images/README.md)",
        path.display()
    );
    cowheap_squeak::import(&path)
        .unwrap_or_else(|e| panic!("importing {}: {e}", path.display()))
        .heap
}

/// The base of image `name`.
pub(crate) fn base(name: &str) -> Arc<Base> {
    Base::new(import(name))
}

pub(crate) mod world;
