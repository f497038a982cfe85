//! The `cowheap` command's arguments and inputs that are well-formed but make no sense: bench
//! outputs that name no regular file (a path ending in a separator or `/.`, a FIFO) refused
//! before the run, the outputs of `image new`, `import` and `export` checked the same way, a
//! comparator named twice refused, and the demonstration on a base whose globals name one
//! object twice.

use cowheap::{Builder, Format, Word};
use std::path::Path;
use std::process::{Command, Output};

fn cowheap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cowheap"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the cowheap binary runs")
}

/// A bench small enough for a test.
fn small_bench(more: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "--objects",
        "1000",
        "--tenants",
        "4",
        "--ops",
        "10",
        "--write-counts",
        "0,10",
        "--repeats",
        "1",
        "--sweep-samples",
        "1",
        "--threads",
        "2",
    ];
    if !more.contains(&"--approaches") {
        args.extend(["--approaches", "cowheap"]);
    }
    args.extend(more);
    cowheap(&args)
}

/// An output path that names no regular file (a trailing separator, a trailing `/.`, a FIFO)
/// is an argument error found before the run, as a missing directory is: nothing is run and
/// nothing is written or replaced.
#[test]
fn bench_outputs_that_name_no_regular_file_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let file = at("report.json");
    std::fs::write(&file, "the old report").unwrap();
    let (slash, dot, new_slash) = (format!("{file}/"), format!("{file}/."), at("new.json/"));
    let mut refused = vec![
        vec!["--json", new_slash.as_str()],
        vec!["--json", slash.as_str()],
        vec!["--svg", dot.as_str()],
        vec!["--json", file.as_str(), "--svg", slash.as_str()],
    ];
    let fifo = at("fifo");
    #[cfg(unix)]
    {
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        refused.push(vec!["--json", fifo.as_str()]);
    }
    for args in refused {
        let run = small_bench(&args);
        let (out, err) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert_eq!(run.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(!out.contains("cowheap bench"), "{args:?} ran: {out}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "the old report");
        assert!(!Path::new(&at("new.json")).exists(), "{args:?}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced");
    }
}

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images`.
fn image(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/images"))
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images",
        path.display()
    );
    path
}

/// `image new`, `import` and `export` check their `--output` as the bench checks its
/// outputs, before they build, import or export anything: one in a directory that does not
/// exist, one that ends in a separator, or one that is a FIFO is an argument error (exit 2).
#[test]
fn command_outputs_are_checked_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let mini = image("mini.image");
    let mini = mini.to_str().unwrap();
    let (missing, slash) = (at("no/such/dir/out"), at("out/"));
    let mut outputs = vec![missing.clone(), slash.clone()];
    #[cfg(unix)]
    {
        let fifo = at("fifo");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        outputs.push(fifo);
    }
    for out in &outputs {
        for args in [
            vec!["image", "new", "-o", out, "--objects", "1000"],
            vec!["import", mini, "-o", out],
            vec!["export", mini, "-o", out],
        ] {
            let run = cowheap(&args);
            let err = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains("--output"), "{args:?}: {err}");
        }
    }
    assert!(!Path::new(&at("out")).exists());
}

/// A comparator named twice would be run twice on one base (the second cowheap's first
/// writes meeting the marks of the first's), two rows of one name in each table: an argument
/// error.
#[test]
fn a_comparator_named_twice_is_an_argument_error() {
    for twice in ["cowheap,cowheap", "plain,rpds,plain", "fork,fork"] {
        let run = small_bench(&["--approaches", twice]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{twice}: {err}");
        assert!(err.contains("--approaches"), "{twice}: {err}");
    }
}

/// A base whose array of globals holds one association twice (and whose first root, an
/// Array, is that array): each tenant writes each object once, so the demonstration checks
/// what it wrote, and succeeds.
#[test]
fn the_demo_writes_an_object_the_globals_name_twice_once() {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b
        .add(
            nil,
            Format::Pointers,
            vec![nil, nil, Word::int(2).unwrap()],
            vec![],
        )
        .unwrap();
    b.set_class(nil, class).unwrap();
    let one = b
        .add(class, Format::Pointers, vec![nil, nil], vec![])
        .unwrap();
    let two = b
        .add(class, Format::Pointers, vec![nil, nil], vec![])
        .unwrap();
    let globals = b
        .add(
            class,
            Format::Pointers,
            vec![one, one, two, one, nil],
            vec![],
        )
        .unwrap();
    b.add_root("Smalltalk", globals).unwrap();
    b.add_root("nil", nil).unwrap();
    let heap = b.freeze().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.cow");
    heap.save(&file).unwrap();
    let run = cowheap(&[
        "demo",
        "--image",
        file.to_str().unwrap(),
        "--tenants",
        "3",
        "--allocs",
        "2",
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{out}{err}");
    assert!(out.contains("each tenant wrote 2 global values"), "{out}");
    assert!(out.contains("isolation: checked"), "{out}");
}
