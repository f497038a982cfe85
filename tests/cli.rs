//! The `cowheap` command end to end: image files, import and export of real Smalltalk images,
//! the demonstration on a real base, segments, and bad input: among it, arguments and
//! inputs that are well-formed but make no sense (bench and command outputs that name no
//! regular file, a comparator named twice, a base whose globals name one object twice).

use cowheap::{Builder, Format, Word};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cowheap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cowheap"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the cowheap binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = cowheap(args);
    assert!(
        out.status.success(),
        "cowheap {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images`.
fn image(name: &str) -> PathBuf {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/images")));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (see \
         ../shared/images/README.md; Scratch.image comes from Debian's `scratch` package: \
         apt-get download scratch && dpkg-deb -x scratch_*_all.deb DIR)",
        path.display()
    );
    path
}

#[test]
fn image_files_are_made_verified_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.cowheap");
    let f = file.to_str().unwrap();
    ok(&["image", "new", "-o", f, "--objects", "20000", "--seed", "3"]);
    let verified = ok(&["image", "verify", f]);
    assert!(
        verified.contains("ok:") && verified.contains("objects"),
        "{verified}"
    );
    let info = ok(&["image", "info", f]);
    assert!(
        info.contains("fingerprint:") && info.contains("top classes by instances"),
        "{info}"
    );
    // A flipped byte in the objects section is caught by verify, not by the trusted info.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let out = cowheap(&["image", "verify", f]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
}

