//! The conformance suite on the PostgreSQL backend, each test on a server it starts itself
//! (`initdb` into a temporary directory, `pg_ctl start` on a free loopback port) and stops
//! when it ends, also on a panic. A server that cannot start fails the test with the reason.

mod common;

use common::{Harness, Pg};
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
    versions_compare_and_set,
    versions_compare_and_set_processes,
    corrupt_layers,
    commit_rights,
    nodes_commit,
    resume_on_a_version,
    segments_in_store,
    segments_across_nodes,
    command_line_keeps_segments_out,
    a_node_that_lost_its_claim_commits_nothing,
    a_node_stalled_in_a_commit_keeps_its_lease,
    a_node_stalled_inside_its_version_write_publishes_nothing,
    claimed_versions,
    host_objects_in_segments_across_nodes,
    host_objects_in_memory_across_nodes,
    host_objects_refused_at_suspend,
    host_objects_as_placeholders,
    host_objects_in_a_registry,
    sweeping_blobs,
    sweeping_beside_writers,
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

/// Blob poisoning: a principal that knows the digest another principal's state will have
/// tries to file other bytes under it, with its own database role's SQL and through the
/// store, and cannot: no direct insert or update, and `cowheap_put_blob` files the bytes
/// under their own SHA-256, beside the honest row and never in its place. The victim's
/// later put succeeds and reads back its own bytes; the planted row harms only the tenant
/// of the principal that points at it.
#[test]
fn a_principal_cannot_plant_bytes_under_anothers_digest() {
    let pg = Pg::new();
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([2; 32]);
    op.put_base(fp, b"base").unwrap();
    for (p, t) in [("mallory", "tm"), ("alice", "ta")] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
        op.create_tenant(&common::t(t), fp, Some(&common::p(p)))
            .unwrap();
    }
    let honest: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut planted = honest.clone();
    planted[2048] ^= 0x40;
    let d = cowheap_store::Digest::of(&honest);

    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user("cowheap_mallory").password("secret-mallory");
    let mut m = cfg.connect(postgres::NoTls).unwrap();
    let sha = |c: &mut postgres::Client, b: &[u8]| -> Vec<u8> {
        c.query_one("SELECT sha256($1)", &[&b]).unwrap().get(0)
    };
    let honest_sha = sha(&mut m, &honest);
    let planted_sha = sha(&mut m, &planted);
    assert_ne!(honest_sha, planted_sha);

    // Direct SQL under mallory's role: no insert (not even under the honest pair), no update.
    let refused =
        |c: &mut postgres::Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
            let e = c.execute(sql, params).unwrap_err();
            assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{sql}");
        };
    refused(
        &mut m,
        "INSERT INTO cowheap_blobs (digest, sha256, len, data) VALUES ($1, $2, $3, $4)",
        &[
            &d.0.as_slice(),
            &honest_sha,
            &(planted.len() as i64),
            &planted,
        ],
    );
    refused(
        &mut m,
        "UPDATE cowheap_blobs SET data = $2 WHERE digest = $1",
        &[&d.0.as_slice(), &planted],
    );
    refused(&mut m, "DELETE FROM cowheap_blobs", &[]);
    // The function takes the bytes, but files them under their own SHA-256.
    let filed: Vec<u8> = m
        .query_one(
            "SELECT cowheap_put_blob($1, $2)",
            &[&d.0.as_slice(), &planted],
        )
        .unwrap()
        .get(0);
    assert_eq!(filed, planted_sha);
    // A digest that is not 32 bytes is refused by the function.
    let e = m
        .query_one(
            "SELECT cowheap_put_blob($1, $2)",
            &[&&b"short"[..], &planted],
        )
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("22023"));
    // Mallory names no state directly, not even its own tenant's; through the fenced
    // function it points its own tenant (under a live claim) at the planted row, never
    // alice's.
    for t in ["ta", "tm"] {
        refused(
            &mut m,
            "UPDATE cowheap_tenants SET state = $1, state_sha256 = $2 WHERE name = $3",
            &[&d.0.as_slice(), &planted_sha, &t],
        );
    }
    let mc = op
        .claim(&common::t("tm"), &common::n("mallory-node"), 60_000)
        .unwrap();
    let e = m
        .query_one(
            "SELECT cowheap_write_state('ta', 'mallory-node', 1, $1, $2, false)",
            &[&d.0.as_slice(), &planted],
        )
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"));
    let filed: Vec<u8> = m
        .query_one(
            "SELECT cowheap_write_state('tm', 'mallory-node', $1, $2, $3, false)",
            &[&(mc.epoch.0 as i64), &d.0.as_slice(), &planted],
        )
        .unwrap()
        .get(0);
    assert_eq!(filed, planted_sha);

    // Through the store, as mallory: the planted row is refused as corrupt on its own
    // tenant, alice's tenant is out of reach, and a claim forged for it writes nothing.
    let ms = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("mallory"), "secret-mallory"),
    )
    .unwrap();
    match ms.read_state(&common::t("tm"), d) {
        Err(StoreError::BlobCorrupt { digest, found }) => {
            assert_eq!(digest, d);
            assert_eq!(found, cowheap_store::Digest::of(&planted));
        }
        other => panic!("the planted row read back: {other:?}"),
    }
    assert!(matches!(
        ms.read_state(&common::t("ta"), d),
        Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
    ));
    let forged = cowheap_store::Claim {
        tenant: common::t("ta"),
        node: common::n("mallory-node"),
        epoch: cowheap_store::Epoch(1),
        lease_expiry: cowheap_store::Millis(u64::MAX / 4),
        base: fp,
        state: None,
    };
    assert!(matches!(
        ms.write_state(&forged, &planted),
        Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
    ));

    // Alice's honest put of the same digest succeeds and reads back her bytes, on her
    // handle and on another principal-free handle.
    let a = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("alice"), "secret-alice"),
    )
    .unwrap();
    let c = a
        .claim(&common::t("ta"), &common::n("alice-node"), 60_000)
        .unwrap();
    assert_eq!(a.write_state(&c, &honest).unwrap(), d);
    assert_eq!(a.read_state(&common::t("ta"), d).unwrap(), honest);
    assert_eq!(a.suspend(&c, &honest).unwrap(), d);
    assert_eq!(op.read_state(&common::t("ta"), d).unwrap(), honest);
    // Both rows are there, each under its own SHA-256, and neither changed the other.
    let mut raw = pg.raw();
    let rows = raw
        .query(
            "SELECT sha256, data FROM cowheap_blobs WHERE digest = $1 ORDER BY sha256",
            &[&d.0.as_slice()],
        )
        .unwrap();
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    got.sort();
    let mut want = vec![(honest_sha, honest.clone()), (planted_sha, planted.clone())];
    want.sort();
    assert_eq!(got, want);

    // Mallory planting again after alice's put changes nothing for alice.
    m.query_one(
        "SELECT cowheap_put_blob($1, $2)",
        &[&d.0.as_slice(), &planted],
    )
    .unwrap();
    assert_eq!(a.read_state(&common::t("ta"), d).unwrap(), honest);
}

