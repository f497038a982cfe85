//! A registry with a memory budget far below its tenants' total keeps its resident private
//! bytes under the budget while every tenant stays reachable, on both backends: whole
//! tenants swapped out, and parts of one large tenant swapped out as segments.

mod common;

use common::{Harness, LEAVES, Local, Pg, build_parts, check_part, node, real_base, t};
use cowheap_heap::{Format, Value};
use cowheap_store::workload::{read_mark, write_mark};
use cowheap_store::{Access, ManualClock, Millis, Node, StoreError, SwapRegistry};
use std::sync::Arc;

const TENANTS: usize = 40;
const BALLAST: usize = 20_000;

/// Gives `tenant` a root "ballast", a private byte object of `BALLAST` bytes; answers the
/// class it made it of.
fn ballast(tenant: &mut cowheap_tenants::Tenant) -> Value {
    let g = tenant.base().heap().root("Smalltalk").unwrap();
    let class = tenant.class_of(g).unwrap();
    let big = tenant
        .alloc_with(class, Format::Bytes, &[], &vec![7u8; BALLAST])
        .unwrap();
    tenant.set_root("ballast", big).unwrap();
    class
}

fn budget(h: &dyn Harness) {
    let fp = real_base(h, 2_000);
    let op = node(h, "op", Access::Operator);
    for i in 0..TENANTS {
        op.store()
            .create_tenant(&t(&format!("s-{i}")), fp, None)
            .unwrap();
    }
    // Each tenant holds a 20 KB private object; the budget fits about five of them.
    let budget = 5 * BALLAST + 5 * 4096;
    let reg = SwapRegistry::new(node(h, "a", Access::Operator), budget);
    let mut oracle = vec![0i64; TENANTS];
    let mut peak_total = 0usize;
    // A fixed pseudo-random walk over the tenants (xorshift), so runs are repeatable.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for step in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % TENANTS as u64) as usize;
        let seen = reg
            .with(&t(&format!("s-{i}")), |tenant| {
                let before = read_mark(tenant).unwrap_or(0);
                if tenant.root("ballast").is_none() {
                    ballast(tenant);
                }
                write_mark(tenant, before + 1).unwrap();
                let b = tenant.root("ballast").unwrap();
                assert_eq!(tenant.bytes(b).unwrap().len(), BALLAST);
                before
            })
            .unwrap();
        assert_eq!(seen, oracle[i], "step {step}: tenant {i} lost an update");
        oracle[i] += 1;
        assert!(
            reg.resident_bytes() <= budget,
            "step {step}: {} resident bytes over the budget of {budget}",
            reg.resident_bytes()
        );
        peak_total = peak_total.max(oracle.iter().filter(|&&c| c > 0).count() * BALLAST);
    }
    assert!(
        peak_total > 4 * budget,
        "the tenants' total is far above the budget"
    );
    let stats = reg.stats();
    assert!(stats.swapped_out > 100, "{stats:?}");
    assert_eq!(stats.swapped_in + stats.hits, 400);
    reg.suspend_all().unwrap();
    assert_eq!(reg.resident(), 0);
    // Every tenant holds exactly its updates, read back through a fresh registry.
    let again = SwapRegistry::new(node(h, "b", Access::Operator), budget);
    for (i, &count) in oracle.iter().enumerate() {
        let mark = again
            .with(&t(&format!("s-{i}")), |tenant| read_mark(tenant))
            .unwrap();
        assert_eq!(mark.unwrap_or(0), count, "tenant {i}");
    }
}

#[test]
fn budget_on_a_local_store() {
    budget(&Local::new());
}

#[test]
fn budget_on_postgres() {
    budget(&Pg::new());
}

/// Two nodes on one clock that moves only when told, with 1,000 ms leases: `a`, behind a
/// registry that has used tenant `r` once (writing mark 1) at 1,000,000 ms, and `b`.
struct Leased {
    clock: ManualClock,
    op: Arc<dyn cowheap_store::Store>,
    b: Node,
    reg: SwapRegistry,
}

fn leased(h: &Local) -> Leased {
    let fp = real_base(h, 1_000);
    let clock = ManualClock::new(Millis(1_000_000));
    let store = |c: &ManualClock| h.open(Access::Operator, Arc::new(c.clone())).unwrap();
    let op = store(&clock);
    op.create_tenant(&t("r"), fp, None).unwrap();
    let a = Node::new(store(&clock), common::n("a"), h.scratch().join("cache-a")).with_lease(1_000);
    let b = Node::new(store(&clock), common::n("b"), h.scratch().join("cache-b")).with_lease(1_000);
    let reg = SwapRegistry::new(a, usize::MAX);
    reg.with(&t("r"), |tenant| write_mark(tenant, 1))
        .unwrap()
        .unwrap();
    Leased { clock, op, b, reg }
}

