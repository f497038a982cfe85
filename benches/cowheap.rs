//! Criterion benchmarks of cowheap: one module per area, each group measuring a tenant's
//! path beside a baseline on the plain heap (or a plain copy).
//!
//! Run with `cargo bench --bench cowheap`; pass a filter (`cargo bench --bench cowheap --
//! read_undiverted`) to run one group. The groups and their ids are quoted in reports:
//!
//! | group | baseline | measured |
//! | --- | --- | --- |
//! | `read_undiverted` | `plain_heap` (`slot_word`), `plain_heap_slot_call` (`BaseHeap::slot`) | `tenant`, `tenant_private_marks`, `tenant_others_diverted_1pct` |
//! | `read_diverted` | `plain_heap` | `patched_private_slot`, `through_base_object` |
//! | `first_write` | `plain_copy/N` | `tenant/N` for N in 8, 64, 512, 4096 slots |
//! | `fork` | `base_1k` | `base_1m` (and the absolute time of both) |
//! | `collect` | `base_empty` | `base_1m` |
//! | `open` | `trusted/base_1k`, `verified/base_1k` | `trusted/base_1m`, `verified/base_1m` |
//! | `first_read` | `read_into_memory` | `mapped` |
//! | `snapshot` | `save_restore/base_1k` | `save_restore/base_1m` |
//!
//! Every base, tenant and list of reads is made outside the timed closures; the shared marks
//! of a base are written by tenants, so a group whose variants must not see each other's
//! marks builds a base per variant.

use criterion::Criterion;
use std::time::Duration;

/// What every group shares: the seeded random source and the bases.
mod common {
    use cowheap::{BaseHeap, Builder, Format, ObjectIndex, Value, synth};
    use criterion::{BenchmarkGroup, measurement::WallTime};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::time::Duration;

    /// Objects in the large base.
    pub(crate) const LARGE: usize = 1_000_000;

    /// The seed of every synthetic base.
    pub(crate) const IMAGE_SEED: u64 = 1;

    /// A seeded random source, so every run reads the same objects.
    pub(crate) fn rng(stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0xC0_4EA9 ^ stream)
    }

    /// The large synthetic base (deterministic: every call builds the same objects).
    pub(crate) fn large_heap() -> BaseHeap {
        synth::image(LARGE, IMAGE_SEED)
    }

    /// Short warm-up and measurement, so the whole binary runs in a few minutes.
    pub(crate) fn configure(group: &mut BenchmarkGroup<'_, WallTime>, measurement_secs: u64) {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(measurement_secs))
            .sample_size(30);
    }

    /// Every object of `heap` with at least one pointer slot.
    pub(crate) fn with_slots(heap: &BaseHeap) -> Vec<ObjectIndex> {
        heap.indices()
            .filter(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
            .collect()
    }

    /// True if `x` is a `Pointers` object with at least one slot.
    pub(crate) fn is_pointer_object(heap: &BaseHeap, x: ObjectIndex) -> bool {
        heap.object(x)
            .is_ok_and(|o| o.format == Format::Pointers && !o.slots.is_empty())
    }

    /// A base of nil and one class object: the smallest a tenant can allocate in.
    /// Returns the heap and the class.
    pub(crate) fn empty_heap() -> (BaseHeap, Value) {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let class = b
            .add(nil, Format::Pointers, vec![], vec![])
            .expect("an empty pointers object is valid");
        (b.freeze().expect("nil and a class"), Value::shared(class))
    }
}

/// Reads of base objects no tenant (or only other tenants) diverted: the read barrier's
/// fast path (one mark test) against the plain heap's read.
mod read_undiverted {
    use crate::common;
    use cowheap::{Base, MarkPolicy, Tenant, TenantConfig, Value, Word};
    use criterion::Criterion;
    use rand::Rng;
    use std::hint::black_box;

    /// Reads per iteration.
    const READS: usize = 4096;

    /// Sums the raw bits of every slot in `reads` with `read`.
    #[inline(always)]
    fn read_all(reads: &[(Value, usize)], mut read: impl FnMut(Value, usize) -> Word) -> u64 {
        reads
            .iter()
            .fold(0u64, |acc, &(v, i)| acc.wrapping_add(read(v, i).bits()))
    }

