//! Host objects in tenant segments: a proxy member travels with its kind and its plugin's
//! state, and is made again by the plugin on import, in a tenant of another base built with
//! the same classes (mini to Scratch), keeping its class and identity hash. Without a plugin
//! the extraction and the import are refused with a typed error naming the kind; with
//! placeholders accepted the member is listed in the report and keeps its bytes. Every
//! truncation and bit flip of a small segment file holding a host object is refused, a
//! damaged host section is refused, and a version 1 file still reads.
//!
//! Swapped out (`Swapper::with_plugins`): host objects are saved into the segment's file
//! and dropped from memory with the members; a read through a stub makes them again by the
//! plugin, with their saved state, for the same proxy (identity and hash kept); what no
//! plugin can carry is refused with the tenant unchanged; a plugin failing at fault-in is
//! a typed error and the tenant stays usable, or placeholders come back if accepted; every
//! truncation and bit flip of the swapped file is refused; the segment moves to another
//! swapper with the tenant's snapshot and records.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_segment::SegmentError;
use cowheap_segment::file;
use cowheap_segment::hosts::SegHost;
use cowheap_segment::swap::{DirStore, MemStore, SegmentId, SwapError, Swapper};
use cowheap_segment::tenant::{self, SegmentState, TenantSegment};
use cowheap_tenants::hosts::{HostError, HostPlugin, HostPlugins};
use cowheap_tenants::{Error, Tenant};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A host object: what a connection needs to be reopened, and whether this one was.
#[derive(Debug)]
struct Connection {
    address: String,
    reopened: bool,
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
        Ok(Box::new(Connection {
            address,
            reopened: true,
        }))
    }
}

fn plugins() -> HostPlugins {
    let mut p = HostPlugins::new();
    p.register("connection", Arc::new(Connections));
    p
}

fn conn(address: &str) -> Box<Connection> {
    Box::new(Connection {
        address: address.into(),
        reopened: false,
    })
}

/// The connection a proxy holds in `t`.
fn connection(t: &Tenant, proxy: Value) -> &Connection {
    let (kind, object) = t.host_object(proxy).expect("a host object's proxy");
    assert_eq!(kind, "connection");
    object
        .expect("not a placeholder")
        .downcast_ref::<Connection>()
        .expect("a connection")
}

fn no_plugin_kind(e: &SegmentError) -> Option<&str> {
    match e {
        SegmentError::Host {
            source: HostError::NoPlugin { kind },
            ..
        } => Some(kind),
        _ => None,
    }
}

/// mini and Scratch: two bases built with the same classes.
fn mini_and_scratch() -> (Arc<Base>, Arc<Base>) {
    let mini = Base::new(cowheap_squeak::import(image("mini.image")).unwrap().heap);
    let scratch = Base::new(
        cowheap_squeak::import(image("Scratch-1.4.0.6.image"))
            .unwrap()
            .heap,
    );
    (mini, scratch)
}

/// A tenant of mini holding an Array `(proxy #size 7 proxy2)`, both proxies connections of
/// class `Object`; answers the tenant, the array and the two proxies.
fn mini_tenant(mini: &Arc<Base>) -> (Tenant, Value, Value, Value) {
    let names = cowheap_segment::bind::BaseNames::of(mini.heap()).unwrap();
    let mut t = Tenant::fork(mini);
    let object = names.global("Object").unwrap();
    let p = t
        .new_host_object(object, "connection", conn("db:5432"))
        .unwrap();
    let q = t
        .new_host_object(object, "connection", conn("cache:6379"))
        .unwrap();
    let a = t
        .alloc(
            names.global("Array").unwrap(),
            Format::Pointers,
            ObjectSize { slots: 4, bytes: 0 },
        )
        .unwrap();
    for (k, v) in [p, names.symbol("size").unwrap(), Value::int(7), q]
        .into_iter()
        .enumerate()
    {
        t.set_slot(a, k, v).unwrap();
    }
    (t, a, p, q)
}

