//! What a run leaves behind when one of its steps fails, and what it carries from one run to
//! the next: the timer armed by a finished run does not fire in a later one on the same
//! interpreter (as it does not with a new one); a closure activation (`valueWithArguments:`
//! included) or a BlockContext's `value` refused as corrupt stops the run with the caller
//! as the active frame and its stack as it was at the send (the new frame is never
//! entered, the BlockContext is not left marked running); a become of
//! several pairs that the tenant's quota refuses changes none of them; and the walk of
//! `someObject`/`nextObject` on a Spur image answers no hidden object (free lists, hidden
//! roots, class-table pages), as Squeak's Spur VM never does.

mod common;
use common::{on_both, send};

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_squeak::auxbits::Aux;
use cowheap_tenants::Tenant;
use cowheap_vm::image::ctx;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

/// A run that arms the timer (primitive 136) and answers leaves no timer: a later run on
/// the same interpreter, waiting with nothing runnable, deadlocks as it does on a new
/// interpreter, instead of being woken by the earlier run's timer.
#[test]
fn a_timer_armed_by_a_finished_run_does_not_fire_in_the_next_run() {
    let mut img = common::timer_prims_image();
    // Semaphore>>arm  self primSignal: self atMilliseconds: self millis + 20. ^42
    let lits = [
        Lit::Sym("millis".into()),
        Lit::Int(20),
        Lit::Sym("primSignal:atMilliseconds:".into()),
        Lit::Int(42),
    ];
    img.method(
        "Semaphore",
        "arm",
        0,
        0,
        &lits,
        &[112, 112, 112, 208, 33, 176, 242, 135, 35, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        let sema = common::new_instance(m, "Semaphore", 3);
        m.set_slot(sema, 2, Value::int(0)).unwrap();
        let r = send(vm, m, s, sema, "arm", &[]);
        assert_eq!(r.as_ref().ok().and_then(|v| v.as_int()), Some(42), "{r:?}");
        assert!(m.root(cowheap_vm::TIMER_ROOT).is_none());
        // A new interpreter: nothing can signal the semaphore.
        let mut fresh = Vm::new(m).unwrap();
        let r = send(&mut fresh, m, s, sema, "wait", &[]);
        assert!(matches!(r, Err(VmError::Deadlock { .. })), "{r:?}");
        // The interpreter that ran `arm`: the same.
        let r = send(vm, m, s, sema, "wait", &[]);
        assert!(matches!(r, Err(VmError::Deadlock { .. })), "{r:?}");
    });
}

/// A closure whose start pc lies before its method's bytecodes is refused as corrupt
/// before its activation changes anything: the run stops in the method that sent
/// `value`, which is the first frame of the error's chain (the block was never entered).
#[test]
fn a_closure_refused_at_activation_leaves_its_caller_active() {
    let mut img = SynthImage::new(true);
    img.with_kernel_methods();
    // SmallInteger>>run: blk  ^blk value
    let run = img.method("SmallInteger", "run:", 1, 1, &[], &[16, 201, 124], 0);
    let run = Value::shared(run);
    let (base, symbols) = img.freeze().unwrap();
    let mut flat = FlatHeap::from_base(&base);
    let mut vm = Vm::new(&flat).unwrap();
    refused_closure(&mut vm, &mut flat, &symbols, run);
    let base = Base::new(base);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    refused_closure(&mut vm, &mut t, &symbols, run);
}

/// A context of method `run` (receiver 3, a small frame) whose stack pointer is `sp`.
fn context_of<M: ObjectMemory>(vm: &Vm, m: &mut M, run: Value, sp: i64) -> Value {
    let c = m
        .alloc(
            vm.specials().method_context,
            Format::Pointers,
            ObjectSize {
                slots: ctx::TEMPS + 16,
                bytes: 0,
            },
        )
        .unwrap();
    m.set_slot(c, ctx::METHOD, run).unwrap();
    m.set_slot(c, ctx::RECEIVER, Value::int(3)).unwrap();
    m.set_slot(c, ctx::STACKP, Value::int(sp)).unwrap();
    c
}