/// A store made before blobs carried their SHA-256 is refused, not half upgraded.
#[test]
fn a_store_of_the_earlier_blob_layout_is_refused() {
    let pg = Pg::new();
    let url = pg.server.create_db("old").unwrap();
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE cowheap_blobs (digest bytea PRIMARY KEY, len bigint NOT NULL, \
         data bytea NOT NULL)",
    )
    .unwrap();
    assert!(matches!(
        PgStore::init(&url, Arc::new(SystemClock)),
        Err(StoreError::NotAStore { .. })
    ));
}

/// A principal's put repairs a damaged copy of its own bytes (the function hashes the new
/// bytes before it rewrites the row), a temporary table named like the blob table does not
/// divert the function (its `search_path` puts `pg_temp` last), and running `init` again
/// on a store keeps it working.
#[test]
fn a_principals_put_repairs_its_blob_and_cannot_divert_the_function() {
    let pg = Pg::new();
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    op.put_base(fp, b"base").unwrap();
    op.add_principal(&common::p("bob"), "secret-bob").unwrap();
    op.create_tenant(&common::t("tb"), fp, Some(&common::p("bob")))
        .unwrap();
    let bob = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("bob"), "secret-bob"),
    )
    .unwrap();
    let c = bob
        .claim(&common::t("tb"), &common::n("bob-node"), 60_000)
        .unwrap();
    let state = vec![42u8; 3000];
    let d = bob.write_state(&c, &state).unwrap();
    pg.damage(&d, common::Damage::Flip);
    assert!(matches!(
        bob.read_state(&common::t("tb"), d),
        Err(StoreError::BlobCorrupt { .. })
    ));
    assert_eq!(bob.write_state(&c, &state).unwrap(), d);
    assert_eq!(bob.read_state(&common::t("tb"), d).unwrap(), state);

    // A temporary table of bob's session named cowheap_blobs: the function still writes
    // the store's table.
    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user("cowheap_bob").password("secret-bob");
    let mut raw_bob = cfg.connect(postgres::NoTls).unwrap();
    raw_bob
        .batch_execute(
            "CREATE TEMP TABLE cowheap_blobs (digest bytea, sha256 bytea, len bigint, \
             data bytea, PRIMARY KEY (digest, sha256))",
        )
        .unwrap();
    let other = b"through the function".to_vec();
    let od = cowheap_store::Digest::of(&other);
    raw_bob
        .query_one(
            "SELECT public.cowheap_put_blob($1, $2)",
            &[&od.0.as_slice(), &other],
        )
        .unwrap();
    let in_temp: i64 = raw_bob
        .query_one("SELECT count(*) FROM pg_temp.cowheap_blobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(in_temp, 0);
    let in_store: i64 = pg
        .raw()
        .query_one(
            "SELECT count(*) FROM public.cowheap_blobs WHERE digest = $1",
            &[&od.0.as_slice()],
        )
        .unwrap()
        .get(0);
    assert_eq!(in_store, 1);

    // init again: the schema, the function and bob's rights stay as they were.
    PgStore::init(&pg.url, Arc::new(SystemClock)).unwrap();
    let c = bob.renew(&c, 60_000).unwrap();
    let again = vec![7u8; 100];
    let d2 = bob.suspend(&c, &again).unwrap();
    assert_eq!(bob.read_state(&common::t("tb"), d2).unwrap(), again);
}

