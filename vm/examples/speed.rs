//! Bytecodes and sends per second on a tenant and on the flat heap, run in turn, the best of
//! several rounds each (the machine is shared; the best is the least disturbed). Workloads on
//! bootstrapped.image: `N benchFib` (sends and contexts) and `10 benchmark` (the image's
//! sieve: loops, `at:put:`, arithmetic); and on Scratch-1.4.0.6.image `compile`, a
//! compile-and-run of a small method with the image's own compiler (`Integer compile:
//! 'triple ^self * 3'. 14 triple`), as the criterion bench runs it.
//! `cargo run --release -p cowheap-vm --example speed -- IMAGES_DIR [N] [ROUNDS]`;
//! `SPEED_ONLY=flat` or `tenant` runs one side only (for callgrind), `SPEED_WORKLOAD=benchFib`,
//! `benchmark` or `compile` one workload (`compile` only when named). `ROUNDS` 0 imports and
//! makes the interpreters without running anything: under callgrind, the cost to take off.

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};
use std::time::Instant;

/// Seconds, bytecodes and sends of one run.
fn run<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, sel: &str, n: i64) -> (f64, u64, u64) {
    let before = vm.stats();
    let t = Instant::now();
    let r = vm
        .send_named(m, s, Value::int(n), sel, &[], u64::MAX)
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(r.as_int().is_some());
    let st = vm.stats();
    (
        secs,
        st.bytecodes - before.bytecodes,
        st.sends - before.sends,
    )
}

/// Seconds, bytecodes and sends of one compile-and-run.
fn compile<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols) -> (f64, u64, u64) {
    let before = vm.stats();
    let t = Instant::now();
    let r = vm
        .evaluate(
            m,
            s,
            "Integer compile: 'triple ^self * 3'. 14 triple",
            u64::MAX,
        )
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.as_int(), Some(42));
    let st = vm.stats();
    (
        secs,
        st.bytecodes - before.bytecodes,
        st.sends - before.sends,
    )
}

/// The `compile` workload on Scratch.
fn compile_workload(dir: &str, rounds: usize, only: &str) {
    let heap = cowheap_squeak::import(format!("{dir}/Scratch-1.4.0.6.image"))
        .unwrap()
        .heap;
    let s = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vf = Vm::new(&flat).unwrap();
    let mut vt = Vm::new(&t).unwrap();
    let (mut best_f, mut best_t) = (f64::MAX, f64::MAX);
    let (mut bc, mut sends) = (0, 0);
    for _ in 0..rounds {
        if only != "tenant" {
            let (f, b, sn) = compile(&mut vf, &mut flat, &s);
            best_f = best_f.min(f);
            (bc, sends) = (b, sn);
        }
        if only != "flat" {
            let (tt, b, sn) = compile(&mut vt, &mut t, &s);
            best_t = best_t.min(tt);
            (bc, sends) = (b, sn);
        }
    }
    for (label, secs) in [("flat heap", best_f), ("tenant", best_t)] {
        if secs < f64::MAX {
            println!(
                "{label:10} compile and run: {bc} bytecodes, {sends} sends, best {secs:.4} s: {:.1} M bytecodes/s",
                bc as f64 / secs / 1e6,
            );
        }
    }
    for (label, vm) in [("flat heap", &vf), ("tenant", &vt)] {
        let st = vm.stats();
        println!(
            "{label:10} in all: {} method cache misses, {} collections",
            st.cache_misses, st.collections
        );
    }
    print_lookups(&t);
    if best_f < f64::MAX && best_t < f64::MAX {
        println!(
            "compile and run: tenant / flat heap throughput {:.2}x",
            best_f / best_t
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/images".into());
    let n: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(26);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let only = std::env::var("SPEED_ONLY").unwrap_or_default();
    if std::env::var("SPEED_WORKLOAD").as_deref() == Ok("compile") {
        compile_workload(&dir, rounds, &only);
        return;
    }
    let heap = cowheap_squeak::import(format!("{dir}/bootstrapped.image"))
        .unwrap()
        .heap;
    let s = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vf = Vm::new(&flat).unwrap();
    let mut vt = Vm::new(&t).unwrap();
    // `SPEED_WORKLOAD=benchFib` or `benchmark` runs one workload only.
    let workload = std::env::var("SPEED_WORKLOAD").unwrap_or_default();
    for (sel, arg) in [("benchFib", n), ("benchmark", 10)] {
        if !workload.is_empty() && workload != sel {
            continue;
        }
        let (mut best_f, mut best_t) = (f64::MAX, f64::MAX);
        let (mut bc, mut sends) = (0, 0);
        for _ in 0..rounds {
            if only != "tenant" {
                let (f, b, sn) = run(&mut vf, &mut flat, &s, sel, arg);
                best_f = best_f.min(f);
                (bc, sends) = (b, sn);
            }
            if only != "flat" {
                let (tt, b, sn) = run(&mut vt, &mut t, &s, sel, arg);
                best_t = best_t.min(tt);
                (bc, sends) = (b, sn);
            }
        }
        for (label, secs) in [("flat heap", best_f), ("tenant", best_t)] {
            if secs < f64::MAX {
                println!(
                    "{label:10} {arg} {sel}: {bc} bytecodes, {sends} sends, best {secs:.3} s: {:.1} M bytecodes/s, {:.2} M sends/s",
                    bc as f64 / secs / 1e6,
                    sends as f64 / secs / 1e6
                );
            }
        }
        if best_f < f64::MAX && best_t < f64::MAX {
            println!(
                "{sel}: tenant / flat heap throughput {:.2}x",
                best_f / best_t
            );
        }
    }
    println!("tenant collections: {}", vt.stats().collections);
    print_lookups(&t);
}

/// How often the tenant's reads consulted its table: in one tenant, each lookup is a read
/// through a base reference to an object it copied, or a forwarder followed (the path the
/// object-memory bench calls (b)); with other tenants on the base, a probe that finds
/// nothing for an object another tenant diverted counts too.
fn print_lookups(t: &Tenant) {
    let st = t.stats();
    println!(
        "tenant in all: {} objects copied, {} table lookups, {} slots patched",
        st.copies, st.lookups, st.patches
    );
}