/// A closure of `args` arguments in a context of method `run` (receiver 3), whose start
/// pc, 1, lies before the method's first bytecode (at 5: a header and no literals), so its
/// activation is refused as corrupt.
fn closure_before_its_bytecodes<M: ObjectMemory>(
    vm: &Vm,
    m: &mut M,
    run: Value,
    args: i64,
) -> Value {
    let outer = context_of(vm, m, run, 0);
    let blk = common::new_instance(m, "BlockClosure", 3);
    m.set_slot(blk, 0, outer).unwrap();
    m.set_slot(blk, 1, Value::int(1)).unwrap();
    m.set_slot(blk, 2, Value::int(args)).unwrap();
    blk
}

fn refused_closure<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, run: Value) {
    let blk = closure_before_its_bytecodes(vm, m, run, 0);
    let before = vm.stats().contexts;
    match send(vm, m, s, Value::int(3), "run:", &[blk]) {
        Err(VmError::CorruptMethod { chain, .. }) => {
            assert_eq!(
                chain.0.first().map(String::as_str),
                Some("SmallInteger>>run:"),
                "{chain}"
            );
        }
        r => panic!("{r:?}"),
    }
    // The caller's context and the bottom one; no context for the refused block.
    assert_eq!(vm.stats().contexts - before, 1);
}

/// `valueWithArguments:` (206) of such a closure is refused before the arguments leave
/// their Array: the sender's context, kept by the image, holds its stack as it was at the
/// send (the closure and the Array), not the Array's elements.
#[test]
fn a_closure_refused_by_value_with_arguments_leaves_its_senders_stack() {
    let mut img = SynthImage::new(true);
    img.with_kernel_methods();
    img.method(
        "BlockClosure",
        "valueWithArguments:",
        1,
        1,
        &[],
        &[115, 124],
        206,
    );
    // SmallInteger>>run: blk with: arr in: holder
    //   holder at: 1 put: thisContext. ^blk valueWithArguments: arr
    let run = img.method(
        "SmallInteger",
        "run:with:in:",
        3,
        3,
        &[Lit::Sym("valueWithArguments:".into())],
        &[18, 118, 137, 193, 135, 16, 17, 224, 124],
        0,
    );
    let run = Value::shared(run);
    let (base, symbols) = img.freeze().unwrap();
    let mut flat = FlatHeap::from_base(&base);
    let mut vm = Vm::new(&flat).unwrap();
    refused_with_arguments(&mut vm, &mut flat, &symbols, run);
    let base = Base::new(base);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    refused_with_arguments(&mut vm, &mut t, &symbols, run);
}

fn refused_with_arguments<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, run: Value) {
    let blk = closure_before_its_bytecodes(vm, m, run, 2);
    let arr = m
        .alloc(
            vm.specials().array_class,
            Format::Pointers,
            ObjectSize { slots: 2, bytes: 0 },
        )
        .unwrap();
    m.set_slot(arr, 0, Value::int(7)).unwrap();
    m.set_slot(arr, 1, Value::int(8)).unwrap();
    let holder = common::new_instance(m, "Array", 1);
    let r = send(vm, m, s, Value::int(3), "run:with:in:", &[blk, arr, holder]);
    assert!(matches!(r, Err(VmError::CorruptMethod { .. })), "{r:?}");
    let sender = m.slot(holder, 0).unwrap();
    // The three arguments, then the closure and the Array.
    assert_eq!(m.slot(sender, ctx::STACKP).unwrap().as_int(), Some(5));
    assert!(m.slot(sender, ctx::TEMPS + 4).unwrap().same_word(arr));
}

