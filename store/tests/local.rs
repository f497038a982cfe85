//! The conformance suite on the local directory backend.

mod common;

use common::Local;
use cowheap_store::{Access, LocalStore, StoreError};
use std::sync::Arc;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                common::$case(&Local::new());
            }
        )*
    };
}

conformance!(
    blobs_and_dedup,
    records,
    claims_and_epochs,
    resume_race_threads,
    resume_race_processes,
    fencing,
    lease_expiry,
    cross_tenant_refused,
    corrupt_blobs,
    suspend_resume_nodes,
    versions_compare_and_set,
    versions_compare_and_set_processes,
    corrupt_layers,
    commit_rights,
    nodes_commit,
    resume_on_a_version,
    segments_in_store,
    segments_across_nodes,
    command_line_keeps_segments_out,
    a_node_that_lost_its_claim_commits_nothing,
    a_node_stalled_in_a_commit_keeps_its_lease,
    a_node_stalled_inside_its_version_write_publishes_nothing,
    claimed_versions,
    host_objects_in_segments_across_nodes,
    host_objects_in_memory_across_nodes,
    host_objects_refused_at_suspend,
    host_objects_as_placeholders,
    host_objects_in_a_registry,
    sweeping_blobs,
    sweeping_beside_writers,
);

#[test]
fn not_a_store_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        LocalStore::open(
            dir.path(),
            Arc::new(cowheap_store::SystemClock),
            Access::Operator
        ),
        Err(StoreError::NotAStore { .. })
    ));
    for bad in ["", "../x", ".hidden", "a/b", "sp ace"] {
        assert!(matches!(
            cowheap_store::TenantName::new(bad),
            Err(StoreError::InvalidName { .. })
        ));
    }
}

/// `init` on a directory whose marker is not this store's (another format, another
/// program's file) refuses it as `NotAStore` and makes nothing in it: before, it made the
/// store's eight directories there first.
#[test]
fn init_over_a_foreign_marker_is_refused_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("COWHEAP-STORE"), "cowheap-store 9\n").unwrap();
    let got = LocalStore::init(
        dir.path(),
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    );
    assert!(matches!(got, Err(StoreError::NotAStore { .. })), "{got:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["COWHEAP-STORE"], "only the marker");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LocalStore>();
    check::<cowheap_store::PgStore>();
    check::<cowheap_store::Node>();
    check::<cowheap_store::SwapRegistry>();
    check::<cowheap_store::PgServer>();
    check::<StoreError>();
    check::<cowheap_store::VersionRecord>();
    check::<std::sync::Arc<dyn cowheap_store::Store>>();
}

/// A record whose base has gone from the store: resume is a typed error, the claim is
/// released and the state stays.
#[test]
fn a_record_naming_a_missing_base() {
    let h = Local::new();
    let fp = common::real_base(&h, 1_000);
    let a = common::node(&h, "a", Access::Operator);
    let tenant = common::t("orphan");
    a.store().create_tenant(&tenant, fp, None).unwrap();
    let r = a.resume(&tenant).unwrap();
    a.suspend(r).unwrap();
    let state = a.store().record(&tenant).unwrap().state;
    std::fs::remove_file(
        h.dir
            .path()
            .join("bases")
            .join(cowheap_store::fingerprint_hex(&fp)),
    )
    .unwrap();
    let b = common::node(&h, "b", Access::Operator);
    assert!(matches!(
        b.resume(&tenant),
        Err(StoreError::BaseMissing { fingerprint }) if fingerprint == fp
    ));
    let rec = a.store().record(&tenant).unwrap();
    assert_eq!((rec.owner, rec.state), (None, state));
}

/// A write the disk refuses (here: no temporary file can be made, as on a full disk) is a
/// typed error, and the store keeps the last complete state.
#[test]
fn a_refused_write_is_a_typed_error_and_the_last_state_stays() {
    use common::Harness;
    let h = Local::new();
    let s = h
        .open(Access::Operator, Arc::new(cowheap_store::SystemClock))
        .unwrap();
    let fp = cowheap_heap::Fingerprint([4; 32]);
    s.put_base(fp, b"base").unwrap();
    let t = common::t("t");
    s.create_tenant(&t, fp, None).unwrap();
    let c = s.claim(&t, &common::n("a"), 60_000).unwrap();
    let d1 = s.write_state(&c, b"one").unwrap();
    let tmp = h.dir.path().join("tmp");
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"").unwrap();
    for r in [s.write_state(&c, b"two"), s.suspend(&c, b"two")] {
        assert!(matches!(r, Err(StoreError::Io { .. })), "{r:?}");
    }
    let rec = s.record(&t).unwrap();
    assert_eq!((rec.state, rec.owner), (Some(d1), Some(common::n("a"))));
    assert_eq!(s.read_state(&t, d1).unwrap(), b"one");
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let d2 = s.suspend(&c, b"two").unwrap();
    assert_eq!(s.read_state(&t, d2).unwrap(), b"two");
}

