//! Host objects in tenant segments: a proxy member travels with its kind and its plugin's
//! state, and is made again by the plugin on import, in a tenant of another base built with
//! the same classes (mini to Scratch), keeping its class and identity hash. Without a plugin
//! the extraction and the import are refused with a typed error naming the kind; with
//! placeholders accepted the member is listed in the report and keeps its bytes. Every
//! truncation and bit flip of a small segment file holding a host object is refused, a
//! damaged host section is refused, and a version 1 file still reads.

mod common;

use common::image;
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectSize, Value, synth};
use cowheap_segment::SegmentError;
use cowheap_segment::file;
use cowheap_segment::hosts::SegHost;
use cowheap_segment::tenant::{self, TenantSegment};
use cowheap_tenants::Tenant;
use cowheap_tenants::hosts::{HostError, HostPlugin, HostPlugins};
use std::any::Any;
use std::sync::Arc;

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
