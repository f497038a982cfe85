//! How many object-memory calls a workload makes of a tenant, by operation and by what they
//! are made on (an object of the base, one of the tenant's own, an immediate): the measure
//! behind "which tenant operations a bytecode costs". The tenant is wrapped in a counting
//! [`ObjectMemory`]; the interpreter is the same generic code.
//! `cargo run --release -p cowheap-vm --example calls -- IMAGES_DIR [benchFib N | compile] [ROUNDS]`
//! (`compile`: `Integer compile: 'triple ^self * 3'. 14 triple` on Scratch; counts are of
//! the last round).

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value};
use cowheap_tenants::{Header, Tenant};
use cowheap_vm::{Collected, MemResult, ObjectMemory, Symbols, Vm, WeakSlots};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A memory that counts the calls made of it.
struct Counting<M> {
    inner: M,
    counts: RefCell<BTreeMap<(&'static str, &'static str), u64>>,
}

impl<M> Counting<M> {
    fn note(&self, op: &'static str, v: Value) {
        let on = if !v.word().is_ref() {
            "immediate"
        } else if v.word().is_private() {
            "private"
        } else {
            "base"
        };
        *self.counts.borrow_mut().entry((op, on)).or_default() += 1;
    }
}

impl<M: ObjectMemory> ObjectMemory for Counting<M> {
    fn class_of(&self, v: Value) -> MemResult<Value> {
        self.note("class_of", v);
        self.inner.class_of(v)
    }
    fn slot(&self, obj: Value, i: usize) -> MemResult<Value> {
        self.note("slot", obj);
        self.inner.slot(obj, i)
    }
    fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> MemResult<()> {
        self.note("set_slot", obj);
        self.inner.set_slot(obj, i, v)
    }
    fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> MemResult<()> {
        self.note("set_slots", obj);
        self.inner.set_slots(obj, start, values)
    }
    fn bytes(&self, obj: Value) -> MemResult<&[u8]> {
        self.note("bytes", obj);
        self.inner.bytes(obj)
    }
    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()> {
        self.note("set_bytes", obj);
        self.inner.set_bytes(obj, offset, data)
    }
    fn size(&self, obj: Value) -> MemResult<ObjectSize> {
        self.note("size", obj);
        self.inner.size(obj)
    }
    fn format(&self, obj: Value) -> MemResult<Format> {
        self.note("format", obj);
        self.inner.format(obj)
    }
    fn header(&self, obj: Value) -> MemResult<Header> {
        self.note("header", obj);
        self.inner.header(obj)
    }
    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value> {
        self.note("alloc", class);
        self.inner.alloc(class, format, size)
    }
    fn identical(&self, a: Value, b: Value) -> MemResult<bool> {
        self.note("identical", a);
        self.inner.identical(a, b)
    }
    fn identity_hash(&self, obj: Value) -> MemResult<u32> {
        self.note("identity_hash", obj);
        self.inner.identity_hash(obj)
    }
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()> {
        self.note("become_forward", a);
        self.inner.become_forward(a, b)
    }
    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()> {
        self.note("become_two_way", a);
        self.inner.become_two_way(a, b)
    }
    fn root(&self, name: &str) -> Option<Value> {
        self.inner.root(name)
    }
    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()> {
        self.inner.set_root(name, v)
    }
    fn remove_root(&mut self, name: &str) {
        self.inner.remove_root(name)
    }
    fn private_bytes(&self) -> u64 {
        self.inner.private_bytes()
    }
    fn collect(&mut self, roots: &[Value], weak: &WeakSlots) -> MemResult<Collected> {
        self.inner.collect(roots, weak)
    }
    fn enumerate_objects(&self, out: &mut Vec<Value>) -> MemResult<()> {
        self.inner.enumerate_objects(out)
    }
    fn set_class(&mut self, obj: Value, class: Value) -> MemResult<()> {
        self.note("set_class", obj);
        self.inner.set_class(obj, class)
    }
    fn set_identity_hash(&mut self, obj: Value, hash: u32) -> MemResult<()> {
        self.note("set_identity_hash", obj);
        self.inner.set_identity_hash(obj, hash)
    }
    fn identity_key(&self, v: Value) -> MemResult<u64> {
        self.note("identity_key", v);
        self.inner.identity_key(v)
    }
    fn has_fault_handler(&self) -> bool {
        self.inner.has_fault_handler()
    }
    fn fault_in(&mut self, segment: u64) -> MemResult<()> {
        self.inner.fault_in(segment)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/images".into());
    let workload = args.next().unwrap_or_else(|| "compile".into());
    let n: i64 = if workload == "benchFib" {
        args.next().and_then(|a| a.parse().ok()).unwrap_or(22)
    } else {
        0
    };
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let image = if workload == "compile" {
        "Scratch-1.4.0.6.image"
    } else {
        "bootstrapped.image"
    };
    let heap = cowheap_squeak::import(format!("{dir}/{image}"))
        .unwrap()
        .heap;
    let s = Symbols::from_base(&heap);
    let base = Base::new(heap);
    let mut m = Counting {
        inner: Tenant::fork(&base),
        counts: RefCell::default(),
    };
    let mut vm = Vm::new(&m).unwrap();
    let mut bytecodes = 0;
    for _ in 0..rounds {
        m.counts.borrow_mut().clear();
        let before = vm.stats();
        let r = if workload == "compile" {
            vm.evaluate(
                &mut m,
                &s,
                "Integer compile: 'triple ^self * 3'. 14 triple",
                u64::MAX,
            )
        } else {
            vm.send_named(&mut m, &s, Value::int(n), "benchFib", &[], u64::MAX)
        };
        assert!(r.unwrap().as_int().is_some());
        bytecodes = vm.stats().bytecodes - before.bytecodes;
    }
    println!("{workload}, the last of {rounds} rounds: {bytecodes} bytecodes");
    let counts = m.counts.borrow();
    let total: u64 = counts.values().sum();
    for ((op, on), c) in counts.iter() {
        println!(
            "{op:>14} on {on:9} {c:>9}  {:.3} a bytecode",
            *c as f64 / bytecodes as f64
        );
    }
    println!(
        "{:>14}    {:9} {total:>9}  {:.3} a bytecode",
        "all",
        "",
        total as f64 / bytecodes as f64
    );
}
