//! A tenant's reads and writes against a flat heap. A model-based test drives three tenants
//! of one base, each beside a flat model (every object a body, a one-way become an alias),
//! through random sequences of `set_slot` (through the tenant and through a
//! `TenantWriter`, with a `TenantReader` taken before the write and read after it),
//! `set_slots`, `set_bytes`, `set_class`, `set_identity_hash`, `alloc_with` of every format,
//! both becomes, collections, swap-outs read through a segment reader's view and faulted in
//! by a handler, foreign references, quotas and a read-only base, and compares every read
//! (through the tenant and a reader, the errors of indices past the end included) with the
//! model. Targeted tests check that every base object reads and refuses writes alike
//! through its base reference, its copy and a new object made like it, in place and out of
//! line, at the edges (the last slot, the slot count, indices of 2^32 and more, bytes of
//! every length), and that a segment view another tenant made is not read as this one's.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, Word, synth};
use cowheap_tenants::stubs::{FaultHandler, SegmentReader, ViewMember};
use cowheap_tenants::{Error, Tenant, TenantConfig};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A value in the model: an immediate, or an object by its identity.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OVal {
    Imm(Word),
    Ref(usize),
}

/// An object's body in the model: what a flat heap holds for it.
#[derive(Clone, Debug, PartialEq)]
struct Body {
    class: usize,
    format: Format,
    hash: u32,
    slots: Vec<OVal>,
    bytes: Vec<u8>,
}

/// A flat heap: a deep copy of the base made at fork, given the tenant's operations.
#[derive(Debug)]
struct Model {
    bodies: Vec<Body>,
    /// Identity -> identity it forwards to (one-way become).
    alias: Vec<Option<usize>>,
    /// A reference the tenant knows for each identity.
    rep: HashMap<usize, Value>,
    /// Every reference handed out, with its identity.
    held: Vec<(Value, usize)>,
}

impl Model {
    fn res(&self, mut id: usize) -> usize {
        while let Some(n) = self.alias[id] {
            id = n;
        }
        id
    }
    fn oval(&self, v: OVal) -> OVal {
        match v {
            OVal::Ref(r) => OVal::Ref(self.res(r)),
            i => i,
        }
    }
}

/// Three tenants of one base, each with its model.
struct World {
    base: Arc<Base>,
    ts: Vec<Tenant>,
    ms: Vec<Model>,
}

/// A base slot's word in the model.
fn to_oval(w: Word) -> OVal {
    match w.as_base() {
        Some(x) => OVal::Ref(x.get()),
        None => OVal::Imm(w),
    }
}

/// The model of a tenant just forked from `base`.
fn fresh_model(base: &Base) -> Model {
    let h = base.heap();
    let mut bodies = Vec::new();
    let mut rep = HashMap::new();
    let mut held = Vec::new();
    for x in h.indices() {
        let o = h.object(x).unwrap();
        bodies.push(Body {
            class: o.class.as_base().unwrap().get(),
            format: o.format,
            hash: o.hash,
            slots: o.slots.iter().map(|&w| to_oval(w)).collect(),
            bytes: o.bytes.to_vec(),
        });
        rep.insert(x.get(), Value::base(x));
        held.push((Value::base(x), x.get()));
    }
    Model {
        alias: vec![None; bodies.len()],
        bodies,
        rep,
        held,
    }
}

/// Everything the tenant shows for the model's identities, as text.
fn dump(t: &Tenant, m: &Model) -> Vec<String> {
    let mut out = vec![format!(
        "bytes {} diverted {} objects {} stubs {}",
        t.stats().private_bytes,
        t.diverted(),
        t.stats().private_objects,
        t.stubs_of(77)
    )];
    let mut ids: Vec<_> = m.rep.keys().copied().collect();
    ids.sort();
    for id in ids {
        let v = m.rep[&id];
        let w = |v: Value| t.identity_word(v).map_err(|e| e.to_string());
        let h = t.header(v).map(|h| (w(h.class), h.format, h.size));
        let slots: Vec<_> = (0..t.size(v).map(|s| s.slots).unwrap_or(0))
            .map(|i| t.slot(v, i).map(w))
            .collect();
        out.push(format!(
            "{id}: {:?} {h:?} {:?} {:?} {slots:?}",
            w(v),
            t.identity_hash(v),
            t.bytes(v)
        ));
    }
    out
}

