//! Snapshot paths that name no regular file: a FIFO and a character device that never ends,
//! given to `Tenant::restore`. Each is refused with a typed error at once, before a byte is
//! read: a restore never waits for a writer that may never come, nor reads without end.
#![cfg(unix)]

use cowheap_forwarders::Base;
use cowheap_heap::file::FileError;
use cowheap_heap::synth;
use cowheap_tenants::Tenant;
use cowheap_testkit::{Refusing, answer_within, mkfifo, refusing_from};
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: Refusing = Refusing;

/// The error is an I/O error that says the path is no regular file.
fn no_regular_file(e: &FileError) -> bool {
    matches!(e, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput)
}

#[test]
fn a_fifo_given_as_a_snapshot_is_refused_without_waiting_for_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p: PathBuf = d.path().join("fifo");
    mkfifo(&p);
    let base = Base::new(synth::image(100, 1));
    let path = p.clone();
    let answer = answer_within(&p, move || Tenant::restore(&base, &path).map(|_| ()));
    let Some(answer) = answer else {
        panic!("restoring a FIFO waited for a writer");
    };
    let e = answer.unwrap_err();
    assert!(no_regular_file(&e), "{e:?}");
}

#[test]
fn a_device_that_never_ends_is_refused_before_it_is_read() {
    // `/dev/zero` says it is 0 bytes long and never ends: read whole, it takes all the
    // memory there is. Here every large allocation past the 12th (16 MiB of buffer, for a
    // file of no length at all) is refused, which bounds the test if the device is read.
    let zero = Path::new("/dev/zero");
    if !zero.exists() {
        return;
    }
    let base = Base::new(synth::image(100, 1));
    let (answer, refused) = refusing_from(12, || Tenant::restore(&base, zero).map(|_| ()));
    assert!(
        !refused,
        "the device was read into ever more memory: {answer:?}"
    );
    let e = answer.unwrap_err();
    assert!(no_regular_file(&e), "{e:?}");
}