/// Resident tenants keep their claims while the host renews them, and lose them to another
/// node once their lease runs out unrenewed: the registry's late suspend is then fenced and
/// the other node's work stays.
#[test]
fn resident_tenants_are_renewed_or_taken_over() {
    let h = Local::new();
    let Leased { clock, b, reg, .. } = leased(&h);
    for _ in 0..5 {
        clock.advance(600);
        reg.renew_all().unwrap();
        assert!(matches!(b.resume(&t("r")), Err(StoreError::Held { .. })));
    }
    // No renewal past the lease: b takes the tenant over, and a's registry lets it go.
    clock.advance(1_000);
    let mut rb = b.resume(&t("r")).unwrap();
    write_mark(&mut rb.tenant, 2).unwrap();
    b.suspend(rb).unwrap();
    assert!(matches!(reg.renew_all(), Err(StoreError::Fenced { .. })));
    assert_eq!(reg.resident(), 0);
    assert_eq!(
        reg.with(&t("r"), |tenant| read_mark(tenant)).unwrap(),
        Some(2)
    );
}

/// A registry never runs a resident tenant past its lease. A use with less than half the
/// lease left renews it first (the store's record shows the new expiry); a use after the
/// lease ran out and another node took the tenant over does not run at all (the tenant is
/// dropped, and its resume is refused while the other node holds it), and once that node
/// lets it go the next use resumes the other node's work.
#[test]
fn a_registry_never_runs_a_tenant_past_its_lease() {
    use std::cell::Cell;
    let h = Local::new();
    let Leased { clock, op, b, reg } = leased(&h);
    assert_eq!(op.record(&t("r")).unwrap().lease_expiry, Millis(1_001_000));

    // More than half left: no renewal. Less than half: renewed before the use runs.
    clock.advance(400);
    reg.with(&t("r"), |_| ()).unwrap();
    assert_eq!(op.record(&t("r")).unwrap().lease_expiry, Millis(1_001_000));
    clock.advance(200);
    reg.with(&t("r"), |_| ()).unwrap();
    assert_eq!(op.record(&t("r")).unwrap().lease_expiry, Millis(1_001_600));

    // Node a stalls past its lease; b takes the tenant over and holds it.
    clock.advance(1_500);
    let mut rb = b.resume(&t("r")).unwrap();
    write_mark(&mut rb.tenant, 2).unwrap();
    b.checkpoint(&mut rb).unwrap();
    let ran = Cell::new(false);
    let used = reg.with(&t("r"), |tenant| {
        ran.set(true);
        write_mark(tenant, 3)
    });
    assert!(matches!(used, Err(StoreError::Held { .. })), "{used:?}");
    assert!(!ran.get(), "a tenant another node holds ran here");
    assert_eq!(reg.resident(), 0);

    // b lets it go: the next use resumes b's work.
    b.suspend(rb).unwrap();
    assert_eq!(
        reg.with(&t("r"), |tenant| read_mark(tenant)).unwrap(),
        Some(2)
    );
}

/// Parts of the large tenant.
const PARTS: usize = 64;

