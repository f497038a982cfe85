//! Node processes commit against one store at once: disjoint changes all land, in order; the
//! same objects changed by both lose no update (a write-write conflict found across
//! processes is redone on the newest version); every version is whole.

mod common;

use common::{Harness, Local, Pg, n, real_base};
use cowheap_forwarders::Base;
use cowheap_heap::{Fingerprint, Value};
use cowheap_store::workload::slot_objects;
use cowheap_store::{Access, Node, SystemClock};
use cowheap_tenants::Tenant;
use std::process::Command;
use std::sync::Arc;

/// Runs one `commit` node process per group at once, `count` commits each; returns what
/// each printed last (`done N conflicts C`).
fn run(
    h: &dyn Harness,
    fp: Fingerprint,
    groups: &[usize],
    objects: usize,
    count: u64,
) -> Vec<String> {
    let children: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            Command::new(common::node_exe())
                .args([
                    &h.address(),
                    "-",
                    "-",
                    "commit",
                    &format!("p{i}"),
                    &cowheap_store::fingerprint_hex(&fp),
                    &g.to_string(),
                    &objects.to_string(),
                    &count.to_string(),
                ])
                .env(
                    "COWHEAP_STORE_CACHE",
                    h.scratch().join(format!("cache-p{i}")),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            assert!(
                o.status.success(),
                "{text} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                text.starts_with(&format!("done {count} conflicts ")),
                "{text}"
            );
            text
        })
        .collect()
}

/// Each process's last line names the version it synced to last and that version's
/// fingerprint: the same as the checker's for that number, so every node holds the same
/// version under each number; at least one (the last to finish) saw the newest.
fn same_fingerprints(said: &[String], chain: &[Arc<Base>]) {
    let mut saw_newest = false;
    for line in said {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [.., "version", v, "fingerprint", fp] = w.as_slice() else {
            panic!("{line}");
        };
        let v: usize = v.parse().unwrap();
        assert_eq!(
            *fp,
            cowheap_store::fingerprint_hex(&chain[v].fingerprint()),
            "{line}"
        );
        saw_newest |= v + 1 == chain.len();
    }
    assert!(saw_newest, "{said:?}");
}

/// Every version from the newest down to 0, oldest first, as a fresh node syncs them.
fn chain(h: &dyn Harness, fp: Fingerprint) -> (Node, Vec<Arc<Base>>) {
    let node = Node::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        n("checker"),
        h.scratch().join("cache-checker"),
    );
    let mut chain = vec![node.sync(fp).unwrap()];
    while let Some(p) = chain.last().unwrap().parent().cloned() {
        chain.push(p);
    }
    chain.reverse();
    (node, chain)
}

fn value(b: &Arc<Base>, x: Value) -> i64 {
    Tenant::fork(b).slot(x, 0).unwrap().as_int().unwrap_or(0)
}

fn disjoint(h: &dyn Harness) {
    let fp = real_base(h, 2_000);
    let (objects, count) = (3, 40);
    let said = run(h, fp, &[0, 1], objects, count);
    let (node, chain) = chain(h, fp);
    assert_eq!(chain.len() as u64, 2 * count + 1, "{said:?}");
    same_fingerprints(&said, &chain);
    let groups: Vec<Vec<Value>> = slot_objects(&node.base(fp).unwrap(), 2 * objects)
        .chunks(objects)
        .map(<[Value]>::to_vec)
        .collect();
    // Each version is one commit of one group: that group's objects all one more, the
    // other group's unchanged.
    for w in chain.windows(2) {
        let moved: Vec<i64> = groups
            .iter()
            .map(|g| {
                let now = value(&w[1], g[0]);
                for &x in &g[1..] {
                    assert_eq!(value(&w[1], x), now, "version {} is whole", w[1].version());
                }
                now - value(&w[0], g[0])
            })
            .collect();
        let mut sorted = moved.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1], "version {}: {moved:?}", w[1].version());
    }
    for g in &groups {
        assert_eq!(
            value(chain.last().unwrap(), g[0]) - value(&chain[0], g[0]),
            count as i64
        );
    }
    let s = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    assert_eq!(s.versions(fp, 0).unwrap().len() as u64, 2 * count);
}

fn same_objects(h: &dyn Harness) {
    let fp = real_base(h, 2_000);
    let (objects, count) = (2, 30);
    let said = run(h, fp, &[0, 0], objects, count);
    let conflicts: u64 = said
        .iter()
        .map(|s| {
            let w: Vec<&str> = s.split_whitespace().collect();
            w[3].parse::<u64>().unwrap()
        })
        .sum();
    eprintln!(
        "{} increments by two processes: {conflicts} conflicts redone",
        2 * count
    );
    let (node, chain) = chain(h, fp);
    assert_eq!(chain.len() as u64, 2 * count + 1);
    same_fingerprints(&said, &chain);
    let targets = slot_objects(&node.base(fp).unwrap(), objects);
    // No update lost: every commit added one, whichever process made it.
    for w in chain.windows(2) {
        for &x in &targets {
            assert_eq!(value(&w[1], x), value(&w[0], targets[0]) + 1);
        }
    }
}

#[test]
fn two_node_processes_commit_disjoint_changes_on_postgres() {
    disjoint(&Pg::new());
}

#[test]
fn two_node_processes_commit_disjoint_changes_on_a_local_store() {
    disjoint(&Local::new());
}

#[test]
fn two_node_processes_increment_the_same_objects_on_postgres() {
    same_objects(&Pg::new());
}

#[test]
fn two_node_processes_increment_the_same_objects_on_a_local_store() {
    same_objects(&Local::new());
}
