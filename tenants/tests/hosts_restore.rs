//! A restore the snapshot or the host refuses has run no host plugin: a plugin's restore
//! may reach outside the tenant (reopen a connection), so every check runs before it.

use cowheap_forwarders::{Base, MarkPolicy};
use cowheap_heap::synth;
use cowheap_tenants::hosts::{HostError, HostPlugin, HostPlugins};
use cowheap_tenants::snapshot::RestoreError;
use cowheap_tenants::{Tenant, TenantConfig};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A plugin that counts the objects it remade.
struct Opens(Arc<AtomicUsize>);

impl HostPlugin for Opens {
    fn save(&self, _: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        Ok(b"db:5432".to_vec())
    }
    fn restore(&self, _: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(()))
    }
}

#[test]
fn a_refused_restore_runs_no_plugin() {
    let base = Base::new(synth::image(1_000, 1));
    let class = Tenant::fork(&base)
        .class_of(base.heap().root("Smalltalk").unwrap())
        .unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut both = HostPlugins::new();
    both.register("conn", Arc::new(Opens(opened.clone())));
    both.register("file", Arc::new(Opens(Arc::new(AtomicUsize::new(0)))));

    // Over the host's quota.
    let mut t = Tenant::fork(&base);
    let p = t.new_host_object(class, "conn", Box::new(())).unwrap();
    t.set_root("db", p).unwrap();
    let bytes = t.snapshot_with(&both).unwrap();
    let tight = TenantConfig {
        quota: Some(1),
        marks: MarkPolicy::Shared,
    };
    let r = Tenant::restore_with_hosts(&base, &bytes, &tight, &both, false);
    assert!(matches!(r, Err(RestoreError::QuotaExceeded { .. })));
    assert_eq!(
        opened.load(Ordering::SeqCst),
        0,
        "a plugin ran for a restore over the quota"
    );
    // Within it, the plugin remakes the object.
    let r = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &both, false);
    assert!(r.is_ok());
    assert_eq!(opened.load(Ordering::SeqCst), 1);

    // A later host object's kind has no plugin.
    let mut t = Tenant::fork(&base);
    let a = t.new_host_object(class, "conn", Box::new(())).unwrap();
    let b = t.new_host_object(class, "file", Box::new(())).unwrap();
    t.set_root("a", a).unwrap();
    t.set_root("b", b).unwrap();
    let bytes = t.snapshot_with(&both).unwrap();
    let mut only_conn = HostPlugins::new();
    only_conn.register("conn", Arc::new(Opens(opened.clone())));
    let r = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &only_conn, false);
    assert!(matches!(
        r,
        Err(RestoreError::Host(HostError::NoPlugin { .. }))
    ));
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "a plugin ran for a restore refused for another kind's missing plugin"
    );
    // With placeholders the other kind is kept as one, and the plugin runs once.
    let r = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &only_conn, true)
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    let kinds: Vec<&str> = r.placeholders().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, ["file"]);
}

/// A plugin whose restore always fails.
struct Refuses;

impl HostPlugin for Refuses {
    fn save(&self, _: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        Ok(b"gone".to_vec())
    }
    fn restore(&self, _: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        Err("the server is gone".into())
    }
}

#[test]
fn a_plugin_that_fails_leaves_the_shared_marks_as_they_were() {
    let base = Base::new(synth::image(1_000, 1));
    let global = base.heap().root("Smalltalk").unwrap();
    let class = Tenant::fork(&base).class_of(global).unwrap();
    let mut plugins = HostPlugins::new();
    plugins.register("conn", Arc::new(Refuses));

    // A tenant that copied a base object and holds a host object, snapshotted in a
    // process whose base marks are fresh (another base of the same image).
    let mut t = Tenant::fork(&base);
    let x = global.word().as_base().unwrap();
    t.set_slot(global, 0, cowheap_heap::Value::int(7)).unwrap();
    let p = t.new_host_object(class, "conn", Box::new(())).unwrap();
    t.set_root("db", p).unwrap();
    let bytes = t.snapshot_with(&plugins).unwrap();

    let fresh = Base::new(synth::image(1_000, 1));
    assert!(!fresh.marks().is_marked(x.as_u32()));
    let r = Tenant::restore_with_hosts(&fresh, &bytes, &TenantConfig::default(), &plugins, false);
    assert!(matches!(
        r,
        Err(RestoreError::Host(HostError::Restore { .. }))
    ));
    assert!(
        !fresh.marks().is_marked(x.as_u32()),
        "a refused restore left a shared mark set: every tenant reads the object past it"
    );
}
