//! Many nodes on one store: node processes share a store; node A creates 1,000 tenants of
//! the Scratch base and writes each, node B resumes every one and observes exactly A's
//! writes, then both trade the tenants back and forth at once and no update is lost.

mod common;

use common::{Harness, Local, Pg, late_node, node, t};
use cowheap_heap::Fingerprint;
use cowheap_store::Access;
use cowheap_store::workload::read_mark;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

/// The folder of real images: `COWHEAP_IMAGES`, else `../shared/images` beside the project.
fn images() -> PathBuf {
    std::env::var_os("COWHEAP_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/images"))
}

/// The Scratch image, imported and stored as a base.
fn scratch_base(h: &dyn Harness) -> Fingerprint {
    let path = images().join("Scratch-1.4.0.6.image");
    assert!(
        path.exists(),
        "{} is missing: set COWHEAP_IMAGES to the folder of real images (shared/images)",
        path.display()
    );
    let imported = cowheap_squeak::import(&path).unwrap();
    let file = h.scratch().join("scratch.cowheap");
    imported.heap.save(&file).unwrap();
    node(h, "setup", Access::Operator)
        .put_base_file(&file)
        .unwrap()
}

fn run_node(h: &dyn Harness, node: &str, args: &[String]) -> Command {
    let mut c = Command::new(common::node_exe());
    c.args([h.address().as_str(), "-", "-"]).args(args).env(
        "COWHEAP_STORE_CACHE",
        h.scratch().join(format!("cache-{node}")),
    );
    c
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "node failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn traded(line: &str) -> u64 {
    let mut w = line.split_whitespace();
    assert_eq!(w.next(), Some("traded"), "{line}");
    w.next().unwrap().parse().unwrap()
}

fn two_nodes(h: &dyn Harness, tenants: usize, rounds: usize) {
    let fp = scratch_base(h);
    let op = h
        .open(Access::Operator, Arc::new(cowheap_store::SystemClock))
        .unwrap();
    for i in 0..tenants {
        op.create_tenant(&t(&format!("t-{i}")), fp, None).unwrap();
    }
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let end = tenants.to_string();
    let a = run_node(h, "A", &s(&["write", "A", "t", "0", &end, "1000"]))
        .output()
        .unwrap();
    assert_eq!(stdout(&a), format!("wrote {tenants}"));
    let b = run_node(h, "B", &s(&["check", "B", "t", "0", &end, "1000"]))
        .output()
        .unwrap();
    assert_eq!(stdout(&b), format!("checked {tenants} matched {tenants}"));

    // Both nodes trade every tenant at once: each resume of a tenant the other holds is
    // refused (skipped), each success adds one to the tenant's mark.
    let r = rounds.to_string();
    let spawn = |name: &str| {
        run_node(h, name, &s(&["churn", name, "t", "0", &end, &r]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn("A"), spawn("B"));
    let total = traded(&stdout(&ca.wait_with_output().unwrap()))
        + traded(&stdout(&cb.wait_with_output().unwrap()));
    assert!(total >= (tenants * rounds) as u64, "{total}");

    // Every tenant is suspended, and its mark counts exactly the trades made on it.
    let check = late_node(h, "checker");
    let mut sum = 0;
    for i in 0..tenants {
        let name = t(&format!("t-{i}"));
        assert_eq!(op.record(&name).unwrap().owner, None);
        let r = check.resume(&name).unwrap();
        let mark = read_mark(&r.tenant).unwrap();
        sum += u64::try_from(mark - (1000 + i as i64)).unwrap();
    }
    assert_eq!(sum, total, "every trade of every tenant is in the store");
}

#[test]
fn two_node_processes_share_postgres_over_1000_scratch_tenants() {
    two_nodes(&Pg::new(), 1000, 2);
}

#[test]
fn two_node_processes_share_a_local_store_over_200_scratch_tenants() {
    two_nodes(&Local::new(), 200, 2);
}

/// Numeric arguments whose arithmetic would overflow (the objects of a commit's group, a
/// mark `VALUE + i`, the count `TO - FROM`) are the node's usage error, never a panic, and
/// nothing is written.
/// `claim TENANT NODE LEASE_MS` takes every tenant name: a tenant may be named `-`, which
/// no node may be. Before, the node process read its first argument after the command as a
/// node's name for every command, and refused `claim -` as an invalid node name.
#[test]
fn the_claim_command_takes_a_tenant_no_node_could_be_named() {
    let h = Local::new();
    let fp = common::real_base(&h, 100);
    let s = h
        .open(Access::Operator, Arc::new(cowheap_store::SystemClock))
        .unwrap();
    s.create_tenant(&t("-"), fp, None).unwrap();
    let args: Vec<String> = ["claim", "-", "n", "60000"].map(str::to_owned).to_vec();
    let out = run_node(&h, "n", &args).output().unwrap();
    assert_eq!(stdout(&out), "won 1");
    assert_eq!(s.record(&t("-")).unwrap().owner, Some(common::n("n")));
}

#[test]
fn huge_numeric_arguments_are_a_usage_error() {
    let h = Local::new();
    let fp = common::real_base(&h, 1_000);
    let s = h
        .open(Access::Operator, Arc::new(cowheap_store::SystemClock))
        .unwrap();
    s.create_tenant(&t("p-0"), fp, None).unwrap();
    s.create_tenant(&t("p-1"), fp, None).unwrap();
    let max = i64::MAX.to_string();
    let min = i64::MIN.to_string();
    let fp = cowheap_store::fingerprint_hex(&fp);
    let cases: [&[&str]; 5] = [
        &["commit", "n", &fp, &max, "2", "1"],
        &["commit", "n", &fp, "1", &max, "1"],
        &["write", "n", "p", "0", "2", &max],
        &["check", "n", "p", "0", "2", &max],
        &["write", "n", "p", &min, &max, "1"],
    ];
    for args in cases {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let out = run_node(&h, "n", &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("usage:") && !stderr.contains("panicked"),
            "{args:?}: exit {:?}: {stderr}",
            out.status.code()
        );
    }
    for tenant in ["p-0", "p-1"] {
        let rec = s.record(&t(tenant)).unwrap();
        assert_eq!(
            (rec.epoch.0, rec.state),
            (0, None),
            "{tenant} was not touched"
        );
    }
    assert!(
        s.versions(cowheap_store::parse_fingerprint(&fp).unwrap(), 0)
            .unwrap()
            .is_empty()
    );
}