/// The server keeps the version rules whatever SQL a principal's role sends: no direct
/// insert at all; through `cowheap_put_version`, only a principal the base names writes a
/// version, always as itself, only over an existing one, once per number; nobody changes
/// or removes one; other principals' commit rights are not shown; versions and their
/// layers are readable by all. An old store whose roles could insert versions directly
/// loses that on `init`.
#[test]
fn a_principals_database_role_keeps_the_version_rules() {
    let pg = Pg::new();
    let fp = common::real_base(&pg, 1_000);
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    for p in ["p1", "p2"] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
    }
    op.allow_commit(fp, &common::p("p1")).unwrap();
    let (layers, _) = common::history(&pg, fp, 1, 3);
    let (mut p1, mut p2) = (login(&pg, "p1"), login(&pg, "p2"));
    // Each stores its layer blob through the function, as the store once did.
    let put = |c: &mut postgres::Client, bytes: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let d = cowheap_store::Digest::of(bytes).0.to_vec();
        let sha: Vec<u8> = c
            .query_one("SELECT cowheap_put_blob($1, $2)", &[&d, &bytes])
            .unwrap()
            .get(0);
        (d, sha)
    };
    let insert = |c: &mut postgres::Client, number: i64, blob: &(Vec<u8>, Vec<u8>), by: &str| {
        refusal(c.execute(
            "INSERT INTO cowheap_versions (origin, number, layer, layer_sha256, committed_by) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&fp.0.as_slice(), &number, &blob.0, &blob.1, &by],
        ))
    };
    let version = |c: &mut postgres::Client, number: i64, bytes: &[u8]| {
        let d = cowheap_store::Digest::of(bytes).0.to_vec();
        c.query_one(
            "SELECT cowheap_put_version($1, $2, $3, $4)",
            &[&fp.0.as_slice(), &number, &d, &bytes],
        )
        .map(|r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.code().map(|c| c.code().to_owned()))
    };
    let code = |r: Result<Vec<u8>, Option<String>>| r.err().flatten();
    let one = put(&mut p2, &layers[0]);
    // Directly: refused to every principal, the committer too, however well formed.
    assert_eq!(insert(&mut p2, 1, &one, "p2").as_deref(), Some("42501"));
    assert_eq!(insert(&mut p1, 1, &one, "p1").as_deref(), Some("42501"));
    // Through the function: p2 is not named by the base.
    assert_eq!(
        code(version(&mut p2, 1, &layers[0])).as_deref(),
        Some("42501")
    );
    // p1 is, but not over a missing version.
    assert_eq!(
        code(version(&mut p1, 3, &layers[2])).as_deref(),
        Some("23514")
    );
    assert_eq!(
        code(version(&mut p1, 0, &layers[0])).as_deref(),
        Some("23514")
    );
    assert_eq!(version(&mut p1, 1, &layers[0]), Ok(one.1.clone()));
    // Once per number.
    assert_eq!(
        code(version(&mut p1, 1, &layers[2])).as_deref(),
        Some("23505")
    );
    for sql in [
        "UPDATE cowheap_versions SET number = 7",
        "DELETE FROM cowheap_versions",
        "INSERT INTO cowheap_committers (base, principal) SELECT fingerprint, 'p2' FROM cowheap_bases",
    ] {
        let e = p2.execute(sql, &[]).unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{sql}");
    }
    let count =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_committers"), 0);
    assert_eq!(count(&mut p1, "SELECT count(*) FROM cowheap_committers"), 1);
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_versions"), 1);
    let layer_rows: i64 = p2
        .query_one(
            "SELECT count(*) FROM cowheap_blobs WHERE digest = $1",
            &[&one.0],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        layer_rows, 1,
        "a version's layer is readable by every principal"
    );
    // The store sees the version p1's role wrote, and reads its layer back whole.
    let listed = op.versions(fp, 0).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].committed_by, Some(common::p("p1")));
    assert_eq!(op.get_layer(listed[0].layer).unwrap(), layers[0]);

    // An old store's direct right, granted again behind the store's back, is taken away by
    // init; the function path stays.
    pg.raw()
        .batch_execute("GRANT INSERT ON cowheap_versions TO cowheap_p1")
        .unwrap();
    let two = put(&mut p1, &layers[1]);
    let mut p1 = login(&pg, "p1");
    assert_eq!(insert(&mut p1, 2, &two, "p1"), None, "the old right");
    let mut raw = pg.raw();
    raw.execute("DELETE FROM cowheap_versions WHERE number = 2", &[])
        .unwrap();
    PgStore::init(&pg.url, Arc::new(SystemClock)).unwrap();
    let mut p1 = login(&pg, "p1");
    assert_eq!(
        insert(&mut p1, 2, &two, "p1").as_deref(),
        Some("42501"),
        "after init"
    );
    assert_eq!(version(&mut p1, 2, &layers[1]), Ok(two.1.clone()));
    let s1 = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p1"), "secret-p1"),
    )
    .unwrap();
    let v = s1.put_version(fp, 3, &layers[2]).unwrap();
    assert_eq!(v.committed_by, Some(common::p("p1")));
    assert!(matches!(
        s1.put_version(fp, 3, &layers[2]),
        Err(StoreError::VersionConflict { newest: 3, .. })
    ));
    let s2 = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p2"), "secret-p2"),
    )
    .unwrap();
    assert!(matches!(
        s2.put_version(fp, 3, &layers[2]),
        Err(StoreError::NotCommitter { .. })
    ));
    assert_eq!(op.versions(fp, 0).unwrap().len(), 3);
}

/// Bytes planted under a layer's digest (through the function, by a principal) never stand
/// in for the layer: the committer's write files the honest bytes under their own SHA-256,
/// and every reader gets those.
#[test]
fn a_planted_layer_blob_is_never_read_as_the_layer() {
    let pg = Pg::new();
    let fp = common::real_base(&pg, 1_000);
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    op.add_principal(&common::p("mallory"), "m").unwrap();
    let (layers, _) = common::history(&pg, fp, 1, 1);
    let digest = cowheap_store::Digest::of(&layers[0]);
    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user("cowheap_mallory").password("m");
    let mut m = cfg.connect(postgres::NoTls).unwrap();
    m.query_one(
        "SELECT cowheap_put_blob($1, $2)",
        &[&digest.0.as_slice(), &b"planted bytes".as_slice()],
    )
    .unwrap();
    let v = op.put_version(fp, 1, &layers[0]).unwrap();
    assert_eq!(v.layer, digest);
    assert_eq!(op.get_layer(digest).unwrap(), layers[0]);
    let node = common::node(&pg, "n", Access::principal(common::p("mallory"), "m"));
    assert_eq!(node.sync(fp).unwrap().version(), 1);
}

/// A principal's database role reaches only the segment rows of its own tenants, and only
/// the blobs they name: whatever SQL it sends, it reads, adds and drops none of another's.
#[test]
fn a_principals_database_role_reaches_only_its_segments() {
    use cowheap_segment::swap::SegmentId;
    let pg = Pg::new();
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([1; 32]);
    op.put_base(fp, b"base").unwrap();
    let mut digests = Vec::new();
    for (p, t) in [("p1", "t1"), ("p2", "t2")] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
        op.create_tenant(&common::t(t), fp, Some(&common::p(p)))
            .unwrap();
        let c = op.claim(&common::t(t), &common::n("op"), 60_000).unwrap();
        digests.push(
            op.put_segment(&c, SegmentId::new(1), format!("segment of {t}").as_bytes())
                .unwrap(),
        );
        op.release(&c).unwrap();
    }
    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user("cowheap_p2").password("secret-p2");
    let mut p2 = cfg.connect(postgres::NoTls).unwrap();
    let count =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut p2, "SELECT count(*) FROM cowheap_segments"), 1);
    let seen = p2
        .query_opt(
            "SELECT 1 FROM cowheap_blobs WHERE digest = $1",
            &[&digests[0].0.as_slice()],
        )
        .unwrap();
    assert!(seen.is_none(), "t1's segment blob is out of reach");
    // No direct delete at all (segments change only through the fenced functions).
    assert_eq!(
        refusal(p2.execute("DELETE FROM cowheap_segments WHERE tenant = 't1'", &[])).as_deref(),
        Some("42501"),
        "t1's segment rows are out of reach"
    );
    let e = p2
        .batch_execute(
            "INSERT INTO cowheap_segments (tenant, id, blob, blob_sha256) \
             SELECT 't1', 2, digest, sha256 FROM cowheap_blobs LIMIT 1",
        )
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"));
    assert_eq!(
        op.segments(&common::t("t1")).unwrap(),
        vec![SegmentId::new(1)]
    );
    assert_eq!(
        op.get_segment(&common::t("t1"), SegmentId::new(1)).unwrap(),
        b"segment of t1"
    );
}

