//! Primitives. Each answers `Some(flow)` when it succeeded (the receiver and arguments
//! popped, the result pushed, or a new context activated) or `None` when it failed, with
//! the stack untouched, so the method's own Smalltalk runs.

use crate::error::{CallChain, Result, VmError};
use crate::image::{ClassFormat, closure, ctx};
use crate::interp::{Flow, MAX_NESTED_PRIMITIVES, Vm, floor_div, floor_mod, shift};
use crate::memory::{BecomeKind, MemResult, ObjectMemory};
use cowheap_heap::{Format, ObjectSize, Value, Word};
use cowheap_tenants::Header;
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::sync::OnceLock;
use std::time::Instant;

type Prim = Result<Option<Flow>>;

/// How an object is indexed by `at:` and `at:put:`.
#[derive(Clone, Copy)]
pub(crate) struct Indexed {
    format: Format,
    /// Fields before the indexable ones (pointer formats), or literal bytes (methods).
    fixed: usize,
    /// Indexable fields.
    n: usize,
}

/// Entries of the at-cache.
const AT_CACHE: usize = 64;

/// The at-cache: how recently indexed objects are indexed, by object word, as a Squeak
/// interpreter's atCache keeps it. `at:`, `at:put:` and `size` on an object met again read
/// its format, fixed fields and size here instead of its header and its class's format
/// word. What an object's entry says changes only with a become, a class change or (a
/// reused word) a collection, and the `Vm` forgets every entry at each of these and at
/// every entry into a run, where the embedder may have done any of them (see
/// [`Vm::forget_enumeration`]). Like Squeak's, it does not watch a store into a class's
/// format field. Direct-mapped.
pub(crate) struct AtCache(Box<[Option<AtEntry>]>);

/// An at-cache entry: an object word and how that object is indexed.
type AtEntry = (u64, Indexed);

impl AtCache {
    pub(crate) fn new() -> AtCache {
        AtCache(vec![None; AT_CACHE].into_boxed_slice())
    }

    /// The entry for object word `key`.
    #[inline(always)]
    fn slot(key: u64) -> usize {
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - AT_CACHE.trailing_zeros());
        h as usize % AT_CACHE
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.0.iter_mut().for_each(|e| *e = None);
    }
}

const FAIL: Prim = Ok(None);

/// The largest code of a 32-bit Spur immediate character (30 bits).
const MAX_CHAR_CODE: u32 = (1 << 30) - 1;

/// The most indexable fields `basicNew:` makes (16 M: 128 MB of slots); past it the
/// primitive fails and the image's own code reports the error.
const MAX_NEW: usize = 1 << 24;