    /// The `read_undiverted` group.
    pub(crate) fn bench(c: &mut Criterion) {
        let base = Base::new(common::large_heap());
        let heap = base.heap();
        let candidates = common::with_slots(heap);
        let mut rng = common::rng(1);
        let reads: Vec<(Value, usize)> = (0..READS)
            .map(|_| {
                let x = candidates[rng.random_range(0..candidates.len())];
                let slots = heap.size(x).expect("candidate exists").slots;
                (Value::base(x), rng.random_range(0..slots))
            })
            .collect();

        // A second, identical base whose marks other tenants set on 1% of its objects:
        // the measured tenant has no copies, but some of its reads find a mark.
        let others_base = Base::new(common::large_heap());
        let mut others: Vec<Tenant> = (0..10).map(|_| Tenant::fork(&others_base)).collect();
        let diverted = others_base.heap().len() / 100;
        let mut diverted_objects = Vec::with_capacity(diverted);
        for n in 0..diverted {
            let t = &mut others[n % 10];
            loop {
                let x = candidates[rng.random_range(0..candidates.len())];
                if others_base.marks().is_marked(x.as_u32()) {
                    continue;
                }
                let v = Value::base(x);
                let old = t.slot(v, 0).expect("candidate has a slot");
                t.set_slot(v, 0, old).expect("a write of the same value");
                diverted_objects.push(x);
                break;
            }
        }
        let hits = reads
            .iter()
            .filter(|(v, _)| {
                let x = v.as_base().expect("base reads");
                others_base.marks().is_marked(x.as_u32())
            })
            .count();
        eprintln!(
            "read_undiverted: {} of {} objects diverted by other tenants; {hits} of {READS} reads \
             find a mark",
            diverted_objects.len(),
            others_base.heap().len()
        );

        let mut g = c.benchmark_group("read_undiverted");
        common::configure(&mut g, 3);

        // The baseline: what the tenant's fast path does after its mark test, with nothing
        // else (`slot_word` is `#[inline]`, so this loop holds the heap in registers).
        g.bench_function("plain_heap", |b| {
            b.iter(|| {
                read_all(black_box(&reads), |v, i| {
                    heap.slot_word(v.as_base().unwrap(), i).unwrap()
                })
            })
        });
        // The same reads through `BaseHeap::slot`, which is not `#[inline]`: a call per read
        // across crates, as `Tenant::slot` also is once it has several callers.
        g.bench_function("plain_heap_slot_call", |b| {
            b.iter(|| read_all(black_box(&reads), |v, i| heap.slot(v, i).unwrap().word()))
        });

        let shared = Tenant::fork(&base);
        g.bench_function("tenant", |b| {
            b.iter(|| read_all(black_box(&reads), |v, i| shared.slot(v, i).unwrap().word()))
        });

        let config = TenantConfig {
            marks: MarkPolicy::Private,
            quota: None,
        };
        let private = Tenant::fork_with(&base, config);
        g.bench_function("tenant_private_marks", |b| {
            b.iter(|| read_all(black_box(&reads), |v, i| private.slot(v, i).unwrap().word()))
        });

        let bystander = Tenant::fork(&others_base);
        g.bench_function("tenant_others_diverted_1pct", |b| {
            b.iter(|| {
                read_all(black_box(&reads), |v, i| {
                    bystander.slot(v, i).unwrap().word()
                })
            })
        });
        g.finish();

        assert_eq!(
            shared.stats().lookups,
            0,
            "no read of an unmarked object looks up"
        );
        assert_eq!(bystander.diverted(), 0);
    }
}

/// Reads that reach objects this tenant diverted: through a private slot patched to the copy
/// (no lookup), or through a base object that cannot be patched (a table lookup per read).
mod read_diverted {
    use crate::common;
    use cowheap::{Base, Format, ObjectIndex, ObjectSize, Tenant, Value};
    use criterion::Criterion;
    use rand::Rng;
    use std::collections::HashSet;
    use std::hint::black_box;

    /// Pairs (and so two-step reads) per iteration.
    const PAIRS: usize = 1024;