/// The SQLSTATE of a refused statement.
fn refusal(r: Result<u64, postgres::Error>) -> Option<String> {
    r.err().and_then(|e| e.code().map(|c| c.code().to_owned()))
}

/// Two principals, p1 with tenant t1 and p2 with t2, each tenant with a state and segment 1
/// written by the operator and released. Answers the operator's handle.
fn two_tenants(pg: &Pg) -> PgStore {
    use cowheap_segment::swap::SegmentId;
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([1; 32]);
    op.put_base(fp, b"base").unwrap();
    for (p, t) in [("p1", "t1"), ("p2", "t2")] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
        op.create_tenant(&common::t(t), fp, Some(&common::p(p)))
            .unwrap();
        let c = op.claim(&common::t(t), &common::n("op"), 60_000).unwrap();
        op.put_segment(&c, SegmentId::new(1), format!("segment of {t}").as_bytes())
            .unwrap();
        op.suspend(&c, format!("state of {t}").as_bytes()).unwrap();
    }
    op
}

fn login(pg: &Pg, p: &str) -> postgres::Client {
    let mut cfg: postgres::Config = pg.url.parse().unwrap();
    cfg.user(&format!("cowheap_{p}"))
        .password(format!("secret-{p}"));
    cfg.connect(postgres::NoTls).unwrap()
}

/// Proof of possession: a principal's role names a blob only by supplying its bytes. A
/// segment row or a state naming another tenant's existing blob (digest and SHA-256, as a
/// leak would give them) is refused exactly as one naming no blob at all, so the refusal
/// tells nothing; bytes supplied under another blob's digest land under their own SHA-256;
/// and the other tenant's blob stays out of reach.
#[test]
fn a_principal_cannot_name_another_tenants_blob() {
    use cowheap_segment::swap::SegmentId;
    let pg = Pg::new();
    let op = two_tenants(&pg);
    let mut raw = pg.raw();
    let pair = |raw: &mut postgres::Client, sql: &str| -> (Vec<u8>, Vec<u8>) {
        let r = raw.query_one(sql, &[]).unwrap();
        (r.get(0), r.get(1))
    };
    let seg1 = pair(
        &mut raw,
        "SELECT blob, blob_sha256 FROM cowheap_segments WHERE tenant = 't1' AND id = 1",
    );
    let state1 = pair(
        &mut raw,
        "SELECT state, state_sha256 FROM cowheap_tenants WHERE name = 't1'",
    );
    let absent = (vec![9u8; 32], vec![9u8; 32]);
    let mut p2 = login(&pg, "p2");
    let visible = |c: &mut postgres::Client, (d, sha): &(Vec<u8>, Vec<u8>)| -> bool {
        c.query_opt(
            "SELECT data FROM cowheap_blobs WHERE digest = $1 AND sha256 = $2",
            &[d, sha],
        )
        .unwrap()
        .is_some()
    };
    // Directly: refused alike for an existing and a missing pair.
    for target in [&seg1, &state1, &absent] {
        assert_eq!(
            refusal(p2.execute(
                "INSERT INTO cowheap_segments (tenant, id, blob, blob_sha256) \
                 VALUES ('t2', 9, $1, $2)",
                &[&target.0, &target.1],
            ))
            .as_deref(),
            Some("42501")
        );
        assert_eq!(
            refusal(p2.execute(
                "UPDATE cowheap_tenants SET state = $1, state_sha256 = $2 WHERE name = 't2'",
                &[&target.0, &target.1],
            ))
            .as_deref(),
            Some("42501")
        );
    }
    assert!(!visible(&mut p2, &seg1) && !visible(&mut p2, &state1));

    // Through the fenced functions, under a live claim of its own tenant: the claimed
    // digests of t1's blobs with other bytes file those bytes under their own SHA-256.
    let c2 = op
        .claim(&common::t("t2"), &common::n("n2"), 60_000)
        .unwrap();
    let epoch = c2.epoch.0 as i64;
    let guess = b"a guess".to_vec();
    let guess_sha: Vec<u8> = raw
        .query_one("SELECT sha256($1)", &[&guess])
        .unwrap()
        .get(0);
    let filed: Vec<u8> = p2
        .query_one(
            "SELECT cowheap_put_segment('t2', 'n2', $1, 9, $2, $3)",
            &[&epoch, &seg1.0, &guess],
        )
        .unwrap()
        .get(0);
    assert_eq!(filed, guess_sha);
    let filed: Vec<u8> = p2
        .query_one(
            "SELECT cowheap_write_state('t2', 'n2', $1, $2, $3, false)",
            &[&epoch, &state1.0, &guess],
        )
        .unwrap()
        .get(0);
    assert_eq!(filed, guess_sha);
    assert!(!visible(&mut p2, &seg1) && !visible(&mut p2, &state1));
    // The other tenant, and a tenant that does not exist: refused alike.
    for t in ["t1", "nope"] {
        let e = p2
            .query_one(
                "SELECT cowheap_put_segment($1, 'n2', $2, 9, $3, $4)",
                &[&t, &epoch, &seg1.0, &guess],
            )
            .unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{t}");
        let e = p2
            .query_one(
                "SELECT cowheap_write_state($1, 'n2', $2, $3, $4, false)",
                &[&t, &epoch, &state1.0, &guess],
            )
            .unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{t}");
    }
    // Through the store, p2 with a claim forged for t1: a typed refusal.
    let s2 = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p2"), "secret-p2"),
    )
    .unwrap();
    let forged = cowheap_store::Claim {
        tenant: common::t("t1"),
        ..c2.clone()
    };
    assert!(matches!(
        s2.put_segment(&forged, SegmentId::new(5), b"x"),
        Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. })
    ));
    // t1 is untouched.
    assert_eq!(
        op.get_segment(&common::t("t1"), SegmentId::new(1)).unwrap(),
        b"segment of t1"
    );
    let rec = op.record(&common::t("t1")).unwrap();
    assert_eq!(
        op.read_state(&common::t("t1"), rec.state.unwrap()).unwrap(),
        b"state of t1"
    );
}

