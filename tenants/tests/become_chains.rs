//! Chains of one-way becomes, and a model of becomes, stubs, fills and collections: a
//! collection points a table entry that is a forwarder at its chain's end, so the
//! forwarders between are freed and a read through the base reference walks one; and every
//! slot, identity hash and identity agrees with a model after every step.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_tenants::{Error, Tenant};

fn setup() -> (std::sync::Arc<Base>, Value, Value) {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    (base, g, class)
}

/// A base object becomes a private one, which becomes another, a hundred times (a class
/// redefined again and again): after a collection the table's forwarder and the last
/// object are all that is live, and a read of the base object takes no more lookups than
/// after one become.
#[test]
fn a_collection_shortens_a_chain_of_forwarders_from_the_table() {
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    let mut prev = g;
    let n = 100;
    for i in 0..n {
        let next = t
            .alloc_with(class, Format::Pointers, &[Value::int(i)], &[])
            .unwrap();
        t.become_forward(prev, next).unwrap();
        prev = next;
    }
    t.set_root("last", prev).unwrap();
    let out = t.collect();
    let before = t.stats().lookups;
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(n - 1));
    let cost = t.stats().lookups - before;
    assert!(
        out.live <= 2 && cost <= 2,
        "after a collection {} entries are live and one read of g takes {cost} lookups",
        out.live
    );
    assert!(t.identical(g, prev).unwrap());
    assert_eq!(t.stats().private_objects, 2);
}

// A small model of becomes, stubs and fills, and collections.

#[derive(Clone, Copy, Debug)]
enum MV {
    Int(i64),
    Id(usize),
    Orig(Value),
}

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

struct Model {
    vals: Vec<Value>,
    alias: Vec<usize>,
    body_of: Vec<usize>,
    bodies: Vec<(Vec<MV>, u32, Value)>,
    stubbed: Vec<Option<(Vec<cowheap_tenants::Handle>, u32, Value)>>,
    keep: Vec<Keep>,
}

enum Keep {
    Base,
    Root(String),
    Pin(cowheap_tenants::Handle),
}

impl Model {
    fn find(&self, mut i: usize) -> usize {
        while self.alias[i] != i {
            i = self.alias[i];
        }
        i
    }
}

