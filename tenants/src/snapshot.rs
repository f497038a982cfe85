//! Tenant snapshots: a tenant's private part on disk, bound to its base's fingerprint.
//!
//! A snapshot holds what the tenant has of its own and nothing of the base: its private
//! entries (copies, new objects, become forwarders) at their keys and generations, its
//! indirection table, its named roots, its quota, mark policy and counters. Size and time are
//! O(private), whatever the size of the base. Restoring it onto the same base, in any process,
//! gives a tenant that observes exactly what the saved one did; restoring onto another base is
//! refused ([`FileError::ForeignBase`]).
//!
//! Pinned handles are process-local and are not saved: their objects are restored, unpinned.
//!
//! The format is described in `docs/FORMATS.md`. Restoring trusts nothing in the file beyond
//! its checksums:
//!
//! - every word is checked: a reference into the base must be in range, a private reference
//!   must name a saved entry of the same generation, the table must name distinct base objects
//!   and entries;
//! - every chain of forwarders (through private entries and the table) is walked to a final
//!   object, so a cycle is refused here rather than failing every later read;
//! - the quota and mark policy are the host's ([`Tenant::restore_with`] takes a
//!   [`TenantConfig`]); the snapshot's own quota is not trusted, and a tenant already over the
//!   host's quota is refused;
//! - counters are taken as they are and saturate from there;
//! - memory is proportional to what the file holds: retired keys cost 8 bytes each in the
//!   restored tenant (4 in the file), live entries what they hold; it is reserved
//!   fallibly, and a refusal answers [`RestoreError::OutOfMemory`] with nothing made.
//!
//! ```
//! use cowheap_forwarders::Base;
//! use cowheap_heap::{synth, Value};
//! use cowheap_tenants::snapshot::RestoreError;
//! use cowheap_tenants::{Tenant, TenantConfig};
//!
//! let base = Base::new(synth::image(1_000, 1));
//! let g = base.heap().root("Smalltalk").unwrap();
//! let mut t = Tenant::fork(&base);
//! t.set_slot(g, 0, Value::int(5)).unwrap();
//! let bytes = t.snapshot();
//! let mut back = Tenant::restore_from(&base, &bytes).unwrap();
//! assert_eq!(back.slot(g, 0).unwrap().as_int(), Some(5));
//!
//! // The host's configuration decides the quota, and a tenant over it is refused.
//! let config = TenantConfig { quota: Some(1 << 20), ..TenantConfig::default() };
//! assert_eq!(Tenant::restore_with(&base, &bytes, &config).unwrap().quota(), Some(1 << 20));
//! let tight = TenantConfig { quota: Some(10), ..TenantConfig::default() };
//! assert!(matches!(
//!     Tenant::restore_with(&base, &bytes, &tight),
//!     Err(RestoreError::QuotaExceeded { quota: 10, .. })
//! ));
//!
//! let other = Base::new(synth::image(1_000, 2));
//! assert!(Tenant::restore_from(&other, &bytes).is_err());
//! ```

use crate::hosts::{Host, HostError, HostPlugins};
use crate::space::{Body, Entry, Space, State, entry_cost};
use crate::tenant::NO_QUOTA;
use crate::{Tenant, TenantConfig, TenantStats};
use cowheap_forwarders::{Base, MarkPolicy, MarkTarget};
use cowheap_heap::file::{
    FileError, FileResult, Fingerprint, Reader, read_roots, write_atomically, write_roots,
};
use cowheap_heap::word::GENERATION_MASK;
use cowheap_heap::{Decoded, Format, ObjectIndex, ObjectSize, Word};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The first eight bytes of every tenant snapshot.
pub const MAGIC: [u8; 8] = *b"COWTENT\0";
/// The snapshot format version this build writes and reads.
pub const VERSION: u32 = 1;
/// magic, version, flags, base fingerprint, payload length, digest.
const HEADER_LEN: usize = 8 + 4 + 4 + 32 + 8 + 32;
/// Bytes of the header the digest covers (all but the digest).
const COVERED: usize = HEADER_LEN - 32;
/// The flag saying a host objects section follows the roots.
const FLAG_HOSTS: u32 = 2;
/// The flag saying a committed section follows: the keys of the forwarders commits left to
/// the objects they committed, which an abort keeps.
const FLAG_COMMITTED: u32 = 4;
/// The flag saying the tenant records its reads, and a reads section follows: the base
/// objects read since it started.
const FLAG_READS: u32 = 8;
/// The flag saying an auxiliary bits section follows: the bits of each saved object and
/// root stub that has any, which the restore takes instead of each copy's base object's.
const FLAG_AUX: u32 = 16;
/// Every flag this build knows.
const FLAGS: u32 = 1 | FLAG_HOSTS | FLAG_COMMITTED | FLAG_READS | FLAG_AUX;

/// Why a snapshot could not be restored under a host's configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The bytes are not a whole, valid snapshot of this base.
    #[error(transparent)]
    File(#[from] FileError),
    /// A host object could not be made again ([`crate::hosts`]).
    #[error(transparent)]
    Host(#[from] HostError),
    /// The allocator refused memory the restored tenant needed; nothing was made.
    #[error("could not reserve {bytes} bytes to restore the snapshot")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// The tenant already holds more private bytes than the host's quota allows.
    #[error("the snapshot's tenant holds {used} private bytes, over the quota of {quota}")]
    QuotaExceeded {
        /// The host's quota.
        quota: u64,
        /// Private bytes the snapshot's tenant holds.
        used: u64,
    },
}

/// Why a snapshot could not be taken: a host object, or memory. (Exhaustive: a snapshot
/// reads nothing that could fail otherwise.)
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A host object could not be saved ([`Tenant::snapshot_with`]).
    #[error(transparent)]
    Host(#[from] HostError),
    /// The allocator refused the snapshot's buffer; nothing changed.
    #[error("could not reserve {bytes} bytes for the snapshot")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
}

/// [`RestoreError::OutOfMemory`] for `n` elements of `T`.
fn refused<T>(n: usize) -> RestoreError {
    RestoreError::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
    }
}

/// Room for `n` more elements in `v` (amortized), or [`RestoreError::OutOfMemory`].
fn room<T>(v: &mut Vec<T>, n: usize) -> Result<(), RestoreError> {
    v.try_reserve(n).map_err(|_| refused::<T>(n))
}

