//! Ephemerons in a tenant's collection (`Tenant::try_collect_ephemerons`): an ephemeron's
//! slots are held only once its key is reached some other way; one whose key nothing but
//! ephemerons reaches fires (its key and value kept for this collection, its format made
//! plain pointers, handed back as a mourner) and fires once; collections without a
//! `Weakness` hold ephemerons strongly; a weak object that had a slot cleared mourns after
//! the fired ephemerons. Checked against a reachability model on random
//! graphs too.

use cowheap_forwarders::Base;
use cowheap_heap::{Builder, Format, ObjectSize, Value};
use cowheap_tenants::{CollectStats, Tenant, Weakness};
use std::sync::Arc;

/// A base of nil and a class: answers the base and the class.
fn base() -> (Arc<Base>, Value) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
    (Base::new(b.freeze().unwrap()), Value::shared(class))
}

fn new(t: &mut Tenant, class: Value, format: Format, slots: usize) -> Value {
    t.alloc(class, format, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

/// An ephemeron of `key` and `value`.
fn ephemeron(t: &mut Tenant, class: Value, key: Value, value: Value) -> Value {
    let e = new(t, class, Format::Ephemeron, 2);
    t.set_slot(e, 0, key).unwrap();
    t.set_slot(e, 1, value).unwrap();
    e
}

fn collect(t: &mut Tenant) -> (CollectStats, Vec<Value>) {
    collect_holding(t, None)
}

/// [`collect`] with every slot of a weak object held weakly.
fn collect_weak(t: &mut Tenant) -> (CollectStats, Vec<Value>) {
    collect_holding(t, Some(0))
}

/// A collection taking mourners, a weak object's first `strong` slots held strongly (all
/// of them for `None`).
fn collect_holding(t: &mut Tenant, strong: Option<usize>) -> (CollectStats, Vec<Value>) {
    let nil = t.base().heap().nil();
    let strong_slots = |_: &Tenant, _: Value| strong;
    let mut mourners = Vec::new();
    let out = t
        .try_collect_ephemerons(
            &Weakness {
                nil,
                strong_slots: &strong_slots,
            },
            &mut mourners,
        )
        .unwrap();
    (out, mourners)
}

#[test]
fn an_ephemeron_whose_key_only_it_reaches_fires_once_keeping_key_and_value() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let key = new(&mut t, class, Format::Pointers, 1);
    let value = new(&mut t, class, Format::Pointers, 1);
    // The value refers to the key: the key is still reached through ephemerons alone.
    t.set_slot(value, 0, key).unwrap();
    let e = ephemeron(&mut t, class, key, value);
    t.set_root("registry", e).unwrap();
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, out.live), (1, 0, 3));
    assert_eq!(mourners.len(), 1);
    assert!(t.identical(mourners[0], e).unwrap());
    assert_eq!(t.format(e).unwrap(), Format::Pointers);
    assert!(t.identical(t.slot(e, 0).unwrap(), key).unwrap());
    assert!(t.identical(t.slot(e, 1).unwrap(), value).unwrap());
    // Fired once: it is plain pointers now, and holds its key and value strongly.
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, mourners.len()), (0, 0, 0));
    // Dropped, it and what it held go.
    t.remove_root("registry");
    let (out, _) = collect(&mut t);
    assert_eq!((out.fired, out.freed), (0, 3));
}

