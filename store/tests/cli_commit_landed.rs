//! A command-line commit whose version landed in the store though the store's answer was
//! lost (`StoreError::CommitLanded`) stands on that version afterwards: the resident tenant
//! is settled on the version holding its changes and kept there, so its next commit lands
//! as the next version instead of conflicting with its own.

use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, Store, StoreError, open_store};
use std::sync::Arc;
use wrapped::{Call, Hooks, Wrapped};

#[path = "common/wrapped.rs"]
mod wrapped;

#[path = "common/alice.rs"]
mod alice;
use alice::store_with_alice;

#[test]
fn a_cli_commit_whose_answer_was_lost_stands_on_the_landed_version() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, op, fp) = store_with_alice(dir.path());
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 42).unwrap();
    let failing = |lands: bool| -> Arc<dyn Store> {
        let inner = open_store(
            &addr,
            Arc::new(cowheap_store::SystemClock),
            Access::Operator,
        )
        .unwrap();
        Arc::new(Wrapped::new(inner, FailingVersionWrite { lands }))
    };
    let a_lossy = CliNode::new(failing(true), "a", &a_dir).unwrap();
    let landed = a_lossy.commit("alice");
    assert!(
        matches!(&landed, Ok(s) if s.contains("version 1") && s.contains("answer was lost")),
        "{landed:?}"
    );
    assert_eq!(cli::versions(&*op, &fp, 0).unwrap().lines().count(), 1);
    // The node goes on: a new mark, and a commit, which lands as version 2.
    a.mark("alice", 43).unwrap();
    let again = a.commit("alice");
    assert!(
        matches!(&again, Ok(s) if s.contains("version 2")),
        "after a lost answer the tenant commits again: {again:?}"
    );
    // A failure that is no lost answer is still an error, the tenant unchanged.
    a.mark("alice", 44).unwrap();
    let refused = CliNode::new(failing(false), "a", &a_dir)
        .unwrap()
        .commit("alice");
    assert!(matches!(refused, Err(StoreError::Io { .. })), "{refused:?}");
    assert!(a.commit("alice").unwrap().contains("version 3"));
}

/// Hooks on a real store: a claimed version write answers an error, after it landed
/// (`lands`, a lost answer), or before anything was written.
struct FailingVersionWrite {
    lands: bool,
}

impl Hooks for FailingVersionWrite {
    fn before(&self, call: Call) -> cowheap_store::Result<()> {
        match call {
            Call::PutVersionClaimed { .. } if !self.lands => Err(lost()),
            _ => Ok(()),
        }
    }

    fn after(&self, call: Call, ok: bool) -> cowheap_store::Result<()> {
        match call {
            Call::PutVersionClaimed { .. } if self.lands && ok => Err(lost()),
            _ => Ok(()),
        }
    }
}

fn lost() -> StoreError {
    StoreError::Io {
        path: "versions".into(),
        source: std::io::Error::other("answer lost"),
    }
}
