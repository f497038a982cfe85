//! Helpers shared by the tenants crate's commit tests.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};

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
