//! Squeak V3 images (versions 6502, 6504, 6505): 32-bit words, one- to three-word object
//! headers, compact classes. The layout is described in `docs/FORMATS.md`.

use crate::auxbits::{Aux, V3Aux};
use crate::bytes::{Mem, Out, units_to_le};
use crate::float;
use crate::format::{ImageFormat, ImageHeader, InstSpec, is_class, prefix_field, write_header};
use crate::graph::{Graph, Immediates, Obj, Read, finish, slot_ref};
use crate::{ExportError, ExportResult, ImportError, ImportResult, ImportStats, Imported};
use cowheap_heap::{BaseHeap, Decoded, Format, ObjectIndex, Word};
use std::collections::HashMap;

/// Special objects array index of the compact classes array.
pub(crate) const COMPACT_CLASSES: usize = 28;
/// Header size this importer writes.
const HEADER_SIZE: u32 = 64;
/// Special objects array indices of the classes MethodContext and BlockContext.
const CONTEXT_CLASSES: [usize; 2] = [10, 11];
/// Compact class indices of BlockContext and MethodContext, fixed by the V3 virtual machine.
const COMPACT_CONTEXTS: [u8; 2] = [13, 14];
/// Field of a context holding its stack pointer.
const CONTEXT_STACKP: usize = 2;
/// Fields of a context before its stack (sender, pc, stack pointer, method, closure or
/// block argument count, receiver).
const CONTEXT_FIXED: usize = 6;

/// One object found by the walk over the data.
struct Rec {
    /// Byte offset of the base header in the data (what an oop points at, minus the base).
    hdr: usize,
    /// The class word of a two- or three-word header, without its type bits.
    class: u32,
    /// Size in words, the base header included.
    words: usize,
    header_type: u8,
}

/// The object memory after the walk: the data, every object, and the map from oops to
/// object numbers.
struct Memory<'a> {
    d: Mem<'a>,
    recs: Vec<Rec>,
    /// Object number by word offset of its base header; `u32::MAX` where none starts.
    index: Vec<u32>,
    old_base: u32,
}

impl Memory<'_> {
    /// The object an oop points at.
    fn resolve(&self, oop: u32) -> Option<u32> {
        let off = oop.checked_sub(self.old_base)? as usize;
        if !off.is_multiple_of(4) {
            return None;
        }
        self.index.get(off / 4).copied().filter(|&i| i != u32::MAX)
    }

    /// Field `k` of object `i`, raw, if `i` is an object of pointers (formats 0 to 4) that
    /// has that field. An object of raw data has no references: its words are kept as they
    /// are, not as the objects they would name, so a reference read from one here (the
    /// special objects array's nil, a compact class) would name nothing once the base is
    /// exported.
    fn raw_slot(&self, i: u32, k: usize) -> Option<u32> {
        let r = self.recs.get(i as usize)?;
        let format = (self.d.u32(r.hdr, "a header").ok()? >> 8) & 15;
        if k + 1 >= r.words || format > 4 {
            return None;
        }
        self.d.u32(r.hdr + 4 + 4 * k, "a slot").ok()
    }

    /// Field `k` of object `i` as an object number, if it points at one.
    fn slot_ref(&self, i: u32, k: usize) -> Option<u32> {
        self.raw_slot(i, k).and_then(|oop| self.resolve(oop))
    }

    /// Whether object `i` can be a class: an object of pointers whose field 2 (the format)
    /// is a small integer. The VM reads a class's superclass, method dictionary and format
    /// to send to or make an instance; any other object names no class.
    fn is_class(&self, i: u32) -> bool {
        self.raw_slot(i, CLASS_FORMAT).is_some_and(|w| w & 1 == 1)
    }
}

/// Field of a class holding its format (after its superclass and method dictionary).
const CLASS_FORMAT: usize = 2;

