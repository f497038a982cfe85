//! An array become (`elementsForwardIdentityTo:`, primitive 72) whose later pair the tenant
//! refuses for what its objects are, not for room: a host object's proxy as a source (which
//! cannot become a forwarder), named directly or reached through an earlier pair that
//! forwarded its source to it, and a base object as a target in a tenant whose base is
//! read-only (the target is given its source's hash). The become is refused before its
//! first pair, so no pair is forwarded and every object reads as it did, as a Squeak VM's
//! array become fails whole.

mod common;

use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::{Symbols, Vm, VmError};

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

/// `a elementsForwardIdentityTo: b`, which must be refused for a host object's proxy.
fn refused_for_a_host_proxy(t: &mut Tenant, symbols: &Symbols, a: Value, b: Value) {
    let mut vm = Vm::new(&*t).unwrap();
    let r = vm.send_named(t, symbols, a, "elementsForwardIdentityTo:", &[b], 1_000);
    assert!(
        matches!(
            r,
            Err(VmError::Memory(cowheap_tenants::Error::HostProxy(_)))
        ),
        "{r:?}"
    );
}

#[test]
fn a_one_way_array_become_with_a_host_proxy_source_forwards_no_pair() {
    let (mut t, symbols, array, point) = common::become_bed();
    let x1 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(x1, 0, Value::int(1)).unwrap();
    let y1 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(y1, 0, Value::int(2)).unwrap();
    let proxy = t.new_host_object(point, "counter", Box::new(7u32)).unwrap();
    let y2 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    let a = t.alloc(array, Format::Pointers, size(2)).unwrap();
    let b = t.alloc(array, Format::Pointers, size(2)).unwrap();
    t.set_slot(a, 0, x1).unwrap();
    t.set_slot(a, 1, proxy).unwrap();
    t.set_slot(b, 0, y1).unwrap();
    t.set_slot(b, 1, y2).unwrap();
    let (hx1, hy1) = (t.identity_hash(x1).unwrap(), t.identity_hash(y1).unwrap());
    refused_for_a_host_proxy(&mut t, &symbols, a, b);
    // No pair forwarded: the first pair's objects are apart, each with its body and hash.
    assert!(
        !t.identical(x1, y1).unwrap(),
        "the first pair was forwarded"
    );
    assert_eq!(t.slot(x1, 0).unwrap().as_int(), Some(1));
    assert_eq!(t.slot(y1, 0).unwrap().as_int(), Some(2));
    assert_eq!(t.identity_hash(x1).unwrap(), hx1);
    assert_eq!(t.identity_hash(y1).unwrap(), hy1);
    assert_eq!(t.host_object(proxy).unwrap().0, "counter");
}

/// The same source twice: the first pair forwards it to a host object's proxy, which the
/// second pair would then forward. Refused before the first pair.
#[test]
fn a_source_forwarded_to_a_host_proxy_by_an_earlier_pair_forwards_no_pair() {
    let (mut t, symbols, array, point) = common::become_bed();
    let x = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(x, 0, Value::int(1)).unwrap();
    let proxy = t.new_host_object(point, "counter", Box::new(7u32)).unwrap();
    let y = t.alloc(point, Format::Pointers, size(2)).unwrap();
    let a = array_of(&mut t, array, &[x, x]);
    let b = array_of(&mut t, array, &[proxy, y]);
    let hx = t.identity_hash(x).unwrap();
    refused_for_a_host_proxy(&mut t, &symbols, a, b);
    assert!(
        !t.identical(x, proxy).unwrap(),
        "the first pair was forwarded"
    );
    assert_eq!(t.slot(x, 0).unwrap().as_int(), Some(1));
    assert_eq!(t.identity_hash(x).unwrap(), hx);
}

/// A base object as the second pair's target, in a tenant whose base is read-only: its
/// hash write would be refused after the first pair was forwarded. Refused before it.
#[test]
fn a_read_only_base_target_forwards_no_pair() {
    let (mut t, symbols, array, point) = common::become_bed();
    let x1 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    let y1 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    let x2 = t.alloc(point, Format::Pointers, size(2)).unwrap();
    t.set_slot(x1, 0, Value::int(1)).unwrap();
    let a = array_of(&mut t, array, &[x1, x2]);
    let b = array_of(&mut t, array, &[y1, point]);
    let mut vm = Vm::new(&t).unwrap();
    t.set_base_read_only(true);
    let r = vm.send_named(
        &mut t,
        &symbols,
        a,
        "elementsForwardIdentityTo:",
        &[b],
        1_000,
    );
    assert!(
        matches!(
            r,
            Err(VmError::Memory(cowheap_tenants::Error::BaseReadOnly(_)))
        ),
        "{r:?}"
    );
    assert!(
        !t.identical(x1, y1).unwrap(),
        "the first pair was forwarded"
    );
    assert!(
        !t.identical(x2, point).unwrap(),
        "the second pair was forwarded"
    );
    assert_eq!(t.slot(x1, 0).unwrap().as_int(), Some(1));
}

/// A chain of forwardings the check walks and shortens on its way: x1 to x2 to x3, then a
/// pair whose target is x1 (settled as x3, and x1 and x2 pointed at x3), then x3 to a host
/// object's proxy, then x2 as a source, which now leads to the proxy. Refused before the
/// first pair, as the chain's end is a proxy, and nothing forwarded.
#[test]
fn a_source_reached_through_a_shortened_chain_is_still_checked_at_its_end() {
    let (mut t, symbols, array, point) = common::become_bed();
    let xs: Vec<Value> = (0..5)
        .map(|i| {
            let o = t.alloc(point, Format::Pointers, size(2)).unwrap();
            t.set_slot(o, 0, Value::int(i)).unwrap();
            o
        })
        .collect();
    let (x1, x2, x3, y, z) = (xs[0], xs[1], xs[2], xs[3], xs[4]);
    let proxy = t.new_host_object(point, "counter", Box::new(7u32)).unwrap();
    let a = array_of(&mut t, array, &[x1, x2, y, x3, x2]);
    let b = array_of(&mut t, array, &[x2, x3, x1, proxy, z]);
    let hashes: Vec<_> = xs.iter().map(|&o| t.identity_hash(o).unwrap()).collect();
    refused_for_a_host_proxy(&mut t, &symbols, a, b);
    for (i, &o) in xs.iter().enumerate() {
        assert_eq!(t.slot(o, 0).unwrap().as_int(), Some(i as i64), "object {i}");
        assert_eq!(t.identity_hash(o).unwrap(), hashes[i], "object {i}");
    }
    assert!(!t.identical(x1, x2).unwrap());
}
