//! The `cowheap` command.
//!
//! `cowheap` (or `cowheap bench`) runs the bench: one workload on cowheap tenants and on the
//! alternatives (a plain heap, deep copies, fork(), a persistent vector), reported side by
//! side. `cowheap demo` builds a Smalltalk-shaped base, forks many tenants from it, lets each
//! write and allocate in parallel, checks that every tenant sees only its own writes, and
//! reports what each holds privately.

use anyhow::{Context, Result, ensure};
use clap::{Args, Parser, Subcommand};
use cowheap::{Base, Format, ObjectSize, Registry, Value, synth};
use cowheap_bench::alloc::CountingAlloc;
use cowheap_bench::{self as bench, ApproachKind, BaseSource, SizeMix, Skew, WorkloadConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

mod image_cmd;

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
        /// `v3`, `spur32` or `spur64` [default: the format the base was imported from].
        #[arg(long)]
        format: Option<String>,
        /// Write a big-endian image.
        #[arg(long)]
        big_endian: bool,
    },
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
        /// Objects in the base.
        #[arg(long, default_value_t = 1_000_000)]
        objects: usize,
        /// Seed of the base.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// A cowheap image file, or a Squeak, Pharo or Cuis image, to use as the base instead of
    /// the synthetic one.
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,
    /// Objects in the synthetic base.
    #[arg(long, default_value_t = 1_000_000)]
    objects: usize,
    /// Tenants forked from the base.
    #[arg(long, default_value_t = 1_000)]
    tenants: usize,
    /// Tenants that run the workload (the first ones); the others stay idle.
    /// [default: all tenants, at most 10,000]
    #[arg(long)]
    active: Option<usize>,
    /// Worker threads. [default: the number of cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Operations (reads and writes) per working tenant.
    #[arg(long, default_value_t = 1_000)]
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
    /// Fresh tenants measured at each of those write counts.
    #[arg(long, default_value_t = 2)]
    sweep_samples: usize,
    /// Most deep copies of the base to make (each is the size of the base).
    #[arg(long, default_value_t = 4)]
    deep_copies: usize,
    /// Most fork() children to run the workload in (one at a time).
    #[arg(long, default_value_t = 16)]
    forks: usize,
    /// Times each read pass runs; the fastest counts.
    #[arg(long, default_value_t = 3)]
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
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
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
        })
    }
}