pub(crate) fn import(file: &[u8], f: ImageFormat, prefix: usize) -> ImportResult<Imported> {
    let m = Mem::new(file.get(prefix..).unwrap_or(&[]), f.order());
    let (header, data, special) = read_header(&m, f, prefix)?;
    let mut stats = ImportStats::default();
    let recs = walk(&data, &mut stats)?;
    // Oops are addresses: map each base header's word offset to its object number.
    let mut index = vec![u32::MAX; data.b.len() / 4];
    for (i, r) in (0u32..).zip(&recs) {
        index[r.hdr / 4] = i;
    }
    let mem = Memory {
        d: data,
        recs,
        index,
        old_base: special.old_base,
    };
    let sidx = mem
        .resolve(special.oop)
        .ok_or(ImportError::Missing("the special objects array"))?;
    let nil = mem.slot_ref(sidx, 0).ok_or(ImportError::Missing("nil"))?;
    let compact = mem
        .slot_ref(sidx, COMPACT_CLASSES)
        .ok_or(ImportError::Missing("the compact classes"))?;
    // A slot holding nil, or any object that is no class, names no class: a header with its
    // index is refused, as the VM would find no class to send to.
    let mut compact_classes = [None; 32];
    for (k, c) in compact_classes.iter_mut().enumerate().skip(1) {
        *c = mem
            .slot_ref(compact, k - 1)
            .filter(|&c| c != nil && mem.is_class(c));
    }
    let classes = Classes {
        compact: compact_classes,
        // A slot holding nil names no context class: an object of class nil is no context.
        contexts: CONTEXT_CLASSES.map(|k| mem.slot_ref(sidx, k).filter(|&c| c != nil)),
        nil,
    };
    // Pass 2: decode every object.
    let objs = mem
        .recs
        .iter()
        .map(|r| decode(&mem, r, f, &classes, &mut stats))
        .collect::<ImportResult<Vec<_>>>()?;
    finish(Read {
        objs,
        format: f,
        header,
        stats,
        special: sidx,
        nil,
        immediates: Immediates::default(),
        extra_roots: Vec::new(),
    })
}

/// Where the image header says the special objects array is.
struct SpecialOop {
    oop: u32,
    old_base: u32,
}

/// Reads the image header at the start of `m`: the header fields kept in the base, the object
/// data, and the special objects array's oop.
fn read_header<'a>(
    m: &Mem<'a>,
    f: ImageFormat,
    prefix: usize,
) -> ImportResult<(ImageHeader, Mem<'a>, SpecialOop)> {
    const H: &str = "the image header";
    let header_size_field = m.u32(4, H)?;
    let header_size = header_size_field as usize;
    if header_size_field < HEADER_SIZE
        || header_size_field % 4 != 0
        || header_size_field > ImageHeader::MAX_HEADER_SIZE
    {
        return Err(ImportError::BadImageHeader(
            "the header size is not 64 or more, in words",
        ));
    }
    let data_size = m.u32(8, H)? as usize;
    if !data_size.is_multiple_of(4) {
        return Err(ImportError::BadImageHeader(
            "the data size is not a number of words",
        ));
    }
    let old_base = m.u32(12, H)?;
    // V3 oops are addresses with the tag bits 00: from any other base, every object's
    // address would read as a small integer (or as no word), and the special objects
    // array's nil and compact classes would be taken from words its slots hold as integers.
    if !old_base.is_multiple_of(4) {
        return Err(ImportError::BadImageHeader(
            "the old base is not 4-aligned, as V3 oops are",
        ));
    }
    // Every object's address is a 32-bit oop: an object memory that runs past 2^32 holds
    // objects no oop names, which no VM saves and no export writes.
    if u64::from(old_base) + data_size as u64 > u64::from(u32::MAX) {
        return Err(ImportError::BadImageHeader(
            "an object memory past the 32-bit address space",
        ));
    }
    let special = m.u32(16, H)?;
    let mut header = ImageHeader {
        version: f.version(),
        prefix: prefix_field(prefix)?,
        header_size: header_size_field,
        old_base: old_base.into(),
        ..ImageHeader::default()
    };
    header.read_fields(m, 4)?;
    m.take(0, header_size, H)?;
    let d = Mem::new(
        m.take(header_size, data_size, "the object data")?,
        f.order(),
    );
    Ok((
        header,
        d,
        SpecialOop {
            oop: special,
            old_base,
        },
    ))
}