/// The same for a pre-closure BlockContext (`value`, 81) whose start pc lies before its
/// home method's bytecodes: refused before the block is entered, so the block is not left
/// marked running (its caller set), and `value` of it later fails as for any block that
/// cannot be entered, rather than as for one already running.
#[test]
fn a_block_context_refused_at_entry_is_left_as_it_was() {
    let mut img = SynthImage::new(false);
    img.with_kernel_methods();
    // SmallInteger>>run: blk  ^blk value
    let run = img.method(
        "SmallInteger",
        "run:",
        1,
        1,
        &[Lit::Sym("value".into())],
        &[16, 208, 124],
        0,
    );
    let run = Value::shared(run);
    let (base, symbols) = img.freeze().unwrap();
    let mut flat = FlatHeap::from_base(&base);
    let mut vm = Vm::new(&flat).unwrap();
    refused_block_context(&mut vm, &mut flat, &symbols, run);
    let base = Base::new(base);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    refused_block_context(&mut vm, &mut t, &symbols, run);
}

fn refused_block_context<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, run: Value) {
    let home = context_of(vm, m, run, 1);
    let blk = m
        .alloc(
            vm.specials().block_context,
            Format::Pointers,
            ObjectSize {
                slots: ctx::TEMPS + 16,
                bytes: 0,
            },
        )
        .unwrap();
    m.set_slot(blk, ctx::BLOCK_ARGS, Value::int(0)).unwrap();
    m.set_slot(blk, ctx::HOME, home).unwrap();
    // The method's first bytecode is at 9 (a header and one literal).
    m.set_slot(blk, ctx::BLOCK_START, Value::int(2)).unwrap();
    m.set_slot(blk, ctx::STACKP, Value::int(0)).unwrap();
    match send(vm, m, s, Value::int(3), "run:", &[blk]) {
        Err(VmError::CorruptMethod { chain, .. }) => {
            assert_eq!(
                chain.0.first().map(String::as_str),
                Some("SmallInteger>>run:"),
                "{chain}"
            );
        }
        r => panic!("{r:?}"),
    }
    let nil = vm.specials().nil;
    assert!(
        m.slot(blk, ctx::SENDER).unwrap().same_word(nil),
        "left running"
    );
    assert!(m.slot(blk, ctx::PC).unwrap().same_word(nil));
    assert_eq!(m.slot(blk, ctx::STACKP).unwrap().as_int(), Some(0));
}

/// `elementsExchangeIdentityWith:` of two pairs, the second refused by the tenant's quota
/// (it would copy a large base object): the run stops with the quota error and the first
/// pair is not exchanged either, as a Squeak VM's array become fails whole.
#[test]
fn a_two_way_become_refused_by_the_quota_exchanges_no_pair() {
    become_refused_by_the_quota("mini.image", "elementsExchangeIdentityWith:");
}

/// The same with `elementsForwardIdentityTo:` (72, on Scratch: mini.image has no such
/// method), whose hash write into a large base target copies it.
#[test]
fn a_one_way_become_refused_by_the_quota_forwards_no_pair() {
    become_refused_by_the_quota("Scratch-1.4.0.6.image", "elementsForwardIdentityTo:");
}

/// The largest Array (instance of `array`) `t` reaches.
fn largest_array(t: &Tenant, array: Value) -> Value {
    let mut all = Vec::new();
    t.enumerate_objects(&mut all).unwrap();
    all.iter()
        .copied()
        .filter(|&o| t.class_of(o).unwrap().word() == array.word())
        .max_by_key(|&o| t.size(o).unwrap().slots)
        .unwrap()
}

