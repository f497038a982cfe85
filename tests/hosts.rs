//! Host objects and their plugins: a host object survives a snapshot and its restore in
//! another process, made again by its plugin; without the plugin it is refused, or kept as a
//! placeholder that loses nothing; collection drops unreachable host objects; a commit
//! refuses them; every truncation of a snapshot holding one is refused.

use cowheap::tenants::commit::{CommitError, CommitRights, Repository};
use cowheap::tenants::hosts::{HostError, HostPlugin, HostPlugins};
use cowheap::{Base, RestoreError, SnapshotError, Tenant, TenantConfig, Value, synth};
use std::any::Any;
use std::process::Command;
use std::sync::Arc;

/// A host object: what a connection needs to be reopened, and whether this one was.
#[derive(Debug)]
struct Connection {
    address: String,
    reopened: bool,
    _alive: Option<Arc<()>>,
}

struct Connections;

impl HostPlugin for Connections {
    fn save(&self, object: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        let c = object
            .downcast_ref::<Connection>()
            .ok_or("not a connection")?;
        Ok(c.address.as_bytes().to_vec())
    }
    fn restore(&self, saved: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        let address = String::from_utf8(saved.to_vec()).map_err(|e| e.to_string())?;
        if address.is_empty() {
            return Err("no address".into());
        }
        Ok(Box::new(Connection {
            address,
            reopened: true,
            _alive: None,
        }))
    }
}

fn plugins() -> HostPlugins {
    let mut p = HostPlugins::new();
    p.register("connection", Arc::new(Connections));
    p
}

fn base() -> Arc<Base> {
    Base::new(synth::image(2_000, 17))
}

/// A tenant holding two connections (one named by a root, one in a slot of an object of its
/// own, itself rooted) and some other objects.
fn tenant_with_hosts(base: &Arc<Base>) -> Tenant {
    let g = base.heap().root("Smalltalk").unwrap();
    let mut t = Tenant::fork(base);
    let class = t.class_of(g).unwrap();
    let a = t
        .new_host_object(class, "connection", Box::new(conn("db:5432")))
        .unwrap();
    let b = t
        .new_host_object(class, "connection", Box::new(conn("cache:6379")))
        .unwrap();
    t.set_root("db", a).unwrap();
    let holder = t
        .alloc_with(class, cowheap::Format::Pointers, &[b, Value::int(9)], &[])
        .unwrap();
    t.set_root("holder", holder).unwrap();
    t.set_slot(g, 0, holder).unwrap();
    t
}

fn conn(address: &str) -> Connection {
    Connection {
        address: address.into(),
        reopened: false,
        _alive: None,
    }
}

/// What a restored tenant holds: each connection's address and whether it was reopened.
fn describe(t: &Tenant) -> String {
    let a = t.root("db").unwrap();
    let holder = t.root("holder").unwrap();
    let b = t.slot(holder, 0).unwrap();
    let show = |v| match t.host_object(v) {
        Some((kind, Some(o))) => {
            let c = o.downcast_ref::<Connection>().unwrap();
            format!("{kind}:{}:{}", c.address, c.reopened)
        }
        Some((kind, None)) => format!("{kind}:placeholder"),
        None => "none".into(),
    };
    format!("{} {}", show(a), show(b))
}

const SNAPSHOT_ENV: &str = "COWHEAP_TEST_HOST_SNAPSHOT";

#[test]
fn a_host_object_survives_a_snapshot_restored_in_another_process() {
    let base = base();
    let t = tenant_with_hosts(&base);
    assert_eq!(
        describe(&t),
        "connection:db:5432:false connection:cache:6379:false"
    );
    let bytes = t.snapshot_with(&plugins()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.snap");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_restores_host_objects",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SNAPSHOT_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("HOSTS ").nth(1))
        .unwrap_or_else(|| panic!("the child printed nothing: {stdout}"));
    assert_eq!(line, "connection:db:5432:true connection:cache:6379:true");
}

