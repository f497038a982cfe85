//! A tenant of a real image with its interpreter, for tests that evaluate Smalltalk.

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The bytecode budget of one evaluation.
pub(crate) const BUDGET: u64 = 50_000_000;

/// A tenant of an image with its interpreter.
pub(crate) struct World {
    pub(crate) t: Tenant,
    pub(crate) vm: Vm,
    pub(crate) s: Symbols,
    /// The image's file name, for messages.
    pub(crate) what: &'static str,
    _base: Arc<Base>,
}

impl World {
    /// A fresh tenant of image `image` (a file of the images folder) and its interpreter.
    pub(crate) fn new(image: &'static str) -> World {
        World::of(super::import(image), image)
    }

    /// A fresh tenant of `heap` (an image read some other way; `what` names it in messages,
    /// and says which compiler message it takes, as the image's file name does for
    /// [`World::new`]) and its interpreter.
    pub(crate) fn of(heap: cowheap_heap::BaseHeap, what: &'static str) -> World {
        let s = Symbols::from_base(&heap);
        let base = Base::new(heap);
        let t = Tenant::fork(&base);
        let vm = Vm::new(&t).unwrap();
        World {
            t,
            vm,
            s,
            what,
            _base: base,
        }
    }

    /// `src` evaluated by the image's compiler, within [`BUDGET`].
    pub(crate) fn try_eval(&mut self, src: &str) -> Result<Value, VmError> {
        self.vm.evaluate(&mut self.t, &self.s, src, BUDGET)
    }

    /// `src` evaluated; panics (fails the test) on an error.
    pub(crate) fn eval(&mut self, src: &str) -> Value {
        self.try_eval(src)
            .unwrap_or_else(|e| panic!("{}: {src}: {e}", self.what))
    }

    /// `src`'s answer, printed by the image.
    pub(crate) fn print(&mut self, src: &str) -> String {
        let v = self.eval(&format!("[{src}] value printString"));
        self.vm
            .text_of(&self.t, v)
            .unwrap_or_else(|| panic!("{}: {src}: no String", self.what))
    }

    /// The global `name`; panics if the image has none.
    pub(crate) fn global(&self, name: &str) -> Value {
        self.vm
            .global(&self.t, name)
            .unwrap_or_else(|| panic!("{}: no global {name}", self.what))
    }

    /// The segments with a stub in the tenant.
    pub(crate) fn out(&self) -> BTreeSet<u64> {
        self.t.stubs().map(|(_, s)| s).collect()
    }

    /// Brings back every segment still out, and checks none is left.
    pub(crate) fn all_in(&mut self) {
        for s in self.out() {
            self.t.fault_in(s).unwrap();
        }
        assert!(self.out().is_empty());
    }

    /// Compiles method source `src` into class `class` with the image's own compiler.
    pub(crate) fn compile(&mut self, class: &str, src: &str) {
        let text = if self.what == "mini.image" {
            format!("{class} compile: '{src}' classified: 'tests' notifying: nil")
        } else {
            format!("{class} compile: '{src}'")
        };
        self.eval(&text);
    }
}
