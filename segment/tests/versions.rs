//! Segments of tenants on committed versions: an out-pointer to an object a version added
//! (past the frozen heap) binds on import into a tenant of that version.

use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_segment::tenant;
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};

#[test]
fn an_out_pointer_to_an_object_a_version_added_binds() {
    let base = Base::new(synth::image(1000, 1));
    let g = base.heap().root("Smalltalk").unwrap();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut a = repo.fork();
    let class = a.class_of(g).unwrap();
    let n = a
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    a.set_slot(n, 0, Value::int(77)).unwrap();
    let v1 = repo
        .commit_with(&mut a, "a", CommitMode::WriteWrite, &[n])
        .unwrap();
    let added = a.identity_word(n).unwrap();
    assert!(added.as_base().unwrap().get() >= base.heap().len());
    let mut t = repo.fork();
    let holder = t
        .alloc(class, Format::Pointers, ObjectSize { slots: 1, bytes: 0 })
        .unwrap();
    t.set_slot(holder, 0, Value::shared(added)).unwrap();
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    let mut t2 = repo.fork();
    assert_eq!(t2.base().id(), v1.id());
    let imported = seg.import_into(&mut t2, &[], false).unwrap();
    assert!(imported.unbound.is_empty(), "{:?}", imported.unbound);
    let h = imported.roots[0];
    let bound = t2.slot(h, 0).unwrap();
    assert_eq!(bound.word(), added);
    assert_eq!(t2.slot(bound, 0).unwrap().as_int(), Some(77));
}