/// Pass 1: finds every object of the data by its headers, counting header types.
fn walk(d: &Mem<'_>, stats: &mut ImportStats) -> ImportResult<Vec<Rec>> {
    let data_size = d.b.len();
    let mut recs = Vec::new();
    let mut pos = 0usize;
    while pos < data_size {
        let w = d.u32(pos, "an object header")?;
        let bad = |problem| ImportError::BadHeader {
            at: pos as u64,
            problem,
        };
        let (hdr, class, words, ht) = match w & 3 {
            0 => {
                let class = d.u32(pos + 4, "an object header")?;
                let base = d.u32(pos + 8, "an object header")?;
                if class & 3 != 0 || base & 3 != 0 {
                    return Err(bad(
                        "a three-word header whose class or base word is not type 0",
                    ));
                }
                (pos + 8, class, (w >> 2) as usize, 0)
            }
            1 => {
                let base = d.u32(pos + 4, "an object header")?;
                if base & 3 != 1 {
                    return Err(bad("a two-word header whose base word is not type 1"));
                }
                (pos + 4, w & !3, ((base >> 2) & 63) as usize, 1)
            }
            3 => (pos, 0, ((w >> 2) & 63) as usize, 3),
            _ => return Err(bad("a free chunk")),
        };
        if words == 0 {
            return Err(bad("a size that does not count the base header"));
        }
        // Checked: on a 32-bit host a size word near 2^32 words would wrap `end` back to
        // `pos`, and the walk would never advance.
        let end = words
            .checked_mul(4)
            .and_then(|b| hdr.checked_add(b))
            .unwrap_or(usize::MAX);
        if end > data_size {
            return Err(ImportError::Truncated {
                what: "an object",
                at: hdr as u64,
                end: end as u64,
                len: data_size as u64,
            });
        }
        stats.header_types[usize::from(ht)] += 1;
        recs.push(Rec {
            hdr,
            class,
            words,
            header_type: ht,
        });
        pos = end;
    }
    if u32::try_from(recs.len()).is_err() {
        return Err(ImportError::BadImageHeader(
            "more objects than cowheap can index",
        ));
    }
    Ok(recs)
}

/// What decoding an object needs of the special objects array.
struct Classes {
    /// The class of each compact class index (index 0 names none).
    compact: [Option<u32>; 32],
    /// The classes MethodContext and BlockContext, if the special objects array names them.
    contexts: [Option<u32>; 2],
    /// The object nil.
    nil: u32,
}

