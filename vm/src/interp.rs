//! The interpreter: registers, the dispatch loop, sends and returns.
//!
//! The active context's registers (method, receiver, the context holding the temporaries,
//! instruction and stack pointers) are cached in [`Vm`]; everything else lives in the
//! memory. The pc and stack pointer are written back into the active context whenever it
//! stops being active or something may look at it (a send, `thisContext`, a stop), so a
//! stopped run is entirely in the heap and resumes from it.

use crate::bytecodes::{Op, decode, instruction_len};
use crate::error::{CallChain, FaultCause, Result, VmError};
use crate::image::{ClassFormat, MethodHeader, Specials, SpurHeaderError, closure, ctx};
use crate::memory::{Collected, MemResult, ObjectMemory, WeakSlots};
use cowheap_heap::{Format, ObjectSize, Value, Word};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// The pc a context holds for position `pc` of a method whose bytecodes start at `base`
/// (both 0-based; the image counts from 1 past the literals). A jump back past a method's
/// first bytecode leaves `pc` wrapped below zero (the next fetch refuses it); such a pc is
/// stored as the position it names, never a panic or a word out of range.
pub(crate) fn pc_value(pc: usize, base: usize) -> Value {
    let at = pc.wrapping_add(base) as i64;
    Value::int(at.clamp(Word::MIN_INT, Word::MAX_INT))
}

/// The root under which a suspended run's active context is kept.
pub const ACTIVE_ROOT: &str = "cowheap-vm.active";
/// The root under which a run's bottom context (the one the entry send returns into) is kept.
pub const BOTTOM_ROOT: &str = "cowheap-vm.bottom";
/// The root under which a suspended run's armed timer (primitive 136) is kept: its deadline
/// as a SmallInteger, on the clock of primitive 135. Absent when no timer is armed. With it
/// the whole run is in the heap, so a new interpreter resuming it still signals the timer.
pub const TIMER_ROOT: &str = "cowheap-vm.timer";

/// The roots under which the image's mourners wait: the ephemerons the collections fired,
/// in the order fired, and in a Spur image whose header flags ask for it (bit 6, 64) the
/// weak objects they cleared a slot of (each once while it waits), until the image's finalization fetches them (primitive 172,
/// Spur's `primitiveFetchMourner`). `cowheap-vm.mourners.head` and `.tail` hold the queue's bounds
/// as SmallIntegers, and `cowheap-vm.mourners.N` each mourner from head to tail: as roots
/// they live through every collection until fetched, and a suspended run keeps them.
pub const MOURNERS_ROOT: &str = "cowheap-vm.mourners";

/// The mourner queue's bounds: the first waiting and one past the last; an error for
/// bounds no queue this interpreter keeps has (a root edited by hand: negative, reversed,
/// or naming a queue no memory could hold).
fn mourner_bounds<M: ObjectMemory>(m: &M) -> Result<(i64, i64)> {
    let bound = |which: &str| {
        m.root(&format!("{MOURNERS_ROOT}.{which}"))
            .map_or(Some(0), |v| v.as_int())
    };
    match (bound("head"), bound("tail")) {
        (Some(head), Some(tail)) if 0 <= head && head <= tail && tail < 1 << 48 => Ok((head, tail)),
        _ => Err(corrupt("a mourner queue whose bounds are no queue's")),
    }
}
/// The root under which the memory keeps the clock of primitive 135 as it last read in a
/// run, when the run stopped or ended, as a SmallInteger. A run, resumed or performed, in a
/// process whose own clock is behind it (another process, after a tenant snapshot: each
/// process's clock starts at zero; or the same one, after a run that went on from such a
/// reading) goes on from that reading, so the image's clock never goes back from one run
/// of the memory to the next, and the deadline in [`TIMER_ROOT`] and the times the image
/// keeps (a Delay's resumption time) are as far ahead as they were.
pub const CLOCK_ROOT: &str = "cowheap-vm.clock";

/// The default limit on the depth of the context chain.
pub const DEFAULT_MAX_DEPTH: usize = 100_000;

/// The default of [`Vm::max_timer_wait_ms`]: ten seconds.
pub const DEFAULT_MAX_TIMER_WAIT_MS: u64 = 10_000;

const CACHE_SIZE: usize = 1024;

/// The method cache entry for a lookup of `selector` from `class`: both words mixed by one
/// multiplication, the slot taken from the product's top bits, so that every bit of either
/// word moves the slot. (Object words carry their index from bit 3 up: a mix by shifts and
/// xors that leaves the selector's index above the bits it keeps sends a class's selectors
/// to a few slots, which is how a compile once missed on a third of its sends.)
#[inline(always)]
fn cache_slot(class: Word, selector: Word) -> usize {
    let key = class.bits() ^ selector.bits().rotate_left(29);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_SIZE.trailing_zeros())) as usize
}

/// A looked-up selector's identity hash and identity key, each read from the memory the
/// first time a method dictionary asks and then kept for the rest of the lookup: a miss
/// walks several dictionaries up the superclass chain, each probed from the same hash.
#[derive(Default)]
struct SelectorKeys {
    hash: Option<u32>,
    key: Option<u64>,
}

impl SelectorKeys {
    #[inline(always)]
    fn hash<M: ObjectMemory>(&mut self, m: &M, selector: Value) -> MemResult<u32> {
        match self.hash {
            Some(h) => Ok(h),
            None => Ok(*self.hash.insert(m.identity_hash(selector)?)),
        }
    }

    #[inline(always)]
    fn key<M: ObjectMemory>(&mut self, m: &M, selector: Value) -> MemResult<u64> {
        match self.key {
            Some(k) => Ok(k),
            None => Ok(*self.key.insert(m.identity_key(selector)?)),
        }
    }
}

/// One method cache entry: what a lookup of `selector` from `class` found.
#[derive(Clone, Copy)]
struct CacheEntry {
    class: Word,
    selector: Value,
    method: Value,
    header: MethodHeader,
    /// The selector is one of the error sends [`Vm::trap`] watches for.
    trap: bool,
    /// The class is MethodContext or BlockContext: the method runs on a context, which it
    /// may read or write (see [`Vm::hand_over_callers`]).
    context: bool,
}

/// What [`Vm::activate`] makes a context for.
#[derive(Clone, Copy)]
pub(crate) enum Activation {
    /// A method sent a message; `on_context` when its receiver is a context, which it may
    /// read or write: then its caller's registers are not kept.
    Method { on_context: bool },
    /// A BlockClosure's `value...`: the closure, its start pc and its number of copied
    /// values; `on_context` when its receiver is a context.
    Closure {
        closure: Value,
        start: usize,
        copied: usize,
        on_context: bool,
    },
}

/// What a lookup found: the method, its header, and the flags of its cache entry.
#[derive(Clone, Copy)]
pub(crate) struct Found {
    pub(crate) method: Value,
    pub(crate) header: MethodHeader,
    /// The selector is one of the error sends [`Vm::trap`] watches for.
    pub(crate) trap: bool,
    /// The receiver's class is MethodContext or BlockContext.
    pub(crate) context: bool,
}

/// The registers of a suspended caller, kept so that returning to it need not read its
/// context back: valid while nothing but the interpreter can have written that context.
///
/// They are also not written into the context when it sends (`stale`): its stack fields from
/// `dirty` on, its pc and its stack pointer reach the heap only when something other than
/// a return could look at them ([`Vm::flush_frames`]: a collection, a stop, a become, a
/// context handed to the image). Its sender, method and receiver are written when it is
/// made, as every context's are.
#[derive(Clone)]
struct Saved {
    active: Value,
    method: Value,
    code: Arc<[u8]>,
    receiver: Value,
    temps: Value,
    temps_here: bool,
    /// The kept caller whose registers hold `temps` (a BlockContext's home), by index in
    /// [`Vm::frames`]: its temporaries are read and written there.
    temps_frame: Option<usize>,
    pc: usize,
    pc_base: usize,
    literals: usize,
    cap: usize,
    stack: Vec<Value>,
    /// The lowest field of `stack` that may differ from the context's.
    dirty: usize,
    /// The pc, the stack pointer and the fields from `dirty` on are not in the context yet.
    stale: bool,
}

/// A context's registers as [`Vm::read_context`] reads them.
pub(crate) struct ContextRegisters {
    method: Value,
    code: Arc<[u8]>,
    /// The context holding the temporaries: the context, or a BlockContext's home.
    temps: Value,
    receiver: Value,
    literals: usize,
    pc_base: usize,
    /// The pc, from the method's first bytecode.
    pc: usize,
    stackp: usize,
    /// The context's fields past the fixed ones: room for `cap - stackp` more values.
    cap: usize,
}

/// Where a return goes, found and checked before the return marks anything dead (see
/// [`Vm::return_target`]).
enum ReturnTarget {
    /// The bottom context: the entry send answers.
    Bottom,
    /// The innermost kept caller, whose registers are restored.
    Kept,
    /// A context read from the heap, with room for the value.
    Heap(ContextRegisters),
}

/// Counters of a [`Vm`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStats {
    /// Bytecodes executed.
    pub bytecodes: u64,
    /// Message sends (bytecode sends and perform, not the special-selector fast paths that
    /// answered without a lookup).
    pub sends: u64,
    /// Primitives that answered.
    pub primitives: u64,
    /// Method cache misses (full lookups).
    pub cache_misses: u64,
    /// Contexts allocated.
    pub contexts: u64,
    /// Collections run.
    pub collections: u64,
    /// Segments faulted in because the run read through one of their root stubs.
    pub faults: u64,
    /// Bytecodes' worth of budget charged for primitives' work over the objects (a walk's
    /// fresh list of every object, a `nextInstance`'s scan): one an object.
    pub charged: u64,
    /// Weak slots the collections set to nil, the objects they named freed.
    pub weak_cleared: u64,
    /// Ephemerons the collections fired, queued for the image's finalization (primitive
    /// 172).
    pub ephemerons_fired: u64,
}

/// Classes a walk up a superclass chain visits at most.
const MAX_CHAIN: u32 = 10_000;

/// A walk up a superclass chain, which goes round a cycle at most about twice: Brent's
/// cycle detection on the words read (each class's superclass word follows from its own,
/// so a chain that comes round repeats its words), and [`MAX_CHAIN`] classes in all. A
/// class whose superclass is itself, or a cycle of a few, would otherwise be visited
/// [`MAX_CHAIN`] times, each visit a method dictionary's probe or scan, for one send.
pub(crate) struct Chain {
    /// The word the walk would come round to: the class at the last power of two.
    seen: u64,
    /// Steps since `seen` was taken, and the power of two at which it is taken again.
    steps: u32,
    power: u32,
    /// Steps in all.
    total: u32,
}

impl Chain {
    /// A walk from class `start`.
    pub(crate) fn new(start: Value) -> Chain {
        Chain {
            seen: start.word().bits(),
            steps: 0,
            power: 1,
            total: 0,
        }
    }

    /// Records a step to class `next`; false if the walk has come round to a class it
    /// visited, or has visited [`MAX_CHAIN`].
    pub(crate) fn step(&mut self, next: Value) -> bool {
        let w = next.word().bits();
        self.total += 1;
        if w == self.seen || self.total > MAX_CHAIN {
            return false;
        }
        self.steps += 1;
        if self.steps == self.power {
            self.seen = w;
            self.steps = 0;
            self.power = self.power.saturating_mul(2);
        }
        true
    }
}

/// Keys, values and classes one walk of method dictionaries up a superclass chain reads at
/// most: a lookup, the search for the class holding a method (is it the image's default
/// handler of `doesNotUnderstand:`?), the naming of an error's frames. The chain's length
/// is capped ([`MAX_CHAIN`]), but not what each class's dictionary holds: a probe into a
/// dictionary with no nil reads all its keys, a scan (of a dictionary whose size is no power
/// of two) all its fields, so 3,000 classes sharing one dictionary of 100,000 keys would
/// read 300 million keys for one lookup. A lookup past the limit stops the run with
/// [`VmError::CorruptMethod`] ("a method lookup past its work limit"); the naming of a frame
/// past it gives `Class>>?`. The real images' walks read at most tens of thousands (a probe
/// reads a few keys of each of 10-20 dictionaries of at most a few thousand; the search of
/// the values of each, all of them): four million is far above, and a few tens of
/// milliseconds of reads in a debug build.
pub(crate) const MAX_LOOKUP_READS: u64 = 4_000_000;

/// What a walk of method dictionaries may still read ([`MAX_LOOKUP_READS`]).
pub(crate) struct LookupWork {
    left: u64,
}

impl LookupWork {
    /// A walk that has read nothing.
    pub(crate) fn new() -> LookupWork {
        LookupWork {
            left: MAX_LOOKUP_READS,
        }
    }

    /// Takes one read (a key, a value or a class); false once the walk has made its last.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }

    /// Takes one read, or answers the error of a lookup past its limit.
    #[inline(always)]
    fn read(&mut self) -> Result<()> {
        if self.take() {
            Ok(())
        } else {
            Err(corrupt("a method lookup past its work limit"))
        }
    }
}

/// Primitives running at once, each inside the one before (see `Vm::nested_primitives`):
/// far past any image's own (a `perform:` of a `perform:` is two), and far inside the
/// thread's stack.
pub(crate) const MAX_NESTED_PRIMITIVES: u32 = 64;

/// The outcome of one step of control flow.
pub(crate) enum Flow {
    /// Keep running.
    Go,
    /// Keep running: a primitive did work over the objects worth this many bytecodes,
    /// which the budget is charged (see `Vm::charge`).
    Worked(u64),
    /// The entry send answered.
    Done(Value),
}

