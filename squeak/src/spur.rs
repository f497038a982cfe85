//! Spur images (versions 6521 and 68021): 64-bit object headers, 32- or 64-bit slots, a
//! class table, hidden objects with pun class indices, memory in segments. The layout is
//! described in `docs/FORMATS.md`.

use crate::auxbits::{Aux, SpurAux, spur_flag_bits, spur_flags};
use crate::bytes::{Mem, Out, units_from_le, units_to_le};
use crate::float;
use crate::format::{ImageFormat, ImageHeader, InstSpec, is_class, prefix_field, write_header};
use crate::graph::{Immediates, Obj, Read, finish};
use crate::{
    ExportError, ExportOptions, ExportResult, ImportError, ImportResult, ImportStats, Imported,
};
use cowheap_heap::{BaseHeap, Decoded, Format, ObjectIndex, Word};
use std::collections::HashMap;

/// Class indices below this are puns: the object is hidden from Smalltalk.
const FIRST_CLASS_INDEX: u32 = 32;
/// Pun of hidden pointer arrays (hidden roots, class-table pages).
const ARRAY_PUN: u32 = 16;
/// Class index of SmallFloat64 in 64-bit images (the tag of immediate floats).
const SMALL_FLOAT_INDEX: u32 = 4;
/// Pun of hidden weak arrays.
const WEAK_ARRAY_PUN: u32 = 17;
/// Pun of hidden objects of 32-bit words (the free lists and obj stacks of a 32-bit image).
const LONGS_32_PUN: u8 = 18;
/// Pun of hidden objects of 64-bit words (the free lists and obj stacks of a 64-bit image).
const LONGS_64_PUN: u8 = 19;
/// Position of the free lists object (after nil, false and true).
const FREE_LISTS: u32 = 3;
/// The class index of contexts, fixed by the Spur VM (`ClassMethodContextCompactIndex`).
const CONTEXT_INDEX: u32 = 36;
/// Special objects array index of the context class.
const SPECIAL_CONTEXT: usize = 10;
/// Special objects array index of the class BlockClosure.
const SPECIAL_BLOCK_CLOSURE: usize = 36;
/// Special objects array indices of the classes LargePositiveInteger and
/// LargeNegativeInteger.
const SPECIAL_LARGE_INTEGERS: [usize; 2] = [13, 42];
/// Slot of a context holding its pc, and of a BlockClosure holding its start pc.
const PC_SLOT: usize = 1;
/// Slot of a context holding its method.
const CONTEXT_METHOD: usize = 3;
/// Slot of a BlockClosure holding its outer context.
const CLOSURE_OUTER_CONTEXT: usize = 0;
/// Slot of a class holding its format (after its superclass and method dictionary).
const CLASS_FORMAT: usize = 2;
/// Slot of a context holding its stack pointer.
const CONTEXT_STACKP: usize = 2;
/// Slots of a context before its stack (sender, pc, stack pointer, method, closure or nil,
/// receiver).
const CONTEXT_FIXED: usize = 6;
/// Class index of a free chunk: memory no object holds.
const FREE_PUN: u32 = 0;
/// Pun of a forwarder: an object become another, its first slot the other's oop.
const FORWARDER_PUN: u32 = 8;
/// Slots in a class-table page.
const PAGE_SLOTS: u32 = 1024;
/// Position of the hidden-roots object (after nil, false, true and the free lists).
const HIDDEN_ROOTS: u32 = 4;
/// The header of the bridge that ends the last segment: class index 3, format 10, pinned,
/// marked, no slots.
const LAST_BRIDGE: u64 = 3 | (10 << 24) | (1 << 30) | (1 << 55);
/// Prefix of the roots holding class indices that are not their class's identity hash.
pub(crate) const CLASS_INDEX_ROOT: &str = "image.classIndex.";
/// The highest old base of a 64-bit image: 2^48, the most user address space 64-bit systems
/// map ([`ImageHeader::check_for`] refuses a higher one on export).
const MAX_OLD_BASE_64: u64 = 1 << 48;
/// The top byte of an overflow size word and of the header that follows it.
const OVERFLOW: u64 = 0xFF << 56;

struct Rec {
    /// Byte offset of the (main) header in the data.
    hdr: usize,
    /// Its address when the image was saved: what oops name.
    addr: u64,
    header: u64,
    slots: usize,
}

/// Reads a 64-bit header at `at`: one word, or two 32-bit words low half first.
fn h64(d: &Mem<'_>, at: usize, ws: usize) -> ImportResult<u64> {
    if ws == 8 {
        d.u64(at, "an object header")
    } else {
        let lo = d.u32(at, "an object header")?;
        let hi = d.u32(at + 4, "an object header")?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }
}

pub(crate) fn import(file: &[u8], f: ImageFormat, prefix: usize) -> ImportResult<Imported> {
    let ws = f.word_bytes();
    let m = Mem::new(file.get(prefix..).unwrap_or(&[]), f.order());
    let (header, d, at) = read_header(&m, f, prefix)?;
    let mut stats = ImportStats::default();
    let recs = walk(&d, ws, header.old_base, at.first_segment, &mut stats)?;
    let mut mem = Memory {
        d,
        recs,
        ws,
        forwarded: HashMap::new(),
    };
    mem.forwarded = follow_forwarders(&mem);
    let sidx = mem
        .resolve(at.special)
        .ok_or(ImportError::Missing("the special objects array"))?;
    let nil = mem.slot_ref(sidx, 0).ok_or(ImportError::Missing("nil"))?;
    let context_class = mem.slot_ref(sidx, SPECIAL_CONTEXT);
    let mut table = ClassTable::new(&mem, nil)?;
    let int_class = table.class_at(1);
    let char_class = table.class_at(2);
    let float_class = table.class_at(SMALL_FLOAT_INDEX);

    // Every ordinary object's class first: a class index the table names no class at is
    // that, before a class-table page's entry for it is found to name no object.
    for r in mem
        .recs
        .iter()
        .filter(|r| class_index(r) >= FIRST_CLASS_INDEX)
    {
        let index = class_index(r);
        table.class_at(index).ok_or(ImportError::BadClassIndex {
            at: r.hdr as u64,
            index,
        })?;
    }
    // Pass 2: decode every object.
    let mut objs = Vec::with_capacity(mem.recs.len());
    let mut extra_roots = Vec::new();
    for (x, r) in (0u32..).zip(&mem.recs) {
        let (obj, index_in_root) = decode(&mem, r, f, &mut table, nil, context_class, &mut stats)?;
        if let Some(ci) = index_in_root {
            let ci = Word::int(i64::from(ci)).unwrap_or(Word::from_bits(1));
            extra_roots.push((format!("{CLASS_INDEX_ROOT}{x}"), ci));
        }
        objs.push(obj);
    }
    finish(Read {
        objs,
        format: f,
        header,
        stats,
        special: sidx,
        nil,
        immediates: Immediates {
            int: int_class,
            char: char_class,
            float: if ws == 8 { float_class } else { None },
        },
        extra_roots,
    })
}

/// What the image header says beside the fields kept in the base.
struct HeaderOops {
    /// The special objects array's oop.
    special: u64,
    /// The first segment's size.
    first_segment: u64,
}

/// Reads the image header at the start of `m`: the fields kept in the base, the object data
/// and where the walk starts.
fn read_header<'a>(
    m: &Mem<'a>,
    f: ImageFormat,
    prefix: usize,
) -> ImportResult<(ImageHeader, Mem<'a>, HeaderOops)> {
    const H: &str = "the image header";
    let ws = f.word_bytes();
    let header_size_field = m.u32(4, H)?;
    let header_size = header_size_field as usize;
    let min = if ws == 8 { 88 } else { 56 };
    if header_size < min
        || !header_size.is_multiple_of(8)
        || header_size_field > ImageHeader::MAX_HEADER_SIZE
    {
        return Err(ImportError::BadImageHeader(
            "the header size is too small or not 8-aligned",
        ));
    }
    let at = |k: usize| if ws == 8 { 8 * k } else { 4 + 4 * k };
    let data_size = usize::try_from(m.word(at(1), ws, H)?)
        .map_err(|_| ImportError::BadImageHeader("the data size is too large"))?;
    let old_base = m.word(at(2), ws, H)?;
    // Spur objects start on 8-byte boundaries: from any other base, an object's address
    // would be no oop (in 64-bit images, its low bits the tag of an immediate float).
    if !old_base.is_multiple_of(8) {
        return Err(ImportError::BadImageHeader(
            "the old base is not 8-aligned, as Spur objects are",
        ));
    }
    // The most user address space a 64-bit system maps, and the most an export writes.
    if ws == 8 && old_base > MAX_OLD_BASE_64 {
        return Err(ImportError::BadImageHeader(
            "the old base is past the 48 bits of a 64-bit address space",
        ));
    }
    let special = m.word(at(3), ws, H)?;
    let first_segment = m.word(if ws == 8 { 72 } else { 48 }, ws, H)?;
    let mut header = ImageHeader {
        version: f.version(),
        prefix: prefix_field(prefix)?,
        header_size: header_size_field,
        old_base,
        ..ImageHeader::default()
    };
    header.read_fields(m, ws)?;
    m.take(0, header_size, H)?;
    let d = Mem::new(
        m.take(header_size, data_size, "the object data")?,
        f.order(),
    );
    Ok((
        header,
        d,
        HeaderOops {
            special,
            first_segment,
        },
    ))
}

