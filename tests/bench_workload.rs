//! The bench's own instruments: the workload generator (same seed, same work; the write share
//! and skew asked for), the counting allocator's totals, the fork probe's Private_Dirty
//! against a known number of written pages, and the comparators' agreement.
//!
//! Statistical checks use bounds of five standard deviations: a correct generator fails one
//! about once in two million runs, a generator off by a few percent fails every time.

use cowheap::{BaseHeap, ObjectIndex};
use cowheap_bench as bench;
use cowheap_bench::alloc::{CountingAlloc, Meter};
use cowheap_bench::{
    self, ApproachKind, BaseSource, Config, Op, SizeMix, Skew, Workload, WorkloadConfig,
};
use std::collections::HashMap;
use std::path::PathBuf;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn base() -> BaseHeap {
    cowheap::synth::image(20_000, 4)
}

fn config(ops: usize, write_share: f64, skew: Skew) -> WorkloadConfig {
    WorkloadConfig {
        ops,
        write_share,
        skew,
        ..WorkloadConfig::default()
    }
}

/// Accesses per object over tenants `0..tenants`.
fn histogram(w: &Workload, tenants: u64) -> HashMap<ObjectIndex, u64> {
    let mut counts = HashMap::new();
    let mut ops = Vec::new();
    for t in 0..tenants {
        w.tenant_ops(t, &mut ops);
        for op in &ops {
            *counts.entry(op.object()).or_insert(0) += 1;
        }
    }
    counts
}

fn five_sigma(p: f64, n: f64) -> f64 {
    5.0 * (p * (1.0 - p) / n).sqrt()
}

#[test]
fn same_seed_same_work_other_seed_or_tenant_other_work() {
    let base = base();
    let c = config(500, 0.3, Skew::Zipf { exponent: 0.9 });
    let a = Workload::new(&base, c).unwrap();
    let b = Workload::new(&base, c).unwrap();
    let other = Workload::new(&base, WorkloadConfig { seed: 2, ..c }).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for tenant in [0, 1, 999, u64::MAX] {
        a.tenant_ops(tenant, &mut x);
        b.tenant_ops(tenant, &mut y);
        assert_eq!(x, y, "tenant {tenant}");
        other.tenant_ops(tenant, &mut y);
        assert_ne!(x, y, "another seed gives other work");
        a.tenant_writes(tenant, 300, &mut x);
        b.tenant_writes(tenant, 300, &mut y);
        assert_eq!(x, y);
        assert!(x.iter().all(|op| op.is_write()));
    }
    a.tenant_ops(3, &mut x);
    a.tenant_ops(4, &mut y);
    assert_ne!(x, y, "tenants get different work");
    // The thread count does not change the work.
    let threaded = Workload::new(&base, WorkloadConfig { threads: 7, ..c }).unwrap();
    threaded.tenant_ops(3, &mut y);
    assert_eq!(x, y);
}

#[test]
fn every_operation_names_a_slot_that_exists() {
    let base = base();
    let w = Workload::new(&base, config(2_000, 0.5, Skew::Uniform)).unwrap();
    let mut ops = Vec::new();
    for t in 0..10 {
        w.tenant_ops(t, &mut ops);
        for op in &ops {
            let (Op::Read { object, slot } | Op::Write { object, slot, .. }) = *op;
            assert!(base.slot_word(object, slot as usize).is_ok(), "{op:?}");
        }
    }
}

#[test]
fn the_share_of_writes_is_the_one_asked_for() {
    let base = base();
    for share in [0.0, 0.01, 0.1, 0.5, 0.9, 1.0] {
        let w = Workload::new(&base, config(5_000, share, Skew::Uniform)).unwrap();
        let (mut ops, mut writes, mut total) = (Vec::new(), 0u64, 0u64);
        for t in 0..20 {
            w.tenant_ops(t, &mut ops);
            writes += ops.iter().filter(|op| op.is_write()).count() as u64;
            total += ops.len() as u64;
        }
        assert_eq!(total, 100_000);
        let observed = writes as f64 / total as f64;
        let bound = five_sigma(share, total as f64);
        assert!(
            (observed - share).abs() <= bound,
            "asked {share}, got {observed} (bound {bound})"
        );
    }
}

#[test]
fn uniform_touches_every_candidate_evenly() {
    let base = base();
    let w = Workload::new(&base, config(10_000, 0.1, Skew::Uniform)).unwrap();
    let n = w.candidates() as f64;
    let counts = histogram(&w, 20);
    let draws = 200_000.0;
    let mean = draws / n;
    // Every object's count is binomial(draws, 1/n); the largest of n such counts stays
    // within a few standard deviations of the mean, far from a Zipf law's head.
    let max = *counts.values().max().unwrap() as f64;
    assert!(max < mean + 7.0 * mean.sqrt(), "max {max}, mean {mean}");
    // With as many draws as candidates, the share never drawn is close to 1/e; its standard
    // deviation is below 0.005 here.
    let once = Workload::new(&base, config(n as usize, 0.1, Skew::Uniform)).unwrap();
    let untouched = 1.0 - histogram(&once, 1).len() as f64 / n;
    let expected = (-1.0f64).exp();
    assert!(
        (untouched - expected).abs() < 0.025,
        "{untouched} of the candidates untouched, expected {expected}"
    );
}

