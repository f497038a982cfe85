//! Property tests: cowheap tenants against a naive oracle in which every tenant is a full
//! deep copy of the base, made at fork time and given the same operations.
//!
//! Properties checked after every action, for every tenant:
//! 1. Fidelity: every object the tenant can reach from the references it holds shows the
//!    same class, format, size, identity hash, slots and bytes as the oracle's copy; slot
//!    references are identical exactly where the oracle's references are equal.
//! 2. Isolation: the base never changes, and no tenant sees another's writes or becomes
//!    (each tenant is compared with its own oracle, which only its own actions touch).
//! 3. Failure atomicity: an operation that fails (index out of range, quota exceeded, a
//!    reference from another tenant) changes nothing: the oracle skips it and the next
//!    check still holds.
//! 4. Collection frees exactly the unreachable: a held reference to an object the oracle
//!    finds unreachable is refused as collected; pinned and rooted objects survive.
//!
//! Failing cases are kept in `proptest-regressions/` and replayed first.

use cowheap::heap::Error as HeapError;
use cowheap::{Base, Error, Format, Handle, ObjectSize, Tenant, TenantConfig, Value, Word};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

mod common;
use common::{OObj, OVal, random_base, to_oval};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A reference to a base object, made with `Value::base`: never collected.
    Base,
    /// A pinned handle.
    Pinned(Handle),
    /// Anything else the test holds: valid until the next collection.
    Transient,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    value: Value,
    o: usize,
    kind: Kind,
    /// The object it named was the source of a one-way become: the entry may be a forwarder
    /// that collection frees once no slot refers to it.
    via_forwarder: bool,
}

/// One tenant's oracle: a deep copy of the base plus its own objects.
struct Model {
    objs: Vec<OObj>,
    /// What the base reference `x` denotes in this tenant now.
    base_refs: Vec<usize>,
    roots: BTreeMap<String, OVal>,
    held: Vec<Held>,
}

struct World {
    base: Arc<Base>,
    pristine: Vec<OObj>,
    tenants: Vec<Tenant>,
    models: Vec<Model>,
}

impl World {
    fn new(seed: u64) -> World {
        let (base, pristine) = random_base(seed);
        World {
            base,
            pristine,
            tenants: vec![],
            models: vec![],
        }
    }

    /// Forks a tenant; with `same_lane`, one whose lane in the shared marks is the last
    /// tenant's (forking and dropping tenants until one is: lanes are drawn at random), so
    /// that tenants which must ask their tables past each other's marks meet as often as
    /// tenants which read past them in place.
    fn fork(&mut self, quota: Option<u64>, private_marks: bool, same_lane: bool) {
        let config = TenantConfig {
            quota,
            marks: if private_marks {
                cowheap::MarkPolicy::Private
            } else {
                cowheap::MarkPolicy::Shared
            },
        };
        let lane = |t: &Tenant| t.lane();
        let want = self.tenants.last().filter(|_| same_lane).map(lane);
        let mut t = Tenant::fork_with(&self.base, config);
        // Bounded (each fork draws one of 22 lanes): a tenant of another lane if the bound
        // is reached.
        for _ in 0..10_000 {
            if want.is_none_or(|l| lane(&t) == l) {
                break;
            }
            t = Tenant::fork_with(&self.base, config);
        }
        self.tenants.push(t);
        let n = self.pristine.len();
        self.models.push(Model {
            objs: self.pristine.clone(),
            base_refs: (0..n).collect(),
            roots: BTreeMap::new(),
            held: (0..n)
                .map(|x| Held {
                    value: Value::base(cowheap::ObjectIndex::from_u32(x as u32)),
                    o: x,
                    kind: Kind::Base,
                    via_forwarder: false,
                })
                .collect(),
        });
    }
}

impl Model {
    /// Rewrites every reference the tenant's view holds through `f`.
    fn remap(&mut self, f: impl Fn(usize) -> usize) {
        for o in &mut self.objs {
            o.class = f(o.class);
            for s in &mut o.slots {
                if let OVal::Ref(r) = s {
                    *r = f(*r);
                }
            }
        }
        for r in &mut self.base_refs {
            *r = f(*r);
        }
        for v in self.roots.values_mut() {
            if let OVal::Ref(r) = v {
                *r = f(*r);
            }
        }
        for h in &mut self.held {
            h.o = f(h.o);
        }
    }

