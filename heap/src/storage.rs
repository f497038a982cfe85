//! Where a base heap's words live: owned memory, or a read-only mapping of an image file.

/// The bytes behind a [`crate::BaseHeap`].
///
/// Both forms are read through [`Storage::bytes`] as little-endian bytes, so the read path is
/// the same code for a heap built in memory and one mapped from a file. Words are read with
/// checked, unaligned little-endian loads: no cast of mapped memory to typed references.
#[derive(Debug)]
pub(crate) enum Storage {
    /// Built in memory by [`crate::Builder::freeze`]: object words then offsets.
    Owned(Box<[u64]>),
    /// A read-only mapping of a whole image file.
    Mapped(memmap2::Mmap),
}

impl Storage {
    /// All the bytes.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(w) => bytemuck::cast_slice(w),
            Storage::Mapped(m) => m,
        }
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
