//! The two backends answer alike at the edges of what they take: names that the records
//! write for nobody, values past the largest `bigint`, and secrets PostgreSQL cannot hold.

mod common;

use common::{Harness, Local, Pg, n, p, real_base, t};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{
    Access, ManualClock, Millis, NodeName, PrincipalName, StoreError, SystemClock, TenantName,
    principal_access,
};
use std::sync::Arc;

/// `-` is what the records and the tools write for no node and no principal: neither takes
/// it as a name, whichever backend is behind, so none is read back as nobody.
#[test]
fn a_node_or_principal_named_dash_is_refused() {
    assert!(matches!(
        NodeName::new("-"),
        Err(StoreError::InvalidName { kind: "node", .. })
    ));
    assert!(matches!(
        PrincipalName::new("-"),
        Err(StoreError::InvalidName {
            kind: "principal",
            ..
        })
    ));
    assert!(matches!(
        "-".parse::<NodeName>(),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        principal_access("-", "s3cret"),
        Err(StoreError::InvalidName { .. })
    ));
    // Names that only hold a dash are names, and so is a tenant `-` (no record writes a
    // tenant for none).
    for name in ["--", "-a", "a-"] {
        assert!(NodeName::new(name).is_ok(), "{name}");
        assert!(PrincipalName::new(name).is_ok(), "{name}");
    }
    assert!(TenantName::new("-").is_ok());
}

/// A PostgreSQL store that holds `-` as an owner, a committer or a version's committer
/// (written before that name was refused) still opens, and reads each as nobody, as the
/// local store always read its `-`: the tenant is free to claim, the version is the
/// operator's, and the committers name no `-`.
#[test]
fn pg_a_dash_written_before_reads_as_nobody() {
    let h = Pg::new();
    let fp = real_base(&h, 1_000);
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    op.create_tenant(&t("x"), fp, None).unwrap();
    op.add_principal(&p("c"), "s3cret").unwrap();
    op.allow_commit(fp, &p("c")).unwrap();
    let layer = common::layer_v1(&h, fp, 7);
    let c = h
        .open(Access::principal(p("c"), "s3cret"), Arc::new(SystemClock))
        .unwrap();
    c.put_version(fp, 1, &layer).unwrap();
    let mut raw = h.raw();
    raw.batch_execute(
        "UPDATE cowheap_tenants SET owner = '-', epoch = 3, lease_expiry = 9223372036854775807; \
         UPDATE cowheap_versions SET committed_by = '-'; \
         UPDATE cowheap_committers SET principal = '-'",
    )
    .unwrap();
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let rec = op.record(&t("x")).unwrap();
    assert_eq!((rec.owner, rec.epoch.0), (None, 3));
    assert_eq!(op.tenants().unwrap().len(), 1);
    assert_eq!(op.versions(fp, 0).unwrap()[0].committed_by, None);
    assert!(op.committers(fp).unwrap().is_empty());
    let claim = op.claim(&t("x"), &n("b"), 10_000).unwrap();
    assert_eq!(claim.epoch.0, 4, "the claim moves on past the old epoch");
}

/// What a backend answers for a few calls with values past the largest `bigint`, as
/// comparable strings.
fn past_bigint_answers(h: &dyn Harness) -> Vec<String> {
    let clock = ManualClock::new(Millis(1_000));
    let s = h.open(Access::Operator, Arc::new(clock)).unwrap();
    let fp = Fingerprint([6; 32]);
    s.put_base(fp, &[6u8; 100]).unwrap();
    s.create_tenant(&t("x"), fp, None).unwrap();
    let c = s.claim(&t("x"), &n("a"), 10_000).unwrap();
    let kind = |r: Result<String, StoreError>| match r {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({e})"),
    };
    let mut out = vec![
        kind(s.versions(fp, u64::MAX).map(|v| format!("{}", v.len()))),
        kind(
            s.versions(fp, i64::MAX as u64 + 1)
                .map(|v| format!("{}", v.len())),
        ),
    ];
    // A whole layer of a version past the largest `bigint`: no history reaches it.
    let far = cowheap_tenants::commit::Layer {
        origin: fp,
        parent: i64::MAX as u64,
        parent_fingerprint: Fingerprint([7; 32]),
        len: 1,
        changed: Vec::new(),
        objects: Vec::new(),
    }
    .to_bytes();
    out.push(kind(
        s.put_version(fp, 1 << 63, &far)
            .map(|v| format!("{}", v.number)),
    ));
    for id in [1u64 << 63, u64::MAX] {
        let big = SegmentId::new(id);
        out.extend([
            kind(s.put_segment(&c, big, b"seg").map(|_| "put".to_owned())),
            kind(s.get_segment(&t("x"), big).map(|b| format!("{}", b.len()))),
            kind(s.remove_segment(&c, big).map(|()| "removed".to_owned())),
        ]);
    }
    // The largest id a segment may have is taken as any other.
    let top = SegmentId::new(i64::MAX as u64);
    out.extend([
        kind(s.put_segment(&c, top, b"seg").map(|_| "put".to_owned())),
        kind(s.get_segment(&t("x"), top).map(|b| format!("{}", b.len()))),
        kind(s.segments(&t("x")).map(|v| format!("{v:?}"))),
    ]);
    out
}

#[test]
fn backends_agree_on_values_past_the_largest_bigint() {
    let local = past_bigint_answers(&Local::new());
    let pg = past_bigint_answers(&Pg::new());
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
    assert!(local[2].contains("the newest version is 0"), "{local:?}");
    assert!(local[3].contains("past the largest"), "{local:?}");
    assert!(local[4].contains("has no segment"), "{local:?}");
}

/// What a backend answers when the operator adds principals with an empty secret and with
/// a secret holding a NUL byte, and when each then connects.
fn unusable_secrets(h: &dyn Harness) -> Vec<String> {
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let mut out = Vec::new();
    for (name, secret) in [("e", ""), ("z", "a\0b")] {
        out.push(match op.add_principal(&p(name), secret) {
            Ok(()) => "added".to_owned(),
            Err(e) => format!("not added: {e}"),
        });
        out.push(
            match h.open(Access::principal(p(name), secret), Arc::new(SystemClock)) {
                Ok(_) => "Ok".to_owned(),
                Err(e) => format!("Err({e})"),
            },
        );
    }
    // Nothing was added: the principals are unknown to the store with any secret.
    for name in ["e", "z"] {
        out.push(
            match h.open(Access::principal(p(name), "ok"), Arc::new(SystemClock)) {
                Ok(_) => "Ok".to_owned(),
                Err(e) => format!("Err({e})"),
            },
        );
    }
    out
}

#[test]
fn backends_agree_on_unusable_secrets() {
    let local = unusable_secrets(&Local::new());
    let pg = unusable_secrets(&Pg::new());
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
    assert!(local[0].starts_with("not added"), "{local:?}");
    assert!(local[2].starts_with("not added"), "{local:?}");
}