/// `items` collected into a boxed slice of exactly `n` elements, its memory reserved
/// fallibly.
fn try_boxed<T>(n: usize, items: impl Iterator<Item = T>) -> Result<Box<[T]>, RestoreError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| refused::<T>(n))?;
    v.extend(items);
    Ok(v.into_boxed_slice())
}

fn digest(header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&header[..COVERED]);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// A snapshot's bytes, grown fallibly: the first growth the allocator refuses is kept and
/// every later write skipped, so the writer asks once, at the end ([`Out::finish`]).
struct Out {
    bytes: Vec<u8>,
    /// The length a refused growth asked for.
    refused: Option<usize>,
}

impl Out {
    /// An empty buffer with room for exactly `n` bytes, reserved fallibly.
    fn with_room(n: usize) -> Out {
        let mut bytes = Vec::new();
        let refused = bytes.try_reserve_exact(n).is_err().then_some(n);
        Out { bytes, refused }
    }
    /// Room for `n` more bytes, or the refusal recorded.
    fn room(&mut self, n: usize) -> bool {
        if self.refused.is_none() && self.bytes.try_reserve(n).is_err() {
            self.refused = Some(self.bytes.len().saturating_add(n));
        }
        self.refused.is_none()
    }
    fn put(&mut self, bytes: &[u8]) {
        if self.room(bytes.len()) {
            self.bytes.extend_from_slice(bytes);
        }
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    /// A length the tenant's invariants keep below 2^32 (object sizes are checked when
    /// objects are made or copied).
    fn len32(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn len64(&mut self, n: usize) {
        self.u64(u64::try_from(n).unwrap_or(u64::MAX));
    }
    /// The bytes, or the refusal.
    fn finish(self) -> Result<Vec<u8>, SnapshotError> {
        match self.refused {
            None => Ok(self.bytes),
            Some(n) => Err(SnapshotError::OutOfMemory {
                bytes: u64::try_from(n).unwrap_or(u64::MAX),
            }),
        }
    }
}

fn stats_fields(s: &TenantStats) -> [u64; 7] {
    [
        s.copies,
        s.allocations,
        s.lookups,
        s.patches,
        s.becomes,
        s.collections,
        s.collected,
    ]
}

impl Tenant {
    /// This tenant's private part as snapshot bytes. Time and size: O(private entries and
    /// keys ever used).
    ///
    /// Garbage that names an object freed since (which [`Tenant::free_unreachable`] may
    /// leave) is saved naming nil there, so that the bytes always restore.
    ///
    /// The buffer is reserved fallibly, but this form ends the process if the allocator
    /// refuses it, as a `Vec` does; [`Tenant::try_snapshot`] answers the refusal instead.
    pub fn snapshot(&self) -> Vec<u8> {
        match self.try_snapshot() {
            Ok(bytes) => bytes,
            Err(SnapshotError::OutOfMemory { bytes }) => std::alloc::handle_alloc_error(
                std::alloc::Layout::array::<u8>(usize::try_from(bytes).unwrap_or(usize::MAX))
                    .unwrap_or(std::alloc::Layout::new::<u8>()),
            ),
            Err(SnapshotError::Host(e)) => unreachable!("{e}: no plugin is asked"),
        }
    }

    /// [`Tenant::snapshot`], answering [`SnapshotError::OutOfMemory`] (and changing nothing)
    /// if the allocator refuses the buffer. Time and size as [`Tenant::snapshot`].
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_tenants::Tenant;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let g = base.heap().root("Smalltalk").unwrap();
    /// let mut t = Tenant::fork(&base);
    /// t.set_slot(g, 0, Value::int(5)).unwrap();
    /// let bytes = t.try_snapshot().unwrap();
    /// assert_eq!(bytes, t.snapshot());
    /// ```
    ///
    /// # Errors
    /// [`SnapshotError::OutOfMemory`] if the buffer (or the table's order) is refused.
    pub fn try_snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        // Without plugins a host object's state is not saved (a placeholder's saved bytes
        // are kept): restoring it then needs the caller to accept a placeholder.
        self.snapshot_hosts(|h| Ok(h.saved.as_deref().map(Cow::Borrowed)))
    }

    /// [`Tenant::try_snapshot`], each host object saved by its kind's plugin in `plugins`
    /// ([`crate::hosts`]). Time: O(private), plus the plugins' work.
    ///
    /// # Errors
    /// [`SnapshotError::Host`] with [`HostError::NoPlugin`] for a host object whose kind
    /// has no plugin (a placeholder keeps the bytes it was restored with and needs none),
    /// or [`HostError::Save`] if a plugin fails; [`SnapshotError::OutOfMemory`] if the
    /// allocator refuses the buffer.
    pub fn snapshot_with(&self, plugins: &HostPlugins) -> Result<Vec<u8>, SnapshotError> {
        self.snapshot_hosts(|h| match &h.object {
            None => Ok(h.saved.as_deref().map(Cow::Borrowed)),
            Some(object) => {
                let plugin = plugins.get(&h.kind).ok_or_else(|| HostError::NoPlugin {
                    kind: h.kind.clone(),
                })?;
                plugin
                    .save(object.as_ref())
                    .map(|bytes| Some(Cow::Owned(bytes)))
                    .map_err(|reason| HostError::Save {
                        kind: h.kind.clone(),
                        reason,
                    })
            }
        })
    }

    /// The bytes a snapshot's payload takes up to its table, counted before any is
    /// written ([`Tenant::snapshot_hosts`] adds the roots and host objects).
    fn payload_len(&self) -> usize {
        let entries: usize = self
            .space
            .iter()
            .map(|(_, e)| match e {
                // Key, tag, class, format, hash, the two lengths, the words and the bytes.
                State::Object(b) => {
                    4 + 1 + 8 + 1 + 4 + 4 + 4 + 8 * b.slots().len() + b.bytes().len()
                }
                State::Forwarded(_) | State::Stub(_) => 4 + 1 + 8,
            })
            .sum();
        // Quota, seven counters, the generations with their count, the entries' count, the
        // table with its count.
        8 + 7 * 8 + 8 + 4 * self.space.gens().len() + 8 + entries + 8 + 8 * self.table.len()
    }

    /// The auxiliary bits section: (entry key, bits) of each saved object and root stub
    /// with bits, ascending by key; `None` (no section) when a restore that derives them
    /// gives the same (no entry has bits, and no object the table diverts has any), so a
    /// tenant of a base without bits writes what it always wrote. Time: O(private).
    fn aux_section(&self) -> Result<Option<Vec<(u32, u32)>>, SnapshotError> {
        let stubs = self.cold.as_ref().map(|c| &c.stub_aux);
        let own = self.space.iter().any(|(_, e)| match e {
            State::Object(b) => b.aux() != 0,
            _ => false,
        }) || stubs.is_some_and(|m| m.values().any(|&a| a != 0));
        let derived = self
            .table
            .iter()
            .any(|(x, _)| self.base.object(x).is_ok_and(|o| o.aux != 0));
        if !own && !derived {
            return Ok(None);
        }
        let mut v: Vec<(u32, u32)> = Vec::new();
        let n = self.space.len() + stubs.map_or(0, |m| m.len());
        if v.try_reserve_exact(n).is_err() {
            return Err(SnapshotError::OutOfMemory {
                bytes: (n as u64).saturating_mul(8),
            });
        }
        for (k, e) in self.space.iter() {
            let bits = match e {
                State::Object(b) => b.aux(),
                State::Stub(_) => stubs.and_then(|m| m.get(&k)).copied().unwrap_or(0),
                State::Forwarded(_) => 0,
            };
            if bits != 0 {
                v.push((k.key(), bits));
            }
        }
        Ok(Some(v))
    }

    /// The snapshot, each host object's state (or `None`, not saved) from `state`. Every
    /// byte is counted first (the host objects' states are asked for first, so a plugin
    /// that fails does so before anything is written), the buffer reserved once, exactly,
    /// and the header's room kept at the front and filled in once the payload is written,
    /// so the bytes are held once.
    fn snapshot_hosts<'h>(
        &'h self,
        mut state: impl FnMut(&'h Host) -> Result<Option<Cow<'h, [u8]>>, HostError>,
    ) -> Result<Vec<u8>, SnapshotError> {
        let none = BTreeMap::new();
        let roots = self.roots_map().unwrap_or(&none);
        // The count, then each name's length, the name and the word.
        let roots_len = 8 + roots.keys().map(|n| 4 + n.len() + 8).sum::<usize>();
        let hosts = self
            .cold
            .as_ref()
            .map(|c| &c.hosts)
            .filter(|h| !h.is_empty());
        let mut states = Vec::new();
        if let Some(hosts) = hosts {
            if states.try_reserve_exact(hosts.len()).is_err() {
                return Err(SnapshotError::OutOfMemory {
                    bytes: (hosts.len() * size_of::<Option<Cow<'h, [u8]>>>()) as u64,
                });
            }
            for h in hosts.values() {
                states.push(state(h)?);
            }
        }
        // The count, then each proxy's key, its kind with its length, the tag and the
        // state with its length.
        let hosts_len = hosts.map_or(0, |hosts| {
            8 + hosts
                .values()
                .zip(&states)
                .map(|(h, s)| 4 + 4 + h.kind.len() + 1 + s.as_ref().map_or(0, |b| 8 + b.len()))
                .sum::<usize>()
        });
        // The committed forwarders' keys and the reads recorded, each ascending, each
        // section only when there is one (a recording tenant's even if it read nothing).
        let mut committed: Vec<u32> = Vec::new();
        let mut reads: Option<Vec<u32>> = None;
        if let Some(c) = &self.cold {
            let n = c.committed.len();
            if committed.try_reserve_exact(n).is_err() {
                return Err(SnapshotError::OutOfMemory {
                    bytes: (n as u64).saturating_mul(4),
                });
            }
            // Those still forwarding to a base object, as a commit left them (a restore
            // refuses any other).
            committed.extend(
                c.committed
                    .iter()
                    .filter(
                        |&&k| matches!(self.space.get(k), Some(State::Forwarded(w)) if w.is_base()),
                    )
                    .map(|k| k.key()),
            );
            committed.sort_unstable();
            if let Some((set, _)) = &c.recording {
                let set = set.borrow();
                let mut v = Vec::new();
                if v.try_reserve_exact(set.len()).is_err() {
                    return Err(SnapshotError::OutOfMemory {
                        bytes: (set.len() as u64).saturating_mul(4),
                    });
                }
                v.extend(set.iter().copied());
                v.sort_unstable();
                reads = Some(v);
            }
        }
        let committed_len = if committed.is_empty() {
            0
        } else {
            8 + 4 * committed.len()
        };
        let reads_len = reads.as_ref().map_or(0, |r| 8 + 4 * r.len());
        let aux = self.aux_section()?;
        let aux_len = aux.as_ref().map_or(0, |a| 8 + 8 * a.len());
        let total = HEADER_LEN
            + self.payload_len()
            + roots_len
            + hosts_len
            + committed_len
            + reads_len
            + aux_len;
        let mut p = Out::with_room(total);
        p.put(&[0; HEADER_LEN]);
        p.u64(self.quota().unwrap_or(NO_QUOTA));
        for v in stats_fields(&self.stats()) {
            p.u64(v);
        }
        let gens = self.space.gens();
        p.len64(gens.len());
        for g in gens {
            p.u32(g);
        }
        p.len64(self.space.len());
        // A word naming an entry freed since is written as nil: only an object no root,
        // handle or diverted copy reaches can hold one (`free_unreachable` frees the objects
        // it is given and leaves other garbage as it is), and restore accepts no reference
        // that leads nowhere, so such an object would make the whole snapshot unrestorable.
        let nil = self.base.heap().nil().word();
        let word = |w: Word| match w.decode() {
            Decoded::Private(k) if !self.space.is_live(k) => nil.bits(),
            _ => w.bits(),
        };
        for (k, e) in self.space.iter() {
            p.u32(k.key());
            match e {
                State::Object(b) => {
                    p.u8(0);
                    p.u64(word(b.class()));
                    p.u8(b.format().code());
                    p.u32(b.hash());
                    p.len32(b.slots().len());
                    p.len32(b.bytes().len());
                    for w in b.slots() {
                        p.u64(word(w.get()));
                    }
                    p.put(b.bytes());
                }
                State::Forwarded(t) => {
                    p.u8(1);
                    p.u64(word(t));
                }
                State::Stub(segment) => {
                    p.u8(2);
                    p.u64(segment);
                }
            }
        }
        let mut table = Vec::new();
        if table.try_reserve_exact(self.table.len()).is_err() {
            return Err(SnapshotError::OutOfMemory {
                bytes: (self.table.len() as u64).saturating_mul(8),
            });
        }
        table.extend(self.table.iter());
        table.sort_unstable_by_key(|(x, _)| *x);
        p.len64(table.len());
        for (x, k) in table {
            p.u32(x.as_u32());
            p.u32(k);
        }
        if p.room(roots_len) {
            let roots = roots.iter().map(|(n, &w)| (n.as_str(), w));
            if let Err(e) = write_roots(&mut p.bytes, roots) {
                unreachable!("{e}: Tenant::set_root refuses such names");
            }
        }
        let with_hosts = hosts.is_some();
        if let Some(hosts) = hosts {
            p.len64(hosts.len());
            for (h, saved) in hosts.values().zip(&states) {
                p.u32(h.key.key());
                p.len32(h.kind.len());
                p.put(h.kind.as_bytes());
                match saved {
                    None => p.u8(0),
                    Some(bytes) => {
                        p.u8(1);
                        p.len64(bytes.len());
                        p.put(bytes);
                    }
                }
            }
        }
        for list in [Some(&committed).filter(|c| !c.is_empty()), reads.as_ref()]
            .into_iter()
            .flatten()
        {
            p.len64(list.len());
            for &k in list {
                p.u32(k);
            }
        }
        if let Some(aux) = &aux {
            p.len64(aux.len());
            for &(k, bits) in aux {
                p.u32(k);
                p.u32(bits);
            }
        }
        let mut bytes = p.finish()?;
        debug_assert_eq!(
            bytes.len(),
            total,
            "every byte counted before the reservation"
        );
        let mut header = [0u8; HEADER_LEN];
        let flags = u32::from(self.marks_policy() == MarkPolicy::Private)
            | if with_hosts { FLAG_HOSTS } else { 0 }
            | if committed_len != 0 {
                FLAG_COMMITTED
            } else {
                0
            }
            | if reads.is_some() { FLAG_READS } else { 0 }
            | if aux.is_some() { FLAG_AUX } else { 0 };
        let payload_len = (bytes.len() - HEADER_LEN) as u64;
        for (at, field) in [
            (0, &MAGIC[..]),
            (8, &VERSION.to_le_bytes()[..]),
            (12, &flags.to_le_bytes()[..]),
            (16, &self.base.fingerprint().0[..]),
            (48, &payload_len.to_le_bytes()[..]),
        ] {
            header[at..at + field.len()].copy_from_slice(field);
        }
        let d = digest(&header, &bytes[HEADER_LEN..]);
        header[COVERED..].copy_from_slice(&d);
        bytes[..HEADER_LEN].copy_from_slice(&header);
        Ok(bytes)
    }

    /// Writes [`Tenant::snapshot`] to `path` atomically. Time: O(private).
    ///
    /// # Errors
    /// [`FileError::Io`] if the file cannot be written, or, of kind
    /// [`std::io::ErrorKind::OutOfMemory`], if the allocator refuses the snapshot's
    /// buffer. Nothing is written either way.
    pub fn save_snapshot(&self, path: &Path) -> FileResult<()> {
        // A refused buffer is the one error of `try_snapshot` here: an I/O error of its
        // kind, with nothing written.
        let bytes = self.try_snapshot().map_err(|e| {
            FileError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, e.to_string()),
            )
        })?;
        write_atomically(path, |w| w.write_all(&bytes))
    }

