//! The `cowheap` command at the edges of its arguments and its surroundings: an output given
//! as a symbolic link that names no file yet, checked where the write will put the file, as
//! the write follows the link.

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
