//! Weak slots in a tenant's collection (`Tenant::try_collect_weak`): a weak object's slots
//! past its strong ones keep nothing alive, and one naming a private object the collection
//! frees is set to nil; strong slots, base objects, immediates, objects reachable another
//! way and collections without a `Weakness` are left alone.

use cowheap_forwarders::Base;
use cowheap_heap::{Builder, Format, ObjectSize, Value};
use cowheap_tenants::{Error, Tenant, Weakness};
use std::sync::Arc;

/// A base of nil, a class, a weak object of three slots (one strong, two weak, all nil)
/// and a plain object: answers the base and those three.
fn base() -> (Arc<Base>, Value, Value, Value) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
    let weak = b.add(class, Format::Weak, vec![nil; 3], vec![]).unwrap();
    let plain = b
        .add(class, Format::Pointers, vec![nil; 2], vec![])
        .unwrap();
    b.add_root("weak", weak).unwrap();
    let base = Base::new(b.freeze().unwrap());
    (
        base,
        Value::shared(class),
        Value::shared(weak),
        Value::shared(plain),
    )
}

fn new(t: &mut Tenant, class: Value, format: Format, slots: usize) -> Value {
    t.alloc(class, format, ObjectSize { slots, bytes: 0 })
        .unwrap()
}

/// One strong slot in every weak object; nil is the base's nil.
fn collect(t: &mut Tenant) -> cowheap_tenants::CollectStats {
    let nil = t.base().heap().nil();
    let one = |_: &Tenant, _: Value| Some(1);
    t.try_collect_weak(&Weakness {
        nil,
        strong_slots: &one,
    })
    .unwrap()
}

fn is_nil(t: &Tenant, v: Value) -> bool {
    v.word() == t.base().heap().nil().word()
}

#[test]
fn a_weak_slot_keeps_nothing_alive_and_is_cleared() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    let w = new(&mut t, class, Format::Weak, 3);
    let kept = new(&mut t, class, Format::Pointers, 1);
    let gone = new(&mut t, class, Format::Pointers, 1);
    let also_kept = new(&mut t, class, Format::Pointers, 1);
    t.set_slot(w, 0, kept).unwrap();
    t.set_slot(w, 1, gone).unwrap();
    t.set_slot(w, 2, also_kept).unwrap();
    t.set_root("w", w).unwrap();
    t.set_root("other", also_kept).unwrap();
    let out = collect(&mut t);
    assert_eq!((out.freed, out.cleared), (1, 1));
    assert!(
        t.identical(t.slot(w, 0).unwrap(), kept).unwrap(),
        "strong slot"
    );
    assert!(is_nil(&t, t.slot(w, 1).unwrap()), "weak slot cleared");
    assert!(
        t.identical(t.slot(w, 2).unwrap(), also_kept).unwrap(),
        "reachable another way"
    );
    assert!(matches!(t.slot(gone, 0), Err(Error::Collected(_))));
    // The strong slot kept its object alive although nothing else names it.
    assert!(t.slot(kept, 0).is_ok());
}

#[test]
fn without_weakness_every_slot_is_strong() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    let w = new(&mut t, class, Format::Weak, 3);
    let held = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 2, held).unwrap();
    t.set_root("w", w).unwrap();
    let out = t.try_collect().unwrap();
    assert_eq!((out.freed, out.cleared), (0, 0));
    assert!(t.identical(t.slot(w, 2).unwrap(), held).unwrap());
    // A class whose format cannot be read holds every slot strongly too.
    let nil = t.base().heap().nil();
    let unknown = |_: &Tenant, _: Value| None;
    let out = t
        .try_collect_weak(&Weakness {
            nil,
            strong_slots: &unknown,
        })
        .unwrap();
    assert_eq!((out.freed, out.cleared), (0, 0));
    assert!(t.identical(t.slot(w, 2).unwrap(), held).unwrap());
}

#[test]
fn base_objects_and_immediates_in_weak_slots_stand() {
    let (base, class, _, plain) = base();
    let mut t = Tenant::fork(&base);
    let w = new(&mut t, class, Format::Weak, 3);
    t.set_slot(w, 1, plain).unwrap();
    t.set_slot(w, 2, Value::int(7)).unwrap();
    t.set_root("w", w).unwrap();
    let out = collect(&mut t);
    assert_eq!(out.cleared, 0);
    assert_eq!(t.slot(w, 1).unwrap().word(), plain.word());
    assert_eq!(t.slot(w, 2).unwrap().as_int(), Some(7));
}

#[test]
fn a_copy_of_a_base_weak_object_holds_its_slots_weakly() {
    let (base, class, weak, _) = base();
    let mut t = Tenant::fork(&base);
    let gone = new(&mut t, class, Format::Pointers, 0);
    let kept = new(&mut t, class, Format::Pointers, 0);
    // The first write copies the base object; the table keeps the copy alive.
    t.set_slot(weak, 1, gone).unwrap();
    t.set_slot(weak, 0, kept).unwrap();
    let out = collect(&mut t);
    assert_eq!((out.freed, out.cleared), (1, 1));
    assert!(is_nil(&t, t.slot(weak, 1).unwrap()));
    assert!(t.identical(t.slot(weak, 0).unwrap(), kept).unwrap());
    // Another tenant of the base sees the base object as it was.
    let other = Tenant::fork(&base);
    assert!(is_nil(&other, other.slot(weak, 1).unwrap()));
}