/// Pass 1: every object of every segment, each segment ended by a bridge that gives the next
/// one's size and the address space skipped before it.
fn walk(
    d: &Mem<'_>,
    ws: usize,
    old_base: u64,
    first_segment: u64,
    stats: &mut ImportStats,
) -> ImportResult<Vec<Rec>> {
    let data_size = d.b.len();
    let mut recs: Vec<Rec> = Vec::new();
    let (mut seg_start, mut seg_size, mut gap) = (0usize, first_segment, 0u64);
    loop {
        let seg_end = usize::try_from(seg_size)
            .ok()
            .filter(|&s| s >= 16)
            .and_then(|s| seg_start.checked_add(s))
            .filter(|&e| e <= data_size)
            .ok_or(ImportError::BadImageHeader(
                "a segment size runs past the data",
            ))?;
        stats.segments += 1;
        let objects_end = seg_end - 16;
        let base = old_base
            .checked_add(gap)
            .ok_or(ImportError::BadImageHeader(
                "segments whose addresses pass 2^64",
            ))?;
        // A 32-bit oop names no address past 2^32: a segment that runs past it holds objects
        // no oop names, which no VM saves and no export writes.
        if ws == 4 && base.saturating_add(seg_end as u64) > u64::from(u32::MAX) {
            return Err(ImportError::BadImageHeader(
                "a segment past the 32-bit address space",
            ));
        }
        walk_segment(d, ws, base, seg_start..objects_end, &mut recs)?;
        let bridge = h64(d, objects_end, ws)?;
        let next = h64(d, objects_end + 8, ws)?;
        if next == 0 {
            if seg_end != data_size {
                return Err(ImportError::BadImageHeader("data after the last segment"));
            }
            break;
        }
        if bridge & OVERFLOW == OVERFLOW {
            let words = bridge & if ws == 8 { !OVERFLOW } else { 0xFFFF_FFFF };
            gap = words
                .checked_mul(ws as u64)
                .and_then(|g| gap.checked_add(g))
                .ok_or(ImportError::BadHeader {
                    at: objects_end as u64,
                    problem: "a bridge spanning too much",
                })?;
        }
        seg_start = seg_end;
        seg_size = next;
    }
    if u32::try_from(recs.len()).is_err() {
        return Err(ImportError::BadImageHeader(
            "more objects than cowheap can index",
        ));
    }
    Ok(recs)
}

/// The objects of one segment, the data bytes `range` (its bridge excluded); `base` is the
/// address of data offset 0 for this segment.
fn walk_segment(
    d: &Mem<'_>,
    ws: usize,
    base: u64,
    range: std::ops::Range<usize>,
    recs: &mut Vec<Rec>,
) -> ImportResult<()> {
    let objects_end = range.end;
    let mut pos = range.start;
    while pos < objects_end {
        let bad = |problem| ImportError::BadHeader {
            at: pos as u64,
            problem,
        };
        let mut h = h64(d, pos, ws)?;
        let mut hdr = pos;
        let mut slots = usize::from((h >> 56) as u8);
        if slots == 255 {
            let count = h & !OVERFLOW;
            if h & OVERFLOW != OVERFLOW || (ws == 4 && count >> 32 != 0) {
                return Err(bad("a bad overflow size word"));
            }
            slots = usize::try_from(count).map_err(|_| bad("too many slots"))?;
            hdr = pos + 8;
            h = h64(d, hdr, ws)?;
            if h >> 56 != 255 {
                return Err(bad(
                    "an overflow size word before a header without 255 slots",
                ));
            }
        }
        let body = slots
            .checked_mul(ws)
            .and_then(|b| b.max(8).checked_next_multiple_of(8))
            .ok_or(bad("too many slots"))?;
        let end = body
            .checked_add(8)
            .and_then(|b| hdr.checked_add(b))
            .filter(|&e| e <= objects_end)
            .ok_or(bad("an object runs past the end of its segment"))?;
        // Addresses must rise from object to object (the oops resolve by binary search):
        // one that passes 2^64 would wrap onto an earlier object's.
        let addr = base
            .checked_add(hdr as u64)
            .filter(|&a| recs.last().is_none_or(|r: &Rec| r.addr < a))
            .ok_or(bad(
                "an object whose address does not follow the one before",
            ))?;
        recs.push(Rec {
            hdr,
            addr,
            header: h,
            slots,
        });
        pos = end;
    }
    if pos != objects_end {
        return Err(ImportError::BadHeader {
            at: pos as u64,
            problem: "no bridge at the end of a segment",
        });
    }
    Ok(())
}

/// Why a Spur oop names no object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoObject {
    /// It points at no object, at a free chunk, or at a forwarder whose chain ends so.
    Dangling,
    /// It points at a forwarder whose chain comes back on itself.
    Cycle,
}

/// The object memory after the walk.
struct Memory<'a> {
    d: Mem<'a>,
    /// Every object, in address order.
    recs: Vec<Rec>,
    ws: usize,
    /// Where each forwarder leads (by object number): the object at the end of its chain.
    forwarded: HashMap<u32, Result<u32, NoObject>>,
}

/// The class index of a record.
fn class_index(r: &Rec) -> u32 {
    (r.header & 0x3F_FFFF) as u32
}

/// Whether the slots of a record are references, as [`decode`] reads them: an object of
/// pointers (formats 0 to 5) that is ordinary or a hidden array (pun 16, or 17 weak).
fn holds_references(r: &Rec) -> bool {
    let ci = class_index(r);
    (r.header >> 24) & 31 <= 5
        && (ci >= FIRST_CLASS_INDEX || ci == ARRAY_PUN || ci == WEAK_ARRAY_PUN)
}

/// Where every forwarder of `mem` leads: the object at the end of its chain of forwarders,
/// or why there is none. A Spur VM follows a forwarder wherever it meets one (lazy
/// forwarding: a become leaves the old object as a forwarder, and references to it are
/// fixed up when used), so a reference to one is a reference to its target. Each forwarder
/// is followed once: O(forwarders).
fn follow_forwarders(mem: &Memory<'_>) -> HashMap<u32, Result<u32, NoObject>> {
    let mut done: HashMap<u32, Result<u32, NoObject>> = HashMap::new();
    let is_forwarder = |i: u32| class_index(&mem.recs[i as usize]) == FORWARDER_PUN;
    for (start, _) in (0u32..)
        .zip(&mem.recs)
        .filter(|(_, r)| class_index(r) == FORWARDER_PUN)
    {
        if done.contains_key(&start) {
            continue;
        }
        // The chain from `start` up to an object, a forwarder already settled, or one on
        // the chain already (a cycle).
        let mut path = vec![start];
        let mut on_path = std::collections::HashSet::from([start]);
        let end = loop {
            let f = path[path.len() - 1];
            // A forwarder's target is its first slot, which it has room for whatever its
            // slot count (every object has room for one).
            let target = mem
                .d
                .word(mem.recs[f as usize].hdr + 8, mem.ws, "a forwarder's target")
                .ok()
                .filter(|&w| w & (mem.ws as u64 - 1) == 0)
                .and_then(|w| mem.find(w));
            match target {
                None => break Err(NoObject::Dangling),
                Some(t) if !is_forwarder(t) => break mem.live(t).ok_or(NoObject::Dangling),
                Some(t) => {
                    if let Some(&r) = done.get(&t) {
                        break r;
                    }
                    if !on_path.insert(t) {
                        break Err(NoObject::Cycle);
                    }
                    path.push(t);
                }
            }
        };
        for f in path {
            done.insert(f, end);
        }
    }
    done
}

