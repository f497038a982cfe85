//! Bytecodes and sends per second of `benchFib` on a tenant and on the flat heap:
//! `cargo run --release -p cowheap-vm --example speed -- IMAGES_DIR [N]`.

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};
use std::time::Instant;

fn time<M: ObjectMemory>(label: &str, m: &mut M, s: &Symbols, n: i64) -> f64 {
    let mut vm = Vm::new(m).unwrap();
    let t = Instant::now();
    let r = vm
        .send_named(m, s, Value::int(n), "benchFib", &[], u64::MAX)
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let st = vm.stats();
    println!(
        "{label:10} {n} benchFib = {:?}: {:.3} s, {:.1} M bytecodes/s, {:.2} M sends/s, {} collections",
        r.as_int(),
        secs,
        st.bytecodes as f64 / secs / 1e6,
        st.sends as f64 / secs / 1e6,
        st.collections
    );
    secs
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/images".into());
    let n: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(26);
    let heap = cowheap_squeak::import(format!("{dir}/bootstrapped.image"))
        .unwrap()
        .heap;
    let s = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    for _ in 0..2 {
        let f = time("flat", &mut flat, &s, n);
        let tt = time("tenant", &mut t, &s, n);
        println!("tenant / flat throughput: {:.2}x", f / tt);
    }
}
