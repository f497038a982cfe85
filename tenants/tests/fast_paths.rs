//! The object memory's fast paths against a plain model: many tenants (more than there are
//! lanes in the shared marks, under both mark policies, some under a quota) of a base larger
//! than a private filter, each written (through the tenant and through a `TenantWriter`),
//! allocated in, becomed, collected, snapshotted, committed and aborted at random, and every
//! read (`slot`, `class_of`, `size`, `format`, `identity_hash`, `bytes`, `header`) made
//! through the tenant, through a `TenantReader` and through the resolved reference,
//! compared with a deep copy of the base given the same operations. Beside it: words near a
//! tenant's own (indices and generations off by one, stray bits) read alike on every path
//! and in the restored tenant; tenants on many threads; and the edges of what the fast
//! paths rest on (the table's reservations, the memory a tenant reports, a forwarder's
//! state, the immediates a snapshot keeps, identity words).

use cowheap_forwarders::{Base, MarkPolicy};
use cowheap_heap::{Format, ObjectIndex, ObjectSize, Value, Word, synth};
use cowheap_tenants::{Error, Tenant, TenantConfig};

/// What a refused operation must leave as it was.
fn held(t: &Tenant) -> (u64, u64, u64, usize) {
    let s = t.stats();
    (s.private_objects, s.private_bytes, s.copies, t.diverted())
}

/// True if `res` is a quota's refusal, which then changed nothing.
fn refused<T>(t: &Tenant, before: (u64, u64, u64, usize), res: &Result<T, Error>) -> bool {
    if let Err(Error::QuotaExceeded { .. }) = res {
        assert_eq!(held(t), before, "a refused operation changed the tenant");
        return true;
    }
    false
}
use std::sync::Arc;

/// A value of the model: an immediate word, or a reference to a model object.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MVal {
    Imm(Word),
    Ref(usize),
}

#[derive(Clone, Debug)]
struct MObj {
    class: usize,
    format: Format,
    hash: u32,
    slots: Vec<MVal>,
    bytes: Vec<u8>,
}

/// One tenant's model: its deep copy, what each base reference denotes, and a value of the
/// tenant that names each model object still reachable.
struct Model {
    objs: Vec<MObj>,
    base_of: Vec<usize>,
    vals: Vec<Option<Value>>,
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mval(w: Word) -> MVal {
    match w.as_base() {
        Some(x) => MVal::Ref(x.get()),
        None => MVal::Imm(w),
    }
}

/// Every object of `base`'s version as plain data, read through the version (`Base::object`).
fn describe(base: &Base) -> Vec<MObj> {
    (0..base.len() as u32)
        .map(ObjectIndex::from_u32)
        .map(|x| {
            let o = base.object(x).unwrap();
            MObj {
                class: o.class.as_base().unwrap().get(),
                format: o.format,
                hash: o.hash,
                slots: o.slots.iter().map(|&w| mval(w)).collect(),
                bytes: o.bytes.to_vec(),
            }
        })
        .collect()
}

impl Model {
    fn new(pristine: &[MObj]) -> Model {
        Model {
            objs: pristine.to_vec(),
            base_of: (0..pristine.len()).collect(),
            vals: (0..pristine.len())
                .map(|x| Some(Value::base(ObjectIndex::from_u32(x as u32))))
                .collect(),
        }
    }

