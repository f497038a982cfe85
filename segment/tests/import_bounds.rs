//! What an import makes must be what the target base can hold and what the segment says:
//! - a member's identity hash fits the target base's hash width (`BaseHeap::hash_bits`): a
//!   portable segment of a Spur tenant (22-bit hashes) imported into a V3 tenant (12 bits),
//!   and a segment file whose hashes are wider than any base's, give objects whose hashes
//!   the target's images and exporters hold, and an IdentitySet of such members placed by
//!   the wide hashes answers for each by its hash cut; a segment swapped out and faulted back into
//!   its own tenant keeps every hash as it was, even one wider than the base's;
//! - a member whose class out-pointer does not bind (accepted unbound) is not made, as the
//!   Etoys path leaves the instances of a class it cannot bind: no object of the tenant has
//!   nil for its class, and a field naming such a member reads nil;
//! - an Etoys project's out-pointer that is a Character carried by value in the stream (as
//!   Squeak's DataStream writes one) binds to the base's own Character of that value, as
//!   `Character>>comeFullyUpOnReload:` answers it (`Character value: value`), and the
//!   fields that name it hold it, not nil; a Spur base's is the immediate;
//! - a Symbol out-pointer names its Symbol by its exact bytes: a Symbol whose bytes are not
//!   UTF-8 (Squeak's Symbols are byte strings) binds in another base only to the Symbol of
//!   those bytes, not to another whose lossy UTF-8 text is the same.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, Value};
use cowheap_segment::bind::{self, BaseNames};
use cowheap_segment::datastream::Val;
use cowheap_segment::file;
use cowheap_segment::rehash;
use cowheap_segment::swap::{MemStore, Swapper};
use cowheap_segment::tenant::{self, OutRef};
use cowheap_segment::{OutPointer, Project};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
use std::sync::Arc;