#[test]
fn zipf_gives_the_head_the_share_the_law_says() {
    let base = base();
    for exponent in [0.8, 1.0, 1.4] {
        let w = Workload::new(&base, config(10_000, 0.1, Skew::Zipf { exponent })).unwrap();
        let n = w.candidates();
        let harmonic: f64 = (1..=n).map(|k| (k as f64).powf(-exponent)).sum();
        let counts = histogram(&w, 20);
        let draws = 200_000.0;
        for rank in [1usize, 2, 10] {
            let p = (rank as f64).powf(-exponent) / harmonic;
            let x = w.ranked(rank).unwrap();
            let observed = counts.get(&x).copied().unwrap_or(0) as f64 / draws;
            assert!(
                (observed - p).abs() <= five_sigma(p, draws),
                "s={exponent} rank {rank}: {observed} against {p}"
            );
        }
        // The hundred hottest objects take the share the law gives them.
        let p100: f64 = (1..=100).map(|k| (k as f64).powf(-exponent)).sum::<f64>() / harmonic;
        let hot: u64 = (1..=100)
            .map(|r| counts.get(&w.ranked(r).unwrap()).copied().unwrap_or(0))
            .sum();
        let observed = hot as f64 / draws;
        assert!(
            (observed - p100).abs() <= five_sigma(p100, draws),
            "s={exponent}: top 100 took {observed}, the law says {p100}"
        );
    }
}

#[test]
fn the_size_mix_picks_objects_of_its_sizes() {
    let base = base();
    for (mix, ok) in [
        (SizeMix::Small, (1..=8usize)),
        (SizeMix::Large, (16..=usize::MAX)),
        (SizeMix::Image, (1..=usize::MAX)),
    ] {
        let w = Workload::new(
            &base,
            WorkloadConfig {
                size_mix: mix,
                ..config(2_000, 0.5, Skew::Uniform)
            },
        )
        .unwrap();
        for x in histogram(&w, 5).keys() {
            let slots = base.size(*x).unwrap().slots;
            assert!(ok.contains(&slots), "{mix}: {slots} slots");
        }
    }
}

#[test]
fn bad_options_are_refused_with_a_typed_error() {
    let base = base();
    for c in [
        config(10, 1.5, Skew::Uniform),
        config(10, -0.1, Skew::Uniform),
        config(10, 0.5, Skew::Zipf { exponent: 0.0 }),
        WorkloadConfig {
            tenants: 0,
            ..WorkloadConfig::default()
        },
        WorkloadConfig {
            threads: 0,
            ..WorkloadConfig::default()
        },
    ] {
        assert!(
            matches!(Workload::new(&base, c), Err(bench::Error::BadOption { .. })),
            "{c:?}"
        );
    }
    assert!("zipf:abc".parse::<Skew>().is_err());
    assert!("tiny".parse::<SizeMix>().is_err());
}

#[test]
fn the_counting_allocator_counts_a_known_allocation() {
    assert!(
        CountingAlloc::counting(),
        "installed as the global allocator"
    );
    let total = CountingAlloc::total_bytes();
    let meter = Meter::start();
    let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
    assert_eq!(meter.bytes(), 1 << 20);
    v.reserve_exact((3 << 20) - v.len());
    assert_eq!(
        meter.bytes(),
        3 << 20,
        "a reallocation counts the difference"
    );
    let boxed = Box::new([7u64; 512]);
    assert_eq!(meter.bytes(), (3 << 20) + 4096);
    drop(v);
    drop(boxed);
    assert_eq!(meter.bytes(), 0, "frees are counted");
    assert!(CountingAlloc::total_bytes() - total >= (3 << 20) + 4096);
}

fn cowheap_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cowheap"))
}

#[cfg(target_os = "linux")]
#[test]
fn the_fork_probe_sees_the_pages_a_child_writes() {
    let page = bench::fork::page_size() as u64;
    let dirty = bench::fork::probe_pages(&cowheap_exe(), &[0, 1_000, 0]).unwrap();
    // What a child that writes nothing still dirties: its stack, the C library's state.
    let idle = dirty[0].min(dirty[2]);
    assert!(idle < 1024 * 1024, "an idle child dirtied {idle} bytes");
    let written = dirty[1] - idle;
    let expected = 1_000 * page;
    // A few pages either way: the parent's stack and the kernel's own bookkeeping.
    assert!(
        written >= expected - 8 * page && written <= expected + 16 * page,
        "1,000 pages written, {written} bytes counted (expected {expected})"
    );
}

fn small_config(approaches: Vec<ApproachKind>) -> Config {
    Config {
        base: BaseSource::Synthetic {
            objects: 20_000,
            seed: 9,
        },
        workload: WorkloadConfig {
            tenants: 40,
            ops: 400,
            write_share: 0.25,
            ..WorkloadConfig::default()
        },
        write_counts: vec![0, 10, 100, 1_000, 1_000_000],
        fork_sample: 6,
        approaches,
        probe_exe: Some(cowheap_exe()),
        ..Config::default()
    }
}

