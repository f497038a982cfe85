//! One way to open any base: a cowheap image file or a Squeak, Pharo or Cuis image.

use cowheap_heap::{BaseHeap, FileError, Verification};
use cowheap_squeak::{ImageFormat, ImportError, Imported};
use std::path::{Path, PathBuf};

/// What [`open_base`] found at the path.
#[derive(Debug)]
#[non_exhaustive]
pub enum Opened {
    /// A cowheap image file, mapped and checked as the caller asked.
    ImageFile {
        /// How much of the file was checked.
        verification: Verification,
    },
    /// A Smalltalk image, imported object by object.
    Smalltalk {
        /// The image's format: V3 or Spur, its version, word size and byte order.
        format: ImageFormat,
        /// The image's header.
        header: cowheap_squeak::ImageHeader,
    },
}

/// Why [`open_base`] could not open a base.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file that could not be opened as a cowheap image file: a cowheap image file (its
    /// magic says so) that failed to map or verify, and also a path that names no regular
    /// file or a file too short to hold a magic, which is no Smalltalk image either.
    #[error("{}: {source}", path.display())]
    ImageFile {
        /// The file asked for.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: FileError,
    },
    /// Not a cowheap image file, and the Smalltalk importer refused it too.
    #[error(
        "{}: neither a cowheap image file nor a Squeak, Pharo or Cuis image this build reads: {source}",
        path.display()
    )]
    Smalltalk {
        /// The file asked for.
        path: PathBuf,
        /// Why the importer refused it.
        #[source]
        source: ImportError,
    },
}

/// Opens `path` as a base heap, whatever it holds: a cowheap image file (recognised by its
/// magic, mapped and checked as `verification` says) or a Squeak, Pharo or Cuis image in any
/// format the importer reads (imported, always checked in full). Returns the heap and what
/// the file was.
///
/// Time: O(1) to map a trusted image file; O(size) to verify one or to import an image.
///
/// ```
/// use cowheap::{OpenError, Verification, open_base, synth};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("base.cowheap");
/// synth::image(1_000, 1).save(&path).unwrap();
/// let (heap, _) = open_base(&path, Verification::Full).unwrap();
/// assert!(heap.is_mapped());
///
/// std::fs::write(dir.path().join("junk"), b"not an image").unwrap();
/// assert!(matches!(
///     open_base(dir.path().join("junk"), Verification::Full),
///     Err(OpenError::Smalltalk { .. })
/// ));
/// std::fs::write(dir.path().join("short"), b"abc").unwrap();
/// for path in [dir.path().join("short"), dir.path().join("missing")] {
///     assert!(matches!(open_base(path, Verification::Full), Err(OpenError::ImageFile { .. })));
/// }
/// ```
pub fn open_base(
    path: impl AsRef<Path>,
    verification: Verification,
) -> Result<(BaseHeap, Opened), OpenError> {
    let path = path.as_ref();
    match BaseHeap::open_with(path, verification) {
        Ok(heap) => Ok((heap, Opened::ImageFile { verification })),
        // Not a cowheap image file: perhaps a Smalltalk image. The importer is
        // single-threaded, so a process that forks may use it too.
        Err(FileError::BadMagic { .. }) => match cowheap_squeak::import(path) {
            Ok(Imported {
                heap,
                format,
                header,
                ..
            }) => Ok((heap, Opened::Smalltalk { format, header })),
            Err(source) => Err(OpenError::Smalltalk {
                path: path.to_owned(),
                source,
            }),
        },
        Err(source) => Err(OpenError::ImageFile {
            path: path.to_owned(),
            source,
        }),
    }
}
