//! A tenant's swapped-out segments in the shared store, and the tenant states that name
//! them.
//!
//! [`StoreSegments`] is the segment crate's [`SegmentStore`] over a [`Store`]: bound to a
//! store handle (a node's access) and one claim on one tenant, it keeps each segment file
//! as a content-addressed blob that the tenant's entry for the segment's id names
//! ([`Store::put_segment`]). Writes are fenced by the claim, so a node that lost the tenant
//! can neither add nor drop its segments; reads are checked against the tenant's grants and
//! verified against the blob's digest.
//!
//! A segment out is only half in the store: the swapper that wrote it remembers its root
//! stubs, the objects outside it that it refers to (pinned, and pins are not saved in a
//! snapshot) and its file's checksum. So a tenant state with segments out is the snapshot
//! *and* those records ([`OutRecord`]), framed together as one blob (`docs/FORMATS.md`,
//! "Tenant states with segments out"); a state with none is the bare snapshot, as before.
//! [`crate::Node::resume`] restores the snapshot, gives a new [`Swapper`] over
//! [`StoreSegments`] the records ([`Swapper::adopt`], which pins again what the segments
//! keep alive) and installs its fault handler: touching a stub on any node brings the
//! segment back from the store.

use crate::store::{Claim, Store};
use crate::{Result, StoreError, TenantName};
use cowheap_heap::Word;
#[cfg(doc)]
use cowheap_segment::swap::Swapper;
use cowheap_segment::swap::{self, OutRecord, SegmentId, SegmentStore};
use std::sync::Arc;

/// The segments of one tenant in a [`Store`], as a [`SegmentStore`] for a [`Swapper`]: puts
/// and removes presented with the claim it was made with (fenced), gets checked against
/// the store's grants and verified. Clones share nothing but the store handle.
///
/// Errors: an id held already is [`swap::StoreError::Exists`] and one the tenant lacks
/// [`swap::StoreError::Missing`], as the trait asks; every other store error (fenced,
/// denied, a truncated or corrupt blob, the database) is [`swap::StoreError::Backend`]
/// holding the [`StoreError`], which the swapper hands on as
/// [`swap::SwapError::Store`].
#[derive(Clone, Debug)]
pub struct StoreSegments {
    store: Arc<dyn Store>,
    claim: Claim,
}

impl StoreSegments {
    /// The segments of `claim`'s tenant in `store`, written under that claim.
    pub fn new(store: Arc<dyn Store>, claim: Claim) -> StoreSegments {
        StoreSegments { store, claim }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantName {
        &self.claim.tenant
    }
}

/// The segment crate's error for a store error on segment `id`.
fn segment_error(id: SegmentId, e: StoreError) -> swap::StoreError {
    match e {
        StoreError::SegmentExists { .. } => swap::StoreError::Exists(id),
        StoreError::SegmentMissing { .. } => swap::StoreError::Missing(id),
        e => swap::StoreError::Backend {
            id,
            source: Box::new(e),
        },
    }
}

impl SegmentStore for StoreSegments {
    fn put(&self, id: SegmentId, bytes: &[u8]) -> Result<(), swap::StoreError> {
        self.store
            .put_segment(&self.claim, id, bytes)
            .map(|_| ())
            .map_err(|e| segment_error(id, e))
    }

    fn get(&self, id: SegmentId) -> Result<Vec<u8>, swap::StoreError> {
        self.store
            .get_segment(&self.claim.tenant, id)
            .map_err(|e| segment_error(id, e))
    }

