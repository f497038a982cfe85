//! The embedded default: a store in a local directory, safe for many processes on one
//! machine.
//!
//! ```text
//! <root>/COWHEAP-STORE                 marker and format version
//! <root>/blobs/<2 hex>/<64 hex>        a blob: "COWBLOB\0", its length (u64 LE), its bytes
//! <root>/bases/<fingerprint hex>       the digest of the blob holding that base's image file
//! <root>/tenants/<name>.rec            a tenant's record (text naming the tenant, with a
//!                                      BLAKE3 check line)
//! <root>/tenants/<name>.lock           the lock that serialises changes to that record
//! <root>/principals/<name>             the BLAKE3 digest of a principal's secret
//! <root>/layers/<2 hex>/<64 hex>       a version's layer blob, framed as a blob
//! <root>/versions/<fp hex>/<number>    version <number> (20 digits) of base <fp>'s history:
//!                                      its layer's digest and committer, with a check line
//! <root>/committers/<fp hex>/<name>    present: principal <name> may commit versions of <fp>
//! <root>/segments/<name>/<16 hex>      segment <id> (16 lower-case hex digits; no other
//!                                      spelling is listed) of a tenant swapped out: its
//!                                      tenant, its id and the digest of the blob holding its
//!                                      file, with a check line
//! <root>/tmp/                          temporary files, renamed into place
//! <root>/gc.lock                       the blob lock: shared by writes, exclusive for a sweep
//! ```
//!
//! **Segments** are blobs like states. A segment's entry is linked (never replacing) under
//! the tenant's record lock after the fence is checked, so an id is written once; it is
//! removed under the lock too, fenced.
//!
//! **Versions** are written compare-and-set: the layer blob first, then the version's
//! record, written whole to a temporary file and fsynced, is *linked* (`link(2)`, which
//! never replaces) to its name, after checking that the version below it exists. Of many
//! processes linking one number exactly one succeeds, and since records are never removed
//! a version exists only over an existing one: the chain is gapless. A crash leaves the
//! record there whole or not at all (and perhaps a layer blob no record names, which
//! `get_layer` does not answer: it checks the record of the history and number the layer's
//! bytes name).
//!
//! Every file is written whole to a temporary file in `tmp/`, fsynced, renamed over its
//! place and the directory fsynced: a crash leaves the old file or the new one, never a torn
//! one. A record changes only under an exclusive `flock` of its lock file, held across
//! read-check-write, so a claim (read the record, check owner and lease, write epoch + 1) is
//! one atomic step between threads and processes alike. Blobs need no lock: a blob's name is
//! its digest, and two writers of one name write the same bytes.
//!
//! **Sweeping blobs.** A blob is named by a record only after it is written, so a sweep
//! ([`Store::sweep_blobs`]) must not see a blob between the two. Every write that stores a
//! blob (a base, a state, a layer, a segment) holds a shared `flock` of `gc.lock` from
//! before the blob until after the file that names it; the sweep holds it exclusively while
//! it reads every name (bases' pointers, records, segments' entries, version records) and
//! removes the blobs none names. So a blob the sweep removes is one no write will name: a
//! state a later one replaced, a segment faulted back in, the layer of a version write that
//! lost its race, or what a write killed before its record left.
//!
//! Every file is read only if it is a regular file, opened without blocking (a FIFO or a
//! device in a file's place is `Damaged`, and cannot hang the reader); so is a tenant's
//! lock file, opened to write. A blob is read whole;
//! every other file (a record, a segment's entry, a version record, a principal's file, a
//! base's pointer) is read up to a cap of 64 KiB, and a longer one is `Damaged` without its
//! length ever being reserved.

use crate::store::{Access, BlobStats, Claim, Store, TenantRecord, VersionRecord, check_layer};
use crate::{
    Clock, Digest, Epoch, Millis, NOBODY, NodeName, PrincipalName, Result, StoreError, TenantName,
    names::{
        MAX_SEGMENT_ID, MAX_VERSION, check_principal, check_secret, check_segment_id,
        fingerprint_hex, parse_fingerprint, stored_name,
    },
};
use cowheap_heap::Fingerprint;
use cowheap_segment::swap::SegmentId;
use fs4::fs_std::FileExt;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MARKER: &str = "COWHEAP-STORE";
const MARKER_TEXT: &str = "cowheap-store 1\n";
const BLOB_MAGIC: [u8; 8] = *b"COWBLOB\0";
const BLOB_HEADER: usize = 16;
/// The first line of a tenant record: format 2, whose second line names the tenant.
const RECORD_HEAD: &str = "cowheap-tenant 2";
/// The first line of a tenant record of format 1, which did not name its tenant. Such a
/// record is refused as damaged: nothing in it tells whose it is, so it could be another
/// tenant's copied under this name, which is what naming the tenant exists to refuse.
const RECORD_HEAD_UNNAMED: &str = "cowheap-tenant 1";
const VERSION_HEAD: &str = "cowheap-version 1";
/// The first line of a segment's entry: format 2, whose next lines name its tenant and id.
const SEGMENT_HEAD: &str = "cowheap-segment 2";
/// The first line of a segment's entry of format 1, which named only its blob. Such an
/// entry is still read, as the segment whose name it has: refusing it would strand the
/// segments of every tenant swapped out before; every entry written now is of format 2.
const SEGMENT_HEAD_UNNAMED: &str = "cowheap-segment 1";
const BLOBS: &str = "blobs";
/// The blob lock (see the module doc).
const GC_LOCK: &str = "gc.lock";
const LAYERS: &str = "layers";

/// A store in a local directory. See the module doc for the layout and the protocol.
///
/// ```
/// use cowheap_store::{Access, LocalStore, Store, SystemClock};
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = LocalStore::init(dir.path(), Arc::new(SystemClock), Access::Operator).unwrap();
/// assert!(store.tenants().unwrap().is_empty());
/// ```
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    access: Access,
}

impl LocalStore {
    /// Makes a store in `root` (created if missing; an existing store is opened as it is)
    /// and opens it.
    ///
    /// # Errors
    /// [`StoreError::NotAStore`] if `root` holds a marker that is not this store's (nothing
    /// is made there); [`StoreError::Io`] if the directories cannot be made;
    /// [`StoreError::BadCredentials`] as for [`LocalStore::open`].
    pub fn init(root: &Path, clock: Arc<dyn Clock>, access: Access) -> Result<LocalStore> {
        // A marker that is not this store's is refused before anything is made beside it.
        let present = marker(root)?;
        for d in [
            "blobs",
            "bases",
            "tenants",
            "principals",
            "layers",
            "versions",
            "committers",
            "tmp",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        if !present {
            write_atomic(
                &root.join("tmp"),
                &root.join(MARKER),
                MARKER_TEXT.as_bytes(),
            )?;
        }
        LocalStore::open(root, clock, access)
    }

    /// Opens the store in `root`, checking a principal's credentials.
    ///
    /// # Errors
    /// [`StoreError::NotAStore`] if `root` holds no store; [`StoreError::BadCredentials`] if
    /// the principal is unknown or its secret wrong.
    pub fn open(root: &Path, clock: Arc<dyn Clock>, access: Access) -> Result<LocalStore> {
        if !marker(root)? {
            return Err(StoreError::NotAStore {
                what: format!("{}: no marker file", root.display()),
            });
        }
        let store = LocalStore {
            root: root.to_owned(),
            clock,
            access,
        };
        if let Access::Principal { name, secret } = &store.access {
            let p = store.root.join("principals").join(name.as_str());
            let stored = read_optional(&p)?;
            let good = stored.is_some_and(|s| {
                crate::names::parse_hex32(String::from_utf8_lossy(&s).trim())
                    .is_some_and(|h| blake3::Hash::from(h) == blake3::hash(secret.as_bytes()))
            });
            if !good {
                return Err(StoreError::BadCredentials {
                    principal: name.clone(),
                });
            }
        }
        store.sweep_tmp(STALE_TMP);
        Ok(store)
    }

    /// Removes temporary files older than `age`: what processes killed mid-write left. A
    /// younger one may be another process's write in progress, so it is left alone. Best
    /// effort: a file that cannot be read or removed stays.
    fn sweep_tmp(&self, age: std::time::Duration) {
        let Ok(entries) = fs::read_dir(self.tmp()) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d > age);
            if old && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds blob `digest` (for tests that damage it on purpose).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.path_in(BLOBS, digest)
    }