    fn remap(&mut self, f: impl Fn(usize) -> usize) {
        for o in &mut self.objs {
            o.class = f(o.class);
            for s in &mut o.slots {
                if let MVal::Ref(r) = s {
                    *r = f(*r);
                }
            }
        }
        for r in &mut self.base_of {
            *r = f(*r);
        }
    }

    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.objs.len()];
        let mut stack: Vec<usize> = self.base_of.clone();
        while let Some(m) = stack.pop() {
            if std::mem::replace(&mut seen[m], true) {
                continue;
            }
            let o = &self.objs[m];
            stack.push(o.class);
            stack.extend(o.slots.iter().filter_map(|s| match s {
                MVal::Ref(r) => Some(*r),
                MVal::Imm(_) => None,
            }));
        }
        seen
    }

    fn live(&self, rng: &mut Rng) -> usize {
        // Half the time one of the newest objects (those the tenant made), if it has any.
        let newest = self.objs.len().saturating_sub(self.base_of.len()).min(64);
        loop {
            let m = if newest > 0 && rng.below(2) == 0 {
                self.objs.len() - 1 - rng.below(newest)
            } else {
                rng.below(self.objs.len())
            };
            if self.vals[m].is_some() {
                return m;
            }
        }
    }

    fn value(&self, rng: &mut Rng) -> (Value, MVal) {
        match rng.below(4) {
            0 => {
                let i = rng.below(200) as i64 - 100;
                (Value::int(i), MVal::Imm(Word::int(i).unwrap()))
            }
            1 => (Value::char('q'), MVal::Imm(Word::char('q'))),
            _ => {
                let m = self.live(rng);
                (self.vals[m].unwrap(), MVal::Ref(m))
            }
        }
    }
}

/// Asserts that `got`, read by `t`, is what the model holds: an immediate word for word, a
/// reference identical to the value the model keeps for its object.
fn same(t: &Tenant, m: &Model, got: Value, want: MVal, what: &str) {
    match want {
        MVal::Imm(w) => assert_eq!(got.word(), w, "{what}"),
        MVal::Ref(r) => {
            let v = m.vals[r].unwrap_or_else(|| panic!("{what}: model object {r} has no value"));
            assert!(
                t.identical(got, v).unwrap(),
                "{what}: {got:?} is not model object {r} ({v:?})"
            );
        }
    }
}

/// Every read of model object `o` through `t`, its reader and its resolved reference.
fn check_object(t: &Tenant, m: &Model, o: usize) {
    let Some(v) = m.vals[o] else { return };
    let want = &m.objs[o];
    let r = t.reader();
    let resolved = t.resolve(v).unwrap();
    for (how, v) in [("value", v), ("resolved", resolved)] {
        let what = format!("{how} {v:?} of model object {o}");
        assert_eq!(t.size(v).unwrap().slots, want.slots.len(), "{what} size");
        assert_eq!(
            r.size(v).unwrap().slots,
            want.slots.len(),
            "{what} reader size"
        );
        assert_eq!(t.size(v).unwrap().bytes, want.bytes.len(), "{what} size");
        assert_eq!(t.format(v).unwrap(), want.format, "{what}");
        assert_eq!(r.format(v).unwrap(), want.format, "{what} reader");
        assert_eq!(t.identity_hash(v).unwrap(), want.hash, "{what}");
        assert_eq!(r.identity_hash(v).unwrap(), want.hash, "{what} reader");
        assert_eq!(t.bytes(v).unwrap(), &want.bytes[..], "{what}");
        assert_eq!(r.bytes(v).unwrap(), &want.bytes[..], "{what} reader");
        same(t, m, t.class_of(v).unwrap(), MVal::Ref(want.class), &what);
        same(t, m, r.class_of(v).unwrap(), MVal::Ref(want.class), &what);
        let h = t.header(v).unwrap();
        same(t, m, h.class, MVal::Ref(want.class), &what);
        assert_eq!((h.format, h.size.slots), (want.format, want.slots.len()));
        let h = r.header(v).unwrap();
        same(t, m, h.class, MVal::Ref(want.class), &what);
        assert_eq!((h.format, h.size.slots), (want.format, want.slots.len()));
        for (i, &s) in want.slots.iter().enumerate() {
            // The reader first, so that it meets slots the tenant has not patched yet.
            same(
                t,
                m,
                r.slot(v, i).unwrap(),
                s,
                &format!("{what} reader slot {i}"),
            );
            same(t, m, t.slot(v, i).unwrap(), s, &format!("{what} slot {i}"));
            if let Some(q) = r.try_slot(v, i) {
                same(t, m, q, s, &format!("{what} quick slot {i}"));
            }
        }
        let n = want.slots.len();
        for i in [
            n,
            n + 1,
            1 << 32,
            (1 << 32) + n.saturating_sub(1),
            usize::MAX,
        ] {
            let a = t.slot(v, i).map(|v| v.word()).map_err(|e| e.to_string());
            let b = r.slot(v, i).map(|v| v.word()).map_err(|e| e.to_string());
            assert!(a.is_err(), "{what}: slot {i} of {n} read {a:?}");
            assert_eq!(a, b, "{what}: slot {i} of {n}");
        }
    }
}

