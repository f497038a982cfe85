//! A commit whose version landed in the store though the store's answer was lost leaves the
//! resident tenant as a commit that was answered does: standing on the landed version, with
//! the private state the commit did not take (its named roots, the objects they hold) kept.

use cowheap_heap::synth;
use cowheap_store::cli::{self, CliNode};
use cowheap_store::{Access, Store, StoreError, open_store};
use std::sync::Arc;
use wrapped::{Call, Hooks, Wrapped};

#[path = "common/wrapped.rs"]
mod wrapped;

/// After `mark 42` and a commit whose answer was lost, the tenant still holds its mark
/// whole (the base object's slot, committed, and the private object its root names, not
/// committed), as after an answered commit: another node resumes it with mark 42.
#[test]
fn a_landed_commit_keeps_the_tenants_own_objects() {
    let dir = tempfile::tempdir().unwrap();
    let addr = dir.path().join("store").to_str().unwrap().to_owned();
    cli::init(&addr).unwrap();
    let op = open_store(
        &addr,
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let fp = cli::put_base(&*op, &synth::image(1_000, 3)).unwrap();
    let fp = fp.trim().to_owned();
    cli::create(&*op, "alice", &fp, None).unwrap();
    let a_dir = dir.path().join("a");
    let a = CliNode::open(&addr, Access::Operator, "a", &a_dir).unwrap();
    a.resume("alice").unwrap();
    a.mark("alice", 42).unwrap();
    let inner = open_store(
        &addr,
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let lossy: Arc<dyn Store> = Arc::new(Wrapped::new(inner, AnswerLost));
    let landed = CliNode::new(lossy, "a", &a_dir).unwrap().commit("alice");
    assert!(
        matches!(&landed, Ok(s) if s.contains("version 1") && s.contains("answer was lost")),
        "{landed:?}"
    );
    a.suspend("alice").unwrap();
    let b = CliNode::open(&addr, Access::Operator, "b", &dir.path().join("b")).unwrap();
    let resumed = b.resume("alice").unwrap();
    assert!(resumed.ends_with("mark 42\n"), "{resumed}");
}

/// Hooks on a real store: a claimed version write lands, and then answers an error.
struct AnswerLost;

impl Hooks for AnswerLost {
    fn after(&self, call: Call, ok: bool) -> cowheap_store::Result<()> {
        match call {
            Call::PutVersionClaimed { .. } if ok => Err(StoreError::Io {
                path: "versions".into(),
                source: std::io::Error::other("answer lost"),
            }),
            _ => Ok(()),
        }
    }
}
