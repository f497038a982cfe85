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
    common::kernel_image(closures)
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
            common::method_of_named(m, "SmallInteger", "one"),
            common::method_of_named(m, "SmallInteger", "two"),
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

/// A process on a runnable list or a semaphore whose suspended context is no context (a
/// hostile image's), priority `priority`, first and only on `list`.
fn broken_process<M: ObjectMemory>(m: &mut M, priority: i64, list: Value) -> Value {
    let sched = m.root("processor").unwrap();
    let process = m.class_of(m.slot(sched, 1).unwrap()).unwrap();
    let p = m
        .alloc(process, Format::Pointers, ObjectSize { slots: 4, bytes: 0 })
        .unwrap();
    m.set_slot(p, 1, Value::int(3)).unwrap();
    m.set_slot(p, 2, Value::int(priority)).unwrap();
    m.set_slot(p, 3, list).unwrap();
    m.set_slot(list, 0, p).unwrap();
    m.set_slot(list, 1, p).unwrap();
    p
}

/// A switch to a process whose suspended context is no context stops the run with a typed
/// error and leaves the scheduler as it was: the active process still active and on no
/// list, the other process still first on its list (a runnable list for `yield` and
/// `wait`, the semaphore for `signal`) with its suspended context.
#[test]
fn a_switch_to_a_process_without_a_context_leaves_the_scheduler_as_it_was() {
    let mut img = image(false);
    img.with_processes();
    on_both!(img, |vm, m, s| {
        let nil = vm.specials().nil;
        let sched = m.root("processor").unwrap();
        let lists = m.slot(sched, 0).unwrap();
        let active = m.slot(sched, 1).unwrap();
        let semaphore = m.root("class.Semaphore").unwrap();
        for (what, priority) in [("yield", 4), ("wait", 4), ("signal", 5)] {
            let list = m.slot(lists, priority as usize - 1).unwrap();
            let sema = m
                .alloc(
                    semaphore,
                    Format::Pointers,
                    ObjectSize { slots: 3, bytes: 0 },
                )
                .unwrap();
            m.set_slot(sema, 2, Value::int(0)).unwrap();
            let (p, r) = match what {
                "yield" => {
                    let p = broken_process(m, priority, list);
                    (p, send(vm, m, s, sched, "yield", &[]))
                }
                "wait" => {
                    let p = broken_process(m, priority, list);
                    (p, send(vm, m, s, sema, "wait", &[]))
                }
                _ => {
                    let p = broken_process(m, priority, sema);
                    (p, send(vm, m, s, sema, "signal", &[]))
                }
            };
            let on = if what == "signal" { sema } else { list };
            assert!(r.is_err(), "{what}: {r:?}");
            assert!(
                m.identical(m.slot(sched, 1).unwrap(), active).unwrap(),
                "{what}: {r:?}: the active process changed"
            );
            assert!(
                m.identical(m.slot(on, 0).unwrap(), p).unwrap(),
                "{what}: {r:?}: the list lost its process"
            );
            assert!(
                m.identical(m.slot(on, 1).unwrap(), p).unwrap(),
                "{what}: {r:?}: the list's last changed"
            );
            assert_eq!(
                m.slot(p, 1).unwrap().as_int(),
                Some(3),
                "{what}: {r:?}: its context was taken"
            );
            assert!(m.slot(p, 0).unwrap().same_word(nil), "{what}: {r:?}");
            assert!(
                m.slot(active, 0).unwrap().same_word(nil),
                "{what}: {r:?}: the active process was linked"
            );
            assert!(
                m.slot(active, 1).unwrap().same_word(nil),
                "{what}: {r:?}: the active process was suspended"
            );
            assert!(
                m.slot(sema, 0)
                    .unwrap()
                    .same_word(if what == "signal" { p } else { nil }),
                "{what}: the semaphore"
            );
            for i in 0..8 {
                let l = m.slot(lists, i).unwrap();
                if !m.identical(l, on).unwrap() {
                    assert!(m.slot(l, 0).unwrap().same_word(nil), "{what}: list {i}");
                }
            }
            // The process taken off again for the next case.
            m.set_slot(on, 0, nil).unwrap();
            m.set_slot(on, 1, nil).unwrap();
        }
    });
}

