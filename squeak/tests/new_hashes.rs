//! The identity hashes a tenant draws for the objects it makes fit the format its base was
//! imported from: 12 bits on a V3 image (whose headers hold no more, and whose own code
//! expects `identityHash` below 4,096), 22 on Spur. So a V3 tenant's new objects commit
//! and export back to V3 with the hashes they answered, where a 22-bit hash was refused.

mod common;

use common::*;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, Value};
use cowheap_squeak::{ExportOptions, export_bytes_with, import_bytes};
use cowheap_tenants::TenantConfig;
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};

/// `n` new Arrays of one slot made in a tenant of `heap`'s base (no hash given), committed
/// with the repository flattened: each new object's hash as the tenant answered it, in
/// allocation order, and the flattened version.
fn made_and_committed(heap: cowheap_heap::BaseHeap, n: usize) -> (Vec<u32>, std::sync::Arc<Base>) {
    let specials = heap.root("specialObjects").unwrap();
    let repo = Repository::with_config(
        Base::new(heap),
        CommitRights::Anyone,
        TenantConfig::default(),
    );
    let mut t = repo.fork();
    let array = t.class_of(specials).unwrap();
    let made: Vec<Value> = (0..n)
        .map(|i| {
            t.alloc_with(array, Format::Pointers, &[Value::int(i as i64)], &[])
                .unwrap()
        })
        .collect();
    let hashes = made.iter().map(|&v| t.identity_hash(v).unwrap()).collect();
    repo.commit_with(&mut t, "me", CommitMode::WriteWrite, &made)
        .unwrap();
    (hashes, repo.flatten().unwrap())
}

#[test]
fn a_v3_tenants_new_objects_get_12_bit_hashes_and_export_to_v3() {
    let mini = import_bytes(&image_bytes("mini.image")).unwrap();
    assert_eq!(mini.heap.hash_bits(), 12);
    let old = mini.heap.len();
    let n = 2_000;
    let (hashes, version) = made_and_committed(mini.heap, n);
    assert!(
        hashes.iter().all(|&h| (1..4_096).contains(&h)),
        "{hashes:?}"
    );
    // Spread over the width: most of 4,096 values are drawn by 2,000 objects' hashes
    // only if they are not bunched.
    let distinct: std::collections::BTreeSet<_> = hashes.iter().collect();
    assert!(distinct.len() > 1_500, "{} distinct hashes", distinct.len());
    let bytes = export_bytes_with(version.heap(), &ExportOptions::default())
        .expect("the V3 export takes the tenant's new objects");
    let back = import_bytes(&bytes).unwrap();
    let again: Vec<u32> = (old..old + n)
        .map(|i| back.heap.hash(ObjectIndex::from_u32(i as u32)).unwrap())
        .collect();
    assert_eq!(
        again, hashes,
        "the hashes the tenant answered are the file's"
    );
}

#[test]
fn a_spur_tenants_new_objects_get_22_bit_hashes() {
    let heap = import_bytes(&image_bytes(HEADLESS)).unwrap().heap;
    assert_eq!(heap.hash_bits(), 22);
    let (hashes, _) = made_and_committed(heap, 2_000);
    assert!(hashes.iter().all(|&h| h != 0 && h < 1 << 22));
    assert!(
        hashes.iter().any(|&h| h >= 1 << 12),
        "Spur hashes use more than 12 bits"
    );
}