impl Memory<'_> {
    /// The record an oop points at, whatever it is.
    fn find(&self, oop: u64) -> Option<u32> {
        self.recs
            .binary_search_by_key(&oop, |r| r.addr)
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Whether object `i` can be a class: an ordinary (not hidden) object of pointers whose
    /// slot 2 (the format) is a small integer. The VM reads a class's superclass, method
    /// dictionary and format to send to or make an instance; any other object in the class
    /// table names no class.
    fn is_class(&self, i: u32) -> bool {
        !self.is_hidden(i)
            && self
                .raw_slot(i, CLASS_FORMAT)
                .and_then(|w| decode_oop(w, self.ws, &|_| None))
                .is_some_and(|w| w.as_int().is_some())
    }

    /// Whether object `i` is hidden: its class index is a pun (below 32), not a class.
    fn is_hidden(&self, i: u32) -> bool {
        self.recs
            .get(i as usize)
            .is_some_and(|r| class_index(r) < FIRST_CLASS_INDEX)
    }

    /// Object `i` if it is one a reference can name: not a free chunk.
    fn live(&self, i: u32) -> Option<u32> {
        Some(i).filter(|&i| class_index(&self.recs[i as usize]) != FREE_PUN)
    }

    /// The object an oop names: the object it points at, or the end of the chain of a
    /// forwarder it points at; none for a free chunk.
    fn resolve_ref(&self, oop: u64) -> Result<u32, NoObject> {
        let i = self.find(oop).ok_or(NoObject::Dangling)?;
        match self.forwarded.get(&i) {
            Some(&end) => end,
            None => self.live(i).ok_or(NoObject::Dangling),
        }
    }

    /// The object an oop names ([`Memory::resolve_ref`]), if any.
    fn resolve(&self, oop: u64) -> Option<u32> {
        self.resolve_ref(oop).ok()
    }

    /// The error for a slot of the object at `at` holding `oop`, which names no object.
    fn no_object(&self, at: u64, oop: u64) -> ImportError {
        let immediate_tags = if self.ws == 4 { 3 } else { 7 };
        if oop & immediate_tags != 0 {
            return ImportError::BadImmediate { at, oop };
        }
        match self.resolve_ref(oop) {
            Err(NoObject::Cycle) => ImportError::ForwarderCycle { at, oop },
            _ => ImportError::DanglingOop { at, oop },
        }
    }

    /// Slot `k` of object `i`, raw, if `i` is an object of pointers (formats 0 to 5) that
    /// has that slot. An object of raw data has no references: its words are kept as they
    /// are, not as the objects they would name, so a reference read from one here (the
    /// special objects array's nil, a class-table page's class) would name nothing once the
    /// base is exported. So has a hidden object whose pun is not a hidden array's (16, 17
    /// weak): [`decode`] keeps its words raw whatever its format.
    fn raw_slot(&self, i: u32, k: usize) -> Option<u64> {
        let r = self.recs.get(i as usize)?;
        if k >= r.slots || !holds_references(r) {
            return None;
        }
        self.d.word(r.hdr + 8 + self.ws * k, self.ws, "a slot").ok()
    }

    /// Slot `k` of object `i` as an object number, if it points at one.
    fn slot_ref(&self, i: u32, k: usize) -> Option<u32> {
        self.raw_slot(i, k).and_then(|oop| self.resolve(oop))
    }
}

/// The class table: the pages the hidden roots point at, looked up with a cache.
struct ClassTable<'m> {
    mem: &'m Memory<'m>,
    nil: u32,
    pages: usize,
    cache: HashMap<u32, Option<u32>>,
}

impl<'m> ClassTable<'m> {
    fn new(mem: &'m Memory<'m>, nil: u32) -> ImportResult<Self> {
        let hidden_roots = mem
            .recs
            .get(HIDDEN_ROOTS as usize)
            .filter(|r| r.header & 0x3F_FFFF == u64::from(ARRAY_PUN) && r.slots >= 4096)
            .ok_or(ImportError::Missing(
                "the hidden roots (the fifth object, with the class table)",
            ))?;
        Ok(ClassTable {
            mem,
            nil,
            pages: 4096.min(hidden_roots.slots),
            cache: HashMap::new(),
        })
    }

    /// The class at class index `ci`, if the table has one there: an entry that is nil, a
    /// free chunk, no object or an object that is no class ([`Memory::is_class`]) names
    /// none; one that is a forwarder names its target.
    fn class_at(&mut self, ci: u32) -> Option<u32> {
        let (mem, nil, pages) = (self.mem, self.nil, self.pages);
        *self.cache.entry(ci).or_insert_with(|| {
            let page = (ci / PAGE_SLOTS) as usize;
            if page >= pages {
                return None;
            }
            let p = mem.slot_ref(HIDDEN_ROOTS, page).filter(|&p| p != nil)?;
            mem.slot_ref(p, (ci % PAGE_SLOTS) as usize)
                .filter(|&c| c != nil && mem.is_class(c))
        })
    }
}

/// Pass 2: decodes the object `r` found by the walk. Returns it, and its class index when
/// that is not its class's identity hash (to be kept in a root). `nil` is the object nil,
/// `context_class` the class special object 10 names.
///
/// A context (format 3, of class index 36 or of the context class) holds references only up
/// to its stack pointer: the VM's `numPointerSlotsOf:` ends it there, so the collector
/// neither traces nor updates the slots past it, and a saved image may hold any stale word
/// in them. Such a slot is kept when it reads as a value and read as nil when it names no
/// object (or a forwarder cycle, or a hidden object), where a slot of any other object that
/// does is refused.
///
/// An ordinary object's slot that names a hidden object (directly or through forwarders) is
/// refused as [`ImportError::HiddenReference`]: a VM never hands its own objects (free
/// lists, hidden roots, class-table pages, forwarders, free chunks) to Smalltalk, and the
/// exporter refuses to write such a reference, so an image holding one would import to a
/// graph that neither a VM sees nor exports back.
fn decode(
    mem: &Memory<'_>,
    r: &Rec,
    f: ImageFormat,
    table: &mut ClassTable<'_>,
    nil: u32,
    context_class: Option<u32>,
    stats: &mut ImportStats,
) -> ImportResult<(Obj, Option<u32>)> {
    let (d, ws, order) = (&mem.d, f.word_bytes(), f.order());
    let at = r.hdr as u64;
    let h = r.header;
    let ci = (h & 0x3F_FFFF) as u32;
    let fmt = ((h >> 24) & 31) as u8;
    let raw = d.take(r.hdr + 8, r.slots * ws, "an object body")?;
    let hidden = ci < FIRST_CLASS_INDEX;
    // Only hidden objects (the hidden roots, the class-table pages) refer to hidden ones: a
    // reference from an ordinary object would hand Smalltalk an object of the VM's own.
    let oop = |k: usize| -> ImportResult<Word> {
        let w = d.word(r.hdr + 8 + ws * k, ws, "a slot")?;
        let word = decode_oop(w, ws, &|o| mem.resolve(o)).ok_or_else(|| mem.no_object(at, w))?;
        match word.as_base() {
            Some(b) if !hidden && mem.is_hidden(b.as_u32()) => {
                Err(ImportError::HiddenReference { at, oop: w })
            }
            _ => Ok(word),
        }
    };
    let pointers = |n: usize| (0..n).map(oop).collect::<ImportResult<Vec<_>>>();
    let mut index_in_root = None;
    let (class, format, slots, bytes) = if hidden {
        stats.hidden += 1;
        let nil_word = Word::base(ObjectIndex::from_u32(nil));
        if holds_references(r) {
            (nil_word, Format::Pointers, pointers(r.slots)?, Vec::new())
        } else {
            let format = if ws == 8 {
                Format::DoubleWords
            } else {
                Format::Words
            };
            (nil_word, format, Vec::new(), units_to_le(raw, ws, order))
        }
    } else {
        let c = table
            .class_at(ci)
            .ok_or(ImportError::BadClassIndex { at, index: ci })?;
        if mem.recs[c as usize].header >> 32 & 0x3F_FFFF != u64::from(ci) {
            index_in_root = Some(ci);
        }
        let class = Word::base(ObjectIndex::from_u32(c));
        let is_context = fmt == 3 && (ci == CONTEXT_INDEX || context_class == Some(c));
        // The slots that hold references: a context's end at its stack pointer (none past
        // the fixed ones if it is no small integer or negative, as the VM reads it).
        let live = if is_context {
            let sp = Some(CONTEXT_STACKP)
                .filter(|&k| k < r.slots)
                .and_then(|k| d.word(r.hdr + 8 + ws * k, ws, "a slot").ok())
                .and_then(|w| decode_oop(w, ws, &|_| None))
                .and_then(Word::as_int)
                .map_or(0, |sp| usize::try_from(sp).unwrap_or(0));
            CONTEXT_FIXED.saturating_add(sp).min(r.slots)
        } else {
            r.slots
        };
        let nil_word = Word::base(ObjectIndex::from_u32(nil));
        let slot = |k: usize| match oop(k) {
            Err(
                ImportError::DanglingOop { .. }
                | ImportError::BadImmediate { .. }
                | ImportError::ForwarderCycle { .. }
                | ImportError::HiddenReference { .. },
            ) if k >= live => Ok(nil_word),
            w => w,
        };
        let (format, slots, bytes) = decode_body(r, fmt, f, raw, &slot)?;
        (class, format, slots, bytes)
    };
    stats.references += slots.iter().filter(|w| w.is_base()).count();
    let aux = Aux::Spur(SpurAux {
        format: fmt,
        flags: spur_flags(h),
        pun: if hidden { u8::try_from(ci).ok() } else { None },
        index_in_root: index_in_root.is_some(),
    });
    let obj = Obj {
        class,
        format,
        hash: (h >> 32 & 0x3F_FFFF) as u32,
        aux: aux.encode(),
        slots,
        bytes,
    };
    Ok((obj, index_in_root))
}

