//! Reads by `&self` through stubs, answered from a segment reader's views: what they
//! answer, what keeps the stubs alive, what a view refuses, and where views are not used.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::stubs::{FaultHandler, SegmentReader, ViewMember};
use cowheap_tenants::{Error, Tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A member's body as a swap-out saves it.
#[derive(Clone, Debug)]
struct Saved {
    stub: Value,
    class: Value,
    format: Format,
    hash: u32,
    slots: Vec<Value>,
    bytes: Vec<u8>,
}

fn save(t: &Tenant, v: Value) -> Saved {
    let size = t.size(v).unwrap();
    Saved {
        stub: v,
        class: t.class_of(v).unwrap(),
        format: t.format(v).unwrap(),
        hash: t.identity_hash(v).unwrap(),
        slots: (0..size.slots).map(|i| t.slot(v, i).unwrap()).collect(),
        bytes: t.bytes(v).unwrap().to_vec(),
    }
}

fn member(s: &Saved) -> ViewMember<'_> {
    ViewMember {
        stub: s.stub,
        class: s.class,
        format: s.format,
        hash: s.hash,
        slots: &s.slots,
        bytes: &s.bytes,
    }
}

/// A tenant whose named root `holder` holds `a` and `c`; `a` holds `b` (bytes), an
/// integer, `c` and a base object; `b` is reached only through `a`. Answers the tenant and
/// `[a, b, c]`.
fn bed(base: &Arc<Base>) -> (Tenant, [Value; 3]) {
    let mut t = Tenant::fork(base);
    let g = base.heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let b = t.alloc_with(class, Format::Bytes, &[], b"leaf").unwrap();
    let c = t.alloc_with(class, Format::Bytes, &[], b"outside").unwrap();
    let a = t
        .alloc_with(class, Format::Pointers, &[b, Value::int(7), c, g], &[])
        .unwrap();
    let holder = t.alloc_with(class, Format::Pointers, &[a, c], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    (t, [a, b, c])
}

/// Stubs `a` and `b` as segment 5 (the bodies saved first) and installs a reader that
/// makes views of the saved bodies, counting its calls, and a handler that brings them
/// back.
fn swap(t: &mut Tenant, a: Value, b: Value) -> (Vec<Saved>, Arc<AtomicUsize>) {
    let saved = vec![save(t, a), save(t, b)];
    t.stub(a, 5).unwrap();
    t.stub(b, 5).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, n) = (saved.clone(), calls.clone());
    t.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
        n.fetch_add(1, Ordering::Relaxed);
        // The stubs still standing (a fill may have given some their bodies).
        let standing = |m: &&Saved| t.stub_segment(m.stub).ok().flatten() == Some(segment);
        t.segment_view(segment, s.iter().filter(standing).map(member))
    })));
    let s = saved.clone();
    t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
        // Each member is made again with its hash, its references to the other members
        // naming their stubs, then fills its stub.
        for m in &s {
            let body = t
                .alloc_with_hash(m.class, m.format, &m.slots, &m.bytes, m.hash)
                .unwrap();
            t.fill_stub(m.stub, body)?;
        }
        Ok(())
    })));
    (saved, calls)
}

#[test]
fn reads_through_stubs_answer_from_the_view_and_a_write_brings_the_segment_back() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, c]) = bed(&base);
    let g = base.heap().root("Smalltalk").unwrap();
    let (saved, calls) = swap(&mut t, a, b);
    let bytes_out = t.memory_bytes();
    // Every read by `&self` answers what it did; the segment stays out.
    let r = &t;
    assert!(r.identical(r.slot(a, 0).unwrap(), b).unwrap());
    assert_eq!(r.slot(a, 1).unwrap().as_int(), Some(7));
    assert!(r.identical(r.slot(a, 2).unwrap(), c).unwrap());
    assert!(r.identical(r.slot(a, 3).unwrap(), g).unwrap());
    assert_eq!(r.bytes(b).unwrap(), b"leaf");
    assert_eq!(r.identity_hash(a).unwrap(), saved[0].hash);
    assert_eq!(r.identity_hash(b).unwrap(), saved[1].hash);
    assert!(r.identical(r.class_of(a).unwrap(), saved[0].class).unwrap());
    assert_eq!(r.format(b).unwrap(), Format::Bytes);
    let h = r.header(a).unwrap();
    assert_eq!(
        (h.format, h.size),
        (Format::Pointers, ObjectSize { slots: 4, bytes: 0 })
    );
    assert!(matches!(r.slot(a, 4), Err(Error::Heap(_))));
    assert_eq!(
        (r.stub_segment(a).unwrap(), r.stub_segment(b).unwrap()),
        (Some(5), Some(5))
    );
    // One view, made at the first read and kept.
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert!(t.memory_bytes() > bytes_out, "the view's bytes are counted");

    // `b` is reached only through `a`'s body, which is in the segment: a collection keeps
    // every stub of a segment whose stub is reached, and drops the views (made again).
    let stats = t.collect();
    assert_eq!(stats.freed, 0);
    assert_eq!(t.stubs_of(5), 2);
    assert_eq!(t.bytes(t.slot(a, 0).unwrap()).unwrap(), b"leaf");
    assert_eq!(calls.load(Ordering::Relaxed), 2);

    // A write through a stub brings the segment back; reads then answer from the bodies.
    t.set_slot(a, 1, Value::int(8)).unwrap();
    assert_eq!(t.stubs_of(5), 0);
    assert_eq!(t.slot(a, 1).unwrap().as_int(), Some(8));
    assert!(t.identical(t.slot(a, 0).unwrap(), b).unwrap());
    assert_eq!(t.bytes(b).unwrap(), b"leaf");
    assert_eq!(t.identity_hash(b).unwrap(), saved[1].hash);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[test]
