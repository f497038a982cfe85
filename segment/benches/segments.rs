//! Segment throughput against a tenant snapshot of the same objects: extraction, writing
//! the segment file's bytes, reading them back and importing into a fresh tenant; beside
//! each, the tenant snapshot and restore of the same private objects. Objects per second
//! (criterion's element throughput).
//!
//! The `swap` group: swapping the same objects out of a tenant (extract, file bytes, the
//! store's write, stubbing every member, the collection) and faulting
//! them back in (the store's read, verification, import, `fill_stub`), to a store in memory
//! and to a directory (each write synced); the first touch through a stub of a small segment
//! in a large tenant (the latency a reader sees), by a read by `&self` (which makes the
//! segment's view, leaving it out) and by a fault. The `view` group: a walk of the chain
//! through its stubs (the view made) against the same walk with the chain in. Before the
//! groups, the tenant's private bytes and memory before and after a swap-out, with the
//! view made, and back in are printed.
//!
//! `cargo bench -p cowheap-segment`

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, synth};
use cowheap_segment::swap::{DirStore, MemStore, Swapper};
use cowheap_segment::{file, tenant};
use cowheap_tenants::Tenant;
use criterion::{BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

/// A tenant holding `n` private objects in a chain (each: next, an integer, a base object,
/// a 16-byte object of its own), and the chain's head.
fn chain(n: usize) -> (Arc<Base>, Tenant, Value) {
    let base = Base::new(synth::image(1_000, 1));
    let mut t = Tenant::fork(&base);
    let head = add_chain(&mut t, n, "head");
    (base, t, head)
}

/// Adds such a chain of `n` objects to `t`, held by root `name`; answers its head.
fn add_chain(t: &mut Tenant, n: usize, name: &str) -> Value {
    let base = t.base().clone();
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let mut next = base.heap().nil();
    for i in 0..n / 2 {
        let b = t
            .alloc(
                class,
                Format::Bytes,
                ObjectSize {
                    slots: 0,
                    bytes: 16,
                },
            )
            .unwrap();
        let o = t
            .alloc(class, Format::Pointers, ObjectSize { slots: 4, bytes: 0 })
            .unwrap();
        t.set_slot(o, 0, next).unwrap();
        t.set_slot(o, 1, Value::int(i as i64)).unwrap();
        t.set_slot(o, 2, Value::base(ObjectIndex::from_u32((i % 900) as u32)))
            .unwrap();
        t.set_slot(o, 3, b).unwrap();
        next = o;
    }
    t.set_root(name, next).unwrap();
    next
}

fn segments(c: &mut Criterion) {
    const N: usize = 20_000;
    let (base, t, head) = chain(N);
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("extract", |b| {
        b.iter(|| black_box(tenant::extract(&t, &[head], &[]).unwrap()))
    });
    let seg = tenant::extract(&t, &[head], &[]).unwrap();
    assert_eq!(seg.objects.len(), N);
    g.bench_function("write bytes", |b| {
        b.iter(|| black_box(file::to_bytes(&seg).unwrap()))
    });
    let bytes = file::to_bytes(&seg).unwrap();
    g.bench_function("read and import", |b| {
        b.iter_batched(
            || Tenant::fork(&base),
            |mut t2| {
                let mut s = file::from_bytes(&bytes, Some(base.fingerprint())).unwrap();
                black_box(s.import_into(&mut t2, &[], false).unwrap());
                t2
            },
            BatchSize::LargeInput,
        )
    });
    // The baseline: a tenant snapshot of the same private objects, and its restore.
    g.bench_function("tenant snapshot", |b| b.iter(|| black_box(t.snapshot())));
    let snap = t.snapshot();
    g.bench_function("tenant restore", |b| {
        b.iter(|| black_box(Tenant::restore_from(&base, &snap).unwrap()))
    });
    g.finish();
}

/// A tenant holding a chain of `n` under "head" and, if `rest` > 0, another of `rest` under
/// "rest"; a swapper (into `store`) and its chain swapped out.
fn swapped(n: usize, rest: usize, swapper: &Swapper) -> (Tenant, Value) {
    let (_, mut t, head) = chain(n);
    if rest > 0 {
        add_chain(&mut t, rest, "rest");
    }
    swapper.swap_out(&mut t, &[head]).unwrap();
    (t, head)
}

fn swap(c: &mut Criterion) {
    const N: usize = 20_000;
    // Memory before and after, once.
    {
        let (_, mut t, head) = chain(N);
        t.collect();
        let (b0, m0) = (t.stats().private_bytes, t.memory_bytes());
        let swapper = Swapper::new(MemStore::new());
        let out = swapper.swap_out(&mut t, &[head]).unwrap();
        let (b1, m1) = (t.stats().private_bytes, t.memory_bytes());
        t.size(head).unwrap();
        let mv = t.memory_bytes();
        t.with_faults(|t| t.size(head)).unwrap();
        t.collect();
        let (b2, m2) = (t.stats().private_bytes, t.memory_bytes());
        println!(
            "swap of {} objects (file {} bytes): private bytes {b0} -> {b1} -> {b2} (out, back); \
             memory_bytes {m0} -> {m1} (out) -> {mv} (out, view made) -> {m2} (back)",
            out.objects, out.file_bytes
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("swap");
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("swap out (memory store)", |b| {
        b.iter_batched(
            || {
                let (_, t, head) = chain(N);
                (t, head, Swapper::new(MemStore::new()))
            },
            |(mut t, head, s)| {
                black_box(s.swap_out(&mut t, &[head]).unwrap());
                (t, s)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("swap out (directory, synced)", |b| {
        let mut k = 0;
        b.iter_batched(
            || {
                k += 1;
                let (_, t, head) = chain(N);
                let store = DirStore::new(dir.path().join(format!("out{k}"))).unwrap();
                (t, head, Swapper::new(store))
            },
            |(mut t, head, s)| {
                black_box(s.swap_out(&mut t, &[head]).unwrap());
                (t, s)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("fault in (memory store)", |b| {
        b.iter_batched(
            || {
                let s = Swapper::new(MemStore::new());
                let (t, head) = swapped(N, 0, &s);
                (t, head, s)
            },
            |(mut t, head, s)| {
                black_box(t.with_faults(|t| t.size(head)).unwrap());
                (t, s)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("fault in (directory)", |b| {
        let mut k = 0;
        b.iter_batched(
            || {
                k += 1;
                let store = DirStore::new(dir.path().join(format!("in{k}"))).unwrap();
                let s = Swapper::new(store);
                let (t, head) = swapped(N, 0, &s);
                (t, head, s)
            },
            |(mut t, head, s)| {
                black_box(t.with_faults(|t| t.size(head)).unwrap());
                (t, s)
            },
            BatchSize::PerIteration,
        )
    });
    // The baseline: a snapshot of the tenant holding the same objects, and its restore.
    let (base, t, _) = chain(N);
    g.bench_function("tenant snapshot", |b| b.iter(|| black_box(t.snapshot())));
    let snap = t.snapshot();
    g.bench_function("tenant restore", |b| {
        b.iter(|| black_box(Tenant::restore_from(&base, &snap).unwrap()))
    });
    g.finish();

    // Reads through stubs, the view made, against the same reads with the segment in: a
    // walk of the chain (slot 0 of each object, then slot 1).
    let walk = |t: &Tenant, head: Value| {
        let (mut v, mut sum) = (head, 0i64);
        while let Ok(next) = t.slot(v, 0) {
            sum += t.slot(v, 1).unwrap().as_int().unwrap_or(0);
            v = next;
        }
        sum
    };
    let mut g = c.benchmark_group("view");
    g.throughput(Throughput::Elements(N as u64 / 2));
    let (_, t_in, head_in) = chain(N);
    g.bench_function("walk, chain in", |b| {
        b.iter(|| black_box(walk(&t_in, head_in)))
    });
    let s = Swapper::new(MemStore::new());
    let (t_out, head_out) = swapped(N, 0, &s);
    assert_eq!(walk(&t_out, head_out), walk(&t_in, head_in));
    assert!(t_out.stub_segment(head_out).unwrap().is_some());
    g.bench_function("walk through stubs (view made)", |b| {
        b.iter(|| black_box(walk(&t_out, head_out)))
    });
    g.finish();

    // First touch: a read through the stub of a small segment in a tenant of 100,000 other
    // private objects, the time until the read answers, by `&self` (the view made, the
    // segment left out) and with faults (the segment brought back). Timed by hand over 31
    // runs (each needs a fresh tenant, too costly to make as often as criterion would ask).
    for n in [16, 1_000, 20_000] {
        let mut views: Vec<std::time::Duration> = (0..31)
            .map(|_| {
                let s = Swapper::new(MemStore::new());
                let (t, head) = swapped(n, 100_000, &s);
                let start = std::time::Instant::now();
                black_box(t.slot(head, 1).unwrap());
                start.elapsed()
            })
            .collect();
        views.sort();
        println!(
            "first read by &self, {n}-object segment in a tenant of 100k other objects (view \
             made, segment left out): median {:?}, min {:?}, max {:?}",
            views[15], views[0], views[30]
        );
        let mut times: Vec<std::time::Duration> = (0..31)
            .map(|_| {
                let s = Swapper::new(MemStore::new());
                let (mut t, head) = swapped(n, 100_000, &s);
                let start = std::time::Instant::now();
                black_box(t.with_faults(|t| t.slot(head, 1)).unwrap());
                start.elapsed()
            })
            .collect();
        times.sort();
        // Beside it, one scan of the tenant's stubs (O(private keys)), which the first touch
        // no longer makes: the tenant counts its stubs per segment.
        let s = Swapper::new(MemStore::new());
        let (t, _) = swapped(n, 100_000, &s);
        let start = std::time::Instant::now();
        black_box(t.stubs().count());
        let scan = start.elapsed();
        println!(
            "first touch with faults, {n}-object segment in a tenant of 100k other objects: median {:?}, \
             min {:?}, max {:?}; one scan of the tenant's stubs {scan:?}",
            times[15], times[0], times[30]
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    segments(&mut c);
    swap(&mut c);
    c.final_summary();
}
