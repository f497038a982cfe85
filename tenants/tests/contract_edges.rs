//! Edges of the contract: an operation undone by [`Tenant::free_unreachable_with`] leaves
//! the tenant's counters and the identity hashes its later objects draw as they were, and
//! a [`Registry`] running every tenant ([`Registry::par_for_each`]) lets another thread
//! remove a tenant it is not running, and a first write refused for what the base object
//! holds, or an allocation past what the private space can place, leaves the tenant's
//! memory as it was.

use cowheap_forwarders::Base;
use cowheap_heap::image::Verification;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, ObjectSize, PrivateKey, Value, Word, synth};
use cowheap_tenants::{Registry, Tenant, TenantStats};
use std::sync::Arc;
use std::sync::mpsc;

fn setup() -> (Arc<Base>, Value) {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    (base, class)
}

fn one_slot(t: &mut Tenant, class: Value) -> Value {
    t.alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap()
}

/// An operation that makes objects and then fails frees them in memory it reserved first:
/// the tenant is then as it was, so the objects it makes next get the identity hashes a
/// tenant that never tried the operation gives, and its counters agree (but the count of
/// objects collected, which takes in what the undo freed).
#[test]
fn an_undone_operation_leaves_the_hashes_and_counters_as_they_were() {
    let (base, class) = setup();
    let mut tried = Tenant::fork(&base);
    let mut never = Tenant::fork(&base);
    for t in [&mut tried, &mut never] {
        let kept = one_slot(t, class);
        t.set_root("kept", kept).unwrap();
    }
    // The operation: three objects made (referring to one another), then a failure.
    let reserve = tried.reserve_collection(3).unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        let m = one_slot(&mut tried, class);
        if let Some(&last) = made.last() {
            tried.set_slot(m, 0, last).unwrap();
        }
        made.push(m);
    }
    assert_eq!(
        tried.free_unreachable_with(&made, reserve).unwrap().freed,
        3
    );
    let but_collected = |t: &Tenant| TenantStats {
        collected: 0,
        ..t.stats()
    };
    assert_eq!(tried.stats().collected, 3);
    assert_eq!(but_collected(&tried), but_collected(&never));
    for _ in 0..4 {
        let (a, b) = (one_slot(&mut tried, class), one_slot(&mut never, class));
        assert_eq!(
            tried.identity_hash(a).unwrap(),
            never.identity_hash(b).unwrap()
        );
    }
    assert_eq!(but_collected(&tried), but_collected(&never));
}

/// Objects that the undo finds reachable after all are kept, and so is the count that
/// drew their hashes: the next object made does not take a kept object's hash.
#[test]
fn an_undo_that_keeps_an_object_keeps_its_place_in_the_hashes() {
    let (base, class) = setup();
    let mut t = Tenant::fork(&base);
    let reserve = t.reserve_collection(2).unwrap();
    let a = one_slot(&mut t, class);
    let b = one_slot(&mut t, class);
    t.set_root("b", b).unwrap();
    assert_eq!(t.free_unreachable_with(&[a, b], reserve).unwrap().freed, 1);
    let next = one_slot(&mut t, class);
    assert_ne!(
        t.identity_hash(next).unwrap(),
        t.identity_hash(b).unwrap(),
        "the next object drew the kept object's hash"
    );
    assert_eq!(t.stats().allocations, 3);
}

/// An undo given an older unreachable object beside what it made frees that object too,
/// but a made object it keeps (reachable after all) still keeps the count: freeing as many
/// objects as were made since the reserve is no undo when one of them is older.
#[test]
fn an_undo_that_frees_an_older_object_and_keeps_a_made_one_keeps_the_count() {
    let (base, class) = setup();
    let mut t = Tenant::fork(&base);
    let older = one_slot(&mut t, class);
    let reserve = t.reserve_collection(1).unwrap();
    let made = one_slot(&mut t, class);
    t.set_root("made", made).unwrap();
    assert_eq!(
        t.free_unreachable_with(&[made, older], reserve)
            .unwrap()
            .freed,
        1
    );
    assert!(t.slot(older, 0).is_err(), "the older object was freed");
    let next = one_slot(&mut t, class);
    assert_ne!(
        t.identity_hash(next).unwrap(),
        t.identity_hash(made).unwrap(),
        "the next object drew the kept object's hash"
    );
    assert_eq!(t.stats().allocations, 3);
}