fn stubs_no_one_reaches_are_collected_together() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, _]) = bed(&base);
    let (_, calls) = swap(&mut t, a, b);
    let holder = t.root("holder").unwrap();
    t.set_slot(holder, 0, Value::int(0)).unwrap();
    let stats = t.collect();
    assert_eq!(stats.freed, 2, "both stubs, the segment no longer reached");
    assert_eq!(t.stubs_of(5), 0);
    assert!(matches!(t.slot(a, 0), Err(Error::Collected(_))));
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[test]
fn views_are_not_used_where_reads_must_fault() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, _]) = bed(&base);
    let (_, calls) = swap(&mut t, a, b);
    // Turned off: reads answer `Swapped`.
    assert!(t.set_stub_views(false));
    assert!(matches!(
        t.slot(a, 1),
        Err(Error::Swapped { segment: 5, .. })
    ));
    assert!(!t.set_stub_views(true));
    assert_eq!(t.slot(a, 1).unwrap().as_int(), Some(7));
    // `with_faults` brings back what its reads touch, and turns views back on after.
    assert_eq!(t.with_faults(|t| t.size(b)).unwrap().bytes, 4);
    assert_eq!(t.stubs_of(5), 0);
    assert!(t.set_stub_views(true));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // A tenant without a reader answers `Swapped`, as before readers.
    let (mut u, [a, _, _]) = bed(&base);
    u.stub(a, 6).unwrap();
    assert!(matches!(
        u.slot(a, 0),
        Err(Error::Swapped { segment: 6, .. })
    ));
}

#[test]
fn a_reader_that_fails_or_reads_its_own_stubs_answers_an_error_not_a_loop() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, _]) = bed(&base);
    swap(&mut t, a, b);
    // The reader's error is the read's.
    t.set_segment_reader(Some(SegmentReader::new(|_, segment| {
        Err(Error::Fault {
            segment,
            reason: "the file is gone".into(),
        })
    })));
    assert!(matches!(t.slot(a, 0), Err(Error::Fault { segment: 5, .. })));
    // A reader reading through a stub of the segment it makes meets `Swapped`.
    t.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, _| {
        t.slot(b, 0)?;
        unreachable!("a read through a stub inside the reader answers Swapped")
    })));
    assert!(matches!(t.bytes(a), Err(Error::Swapped { segment: 5, .. })));
    // A view of another segment is not used.
    t.set_segment_reader(Some(SegmentReader::new(|t: &Tenant, _| {
        t.segment_view(9, [])
    })));
    assert!(matches!(t.bytes(a), Err(Error::Swapped { segment: 5, .. })));
}

#[test]
fn a_view_checks_every_member() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, c]) = bed(&base);
    let (saved, _) = swap(&mut t, a, b);
    let ok = t.segment_view(5, saved.iter().map(member)).unwrap();
    assert_eq!((ok.segment(), ok.len()), (5, 2));
    let refused = |m: Saved| t.segment_view(5, [member(&m)]).map(|_| ());
    // Not a stub, a stub of another segment, given twice.
    let mut m = saved[0].clone();
    m.stub = c;
    assert!(matches!(refused(m), Err(Error::NotSwappable(_))));
    assert!(matches!(
        t.segment_view(4, [member(&saved[0])]),
        Err(Error::NotSwappable(_))
    ));
    assert!(matches!(
        t.segment_view(5, [member(&saved[0]), member(&saved[0])]),
        Err(Error::NotSwappable(_))
    ));
    // A slot another tenant's, an immediate class, a layout the format cannot hold.
    let (other, [x, _, _]) = bed(&base);
    let mut m = saved[0].clone();
    m.slots[1] = x;
    assert!(matches!(refused(m), Err(Error::ForeignReference { .. })));
    let mut m = saved[0].clone();
    m.class = Value::int(3);
    assert!(matches!(refused(m), Err(Error::Heap(_))));
    let mut m = saved[1].clone();
    m.slots = vec![Value::int(1)];
    assert!(matches!(refused(m), Err(Error::Heap(_))));
    drop(other);
}

