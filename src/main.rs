//! The `cowheap` command.
//!
//! `cowheap` (or `cowheap bench`) runs the bench: one workload on cowheap tenants and on the
//! alternatives (a plain heap, deep copies, fork(), a persistent vector), reported side by
//! side. `cowheap demo` builds a Smalltalk-shaped base, forks many tenants from it, lets each
//! write and allocate in parallel, checks that every tenant sees only its own writes, and
//! reports what each holds privately.

use anyhow::{Context, Result, ensure};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use cowheap_bench::alloc::CountingAlloc;
use cowheap_bench::{self as bench, ApproachKind, BaseSource, SizeMix, Skew, WorkloadConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// `print!` that fails instead of panicking: writes to standard output and evaluates to
/// `anyhow::Result<()>`, the error of a write that fails (a full disk, a device gone), so
/// that `?` makes it the command's error (exit status 1) and not a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that fails instead of panicking, as [`out!`] does.
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod demo;
mod image_cmd;
mod paths;
mod store_cmd;

/// Counts every allocation, so the bench can report the bytes each tenant holds.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser)]
#[command(
    name = "cowheap",
    version,
    about = "A copy-on-write multi-tenant object heap",
    after_help = "With no command, runs `cowheap bench` with its defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Many tenants on one base, side by side with a plain heap, deep copies, fork() and rpds.
    Bench(Box<BenchArgs>),
    /// Many tenants on one base: fork, write, allocate, check isolation, report memory.
    Demo(DemoArgs),
    /// Make, inspect and verify cowheap image files.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Import a Squeak, Pharo or Cuis image as a cowheap image file.
    Import {
        /// The Smalltalk image (V3 or Spur, 32- or 64-bit, either byte order).
        image: PathBuf,
        /// The cowheap image file to write.
        #[arg(short, long, value_name = "BASE")]
        output: PathBuf,
    },
    /// Export a base (a cowheap image file or a Smalltalk image) as a Smalltalk image.
    Export {
        /// The base to export.
        base: PathBuf,
        /// The Smalltalk image to write.
        #[arg(short, long, value_name = "IMAGE")]
        output: PathBuf,
        /// `v3`, `spur32` or `spur64` [default: the format the base was imported from, in
        /// its version (6502, 6504 or 6505 for V3)].
        #[arg(long, value_parser = ["v3", "spur32", "spur64"])]
        format: Option<String>,
        /// Write a big-endian image [default: the byte order the base was imported from].
        #[arg(long, conflicts_with = "little_endian")]
        big_endian: bool,
        /// Write a little-endian image [default: the byte order the base was imported from].
        #[arg(long)]
        little_endian: bool,
    },
    /// Runs Smalltalk in tenants of a Squeak image (V3, or 32- or 64-bit Spur) with the
    /// image's own compiler: `cowheap run IMAGE --eval '3 + 4'`; or, with `--send`, sends a
    /// selector to an integer.
    Run(RunArgs),
    /// A store shared by nodes (a directory or PostgreSQL): bases, tenants, and nodes that
    /// resume, change and suspend them.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Image segments: Squeak ImageSegments, Etoys projects and cowheap segment files.
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// Internal: the single-threaded process the bench forks its fork() tenants from.
    #[cfg(unix)]
    #[command(name = "__fork-probe", hide = true)]
    ForkProbe,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Counts, sizes, fingerprint, roots and the class histogram of a cowheap image file
    /// (or of a Smalltalk image, imported on the fly).
    Info {
        /// The image.
        file: PathBuf,
    },
    /// Check every checksum and every object of a cowheap image file.
    Verify {
        /// The image file.
        file: PathBuf,
    },
    /// Write a synthetic Smalltalk-shaped base as a cowheap image file.
    New {
        /// The image file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Objects in the base, at most 100,000,000.
        #[arg(long, default_value_t = 1_000_000, value_parser = count_in("objects", 0, bench::MAX_OBJECTS))]
        objects: usize,
        /// Seed of the base.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Build even if building the base (about three times what it then holds) passes
        /// the memory available.
        #[arg(long)]
        no_memory_check: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The Squeak image: V3 (pre-closure 6502 or closure 6504/6505) or Spur, 32-bit (6521)
    /// or 64-bit (68021; tested on the headless image exported as 64-bit); not methods of the
    /// Sista bytecode set.
    image: PathBuf,
    /// The Smalltalk expression; the command prints its `printString`.
    #[arg(long, value_name = "EXPR")]
    eval: String,
    /// Tenants of the image, each running the expression (in parallel); the report gives
    /// bytecodes and sends per second and the private bytes each tenant holds.
    #[arg(long, default_value_t = 1, value_parser = count_in("tenants", 1, MAX_TENANTS))]
    tenants: usize,
    /// Most bytecodes each evaluation may run before it stops with an error.
    #[arg(long, default_value_t = 1_000_000_000)]
    budget: u64,
    /// Threads to run the tenants on, from 1 to 1,024 [default: the number of cores].
    #[arg(long, value_parser = count_in("threads", 1, bench::MAX_THREADS))]
    threads: Option<usize>,
    /// Instead of compiling the expression, send this unary selector to the integer it is
    /// (for an image without a compiler: `--eval 20 --send benchFib`).
    #[arg(long, value_name = "SELECTOR")]
    send: Option<String>,
}

#[derive(Subcommand)]
enum SegmentCommand {
    /// Objects, roots, out-pointers by kind and classes of a segment: an Etoys project
    /// (`.pr`), bare Squeak V3 segment words, or a cowheap segment file.
    Info {
        /// The segment or project file.
        file: PathBuf,
    },
    /// Binds a segment's out-pointers in a base by name, materialises its objects in a new
    /// tenant of that base, and reports what bound and what did not. Hashed collections
    /// the model of the image's `hash` cannot rehash are then sent `rehash`, run by the
    /// interpreter, when the base is an image it runs (32-bit Squeak V3, 32- or 64-bit Spur): the
    /// image's own code, as Squeak does on loading a segment.
    Import {
        /// The segment or project file.
        file: PathBuf,
        /// The base: a Squeak image or a cowheap image file.
        #[arg(long)]
        base: PathBuf,
        /// Bytecodes the image's `rehash` runs may take in all, over every collection (the
        /// segment's classes may bring their own `hash` methods: the file's code runs).
        #[arg(long, value_name = "BYTECODES", default_value_t = 10_000_000)]
        rehash_budget: u64,
        /// Private bytes those runs may allocate beyond what the import holds (the tenant's
        /// quota while they run).
        #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
        rehash_memory: u64,
        /// Do not run the image's `rehash` on the collections the model left.
        #[arg(long)]
        no_image_rehash: bool,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// A cowheap image file, or a Squeak, Pharo or Cuis image, to use as the base instead of
    /// the synthetic one.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
    /// Objects in the synthetic base, at most 100,000,000.
    #[arg(long, default_value_t = 1_000_000, value_parser = count_in("objects", 0, bench::MAX_OBJECTS))]
    objects: usize,
    /// Tenants forked from the base.
    #[arg(long, default_value_t = 1_000, value_parser = count_in("tenants", 1, MAX_TENANTS))]
    tenants: usize,
    /// Tenants that run the workload (the first ones), at least one; the others stay idle.
    /// [default: all tenants, at most 10,000]
    #[arg(long)]
    active: Option<usize>,
    /// Worker threads, from 1 to 1,024. [default: the number of cores, at most 1,024]
    #[arg(long, value_parser = count_in("threads", 1, bench::MAX_THREADS))]
    threads: Option<usize>,
    /// Operations (reads and writes) per working tenant, at most 10,000,000.
    #[arg(long, default_value_t = 1_000, value_parser = count_in("operations", 0, bench::MAX_OPS))]
    ops: usize,
    /// Share of the operations that are writes, from 0 to 1.
    #[arg(long, default_value_t = 0.1)]
    write_share: f64,
    /// Access skew over the objects: `uniform`, `zipf` (exponent 0.99) or `zipf:S`.
    #[arg(long, default_value = "uniform")]
    skew: Skew,
    /// Objects touched: `image` (all with pointer slots), `small` (1-8 slots), `large` (16+).
    #[arg(long, default_value = "image")]
    size_mix: SizeMix,
    /// Seed of the synthetic base and of the workload: same seed, same work.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Writes per tenant at which to measure private bytes (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,10,100,1000,10000,100000"
    )]
    write_counts: Vec<usize>,
    /// Fresh tenants measured at each of those write counts, from 1 to 1,000.
    #[arg(long, default_value_t = 2, value_parser = count_in("samples", 1, bench::MAX_SWEEP_SAMPLES))]
    sweep_samples: usize,
    /// Most deep copies of the base to make (each is the size of the base); at least one
    /// when the deep copies run.
    #[arg(long, default_value_t = 4)]
    deep_copies: usize,
    /// Most fork() children to run the workload in (one at a time); at least one when
    /// fork() runs.
    #[arg(long, default_value_t = 16)]
    forks: usize,
    /// Rounds of each read pass, every in-process comparator in turn; the fastest of each
    /// counts. From 1 to 1,000.
    #[arg(long, default_value_t = 3, value_parser = count_in("rounds", 1, bench::MAX_READ_REPEATS))]
    repeats: usize,
    /// Comparators to run (comma-separated): cowheap, plain, deep-copy, fork, rpds.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cowheap,plain,deep-copy,fork,rpds"
    )]
    approaches: Vec<ApproachKind>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw private bytes per tenant against writes per tenant as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Run even if the run's estimated peak memory passes what the machine has available
    /// (the estimate counts every write as a distinct object, so it errs high for a skewed
    /// workload).
    #[arg(long)]
    no_memory_check: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs::parse_from(["bench"])
    }
}

