//! Which image format a file is in, and the header fields cowheap keeps to write it back.

use crate::bytes::{ByteOrder, Mem};
use crate::{ImportError, ImportResult};
use cowheap_heap::{BaseHeap, Word};

/// The two object-memory families.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Family {
    /// The Squeak object memory up to Squeak 4.6: 1- to 3-word headers, compact classes.
    V3,
    /// The Spur object memory (Squeak 5 and later, Pharo, Cuis): 64-bit headers, class table.
    Spur,
}

/// An image format: its version number (the file's first word) and byte order. The version
/// fixes the family and the word size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ImageFormat {
    version: u32,
    order: ByteOrder,
}

/// Versions that are images but that this crate does not read: 6501 (V3 as saved by the
/// earliest Squeaks) and 68000/68002/68003 (64-bit V3).
const KNOWN_UNSUPPORTED: [u32; 4] = [6501, 68000, 68002, 68003];

impl ImageFormat {
    /// V3, 32-bit, floats stored most significant word first (Squeak 2.x to 4.x).
    pub const V3: u32 = 6502;
    /// V3, 32-bit, with closures.
    pub const V3_CLOSURES: u32 = 6504;
    /// V3, 32-bit, closures and floats in the platform's word order.
    pub const V3_NATIVE_FLOATS: u32 = 6505;
    /// Spur, 32-bit.
    pub const SPUR_32: u32 = 6521;
    /// Spur, 64-bit.
    pub const SPUR_64: u32 = 68021;

    /// The format with image version `version` in `order`.
    ///
    /// # Errors
    /// [`ImportError::UnsupportedVersion`] for a version this crate does not read.
    pub fn new(version: u32, order: ByteOrder) -> ImportResult<ImageFormat> {
        match version {
            Self::V3
            | Self::V3_CLOSURES
            | Self::V3_NATIVE_FLOATS
            | Self::SPUR_32
            | Self::SPUR_64 => Ok(ImageFormat { version, order }),
            _ => Err(ImportError::UnsupportedVersion(version)),
        }
    }

    /// 32-bit V3 (version 6502) in `order`.
    pub fn v3(order: ByteOrder) -> ImageFormat {
        ImageFormat {
            version: Self::V3,
            order,
        }
    }

    /// 32-bit Spur (6521) in `order`.
    pub fn spur32(order: ByteOrder) -> ImageFormat {
        ImageFormat {
            version: Self::SPUR_32,
            order,
        }
    }

    /// 64-bit Spur (68021) in `order`.
    pub fn spur64(order: ByteOrder) -> ImageFormat {
        ImageFormat {
            version: Self::SPUR_64,
            order,
        }
    }

    /// The same format in another byte order.
    pub fn with_order(self, order: ByteOrder) -> ImageFormat {
        ImageFormat { order, ..self }
    }

    /// The image version number.
    pub fn version(self) -> u32 {
        self.version
    }

    /// The byte order.
    pub fn order(self) -> ByteOrder {
        self.order
    }

    /// The object-memory family.
    pub fn family(self) -> Family {
        if matches!(self.version, Self::SPUR_32 | Self::SPUR_64) {
            Family::Spur
        } else {
            Family::V3
        }
    }

    /// Bytes per word (and per pointer slot): 4 or 8.
    pub fn word_bytes(self) -> usize {
        if self.version == Self::SPUR_64 { 8 } else { 4 }
    }

    /// A short name, for messages.
    pub fn name(self) -> &'static str {
        match (self.family(), self.word_bytes()) {
            (Family::V3, _) => "V3",
            (Family::Spur, 4) => "32-bit Spur",
            _ => "64-bit Spur",
        }
    }
}

/// Finds the format and where the image header starts (0, or 512 after a prefix): the
/// version is read at both offsets in both byte orders.
pub(crate) fn detect(b: &[u8]) -> ImportResult<(ImageFormat, usize)> {
    let first = b
        .get(..4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ImportError::Truncated {
            what: "the image version",
            at: 0,
            end: 4,
            len: b.len() as u64,
        })?;
    for at in [0usize, 512] {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let Ok(v) = Mem::new(b, order).u32(at, "the image version") else {
                continue;
            };
            if let Ok(f) = ImageFormat::new(v, order) {
                return Ok((f, at));
            }
            if KNOWN_UNSUPPORTED.contains(&v) {
                return Err(ImportError::UnsupportedVersion(v));
            }
        }
    }
    Err(ImportError::BadMagic { found: first })
}

/// The header fields of an image that are not derived from its objects, kept so that an
/// export writes them back. They travel inside the base as integer roots named
/// `image.<field>` (see [`ImageHeader::ROOTS`]), so a base saved as a cowheap image file and
/// opened again still exports exactly.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ImageHeader {
    /// The image version the base was read from (0 if it was not read from an image).
    pub version: u32,
    /// Bytes before the image header (0, or 512 for files with a prefix; exported as zeros).
    pub prefix: u32,
    /// The header size field (64 for 32-bit images, 128 for 64-bit Spur).
    pub header_size: u32,
    /// The address the object memory started at when the image was saved; pointers are
    /// addresses from it.
    pub old_base: u64,
    /// The last identity hash handed out.
    pub last_hash: u64,
    /// The saved window size (width << 16 | height).
    pub window_size: u64,
    /// V3: the full-screen flag; Spur: the header flags.
    pub flags: u64,
    /// Extra VM memory asked for.
    pub extra_vm_memory: u32,
    /// Spur: number of stack pages (low 16 bits) and an unused short; V3: padding.
    pub stack_pages: u32,
    /// Spur: desired eden size; V3: padding.
    pub eden_bytes: u32,
    /// Spur: maximum external semaphore table size (low 16 bits) and an unused short.
    pub max_ext_sem_tab: u32,
    /// Spur: free old space in the image.
    pub free_old_space: u64,
}