fn become_refused_by_the_quota(image: &str, selector: &str) {
    let heap = common::import(image);
    let s = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let array = vm.specials().array_class;
    let big = largest_array(&t, array);
    let n = t.size(big).unwrap().slots;
    assert!(n > 1_000, "{n}");
    let new = |t: &mut Tenant, slots: usize, first: i64| {
        let a = t
            .alloc(array, Format::Pointers, ObjectSize { slots, bytes: 0 })
            .unwrap();
        t.set_slot(a, 0, Value::int(first)).unwrap();
        a
    };
    let (x1, y1, x2) = (new(&mut t, 1, 1), new(&mut t, 1, 2), new(&mut t, 1, 3));
    let (hx1, hy1) = (t.identity_hash(x1).unwrap(), t.identity_hash(y1).unwrap());
    let pairs = |t: &mut Tenant, a: Value, b: Value| {
        let p = new(t, 2, 0);
        t.set_slot(p, 0, a).unwrap();
        t.set_slot(p, 1, b).unwrap();
        p
    };
    let (from, to) = (pairs(&mut t, x1, x2), pairs(&mut t, y1, big));
    t.set_quota(Some(t.stats().private_bytes + 4096));
    let r = vm.send_named(&mut t, &s, from, selector, &[to], 100_000);
    assert!(
        matches!(
            r,
            Err(VmError::Memory(
                cowheap_tenants::Error::QuotaExceeded { .. }
            ))
        ),
        "{r:?}"
    );
    // Nothing exchanged or forwarded: each object reads as it did, with its hash.
    assert_eq!(t.slot(x1, 0).unwrap().as_int(), Some(1));
    assert_eq!(t.slot(y1, 0).unwrap().as_int(), Some(2));
    assert!(!t.identical(x1, y1).unwrap());
    assert_eq!(t.identity_hash(x1).unwrap(), hx1);
    assert_eq!(t.identity_hash(y1).unwrap(), hy1);
    assert!(!t.identical(x2, big).unwrap());
}

