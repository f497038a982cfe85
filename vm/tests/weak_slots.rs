//! Weak objects in the interpreter's collections: a weak object's indexed slots keep
//! nothing alive, a slot whose object the collection frees reads nil after it, and the
//! collector then signals the image's finalization semaphore (special object 41), as
//! Squeak's does; its named instance variables are strong. On a tenant and on the flat heap:
//! Scratch's `WeakArray` by the image's own compiler, and in every image (V3 and Spur) a
//! weak class made from `Array`, by `perform`, collecting between runs as an embedder does.

mod common;

use common::world::World;
use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, MOURNERS_ROOT, ObjectMemory, Symbols, Vm};

/// The image with a `WeakArray` (and a compiler, and a finalization semaphore).
const V3_IMAGES: [&str; 1] = ["Scratch-1.4.0.6.image"];
/// Every image.
const ALL_IMAGES: [&str; 4] = [
    "mini.image",
    "Scratch-1.4.0.6.image",
    "headless-spur32.image",
    "bootstrapped.image",
];
const BUDGET: u64 = 50_000_000;

/// `src` (statements with temporaries, which older compilers take at a method's top level
/// only) with its last expression's printString answered instead.
fn printed(src: &str) -> String {
    let (stmts, last) = src.rsplit_once(". ").unwrap();
    format!("{stmts}. ({last}) printString")
}

/// A program that puts a fresh object and a kept one in a WeakArray, collects, and
/// answers whether the fresh one's slot was cleared and the kept one's was not. The fresh object is made in a method of its own, so that no
/// context's stack still holds it.
const CLEARED: &str = "| w kept | \
    kept := Array new: 3. \
    w := WeakArray new: 2. \
    w at: 1 put: (Array new: 5); at: 2 put: kept. \
    Smalltalk garbageCollect. \
    (w at: 1) isNil & ((w at: 2) == kept)";

#[test]
fn a_weak_array_loses_what_only_it_holds_on_a_tenant() {
    for image in V3_IMAGES {
        let mut w = World::new(image);
        let v = w.eval(&printed(CLEARED));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}");
        assert!(w.vm.stats().weak_cleared >= 1, "{image}");
    }
}

#[test]
fn a_weak_array_loses_what_only_it_holds_on_the_flat_heap() {
    for image in V3_IMAGES {
        let heap = common::import(image);
        let s = Symbols::from_base(&heap);
        let mut flat = FlatHeap::from_base(&heap);
        let mut vm = Vm::new(&flat).unwrap();
        let src = printed(CLEARED);
        let v = vm.evaluate(&mut flat, &s, &src, BUDGET).unwrap();
        assert_eq!(vm.text_of(&flat, v).unwrap(), "true", "{image}");
        assert!(vm.stats().weak_cleared >= 1, "{image}");
    }
}

#[test]
fn a_strong_array_keeps_what_it_holds() {
    // The same program with an Array: the collection keeps the fresh object.
    for image in V3_IMAGES {
        let mut w = World::new(image);
        let src = CLEARED.replace("WeakArray new: 2", "Array new: 2");
        let v = w.eval(&printed(&src));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "false", "{image}");
    }
}

#[test]
fn a_cleared_slot_signals_the_finalization_semaphore() {
    for image in V3_IMAGES {
        let mut w = World::new(image);
        // A semaphore of the test's own in the special objects array, with no waiter:
        // the collector's signal is counted in its excess signals.
        let src = "| s w | \
            s := Semaphore new. \
            Smalltalk specialObjectsArray at: 42 put: s. \
            w := WeakArray new: 1. \
            w at: 1 put: (Array new: 4). \
            Smalltalk at: #WeakTestSema put: s. \
            Smalltalk garbageCollect. \
            (w at: 1) isNil";
        let v = w.eval(&printed(src));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}");
        let sema = w.global("WeakTestSema");
        let excess = w.t.slot(sema, 2).unwrap().as_int();
        assert!(matches!(excess, Some(n) if n >= 1), "{image}: {excess:?}");

        // With nothing cleared, no signal.
        let src = "| s | \
            s := Semaphore new. \
            Smalltalk specialObjectsArray at: 42 put: s. \
            Smalltalk at: #WeakTestSema put: s. \
            Smalltalk garbageCollect. \
            0";
        w.eval(src);
        let sema = w.global("WeakTestSema");
        assert_eq!(w.t.slot(sema, 2).unwrap().as_int(), Some(0), "{image}");
    }
}