struct World {
    base: Arc<Base>,
    repo: cowheap_tenants::commit::Repository,
    pristine: Vec<MObj>,
    tenants: Vec<Tenant>,
    models: Vec<Model>,
}

fn op(w: &mut World, rng: &mut Rng) -> Vec<usize> {
    let n = w.tenants.len();
    let ti = rng.below(n);
    let (t, m) = (&mut w.tenants[ti], &mut w.models[ti]);
    let nil = w.base.heap().nil().word().as_base().unwrap().get();
    match rng.below(20) {
        0..=7 => {
            let o = m.live(rng);
            let len = m.objs[o].slots.len();
            let i = if len == 0 || rng.below(8) == 0 {
                len + rng.below(2)
            } else {
                rng.below(len)
            };
            let (v, mv) = m.value(rng);
            let obj = m.vals[o].unwrap();
            let written = rng.below(2) == 0 && t.writer().try_set_slot(obj, i, v);
            let before = held(t);
            let res = if written {
                Ok(())
            } else {
                t.set_slot(obj, i, v)
            };
            if refused(t, before, &res) {
                return vec![o + (ti << 32)];
            }
            match res {
                Ok(()) => {
                    assert!(i < len, "wrote slot {i} of {len}");
                    m.objs[o].slots[i] = mv;
                }
                Err(e) => assert!(i >= len, "write of slot {i} of {len} refused: {e}"),
            }
            vec![o]
        }
        8 => {
            let o = m.live(rng);
            let len = m.objs[o].slots.len();
            let start = rng.below(len + 2);
            let k = rng.below(3);
            let vals: Vec<(Value, MVal)> = (0..k).map(|_| m.value(rng)).collect();
            let values: Vec<Value> = vals.iter().map(|p| p.0).collect();
            let before = held(t);
            let res = t.set_slots(m.vals[o].unwrap(), start, &values);
            if refused(t, before, &res) {
                return vec![o + (ti << 32)];
            }
            match res {
                Ok(()) => {
                    assert!(start + k <= len);
                    for (j, p) in vals.iter().enumerate() {
                        m.objs[o].slots[start + j] = p.1;
                    }
                }
                Err(e) => assert!(start + k > len, "set_slots refused: {e}"),
            }
            vec![o]
        }
        9 => {
            let o = m.live(rng);
            let len = m.objs[o].bytes.len();
            let off = rng.below(len + 2);
            let data = [rng.next() as u8; 2];
            let k = rng.below(3);
            let before = held(t);
            let res = t.set_bytes(m.vals[o].unwrap(), off, &data[..k]);
            if refused(t, before, &res) {
                return vec![o + (ti << 32)];
            }
            match res {
                Ok(()) => m.objs[o].bytes[off..off + k].copy_from_slice(&data[..k]),
                Err(e) => assert!(off + k > len, "set_bytes refused: {e}"),
            }
            vec![o]
        }
        10..=12 => {
            let c = m.live(rng);
            let (format, size) = if rng.below(3) == 0 {
                (
                    Format::Bytes,
                    ObjectSize {
                        slots: 0,
                        bytes: rng.below(9),
                    },
                )
            } else {
                (
                    Format::Pointers,
                    ObjectSize {
                        slots: rng.below(5),
                        bytes: 0,
                    },
                )
            };
            let before = held(t);
            let res = t.alloc(m.vals[c].unwrap(), format, size);
            if refused(t, before, &res) {
                return vec![];
            }
            let v = res.unwrap();
            m.objs.push(MObj {
                class: c,
                format,
                hash: t.identity_hash(v).unwrap(),
                slots: vec![MVal::Ref(m.base_of[nil]); size.slots],
                bytes: vec![0; size.bytes],
            });
            m.vals.push(Some(v));
            vec![m.objs.len() - 1]
        }
        13 => {
            let (a, b) = (m.live(rng), m.live(rng));
            let before = held(t);
            let res = t.become_forward(m.vals[a].unwrap(), m.vals[b].unwrap());
            if refused(t, before, &res) {
                return vec![];
            }
            res.unwrap();
            if a != b {
                m.remap(|r| if r == a { b } else { r });
                m.vals[a] = None;
            }
            vec![b]
        }
        14 => {
            let (a, b) = (m.live(rng), m.live(rng));
            let before = held(t);
            let res = t.become_two_way(m.vals[a].unwrap(), m.vals[b].unwrap());
            if refused(t, before, &res) {
                return vec![];
            }
            res.unwrap();
            if a != b {
                m.remap(|r| {
                    if r == a {
                        b
                    } else if r == b {
                        a
                    } else {
                        r
                    }
                });
                m.vals.swap(a, b);
            }
            vec![a, b]
        }
        15 => {
            let (o, c) = (m.live(rng), m.live(rng));
            let before = held(t);
            let res = t.set_class(m.vals[o].unwrap(), m.vals[c].unwrap());
            if refused(t, before, &res) {
                return vec![o + (ti << 32)];
            }
            res.unwrap();
            m.objs[o].class = c;
            vec![o]
        }
        16 => {
            let o = m.live(rng);
            let h = (rng.next() & 0x3F_FFFF) as u32;
            let before = held(t);
            let res = t.set_identity_hash(m.vals[o].unwrap(), h);
            if refused(t, before, &res) {
                return vec![o + (ti << 32)];
            }
            res.unwrap();
            m.objs[o].hash = h;
            vec![o]
        }
        17 => {
            t.collect();
            let live = m.reachable();
            for (o, v) in m.vals.iter_mut().enumerate() {
                if !live[o] {
                    *v = None;
                }
            }
            vec![]
        }
        18 => {
            // Through a resolved reference: the copy's own key.
            let o = m.live(rng);
            let r = t.resolve(m.vals[o].unwrap()).unwrap();
            if rng.below(2) == 0 {
                m.vals[o] = Some(r);
            }
            vec![o]
        }
        _ => {
            let on = rng.below(2) == 0;
            t.record_reads(on).unwrap();
            vec![]
        }
    }
    .into_iter()
    .map(|o| o + (ti << 32))
    .collect()
}

