//! A store for tenants and bases shared by many nodes: suspend a tenant on one machine,
//! resume it on another, never lose it, never run it twice.
//!
//! # What it holds
//!
//! - **Blobs**, immutable and content-addressed by their BLAKE3 [`Digest`]: base image files
//!   (filed under the base's [`cowheap_heap::Fingerprint`]) and tenant states (snapshots,
//!   O(private), bound to their base's fingerprint). A blob is written once however many
//!   tenants use it, and checked on every read: a length that changed is
//!   [`StoreError::BlobTruncated`], bytes that no longer hash to the name are
//!   [`StoreError::BlobCorrupt`].
//! - **A record per tenant** ([`TenantRecord`]): its base, its latest complete state, the
//!   node that owns it, the epoch of the latest claim and when the owner's lease runs out.
//! - **Principals** and the tenants granted to them ([`Access`]).
//!
//! # The protocol
//!
//! ```text
//!  node A                          store record (tenant t)                  node B
//!  claim(t) ----------------------> epoch 4, owner A, lease now+L
//!  ... runs t ...
//!  write_state(claim@4, S) -------> state S            (epoch 4 = record's: accepted)
//!  release(claim@4) --------------> owner -, epoch 4
//!                                                      <------------------ claim(t)
//!                                   epoch 5, owner B  ------------------> restores S
//!  (A paused while holding 4, its lease ran out, B claimed 5:)
//!  write_state(claim@4, S') ------> Fenced { held 4, current 5 }: nothing written
//! ```
//!
//! - **Claim** ([`Store::claim`]) is one atomic step: if the tenant has no owner or its
//!   owner's lease has run out, the epoch moves on by one and the claimant owns it; of many
//!   nodes claiming at once, exactly one wins and the others get [`StoreError::Held`].
//! - **Fencing**: every write, renewal and release presents its claim, and is refused with
//!   [`StoreError::Fenced`] unless the claim's epoch and node are the record's. A node that
//!   lost its claim can never overwrite newer work.
//! - **Leases** run out on an injected [`Clock`] ([`SystemClock`] in production,
//!   [`ManualClock`] in tests): a node that dies holding a tenant loses it when its lease
//!   runs out, and the next claim resumes the last state written. Nodes must agree on the
//!   time to well within a lease (NTP); a node renews ([`Store::renew`]) well before expiry.
//!   Clock skew can only make a lease end early or late, never break fencing, which rests
//!   on epochs alone. Fencing stops a node whose lease ran out from writing, not from
//!   running: a host calls [`Node::keep_lease`] before each piece of work (renewing when
//!   less than half the lease is left), as [`SwapRegistry`] does at every use, and keeps
//!   each piece shorter than half a lease, so that no node runs a tenant past its lease
//!   (to within the nodes' clock skew).
//! - **Suspend** ([`Node::suspend`]) writes the tenant's snapshot and releases it in one
//!   atomic, fenced step ([`Store::suspend`]);
//!   **resume** ([`Node::resume`]) claims, fetches the base once into the node's cache
//!   directory (mapped from there and shared by every tenant of that base in the process),
//!   fetches the state and restores it. A resume that fails after its claim releases it.
//!   Host objects a tenant holds travel with it through the nodes' plugins
//!   ([`Node::with_plugins`]); one whose kind has no plugin refuses the suspend (nothing
//!   written or released, [`Node::try_suspend`] gives the tenant back) or the resume
//!   (unless [`Node::accept_placeholders`]).
//! - **Swap-out under a memory budget**: [`SwapRegistry`] suspends the least recently used
//!   tenants when the resident private bytes pass its budget, and resumes them on next use.
//!   Before whole tenants it swaps out the least recently brought in *parts* an embedder
//!   declared ([`SwapRegistry::declare_part`]: roots whose segment goes as one), which
//!   fault back in on the next touch of a stub.
//!
//! # Segments
//!
//! A tenant's segments swapped out ([`cowheap_segment::swap`]) live in the store beside
//! its states, so a segment swapped out on one node faults in on another after the tenant
//! moves ([`segments`]):
//!
//! - **Keyed per tenant, stored by content.** Segment `id` of a tenant is an entry of that
//!   tenant naming a content-addressed blob ([`Store::put_segment`]): written once under a
//!   live claim (fenced, atomic: the entry names the whole blob or nothing), verified on
//!   every read ([`StoreError::BlobTruncated`], [`StoreError::BlobCorrupt`]), reachable
//!   only by the operator and principals entitled to the tenant. Ids are the swapper's,
//!   unique per tenant, so the per-tenant key is what a stub names; the blob under it is
//!   shared and deduplicated as states are.
//! - [`StoreSegments`] is the segment crate's `SegmentStore` over a store handle and a
//!   claim; every [`Resident`] carries a swapper over it ([`Resident::swap_out`]).
//! - A state with segments out is the snapshot framed with the swapper's records of them
//!   (the stubs, the objects outside the segments they keep alive, their checksums:
//!   `docs/FORMATS.md`); [`Node::resume`] hands them to a new swapper
//!   ([`cowheap_segment::swap::Swapper::adopt`]), which pins again what they keep alive
//!   and installs the fault handler.
//! - A faulted-in segment's entry stays while a state in the store may name it; a node
//!   drops the entries its latest state does not name when it resumes the tenant or
//!   checkpoints it ([`Store::retain_segments`], under its claim).
//!
//! # Base versions
//!
//! A commit of a tenant ([`cowheap_tenants::commit`]) makes a new version of its base; with
//! a store, the version is one atomic write in it before any node publishes it:
//!
//! - [`Store::put_version`] writes version `n` of the history of base `origin` (the layer
//!   as a content-addressed blob, and a record naming it) **only if the newest version of
//!   that history is `n - 1`**, else [`StoreError::VersionConflict`] names the newest: of
//!   many nodes writing one number exactly one wins, and the chain has no gaps.
//!   [`Store::put_version_claimed`] is the same write fenced by a tenant's claim in the
//!   same atomic step, which [`Node::commit_resident`] uses: a node whose claim another
//!   node took over publishes nothing, even when it stalled inside the write.
//!   [`Store::versions`] lists a history's versions after a number; [`Store::get_layer`]
//!   fetches a layer, verified.
//! - **Who may commit**: the operator names the principals that may commit to a base
//!   ([`Store::allow_commit`]); another principal's version is refused
//!   ([`StoreError::NotCommitter`]) and nothing changes. In PostgreSQL the server enforces
//!   it with row-level security, as it does tenant grants.
//! - [`Node::sync`] applies the versions a node lacks; [`Node::commit`] syncs, runs the
//!   repository's checks (conflicts against every version applied, so two nodes get the
//!   rules two tenants of one process get) and writes the version, compare-and-set, before
//!   publishing it; a lost race is synced and tried again. [`Node::resume`] restores a
//!   tenant onto the version its snapshot was taken on, syncing first if need be.
//!
//! # Backends
//!
//! - [`LocalStore`], the embedded default: a directory, no server. Every file is written to a
//!   temporary file, fsynced, renamed into place and its directory fsynced; a record changes
//!   only under an exclusive `flock` of its own lock file, so claims are atomic between the
//!   threads and processes of one machine.
//! - [`PgStore`]: a PostgreSQL database every node of a deployment talks to, plain SQL in
//!   transactions (`SELECT ... FOR UPDATE`, `INSERT ... ON CONFLICT`), no extension; blobs
//!   are stored only through one `SECURITY DEFINER` function that files them under their
//!   digest and the SHA-256 the server computes, so no principal can plant bytes under
//!   another's digest.
//!   [`PgServer`] starts a throwaway server for tests and benches.
//!
//! Both pass one conformance suite (`tests/common/mod.rs`, run by `tests/local.rs` and
//! `tests/pg.rs`).
//!
//! # Who may touch what
//!
//! A handle is opened as the operator or as a principal with its secret (checked when the
//! handle opens: [`StoreError::BadCredentials`]). Bases are readable by every access and
//! written by the operator only. A principal reads, claims and writes only the tenants
//! granted to it: anything else is [`StoreError::Denied`] (or [`StoreError::TenantMissing`]
//! where the backend hides the tenant altogether), and listings leave other tenants out; a
//! tenant's state is read through its record, never by a bare digest.
//!
//! - In PostgreSQL each principal is a database role that the node logs in as, with the
//!   secret as its password, and row-level security confines that role to its own tenants'
//!   rows, its own grants and the blobs that are bases or its tenants' states, whatever SQL
//!   the node sends (see [`pg`]). The store's own checks stay as a second line.
//! - In a local directory the check runs in the store's code under the record's lock: it
//!   stops a node presenting the wrong credentials, not one with write permission on the
//!   directory, which is the operator.
//!
//! Secrets are kept as BLAKE3 digests (and, in PostgreSQL, as the server's own password
//! hashes). One side channel is left by design: content addressing tells a writer whether
//! a blob with the same bytes exists already.
//!
//! # Costs
//!
//! A claim, renewal or release: O(1) (one record). A suspend: O(private) (the snapshot) plus
//! one blob write. A segment put or get: O(segment) plus one entry. A resume: O(state) plus, the first time a process meets a base, O(base)
//! to fetch it and verify it. Nothing is O(base) per tenant.
#![forbid(unsafe_code)]

pub mod cli;
mod clock;
mod error;
pub mod local;
mod names;
mod node;
mod open;
pub mod pg;
pub mod pg_server;
pub mod segments;
mod store;
mod swap;
mod versions;
pub mod workload;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Result, StoreError};
pub use local::LocalStore;
pub use names::{
    Digest, Epoch, MAX_NAME, MAX_PRINCIPAL, MAX_SEGMENT_ID, Millis, NOBODY, NodeName,
    PrincipalName, TenantName, fingerprint_hex, parse_fingerprint,
};
pub use node::{DEFAULT_LEASE_MS, Node, Resident, SuspendFailed, principal_access};
pub use open::{init_store, open_store};
pub use pg::PgStore;
pub use pg_server::PgServer;
pub use segments::StoreSegments;
pub use store::{Access, BlobStats, Claim, Store, TenantRecord, VersionRecord};
pub use swap::{PartId, SwapRegistry, SwapStats};
pub use versions::MAX_COMMIT_TRIES;