#[test]
fn opening_a_store_sweeps_temporary_files_left_long_ago_and_keeps_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(cowheap_store::SystemClock);
    LocalStore::init(dir.path(), clock.clone(), Access::Operator).unwrap();
    let tmp = dir.path().join("tmp");
    let (stale, fresh) = (tmp.join("left-by-a-crash"), tmp.join("being-written"));
    std::fs::write(&stale, b"half a state").unwrap();
    std::fs::write(&fresh, b"a write in progress").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    LocalStore::open(dir.path(), clock, Access::Operator).unwrap();
    assert!(!stale.exists(), "a stale temporary file stays");
    assert!(fresh.exists(), "a fresh temporary file was removed");
}

/// What a writer killed between its layer blob and its version record leaves (a layer no
/// record names) is not a version and does not stop the next writer of that number; a
/// version record changed behind the store's back is a typed error.
#[test]
fn an_unnamed_layer_is_no_version_and_a_damaged_record_is_refused() {
    use common::Harness;
    let h = Local::new();
    let fp = common::real_base(&h, 1_000);
    let s = h
        .open(Access::Operator, Arc::new(cowheap_store::SystemClock))
        .unwrap();
    let (mine, _) = common::history(&h, fp, 1, 1);
    let (theirs, _) = common::history(&h, fp, 2, 1);
    // The killed writer's layer, alone in layers/.
    let local = LocalStore::open(
        h.dir.path(),
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let orphan = local.layer_path(&cowheap_store::Digest::of(&theirs[0]));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    let mut framed = b"COWBLOB\0".to_vec();
    framed.extend((theirs[0].len() as u64).to_le_bytes());
    framed.extend(&theirs[0]);
    std::fs::write(&orphan, framed).unwrap();
    assert!(s.versions(fp, 0).unwrap().is_empty());
    let v1 = s.put_version(fp, 1, &mine[0]).unwrap();
    assert_eq!(s.versions(fp, 0).unwrap(), vec![v1]);

    let record = h
        .dir
        .path()
        .join("versions")
        .join(cowheap_store::fingerprint_hex(&fp))
        .join(format!("{:020}", 1));
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace("by -", "by x")).unwrap();
    assert!(matches!(s.versions(fp, 0), Err(StoreError::Damaged { .. })));
}

