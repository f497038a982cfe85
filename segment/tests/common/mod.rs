//! What the segment tests share: where the real images are.

use std::path::PathBuf;

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
