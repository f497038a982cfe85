//! Helpers shared by the tenants crate's tests.
#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;

/// `n` pointer objects of `base` with at least two slots, past the first few.
pub(crate) fn pointers(base: &Base, n: usize) -> Vec<Value> {
    let h = base.heap();
    h.indices()
        .skip(10)
        .filter(|&x| h.format(x).unwrap() == Format::Pointers && h.size(x).unwrap().slots >= 2)
        .map(Value::base)
        .take(n)
        .collect()
}

/// The graph a tenant shows from its roots and handles, canonically: objects numbered in
/// the order a walk first meets them, base objects the tenant has not copied named by
/// index and not entered.
pub(crate) fn graph(t: &Tenant, handles: &[cowheap_tenants::Handle]) -> Vec<String> {
    let mut out = Vec::new();
    let mut starts: Vec<Value> = t.root_names().filter_map(|n| t.root(n)).collect();
    for &h in handles {
        match t.pinned_value(h) {
            Ok(v) => starts.push(v),
            Err(e) => out.push(format!("handle: {e}")),
        }
    }
    let mut seen: Vec<Value> = Vec::new();
    let name = |seen: &mut Vec<Value>, v: Value| -> String {
        if !v.word().is_ref() {
            return format!("{:?}", v.word());
        }
        let w = match t.identity_word(v) {
            Ok(w) => w,
            Err(e) => return format!("ERR {e}"),
        };
        if w.is_base() {
            return format!("B{}", w.as_base().unwrap().get());
        }
        match seen
            .iter()
            .position(|&s| t.identical(s, v).unwrap_or(false))
        {
            Some(i) => format!("P{i}"),
            None => {
                seen.push(v);
                format!("P{}", seen.len() - 1)
            }
        }
    };
    let roots: Vec<String> = starts.iter().map(|&v| name(&mut seen, v)).collect();
    out.push(format!("roots {roots:?}"));
    let mut i = 0;
    while i < seen.len() {
        let v = seen[i];
        let line = match t.header(v) {
            Err(e) => format!("P{i}: {e}"),
            Ok(h) => {
                let class = name(&mut seen, h.class);
                let mut slots = Vec::new();
                for j in 0..h.size.slots {
                    match t.slot(v, j) {
                        Ok(s) => slots.push(name(&mut seen, s)),
                        Err(e) => slots.push(format!("ERR {e}")),
                    }
                }
                format!(
                    "P{i}: {class} {:?} {:?} {slots:?} {:?}",
                    h.format,
                    t.identity_hash(v).ok(),
                    t.bytes(v).ok()
                )
            }
        };
        out.push(line);
        i += 1;
    }
    out
}