#[test]
fn every_comparator_runs_and_the_isolating_ones_agree() {
    let report = bench::run(&small_config(ApproachKind::ALL.to_vec()), &()).unwrap();
    assert_eq!(report.approaches.len(), 5);
    let expected_compared = if cfg!(target_os = "linux") { 4 } else { 3 };
    assert_eq!(report.fidelity.compared.len(), expected_compared);
    assert!(report.fidelity.agree);
    assert!(report.fidelity.tenants >= 4);
    // The sweep's largest count was lowered to the number of candidates.
    assert_eq!(
        report.write_counts.last().copied(),
        Some(report.base.candidates)
    );
    let get = |k| report.get(k).unwrap();
    let cow = get(ApproachKind::Cowheap);
    assert_eq!(cow.held, 40);
    assert!(cow.writes > 0 && cow.reads > 0);
    // An idle cowheap tenant is its record and nothing else.
    assert!(cow.idle_bytes.unwrap() < 1024.0);
    // A deep copy holds the whole base, whatever it writes.
    let deep = get(ApproachKind::DeepCopy);
    assert!(deep.idle_bytes.unwrap() >= report.base.bytes as f64 * 0.9);
    assert!(deep.private_bytes.unwrap() > 20.0 * cow.private_bytes.unwrap());
    // Private bytes grow with writes, and never shrink.
    for a in [cow, deep, get(ApproachKind::Rpds)] {
        assert!(
            a.sweep.windows(2).all(|w| w[0].bytes <= w[1].bytes),
            "{}: {:?}",
            a.label,
            a.sweep
        );
    }
    if cfg!(target_os = "linux") {
        let fork = get(ApproachKind::Fork);
        assert_eq!(fork.worked, 6);
        // A child that writes copies whole pages: more than cowheap's objects.
        assert!(fork.private_bytes.unwrap() > cow.private_bytes.unwrap());
        assert!(fork.create_ns.unwrap() > 0.0);
    }
    let table = report.table();
    for label in ["cowheap", "plain heap", "deep copy", "rpds", "fidelity"] {
        assert!(table.contains(label), "{table}");
    }
}

#[test]
fn a_million_idle_tenants_are_asked_for_by_the_tenant_count_alone() {
    // A smaller stand-in for `--tenants 1000000`: every tenant is forked and held, only the
    // first ones work, and the comparators that cannot hold so many are sampled.
    let mut config = small_config(vec![ApproachKind::Cowheap, ApproachKind::DeepCopy]);
    config.workload.tenants = 50_000;
    config.active = Some(20);
    config.write_counts = vec![0];
    let report = bench::run(&config, &()).unwrap();
    let cow = report.get(ApproachKind::Cowheap).unwrap();
    assert_eq!((cow.held, cow.worked), (50_000, 20));
    assert!(cow.held_bytes < 50_000 * 1024, "{} bytes", cow.held_bytes);
    let deep = report.get(ApproachKind::DeepCopy).unwrap();
    assert_eq!(deep.held, config.deep_copy_sample);
    assert!(
        deep.note
            .as_deref()
            .unwrap_or("")
            .contains("of 50,000 tenants")
    );
}

#[test]
fn an_image_file_is_a_base_and_anything_else_is_refused() {
    let dir = std::env::temp_dir().join(format!("cowheap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("base.image");
    cowheap::synth::image(5_000, 2).save(&image).unwrap();
    let mut config = small_config(vec![ApproachKind::Cowheap, ApproachKind::Fork]);
    config.base = BaseSource::File(image.clone());
    config.write_counts = vec![0, 10];
    let report = bench::run(&config, &()).unwrap();
    assert!(report.base.source.contains("base.image"));
    assert!(report.base.objects >= 5_000);
    if cfg!(target_os = "linux") {
        let fork = &report.approaches[1];
        assert_eq!(fork.skipped, None);
        assert!(report.fidelity.agree && report.fidelity.compared.len() == 2);
    }

    let not_an_image = dir.join("squeak.image");
    std::fs::write(&not_an_image, [0x68u8, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    config.base = BaseSource::File(not_an_image);
    let err = bench::run(&config, &()).unwrap_err();
    assert!(
        matches!(
            err,
            bench::Error::Open(cowheap::OpenError::Smalltalk { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("neither a cowheap image file nor"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_squeak_image_is_a_base() {
    // The real images beside the project (see .ci/run); a missing one fails the test.
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/images")));
    let image = dir.join("headless-spur32.image");
    assert!(
        image.exists(),
        "no {}: set COWHEAP_IMAGES to the folder of the real Smalltalk images (shared/images)",
        image.display()
    );
    let mut config = small_config(ApproachKind::ALL.to_vec());
    config.base = BaseSource::File(image);
    config.write_counts = vec![0, 10];
    let report = bench::run(&config, &()).unwrap();
    assert!(report.base.objects > 1_000);
    assert!(report.fidelity.agree, "{}", report.table());
    let expected_compared = if cfg!(target_os = "linux") { 4 } else { 3 };
    assert_eq!(report.fidelity.compared.len(), expected_compared);
}
