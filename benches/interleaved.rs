//! The read barrier against the plain heap's read, interleaved round by round.
//!
//! Criterion measures one variant after another, so a slow phase of a shared machine (another
//! build, a neighbour's job) lands on whichever variant runs then. This bench alternates the
//! variants within every round, rotating their order, and reports the median of the per-round
//! ratios against the baseline, which such phases hit alike.
//!
//! ```text
//! cargo bench --bench interleaved                 # 150 rounds over a 1M and a 10k base
//! cargo bench --bench interleaved -- --rounds 50
//! cargo bench --bench interleaved -- --once       # one pass each, for instruction counts:
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/deps/interleaved-HASH --once
//! callgrind_annotate --inclusive=yes cg.out | grep '=> .*interleaved::read_'
//! ```
//!
//! With `--once` each variant makes one pass of 4,096 reads over a 10,000-object base, so
//! callgrind's inclusive count of each `read_*` function divided by 4,096 is its instructions
//! per read: repeatable where wall times are not.
//!
//! | variant | what it reads through |
//! | --- | --- |
//! | `read_plain` (baseline) | `BaseHeap::slot`: the base heap alone, no tenant |
//! | `read_plain_word` | `BaseHeap::slot_word`, inlined: the plain read with no `Value` |
//! | `read_tenant` | `Tenant::slot`, shared marks: the read barrier's fast path |
//! | `read_tenant_private` | `Tenant::slot` with `MarkPolicy::Private` |
//!
//! Every read is of an undiverted base object; the same 4,096 random `(object, slot)` pairs
//! serve every variant, and each variant's checksum must agree.

use cowheap::{Base, BaseHeap, MarkPolicy, Tenant, TenantConfig, Value, synth};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Instant;

/// Random reads per pass.
const READS: usize = 4096;

/// Reads per timed sample of one variant (so one sample is about a millisecond).
const READS_PER_SAMPLE: usize = 400_000;

/// Names of the variants, baseline first.
const NAMES: [&str; 4] = [
    "read_plain",
    "read_plain_word",
    "read_tenant",
    "read_tenant_private",
];

/// `READS` random slots of objects that have one, the same for every run.
fn random_reads(heap: &BaseHeap) -> Vec<(Value, usize)> {
    let candidates: Vec<_> = heap
        .indices()
        .filter(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..READS)
        .map(|_| {
            let x = candidates[rng.random_range(0..candidates.len())];
            let slots = heap.size(x).expect("a candidate exists").slots;
            (Value::base(x), rng.random_range(0..slots))
        })
        .collect()
}

#[inline(never)]
fn read_plain(heap: &BaseHeap, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(heap.slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_plain_word(heap: &BaseHeap, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        let x = v.as_base().expect("a base object");
        acc.wrapping_add(heap.slot_word(x, i).expect("in range").bits())
    })
}

#[inline(never)]
fn read_tenant(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    reads.iter().fold(0, |acc, &(v, i)| {
        acc.wrapping_add(t.slot(v, i).expect("in range").word().bits())
    })
}

#[inline(never)]
fn read_tenant_private(t: &Tenant, reads: &[(Value, usize)]) -> u64 {
    read_tenant(t, reads)
}

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs every variant `rounds` times over a base of `objects` objects and prints the
/// nanoseconds per read and the ratios against the baseline.
fn run(objects: usize, rounds: usize, passes: usize) {
    let base = Base::new(synth::image(objects, 1));
    let heap = base.heap();
    let reads = random_reads(heap);
    let shared = Tenant::fork(&base);
    let private = Tenant::fork_with(
        &base,
        TenantConfig {
            marks: MarkPolicy::Private,
            quota: None,
        },
    );
    let pass = |k: usize| match k {
        0 => read_plain(heap, black_box(&reads)),
        1 => read_plain_word(heap, black_box(&reads)),
        2 => read_tenant(&shared, black_box(&reads)),
        _ => read_tenant_private(&private, black_box(&reads)),
    };
    let sums: Vec<u64> = (0..NAMES.len()).map(pass).collect();
    assert!(
        sums.iter().all(|&s| s == sums[0]),
        "every variant reads the same words: {sums:?}"
    );
    if rounds == 0 {
        println!("{objects} objects: one pass of {READS} reads per variant, checksums agree");
        return;
    }
    let mut ns = vec![Vec::with_capacity(rounds); NAMES.len()];
    for r in 0..rounds {
        for j in 0..NAMES.len() {
            let k = (r + j) % NAMES.len();
            let start = Instant::now();
            for _ in 0..passes {
                black_box(pass(k));
            }
            ns[k].push(start.elapsed().as_nanos() as f64 / (passes * READS) as f64);
        }
    }
    assert_eq!(shared.stats().lookups, 0, "no undiverted read looks up");
    println!("{objects} objects, {rounds} rounds of {passes} x {READS} reads (ns per read):");
    for (k, name) in NAMES.iter().enumerate() {
        let ratio = median((0..rounds).map(|r| ns[k][r] / ns[0][r]).collect());
        println!(
            "  {name:20} median {:6.2}  min {:6.2}  ratio to {} {ratio:.3}",
            median(ns[k].clone()),
            ns[k].iter().copied().fold(f64::MAX, f64::min),
            NAMES[0],
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other flags are this bench's own.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name);
    let rounds = flag("--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(150, |n| n.parse().expect("--rounds takes a number"));
    if flag("--once").is_some() {
        // One pass of each variant over a small base: for callgrind's instruction counts.
        run(10_000, 0, 1);
        return;
    }
    let passes = READS_PER_SAMPLE / READS;
    run(1_000_000, rounds, passes);
    run(10_000, rounds, passes);
}
