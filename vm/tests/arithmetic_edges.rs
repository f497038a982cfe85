//! The arithmetic, comparison and conversion primitives at their edges, against what a
//! Squeak VM answers: `fractionPart` keeps the sign of a zero fraction as C's `modf` does
//! (`-3.0 fractionPart` is -0.0), on mini.image.

mod common;

use common::def;

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};

const BUDGET: u64 = 20_000_000;

/// Evaluates `src` on a fresh tenant of mini.image and answers its printString, or the
/// error that stopped the run.
fn run(src: &str) -> Result<String, VmError> {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    t.set_quota(Some(64 << 20));
    let mut vm = Vm::new(&t).unwrap();
    let v = vm.evaluate(&mut t, &symbols, src, BUDGET)?;
    vm.print_string(&mut t, &symbols, v, BUDGET)
}

#[test]
fn the_fraction_part_of_a_negative_whole_float_is_a_negative_zero() {
    // Squeak's primitiveFractionalPart is C's modf: the fraction part has the receiver's
    // sign, a zero one included. A Float's first word (`at: 1`) is its most significant,
    // so a negative zero's is 16r80000000 and a positive zero's 0.
    let src = def("Float", "pFrac", "pFrac <primitive: 52> ^#failed")
        + "{(-3.0 pFrac) at: 1. (-1.0e300 pFrac) at: 1. (3.0 pFrac) at: 1. \
           (-1.0 * 0.0) pFrac at: 1. -3.5 pFrac}";
    assert_eq!(
        run(&src).unwrap(),
        "(2147483648 2147483648 0 2147483648 -0.5 )"
    );
}
