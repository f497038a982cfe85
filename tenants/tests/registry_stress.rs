//! The registry under contention: threads check tenants out, insert, remove and publish new
//! bases at once, and no registered tenant is ever missed.
//!
//! Properties:
//! - a tenant that is registered, and that no thread removes for good, is found by
//!   [`Registry::with`] and listed by [`Registry::ids`] at every moment, even while another
//!   thread's [`Registry::remove`] of it fails because a third thread holds it;
//! - a remove succeeds only when no other thread holds the tenant, and hands it back whole;
//! - tenants keep the base they were forked from when a new one is published.
//!
//! `registry_stress_small` runs in every `cargo test`; `registry_stress_large` is its
//! `#[ignore]`d twin for a long run (`cargo test --release -p cowheap-tenants --test
//! registry_stress -- --ignored`).

use cowheap_forwarders::Base;
use cowheap_heap::{TenantId, Value, synth};
use cowheap_tenants::Registry;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Plan {
    /// Tenants that stay registered for the whole run.
    fixed: usize,
    /// Iterations of each worker.
    rounds: usize,
    /// Threads that check the fixed tenants out and, holding one, try to remove it.
    holders: usize,
}

fn stress(plan: &Plan) {
    let base = Base::new(synth::image(300, 5));
    let registry = Registry::new(base.clone());
    let st = base.heap().root("Smalltalk").unwrap();
    let fixed: Vec<TenantId> = (0..plan.fixed).map(|_| registry.spawn()).collect();
    let missed = AtomicUsize::new(0);
    let checks = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);

    std::thread::scope(|outer| {
        // Checkers: every fixed tenant is always found by `with` and listed by `ids`.
        for _ in 0..2 {
            let (registry, fixed, missed, checks, stop) =
                (&registry, &fixed, &missed, &checks, &stop);
            outer.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for &id in fixed {
                        if registry.with(id, |t| t.id()) != Some(id) {
                            missed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let ids: HashSet<TenantId> = registry.ids().into_iter().collect();
                    let absent = fixed.iter().filter(|id| !ids.contains(id)).count();
                    missed.fetch_add(absent, Ordering::Relaxed);
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::scope(|workers| {
            // Holders: check a fixed tenant out, write to it, and while holding it try to
            // remove it, which must fail and leave it registered.
            for h in 0..plan.holders {
                let (registry, fixed) = (&registry, &fixed);
                workers.spawn(move || {
                    for r in 0..plan.rounds {
                        let id = fixed[(h + r) % fixed.len()];
                        registry.with(id, |t| {
                            t.set_slot(st, 0, Value::int(r as i64)).unwrap();
                            assert!(registry.remove(id).is_none(), "removed a held tenant");
                            std::thread::yield_now();
                            assert_eq!(t.slot(st, 0).unwrap().as_int(), Some(r as i64));
                        });
                    }
                });
            }
            // Churn: spawn, use and remove short-lived tenants, insert ones made elsewhere,
            // and publish new bases.
            let registry = &registry;
            workers.spawn(move || {
                for r in 0..plan.rounds {
                    let id = registry.spawn();
                    registry.with(id, |t| t.set_slot(st, 1, Value::int(1)).unwrap());
                    let t = registry.remove(id).expect("an unheld tenant is removed");
                    assert_eq!(t.id(), id);
                    let id = registry.insert(t);
                    assert!(registry.remove(id).is_some());
                    if r % 16 == 0 {
                        registry.publish(Base::new(synth::image(300, 5)));
                    }
                }
            });
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert!(checks.load(Ordering::Relaxed) > 0);
    assert_eq!(
        missed.load(Ordering::Relaxed),
        0,
        "registered tenants were missed"
    );
    assert_eq!(registry.len(), plan.fixed);
    for id in &fixed {
        // Fixed tenants keep the base they were forked from.
        let b = registry.with(*id, |t| t.base().clone()).unwrap();
        assert!(Arc::ptr_eq(&b, &base));
    }
    assert!(!Arc::ptr_eq(&registry.current(), &base));
}

#[test]
fn registry_stress_small() {
    stress(&Plan {
        fixed: 4,
        rounds: 2_000,
        holders: 3,
    });
}

#[test]
#[ignore = "long run: cargo test --release -p cowheap-tenants --test registry_stress -- --ignored"]
fn registry_stress_large() {
    stress(&Plan {
        fixed: 16,
        rounds: 200_000,
        holders: 8,
    });
}
