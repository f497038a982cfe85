//! Edges of the store's contract: a command-line node's resident files that name another
//! tenant or node, a fenced version write presenting an epoch past the largest `bigint`,
//! listings ordered by name whatever the database's collation, a mark whose write fails
//! half-way, and a FIFO in the place of a command-line node's own files.

mod common;

use common::{Harness, Local, Pg, fifo, n, real_base, t, within};
use cowheap_heap::synth;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::workload::{read_mark, write_mark};
use cowheap_store::{
    Access, Claim, Epoch, ManualClock, Millis, PgServer, PgStore, Store, StoreError, SystemClock,
    open_store,
};
use std::sync::Arc;

/// A directory store in a new temporary directory (its address the `store` folder in
/// it) holding a synthetic base and the tenants `names` on it: the directory, the
/// address, the operator's handle and the base's fingerprint in hex.
fn store_with(names: &[&str]) -> (tempfile::TempDir, String, Arc<dyn Store>, String) {
    let dir = tempfile::tempdir().unwrap();
    let addr = dir.path().join("store").to_str().unwrap().to_owned();
    cli::init(&addr).unwrap();
    let op = open_store(&addr, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cli::put_base(&*op, &synth::image(1_000, 3)).unwrap();
    for name in names {
        cli::create(&*op, name, fp.trim(), None).unwrap();
    }
    (dir, addr, op, fp)
}

/// A resident's claim file that names another tenant (copied, or left by a bug) is refused
/// as damaged: before, `suspend alice` presented bob's claim with alice's snapshot, and the
/// store took alice's state as bob's.
#[test]
fn a_resident_claim_naming_another_tenant_is_refused() {
    let (dir, addr, op, _) = store_with(&["alice", "bob"]);
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.resume("bob").unwrap();
    a.mark("alice", 1).unwrap();
    a.mark("bob", 2).unwrap();
    let resident = a_dir.join("resident");
    std::fs::copy(resident.join("bob.claim"), resident.join("alice.claim")).unwrap();
    let before = op.record(&t("bob")).unwrap();
    let got = a.suspend("alice");
    assert!(
        matches!(got, Err(StoreError::Damaged { .. })),
        "a claim of bob under alice's name: {got:?}"
    );
    assert_eq!(
        op.record(&t("bob")).unwrap(),
        before,
        "bob's record as it was"
    );
    assert!(a.suspend("bob").is_ok());
    let b = CliNode::open(&addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    assert!(b.resume("bob").unwrap().ends_with("mark 2\n"));
}

/// A resident's state file that is another tenant's (copied, or left by a bug) is refused
/// as damaged, as a claim file is: before, `suspend alice` wrote bob's state, his mark and
/// his objects, as alice's, and a node resuming alice got bob's tenant.
#[test]
fn a_resident_state_of_another_tenant_is_refused() {
    let (dir, addr, op, _) = store_with(&["alice", "bob"]);
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.resume("bob").unwrap();
    a.mark("alice", 1).unwrap();
    a.mark("bob", 2).unwrap();
    let resident = a_dir.join("resident");
    std::fs::copy(resident.join("bob.state"), resident.join("alice.state")).unwrap();
    let before = op.record(&t("alice")).unwrap();
    for got in [
        a.mark("alice", 3).map(|_| ()),
        a.suspend("alice").map(|_| ()),
    ] {
        assert!(
            matches!(got, Err(StoreError::Damaged { .. })),
            "bob's state under alice's name: {got:?}"
        );
    }
    assert_eq!(
        op.record(&t("alice")).unwrap(),
        before,
        "alice's record as it was"
    );
    assert!(a.suspend("bob").is_ok());
    let b = CliNode::open(&addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    assert!(b.resume("bob").unwrap().ends_with("mark 2\n"));
}

/// A resident's state file with no header, as an earlier release wrote it, is still the
/// tenant's state: a node upgraded while it holds a tenant goes on with it.
#[test]
fn a_resident_state_of_an_earlier_release_still_loads() {
    let (dir, addr, _op, _) = store_with(&["alice"]);
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 1).unwrap();
    let path = a_dir.join("resident").join("alice.state");
    let bytes = std::fs::read(&path).unwrap();
    let head = b"cowheap-resident 1\ntenant alice\nnode a\n";
    assert!(
        bytes.starts_with(head),
        "a header naming the tenant and node"
    );
    std::fs::write(&path, &bytes[head.len()..]).unwrap();
    a.mark("alice", 2).unwrap();
    a.suspend("alice").unwrap();
    let b = CliNode::open(&addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    assert!(b.resume("alice").unwrap().ends_with("mark 2\n"));
}

/// A resident file the node cannot write (a directory in the state file's place) is an
/// `Io` error naming that file, and the resume releases its claim: before, it was
/// `BaseFile`, "base image", naming a base that had nothing to do with it.
#[test]
fn a_resident_file_the_node_cannot_write_is_an_io_error_naming_it() {
    let (dir, addr, op, _) = store_with(&["alice"]);
    let a_dir = dir.path().join("a");
    let state = a_dir.join("resident").join("alice.state");
    std::fs::create_dir_all(&state).unwrap();
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    let got = a.resume("alice");
    assert!(
        matches!(&got, Err(StoreError::Io { path, .. }) if path == &state),
        "{got:?}"
    );
    assert_eq!(op.record(&t("alice")).unwrap().owner, None, "released");
}

/// A node pointed at another node's directory does not act under that node's claims: the
/// claim file names node `a`, and node `b` is refused rather than renewing and writing as
/// `a`.
#[test]
fn a_resident_claim_of_another_node_is_refused() {
    let (dir, addr, op, _) = store_with(&["alice"]);
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    let b = CliNode::open(&addr, Access::Operator, "b", &a_dir).unwrap();
    let got = b.mark("alice", 9);
    assert!(
        matches!(got, Err(StoreError::Damaged { .. })),
        "node b with node a's claim: {got:?}"
    );
    assert!(a.suspend("alice").is_ok());
    assert_eq!(op.record(&t("alice")).unwrap().owner, None);
}

/// What a backend answers for fenced writes presenting a claim whose epoch no record can
/// hold (past the largest `bigint`): a forged claim, refused as every forged claim is.
fn epoch_past_bigint_answers(h: &dyn Harness) -> Vec<String> {
    let fp = real_base(h, 1_000);
    let layer = common::layer_v1(h, fp, 7);
    let clock = ManualClock::new(Millis(1_000));
    let s = h.open(Access::Operator, Arc::new(clock)).unwrap();
    s.create_tenant(&t("x"), fp, None).unwrap();
    let live = s.claim(&t("x"), &n("a"), 100).unwrap();
    let forged = Claim {
        epoch: Epoch(u64::MAX),
        ..live
    };
    let kind = |r: Result<String, StoreError>| match r {
        Ok(_) => "Ok".to_owned(),
        Err(StoreError::Fenced { .. }) => "Fenced".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    vec![
        kind(
            s.put_version_claimed(&forged, fp, 1, &layer)
                .map(|_| String::new()),
        ),
        kind(s.write_state(&forged, b"st").map(|_| String::new())),
        kind(
            s.put_segment(&forged, cowheap_segment::swap::SegmentId::new(1), b"seg")
                .map(|_| String::new()),
        ),
        kind(s.renew(&forged, 100).map(|_| String::new())),
        kind(s.release(&forged).map(|_| String::new())),
        format!("{:?}", s.versions(fp, 0).map(|v| v.len())),
    ]
}

#[test]
fn backends_agree_on_a_claim_whose_epoch_is_past_the_largest_bigint() {
    let local = epoch_past_bigint_answers(&Local::new());
    let pg = epoch_past_bigint_answers(&Pg::new());
    assert_eq!(local, pg, "the local store (left) and PostgreSQL (right)");
    assert!(local.iter().take(5).all(|a| a == "Fenced"), "{local:?}");
}

/// Listings "by name" (tenants, committers) are in the names' byte order on every backend,
/// whatever collation the PostgreSQL database was made with.
#[test]
fn listings_are_in_name_order_whatever_the_collation() {
    let server = PgServer::start().unwrap();
    let mut c = postgres::Client::connect(&server.url("postgres"), postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' \
         LOCALE 'C.UTF-8'",
    )
    .unwrap();
    let url = server.url("icu");
    let pg = PgStore::init(&url, Arc::new(SystemClock)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local =
        cowheap_store::LocalStore::init(dir.path(), Arc::new(SystemClock), Access::Operator)
            .unwrap();
    let names = ["ab", "B", "a-c", "a", "Z_"];
    let fp = cowheap_heap::Fingerprint([3; 32]);
    let mut out = Vec::new();
    for s in [&local as &dyn Store, &pg as &dyn Store] {
        s.put_base(fp, &[3u8; 100]).unwrap();
        for name in names {
            s.create_tenant(&t(name), fp, None).unwrap();
            s.allow_commit(fp, &common::p(name)).unwrap();
        }
        let tenants: Vec<String> = s
            .tenants()
            .unwrap()
            .into_iter()
            .map(|r| r.tenant.to_string())
            .collect();
        let committers: Vec<String> = s
            .committers(fp)
            .unwrap()
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        out.push((tenants, committers));
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(out[0], (sorted.clone(), sorted.clone()), "local");
    assert_eq!(
        out[1], out[0],
        "PostgreSQL (left) and the local store (right)"
    );
}

/// A mark that cannot be written whole (the tenant's quota refuses its object) leaves the
/// tenant as it was: the mark written before still reads back. Before, the slot took the
/// new number and the object kept the old one, so the tenant held no mark at all, and a
/// suspend then wrote that.
#[test]
fn a_mark_refused_by_the_quota_leaves_the_last_mark() {
    let base = cowheap_forwarders::Base::new(synth::image(1_000, 1));
    let mut tenant = cowheap_tenants::Tenant::fork(&base);
    write_mark(&mut tenant, 1).unwrap();
    assert_eq!(read_mark(&tenant), Some(1));
    // No new private bytes fit: the slot's object is a copy already, the mark's object is
    // new.
    tenant.set_quota(Some(1));
    assert!(write_mark(&mut tenant, 2).is_err());
    assert_eq!(read_mark(&tenant), Some(1), "the last mark written");
}

/// A FIFO in the place of a resident's claim file or state file is damage, answered at
/// once: before, the node opened it to read and waited for a writer for ever.
#[test]
fn a_fifo_among_a_nodes_resident_files_is_refused_not_waited_on() {
    let (dir, addr, _, _) = store_with(&["alice", "bob"]);
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.resume("bob").unwrap();
    let resident = a_dir.join("resident");
    fifo(&resident.join("alice.claim"));
    fifo(&resident.join("bob.state"));
    let a = Arc::new(a);
    for name in ["alice", "bob"] {
        let got = within({
            let a = a.clone();
            move || a.mark(name, 7)
        })
        .unwrap_or_else(|| panic!("{name}: the node waited on a FIFO"));
        assert!(
            matches!(got, Err(StoreError::Damaged { .. })),
            "{name}: {got:?}"
        );
    }
}

/// A FIFO in the place of a base in a node's cache is replaced by the base fetched again:
/// before, the node opened it to map and waited for a writer for ever.
#[test]
fn a_fifo_in_a_nodes_base_cache_is_fetched_over() {
    let (dir, addr, _, fp) = store_with(&["alice"]);
    let a_dir = dir.path().join("a");
    std::fs::create_dir_all(a_dir.join("cache")).unwrap();
    fifo(&a_dir.join("cache").join(format!("{}.cowheap", fp.trim())));
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    let got = within(move || a.resume("alice").map(|said| (said, a)))
        .expect("the node waited on a FIFO in its cache");
    let (said, a) = got.unwrap();
    assert!(said.contains("resumed alice"), "{said}");
    assert!(a.suspend("alice").is_ok());
}

/// A base file that is a FIFO is refused at once with an I/O error: before, storing it
/// waited for a writer for ever.
#[test]
fn a_fifo_given_as_a_base_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = cowheap_store::LocalStore::init(
        &dir.path().join("store"),
        Arc::new(SystemClock),
        Access::Operator,
    )
    .unwrap();
    let node =
        cowheap_store::Node::new(Arc::new(store), n("setup"), dir.path().join("cache-setup"));
    let file = dir.path().join("base.cowheap");
    fifo(&file);
    let got = within(move || node.put_base_file(&file).map(|_| ()))
        .expect("storing a FIFO as a base waited for a writer");
    match got {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{source}")
        }
        other => panic!("{other:?}"),
    }
}
