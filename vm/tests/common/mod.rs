//! Shared helpers of the real-image tests.
#![allow(dead_code, reason = "each test file uses a different part")]

use cowheap_forwarders::Base;
use cowheap_heap::BaseHeap;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images` from the workspace.
pub(crate) fn images() -> PathBuf {
    std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"))
}

/// Imports image `name`; panics (fails the test) if the file is missing.
pub(crate) fn import(name: &str) -> BaseHeap {
    let path = images().join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (see /work/shared/images/README.md)",
        path.display()
    );
    cowheap_squeak::import(&path)
        .unwrap_or_else(|e| panic!("importing {}: {e}", path.display()))
        .heap
}

/// The base of image `name`.
pub(crate) fn base(name: &str) -> Arc<Base> {
    Base::new(import(name))
}

pub(crate) mod world;

/// The bytecode budget of [`send`].
pub(crate) const SEND_BUDGET: u64 = 100_000;

/// Runs `$body` on a flat heap and on a tenant of the image `$img` (a
/// `cowheap_vm::synth::SynthImage`) makes, with `$vm`, `$m` and `$s` the interpreter, the
/// memory and the image's symbols.
#[allow(unused_macros, reason = "used by the synthetic-image tests only")]
macro_rules! on_both {
    ($img:expr, |$vm:ident, $m:ident, $s:ident| $body:block) => {{
        fn check<M: ::cowheap_vm::ObjectMemory>(
            $vm: &mut ::cowheap_vm::Vm,
            $m: &mut M,
            $s: &::cowheap_vm::Symbols,
        ) $body
        let (base, symbols) = $img.freeze().unwrap();
        let mut flat = ::cowheap_vm::FlatHeap::from_base(&base);
        let mut vm = ::cowheap_vm::Vm::new(&flat).unwrap();
        check(&mut vm, &mut flat, &symbols);
        let base = ::cowheap_forwarders::Base::new(base);
        let mut t = ::cowheap_tenants::Tenant::fork(&base);
        let mut vm = ::cowheap_vm::Vm::new(&t).unwrap();
        check(&mut vm, &mut t, &symbols);
    }};
}
#[allow(unused_imports, reason = "used by the synthetic-image tests only")]
pub(crate) use on_both;

/// `r sel args` by name, within [`SEND_BUDGET`] bytecodes.
pub(crate) fn send<M: cowheap_vm::ObjectMemory>(
    vm: &mut cowheap_vm::Vm,
    m: &mut M,
    s: &cowheap_vm::Symbols,
    r: cowheap_heap::Value,
    sel: &str,
    args: &[cowheap_heap::Value],
) -> Result<cowheap_heap::Value, cowheap_vm::VmError> {
    vm.send_named(m, s, r, sel, args, SEND_BUDGET)
}

/// Smalltalk source that compiles `method` and installs it in `class` under `selector`, for
/// tests that define the methods they send.
pub(crate) fn def(class: &str, selector: &str, method: &str) -> String {
    format!(
        "{class} addSelector: #{selector} withMethod: ((Compiler new compile: '{method}' \
         in: {class} notifying: nil ifFail: [nil]) generate: #(0 0 0 0)). "
    )
}