#[derive(Parser)]
struct DemoArgs {
    /// A base to use instead of the synthetic one: a cowheap image file, or a Squeak, Pharo
    /// or Cuis image (e.g. ../shared/images/Scratch-1.4.0.6.image).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Objects in the synthetic base.
    #[arg(long, default_value_t = 200_000)]
    objects: usize,
    /// Tenants to fork.
    #[arg(long, default_value_t = 1_000)]
    tenants: usize,
    /// Base objects each tenant writes (copies on first write).
    #[arg(long, default_value_t = 20)]
    writes: usize,
    /// Objects each tenant allocates.
    #[arg(long, default_value_t = 50)]
    allocs: usize,
    /// Seed of the synthetic base.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<()> {
    restore_sigpipe();
    match Cli::parse().command {
        // Before anything else, and on this thread alone: the probe forks.
        #[cfg(unix)]
        Some(Command::ForkProbe) => {
            bench::fork::probe_main(std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(())
        }
        Some(Command::Bench(args)) => run_bench(&args),
        Some(Command::Demo(args)) => demo(&args),
        Some(Command::Image(ImageCommand::Info { file })) => image_cmd::info(&file),
        Some(Command::Image(ImageCommand::Verify { file })) => image_cmd::verify(&file),
        Some(Command::Image(ImageCommand::New {
            output,
            objects,
            seed,
        })) => image_cmd::new(&output, objects, seed),
        Some(Command::Import { image, output }) => image_cmd::import(&image, &output),
        Some(Command::Export {
            base,
            output,
            format,
            big_endian,
        }) => image_cmd::export(&base, &output, format.as_deref(), big_endian),
        None => run_bench(&BenchArgs::default()),
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
    let config = args.config()?;
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
    println!("cowheap bench: many tenants on one base, side by side with the alternatives");
    println!();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("JSON report: {}", path.display());
    }
    if let Some(path) = &args.svg {
        report.write_svg(path)?;
        println!("chart: {}", path.display());
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

/// The real objects each demo tenant writes: a global's association value, an element of an
/// Array (the globals' own array, or the special objects array), and an entry of a method
/// dictionary; read from the base by shape, so the demo runs on a synthetic base and on real
/// Squeak images alike.
struct DemoTargets {
    /// Associations (key, value) of globals.
    associations: Vec<Value>,
    /// An Array and the element index each tenant writes.
    array: (Value, usize),
    /// A method dictionary's array of methods (or keys) and the entry each tenant writes.
    method_entry: (Value, usize),
}

fn demo_targets(heap: &cowheap::BaseHeap) -> Result<DemoTargets> {
    let globals = heap
        .root("Smalltalk")
        .context("the base has no Smalltalk root")?;
    let slots = |v: Value| -> Result<usize> { Ok(heap.size(heap.index_of(v)?)?.slots) };
    let is_object_with = |v: Value, n: usize| v.is_object() && slots(v).is_ok_and(|s| s >= n);
    // A SystemDictionary is (tally, array of associations); a synthetic base's Smalltalk is
    // the array itself.
    let array = match heap.slot(globals, 1) {
        Ok(a) if is_object_with(a, 8) && slots(globals)? <= 4 => a,
        _ => globals,
    };
    let associations: Vec<Value> = (0..slots(array)?)
        .filter_map(|i| heap.slot(array, i).ok())
        .filter(|&a| is_object_with(a, 2))
        .collect();
    ensure!(
        !associations.is_empty(),
        "no associations under the Smalltalk root"
    );
    let specials = heap.roots().first().map(|r| Value::from(r.value));
    let array = match specials {
        Some(s) if is_object_with(s, 2) && s.word() != globals.word() => (s, slots(s)? - 1),
        _ => (array, 0),
    };
    // A class's slot 1 is its method dictionary, whose slot 1 is an array of its entries.
    let class = heap.class_word(heap.index_of(associations[0])?)?;
    let md = heap.slot(Value::from(class), 1)?;
    let entries = heap.slot(md, 1)?;
    ensure!(
        is_object_with(entries, 1),
        "no method dictionary array found"
    );
    Ok(DemoTargets {
        associations,
        array,
        method_entry: (entries, 0),
    })
}

fn demo(args: &DemoArgs) -> Result<()> {
    ensure!(args.tenants > 0, "--tenants must be at least 1");
    let t0 = Instant::now();
    let (heap, what) = match &args.image {
        Some(path) => image_cmd::load(path, cowheap::heap::Verification::Full)?,
        None => (
            synth::image(args.objects, args.seed),
            format!("synthetic Smalltalk-shaped image, seed {}", args.seed),
        ),
    };
    let base = Base::new(heap);
    let heap = base.heap();
    println!("cowheap demo: one base, many tenants");
    println!(
        "base: {} objects, {:.1} MiB, ready in {:.0} ms ({what})",
        heap.len(),
        mib(base.memory_bytes() as u64),
        t0.elapsed().as_secs_f64() * 1e3,
    );

    let targets = demo_targets(heap)?;
    let n_assoc = targets.associations.len();
    let registry = Registry::new(base.clone());
    let t0 = Instant::now();
    let ids: Vec<_> = (0..args.tenants).map(|_| registry.spawn()).collect();
    let fork = t0.elapsed();
    println!(
        "forked {} tenants in {:.2} ms ({:.2} µs each)",
        ids.len(),
        fork.as_secs_f64() * 1e3,
        fork.as_secs_f64() * 1e6 / ids.len() as f64
    );

    // Each tenant writes into real objects (globals' association values, an element of an
    // Array, a method dictionary entry), then allocates objects linked from a root of its own.
    let t0 = Instant::now();
    // Each tenant writes distinct associations, so its last write to each is the one it sees.
    let writes = args.writes.clamp(1, n_assoc);
    let allocs = args.allocs;
    let failures = std::sync::Mutex::new(Vec::new());
    let (array, array_slot) = targets.array;
    let (entries, entry_slot) = targets.method_entry;
    let assoc = |i: usize| targets.associations[i % n_assoc];
    registry.par_for_each(|t| {
        let result = (|| -> cowheap::Result<()> {
            let tag = t.id().get() as i64;
            for i in 0..writes {
                t.set_slot(assoc(i), 1, Value::int(tag * 1000 + i as i64))?;
            }
            t.set_slot(array, array_slot, Value::int(tag))?;
            t.set_slot(entries, entry_slot, Value::int(-tag))?;
            let class = t.class_of(assoc(0))?;
            let mut list = t.base().heap().nil();
            for i in 0..allocs {
                let node = t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })?;
                t.set_slot(node, 0, Value::int(i as i64))?;
                t.set_slot(node, 1, list)?;
                list = node;
            }
            t.set_root("mine", list)?;
            Ok(())
        })();
        if let Err(e) = result {
            failures.lock().expect("no panics hold this lock").push(e);
        }
    });
    let work = t0.elapsed();
    if let Some(e) = failures
        .into_inner()
        .expect("no panics hold this lock")
        .pop()
    {
        return Err(e).context("a tenant's work failed");
    }
    println!(
        "each tenant wrote {writes} global values, an Array element and a method dictionary entry, \
         and allocated {allocs} objects: {:.1} ms in all",
        work.as_secs_f64() * 1e3
    );

    // Isolation: every tenant sees its own writes; the base and a fresh tenant see none.
    let originals = [
        heap.slot(assoc(0), 1)?,
        heap.slot(array, array_slot)?,
        heap.slot(entries, entry_slot)?,
    ];
    let mut checked = 0u64;
    for &id in &ids {
        registry
            .with(id, |t| -> Result<()> {
                let tag = t.id().get() as i64;
                let v = t.slot(assoc(0), 1)?.as_int();
                ensure!(v == Some(tag * 1000), "{id} sees {v:?} in a global");
                ensure!(
                    t.slot(array, array_slot)?.as_int() == Some(tag),
                    "{id} lost its Array write"
                );
                ensure!(
                    t.slot(entries, entry_slot)?.as_int() == Some(-tag),
                    "{id} lost its method entry"
                );
                checked += 3;
                Ok(())
            })
            .context("tenant vanished")??;
    }
    let fresh = cowheap::Tenant::fork(&base);
    let places = [(assoc(0), 1), (array, array_slot), (entries, entry_slot)];
    for (original, (obj, i)) in originals.iter().zip(places) {
        ensure!(
            fresh.slot(obj, i)?.same_word(*original),
            "a fresh tenant sees a write"
        );
        ensure!(heap.slot(obj, i)?.same_word(*original), "the base changed");
    }
    println!(
        "isolation: checked {checked} reads; each tenant sees only its own writes, the base none"
    );

    println!();
    println!(
        "{:>10} {:>7} {:>7} {:>9} {:>12} {:>12}",
        "tenant", "copies", "allocs", "private", "private B", "memory B"
    );
    let mut total_private = 0u64;
    let mut total_memory = 0u64;
    for (row, &id) in ids.iter().enumerate() {
        registry
            .with(id, |t| {
                let s = t.stats();
                total_private += s.private_bytes;
                total_memory += t.memory_bytes() as u64;
                if row < 5 {
                    println!(
                        "{:>10} {:>7} {:>7} {:>9} {:>12} {:>12}",
                        id.get(),
                        s.copies,
                        s.allocations,
                        s.private_objects,
                        s.private_bytes,
                        t.memory_bytes()
                    );
                }
            })
            .context("tenant vanished")?;
    }
    if ids.len() > 5 {
        println!("{:>10}", format!("(+{} more)", ids.len() - 5));
    }
    let n = ids.len() as u64;
    let full_copies = base.heap().memory_bytes() as u64 * n;
    println!();
    println!(
        "private memory: {:.2} MiB for {} tenants ({:.0} B each); the shared base: {:.1} MiB once",
        mib(total_memory),
        n,
        total_memory as f64 / n as f64,
        mib(base.memory_bytes() as u64)
    );
    println!(
        "a full copy of the base per tenant would take {:.1} MiB: {:.0}x more",
        mib(full_copies),
        full_copies as f64 / total_memory.max(1) as f64
    );
    println!(
        "charged private bytes (quota accounting): {:.2} MiB",
        mib(total_private)
    );
    println!(
        "diverted base objects (shared marks set): {}",
        base.marks().count()
    );
    Ok(())
}
