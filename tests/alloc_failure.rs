//! Operations the allocator refuses part-way change nothing: a global allocator refuses the
//! `n`-th large allocation of the test's own thread, for every `n` until the operation
//! succeeds, and after each refusal the tenant must read, count and behave as before.
//!
//! Only allocations of at least [`cowheap_testkit::LARGE`] bytes are refused: the operations reserve their
//! large memory (a copy, the arena, the keys' records, the table) fallibly and before they
//! change anything, while a small bookkeeping allocation that failed would end the
//! process, as everywhere in Rust. A large allocation made infallibly on these paths ends
//! the test's process, which fails it.

use cowheap::heap::Builder;
use cowheap::{Base, Error, Format, ObjectSize, Tenant, Value, Word};
use cowheap_testkit::{Refusing, refusing_from, refusing_the};
use std::sync::Arc;

#[global_allocator]
static ALLOC: Refusing = Refusing;

/// A base of two large pointer objects (`SLOTS` slots each, holding small integers),
/// `SMALL` objects of one slot (held by the root "small"), a class, and nil.
const SLOTS: usize = 2_000;
const SMALL: usize = 400;

fn base() -> (Arc<Base>, Value, Value) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![], vec![]).unwrap();
    let big = |b: &mut Builder, k: i64| {
        let slots = (0..SLOTS as i64)
            .map(|i| Word::int(k * 10_000 + i).unwrap())
            .collect();
        b.add(class, Format::Pointers, slots, vec![]).unwrap()
    };
    let (x, y) = (big(&mut b, 1), big(&mut b, 2));
    b.add_root("x", x).unwrap();
    b.add_root("y", y).unwrap();
    b.add_root("class", class).unwrap();
    let small = small_objects(&mut b, class, SMALL);
    let many = b.add(class, Format::Pointers, small, vec![]).unwrap();
    b.add_root("small", many).unwrap();
    let base = Base::new(b.freeze().unwrap());
    let heap = base.heap();
    let (x, y) = (heap.root("x").unwrap(), heap.root("y").unwrap());
    (base, x, y)
}

/// `n` base objects of one slot each, slot `i` of the `i`-th holding the integer `i`.
fn small_objects(b: &mut Builder, class: Word, n: usize) -> Vec<Word> {
    (0..n as i64)
        .map(|i| {
            b.add(class, Format::Pointers, vec![Word::int(i).unwrap()], vec![])
                .unwrap()
        })
        .collect()
}

/// What a tenant shows of itself: its counts and the slots of `objs` it reads.
fn observe(t: &Tenant, objs: &[Value]) -> (u64, u64, u64, usize, Vec<Vec<Option<i64>>>) {
    let s = t.stats();
    let slots = objs
        .iter()
        .map(|&o| {
            let n = t.size(o).unwrap().slots;
            (0..n).map(|i| t.slot(o, i).unwrap().as_int()).collect()
        })
        .collect();
    (
        s.private_objects,
        s.private_bytes,
        s.copies,
        t.diverted(),
        slots,
    )
}

/// Runs `op` on a fresh tenant made by `setup`, refusing each large allocation in turn:
/// each refusal must answer `OutOfMemory` and leave the tenant as `setup` left it, and the
/// run with nothing left to refuse must succeed. Answers the refusals seen and the tenant
/// the successful run left.
fn every_refusal_changes_nothing(
    setup: impl Fn() -> (Tenant, Vec<Value>),
    op: impl Fn(&mut Tenant, &[Value]) -> Result<(), Error>,
) -> (usize, Tenant, Vec<Value>) {
    for n in 0.. {
        let (mut t, objs) = setup();
        let before = observe(&t, &objs);
        let (r, refused) = refusing_the(n, || op(&mut t, &objs));
        if !refused {
            r.unwrap();
            eprintln!("{n} large allocations refused in turn");
            return (n, t, objs);
        }
        match r {
            Err(Error::OutOfMemory { .. }) => {}
            other => panic!("refusal {n} answered {other:?}"),
        }
        assert_eq!(observe(&t, &objs), before, "refusal {n} changed the tenant");
        // And the tenant still works: the same operation now succeeds.
        op(&mut t, &objs).unwrap();
    }
    unreachable!()
}

