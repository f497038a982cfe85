//! Root stubs of swapped-out segments met by interpreted code, on `mini.image` and Scratch.
//!
//! Properties checked:
//! - A send to a root stub, a primitive given one as an argument, and a bytecode reading
//!   through one (a run suspended by its budget, its receiver swapped out, then resumed)
//!   fault the segment in and answer what they answer with the segment in, compared by
//!   value (`printString`), for every expression of a list and for every point at which a
//!   run can be suspended; the segment is back afterwards (no stub of it left), and only
//!   the segments the code reads are brought back (`==` and storing a stub fault nothing).
//! - Identity and identity hash are kept: `==` across two globals naming the object, and
//!   `identityHash` before and after are equal.
//! - With no fault handler, a handler that fails, or one that leaves the stub, the run stops
//!   with [`VmError::SegmentFault`] naming the segment, the send and the call chain; a
//!   handler that keeps swapping the object back out is stopped after one fault per
//!   segment ([`FaultCause::Again`]); the tenant stays usable after each.

mod common;

use cowheap_heap::{Format, Value};
use cowheap_segment::swap::{MemStore, SegmentStore, Swapper};
use cowheap_tenants::stubs::FaultHandler;
use cowheap_tenants::{Error, Tenant};
use cowheap_vm::{FaultCause, VmError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::world::{BUDGET, World};

/// The object graph: an OrderedCollection of three Strings named by two globals, and a
/// String named by a third.
const SETUP: &str = "Smalltalk at: #Seg put: (OrderedCollection new add: 'alpha' copy; add: 'beta' copy; add: 'gamma' copy; yourself). Smalltalk at: #Seg2 put: (Smalltalk at: #Seg). Smalltalk at: #SegString put: 'segment' copy. 0";

/// Expressions, and whether each must bring back the collection's segment and the
/// String's.
const EXPRESSIONS: &[(&str, bool, bool)] = &[
    ("(Smalltalk at: #Seg) size", true, false),
    ("(Smalltalk at: #Seg) first", true, false),
    (
        "(Smalltalk at: #Seg) inject: 0 into: [:a :e | a + e size]",
        true,
        false,
    ),
    ("(Smalltalk at: #Seg) includes: 'beta'", true, false),
    ("(Smalltalk at: #Seg) identityHash", true, false),
    ("(Smalltalk at: #Seg) class name", true, false),
    (
        "(Smalltalk at: #Seg) collect: [:e | e reversed]",
        true,
        false,
    ),
    // `perform:` and its kin (primitives 83 and 84) on a root stub.
    ("(Smalltalk at: #Seg) perform: #size", true, false),
    ("(Smalltalk at: #Seg) perform: #at: with: 2", true, false),
    (
        "(Smalltalk at: #Seg) perform: #at: withArguments: (Array with: 3)",
        true,
        false,
    ),
    (
        "(Smalltalk at: #SegString) perform: #, withArguments: (Array with: '!')",
        false,
        true,
    ),
    // Identity needs no body.
    (
        "(Smalltalk at: #Seg) == (Smalltalk at: #Seg2)",
        false,
        false,
    ),
    (
        "(Smalltalk at: #Seg) size. (Smalltalk at: #Seg) == (Smalltalk at: #Seg2)",
        true,
        false,
    ),
    // A stub as a primitive's argument (105), and as `,`'s.
    (
        "'abcdefghij' copy replaceFrom: 1 to: 3 with: (Smalltalk at: #SegString) startingAt: 1",
        false,
        true,
    ),
    ("'<' , (Smalltalk at: #SegString) , '>'", false, true),
    // Stored, not read.
    (
        "(Array with: (Smalltalk at: #SegString) with: 3) last",
        false,
        false,
    ),
    (
        "(Smalltalk at: #Seg) , (Array with: (Smalltalk at: #SegString))",
        true,
        true,
    ),
];

/// Swaps the collection and the String out, each its own segment, with `swapper`.
fn swap_both(w: &mut World, swapper: &Swapper, oc: Value, string: Value) -> (u64, u64) {
    w.all_in();
    let a = swapper.swap_out(&mut w.t, &[oc]).unwrap();
    assert!(a.objects >= 2, "{}: the collection and its array", w.what);
    let b = swapper.swap_out(&mut w.t, &[string]).unwrap();
    assert_eq!(b.objects, 1, "{}", w.what);
    // Every member is a stub: the collection's are itself and its array (at least).
    assert_eq!(
        (w.t.stubs_of(a.id.get()), w.t.stubs_of(b.id.get())),
        (a.objects, 1),
        "{}",
        w.what
    );
    (a.id.get(), b.id.get())
}

fn sends_and_primitives(image: &'static str) {
    let mut w = World::new(image);
    w.eval(SETUP);
    let (oc, string) = (w.global("Seg"), w.global("SegString"));
    let hash = w.t.identity_hash(oc).unwrap();
    let want: Vec<String> = EXPRESSIONS.iter().map(|(e, ..)| w.print(e)).collect();
    let swapper = Swapper::new(MemStore::new());
    for (&(e, seg, str), want) in EXPRESSIONS.iter().zip(&want) {
        let (a, b) = swap_both(&mut w, &swapper, oc, string);
        let faults = w.vm.stats().faults;
        let got = w.print(e);
        assert_eq!(&got, want, "{image}: {e}");
        let back = [(a, seg), (b, str)];
        for (id, read) in back {
            assert_eq!(
                w.t.stubs_of(id) == 0,
                read,
                "{image}: {e}: segment {id} brought back: {read}"
            );
        }
        assert_eq!(
            w.vm.stats().faults - faults,
            u64::from(seg) + u64::from(str),
            "{image}: {e}"
        );
    }
    w.all_in();
    assert_eq!(w.t.identity_hash(oc).unwrap(), hash, "{image}");
    assert!(w.t.identical(w.global("Seg2"), oc).unwrap(), "{image}");

    // The primitive meets the stub itself: one send (the entry's), no fallback code.
    let primitive = w.eval(
        "Smalltalk at: #SegClass put: String. \
         [(Smalltalk at: #SegClass) includesSelector: #replaceFrom:to:with:startingAt:] \
         whileFalse: [Smalltalk at: #SegClass put: (Smalltalk at: #SegClass) superclass]. \
         ((Smalltalk at: #SegClass) compiledMethodAt: #replaceFrom:to:with:startingAt:) primitive",
    );
    assert_eq!(primitive.as_int(), Some(105), "{image}");
    let (_, b) = swap_both(&mut w, &swapper, oc, string);
    let dst = w.vm.string(&mut w.t, "abcdefghij").unwrap();
    let before = w.vm.stats();
    let r =
        w.vm.send_named(
            &mut w.t,
            &w.s,
            dst,
            "replaceFrom:to:with:startingAt:",
            &[Value::int(1), Value::int(3), string, Value::int(1)],
            BUDGET,
        )
        .unwrap();
    let after = w.vm.stats();
    assert_eq!(w.vm.text_of(&w.t, r).as_deref(), Some("segdefghij"));
    assert_eq!(after.sends - before.sends, 1, "{image}");
    assert_eq!(after.faults - before.faults, 1, "{image}");
    assert_eq!(w.t.stubs_of(b), 0, "{image}");

    // A damaged segment file: a typed error, the stub stands; the right file brings it back.
    w.all_in();
    let store = MemStore::new();
    let swapper = Swapper::new(store.clone());
    let out = swapper.swap_out(&mut w.t, &[oc]).unwrap();
    let id = out.id;
    let good = store.get(id).unwrap();
    store.replace(id, good[..good.len() / 2].to_vec());
    match w.try_eval("(Smalltalk at: #Seg) size") {
        Err(VmError::SegmentFault {
            segment,
            cause: FaultCause::Failed(_),
            selector,
            ..
        }) => {
            assert_eq!(segment, id.get());
            assert_eq!(selector.as_deref(), Some("size"));
        }
        r => panic!("{image}: a damaged file: {r:?}"),
    }
    assert_eq!(w.t.stubs_of(id.get()), out.stubs, "{image}");
    assert_eq!(w.print("3 + 4"), "7", "{image}");
    store.replace(id, good);
    assert_eq!(w.print("(Smalltalk at: #Seg) size"), "3", "{image}");
    assert_eq!(w.t.stubs_of(id.get()), 0, "{image}");
    assert_eq!(w.t.identity_hash(oc).unwrap(), hash, "{image}");
}

#[test]
fn sends_and_primitives_fault_segments_in_mini() {
    sends_and_primitives("mini.image");
}

#[test]
fn sends_and_primitives_fault_segments_in_scratch() {
    sends_and_primitives("Scratch-1.4.0.6.image");
}

/// `perform:withArguments:` (primitive 84) and its superclass form (100) given an argument
/// Array that is a root stub: the primitive faults the Array in before it changes the
/// stack, and the send answers what it answers with the Array in, with one fault.
fn performs_with_swapped_arguments(image: &'static str) {
    let mut w = World::new(image);
    w.eval("Smalltalk at: #SegArgs put: (Array with: 4). 0");
    let args = w.global("SegArgs");
    let swapper = Swapper::new(MemStore::new());
    let expressions = [
        "3 perform: #+ withArguments: (Smalltalk at: #SegArgs)",
        "#(10 20 30 40) perform: #at: withArguments: (Smalltalk at: #SegArgs)",
        "#(10 20 30 40) perform: #at: withArguments: (Smalltalk at: #SegArgs) inSuperclass: Object",
    ];
    // mini.image has no `perform:withArguments:inSuperclass:`; Scratch has.
    let superclass_form = w.print("Object includesSelector: #perform:withArguments:inSuperclass:");
    assert_eq!(superclass_form == "true", image != "mini.image", "{image}");
    for e in expressions {
        if e.contains("inSuperclass:") && superclass_form != "true" {
            continue;
        }
        w.all_in();
        let want = w.print(e);
        let out = swapper.swap_out(&mut w.t, &[args]).unwrap();
        assert_eq!(out.objects, 1, "{image}");
        let faults = w.vm.stats().faults;
        match w.try_eval(&format!("[{e}] value printString")) {
            Ok(v) => assert_eq!(w.vm.text_of(&w.t, v), Some(want), "{image}: {e}"),
            Err(err) => panic!("{image}: {e}: {err}"),
        }
        assert_eq!(w.vm.stats().faults - faults, 1, "{image}: {e}");
        assert_eq!(w.t.stubs_of(out.id.get()), 0, "{image}: {e}");
    }
}

#[test]
fn performs_fault_their_argument_arrays_in_mini() {
    performs_with_swapped_arguments("mini.image");
}

#[test]
fn performs_fault_their_argument_arrays_in_scratch() {
    performs_with_swapped_arguments("Scratch-1.4.0.6.image");
}

/// mini.image with the collection in `Seg` and `OrderedCollection>>segSum`, a method that
/// reads the collection's instance variables directly; answers the collection.
fn seg_sum_world() -> (World, Value) {
    let mut w = World::new("mini.image");
    w.eval(SETUP);
    w.compile(
        "OrderedCollection",
        "segSum | n | n := 0. firstIndex to: lastIndex do: [:i | n := n + (array at: i) size]. ^n",
    );
    let oc = w.global("Seg");
    (w, oc)
}

/// For every point at which a run of a method of the collection can be suspended: swap
/// the collection out there, resume, and get the same answer. The method reads the
/// collection's instance variables directly, so after a stop inside it the first read of
/// the receiver is a bytecode's (a push of a receiver variable), not a send's.
#[test]
fn a_run_suspended_anywhere_resumes_with_its_receiver_swapped_out() {
    let (mut w, oc) = seg_sum_world();
    let hash = w.t.identity_hash(oc).unwrap();
    let sel = w.eval("#segSum");
    let swapper = Swapper::new(MemStore::new());
    let (mut stops, mut by_bytecode) = (0, 0);
    for k in 1.. {
        w.all_in();
        assert_eq!(w.t.identity_hash(oc).unwrap(), hash);
        let r = w.vm.perform(&mut w.t, oc, sel, &[], k);
        match r {
            Ok(v) => {
                assert_eq!(v.as_int(), Some(14));
                break;
            }
            Err(VmError::BudgetExhausted { .. }) => {}
            Err(e) => panic!("budget {k}: {e}"),
        }
        stops += 1;
        let id = swapper.swap_out(&mut w.t, &[oc]).unwrap().id.get();
        let faults = w.vm.stats().faults;
        let v = w.vm.resume(&mut w.t, BUDGET).unwrap();
        assert_eq!(v.as_int(), Some(14), "budget {k}");
        let faulted = w.vm.stats().faults - faults;
        // Back exactly when it was read: at most one fault.
        assert_eq!(faulted, u64::from(w.t.stubs_of(id) == 0), "budget {k}");
        // `segSum` sends nothing to its receiver, and the rest of the segment is reached
        // only through it: a fault here came from a bytecode reading the receiver.
        by_bytecode += faulted;
        assert!(k < 10_000, "the run never finished");
    }
    assert!(stops > 10, "{stops} stops");
    assert!(
        by_bytecode > 5,
        "{by_bytecode} of {stops} faults by a bytecode"
    );
}

/// A run whose active context is swapped out while it is suspended, with its file damaged:
/// `resume` fails with the typed fault and the run stays suspended; with the file mended,
/// it resumes to its answer.
#[test]
fn a_resume_that_cannot_bring_its_context_back_leaves_the_run_suspended() {
    let (mut w, oc) = seg_sum_world();
    let sel = w.eval("#segSum");
    let r = w.vm.perform(&mut w.t, oc, sel, &[], 20);
    assert!(matches!(r, Err(VmError::BudgetExhausted { .. })), "{r:?}");
    let active = w.t.root(cowheap_vm::ACTIVE_ROOT).unwrap();
    let store = MemStore::new();
    let swapper = Swapper::new(store.clone());
    let id = swapper.swap_out(&mut w.t, &[active]).unwrap().id;
    let good = store.get(id).unwrap();
    store.replace(id, good[..good.len() / 2].to_vec());
    let r = w.vm.resume(&mut w.t, BUDGET);
    assert!(r.is_err(), "{r:?}");
    assert!(w.vm.is_suspended(&w.t), "the run is kept");
    assert_eq!(w.t.stub_segment(active).unwrap(), Some(id.get()));
    // Reads by `&self` answer `Swapped` still (no view of a damaged file), and the
    // embedder's reads see views again after the failed resume.
    assert!(matches!(w.t.size(active), Err(Error::Swapped { .. })));
    store.replace(id, good);
    assert!(
        w.t.size(active).is_ok(),
        "a read by &self answers from the file"
    );
    assert_eq!(w.t.stub_segment(active).unwrap(), Some(id.get()));
    let v = w.vm.resume(&mut w.t, BUDGET).unwrap();
    assert_eq!(v.as_int(), Some(14));
    assert!(!w.vm.is_suspended(&w.t));
}

/// A handler from a closure that counts its calls.
fn counted(
    calls: &Arc<AtomicUsize>,
    f: impl FnMut(&mut Tenant, u64) -> cowheap_tenants::Result<()> + Send + 'static,
) -> FaultHandler {
    let calls = calls.clone();
    let mut f = f;
    FaultHandler::new(move |t, seg| {
        calls.fetch_add(1, Ordering::Relaxed);
        f(t, seg)
    })
}

fn expect_fault(
    r: Result<Value, VmError>,
    segment: u64,
    what: &str,
) -> (FaultCause, Option<String>) {
    match r {
        Err(VmError::SegmentFault {
            segment: s,
            cause,
            selector,
            chain,
            ..
        }) => {
            assert_eq!(s, segment, "{what}");
            assert!(!chain.0.is_empty(), "{what}: no call chain");
            (cause, selector)
        }
        r => panic!("{what}: {r:?}"),
    }
}

/// Tenant stubs with handler closures: none, a failing one, one that leaves the stub, one
/// that keeps swapping the object out again, and one that brings it back.
#[test]
fn handlers_that_fail_are_typed_errors_and_the_tenant_stays_usable() {
    let mut w = World::new("mini.image");
    w.eval(SETUP);
    let (oc, string) = (w.global("Seg"), w.global("SegString"));
    let hash_text = w.print("(Smalltalk at: #SegString) identityHash");
    let (class, hash) = (
        w.t.class_of(string).unwrap(),
        w.t.identity_hash(string).unwrap(),
    );
    // The collection's body, to make it again (its array kept alive by a pin).
    let (oc_class, oc_hash) = (w.t.class_of(oc).unwrap(), w.t.identity_hash(oc).unwrap());
    let oc_slots: Vec<Value> = (0..w.t.size(oc).unwrap().slots)
        .map(|i| w.t.slot(oc, i).unwrap())
        .collect();
    let pins: Vec<_> = oc_slots.iter().map(|&v| w.t.pin(v).unwrap()).collect();
    w.t.stub(oc, 77).unwrap();
    w.t.stub(string, 78).unwrap();

    // No handler: a send to the stub, the entry send, a primitive's argument.
    let (cause, selector) = expect_fault(w.try_eval("(Smalltalk at: #Seg) size"), 77, "send");
    assert_eq!(cause, FaultCause::NoHandler);
    assert_eq!(selector.as_deref(), Some("size"));
    let r = w.vm.send_named(&mut w.t, &w.s, oc, "size", &[], BUDGET);
    assert!(
        matches!(r, Err(VmError::SegmentFault { segment: 77, .. })),
        "{r:?}"
    );
    let r = w.try_eval(
        "'abcdefghij' copy replaceFrom: 1 to: 3 with: (Smalltalk at: #SegString) startingAt: 1",
    );
    match r {
        Err(VmError::SegmentFault {
            segment: 78,
            cause: FaultCause::NoHandler,
            selector,
            receiver_class,
            ..
        }) => {
            assert_eq!(selector.as_deref(), Some("replaceFrom:to:with:startingAt:"));
            assert!(receiver_class.is_some_and(|c| c.contains("String")));
        }
        r => panic!("primitive: {r:?}"),
    }
    assert_eq!(
        w.print("(Smalltalk at: #Seg) == (Smalltalk at: #Seg2)"),
        "true"
    );
    assert_eq!(w.print("3 + 4"), "7");
    assert_eq!((w.t.stubs_of(77), w.t.stubs_of(78)), (1, 1));

    // A handler that fails.
    let calls = Arc::new(AtomicUsize::new(0));
    w.t.set_fault_handler(Some(counted(&calls, |_, segment| {
        Err(Error::Fault {
            segment,
            reason: "the store is offline".into(),
        })
    })));
    let (cause, _) = expect_fault(w.try_eval("(Smalltalk at: #SegString) size"), 78, "failing");
    assert!(
        matches!(cause, FaultCause::Failed(Error::Fault { segment: 78, .. })),
        "{cause:?}"
    );
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

    // One that answers Ok but leaves the stub.
    w.t.set_fault_handler(Some(counted(&calls, |_, _| Ok(()))));
    let (cause, _) = expect_fault(w.try_eval("(Smalltalk at: #SegString) size"), 78, "idle");
    assert!(
        matches!(
            cause,
            FaultCause::Failed(Error::Swapped { segment: 78, .. })
        ),
        "{cause:?}"
    );
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

    // One that brings the String back and swaps it out again under the other of two ids:
    // stopped when the first id comes back, after one fault of each.
    w.t.set_fault_handler(Some(counted(&calls, move |t, segment| {
        let body = t.alloc_with_hash(class, Format::Bytes, &[], b"segment", hash)?;
        t.fill_stub(string, body)?;
        t.stub(string, if segment == 78 { 79 } else { 78 })
    })));
    let (cause, _) = expect_fault(
        w.try_eval("(Smalltalk at: #SegString) size"),
        78,
        "ping-pong",
    );
    assert_eq!(cause, FaultCause::Again);
    assert_eq!(calls.swap(0, Ordering::Relaxed), 2);
    assert_eq!(w.print("3 + 4"), "7");

    // One that brings each back.
    w.t.set_fault_handler(Some(counted(&calls, move |t, segment| {
        if segment == 77 {
            let body = t.alloc_with_hash(oc_class, Format::Pointers, &oc_slots, &[], oc_hash)?;
            t.fill_stub(oc, body)
        } else {
            let body = t.alloc_with_hash(class, Format::Bytes, &[], b"segment", hash)?;
            t.fill_stub(string, body)
        }
    })));
    assert_eq!(w.print("(Smalltalk at: #SegString) , '!'"), "'segment!'");
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    assert_eq!(
        w.print("(Smalltalk at: #SegString) identityHash"),
        hash_text
    );
    assert_eq!(w.print("(Smalltalk at: #Seg) first"), "'alpha'");
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);
    assert_eq!(
        w.print("(Smalltalk at: #Seg) == (Smalltalk at: #Seg2)"),
        "true"
    );
    assert_eq!(w.t.identity_hash(oc).unwrap(), oc_hash);
    assert!(w.out().is_empty());
    for p in pins {
        w.t.unpin(p).unwrap();
    }
}