/// A Squeak V3 interpreter for one object memory.
///
/// Keep one `Vm` per memory (per tenant): it holds that memory's method cache. The memory is
/// passed to each call, so the same `Vm` type serves a [`cowheap_tenants::Tenant`] and a
/// [`crate::FlatHeap`], each with its own monomorphised dispatch loop.
pub struct Vm {
    pub(crate) sp: Specials,
    /// What the memory answers for the class of a SmallInteger, asked once: a send to one
    /// takes it from here (on a tenant, the class of an immediate is out of line).
    pub(crate) int_class: Value,
    cache: Vec<Option<CacheEntry>>,
    pub(crate) stats: VmStats,
    /// Collect when private bytes pass this.
    gc_threshold: u64,
    /// Bytes between collections at least.
    pub(crate) gc_min: u64,
    /// Depth limit of the context chain.
    pub max_depth: usize,
    /// The longest the interpreter sleeps for a timer (primitive 136) when no process is
    /// runnable until it fires, in milliseconds; a later timer is a deadlock.
    pub max_timer_wait_ms: u64,
    /// When the timer semaphore (special object 29) is to be signalled, on the clock of
    /// primitive 135; `None` when no timer is set. A run stopped by its budget keeps it in
    /// the memory's root [`TIMER_ROOT`], which a resume reads back; each `perform` starts
    /// a run with none.
    pub(crate) timer: Option<i64>,
    /// Milliseconds this run's clock (primitive 135, and the timer's deadline) is ahead of
    /// the process's own: zero, but in a run where the process's clock is behind the
    /// memory's last reading in [`CLOCK_ROOT`], which it then goes on from.
    pub(crate) clock_offset: i64,
    /// Contexts on the chain, as counted since the run started (recounted past the limit).
    pub(crate) depth: usize,
    /// Primitives running, each inside the one before: a `perform:` (83, 84, 100), an
    /// `executeMethod:` (188) or a `doesNotUnderstand:` runs the method it finds from inside
    /// the primitive that found it, with no bytecode between, so neither the budget nor the
    /// context chain bounds them. Past [`MAX_NESTED_PRIMITIVES`] a primitive fails, and the
    /// method's own bytecodes run under the budget.
    pub(crate) nested_primitives: u32,
    // Registers.
    pub(crate) active: Value,
    pub(crate) bottom: Value,
    pub(crate) method: Value,
    pub(crate) receiver: Value,
    /// The context holding the temporaries: the active context, or a BlockContext's home.
    pub(crate) temps: Value,
    /// Offset of the next bytecode in the method's bytes.
    pub(crate) pc: usize,
    /// The active context's indexable fields in use (temporaries, then the stack): the
    /// context's fields `TEMPS..TEMPS + stackp`, cached. Fields from `dirty` on may differ
    /// from the heap until [`Vm::store_registers`] writes them back.
    pub(crate) stack: Vec<Value>,
    /// The lowest cached field written since the heap was last brought up to date.
    dirty: usize,
    /// How many indexable fields the active context has.
    cap: usize,
    /// The temporaries live in the active context (and so in `stack`), not in a
    /// BlockContext's home.
    temps_here: bool,
    /// The home of the active BlockContext is a kept caller, this one in `frames`: its
    /// temporaries are read and written in its kept registers, not in its context (which
    /// may be behind them).
    temps_frame: Option<usize>,
    /// The active method's bytecodes.
    code: Arc<[u8]>,
    /// Bytecodes of the methods run, by method word; emptied whenever a method's bytes may
    /// have changed (a store into a CompiledMethod, a become, a collection).
    code_cache: FxHashMap<u64, Arc<[u8]>>,
    /// The active context has not been looked at since it was made: its sender, method
    /// and receiver are in the registers only (`fresh_sender`, `method`, `receiver`), and
    /// nothing but the registers refers to it. [`Vm::materialize`] writes them.
    fresh: bool,
    /// The sender of a fresh active context.
    fresh_sender: Value,
    /// The fresh active context has no object yet (`active` and `temps` are nil until
    /// [`Vm::materialize`] allocates it): a method that returns before anything looks at
    /// its context never allocates one.
    unallocated: bool,
    /// The callers' registers, innermost last (see [`Saved`]).
    frames: Vec<Saved>,
    /// Callers' registers are kept. Contexts the image is given (`thisContext`, a block's
    /// home, a closure's outer context) do not turn this off: the image reads and writes
    /// a context only by running a method or primitive on it, and every such send writes
    /// the kept callers into their contexts and forgets them first
    /// ([`Vm::hand_over_callers`]). What hands the image contexts by other ways (a process
    /// switch, `someObject`, `cannotReturn:`, an unwind) turns it off for the rest of the
    /// run.
    frames_on: bool,
    /// Emptied stacks for reuse.
    pool: Vec<Vec<Value>>,
    /// Reused for arguments while one frame is replaced by another.
    scratch: Vec<Value>,
    /// The 1-based pc of the method's first bytecode.
    pub(crate) pc_base: usize,
    /// The literal count of the active method.
    pub(crate) literals: usize,
    /// The objects a `someObject`/`someInstance` walk goes through (see `enumerate`).
    pub(crate) enumeration: Option<crate::enumerate::Enumeration>,
    /// The walk's list was last dropped by the interpreter itself (at an entry, or at its
    /// own collection), not at the image's request: the fresh list a `next...` takes next
    /// is not charged to the budget (see `crate::enumerate`).
    pub(crate) relist_free: bool,
    /// Work a primitive did over the objects before it failed (a walk's fresh list that
    /// did not hold the receiver), in bytecodes: charged to the budget with the method its
    /// failure runs (see [`Vm::execute`]). Zero but between such a failure and its charge.
    pub(crate) unpaid: u64,
    /// How recently indexed objects are indexed (see `prims::AtCache`).
    pub(crate) at_cache: crate::prims::AtCache,
    /// The segments this call has faulted in (see [`Vm::after_fault`]): nothing in a call
    /// swaps a segment out, so meeting one of them again means its fault handler did not
    /// bring it back for good. Emptied at every entry.
    pub(crate) faulted: Vec<u64>,
    /// The registers are a context's (set when one is loaded or a run begins): a stop may
    /// write them back. False while a resumed run is not loaded yet, when they are the
    /// last run's.
    pub(crate) loaded: bool,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("stats", &self.stats)
            .field("closures", &self.sp.closures)
            .finish_non_exhaustive()
    }
}

/// `x` modulo `y`, rounding the quotient towards negative infinity; `None` for a zero divisor.
pub(crate) fn floor_mod(x: i64, y: i64) -> Option<i64> {
    let r = x.checked_rem(y)?;
    Some(if r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    })
}

/// `x // y`, rounded towards negative infinity; `None` for a zero divisor.
pub(crate) fn floor_div(x: i64, y: i64) -> Option<i64> {
    let q = x.checked_div(y)?;
    Some(if x % y != 0 && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    })
}

/// `x bitShift: y`, `None` when bits would be lost.
pub(crate) fn shift(x: i64, y: i64) -> Option<i64> {
    if y >= 0 {
        if x == 0 {
            return Some(0);
        }
        if y > 62 {
            return None;
        }
        let r = x.checked_shl(y as u32)?;
        (r >> y == x).then_some(r)
    } else {
        Some(x >> (-y).min(63))
    }
}

/// True if primitive `index` reads everything it may find swapped out (its receiver, its
/// arguments, what they hold) before it changes anything, so that it can run again from its
/// start once the segment is back: arithmetic, comparisons, floats (SmallFloat64's 541-559
/// as the Float ones they are, 500 on), `at:`/`at:put:`/`size`,
/// literals, instantiation, `instVarAt:` and `instVarAt:put:`, identity hash,
/// `newMethod:header:`, `replaceFrom:to:with:startingAt:`, `==`, `class`, cache flushes,
/// `changeClass`, special objects, clocks, `shallowCopy`, closures (which read their outer
/// context, its method and receiver first) and quick returns. Not the others: process
/// switches, `value`s of BlockContexts, perform, become, enumeration, collection, context
/// access, `executeMethod`; these fault in what they switch to before they start (a process
/// switch), fault in and repeat their reads before they change anything (perform), or stop
/// with [`FaultCause::NotRestartable`].
fn rerunnable(index: u16) -> bool {
    matches!(
        index,
        1..=18
            | 40..=64
            | 68..=71
            | 73..=75
            | 79
            | 89
            | 105
            | 110..=112
            | 115
            | 116
            | 119
            | 129
            | 135
            | 137
            | 148
            | 201..=206
            | 257..=519
            | 541..=559
    )
}

/// The segment of a read through a root stub, if `e` is one.
fn swapped(e: &VmError) -> Option<u64> {
    match e {
        VmError::Memory(cowheap_tenants::Error::Swapped { segment, .. }) => Some(*segment),
        _ => None,
    }
}

/// A memory error inside the interpreter: the context is added later.
pub(crate) fn corrupt(what: &'static str) -> VmError {
    VmError::CorruptMethod {
        what,
        chain: CallChain::default(),
    }
}

impl Vm {
    /// An interpreter for the image held in `mem`.
    ///
    /// # Errors
    /// [`VmError::NotAnImage`] if `mem` holds no Squeak V3 special objects array.
    pub fn new<M: ObjectMemory>(mem: &M) -> Result<Vm> {
        let sp = Specials::read(mem)?;
        let nil = sp.nil;
        let int_class = mem.class_of(Value::int(0)).unwrap_or(sp.small_integer);
        Ok(Vm {
            sp,
            int_class,
            cache: vec![None; CACHE_SIZE],
            stats: VmStats::default(),
            gc_threshold: 8 << 20,
            gc_min: 8 << 20,
            max_depth: DEFAULT_MAX_DEPTH,
            max_timer_wait_ms: DEFAULT_MAX_TIMER_WAIT_MS,
            timer: None,
            clock_offset: 0,
            depth: 0,
            nested_primitives: 0,
            active: nil,
            bottom: nil,
            method: nil,
            receiver: nil,
            temps: nil,
            pc: 0,
            stack: Vec::with_capacity(64),
            dirty: 0,
            cap: 0,
            temps_here: false,
            temps_frame: None,
            scratch: Vec::with_capacity(16),
            fresh: false,
            fresh_sender: nil,
            unallocated: false,
            frames: Vec::new(),
            frames_on: false,
            pool: Vec::new(),
            code: Arc::from(&[][..]),
            code_cache: FxHashMap::default(),
            pc_base: 0,
            literals: 0,
            enumeration: None,
            relist_free: false,
            unpaid: 0,
            at_cache: crate::prims::AtCache::new(),
            faulted: Vec::new(),
            loaded: false,
        })
    }

    /// The special objects this interpreter read from its image.
    pub fn specials(&self) -> &Specials {
        &self.sp
    }

    /// The counters.
    pub fn stats(&self) -> VmStats {
        self.stats
    }

    /// Sets how many private bytes at least a run allocates between collections.
    pub fn set_collection_step(&mut self, bytes: u64) {
        self.gc_min = bytes;
        self.gc_threshold = self.gc_threshold.min(bytes);
    }

    /// Empties the method cache.
    pub fn flush_cache(&mut self) {
        self.cache.iter_mut().for_each(|e| *e = None);
        self.code_cache.clear();
    }

    /// Forgets the cached lookups of `selector`, as Squeak's `primitiveFlushCacheSelective`
    /// (119, `Symbol>>flushCache`) does: the image sends it after it adds a method for
    /// `selector` to a method dictionary or removes one, and a change of `selector`'s
    /// entries can make stale only the lookups of `selector`. The other entries stay, so the
    /// sends after a compile do not all take full lookups. Time: O(cache entries).
    pub(crate) fn flush_selector<M: ObjectMemory>(&mut self, m: &M, selector: Value) -> Result<()> {
        let wanted = m.identity_key(selector)?;
        for e in &mut self.cache {
            if let Some(c) = e
                && (c.selector.word() == selector.word()
                    || (c.selector.word().is_ref() && m.identity_key(c.selector)? == wanted))
            {
                *e = None;
            }
        }
        Ok(())
    }

    /// Forgets the cached lookups that answered `method`, as Squeak's
    /// `primitiveFlushCacheByMethod` (116, `CompiledMethod>>flushCache`) does, and every
    /// method's cached bytecodes. Time: O(cache entries + code cache).
    pub(crate) fn flush_method<M: ObjectMemory>(&mut self, m: &M, method: Value) -> Result<()> {
        let wanted = m.identity_key(method)?;
        for e in &mut self.cache {
            if let Some(c) = e
                && (c.method.word() == method.word()
                    || (c.method.word().is_ref() && m.identity_key(c.method)? == wanted))
            {
                *e = None;
            }
        }
        self.code_cache.clear();
        Ok(())
    }

    /// The bytecodes of `method`, from the code cache.
    #[inline(always)]
    fn code_of<M: ObjectMemory>(&mut self, m: &M, method: Value) -> Result<Arc<[u8]>> {
        let key = method.word().bits();
        if let Some(c) = self.code_cache.get(&key) {
            return Ok(c.clone());
        }
        let c: Arc<[u8]> = Arc::from(m.bytes(method)?);
        self.code_cache.insert(key, c.clone());
        Ok(c)
    }

    /// Forgets every method's cached bytecodes and reads the active method's and each kept
    /// caller's again: after a store that may have changed a method's bytes. A caller runs
    /// its method's bytes as they are when it is returned to, as Squeak's interpreter,
    /// which fetches from the method, does (the kept callers' copies are read from the
    /// heap once per method). Time: O(kept callers + bytes of their methods).
    pub(crate) fn reload_code<M: ObjectMemory>(&mut self, m: &M) -> Result<()> {
        self.code_cache.clear();
        if self.method.is_object() && !self.is_bottom(self.active) {
            self.code = self.code_of(m, self.method)?;
        }
        for i in 0..self.frames.len() {
            let method = self.frames[i].method;
            self.frames[i].code = self.code_of(m, method)?;
        }
        Ok(())
    }

    // ---- small helpers -------------------------------------------------------------------

    #[inline(always)]
    pub(crate) fn same<M: ObjectMemory>(&self, m: &M, a: Value, b: Value) -> MemResult<bool> {
        if a.word() == b.word() {
            return Ok(true);
        }
        if !a.word().is_ref() || !b.word().is_ref() {
            return Ok(false);
        }
        // By identity keys rather than `identical`: a tenant answers the key of a reference
        // that leads to itself inline, where `identical` resolves both words out of line.
        Ok(m.identity_key(a)? == m.identity_key(b)?)
    }

    /// True if `c` is the bottom context. Contexts are compared by word: the interpreter
    /// makes them, and the become primitives refuse them, so none is reached by two words.
    #[inline(always)]
    pub(crate) fn is_bottom(&self, c: Value) -> bool {
        c.word() == self.bottom.word()
    }