/// A commit of a tenant (whose view stays what it was, and whose reachable objects the new
/// version holds as it sees them), an abort (the tenant sees the current version afresh),
/// or a fork of the current version.
fn version_op(w: &mut World, rng: &mut Rng) {
    let ti = rng.below(w.tenants.len());
    match rng.below(4) {
        3 => {
            // The current version folded into a heap of its own, with new marks.
            let _ = w.repo.flatten();
        }
        0 => {
            let (t, m) = (&mut w.tenants[ti], &mut w.models[ti]);
            if t.base().id() != w.repo.current().id() {
                return;
            }
            let v = match w.repo.commit(t, "t") {
                Ok(v) => v,
                Err(_) => {
                    // What a version cannot hold (a base object becomed onto another): start
                    // again from the current version.
                    w.repo.abort(t);
                    w.models[ti] = Model::new(&describe(t.base()));
                    return;
                }
            };
            // Each object the tenant reaches is an object of the version, as the tenant has it.
            let now = describe(&v);
            let live = m.reachable();
            let index = |o: usize| {
                let r = t.resolve(m.vals[o].unwrap()).unwrap();
                r.word()
                    .as_base()
                    .unwrap_or_else(|| panic!("{o} not committed: {r:?}"))
                    .get()
            };
            for o in (0..m.objs.len()).filter(|&o| live[o] && m.vals[o].is_some()) {
                let (want, got) = (&m.objs[o], &now[index(o)]);
                assert_eq!(
                    (want.format, want.hash, &want.bytes),
                    (got.format, got.hash, &got.bytes)
                );
                for (a, b) in want.slots.iter().zip(&got.slots) {
                    match (a, b) {
                        (MVal::Ref(a), MVal::Ref(b)) => {
                            if m.vals[*a].is_some() {
                                assert_eq!(index(*a), *b);
                            }
                        }
                        (a, b) => assert_eq!(a, b),
                    }
                }
            }
            // The tenant's references to what it committed now lead through forwarders,
            // which a collection may free: hold the objects by their new base references.
            for (v, _) in m.vals.iter_mut().zip(&live).filter(|(_, l)| **l) {
                if let Some(held) = *v {
                    *v = Some(t.resolve(held).unwrap());
                }
            }
        }
        1 => {
            let t = &mut w.tenants[ti];
            w.repo.abort(t);
            w.models[ti] = Model::new(&describe(t.base()));
        }
        _ => {
            let marks = if rng.below(3) == 0 {
                MarkPolicy::Private
            } else {
                MarkPolicy::Shared
            };
            let t = Tenant::fork_with(&w.repo.current(), TenantConfig { quota: None, marks });
            w.models.push(Model::new(&describe(t.base())));
            w.tenants.push(t);
        }
    }
}