#[test]
fn a_host_object_survives_a_file_and_an_import_into_another_base() {
    let (mini, scratch) = mini_and_scratch();
    let (t, a, p, q) = mini_tenant(&mini);
    let hashes = [t.identity_hash(p).unwrap(), t.identity_hash(q).unwrap()];
    let mut seg = tenant::extract_with_hosts(&t, &[a], &[], &plugins()).unwrap();
    assert_eq!(seg.objects.len(), 3);
    assert_eq!(seg.hosts.len(), 2);
    assert!(seg.hosts.iter().all(|h| h.kind == "connection"));
    let mut saved: Vec<&[u8]> = seg
        .hosts
        .iter()
        .map(|h| h.saved.as_deref().unwrap())
        .collect();
    saved.sort_unstable();
    assert_eq!(saved, [&b"cache:6379"[..], b"db:5432"]);
    assert_eq!(seg.report().hosts, 2);
    assert!(seg.report().to_string().contains("host objects:    2"));
    // Squeak's V3 segments have no place for a plugin's state.
    assert!(matches!(
        cowheap_segment::export::to_v3(
            &seg,
            mini.heap(),
            cowheap_segment::v3::ByteOrder::Little,
            6502,
            b's'
        ),
        Err(SegmentError::Unrepresentable(_))
    ));
    seg.make_portable(mini.heap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.cowseg");
    file::write(&mut seg, &path).unwrap();
    // `cowheap segment import` has no plugins: placeholders, listed.
    let out = cowheap_segment::info::import(&path, &image("Scratch-1.4.0.6.image")).unwrap();
    assert!(out.to_string().contains("2 made as placeholders"), "{out}");
    match out {
        cowheap_segment::info::ImportOutcome::Cowheap { placeholders, .. } => {
            assert_eq!(placeholders, ["connection", "connection"]);
        }
        other => panic!("{other}"),
    }
    let mut back = file::read(&path, Some(scratch.fingerprint())).unwrap();
    assert_eq!(back.hosts, seg.hosts);
    let mut t2 = Tenant::fork(&scratch);
    let imported = back
        .import_with_hosts(&mut t2, &[], false, &plugins(), false)
        .unwrap();
    assert!(imported.placeholders.is_empty());
    assert_eq!(imported.hosts.len(), 2);
    let a2 = imported.roots[0];
    let (p2, q2) = (t2.slot(a2, 0).unwrap(), t2.slot(a2, 3).unwrap());
    // Made again by the plugin, each with its own state.
    for (v, address) in [(p2, "db:5432"), (q2, "cache:6379")] {
        let c = connection(&t2, v);
        assert_eq!(c.address, address);
        assert!(c.reopened);
        assert!(imported.hosts.iter().any(|&h| t2.identical(h, v).unwrap()));
    }
    // Identity hash and class kept; the rest of the array bound in Scratch.
    assert_eq!(
        [t2.identity_hash(p2).unwrap(), t2.identity_hash(q2).unwrap()],
        hashes
    );
    let s_names = cowheap_segment::bind::BaseNames::of(scratch.heap()).unwrap();
    let object = s_names.global("Object").unwrap();
    assert!(t2.identical(t2.class_of(p2).unwrap(), object).unwrap());
    assert!(t2.identical(t2.class_of(q2).unwrap(), object).unwrap());
    assert_eq!(t2.format(p2).unwrap(), Format::Bytes);
    assert!(
        t2.identical(t2.slot(a2, 1).unwrap(), s_names.symbol("size").unwrap())
            .unwrap()
    );
    assert_eq!(t2.slot(a2, 2).unwrap().as_int(), Some(7));
    // Collection keeps the reachable proxies and their host objects.
    t2.set_root("seg", a2).unwrap();
    t2.collect();
    assert_eq!(t2.host_count(), 2);
    assert_eq!(connection(&t2, p2).address, "db:5432");
    assert_eq!(t2.identity_hash(p2).unwrap(), hashes[0]);
    // A segment root that is itself a proxy travels too (same base, in memory).
    let mut seg = tenant::extract_with_hosts(&t, &[p], &[a], &plugins()).unwrap();
    assert_eq!(seg.objects.len(), 1);
    let mut t3 = Tenant::fork(&mini);
    let imported = seg
        .import_with_hosts(&mut t3, &[], false, &plugins(), false)
        .unwrap();
    assert_eq!(connection(&t3, imported.roots[0]).address, "db:5432");
    assert_eq!(t3.identity_hash(imported.roots[0]).unwrap(), hashes[0]);
}

/// A synthetic base and a tenant of it holding `holder = (proxy 5)`, the proxy a connection.
fn synth_tenant() -> (Arc<Base>, Tenant, Value, Value) {
    let base = Base::new(synth::image(100, 3));
    let mut t = Tenant::fork(&base);
    let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    let p = t
        .new_host_object(class, "connection", conn("db:5432"))
        .unwrap();
    let holder = t
        .alloc_with(class, Format::Pointers, &[p, Value::int(5)], &[])
        .unwrap();
    (base, t, holder, p)
}

#[test]
fn a_host_object_without_a_plugin_is_refused_naming_its_kind() {
    let (base, t, holder, _) = synth_tenant();
    // On extraction.
    let e = tenant::extract_with_hosts(&t, &[holder], &[], &HostPlugins::new()).unwrap_err();
    assert_eq!(no_plugin_kind(&e), Some("connection"), "{e}");
    assert!(e.to_string().contains("connection"));
    // On import: the plain import and the import without the plugin refuse, and allocate
    // nothing in the tenant.
    let seg = tenant::extract_with_hosts(&t, &[holder], &[], &plugins()).unwrap();
    let bytes = file::to_bytes(&seg).unwrap();
    let mut t2 = Tenant::fork(&base);
    let mut back = file::from_bytes(&bytes, Some(base.fingerprint())).unwrap();
    let e = back.import_into(&mut t2, &[], false).unwrap_err();
    assert_eq!(no_plugin_kind(&e), Some("connection"), "{e}");
    let e = back
        .import_with_hosts(&mut t2, &[], false, &HostPlugins::new(), false)
        .unwrap_err();
    assert_eq!(no_plugin_kind(&e), Some("connection"), "{e}");
    assert_eq!(t2.stats().private_objects, 0);
    assert_eq!(t2.host_count(), 0);
    // A segment extracted without plugins keeps the kind, not the state: refused even with
    // the plugin.
    let plain = tenant::extract(&t, &[holder], &[]).unwrap();
    assert_eq!(
        plain.hosts,
        [SegHost {
            member: plain.hosts[0].member,
            kind: "connection".into(),
            saved: None
        }]
    );
    let mut plain = file::from_bytes(&file::to_bytes(&plain).unwrap(), None).unwrap();
    match plain.import_with_hosts(&mut t2, &[], false, &plugins(), false) {
        Err(SegmentError::Host {
            source: HostError::NotSaved { kind },
            ..
        }) => assert_eq!(kind, "connection"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(t2.stats().private_objects, 0);
    // A plugin that cannot remake the object: its reason, typed.
    struct Broken;
    impl HostPlugin for Broken {
        fn save(&self, _: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
            Err("cannot save".into())
        }
        fn restore(&self, _: &[u8]) -> Result<Box<dyn Any + Send>, String> {
            Err("cannot reopen".into())
        }
    }
    let mut broken = HostPlugins::new();
    broken.register("connection", Arc::new(Broken));
    assert!(matches!(
        tenant::extract_with_hosts(&t, &[holder], &[], &broken),
        Err(SegmentError::Host {
            source: HostError::Save { .. },
            ..
        })
    ));
    match back.import_with_hosts(&mut t2, &[], false, &broken, false) {
        Err(SegmentError::Host {
            source: HostError::Restore { kind, reason },
            ..
        }) => assert_eq!(
            (kind.as_str(), reason.as_str()),
            ("connection", "cannot reopen")
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(t2.stats().private_objects, 0);
}

#[test]
fn with_placeholders_accepted_a_host_object_is_listed_and_keeps_its_bytes() {
    let (base, t, holder, p) = synth_tenant();
    let hash = t.identity_hash(p).unwrap();
    let seg = tenant::extract_with_hosts(&t, &[holder], &[], &plugins()).unwrap();
    let mut back = file::from_bytes(&file::to_bytes(&seg).unwrap(), None).unwrap();
    let mut t2 = Tenant::fork(&base);
    let imported = back
        .import_with_hosts(&mut t2, &[], false, &HostPlugins::new(), true)
        .unwrap();
    assert!(imported.hosts.is_empty());
    assert_eq!(imported.placeholders.len(), 1);
    let ph = imported.placeholders[0];
    assert_eq!(ph.member, seg.hosts[0].member);
    let p2 = t2.slot(imported.roots[0], 0).unwrap();
    assert!(t2.identical(ph.proxy, p2).unwrap());
    assert_eq!(t2.identity_hash(p2).unwrap(), hash);
    let (kind, object) = t2.host_object(p2).unwrap();
    assert_eq!(kind, "connection");
    assert!(object.is_none(), "a placeholder has no object");
    assert_eq!(t2.host_saved(p2), Some(&b"db:5432"[..]));
    // The tenant's own placeholder: listed, and its bytes kept through a snapshot, which a
    // tenant with the plugin restores as the connection.
    let listed: Vec<_> = t2.placeholders().collect();
    assert_eq!(listed.len(), 1);
    assert!(t2.identical(listed[0].0, p2).unwrap());
    let snap = t2.snapshot_with(&plugins()).unwrap();
    let t5 = Tenant::restore_with_hosts(
        &base,
        &snap,
        &cowheap_tenants::TenantConfig::default(),
        &plugins(),
        false,
    )
    .unwrap();
    let p5 = t5.placeholders().count();
    assert_eq!(p5, 0);
    assert_eq!(t5.host_count(), 1);
    // Moved on without any plugin, the placeholder loses nothing: a tenant with the plugin
    // gets the connection back.
    let again =
        tenant::extract_with_hosts(&t2, &[imported.roots[0]], &[], &HostPlugins::new()).unwrap();
    assert_eq!(again.hosts[0].saved.as_deref(), Some(&b"db:5432"[..]));
    let mut again = file::from_bytes(&file::to_bytes(&again).unwrap(), None).unwrap();
    let mut t3 = Tenant::fork(&base);
    let imported = again
        .import_with_hosts(&mut t3, &[], false, &plugins(), false)
        .unwrap();
    let p3 = t3.slot(imported.roots[0], 0).unwrap();
    assert_eq!(connection(&t3, p3).address, "db:5432");
    assert_eq!(t3.identity_hash(p3).unwrap(), hash);
    // A segment extracted without plugins imports as a placeholder with no bytes.
    let mut plain = tenant::extract(&t, &[holder], &[]).unwrap();
    let mut t4 = Tenant::fork(&base);
    let imported = plain
        .import_with_hosts(&mut t4, &[], false, &plugins(), true)
        .unwrap();
    let proxy = imported.placeholders[0].proxy;
    let (_, object) = t4.host_object(proxy).unwrap();
    assert!(object.is_none());
    assert_eq!(t4.host_saved(proxy), None);
}

/// The file of a small segment holding a host object.
fn small_file() -> (Arc<Base>, TenantSegment, Vec<u8>) {
    let (base, t, holder, _) = synth_tenant();
    let seg = tenant::extract_with_hosts(&t, &[holder], &[], &plugins()).unwrap();
    assert_eq!(seg.hosts.len(), 1);
    let bytes = file::to_bytes(&seg).unwrap();
    (base, seg, bytes)
}

#[test]
fn every_truncation_and_bit_flip_of_a_segment_file_holding_a_host_object_is_refused() {
    let (base, seg, bytes) = small_file();
    let fp = Some(base.fingerprint());
    assert_eq!(file::from_bytes(&bytes, fp).unwrap().hosts, seg.hosts);
    for cut in 0..bytes.len() {
        assert!(file::from_bytes(&bytes[..cut], fp).is_err(), "cut at {cut}");
    }
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            match file::from_bytes(&b, fp) {
                Err(SegmentError::BadFile(_) | SegmentError::Checksum) => {}
                other => panic!("bit {bit} of byte {at}: {:?}", other.map(|_| ())),
            }
        }
    }
}

/// `bytes` with its body replaced by `body`, length and checksum made right.
fn with_body(bytes: &[u8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut head = bytes[..file::HEADER].to_vec();
    head[8..12].copy_from_slice(&version.to_le_bytes());
    head[48..56].copy_from_slice(&(body.len() as u64).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(&head[..56]);
    h.update(body);
    head[56..88].copy_from_slice(h.finalize().as_bytes());
    head.extend_from_slice(body);
    head
}

#[test]
fn a_damaged_host_section_is_refused_and_a_version_1_file_still_reads() {
    let (base, seg, bytes) = small_file();
    let fp = Some(base.fingerprint());
    let body = &bytes[file::HEADER..];
    // The host section is the body's tail: u32 count, u32 member, str kind, tag, bytes.
    let tail = 4 + 4 + 4 + "connection".len() + 1 + 4 + "db:5432".len();
    let at = body.len() - tail;
    assert_eq!(body[at..at + 4], 1u32.to_le_bytes());
    let n_objects = seg.objects.len() as u32;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("member out of range", {
            let mut b = body.to_vec();
            b[at + 4..at + 8].copy_from_slice(&n_objects.to_le_bytes());
            b
        }),
        ("unknown state tag", {
            let mut b = body.to_vec();
            b[at + 8 + 4 + "connection".len()] = 2;
            b
        }),
        ("count past the body", {
            let mut b = body.to_vec();
            b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        ("two hosts of one member", {
            let mut b = body[..at].to_vec();
            b.extend(2u32.to_le_bytes());
            let one = &body[at + 4..];
            b.extend(one);
            b.extend(one);
            b
        }),
        ("kind not UTF-8", {
            let mut b = body.to_vec();
            b[at + 12] = 0xff;
            b
        }),
        ("bytes after the hosts", {
            let mut b = body.to_vec();
            b.push(0);
            b
        }),
    ];
    for (what, b) in cases {
        match file::from_bytes(&with_body(&bytes, file::VERSION, &b), fp) {
            Err(SegmentError::BadFile(_)) => {}
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
    }
    // The same body with the host section removed is a good version 1 file with no hosts;
    // a version 1 file with the section has bytes after its members.
    let v1 = with_body(&bytes, 1, &body[..at]);
    let read = file::from_bytes(&v1, fp).unwrap();
    assert!(read.hosts.is_empty());
    assert_eq!(read.objects, seg.objects);
    assert_eq!(read.roots, seg.roots);
    assert!(file::from_bytes(&with_body(&bytes, 1, body), fp).is_err());
    assert!(file::from_bytes(&with_body(&bytes, 3, body), fp).is_err());
    assert_eq!(file::VERSION, 2);
}

// Host objects in swapped-out segments (`cowheap_segment::swap`): saved by their plugins
// into the segment's file, dropped from memory with the members, made again by the plugin
// at fault-in and given back to the same proxy.

/// A connection-like host object: its address, a count of the requests it served (state
/// the plugin keeps), whether the plugin made it, and a shared count of the drops of every
/// session of its test.
struct Session {
    address: String,
    requests: u64,
    reopened: bool,
    drops: Arc<AtomicUsize>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// The plugin of sessions: saves address and request count; restores (counting) unless
/// told to fail.
struct Sessions {
    drops: Arc<AtomicUsize>,
    restored: AtomicUsize,
    fail: AtomicBool,
}

impl HostPlugin for Sessions {
    fn save(&self, object: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        let s = object.downcast_ref::<Session>().ok_or("not a session")?;
        let mut b = s.requests.to_le_bytes().to_vec();
        b.extend(s.address.as_bytes());
        Ok(b)
    }
    fn restore(&self, saved: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        if self.fail.load(Ordering::Relaxed) {
            return Err("the server refused".into());
        }
        let (n, address) = saved.split_at_checked(8).ok_or("too short")?;
        self.restored.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Session {
            address: String::from_utf8(address.to_vec()).map_err(|e| e.to_string())?,
            requests: u64::from_le_bytes(n.try_into().map_err(|_| "too short")?),
            reopened: true,
            drops: self.drops.clone(),
        }))
    }
}

/// A tenant of a synthetic base holding, under the named root `holder = (r p 3)`:
/// `r = (a p leaf)` with `a` and `p` sessions' proxies and `leaf` bytes. The segment of
/// `[r, p]` has the members `r`, `a`, `p`, `leaf`: a proxy that is a root (`p`, which the
/// holder refers to from outside) and one that is not (`a`).
struct SwapBed {
    base: Arc<Base>,
    t: Tenant,
    holder: Value,
    r: Value,
    p: Value,
    a: Value,
    plugin: Arc<Sessions>,
}

impl SwapBed {
    fn new() -> SwapBed {
        let base = Base::new(synth::image(100, 3));
        let mut t = Tenant::fork(&base);
        let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let session = |address: &str, requests| {
            Box::new(Session {
                address: address.into(),
                requests,
                reopened: false,
                drops: drops.clone(),
            })
        };
        let a = t
            .new_host_object(class, "session", session("db:5432", 5))
            .unwrap();
        let p = t
            .new_host_object(class, "session", session("cache:6379", 9))
            .unwrap();
        let leaf = t.alloc_with(class, Format::Bytes, &[], b"leaf").unwrap();
        let r = t
            .alloc_with(class, Format::Pointers, &[a, p, leaf], &[])
            .unwrap();
        let holder = t
            .alloc_with(class, Format::Pointers, &[r, p, Value::int(3)], &[])
            .unwrap();
        t.set_root("holder", holder).unwrap();
        let plugin = Arc::new(Sessions {
            drops,
            restored: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        });
        SwapBed {
            base,
            t,
            holder,
            r,
            p,
            a,
            plugin,
        }
    }

    fn plugins(&self) -> HostPlugins {
        let mut p = HostPlugins::new();
        p.register("session", self.plugin.clone());
        p
    }

    fn drops(&self) -> usize {
        self.plugin.drops.load(Ordering::Relaxed)
    }

    fn restored(&self) -> usize {
        self.plugin.restored.load(Ordering::Relaxed)
    }
}

/// The session a proxy holds in `t`.
fn session(t: &Tenant, proxy: Value) -> &Session {
    let (kind, object) = t.host_object(proxy).expect("a host object's proxy");
    assert_eq!(kind, "session");
    object
        .expect("not a placeholder")
        .downcast_ref::<Session>()
        .expect("a session")
}

/// What the tests compare before and after a refused swap-out: the snapshot's bytes, the
/// stats, stubs, pins, handler and host objects with their sessions' state.
fn tenant_state(t: &Tenant, proxies: &[Value]) -> (Vec<u8>, String) {
    let sessions: Vec<(String, u64, bool)> = proxies
        .iter()
        .map(|&p| {
            let s = session(t, p);
            (s.address.clone(), s.requests, s.reopened)
        })
        .collect();
    let rest = format!(
        "{:?} stubs {} pins {} handler {} hosts {} {sessions:?}",
        t.stats(),
        t.stubs().count(),
        t.pinned_count(),
        t.has_fault_handler(),
        t.host_count()
    );
    (t.snapshot(), rest)
}

#[test]
fn a_host_object_in_a_swapped_segment_is_dropped_and_made_again_by_its_plugin() {
    let mut b = SwapBed::new();
    let hashes: Vec<u32> = [b.r, b.p, b.a]
        .iter()
        .map(|&v| b.t.identity_hash(v).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path()).unwrap();
    let swapper = Swapper::with_plugins(store.clone(), b.plugins());
    for round in 1..=2 {
        assert_eq!(b.t.host_count(), 2);
        let out = swapper.swap_out(&mut b.t, &[b.r, b.p]).unwrap();
        assert_eq!((out.objects, out.roots), (4, 2));
        // The host objects left memory with the members: both sessions dropped, none held.
        assert_eq!(b.t.host_count(), 0);
        assert_eq!(b.drops(), 2 * round);
        assert!(b.t.host_object(b.p).is_none());
        // A read of the proxy's body by `&self` answers from the segment, which stays out
        // (the host object comes back with a fault only).
        assert_eq!(b.t.size(b.p).unwrap().slots, 0);
        assert_eq!(b.t.identity_hash(b.p).unwrap(), hashes[1]);
        assert_eq!(b.t.stub_segment(b.p).unwrap(), Some(out.id.get()));
        assert!(b.t.host_object(b.p).is_none());
        // The file holds both states, as the plugin saved them.
        let bytes = std::fs::read(store.path(out.id)).unwrap();
        let seg = file::from_bytes(&bytes, Some(b.base.fingerprint())).unwrap();
        let mut saved: Vec<(&str, &[u8])> = seg
            .hosts
            .iter()
            .map(|h| (h.kind.as_str(), h.saved.as_deref().unwrap()))
            .collect();
        saved.sort();
        // The sessions served one request more in each round.
        let (na, np) = (4 + round as u64, 8 + round as u64);
        let expect = |n: u64, a: &str| [&n.to_le_bytes()[..], a.as_bytes()].concat();
        let (sa, sp) = (expect(na, "db:5432"), expect(np, "cache:6379"));
        assert_eq!(saved, [("session", &sa[..]), ("session", &sp[..])]);

        // A read through the root stub that is a proxy faults the segment in.
        let restored = b.restored();
        assert_eq!(b.t.with_faults(|t| t.size(b.p)).unwrap().slots, 0);
        assert_eq!(b.restored(), restored + 2);
        assert!(!store.path(out.id).exists());
        assert_eq!(b.t.host_count(), 2);
        // The same proxy, reached from outside, with its hash and the session's state.
        let p = b.t.slot(b.holder, 1).unwrap();
        assert!(b.t.identical(p, b.p).unwrap());
        assert!(b.t.identical(b.t.slot(b.holder, 0).unwrap(), b.r).unwrap());
        assert!(b.t.identical(b.t.slot(b.r, 1).unwrap(), b.p).unwrap());
        let s = session(&b.t, p);
        assert_eq!(
            (s.address.as_str(), s.requests, s.reopened),
            ("cache:6379", np, true)
        );
        // The member that is no root: made again, with its hash and its session.
        let a = b.t.slot(b.r, 0).unwrap();
        b.a = a;
        let s = session(&b.t, a);
        assert_eq!(
            (s.address.as_str(), s.requests, s.reopened),
            ("db:5432", na, true)
        );
        let now: Vec<u32> = [b.r, b.p, a]
            .iter()
            .map(|&v| b.t.identity_hash(v).unwrap())
            .collect();
        assert_eq!(now, hashes);
        let leaf = b.t.slot(b.r, 2).unwrap();
        assert_eq!(b.t.bytes(leaf).unwrap(), b"leaf");
        // Kept through a collection; each serves a request, which the next round saves.
        b.t.collect();
        assert_eq!(b.t.host_count(), 2);
        assert_eq!(b.drops(), 2 * round);
        for v in [a, b.p] {
            let s = b.t.host_object_mut(v).unwrap();
            s.downcast_mut::<Session>().unwrap().requests += 1;
        }
    }
    assert!(swapper.swapped().is_empty());
    assert_eq!(b.t.pinned_count(), 0);
}

#[test]
fn a_host_object_no_plugin_can_carry_is_not_swapped_out_and_nothing_changes() {
    let mut b = SwapBed::new();
    let before = tenant_state(&b.t, &[b.a, b.p]);
    let mut other = HostPlugins::new();
    other.register("connection", Arc::new(Connections));
    let store = MemStore::new();
    for swapper in [
        Swapper::new(store.clone()),
        Swapper::with_plugins(store.clone(), other),
    ] {
        // As the root, and as a member reached from the root.
        for roots in [&[b.p][..], &[b.r][..]] {
            match swapper.swap_out(&mut b.t, roots) {
                Err(SwapError::HostObject {
                    source: HostError::NoPlugin { kind },
                    ..
                }) => assert_eq!(kind, "session"),
                other => panic!("{:?}", other.map(|_| ())),
            }
            assert_eq!(tenant_state(&b.t, &[b.a, b.p]), before);
            assert_eq!(store.bytes(), 0);
            assert_eq!(b.drops(), 0);
        }
    }
    // A plugin that cannot save: refused, nothing changed.
    struct NoSave;
    impl HostPlugin for NoSave {
        fn save(&self, _: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
            Err("busy".into())
        }
        fn restore(&self, _: &[u8]) -> Result<Box<dyn Any + Send>, String> {
            Err("unused".into())
        }
    }
    let mut no_save = HostPlugins::new();
    no_save.register("session", Arc::new(NoSave));
    let swapper = Swapper::with_plugins(store.clone(), no_save);
    assert!(matches!(
        swapper.swap_out(&mut b.t, &[b.r]),
        Err(SwapError::HostObject {
            source: HostError::Save { .. },
            ..
        })
    ));
    assert_eq!(tenant_state(&b.t, &[b.a, b.p]), before);
    // A placeholder whose state was never saved could not be made again: refused, unless
    // the swapper accepts placeholders; then it goes out and comes back a placeholder.
    let class = b.t.class_of(b.holder).unwrap();
    let ph = b.t.new_host_placeholder(class, "session", None).unwrap();
    b.t.set_slot(b.holder, 2, ph).unwrap();
    let swapper = Swapper::with_plugins(store.clone(), b.plugins());
    let before = tenant_state(&b.t, &[b.a, b.p]);
    assert!(matches!(
        swapper.swap_out(&mut b.t, &[ph]),
        Err(SwapError::HostObject {
            source: HostError::NotSaved { .. },
            ..
        })
    ));
    assert_eq!(tenant_state(&b.t, &[b.a, b.p]), before);
    swapper.accept_placeholders(true);
    let hash = b.t.identity_hash(ph).unwrap();
    swapper.swap_out(&mut b.t, &[ph]).unwrap();
    assert_eq!(b.t.host_count(), 2);
    b.t.with_faults(|t| t.size(ph)).unwrap();
    let held: Vec<_> = b.t.placeholders().map(|(v, k)| (v.word(), k)).collect();
    assert_eq!(held, [(ph.word(), "session")]);
    assert_eq!(b.t.host_saved(ph), None);
    assert_eq!(b.t.identity_hash(ph).unwrap(), hash);
    assert_eq!(b.restored(), 0);
}

#[test]
fn a_plugin_failing_at_fault_in_is_a_typed_error_and_the_tenant_stays_usable() {
    let mut b = SwapBed::new();
    let store = MemStore::new();
    let swapper = Swapper::with_plugins(store.clone(), b.plugins());
    let out = swapper.swap_out(&mut b.t, &[b.r, b.p]).unwrap();
    let stats = b.t.stats();
    let usable = |t: &mut Tenant, holder: Value| {
        assert_eq!(t.slot(holder, 2).unwrap().as_int(), Some(3));
        t.set_slot(holder, 2, Value::int(4)).unwrap();
        t.set_slot(holder, 2, Value::int(3)).unwrap();
        t.collect();
        let again = Tenant::restore_from(t.base(), &t.snapshot()).unwrap();
        assert_eq!(again.stubs().count(), out.stubs);
        assert_eq!(t.stubs_of(out.id.get()), out.stubs);
        assert_eq!(t.host_count(), 0);
    };
    // The plugin fails: the typed reason, nothing made, the stubs stand.
    b.plugin.fail.store(true, Ordering::Relaxed);
    match swapper.fault_in(&mut b.t, out.id) {
        Err(SwapError::HostObject {
            source: HostError::Restore { kind, reason },
            ..
        }) => assert_eq!(
            (kind.as_str(), reason.as_str()),
            ("session", "the server refused")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.t.stats().private_objects, stats.private_objects);
    // Through the handler, by a read: the tenant's error, then the reason.
    let r = b.t.with_faults(|t| t.size(b.r));
    let Err(e @ Error::Fault { .. }) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(
        swapper.explain(e),
        SwapError::HostObject {
            source: HostError::Restore { .. },
            ..
        }
    ));
    usable(&mut b.t, b.holder);
    assert_eq!(swapper.state(out.id), Some(SegmentState::OnFile));
    // No plugin at all (the swapper lost it): refused too.
    swapper.set_plugins(HostPlugins::new());
    assert!(matches!(
        swapper.fault_in(&mut b.t, out.id),
        Err(SwapError::HostObject {
            source: HostError::NoPlugin { .. },
            ..
        })
    ));
    usable(&mut b.t, b.holder);
    // The plugin works again: the segment comes back with its sessions.
    b.plugin.fail.store(false, Ordering::Relaxed);
    swapper.set_plugins(b.plugins());
    swapper.fault_in(&mut b.t, out.id).unwrap();
    assert_eq!(session(&b.t, b.p).requests, 9);
    assert_eq!(session(&b.t, b.t.slot(b.r, 0).unwrap()).requests, 5);
    assert_eq!(store.bytes(), 0);
}

#[test]
fn without_its_plugin_at_fault_in_a_host_object_can_come_back_a_placeholder() {
    let mut b = SwapBed::new();
    let swapper = Swapper::with_plugins(MemStore::new(), b.plugins());
    let out = swapper.swap_out(&mut b.t, &[b.r, b.p]).unwrap();
    swapper.set_plugins(HostPlugins::new());
    swapper.accept_placeholders(true);
    swapper.fault_in(&mut b.t, out.id).unwrap();
    let a = b.t.slot(b.r, 0).unwrap();
    let mut held: Vec<(Value, &str)> = b.t.placeholders().collect();
    held.sort_by_key(|&(v, _)| b.t.identity_hash(v).unwrap());
    let mut expect = vec![(b.p, "session"), (a, "session")];
    expect.sort_by_key(|&(v, _)| b.t.identity_hash(v).unwrap());
    assert_eq!(held.len(), 2);
    for ((v, k), (w, l)) in held.iter().zip(&expect) {
        assert!(b.t.identical(*v, *w).unwrap());
        assert_eq!(k, l);
    }
    // Each keeps the bytes its plugin saved: the plugin can make it again later.
    let saved = b.t.host_saved(b.p).unwrap().to_vec();
    assert_eq!(saved, [&9u64.to_le_bytes()[..], b"cache:6379"].concat());
    let made = b.plugin.restore(&saved).unwrap();
    assert_eq!(b.t.replace_placeholder(b.p, made), Some(Some(saved)));
    assert_eq!(session(&b.t, b.p).requests, 9);
}

#[test]
fn every_truncation_and_bit_flip_of_a_swapped_segment_with_host_objects_is_refused() {
    let mut b = SwapBed::new();
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path()).unwrap();
    let swapper = Swapper::with_plugins(store.clone(), b.plugins());
    // The segment of `p` alone: small, with one host object.
    b.t.set_slot(b.r, 1, Value::int(0)).unwrap();
    let hash = b.t.identity_hash(b.p).unwrap();
    let out = swapper.swap_out(&mut b.t, &[b.p]).unwrap();
    assert_eq!(out.objects, 1);
    let path = store.path(out.id);
    let good = std::fs::read(&path).unwrap();
    let seg = file::from_bytes(&good, None).unwrap();
    assert_eq!(seg.hosts.len(), 1);
    let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    for at in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[at] ^= 1 << bit;
            cases.push(bad);
        }
    }
    for bad in &cases {
        std::fs::write(&path, bad).unwrap();
        match swapper.fault_in(&mut b.t, out.id) {
            Err(SwapError::Segment(
                SegmentError::BadFile(_) | SegmentError::Checksum | SegmentError::WrongBase { .. },
            )) => {}
            other => panic!("{} bytes: {other:?}", bad.len()),
        }
    }
    // Nothing was made, the stub stands, and the tenant works.
    assert_eq!(b.restored(), 0);
    assert_eq!(b.t.stubs_of(out.id.get()), 1);
    assert_eq!(b.t.host_count(), 1);
    assert_eq!(b.t.slot(b.holder, 2).unwrap().as_int(), Some(3));
    // The right file: the session comes back to the same proxy.
    std::fs::write(&path, &good).unwrap();
    b.t.with_faults(|t| t.size(b.p)).unwrap();
    assert_eq!(session(&b.t, b.p).requests, 9);
    assert_eq!(b.t.identity_hash(b.p).unwrap(), hash);
    assert_eq!(b.restored(), 1);
}

#[test]
fn a_swapped_segment_with_a_host_object_moves_with_its_tenant_to_another_swapper() {
    let mut b = SwapBed::new();
    let hash = b.t.identity_hash(b.p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path()).unwrap();
    let first = Swapper::with_plugins(store.clone(), b.plugins());
    let out = first.swap_out(&mut b.t, &[b.r, b.p]).unwrap();
    // The tenant, with its segment out, as a snapshot and the swapper's records.
    let records = first.records(&mut b.t).unwrap();
    let snapshot = b.t.snapshot();
    let plugins = b.plugins();
    drop(b.t);
    // Elsewhere: the tenant restored (no host object in memory, so a plain restore), a
    // swapper over the same directory, given the plugins after it took the records over.
    let mut t = Tenant::restore_from(&b.base, &snapshot).unwrap();
    assert_eq!(t.host_count(), 0);
    let second = Swapper::new(DirStore::new(dir.path()).unwrap());
    second.adopt(&mut t, &records).unwrap();
    second.set_plugins(plugins);
    let holder = t.root("holder").unwrap();
    let p = t.slot(holder, 1).unwrap();
    assert_eq!(t.stub_segment(p).unwrap(), Some(out.id.get()));
    t.with_faults(|t| t.size(p)).unwrap();
    let s = session(&t, p);
    assert_eq!(
        (s.address.as_str(), s.requests, s.reopened),
        ("cache:6379", 9, true)
    );
    assert_eq!(t.identity_hash(p).unwrap(), hash);
    let r = t.slot(holder, 0).unwrap();
    assert!(t.identical(t.slot(r, 1).unwrap(), p).unwrap());
    assert_eq!(session(&t, t.slot(r, 0).unwrap()).requests, 5);
}

/// What [`AskingSessions`] saw of the swapper: each segment out, with its state.
type Seen = Vec<(SegmentId, Option<SegmentState>)>;

/// A session plugin that, making a session again, asks the swapper it serves what it has
/// out (as an embedder's plugin may, to decide whether to free memory).
struct AskingSessions {
    inner: Arc<Sessions>,
    swapper: std::sync::OnceLock<Swapper>,
    /// At each restore: the segments out, with their states as `state` answers them.
    seen: std::sync::Mutex<Vec<Seen>>,
}

impl HostPlugin for AskingSessions {
    fn save(&self, object: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
        self.inner.save(object)
    }
    fn restore(&self, saved: &[u8]) -> Result<Box<dyn Any + Send>, String> {
        let swapper = self.swapper.get().ok_or("no swapper")?;
        let seen = swapper
            .swapped()
            .into_iter()
            .map(|(id, _)| (id, swapper.state(id)))
            .collect();
        self.seen.lock().unwrap().push(seen);
        self.inner.restore(saved)
    }
}

#[test]
fn a_plugin_that_calls_back_into_the_swapper_at_fault_in_does_not_deadlock() {
    let mut b = SwapBed::new();
    let asking = Arc::new(AskingSessions {
        inner: b.plugin.clone(),
        swapper: std::sync::OnceLock::new(),
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let mut plugins = HostPlugins::new();
    plugins.register("session", asking.clone());
    let swapper = Swapper::with_plugins(MemStore::new(), plugins);
    asking.swapper.set(swapper.clone()).unwrap();
    let out = swapper.swap_out(&mut b.t, &[b.r, b.p]).unwrap();
    assert_eq!(b.t.host_count(), 0);
    // The fault runs on a thread; a deadlock shows as no answer within 30 s.
    let (tx, rx) = std::sync::mpsc::channel();
    let (mut t, p, s) = (b.t, b.p, swapper.clone());
    std::thread::spawn(move || {
        let r = s.fault_in(&mut t, out.id);
        let _ = tx.send((r, t));
    });
    let (r, t) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the fault-in answers (no deadlock on the swapper's lock)");
    r.unwrap();
    // Both sessions were made, each seeing the segment still out, on file.
    let seen = asking.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![vec![(out.id, Some(SegmentState::OnFile))]; 2]);
    assert!(swapper.swapped().is_empty());
    assert_eq!(t.host_count(), 2);
    let s = session(&t, p);
    assert_eq!((s.address.as_str(), s.reopened), ("cache:6379", true));
    assert_eq!(t.pinned_count(), 0);
}
