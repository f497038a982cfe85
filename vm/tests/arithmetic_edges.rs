//! The arithmetic, comparison and conversion primitives at their edges, against what a
//! Squeak VM answers: `fractionPart` keeps the sign of a zero fraction as C's `modf` does
//! (`-3.0 fractionPart` is -0.0), on mini.image; and a Float compared with a SmallInteger
//! that no double holds exactly (a 64-bit image's, past 2^53) is compared by exact value,
//! as the Cog VM's float comparisons resolve that case, on headless-spur32.image exported
//! as 64-bit Spur, with immediate floats and with every Float boxed; SmallFloat64's own
//! primitives (541-559), given a boxed Float swapped out in a segment, fault it in and run
//! again as the Float ones (41-59) do.

mod common;

use common::def;

use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_segment::swap::{MemStore, Swapper};
use cowheap_squeak::{ByteOrder, ExportOptions, ImageKind};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};
use std::sync::Arc;

const BUDGET: u64 = 20_000_000;

#[test]
fn the_fraction_part_of_a_negative_whole_float_is_a_negative_zero() {
    // Squeak's primitiveFractionalPart is C's modf: the fraction part has the receiver's
    // sign, a zero one included. A Float's first word (`at: 1`) is its most significant,
    // so a negative zero's is 16r80000000 and a positive zero's 0.
    let src = def("Float", "pFrac", "pFrac <primitive: 52> ^#failed")
        + "{(-3.0 pFrac) at: 1. (-1.0e300 pFrac) at: 1. (3.0 pFrac) at: 1. \
           (-1.0 * 0.0) pFrac at: 1. -3.5 pFrac}";
    assert_eq!(
        common::on_mini("", &src).unwrap(),
        "(2147483648 2147483648 0 2147483648 -0.5 )"
    );
}

const IMAGE: &str = "headless-spur32.image";

/// The headless image as 64-bit Spur (little-endian): with a SmallFloat64 class (immediate
/// floats) and without one (every Float boxed).
fn bases() -> Vec<Arc<Base>> {
    let heap = common::import(IMAGE);
    let immediate = common::with_small_float_class(&heap);
    [(heap, true), (immediate, false)]
        .into_iter()
        .map(|(h, boxed)| {
            let options = ExportOptions {
                kind: Some(ImageKind::Spur64),
                order: Some(ByteOrder::Little),
                allow_missing_float_class: boxed,
                ..ExportOptions::default()
            };
            let bytes = cowheap_squeak::export_bytes_with(&h, &options).unwrap();
            let back = cowheap_squeak::import_bytes(&bytes).unwrap();
            assert_eq!(back.format.version(), 68021);
            Base::new(back.heap)
        })
        .collect()
}

/// `rcvr sel args`, which must answer: [`common::answer`] within [`BUDGET`].
fn send<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    rcvr: Value,
    sel: &str,
    args: &[Value],
) -> Value {
    common::answer(vm, m, s, rcvr, sel, args, BUDGET)
}

/// Each comparison of the Float `f asFloat` with the SmallInteger `i`, as booleans.
fn compare<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    f: i64,
    i: i64,
) -> Vec<(&'static str, bool)> {
    let float = send(vm, m, s, Value::int(f), "asFloat", &[]);
    ["=", "~=", "<", "<=", ">", ">="]
        .into_iter()
        .map(|sel| {
            let r = send(vm, m, s, float, sel, &[Value::int(i)]);
            let t = vm.specials().true_.word();
            let fl = vm.specials().false_.word();
            assert!(r.word() == t || r.word() == fl, "{f} asFloat {sel} {i}");
            (sel, r.word() == t)
        })
        .collect()
}

fn check_exact_comparisons<M: ObjectMemory>(m: &mut M, s: &Symbols) {
    let mut vm = Vm::new(&*m).unwrap();
    let vm = &mut vm;
    let two53 = 1i64 << 53;
    // 2^53 asFloat against 2^53 + 1, which rounds to 2^53 as a double: Squeak compares the
    // exact values, so the Float is less.
    let less = [
        ("=", false),
        ("~=", true),
        ("<", true),
        ("<=", true),
        (">", false),
        (">=", false),
    ];
    assert_eq!(compare(vm, m, s, two53, two53 + 1), less);
    // -2^53 asFloat against -(2^53 + 1): the Float is greater.
    let greater = [
        ("=", false),
        ("~=", true),
        ("<", false),
        ("<=", false),
        (">", true),
        (">=", true),
    ];
    assert_eq!(compare(vm, m, s, -two53, -two53 - 1), greater);
    // SmallInteger maxVal (2^60 - 1) rounds to 2^60: the Float 2^60 is greater.
    let max = vm.specials().max_int;
    assert_eq!(compare(vm, m, s, max, max), greater);
    // Equal values stay equal.
    let equal = [
        ("=", true),
        ("~=", false),
        ("<", false),
        ("<=", true),
        (">", false),
        (">=", true),
    ];
    assert_eq!(compare(vm, m, s, two53, two53), equal);
}

