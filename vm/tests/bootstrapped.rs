//! `bootstrapped.image` (6505, closures, no compiler): benchFib by `perform`, on a tenant
//! and on the flat heap.

mod common;

use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm, VmError};

#[test]
fn bench_fib_on_a_tenant_and_on_the_flat_heap() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    assert!(vm.specials().closures);
    for (n, want) in [(10, 177), (20, 21891)] {
        let r = vm
            .send_named(&mut t, &symbols, Value::int(n), "benchFib", &[], 50_000_000)
            .unwrap();
        assert_eq!(r.as_int(), Some(want), "{n} benchFib on a tenant");
    }
    let mut flat = FlatHeap::from_base(base.heap());
    let mut vm = Vm::new(&flat).unwrap();
    for (n, want) in [(10, 177), (20, 21891)] {
        let r = vm
            .send_named(
                &mut flat,
                &symbols,
                Value::int(n),
                "benchFib",
                &[],
                50_000_000,
            )
            .unwrap();
        assert_eq!(r.as_int(), Some(want), "{n} benchFib on the flat heap");
    }
}

#[test]
fn a_runaway_stops_at_its_budget_and_resumes_to_the_same_answer() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let err = vm
        .send_named(&mut t, &symbols, Value::int(20), "benchFib", &[], 10_000)
        .unwrap_err();
    assert!(
        matches!(err, VmError::BudgetExhausted { budget: 10_000, .. }),
        "{err}"
    );
    assert!(vm.is_suspended(&t));
    let mut rounds = 0;
    let r = loop {
        rounds += 1;
        match vm.resume(&mut t, 10_000) {
            Ok(v) => break v,
            Err(VmError::BudgetExhausted { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(r.as_int(), Some(21891));
    assert!(rounds > 10, "took {rounds} resumes");
    assert!(!vm.is_suspended(&t));
}

#[test]
fn a_suspended_run_is_snapshotted_restored_in_another_process_and_resumed() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let err = vm
        .send_named(&mut t, &symbols, Value::int(22), "benchFib", &[], 100_000)
        .unwrap_err();
    assert!(matches!(err, VmError::BudgetExhausted { .. }), "{err}");
    let dir = std::env::temp_dir().join(format!("cowheap-vm-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snap = dir.join("suspended.snapshot");
    t.save_snapshot(&snap).unwrap();
    let image = common::images().join("bootstrapped.image");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cowheap-vm-resume"))
        .arg(&image)
        .arg(&snap)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 22 benchFib, resumed elsewhere; and here, the same tenant resumed in this process.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "57313");
    let mine = loop {
        match vm.resume(&mut t, 1_000_000) {
            Ok(v) => break v,
            Err(VmError::BudgetExhausted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(mine.as_int(), Some(57313));
}

#[test]
fn a_long_run_collects_the_tenants_garbage() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    vm.set_collection_step(256 << 10);
    let r = vm
        .send_named(
            &mut t,
            &symbols,
            Value::int(22),
            "benchFib",
            &[],
            100_000_000,
        )
        .unwrap();
    assert_eq!(r.as_int(), Some(57313));
    let st = vm.stats();
    assert!(st.contexts > 20_000, "{st:?}");
    assert!(st.collections > 5, "{st:?}");
    // Each context is over a hundred bytes: without collection the tenant would hold
    // megabytes; it holds what the last stretch since a collection allocated.
    t.collect();
    assert!(t.stats().private_bytes < 64 << 10, "{:?}", t.stats());
}

#[test]
fn many_tenants_run_the_same_send() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let options = cowheap_vm::run::RunOptions {
        tenants: 50,
        budget: 10_000_000,
        threads: Some(2),
        selector: Some("benchFib".into()),
    };
    let report = cowheap_vm::run::run_base(&base, &symbols, "15", &options).unwrap();
    assert_eq!(report.result().unwrap().as_deref().ok(), Some("1973"));
    assert_eq!(report.agreeing(), 50);
    assert!(report.bytecodes() > 50 * 1973);
    assert!(report.to_string().contains("50 tenant(s)"));
}

#[test]
fn the_images_sieve_benchmark_agrees_on_both_memories() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let on_tenant = vm
        .send_named(
            &mut t,
            &symbols,
            Value::int(2),
            "benchmark",
            &[],
            100_000_000,
        )
        .unwrap();
    let mut flat = FlatHeap::from_base(base.heap());
    let mut vm = Vm::new(&flat).unwrap();
    let on_flat = vm
        .send_named(
            &mut flat,
            &symbols,
            Value::int(2),
            "benchmark",
            &[],
            100_000_000,
        )
        .unwrap();
    // Integer>>benchmark sieves 8190 flags: 1028 primes.
    assert_eq!(on_tenant.as_int(), Some(1028));
    assert_eq!(on_flat.as_int(), Some(1028));
    assert!(vm.stats().bytecodes > 100_000);
}

/// A tenant count past what memory can hold is an error, not the end of the process.
#[test]
fn too_many_tenants_to_run_is_an_error() {
    let base = common::base("bootstrapped.image");
    let symbols = Symbols::from_base(base.heap());
    for tenants in [1 << 40, usize::MAX] {
        let options = cowheap_vm::run::RunOptions {
            tenants,
            budget: 1_000,
            threads: Some(1),
            selector: Some("benchFib".into()),
        };
        let r = cowheap_vm::run::run_base(&base, &symbols, "15", &options);
        assert!(
            matches!(r, Err(cowheap_vm::run::RunError::TooManyTenants { tenants: n }) if n == tenants),
            "{tenants}: {:?}",
            r.map(|_| ())
        );
    }
}
