//! Which image format a file is in, and the header fields cowheap keeps to write it back.

use crate::bytes::{ByteOrder, Mem};
use crate::{ExportError, ExportResult, ImportError, ImportResult};
use cowheap_heap::{BaseHeap, Format, ObjectIndex, Word};

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
/// earliest Squeaks), 68000/68002/68003 (64-bit V3) and 68019 (64-bit Spur with the immediate
/// tags of before 68021). V3 versions with the multiple-bytecode-sets bit
/// ([`ImageFormat::MULTIPLE_BYTECODE_SETS`]) are refused as unsupported too.
const KNOWN_UNSUPPORTED: [u32; 5] = [6501, 68000, 68002, 68003, 68019];

/// The 64-bit V3 versions, which the VMs that wrote them saved as a whole 64-bit word: in a
/// big-endian file the first four bytes are zeros and the version is the next four.
const V3_64: [u64; 3] = [68000, 68002, 68003];

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
    /// The bit of the version that says the image's methods may use the alternate bytecode
    /// set (SistaV1), so a VM must run both sets. Squeak 6 and later save Spur images as
    /// 7033 (32-bit) and 68533 (64-bit): the object memory is that of 6521 and 68021.
    pub const MULTIPLE_BYTECODE_SETS: u32 = 512;

    /// The format with image version `version` in `order`: 6502, 6504, 6505, 6521 and
    /// 68021, and the two Spur versions with the multiple-bytecode-sets bit (7033, 68533).
    ///
    /// # Errors
    /// [`ImportError::UnsupportedVersion`] for a version this crate does not read.
    pub fn new(version: u32, order: ByteOrder) -> ImportResult<ImageFormat> {
        match version {
            Self::V3 | Self::V3_CLOSURES | Self::V3_NATIVE_FLOATS => {
                Ok(ImageFormat { version, order })
            }
            v if matches!(
                v & !Self::MULTIPLE_BYTECODE_SETS,
                Self::SPUR_32 | Self::SPUR_64
            ) =>
            {
                Ok(ImageFormat { version, order })
            }
            _ => Err(ImportError::UnsupportedVersion(version)),
        }
    }

    /// The version without the multiple-bytecode-sets bit: the object memory's version.
    fn base_version(self) -> u32 {
        self.version & !Self::MULTIPLE_BYTECODE_SETS
    }

    /// Whether the version has the multiple-bytecode-sets bit (7033, 68533).
    pub fn multiple_bytecode_sets(self) -> bool {
        self.version & Self::MULTIPLE_BYTECODE_SETS != 0
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
        if matches!(self.base_version(), Self::SPUR_32 | Self::SPUR_64) {
            Family::Spur
        } else {
            Family::V3
        }
    }

    /// Bytes per word (and per pointer slot): 4 or 8.
    pub fn word_bytes(self) -> usize {
        if self.base_version() == Self::SPUR_64 {
            8
        } else {
            4
        }
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

/// Whether `v` is the version of an image this crate does not read: one of
/// [`KNOWN_UNSUPPORTED`], or a V3 version with the multiple-bytecode-sets bit.
fn known_unsupported(v: u32) -> bool {
    let base = v & !ImageFormat::MULTIPLE_BYTECODE_SETS;
    KNOWN_UNSUPPORTED.contains(&base)
        || (v != base
            && matches!(
                base,
                ImageFormat::V3 | ImageFormat::V3_CLOSURES | ImageFormat::V3_NATIVE_FLOATS
            ))
}

/// Finds the format and where the image header starts (0, or 512 after a prefix): the
/// version is read at both offsets in both byte orders, as a 32-bit word and (for 64-bit
/// V3, which is refused) as a 64-bit one.
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
            if known_unsupported(v) {
                return Err(ImportError::UnsupportedVersion(v));
            }
            if let Ok(w) = Mem::new(b, order).u64(at, "the image version")
                && V3_64.contains(&w)
            {
                // Checked: every entry of V3_64 fits 32 bits.
                return Err(ImportError::UnsupportedVersion(
                    u32::try_from(w).unwrap_or(u32::MAX),
                ));
            }
        }
    }
    Err(ImportError::BadMagic { found: first })
}