    fn remove(&self, id: SegmentId) -> Result<(), swap::StoreError> {
        self.store
            .remove_segment(&self.claim, id)
            .map_err(|e| segment_error(id, e))
    }
}

/// The magic of a tenant state with segments out.
const STATE_MAGIC: [u8; 8] = *b"COWSWAP\0";
/// Version 2 adds each record's member stubs; version 1 (no member stubs) is still read.
const STATE_VERSION: u32 = 2;
/// The pending count that means "no pending bodies".
const NO_PENDING: u32 = u32::MAX;

/// The frame's head: magic, version, record count, snapshot length.
const FRAME_HEAD: usize = 8 + 4 + 4 + 8;
/// A record's head: segment id, digest, and the four counts (roots, members, outside,
/// pending); its words follow.
const RECORD_HEAD: usize = 8 + 32 + 4 * 4;

/// The state blob of a tenant: the bare snapshot if no segment is out, else the snapshot
/// framed with the records of its segments out. Time: O(snapshot + records).
///
/// # Errors
/// [`StoreError::OutOfMemory`] if the allocator refuses the frame's buffer.
pub(crate) fn encode_state(snapshot: Vec<u8>, records: &[OutRecord]) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Ok(snapshot);
    }
    let words: usize = records
        .iter()
        .map(|r| {
            r.roots.len()
                + r.members.as_ref().map_or(0, Vec::len)
                + r.outside.len()
                + r.pending.as_ref().map_or(0, Vec::len)
        })
        .sum();
    let len = FRAME_HEAD + snapshot.len() + records.len() * RECORD_HEAD + words * 8;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| StoreError::out_of_memory("a state's frame", len))?;
    out.extend(STATE_MAGIC);
    out.extend(STATE_VERSION.to_le_bytes());
    out.extend(count(records.len()).to_le_bytes());
    out.extend((snapshot.len() as u64).to_le_bytes());
    out.extend(&snapshot);
    for r in records {
        out.extend(r.id.get().to_le_bytes());
        out.extend(r.digest);
        out.extend(count(r.roots.len()).to_le_bytes());
        // A record with no member stubs (of a version 1 frame) is written as it was read:
        // the count that means none.
        out.extend(
            r.members
                .as_ref()
                .map_or(NO_PENDING, |m| count(m.len()))
                .to_le_bytes(),
        );
        out.extend(count(r.outside.len()).to_le_bytes());
        out.extend(
            r.pending
                .as_ref()
                .map_or(NO_PENDING, |p| count(p.len()))
                .to_le_bytes(),
        );
        for w in r
            .roots
            .iter()
            .chain(r.members.iter().flatten())
            .chain(&r.outside)
            .chain(r.pending.iter().flatten())
        {
            out.extend(w.bits().to_le_bytes());
        }
    }
    debug_assert_eq!(out.len(), len, "the frame's size, reserved exactly");
    Ok(out)
}

/// A count as the frame stores it. A tenant cannot hold 2^32 - 1 roots or pins (its keys
/// are 32 bits), so the clamp never bites.
fn count(n: usize) -> u32 {
    u32::try_from(n)
        .unwrap_or(NO_PENDING - 1)
        .min(NO_PENDING - 1)
}

/// Why [`decode_state`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// What is wrong with the frame.
    Damaged(&'static str),
    /// The allocator refused the records' memory: this many bytes.
    OutOfMemory(usize),
}

impl From<&'static str> for FrameError {
    fn from(problem: &'static str) -> FrameError {
        FrameError::Damaged(problem)
    }
}

