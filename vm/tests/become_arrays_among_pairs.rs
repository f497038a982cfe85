//! An array become (72 `elementsForwardIdentityTo:`, 128 `elementsExchangeIdentityWith:`)
//! whose arrays are among the objects it becomes: the pairs are the arrays' elements as
//! they were when it was sent, the pairs it checked, as a Squeak VM reads both arrays
//! before it becomes anything. Before, each pair was read again after the pairs ahead of
//! it, through an array a pair had just becomed, so it becamed what the other object
//! held: nil, which then led to another object. On a flat heap and on a tenant.

mod common;
use common::{new_instance, send};

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

/// `a` is `{a. x}`, `b` is `{y. z}`, `y` a Point whose second field is nil: `a` becomes
/// `y` and `x` becomes `z` (one way, or exchanged when `two_way`), and nil stays nil.
fn check<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, two_way: bool) {
    let nil = vm.specials().nil;
    let (a, b) = (new_instance(m, "Array", 2), new_instance(m, "Array", 2));
    let points: Vec<Value> = (1..=3)
        .map(|k| {
            let p = new_instance(m, "Point", 2);
            m.set_slot(p, 0, Value::int(k)).unwrap();
            p
        })
        .collect();
    let (x, y, z) = (points[0], points[1], points[2]);
    for (o, i, v) in [(a, 0, a), (a, 1, x), (b, 0, y), (b, 1, z)] {
        m.set_slot(o, i, v).unwrap();
    }
    // What holds each of the four, to look through afterwards, and a nil.
    let holder = new_instance(m, "Array", 4);
    for (i, v) in [a, x, y, z].into_iter().enumerate() {
        m.set_slot(holder, i, v).unwrap();
    }
    let plain = new_instance(m, "Array", 1);
    let selector = if two_way {
        "elementsExchangeIdentityWith:"
    } else {
        "elementsForwardIdentityTo:"
    };
    let r = send(vm, m, s, a, selector, &[b]);
    assert!(r.is_ok(), "{selector} {r:?}");
    assert_eq!(m.slot(plain, 0).unwrap().word(), nil.word(), "nil moved");
    assert_eq!(vm.specials().nil.word(), nil.word(), "the VM's nil moved");
    let field = |m: &M, i: usize| {
        let o = m.slot(holder, i).unwrap();
        m.slot(o, 0).unwrap().as_int()
    };
    // x is z now (z's body, or a reference to z), and a is y.
    assert_eq!(field(m, 1), Some(3), "{selector}: x");
    assert_eq!(field(m, 0), Some(2), "{selector}: a");
    if two_way {
        assert_eq!(field(m, 3), Some(1), "{selector}: z has x's body");
    }
}

#[test]
fn an_array_become_of_its_own_array_becomes_the_pairs_it_was_sent() {
    let (heap, symbols) = common::become_image();
    for two_way in [false, true] {
        let mut flat = FlatHeap::from_base(&heap);
        let mut vm = Vm::new(&flat).unwrap();
        check(&mut vm, &mut flat, &symbols, two_way);
    }
    let base = Base::new(heap);
    for two_way in [false, true] {
        let mut t = Tenant::fork(&base);
        let mut vm = Vm::new(&t).unwrap();
        check(&mut vm, &mut t, &symbols, two_way);
    }
}