/// A principal's role changes its own tenant's segments and state only through the fenced
/// functions, and only under the tenant's live claim: no direct insert, delete or state
/// update; no write without a claim or with a stale one; a segment id is written once. An
/// old store whose roles could write those rows directly loses that on `init`. The store's
/// own paths (write, suspend, segments, resume on another node) keep working.
#[test]
fn a_principal_writes_segments_and_state_only_under_a_live_claim() {
    use cowheap_segment::swap::SegmentId;
    let pg = Pg::new();
    let op = two_tenants(&pg);
    let mut p2 = login(&pg, "p2");
    let direct = [
        "DELETE FROM cowheap_segments WHERE tenant = 't2' AND id = 1",
        "INSERT INTO cowheap_segments (tenant, id, blob, blob_sha256) \
         SELECT 't2', 7, blob, blob_sha256 FROM cowheap_segments WHERE tenant = 't2'",
        "UPDATE cowheap_segments SET id = 8 WHERE tenant = 't2'",
        "UPDATE cowheap_tenants SET state = NULL, state_sha256 = NULL WHERE name = 't2'",
    ];
    for sql in direct {
        assert_eq!(
            refusal(p2.execute(sql, &[])).as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    // No claim (suspended): the functions refuse as stale.
    let stale = |c: &mut postgres::Client, epoch: i64| -> Vec<Option<String>> {
        let code = |r: Result<postgres::Row, postgres::Error>| {
            r.err().and_then(|e| e.code().map(|c| c.code().to_owned()))
        };
        vec![
            code(c.query_one(
                "SELECT cowheap_put_segment('t2', 'n2', $1, 7, $2, 'x'::bytea)",
                &[&epoch, &vec![1u8; 32]],
            )),
            code(c.query_one(
                "SELECT cowheap_remove_segment('t2', 'n2', $1, 1)",
                &[&epoch],
            )),
            code(c.query_one(
                "SELECT cowheap_write_state('t2', 'n2', $1, $2, 'x'::bytea, false)",
                &[&epoch, &vec![1u8; 32]],
            )),
        ]
    };
    let e0 = op.record(&common::t("t2")).unwrap().epoch.0 as i64;
    assert!(
        stale(&mut p2, e0)
            .iter()
            .all(|c| c.as_deref() == Some("55000"))
    );

    // Through the store as p2: the normal paths.
    let s2 = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p2"), "secret-p2"),
    )
    .unwrap();
    let c = s2
        .claim(&common::t("t2"), &common::n("n2"), 60_000)
        .unwrap();
    // A live claim, but another epoch or node: stale.
    let e = c.epoch.0 as i64;
    assert!(
        stale(&mut p2, e - 1)
            .iter()
            .all(|c| c.as_deref() == Some("55000"))
    );
    // Write-once, through the function too.
    let taken = p2
        .query_one(
            "SELECT cowheap_put_segment('t2', 'n2', $1, 1, $2, 'x'::bytea)",
            &[&e, &vec![1u8; 32]],
        )
        .unwrap_err();
    assert_eq!(taken.code().map(|c| c.code()), Some("23505"));
    assert!(matches!(
        s2.put_segment(&c, SegmentId::new(1), b"again"),
        Err(StoreError::SegmentExists { .. })
    ));
    s2.put_segment(&c, SegmentId::new(2), b"segment 2 of t2")
        .unwrap();
    s2.remove_segment(&c, SegmentId::new(1)).unwrap();
    s2.write_state(&c, b"written").unwrap();
    let d = s2.suspend(&c, b"suspended").unwrap();
    // The suspended claim is fenced off, with typed errors.
    assert!(matches!(
        s2.put_segment(&c, SegmentId::new(3), b"late"),
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        s2.write_state(&c, b"late"),
        Err(StoreError::Fenced { .. })
    ));
    // Resumed on another node.
    let other = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p2"), "secret-p2"),
    )
    .unwrap();
    let c2 = other
        .claim(&common::t("t2"), &common::n("n3"), 60_000)
        .unwrap();
    assert_eq!(c2.state, Some(d));
    assert_eq!(other.read_state(&common::t("t2"), d).unwrap(), b"suspended");
    assert_eq!(
        other.segments(&common::t("t2")).unwrap(),
        vec![SegmentId::new(2)]
    );
    assert_eq!(
        other
            .get_segment(&common::t("t2"), SegmentId::new(2))
            .unwrap(),
        b"segment 2 of t2"
    );
    assert!(matches!(
        s2.remove_segment(&c, SegmentId::new(2)),
        Err(StoreError::Fenced { .. })
    ));
    other.release(&c2).unwrap();

    // An old store's rights, granted again behind the store's back, are taken away by init.
    pg.raw()
        .batch_execute(
            "GRANT INSERT, DELETE ON cowheap_segments TO cowheap_p2; \
             GRANT UPDATE (state, state_sha256) ON cowheap_tenants TO cowheap_p2",
        )
        .unwrap();
    PgStore::init(&pg.url, Arc::new(SystemClock)).unwrap();
    let mut p2 = login(&pg, "p2");
    for sql in direct {
        assert_eq!(
            refusal(p2.execute(sql, &[])).as_deref(),
            Some("42501"),
            "{sql} after init"
        );
    }
    let c3 = s2
        .claim(&common::t("t2"), &common::n("n2"), 60_000)
        .unwrap();
    s2.put_segment(&c3, SegmentId::new(4), b"after init")
        .unwrap();
    s2.suspend(&c3, b"after init").unwrap();
}