    /// The file that holds layer blob `digest` (for tests that damage it on purpose).
    pub fn layer_path(&self, digest: &Digest) -> PathBuf {
        self.path_in(LAYERS, digest)
    }

    fn path_in(&self, kind: &str, digest: &Digest) -> PathBuf {
        let h = digest.to_hex();
        self.root.join(kind).join(&h[..2]).join(h)
    }

    fn versions_dir(&self, origin: &Fingerprint) -> PathBuf {
        self.root.join("versions").join(fingerprint_hex(origin))
    }

    fn has_base(&self, fp: &Fingerprint) -> Result<bool> {
        Ok(read_optional(&self.root.join("bases").join(fingerprint_hex(fp)))?.is_some())
    }

    /// The newest version of `origin`'s history: 0 if none was committed. Time:
    /// O(versions).
    fn newest(&self, origin: &Fingerprint) -> Result<u64> {
        Ok(list_dir(&self.versions_dir(origin))?
            .iter()
            .filter_map(|n| parse_version_name(n))
            .max()
            .unwrap_or(0))
    }

    fn load_version(&self, origin: Fingerprint, number: u64) -> Result<VersionRecord> {
        let p = self.versions_dir(&origin).join(version_name(number));
        let bytes = read_optional(&p)?.ok_or_else(|| StoreError::Damaged {
            what: format!("version {number} of base {origin}"),
            problem: "its record is gone",
        })?;
        parse_version(origin, number, &bytes)
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn record_path(&self, t: &TenantName) -> PathBuf {
        self.root.join("tenants").join(format!("{t}.rec"))
    }

    fn operator_only(&self, op: &'static str, what: impl FnOnce() -> String) -> Result<()> {
        match &self.access {
            Access::Operator => Ok(()),
            Access::Principal { name, .. } => Err(StoreError::Denied {
                principal: name.clone(),
                op,
                what: what(),
            }),
        }
    }

    /// Takes the tenant's record lock: an exclusive `flock` ([`lock_file`]), released when
    /// the file drops.
    fn lock(&self, t: &TenantName) -> Result<File> {
        lock_file(&self.root.join("tenants").join(format!("{t}.lock")), true)
    }

    /// Takes the blob lock (see the module doc): shared for a write that stores a blob and
    /// then names it, exclusive for a sweep. Released when the file drops.
    fn blob_lock(&self, exclusive: bool) -> Result<File> {
        lock_file(&self.root.join(GC_LOCK), exclusive)
    }
}

/// Whether `root` holds this store's marker: `false` if it holds none,
/// [`StoreError::NotAStore`] if it holds another (another format's, another program's, or
/// a file that is no regular file or is far too long).
fn marker(root: &Path) -> Result<bool> {
    let marker = root.join(MARKER);
    match read_optional(&marker) {
        Ok(Some(s)) if s == MARKER_TEXT.as_bytes() => Ok(true),
        Ok(Some(_)) | Err(StoreError::Damaged { .. }) => Err(StoreError::NotAStore {
            what: format!("{}: unknown marker", marker.display()),
        }),
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens lock file `p` (made if missing) and takes an exclusive or a shared `flock` of it,
/// released when the file drops. The file is opened without blocking and must be a regular
/// file, as every file the store reads: a FIFO in its place (which an open for writing would
/// wait on for a reader, for ever) is an error at once, and so is a device or a directory.
fn lock_file(p: &Path, exclusive: bool) -> Result<File> {
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let f = options.open(p).map_err(|e| StoreError::io(p, e))?;
    let m = f.metadata().map_err(|e| StoreError::io(p, e))?;
    if !m.is_file() {
        return Err(StoreError::Damaged {
            what: p.display().to_string(),
            problem: "not a regular file",
        });
    }
    // fs4's locks (`flock`), named so: std's `File` has methods of these names too.
    if exclusive {
        FileExt::lock_exclusive(&f)
    } else {
        FileExt::lock_shared(&f)
    }
    .map_err(|e| StoreError::io(p, e))?;
    Ok(f)
}

impl LocalStore {
    /// [`Store::put_version`], under the blob lock the caller holds.
    fn write_version(
        &self,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        check_layer(origin, number, layer)?;
        if !self.has_base(&origin)? {
            return Err(StoreError::BaseMissing {
                fingerprint: origin,
            });
        }
        if let Access::Principal { name, .. } = &self.access {
            let right = self
                .root
                .join("committers")
                .join(fingerprint_hex(&origin))
                .join(name.as_str());
            if read_optional(&right)?.is_none() {
                return Err(StoreError::NotCommitter {
                    principal: name.clone(),
                    base: origin,
                });
            }
        }
        let dir = self.versions_dir(&origin);
        let conflict = || -> StoreError {
            match self.newest(&origin) {
                Ok(newest) => StoreError::VersionConflict {
                    origin,
                    number,
                    newest,
                },
                Err(e) => e,
            }
        };
        // Cheap checks first, so a writer that lost the race writes no blob; the link
        // below is what decides.
        let below = dir.join(version_name(number - 1));
        // No history reaches a number past the largest a store keeps.
        if number > MAX_VERSION
            || (number > 1 && !below.exists())
            || dir.join(version_name(number)).exists()
        {
            return Err(conflict());
        }
        let digest = self.put_blob_in(LAYERS, layer)?;
        let rec = VersionRecord {
            origin,
            number,
            layer: digest,
            committed_by: self.access.principal_name().cloned(),
        };
        make_dir_durably(&dir)?;
        // The version below exists (records are never removed), so a won link keeps the
        // chain gapless.
        if number > 1 && !below.exists() {
            return Err(conflict());
        }
        if link_new(
            &self.tmp(),
            &dir.join(version_name(number)),
            format_version(&rec).as_bytes(),
        )? {
            Ok(rec)
        } else {
            Err(conflict())
        }
    }

    /// Every blob digest and every layer digest something in the store names: the bases'
    /// pointers, the tenants' records, the segments' entries and the version records.
    /// Under the exclusive blob lock. A damaged file is an error: what it names cannot be
    /// known, so nothing may be removed.
    fn named_blobs(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        // Only files the store answers for are read: a name no fingerprint, tenant, id or
        // number spells is none of its own, and reaches no blob.
        for name in list_dir(&self.root.join("bases"))? {
            if let Ok(fp) = parse_fingerprint(&name)
                && fingerprint_hex(&fp) == name
            {
                let p = self.root.join("bases").join(&name);
                if let Some(named) = read_optional(&p)? {
                    blobs.insert(Digest::from_hex(String::from_utf8_lossy(&named).trim())?);
                }
            }
        }
        for name in list_dir(&self.root.join("tenants"))? {
            if let Some(t) = name
                .strip_suffix(".rec")
                .and_then(|n| TenantName::new(n).ok())
                && let Some((rec, _)) = self.load(&t)?
            {
                blobs.extend(rec.state);
            }
        }
        for dir in list_dir(&self.root.join("segments"))? {
            let Ok(t) = TenantName::new(&dir) else {
                continue;
            };
            for name in list_dir(&self.segments_dir(&t))? {
                if let Some(id) = parse_segment_name(&name) {
                    blobs.extend(self.segment_digest(&t, id)?);
                }
            }
        }
        for dir in list_dir(&self.root.join("versions"))? {
            let Ok(origin) = parse_fingerprint(&dir) else {
                continue;
            };
            if fingerprint_hex(&origin) != dir {
                continue;
            }
            for name in list_dir(&self.versions_dir(&origin))? {
                if let Some(number) = parse_version_name(&name)
                    && version_name(number) == name
                {
                    layers.insert(self.load_version(origin, number)?.layer);
                }
            }
        }
        Ok((blobs, layers))
    }

    /// The stored record, with its grants.
    fn load(&self, t: &TenantName) -> Result<Option<(TenantRecord, Vec<PrincipalName>)>> {
        let p = self.record_path(t);
        match read_optional(&p)? {
            None => Ok(None),
            Some(bytes) => parse_record(t, &bytes).map(Some),
        }
    }

    /// The record, if this access may see it: a principal not entitled to the tenant is
    /// told it is missing, so nothing names another tenant's data to it. A record that
    /// cannot be loaded, for whatever reason (it does not parse, it cannot be read, its
    /// buffer cannot be had), is that error to the operator and missing to a principal,
    /// whose grant in it cannot be read: so a bad record of another's tenant neither names
    /// that tenant or its path to it nor breaks its listing (a principal's own unreadable
    /// record is missing to it too; the operator sees the error).
    fn load_visible(&self, t: &TenantName) -> Result<(TenantRecord, Vec<PrincipalName>)> {
        let missing = || StoreError::TenantMissing { tenant: t.clone() };
        let loaded = self.load(t);
        if let Access::Principal { name, .. } = &self.access {
            return match loaded {
                // As PostgreSQL's row-level security answers: the tenant is not there for it.
                Ok(Some((rec, grants))) if grants.contains(name) => Ok((rec, grants)),
                // No grant to it that can be read: not there for it either.
                Ok(_) | Err(_) => Err(missing()),
            };
        }
        loaded?.ok_or_else(missing)
    }

    fn save(&self, rec: &TenantRecord, grants: &[PrincipalName]) -> Result<()> {
        write_atomic(
            &self.tmp(),
            &self.record_path(&rec.tenant),
            format_record(rec, grants).as_bytes(),
        )
    }

    /// Writes a blob by its digest, unless a whole one is there already.
    fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        self.put_blob_in(BLOBS, bytes)
    }

    /// Writes a blob of `kind` (`blobs` or `layers`) by its digest, unless a whole one is
    /// there already: a damaged one is replaced, as for every blob.
    fn put_blob_in(&self, kind: &str, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.path_in(kind, &digest);
        let whole = BLOB_HEADER as u64 + bytes.len() as u64;
        // Same name and length: the same bytes, unless damaged since. Dedup hits are rare
        // for states and a base is put once, so the existing copy is read and checked, and
        // a damaged one is replaced by these bytes.
        let dir = path.parent().unwrap_or(&self.root);
        // The blob and its directory entries are made durable before a record may name
        // them, also when another process made them and has not synced them yet (it renamed
        // the blob, or made the directory, and is about to): a file, its directory and the
        // directory's own entry.
        let sync = |p: &Path| {
            File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(p, e))
        };
        if fs::metadata(&path).is_ok_and(|m| m.len() == whole)
            && self.get_blob_in(kind, &digest).is_ok()
        {
            sync(&path)?;
            sync(dir)?;
            if let Some(parent) = dir.parent() {
                sync(parent)?;
            }
            return Ok(digest);
        }
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        // The directory's own entry must survive a crash, or a record could name a blob
        // whose directory is gone: synced whoever made it.
        if let Some(parent) = dir.parent() {
            sync(parent)?;
        }
        // The header and the bytes written in turn: no copy of a blob is made to frame it.
        let mut header = [0u8; BLOB_HEADER];
        header[..BLOB_MAGIC.len()].copy_from_slice(&BLOB_MAGIC);
        header[BLOB_MAGIC.len()..].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        write_atomic_parts(&self.tmp(), &path, &[&header, bytes])?;
        Ok(digest)
    }

    /// Reads a blob and checks its length and digest.
    fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.get_blob_in(BLOBS, digest)
    }

