//! A node's base cache under threads: threads wanting the same base fetch it once and share
//! it; threads wanting different bases fetch them at the same time (the node-wide lock is
//! not held across a fetch); a failed fetch is tried again by the next caller.

use cowheap_heap::{Fingerprint, synth};
use cowheap_store::{Access, LocalStore, Node, NodeName, Result, StoreError, SystemClock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};
use wrapped::{Call, Hooks, Wrapped};

#[path = "common/wrapped.rs"]
mod wrapped;

/// Hooks that count a store's base fetches and hold them back until `gate` fetches are in
/// flight at once (or `patience` has passed), so a test can see whether fetches overlap.
#[derive(Debug)]
struct Gate {
    fetches: AtomicUsize,
    in_flight: Mutex<usize>,
    /// Fetches that have reached the gate, ever (the gate opens when it is `gate`).
    reached: Mutex<usize>,
    most_at_once: AtomicUsize,
    arrived: Condvar,
    gate: usize,
    patience: Duration,
    /// Fetches of these fingerprints fail (a store that lost the base for a while).
    failing: Mutex<Vec<Fingerprint>>,
}

/// A store whose base fetches pass a [`Gate`].
type Gated = Wrapped<Gate>;

impl Gate {
    fn new(gate: usize, patience: Duration) -> Gate {
        Gate {
            fetches: AtomicUsize::new(0),
            in_flight: Mutex::new(0),
            reached: Mutex::new(0),
            most_at_once: AtomicUsize::new(0),
            arrived: Condvar::new(),
            gate,
            patience,
            failing: Mutex::new(Vec::new()),
        }
    }
}

impl Hooks for Gate {
    fn before(&self, call: Call) -> Result<()> {
        let Call::GetBase(fingerprint) = call else {
            return Ok(());
        };
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.lock().unwrap().contains(&fingerprint) {
            return Err(StoreError::BaseMissing { fingerprint });
        }
        {
            let mut f = self.in_flight.lock().unwrap();
            *f += 1;
            self.most_at_once.fetch_max(*f, Ordering::SeqCst);
        }
        let mut n = self.reached.lock().unwrap();
        *n += 1;
        self.arrived.notify_all();
        let until = Instant::now() + self.patience;
        while *n < self.gate && Instant::now() < until {
            n = self
                .arrived
                .wait_timeout(n, until.saturating_duration_since(Instant::now()))
                .unwrap()
                .0;
        }
        Ok(())
    }

    fn after(&self, call: Call, _: bool) -> Result<()> {
        if let Call::GetBase(_) = call {
            *self.in_flight.lock().unwrap() -= 1;
        }
        Ok(())
    }
}

/// Two bases stored in a fresh local store, and that store wrapped in a [`Gated`].
fn setup(gate: usize, patience: Duration) -> (tempfile::TempDir, Arc<Gated>, [Fingerprint; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::init(
        &dir.path().join("store"),
        Arc::new(SystemClock),
        Access::Operator,
    )
    .unwrap();
    let setup = Node::new(
        Arc::new(
            LocalStore::open(
                &dir.path().join("store"),
                Arc::new(SystemClock),
                Access::Operator,
            )
            .unwrap(),
        ),
        NodeName::new("setup").unwrap(),
        dir.path().join("cache-setup"),
    );
    let mut fps = [Fingerprint([0; 32]); 2];
    for (i, fp) in fps.iter_mut().enumerate() {
        let file = dir.path().join(format!("base{i}.cowheap"));
        synth::image(500 + 100 * i, i as u64 + 1)
            .save(&file)
            .unwrap();
        *fp = setup.put_base_file(&file).unwrap();
    }
    assert_ne!(fps[0], fps[1]);
    (
        dir,
        Arc::new(Wrapped::new(Arc::new(local), Gate::new(gate, patience))),
        fps,
    )
}

#[test]
fn threads_wanting_one_base_fetch_it_once_and_share_it() {
    // No fetch waits for another here (gate 1): the count is the point.
    let (dir, store, fps) = setup(1, Duration::ZERO);
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    let start = Barrier::new(8);
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    node.base(fps[0]).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        store.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for eight threads"
    );
    for b in &got[1..] {
        assert!(
            Arc::ptr_eq(b, &got[0]),
            "every thread holds the one mapped base"
        );
    }
    assert_eq!(got[0].heap().fingerprint(), fps[0]);
}

#[test]
fn different_bases_are_fetched_at_the_same_time() {
    // Each fetch waits (up to 20 s) until two are in flight: with a node-wide lock held
    // across a fetch the second could not start, and at most one would ever be in flight.
    let (dir, store, fps) = setup(2, Duration::from_secs(20));
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    let start = Barrier::new(2);
    let t0 = Instant::now();
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = fps
            .iter()
            .map(|&fp| {
                let (node, start) = (&node, &start);
                s.spawn(move || {
                    start.wait();
                    node.base(fp).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(store.most_at_once.load(Ordering::SeqCst), 2);
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "neither waited out its patience"
    );
    assert_eq!(got[0].heap().fingerprint(), fps[0]);
    assert_eq!(got[1].heap().fingerprint(), fps[1]);
    // Open now: no fetch again.
    assert!(Arc::ptr_eq(&node.base(fps[0]).unwrap(), &got[0]));
    assert_eq!(store.fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_fetch_is_tried_again_and_does_not_block_other_bases() {
    let (dir, store, fps) = setup(1, Duration::ZERO);
    store.failing.lock().unwrap().push(fps[0]);
    let node = Node::new(
        store.clone(),
        NodeName::new("a").unwrap(),
        dir.path().join("cache-a"),
    );
    assert!(matches!(
        node.base(fps[0]),
        Err(StoreError::BaseMissing { .. })
    ));
    assert_eq!(node.base(fps[1]).unwrap().heap().fingerprint(), fps[1]);
    store.failing.lock().unwrap().clear();
    assert_eq!(node.base(fps[0]).unwrap().heap().fingerprint(), fps[0]);
    assert_eq!(store.fetches.load(Ordering::SeqCst), 3);
}
