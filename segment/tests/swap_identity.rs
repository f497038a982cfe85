//! Swap-outs and extracts name each member by the object it is now: a class word that is
//! a forwarder (a fault-in's classes, a become, until the next collection) or a root given
//! by a forwarder are the object they lead to, so no object becomes two members or a
//! member recorded under a word a collection frees. A segment whose member classes form a
//! cycle, which no file reader takes back, is refused before anything changes; a
//! swapper's records leave out a segment whose stubs were all collected; and a segment out
//! comes back after its tenant moves to a later version of its base.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value, synth};
use cowheap_segment::swap::{MemStore, Swapper};
use cowheap_segment::tenant::{extract, tenant_roots};
use cowheap_tenants::Tenant;

fn setup() -> (std::sync::Arc<Base>, Tenant, Value) {
    let base = Base::new(synth::image(300, 5));
    let t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    (base, t, class)
}

fn held(t: &mut Tenant, class: Value, v: Value) {
    let h = t.alloc_with(class, Format::Pointers, &[v], &[]).unwrap();
    t.set_root("holder", h).unwrap();
}

#[test]
fn swap_out_again_after_a_fault_keeps_a_private_class() {
    let (_, mut t, class) = setup();
    let my_class = t
        .alloc_with(class, Format::Pointers, &[Value::int(42)], &[])
        .unwrap();
    let inst = t.alloc_with(my_class, Format::Pointers, &[], &[]).unwrap();
    let root = t
        .alloc_with(class, Format::Pointers, &[inst, Value::int(0)], &[])
        .unwrap();
    held(&mut t, class, root);
    let s = Swapper::new(MemStore::new());
    s.swap_out(&mut t, &[root]).unwrap();
    t.set_slot(root, 1, Value::int(5)).unwrap(); // faults in
    s.swap_out(&mut t, &[root]).unwrap();
    assert!(t.class_of(inst).is_ok());
    t.set_slot(root, 1, Value::int(6)).unwrap(); // faults in again
    assert_eq!(t.stub_segment(my_class).unwrap(), None);
    assert_eq!(t.slot(my_class, 0).unwrap().as_int(), Some(42));
    assert!(t.identical(t.class_of(inst).unwrap(), my_class).unwrap());
}

#[test]
fn a_class_also_held_in_a_slot_is_one_member() {
    let (_, mut t, class) = setup();
    let my_class = t.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
    let inst = t.alloc_with(my_class, Format::Pointers, &[], &[]).unwrap();
    let root = t
        .alloc_with(
            class,
            Format::Pointers,
            &[inst, my_class, Value::int(0)],
            &[],
        )
        .unwrap();
    held(&mut t, class, root);
    let s = Swapper::new(MemStore::new());
    s.swap_out(&mut t, &[root]).unwrap();
    t.set_slot(root, 2, Value::int(5)).unwrap();
    let mut seg = extract(&t, &[root], &tenant_roots(&t)).unwrap();
    let mut t2 = Tenant::fork(t.base());
    let outside = seg.outside.clone();
    let r = seg.import_into(&mut t2, &outside, false).unwrap().roots[0];
    let (i2, c2) = (t2.slot(r, 0).unwrap(), t2.slot(r, 1).unwrap());
    assert!(t2.identical(t2.class_of(i2).unwrap(), c2).unwrap());
    s.swap_out(&mut t, &[root]).unwrap();
    t.set_slot(root, 2, Value::int(6)).unwrap();
    assert!(t.identical(t.class_of(inst).unwrap(), my_class).unwrap());
}

#[test]
fn a_root_given_by_a_forwarder_is_the_object_it_leads_to() {
    let (base, mut t, class) = setup();
    let a = t.alloc_with(class, Format::Pointers, &[], &[]).unwrap();
    let b = t
        .alloc_with(class, Format::Pointers, &[Value::int(0)], &[])
        .unwrap();
    let c = t.alloc_with(class, Format::Pointers, &[b], &[]).unwrap();
    t.set_slot(b, 0, c).unwrap();
    t.become_forward(a, b).unwrap();
    let mut seg = extract(&t, &[a], &tenant_roots(&t)).unwrap();
    assert_eq!(seg.objects.len(), 2, "b and c");
    let mut t2 = Tenant::fork(&base);
    let r = seg.import_into(&mut t2, &[], false).unwrap().roots[0];
    let back = t2.slot(t2.slot(r, 0).unwrap(), 0).unwrap();
    assert!(t2.identical(back, r).unwrap());
}

#[test]
fn member_classes_in_a_cycle_are_refused_before_anything_changes() {
    let (_, mut t, class) = setup();
    let c1 = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let c2 = t.alloc_with(c1, Format::Pointers, &[], &[]).unwrap();
    t.set_class(c1, c2).unwrap();
    held(&mut t, class, c1);
    let s = Swapper::new(MemStore::new());
    assert!(s.swap_out(&mut t, &[c1]).is_err());
    assert_eq!(t.slot(c1, 0).unwrap().as_int(), Some(1));
    assert!(s.swapped().is_empty());
    assert!(extract(&t, &[c1], &tenant_roots(&t)).is_err());
}

#[test]
fn records_leave_out_a_segment_whose_stubs_were_collected() {
    let (_, mut t, class) = setup();
    let root = t
        .alloc_with(class, Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    let h = t.alloc_with(class, Format::Pointers, &[root], &[]).unwrap();
    t.set_root("holder", h).unwrap();
    let s = Swapper::new(MemStore::new());
    s.swap_out(&mut t, &[root]).unwrap();
    t.set_slot(h, 0, Value::int(0)).unwrap();
    t.collect();
    assert!(s.records(&mut t).unwrap().is_empty());
    assert!(s.swapped().is_empty());
}

/// A segment swapped out comes back after its tenant commits (it moves to the version its
/// commit made, over the one the segment was made on), and so after a rebase.
#[test]
fn a_segment_out_comes_back_after_its_tenant_commits() {
    use cowheap_tenants::commit::{CommitRights, Repository};
    let base = Base::new(synth::image(1000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    let class = t.class_of(g).unwrap();
    let root = t
        .alloc_with(class, Format::Pointers, &[Value::int(7), g], &[])
        .unwrap();
    held(&mut t, class, root);
    let s = Swapper::new(MemStore::new());
    let out = s.swap_out(&mut t, &[root]).unwrap();
    t.set_slot(g, 0, Value::int(3)).unwrap();
    repo.commit(&mut t, "t").unwrap();
    s.fault_in(&mut t, out.id).unwrap();
    assert_eq!(t.slot(root, 0).unwrap().as_int(), Some(7));
    assert!(t.identical(t.slot(root, 1).unwrap(), g).unwrap());
    assert_eq!(t.slot(g, 0).unwrap().as_int(), Some(3));
    // Out again, then another tenant commits and this one rebases over it.
    let out = s.swap_out(&mut t, &[root]).unwrap();
    let mut other = repo.fork();
    other.set_slot(g, 1, Value::int(9)).unwrap();
    repo.commit(&mut other, "o").unwrap();
    repo.rebase(&mut t).unwrap();
    s.fault_in(&mut t, out.id).unwrap();
    assert_eq!(t.slot(root, 0).unwrap().as_int(), Some(7));
    assert_eq!(t.slot(g, 1).unwrap().as_int(), Some(9));
}
