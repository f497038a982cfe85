//! A fault handler's own changes to the tenant's handler: one that clears or replaces
//! itself while it runs is not put back over what it set, and one that panics is kept.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_tenants::Tenant;
use cowheap_tenants::stubs::FaultHandler;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A tenant holding one private object stubbed as segment 3, and the object's class.
fn stubbed() -> (Tenant, Value, Value) {
    let base = Base::new(synth::image(500, 3));
    let mut t = Tenant::fork(&base);
    let g = base.heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let a = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    t.set_root("a", a).unwrap();
    t.stub(a, 3).unwrap();
    (t, a, class)
}

/// Fills `stub` with a fresh object of `class` holding 1.
fn refill(t: &mut Tenant, stub: Value, class: Value) -> cowheap_tenants::Result<()> {
    let body = t.alloc_with(class, Format::Pointers, &[Value::int(1)], &[])?;
    t.fill_stub(stub, body)
}

#[test]
fn a_handler_that_clears_itself_stays_cleared() {
    let (mut t, a, class) = stubbed();
    t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
        refill(t, a, class)?;
        t.set_fault_handler(None);
        Ok(())
    })));
    t.fault_in(3).unwrap();
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(1));
    assert!(!t.has_fault_handler(), "the handler cleared itself");
}

#[test]
fn a_handler_that_replaces_itself_leaves_its_replacement() {
    let (mut t, a, class) = stubbed();
    let second = Arc::new(AtomicUsize::new(0));
    let s = second.clone();
    t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
        refill(t, a, class)?;
        let s = s.clone();
        t.set_fault_handler(Some(FaultHandler::new(move |_, _| {
            s.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })));
        Ok(())
    })));
    t.fault_in(3).unwrap();
    t.stub(a, 4).unwrap();
    // The replacement runs (and fills nothing, so the fault answers `Swapped`).
    assert!(t.fault_in(4).is_err());
    assert_eq!(second.load(Ordering::Relaxed), 1);
}

#[test]
fn a_handler_that_panics_is_kept() {
    let (mut t, a, class) = stubbed();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
        if r.fetch_add(1, Ordering::Relaxed) == 0 {
            panic!("the first fault fails");
        }
        refill(t, a, class)
    })));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.fault_in(3)));
    assert!(caught.is_err());
    assert!(
        t.has_fault_handler(),
        "the handler is still set after its panic"
    );
    t.fault_in(3).unwrap();
    assert_eq!(t.slot(a, 0).unwrap().as_int(), Some(1));
    assert_eq!(runs.load(Ordering::Relaxed), 2);
}

/// A refused fill names the argument that is not what it must be: the stub that is none, the
/// object that is none, the one named twice.
#[test]
fn a_refused_fill_names_the_argument_at_fault() {
    use cowheap_tenants::Error;
    let (mut t, stub, class) = stubbed();
    let body = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let named = |r: cowheap_tenants::Result<()>| match r {
        Err(Error::NotSwappable(w)) => w,
        other => panic!("{other:?}"),
    };
    // A base object in the stub's place.
    assert_eq!(named(t.fill_stub(class, body)), class.word());
    // A base object in the body's place.
    assert_eq!(named(t.fill_stub(stub, class)), class.word());
    // A live object in the stub's place.
    assert_eq!(named(t.fill_stub(body, body)), body.word());
    // The stub named twice.
    let other = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    assert_eq!(
        named(t.fill_stubs(&[(stub, body), (stub, other)])),
        stub.word()
    );
    // The object named twice.
    let a2 = t
        .alloc_with(class, Format::Pointers, &[Value::int(3)], &[])
        .unwrap();
    t.set_root("a2", a2).unwrap();
    t.stub(a2, 3).unwrap();
    assert_eq!(
        named(t.fill_stubs(&[(stub, body), (a2, body)])),
        body.word()
    );
    // Nothing changed: the right fill still works.
    t.fill_stubs(&[(stub, body), (a2, other)]).unwrap();
}
