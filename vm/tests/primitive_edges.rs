//! Primitives given edge or hostile arguments, compared with what a Squeak VM answers, on
//! tenants of mini.image: a replace within one object copies element by element from the
//! first, as Squeak's does; `exponent` of zero is -1 and `fractionPart` of an infinity is
//! no NaN (C's frexp and modf); `perform:withArguments:` and `valueWithArguments:` take
//! only an Array, `perform:withArguments:inSuperclass:` only a class at or above the
//! receiver's, and more arguments than the stack holds fail the primitive; primitive 212
//! of a non-context answers its indexable size; `at:put:` into the active context reaches
//! its temporaries; a Words `at:put:` takes no LargePositiveInteger of more than 4 bytes;
//! the timer takes only a Semaphore; `instVarAt:` reaches only named fields; a become keeps
//! each identity hash where Squeak keeps it; a replace into the active context, or a store
//! by a reference taken before its temporaries changed, reaches them; the square root of a
//! negative Float or NaN fails; `withArgs:executeMethod:` takes only an Array.

mod common;

use common::def;

/// `src` on a fresh tenant of mini.image: [`common::on_mini`].
fn run_mini(src: &str) -> Result<String, cowheap_vm::VmError> {
    common::on_mini("", src)
}

#[test]
fn replace_within_one_object_copies_forward_as_squeak_does() {
    // Squeak's primitiveStringReplace (and SqueakJS's doStringReplace) copy element by
    // element from the first index up: with the source range starting before the
    // destination range in the same object, the first element is smeared.
    let s = run_mini("| a | a := 'abcde' copy. a replaceFrom: 2 to: 5 with: a startingAt: 1. a")
        .unwrap();
    assert_eq!(s, "'aaaaa'");
    let s =
        run_mini("| a | a := #(1 2 3 4 5) copy. a replaceFrom: 2 to: 5 with: a startingAt: 1. a")
            .unwrap();
    assert_eq!(s, "(1 1 1 1 1 )");
}

#[test]
fn the_exponent_of_zero_is_minus_one() {
    // primitiveExponent answers frexp's exponent minus one; frexp(0.0) gives 0, so Squeak
    // (and SqueakJS, whose frexp_exponent answers 0 for zero) answers -1.
    let src = def("Float", "pExp", "pExp <primitive: 53> ^#failed") + "{0.0 pExp. 1.0 pExp}";
    assert_eq!(run_mini(&src).unwrap(), "(-1 0 )");
}

#[test]
fn the_fraction_part_of_an_infinity_is_not_nan() {
    // Squeak's primitiveFractionalPart is C's modf, which answers 0.0 for an infinity;
    // SqueakJS fails the primitive. Neither answers NaN.
    let src = def("Float", "pFrac", "pFrac <primitive: 52> ^#failed") + "Float infinity pFrac";
    let s = run_mini(&src).unwrap();
    assert!(
        s == "0.0" || s == "#failed" || s == "failed",
        "answered {s}"
    );
}

#[test]
fn perform_with_arguments_takes_only_an_array() {
    // primitivePerformWithArgs fails unless the argument array is an Array (SqueakJS:
    // `args.sqClass !== ClassArray` -> fail; the Squeak VM asserts the class too).
    let src = def("Object", "pw:a:", "pw: s a: a <primitive: 84> ^#failed")
        + "3 pw: #between:and: a: 1@5";
    assert_eq!(run_mini(&src).unwrap(), "failed");
}

#[test]
fn a_block_value_with_arguments_takes_only_an_array() {
    // primitiveBlockValueWithArgs fails unless the argument is an Array.
    let src =
        def("BlockContext", "pv:", "pv: a <primitive: 82> ^#failed") + "[:a :b | a + b] pv: 3@4";
    assert_eq!(run_mini(&src).unwrap(), "failed");
}

#[test]
fn perform_in_superclass_fails_for_a_class_not_above_the_receiver() {
    // primitivePerformInSuperclass fails unless the lookup class is in the receiver's
    // superclass chain (SqueakJS walks the chain and fails at nil): the method's own code
    // runs. Here Point>>x runs on an Association and answers its key.
    let pw = def(
        "Object",
        "pw:a:in:",
        "pw: s a: a in: c <primitive: 100> ^#failed",
    );
    assert_eq!(
        run_mini(&(pw + "(1->2) pw: #x a: #() in: Point")).unwrap(),
        "failed"
    );
}

