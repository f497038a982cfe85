//! A primitive that fails leaves no object behind: `basicNew` (primitive 70) of an
//! indexable class fails before it makes anything, so its fallback's `basicNew: 0` is the
//! only object made. Before, each such send left an unreachable instance, charged to the
//! quota until a collection and found by `someInstance`.

mod common;

use common::def;

/// A program that answers `(answer of body, Arrays made while it ran)`, counting the
/// Arrays by walking `someInstance`/`nextInstance` before and after (mini.image's compiler
/// takes no block temporaries: every temporary is the method's). `body` stores its answer
/// in `answer`, and may use `failed`.
fn count(body: &str) -> String {
    let walk = "n := 0. o := Array someInstance. \
                [o notNil] whileTrue: [n := n + 1. o := o nextInstance]";
    format!(
        "| n o before answer failed | \
         {walk}. before := n. \
         {body}. \
         {walk}. \
         Array with: answer with: n - before"
    )
}

#[test]
fn a_failed_basic_new_of_an_indexable_class_makes_no_instance() {
    // `pNew` is primitive 70 alone: its failure answers #failed and makes nothing more.
    let setup = def("Array class", "pNew", "pNew <primitive: 70> ^#failed");
    let src = count(
        "failed := OrderedCollection new. \
         10 timesRepeat: [failed add: Array pNew]. answer := failed asSet size",
    );
    // The same program with the ten sends answering #failed without a primitive: it
    // makes the same Arrays (the collection's own), and no more.
    let baseline = count(
        "failed := OrderedCollection new. \
         10 timesRepeat: [failed add: #failed]. answer := failed asSet size",
    );
    let with_fails = common::on_mini(&setup, &src).unwrap();
    assert!(
        with_fails.starts_with("(1 "),
        "one distinct answer: {with_fails}"
    );
    assert_eq!(
        with_fails,
        common::on_mini(&setup, &baseline).unwrap(),
        "ten failed basicNew sends left no Arrays behind"
    );
}
