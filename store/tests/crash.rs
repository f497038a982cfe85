//! Crashes: a node process is killed with SIGKILL (`kill -9`) in the middle of its claims,
//! writes and releases, many times; afterwards every tenant resumes from its last complete
//! state, none is lost, its state is the last one a node reported or the one it was
//! writing when it died, and while one node holds it another is refused (owned once).

#![cfg(unix)]

mod common;

use common::{Harness, Local, Pg, late_node, n, real_base, t};
use cowheap_forwarders::Base;
use cowheap_store::workload::{read_mark, slot_objects};
use cowheap_store::{Access, Node, StoreError, SystemClock};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::Layer;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn crash(h: &dyn Harness, tenants: usize, kills: usize) {
    let fp = real_base(h, 2_000);
    let op = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    let mut last: HashMap<String, i64> = HashMap::new();
    for i in 0..tenants {
        let name = format!("c-{i}");
        op.create_tenant(&t(&name), fp, None).unwrap();
        last.insert(name, 0);
    }
    let end = tenants.to_string();
    let mut killed_mid_run = 0;
    for k in 0..kills {
        let mut child = Command::new(common::node_exe())
            .args([
                &h.address(),
                "-",
                "-",
                "churn",
                &format!("n{k}"),
                "c",
                "0",
                &end,
            ])
            // Short leases: a tenant a killed node held is free again soon.
            .env("COWHEAP_STORE_LEASE_MS", "300")
            .env("COWHEAP_STORE_CACHE", h.scratch().join("cache-crash"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a varying number of completed suspends, while the node is somewhere
        // in its next claim, fetch, write or release.
        for _ in 0..(1 + (k * 7) % 23) {
            let Some(Ok(line)) = lines.next() else { break };
            let mut w = line.split_whitespace();
            assert_eq!(w.next(), Some("suspended"), "{line}");
            let name = w.next().unwrap().to_owned();
            let mark: i64 = w.next().unwrap().parse().unwrap();
            let prev = last.insert(name.clone(), mark).unwrap();
            assert!(mark > prev, "{name}: {prev} then {mark}");
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        // Killed by the signal, not ended by an error of its own.
        if status.signal() == Some(9) {
            killed_mid_run += 1;
        }
    }
    assert_eq!(killed_mid_run, kills, "every node died by the signal");

    // A checker whose clock is past every lease resumes each tenant.
    let check = late_node(h, "checker");
    // A rival on the same clock: while the checker holds a tenant, it is owned once.
    let rival = late_node(h, "rival");
    for (name, &reported) in &last {
        let r = check.resume(&t(name)).unwrap();
        assert!(
            matches!(rival.resume(&t(name)), Err(StoreError::Held { .. })),
            "{name} owned twice"
        );
        let mark = read_mark(&r.tenant).unwrap_or(0);
        assert!(
            mark == reported || mark == reported + 1,
            "{name}: the store holds mark {mark}, the last report was {reported}"
        );
        check.suspend(r).unwrap();
    }
    // And none is left held: a node on the real clock resumes every one.
    let after = Node::new(
        h.open(Access::Operator, Arc::new(SystemClock)).unwrap(),
        n("after"),
        h.scratch().join("cache-checker"),
    );
    for name in last.keys() {
        let r = after.resume(&t(name)).unwrap();
        after.suspend(r).unwrap();
    }
}

/// `kill -9` of node processes in the middle of commits, many times: afterwards the store's
/// versions are a gapless chain, every layer verifies, the newest is the last one a node
/// reported or the one it was writing when it died, and a fresh node syncs to it and reads
/// exactly the committed values: in every version the objects one commit wrote agree (no
/// part of a commit), each one more than in the version before.
fn crash_commits(h: &dyn Harness, kills: usize) {
    let fp = real_base(h, 2_000);
    let objects = 4;
    let mut reported = 0u64;
    let mut killed_mid_run = 0;
    let mut landed = 0;
    let s = h.open(Access::Operator, Arc::new(SystemClock)).unwrap();
    for k in 0..kills {
        let mut child = Command::new(common::node_exe())
            .args([
                &h.address(),
                "-",
                "-",
                "commit",
                &format!("k{k}"),
                &cowheap_store::fingerprint_hex(&fp),
                "0",
                &objects.to_string(),
                "-",
            ])
            .env("COWHEAP_STORE_CACHE", h.scratch().join("cache-commits"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for i in 0..(1 + (k * 5) % 13) {
            let Some(Ok(line)) = lines.next() else { break };
            let mut w = line.split_whitespace();
            assert_eq!(w.next(), Some("committed"), "{line}");
            let v: u64 = w.next().unwrap().parse().unwrap();
            if i == 0 && v == reported + 2 {
                // The commit the last node was making when it died landed after the check
                // below it (a database server finishes a COMMIT it had received when its
                // client died): it must now be in the store, whole, as the one between.
                let late = s.versions(fp, reported).unwrap();
                assert_eq!(
                    late.first().map(|r| r.number),
                    Some(reported + 1),
                    "{late:?}"
                );
                landed += 1;
                reported += 1;
            }
            assert_eq!(v, reported + 1, "versions are reported in order");
            reported = v;
        }
        // A varying pause (0 to 4.9 ms, about one commit) so the kill lands in every phase
        // of the commit in flight: its sync, its checks, its write, or after the write.
        std::thread::sleep(std::time::Duration::from_micros((k as u64 * 700) % 4_900));
        child.kill().unwrap();
        if child.wait().unwrap().signal() == Some(9) {
            killed_mid_run += 1;
        }
        // The node ran on while the reports above were read: what it reported before it
        // died is still in the pipe.
        for line in lines.map_while(|l| l.ok()) {
            let mut w = line.split_whitespace();
            if let (Some("committed"), Some(v)) = (w.next(), w.next().and_then(|v| v.parse().ok()))
            {
                assert_eq!(v, reported + 1, "versions are reported in order");
                reported = v;
            }
        }
        // The commit the node was making when it died: in the store whole, or not at all.
        let after = s.versions(fp, reported).unwrap();
        assert!(after.len() <= 1, "{after:?}");
        if let Some(v) = after.first() {
            landed += 1;
            reported = v.number;
        }
    }
    assert_eq!(killed_mid_run, kills, "every node died by the signal");
    // The last node's commit, too, may land after the check that followed its kill (as
    // above): a pause, then a last look for it.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let late = s.versions(fp, reported).unwrap();
    assert!(late.len() <= 1, "{late:?}");
    if let Some(v) = late.first() {
        landed += 1;
        reported = v.number;
    }

    let listed = s.versions(fp, 0).unwrap();
    let newest = listed.len() as u64;
    assert_eq!(
        listed.iter().map(|v| v.number).collect::<Vec<_>>(),
        (1..=newest).collect::<Vec<_>>(),
        "a gapless chain"
    );
    assert_eq!(
        newest, reported,
        "every version was reported, or found whole after its node's kill"
    );
    eprintln!(
        "{kills} kills: {newest} versions committed; {landed} commits in flight at a kill \
         landed whole, the others left no version"
    );
    // In a local store, count what writers killed between their layer blob and their
    // version record left: blobs no version names, which nothing reads.
    let layers = std::path::Path::new(&h.address()).join("layers");
    if layers.is_dir() {
        let blobs: usize = std::fs::read_dir(&layers)
            .unwrap()
            .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum();
        eprintln!(
            "{} layer blobs no version names (kills between blob and record)",
            blobs - newest as usize
        );
    }
    for v in &listed {
        let layer = Layer::from_bytes(&s.get_layer(v.layer).unwrap()).unwrap();
        assert_eq!((layer.origin, layer.version()), (fp, v.number));
    }
    let fresh = Node::new(s, n("fresh"), h.scratch().join("cache-fresh"));
    let top = fresh.sync(fp).unwrap();
    assert_eq!(top.version(), newest);
    let targets = slot_objects(&fresh.base(fp).unwrap(), objects);
    let mut chain = vec![top];
    while let Some(p) = chain.last().unwrap().parent().cloned() {
        chain.push(p);
    }
    chain.reverse();
    let value = |b: &Arc<Base>, x| Tenant::fork(b).slot(x, 0).unwrap().as_int().unwrap_or(0);
    let mut before = value(&chain[0], targets[0]);
    for b in &chain[1..] {
        let now = value(b, targets[0]);
        assert_eq!(now, before + 1, "version {}", b.version());
        for &x in &targets[1..] {
            assert_eq!(value(b, x), now, "version {} is whole", b.version());
        }
        before = now;
    }
}

#[test]
fn kill_9_committing_nodes_on_a_local_store() {
    crash_commits(&Local::new(), 15);
}

#[test]
fn kill_9_committing_nodes_on_postgres() {
    crash_commits(&Pg::new(), 15);
}

#[test]
fn kill_9_nodes_on_a_local_store() {
    crash(&Local::new(), 12, 15);
}

#[test]
fn kill_9_nodes_on_postgres() {
    crash(&Pg::new(), 12, 15);
}