/// Checks that `cv` is `ov` in tenant `t`.
fn same(t: &Tenant, m: &Model, cv: Value, ov: OVal, what: &str) {
    match m.oval(ov) {
        OVal::Imm(w) => assert_eq!(cv.word(), w, "{what}"),
        OVal::Ref(r) => assert!(
            t.identical(cv, m.rep[&r]).unwrap(),
            "{what}: {cv:?} should be {r} ({:?})",
            m.rep[&r]
        ),
    }
}

/// Compares every identity of the model with the tenant, through the tenant and a reader.
fn check(t: &Tenant, m: &Model) {
    let mut ids: Vec<_> = m.rep.keys().copied().collect();
    ids.sort();
    for &(v, id) in &m.held {
        let id = m.res(id);
        let b = &m.bodies[id];
        let what = format!("{v:?} ({id})");
        let r = t.reader();
        assert!(t.identical(v, m.rep[&id]).unwrap(), "{what}");
        for (i, ov) in b.slots.iter().enumerate() {
            let a = r.slot(v, i).unwrap();
            same(t, m, a, *ov, &format!("reader slot {i} of {what}"));
            let a = t.slot(v, i).unwrap();
            same(t, m, a, *ov, &format!("slot {i} of {what}"));
            if let Some(q) = r.try_slot(v, i) {
                same(t, m, q, *ov, &format!("try slot {i} of {what}"));
            }
        }
        let n = b.slots.len();
        for i in [n, n + 1, 1 << 32] {
            let want: Error = b.format.slot_error(i, n).into();
            assert_eq!(t.slot(v, i).unwrap_err(), want, "slot {i} of {what}");
            assert_eq!(r.slot(v, i).unwrap_err(), want, "reader slot {i} of {what}");
        }
        let size = ObjectSize {
            slots: n,
            bytes: b.bytes.len(),
        };
        assert_eq!(t.size(v).unwrap(), size, "{what}");
        assert_eq!(r.size(v).unwrap(), size, "{what}");
        assert_eq!(t.format(v).unwrap(), b.format, "{what}");
        assert_eq!(r.format(v).unwrap(), b.format, "{what}");
        assert_eq!(t.identity_hash(v).unwrap(), b.hash, "{what}");
        assert_eq!(r.identity_hash(v).unwrap(), b.hash, "{what}");
        assert_eq!(t.bytes(v).unwrap(), &b.bytes[..], "{what}");
        assert_eq!(r.bytes(v).unwrap(), &b.bytes[..], "{what}");
        let c = OVal::Ref(b.class);
        same(t, m, t.class_of(v).unwrap(), c, &format!("class of {what}"));
        same(
            t,
            m,
            r.class_of(v).unwrap(),
            c,
            &format!("reader class of {what}"),
        );
        for h in [t.header(v).unwrap(), r.header(v).unwrap()] {
            same(t, m, h.class, c, &format!("header class of {what}"));
            assert_eq!((h.format, h.size), (b.format, size), "{what}");
        }
    }
}

/// A value to store: a small integer or a held reference.
#[derive(Clone, Debug)]
enum Pick {
    Int(i64),
    Held(usize),
}

/// One operation on one tenant (objects and values are picked from what its model holds).
#[derive(Clone, Debug)]
enum Op {
    SetSlot {
        t: usize,
        obj: usize,
        i: usize,
        v: Pick,
        writer: bool,
    },
    SetSlots {
        t: usize,
        obj: usize,
        start: usize,
        vs: Vec<Pick>,
    },
    SetBytes {
        t: usize,
        obj: usize,
        off: usize,
        data: Vec<u8>,
    },
    SetClass {
        t: usize,
        obj: usize,
        class: usize,
    },
    SetHash {
        t: usize,
        obj: usize,
        hash: u32,
    },
    Alloc {
        t: usize,
        class: usize,
        format: u8,
        vs: Vec<Pick>,
        bytes: usize,
    },
    Forward {
        t: usize,
        a: usize,
        b: usize,
    },
    TwoWay {
        t: usize,
        a: usize,
        b: usize,
    },
    Garbage {
        t: usize,
        n: usize,
    },
    Collect {
        t: usize,
    },
    StubFill {
        t: usize,
        obj: usize,
    },
    Foreign {
        t: usize,
        from: usize,
        obj: usize,
    },
    Quota {
        t: usize,
        q: Option<u16>,
    },
    SwapOut {
        t: usize,
        obj: usize,
    },
    ReadOnly {
        t: usize,
        on: bool,
    },
}