/// Pass 2: decodes the object `r` found by the walk: its class (from the class word or the
/// compact classes), format, fields, bytes and header bits. A header with both a class word
/// and a nonzero compact class index must name one class with them, and a class word must
/// name a class ([`Memory::is_class`]) or nil ([`ImportError::NotAClass`] otherwise).
///
/// A context (format 3, of compact class 13 or 14 or of the class MethodContext or
/// BlockContext) holds references only up to its stack pointer: the virtual machine's
/// `lastPointerOf:` ends it there, so the collector neither traces nor updates the fields
/// past it, and a saved image may hold any stale word in them. Such a field is kept when it
/// reads as a value (a small integer, a pointer to an object) and read as nil otherwise,
/// where a field of any other object that names no object is refused.
fn decode(
    mem: &Memory<'_>,
    r: &Rec,
    f: ImageFormat,
    classes: &Classes,
    stats: &mut ImportStats,
) -> ImportResult<Obj> {
    let compact_classes = &classes.compact;
    let d = &mem.d;
    let at = r.hdr as u64;
    let bad = |problem| ImportError::BadHeader { at, problem };
    let base = d.u32(r.hdr, "an object header")?;
    let fmt = ((base >> 8) & 15) as u8;
    let cci = ((base >> 12) & 31) as u8;
    let class = if r.header_type == 3 {
        compact_classes[usize::from(cci)].ok_or(bad(
            "a one-word header whose compact class index names no class",
        ))?
    } else {
        stats.references += 1;
        let c = mem.resolve(r.class).ok_or(ImportError::DanglingOop {
            at,
            oop: r.class.into(),
        })?;
        // nil is the class of objects made with none (a base built rather than imported
        // exports them so); any other object must be a class.
        if c != classes.nil && !mem.is_class(c) {
            return Err(ImportError::NotAClass {
                at,
                oop: r.class.into(),
            });
        }
        // A VM takes the class from a nonzero compact class index whatever the header type
        // (`fetchClassOf:`), and reads the class word only when the index is 0: a class word
        // naming another class would give this graph a class the VM does not see.
        if cci != 0 && compact_classes[usize::from(cci)] != Some(c) {
            return Err(bad(
                "a class word that is not the class its compact class index names",
            ));
        }
        c
    };
    let n = r.words - 1;
    let body = d.take(r.hdr + 4, n * 4, "an object body")?;
    let oop = |k: usize| -> ImportResult<Word> {
        let w = d.u32(r.hdr + 4 + 4 * k, "a slot")?;
        if w & 1 == 1 {
            // The word reinterpreted as i32 keeps every bit; shifted, it is 31 bits.
            return Ok(Word::int(i64::from((w as i32) >> 1)).unwrap_or(Word::from_bits(1)));
        }
        mem.resolve(w)
            .filter(|_| w & 3 == 0)
            .map(|i| Word::base(ObjectIndex::from_u32(i)))
            .ok_or(ImportError::DanglingOop { at, oop: w.into() })
    };
    let is_context =
        fmt == 3 && (COMPACT_CONTEXTS.contains(&cci) || classes.contexts.contains(&Some(class)));
    // The fields that hold references: a context's end at its stack pointer (none past the
    // fixed ones if it is no small integer or negative, as the machine reads it).
    let pointers = if is_context {
        let sp = Some(CONTEXT_STACKP)
            .filter(|&k| k < n)
            .and_then(|k| d.u32(r.hdr + 4 + 4 * k, "a slot").ok())
            .filter(|&w| w & 1 == 1)
            .map_or(0, |w| usize::try_from((w as i32) >> 1).unwrap_or(0));
        CONTEXT_FIXED.saturating_add(sp).min(n)
    } else {
        n
    };
    let nil = Word::base(ObjectIndex::from_u32(classes.nil));
    let (format, slots, bytes) = match fmt {
        0..=4 => {
            let slots = (0..n)
                .map(|k| match oop(k) {
                    Err(ImportError::DanglingOop { .. }) if k >= pointers => Ok(nil),
                    w => w,
                })
                .collect::<ImportResult<Vec<_>>>()?;
            let format = if fmt == 4 {
                Format::Weak
            } else {
                Format::Pointers
            };
            (format, slots, Vec::new())
        }
        6 => (Format::Words, Vec::new(), units_to_le(body, 4, f.order())),
        8..=11 => {
            let len = (n * 4)
                .checked_sub(usize::from(fmt & 3))
                .ok_or(bad("more unused bytes than bytes"))?;
            (Format::Bytes, Vec::new(), body[..len].to_vec())
        }
        12..=15 => {
            // With no fields, word 0 would be the next object's header.
            if n == 0 {
                return Err(bad("a compiled method without a header"));
            }
            let head = oop(0).map_err(|_| bad("a compiled method without a header"))?;
            let lits = head
                .as_int()
                .ok_or(bad("a compiled method whose header is not a small integer"))?
                >> 9
                & 0xFF;
            let p = 1 + usize::try_from(lits).unwrap_or(0);
            let len = n
                .checked_sub(p)
                .and_then(|rest| (rest * 4).checked_sub(usize::from(fmt & 3)))
                .ok_or(bad("a compiled method with more literals than fields"))?;
            let slots = (0..p).map(oop).collect::<ImportResult<Vec<_>>>()?;
            (
                Format::CompiledMethod,
                slots,
                body[p * 4..p * 4 + len].to_vec(),
            )
        }
        _ => return Err(bad("format 5 or 7, which V3 does not use")),
    };
    stats.references += slots.iter().filter(|w| w.is_base()).count();
    let aux = Aux::V3(V3Aux {
        format: fmt,
        header_type: r.header_type,
        compact_class: cci,
        gc_bits: (base >> 29) as u8,
        size_field: ((base >> 2) & 63) as u8,
    });
    Ok(Obj {
        class: Word::base(ObjectIndex::from_u32(class)),
        format,
        hash: (base >> 17) & 0xFFF,
        aux: aux.encode(),
        slots,
        bytes,
    })
}

