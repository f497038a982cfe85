//! Become, collection, quotas, stubs and fault handlers at their edges: a collection
//! walks each chain of forwarders once, a refused operation leaves the tenant exactly as it
//! was (its graph, counters, memory and recorded reads), the memory a tenant reports takes
//! in what its stubs keep, and a fault handler keeps the handler it hands over to.

mod common;
use common::graph;

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::{Error, Tenant};
use std::sync::Arc;

fn setup() -> (Arc<Base>, Value, Value) {
    let base = Base::new(synth::image(1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    (base, g, class)
}

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

fn run_random(seed: u64, steps: usize) {
    run_random_with(seed, steps, false)
}

/// A body kept for a stub, as a swap-out keeps it in its segment.
struct Kept {
    stub: Value,
    class: Value,
    format: Format,
    slots: Vec<Value>,
    bytes: Vec<u8>,
    hash: u32,
}

fn run_random_with(seed: u64, steps: usize, stubs: bool) {
    let mut out: Vec<Kept> = Vec::new();
    let mut pins: Vec<cowheap_tenants::Handle> = Vec::new();
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    let mut r = Rng(seed);
    let mut vals: Vec<Value> = base
        .heap()
        .indices()
        .skip(20)
        .take(12)
        .map(Value::base)
        .collect();
    vals.push(g);
    let mut handles = Vec::new();
    let mut log = Vec::new();
    for step in 0..steps {
        let op = r.below(if stubs { 14 } else { 12 });
        let pick = |r: &mut Rng, vals: &Vec<Value>| vals[r.below(vals.len())];
        let before = graph(&t, &handles);
        let stats = t.stats();
        let (a, b) = (pick(&mut r, &vals), pick(&mut r, &vals));
        let res: Result<(), Error> = match op {
            0 => {
                let n = r.below(4);
                let slots: Vec<Value> = (0..n).map(|_| pick(&mut r, &vals)).collect();
                t.alloc_with(class, Format::Pointers, &slots, &[])
                    .map(|v| vals.push(v))
            }
            1 => {
                let i = r.below(3);
                t.set_slot(a, i, b)
            }
            2 => t.become_forward(a, b),
            3 => t.become_two_way(a, b),
            4 => {
                t.collect();
                let after = graph(&t, &handles);
                assert_eq!(
                    before, after,
                    "seed {seed} step {step}: a collection changed the graph\n{log:?}"
                );
                Ok(())
            }
            5 => {
                // An operation that made objects (referring to each other and to what the
                // tenant has) and then failed frees them.
                let before_stats = t.stats();
                let mut made: Vec<Value> = Vec::new();
                for _ in 0..1 + r.below(3) {
                    let mut slots: Vec<Value> =
                        (0..r.below(3)).map(|_| pick(&mut r, &vals)).collect();
                    if let Some(&m) = made.last() {
                        slots.push(m);
                    }
                    match t.alloc_with(class, Format::Pointers, &slots, &[]) {
                        Ok(m) => made.push(m),
                        Err(_) => break,
                    }
                }
                let out = t.free_unreachable(&made).map(|_| ());
                assert_eq!(t.stats().private_bytes, before_stats.private_bytes);
                let after = graph(&t, &handles);
                assert_eq!(
                    before, after,
                    "seed {seed} step {step}: free_unreachable changed the graph\n{log:?}"
                );
                out
            }
            6 => t.set_root(&format!("r{}", r.below(4)), a),
            7 => {
                t.remove_root(&format!("r{}", r.below(4)));
                Ok(())
            }
            8 => t.pin(a).map(|h| handles.push(h)),
            9 => {
                if handles.is_empty() {
                    Ok(())
                } else {
                    let h = handles.swap_remove(r.below(handles.len()));
                    t.unpin(h).map(|_| ())
                }
            }
            10 => {
                let q = if r.below(2) == 0 {
                    None
                } else {
                    Some(t.stats().private_bytes + r.below(200) as u64)
                };
                t.set_quota(q);
                Ok(())
            }
            11 => {
                // Swap one object out and straight back in.
                swap_out_and_in(&mut t, a)
            }
            12 => (|| -> Result<(), Error> {
                let h = t.header(a)?;
                if !t.resolve(a)?.word().is_private() {
                    return Ok(());
                }
                let slots: Vec<Value> = (0..h.size.slots)
                    .map(|j| t.slot(a, j))
                    .collect::<Result<_, _>>()?;
                let bytes = t.bytes(a)?.to_vec();
                let hash = t.identity_hash(a)?;
                t.stub(a, 9)?;
                for &v in slots.iter().chain([&h.class]) {
                    pins.push(t.pin(v)?);
                }
                out.push(Kept {
                    stub: a,
                    class: h.class,
                    format: h.format,
                    slots,
                    bytes,
                    hash,
                });
                Ok(())
            })(),
            _ => (|| -> Result<(), Error> {
                let mut pairs = Vec::new();
                for k in &out {
                    let body = t.alloc_with_hash(k.class, k.format, &k.slots, &k.bytes, k.hash)?;
                    pairs.push((k.stub, body));
                }
                t.fill_stubs(&pairs)?;
                out.clear();
                for h in pins.drain(..) {
                    t.unpin(h)?;
                }
                Ok(())
            })(),
        };
        log.push(format!(
            "{step}: op {op} {:?} {:?} -> {:?}",
            a.word(),
            b.word(),
            res.as_ref().err()
        ));
        if res.is_err() && op < 11 {
            assert_eq!(
                before,
                graph(&t, &handles),
                "seed {seed} step {step}: a refused op changed the graph\n{log:?}"
            );
            let s = t.stats();
            assert_eq!(
                (
                    s.private_objects,
                    s.private_bytes,
                    s.becomes,
                    s.copies,
                    s.allocations
                ),
                (
                    stats.private_objects,
                    stats.private_bytes,
                    stats.becomes,
                    stats.copies,
                    stats.allocations
                ),
                "seed {seed} step {step}: a refused op changed the counters\n{log:?}"
            );
        }
        let shown = graph(&t, &handles);
        assert!(
            !shown
                .iter()
                .any(|l| l.contains("ERR") || l.contains("handle:")),
            "seed {seed} step {step}: a reachable reference fails\n{shown:#?}\n{log:#?}"
        );
        vals.retain(|&v| t.resolve(v).is_ok());
        if vals.is_empty() {
            vals.push(g);
        }
    }
}

/// Stubs private object `a` and fills the stub again with a copy of its body, as a swap-out
/// and a fault-in do.
fn swap_out_and_in(t: &mut Tenant, a: Value) -> Result<(), Error> {
    let h = t.header(a)?;
    if !t.resolve(a)?.word().is_private() {
        return Ok(());
    }
    let slots: Vec<Value> = (0..h.size.slots)
        .map(|j| t.slot(a, j))
        .collect::<Result<_, _>>()?;
    let bytes = t.bytes(a)?.to_vec();
    let hash = t.identity_hash(a)?;
    let body = t.alloc_with_hash(h.class, h.format, &slots, &bytes, hash)?;
    t.stub(a, 5)?;
    t.fill_stub(a, body)
}

/// As above, with segments swapped out (their outside references pinned, as a swapper
/// pins them) and brought back later, all their stubs at once.
#[test]
fn random_swap_outs_keep_the_graph() {
    for seed in 0..150 {
        run_random_with(seed, 150, true);
    }
}

#[test]
fn random_becomes_collections_and_refusals_keep_the_graph() {
    for seed in 0..200 {
        run_random(seed, 150);
    }
}

/// A collection of `n` slots holding the head of a chain of `m` one-way becomes (an object
/// becomed onto a new one again and again, as a class redefined many times), or with
/// `chained` false the same objects with the slots holding the chain's end already: the
/// steps its mark took along chains of forwarders.
fn collect_chain(n: usize, m: usize, chained: bool) -> u64 {
    let (base, _, class) = setup();
    let mut t = Tenant::fork(&base);
    let head = t
        .alloc_with(class, Format::Pointers, &[Value::int(0)], &[])
        .unwrap();
    let holder = t
        .alloc(class, Format::Pointers, ObjectSize { slots: n, bytes: 0 })
        .unwrap();
    t.set_root("holder", holder).unwrap();
    // Slots store where a value leads when stored: the head, before it is becomed.
    if chained {
        for i in 0..n {
            t.set_slot(holder, i, head).unwrap();
        }
    }
    let mut last = head;
    let mut made = Vec::new();
    for i in 0..m {
        let next = t
            .alloc_with(class, Format::Pointers, &[Value::int(i as i64)], &[])
            .unwrap();
        made.push(next);
        if chained {
            t.become_forward(last, next).unwrap();
        }
        last = next;
    }
    if !chained {
        for i in 0..n {
            t.set_slot(holder, i, last).unwrap();
        }
    }
    let out = t.collect();
    assert_eq!(out.live, 2);
    assert_eq!(
        t.slot(holder, n - 1).unwrap().word(),
        t.resolve(last).unwrap().word()
    );
    out.steps
}

/// A collection is O(private objects and their slots) however long the chains of
/// forwarders its slots hold: each chain is walked once, not once for every slot that
/// holds it.
#[test]
fn a_collection_walks_each_chain_of_forwarders_once() {
    let (n, m) = (2_000, 2_000);
    let flat = collect_chain(n, m, false);
    let chained = collect_chain(n, m, true);
    assert_eq!(flat, 0, "slots holding the chain's end take no step");
    assert!(
        chained <= 2 * (n + m) as u64,
        "{n} slots through a chain of {m} forwarders: {chained} steps"
    );
}

/// The auxiliary bits a stub keeps are memory the tenant holds.
#[test]
fn the_bits_stubs_keep_are_counted_in_the_tenants_memory() {
    use cowheap_heap::Builder;
    let mut b = Builder::new();
    let nil = b.add_nil();
    let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
    let n = 20_000;
    let mut objs = Vec::new();
    for i in 0..n {
        let x = b.add(class, Format::Pointers, vec![nil], vec![]).unwrap();
        b.set_aux(x, 0x40 | (i & 7)).unwrap();
        objs.push(x);
    }
    let base = Base::new(b.freeze().unwrap());
    let mut t = Tenant::fork(&base);
    let vals: Vec<Value> = objs
        .iter()
        .map(|w| Value::base(w.as_base().unwrap()))
        .collect();
    for &v in &vals {
        t.set_slot(v, 0, Value::int(1)).unwrap();
    }
    let before = t.memory_bytes();
    for &v in &vals {
        t.stub(v, 9).unwrap();
    }
    let after = t.memory_bytes();
    // Stubbing gives no arena memory back (its words are dead until compaction), and the
    // bits of 20,000 stubs take at least 12 bytes each.
    assert!(
        after >= before + n as usize * 12,
        "{before} bytes before stubbing, {after} after"
    );
}

/// A handler that hands over to another and then faults a second segment in through it
/// keeps the one it set.
#[test]
fn a_handler_that_hands_over_and_faults_through_its_successor_keeps_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    let _ = g;
    let a = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let b = t
        .alloc_with(class, Format::Pointers, &[Value::int(2)], &[])
        .unwrap();
    t.set_root("a", a).unwrap();
    t.set_root("b", b).unwrap();
    t.stub(a, 3).unwrap();
    t.stub(b, 4).unwrap();
    let second = Arc::new(AtomicUsize::new(0));
    let s = second.clone();
    use cowheap_tenants::stubs::FaultHandler;
    t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
        let body = t.alloc_with(class, Format::Pointers, &[Value::int(1)], &[])?;
        t.fill_stub(a, body)?;
        let s = s.clone();
        t.set_fault_handler(Some(FaultHandler::new(move |t, _| {
            s.fetch_add(1, Ordering::Relaxed);
            let body = t.alloc_with(class, Format::Pointers, &[Value::int(2)], &[])?;
            t.fill_stub(b, body)
        })));
        // A write through a stub of the other segment faults it in through the successor.
        t.set_slot(b, 0, Value::int(5))
    })));
    t.fault_in(3).unwrap();
    assert_eq!(t.slot(b, 0).unwrap().as_int(), Some(5));
    assert_eq!(second.load(Ordering::Relaxed), 1);
    // The successor is the tenant's handler now.
    t.stub(a, 7).unwrap();
    let _ = t.fault_in(7);
    assert_eq!(
        second.load(Ordering::Relaxed),
        2,
        "the first handler was put back"
    );
}

