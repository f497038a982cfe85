//! The `cowheap` command.
//!
//! `cowheap` (or `cowheap demo`) builds a Smalltalk-shaped base, forks many tenants from it,
//! lets each write and allocate in parallel, checks that every tenant sees only its own
//! writes, and reports what each holds privately.

use anyhow::{Context, Result, ensure};
use clap::{Parser, Subcommand};
use cowheap::{Base, Format, ObjectSize, Registry, Value, synth};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "cowheap",
    version,
    about = "A copy-on-write multi-tenant object heap"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Many tenants on one base: fork, write, allocate, check isolation, report memory.
    Demo(DemoArgs),
}

#[derive(Parser)]
struct DemoArgs {
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

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs::parse_from(["demo"])
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Some(Command::Demo(args)) => demo(&args),
        None => demo(&DemoArgs::default()),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn demo(args: &DemoArgs) -> Result<()> {
    ensure!(args.tenants > 0, "--tenants must be at least 1");
    let t0 = Instant::now();
    let base = Base::new(synth::image(args.objects, args.seed));
    let heap = base.heap();
    println!("cowheap demo: one base, many tenants");
    println!(
        "base: {} objects, {:.1} MiB, built in {:.0} ms (synthetic Smalltalk-shaped image, seed {})",
        heap.len(),
        mib(base.memory_bytes() as u64),
        t0.elapsed().as_secs_f64() * 1e3,
        args.seed
    );

    let globals = heap
        .root("Smalltalk")
        .context("the base has no Smalltalk root")?;
    let n_globals = heap.size(heap.index_of(globals)?)?.slots;
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

    // Each tenant writes into real objects: a global's association value, the globals array
    // itself, and a class's method dictionary; then allocates objects linked from a root.
    let t0 = Instant::now();
    let writes = args.writes;
    let allocs = args.allocs;
    let failures = std::sync::Mutex::new(Vec::new());
    registry.par_for_each(|t| {
        let result = (|| -> cowheap::Result<()> {
            let tag = t.id().get() as i64;
            for i in 0..writes {
                let assoc = t.base().heap().slot(globals, i % n_globals)?;
                t.set_slot(assoc, 1, Value::int(tag * 1000 + i as i64))?;
            }
            let class = t.class_of(globals)?;
            let mut list = t.base().heap().nil();
            for i in 0..allocs {
                let node = t.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })?;
                t.set_slot(node, 0, Value::int(i as i64))?;
                t.set_slot(node, 1, list)?;
                list = node;
            }
            t.set_root("mine", list)?;
            t.set_slot(globals, 0, Value::int(tag))?;
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
        "each tenant wrote {writes} base objects and allocated {allocs} objects: {:.1} ms in all",
        work.as_secs_f64() * 1e3
    );

    // Isolation: every tenant sees its own writes; the base and a fresh tenant see none.
    let mut checked = 0u64;
    for &id in &ids {
        registry
            .with(id, |t| -> Result<()> {
                let tag = t.id().get() as i64;
                ensure!(
                    t.slot(globals, 0)?.as_int() == Some(tag),
                    "{id} lost its write"
                );
                let assoc = t.base().heap().slot(globals, 1 % n_globals)?;
                let v = t.slot(assoc, 1)?.as_int();
                ensure!(v.is_some_and(|v| v / 1000 == tag), "{id} sees {v:?}");
                checked += 2;
                Ok(())
            })
            .context("tenant vanished")??;
    }
    let mut fresh = cowheap::Tenant::fork(&base);
    ensure!(
        fresh.slot(globals, 0)?.as_int().is_none(),
        "the base changed"
    );
    ensure!(
        heap.slot(globals, 0)?.as_int().is_none(),
        "the base changed"
    );
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
                let s = *t.stats();
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