#[test]
fn a_two_way_become_of_two_base_objects_refused_anywhere_changes_nothing() {
    let (base, x, y) = base();
    let (refusals, t, objs) = every_refusal_changes_nothing(
        || (Tenant::fork(&base), vec![x, y]),
        |t, o| t.become_two_way(o[0], o[1]),
    );
    // Both copies, and the arena's room for them, are large reservations.
    assert!(refusals >= 3, "{refusals} large allocations");
    assert_eq!(t.slot(objs[0], 0).unwrap().as_int(), Some(20_000));
    assert_eq!(t.slot(objs[1], 0).unwrap().as_int(), Some(10_000));
    assert_eq!(t.diverted(), 2);
}

#[test]
fn a_two_way_become_of_a_base_and_a_private_object_refused_anywhere_changes_nothing() {
    let (base, x, _) = base();
    let class = base.heap().root("class").unwrap();
    let (refusals, t, objs) = every_refusal_changes_nothing(
        || {
            let mut t = Tenant::fork(&base);
            let p = t
                .alloc_with(class, Format::Pointers, &[Value::int(7)], &[])
                .unwrap();
            (t, vec![x, p])
        },
        |t, o| t.become_two_way(o[0], o[1]),
    );
    // The copy, and the arena's room for it.
    assert!(refusals >= 2, "{refusals} large allocations");
    assert_eq!(t.slot(objs[0], 0).unwrap().as_int(), Some(7));
    assert_eq!(t.slot(objs[1], 0).unwrap().as_int(), Some(10_000));
}

#[test]
fn a_first_write_refused_anywhere_changes_nothing() {
    let (base, x, y) = base();
    let (refusals, t, objs) = every_refusal_changes_nothing(
        || {
            // A tenant that has copied something already.
            let mut t = Tenant::fork(&base);
            t.set_slot(y, 1, Value::int(-1)).unwrap();
            (t, vec![x, y])
        },
        |t, o| t.set_slot(o[0], 5, Value::int(-5)),
    );
    assert!(refusals >= 1, "{refusals} large allocations");
    assert_eq!(t.slot(objs[0], 5).unwrap().as_int(), Some(-5));
    assert_eq!(t.slot(objs[1], 1).unwrap().as_int(), Some(-1));
    assert_eq!(t.diverted(), 2);
}

#[test]
fn a_large_allocation_refused_anywhere_changes_nothing() {
    let (base, x, _) = base();
    let class = base.heap().root("class").unwrap();
    let size = ObjectSize {
        slots: SLOTS,
        bytes: 0,
    };
    let (refusals, t, _) = every_refusal_changes_nothing(
        || (Tenant::fork(&base), vec![x]),
        |t, _| t.alloc(class, Format::Pointers, size).map(|_| ()),
    );
    assert!(refusals >= 1, "{refusals} large allocations");
    assert_eq!(t.stats().private_objects, 1);
}

/// The table and the keys grow fallibly too: with 384 objects diverted, the next diversion
/// doubles the table to 1,024 buckets (9 KiB), and over a range of private object counts
/// the keys' records (8 bytes each) are full at some count, so one first write meets every
/// large allocation it can make: the table's, the records' and the arena's.
#[test]
fn a_first_write_that_grows_the_table_and_the_keys_refused_anywhere_changes_nothing() {
    let (base, x, y) = base();
    let class = base.heap().root("class").unwrap();
    let small = base.heap().root("small").unwrap();
    let smalls: Vec<Value> = (0..384)
        .map(|i| base.heap().slot(small, i).unwrap())
        .collect();
    let mut most = 0;
    for extra in 0..160 {
        let (refusals, t, objs) = every_refusal_changes_nothing(
            || {
                let mut t = Tenant::fork(&base);
                for &o in &smalls {
                    t.set_slot(o, 0, Value::int(-1)).unwrap();
                }
                let size = ObjectSize { slots: 1, bytes: 0 };
                for _ in 0..extra {
                    t.alloc(class, Format::Pointers, size).unwrap();
                }
                (t, vec![x, y])
            },
            |t, o| t.set_slot(o[0], 5, Value::int(-5)),
        );
        assert_eq!(t.slot(objs[0], 5).unwrap().as_int(), Some(-5));
        assert_eq!(t.diverted(), 385);
        most = most.max(refusals);
    }
    assert_eq!(most, 3, "the table's, the records' and the arena's growth");
}