/// The integer value of a class format word for weak instances with `named` named
/// instance variables, in the image's object format.
fn weak_format(spur: bool, named: i64) -> i64 {
    if spur {
        (4 << 16) | named
    } else {
        (4 << 7) | ((named + 1) << 1)
    }
}

/// On `m`, a copy of the image's `Array` class made weak with one named instance variable;
/// an instance of it holds a fresh Array in its named variable, a fresh one and a kept one
/// in its indexed slots; collected with the interpreter's weakness, the indexed fresh one
/// is cleared and freed, the named one and the kept one stay.
fn weak_instance<M: ObjectMemory>(m: &mut M, image: &str, spur: bool) {
    let s = Symbols::from_base(common::base(image).heap());
    let mut vm = Vm::new(&*m).unwrap();
    // The image's Array class: special object 7.
    let specials = m.root("specialObjects").unwrap();
    let array = m.slot(specials, 7).unwrap();
    let h = m.header(array).unwrap();
    let class = m.alloc(h.class, h.format, h.size).unwrap();
    for i in 0..h.size.slots {
        let v = m.slot(array, i).unwrap();
        m.set_slot(class, i, v).unwrap();
    }
    m.set_slot(class, 2, Value::int(weak_format(spur, 1)))
        .unwrap();
    m.set_root("class", class).unwrap();
    let w = common::answer(&mut vm, m, &s, class, "new:", &[Value::int(2)], BUDGET);
    assert_eq!(m.format(w).unwrap(), Format::Weak, "{image}");
    assert_eq!(m.size(w).unwrap().slots, 3, "{image}");
    let made: Vec<Value> = (0..3)
        .map(|n| common::answer(&mut vm, m, &s, array, "new:", &[Value::int(n)], BUDGET))
        .collect();
    for (i, &v) in made.iter().enumerate() {
        m.set_slot(w, i, v).unwrap();
    }
    m.set_root("weak", w).unwrap();
    m.set_root("kept", made[2]).unwrap();
    let done = m.collect(&[], &vm.weak_slots()).unwrap();
    assert_eq!(done.cleared, 1, "{image}");
    let nil = vm.weak_slots().nil;
    assert!(
        m.identical(m.slot(w, 0).unwrap(), made[0]).unwrap(),
        "{image}: named"
    );
    assert!(
        m.identical(m.slot(w, 1).unwrap(), nil).unwrap(),
        "{image}: cleared"
    );
    assert!(
        m.identical(m.slot(w, 2).unwrap(), made[2]).unwrap(),
        "{image}: kept"
    );
    assert!(
        m.size(made[1]).is_err(),
        "{image}: the fresh Array was freed"
    );
    assert!(m.size(made[0]).is_ok(), "{image}: the named one was kept");
    // The weak object whose slot was cleared is answered as a mourner, once.
    assert_eq!(done.weak_mourners.len(), 1, "{image}");
    assert!(m.identical(done.weak_mourners[0], w).unwrap(), "{image}");
    assert!(done.mourners.is_empty(), "{image}: no ephemeron fired");
    // Through the interpreter: queued for the image's finalization (primitive 172) in a
    // Spur image whose header flags ask for it (bit 6, 64), once however often its slots
    // are cleared while it waits; not in one that does not ask (the test images do not),
    // and never in an image of the older format, which has no queue.
    let flags = m.root("image.flags").and_then(|v| v.as_int()).unwrap_or(0);
    for asks in [false, true] {
        let f = if asks { flags | 64 } else { flags & !64 };
        m.set_root("image.flags", Value::int(f)).unwrap();
        let mut vm = Vm::new(&*m).unwrap();
        for _ in 0..2 {
            let fresh = common::answer(&mut vm, m, &s, array, "new:", &[Value::int(1)], BUDGET);
            m.set_slot(w, 1, fresh).unwrap();
            let done = vm.collect(m).unwrap();
            assert_eq!(done.weak_mourners.len(), 1, "{image}");
            let (head, tail) = (
                m.root(&format!("{MOURNERS_ROOT}.head")),
                m.root(&format!("{MOURNERS_ROOT}.tail")),
            );
            if spur && asks {
                assert_eq!(head.and_then(|v| v.as_int()), Some(0), "{image}");
                assert_eq!(tail.and_then(|v| v.as_int()), Some(1), "{image}");
                let queued = m.root(&format!("{MOURNERS_ROOT}.0")).unwrap();
                assert!(m.identical(queued, w).unwrap(), "{image}");
            } else {
                assert!(head.is_none() && tail.is_none(), "{image}, asks: {asks}");
            }
        }
    }
}