/// A weak object that had a slot cleared is handed back as a mourner after the fired
/// ephemerons, once a collection, as Spur queues both; one with nothing cleared is not,
/// and a collection that takes no mourners hands back none.
#[test]
fn a_weak_object_with_a_slot_cleared_mourns_after_the_fired_ephemerons() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let key = new(&mut t, class, Format::Pointers, 1);
    let e = ephemeron(&mut t, class, key, Value::int(1));
    t.set_root("registry", e).unwrap();
    let kept = new(&mut t, class, Format::Pointers, 1);
    t.set_root("kept", kept).unwrap();
    let untouched = new(&mut t, class, Format::Weak, 1);
    t.set_slot(untouched, 0, kept).unwrap();
    t.set_root("untouched", untouched).unwrap();
    let w = new(&mut t, class, Format::Weak, 3);
    t.set_root("weak", w).unwrap();
    for i in 0..2 {
        let fresh = new(&mut t, class, Format::Pointers, 0);
        t.set_slot(w, i, fresh).unwrap();
    }
    t.set_slot(w, 2, kept).unwrap();
    let (out, mourners) = collect_weak(&mut t);
    assert_eq!((out.fired, out.cleared, out.weak_mourners), (1, 2, 1));
    assert_eq!(mourners.len(), 2);
    assert!(t.identical(mourners[0], e).unwrap());
    assert!(t.identical(mourners[1], w).unwrap());
    // Nothing more to clear: no mourner.
    let (out, mourners) = collect_weak(&mut t);
    assert_eq!((out.weak_mourners, mourners.len()), (0, 0));
    // Cleared again by a collection that takes no mourners: none counted.
    let fresh = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 0, fresh).unwrap();
    let nil = t.base().heap().nil();
    let no_named = |_: &Tenant, _: Value| Some(0);
    let out = t
        .try_collect_weak(&Weakness {
            nil,
            strong_slots: &no_named,
        })
        .unwrap();
    assert_eq!((out.cleared, out.weak_mourners), (1, 0));
}

#[test]
fn an_ephemeron_whose_key_is_reached_holds_its_value_and_does_not_fire() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let key = new(&mut t, class, Format::Pointers, 1);
    let value = new(&mut t, class, Format::Pointers, 1);
    let e = ephemeron(&mut t, class, key, value);
    t.set_root("registry", e).unwrap();
    t.set_root("key", key).unwrap();
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, mourners.len()), (0, 0, 0));
    assert_eq!(t.format(e).unwrap(), Format::Ephemeron);
    assert!(t.identical(t.slot(e, 1).unwrap(), value).unwrap());
}

/// A key reached only through another ephemeron's value, whose own key is reached: both
/// hold, whichever the mark meets first; a key reached only by the later mark of a root
/// holds as well.
#[test]
fn keys_reached_through_other_ephemerons_values_hold() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let k1 = new(&mut t, class, Format::Pointers, 1);
    let k2 = new(&mut t, class, Format::Pointers, 1);
    let v2 = new(&mut t, class, Format::Pointers, 1);
    let e2 = ephemeron(&mut t, class, k2, v2);
    let e1 = ephemeron(&mut t, class, k1, k2);
    let list = new(&mut t, class, Format::Pointers, 2);
    t.set_slot(list, 0, e2).unwrap();
    t.set_slot(list, 1, e1).unwrap();
    t.set_root("list", list).unwrap();
    t.set_root("k1", k1).unwrap();
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, mourners.len()), (0, 0, 0));
    assert!(t.identical(t.slot(e2, 1).unwrap(), v2).unwrap());
    // Without k1's root, both keys are reached through ephemerons alone: both fire.
    t.remove_root("k1");
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, mourners.len()), (2, 0, 2));
}

#[test]
fn an_unreached_ephemeron_is_freed_with_its_key_and_never_fires() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let key = new(&mut t, class, Format::Pointers, 1);
    let value = new(&mut t, class, Format::Pointers, 1);
    ephemeron(&mut t, class, key, value);
    let (out, mourners) = collect(&mut t);
    assert_eq!((out.fired, out.freed, mourners.len()), (0, 3, 0));
}

#[test]
fn a_key_that_is_a_base_object_or_an_immediate_never_fires() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let value = new(&mut t, class, Format::Pointers, 1);
    let on_base = ephemeron(&mut t, class, class, value);
    let on_int = ephemeron(&mut t, class, Value::int(3), value);
    t.set_root("a", on_base).unwrap();
    t.set_root("b", on_int).unwrap();
    let (out, _) = collect(&mut t);
    assert_eq!((out.fired, out.freed), (0, 0));
    assert_eq!(t.format(on_base).unwrap(), Format::Ephemeron);
}