    /// True if `v` is nil. nil, true and false are compared by word: they have no fields a
    /// store could divert, and the become primitives refuse them, so no tenant holds
    /// another word for them.
    #[inline(always)]
    pub(crate) fn is_nil<M: ObjectMemory>(&self, _m: &M, v: Value) -> MemResult<bool> {
        Ok(v.word() == self.sp.nil.word())
    }

    #[inline(always)]
    pub(crate) fn boolean(&self, b: bool) -> Value {
        if b { self.sp.true_ } else { self.sp.false_ }
    }

    #[inline(always)]
    pub(crate) fn int(&self, i: i64) -> Option<Value> {
        (self.sp.min_int..=self.sp.max_int)
            .contains(&i)
            .then(|| Value::int(i))
    }

    /// Values the active context's stack holds room for once its top `dropped` are popped.
    pub(crate) fn stack_room(&self, dropped: usize) -> usize {
        self.cap
            .saturating_sub(self.stack.len().saturating_sub(dropped))
    }

    #[inline(always)]
    pub(crate) fn push<M: ObjectMemory>(&mut self, _m: &mut M, v: Value) -> MemResult<()> {
        let n = self.stack.len();
        if n >= self.cap {
            return Err(cowheap_heap::Error::Corrupt("a push past the end of the context").into());
        }
        self.dirty = self.dirty.min(n);
        self.stack.push(v);
        Ok(())
    }

    /// The error [`Vm::push`] gives unless `n` more values fit the active context's stack:
    /// checked before a send the interpreter makes itself pushes its receiver and
    /// arguments, so that one that does not fit pushes none of them.
    fn room_for(&self, n: usize) -> MemResult<()> {
        if self.stack.len().saturating_add(n) > self.cap {
            return Err(cowheap_heap::Error::Corrupt("a push past the end of the context").into());
        }
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn pop<M: ObjectMemory>(&mut self, _m: &M) -> MemResult<Value> {
        self.stack
            .pop()
            .ok_or_else(|| cowheap_heap::Error::Corrupt("stack underflow").into())
    }

    /// Drops `n` values from the stack.
    #[inline(always)]
    pub(crate) fn drop_n(&mut self, n: usize) {
        let len = self.stack.len().saturating_sub(n);
        self.stack.truncate(len);
    }

    /// The value `depth` below the top of the stack (0 is the top).
    #[inline(always)]
    pub(crate) fn peek<M: ObjectMemory>(&self, _m: &M, depth: usize) -> MemResult<Value> {
        self.stack
            .len()
            .checked_sub(depth + 1)
            .map(|k| self.stack[k])
            .ok_or_else(|| cowheap_heap::Error::Corrupt("stack underflow").into())
    }

    #[inline(always)]
    pub(crate) fn poke<M: ObjectMemory>(
        &mut self,
        _m: &mut M,
        depth: usize,
        v: Value,
    ) -> MemResult<()> {
        let k = self
            .stack
            .len()
            .checked_sub(depth + 1)
            .ok_or(cowheap_heap::Error::Corrupt("stack underflow"))?;
        self.dirty = self.dirty.min(k);
        self.stack[k] = v;
        Ok(())
    }

    /// Pops `n` values and pushes `v`.
    #[inline(always)]
    pub(crate) fn pop_then_push<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        n: usize,
        v: Value,
    ) -> MemResult<()> {
        self.drop_n(n);
        self.push(m, v)
    }

    #[inline(always)]
    fn fetch<M: ObjectMemory>(&mut self, _m: &M) -> Result<u8> {
        let b = self
            .code
            .get(self.pc)
            .copied()
            .ok_or_else(|| corrupt("the pc ran past the end of the method"))?;
        self.pc += 1;
        Ok(b)
    }

    #[inline(always)]
    fn literal<M: ObjectMemory>(&self, m: &M, i: usize) -> Result<Value> {
        if i >= self.literals {
            return Err(corrupt("a literal index past the method's literals"));
        }
        Ok(m.slot(self.method, 1 + i)?)
    }

    #[inline(always)]
    fn temp<M: ObjectMemory>(&self, m: &M, i: usize) -> MemResult<Value> {
        if self.temps_here
            && let Some(&v) = self.stack.get(i)
        {
            return Ok(v);
        }
        if self.unallocated {
            // Past the stack pointer of a context not yet made: what it would hold.
            return if i < self.cap {
                Ok(self.sp.nil)
            } else {
                Err(cowheap_heap::Error::SlotOutOfRange {
                    index: ctx::TEMPS + i,
                    len: ctx::TEMPS + self.cap,
                }
                .into())
            };
        }
        if let Some(k) = self.temps_frame
            && let Some(&v) = self.frames.get(k).and_then(|f| f.stack.get(i))
        {
            return Ok(v);
        }
        m.slot(self.temps, ctx::TEMPS + i)
    }

    #[inline(always)]
    fn set_temp<M: ObjectMemory>(&mut self, m: &mut M, i: usize, v: Value) -> MemResult<()> {
        if self.temps_here
            && let Some(t) = self.stack.get_mut(i)
        {
            *t = v;
            self.dirty = self.dirty.min(i);
            return Ok(());
        }
        if let Some(k) = self.temps_frame
            && let Some(f) = self.frames.get_mut(k)
            && let Some(t) = f.stack.get_mut(i)
        {
            *t = v;
            f.dirty = f.dirty.min(i);
            f.stale = true;
            return Ok(());
        }
        self.materialize(m)?;
        m.set_slot(self.temps, ctx::TEMPS + i, v)
    }

    pub(crate) fn header<M: ObjectMemory>(&self, m: &M, method: Value) -> Result<MethodHeader> {
        // A method swapped out answers `Swapped` (faulted in by the caller's error path);
        // anything else that is no SmallInteger is a corrupt method.
        let h = m
            .slot(method, 0)?
            .as_int()
            .ok_or_else(|| corrupt("a method whose header is not a SmallInteger"))?;
        if !self.sp.spur {
            return Ok(MethodHeader::decode(h));
        }
        self.spur_header(m, method, h)
    }

    /// A Spur method's header: the primitive is read from its first bytecodes. Out of line,
    /// so that the V3 decode stays small where it is inlined.
    #[inline(never)]
    fn spur_header<M: ObjectMemory>(&self, m: &M, method: Value, h: i64) -> Result<MethodHeader> {
        let bytes = m.bytes(method)?;
        MethodHeader::decode_spur(h, &bytes[..bytes.len().min(3)]).map_err(|e| match e {
            SpurHeaderError::AlternateBytecodes => VmError::UnsupportedBytecodeSet {
                set: "the alternate (Sista) bytecode set",
                chain: CallChain::default(),
            },
            SpurHeaderError::NoCallPrimitive => {
                corrupt("a Spur method with a primitive that does not start with callPrimitive")
            }
        })
    }

    /// The format of instances of `class`.
    pub(crate) fn class_format<M: ObjectMemory>(
        &self,
        m: &M,
        class: Value,
    ) -> MemResult<ClassFormat> {
        let f = m
            .slot(class, 2)?
            .as_int()
            .ok_or(cowheap_heap::Error::Corrupt(
                "a class format that is not an integer",
            ))?;
        if self.sp.spur {
            return Ok(ClassFormat::decode_spur(f));
        }
        Ok(ClassFormat::decode(f))
    }

    /// Makes a new instance of `class` with `n` indexable fields, as `basicNew:` does.
    pub(crate) fn instantiate<M: ObjectMemory>(
        &self,
        m: &mut M,
        class: Value,
        n: usize,
    ) -> MemResult<Option<Value>> {
        let f = self.class_format(m, class)?;
        let (format, size) = match f.spec {
            0 | 1 if n == 0 => (
                Format::Pointers,
                ObjectSize {
                    slots: f.fixed,
                    bytes: 0,
                },
            ),
            2 | 3 => (
                Format::Pointers,
                ObjectSize {
                    slots: f.fixed + n,
                    bytes: 0,
                },
            ),
            ClassFormat::EPHEMERON if n == 0 => (
                Format::Ephemeron,
                ObjectSize {
                    slots: f.fixed,
                    bytes: 0,
                },
            ),
            4 => (
                Format::Weak,
                ObjectSize {
                    slots: f.fixed + n,
                    bytes: 0,
                },
            ),
            6 => (
                Format::Words,
                ObjectSize {
                    slots: 0,
                    bytes: 4 * n,
                },
            ),
            8..=11 => (Format::Bytes, ObjectSize { slots: 0, bytes: n }),
            ClassFormat::SHORTS => (
                Format::Shorts,
                ObjectSize {
                    slots: 0,
                    bytes: 2 * n,
                },
            ),
            ClassFormat::DOUBLE_WORDS => (
                Format::DoubleWords,
                ObjectSize {
                    slots: 0,
                    bytes: 8 * n,
                },
            ),
            _ => return Ok(None),
        };
        m.alloc(class, format, size).map(Some)
    }

    // ---- registers -----------------------------------------------------------------------

