//! The values, objects and frozen base heap of cowheap.
//!
//! cowheap hosts many *tenants* (client images) on one shared *base heap*. This crate is the
//! bottom layer: it holds no tenant and knows nothing of how tenants copy, forward or
//! collect. It does know that private references exist: [`Word`] reserves their tag (so the
//! base can refuse them), [`Value`] carries the [`TenantId`] of the tenant a private
//! reference belongs to (so a reference cannot be carried silently into another tenant), and
//! [`FileError::ForeignBase`] is the error of a file bound to another base.
//!
//! - [`Word`] is the 64-bit tagged word every slot holds: a small integer, a character, a
//!   reference into the base, or a reference into a tenant's private space. Decoding which
//!   takes one or two instructions ([`word`]).
//! - [`Value`] is a word as handed to an embedder: it also names the tenant a private
//!   reference belongs to, so a reference cannot be carried silently into another tenant.
//! - [`Format`] says how an object's body is laid out: pointer slots, raw bytes or words, or
//!   the pointers-then-bytes form of compiled methods.
//! - [`Builder`] makes a base heap; [`Builder::freeze`] checks it and packs it into a
//!   [`BaseHeap`], which is immutable, `Send + Sync`, and meant to be shared by `Arc`.
//! - [`image`] saves a base heap as an image file and maps it back, verified, with no
//!   per-object decoding; [`file`](mod@file) holds what image files and tenant snapshots share.
//! - `synth` (feature `synth`) generates deterministic graphs shaped like a Smalltalk image, for benches,
//!   tests and demonstrations.
//!
//! ```
//! use cowheap_heap::{Builder, Format, Value};
//!
//! let mut b = Builder::new();
//! let nil = b.add_nil();
//! let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
//! let point = b.add(class, Format::Pointers, vec![Value::int(3).word(), Value::int(4).word()], vec![]).unwrap();
//! b.add_root("origin", point).unwrap();
//! let base = b.freeze().unwrap();
//! let p = base.root("origin").unwrap();
//! assert_eq!(base.slot(p, 1).unwrap().as_int(), Some(4));
//! ```
#![deny(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!(
    "cowheap stores objects little-endian and serves them in place: it needs a little-endian host"
);

#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "cowheap indexes words by 64-bit offsets and argues its bounds tests from that: it needs a 64-bit host"
);

mod base;
mod builder;
mod error;
pub mod file;
mod format;
pub mod image;
pub mod layout;
mod storage;
#[cfg(feature = "synth")]
pub mod synth;
mod value;
pub mod word;

pub use base::{
    BaseHeap, HASH_BITS_ROOT, MAX_HASH_BITS, MAX_OBJECT_WORDS, ObjectView, Root, draw_hash,
};
// The raw reader of the tenants' read path: public for the crates above, not for users.
#[doc(hidden)]
pub use storage::{HeapReader, HeapView};

/// Width of an object's auxiliary bits ([`Builder::set_aux`]).
pub const AUX_BITS: u32 = 24;
pub use builder::Builder;
pub use error::{Error, Result};
pub use file::{FileError, FileResult, Fingerprint};
pub use format::{Format, ObjectSize};
pub use image::{ImageInfo, Verification};
pub use value::{TenantId, Value};
pub use word::{Decoded, ObjectIndex, PrivateKey, Word};
