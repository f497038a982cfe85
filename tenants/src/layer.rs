//! A committed version's layer as bytes: what a store keeps so that other processes can
//! apply the same version ([`crate::commit::Repository::apply`]).
//!
//! ```text
//! magic "CHLAYER1"                        8 bytes
//! origin fingerprint                      32   the history's version-0 heap
//! parent fingerprint                      32   the version it applies over
//! parent version                          u64  that version's number
//! objects in the new version              u64
//! changed count, then that many u32       the pre-existing objects it changed, ascending
//! body count, then per body:
//!   index u32, class u64, format u8, hash u32, aux u32,
//!   slot count u32, byte count u32, slots (u64 each), bytes
//! blake3 of everything above              32
//! ```
//!
//! All little-endian. Decoding checks the digest first, then every count against the bytes
//! left (no allocation is sized by a count alone), every format code, and the changed
//! list's order. Where the layer is applied ([`crate::commit::Repository::apply`]), that the
//! changed objects are exactly its bodies below the parent's length, and every rule of a
//! version ([`cowheap_forwarders::Base::check_layer`]: no fewer objects than the parent,
//! each object once, formats, auxiliary bits, every word naming an object of the version).

use cowheap_forwarders::Committed;
use cowheap_heap::file::Reader;
use cowheap_heap::{FileError, FileResult, Fingerprint, Format, Word};

const MAGIC: &[u8; 8] = b"CHLAYER1";

/// A decoding's reservation the allocator refused, as a file read's is: an I/O error of
/// kind [`std::io::ErrorKind::OutOfMemory`].
fn refused(e: std::collections::TryReserveError) -> FileError {
    FileError::io(
        std::path::Path::new("layer"),
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, e.to_string()),
    )
}

/// The objects one commit wrote, over a given version of a given history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The fingerprint of the history's version-0 heap ([`cowheap_forwarders::Base::origin`]).
    pub origin: Fingerprint,
    /// The version the layer applies over; the new version is one more.
    pub parent: u64,
    /// That version's fingerprint ([`cowheap_forwarders::Base::fingerprint`]): a layer
    /// applies only over the very version it was made over.
    pub parent_fingerprint: Fingerprint,
    /// Objects in the new version.
    pub len: usize,
    /// The objects of the parent version it changed, ascending.
    pub changed: Vec<u32>,
    /// The bodies of the changed objects and of the objects it added (indices from the
    /// parent's length to `len`).
    pub objects: Vec<(u32, Committed)>,
}

impl Layer {
    /// The layer of version `version` (its own objects), with `changed`, the objects of its
    /// parent it changed, ascending; `None` for a version no commit made (a heap made,
    /// opened or flattened, which has no parent to apply over). Time: O(layer).
    pub fn of(version: &cowheap_forwarders::Base, changed: Vec<u32>) -> Option<Layer> {
        let parent = version.parent()?;
        let mut objects: Vec<(u32, Committed)> = version
            .changed_here()
            .filter_map(|x| Some((x.as_u32(), version.committed(x.as_u32())?.clone())))
            .collect();
        objects.sort_unstable_by_key(|&(x, _)| x);
        Some(Layer {
            origin: version.origin(),
            parent: parent.version(),
            parent_fingerprint: parent.fingerprint(),
            len: version.len(),
            changed,
            objects,
        })
    }

    /// The new version's number.
    pub fn version(&self) -> u64 {
        self.parent.saturating_add(1)
    }

