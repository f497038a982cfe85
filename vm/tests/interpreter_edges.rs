//! Edges of the interpreter's core: primitives 76 (`stackp:`) and 188 (`withArgs:executeMethod:`)
//! at their limits, returns to dead contexts, kept callers whose method's bytes change, the
//! timer semaphore, and collection in loops that allocate only through primitives.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

const BUDGET: u64 = 100_000;

macro_rules! on_both {
    ($img:expr, |$vm:ident, $m:ident, $s:ident| $body:block) => {{
        fn check<M: ObjectMemory>($vm: &mut Vm, $m: &mut M, $s: &Symbols) $body
        let (base, symbols) = $img.freeze().unwrap();
        let mut flat = FlatHeap::from_base(&base);
        let mut vm = Vm::new(&flat).unwrap();
        check(&mut vm, &mut flat, &symbols);
        let base = Base::new(base);
        let mut t = Tenant::fork(&base);
        let mut vm = Vm::new(&t).unwrap();
        check(&mut vm, &mut t, &symbols);
    }};
}

fn send<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    r: Value,
    sel: &str,
    args: &[Value],
) -> Result<Value, VmError> {
    vm.send_named(m, s, r, sel, args, BUDGET)
}

/// `withArgs:executeMethod:` (primitive 188) with more arguments than the sender's
/// context has room for fails (Squeak's VMs run the method, as Cog and SqueakJS do, or
/// fail the primitive), leaving the stack as it was for its fallback code.
#[test]
fn execute_method_with_many_arguments_is_not_a_corrupt_memory_error() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method(
        "Object",
        "withArgs:executeMethod:",
        2,
        2,
        &[Lit::Sym("failed".into())],
        &[32, 124],
        188,
    );
    // A 14-argument method answering its last argument.
    let sel = "a:b:c:d:e:f:g:h:i:j:k:l:m:n:";
    img.method("SmallInteger", sel, 14, 14, &[], &[29, 124], 0);
    // SmallInteger>>exec: arr with: meth   ^self withArgs: arr executeMethod: meth
    img.method(
        "SmallInteger",
        "exec:with:",
        2,
        2,
        &[Lit::Sym("withArgs:executeMethod:".into())],
        &[112, 16, 17, 240, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let array = vm.specials().array_class;
        let args = m
            .alloc(
                array,
                Format::Pointers,
                ObjectSize {
                    slots: 14,
                    bytes: 0,
                },
            )
            .unwrap();
        for i in 0..14 {
            m.set_slot(args, i, Value::int(i as i64 + 1)).unwrap();
        }
        let meth = find_method(m, "SmallInteger", "a:b:c:d:e:f:g:h:i:j:k:l:m:n:");
        let r = send(vm, m, s, Value::int(0), "exec:with:", &[args, meth]);
        assert!(
            !matches!(r, Err(VmError::Memory(_))),
            "a memory error for a valid primitive call: {r:?}"
        );
        // The primitive fails: its fallback code answers #failed.
        let r = r.unwrap();
        assert_eq!(cowheap_vm::names::symbol(m, r).as_deref(), Some("failed"));
    });
}

/// The method `selector` of class `class` (a scan of its method dictionary).
fn find_method<M: ObjectMemory>(m: &M, class: &str, selector: &str) -> Value {
    let c = m.root(&format!("class.{class}")).unwrap();
    let dict = m.slot(c, 1).unwrap();
    let values = m.slot(dict, 1).unwrap();
    for i in 2..m.size(dict).unwrap().slots {
        let k = m.slot(dict, i).unwrap();
        if cowheap_vm::names::symbol(m, k).as_deref() == Some(selector) {
            return m.slot(values, i - 2).unwrap();
        }
    }
    panic!("no {selector}")
}