/// One large tenant of many parts under a budget far below its total: the registry swaps
/// out least recently brought in parts until its resident private bytes fit, and every
/// part stays reachable: touched in a scrambled order (reads through `with_faults`, and
/// writes through a stub), each gives back what the oracle holds, with its identity hash,
/// and the budget holds after every touch. Then the tenant is suspended whole and its
/// parts still out come back on another node.
fn parts(h: &dyn Harness) {
    let fp = real_base(h, 2_000);
    let a = node(h, "a", Access::Operator);
    let big = t("big");
    a.store().create_tenant(&big, fp, None).unwrap();
    let mut r = a.resume(&big).unwrap();
    let (_, hashes) = build_parts(&mut r.tenant, PARTS);
    let total = r.tenant.memory_bytes();
    a.suspend(r).unwrap();
    let budget = total / 5;

    let reg = SwapRegistry::new(node(h, "b", Access::Operator), budget);
    let roots: Vec<Value> = reg
        .with(&big, |t| {
            let holder = t.root("holder").unwrap();
            (0..PARTS).map(|i| t.slot(holder, i).unwrap()).collect()
        })
        .unwrap();
    assert!(
        reg.resident_bytes() > 4 * budget,
        "the tenant alone is far over the budget: {} of {budget}",
        reg.resident_bytes()
    );
    let ids: Vec<_> = roots
        .iter()
        .map(|&root| reg.declare_part(&big, &[root]).unwrap())
        .collect();
    reg.trim().unwrap();
    let after = reg.resident_bytes();
    assert!(after <= budget, "{after} resident bytes of {budget}");
    assert_eq!(reg.resident(), 1, "parts were enough: the tenant stays");
    let out = ids
        .iter()
        .filter(|&&p| reg.part_out(p) == Some(true))
        .count();
    assert!(out > PARTS / 2, "{out} parts out");
    assert_eq!(reg.stats().parts_out as usize, out);

    // Touch every part in a scrambled order; every third one by a write through its root.
    let mut ints: Vec<i64> = (0..PARTS as i64).collect();
    let mut faults = 0;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut order: Vec<usize> = (0..PARTS).collect();
    for i in (1..PARTS).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for (step, &i) in order.iter().enumerate() {
        let was_out = reg.part_out(ids[i]).unwrap();
        if step % 3 == 0 {
            let now = 1_000 + i as i64;
            reg.with(&big, |t| {
                let root = t.slot(t.root("holder").unwrap(), i).unwrap();
                t.set_slot(root, LEAVES, Value::int(now))
            })
            .unwrap()
            .unwrap();
            ints[i] = now;
        }
        let hash = hashes[i];
        let int = ints[i];
        let seen_out = reg.with(&big, |t| check_part(t, i, int, hash)).unwrap();
        assert!(
            seen_out == (was_out && step % 3 != 0),
            "step {step}: part {i}"
        );
        faults += usize::from(was_out);
        assert!(
            reg.resident_bytes() <= budget,
            "step {step}: {} resident bytes of {budget}",
            reg.resident_bytes()
        );
        assert_eq!(reg.resident(), 1);
    }
    let stats = reg.stats();
    let still_out = ids
        .iter()
        .filter(|&&p| reg.part_out(p) == Some(true))
        .count();
    assert!(still_out > PARTS / 2, "{still_out} parts out at suspend");
    assert_eq!(stats.parts_in as usize, faults, "{stats:?}");
    // Every part out was swapped out once more than it was faulted in.
    assert_eq!(
        stats.parts_out,
        stats.parts_in + still_out as u64,
        "{stats:?}"
    );
    assert_eq!(stats.parts_refused, 0, "{stats:?}");
    eprintln!(
        "parts: total {total} bytes, budget {budget}, after trim {after}, {out} of {PARTS} out; {stats:?}"
    );

    // Suspended whole with parts out: another node sees them all.
    reg.suspend_all().unwrap();
    let c = node(h, "c", Access::Operator);
    let mut r = c.resume(&big).unwrap();
    assert_eq!(common::segments_with_stubs(&r.tenant), still_out);
    let mut seen = 0;
    for i in 0..PARTS {
        seen += usize::from(check_part(&mut r.tenant, i, ints[i], hashes[i]));
    }
    assert_eq!(seen, still_out);
    assert_eq!(r.tenant.stubs().count(), 0);
}

#[test]
fn parts_on_a_local_store() {
    parts(&Local::new());
}

#[test]
fn parts_on_postgres() {
    parts(&Pg::new());
}

/// A part that cannot go (its root is a base object, not a private one) is refused and
/// counted, stays resident, and the registry swaps out the tenant whole instead; a part
/// with no roots is refused when declared.
#[test]
fn a_part_that_cannot_go_is_counted_and_the_tenant_goes_whole() {
    use cowheap_store::StoreError;
    let h = Local::new();
    let fp = real_base(&h, 1_000);
    let op = node(&h, "op", Access::Operator);
    for name in ["x", "y"] {
        op.store().create_tenant(&t(name), fp, None).unwrap();
    }
    let reg = SwapRegistry::new(node(&h, "a", Access::Operator), 1);
    assert!(matches!(
        reg.declare_part(&t("x"), &[]),
        Err(StoreError::Swap { .. })
    ));
    let g = reg
        .with(&t("x"), |t| t.base().heap().root("Smalltalk").unwrap())
        .unwrap();
    let part = reg.declare_part(&t("x"), &[g]).unwrap();
    reg.with(&t("y"), |t| write_mark(t, 5)).unwrap().unwrap();
    let stats = reg.stats();
    assert!(stats.parts_refused >= 1, "{stats:?}");
    assert_eq!((stats.parts_out, stats.swapped_out), (0, 1), "{stats:?}");
    assert_eq!(reg.part_out(part), Some(false));
    assert_eq!(reg.resident(), 1);
    assert_eq!(reg.with(&t("y"), |t| read_mark(t)).unwrap(), Some(5));
}