/// A bare `BenchArgs` parser, for the defaults.
#[derive(Parser)]
struct BenchOnly {
    #[command(flatten)]
    args: BenchArgs,
}

impl BenchArgs {
    fn parse_from<I: IntoIterator<Item = &'static str>>(args: I) -> BenchArgs {
        BenchOnly::parse_from(args).args
    }

    fn config(&self) -> Result<bench::Config> {
        let threads = match self.threads {
            Some(t) => t,
            None => std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(bench::MAX_THREADS),
        };
        Ok(bench::Config {
            base: match &self.base {
                Some(path) => BaseSource::File(path.clone()),
                None => BaseSource::Synthetic {
                    objects: self.objects,
                    seed: self.seed,
                },
            },
            workload: WorkloadConfig {
                tenants: self.tenants,
                threads,
                ops: self.ops,
                write_share: self.write_share,
                skew: self.skew,
                size_mix: self.size_mix,
                seed: self.seed,
            },
            active: self.active,
            write_counts: self.write_counts.clone(),
            sweep_samples: self.sweep_samples,
            deep_copy_sample: self.deep_copies,
            fork_sample: self.forks,
            read_repeats: self.repeats,
            approaches: self.approaches.clone(),
            probe_exe: Some(
                std::env::current_exe().context("finding the cowheap executable for fork()")?,
            ),
            memory_check: !self.no_memory_check,
        })
    }
}

