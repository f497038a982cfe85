//! Writes into a CompiledMethod, and what the interpreter caches about the methods it runs:
//! `objectAt:put:` (primitive 69) refuses a header that is no SmallInteger, or one of
//! another literal count, as a Squeak VM fails it, leaving the method as it was; a store
//! into a Spur method's callPrimitive bytecode (by `at:put:`, a context's `at:put:` on
//! another object, or `replaceFrom:to:with:startingAt:`) is run by the next send of the method in the same
//! run, as a later run runs it. On a flat heap and on a tenant alike.

mod common;
use common::{on_both, send};

use cowheap_heap::Value;
use cowheap_vm::ObjectMemory;
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

/// The 32-bit Spur image, whose methods keep their primitive in their first bytecode.
const SPUR: &str = "headless-spur32.image";

/// Runs `$body` on a tenant of the Spur image and on its flat heap.
macro_rules! on_spur {
    (|$vm:ident, $m:ident, $s:ident| $body:block) => {{
        let base = common::base(SPUR);
        let symbols = cowheap_vm::Symbols::from_base(base.heap());
        let $s = &symbols;
        {
            let mut t = cowheap_tenants::Tenant::fork(&base);
            let $m = &mut t;
            let mut vm = cowheap_vm::Vm::new(&*$m).unwrap();
            let $vm = &mut vm;
            $body
        }
        {
            let mut flat = cowheap_vm::FlatHeap::from_base(base.heap());
            let $m = &mut flat;
            let mut vm = cowheap_vm::Vm::new(&*$m).unwrap();
            let $vm = &mut vm;
            $body
        }
    }};
}

/// `Array>>basicSize` (primitive 62, found through its callPrimitive bytecode), an Array of
/// three nils, and the `at:` index of the primitive number's low byte.
fn basic_size_bed<M: ObjectMemory>(vm: &cowheap_vm::Vm, m: &mut M) -> (Value, Value, i64) {
    let array = vm.specials().array_class;
    let method = common::method_of(m, array, "basicSize");
    assert_eq!(&m.bytes(method).unwrap()[..3], &[139, 62, 0]);
    let a = m
        .alloc(
            array,
            cowheap_heap::Format::Pointers,
            cowheap_heap::ObjectSize { slots: 3, bytes: 0 },
        )
        .unwrap();
    let lits = m.size(method).unwrap().slots as i64 - 1;
    (method, a, 4 * (lits + 1) + 2)
}

