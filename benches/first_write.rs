//! The first write to a base object, which copies it into the tenant, against its floor: a
//! plain copy of the same words and bytes into growing arrays plus one hash-table insert and
//! the store itself.
//!
//! ```text
//! cargo bench --bench first_write                 # medians of 31 alternating rounds
//! cargo bench --bench first_write -- --once       # one pass each, for instruction counts:
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/deps/first_write-HASH --once
//! callgrind_annotate --inclusive=yes cg.out | grep -E '=> .*first_write::(tenant|plain)_'
//! ```
//!
//! Each pass writes slot 0 of 4,096 distinct random objects (with at least one slot) of a
//! 100,000-object synthetic base, starting from an empty tenant (`tenant_first_writes`) or
//! from empty arrays and an empty table (`plain_copies`): both pay their containers' growth.
//! The inclusive count of each function divided by 4,096 is its instructions per first write.

use cowheap::heap::ObjectIndex;
use cowheap::{Base, BaseHeap, Tenant, Value, synth};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const OPS: usize = 4096;

/// The floor's state: object words, bytes, and where each copied object starts.
struct Plain {
    words: Vec<u64>,
    bytes: Vec<u8>,
    table: FxHashMap<u32, usize>,
}

#[inline(never)]
fn tenant_first_writes(base: &Arc<Base>, xs: &[ObjectIndex]) -> Tenant {
    let mut t = Tenant::fork(base);
    for (n, &x) in xs.iter().enumerate() {
        t.set_slot(Value::base(x), 0, Value::int(n as i64))
            .expect("a slot");
    }
    t
}

#[inline(never)]
fn plain_copies(heap: &BaseHeap, xs: &[ObjectIndex]) -> Plain {
    let mut p = Plain {
        words: Vec::new(),
        bytes: Vec::new(),
        table: FxHashMap::default(),
    };
    for (n, &x) in xs.iter().enumerate() {
        let o = heap.object(x).expect("an object");
        let at = p.words.len();
        // The header (class, sizes, hash and format), then the slots and the bytes.
        p.words.push(o.class.bits());
        p.words
            .push(o.slots.len() as u64 | (o.bytes.len() as u64) << 32);
        p.words.push(u64::from(o.hash) | (o.format as u64) << 32);
        p.words.extend(o.slots.iter().map(|w| w.bits()));
        p.bytes.extend_from_slice(o.bytes);
        p.table.insert(x.as_u32(), at);
        p.words[at + 3] = Value::int(n as i64).word().bits();
    }
    p
}

fn main() {
    let once = std::env::args().any(|a| a == "--once");
    let heap = synth::image(100_000, 3);
    let mut candidates: Vec<ObjectIndex> = heap
        .indices()
        .filter(|&x| heap.size(x).is_ok_and(|s| s.slots > 0))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    rand::seq::SliceRandom::shuffle(&mut candidates[..], &mut rng);
    let xs: Vec<ObjectIndex> = candidates.into_iter().take(OPS).collect();
    let base = Base::new(heap);
    // Both agree on what was written.
    let t = tenant_first_writes(&base, &xs);
    let p = plain_copies(base.heap(), &xs);
    for (n, &x) in xs.iter().enumerate() {
        assert_eq!(t.slot(Value::base(x), 0).unwrap().as_int(), Some(n as i64));
        assert_eq!(
            p.words[p.table[&x.as_u32()] + 3],
            Value::int(n as i64).word().bits()
        );
    }
    let copied: usize = xs
        .iter()
        .map(|&x| {
            let s = base.heap().size(x).unwrap();
            24 + 8 * s.slots + s.bytes
        })
        .sum();
    if once {
        println!("one pass each: {OPS} first writes, {copied} bytes of objects");
        return;
    }
    let (mut ta, mut pa) = (vec![], vec![]);
    for round in 0..31 {
        let timed = |f: &mut dyn FnMut()| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e9 / OPS as f64
        };
        let mut tenant = || drop(black_box(tenant_first_writes(&base, &xs)));
        let mut plain = || drop(black_box(plain_copies(base.heap(), &xs)));
        if round % 2 == 0 {
            ta.push(timed(&mut tenant));
            pa.push(timed(&mut plain));
        } else {
            pa.push(timed(&mut plain));
            ta.push(timed(&mut tenant));
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (t, p) = (med(ta), med(pa));
    println!(
        "first write {t:.1} ns, plain copy + insert {p:.1} ns: {:.2}x ({OPS} objects, {:.0} bytes each on average)",
        t / p,
        copied as f64 / OPS as f64
    );
}