/// How one object is written.
struct Plan {
    fmt: u8,
    header_type: u8,
    cci: u8,
    size_field: u8,
    gc_bits: u8,
    /// Words, the base header included.
    words: usize,
}

/// The padding that takes `len` bytes to a whole number of words.
fn pad(len: usize) -> u8 {
    [0, 3, 2, 1][len % 4]
}

pub(crate) fn export(heap: &BaseHeap, f: ImageFormat, h: &ImageHeader) -> ExportResult<Vec<u8>> {
    let special = crate::special_objects(heap)?;
    // What the importer (any V3 reader) needs of the special objects array: nil in its
    // first slot and an array of compact classes at slot 29. Without them the file
    // would not read back (a base not imported from an image may have neither).
    crate::check_nil_first(heap, special)?;
    let cc = slot_ref(heap, special, COMPACT_CLASSES).ok_or(ExportError::Unsupported(
        "a special objects array with no compact classes array",
    ))?;
    let mut compact = Compact {
        index: HashMap::new(),
        class: [None; 32],
    };
    // Compact class indices 1..=31 name slots 0..=30 of the array.
    // A slot holding nil is no compact class: the importer reads it as none.
    let nil = heap.nil().word();
    for (k, w) in (1..=31u8).zip(heap.slots_of(cc)) {
        if let Some(c) = w.as_base().filter(|_| *w != nil) {
            compact.index.entry(c.as_u32()).or_insert(k);
            compact.class[usize::from(k)] = Some(c.as_u32());
        }
    }
    let old_base = if h.version == 0 {
        0x1000_0000
    } else {
        h.old_base
    };
    // The header names the base the addresses are computed from.
    let h = &ImageHeader { old_base, ..*h };
    let too_large = || ExportError::TooLarge(f.name());
    let n = heap.len();
    let mut plans = crate::try_list(n)?;
    let mut addr = crate::try_list(n)?;
    let mut pos: u64 = 0;
    for x in heap.indices() {
        let plan = plan_object(heap, x, &compact)?;
        let extra: u64 = match plan.header_type {
            0 => 2,
            1 => 1,
            _ => 0,
        };
        let oop = old_base
            .checked_add(pos + extra * 4)
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(too_large)?;
        addr.push(oop);
        pos += (extra + plan.words as u64) * 4;
        plans.push(plan);
    }
    if old_base
        .checked_add(pos)
        .is_none_or(|e| e > u64::from(u32::MAX))
    {
        return Err(too_large());
    }
    let header_size = match h.header_size {
        0 => HEADER_SIZE,
        s if s >= HEADER_SIZE && s % 4 == 0 => s,
        s => {
            return Err(ExportError::BadHeaderRoot {
                root: ImageHeader::ROOTS[2],
                value: Some(i64::from(s)),
                target: f.name(),
            });
        }
    };
    let capacity = usize::try_from(pos)
        .ok()
        .and_then(|p| p.checked_add(header_size as usize + h.prefix as usize))
        .ok_or_else(too_large)?;
    let mut out = Out {
        buf: crate::try_list(capacity)?,
        order: f.order(),
    };
    out.zeros(h.prefix as usize);
    write_header(
        &mut out,
        f,
        h,
        header_size,
        pos,
        addr[special as usize].into(),
        None,
    )?;
    write_objects(heap, f, &plans, &addr, &mut out)?;
    Ok(out.buf)
}

