//! Writes into a CompiledMethod, and what the interpreter caches about the methods it runs:
//! `objectAt:put:` (primitive 69) refuses a header that is no SmallInteger, as a Squeak VM
//! fails it, leaving the method as it was; on a flat heap and on a tenant alike.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::synth::{Lit, SynthImage};

/// `Object>>two` (`^2`, no literals), `Object>>sym` (`^#three`, one literal) and
/// `CompiledMethod>>objectAt:put:` (primitive 69, whose fallback answers nil).
fn image() -> SynthImage {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "two", 0, 0, &[], &[119, 124], 0);
    img.method(
        "Object",
        "sym",
        0,
        0,
        &[Lit::Sym("three".into())],
        &[32, 124],
        0,
    );
    img.method(
        "CompiledMethod",
        "objectAt:put:",
        2,
        2,
        &[],
        &[115, 124],
        69,
    );
    img
}

/// A header that is no SmallInteger (a Symbol): the primitive fails (its fallback answers
/// nil), the method keeps its header, and the next send of it runs as before.
#[test]
fn object_at_put_refuses_a_header_that_is_no_small_integer() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let class = m.class_of(Value::int(3)).unwrap();
        let method = common::method_of(m, class, "two");
        let old = m.slot(method, 0).unwrap();
        let sym = m.slot(common::method_of(m, class, "sym"), 1).unwrap();
        assert!(sym.is_object());
        let r = send(vm, m, s, method, "objectAt:put:", &[Value::int(1), sym]).unwrap();
        assert!(
            vm.specials().nil.word() == r.word(),
            "objectAt: 1 put: aSymbol succeeded"
        );
        assert_eq!(m.slot(method, 0).unwrap().word(), old.word());
        let two = send(vm, m, s, Value::int(7), "two", &[]).unwrap();
        assert_eq!(two.as_int(), Some(2));
    });
}
