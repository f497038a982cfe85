//! Primitives checked against a Squeak VM where they read a value other than the one
//! Squeak's reads, or accept an object Squeak's refuse, on mini.image (each primitive
//! installed in a method of the test's own where the image has none): `size` (62), `class`
//! (111) and the selective flushes (116, 119) sent with an argument act on the argument
//! (the top of the stack), as the mirror primitives `objectClass:` and `objectSize:` and
//! the headless image's `installMethod:` rely on; `signal` and `wait` (85, 86) take only a
//! Semaphore, so the same primitive in a method of another class fails (its fallback code
//! runs) and never links the active process into that object; a one-way become (72) of
//! the special objects array reaches the interpreter's own reference to it, and a walk of
//! the objects after one leaves its source out, on the flat heap as on a tenant.

mod common;

use common::def;

/// `class` with an argument answers the argument's class, as Squeak's `primitiveClass`
/// does (it reads the top of the stack): the mirror primitive `objectClass:`.
#[test]
fn class_with_an_argument_answers_the_arguments_class() {
    let defs = def(
        "Object",
        "objectClass:",
        "objectClass: anObject <primitive: 111> ^#failed",
    );
    assert_eq!(
        common::on_mini(&defs, "3 objectClass: 'abc'").unwrap(),
        "String"
    );
    assert_eq!(
        common::on_mini(&defs, "#(1 2) objectClass: 4").unwrap(),
        "SmallInteger"
    );
}

/// `size` with an argument answers the argument's indexable size, as Squeak's
/// `primitiveSize` does (the top of the stack): the mirror primitive `objectSize:`.
#[test]
fn size_with_an_argument_answers_the_arguments_size() {
    let defs = def(
        "Object",
        "objectSize:",
        "objectSize: anObject <primitive: 62> ^#failed",
    );
    assert_eq!(
        common::on_mini(&defs, "#(1) objectSize: #(1 2 3)").unwrap(),
        "3"
    );
    assert_eq!(
        common::on_mini(&defs, "'abcd' objectSize: 'ab'").unwrap(),
        "2"
    );
}

/// `signal` of an object that is no Semaphore fails, as Squeak's `primitiveSignal` does
/// (`assertClassOf: sema is: ClassSemaphore`): an Array of three fields shaped like one
/// is left as it was.
#[test]
fn signal_of_an_object_that_is_no_semaphore_fails() {
    let defs = def("Array", "primSignal", "primSignal <primitive: 85> ^#failed");
    assert_eq!(
        common::on_mini(&defs, "(Array with: nil with: nil with: 0) primSignal").unwrap(),
        "failed"
    );
    assert_eq!(
        common::on_mini(
            &defs,
            "| a | a := Array with: nil with: nil with: 0. a primSignal. a"
        )
        .unwrap(),
        "(nil nil 0 )"
    );
}

/// `wait` on an object that is no Semaphore fails, as Squeak's `primitiveWait` does: the
/// active process is not linked into an Array (where, with nothing else runnable, the run
/// stopped as a deadlock), and an Array's count is not taken as excess signals.
#[test]
fn wait_on_an_object_that_is_no_semaphore_fails() {
    let defs = def("Array", "primWait", "primWait <primitive: 86> ^#failed");
    assert_eq!(
        common::on_mini(&defs, "(Array with: nil with: nil with: 0) primWait").unwrap(),
        "failed"
    );
    assert_eq!(
        common::on_mini(
            &defs,
            "| a | a := Array with: nil with: nil with: 1. a primWait. a"
        )
        .unwrap(),
        "(nil nil 1 )"
    );
}

/// `src` evaluated on mini.image after `defs`, on the flat heap and on a tenant: the
/// printString of each answer, or the error that stopped its run.
fn on_both_memories(defs: &str, src: &str) -> [Result<String, cowheap_vm::VmError>; 2] {
    const BUDGET: u64 = 20_000_000;
    let heap = common::import("mini.image");
    let symbols = cowheap_vm::Symbols::from_base(&heap);
    let mut flat = cowheap_vm::FlatHeap::from_base(&heap);
    let mut vm = cowheap_vm::Vm::new(&flat).unwrap();
    let on_flat = vm
        .evaluate(&mut flat, &symbols, defs, BUDGET)
        .and_then(|_| vm.evaluate(&mut flat, &symbols, src, BUDGET))
        .and_then(|v| vm.print_string(&mut flat, &symbols, v, BUDGET));
    let base = cowheap_forwarders::Base::new(heap);
    let mut t = cowheap_tenants::Tenant::fork(&base);
    let mut vm = cowheap_vm::Vm::new(&t).unwrap();
    let on_tenant = vm
        .evaluate(&mut t, &symbols, defs, BUDGET)
        .and_then(|_| vm.evaluate(&mut t, &symbols, src, BUDGET))
        .and_then(|v| vm.print_string(&mut t, &symbols, v, BUDGET));
    [on_flat, on_tenant]
}

