//! The functions behind `cowheap store ...`: two command-line nodes on one machine pass a
//! tenant back and forth through a local store.

use cowheap_heap::synth;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, StoreError, open_store};
use std::sync::Arc;

#[path = "common/alice.rs"]
mod alice;
use alice::store_with_alice;

#[test]
fn two_command_line_nodes_pass_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let addr = store.to_str().unwrap();
    assert!(cli::init(addr).unwrap().contains("store ready"));
    let op = open_store(addr, Arc::new(cowheap_store::SystemClock), Access::Operator).unwrap();
    let fp = cli::put_base(&*op, &synth::image(1_000, 3)).unwrap();
    assert_eq!(fp.trim().len(), 64);
    assert_eq!(
        cli::create(&*op, "alice", fp.trim(), None).unwrap(),
        "created alice\n"
    );

    let a = CliNode::open(addr, Access::Operator, "a", &dir.path().join("a")).unwrap();
    let b = CliNode::open(addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    assert_eq!(
        a.resume("alice").unwrap(),
        "resumed alice on node a at epoch 1, mark -\n"
    );
    assert!(matches!(b.resume("alice"), Err(StoreError::Held { .. })));
    a.mark("alice", 42).unwrap();
    assert!(a.suspend("alice").unwrap().starts_with("suspended alice"));
    assert_eq!(
        b.resume("alice").unwrap(),
        "resumed alice on node b at epoch 2, mark 42\n"
    );
    let listing = cli::ls(&*op).unwrap();
    assert!(listing.contains("tenant alice"), "{listing}");
    assert!(listing.contains("epoch 2 owner b"), "{listing}");
    b.mark("alice", 43).unwrap();
    b.suspend("alice").unwrap();
    // a's resident copy is gone: suspending again is refused, not a second write.
    assert!(a.suspend("alice").is_err());
    assert!(a.resume("alice").unwrap().ends_with("mark 43\n"));
}

/// Commits from the command line: a node commits a resident tenant's change as version 1,
/// `versions` lists it, another node resumes the tenant on that version, and a principal
/// the base does not name is refused.
#[test]
fn a_command_line_node_commits_and_versions_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, op, fp) = store_with_alice(dir.path());
    let (addr, fp) = (addr.as_str(), fp.as_str());
    cli::add_principal(&*op, "p", "s").unwrap();
    cli::create(&*op, "bob", fp, Some("p")).unwrap();
    assert_eq!(cli::versions(&*op, fp, 0).unwrap(), "");

    let a = CliNode::open(addr, Access::Operator, "a", &dir.path().join("a")).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 42).unwrap();
    let said = a.commit("alice").unwrap();
    assert!(
        said.starts_with("committed alice: version 1 of base "),
        "{said}"
    );
    a.suspend("alice").unwrap();
    let listing = cli::versions(&*op, fp, 0).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "{listing}");
    assert!(lines[0].starts_with("version 1 layer "), "{listing}");
    assert!(lines[0].ends_with(" by operator"), "{listing}");
    assert_eq!(cli::versions(&*op, fp, 1).unwrap(), "");

    // Another node, which never synced, resumes alice on version 1.
    let b = CliNode::open(addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    assert!(b.resume("alice").unwrap().ends_with("mark 42\n"));

    // A principal the base does not name cannot commit; once named, it can.
    let access = cowheap_store::principal_access("p", "s").unwrap();
    let pn = CliNode::open(addr, access, "pn", &dir.path().join("pn")).unwrap();
    pn.resume("bob").unwrap();
    pn.mark("bob", 7).unwrap();
    assert!(matches!(
        pn.commit("bob"),
        Err(StoreError::NotCommitter { .. })
    ));
    assert_eq!(
        cli::allow_commit(&*op, fp, "p").unwrap(),
        format!(
            "principal p may commit to base {}\n",
            cowheap_store::parse_fingerprint(fp).unwrap()
        )
    );
    assert!(pn.commit("bob").unwrap().contains("version 2"));
    let listing = cli::versions(&*op, fp, 1).unwrap();
    assert!(listing.starts_with("version 2 layer "), "{listing}");
    assert!(listing.contains(" by p\ncommitter p\n"), "{listing}");
}

/// A command-line node whose claim another node has taken since marks and commits nothing:
/// its resident files, kept from before, name an epoch the store has moved past (before,
/// `mark` ran the tenant all the same).
#[test]
fn a_command_line_node_that_lost_its_claim_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, op, fp) = store_with_alice(dir.path());
    let (addr, fp) = (addr.as_str(), fp.as_str());
    let a_dir = dir.path().join("a");
    let a = CliNode::open(addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 42).unwrap();
    // a's resident files as they are now, then a suspends and b takes the tenant.
    let kept = dir.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    for f in std::fs::read_dir(a_dir.join("resident")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, kept.join(f.file_name().unwrap())).unwrap();
    }
    a.suspend("alice").unwrap();
    let b = CliNode::open(addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    b.resume("alice").unwrap();
    for f in std::fs::read_dir(&kept).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, a_dir.join("resident").join(f.file_name().unwrap())).unwrap();
    }
    // Nor does it run the tenant: a mark is refused before it is written.
    assert!(matches!(
        a.mark("alice", 99),
        Err(StoreError::Fenced { .. })
    ));
    for f in std::fs::read_dir(&kept).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, a_dir.join("resident").join(f.file_name().unwrap())).unwrap();
    }
    assert!(matches!(a.commit("alice"), Err(StoreError::Fenced { .. })));
    assert_eq!(cli::versions(&*op, fp, 0).unwrap(), "", "nothing committed");
    // b, which holds it, commits.
    assert!(b.commit("alice").unwrap().contains("version 1"));
}

/// A commit that conflicts with a version another node committed first conflicts again on
/// every try with the same changes; `abort` drops them and moves the tenant to the newest
/// version, from which it commits again.
#[test]
fn a_command_line_node_aborts_a_conflicting_tenant_and_commits_again() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, op, fp) = store_with_alice(dir.path());
    let (addr, fp) = (addr.as_str(), fp.as_str());
    cli::create(&*op, "bob", fp, None).unwrap();
    let a = CliNode::open(addr, Access::Operator, "a", &dir.path().join("a")).unwrap();
    let b = CliNode::open(addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    a.resume("alice").unwrap();
    b.resume("bob").unwrap();
    a.mark("alice", 1).unwrap();
    b.mark("bob", 2).unwrap();
    assert!(a.commit("alice").unwrap().contains("version 1"));
    for _ in 0..2 {
        let conflict = b.commit("bob");
        assert!(
            matches!(conflict, Err(StoreError::Commit(_))),
            "{conflict:?}"
        );
    }
    let said = b.abort("bob").unwrap();
    assert!(
        said.starts_with("aborted bob: its changes dropped, on version 1 of base "),
        "{said}"
    );
    b.mark("bob", 3).unwrap();
    assert!(b.commit("bob").unwrap().contains("version 2"));
    b.suspend("bob").unwrap();
    let c = CliNode::open(addr, Access::Operator, "c", &dir.path().join("c")).unwrap();
    assert!(c.resume("bob").unwrap().ends_with("mark 3\n"));
    // A tenant the node does not hold is an error, and changes nothing.
    assert!(matches!(b.abort("bob"), Err(StoreError::Io { .. })));
    assert_eq!(cli::versions(&*op, fp, 0).unwrap().lines().count(), 2);
}