#[test]
fn a_float_compares_with_a_small_integer_past_2_53_by_exact_value() {
    let mut immediate = Vec::new();
    for base in bases() {
        let symbols = Symbols::from_base(base.heap());
        let mut t = Tenant::fork(&base);
        immediate.push(Vm::new(&t).unwrap().specials().immediate_floats);
        check_exact_comparisons(&mut t, &symbols);
        let mut flat = FlatHeap::from_base(base.heap());
        check_exact_comparisons(&mut flat, &symbols);
    }
    assert_eq!(
        immediate,
        [false, true],
        "boxed Floats, then immediate ones"
    );
}

/// `immediate + boxed`, run by the primitive `index` (41, or SmallFloat64's 541) given to
/// Float's (and so SmallFloat64's) `+`, with `boxed` (2^200, which only a boxed Float holds)
/// swapped out in a segment of its own: the sum, and whether the segment came back.
fn sum_with_a_swapped_out_argument(base: &Arc<Base>, index: u16) -> (Result<f64, VmError>, bool) {
    let symbols = Symbols::from_base(base.heap());
    let s = &symbols;
    let mut t = Tenant::fork(base);
    let mut vm = Vm::new(&t).unwrap();
    assert!(vm.specials().immediate_floats);
    // Float>>+ starts with callPrimitive (139) and the primitive's number, low byte first.
    let float = vm.specials().float;
    let plus = common::method_of(&t, float, "+");
    assert_eq!(&t.bytes(plus).unwrap()[..3], &[139, 41, 0]);
    t.set_bytes(plus, 1, &index.to_le_bytes()).unwrap();
    let f50 = send(&mut vm, &mut t, s, Value::int(1 << 50), "asFloat", &[]);
    let f100 = send(&mut vm, &mut t, s, f50, "*", &[f50]);
    let boxed = send(&mut vm, &mut t, s, f100, "*", &[f100]);
    assert!(boxed.is_object(), "2^200 is boxed");
    let q = send(&mut vm, &mut t, s, Value::int(3), "/", &[Value::int(4)]);
    assert_eq!(q.as_f64(), Some(0.75));
    // A root of the tenant, so that the collection a swap-out runs keeps its stub.
    t.set_root("boxed", boxed).unwrap();
    let swapper = Swapper::new(MemStore::new());
    let out = swapper.swap_out(&mut t, &[boxed]).unwrap();
    assert_eq!(t.stubs_of(out.id.get()), 1, "{out:?}");
    let r = vm.send_named(&mut t, s, q, "+", &[boxed], BUDGET).map(|v| {
        let b: [u8; 8] = t.bytes(v).unwrap().try_into().unwrap();
        f64::from_le_bytes(b)
    });
    (r, t.stubs_of(out.id.get()) == 0)
}

#[test]
fn a_small_float_primitive_faults_in_a_swapped_out_argument_and_runs_again() {
    let heap = common::with_small_float_class(&common::import(IMAGE));
    let options = ExportOptions {
        kind: Some(ImageKind::Spur64),
        order: Some(ByteOrder::Little),
        ..ExportOptions::default()
    };
    let bytes = cowheap_squeak::export_bytes_with(&heap, &options).unwrap();
    let base = Base::new(cowheap_squeak::import_bytes(&bytes).unwrap().heap);
    let want = 0.75 + 2f64.powi(200);
    for index in [41, 541] {
        let (r, back) = sum_with_a_swapped_out_argument(&base, index);
        match r {
            Ok(v) => assert_eq!(v, want, "primitive {index}"),
            Err(e) => panic!("primitive {index}: {e}"),
        }
        assert!(back, "primitive {index}: the segment is back");
    }
}
