//! The atomics the marks use: std's, or loom's under `cfg(loom)` so the marking protocol can
//! be model-checked (`RUSTFLAGS="--cfg loom" cargo test -p cowheap-forwarders --release`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