/// Splits a state blob into the snapshot and the records of its segments out (none for a
/// bare snapshot). Every length is checked against what is left, so a damaged frame is
/// an error, never a large allocation; the records' memory, which the frame's length
/// bounds, is reserved fallibly. Time: O(size).
///
/// # Errors
/// [`FrameError::Damaged`] with what is wrong with the frame;
/// [`FrameError::OutOfMemory`] if the allocator refuses the records' memory.
pub(crate) fn decode_state(bytes: &[u8]) -> Result<(&[u8], Vec<OutRecord>), FrameError> {
    if bytes.len() < 8 || bytes[..8] != STATE_MAGIC {
        return Ok((bytes, Vec::new()));
    }
    let mut r = Reader { bytes, at: 8 };
    let version = r.u32()?;
    if version != 1 && version != STATE_VERSION {
        return Err("an unknown version of the segments frame".into());
    }
    let n = r.u32()?;
    let len = usize::try_from(r.u64()?).map_err(|_| "a snapshot longer than memory")?;
    let snapshot = r.take(len)?;
    // Each record's head takes bytes of the frame, so the count of records that can fit
    // what is left bounds the reservation: a count far past the end asks for no memory.
    // (A record of version 1 has no member count.)
    let head = if version == 1 {
        RECORD_HEAD - 4
    } else {
        RECORD_HEAD
    };
    let fit = (bytes.len() - r.at) / head;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > fit {
        return Err("more segment records than the frame holds".into());
    }
    let mut records = Vec::new();
    records
        .try_reserve_exact(n)
        .map_err(|_| FrameError::OutOfMemory(n.saturating_mul(size_of::<OutRecord>())))?;
    for _ in 0..n {
        let id = SegmentId::new(r.u64()?);
        let digest: [u8; 32] = r
            .take(32)?
            .try_into()
            .map_err(|_| "a short segment checksum")?;
        let roots = r.u32()?;
        let members = if version == 1 { NO_PENDING } else { r.u32()? };
        let outside = r.u32()?;
        let pending = r.u32()?;
        let roots = r.words(roots)?;
        let members = match members {
            NO_PENDING => None,
            m => Some(r.words(m)?),
        };
        let outside = r.words(outside)?;
        let pending = match pending {
            NO_PENDING => None,
            p => Some(r.words(p)?),
        };
        records.push(OutRecord {
            id,
            roots,
            members,
            outside,
            digest,
            pending,
        });
    }
    if r.at != bytes.len() {
        return Err("bytes after the last segment record".into());
    }
    Ok((snapshot, records))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("a length past the end")?;
        let s = self.bytes.get(self.at..end).ok_or("cut short")?;
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "cut short")?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "cut short")?;
        Ok(u64::from_le_bytes(b))
    }

    /// `n` words, their memory reserved fallibly once the frame is known to hold them.
    fn words(&mut self, n: u32) -> Result<Vec<Word>, FrameError> {
        let n = n as usize;
        let len = n.checked_mul(8).ok_or("a count past the end")?;
        let raw = self.take(len)?;
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| FrameError::OutOfMemory(len))?;
        out.extend(raw.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Word::from_bits(u64::from_le_bytes(b))
        }));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, pending: bool) -> OutRecord {
        OutRecord {
            id: SegmentId::new(id),
            roots: vec![Word::from_bits(id * 10), Word::from_bits(id * 10 + 1)],
            members: Some(vec![Word::from_bits(id * 10 + 2)]),
            outside: vec![Word::from_bits(77)],
            digest: [id as u8; 32],
            pending: pending.then(|| vec![Word::from_bits(5)]),
        }
    }

    #[test]
    fn frames_round_trip_and_damage_is_an_error() {
        let snap = b"COWTENT\0 and the rest".to_vec();
        // No segment out: the bare snapshot.
        assert_eq!(encode_state(snap.clone(), &[]).unwrap(), snap);
        assert_eq!(decode_state(&snap).unwrap(), (&snap[..], vec![]));
        let records = vec![record(1, false), record(9, true)];
        let framed = encode_state(snap.clone(), &records).unwrap();
        // Reserved exactly: the one fallible reservation holds the whole frame.
        assert_eq!(framed.capacity(), framed.len());
        let (s, r) = decode_state(&framed).unwrap();
        assert_eq!((s, r), (&snap[..], records));
        // Every cut is refused, and so is a byte too many.
        for cut in 8..framed.len() {
            assert!(decode_state(&framed[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = framed.clone();
        long.push(0);
        assert!(decode_state(&long).is_err());
        // A count far past the end asks for no memory.
        let mut huge = framed.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_state(&huge),
            Err(FrameError::Damaged(
                "more segment records than the frame holds"
            ))
        );
    }

    #[test]
    fn a_version_1_frame_reads_with_no_member_stubs() {
        let snap = b"COWTENT\0 and the rest".to_vec();
        let mut r = record(3, true);
        r.members = None;
        // Version 1: no member count after the root count.
        let mut v1 = Vec::new();
        v1.extend(STATE_MAGIC);
        v1.extend(1u32.to_le_bytes());
        v1.extend(1u32.to_le_bytes());
        v1.extend((snap.len() as u64).to_le_bytes());
        v1.extend(&snap);
        v1.extend(3u64.to_le_bytes());
        v1.extend(r.digest);
        for n in [2u32, 1, 1] {
            v1.extend(n.to_le_bytes());
        }
        for w in r
            .roots
            .iter()
            .chain(&r.outside)
            .chain(r.pending.iter().flatten())
        {
            v1.extend(w.bits().to_le_bytes());
        }
        assert_eq!(decode_state(&v1).unwrap(), (&snap[..], vec![r.clone()]));
        // The same records framed now (version 2) read back the same.
        let framed = encode_state(snap.clone(), std::slice::from_ref(&r)).unwrap();
        assert_eq!(&framed[8..12], &STATE_VERSION.to_le_bytes());
        assert_eq!(decode_state(&framed).unwrap(), (&snap[..], vec![r]));
        // A version 1 record's head is 52 bytes: two records with no words fill a frame of
        // two heads, which the bound on the record count lets through.
        let mut empty = Vec::new();
        empty.extend(STATE_MAGIC);
        empty.extend(1u32.to_le_bytes());
        empty.extend(2u32.to_le_bytes());
        empty.extend((snap.len() as u64).to_le_bytes());
        empty.extend(&snap);
        for id in [4u64, 5] {
            empty.extend(id.to_le_bytes());
            empty.extend([id as u8; 32]);
            for n in [0u32, 0, NO_PENDING] {
                empty.extend(n.to_le_bytes());
            }
        }
        let (_, rs) = decode_state(&empty).unwrap();
        assert_eq!(rs.len(), 2);
        assert!(rs.iter().all(|r| r.roots.is_empty() && r.members.is_none()));
        // A version past these is refused.
        let mut v3 = v1.clone();
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(decode_state(&v3).is_err());
    }
}