    /// Writes a fresh active context's sender, method and receiver: from now on it may be
    /// looked at or referred to.
    #[inline(always)]
    pub(crate) fn materialize<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        if self.fresh {
            if self.unallocated {
                let size = ObjectSize {
                    slots: ctx::TEMPS + self.cap,
                    bytes: 0,
                };
                let c = m.alloc(self.sp.method_context, Format::Pointers, size)?;
                self.stats.contexts += 1;
                self.active = c;
                self.temps = c;
                self.unallocated = false;
                self.dirty = 0;
            }
            self.fresh = false;
            m.set_slot(self.active, ctx::SENDER, self.fresh_sender)?;
            m.set_slot(self.active, ctx::METHOD, self.method)?;
            m.set_slot(self.active, ctx::RECEIVER, self.receiver)?;
        }
        Ok(())
    }

    /// Writes the cached fields, the pc and the stack pointer into the active context.
    pub(crate) fn store_registers<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        self.materialize(m)?;
        let n = self.stack.len();
        if self.dirty < n {
            m.set_slots(
                self.active,
                ctx::TEMPS + self.dirty,
                &self.stack[self.dirty..n],
            )?;
        }
        self.dirty = n;
        let stackp = Value::int(n as i64);
        if self.is_bottom(self.active) {
            m.set_slot(self.active, ctx::STACKP, stackp)
        } else {
            let pc = pc_value(self.pc, self.pc_base);
            m.set_slots(self.active, ctx::PC, &[pc, stackp])
        }
    }

    /// Forgets a fresh context left by a run that stopped with an error (the stop wrote
    /// every kept caller's registers into its context).
    pub(crate) fn reset_fresh<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        self.fresh = false;
        self.unallocated = false;
        self.drop_frames(m)?;
        self.frames_on = true;
        Ok(())
    }

    /// Writes every kept caller's registers not yet written (see [`Saved`]) into its
    /// context, keeping them: after this the heap holds the whole run. Time: O(fields
    /// written).
    #[inline(always)]
    pub(crate) fn flush_frames<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        self.write_frames(m)
    }

    #[inline(never)]
    fn write_frames<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        for f in &mut self.frames {
            if !f.stale {
                continue;
            }
            let n = f.stack.len();
            if f.dirty < n {
                m.set_slots(f.active, ctx::TEMPS + f.dirty, &f.stack[f.dirty..n])?;
            }
            // A kept caller is never the bottom context: it has a pc.
            let pc = pc_value(f.pc, f.pc_base);
            m.set_slots(f.active, ctx::PC, &[pc, Value::int(n as i64)])?;
            f.dirty = n;
            f.stale = false;
        }
        Ok(())
    }

    /// Writes the callers' kept registers into their contexts and forgets them: returns
    /// read contexts back from the heap.
    #[inline(always)]
    pub(crate) fn drop_frames<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        self.write_frames(m)?;
        self.temps_frame = None;
        for f in self.frames.drain(..) {
            if self.pool.len() < 64 {
                let mut v = f.stack;
                v.clear();
                self.pool.push(v);
            }
        }
        Ok(())
    }

    /// A context of this run is being handed to the image, which may read and write it:
    /// the callers' registers go into their contexts, and from now on every return reads
    /// its context back.
    pub(crate) fn expose<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        self.frames_on = false;
        self.drop_frames(m)
    }

    /// The image is about to read or write a context (a method or primitive runs on one,
    /// or one is copied from): the active context's registers and the kept callers' go into
    /// their contexts, and the callers are forgotten, so every return to them reads them
    /// back. Keeping goes on for the callers of later sends: those are contexts made or
    /// resumed after this point, which the image can reach only through another send of
    /// this kind (a method's receiver does not change while it runs).
    #[cold]
    pub(crate) fn hand_over_callers<M: ObjectMemory>(&mut self, m: &mut M) -> MemResult<()> {
        self.store_registers(m)?;
        self.drop_frames(m)
    }

    /// The index in `frames` of the kept caller whose context is `c`, if any. Time:
    /// O(frames above it).
    fn frame_of(&self, c: Value) -> Option<usize> {
        self.frames
            .iter()
            .rposition(|f| f.active.word() == c.word())
    }

    /// An empty cached frame of `cap` fields (for a new bottom context).
    pub(crate) fn reset_frame(&mut self, cap: usize) {
        self.stack.clear();
        self.dirty = 0;
        self.cap = cap;
        self.temps_here = false;
        self.temps_frame = None;
    }

    /// Reads the active context's fields in use into the cache.
    fn load_stack<M: ObjectMemory>(&mut self, m: &M, stackp: usize) -> Result<()> {
        self.cap = m.size(self.active)?.slots.saturating_sub(ctx::TEMPS);
        if stackp > self.cap {
            return Err(corrupt("a context whose stack pointer is past its end"));
        }
        self.stack.clear();
        for i in 0..stackp {
            self.stack.push(m.slot(self.active, ctx::TEMPS + i)?);
        }
        self.dirty = stackp;
        Ok(())
    }

    /// Reads the active context's stack again (its stack pointer, then its fields), and
    /// nothing else: for the entry send's own context, which has no method to read.
    pub(crate) fn reload_stack<M: ObjectMemory>(&mut self, m: &M) -> Result<()> {
        let stackp = m
            .slot(self.active, ctx::STACKP)?
            .as_int()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| corrupt("a context whose stack pointer is not a count"))?;
        self.load_stack(m, stackp)
    }

    /// Makes `c` the active context, reading its registers. A context that does not read as
    /// one (see [`Vm::read_context`]) is refused with every register as it was, so that a
    /// stop writes the registers back into the context they are, not into `c`.
    pub(crate) fn load_context<M: ObjectMemory>(&mut self, m: &M, c: Value) -> Result<()> {
        let r = self.read_context(m, c)?;
        self.set_context(m, c, r)
    }

    /// Makes `c` the active context with the registers `r` that [`Vm::read_context`] read
    /// from it.
    fn set_context<M: ObjectMemory>(&mut self, m: &M, c: Value, r: ContextRegisters) -> Result<()> {
        self.loaded = true;
        self.active = c;
        self.fresh = false;
        self.unallocated = false;
        self.method = r.method;
        self.code = r.code;
        self.temps = r.temps;
        self.receiver = r.receiver;
        self.literals = r.literals;
        self.pc_base = r.pc_base;
        self.pc = r.pc;
        self.temps_here = self.same(m, r.temps, c)?;
        self.temps_frame = if self.temps_here {
            None
        } else {
            self.frame_of(r.temps)
        };
        self.load_stack(m, r.stackp)
    }

    /// The registers of context `c`, read and checked as [`Vm::load_context`] needs them
    /// (a stack pointer within its fields, a method, a pc in it), changing no register: so
    /// that an operation that ends by loading a context (a process switch) can find one it
    /// could not load before it changes anything.
    pub(crate) fn read_context<M: ObjectMemory>(
        &mut self,
        m: &M,
        c: Value,
    ) -> Result<ContextRegisters> {
        let stackp = m.slot(c, ctx::STACKP)?.as_int();
        // Field 3 tells the two kinds apart without asking for the class: a MethodContext's
        // method, a BlockContext's argument count.
        let third = m.slot(c, ctx::METHOD)?;
        let (method, temps) = if third.as_int().is_some() {
            let home = m.slot(c, ctx::HOME)?;
            (m.slot(home, ctx::METHOD)?, home)
        } else {
            (third, c)
        };
        let h = self.header(m, method)?;
        let code = self.code_of(m, method)?;
        let receiver = m.slot(temps, ctx::RECEIVER)?;
        let pc_base = h.initial_pc(self.sp.word_bytes);
        let pc = m
            .slot(c, ctx::PC)?
            .as_int()
            .and_then(|p| usize::try_from(p).ok())
            .filter(|&p| p >= pc_base)
            .ok_or_else(|| corrupt("a context whose pc is not in its method"))?;
        let stackp = stackp
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| corrupt("a context whose stack pointer is not an integer"))?;
        let cap = m.size(c)?.slots.saturating_sub(ctx::TEMPS);
        if stackp > cap {
            return Err(corrupt("a context whose stack pointer is past its end"));
        }
        Ok(ContextRegisters {
            method,
            code,
            temps,
            receiver,
            literals: h.literals,
            pc_base,
            pc: pc - pc_base,
            stackp,
            cap,
        })
    }

    // ---- the loop ------------------------------------------------------------------------

    /// Runs until the entry send answers or `budget` bytecodes have run. A bytecode that
    /// meets a root stub (see [`Vm::restart_bytecode`]) runs again once its segment is back;
    /// that error path is out here, around the dispatch loop, so it costs the loop nothing.
    pub(crate) fn interpret<M: ObjectMemory>(&mut self, m: &mut M, budget: u64) -> Result<Value> {
        let start = self.stats.bytecodes + self.stats.charged;
        loop {
            let used = self.stats.bytecodes + self.stats.charged - start;
            match self.dispatch(m, budget.saturating_sub(used)) {
                Err(e) if swapped(&e).is_some() => self.restart_bytecode(m, e)?,
                // Stopped by the budget of this round: name the call's.
                Err(VmError::BudgetExhausted { chain, .. }) => {
                    return Err(VmError::BudgetExhausted { budget, chain });
                }
                r => return r,
            }
        }
    }

    /// The dispatch loop: runs until the entry send answers, a bytecode fails, or `budget`
    /// bytecodes have run (the run is then suspended).
    fn dispatch<M: ObjectMemory>(&mut self, m: &mut M, budget: u64) -> Result<Value> {
        let mut left = budget;
        loop {
            if left == 0 {
                return Err(self.suspend(m, budget));
            }
            left -= 1;
            self.stats.bytecodes += 1;
            match self.step(m) {
                Ok(Flow::Go) => {}
                Ok(Flow::Worked(n)) => {
                    self.stats.charged += n;
                    left = left.saturating_sub(n);
                }
                Ok(Flow::Done(v)) => return Ok(v),
                Err(e) => return Err(self.with_chain(m, e)),
            }
        }
    }

    /// After `step` failed with `e`: when `e` is a read through a root stub by a bytecode
    /// that changes nothing before its reads (a push, a store: see [`Vm::restartable`]),
    /// faults the segment in and sets the pc back to the bytecode's start, so that the loop
    /// runs it again (it counts again against the budget); otherwise answers the typed
    /// error. Sends and primitives fault in where they meet the stub (see
    /// [`Vm::after_fault`]); what reaches here from them, or from a return, met the stub
    /// after changing the run's state, and is not run again.
    #[cold]
    #[inline(never)]
    fn restart_bytecode<M: ObjectMemory>(&mut self, m: &mut M, e: VmError) -> Result<()> {
        let Some(segment) = swapped(&e) else {
            return Err(self.with_chain(m, e));
        };
        let Some(start) = self.bytecode_start().filter(|&at| self.restartable(at)) else {
            let cause = if m.has_fault_handler() {
                FaultCause::NotRestartable
            } else {
                FaultCause::NoHandler
            };
            return Err(self.fault_error(m, segment, cause, None, None));
        };
        self.fault(m, segment, None, None)?;
        self.pc = start;
        Ok(())
    }

    /// The offset of the bytecode that just failed: the instruction that ends at the pc,
    /// found by decoding the method from its first bytecode (instructions are contiguous:
    /// a block's bytecodes lie inline in its method's). `None` if no instruction ends there
    /// (the failure came after a jump or an activation). Time: O(method).
    fn bytecode_start(&self) -> Option<usize> {
        let mut at = 0;
        while at < self.pc {
            let b = *self.code.get(at)?;
            let len = instruction_len(b, self.sp.closures);
            if at + len == self.pc {
                return Some(at);
            }
            at += len;
        }
        None
    }

    /// True if the bytecode at `at` reads everything it may find swapped out before it
    /// changes anything (the stack, the pc, an object), so that running it again from `at`
    /// after a fault is exact: the pushes of variables, temporaries and literals and the
    /// stores but the pop into a temporary (a store pops after it writes, and a write through
    /// a stub with a fault handler faults in by itself). Sends, returns, jumps, closures and
    /// the pop into a temporary (which pops first) are not.
    fn restartable(&self, at: usize) -> bool {
        let Some(&b) = self.code.get(at) else {
            return false;
        };
        match decode(b, self.sp.closures) {
            Op::PushReceiverVariable(_)
            | Op::PushTemp(_)
            | Op::PushLiteralConstant(_)
            | Op::PushLiteralVariable(_)
            | Op::PopIntoReceiverVariable(_)
            | Op::ExtendedPush
            | Op::ExtendedStore
            | Op::ExtendedStorePop
            | Op::PushRemoteTemp
            | Op::StoreRemoteTemp
            | Op::PopIntoRemoteTemp => true,
            // `class` answers without a send: it reads the receiver's class, then pops.
            Op::SpecialSend(23) => true,
            // Its sends and super sends are not; its pushes and stores are.
            Op::DoubleExtended => self.code.get(at + 1).is_some_and(|d| d >> 5 >= 2),
            _ => false,
        }
    }

    /// Brings back the segment that `error` (a read through a root stub) names, and runs
    /// `again`, which repeats what met the stub from its start; as long as that meets stubs
    /// of other segments, faults those in too. `selector` and `receiver` name the send that
    /// met the stub, for the error. Any other error is answered as it is.
    ///
    /// Only error paths call this: nothing is checked on the way of a send or a bytecode
    /// that meets no stub.
    #[cold]
    #[inline(never)]
    pub(crate) fn after_fault<M: ObjectMemory, T>(
        &mut self,
        m: &mut M,
        error: VmError,
        selector: Option<Value>,
        receiver: Option<Value>,
        mut again: impl FnMut(&mut Vm, &mut M) -> Result<T>,
    ) -> Result<T> {
        let mut error = error;
        loop {
            let Some(segment) = swapped(&error) else {
                return Err(error);
            };
            self.fault(m, segment, selector, receiver)?;
            match again(self, m) {
                Ok(v) => return Ok(v),
                Err(e) => error = e,
            }
        }
    }

    /// Faults segment `segment` in, once per call: a segment met again after its fault in
    /// this call is [`FaultCause::Again`], so a handler that does not bring its segment
    /// back for good cannot make a run loop (at most one fault per segment out).
    #[cold]
    pub(crate) fn fault<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        segment: u64,
        selector: Option<Value>,
        receiver: Option<Value>,
    ) -> Result<()> {
        let cause = if self.faulted.contains(&segment) {
            Some(FaultCause::Again)
        } else if !m.has_fault_handler() {
            Some(FaultCause::NoHandler)
        } else {
            m.fault_in(segment).err().map(FaultCause::Failed)
        };
        if let Some(cause) = cause {
            return Err(self.fault_error(m, segment, cause, selector, receiver));
        }
        self.faulted.push(segment);
        self.stats.faults += 1;
        Ok(())
    }

    /// Makes sure `v` is not a root stub before anything changes: reads its class, and if
    /// that meets a stub, faults its segment in (as [`Vm::fault`]). For the operations that
    /// cannot run again once they have started (a process switch, a resumed run). Costs one
    /// class read.
    pub(crate) fn fault_in_ahead<M: ObjectMemory>(&mut self, m: &mut M, v: Value) -> Result<()> {
        if !v.is_object() {
            return Ok(());
        }
        match m.class_of(v) {
            Ok(_) => Ok(()),
            Err(cowheap_tenants::Error::Swapped { segment, .. }) => {
                self.fault(m, segment, None, None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The typed error for segment `segment`, not brought back for `cause`, met by the
    /// send of `selector` to `receiver` if a send met it.
    #[cold]
    fn fault_error<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        segment: u64,
        cause: FaultCause,
        selector: Option<Value>,
        receiver: Option<Value>,
    ) -> VmError {
        // Registers not loaded yet (a resumed run's context still out) are another run's:
        // nothing is written back and no chain is walked.
        if !self.loaded {
            return VmError::SegmentFault {
                segment,
                cause,
                selector: None,
                receiver_class: None,
                chain: CallChain(Vec::new()),
            };
        }
        let _ = self.store_registers(m);
        let _ = self.flush_frames(m);
        VmError::SegmentFault {
            segment,
            cause,
            selector: selector.map(|s| crate::names::symbol(m, s).unwrap_or_else(|| "?".into())),
            receiver_class: receiver
                .and_then(|r| m.class_of(r).ok())
                .and_then(|c| crate::names::class_name(m, c)),
            chain: self.chain(m, 16),
        }
    }

    /// Stops at a bytecode boundary: the registers go into the context, the context into the
    /// memory's roots.
    #[cold]
    fn suspend<M: ObjectMemory>(&mut self, m: &mut M, budget: u64) -> VmError {
        let saved = self
            .store_registers(m)
            .and_then(|()| self.flush_frames(m))
            .and_then(|()| m.set_root(ACTIVE_ROOT, self.active))
            .and_then(|()| m.set_root(CLOCK_ROOT, Value::int(self.clock())))
            .and_then(|()| match self.timer {
                Some(deadline) => m.set_root(TIMER_ROOT, Value::int(deadline)),
                None => {
                    m.remove_root(TIMER_ROOT);
                    Ok(())
                }
            });
        if let Err(e) = saved {
            return VmError::Memory(e);
        }
        VmError::BudgetExhausted {
            budget,
            chain: self.chain(m, 8),
        }
    }

    /// Adds the call chain to an error that has none.
    #[cold]
    fn with_chain<M: ObjectMemory>(&mut self, m: &mut M, e: VmError) -> VmError {
        if swapped(&e).is_some() {
            // Left as it is: [`Vm::interpret`] faults the segment in, or names it.
            return e;
        }
        let _ = self.store_registers(m);
        let _ = self.flush_frames(m);
        let chain = self.chain(m, 16);
        match e {
            // A write through a root stub whose fault handler failed (the tenant calls the
            // handler itself on a write).
            VmError::Memory(e @ cowheap_tenants::Error::Fault { segment, .. }) => {
                VmError::SegmentFault {
                    segment,
                    cause: FaultCause::Failed(e),
                    selector: None,
                    receiver_class: None,
                    chain,
                }
            }
            VmError::CorruptMethod { what, chain: c } if c.0.is_empty() => {
                VmError::CorruptMethod { what, chain }
            }
            VmError::UnknownBytecode { bytecode, chain: c } if c.0.is_empty() => {
                VmError::UnknownBytecode { bytecode, chain }
            }
            VmError::UnsupportedBytecodeSet { set, chain: c } if c.0.is_empty() => {
                VmError::UnsupportedBytecodeSet { set, chain }
            }
            VmError::WouldBlock {
                primitive,
                chain: c,
            } if c.0.is_empty() => VmError::WouldBlock { primitive, chain },
            VmError::Deadlock {
                primitive,
                chain: c,
            } if c.0.is_empty() => VmError::Deadlock { primitive, chain },
            e => e,
        }
    }

    /// One bytecode.
    #[inline(always)]
    fn step<M: ObjectMemory>(&mut self, m: &mut M) -> Result<Flow> {
        let b = self.fetch(m)?;
        match decode(b, self.sp.closures) {
            Op::PushReceiverVariable(i) => {
                let v = m.slot(self.receiver, i)?;
                self.push(m, v)?;
            }
            Op::PushTemp(i) => {
                let v = self.temp(m, i)?;
                self.push(m, v)?;
            }
            Op::PushLiteralConstant(i) => {
                let v = self.literal(m, i)?;
                self.push(m, v)?;
            }
            Op::PushLiteralVariable(i) => {
                let a = self.literal(m, i)?;
                let v = m.slot(a, 1)?;
                self.push(m, v)?;
            }
            // Stores into the receiver write, then pop: one that fails leaves the stack as
            // it was (see `restartable`). A store into a temporary pops first (measured: the
            // other order cost the sieve 15 M instructions on the flat heap), so it is not
            // run again; a temporary lives in the stack or in a context, whose write through
            // a stub faults its segment in by itself.
            Op::PopIntoReceiverVariable(i) => {
                let v = self.peek(m, 0)?;
                m.set_slot(self.receiver, i, v)?;
                self.stack.pop();
            }
            Op::PopIntoTemp(i) => {
                let v = self.pop(m)?;
                self.set_temp(m, i, v)?;
            }
            Op::PushReceiver => self.push(m, self.receiver)?,
            Op::PushConstant(k) => {
                let v = match k {
                    0 => self.sp.true_,
                    1 => self.sp.false_,
                    2 => self.sp.nil,
                    k => Value::int(i64::from(k) - 4),
                };
                self.push(m, v)?;
            }
            Op::ReturnReceiver => return self.method_return(m, self.receiver),
            Op::ReturnConstant(k) => {
                let v = match k {
                    0 => self.sp.true_,
                    1 => self.sp.false_,
                    _ => self.sp.nil,
                };
                return self.method_return(m, v);
            }
            Op::ReturnTop => {
                let v = self.pop(m)?;
                return self.method_return(m, v);
            }
            Op::BlockReturnTop => {
                let v = self.pop(m)?;
                return self.block_return(m, v);
            }
            Op::ExtendedPush => {
                let d = self.fetch(m)?;
                let i = usize::from(d & 63);
                let v = match d >> 6 {
                    0 => m.slot(self.receiver, i)?,
                    1 => self.temp(m, i)?,
                    2 => self.literal(m, i)?,
                    _ => {
                        let a = self.literal(m, i)?;
                        m.slot(a, 1)?
                    }
                };
                self.push(m, v)?;
            }
            Op::ExtendedStore | Op::ExtendedStorePop => {
                let d = self.fetch(m)?;
                let i = usize::from(d & 63);
                let v = self.peek(m, 0)?;
                match d >> 6 {
                    0 => m.set_slot(self.receiver, i, v)?,
                    1 => self.set_temp(m, i, v)?,
                    2 => return Err(corrupt("a store into a literal constant")),
                    _ => {
                        let a = self.literal(m, i)?;
                        m.set_slot(a, 1, v)?;
                    }
                }
                if matches!(decode(b, self.sp.closures), Op::ExtendedStorePop) {
                    self.pop(m)?;
                }
            }
            Op::SingleExtendedSend => {
                let d = self.fetch(m)?;
                let sel = self.literal(m, usize::from(d & 31))?;
                return self.send(m, sel, usize::from(d >> 5), false);
            }
            Op::DoubleExtended => {
                let (d1, d2) = (self.fetch(m)?, self.fetch(m)?);
                let i = usize::from(d2);
                match d1 >> 5 {
                    0 => {
                        let sel = self.literal(m, i)?;
                        return self.send(m, sel, usize::from(d1 & 31), false);
                    }
                    1 => {
                        let sel = self.literal(m, i)?;
                        return self.send(m, sel, usize::from(d1 & 31), true);
                    }
                    2 => {
                        let v = m.slot(self.receiver, i)?;
                        self.push(m, v)?;
                    }
                    3 => {
                        let v = self.literal(m, i)?;
                        self.push(m, v)?;
                    }
                    4 => {
                        let a = self.literal(m, i)?;
                        let v = m.slot(a, 1)?;
                        self.push(m, v)?;
                    }
                    5 => {
                        let v = self.peek(m, 0)?;
                        m.set_slot(self.receiver, i, v)?;
                    }
                    6 => {
                        let v = self.peek(m, 0)?;
                        m.set_slot(self.receiver, i, v)?;
                        self.stack.pop();
                    }
                    _ => {
                        let v = self.peek(m, 0)?;
                        let a = self.literal(m, i)?;
                        m.set_slot(a, 1, v)?;
                    }
                }
            }
            Op::SingleExtendedSuper => {
                let d = self.fetch(m)?;
                let sel = self.literal(m, usize::from(d & 31))?;
                return self.send(m, sel, usize::from(d >> 5), true);
            }
            Op::SecondExtendedSend => {
                let d = self.fetch(m)?;
                let sel = self.literal(m, usize::from(d & 63))?;
                return self.send(m, sel, usize::from(d >> 6), false);
            }
            Op::Pop => {
                self.pop(m)?;
            }
            Op::Dup => {
                let v = self.peek(m, 0)?;
                self.push(m, v)?;
            }
            Op::PushThisContext => {
                // The image may look at it only by sends to it (see `frames_on`).
                self.store_registers(m)?;
                self.push(m, self.active)?;
            }
            Op::CallPrimitive => {
                // The primitive failed before the activation: its fallback code follows the
                // operands (a pc past the end is caught by the next fetch).
                self.pc += 2;
            }
            Op::PushNewArray => {
                let d = self.fetch(m)?;
                let n = usize::from(d & 127);
                let a = m.alloc(
                    self.sp.array_class,
                    Format::Pointers,
                    ObjectSize { slots: n, bytes: 0 },
                )?;
                if d & 128 != 0 {
                    for i in 0..n {
                        let v = self.peek(m, n - 1 - i)?;
                        m.set_slot(a, i, v)?;
                    }
                    self.drop_n(n);
                }
                self.push(m, a)?;
            }
            Op::PushRemoteTemp => {
                let (i, v) = (self.fetch(m)?, self.fetch(m)?);
                let vector = self.temp(m, usize::from(v))?;
                let x = m.slot(vector, usize::from(i))?;
                self.push(m, x)?;
            }
            Op::StoreRemoteTemp | Op::PopIntoRemoteTemp => {
                let (i, v) = (self.fetch(m)?, self.fetch(m)?);
                let vector = self.temp(m, usize::from(v))?;
                let x = self.peek(m, 0)?;
                m.set_slot(vector, usize::from(i), x)?;
                if matches!(decode(b, self.sp.closures), Op::PopIntoRemoteTemp) {
                    self.pop(m)?;
                }
            }
            Op::PushClosure => {
                let d = self.fetch(m)?;
                let (hi, lo) = (self.fetch(m)?, self.fetch(m)?);
                let size = usize::from(hi) << 8 | usize::from(lo);
                self.push_closure(m, usize::from(d >> 4), usize::from(d & 15), size)?;
            }
            Op::Jump(n) => self.pc = self.pc.wrapping_add_signed(n),
            Op::JumpIfFalse(n) => return self.cond_jump(m, false, n),
            Op::JumpIfTrue(n) => return self.cond_jump(m, true, n),
            Op::LongJump(hi) => {
                let lo = self.fetch(m)?;
                let off = (isize::from(hi) - 4) * 256 + isize::from(lo);
                self.pc = self.pc.wrapping_add_signed(off);
                // A backward jump closes a loop, which may allocate through primitives
                // alone (`Array new: n` in a `to:do:`) and never activate a method: the
                // collection threshold is checked here too, at a bytecode boundary, where
                // the registers go into the contexts as at an activation.
                if off < 0 {
                    return self.maybe_collect(m);
                }
            }
            Op::LongJumpIfTrue(hi) | Op::LongJumpIfFalse(hi) => {
                let lo = self.fetch(m)?;
                let off = isize::from(hi) * 256 + isize::from(lo);
                let on = matches!(decode(b, self.sp.closures), Op::LongJumpIfTrue(_));
                return self.cond_jump(m, on, off);
            }
            Op::SpecialSend(k) => return self.special_send(m, k),
            Op::Send { literal, args } => {
                let sel = self.literal(m, literal)?;
                return self.send(m, sel, args, false);
            }
            Op::Unknown => {
                return Err(VmError::UnknownBytecode {
                    bytecode: b,
                    chain: CallChain::default(),
                });
            }
        }
        Ok(Flow::Go)
    }

    fn cond_jump<M: ObjectMemory>(&mut self, m: &mut M, on: bool, off: isize) -> Result<Flow> {
        let v = self.pop(m)?;
        let (t, f) = (self.sp.true_, self.sp.false_);
        let b = if v.word() == t.word() {
            true
        } else if v.word() == f.word() {
            false
        } else {
            // Not a boolean: send it #mustBeBoolean, as Squeak does, with the pc past the jump.
            self.push(m, v)?;
            let sel = self.sp.sel_must_be_boolean;
            return self.send(m, sel, 0, false);
        };
        if b == on {
            self.pc = self.pc.wrapping_add_signed(off);
        }
        Ok(Flow::Go)
    }

    fn push_closure<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        copied: usize,
        args: usize,
        size: usize,
    ) -> Result<()> {
        let class = self
            .sp
            .block_closure
            .ok_or_else(|| corrupt("a closure bytecode in an image without BlockClosure"))?;
        let c = m.alloc(
            class,
            Format::Pointers,
            ObjectSize {
                slots: closure::COPIED + copied,
                bytes: 0,
            },
        )?;
        // The image may look at the outer context only by sends to it (see `frames_on`).
        self.materialize(m)?;
        m.set_slot(c, closure::OUTER, self.active)?;
        m.set_slot(c, closure::START, pc_value(self.pc, self.pc_base))?;
        m.set_slot(c, closure::ARGS, Value::int(args as i64))?;
        for i in 0..copied {
            let v = self.peek(m, copied - 1 - i)?;
            m.set_slot(c, closure::COPIED + i, v)?;
        }
        self.drop_n(copied);
        self.pc += size;
        self.push(m, c)?;
        Ok(())
    }

    // ---- sends ---------------------------------------------------------------------------

    fn special_send<M: ObjectMemory>(&mut self, m: &mut M, k: u8) -> Result<Flow> {
        if k < 16 {
            let (a, b) = (self.peek(m, 1)?, self.peek(m, 0)?);
            if let (Some(x), Some(y)) = (a.as_int(), b.as_int())
                && let Some(r) = self.int_op(k, x, y)
            {
                self.pop_then_push(m, 2, r)?;
                return Ok(Flow::Go);
            }
        } else if k == 22 {
            // ==
            let (a, b) = (self.peek(m, 1)?, self.peek(m, 0)?);
            let r = self.boolean(self.same(m, a, b)?);
            self.pop_then_push(m, 2, r)?;
            return Ok(Flow::Go);
        } else if k == 23 {
            // class
            let a = self.peek(m, 0)?;
            let c = m.class_of(a)?;
            self.pop_then_push(m, 1, c)?;
            return Ok(Flow::Go);
        }
        let (sel, args) = self.sp.selectors[usize::from(k)];
        self.send(m, sel, args, false)
    }

    /// The SmallInteger fast path of special selector `k` (0-15).
    #[inline(always)]
    pub(crate) fn int_op(&self, k: u8, x: i64, y: i64) -> Option<Value> {
        let int = |i: i64| self.int(i);
        match k {
            0 => x.checked_add(y).and_then(int),
            1 => x.checked_sub(y).and_then(int),
            2 => Some(self.boolean(x < y)),
            3 => Some(self.boolean(x > y)),
            4 => Some(self.boolean(x <= y)),
            5 => Some(self.boolean(x >= y)),
            6 => Some(self.boolean(x == y)),
            7 => Some(self.boolean(x != y)),
            8 => x.checked_mul(y).and_then(int),
            9 => (y != 0 && x % y == 0).then(|| x / y).and_then(int),
            10 => floor_mod(x, y).and_then(int),
            11 => None, // @ makes a Point: the primitive does it
            12 => shift(x, y).and_then(int),
            13 => floor_div(x, y).and_then(int),
            14 => int(x & y),
            15 => int(x | y),
            _ => None,
        }
    }

    /// Looks `selector` up from `class`: the method, its header and whether the selector is
    /// one [`Vm::trap`] watches for; or `None`. The method cache's probe inline, a miss
    /// ([`Vm::lookup_miss`]) out of line: a miss walks dictionaries through the memory's
    /// reads, whose frame every send would otherwise set up.
    #[inline(always)]
    pub(crate) fn lookup<M: ObjectMemory>(
        &mut self,
        m: &M,
        class: Value,
        selector: Value,
    ) -> Result<Option<Found>> {
        let slot = cache_slot(class.word(), selector.word());
        if let Some(e) = &self.cache[slot]
            && e.class == class.word()
            && e.selector.word() == selector.word()
        {
            return Ok(Some(Found {
                method: e.method,
                header: e.header,
                trap: e.trap,
                context: e.context,
            }));
        }
        self.lookup_miss(m, class, selector, slot)
    }

    /// [`Vm::lookup`] past a miss of the method cache at `slot`: the walk up the superclass
    /// chain, whose find is cached.
    #[inline(never)]
    fn lookup_miss<M: ObjectMemory>(
        &mut self,
        m: &M,
        class: Value,
        selector: Value,
        slot: usize,
    ) -> Result<Option<Found>> {
        self.stats.cache_misses += 1;
        let mut c = class;
        let mut chain = Chain::new(c);
        let mut sel = SelectorKeys::default();
        let mut work = LookupWork::new();
        while !self.is_nil(m, c)? {
            work.read()?;
            let dict = m.slot(c, 1)?;
            if let Some(method) = self.dict_lookup(m, dict, selector, &mut sel, &mut work)? {
                // Only a CompiledMethod is run: any other value (an Array whose first field
                // is a SmallInteger would decode as a header, its primitive run as the
                // method's) is refused, as Squeak's objects as methods (`run:with:in:`)
                // are not supported.
                if !method.is_object() || m.format(method)? != Format::CompiledMethod {
                    return Err(corrupt(
                        "a method dictionary value that is no CompiledMethod",
                    ));
                }
                let header = self.header(m, method)?;
                let trap = self.is_trap_selector(m, selector)?;
                let context = self.is_context_class(m, class)?;
                self.cache[slot] = Some(CacheEntry {
                    class: class.word(),
                    selector,
                    method,
                    header,
                    trap,
                    context,
                });
                return Ok(Some(Found {
                    method,
                    header,
                    trap,
                    context,
                }));
            }
            c = m.slot(c, 0)?;
            if !chain.step(c) {
                return Err(corrupt("a superclass chain that does not end"));
            }
        }
        Ok(None)
    }

    /// The method for `selector` in method dictionary `dict` (tally, values array, then the
    /// selectors).
    ///
    /// A V3 method dictionary is an open-addressed table whose key part has a power of two
    /// of fields: the image puts a selector at its identity hash modulo that size, or at the
    /// first free field after it (wrapping), and a Squeak VM finds it by the same probe,
    /// stopping at the first nil. This does the same, so a lookup reads a few keys of each
    /// dictionary up the chain instead of all of them. A dictionary of another size, or a
    /// selector that is no object (whose hash the image does not take from the header), is
    /// scanned whole. A dictionary the image filled by other means (`basicAt:put:`) may hold
    /// a key past a nil the probe stops at: the probe misses it, as a Squeak VM's does, so
    /// the probe and a scan may disagree there (the unit tests check they agree on every
    /// dictionary of the real images). nil is found nowhere: it is what marks a free field,
    /// never a key (a Squeak VM's probe tests for nil first), so `perform: nil` is not
    /// understood rather than taking a free field's value for a method.
    /// Time: O(1) expected (a probe's run of occupied fields), O(keys) for a scan; each key
    /// read is taken from `work`, and past its end the lookup fails.
    fn dict_lookup<M: ObjectMemory>(
        &self,
        m: &M,
        dict: Value,
        selector: Value,
        sel: &mut SelectorKeys,
        work: &mut LookupWork,
    ) -> Result<Option<Value>> {
        if !dict.is_object() || self.is_nil(m, selector)? {
            return Ok(None);
        }
        let n = m.size(dict)?.slots;
        let keys = n.saturating_sub(2);
        let found = if keys.is_power_of_two() && selector.is_object() {
            self.dict_probe(m, dict, selector, keys, sel, work)?
        } else {
            self.dict_scan(m, dict, selector, n, sel, work)?
        };
        match found {
            Some(i) => {
                let values = m.slot(dict, 1)?;
                Ok(Some(m.slot(values, i - 2)?))
            }
            None => Ok(None),
        }
    }

    /// The field of `dict` holding `selector`, found by probing from its identity hash
    /// (`keys`, the size of the key part, is a power of two); `None` at the first nil.
    #[inline(always)]
    fn dict_probe<M: ObjectMemory>(
        &self,
        m: &M,
        dict: Value,
        selector: Value,
        keys: usize,
        sel: &mut SelectorKeys,
        work: &mut LookupWork,
    ) -> Result<Option<usize>> {
        let mask = keys - 1;
        let mut i = sel.hash(m, selector)? as usize & mask;
        for _ in 0..keys {
            work.read()?;
            let k = m.slot(dict, 2 + i)?;
            if k.word() == selector.word() {
                return Ok(Some(2 + i));
            }
            if k.word() == self.sp.nil.word() {
                return Ok(None);
            }
            if k.word().is_ref() && m.identity_key(k)? == sel.key(m, selector)? {
                return Ok(Some(2 + i));
            }
            i = (i + 1) & mask;
        }
        Ok(None)
    }

    /// The field of `dict` (of `n` fields) holding `selector`, by a scan of every key.
    fn dict_scan<M: ObjectMemory>(
        &self,
        m: &M,
        dict: Value,
        selector: Value,
        n: usize,
        sel: &mut SelectorKeys,
        work: &mut LookupWork,
    ) -> Result<Option<usize>> {
        // The selector's identity once; each key is then compared by word, and only a
        // reference of another word by its own identity (one key per object on a tenant:
        // no table lookup for a key that leads to itself).
        let wanted = sel.key(m, selector)?;
        for i in 2..n {
            work.read()?;
            let k = m.slot(dict, i)?;
            if k.word() == selector.word() || (k.word().is_ref() && m.identity_key(k)? == wanted) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The class a method was compiled in: the value of its last literal (an association).
    pub(crate) fn method_class<M: ObjectMemory>(&self, m: &M, method: Value) -> Result<Value> {
        let h = self.header(m, method)?;
        if h.literals == 0 {
            return Err(corrupt("a super send in a method without a class literal"));
        }
        let assoc = m.slot(method, h.literals)?;
        Ok(m.slot(assoc, 1)?)
    }

    /// Sends `selector` to the receiver `args` deep in the stack.
    pub(crate) fn send<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        selector: Value,
        args: usize,
        to_super: bool,
    ) -> Result<Flow> {
        self.stats.sends += 1;
        let rcvr = self.peek(m, args)?;
        let class = if to_super {
            let c = self.method_class(m, self.method)?;
            m.slot(c, 0)?
        } else if rcvr.as_int().is_some() {
            self.int_class
        } else {
            match m.class_of(rcvr) {
                Ok(c) => c,
                // A receiver that is a root stub: its segment is faulted in, and the send
                // goes on as if it had been in.
                Err(e) => return self.send_to_stub(m, e.into(), rcvr, selector, args),
            }
        };
        self.send_to_class(m, rcvr, class, selector, args)
    }

    /// The rest of a send whose receiver's class could not be read (`error`): when the
    /// receiver is a root stub, faults its segment in, then looks up and runs the method.
    #[cold]
    #[inline(never)]
    fn send_to_stub<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        error: VmError,
        rcvr: Value,
        selector: Value,
        args: usize,
    ) -> Result<Flow> {
        let class = self.after_fault(m, error, Some(selector), Some(rcvr), |_, m| {
            Ok(m.class_of(rcvr)?)
        })?;
        self.send_to_class(m, rcvr, class, selector, args)
    }

    #[inline(always)]
    pub(crate) fn send_to_class<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        rcvr: Value,
        class: Value,
        selector: Value,
        args: usize,
    ) -> Result<Flow> {
        let found = match self.lookup(m, class, selector) {
            Ok(f) => f,
            // A class on the lookup path that is a root stub (a class of the tenant's own
            // swapped out with its instances): faulted in, and the lookup runs again.
            Err(e) => self.lookup_after_fault(m, e, rcvr, class, selector)?,
        };
        match found {
            Some(f) => self.execute(m, f, selector, args),
            None => self.not_understood(m, rcvr, class, selector, args),
        }
    }

    /// [`Vm::lookup`] again after it failed with `error`, once the root stub it met is
    /// faulted in.
    #[cold]
    #[inline(never)]
    fn lookup_after_fault<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        error: VmError,
        rcvr: Value,
        class: Value,
        selector: Value,
    ) -> Result<Option<Found>> {
        self.after_fault(m, error, Some(selector), Some(rcvr), |vm, m| {
            vm.lookup(m, class, selector)
        })
    }

    #[cold]
    fn not_understood<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        rcvr: Value,
        class: Value,
        selector: Value,
        args: usize,
    ) -> Result<Flow> {
        let dnu = self.sp.sel_dnu;
        if self.same(m, selector, dnu)? {
            return Err(self.dnu_error(m, rcvr, selector));
        }
        let Some(mut found) = self.lookup(m, class, dnu)? else {
            return Err(self.dnu_error(m, rcvr, selector));
        };
        if self.is_default_handler(m, found.method, class)? && !self.has_handler(m)? {
            return Err(self.dnu_error(m, rcvr, selector));
        }
        // The lookup may have started above the receiver's class (a super send,
        // `perform:withArguments:inSuperclass:`), whose cache entry does not tell that the
        // receiver is a context, which the handler may read (the performing context
        // itself): ask, so that the callers are handed over (see `Vm::hand_over_callers`).
        if !found.context {
            self.fault_in_ahead(m, rcvr)?;
            found.context = self.is_context(m, rcvr)?;
        }
        // Replace the arguments by a Message.
        let arr = m.alloc(
            self.sp.array_class,
            Format::Pointers,
            ObjectSize {
                slots: args,
                bytes: 0,
            },
        )?;
        for i in 0..args {
            let v = self.peek(m, args - 1 - i)?;
            m.set_slot(arr, i, v)?;
        }
        let message_class = self.sp.message;
        let msg = self
            .instantiate(m, message_class, 0)?
            .ok_or_else(|| corrupt("a Message class that is not fixed-size"))?;
        m.set_slot(msg, 0, selector)?;
        m.set_slot(msg, 1, arr)?;
        if m.size(msg)?.slots > 2 {
            m.set_slot(msg, 2, class)?;
        }
        self.drop_n(args);
        self.push(m, msg)?;
        self.execute(m, found, dnu, 1)
    }

    #[cold]
    fn dnu_error<M: ObjectMemory>(&mut self, m: &mut M, rcvr: Value, selector: Value) -> VmError {
        let _ = self.store_registers(m);
        VmError::DoesNotUnderstand {
            selector: crate::names::symbol(m, selector).unwrap_or_else(|| "?".into()),
            receiver_class: m
                .class_of(rcvr)
                .ok()
                .and_then(|c| crate::names::class_name(m, c))
                .unwrap_or_else(|| "?".into()),
            chain: self.chain(m, 16),
        }
    }

    /// True if `method` (found from `class`) is in a root class of the hierarchy (Object or
    /// ProtoObject): the image's default handler of an error.
    fn is_default_handler<M: ObjectMemory>(
        &self,
        m: &M,
        method: Value,
        class: Value,
    ) -> Result<bool> {
        let mut c = class;
        let mut chain = Chain::new(c);
        let mut work = LookupWork::new();
        while !self.is_nil(m, c)? {
            work.read()?;
            let dict = m.slot(c, 1)?;
            let superclass = m.slot(c, 0)?;
            if self.dict_has_method(m, dict, method, &mut work)? {
                // The root class, or Object under ProtoObject.
                let top = self.is_nil(m, superclass)?
                    || crate::names::class_name(m, c).as_deref() == Some("Object");
                return Ok(top);
            }
            c = superclass;
            if !chain.step(c) {
                break;
            }
        }
        Ok(false)
    }

    fn dict_has_method<M: ObjectMemory>(
        &self,
        m: &M,
        dict: Value,
        method: Value,
        work: &mut LookupWork,
    ) -> Result<bool> {
        if !dict.is_object() {
            return Ok(false);
        }
        if m.size(dict)?.slots < 2 {
            return Ok(false);
        }
        let values = m.slot(dict, 1)?;
        if !values.is_object() {
            return Ok(false);
        }
        for i in 0..m.size(values)?.slots {
            work.read()?;
            if self.same(m, m.slot(values, i)?, method)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True if a context on the active chain runs a method marked as an exception handler
    /// (primitive 199, `on:do:`).
    fn has_handler<M: ObjectMemory>(&mut self, m: &mut M) -> Result<bool> {
        self.materialize(m)?;
        let mut c = self.active;
        for _ in 0..self.max_depth {
            if self.is_nil(m, c)? || !c.is_object() {
                break;
            }
            if self.is_bottom(c) {
                break;
            }
            let method = m.slot(c, ctx::METHOD)?;
            if method.is_object()
                && m.format(method)? == Format::CompiledMethod
                && self.header(m, method)?.primitive == 199
            {
                return Ok(true);
            }
            c = m.slot(c, ctx::SENDER)?;
        }
        Ok(false)
    }

    /// Runs `found.method` for the receiver and `args` arguments on the stack: its
    /// primitive, and if there is none or it fails, a new context. `found.trap` tells that
    /// `selector` is one of the error sends [`Vm::trap`] watches for, `found.context` that
    /// the receiver is a context (the method cache keeps both answers).
    pub(crate) fn execute<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        found: Found,
        selector: Value,
        args: usize,
    ) -> Result<Flow> {
        let Found {
            method,
            header: h,
            trap,
            context,
        } = found;
        if h.primitive != 0 {
            // Run on a context, a primitive reads or writes its fields, except `blockCopy:`
            // and a BlockContext's `value...` (80-82), which touch only fields the
            // interpreter never keeps back (home, argument count, start, and a caller that
            // is nil while the block is not running).
            if context && !matches!(h.primitive, 80..=82) {
                self.hand_over_callers(m)?;
            }
            if self.nested_primitives < MAX_NESTED_PRIMITIVES {
                self.nested_primitives += 1;
                let ran = self.run_primitive(m, h.primitive, method, selector, args);
                self.nested_primitives -= 1;
                if let Some(flow) = ran? {
                    self.stats.primitives += 1;
                    return Ok(flow);
                }
            }
            if self.unpaid != 0 {
                return self.run_fallback_charged(m, method, h, selector, args, trap, context);
            }
        }
        self.run_method(m, method, h, selector, args, trap, context)
    }

    /// [`Vm::run_method`] for a primitive that failed after work over the objects
    /// ([`Vm::unpaid`]): the work is charged with the fallback's activation, so that a
    /// loop of such failures is stopped by its budget.
    #[cold]
    #[inline(never)]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of a found method, as execute has them"
    )]
    fn run_fallback_charged<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        method: Value,
        h: MethodHeader,
        selector: Value,
        args: usize,
        trap: bool,
        context: bool,
    ) -> Result<Flow> {
        let work = std::mem::take(&mut self.unpaid);
        Ok(
            match self.run_method(m, method, h, selector, args, trap, context)? {
                Flow::Go => Flow::Worked(work),
                Flow::Worked(n) => Flow::Worked(n.saturating_add(work)),
                done => done,
            },
        )
    }

    /// Activates `method`, found for `selector` with `args` arguments, in a new context:
    /// the method has no primitive, or its primitive failed. `trap` and `context` are as in
    /// [`Found`].
    #[inline(always)]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of a found method, as execute has them"
    )]
    fn run_method<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        method: Value,
        h: MethodHeader,
        selector: Value,
        args: usize,
        trap: bool,
        context: bool,
    ) -> Result<Flow> {
        if h.args != args {
            return Err(corrupt("a method run with the wrong number of arguments"));
        }
        if trap {
            self.trap(m, method, selector, args)?;
        }
        if context {
            self.hand_over_callers(m)?;
        }
        let rcvr = self.peek(m, args)?;
        self.activate(
            m,
            method,
            h,
            rcvr,
            args,
            Activation::Method {
                on_context: context,
            },
        )
    }

    /// Runs primitive `index` (see [`Vm::primitive`]). A primitive reads its receiver and
    /// arguments before it changes anything, so one that meets a root stub (an argument
    /// swapped out) runs again from its start once the segment is back.
    #[inline(always)]
    pub(crate) fn run_primitive<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        index: u16,
        method: Value,
        selector: Value,
        args: usize,
    ) -> Result<Option<Flow>> {
        match self.primitive(m, index, method, selector, args) {
            Err(e) => self.primitive_failed(m, e, index, method, selector, args),
            r => r,
        }
    }

    /// The error path of [`Vm::run_primitive`]: a read through a root stub faults its
    /// segment in and runs the primitive again; any other error is answered as it is.
    #[cold]
    #[inline(never)]
    fn primitive_failed<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        e: VmError,
        index: u16,
        method: Value,
        selector: Value,
        args: usize,
    ) -> Result<Option<Flow>> {
        let Some(segment) = swapped(&e) else {
            return Err(e);
        };
        let rcvr = self.peek(m, args).ok();
        if !rerunnable(index) {
            let cause = if m.has_fault_handler() {
                FaultCause::NotRestartable
            } else {
                FaultCause::NoHandler
            };
            return Err(self.fault_error(m, segment, cause, Some(selector), rcvr));
        }
        self.after_fault(m, e, Some(selector), rcvr, |vm, m| {
            vm.primitive(m, index, method, selector, args)
        })
    }

    /// True if `class` is MethodContext or BlockContext.
    fn is_context_class<M: ObjectMemory>(&self, m: &M, class: Value) -> Result<bool> {
        let (mc, bc) = (self.sp.method_context, self.sp.block_context);
        if class.word() == mc.word() || class.word() == bc.word() {
            return Ok(true);
        }
        if !class.word().is_ref() {
            return Ok(false);
        }
        // The class's identity once, against each context class's.
        let k = m.identity_key(class)?;
        Ok(k == m.identity_key(mc)? || k == m.identity_key(bc)?)
    }

    /// True if `selector` is one of the error sends [`Vm::trap`] watches for: `error:`,
    /// `cannotReturn:`, `mustBeBoolean`, `halt`.
    pub(crate) fn is_trap_selector<M: ObjectMemory>(
        &self,
        m: &M,
        selector: Value,
    ) -> MemResult<bool> {
        const TRAPS: [&[u8]; 4] = [b"error:", b"cannotReturn:", b"mustBeBoolean", b"halt"];
        Ok(selector.is_object()
            && m.format(selector)? == Format::Bytes
            && TRAPS.contains(&m.bytes(selector)?))
    }

    /// Stops with a typed error where the image would open a debugger: `error:` and the
    /// VM's own error sends (`selector`, one [`Vm::is_trap_selector`] accepts) reaching the
    /// default implementation with no handler.
    #[cold]
    fn trap<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        method: Value,
        selector: Value,
        args: usize,
    ) -> Result<()> {
        let Some(name) = crate::names::symbol(m, selector) else {
            return Ok(());
        };
        let rcvr = self.peek(m, args)?;
        let class = m.class_of(rcvr)?;
        if !self.is_default_handler(m, method, class)? || self.has_handler(m)? {
            return Ok(());
        }
        let message = if name == "error:" {
            let text = self.peek(m, 0)?;
            crate::names::string(m, text).unwrap_or_default()
        } else {
            String::new()
        };
        self.store_registers(m)?;
        Err(VmError::ImageError {
            selector: name,
            receiver_class: crate::names::class_name(m, class).unwrap_or_else(|| "?".into()),
            message,
            chain: self.chain(m, 16),
        })
    }

    /// A new context for `method` running for `rcvr`, with `args` arguments and the
    /// receiver (or closure) under them taken off the stack; `kind` tells a method's
    /// activation from a closure's.
    pub(crate) fn activate<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        method: Value,
        h: MethodHeader,
        rcvr: Value,
        args: usize,
        kind: Activation,
    ) -> Result<Flow> {
        // The method's bytecodes first: a method swapped out meets its stub before anything
        // changes, where a send can fault it in.
        let code = match self.code_of(m, method) {
            Ok(code) => code,
            Err(e) => self.after_fault(m, e, None, None, |vm, m| vm.code_of(m, method))?,
        };
        let frame = h.frame().max(h.temps + 1);
        // What refuses the activation is found before anything changes: the run then stops
        // in the sender, with its stack, registers and kept callers as they were.
        let pc_base = h.initial_pc(self.sp.word_bytes);
        let pc = match kind {
            Activation::Method { .. } => self.activation_pc(h, pc_base, h.temps.max(args))?,
            Activation::Closure { start, copied, .. } => {
                self.activation_pc(h, start, args.saturating_add(copied))?
            }
        };
        let n = self.stack.len();
        let first = n
            .checked_sub(args)
            .ok_or_else(|| corrupt("a send with fewer values on the stack than arguments"))?;
        self.enter(m)?;
        // The new frame: the arguments, then the copied values or nil temporaries; a block's
        // context is made now, to hold its closure (a method's when first looked at).
        let mut frame_values = std::mem::take(&mut self.scratch);
        frame_values.clear();
        frame_values.extend_from_slice(&self.stack[first..]);
        let c = match kind {
            Activation::Method { .. } => {
                frame_values.resize(h.temps.max(args), self.sp.nil);
                None
            }
            Activation::Closure {
                closure: blk,
                copied,
                ..
            } => {
                let made = self.closure_context(m, blk, copied, frame, &mut frame_values);
                match made {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.scratch = frame_values;
                        self.depth = self.depth.saturating_sub(1);
                        return Err(e);
                    }
                }
            }
        };
        // A caller whose registers are kept is made (the callee names it as its sender), but
        // its stack, pc and stack pointer stay in the kept registers until something could
        // look at them (see `Saved`); any other caller's go into its context now.
        // (A method run on a context may read its caller: that caller is not kept.)
        let keep_caller = !matches!(
            kind,
            Activation::Method { on_context: true }
                | Activation::Closure {
                    on_context: true,
                    ..
                }
        );
        let keep = keep_caller && self.frames_on && !self.is_bottom(self.active);
        // Making the caller's context (the one step here that allocates) comes before its
        // stack loses the receiver and arguments.
        if let Err(e) = self.materialize(m) {
            self.scratch = frame_values;
            self.depth = self.depth.saturating_sub(1);
            return Err(e.into());
        }
        self.drop_n(args + 1);
        if !keep {
            self.store_registers(m)?;
        }
        // Sender, method and receiver are written when the context is first looked at.
        let sender = self.active;
        let saved = keep.then(|| Saved {
            active: sender,
            method: self.method,
            code: self.code.clone(),
            receiver: self.receiver,
            temps: self.temps,
            temps_here: self.temps_here,
            temps_frame: self.temps_frame,
            pc: self.pc,
            pc_base: self.pc_base,
            literals: self.literals,
            cap: self.cap,
            stack: Vec::new(),
            dirty: self.dirty,
            stale: true,
        });
        let c = c.unwrap_or(self.sp.nil);
        self.unallocated = c.word() == self.sp.nil.word();
        self.active = c;
        self.fresh = true;
        self.fresh_sender = sender;
        self.method = method;
        self.code = code;
        self.receiver = rcvr;
        self.temps = c;
        self.temps_here = true;
        self.temps_frame = None;
        self.literals = h.literals;
        self.pc_base = pc_base;
        self.pc = pc;
        // The cached frame becomes the new context's; the old cache is the next scratch.
        let old = std::mem::replace(&mut self.stack, frame_values);
        match saved {
            Some(mut f) => {
                f.stack = old;
                self.frames.push(f);
                self.scratch = self.pool.pop().unwrap_or_default();
            }
            None => self.scratch = old,
        }
        self.cap = frame;
        self.dirty = 0;
        self.maybe_collect(m)
    }

    /// The pc (from the first bytecode) at which an activation of a method of header `h`
    /// starts, given its start as a byte index and the fields its frame must hold
    /// (arguments, copied values, temporaries): refused as corrupt when the start is before
    /// the method's bytecodes or the fields do not fit the frame. Checked before an
    /// activation, or a primitive that leads to one, changes anything.
    pub(crate) fn activation_pc(
        &self,
        h: MethodHeader,
        start: usize,
        held: usize,
    ) -> Result<usize> {
        let pc = start
            .checked_sub(h.initial_pc(self.sp.word_bytes))
            .ok_or_else(|| corrupt("a block that starts before its method's bytecodes"))?;
        if held > h.frame().max(h.temps + 1) {
            return Err(corrupt("more temporaries than the context holds"));
        }
        Ok(pc)
    }

    /// A new context for an activation of closure `blk` (its closure field set), with the
    /// closure's `copied` values appended to `values` (the arguments): made before the
    /// activation changes anything, so that a refused allocation leaves the sender as it
    /// was.
    fn closure_context<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        blk: Value,
        copied: usize,
        frame: usize,
        values: &mut Vec<Value>,
    ) -> Result<Value> {
        for i in 0..copied {
            values.push(m.slot(blk, closure::COPIED + i)?);
        }
        let size = ObjectSize {
            slots: ctx::TEMPS + frame,
            bytes: 0,
        };
        let c = m.alloc(self.sp.method_context, Format::Pointers, size)?;
        self.stats.contexts += 1;
        m.set_slot(c, ctx::CLOSURE, blk)?;
        Ok(c)
    }

    /// Makes BlockContext `block` active (its arguments, stack pointer and pc already in
    /// it), called from the active context, whose registers are kept as a send keeps them;
    /// the block's home, when it is a kept caller, has its temporaries read and written in
    /// its kept registers.
    pub(crate) fn enter_block<M: ObjectMemory>(&mut self, m: &mut M, block: Value) -> Result<()> {
        // A block whose receiver is a context (made in a method run on one, and outliving
        // it) reads that context's fields: as a send to it would, it hands the callers over.
        let home = m.slot(block, ctx::HOME)?;
        let on_context = self.is_context(m, m.slot(home, ctx::RECEIVER)?)?;
        if on_context {
            self.hand_over_callers(m)?;
        }
        if self.frames_on && !on_context && !self.is_bottom(self.active) {
            self.materialize(m)?;
            let stack = std::mem::replace(&mut self.stack, self.pool.pop().unwrap_or_default());
            self.frames.push(Saved {
                active: self.active,
                method: self.method,
                code: self.code.clone(),
                receiver: self.receiver,
                temps: self.temps,
                temps_here: self.temps_here,
                temps_frame: self.temps_frame,
                pc: self.pc,
                pc_base: self.pc_base,
                literals: self.literals,
                cap: self.cap,
                stack,
                dirty: self.dirty,
                stale: true,
            });
        } else {
            self.store_registers(m)?;
        }
        m.set_slot(block, ctx::SENDER, self.active)?;
        self.load_context(m, block)
    }

    /// Collects the memory's garbage once private bytes pass the threshold, with the
    /// active and bottom contexts as roots (every register is reachable from them): at an
    /// activation and at a backward jump.
    fn maybe_collect<M: ObjectMemory>(&mut self, m: &mut M) -> Result<Flow> {
        if m.private_bytes() < self.gc_threshold {
            return Ok(Flow::Go);
        }
        // After an activation or a backward jump, at a bytecode boundary with the
        // registers in place, as Squeak checks for interrupts at the same two points: the
        // finalization process, if a weak slot was cleared, preempts the active process
        // when its priority is higher.
        if self.collect_now(m)? > 0
            && let Some(flow) = self.signal_finalization(m, true)?
        {
            return Ok(flow);
        }
        Ok(Flow::Go)
    }

    /// How this image's weak objects are held in a collection ([`ObjectMemory::collect`]):
    /// a weak object's named instance variables, as its class's format word says in this
    /// image's object format, strongly, its indexed slots weakly, a cleared slot set to nil.
    /// For an embedder that collects a memory between runs as a run's own collection does.
    pub fn weak_slots(&self) -> WeakSlots {
        WeakSlots {
            nil: self.sp.nil,
            named: if self.sp.spur {
                |f| ClassFormat::decode_spur(f).fixed
            } else {
                |f| ClassFormat::decode(f).fixed
            },
        }
    }

    /// Collects `m`'s garbage between runs as a run's own collections do: weak slots held
    /// weakly ([`Vm::weak_slots`]), ephemerons as ephemerons (the fired ones queued for the
    /// image's finalization, [`MOURNERS_ROOT`]), and, when a slot was cleared or an
    /// ephemeron fired, the image's finalization semaphore signalled, its waiter made
    /// runnable for the next run. What an embedder calls rather than
    /// [`ObjectMemory::collect`] so that the image hears of its finalizations.
    ///
    /// # Errors
    /// The memory's error (a mark the allocator refuses frees nothing), or a corrupt
    /// scheduler's when the signal cannot be made.
    pub fn collect<M: ObjectMemory>(&mut self, m: &mut M) -> Result<Collected> {
        let done = m.collect(&[], &self.weak_slots())?;
        if self.after_collection(m, &done)? > 0 {
            self.signal_finalization(m, false)?;
        }
        Ok(done)
    }

    /// Counts what a collection cleared and fired, and queues the fired ephemerons and, in
    /// a Spur image whose header flags ask for it, the weak objects it cleared a slot of (as
    /// Spur does: an image that does not ask fetches no weak mourners, and one of the older
    /// format has no mourner queue); answers how many slots were cleared and ephemerons
    /// fired, together.
    fn after_collection<M: ObjectMemory>(&mut self, m: &mut M, done: &Collected) -> Result<u64> {
        self.stats.weak_cleared += done.cleared;
        let fired = done.mourners.len() as u64;
        self.stats.ephemerons_fired += fired;
        let weak: &[Value] = if self.sp.weak_mourners {
            &done.weak_mourners
        } else {
            &[]
        };
        self.queue_mourners(m, &done.mourners, weak)?;
        Ok(done.cleared + fired)
    }

    /// Appends `fired` and then each of `weak` not on it already (a weak object is queued
    /// once, as Spur queues it) to the image's mourner queue, kept under [`MOURNERS_ROOT`].
    /// Time: O(queue × weak).
    fn queue_mourners<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        fired: &[Value],
        weak: &[Value],
    ) -> Result<()> {
        if fired.is_empty() && weak.is_empty() {
            return Ok(());
        }
        let (head, mut tail) = mourner_bounds(m)?;
        let mut queued = Vec::new();
        if !weak.is_empty() {
            for k in head..tail {
                let Some(v) = m.root(&format!("{MOURNERS_ROOT}.{k}")) else {
                    return Err(corrupt("a mourner queue missing a mourner"));
                };
                queued.push(v);
            }
        }
        let mut fresh = Vec::new();
        for &w in weak {
            let mut on_queue = false;
            for &q in &queued {
                if m.identical(q, w)? {
                    on_queue = true;
                    break;
                }
            }
            if !on_queue {
                fresh.push(w);
            }
        }
        if fired.is_empty() && fresh.is_empty() {
            return Ok(());
        }
        for &e in fired.iter().chain(&fresh) {
            m.set_root(&format!("{MOURNERS_ROOT}.{tail}"), e)?;
            tail += 1;
        }
        m.set_root(&format!("{MOURNERS_ROOT}.head"), Value::int(head))?;
        m.set_root(&format!("{MOURNERS_ROOT}.tail"), Value::int(tail))?;
        Ok(())
    }

    /// Takes the first mourner off the image's queue ([`MOURNERS_ROOT`]), if there is one.
    /// A queue missing its first mourner's root (edited by hand) is an error, the queue
    /// left as it was.
    pub(crate) fn next_mourner<M: ObjectMemory>(&mut self, m: &mut M) -> Result<Option<Value>> {
        let (head, tail) = mourner_bounds(m)?;
        if head == tail {
            return Ok(None);
        }
        let name = format!("{MOURNERS_ROOT}.{head}");
        let Some(found) = m.root(&name) else {
            return Err(corrupt("a mourner queue missing a mourner"));
        };
        if head + 1 == tail {
            m.remove_root(&format!("{MOURNERS_ROOT}.head"));
            m.remove_root(&format!("{MOURNERS_ROOT}.tail"));
        } else {
            m.set_root(&format!("{MOURNERS_ROOT}.head"), Value::int(head + 1))?;
        }
        m.remove_root(&name);
        Ok(Some(found))
    }

    /// Collects now; answers the weak slots cleared and the ephemerons fired (queued), for
    /// the caller to signal the finalization semaphore ([`Vm::signal_finalization`]) as
    /// Squeak's collector does.
    pub(crate) fn collect_now<M: ObjectMemory>(&mut self, m: &mut M) -> Result<u64> {
        // Everything the kept callers hold must be reachable from the contexts.
        self.store_registers(m)?;
        self.flush_frames(m)?;
        let done = m.collect(&[self.active, self.bottom], &self.weak_slots())?;
        // A collected method may have been cached, or listed for a walk. The list is the
        // interpreter's to drop here, so the walk's next list is not charged.
        self.flush_cache();
        self.forget_enumeration();
        self.relist_free = true;
        self.stats.collections += 1;
        let after = done.private_bytes;
        self.gc_threshold = after.saturating_mul(2).max(after + self.gc_min);
        self.after_collection(m, &done)
    }

    /// Counts one more context on the chain; past the limit, counts the chain itself.
    pub(crate) fn enter<M: ObjectMemory>(&mut self, m: &mut M) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            self.check_depth(m)?;
        }
        Ok(())
    }

    /// Counts the context chain; fails if it is longer than the limit.
    #[cold]
    fn check_depth<M: ObjectMemory>(&mut self, m: &mut M) -> Result<()> {
        self.materialize(m)?;
        let mut c = self.active;
        let mut n = 0;
        while c.is_object() && !self.is_nil(m, c)? {
            n += 1;
            if n > self.max_depth {
                self.store_registers(m)?;
                return Err(VmError::StackOverflow {
                    depth: self.max_depth,
                    chain: self.chain(m, 16),
                });
            }
            c = m.slot(c, ctx::SENDER)?;
        }
        self.depth = n;
        Ok(())
    }

    // ---- returns -------------------------------------------------------------------------

    /// The home context of the active context: itself for a method, a BlockContext's home,
    /// the outermost context of a closure.
    fn home<M: ObjectMemory>(&self, m: &M) -> Result<Value> {
        if !self.temps_here {
            return Ok(self.temps);
        }
        if self.unallocated {
            // Only method activations are left unallocated: their home is themselves.
            return Ok(self.active);
        }
        let mut c = self.active;
        for _ in 0..self.max_depth {
            let blk = m.slot(c, ctx::CLOSURE)?;
            if !self.sp.closures || self.is_nil(m, blk)? || !blk.is_object() {
                return Ok(c);
            }
            c = m.slot(blk, closure::OUTER)?;
        }
        Err(corrupt("a closure nesting that does not end"))
    }

    /// `^ value`: returns from the home method to its sender.
    fn method_return<M: ObjectMemory>(&mut self, m: &mut M, value: Value) -> Result<Flow> {
        let home = self.home(m)?;
        if self.same(m, home, self.active)? {
            return self.local_return(m, value);
        }
        // Non-local return: the home must still be live and on the active chain, and the
        // context it returns to live, which is checked first, as Squeak's return does:
        // unwind blocks run for a return that can be made, never before a `cannotReturn:`.
        self.drop_frames(m)?;
        self.materialize(m)?;
        let to = m.slot(home, ctx::SENDER)?;
        if self.is_nil(m, m.slot(home, ctx::PC)?)?
            || self.is_nil(m, to)?
            || !self.returnable(m, to)?
        {
            return self.cannot_return(m, value);
        }
        // The contexts from the active one's sender up to the home, the home included (as
        // Squeak walks up to the home's sender), are looked at for an unwind marker.
        let mut c = self.active;
        let mut found = false;
        for _ in 0..self.max_depth {
            if self.is_nil(m, c)? {
                break;
            }
            let at_home = self.same(m, c, home)?;
            let method = m.slot(c, ctx::METHOD)?;
            if !self.same(m, c, self.active)?
                && method.is_object()
                && m.format(method)? == Format::CompiledMethod
                && self.header(m, method)?.primitive == 198
                && let Some(sel) = self.sp.sel_about_to_return
            {
                // An unwind block lies between: let the image run it
                // (`thisContext aboutToReturn: value through: c`).
                self.expose(m)?;
                self.room_for(3)?;
                self.push(m, self.active)?;
                self.push(m, value)?;
                self.push(m, c)?;
                return self.send(m, sel, 2, false);
            }
            if at_home {
                found = true;
                break;
            }
            c = m.slot(c, ctx::SENDER)?;
        }
        if !found {
            return self.cannot_return(m, value);
        }
        self.return_to(m, to, value)
    }

    /// Returns `value` from a block to its caller.
    fn block_return<M: ObjectMemory>(&mut self, m: &mut M, value: Value) -> Result<Flow> {
        self.local_return(m, value)
    }

    /// Returns `value` from the active context to its sender: the common return, which
    /// marks one context dead.
    fn local_return<M: ObjectMemory>(&mut self, m: &mut M, value: Value) -> Result<Flow> {
        if self.fresh {
            // Never looked at, referred to by nothing: no need to mark it dead (or, for a
            // method's, to make it at all). A return it cannot make leaves it fresh:
            // `cannotReturn:` makes it, and is sent to it.
            let to = self.fresh_sender;
            if !self.returnable(m, to)? {
                return self.cannot_return(m, value);
            }
            let target = self.return_target(m, to)?;
            self.fresh = false;
            self.unallocated = false;
            self.depth = self.depth.saturating_sub(1);
            return self.continue_in(m, to, target, value);
        }
        let to = m.slot(self.active, ctx::SENDER)?;
        if !self.returnable(m, to)? {
            return self.cannot_return(m, value);
        }
        // The sender is read (and refused, if it cannot be run) before the active context
        // is marked dead: a refused return leaves both as they were.
        let target = self.return_target(m, to)?;
        let nil = self.sp.nil;
        m.set_slot(self.active, ctx::SENDER, nil)?;
        m.set_slot(self.active, ctx::PC, nil)?;
        self.depth = self.depth.saturating_sub(1);
        self.continue_in(m, to, target, value)
    }

    /// True if a return may go to `to`: a context that is not dead, as Squeak's
    /// `commonReturn` checks before it marks anything dead (a nil sender, or a sender whose
    /// pc is nil, gets `cannotReturn:` instead). The bottom context and the innermost kept
    /// caller are live (a kept caller's pc may not be in its context yet); any other
    /// context is read, after the kept callers are written into their contexts (the
    /// return that follows reads it from the heap all the same).
    #[inline(always)]
    fn returnable<M: ObjectMemory>(&mut self, m: &mut M, to: Value) -> Result<bool> {
        if self.is_bottom(to)
            || (self.frames_on
                && self
                    .frames
                    .last()
                    .is_some_and(|f| f.active.word() == to.word()))
        {
            return Ok(true);
        }
        self.returnable_in_heap(m, to)
    }

    /// [`Vm::returnable`] of a context that is neither the bottom one nor the innermost kept
    /// caller: one not nil whose pc is not nil.
    #[inline(never)]
    fn returnable_in_heap<M: ObjectMemory>(&mut self, m: &mut M, to: Value) -> Result<bool> {
        if !to.is_object() || self.is_nil(m, to)? {
            return Ok(false);
        }
        self.drop_frames(m)?;
        Ok(!self.is_nil(m, m.slot(to, ctx::PC)?)?)
    }

    #[cold]
    fn cannot_return<M: ObjectMemory>(&mut self, m: &mut M, value: Value) -> Result<Flow> {
        self.expose(m)?;
        self.materialize(m)?;
        self.room_for(2)?;
        self.push(m, self.active)?;
        self.push(m, value)?;
        let sel = self.sp.sel_cannot_return;
        self.send(m, sel, 1, false)
    }

    /// Returns `value` to context `to`, marking every context from the active one up to it
    /// dead (nil sender and pc).
    pub(crate) fn return_to<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        to: Value,
        value: Value,
    ) -> Result<Flow> {
        if !self.returnable(m, to)? {
            return self.cannot_return(m, value);
        }
        // As in `local_return`: `to` is read and checked before anything is marked dead.
        let target = self.return_target(m, to)?;
        let nil = self.sp.nil;
        let mut c = self.active;
        for _ in 0..=self.max_depth {
            if self.same(m, c, to)? || self.is_nil(m, c)? {
                break;
            }
            let next = m.slot(c, ctx::SENDER)?;
            m.set_slot(c, ctx::SENDER, nil)?;
            m.set_slot(c, ctx::PC, nil)?;
            self.depth = self.depth.saturating_sub(1);
            c = next;
        }
        self.continue_in(m, to, target, value)
    }

    /// Where a return to `to` (a context [`Vm::returnable`] accepted) goes: the bottom
    /// context, the innermost kept caller, or a context read from the heap, whose registers
    /// must read as a context's (see [`Vm::read_context`]) and whose stack must have room
    /// for the returned value. Found before the return marks anything dead or changes a
    /// register, so that a sender the image set that cannot be run (an object that is no
    /// context, a context with no method, a full stack, the returning context itself) stops
    /// the run with a typed error and everything as it was: before, the returning contexts
    /// were marked dead first, and the registers were left naming `to`, so that the stop
    /// wrote the returning context's stack, pc and stack pointer into `to`'s fields.
    fn return_target<M: ObjectMemory>(&mut self, m: &mut M, to: Value) -> Result<ReturnTarget> {
        if self.is_bottom(to) {
            return Ok(ReturnTarget::Bottom);
        }
        if self.frames_on
            && self
                .frames
                .last()
                .is_some_and(|f| f.active.word() == to.word())
        {
            return Ok(ReturnTarget::Kept);
        }
        self.drop_frames(m)?;
        // Contexts are compared by word (see `is_bottom`).
        if !self.unallocated && to.word() == self.active.word() {
            return Err(corrupt("a return to the returning context itself"));
        }
        if self.is_nil(m, m.slot(to, ctx::PC)?)? {
            return Err(corrupt("a return to a dead context"));
        }
        let r = self.read_context(m, to)?;
        if r.stackp >= r.cap {
            return Err(corrupt("a return to a context with no room for the value"));
        }
        Ok(ReturnTarget::Heap(r))
    }

    /// Makes `to`, a context that was returned to, active with `value` pushed; answers
    /// the run's result when `to` is the bottom context. `target` is what
    /// [`Vm::return_target`] found `to` to be.
    fn continue_in<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        to: Value,
        target: ReturnTarget,
        value: Value,
    ) -> Result<Flow> {
        match target {
            ReturnTarget::Bottom => {
                self.active = to;
                self.stack.clear();
                self.dirty = 0;
                Ok(Flow::Done(value))
            }
            ReturnTarget::Kept => {
                let Some(f) = self.frames.pop() else {
                    return Err(corrupt("a return to a kept caller that is not kept"));
                };
                // The caller's registers as they were when it sent: nothing else can have
                // written its context since.
                let done = std::mem::replace(&mut self.stack, f.stack);
                if self.pool.len() < 64 {
                    let mut v = done;
                    v.clear();
                    self.pool.push(v);
                }
                self.active = f.active;
                self.method = f.method;
                self.code = f.code;
                self.receiver = f.receiver;
                self.temps = f.temps;
                self.temps_here = f.temps_here;
                self.temps_frame = f.temps_frame;
                self.pc = f.pc;
                self.pc_base = f.pc_base;
                self.literals = f.literals;
                self.cap = f.cap;
                self.dirty = f.dirty;
                self.fresh = false;
                self.unallocated = false;
                self.push(m, value)?;
                Ok(Flow::Go)
            }
            ReturnTarget::Heap(r) => {
                self.set_context(m, to, r)?;
                self.push(m, value)?;
                Ok(Flow::Go)
            }
        }
    }

    // ---- diagnostics ---------------------------------------------------------------------

    /// The call chain from the active context, at most `limit` frames. The frames' walks
    /// share one [`LookupWork`]: past it, a frame is named `Class>>?`.
    pub(crate) fn chain<M: ObjectMemory>(&self, m: &M, limit: usize) -> CallChain {
        let mut out = Vec::new();
        let mut c = self.active;
        let mut work = LookupWork::new();
        while out.len() < limit {
            if !c.is_object() || self.is_nil(m, c).unwrap_or(true) || self.is_bottom(c) {
                break;
            }
            out.push(crate::names::frame(self, m, c, &mut work).unwrap_or_else(|| "?".into()));
            match m.slot(c, ctx::SENDER) {
                Ok(s) => c = s,
                Err(_) => break,
            }
        }
        CallChain(out)
    }
}

#[cfg(test)]
mod tests;
