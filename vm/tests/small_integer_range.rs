//! The integer `cowheap run --eval N --send SEL` sends to, checked against the image's
//! SmallInteger range (31 bits in a 32-bit image, 61 in a 64-bit one, `Vm::small_integer`):
//! a value past it is no SmallInteger of the image (Squeak holds it as a LargeInteger), so
//! the run is refused with a typed error rather than run on one.

mod common;

use cowheap_tenants::Tenant;
use cowheap_vm::run::{RunError, RunOptions, run_base};
use cowheap_vm::{Symbols, Vm, VmError};

const BUDGET: u64 = 1_000_000;

fn run_mini(expr: &str, selector: &str) -> Result<String, RunError> {
    let heap = common::import("mini.image");
    let symbols = Symbols::from_base(&heap);
    let base = cowheap_forwarders::Base::new(heap);
    let options = RunOptions {
        selector: Some(selector.to_owned()),
        budget: BUDGET,
        ..RunOptions::default()
    };
    let report = run_base(&base, &symbols, expr, &options)?;
    Ok(report.result().unwrap().clone().unwrap())
}

#[test]
fn a_send_to_an_integer_past_the_images_small_integers_is_refused() {
    // mini.image's SmallIntegers are 31-bit: its largest is 2^30 - 1.
    assert_eq!(run_mini("1073741823", "class").unwrap(), "SmallInteger");
    assert_eq!(run_mini("-1073741824", "class").unwrap(), "SmallInteger");
    for n in ["1073741824", "-1073741825", "4611686018427387903"] {
        match run_mini(n, "class") {
            Err(RunError::Vm(VmError::NotASmallInteger { value, min, max })) => {
                assert_eq!(value.to_string(), n);
                assert_eq!((min, max), (-(1 << 30), (1 << 30) - 1));
            }
            other => panic!("{n} class: {other:?}"),
        }
    }
}

#[test]
fn a_64_bit_image_takes_61_bit_small_integers_and_refuses_wider_ones() {
    let heap = common::import("headless-spur32.image");
    let options = cowheap_squeak::ExportOptions {
        kind: Some(cowheap_squeak::ImageKind::Spur64),
        allow_missing_float_class: true,
        ..cowheap_squeak::ExportOptions::default()
    };
    let bytes = cowheap_squeak::export_bytes_with(&heap, &options).unwrap();
    let heap = cowheap_squeak::import_bytes(&bytes).unwrap().heap;
    let symbols = Symbols::from_base(&heap);
    let base = cowheap_forwarders::Base::new(heap);
    let vm = Vm::new(&Tenant::fork(&base)).unwrap();
    for i in [(1i64 << 60) - 1, -(1 << 60), 1 << 40] {
        assert_eq!(vm.small_integer(i).unwrap().as_int(), Some(i));
    }
    for i in [1i64 << 60, -(1 << 60) - 1] {
        let r = vm.small_integer(i);
        assert!(
            matches!(r, Err(VmError::NotASmallInteger { value, .. }) if value == i),
            "{i}: {r:?}"
        );
    }
    // The run takes the largest and refuses the next.
    let options = RunOptions {
        selector: Some("yourself".to_owned()),
        budget: BUDGET,
        ..RunOptions::default()
    };
    let max = ((1i64 << 60) - 1).to_string();
    let report = run_base(&base, &symbols, &max, &options).unwrap();
    assert!(report.result().unwrap().is_ok());
    let past = (1i64 << 60).to_string();
    assert!(matches!(
        run_base(&base, &symbols, &past, &options),
        Err(RunError::Vm(VmError::NotASmallInteger { .. }))
    ));
}