/// A fault-in makes the segment's members (the arena's and the keys' growth) and then gives
/// every stub its body (a forwarder word each): refused at any of these, it frees what it
/// made and leaves the segment on file, every stub standing. Over a range of padding sizes
/// the arena is full after the import at some size, so the stubs' reservation is the one
/// refused there.
#[test]
fn a_fault_in_refused_anywhere_changes_nothing() {
    use cowheap_segment::swap::{MemStore, SwapError, Swapper};
    use cowheap_segment::tenant::SegmentState;
    let (base, _, _) = base();
    let class = base.heap().root("class").unwrap();
    let setup = |pad: usize| {
        let mut t = Tenant::fork(&base);
        // Enough words that the arena's growth is a large allocation, kept alive.
        let big: Vec<Value> = (0..4)
            .map(|_| {
                let size = ObjectSize {
                    slots: 200,
                    bytes: 0,
                };
                t.alloc(class, Format::Pointers, size).unwrap()
            })
            .collect();
        let size = ObjectSize {
            slots: pad,
            bytes: 0,
        };
        let padding = t.alloc(class, Format::Pointers, size).unwrap();
        // The segment: root -> a -> b, held by `holder`.
        let b = t
            .alloc_with(class, Format::Pointers, &[Value::int(3)], &[])
            .unwrap();
        let a = t
            .alloc_with(class, Format::Pointers, &[b, Value::int(2)], &[])
            .unwrap();
        let root = t
            .alloc_with(class, Format::Pointers, &[a, Value::int(1)], &[])
            .unwrap();
        let mut held = big;
        held.extend([padding, root]);
        let holder = t.alloc_with(class, Format::Pointers, &held, &[]).unwrap();
        t.set_root("holder", holder).unwrap();
        let swapper = Swapper::new(MemStore::new());
        let out = swapper.swap_out(&mut t, &[root]).unwrap();
        assert_eq!(out.objects, 3);
        (t, swapper, out.id, root)
    };
    let observe = |t: &Tenant, s: &Swapper, id, root| {
        let stats = t.stats();
        (
            stats.private_objects,
            stats.private_bytes,
            t.stub_segment(root).unwrap(),
            s.state(id),
        )
    };
    let mut refused_at = 0;
    for pad in 0..260 {
        for n in 0.. {
            let (mut t, swapper, id, root) = setup(pad);
            let before = observe(&t, &swapper, id, root);
            assert_eq!(before.2, Some(id.get()));
            assert_eq!(before.3, Some(SegmentState::OnFile));
            let (r, refused) = refusing_the(n, || swapper.fault_in(&mut t, id));
            if refused {
                assert!(
                    matches!(r, Err(SwapError::Tenant(Error::OutOfMemory { .. }))),
                    "padding {pad}, refusal {n}: {r:?}"
                );
                assert_eq!(
                    observe(&t, &swapper, id, root),
                    before,
                    "padding {pad}: refusal {n} changed the tenant"
                );
                // The segment is still out on file, and comes back.
                swapper.fault_in(&mut t, id).unwrap();
                refused_at += 1;
            } else {
                r.unwrap();
            }
            assert_eq!(t.stub_segment(root).unwrap(), None);
            let a = t.slot(root, 0).unwrap();
            let b = t.slot(a, 0).unwrap();
            assert_eq!(t.slot(b, 0).unwrap().as_int(), Some(3));
            assert_eq!(t.slot(a, 1).unwrap().as_int(), Some(2));
            if !refused {
                break;
            }
        }
    }
    eprintln!("{refused_at} refusals");
    assert!(refused_at >= 2, "{refused_at} refusals");
}

