//! The conformance suite on the local directory backend.

mod common;

use common::{Damage, Harness};
use cowheap_store::{Access, Clock, Digest, LocalStore, Store, StoreError};
use std::path::Path;
use std::sync::Arc;

struct Local {
    dir: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Local {
    fn new() -> Local {
        let dir = tempfile::tempdir().unwrap();
        LocalStore::init(
            dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        Local {
            dir,
            scratch: tempfile::tempdir().unwrap(),
        }
    }
}

impl Harness for Local {
    fn open(&self, access: Access, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(LocalStore::open(self.dir.path(), clock, access)?))
    }

    fn address(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn damage(&self, d: &Digest, how: Damage) {
        let s = LocalStore::open(
            self.dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        let path = s.blob_path(d);
        let mut bytes = std::fs::read(&path).unwrap();
        match how {
            Damage::Truncate => bytes.truncate(bytes.len() - 10),
            Damage::Flip => {
                let mid = bytes.len() / 2 + 8;
                bytes[mid] ^= 0x10;
            }
        }
        std::fs::write(&path, bytes).unwrap();
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

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