/// Proof of possession for versions: a committer cannot name another tenant's existing
/// blob (digest and SHA-256, as a leak would give them) in a version row, which every
/// principal could then read. The direct insert is refused; through `cowheap_put_version`
/// the bytes it supplies are filed under their own SHA-256, never the foreign pair; and the
/// foreign blob stays out of every other principal's reach.
#[test]
fn a_committer_cannot_name_another_tenants_blob_in_a_version() {
    let pg = Pg::new();
    let op = two_tenants(&pg);
    let fp = cowheap_heap::Fingerprint([1; 32]);
    op.allow_commit(fp, &common::p("p2")).unwrap();
    op.add_principal(&common::p("p3"), "secret-p3").unwrap();
    let mut raw = pg.raw();
    let pair = |raw: &mut postgres::Client, sql: &str| -> (Vec<u8>, Vec<u8>) {
        let r = raw.query_one(sql, &[]).unwrap();
        (r.get(0), r.get(1))
    };
    let seg1 = pair(
        &mut raw,
        "SELECT blob, blob_sha256 FROM cowheap_segments WHERE tenant = 't1' AND id = 1",
    );
    let state1 = pair(
        &mut raw,
        "SELECT state, state_sha256 FROM cowheap_tenants WHERE name = 't1'",
    );
    let visible = |c: &mut postgres::Client, (d, sha): &(Vec<u8>, Vec<u8>)| -> bool {
        c.query_opt(
            "SELECT data FROM cowheap_blobs WHERE digest = $1 AND sha256 = $2",
            &[d, sha],
        )
        .unwrap()
        .is_some()
    };
    let mut p2 = login(&pg, "p2");
    // Directly: refused, for either of t1's blobs.
    for target in [&seg1, &state1] {
        assert_eq!(
            refusal(p2.execute(
                "INSERT INTO cowheap_versions (origin, number, layer, layer_sha256, committed_by) \
                 VALUES ($1, 1, $2, $3, 'p2')",
                &[&fp.0.as_slice(), &target.0, &target.1],
            ))
            .as_deref(),
            Some("42501")
        );
    }
    // Through the function: the claimed digests of t1's blobs with other bytes file those
    // bytes under their own SHA-256, and the versions name that pair.
    let guess = b"a guess".to_vec();
    let guess_sha: Vec<u8> = raw
        .query_one("SELECT sha256($1)", &[&guess])
        .unwrap()
        .get(0);
    for (number, target) in [(1i64, &seg1), (2, &state1)] {
        let filed: Vec<u8> = p2
            .query_one(
                "SELECT cowheap_put_version($1, $2, $3, $4)",
                &[&fp.0.as_slice(), &number, &target.0, &guess],
            )
            .unwrap()
            .get(0);
        assert_eq!(filed, guess_sha);
        assert_ne!(filed, target.1);
        let named = pair(
            &mut raw,
            &format!(
                "SELECT layer, layer_sha256 FROM cowheap_versions \
                 WHERE origin = '\\x{}' AND number = {number}",
                fp.0.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        );
        assert_eq!(named, (target.0.clone(), guess_sha.clone()));
    }
    let foreign: i64 = raw
        .query_one(
            "SELECT count(*) FROM cowheap_versions v WHERE (v.layer, v.layer_sha256) IN \
             (($1, $2), ($3, $4))",
            &[&seg1.0, &seg1.1, &state1.0, &state1.1],
        )
        .unwrap()
        .get(0);
    assert_eq!(foreign, 0, "no version names t1's blobs");
    // t1's blobs stay out of reach of every principal but t1's.
    for p in ["p2", "p3"] {
        let mut c = login(&pg, p);
        assert!(!visible(&mut c, &seg1), "{p}");
        assert!(!visible(&mut c, &state1), "{p}");
    }
    // t1 is untouched.
    let mut p1 = login(&pg, "p1");
    assert!(visible(&mut p1, &seg1) && visible(&mut p1, &state1));
    assert_eq!(
        op.get_segment(&common::t("t1"), cowheap_segment::swap::SegmentId::new(1))
            .unwrap(),
        b"segment of t1"
    );
}

/// The fenced version function keeps its rules whatever SQL a principal's role sends: a
/// stale claim (55000), a tenant not granted to the role (42501) and a tenant of another
/// base (22023) write no version and no blob; the live claim writes, as the role. And the
/// claim is checked atomically with the write: a fenced write waits while another session
/// holds the tenant's row, and is fenced when that session moves the claim on.
#[test]
fn a_principals_database_role_keeps_the_fenced_version_rules() {
    let pg = Pg::new();
    let fp = common::real_base(&pg, 1_000);
    let other = common::real_base(&pg, 1_200);
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    for p in ["p1", "p2"] {
        op.add_principal(&common::p(p), &format!("secret-{p}"))
            .unwrap();
        op.allow_commit(fp, &common::p(p)).unwrap();
    }
    op.create_tenant(&common::t("t1"), fp, Some(&common::p("p1")))
        .unwrap();
    op.create_tenant(&common::t("elsewhere"), other, Some(&common::p("p1")))
        .unwrap();
    let s1 = PgStore::connect(
        &pg.url,
        Arc::new(SystemClock),
        Access::principal(common::p("p1"), "secret-p1"),
    )
    .unwrap();
    let c = s1
        .claim(&common::t("t1"), &common::n("a"), 600_000)
        .unwrap();
    let ce = s1
        .claim(&common::t("elsewhere"), &common::n("a"), 600_000)
        .unwrap();
    let (layers, _) = common::history(&pg, fp, 5, 2);
    let epoch = |e: cowheap_store::Epoch| i64::try_from(e.0).unwrap();
    let fenced = |c: &mut postgres::Client, tenant: &str, node: &str, e: i64, bytes: &[u8]| {
        let d = cowheap_store::Digest::of(bytes).0.to_vec();
        c.query_one(
            "SELECT cowheap_put_version_fenced($1, $2, $3, $4, $5, $6, $7)",
            &[&tenant, &node, &e, &fp.0.as_slice(), &1i64, &d, &bytes],
        )
        .map(|r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.code().map(|c| c.code().to_owned()))
    };
    let code = |r: Result<Vec<u8>, Option<String>>| r.err().flatten();
    let (mut p1, mut p2) = (login(&pg, "p1"), login(&pg, "p2"));
    let blobs = op.blob_stats().unwrap();
    let e1 = epoch(c.epoch);
    for (what, got, want) in [
        (
            "a stale epoch",
            code(fenced(&mut p1, "t1", "a", e1 + 1, &layers[0])),
            "55000",
        ),
        (
            "another node",
            code(fenced(&mut p1, "t1", "b", e1, &layers[0])),
            "55000",
        ),
        (
            "a tenant not granted",
            code(fenced(&mut p2, "t1", "a", e1, &layers[0])),
            "42501",
        ),
        (
            "a tenant of another base",
            code(fenced(
                &mut p1,
                "elsewhere",
                "a",
                epoch(ce.epoch),
                &layers[0],
            )),
            "22023",
        ),
    ] {
        assert_eq!(got.as_deref(), Some(want), "{what}");
    }
    assert!(op.versions(fp, 0).unwrap().is_empty(), "nothing written");
    assert_eq!(op.blob_stats().unwrap(), blobs, "no blob written");
    assert!(fenced(&mut p1, "t1", "a", e1, &layers[0]).is_ok());
    let listed = op.versions(fp, 0).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].committed_by, Some(common::p("p1")));

    // Another session holds the tenant's row: the store's fenced write waits for it, and
    // is fenced once that session has moved the claim on.
    let mut holder = pg.raw();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM cowheap_tenants WHERE name = 't1' FOR UPDATE",
        &[],
    )
    .unwrap();
    let written = std::thread::scope(|sc| {
        let writer = sc.spawn(|| s1.put_version_claimed(&c, fp, 2, &layers[1]));
        let mut watch = pg.raw();
        let start = std::time::Instant::now();
        loop {
            let waiting: i64 = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(!writer.is_finished(), "the write did not wait for the row");
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the write never reached the row's lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tx.execute(
            "UPDATE cowheap_tenants SET owner = 'z', epoch = epoch + 1 WHERE name = 't1'",
            &[],
        )
        .unwrap();
        tx.commit().unwrap();
        writer.join().unwrap()
    });
    assert!(
        matches!(written, Err(StoreError::Fenced { .. })),
        "{written:?}"
    );
    assert_eq!(op.versions(fp, 0).unwrap().len(), 1, "nothing more written");
}

