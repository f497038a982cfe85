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
