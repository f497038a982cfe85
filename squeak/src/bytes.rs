//! Reading and writing words in an image's byte order, with every read bounds-checked.

use crate::{ExportError, ImportError};

/// The byte order of an image file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ByteOrder {
    /// Least significant byte first (x86, ARM as usually run).
    Little,
    /// Most significant byte first (PowerPC, SPARC, 68k).
    Big,
}

/// A byte slice read in one byte order; every read is checked.
#[derive(Clone, Copy)]
pub(crate) struct Mem<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) order: ByteOrder,
}

impl<'a> Mem<'a> {
    pub(crate) fn new(b: &'a [u8], order: ByteOrder) -> Mem<'a> {
        Mem { b, order }
    }

    /// `n` bytes at `at`, or `Truncated` naming `what`.
    pub(crate) fn take(
        &self,
        at: usize,
        n: usize,
        what: &'static str,
    ) -> Result<&'a [u8], ImportError> {
        at.checked_add(n)
            .and_then(|end| self.b.get(at..end))
            .ok_or(ImportError::Truncated {
                what,
                at: at as u64,
                // Saturated: a length read from the file may reach past the address space.
                end: (at as u64).saturating_add(n as u64),
                len: self.b.len() as u64,
            })
    }

    pub(crate) fn u32(&self, at: usize, what: &'static str) -> Result<u32, ImportError> {
        let s: [u8; 4] = self.take(at, 4, what)?.try_into().unwrap_or([0; 4]);
        Ok(match self.order {
            ByteOrder::Little => u32::from_le_bytes(s),
            ByteOrder::Big => u32::from_be_bytes(s),
        })
    }

    pub(crate) fn u64(&self, at: usize, what: &'static str) -> Result<u64, ImportError> {
        let s: [u8; 8] = self.take(at, 8, what)?.try_into().unwrap_or([0; 8]);
        Ok(match self.order {
            ByteOrder::Little => u64::from_le_bytes(s),
            ByteOrder::Big => u64::from_be_bytes(s),
        })
    }

    /// A word of `ws` bytes (4 or 8).
    pub(crate) fn word(
        &self,
        at: usize,
        ws: usize,
        what: &'static str,
    ) -> Result<u64, ImportError> {
        if ws == 8 {
            self.u64(at, what)
        } else {
            self.u32(at, what).map(u64::from)
        }
    }
}

/// Converts raw units of `unit` bytes (1, 2, 4 or 8) from `order` to little-endian, which is
/// how cowheap stores raw units.
pub(crate) fn units_to_le(raw: &[u8], unit: usize, order: ByteOrder) -> Vec<u8> {
    let mut out = raw.to_vec();
    if order == ByteOrder::Big && unit > 1 {
        for c in out.chunks_exact_mut(unit) {
            c.reverse();
        }
    }
    out
}

/// Appends little-endian raw units to `out` in `order`.
pub(crate) fn units_from_le(out: &mut Vec<u8>, le: &[u8], unit: usize, order: ByteOrder) {
    let at = out.len();
    out.extend_from_slice(le);
    if order == ByteOrder::Big && unit > 1 {
        for c in out[at..].chunks_exact_mut(unit) {
            c.reverse();
        }
    }
}

/// Writes words in one byte order.
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    pub(crate) order: ByteOrder,
}

impl Out {
    pub(crate) fn u32(&mut self, v: u32) {
        match self.order {
            ByteOrder::Little => self.buf.extend(v.to_le_bytes()),
            ByteOrder::Big => self.buf.extend(v.to_be_bytes()),
        }
    }

    pub(crate) fn u64(&mut self, v: u64) {
        match self.order {
            ByteOrder::Little => self.buf.extend(v.to_le_bytes()),
            ByteOrder::Big => self.buf.extend(v.to_be_bytes()),
        }
    }

    /// A word of `ws` bytes (4 or 8).
    ///
    /// # Errors
    /// [`ExportError::TooLarge`] for a value wider than a 4-byte word: callers check their
    /// values first, so this only stops a value that escaped them from being cut short.
    pub(crate) fn word(&mut self, v: u64, ws: usize) -> Result<(), ExportError> {
        if ws == 8 {
            self.u64(v);
        } else {
            let v = u32::try_from(v).map_err(|_| ExportError::TooLarge("32-bit"))?;
            self.u32(v);
        }
        Ok(())
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
}