/// The body of an ordinary (not hidden) object of Spur format `fmt`: its cowheap format,
/// pointer slots and raw bytes (units in little-endian order).
fn decode_body(
    r: &Rec,
    fmt: u8,
    f: ImageFormat,
    raw: &[u8],
    oop: &dyn Fn(usize) -> ImportResult<Word>,
) -> ImportResult<(Format, Vec<Word>, Vec<u8>)> {
    let (ws, order) = (f.word_bytes(), f.order());
    let bad = |problem| ImportError::BadHeader {
        at: r.hdr as u64,
        problem,
    };
    let pointers = |n: usize| (0..n).map(oop).collect::<ImportResult<Vec<_>>>();
    let len = |unused: usize| {
        (r.slots * ws)
            .checked_sub(unused)
            .ok_or(bad("more unused units than units"))
    };
    Ok(match fmt {
        0..=3 => (Format::Pointers, pointers(r.slots)?, Vec::new()),
        4 => (Format::Weak, pointers(r.slots)?, Vec::new()),
        5 => (Format::Ephemeron, pointers(r.slots)?, Vec::new()),
        9 if raw.len().is_multiple_of(8) => {
            (Format::DoubleWords, Vec::new(), units_to_le(raw, 8, order))
        }
        10 | 11 => {
            let n = len(4 * usize::from(fmt & 1))?;
            (Format::Words, Vec::new(), units_to_le(&raw[..n], 4, order))
        }
        12..=15 => {
            let n = len(2 * usize::from(fmt & 3))?;
            (Format::Shorts, Vec::new(), units_to_le(&raw[..n], 2, order))
        }
        16..=23 => {
            let n = len(usize::from(fmt & 7))?;
            (Format::Bytes, Vec::new(), raw[..n].to_vec())
        }
        24..=31 => {
            let head = oop(0)
                .ok()
                .and_then(Word::as_int)
                .ok_or(bad("a compiled method whose header is not a small integer"))?;
            let p = 1 + usize::from((head & 0x7FFF) as u16);
            let n = len(usize::from(fmt & 7))?;
            if p * ws > n {
                return Err(bad("a compiled method with more literals than fields"));
            }
            (
                Format::CompiledMethod,
                pointers(p)?,
                raw[p * ws..n].to_vec(),
            )
        }
        _ => return Err(bad("a format Spur does not use for ordinary objects")),
    })
}

/// A Spur oop of `ws` bytes as a cowheap word; `None` for a pointer to no object or an
/// unknown tag.
fn decode_oop(w: u64, ws: usize, resolve: &impl Fn(u64) -> Option<u32>) -> Option<Word> {
    if ws == 4 {
        match w & 3 {
            0 => resolve(w).map(|i| Word::base(ObjectIndex::from_u32(i))),
            2 => u32::try_from(w >> 2).ok().map(Word::char_code),
            // The low 32 bits reinterpreted as i32 keep every bit of a 32-bit oop.
            _ => u32::try_from(w)
                .ok()
                .and_then(|v| Word::int(i64::from((v as i32) >> 1))),
        }
    } else {
        match w & 7 {
            0 => resolve(w).map(|i| Word::base(ObjectIndex::from_u32(i))),
            1 => Word::int((w as i64) >> 3),
            2 => u32::try_from(w >> 3).ok().map(Word::char_code),
            4 => Word::small_float_bits(w >> 3),
            _ => None,
        }
    }
}

/// Class-table entry 4 in a 64-bit export: the class of immediate floats.
struct ClassTableEntry4 {
    /// The first class-table page, whose slot 4 is written as `float_class`.
    page: Option<ObjectIndex>,
    /// The base's class of immediate floats, when the target is 64-bit.
    float_class: Option<Word>,
}

impl ClassTableEntry4 {
    /// Where the float class goes in a `ws`-byte image: nowhere in 32-bit images (their
    /// class table keeps what the base has); in 64-bit ones, slot 4 of the first class-table
    /// page (slot 0 of the hidden roots), which must be nil or the float class already.
    fn plan(heap: &BaseHeap, ws: usize, options: &ExportOptions) -> ExportResult<Self> {
        let none = ClassTableEntry4 {
            page: None,
            float_class: None,
        };
        if ws != 8 {
            return Ok(none);
        }
        let Some(class) = heap.float_class().map(|v| v.word()) else {
            return if options.allow_missing_float_class {
                Ok(none)
            } else {
                Err(ExportError::NoFloatClass)
            };
        };
        let hidden = |x: ObjectIndex| {
            heap.object(x)
                .is_ok_and(|o| Aux::decode(o.aux).is_hidden() && !o.slots.is_empty())
        };
        let page = Some(ObjectIndex::from_u32(HIDDEN_ROOTS))
            .filter(|&r| hidden(r))
            .and_then(|r| heap.get_slot(r, 0))
            .and_then(Word::as_base)
            .filter(|&p| hidden(p) && heap.get_slot(p, SMALL_FLOAT_INDEX as usize).is_some())
            .ok_or(ExportError::Unsupported(
                "the base has no class table to hold the class of immediate floats",
            ))?;
        let entry = heap.get_slot(page, SMALL_FLOAT_INDEX as usize);
        if entry.is_some_and(|w| w != class && w != heap.nil().word()) {
            return Err(ExportError::Unsupported(
                "class-table entry 4 holds a class other than the class of immediate floats",
            ));
        }
        Ok(ClassTableEntry4 {
            page: Some(page),
            float_class: Some(class),
        })
    }
}

/// Classes the base's class table does not hold (ones a commit added), entered into it as a
/// Spur VM enters a class when it first needs its index: each at the class-table index that
/// is its identity hash, so that a class's hash is its index as Spur requires and no hashed
/// collection holding the class needs rehashing. A page the entry falls in that the base
/// lacks is written as a new object after the last one, and so is every page below it the
/// base lacks (empty), since a Spur VM takes the table's pages to end at the first missing
/// one: at most 4,095 pages (32 MiB in a 64-bit image) for a hash near 2^22.
#[derive(Default)]
struct Placement {
    /// Each placed class (its object) and its class index.
    index: HashMap<u32, u32>,
    /// Entries written into pages the base has: (page object, slot) to the class.
    entries: HashMap<(u32, usize), Word>,
    /// Pages the base lacks, in order of page number, with their entries (slot, class).
    new_pages: Vec<(usize, Vec<(usize, Word)>)>,
}

impl Placement {
    /// The classes of `heap` that need an entry: the class of every object written with a
    /// class index, and every behavior (an instance of Metaclass, or of a metaclass), that
    /// the table does not hold at its identity hash. Refused when such a class's hash is no
    /// class index, or names an entry another class holds (or another placed class takes).
    /// Empty for a base with no class table (one read from a V3 image), whose classes
    /// [`plan_object`] refuses. Time: O(objects).
    fn plan(heap: &BaseHeap, index_roots: &HashMap<u32, u32>) -> ExportResult<Placement> {
        let roots = ObjectIndex::from_u32(HIDDEN_ROOTS);
        let nil = heap.nil().word();
        let is_hidden =
            |x: ObjectIndex| heap.object(x).is_ok_and(|o| Aux::decode(o.aux).is_hidden());
        let pages = match heap.object(roots) {
            Ok(o) if Aux::decode(o.aux).is_hidden() && o.slots.len() >= 4096 => 4096,
            _ => return Ok(Placement::default()),
        };
        let page_of = |n: usize| {
            heap.get_slot(roots, n)
                .filter(|&w| w != nil)
                .and_then(Word::as_base)
                .filter(|&p| is_hidden(p))
        };
        let held_at = |ci: u32, class: ObjectIndex| {
            page_of((ci / PAGE_SLOTS) as usize)
                .and_then(|page| heap.get_slot(page, (ci % PAGE_SLOTS) as usize))
                == Some(Word::base(class))
        };
        // Metaclass, found from nil: the class of nil's class's class, if it is its own
        // class's class (the metaclass loop of every Squeak and Pharo image).
        let class = |x: ObjectIndex| heap.object(x).ok().and_then(|o| o.class.as_base());
        let metaclass = heap
            .nil()
            .as_base()
            .and_then(class)
            .and_then(class)
            .and_then(class)
            .filter(|&m| class(m).and_then(class) == Some(m));
        let mut wanted = std::collections::BTreeSet::new();
        for x in heap.indices() {
            let o = heap.object(x)?;
            let aux = Aux::decode(o.aux);
            if aux.is_hidden() {
                continue;
            }
            let Some(c) = o.class.as_base() else {
                continue;
            };
            let rooted = matches!(aux, Aux::Spur(a) if a.index_in_root)
                && index_roots
                    .get(&x.as_u32())
                    .is_some_and(|&ci| held_at(ci, c));
            // A class that is no class, or one with hash 0 (in Spur, one never entered,
            // which no instance can name), is left for `plan_object` to refuse.
            let hash = heap.hash(c)?;
            if !rooted && hash != 0 && is_class(heap, c) && !held_at(hash, c) {
                wanted.insert(c.as_u32());
            }
            let behavior = metaclass.is_some_and(|m| c == m || class(c) == Some(m));
            if behavior && o.hash != 0 && is_class(heap, x) && !held_at(o.hash, x) {
                wanted.insert(x.as_u32());
            }
        }
        let mut placed = Placement::default();
        let mut new_pages: std::collections::BTreeMap<usize, Vec<(usize, Word)>> =
            std::collections::BTreeMap::new();
        for c in wanted {
            let class = ObjectIndex::from_u32(c);
            let ci = heap.hash(class)?;
            if !(FIRST_CLASS_INDEX..1 << 22).contains(&ci) {
                return Err(ExportError::Unsupported(
                    "a class whose identity hash is no Spur class index",
                ));
            }
            let (n, slot) = ((ci / PAGE_SLOTS) as usize, (ci % PAGE_SLOTS) as usize);
            let taken = || {
                ExportError::Unsupported(
                    "a class whose identity hash is the class index of another class",
                )
            };
            if n >= pages {
                return Err(taken());
            }
            match page_of(n) {
                Some(page) => {
                    if heap.get_slot(page, slot) != Some(nil) {
                        return Err(taken());
                    }
                    if placed
                        .entries
                        .insert((page.as_u32(), slot), Word::base(class))
                        .is_some()
                    {
                        return Err(taken());
                    }
                }
                None => {
                    if heap.get_slot(roots, n) != Some(nil) {
                        return Err(ExportError::Unsupported(
                            "a class-table page that is no hidden object",
                        ));
                    }
                    let entries = new_pages.entry(n).or_default();
                    if entries.iter().any(|&(k, _)| k == slot) {
                        return Err(taken());
                    }
                    entries.push((slot, Word::base(class)));
                }
            }
            placed.index.insert(c, ci);
        }
        // A Spur VM counts the class table's pages up to the first nil slot of the hidden
        // roots, and requires every slot after it nil: every page below the last one
        // written is written too, empty where the base lacks it.
        if let Some(&last) = new_pages.keys().next_back() {
            for n in 0..last {
                if page_of(n).is_none() {
                    if heap.get_slot(roots, n) != Some(nil) {
                        return Err(ExportError::Unsupported(
                            "a class-table page that is no hidden object",
                        ));
                    }
                    new_pages.entry(n).or_default();
                }
            }
        }
        placed.new_pages = new_pages.into_iter().collect();
        Ok(placed)
    }