/// Child process entry (not a test on its own).
#[test]
#[ignore = "entry point for a child process of a_host_object_survives_a_snapshot_restored_in_another_process"]
fn child_restores_host_objects() {
    let path = std::env::var_os(SNAPSHOT_ENV).expect("run by the parent test");
    let bytes = std::fs::read(path).unwrap();
    let t =
        Tenant::restore_with_hosts(&base(), &bytes, &TenantConfig::default(), &plugins(), false)
            .unwrap();
    assert_eq!(t.host_count(), 2);
    println!("\nHOSTS {}", describe(&t));
}

#[test]
fn without_its_plugin_a_host_object_is_refused_or_kept_as_a_placeholder() {
    let base = base();
    let t = tenant_with_hosts(&base);
    let none = HostPlugins::new();
    // Saving needs the plugin.
    assert!(matches!(
        t.snapshot_with(&none),
        Err(SnapshotError::Host(HostError::NoPlugin { ref kind })) if kind == "connection"
    ));
    let bytes = t.snapshot_with(&plugins()).unwrap();
    let config = TenantConfig::default();
    // Restoring without it: refused, by every restore that takes no plugins too.
    assert!(matches!(
        Tenant::restore_with_hosts(&base, &bytes, &config, &none, false),
        Err(RestoreError::Host(HostError::NoPlugin { .. }))
    ));
    assert!(Tenant::restore_with(&base, &bytes, &config).is_err());
    assert!(Tenant::restore_from(&base, &bytes).is_err());
    // As placeholders: found, and their saved bytes kept through another snapshot.
    let mut kept = Tenant::restore_with_hosts(&base, &bytes, &config, &none, true).unwrap();
    assert_eq!(
        describe(&kept),
        "connection:placeholder connection:placeholder"
    );
    let found: Vec<(Value, String)> = kept
        .placeholders()
        .map(|(v, k)| (v, k.to_owned()))
        .collect();
    assert_eq!(found.len(), 2);
    let again = kept.snapshot();
    let back = Tenant::restore_with_hosts(&base, &again, &config, &plugins(), false).unwrap();
    assert_eq!(
        describe(&back),
        "connection:db:5432:true connection:cache:6379:true"
    );
    // The caller gives a placeholder its object and gets the saved bytes.
    let (v, _) = found[0];
    let saved = kept
        .replace_placeholder(v, Box::new(conn("made by hand")))
        .unwrap();
    assert!(saved.is_some());
    assert_eq!(kept.placeholders().count(), 1);
    assert!(
        kept.replace_placeholder(v, Box::new(conn("twice")))
            .is_none()
    );
    // A snapshot taken without plugins did not save the state: refused unless placeholders.
    let unsaved = t.snapshot();
    assert!(matches!(
        Tenant::restore_with_hosts(&base, &unsaved, &config, &plugins(), false),
        Err(RestoreError::Host(HostError::NotSaved { .. }))
    ));
    let empty = Tenant::restore_with_hosts(&base, &unsaved, &config, &plugins(), true).unwrap();
    assert_eq!(empty.placeholders().count(), 2);
}

#[test]
fn a_failing_plugin_is_a_typed_error() {
    let base = base();
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let v = t
        .new_host_object(class, "connection", Box::new(conn("")))
        .unwrap();
    t.set_root("c", v).unwrap();
    let bytes = t.snapshot_with(&plugins()).unwrap();
    let err = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &plugins(), true)
        .unwrap_err();
    assert!(
        matches!(err, RestoreError::Host(HostError::Restore { .. })),
        "{err}"
    );
    // A plugin handed an object of another kind refuses to save it.
    let mut wrong = Tenant::fork(&base);
    let v = wrong
        .new_host_object(class, "connection", Box::new(42u32))
        .unwrap();
    wrong.set_root("c", v).unwrap();
    assert!(matches!(
        wrong.snapshot_with(&plugins()),
        Err(SnapshotError::Host(HostError::Save { .. }))
    ));
}

