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
//! The format is described in `docs/FORMATS.md`. Every word is checked on restore: a reference
//! into the base must be in range, a private reference must name a saved entry of the same
//! generation, and the table must name distinct base objects and entries.
//!
//! ```
//! use cowheap_forwarders::Base;
//! use cowheap_heap::{synth, Value};
//! use cowheap_tenants::Tenant;
//!
//! let base = Base::new(synth::image(1_000, 1));
//! let g = base.heap().root("Smalltalk").unwrap();
//! let mut t = Tenant::fork(&base);
//! t.set_slot(g, 0, Value::int(5)).unwrap();
//! let bytes = t.snapshot();
//! let mut back = Tenant::restore_from(&base, &bytes).unwrap();
//! assert_eq!(back.slot(g, 0).unwrap().as_int(), Some(5));
//!
//! let other = Base::new(synth::image(1_000, 2));
//! assert!(Tenant::restore_from(&other, &bytes).is_err());
//! ```

use crate::space::{Body, Entry, Space, cost};
use crate::{Tenant, TenantConfig, TenantStats};
use cowheap_forwarders::{Base, Forwarding, MarkPolicy};
use cowheap_heap::file::{FileError, FileResult, Fingerprint, Reader, write_atomically};
use cowheap_heap::{Decoded, Format, ObjectIndex, ObjectSize, Word};
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

fn digest(header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&header[..COVERED]);
    h.update(payload);
    *h.finalize().as_bytes()
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend(v.to_le_bytes());
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
    /// This tenant's private part as snapshot bytes. Time and size: O(private).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut p = Out(Vec::new());
        p.u64(self.quota.unwrap_or(u64::MAX));
        for v in stats_fields(&self.stats()) {
            p.u64(v);
        }
        let gens = self.space.gens();
        p.u64(gens.len() as u64);
        for &g in gens {
            p.u32(g);
        }
        p.u64(self.space.len() as u64);
        for (k, e) in self.space.iter() {
            p.u32(k.key());
            match &e.state {
                Forwarding::Object(b) => {
                    p.u8(0);
                    p.u64(b.class.bits());
                    p.u8(b.format.code());
                    p.u32(b.hash);
                    p.u32(b.slots.len() as u32);
                    p.u32(b.bytes.len() as u32);
                    for w in b.slots.iter() {
                        p.u64(w.get().bits());
                    }
                    p.0.extend_from_slice(&b.bytes);
                }
                Forwarding::Forwarded(t) => {
                    p.u8(1);
                    p.u64(t.bits());
                }
            }
        }
        let mut table: Vec<_> = self.table.iter().collect();
        table.sort_by_key(|(x, _)| *x);
        p.u64(table.len() as u64);
        for (x, k) in table {
            p.u32(x.as_u32());
            p.u32(k.key());
        }
        p.u64(self.roots.len() as u64);
        for (name, w) in &self.roots {
            p.u32(name.len() as u32);
            p.0.extend(name.as_bytes());
            p.u64(w.bits());
        }
        let payload = p.0;
        let mut out = Out(Vec::with_capacity(HEADER_LEN + payload.len()));
        out.0.extend(MAGIC);
        out.u32(VERSION);
        out.u32(u32::from(self.marks_policy() == MarkPolicy::Private));
        out.0.extend(self.base.fingerprint().0);
        out.u64(payload.len() as u64);
        let d = digest(&out.0, &payload);
        out.0.extend(d);
        out.0.extend(payload);
        out.0
    }

    /// Writes [`Tenant::snapshot`] to `path` atomically. Time: O(private).
    pub fn save_snapshot(&self, path: &Path) -> FileResult<()> {
        let bytes = self.snapshot();
        write_atomically(path, |w| w.write_all(&bytes))
    }

    /// Restores the tenant snapshot at `path` onto `base`. Time: O(private).
    ///
    /// # Errors
    /// [`FileError::ForeignBase`] if the snapshot was taken on another base; any other
    /// [`FileError`] if the file is not a whole, valid snapshot.
    pub fn restore(base: &Arc<Base>, path: &Path) -> FileResult<Tenant> {
        let bytes = std::fs::read(path).map_err(|e| FileError::io(path, e))?;
        Tenant::restore_from(base, &bytes)
    }

    /// Restores a tenant from snapshot bytes onto `base`. Time: O(private).
    pub fn restore_from(base: &Arc<Base>, bytes: &[u8]) -> FileResult<Tenant> {
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
        if len != r.remaining() as u64 {
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
        if flags > 1 {
            return Err(FileError::corrupt("header", "unknown flags"));
        }
        let found = base.fingerprint();
        if expected != found {
            return Err(FileError::ForeignBase { expected, found });
        }
        decode(base, flags, payload)
    }

    fn marks_policy(&self) -> MarkPolicy {
        if self.filter.is_none() {
            MarkPolicy::Shared
        } else {
            MarkPolicy::Private
        }
    }
}

