//! The at-cache (how recently indexed objects are indexed) never answers for an object
//! whose shape changed since: after a become or a class change in a run, and after a become,
//! collection or class change the embedder makes between runs, `at:`, `at:put:` and `size`
//! answer for the object as it is now.
mod common;

use common::world::{BUDGET, World};
use cowheap_heap::Value;

const IMAGES: [&str; 2] = ["mini.image", "Scratch-1.4.0.6.image"];

/// The printString of the last expression of `src` (statements with temporaries, which
/// older compilers take at a method's top level only).
fn answer(w: &mut World, src: &str) -> String {
    let (stmts, last) = src.rsplit_once(". ").unwrap();
    let v = w.eval(&format!("{stmts}. ({last}) printString"));
    w.vm.text_of(&w.t, v).unwrap()
}

#[test]
fn a_become_in_a_run_is_seen_by_at_and_size() {
    for image in IMAGES {
        let mut w = World::new(image);
        // Each object is indexed (and cached) before the become, then indexed again.
        let cases = [
            (
                "| a b | a := Array new: 3. b := Array new: 5. a size. a become: b. a size",
                "5",
            ),
            (
                "| a b | a := Array new: 3. b := Array new: 5. a size. a become: b. b size",
                "3",
            ),
            (
                "| a b | a := 'abc' copy. b := 'hello' copy. a at: 3. a become: b. a at: 5",
                "$o",
            ),
            (
                "| a b | a := Array new: 2. b := Array new: 9. a at: 2 put: 1. a become: b. a at: 9 put: 4. a at: 9",
                "4",
            ),
            (
                "| a b | a := Array new: 9. b := Array new: 2. a at: 9 put: 1. a become: b. b at: 9",
                "1",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(answer(&mut w, src), want, "{image}: {src}");
        }
    }
}

/// `obj size`, sent from Rust: no compile runs between two of these, so an entry the
/// at-cache made for `obj` is still there at the next.
fn size(w: &mut World, obj: Value) -> i64 {
    w.vm.send_named(&mut w.t, &w.s, obj, "size", &[], BUDGET)
        .unwrap()
        .as_int()
        .unwrap()
}

#[test]
fn what_the_embedder_changes_between_runs_is_seen_by_at_and_size() {
    for image in IMAGES {
        let mut w = World::new(image);
        w.eval("Smalltalk at: #CacheA put: (Array new: 3). Smalltalk at: #CacheB put: (Array new: 7). 0");
        let (a, b) = (w.global("CacheA"), w.global("CacheB"));
        assert_eq!((size(&mut w, a), size(&mut w, b)), (3, 7), "{image}");
        w.t.become_two_way(a, b).unwrap();
        assert_eq!((size(&mut w, a), size(&mut w, b)), (7, 3), "{image}");
        // A collection between runs, with new objects made after it, changes nothing seen.
        w.t.collect();
        let c = w.eval("Array new: 11");
        assert_eq!((size(&mut w, c), size(&mut w, a)), (11, 7), "{image}");
    }
}

/// On the flat heap a collection frees indices that new objects then reuse: an entry for
/// a freed object's word must not answer for the new object that has its word.
#[test]
fn a_collection_in_a_run_on_the_flat_heap_is_seen_by_size() {
    use cowheap_vm::{FlatHeap, Symbols, Vm};
    for image in IMAGES {
        let heap = common::import(image);
        let s = Symbols::from_base(&heap);
        let mut flat = FlatHeap::from_base(&heap);
        let mut vm = Vm::new(&flat).unwrap();
        let src = "| a b n | \
            a := (1 to: 60) collect: [:i | Array new: 3]. \
            n := a inject: 0 into: [:sum :x | sum + x size]. \
            a := nil. Smalltalk garbageCollect. \
            b := (1 to: 60) collect: [:i | Array new: 9]. \
            (b inject: n into: [:sum :x | sum + x size]) printString";
        let v = vm.evaluate(&mut flat, &s, src, BUDGET).unwrap();
        assert_eq!(vm.text_of(&flat, v).unwrap(), "720", "{image}");
        assert!(vm.stats().collections >= 1, "{image}: no collection ran");
    }
}
