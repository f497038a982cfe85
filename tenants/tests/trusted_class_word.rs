//! A base opened without verification (`Verification::Trust`) may hold a class word that is
//! a private reference. Read, it belongs to no tenant, and every tenant refuses it; a first
//! write to an object holding one is refused, so it never names a tenant's own object, and
//! no commit publishes one. (Before, the class was taken as the reading tenant's own
//! reference, and a commit published the private object it named to every tenant.)

use cowheap_forwarders::Base;
use cowheap_heap::image::Verification;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, ObjectSize, Value};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitRights, Repository};

#[test]
fn a_trusted_class_word_never_names_the_readers_own_object() {
    let u = |f: &[u8], at: usize| u64::from_le_bytes(f[at..at + 8].try_into().unwrap()) as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.cowheap");
    cowheap_heap::synth::image(40, 3).save(&path).unwrap();
    let one_slot = ObjectSize { slots: 1, bytes: 0 };
    // The private word a fresh tenant's first object gets.
    let probe = Base::new(BaseHeap::open(&path).unwrap());
    let first = Tenant::fork(&probe)
        .alloc(probe.heap().nil(), Format::Pointers, one_slot)
        .unwrap();
    // The class word of the first object with a slot becomes that word.
    let mut f = std::fs::read(&path).unwrap();
    let offsets_at = 232 + u(&f, 32);
    let (x, off) = (1..40)
        .map(|i| (i, u(&f, offsets_at + 8 * i)))
        .find(|&(_, o)| u(&f, 232 + o * 8 + 8) & 0xffff_ffff > 0)
        .unwrap();
    f[232 + off * 8..232 + off * 8 + 8].copy_from_slice(&first.word().bits().to_le_bytes());
    cowheap_testkit::reseal_image(&mut f);
    std::fs::write(&path, &f).unwrap();
    assert!(
        BaseHeap::open(&path).is_err(),
        "verification refuses the file"
    );
    let base = Base::new(BaseHeap::open_with(&path, Verification::Trust).unwrap());
    let obj = Value::base(ObjectIndex::new(x).unwrap());

    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    let secret = t
        .alloc(base.heap().nil(), Format::Pointers, one_slot)
        .unwrap();
    t.set_slot(secret, 0, Value::int(4242)).unwrap();
    assert_eq!(
        secret.word(),
        first.word(),
        "the word the base's class names"
    );
    // Read, the class is no tenant's: the tenant refuses it.
    let classes = [
        t.class_of(obj),
        t.header(obj).map(|h| h.class),
        t.reader().class_of(obj),
        t.reader().header(obj).map(|h| h.class),
    ];
    for class in classes {
        let c = class.expect("the class word is read");
        assert_eq!(c.word(), secret.word());
        assert!(
            t.slot(c, 0).is_err(),
            "the base's class word names no object of the tenant"
        );
        assert!(t.identical(c, secret).is_err());
    }
    // A first write to the object is refused, and nothing is copied or committed.
    assert!(t.set_slot(obj, 0, Value::int(1)).is_err());
    assert_eq!(t.diverted(), 0);
    let v1 = repo.commit(&mut t, "anyone").unwrap();
    assert_eq!(
        v1.len(),
        base.len(),
        "the commit published no private object"
    );
}

/// A trusted base's object holding a base reference past the end, in a slot or as its
/// class: a first write to it, and a become that copies it, are refused with nothing
/// changed, since the copy would make a tenant whose snapshot no restore accepts. A write
/// to an object of the same base that holds no such reference copies it, and the tenant's
/// snapshot restores.
#[test]
fn a_trusted_reference_past_the_end_is_never_copied() {
    let u = |f: &[u8], at: usize| u64::from_le_bytes(f[at..at + 8].try_into().unwrap()) as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.cowheap");
    cowheap_heap::synth::image(40, 3).save(&path).unwrap();
    let mut f = std::fs::read(&path).unwrap();
    let offsets_at = 232 + u(&f, 32);
    // The first two objects with at least two slots: slot 1 of the first, and the class
    // word of the second, become a reference to object 1,000,000 of a 40-object heap.
    let mut wide = (1..40)
        .map(|i| (i, u(&f, offsets_at + 8 * i)))
        .filter(|&(_, o)| u(&f, 232 + o * 8 + 8) & 0xffff_ffff >= 2);
    let (x, x_at) = wide.next().unwrap();
    let (y, y_at) = wide.next().unwrap();
    let (z, _) = wide.next().unwrap();
    let far = cowheap_heap::Word::base(ObjectIndex::from_u32(1_000_000))
        .bits()
        .to_le_bytes();
    let slot_1 = 232 + (x_at + 3 + 1) * 8;
    f[slot_1..slot_1 + 8].copy_from_slice(&far);
    f[232 + y_at * 8..232 + y_at * 8 + 8].copy_from_slice(&far);
    cowheap_testkit::reseal_image(&mut f);
    std::fs::write(&path, &f).unwrap();
    assert!(
        BaseHeap::open(&path).is_err(),
        "verification refuses the file"
    );
    let base = Base::new(BaseHeap::open_with(&path, Verification::Trust).unwrap());
    assert!(base.heap().is_trusted());
    let [x, y, z] = [x, y, z].map(|i| Value::base(ObjectIndex::new(i).unwrap()));
    let mut t = Tenant::fork(&base);
    let mine = t
        .alloc(
            base.heap().nil(),
            Format::Pointers,
            ObjectSize { slots: 2, bytes: 0 },
        )
        .unwrap();
    for (what, obj) in [("a slot", x), ("the class", y)] {
        assert!(
            matches!(
                t.set_slot(obj, 0, Value::int(7)),
                Err(cowheap_tenants::Error::Heap(
                    cowheap_heap::Error::InvalidWord(_)
                ))
            ),
            "{what}"
        );
        assert!(t.become_two_way(mine, obj).is_err(), "{what}");
        assert_eq!(t.diverted(), 0, "{what}");
    }
    t.set_slot(z, 0, Value::int(7)).unwrap();
    assert_eq!(t.diverted(), 1);
    let back = Tenant::restore_from(&base, &t.snapshot()).expect("the snapshot restores");
    assert_eq!(back.slot(z, 0).unwrap().as_int(), Some(7));
}