    /// The `read_diverted` group.
    pub(crate) fn bench(c: &mut Criterion) {
        let base = Base::new(common::large_heap());
        let heap = base.heap();

        // (B, j, X): slot j of pointers object B refers to pointers object X with a slot.
        // The Xs are distinct and never a B, so the tenant diverts every X and no B.
        let mut rng = common::rng(2);
        let mut pairs: Vec<(ObjectIndex, usize, ObjectIndex)> = Vec::with_capacity(PAIRS);
        let (mut bs, mut xs) = (HashSet::new(), HashSet::new());
        let n = heap.len() as u32;
        while pairs.len() < PAIRS {
            let b = ObjectIndex::from_u32(rng.random_range(0..n));
            if !common::is_pointer_object(heap, b) || xs.contains(&b) || bs.contains(&b) {
                continue;
            }
            let slots = heap.object(b).expect("b exists").slots;
            let j = rng.random_range(0..slots.len());
            let Some(x) = slots[j].as_base() else {
                continue;
            };
            if x == b || bs.contains(&x) || xs.contains(&x) || !common::is_pointer_object(heap, x) {
                continue;
            }
            bs.insert(b);
            xs.insert(x);
            pairs.push((b, j, x));
        }
        let through: Vec<(Value, usize)> =
            pairs.iter().map(|&(b, j, _)| (Value::base(b), j)).collect();

        // P holds every X in its slots (stored while the Xs are still base objects); then
        // the tenant writes each X, and one read of each P slot patches it to the copy.
        let mut t = Tenant::fork(&base);
        let class = t
            .class_of(heap.root("Smalltalk").expect("root"))
            .expect("class");
        let size = ObjectSize {
            slots: PAIRS,
            bytes: 0,
        };
        let p = t.alloc(class, Format::Pointers, size).expect("alloc P");
        for (i, &(_, _, x)) in pairs.iter().enumerate() {
            t.set_slot(p, i, Value::base(x)).expect("store X in P");
        }
        for &(_, _, x) in &pairs {
            let x = Value::base(x);
            let old = t.slot(x, 0).expect("X has a slot");
            t.set_slot(x, 0, old).expect("divert X");
        }
        for i in 0..PAIRS {
            let x = t.slot(p, i).expect("P slot");
            t.slot(x, 0).expect("X slot 0");
        }
        assert_eq!(t.diverted(), PAIRS);
        assert!(t.stats().patches >= PAIRS as u64, "every P slot patched");
        for &(b, _, _) in &pairs {
            assert!(!base.marks().is_marked(b.as_u32()), "B is never diverted");
        }

        let mut g = c.benchmark_group("read_diverted");
        common::configure(&mut g, 3);

        g.bench_function("plain_heap", |bn| {
            bn.iter(|| {
                black_box(&through).iter().fold(0u64, |acc, &(b, j)| {
                    let x = heap.slot_word(b.as_base().unwrap(), j).unwrap();
                    let y = heap.slot_word(x.as_base().unwrap(), 0).unwrap();
                    acc.wrapping_add(y.bits())
                })
            })
        });

        g.bench_function("patched_private_slot", |bn| {
            bn.iter(|| {
                (0..black_box(PAIRS)).fold(0u64, |acc, i| {
                    let x = t.slot(p, i).unwrap();
                    acc.wrapping_add(t.slot(x, 0).unwrap().word().bits())
                })
            })
        });

        let lookups = t.stats().lookups;
        g.bench_function("through_base_object", |bn| {
            bn.iter(|| {
                black_box(&through).iter().fold(0u64, |acc, &(b, j)| {
                    let x = t.slot(b, j).unwrap();
                    acc.wrapping_add(t.slot(x, 0).unwrap().word().bits())
                })
            })
        });
        g.finish();
        // Whether or not a filter skipped the group: a read through B looks X up.
        let (b, j) = through[0];
        let x = t.slot(b, j).unwrap();
        t.slot(x, 0).unwrap();
        assert!(t.stats().lookups > lookups, "reads through B look X up");
    }
}

/// The first write to a base object copies it: time by object size, against a plain copy of
/// as many words.
mod first_write {
    use crate::common;
    use cowheap::{Base, Builder, Format, Tenant, Value};
    use criterion::{BatchSize, BenchmarkId, Criterion};
    use std::hint::black_box;

    /// Object sizes, in pointer slots.
    const SIZES: [usize; 4] = [8, 64, 512, 4096];