fn check_tenant(t: &Tenant, m: &Model, objects: impl Iterator<Item = usize>) {
    for o in objects {
        check_object(t, m, o);
    }
}

#[test]
fn many_tenants_read_what_a_deep_copy_reads() {
    for seed in 1..=3u64 {
        let base = Base::new(synth::image(5_000, seed));
        let pristine = describe(&base);
        let mut w = World {
            base: base.clone(),
            repo: cowheap_tenants::commit::Repository::new(
                base.clone(),
                cowheap_tenants::commit::CommitRights::Anyone,
            ),
            pristine,
            tenants: Vec::new(),
            models: Vec::new(),
        };
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        for i in 0..30 {
            let marks = if i % 3 == 2 {
                MarkPolicy::Private
            } else {
                MarkPolicy::Shared
            };
            w.tenants.push(Tenant::fork_with(
                &w.base,
                TenantConfig {
                    quota: (i % 4 == 3).then_some(30_000),
                    marks,
                },
            ));
            w.models.push(Model::new(&w.pristine));
        }
        for step in 0..3_000 {
            if rng.below(15) == 0 {
                version_op(&mut w, &mut rng);
            }
            let touched = op(&mut w, &mut rng);
            for o in touched {
                let (ti, o) = (o >> 32, o & 0xFFFF_FFFF);
                check_object(&w.tenants[ti], &w.models[ti], o);
            }
            // A few objects of a few tenants, at random.
            for _ in 0..3 {
                let ti = rng.below(w.tenants.len());
                let o = rng.below(w.models[ti].objs.len());
                check_object(&w.tenants[ti], &w.models[ti], o);
            }
            if step % 250 == 0 {
                let ti = rng.below(w.tenants.len());
                let t = &w.tenants[ti];
                let r = Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
                let (a, b) = (t.stats(), r.stats());
                assert_eq!(
                    (a.private_objects, a.private_bytes),
                    (b.private_objects, b.private_bytes),
                    "step {step}: the charges of tenant {ti} against its entries'"
                );
            }
        }
        for (t, m) in w.tenants.iter().zip(&w.models) {
            check_tenant(t, m, 0..m.objs.len());
        }
    }
}

/// Words near the ones a tenant holds: its private keys at their generation and beside it,
/// indices past its keys, base indices at and past the base's end, and each with bits set
/// where a word of its kind has none.
fn near_words(t: &Tenant, held: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    let len = t.base().len() as u32;
    for x in [0, 1, len - 1, len, len + 1, u32::MAX - 1, u32::MAX] {
        out.push(Value::base(ObjectIndex::from_u32(x)));
    }
    for &v in held {
        out.push(v);
        let w = v.word().bits();
        for bits in [
            w ^ 1 << 35,
            w ^ 1 << 63,
            w.wrapping_add(8),
            w | 1 << 34,
            w ^ 4,
        ] {
            out.push(Value::owned(Word::from_bits(bits), t.id()));
            out.push(Value::shared(Word::from_bits(bits)));
        }
        if let Some(k) = v.word().as_private() {
            for g in [0, 1, k.generation().wrapping_sub(1), u32::MAX] {
                let key = cowheap_heap::PrivateKey::new(k.key(), g);
                out.push(Value::owned(Word::private(key), t.id()));
            }
        }
    }
    out
}