/// The store a probe makes into a method between two sends of it.
enum Store {
    /// `cm SEL i with: 75`, SEL a method of primitive 61 or 211.
    AtPut(&'static str),
    /// `cm replaceFrom: i to: i with: bytes startingAt: 1`.
    Replace(Value),
}

/// The class at the root of the image's hierarchy (Object).
fn root_class<M: ObjectMemory>(vm: &cowheap_vm::Vm, m: &M) -> Value {
    let mut c = vm.specials().array_class;
    while m.slot(c, 0).unwrap().word() != vm.specials().nil.word() {
        c = m.slot(c, 0).unwrap();
    }
    c
}

/// Makes `method` the root class's method for `selector`, in place of the image's.
fn install<M: ObjectMemory>(vm: &cowheap_vm::Vm, m: &mut M, selector: &str, method: Value) {
    let dict = m.slot(root_class(vm, m), 1).unwrap();
    let values = m.slot(dict, 1).unwrap();
    let at = (2..m.size(dict).unwrap().slots)
        .find(|&k| {
            let key = m.slot(dict, k).unwrap();
            key.is_object() && cowheap_vm::names::symbol(m, key).as_deref() == Some(selector)
        })
        .unwrap_or_else(|| panic!("Object>>{selector}"));
    m.set_slot(values, at - 2, method).unwrap();
}

/// A new Spur method of `header` (literal count included), `lits` and `code`.
fn new_method<M: ObjectMemory>(
    vm: &cowheap_vm::Vm,
    m: &mut M,
    header: i64,
    lits: &[Value],
    code: &[u8],
) -> Value {
    let cm = vm.specials().compiled_method;
    let method = m
        .alloc(
            cm,
            cowheap_heap::Format::CompiledMethod,
            cowheap_heap::ObjectSize {
                slots: 1 + lits.len(),
                bytes: code.len(),
            },
        )
        .unwrap();
    m.set_slot(method, 0, Value::int(header | lits.len() as i64))
        .unwrap();
    for (k, &l) in lits.iter().enumerate() {
        m.set_slot(method, 1 + k, l).unwrap();
    }
    m.set_bytes(method, 0, code).unwrap();
    method
}

/// Makes `Object>>instVarAt:put:` of the Spur image a method of two arguments `cm` and `i`
/// that answers `self basicSize` after `self basicSize` and `store`: a store into a method
/// between two sends of it, all within one run.
fn install_probe<M: ObjectMemory>(
    vm: &cowheap_vm::Vm,
    m: &mut M,
    s: &cowheap_vm::Symbols,
    store: Store,
) {
    let basic_size = s.get("basicSize").unwrap();
    // push self, send #basicSize, pop; push cm, push i, ..., send the store, pop;
    // push self, send #basicSize, return it.
    let (lits, code): (Vec<Value>, Vec<u8>) = match store {
        Store::AtPut(sel) => (
            vec![basic_size, s.get(sel).unwrap(), Value::int(75)],
            vec![112, 208, 135, 16, 17, 34, 241, 135, 112, 208, 124],
        ),
        Store::Replace(b) => (
            vec![
                basic_size,
                s.get("replaceFrom:to:with:startingAt:").unwrap(),
                b,
            ],
            vec![
                112, 208, 135, 16, 17, 17, 34, 118, 131, 129, 135, 112, 208, 124,
            ],
        ),
    };
    let probe = new_method(vm, m, (2 << 18) | (2 << 24), &lits, &code);
    install(vm, m, "instVarAt:put:", probe);
}

/// What a new interpreter on the same memory answers for `rcvr sel`: a later run's answer.
fn fresh_answer<M: cowheap_vm::ObjectMemory>(
    m: &mut M,
    s: &cowheap_vm::Symbols,
    rcvr: Value,
    sel: &str,
) -> Value {
    let mut vm = cowheap_vm::Vm::new(&*m).unwrap();
    send(&mut vm, m, s, rcvr, sel, &[]).unwrap()
}

/// `basicSize`'s primitive made 75 (identityHash) by `at:put:` into its callPrimitive
/// bytecode between two sends of it in one run: the second runs primitive 75, as a later
/// run does.
#[test]
fn a_primitive_number_stored_by_at_put_is_run_by_the_next_send() {
    on_spur!(|vm, m, s| {
        let (method, a, at) = basic_size_bed(vm, m);
        install_probe(vm, m, s, Store::AtPut("at:put:"));
        let args = [method, Value::int(at)];
        let now = send(vm, m, s, a, "instVarAt:put:", &args).unwrap();
        assert_eq!(&m.bytes(method).unwrap()[..3], &[139, 75, 0]);
        let later = fresh_answer(m, s, a, "basicSize");
        assert_ne!(later.as_int(), Some(3));
        assert_eq!(
            now.word(),
            later.word(),
            "the send after the store ran the primitive cached before it"
        );
    });
}

/// The same store made by `replaceFrom:to:with:startingAt:` from a ByteArray.
#[test]
fn a_primitive_number_stored_by_replace_is_run_by_the_next_send() {
    on_spur!(|vm, m, s| {
        let (method, a, at) = basic_size_bed(vm, m);
        let byte_array = m.slot(vm.specials().array, 26).unwrap();
        let bytes = m
            .alloc(
                byte_array,
                cowheap_heap::Format::Bytes,
                cowheap_heap::ObjectSize { slots: 0, bytes: 1 },
            )
            .unwrap();
        m.set_bytes(bytes, 0, &[75]).unwrap();
        install_probe(vm, m, s, Store::Replace(bytes));
        let args = [method, Value::int(at)];
        let now = send(vm, m, s, a, "instVarAt:put:", &args).unwrap();
        assert_eq!(&m.bytes(method).unwrap()[..3], &[139, 75, 0]);
        let later = fresh_answer(m, s, a, "basicSize");
        assert_ne!(later.as_int(), Some(3));
        assert_eq!(
            now.word(),
            later.word(),
            "the send after the store ran the primitive cached before it"
        );
    });
}

/// The same store made by a method of primitive 211 (a context's `at:put:`, which stores
/// into any other object as `basicAt:put:` does).
#[test]
fn a_primitive_number_stored_by_primitive_211_is_run_by_the_next_send() {
    on_spur!(|vm, m, s| {
        let (method, a, at) = basic_size_bed(vm, m);
        // callPrimitive 211, then ^nil.
        let store = new_method(
            vm,
            m,
            (1 << 16) | (2 << 18) | (2 << 24),
            &[],
            &[139, 211, 0, 115, 124],
        );
        install(vm, m, "triggerEvent:withArguments:", store);
        install_probe(vm, m, s, Store::AtPut("triggerEvent:withArguments:"));
        let args = [method, Value::int(at)];
        let now = send(vm, m, s, a, "instVarAt:put:", &args).unwrap();
        assert_eq!(&m.bytes(method).unwrap()[..3], &[139, 75, 0]);
        let later = fresh_answer(m, s, a, "basicSize");
        assert_ne!(later.as_int(), Some(3));
        assert_eq!(
            now.word(),
            later.word(),
            "the send after the store ran the primitive cached before it"
        );
    });
}