#[test]
fn only_weakly_reached_objects_are_cleared_everywhere() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    let a = new(&mut t, class, Format::Weak, 2);
    let b = new(&mut t, class, Format::Weak, 3);
    let target = new(&mut t, class, Format::Pointers, 1);
    // The target is reached from a weak slot of each, and from a strong object that is
    // itself reached only weakly.
    let holder = new(&mut t, class, Format::Pointers, 1);
    t.set_slot(holder, 0, target).unwrap();
    t.set_slot(a, 1, target).unwrap();
    t.set_slot(b, 2, holder).unwrap();
    t.set_slot(b, 1, target).unwrap();
    t.set_root("a", a).unwrap();
    t.set_root("b", b).unwrap();
    let out = collect(&mut t);
    assert_eq!((out.freed, out.cleared), (2, 3));
    for (obj, i) in [(a, 1), (b, 1), (b, 2)] {
        assert!(is_nil(&t, t.slot(obj, i).unwrap()));
    }
    // A weak object's own strong slot keeps an object that its weak slots name too.
    t.set_slot(b, 0, a).unwrap();
    t.set_slot(b, 2, a).unwrap();
    t.remove_root("a");
    let out = collect(&mut t);
    assert_eq!((out.freed, out.cleared), (0, 0));
    assert!(t.identical(t.slot(b, 2).unwrap(), a).unwrap());
}

#[test]
fn a_weak_slot_through_a_forwarder_is_settled_then_cleared() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    let w = new(&mut t, class, Format::Weak, 3);
    let old = new(&mut t, class, Format::Pointers, 0);
    let young = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 1, old).unwrap();
    t.set_slot(w, 2, old).unwrap();
    t.set_root("w", w).unwrap();
    t.set_root("young", young).unwrap();
    // Every reference to `old` now leads to `young`, which a root holds.
    t.become_forward(old, young).unwrap();
    let out = collect(&mut t);
    assert_eq!(out.cleared, 0);
    assert!(t.identical(t.slot(w, 1).unwrap(), young).unwrap());
    // With the root gone, the slots settled on `young` are cleared.
    t.remove_root("young");
    let out = collect(&mut t);
    assert_eq!((out.freed, out.cleared), (1, 2));
    assert!(is_nil(&t, t.slot(w, 2).unwrap()));
}

#[test]
fn a_private_nil_is_kept_and_a_foreign_one_refused() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    let w = new(&mut t, class, Format::Weak, 2);
    let gone = new(&mut t, class, Format::Pointers, 0);
    let nil = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 1, gone).unwrap();
    t.set_root("w", w).unwrap();
    let one = |_: &Tenant, _: Value| Some(1);
    let out = t
        .try_collect_weak(&Weakness {
            nil,
            strong_slots: &one,
        })
        .unwrap();
    assert_eq!((out.freed, out.cleared), (1, 1));
    assert!(t.identical(t.slot(w, 1).unwrap(), nil).unwrap());

    let mut other = Tenant::fork(&base);
    let foreign = new(&mut other, class, Format::Pointers, 0);
    let before = t.stats();
    let gone = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 1, gone).unwrap();
    let err = t
        .try_collect_weak(&Weakness {
            nil: foreign,
            strong_slots: &one,
        })
        .unwrap_err();
    assert!(matches!(err, Error::ForeignReference { .. }), "{err:?}");
    // Nothing was freed or cleared.
    assert!(t.identical(t.slot(w, 1).unwrap(), gone).unwrap());
    assert_eq!(t.stats().private_objects, before.private_objects + 1);
}

#[test]
fn the_class_given_is_the_weak_objects_own() {
    let (base, class, _, _) = base();
    let mut t = Tenant::fork(&base);
    // A private class: the callback sees it as this tenant's value.
    let private_class = new(&mut t, class, Format::Pointers, 3);
    let w = new(&mut t, private_class, Format::Weak, 2);
    let gone = new(&mut t, class, Format::Pointers, 0);
    t.set_slot(w, 0, gone).unwrap();
    t.set_root("w", w).unwrap();
    // Strong slots only for the private class: none is weak, so nothing is cleared.
    let strong_for_private = |t: &Tenant, c: Value| {
        if t.identical(c, private_class).unwrap() {
            Some(2)
        } else {
            Some(0)
        }
    };
    let nil = t.base().heap().nil();
    let out = t
        .try_collect_weak(&Weakness {
            nil,
            strong_slots: &strong_for_private,
        })
        .unwrap();
    assert_eq!((out.freed, out.cleared), (0, 0));
}
