//! Import time of Scratch.image and open time of the cowheap image file made from it, each
//! beside a baseline (reading the file's bytes).
//!
//! `cargo bench -p cowheap-squeak --bench import`

use cowheap_heap::{BaseHeap, Verification};
use criterion::{Criterion, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn image_path() -> PathBuf {
    let dir = match std::env::var_os("COWHEAP_IMAGES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/images")),
    };
    dir.join("Scratch-1.4.0.6.image")
}

fn import(c: &mut Criterion) {
    let path = image_path();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; see ../shared/images/README.md for how to get Scratch.image",
            path.display()
        )
    });
    let mut g = c.benchmark_group("scratch");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("baseline/read_image_file", |b| {
        b.iter(|| black_box(std::fs::read(&path).unwrap()))
    });
    g.bench_function("import/from_bytes", |b| {
        b.iter(|| black_box(cowheap_squeak::import_bytes(&bytes).unwrap()))
    });
    g.bench_function("import/from_file", |b| {
        b.iter(|| black_box(cowheap_squeak::import(&path).unwrap()))
    });

    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("scratch.cowheap");
    cowheap_squeak::import_bytes(&bytes)
        .unwrap()
        .heap
        .save(&base)
        .unwrap();
    g.bench_function("baseline/read_cowheap_file", |b| {
        b.iter(|| black_box(std::fs::read(&base).unwrap()))
    });
    g.bench_function("open/verified", |b| {
        b.iter(|| black_box(BaseHeap::open(&base).unwrap()))
    });
    g.bench_function("open/trusted", |b| {
        b.iter(|| black_box(BaseHeap::open_with(&base, Verification::Trust).unwrap()))
    });
    g.finish();
}

mod group {
    #![allow(
        missing_docs,
        reason = "criterion's macro makes an undocumented function"
    )]
    criterion::criterion_group!(benches, super::import);
}

criterion_main!(group::benches);