#[derive(Parser)]
struct DemoArgs {
    /// A base to use instead of the synthetic one: a cowheap image file, or a Squeak, Pharo
    /// or Cuis image (e.g. ../shared/images/Scratch-1.4.0.6.image).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Objects in the synthetic base, at most 100,000,000.
    #[arg(long, default_value_t = 200_000, value_parser = count_in("objects", 0, bench::MAX_OBJECTS))]
    objects: usize,
    /// Tenants to fork.
    #[arg(long, default_value_t = 1_000, value_parser = count_in("tenants", 1, MAX_TENANTS))]
    tenants: usize,
    /// Base objects each tenant writes (copies on first write), at least 1 (the demo checks
    /// that each tenant sees its own writes); past the objects the demo finds to write, it
    /// writes all of them and says how many.
    #[arg(long, default_value_t = 20, value_parser = count_in("writes", 1, bench::MAX_OBJECTS))]
    writes: usize,
    /// Objects each tenant allocates, at most 1,000,000.
    #[arg(long, default_value_t = 50, value_parser = count_in("objects", 0, MAX_DEMO_ALLOCS))]
    allocs: usize,
    /// Seed of the synthetic base.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run even if the demo's estimated peak memory (every tenant's writes and allocations,
    /// counted high) passes what the machine has available.
    #[arg(long)]
    no_memory_check: bool,
}

