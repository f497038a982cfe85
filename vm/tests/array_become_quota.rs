//! An array become (primitives 72 and 128) in a tenant with a quota, where a pair names one
//! object on both sides (directly, or through a forwarder to it): such a pair becomes
//! nothing and writes no hash, so it copies no base object, and the become fits the quota
//! its other pairs fit. Whatever the quota, an array become is done whole or refused with
//! nothing changed, as a Squeak VM's array become fails whole.

mod common;

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::Vm;

fn size(slots: usize) -> ObjectSize {
    ObjectSize { slots, bytes: 0 }
}

/// An Array of `objects`.
fn array_of(t: &mut Tenant, array: Value, objects: &[Value]) -> Value {
    let a = t
        .alloc(array, Format::Pointers, size(objects.len()))
        .unwrap();
    for (i, &o) in objects.iter().enumerate() {
        t.set_slot(a, i, o).unwrap();
    }
    a
}

/// What the send's context is charged.
const CONTEXT: u64 = 528;

/// Two private Points, `x` holding 1 and `y` holding 2.
fn two_points(t: &mut Tenant, point: Value) -> (Value, Value) {
    let x = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(x, 0, Value::int(1)).unwrap();
    let y = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(y, 0, Value::int(2)).unwrap();
    (x, y)
}

/// Sends `selector` to `a` with `b` under a quota of what the tenant holds now and its
/// context, and checks
/// the become was done whole (the first pair becomed, the base object copied by no pair)
/// or refused with its first pair untouched.
fn become_under_quota(selector: &str, same: fn(&mut Tenant, Value) -> (Value, Value)) {
    let (mut t, symbols, array, point) = common::become_bed();
    let (x, y) = two_points(&mut t, point);
    let (left, right) = same(&mut t, point);
    let a = array_of(&mut t, array, &[x, left]);
    let b = array_of(&mut t, array, &[y, right]);
    let mut vm = Vm::new(&t).unwrap();
    // Room for the send's context and nothing more.
    t.set_quota(Some(t.stats().private_bytes + CONTEXT));
    let copies = t.stats().copies;
    let r = vm.send_named(&mut t, &symbols, a, selector, &[b], 1_000);
    match r {
        Ok(_) => {
            assert_eq!(
                t.slot(x, 0).unwrap().as_int(),
                Some(2),
                "{selector}: not becomed"
            );
            assert_eq!(
                t.stats().copies,
                copies,
                "{selector}: a pair copied its object"
            );
        }
        Err(e) => {
            // Refused: then nothing was becomed.
            assert!(
                !t.identical(x, y).unwrap(),
                "{selector}: {e}, the first pair becomed"
            );
            assert_eq!(
                t.slot(x, 0).unwrap().as_int(),
                Some(1),
                "{selector}: {e}, the first pair becomed"
            );
            assert_eq!(
                t.slot(y, 0).unwrap().as_int(),
                Some(2),
                "{selector}: {e}, the first pair becomed"
            );
        }
    }
}

/// The base object Point on both sides of the second pair.
fn point_twice(_: &mut Tenant, point: Value) -> (Value, Value) {
    (point, point)
}

/// A private object forwarded to the base object Point, and Point.
fn point_and_its_forwarder(t: &mut Tenant, point: Value) -> (Value, Value) {
    let f = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.become_forward(f, point).unwrap();
    (f, point)
}

#[test]
fn a_one_way_array_become_with_an_identical_base_pair_is_done_whole_under_a_quota() {
    become_under_quota("elementsForwardIdentityTo:", point_twice);
    become_under_quota("elementsForwardIdentityTo:", point_and_its_forwarder);
}

#[test]
fn a_two_way_array_become_with_an_identical_base_pair_is_done_whole_under_a_quota() {
    become_under_quota("elementsExchangeIdentityWith:", point_twice);
    become_under_quota("elementsExchangeIdentityWith:", point_and_its_forwarder);
}