impl Op {
    /// The tenant the operation acts on.
    fn tenant(&self) -> usize {
        match self {
            Op::SetSlot { t, .. }
            | Op::SetSlots { t, .. }
            | Op::SetBytes { t, .. }
            | Op::SetClass { t, .. }
            | Op::SetHash { t, .. }
            | Op::Alloc { t, .. }
            | Op::Forward { t, .. }
            | Op::TwoWay { t, .. }
            | Op::Garbage { t, .. }
            | Op::Collect { t }
            | Op::StubFill { t, .. }
            | Op::Foreign { t, .. }
            | Op::Quota { t, .. }
            | Op::SwapOut { t, .. }
            | Op::ReadOnly { t, .. } => *t,
        }
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        (-5i64..5).prop_map(Pick::Int),
        any::<usize>().prop_map(Pick::Held),
        any::<usize>().prop_map(Pick::Held)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let t = || 0usize..3;
    let o = any::<usize>;
    prop_oneof![
        6 => (t(), o(), 0usize..6, pick(), any::<bool>())
            .prop_map(|(t, obj, i, v, writer)| Op::SetSlot { t, obj, i, v, writer }),
        3 => (t(), o(), 0usize..6, prop::collection::vec(pick(), 0..4))
            .prop_map(|(t, obj, start, vs)| Op::SetSlots { t, obj, start, vs }),
        3 => (t(), o(), 0usize..20, prop::collection::vec(any::<u8>(), 0..5))
            .prop_map(|(t, obj, off, data)| Op::SetBytes { t, obj, off, data }),
        2 => (t(), o(), o()).prop_map(|(t, obj, class)| Op::SetClass { t, obj, class }),
        2 => (t(), o(), any::<u32>()).prop_map(|(t, obj, hash)| Op::SetHash { t, obj, hash }),
        4 => (t(), o(), 0u8..8, prop::collection::vec(pick(), 0..4), 0usize..19)
            .prop_map(|(t, class, format, vs, bytes)| Op::Alloc { t, class, format, vs, bytes }),
        2 => (t(), o(), o()).prop_map(|(t, a, b)| Op::Forward { t, a, b }),
        2 => (t(), o(), o()).prop_map(|(t, a, b)| Op::TwoWay { t, a, b }),
        1 => (t(), 1usize..20).prop_map(|(t, n)| Op::Garbage { t, n }),
        1 => t().prop_map(|t| Op::Collect { t }),
        1 => (t(), o()).prop_map(|(t, obj)| Op::StubFill { t, obj }),
        1 => (t(), 0usize..3, o()).prop_map(|(t, from, obj)| Op::Foreign { t, from, obj }),
        1 => (t(), prop::option::weighted(0.7, 0u16..3000)).prop_map(|(t, q)| Op::Quota { t, q }),
        2 => (t(), o()).prop_map(|(t, obj)| Op::SwapOut { t, obj }),
        1 => (t(), any::<bool>()).prop_map(|(t, on)| Op::ReadOnly { t, on }),
    ]
}

/// The value a pick names, in the tenant and in the model.
fn value(m: &Model, p: &Pick) -> (Value, OVal) {
    match *p {
        Pick::Int(i) => (Value::int(i), OVal::Imm(Word::int(i).unwrap())),
        Pick::Held(j) => {
            let (v, id) = m.held[j % m.held.len()];
            (v, OVal::Ref(id))
        }
    }
}

/// `res` must be Ok (then `ok`), a quota refusal (allowed under a quota), or `want`.
/// Answers whether it succeeded. On a refusal the tenant must be as it was.
fn same_dump(t: &Tenant, m: &Model, before: &[String], what: &str) {
    let now = dump(t, m);
    // A write through a stub faults its segment in first, and a refused one leaves it in.
    if now[0].ends_with(" stubs 0") && !before[0].ends_with(" stubs 0") {
        assert_eq!(now[1..], before[1..], "{what}");
    } else {
        assert_eq!(now, before, "{what}");
    }
}

fn judge(
    t: &Tenant,
    m: &Model,
    before: &[String],
    res: Result<(), Error>,
    want: Option<Error>,
    what: &str,
) -> bool {
    match (res, want) {
        (Err(Error::Swapped { .. }), _) if t.stubs_of(77) > 0 => {
            same_dump(t, m, before, what);
            false
        }
        (Err(Error::BaseReadOnly(_)), _) if t.refused_write().is_some() => {
            same_dump(t, m, before, what);
            false
        }
        (Ok(()), None) => true,
        (Err(Error::QuotaExceeded { .. }), _) if t.quota().is_some() => {
            same_dump(t, m, before, what);
            false
        }
        (Err(e), Some(w)) => {
            assert_eq!(e, w, "{what}");
            same_dump(t, m, before, what);
            false
        }
        (r, w) => panic!("{what}: got {r:?}, expected {w:?}"),
    }
}

/// A reference the model holds, with the identity it leads to now.
fn held_id(m: &Model, j: usize) -> (Value, usize) {
    let (v, id) = m.held[j % m.held.len()];
    (v, m.res(id))
}

/// Makes `op` on its tenant and on its model, checking its answer.
fn run(w: &mut World, op: &Op) {
    match op {
        Op::SetSlot {
            t,
            obj,
            i,
            v,
            writer,
        } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            let (val, ov) = value(m, v);
            let b = &m.bodies[id];
            let want = (*i >= b.slots.len()).then(|| b.format.slot_error(*i, b.slots.len()).into());
            let before = dump(tn, m);
            if *writer {
                let r = tn.reader();
                let wr = tn.writer();
                if wr.try_set_slot(o, *i, val) {
                    assert!(want.is_none());
                    // The reader taken before sees the write.
                    same(tn, m, r.slot(o, *i).unwrap(), ov, "reader after writer");
                    m.bodies[id].slots[*i] = ov;
                    return;
                }
                assert_eq!(dump(tn, m), before, "a refused writer write");
            }
            let res = tn.set_slot(o, *i, val);
            if judge(tn, m, &before, res, want, &format!("{op:?}")) {
                m.bodies[id].slots[*i] = ov;
            }
        }
        Op::SetSlots { t, obj, start, vs } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            let vals: Vec<_> = vs.iter().map(|p| value(m, p)).collect();
            let b = &m.bodies[id];
            let n = b.slots.len();
            let end = start + vals.len();
            let want =
                (end > n || *start > n).then(|| b.format.slot_error((*start).max(n), n).into());
            let before = dump(tn, m);
            let res = tn.set_slots(o, *start, &vals.iter().map(|p| p.0).collect::<Vec<_>>());
            if judge(tn, m, &before, res, want, &format!("{op:?}")) {
                for (k, (_, ov)) in vals.iter().enumerate() {
                    m.bodies[id].slots[start + k] = *ov;
                }
            }
        }
        Op::SetBytes { t, obj, off, data } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            let b = &m.bodies[id];
            let len = b.bytes.len();
            let want = (off + data.len() > len)
                .then(|| b.format.bytes_error(*off, off + data.len(), len).into());
            let before = dump(tn, m);
            let res = tn.set_bytes(o, *off, data);
            if judge(tn, m, &before, res, want, &format!("{op:?}")) {
                m.bodies[id].bytes[*off..off + data.len()].copy_from_slice(data);
            }
        }
        Op::SetClass { t, obj, class } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            let (c, cid) = held_id(m, *class);
            let before = dump(tn, m);
            let res = tn.set_class(o, c);
            if judge(tn, m, &before, res, None, &format!("{op:?}")) {
                m.bodies[id].class = cid;
            }
        }
        Op::SetHash { t, obj, hash } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            let before = dump(tn, m);
            let res = tn.set_identity_hash(o, *hash);
            if judge(tn, m, &before, res, None, &format!("{op:?}")) {
                m.bodies[id].hash = *hash;
            }
        }
        Op::Alloc {
            t,
            class,
            format,
            vs,
            bytes,
        } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (c, cid) = held_id(m, *class);
            let format = Format::from_code(*format).unwrap();
            let vals: Vec<_> = vs.iter().map(|p| value(m, p)).collect();
            let data: Vec<u8> = (0..*bytes).map(|k| k as u8 ^ 0x5a).collect();
            let size = ObjectSize {
                slots: vals.len(),
                bytes: *bytes,
            };
            let want = format.check(size).err().map(Error::from);
            let before = dump(tn, m);
            let res = tn.alloc_with(
                c,
                format,
                &vals.iter().map(|p| p.0).collect::<Vec<_>>(),
                &data,
            );
            match res {
                Ok(v) => {
                    assert!(want.is_none(), "{op:?}");
                    let hash = tn.identity_hash(v).unwrap();
                    m.bodies.push(Body {
                        class: cid,
                        format,
                        hash,
                        slots: vals.iter().map(|p| p.1).collect(),
                        bytes: data,
                    });
                    m.alias.push(None);
                    let id = m.bodies.len() - 1;
                    m.rep.insert(id, v);
                    m.held.push((v, id));
                }
                Err(e) => {
                    judge(tn, m, &before, Err(e), want, &format!("{op:?}"));
                }
            }
        }
        Op::Forward { t, a, b } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (va, ia) = held_id(m, *a);
            let (vb, ib) = held_id(m, *b);
            let before = dump(tn, m);
            let res = tn.become_forward(va, vb);
            if judge(tn, m, &before, res, None, &format!("{op:?}")) && ia != ib {
                m.alias[ia] = Some(ib);
                m.rep.remove(&ia);
            }
        }
        Op::TwoWay { t, a, b } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (va, ia) = held_id(m, *a);
            let (vb, ib) = held_id(m, *b);
            let before = dump(tn, m);
            let res = tn.become_two_way(va, vb);
            if judge(tn, m, &before, res, None, &format!("{op:?}")) {
                m.bodies.swap(ia, ib);
            }
        }
        Op::Garbage { t, n } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let nil = m.rep[&m.res(0)];
            for k in 0..*n {
                let _ = tn.alloc(
                    nil,
                    Format::Pointers,
                    ObjectSize {
                        slots: k % 5,
                        bytes: 0,
                    },
                );
                let _ = tn.alloc_with(nil, Format::Bytes, &[], &vec![1; k % 7]);
            }
        }
        Op::Collect { t } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let mut ids: Vec<_> = m.rep.keys().copied().collect();
            ids.sort();
            let handles: Vec<_> = ids
                .iter()
                .map(|id| (*id, tn.pin(m.rep[id]).unwrap()))
                .collect();
            tn.collect();
            for (id, h) in handles {
                let v = tn.unpin(h).unwrap();
                m.rep.insert(id, v);
            }
            m.held = ids.iter().map(|id| (m.rep[id], *id)).collect();
        }
        Op::StubFill { t, obj } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            if !o.word().is_private() || tn.quota().is_some() {
                return;
            }
            let class = tn.class_of(o).unwrap();
            let format = tn.format(o).unwrap();
            let slots: Vec<Value> = (0..m.bodies[id].slots.len())
                .map(|i| tn.slot(o, i).unwrap())
                .collect();
            let bytes = tn.bytes(o).unwrap().to_vec();
            let hash = tn.identity_hash(o).unwrap();
            match tn.stub(o, 78) {
                Ok(()) => {}
                Err(Error::NotSwappable(_) | Error::Swapped { .. }) => return,
                Err(e) => panic!("{e}"),
            }
            assert!(matches!(tn.slot(o, 0), Err(Error::Swapped { .. })));
            let back = tn
                .alloc_with_hash(class, format, &slots, &bytes, hash)
                .unwrap();
            tn.fill_stub(o, back).unwrap();
            m.held.push((back, id));
        }
        Op::Foreign { t, from, obj } => {
            if t == from {
                return;
            }
            let (v, _) = held_id(&w.ms[*from], *obj);
            if !v.word().is_private() {
                return;
            }
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let before = dump(tn, m);
            let nil = m.rep[&m.res(0)];
            assert!(matches!(tn.slot(v, 0), Err(Error::ForeignReference { .. })));
            assert!(matches!(
                tn.reader().slot(v, 0),
                Err(Error::ForeignReference { .. })
            ));
            assert!(matches!(
                tn.set_slot(v, 0, nil),
                Err(Error::ForeignReference { .. })
            ));
            assert!(matches!(
                tn.set_slot(m.rep[&m.res(1)], 0, v),
                Err(Error::ForeignReference { .. })
            ));
            assert!(!tn.writer().try_set_slot(m.rep[&m.res(1)], 0, v));
            assert!(matches!(
                tn.become_forward(nil, v),
                Err(Error::ForeignReference { .. })
            ));
            assert!(matches!(
                tn.become_two_way(v, nil),
                Err(Error::ForeignReference { .. })
            ));
            assert_eq!(dump(tn, m), before);
        }
        Op::ReadOnly { t, on } => {
            w.ts[*t].set_base_read_only(*on);
        }
        Op::SwapOut { t, obj } => {
            let (tn, m) = (&mut w.ts[*t], &mut w.ms[*t]);
            let (o, id) = held_id(m, *obj);
            if !tn.resolve(o).unwrap().word().is_private() || tn.stubs_of(77) > 0 {
                return;
            }
            let class = tn.pin(tn.class_of(o).unwrap()).unwrap();
            let format = tn.format(o).unwrap();
            let n = m.bodies[id].slots.len();
            let slots: Vec<_> = (0..n)
                .map(|i| {
                    let v = tn.slot(o, i).unwrap();
                    tn.pin(v).unwrap()
                })
                .collect();
            let bytes = tn.bytes(o).unwrap().to_vec();
            let hash = tn.identity_hash(o).unwrap();
            let stub = tn.pin(o).unwrap();
            match tn.stub(o, 77) {
                Ok(()) => {}
                Err(Error::NotSwappable(_)) => return,
                Err(e) => panic!("{e}"),
            }
            let (s2, b2) = (slots.clone(), bytes.clone());
            tn.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
                let vals: Vec<Value> = s2
                    .iter()
                    .map(|&h| t.pinned_value(h))
                    .collect::<Result<_, _>>()?;
                let member = ViewMember {
                    stub: t.pinned_value(stub)?,
                    class: t.pinned_value(class)?,
                    format,
                    hash,
                    slots: &vals,
                    bytes: &b2,
                };
                t.segment_view(segment, [member])
            })));
            tn.set_fault_handler(Some(FaultHandler::new(move |t: &mut Tenant, _segment| {
                let vals: Vec<Value> = slots
                    .iter()
                    .map(|&h| t.pinned(h))
                    .collect::<Result<_, _>>()?;
                let c = t.pinned(class)?;
                let back = t.alloc_with_hash(c, format, &vals, &bytes, hash)?;
                let s = t.pinned(stub)?;
                t.fill_stub(s, back)?;
                for &h in slots.iter().chain([&class, &stub]) {
                    t.unpin(h)?;
                }
                t.set_segment_reader(None);
                Ok(())
            })));
        }
        Op::Quota { t, q } => {
            let used = w.ts[*t].stats().private_bytes;
            w.ts[*t].set_quota(q.map(|q| used + u64::from(q)));
        }
    }
}

