//! Swap-outs and fault-ins mixed with one-way and two-way becomes, writes (through stubs
//! too, under `with_faults`), collections and moves of the tenant to another swapper
//! (records, snapshot, restore, adopt), at random. Properties, after every step:
//! - the graph the tenant shows from its named roots (reads by `&self`, through the
//!   segments' views while they are out: classes, formats, identity hashes, bytes, slots
//!   and identity) is what it was before each swap-out, fault-in, collection and move,
//!   and before a refused become;
//! - a refused swap-out leaves the private bytes as they were;
//! - the private bytes the tenant counts are what a restore of its snapshot counts;
//! - at the end every segment out comes back, the graph unchanged, and no pin or stub is
//!   left.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_segment::swap::{MemStore, Swapper};
use cowheap_tenants::Tenant;

#[path = "../../tenants/tests/common/mod.rs"]
mod tenants_common;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The graph the tenant shows from its named roots, canonically, as the tenants crate's
/// own model tests read it.
fn graph(t: &Tenant) -> Vec<String> {
    tenants_common::graph(t, &[])
}

fn recount(t: &Tenant) -> (u64, u64) {
    let back = Tenant::restore_from(t.base(), &t.snapshot()).expect("a snapshot restores");
    let s = back.stats();
    (s.private_objects, s.private_bytes)
}

fn run(seed: u64, steps: usize) {
    let base = Base::new(synth::image(300, seed));
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(&base);
    let class = t.class_of(g).unwrap();
    let mut r = Rng(seed);
    let store = MemStore::new();
    let mut s = Swapper::new(store.clone());
    let mut vals: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .filter(|&x| base.heap().format(x).unwrap() == Format::Pointers)
        .take(6)
        .map(Value::base)
        .collect();
    for i in 0..8 {
        let v = t
            .alloc_with(
                class,
                Format::Pointers,
                &[Value::int(i), g, vals[i as usize % 6]],
                b"",
            )
            .unwrap();
        vals.push(v);
    }
    for i in 0..4 {
        t.set_slot(vals[6 + i], 1, vals[10 + i]).unwrap();
    }
    for i in 0..4 {
        t.set_root(&format!("r{i}"), vals[6 + i]).unwrap();
    }
    let mut log: Vec<String> = Vec::new();
    for step in 0..steps {
        let pick = |r: &mut Rng, vals: &Vec<Value>| vals[r.below(vals.len())];
        let (a, b) = (pick(&mut r, &vals), pick(&mut r, &vals));
        let before = graph(&t);
        let bytes = t.stats().private_bytes;
        let op = r.below(11);
        let what = match op {
            0 => {
                let n = r.below(4);
                let slots: Vec<Value> = (0..n).map(|_| pick(&mut r, &vals)).collect();
                let res = if r.below(4) == 0 {
                    t.alloc_with(class, Format::Bytes, &[], b"xy")
                } else {
                    t.alloc_with(class, Format::Pointers, &slots, b"")
                };
                if let Ok(v) = res {
                    vals.push(v);
                }
                format!("alloc {res:?}")
            }
            1 | 2 => {
                let i = r.below(3);
                let res = t.with_faults(|t| t.set_slot(a, i, b));
                format!("set_slot {a:?} {i} {b:?}: {res:?}")
            }
            3 => {
                let res = t.become_forward(a, b);
                if res.is_err() {
                    assert_eq!(before, graph(&t), "seed {seed} step {step}\n{log:#?}");
                }
                format!("become_forward {a:?} {b:?}: {res:?}")
            }
            4 => {
                let res = t.become_two_way(a, b);
                if res.is_err() {
                    assert_eq!(before, graph(&t), "seed {seed} step {step}\n{log:#?}");
                }
                format!("become_two_way {a:?} {b:?}: {res:?}")
            }
            5 => {
                t.collect();
                assert_eq!(
                    before,
                    graph(&t),
                    "seed {seed} step {step}: collect\n{log:#?}"
                );
                "collect".to_string()
            }
            6 | 7 => {
                let roots: Vec<Value> = (0..1 + r.below(2)).map(|_| pick(&mut r, &vals)).collect();
                let res = s.swap_out(&mut t, &roots);
                assert_eq!(
                    before,
                    graph(&t),
                    "seed {seed} step {step}: swap_out {roots:?} {res:?}\n{log:#?}"
                );
                if res.is_err() {
                    assert_eq!(bytes, t.stats().private_bytes);
                }
                format!("swap_out {roots:?}: {:?}", res.map(|o| o.id))
            }
            8 => {
                let out = s.swapped();
                if out.is_empty() {
                    "nothing out".to_string()
                } else {
                    let (id, _) = out[r.below(out.len())];
                    let res = s.fault_in(&mut t, id);
                    assert_eq!(
                        before,
                        graph(&t),
                        "seed {seed} step {step}: fault_in {id:?} {res:?}\n{log:#?}"
                    );
                    format!("fault_in {id:?}: {res:?}")
                }
            }
            9 => {
                let n = format!("r{}", r.below(4));
                let res = t.set_root(&n, a);
                format!("set_root {n} {a:?}: {res:?}")
            }
            _ => {
                // The tenant moves: its records and snapshot to a new swapper over the
                // same store (every value is re-made from its word).
                let records = s.records(&mut t).unwrap();
                let snap = t.snapshot();
                let mut t2 = Tenant::restore_from(t.base(), &snap).unwrap();
                let s2 = Swapper::new(store.clone());
                s2.adopt(&mut t2, &records).unwrap();
                vals = vals
                    .iter()
                    .map(|&v| {
                        if v.word().is_private() {
                            Value::owned(v.word(), t2.id())
                        } else {
                            v
                        }
                    })
                    .collect();
                assert_eq!(
                    before,
                    graph(&t2),
                    "seed {seed} step {step}: move\n{log:#?}"
                );
                t = t2;
                s = s2;
                "move".to_string()
            }
        };
        vals.retain(|&v| t.identity_word(v).is_ok());
        log.push(what);
        assert_eq!(
            recount(&t).1,
            t.stats().private_bytes,
            "seed {seed} step {step}: private bytes drift\n{log:#?}"
        );
    }
    // Everything comes back; nothing is left pinned.
    for (id, _) in s.swapped() {
        let before = graph(&t);
        s.fault_in(&mut t, id).unwrap();
        assert_eq!(
            before,
            graph(&t),
            "seed {seed}: final fault_in {id:?}\n{log:#?}"
        );
    }
    assert_eq!(t.pinned_count(), 0, "seed {seed}: pins left\n{log:#?}");
    assert_eq!(t.stubs().count(), 0, "seed {seed}: stubs left\n{log:#?}");
}

#[test]
fn random_swaps_becomes_and_collections_keep_the_graph() {
    for seed in 0..200 {
        run(seed, 60);
    }
}
