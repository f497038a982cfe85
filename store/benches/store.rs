//! Suspend and resume latency against the tenant's private size, on both backends and on
//! bases of 1,000 and 1,000,000 objects: both should grow with the private part and not
//! with the base. Before measuring, prints a table of the bytes one suspend writes (the
//! tenant's snapshot) beside what a whole-process memory snapshot of the same tenant would
//! hold (the base's bytes plus the tenant's private memory).
//!
//! Then commits through the store ([`Node::commit`]: sync, checks, the version written
//! compare-and-set, published) against the same commit in one process with no store
//! (`Repository::commit`), by changed objects, and a second node's sync of each new version.
//!
//! Then one part of a tenant (a segment of 1,000 objects) swapped out and faulted back in
//! through the store ([`cowheap_store::StoreSegments`], a resident tenant's swapper) against
//! the same through a directory of segment files (`DirStore`), in objects per second.
//!
//! `cargo bench -p cowheap-store --bench store` (starts its own PostgreSQL server;
//! `-- parts` for the part benches alone).

use cowheap_heap::{Fingerprint, Format, Value, synth};
use cowheap_segment::swap::{DirStore, Swapper};
use cowheap_store::workload::{slot_objects, write_mark};
use cowheap_store::{
    Access, LocalStore, Node, NodeName, PgServer, PgStore, Store, SystemClock, TenantName,
};
use cowheap_tenants::commit::{CommitMode, CommitRights, Repository};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASES: [usize; 2] = [1_000, 1_000_000];
const PRIVATE: [usize; 3] = [10, 1_000, 30_000];

/// Makes tenant `name` of `fp` with `objects` private objects (a chain of 4-slot objects),
/// suspended in the store.
fn prepare(node: &Node, fp: Fingerprint, name: &TenantName, objects: usize) {
    node.store().create_tenant(name, fp, None).unwrap();
    let mut r = node.resume(name).unwrap();
    let t = &mut r.tenant;
    let g = t.base().heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let mut prev = t.base().heap().nil();
    for i in 0..objects {
        prev = t
            .alloc_with(
                class,
                Format::Pointers,
                &[prev, Value::int(i as i64), prev, prev],
                &[],
            )
            .unwrap();
    }
    t.set_root("chain", prev).unwrap();
    node.suspend(r).unwrap();
}

