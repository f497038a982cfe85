//! A local store made by the command line with one tenant, `alice`, for the command-line
//! tests (included by path by those that use it).

use cowheap_heap::synth;
use cowheap_store::cli;
use cowheap_store::{Access, Store, open_store};
use std::sync::Arc;

/// A local store under `dir`, made by the command line, holding a base and tenant `alice`
/// on it: its address, an operator's handle and the base's fingerprint.
pub(crate) fn store_with_alice(dir: &std::path::Path) -> (String, Arc<dyn Store>, String) {
    let addr = dir.join("store").to_str().unwrap().to_owned();
    cli::init(&addr).unwrap();
    let op = open_store(
        &addr,
        Arc::new(cowheap_store::SystemClock),
        Access::Operator,
    )
    .unwrap();
    let fp = cli::put_base(&*op, &synth::image(1_000, 3)).unwrap();
    let fp = fp.trim().to_owned();
    cli::create(&*op, "alice", &fp, None).unwrap();
    (addr, op, fp)
}
