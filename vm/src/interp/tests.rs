//! The method lookup on the real images: every method dictionary's probe agrees with a scan
//! of its keys, and the selective flushes (primitives 116 and 119) forget what they must and
//! keep the rest.

use super::{CACHE_SIZE, LookupWork, SelectorKeys, Vm, cache_slot};
use crate::{FlatHeap, ObjectMemory, Symbols};
use cowheap_heap::{Value, Word};
use std::path::PathBuf;

fn flat(name: &str) -> (FlatHeap, Symbols) {
    let dir = std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES",
        path.display()
    );
    let heap = cowheap_squeak::import(&path).unwrap().heap;
    (FlatHeap::from_base(&heap), Symbols::from_base(&heap))
}

/// Every method dictionary of the image (the instances of the class of SmallInteger's).
fn method_dictionaries(m: &FlatHeap) -> Vec<Value> {
    let small_integer = m.class_of(Value::int(1)).unwrap();
    let md_class = m.class_of(m.slot(small_integer, 1).unwrap()).unwrap();
    let mut all = Vec::new();
    m.enumerate_objects(&mut all).unwrap();
    all.into_iter()
        .filter(|&o| m.class_of(o).unwrap().word() == md_class.word())
        .collect()
}

fn probes_agree_with_scans(name: &str) {
    let (m, _) = flat(name);
    let vm = Vm::new(&m).unwrap();
    let dicts = method_dictionaries(&m);
    assert!(
        dicts.len() > 50,
        "{name}: {} method dictionaries",
        dicts.len()
    );
    let mut probed = 0;
    let mut spur_primitives = 0;
    for d in dicts {
        let n = m.size(d).unwrap().slots;
        let keys = n - 2;
        assert!(
            keys.is_power_of_two(),
            "{name}: a dictionary of {keys} keys"
        );
        for i in 2..n {
            let k = m.slot(d, i).unwrap();
            if k.word() == vm.sp.nil.word() || !k.is_object() {
                continue;
            }
            assert_eq!(
                vm.dict_probe(
                    &m,
                    d,
                    k,
                    keys,
                    &mut SelectorKeys::default(),
                    &mut LookupWork::new()
                )
                .unwrap(),
                Some(i),
                "{name}"
            );
            assert_eq!(
                vm.dict_scan(
                    &m,
                    d,
                    k,
                    n,
                    &mut SelectorKeys::default(),
                    &mut LookupWork::new()
                )
                .unwrap(),
                Some(i),
                "{name}"
            );
            probed += 1;
            // Its value is a CompiledMethod (a lookup refuses any other), and its header
            // decodes (a Spur one reads its primitive from the method's first bytecodes).
            let method = m.slot(m.slot(d, 1).unwrap(), i - 2).unwrap();
            assert_eq!(
                m.format(method).unwrap(),
                cowheap_heap::Format::CompiledMethod,
                "{name}"
            );
            let h = vm.header(&m, method).unwrap();
            if vm.sp.spur && h.primitive != 0 {
                assert_eq!(
                    m.bytes(method).unwrap()[0],
                    crate::bytecodes::CALL_PRIMITIVE
                );
                spur_primitives += 1;
            }
        }
        // A selector the dictionary does not hold: nil's class is no selector.
        let absent = m.class_of(vm.sp.nil).unwrap();
        assert_eq!(
            vm.dict_probe(
                &m,
                d,
                absent,
                keys,
                &mut SelectorKeys::default(),
                &mut LookupWork::new()
            )
            .unwrap(),
            None
        );
    }
    assert!(probed > 300, "{name}: {probed} selectors");
    assert_eq!(vm.sp.spur, spur_primitives > 0, "{name}: {spur_primitives}");
}

#[test]
fn every_selector_of_every_method_dictionary_is_found_by_its_probe() {
    probes_agree_with_scans("mini.image");
    probes_agree_with_scans("Scratch-1.4.0.6.image");
    probes_agree_with_scans("bootstrapped.image");
    probes_agree_with_scans("headless-spur32.image");
}

#[test]
fn selective_flushes_forget_one_selector_or_one_method_and_keep_the_rest() {
    let (m, symbols) = flat("mini.image");
    let mut vm = Vm::new(&m).unwrap();
    let int = m.class_of(Value::int(1)).unwrap();
    let plus = symbols.get("+").unwrap();
    let printstring = symbols.get("printString").unwrap();
    let m_plus = vm.lookup(&m, int, plus).unwrap().unwrap().method;
    vm.lookup(&m, int, printstring).unwrap().unwrap();
    let misses = vm.stats.cache_misses;
    vm.lookup(&m, int, plus).unwrap();
    vm.lookup(&m, int, printstring).unwrap();
    assert_eq!(vm.stats.cache_misses, misses, "both cached");
    // By selector: printString's entry goes, +'s stays.
    vm.flush_selector(&m, printstring).unwrap();
    vm.lookup(&m, int, plus).unwrap();
    assert_eq!(vm.stats.cache_misses, misses);
    vm.lookup(&m, int, printstring).unwrap();
    assert_eq!(vm.stats.cache_misses, misses + 1);
    // By method: +'s entry goes, printString's stays.
    vm.flush_method(&m, m_plus).unwrap();
    vm.lookup(&m, int, printstring).unwrap();
    assert_eq!(vm.stats.cache_misses, misses + 1);
    vm.lookup(&m, int, plus).unwrap();
    assert_eq!(vm.stats.cache_misses, misses + 2);
}

#[test]
fn the_cache_slot_depends_on_every_bit_of_the_selector_index() {
    // The selectors of one class spread over the cache rather than sharing a few slots.
    let class = Word::from_bits(12_345 << 3);
    let slots: std::collections::HashSet<usize> = (0..256u64)
        .map(|i| cache_slot(class, Word::from_bits((40_000 + i) << 3)))
        .collect();
    assert!(slots.iter().all(|&s| s < CACHE_SIZE));
    assert!(slots.len() > 180, "{} slots for 256 selectors", slots.len());
}

/// A `Vm` can be moved to another thread and shared by reference between threads.
#[test]
fn a_vm_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Vm>();
}

/// Steps a [`super::Chain`] takes along `next` from `start` before it stops.
fn chain_steps(start: u32, next: impl Fn(u32) -> u32) -> u32 {
    let v = |i: u32| Value::base(cowheap_heap::ObjectIndex::from_u32(i));
    let mut chain = super::Chain::new(v(start));
    let mut c = start;
    let mut n = 0;
    loop {
        c = next(c);
        n += 1;
        if !chain.step(v(c)) {
            return n;
        }
    }
}

#[test]
fn a_superclass_walk_goes_round_a_cycle_at_most_about_twice() {
    // A class that is its own superclass: stopped at the first step.
    assert_eq!(chain_steps(5, |c| c), 1);
    // A prefix of 10 classes, then a cycle of 7: within twice prefix and cycle.
    let next = |c: u32| if c < 17 { c + 1 } else { 10 };
    let n = chain_steps(0, next);
    assert!((17..=2 * 17 + 2).contains(&n), "{n} steps");
    // A cycle of 1,000: a few thousand steps, not the cap's ten thousand.
    let n = chain_steps(0, |c| (c + 1) % 1_000);
    assert!((1_000..=2_100).contains(&n), "{n} steps");
    // A chain with no end and no cycle stops at the cap.
    assert_eq!(chain_steps(0, |c| c + 1), super::MAX_CHAIN + 1);
}