/// A fresh world: with `same_lane` its tenants share a lane of the shared marks, with
/// `private` the third uses its own marks.
fn world(same_lane: bool, private: bool) -> World {
    let base = Base::new(synth::image(300, 5));
    let mut ts = Vec::new();
    for k in 0..3 {
        let config = TenantConfig {
            quota: None,
            marks: if private && k == 2 {
                cowheap_forwarders::MarkPolicy::Private
            } else {
                Default::default()
            },
        };
        loop {
            let t = Tenant::fork_with(&base, config);
            if !same_lane || ts.is_empty() || t.lane() == ts.first().map(Tenant::lane).unwrap() {
                ts.push(t);
                break;
            }
        }
    }
    let ms = (0..3).map(|_| fresh_model(&base)).collect();
    World { base, ts, ms }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    /// Three tenants of one base (sometimes of one lane, one sometimes under its own marks)
    /// and a flat model of each, driven through random reads, writes, allocations, becomes,
    /// collections, swap-outs and quota and read-only changes: every answer, value or
    /// error, is the model's, and every refusal leaves the tenant as it was.
    #[test]
    fn tenants_answer_what_a_flat_heap_answers(
        same_lane in any::<bool>(),
        private in any::<bool>(),
        ops in prop::collection::vec(op(), 1..50),
    ) {
        let mut w = world(same_lane, private);
        let pristine = fresh_model(&w.base);
        for op in &ops {
            run(&mut w, op);
            let t = op.tenant();
            check(&w.ts[t], &w.ms[t]);
        }
        for (t, m) in w.ts.iter().zip(&w.ms) {
            check(t, m);
        }
        // The base reads as it was made: no tenant's write reached it.
        prop_assert_eq!(&fresh_model(&w.base).bodies, &pristine.bodies);
    }
}