/// A commit gathers the tenant's copies and new objects into a layer (the table's order,
/// the bodies, the numbering of new objects), checks it, reserves what settling the tenant
/// needs, and makes the version: refused at any large allocation, it publishes nothing and
/// leaves the tenant on its version, every copy and object in place.
#[test]
fn a_commit_refused_anywhere_changes_nothing() {
    use cowheap::tenants::commit::{CommitError, CommitRights, Repository};
    let (base, x, y) = base();
    let class = base.heap().root("class").unwrap();
    let small = base.heap().root("small").unwrap();
    let smalls: Vec<Value> = (0..SMALL)
        .map(|i| base.heap().slot(small, i).unwrap())
        .collect();
    let setup = || {
        let repo = Repository::new(base.clone(), CommitRights::Anyone);
        let mut t = repo.fork();
        // Copies: many small ones and a large one.
        for &o in &smalls {
            t.set_slot(o, 0, Value::int(-1)).unwrap();
        }
        t.set_slot(x, 0, Value::int(-2)).unwrap();
        // New objects, reached from a copy through a large holder.
        let fresh: Vec<Value> = (0..600)
            .map(|i| {
                t.alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
                    .unwrap()
            })
            .collect();
        let holder = t.alloc_with(class, Format::Pointers, &fresh, &[]).unwrap();
        t.set_slot(y, 1, holder).unwrap();
        (repo, t, fresh[599])
    };
    let version = base.version();
    let mut refusals = 0;
    for n in 0.. {
        let (repo, mut t, last) = setup();
        let objs = [x, y, smalls[SMALL - 1], last];
        let before = observe(&t, &objs);
        let (r, refused) = refusing_the(n, || repo.commit(&mut t, "test"));
        if !refused {
            let next = r.unwrap();
            assert_eq!(next.version(), version + 1);
            assert_eq!(repo.current().version(), version + 1);
            // The version holds the copies and the new objects.
            let reader = repo.fork();
            assert_eq!(reader.slot(x, 0).unwrap().as_int(), Some(-2));
            assert_eq!(reader.slot(smalls[7], 0).unwrap().as_int(), Some(-1));
            let holder = reader.slot(y, 1).unwrap();
            let last = reader.slot(holder, 599).unwrap();
            assert_eq!(reader.slot(last, 0).unwrap().as_int(), Some(599));
            assert_eq!(t.stats().copies, before.2);
            break;
        }
        refusals += 1;
        assert!(
            matches!(r, Err(CommitError::Tenant(Error::OutOfMemory { .. }))),
            "refusal {n} answered {r:?}"
        );
        assert_eq!(observe(&t, &objs), before, "refusal {n} changed the tenant");
        assert_eq!(t.base().version(), version, "refusal {n}");
        assert_eq!(repo.current().version(), version, "refusal {n} published");
        // And the tenant still commits.
        repo.commit(&mut t, "test").unwrap();
        assert_eq!(repo.current().version(), version + 1);
    }
    // The table's order, the copies' bodies, the layer, the settling's reservations.
    eprintln!("{refusals} large allocations refused in turn");
    assert!(refusals >= 5, "{refusals} large allocations");
}

/// A tenant of `n` small private objects held by one array, the root "held" (so a mark's
/// worklist holds them all at once), and `n` more that nothing holds.
fn with_garbage(base: &Arc<Base>, n: usize) -> (Tenant, Vec<Value>) {
    let class = base.heap().root("class").unwrap();
    let mut t = Tenant::fork(base);
    let mut held = Vec::new();
    for i in 0..n as i64 {
        let v = t
            .alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
            .unwrap();
        held.push(v);
        t.alloc_with(class, Format::Pointers, &[Value::int(-i), v], &[])
            .unwrap();
    }
    let array = t.alloc_with(class, Format::Pointers, &held, &[]).unwrap();
    t.set_root("held", array).unwrap();
    (t, held)
}

/// A collection's mark reserves its memory (a bit per key, a worklist, the roots) fallibly:
/// refused at any large allocation, and every one after it, `try_collect` answers
/// `OutOfMemory` and frees nothing; with memory back it frees the garbage.
#[test]
fn a_collection_refused_from_anywhere_on_frees_nothing() {
    let (base, _, _) = base();
    let mut refused_at = 0;
    for n in 0.. {
        let (mut t, held) = with_garbage(&base, 3_000);
        let before = observe(&t, &held);
        let (r, refused) = refusing_from(n, || t.try_collect());
        if !refused {
            let out = r.unwrap();
            assert_eq!((out.live, out.freed), (3_001, 3_000));
            break;
        }
        assert!(
            matches!(r, Err(Error::OutOfMemory { .. })),
            "refusal {n}: {r:?}"
        );
        assert_eq!(observe(&t, &held), before, "refusal {n} changed the tenant");
        assert_eq!(t.stats().collections, 0);
        assert_eq!(t.try_collect().unwrap().freed, 3_000);
        refused_at += 1;
    }
    assert!(refused_at >= 2, "{refused_at} refusals");
}