#[test]
fn perform_in_superclass_with_a_bad_class_fails_rather_than_stopping_the_run() {
    // A lookup "class" that is no class, or one whose method reads fields the receiver
    // does not have, stops the run with a memory error instead of failing the primitive.
    let pw = def(
        "Object",
        "pw:a:in:",
        "pw: s a: a in: c <primitive: 100> ^#failed",
    );
    let r = run_mini(&(pw.clone() + "'abc' pw: #x a: #() in: 3"));
    assert!(matches!(r.as_deref(), Ok("failed")), "{r:?}");
    let r = run_mini(&(pw + "'abc' pw: #x a: #() in: Point"));
    assert!(matches!(r.as_deref(), Ok("failed")), "{r:?}");
}

#[test]
fn perform_with_more_arguments_than_the_stack_holds_fails() {
    // The Squeak VM's primitivePerformWithArgs fails when the arguments do not fit the
    // sender's context (`stackPointerIndex + arraySize < cntxSize`). Here, for a selector
    // the receiver does not understand (no arity check), the arguments are pushed until
    // the stack is full and the run stops with "corrupt base heap: a push past the end of
    // the context".
    let src = def("Object", "pw:a:", "pw: s a: a <primitive: 84> ^#failed")
        + "3 pw: #foo a: (Array new: 20)";
    let r = run_mini(&src);
    assert!(matches!(r.as_deref(), Ok("failed")), "{r:?}");
}

#[test]
fn context_size_of_a_non_context_is_its_indexable_size_or_fails() {
    // Squeak's primitiveContextSize answers the stack pointer of a context and the
    // indexable size of anything else; it never reads slot 3 of an arbitrary object.
    let ps = def("Object", "pSize", "pSize <primitive: 212> ^#failed");
    let s = run_mini(&(ps.clone() + "(Array new: 5) pSize")).unwrap();
    assert!(s == "5" || s == "failed", "answered {s}");
    let s = run_mini(&(ps + "'abc' pSize"));
    assert!(
        matches!(s.as_deref(), Ok("3") | Ok("failed")),
        "answered {s:?}"
    );
}

#[test]
fn at_put_into_the_active_context_reaches_its_temps() {
    // Squeak's stObject:at:put: stores into the context itself, where the interpreter
    // reads its temps: `a` is 9 afterwards. (instVarAt:put: and tempAt:put: agree.)
    let r = run_mini("| a | a := 5. thisContext basicAt: 1 put: 9. a");
    assert_eq!(r.unwrap(), "9");
}

#[test]
fn words_at_put_fails_for_a_large_integer_of_more_than_four_bytes() {
    // positive32BitValueOf: fails for a LargePositiveInteger of more than 4 bytes, even
    // an unnormalised one whose value fits in 32 bits.
    let pp = def(
        "Bitmap",
        "pAt:put:",
        "pAt: i put: v <primitive: 61> ^#failed",
    );
    for n in [5, 8] {
        let src = pp.clone()
            + &format!(
                "(Bitmap new: 2) pAt: 1 put: ((LargePositiveInteger new: {n}) at: 1 put: 7; yourself)"
            );
        assert_eq!(run_mini(&src).unwrap(), "failed", "{n} bytes");
    }
}

#[test]
fn signal_at_milliseconds_with_a_non_semaphore_clears_the_timer_semaphore() {
    // primitiveSignalAtMilliseconds: a first argument that is no Semaphore stores nil as
    // TheTimerSemaphore (special object 30) and turns the timer off.
    let r = run_mini(
        "Delay primSignal: (Array new: 3) atMilliseconds: 0. \
                 Smalltalk specialObjectsArray at: 30",
    );
    assert_eq!(r.unwrap(), "nil");
}

#[test]
fn inst_var_at_reaches_only_fixed_fields() {
    // primitiveInstVarAt fails unless 1 <= index <= fixedFieldsOf: (0 for a
    // CompiledMethod and for an Array): Object>>instVarAt:'s own code then runs.
    let src = def("Object", "pIv:", "pIv: i <primitive: 73> ^#failed")
        + "{(Object compiledMethodAt: #printString) pIv: 1. (Array with: 7) pIv: 1}";
    assert_eq!(
        run_mini(&src).unwrap(),
        "(#failed #failed )".replace('#', "")
    );
}

