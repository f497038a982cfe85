//! The conformance suite on the local directory backend.

mod common;

use common::Local;
use cowheap_store::{Access, LocalStore, StoreError};
use std::sync::Arc;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                common::$case(&Local::new());
            }
        )*
    };
}

conformance!(
    blobs_and_dedup,
    records,
    claims_and_epochs,
    resume_race_threads,
    resume_race_processes,
    fencing,
    lease_expiry,
    cross_tenant_refused,
    corrupt_blobs,
    suspend_resume_nodes,
);

#[test]
fn not_a_store_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        LocalStore::open(
            dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator
        ),
        Err(StoreError::NotAStore { .. })
    ));
    for bad in ["", "../x", ".hidden", "a/b", "sp ace"] {
        assert!(matches!(
            cowheap_store::TenantName::new(bad),
            Err(StoreError::InvalidName { .. })
        ));
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LocalStore>();
    check::<cowheap_store::PgStore>();
    check::<cowheap_store::Node>();
    check::<cowheap_store::SwapRegistry>();
    check::<cowheap_store::PgServer>();
    check::<StoreError>();
    check::<std::sync::Arc<dyn cowheap_store::Store>>();
}

/// A record whose base has gone from the store: resume is a typed error, the claim is
/// released and the state stays.
#[test]
fn a_record_naming_a_missing_base() {
    let h = Local::new();
    let fp = common::real_base(&h, 1_000);
    let a = common::node(&h, "a", Access::Operator);
    let tenant = common::t("orphan");
    a.store().create_tenant(&tenant, fp, None).unwrap();
    let r = a.resume(&tenant).unwrap();
    a.suspend(r).unwrap();
    let state = a.store().record(&tenant).unwrap().state;
    std::fs::remove_file(
        h.dir
            .path()
            .join("bases")
            .join(cowheap_store::fingerprint_hex(&fp)),
    )
    .unwrap();
    let b = common::node(&h, "b", Access::Operator);
    assert!(matches!(
        b.resume(&tenant),
        Err(StoreError::BaseMissing { fingerprint }) if fingerprint == fp
    ));
    let rec = a.store().record(&tenant).unwrap();
    assert_eq!((rec.owner, rec.state), (None, state));
}