/// A committer of another history can file a version of its own base under any layer
/// digest, with bytes of its own: a layer is fetched by its digest from whichever version
/// verifies, so such a row, wherever the table's scan finds it first (here in a slot a
/// vacuum freed ahead of the honest row), does not make the honest layer unreadable.
#[test]
fn a_layer_named_by_another_history_with_other_bytes_is_still_read() {
    let pg = Pg::new();
    let fp = common::real_base(&pg, 1_000);
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let mine = cowheap_heap::Fingerprint([9; 32]);
    op.put_base(mine, b"mallory's base").unwrap();
    op.add_principal(&common::p("mallory"), "secret-mallory")
        .unwrap();
    op.allow_commit(mine, &common::p("mallory")).unwrap();
    let mut m = login(&pg, "mallory");
    // A dead row ahead of the honest one, for the vacuum to free.
    let mut tx = m.transaction().unwrap();
    tx.query_one(
        "SELECT cowheap_put_version($1, 1, $2, $3)",
        &[&mine.0.as_slice(), &[0u8; 32].as_slice(), &b"x".as_slice()],
    )
    .unwrap();
    tx.rollback().unwrap();
    let (layers, _) = common::history(&pg, fp, 1, 1);
    let v = op.put_version(fp, 1, &layers[0]).unwrap();
    pg.raw().batch_execute("VACUUM cowheap_versions").unwrap();
    m.query_one(
        "SELECT cowheap_put_version($1, 1, $2, $3)",
        &[
            &mine.0.as_slice(),
            &v.layer.0.as_slice(),
            &b"planted".as_slice(),
        ],
    )
    .unwrap();
    assert_eq!(op.get_layer(v.layer).unwrap(), layers[0]);
    let fresh = common::node(&pg, "fresh", Access::Operator);
    fresh.sync(fp).expect("a node syncs the honest history");
}