#[test]
fn a_member_from_a_wider_hash_base_gets_a_hash_the_target_holds() {
    let (spur, spur_names) = common::base("headless-spur32.image");
    let (mini, _) = common::base("mini.image");
    assert_eq!(spur.heap().hash_bits(), 22);
    assert_eq!(mini.heap().hash_bits(), 12);
    let mut t = Tenant::fork(spur);
    let array = spur_names.global("Array").unwrap();
    // Arrays made in the Spur tenant: their drawn hashes use 22 bits, some past 12.
    let holder = common::alloc(&mut t, array, Format::Pointers, 64, 0);
    for i in 0..64 {
        let a = common::alloc(&mut t, array, Format::Pointers, 1, 0);
        t.set_slot(a, 0, Value::int(i)).unwrap();
        t.set_slot(holder, i as usize, a).unwrap();
    }
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    assert!(
        seg.objects.iter().any(|o| o.hash > 0xFFF),
        "no wide hash drawn"
    );
    seg.make_portable(&**t.base()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(mini.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(mini);
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    for &m in &imported.members {
        let h = t2.identity_hash(m).unwrap();
        assert!(h <= 0xFFF, "member of mini.image with identity hash {h:#x}");
    }
}

/// An IdentitySet of `n` Arrays in a `mini.image` tenant, each given a hash wider than
/// the base's 12 bits (as a Spur tenant draws them) and placed by it, extracted: the
/// segment, bound to its base.
fn wide_identity_set(n: usize) -> tenant::TenantSegment {
    let (mini, names) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let array = names.global("Array").unwrap();
    // Not a divisor of 4096: a cut hash leads elsewhere than the whole one.
    let slots = 4 * n + 1;
    let set = common::alloc(
        &mut t,
        names.global("IdentitySet").unwrap(),
        Format::Pointers,
        2,
        0,
    );
    let table = common::alloc(&mut t, array, Format::Pointers, slots, 0);
    t.set_slot(set, 0, Value::int(n as i64)).unwrap();
    t.set_slot(set, 1, table).unwrap();
    for i in 0..n {
        let a = common::alloc(&mut t, array, Format::Pointers, 0, 0);
        // Past 12 bits: 0x1000 and more.
        let h = 0x1000 * (i as u32 + 1) + 7 * i as u32 + 1;
        t.set_identity_hash(a, h).unwrap();
        let mut at = h as usize % slots;
        while !t.slot(table, at).unwrap().same_word(mini.heap().nil()) {
            at = (at + 1) % slots;
        }
        t.set_slot(table, at, a).unwrap();
    }
    tenant::extract(&t, &[set], &[]).unwrap()
}

#[test]
fn an_identity_set_of_members_whose_hashes_are_cut_is_rehashed() {
    let (mini, names) = common::base("mini.image");
    let seg = wide_identity_set(16);
    let bytes = file::to_bytes(&seg).unwrap();
    // Into another tenant of the same base, every out-pointer binding as it was: only the
    // cut hashes move the elements.
    let mut back = file::from_bytes(&bytes, Some(mini.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(mini);
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    assert_eq!(imported.rehash.rehashed.len(), 1, "{}", imported.rehash);
    let set = imported.roots[0];
    let table = t2.slot(set, 1).unwrap();
    let mut found = 0;
    for i in 0..t2.size(table).unwrap().slots {
        let a = t2.slot(table, i).unwrap();
        if a.same_word(mini.heap().nil()) {
            continue;
        }
        assert!(t2.identity_hash(a).unwrap() <= 0xFFF);
        let got = rehash::lookup(&t2, names, set, a).unwrap();
        assert!(got.is_some_and(|g| t2.identical(g, a).unwrap()), "slot {i}");
        found += 1;
    }
    assert_eq!(found, 16);
}

#[test]
fn a_segment_file_with_hashes_wider_than_any_base_imports_hashes_that_fit() {
    let (mini, names) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let array = names.global("Array").unwrap();
    let a = common::alloc(&mut t, array, Format::Pointers, 1, 0);
    let mut seg = tenant::extract(&t, &[a], &[]).unwrap();
    // A well-formed file (checksummed) naming a hash no base has.
    seg.objects[0].hash = u32::MAX;
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(mini.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(mini);
    let imported = back.import_into(&mut t2, &[], false).unwrap();
    let h = t2.identity_hash(imported.roots[0]).unwrap();
    assert!(h <= 0xFFF, "member of mini.image with identity hash {h:#x}");
}

#[test]
fn a_member_whose_class_does_not_bind_is_not_made_an_instance_of_nil() {
    let (mini, names) = common::base("mini.image");
    let nil = mini.heap().nil();
    let mut t = Tenant::fork(mini);
    let p = common::alloc(
        &mut t,
        names.global("Point").unwrap(),
        Format::Pointers,
        2,
        0,
    );
    t.set_slot(p, 0, Value::int(3)).unwrap();
    t.set_slot(p, 1, Value::int(4)).unwrap();
    let holder = common::alloc(
        &mut t,
        names.global("Array").unwrap(),
        Format::Pointers,
        2,
        0,
    );
    t.set_slot(holder, 0, p).unwrap();
    t.set_slot(holder, 1, Value::int(9)).unwrap();
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(mini.heap()).unwrap();
    // The writer's Point had another shape: the class does not bind in this base.
    for o in &mut seg.out {
        if let OutRef::Class { name, inst_vars } = o
            && name == "Point"
        {
            inst_vars.push("z".into());
        }
    }
    let bytes = file::to_bytes(&seg).unwrap();
    let mut back = file::from_bytes(&bytes, Some(mini.fingerprint())).unwrap();
    let mut t2 = Tenant::fork(mini);
    let imported = back.import_into(&mut t2, &[], true).unwrap();
    assert!(
        imported.unbound.iter().any(|u| u == "class Point"),
        "{:?}",
        imported.unbound
    );
    for &m in &imported.members {
        if m.same_word(nil) {
            continue;
        }
        let c = t2.class_of(m).unwrap();
        assert!(!c.same_word(nil), "member {m:?} made with class nil");
    }
    // The Point (member 1: the holder is the root) is not made.
    assert_eq!(imported.not_made, vec![1]);
    assert!(imported.members[1].same_word(nil));
    let h = imported.roots[0];
    assert_eq!(t2.slot(h, 1).unwrap().as_int(), Some(9));
    assert!(t2.slot(h, 0).unwrap().same_word(nil));
}

/// The Character of value `n` a V3 base holds: its one object of class `Character` whose
/// `value` is `n` (found by a scan written here).
fn base_character(b: &Base, n: i32) -> Value {
    let heap = b.heap();
    let found: Vec<_> = heap
        .indices()
        .filter(|&x| {
            let o = heap.object(x).unwrap();
            o.slots.first().and_then(|w| w.as_int()) == Some(i64::from(n))
                && o.class
                    .as_base()
                    .and_then(|c| cowheap_squeak::class_name(heap, c))
                    .as_deref()
                    == Some("Character")
        })
        .collect();
    assert_eq!(found.len(), 1, "Characters of value {n}");
    Value::base(found[0])
}

#[test]
fn character_out_pointers_of_a_project_bind_to_the_bases_characters() {
    let p = Project::open(image("segments/AgeComparison.005.pr")).unwrap();
    let chars: Vec<(usize, i32)> = p
        .out_pointers
        .iter()
        .enumerate()
        .filter_map(|(k, o)| match o {
            OutPointer::Object { class, stream } if class == "Character" => {
                let (_, fields) = p.stream.instance(Val::Obj(*stream)).unwrap();
                match fields.first() {
                    Some(Val::Int(n)) => Some((k, *n)),
                    other => panic!("a Character with value {other:?}"),
                }
            }
            _ => None,
        })
        .collect();
    assert_eq!(chars.len(), 19);
    for name in ["mini.image", "Scratch-1.4.0.6.image"] {
        let b = Base::new(cowheap_squeak::import(image(name)).unwrap().heap);
        let mut t = Tenant::fork(&b);
        let m = bind::materialise(&mut t, &p, "segment").unwrap();
        let expect: Vec<Value> = chars.iter().map(|&(_, n)| base_character(&b, n)).collect();
        for (&(k, n), &want) in chars.iter().zip(&expect) {
            match &m.bindings.out[k] {
                Ok(v) => assert!(t.identical(*v, want).unwrap(), "{name}: out-pointer {k}"),
                Err(why) => panic!(
                    "{name}: Character value {n} (out-pointer {}) not bound: {why}",
                    k + 1
                ),
            }
        }
        // Every field naming one of them holds the Character.
        let seg = &p.segment;
        let mut fields = 0;
        for (i, o) in seg.objects.iter().enumerate() {
            let Some(v) = m.objects[i] else { continue };
            for (f, oop) in o.pointers.iter().enumerate() {
                if let cowheap_segment::v3::Oop::Out(j) = *oop
                    && let Some(c) = chars.iter().position(|(k, _)| *k + 1 == j as usize)
                {
                    fields += 1;
                    let got = t.slot(v, f).unwrap();
                    assert!(
                        t.identical(got, expect[c]).unwrap(),
                        "{name}: field {f} of object {i}"
                    );
                }
            }
        }
        // A dictionary keyed by them: its keys are the Characters, not 19 nils.
        let keyed = m
            .members()
            .into_iter()
            .filter(|&d| {
                let Ok(array) = t.slot(d, 1) else {
                    return false;
                };
                let Ok(size) = t.size(array) else {
                    return false;
                };
                let keys: Vec<_> = (0..size.slots)
                    .filter_map(|i| t.slot(array, i).ok())
                    .filter(|a| !a.same_word(b.heap().nil()))
                    .filter_map(|a| t.slot(a, 0).ok())
                    .collect();
                keys.len() == chars.len()
                    && keys
                        .iter()
                        .all(|&k| expect.iter().any(|&c| t.identical(k, c).unwrap()))
            })
            .count();
        assert_eq!((fields, keyed), (19, 1), "{name}");
    }
}

#[test]
fn a_spur_base_binds_a_character_to_its_immediate() {
    let (spur, names) = common::base("headless-spur32.image");
    let c = names.character(spur.heap(), 97).unwrap();
    assert!(c.same_word(Value::char('a')));
    let (mini, names) = common::base("mini.image");
    assert!(names.character(mini.heap(), 256).is_none());
    assert!(names.character(mini.heap(), -1).is_none());
}

/// A repository over `base` whose first commit adds a one-byte Symbol of each of `bytes`,
/// with the words those Symbols have in it.
fn with_symbols(
    base: &Arc<Base>,
    names: &BaseNames,
    bytes: &[u8],
) -> (Repository, Vec<cowheap_heap::Word>) {
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut a = repo.fork();
    let symbol = names.global("Symbol").unwrap();
    let mut made = Vec::new();
    for &byte in bytes {
        let s = common::alloc(&mut a, symbol, Format::Bytes, 0, 1);
        a.set_bytes(s, 0, &[byte]).unwrap();
        made.push(s);
    }
    repo.commit_with(&mut a, "symbols", CommitMode::WriteWrite, &made)
        .unwrap();
    let words = made.iter().map(|&s| a.identity_word(s).unwrap()).collect();
    (repo, words)
}

#[test]
fn symbols_whose_bytes_are_not_utf8_bind_to_themselves() {
    let (mini, names) = common::base("mini.image");
    // The writer's base has #\xE9 (e acute in Latin-1); the reader's has #\xE8 (e grave)
    // and not #\xE9: the Symbol must not bind there.
    let (writer, words) = with_symbols(mini, names, &[0xE9]);
    let (reader, _) = with_symbols(mini, names, &[0xE8]);
    let mut t = writer.fork();
    let array = names.global("Array").unwrap();
    let holder = common::alloc(&mut t, array, Format::Pointers, 1, 0);
    t.set_slot(holder, 0, Value::shared(words[0])).unwrap();
    let mut seg = tenant::extract(&t, &[holder], &[]).unwrap();
    seg.make_portable(&**t.base()).unwrap();
    assert!(seg.is_portable());
    let bytes = file::to_bytes(&seg).unwrap();
    let mut t2 = reader.fork();
    let mut back = file::from_bytes(&bytes, Some(t2.base().fingerprint())).unwrap();
    let imported = back.import_into(&mut t2, &[], true).unwrap();
    let got = t2.slot(imported.roots[0], 0).unwrap();
    assert!(
        got.same_word(mini.heap().nil()),
        "#\\xE9 bound to a Symbol of bytes {:?}",
        t2.bytes(got)
    );
    // In a base that has it, it binds to it.
    let mut t3 = writer.fork();
    let mut back = file::from_bytes(&bytes, Some(t3.base().fingerprint())).unwrap();
    let imported = back.import_into(&mut t3, &[], false).unwrap();
    let got = t3.slot(imported.roots[0], 0).unwrap();
    assert!(t3.identical(got, Value::shared(words[0])).unwrap());
}

#[test]
fn a_fault_in_keeps_a_hash_wider_than_the_bases() {
    let (mini, names) = common::base("mini.image");
    let mut t = Tenant::fork(mini);
    let array = names.global("Array").unwrap();
    let a = common::alloc(&mut t, array, Format::Pointers, 1, 0);
    // An embedder's hash, wider than a V3 image's 12 bits.
    t.set_identity_hash(a, 0xA_BCDE).unwrap();
    let holder = common::alloc(&mut t, array, Format::Pointers, 1, 0);
    t.set_slot(holder, 0, a).unwrap();
    t.set_root("holder", holder).unwrap();
    let swapper = Swapper::new(MemStore::new());
    swapper.swap_out(&mut t, &[a]).unwrap();
    t.set_slot(a, 0, Value::int(1)).unwrap();
    assert_eq!(t.stub_segment(a).unwrap(), None);
    assert_eq!(t.identity_hash(a).unwrap(), 0xA_BCDE);
}