    /// Reads a blob of `kind` and checks its length and digest.
    fn get_blob_in(&self, kind: &str, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path_in(kind, digest);
        let mut bytes =
            read_blob_optional(&path)?.ok_or(StoreError::BlobMissing { digest: *digest })?;
        let what = || format!("blob {digest}");
        if bytes.len() < BLOB_HEADER || bytes[..8] != BLOB_MAGIC {
            return Err(StoreError::Damaged {
                what: what(),
                problem: "no blob header",
            });
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let expected = u64::from_le_bytes(len);
        let found = (bytes.len() - BLOB_HEADER) as u64;
        if found != expected {
            return Err(StoreError::BlobTruncated {
                digest: *digest,
                expected,
                found,
            });
        }
        bytes.drain(..BLOB_HEADER);
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::BlobCorrupt {
                digest: *digest,
                found: actual,
            });
        }
        Ok(bytes)
    }

    /// [`StoreError::Damaged`] if `blobs` or `layers` is there but no plain directory (a
    /// link, which could lead out of the store, or a file): what is in it cannot be known
    /// to be the store's blobs.
    fn check_blob_dirs(&self) -> Result<()> {
        for kind in [BLOBS, LAYERS] {
            let dir = self.root.join(kind);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => {
                    return Err(StoreError::Damaged {
                        what: dir.display().to_string(),
                        problem: "not a directory",
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&dir, e)),
            }
        }
        Ok(())
    }

    /// The blobs of `kind` (`blobs` or `layers`) as the store made them, each with its path
    /// and its file's length: in the kind's plain subdirectories (not links, which could
    /// lead into the other kind's directory or out of the store), the regular files named
    /// as a blob at that blob's own path. A link, a stray file or directory is no blob. The
    /// sweep removes from these and the operator's count counts them, so the two agree.
    /// Time: O(blobs of the kind).
    fn blob_files(&self, kind: &str) -> Result<Vec<(Digest, PathBuf, u64)>> {
        let dir = self.root.join(kind);
        let mut out = Vec::new();
        for sub in list_dir(&dir)? {
            let sub = dir.join(&sub);
            if !fs::symlink_metadata(&sub).is_ok_and(|m| m.file_type().is_dir()) {
                continue;
            }
            for name in list_dir(&sub)? {
                // A file that is no blob by its name is none.
                let Ok(digest) = Digest::from_hex(&name) else {
                    continue;
                };
                let p = self.path_in(kind, &digest);
                if p != sub.join(&name) {
                    continue;
                }
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.file_type().is_file() => out.push((digest, p, m.len())),
                    Ok(_) => {}
                    // Gone since the listing (a sweep in another process).
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(&p, e)),
                }
            }
        }
        Ok(out)
    }

    fn segments_dir(&self, t: &TenantName) -> PathBuf {
        self.root.join("segments").join(t.as_str())
    }

    fn segment_path(&self, t: &TenantName, id: SegmentId) -> PathBuf {
        self.segments_dir(t).join(segment_name(id))
    }

    /// The digest segment `id`'s entry names, if the tenant has one.
    fn segment_digest(&self, t: &TenantName, id: SegmentId) -> Result<Option<Digest>> {
        let Some(bytes) = read_optional(&self.segment_path(t, id))? else {
            return Ok(None);
        };
        let bad = |problem| StoreError::Damaged {
            what: format!("segment {id} of tenant {t}"),
            problem,
        };
        let body = unseal(&bytes).map_err(bad)?;
        let mut lines = body.lines();
        match lines.next() {
            Some(SEGMENT_HEAD) => {
                // An entry copied under another tenant's directory or to another id is not
                // this segment's.
                if lines.next().and_then(|l| l.strip_prefix("tenant ")) != Some(t.as_str()) {
                    return Err(bad("it is the entry of another tenant's segment"));
                }
                if lines.next().and_then(|l| l.strip_prefix("id ")) != Some(&segment_name(id)) {
                    return Err(bad("it is the entry of another segment"));
                }
            }
            Some(SEGMENT_HEAD_UNNAMED) => {}
            _ => return Err(bad("unknown header")),
        }
        let digest = lines
            .next()
            .and_then(|l| l.strip_prefix("blob "))
            .ok_or_else(|| bad("no blob line"))?;
        if lines.next().is_some() {
            return Err(bad("unknown line"));
        }
        Digest::from_hex(digest).map(Some)
    }

    /// Runs `f` on the record under the tenant's record lock if `claim` is the record's live
    /// claim.
    fn fenced<T>(&self, claim: &Claim, f: impl FnOnce(&TenantRecord) -> Result<T>) -> Result<T> {
        if !self.record_path(&claim.tenant).exists() {
            return Err(StoreError::TenantMissing {
                tenant: claim.tenant.clone(),
            });
        }
        let _lock = self.lock(&claim.tenant)?;
        let (rec, _) = self.load_visible(&claim.tenant)?;
        check_fence(&rec, claim)?;
        f(&rec)
    }

    /// Read-check-write of one record under its lock.
    fn update<T>(
        &self,
        t: &TenantName,
        f: impl FnOnce(&mut TenantRecord) -> Result<T>,
    ) -> Result<T> {
        // No lock file is made for a tenant that does not exist.
        if !self.record_path(t).exists() {
            return Err(StoreError::TenantMissing { tenant: t.clone() });
        }
        let _lock = self.lock(t)?;
        let (mut rec, grants) = self.load_visible(t)?;
        let out = f(&mut rec)?;
        self.save(&rec, &grants)?;
        Ok(out)
    }
}