/// A lease as long as a `u64` can say ends at the largest time both backends can store
/// (`i64::MAX` ms, PostgreSQL's bigint): a claim and a renewal with it succeed on a local
/// directory and on PostgreSQL alike, and both keep the same expiry. A clock that reads that
/// time or later takes and renews no lease (it would be over before it began): a typed
/// error, the record unchanged.
#[test]
fn the_longest_lease_is_taken_by_both_backends_alike() {
    let server =
        cowheap_store::PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL must start: {e}"));
    let url = server.create_db("store").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(cowheap_store::ManualClock::new(cowheap_store::Millis(
        1_000,
    )));
    let stores: [(&str, Box<dyn Store>); 2] = [
        (
            "local",
            Box::new(
                cowheap_store::LocalStore::init(dir.path(), clock.clone(), Access::Operator)
                    .unwrap(),
            ),
        ),
        (
            "PostgreSQL",
            Box::new(PgStore::init(&url, clock.clone()).unwrap()),
        ),
    ];
    let fp = cowheap_heap::Fingerprint([2; 32]);
    let longest = cowheap_store::Millis(i64::MAX as u64);
    for (which, s) in &stores {
        s.put_base(fp, b"base").unwrap();
        let t = common::t("t");
        s.create_tenant(&t, fp, None).unwrap();
        let c = s
            .claim(&t, &common::n("a"), u64::MAX)
            .unwrap_or_else(|e| panic!("{which}: claim: {e:?}"));
        assert_eq!(c.lease_expiry, longest, "{which}");
        assert_eq!(s.record(&t).unwrap().lease_expiry, longest, "{which}");
        clock.advance(10);
        let c = s
            .renew(&c, u64::MAX - 1)
            .unwrap_or_else(|e| panic!("{which}: renew: {e:?}"));
        assert_eq!(c.lease_expiry, longest, "{which}");
        assert_eq!(s.record(&t).unwrap().lease_expiry, longest, "{which}");
        // Still held, and released as ever.
        assert!(
            matches!(
                s.claim(&t, &common::n("b"), 1),
                Err(StoreError::Held { .. })
            ),
            "{which}"
        );
        // A clock at the cap or past it: no lease could hold, so none is taken or renewed,
        // and the record stays as it was.
        let before = s.record(&t).unwrap();
        for now in [
            longest,
            longest.plus(1_000),
            cowheap_store::Millis(u64::MAX),
        ] {
            clock.set(now);
            for (what, r) in [
                ("renew", s.renew(&c, 60_000)),
                ("claim", s.claim(&t, &common::n("b"), 60_000)),
            ] {
                assert!(
                    matches!(r, Err(StoreError::ClockOutOfRange { now: n }) if n == now),
                    "{which}: {what} at {now}: {r:?}"
                );
            }
            assert_eq!(s.record(&t).unwrap(), before, "{which}");
        }
        clock.set(cowheap_store::Millis(2_000));
        s.release(&c).unwrap();
    }
}

/// A claim's epoch only moves on, whatever SQL a principal's role sends: its role may
/// update its tenants' owner, epoch and lease (that is how it claims), but the server
/// refuses an update that takes the epoch back, or names an owner at the epoch another
/// owner (or none, after a release) held. Otherwise a node whose claim was taken over could
/// put its old claim back in the row, and its stale writes would pass the fence while the
/// new holder's were refused: the tenant run on two nodes at once.
#[test]
fn a_principals_role_cannot_move_a_claim_back() {
    use cowheap_store::{ManualClock, Millis};
    let pg = Pg::new();
    let _op = two_tenants(&pg);
    let clock = ManualClock::new(Millis(10_000));
    let p2 = |clock: &ManualClock| {
        PgStore::connect(
            &pg.url,
            Arc::new(clock.clone()),
            Access::principal(common::p("p2"), "secret-p2"),
        )
        .unwrap()
    };
    let (node2, node3) = (p2(&clock), p2(&clock));
    let old = node2
        .claim(&common::t("t2"), &common::n("n2"), 1_000)
        .unwrap();
    clock.advance(5_000);
    let new = node3
        .claim(&common::t("t2"), &common::n("n3"), 60_000)
        .unwrap();
    assert_eq!(new.epoch.0, old.epoch.0 + 1);

    let mut raw = login(&pg, "p2");
    let (e_old, e_new) = (old.epoch.0 as i64, new.epoch.0 as i64);
    let back = [
        format!("UPDATE cowheap_tenants SET owner = 'n2', epoch = {e_old} WHERE name = 't2'"),
        format!("UPDATE cowheap_tenants SET epoch = {e_old} WHERE name = 't2'"),
        "UPDATE cowheap_tenants SET owner = 'n2' WHERE name = 't2'".to_owned(),
    ];
    for sql in &back {
        assert_eq!(
            refusal(raw.execute(sql.as_str(), &[])).as_deref(),
            Some("55000"),
            "{sql}"
        );
    }
    // The row is as the new holder left it: its writes pass, the old claim's are fenced.
    let rec = node3.record(&common::t("t2")).unwrap();
    assert_eq!(rec.epoch.0 as i64, e_new);
    assert_eq!(rec.owner, Some(common::n("n3")));
    assert!(matches!(
        node2.write_state(&old, b"stale"),
        Err(StoreError::Fenced { .. })
    ));
    node3.write_state(&new, b"current").unwrap();

    // A released claim is not taken up again at its epoch either.
    node3.release(&new).unwrap();
    let revive = "UPDATE cowheap_tenants SET owner = 'n3' WHERE name = 't2'";
    assert_eq!(refusal(raw.execute(revive, &[])).as_deref(), Some("55000"));
    assert!(matches!(
        node3.write_state(&new, b"after release"),
        Err(StoreError::Fenced { .. })
    ));
    // What the store itself does still works: a claim moves the epoch on, a renewal keeps it.
    let again = node2
        .claim(&common::t("t2"), &common::n("n2"), 60_000)
        .unwrap();
    assert_eq!(again.epoch.0 as i64, e_new + 1);
    let renewed = node2.renew(&again, 60_000).unwrap();
    node2.suspend(&renewed, b"suspended").unwrap();
}

/// A database role of the principal's name that the store did not make (another store's
/// principal in the same cluster, or a role of the cluster's own, perhaps a superuser) is
/// not taken over: adding the principal is refused, and the role and the store are as they
/// were. A principal the store made takes a new secret as before.
#[test]
fn a_principal_never_takes_over_a_role_the_store_did_not_make() {
    let pg = Pg::new();
    let op = PgStore::connect(&pg.url, Arc::new(SystemClock), Access::Operator).unwrap();
    let mut raw = pg.raw();
    raw.batch_execute("CREATE ROLE cowheap_eve SUPERUSER NOLOGIN")
        .unwrap();
    let e = op
        .add_principal(&common::p("eve"), "secret-eve")
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::RoleTaken { role, .. } if role == "cowheap_eve"),
        "{e}"
    );
    let can_login: bool = raw
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'cowheap_eve'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!can_login, "the role was changed");
    let rows: i64 = raw
        .query_one(
            "SELECT count(*) FROM cowheap_principals WHERE name = 'eve'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    // The store's own principal: added, then its secret changed.
    op.add_principal(&common::p("carol"), "secret-1").unwrap();
    op.add_principal(&common::p("carol"), "secret-carol")
        .unwrap();
    login(&pg, "carol");
}