#[test]
fn a_base_object_a_view_names_reads_as_the_tenants_copy_once_it_writes_it() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, _]) = bed(&base);
    let g = base.heap().root("Smalltalk").unwrap();
    swap(&mut t, a, b);
    let size = t.size(g).unwrap().slots;
    assert!(size > 0);
    let before = t.slot(g, 0).unwrap();
    // The tenant's first write copies the base object; the view's reference to it leads
    // to the copy (lazy become, as from any private slot).
    t.set_slot(g, 0, Value::int(41)).unwrap();
    let via_view = t.slot(a, 3).unwrap();
    assert!(t.identical(via_view, g).unwrap());
    assert_eq!(t.slot(via_view, 0).unwrap().as_int(), Some(41));
    assert!(!before.same_word(Value::int(41)));
    assert_eq!(t.stubs_of(5), 2, "the segment is still out");
}

#[test]
fn views_turned_off_before_any_state_stay_off_and_a_panic_in_with_faults_turns_them_on() {
    let base = Base::new(synth::image(500, 3));
    let mut fresh = Tenant::fork(&base);
    // Off on a tenant with nothing yet: still off once a reader is set.
    assert!(fresh.set_stub_views(false));
    let class = fresh
        .class_of(base.heap().root("Smalltalk").unwrap())
        .unwrap();
    let a = fresh.alloc_with(class, Format::Bytes, &[], b"a").unwrap();
    fresh.set_root("a", a).unwrap();
    let saved = save(&fresh, a);
    fresh.stub(a, 3).unwrap();
    fresh.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
        t.segment_view(segment, [member(&saved)])
    })));
    assert!(matches!(
        fresh.bytes(a),
        Err(Error::Swapped { segment: 3, .. })
    ));
    assert!(!fresh.set_stub_views(true));
    assert_eq!(fresh.bytes(a).unwrap(), b"a");

    // A panic inside `with_faults` leaves views on as they were.
    let (mut t, [a, b, _]) = bed(&base);
    swap(&mut t, a, b);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = t.with_faults(|_| -> cowheap_tenants::Result<()> { panic!("in with_faults") });
    }));
    assert!(caught.is_err());
    assert_eq!(t.slot(a, 1).unwrap().as_int(), Some(7));
    assert_eq!(t.stubs_of(5), 2);
}

#[test]
fn filling_a_stub_drops_its_segments_view() {
    let base = Base::new(synth::image(500, 3));
    let (mut t, [a, b, _]) = bed(&base);
    let (saved, calls) = swap(&mut t, a, b);
    assert_eq!(t.bytes(b).unwrap(), b"leaf");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // `a` alone gets a body, one whose slot 1 differs from the file's: the view, which
    // would answer the file's `a`, goes; `b` reads through a view made again.
    let m = &saved[0];
    let mut slots = m.slots.clone();
    slots[1] = Value::int(70);
    let body = t
        .alloc_with_hash(m.class, m.format, &slots, &m.bytes, m.hash)
        .unwrap();
    t.fill_stub(a, body).unwrap();
    assert_eq!(t.slot(a, 1).unwrap().as_int(), Some(70));
    assert_eq!(t.bytes(b).unwrap(), b"leaf");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(t.stubs_of(5), 1);
}

/// The memory a view holds is counted in the tenant's `memory_bytes` as its bodies and its
/// map of members, each place of which holds a stub's index, two keys and a control byte:
/// a view of 20,000 empty members adds, beyond what the same bodies take in a tenant's
/// own space, at least 21 bytes a member. Before, the map was counted at 12 bytes a place,
/// and a view of 20,000 members was some 250 KB more than `memory_bytes` said (what a
/// node's memory budget reads).
#[test]
fn a_views_map_of_members_is_counted_whole() {
    let n = 20_000usize;
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let members: Vec<Value> = (0..n)
        .map(|_| t.alloc_with(class, Format::Pointers, &[], &[]).unwrap())
        .collect();
    let holder = t
        .alloc_with(class, Format::Pointers, &members, &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    let hashes: Vec<u32> = members
        .iter()
        .map(|&m| t.identity_hash(m).unwrap())
        .collect();
    for &m in &members {
        t.stub(m, 9).unwrap();
    }
    let stubs = members.clone();
    t.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
        t.segment_view(
            segment,
            stubs.iter().zip(&hashes).map(|(&stub, &hash)| ViewMember {
                stub,
                class,
                format: Format::Pointers,
                hash,
                slots: &[],
                bytes: &[],
            }),
        )
    })));
    let before = t.memory_bytes();
    assert_eq!(t.size(members[0]).unwrap().slots, 0); // makes the view
    let view = t.memory_bytes() - before;
    // The same bodies in a tenant's own space.
    let mut fresh = Tenant::fork(&base);
    let empty = fresh.memory_bytes();
    for _ in 0..n {
        fresh.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
    }
    let bodies = fresh.memory_bytes() - empty;
    assert!(
        view >= bodies + n * 21,
        "a view of {n} members counted {view} bytes, its bodies {bodies}"
    );
}
