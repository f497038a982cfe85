//! Spur images saved with the multiple-bytecode-sets bit (512) in their version, as Squeak 6
//! and later save them: 7033 (32-bit) and 68533 (64-bit). The squeak crate imports them with
//! that version; the interpreter reads their object memory as that of 6521 and 68021.

mod common;

use cowheap_heap::Value;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm};

const IMAGE: &str = "headless-spur32.image";
const BUDGET: u64 = 50_000_000;

#[test]
fn a_spur_image_with_the_multiple_bytecode_sets_bit_runs() {
    let mut bytes = std::fs::read(common::images().join(IMAGE)).expect("the headless image");
    bytes[..4].copy_from_slice(&7033u32.to_le_bytes());
    let im = cowheap_squeak::import_bytes(&bytes).expect("a 7033 image imports");
    assert_eq!(
        im.heap.root("image.version").and_then(|v| v.as_int()),
        Some(7033)
    );
    let symbols = Symbols::from_base(&im.heap);
    let mut flat = FlatHeap::from_base(&im.heap);
    let mut vm = Vm::new(&flat).expect("the interpreter runs a 7033 image");
    assert!(vm.specials().spur);
    assert_eq!(vm.specials().word_bytes, 4);
    assert_eq!(vm.specials().max_int, (1 << 30) - 1);
    let r = vm
        .send_named(
            &mut flat,
            &symbols,
            Value::int(3),
            "+",
            &[Value::int(4)],
            BUDGET,
        )
        .unwrap();
    assert_eq!(r.as_int(), Some(7));
    // 68533 is 68021 with the bit: 8-byte words and 61-bit SmallIntegers.
    flat.set_root("image.version", Value::int(68533)).unwrap();
    let vm = Vm::new(&flat).expect("the interpreter reads a 68533 base");
    assert!(vm.specials().spur);
    assert_eq!(vm.specials().word_bytes, 8);
    assert_eq!(vm.specials().max_int, (1 << 60) - 1);
}