    /// The `first_write` group.
    pub(crate) fn bench(c: &mut Criterion) {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let class = b.add(nil, Format::Pointers, vec![], vec![]).expect("class");
        let objects: Vec<Value> = SIZES
            .iter()
            .map(|&n| {
                let w = b
                    .add(class, Format::Pointers, vec![nil; n], vec![])
                    .expect("array-like object");
                Value::shared(w)
            })
            .collect();
        let base = Base::new(b.freeze().expect("small base"));
        let source: Vec<u64> = (0..*SIZES.last().expect("sizes") as u64).collect();

        let mut g = c.benchmark_group("first_write");
        common::configure(&mut g, 2);
        for (&slots, &obj) in SIZES.iter().zip(&objects) {
            g.bench_with_input(BenchmarkId::new("plain_copy", slots), &slots, |bn, &n| {
                bn.iter_batched(
                    || (),
                    |()| Box::<[u64]>::from(black_box(&source[..n])),
                    BatchSize::SmallInput,
                )
            });
            g.bench_with_input(BenchmarkId::new("tenant", slots), &obj, |bn, &obj| {
                bn.iter_batched(
                    || Tenant::fork(&base),
                    |mut t| {
                        t.set_slot(black_box(obj), 0, Value::int(1)).unwrap();
                        t
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

/// Forking a tenant is O(1): the same time over a thousand and a million base objects.
mod fork {
    use crate::common::{self, IMAGE_SEED};
    use cowheap::{Base, Tenant, synth};
    use criterion::Criterion;
    use std::hint::black_box;

    /// The `fork` group.
    pub(crate) fn bench(c: &mut Criterion) {
        let small = Base::new(synth::image(1_000, IMAGE_SEED));
        let large = Base::new(common::large_heap());

        let mut g = c.benchmark_group("fork");
        common::configure(&mut g, 2);
        for (id, base) in [("base_1k", &small), ("base_1m", &large)] {
            g.bench_function(id, |b| {
                b.iter_with_large_drop(|| Tenant::fork(black_box(base)))
            });
        }
        g.finish();
    }
}

/// Collection walks the private space only: the same time over a million-object base as over
/// an empty one.
mod collect {
    use crate::common;
    use cowheap::{Base, Format, ObjectIndex, ObjectSize, Tenant, Value};
    use criterion::{BatchSize, Criterion};
    use rand::seq::SliceRandom;
    use std::sync::Arc;

    /// Private objects allocated before each collection; half are reachable.
    const OBJECTS: usize = 10_000;

    /// Base objects the tenant diverts over the large base.
    const DIVERTED: usize = 100;

    /// A tenant of `base` holding [`OBJECTS`] private objects of `class`, the first half
    /// chained from root `chain`, and copies of `divert`.
    fn tenant(base: &Arc<Base>, class: Value, divert: &[ObjectIndex]) -> Tenant {
        let mut t = Tenant::fork(base);
        let size = ObjectSize { slots: 4, bytes: 0 };
        let objs: Vec<Value> = (0..OBJECTS)
            .map(|_| t.alloc(class, Format::Pointers, size).expect("alloc"))
            .collect();
        for pair in objs[..OBJECTS / 2].windows(2) {
            t.set_slot(pair[0], 0, pair[1]).expect("link");
        }
        t.set_root("chain", objs[0]).expect("root");
        for &x in divert {
            let x = Value::base(x);
            let old = t.slot(x, 0).expect("slot 0");
            t.set_slot(x, 0, old).expect("divert");
        }
        t
    }

    /// The `collect` group.
    pub(crate) fn bench(c: &mut Criterion) {
        let large = Base::new(common::large_heap());
        let large_class = {
            let t = Tenant::fork(&large);
            let smalltalk = large.heap().root("Smalltalk").expect("root");
            t.class_of(smalltalk).expect("class")
        };
        // Any objects with a slot but the class the private objects use.
        let mut divert: Vec<ObjectIndex> = common::with_slots(large.heap())
            .into_iter()
            .filter(|&x| Some(x) != large_class.as_base())
            .collect();
        divert.shuffle(&mut common::rng(5));
        divert.truncate(DIVERTED);

        let (empty_heap, empty_class) = common::empty_heap();
        let empty = Base::new(empty_heap);

        {
            let mut check = tenant(&large, large_class, &divert);
            let stats = check.collect();
            assert_eq!(check.diverted(), DIVERTED);
            assert_eq!(
                stats.freed as usize,
                OBJECTS / 2,
                "the unchained half is freed"
            );
        }

        let mut g = c.benchmark_group("collect");
        common::configure(&mut g, 3);
        g.bench_function("base_empty", |b| {
            b.iter_batched(
                || tenant(&empty, empty_class, &[]),
                |mut t| {
                    let stats = t.collect();
                    (t, stats)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("base_1m", |b| {
            b.iter_batched(
                || tenant(&large, large_class, &divert),
                |mut t| {
                    let stats = t.collect();
                    (t, stats)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

/// Short runs: one second of warm-up and two or three of measurement per benchmark.
/// Image files and tenant snapshots.
///
/// - `open`: mapping an image file of 1 thousand vs 1 million objects, trusted (O(1): header,
///   section table and roots only) and fully verified (O(size), parallel). Target for the
///   trusted open: `base_1m` at most 2x `base_1k`.
/// - `first_read`: reading every slot of every object of a 1-million-object image straight
///   from a fresh mapping (`mapped`) vs reading the whole file into memory first and summing
///   its words (`read_into_memory`). Both run against a warm page cache.
/// - `snapshot`: saving (to bytes) and restoring a tenant with 1,000 private objects over a
///   1-thousand and a 1-million-object base. Target: `base_1m` at most 1.5x `base_1k`.
mod files {
    use super::common::{IMAGE_SEED, LARGE, configure};
    use cowheap::heap::Verification;
    use cowheap::{Base, BaseHeap, Format, Tenant, Value, synth};
    use criterion::{BenchmarkId, Criterion};
    use std::hint::black_box;

    /// A tenant with 1,000 new objects linked into a list under a root, and 100 copies.
    fn tenant_with_private(base: &std::sync::Arc<Base>) -> Tenant {
        let mut t = Tenant::fork(base);
        let g = base
            .heap()
            .root("Smalltalk")
            .expect("synthetic images name Smalltalk");
        let class = t.class_of(g).expect("an object");
        let mut list = base.heap().nil();
        for i in 0..1_000 {
            let node = t
                .alloc_with(class, Format::Pointers, &[Value::int(i), list], &[])
                .expect("no quota");
            list = node;
        }
        t.set_root("list", list).expect("a private reference of t");
        let n = t.size(g).expect("an object").slots.min(100);
        for i in 0..n {
            let assoc = base.heap().slot(g, i).expect("in range");
            t.set_slot(assoc, 1, Value::int(i as i64))
                .expect("in range");
        }
        t
    }

    pub(crate) fn bench(c: &mut Criterion) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let small_path = dir.path().join("small.cowheap");
        let large_path = dir.path().join("large.cowheap");
        let small = synth::image(1_000, IMAGE_SEED);
        let large = synth::image(LARGE, IMAGE_SEED);
        small.save(&small_path).expect("saved");
        large.save(&large_path).expect("saved");

        let mut g = c.benchmark_group("open");
        configure(&mut g, 3);
        for (name, path) in [("base_1k", &small_path), ("base_1m", &large_path)] {
            g.bench_function(BenchmarkId::new("trusted", name), |b| {
                b.iter(|| BaseHeap::open_with(black_box(path), Verification::Trust).expect("opens"))
            });
        }
        g.sample_size(10);
        for (name, path) in [("base_1k", &small_path), ("base_1m", &large_path)] {
            g.bench_function(BenchmarkId::new("verified", name), |b| {
                b.iter(|| BaseHeap::open(black_box(path)).expect("opens"))
            });
        }
        g.finish();

        let mut g = c.benchmark_group("first_read");
        configure(&mut g, 5);
        g.sample_size(10);
        g.bench_function("mapped", |b| {
            b.iter(|| {
                let heap = BaseHeap::open_with(&large_path, Verification::Trust).expect("opens");
                let mut sum = 0u64;
                for x in heap.indices() {
                    for w in heap.object(x).expect("an object").slots {
                        sum = sum.wrapping_add(w.bits());
                    }
                }
                black_box(sum)
            })
        });
        g.bench_function("read_into_memory", |b| {
            b.iter(|| {
                let bytes = std::fs::read(&large_path).expect("reads");
                let sum = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .fold(0u64, u64::wrapping_add);
                black_box(sum)
            })
        });
        g.finish();

        let mut g = c.benchmark_group("snapshot");
        configure(&mut g, 3);
        for (name, heap) in [("base_1k", small), ("base_1m", large)] {
            let base = Base::new(heap);
            base.fingerprint();
            let t = tenant_with_private(&base);
            g.bench_function(BenchmarkId::new("save_restore", name), |b| {
                b.iter(|| {
                    let bytes = t.snapshot();
                    Tenant::restore_from(&base, black_box(&bytes)).expect("restores")
                })
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn main() {
    let mut c = config().configure_from_args();
    read_undiverted::bench(&mut c);
    read_diverted::bench(&mut c);
    first_write::bench(&mut c);
    fork::bench(&mut c);
    collect::bench(&mut c);
    files::bench(&mut c);
    c.final_summary();
}