    /// The plan of a new class-table page: hidden (the pun of an Array), an array's format,
    /// 1,024 slots, no hash.
    fn page_plan() -> Plan {
        Plan {
            header: u64::from(ARRAY_PUN) | (2 << 24) | (255 << 56),
            slots: PAGE_SLOTS as usize,
            zeroed: false,
        }
    }
}

/// How one object is written.
struct Plan {
    header: u64,
    /// Slots of the image's word size, whether pointers or raw units.
    slots: usize,
    /// Write the body as zeros rather than the object's bytes (the free lists of an image
    /// of the other word size).
    zeroed: bool,
}

/// Where every object goes: its plan and address, and the memory segments.
struct Layout {
    plans: Vec<Plan>,
    /// Each object's oop.
    addr: Vec<u64>,
    /// The first object of every segment after the first.
    starts: Vec<usize>,
    /// Every segment's size, its bridge included.
    sizes: Vec<u64>,
    /// The slots of address space each bridge spans (the gap in words).
    gap_words: u64,
}

pub(crate) fn export(
    heap: &BaseHeap,
    f: ImageFormat,
    h: &ImageHeader,
    options: &ExportOptions,
) -> ExportResult<Vec<u8>> {
    let ws = f.word_bytes();
    let gap = options.segment_gap;
    let most_span = if ws == 4 {
        u64::from(u32::MAX)
    } else {
        (1 << 56) - 1
    };
    if !gap.is_multiple_of(8) || gap / 8 > most_span {
        return Err(ExportError::Unsupported(
            "a segment gap that is not a multiple of 8 bytes or too large",
        ));
    }
    let special = crate::special_objects(heap)?;
    crate::check_nil_first(heap, special)?;
    let class_table = ClassTableEntry4::plan(heap, ws, options)?;
    let index_roots = class_index_roots(heap, f)?;
    let placement = Placement::plan(heap, &index_roots)?;
    let mut layout = lay_out(heap, f, h.old_base, options, &index_roots, &placement)?;
    if free_lists_moved(heap, &layout, ws) {
        layout.plans[FREE_LISTS as usize].zeroed = true;
    }
    if layout
        .plans
        .get(FREE_LISTS as usize)
        .is_some_and(|p| p.zeroed)
    {
        // Empty free lists: no chunk is on one, so none links to another either (a VM
        // relocates the links of every free chunk it loads, listed or not).
        for (y, plan) in heap.indices().zip(layout.plans.iter_mut()) {
            if heap.object(y).is_ok_and(|o| is_free_chunk(o.aux)) {
                plan.zeroed = true;
            }
        }
    }
    // The file holds the segments, not the gaps of address space between them; reserve what
    // will be written (and say so if even that cannot be had, rather than abort).
    let written = layout
        .sizes
        .iter()
        .try_fold(
            u64::from(h.prefix) + u64::from(h.header_size) + 256,
            |n, &s| n.checked_add(s),
        )
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ExportError::TooLarge(f.name()))?;
    let buf = crate::try_list(written)?;
    let mut out = Out {
        buf,
        order: f.order(),
    };
    out.zeros(usize::try_from(h.prefix).map_err(|_| ExportError::TooLarge(f.name()))?);
    let same_size = ImageFormat::new(h.version, f.order()).is_ok_and(|s| s.word_bytes() == ws);
    let min = if ws == 8 { 88 } else { 56 };
    let header_size = match h.header_size {
        0 => None,
        n if same_size && n >= min && n % 8 == 0 => Some(n),
        n if same_size => {
            return Err(ExportError::BadHeaderRoot {
                root: ImageHeader::ROOTS[2],
                value: Some(i64::from(n)),
                target: f.name(),
            });
        }
        _ => None,
    };
    let header_size = header_size.unwrap_or(if ws == 8 { 128 } else { 64 });
    write_header(
        &mut out,
        f,
        h,
        header_size,
        layout.sizes.iter().sum(),
        layout.addr[special as usize],
        Some(layout.sizes[0]),
    )?;
    let source_ws = ImageFormat::new(h.version, f.order()).map_or(ws, ImageFormat::word_bytes);
    let pcs = PcShift::plan(heap, special, source_ws, ws);
    let widening = source_ws < ws;
    let tables = Tables {
        entry4: &class_table,
        placement: &placement,
    };
    write_objects(heap, f, &layout, &tables, &pcs, widening, &mut out)?;
    Ok(out.buf)
}

/// A pc is a byte index into its method counted from the method's first word, so it counts
/// the header and literal words in the image's word size: a method with `n` literals starts
/// its bytecodes at `(n + 1) * word_bytes + 1`. When the word size changes, a context's pc and
/// a BlockClosure's start pc move by `n + 1` times the change, as Squeak's 32- to 64-bit
/// converter moves them, so that they name the same bytecode (a FullBlockClosure holds its
/// compiled block instead, and has no start pc to move).
struct PcShift {
    /// Bytes each header or literal word grows by from the base's images to the target
    /// (4 from 32- to 64-bit, -4 back, 0 for the same word size).
    per_word: i64,
    /// The context class (special object 10).
    context: Option<ObjectIndex>,
    /// The class BlockClosure (special object 36).
    closure: Option<ObjectIndex>,
}

impl PcShift {
    /// The shift from images of `source_ws`-byte words to `ws`-byte ones, for the base whose
    /// special objects array is `special`.
    fn plan(heap: &BaseHeap, special: u32, source_ws: usize, ws: usize) -> PcShift {
        let nil = heap.nil().word();
        let special_class = |k: usize| {
            heap.get_slot(ObjectIndex::from_u32(special), k)
                .filter(|&w| w != nil)
                .and_then(Word::as_base)
        };
        let (target, source) = (ws as i64, source_ws as i64);
        PcShift {
            per_word: target - source,
            context: special_class(SPECIAL_CONTEXT),
            closure: special_class(SPECIAL_BLOCK_CLOSURE),
        }
    }

    /// True if `class` is the context class: special object 10, or the class at the class
    /// index the VM fixes for contexts.
    fn is_context(&self, heap: &BaseHeap, class: Option<ObjectIndex>) -> bool {
        class.is_some_and(|c| {
            Some(c) == self.context || heap.hash(c).is_ok_and(|h| h == CONTEXT_INDEX)
        })
    }

    /// Slot `k` of object `x`, holding `w`, as the target's word size reads it: a context's
    /// pc or a BlockClosure's start pc moved with its method's literals; any other word, or
    /// a pc whose method is not a compiled method with a small integer header, as it is.
    fn slot(
        &self,
        heap: &BaseHeap,
        x: ObjectIndex,
        class: Option<ObjectIndex>,
        k: usize,
        w: Word,
    ) -> Word {
        if self.per_word == 0 || k != PC_SLOT {
            return w;
        }
        let Some(pc) = w.as_int() else {
            return w;
        };
        let context = if self.is_context(heap, class) {
            Some(x)
        } else if class.is_some() && class == self.closure {
            heap.get_slot(x, CLOSURE_OUTER_CONTEXT)
                .and_then(Word::as_base)
                .filter(|&c| self.is_context(heap, heap.class_word(c).ok().and_then(Word::as_base)))
        } else {
            None
        };
        let literals = context
            .and_then(|c| heap.get_slot(c, CONTEXT_METHOD))
            .and_then(Word::as_base)
            .filter(|&m| heap.format(m).is_ok_and(|f| f == Format::CompiledMethod))
            .and_then(|m| heap.get_slot(m, 0))
            .and_then(Word::as_int)
            .map(|header| header & 0x7FFF);
        literals
            .and_then(|n| (n + 1).checked_mul(self.per_word))
            .and_then(|d| pc.checked_add(d))
            .and_then(Word::int)
            .unwrap_or(w)
    }
}

