//! Segments of tenants, against a model: random private graphs, random roots; the segment
//! must be exactly Squeak's (computed here by a different algorithm on the model), survive a
//! file, and import into a fresh tenant as the same graph. Portable segments move between two
//! different real bases. Every truncation and bit flip of a small segment file is refused.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, synth};
use cowheap_segment::SegmentError;
use cowheap_segment::file;
use cowheap_segment::tenant::{self, OutRef, SegmentState};
use cowheap_tenants::Tenant;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A field of a model object.
#[derive(Clone, Debug)]
enum F {
    Int(i64),
    Node(usize),
    Base(u32),
}

/// A model object: pointer fields, or bytes.
#[derive(Clone, Debug)]
enum Node {
    Ptr(Vec<F>),
    Bytes(Vec<u8>),
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => prop::collection::vec(
            prop_oneof![
                (-1000i64..1000).prop_map(F::Int),
                (0usize..64).prop_map(F::Node),
                (0u32..50).prop_map(F::Base),
            ],
            0..5
        )
        .prop_map(Node::Ptr),
        1 => prop::collection::vec(any::<u8>(), 0..9).prop_map(Node::Bytes),
    ]
}

/// Builds the model in a tenant: answers the objects.
fn build(t: &mut Tenant, base: &Base, nodes: &[Node]) -> Vec<Value> {
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let n = nodes.len();
    let vs: Vec<Value> = nodes
        .iter()
        .map(|nd| match nd {
            Node::Ptr(f) => t
                .alloc(
                    class,
                    Format::Pointers,
                    ObjectSize {
                        slots: f.len(),
                        bytes: 0,
                    },
                )
                .unwrap(),
            Node::Bytes(b) => {
                let v = t
                    .alloc(
                        class,
                        Format::Bytes,
                        ObjectSize {
                            slots: 0,
                            bytes: b.len(),
                        },
                    )
                    .unwrap();
                t.set_bytes(v, 0, b).unwrap();
                v
            }
        })
        .collect();
    for (i, nd) in nodes.iter().enumerate() {
        if let Node::Ptr(f) = nd {
            for (k, x) in f.iter().enumerate() {
                let v = match *x {
                    F::Int(i) => Value::int(i),
                    F::Node(j) => vs[j % n],
                    F::Base(b) => Value::base(ObjectIndex::from_u32(b)),
                };
                t.set_slot(vs[i], k, v).unwrap();
            }
        }
    }
    vs
}

/// Squeak's definition on the model, by depth-first search: the nodes reachable from the
/// roots, less those reachable from the other roots in the graph with the roots removed.
fn model_segment(nodes: &[Node], roots: &[usize], others: &[usize]) -> HashSet<usize> {
    let n = nodes.len();
    let succ = |i: usize| -> Vec<usize> {
        match &nodes[i] {
            Node::Ptr(f) => f
                .iter()
                .filter_map(|x| match x {
                    F::Node(j) => Some(j % n),
                    _ => None,
                })
                .collect(),
            Node::Bytes(_) => Vec::new(),
        }
    };
    fn dfs(
        i: usize,
        succ: &dyn Fn(usize) -> Vec<usize>,
        banned: &HashSet<usize>,
        seen: &mut HashSet<usize>,
    ) {
        if banned.contains(&i) || !seen.insert(i) {
            return;
        }
        for j in succ(i) {
            dfs(j, succ, banned, seen);
        }
    }
    let root_set: HashSet<usize> = roots.iter().copied().collect();
    let mut outside = HashSet::new();
    for &o in others {
        dfs(o, &succ, &root_set, &mut outside);
    }
    let mut inside = HashSet::new();
    for &r in roots {
        dfs(r, &succ, &outside, &mut inside);
    }
    inside
}