    fn reachable(&self) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self.base_refs.clone();
        stack.extend(self.roots.values().filter_map(|v| match v {
            OVal::Ref(r) => Some(*r),
            OVal::Imm(_) => None,
        }));
        stack.extend(
            self.held
                .iter()
                .filter(|h| matches!(h.kind, Kind::Pinned(_)))
                .map(|h| h.o),
        );
        while let Some(o) = stack.pop() {
            if seen.insert(o) {
                let obj = &self.objs[o];
                stack.push(obj.class);
                stack.extend(obj.slots.iter().filter_map(|v| match v {
                    OVal::Ref(r) => Some(*r),
                    OVal::Imm(_) => None,
                }));
            }
        }
        seen
    }
}

/// Asserts that `cv` shows what `ov` is, learning references not yet held.
fn same(
    t: &mut Tenant,
    m: &mut Model,
    rev: &mut HashMap<usize, Value>,
    cv: Value,
    ov: OVal,
    what: &str,
) {
    match ov {
        OVal::Imm(w) => assert!(
            !cv.is_object() && cv.word() == w,
            "{what}: {cv:?} should be {w:?}"
        ),
        OVal::Ref(r) => {
            assert!(cv.is_object(), "{what}: {cv:?} should be a reference");
            match rev.get(&r) {
                Some(&known) => assert!(
                    t.identical(cv, known).unwrap(),
                    "{what}: {cv:?} should be identical to {known:?}"
                ),
                None => {
                    rev.insert(r, cv);
                    m.held.push(Held {
                        value: cv,
                        o: r,
                        kind: Kind::Transient,
                        via_forwarder: false,
                    });
                }
            }
        }
    }
}

