//! Paths that name no regular file given where the segment crate reads a file: a FIFO as
//! a segment file, an Etoys project, a file to describe or import, or a base. Each is
//! refused with a typed error at once, never waited on for a writer that may never come.
#![cfg(unix)]

use cowheap_segment::{Project, SegmentError};
use cowheap_testkit::{answer_within, mkfifo};
use std::path::{Path, PathBuf};

/// The answer of `f` given the FIFO at `p`, which must come at once.
fn refused<T: Send + 'static>(
    what: &str,
    p: &Path,
    f: impl FnOnce(PathBuf) -> cowheap_segment::Result<T> + Send + 'static,
) {
    let path = p.to_owned();
    let Some(answer) = answer_within(p, move || f(path).map(|_| ())) else {
        panic!("{what}: a FIFO was waited on for a writer");
    };
    match answer {
        Err(SegmentError::Io { source, .. }) => {
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::InvalidInput,
                "{what}: {source}"
            )
        }
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_fifo_is_refused_at_once_wherever_a_file_is_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("fifo");
    mkfifo(&p);
    let base = d.path().join("base.cowheap");
    cowheap_heap::synth::image(50, 1).save(&base).unwrap();
    refused("a segment file", &p, |p| {
        cowheap_segment::file::read(&p, None)
    });
    refused("a project", &p, |p| Project::open(&p));
    refused("info", &p, |p| cowheap_segment::info::info(&p));
    refused("a base", &p, |p| cowheap_segment::info::load_base(&p));
    refused("an import's file", &p, move |p| {
        cowheap_segment::info::import_keeping(&p, &base)
    });
}

#[test]
fn a_fifo_in_a_segment_directory_is_refused_at_once() {
    use cowheap_segment::swap::{DirStore, SegmentId, SegmentStore, StoreError};
    let d = tempfile::tempdir().unwrap();
    let store = DirStore::new(d.path()).unwrap();
    let p = store.path(SegmentId::new(3));
    mkfifo(&p);
    let Some(answer) = answer_within(&p, move || store.get(SegmentId::new(3)).map(|_| ())) else {
        panic!("a segment's FIFO was waited on for a writer");
    };
    match answer {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{source}")
        }
        other => panic!("{other:?}"),
    }
}
