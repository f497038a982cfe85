//! Primitives and the sends around them checked against a Squeak VM at their edges, on
//! tenants of real images: `perform:` of nil is not understood (a method dictionary's
//! empty slots hold no selector).

mod common;

use cowheap_forwarders::Base;
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};

const BUDGET: u64 = 20_000_000;

/// Evaluates `defs` (which installs methods), then `src` on a fresh tenant of mini.image,
/// and answers the printString of what `src` answers, or the error that stopped the run.
fn run(defs: &str, src: &str) -> Result<String, VmError> {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    t.set_quota(Some(64 << 20));
    let mut vm = Vm::new(&t).unwrap();
    vm.evaluate(&mut t, &symbols, defs, BUDGET)?;
    let v = vm.evaluate(&mut t, &symbols, src, BUDGET)?;
    vm.print_string(&mut t, &symbols, v, BUDGET)
}

/// Source that installs `method` in `class`.
fn def(class: &str, selector: &str, method: &str) -> String {
    format!(
        "{class} addSelector: #{selector} withMethod: ((Compiler new compile: '{method}' \
         in: {class} notifying: nil ifFail: [nil]) generate: #(0 0 0 0)). "
    )
}

#[test]
fn perform_of_nil_is_not_understood() {
    // A method dictionary's empty slots hold nil: Squeak's lookup ends a probe at nil and
    // never takes it for the selector, so `perform: nil` sends doesNotUnderstand:.
    let defs = def(
        "Point",
        "doesNotUnderstand:",
        "doesNotUnderstand: aMessage ^Array with: #dnu with: aMessage selector",
    );
    let src =
        "{(1@2) perform: nil. (1@2) perform: nil with: 3. (1@2) perform: nil withArguments: #()}";
    assert_eq!(
        run(&defs, src).unwrap(),
        "((#dnu nil ) (#dnu nil ) (#dnu nil ) )".replace('#', "")
    );
}