/// Everything a read through `t` says of `v`, as text (errors by their message).
fn observe_all(t: &Tenant, v: Value) -> Vec<String> {
    let r = t.reader();
    let mut out = Vec::new();
    let s = |x: Result<Value, Error>| format!("{:?}", x.map(|v| v.word()));
    let n = t.size(v).map_or(0, |s| s.slots);
    for i in [0, 1, n.saturating_sub(1), n, n + 1, 1 << 32, usize::MAX] {
        let a = s(t.slot(v, i));
        assert_eq!(a, s(r.slot(v, i)), "reader's slot {i} of {v:?}");
        out.push(a);
    }
    let a = s(t.class_of(v));
    assert_eq!(a, s(r.class_of(v)), "reader's class of {v:?}");
    out.push(a);
    for (a, b) in [
        (format!("{:?}", t.size(v)), format!("{:?}", r.size(v))),
        (format!("{:?}", t.format(v)), format!("{:?}", r.format(v))),
        (
            format!("{:?}", t.identity_hash(v)),
            format!("{:?}", r.identity_hash(v)),
        ),
        (format!("{:?}", t.bytes(v)), format!("{:?}", r.bytes(v))),
        (
            format!(
                "{:?}",
                t.header(v).map(|h| (h.class.word(), h.format, h.size))
            ),
            format!(
                "{:?}",
                r.header(v).map(|h| (h.class.word(), h.format, h.size))
            ),
        ),
    ] {
        assert_eq!(a, b, "reader's read of {v:?}");
        out.push(a);
    }
    out.push(format!("{:?}", t.identity_word(v)));
    out
}

#[test]
fn words_near_a_tenants_own_read_the_same_on_every_path() {
    let base = Base::new(synth::image(2_000, 5));
    let nil = base.heap().nil();
    for marks in [MarkPolicy::Shared, MarkPolicy::Private] {
        let mut t = Tenant::fork_with(&base, TenantConfig { quota: None, marks });
        let mut held = Vec::new();
        let mut rng = Rng(77);
        // Copies, new objects, forwarders (a become of a base object and of a private one),
        // a two-way become, garbage collected, and a stub.
        for _ in 0..200 {
            let x = Value::base(ObjectIndex::from_u32(rng.below(2_000) as u32));
            if t.size(x).is_ok_and(|s| s.slots > 0) {
                t.set_slot(x, 0, Value::int(5)).unwrap();
                held.push(x);
                held.push(t.resolve(x).unwrap());
            }
            let a = t
                .alloc_with(nil, Format::Pointers, &[x, Value::int(1)], &[1, 2, 3])
                .unwrap_or_else(|_| {
                    t.alloc(nil, Format::Pointers, ObjectSize { slots: 2, bytes: 0 })
                        .unwrap()
                });
            held.push(a);
        }
        let (a, b) = (held[1], held[3]);
        t.become_forward(held[5], held[7]).unwrap();
        t.become_forward(Value::base(ObjectIndex::from_u32(3)), a)
            .unwrap();
        t.become_two_way(b, Value::base(ObjectIndex::from_u32(4)))
            .unwrap();
        for &v in held.iter().step_by(3) {
            t.pin(v).unwrap();
        }
        t.collect();
        let roots: Vec<Value> = t.pinned_objects().collect();
        held.extend(&roots);
        let s = t
            .alloc_with(nil, Format::Pointers, &[Value::int(9)], &[])
            .unwrap();
        t.pin(s).unwrap();
        t.stub(s, 7).unwrap();
        held.push(s);
        let words = near_words(&t, &held);
        let before: Vec<Vec<String>> = words.iter().map(|&v| observe_all(&t, v)).collect();
        // The same tenant restored from its snapshot: the same keys in arenas laid out anew.
        let u = Tenant::restore_from(&base, &t.snapshot()).unwrap();
        for (v, seen) in words.iter().zip(&before) {
            let v = match v.owner() {
                Some(_) => Value::owned(v.word(), u.id()),
                None => *v,
            };
            let mut got = observe_all(&u, v);
            let mut want = seen.clone();
            // A private class word or slot names the other tenant's key: compare the words.
            for s in got.iter_mut().chain(want.iter_mut()) {
                *s = s
                    .replace(&format!("{}", t.id().get()), "T")
                    .replace(&format!("{}", u.id().get()), "T");
            }
            assert_eq!(got, want, "{v:?} in the restored tenant");
        }
        // Reading again reads the same (patches change no answer).
        for (v, seen) in words.iter().zip(&before) {
            let again = observe_all(&t, *v);
            assert_eq!(&again, seen, "{v:?} read again");
        }
    }
}

