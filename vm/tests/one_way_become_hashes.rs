//! Squeak's one-way array becomes that choose what happens to the identity hashes:
//! `elementsForwardIdentityNoCopyHashTo:` (primitive 248,
//! `primitiveArrayBecomeOneWayNoCopyHash`: each target keeps its own hash) and
//! `elementsForwardIdentityTo:copyHash:` (249, `primitiveArrayBecomeOneWayCopyHashArg`: the
//! target takes its source's hash when the flag is true, as 72 always does). On the flat
//! heap and on a tenant, which must agree, for a mix of base and private objects; each
//! refusal (an immediate, nil, true, a context, arrays of different sizes, a flag that is
//! no Boolean, a tenant's quota, a read-only base object that would be written) changes
//! nothing; and only a hash copy writes, or needs room for, a base target.

mod common;
use common::{agree_on_both, array_of, tagged};

use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_vm::synth::{Lit, SynthImage};
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};

/// The methods under test, each failing into `^nil`, and a method `Object>>baseObjects`
/// whose literals are three base Associations (`B1 -> 1`, `B2 -> 2`, `B3 -> 3`).
fn image(closures: bool) -> (BaseHeap, Symbols, [Value; 3]) {
    let mut img = SynthImage::new(closures);
    img.with_kernel_methods();
    for (selector, args, primitive) in [
        ("elementsForwardIdentityTo:", 1, 72),
        ("elementsForwardIdentityNoCopyHashTo:", 1, 248),
        ("elementsForwardIdentityTo:copyHash:", 2, 249),
    ] {
        img.method("Object", selector, args, args, &[], &[115, 124], primitive);
    }
    let lits = [1, 2, 3].map(|k| Lit::Global(format!("B{k}"), k));
    let holder = img.method("Object", "baseObjects", 0, 0, &lits, &[115, 124], 0);
    let (heap, symbols) = img.freeze().unwrap();
    let method = Value::shared(holder);
    let base = [1, 2, 3].map(|i| heap.slot(method, i).unwrap());
    (heap, symbols, base)
}

fn size(slots: usize) -> ObjectSize {
    ObjectSize { slots, bytes: 0 }
}

/// What one reference leads to: the tag (an Association's value) of the body it reads, and
/// which of the objects its identity hash was the hash of before the become.
type Seen = (Option<i64>, Option<usize>);

/// What each object `holder` holds leads to now, hashes told by `before`. (A flat heap's
/// become rewrites the references in the heap, not those a test holds.)
fn seen<M: ObjectMemory>(m: &M, holder: Value, before: &[u32]) -> Vec<Seen> {
    (0..m.size(holder).unwrap().slots)
        .map(|i| {
            let o = m.slot(holder, i).unwrap();
            let tag = m.slot(o, 1).unwrap().as_int();
            let h = m.identity_hash(o).unwrap();
            (tag, before.iter().position(|&b| b == h))
        })
        .collect()
}

/// Six objects, three base (B1, B2, B3: tags 1, 2, 3) and three private (tags 101, 102,
/// 103, hashes 1001..), and the pairs `p1 -> B2`, `B1 -> p2`, `p3 -> B3`: a private
/// source onto a base target, a base source onto a private target, private onto base.
/// Sends `selector` with the arrays (and `extra` after them), and answers the send's
/// result, whether it answered the receiver, and what each of the six (by its reference
/// before) leads to: [p1, B1, p3, B2, p2, B3].
fn one_way<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    base: [Value; 3],
    selector: &str,
    extra: Option<Value>,
) -> (Result<bool, VmError>, Vec<Seen>) {
    let [b1, b2, b3] = base;
    let p: Vec<Value> = (1..=3)
        .map(|k| tagged(m, 100 + k, 1000 + k as u32))
        .collect();
    let (p1, p2, p3) = (p[0], p[1], p[2]);
    let objects = [p1, b1, p3, b2, p2, b3];
    let before: Vec<u32> = objects
        .iter()
        .map(|&o| m.identity_hash(o).unwrap())
        .collect();
    for (i, h) in before.iter().enumerate() {
        assert_eq!(
            before.iter().filter(|&x| x == h).count(),
            1,
            "hash of object {i} is not unique"
        );
    }
    let holder = array_of(m, &objects);
    let a = array_of(m, &[p1, b1, p3]);
    let b = array_of(m, &[b2, p2, b3]);
    let mut args = vec![b];
    args.extend(extra);
    let r = vm
        .send_named(m, s, a, selector, &args, 10_000)
        .map(|v| m.identical(v, a).unwrap());
    (r, seen(m, holder, &before))
}