/// The header fields of an image that are not derived from its objects, kept so that an
/// export writes them back. They travel inside the base as integer roots named
/// `image.<field>` (see [`ImageHeader::ROOTS`] and [`ImageHeader::ORDER_ROOT`]), so a base
/// saved as a cowheap image file and opened again still exports exactly, by default in the
/// version and byte order it was read in. [`ImageHeader::try_from_heap`] checks them.
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
    /// The byte order the base was read in (root [`ImageHeader::ORDER_ROOT`], 1 for
    /// big-endian, 0 for little-endian); `None` if it was not read from an image.
    pub order: Option<ByteOrder>,
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

    /// The largest header size an export writes (real images have 64 or 128 bytes).
    pub const MAX_HEADER_SIZE: u32 = 65_536;

    /// The root holding the byte order the base was read in: 1 big-endian, 0 little-endian.
    pub const ORDER_ROOT: &'static str = "image.bigEndian";

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
            .chain(self.order.map(|o| {
                let big = i64::from(o == ByteOrder::Big);
                Ok((
                    Self::ORDER_ROOT.to_owned(),
                    Word::int(big).unwrap_or(Word::from_bits(1)),
                ))
            }))
            .collect()
    }

    /// The header a base carries in its roots, for display: a field whose root is missing,
    /// not an integer or out of its range reads as 0, and a byte order root other than 0 or 1
    /// as none. [`ImageHeader::try_from_heap`] refuses such roots instead. Time: O(roots).
    pub fn from_heap(heap: &BaseHeap) -> ImageHeader {
        let get = |i: usize| {
            heap.root(Self::ROOTS[i])
                .and_then(|v| v.as_int())
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0)
        };
        let get32 = |i: usize| u32::try_from(get(i)).unwrap_or(0);
        ImageHeader {
            version: get32(0),
            prefix: get32(1),
            header_size: get32(2),
            old_base: get(3),
            last_hash: get(4),
            window_size: get(5),
            flags: get(6),
            extra_vm_memory: get32(7),
            stack_pages: get32(8),
            eden_bytes: get32(9),
            max_ext_sem_tab: get32(10),
            free_old_space: get(11),
            order: match heap.root(Self::ORDER_ROOT).and_then(|v| v.as_int()) {
                Some(0) => Some(ByteOrder::Little),
                Some(1) => Some(ByteOrder::Big),
                _ => None,
            },
        }
    }

    /// The header a base carries in its roots, every root checked: a missing root is 0 (no
    /// byte order for the order root), a present one must be an integer in its field's range
    /// (a version this crate knows, a prefix of 0 or 512, a header size that is a multiple of
    /// 4 and at most [`ImageHeader::MAX_HEADER_SIZE`], 32-bit fields within 32 bits, a byte
    /// order of 0 or 1). Time: O(roots).
    ///
    /// # Errors
    /// [`ExportError::BadHeaderRoot`] naming the first root that is not.
    pub fn try_from_heap(heap: &BaseHeap) -> ExportResult<ImageHeader> {
        let bad = |root, value| ExportError::BadHeaderRoot {
            root,
            value,
            target: "Squeak",
        };
        let get = |root: &'static str| -> ExportResult<Option<u64>> {
            let Some(v) = heap.root(root) else {
                return Ok(None);
            };
            let n = v.as_int().ok_or(bad(root, None))?;
            u64::try_from(n).map(Some).map_err(|_| bad(root, Some(n)))
        };
        let word = |i: usize| -> ExportResult<u64> { Ok(get(Self::ROOTS[i])?.unwrap_or(0)) };
        let narrow = |i: usize, ok: &dyn Fn(u32) -> bool| -> ExportResult<u32> {
            let root = Self::ROOTS[i];
            let v = get(root)?.unwrap_or(0);
            u32::try_from(v)
                .ok()
                .filter(|&v| ok(v))
                .ok_or(bad(root, i64::try_from(v).ok()))
        };
        let any = |_: u32| true;
        let order = match get(Self::ORDER_ROOT)? {
            None => None,
            Some(0) => Some(ByteOrder::Little),
            Some(1) => Some(ByteOrder::Big),
            Some(v) => return Err(bad(Self::ORDER_ROOT, i64::try_from(v).ok())),
        };
        Ok(ImageHeader {
            version: narrow(0, &|v| {
                v == 0 || ImageFormat::new(v, ByteOrder::Little).is_ok()
            })?,
            prefix: narrow(1, &|v| v == 0 || v == 512)?,
            header_size: narrow(2, &|v| v % 4 == 0 && v <= Self::MAX_HEADER_SIZE)?,
            old_base: word(3)?,
            last_hash: word(4)?,
            window_size: word(5)?,
            flags: word(6)?,
            extra_vm_memory: narrow(7, &any)?,
            stack_pages: narrow(8, &any)?,
            eden_bytes: narrow(9, &any)?,
            max_ext_sem_tab: narrow(10, &any)?,
            free_old_space: word(11)?,
            order,
        })
    }

    /// Checks that the header's word-sized fields fit the words of `f`, and that its old base
    /// is aligned for `f`'s oops (4 bytes in V3, 8 in Spur) and leaves room in its address
    /// space (below 2^32 in 32-bit images, below 2^48 in 64-bit ones, the most user address
    /// space 64-bit systems map). Time: O(1).
    ///
    /// # Errors
    /// [`ExportError::BadHeaderRoot`] naming the root that does not fit.
    pub(crate) fn check_for(&self, f: ImageFormat) -> ExportResult<()> {
        let ws = f.word_bytes();
        let word_max = if ws == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let align = if f.family() == crate::Family::V3 {
            4
        } else {
            8
        };
        let base_max = if ws == 8 {
            1 << 48
        } else {
            u64::from(u32::MAX)
        };
        let bad = |i: usize, v: u64| ExportError::BadHeaderRoot {
            root: Self::ROOTS[i],
            value: i64::try_from(v).ok(),
            target: f.name(),
        };
        if !self.old_base.is_multiple_of(align) || self.old_base > base_max {
            return Err(bad(3, self.old_base));
        }
        for (i, v) in [
            (4, self.last_hash),
            (5, self.window_size),
            (6, self.flags),
            (11, self.free_old_space),
        ] {
            if v > word_max {
                return Err(bad(i, v));
            }
        }
        Ok(())
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

/// Whether object `class` of `heap` is a class as the importers read one: an object of
/// pointers, not a hidden Spur object, whose slot 2 (the format) is a small integer. A VM
/// reads a class's superclass, method dictionary and format to send to or make an instance;
/// the importers refuse any other object as a class (V3 `NotAClass`, Spur `BadClassIndex`),
/// so the exporters write none. Time: O(1).
pub(crate) fn is_class(heap: &BaseHeap, class: ObjectIndex) -> bool {
    heap.object(class).is_ok_and(|o| {
        matches!(
            o.format,
            Format::Pointers | Format::Weak | Format::Ephemeron
        ) && !crate::auxbits::Aux::decode(o.aux).is_hidden()
            && o.slots.get(2).is_some_and(|w| w.as_int().is_some())
    })
}

/// A class's instance specification for pointer objects as its format word gives it: the
/// specification (0 no fields, 1 named fields only, 2 indexed fields only, 3 both) and the
/// number of named fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct InstSpec {
    /// The instance specification code.
    pub(crate) spec: u8,
    /// Named (fixed) fields of each instance.
    pub(crate) fixed: usize,
}

