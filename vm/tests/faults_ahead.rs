//! Stubs met where the interpreter cannot simply run a bytecode or primitive again: the
//! home context of a BlockContext (`value:`, `valueWithArguments:`), a method found through
//! the method cache and swapped out since, the suspended context of a process switched to by
//! `yield`. Each is faulted in before anything changes, and the run answers what it answers
//! with everything in.
mod common;

use cowheap_heap::Value;
use cowheap_segment::swap::{MemStore, Swapper};
use cowheap_vm::VmError;

use common::world::{BUDGET, World};

fn block_home_swapped(image: &'static str, expr: &str) -> Result<Value, VmError> {
    let mut w = World::new(image);
    w.eval("Smalltalk at: #Blk put: [:x | x + 1]. Smalltalk at: #Home put: thisContext. 0");
    let home = w.global("Home");
    // Sanity: with everything in, the expression answers 4.
    let r = w.eval(expr);
    assert_eq!(r.as_int(), Some(4), "{image}: {expr} before the swap");
    let swapper = Swapper::new(MemStore::new());
    let out = swapper.swap_out(&mut w.t, &[home]).unwrap();
    assert!(out.objects > 0, "{image}: the home swapped out");
    let r = w.try_eval(expr);
    assert!(w.t.stubs().next().is_none(), "{image}: the home came back");
    w.all_in();
    r
}

#[test]
fn block_value_with_home_swapped_out_scratch() {
    let r = block_home_swapped("Scratch-1.4.0.6.image", "(Smalltalk at: #Blk) value: 3");
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(4),
        "{r:?}"
    );
}

#[test]
fn block_value_with_arguments_home_swapped_out_scratch() {
    let r = block_home_swapped(
        "Scratch-1.4.0.6.image",
        "(Smalltalk at: #Blk) valueWithArguments: #(3)",
    );
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(4),
        "{r:?}"
    );
}

#[test]
fn block_value_with_home_swapped_out_mini() {
    let r = block_home_swapped("mini.image", "(Smalltalk at: #Blk) value: 3");
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(4),
        "{r:?}"
    );
}

#[test]
fn block_value_with_arguments_home_swapped_out_mini() {
    let r = block_home_swapped(
        "mini.image",
        "(Smalltalk at: #Blk) valueWithArguments: #(3)",
    );
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(4),
        "{r:?}"
    );
}

/// A method found through the method cache, then swapped out: the next send of it.
fn cached_method_swapped(image: &'static str) {
    let mut w = World::new(image);
    w.eval("Smalltalk at: #Seg put: (OrderedCollection new add: 1; yourself). 0");
    let src = "segFoo | a | a := 3. ^a + 4";
    if image == "mini.image" {
        w.eval(&format!(
            "OrderedCollection compile: '{src}' classified: 'x' notifying: nil"
        ));
    } else {
        w.eval(&format!("OrderedCollection compile: '{src}'"));
    }
    let oc = w.global("Seg");
    let sel = w.eval("#segFoo");
    let r = w.vm.perform(&mut w.t, oc, sel, &[], BUDGET).unwrap();
    assert_eq!(r.as_int(), Some(7));
    w.eval("Smalltalk at: #SegM put: (OrderedCollection compiledMethodAt: #segFoo). 0");
    let method = w.global("SegM");
    // perform again so that the cache holds it
    assert_eq!(
        w.vm.perform(&mut w.t, oc, sel, &[], BUDGET)
            .unwrap()
            .as_int(),
        Some(7)
    );
    let swapper = Swapper::new(MemStore::new());
    swapper.swap_out(&mut w.t, &[method]).unwrap();
    let r = w.vm.perform(&mut w.t, oc, sel, &[], BUDGET);
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(7),
        "{image}: {r:?}"
    );
}

#[test]
fn cached_method_swapped_out_mini() {
    cached_method_swapped("mini.image");
}

#[test]
fn cached_method_swapped_out_scratch() {
    cached_method_swapped("Scratch-1.4.0.6.image");
}

/// A runnable process whose suspended context is swapped out, switched to by `yield`.
fn yield_to_swapped(image: &'static str) {
    let mut w = World::new(image);
    w.eval("| p | Smalltalk at: #R put: 0. p := [Smalltalk at: #R put: 42] newProcess. p priority: Processor activePriority. Smalltalk at: #P put: p. Smalltalk at: #C put: p suspendedContext. p resume. 0");
    let c = w.global("C");
    let swapper = Swapper::new(MemStore::new());
    swapper.swap_out(&mut w.t, &[c]).unwrap();
    let r = w.try_eval("Processor yield. Smalltalk at: #R");
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(42),
        "{image}: {r:?}"
    );
}

#[test]
fn yield_to_a_process_whose_context_is_swapped_out_mini() {
    yield_to_swapped("mini.image");
}

#[test]
fn yield_to_a_process_whose_context_is_swapped_out_scratch() {
    yield_to_swapped("Scratch-1.4.0.6.image");
}

/// Control: the same without the swap.
#[test]
fn yield_control_mini() {
    let mut w = World::new("mini.image");
    w.eval("| p | Smalltalk at: #R put: 0. p := [Smalltalk at: #R put: 42] newProcess. p priority: Processor activePriority. Smalltalk at: #P put: p. Smalltalk at: #C put: p suspendedContext. p resume. 0");
    let r = w.try_eval("Processor yield. Smalltalk at: #R");
    assert_eq!(
        r.as_ref().map(|v| v.as_int()).ok().flatten(),
        Some(42),
        "{r:?}"
    );
}