fn run_random(seed: u64, steps: usize) -> Result<(), String> {
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    let mut rng = Rng(seed | 1);
    let mut m = Model {
        vals: vec![],
        alias: vec![],
        body_of: vec![],
        bodies: vec![],
        stubbed: vec![],
        keep: vec![],
    };
    // Some base objects of two or more pointer slots, reachable from Smalltalk.
    let mut frontier = vec![g];
    let mut seen = std::collections::HashSet::new();
    while m.vals.len() < 6 && !frontier.is_empty() {
        let v = frontier.remove(0);
        if !seen.insert(v.word().bits()) {
            continue;
        }
        let Ok(size) = t.size(v) else { continue };
        if t.format(v).unwrap() != Format::Pointers || size.slots < 2 {
            for i in 0..size.slots.min(8) {
                let s = t.slot(v, i).unwrap();
                if s.word().is_ref() {
                    frontier.push(s);
                }
            }
            continue;
        }
        for i in 0..size.slots.min(8) {
            let s = t.slot(v, i).unwrap();
            if s.word().is_ref() {
                frontier.push(s);
            }
        }
        m.vals.push(v);
    }
    let nb = m.vals.len();
    for i in 0..nb {
        m.alias.push(i);
        m.body_of.push(i);
        m.stubbed.push(None);
        m.keep.push(Keep::Base);
    }
    for i in 0..nb {
        let v = m.vals[i];
        let s0 = t.slot(v, 0).unwrap();
        let s1 = t.slot(v, 1).unwrap();
        let conv = |s: Value, m: &Model| {
            for (j, &w) in m.vals.iter().enumerate() {
                if w.word() == s.word() {
                    return MV::Id(j);
                }
            }
            if let Some(n) = s.as_int() {
                MV::Int(n)
            } else {
                MV::Orig(s)
            }
        };
        let b = (
            vec![conv(s0, &m), conv(s1, &m)],
            t.identity_hash(v).unwrap(),
            t.class_of(v).unwrap(),
        );
        m.bodies.push(b);
    }
    let mut segment = 100u64;
    for step in 0..steps {
        let n = m.vals.len();
        let op = rng.below(9);
        let a = rng.below(n);
        let b = rng.below(n);
        let desc;
        match op {
            0 => {
                // alloc
                let v = t
                    .alloc_with(
                        class,
                        Format::Pointers,
                        &[Value::int(step as i64), Value::int(0)],
                        &[],
                    )
                    .unwrap();
                if rng.below(2) == 0 {
                    t.set_root(&format!("r{n}"), v).unwrap();
                    m.keep.push(Keep::Root(format!("r{n}")));
                } else {
                    let h = t.pin(v).unwrap();
                    m.keep.push(Keep::Pin(h));
                }
                m.vals.push(v);
                m.alias.push(n);
                m.body_of.push(m.bodies.len());
                m.stubbed.push(None);
                m.bodies.push((
                    vec![MV::Int(step as i64), MV::Int(0)],
                    t.identity_hash(v).unwrap(),
                    class,
                ));
                desc = format!("alloc {n}");
            }
            1 | 2 => {
                let fa = m.find(a);
                let j = rng.below(2);
                let v = if rng.below(2) == 0 {
                    MV::Int(step as i64)
                } else {
                    MV::Id(b)
                };
                let tv = match v {
                    MV::Int(x) => Value::int(x),
                    MV::Id(k) => m.vals[k],
                    MV::Orig(o) => o,
                };
                let r = t.set_slot(m.vals[a], j, tv);
                let sa = m.stubbed[fa].is_some();
                desc = format!("set {a}.{j} := {v:?} -> {r:?}");
                if sa {
                    if r.is_ok() {
                        return Err(format!("step {step}: {desc}: write to stub succeeded"));
                    }
                } else {
                    r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
                    let bo = m.body_of[fa];
                    m.bodies[bo].0[j] = v;
                }
            }
            3 => {
                let (fa, fb) = (m.find(a), m.find(b));
                let r = t.become_forward(m.vals[a], m.vals[b]);
                desc = format!("forward {a}->{b} -> {r:?}");
                if fa == fb {
                    r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
                } else if m.stubbed[fa].is_some() {
                    if r.is_ok() {
                        return Err(format!("{desc}: stub forwarded"));
                    }
                } else {
                    r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
                    m.alias[fa] = fb;
                }
            }
            4 => {
                let (fa, fb) = (m.find(a), m.find(b));
                let r = t.become_two_way(m.vals[a], m.vals[b]);
                desc = format!("two-way {a}<->{b} -> {r:?}");
                if fa == fb {
                    r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
                } else if m.stubbed[fa].is_some() || m.stubbed[fb].is_some() {
                    if r.is_ok() {
                        return Err(format!("{desc}: stub swapped"));
                    }
                } else {
                    r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
                    m.body_of.swap(fa, fb);
                }
            }
            5 => {
                let out = t.try_collect().map_err(|e| e.to_string())?;
                desc = format!("collect {out:?}");
                for i in 0..m.vals.len() {
                    m.vals[i] = match &m.keep[i] {
                        Keep::Base => m.vals[i],
                        Keep::Root(r) => t.root(r).unwrap(),
                        Keep::Pin(h) => t
                            .pinned(*h)
                            .map_err(|e| format!("step {step}: pinned {i}: {e}"))?,
                    };
                }
            }
            6 => {
                // stub a (if a private object that is not a stub)
                let fa = m.find(a);
                if m.stubbed[fa].is_some() {
                    continue;
                }
                let slots = vec![t.slot(m.vals[a], 0).unwrap(), t.slot(m.vals[a], 1).unwrap()];
                let slots: Vec<_> = slots.into_iter().map(|v| t.pin(v).unwrap()).collect();
                let hash = t.identity_hash(m.vals[a]).unwrap();
                let cl = t.class_of(m.vals[a]).unwrap();
                let r = t.stub(m.vals[a], segment);
                desc = format!("stub {a} in {segment} -> {r:?}");
                if r.is_ok() {
                    m.stubbed[fa] = Some((slots, hash, cl));
                    segment += 1;
                }
            }
            7 | 8 => {
                // fill some stub
                let Some(fa) = (0..n)
                    .map(|i| (i + a) % n)
                    .find(|&i| m.stubbed[i].is_some() && m.find(i) == i)
                else {
                    continue;
                };
                let (hs, hash, cl) = m.stubbed[fa].take().unwrap();
                let slots: Vec<Value> = hs.iter().map(|&h| t.unpin(h).unwrap()).collect();
                let from = t
                    .alloc_with_hash(cl, Format::Pointers, &slots, &[], hash)
                    .map_err(|e| format!("step {step}: refill alloc: {e}"))?;
                let r = t.fill_stub(m.vals[fa], from);
                desc = format!("fill {fa} -> {r:?}");
                r.map_err(|e| format!("step {step}: {desc}: {e}"))?;
            }
            _ => unreachable!(),
        }
        // check every identity
        for i in 0..m.vals.len() {
            let fi = m.find(i);
            let v = m.vals[i];
            if m.stubbed[fi].is_some() {
                if !matches!(t.slot(v, 0), Err(Error::Swapped { .. })) {
                    return Err(format!(
                        "step {step} after {desc}: {i} stubbed but reads {:?}",
                        t.slot(v, 0)
                    ));
                }
                continue;
            }
            let (slots, hash, _) = &m.bodies[m.body_of[fi]];
            let h = t
                .identity_hash(v)
                .map_err(|e| format!("step {step} after {desc}: hash of {i}: {e}"))?;
            if h != *hash {
                return Err(format!(
                    "step {step} after {desc}: hash of {i} is {h}, model {hash}"
                ));
            }
            for (j, mv) in slots.iter().enumerate() {
                let got = t
                    .slot(v, j)
                    .map_err(|e| format!("step {step} after {desc}: slot {i}.{j}: {e}"))?;
                let ok = match *mv {
                    MV::Int(x) => got.as_int() == Some(x),
                    MV::Id(k) => t
                        .identical(got, m.vals[k])
                        .map_err(|e| format!("step {step} after {desc}: identical {i}.{j}: {e}"))?,
                    MV::Orig(o) => t.identical(got, o).unwrap_or(false),
                };
                if !ok {
                    return Err(format!(
                        "step {step} after {desc}: slot {i}.{j} = {got:?}, model {mv:?}"
                    ));
                }
            }
            for k in 0..m.vals.len() {
                let same = t
                    .identical(v, m.vals[k])
                    .map_err(|e| format!("step {step} after {desc}: identical {i},{k}: {e}"))?;
                if same != (m.find(k) == fi) {
                    return Err(format!(
                        "step {step} after {desc}: identical({i},{k}) = {same}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn random_becomes_stubs_and_collections_agree_with_a_model() {
    let mut fails = vec![];
    for seed in 1..300u64 {
        if let Err(e) = run_random(seed * 7919, 120) {
            fails.push(format!("seed {}: {e}", seed * 7919));
        }
    }
    for f in fails.iter().take(10) {
        eprintln!("{f}");
    }
    assert!(fails.is_empty(), "{} seeds failed", fails.len());
}