impl InstSpec {
    /// The specification in the format word (slot 2) of `class`, decoded by `decode`
    /// (V3 or Spur); `None` if the class has no small integer there.
    pub(crate) fn of_class(
        heap: &BaseHeap,
        class: Word,
        decode: fn(i64) -> Option<InstSpec>,
    ) -> Option<InstSpec> {
        let c = class.as_base()?;
        heap.get_slot(c, 2).and_then(Word::as_int).and_then(decode)
    }

    /// A V3 class format word: the specification in bits 7-10, the instance size (named
    /// fields plus one, the base header) in bits 1-6 with two more high bits in 16-17.
    pub(crate) fn v3(format: i64) -> Option<InstSpec> {
        let spec = u8::try_from((format >> 7) & 15).ok()?;
        let size = ((format >> 10) & 0xC0) + ((format >> 1) & 0x3F);
        let fixed = usize::try_from(size.checked_sub(1)?).ok()?;
        Some(InstSpec { spec, fixed })
    }

    /// A Spur class format word: the specification in bits 16-20, the named fields in bits
    /// 0-15.
    pub(crate) fn spur(format: i64) -> Option<InstSpec> {
        let spec = u8::try_from((format >> 16) & 31).ok()?;
        let fixed = usize::try_from(format & 0xFFFF).ok()?;
        Some(InstSpec { spec, fixed })
    }