/// Checks that `claim` is the record's live claim.
pub(crate) fn check_fence(rec: &TenantRecord, claim: &Claim) -> Result<()> {
    if rec.epoch == claim.epoch && rec.owner.as_ref() == Some(&claim.node) {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            tenant: rec.tenant.clone(),
            held: claim.epoch,
            current: rec.epoch,
        })
    }
}

/// Checks that the record's tenant is of the history of `origin`, as a version write
/// fenced by its claim requires.
pub(crate) fn check_history(rec: &TenantRecord, origin: Fingerprint) -> Result<()> {
    if rec.base == origin {
        Ok(())
    } else {
        Err(StoreError::LayerMismatch {
            problem: "the claim is of a tenant of another base",
        })
    }
}

/// The latest a lease may end: the largest `bigint`, so that a lease expiry is a value both
/// backends store (PostgreSQL keeps it in a `bigint` column), and the same one.
pub(crate) const LATEST_LEASE_EXPIRY: Millis = Millis(i64::MAX as u64);

/// When a lease of `lease_ms` taken at `now` ends: `now + lease_ms`, capped at
/// [`LATEST_LEASE_EXPIRY`]; [`StoreError::ClockOutOfRange`] for a `now` at the cap or past
/// it, where the lease would end before it began. Both backends take every lease's expiry
/// from here.
pub(crate) fn lease_end(now: Millis, lease_ms: u64) -> Result<Millis> {
    if now >= LATEST_LEASE_EXPIRY {
        return Err(StoreError::ClockOutOfRange { now });
    }
    Ok(now.plus(lease_ms).min(LATEST_LEASE_EXPIRY))
}

/// The claim step shared by the backends' logic: checks owner and lease, moves the epoch.
pub(crate) fn take(
    rec: &mut TenantRecord,
    node: &NodeName,
    now: Millis,
    lease_ms: u64,
) -> Result<Claim> {
    let expiry = lease_end(now, lease_ms)?;
    if let Some(owner) = &rec.owner
        && rec.lease_expiry > now
    {
        return Err(StoreError::Held {
            tenant: rec.tenant.clone(),
            owner: owner.clone(),
            epoch: rec.epoch,
            lease_expiry: rec.lease_expiry,
        });
    }
    // An epoch at the end of its range (a damaged or forged record) cannot move on: fencing
    // would break if it wrapped. The bound is a database bigint's, so both backends agree.
    rec.epoch = match rec.epoch.0.checked_add(1) {
        Some(e) if i64::try_from(e).is_ok() => Epoch(e),
        _ => {
            return Err(StoreError::Damaged {
                what: format!("the record of tenant {}", rec.tenant),
                problem: "its epoch cannot move on",
            });
        }
    };
    rec.owner = Some(node.clone());
    rec.lease_expiry = expiry;
    Ok(Claim {
        tenant: rec.tenant.clone(),
        node: node.clone(),
        epoch: rec.epoch,
        lease_expiry: rec.lease_expiry,
        base: rec.base,
        state: rec.state,
    })
}

impl Store for LocalStore {
    fn put_base(&self, fingerprint: Fingerprint, image: &[u8]) -> Result<Digest> {
        self.operator_only("store", || format!("base {fingerprint}"))?;
        let _blobs = self.blob_lock(false)?;
        let digest = self.put_blob(image)?;
        let p = self.root.join("bases").join(fingerprint_hex(&fingerprint));
        // A pointer that is damaged (no regular file, far too long) is replaced, as a
        // damaged blob is.
        match read_optional(&p) {
            Ok(Some(named)) if named == digest.to_hex().as_bytes() => {}
            Ok(_) | Err(StoreError::Damaged { .. }) => {
                write_atomic(&self.tmp(), &p, digest.to_hex().as_bytes())?;
            }
            Err(e) => return Err(e),
        }
        Ok(digest)
    }

    fn get_base(&self, fingerprint: Fingerprint) -> Result<Vec<u8>> {
        let p = self.root.join("bases").join(fingerprint_hex(&fingerprint));
        let named = read_optional(&p)?.ok_or(StoreError::BaseMissing { fingerprint })?;
        let digest = Digest::from_hex(String::from_utf8_lossy(&named).trim())?;
        self.get_blob(&digest)
    }

    fn bases(&self) -> Result<Vec<Fingerprint>> {
        let mut out = Vec::new();
        // Only a pointer under the name the store gives it ([`fingerprint_hex`]): one under
        // another spelling (upper case) is no base's, and would list a base twice.
        for name in list_dir(&self.root.join("bases"))? {
            if let Ok(f) = parse_fingerprint(&name)
                && fingerprint_hex(&f) == name
            {
                out.push(f);
            }
        }
        out.sort_by_key(|f| f.0);
        Ok(out)
    }

    fn add_principal(&self, name: &PrincipalName, secret: &str) -> Result<()> {
        self.operator_only("add", || format!("principal {name}"))?;
        check_secret(name, secret)?;
        check_principal(name)?;
        let p = self.root.join("principals").join(name.as_str());
        write_atomic(
            &self.tmp(),
            &p,
            blake3::hash(secret.as_bytes()).to_hex().as_bytes(),
        )
    }

