//! The fork comparator of the interpreter's bench (`examples/fork.rs`, its machinery in
//! `examples/fork/probe.rs`) checked: `fork()`ed children running on a flat heap their parent
//! built compute what a tenant computes, with the same bytecodes and sends; each reads its
//! own `Private_Dirty`; and what a child changes stays in the child.
//!
//! One test function, so that the process forks with no other test running (the harness's
//! main thread only waits; see the probe's module doc on forking with threads).
#![cfg(target_os = "linux")]

mod common;
#[allow(
    dead_code,
    reason = "the example uses parts of the probe the test does not"
)]
#[path = "../examples/fork/probe.rs"]
mod probe;

use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, Symbols, Vm, VmError};
use probe::{ChildRuns, Program};

/// `benchFib` as the image defines it, computed here.
fn bench_fib(n: i64) -> i64 {
    if n < 2 {
        1
    } else {
        bench_fib(n - 1) + bench_fib(n - 2) + 1
    }
}

const RUNS: ChildRuns = ChildRuns {
    budget: 1_000_000_000,
    rounds: 1,
    collection_step: None,
};

#[test]
fn forked_children_agree_with_a_tenant_report_private_dirty_and_keep_their_changes() {
    assert_eq!(
        probe::kib_field("Rss:  10 kB\nPrivate_Dirty:     12 kB\n", "Private_Dirty:"),
        Some(12 * 1024)
    );
    assert_eq!(bench_fib(10), 177, "the image's own figure");

    // bootstrapped.image (closures, no compiler): sends to a SmallInteger.
    let heap = common::import("bootstrapped.image");
    let symbols = Symbols::from_base(&heap);
    let mut inherited = FlatHeap::from_base(&heap);
    let base = cowheap_forwarders::Base::new(heap);
    let mut tenant = Tenant::fork(&base);
    let mut vm = Vm::new(&tenant).unwrap();
    let programs = [
        (
            Program::Send {
                receiver: 26,
                selector: "benchFib",
            },
            Some(bench_fib(26)),
        ),
        (
            Program::Send {
                receiver: 10,
                selector: "benchmark",
            },
            None,
        ),
    ];
    for (program, expected) in &programs {
        let on_tenant = program
            .run(&mut vm, &mut tenant, &symbols, RUNS.budget)
            .unwrap();
        assert!(on_tenant.answer.is_some(), "{}", program.label());
        if let Some(e) = expected {
            assert_eq!(on_tenant.answer, Some(*e), "{}", program.label());
        }
        // Three children, two at a time: a wave of two and a wave of one.
        let children = probe::run_children(&mut inherited, &symbols, program, RUNS, 3, 2).unwrap();
        assert_eq!(children.reports.len(), 3);
        for report in &children.reports {
            let best = report.outcome.expect("the child's run");
            assert_eq!(
                (best.first.answer, best.first.bytecodes, best.first.sends),
                (on_tenant.answer, on_tenant.bytecodes, on_tenant.sends),
                "{}",
                program.label()
            );
            assert_eq!(best.fastest, best.first, "one round: it is the fastest");
            let start = report
                .dirty_at_start
                .expect("Private_Dirty as the child starts");
            let after = report.dirty_after.expect("Private_Dirty after the run");
            assert!(start > 0, "a forked child has dirtied its stack at least");
            // The run allocates contexts and objects of its own: pages only the child has.
            assert!(after > start, "{after} after, {start} at the start");
        }
    }

    // mini.image (pre-closure, a compiler): a child compiles a method into Integer and runs
    // it; the parent's heap, which every child inherited, does not have it.
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut inherited = FlatHeap::from_base(&heap);
    let base = cowheap_forwarders::Base::new(heap);
    let mut tenant = Tenant::fork(&base);
    let mut vm = Vm::new(&tenant).unwrap();
    let program = Program::Evaluate(
        "Integer addSelector: #triple withMethod: ((Compiler new compile: 'triple ^self * 3' \
         in: Integer notifying: nil ifFail: [nil]) generate: #(0 0 0 0)). 14 triple"
            .into(),
    );
    let on_tenant = program
        .run(&mut vm, &mut tenant, &symbols, RUNS.budget)
        .unwrap();
    assert_eq!(on_tenant.answer, Some(42));
    let children = probe::run_children(&mut inherited, &symbols, &program, RUNS, 2, 1).unwrap();
    for report in &children.reports {
        let best = report.outcome.expect("the child's run");
        assert_eq!(
            (best.first.answer, best.first.bytecodes, best.first.sends),
            (Some(42), on_tenant.bytecodes, on_tenant.sends)
        );
        assert!(report.dirty_after > report.dirty_at_start);
    }
    let mut parent = Vm::new(&inherited).unwrap();
    match parent.evaluate(&mut inherited, &symbols, "14 triple", RUNS.budget) {
        Err(VmError::DoesNotUnderstand { selector, .. }) => assert_eq!(selector, "triple"),
        other => panic!("the parent's heap must not have the children's method: {other:?}"),
    }
}