/// A host object's state, and whether its plugin made it.
struct Session {
    requests: u64,
    reopened: bool,
}

struct Sessions;

impl cowheap_tenants::hosts::HostPlugin for Sessions {
    fn save(&self, object: &(dyn std::any::Any + Send)) -> Result<Vec<u8>, String> {
        let s = object.downcast_ref::<Session>().ok_or("not a session")?;
        Ok(s.requests.to_le_bytes().to_vec())
    }
    fn restore(&self, saved: &[u8]) -> Result<Box<dyn std::any::Any + Send>, String> {
        let n = saved.try_into().map_err(|_| "not 8 bytes")?;
        Ok(Box::new(Session {
            requests: u64::from_le_bytes(n),
            reopened: true,
        }))
    }
}

#[test]
fn a_send_to_a_swapped_out_host_object_faults_it_in_through_its_plugin() {
    use cowheap_tenants::hosts::{DetachedHost, HostPlugins};
    let mut w = World::new("mini.image");
    w.eval("Smalltalk at: #Conn put: Object new. 0");
    let conn = w.global("Conn");
    let session = Session {
        requests: 12,
        reopened: false,
    };
    w.t.attach_host(conn, DetachedHost::new("session", Box::new(session)))
        .unwrap();
    let hash = w.print("(Smalltalk at: #Conn) identityHash");
    let mut plugins = HostPlugins::new();
    plugins.register("session", Arc::new(Sessions));
    let swapper = Swapper::with_plugins(MemStore::new(), plugins);
    let out = swapper.swap_out(&mut w.t, &[conn]).unwrap();
    assert_eq!(out.objects, 1);
    assert_eq!(w.t.host_count(), 0);
    // `==` needs no body; a send does, and brings the host object back through the plugin.
    assert_eq!(
        w.print("(Smalltalk at: #Conn) == (Smalltalk at: #Conn)"),
        "true"
    );
    assert_eq!(w.t.stubs_of(out.id.get()), 1);
    let faults = w.vm.stats().faults;
    assert_eq!(w.print("(Smalltalk at: #Conn) printString"), "'an Object'");
    assert_eq!(w.vm.stats().faults - faults, 1);
    assert_eq!(w.t.stubs_of(out.id.get()), 0);
    assert_eq!(w.print("(Smalltalk at: #Conn) identityHash"), hash);
    let (kind, object) = w.t.host_object(w.global("Conn")).unwrap();
    let s = object.unwrap().downcast_ref::<Session>().unwrap();
    assert_eq!((kind, s.requests, s.reopened), ("session", 12, true));
}