/// A method run on its caller's context that makes that context dead (`pc := nil`), then
/// returns to it without a send between (so its own context was never made): Squeak sends
/// `cannotReturn:` to the returning context, which here reaches the image's default method
/// and stops the run naming a MethodContext, not nil.
#[test]
fn cannot_return_from_a_context_never_looked_at_goes_to_that_context() {
    let mut img = image(false);
    img.method("Object", "cannotReturn:", 1, 1, &[], &[115, 124], 0);
    // MethodContext>>killSender  pc := nil. ^5
    img.method(
        "MethodContext",
        "killSender",
        0,
        0,
        &[Lit::Int(5)],
        &[115, 97, 32, 124],
        0,
    );
    // SmallInteger>>callKill  ^thisContext killSender
    img.method(
        "SmallInteger",
        "callKill",
        0,
        0,
        &[Lit::Sym("killSender".into())],
        &[137, 208, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        match send(vm, m, s, Value::int(0), "callKill", &[]) {
            Err(cowheap_vm::VmError::ImageError {
                selector,
                receiver_class,
                ..
            }) => {
                assert_eq!(
                    (selector.as_str(), receiver_class.as_str()),
                    ("cannotReturn:", "MethodContext")
                );
            }
            other => panic!("{other:?}"),
        }
    });
}

/// A block's `^` whose home is live but whose home's sender is dead, with an unwind marker
/// (primitive 198) between: Squeak's return checks the context it returns to before it
/// looks for unwind contexts, so it sends `cannotReturn:` (here the image's default method,
/// which stops the run) and never `aboutToReturn:through:`, which would run the unwind
/// blocks of a return that cannot be made.
#[test]
fn a_return_to_a_dead_sender_through_an_unwind_marker_sends_cannot_return_first() {
    let mut img = image(true);
    common::with_unwind_recorder(&mut img);
    img.method("Object", "cannotReturn:", 1, 1, &[], &[115, 124], 0);
    // MethodContext>>sender  ^sender      MethodContext>>killSender  pc := nil
    img.method("MethodContext", "sender", 0, 0, &[], &[0, 124], 0);
    img.method("MethodContext", "killSender", 0, 0, &[], &[115, 97, 120], 0);
    // home  thisContext sender killSender. ^self ensureLike: [^5. 9]
    let lits = [
        Lit::Sym("sender".into()),
        Lit::Sym("killSender".into()),
        Lit::Int(5),
        Lit::Int(9),
        Lit::Sym("ensureLike:".into()),
    ];
    img.method(
        "SmallInteger",
        "home",
        0,
        0,
        &lits,
        &[
            137, 208, 209, 135, 112, 143, 0, 0, 4, 34, 124, 35, 125, 228, 124,
        ],
        0,
    );
    img.method(
        "SmallInteger",
        "callHome",
        0,
        0,
        &[Lit::Sym("home".into())],
        &[112, 208, 124],
        0,
    );
    on_both!(img, |vm, m, s| {
        match send(vm, m, s, Value::int(0), "callHome", &[]) {
            Err(cowheap_vm::VmError::ImageError {
                selector,
                receiver_class,
                ..
            }) => {
                assert_eq!(
                    (selector.as_str(), receiver_class.as_str()),
                    ("cannotReturn:", "MethodContext")
                );
            }
            other => panic!("{other:?}"),
        }
        let seen = send(vm, m, s, Value::int(0), "seen", &[]).unwrap();
        assert_eq!(seen.as_int(), Some(0), "aboutToReturn:through: was sent");
    });
}

/// A block's `^` from a method marked as an unwind context (primitive 198) itself: Squeak
/// looks for unwind contexts up to the home's sender, the home included, so it sends
/// `aboutToReturn:through:` with the home.
#[test]
fn a_non_local_return_from_an_unwind_marked_home_sends_about_to_return() {
    let mut img = image(true);
    common::with_unwind_recorder(&mut img);
    // markedHome  <primitive: 198>  ^[:x | ^x. x] value: 5
    img.method(
        "SmallInteger",
        "markedHome",
        0,
        0,
        &[Lit::Int(5)],
        &[143, 1, 0, 4, 16, 124, 16, 125, 32, 202, 124],
        198,
    );
    on_both!(img, |vm, m, s| {
        let r = send(vm, m, s, Value::int(0), "markedHome", &[]).unwrap();
        assert_eq!(r.as_int(), Some(5));
        let seen = send(vm, m, s, Value::int(0), "seen", &[]).unwrap();
        assert_eq!(
            seen.as_int(),
            Some(5),
            "aboutToReturn:through: was not sent"
        );
    });
}