/// Everything a read of `v` answers through `t` and through a reader, references by their
/// identity words and errors by their text: the slots at the edges (the first, the last,
/// the slot count, one past it, and indices of 2^32 and more, whose low 32 bits name a slot
/// in range), the size, format, hash, bytes, class and header.
fn reads(t: &Tenant, v: Value) -> Vec<String> {
    let id = |r: Result<Value, Error>| {
        r.map(|v| t.identity_word(v).unwrap())
            .map_err(|e| e.to_string())
    };
    let n = t.size(v).map_or(0, |s| s.slots);
    let r = t.reader();
    let mut out = Vec::new();
    for i in [
        0,
        n.saturating_sub(1),
        n,
        n + 1,
        1 << 32,
        (1 << 32) + n.saturating_sub(1),
        usize::MAX,
    ] {
        out.push(format!(
            "slot {i}: {:?} {:?}",
            id(t.slot(v, i)),
            id(r.slot(v, i))
        ));
    }
    let e = |e: Error| e.to_string();
    out.push(format!(
        "size {:?} {:?}",
        t.size(v).map_err(e),
        r.size(v).map_err(e)
    ));
    out.push(format!(
        "format {:?} {:?}",
        t.format(v).map_err(e),
        r.format(v).map_err(e)
    ));
    out.push(format!(
        "hash {:?} {:?}",
        t.identity_hash(v).map_err(e),
        r.identity_hash(v).map_err(e)
    ));
    out.push(format!(
        "bytes {:?} {:?}",
        t.bytes(v).map_err(e),
        r.bytes(v).map_err(e)
    ));
    out.push(format!(
        "class {:?} {:?}",
        id(t.class_of(v)),
        id(r.class_of(v))
    ));
    for h in [t.header(v), r.header(v)] {
        let h = h.map(|h| (t.identity_word(h.class).unwrap(), h.format, h.size));
        out.push(format!("header {:?}", h.map_err(e)));
    }
    out
}