/// Everything a caller can observe of `t` that a refused operation must leave alone: its
/// counters, memory, recorded reads and table, and the private objects `objs` (read after
/// the reads recorded are taken, which reading them does not change).
fn observe(t: &Tenant, objs: &[Value]) -> String {
    let mut s = format!(
        "{:?} mem={} reads={:?} diverted={}",
        t.stats(),
        t.memory_bytes(),
        t.reads_recorded().map(|r| {
            let mut v: Vec<_> = r.into_iter().collect();
            v.sort();
            v
        }),
        t.diverted()
    );
    for &o in objs {
        s += &format!(
            " [{:?} {:?} {:?}]",
            t.identity_hash(o).ok(),
            t.size(o).ok(),
            t.slot(o, 0).ok().map(|v| v.word())
        );
    }
    s
}

/// A two-way become the quota refuses changes nothing; the base object whose size decided
/// it is recorded as read, as a first write the quota refuses records it.
#[test]
fn a_two_way_become_refused_by_the_quota_changes_nothing() {
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    t.record_reads(true).unwrap();
    let p = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    t.set_quota(Some(t.stats().private_bytes + 8));
    let before = observe(&t, &[p]);
    assert!(matches!(
        t.become_two_way(g, p),
        Err(Error::QuotaExceeded { .. })
    ));
    let x = g.word().as_base().unwrap().as_u32();
    assert_eq!(
        t.reads_recorded().unwrap().into_iter().collect::<Vec<_>>(),
        [x]
    );
    t.record_reads(false).unwrap();
    t.record_reads(true).unwrap();
    assert_eq!(observe(&t, &[p]), before);
}