fn backend(c: &mut Criterion, label: &str, store: Arc<dyn Store>, scratch: &Path) {
    let node = Node::new(
        store,
        NodeName::new("bench").unwrap(),
        scratch.join("cache"),
    );
    let mut group = c.benchmark_group(format!("store/{label}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    for objects in BASES {
        let image = scratch.join(format!("base-{objects}.cowheap"));
        synth::image(objects, 1).save(&image).unwrap();
        let image_bytes = std::fs::metadata(&image).unwrap().len();
        let fp = node.put_base_file(&image).unwrap();
        for private in PRIVATE {
            let name = TenantName::new(format!("b{objects}-p{private}")).unwrap();
            prepare(&node, fp, &name, private);
            let r = node.resume(&name).unwrap();
            let snapshot = r.tenant.snapshot().len();
            let memory = r.tenant.memory_bytes();
            node.suspend(r).unwrap();
            eprintln!(
                "{label}: base {objects} objects ({image_bytes} B), {private} private objects: \
                 one suspend writes {snapshot} B; a whole-process snapshot would hold \
                 {} B ({:.1}x)",
                image_bytes as usize + memory,
                (image_bytes as usize + memory) as f64 / snapshot as f64
            );
            let id = format!("base={objects}/private={private}");
            let mut n = 0i64;
            group.bench_function(BenchmarkId::new("suspend", &id), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut r = node.resume(&name).unwrap();
                        // A new state each time, so every suspend writes a new blob.
                        n += 1;
                        write_mark(&mut r.tenant, n).unwrap();
                        let start = Instant::now();
                        node.suspend(r).unwrap();
                        total += start.elapsed();
                    }
                    total
                })
            });
            group.bench_function(BenchmarkId::new("resume", &id), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let r = node.resume(&name).unwrap();
                        total += start.elapsed();
                        node.suspend(r).unwrap();
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

const CHANGED: [usize; 2] = [1, 100];

/// A tenant of `repo`'s current version with slot 0 of `changed` objects set to `n`.
fn changed_tenant(repo: &Repository, objects: &[Value], n: i64) -> cowheap_tenants::Tenant {
    let mut t = repo.fork();
    for &x in objects {
        t.set_slot(x, 0, Value::int(n)).unwrap();
    }
    t
}

fn commits(c: &mut Criterion, label: &str, store: Arc<dyn Store>, scratch: &Path) {
    let node = Node::new(
        store.clone(),
        NodeName::new("committer").unwrap(),
        scratch.join("cache-commit"),
    );
    let other = Node::new(
        store,
        NodeName::new("follower").unwrap(),
        scratch.join("cache-follow"),
    );
    let image = scratch.join("base-commit.cowheap");
    synth::image(1_000, 2).save(&image).unwrap();
    let fp = node.put_base_file(&image).unwrap();
    let repo = node.repository(fp).unwrap();
    let objects = slot_objects(&node.base(fp).unwrap(), *CHANGED.iter().max().unwrap());
    // The baseline commits a million times in a run; it starts over on a fresh repository
    // every thousand commits, so its chain stays about as deep as the store-backed ones'.
    let fresh = || {
        Repository::new(
            cowheap_forwarders::Base::new(synth::image(1_000, 2)),
            CommitRights::Anyone,
        )
    };
    let mut local = fresh();
    let mut group = c.benchmark_group(format!("commit/{label}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    let mut n = 0i64;
    for changed in CHANGED {
        let id = format!("base=1000/changed={changed}");
        group.bench_function(BenchmarkId::new("through the store", &id), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let mut t = changed_tenant(&repo, &objects[..changed], n);
                    let start = Instant::now();
                    node.commit(&mut t, CommitMode::WriteWrite, &[]).unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("another node syncs it", &id), |b| {
            b.iter_custom(|iters| {
                other.sync(fp).unwrap();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let mut t = changed_tenant(&repo, &objects[..changed], n);
                    node.commit(&mut t, CommitMode::WriteWrite, &[]).unwrap();
                    let start = Instant::now();
                    other.sync(fp).unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("in one process, no store", &id), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    if n % 1_000 == 0 {
                        local = fresh();
                    }
                    let mut t = changed_tenant(&local, &objects[..changed], n);
                    let start = Instant::now();
                    local.commit(&mut t, "bench").unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// Objects in the part.
const PART: usize = 1_000;

/// Builds a part of `PART` objects (a chain of 4-slot objects under one root, held by the
/// named root `holder`) and answers its root.
fn build_part(t: &mut cowheap_tenants::Tenant) -> Value {
    let g = t.base().heap().root("Smalltalk").unwrap();
    let class = t.class_of(g).unwrap();
    let mut prev = t.base().heap().nil();
    for i in 0..PART {
        prev = t
            .alloc_with(
                class,
                Format::Pointers,
                &[prev, Value::int(i as i64), prev, prev],
                &[],
            )
            .unwrap();
    }
    let holder = t.alloc_with(class, Format::Pointers, &[prev], &[]).unwrap();
    t.set_root("holder", holder).unwrap();
    prev
}

/// Times `out` and `back` separately over `iters` rounds of swap-out then fault-in: the
/// total of the one selected by `first`.
fn rounds(iters: u64, first: bool, mut out: impl FnMut(), mut back: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        out();
        let mid = Instant::now();
        back();
        total += if first { mid - start } else { mid.elapsed() };
    }
    total
}

/// One part swapped out and faulted in through the store (a resident tenant's swapper) and,
/// as the baseline, through a `DirStore` in the scratch directory.
fn parts(c: &mut Criterion, label: &str, store: Arc<dyn Store>, scratch: &Path) {
    let node = Node::new(
        store,
        NodeName::new("parts").unwrap(),
        scratch.join("cache-parts"),
    );
    let image = scratch.join("parts-base.cowheap");
    synth::image(1_000, 1).save(&image).unwrap();
    let fp = node.put_base_file(&image).unwrap();
    let name = TenantName::new(format!("parts-{label}")).unwrap();
    node.store().create_tenant(&name, fp, None).unwrap();
    let mut r = node.resume(&name).unwrap();
    let root = build_part(&mut r.tenant);
    let r = std::cell::RefCell::new(r);

    let mut t = cowheap_tenants::Tenant::fork(&node.base(fp).unwrap());
    let dir_root = build_part(&mut t);
    let dir = Swapper::new(DirStore::new(scratch.join("parts-dir")).unwrap());
    dir.keep_files(true); // as the store's swapper does
    let t = std::cell::RefCell::new(t);

    let mut group = c.benchmark_group(format!("parts/{label}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(PART as u64));
    let id = std::cell::Cell::new(None);
    for (phase, first) in [("swap-out", true), ("fault-in", false)] {
        group.bench_function(BenchmarkId::new(phase, "store"), |b| {
            b.iter_custom(|iters| {
                rounds(
                    iters,
                    first,
                    || id.set(Some(r.borrow_mut().swap_out(&[root]).unwrap().id)),
                    || r.borrow_mut().fault_in(id.get().unwrap()).unwrap(),
                )
            })
        });
        group.bench_function(BenchmarkId::new(phase, "dir"), |b| {
            b.iter_custom(|iters| {
                rounds(
                    iters,
                    first,
                    || {
                        id.set(Some(
                            dir.swap_out(&mut t.borrow_mut(), &[dir_root]).unwrap().id,
                        ))
                    },
                    || {
                        dir.fault_in(&mut t.borrow_mut(), id.get().unwrap())
                            .unwrap()
                    },
                )
            })
        });
    }
    group.finish();
    node.suspend(r.into_inner()).unwrap();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::init(
        &dir.path().join("store"),
        Arc::new(SystemClock),
        Access::Operator,
    )
    .unwrap();
    let local_scratch = dir.path().join("local");
    std::fs::create_dir_all(&local_scratch).unwrap();
    let local: Arc<dyn Store> = Arc::new(local);

    let server = PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL must start: {e}"));
    let url = server.create_db("bench").unwrap();
    let pg = PgStore::init(&url, Arc::new(SystemClock)).unwrap();
    let pg_scratch = dir.path().join("pg");
    std::fs::create_dir_all(&pg_scratch).unwrap();
    let pg: Arc<dyn Store> = Arc::new(pg);

    parts(&mut c, "local", local.clone(), &local_scratch);
    parts(&mut c, "postgres", pg.clone(), &pg_scratch);
    commits(&mut c, "local", local.clone(), &local_scratch);
    backend(&mut c, "local", local, &local_scratch);
    commits(&mut c, "postgres", pg.clone(), &pg_scratch);
    backend(&mut c, "postgres", pg, &pg_scratch);
    c.final_summary();
}
