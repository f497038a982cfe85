//! The store's typed errors.

use crate::{Digest, Epoch, Millis, NodeName, PrincipalName, TenantName};
use cowheap_heap::{FileError, Fingerprint};
use cowheap_segment::swap::{SegmentId, SwapError};
use cowheap_tenants::RestoreError;
use cowheap_tenants::hosts::HostError;
use std::path::PathBuf;

/// The store's `Result`.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. Each variant leaves the store holding the last
/// complete state it had: a failed operation changes nothing, or only adds a blob nothing
/// names yet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A name that is not a valid tenant, node or principal name, digest or fingerprint.
    #[error("invalid {kind} name {name:?}")]
    InvalidName {
        /// What kind of name.
        kind: &'static str,
        /// The name given (cut short).
        name: String,
    },
    /// A file or directory of a local store could not be read or written (a full disk lands
    /// here, and so does a write past the process's file-size limit, `FileTooLarge`: `path`
    /// is the file being written, even when the refused bytes were its temporary file's).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database refused or failed an operation, or the connection was lost mid-way. The
    /// transaction was rolled back.
    #[error("database: {op}: {source} (SQLSTATE {})", code.as_deref().unwrap_or("none"))]
    Db {
        /// What the store was doing.
        op: &'static str,
        /// The SQLSTATE code, when the server sent one (none for a lost connection).
        code: Option<String>,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The location is not a store (no marker file, no schema), or an unknown kind of address.
    #[error("not a cowheap store: {what}")]
    NotAStore {
        /// What was found.
        what: String,
    },
    /// No blob with this digest.
    #[error("no blob {digest}")]
    BlobMissing {
        /// The digest asked for.
        digest: Digest,
    },
    /// The stored bytes do not hash to the blob's digest.
    #[error("blob {digest} is corrupt: its bytes hash to {found}")]
    BlobCorrupt {
        /// The blob's name.
        digest: Digest,
        /// What the stored bytes hash to.
        found: Digest,
    },
    /// The stored blob is shorter or longer than when it was written.
    #[error("blob {digest} is truncated: {found} bytes of {expected}")]
    BlobTruncated {
        /// The blob's name.
        digest: Digest,
        /// Its length when written.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// A blob or record's framing is damaged (a local store's file header, a record file).
    #[error("{what} is damaged: {problem}")]
    Damaged {
        /// Which file or row.
        what: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The store holds no base with this fingerprint.
    #[error("the store has no base {fingerprint}")]
    BaseMissing {
        /// The fingerprint asked for.
        fingerprint: Fingerprint,
    },
    /// The base bytes fetched from the store are not an image file with the fingerprint they
    /// were stored under.
    #[error("base {expected} in the store is an image of {found}")]
    BaseMismatch {
        /// The fingerprint the store files them under.
        expected: Fingerprint,
        /// The fingerprint of the image they hold.
        found: Fingerprint,
    },
    /// A base image file that could not be read, mapped or verified.
    #[error("base image: {0}")]
    BaseFile(#[source] FileError),
    /// No tenant of this name (or none this principal may see: the store does not tell).
    #[error("no tenant {tenant}")]
    TenantMissing {
        /// The name asked for.
        tenant: TenantName,
    },
    /// A tenant of this name exists already.
    #[error("tenant {tenant} exists already")]
    TenantExists {
        /// The name.
        tenant: TenantName,
    },
    /// Another node holds the tenant under a lease that has not expired: the claim lost.
    #[error("tenant {tenant} is held by node {owner} at epoch {epoch} until {lease_expiry}")]
    Held {
        /// The tenant.
        tenant: TenantName,
        /// Its owner.
        owner: NodeName,
        /// The owner's epoch.
        epoch: Epoch,
        /// When the owner's lease runs out.
        lease_expiry: Millis,
    },
    /// The claim is stale: the tenant was claimed again since (a later epoch), or released.
    /// Nothing was written.
    #[error(
        "tenant {tenant}: claim at epoch {held} is fenced off (the record is at epoch {current})"
    )]
    Fenced {
        /// The tenant.
        tenant: TenantName,
        /// The epoch the writer held.
        held: Epoch,
        /// The record's epoch now.
        current: Epoch,
    },
    /// The principal is not entitled to the tenant, or to the operation.
    #[error("principal {principal} may not {op} {what}")]
    Denied {
        /// Who asked.
        principal: PrincipalName,
        /// What it asked to do.
        op: &'static str,
        /// On what.
        what: String,
    },
    /// A principal's secret that no backend can check: empty, or holding a NUL byte
    /// (PostgreSQL, where the secret is the role's password, takes neither). Nothing was
    /// changed.
    #[error("principal {principal}: the secret {problem}")]
    InvalidSecret {
        /// The principal.
        principal: PrincipalName,
        /// What is wrong with the secret.
        problem: &'static str,
    },
    /// The database role a principal would log in as exists and is not one the store made
    /// for it (another store's principal in the same cluster, or a role of the cluster's
    /// own): it is not taken over. Nothing was changed.
    #[error("principal {principal}: the database role {role} exists and is not this store's")]
    RoleTaken {
        /// The principal.
        principal: PrincipalName,
        /// The role.
        role: String,
    },
    /// The credentials name no principal of the store, or the wrong secret.
    #[error("bad credentials for principal {principal}")]
    BadCredentials {
        /// The principal named.
        principal: PrincipalName,
    },
    /// A tenant state fetched from the store could not be restored.
    #[error("tenant {tenant}: state {digest} cannot be restored: {source}")]
    Restore {
        /// The tenant.
        tenant: TenantName,
        /// The state's digest.
        digest: Digest,
        /// Why.
        #[source]
        source: Box<RestoreError>,
    },
    /// A host object the tenant holds could not be carried through the node's plugins
    /// ([`cowheap_tenants::hosts`]): at a suspend or checkpoint its kind has no plugin or
    /// the plugin could not save it (nothing was written or released); at a resume its kind
    /// has no plugin, its state was not saved, or the plugin could not make it again (the
    /// claim was released and the record keeps its state).
    #[error("tenant {tenant}: host object: {source}")]
    HostObject {
        /// The tenant.
        tenant: TenantName,
        /// Why.
        #[source]
        source: Box<HostError>,
    },
    /// A tenant operation failed.
    #[error("tenant: {0}")]
    Tenant(#[source] Box<cowheap_tenants::Error>),
    /// The base has no root object with a pointer slot for [`crate::workload::write_mark`].
    #[error("the base has no root object with a pointer slot")]
    NoMarkTarget,
    /// A version could not be written: the newest version of its history in the store is
    /// not the one below it (another node committed that number first, or the number skips
    /// one). Nothing was written; sync and commit again.
    #[error("version {number} of base {origin} refused: the newest version is {newest}")]
    VersionConflict {
        /// The history's origin (its version-0 base).
        origin: Fingerprint,
        /// The number the writer tried.
        number: u64,
        /// The newest version in the store.
        newest: u64,
    },
    /// The principal may not commit versions of this base ([`crate::Store::allow_commit`]).
    /// Nothing was written.
    #[error("principal {principal} may not commit versions of base {base}")]
    NotCommitter {
        /// Who asked.
        principal: PrincipalName,
        /// The base.
        base: Fingerprint,
    },
    /// Bytes that are not a whole, valid version layer (truncated, bits flipped).
    #[error("layer: {0}")]
    Layer(#[source] FileError),
    /// A whole layer, but not of the version it was stored or listed as.
    #[error("layer does not fit its version: {problem}")]
    LayerMismatch {
        /// What does not fit.
        problem: &'static str,
    },
    /// The node's repository refused a commit or a layer: a conflict (the objects listed),
    /// a tenant of a version this node's repository did not publish, and the like. Nothing
    /// was written to the store.
    #[error("commit: {0}")]
    Commit(#[source] Box<cowheap_tenants::commit::CommitError>),
    /// Other nodes committed first every time this node tried: given up after `tries`.
    /// Nothing of this commit was written; the tenant keeps its changes.
    #[error("commit lost the race for the next version {tries} times")]
    CommitRaced {
        /// How many times it tried.
        tries: usize,
    },
    /// The store failed to confirm a version write (the answer was lost: a connection that
    /// dropped at the commit, a directory fsync that failed after the record was linked),
    /// or the store took it and this node could not then make the version (the allocator
    /// refused its tables), but the version is there, holding exactly this commit's layer,
    /// and the node has applied it where it could. The tenant was not moved onto it and
    /// still holds its changes: settle it on that version
    /// ([`cowheap_tenants::commit::Repository::settle_landed`], with the commit's roots),
    /// which keeps its roots and the objects the commit did not take as an answered commit
    /// does, or abort it ([`cowheap_tenants::commit::Repository::abort`]) onto it.
    #[error("version {version} is in the store, but the commit reported: {source}")]
    CommitLanded {
        /// The version the commit made.
        version: u64,
        /// What the store reported.
        #[source]
        source: Box<StoreError>,
    },
    /// The store holds a segment of the tenant under this id already (ids are never
    /// overwritten). Nothing was written.
    #[error("tenant {tenant} has a segment {id} already")]
    SegmentExists {
        /// The tenant.
        tenant: TenantName,
        /// The segment's id.
        id: SegmentId,
    },
    /// A segment id past [`crate::MAX_SEGMENT_ID`], the largest both backends keep
    /// (PostgreSQL's largest `bigint`): no segment is stored under it. Nothing was written.
    #[error("tenant {tenant}: segment id {id} is past the largest a store keeps")]
    SegmentIdOutOfRange {
        /// The tenant.
        tenant: TenantName,
        /// The segment's id.
        id: SegmentId,
    },
    /// The store holds no segment of the tenant under this id.
    #[error("tenant {tenant} has no segment {id}")]
    SegmentMissing {
        /// The tenant.
        tenant: TenantName,
        /// The segment's id.
        id: SegmentId,
    },
    /// Swapping a segment out of a resident tenant, faulting one in, or taking over the
    /// segments a resumed tenant's state names, failed; the tenant is as it was.
    #[error("tenant {tenant}: segment swap: {source}")]
    Swap {
        /// The tenant.
        tenant: TenantName,
        /// Why.
        #[source]
        source: Box<SwapError>,
    },
    /// The allocator refused a buffer the node or the store needed (a state's, a blob's);
    /// nothing was written, and a resident tenant is as it was.
    #[error("could not reserve {bytes} bytes for {what}")]
    OutOfMemory {
        /// What the buffer was for.
        what: &'static str,
        /// Bytes asked for.
        bytes: u64,
    },
    /// The clock reads past the latest time a lease can end (2^63 - 1 ms after the epoch, the
    /// largest value both backends store): a lease taken or renewed now would be over before
    /// it began, so none is. Nothing was changed.
    #[error(
        "the clock reads {now}, past the latest time a lease can end: no lease can be taken or renewed"
    )]
    ClockOutOfRange {
        /// The clock's reading.
        now: Millis,
    },
    /// A PostgreSQL server for tests could not be started or stopped.
    #[error("test server: {0}")]
    Server(String),
}

impl From<cowheap_tenants::Error> for StoreError {
    fn from(e: cowheap_tenants::Error) -> StoreError {
        StoreError::Tenant(Box::new(e))
    }
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// A refused reservation of `bytes` for `what`.
    pub(crate) fn out_of_memory(what: &'static str, bytes: usize) -> StoreError {
        StoreError::OutOfMemory {
            what,
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn db(op: &'static str, source: postgres::Error) -> StoreError {
        StoreError::Db {
            op,
            code: source.code().map(|c| c.code().to_owned()),
            source,
        }
    }
}