fn decode(base: &Arc<Base>, flags: u32, payload: &[u8]) -> FileResult<Tenant> {
    let mut r = Reader::new(payload, HEADER_LEN as u64);
    let quota = match r.u64("quota")? {
        u64::MAX => None,
        q => Some(q),
    };
    let mut counters = [0u64; 7];
    for c in &mut counters {
        *c = r.u64("counters")?;
    }
    let n_gens = r.count(4, "generations")?;
    let mut gens = Vec::with_capacity(n_gens);
    for _ in 0..n_gens {
        let g = r.u32("generation")?;
        if g > cowheap_heap::word::GENERATION_MASK {
            return Err(FileError::corrupt(
                "generations",
                "a generation is wider than a reference holds",
            ));
        }
        gens.push(g);
    }
    let n_entries = r.count(13, "entries")?;
    let mut entries: Vec<(usize, Entry)> = Vec::with_capacity(n_entries);
    for _ in 0..n_entries {
        let key = r.u32("entry key")? as usize;
        if key >= gens.len() || entries.last().is_some_and(|(k, _)| *k >= key) {
            return Err(FileError::corrupt(
                "entries",
                "keys are not ascending below the generations",
            ));
        }
        let state = match r.take(1, "entry kind")?[0] {
            0 => {
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
                    return Err(FileError::corrupt(
                        "entries",
                        "a size does not fit its format",
                    ));
                }
                let slot_bytes = r.take(n_slots.saturating_mul(8), "slots")?;
                let slots = slot_bytes
                    .chunks_exact(8)
                    .map(|c| {
                        let w = u64::from_le_bytes(c.try_into().expect("chunks of 8 bytes"));
                        std::cell::Cell::new(Word::from_bits(w))
                    })
                    .collect();
                let bytes = r.take(n_bytes, "bytes")?.into();
                Forwarding::Object(Body {
                    class,
                    format,
                    hash,
                    slots,
                    bytes,
                })
            }
            1 => Forwarding::Forwarded(Word::from_bits(r.u64("forwarder target")?)),
            _ => return Err(FileError::corrupt("entries", "unknown entry kind")),
        };
        entries.push((key, Entry { state }));
    }
    let n_table = r.count(8, "table")?;
    let mut table = Vec::with_capacity(n_table);
    for _ in 0..n_table {
        table.push((r.u32("table object")?, r.u32("table key")?));
    }
    let n_roots = r.count(12, "roots")?;
    let mut roots = std::collections::BTreeMap::new();
    for _ in 0..n_roots {
        let len = r.u32("root name length")? as usize;
        let name = std::str::from_utf8(r.take(len, "root name")?)
            .map_err(|_| FileError::corrupt("roots", "a root name is not UTF-8"))?
            .to_owned();
        let w = Word::from_bits(r.u64("root value")?);
        if roots.insert(name, w).is_some() {
            return Err(FileError::corrupt("roots", "two roots share a name"));
        }
    }
    if r.remaining() != 0 {
        return Err(FileError::corrupt("snapshot", "bytes after the last root"));
    }

    // Every word must lead somewhere in this base and this snapshot.
    let live: std::collections::HashSet<usize> = entries.iter().map(|(k, _)| *k).collect();
    let n_base = base.heap().len();
    let valid = |w: Word, must_be_ref: bool| match w.decode() {
        Decoded::Int(_) | Decoded::Char(_) => !must_be_ref,
        Decoded::Base(x) => x.get() < n_base,
        Decoded::Private(k) => {
            live.contains(&(k.key() as usize)) && gens[k.key() as usize] == k.generation()
        }
        Decoded::Reserved(_) => w.is_small_float() && !must_be_ref,
    };
    for (key, e) in &entries {
        let ok = match &e.state {
            Forwarding::Object(b) => {
                valid(b.class, true) && b.slots.iter().all(|w| valid(w.get(), false))
            }
            Forwarding::Forwarded(t) => {
                valid(*t, true) && t.as_private().is_none_or(|k| k.key() as usize != *key)
            }
        };
        if !ok {
            return Err(FileError::corrupt(
                format!("entry {key}"),
                "a reference leads nowhere",
            ));
        }
    }
    if !roots.values().all(|&w| valid(w, false)) {
        return Err(FileError::corrupt("roots", "a reference leads nowhere"));
    }
    let mut seen_keys = std::collections::HashSet::new();
    let mut seen_objects = std::collections::HashSet::new();
    for &(x, k) in &table {
        if x as usize >= n_base
            || !live.contains(&(k as usize))
            || !seen_keys.insert(k)
            || !seen_objects.insert(x)
        {
            return Err(FileError::corrupt(
                "table",
                "an entry names a missing or repeated object",
            ));
        }
    }

    let config = TenantConfig {
        quota,
        marks: if flags & 1 == 1 {
            MarkPolicy::Private
        } else {
            MarkPolicy::Shared
        },
    };
    let mut t = Tenant::fork_with(base, config);
    let private_bytes = entries
        .iter()
        .map(|(_, e)| match &e.state {
            Forwarding::Object(b) => cost(b.size()),
            Forwarding::Forwarded(_) => crate::space::ENTRY_OVERHEAD,
        })
        .sum();
    let objects = entries.len() as u64;
    t.space = Space::from_parts(entries, gens);
    for (x, k) in table {
        let x = ObjectIndex::from_u32(x);
        match &mut t.filter {
            None => {
                t.marks.mark(x.as_u32());
            }
            Some(f) => f.mark(x.as_u32()),
        }
        t.table.insert(x, t.space.key_of(k));
    }
    t.roots = roots;
    let [
        copies,
        allocations,
        lookups,
        patches,
        becomes,
        collections,
        collected,
    ] = counters;
    t.reads.lookups.set(lookups);
    t.reads.patches.set(patches);
    t.stats = TenantStats {
        private_objects: objects,
        private_bytes,
        copies,
        allocations,
        becomes,
        collections,
        collected,
        ..TenantStats::default()
    };
    Ok(t)
}