/// What every refused write past the end of `v` answers, by its text: slots at and past the
/// slot count (one, two from the one before, none from one past), bytes at and past the
/// byte count, of every length.
fn refused_writes(t: &mut Tenant, v: Value, nil: Value) -> Vec<String> {
    let size = t.size(v).unwrap();
    let (n, nb) = (size.slots, size.bytes);
    let e = |r: Result<(), Error>| r.map_err(|e| e.to_string());
    let mut out = Vec::new();
    for i in [
        n,
        n + 1,
        1 << 32,
        (1 << 32) + n.saturating_sub(1),
        usize::MAX,
    ] {
        out.push(format!("set_slot {i}: {:?}", e(t.set_slot(v, i, nil))));
        out.push(format!("set_slots {i}: {:?}", e(t.set_slots(v, i, &[nil]))));
        out.push(format!(
            "set_slots {}: {:?}",
            i.saturating_sub(1),
            e(t.set_slots(v, i.saturating_sub(1), &[nil, nil]))
        ));
        out.push(format!(
            "set_slots {}: {:?}",
            i.saturating_add(1),
            e(t.set_slots(v, i.saturating_add(1), &[]))
        ));
    }
    for (o, l) in [
        (nb, 1),
        (nb.saturating_sub(1), 2),
        (0, nb + 1),
        (usize::MAX, 1),
        (nb + 1, 0),
        (1 << 32, 1),
    ] {
        out.push(format!(
            "set_bytes {o} {l}: {:?}",
            e(t.set_bytes(v, o, &vec![7; l]))
        ));
    }
    out
}

