//! Edges of the interpreter's core: primitives 76 (`stackp:`) and 188 (`withArgs:executeMethod:`)
//! at their limits, returns to dead contexts, kept callers whose method's bytes change, the
//! timer semaphore, and collection in loops that allocate only through primitives.

mod common;
use common::{on_both, send};

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::image::ctx;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{ObjectMemory, Symbols, Vm, VmError};

const BUDGET: u64 = common::SEND_BUDGET;

/// A process waiting on the timer semaphore itself is woken by the timer, as in Squeak
/// (`Delay class>>primSignal:atMilliseconds:` then `wait` on that semaphore).
#[test]
fn a_wait_on_the_timer_semaphore_is_woken_by_the_timer() {
    let mut img = common::timer_prims_image();
    // Semaphore>>timerWait
    //   self primSignal: self atMilliseconds: self millis + 20. self wait. ^42
    let lits = [
        Lit::Sym("millis".into()),
        Lit::Int(20),
        Lit::Sym("primSignal:atMilliseconds:".into()),
        Lit::Sym("wait".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "timerWait",
        0,
        0,
        &lits,
        &[
            112, 112, 112, 208, 33, 176, 242, 135, 112, 211, 135, 36, 124,
        ],
        0,
    );
    on_both!(img, |vm, m, s| {
        let sema = common::new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "timerWait", &[]);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
    });
}

/// A return to a context that is dead (its pc nil) sends #cannotReturn:, as Squeak's
/// interpreter does (`commonReturn` / SqueakJS `doReturn`), rather than stopping the run.
#[test]
fn a_return_to_a_dead_context_sends_cannot_return() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("Object", "instVarAt:put:", 2, 2, &[], &[115, 124], 74);
    // SmallInteger>>deadCtx  ^thisContext  (dead once it has returned)
    img.method("SmallInteger", "deadCtx", 0, 0, &[], &[137, 124], 0);
    // MethodContext>>cannotReturn: v  ^42
    img.method(
        "MethodContext",
        "cannotReturn:",
        1,
        1,
        &[Lit::Int(42)],
        &[32, 124],
        0,
    );
    // SmallInteger>>redirect: d
    //   | t | t := thisContext instVarAt: 1. thisContext instVarAt: 1 put: d.
    //   ^2  (to d, dead: cannotReturn: answers 42, pushed, and the method goes on)
    //   thisContext instVarAt: 1 put: t. ^top
    let lits = [
        Lit::Sym("instVarAt:".into()),
        Lit::Sym("instVarAt:put:".into()),
    ];
    let code = [
        137, 118, 224, 105, // t := thisContext instVarAt: 1
        137, 118, 16, 241, 135, // thisContext instVarAt: 1 put: d
        119, 124, // ^2
        137, 118, 17, 241, 135, // thisContext instVarAt: 1 put: t
        124,
    ];
    img.method("SmallInteger", "redirect:", 1, 2, &lits, &code, 0);
    on_both!(img, |vm, m, s| {
        let dead = send(vm, m, s, Value::int(0), "deadCtx", &[]).unwrap();
        assert!(m.slot(dead, ctx::PC).unwrap().same_word(vm.specials().nil));
        let r = send(vm, m, s, Value::int(0), "redirect:", &[dead]);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
    });
}