fn main() -> ExitCode {
    restore_sigpipe();
    let done = command(Cli::parse()).and_then(|()| {
        std::io::stdout()
            .flush()
            .context("writing to standard output")
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Writes `args` to standard output; the error of a write that fails, rather than the panic
/// `print!` would make of it. What [`out!`] and [`outln!`] call.
fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<()> {
    std::io::stdout()
        .write_fmt(args)
        .context("writing to standard output")
}

/// Prints a command's error on standard error as `Error: ...`, then its causes, one a line:
/// anyhow's own layout, without the backtrace anyhow adds when the environment asks for
/// backtraces (`RUST_BACKTRACE`, which asks for them of panics): an error here is bad input
/// or a refused operation, said in words, not a bug to debug. A standard error that cannot
/// be written is left at that (the exit status still says the command failed).
fn report_error(e: &anyhow::Error) {
    let mut text = format!("Error: {e}");
    let causes: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        text.push_str("\n\nCaused by:");
        for (i, cause) in causes.iter().enumerate() {
            if causes.len() == 1 {
                text.push_str(&format!("\n    {cause}"));
            } else {
                text.push_str(&format!("\n    {i}: {cause}"));
            }
        }
    }
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Runs the command `cli` names.
fn command(cli: Cli) -> Result<()> {
    match cli.command {
        // Before anything else, and on this thread alone: the probe forks.
        #[cfg(unix)]
        Some(Command::ForkProbe) => {
            bench::fork::probe_main(std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(())
        }
        Some(Command::Bench(args)) => run_bench(&args),
        Some(Command::Demo(args)) => demo::demo(&args),
        Some(Command::Image(ImageCommand::Info { file })) => image_cmd::info(&file),
        Some(Command::Image(ImageCommand::Verify { file })) => image_cmd::verify(&file),
        Some(Command::Image(ImageCommand::New {
            output,
            objects,
            seed,
            no_memory_check,
        })) => {
            check_output(&["image", "new"], &output);
            if !no_memory_check {
                check_synthetic_memory(&["image", "new"], objects);
            }
            image_cmd::new(&output, objects, seed)
        }
        Some(Command::Import { image, output }) => {
            if let Err(e) =
                paths::refuse_input_as_output(&output, "the output", &image, "the image")
            {
                argument_error(&["import"], ErrorKind::ArgumentConflict, e).exit();
            }
            check_output(&["import"], &output);
            image_cmd::import(&image, &output)
        }
        Some(Command::Export {
            base,
            output,
            format,
            big_endian,
            little_endian,
        }) => {
            if let Err(e) = paths::refuse_input_as_output(&output, "the output", &base, "the base")
            {
                argument_error(&["export"], ErrorKind::ArgumentConflict, e).exit();
            }
            check_output(&["export"], &output);
            let order = match (big_endian, little_endian) {
                (true, _) => Some(cowheap::squeak::ByteOrder::Big),
                (_, true) => Some(cowheap::squeak::ByteOrder::Little),
                _ => None,
            };
            image_cmd::export(&base, &output, format.as_deref(), order)
        }
        Some(Command::Run(args)) => {
            let options = cowheap_vm::run::RunOptions {
                tenants: args.tenants,
                budget: args.budget,
                threads: args.threads,
                selector: args.send,
            };
            let report = cowheap_vm::run::run_image(&args.image, &args.eval, &options)?;
            let (n, agreeing) = (report.tenants.len(), report.agreeing());
            match report.result() {
                Some(Ok(_)) => {
                    outln!("{report}")?;
                    if agreeing == n {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!(
                            "{} of {n} tenants answered otherwise than the first",
                            n - agreeing
                        ))
                    }
                }
                // The error once, on standard error; the counts on standard output.
                Some(Err(e)) => {
                    outln!("{}", report.summary())?;
                    Err(anyhow::Error::new(e.clone()).context("running the expression"))
                }
                None => Err(anyhow::anyhow!("no tenant ran the expression")),
            }
        }
        Some(Command::Store(command)) => store_cmd::run(command),
        Some(Command::Segment(SegmentCommand::Info { file })) => {
            out!("{}", cowheap_segment::info::info(&file)?)?;
            Ok(())
        }
        Some(Command::Segment(SegmentCommand::Import {
            file,
            base,
            rehash_budget,
            rehash_memory,
            no_image_rehash,
        })) => {
            let done = cowheap_segment::info::import_keeping(&file, &base)?;
            out!("{}", done.outcome)?;
            if !no_image_rehash {
                rehash_by_image(done, rehash_budget, rehash_memory)?;
            }
            Ok(())
        }
        None => run_bench(&BenchArgs::default()),
    }
}

/// Sends `rehash` to the collections an import left for the image, through the interpreter,
/// and prints what it did; on a base the interpreter does not run (no image version, one it
/// does not know, the Sista bytecode set), says so and why.
/// The runs share `budget` bytecodes (a collection met when it is spent fails at once) and
/// may allocate `memory` private bytes beyond what the import holds, so a file whose
/// classes bring their own methods cannot make the command run or grow without end.
fn rehash_by_image(
    done: cowheap_segment::info::ImportedTenant,
    budget: u64,
    memory: u64,
) -> Result<()> {
    let cowheap_segment::info::ImportedTenant {
        tenant: mut t,
        left_for_image,
        ..
    } = done;
    if left_for_image.is_empty() {
        outln!("rehashed by the image's code: none left for it")?;
        return Ok(());
    }
    let heap = t.base().heap();
    if heap.root("image.version").is_none() {
        outln!(
            "rehashed by the image's code: not run ({} left; the base names no image version)",
            left_for_image.len()
        )?;
        return Ok(());
    }
    let mut vm = match cowheap_vm::Vm::new(&t) {
        Ok(vm) => vm,
        Err(
            why @ (cowheap_vm::VmError::NotAnImage(_)
            | cowheap_vm::VmError::UnsupportedImage { .. }),
        ) => {
            outln!(
                "rehashed by the image's code: not run ({} left; {why})",
                left_for_image.len()
            )?;
            return Ok(());
        }
        Err(e) => return Err(anyhow::Error::new(e).context("the interpreter on the base")),
    };
    let symbols = cowheap_vm::Symbols::from_base(heap);
    t.set_quota(Some(t.stats().private_bytes.saturating_add(memory)));
    let mut report = cowheap_vm::ImageRehash::default();
    for (i, &c) in left_for_image.iter().enumerate() {
        let left = budget.saturating_sub(report.bytecodes);
        // What refuses even the run's bookkeeping (the quota) is this collection's failure.
        let one = match vm.rehash_by_image(&mut t, &symbols, &[c], left) {
            Ok(one) => one,
            Err(error) => cowheap_vm::ImageRehash {
                failed: vec![cowheap_vm::RehashFailure {
                    index: 0,
                    class: None,
                    error,
                }],
                ..Default::default()
            },
        };
        report.bytecodes += one.bytecodes;
        report.rehashed.extend(one.rehashed.iter().map(|_| i));
        report.failed.extend(one.failed.into_iter().map(|mut f| {
            f.index = i;
            f
        }));
    }
    out!("{report}")?;
    Ok(())
}

/// An argument error of the subcommand `path` names (`["image", "new"]`), of `kind`,
/// reported as clap reports its own: the message and the subcommand's usage on standard
/// error, exit status 2.
fn argument_error(path: &[&str], kind: ErrorKind, message: impl std::fmt::Display) -> clap::Error {
    let mut cmd = Cli::command();
    let mut named = vec![cmd.get_name().to_owned()];
    for name in path {
        match cmd.find_subcommand(name) {
            Some(sub) => {
                named.push(sub.get_name().to_owned());
                cmd = sub.clone();
            }
            None => break,
        }
    }
    cmd.bin_name(named.join(" ")).error(kind, message)
}

/// Ends the process with an argument error of the subcommand `path` names (exit 2) if the
/// file its `--output` names cannot be written whole ([`paths::check_outputs`]: its
/// directory missing, a directory or other file that is no regular file, a path ending in
/// a separator), before the command reads or builds anything.
fn check_output(path: &[&str], output: &std::path::Path) {
    if let Err(e) = paths::check_outputs(&[("--output", "the output", output)], None) {
        argument_error(path, ErrorKind::ValueValidation, e).exit();
    }
}

/// Ends the process with an argument error of the subcommand `path` names (exit 2) if
/// building a synthetic base of `objects` objects passes the memory available to the
/// process ([`bench::proc_status::available_memory`]): the building takes about three times
/// what the base then holds ([`bench::SYNTHETIC_BYTES_PER_OBJECT`] an object), as the
/// bench's estimate counts it. A build past it would be ended by the allocator or the
/// system part-way; nothing is built or written.
fn check_synthetic_memory(path: &[&str], objects: usize) {
    let Some(available) = bench::proc_status::available_memory() else {
        return;
    };
    let needed = u64::try_from(objects)
        .unwrap_or(u64::MAX)
        .saturating_mul(bench::SYNTHETIC_BYTES_PER_OBJECT)
        .saturating_mul(3);
    if needed > available {
        let message = format!(
            "building a base of {objects} objects would hold about {} MiB at its peak, but {} \
             MiB are available: lower --objects, or pass --no-memory-check",
            needed >> 20,
            available >> 20
        );
        argument_error(path, ErrorKind::ValueValidation, message).exit();
    }
}

/// Lets a closed pipe end the process quietly (`cowheap image info X | head`), as command-line
/// tools do, instead of making every later `println!` panic.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with `SIG_DFL` only resets the disposition of SIGPIPE to the default;
    // it runs first thing in `main`, before any other thread exists, and installs no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A progress bar on the terminal, or nothing when the output is not one.
struct Bar(ProgressBar);

impl bench::Progress for Bar {
    fn stage(&self, what: &str, steps: u64) {
        self.0.set_position(0);
        self.0.set_length(steps);
        self.0.set_message(what.to_owned());
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }
}

fn run_bench(args: &BenchArgs) -> Result<()> {
    let outputs: Vec<paths::Output<'_>> = [
        ("--json", "the JSON report", &args.json),
        ("--svg", "the chart", &args.svg),
    ]
    .into_iter()
    .filter_map(|(option, what, path)| Some((option, what, path.as_deref()?)))
    .collect();
    let base = args.base.as_deref().map(|b| ("the base", b));
    if let Err(e) = paths::check_outputs(&outputs, base) {
        argument_error(&["bench"], ErrorKind::ValueValidation, e).exit();
    }
    let config = args.config()?;
    // An option out of range is an argument error, as clap's own are.
    match config.validate() {
        Ok(()) => {}
        Err(e @ bench::Error::BadOption { .. }) => {
            argument_error(&["bench"], ErrorKind::ValueValidation, e).exit()
        }
        Err(e) => return Err(e.into()),
    }
    let bar = if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:<44} [{bar:30}] {pos}/{len} {elapsed}")
                .context("the progress bar's template")?
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let bar = Bar(bar);
    let report = bench::run(&config, &bar);
    bar.0.finish_and_clear();
    let report = report?;
    outln!("cowheap bench: many tenants on one base, side by side with the alternatives")?;
    outln!()?;
    out!("{}", report.table())?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        outln!("JSON report: {}", path.display())?;
    }
    if let Some(path) = &args.svg {
        report.write_svg(path)?;
        outln!("chart: {}", path.display())?;
    }
    ensure!(
        report.fidelity.agree,
        "the comparators that isolate tenants read different values: a bug"
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Most tenants a command forks: ten million idle tenants hold a few GiB; past that a
/// count is refused as an argument, not by the allocator ending the process.
const MAX_TENANTS: usize = 10_000_000;

/// Most objects each demo tenant allocates (`--allocs`).
const MAX_DEMO_ALLOCS: usize = 1_000_000;

/// A parser of counts of `what` for clap: a whole number from `min` to `max`. A count past
/// what a command can hold or run is refused as an argument (exit 2, the range named), not
/// by the allocator ending the process.
fn count_in(
    what: &'static str,
    min: usize,
    max: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| {
        let n: usize = s
            .parse()
            .map_err(|e| format!("{s:?} is not a count of {what}: {e}"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} {what}: from {min} to {max}"))
        }
    }
}
