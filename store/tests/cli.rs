//! The functions behind `cowheap store ...`: two command-line nodes on one machine pass a
//! tenant back and forth through a local store.

use cowheap_heap::synth;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, StoreError, open_store};
use std::sync::Arc;

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
