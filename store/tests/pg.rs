//! The conformance suite on the PostgreSQL backend, each test on a server it starts itself
//! (`initdb` into a temporary directory, `pg_ctl start` on a free loopback port) and stops
//! when it ends, also on a panic. A server that cannot start fails the test with the reason.

mod common;

use common::Pg;
use cowheap_store::{Access, PgStore, Store, StoreError, SystemClock};
use std::sync::Arc;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let pg = Pg::new();
                common::$case(&pg);
                assert!(pg.server.port() > 0);
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
fn lost_connection_is_a_typed_error_and_the_state_stays() {
    let pg = Pg::new();
    let s = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([1; 32]);
    s.put_base(fp, b"base").unwrap();
    let t = common::t("t");
    s.create_tenant(&t, fp, None).unwrap();
    let c = s.claim(&t, &common::n("a"), 60_000).unwrap();
    let d = s.write_state(&c, b"complete").unwrap();
    // The server ends every other connection: the store's connection is lost mid-session.
    pg.raw()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND datname = 'store'",
            &[],
        )
        .unwrap();
    match s.write_state(&c, b"never stored") {
        Err(StoreError::Db { .. }) => {}
        other => panic!("write on a lost connection: {other:?}"),
    }
    // The next operation reconnects; the last complete state is there.
    let rec = s.record(&t).unwrap();
    assert_eq!(rec.state, Some(d));
    assert_eq!(s.read_state(&t, d).unwrap(), b"complete");
}

#[test]
fn a_database_without_the_schema_is_not_a_store() {
    let pg = Pg::new();
    let url = pg.server.create_db("empty").unwrap();
    assert!(matches!(
        PgStore::connect(&url, Arc::new(SystemClock), Access::Operator),
        Err(StoreError::NotAStore { .. })
    ));
}