/// The processes image with `Semaphore>>wake` (`self signal. self wait. ^self`) and
/// `Semaphore>>armAndWait: t` (`self primSignal: t atMilliseconds: self millis + 30.
/// self wait. ^42`): the active process arms the timer on semaphore `t` and waits on
/// the receiver, which the process waiting on `t` signals once the timer wakes it.
fn timer_image() -> (SynthImage, cowheap_heap::Word) {
    let mut img = common::timer_prims_image();
    let lits = [Lit::Sym("signal".into()), Lit::Sym("wait".into())];
    let wake = img.method(
        "Semaphore",
        "wake",
        0,
        0,
        &lits,
        &[112, 208, 135, 112, 209, 135, 112, 124],
        0,
    );
    let lits = [
        Lit::Sym("millis".into()),
        Lit::Int(30),
        Lit::Sym("primSignal:atMilliseconds:".into()),
        Lit::Sym("wait".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "armAndWait:",
        1,
        1,
        &lits,
        &[112, 16, 112, 208, 33, 176, 242, 135, 112, 211, 135, 36, 124],
        0,
    );
    (img, wake)
}

/// A semaphore `d`, and a timer semaphore `t` with a process waiting on it that runs
/// `d wake`.
fn timer_setup<M: ObjectMemory>(vm: &Vm, m: &mut M, wake: Value) -> (Value, Value) {
    let d = common::new_instance(m, "Semaphore", 3);
    m.set_slot(d, 2, Value::int(0)).unwrap();
    let t = common::new_instance(m, "Semaphore", 3);
    m.set_slot(t, 2, Value::int(0)).unwrap();
    let c = common::context_running(vm, m, wake, d);
    let p = common::new_instance(m, "Process", 4);
    m.set_slot(p, 1, c).unwrap();
    m.set_slot(p, 2, Value::int(4)).unwrap();
    m.set_slot(p, 3, t).unwrap();
    m.set_slot(t, 0, p).unwrap();
    m.set_slot(t, 1, p).unwrap();
    (d, t)
}

/// A run suspended by its budget after it armed the timer (primitive 136) resumes to the
/// same answer with a new interpreter (as `cowheap-vm-resume` does in another process):
/// "a run stopped at any bytecode boundary is all in the heap".
#[test]
fn a_timer_armed_before_a_budget_stop_survives_a_resume_by_a_new_vm() {
    let (img, wake) = timer_image();
    let wake = Value::shared(wake);
    let (base, symbols) = img.freeze().unwrap();
    let base = Base::new(base);
    // With one interpreter all along: 42.
    {
        let mut t = Tenant::fork(&base);
        let mut vm = Vm::new(&t).unwrap();
        let (d, sema) = timer_setup(&vm, &mut t, wake);
        let r = vm.send_named(&mut t, &symbols, d, "armAndWait:", &[sema], BUDGET);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
    }
    // Stopped by the budget right after the timer is armed, resumed by a new Vm.
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let (d, sema) = timer_setup(&vm, &mut t, wake);
    let r = vm.send_named(&mut t, &symbols, d, "armAndWait:", &[sema], 8);
    assert!(matches!(r, Err(VmError::BudgetExhausted { .. })), "{r:?}");
    assert!(
        t.root(cowheap_vm::TIMER_ROOT).is_some(),
        "the armed timer is in the heap"
    );
    drop(vm);
    // A collection between the runs keeps the suspended run and its timer.
    t.collect();
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.resume(&mut t, BUDGET);
    assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
    assert!(
        t.root(cowheap_vm::TIMER_ROOT).is_none(),
        "a finished run leaves no timer"
    );
}

/// A caller whose method's bytes are changed while it waits for a send runs the new bytes
/// once the send returns, as Squeak's interpreter (which fetches from the method object)
/// does: `at:put:` into a method refreshes the kept callers' bytecodes too.
#[test]
fn a_kept_caller_runs_its_method_bytes_as_changed_by_its_callee() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    // SmallInteger>>selfMod: m   self patch: m. ^1     (bytecode 118 at byte 4)
    img.method(
        "SmallInteger",
        "selfMod:",
        1,
        1,
        &[Lit::Sym("patch:".into())],
        &[112, 16, 224, 135, 118, 124],
        0,
    );
    // SmallInteger>>patch: m   m at: 13 put: 119 (byte 4: push 1 becomes push 2). ^self
    img.method(
        "SmallInteger",
        "patch:",
        1,
        1,
        &[Lit::Int(13), Lit::Int(119)],
        &[16, 32, 33, 193, 135, 120],
        0,
    );
    on_both!(img, |vm, m, s| {
        let meth = common::method_of_named(m, "SmallInteger", "selfMod:");
        let r = send(vm, m, s, Value::int(0), "selfMod:", &[meth]);
        assert_eq!(m.bytes(meth).unwrap()[4], 119, "the method was patched");
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(2), "{r:?}");
    });
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
        let meth = common::method_of_named(m, "SmallInteger", "a:b:c:d:e:f:g:h:i:j:k:l:m:n:");
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

/// A loop that allocates only through primitives (no method activation) never collects:
/// the collection threshold is checked on activation alone, so garbage grows with the
/// budget, where Squeak's VM reclaims it. The loop below never holds more than one 80 KB
/// array live, yet on a tenant with a 32 MB quota it stops with the quota exceeded (600
/// arrays, 48 MB, all garbage) although the collection step is 1 MB.
#[test]
fn an_allocation_loop_without_activations_is_collected() {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    t.set_quota(Some(32 << 20));
    let mut vm = Vm::new(&t).unwrap();
    vm.set_collection_step(1 << 20);
    let r = vm.evaluate(
        &mut t,
        &symbols,
        "1 to: 600 do: [:i | Array basicNew: 10000]. 3",
        100_000_000,
    );
    assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(3), "{r:?}");
}

