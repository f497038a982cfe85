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
    let mut raw = pg.raw();
    raw.execute(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
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

/// Row-level security: a node that bypasses the store and sends its own SQL under its
/// principal's database role still sees and changes only its own tenant's rows.
#[test]
fn a_principals_database_role_reaches_only_its_rows() {
    let pg = Pg::new();
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([1; 32]);
    op.put_base(fp, b"base").unwrap();
    for (p, t) in [("p1", "t1"), ("p2", "t2")] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
        op.create_tenant(&common::t(t), fp, Some(&common::p(p)))
            .unwrap();
        let c = op.claim(&common::t(t), &common::n("op"), 60_000).unwrap();
        op.write_state(&c, format!("state of {t}").as_bytes())
            .unwrap();
        op.release(&c).unwrap();
    }
    let t1_state = op.record(&common::t("t1")).unwrap().state.unwrap();

    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user("cowheap_p2").password("secret-p2");
    let mut p2 = cfg.connect(postgres::NoTls).unwrap();
    let count =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_tenants"), 1);
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_grants"), 1);
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_principals"), 1);
    // The base and its own state: not t1's state.
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_blobs"), 2);
    let seen = p2
        .query_opt(
            "SELECT 1 FROM cowheap_blobs WHERE digest = $1",
            &[&t1_state.0.as_slice()],
        )
        .unwrap();
    assert!(seen.is_none());
    let n = p2
        .execute(
            "UPDATE cowheap_tenants SET owner = 'intruder', epoch = epoch + 100 WHERE name = 't1'",
            &[],
        )
        .unwrap();
    assert_eq!(n, 0, "t1's row is out of reach");
    for sql in [
        "DELETE FROM cowheap_tenants",
        "INSERT INTO cowheap_grants (tenant, principal) VALUES ('t1', 'p2')",
        "UPDATE cowheap_blobs SET data = ''",
        "INSERT INTO cowheap_tenants (name, base, epoch, lease_expiry) \
         VALUES ('t3', '\\x00', 0, 0)",
    ] {
        let e = p2.batch_execute(sql).unwrap_err();
        assert_eq!(
            e.code().map(|c| c.code()),
            Some("42501"),
            "{sql}: insufficient privilege"
        );
    }
    let rec = op.record(&common::t("t1")).unwrap();
    assert_eq!((rec.owner, rec.epoch), (None, cowheap_store::Epoch(1)));

    // The wrong password is refused by the server itself.
    let mut bad: postgres::Config = pg.url.parse().unwrap();
    bad.user("cowheap_p2").password("secret-p1");
    match bad.connect(postgres::NoTls) {
        Err(e) => assert_eq!(e.code().map(|c| c.code()), Some("28P01")),
        Ok(_) => panic!("a login with another principal's secret was accepted"),
    }
    assert!(matches!(
        PgStore::connect(
            &pg.url,
            Arc::new(SystemClock),
            Access::principal(common::p("p2"), "secret-p1")
        ),
        Err(StoreError::BadCredentials { .. })
    ));
}
