//! The interpreter's core against Squeak's semantics at its seams: what a send made from
//! outside (`Vm::perform`) sees compared with one made from a method, caches that must not
//! outlive what the embedder changes between runs, and returns and process switches on
//! hostile images. Each runs on the flat heap and on a tenant.

mod common;
use common::{on_both, send};

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_vm::ObjectMemory;
use cowheap_vm::synth::{Lit, SynthImage};

fn image(closures: bool) -> SynthImage {
    let mut img = SynthImage::new(closures);
    img.with_kernel_methods();
    img
}

/// A new Array of SmallIntegers.
fn array_of<M: ObjectMemory>(vm: &cowheap_vm::Vm, m: &mut M, values: &[i64]) -> Value {
    let a = m
        .alloc(
            vm.specials().array_class,
            Format::Pointers,
            ObjectSize {
                slots: values.len(),
                bytes: 0,
            },
        )
        .unwrap();
    for (i, &v) in values.iter().enumerate() {
        m.set_slot(a, i, Value::int(v)).unwrap();
    }
    a
}

/// `perform:withArguments:` sent from outside runs a six-argument method, as it does when a
/// method sends it: the entry send's own context has room for the arguments of a send, as
/// the context of a method that sends it has.
#[test]
fn perform_with_arguments_from_outside_has_a_senders_room() {
    let mut img = image(false);
    img.method(
        "Object",
        "perform:withArguments:",
        2,
        2,
        &[Lit::Sym("failed".into())],
        &[32, 124],
        84,
    );
    // a: b: c: d: e: f: answers its last argument.
    img.method("SmallInteger", "a:b:c:d:e:f:", 6, 6, &[], &[21, 124], 0);
    // viaMethod: arr   ^self perform: #a:b:c:d:e:f: withArguments: arr
    img.method(
        "SmallInteger",
        "viaMethod:",
        1,
        1,
        &[
            Lit::Sym("a:b:c:d:e:f:".into()),
            Lit::Sym("perform:withArguments:".into()),
        ],
        &[112, 32, 16, 241, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let args = array_of(vm, m, &[1, 2, 3, 4, 5, 6]);
        let r = send(vm, m, s, Value::int(0), "viaMethod:", &[args]).unwrap();
        assert_eq!(r.as_int(), Some(6), "from a method");
        let sel = vm.symbol(m, s, "a:b:c:d:e:f:").unwrap();
        let r = send(
            vm,
            m,
            s,
            Value::int(0),
            "perform:withArguments:",
            &[sel, args],
        )
        .unwrap();
        assert_eq!(
            r.as_int(),
            Some(6),
            "from outside: {:?}",
            cowheap_vm::names::symbol(m, r)
        );
    });
}

/// `valueWithArguments:` (206) sent from outside to a six-argument closure runs it.
#[test]
fn value_with_arguments_from_outside_has_a_senders_room() {
    let mut img = image(true);
    img.method(
        "BlockClosure",
        "valueWithArguments:",
        1,
        1,
        &[Lit::Sym("failed".into())],
        &[32, 124],
        206,
    );
    // block6   ^[:a :b :c :d :e :f | f]
    img.method(
        "SmallInteger",
        "block6",
        0,
        0,
        &[],
        &[143, 6, 0, 2, 21, 125, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let blk = send(vm, m, s, Value::int(0), "block6", &[]).unwrap();
        let args = array_of(vm, m, &[1, 2, 3, 4, 5, 6]);
        let r = send(vm, m, s, blk, "valueWithArguments:", &[args]).unwrap();
        assert_eq!(r.as_int(), Some(6), "{:?}", cowheap_vm::names::symbol(m, r));
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

/// Two methods exchanged by the embedder's become between two runs: the second run sends
/// to what the method dictionary now reaches, as a Squeak image whose methods were becomed
/// does, and not to what the interpreter's caches kept from the first.
#[test]
fn methods_becomed_between_runs_are_not_served_from_the_caches() {
    let mut img = image(false);
    img.method("SmallInteger", "one", 0, 0, &[], &[118, 124], 0);
    img.method("SmallInteger", "two", 0, 0, &[], &[119, 124], 0);
    on_both!(img, |vm, m, s| {
        assert_eq!(
            send(vm, m, s, Value::int(3), "one", &[]).unwrap().as_int(),
            Some(1)
        );
        assert_eq!(
            send(vm, m, s, Value::int(3), "two", &[]).unwrap().as_int(),
            Some(2)
        );
        let (one, two) = (
            find_method(m, "SmallInteger", "one"),
            find_method(m, "SmallInteger", "two"),
        );
        m.become_two_way(one, two).unwrap();
        assert_eq!(
            send(vm, m, s, Value::int(3), "one", &[]).unwrap().as_int(),
            Some(2)
        );
        assert_eq!(
            send(vm, m, s, Value::int(3), "two", &[]).unwrap().as_int(),
            Some(1)
        );
    });
}