/// Memory reserved by `reserve_collection` before objects are made frees them later
/// without allocating: with every large allocation refused after the reservation, the
/// reserved `free_unreachable_with` still frees them, where the unreserved form is refused.
#[test]
fn a_reserved_free_is_not_refused() {
    let (base, _, _) = base();
    let class = base.heap().root("class").unwrap();
    let (mut t, _) = with_garbage(&base, 3_000);
    let before = t.stats();
    let reserve = t.reserve_collection(100).unwrap();
    let made: Vec<Value> = (0..100)
        .map(|i| {
            t.alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
                .unwrap()
        })
        .collect();
    let (r, refused) = refusing_from(0, || t.free_unreachable(&made));
    assert!(refused);
    assert!(matches!(r, Err(Error::OutOfMemory { .. })), "{r:?}");
    assert_eq!(t.stats().private_objects, before.private_objects + 100);
    let (r, refused) = refusing_from(0, || t.free_unreachable_with(&made, reserve));
    assert!(!refused, "the reserved free allocated");
    assert_eq!(r.unwrap().freed, 100);
    let after = t.stats();
    assert_eq!(
        (after.private_objects, after.private_bytes),
        (before.private_objects, before.private_bytes)
    );
    assert!(t.slot(made[0], 0).is_err());
}

/// A fault-in whose memory stays short from any large allocation on answers `OutOfMemory`
/// and leaves the tenant as it was: the import's members are freed in memory reserved
/// before the import, so the undo needs none. The tenant holds thousands of objects, so
/// the mark's memory is itself a large allocation.
#[test]
fn a_fault_in_refused_from_anywhere_on_changes_nothing() {
    use cowheap_segment::swap::{MemStore, SwapError, Swapper};
    const ROOTS: usize = 30;
    let (base, _, _) = base();
    let class = base.heap().root("class").unwrap();
    let setup = |pad: usize| {
        let (mut t, mut held) = with_garbage(&base, 3_000);
        t.collect();
        // Padding, so that the import and the stubs' fill meet the arena's growth at
        // every point in turn.
        let size = ObjectSize {
            slots: pad,
            bytes: 0,
        };
        held.push(t.alloc(class, Format::Pointers, size).unwrap());
        // The segment: `ROOTS` roots, so that the stubs' fill reserves that many words.
        let roots: Vec<Value> = (0..ROOTS as i64)
            .map(|i| {
                t.alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
                    .unwrap()
            })
            .collect();
        held.extend(&roots);
        let holder = t.alloc_with(class, Format::Pointers, &held, &[]).unwrap();
        t.set_root("held", holder).unwrap();
        let swapper = Swapper::new(MemStore::new());
        let out = swapper.swap_out(&mut t, &roots).unwrap();
        assert_eq!(out.objects, ROOTS);
        (t, swapper, out.id, roots)
    };
    let mut refused_at = 0;
    // Paddings around the one where the import fits the arena and the stubs' fill makes it
    // grow (found by a sweep of 0..9,000 by 13): there the import's members are made, then
    // freed again.
    let mut undone = 0;
    for pad in (3_900..4_500).step_by(13) {
        for n in 0.. {
            let (mut t, swapper, id, roots) = setup(pad);
            let stats = t.stats();
            let before = (
                stats.private_objects,
                stats.private_bytes,
                swapper.state(id),
            );
            let collected = stats.collected;
            let (r, refused) = refusing_from(n, || swapper.fault_in(&mut t, id));
            if !refused {
                r.unwrap();
                break;
            }
            assert!(
                matches!(r, Err(SwapError::Tenant(Error::OutOfMemory { .. }))),
                "padding {pad}, refusal {n}: {r:?}"
            );
            let stats = t.stats();
            undone += usize::from(stats.collected > collected);
            assert_eq!(
                (
                    stats.private_objects,
                    stats.private_bytes,
                    swapper.state(id)
                ),
                before,
                "padding {pad}: refusal {n} changed the tenant"
            );
            assert!(
                roots
                    .iter()
                    .all(|&r| t.stub_segment(r).unwrap() == Some(id.get()))
            );
            swapper.fault_in(&mut t, id).unwrap();
            for (i, &r) in (0..).zip(&roots) {
                assert_eq!(t.slot(r, 0).unwrap().as_int(), Some(i));
            }
            refused_at += 1;
        }
    }
    eprintln!("{refused_at} refusals, {undone} after the import");
    assert!(refused_at >= 2, "{refused_at} refusals");
    assert!(
        undone >= 1,
        "no refusal came after the import: move the paddings"
    );
}

