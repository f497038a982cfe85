//! Paths that name no regular file where one is expected: a FIFO given as an image file or
//! as a file to read whole, and a FIFO in the place of the directory a file is written
//! into. Each answers a typed error at once, and never waits for a writer that may never
//! come.
#![cfg(unix)]

use cowheap_heap::file::{FileError, read_file};
use cowheap_heap::{BaseHeap, Verification};
use cowheap_testkit::{answer_within, mkfifo};
use std::path::{Path, PathBuf};

/// A FIFO made in `dir`.
fn fifo(dir: &Path) -> PathBuf {
    let p = dir.join("fifo");
    mkfifo(&p);
    p
}

/// The error is an I/O error that says the path is no regular file.
fn no_regular_file(e: &FileError) -> bool {
    matches!(e, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput)
}

#[test]
fn a_fifo_opened_as_an_image_is_refused_without_waiting_for_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p = fifo(d.path());
    for v in [Verification::Full, Verification::Trust] {
        let path = p.clone();
        let answer = answer_within(&p, move || BaseHeap::open_with(&path, v).map(|_| ()));
        let Some(answer) = answer else {
            panic!("opening a FIFO as an image ({v:?}) waited for a writer");
        };
        let e = answer.unwrap_err();
        assert!(no_regular_file(&e), "{e:?}");
    }
}

#[test]
fn read_file_refuses_a_fifo_without_waiting_for_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p = fifo(d.path());
    let path = p.clone();
    let Some(answer) = answer_within(&p, move || read_file(&path).map(|b| b.len())) else {
        panic!("read_file of a FIFO waited for a writer");
    };
    let e = answer.unwrap_err();
    assert!(no_regular_file(&e), "{e:?}");
}

#[test]
fn a_write_under_a_fifo_is_refused_without_waiting_for_a_writer() {
    // The directory of the file to write is opened (to fsync it after the rename) before
    // anything is written: a FIFO there is no directory, and is refused at once.
    let d = tempfile::tempdir().unwrap();
    let p = fifo(d.path());
    let target = p.join("base.cowheap");
    let Some(answer) = answer_within(&p, move || cowheap_heap::synth::image(10, 1).save(&target))
    else {
        panic!("a write under a FIFO waited for a writer");
    };
    assert!(matches!(answer, Err(FileError::Io { .. })), "{answer:?}");
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        1,
        "nothing but the FIFO"
    );
}