/// `ContextPart>>stackp:` is primitive 76 (primitiveStoreStackp, essential in Squeak: it
/// sets a context's stack pointer, nilling the cells it uncovers); its fallback code in
/// Scratch is `self error: 'stackp store failure'`. Unimplemented here, so the image's own
/// `MethodContext class>>sender:receiver:method:arguments:`, `push:` and `pop` stop the run.
#[test]
fn store_stackp_primitive_76_lets_scratch_build_and_use_a_context() {
    let heap = common::import("Scratch-1.4.0.6.image");
    let symbols = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let r = vm.evaluate(
        &mut t,
        &symbols,
        "| c | c := MethodContext sender: nil receiver: 3 \
         method: (Object compiledMethodAt: #yourself) arguments: #(). c push: 7. c pop",
        100_000_000,
    );
    assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(7), "{r:?}");
}

/// `stackp:` on a context that is not running: a raise stores nil into the fields it
/// uncovers, a drop leaves the fields as they are, and a stack pointer past the context's
/// fields, negative or not a SmallInteger fails the primitive (its fallback answers nil)
/// with the context as it was.
#[test]
fn store_stackp_nils_the_fields_a_raise_uncovers() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("ContextPart", "stackp:", 1, 1, &[], &[123], 76);
    on_both!(img, |vm, m, s| {
        let c = m
            .alloc(
                vm.specials().method_context,
                Format::Pointers,
                ObjectSize {
                    slots: ctx::TEMPS + 4,
                    bytes: 0,
                },
            )
            .unwrap();
        for i in 0..4 {
            m.set_slot(c, ctx::TEMPS + i, Value::int(10 + i as i64))
                .unwrap();
        }
        m.set_slot(c, ctx::STACKP, Value::int(1)).unwrap();
        let nil = vm.specials().nil;
        let r = send(vm, m, s, c, "stackp:", &[Value::int(3)]).unwrap();
        assert!(r.same_word(c), "answers the context");
        assert_eq!(m.slot(c, ctx::STACKP).unwrap().as_int(), Some(3));
        assert_eq!(m.slot(c, ctx::TEMPS).unwrap().as_int(), Some(10));
        assert!(m.slot(c, ctx::TEMPS + 1).unwrap().same_word(nil));
        assert!(m.slot(c, ctx::TEMPS + 2).unwrap().same_word(nil));
        assert_eq!(m.slot(c, ctx::TEMPS + 3).unwrap().as_int(), Some(13));
        send(vm, m, s, c, "stackp:", &[Value::int(0)]).unwrap();
        assert_eq!(m.slot(c, ctx::STACKP).unwrap().as_int(), Some(0));
        assert_eq!(m.slot(c, ctx::TEMPS).unwrap().as_int(), Some(10));
        for bad in [Value::int(5), Value::int(-1), nil] {
            let r = send(vm, m, s, c, "stackp:", &[bad]).unwrap();
            assert!(r.same_word(nil), "the primitive fails for {bad:?}");
            assert_eq!(m.slot(c, ctx::STACKP).unwrap().as_int(), Some(0));
        }
    });
}

/// `thisContext stackp: n`: the running context's stack becomes its first `n` fields,
/// and the answer is pushed on them. `1. 2. thisContext stackp: 1` then a pop leaves the
/// 1 on top.
#[test]
fn store_stackp_into_the_active_context_cuts_its_stack() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.method("ContextPart", "stackp:", 1, 1, &[], &[123], 76);
    // SmallInteger>>cut   1. 2. thisContext stackp: 1. pop. ^top
    img.method(
        "SmallInteger",
        "cut",
        0,
        0,
        &[Lit::Sym("stackp:".into())],
        &[118, 119, 137, 118, 224, 135, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let r = send(vm, m, s, Value::int(0), "cut", &[]);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(1), "{r:?}");
    });
}

/// A wait nothing can signal stops the run with a deadlock, and leaves the semaphore as it
/// was: the active process is not left on its list.
#[test]
fn a_deadlocked_wait_leaves_the_semaphore_as_it_was() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    img.with_processes();
    on_both!(img, |vm, m, s| {
        let sema = common::new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "wait", &[]);
        assert!(matches!(r, Err(VmError::Deadlock { .. })), "{r:?}");
        let nil = vm.specials().nil;
        assert!(m.slot(sema, 0).unwrap().same_word(nil));
        assert!(m.slot(sema, 1).unwrap().same_word(nil));
    });
}
