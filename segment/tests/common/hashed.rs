//! What the tests of `hash` and rehashing share: objects made in a tenant, hashed
//! collections scattered over their tables, the image's integer answers.
#![allow(dead_code, reason = "each test file uses a different part")]

use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;

/// A new object of `class` (each file that takes this module has `common` too).
pub(crate) use crate::common::alloc;

/// A new two-field object of `class` (a Point, an Association) holding `a` and `b`.
pub(crate) fn pair(t: &mut Tenant, class: Value, a: Value, b: Value) -> Value {
    let v = alloc(t, class, Format::Pointers, 2, 0);
    t.set_slot(v, 0, a).unwrap();
    t.set_slot(v, 1, b).unwrap();
    v
}

/// An equality Set and Dictionary holding `keys` (the Dictionary's values their
/// positions), the elements scattered over `n` slots in `order`, not where their hashes
/// lead; `global` names the image's classes.
pub(crate) fn scattered(
    t: &mut Tenant,
    global: impl Fn(&str) -> Value,
    keys: &[Value],
    n: usize,
    order: &[usize],
) -> (Value, Value) {
    let set = alloc(t, global("Set"), Format::Pointers, 2, 0);
    let set_array = alloc(t, global("Array"), Format::Pointers, n, 0);
    let dict = alloc(t, global("Dictionary"), Format::Pointers, 2, 0);
    let dict_array = alloc(t, global("Array"), Format::Pointers, n, 0);
    for (c, a) in [(set, set_array), (dict, dict_array)] {
        t.set_slot(c, 0, Value::int(keys.len() as i64)).unwrap();
        t.set_slot(c, 1, a).unwrap();
    }
    let association = global("Association");
    for (i, (&k, &at)) in keys.iter().zip(order).enumerate() {
        t.set_slot(set_array, at, k).unwrap();
        let assoc = pair(t, association, k, Value::int(i as i64));
        t.set_slot(dict_array, at, assoc).unwrap();
    }
    (set, dict)
}

/// A permutation of `0..n` from `seed` (xorshift).
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut slots: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        slots.swap(i, (s % (i as u64 + 1)) as usize);
    }
    slots
}

/// An integer answer of the image: a SmallInteger or a LargeInteger's digits, its classes
/// named by `global`.
pub(crate) fn int_of(t: &Tenant, global: impl Fn(&str) -> Value, v: Value) -> Option<i128> {
    if let Some(i) = v.as_int() {
        return Some(i.into());
    }
    let class = t.class_of(v).ok()?;
    let neg = class.same_word(global("LargeNegativeInteger"));
    if !neg && !class.same_word(global("LargePositiveInteger")) {
        return None;
    }
    let bytes = t.bytes(v).ok()?;
    let mut m = 0i128;
    for &b in bytes.iter().rev() {
        m = m.checked_mul(256)?.checked_add(b.into())?;
    }
    Some(if neg { -m } else { m })
}