/// Every object of a base (pointers, bytes of every odd and even length, compiled methods,
/// empty objects) reads the same through its base reference before it is copied, through
/// it and through the copy's own reference after, and through a new object made with the
/// same class, format, slots, bytes and hash: in place, out of line and through a reader,
/// at every edge, errors included; and a write past its end is refused alike, copying
/// nothing.
#[test]
fn a_base_object_its_copy_and_a_new_object_like_it_read_and_refuse_alike() {
    let base = Base::new(synth::image(2_000, 3));
    let nil = base.heap().nil();
    let mut t = Tenant::fork(&base);
    let mut lengths = std::collections::BTreeSet::new();
    for x in 0..base.len() as u32 {
        let v = Value::base(ObjectIndex::from_u32(x));
        let before = reads(&t, v);
        let mut u = Tenant::fork(&base);
        let refused = refused_writes(&mut u, v, nil);
        assert_eq!(u.diverted(), 0, "a refused write to {x} copied it");
        let class = t.class_of(v).unwrap();
        let format = t.format(v).unwrap();
        let n = t.size(v).unwrap().slots;
        let slots: Vec<Value> = (0..n).map(|i| t.slot(v, i).unwrap()).collect();
        let bytes = t.bytes(v).unwrap().to_vec();
        lengths.insert(bytes.len());
        let hash = t.identity_hash(v).unwrap();
        let like = t
            .alloc_with_hash(class, format, &slots, &bytes, hash)
            .unwrap();
        assert_eq!(reads(&t, like), before, "a new object like {x}");
        assert_eq!(
            refused_writes(&mut t, like, nil),
            refused,
            "a new object like {x}"
        );
        // The first write: the same class written back copies it.
        u.set_class(v, class).unwrap();
        assert_eq!(
            reads(&u, v),
            before,
            "{x} through its base reference, copied"
        );
        let copy = u.resolve(v).unwrap();
        assert!(copy.word().is_private());
        assert_eq!(reads(&u, copy), before, "{x} through its copy's reference");
        assert_eq!(refused_writes(&mut u, v, nil), refused, "{x} copied");
        assert_eq!(refused_writes(&mut u, copy, nil), refused, "{x}'s copy");
    }
    assert!(
        (0..=9).all(|n| lengths.contains(&n)),
        "byte objects of every small length: {lengths:?}"
    );
}

