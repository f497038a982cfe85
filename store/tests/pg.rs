//! The conformance suite on the PostgreSQL backend, each test on a server it starts itself
//! (`initdb` into a temporary directory, `pg_ctl start` on a free loopback port) and stops
//! when it ends, also on a panic. A server that cannot start fails the test with the reason.

mod common;

use common::{Damage, Harness};
use cowheap_store::{Access, Clock, Digest, PgServer, PgStore, Store, StoreError, SystemClock};
use std::path::Path;
use std::sync::Arc;

struct Pg {
    // Dropped last: the server outlives every connection of the test.
    url: String,
    scratch: tempfile::TempDir,
    server: PgServer,
}

impl Pg {
    fn new() -> Pg {
        let server = PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL must start: {e}"));
        let url = server.create_db("store").unwrap();
        PgStore::init(&url, Arc::new(SystemClock)).unwrap();
        Pg {
            url,
            scratch: tempfile::tempdir().unwrap(),
            server,
        }
    }

    fn raw(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Harness for Pg {
    fn open(&self, access: Access, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(PgStore::connect(&self.url, clock, access)?))
    }

    fn address(&self) -> String {
        self.url.clone()
    }

    fn damage(&self, d: &Digest, how: Damage) {
        let sql = match how {
            Damage::Truncate => {
                "UPDATE cowheap_blobs SET data = substring(data FROM 1 FOR length(data) - 10) \
                 WHERE digest = $1"
            }
            Damage::Flip => {
                "UPDATE cowheap_blobs SET data = set_byte(data, length(data) / 2, \
                 get_byte(data, length(data) / 2) # 16) WHERE digest = $1"
            }
        };
        let n = self.raw().execute(sql, &[&d.0.as_slice()]).unwrap();
        assert_eq!(n, 1, "the blob to damage exists");
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
