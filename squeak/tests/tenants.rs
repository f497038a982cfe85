//! A thousand tenants on the real Scratch base: each writes into real objects (a global's
//! value through Smalltalk's association, a method dictionary entry, an element of an Array)
//! and allocates, and sees only its own writes.

mod common;

use common::*;
use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, Value};
use cowheap_squeak::{class_name_of, classes::symbol_text_of};
use cowheap_tenants::Tenant;

const TENANTS: usize = 1_000;

fn obj(heap: &BaseHeap, v: Value) -> ObjectIndex {
    heap.index_of(v).unwrap()
}

/// The association of the global `name` in the SystemDictionary `dict` (tally, array).
fn global(heap: &BaseHeap, dict: Value, name: &str) -> Value {
    let array = heap.slot(dict, 1).unwrap();
    let n = heap.size(obj(heap, array)).unwrap().slots;
    (0..n)
        .map(|i| heap.slot(array, i).unwrap())
        .filter(|a| {
            a.as_base()
                .is_some_and(|x| class_name_of(heap, x).as_deref() == Some("Association"))
        })
        .find(|&a| {
            let key = heap.slot(a, 0).unwrap().as_base();
            key.and_then(|k| symbol_text_of(heap, k)).as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no global {name}"))
}

#[test]
fn a_thousand_tenants_write_real_objects_of_scratch_in_isolation() {
    let heap = cowheap_squeak::import_bytes(&image_bytes(SCRATCH))
        .unwrap()
        .heap;
    let base_bytes = heap.memory_bytes();
    let base = Base::new(heap);
    let h = base.heap();
    let smalltalk = h.root("Smalltalk").unwrap();
    let special = h.root("specialObjects").unwrap();
    // Smalltalk at: #Transcript, through its association.
    let transcript = global(h, smalltalk, "Transcript");
    let transcript_value = h.slot(transcript, 1).unwrap().word();
    // Object's method dictionary (tally, array of methods, selectors): its first method.
    let object_class = h.slot(global(h, smalltalk, "Object"), 1).unwrap();
    let methods = h.slot(h.slot(object_class, 1).unwrap(), 1).unwrap();
    let entry = (0..h.size(obj(h, methods)).unwrap().slots)
        .find(|&i| {
            h.slot(methods, i)
                .unwrap()
                .as_base()
                .is_some_and(|x| class_name_of(h, x).as_deref() == Some("CompiledMethod"))
        })
        .unwrap();
    let method = h.slot(methods, entry).unwrap().word();
    // An element of an Array: a free slot of the special objects array.
    assert_eq!(class_name_of(h, obj(h, special)).as_deref(), Some("Array"));
    let element = 22;
    let element_value = h.slot(special, element).unwrap().word();
    let array_class = h.slot(special, 7).unwrap();

    let mut tenants: Vec<Tenant> = (0..TENANTS).map(|_| Tenant::fork(&base)).collect();
    for (t, tenant) in tenants.iter_mut().enumerate() {
        let mine = Value::int(t as i64);
        let fresh = tenant
            .alloc_with(
                array_class,
                Format::Pointers,
                &[mine, Value::char('t')],
                &[],
            )
            .unwrap();
        tenant.set_slot(transcript, 1, fresh).unwrap();
        tenant.set_slot(methods, entry, mine).unwrap();
        tenant
            .set_slot(special, element, Value::int(-(t as i64)))
            .unwrap();
    }
    for (t, tenant) in tenants.iter_mut().enumerate() {
        let fresh = tenant.slot(transcript, 1).unwrap();
        assert_eq!(
            tenant.slot(fresh, 0).unwrap().as_int(),
            Some(t as i64),
            "tenant {t}"
        );
        assert_eq!(
            tenant.slot(methods, entry).unwrap().as_int(),
            Some(t as i64)
        );
        assert_eq!(
            tenant.slot(special, element).unwrap().as_int(),
            Some(-(t as i64))
        );
        // Reached through the dictionary, not only through the object held.
        let array = tenant.slot(smalltalk, 1).unwrap();
        assert!(
            tenant
                .identical(array, h.slot(smalltalk, 1).unwrap())
                .unwrap()
        );
        assert_eq!(tenant.stats().copies, 3);
        assert_eq!(tenant.stats().allocations, 1);
    }
    // The base saw nothing, and a fresh tenant sees the base.
    assert!(h.slot(transcript, 1).unwrap().word() == transcript_value);
    assert!(h.slot(methods, entry).unwrap().word() == method);
    assert!(h.slot(special, element).unwrap().word() == element_value);
    let fresh = Tenant::fork(&base);
    assert!(fresh.slot(transcript, 1).unwrap().word() == transcript_value);
    assert!(fresh.slot(special, element).unwrap().word() == element_value);

    let private: usize = tenants.iter().map(Tenant::memory_bytes).sum();
    let charged: u64 = tenants.iter().map(|t| t.stats().private_bytes).sum();
    println!(
        "{TENANTS} tenants on Scratch ({} objects, {base_bytes} bytes of base): {private} bytes \
         private in all ({} per tenant, {charged} charged), {:.5} of one base copy per tenant",
        h.len(),
        private / TENANTS,
        private as f64 / TENANTS as f64 / base_bytes as f64
    );
    assert!(
        private < base_bytes,
        "a thousand tenants hold less than one copy of the base"
    );
}