/// A resident that cannot be suspended (it holds a host object of a kind the node has no
/// plugin for) is passed over for the next oldest: the others still go, every use
/// answers, and the budget holds. Before, the registry stopped at the first failed suspend
/// and answered its error to every use of any tenant, swapping nothing out.
#[test]
fn a_resident_that_cannot_be_suspended_does_not_hold_the_others() {
    let h = Local::new();
    let fp = real_base(&h, 1_000);
    let op = node(&h, "op", Access::Operator);
    for i in 0..6 {
        op.store()
            .create_tenant(&t(&format!("u-{i}")), fp, None)
            .unwrap();
    }
    let budget = 2 * BALLAST + 2 * 4096;
    let reg = SwapRegistry::new(node(&h, "a", Access::Operator), budget);
    reg.with(&t("u-0"), |tenant| {
        let class = ballast(tenant);
        let p = tenant
            .new_host_object(class, "no-plugin", Box::new(()))
            .unwrap();
        tenant.set_root("host", p).unwrap();
    })
    .unwrap();
    for i in 1..6 {
        reg.with(&t(&format!("u-{i}")), |tenant| {
            ballast(tenant);
            write_mark(tenant, i).unwrap();
        })
        .unwrap_or_else(|e| panic!("u-{i}: a use answers though u-0 cannot be suspended: {e}"));
        assert!(reg.resident_bytes() <= budget, "u-{i}: over the budget");
    }
    // u-0 (unwritten, kept) and the tenant last used.
    assert_eq!(reg.resident(), 2);
    for i in 1..5 {
        let mark = reg
            .with(&t(&format!("u-{i}")), |tenant| read_mark(tenant))
            .unwrap();
        assert_eq!(mark, Some(i), "u-{i} was written when it went");
    }
}

/// A state whose record of a segment names a root that is no stub of it (one bit of a
/// root word flipped: a collected key) is refused at resume, which releases its claim.
/// Before, the resume took it, and the tenant could then never be suspended again.
#[test]
fn a_state_naming_a_root_that_is_no_stub_is_refused_at_resume() {
    use cowheap_store::{LocalStore, NodeName, Store, TenantName};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Millis(1_000));
    let store = Arc::new(
        LocalStore::init(
            &dir.path().join("s"),
            Arc::new(clock.clone()),
            Access::Operator,
        )
        .unwrap(),
    );
    let image = dir.path().join("base.cowheap");
    cowheap_heap::synth::image(1_000, 1).save(&image).unwrap();
    let setup = Node::new(
        store.clone(),
        NodeName::new("setup").unwrap(),
        dir.path().join("c0"),
    );
    let fp = setup.put_base_file(&image).unwrap();
    let tenant = TenantName::new("t").unwrap();
    store.create_tenant(&tenant, fp, None).unwrap();
    let a = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("ca"),
    );
    let mut r = a.resume(&tenant).unwrap();
    let (roots, _) = build_parts(&mut r.tenant, 1);
    r.swap_out(&[roots[0]]).unwrap();
    let d = a.suspend(r).unwrap();
    // The frame: a header of 24 bytes whose last word is the snapshot's length, the
    // snapshot, then the records, the first root word 56 bytes in.
    let mut bad = store.read_state(&tenant, d).unwrap();
    let w = 24 + u64::from_le_bytes(bad[16..24].try_into().unwrap()) as usize + 56;
    let root = u64::from_le_bytes(bad[w..w + 8].try_into().unwrap());
    bad[w..w + 8].copy_from_slice(&(root ^ (1 << 20)).to_le_bytes());
    let c = store
        .claim(&tenant, &NodeName::new("w").unwrap(), 1_000)
        .unwrap();
    store.suspend(&c, &bad).unwrap();
    let b = Node::new(
        store.clone(),
        NodeName::new("b").unwrap(),
        dir.path().join("cb"),
    );
    assert!(
        b.resume(&tenant).is_err(),
        "a record naming no stub is refused"
    );
    assert_eq!(
        store.record(&tenant).unwrap().owner,
        None,
        "the claim is released"
    );
}