/// The compact classes of the base: which index names each class, and which class each
/// index names.
struct Compact {
    /// The first compact class index of each compact class.
    index: HashMap<u32, u8>,
    /// The class each compact class index (1..=31) names; index 0 names none.
    class: [Option<u32>; 32],
}

/// How object `x` is written: its format code and header from its aux bits where it was
/// imported from V3, else from its cowheap format and whether its class is compact.
///
/// A V3 VM takes an object's class from its compact class index whenever that index is not
/// 0, whatever the header type (`fetchClassOf:`); the class word of a two- or three-word
/// header is read only when the index is 0. So an index kept from the aux bits is written
/// only while it still names the object's class (a class change leaves the old one there):
/// otherwise the index of the object's class if that class is compact, else 0 (and a
/// one-word header, which has no class word, becomes a two-word one).
///
/// # Errors
/// [`ExportError::Unrepresentable`] for a format V3 lacks (ephemerons, 16- and 64-bit units),
/// an identity hash wider than 12 bits and a class that is neither nil nor a class
/// ([`is_class`]).
fn plan_object(heap: &BaseHeap, x: ObjectIndex, compact: &Compact) -> ExportResult<Plan> {
    let o = heap.object(x)?;
    let unrepresentable = |what| ExportError::Unrepresentable {
        object: x,
        what,
        target: "V3",
    };
    if o.hash >> 12 != 0 {
        return Err(unrepresentable("an identity hash wider than 12 bits"));
    }
    let aux = match Aux::decode(o.aux) {
        Aux::V3(a) => Some(a),
        _ => None,
    };
    let b = o.bytes.len();
    let (fmt, body) = match o.format {
        Format::Pointers => {
            // A header imported from V3 keeps its code; another takes its class's.
            let fmt = match aux {
                Some(a) if a.format <= 3 => a.format,
                _ => InstSpec::pointer_format(
                    InstSpec::of_class(heap, o.class, InstSpec::v3),
                    o.slots.len(),
                ),
            };
            (fmt, o.slots.len())
        }
        Format::Weak => (4, o.slots.len()),
        Format::Words => (6, b.div_ceil(4)),
        Format::Bytes => (8 + pad(b), b.div_ceil(4)),
        Format::CompiledMethod => {
            // Read back, the header's literal count says where the literals end and the
            // bytecodes begin: a method whose slots say otherwise, or that has no header
            // slot (its first bytes would be read as one), would come back another.
            let literals = o
                .slots
                .first()
                .and_then(|w| w.as_int())
                .map(|h| h >> 9 & 0xFF);
            if literals
                .and_then(|l| usize::try_from(l).ok())
                .is_none_or(|l| Some(l) != o.slots.len().checked_sub(1))
            {
                return Err(unrepresentable(
                    "a compiled method whose literals are not the count its header gives",
                ));
            }
            (12 + pad(b), o.slots.len() + b.div_ceil(4))
        }
        Format::Ephemeron => return Err(unrepresentable("an ephemeron")),
        Format::Shorts => return Err(unrepresentable("16-bit units")),
        Format::DoubleWords => return Err(unrepresentable("64-bit units")),
    };
    let pointers = matches!(o.format, Format::Pointers | Format::Weak);
    if (pointers && b != 0) || (o.format == Format::Words && b % 4 != 0) {
        return Err(unrepresentable("raw bytes its format cannot hold"));
    }
    let words = body + 1;
    // Read back, a class word must name nil or a class (`NotAClass` otherwise).
    if o.class != heap.nil().word() && o.class.as_base().is_some_and(|c| !is_class(heap, c)) {
        return Err(unrepresentable("a class that is no class"));
    }
    let class = o.class.as_base().map(ObjectIndex::as_u32);
    let compact_of_class = class.and_then(|c| compact.index.get(&c).copied());
    let (mut ht, mut cci) = match aux {
        Some(a) => (a.header_type, a.compact_class),
        None => (
            if compact_of_class.is_some() { 3 } else { 1 },
            compact_of_class.unwrap_or(0),
        ),
    };
    let names_class = |k: u8| {
        compact
            .class
            .get(usize::from(k))
            .copied()
            .flatten()
            .is_some_and(|c| Some(c) == class)
    };
    if (cci != 0 && !names_class(cci)) || (ht == 3 && cci == 0) {
        cci = compact_of_class.unwrap_or(0);
        if ht == 3 && cci == 0 {
            ht = 1;
        }
    }
    // A size that does not fit the base header's 6-bit field takes a three-word header.
    let short_size = u8::try_from(words).ok().filter(|&w| w <= 63);
    let size_field = match short_size {
        None => {
            ht = 0;
            aux.map_or(0, |a| a.size_field)
        }
        Some(_) if ht == 0 => aux.map_or(0, |a| a.size_field),
        Some(w) => {
            if ht == 2 {
                ht = 1;
            }
            w
        }
    };
    Ok(Plan {
        fmt,
        header_type: ht,
        cci,
        size_field,
        gc_bits: aux.map_or(0, |a| a.gc_bits),
        words,
    })
}