    fn create_tenant(
        &self,
        tenant: &TenantName,
        base: Fingerprint,
        principal: Option<&PrincipalName>,
    ) -> Result<TenantRecord> {
        self.operator_only("create", || format!("tenant {tenant}"))?;
        let bp = self.root.join("bases").join(fingerprint_hex(&base));
        if read_optional(&bp)?.is_none() {
            return Err(StoreError::BaseMissing { fingerprint: base });
        }
        let _lock = self.lock(tenant)?;
        if self.load(tenant)?.is_some() {
            return Err(StoreError::TenantExists {
                tenant: tenant.clone(),
            });
        }
        let rec = TenantRecord {
            tenant: tenant.clone(),
            base,
            state: None,
            owner: None,
            epoch: Epoch(0),
            lease_expiry: Millis(0),
        };
        let grants: Vec<_> = principal.into_iter().cloned().collect();
        self.save(&rec, &grants)?;
        Ok(rec)
    }

    fn record(&self, tenant: &TenantName) -> Result<TenantRecord> {
        self.load_visible(tenant).map(|(r, _)| r)
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        let mut out = Vec::new();
        for name in list_dir(&self.root.join("tenants"))? {
            let Some(stem) = name.strip_suffix(".rec") else {
                continue;
            };
            let Ok(t) = TenantName::new(stem) else {
                continue;
            };
            match self.load_visible(&t) {
                Ok((r, _)) => out.push(r),
                Err(StoreError::Denied { .. } | StoreError::TenantMissing { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(out)
    }

    fn claim(&self, tenant: &TenantName, node: &NodeName, lease_ms: u64) -> Result<Claim> {
        self.update(tenant, |rec| take(rec, node, self.clock.now(), lease_ms))
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    fn renew(&self, claim: &Claim, lease_ms: u64) -> Result<Claim> {
        self.update(&claim.tenant, |rec| {
            check_fence(rec, claim)?;
            rec.lease_expiry = lease_end(self.clock.now(), lease_ms)?;
            Ok(Claim {
                lease_expiry: rec.lease_expiry,
                ..claim.clone()
            })
        })
    }

    fn write_state(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        // Check first, so a stale node does not even add a blob; check again under the lock.
        let (rec, _) = self.load_visible(&claim.tenant)?;
        check_fence(&rec, claim)?;
        let _blobs = self.blob_lock(false)?;
        let digest = self.put_blob(state)?;
        self.update(&claim.tenant, |rec| {
            check_fence(rec, claim)?;
            rec.state = Some(digest);
            Ok(digest)
        })
    }

    fn suspend(&self, claim: &Claim, state: &[u8]) -> Result<Digest> {
        let (rec, _) = self.load_visible(&claim.tenant)?;
        check_fence(&rec, claim)?;
        let _blobs = self.blob_lock(false)?;
        let digest = self.put_blob(state)?;
        self.update(&claim.tenant, |rec| {
            check_fence(rec, claim)?;
            rec.state = Some(digest);
            rec.owner = None;
            rec.lease_expiry = Millis(0);
            Ok(digest)
        })
    }

    fn release(&self, claim: &Claim) -> Result<()> {
        self.update(&claim.tenant, |rec| {
            check_fence(rec, claim)?;
            rec.owner = None;
            rec.lease_expiry = Millis(0);
            Ok(())
        })
    }

    fn read_state(&self, tenant: &TenantName, digest: Digest) -> Result<Vec<u8>> {
        let (rec, _) = self.load_visible(tenant)?;
        if rec.state != Some(digest) {
            return Err(StoreError::BlobMissing { digest });
        }
        self.get_blob(&digest)
    }

    fn blob_stats(&self) -> Result<BlobStats> {
        self.operator_only("count", || "blobs".to_owned())?;
        let mut s = BlobStats::default();
        // Layers are blobs too, kept apart (as PostgreSQL keeps them in the one table). Only
        // what a sweep walks is counted: a link or a stray file is no blob.
        self.check_blob_dirs()?;
        for kind in [BLOBS, LAYERS] {
            for (_, _, len) in self.blob_files(kind)? {
                s.count += 1;
                s.bytes += len.saturating_sub(BLOB_HEADER as u64);
            }
        }
        Ok(s)
    }

    fn sweep_blobs(&self) -> Result<BlobStats> {
        self.operator_only("sweep", || "blobs".to_owned())?;
        let _blobs = self.blob_lock(true)?;
        let (blobs, layers) = self.named_blobs()?;
        let mut removed = BlobStats::default();
        // Only what the store itself made is walked and removed ([`LocalStore::blob_files`]);
        // anything else is left alone. A `blobs` or `layers` that is no plain directory is
        // damage: nothing is removed.
        self.check_blob_dirs()?;
        for (kind, named) in [(BLOBS, &blobs), (LAYERS, &layers)] {
            for (digest, p, len) in self.blob_files(kind)? {
                if named.contains(&digest) {
                    continue;
                }
                match fs::remove_file(&p) {
                    Ok(()) => {
                        removed.count += 1;
                        removed.bytes += len.saturating_sub(BLOB_HEADER as u64);
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(&p, e)),
                }
            }
        }
        Ok(removed)
    }

    fn allow_commit(&self, base: Fingerprint, principal: &PrincipalName) -> Result<()> {
        self.operator_only("allow", || format!("commits to base {base}"))?;
        if !self.has_base(&base)? {
            return Err(StoreError::BaseMissing { fingerprint: base });
        }
        let dir = self.root.join("committers").join(fingerprint_hex(&base));
        make_dir_durably(&dir)?;
        write_atomic(&self.tmp(), &dir.join(principal.as_str()), b"")
    }

    fn committers(&self, base: Fingerprint) -> Result<Vec<PrincipalName>> {
        let dir = self.root.join("committers").join(fingerprint_hex(&base));
        let mut out: Vec<PrincipalName> = list_dir(&dir)?
            .into_iter()
            .filter_map(|n| PrincipalName::new(n).ok())
            .filter(|n| self.access.principal_name().is_none_or(|me| me == n))
            .collect();
        out.sort();
        Ok(out)
    }

    fn put_version(&self, origin: Fingerprint, number: u64, layer: &[u8]) -> Result<VersionRecord> {
        let _blobs = self.blob_lock(false)?;
        self.write_version(origin, number, layer)
    }

    fn put_version_claimed(
        &self,
        claim: &Claim,
        origin: Fingerprint,
        number: u64,
        layer: &[u8],
    ) -> Result<VersionRecord> {
        // The fence under the record's lock, which a claim takes too, before the layer blob
        // is stored: a stale node adds nothing.
        let _blobs = self.blob_lock(false)?;
        self.fenced(claim, |rec| {
            check_history(rec, origin)?;
            self.write_version(origin, number, layer)
        })
    }

    fn versions(&self, origin: Fingerprint, after: u64) -> Result<Vec<VersionRecord>> {
        if !self.has_base(&origin)? {
            return Err(StoreError::BaseMissing {
                fingerprint: origin,
            });
        }
        // The chain is gapless (a version is linked only over an existing one, and none is
        // removed), so the versions after `after` are found by probing up from it: O(new
        // versions), however long the history.
        let dir = self.versions_dir(&origin);
        let mut out = Vec::new();
        let mut n = after;
        while let Some(next) = n.checked_add(1).filter(|&next| next <= MAX_VERSION) {
            if !dir.join(version_name(next)).exists() {
                break;
            }
            out.push(self.load_version(origin, next)?);
            n = next;
        }
        Ok(out)
    }

    fn get_layer(&self, digest: Digest) -> Result<Vec<u8>> {
        let bytes = self.get_blob_in(LAYERS, &digest)?;
        // A layer blob is answered only if a version names it: one left by a version write
        // that failed, or that lost its number's race, is named by none. A layer names its
        // history and number (every version's layer passed `check_layer`), so the one
        // record that could name it is read, not every history's.
        let missing = || StoreError::BlobMissing { digest };
        let layer = match crate::store::decode_layer(&bytes) {
            Ok(layer) => layer,
            Err(e @ StoreError::OutOfMemory { .. }) => return Err(e),
            Err(_) => return Err(missing()),
        };
        let (origin, number) = (layer.origin, layer.version());
        drop(layer);
        let p = self.versions_dir(&origin).join(version_name(number));
        match read_optional(&p)? {
            Some(rec) if parse_version(origin, number, &rec)?.layer == digest => Ok(bytes),
            _ => Err(missing()),
        }
    }

    fn put_segment(&self, claim: &Claim, id: SegmentId, bytes: &[u8]) -> Result<Digest> {
        let t = &claim.tenant;
        check_segment_id(t, id)?;
        let exists = || StoreError::SegmentExists {
            tenant: t.clone(),
            id,
        };
        // Cheap checks first, so a stale node or a taken id adds no blob; the fence and
        // the link under the lock decide.
        let (rec, _) = self.load_visible(t)?;
        check_fence(&rec, claim)?;
        let path = self.segment_path(t, id);
        if path.exists() {
            return Err(exists());
        }
        let _blobs = self.blob_lock(false)?;
        let digest = self.put_blob(bytes)?;
        let entry = format_segment_entry(t, id, &digest);
        self.fenced(claim, |_| {
            make_dir_durably(&self.segments_dir(t))?;
            if link_new(&self.tmp(), &path, entry.as_bytes())? {
                Ok(digest)
            } else {
                Err(exists())
            }
        })
    }

    fn get_segment(&self, tenant: &TenantName, id: SegmentId) -> Result<Vec<u8>> {
        self.load_visible(tenant)?;
        let missing = || StoreError::SegmentMissing {
            tenant: tenant.clone(),
            id,
        };
        // No segment is kept past the largest id, whatever file may be there.
        if id.get() > MAX_SEGMENT_ID {
            return Err(missing());
        }
        let digest = self.segment_digest(tenant, id)?.ok_or_else(missing)?;
        self.get_blob(&digest)
    }

    fn remove_segment(&self, claim: &Claim, id: SegmentId) -> Result<()> {
        self.fenced(claim, |_| {
            if id.get() > MAX_SEGMENT_ID {
                return Ok(());
            }
            let path = self.segment_path(&claim.tenant, id);
            match fs::remove_file(&path) {
                Ok(()) => {
                    let dir = self.segments_dir(&claim.tenant);
                    File::open(&dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| StoreError::io(&dir, e))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io(&path, e)),
            }
        })
    }

    fn segments(&self, tenant: &TenantName) -> Result<Vec<SegmentId>> {
        self.load_visible(tenant)?;
        let mut ids: Vec<SegmentId> = list_dir(&self.segments_dir(tenant))?
            .iter()
            .filter_map(|n| parse_segment_name(n))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// The entry of segment `id` of tenant `t`, naming its blob: sealed text naming the tenant
/// and the id too, so that the entry read under any other name is refused.
fn format_segment_entry(t: &TenantName, id: SegmentId, digest: &Digest) -> String {
    let mut entry = format!(
        "{SEGMENT_HEAD}\ntenant {t}\nid {}\nblob {}\n",
        segment_name(id),
        digest.to_hex()
    );
    seal(&mut entry);
    entry
}

/// A segment entry's file name: its id in 16 lower-case hex digits.
fn segment_name(id: SegmentId) -> String {
    format!("{:016x}", id.get())
}

/// The segment a file name is the entry of: only a name [`segment_name`] gives (not one in
/// upper case or with a sign, which `from_str_radix` would take too), so every segment
/// listed is found under its name, and of an id a store keeps ([`MAX_SEGMENT_ID`]).
fn parse_segment_name(name: &str) -> Option<SegmentId> {
    let id = SegmentId::new(u64::from_str_radix(name, 16).ok()?);
    (segment_name(id) == name && id.get() <= MAX_SEGMENT_ID).then_some(id)
}

/// A version's file name: its number in 20 digits, so names sort as numbers do.
fn version_name(number: u64) -> String {
    format!("{number:020}")
}

fn parse_version_name(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

fn format_version(r: &VersionRecord) -> String {
    let mut s = format!(
        "{VERSION_HEAD}\nbase {}\nnumber {}\nlayer {}\nby {}\n",
        fingerprint_hex(&r.origin),
        r.number,
        r.layer.to_hex(),
        r.committed_by
            .as_ref()
            .map_or(NOBODY.to_owned(), |p| p.to_string()),
    );
    seal(&mut s);
    s
}

/// Ends a record's text with its check line: `check` and the BLAKE3 digest of the text
/// before it, in hex.
fn seal(text: &mut String) {
    let check = blake3::hash(text.as_bytes()).to_hex();
    text.push_str(&format!("check {check}\n"));
}

/// The text of a record sealed by [`seal`], without its check line, or what is wrong with it.
fn unseal(bytes: &[u8]) -> std::result::Result<&str, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let at = text.rfind("check ").ok_or("no check line")?;
    let (body, check) = text.split_at(at);
    let check = check
        .strip_prefix("check ")
        .and_then(|c| c.strip_suffix('\n'))
        .ok_or("bad check line")?;
    if blake3::hash(body.as_bytes()).to_hex().as_str() != check {
        return Err("check digest does not match");
    }
    Ok(body)
}

fn parse_version(origin: Fingerprint, number: u64, bytes: &[u8]) -> Result<VersionRecord> {
    let bad = |problem| StoreError::Damaged {
        what: format!("version {number} of base {origin}"),
        problem,
    };
    let body = unseal(bytes).map_err(bad)?;
    let lines: Vec<&str> = body.lines().collect();
    let [head, base, num, layer, by] = lines.as_slice() else {
        return Err(bad("wrong number of lines"));
    };
    let field = |line: &str, key: &str| line.strip_prefix(key).map(str::to_owned);
    if *head != VERSION_HEAD
        || field(base, "base ") != Some(fingerprint_hex(&origin))
        || field(num, "number ") != Some(number.to_string())
    {
        return Err(bad("not the record of this version"));
    }
    let layer = Digest::from_hex(&field(layer, "layer ").ok_or_else(|| bad("no layer"))?)?;
    let committed_by = stored_name(&field(by, "by ").ok_or_else(|| bad("no committer"))?)?;
    Ok(VersionRecord {
        origin,
        number,
        layer,
        committed_by,
    })
}

/// Makes directory `dir` (and its missing parents), and fsyncs the parent of each directory
/// it made, so that every new entry survives a crash.
fn make_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        // Another process may have made it and not synced its entry yet: synced here too,
        // before anything named in it is relied on.
        if let Some(parent) = dir.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io(parent, e))?;
        }
        return Ok(());
    }
    // The missing directories, from the deepest up to the first one that exists.
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    for made in missing.iter().rev() {
        if let Some(parent) = made.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io(parent, e))?;
        }
    }
    Ok(())
}

/// Creates `path` holding `bytes`, whole, only if nothing has that name: a temporary file in
/// `tmp`, fsynced, hard-linked to `path` (`link(2)` never replaces: of many processes
/// linking one name exactly one succeeds), then `path`'s directory fsynced. `false` if the
/// name was taken.
fn link_new(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<bool> {
    let mut f = tempfile::NamedTempFile::new_in(tmp).map_err(|e| StoreError::io(tmp, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io(path, e))?;
    f.as_file()
        .sync_all()
        .map_err(|e| StoreError::io(path, e))?;
    match fs::hard_link(f.path(), path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(StoreError::io(path, e)),
    }
    let dir = path.parent().unwrap_or(tmp);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))?;
    // The temporary name goes when `f` drops.
    Ok(true)
}

fn format_record(r: &TenantRecord, grants: &[PrincipalName]) -> String {
    let opt = |s: Option<String>| s.unwrap_or_else(|| NOBODY.to_owned());
    let mut s = format!(
        "{RECORD_HEAD}\ntenant {}\nbase {}\nstate {}\nowner {}\nepoch {}\nlease {}\n",
        r.tenant,
        fingerprint_hex(&r.base),
        opt(r.state.map(|d| d.to_hex())),
        opt(r.owner.as_ref().map(|o| o.to_string())),
        r.epoch.0,
        r.lease_expiry.0,
    );
    for g in grants {
        s.push_str(&format!("grant {g}\n"));
    }
    seal(&mut s);
    s
}

fn parse_record(t: &TenantName, bytes: &[u8]) -> Result<(TenantRecord, Vec<PrincipalName>)> {
    let bad = |problem| StoreError::Damaged {
        what: format!("record of tenant {t}"),
        problem,
    };
    let body = unseal(bytes).map_err(bad)?;
    let mut lines = body.lines();
    match lines.next() {
        Some(RECORD_HEAD) => {}
        Some(RECORD_HEAD_UNNAMED) => {
            return Err(bad(
                "a record of format 1, which does not name its tenant (it could be another's)",
            ));
        }
        _ => return Err(bad("unknown header")),
    }
    let mut field = |key: &str| -> Result<String> {
        let line = lines.next().ok_or_else(|| bad("missing field"))?;
        line.strip_prefix(key)
            .and_then(|v| v.strip_prefix(' '))
            .map(str::to_owned)
            .ok_or_else(|| bad("fields out of order"))
    };
    // A record copied under another tenant's name is not that tenant's.
    if field("tenant")? != t.as_str() {
        return Err(bad("it is the record of another tenant"));
    }
    let base = parse_fingerprint(&field("base")?)?;
    let state = match field("state")?.as_str() {
        "-" => None,
        h => Some(Digest::from_hex(h)?),
    };
    let owner = stored_name::<NodeName>(&field("owner")?)?;
    let epoch = Epoch(field("epoch")?.parse().map_err(|_| bad("bad epoch"))?);
    let lease_expiry = Millis(field("lease")?.parse().map_err(|_| bad("bad lease"))?);
    let mut grants = Vec::new();
    for line in lines {
        let g = line
            .strip_prefix("grant ")
            .ok_or_else(|| bad("unknown line"))?;
        // A grant to principal `-` (written before that name was refused) grants nobody.
        grants.extend(stored_name::<PrincipalName>(g)?);
    }
    Ok((
        TenantRecord {
            tenant: t.clone(),
            base,
            state,
            owner,
            epoch,
            lease_expiry,
        },
        grants,
    ))
}

/// The most bytes a metadata file of the store may hold: a tenant record, a segment's
/// entry, a version record, a principal's file, a base's pointer, a committer's mark, the
/// marker. The largest is a tenant record, a few hundred bytes; a longer file is no file the
/// store wrote, and is refused as damaged having read at most this many bytes and one more,
/// never reserving its length (a sparse file may claim any length at no cost to whoever
/// made it).
const METADATA_CAP: u64 = 64 * 1024;

/// Opens `p` to read, or `None` if there is no such file. The store writes only regular
/// files, so anything else in a file's place (a FIFO, a device, a directory) is refused as
/// damaged; the open itself does not block (`O_NONBLOCK`), so a FIFO with no writer cannot
/// hang it.
fn open_regular(p: &Path) -> Result<Option<File>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let f = match options.open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(p, e)),
    };
    let m = f.metadata().map_err(|e| StoreError::io(p, e))?;
    if !m.is_file() {
        return Err(StoreError::Damaged {
            what: p.display().to_string(),
            problem: "not a regular file",
        });
    }
    Ok(Some(f))
}

