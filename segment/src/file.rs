//! The cowheap segment file: a [`TenantSegment`] on disk.
//!
//! ```text
//! offset size
//!   0     8   magic "cowhSEG\0"
//!   8     4   format version (2; 1 is still read), little-endian like every number here
//!  12     4   flags: bit 0 = portable (every out-pointer names its target by name)
//!  16    32   fingerprint of the base the segment was extracted from
//!  48     8   body length in bytes
//!  56    32   BLAKE3 of bytes 0..56 followed by the body
//!  88     .   body
//! body:
//!   u32 objects, u32 roots, u32 out-pointers
//!   out-pointers, each a tag byte and its payload:
//!     0 base object (u32 index)     1 tenant object outside (u32 k)   2 special object (u32 k)
//!     3 symbol (str)                4 class (str name, u32 n, n str)  5 global (str)
//!     6 pinned (32-byte fingerprint, u32 index)
//!   roots: u32 member number each
//!   members: class ref, u8 format code, u32 hash, u32 slots, u32 bytes, the slot refs, the bytes
//!   host objects (version 2 on; version 1 ends after the members): u32 count, then each
//!     u32 member (increasing), str kind, u8 0 (state not saved) or 1 and bytes (u32 n, n bytes)
//!   ref: tag byte 0 immediate (u64 word), 1 member (u32), 2 out-pointer (u32)
//!   str: u32 length, UTF-8 bytes
//! ```
//!
//! A host object member ([`crate::hosts`]) is written as any other member (its proxy's
//! class, format, hash and body) and listed in the host objects section with its kind and
//! what its plugin saved; "not saved" when it was extracted without plugins.
//!
//! The rules of image files and snapshots: versioned; the checksum covers the header and
//! the body, so every bit flip is found; written atomically
//! ([`cowheap_heap::file::write_atomically`]: a temporary file, fsync, rename, fsync of the
//! directory); verified on open before anything is decoded, and decoded with every count
//! checked against the bytes left. A segment that is not portable opens only against the
//! base it came from ([`SegmentError::WrongBase`]).

use crate::error::{Result, SegmentError};
use crate::hosts::SegHost;
use crate::tenant::{OutRef, SRef, SegObj, SegmentState, TenantSegment};
use cowheap_heap::{Fingerprint, Format, ObjectIndex, Word};
use std::path::Path;

/// The magic bytes.
pub const MAGIC: &[u8; 8] = b"cowhSEG\0";
/// The format version written (version 1, without the host objects section, is read too).
pub const VERSION: u32 = 2;
/// The first version, read still: no host objects section.
const VERSION_1: u32 = 1;
/// Bytes before the body.
pub const HEADER: usize = 88;
const FLAG_PORTABLE: u32 = 1;

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend(v.to_le_bytes());
    }
    fn len(&mut self, n: usize) -> Result<()> {
        self.u32(u32::try_from(n).map_err(|_| SegmentError::BadSegment("a count over 2^32"))?);
        Ok(())
    }
    fn str(&mut self, s: &str) -> Result<()> {
        self.len(s.len())?;
        self.0.extend(s.as_bytes());
        Ok(())
    }
    fn sref(&mut self, r: SRef) {
        match r {
            SRef::Imm(w) => {
                self.u8(0);
                self.u64(w.bits());
            }
            SRef::Obj(i) => {
                self.u8(1);
                self.u32(i);
            }
            SRef::Out(k) => {
                self.u8(2);
                self.u32(k);
            }
        }
    }
}

/// The file's bytes for `seg`. Time: O(size).
///
/// # Errors
/// [`SegmentError::BadSegment`] for a count over 2^32.
pub fn to_bytes(seg: &TenantSegment) -> Result<Vec<u8>> {
    let mut b = W(Vec::new());
    b.len(seg.objects.len())?;
    b.len(seg.roots.len())?;
    b.len(seg.out.len())?;
    for o in &seg.out {
        match o {
            OutRef::Base(x) => {
                b.u8(0);
                b.u32(x.as_u32());
            }
            OutRef::Outside(k) => {
                b.u8(1);
                b.u32(*k);
            }
            OutRef::Special(k) => {
                b.u8(2);
                b.u32(*k);
            }
            OutRef::Symbol(s) => {
                b.u8(3);
                b.str(s)?;
            }
            OutRef::Class { name, inst_vars } => {
                b.u8(4);
                b.str(name)?;
                b.len(inst_vars.len())?;
                for v in inst_vars {
                    b.str(v)?;
                }
            }
            OutRef::Global(g) => {
                b.u8(5);
                b.str(g)?;
            }
            OutRef::Character(n) => {
                b.u8(7);
                b.u32(*n);
            }
            OutRef::Pinned { fingerprint, index } => {
                b.u8(6);
                b.0.extend(fingerprint.0);
                b.u32(index.as_u32());
            }
        }
    }
    for &r in &seg.roots {
        b.u32(r);
    }
    for o in &seg.objects {
        b.sref(o.class);
        b.u8(o.format.code());
        b.u32(o.hash);
        b.len(o.slots.len())?;
        b.len(o.bytes.len())?;
        for &s in &o.slots {
            b.sref(s);
        }
        b.0.extend(&o.bytes);
    }
    b.len(seg.hosts.len())?;
    for h in &seg.hosts {
        b.u32(h.member);
        b.str(&h.kind)?;
        match &h.saved {
            None => b.u8(0),
            Some(bytes) => {
                b.u8(1);
                b.len(bytes.len())?;
                b.0.extend(bytes);
            }
        }
    }
    let body = b.0;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend(MAGIC);
    out.extend(VERSION.to_le_bytes());
    let flags = if seg.is_portable() { FLAG_PORTABLE } else { 0 };
    out.extend(flags.to_le_bytes());
    out.extend(seg.fingerprint.0);
    out.extend((body.len() as u64).to_le_bytes());
    let sum = checksum(&out, &body);
    out.extend(sum);
    out.extend(body);
    Ok(out)
}

