//! Where a base heap's words live: owned memory, or a read-only mapping of an image file.

use crate::Word;
use crate::layout::{self, HEADER_WORDS, SIZE_WORD};

/// The bytes behind a [`crate::BaseHeap`]: owned words or a read-only mapping, behind one
/// cheaply cloned handle (`bytes::Bytes`, which keeps the owner alive and holds the pointer and
/// length inline).
///
/// Both forms are read as little-endian bytes through checked, unaligned loads: no cast of
/// mapped memory to typed references on the read path.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    bytes: bytes::Bytes,
    mapped: bool,
}

/// Owned words seen as bytes.
struct Words(Box<[u64]>);

impl AsRef<[u8]> for Words {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

impl Storage {
    /// Words built in memory (by [`crate::Builder::freeze`]).
    pub(crate) fn owned(words: Box<[u64]>) -> Storage {
        Storage {
            bytes: bytes::Bytes::from_owner(Words(words)),
            mapped: false,
        }
    }

    /// A read-only mapping of a whole image file.
    pub(crate) fn mapped(map: memmap2::Mmap) -> Storage {
        Storage {
            bytes: bytes::Bytes::from_owner(map),
            mapped: true,
        }
    }

    /// All the bytes.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True for a mapping.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped
    }
}

/// The little-endian u64 at byte `at`, if `bytes` holds one there.
#[inline(always)]
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..)
        .and_then(|b| b.first_chunk::<8>())
        .map(|b| u64::from_le_bytes(*b))
}

/// Pointer slot `i` of the object whose header is at word `offset` of the objects region
/// starting at byte `objects_at` of `b`. Checked loads only: a wrong offset reads wrong bytes,
/// never out of bounds.
#[inline(always)]
pub(crate) fn slot_in(b: &[u8], objects_at: usize, offset: u64, i: usize) -> Option<Word> {
    // Wrapping: an unverified file may hold any offset.
    let h = objects_at.wrapping_add((offset as usize).wrapping_mul(8));
    let n = layout::slot_count(u64_at(b, h.wrapping_add(SIZE_WORD * 8))?);
    if i >= n {
        return None;
    }
    u64_at(b, h.wrapping_add((HEADER_WORDS + i) * 8)).map(Word::from_bits)
}

/// A cheap, cloneable handle for reading a base heap's pointer slots by header offset.
///
/// A tenant keeps one in its own record, so its read path reaches the heap's bytes without
/// going through the shared `Base`; the compiler can then keep the pointer and length in
/// registers across a loop of reads. Cloning increments a reference count.
#[derive(Debug, Clone)]
pub struct HeapReader {
    storage: Storage,
    objects_at: usize,
}

impl HeapReader {
    pub(crate) fn new(storage: Storage, objects_at: usize) -> HeapReader {
        HeapReader {
            storage,
            objects_at,
        }
    }

    /// Pointer slot `i` of the object whose header is at word offset `offset` (see
    /// [`crate::BaseHeap::header_offsets`]), or `None`. Time: O(1); two loads.
    #[inline(always)]
    pub fn slot_at(&self, offset: u64, i: usize) -> Option<Word> {
        slot_in(self.storage.bytes(), self.objects_at, offset, i)
    }
}
