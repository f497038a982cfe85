//! The `cowheap` command at the edges of its arguments and its surroundings: an output given
//! as a symbolic link that names no file yet (checked where the write will put the file, as
//! the write follows the link), a standard output that cannot be written (an error, not a
//! panic), an error reported with no backtrace whatever the environment asks of panics, and
//! a demonstration whose counts would need more memory than the machine has (refused before
//! anything is built; so are `image new` and the bench past the process's address-space
//! limit), and a bench whose fidelity check had nothing to compare saying so.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cowheap")
}

fn cowheap(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("the cowheap binary runs")
}

/// A bench small enough to run in a second.
const SMALL_BENCH: [&str; 11] = [
    "bench",
    "--objects",
    "1000",
    "--tenants",
    "2",
    "--ops",
    "20",
    "--write-counts",
    "0",
    "--approaches",
    "cowheap",
];

/// An output that is a symbolic link naming no file yet is written through the link (the
/// atomic write replaces what a link names, and creates what a dangling one names), so it
/// is checked there: a link into a directory that does not exist is an argument error
/// before anything is built, and a link to another output of the same command is that
/// output, refused as two outputs that are one file.
#[cfg(unix)]
#[test]
fn an_output_through_a_dangling_link_is_checked_where_the_write_goes() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    let into_nowhere = at("into-nowhere");
    symlink("no/such/dir/base.cowheap", &into_nowhere).unwrap();
    let run = cowheap(&["image", "new", "-o", &into_nowhere, "--objects", "1000"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("--output"), "{err}");

    let bench_into_nowhere = at("report-link");
    symlink("no/such/dir/report.json", &bench_into_nowhere).unwrap();
    let mut args = SMALL_BENCH.to_vec();
    args.extend(["--json", bench_into_nowhere.as_str()]);
    let run = cowheap(&args);
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(2), "{out}{err}");
    assert!(!out.contains("cowheap bench"), "the bench ran: {out}");

    // `report.json` does not exist yet; `link.json` names it.
    let (report, link) = (at("report.json"), at("link.json"));
    symlink("report.json", &link).unwrap();
    let mut args = SMALL_BENCH.to_vec();
    args.extend(["--json", link.as_str(), "--svg", report.as_str()]);
    let run = cowheap(&args);
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(
        run.status.code(),
        Some(2),
        "the chart replaced the JSON report written through the link: {out}{err}"
    );
    assert!(!out.contains("cowheap bench"), "the bench ran: {out}");
    assert!(!Path::new(&report).exists());
}

/// A standard output that cannot be written (a full disk: `/dev/full`) is an error with a
/// message and exit status 1, as any other failed write is, not a panic.
#[cfg(target_os = "linux")]
#[test]
fn standard_output_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.cowheap");
    let base = base.to_str().unwrap();
    let made = cowheap(&["image", "new", "-o", base, "--objects", "1000"]);
    assert!(made.status.success());
    for args in [
        vec!["image", "info", base],
        vec!["image", "verify", base],
        vec!["demo", "--tenants", "2", "--objects", "1000"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let run = Command::new(bin())
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("standard output"), "{args:?}: {err}");
    }
}

/// An error of the command is its message and its causes, with no backtrace, even when the
/// environment asks for backtraces of panics (`RUST_BACKTRACE=1`, which many developers
/// keep set): a missing file is bad input, not a bug to debug.
#[test]
fn an_error_prints_no_backtrace_when_panics_would() {
    let run = Command::new(bin())
        .args(["image", "info", "/no/such/file.cowheap"])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("/no/such/file.cowheap"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

/// A demonstration whose tenants would allocate more than the machine has (each of a
/// hundred thousand tenants allocating a million objects: terabytes) is refused as an
/// argument error before the base is built, as the bench refuses such a run, rather than
/// ended by the allocator or the system. The command runs under an address-space limit, so
/// that a run that is not refused fails fast instead of taking the machine's memory.
#[cfg(target_os = "linux")]
#[test]
fn a_demo_past_the_machines_memory_is_refused_before_it_starts() {
    let run = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 3000000 && exec \"$0\" \"$@\"",
            bin(),
            "demo",
            "--tenants",
            "100000",
            "--allocs",
            "1000000",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("memory"), "{err}");
    assert!(!out.contains("forked"), "the demo ran: {out}");
}

/// The fidelity check compares what the comparators that isolate tenants read; with fewer
/// than two of them in the run there is nothing to compare, and the notes say so rather than
/// that they read the same values.
#[test]
fn a_fidelity_check_with_nothing_to_compare_says_so() {
    for approaches in ["cowheap", "cowheap,plain", "plain"] {
        let mut args = SMALL_BENCH.to_vec();
        args.pop();
        args.push(approaches);
        let run = cowheap(&args);
        let (out, err) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert!(run.status.success(), "{approaches}: {err}");
        let note = out
            .lines()
            .find(|l| l.starts_with("- fidelity"))
            .unwrap_or_else(|| panic!("{approaches}: no fidelity note: {out}"));
        assert!(!note.contains("the same values"), "{approaches}: {note}");
        assert!(note.contains("not checked"), "{approaches}: {note}");
    }
    let mut args = SMALL_BENCH.to_vec();
    args.pop();
    args.push("cowheap,rpds");
    let out = String::from_utf8_lossy(&cowheap(&args).stdout).into_owned();
    assert!(
        out.contains("- fidelity: cowheap, rpds read the same values"),
        "{out}"
    );
}

/// The memory a run may take is what the machine has available, lowered to what the
/// process's address-space limit (`ulimit -v`) leaves it: under a limit of 3 GB, `image new`
/// of the most objects a synthetic base may hold (about 7 GB, three times that while it is
/// built) is refused as an argument error before anything is built, and so is the bench on
/// such a base, rather than either being ended by the allocator part-way.
#[cfg(target_os = "linux")]
#[test]
fn a_run_past_the_address_space_limit_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.cowheap");
    let file = file.to_str().unwrap();
    for (args, code) in [
        (
            vec!["image", "new", "-o", file, "--objects", "100000000"],
            2,
        ),
        (
            vec![
                "bench",
                "--objects",
                "100000000",
                "--tenants",
                "1",
                "--approaches",
                "cowheap",
            ],
            1,
        ),
    ] {
        let run = Command::new("sh")
            .args(["-c", "ulimit -v 3000000 && exec \"$0\" \"$@\"", bin()])
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert_eq!(run.status.code(), Some(code), "{args:?}: {out}{err}");
        assert!(err.contains("MiB are available"), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} ran: {out}");
    }
    assert!(!Path::new(file).exists());
}

/// `demo --writes 0` is an argument error that names the option's range, not a demo that
/// writes once while asked for none.
#[test]
fn a_demo_of_no_writes_is_an_argument_error() {
    let run = cowheap(&[
        "demo",
        "--writes",
        "0",
        "--tenants",
        "2",
        "--objects",
        "1000",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("0 writes: from 1"), "{err}");
    assert!(run.stdout.is_empty());
}