    /// The layer as bytes. Time: O(its size).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// [`Layer::to_bytes`], its buffer reserved fallibly (all of it, before any byte is
    /// written): a commit's persist step answers the allocator's refusal instead of ending
    /// the process. Time: O(its size).
    ///
    /// # Errors
    /// The reservation's error if the allocator refuses the buffer.
    pub fn try_to_bytes(&self) -> Result<Vec<u8>, std::collections::TryReserveError> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.encoded_len())?;
        self.encode(&mut out);
        Ok(out)
    }

    /// Bytes [`Layer::to_bytes`] makes.
    pub fn encoded_len(&self) -> usize {
        let bodies: usize = self
            .objects
            .iter()
            .map(|(_, c)| {
                (4 + 8 + 1 + 4 + 4 + 4 + 4_usize)
                    .saturating_add(c.slots.len().saturating_mul(8))
                    .saturating_add(c.bytes.len())
            })
            .fold(0, usize::saturating_add);
        (MAGIC.len() + 32 + 32 + 8 + 8 + 8 + 8 + 32)
            .saturating_add(self.changed.len().saturating_mul(4))
            .saturating_add(bodies)
    }

    /// Writes the layer's bytes into `out`, empty and with room for them.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.origin.0);
        out.extend_from_slice(&self.parent_fingerprint.0);
        out.extend_from_slice(&self.parent.to_le_bytes());
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&(self.changed.len() as u64).to_le_bytes());
        for x in &self.changed {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&(self.objects.len() as u64).to_le_bytes());
        for (x, c) in &self.objects {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&c.class.bits().to_le_bytes());
            out.push(c.format as u8);
            out.extend_from_slice(&c.hash.to_le_bytes());
            out.extend_from_slice(&c.aux.to_le_bytes());
            // Bodies come from a heap or a tenant, whose sizes are below 2^32.
            out.extend_from_slice(
                &u32::try_from(c.slots.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            out.extend_from_slice(
                &u32::try_from(c.bytes.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            for w in c.slots.iter() {
                out.extend_from_slice(&w.bits().to_le_bytes());
            }
            out.extend_from_slice(&c.bytes);
        }
        let digest = blake3::hash(out);
        out.extend_from_slice(digest.as_bytes());
    }

    /// A layer from bytes [`Layer::to_bytes`] made.
    ///
    /// # Errors
    /// [`FileError::Truncated`], [`FileError::BadMagic`], [`FileError::Checksum`] or
    /// [`FileError::Corrupt`]: every truncation and every flipped bit is refused; an I/O
    /// error of kind [`std::io::ErrorKind::OutOfMemory`] if the allocator refuses the
    /// layer's memory (every reservation is fallible).
    pub fn from_bytes(bytes: &[u8]) -> FileResult<Layer> {
        if bytes.len() < MAGIC.len() + 32 {
            return Err(FileError::Truncated {
                what: "layer",
                at: 0,
                need: (MAGIC.len() + 32) as u64,
                have: bytes.len() as u64,
            });
        }
        if &bytes[..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&bytes[..8]);
            return Err(FileError::BadMagic {
                expected: "cowheap version layer",
                found,
            });
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != digest {
            return Err(FileError::Checksum { part: "layer" });
        }
        let mut r = Reader::new(&body[8..], 8);
        let corrupt = |problem| FileError::corrupt("layer", problem);
        let origin = Fingerprint(r.array("origin")?);
        let parent_fingerprint = Fingerprint(r.array("parent fingerprint")?);
        let parent = r.u64("parent version")?;
        let len = usize::try_from(r.u64("objects")?).map_err(|_| corrupt("too many objects"))?;
        let n = r.count(4, "changed objects")?;
        let mut changed = Vec::new();
        changed.try_reserve_exact(n).map_err(refused)?;
        for _ in 0..n {
            changed.push(r.u32("changed object")?);
        }
        if !changed.windows(2).all(|w| w[0] < w[1]) {
            return Err(corrupt("the changed objects are not ascending"));
        }
        let n = r.count(29, "bodies")?;
        // A body takes 29 bytes of the layer at least and an element here more: reserved
        // up front only as many as the bytes left would hold, so a forged count asks for
        // no more memory than the layer's own size (the rest grow as bodies are read).
        let fit = r.remaining() / std::mem::size_of::<(u32, Committed)>();
        let mut objects: Vec<(u32, Committed)> = Vec::new();
        objects.try_reserve_exact(n.min(fit)).map_err(refused)?;
        for _ in 0..n {
            let x = r.u32("body index")?;
            let class = Word::from_bits(r.u64("class")?);
            let code = r.take(1, "format")?[0];
            let format = Format::from_code(code).ok_or(corrupt("an unknown format"))?;
            let hash = r.u32("hash")?;
            let aux = r.u32("aux")?;
            let slots = r.u32("slot count")? as usize;
            let nbytes = r.u32("byte count")? as usize;
            let need = slots.checked_mul(8).and_then(|s| s.checked_add(nbytes));
            if need.is_none_or(|need| need > r.remaining()) {
                return Err(corrupt("a body longer than the layer"));
            }
            let mut words = Vec::new();
            words.try_reserve_exact(slots).map_err(refused)?;
            for _ in 0..slots {
                words.push(Word::from_bits(r.u64("slot")?));
            }
            let mut raw = Vec::new();
            raw.try_reserve_exact(nbytes).map_err(refused)?;
            raw.extend_from_slice(r.take(nbytes, "bytes")?);
            let (slots, bytes) = (words.into_boxed_slice(), raw.into_boxed_slice());
            if objects.len() == objects.capacity() {
                objects.try_reserve(1).map_err(refused)?;
            }
            objects.push((
                x,
                Committed {
                    class,
                    format,
                    hash,
                    aux,
                    slots,
                    bytes,
                },
            ));
        }
        if r.remaining() != 0 {
            return Err(corrupt("bytes after the last body"));
        }
        let layer = Layer {
            origin,
            parent,
            parent_fingerprint,
            len,
            changed,
            objects,
        };
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Layer {
        let body = |n: u64| Committed {
            class: Word::from_bits(8),
            format: Format::Pointers,
            hash: 7,
            aux: 1,
            slots: vec![Word::from_bits(n << 3 | 1); 2].into(),
            bytes: Box::new([]),
        };
        Layer {
            origin: Fingerprint([3; 32]),
            parent: 4,
            parent_fingerprint: Fingerprint([5; 32]),
            len: 12,
            changed: vec![1, 5],
            objects: vec![(1, body(1)), (5, body(2)), (11, body(3))],
        }
    }

    #[test]
    fn layers_round_trip_and_refuse_every_truncation_and_bit_flip() {
        let layer = sample();
        let bytes = layer.to_bytes();
        assert_eq!(Layer::from_bytes(&bytes).unwrap(), layer);
        assert_eq!(layer.version(), 5);
        for n in 0..bytes.len() {
            assert!(Layer::from_bytes(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Layer::from_bytes(&b).is_err(), "bit {i} flipped");
        }
    }

    #[test]
    fn well_formed_layers_that_break_a_rule_are_refused() {
        let mut layer = sample();
        layer.changed = vec![5, 1];
        let err = Layer::from_bytes(&layer.to_bytes()).unwrap_err();
        assert!(matches!(err, FileError::Corrupt { .. }), "{err}");
    }
}