/// The class indices kept in `image.classIndex.<object number>` roots, by object number.
///
/// # Errors
/// [`ExportError::BadHeaderRoot`] for such a root that names no object of the base or holds
/// no class index (32 to 2^22 - 1).
fn class_index_roots(heap: &BaseHeap, f: ImageFormat) -> ExportResult<HashMap<u32, u32>> {
    let mut out = HashMap::new();
    for r in heap.roots() {
        let Some(number) = r.name.strip_prefix(CLASS_INDEX_ROOT) else {
            continue;
        };
        let value = r.value.as_int();
        let x = number
            .parse::<u32>()
            .ok()
            .filter(|&x| (x as usize) < heap.len());
        let ci = value
            .and_then(|v| u32::try_from(v).ok())
            .filter(|ci| (FIRST_CLASS_INDEX..1 << 22).contains(ci));
        match (x, ci) {
            (Some(x), Some(ci)) => {
                out.insert(x, ci);
            }
            _ => {
                return Err(ExportError::BadHeaderRoot {
                    root: CLASS_INDEX_ROOT,
                    value,
                    target: f.name(),
                });
            }
        }
    }
    Ok(out)
}

/// Plans every object and assigns its address from `old_base`, closing a segment (with a
/// bridge over `options.segment_gap`) whenever the next object would make it larger than
/// `options.segment_bytes`.
fn lay_out(
    heap: &BaseHeap,
    f: ImageFormat,
    old_base: u64,
    options: &ExportOptions,
    index_roots: &HashMap<u32, u32>,
    placement: &Placement,
) -> ExportResult<Layout> {
    let ws = f.word_bytes();
    let count = heap.len() + placement.new_pages.len();
    let mut plans = crate::try_list(count)?;
    let mut addr = crate::try_list(count)?;
    // `pos` is the next address (from the old base), `in_segment` the bytes of the current
    // segment so far.
    let (mut pos, mut in_segment): (u64, u64) = (0, 0);
    let (mut starts, mut sizes): (Vec<usize>, Vec<u64>) = (Vec::new(), Vec::new());
    let too_large = || ExportError::TooLarge(f.name());
    // Every object of the heap, then the class-table pages the placement adds.
    let objects = (heap.indices().map(Some)).chain(placement.new_pages.iter().map(|_| None));
    for (i, x) in objects.enumerate() {
        let plan = match x {
            Some(x) => plan_object(heap, x, f, index_roots, placement)?,
            None => Placement::page_plan(),
        };
        let overflow = if plan.slots >= 255 { 8 } else { 0 };
        let body = plan
            .slots
            .checked_mul(ws)
            .map(|b| b.max(8).next_multiple_of(8))
            .and_then(|b| u64::try_from(b).ok())
            .ok_or_else(too_large)?;
        let size = overflow + 8 + body;
        if let Some(limit) = options.segment_bytes
            && in_segment > 0
            && in_segment + size + 16 > limit
        {
            // Close the segment with a bridge over the gap; the next one starts after it.
            starts.push(i);
            sizes.push(in_segment + 16);
            pos = pos
                .checked_add(16 + options.segment_gap)
                .ok_or_else(too_large)?;
            in_segment = 0;
        }
        addr.push(
            pos.checked_add(overflow)
                .and_then(|p| old_base.checked_add(p))
                .ok_or_else(too_large)?,
        );
        pos = pos.checked_add(size).ok_or_else(too_large)?;
        in_segment += size;
        plans.push(plan);
    }
    sizes.push(in_segment + 16);
    let end = pos.checked_add(16).ok_or_else(too_large)?;
    let most = if ws == 4 {
        u64::from(u32::MAX)
    } else {
        1 << 56
    };
    if old_base.checked_add(end).is_none_or(|e| e > most) {
        return Err(too_large());
    }
    Ok(Layout {
        plans,
        addr,
        starts,
        sizes,
        gap_words: options.segment_gap / ws as u64,
    })
}

/// Whether the free lists of `heap` (object 3, of the target's word size), written at the
/// addresses `layout` gives, would name anything but a free chunk: a head, or a link of a
/// free chunk (its next chunk, and for a chunk of the free tree, one as large as the heads
/// count allocation units, its parent and smaller and larger nodes), that is not 0 nor the
/// address of a free chunk in `layout`.
///
/// A Spur VM takes the heads and links as addresses: it relocates them with the segments
/// it loads, walks the lists, and allocates from them. They are raw words, addresses in the
/// layout of the image the base was read from; where objects have moved since (the image had
/// several segments and is written as one, segments are asked for, an object changed size),
/// they would name the middle of a live object. Such free lists are written empty, as a VM
/// finds them after resetting its free lists, and the free chunks' links zero: the chunks
/// stay, unlisted, until the VM's next collection sweeps them back. A link is only read, never followed, so a cycle of free
/// chunks costs nothing more. Time: O(objects), and O(1) when every head is empty.
fn free_lists_moved(heap: &BaseHeap, layout: &Layout, ws: usize) -> bool {
    /// Bytes of an allocation unit: a free list's index counts chunks' sizes in them.
    const ALLOCATION_UNIT: usize = 8;
    let Some(plan) = layout.plans.get(FREE_LISTS as usize) else {
        return false;
    };
    let Ok(lists) = heap.object(ObjectIndex::from_u32(FREE_LISTS)) else {
        return false;
    };
    let word_pun = if ws == 8 { LONGS_64_PUN } else { LONGS_32_PUN };
    let pun = |aux: u32| match Aux::decode(aux) {
        Aux::Spur(SpurAux { pun, .. }) => pun,
        _ => None,
    };
    // Free lists already written empty (another word size), or no free lists object.
    if plan.zeroed || pun(lists.aux) != Some(word_pun) || !lists.slots.is_empty() {
        return false;
    }
    let free_chunk_at = |a: u64| {
        a == 0
            || layout.addr.binary_search(&a).is_ok_and(|y| {
                u32::try_from(y)
                    .ok()
                    .and_then(|y| heap.object(ObjectIndex::from_u32(y)).ok())
                    .is_some_and(|o| is_free_chunk(o.aux))
            })
    };
    let heads = lists.bytes.len() / ws;
    let head = |k: usize| raw_word(lists.bytes, k, ws).unwrap_or(0);
    if (0..heads).all(|k| head(k) == 0) {
        return false;
    }
    if !(0..heads).all(|k| free_chunk_at(head(k))) {
        return true;
    }
    heap.indices().any(|y| {
        let Ok(chunk) = heap.object(y) else {
            return false;
        };
        if !is_free_chunk(chunk.aux) {
            return false;
        }
        let bytes = 8 + chunk.bytes.len().max(8).next_multiple_of(8);
        let links: &[usize] = if bytes >= heads * ALLOCATION_UNIT {
            &[0, 2, 3, 4]
        } else {
            &[0]
        };
        links
            .iter()
            .filter_map(|&k| raw_word(chunk.bytes, k, ws))
            .any(|a| !free_chunk_at(a))
    })
}

/// Whether an object with aux bits `aux` is a free chunk of a Spur image (class index 0).
fn is_free_chunk(aux: u32) -> bool {
    matches!(Aux::decode(aux), Aux::Spur(SpurAux { pun: Some(p), .. }) if u32::from(p) == FREE_PUN)
}

/// Word `k` of raw little-endian words of `ws` bytes, if there is one.
fn raw_word(bytes: &[u8], k: usize, ws: usize) -> Option<u64> {
    let at = k.checked_mul(ws)?;
    let w = bytes.get(at..at.checked_add(ws)?)?;
    let mut le = [0u8; 8];
    le.get_mut(..ws)?.copy_from_slice(w);
    Some(u64::from_le_bytes(le))
}

