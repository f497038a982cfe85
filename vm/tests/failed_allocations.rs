//! A primitive that fails leaves no object behind: `basicNew` (primitive 70) of an
//! indexable class fails before it makes anything, so its fallback's `basicNew: 0` is the
//! only object made. Before, each such send left an unreachable instance, charged to the
//! quota until a collection and found by `someInstance`.

mod common;

use common::def;
use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm};

const BUDGET: u64 = 50_000_000;

/// Evaluates `setup`, then `src`, on a fresh tenant of mini.image and answers the
/// printString of `src`'s value.
fn run(setup: &str, src: &str) -> String {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    t.set_quota(Some(64 << 20));
    let mut vm = Vm::new(&t).unwrap();
    vm.evaluate(&mut t, &symbols, &format!("{setup} nil"), BUDGET)
        .unwrap();
    let v = vm.evaluate(&mut t, &symbols, src, BUDGET).unwrap();
    vm.print_string(&mut t, &symbols, v, BUDGET).unwrap()
}

/// A program that answers `(answer of body, Arrays made while it ran)`, counting the
/// Arrays by walking `someInstance`/`nextInstance` before and after (mini.image's compiler
/// takes no block temporaries: every temporary is the method's). `body` stores its answer
/// in `answer`, and may use `failed`.
fn count(body: &str) -> String {
    let walk = "n := 0. o := Array someInstance. \
                [o notNil] whileTrue: [n := n + 1. o := o nextInstance]";
    format!(
        "| n o before answer failed | \
         {walk}. before := n. \
         {body}. \
         {walk}. \
         Array with: answer with: n - before"
    )
}

#[test]
fn a_failed_basic_new_of_an_indexable_class_makes_no_instance() {
    // `pNew` is primitive 70 alone: its failure answers #failed and makes nothing more.
    let setup = def("Array class", "pNew", "pNew <primitive: 70> ^#failed");
    let src = count(
        "failed := OrderedCollection new. \
         10 timesRepeat: [failed add: Array pNew]. answer := failed asSet size",
    );
    // The same program with the ten sends answering #failed without a primitive: it
    // makes the same Arrays (the collection's own), and no more.
    let baseline = count(
        "failed := OrderedCollection new. \
         10 timesRepeat: [failed add: #failed]. answer := failed asSet size",
    );
    let with_fails = run(&setup, &src);
    assert!(
        with_fails.starts_with("(1 "),
        "one distinct answer: {with_fails}"
    );
    assert_eq!(
        with_fails,
        run(&setup, &baseline),
        "ten failed basicNew sends left no Arrays behind"
    );
}