/// Compares everything tenant `t` can reach from what it holds with its oracle.
fn check(t: &mut Tenant, m: &mut Model) {
    for h in &mut m.held {
        if let Kind::Pinned(handle) = h.kind {
            h.value = t.pinned(handle).unwrap();
        }
    }
    let mut rev: HashMap<usize, Value> = HashMap::new();
    for h in &m.held {
        rev.entry(h.o).or_insert(h.value);
    }
    let mut i = 0;
    while i < m.held.len() {
        let Held { value: v, o, .. } = m.held[i];
        let obj = m.objs[o].clone();
        let held = &m.held[i];
        // Through a reader first, so that it meets slots no read has patched yet (a
        // forwarder's word, a base word the tenant diverted since): what it answers is
        // what the tenant reads after it.
        let first: Vec<Word> = {
            let rd = t.reader();
            (0..obj.slots.len())
                .map(|j| rd.slot(v, j).unwrap().word())
                .collect()
        };
        assert!(
            t.identical(v, rev[&o]).unwrap(),
            "{held:?} should be identical to {:?}",
            rev[&o]
        );
        assert_eq!(t.identity_hash(v).unwrap(), obj.hash, "hash of {held:?}");
        assert_eq!(t.format(v).unwrap(), obj.format, "format of {held:?}");
        assert_eq!(
            t.size(v).unwrap(),
            ObjectSize {
                slots: obj.slots.len(),
                bytes: obj.bytes.len()
            },
            "size of {held:?}"
        );
        assert_eq!(t.bytes(v).unwrap(), &obj.bytes[..], "bytes of {held:?}");
        // The reference `resolve` answers is the same object, reads the same, and resolves
        // to itself.
        let r = t.resolve(v).unwrap();
        assert!(t.identical(r, v).unwrap(), "resolve of {held:?}");
        assert_eq!(t.resolve(r).unwrap().word(), r.word(), "resolve of {r:?}");
        for j in 0..obj.slots.len() {
            let (a, b) = (t.slot(r, j).unwrap(), t.slot(v, j).unwrap());
            assert!(t.identical(a, b).unwrap(), "slot {j} of {held:?} resolved");
        }
        // A reader answers what the tenant answers, read for read, and its `try_` reads
        // either agree or leave the read to the tenant.
        {
            let rd = t.reader();
            assert_eq!(
                rd.identity_hash(v).unwrap(),
                obj.hash,
                "reader's hash of {held:?}"
            );
            assert_eq!(
                rd.format(v).unwrap(),
                obj.format,
                "reader's format of {held:?}"
            );
            let size = ObjectSize {
                slots: obj.slots.len(),
                bytes: obj.bytes.len(),
            };
            assert_eq!(rd.size(v).unwrap(), size, "reader's size of {held:?}");
            assert_eq!(
                rd.bytes(v).unwrap(),
                &obj.bytes[..],
                "reader's bytes of {held:?}"
            );
            let class = t.class_of(v).unwrap();
            let header = rd.header(v).unwrap();
            assert_eq!(
                (header.format, header.size),
                (obj.format, size),
                "header of {held:?}"
            );
            for c in [header.class, rd.class_of(v).unwrap()] {
                assert!(t.identical(c, class).unwrap(), "reader's class of {held:?}");
            }
            if let Some(c) = rd.try_class_of(v) {
                assert_eq!(c.word(), class.word(), "reader's quick class of {held:?}");
            }
            for j in 0..obj.slots.len() {
                let a = t.slot(v, j).unwrap();
                assert_eq!(
                    rd.slot(v, j).unwrap().word(),
                    a.word(),
                    "reader's slot {j} of {held:?}"
                );
                if let Some(q) = rd.try_slot(v, j) {
                    assert_eq!(q.word(), a.word(), "reader's quick slot {j} of {held:?}");
                }
            }
            let past = obj.slots.len();
            assert_eq!(
                format!("{:?}", rd.slot(v, past).unwrap_err()),
                format!("{:?}", t.slot(v, past).unwrap_err()),
                "reader's error past the slots of {held:?}"
            );
            assert!(
                rd.try_slot(v, past).is_none(),
                "reader's quick read past the slots"
            );
        }
        let class = t.class_of(v).unwrap();
        same(t, m, &mut rev, class, OVal::Ref(obj.class), "class");
        for (j, &ov) in obj.slots.iter().enumerate() {
            let cv = t.slot(v, j).unwrap();
            assert_eq!(
                cv.word(),
                first[j],
                "reader's first read of slot {j} of {v:?}"
            );
            same(t, m, &mut rev, cv, ov, "slot");
        }
        i += 1;
    }
    let roots: Vec<(String, OVal)> = m.roots.iter().map(|(k, v)| (k.clone(), *v)).collect();
    for (name, ov) in roots {
        let cv = t.root(&name).unwrap();
        same(t, m, &mut rev, cv, ov, "root");
    }
    // Distinct oracle objects are distinct in the tenant.
    let distinct: Vec<(usize, Value)> = rev.into_iter().take(40).collect();
    for (a, &(oa, va)) in distinct.iter().enumerate() {
        for &(ob, vb) in &distinct[a + 1..] {
            assert_eq!(
                t.identical(va, vb).unwrap(),
                oa == ob,
                "identity of {va:?} and {vb:?}"
            );
        }
    }
    if let Some(q) = t.quota() {
        assert!(
            t.stats().private_bytes <= q,
            "quota {q} passed: {:?}",
            t.stats()
        );
    }
}

#[derive(Clone, Debug)]
enum Pick {
    Int(i64),
    Char(char),
    Held(usize),
}

