//! The interpreter on a cowheap tenant against the same interpreter on the flat heap.
//!
//! Workloads, on `bootstrapped.image` (closures, `benchFib` in the image): `benchFib` (sends
//! and context allocation), and on `Scratch-1.4.0.6.image`: a compile-and-run of a small
//! method with the image's own compiler. Each group has the flat heap as its baseline.
//! Criterion's throughput is set to the bytecodes one iteration runs (counted once before
//! timing), so its "elements/s" reads as bytecodes per second.
//!
//! `cargo bench -p cowheap-vm --bench interp`. The images are found through
//! `COWHEAP_IMAGES` (else `../shared/images`); a missing image fails the bench.

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};
use criterion::{Criterion, Throughput, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;

fn image(name: &str) -> cowheap_heap::BaseHeap {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES",
        path.display()
    );
    cowheap_squeak::import(&path).expect("import").heap
}

/// Bytecodes one run of `f` takes.
fn count<M: ObjectMemory>(m: &mut M, f: impl Fn(&mut Vm, &mut M)) -> u64 {
    let mut vm = Vm::new(m).expect("vm");
    f(&mut vm, m);
    vm.stats().bytecodes
}

fn bench_fib(c: &mut Criterion) {
    let heap = image("bootstrapped.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let mut tenant = Tenant::fork(&base);
    let n = 22;
    let fib = |vm: &mut Vm, m: &mut FlatHeap| {
        let r = vm
            .send_named(m, &symbols, Value::int(n), "benchFib", &[], u64::MAX)
            .unwrap();
        assert_eq!(r.as_int(), Some(57313));
    };
    let fib_t = |vm: &mut Vm, m: &mut Tenant| {
        let r = vm
            .send_named(m, &symbols, Value::int(n), "benchFib", &[], u64::MAX)
            .unwrap();
        assert_eq!(r.as_int(), Some(57313));
    };
    let bytecodes = count(&mut flat, fib);
    let mut g = c.benchmark_group("benchFib 22");
    g.throughput(Throughput::Elements(bytecodes));
    g.sample_size(10);
    let mut vm = Vm::new(&flat).unwrap();
    g.bench_function("flat heap", |b| {
        b.iter(|| fib(&mut vm, black_box(&mut flat)))
    });
    let mut vm = Vm::new(&tenant).unwrap();
    g.bench_function("tenant", |b| {
        b.iter(|| fib_t(&mut vm, black_box(&mut tenant)))
    });
    g.finish();
}

fn compile_and_run(c: &mut Criterion) {
    let heap = image("Scratch-1.4.0.6.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let mut tenant = Tenant::fork(&base);
    let src = "Integer compile: 'triple ^self * 3'. 14 triple";
    let bytecodes = count(&mut flat, |vm, m| {
        vm.evaluate(m, &symbols, src, u64::MAX).unwrap();
    });
    let mut g = c.benchmark_group("compile and run (Scratch)");
    g.throughput(Throughput::Elements(bytecodes));
    g.sample_size(10);
    let mut vm = Vm::new(&flat).unwrap();
    g.bench_function("flat heap", |b| {
        b.iter(|| {
            assert_eq!(
                vm.evaluate(&mut flat, &symbols, src, u64::MAX)
                    .unwrap()
                    .as_int(),
                Some(42)
            )
        })
    });
    let mut vm = Vm::new(&tenant).unwrap();
    g.bench_function("tenant", |b| {
        b.iter(|| {
            assert_eq!(
                vm.evaluate(&mut tenant, &symbols, src, u64::MAX)
                    .unwrap()
                    .as_int(),
                Some(42)
            )
        })
    });
    g.finish();
}

mod group {
    #![allow(
        missing_docs,
        reason = "criterion's macro makes an undocumented function"
    )]
    criterion::criterion_group!(benches, super::bench_fib, super::compile_and_run);
}

criterion_main!(group::benches);