/// The 32-bit words of a Words object's `bytes` in the order `at:` numbers them: a boxed
/// Float's (`float`, 8 bytes holding its double little-endian) the most significant first,
/// any other's in memory order.
fn float_words(bytes: &[u8], float: bool) -> Vec<u32> {
    if float && let Ok(b) = <[u8; 8]>::try_from(bytes) {
        let bits = u64::from_le_bytes(b);
        return vec![(bits >> 32) as u32, bits as u32];
    }
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// The bytes of `words` in `at:` order ([`float_words`]'s inverse).
fn words_bytes(words: &[u32], float: bool) -> Vec<u8> {
    if float && let [hi, lo] = words {
        return ((u64::from(*hi) << 32) | u64::from(*lo))
            .to_le_bytes()
            .to_vec();
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The argument count of primitive `index` when it takes a fixed one, checked before it
/// runs ([`Vm::primitive`] fails it when the send's differs); `None` for one that takes its
/// count from the send (`value...` of a block or closure, `perform:...`, `size`, `class`,
/// the cache flushes, the quick returns, the clock and memory queries, which answer their
/// receiver whatever the count) or that the interpreter does not run (which fails anyway).
///
/// Each fixed count is the one every method of the real images declaring the primitive
/// has (mini.image, Scratch 1.4, bootstrapped.image, the headless Spur image).
pub(crate) const fn fixed_arity(index: u16) -> Option<usize> {
    Some(match index {
        // SmallInteger arithmetic and comparisons, `@`.
        1..=18 => 1,
        // Float: `asFloat`; the binary operations and `timesTwoPower:`; the unary ones. The
        // same for SmallFloat64, at 500 more.
        40 => 0,
        41..=50 | 54 | 541..=550 | 554 => 1,
        51..=53 | 55..=59 | 551..=553 | 555..=559 => 0,
        // at:, at:put: and their String variants.
        60 | 63 => 1,
        61 | 64 => 2,
        // objectAt:, objectAt:put:, basicNew, basicNew:, the becomes, instVarAt:,
        // instVarAt:put:, identityHash, someInstance/nextInstance/someObject/nextObject,
        // newMethod:header:.
        68 => 1,
        69 => 2,
        70 => 0,
        71 => 1,
        72 | 128 => 1,
        73 => 1,
        74 => 2,
        // stackp:.
        76 => 1,
        75 => 0,
        77 | 78 | 138 | 139 => 0,
        79 => 2,
        // blockCopy:, valueWithArguments: (a BlockContext's and a closure's),
        // perform:withArguments:, perform:withArguments:inSuperclass:.
        80 | 82 | 206 => 1,
        84 => 2,
        100 => 3,
        // signal, wait, resume, suspend; signal:atMilliseconds:.
        85..=88 => 0,
        136 => 2,
        // replaceFrom:to:with:startingAt:, ==, changeClassTo:, shallowCopy, ~~.
        105 => 4,
        110 => 1,
        115 => 1,
        148 => 0,
        // adoptInstance:.
        160 => 1,
        169 => 1,
        // Spur characters: `value:`, `asInteger`.
        170 => 1,
        171 => 0,
        // Spur: `primitiveFetchMourner`, `Behavior>>identityHash`.
        172 | 175 => 0,
        // elementsForwardIdentityNoCopyHashTo:, elementsForwardIdentityTo:copyHash:. No
        // image here declares them but bootstrapped.image, whose `PCObject>>putAscii:`
        // names 249 with one argument for a primitive of its own VM: that send fails the
        // count, and runs its method, as it did before 249 was the become.
        248 => 1,
        249 => 2,
        // tryPrimitive:withArgs:, withArgs:executeMethod:.
        118 | 188 => 2,
        // A context's at:, at:put:, size.
        210 => 1,
        211 => 2,
        212 => 0,
        _ => return None,
    })
}

/// [`fixed_arity`] of each index below [`ARITY_TABLE_LEN`] as a byte, [`ANY_ARITY`] for
/// none: the test before every primitive is one load and a compare, not the `match`.
static ARITIES: [u8; ARITY_TABLE_LEN] = arity_table();

/// Past the largest index [`fixed_arity`] names.
const ARITY_TABLE_LEN: usize = 560;

/// An index whose primitive takes any argument count.
const ANY_ARITY: u8 = u8::MAX;

const fn arity_table() -> [u8; ARITY_TABLE_LEN] {
    let mut t = [ANY_ARITY; ARITY_TABLE_LEN];
    let mut i = 0;
    while i < ARITY_TABLE_LEN {
        if let Some(n) = fixed_arity(i as u16) {
            t[i] = n as u8;
        }
        i += 1;
    }
    t
}

/// What `v` leads to through the one-way becomes of an array become so far (`forwarded`,
/// by identity key before each become), each word met on the way then pointed at the end.
/// A chain is never longer than the `pairs`.
fn settle<M: ObjectMemory>(
    m: &M,
    forwarded: &mut FxHashMap<u64, Value>,
    v: Value,
    pairs: usize,
) -> MemResult<Value> {
    let mut v = v;
    let mut met = Vec::new();
    for _ in 0..=pairs {
        let key = m.identity_key(v)?;
        match forwarded.get(&key) {
            Some(&to) => {
                met.push(key);
                v = to;
            }
            None => break,
        }
    }
    if met.len() > 1 {
        for key in met {
            forwarded.insert(key, v);
        }
    }
    Ok(v)
}

/// False if primitive `index` takes a fixed argument count other than `args`.
#[inline(always)]
fn arity_fits(index: u16, args: usize) -> bool {
    match ARITIES.get(usize::from(index)) {
        Some(&n) => n == ANY_ARITY || usize::from(n) == args,
        None => true,
    }
}

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// `x * 2^e`, rounded once, as C's `ldexp` (primitive 54, `timesTwoPower:`): infinite only
/// when the true result overflows, zero only when it underflows, and a subnormal result
/// rounded once. The power is applied in steps that stay in range: at most two of 2^1023
/// up, at most two of 2^-969 down (which keep a result that becomes subnormal only in the
/// last step, so it is rounded there alone: an intermediate is inexact only when the true
/// result is below half the least subnormal, which rounds to zero either way), then one
/// exact power of two made from its exponent bits. NaN, infinities and zeros answer
/// themselves.
pub(crate) fn ldexp(x: f64, e: i64) -> f64 {
    let (up, down) = (
        f64::from_bits(0x7FE << 52),
        f64::from_bits((0x3FF - 969) << 52),
    );
    let (mut y, mut n) = (x, e);
    if n > 1023 {
        y *= up;
        n -= 1023;
        if n > 1023 {
            y *= up;
            n = (n - 1023).min(1023);
        }
    } else if n < -1022 {
        y *= down;
        n += 969;
        if n < -1022 {
            y *= down;
            n = (n + 969).max(-1022);
        }
    }
    // -1022 <= n <= 1023: a normal power of two.
    y * f64::from_bits(((0x3FF + n) as u64) << 52)
}

/// The fraction part of `x` as C's `modf` answers it (primitive 52, `fractionPart`): it has
/// the sign of `x`, a zero fraction included (`-3.0 fractionPart` is -0.0, where `x -
/// x.trunc()`, Rust's `fract`, answers +0.0), an infinity's is a zero of its sign (`fract`
/// answers NaN), and NaN's is NaN.
pub(crate) fn modf_fraction(x: f64) -> f64 {
    if x.is_infinite() {
        return 0.0f64.copysign(x);
    }
    x.fract().copysign(x)
}

/// The mask of the millisecond clock, as Squeak's VMs keep it (`MillisecondClockMask`):
/// 29 bits, so that a deadline an image computes as the clock plus a delay (`Delay`'s
/// resumption time) is still a SmallInteger on a 32-bit image, whose largest is 2^30 - 1.
/// The clock wraps every 2^29 ms, about 6.2 days.
pub(crate) const MILLISECOND_CLOCK_MASK: i64 = 0x1FFF_FFFF;

/// The process's millisecond clock: milliseconds since the process first read it, wrapped
/// by [`MILLISECOND_CLOCK_MASK`]. A run's clock ([`Vm::clock`]) is this, or ahead of it in
/// a run resumed from a stop on a clock further on.
pub(crate) fn millisecond_clock() -> i64 {
    epoch().elapsed().as_millis() as i64 & MILLISECOND_CLOCK_MASK
}

/// Milliseconds from `now` to `deadline`, both on the clock of primitive 135, across the
/// clock's wrap: the difference taken modulo the clock's period, within half a period
/// either way (negative for a deadline passed). A deadline an image computed just before
/// the wrap (past the mask, or not) is so due just after it, where the plain difference
/// would put it days away, or past.
pub(crate) fn ms_until(deadline: i64, now: i64) -> i64 {
    let period = MILLISECOND_CLOCK_MASK + 1;
    let d = deadline.wrapping_sub(now).rem_euclid(period);
    if d > period / 2 { d - period } else { d }
}

impl Vm {
    /// The run's millisecond clock, of primitive 135 (`millisecondClockValue`), which the
    /// deadlines of primitive 136 are given in: the process's clock plus the run's offset
    /// (see [`CLOCK_ROOT`](crate::CLOCK_ROOT)), wrapped by [`MILLISECOND_CLOCK_MASK`].
    pub(crate) fn clock(&self) -> i64 {
        millisecond_clock().wrapping_add(self.clock_offset) & MILLISECOND_CLOCK_MASK
    }

    /// Pops the receiver and `args` arguments and pushes `v`.
    fn answer<M: ObjectMemory>(&mut self, m: &mut M, args: usize, v: Value) -> Prim {
        self.pop_then_push(m, args + 1, v)?;
        Ok(Some(Flow::Go))
    }

    fn arg_int<M: ObjectMemory>(&self, m: &M, depth: usize) -> Result<Option<i64>> {
        Ok(self.peek(m, depth)?.as_int())
    }

    /// The double of a boxed Float, of an immediate float (64-bit Spur) or of a
    /// SmallInteger.
    pub(crate) fn float_of<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<Option<f64>> {
        if let Some(i) = v.as_int() {
            return Ok(Some(i as f64));
        }
        if let Some(f) = v.as_f64() {
            return Ok(Some(f));
        }
        if !v.is_object() || !self.same(m, m.class_of(v)?, self.sp.float)? {
            return Ok(None);
        }
        let b = m.bytes(v)?;
        Ok(b.try_into().ok().map(|b: [u8; 8]| f64::from_le_bytes(b)))
    }

    /// A Float of `f`: an immediate one where the image has them and one can hold `f`, else
    /// a new boxed Float.
    pub(crate) fn new_float<M: ObjectMemory>(&self, m: &mut M, f: f64) -> Result<Value> {
        if self.sp.immediate_floats
            && let Some(w) =
                cowheap_squeak::small_float_payload(f.to_bits()).and_then(Word::small_float_bits)
        {
            return Ok(Value::shared(w));
        }
        let v = m.alloc(
            self.sp.float,
            Format::Words,
            ObjectSize { slots: 0, bytes: 8 },
        )?;
        m.set_bytes(v, 0, &f.to_le_bytes())?;
        Ok(v)
    }

    /// A SmallInteger, or a LargePositiveInteger for a value past the SmallInteger range.
    fn positive<M: ObjectMemory>(&self, m: &mut M, u: u64) -> Result<Value> {
        if let Some(v) = i64::try_from(u).ok().and_then(|i| self.int(i)) {
            return Ok(v);
        }
        let bytes = u.to_le_bytes();
        let len = 8 - (u.leading_zeros() / 8) as usize;
        let v = m.alloc(
            self.sp.large_positive,
            Format::Bytes,
            ObjectSize {
                slots: 0,
                bytes: len,
            },
        )?;
        m.set_bytes(v, 0, &bytes[..len])?;
        Ok(v)
    }

    /// The unsigned value of a non-negative SmallInteger or a LargePositiveInteger of at
    /// most `max_bytes` bytes (at most 8): Squeak's `positive32BitValueOf:` takes at most 4,
    /// whatever the value, so an unnormalised 5-byte 7 is refused as it refuses it.
    fn unsigned_of<M: ObjectMemory>(
        &self,
        m: &M,
        v: Value,
        max_bytes: usize,
    ) -> Result<Option<u64>> {
        if let Some(i) = v.as_int() {
            return Ok(u64::try_from(i).ok());
        }
        if !v.is_object() || !self.same(m, m.class_of(v)?, self.sp.large_positive)? {
            return Ok(None);
        }
        let b = m.bytes(v)?;
        if b.len() > max_bytes.min(8) {
            return Ok(None);
        }
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        Ok(Some(u64::from_le_bytes(w)))
    }

    /// True if `obj` is a boxed Float (of the image's class Float, 8 bytes): its words are
    /// numbered from the most significant ([`float_words`]).
    fn is_boxed_float<M: ObjectMemory>(&self, m: &M, obj: Value) -> Result<bool> {
        Ok(obj.is_object()
            && m.bytes(obj)?.len() == 8
            && self.same(m, m.class_of(obj)?, self.sp.float)?)
    }

    /// Fixed fields of `obj`'s class and whether it is indexable.
    fn shape<M: ObjectMemory>(&self, m: &M, obj: Value) -> Result<ClassFormat> {
        let class = m.class_of(obj)?;
        Ok(self.class_format(m, class)?)
    }

    /// How `obj` is indexed: its format, its fixed fields (pointer formats) and the number
    /// of indexable fields (what `basicSize` answers); `None` for an immediate.
    fn indexed<M: ObjectMemory>(&mut self, m: &M, obj: Value) -> Result<Option<Indexed>> {
        if !obj.is_object() {
            return Ok(None);
        }
        let key = obj.word().bits();
        let at = AtCache::slot(key);
        if let Some((k, x)) = self.at_cache.0[at]
            && k == key
        {
            return Ok(Some(x));
        }
        let Header {
            class,
            format,
            size,
        } = m.header(obj)?;
        let (fixed, n) = match format {
            Format::Pointers | Format::Weak | Format::Ephemeron => {
                let f = self.class_format(m, class)?;
                if f.indexable() {
                    let Some(n) = size.slots.checked_sub(f.fixed) else {
                        return Ok(None);
                    };
                    (f.fixed, n)
                } else {
                    (f.fixed, 0)
                }
            }
            Format::Bytes => (0, size.bytes),
            Format::Shorts => (0, size.bytes / 2),
            Format::Words => (0, size.bytes / 4),
            Format::DoubleWords => (0, size.bytes / 8),
            // The header and literal words are `at:` indices 1 to `word_bytes` per word.
            Format::CompiledMethod => {
                let w = self.sp.word_bytes;
                (size.slots * w, size.slots * w + size.bytes)
            }
        };
        let x = Indexed { format, fixed, n };
        self.at_cache.0[at] = Some((key, x));
        Ok(Some(x))
    }

    /// The number of indexable fields of `obj` (what `basicSize` answers), or `None`.
    fn indexable_size<M: ObjectMemory>(&mut self, m: &M, obj: Value) -> Result<Option<usize>> {
        Ok(self.indexed(m, obj)?.map(|x| x.n))
    }

    /// `obj basicAt: i` (1-based), or with `chars` `obj stringAt: i` (raw units answered as
    /// Characters); `None` where the primitive fails.
    fn at<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        obj: Value,
        i: i64,
        chars: bool,
    ) -> Result<Option<Value>> {
        let Some(x) = self.indexed(m, obj)? else {
            return Ok(None);
        };
        let Some(i) = usize::try_from(i).ok().filter(|&i| i >= 1 && i <= x.n) else {
            return Ok(None);
        };
        let i = i - 1;
        Ok(match x.format {
            Format::Pointers | Format::Weak | Format::Ephemeron => Some(m.slot(obj, x.fixed + i)?),
            Format::Bytes => {
                let b = m.bytes(obj)?[i];
                if chars {
                    self.character(m, u32::from(b))?
                } else {
                    Some(Value::int(i64::from(b)))
                }
            }
            Format::Words => {
                let b = m.bytes(obj)?;
                let is_float = self.same(m, m.class_of(obj)?, self.sp.float)?;
                let w = if is_float && b.len() == 8 {
                    // Squeak's Float word 1 is the most significant.
                    let bits = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                    if i == 0 {
                        (bits >> 32) as u32
                    } else {
                        bits as u32
                    }
                } else {
                    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
                };
                if chars {
                    // `stringAt:` of a words object (a WideString) answers a Character.
                    self.character(m, w)?
                } else {
                    Some(self.positive(m, u64::from(w))?)
                }
            }
            // A Spur image's 16- and 64-bit units, unsigned (`stringAt:` takes no
            // Character from them: it fails).
            Format::Shorts if !chars => {
                let b = m.bytes(obj)?;
                Some(Value::int(i64::from(u16::from_le_bytes([
                    b[2 * i],
                    b[2 * i + 1],
                ]))))
            }
            Format::DoubleWords if !chars => {
                let b = m.bytes(obj)?;
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[8 * i..8 * i + 8]);
                Some(self.positive(m, u64::from_le_bytes(w))?)
            }
            Format::CompiledMethod => {
                let lits = x.fixed;
                // The header word's bytes answer; those of its literal words (object
                // addresses in a Squeak VM, which this heap does not have) fail `at:`, and
                // `at:put:` fails on both, as SqueakJS's does.
                if i < self.sp.word_bytes {
                    self.method_header_byte(m, obj, i)?
                } else if i < lits {
                    None
                } else {
                    Some(Value::int(i64::from(m.bytes(obj)?[i - lits])))
                }
            }
            _ => None,
        })
    }

    /// The Character of `code`, as `stringAt:` answers it: a Spur image's immediate
    /// character (codes up to 2^30 - 1), a V3 image's entry of its character table (the
    /// only Characters a V3 VM answers); `None` past them, where the primitive fails. A
    /// byte's code is read from the table without asking its size (a V3 table has 256).
    #[inline(always)]
    fn character<M: ObjectMemory>(&self, m: &M, code: u32) -> Result<Option<Value>> {
        match self.sp.character_table {
            Some(table) if code <= 0xFF => Ok(Some(m.slot(table, code as usize)?)),
            Some(table) => {
                let i = code as usize;
                if i >= m.size(table)?.slots {
                    return Ok(None);
                }
                Ok(Some(m.slot(table, i)?))
            }
            None => Ok((code <= MAX_CHAR_CODE).then(|| Value::shared(Word::char_code(code)))),
        }
    }

    /// The code of Character `v`, as `stringAt:put:` takes it: a Spur image's immediate
    /// character, or an instance of the image's Character class (its value field); `None`
    /// for anything else.
    fn character_code<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<Option<i64>> {
        if let Some(code) = v.word().as_char_code()
            && self.sp.character_table.is_none()
        {
            // Spur: an immediate character (a V3 image has none).
            return Ok(Some(i64::from(code)));
        }
        if !v.is_object() || !self.same(m, m.class_of(v)?, self.sp.character)? {
            return Ok(None);
        }
        Ok(m.slot(v, 0)?.as_int())
    }

    /// Byte `i` (0-based, below the image's word size) of a CompiledMethod's header word, as
    /// a Squeak VM's `at:` answers it: a CompiledMethod is indexed from the start of its body
    /// (`initialPC` is `word_bytes * (literals + 1) + 1`), so indices 1-4 (1-8 in a 64-bit
    /// image) are the bytes of the header SmallInteger's oop (`header << 1 | 1`, 64-bit
    /// `header << 3 | 1`) in memory order, little-endian as these images were saved. The
    /// image reads them: `endPC` looks back through up to four trailing zero bytes, and in a
    /// quick-return method (no bytecodes) saved with a trailer of four zeros, the fourth is
    /// the header's last byte. `None` if the header is no SmallInteger.
    fn method_header_byte<M: ObjectMemory>(
        &self,
        m: &M,
        obj: Value,
        i: usize,
    ) -> Result<Option<Value>> {
        let Some(h) = m.slot(obj, 0)?.as_int() else {
            return Ok(None);
        };
        // The oop of a SmallInteger: the value shifted past the tag bits (one of 31-bit
        // SmallIntegers, three of 61-bit ones).
        let byte = if self.sp.word_bytes == 8 {
            (((h << 3) | 1) as u64).to_le_bytes().get(i).copied()
        } else {
            (((h << 1) | 1) as u32).to_le_bytes().get(i).copied()
        };
        Ok(byte.map(|b| Value::int(i64::from(b))))
    }

    /// `obj basicAt: i put: v`: how `obj` is indexed when stored, `None` if it fails.
    fn at_put<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        obj: Value,
        i: i64,
        v: Value,
        chars: bool,
    ) -> Result<Option<Indexed>> {
        let Some(x) = self.indexed(m, obj)? else {
            return Ok(None);
        };
        let Some(i) = usize::try_from(i).ok().filter(|&i| i >= 1 && i <= x.n) else {
            return Ok(None);
        };
        let i = i - 1;
        match x.format {
            Format::Pointers | Format::Weak | Format::Ephemeron => {
                m.set_slot(obj, x.fixed + i, v)?;
            }
            Format::Bytes => {
                let b = if chars {
                    self.character_code(m, v)?
                } else {
                    v.as_int()
                };
                let Some(b) = b.and_then(|b| u8::try_from(b).ok()) else {
                    return Ok(None);
                };
                m.set_bytes(obj, i, &[b])?;
            }
            Format::Words => {
                // `stringAt:put:` into a words object (a WideString) stores a Character's
                // code; `at:put:` an unsigned 32-bit integer.
                let w = if chars {
                    self.character_code(m, v)?
                        .and_then(|c| u64::try_from(c).ok())
                } else {
                    self.unsigned_of(m, v, 4)?
                };
                let Some(w) = w.and_then(|u| u32::try_from(u).ok()) else {
                    return Ok(None);
                };
                if self.same(m, m.class_of(obj)?, self.sp.float)? {
                    // A boxed Float is 8 bytes, the high word first to the image; one of
                    // another size (`Float basicNew: 4`) is stored to as words.
                    let Ok(b) = <[u8; 8]>::try_from(m.bytes(obj)?) else {
                        m.set_bytes(obj, 4 * i, &w.to_le_bytes())?;
                        return Ok(Some(x));
                    };
                    let bits = u64::from_le_bytes(b);
                    let bits = if i == 0 {
                        (bits & 0xFFFF_FFFF) | (u64::from(w) << 32)
                    } else {
                        (bits & !0xFFFF_FFFF) | u64::from(w)
                    };
                    m.set_bytes(obj, 0, &bits.to_le_bytes())?;
                } else {
                    m.set_bytes(obj, 4 * i, &w.to_le_bytes())?;
                }
            }
            // 16-bit units take 0 to 2^16 - 1 and 64-bit ones 0 to 2^64 - 1 (a
            // LargePositiveInteger of at most 8 bytes), as Squeak's `positive32BitValueOf:`
            // and `positive64BitValueOf:` take them.
            Format::Shorts if !chars => {
                let Some(u) = self
                    .unsigned_of(m, v, 4)?
                    .and_then(|u| u16::try_from(u).ok())
                else {
                    return Ok(None);
                };
                m.set_bytes(obj, 2 * i, &u.to_le_bytes())?;
            }
            Format::DoubleWords if !chars => {
                let Some(u) = self.unsigned_of(m, v, 8)? else {
                    return Ok(None);
                };
                m.set_bytes(obj, 8 * i, &u.to_le_bytes())?;
            }
            Format::CompiledMethod => {
                let lits = x.fixed;
                let Some(b) = v.as_int().and_then(|b| u8::try_from(b).ok()) else {
                    return Ok(None);
                };
                if i < lits {
                    return Ok(None);
                }
                m.set_bytes(obj, i - lits, &[b])?;
            }
            _ => return Ok(None),
        }
        Ok(Some(x))
    }

    /// Runs primitive `index` of `method`, sent as `selector` with `args` arguments.
    pub(crate) fn primitive<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        index: u16,
        method: Value,
        selector: Value,
        args: usize,
    ) -> Prim {
        let _ = (method, selector);
        // A primitive of a fixed argument count sent with another fails, before it reads
        // the stack, as a Squeak VM's does: its method's own bytecodes run.
        if !arity_fits(index, args) {
            return FAIL;
        }
        // (A BlockContext's `value...`, 81-82, writes the caller's registers only if it
        // does not keep them.)
        if !matches!(index, 1..=64 | 70 | 71 | 75 | 81 | 82 | 110 | 111 | 256..) {
            self.store_registers(m)?;
        }
        match index {
            1..=17 => self.prim_int(m, index, args),
            18 => {
                let (x, y) = (self.peek(m, 1)?, self.peek(m, 0)?);
                if x.as_int().is_none() && self.float_of(m, x)?.is_none() {
                    return FAIL;
                }
                // A Point class of fewer than two pointer fields fails before anything is
                // made, so the failure leaves no object behind.
                let class = self.sp.point;
                let f = self.class_format(m, class)?;
                if f.spec > 4 || f.fixed < 2 {
                    return FAIL;
                }
                let Some(p) = self.instantiate(m, class, 0)? else {
                    return FAIL;
                };
                m.set_slot(p, 0, x)?;
                m.set_slot(p, 1, y)?;
                self.answer(m, 1, p)
            }
            40 => {
                let Some(i) = self.peek(m, 0)?.as_int() else {
                    return FAIL;
                };
                let f = self.new_float(m, i as f64)?;
                self.answer(m, args, f)
            }
            41..=59 => self.prim_float(m, index, args),
            // 64-bit Spur: SmallFloat64's primitives are the Float ones plus 500.
            541..=559 if self.sp.immediate_floats => self.prim_float(m, index - 500, args),
            60 | 63 => {
                let (obj, i) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
                let Some(i) = i else { return FAIL };
                match self.at(m, obj, i, index == 63)? {
                    Some(v) => self.answer(m, 1, v),
                    None => FAIL,
                }
            }
            61 | 64 => {
                let (obj, i, v) = (self.peek(m, 2)?, self.arg_int(m, 1)?, self.peek(m, 0)?);
                let Some(i) = i else { return FAIL };
                // A store into the active context: the registers go into it first (a
                // temporary assigned since they last did is only there), and after the
                // store the interpreter's copy is loaded again (as `instVarAt:put:`).
                let active = self.same(m, obj, self.active)?;
                if active {
                    self.store_registers(m)?;
                }
                match self.at_put(m, obj, i, v, index == 64)? {
                    Some(x) => {
                        self.stored_at(m, obj, i, x)?;
                        let r = self.answer(m, 2, v);
                        if active {
                            self.reload_active(m)?;
                        }
                        r
                    }
                    None => FAIL,
                }
            }
            62 => {
                // The top of the stack, as Squeak's `primitiveSize` reads it: the receiver of
                // `basicSize`, the argument of the mirror primitive `objectSize:`.
                let obj = self.peek(m, 0)?;
                match self.indexable_size(m, obj)? {
                    Some(n) => self.answer(m, args, Value::int(n as i64)),
                    None => FAIL,
                }
            }
            68 => {
                let (obj, i) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
                let Some(i) = i.and_then(|i| usize::try_from(i).ok()) else {
                    return FAIL;
                };
                if !obj.is_object()
                    || m.format(obj)? != Format::CompiledMethod
                    || i < 1
                    || i > m.size(obj)?.slots
                {
                    return FAIL;
                }
                let v = m.slot(obj, i - 1)?;
                self.answer(m, 1, v)
            }
            69 => {
                let (obj, i, v) = (self.peek(m, 2)?, self.arg_int(m, 1)?, self.peek(m, 0)?);
                let Some(i) = i.and_then(|i| usize::try_from(i).ok()) else {
                    return FAIL;
                };
                if !obj.is_object()
                    || m.format(obj)? != Format::CompiledMethod
                    || i < 1
                    || i > m.size(obj)?.slots
                {
                    return FAIL;
                }
                // A header is a SmallInteger, as a Squeak VM's primitive requires before it
                // stores one: anything else would stop the method's next send. Its literal
                // count is the method's: `newMethod:header:` fixes it (the image's own doc of
                // that primitive says so), and another would move the method's bytecodes,
                // and the pc of every context running it, away from its bytes.
                if i == 1 {
                    let lits = m.size(obj)?.slots - 1;
                    let spur = self.sp.spur;
                    if v.as_int()
                        .is_none_or(|h| crate::image::MethodHeader::literals_of(h, spur) != lits)
                    {
                        return FAIL;
                    }
                }
                m.set_slot(obj, i - 1, v)?;
                // A Squeak VM reads a method's frame size, temporaries and arguments from
                // its header at each activation: the lookups cached with the header as it
                // was are forgotten.
                if i == 1 {
                    self.flush_method(m, obj)?;
                }
                self.answer(m, 2, v)
            }
            70 => {
                // An indexable class fails before anything is made (its fallback code sends
                // `basicNew: 0`): a failed primitive leaves no object behind.
                let class = self.peek(m, 0)?;
                if !class.is_object() || self.class_format(m, class)?.indexable() {
                    return FAIL;
                }
                match self.instantiate(m, class, 0)? {
                    Some(v) => self.answer(m, 0, v),
                    None => FAIL,
                }
            }
            71 => {
                let (class, n) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
                let Some(n) = n.and_then(|n| usize::try_from(n).ok()) else {
                    return FAIL;
                };
                if !class.is_object() || !self.class_format(m, class)?.indexable() || n > MAX_NEW {
                    return FAIL;
                }
                match self.instantiate(m, class, n)? {
                    Some(v) => self.answer(m, 1, v),
                    None => FAIL,
                }
            }
            72 => self.array_become(m, 1, BecomeKind::OneWay { copy_hash: true }),
            128 => self.array_become(m, 1, BecomeKind::TwoWay),
            248 => self.array_become(m, 1, BecomeKind::OneWay { copy_hash: false }),
            249 => {
                // The flag must be a Boolean, as Squeak's primitive requires.
                let flag = self.peek(m, 0)?.word();
                let copy_hash = if flag == self.sp.true_.word() {
                    true
                } else if flag == self.sp.false_.word() {
                    false
                } else {
                    return FAIL;
                };
                self.array_become(m, 2, BecomeKind::OneWay { copy_hash })
            }
            73 => {
                let (obj, i) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
                let Some(i) = i.and_then(|i| usize::try_from(i).ok()) else {
                    return FAIL;
                };
                if i < 1 || i > self.named_fields(m, obj)? {
                    return FAIL;
                }
                let v = m.slot(obj, i - 1)?;
                self.answer(m, 1, v)
            }
            74 => {
                let (obj, i, v) = (self.peek(m, 2)?, self.arg_int(m, 1)?, self.peek(m, 0)?);
                let Some(i) = i.and_then(|i| usize::try_from(i).ok()) else {
                    return FAIL;
                };
                if i < 1 || i > self.named_fields(m, obj)? {
                    return FAIL;
                }
                m.set_slot(obj, i - 1, v)?;
                let r = self.answer(m, 2, v);
                if self.same(m, obj, self.active)? {
                    self.reload_active(m)?;
                }
                r
            }
            75 => {
                let obj = self.peek(m, 0)?;
                if !obj.is_object() {
                    return FAIL;
                }
                let h = m.identity_hash(obj)?;
                self.answer(m, 0, Value::int(i64::from(h & 0x3FFF_FFFF)))
            }
            76 => self.store_stackp(m),
            79 => {
                let (class, n, h) = (self.peek(m, 2)?, self.arg_int(m, 1)?, self.arg_int(m, 0)?);
                let (Some(n), Some(h)) = (n.and_then(|n| usize::try_from(n).ok()), h) else {
                    return FAIL;
                };
                if !class.is_object() || n > 1 << 20 {
                    return FAIL;
                }
                let lits = crate::image::MethodHeader::literals_of(h, self.sp.spur);
                let v = m.alloc(
                    class,
                    Format::CompiledMethod,
                    ObjectSize {
                        slots: 1 + lits,
                        bytes: n,
                    },
                )?;
                m.set_slot(v, 0, Value::int(h))?;
                self.answer(m, 2, v)
            }
            80 => self.block_copy(m, args),
            81 => self.block_value(m, args, None),
            82 => {
                let a = self.peek(m, 0)?;
                self.block_value(m, 1, Some(a))
            }
            83 => self.prim_perform(m, args),
            84 => self.perform_with_arguments(m, None),
            100 => {
                let class = self.peek(m, 0)?;
                self.perform_with_arguments(m, Some(class))
            }
            85..=88 | 136 | 230 => self.prim_process(m, index, args),
            77 | 78 | 138 | 139 => self.prim_enumerate(m, index, args),
            115 => self.prim_change_class(m, args),
            160 => self.prim_adopt_instance(m, args),
            89 | 116 | 119 => {
                // The method or selector flushed is the top of the stack, as Squeak's
                // primitives read it: the receiver of `CompiledMethod>>flushCache` and
                // `Symbol>>flushCache`, the argument of a class's
                // `primitiveFlushMethodCacheForSelector: aSymbol` (which `installMethod:`
                // sends). The receiver is answered.
                let (r, top) = (self.peek(m, args)?, self.peek(m, 0)?);
                match index {
                    116 => self.flush_method(m, top)?,
                    119 => self.flush_selector(m, top)?,
                    _ => self.flush_cache(),
                }
                self.answer(m, args, r)
            }
            105 => self.replace(m),
            110 => {
                let (a, b) = (self.peek(m, 1)?, self.peek(m, 0)?);
                let r = self.boolean(self.same(m, a, b)?);
                self.answer(m, 1, r)
            }
            111 => {
                // The class of the top of the stack, as Squeak's `primitiveClass` answers it:
                // the receiver's for `class`, the argument's for the mirror primitive
                // `objectClass:`.
                let a = self.peek(m, 0)?;
                let c = m.class_of(a)?;
                self.answer(m, args, c)
            }
            112 => self.answer(m, args, Value::int(1 << 28)),
            129 => {
                let a = self.sp.array;
                self.answer(m, args, a)
            }
            130 | 131 => {
                let cleared = self.collect_now(m)?;
                let answered = self.answer(m, args, Value::int(1 << 28))?;
                // With the answer on the stack, the finalization process may run at once:
                // it preempts the active process if its priority is higher, as after a
                // collection in Squeak.
                if cleared > 0
                    && let Some(flow) = self.signal_finalization(m, true)?
                {
                    return Ok(Some(flow));
                }
                Ok(answered)
            }
            135 => self.answer(m, args, Value::int(self.clock())),
            137 => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    + 2_177_452_800;
                let v = self.positive(m, secs)?;
                self.answer(m, args, v)
            }
            148 => {
                let obj = self.peek(m, 0)?;
                if !obj.is_object() {
                    return FAIL;
                }
                let (class, format, size) = (m.class_of(obj)?, m.format(obj)?, m.size(obj)?);
                let copy = m.alloc(class, format, size)?;
                for i in 0..size.slots {
                    let v = m.slot(obj, i)?;
                    m.set_slot(copy, i, v)?;
                }
                if size.bytes > 0 {
                    let b = m.bytes(obj)?.to_vec();
                    m.set_bytes(copy, 0, &b)?;
                }
                self.answer(m, 0, copy)
            }
            167 => self.prim_process(m, index, args),
            // A V3 image's characters are objects of its character table: these two fail there
            // and its fallback code runs.
            170 if self.sp.spur => {
                // `Character value: anInteger` (Spur): the immediate character of that code.
                let code = self.arg_int(m, 0)?;
                match code
                    .and_then(|c| u32::try_from(c).ok())
                    .filter(|&c| c <= MAX_CHAR_CODE)
                {
                    Some(c) => self.answer(m, 1, Value::shared(Word::char_code(c))),
                    None => FAIL,
                }
            }
            171 if self.sp.spur => {
                // `aCharacter asInteger` (Spur): the code of an immediate character.
                let c = self.peek(m, 0)?;
                match c.word().as_char_code() {
                    Some(code) => self.answer(m, 0, Value::int(i64::from(code))),
                    None => FAIL,
                }
            }
            172 if self.sp.spur => {
                // `WeakArray class>>primitiveFetchMourner` (Spur): the next ephemeron the
                // collections fired, or weak object they cleared a slot of, off the mourner
                // queue; fails when it is empty.
                match self.next_mourner(m)? {
                    Some(e) => self.answer(m, 0, e),
                    None => FAIL,
                }
            }
            175 if self.sp.spur => {
                // `aBehavior identityHash` (Spur, `primitiveBehaviorHash`): a class's hash,
                // which Spur makes its class index. A class a tenant made keeps the hash
                // drawn for it, at which the exporter enters it into the class table. Only
                // a behavior: an object with a SmallInteger format in field 2.
                let c = self.peek(m, 0)?;
                if !c.is_object()
                    || m.format(c)? != Format::Pointers
                    || m.size(c)?.slots <= 2
                    || m.slot(c, 2)?.as_int().is_none()
                {
                    return FAIL;
                }
                let h = m.identity_hash(c)?;
                self.answer(m, 0, Value::int(i64::from(h)))
            }
            169 => {
                let (a, b) = (self.peek(m, 1)?, self.peek(m, 0)?);
                let r = self.boolean(!self.same(m, a, b)?);
                self.answer(m, 1, r)
            }
            188 => {
                // receiver withArgs: argArray executeMethod: compiledMethod
                let (array, method) = (self.peek(m, 1)?, self.peek(m, 0)?);
                if !method.is_object() || m.format(method)? != Format::CompiledMethod {
                    return FAIL;
                }
                let h = self.header(m, method)?;
                // An Array, as Squeak's primitive requires (`isArray:`), as 82, 84 and 206.
                if !self.is_array(m, array)? || m.size(array)?.slots != h.args {
                    return FAIL;
                }
                // The arguments must fit the stack where the array and the method were, as
                // `perform:withArguments:` checks: the primitive fails, leaving the stack as
                // it was, rather than pushing past the end of the context.
                if self.stack_room(2) < h.args {
                    return FAIL;
                }
                self.drop_n(2);
                for i in 0..h.args {
                    let v = m.slot(array, i)?;
                    self.push(m, v)?;
                }
                let nil = self.sp.nil;
                let rcvr = self.peek(m, h.args)?;
                let found = crate::interp::Found {
                    method,
                    header: h,
                    trap: false,
                    context: self.is_context(m, rcvr)?,
                };
                self.execute(m, found, nil, h.args).map(Some)
            }
            118 => self.try_primitive(m),
            201..=206 => self.closure_value(m, index, args),
            210 => {
                let (c, i) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
                let Some(i) = i else { return FAIL };
                if !self.is_context(m, c)? {
                    // An object that is no context is indexed as `basicAt:` indexes it, as
                    // Squeak's primitive does (`stObject:at:`); as 212 answers its size.
                    return match self.at(m, c, i, false)? {
                        Some(v) => self.answer(m, 1, v),
                        None => FAIL,
                    };
                }
                let Ok(i) = usize::try_from(i) else {
                    return FAIL;
                };
                let Some(sp) = self.stack_pointer(m, c)? else {
                    return FAIL;
                };
                if i < 1 || i > sp {
                    return FAIL;
                }
                let v = m.slot(c, ctx::TEMPS + i - 1)?;
                self.answer(m, 1, v)
            }
            211 => {
                let (c, i, v) = (self.peek(m, 2)?, self.arg_int(m, 1)?, self.peek(m, 0)?);
                let Some(i) = i else { return FAIL };
                if !self.is_context(m, c)? {
                    // As `basicAt:put:` stores (`stObject:at:put:`), as 210 reads.
                    return match self.at_put(m, c, i, v, false)? {
                        Some(x) => {
                            self.stored_at(m, c, i, x)?;
                            self.answer(m, 2, v)
                        }
                        None => FAIL,
                    };
                }
                let Ok(i) = usize::try_from(i) else {
                    return FAIL;
                };
                let Some(sp) = self.stack_pointer(m, c)? else {
                    return FAIL;
                };
                if i < 1 || i > sp {
                    return FAIL;
                }
                m.set_slot(c, ctx::TEMPS + i - 1, v)?;
                let r = self.answer(m, 2, v);
                if self.same(m, c, self.active)? {
                    self.reload_active(m)?;
                }
                r
            }
            212 => {
                // A context's stack pointer; any other object's indexable size, as Squeak's
                // primitive answers it.
                let c = self.peek(m, 0)?;
                if self.is_context(m, c)? {
                    let sp = m.slot(c, ctx::STACKP)?.as_int().unwrap_or(0);
                    self.answer(m, 0, Value::int(sp))
                } else {
                    match self.indexable_size(m, c)? {
                        Some(n) => self.answer(m, 0, Value::int(n as i64)),
                        None => FAIL,
                    }
                }
            }
            // ^self: the receiver is already on top when there are no arguments.
            256 if args == 0 => Ok(Some(Flow::Go)),
            257..=263 => {
                let v = match index {
                    257 => self.sp.true_,
                    258 => self.sp.false_,
                    259 => self.sp.nil,
                    k => Value::int(i64::from(k) - 261),
                };
                self.answer(m, args, v)
            }
            264..=519 => {
                let obj = self.peek(m, args)?;
                let i = usize::from(index - 264);
                if !obj.is_object() || i >= m.size(obj)?.slots {
                    return FAIL;
                }
                let v = m.slot(obj, i)?;
                self.answer(m, args, v)
            }
            _ => FAIL,
        }
    }

    /// The array becomes: `receiver elementsForwardIdentityTo: array` (72),
    /// `elementsExchangeIdentityWith:` (128), `elementsForwardIdentityNoCopyHashTo:` (248)
    /// and `elementsForwardIdentityTo:copyHash:` (249, whose flag the caller has read;
    /// `args` counts it), each pair of elements becomed as `kind` says, all or none. Fails
    /// (changing nothing) for arrays that are not two objects of pointers of one size, or
    /// an element that is an immediate, nil, true, false or a context; a pair the memory
    /// would refuse ([`ObjectMemory::check_room_for_become`]) stops the run with its error
    /// before any pair is becomed. Answers the receiver. Time: O(pairs) and the memory's
    /// becomes.
    fn array_become<M: ObjectMemory>(&mut self, m: &mut M, args: usize, kind: BecomeKind) -> Prim {
        let (a, b) = (self.peek(m, args)?, self.peek(m, args - 1)?);
        if !a.is_object()
            || !b.is_object()
            || m.format(a)? != Format::Pointers
            || m.format(b)? != Format::Pointers
        {
            return FAIL;
        }
        let n = m.size(a)?.slots;
        if n != m.size(b)?.slots {
            return FAIL;
        }
        let fixed = [self.sp.nil, self.sp.true_, self.sp.false_].map(Value::word);
        let mut pairs = Vec::with_capacity(n);
        for i in 0..n {
            let (x, y) = (m.slot(a, i)?, m.slot(b, i)?);
            // nil, true, false and contexts are compared by word: never becomed.
            if !x.is_object()
                || !y.is_object()
                || fixed.contains(&x.word())
                || fixed.contains(&y.word())
                || self.is_context(m, x)?
                || self.is_context(m, y)?
            {
                return FAIL;
            }
            pairs.push((x, y));
        }
        // Room for every pair, and what each pair's objects are, is checked before
        // the first is becomed, so that a become the memory refuses (a tenant's
        // quota, a host object's proxy as a one-way source) changes nothing, as a
        // Squeak VM's array become fails whole.
        m.check_room_for_become(&pairs, kind)?;
        // The registers (the active context's and the kept callers') may name a
        // becomed object: they go into the contexts first, where the become
        // reaches them, and are read back after it.
        self.store_registers(m)?;
        self.drop_frames(m)?;
        // A pair refused all the same (the allocator, say): the run then
        // stops with the pairs before it becomed, and the method cache and the
        // enumeration are forgotten all the same, so nothing the VM keeps names an
        // object as it was.
        let mut done = Ok(());
        // The pairs are the ones read and checked above, as a Squeak VM reads both
        // arrays before it becomes anything (read again, an array among the objects
        // becomed would answer another object's fields). A word an earlier one-way
        // pair forwarded is taken as what it leads to, which a tenant's forwarder
        // does itself, and the flat heap's rewrite of every reference did for the
        // arrays' fields: by identity key before the become, each settled with path
        // compression, so that pairs naming the start of a chain cost its length
        // once.
        let mut forwarded: FxHashMap<u64, Value> = FxHashMap::default();
        for &(x, y) in &pairs {
            let pair = if kind == BecomeKind::TwoWay {
                Ok((x, y))
            } else {
                settle(m, &mut forwarded, x, n)
                    .and_then(|x| Ok((x, settle(m, &mut forwarded, y, n)?)))
            };
            // Squeak's hashes stay where its references were: a one-way become
            // gives the target the source's hash (unless its kind keeps the
            // target's), a two-way one leaves each reference its own (the memory's
            // become moves whole bodies).
            let r = pair.and_then(|(x, y)| {
                // A pair naming one object on both sides (directly, or through a
                // forwarder, or as an earlier pair left them) becomes nothing, and
                // its hash writes would write the object's own hash back: skipped,
                // so that it copies no base object, which the room checked above
                // does not count for it.
                if m.identical(x, y)? {
                    return Ok(());
                }
                let (hx, hy) = (m.identity_hash(x)?, m.identity_hash(y)?);
                if let BecomeKind::OneWay { copy_hash } = kind {
                    let key = m.identity_key(x)?;
                    m.become_forward(x, y)?;
                    forwarded.insert(key, y);
                    // The interpreter's own references to `x` (its specials) lead
                    // to `y` as every other reference does.
                    self.sp.forward(x.word(), y);
                    if self.int_class.word() == x.word() {
                        self.int_class = y;
                    }
                    if copy_hash {
                        m.set_identity_hash(y, hx)?;
                    }
                    Ok(())
                } else {
                    m.become_two_way(x, y)?;
                    m.set_identity_hash(x, hx)?;
                    m.set_identity_hash(y, hy)
                }
            });
            if r.is_err() {
                done = r;
                break;
            }
        }
        // The special objects array, or an object it names, may have been becomed: what
        // the interpreter read from it is read again, as a Squeak VM reads the array it
        // now refers to at each use.
        self.reread_specials(m);
        self.flush_cache();
        self.forget_enumeration();
        done?;
        let active = self.active;
        if self.is_bottom(active) {
            // Sent from outside: the entry send's own context, which has no
            // method, only the stack its receiver and arguments are on.
            self.reload_stack(m)?;
        } else {
            self.load_context(m, active)?;
        }
        let a = self.peek(m, args)?;
        self.pop_then_push(m, args + 1, a)?;
        Ok(Some(Flow::Go))
    }

    /// True if `v` is a MethodContext or a BlockContext.
    pub(crate) fn is_context<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<bool> {
        if !v.is_object() {
            return Ok(false);
        }
        let c = m.class_of(v)?;
        Ok(self.same(m, c, self.sp.method_context)? || self.same(m, c, self.sp.block_context)?)
    }

    /// The fields `instVarAt:` reaches in `obj`, as Squeak's primitive counts them: all the
    /// slots of an object of pointers that is not indexable, its class's named ones of an
    /// indexable one (a context's six), none of a method, of raw units or of an immediate.
    fn named_fields<M: ObjectMemory>(&self, m: &M, obj: Value) -> Result<usize> {
        if !obj.is_object() {
            return Ok(0);
        }
        let format = m.format(obj)?;
        if !format.has_slots() || format == Format::CompiledMethod {
            return Ok(0);
        }
        let slots = m.size(obj)?.slots;
        Ok(match self.shape(m, obj) {
            Ok(shape) if shape.spec <= 1 => slots,
            Ok(shape) => shape.fixed.min(slots),
            Err(_) => 0,
        })
    }

    /// True if `v` is an Array (an argument list of `perform:withArguments:` and
    /// `valueWithArguments:` must be one).
    fn is_array<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<bool> {
        Ok(v.is_object()
            && m.format(v)? == Format::Pointers
            && self.same(m, m.class_of(v)?, self.sp.array_class)?)
    }

    /// True if `class` is `rcvr`'s class or one of its superclasses: a walk up the chain
    /// (slot 0 of a class), bounded as a lookup's is ([`crate::interp::Chain`]).
    fn is_class_of_or_above<M: ObjectMemory>(
        &self,
        m: &M,
        rcvr: Value,
        class: Value,
    ) -> Result<bool> {
        if !class.is_object() {
            return Ok(false);
        }
        let mut c = m.class_of(rcvr)?;
        let mut walk = crate::interp::Chain::new(c);
        loop {
            if self.same(m, c, class)? {
                return Ok(true);
            }
            if !c.is_object() || self.is_nil(m, c)? || m.format(c)? != Format::Pointers {
                return Ok(false);
            }
            if m.size(c)?.slots == 0 {
                return Ok(false);
            }
            c = m.slot(c, 0)?;
            if !walk.step(c) {
                return Ok(false);
            }
        }
    }

    #[cold]
    pub(crate) fn blocked(&self, primitive: u16) -> VmError {
        VmError::WouldBlock {
            primitive,
            chain: CallChain::default(),
        }
    }

    fn prim_int<M: ObjectMemory>(&mut self, m: &mut M, index: u16, args: usize) -> Prim {
        if args != 1 {
            return FAIL;
        }
        let (Some(x), Some(y)) = (self.arg_int(m, 1)?, self.arg_int(m, 0)?) else {
            return FAIL;
        };
        let int = |i: Option<i64>| i.and_then(|i| self.int(i));
        let r = match index {
            1 => int(x.checked_add(y)),
            2 => int(x.checked_sub(y)),
            3 => Some(self.boolean(x < y)),
            4 => Some(self.boolean(x > y)),
            5 => Some(self.boolean(x <= y)),
            6 => Some(self.boolean(x >= y)),
            7 => Some(self.boolean(x == y)),
            8 => Some(self.boolean(x != y)),
            9 => int(x.checked_mul(y)),
            10 => int((y != 0 && x % y == 0).then(|| x / y)),
            11 => int(floor_mod(x, y)),
            12 => int(floor_div(x, y)),
            13 => int(x.checked_div(y)),
            14 => int(Some(x & y)),
            15 => int(Some(x | y)),
            16 => int(Some(x ^ y)),
            17 => int(shift(x, y)),
            _ => None,
        };
        match r {
            Some(v) => self.answer(m, 1, v),
            None => FAIL,
        }
    }

    fn prim_float<M: ObjectMemory>(&mut self, m: &mut M, index: u16, args: usize) -> Prim {
        let rcvr = self.peek(m, args)?;
        let Some(x) = self.float_of(m, rcvr)? else {
            return FAIL;
        };
        if rcvr.as_int().is_some() {
            return FAIL;
        }
        if (41..=50).contains(&index) || index == 54 {
            if args != 1 {
                return FAIL;
            }
            let arg = self.peek(m, 0)?;
            if index == 54 {
                let Some(e) = arg.as_int() else { return FAIL };
                let r = self.new_float(m, ldexp(x, e))?;
                return self.answer(m, 1, r);
            }
            let Some(y) = self.float_of(m, arg)? else {
                return FAIL;
            };
            // A SmallInteger argument no double holds (a 61-bit one past 2^53) is compared
            // by its exact value where the double nearest it equals the receiver, as a
            // Squeak VM resolves that case: such a receiver is a whole number within the
            // SmallInteger range, so its `i64` is exact.
            let order = match arg.as_int() {
                Some(i) if x == y => (x as i64).partial_cmp(&i),
                _ => x.partial_cmp(&y),
            };
            let r = match index {
                41 => self.new_float(m, x + y)?,
                42 => self.new_float(m, x - y)?,
                43 => self.boolean(order == Some(Ordering::Less)),
                44 => self.boolean(order == Some(Ordering::Greater)),
                45 => self.boolean(matches!(order, Some(Ordering::Less | Ordering::Equal))),
                46 => self.boolean(matches!(order, Some(Ordering::Greater | Ordering::Equal))),
                47 => self.boolean(order == Some(Ordering::Equal)),
                48 => self.boolean(order != Some(Ordering::Equal)),
                49 => self.new_float(m, x * y)?,
                _ => {
                    if y == 0.0 {
                        return FAIL;
                    }
                    self.new_float(m, x / y)?
                }
            };
            return self.answer(m, 1, r);
        }
        if args != 0 {
            return FAIL;
        }
        let r = match index {
            51 => {
                let t = x.trunc();
                match (t.is_finite())
                    .then_some(t as i64)
                    .and_then(|i| self.int(i))
                {
                    Some(v) => v,
                    None => return FAIL,
                }
            }
            52 => self.new_float(m, modf_fraction(x))?,
            53 => {
                // C's frexp exponent less one, as Squeak's primitive: frexp leaves a zero, an
                // infinity and NaN an exponent of 0, so -1.
                if x == 0.0 || !x.is_finite() {
                    Value::int(-1)
                } else {
                    let bits = x.to_bits();
                    let e = ((bits >> 52) & 0x7FF) as i64;
                    let e = if e == 0 {
                        // Subnormal: the exponent of its leading bit.
                        let mant = bits & ((1 << 52) - 1);
                        -1022 - (mant.leading_zeros() as i64 - 11)
                    } else {
                        e - 1023
                    };
                    Value::int(e)
                }
            }
            // Squeak's primitive fails for a negative receiver and NaN (`rcvr >= 0.0`); the
            // image's fallback reports the error. -0.0 passes, its root -0.0.
            55 if x < 0.0 || x.is_nan() => return FAIL,
            55 => self.new_float(m, x.sqrt())?,
            56 => self.new_float(m, x.sin())?,
            57 => self.new_float(m, x.atan())?,
            58 => self.new_float(m, x.ln())?,
            59 => self.new_float(m, x.exp())?,
            _ => return FAIL,
        };
        self.answer(m, 0, r)
    }

    fn replace<M: ObjectMemory>(&mut self, m: &mut M) -> Prim {
        let dst = self.peek(m, 4)?;
        let (start, stop) = (self.arg_int(m, 3)?, self.arg_int(m, 2)?);
        let src = self.peek(m, 1)?;
        // A context read as the source (the receiver's send has handed over the callers
        // when the destination is one).
        if src.is_object() && m.format(src)? == Format::Pointers && self.is_context(m, src)? {
            self.hand_over_callers(m)?;
        }
        let from = self.arg_int(m, 0)?;
        let (Some(start), Some(stop), Some(from)) = (start, stop, from) else {
            return FAIL;
        };
        if !dst.is_object() || !src.is_object() {
            return FAIL;
        }
        let Some(n) = stop.checked_sub(start).and_then(|d| d.checked_add(1)) else {
            return FAIL;
        };
        if n < 0 || start < 1 || from < 1 {
            return FAIL;
        }
        if n == 0 {
            return self.answer(m, 4, dst);
        }
        let (Some(dn), Some(sn)) = (self.indexable_size(m, dst)?, self.indexable_size(m, src)?)
        else {
            return FAIL;
        };
        let (n, start, from) = (n as usize, start as usize - 1, from as usize - 1);
        if start + n > dn || from + n > sn {
            return FAIL;
        }
        let (df, sf) = (m.format(dst)?, m.format(src)?);
        // Squeak copies one element at a time from the first: within one object, a source
        // that starts `d` elements before the destination and overlaps it repeats its first
        // `d` elements. The units are read first, then made to repeat so.
        let period =
            (start > from && start < from + n && self.same(m, dst, src)?).then(|| start - from);
        fn repeat<T: Copy>(units: &mut [T], period: Option<usize>) {
            if let Some(d) = period {
                for i in d..units.len() {
                    units[i] = units[i - d];
                }
            }
        }
        match (df, sf) {
            (Format::Pointers | Format::Weak, Format::Pointers | Format::Weak) => {
                let (dfix, sfix) = (self.shape(m, dst)?.fixed, self.shape(m, src)?.fixed);
                let mut vals = (0..n)
                    .map(|i| m.slot(src, sfix + from + i))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                repeat(&mut vals, period);
                for (i, v) in vals.into_iter().enumerate() {
                    m.set_slot(dst, dfix + start + i, v)?;
                }
                if df == Format::Pointers && self.sp.may_hold(dn) {
                    self.specials_stored(m, dst)?;
                }
            }
            (Format::Bytes, Format::Bytes) => {
                let Some(mut b) = m.bytes(src)?.get(from..from + n).map(<[u8]>::to_vec) else {
                    return FAIL;
                };
                repeat(&mut b, period);
                m.set_bytes(dst, start, &b)?;
            }
            (Format::Words, Format::Words) => {
                let (to_float, from_float) =
                    (self.is_boxed_float(m, dst)?, self.is_boxed_float(m, src)?);
                if to_float || from_float {
                    // A boxed Float keeps its double's bytes little-endian, while `at:` and
                    // `at:put:` number its words from the most significant: word by word in
                    // that order, every word read before the first is stored.
                    let b = m.bytes(src)?;
                    let w = if from_float {
                        float_words(b, true)
                            .get(from..from + n)
                            .map(<[u32]>::to_vec)
                    } else {
                        b.get(4 * from..4 * (from + n))
                            .map(|b| float_words(b, false))
                    };
                    let Some(mut w) = w else {
                        return FAIL;
                    };
                    repeat(&mut w, period);
                    if to_float {
                        let mut d = float_words(m.bytes(dst)?, true);
                        let Some(to) = d.get_mut(start..start + n) else {
                            return FAIL;
                        };
                        to.copy_from_slice(&w);
                        m.set_bytes(dst, 0, &words_bytes(&d, true))?;
                    } else {
                        m.set_bytes(dst, 4 * start, &words_bytes(&w, false))?;
                    }
                } else {
                    let Some(mut b) = m
                        .bytes(src)?
                        .get(4 * from..4 * (from + n))
                        .map(<[u8]>::to_vec)
                    else {
                        return FAIL;
                    };
                    repeat(&mut b, period.map(|d| 4 * d));
                    m.set_bytes(dst, 4 * start, &b)?;
                }
            }
            // A Spur image's 16- and 64-bit units, copied as the words are.
            (Format::Shorts, Format::Shorts) | (Format::DoubleWords, Format::DoubleWords) => {
                let unit = if df == Format::Shorts { 2 } else { 8 };
                let Some(mut b) = m
                    .bytes(src)?
                    .get(unit * from..unit * (from + n))
                    .map(<[u8]>::to_vec)
                else {
                    return FAIL;
                };
                repeat(&mut b, period.map(|d| unit * d));
                m.set_bytes(dst, unit * start, &b)?;
            }
            (Format::Bytes, Format::CompiledMethod) | (Format::CompiledMethod, Format::Bytes) => {
                // Byte-indexed both: go through at: and at:put:, every value read and checked
                // before the first is stored, so a failure stores nothing. A method's
                // header and literals are not bytes: a range that takes them fails.
                let mut vals = Vec::with_capacity(n);
                for i in 0..n {
                    match self.at(m, src, (from + i + 1) as i64, false)? {
                        Some(v) if v.as_int().is_some_and(|b| u8::try_from(b).is_ok()) => {
                            vals.push(v);
                        }
                        _ => return FAIL,
                    }
                }
                if df == Format::CompiledMethod
                    && self.indexed(m, dst)?.is_none_or(|x| start < x.fixed)
                {
                    return FAIL;
                }
                for (i, v) in vals.into_iter().enumerate() {
                    if self
                        .at_put(m, dst, (start + i + 1) as i64, v, false)?
                        .is_none()
                    {
                        return FAIL;
                    }
                }
            }
            _ => return FAIL,
        }
        if df == Format::CompiledMethod {
            let fixed = self.indexed(m, dst)?.map_or(0, |x| x.fixed);
            self.method_bytes_written(m, dst, start.saturating_sub(fixed))?;
        }
        let r = self.answer(m, 4, dst);
        // A replace into the active context (whose registers went into it before the
        // primitive): the interpreter's copy of its temporaries is loaded again.
        if df == Format::Pointers && self.same(m, dst, self.active)? {
            self.reload_active(m)?;
        }
        r
    }

    /// After `obj basicAt: i put: ...` (primitives 61, 64 and 211) stored into `obj`,
    /// indexed as `x`: what the interpreter read from a method's bytes or from the special
    /// objects is read again ([`Vm::method_bytes_written`], [`Vm::specials_stored`]).
    fn stored_at<M: ObjectMemory>(&mut self, m: &M, obj: Value, i: i64, x: Indexed) -> Result<()> {
        if x.format == Format::CompiledMethod {
            let at = usize::try_from(i - 1).unwrap_or(0);
            self.method_bytes_written(m, obj, at.saturating_sub(x.fixed))?;
        } else if x.format == Format::Pointers && self.sp.may_hold(x.n) {
            self.specials_stored(m, obj)?;
        }
        Ok(())
    }

    /// After a store into `obj`, a pointers object of the size of the special objects
    /// array or of the special selectors array: if it is either, the special objects are
    /// read again, so the next use of an entry (the selector a send that is not understood
    /// sends, a special selector, a class the interpreter instantiates) takes it as stored,
    /// as a Squeak VM, which reads the array at each use, does; the method cache, whose
    /// entries' flags were taken from them, is emptied. An array that no longer names what
    /// the interpreter needs (nil stored for a class), or names another nil, true or false,
    /// is not taken ([`crate::image::Specials::read_again`]): the interpreter goes on with
    /// the objects it read before. Time: O(special objects + cache entries) for
    /// either array, O(1) for any other object.
    #[cold]
    #[inline(never)]
    fn specials_stored<M: ObjectMemory>(&mut self, m: &M, obj: Value) -> Result<()> {
        let (array, selectors) = (self.sp.array, self.sp.selector_array);
        if !self.same(m, obj, array)? && !self.same(m, obj, selectors)? {
            return Ok(());
        }
        self.reread_specials(m);
        self.flush_cache();
        Ok(())
    }

    /// Reads the special objects again from the array the interpreter refers to, unless it
    /// no longer names what the interpreter needs (see [`Vm::specials_stored`]). Time:
    /// O(special objects).
    #[cold]
    #[inline(never)]
    fn reread_specials<M: ObjectMemory>(&mut self, m: &M) {
        if let Some(sp) = self.sp.read_again(m) {
            self.sp = sp;
        }
    }

    /// After a store into the bytes of `method` from byte `first` on (0-based, past its
    /// header and literals): the bytecodes are read again, and in a Spur image, whose
    /// methods keep their primitive number in their first bytecode (callPrimitive and its
    /// two-byte operand), a store into those forgets the lookups cached with the primitive
    /// as it was, so the next send runs the new one, as a later run's does and as a
    /// header's write is seen. Time: O(kept callers), O(cache entries) more for a store
    /// into a Spur method's first three bytes.
    fn method_bytes_written<M: ObjectMemory>(
        &mut self,
        m: &M,
        method: Value,
        first: usize,
    ) -> Result<()> {
        if self.sp.spur && first < 3 {
            self.flush_method(m, method)?;
        }
        self.reload_code(m)
    }

    /// Loads the active context's registers again from the context, after a primitive
    /// stored into it: the answer the primitive pushed goes in first.
    fn reload_active<M: ObjectMemory>(&mut self, m: &mut M) -> Result<()> {
        self.store_registers(m)?;
        let a = self.active;
        self.load_context(m, a)
    }

    // ---- control primitives --------------------------------------------------------------

    /// The stack pointer of `c` if it is a context whose stack pointer counts fields it has
    /// (primitives 210 and 211 fail otherwise): a pointer object with a non-negative integer
    /// there, no more than its fields past the fixed ones.
    fn stack_pointer<M: ObjectMemory>(&self, m: &mut M, c: Value) -> MemResult<Option<usize>> {
        if !c.is_object() || m.format(c)? != Format::Pointers {
            return Ok(None);
        }
        let slots = m.size(c)?.slots;
        if slots <= ctx::TEMPS {
            return Ok(None);
        }
        Ok(m.slot(c, ctx::STACKP)?
            .as_int()
            .and_then(|sp| usize::try_from(sp).ok())
            .filter(|&sp| sp <= slots - ctx::TEMPS))
    }

    /// `aContext stackp: n` (Squeak's `primitiveStoreStackp`): sets the context's stack
    /// pointer to `n`, a non-negative SmallInteger no more than its fields past the fixed
    /// ones, and stores nil into the fields a raise uncovers (a stack pointer that is no
    /// count counts as 0), so the image never reads what a field held before. The active
    /// context's registers went into it before the primitive (it runs on a context): its
    /// stack is then the first `n` fields, loaded again, with the answer (the receiver)
    /// pushed on them, so the primitive fails when that answer would not fit.
    fn store_stackp<M: ObjectMemory>(&mut self, m: &mut M) -> Prim {
        let (c, n) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
        if !self.is_context(m, c)? {
            return FAIL;
        }
        let room = m.size(c)?.slots.checked_sub(ctx::TEMPS);
        let (Some(n), Some(room)) = (n.and_then(|n| usize::try_from(n).ok()), room) else {
            return FAIL;
        };
        let active = self.same(m, c, self.active)?;
        if n > room || (active && n >= room) {
            return FAIL;
        }
        let old = m
            .slot(c, ctx::STACKP)?
            .as_int()
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(0);
        let nil = self.sp.nil;
        for i in old..n {
            m.set_slot(c, ctx::TEMPS + i, nil)?;
        }
        m.set_slot(c, ctx::STACKP, Value::int(n as i64))?;
        if !active {
            return self.answer(m, 1, c);
        }
        self.load_context(m, c)?;
        self.push(m, c)?;
        Ok(Some(Flow::Go))
    }

    fn block_copy<M: ObjectMemory>(&mut self, m: &mut M, args: usize) -> Prim {
        if args != 1 || self.sp.spur {
            // A Spur image has no BlockContext (its blocks are closures).
            return FAIL;
        }
        let (rcvr, n) = (self.peek(m, 1)?, self.arg_int(m, 0)?);
        let Some(n) = n else { return FAIL };
        let class = m.class_of(rcvr)?;
        let home = if self.same(m, class, self.sp.block_context)? {
            m.slot(rcvr, ctx::HOME)?
        } else {
            rcvr
        };
        let size = m.size(home)?.slots;
        let block_class = self.sp.block_context;
        let b = m.alloc(
            block_class,
            Format::Pointers,
            ObjectSize {
                slots: size,
                bytes: 0,
            },
        )?;
        // The block's code starts past the long jump that follows the send.
        let start = crate::interp::pc_value(self.pc.wrapping_add(2), self.pc_base);
        m.set_slot(b, ctx::BLOCK_START, start)?;
        m.set_slot(b, ctx::PC, start)?;
        m.set_slot(b, ctx::STACKP, Value::int(0))?;
        m.set_slot(b, ctx::BLOCK_ARGS, Value::int(n))?;
        m.set_slot(b, ctx::HOME, home)?;
        self.answer(m, 1, b)
    }

    /// `aBlockContext value...`: with `array`, the arguments come from it.
    fn block_value<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        args: usize,
        array: Option<Value>,
    ) -> Prim {
        let block = self.peek(m, args)?;
        if !block.is_object() || !self.same(m, m.class_of(block)?, self.sp.block_context)? {
            return FAIL;
        }
        // Its home context (where its temporaries live) is brought back first if it was
        // swapped out: a block's value cannot run again once it has started.
        let home = m.slot(block, ctx::HOME)?;
        self.fault_in_ahead(m, home)?;
        let nargs = m.slot(block, ctx::BLOCK_ARGS)?.as_int();
        let values: Vec<Value> = match array {
            None => (0..args)
                .map(|i| self.peek(m, args - 1 - i))
                .collect::<std::result::Result<_, _>>()?,
            Some(a) => {
                if !self.is_array(m, a)? {
                    return FAIL;
                }
                (0..m.size(a)?.slots)
                    .map(|i| m.slot(a, i))
                    .collect::<std::result::Result<_, _>>()?
            }
        };
        if nargs != Some(values.len() as i64) || values.len() + ctx::TEMPS > m.size(block)?.slots {
            return FAIL;
        }
        // A block that is running (its caller set) is not entered again, as in a Squeak VM.
        if !self.is_nil(m, m.slot(block, ctx::SENDER)?)? {
            return FAIL;
        }
        let start = m.slot(block, ctx::BLOCK_START)?;
        // What entering the block reads (its home's method and receiver, a start pc in that
        // method's bytecodes) is checked before the block or the stack changes: a block
        // refused here is left as it was, not marked running.
        if !home.is_object() || m.size(home)?.slots <= ctx::RECEIVER {
            return Err(crate::interp::corrupt("a block whose home is no context"));
        }
        let h = self.header(m, m.slot(home, ctx::METHOD)?)?;
        let first = h.initial_pc(self.sp.word_bytes);
        if start
            .as_int()
            .and_then(|p| usize::try_from(p).ok())
            .is_none_or(|p| p < first)
        {
            return Err(crate::interp::corrupt(
                "a block that starts before its method's bytecodes",
            ));
        }
        self.enter(m)?;
        for (i, v) in values.iter().enumerate() {
            m.set_slot(block, ctx::TEMPS + i, *v)?;
        }
        m.set_slot(block, ctx::STACKP, Value::int(values.len() as i64))?;
        m.set_slot(block, ctx::PC, start)?;
        self.drop_n(args + 1);
        self.enter_block(m, block)?;
        Ok(Some(Flow::Go))
    }

    fn closure_value<M: ObjectMemory>(&mut self, m: &mut M, index: u16, args: usize) -> Prim {
        let Some(class) = self.sp.block_closure else {
            return FAIL;
        };
        let blk = self.peek(m, args)?;
        if !blk.is_object() || !self.same(m, m.class_of(blk)?, class)? {
            return FAIL;
        }
        // A closure that is not well formed fails the primitive, as Squeak's does, so the
        // image's fallback code reports it: its fixed fields, its outer context a context
        // and that context's method a CompiledMethod, its start pc an integer. The outer
        // context, its method and receiver are read before anything changes (a closure's
        // value runs again from its start after a fault: see `rerunnable`).
        let Some(copied) = m.size(blk)?.slots.checked_sub(closure::COPIED) else {
            return FAIL;
        };
        let outer = m.slot(blk, closure::OUTER)?;
        if !self.is_context(m, outer)? || m.size(outer)?.slots <= ctx::RECEIVER {
            return FAIL;
        }
        let method = m.slot(outer, ctx::METHOD)?;
        if !method.is_object() || m.format(method)? != Format::CompiledMethod {
            return FAIL;
        }
        let rcvr = m.slot(outer, ctx::RECEIVER)?;
        let Some(start) = m
            .slot(blk, closure::START)?
            .as_int()
            .and_then(|s| usize::try_from(s).ok())
        else {
            return FAIL;
        };
        let h = self.header(m, method)?;
        let mut n = args;
        if index == 206 {
            let a = self.peek(m, 0)?;
            if !self.is_array(m, a)? {
                return FAIL;
            }
            let vals = (0..m.size(a)?.slots)
                .map(|i| m.slot(a, i))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if Some(vals.len() as i64) != m.slot(blk, closure::ARGS)?.as_int() {
                return FAIL;
            }
            // The arguments must fit the context's stack where the array was, as
            // `perform:withArguments:` checks (Squeak's primitive fails past it).
            if self.stack_room(1) < vals.len() {
                return FAIL;
            }
            // A closure its activation would refuse is refused before the arguments leave
            // their Array.
            self.activation_pc(h, start, vals.len().saturating_add(copied))?;
            self.drop_n(1);
            for v in &vals {
                self.push(m, *v)?;
            }
            n = vals.len();
        } else if Some(n as i64) != m.slot(blk, closure::ARGS)?.as_int() {
            return FAIL;
        }
        // A closure whose receiver is a context reads that context's fields: as a send to it
        // would, it hands the callers over (see `Vm::hand_over_callers`).
        let on_context = self.is_context(m, rcvr)?;
        if on_context {
            self.hand_over_callers(m)?;
        }
        let kind = crate::interp::Activation::Closure {
            closure: blk,
            start,
            copied,
            on_context,
        };
        self.activate(m, method, h, rcvr, n, kind).map(Some)
    }

    /// `receiver tryPrimitive: index withArgs: anArray` (Squeak's
    /// `primitiveDoPrimitiveWithArgs`): runs primitive `index` as a send of a method with
    /// that primitive would, with the receiver and the Array's elements as its arguments,
    /// and answers what it answers. It fails, leaving the stack as it was, when `index` is
    /// no primitive index, `anArray` no Array, its elements do not fit the stack, primitives
    /// already run this deep inside each other ([`MAX_NESTED_PRIMITIVES`]: an Array holding
    /// itself as the arguments of 118 would otherwise nest without end), or the primitive
    /// fails. The image's own context simulator (`ContextPart>>doPrimitive:...`, under the
    /// debugger's `step` and `runSimulated:`) runs every primitive of the methods it
    /// simulates through it; when it failed, the simulator ran each method's fallback code
    /// instead (`3 + 4` went through `Integer>>+`'s digit arithmetic) and lost its way.
    fn try_primitive<M: ObjectMemory>(&mut self, m: &mut M) -> Prim {
        let (index, array) = (self.arg_int(m, 1)?, self.peek(m, 0)?);
        let Some(index) = index
            .and_then(|i| u16::try_from(i).ok())
            .filter(|&i| i != 0)
        else {
            return FAIL;
        };
        if !self.is_array(m, array)? {
            return FAIL;
        }
        let n = m.size(array)?.slots;
        if self.stack_room(2) < n || self.nested_primitives >= MAX_NESTED_PRIMITIVES {
            return FAIL;
        }
        let args = (0..n)
            .map(|i| m.slot(array, i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.drop_n(2);
        for v in &args {
            self.push(m, *v)?;
        }
        let nil = self.sp.nil;
        self.nested_primitives += 1;
        let ran = self.run_primitive(m, index, nil, nil, n);
        self.nested_primitives -= 1;
        if let Some(flow) = ran? {
            return Ok(Some(flow));
        }
        // Failed: the stack as the send left it, for the fallback code.
        self.drop_n(n);
        self.push(m, Value::int(i64::from(index)))?;
        self.push(m, array)?;
        FAIL
    }

    fn prim_perform<M: ObjectMemory>(&mut self, m: &mut M, args: usize) -> Prim {
        if args == 0 {
            return FAIL;
        }
        let sel = self.peek(m, args - 1)?;
        let rcvr = self.peek(m, args)?;
        let n = args - 1;
        // Reads only: a root stub met here (the receiver's class, a class on the lookup
        // path) is faulted in and the reads run again, before the stack changes.
        let class = match self.perform_class(m, rcvr, sel, n) {
            Ok(c) => c,
            Err(e) => self.after_fault(m, e, Some(sel), Some(rcvr), |vm, m| {
                vm.perform_class(m, rcvr, sel, n)
            })?,
        };
        let Some(class) = class else {
            return FAIL;
        };
        // Slide the arguments down over the selector.
        for i in 0..n {
            let v = self.peek(m, n - 1 - i)?;
            self.poke(m, n - i, v)?;
        }
        self.drop_n(1);
        self.stats.sends += 1;
        self.send_to_class(m, rcvr, class, sel, n).map(Some)
    }

    /// The class `perform:` sends `sel` to `rcvr` through, or `None` if the method found
    /// takes other than `n` arguments (the primitive fails). Reads only.
    fn perform_class<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        rcvr: Value,
        sel: Value,
        n: usize,
    ) -> Result<Option<Value>> {
        let class = m.class_of(rcvr)?;
        if let Some(f) = self.lookup(m, class, sel)?
            && f.header.args != n
        {
            return Ok(None);
        }
        Ok(Some(class))
    }

    fn perform_with_arguments<M: ObjectMemory>(&mut self, m: &mut M, class: Option<Value>) -> Prim {
        let extra = usize::from(class.is_some());
        let sel = self.peek(m, extra + 1)?;
        let rcvr = self.peek(m, extra + 2)?;
        // Reads only, as `perform:`'s: a root stub met here (the argument Array, the
        // receiver, a class on the lookup path) is faulted in and the reads run again.
        let plan = match self.perform_plan(m, class) {
            Ok(p) => p,
            Err(e) => self.after_fault(m, e, Some(sel), Some(rcvr), |vm, m| {
                vm.perform_plan(m, class)
            })?,
        };
        let Some((class, vals, on_context)) = plan else {
            return FAIL;
        };
        self.drop_n(2 + extra);
        for v in &vals {
            self.push(m, *v)?;
        }
        self.stats.sends += 1;
        if on_context && let Some(mut found) = self.lookup(m, class, sel)? {
            found.context = true;
            return self.execute(m, found, sel, vals.len()).map(Some);
        }
        self.send_to_class(m, rcvr, class, sel, vals.len())
            .map(Some)
    }

    /// What `perform:withArguments:` (`class` `None`) or its superclass form sends: the
    /// lookup class, the arguments, and whether the lookup must start above a context
    /// receiver's class; `None` where the primitive fails. Reads only.
    fn perform_plan<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        class: Option<Value>,
    ) -> Result<Option<(Value, Vec<Value>, bool)>> {
        let extra = usize::from(class.is_some());
        let array = self.peek(m, extra)?;
        let sel = self.peek(m, extra + 1)?;
        let rcvr = self.peek(m, extra + 2)?;
        if !self.is_array(m, array)? {
            return Ok(None);
        }
        // The lookup class must be the receiver's class or above it, as Squeak checks.
        if let Some(c) = class
            && !self.is_class_of_or_above(m, rcvr, c)?
        {
            return Ok(None);
        }
        let vals = (0..m.size(array)?.slots)
            .map(|i| m.slot(array, i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // The arguments must fit the context's stack where the receiver's send left room
        // for its own (Squeak's primitive fails past it).
        if self.stack_room(2 + extra) < vals.len() {
            return Ok(None);
        }
        // The lookup starts above the receiver's class, whose cache entry would tell that
        // the receiver is a context: ask.
        let on_context = class.is_some() && self.is_context(m, rcvr)?;
        let class = match class {
            Some(c) => c,
            None => m.class_of(rcvr)?,
        };
        if let Some(f) = self.lookup(m, class, sel)?
            && f.header.args != vals.len()
        {
            return Ok(None);
        }
        Ok(Some((class, vals, on_context)))
    }
}

#[cfg(test)]
mod tests {
    use super::{
        ARITY_TABLE_LEN, MILLISECOND_CLOCK_MASK, arity_fits, fixed_arity, ldexp, millisecond_clock,
        ms_until,
    };

    /// A timer deadline is due across the millisecond clock's wrap: armed at 10 ms before
    /// the clock's top for 30 ms (the deadline past the mask, as an image's `millis + 30`
    /// gives it), it is 20 ms away at the top and 14 ms away when the clock reads 5 after
    /// the wrap (where the plain difference said 2^29 ms), and passed once due; a deadline
    /// the image wrapped itself counts the same.
    #[test]
    fn a_deadline_across_the_clocks_wrap_is_due_when_it_is() {
        let top = MILLISECOND_CLOCK_MASK;
        let deadline = top - 10 + 30;
        assert_eq!(ms_until(deadline, top), 20);
        assert_eq!(ms_until(deadline, 5), 14);
        assert_eq!(ms_until(deadline & MILLISECOND_CLOCK_MASK, 5), 14);
        assert_eq!(ms_until(deadline, 25), -6);
        assert_eq!(ms_until(1_000, 400), 600);
        assert_eq!(ms_until(400, 1_000), -600);
    }

    /// The clock plus any delay up to an hour is a SmallInteger of a 32-bit image (at most
    /// 2^30 - 1), so an image's `millis + delay` reaches primitive 136 as one.
    #[test]
    fn the_clock_plus_a_delay_is_a_small_integer() {
        let largest_small = (1i64 << 30) - 1;
        assert!(MILLISECOND_CLOCK_MASK + 3_600_000 <= largest_small);
        assert!((0..=MILLISECOND_CLOCK_MASK).contains(&millisecond_clock()));
    }

    /// The byte table answers what `fixed_arity` does for every index, those past it
    /// included (none of which has a fixed count).
    #[test]
    fn the_arity_table_is_fixed_arity() {
        for index in 0..=u16::MAX {
            for args in 0..6 {
                let want = fixed_arity(index).is_none_or(|n| n == args);
                assert_eq!(arity_fits(index, args), want, "{index} with {args}");
            }
            if usize::from(index) >= ARITY_TABLE_LEN {
                assert_eq!(fixed_arity(index), None, "{index}");
            }
        }
    }

    /// 2^e for e in the normal range.
    fn pow2(e: i64) -> f64 {
        f64::from_bits(((0x3FF + e) as u64) << 52)
    }

    #[test]
    fn ldexp_scales_normal_numbers_exactly() {
        assert_eq!(ldexp(3.0, 4), 48.0);
        assert_eq!(ldexp(1.5, -1), 0.75);
        assert_eq!(ldexp(1.0, 0), 1.0);
        assert_eq!(ldexp(0.5, 1024), pow2(1023));
        assert_eq!(ldexp(pow2(1000), -1075), pow2(-75));
        assert_eq!(ldexp(f64::MIN_POSITIVE, 2045), pow2(1023));
        assert_eq!(ldexp(f64::from_bits(1), 2097), pow2(1023));
        assert_eq!(ldexp(f64::from_bits(1), 1074), 1.0);
        // (2^53 - 1) halves of the least subnormal: rounded to even, the least normal.
        assert_eq!(ldexp(f64::MAX, -2046), f64::MIN_POSITIVE);
        assert_eq!(ldexp(-1.25, 10), -1280.0);
    }

    #[test]
    fn ldexp_overflows_only_when_the_result_does() {
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(-1.0, 1024), f64::NEG_INFINITY);
        assert_eq!(ldexp(f64::MAX, 1), f64::INFINITY);
        assert_eq!(ldexp(f64::from_bits(1), 2098), f64::INFINITY);
        assert_eq!(ldexp(f64::from_bits(1), i64::MAX), f64::INFINITY);
        assert_eq!(ldexp(1.0, 1 << 40), f64::INFINITY);
        assert_eq!(ldexp(f64::MAX, -1), f64::MAX / 2.0);
    }

    #[test]
    fn ldexp_rounds_a_subnormal_result_once() {
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(1.0, -1022), f64::MIN_POSITIVE);
        assert_eq!(ldexp(1.0, -1023), f64::from_bits(1 << 51));
        // Half the least subnormal rounds to even (zero); a bit more than half rounds up to
        // it, which a scaling that rounded to a coarser subnormal first (then halved) would
        // round to zero.
        assert_eq!(ldexp(1.0, -1075), 0.0);
        assert_eq!(ldexp(1.0 + f64::EPSILON, -1075), f64::from_bits(1));
        assert_eq!(ldexp(1.5, -1075), f64::from_bits(1));
        assert_eq!(ldexp(1.0 + f64::EPSILON, -1024), f64::from_bits(1 << 50));
        // Every subnormal from a normal number: the same bits as the exact shift, rounded to
        // nearest even.
        for bits in [
            0x3FF0_0000_0000_0000u64,
            0x3FF8_0000_0000_0001,
            0x3FFF_FFFF_FFFF_FFFF,
            0x3FF0_0000_0000_0003,
        ] {
            let x = f64::from_bits(bits);
            let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
            for shift in 1..=54u32 {
                // x * 2^(-1022 - shift): the mantissa shifted right by `shift`, rounded.
                let (q, r) = (mant >> shift, mant & ((1u64 << shift) - 1));
                let half = 1u64 << (shift - 1);
                let q = if r > half || (r == half && q & 1 == 1) {
                    q + 1
                } else {
                    q
                };
                assert_eq!(
                    ldexp(x, -1022 - i64::from(shift)).to_bits(),
                    q,
                    "{x} by 2^{}",
                    -1022 - i64::from(shift)
                );
                assert_eq!(
                    ldexp(-x * pow2(900), -1922 - i64::from(shift)).to_bits(),
                    q | (1 << 63)
                );
            }
        }
    }

    #[test]
    fn ldexp_underflows_to_a_signed_zero() {
        assert_eq!(ldexp(1.0, -1076).to_bits(), 0);
        assert_eq!(ldexp(-1.0, -1076).to_bits(), (-0.0f64).to_bits());
        assert_eq!(ldexp(f64::MAX, -3000), 0.0);
        assert_eq!(ldexp(f64::MAX, i64::MIN), 0.0);
        assert_eq!(ldexp(f64::MAX, -2098), f64::from_bits(1));
    }

    #[test]
    fn ldexp_answers_nan_infinities_and_zeros_as_they_are() {
        assert!(ldexp(f64::NAN, 3).is_nan());
        assert!(ldexp(f64::NAN, -3000).is_nan());
        assert_eq!(ldexp(f64::INFINITY, -3000), f64::INFINITY);
        assert_eq!(ldexp(f64::NEG_INFINITY, 5), f64::NEG_INFINITY);
        assert_eq!(ldexp(0.0, 5000).to_bits(), 0);
        assert_eq!(ldexp(-0.0, -5000).to_bits(), (-0.0f64).to_bits());
    }
}