#[test]
fn real_images_import_and_export_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["Scratch-1.4.0.6.image", "headless-spur32.image"] {
        let original = image(name);
        let base = dir.path().join(format!("{name}.cowheap"));
        let back = dir.path().join(format!("{name}.back"));
        ok(&[
            "import",
            original.to_str().unwrap(),
            "-o",
            base.to_str().unwrap(),
        ]);
        let info = ok(&["image", "info", base.to_str().unwrap()]);
        assert!(
            info.contains("CompiledMethod") && info.contains("Symbol"),
            "{info}"
        );
        ok(&[
            "export",
            base.to_str().unwrap(),
            "-o",
            back.to_str().unwrap(),
        ]);
        assert!(
            std::fs::read(&back).unwrap() == std::fs::read(&original).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn export_keeps_the_byte_order_the_base_came_from_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let original = image("headless-spur32.image");
    let original = original.to_str().unwrap();
    ok(&["export", original, "-o", &path("big.image"), "--big-endian"]);
    let big = std::fs::read(path("big.image")).unwrap();
    assert_ne!(big, std::fs::read(original).unwrap());
    // Imported from the big-endian image, the base exports big-endian by default...
    ok(&["import", &path("big.image"), "-o", &path("big.cowheap")]);
    ok(&["export", &path("big.cowheap"), "-o", &path("again.image")]);
    assert!(std::fs::read(path("again.image")).unwrap() == big);
    // ...and little-endian when told, which is the original file.
    let args = ["export", &path("big.cowheap"), "-o", &path("little.image")];
    ok(&[&args[..], &["--little-endian"]].concat());
    assert!(std::fs::read(path("little.image")).unwrap() == std::fs::read(original).unwrap());
}

#[test]
fn the_demonstration_runs_on_a_real_image() {
    let scratch = image("Scratch-1.4.0.6.image");
    let out = ok(&[
        "demo",
        "--image",
        scratch.to_str().unwrap(),
        "--tenants",
        "200",
    ]);
    assert!(out.contains("isolation: checked 600 reads"), "{out}");
    assert!(out.contains("83459 objects"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"not an image at all").unwrap();
    // Not /dev/null: an output that is no regular file is refused before the input is read.
    let out = dir.path().join("out");
    for args in [
        vec!["image", "verify", bad.to_str().unwrap()],
        vec!["import", bad.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["image", "info", "/no/such/file"],
        vec!["segment", "info", bad.to_str().unwrap()],
        vec!["segment", "info", "/no/such/file"],
    ] {
        let out = cowheap(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("Error:") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_demo_runs_on_an_image_that_names_no_globals_and_says_what_it_skipped() {
    // bootstrapped.image's Smalltalk slot is nil: the demo writes objects found by a scan.
    let img = image("bootstrapped.image");
    let out = ok(&[
        "demo",
        "--image",
        img.to_str().unwrap(),
        "--tenants",
        "20",
        "--allocs",
        "5",
    ]);
    assert!(out.contains("note: the base names no globals"), "{out}");
    assert!(
        out.contains("each tenant sees only its own writes"),
        "{out}"
    );
}

#[test]
fn segments_are_described_and_imported_into_a_base() {
    let project = image("segments/JustPaintedCar.013.pr");
    let info = ok(&["segment", "info", project.to_str().unwrap()]);
    // The counts of ../shared/images/README.md.
    for line in [
        "segment words:   5155",
        "objects:         269",
        "roots:           238",
    ] {
        assert!(info.contains(line), "no {line:?} in:\n{info}");
    }
    let mini = image("mini.image");
    let import = ok(&[
        "segment",
        "import",
        project.to_str().unwrap(),
        "--base",
        mini.to_str().unwrap(),
    ]);
    let bound = import
        .lines()
        .find_map(|l| l.strip_prefix("out-pointers:"))
        .unwrap_or_else(|| panic!("no out-pointers line in:\n{import}"));
    let n: usize = bound.split_whitespace().next().unwrap().parse().unwrap();
    assert!(n > 0 && bound.contains("bound of 120"), "{bound}");
    // What the model did not rehash holds nil twice: nothing is left for the image's code.
    assert!(
        import.contains("rehashed by the image's code: none left for it"),
        "{import}"
    );
}

/// A cowheap segment file holding an equality Set of Arrays made by `mini.image`'s code,
/// imported into Scratch: the model cannot run Scratch's `SequenceableCollection>>hash` and
/// reports the Set; the command then sends it `rehash` through the interpreter. With a
/// budget of 10 bytecodes that run is a typed failure, and with `--no-image-rehash` it is
/// not made.
#[test]
fn segment_import_rehashes_what_the_model_left_by_the_images_code() {
    use cowheap::{Base, Tenant};
    use cowheap_segment::{file, tenant};
    let mini = Base::new(cowheap::squeak::import(image("mini.image")).unwrap().heap);
    let symbols = cowheap_vm::Symbols::from_base(mini.heap());
    let mut t = Tenant::fork(&mini);
    let mut vm = cowheap_vm::Vm::new(&t).unwrap();
    let set = vm
        .evaluate(
            &mut t,
            &symbols,
            "| s | s _ Set new. 1 to: 12 do: [:i | s add: (Array with: i with: i * 7 with: i + 100)]. s",
            10_000_000,
        )
        .unwrap();
    let mut seg = tenant::extract(&t, &[set], &[]).unwrap();
    seg.make_portable(mini.heap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.segment");
    std::fs::write(&path, file::to_bytes(&seg).unwrap()).unwrap();
    let scratch = image("Scratch-1.4.0.6.image");
    let args = [
        "segment",
        "import",
        path.to_str().unwrap(),
        "--base",
        scratch.to_str().unwrap(),
    ];
    let out = ok(&args);
    assert!(out.contains("1 not rehashed"), "{out}");
    assert!(
        out.contains("rehashed by the image's code: 1 of 1") && out.contains(", 0 failed"),
        "{out}"
    );
    let out = ok(&[&args[..], &["--rehash-budget", "10"]].concat());
    assert!(
        out.contains("rehashed by the image's code: 0 of 1 (10 bytecodes), 1 failed")
            && out.contains("budget of 10 exhausted"),
        "{out}"
    );
    // The runs may allocate only so much: with no room, the rehash fails on the quota.
    let out = ok(&[&args[..], &["--rehash-memory", "0"]].concat());
    assert!(
        out.contains("rehashed by the image's code: 0 of 1") && out.contains("1 failed"),
        "{out}"
    );
    let out = ok(&[&args[..], &["--no-image-rehash"]].concat());
    assert!(out.contains("1 not rehashed"), "{out}");
    assert!(!out.contains("by the image's code"), "{out}");
}

/// On a Spur base the command runs the image's `rehash` too: a Set of Strings from a tenant
/// of the 32-bit headless image, exported portably and imported into the same image written
/// as 64-bit Spur, is reported by the model (the image's `String>>hash` loops) and sent
/// `rehash` by the interpreter on the 64-bit image; that kernel has no `rehash`, so the run
/// is a typed failure naming it, and the command still succeeds.
#[test]
fn segment_import_runs_the_images_rehash_on_a_spur_base() {
    use cowheap::squeak::{ByteOrder, ExportOptions, ImageKind};
    use cowheap::{Base, Format, ObjectSize, Tenant, Value};
    use cowheap_segment::bind::BaseNames;
    use cowheap_segment::{file, tenant};
    let heap = cowheap::squeak::import(image("headless-spur32.image"))
        .unwrap()
        .heap;
    let wide = cowheap::squeak::export_bytes_with(
        &heap,
        &ExportOptions {
            kind: Some(ImageKind::Spur64),
            order: Some(ByteOrder::Little),
            allow_missing_float_class: true,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    let base = Base::new(heap);
    let names = BaseNames::of(base.heap()).unwrap();
    let g = |n: &str| names.global(n).unwrap();
    let mut t = Tenant::fork(&base);
    let size = |slots, bytes| ObjectSize { slots, bytes };
    let set = t.alloc(g("Set"), Format::Pointers, size(2, 0)).unwrap();
    let array = t.alloc(g("Array"), Format::Pointers, size(8, 0)).unwrap();
    t.set_slot(set, 0, Value::int(3)).unwrap();
    t.set_slot(set, 1, array).unwrap();
    for (i, w) in ["one", "two", "three"].iter().enumerate() {
        let s = t
            .alloc(g("String"), Format::Bytes, size(0, w.len()))
            .unwrap();
        t.set_bytes(s, 0, w.as_bytes()).unwrap();
        t.set_slot(array, i, s).unwrap();
    }
    let mut seg = tenant::extract(&t, &[set], &[]).unwrap();
    seg.make_portable(base.heap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strings.segment");
    std::fs::write(&path, file::to_bytes(&seg).unwrap()).unwrap();
    let wide_path = dir.path().join("headless64.image");
    std::fs::write(&wide_path, wide).unwrap();
    let out = ok(&[
        "segment",
        "import",
        path.to_str().unwrap(),
        "--base",
        wide_path.to_str().unwrap(),
    ]);
    assert!(out.contains("1 not rehashed"), "{out}");
    assert!(
        out.contains("rehashed by the image's code: 0 of 1") && out.contains("1 failed"),
        "{out}"
    );
    assert!(
        out.contains("does not understand #rehash (in the run's first send)"),
        "{out}"
    );
    assert!(!out.contains("not run"), "{out}");
}

#[test]
fn smalltalk_runs_in_tenants_of_a_real_image() {
    let mini = image("mini.image");
    let mini = mini.to_str().unwrap();
    let out = ok(&["run", mini, "--eval", "3 + 4", "--tenants", "3"]);
    assert_eq!(out.lines().next(), Some("7"), "{out}");
    assert!(
        out.contains("3 tenant(s)") && out.contains("3 agreeing"),
        "{out}"
    );
    let out = ok(&[
        "run",
        mini,
        "--eval",
        "(1 to: 10) inject: 0 into: [:a :b | a + b]",
    ]);
    assert_eq!(out.lines().next(), Some("55"), "{out}");
    // A message nobody understands, and a loop that never ends: typed errors, no hang.
    let dnu = cowheap(&["run", mini, "--eval", "nil foo"]);
    assert!(!dnu.status.success());
    let err = String::from_utf8_lossy(&dnu.stderr);
    assert!(
        err.contains("UndefinedObject") && err.contains("foo"),
        "{err}"
    );
    // The error once, on standard error; the counts still on standard output.
    let out = String::from_utf8_lossy(&dnu.stdout);
    assert!(!out.contains("foo") && out.contains("1 tenant(s)"), "{out}");
    let runaway = cowheap(&[
        "run",
        mini,
        "--eval",
        "[true] whileTrue",
        "--budget",
        "100000",
    ]);
    assert!(!runaway.status.success());
    let err = String::from_utf8_lossy(&runaway.stderr);
    assert!(err.contains("budget"), "{err}");
    // An image with no compiler: a plain send.
    let boot = image("bootstrapped.image");
    let out = ok(&[
        "run",
        boot.to_str().unwrap(),
        "--eval",
        "20",
        "--send",
        "benchFib",
    ]);
    assert_eq!(out.lines().next(), Some("21891"), "{out}");
    // A 32-bit Spur image: a send answers, and one it lacks names selector and class.
    let spur = image("headless-spur32.image");
    let spur = spur.to_str().unwrap();
    let out = ok(&["run", spur, "--eval", "1234567", "--send", "negated"]);
    assert_eq!(out.lines().next(), Some("-1234567"), "{out}");
    let dnu = cowheap(&["run", spur, "--eval", "20", "--send", "factorial"]);
    assert!(!dnu.status.success());
    let err = String::from_utf8_lossy(&dnu.stderr);
    assert!(
        err.contains("SmallInteger does not understand #factorial"),
        "{err}"
    );
}

#[test]
fn a_tenant_moves_between_two_nodes_through_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mini = image("mini.image");
    ok(&["store", "init", store]);
    let fp = ok(&["store", "put-base", store, mini.to_str().unwrap()]);
    let fp = fp.trim();
    assert_eq!(fp.len(), 64, "{fp}");
    ok(&["store", "create", store, "alice", fp]);
    let node = |name: &'static str, dir: &'static str| {
        move |cmd: &'static str| {
            vec![
                "store",
                cmd,
                "STORE",
                "alice",
                "--node",
                name,
                "--node-dir",
                dir,
            ]
        }
    };
    let run = |args: Vec<&str>| {
        let args: Vec<&str> = args
            .into_iter()
            .map(|s| match s {
                "STORE" => store,
                "A" => a,
                "B" => b,
                s => s,
            })
            .collect();
        cowheap(&args)
    };
    let on_a = node("a", "A");
    let on_b = node("b", "B");
    assert!(run(on_a("resume")).status.success());
    let mut mark = on_a("mark");
    mark.push("42");
    assert!(run(mark).status.success());
    // Held by a: b is refused, and changes nothing.
    let refused = run(on_b("resume"));
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("held by node a"), "{why}");
    // The lease's end as a time a person reads (`... until 2026-12-07T02:10:01.659Z`).
    let until = why.split(" until ").nth(1).expect("the lease's end").trim();
    let until = until.lines().next().unwrap_or_default();
    assert!(
        until.len() == 24 && until.as_bytes()[10] == b'T' && until.ends_with('Z'),
        "{until}"
    );
    assert!(run(on_a("suspend")).status.success());
    let moved = run(on_b("resume"));
    assert!(moved.status.success());
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(
        said.contains("epoch 2") && said.contains("mark 42"),
        "{said}"
    );
    // a no longer holds the tenant: its suspend is refused.
    assert!(!run(on_a("suspend")).status.success());
    let ls = ok(&["store", "ls", store]);
    assert!(
        ls.contains("tenant alice") && ls.contains("owner b"),
        "{ls}"
    );
    // b commits alice's change as version 1 of the base, which the store then lists; a second
    // commit with nothing changed makes no version.
    let committed = run(on_b("commit"));
    let said = String::from_utf8_lossy(&committed.stdout);
    assert!(
        committed.status.success() && said.contains("version 1"),
        "{said}{}",
        String::from_utf8_lossy(&committed.stderr)
    );
    let versions = ok(&["store", "versions", store, fp]);
    assert!(versions.contains("version 1 layer"), "{versions}");
    assert!(!versions.contains("version 2"), "{versions}");
    let again = run(on_b("commit"));
    assert!(again.status.success());
    let versions = ok(&["store", "versions", store, fp]);
    assert!(!versions.contains("version 2"), "{versions}");
}

/// A tenant count past what a command can fork is an argument error (exit 2, a message
/// naming the range), not the allocator ending the process (exit 134), for every command
/// that forks tenants; so is none at all.
#[test]
fn huge_tenant_counts_are_an_error_not_an_abort() {
    let mini = image("mini.image");
    let mini = mini.to_str().unwrap();
    for args in [
        &["demo", "--tenants", "100000000000", "--objects", "1000"][..],
        &["demo", "--tenants", "0", "--objects", "1000"][..],
        &["run", mini, "--eval", "3", "--tenants", "100000000000"][..],
        &[
            "bench",
            "--objects",
            "1000",
            "--tenants",
            "100000000000",
            "--approaches",
            "cowheap",
        ][..],
    ] {
        let out = cowheap(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("tenants: from 1 to"), "{args:?}: {err}");
    }
}

/// `import` and `export` read one file and write another: an output that is the input (the
/// same path, another spelling of it, a link to it) is an argument error (exit 2) before
/// anything is read, and the input stays as it was. An output that is another existing file
/// is replaced, as `cp` does.
#[test]
fn an_output_that_is_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (m, b) = (at("m.image"), at("base.cow"));
    std::fs::copy(image("mini.image"), &m).unwrap();
    ok(&["import", &m, "-o", &b]);
    let (image_bytes, base_bytes) = (std::fs::read(&m).unwrap(), std::fs::read(&b).unwrap());
    let dotted = format!("{}/./base.cow", dir.path().display());
    let mut refused = vec![
        vec!["import", &m, "-o", &m],
        vec!["export", &b, "-o", &b],
        vec!["export", &b, "-o", &dotted],
        vec!["export", &m, "-o", &m],
    ];
    let (link, hard) = (at("link"), at("hard"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&b, &link).unwrap();
        std::fs::hard_link(&m, &hard).unwrap();
        refused.push(vec!["export", &b, "-o", &link]);
        refused.push(vec!["import", &m, "-o", &hard]);
    }
    for args in refused {
        let out = cowheap(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("would replace the input"), "{args:?}: {err}");
        assert!(std::fs::read(&m).unwrap() == image_bytes, "{args:?}");
        assert!(std::fs::read(&b).unwrap() == base_bytes, "{args:?}");
    }
    let other = at("other.image");
    std::fs::write(&other, b"an older file").unwrap();
    ok(&["export", &b, "-o", &other]);
    assert!(std::fs::read(&other).unwrap() == image_bytes);
}

/// A bench small enough for a test: one comparator, a few tenants on a small base.
const SMALL_BENCH: [(&str, &str); 8] = [
    ("--objects", "1000"),
    ("--tenants", "4"),
    ("--ops", "10"),
    ("--approaches", "cowheap"),
    ("--write-counts", "0,10"),
    ("--repeats", "1"),
    ("--sweep-samples", "1"),
    ("--threads", "2"),
];

/// The arguments of `cowheap bench` with `more` and the options of [`SMALL_BENCH`] that
/// `more` does not give.
fn small_bench_args<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["bench"];
    for (option, value) in SMALL_BENCH {
        if !more.contains(&option) {
            args.extend([option, value]);
        }
    }
    args.extend(more);
    args
}

/// `cowheap bench` with `more` and the rest of [`SMALL_BENCH`].
fn small_bench(more: &[&str]) -> Output {
    cowheap(&small_bench_args(more))
}

/// The bench's `--json` and `--svg` are checked before the run: one the other, either the
/// `--base` it reads (or a link to it), one in a directory that does not exist, or one that
/// is a directory (or a link to one) is an argument error (exit 2) and nothing is written. They are written whole or not at all:
/// a chart that cannot be written (past the file size limit) leaves the old one as it was
/// and no temporary file behind.
#[test]
fn bench_outputs_are_checked_before_the_run_and_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let base = at("base.cow");
    ok(&["image", "new", "-o", &base, "--objects", "1000"]);
    let base_bytes = std::fs::read(&base).unwrap();
    let (out, dotted) = (at("out"), format!("{}/./out", dir.path().display()));
    let missing = at("no/such/dir/report.json");
    let folder = at("reports");
    std::fs::create_dir(&folder).unwrap();
    let mut refused = vec![
        (vec!["--base", &base, "--json", &base], "is the base"),
        (vec!["--base", &base, "--svg", &base], "is the base"),
        (vec!["--json", &out, "--svg", &dotted], "is the JSON report"),
        (vec!["--json", &missing], "does not exist"),
        (vec!["--svg", &missing], "does not exist"),
        (vec!["--json", &folder], "is a directory"),
    ];
    let (link, folder_link) = (at("link"), at("folder-link"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&base, &link).unwrap();
        std::os::unix::fs::symlink(&folder, &folder_link).unwrap();
        refused.push((vec!["--base", &base, "--svg", &link], "is the base"));
        refused.push((vec!["--base", &link, "--json", &base], "is the base"));
        refused.push((vec!["--svg", &folder_link], "is a directory"));
    }
    for (args, says) in refused {
        let run = small_bench(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(std::fs::read(&base).unwrap() == base_bytes, "{args:?}");
        assert!(!std::path::Path::new(&out).exists(), "{args:?}");
    }
    // Written whole: the JSON fits under the limit, the chart does not.
    #[cfg(unix)]
    {
        let (chart, json) = (at("chart.svg"), at("report.json"));
        std::fs::write(&chart, "the old chart").unwrap();
        let limited = Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 8 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_cowheap"))
            .args(small_bench_args(&["--json", &json, "--svg", &chart]))
            .output()
            .unwrap();
        assert!(!limited.status.success());
        let err = String::from_utf8_lossy(&limited.stderr);
        assert!(err.contains("chart") && !err.contains("panicked"), "{err}");
        assert_eq!(std::fs::read_to_string(&chart).unwrap(), "the old chart");
        assert!(
            std::fs::read_to_string(&json)
                .unwrap()
                .contains("\"approaches\"")
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // Both written, next to each other.
    let (chart, json) = (at("fine.svg"), at("fine.json"));
    let run = small_bench(&["--json", &json, "--svg", &chart]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    assert!(
        std::fs::read_to_string(&json)
            .unwrap()
            .contains("\"approaches\"")
    );
}

/// Bench options `Config::validate` refuses are argument errors (exit 2), with its message.
#[test]
fn bench_options_out_of_range_are_argument_errors() {
    for (args, says) in [
        (&["--write-share", "2"][..], "--write-share"),
        (&["--write-share", "NaN"][..], "--write-share"),
        (&["--threads", "0"][..], "--threads"),
    ] {
        let run = small_bench(args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// Counts that size allocations or loops have ranges: a huge one is an argument error
/// (exit 2, before anything runs), not the allocator ending the process or a count that
/// wraps.
#[test]
fn huge_counts_are_argument_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.cow");
    let file = file.to_str().unwrap();
    let huge = "100000000000";
    let most = "18446744073709551615";
    let bench = small_bench_args;
    for args in [
        vec!["image", "new", "-o", file, "--objects", huge],
        vec!["demo", "--objects", huge, "--tenants", "1"],
        vec![
            "demo",
            "--objects",
            "1000",
            "--tenants",
            "1",
            "--allocs",
            huge,
        ],
        bench(&["--objects", huge]),
        bench(&["--ops", huge]),
        bench(&["--repeats", most]),
        bench(&["--sweep-samples", most]),
    ] {
        let out = cowheap(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("invalid value") && err.contains(": from "),
            "{args:?}: {err}"
        );
    }
    assert!(!std::path::Path::new(file).exists());
}

/// `--threads` has a range, for the bench and for `run`; a worker thread the system refuses
/// is the bench's error (exit 1, a message), not a panic. `RUST_MIN_STACK` asks for stacks
/// no system gives.
#[test]
fn bench_threads_are_bounded_and_a_refused_thread_is_an_error() {
    let run = small_bench(&["--threads", "100000"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--threads") && err.contains(": from "),
        "{err}"
    );
    let mini = image("mini.image");
    let run = cowheap(&[
        "run",
        mini.to_str().unwrap(),
        "--eval",
        "3",
        "--threads",
        "100000",
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--threads") && err.contains(": from "),
        "{err}"
    );
    #[cfg(unix)]
    {
        let refused = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 4000000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_cowheap"))
            .args(small_bench_args(&[]))
            .env("RUST_MIN_STACK", "1099511627776")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("Error:") && err.contains("worker thread") && !err.contains("panicked"),
            "{err}"
        );
    }
}

/// With no deep copy or no fork() child to measure, the bench would report figures it never
/// measured: `--deep-copies 0` with the deep copies, and `--forks 0` with fork(), are
/// argument errors; each is fine when its comparator does not run. `--active 0`, which no
/// comparator could measure, is one too.
#[test]
fn a_comparator_with_no_sample_is_an_argument_error() {
    for (args, says) in [
        (
            &["--approaches", "cowheap,deep-copy", "--deep-copies", "0"][..],
            "--deep-copies",
        ),
        (
            &["--approaches", "cowheap,fork", "--forks", "0"][..],
            "--forks",
        ),
        (&["--active", "0"][..], "--active"),
    ] {
        let run = small_bench(args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let run = small_bench(&["--deep-copies", "0", "--forks", "0"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A mark is a small integer: one past 63 bits either way is an argument error (exit 2),
/// not a panic; a negative one is a mark like any other.
#[test]
fn store_marks_are_small_integers() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (store, a, b) = (at("store"), at("a"), at("b"));
    ok(&["store", "init", &store]);
    let fp = ok(&[
        "store",
        "put-base",
        &store,
        image("mini.image").to_str().unwrap(),
    ]);
    let fp = fp.trim();
    ok(&["store", "create", &store, "alice", fp]);
    let on = |cmd: &'static str, node: &'static str, dir: &str, more: &[&str]| {
        let args = [
            "store",
            cmd,
            store.as_str(),
            "alice",
            "--node",
            node,
            "--node-dir",
            dir,
        ];
        cowheap(&[&args[..], more].concat())
    };
    assert!(on("resume", "a", &a, &[]).status.success());
    for value in [
        "4611686018427387904",
        "-4611686018427387905",
        "9223372036854775807",
    ] {
        let out = on("mark", "a", &a, &[value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {err}");
        assert!(
            err.contains("invalid value") && !err.contains("panicked"),
            "{value}: {err}"
        );
    }
    let out = on("mark", "a", &a, &["-4611686018427387904"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(on("suspend", "a", &a, &[]).status.success());
    let moved = on("resume", "b", &b, &[]);
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(said.contains("mark -4611686018427387904"), "{said}");
}

/// `store add-principal` takes the new principal's secret as an argument of its own, apart
/// from the acting principal's `--secret`: both may be given, and the store then judges
/// the principal.
#[test]
fn a_principals_secret_is_not_the_acting_principals() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    ok(&["store", "init", store]);
    ok(&["store", "add-principal", store, "bob", "bobs-secret"]);
    let ls = ok(&[
        "store",
        "ls",
        store,
        "--principal",
        "bob",
        "--secret",
        "bobs-secret",
    ]);
    assert!(!ls.contains("panicked"), "{ls}");
    let args = ["store", "add-principal", store, "carol", "carols-secret"];
    let out = cowheap(
        &[
            &args[..],
            &["--principal", "bob", "--secret", "bobs-secret"],
        ]
        .concat(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // Acting as bob, not as the operator: the store refuses.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("principal bob may not add principal carol"),
        "{err}"
    );
}

/// A secret with no principal would be ignored and the command run as the operator: it is
/// an argument error.
#[test]
fn a_secret_needs_a_principal() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    ok(&["store", "init", store]);
    let out = cowheap(&["store", "ls", store, "--secret", "s3cret"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--principal"), "{err}");
}

/// A run whose options multiply past the machine's memory (ten thousand working tenants of
/// ten million operations each, every write a distinct object of a million-object base: some
/// ten terabytes) is refused before the base is built, with the estimate and what to lower,
/// rather than being killed by the system hours in. `--no-memory-check` runs a small one.
#[test]
fn a_run_past_the_machines_memory_is_refused_before_it_starts() {
    let out = small_bench(&[
        "--objects",
        "1000000",
        "--tenants",
        "10000",
        "--active",
        "10000",
        "--ops",
        "10000000",
        "--approaches",
        "cowheap,rpds",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("MiB at its peak") && err.contains("--no-memory-check"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "a refused run printed a report");
    let out = small_bench(&["--no-memory-check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