/// A refused commit's answer is grown fallibly too: a conflict over more objects than a
/// large allocation holds, refused at any large allocation, answers `OutOfMemory` and
/// changes nothing; with memory, it answers the conflict, every object listed.
#[test]
fn a_conflict_refused_anywhere_changes_nothing() {
    use cowheap::tenants::commit::{CommitError, CommitRights, Repository};
    const N: usize = 1_500;
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![], vec![]).unwrap();
    let words = small_objects(&mut b, class, N);
    let all = b.add(class, Format::Pointers, words, vec![]).unwrap();
    b.add_root("all", all).unwrap();
    let base = Base::new(b.freeze().unwrap());
    let all = base.heap().root("all").unwrap();
    let objs: Vec<Value> = (0..N).map(|i| base.heap().slot(all, i).unwrap()).collect();
    let mut refusals = 0;
    for n in 0.. {
        let repo = Repository::new(base.clone(), CommitRights::Anyone);
        let (mut first, mut second) = (repo.fork(), repo.fork());
        for &o in &objs {
            first.set_slot(o, 0, Value::int(-1)).unwrap();
            second.set_slot(o, 0, Value::int(-2)).unwrap();
        }
        repo.commit(&mut first, "first").unwrap();
        let before = observe(&second, &objs[..3]);
        let version = second.base().version();
        let (r, refused) = refusing_the(n, || repo.commit(&mut second, "second"));
        assert_eq!(observe(&second, &objs[..3]), before, "refusal {n}");
        assert_eq!(second.base().version(), version, "refusal {n}");
        assert_eq!(repo.current().version(), version + 1, "refusal {n}");
        if !refused {
            match r {
                Err(CommitError::Conflict { objects, .. }) => assert_eq!(objects.len(), N),
                other => panic!("answered {other:?}"),
            }
            break;
        }
        refusals += 1;
        assert!(
            matches!(r, Err(CommitError::Tenant(Error::OutOfMemory { .. }))),
            "refusal {n} answered {r:?}"
        );
    }
    eprintln!("{refusals} large allocations refused in turn");
    assert!(refusals >= 2, "{refusals} large allocations");
}

/// A snapshot's buffer is reserved fallibly: refused, `try_snapshot` answers `OutOfMemory`
/// and `save_snapshot` an I/O error of that kind, writing nothing; with nothing refused
/// they give the bytes `snapshot` gives. Its restore, refused at each of its large
/// allocations in turn, answers an I/O error of that kind, and then restores the tenant.
#[test]
fn a_snapshot_or_restore_refused_anywhere_answers_out_of_memory() {
    use cowheap::SnapshotError;
    let (base, x, y) = base();
    let mut t = Tenant::fork(&base);
    t.set_slot(x, 1, Value::int(-1)).unwrap();
    t.set_slot(y, 2, Value::int(-2)).unwrap();
    let whole = t.snapshot();
    assert!(whole.len() > 2 * SLOTS * 8, "{} bytes", whole.len());
    // Every byte counted first: one reservation, exactly the snapshot's size.
    assert_eq!(whole.capacity(), whole.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.snapshot");
    let mut refusals = 0;
    for k in 0.. {
        let (answer, refused) = refusing_the(k, || t.try_snapshot());
        let (saved, saved_refused) = refusing_the(k, || t.save_snapshot(&path));
        assert_eq!(refused, saved_refused, "refusal {k}");
        if !refused {
            assert!(answer.unwrap() == whole, "the bytes `snapshot` gives");
            saved.unwrap();
            break;
        }
        assert!(
            matches!(answer, Err(SnapshotError::OutOfMemory { .. })),
            "refusal {k}: {answer:?}"
        );
        match saved {
            Err(cowheap::heap::FileError::Io { source, .. }) => {
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::OutOfMemory,
                    "refusal {k}"
                );
            }
            other => panic!("refusal {k}: {other:?}"),
        }
        assert!(!path.exists(), "refusal {k}: nothing written");
        refusals += 1;
    }
    assert!(refusals >= 1, "{refusals} large allocations");
    // A restore refused anywhere (the file's buffer, the objects, the keys, the table) is
    // an I/O error of kind `OutOfMemory`; the snapshot restores once nothing is refused.
    let mut refusals = 0;
    let back = loop {
        let (answer, refused) = refusing_the(refusals, || Tenant::restore(&base, &path));
        if !refused {
            break answer.expect("a restore with nothing refused");
        }
        match answer {
            Err(cowheap::heap::FileError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::OutOfMemory);
            }
            other => panic!("refusal {refusals}: {:?}", other.map(|_| ())),
        }
        refusals += 1;
    };
    assert!(refusals >= 2, "{refusals} large allocations in a restore");
    assert_eq!(back.slot(x, 1).unwrap().as_int(), Some(-1));
    assert_eq!(back.slot(y, 2).unwrap().as_int(), Some(-2));
    assert_eq!(back.diverted(), 2);
}

