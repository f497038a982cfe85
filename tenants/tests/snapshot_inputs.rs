//! Snapshot paths that name no regular file: a FIFO and a character device that never ends,
//! given to `Tenant::restore`. Each is refused with a typed error at once, before a byte is
//! read: a restore never waits for a writer that may never come, nor reads without end.
#![cfg(unix)]

use cowheap_forwarders::Base;
use cowheap_heap::file::FileError;
use cowheap_heap::synth;
use cowheap_tenants::Tenant;
use cowheap_testkit::{Refusing, refusing_from};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static ALLOC: Refusing = Refusing;

/// How long a test waits for an answer that should come at once.
const PATIENCE: Duration = Duration::from_secs(30);

/// The error is an I/O error that says the path is no regular file.
fn no_regular_file(e: &FileError) -> bool {
    matches!(e, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput)
}

#[test]
fn a_fifo_given_as_a_snapshot_is_refused_without_waiting_for_a_writer() {
    let d = tempfile::tempdir().unwrap();
    let p: PathBuf = d.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let base = Base::new(synth::image(100, 1));
    let (tx, rx) = mpsc::channel();
    let path = p.clone();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(Tenant::restore(&base, &path).map(|_| ()));
    });
    let answer = rx.recv_timeout(PATIENCE).ok();
    if answer.is_none() {
        // Let the blocked restore go: a writer opens the FIFO and closes it at once.
        drop(std::fs::OpenOptions::new().write(true).open(&p));
    }
    let _ = worker.join();
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
