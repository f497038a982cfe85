//! Segment throughput against a tenant snapshot of the same objects: extraction, writing
//! the segment file's bytes, reading them back and importing into a fresh tenant; beside
//! each, the tenant snapshot and restore of the same private objects. Objects per second
//! (criterion's element throughput).
//!
//! `cargo bench -p cowheap-segment`

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, synth};
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
    t.set_root("head", next).unwrap();
    (base, t, next)
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

fn main() {
    let mut c = Criterion::default().configure_from_args();
    segments(&mut c);
    c.final_summary();
}
