//! Writes into a CompiledMethod, and what the interpreter caches about the methods it runs:
//! `objectAt:put:` (primitive 69) refuses a header that is no SmallInteger, or one of
//! another literal count, as a Squeak VM fails it, leaving the method as it was; on a flat
//! heap and on a tenant alike.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::image::MethodHeader;
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

/// A V3 header of no arguments or temporaries, a small frame and `literals` literals.
fn header(literals: usize) -> i64 {
    MethodHeader {
        literals,
        args: 0,
        temps: 0,
        large: false,
        primitive: 0,
    }
    .encode()
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

/// A header of another literal count: the primitive fails and the header stays; a header
/// of the same literal count (another frame size) is stored.
#[test]
fn object_at_put_refuses_a_header_of_another_literal_count() {
    let img = image();
    on_both!(img, |vm, m, s| {
        let class = m.class_of(Value::int(3)).unwrap();
        let method = common::method_of(m, class, "sym");
        let old = m.slot(method, 0).unwrap();
        for lits in [0, 2] {
            let h = Value::int(header(lits));
            let r = send(vm, m, s, method, "objectAt:put:", &[Value::int(1), h]).unwrap();
            assert!(
                vm.specials().nil.word() == r.word(),
                "a header of {lits} literals for a method of 1 was stored"
            );
            assert_eq!(m.slot(method, 0).unwrap().word(), old.word());
        }
        let sym = send(vm, m, s, Value::int(7), "sym", &[]).unwrap();
        assert_eq!(cowheap_vm::names::symbol(m, sym).as_deref(), Some("three"));
        let mut same = MethodHeader::decode(old.as_int().unwrap());
        same.large = true;
        let h = Value::int(same.encode());
        let r = send(vm, m, s, method, "objectAt:put:", &[Value::int(1), h]).unwrap();
        assert_eq!(r.as_int(), Some(same.encode()));
        assert_eq!(m.slot(method, 0).unwrap().as_int(), Some(same.encode()));
    });
}
