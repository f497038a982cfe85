//! Ephemerons in the interpreter's collections, on the Spur image (Spur's format 5): an
//! instance of an ephemeron class is made as an ephemeron; a collection fires one whose key
//! nothing but ephemerons reaches, keeps its key and value, makes it plain pointers, queues
//! it under `MOURNERS_ROOT` and signals the finalization semaphore; primitive 172
//! (`primitiveFetchMourner`) answers the queue in order and then fails. On a tenant and on
//! the flat heap; through `Vm::collect` between runs, and through the image's own
//! collection primitive; the queue outlives the interpreter that filled it.

mod common;

use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::{FlatHeap, MOURNERS_ROOT, ObjectMemory, Symbols, Vm, VmError};

const IMAGE: &str = "headless-spur32.image";
const BUDGET: u64 = 50_000_000;

/// `rcvr sel args`, which must answer.
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

/// The next mourner, by `tryPrimitive: 172 withArgs: #()`, or `None` when the primitive
/// fails (the image's fallback code then reports it).
fn fetch<M: ObjectMemory>(vm: &mut Vm, m: &mut M, s: &Symbols, empty: Value) -> Option<Value> {
    match vm.send_named(
        m,
        s,
        Value::int(0),
        "tryPrimitive:withArgs:",
        &[Value::int(172), empty],
        BUDGET,
    ) {
        Ok(v) => Some(v),
        Err(VmError::ImageError { .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

fn ephemerons_on<M: ObjectMemory>(m: &mut M) {
    let s = Symbols::from_base(common::base(IMAGE).heap());
    let mut vm = Vm::new(&*m).unwrap();
    let specials = m.root("specialObjects").unwrap();
    let array = m.slot(specials, 7).unwrap();
    // An ephemeron class: the image's Array class with Spur's format 5 and two named
    // variables, the key and the value.
    let h = m.header(array).unwrap();
    let class = m.alloc(h.class, h.format, h.size).unwrap();
    for i in 0..h.size.slots {
        let v = m.slot(array, i).unwrap();
        m.set_slot(class, i, v).unwrap();
    }
    m.set_slot(class, 2, Value::int((5 << 16) | 2)).unwrap();
    m.set_root("class", class).unwrap();
    let e = send(&mut vm, m, &s, class, "basicNew", &[]);
    assert_eq!(m.format(e).unwrap(), Format::Ephemeron);
    assert_eq!(m.size(e).unwrap().slots, 2);
    let key = send(&mut vm, m, &s, array, "new:", &[Value::int(1)]);
    let value = send(&mut vm, m, &s, array, "new:", &[Value::int(2)]);
    let empty = send(&mut vm, m, &s, array, "new:", &[Value::int(0)]);
    m.set_root("empty", empty).unwrap();
    m.set_slot(e, 0, key).unwrap();
    m.set_slot(e, 1, value).unwrap();
    m.set_root("registry", e).unwrap();
    // A finalization semaphore of the test's own, to count the signal.
    let semaphore = m.slot(specials, 18).unwrap();
    let sema = send(&mut vm, m, &s, semaphore, "new", &[]);
    m.set_slot(specials, 41, sema).unwrap();

    // The key held another way: nothing fires, nothing is queued or signalled.
    m.set_root("key", key).unwrap();
    let done = vm.collect(m).unwrap();
    assert!(done.mourners.is_empty());
    assert_eq!(m.format(e).unwrap(), Format::Ephemeron);
    assert!(fetch(&mut vm, m, &s, empty).is_none());
    assert_eq!(m.slot(sema, 2).unwrap().as_int(), Some(0));

    // The key reached through the ephemeron alone: it fires, keeping its key and value.
    m.remove_root("key");
    let done = vm.collect(m).unwrap();
    assert_eq!(done.mourners.len(), 1);
    assert!(m.identical(done.mourners[0], e).unwrap());
    assert_eq!(m.format(e).unwrap(), Format::Pointers);
    assert!(m.identical(m.slot(e, 0).unwrap(), key).unwrap());
    assert!(m.identical(m.slot(e, 1).unwrap(), value).unwrap());
    assert_eq!(vm.stats().ephemerons_fired, 1);
    assert_eq!(m.slot(sema, 2).unwrap().as_int(), Some(1), "signalled");
    // Queued under roots: a new interpreter fetches it, once.
    assert!(m.root(&format!("{MOURNERS_ROOT}.tail")).is_some());
    let mut vm = Vm::new(&*m).unwrap();
    let got = fetch(&mut vm, m, &s, empty).expect("the fired ephemeron");
    assert!(m.identical(got, e).unwrap());
    assert!(fetch(&mut vm, m, &s, empty).is_none());
    assert!(m.root(&format!("{MOURNERS_ROOT}.tail")).is_none());

    // Two more, fired together by the image's own collection (primitive 130, run by the
    // image), both fetched; the queue holds them through a collection.
    let made: Vec<Value> = (0..2)
        .map(|i| {
            let e = send(&mut vm, m, &s, class, "basicNew", &[]);
            let key = send(&mut vm, m, &s, array, "new:", &[Value::int(3)]);
            m.set_slot(e, 0, key).unwrap();
            m.set_root(&format!("e{i}"), e).unwrap();
            e
        })
        .collect();
    send(
        &mut vm,
        m,
        &s,
        Value::int(0),
        "tryPrimitive:withArgs:",
        &[Value::int(130), empty],
    );
    assert_eq!(vm.stats().ephemerons_fired, 2);
    for (i, &e) in made.iter().enumerate() {
        m.remove_root(&format!("e{i}"));
        assert_eq!(m.format(e).unwrap(), Format::Pointers);
    }
    vm.collect(m).unwrap();
    let got: Vec<Value> = std::iter::from_fn(|| fetch(&mut vm, m, &s, empty)).collect();
    assert_eq!(got.len(), 2);
    let order = |v: Value| made.iter().position(|&e| m.identical(e, v).unwrap());
    let mut positions: Vec<Option<usize>> = got.iter().map(|&v| order(v)).collect();
    positions.sort_unstable();
    assert_eq!(positions, [Some(0), Some(1)]);
}

#[test]
fn ephemerons_fire_and_are_fetched_on_a_tenant() {
    let base = common::base(IMAGE);
    let mut t = Tenant::fork(&base);
    ephemerons_on(&mut t);
}

#[test]
fn ephemerons_fire_and_are_fetched_on_the_flat_heap() {
    let base = common::base(IMAGE);
    let mut flat = FlatHeap::from_base(base.heap());
    ephemerons_on(&mut flat);
}

/// Mourner queue roots edited by hand (bounds reversed, past any queue, or a mourner's root
/// missing) are a typed error, from the collection that would queue more and from the
/// fetch, never a panic or an endless walk; the queue's roots are left as they were.
#[test]
fn a_mourner_queue_edited_by_hand_is_an_error() {
    let base = common::base(IMAGE);
    let s = Symbols::from_base(base.heap());
    let mut flat = FlatHeap::from_base(base.heap());
    let m = &mut flat;
    let mut vm = Vm::new(&*m).unwrap();
    let specials = m.root("specialObjects").unwrap();
    let array = m.slot(specials, 7).unwrap();
    let empty = send(&mut vm, m, &s, array, "new:", &[Value::int(0)]);
    m.set_root("empty", empty).unwrap();
    let (head, tail) = (
        format!("{MOURNERS_ROOT}.head"),
        format!("{MOURNERS_ROOT}.tail"),
    );
    for (h, t) in [(5, 2), (-1, 3), (0, cowheap_heap::Word::MAX_INT), (0, 1)] {
        m.set_root(&head, Value::int(h)).unwrap();
        m.set_root(&tail, Value::int(t)).unwrap();
        let got = vm.send_named(
            m,
            &s,
            Value::int(0),
            "tryPrimitive:withArgs:",
            &[Value::int(172), empty],
            BUDGET,
        );
        assert!(
            matches!(got, Err(VmError::CorruptMethod { .. })),
            "{h}..{t}: {:?}",
            got.map(|v| v.as_int())
        );
        assert_eq!(m.root(&tail).and_then(|v| v.as_int()), Some(t));
    }
}