/// A metadata file's bytes, or `None` if there is no such file; [`StoreError::Damaged`] if
/// it is not a regular file or holds more than [`METADATA_CAP`] bytes.
pub(crate) fn read_optional(p: &Path) -> Result<Option<Vec<u8>>> {
    let Some(f) = open_regular(p)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    f.take(METADATA_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(p, e))?;
    if bytes.len() as u64 > METADATA_CAP {
        return Err(StoreError::Damaged {
            what: p.display().to_string(),
            problem: "too long for a metadata file",
        });
    }
    Ok(Some(bytes))
}

/// A blob's file's bytes, whole, or `None` if there is no such file;
/// [`StoreError::Damaged`] if it is not a regular file, [`StoreError::OutOfMemory`] if the
/// allocator refuses the buffer.
pub(crate) fn read_blob_optional(p: &Path) -> Result<Option<Vec<u8>>> {
    let Some(mut f) = open_regular(p)? else {
        return Ok(None);
    };
    let v = cowheap_heap::file::read_all(&mut f).map_err(|e| match e.kind() {
        ErrorKind::OutOfMemory => {
            let len = f.metadata().map_or(0, |m| m.len());
            StoreError::out_of_memory("a file's bytes", usize::try_from(len).unwrap_or(usize::MAX))
        }
        _ => StoreError::io(p, e),
    })?;
    Ok(Some(v))
}