#[test]
fn a_two_way_become_leaves_identity_hashes_with_the_references() {
    // Squeak's become:with:twoWay: exchanges the hash bits of the two objects
    // (restoreHeadersAfterBecoming:with:, "so becoming objects in identity sets and
    // dictionaries doesn't change their hash value"): after
    // `elementsExchangeIdentityWith:` (primitive 128) `a identityHash` is what it was,
    // and an IdentitySet holding the objects still finds them.
    let src = "| a b ha hb | a := Object new. b := Object new. ha := a identityHash. \
               hb := b identityHash. \
               (Array with: a) elementsExchangeIdentityWith: (Array with: b). \
               Array with: a identityHash = ha with: b identityHash = hb";
    assert_eq!(run_mini(src).unwrap(), "(true true )");
    let src = "| olds news s | olds := (1 to: 40) collect: [:i | Object new]. \
               news := (1 to: 40) collect: [:i | Object new]. \
               s := IdentitySet new. olds do: [:o | s add: o]. \
               olds elementsExchangeIdentityWith: news. \
               (olds select: [:o | (s includes: o) not]) size";
    assert_eq!(run_mini(src).unwrap(), "0");
}

#[test]
fn a_one_way_become_gives_the_target_the_hash_of_the_source() {
    // Squeak's one-way become (primitive 72, primitiveArrayBecomeOneWay) copies each
    // source's hash into its target (restoreHeadersAfterForwardBecome: "Change the hash
    // of the new oop (oop2) to be that of the old (oop1) so mutated objects in hash
    // structures will be happy after the change"; SqueakJS's bulkBecome with copyHash).
    let pfw = def("Array", "pfw:", "pfw: o <primitive: 72> ^#failed");
    let src = "| a b ha | ".to_string()
        + &pfw
        + "a := Object new. b := Object new. ha := a identityHash. \
           (Array with: a) pfw: (Array with: b). Array with: a == b with: b identityHash = ha";
    assert_eq!(run_mini(&src).unwrap(), "(true true )");
    let src = "| olds news s | ".to_string()
        + &pfw
        + "olds := (1 to: 40) collect: [:i | Object new]. \
           news := (1 to: 40) collect: [:i | Object new]. \
           s := IdentitySet new. olds do: [:o | s add: o]. \
           olds pfw: news copy. \
           (news select: [:o | (s includes: o) not]) size";
    assert_eq!(run_mini(&src).unwrap(), "0");
}

#[test]
fn a_replace_into_the_active_context_reaches_its_temps() {
    // primitiveStringReplace (105) stores into the receiver's fields past its fixed ones,
    // a context's included (no context check in Squeak's V3 interpreter, which reads the
    // active context's temps from the context itself): `a` is 9 afterwards, as it is after
    // `thisContext basicAt: 1 put: 9` (primitive_edges.rs).
    let src = "| a | ".to_string()
        + &def(
            "Object",
            "pRep:to:with:from:",
            "pRep: s to: e with: r from: f <primitive: 105> ^#failed",
        )
        + "a := 5. thisContext pRep: 1 to: 1 with: #(9) from: 1. a";
    assert_eq!(run_mini(&src).unwrap(), "9");
}

#[test]
fn the_square_root_of_a_negative_float_fails() {
    // Squeak's primitiveSquareRoot: `self success: rcvr >= 0.0` (so NaN fails too); the
    // image's Float>>sqrt fallback then reports the error. Here it answers NaN.
    let src = def("Float", "pSqrt", "pSqrt <primitive: 55> ^#failed")
        + "Array with: -4.0 pSqrt with: Float nan pSqrt with: 4.0 pSqrt";
    assert_eq!(
        run_mini(&src).unwrap().replace('#', ""),
        "(failed failed 2.0 )"
    );
}

#[test]
fn execute_method_takes_only_an_array_of_arguments() {
    // primitiveExecuteMethodArgsArray: `(self isArray: argumentArray) ifFalse: [... ^self
    // primitiveFail]` (the Cog VM checks the Array format too). Here a Point's two fields
    // are taken as the arguments of between:and:.
    let src = def(
        "Object",
        "pwa:em:",
        "pwa: a em: m <primitive: 188> ^#failed",
    ) + "3 pwa: 1@5 em: (Magnitude compiledMethodAt: #between:and:)";
    assert_eq!(run_mini(&src).unwrap().replace('#', ""), "failed");
}

#[test]
fn a_store_into_the_active_context_by_an_earlier_reference_reaches_its_temps() {
    // The context is taken before the temporary is assigned, so the assignment is only in
    // the interpreter's registers when the store into the context comes.
    let src = "| c a | c := thisContext. a := 5. c basicAt: 2 put: 9. a";
    assert_eq!(run_mini(src).unwrap(), "9");
    let src = "| c a | ".to_string()
        + &def(
            "Object",
            "pRep:to:with:from:",
            "pRep: s to: e with: r from: f <primitive: 105> ^#failed",
        )
        + "c := thisContext. a := 5. c pRep: 2 to: 2 with: #(9) from: 1. a";
    assert_eq!(run_mini(&src).unwrap(), "9");
}
