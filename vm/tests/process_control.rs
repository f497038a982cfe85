//! Processes: `Processor yield` (primitive 167) and priorities, on mini.image (compiled by
//! its own compiler), on both memories.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

/// The bytecode budget of each run.
const BIG: u64 = 20_000_000;

/// Evaluates `defs` (source that installs methods), failing the test on an error.
fn install<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, defs: &str) {
    vm.evaluate(m, s, defs, BIG)
        .unwrap_or_else(|e| panic!("{defs}: {e}"));
}

/// `v printString`.
fn printed<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, v: Value) -> String {
    vm.print_string(m, s, v, BIG).unwrap()
}

/// Runs `body` (a method of Object, taking no argument) on a flat heap and on a tenant of
/// mini.image, after installing `defs`, and answers the two printStrings.
fn mini_both(defs: &[String], body: &str) -> [String; 2] {
    fn run<M: ObjectMemory>(m: &mut M, s: &Symbols, defs: &[String], body: &str) -> String {
        let mut vm = Vm::new(m).unwrap();
        for d in defs {
            install(&mut vm, m, s, d);
        }
        install(
            &mut vm,
            m,
            s,
            &common::def("Object", "run", &format!("run {body}")),
        );
        let sel = vm.evaluate(m, s, "#run", BIG).unwrap();
        let nil = vm.specials().nil;
        let v = vm
            .perform(m, nil, sel, &[], BIG)
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        printed(&mut vm, m, s, v)
    }
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let mut flat = FlatHeap::from_base(&heap);
    let a = run(&mut flat, &symbols, defs, body);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let b = run(&mut t, &symbols, defs, body);
    [a, b]
}

/// `Processor yield` (primitive 167) puts the active process at the back of its runnable
/// list and runs the highest-priority runnable process, as Squeak's `primitiveYield` does
/// (`addLastLink: activeProc toList: processList. transferTo: self wakeHighestPriority`):
/// a process of higher priority that is runnable runs before the others of the active
/// one's priority. Here the active process lowered its own priority to 3, with `p` (4) and
/// `q` (3) runnable: the yield runs `p`, then `q`, then the yielder.
#[test]
fn yield_runs_the_highest_priority_runnable_process() {
    let defs = [common::def(
        "ProcessorScheduler",
        "primYield",
        "primYield <primitive: 167> ^nil",
    )];
    let body = "| a p q | a := OrderedCollection new. \
                p := [a add: #p] newProcess. p priority: 4. p resume. \
                Processor activeProcess priority: 3. \
                q := [a add: #q] newProcess. q priority: 3. q resume. \
                Processor primYield. a add: #main. \
                Processor activeProcess priority: 4. ^a asArray";
    for r in mini_both(&defs, body) {
        assert_eq!(r, "(p q main )");
    }
}