/// What [`one_way`] sees when the become is done; the targets take their sources' hashes
/// when `copy_hash`.
fn becomed(copy_hash: bool) -> Vec<Seen> {
    let (p1, b1, p3, b2, p2, b3) = (0, 1, 2, 3, 4, 5);
    if copy_hash {
        vec![
            (Some(2), Some(p1)),
            (Some(102), Some(b1)),
            (Some(3), Some(p3)),
            (Some(2), Some(p1)),
            (Some(102), Some(b1)),
            (Some(3), Some(p3)),
        ]
    } else {
        vec![
            (Some(2), Some(b2)),
            (Some(102), Some(p2)),
            (Some(3), Some(b3)),
            (Some(2), Some(b2)),
            (Some(102), Some(p2)),
            (Some(3), Some(b3)),
        ]
    }
}

/// What [`one_way`] sees when nothing was becomed.
fn untouched() -> Vec<Seen> {
    [101, 1, 103, 2, 102, 3]
        .into_iter()
        .enumerate()
        .map(|(i, t)| (Some(t), Some(i)))
        .collect()
}

type OneWay = (Result<bool, String>, Vec<Seen>);

fn shown(r: (Result<bool, VmError>, Vec<Seen>)) -> OneWay {
    (r.0.map_err(|e| e.to_string()), r.1)
}

#[test]
fn a_one_way_become_without_hash_copy_leaves_each_target_its_hash() {
    let (r, seen) = agree_on_both!(true, OneWay, 0, |vm, m, s, base, k| {
        shown(one_way(
            vm,
            m,
            s,
            base,
            "elementsForwardIdentityNoCopyHashTo:",
            None,
        ))
    });
    assert_eq!(r, Ok(true), "it answers its receiver");
    assert_eq!(seen, becomed(false));
}

#[test]
fn a_one_way_become_with_a_hash_flag_copies_the_hashes_only_when_told() {
    let (r, seen) = agree_on_both!(true, OneWay, 0, |vm, m, s, base, k| {
        let flag = vm.specials().true_;
        shown(one_way(
            vm,
            m,
            s,
            base,
            "elementsForwardIdentityTo:copyHash:",
            Some(flag),
        ))
    });
    assert_eq!(r, Ok(true), "copyHash: true answers its receiver");
    assert_eq!(seen, becomed(true), "copyHash: true");
    let (r, seen) = agree_on_both!(true, OneWay, 0, |vm, m, s, base, k| {
        let flag = vm.specials().false_;
        shown(one_way(
            vm,
            m,
            s,
            base,
            "elementsForwardIdentityTo:copyHash:",
            Some(flag),
        ))
    });
    assert_eq!(r, Ok(true), "copyHash: false answers its receiver");
    assert_eq!(seen, becomed(false), "copyHash: false");
    // Primitive 72 copies the hashes, as copyHash: true does.
    let (r, seen) = agree_on_both!(true, OneWay, 0, |vm, m, s, base, k| {
        shown(one_way(vm, m, s, base, "elementsForwardIdentityTo:", None))
    });
    assert_eq!(r, Ok(true));
    assert_eq!(seen, becomed(true));
}

#[test]
fn a_hash_flag_that_is_no_boolean_fails_the_become_whole() {
    for flag in 0..3 {
        let (r, seen) = agree_on_both!(true, OneWay, flag, |vm, m, s, base, k| {
            let flag = match k {
                0 => Value::int(1),
                1 => Value::int(0),
                _ => vm.specials().nil,
            };
            shown(one_way(
                vm,
                m,
                s,
                base,
                "elementsForwardIdentityTo:copyHash:",
                Some(flag),
            ))
        });
        assert_eq!(r, Ok(false), "flag {flag}: the failure code answers nil");
        assert_eq!(seen, untouched(), "flag {flag}");
    }
}

