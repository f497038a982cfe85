//! Shared by the integration tests: a small random base and its plain description.
#![allow(dead_code, reason = "each test binary uses a different part")]

use cowheap::{Base, Builder, Format, Word};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// An oracle value: an immediate word or a reference to an oracle object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OVal {
    Imm(Word),
    Ref(usize),
}

/// An object as plain data.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OObj {
    pub class: usize,
    pub format: Format,
    pub hash: u32,
    pub slots: Vec<OVal>,
    pub bytes: Vec<u8>,
}

pub(crate) fn to_oval(w: Word) -> OVal {
    match w.as_base() {
        Some(x) => OVal::Ref(x.get()),
        None => OVal::Imm(w),
    }
}

/// Every object of `heap` as plain data.
pub(crate) fn describe(heap: &cowheap::BaseHeap) -> Vec<OObj> {
    heap.indices()
        .map(|i| {
            let o = heap.object(i).unwrap();
            OObj {
                class: o.class.as_base().unwrap().get(),
                format: o.format,
                hash: o.hash,
                slots: o.slots.iter().map(|&w| to_oval(w)).collect(),
                bytes: o.bytes.to_vec(),
            }
        })
        .collect()
}

/// A small random base: nil, then objects of every format pointing anywhere.
pub(crate) fn random_base(seed: u64) -> (Arc<Base>, Vec<OObj>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(6..20usize);
    let mut b = Builder::new();
    let nil = b.add_nil();
    let any = |rng: &mut ChaCha8Rng| match rng.random_range(0..4) {
        0 => Word::int(rng.random_range(-50..50)).unwrap(),
        1 => Word::char(rng.random_range('a'..='e')),
        _ => Word::base(cowheap::ObjectIndex::from_u32(
            rng.random_range(0..n as u32),
        )),
    };
    for _ in 1..n {
        let class = Word::base(cowheap::ObjectIndex::from_u32(
            rng.random_range(0..n as u32),
        ));
        let (format, ns, nb) = match rng.random_range(0..4) {
            0 => (Format::Bytes, 0, rng.random_range(0..6)),
            1 => (
                Format::CompiledMethod,
                rng.random_range(1..3),
                rng.random_range(1..4),
            ),
            _ => (Format::Pointers, rng.random_range(0..5), 0),
        };
        let slots = (0..ns).map(|_| any(&mut rng)).collect();
        let bytes = (0..nb).map(|_| rng.random()).collect();
        b.add(class, format, slots, bytes).unwrap();
    }
    b.set_class(
        nil,
        Word::base(cowheap::ObjectIndex::from_u32(n as u32 - 1)),
    )
    .unwrap();
    b.add_root("first", Word::base(cowheap::ObjectIndex::from_u32(1)))
        .unwrap();
    let heap = b.freeze().unwrap();
    let pristine = describe(&heap);
    (Base::new(heap), pristine)
}

/// Property-test cases: `PROPTEST_CASES` if set, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