#[derive(Clone, Debug)]
enum Action {
    Fork {
        quota: Option<u16>,
        private_marks: bool,
        same_lane: bool,
    },
    Read {
        t: usize,
        obj: usize,
        slot: usize,
    },
    Write {
        t: usize,
        obj: usize,
        slot: usize,
        value: Pick,
        /// Through a `TenantWriter` first, and through the tenant only where it refuses.
        writer: bool,
    },
    WriteBytes {
        t: usize,
        obj: usize,
        offset: usize,
        data: Vec<u8>,
    },
    Alloc {
        t: usize,
        class: usize,
        format: u8,
        slots: usize,
        bytes: usize,
    },
    BecomeForward {
        t: usize,
        a: usize,
        b: usize,
    },
    BecomeTwoWay {
        t: usize,
        a: usize,
        b: usize,
    },
    Collect {
        t: usize,
    },
    Pin {
        t: usize,
        obj: usize,
    },
    Unpin {
        t: usize,
        which: usize,
    },
    SetRoot {
        t: usize,
        name: u8,
        value: Pick,
    },
    Foreign {
        from: usize,
        to: usize,
        obj: usize,
    },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        (-100i64..100).prop_map(Pick::Int),
        prop::char::range('a', 'e').prop_map(Pick::Char),
        any::<usize>().prop_map(Pick::Held),
        any::<usize>().prop_map(Pick::Held),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let t = any::<usize>();
    prop_oneof![
        1 => (prop::option::weighted(0.3, 0u16..2000), any::<bool>(), any::<bool>())
            .prop_map(|(quota, private_marks, same_lane)| Action::Fork { quota, private_marks, same_lane }),
        4 => (t, any::<usize>(), 0usize..6).prop_map(|(t, obj, slot)| Action::Read { t, obj, slot }),
        8 => (t, any::<usize>(), 0usize..6, pick(), any::<bool>())
            .prop_map(|(t, obj, slot, value, writer)| Action::Write { t, obj, slot, value, writer }),
        2 => (t, any::<usize>(), 0usize..6, prop::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(t, obj, offset, data)| Action::WriteBytes { t, obj, offset, data }),
        4 => (t, any::<usize>(), 0u8..3, 0usize..4, 0usize..5)
            .prop_map(|(t, class, format, slots, bytes)| Action::Alloc { t, class, format, slots, bytes }),
        2 => (t, any::<usize>(), any::<usize>()).prop_map(|(t, a, b)| Action::BecomeForward { t, a, b }),
        2 => (t, any::<usize>(), any::<usize>()).prop_map(|(t, a, b)| Action::BecomeTwoWay { t, a, b }),
        2 => t.prop_map(|t| Action::Collect { t }),
        2 => (t, any::<usize>()).prop_map(|(t, obj)| Action::Pin { t, obj }),
        1 => (t, any::<usize>()).prop_map(|(t, which)| Action::Unpin { t, which }),
        2 => (t, 0u8..3, pick()).prop_map(|(t, name, value)| Action::SetRoot { t, name, value }),
        1 => (t, any::<usize>(), any::<usize>()).prop_map(|(from, to, obj)| Action::Foreign { from, to, obj }),
    ]
}

fn value_of(m: &Model, p: &Pick) -> (Value, OVal) {
    match *p {
        Pick::Int(i) => (Value::int(i), OVal::Imm(Word::int(i).unwrap())),
        Pick::Char(c) => (Value::char(c), OVal::Imm(Word::char(c))),
        Pick::Held(j) => {
            let h = m.held[j % m.held.len()];
            (h.value, OVal::Ref(h.o))
        }
    }
}