/// Tenants on many threads divert the same objects at once: each reads its own writes and
/// the base's words elsewhere, through the tenant and through a reader, however the shared
/// marks and lanes race.
#[test]
fn tenants_on_threads_read_their_own_writes_and_the_base_elsewhere() {
    let base = Base::new(synth::image(3_000, 9));
    let heap = base.heap();
    let with_slots: Vec<ObjectIndex> = heap
        .indices()
        .filter(|&x| heap.size(x).unwrap().slots > 0)
        .collect();
    let firsts: Vec<Word> = with_slots
        .iter()
        .map(|&x| heap.slot_word(x, 0).unwrap())
        .collect();
    std::thread::scope(|s| {
        for th in 0..6u64 {
            let (base, with_slots, firsts) = (&base, &with_slots, &firsts);
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + th);
                let mut tenants: Vec<(Tenant, Vec<Option<i64>>)> = (0..5)
                    .map(|i| {
                        let marks = if i == 4 {
                            MarkPolicy::Private
                        } else {
                            MarkPolicy::Shared
                        };
                        (
                            Tenant::fork_with(base, TenantConfig { quota: None, marks }),
                            vec![None; with_slots.len()],
                        )
                    })
                    .collect();
                for step in 0..20_000 {
                    let (t, wrote) = &mut tenants[rng.below(5)];
                    let j = rng.below(with_slots.len());
                    let v = Value::base(with_slots[j]);
                    if rng.below(3) == 0 {
                        let n = (th * 1_000_000 + step) as i64;
                        t.set_slot(v, 0, Value::int(n)).unwrap();
                        wrote[j] = Some(n);
                    }
                    let r = t.reader();
                    for _ in 0..4 {
                        let j = rng.below(with_slots.len());
                        let v = Value::base(with_slots[j]);
                        let want = match wrote[j] {
                            Some(n) => Word::int(n).unwrap(),
                            None => firsts[j],
                        };
                        assert_eq!(r.slot(v, 0).unwrap().word(), want);
                        assert_eq!(t.slot(v, 0).unwrap().word(), want);
                        if let Some(q) = r.try_slot(v, 0) {
                            assert_eq!(q.word(), want);
                        }
                    }
                }
            });
        }
    });
}

/// A reservation of more entries than any table can hold is the allocator's refusal, as
/// every reservation past the machine is: not an overflow, nor a loop that never ends.
#[test]
fn a_table_reservation_past_the_machine_is_refused() {
    use cowheap_forwarders::IndirectionTable;
    for n in [usize::MAX, usize::MAX / 2, usize::MAX / 4, 1 << 61] {
        let mut t = IndirectionTable::new();
        assert!(t.try_reserve(n).is_err(), "{n}");
        assert!(t.is_empty() && t.memory_bytes() == 0);
    }
}

