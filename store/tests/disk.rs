//! Writes the kernel refuses part-way, on the local directory backend.
//!
//! Each test runs one store operation in a child process: the test binary itself, run again
//! through `bash` under a small file-size limit (`ulimit -f`, RLIMIT_FSIZE) with only that
//! test selected and an environment variable naming the store. The temporary file is made,
//! the kernel takes the bytes up to the limit and refuses the rest with `EFBIG` (SIGXFSZ
//! ignored), as a full disk refuses a write that has begun. The child checks the typed
//! error; the parent then opens the same store without the limit and checks that it holds
//! the last complete state, that nothing was left in `tmp/`, and that the write now
//! succeeds. One more test leaves SIGXFSZ at its default, so the kernel kills the writer
//! mid-write: the partial temporary file it leaves is swept by a later open once stale.

#![cfg(unix)]

use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{
    Access, Claim, Digest, LocalStore, NodeName, Store, StoreError, SystemClock, TenantName,
};
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// Set in a child: the directory of the store it writes to.
const CHILD_STORE: &str = "COWHEAP_DISK_TEST_STORE";
/// What a child prints when it has checked everything it was asked to.
const CHILD_DONE: &str = "cowheap-disk-child: done";
/// The child's file-size limit, in `ulimit -f` units (1024 bytes outside POSIX mode).
const LIMIT_KIB: u64 = 64;
const LIMIT_BYTES: u64 = LIMIT_KIB * 1024;
/// Larger than the limit: its write is refused part-way.
const BIG: usize = 4 * LIMIT_BYTES as usize;
/// The signal the kernel sends a process writing past its file-size limit.
const SIGXFSZ: i32 = 25;

fn clock() -> Arc<SystemClock> {
    Arc::new(SystemClock)
}

fn tenant() -> TenantName {
    TenantName::new("t").unwrap()
}

fn node() -> NodeName {
    NodeName::new("a").unwrap()
}

/// Bytes of `len` that differ from one `seed` to another.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The store a child is to write to, when this process is a child.
fn child_store() -> Option<PathBuf> {
    std::env::var_os(CHILD_STORE).map(PathBuf::from)
}

/// Runs test `test` of this binary again, in a child process writing to the store in
/// `root`, under the file-size limit; SIGXFSZ is ignored if `ignore_xfsz`.
fn run_child(test: &str, root: &Path, ignore_xfsz: bool) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let trap = if ignore_xfsz { "trap '' XFSZ; " } else { "" };
    // `trap ''` makes the signal ignored in the program `exec` runs; no core file is
    // written when it is not.
    let script = format!("{trap}ulimit -c 0; ulimit -f {LIMIT_KIB}; exec \"$0\" \"$@\"");
    Command::new("bash")
        .env_remove("POSIXLY_CORRECT")
        .env(CHILD_STORE, root)
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap_or_else(|e| panic!("these tests need bash to set a file-size limit: {e}"))
}