#[test]
fn a_weak_class_holds_its_named_variables_strongly_in_every_image() {
    for image in ALL_IMAGES {
        let base = common::base(image);
        let spur = image.contains("spur");
        let mut t = Tenant::fork(&base);
        weak_instance(&mut t, image, spur);
        let mut flat = FlatHeap::from_base(base.heap());
        weak_instance(&mut flat, image, spur);
    }
}

/// An object at special object 41 that is no Semaphore is left alone, as Squeak's
/// interpreter leaves it: not written as a count, and the run goes on.
#[test]
fn a_finalization_object_that_is_no_semaphore_is_left_alone() {
    for image in V3_IMAGES {
        let mut w = World::new(image);
        let src = "| a w | \
            a := Array new: 3. a at: 3 put: 5. \
            Smalltalk specialObjectsArray at: 42 put: a. \
            Smalltalk at: #WeakTestArr put: a. \
            w := WeakArray new: 1. \
            w at: 1 put: (Array new: 4). \
            Smalltalk garbageCollect. \
            (w at: 1) isNil";
        let v = w.eval(&printed(src));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}");
        let a = w.global("WeakTestArr");
        assert_eq!(w.t.slot(a, 2).unwrap().as_int(), Some(5), "{image}");
        // One whose first slot is no process does not stop the run either.
        let src = "| a w | \
            a := Array new: 3. a at: 1 put: 'not a process'. \
            Smalltalk specialObjectsArray at: 42 put: a. \
            w := WeakArray new: 1. \
            w at: 1 put: (Array new: 4). \
            Smalltalk garbageCollect. \
            (w at: 1) isNil";
        let v = w.eval(&printed(src));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}");
    }
}

/// After `Smalltalk garbageCollect` clears a weak slot, the finalization semaphore's
/// waiter of a higher priority than the active process runs before the active process's
/// next statement, as in Squeak; one of a lower priority waits its turn.
#[test]
fn the_finalization_waiter_preempts_after_the_collect_primitive() {
    for image in V3_IMAGES {
        let mut w = World::new(image);
        let program = |offset: &str| {
            format!(
                "| s w ran | \
                ran := Array new: 1. \
                s := Semaphore new. \
                Smalltalk specialObjectsArray at: 42 put: s. \
                [s wait. ran at: 1 put: true] forkAt: Processor activePriority {offset}. \
                Processor yield. \
                w := WeakArray new: 1. \
                w at: 1 put: (Array new: 4). \
                Smalltalk garbageCollect. \
                (w at: 1) isNil & ((ran at: 1) == true)"
            )
        };
        let v = w.eval(&printed(&program("+ 1")));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}: higher");
        let v = w.eval(&printed(&program("- 1")));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "false", "{image}: lower");
    }
}

/// A collection the run makes on its own (private bytes past the threshold, here a small
/// step) at a backward jump or an activation lets the finalization waiter preempt there as
/// the collect primitive does: a waiter of a higher priority has run by the time the loop
/// that allocated sees its weak slot cleared; one of a lower priority has not.
#[test]
fn the_finalization_waiter_preempts_after_an_automatic_collection() {
    for image in V3_IMAGES {
        let mut w = World::new(image);
        w.vm.set_collection_step(64 << 10);
        let program = |offset: &str| {
            format!(
                "| s w ran n | \
                ran := Array new: 1. \
                s := Semaphore new. \
                Smalltalk specialObjectsArray at: 42 put: s. \
                [s wait. ran at: 1 put: true] forkAt: Processor activePriority {offset}. \
                Processor yield. \
                w := WeakArray new: 1. \
                w at: 1 put: (Array new: 4). \
                n := 0. \
                [(w at: 1) isNil or: [n > 100000]] whileFalse: [n := n + 1. Array new: 64]. \
                (w at: 1) isNil & ((ran at: 1) == true)"
            )
        };
        let before = w.vm.stats().collections;
        let v = w.eval(&printed(&program("+ 1")));
        assert!(
            w.vm.stats().collections > before,
            "{image}: no automatic collection"
        );
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "true", "{image}: higher");
        let v = w.eval(&printed(&program("- 1")));
        assert_eq!(w.vm.text_of(&w.t, v).unwrap(), "false", "{image}: lower");
    }
}