/// Writes every object as planned, at the addresses `addr` gives.
fn write_objects(
    heap: &BaseHeap,
    f: ImageFormat,
    plans: &[Plan],
    addr: &[u32],
    out: &mut Out,
) -> ExportResult<()> {
    let target = "V3";
    let special = crate::special_objects(heap)?;
    let boxed_float = float::float_class(heap, special);
    let oop = |x: ObjectIndex, w: Word| -> ExportResult<u32> {
        match w.decode() {
            // 31 bits, tag 1; the i32 reinterpreted as u32 keeps every bit.
            Decoded::Int(i) => i32::try_from(i)
                .ok()
                .filter(|&i| (-(1 << 30)..1 << 30).contains(&i))
                .map(|i| ((i << 1) | 1) as u32)
                .ok_or(ExportError::Unrepresentable {
                    object: x,
                    what: "a small integer wider than 31 bits",
                    target,
                }),
            Decoded::Base(b) => addr.get(b.get()).copied().ok_or(ExportError::Heap(
                cowheap_heap::Error::NoSuchObject {
                    index: b.get() as u64,
                    len: addr.len() as u64,
                },
            )),
            Decoded::Char(_) => Err(ExportError::Unrepresentable {
                object: x,
                what: "an immediate character",
                target,
            }),
            _ => Err(ExportError::Unrepresentable {
                object: x,
                what: "an immediate float or a private reference",
                target,
            }),
        }
    };
    for (x, p) in heap.indices().zip(plans) {
        let o = heap.object(x)?;
        let class = oop(x, o.class)?;
        let base = u32::from(p.header_type)
            | (u32::from(p.size_field & 63) << 2)
            | (u32::from(p.fmt) << 8)
            | (u32::from(p.cci & 31) << 12)
            | (o.hash << 17)
            | (u32::from(p.gc_bits & 7) << 29);
        match p.header_type {
            0 => {
                let bytes = p
                    .words
                    .checked_mul(4)
                    .and_then(|b| u32::try_from(b).ok())
                    .ok_or(ExportError::TooLarge(f.name()))?;
                out.u32(bytes);
                out.u32(class);
            }
            1 => out.u32(class | 1),
            _ => {}
        }
        out.u32(base);
        for &w in o.slots {
            let v = oop(x, w)?;
            out.u32(v);
        }
        let class_index = o.class.as_base().map(ObjectIndex::as_u32);
        match o.format {
            Format::Words if float::is_boxed(boxed_float, class_index, o.format, o.bytes) => {
                let bits = float::bits_of(o.bytes).unwrap_or_default();
                for w in float::to_file_words(bits, f) {
                    out.u32(w);
                }
            }
            Format::Words => {
                for c in o.bytes.chunks_exact(4) {
                    out.u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
            _ => {
                out.buf.extend_from_slice(o.bytes);
                out.zeros(usize::from(pad(o.bytes.len())));
            }
        }
    }
    Ok(())
}