/// A one-way become of the special objects array (as `recreateSpecialObjectsArray` makes
/// one) reaches the interpreter's own reference to it, as a Squeak VM's
/// `specialObjectsOop` is a root the become updates: `Smalltalk specialObjectsArray`
/// (primitive 129) answers the new array and the interpreter reads the new one, on the
/// flat heap as on a tenant.
#[test]
fn a_one_way_become_of_the_special_objects_array_reaches_the_interpreter() {
    let defs = def(
        "Array",
        "forwardTo:",
        "forwardTo: other <primitive: 72> ^#failed",
    );
    let same = "| c | c := Smalltalk specialObjectsArray copy. \
                (Array with: Smalltalk specialObjectsArray) forwardTo: (Array with: c). \
                Smalltalk specialObjectsArray == c";
    for (memory, r) in ["flat heap", "tenant"]
        .into_iter()
        .zip(on_both_memories(&defs, same))
    {
        assert_eq!(r.unwrap(), "true", "{memory}");
    }
    // The interpreter reads its specials from the new array: the timer's semaphore slot
    // it clears is the new array's.
    let timer = "| c | c := Smalltalk specialObjectsArray copy. c at: 30 put: 7. \
                 (Array with: Smalltalk specialObjectsArray) forwardTo: (Array with: c). \
                 Delay primSignal: nil atMilliseconds: 0. c at: 30";
    for (memory, r) in ["flat heap", "tenant"]
        .into_iter()
        .zip(on_both_memories(&defs, timer))
    {
        assert_eq!(r.unwrap(), "nil", "{memory}");
    }
}

/// The selective flushes with an argument flush what the argument names, as a Squeak VM's
/// `primitiveFlushCacheBySelector` (119) and `primitiveFlushCacheByMethod` (116) read the
/// top of the stack: the headless Spur image's `Behavior>>installMethod:` stores a method
/// into a dictionary, then sends `primitiveFlushMethodCacheForSelector:` (119 with the
/// selector as its argument). A send of the selector afterwards finds the method stored,
/// not the one the method cache held (here SmallInteger's `even` replaced by `^true`).
#[test]
fn a_selective_flush_with_an_argument_flushes_what_the_argument_names() {
    let defs = def(
        "Behavior",
        "flushSelector:",
        "flushSelector: aSymbol <primitive: 119> ^#failed",
    ) + &def(
        "Behavior",
        "flushMethod:",
        "flushMethod: aMethod <primitive: 116> ^#failed",
    );
    for flush in [
        "SmallInteger flushSelector: #even",
        "SmallInteger flushMethod: old",
    ] {
        let src = format!(
            "| r old | r := OrderedCollection new. r add: 3 even. \
             old := SmallInteger compiledMethodAt: #even. \
             (SmallInteger instVarAt: 2) at: #even put: (UndefinedObject compiledMethodAt: #isNil). \
             {flush}. r add: 3 even. \
             (SmallInteger instVarAt: 2) at: #even put: old. {flush}. r"
        );
        assert_eq!(
            common::on_mini(&defs, &src).unwrap(),
            "OrderedCollection (false true )",
            "{flush}"
        );
    }
}

/// An object a one-way become forwarded is none of the image's any more: a walk of the
/// instances of its class (`someInstance`, `nextInstance`) finds only the target, on the
/// flat heap as on a tenant (which leaves a forwarded object out of its walk), as a Spur
/// VM's walk skips forwarders.
#[test]
fn a_walk_after_a_one_way_become_leaves_the_source_out() {
    let defs = def(
        "Array",
        "forwardTo:",
        "forwardTo: other <primitive: 72> ^#failed",
    );
    let count = "| a b n o | a := Object new. b := Object new. \
                 (Array with: a) forwardTo: (Array with: b). \
                 n := 0. o := Object someInstance. \
                 [o == nil] whileFalse: [n := n + 1. o := o nextInstance]. n";
    for (memory, r) in ["flat heap", "tenant"]
        .into_iter()
        .zip(on_both_memories(&defs, count))
    {
        assert_eq!(r.unwrap(), "1", "{memory}");
    }
}