    /// Restores the tenant snapshot at `path` onto `base`, with the default configuration
    /// (no quota, shared marks), as [`Tenant::restore_from`]. Time: O(file size).
    ///
    /// # Errors
    /// [`FileError::ForeignBase`] if the snapshot was taken on another base; any other
    /// [`FileError`] if the file is not a whole, valid snapshot; [`FileError::Io`] of kind
    /// [`std::io::ErrorKind::OutOfMemory`] if the allocator refuses the file's buffer or the
    /// restored tenant's memory.
    pub fn restore(base: &Arc<Base>, path: &Path) -> FileResult<Tenant> {
        let bytes = cowheap_heap::file::read_file(path)?;
        Tenant::restore_default(base, &bytes, path)
    }

    /// Restores a tenant from snapshot bytes onto `base` with the default configuration:
    /// `TenantConfig::default()`, no quota and shared marks, whatever the snapshot says.
    /// A host that sets quotas or private marks uses [`Tenant::restore_with`]. Time:
    /// O(snapshot size).
    ///
    /// # Errors
    /// As [`Tenant::restore`] (a refused allocation is an I/O error with an empty path).
    pub fn restore_from(base: &Arc<Base>, bytes: &[u8]) -> FileResult<Tenant> {
        Tenant::restore_default(base, bytes, Path::new(""))
    }