/// The names in a directory (none if it does not exist).
fn list_dir(d: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(d, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| StoreError::io(d, e))?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Writes `path` whole or not at all: a temporary file in `tmp`, fsynced, renamed over
/// `path`, then `path`'s directory fsynced.
/// How old a temporary file must be before opening the store removes it: far longer than
/// any write takes.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_parts(tmp, path, &[bytes])
}

/// [`write_atomic`] of `parts` one after another.
fn write_atomic_parts(tmp: &Path, path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut f = tempfile::NamedTempFile::new_in(tmp).map_err(|e| StoreError::io(tmp, e))?;
    for part in parts {
        f.write_all(part).map_err(|e| StoreError::io(path, e))?;
    }
    f.as_file()
        .sync_all()
        .map_err(|e| StoreError::io(path, e))?;
    f.persist(path).map_err(|e| StoreError::io(path, e.error))?;
    let dir = path.parent().unwrap_or(tmp);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The record files a local store parses are outside bytes: another process, a damaged
    //! disk or a hostile user may have written them. Past the check line (a BLAKE3 digest of
    //! the text, which anyone can compute), every text is a typed error or a record.
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9][a-zA-Z0-9._-]{0,20}"
    }

    /// A line of a record or version file as a writer might make it, well formed or not.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(RECORD_HEAD.to_owned()),
            Just(VERSION_HEAD.to_owned()),
            "base [0-9a-fA-F]{62,66}",
            "(state|layer) (-|[0-9a-f]{64}|[0-9a-fA-FxyZ]{0,70})",
            "(tenant|owner|by|grant) (-|[a-zA-Z0-9._/ -]{0,24}|\\.[a-z]{1,3})",
            Just("tenant t".to_owned()),
            "(epoch|lease|number) [-+]?[0-9]{0,25}",
            "check [0-9a-f]{0,64}",
            "[^\n]{0,40}",
        ]
    }

    fn sealed(lines: &[String]) -> String {
        let mut text = lines.join("\n");
        text.push('\n');
        seal(&mut text);
        text
    }

    /// What a parse may answer for bytes that are no good record: a typed error naming
    /// the damage or the bad name, never a panic.
    fn typed(e: &StoreError) -> bool {
        matches!(
            e,
            StoreError::Damaged { .. } | StoreError::InvalidName { .. }
        )
    }

    proptest! {
        #[test]
        fn records_round_trip(
            base in any::<[u8; 32]>(),
            state in proptest::option::of(any::<[u8; 32]>()),
            owner in proptest::option::of(name()),
            epoch in any::<u64>(),
            lease in any::<u64>(),
            grants in proptest::collection::vec(name(), 0..4),
        ) {
            let t = TenantName::new("t").unwrap();
            let rec = TenantRecord {
                tenant: t.clone(),
                base: Fingerprint(base),
                state: state.map(Digest),
                owner: owner.map(|o| NodeName::new(o).unwrap()),
                epoch: Epoch(epoch),
                lease_expiry: Millis(lease),
            };
            let grants: Vec<PrincipalName> =
                grants.into_iter().map(|g| PrincipalName::new(g).unwrap()).collect();
            let text = format_record(&rec, &grants);
            prop_assert_eq!(parse_record(&t, text.as_bytes()).unwrap(), (rec, grants));
        }

        #[test]
        fn sealed_hostile_records_are_records_or_typed_errors(
            lines in proptest::collection::vec(line(), 0..10),
        ) {
            let t = TenantName::new("t").unwrap();
            let text = sealed(&lines);
            match parse_record(&t, text.as_bytes()) {
                Ok((rec, grants)) => {
                    // Whatever was accepted is a record that writes and reads back as itself.
                    let again = format_record(&rec, &grants);
                    prop_assert_eq!(parse_record(&t, again.as_bytes()).unwrap(), (rec, grants));
                }
                Err(e) => prop_assert!(typed(&e), "{e:?}"),
            }
            // A flipped byte anywhere is refused by the check line.
            let mut bytes = text.clone().into_bytes();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x01;
            prop_assert!(parse_record(&t, &bytes).is_err());
        }

        #[test]
        fn sealed_records_with_a_line_changed_are_records_or_typed_errors(
            at in 0usize..9,
            replace in any::<bool>(),
            new in line(),
        ) {
            // A good record's lines, one replaced or one inserted, sealed again.
            let t = TenantName::new("t").unwrap();
            let rec = TenantRecord {
                tenant: t.clone(),
                base: Fingerprint([3; 32]),
                state: Some(Digest([4; 32])),
                owner: Some(NodeName::new("a").unwrap()),
                epoch: Epoch(5),
                lease_expiry: Millis(6),
            };
            let good = format_record(&rec, &[PrincipalName::new("p").unwrap()]);
            let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
            lines.pop(); // the check line
            let at = at.min(lines.len());
            if replace && at < lines.len() {
                lines[at] = new;
            } else {
                lines.insert(at, new);
            }
            match parse_record(&t, sealed(&lines).as_bytes()) {
                Ok((back, grants)) => {
                    let again = format_record(&back, &grants);
                    prop_assert_eq!(parse_record(&t, again.as_bytes()).unwrap(), (back, grants));
                }
                Err(e) => prop_assert!(typed(&e), "{e:?}"),
            }
        }

        #[test]
        fn sealed_hostile_versions_are_versions_or_typed_errors(
            lines in proptest::collection::vec(line(), 0..7),
            number in 1u64..4,
        ) {
            let origin = Fingerprint([7; 32]);
            let text = sealed(&lines);
            match parse_version(origin, number, text.as_bytes()) {
                Ok(v) => {
                    prop_assert_eq!((v.origin, v.number), (origin, number));
                    let again = format_version(&v);
                    prop_assert_eq!(parse_version(origin, number, again.as_bytes()).unwrap(), v);
                }
                Err(e) => prop_assert!(typed(&e), "{e:?}"),
            }
        }
    }

    #[test]
    fn a_record_names_its_tenant_and_one_of_format_1_is_refused() {
        let t = TenantName::new("alice").unwrap();
        let rec = TenantRecord {
            tenant: t.clone(),
            base: Fingerprint([3; 32]),
            state: Some(Digest([4; 32])),
            owner: Some(NodeName::new("a").unwrap()),
            epoch: Epoch(5),
            lease_expiry: Millis(6),
        };
        let text = format_record(&rec, &[PrincipalName::new("p").unwrap()]);
        assert!(
            text.starts_with("cowheap-tenant 2\ntenant alice\n"),
            "{text}"
        );
        assert_eq!(parse_record(&t, text.as_bytes()).unwrap().0, rec);
        // The same record read as another tenant's is damaged.
        let bob = TenantName::new("bob").unwrap();
        assert!(matches!(
            parse_record(&bob, text.as_bytes()),
            Err(StoreError::Damaged { .. })
        ));
        // A record of format 1 (no tenant line), sealed as it was written, is refused.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.pop(); // the check line
        lines.remove(1); // the tenant line
        lines[0] = RECORD_HEAD_UNNAMED;
        let earlier = sealed(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>());
        match parse_record(&t, earlier.as_bytes()) {
            Err(StoreError::Damaged { problem, .. }) => {
                assert!(problem.contains("format 1"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_segment_entry_names_its_tenant_and_id_and_one_of_format_1_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            LocalStore::init(dir.path(), Arc::new(crate::SystemClock), Access::Operator).unwrap();
        let t = TenantName::new("t").unwrap();
        let id = SegmentId::new(7);
        let d = Digest([9; 32]);
        let entry = format_segment_entry(&t, id, &d);
        assert!(
            entry.starts_with("cowheap-segment 2\ntenant t\nid 0000000000000007\nblob "),
            "{entry}"
        );
        let path = s.segment_path(&t, id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &entry).unwrap();
        assert_eq!(s.segment_digest(&t, id).unwrap(), Some(d));
        // An entry of format 1, as written before entries named their tenant and id.
        let earlier = sealed(&[
            SEGMENT_HEAD_UNNAMED.to_owned(),
            format!("blob {}", d.to_hex()),
        ]);
        fs::write(&path, earlier).unwrap();
        assert_eq!(s.segment_digest(&t, id).unwrap(), Some(d));
    }

    #[test]
    fn a_dash_written_before_it_was_refused_as_a_name_reads_as_nobody() {
        // A record and a version record as a store wrote them when `-` was a valid node
        // and principal name: owner, grant and committer `-` are nobody.
        let t = TenantName::new("t").unwrap();
        let base = "03".repeat(32);
        let lines: Vec<String> = [
            RECORD_HEAD.to_owned(),
            "tenant t".to_owned(),
            format!("base {base}"),
            "state -".to_owned(),
            "owner -".to_owned(),
            "epoch 5".to_owned(),
            "lease 6".to_owned(),
            "grant -".to_owned(),
            "grant p".to_owned(),
        ]
        .into();
        let (rec, grants) = parse_record(&t, sealed(&lines).as_bytes()).unwrap();
        assert_eq!(rec.owner, None);
        assert_eq!(grants, vec![PrincipalName::new("p").unwrap()]);
        let origin = Fingerprint([7; 32]);
        let lines: Vec<String> = [
            VERSION_HEAD.to_owned(),
            format!("base {}", fingerprint_hex(&origin)),
            "number 1".to_owned(),
            format!("layer {}", "09".repeat(32)),
            "by -".to_owned(),
        ]
        .into();
        let v = parse_version(origin, 1, sealed(&lines).as_bytes()).unwrap();
        assert_eq!(v.committed_by, None);
    }

    #[test]
    fn a_version_record_round_trips_and_names_its_place() {
        let v = VersionRecord {
            origin: Fingerprint([7; 32]),
            number: 3,
            layer: Digest([9; 32]),
            committed_by: Some(PrincipalName::new("p1").unwrap()),
        };
        let text = format_version(&v);
        assert_eq!(parse_version(v.origin, 3, text.as_bytes()).unwrap(), v);
        // The same record read as another version, or of another base, is damaged.
        assert!(typed(
            &parse_version(v.origin, 4, text.as_bytes()).unwrap_err()
        ));
        assert!(typed(
            &parse_version(Fingerprint([8; 32]), 3, text.as_bytes()).unwrap_err()
        ));
    }
}