/// Runs the child and checks it finished its checks.
fn child_checks(test: &str, root: &Path) {
    let out = run_child(test, root, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(CHILD_DONE),
        "the child of {test} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks that `r` is the typed error of a write the kernel refused past the file-size
/// limit, naming the file `path` being written.
fn assert_refused<T: std::fmt::Debug>(r: Result<T, StoreError>, path: &Path) {
    match r {
        Err(StoreError::Io { path: p, source }) => {
            assert_eq!(p, path, "the error names another file");
            assert_eq!(source.kind(), ErrorKind::FileTooLarge, "{source}");
        }
        other => panic!("a write past the file-size limit gave {other:?}"),
    }
}

/// The names in the store's `tmp/`.
fn temporary_files(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// A store with a base, and tenant `t` claimed by node `a` and holding state `one`.
struct Setup {
    dir: tempfile::TempDir,
    store: LocalStore,
    base: Fingerprint,
    claim: Claim,
    state: Digest,
    one: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(dir.path(), clock(), Access::Operator).unwrap();
    let base = Fingerprint([7; 32]);
    store.put_base(base, &bytes(1000, 1)).unwrap();
    store.create_tenant(&tenant(), base, None).unwrap();
    let claim = store.claim(&tenant(), &node(), 600_000).unwrap();
    let one = bytes(1000, 2);
    let state = store.write_state(&claim, &one).unwrap();
    Setup {
        dir,
        store,
        base,
        claim,
        state,
        one,
    }
}

/// The child's handle on the store, and the claim the record names (its owner and epoch).
fn child_open(root: &Path) -> (LocalStore, Claim) {
    let store = LocalStore::open(root, clock(), Access::Operator).unwrap();
    let rec = store.record(&tenant()).unwrap();
    let claim = Claim {
        tenant: rec.tenant,
        node: rec.owner.expect("the parent holds the tenant"),
        epoch: rec.epoch,
        lease_expiry: rec.lease_expiry,
        base: rec.base,
        state: rec.state,
    };
    (store, claim)
}

/// A tenant state larger than the file-size limit: `write_state` and `suspend` are each
/// refused with `Io` naming the blob's file, and the record, its state and the blobs are
/// as they were.
#[test]
fn a_state_write_refused_part_way_is_a_typed_error_and_the_last_state_stays() {
    let big = bytes(BIG, 3);
    if let Some(root) = child_store() {
        let (s, claim) = child_open(&root);
        let blob = s.blob_path(&Digest::of(&big));
        assert_refused(s.write_state(&claim, &big), &blob);
        assert_refused(s.suspend(&claim, &big), &blob);
        // A write under the limit still works in the child: only the long one is refused.
        let small = root.join("tmp").join("small");
        std::fs::write(&small, b"x").unwrap();
        std::fs::remove_file(&small).unwrap();
        println!("{CHILD_DONE}");
        return;
    }
    let s = setup();
    let before = s.store.record(&tenant()).unwrap();
    let stats = s.store.blob_stats().unwrap();
    child_checks(
        "a_state_write_refused_part_way_is_a_typed_error_and_the_last_state_stays",
        s.dir.path(),
    );
    assert!(temporary_files(s.dir.path()).is_empty());
    let again = LocalStore::open(s.dir.path(), clock(), Access::Operator).unwrap();
    let rec = again.record(&tenant()).unwrap();
    assert_eq!(rec, before);
    assert_eq!(rec.state, Some(s.state));
    assert_eq!(rec.owner, Some(node()));
    assert_eq!(again.read_state(&tenant(), s.state).unwrap(), s.one);
    assert_eq!(again.blob_stats().unwrap(), stats);
    assert!(!again.blob_path(&Digest::of(&big)).exists());
    // Without the limit the same write succeeds, and the suspend after it.
    let d = again.write_state(&s.claim, &big).unwrap();
    assert_eq!(again.read_state(&tenant(), d).unwrap(), big);
    let two = bytes(BIG + 1, 4);
    let d2 = again.suspend(&s.claim, &two).unwrap();
    let rec = again.record(&tenant()).unwrap();
    assert_eq!((rec.state, rec.owner), (Some(d2), None));
    assert_eq!(again.read_state(&tenant(), d2).unwrap(), two);
    assert!(temporary_files(s.dir.path()).is_empty());
}

/// A base image larger than the limit: `put_base` is refused with `Io` naming the blob's
/// file; the store holds the bases it had, and not the new one.
#[test]
fn a_base_put_refused_part_way_is_a_typed_error_and_the_bases_stay() {
    let big = bytes(BIG, 5);
    let new = Fingerprint([9; 32]);
    if let Some(root) = child_store() {
        let s = LocalStore::open(&root, clock(), Access::Operator).unwrap();
        assert_refused(s.put_base(new, &big), &s.blob_path(&Digest::of(&big)));
        println!("{CHILD_DONE}");
        return;
    }
    let s = setup();
    let old = s.store.get_base(s.base).unwrap();
    child_checks(
        "a_base_put_refused_part_way_is_a_typed_error_and_the_bases_stay",
        s.dir.path(),
    );
    assert!(temporary_files(s.dir.path()).is_empty());
    let again = LocalStore::open(s.dir.path(), clock(), Access::Operator).unwrap();
    assert_eq!(again.bases().unwrap(), vec![s.base]);
    assert_eq!(again.get_base(s.base).unwrap(), old);
    assert!(matches!(
        again.get_base(new),
        Err(StoreError::BaseMissing { fingerprint }) if fingerprint == new
    ));
    assert!(!again.blob_path(&Digest::of(&big)).exists());
    assert_eq!(again.record(&tenant()).unwrap().state, Some(s.state));
    again.put_base(new, &big).unwrap();
    assert_eq!(again.get_base(new).unwrap(), big);
    assert!(temporary_files(s.dir.path()).is_empty());
}

/// A segment larger than the limit: `put_segment` is refused with `Io` naming the blob's
/// file; the tenant has the segments it had, whole, and no entry for the new id.
#[test]
fn a_segment_put_refused_part_way_is_a_typed_error_and_the_segments_stay() {
    let (first, second) = (SegmentId::new(1), SegmentId::new(2));
    let big = bytes(BIG, 6);
    if let Some(root) = child_store() {
        let (s, claim) = child_open(&root);
        assert_refused(
            s.put_segment(&claim, second, &big),
            &s.blob_path(&Digest::of(&big)),
        );
        println!("{CHILD_DONE}");
        return;
    }
    let s = setup();
    let small = bytes(2000, 7);
    s.store.put_segment(&s.claim, first, &small).unwrap();
    child_checks(
        "a_segment_put_refused_part_way_is_a_typed_error_and_the_segments_stay",
        s.dir.path(),
    );
    assert!(temporary_files(s.dir.path()).is_empty());
    let again = LocalStore::open(s.dir.path(), clock(), Access::Operator).unwrap();
    assert_eq!(again.segments(&tenant()).unwrap(), vec![first]);
    assert_eq!(again.get_segment(&tenant(), first).unwrap(), small);
    assert!(matches!(
        again.get_segment(&tenant(), second),
        Err(StoreError::SegmentMissing { id, .. }) if id == second
    ));
    assert!(!again.blob_path(&Digest::of(&big)).exists());
    assert_eq!(again.read_state(&tenant(), s.state).unwrap(), s.one);
    again.put_segment(&s.claim, second, &big).unwrap();
    assert_eq!(again.get_segment(&tenant(), second).unwrap(), big);
    assert_eq!(again.segments(&tenant()).unwrap(), vec![first, second]);
    assert!(temporary_files(s.dir.path()).is_empty());
}

/// With SIGXFSZ at its default the kernel kills the writer part-way through a state's
/// blob: it leaves a temporary file of exactly the limit's bytes, the record still names
/// the last state, a later open keeps the file while it may be a write in progress and
/// sweeps it once stale, and the write then succeeds.
#[test]
fn a_writer_killed_part_way_by_the_file_size_limit_leaves_a_file_that_open_sweeps() {
    let big = bytes(BIG, 8);
    if let Some(root) = child_store() {
        let (s, claim) = child_open(&root);
        let r = s.write_state(&claim, &big);
        // Reached only if the kernel did not kill this process.
        println!("not killed: {r:?}");
        return;
    }
    let s = setup();
    let before = s.store.record(&tenant()).unwrap();
    let out = run_child(
        "a_writer_killed_part_way_by_the_file_size_limit_leaves_a_file_that_open_sweeps",
        s.dir.path(),
        false,
    );
    assert_eq!(
        out.status.signal(),
        Some(SIGXFSZ),
        "the child was not killed by SIGXFSZ ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let left = temporary_files(s.dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let partial = std::fs::read(&left[0]).unwrap();
    assert_eq!(partial.len() as u64, LIMIT_BYTES);
    assert_eq!(&partial[..8], b"COWBLOB\0");
    assert_eq!(&partial[16..], &big[..partial.len() - 16]);

    let again = LocalStore::open(s.dir.path(), clock(), Access::Operator).unwrap();
    assert_eq!(again.record(&tenant()).unwrap(), before);
    assert_eq!(again.read_state(&tenant(), s.state).unwrap(), s.one);
    assert!(!again.blob_path(&Digest::of(&big)).exists());
    assert!(left[0].exists(), "a fresh temporary file was swept");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&left[0])
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let again = LocalStore::open(s.dir.path(), clock(), Access::Operator).unwrap();
    assert!(temporary_files(s.dir.path()).is_empty());
    let d = again.write_state(&s.claim, &big).unwrap();
    assert_eq!(again.read_state(&tenant(), d).unwrap(), big);
}