    /// [`Tenant::restore_from`], a refused allocation reported against `path`.
    fn restore_default(base: &Arc<Base>, bytes: &[u8], path: &Path) -> FileResult<Tenant> {
        match Tenant::restore_with(base, bytes, &TenantConfig::default()) {
            Ok(t) => Ok(t),
            Err(RestoreError::File(e)) => Err(e),
            Err(e @ RestoreError::OutOfMemory { .. }) => Err(FileError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::OutOfMemory, e.to_string()),
            )),
            // The default configuration has no quota.
            Err(RestoreError::QuotaExceeded { .. }) => Err(FileError::corrupt(
                "snapshot",
                "the tenant is over the default quota",
            )),
            Err(RestoreError::Host(_)) => Err(FileError::corrupt(
                "host objects",
                "the snapshot holds host objects: restore it with Tenant::restore_with_hosts",
            )),
        }
    }

    /// Restores a tenant from snapshot bytes onto `base` under the host's `config`: its
    /// quota and mark policy apply, not the snapshot's. Time: O(snapshot size). Memory:
    /// proportional to the snapshot (8 bytes per retired key, the live entries' contents).
    ///
    /// # Errors
    /// [`RestoreError::File`] if the bytes are not a whole, valid snapshot of `base` (see the
    /// module doc for every check); [`RestoreError::QuotaExceeded`] if the tenant holds more
    /// private bytes than `config.quota`; [`RestoreError::OutOfMemory`] if the allocator
    /// refuses the restored tenant's memory (nothing is made).
    pub fn restore_with(
        base: &Arc<Base>,
        bytes: &[u8],
        config: &TenantConfig,
    ) -> Result<Tenant, RestoreError> {
        Tenant::restore_with_hosts(base, bytes, config, &HostPlugins::new(), false)
    }

    /// [`Tenant::restore_with`], each host object made again by its kind's plugin in
    /// `plugins` ([`crate::hosts`]). A host object whose plugin is missing, or whose state
    /// the snapshot did not save, is an error unless `placeholders` is true: it is then
    /// restored as a placeholder ([`Tenant::placeholders`]) that keeps its saved bytes.
    /// Every check that can refuse the snapshot (the file, each kind's plugin and state, the
    /// quota, the memory) runs before the first plugin's restore, so a refused restore has
    /// run no plugin; only a plugin's own failure comes after the plugins before it ran.
    /// Time: O(snapshot size), plus the plugins' work.
    ///
    /// # Errors
    /// As [`Tenant::restore_with`], and [`RestoreError::Host`].
    pub fn restore_with_hosts(
        base: &Arc<Base>,
        bytes: &[u8],
        config: &TenantConfig,
        plugins: &HostPlugins,
        placeholders: bool,
    ) -> Result<Tenant, RestoreError> {
        let (payload, flags) = check_header(base, bytes)?;
        let mut parts = Parts::read(payload, flags)?;
        parts.check(base.len())?;
        let saved_hosts = std::mem::take(&mut parts.hosts);
        // Every check that can refuse the snapshot runs before any plugin does (a plugin's
        // restore may reach outside the tenant: reopen a connection, say), so a refused
        // restore has run none: each host object's plugin and state, then the tenant
        // itself (its quota, its memory) and each host object's proxy.
        let mut made = BTreeMap::new();
        for (key, kind, saved) in saved_hosts {
            let plugin = match (plugins.get(&kind), saved) {
                (Some(plugin), Some(_)) => Some(plugin),
                _ if placeholders => None,
                (None, _) => return Err(HostError::NoPlugin { kind }.into()),
                (Some(_), None) => return Err(HostError::NotSaved { kind }.into()),
            };
            made.insert(key, (kind, plugin, saved));
        }
        let mut unmarked = parts.into_tenant(base, config)?;
        let t = &mut unmarked.tenant;
        let mut hosts = Vec::new();
        room(&mut hosts, made.len())?;
        for (key, (kind, plugin, saved)) in made {
            let Some(k) = t.space.key_of(key) else {
                return Err(FileError::corrupt("host objects", "a proxy is missing").into());
            };
            // A placeholder keeps its saved bytes; a remade object does not need them.
            let kept = match (plugin, saved) {
                (None, Some(b)) => Some(try_boxed(b.len(), b.iter().copied())?.into_vec()),
                _ => None,
            };
            hosts.push((key, k, kind, plugin, saved, kept));
        }
        for (key, k, kind, plugin, saved, kept) in hosts {
            let object = match (plugin, saved) {
                (Some(plugin), Some(bytes)) => {
                    Some(plugin.restore(bytes).map_err(|reason| HostError::Restore {
                        kind: kind.clone(),
                        reason,
                    })?)
                }
                _ => None,
            };
            t.cold_mut().hosts.insert(
                key,
                Host {
                    key: k,
                    kind,
                    object,
                    saved: kept,
                },
            );
        }
        unmarked.divert()
    }

    /// The tenant's mark policy (the one it goes back to, while it records its reads).
    pub(crate) fn marks_policy(&self) -> MarkPolicy {
        if let Some((_, policy)) = self.cold.as_ref().and_then(|c| c.recording.as_ref()) {
            *policy
        } else if self.filter.is_none() {
            MarkPolicy::Shared
        } else {
            MarkPolicy::Private
        }
    }
}

