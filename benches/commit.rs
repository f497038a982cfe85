//! Commit into base versions: latency against the number of changed objects on a small and a
//! large base, read cost against the depth of the version chain before and after flattening,
//! and flattening time.
//!
//! ```text
//! cargo bench --bench commit                  # the full run (about a minute)
//! cargo bench --bench commit -- --quick       # fewer repeats, smaller large base
//! ```
//!
//! Each figure is the median of its repeats, and each is quoted beside its baseline from the
//! same run:
//!
//! - **commit**: a tenant writes slot 0 of `n` distinct objects (its first writes: the
//!   copies) and commits. The baseline is the same writes without the commit, so the ratio is
//!   what the commit adds; the commit's own time per changed object is compared between the
//!   1,000-object and the 1,000,000-object base (a commit is O(changed), never O(base): the
//!   ratio should be near 1).
//! - **read by depth**: a tenant on a version `d` commits above the one that changed the
//!   objects it reads, against the same number of reads of objects no version changed by a
//!   tenant of the root (the fast path); then both again, the same objects, by a tenant of
//!   the version [`Repository::flatten`] made.
//! - **flatten**: the time to fold a chain of versions into a heap of its own, per object.

use cowheap::tenants::commit::{CommitRights, Repository};
use cowheap::{Base, ObjectIndex, Tenant, Value, synth};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Pointer objects of `base` with at least one slot, in a random order.
fn targets(base: &Base, n: usize, seed: u64) -> Vec<ObjectIndex> {
    let heap = base.heap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    while out.len() < n {
        let x = ObjectIndex::new(rng.random_range(1..heap.len())).unwrap();
        if heap.size(x).unwrap().slots > 0 && seen.insert(x) {
            out.push(x);
        }
    }
    out
}

fn write_all(t: &mut Tenant, xs: &[ObjectIndex]) {
    for (i, &x) in xs.iter().enumerate() {
        t.set_slot(Value::base(x), 0, Value::int(i as i64)).unwrap();
    }
}

/// (writes alone, writes and commit) for `n` changed objects, medians of `repeats`.
fn commit_latency(base: &Arc<Base>, n: usize, repeats: usize) -> (Duration, Duration) {
    let xs = targets(base, n, n as u64);
    let mut plain = vec![];
    let mut committed = vec![];
    for _ in 0..repeats {
        // A fresh repository each time: every commit is over the root, the same work.
        let repo = Repository::new(base.clone(), CommitRights::Anyone);
        let mut t = repo.fork();
        let start = Instant::now();
        write_all(&mut t, &xs);
        plain.push(start.elapsed());
        let mut t = repo.fork();
        let start = Instant::now();
        write_all(&mut t, &xs);
        black_box(repo.commit(&mut t, "bench").unwrap());
        committed.push(start.elapsed());
    }
    (median(plain), median(committed))
}

/// Reads slot 0 of every object of `xs`, `passes` times; the time per read.
fn read_time(t: &Tenant, xs: &[Value], passes: usize) -> f64 {
    let start = Instant::now();
    let mut sum = 0i64;
    for _ in 0..passes {
        for &v in xs {
            sum = sum.wrapping_add(t.slot(v, 0).unwrap().as_int().unwrap_or(1));
        }
    }
    black_box(sum);
    start.elapsed().as_secs_f64() * 1e9 / (passes * xs.len()) as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let repeats = if quick { 5 } else { 21 };
    let large = if quick { 200_000 } else { 1_000_000 };
    let small_base = Base::new(synth::image(1_000, 1));
    let large_base = Base::new(synth::image(large, 1));

    println!("## commit latency (median of {repeats}; writes = the tenant's first writes alone)");
    println!();
    println!("| changed | base | writes | writes + commit | commit per object | vs 1k base |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in [1usize, 10, 100, 500] {
        let mut small_per = 0.0;
        for (name, base) in [("1k", &small_base), ("large", &large_base)] {
            let (plain, committed) = commit_latency(base, n, repeats);
            let per = (committed.saturating_sub(plain)).as_secs_f64() * 1e9 / n as f64;
            if name == "1k" {
                small_per = per;
            }
            println!(
                "| {n} | {} | {:.1} µs | {:.1} µs | {:.0} ns | {:.2}x |",
                base.len(),
                plain.as_secs_f64() * 1e6,
                committed.as_secs_f64() * 1e6,
                per,
                per / small_per
            );
        }
    }

    println!();
    println!("## reads of committed objects by depth of the version chain ({large}-object base)");
    println!();
    println!(
        "| depth | read of an object changed at version 1 | fast-path read | ratio | after flatten | fast-path read | ratio |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let changed = targets(&large_base, 4096, 7);
    let untouched = targets(&large_base, 4096, 8);
    let changed_v: Vec<Value> = changed.iter().map(|&x| Value::base(x)).collect();
    let untouched_v: Vec<Value> = untouched.iter().map(|&x| Value::base(x)).collect();
    let passes = if quick { 20 } else { 100 };
    for depth in [1usize, 4, 16, 64] {
        let repo = Repository::new(large_base.clone(), CommitRights::Anyone);
        let mut t = repo.fork();
        write_all(&mut t, &changed);
        repo.commit(&mut t, "bench").unwrap();
        // depth - 1 more versions, each changing one other object.
        let others = targets(&large_base, depth, 99);
        for &x in others.iter().take(depth - 1) {
            let mut t = repo.fork();
            t.set_slot(Value::base(x), 0, Value::int(-1)).unwrap();
            repo.commit(&mut t, "bench").unwrap();
        }
        let reader = repo.fork();
        assert_eq!(reader.base().depth(), depth);
        let root = Tenant::fork(&large_base);
        let (mut layered, mut fast) = (vec![], vec![]);
        for _ in 0..5 {
            layered.push(read_time(&reader, &changed_v, passes));
            fast.push(read_time(&root, &untouched_v, passes));
        }
        let start = Instant::now();
        repo.flatten().unwrap();
        let flatten_time = start.elapsed();
        let flat_reader = repo.fork();
        let (mut flat, mut flat_fast) = (vec![], vec![]);
        for _ in 0..5 {
            flat.push(read_time(&flat_reader, &changed_v, passes));
            flat_fast.push(read_time(&flat_reader, &untouched_v, passes));
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (l, f, fl, ff) = (med(layered), med(fast), med(flat), med(flat_fast));
        println!(
            "| {depth} | {l:.2} ns | {f:.2} ns | {:.2}x | {fl:.2} ns | {ff:.2} ns | {:.2}x |",
            l / f,
            fl / ff
        );
        if depth == 64 {
            println!();
            println!(
                "flatten of {} objects under {depth} versions: {:.0} ms ({:.0} ns per object)",
                repo.current().len(),
                flatten_time.as_secs_f64() * 1e3,
                flatten_time.as_secs_f64() * 1e9 / repo.current().len() as f64
            );
        }
    }
}
