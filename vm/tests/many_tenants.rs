//! A thousand tenants of the Scratch base each compile and run a method of their own: each
//! answers with its own method, sees none of the others', and holds its own private bytes.

mod common;

use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};
use rayon::prelude::*;

/// Tenants: `COWHEAP_VM_TENANTS`, else 1,000 (the test profile optimises the interpreter's
/// crates, so the README's test command runs all of them too).
fn tenants() -> usize {
    std::env::var("COWHEAP_VM_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

#[test]
fn a_thousand_tenants_each_compile_and_run_their_own_method() {
    let base = common::base("Scratch-1.4.0.6.image");
    let symbols = Symbols::from_base(base.heap());
    let n = tenants();
    assert!(
        n >= 2,
        "isolation needs at least two tenants (COWHEAP_VM_TENANTS={n})"
    );
    let mut all: Vec<Tenant> = (0..n).map(|_| Tenant::fork(&base)).collect();
    let results: Vec<(i64, bool, u64)> = all
        .par_iter_mut()
        .enumerate()
        .map(|(i, t)| {
            let mut vm = Vm::new(t).unwrap();
            let src = format!("Integer compile: 'mine{i} ^self * 1000 + {i}'. 7 mine{i}");
            let mine = vm.evaluate(t, &symbols, &src, 50_000_000).unwrap().as_int().unwrap();
            // The neighbour's method is not here.
            let other = (i + 1) % n;
            let theirs = vm.evaluate(t, &symbols, &format!("7 mine{other}"), 50_000_000);
            let isolated = matches!(theirs, Err(VmError::DoesNotUnderstand { ref selector, .. }) if *selector == format!("mine{other}"));
            t.collect();
            (mine, isolated, t.stats().private_bytes)
        })
        .collect();
    for (i, &(mine, isolated, bytes)) in results.iter().enumerate() {
        assert_eq!(mine, 7000 + i as i64, "tenant {i}");
        assert!(isolated, "tenant {i} sees its neighbour's method");
        assert!(bytes > 0, "tenant {i} holds its method");
    }
    let mean = results.iter().map(|r| r.2).sum::<u64>() as f64 / n as f64;
    // What the test measured, for the report: private bytes per tenant after collection.
    eprintln!("{n} tenants, private bytes per tenant after collection: {mean:.0}");
    // A method, its dictionary entry and the diverted class are far from the base's size.
    assert!(mean < base.heap().memory_bytes() as f64 / 20.0, "{mean}");
}