/// Memory reserved by one tenant and used by another's undo frees as an unreserved undo
/// does: the other tenant's allocation count is not set to the first one's.
#[test]
fn an_undo_in_another_tenants_reserve_keeps_the_count() {
    let (base, class) = setup();
    let mut lender = Tenant::fork(&base);
    one_slot(&mut lender, class);
    let reserve = lender.reserve_collection(2).unwrap();
    let mut t = Tenant::fork(&base);
    let old = one_slot(&mut t, class);
    let kept = one_slot(&mut t, class);
    t.set_root("kept", kept).unwrap();
    assert_eq!(t.free_unreachable_with(&[old], reserve).unwrap().freed, 1);
    assert_eq!((t.stats().allocations, t.stats().collected), (2, 1));
    let next = one_slot(&mut t, class);
    assert_ne!(
        t.identity_hash(next).unwrap(),
        t.identity_hash(kept).unwrap()
    );
}

/// While `par_for_each` runs one tenant, a tenant it is not running (visited already, or
/// not yet) is held by no thread, and another thread's `remove` takes it out.
#[test]
fn a_tenant_par_for_each_is_not_running_can_be_removed() {
    let (base, _) = setup();
    let registry = Registry::new(base);
    let busy = registry.spawn();
    let idle = registry.spawn();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let release_rx = std::sync::Mutex::new(release_rx);
    // One worker: the run of `busy` and the other tenant's never overlap.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let removed = std::thread::scope(|s| {
        s.spawn(|| {
            pool.install(|| {
                registry.par_for_each(|t| {
                    if t.id() == busy {
                        started_tx.lock().unwrap().send(()).unwrap();
                        release_rx.lock().unwrap().recv().unwrap();
                    }
                })
            })
        });
        started_rx.recv().unwrap();
        let removed = registry.remove(idle);
        release_tx.send(()).unwrap();
        removed
    });
    let removed = removed.expect("an idle tenant was not removed");
    assert_eq!(removed.id(), idle);
    assert_eq!(registry.ids(), vec![busy]);
}

/// A base opened without verification may hold an object whose slot is a private
/// reference: a first write to it is refused (its copy would name one of the tenant's own
/// objects), and the refused write leaves the tenant's memory as it was: nothing is
/// reserved for a copy that is never made.
#[test]
fn a_first_write_refused_for_a_stray_word_reserves_nothing() {
    let u = |f: &[u8], at: usize| u64::from_le_bytes(f[at..at + 8].try_into().unwrap()) as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.cowheap");
    synth::image(40, 3).save(&path).unwrap();
    let mut f = std::fs::read(&path).unwrap();
    let offsets_at = 232 + u(&f, 32);
    // Slot 0 of the first object with a slot becomes a private reference.
    let (x, at) = (1..40)
        .map(|i| (i, u(&f, offsets_at + 8 * i)))
        .find(|&(_, o)| u(&f, 232 + o * 8 + 8) & 0xffff_ffff > 0)
        .unwrap();
    let slot_0 = 232 + (at + 3) * 8;
    let stray = Word::private(PrivateKey::new(0, 0)).bits().to_le_bytes();
    f[slot_0..slot_0 + 8].copy_from_slice(&stray);
    cowheap_testkit::reseal_image(&mut f);
    std::fs::write(&path, &f).unwrap();
    let base = Base::new(BaseHeap::open_with(&path, Verification::Trust).unwrap());
    let obj = Value::base(ObjectIndex::new(x).unwrap());
    let mut t = Tenant::fork(&base);
    let before = (t.memory_bytes(), t.stats(), t.diverted());
    assert!(matches!(
        t.set_slot(obj, 0, Value::int(7)),
        Err(cowheap_tenants::Error::Heap(
            cowheap_heap::Error::InvalidWord(_)
        ))
    ));
    assert_eq!((t.memory_bytes(), t.stats(), t.diverted()), before);
}

/// An object larger than the private space can place is refused before anything is
/// reserved for it: a fresh tenant's memory (its keys' records included) is as it was.
#[test]
fn an_allocation_past_the_arena_reserves_no_key() {
    let (base, class) = setup();
    for slots in [u32::MAX as usize, 1 << 31, (1 << 30) + 1] {
        let mut t = Tenant::fork(&base);
        let before = t.memory_bytes();
        let r = t.alloc(class, Format::Pointers, ObjectSize { slots, bytes: 0 });
        assert!(
            matches!(r, Err(cowheap_tenants::Error::OutOfMemory { .. })),
            "{slots} slots: {:?}",
            r.map(|_| ())
        );
        assert_eq!(t.memory_bytes(), before, "{slots} slots");
    }
}