/// A segment reader that answers a view another tenant made (of its own stub, whose key
/// equals this tenant's) is refused: the view's words are the other tenant's references,
/// and read here they would name this tenant's own objects (an unrelated one, with the
/// other tenant's hash and slots). The read answers `Swapped`, as for a view of another
/// segment; this tenant's own view is still read.
#[test]
fn a_view_another_tenant_made_is_not_read_as_this_tenants() {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    // Tenant `a`: key 0 is `x`, swapped out; key 1 is an object of its own.
    let mut a = Tenant::fork(&base);
    let x = a
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let mine = a.alloc_with(class, Format::Bytes, &[], b"a's own").unwrap();
    a.set_root("mine", mine).unwrap();
    let hash = a.identity_hash(x).unwrap();
    a.stub(x, 9).unwrap();
    // Tenant `b`: the same keys, swapped out to a segment of the same id.
    let b = Arc::new(Mutex::new(Tenant::fork(&base)));
    {
        let mut b = b.lock().unwrap();
        let y = b
            .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
            .unwrap();
        let other = b.alloc_with(class, Format::Bytes, &[], b"b's own").unwrap();
        b.set_root("y", y).unwrap();
        b.set_root("other", other).unwrap();
        b.stub(y, 9).unwrap();
        assert_eq!(y.word(), x.word(), "the two stubs have one key");
    }
    let from_b = b.clone();
    a.set_segment_reader(Some(SegmentReader::new(move |_: &Tenant, segment| {
        let b = from_b.lock().unwrap();
        let slots = [b.root("other").unwrap()];
        let member = ViewMember {
            stub: b.root("y").unwrap(),
            class,
            format: Format::Pointers,
            hash: 5,
            slots: &slots,
            bytes: &[],
        };
        b.segment_view(segment, [member])
    })));
    for r in [a.slot(x, 0), a.reader().slot(x, 0)] {
        assert!(
            matches!(r, Err(Error::Swapped { segment: 9, .. })),
            "read through another tenant's view: {r:?}"
        );
    }
    assert!(matches!(a.identity_hash(x), Err(Error::Swapped { .. })));
    // The tenant's own view is read.
    a.set_segment_reader(Some(SegmentReader::new(move |t: &Tenant, segment| {
        let slots = [Value::int(1)];
        let member = ViewMember {
            stub: x,
            class,
            format: Format::Pointers,
            hash,
            slots: &slots,
            bytes: &[],
        };
        t.segment_view(segment, [member])
    })));
    assert_eq!(a.slot(x, 0).unwrap().as_int(), Some(1));
    assert_eq!(a.identity_hash(x).unwrap(), hash);
}