impl ImageHeader {
    /// Names of the roots the header travels in, in field order.
    pub const ROOTS: [&'static str; 12] = [
        "image.version",
        "image.prefix",
        "image.headerSize",
        "image.oldBase",
        "image.lastHash",
        "image.windowSize",
        "image.flags",
        "image.extraVMMemory",
        "image.stackPages",
        "image.edenBytes",
        "image.maxExtSemTabSize",
        "image.freeOldSpace",
    ];

    fn fields(&self) -> [u64; 12] {
        [
            self.version.into(),
            self.prefix.into(),
            self.header_size.into(),
            self.old_base,
            self.last_hash,
            self.window_size,
            self.flags,
            self.extra_vm_memory.into(),
            self.stack_pages.into(),
            self.eden_bytes.into(),
            self.max_ext_sem_tab.into(),
            self.free_old_space,
        ]
    }

    /// The header as `(root name, word)` pairs. Values wider than 62 bits cannot be held by a
    /// small integer and are refused.
    pub(crate) fn roots(&self) -> ImportResult<Vec<(String, Word)>> {
        Self::ROOTS
            .iter()
            .zip(self.fields())
            .map(|(&n, v)| {
                i64::try_from(v)
                    .ok()
                    .and_then(Word::int)
                    .map(|w| (n.to_owned(), w))
                    .ok_or(ImportError::BadImageHeader(
                        "a header field wider than 62 bits",
                    ))
            })
            .collect()
    }

    /// The header a base carries in its roots; fields it does not carry are 0.
    pub fn from_heap(heap: &BaseHeap) -> ImageHeader {
        let get = |i: usize| {
            heap.root(Self::ROOTS[i])
                .and_then(|v| v.as_int())
                .map_or(0, |v| v as u64)
        };
        ImageHeader {
            version: get(0) as u32,
            prefix: get(1) as u32,
            header_size: get(2) as u32,
            old_base: get(3),
            last_hash: get(4),
            window_size: get(5),
            flags: get(6),
            extra_vm_memory: get(7) as u32,
            stack_pages: get(8) as u32,
            eden_bytes: get(9) as u32,
            max_ext_sem_tab: get(10) as u32,
            free_old_space: get(11),
        }
    }

    /// Reads the fields after the special objects pointer. `m` starts at the image header.
    pub(crate) fn read_fields(&mut self, m: &Mem<'_>, ws: usize) -> ImportResult<()> {
        const W: &str = "the image header";
        if ws == 8 {
            self.last_hash = m.u64(32, W)?;
            self.window_size = m.u64(40, W)?;
            self.flags = m.u64(48, W)?;
            self.extra_vm_memory = m.u32(56, W)?;
            self.stack_pages = m.u32(60, W)?;
            self.eden_bytes = m.u32(64, W)?;
            self.max_ext_sem_tab = m.u32(68, W)?;
            self.free_old_space = m.u64(80, W)?;
        } else {
            self.last_hash = m.u32(20, W)?.into();
            self.window_size = m.u32(24, W)?.into();
            self.flags = m.u32(28, W)?.into();
            self.extra_vm_memory = m.u32(32, W)?;
            self.stack_pages = m.u32(36, W)?;
            self.eden_bytes = m.u32(40, W)?;
            self.max_ext_sem_tab = m.u32(44, W)?;
            self.free_old_space = m.u32(52, W)?.into();
        }
        Ok(())
    }
}

/// Writes an image header of `size` bytes: the fixed fields, then `fields` as
/// [`ImageHeader::read_fields`] reads them, `first_segment` (Spur) and zero padding.
pub(crate) fn write_header(
    out: &mut crate::bytes::Out,
    f: ImageFormat,
    h: &ImageHeader,
    size: usize,
    data_bytes: u64,
    special: u64,
    first_segment: Option<u64>,
) {
    let start = out.buf.len();
    let ws = f.word_bytes();
    out.u32(f.version());
    out.u32(size as u32);
    out.word(data_bytes, ws);
    out.word(h.old_base, ws);
    out.word(special, ws);
    out.word(h.last_hash, ws);
    out.word(h.window_size, ws);
    out.word(h.flags, ws);
    out.u32(h.extra_vm_memory);
    out.u32(h.stack_pages);
    out.u32(h.eden_bytes);
    out.u32(h.max_ext_sem_tab);
    if let Some(seg) = first_segment {
        out.word(seg, ws);
        out.word(h.free_old_space, ws);
    }
    let written = out.buf.len() - start;
    out.zeros(size.saturating_sub(written));
}