#[test]
fn collection_drops_unreachable_host_objects_and_commit_refuses_them() {
    let base = base();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    let g = base.heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let alive = Arc::new(());
    let kept = t
        .new_host_object(
            class,
            "connection",
            Box::new(Connection {
                address: "kept".into(),
                reopened: false,
                _alive: Some(alive.clone()),
            }),
        )
        .unwrap();
    t.set_root("kept", kept).unwrap();
    t.new_host_object(
        class,
        "connection",
        Box::new(Connection {
            address: "garbage".into(),
            reopened: false,
            _alive: Some(alive.clone()),
        }),
    )
    .unwrap();
    assert_eq!(Arc::strong_count(&alive), 3);
    t.collect();
    assert_eq!(t.host_count(), 1);
    assert_eq!(
        Arc::strong_count(&alive),
        2,
        "the unreachable one was dropped"
    );
    // Changing a host object through the tenant.
    let c = t.host_object_mut(kept).unwrap();
    c.downcast_mut::<Connection>().unwrap().address = "moved".into();
    let (_, o) = t.host_object(kept).unwrap();
    assert_eq!(
        o.unwrap().downcast_ref::<Connection>().unwrap().address,
        "moved"
    );
    // A base object that refers to a host object cannot be committed.
    t.set_slot(g, 0, kept).unwrap();
    assert!(matches!(
        repo.commit(&mut t, "x"),
        Err(CommitError::HostObject)
    ));
    assert_eq!(repo.current().version(), 0);
    // Abort drops it.
    repo.abort(&mut t);
    assert_eq!(t.host_count(), 0);
    assert_eq!(Arc::strong_count(&alive), 1);
}

#[test]
fn every_truncation_and_bit_flip_of_a_snapshot_with_host_objects_is_refused() {
    let base = Base::new(synth::image(300, 4));
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let v = t
        .new_host_object(class, "connection", Box::new(conn("x:1")))
        .unwrap();
    t.set_root("c", v).unwrap();
    let bytes = t.snapshot_with(&plugins()).unwrap();
    let config = TenantConfig::default();
    assert!(Tenant::restore_with_hosts(&base, &bytes, &config, &plugins(), false).is_ok());
    for n in 0..bytes.len() {
        assert!(
            Tenant::restore_with_hosts(&base, &bytes[..n], &config, &plugins(), true).is_err(),
            "truncated at {n}"
        );
    }
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            Tenant::restore_with_hosts(&base, &b, &config, &plugins(), true).is_err(),
            "bit {i} flipped"
        );
    }
}

/// A proxy stays an object: `becomeForward:` of one is refused, so every snapshot of the
/// tenant restores with its host object; and a proxy that is the copy of a base object (a
/// host object attached through a base reference) is refused by a commit like any other.
#[test]
fn a_proxy_cannot_become_a_forwarder_and_a_copied_proxy_is_not_committed() {
    use cowheap::tenants::hosts::DetachedHost;
    let base = base();
    let repo = Repository::new(base.clone(), CommitRights::Anyone);
    let mut t = repo.fork();
    let g = base.heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let p = t
        .new_host_object(class, "connection", Box::new(conn("db:1")))
        .unwrap();
    t.set_root("p", p).unwrap();
    let other = t
        .alloc_with(class, cowheap::Format::Pointers, &[Value::int(1)], &[])
        .unwrap();
    assert!(matches!(
        t.become_forward(p, other),
        Err(cowheap::tenants::Error::HostProxy(_))
    ));
    assert!(
        t.host_object(p).unwrap().1.is_some(),
        "still its host object"
    );
    let bytes = t.snapshot_with(&plugins()).unwrap();
    let back =
        Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &plugins(), false)
            .unwrap();
    assert_eq!(back.host_count(), 1);

    // A host object attached to the copy of a base object: the commit refuses it, and
    // nothing is published.
    let mut t = repo.fork();
    let x = base.heap().root("Smalltalk").unwrap();
    let slot = t.slot(x, 0).unwrap();
    t.set_slot(x, 0, slot).unwrap(); // the copy
    t.attach_host(x, DetachedHost::new("connection", Box::new(conn("db:2"))))
        .unwrap();
    assert!(matches!(
        repo.commit(&mut t, "x"),
        Err(CommitError::HostObject)
    ));
    assert_eq!(repo.current().version(), 0);
    let bytes = t.snapshot_with(&plugins()).unwrap();
    assert!(
        Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &plugins(), false)
            .is_ok()
    );
}
