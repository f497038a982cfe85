//! Fencing, leases and the two backends answering alike: one script of claims, renewals,
//! releases, fenced writes, segment and version writes, run on a local directory and on
//! PostgreSQL with the same clock, each answer compared; and what each backend takes as a
//! principal.

mod common;

use common::{Harness, Local, Pg, n, p, real_base, t};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use cowheap_store::{Access, Claim, ManualClock, Millis, StoreError, SystemClock};
use std::sync::Arc;

fn kind<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => format!("Err({e})"),
    }
}

/// What a backend answers, call by call, for one script of fenced writes: stale, released
/// and forged claims presented to every fenced write, each with good and bad bytes.
fn fenced_answers(h: &dyn Harness) -> Vec<String> {
    let fp = real_base(h, 1_000);
    let layer = common::layer_v1(h, fp, 7);
    let clock = ManualClock::new(Millis(1_000));
    let s = h.open(Access::Operator, Arc::new(clock.clone())).unwrap();
    let other = Fingerprint([6; 32]);
    s.put_base(other, &[6u8; 100]).unwrap();
    s.create_tenant(&t("x"), fp, None).unwrap();
    s.create_tenant(&t("y"), other, None).unwrap();
    let stale = s.claim(&t("x"), &n("a"), 100).unwrap();
    clock.advance(200);
    let live = s.claim(&t("x"), &n("b"), 100).unwrap();
    let forged = Claim {
        tenant: t("nope"),
        ..live.clone()
    };
    let elsewhere = s.claim(&t("y"), &n("a"), 100).unwrap();
    let mut out = Vec::new();
    for (what, c) in [
        ("stale", &stale),
        ("forged", &forged),
        ("elsewhere", &elsewhere),
    ] {
        for (bytes, number) in [
            (&b"no layer"[..], 1),
            (&layer[..], 0),
            (&layer[..], 2),
            (&layer[..], 1),
        ] {
            out.push(format!(
                "{what} version {number}: {}",
                kind(s.put_version_claimed(c, fp, number, bytes))
            ));
        }
        out.push(format!(
            "{what} segment: {}",
            kind(s.put_segment(c, SegmentId::new(1), b"seg"))
        ));
        out.push(format!("{what} renew: {}", kind(s.renew(c, 100))));
        out.push(format!("{what} state: {}", kind(s.write_state(c, b"st"))));
        out.push(format!("{what} release: {}", kind(s.release(c))));
    }
    // The live claim: a bad layer and a good one.
    out.push(kind(s.put_version_claimed(&live, fp, 1, b"no layer")));
    out.push(kind(s.put_version_claimed(&live, fp, 1, &layer)));
    // Released, then every fenced write with the released claim.
    out.push(kind(s.release(&live)));
    out.push(kind(s.put_version_claimed(&live, fp, 2, b"no layer")));
    out.push(kind(s.renew(&live, 100)));
    out.push(kind(s.suspend(&live, b"st")));
    out.push(format!(
        "{:?}",
        s.record(&t("x")).map(|r| (r.owner, r.epoch))
    ));
    out.push(format!("{:?}", s.versions(fp, 0).map(|v| v.len())));
    out
}

/// A version write fenced by a claim answers the same error on both backends whatever else
/// is wrong with it: a stale, released or forged claim is refused as such before the bytes
/// are looked at, as every other fenced write refuses it.
#[test]
fn backends_agree_on_fenced_writes_with_bad_bytes() {
    let local = fenced_answers(&Local::new());
    let pg = fenced_answers(&Pg::new());
    for (i, (l, g)) in local.iter().zip(&pg).enumerate() {
        if l != g {
            eprintln!("{i}: local {l}\n{i}: pg    {g}");
        }
    }
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
    assert!(local[0].contains("fenced"), "{local:?}");
}

/// What a backend answers when the operator adds principals of every length a
/// [`cowheap_store::PrincipalName`] takes, and when each then connects.
fn principal_lengths(h: &dyn Harness) -> Vec<String> {
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let mut out = Vec::new();
    for len in [1, 55, 56, 100, 128] {
        let name = p(&"q".repeat(len));
        out.push(format!(
            "add {len}: {}",
            kind(op.add_principal(&name, "s3cret"))
        ));
        out.push(format!(
            "open {len}: {}",
            kind(h.open(Access::principal(name, "s3cret"), Arc::new(SystemClock)))
        ));
    }
    out
}

/// A principal name no backend can hold is refused by both: PostgreSQL makes a role of
/// each principal, whose name must fit its identifiers.
#[test]
fn backends_agree_on_principal_names() {
    let local = principal_lengths(&Local::new());
    let pg = principal_lengths(&Pg::new());
    assert_eq!(
        local, pg,
        "the local store (left) and PostgreSQL (right) disagree"
    );
}