/// A swapper's adoption of the records of a segment out, in the tenant restored from a
/// snapshot taken with the segment out (as a node's resume makes it): refused at any of its
/// large allocations (the members' stubs list the largest), it answers `OutOfMemory`,
/// unpins what it had pinned (the segment's out-pointer) and takes nothing over; then it
/// adopts, and the segment faults in from the store.
#[test]
fn an_adoption_refused_anywhere_unpins_what_it_pinned() {
    use cowheap_segment::swap::{MemStore, SwapError, Swapper};
    const MEMBERS: usize = 600;
    let (base, _, _) = base();
    let class = base.heap().root("class").unwrap();
    let mut t = Tenant::fork(&base);
    // Outside the segment, and named by each member: the segment's one out-pointer.
    let shared = t
        .alloc_with(class, Format::Pointers, &[Value::int(-1)], &[])
        .unwrap();
    t.set_root("shared", shared).unwrap();
    let members: Vec<Value> = (0..MEMBERS)
        .map(|i| {
            let i = i64::try_from(i).unwrap();
            t.alloc_with(class, Format::Pointers, &[Value::int(i), shared], &[])
                .unwrap()
        })
        .collect();
    let root = t
        .alloc_with(class, Format::Pointers, &members, &[])
        .unwrap();
    t.set_root("part", root).unwrap();
    let store = MemStore::new();
    let swapper = Swapper::new(store.clone());
    let out = swapper.swap_out(&mut t, &[root]).unwrap();
    assert_eq!((out.objects, out.pinned), (MEMBERS + 1, 1));
    let records = swapper.records(&mut t).unwrap();
    let snapshot = t.snapshot();

    let mut t = Tenant::restore_from(&base, &snapshot).unwrap();
    let mut refusals = 0;
    let swapper = loop {
        let s = Swapper::new(store.clone());
        let (r, refused) = refusing_the(refusals, || s.adopt(&mut t, &records));
        if !refused {
            r.unwrap();
            break s;
        }
        assert!(
            matches!(r, Err(SwapError::Tenant(Error::OutOfMemory { .. }))),
            "refusal {refusals}: {r:?}"
        );
        assert_eq!(t.pinned_count(), 0, "refusal {refusals}: a pin left behind");
        assert!(s.swapped().is_empty(), "refusal {refusals}");
        assert!(!t.has_fault_handler(), "refusal {refusals}");
        assert_eq!(t.snapshot(), snapshot, "refusal {refusals}");
        refusals += 1;
    };
    eprintln!("an adoption met {refusals} large allocations, each refused in turn");
    assert!(refusals >= 1, "no large allocation in an adoption");
    assert_eq!(t.pinned_count(), 1);
    let root = t.root("part").unwrap();
    for i in 0..MEMBERS {
        let member = t.with_faults(|t| t.slot(root, i)).unwrap();
        let int = t.with_faults(|t| t.slot(member, 0)).unwrap();
        assert_eq!(int.as_int(), Some(i64::try_from(i).unwrap()), "member {i}");
        let outside = t.with_faults(|t| t.slot(member, 1)).unwrap();
        assert!(t.identical(outside, t.root("shared").unwrap()).unwrap());
    }
    assert!(swapper.swapped().is_empty());
}
