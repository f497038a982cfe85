//! `mini.image` and `Scratch-1.4.0.6.image` (6502, pre-closure, with a compiler): sends by
//! `perform`, source compiled by the image's own compiler and run, checked by value, on a
//! tenant and on the flat heap; isolation of a compiled method between tenants; the budget
//! and the depth limit.

mod common;

use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};
use std::sync::Arc;

const BUDGET: u64 = 100_000_000;
const FACTORIAL_100: &str = "93326215443944152681699238856266700490715968264381621468592963895217599993229915608941463976156518286253697920827223758251185210916864000000000000000000000000";

/// An interpreter on some memory, with the base's symbols.
struct Run<'a, M> {
    vm: Vm,
    m: &'a mut M,
    s: &'a Symbols,
}

impl<'a, M: ObjectMemory> Run<'a, M> {
    fn new(m: &'a mut M, s: &'a Symbols) -> Self {
        Run {
            vm: Vm::new(m).unwrap(),
            m,
            s,
        }
    }
    fn eval(&mut self, src: &str) -> Result<Value, VmError> {
        self.vm.evaluate(self.m, self.s, src, BUDGET)
    }
    fn eval_ok(&mut self, src: &str) -> Value {
        self.eval(src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }
    fn text(&mut self, v: Value) -> String {
        self.vm.text_of(self.m, v).expect("a String")
    }
    fn is_true(&mut self, src: &str) -> bool {
        let v = self.eval_ok(src);
        let t = self.vm.specials().true_;
        self.m.identical(v, t).unwrap()
    }
    fn send(&mut self, rcvr: Value, sel: &str, args: &[Value]) -> Result<Value, VmError> {
        self.vm.send_named(self.m, self.s, rcvr, sel, args, BUDGET)
    }
}

/// What both images answer alike.
fn common_checks<M: ObjectMemory>(r: &mut Run<'_, M>) {
    // perform
    assert_eq!(
        r.send(Value::int(3), "+", &[Value::int(4)])
            .unwrap()
            .as_int(),
        Some(7)
    );
    let f = r.send(Value::int(100), "factorial", &[]).unwrap();
    let p = r.send(f, "printString", &[]).unwrap();
    assert_eq!(r.text(p), FACTORIAL_100);
    let big = r
        .send(Value::int(2), "raisedTo:", &[Value::int(100)])
        .unwrap();
    let p = r.send(big, "printString", &[]).unwrap();
    assert_eq!(r.text(p), "1267650600228229401496703205376");
    let hello = r.vm.string(r.m, "hello").unwrap();
    let rev = r.send(hello, "reversed", &[]).unwrap();
    assert_eq!(r.text(rev), "olleh");
    let nil = r.vm.specials().nil;
    match r.send(nil, "foo", &[]) {
        Err(VmError::DoesNotUnderstand {
            selector,
            receiver_class,
            ..
        }) => {
            assert_eq!(
                (selector.as_str(), receiver_class.as_str()),
                ("foo", "UndefinedObject")
            );
        }
        other => panic!("nil foo: wanted a DNU, got {other:?}"),
    }
    // evaluate
    assert_eq!(r.eval_ok("3 + 4").as_int(), Some(7));
    assert_eq!(
        r.eval_ok("(1 to: 10) inject: 0 into: [:a :b | a + b]")
            .as_int(),
        Some(55)
    );
    let v = r.eval_ok("100 factorial printString");
    assert_eq!(r.text(v), FACTORIAL_100);
    let v = r.eval_ok("(2 raisedTo: 100) printString");
    assert_eq!(r.text(v), "1267650600228229401496703205376");
    assert!(r.is_true("(2 raisedTo: 100) = (1 bitShift: 100)"));
    assert!(r.is_true("((1/3) + (2/3)) = 1"));
    assert!(r.is_true("#(3 1 2) asSortedCollection asArray = #(1 2 3)"));
    let v = r.eval_ok("'hello' reversed");
    assert_eq!(r.text(v), "olleh");
    let v = r.eval_ok("3.5 * 2");
    assert_eq!(r.vm.float_value(r.m, v), Some(7.0));
    assert_eq!(r.eval_ok("[:x | x * 2] value: 21").as_int(), Some(42));
    assert_eq!(
        r.eval_ok("#(1 2 3) inject: 0 into: [:a :b | a + b]")
            .as_int(),
        Some(6)
    );
    // A non-local return from a block ends the DoIt.
    assert_eq!(
        r.eval_ok("#(1 2 3) do: [:x | x = 2 ifTrue: [^x * 10]]. 0")
            .as_int(),
        Some(20)
    );
    match r.eval("nil foo") {
        Err(VmError::DoesNotUnderstand {
            selector,
            receiver_class,
            chain,
        }) => {
            assert_eq!(
                (selector.as_str(), receiver_class.as_str()),
                ("foo", "UndefinedObject")
            );
            assert_eq!(
                chain.0.first().map(String::as_str),
                Some("UndefinedObject>>DoIt")
            );
            assert!(
                chain.0.iter().any(|f| f == "Compiler class>>evaluate:"),
                "{chain}"
            );
        }
        other => panic!("nil foo: wanted a DNU, got {other:?}"),
    }
    // The memory is still usable after an error.
    assert_eq!(r.eval_ok("3 + 4").as_int(), Some(7));
}

/// Source that compiles method `src` into Integer: `Integer compile:` where the image has
/// it, else the compiler and `addSelector:withMethod:` (the mini image, whose
/// `compile:classified:` formats text on a display it does not have).
type Compile = fn(&str, &str) -> String;

fn scratch_compile(_selector: &str, src: &str) -> String {
    format!("Integer compile: '{src}'")
}

fn mini_compile(selector: &str, src: &str) -> String {
    format!(
        "Integer addSelector: #{selector} withMethod: ((Compiler new compile: '{src}' in: Integer notifying: nil ifFail: [nil]) generate: #(0 0 0 0))"
    )
}

/// `Integer>>benchFib` compiled into the image.
fn bench_fib<M: ObjectMemory>(r: &mut Run<'_, M>, compile: Compile) {
    let src = compile(
        "benchFib",
        "benchFib ^self < 2 ifTrue: [1] ifFalse: [(self-1) benchFib + (self-2) benchFib + 1]",
    );
    r.eval_ok(&src);
    assert_eq!(r.eval_ok("10 benchFib").as_int(), Some(177));
    assert_eq!(
        r.send(Value::int(20), "benchFib", &[]).unwrap().as_int(),
        Some(21891)
    );
}

fn mini_checks<M: ObjectMemory>(r: &mut Run<'_, M>) {
    common_checks(r);
    let v = r.eval_ok("(2/3) printString");
    assert_eq!(
        r.text(v),
        "(2/3)",
        "the mini image prints fractions in parentheses"
    );
    bench_fib(r, mini_compile);
}

fn scratch_checks<M: ObjectMemory>(r: &mut Run<'_, M>) {
    common_checks(r);
    // Scratch changed Number>>/ to answer Floats.
    let v = r.eval_ok("(2/3) printString");
    assert!(r.text(v).starts_with("0.666666666666666"));
    bench_fib(r, scratch_compile);
}

fn images(name: &str) -> (BaseHeap, Arc<Base>, Symbols) {
    let heap = common::import(name);
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(common::import(name));
    (heap, base, symbols)
}

#[test]
fn mini_on_a_tenant_and_on_the_flat_heap() {
    let (heap, base, s) = images("mini.image");
    let mut t = Tenant::fork(&base);
    mini_checks(&mut Run::new(&mut t, &s));
    let mut f = FlatHeap::from_base(&heap);
    mini_checks(&mut Run::new(&mut f, &s));
}

#[test]
fn scratch_on_a_tenant_and_on_the_flat_heap() {
    let (heap, base, s) = images("Scratch-1.4.0.6.image");
    let mut t = Tenant::fork(&base);
    scratch_checks(&mut Run::new(&mut t, &s));
    let mut f = FlatHeap::from_base(&heap);
    scratch_checks(&mut Run::new(&mut f, &s));
}

fn isolation(name: &str, compile: Compile) {
    let (heap, base, s) = images(name);
    let mut a = Tenant::fork(&base);
    let mut b = Tenant::fork(&base);
    let mut ra = Run::new(&mut a, &s);
    ra.eval_ok(&compile("double", "double ^self * 2"));
    assert_eq!(ra.eval_ok("21 double").as_int(), Some(42));
    // Recompiling flushes the tenant's method cache.
    ra.eval_ok(&compile("double", "double ^self * 3"));
    assert_eq!(ra.eval_ok("21 double").as_int(), Some(63));
    let dnu = |e: Result<Value, VmError>| matches!(e, Err(VmError::DoesNotUnderstand { ref selector, .. }) if selector == "double");
    let mut rb = Run::new(&mut b, &s);
    assert!(dnu(rb.eval("21 double")), "another tenant sees no double");
    let mut c = Tenant::fork(&base);
    assert!(
        dnu(Run::new(&mut c, &s).eval("21 double")),
        "a new tenant sees no double"
    );
    let mut f = FlatHeap::from_base(&heap);
    assert!(
        dnu(Run::new(&mut f, &s).eval("21 double")),
        "the base has no double"
    );
    assert!(a.stats().private_bytes > 0);
}

#[test]
fn a_method_compiled_in_one_tenant_is_not_seen_by_another_mini() {
    isolation("mini.image", mini_compile);
}

#[test]
fn a_method_compiled_in_one_tenant_is_not_seen_by_another_scratch() {
    isolation("Scratch-1.4.0.6.image", scratch_compile);
}

/// Compiles `src` (defining `selector`) into `class`: for Scratch, `compile:`; for the mini
/// image, the compiler and `addSelector:withMethod:`.
type CompileIn = fn(&str, &str, &str) -> String;

fn scratch_compile_in(class: &str, _selector: &str, src: &str) -> String {
    format!("{class} compile: '{src}'")
}

fn mini_compile_in(class: &str, selector: &str, src: &str) -> String {
    format!(
        "{class} addSelector: #{selector} withMethod: ((Compiler new compile: '{src}' in: {class} notifying: nil ifFail: [nil]) generate: #(0 0 0 0))"
    )
}

/// The method cache after compiles and removals: a lookup cached from a superclass's method
/// gives way to an override compiled into the subclass, and the override's removal gives
/// the superclass's back (the image flushes by selector, primitive 119, and by method, 116).
/// (Quick returns are in `quick_methods.rs`.)
fn overrides<M: ObjectMemory>(r: &mut Run<'_, M>, compile: CompileIn) {
    r.eval_ok(&compile("Integer", "probeA", "probeA ^0 + 1"));
    r.eval_ok(&compile("Integer", "probeB", "probeB ^0 + 10"));
    assert_eq!(r.eval_ok("3 probeA + 3 probeB").as_int(), Some(11));
    r.eval_ok(&compile("SmallInteger", "probeA", "probeA ^0 + 2"));
    assert_eq!(r.eval_ok("3 probeA + 3 probeB").as_int(), Some(12));
    r.eval_ok(&compile("SmallInteger", "probeA", "probeA ^0 + 3"));
    assert_eq!(r.eval_ok("3 probeA + 3 probeB").as_int(), Some(13));
    r.eval_ok("SmallInteger removeSelector: #probeA");
    assert_eq!(r.eval_ok("3 probeA + 3 probeB").as_int(), Some(11));
    r.eval_ok("Integer removeSelector: #probeB");
    assert!(matches!(
        r.eval("3 probeB"),
        Err(VmError::DoesNotUnderstand { ref selector, .. }) if selector == "probeB"
    ));
    assert_eq!(r.eval_ok("3 probeA").as_int(), Some(1));
}

#[test]
fn overrides_and_removals_are_seen_through_the_method_cache_mini() {
    let (heap, base, s) = images("mini.image");
    overrides(&mut Run::new(&mut Tenant::fork(&base), &s), mini_compile_in);
    overrides(
        &mut Run::new(&mut FlatHeap::from_base(&heap), &s),
        mini_compile_in,
    );
}

#[test]
fn overrides_and_removals_are_seen_through_the_method_cache_scratch() {
    let (heap, base, s) = images("Scratch-1.4.0.6.image");
    overrides(
        &mut Run::new(&mut Tenant::fork(&base), &s),
        scratch_compile_in,
    );
    overrides(
        &mut Run::new(&mut FlatHeap::from_base(&heap), &s),
        scratch_compile_in,
    );
}

/// A caller's temporary written since its last send lives only in its kept registers while
/// its callee runs (here the only reference to a new Array): a collection in the callee
/// must still keep what it names.
fn kept_callers_survive_collections<M: ObjectMemory>(r: &mut Run<'_, M>, compile: CompileIn) {
    r.eval_ok(&compile(
        "Integer",
        "benchFib",
        "benchFib ^self < 2 ifTrue: [1] ifFalse: [(self-1) benchFib + (self-2) benchFib + 1]",
    ));
    r.eval_ok(&compile(
        "Integer",
        "keepAcross",
        "keepAcross | b | b := Array new: 7. ^self benchFib + b size",
    ));
    r.vm.set_collection_step(32 << 10);
    let before = r.vm.stats().collections;
    // A send, not an evaluation: no block has exposed a context, so callers are kept.
    let sel = r.eval_ok("#keepAcross");
    let v = r.vm.perform(r.m, Value::int(16), sel, &[], BUDGET).unwrap();
    assert_eq!(v.as_int(), Some(3193 + 7));
    assert!(r.vm.stats().collections > before, "no collection ran");
}

#[test]
fn kept_callers_survive_collections_mini() {
    let (heap, base, s) = images("mini.image");
    kept_callers_survive_collections(&mut Run::new(&mut Tenant::fork(&base), &s), mini_compile_in);
    kept_callers_survive_collections(
        &mut Run::new(&mut FlatHeap::from_base(&heap), &s),
        mini_compile_in,
    );
}

#[test]
fn kept_callers_survive_collections_scratch() {
    let (heap, base, s) = images("Scratch-1.4.0.6.image");
    kept_callers_survive_collections(
        &mut Run::new(&mut Tenant::fork(&base), &s),
        scratch_compile_in,
    );
    kept_callers_survive_collections(
        &mut Run::new(&mut FlatHeap::from_base(&heap), &s),
        scratch_compile_in,
    );
}

#[test]
fn budget_and_depth_limits_leave_the_tenant_usable() {
    let (_, base, s) = images("Scratch-1.4.0.6.image");
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let e = vm
        .evaluate(&mut t, &s, "[true] whileTrue. 3", 200_000)
        .unwrap_err();
    assert!(
        matches!(
            e,
            VmError::BudgetExhausted {
                budget: 200_000,
                ..
            }
        ),
        "{e}"
    );
    // A later call starts afresh.
    assert_eq!(
        vm.evaluate(&mut t, &s, "3 + 4", BUDGET).unwrap().as_int(),
        Some(7)
    );
    vm.max_depth = 20_000;
    vm.evaluate(
        &mut t,
        &s,
        "Integer compile: 'down ^(self + 1) down'",
        BUDGET,
    )
    .unwrap();
    match vm.evaluate(&mut t, &s, "1 down", BUDGET) {
        Err(VmError::StackOverflow { depth, chain }) => {
            assert_eq!(depth, 20_000);
            assert_eq!(
                chain.0.first().map(String::as_str),
                Some("Integer>>down"),
                "{chain}"
            );
        }
        other => panic!("wanted a stack overflow, got {other:?}"),
    }
    assert_eq!(
        vm.evaluate(&mut t, &s, "3 + 4", BUDGET).unwrap().as_int(),
        Some(7)
    );
}

/// Every observation of a program, on one memory: its printString and the bytecodes and
/// sends it took.
fn observe<M: ObjectMemory>(m: &mut M, s: &Symbols, programs: &[&str]) -> Vec<(String, u64, u64)> {
    let mut vm = Vm::new(m).unwrap();
    programs
        .iter()
        .map(|src| {
            let before = vm.stats();
            let text = match vm.evaluate(m, s, src, BUDGET) {
                Ok(v) => vm
                    .print_string(m, s, v, BUDGET)
                    .unwrap_or_else(|e| format!("error {e}")),
                Err(e) => format!("error {e}"),
            };
            let st = vm.stats();
            (
                text,
                st.bytecodes - before.bytecodes,
                st.sends - before.sends,
            )
        })
        .collect()
}

#[test]
fn a_tenant_and_the_flat_heap_run_the_same_programs_identically() {
    let programs = [
        "(1 to: 20) inject: 0 into: [:a :b | a + b]",
        "| s | s := Set new. 1 to: 50 do: [:i | s add: i printString]. s size",
        "| d | d := Dictionary new. #(#a #b #c) doWithIndex: [:k :i | d at: k put: i]. d printString",
        "(1 to: 30) asOrderedCollection reverse asArray printString",
        "30 factorial printString size",
        "nil foo",
        "Smalltalk at: #Zork put: 42. (Smalltalk at: #Zork) + 1",
    ];
    for name in ["mini.image", "Scratch-1.4.0.6.image"] {
        let (heap, base, s) = images(name);
        let mut t = Tenant::fork(&base);
        let on_tenant = observe(&mut t, &s, &programs);
        let mut f = FlatHeap::from_base(&heap);
        let on_flat = observe(&mut f, &s, &programs);
        assert_eq!(on_tenant, on_flat, "{name}");
        assert!(
            on_tenant.iter().all(|(_, bytecodes, _)| *bytecodes > 1_000),
            "{on_tenant:?}"
        );
        assert!(
            on_tenant[5].0.contains("does not understand #foo"),
            "{:?}",
            on_tenant[5]
        );
    }
}
