//! `Behavior>>adoptInstance:` (primitive 160, Squeak's `primitiveAdoptInstance`): the
//! argument becomes an instance of the receiver, keeping its identity, hash and fields,
//! with the checks of `primitiveChangeClass` (115), and the receiver is answered. On the
//! flat heap and on a tenant, which must agree, for a base and a private argument; each
//! refusal (an immediate, nil, true, a context as the argument, a context class as the
//! receiver, a layout that does not fit, a receiver that is no class, a read-only base)
//! changes nothing; and an image without closures, where 160 was another primitive, does
//! not run it.

mod common;
use common::{agree_on_both, array_of, tagged};

use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::synth::{Lit, SynthImage, class_of_base};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

/// `Object>>adoptInstance:`, primitive 160 failing into `^nil`, and a method
/// `Object>>baseObjects` whose literals are three base Associations (`B1 -> 1`, ...).
fn image(closures: bool) -> (BaseHeap, Symbols, [Value; 3]) {
    let mut img = SynthImage::new(closures);
    img.with_kernel_methods();
    img.method("Object", "adoptInstance:", 1, 1, &[], &[115, 124], 160);
    let lits = [1, 2, 3].map(|k| Lit::Global(format!("B{k}"), k));
    let holder = img.method("Object", "baseObjects", 0, 0, &lits, &[115, 124], 0);
    let (heap, symbols) = img.freeze().unwrap();
    let method = Value::shared(holder);
    let base = [1, 2, 3].map(|i| heap.slot(method, i).unwrap());
    (heap, symbols, base)
}

fn size(slots: usize) -> ObjectSize {
    ObjectSize { slots, bytes: 0 }
}

/// What `receiver adoptInstance: x` did: whether it answered the receiver, and x's class
/// (as whether it is the receiver), tag and hash after it.
type Adopted = (Option<bool>, bool, Option<i64>, u32);

fn adopt<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    receiver: Value,
    x: Value,
) -> Adopted {
    let answer = vm
        .send_named(m, s, receiver, "adoptInstance:", &[x], 10_000)
        .unwrap();
    let nil = vm.specials().nil;
    let answered = (answer.word() != nil.word()).then(|| m.identical(answer, receiver).unwrap());
    let (class, tag, hash) = if x.is_object() {
        (
            m.identical(m.class_of(x).unwrap(), receiver).unwrap(),
            m.slot(x, 1).ok().and_then(Value::as_int),
            m.identity_hash(x).unwrap(),
        )
    } else {
        (false, None, 0)
    };
    (answered, class, tag, hash)
}

#[test]
fn adopt_instance_makes_its_argument_an_instance_of_the_receiver() {
    // A private Association, then the base one B1: each a Point after, its fields and
    // hash kept, and the receiver answered.
    for k in 0..2 {
        let r = agree_on_both!(true, (Adopted, u32), k, |vm, m, s, base, k| {
            let point = m.root("class.Point").unwrap();
            let x = if k == 0 {
                tagged(m, 101, 1001)
            } else {
                base[0]
            };
            let before = m.identity_hash(x).unwrap();
            (adopt(vm, m, s, point, x), before)
        });
        let ((answered, is_point, tag, hash), before) = r;
        assert_eq!(answered, Some(true), "case {k}: answers the receiver");
        assert!(is_point, "case {k}: not a Point");
        assert_eq!(tag, Some(if k == 0 { 101 } else { 1 }), "case {k}");
        assert_eq!(hash, before, "case {k}: the hash moved");
    }
}

#[test]
fn adopt_instance_refuses_what_change_class_refuses() {
    for k in 0..8 {
        let r = agree_on_both!(true, Adopted, k, |vm, m, s, base, k| {
            let point = m.root("class.Point").unwrap();
            let (receiver, x) = match k {
                // An immediate, nil, true, a context as the argument.
                0 => (point, Value::int(3)),
                1 => (point, vm.specials().nil),
                2 => (point, vm.specials().true_),
                3 => {
                    let mc = vm.specials().method_context;
                    let slots = cowheap_vm::image::ctx::TEMPS + 16;
                    (point, m.alloc(mc, Format::Pointers, size(slots)).unwrap())
                }
                // A context class as the receiver, of an object laid out as a context.
                4 => {
                    let mc = vm.specials().method_context;
                    let array = m.root("class.Array").unwrap();
                    let slots = cowheap_vm::image::ctx::TEMPS + 16;
                    (mc, m.alloc(array, Format::Pointers, size(slots)).unwrap())
                }
                // A layout that does not fit: an Array adopting an Association.
                5 => (m.root("class.Array").unwrap(), base[0]),
                // A receiver that is no class: a Point, an Array whose third field is an
                // integer.
                6 => (tagged(m, 5, 55), tagged(m, 101, 1001)),
                _ => {
                    let bogus = array_of(m, &[Value::int(1), Value::int(2), Value::int(3)]);
                    (bogus, tagged(m, 101, 1001))
                }
            };
            let before = if x.is_object() {
                m.class_of(x).unwrap()
            } else {
                x
            };
            let r = adopt(vm, m, s, receiver, x);
            if x.is_object() {
                assert!(m.identical(m.class_of(x).unwrap(), before).unwrap());
            }
            r
        });
        assert_eq!(r.0, None, "case {k}: the primitive did not fail");
        assert!(!r.1, "case {k}: the class changed");
    }
}

#[test]
fn adopt_instance_of_a_base_object_on_a_read_only_base_changes_nothing() {
    let (heap, symbols, base) = image(true);
    let point = class_of_base(&heap, "Point").unwrap();
    let b = Base::new(heap);
    let mut t = Tenant::fork(&b);
    let mut vm = Vm::new(&t).unwrap();
    let assoc = t.class_of(base[0]).unwrap();
    t.set_base_read_only(true);
    let r = vm.send_named(
        &mut t,
        &symbols,
        point,
        "adoptInstance:",
        &[base[0]],
        10_000,
    );
    assert!(
        matches!(
            r,
            Err(VmError::Memory(cowheap_tenants::Error::BaseReadOnly(_)))
        ),
        "{r:?}"
    );
    assert!(t.identical(t.class_of(base[0]).unwrap(), assoc).unwrap());
}

/// In an image without closures primitive 160 is not `adoptInstance:` (SqueakJS runs it
/// as the old `primitiveDirectoryCreate` there): it fails, changing nothing.
#[test]
fn adopt_instance_is_no_primitive_of_an_image_without_closures() {
    let r = agree_on_both!(false, Adopted, 0, |vm, m, s, base, k| {
        let point = m.root("class.Point").unwrap();
        adopt(vm, m, s, point, base[0])
    });
    assert_eq!(r.0, None);
    assert!(!r.1);
}