/// `selector` sent to `{p. bad}` with `{q. r}` (`{q}` when `bad` is `None`: arrays of
/// different sizes), and `extra` after them: answers whether it answered nil (its failure
/// code), and the tag and hash of what p leads to after it.
fn refused_whole<M: ObjectMemory>(
    vm: &mut Vm,
    m: &mut M,
    s: &Symbols,
    selector: &str,
    extra: Option<Value>,
    bad: Option<Value>,
) -> (bool, Option<i64>, u32) {
    let p = tagged(m, 7, 77);
    let q = tagged(m, 8, 88);
    let r = tagged(m, 9, 99);
    let (a, b) = match bad {
        Some(bad) => (array_of(m, &[p, bad]), array_of(m, &[q, r])),
        None => (array_of(m, &[p, r]), array_of(m, &[q])),
    };
    let mut args = vec![b];
    args.extend(extra);
    let answer = vm.send_named(m, s, a, selector, &args, 10_000).unwrap();
    // p read through the array that holds it, which a flat heap's become rewrites.
    let p = m.slot(a, 0).unwrap();
    (
        answer.word() == vm.specials().nil.word(),
        m.slot(p, 1).unwrap().as_int(),
        m.identity_hash(p).unwrap(),
    )
}

#[test]
fn a_one_way_become_of_an_immediate_nil_a_context_or_unequal_arrays_changes_nothing() {
    for k in 0..10 {
        let r = agree_on_both!(true, (bool, Option<i64>, u32), k, |vm, m, s, base, k| {
            let (selector, extra) = match k / 5 {
                0 => ("elementsForwardIdentityNoCopyHashTo:", None),
                _ => (
                    "elementsForwardIdentityTo:copyHash:",
                    Some(vm.specials().true_),
                ),
            };
            let bad = match k % 5 {
                0 => Some(Value::int(5)),
                1 => Some(vm.specials().nil),
                2 => Some(vm.specials().true_),
                3 => {
                    let mc = vm.specials().method_context;
                    let slots = cowheap_vm::image::ctx::TEMPS + 16;
                    Some(m.alloc(mc, Format::Pointers, size(slots)).unwrap())
                }
                _ => None,
            };
            refused_whole(vm, m, s, selector, extra, bad)
        });
        assert_eq!(r, (true, Some(7), 77), "case {k}");
    }
}

/// What the send's context is charged.
const CONTEXT: u64 = 528;

/// A tenant of [`image`] with a private Association `p` (tag 101) and the arrays `{p}` and
/// `{B2}`: a private source onto a base target, which only a hash copy writes.
fn private_onto_base() -> (Tenant, Symbols, Value, Value, Value, Value) {
    let (heap, symbols, base) = image(true);
    let b = Base::new(heap);
    let mut t = Tenant::fork(&b);
    let p = tagged(&mut t, 101, 1001);
    let a = array_of(&mut t, &[p]);
    let arr = array_of(&mut t, &[base[1]]);
    (t, symbols, p, base[1], a, arr)
}

/// `{p} selector {B2}` (with `flag` after, if any) on a tenant prepared by `prepare`:
/// answers the send's outcome and whether p then led to B2, checking that a refusal left p
/// and B2 as they were.
fn private_onto_base_with(
    selector: &str,
    flag: Option<bool>,
    prepare: impl Fn(&mut Tenant),
) -> Result<bool, VmError> {
    let (mut t, symbols, p, b2, a, arr) = private_onto_base();
    let (hp, hb) = (t.identity_hash(p).unwrap(), t.identity_hash(b2).unwrap());
    let mut vm = Vm::new(&t).unwrap();
    let mut args = vec![arr];
    args.extend(flag.map(|f| {
        if f {
            vm.specials().true_
        } else {
            vm.specials().false_
        }
    }));
    prepare(&mut t);
    let copies = t.stats().copies;
    let r = vm.send_named(&mut t, &symbols, a, selector, &args, 10_000);
    let joined = t.identical(p, b2).unwrap();
    match &r {
        Ok(_) => {
            assert!(joined, "{selector} {flag:?}: done, but p is not B2");
            let copied = flag == Some(true);
            assert_eq!(t.stats().copies - copies, u64::from(copied), "{selector}");
            let want = if copied { hp } else { hb };
            assert_eq!(t.identity_hash(b2).unwrap(), want, "{selector} {flag:?}");
        }
        Err(_) => {
            assert!(!joined, "{selector} {flag:?}: refused, but p is B2");
            assert_eq!(t.slot(p, 1).unwrap().as_int(), Some(101));
            assert_eq!(t.identity_hash(p).unwrap(), hp);
            assert_eq!(t.identity_hash(b2).unwrap(), hb);
            assert_eq!(t.stats().copies, copies);
        }
    }
    r.map(|v| v.word() == a.word())
}

