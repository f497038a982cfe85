//! A commit whose version landed in the store though the store's answer was lost leaves the
//! resident tenant as a commit that was answered does: standing on the landed version, with
//! the private state the commit did not take (its named roots, the objects they hold) kept.
//! A commit the allocator refuses before its version write stores nothing and leaves the
//! tenant as it was.

use cowheap_heap::synth;
use cowheap_store::cli::CliNode;
use cowheap_store::{Access, Store, StoreError, open_store};
use std::sync::Arc;
use wrapped::{Call, Hooks, Wrapped};

#[path = "common/wrapped.rs"]
mod wrapped;

#[path = "common/alice.rs"]
mod alice;
use alice::store_with_alice;

/// After `mark 42` and a commit whose answer was lost, the tenant still holds its mark
/// whole (the base object's slot, committed, and the private object its root names, not
/// committed), as after an answered commit: another node resumes it with mark 42.
#[test]
fn a_landed_commit_keeps_the_tenants_own_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _, _) = store_with_alice(dir.path());
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

#[global_allocator]
static ALLOC: cowheap_testkit::Refusing = cowheap_testkit::Refusing;

/// A node's commit of a thousand changes while the allocator refuses each large allocation
/// in turn: a refusal before the version write answers `OutOfMemory` with nothing in the
/// store and the tenant as it was (one after it is `CommitLanded`, the version stored); with
/// nothing left to refuse, the commit is the next version.
#[test]
fn a_commit_the_allocator_refuses_anywhere_before_its_write_stores_nothing() {
    use cowheap_heap::Value;
    use cowheap_store::workload::slot_objects;
    use cowheap_store::{LocalStore, Node, NodeName, SystemClock};
    use cowheap_tenants::commit::CommitMode;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        LocalStore::init(
            &dir.path().join("store"),
            Arc::new(SystemClock),
            Access::Operator,
        )
        .unwrap(),
    );
    let image = dir.path().join("base.cowheap");
    synth::image(5_000, 3).save(&image).unwrap();
    let mut before_write = 0;
    for k in 0.. {
        let node = Node::new(
            store.clone(),
            NodeName::new(format!("n{k}")).unwrap(),
            dir.path().join(format!("cache{k}")),
        );
        let fp = node.put_base_file(&image).unwrap();
        let repo = node.repository(fp).unwrap();
        let at = node.sync(fp).unwrap().version();
        let xs = slot_objects(&node.base(fp).unwrap(), 1_000);
        let mut t = repo.fork();
        for (i, &x) in (0..).zip(&xs) {
            t.set_slot(x, 0, Value::int(i)).unwrap();
        }
        let (r, refused) =
            cowheap_testkit::refusing_the(k, || node.commit(&mut t, CommitMode::WriteWrite, &[]));
        let stored = store.versions(fp, at).unwrap().len();
        if !refused {
            assert_eq!(r.unwrap().version(), at + 1);
            break;
        }
        match r {
            Err(StoreError::CommitLanded { .. }) => {
                assert_eq!(stored, 1, "refusal {k}");
                break;
            }
            Err(e) => {
                assert!(
                    e.to_string().contains("reserve") || e.to_string().contains("memory"),
                    "refusal {k} answered {e:?}"
                );
                assert_eq!(stored, 0, "refusal {k} stored a version");
                assert_eq!(t.base().version(), at, "refusal {k}");
                assert_eq!(t.diverted(), 1_000, "refusal {k}");
                before_write += 1;
            }
            Ok(v) => panic!("refusal {k} committed {}", v.version()),
        }
    }
    // The layer's bytes, and its decoding in the store's check of them.
    assert!(
        before_write >= 2,
        "{before_write} refusals before the write"
    );
}