/// A become refused on a read-only base, or for a stub, changes nothing and reads nothing:
/// the base object's body played no part in the refusal.
#[test]
fn a_become_refused_before_it_reads_records_no_read() {
    let (base, g, class) = setup();
    let mut t = Tenant::fork(&base);
    t.record_reads(true).unwrap();
    let p = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    let s = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    t.set_root("s", s).unwrap();
    t.stub(s, 4).unwrap();
    let before = observe(&t, &[p]);
    assert!(matches!(
        t.become_two_way(g, s),
        Err(Error::Swapped { segment: 4, .. })
    ));
    assert_eq!(observe(&t, &[p]), before);
    t.set_base_read_only(true);
    let before = observe(&t, &[p]);
    assert!(t.become_two_way(p, g).is_err());
    assert!(t.become_forward(g, p).is_err());
    assert_eq!(observe(&t, &[p]), before);
}

/// `n` slots holding a base object becomed onto another base object, that one onto a
/// third, and so on `m` times (the table entries of a chain of base objects), or with
/// `chained` false the same becomes with the slots holding the chain's end: the steps of
/// a collection along chains of forwarders, and the lookups of a read through the chain's
/// head afterwards.
fn collect_base_chain(n: usize, m: usize, chained: bool) -> (u64, u64) {
    let base = Base::new(synth::image(m + 1_000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(g).unwrap();
    let ys: Vec<Value> = base
        .heap()
        .indices()
        .skip(100)
        .take(m + 1)
        .map(Value::base)
        .collect();
    let mut t = Tenant::fork(&base);
    let holder = t
        .alloc(class, Format::Pointers, ObjectSize { slots: n, bytes: 0 })
        .unwrap();
    t.set_root("holder", holder).unwrap();
    if chained {
        for i in 0..n {
            t.set_slot(holder, i, ys[0]).unwrap();
        }
    }
    for i in 0..m {
        t.become_forward(ys[i], ys[i + 1]).unwrap();
    }
    if !chained {
        for i in 0..n {
            t.set_slot(holder, i, ys[m]).unwrap();
        }
    }
    let steps = t.collect().steps;
    assert!(t.identical(t.slot(holder, 0).unwrap(), ys[m]).unwrap());
    let before = t.stats().lookups;
    assert!(t.identical(ys[0], ys[m]).unwrap());
    (steps, t.stats().lookups - before)
}

/// The same for a chain of base objects: each of their table entries points at the
/// chain's end after a collection, so a read through the head (which a base object may
/// hold, and no collection patches) takes a lookup or two, not one a link.
#[test]
fn a_collection_walks_a_chain_of_base_objects_once() {
    let (n, m) = (2_000, 2_000);
    let (flat, _) = collect_base_chain(n, m, false);
    let (chained, lookups) = collect_base_chain(n, m, true);
    assert!(
        chained <= flat + 4 * (n + m) as u64,
        "{n} slots through a chain of {m} base objects: {chained} steps, against {flat} without"
    );
    assert!(lookups <= 2, "{lookups} lookups through the chain's head");
}