    /// The header format code (0 to 3, the same in V3 and Spur) of a pointer object with
    /// `slots` slots whose class has this specification. A VM reads the code to tell named
    /// fields from indexed ones (`basicSize`, `basicAt:`, `instVarAt:`): an instance of a
    /// class with named fields only written as indexable would answer its named fields as
    /// indexed ones. A specification the slots cannot be (fewer slots than named fields, a
    /// code that is no pointer format) gives the code of the slots alone: 0 for none, else 2.
    pub(crate) fn pointer_format(spec: Option<InstSpec>, slots: usize) -> u8 {
        match spec {
            Some(InstSpec { spec: 0, .. }) if slots == 0 => 0,
            Some(InstSpec { spec: 1, fixed }) if slots == fixed => 1,
            // An ephemeron's class (Spur's 5) for plain pointers: one a collection fired,
            // which Spur makes non-indexable pointers.
            Some(InstSpec { spec: 5, fixed }) if slots == fixed => 1,
            Some(InstSpec { spec: 2, .. }) => 2,
            Some(InstSpec { spec: 3, fixed }) if slots >= fixed => 3,
            _ if slots == 0 => 0,
            _ => 2,
        }
    }
}

/// The prefix length `detect` found (0 or 512) as the header field keeps it.
pub(crate) fn prefix_field(prefix: usize) -> ImportResult<u32> {
    u32::try_from(prefix).map_err(|_| ImportError::BadImageHeader("a prefix wider than 32 bits"))
}

/// Writes an image header of `size` bytes: the fixed fields, then `fields` as
/// [`ImageHeader::read_fields`] reads them, `first_segment` (Spur) and zero padding.
///
/// # Errors
/// [`ExportError::TooLarge`] for a size or a field wider than the format's words (callers
/// check them with [`ImageHeader::check_for`] first).
pub(crate) fn write_header(
    out: &mut crate::bytes::Out,
    f: ImageFormat,
    h: &ImageHeader,
    size: u32,
    data_bytes: u64,
    special: u64,
    first_segment: Option<u64>,
) -> ExportResult<()> {
    let start = out.buf.len();
    let ws = f.word_bytes();
    out.u32(f.version());
    out.u32(size);
    out.word(data_bytes, ws)?;
    out.word(h.old_base, ws)?;
    out.word(special, ws)?;
    out.word(h.last_hash, ws)?;
    out.word(h.window_size, ws)?;
    out.word(crate::float::header_flags(h.flags, f), ws)?;
    out.u32(h.extra_vm_memory);
    out.u32(h.stack_pages);
    out.u32(h.eden_bytes);
    out.u32(h.max_ext_sem_tab);
    if let Some(seg) = first_segment {
        out.word(seg, ws)?;
        out.word(h.free_old_space, ws)?;
    }
    let written = out.buf.len() - start;
    out.zeros((size as usize).saturating_sub(written));
    Ok(())
}