#[test]
fn only_a_hash_copy_needs_room_for_a_base_target() {
    // Room for the send's context and nothing more.
    let tight = |t: &mut Tenant| t.set_quota(Some(t.stats().private_bytes + CONTEXT));
    let r = private_onto_base_with("elementsForwardIdentityNoCopyHashTo:", None, tight);
    assert!(matches!(r, Ok(true)), "{r:?}");
    let r = private_onto_base_with("elementsForwardIdentityTo:copyHash:", Some(false), tight);
    assert!(matches!(r, Ok(true)), "{r:?}");
    let r = private_onto_base_with("elementsForwardIdentityTo:copyHash:", Some(true), tight);
    assert!(
        matches!(
            r,
            Err(VmError::Memory(
                cowheap_tenants::Error::QuotaExceeded { .. }
            ))
        ),
        "{r:?}"
    );
    let r = private_onto_base_with("elementsForwardIdentityTo:copyHash:", Some(true), |_| {});
    assert!(matches!(r, Ok(true)), "{r:?}");
}

#[test]
fn only_a_hash_copy_writes_a_base_target() {
    let read_only = |t: &mut Tenant| t.set_base_read_only(true);
    let r = private_onto_base_with("elementsForwardIdentityNoCopyHashTo:", None, read_only);
    assert!(matches!(r, Ok(true)), "{r:?}");
    let r = private_onto_base_with(
        "elementsForwardIdentityTo:copyHash:",
        Some(false),
        read_only,
    );
    assert!(matches!(r, Ok(true)), "{r:?}");
    let r = private_onto_base_with("elementsForwardIdentityTo:copyHash:", Some(true), read_only);
    assert!(
        matches!(
            r,
            Err(VmError::Memory(cowheap_tenants::Error::BaseReadOnly(_)))
        ),
        "{r:?}"
    );
}

/// A base source on a read-only base cannot become a forwarder, hash copy or not: refused
/// before the first pair, so the private pair ahead of it is not becomed either.
#[test]
fn a_read_only_base_source_refuses_the_whole_become() {
    for (selector, flag) in [
        ("elementsForwardIdentityNoCopyHashTo:", None),
        ("elementsForwardIdentityTo:copyHash:", Some(false)),
    ] {
        let (heap, symbols, base) = image(true);
        let b = Base::new(heap);
        let mut t = Tenant::fork(&b);
        let p = tagged(&mut t, 101, 1001);
        let q = tagged(&mut t, 102, 1002);
        let r = tagged(&mut t, 103, 1003);
        let a = array_of(&mut t, &[p, base[0]]);
        let arr = array_of(&mut t, &[q, r]);
        let mut vm = Vm::new(&t).unwrap();
        let mut args = vec![arr];
        args.extend(flag.map(|_| vm.specials().false_));
        t.set_base_read_only(true);
        let res = vm.send_named(&mut t, &symbols, a, selector, &args, 10_000);
        assert!(
            matches!(
                res,
                Err(VmError::Memory(cowheap_tenants::Error::BaseReadOnly(_)))
            ),
            "{selector}: {res:?}"
        );
        assert!(!t.identical(p, q).unwrap(), "{selector}: the first pair");
        assert_eq!(t.slot(p, 1).unwrap().as_int(), Some(101));
        assert_eq!(t.slot(base[0], 1).unwrap().as_int(), Some(1));
    }
}