/// Compares the graph from `a` in tenant `ta` with the graph from `b` in `tb`: same shapes,
/// bytes, immediates, identical base objects (by `base_map`), and a consistent one-to-one
/// map of private objects with the same identity hashes. Objects in `shared` must be the same object on both sides and are
/// not entered (they are outside the segment, shared by the original and its copy).
fn same_graph(
    ta: &Tenant,
    a: &[Value],
    tb: &Tenant,
    b: &[Value],
    base_map: &dyn Fn(Value) -> Value,
    shared: &[Value],
) {
    let mut map: HashMap<u64, Value> = HashMap::new();
    let mut back: HashMap<u64, u64> = HashMap::new();
    let mut todo: Vec<(Value, Value)> = a.iter().copied().zip(b.iter().copied()).collect();
    while let Some((x, y)) = todo.pop() {
        if !x.word().is_ref() {
            assert!(x.same_word(y), "immediates differ");
            continue;
        }
        if x.word().is_base() {
            assert!(tb.identical(base_map(x), y).unwrap(), "base objects differ");
            continue;
        }
        assert!(y.word().is_private());
        if shared.iter().any(|s| s.same_word(x)) {
            assert!(x.same_word(y), "an outside object not shared");
            continue;
        }
        if let Some(prev) = map.get(&x.word().bits()) {
            assert!(prev.same_word(y), "identity not kept");
            continue;
        }
        assert!(
            back.insert(y.word().bits(), x.word().bits()).is_none(),
            "two objects merged"
        );
        map.insert(x.word().bits(), y);
        assert_eq!(ta.format(x).unwrap(), tb.format(y).unwrap());
        assert_eq!(ta.size(x).unwrap(), tb.size(y).unwrap());
        assert_eq!(ta.bytes(x).unwrap(), tb.bytes(y).unwrap());
        // Imported objects keep their identity hash (the segment file carries 32 bits).
        assert_eq!(
            ta.identity_hash(x).unwrap(),
            tb.identity_hash(y).unwrap(),
            "identity hash not kept"
        );
        todo.push((ta.class_of(x).unwrap(), tb.class_of(y).unwrap()));
        for i in 0..ta.size(x).unwrap().slots {
            todo.push((ta.slot(x, i).unwrap(), tb.slot(y, i).unwrap()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn extract_write_read_import_matches_the_model(
        nodes in prop::collection::vec(node(), 1..40),
        roots in prop::collection::vec(0usize..64, 1..4),
        others in prop::collection::vec(0usize..64, 0..4),
    ) {
        let base = Base::new(synth::image(200, 7));
        let mut t = Tenant::fork(&base);
        let vs = build(&mut t, &base, &nodes);
        let n = nodes.len();
        let mut roots: Vec<usize> = roots.iter().map(|r| r % n).collect();
        roots.dedup();
        let roots: Vec<usize> = roots.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let others: Vec<usize> = others.iter().map(|o| o % n).filter(|o| !roots.contains(o)).collect();
        for (k, &o) in others.iter().enumerate() {
            t.set_root(&format!("other{k}"), vs[o]).unwrap();
        }
        let rv: Vec<Value> = roots.iter().map(|&r| vs[r]).collect();
        let mut seg = tenant::extract(&t, &rv, &tenant::tenant_roots(&t)).unwrap();
        prop_assert_eq!(seg.state, SegmentState::ActiveCopy);
        // Exactly the model's segment.
        let want = model_segment(&nodes, &roots, &others);
        let got: HashSet<usize> = seg
            .members
            .iter()
            .map(|m| vs.iter().position(|v| v.same_word(*m)).unwrap())
            .collect();
        prop_assert_eq!(&got, &want);
        // Through a file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cowseg");
        file::write(&mut seg, &path).unwrap();
        prop_assert_eq!(seg.state, SegmentState::OnFile);
        let mut back = file::read(&path, Some(base.fingerprint())).unwrap();
        prop_assert_eq!(back.state, SegmentState::Inactive);
        prop_assert_eq!(&back.objects, &seg.objects);
        prop_assert_eq!(&back.out, &seg.out);
        // Into a fresh tenant of the same base; outside objects are the original tenant's,
        // so a fresh tenant binds them to nil when asked to accept that.
        let mut t2 = Tenant::fork(&base);
        let outside = seg.outside.len();
        let r = back.import_into(&mut t2, &[], true);
        let imported = r.unwrap();
        prop_assert_eq!(imported.unbound.len(), outside);
        prop_assert_eq!(back.state, SegmentState::Imported);
        if outside == 0 {
            same_graph(&t, &rv, &t2, &imported.roots, &|v| v, &[]);
        }
        // Into the same tenant, with its outside objects: the same graph.
        let mut again = file::read(&path, Some(base.fingerprint())).unwrap();
        let copy = again.import_into(&mut t, &seg.outside, false).unwrap();
        same_graph(&t, &rv, &t, &copy.roots, &|v| v, &seg.outside);
        // The copy's members are new objects, none of the originals.
        for m in &copy.members {
            prop_assert!(!seg.members.iter().any(|o| o.same_word(*m)));
        }
    }
}

#[test]
fn the_state_machine_has_only_its_transitions() {
    use SegmentState::*;
    let all = [ActiveCopy, Active, OnFile, Inactive, Imported];
    let allowed = [
        (ActiveCopy, OnFile),
        (ActiveCopy, Active),
        (Active, OnFile),
        (ActiveCopy, Imported),
        (OnFile, Inactive),
        (OnFile, Imported),
        (Inactive, Imported),
    ];
    for from in all {
        for to in all {
            let mut s = from;
            let r = s.advance(to);
            assert_eq!(
                r.is_ok(),
                allowed.contains(&(from, to)),
                "{from:?} -> {to:?}"
            );
            assert_eq!(s, if r.is_ok() { to } else { from });
        }
    }
}

fn small_segment() -> (Arc<Base>, Vec<u8>) {
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let nodes = vec![
        Node::Ptr(vec![F::Node(1), F::Int(5), F::Base(3)]),
        Node::Bytes(b"abc".to_vec()),
    ];
    let vs = build(&mut t, &base, &nodes);
    let seg = tenant::extract(&t, &vs[..1], &[]).unwrap();
    assert_eq!(seg.objects.len(), 2);
    let bytes = file::to_bytes(&seg).unwrap();
    (base, bytes)
}

#[test]
fn every_truncation_and_bit_flip_of_a_small_segment_file_is_refused() {
    let (base, bytes) = small_segment();
    let fp = Some(base.fingerprint());
    assert!(file::from_bytes(&bytes, fp).is_ok());
    for cut in 0..bytes.len() {
        assert!(file::from_bytes(&bytes[..cut], fp).is_err(), "cut at {cut}");
    }
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            match file::from_bytes(&b, fp) {
                Err(SegmentError::BadFile(_) | SegmentError::Checksum) => {}
                other => panic!("bit {bit} of byte {at}: {:?}", other.map(|_| ())),
            }
        }
    }
    // Another base's segment is refused unless portable.
    let other = Base::new(synth::image(100, 4));
    assert!(matches!(
        file::from_bytes(&bytes, Some(other.fingerprint())),
        Err(SegmentError::WrongBase { .. })
    ));
}

#[test]
fn a_write_that_fails_leaves_no_file_and_the_state_unchanged() {
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let vs = build(&mut t, &base, &[Node::Bytes(vec![1, 2])]);
    let mut seg = tenant::extract(&t, &vs, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("s.cowseg");
    assert!(file::write(&mut seg, &path).is_err());
    assert_eq!(seg.state, SegmentState::ActiveCopy);
    assert!(!path.exists());
    // Written once, it cannot be written again from OnFile.
    let path = dir.path().join("s.cowseg");
    file::write(&mut seg, &path).unwrap();
    assert!(matches!(
        file::write(&mut seg, &path),
        Err(SegmentError::State(_))
    ));
}

#[test]
fn base_roots_are_refused_as_segment_roots() {
    let base = Base::new(synth::image(100, 3));
    let t = Tenant::fork(&base);
    let nil = base.heap().nil();
    assert!(matches!(
        tenant::extract(&t, &[nil], &[]),
        Err(SegmentError::NotPrivate(_))
    ));
}

#[test]
fn a_portable_segment_moves_from_mini_to_scratch() {
    let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let scratch = Base::new(
        cowheap_squeak::import(image("Scratch-1.4.0.6.image"))
            .unwrap()
            .heap,
    );
    let names = cowheap_segment::bind::BaseNames::of(mini.heap()).unwrap();
    let point = names.global("Point").unwrap();
    let array = names.global("Array").unwrap();
    let size = names.symbol("size").unwrap();
    let mut t = Tenant::fork(&mini);
    // #(3@4 #size nil true) with a self-reference: (p, #size, nil, true, the array)
    let p = t
        .alloc(point, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    t.set_slot(p, 0, Value::int(3)).unwrap();
    t.set_slot(p, 1, Value::int(4)).unwrap();
    let a = t
        .alloc(array, Format::Pointers, ObjectSize { slots: 5, bytes: 0 })
        .unwrap();
    let tru = t.base().heap().root("true").unwrap();
    for (k, v) in [p, size, mini.heap().nil(), tru, a].into_iter().enumerate() {
        t.set_slot(a, k, v).unwrap();
    }
    let mut seg = tenant::extract(&t, &[a], &[]).unwrap();
    assert_eq!(seg.objects.len(), 2);
    assert!(!seg.is_portable());
    seg.make_portable(mini.heap()).unwrap();
    assert!(seg.is_portable());
    assert!(seg.out.iter().any(|o| matches!(o, OutRef::Class { name, inst_vars } if name == "Point" && inst_vars == &["x", "y"])));
    assert!(seg.out.contains(&OutRef::Symbol("size".into())));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cowseg");
    file::write(&mut seg, &path).unwrap();
    // A portable segment opens against another base.
    let mut back = file::read(&path, Some(scratch.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(&scratch);
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    let s_names = cowheap_segment::bind::BaseNames::of(scratch.heap()).unwrap();
    let a2 = imported.roots[0];
    assert!(
        t2.identical(t2.class_of(a2).unwrap(), s_names.global("Array").unwrap())
            .unwrap()
    );
    let p2 = t2.slot(a2, 0).unwrap();
    assert!(
        t2.identical(t2.class_of(p2).unwrap(), s_names.global("Point").unwrap())
            .unwrap()
    );
    assert_eq!(t2.slot(p2, 0).unwrap().as_int(), Some(3));
    assert!(
        t2.identical(t2.slot(a2, 1).unwrap(), s_names.symbol("size").unwrap())
            .unwrap()
    );
    assert!(
        t2.identical(t2.slot(a2, 2).unwrap(), scratch.heap().nil())
            .unwrap()
    );
    assert!(
        t2.identical(
            t2.slot(a2, 3).unwrap(),
            scratch.heap().root("true").unwrap()
        )
        .unwrap()
    );
    assert!(t2.identical(t2.slot(a2, 4).unwrap(), a2).unwrap());
    // A class whose shape differs does not bind: refused, named.
    let mut wrong = file::read(&path, None).unwrap();
    for o in &mut wrong.out {
        if let OutRef::Class { inst_vars, .. } = o {
            inst_vars.push("z".into());
        }
    }
    match wrong.import_into(&mut Tenant::fork(&scratch), &[], false) {
        Err(SegmentError::Unbound(names)) => assert!(names.iter().any(|n| n.contains("Point"))),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_tenant_segment_writes_as_v3_words_that_read_back() {
    use cowheap_segment::export;
    use cowheap_segment::v3::{ByteOrder, ClassRef, V3Segment};
    let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let heap = mini.heap();
    let names = cowheap_segment::bind::BaseNames::of(heap).unwrap();
    let g = |n: &str| names.global(n).unwrap();
    let mut t = Tenant::fork(&mini);
    let p = t
        .alloc(
            g("Point"),
            Format::Pointers,
            ObjectSize { slots: 2, bytes: 0 },
        )
        .unwrap();
    t.set_slot(p, 0, Value::int(3)).unwrap();
    t.set_slot(p, 1, Value::int(-4)).unwrap();
    let s = t
        .alloc(
            g("String"),
            Format::Bytes,
            ObjectSize { slots: 0, bytes: 5 },
        )
        .unwrap();
    t.set_bytes(s, 0, b"hello").unwrap();
    let f = t
        .alloc(g("Float"), Format::Words, ObjectSize { slots: 0, bytes: 8 })
        .unwrap();
    t.set_bytes(f, 0, &1.5f64.to_le_bytes()).unwrap();
    let big = t
        .alloc(
            g("Array"),
            Format::Pointers,
            ObjectSize {
                slots: 70,
                bytes: 0,
            },
        )
        .unwrap();
    let a = t
        .alloc(
            g("Array"),
            Format::Pointers,
            ObjectSize { slots: 6, bytes: 0 },
        )
        .unwrap();
    for (k, v) in [p, s, f, big, Value::int(7), names.symbol("size").unwrap()]
        .into_iter()
        .enumerate()
    {
        t.set_slot(a, k, v).unwrap();
    }
    t.set_slot(big, 69, a).unwrap();
    let seg = tenant::extract(&t, &[a], &[]).unwrap();
    assert_eq!(seg.objects.len(), 5);
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let x = export::to_v3(&seg, heap, order, 6502, b's').unwrap();
        let bytes = x.segment.to_bytes().unwrap();
        let back = V3Segment::parse(&bytes, x.out.len()).unwrap();
        assert_eq!(back, x.segment);
        assert_eq!(back.order, order);
        assert_eq!(back.version_word, 0x7300_1966);
        let st = back.stats();
        assert_eq!((st.objects, st.roots), (6, 1));
        assert_eq!(back.objects[0].class, ClassRef::Out(1));
        // Every member's pointers name what the tenant's slots hold.
        for (i, o) in back.objects.iter().enumerate().skip(1) {
            let m = seg.members[i - 1];
            for (k, &ptr) in o.pointers.iter().enumerate() {
                let v = export::value_of(ptr, &seg.members, &x.out, &seg.outside).unwrap();
                assert!(
                    t.identical(v, t.slot(m, k).unwrap()).unwrap(),
                    "member {i} slot {k}"
                );
            }
            assert_eq!(o.hash, (t.identity_hash(m).unwrap() & 0xFFF) as u16);
            if t.format(m).unwrap() == Format::Bytes {
                assert_eq!(o.bytes(order), t.bytes(m).unwrap());
                assert_eq!(o.format, 8 + 3);
            }
        }
        // The Float: most significant word first, as 6502 keeps it.
        let fo = &back.objects[1 + seg.members.iter().position(|m| m.same_word(f)).unwrap()];
        let bits = 1.5f64.to_bits();
        assert_eq!(fo.raw, vec![(bits >> 32) as u32, bits as u32]);
        // The 70-slot Array needs a three-word header; small compact-class objects one word.
        let bo = &back.objects[1 + seg.members.iter().position(|m| m.same_word(big)).unwrap()];
        assert_eq!(bo.header, cowheap_segment::v3::HeaderKind::Three);
        let ao = &back.objects[1 + seg.members.iter().position(|m| m.same_word(a)).unwrap()];
        assert!(matches!(ao.class, ClassRef::Compact(_)));
    }
    // What V3 cannot hold is refused.
    let c = t
        .alloc(
            g("Array"),
            Format::Pointers,
            ObjectSize { slots: 1, bytes: 0 },
        )
        .unwrap();
    t.set_slot(c, 0, Value::char('x')).unwrap();
    let seg = tenant::extract(&t, &[c], &[]).unwrap();
    assert!(matches!(
        export::to_v3(&seg, heap, ByteOrder::Little, 6502, b's'),
        Err(SegmentError::Unrepresentable(_))
    ));
}

#[test]
fn info_reads_a_cowheap_segment_file() {
    use cowheap_segment::info::{Info, info};
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let vs = build(
        &mut t,
        &base,
        &[
            Node::Ptr(vec![F::Node(1), F::Base(2)]),
            Node::Bytes(b"xy".to_vec()),
        ],
    );
    let mut seg = tenant::extract(&t, &vs[..1], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.cowseg");
    file::write(&mut seg, &path).unwrap();
    match info(&path).unwrap() {
        Info::Cowheap(r) => {
            assert_eq!(
                (r.objects, r.roots, r.slots, r.bytes, r.out_pointers),
                (2, 1, 2, 2, 2)
            );
            assert!(!r.portable);
            assert_eq!(r.fingerprint, base.fingerprint());
            assert!(r.to_string().contains("objects:         2 (1 roots"));
        }
        other => panic!("{other:?}"),
    }
}

/// The real bases, imported once for the property test.
fn mini_and_scratch() -> &'static (Arc<Base>, Arc<Base>) {
    static B: std::sync::OnceLock<(Arc<Base>, Arc<Base>)> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        (
            Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap),
            Base::new(
                cowheap_squeak::import(image("Scratch-1.4.0.6.image"))
                    .unwrap()
                    .heap,
            ),
        )
    })
}

/// A field of an object in the portable model: what both bases have by name.
#[derive(Clone, Debug)]
enum P {
    Int(i32),
    Node(usize),
    Nil,
    True,
    Symbol(&'static str),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random graphs of Arrays, Points and Strings in a tenant of `mini.image`, exported
    /// portably and imported into a tenant of the Scratch image (another base with the same
    /// classes): the imported graph equals the original object by object, base objects
    /// translated by name.
    #[test]
    fn portable_segments_move_between_bases_object_by_object(
        nodes in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(prop_oneof![
                    (-1000i32..1000).prop_map(P::Int),
                    (0usize..32).prop_map(P::Node),
                    Just(P::Nil),
                    Just(P::True),
                    prop::sample::select(vec!["size", "at:", "printString", "value"]).prop_map(P::Symbol),
                ], 0..4).prop_map(Some),
                Just(None),
            ],
            1..20,
        )
    ) {
        let (mini, scratch) = mini_and_scratch();
        let mn = cowheap_segment::bind::BaseNames::of(mini.heap()).unwrap();
        let sn = cowheap_segment::bind::BaseNames::of(scratch.heap()).unwrap();
        let mut t = Tenant::fork(mini);
        let n = nodes.len();
        let vs: Vec<Value> = nodes
            .iter()
            .map(|nd| match nd {
                Some(f) => t
                    .alloc(mn.global("Array").unwrap(), Format::Pointers, ObjectSize { slots: f.len(), bytes: 0 })
                    .unwrap(),
                None => {
                    let s = t
                        .alloc(mn.global("String").unwrap(), Format::Bytes, ObjectSize { slots: 0, bytes: 3 })
                        .unwrap();
                    t.set_bytes(s, 0, b"abc").unwrap();
                    s
                }
            })
            .collect();
        for (i, nd) in nodes.iter().enumerate() {
            if let Some(f) = nd {
                for (k, x) in f.iter().enumerate() {
                    let v = match *x {
                        P::Int(i) => Value::int(i.into()),
                        P::Node(j) => vs[j % n],
                        P::Nil => mini.heap().nil(),
                        P::True => mini.heap().root("true").unwrap(),
                        P::Symbol(s) => mn.symbol(s).unwrap(),
                    };
                    t.set_slot(vs[i], k, v).unwrap();
                }
            }
        }
        let mut seg = tenant::extract(&t, &vs[..1], &[]).unwrap();
        seg.make_portable(mini.heap()).unwrap();
        prop_assert!(seg.is_portable());
        let bytes = file::to_bytes(&seg).unwrap();
        let mut back = file::from_bytes(&bytes, Some(scratch.fingerprint())).unwrap();
        let mut t2 = Tenant::fork(scratch);
        let imported = back.import_into(&mut t2, &[], false).unwrap();
        // Base objects translate by name: the portable name in mini resolved in Scratch.
        let translate = |v: Value| -> Value {
            let x = v.word().as_base().unwrap();
            let name = mn.portable(mini.heap(), x).expect("a named base object");
            sn.resolve(scratch.heap(), &name).expect("bound in Scratch")
        };
        same_graph(&t, &vs[..1], &t2, &imported.roots, &translate, &[]);
    }
}

#[test]
fn import_takes_cowheap_segments_and_cowheap_image_bases() {
    use cowheap_segment::info::{ImportOutcome, import};
    let dir = tempfile::tempdir().unwrap();
    // mini as a cowheap image file, and a segment of a tenant of it.
    let heap = cowheap_squeak::import(image("mini.image")).unwrap().heap;
    let base_file = dir.path().join("mini.cowheap");
    heap.save(&base_file).unwrap();
    let base = Base::new(heap);
    let names = cowheap_segment::bind::BaseNames::of(base.heap()).unwrap();
    let mut t = Tenant::fork(&base);
    let a = t
        .alloc(
            names.global("Array").unwrap(),
            Format::Pointers,
            ObjectSize { slots: 2, bytes: 0 },
        )
        .unwrap();
    t.set_slot(a, 0, names.symbol("size").unwrap()).unwrap();
    let mut seg = tenant::extract(&t, &[a], &[]).unwrap();
    let seg_file = dir.path().join("a.cowseg");
    file::write(&mut seg, &seg_file).unwrap();
    match import(&seg_file, &base_file).unwrap() {
        ImportOutcome::Cowheap {
            objects,
            roots,
            bound,
            unbound,
            ..
        } => {
            assert_eq!((objects, roots, bound), (1, 1, 3));
            assert!(unbound.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The same base as a Squeak image has the same fingerprint: accepted too.
    assert!(import(&seg_file, &image("mini.image")).is_ok());
    // Another base refuses a segment bound to mini.
    assert!(matches!(
        import(&seg_file, &image("bootstrapped.image")),
        Err(SegmentError::WrongBase { .. })
    ));
    // A project imports the same into the Squeak image and its cowheap image file.
    let project = image("segments/JustPaintedCar.013.pr");
    let a = import(&project, &image("mini.image")).unwrap();
    let b = import(&project, &base_file).unwrap();
    assert_eq!(a, b);
    assert!(a.to_string().contains("materialised of 269"));
}

#[test]
fn diverted_copies_are_other_roots_and_named_by_their_base_object() {
    let base = Base::new(synth::image(200, 7));
    let g = base.heap().root("Smalltalk").unwrap();
    let gx = g.word().as_base().unwrap();
    let mut t = Tenant::fork(&base);
    // r -> q, r -> p, r -> the copy of g; g's copy -> p -> q; s only from r.
    let vs = build(
        &mut t,
        &base,
        &[
            Node::Ptr(vec![F::Node(1), F::Node(2), F::Node(3), F::Int(0)]),
            Node::Ptr(vec![F::Node(2)]),
            Node::Bytes(b"q".to_vec()),
            Node::Bytes(b"s".to_vec()),
        ],
    );
    let (r, p, q, s) = (vs[0], vs[1], vs[2], vs[3]);
    // Writing a base object diverts it: its private copy now holds p.
    t.set_slot(g, 0, p).unwrap();
    let copies: Vec<(Value, Value)> = t.copies().collect();
    assert_eq!(copies.len(), 1);
    let copy = copies[0].1;
    assert!(copy.word().is_private());
    t.set_slot(r, 3, copy).unwrap();
    let seg = tenant::extract(&t, &[r], &[]).unwrap();
    // p and q are reachable from the base through g's copy: outside. s is only r's.
    let members: Vec<Value> = seg.members.clone();
    assert_eq!(members.len(), 2);
    assert!(members.iter().any(|m| m.same_word(r)));
    assert!(members.iter().any(|m| m.same_word(s)));
    assert!(!members.iter().any(|m| m.same_word(p) || m.same_word(q)));
    // The copy is named by its base object; p and q are outside objects of the tenant.
    assert!(seg.out.contains(&OutRef::Base(gx)));
    assert_eq!(seg.outside.len(), 2);
    // Without the diversion, p and q would be members.
    let mut t2 = Tenant::fork(&base);
    let vs2 = build(
        &mut t2,
        &base,
        &[
            Node::Ptr(vec![F::Node(1), F::Node(2), F::Node(3), F::Int(0)]),
            Node::Ptr(vec![F::Node(2)]),
            Node::Bytes(b"q".to_vec()),
            Node::Bytes(b"s".to_vec()),
        ],
    );
    assert_eq!(
        tenant::extract(&t2, &vs2[..1], &[]).unwrap().members.len(),
        4
    );
    // Imported back into the same tenant, the copy's out-pointer leads to g's copy.
    let mut seg = seg;
    let outside = seg.outside.clone();
    let imported = seg.import_into(&mut t, &outside, false).unwrap();
    let r2 = imported.roots[0];
    assert!(t.identical(t.slot(r2, 3).unwrap(), copy).unwrap());
    assert!(t.identical(t.slot(r2, 3).unwrap(), g).unwrap());
    assert!(t.identical(t.slot(r2, 0).unwrap(), p).unwrap());
    assert!(t.identical(t.slot(r2, 1).unwrap(), q).unwrap());
    // A pinned handle is not enumerable: the tenant reports its count only.
    let _h = t.pin(s).unwrap();
    assert_eq!(t.pinned_count(), 1);
}

#[test]
fn pinned_objects_are_other_roots() {
    let base = Base::new(synth::image(200, 7));
    let mut t = Tenant::fork(&base);
    // r -> p -> q, r -> s.
    let vs = build(
        &mut t,
        &base,
        &[
            Node::Ptr(vec![F::Node(1), F::Node(3)]),
            Node::Ptr(vec![F::Node(2)]),
            Node::Bytes(b"q".to_vec()),
            Node::Bytes(b"s".to_vec()),
        ],
    );
    let (r, p, q, s) = (vs[0], vs[1], vs[2], vs[3]);
    assert_eq!(
        tenant::extract(&t, &[r], &tenant::tenant_roots(&t))
            .unwrap()
            .members
            .len(),
        4
    );
    // A handle on p keeps p and what it reaches outside the segment.
    let h = t.pin(p).unwrap();
    let others = tenant::tenant_roots(&t);
    assert!(others.iter().any(|o| o.same_word(p)));
    let seg = tenant::extract(&t, &[r], &others).unwrap();
    assert_eq!(seg.members.len(), 2);
    assert!(seg.members.iter().any(|m| m.same_word(s)));
    assert!(!seg.members.iter().any(|m| m.same_word(p) || m.same_word(q)));
    t.unpin(h).unwrap();
    assert_eq!(
        tenant::extract(&t, &[r], &tenant::tenant_roots(&t))
            .unwrap()
            .members
            .len(),
        4
    );
}

#[test]
fn members_whose_classes_do_not_hold_are_refused_before_anything_is_made() {
    use cowheap_heap::Word;
    use cowheap_segment::tenant::SRef;
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let nodes = vec![
        Node::Ptr(vec![F::Node(1), F::Int(5), F::Base(3)]),
        Node::Ptr(vec![F::Node(2), F::Int(6)]),
        Node::Bytes(b"abc".to_vec()),
    ];
    let vs = build(&mut t, &base, &nodes);
    let seg = tenant::extract(&t, &vs[..1], &[]).unwrap();
    assert_eq!(seg.objects.len(), 3);
    let fp = Some(base.fingerprint());
    // The segment as extracted reads back and imports.
    let good = file::to_bytes(&seg).unwrap();
    let mut fresh = Tenant::fork(&base);
    file::from_bytes(&good, fp)
        .unwrap()
        .import_into(&mut fresh, &[], false)
        .unwrap();
    assert_eq!(fresh.private_objects().count(), 3);

    let immediate = {
        let mut s = seg.clone();
        s.objects[1].class = SRef::Imm(Word::int(7).unwrap());
        s
    };
    // Member 2's class is member 1 and member 1's is member 2; member 0, whose class is
    // outside, would be made first.
    let cycle = {
        let mut s = seg.clone();
        assert!(matches!(s.objects[0].class, SRef::Out(_)));
        s.objects[1].class = SRef::Obj(2);
        s.objects[2].class = SRef::Obj(1);
        s
    };
    let stray = {
        let mut s = seg.clone();
        s.objects[1].slots[0] = SRef::Out(99);
        s
    };
    for (what, in_file, bad) in [
        (
            "an immediate as a class",
            "an immediate as a class",
            immediate,
        ),
        (
            "members whose classes form a cycle",
            "members whose classes form a cycle",
            cycle,
        ),
        (
            "a reference to no member or out-pointer",
            "a reference to no out-pointer",
            stray,
        ),
    ] {
        // A file holding it is refused when read.
        let bytes = file::to_bytes(&bad).unwrap();
        match file::from_bytes(&bytes, fp) {
            Err(SegmentError::BadFile(w)) => assert_eq!(w, in_file),
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
        // Imported straight, it is refused with nothing made in the tenant.
        let mut into = Tenant::fork(&base);
        let mut bad = bad.clone();
        bad.state = SegmentState::Inactive;
        match bad.import_into(&mut into, &[], false) {
            Err(SegmentError::BadSegment(w)) => assert_eq!(w, what),
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
        assert_eq!(into.private_objects().count(), 0, "{what}");
        assert_eq!(into.memory_bytes(), Tenant::fork(&base).memory_bytes());
    }
}

/// An import the tenant's quota cannot hold whole is refused before any member is made
/// (before, the members that fit were made and left behind).
#[test]
fn an_import_past_the_quota_makes_nothing() {
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let nodes = vec![
        Node::Ptr(vec![F::Node(1), F::Int(5)]),
        Node::Ptr(vec![F::Node(2), F::Int(6)]),
        Node::Bytes(vec![7; 64]),
    ];
    let vs = build(&mut t, &base, &nodes);
    let seg = tenant::extract(&t, &vs[..1], &[]).unwrap();
    let fp = Some(base.fingerprint());
    let bytes = file::to_bytes(&seg).unwrap();
    // Room for what one fresh tenant takes to import it: measured, then one byte short.
    let mut fresh = Tenant::fork(&base);
    file::from_bytes(&bytes, fp)
        .unwrap()
        .import_into(&mut fresh, &[], false)
        .unwrap();
    let needed = fresh.stats().private_bytes;
    let mut short = Tenant::fork(&base);
    short.set_quota(Some(needed - 1));
    match file::from_bytes(&bytes, fp)
        .unwrap()
        .import_into(&mut short, &[], false)
    {
        Err(SegmentError::Tenant(cowheap_tenants::Error::QuotaExceeded { .. })) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(short.private_objects().count(), 0);
    assert_eq!(short.stats().private_bytes, 0);
    // With the room, it goes in.
    short.set_quota(Some(needed));
    file::from_bytes(&bytes, fp)
        .unwrap()
        .import_into(&mut short, &[], false)
        .unwrap();
    assert_eq!(short.private_objects().count(), 3);
}

/// A segment whose members' class is an object with no slots (a synthetic base has such
/// classes) and which points at an object outside it imports into another tenant: the
/// rehash that an outside object calls for finds no hashed collection in a class it
/// cannot climb, where it used to fail the import reading the class's superclass.
#[test]
fn members_of_a_class_with_no_slots_import_beside_outside_objects() {
    let base = Base::new(synth::image(300, 1));
    let class = Value::base(ObjectIndex::new(1).unwrap());
    assert_eq!(Tenant::fork(&base).size(class).unwrap().slots, 0);
    let own = |t: &mut Tenant| {
        let o = t
            .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
            .unwrap();
        t.set_root("outside", o).unwrap();
        o
    };
    let mut a = Tenant::fork(&base);
    let outside = own(&mut a);
    let root = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
        .unwrap();
    a.set_slot(root, 0, outside).unwrap();
    a.set_slot(root, 1, Value::int(5)).unwrap();
    a.set_root("seg", root).unwrap();
    let mut seg = tenant::extract(&a, &[root], &[outside]).unwrap();
    assert!(seg.out.iter().any(|o| matches!(o, OutRef::Outside(_))));

    let mut b = Tenant::fork(&base);
    let there = own(&mut b);
    let imported = seg.import_into(&mut b, &[there], false).unwrap();
    let r = imported.roots[0];
    assert!(b.identical(b.slot(r, 0).unwrap(), there).unwrap());
    assert_eq!(b.slot(r, 1).unwrap().as_int(), Some(5));
    assert_eq!(imported.rehash.collections, 0);
}