/// An operation's result where the oracle expected `ok`: quota refusals are always allowed
/// (the oracle then skips the operation), and expected failures must be index errors.
fn expect(res: &Result<(), Error>, ok: bool, quota: bool) -> bool {
    match res {
        Ok(()) => {
            assert!(ok, "succeeded where the oracle expected an error");
            true
        }
        Err(Error::QuotaExceeded { .. }) if quota => false,
        Err(Error::Heap(
            HeapError::SlotOutOfRange { .. }
            | HeapError::BytesOutOfRange { .. }
            | HeapError::WrongKind { .. },
        )) => {
            assert!(!ok, "failed where the oracle expected success: {res:?}");
            false
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn run(w: &mut World, a: &Action) {
    let n = w.tenants.len();
    let idx = |t: usize| t % n;
    match a {
        Action::Fork {
            quota,
            private_marks,
            same_lane,
        } => w.fork(quota.map(u64::from), *private_marks, *same_lane),
        Action::Read { t, obj, slot } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let h = m.held[obj % m.held.len()];
            let len = m.objs[h.o].slots.len();
            match tn.slot(h.value, *slot) {
                Ok(v) => {
                    assert!(*slot < len);
                    if v.is_object()
                        && let OVal::Ref(r) = m.objs[h.o].slots[*slot]
                    {
                        m.held.push(Held {
                            value: v,
                            o: r,
                            kind: Kind::Transient,
                            via_forwarder: false,
                        });
                    }
                }
                Err(e) => assert!(*slot >= len, "read failed: {e}"),
            }
        }
        Action::Write {
            t,
            obj,
            slot,
            value,
            writer,
        } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let h = m.held[obj % m.held.len()];
            let (v, ov) = value_of(m, value);
            let ok = *slot < m.objs[h.o].slots.len();
            if *writer {
                // A writer writes only what needs no copy, and a refusal changes nothing.
                let copies = |tn: &Tenant| {
                    let s = tn.stats();
                    (s.private_bytes, s.copies, s.private_objects, tn.diverted())
                };
                let made = copies(tn);
                let read = |tn: &Tenant| {
                    let r = tn.slot(h.value, *slot);
                    r.map(|v| v.word()).map_err(|e| e.to_string())
                };
                let before = read(tn);
                if tn.writer().try_set_slot(h.value, *slot, v) {
                    assert!(ok, "the writer wrote where the oracle expected an error");
                    assert_eq!(copies(tn), made, "the writer copied nothing");
                    m.objs[h.o].slots[*slot] = ov;
                    return;
                }
                assert_eq!(read(tn), before, "a refused write changed the slot");
                assert_eq!(copies(tn), made, "a refused write copied nothing");
            }
            let res = tn.set_slot(h.value, *slot, v);
            if expect(&res, ok, tn.quota().is_some()) {
                m.objs[h.o].slots[*slot] = ov;
            }
        }
        Action::WriteBytes {
            t,
            obj,
            offset,
            data,
        } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let h = m.held[obj % m.held.len()];
            let ok = offset + data.len() <= m.objs[h.o].bytes.len();
            let res = tn.set_bytes(h.value, *offset, data);
            if expect(&res, ok, tn.quota().is_some()) {
                m.objs[h.o].bytes[*offset..offset + data.len()].copy_from_slice(data);
            }
        }
        Action::Alloc {
            t,
            class,
            format,
            slots,
            bytes,
        } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let c = m.held[class % m.held.len()];
            let (format, slots, bytes) = match format {
                0 => (Format::Pointers, *slots, 0),
                1 => (Format::Bytes, 0, *bytes),
                _ => (Format::CompiledMethod, *slots, *bytes),
            };
            match tn.alloc(c.value, format, ObjectSize { slots, bytes }) {
                Ok(v) => {
                    let hash = tn.identity_hash(v).unwrap();
                    let nil = OVal::Ref(m.base_refs[0]);
                    m.objs.push(OObj {
                        class: c.o,
                        format,
                        hash,
                        slots: vec![nil; slots],
                        bytes: vec![0; bytes],
                    });
                    m.held.push(Held {
                        value: v,
                        o: m.objs.len() - 1,
                        kind: Kind::Transient,
                        via_forwarder: false,
                    });
                }
                Err(Error::QuotaExceeded { .. }) => assert!(tn.quota().is_some()),
                Err(e) => panic!("alloc failed: {e}"),
            }
        }
        Action::BecomeForward { t, a, b } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let (ha, hb) = (m.held[a % m.held.len()], m.held[b % m.held.len()]);
            let res = tn.become_forward(ha.value, hb.value);
            if expect(&res, true, tn.quota().is_some()) && ha.o != hb.o {
                for h in m.held.iter_mut().filter(|h| h.o == ha.o) {
                    h.via_forwarder = true;
                }
                m.remap(|r| if r == ha.o { hb.o } else { r });
            }
        }
        Action::BecomeTwoWay { t, a, b } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let (ha, hb) = (m.held[a % m.held.len()], m.held[b % m.held.len()]);
            let res = tn.become_two_way(ha.value, hb.value);
            if expect(&res, true, tn.quota().is_some()) {
                m.remap(|r| {
                    if r == ha.o {
                        hb.o
                    } else if r == hb.o {
                        ha.o
                    } else {
                        r
                    }
                });
            }
        }
        Action::Collect { t } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let before = tn.stats().private_objects;
            let stats = tn.collect();
            assert_eq!(before - stats.freed, tn.stats().private_objects);
            let live = m.reachable();
            for h in m.held.iter().filter(|h| h.kind == Kind::Transient) {
                match tn.identity_hash(h.value) {
                    Ok(hash) => {
                        assert!(
                            live.contains(&h.o),
                            "{h:?} is unreachable but was not collected"
                        );
                        assert_eq!(hash, m.objs[h.o].hash);
                    }
                    Err(Error::Collected(_)) => assert!(
                        !live.contains(&h.o) || h.via_forwarder,
                        "{h:?} is reachable but was collected"
                    ),
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            m.held.retain(|h| h.kind != Kind::Transient);
        }
        Action::Pin { t, obj } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let h = m.held[obj % m.held.len()];
            let handle = tn.pin(h.value).unwrap();
            m.held.push(Held {
                kind: Kind::Pinned(handle),
                ..h
            });
        }
        Action::Unpin { t, which } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let pinned: Vec<usize> = (0..m.held.len())
                .filter(|&i| matches!(m.held[i].kind, Kind::Pinned(_)))
                .collect();
            if let Some(&i) = pinned.get(which % pinned.len().max(1)) {
                let Kind::Pinned(handle) = m.held[i].kind else {
                    unreachable!()
                };
                let v = tn.unpin(handle).unwrap();
                assert_eq!(tn.pinned(handle).unwrap_err(), Error::StaleHandle);
                assert_eq!(tn.unpin(handle).unwrap_err(), Error::StaleHandle);
                m.held[i].kind = Kind::Transient;
                m.held[i].value = v;
            }
        }
        Action::SetRoot { t, name, value } => {
            let (tn, m) = (&mut w.tenants[idx(*t)], &mut w.models[idx(*t)]);
            let (v, ov) = value_of(m, value);
            tn.set_root(&format!("r{name}"), v).unwrap();
            m.roots.insert(format!("r{name}"), ov);
        }
        Action::Foreign { from, to, obj } => {
            let (f, t) = (idx(*from), idx(*to));
            if f == t {
                return;
            }
            let h = w.models[f].held[obj % w.models[f].held.len()];
            if h.value.owner().is_some() {
                let tn = &mut w.tenants[t];
                assert!(matches!(
                    tn.slot(h.value, 0),
                    Err(Error::ForeignReference { .. })
                ));
                assert!(matches!(
                    tn.set_root("x", h.value),
                    Err(Error::ForeignReference { .. })
                ));
                let nil = tn.base().heap().nil();
                assert!(matches!(
                    tn.set_slot(nil, 0, h.value),
                    Err(Error::ForeignReference { .. })
                ));
                assert!(matches!(
                    tn.become_forward(h.value, nil),
                    Err(Error::ForeignReference { .. })
                ));
            }
        }
    }
}

fn check_world(w: &mut World) {
    let heap = w.base.heap();
    for (i, p) in w.pristine.iter().enumerate() {
        let o = heap
            .object(cowheap::ObjectIndex::from_u32(i as u32))
            .unwrap();
        assert_eq!(
            o.slots.iter().map(|&w| to_oval(w)).collect::<Vec<_>>(),
            p.slots,
            "base object {i} changed"
        );
        assert_eq!(
            (o.bytes, o.hash, o.class.as_base().unwrap().get()),
            (&p.bytes[..], p.hash, p.class)
        );
    }
    for (t, m) in w.tenants.iter_mut().zip(w.models.iter_mut()) {
        check(t, m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: common::cases(128),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/proptest-regressions/oracle.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tenants_match_deep_copy_oracle(seed in any::<u64>(), actions in prop::collection::vec(action(), 1..60)) {
        let mut w = World::new(seed);
        w.fork(None, false, false);
        w.fork(None, false, true);
        check_world(&mut w);
        for a in &actions {
            run(&mut w, a);
            check_world(&mut w);
        }
    }
}
