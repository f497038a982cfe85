//! A path that names no regular file given as a Squeak image: a FIFO is refused with a
//! typed error at once, never waited on for a writer that may never come.
#![cfg(unix)]

use cowheap_squeak::ImportError;
use cowheap_testkit::{answer_within, mkfifo};

#[test]
fn a_fifo_given_as_an_image_is_refused_without_waiting_for_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("image.image");
    mkfifo(&p);
    let path = p.clone();
    let Some(answer) = answer_within(&p, move || cowheap_squeak::import(&path).map(|_| ())) else {
        panic!("importing a FIFO waited for a writer");
    };
    match answer {
        Err(ImportError::Io { path, source }) => {
            assert_eq!(path, p);
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{source}");
        }
        other => panic!("{other:?}"),
    }
}