/// A one-way become whose private source is as large as its base target fits a quota that
/// has room for neither alone: the source's body gives way to a forwarder before the target
/// is copied for its hash, and the check made before the first pair counts it so.
#[test]
fn a_one_way_become_that_gives_back_what_it_takes_fits_the_quota() {
    let heap = common::import("Scratch-1.4.0.6.image");
    let s = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let array = vm.specials().array_class;
    let big = largest_array(&t, array);
    let n = t.size(big).unwrap().slots;
    let one = |t: &mut Tenant, v: Value| {
        let a = t
            .alloc(array, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
            .unwrap();
        t.set_slot(a, 0, v).unwrap();
        a
    };
    let x = t
        .alloc(array, Format::Pointers, ObjectSize { slots: n, bytes: 0 })
        .unwrap();
    let (from, to) = (one(&mut t, x), one(&mut t, big));
    let hx = t.identity_hash(x).unwrap();
    t.set_quota(Some(t.stats().private_bytes + 4096));
    let r = vm.send_named(
        &mut t,
        &s,
        from,
        "elementsForwardIdentityTo:",
        &[to],
        100_000,
    );
    assert!(r.is_ok(), "{r:?}");
    assert!(t.identical(x, big).unwrap());
    assert_eq!(t.identity_hash(big).unwrap(), hx);
}

/// `nextObject` from nil to the end of memory, and `someObject`, on the headless Spur image:
/// every object answered is an ordinary one (Squeak's Spur VM walks only the objects whose
/// class index is past the puns), on a tenant and on the flat heap.
#[test]
fn a_walk_of_every_object_answers_no_hidden_spur_object() {
    let heap = common::import("headless-spur32.image");
    let hidden: Vec<bool> = heap
        .indices()
        .map(|x| Aux::decode(heap.object(x).unwrap().aux).is_hidden())
        .collect();
    assert!(hidden.iter().filter(|&&h| h).count() >= 3);
    let s = Symbols::from_base(&heap);
    let is_hidden = |v: Value| {
        v.as_base()
            .is_some_and(|x| hidden.get(x.get()).copied().unwrap_or(false))
    };
    // The base's objects only: each send makes objects of its own, which a walk that went
    // on into them would meet without end.
    let imported = heap.len();
    let walk = |vm: &mut Vm, m: &mut dyn FnMut(&mut Vm, Value, &str) -> Value| {
        let nil = vm.specials().nil;
        let first = m(vm, nil, "someObject");
        assert!(!is_hidden(first), "someObject answered a hidden object");
        let mut o = nil;
        let mut n = 0;
        loop {
            let next = m(vm, o, "nextObject");
            if next.as_base().is_none_or(|x| x.get() >= imported) {
                return n;
            }
            assert!(
                !is_hidden(next),
                "nextObject answered a hidden object {next:?}"
            );
            n += 1;
            o = next;
        }
    };
    let mut flat = FlatHeap::from_base(&heap);
    let mut vm = Vm::new(&flat).unwrap();
    let on_flat = walk(&mut vm, &mut |vm, r, sel| {
        vm.send_named(&mut flat, &s, r, sel, &[], 1_000).unwrap()
    });
    let base = Base::new(heap);
    let mut t = Tenant::fork(&base);
    let mut vm = Vm::new(&t).unwrap();
    let on_tenant = walk(&mut vm, &mut |vm, r, sel| {
        vm.send_named(&mut t, &s, r, sel, &[], 1_000).unwrap()
    });
    assert!(on_flat > 2_000, "{on_flat}");
    assert_eq!(on_tenant, on_flat);
}

/// A method whose context is full but for one field, returning to a dead sender: the
/// `cannotReturn:` send needs two (the context and the value), so the run stops with a
/// typed error, and the context's stack holds what the method left on it: neither value
/// was pushed (before, the first was, and stayed on the stopped run's stack).
#[test]
fn a_cannot_return_with_no_room_pushes_nothing() {
    for k in 0..40usize {
        let mut img = common::kernel_image(false);
        // MethodContext>>fullKill: holder
        //   holder at: 1 put: thisContext. pc := nil. nil ... nil (k of them). ^5
        let mut code = vec![16, 118, 137, 193, 135, 115, 97];
        code.extend(std::iter::repeat_n(115, k));
        code.extend([32, 124]);
        img.method("MethodContext", "fullKill:", 1, 1, &[Lit::Int(5)], &code, 0);
        // SmallInteger>>callFull: holder  ^thisContext fullKill: holder
        img.method(
            "SmallInteger",
            "callFull:",
            1,
            1,
            &[Lit::Sym("fullKill:".into())],
            &[137, 16, 224, 124],
            0,
        );
        let (base, symbols) = img.freeze().unwrap();
        let mut flat = FlatHeap::from_base(&base);
        let mut vm = Vm::new(&flat).unwrap();
        let on_flat = stack_at_no_room(&mut vm, &mut flat, &symbols);
        let base = Base::new(base);
        let mut t = Tenant::fork(&base);
        let mut vm = Vm::new(&t).unwrap();
        let on_tenant = stack_at_no_room(&mut vm, &mut t, &symbols);
        assert_eq!(on_flat, on_tenant, "k = {k}");
        if let Some(sp) = on_flat {
            // The argument and the k nils; the 5 was popped by the return.
            assert_eq!(sp, Some(1 + k as i64), "k = {k}");
            return;
        }
    }
    panic!("no context was ever full at its return");
}

/// Sends `callFull:`; if the run stopped for want of room on a context's stack, the
/// stack pointer of the context `fullKill:` ran in.
fn stack_at_no_room<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols) -> Option<Option<i64>> {
    let holder = m
        .alloc(
            vm.specials().array_class,
            Format::Pointers,
            ObjectSize { slots: 1, bytes: 0 },
        )
        .unwrap();
    let e = send(vm, m, s, Value::int(0), "callFull:", &[holder]).err()?;
    if !e.to_string().contains("a push past the end of the context") {
        return None;
    }
    let full = m.slot(holder, 0).unwrap();
    Some(m.slot(full, ctx::STACKP).unwrap().as_int())
}