/// The header and slot count of object `x` in format `f`.
///
/// # Errors
/// [`ExportError::Unrepresentable`] for an identity hash wider than 22 bits, raw bytes in a
/// pointer object, raw bytes that are not whole units, more slots than an overflow size
/// word counts, a hidden object whose class is not nil, or an ordinary object whose class
/// is no class ([`is_class`]: nil is none).
fn plan_object(
    heap: &BaseHeap,
    x: ObjectIndex,
    f: ImageFormat,
    index_roots: &HashMap<u32, u32>,
    placement: &Placement,
) -> ExportResult<Plan> {
    let (ws, target) = (f.word_bytes(), f.name());
    let unrepresentable = |what| ExportError::Unrepresentable {
        object: x,
        what,
        target,
    };
    let o = heap.object(x)?;
    let aux = match Aux::decode(o.aux) {
        Aux::Spur(a) => Some(a),
        _ => None,
    };
    if o.hash >> 22 != 0 {
        return Err(unrepresentable("an identity hash wider than 22 bits"));
    }
    let units = |bytes: usize| bytes.div_ceil(ws);
    let b = o.bytes.len();
    let pointers = matches!(
        o.format,
        Format::Pointers | Format::Weak | Format::Ephemeron
    );
    if (pointers && b != 0) || b % o.format.unit() != 0 {
        return Err(unrepresentable("raw bytes its format cannot hold"));
    }
    let mut zeroed = false;
    let (ci, fmt, slots) = if let Some(pun) = aux.and_then(|a| a.pun) {
        // A hidden object's class index is its pun, which names no class: read back, its
        // class is nil, so one given a class (`Tenant::set_class`) cannot be written.
        if o.class != heap.nil().word() {
            return Err(unrepresentable(
                "a hidden object (a pun class index) with a class",
            ));
        }
        let (word_pun, word_format) = if ws == 8 {
            (LONGS_64_PUN, 9)
        } else {
            (LONGS_32_PUN, 10)
        };
        if x.as_u32() == FREE_LISTS
            && o.slots.is_empty()
            && matches!(pun, LONGS_32_PUN | LONGS_64_PUN)
            && pun != word_pun
        {
            // The free lists of an image of the other word size. A Spur VM reads as many
            // heads as its word has bits, from an object of its own word's pun and format,
            // and takes whatever follows a shorter one (the hidden roots) for heads. The
            // heads are addresses in the other image's layout, which no object keeps here:
            // they are written empty, as a VM finds them after resetting its free lists.
            zeroed = true;
            (u32::from(word_pun), word_format, ws * 8)
        } else {
            let fmt = aux.map_or(0, |a| a.format);
            (u32::from(pun), fmt, o.slots.len() + units(b))
        }
    } else {
        let class = o
            .class
            .as_base()
            .ok_or(ExportError::Unsupported("a class that is not an object"))?;
        // Read back, a class-table entry that is no class (nil included) names none.
        if !is_class(heap, class) {
            return Err(unrepresentable("a class that is no class"));
        }
        // Read back, a class index names whatever the class table holds there.
        let held_at = |ci: u32| {
            heap.get_slot(ObjectIndex::from_u32(HIDDEN_ROOTS), (ci >> 10) as usize)
                .and_then(Word::as_base)
                .and_then(|page| heap.get_slot(page, (ci & 1023) as usize))
                == Some(Word::base(class))
        };
        let ci = match index_roots.get(&x.as_u32()) {
            // The index the object was read with (its class is in the table more than
            // once), while the table still holds the object's class there: a class change
            // since, or a root naming another index, leaves an index that reads back as
            // another class.
            Some(&ci) if aux.is_some_and(|a| a.index_in_root) && held_at(ci) => ci,
            // A class the export enters into the table, at its identity hash.
            _ if let Some(&ci) = placement.index.get(&class.as_u32()) => ci,
            _ => {
                // A Spur class's identity hash is its index in the class table: a class the
                // table does not hold at its hash, and the placement did not enter, cannot
                // be written.
                let ci = heap.hash(class)?;
                if !held_at(ci) {
                    return Err(ExportError::Unsupported(
                        "a class the class table does not hold at its identity hash",
                    ));
                }
                ci
            }
        };
        if !(FIRST_CLASS_INDEX..1 << 22).contains(&ci) {
            return Err(ExportError::Unsupported(
                "a class whose identity hash is no Spur class index",
            ));
        }
        let n = units(b);
        // The unused bytes of the last unit: fewer than a word.
        let unused = n * ws - b;
        let (fmt, slots) = match o.format {
            Format::Pointers => {
                // A header imported from Spur keeps its code; another takes its class's.
                let fmt = match aux {
                    Some(a) if a.format <= 3 => a.format,
                    _ => InstSpec::pointer_format(
                        InstSpec::of_class(heap, o.class, InstSpec::spur),
                        o.slots.len(),
                    ),
                };
                (usize::from(fmt), o.slots.len())
            }
            Format::Weak => (4, o.slots.len()),
            Format::Ephemeron => (5, o.slots.len()),
            Format::DoubleWords => (9, n),
            Format::Words => (10 + unused / 4, n),
            Format::Shorts => (12 + unused / 2, n),
            Format::Bytes => (16 + unused, n),
            Format::CompiledMethod => {
                // Read back, the header's literal count says where the literals end: a
                // method whose slots say otherwise, or that has no header slot (its first
                // bytes would be read as one), would come back another.
                let literals = o.slots.first().and_then(|w| w.as_int()).map(|h| h & 0x7FFF);
                if literals
                    .and_then(|l| usize::try_from(l).ok())
                    .is_none_or(|l| Some(l) != o.slots.len().checked_sub(1))
                {
                    return Err(unrepresentable(
                        "a compiled method whose literals are not the count its header gives",
                    ));
                }
                let total = o.slots.len() * ws + b;
                let n = total.div_ceil(ws);
                (24 + (n * ws - total), n)
            }
        };
        let fmt = u8::try_from(fmt).map_err(|_| unrepresentable("a format code"))?;
        (ci, fmt, slots)
    };
    // An overflow size word counts 32 bits of slots in 32-bit images, 56 in 64-bit ones.
    let most_slots: u64 = if ws == 4 {
        u32::MAX.into()
    } else {
        (1 << 56) - 1
    };
    let count = u64::try_from(slots)
        .ok()
        .filter(|&n| n <= most_slots)
        .ok_or(unrepresentable(
            "more slots than an overflow size word counts",
        ))?;
    let flags = spur_flag_bits(aux.map_or(0, |a| a.flags));
    let header = u64::from(ci)
        | (u64::from(fmt) << 24)
        | (u64::from(o.hash) << 32)
        | (count.min(255) << 56)
        | flags;
    Ok(Plan {
        header,
        slots,
        zeroed,
    })
}

/// A 64-bit header: one word, or two 32-bit words low half first.
fn put64(out: &mut Out, ws: usize, v: u64) {
    if ws == 8 {
        out.u64(v);
    } else {
        let [a, b, c, d, e, f, g, h] = v.to_le_bytes();
        out.u32(u32::from_le_bytes([a, b, c, d]));
        out.u32(u32::from_le_bytes([e, f, g, h]));
    }
}

/// How slots are written: references at their addresses, immediates re-encoded for the
/// target's word size.
struct Oops<'a> {
    heap: &'a BaseHeap,
    addr: &'a [u64],
    /// Which objects are hidden (their class index a pun), by object number.
    hidden: &'a [bool],
    ws: usize,
    target: &'static str,
    /// The class of boxed Floats.
    boxed_float: Option<u32>,
    /// Refer to boxed Floats a SmallFloat64 can hold as that immediate: only when a 32-bit
    /// base is written as 64-bit, as the converter does. A 64-bit base's boxed Floats are
    /// its own objects (`Float new: 2` makes one whatever its value, and no VM normalises
    /// it), kept as they are, so that its image is written back as it was read.
    immediate_floats: bool,
    /// The classes LargePositiveInteger and LargeNegativeInteger when a 32-bit base is
    /// written as 64-bit: a large integer a 61-bit SmallInteger holds is written as that
    /// SmallInteger ([`Oops::immediate_integer`]). `None` otherwise.
    large_integers: Option<[Option<ObjectIndex>; 2]>,
}

impl Oops<'_> {
    /// The oop for word `w` in a slot of object `x`.
    ///
    /// A hidden object is no Smalltalk object: a VM never hands one to Smalltalk code, and
    /// only hidden objects (the hidden roots, the class-table pages) refer to hidden ones.
    /// A reference to one from an ordinary object is not written: to a forwarder, a VM and
    /// the importer would read it as the forwarder's target, another graph; to a free chunk
    /// or the VM's own tables, as no object a message can be sent to.
    ///
    /// # Errors
    /// [`ExportError::Unrepresentable`] for a value the target's words cannot hold, and a
    /// reference from an ordinary object to a hidden one.
    fn oop(&self, x: ObjectIndex, w: Word) -> ExportResult<u64> {
        let unrepresentable = |what| ExportError::Unrepresentable {
            object: x,
            what,
            target: self.target,
        };
        let is_hidden = |y: ObjectIndex| self.hidden.get(y.get()).copied().unwrap_or(false);
        let reference = |b: ObjectIndex| {
            if is_hidden(b) && !is_hidden(x) {
                return Err(unrepresentable("a reference to a hidden object"));
            }
            self.addr
                .get(b.get())
                .copied()
                .ok_or(unrepresentable("a reference out of range"))
        };
        match w.decode() {
            Decoded::Base(b) => match (self.immediate_float(b), self.immediate_integer(b)) {
                (Some(payload), _) => Ok((payload << 3) | 4),
                // 61 bits, tag 001, checked by `immediate_integer`.
                (None, Some(i)) => Ok(((i << 3) | 1) as u64),
                (None, None) => reference(b),
            },
            // 31 bits, tag 1; the i32 reinterpreted as u32 keeps every bit.
            Decoded::Int(i) if self.ws == 4 => i32::try_from(i)
                .ok()
                .filter(|&i| (-(1 << 30)..1 << 30).contains(&i))
                .map(|i| u64::from(((i << 1) | 1) as u32))
                .ok_or(unrepresentable("a small integer too wide")),
            // 61 bits, tag 001; the i64 reinterpreted as u64 keeps every bit.
            Decoded::Int(i) if (-(1 << 60)..1 << 60).contains(&i) => Ok(((i << 3) | 1) as u64),
            Decoded::Int(_) => Err(unrepresentable("a small integer too wide")),
            Decoded::Char(c) if self.ws == 8 => Ok((u64::from(c) << 3) | 2),
            Decoded::Char(c) if c < 1 << 30 => Ok((u64::from(c) << 2) | 2),
            Decoded::Char(_) => Err(unrepresentable("a character code too large")),
            Decoded::Reserved(_) if !w.is_small_float() => Err(unrepresentable("an invalid word")),
            Decoded::Reserved(_) if self.ws == 8 => Ok((w.bits() & !7) | 4),
            Decoded::Reserved(_) => Err(unrepresentable("an immediate float")),
            Decoded::Private(_) => Err(unrepresentable("a private reference")),
        }
    }

    /// A 32-bit base written as 64-bit Spur with a SmallFloat64 class: a boxed Float whose
    /// value an immediate float can hold is referred to as that immediate, as Squeak's 32-
    /// to 64-bit converter (Spur32to64BitBootstrap) makes them: a 64-bit VM's arithmetic
    /// answers every such value as an immediate. The boxed object itself is still written,
    /// unreferenced.
    fn immediate_float(&self, b: ObjectIndex) -> Option<u64> {
        if !self.immediate_floats {
            return None;
        }
        let o = self.heap.object(b).ok()?;
        let class = o.class.as_base().map(ObjectIndex::as_u32);
        if !float::is_boxed(self.boxed_float, class, o.format, o.bytes) {
            return None;
        }
        float::small_float_payload(float::bits_of(o.bytes)?)
    }

    /// A 32-bit base written as 64-bit Spur: the value of a LargePositiveInteger or
    /// LargeNegativeInteger (bytes, least significant first) that a 61-bit SmallInteger
    /// holds, which is then referred to as that SmallInteger, the form a 64-bit VM's
    /// arithmetic gives every such value. A 64-bit VM answers every such value as a SmallInteger, and the
    /// image's integer code takes a large integer for a value past them: kept large, 2^40
    /// would not be `=` to the 2^40 a 64-bit VM computes, nor hash as it. The large object
    /// itself is still written, unreferenced.
    fn immediate_integer(&self, b: ObjectIndex) -> Option<i64> {
        let [positive, negative] = self.large_integers?;
        let o = self.heap.object(b).ok()?;
        let class = o.class.as_base();
        let negative = match class {
            Some(_) if class == positive => false,
            Some(_) if class == negative => true,
            _ => return None,
        };
        if o.format != Format::Bytes {
            return None;
        }
        // Leading zero digits add nothing: a non-normalised large integer has its value.
        let digits = o.bytes.iter().rposition(|&d| d != 0).map_or(0, |k| k + 1);
        let mut magnitude = [0u8; 8];
        magnitude
            .get_mut(..digits)?
            .copy_from_slice(o.bytes.get(..digits)?);
        let magnitude = i128::from(u64::from_le_bytes(magnitude));
        let value = if negative { -magnitude } else { magnitude };
        i64::try_from(value)
            .ok()
            .filter(|i| (-(1 << 60)..1 << 60).contains(i))
    }
}