/// A damaged record of a tenant a principal is not entitled to neither breaks that
/// principal's listing nor names the tenant to it (it is missing, as PostgreSQL's
/// row-level security hides such a row); the operator is told it is damaged.
#[test]
fn a_damaged_record_of_another_tenant_is_missing_to_a_principal() {
    use cowheap_store::{ManualClock, Millis, PrincipalName, Store, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    let clock = ManualClock::new(Millis(1_000));
    let op = LocalStore::init(&root, Arc::new(clock.clone()), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    op.put_base(fp, b"a base").unwrap();
    let p1 = PrincipalName::new("p1").unwrap();
    op.add_principal(&p1, "s1").unwrap();
    let (mine, other) = (
        TenantName::new("mine").unwrap(),
        TenantName::new("secret-other").unwrap(),
    );
    op.create_tenant(&mine, fp, Some(&p1)).unwrap();
    op.create_tenant(&other, fp, None).unwrap();
    let rec = root.join("tenants/secret-other.rec");
    let mut b = std::fs::read(&rec).unwrap();
    b[20] ^= 1;
    std::fs::write(&rec, b).unwrap();
    let p = LocalStore::open(&root, Arc::new(clock), Access::principal(p1, "s1")).unwrap();
    let listed: Vec<_> = p.tenants().unwrap().into_iter().map(|r| r.tenant).collect();
    assert_eq!(listed, [mine]);
    assert!(matches!(
        p.record(&other),
        Err(StoreError::TenantMissing { .. })
    ));
    assert!(matches!(op.record(&other), Err(StoreError::Damaged { .. })));
    assert!(matches!(op.tenants(), Err(StoreError::Damaged { .. })));
}

/// A record of another tenant that cannot be read at all (a directory in its place, a
/// symbolic link that loops) neither breaks a principal's listing nor names that tenant to
/// it: its grants cannot be read, so it is missing to the principal; the operator is told
/// what is wrong.
#[test]
fn an_unreadable_record_of_another_tenant_is_missing_to_a_principal() {
    use cowheap_store::{ManualClock, Millis, PrincipalName, Store, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    let clock = ManualClock::new(Millis(1_000));
    let op = LocalStore::init(&root, Arc::new(clock.clone()), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    op.put_base(fp, b"a base").unwrap();
    let p1 = PrincipalName::new("p1").unwrap();
    op.add_principal(&p1, "s1").unwrap();
    let mine = TenantName::new("mine").unwrap();
    op.create_tenant(&mine, fp, Some(&p1)).unwrap();
    let p = LocalStore::open(&root, Arc::new(clock), Access::principal(p1, "s1")).unwrap();
    let other = TenantName::new("other").unwrap();
    let rec = root.join("tenants/other.rec");
    let in_place: [(&str, &dyn Fn()); 2] = [
        ("a directory", &|| std::fs::create_dir(&rec).unwrap()),
        ("a looping link", &|| {
            std::os::unix::fs::symlink("other.rec", &rec).unwrap()
        }),
    ];
    for (what, make) in in_place {
        make();
        let listed: Vec<_> = p.tenants().unwrap().into_iter().map(|r| r.tenant).collect();
        assert_eq!(listed, std::slice::from_ref(&mine), "{what}");
        assert!(
            matches!(p.record(&other), Err(StoreError::TenantMissing { .. })),
            "{what}: {:?}",
            p.record(&other)
        );
        assert!(op.record(&other).is_err(), "{what}");
        assert!(op.tenants().is_err(), "{what}");
        if rec.is_dir() {
            std::fs::remove_dir(&rec).unwrap();
        } else {
            std::fs::remove_file(&rec).unwrap();
        }
    }
}

/// A FIFO in place of a tenant record (or a blob, or a principal's file) is no file the
/// store wrote: reading it answers an error at once, where an open waiting for a writer
/// would hang the reader for ever. A principal's listing leaves such a record of another
/// tenant out.
#[test]
fn a_fifo_in_place_of_a_store_file_answers_an_error_at_once() {
    use cowheap_store::{PrincipalName, Store, SystemClock, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let op = LocalStore::init(&root, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    op.put_base(fp, b"a base").unwrap();
    let p1 = PrincipalName::new("p1").unwrap();
    op.add_principal(&p1, "s1").unwrap();
    let (mine, other) = (
        TenantName::new("mine").unwrap(),
        TenantName::new("other").unwrap(),
    );
    op.create_tenant(&mine, fp, Some(&p1)).unwrap();
    op.create_tenant(&other, fp, None).unwrap();
    let p = LocalStore::open(
        &root,
        Arc::new(SystemClock),
        Access::principal(p1.clone(), "s1"),
    )
    .unwrap();
    common::fifo(&root.join("tenants/other.rec"));
    let op = Arc::new(op);
    let p = Arc::new(p);
    let answer = common::within({
        let (op, other) = (op.clone(), other.clone());
        move || op.record(&other)
    })
    .expect("the operator's record() of a FIFO answers");
    assert!(
        matches!(answer, Err(StoreError::Damaged { .. })),
        "{answer:?}"
    );
    let listed = common::within({
        let p = p.clone();
        move || p.tenants()
    })
    .expect("the principal's tenants() answers");
    let listed: Vec<_> = listed.unwrap().into_iter().map(|r| r.tenant).collect();
    assert_eq!(listed, std::slice::from_ref(&mine));
    let answer =
        common::within(move || p.record(&other)).expect("the principal's record() answers");
    assert!(
        matches!(answer, Err(StoreError::TenantMissing { .. })),
        "{answer:?}"
    );
    // A blob: read whole, but only from a regular file.
    let node = cowheap_store::NodeName::new("a").unwrap();
    let claim = op.claim(&mine, &node, 60_000).unwrap();
    let state = op.write_state(&claim, b"a state").unwrap();
    common::fifo(&op.blob_path(&state));
    let answer = common::within({
        let (op, mine) = (op.clone(), mine.clone());
        move || op.read_state(&mine, state)
    })
    .expect("reading a state whose blob is a FIFO answers");
    assert!(
        matches!(answer, Err(StoreError::Damaged { .. })),
        "{answer:?}"
    );
    // A principal's file.
    common::fifo(&root.join("principals/p1"));
    let answer = common::within(move || {
        LocalStore::open(&root, Arc::new(SystemClock), Access::principal(p1, "s1"))
    })
    .expect("opening as a principal whose file is a FIFO answers");
    assert!(
        matches!(answer, Err(StoreError::Damaged { .. })),
        "{answer:?}"
    );
}

/// A record names its tenant: one copied under another tenant's name is not taken as that
/// tenant's (with the first one's state, owner and grants), but refused as damaged; a
/// principal granted the first tenant does not see the copy.
#[test]
fn a_record_copied_under_another_name_is_damaged() {
    use cowheap_store::{PrincipalName, Store, SystemClock, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let op = LocalStore::init(root, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    op.put_base(fp, b"a base").unwrap();
    let p1 = PrincipalName::new("p1").unwrap();
    op.add_principal(&p1, "s1").unwrap();
    let (alice, bob) = (
        TenantName::new("alice").unwrap(),
        TenantName::new("bob").unwrap(),
    );
    op.create_tenant(&alice, fp, Some(&p1)).unwrap();
    let c = op
        .claim(&alice, &cowheap_store::NodeName::new("a").unwrap(), 60_000)
        .unwrap();
    op.suspend(&c, b"alice's state").unwrap();
    std::fs::copy(root.join("tenants/alice.rec"), root.join("tenants/bob.rec")).unwrap();
    let r = op.record(&bob);
    assert!(matches!(r, Err(StoreError::Damaged { .. })), "{r:?}");
    let p = LocalStore::open(root, Arc::new(SystemClock), Access::principal(p1, "s1")).unwrap();
    let r = p.record(&bob);
    assert!(matches!(r, Err(StoreError::TenantMissing { .. })), "{r:?}");
    let listed: Vec<_> = p.tenants().unwrap().into_iter().map(|r| r.tenant).collect();
    assert_eq!(listed, std::slice::from_ref(&alice));
    let r = p.claim(&bob, &cowheap_store::NodeName::new("b").unwrap(), 60_000);
    assert!(matches!(r, Err(StoreError::TenantMissing { .. })), "{r:?}");
    // Alice's own record is as it was.
    assert_eq!(op.record(&alice).unwrap().epoch, c.epoch);
}

/// A segment's entry is listed only under the name the store gives it (16 lower-case hex
/// digits): an entry renamed to upper case or with a sign is not listed as a segment
/// `get_segment` would then say is missing. Every listed segment is found.
#[test]
fn only_segments_under_their_own_names_are_listed() {
    use cowheap_segment::swap::SegmentId;
    use cowheap_store::{Store, SystemClock, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = LocalStore::init(root, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([3; 32]);
    s.put_base(fp, b"a base").unwrap();
    let t = TenantName::new("t").unwrap();
    s.create_tenant(&t, fp, None).unwrap();
    let c = s
        .claim(&t, &cowheap_store::NodeName::new("a").unwrap(), 60_000)
        .unwrap();
    for id in [9, 10, 11] {
        s.put_segment(&c, SegmentId::new(id), format!("segment {id}").as_bytes())
            .unwrap();
    }
    let d = root.join("segments/t");
    std::fs::rename(d.join("000000000000000a"), d.join("000000000000000A")).unwrap();
    std::fs::rename(d.join("000000000000000b"), d.join("+00000000000000b")).unwrap();
    let listed = s.segments(&t).unwrap();
    for &id in &listed {
        let r = s.get_segment(&t, id);
        assert!(r.is_ok(), "segment {id} is listed but: {r:?}");
    }
    assert_eq!(listed, [SegmentId::new(9)]);
}

/// A base is listed only under the name the store gives its pointer (the fingerprint's 64
/// lower-case hex digits): a pointer copied under another spelling is not listed again as a
/// base, and every listed base is found.
#[test]
fn only_bases_under_their_own_names_are_listed() {
    use cowheap_store::{Store, SystemClock, fingerprint_hex};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = LocalStore::init(root, Arc::new(SystemClock), Access::Operator).unwrap();
    let fp = cowheap_heap::Fingerprint([0xab; 32]);
    s.put_base(fp, b"a base").unwrap();
    let bases = root.join("bases");
    let own = fingerprint_hex(&fp);
    std::fs::copy(bases.join(&own), bases.join(own.to_uppercase())).unwrap();
    let listed = s.bases().unwrap();
    for &f in &listed {
        let r = s.get_base(f);
        assert!(r.is_ok(), "base {f} is listed but: {r:?}");
    }
    assert_eq!(listed, [fp]);
}

/// A segment's entry names its tenant and its id: one copied under another tenant's
/// directory (a restore from a backup, a mistyped copy) or to another id is `Damaged`,
/// never served as that tenant's or that id's segment, as a copied record is.
#[test]
fn a_segment_entry_copied_under_another_tenant_or_id_is_damaged() {
    use common::{n, p, t};
    use cowheap_heap::Fingerprint;
    use cowheap_segment::swap::SegmentId;
    use cowheap_store::{ManualClock, Millis, Store, SystemClock};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Millis(1_000));
    let s = LocalStore::init(dir.path(), Arc::new(clock), Access::Operator).unwrap();
    let fp = Fingerprint([5; 32]);
    s.put_base(fp, &[5u8; 100]).unwrap();
    s.add_principal(&p("pa"), "a").unwrap();
    s.add_principal(&p("pb"), "b").unwrap();
    s.create_tenant(&t("alice"), fp, Some(&p("pa"))).unwrap();
    s.create_tenant(&t("bob"), fp, Some(&p("pb"))).unwrap();
    let ca = s.claim(&t("alice"), &n("na"), 10_000).unwrap();
    let id = SegmentId::new(1);
    s.put_segment(&ca, id, b"alice's private segment").unwrap();
    let from = dir.path().join("segments/alice/0000000000000001");
    let to_dir = dir.path().join("segments/bob");
    std::fs::create_dir_all(&to_dir).unwrap();
    std::fs::copy(&from, to_dir.join("0000000000000001")).unwrap();
    std::fs::copy(&from, dir.path().join("segments/alice/0000000000000002")).unwrap();
    let bob = LocalStore::open(
        dir.path(),
        Arc::new(SystemClock),
        Access::principal(p("pb"), "b"),
    )
    .unwrap();
    let got = bob.get_segment(&t("bob"), id);
    assert!(
        matches!(got, Err(StoreError::Damaged { .. })),
        "bob's principal reads alice's segment through a copied entry: {:?}",
        got.map(|b| b.len())
    );
    let other_id = s.get_segment(&t("alice"), SegmentId::new(2));
    assert!(
        matches!(other_id, Err(StoreError::Damaged { .. })),
        "segment 1's entry is read as segment 2: {:?}",
        other_id.map(|b| b.len())
    );
    // The entry under its own name is alice's segment, as ever.
    assert_eq!(
        s.get_segment(&t("alice"), id).unwrap(),
        b"alice's private segment"
    );
}

/// A layer blob that no version names (left by a version write that failed after storing
/// it) is `BlobMissing` to `get_layer`, as the contract and PostgreSQL say; the layer of a
/// version written after it is read as ever.
#[test]
fn get_layer_of_a_layer_no_version_names_is_missing() {
    use common::{layer_v1, real_base};
    use cowheap_store::{Digest, Store, SystemClock};
    let h = Local::new();
    let fp = real_base(&h, 1_000);
    let layer = layer_v1(&h, fp, 9);
    let s = LocalStore::open(h.dir.path(), Arc::new(SystemClock), Access::Operator).unwrap();
    // The version write fails after the layer blob is stored: the history's directory
    // cannot be made (a regular file in its place), as a full disk or a crash would stop it.
    let vdir = h
        .dir
        .path()
        .join("versions")
        .join(cowheap_store::fingerprint_hex(&fp));
    std::fs::write(&vdir, b"in the way").unwrap();
    assert!(s.put_version(fp, 1, &layer).is_err());
    std::fs::remove_file(&vdir).unwrap();
    assert!(
        s.versions(fp, 0).unwrap().is_empty(),
        "no version was written"
    );
    let got = s.get_layer(Digest::of(&layer));
    assert!(
        matches!(got, Err(StoreError::BlobMissing { .. })),
        "a layer no version names is answered: {:?}",
        got.map(|b| b.len())
    );
    // Another layer of the same number, written as version 1: its bytes are read, and the
    // first one's still are not (version 1 names another layer).
    let other = layer_v1(&h, fp, 10);
    let v = s.put_version(fp, 1, &other).unwrap();
    assert_eq!(s.get_layer(v.layer).unwrap(), other);
    assert!(matches!(
        s.get_layer(Digest::of(&layer)),
        Err(StoreError::BlobMissing { .. })
    ));
}

/// The operator's count of blobs walks what a sweep walks: a stray file under `blobs/` and
/// a directory linked in from outside the store are no blobs. Before, the stray file made
/// the count an `Io` error (so `cowheap store sweep` answered an error after it had
/// removed blobs) and the linked directory's files were counted as blobs.
#[test]
fn the_blob_count_steps_over_strays_and_links() {
    use cowheap_store::{Digest, Store, cli};
    let h = common::Local::new();
    let fp = common::real_base(&h, 200);
    let s = LocalStore::open(
        h.dir.path(),
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    s.put_version(fp, 1, &common::layer_v1(&h, fp, 7)).unwrap();
    let t = common::t("t");
    s.create_tenant(&t, fp, None).unwrap();
    let claim = s.claim(&t, &common::n("n"), 60_000).unwrap();
    s.write_state(&claim, b"first").unwrap();
    s.write_state(&claim, b"second").unwrap();
    let before = s.blob_stats().unwrap();
    assert_eq!(before.count, 4, "the base, two states and the layer");
    let blobs = h.dir.path().join("blobs");
    let outside = tempfile::tempdir().unwrap();
    let victim = (0u32..)
        .map(|n| Digest::of(format!("victim {n}").as_bytes()).to_hex())
        .find(|h| !blobs.join(&h[..2]).exists())
        .unwrap();
    std::fs::write(outside.path().join(&victim), b"somebody else's data").unwrap();
    std::os::unix::fs::symlink(outside.path(), blobs.join(&victim[..2])).unwrap();
    std::fs::write(blobs.join("README"), b"notes").unwrap();
    assert_eq!(s.blob_stats().unwrap(), before);
    let said = cli::sweep(&s).unwrap();
    assert!(
        said.starts_with("removed 1 blobs (5 bytes); 3 blobs"),
        "{said}"
    );
}

/// A sweep walks and removes only what the store made: a link in `blobs/` (to a
/// directory outside, or to the layers' own) is not followed, a stray file under `blobs/`
/// is left alone, and the sweep still removes the replaced state.
#[test]
fn a_sweep_follows_no_link_and_steps_over_strays() {
    use cowheap_store::{Digest, Store};
    let h = common::Local::new();
    let fp = common::real_base(&h, 200);
    let s = LocalStore::open(
        h.dir.path(),
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let rec = s.put_version(fp, 1, &common::layer_v1(&h, fp, 7)).unwrap();
    let t = common::t("t");
    s.create_tenant(&t, fp, None).unwrap();
    let claim = s.claim(&t, &common::n("n"), 60_000).unwrap();
    s.write_state(&claim, b"first").unwrap();
    s.write_state(&claim, b"second").unwrap();
    let blobs = h.dir.path().join("blobs");
    let taken = |hex: &str| blobs.join(&hex[..2]).exists();
    // A directory outside the store holding a file named as a blob would be, linked in.
    let outside = tempfile::tempdir().unwrap();
    let victim = (0u32..)
        .map(|n| Digest::of(format!("victim {n}").as_bytes()).to_hex())
        .find(|h| !taken(h) && h[..2] != rec.layer.to_hex()[..2])
        .unwrap();
    let file = outside.path().join(&victim);
    std::fs::write(&file, b"somebody else's data").unwrap();
    std::os::unix::fs::symlink(outside.path(), blobs.join(&victim[..2])).unwrap();
    // The layers' directory of version 1's layer, linked in as a blob directory.
    let layer_hex = rec.layer.to_hex();
    if !taken(&layer_hex) {
        std::os::unix::fs::symlink(
            format!("../layers/{}", &layer_hex[..2]),
            blobs.join(&layer_hex[..2]),
        )
        .unwrap();
    }
    std::fs::write(blobs.join("README"), b"notes").unwrap();
    let removed = s.sweep_blobs().unwrap();
    assert_eq!(removed.count, 1, "the first state alone");
    assert!(file.exists(), "a file outside the store was removed");
    assert!(s.get_layer(rec.layer).is_ok(), "a named layer was removed");
    assert!(blobs.join("README").exists());
    // A `blobs` that is itself a link is damage: nothing is removed.
    s.write_state(&claim, b"third").unwrap();
    let real = h.dir.path().join("blobs-real");
    std::fs::rename(&blobs, &real).unwrap();
    std::os::unix::fs::symlink(&real, &blobs).unwrap();
    assert!(matches!(s.sweep_blobs(), Err(StoreError::Damaged { .. })));
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&real, &blobs).unwrap();
    assert_eq!(s.sweep_blobs().unwrap().count, 1, "the second state");
}