/// `Tenant::try_collect` and `Tenant::try_collect_weak` hold ephemerons strongly: neither
/// hands mourners to its caller, so neither may fire one.
#[test]
fn collections_that_take_no_mourners_hold_ephemerons_strongly() {
    let (base, class) = base();
    let mut t = Tenant::fork(&base);
    let key = new(&mut t, class, Format::Pointers, 1);
    let value = new(&mut t, class, Format::Pointers, 1);
    let e = ephemeron(&mut t, class, key, value);
    t.set_root("registry", e).unwrap();
    let out = t.try_collect().unwrap();
    assert_eq!((out.fired, out.freed), (0, 0));
    assert_eq!(t.format(e).unwrap(), Format::Ephemeron);
    // Nor does `try_collect_weak`, whose caller takes no mourners.
    let nil = t.base().heap().nil();
    let none = |_: &Tenant, _: Value| None;
    let out = t
        .try_collect_weak(&Weakness {
            nil,
            strong_slots: &none,
        })
        .unwrap();
    assert_eq!((out.fired, out.freed), (0, 0));
    assert_eq!(t.format(e).unwrap(), Format::Ephemeron);
    // The collection that takes mourners fires it.
    assert_eq!(collect(&mut t).0.fired, 1);
}

/// Random graphs of plain objects and ephemerons against a model: an object survives iff
/// the ephemeron fixpoint from the roots reaches it (a reached ephemeron's slots reached
/// once its key is, and, when nothing more is reached, every waiting ephemeron fired with
/// its slots); the fired are exactly the ephemerons waiting at the fixpoints.
#[test]
fn collections_agree_with_an_ephemeron_model() {
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..300 {
        let (base, class) = base();
        let mut t = Tenant::fork(&base);
        let n = 2 + next(14) as usize;
        let eph: Vec<bool> = (0..n).map(|_| next(2) == 0).collect();
        let objs: Vec<Value> = (0..n)
            .map(|i| {
                let f = if eph[i] {
                    Format::Ephemeron
                } else {
                    Format::Pointers
                };
                new(&mut t, class, f, 2)
            })
            .collect();
        // Slots: another object or nil (an int).
        let mut edges = vec![[None; 2]; n];
        for (obj, slots) in objs.iter().zip(edges.iter_mut()) {
            for (j, slot) in slots.iter_mut().enumerate() {
                if next(3) != 0 {
                    let to = next(n as u64) as usize;
                    *slot = Some(to);
                    t.set_slot(*obj, j, objs[to]).unwrap();
                } else {
                    t.set_slot(*obj, j, Value::int(0)).unwrap();
                }
            }
        }
        let roots: Vec<usize> = (0..n).filter(|_| next(4) == 0).collect();
        for &r in &roots {
            t.set_root(&format!("r{r}"), objs[r]).unwrap();
        }
        // The model.
        let mut reached = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut waiting: Vec<usize> = Vec::new();
        let mut fired: Vec<usize> = Vec::new();
        let reach = |i: usize, reached: &mut Vec<bool>, stack: &mut Vec<usize>| {
            if !reached[i] {
                reached[i] = true;
                stack.push(i);
            }
        };
        for &r in &roots {
            reach(r, &mut reached, &mut stack);
        }
        loop {
            while let Some(i) = stack.pop() {
                let key_ok = edges[i][0].is_none_or(|k| reached[k]);
                if eph[i] && !key_ok {
                    waiting.push(i);
                } else {
                    for to in edges[i].into_iter().flatten() {
                        reach(to, &mut reached, &mut stack);
                    }
                }
            }
            if waiting.is_empty() {
                break;
            }
            let before = waiting.len();
            let (ready, rest): (Vec<usize>, Vec<usize>) = waiting
                .iter()
                .partition(|&&i| edges[i][0].is_none_or(|k| reached[k]));
            waiting = rest;
            for i in ready {
                for to in edges[i].into_iter().flatten() {
                    reach(to, &mut reached, &mut stack);
                }
            }
            if waiting.len() < before {
                continue;
            }
            for i in std::mem::take(&mut waiting) {
                fired.push(i);
                for to in edges[i].into_iter().flatten() {
                    reach(to, &mut reached, &mut stack);
                }
            }
        }
        let (out, mourners) = collect(&mut t);
        let live = reached.iter().filter(|&&r| r).count();
        assert_eq!(out.live as usize, live);
        assert_eq!(out.freed as usize, n - live);
        assert_eq!(out.fired as usize, fired.len());
        let mut got: Vec<usize> = mourners
            .iter()
            .map(|m| objs.iter().position(|o| o.word() == m.word()).unwrap())
            .collect();
        got.sort_unstable();
        fired.sort_unstable();
        assert_eq!(got, fired);
        for (i, (obj, kept)) in objs.iter().zip(&reached).enumerate() {
            assert_eq!(t.slot(*obj, 0).is_ok(), *kept, "object {i}");
        }
    }
}