fn checksum(head: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(head);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Writes `seg` to `path` atomically and moves it to [`SegmentState::OnFile`]. Time:
/// O(size).
///
/// # Errors
/// [`SegmentError::State`] unless the segment is `ActiveCopy`; [`SegmentError::File`] if
/// the write fails (then `path` is untouched).
pub fn write(seg: &mut TenantSegment, path: &Path) -> Result<()> {
    let mut next = seg.state;
    next.advance(SegmentState::OnFile)?;
    let bytes = to_bytes(seg)?;
    cowheap_heap::file::write_atomically(path, |w| w.write_all(&bytes))?;
    seg.state = next;
    Ok(())
}

/// Reads and verifies the segment file at `path`; `base`, when given, is the fingerprint of
/// the base it will be imported into (a segment that is not portable must come from it).
/// The segment answered is [`SegmentState::Inactive`]. Time: O(size).
///
/// # Errors
/// [`SegmentError::Io`]; as [`from_bytes`].
pub fn read(path: &Path, base: Option<Fingerprint>) -> Result<TenantSegment> {
    let bytes = cowheap_heap::file::read_regular(path).map_err(|source| SegmentError::Io {
        path: path.to_owned(),
        source,
    })?;
    from_bytes(&bytes, base)
}

/// Verifies and decodes a segment file held in memory (see [`read`]).
///
/// # Errors
/// [`SegmentError::BadFile`] for a wrong magic, version, flag or length, or a body that does
/// not decode (a host object of no member, or out of order, among them); [`SegmentError::Checksum`] for damage; [`SegmentError::WrongBase`].
pub fn from_bytes(bytes: &[u8], base: Option<Fingerprint>) -> Result<TenantSegment> {
    let bad = SegmentError::BadFile;
    if bytes.len() < HEADER {
        return Err(bad("shorter than its header"));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad("no cowheap segment magic"));
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u32_at(8);
    if version != VERSION && version != VERSION_1 {
        return Err(bad("a format version this reader does not know"));
    }
    let flags = u32_at(12);
    if flags & !FLAG_PORTABLE != 0 {
        return Err(bad("unknown flags"));
    }
    let mut fp = [0u8; 32];
    fp.copy_from_slice(&bytes[16..48]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[48..56]);
    let body_len = u64::from_le_bytes(len);
    if body_len != (bytes.len() - HEADER) as u64 {
        return Err(bad("a body length other than the file's"));
    }
    let body = &bytes[HEADER..];
    if checksum(&bytes[..56], body) != bytes[56..88] {
        return Err(SegmentError::Checksum);
    }
    let fingerprint = Fingerprint(fp);
    let portable = flags & FLAG_PORTABLE != 0;
    if let Some(b) = base
        && !portable
        && b != fingerprint
    {
        return Err(SegmentError::WrongBase {
            file: fingerprint,
            base: b,
        });
    }
    let mut r = R { b: body, pos: 0 };
    // Each count is believed only as far as the body could hold that many of the smallest
    // item it counts (a member: a 5-byte class, a format, a hash and two counts; an
    // out-pointer: a tag and a 4-byte field), and no more than a page or so is reserved
    // ahead of the items themselves.
    let n_objects = r.count(MIN_MEMBER)?;
    let n_roots = r.count(4)?;
    let n_out = r.count(5)?;
    let mut out = Vec::with_capacity(n_out.min(RESERVE));
    for _ in 0..n_out {
        out.push(match r.u8()? {
            0 => OutRef::Base(ObjectIndex::from_u32(r.u32()?)),
            1 => OutRef::Outside(r.u32()?),
            2 => OutRef::Special(r.u32()?),
            3 => OutRef::Symbol(r.str()?),
            4 => {
                let name = r.str()?;
                let n = r.count(4)?;
                let inst_vars = (0..n).map(|_| r.str()).collect::<Result<_>>()?;
                OutRef::Class { name, inst_vars }
            }
            5 => OutRef::Global(r.str()?),
            6 => {
                let mut f = [0u8; 32];
                f.copy_from_slice(r.take(32)?);
                OutRef::Pinned {
                    fingerprint: Fingerprint(f),
                    index: ObjectIndex::from_u32(r.u32()?),
                }
            }
            7 => OutRef::Character(r.u32()?),
            _ => return Err(bad("an unknown out-pointer tag")),
        });
    }
    let has_base = out.iter().any(|o| matches!(o, OutRef::Base(_)));
    if portable == has_base {
        return Err(bad("the portable flag disagrees with the out-pointers"));
    }
    let roots = (0..n_roots)
        .map(|_| {
            let i = r.u32()?;
            if (i as usize) < n_objects {
                Ok(i)
            } else {
                Err(bad("a root that is no member"))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let mut objects = Vec::with_capacity(n_objects.min(RESERVE));
    for _ in 0..n_objects {
        let class = r.sref(n_objects, n_out)?;
        let format = Format::from_code(r.u8()?).ok_or(bad("an unknown format"))?;
        let hash = r.u32()?;
        let n_slots = r.count(5)?;
        let n_bytes = r.u32()? as usize;
        let slots = (0..n_slots)
            .map(|_| r.sref(n_objects, n_out))
            .collect::<Result<Vec<_>>>()?;
        let bytes = r.take(n_bytes)?.to_vec();
        format
            .check(cowheap_heap::ObjectSize {
                slots: slots.len(),
                bytes: bytes.len(),
            })
            .map_err(|_| bad("a member whose size its format does not allow"))?;
        objects.push(SegObj {
            class,
            format,
            hash,
            slots,
            bytes,
        });
    }
    let mut hosts: Vec<SegHost> = Vec::new();
    if version >= VERSION {
        let n_hosts = r.count(9)?;
        for _ in 0..n_hosts {
            let member = r.u32()?;
            if member as usize >= n_objects {
                return Err(bad("a host object of no member"));
            }
            if hosts.last().is_some_and(|h| h.member >= member) {
                return Err(bad("host objects out of member order"));
            }
            let kind = r.str()?;
            let saved = match r.u8()? {
                0 => None,
                1 => {
                    let n = r.count(1)?;
                    Some(r.take(n)?.to_vec())
                }
                _ => return Err(bad("an unknown host object state tag")),
            };
            hosts.push(SegHost {
                member,
                kind,
                saved,
            });
        }
    }
    if r.pos != body.len() {
        return Err(bad("bytes after the end of the body"));
    }
    // A member's class an immediate, or member classes in a cycle, would be refused only by
    // an import part-way: refused here, with the file.
    crate::tenant::check_members(&objects, out.len(), &roots).map_err(|e| match e {
        SegmentError::BadSegment(what) => bad(what),
        e => e,
    })?;
    Ok(TenantSegment::read(fingerprint, objects, roots, out, hosts))
}

/// Bytes of the smallest member in a file: a class reference (5), a format (1), a hash (4),
/// a slot count (4) and a byte count (4).
const MIN_MEMBER: usize = 18;
/// Items reserved for ahead of reading them, at most.
const RESERVE: usize = 1024;

struct R<'a> {
    b: &'a [u8],
    pos: usize,
}

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(SegmentError::BadFile("a body shorter than its counts"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items of at least `unit` bytes each, refused past the bytes left.
    fn count(&mut self, unit: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(unit) > self.b.len() - self.pos {
            return Err(SegmentError::BadFile("a count larger than the body"));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| SegmentError::BadFile("a name that is not UTF-8"))
    }
    fn sref(&mut self, objects: usize, out: usize) -> Result<SRef> {
        let bad = SegmentError::BadFile;
        Ok(match self.u8()? {
            0 => {
                let w = Word::from_bits(self.u64()?);
                if w.is_ref() || !w.is_valid() {
                    return Err(bad("an immediate that is not one"));
                }
                SRef::Imm(w)
            }
            1 => {
                let i = self.u32()?;
                if i as usize >= objects {
                    return Err(bad("a reference to no member"));
                }
                SRef::Obj(i)
            }
            2 => {
                let k = self.u32()?;
                if k as usize >= out {
                    return Err(bad("a reference to no out-pointer"));
                }
                SRef::Out(k)
            }
            _ => return Err(bad("an unknown reference tag")),
        })
    }
}