/// Checks the header (magic, version, length, digest, flags, base) and returns the payload
/// and the flags.
fn check_header<'a>(base: &Base, bytes: &'a [u8]) -> FileResult<(&'a [u8], u32)> {
    let mut r = Reader::new(bytes, 0);
    let magic: [u8; 8] = r.array("the magic")?;
    if magic != MAGIC {
        return Err(FileError::BadMagic {
            expected: "cowheap tenant snapshot",
            found: magic,
        });
    }
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(FileError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let flags = r.u32("flags")?;
    let expected = Fingerprint(r.array("base fingerprint")?);
    let len = r.u64("payload length")?;
    let stored: [u8; 32] = r.array("digest")?;
    let remaining = u64::try_from(r.remaining()).unwrap_or(u64::MAX);
    if remaining > len {
        return Err(FileError::Corrupt {
            part: "header".into(),
            problem: "bytes follow the payload the header gives",
        });
    }
    if remaining != len {
        return Err(FileError::Truncated {
            what: "the payload",
            at: HEADER_LEN as u64,
            need: len,
            have: bytes.len() as u64,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    if digest(bytes, payload) != stored {
        return Err(FileError::Checksum { part: "snapshot" });
    }
    // Bit 0 records the saved tenant's mark policy; the restoring host's configuration
    // decides the restored one's. Bit 1 says a host objects section follows the roots, bit
    // 2 a committed section, bit 3 a reads section, in that order.
    if flags & !FLAGS != 0 {
        return Err(FileError::corrupt("header", "unknown flags"));
    }
    let found = base.fingerprint();
    if expected != found {
        return Err(FileError::ForeignBase { expected, found });
    }
    Ok((payload, flags))
}

/// A snapshot's payload, read but not yet checked against the base or itself.
struct Parts<'a> {
    counters: [u64; 7],
    /// The generations, 4 little-endian bytes per key, each checked to fit a reference.
    gens: &'a [u8],
    /// Entries in ascending key order, every key below the generation count.
    entries: Vec<(u32, Entry)>,
    /// (base object, entry key) pairs.
    table: Vec<(u32, u32)>,
    roots: Vec<(String, Word)>,
    /// Host objects: proxy key, kind, saved state.
    hosts: Vec<(u32, String, Option<&'a [u8]>)>,
    /// The keys of the forwarders commits left, ascending.
    committed: Vec<u32>,
    /// The base objects read, ascending, if the tenant records its reads.
    reads: Option<Vec<u32>>,
    /// (entry key, bits) of each saved object and stub with auxiliary bits, ascending by
    /// key, if the snapshot keeps them (else each copy takes its base object's).
    aux: Option<Vec<(u32, u32)>>,
}

impl<'a> Parts<'a> {
    fn read(payload: &'a [u8], flags: u32) -> Result<Parts<'a>, RestoreError> {
        let with_hosts = flags & FLAG_HOSTS != 0;
        let mut r = Reader::new(payload, HEADER_LEN as u64);
        // The saved quota is not trusted: the host's configuration decides.
        r.u64("quota")?;
        let mut counters = [0u64; 7];
        for c in &mut counters {
            *c = r.u64("counters")?;
        }
        let gens = read_generations(&mut r)?;
        let entries = read_entries(&mut r, gens.len() / 4)?;
        let n_table = r.count(8, "table")?;
        let mut table = Vec::new();
        room(&mut table, n_table)?;
        for _ in 0..n_table {
            table.push((r.u32("table object")?, r.u32("table key")?));
        }
        let roots = read_roots(&mut r, "roots")?;
        let mut hosts = Vec::new();
        if with_hosts {
            let n = r.count(9, "host objects")?;
            for _ in 0..n {
                let key = r.u32("host proxy")?;
                let len = r.u32("host kind length")? as usize;
                let kind = std::str::from_utf8(r.take(len, "host kind")?)
                    .map_err(|_| FileError::corrupt("host objects", "a kind is not UTF-8"))?
                    .to_owned();
                let saved = match r.take(1, "host state tag")?[0] {
                    0 => None,
                    1 => {
                        let n = usize::try_from(r.u64("host state length")?).map_err(|_| {
                            FileError::corrupt("host objects", "a state longer than memory")
                        })?;
                        Some(r.take(n, "host state")?)
                    }
                    _ => {
                        return Err(
                            FileError::corrupt("host objects", "an unknown state tag").into()
                        );
                    }
                };
                room(&mut hosts, 1)?;
                hosts.push((key, kind, saved));
            }
            if hosts.is_empty() || !hosts.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(FileError::corrupt(
                    "host objects",
                    "proxies are not listed once each, ascending",
                )
                .into());
            }
        }
        // A list of u32 ascending, each once, reserved as it is read.
        let ascending = |r: &mut Reader<'a>, what: &'static str| {
            let n = r.count(4, what)?;
            let mut v: Vec<u32> = Vec::new();
            room(&mut v, n)?;
            for _ in 0..n {
                v.push(r.u32(what)?);
            }
            if !v.windows(2).all(|w| w[0] < w[1]) {
                return Err(RestoreError::from(FileError::corrupt(
                    what,
                    "not listed once each, ascending",
                )));
            }
            Ok(v)
        };
        let committed = if flags & FLAG_COMMITTED != 0 {
            let v = ascending(&mut r, "committed")?;
            if v.is_empty() {
                return Err(FileError::corrupt("committed", "an empty section").into());
            }
            v
        } else {
            Vec::new()
        };
        let reads = if flags & FLAG_READS != 0 {
            Some(ascending(&mut r, "reads")?)
        } else {
            None
        };
        let aux = if flags & FLAG_AUX != 0 {
            let n = r.count(8, "auxiliary bits")?;
            let mut v: Vec<(u32, u32)> = Vec::new();
            room(&mut v, n)?;
            for _ in 0..n {
                v.push((r.u32("auxiliary bits key")?, r.u32("auxiliary bits")?));
            }
            Some(v)
        } else {
            None
        };
        if r.remaining() != 0 {
            return Err(FileError::corrupt("snapshot", "bytes after the last section").into());
        }
        let parts = Parts {
            counters,
            gens,
            entries,
            table,
            roots,
            hosts,
            committed,
            reads,
            aux,
        };
        // Every committed key is a saved forwarder to a base object, the shape a commit
        // leaves (an abort keeps it).
        for &key in &parts.committed {
            let committed = parts
                .entry_at(key)
                .is_some_and(|i| matches!(parts.entries[i].1, Entry::Forwarded(w) if w.is_base()));
            if !committed {
                return Err(FileError::corrupt(
                    "committed",
                    "a key is not a forwarder to a base object",
                )
                .into());
            }
        }
        // Auxiliary bits: keys ascending, each a saved object or stub, the bits nonzero and
        // as wide as a header keeps.
        if let Some(aux) = &parts.aux {
            if !aux.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(FileError::corrupt(
                    "auxiliary bits",
                    "keys are not listed once each, ascending",
                )
                .into());
            }
            for &(key, bits) in aux {
                let holds = parts.entry_at(key).is_some_and(|i| {
                    matches!(parts.entries[i].1, Entry::Object(_) | Entry::Stub(_))
                });
                if !holds {
                    return Err(FileError::corrupt(
                        "auxiliary bits",
                        "a key is not a saved object or stub",
                    )
                    .into());
                }
                if bits == 0 || bits >> cowheap_heap::AUX_BITS != 0 {
                    return Err(FileError::corrupt(
                        "auxiliary bits",
                        "bits that are none or wider than a header keeps",
                    )
                    .into());
                }
            }
        }
        // Every proxy is a saved object (not a forwarder).
        for (key, _, _) in &parts.hosts {
            let is_object = parts
                .entry_at(*key)
                .is_some_and(|i| matches!(parts.entries[i].1, Entry::Object(_)));
            if !is_object {
                return Err(FileError::corrupt("host objects", "a proxy is not an object").into());
            }
        }
        Ok(parts)
    }

    fn generation(&self, key: u32) -> Option<u32> {
        generation_at(self.gens, key)
    }

    /// Position of entry `key` in `entries`, if it was saved.
    fn entry_at(&self, key: u32) -> Option<usize> {
        self.entries.binary_search_by_key(&key, |(k, _)| *k).ok()
    }

    /// Checks every word, the table and every chain of forwarders against a base of
    /// `n_base` objects.
    fn check(&self, n_base: usize) -> Result<(), RestoreError> {
        if let Some(reads) = &self.reads
            && reads.last().is_some_and(|&x| x as usize >= n_base)
        {
            return Err(FileError::corrupt("reads", "a base object past the base").into());
        }
        self.check_words(n_base)?;
        let table = self.check_table(n_base)?;
        self.check_chains(&table)
    }

    /// True if `w` leads somewhere in this base and snapshot: an immediate (unless a
    /// reference is needed), a base object in range, or a saved entry of the same generation.
    ///
    /// An immediate is any word [`Word::is_immediate`] takes for one, as a tenant's writes,
    /// the builder and an image file's verification take it: a small integer, a character,
    /// an immediate float, or a tag-`010` word with bits above its code point (no
    /// character, an opaque immediate, as a float is to cowheap). A word any of them
    /// stores as it is must restore, or the snapshot of a tenant holding one would not.
    fn valid(&self, w: Word, n_base: usize, must_be_ref: bool) -> bool {
        match w.decode() {
            Decoded::Int(_) | Decoded::Char(_) => !must_be_ref,
            Decoded::Base(x) => x.get() < n_base,
            Decoded::Private(k) => {
                self.entry_at(k.key()).is_some() && self.generation(k.key()) == Some(k.generation())
            }
            Decoded::Reserved(_) => w.is_immediate() && !must_be_ref,
        }
    }

    fn check_words(&self, n_base: usize) -> FileResult<()> {
        for (key, e) in &self.entries {
            let ok = match e {
                Entry::Stub(_) => true,
                Entry::Object(b) => {
                    self.valid(b.class, n_base, true)
                        && b.slots.iter().all(|&w| self.valid(w, n_base, false))
                }
                Entry::Forwarded(t) => self.valid(*t, n_base, true),
            };
            if !ok {
                return Err(FileError::corrupt(
                    format!("entry {key}"),
                    "a reference leads nowhere",
                ));
            }
        }
        if !self
            .roots
            .iter()
            .all(|(_, w)| self.valid(*w, n_base, false))
        {
            return Err(FileError::corrupt("roots", "a reference leads nowhere"));
        }
        Ok(())
    }

    /// The table as a map, checked: base objects in range, saved entries, each object and
    /// each entry named once.
    fn check_table(&self, n_base: usize) -> Result<FxHashMap<u32, u32>, RestoreError> {
        let mut map = FxHashMap::default();
        let mut keys = rustc_hash::FxHashSet::default();
        let n = self.table.len();
        map.try_reserve(n).map_err(|_| refused::<(u32, u32)>(n))?;
        keys.try_reserve(n).map_err(|_| refused::<u32>(n))?;
        for &(x, k) in &self.table {
            let in_range = usize::try_from(x).is_ok_and(|x| x < n_base);
            if !in_range
                || self.entry_at(k).is_none()
                || !keys.insert(k)
                || map.insert(x, k).is_some()
            {
                return Err(FileError::corrupt(
                    "table",
                    "an entry names a missing or repeated object",
                )
                .into());
            }
        }
        Ok(map)
    }

    /// Walks every chain of forwarders, through private entries and the table, to a final
    /// object (a saved object, or a base object the table does not divert): a cycle would
    /// restore a tenant every read through which fails. Time: O(entries).
    fn check_chains(&self, table: &FxHashMap<u32, u32>) -> Result<(), RestoreError> {
        const UNSEEN: u8 = 0;
        const ON_PATH: u8 = 1;
        const FINAL: u8 = 2;
        // Where entry `i` leads next: another entry's position, or None at a final object.
        let next = |i: usize| -> Option<usize> {
            let Entry::Forwarded(t) = &self.entries[i].1 else {
                return None;
            };
            let key = match t.decode() {
                Decoded::Private(k) => k.key(),
                Decoded::Base(x) => *table.get(&x.as_u32())?,
                // check_words refused forwarders to immediates.
                _ => return None,
            };
            self.entry_at(key)
        };
        let n = self.entries.len();
        let mut state = try_boxed(n, std::iter::repeat_n(UNSEEN, n))?;
        let mut path = Vec::new();
        for start in 0..self.entries.len() {
            let mut at = Some(start);
            while let Some(i) = at {
                match state[i] {
                    FINAL => break,
                    ON_PATH => {
                        return Err(FileError::corrupt(
                            format!("entry {}", self.entries[i].0),
                            "a cycle of forwarders",
                        )
                        .into());
                    }
                    _ => {
                        state[i] = ON_PATH;
                        room(&mut path, 1)?;
                        path.push(i);
                        at = next(i);
                    }
                }
            }
            for i in path.drain(..) {
                state[i] = FINAL;
            }
        }
        Ok(())
    }

    /// The tenant these parts describe, under `config`.
    fn into_tenant(
        self,
        base: &Arc<Base>,
        config: &TenantConfig,
    ) -> Result<Unmarked, RestoreError> {
        let private_bytes = self
            .entries
            .iter()
            .map(|(_, e)| entry_cost(e))
            .fold(0u64, u64::saturating_add);
        if let Some(quota) = config.quota
            && private_bytes > quota
        {
            return Err(RestoreError::QuotaExceeded {
                quota,
                used: private_bytes,
            });
        }
        let objects = u64::try_from(self.entries.len()).unwrap_or(u64::MAX);
        let mut t = Tenant::fork_with(base, *config);
        let gens = self.gens;
        let generation = |i: u32| generation_at(gens, i).unwrap_or(0);
        let bound = gens.len() / 4;
        t.space = Space::from_parts(self.entries, bound, generation).map_err(|e| match e {
            crate::Error::OutOfMemory { bytes } => RestoreError::OutOfMemory { bytes },
            _ => FileError::corrupt("entries", "keys pass the key space").into(),
        })?;
        // The table's room is taken now, its entries diverted last (`Unmarked::divert`).
        t.table
            .try_reserve(self.table.len())
            .map_err(|_| refused::<u64>(self.table.len().saturating_mul(3)))?;
        let mut table = Vec::new();
        room(&mut table, self.table.len())?;
        for &(x, k) in &self.table {
            let key = t.space.key_of(k).ok_or(FileError::corrupt(
                "table",
                "an entry names a missing object",
            ))?;
            table.push((ObjectIndex::from_u32(x), key));
        }
        // The auxiliary bits: the snapshot's own where it keeps them (each body's, as a
        // two-way become left them); else, as before the section was written, each copy
        // takes its base object's. A stub's are kept for the body a fault-in brings.
        let give = |t: &mut Tenant, key: cowheap_heap::PrivateKey, aux: u32| {
            match t.space.get(key) {
                Some(State::Object(_)) => {
                    if let Some(mut w) = t.space.writable(key) {
                        w.set_aux(aux);
                    }
                }
                Some(State::Stub(_)) => {
                    let stubs = &mut t.cold_mut().stub_aux;
                    stubs
                        .try_reserve(1)
                        .map_err(|_| refused::<(cowheap_heap::PrivateKey, u32)>(1))?;
                    stubs.insert(key, aux);
                }
                _ => {}
            }
            Ok::<(), RestoreError>(())
        };
        match &self.aux {
            Some(aux) => {
                for &(k, bits) in aux {
                    let key = t.space.key_of(k).ok_or(FileError::corrupt(
                        "auxiliary bits",
                        "a key names a missing entry",
                    ))?;
                    give(&mut t, key, bits)?;
                }
            }
            None => {
                for &(x, key) in &table {
                    let aux = base.object(x).map_or(0, |o| o.aux);
                    if aux != 0 {
                        give(&mut t, key, aux)?;
                    }
                }
            }
        }
        let mut committed = Vec::new();
        room(&mut committed, self.committed.len())?;
        for &k in &self.committed {
            committed.push(t.space.key_of(k).ok_or(FileError::corrupt(
                "committed",
                "a key names a missing entry",
            ))?);
        }
        let roots = self.roots.into_iter().collect::<BTreeMap<_, _>>();
        let [
            copies,
            allocations,
            lookups,
            patches,
            becomes,
            collections,
            collected,
        ] = self.counters;
        let stats = TenantStats {
            private_objects: objects,
            private_bytes,
            copies,
            allocations,
            becomes,
            collections,
            collected,
            ..TenantStats::default()
        };
        // A tenant with nothing of its own and no history stays as light as a fresh fork.
        if !roots.is_empty() || stats != TenantStats::default() || lookups != 0 || patches != 0 {
            let cold = t.cold_mut();
            cold.roots = roots;
            cold.stats = stats;
            cold.reads.lookups.set(lookups);
            cold.reads.patches.set(patches);
        }
        if !committed.is_empty() {
            t.cold_mut().committed = committed;
        }
        if let Some(reads) = self.reads {
            // Recording again, under the host's policy, with what was read before.
            t.start_recording();
            if let Some((set, _)) = t.cold.as_mut().and_then(|c| c.recording.as_mut()) {
                let set = set.get_mut();
                set.try_reserve(reads.len())
                    .map_err(|_| refused::<u32>(reads.len()))?;
                set.extend(reads);
            }
        }
        Ok(Unmarked { tenant: t, table })
    }
}

/// A restored tenant whose table's entries are not diverted yet: a divert sets a shared
/// mark, which is never cleared and slows every tenant's reads of that object, so it is the
/// restore's last step, after everything that can refuse it (a host plugin's restore
/// included). Until then the tenant is nobody's to read.
struct Unmarked {
    tenant: Tenant,
    /// Each diverted base object with the key of the entry standing for it, checked
    /// ([`Parts::check`]: in range, each once, each entry saved).
    table: Vec<(ObjectIndex, cowheap_heap::PrivateKey)>,
}

impl Unmarked {
    /// The tenant, its table's entries diverted. Allocates nothing: the table's room was
    /// taken with the tenant.
    ///
    /// # Errors
    /// A corrupt table if an object is diverted twice ([`Parts::check`] refused that
    /// before; nothing here is left half done that a refusal then would undo).
    fn divert(self) -> Result<Tenant, RestoreError> {
        let Unmarked { mut tenant, table } = self;
        let t = &mut tenant;
        for (x, key) in table {
            let marks = match &mut t.filter {
                None => MarkTarget::Shared(&t.marks, t.lane),
                Some(f) => MarkTarget::Private(f),
            };
            t.table
                .divert(marks, x, key)
                .map_err(|_| FileError::corrupt("table", "a base object is diverted twice"))?;
        }
        Ok(tenant)
    }
}

/// The generation of `key` in a generation list of 4 little-endian bytes per key.
fn generation_at(gens: &[u8], key: u32) -> Option<u32> {
    let at = usize::try_from(key).ok()?.checked_mul(4)?;
    let b = gens.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// The generation list: a count, then a u32 per key, each within a reference's width.
fn read_generations<'a>(r: &mut Reader<'a>) -> FileResult<&'a [u8]> {
    let n = r.count(4, "generations")?;
    let bytes = r.take(n.saturating_mul(4), "generations")?;
    let too_wide = bytes
        .chunks_exact(4)
        .any(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) > GENERATION_MASK);
    if too_wide {
        return Err(FileError::corrupt(
            "generations",
            "a generation is wider than a reference holds",
        ));
    }
    Ok(bytes)
}

/// The entries, keys ascending below `n_gens`.
fn read_entries(r: &mut Reader<'_>, n_gens: usize) -> Result<Vec<(u32, Entry)>, RestoreError> {
    // Each entry takes at least 13 bytes (a forwarder). The vector grows as entries are
    // read rather than being sized by the count.
    let n = r.count(13, "entries")?;
    let mut entries: Vec<(u32, Entry)> = Vec::new();
    room(&mut entries, n.min(1024))?;
    for _ in 0..n {
        let key = r.u32("entry key")?;
        let below = usize::try_from(key).is_ok_and(|k| k < n_gens);
        if !below || entries.last().is_some_and(|(k, _)| *k >= key) {
            return Err(FileError::corrupt(
                "entries",
                "keys are not ascending below the generations",
            )
            .into());
        }
        let entry = match r.take(1, "entry kind")?[0] {
            0 => Entry::Object(read_body(r)?),
            1 => {
                let target = Word::from_bits(r.u64("forwarder target")?);
                if target.as_private().is_some_and(|k| k.key() == key) {
                    return Err(FileError::corrupt(
                        format!("entry {key}"),
                        "a forwarder to itself",
                    )
                    .into());
                }
                Entry::Forwarded(target)
            }
            2 => Entry::Stub(r.u64("stub segment")?),
            _ => return Err(FileError::corrupt("entries", "unknown entry kind").into()),
        };
        room(&mut entries, 1)?;
        entries.push((key, entry));
    }
    Ok(entries)
}

/// An object's body: class, format, hash, sizes, slots and bytes.
fn read_body(r: &mut Reader<'_>) -> Result<Body, RestoreError> {
    let class = Word::from_bits(r.u64("class")?);
    let format = Format::from_code(r.take(1, "format")?[0])
        .ok_or(FileError::corrupt("entries", "unknown format code"))?;
    let hash = r.u32("hash")?;
    let n_slots = r.u32("slot count")? as usize;
    let n_bytes = r.u32("byte count")? as usize;
    if !format.fits(ObjectSize {
        slots: n_slots,
        bytes: n_bytes,
    }) {
        return Err(FileError::corrupt("entries", "a size does not fit its format").into());
    }
    // Both sizes are checked against the bytes that remain by `take` before anything is
    // allocated for them, and the memory is reserved fallibly.
    let slots = r.take(n_slots.saturating_mul(8), "slots")?;
    let slots = try_boxed(
        n_slots,
        slots.chunks_exact(8).map(|c| {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            Word::from_bits(w)
        }),
    )?;
    let bytes = try_boxed(n_bytes, r.take(n_bytes, "bytes")?.iter().copied())?;
    Ok(Body {
        class,
        format,
        hash,
        // Not saved: a copy's are its base object's, set when the table is restored.
        aux: 0,
        slots,
        bytes,
    })
}