/// Every immediate a tenant stores (a word with one of the two low bits set: a small
/// integer, a character, an immediate float, and a character tag with bits above a 32-bit
/// code point, which is no character but an opaque immediate, as a base may hold one) is
/// saved in its snapshot and read back the same from the restored tenant.
#[test]
fn every_immediate_a_tenant_stores_restores_from_its_snapshot() {
    let base = Base::new(synth::image(1_000, 2));
    let nil = base.heap().nil();
    let words = [
        Word::int(-3).unwrap(),
        Word::char_code(u32::MAX),
        Word::from_bits(1 << 40 | 0b010),
        Word::from_bits(1 << 63 | 0b010),
        Word::from_bits(u64::MAX << 3 | 0b110),
    ];
    let mut t = Tenant::fork(&base);
    let a = t
        .alloc(
            nil,
            Format::Pointers,
            ObjectSize {
                slots: words.len(),
                bytes: 0,
            },
        )
        .unwrap();
    t.set_root("a", a).unwrap();
    for (i, &w) in words.iter().enumerate() {
        assert!(w.is_immediate());
        t.set_slot(a, i, Value::shared(w)).unwrap();
    }
    let u = Tenant::restore_from(&base, &t.snapshot()).unwrap();
    let a = u.root("a").unwrap();
    for (i, &w) in words.iter().enumerate() {
        assert_eq!(u.slot(a, i).unwrap().word(), w, "slot {i}");
    }
}

/// The base objects a recording tenant has read are memory it holds of its own, which a
/// host's memory budget (the store's swapping) must see.
#[test]
fn a_recording_tenants_reads_are_memory_it_holds() {
    let base = Base::new(synth::image(40_000, 3));
    let mut t = Tenant::fork(&base);
    t.record_reads(true).unwrap();
    let before = t.memory_bytes();
    let r = t.reader();
    for x in base.heap().indices() {
        let _ = r.size(Value::base(x));
    }
    let read = t.reads_recorded().unwrap().len();
    assert!(read >= 40_000, "{read} reads recorded");
    let grown = t.memory_bytes() - before;
    assert!(
        grown >= read * 4,
        "{read} reads recorded, {grown} bytes more counted"
    );
}

/// A forwarder is final: forwarding it again is refused, and the entry keeps its target.
#[test]
fn forwarding_a_forwarder_again_is_refused() {
    use cowheap_forwarders::Forwarding;
    let (a, b) = (Word::int(1).unwrap(), Word::int(2).unwrap());
    let mut e: Forwarding<u8> = Forwarding::Object(7);
    let _ = e.forward(a);
    assert_eq!(e.target(), Some(a));
    let again = std::panic::catch_unwind(move || {
        let _ = e.forward(b);
        e.target()
    });
    assert_eq!(again.ok(), Some(Some(a)), "refused, the target kept");
}

/// Identity words decide identity at any one time, and a first write of a base object moves
/// that object's word from its base reference to its copy's, as `identity_word` says.
#[test]
fn identity_words_decide_identity_and_move_with_a_first_write() {
    let base = Base::new(synth::image(1_000, 2));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let before = t.identity_word(g).unwrap();
    assert_eq!(before, g.word());
    t.set_slot(g, 0, Value::int(1)).unwrap();
    let copy = t.resolve(g).unwrap();
    let after = t.identity_word(g).unwrap();
    assert_ne!(after, before, "the copy's word");
    assert_eq!(after, t.identity_word(copy).unwrap());
    assert!(t.identical(g, copy).unwrap());
}

/// A tenant whose base is read-only to it refuses the writes that would change an object of
/// the base it has not copied (a first write, a become); a copy it made before is its own,
/// and stays writable, as its new objects are.
#[test]
fn a_read_only_base_refuses_first_writes_and_leaves_earlier_copies_writable() {
    let base = Base::new(synth::image(1_000, 2));
    let heap = base.heap();
    let g = heap.root("Smalltalk").unwrap();
    let other = heap
        .indices()
        .map(Value::base)
        .find(|&v| {
            v.word() != g.word() && heap.size(v.word().as_base().unwrap()).unwrap().slots > 0
        })
        .unwrap();
    let mut t = Tenant::fork(&base);
    t.set_slot(g, 0, Value::int(1)).unwrap();
    t.set_base_read_only(true);
    assert!(matches!(
        t.set_slot(other, 0, Value::int(2)),
        Err(Error::BaseReadOnly(_))
    ));
    assert!(matches!(
        t.become_forward(other, g),
        Err(Error::BaseReadOnly(_))
    ));
    assert_eq!(t.refused_write(), other.word().as_base());
    t.set_slot(g, 0, Value::int(3)).unwrap();
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(3));
    t.become_forward(g, other).unwrap();
    assert!(t.identical(g, other).unwrap());
}