/// Writes every object as `layout` planned it, with a bridge before each segment after the
/// first and the last bridge at the end. `widening`: the base's images were 32-bit and the
/// target is 64-bit, so values the wider words hold as immediates are written as those.
fn write_objects(
    heap: &BaseHeap,
    f: ImageFormat,
    layout: &Layout,
    tables: &Tables<'_>,
    pcs: &PcShift,
    widening: bool,
    out: &mut Out,
) -> ExportResult<()> {
    let class_table = tables.entry4;
    let placement = tables.placement;
    let (ws, target) = (f.word_bytes(), f.name());
    let special = crate::special_objects(heap)?;
    let boxed_float = float::float_class(heap, special);
    let unrepresentable = |object, what| ExportError::Unrepresentable {
        object,
        what,
        target,
    };
    let hidden: Vec<bool> = layout
        .plans
        .iter()
        .map(|p| p.header & 0x3F_FFFF < u64::from(FIRST_CLASS_INDEX))
        .collect();
    let oops = Oops {
        heap,
        addr: &layout.addr,
        hidden: &hidden,
        ws,
        target,
        boxed_float,
        immediate_floats: widening && class_table.float_class.is_some(),
        large_integers: widening.then(|| {
            SPECIAL_LARGE_INTEGERS.map(|k| {
                heap.get_slot(ObjectIndex::from_u32(special), k)
                    .filter(|&w| w != heap.nil().word())
                    .and_then(Word::as_base)
            })
        }),
    };
    let nil_oop = heap
        .nil()
        .as_base()
        .and_then(|n| layout.addr.get(n.get()).copied())
        .unwrap_or(0);
    let oop = |x: ObjectIndex, w: Word| oops.oop(x, w);
    // Each segment after the first: its first object and its size.
    let mut next_segment = layout.starts.iter().zip(&layout.sizes[1..]).peekable();
    for (x, p) in heap.indices().zip(&layout.plans) {
        if let Some((_, &size)) = next_segment.next_if(|&(&start, _)| start == x.get()) {
            // A bridge: an overflow size word spanning the gap, then the next segment's size.
            put64(out, ws, OVERFLOW | layout.gap_words);
            put64(out, ws, size);
        }
        let o = heap.object(x)?;
        if p.slots >= 255 {
            // Checked by plan_object: at most 56 bits.
            put64(out, ws, OVERFLOW | p.slots as u64);
        }
        put64(out, ws, p.header);
        let start = out.buf.len();
        let class = o.class.as_base();
        for (k, &w) in o.slots.iter().enumerate() {
            let v = match class_table.float_class {
                Some(c) if Some(x) == class_table.page && k == SMALL_FLOAT_INDEX as usize => {
                    oop(x, c)?
                }
                _ if let Some(&c) = placement.entries.get(&(x.as_u32(), k)) => oop(x, c)?,
                _ if x.as_u32() == HIDDEN_ROOTS
                    && let Ok(j) = placement.new_pages.binary_search_by_key(&k, |p| p.0) =>
                {
                    layout.addr[heap.len() + j]
                }
                _ => oop(x, pcs.slot(heap, x, class, k, w))?,
            };
            out.word(v, ws)?;
        }
        // A hidden object's raw words are words of whatever size the image has.
        let hidden = Aux::decode(o.aux).is_hidden();
        let unit = if hidden && o.bytes.len() % ws == 0 {
            ws
        } else {
            o.format.unit()
        };
        let class_index = o.class.as_base().map(ObjectIndex::as_u32);
        if p.zeroed {
            out.zeros(p.slots * ws);
        } else if float::is_boxed(boxed_float, class_index, o.format, o.bytes) {
            let bits = float::bits_of(o.bytes).unwrap_or_default();
            for w in float::to_file_words(bits, f) {
                out.u32(w);
            }
        } else {
            units_from_le(&mut out.buf, o.bytes, unit, f.order());
        }
        let padded = (p.slots * ws).max(8).next_multiple_of(8);
        let pointers = matches!(
            o.format,
            Format::Pointers | Format::Weak | Format::Ephemeron
        );
        if ws == 4 && pointers && p.slots % 2 == 1 {
            // The VM fills the word that pads a pointer object to 8 bytes with nil.
            out.word(nil_oop, ws)?;
        }
        let len = out.buf.len() - start;
        let pad = padded
            .checked_sub(len)
            .ok_or(unrepresentable(x, "more bytes than its slots hold"))?;
        out.zeros(pad);
    }
    // The class-table pages the placement adds, after the last object (in the last
    // segment, or each starting one of their own).
    let roots = ObjectIndex::from_u32(HIDDEN_ROOTS);
    for (j, (_, entries)) in placement.new_pages.iter().enumerate() {
        let i = heap.len() + j;
        if let Some((_, &size)) = next_segment.next_if(|&(&start, _)| start == i) {
            put64(out, ws, OVERFLOW | layout.gap_words);
            put64(out, ws, size);
        }
        let p = &layout.plans[i];
        put64(out, ws, OVERFLOW | p.slots as u64);
        put64(out, ws, p.header);
        let mut slots = crate::try_list(p.slots)?;
        slots.resize(p.slots, nil_oop);
        for &(k, c) in entries {
            slots[k] = oop(roots, c)?;
        }
        for v in slots {
            out.word(v, ws)?;
        }
    }
    put64(out, ws, LAST_BRIDGE);
    put64(out, ws, 0);
    Ok(())
}

/// What the export writes into the class table over what the base holds.
struct Tables<'a> {
    /// Entry 4 of a 64-bit image.
    entry4: &'a ClassTableEntry4,
    /// The classes a commit added.
    placement: &'a Placement,
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowheap_heap::Value;

    #[test]
    fn oops_decode_to_immediates() {
        let none = |_: u64| None;
        let w = decode_oop((7 << 3) | 1, 8, &none).unwrap();
        assert_eq!(w.as_int(), Some(7));
        let w = decode_oop(((-5i64) << 3) as u64 | 1, 8, &none).unwrap();
        assert_eq!(w.as_int(), Some(-5));
        assert_eq!(
            decode_oop((65 << 3) | 2, 8, &none).unwrap().as_char_code(),
            Some(65)
        );
        assert_eq!(
            decode_oop((65 << 2) | 2, 4, &none).unwrap().as_char_code(),
            Some(65)
        );
        assert_eq!(
            decode_oop(0xFFFF_FFFF, 4, &none).unwrap().as_int(),
            Some(-1)
        );
        // 1.5 as a SmallFloat64: rotate left by one, take away 896 << 53, tag 100.
        let bits = 1.5f64.to_bits().rotate_left(1) - (896 << 53);
        let w = decode_oop((bits << 3) | 4, 8, &none).unwrap();
        assert_eq!(Value::shared(w).as_f64(), Some(1.5));
        assert!(decode_oop(3, 8, &none).is_none() && decode_oop(8, 8, &none).is_none());
    }
}
