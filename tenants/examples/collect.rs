//! One collection of a tenant of 200,000 private objects, half of them garbage: a fixed
//! workload for counting a collection's instructions.
//!
//! ```text
//! cargo build --release -p cowheap-tenants --example collect
//! valgrind --tool=callgrind target/release/examples/collect
//! callgrind_annotate --inclusive=yes callgrind.out.* | grep 'Tenant>::collect'
//! ```
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_tenants::Tenant;

fn main() -> Result<(), cowheap_tenants::Error> {
    let base = Base::new(synth::image(10_000, 1));
    let class = base
        .heap()
        .root("true")
        .expect("the synthetic image names true");
    let mut t = Tenant::fork(&base);
    let size = ObjectSize { slots: 2, bytes: 0 };
    // Even objects form chains, a chain's head held every 1,000 objects; odd ones are garbage.
    let mut held = Vec::new();
    let mut prev = Value::int(0);
    for i in 0..200_000i64 {
        let v = t.alloc(class, Format::Pointers, size)?;
        t.set_slot(v, 0, Value::int(i))?;
        if i % 2 == 0 {
            t.set_slot(v, 1, prev)?;
            prev = v;
        }
        if i % 1_000 == 0 {
            held.push(prev);
        }
    }
    held.push(prev);
    let holder = t.alloc_with(class, Format::Pointers, &held, &[])?;
    t.set_root("held", holder)?;
    let out = t.collect();
    println!("{} live, {} freed", out.live, out.freed);
    assert_eq!((out.live, out.freed), (100_001, 100_000));
    Ok(())
}
